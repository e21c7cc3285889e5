/*
 * pgcheck: does PostgreSQL take ticketd as configured? One new connection
 * and a SELECT 1 within a bound, and what a failure means: refused for good
 * (credentials, TLS) or not reachable now.
 *
 * A new connection, not a pooled one: it is what proves that the server
 * still accepts ticketd's credentials (a password rotated under a running
 * ticketd leaves the open sessions working), and its every step is
 * non-blocking, so the bound holds even when the host stops answering.
 */
#include "pgcheck.h"

#include <ctype.h>
#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PGCHECK_DEFAULT_MS 5000

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * The first SQLSTATE in a PQERRORS_VERBOSE message ("FATAL:  28P01: ..."),
 * preferring one of class 28 (several tries, several hosts: a refusal
 * among them is what to report). 1 with it in out, 0 when none.
 */
static int find_sqlstate(const char *message, char out[6])
{
	int found = 0;

	for (const char *p = strstr(message, ":  "); p;
	     p = strstr(p + 1, ":  ")) {
		const char *s = p + 3;
		int ok = 1;

		for (int i = 0; i < 5; i++) {
			if (!isdigit((unsigned char)s[i]) &&
			    !isupper((unsigned char)s[i]))
				ok = 0;
		}
		if (!ok || s[5] != ':')
			continue;
		if (!found || strncmp(s, "28", 2) == 0) {
			memcpy(out, s, 5);
			out[5] = '\0';
			found = 1;
		}
	}
	return found;
}

enum pgcheck_result pgcheck_classify(const char *message, const char **cause)
{
	/* libpq's own messages are in English whatever the server's
	 * lc_messages (ticketd never calls setlocale); the server's are
	 * matched by their SQLSTATE. */
	static const struct {
		const char *text;
		const char *cause;
	} client[] = {
	    {"no password supplied",
	     "the server asks for a password and none was found (pg_passfile, "
	     "PGPASSWORD or password in pg_conninfo)"},
	    {"does not match host name",
	     "TLS: the server's certificate does not name the host connected "
	     "to"},
	    {"certificate verify failed",
	     "TLS: the server's certificate is not signed by a CA in "
	     "sslrootcert"},
	    {"root certificate file",
	     "TLS: the sslrootcert file cannot be read"},
	    {"server does not support SSL",
	     "TLS: sslmode asks for TLS and the server does not offer it"},
	    {"channel binding", "the server refused SCRAM channel binding"},
	    {"SSL error", "TLS: the handshake failed"},
	    {"certificate", "TLS: a certificate was refused"},
	};
	char sqlstate[6];

	if (find_sqlstate(message, sqlstate)) {
		if (strcmp(sqlstate, "28P01") == 0) {
			*cause =
			    "the password was refused, or there is no such "
			    "user (the server does not say which)";
			return PGCHECK_REFUSED;
		}
		if (strncmp(sqlstate, "28", 2) == 0) {
			*cause = strstr(message, "no encryption")
				     ? "the server takes this user over TLS "
				       "only: set sslmode=verify-full and "
				       "sslrootcert in pg_conninfo"
				     : "the server does not let this user in "
				       "(pg_hba.conf, or no such role)";
			return PGCHECK_REFUSED;
		}
		if (strcmp(sqlstate, "42501") == 0) {
			*cause = "the user may not connect to this database";
			return PGCHECK_REFUSED;
		}
		*cause = "not available";
		return PGCHECK_DOWN;
	}
	for (size_t i = 0; i < sizeof(client) / sizeof(client[0]); i++) {
		if (strstr(message, client[i].text)) {
			*cause = client[i].cause;
			return PGCHECK_REFUSED;
		}
	}
	*cause = "not reachable";
	return PGCHECK_DOWN;
}

/* libpq's message on one line, without the LOCATION lines of the verbose
 * form and the line ends. */
static void one_line(const char *message, char *out, size_t out_size)
{
	size_t pos = 0;

	out[0] = '\0';
	for (const char *p = message; *p && pos + 1 < out_size;) {
		size_t len = strcspn(p, "\n");

		if (len > 0 && strncmp(p, "LOCATION:", 9) != 0) {
			pos += (size_t)snprintf(out + pos, out_size - pos,
						"%s%.*s", pos ? "; " : "",
						(int)len, p);
			if (pos >= out_size)
				pos = out_size - 1;
		}
		p += len;
		if (*p == '\n')
			p++;
	}
}

/* The bound: timeout_ms, else the conninfo's connect_timeout (libpq reads
 * less than 2 as 2), else 5 s. -1 when conninfo cannot be read. */
static int bound_ms(const char *conninfo, int timeout_ms)
{
	char *why = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, &why);
	int ms = PGCHECK_DEFAULT_MS;

	if (!opts) {
		/* why may quote the string, a password with it. */
		PQfreemem(why);
		return -1;
	}
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		if (strcmp(o->keyword, "connect_timeout") == 0 && o->val &&
		    atoi(o->val) > 0)
			ms = (atoi(o->val) < 2 ? 2 : atoi(o->val)) * 1000;
	}
	PQconninfoFree(opts);
	return timeout_ms > 0 ? timeout_ms : ms;
}

/* Wait for sock to be readable (or writable) until deadline. 1 ready, 0
 * time is up, -1 poll failed. */
static int wait_socket(int sock, int for_write, long long deadline)
{
	struct pollfd pfd = {.fd = sock,
			     .events = for_write ? POLLOUT : POLLIN};

	for (;;) {
		long long left = deadline - now_ms();
		int rc;

		if (left <= 0)
			return 0;
		rc = poll(&pfd, 1, (int)left);
		if (rc > 0)
			return 1;
		if (rc == 0)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

/* Drive PQconnectPoll to the end or the deadline. 1 connected, 0 time is
 * up, -1 failed (the reason in PQerrorMessage). */
static int connect_until(PGconn *conn, long long deadline)
{
	/* As libpq's documentation says: start as if it asked to write. */
	PostgresPollingStatusType status = PGRES_POLLING_WRITING;

	while (status != PGRES_POLLING_OK) {
		int ready;

		if (status == PGRES_POLLING_FAILED ||
		    PQstatus(conn) == CONNECTION_BAD)
			return -1;
		ready = PQsocket(conn) < 0
			    ? 1
			    : wait_socket(PQsocket(conn),
					  status == PGRES_POLLING_WRITING,
					  deadline);
		if (ready <= 0)
			return ready;
		status = PQconnectPoll(conn);
	}
	return 1;
}

/* SELECT 1 on conn within the deadline. 1 answered, 0 time is up, -1
 * failed. */
static int ping_until(PGconn *conn, long long deadline)
{
	PGresult *res;
	int ok = 0;

	if (!PQsendQuery(conn, "SELECT 1"))
		return -1;
	while (PQisBusy(conn)) {
		int ready = wait_socket(PQsocket(conn), 0, deadline);

		if (ready <= 0)
			return ready;
		if (!PQconsumeInput(conn))
			return -1;
	}
	while ((res = PQgetResult(conn))) {
		ok = ok || PQresultStatus(res) == PGRES_TUPLES_OK;
		PQclear(res);
	}
	return ok ? 1 : -1;
}

enum pgcheck_result pgcheck_run(const char *conninfo, int timeout_ms,
				char *errstr, size_t errstr_size)
{
	/* As store.c connects: the conninfo expanded from dbname, then our
	 * application_name. */
	const char *const keywords[] = {"dbname", "application_name", NULL};
	const char *const values[] = {conninfo, "ticketd", NULL};
	int ms = bound_ms(conninfo, timeout_ms);
	long long deadline;
	enum pgcheck_result rc = PGCHECK_DOWN;
	const char *cause;
	char message[768];
	PGconn *conn;
	int step;

	if (ms < 0) {
		snprintf(errstr, errstr_size,
			 "PostgreSQL: pg_conninfo is not a connection string "
			 "libpq can read (its reason is not shown: it may "
			 "quote a password)");
		return PGCHECK_REFUSED;
	}
	deadline = now_ms() + ms;
	conn = PQconnectStartParams(keywords, values, 1);
	if (!conn) {
		snprintf(errstr, errstr_size, "PostgreSQL: out of memory");
		return PGCHECK_DOWN;
	}
	/* The server's SQLSTATE in the message, to tell a refusal from an
	 * outage whatever language the server speaks. */
	PQsetErrorVerbosity(conn, PQERRORS_VERBOSE);
	step = connect_until(conn, deadline);
	if (step == 1)
		step = ping_until(conn, deadline);
	if (step == 1) {
		rc = PGCHECK_OK;
	} else if (step == 0) {
		snprintf(errstr, errstr_size,
			 "PostgreSQL: no answer within %d ms", ms);
	} else {
		one_line(PQerrorMessage(conn), message, sizeof(message));
		rc = pgcheck_classify(PQerrorMessage(conn), &cause);
		snprintf(errstr, errstr_size, "PostgreSQL: %s: %s", cause,
			 message[0] ? message : "(libpq said nothing)");
	}
	PQfinish(conn);
	return rc;
}
