/* Unit tests for pgcheck: what a failed connection's message means, and
 * that the bound holds against a server that never answers. Links only
 * pgcheck.o and libpq; the sockets are on loopback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "pgcheck.h"

#define PREFIX "connection to server at \"127.0.0.1\", port 5432 failed: "

static void expect(const char *message, enum pgcheck_result want,
		   const char *in_cause)
{
	const char *cause = NULL;
	enum pgcheck_result got = pgcheck_classify(message, &cause);

	if (got != want)
		fail_msg("%s: %d, not %d", message, got, want);
	assert_non_null(cause);
	if (in_cause && !strstr(cause, in_cause))
		fail_msg("%s: cause \"%s\" does not say \"%s\"", message, cause,
			 in_cause);
}

static void test_refusals(void **state)
{
	(void)state;
	expect(PREFIX
	       "FATAL:  28P01: password authentication failed for "
	       "user \"ticketd_tls\"\nLOCATION:  auth_failed, auth.c:323\n",
	       PGCHECK_REFUSED, "password");
	expect(PREFIX
	       "FATAL:  28000: pg_hba.conf rejects connection for host "
	       "\"127.0.0.1\", user \"u\", database \"d\", no encryption\n",
	       PGCHECK_REFUSED, "TLS");
	expect(PREFIX "FATAL:  28000: role \"nobody\" does not exist\n",
	       PGCHECK_REFUSED, "pg_hba.conf");
	expect(PREFIX "FATAL:  42501: permission denied for database \"d\"\n",
	       PGCHECK_REFUSED, "may not connect");
	expect(PREFIX "fe_sendauth: no password supplied\n", PGCHECK_REFUSED,
	       "pg_passfile");
	expect(PREFIX "SSL error: certificate verify failed\n", PGCHECK_REFUSED,
	       "sslrootcert");
	expect(PREFIX "server certificate for \"localhost\" does not match "
		      "host name \"127.0.0.2\"\n",
	       PGCHECK_REFUSED, "name");
	expect(PREFIX "server does not support SSL, but SSL was required\n",
	       PGCHECK_REFUSED, "TLS");
	expect(PREFIX "root certificate file \"/x.crt\" does not exist\n",
	       PGCHECK_REFUSED, "sslrootcert");
	/* Two tries (sslmode=prefer, or two hosts): the refusal counts. */
	expect(PREFIX
	       "FATAL:  57P03: the database system is starting up\n"
	       "connection to server at \"127.0.0.2\", port 5432 failed: "
	       "FATAL:  28P01: password authentication failed\n",
	       PGCHECK_REFUSED, "password");
	/* The server's language does not matter, its SQLSTATE does. */
	expect(PREFIX "FATAL:  28P01: Passwort-Authentifizierung für Benutzer "
		      "»u« fehlgeschlagen\n",
	       PGCHECK_REFUSED, "password");
}

static void test_passing_failures(void **state)
{
	(void)state;
	expect(PREFIX "Connection refused\n\tIs the server running on that "
		      "host and accepting TCP/IP connections?\n",
	       PGCHECK_DOWN, NULL);
	expect(PREFIX "FATAL:  57P03: the database system is starting up\n",
	       PGCHECK_DOWN, NULL);
	expect(PREFIX "FATAL:  53300: sorry, too many clients already\n",
	       PGCHECK_DOWN, NULL);
	expect(PREFIX "FATAL:  3D000: database \"x\" does not exist\n",
	       PGCHECK_DOWN, NULL);
	expect("could not translate host name \"db\" to address: Name or "
	       "service not known\n",
	       PGCHECK_DOWN, NULL);
	expect(PREFIX "server closed the connection unexpectedly\n",
	       PGCHECK_DOWN, NULL);
	expect("timeout expired\n", PGCHECK_DOWN, NULL);
	expect("", PGCHECK_DOWN, NULL);
}

static void test_unreadable_conninfo_shows_nothing_of_it(void **state)
{
	char errstr[512];

	(void)state;
	assert_int_equal(pgcheck_run("host=127.0.0.1 password=Plan ted", 1000,
				     errstr, sizeof(errstr)),
			 PGCHECK_REFUSED);
	assert_non_null(strstr(errstr, "PostgreSQL"));
	assert_null(strstr(errstr, "ted"));
	assert_int_equal(
	    pgcheck_run("host='unterminated", 1000, errstr, sizeof(errstr)),
	    PGCHECK_REFUSED);
}

static double seconds_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) +
	       (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* A loopback port that takes connections (the kernel completes them) and
 * never says a word: a host that stopped answering. */
static int silent_listener(int *port)
{
	struct sockaddr_in addr = {.sin_family = AF_INET};
	socklen_t len = sizeof(addr);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
	*port = ntohs(addr.sin_port);
	return fd;
}

static void test_bound_holds_against_a_silent_server(void **state)
{
	struct timespec t0;
	char conninfo[128], errstr[512];
	int port, fd = silent_listener(&port);
	double took;

	(void)state;
	snprintf(conninfo, sizeof(conninfo),
		 "host=127.0.0.1 port=%d dbname=x user=x connect_timeout=30",
		 port);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(pgcheck_run(conninfo, 300, errstr, sizeof(errstr)),
			 PGCHECK_DOWN);
	took = seconds_since(&t0);
	if (took < 0.25 || took > 1.0)
		fail_msg("took %.3f s against a bound of 0.3 s", took);
	assert_non_null(strstr(errstr, "no answer within 300 ms"));

	/* Without a bound of its own: the conninfo's connect_timeout. */
	snprintf(conninfo, sizeof(conninfo),
		 "host=127.0.0.1 port=%d dbname=x user=x connect_timeout=2",
		 port);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(pgcheck_run(conninfo, 0, errstr, sizeof(errstr)),
			 PGCHECK_DOWN);
	took = seconds_since(&t0);
	if (took < 1.9 || took > 3.0)
		fail_msg("took %.3f s against connect_timeout=2", took);
	close(fd);
}

static void test_closed_port_is_down_at_once(void **state)
{
	struct timespec t0;
	char conninfo[128], errstr[512];
	int port, fd = silent_listener(&port);

	(void)state;
	close(fd); /* nothing listens there now */
	snprintf(conninfo, sizeof(conninfo),
		 "host=127.0.0.1 port=%d dbname=x user=x", port);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(pgcheck_run(conninfo, 3000, errstr, sizeof(errstr)),
			 PGCHECK_DOWN);
	assert_true(seconds_since(&t0) < 1.0);
	assert_non_null(strstr(errstr, "PostgreSQL: not reachable"));
	assert_non_null(strstr(errstr, "refused"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_passing_failures),
	    cmocka_unit_test(test_unreadable_conninfo_shows_nothing_of_it),
	    cmocka_unit_test(test_bound_holds_against_a_silent_server),
	    cmocka_unit_test(test_closed_port_is_down_at_once),
	};

	return cmocka_run_group_tests_name("pgcheck", tests, NULL, NULL);
}
