/*
 * pg: one PostgreSQL connection. Connects with ticketd's session settings,
 * prepares the statements of its caller, runs them alone or several in one
 * round trip (a pipeline), and classifies every failure.
 *
 * Every statement is parameterised, prepared or sent unnamed (see
 * pg_statement.planned_each_time); none is built from input.
 */
#include "pg.h"

#include "version.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pg {
	char *conninfo;
	const struct pg_statement *statements;
	size_t statement_count;
	PGconn *conn;
	/* The server said it takes no writes: the connection is given up
	 * (pg_connected() false) so that the next pg_connect looks for the
	 * primary again. */
	int read_only;
};

struct pg *pg_new(const char *conninfo, const struct pg_statement *statements,
		  size_t count)
{
	struct pg *pg = calloc(1, sizeof(*pg));

	if (!pg)
		return NULL;
	pg->conninfo = strdup(conninfo);
	if (!pg->conninfo) {
		free(pg);
		return NULL;
	}
	pg->statements = statements;
	pg->statement_count = count;
	return pg;
}

void pg_free(struct pg *pg)
{
	if (!pg)
		return;
	if (pg->conn)
		PQfinish(pg->conn);
	free(pg->conninfo);
	free(pg);
}

int pg_connected(const struct pg *pg)
{
	return pg->conn && !pg->read_only &&
	       PQstatus(pg->conn) == CONNECTION_OK;
}

int pg_server(const struct pg *pg, char *out, size_t out_size)
{
	const char *host, *port;

	if (!pg_connected(pg))
		return -1;
	host = PQhost(pg->conn);
	port = PQport(pg->conn);
	snprintf(out, out_size, "%s:%s", host && *host ? host : "local",
		 port && *port ? port : "5432");
	return 0;
}

void pg_drop(struct pg *pg)
{
	PQfinish(pg->conn);
	pg->conn = NULL;
}

/* libpq's messages end with a newline: keep errstr to one line. */
static void one_line(char *s)
{
	s[strcspn(s, "\n")] = '\0';
}

int pg_connect(struct pg *pg, char *errstr, size_t errstr_size)
{
	/*
	 * connect_timeout and the TCP settings first, so that those in
	 * conninfo win: a database that does not answer must not hang a
	 * worker. A primary whose machine dies sends nothing more, not even a
	 * reset: without keepalives and a bound on unacknowledged data, a
	 * worker would wait on its connection for the kernel's retransmission
	 * timeout (a quarter of an hour) before it looked for the new
	 * primary. Neither bounds a statement that waits on the server (a
	 * lock, a synchronous standby): that connection stays answered. The
	 * version in the session's name tells a migration which ticketds
	 * still run.
	 */
	const char *const keywords[] = {"connect_timeout",
					"keepalives",
					"keepalives_idle",
					"keepalives_interval",
					"keepalives_count",
					"tcp_user_timeout",
					"dbname",
					"application_name",
					NULL};
	const char *const values[] = {"5",	    "1",
				      "10",	    "5",
				      "3",	    PG_TCP_USER_TIMEOUT_MS,
				      pg->conninfo, "ticketd/" TICKETD_VERSION,
				      NULL};
	PGresult *res;

	if (pg->conn)
		PQfinish(pg->conn);
	pg->read_only = 0;
	pg->conn = PQconnectdbParams(keywords, values, 1);
	if (PQstatus(pg->conn) != CONNECTION_OK) {
		snprintf(errstr, errstr_size,
			 "cannot connect to PostgreSQL: %s",
			 PQerrorMessage(pg->conn));
		goto fail;
	}
	/*
	 * The session's settings for short statements that find their rows
	 * by key or through an index. Sequential scans off: a cached
	 * idempotency lookup stays a primary-key probe whatever the
	 * statistics said when it was planned. JIT off: compiling would cost
	 * more than any of these statements, and a scan still forced on a
	 * plan (its cost inflated by the setting above) would be compiled
	 * every time. Both live in the session: a pooler in front of ticketd
	 * must run in session mode.
	 */
	res = PQexec(pg->conn, "SET enable_seqscan = off; SET jit = off");
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		snprintf(errstr, errstr_size,
			 "cannot set the session's planner settings: %s",
			 PQerrorMessage(pg->conn));
		PQclear(res);
		goto fail;
	}
	PQclear(res);
	for (size_t i = 0; i < pg->statement_count; i++) {
		const struct pg_statement *t = &pg->statements[i];

		if (t->planned_each_time)
			continue;
		res =
		    PQprepare(pg->conn, t->name, t->sql, t->param_count, NULL);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			snprintf(errstr, errstr_size,
				 "cannot prepare statement %s: %s", t->name,
				 PQerrorMessage(pg->conn));
			PQclear(res);
			goto fail;
		}
		PQclear(res);
	}
	return 0;
fail:
	one_line(errstr);
	pg_drop(pg);
	return -1;
}

/* Classify a failed result (NULL: none came); errstr gets the message. */
static enum pg_status classify(struct pg *pg, PGresult *res, const char *what,
			       char *errstr, size_t errstr_size)
{
	const char *sqlstate =
	    res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	/* The result's own message: in a pipeline, the connection's may
	 * already be about a later statement. */
	const char *message = res && *PQresultErrorMessage(res)
				  ? PQresultErrorMessage(res)
				  : PQerrorMessage(pg->conn);

	snprintf(errstr, errstr_size, "%s: %s%s%s", what,
		 sqlstate ? sqlstate : "", sqlstate ? " " : "", message);
	one_line(errstr);
	if (PQstatus(pg->conn) != CONNECTION_OK || !sqlstate ||
	    strncmp(sqlstate, "08", 2) == 0 || strncmp(sqlstate, "57P", 3) == 0)
		return PG_DISCONNECTED;
	/* A read-only server (a standby, or a primary being demoted): not a
	 * refusal of the requests; the caller drops the connection and
	 * looks for the primary through the conninfo again. */
	if (strcmp(sqlstate, "25006") == 0) {
		pg->read_only = 1;
		return PG_DISCONNECTED;
	}
	if (strcmp(sqlstate, "40001") == 0 || strcmp(sqlstate, "40P01") == 0 ||
	    strcmp(sqlstate, "23505") == 0 || strcmp(sqlstate, "55P03") == 0)
		return PG_RETRY;
	/* Insufficient resources (out of shared memory for locks, disk
	 * full, ...): a passing condition, not a refusal of the requests. */
	if (strncmp(sqlstate, "53", 2) == 0)
		return PG_TOO_BIG;
	return PG_REFUSED;
}

enum pg_status pg_command(struct pg *pg, const char *sql, char *errstr,
			  size_t errstr_size)
{
	PGresult *res = PQexec(pg->conn, sql);
	enum pg_status rc = PG_OK;

	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		rc = classify(pg, res, sql, errstr, errstr_size);
	PQclear(res);
	return rc;
}

void pg_rollback(struct pg *pg)
{
	/* A ROLLBACK with no transaction open only warns; one that fails
	 * leaves a connection that pg_connected() calls gone. */
	if (pg_connected(pg))
		PQclear(PQexec(pg->conn, "ROLLBACK"));
}

int pg_ping(struct pg *pg)
{
	PGresult *res;
	int ok;

	if (!pg_connected(pg))
		return 0;
	res = PQexec(pg->conn, "SELECT 1");
	ok = PQresultStatus(res) == PGRES_TUPLES_OK;
	PQclear(res);
	return ok;
}

int64_t pg_int(const PGresult *res, int row, int col)
{
	return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* Queue statement `which`: prepared, or unnamed (planned_each_time). */
static int send_statement(struct pg *pg, int which, const char *const *params)
{
	const struct pg_statement *t = &pg->statements[which];

	if (t->planned_each_time)
		return PQsendQueryParams(pg->conn, t->sql, t->param_count, NULL,
					 params, NULL, NULL, 0);
	return PQsendQueryPrepared(pg->conn, t->name, t->param_count, params,
				   NULL, NULL, 0);
}

enum pg_status pg_run(struct pg *pg, int which, const char *const *params,
		      PGresult **out, char *errstr, size_t errstr_size)
{
	const struct pg_statement *t = &pg->statements[which];
	PGresult *res;
	ExecStatusType status;

	if (t->planned_each_time)
		res = PQexecParams(pg->conn, t->sql, t->param_count, NULL,
				   params, NULL, NULL, 0);
	else
		res = PQexecPrepared(pg->conn, t->name, t->param_count, params,
				     NULL, NULL, 0);
	status = PQresultStatus(res);
	if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
		enum pg_status rc =
		    classify(pg, res, t->name, errstr, errstr_size);

		PQclear(res);
		return rc;
	}
	if (out)
		*out = res;
	else
		PQclear(res);
	return PG_OK;
}

/* ----------------------------------------------------------- pipelines */

/*
 * The connection is non-blocking while a pipeline is flushed, and input is
 * read while output waits, so a large result (stored replies of a
 * redelivered batch) can never stall against a large parameter still being
 * sent.
 */

int pg_pipeline_start(struct pg_pipeline *p, struct pg *pg, char *errstr,
		      size_t errstr_size)
{
	memset(p, 0, sizeof(*p));
	p->pg = pg;
	if (PQenterPipelineMode(pg->conn) != 1 ||
	    PQsetnonblocking(pg->conn, 1) != 0) {
		snprintf(errstr, errstr_size, "cannot enter pipeline mode: %s",
			 PQerrorMessage(pg->conn));
		one_line(errstr);
		pg_drop(pg);
		return -1;
	}
	return 0;
}

/* Stop sending, as rc, at what, for why (one line kept). */
static void pipeline_break(struct pg_pipeline *p, enum pg_status rc,
			   const char *what, const char *why)
{
	if (p->broken)
		return;
	p->broken = rc;
	snprintf(p->send_error, sizeof(p->send_error), "%s: %s", what, why);
	one_line(p->send_error);
}

void pg_pipeline_fail(struct pg_pipeline *p, const char *why)
{
	pipeline_break(p, PG_LOCAL, "ticketd", why);
}

/* Room for one more statement? Checked before anything is queued: a
 * statement the server ran but nobody collects would shift every result
 * after it. */
static int pipeline_room(struct pg_pipeline *p, const char *what)
{
	if (p->broken)
		return 0;
	if (p->count == PG_PIPELINE_MAX) {
		pipeline_break(p, PG_LOCAL, what, "pipeline too long");
		return 0;
	}
	return 1;
}

/* After a send: record it, or break on libpq's refusal. */
static void pipeline_sent(struct pg_pipeline *p, int ok, const char *what)
{
	if (ok) {
		p->what[p->count++] = what;
		return;
	}
	pipeline_break(p,
		       PQstatus(p->pg->conn) == CONNECTION_OK ? PG_LOCAL
							      : PG_DISCONNECTED,
		       what, PQerrorMessage(p->pg->conn));
}

size_t pg_pipeline_send(struct pg_pipeline *p, int which,
			const char *const *params)
{
	size_t at = p->count;

	if (pipeline_room(p, p->pg->statements[which].name))
		pipeline_sent(p, send_statement(p->pg, which, params),
			      p->pg->statements[which].name);
	return at;
}

void pg_pipeline_command(struct pg_pipeline *p, const char *sql)
{
	if (pipeline_room(p, sql))
		pipeline_sent(p,
			      PQsendQueryParams(p->pg->conn, sql, 0, NULL, NULL,
						NULL, NULL, 0),
			      sql);
}

void pg_pipeline_push(struct pg_pipeline *p)
{
	if (!p->broken && PQflush(p->pg->conn) < 0)
		pipeline_break(p, PG_DISCONNECTED, "flush",
			       PQerrorMessage(p->pg->conn));
}

/* Push everything out, reading input meanwhile; 0 or -1. */
static int pipeline_flush(PGconn *conn)
{
	for (;;) {
		int pending = PQflush(conn);
		struct pollfd pfd = {.fd = PQsocket(conn),
				     .events = POLLIN | POLLOUT};

		if (pending <= 0)
			return pending;
		if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
			return -1;
		if ((pfd.revents & POLLIN) && PQconsumeInput(conn) != 1)
			return -1;
	}
}

void pg_pipeline_clear(struct pg_pipeline *p)
{
	for (size_t i = 0; i < p->count; i++) {
		PQclear(p->results[i]);
		p->results[i] = NULL;
	}
}

enum pg_status pg_pipeline_run(struct pg_pipeline *p, char *errstr,
			       size_t errstr_size)
{
	PGconn *conn = p->pg->conn;
	enum pg_status rc = PG_OK;
	size_t got = 0;
	int synced = 0;
	int nulls = 0; /* NULL results in a row */

	if (PQpipelineSync(conn) != 1 || pipeline_flush(conn) != 0) {
		snprintf(errstr, errstr_size, "pipeline: %s",
			 PQerrorMessage(conn));
		one_line(errstr);
		rc = PG_DISCONNECTED;
		goto out;
	}
	/* One result (then NULL) per statement, then the sync marker. */
	while (!synced) {
		PGresult *res = PQgetResult(conn);
		ExecStatusType status;

		if (!res) {
			/* One NULL ends a statement's results; two in a row
			 * mean libpq gave up waiting without a sync. */
			if (PQstatus(conn) != CONNECTION_OK || ++nulls > 1) {
				if (rc == PG_OK)
					rc = classify(p->pg, NULL, "pipeline",
						      errstr, errstr_size);
				goto out;
			}
			continue;
		}
		nulls = 0;
		status = PQresultStatus(res);
		if (status == PGRES_PIPELINE_SYNC) {
			synced = 1;
		} else if (status == PGRES_COMMAND_OK ||
			   status == PGRES_TUPLES_OK) {
			if (got < p->count) {
				p->results[got++] = res;
				continue;
			}
		} else if (status != PGRES_PIPELINE_ABORTED && rc == PG_OK) {
			rc =
			    classify(p->pg, res,
				     got < p->count ? p->what[got] : "pipeline",
				     errstr, errstr_size);
			got++;
		} else {
			got++;
		}
		PQclear(res);
	}
	if (rc == PG_OK && p->broken) {
		snprintf(errstr, errstr_size, "%s", p->send_error);
		rc = p->broken;
	}
out:
	(void)PQsetnonblocking(conn, 0);
	if (PQstatus(conn) != CONNECTION_OK || !synced ||
	    PQexitPipelineMode(conn) != 1) {
		/* Results may still be queued and a transaction open: the
		 * connection cannot be trusted with the next batch. */
		if (rc == PG_OK) {
			snprintf(errstr, errstr_size,
				 "cannot leave pipeline mode");
			rc = PG_DISCONNECTED;
		}
		pg_drop(p->pg);
	}
	if (rc != PG_OK)
		pg_pipeline_clear(p);
	return rc;
}
