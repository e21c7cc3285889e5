/*
 * pgcheck: does PostgreSQL take ticketd as configured? One new connection
 * and a SELECT 1 within a bound, and what a failure means: refused for good
 * (credentials, TLS) or not reachable now.
 */
#ifndef TICKETD_PGCHECK_H
#define TICKETD_PGCHECK_H

#include <stddef.h>

enum pgcheck_result {
	PGCHECK_OK,
	PGCHECK_DOWN,	 /* not reachable, no answer in time, starting up,
			  * out of connections: it may pass */
	PGCHECK_REFUSED, /* credentials or TLS refused, or a connection
			  * string libpq cannot read: it will not pass by
			  * trying again */
};

/*
 * Connect with conninfo as the workers do (application_name ticketd) and
 * run SELECT 1, all within timeout_ms (0: the conninfo's connect_timeout,
 * else 5 s). Not PGCHECK_OK: errstr says "PostgreSQL: " what is wrong and
 * libpq's message, never a password. A host name is resolved before the
 * clock can stop it (libpq's getaddrinfo blocks).
 */
enum pgcheck_result pgcheck_run(const char *conninfo, int timeout_ms,
				char *errstr, size_t errstr_size);

/*
 * What libpq's message of a failed connection (made with PQERRORS_VERBOSE,
 * so that the server's SQLSTATE is in it) means; *cause is a static text
 * saying what is wrong in words. Exposed for the unit tests.
 */
enum pgcheck_result pgcheck_classify(const char *message, const char **cause);

#endif
