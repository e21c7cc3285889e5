/*
 * pg: one PostgreSQL connection. Connects with ticketd's session settings,
 * prepares the statements of its caller, runs them alone or several in one
 * round trip (a pipeline), and classifies every failure. One struct pg is
 * used by one thread at a time.
 */
#ifndef TICKETD_PG_H
#define TICKETD_PG_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

/* tcp_user_timeout of every connection unless conninfo says otherwise: how
 * long data sent may go unacknowledged before the connection counts as
 * gone (pg_connect says why). */
#define PG_TCP_USER_TIMEOUT_MS "30000"

/* What a failed step means for the work that ran it. */
enum pg_status {
	PG_OK = 0,
	PG_RETRY,	 /* serialization failure, deadlock, key race: again */
	PG_DISCONNECTED, /* the connection is gone, or the server takes no
			  * writes (a standby): reconnect, again */
	PG_REFUSED,	 /* the database refused something the work asked */
	PG_TOO_BIG,	 /* out of a server resource (SQLSTATE class 53), or
			  * more locks than one batch may take: run it in
			  * halves; alone, run it again later */
	PG_LOCAL,	 /* a failure of ours (out of memory, an internal
			  * check): back off and run it again, never answer */
};

/* A statement text, and how it is planned. */
struct pg_statement {
	const char *name;
	int param_count;
	const char *sql;
	/*
	 * Sent unnamed, so planned for each execution's own parameters:
	 * for lookups in tables that grow without bound, whose cached
	 * generic plan made while a table was nearly empty would keep
	 * scanning it as it grows (docs/design.md, "Plans"). Everything else
	 * is prepared once per connection and its plan cached.
	 */
	int planned_each_time;
};

struct pg;

/*
 * A connection for conninfo, not yet connected, that will prepare
 * statements[0..count) (the table must outlive it). NULL when out of
 * memory. conninfo is copied.
 */
struct pg *pg_new(const char *conninfo, const struct pg_statement *statements,
		  size_t count);

/* Close the connection and free pg (NULL is fine). */
void pg_free(struct pg *pg);

/* (Re)connect, set the session up and prepare the statements. 0, or -1
 * with errstr. */
int pg_connect(struct pg *pg, char *errstr, size_t errstr_size)
    __attribute__((warn_unused_result));

int pg_connected(const struct pg *pg);

/*
 * The server a connected pg talks to, as "host:port" (with a multi-host
 * conninfo, the one libpq settled on). 0, or -1 when not connected.
 */
int pg_server(const struct pg *pg, char *out, size_t out_size);

/*
 * Give up a connection whose state is not known any more (a pipeline that
 * never synced, a transaction that may be open): pg_connected() turns
 * false, and the server ends the session's transaction and locks.
 */
void pg_drop(struct pg *pg);

/* SELECT 1: is the database answering? */
int pg_ping(struct pg *pg);

/* Run a command without parameters and result rows (BEGIN, COMMIT). */
enum pg_status pg_command(struct pg *pg, const char *sql, char *errstr,
			  size_t errstr_size)
    __attribute__((warn_unused_result));

/* End any transaction the connection may have open (after a failure). */
void pg_rollback(struct pg *pg);

/*
 * Run statement `which` of the connection's table with text params and
 * wait. On PG_OK *out is the result (the caller PQclears it), or with out
 * NULL it is cleared here; on any other result errstr says why.
 */
enum pg_status pg_run(struct pg *pg, int which, const char *const *params,
		      PGresult **out, char *errstr, size_t errstr_size)
    __attribute__((warn_unused_result));

/* A result's integer column (the caller knows it is one). */
int64_t pg_int(const PGresult *res, int row, int col);

/*
 * A pipeline (libpq pipeline mode) sends statements back to back and reads
 * their results after one sync: one round trip for a whole phase of a
 * batch. They still run one after another, in the order sent, each seeing
 * what the ones before it did; a failing one aborts the rest.
 */
#define PG_PIPELINE_MAX 16

struct pg_pipeline {
	struct pg *pg;
	size_t count;			    /* statements sent */
	const char *what[PG_PIPELINE_MAX];  /* their names, for errors */
	PGresult *results[PG_PIPELINE_MAX]; /* after pg_pipeline_run */
	enum pg_status broken;		    /* PG_OK, or why sending stopped */
	char send_error[256];
};

/* Enter pipeline mode. 0, or -1 with errstr (the connection is dropped). */
int pg_pipeline_start(struct pg_pipeline *p, struct pg *pg, char *errstr,
		      size_t errstr_size) __attribute__((warn_unused_result));

/*
 * Queue statement `which` (params must live until this returns). Returns
 * the index of its result in p->results. Once the pipeline is broken,
 * nothing more is sent and pg_pipeline_run reports why.
 */
size_t pg_pipeline_send(struct pg_pipeline *p, int which,
			const char *const *params);

/* Queue a fixed command without parameters (BEGIN, COMMIT). */
void pg_pipeline_command(struct pg_pipeline *p, const char *sql);

/* Break the pipeline for a reason of ours (out of memory): PG_LOCAL. */
void pg_pipeline_fail(struct pg_pipeline *p, const char *why);

/* Hand the server what is queued so far without waiting for it all to go
 * out: it starts executing while the caller prepares the rest. */
void pg_pipeline_push(struct pg_pipeline *p);

/*
 * Sync, wait, and collect one result per statement sent. PG_OK when every
 * statement succeeded (p->results then holds them: pg_pipeline_clear);
 * otherwise the first failure, classified, with the results freed. The
 * connection leaves pipeline mode either way, or is dropped.
 */
enum pg_status pg_pipeline_run(struct pg_pipeline *p, char *errstr,
			       size_t errstr_size)
    __attribute__((warn_unused_result));

/* Free the results of a pipeline that ran. */
void pg_pipeline_clear(struct pg_pipeline *p);

#endif
