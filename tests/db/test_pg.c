/*
 * src/pg.c against a real PostgreSQL ($TICKETD_PG; the system tests run
 * this with the stack's, tests/system/test_own_failures.py): pipelines in
 * order, a pipeline's bound checked before anything past it is sent, and
 * the classification of every kind of failure. Linked with pg.c and libpq
 * only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pg.h"

enum test_statement {
	T_ECHO,
	T_MARK,
	T_READ_MARK,
	T_RAISE,
	T_COUNT,
};

static const struct pg_statement statements[T_COUNT] = {
    [T_ECHO] = {"t_echo", 1, "SELECT $1::int"},
    /* Leaves a trace in the session: did the server run it? */
    [T_MARK] = {"t_mark", 0,
		"SELECT set_config('ticketd_test.mark', 'ran', false)"},
    [T_READ_MARK] = {"t_read_mark", 0,
		     "SELECT coalesce(current_setting('ticketd_test.mark', "
		     "true), '')"},
    /* A failure with the SQLSTATE given. */
    [T_RAISE] = {"t_raise", 0,
		 "DO $$ BEGIN RAISE EXCEPTION 'scripted' USING ERRCODE = "
		 "current_setting('ticketd_test.code'); END $$",
		 1},
};

static struct pg *connect_or_fail(void)
{
	const char *conninfo = getenv("TICKETD_PG");
	char errstr[512];
	struct pg *pg;

	if (!conninfo || !*conninfo)
		fail_msg("TICKETD_PG is not set: this test needs a server");
	pg = pg_new(conninfo, statements, T_COUNT);
	assert_non_null(pg);
	if (pg_connect(pg, errstr, sizeof(errstr)) != 0)
		fail_msg("%s", errstr);
	return pg;
}

static char *mark(struct pg *pg)
{
	PGresult *res = NULL;
	char errstr[512];
	char *value;

	assert_int_equal(
	    pg_run(pg, T_READ_MARK, NULL, &res, errstr, sizeof(errstr)), PG_OK);
	value = strdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	return value;
}

static void test_a_pipeline_returns_results_in_order(void **state)
{
	struct pg *pg = connect_or_fail();
	struct pg_pipeline p;
	char texts[PG_PIPELINE_MAX][8];
	char errstr[512];

	(void)state;
	assert_int_equal(pg_pipeline_start(&p, pg, errstr, sizeof(errstr)), 0);
	for (int i = 0; i < PG_PIPELINE_MAX; i++) {
		const char *params[1] = {texts[i]};

		snprintf(texts[i], sizeof(texts[i]), "%d", i * 7);
		assert_int_equal(pg_pipeline_send(&p, T_ECHO, params),
				 (size_t)i);
	}
	assert_int_equal(pg_pipeline_run(&p, errstr, sizeof(errstr)), PG_OK);
	for (int i = 0; i < PG_PIPELINE_MAX; i++)
		assert_int_equal(pg_int(p.results[i], 0, 0), i * 7);
	pg_pipeline_clear(&p);
	assert_true(pg_ping(pg));
	pg_free(pg);
}

/* One statement past the bound is refused before it is sent: the server
 * never runs it, nothing shifts, the connection stays good. */
static void test_a_pipeline_past_its_bound_sends_nothing_more(void **state)
{
	struct pg *pg = connect_or_fail();
	struct pg_pipeline p;
	const char *params[1] = {"1"};
	char errstr[512];
	char *value;

	(void)state;
	assert_int_equal(pg_pipeline_start(&p, pg, errstr, sizeof(errstr)), 0);
	for (int i = 0; i < PG_PIPELINE_MAX; i++)
		pg_pipeline_send(&p, T_ECHO, params);
	pg_pipeline_send(&p, T_MARK, NULL);
	assert_int_equal(pg_pipeline_run(&p, errstr, sizeof(errstr)), PG_LOCAL);
	assert_non_null(strstr(errstr, "pipeline too long"));
	assert_true(pg_connected(pg));
	value = mark(pg);
	assert_string_equal(value, "");
	free(value);
	pg_free(pg);
}

static enum pg_status raise_code(struct pg *pg, const char *sqlstate,
				 char *errstr, size_t errstr_size)
{
	char set[128];
	enum pg_status rc;

	snprintf(set, sizeof(set), "SET ticketd_test.code = '%s'", sqlstate);
	assert_int_equal(pg_command(pg, set, errstr, errstr_size), PG_OK);
	rc = pg_run(pg, T_RAISE, NULL, NULL, errstr, errstr_size);
	return rc;
}

/* What each failure means for the batch that met it. */
static void test_failures_are_classified(void **state)
{
	static const struct {
		const char *sqlstate;
		enum pg_status want;
	} cases[] = {
	    {"40001", PG_RETRY},   /* serialization failure */
	    {"40P01", PG_RETRY},   /* deadlock */
	    {"23505", PG_RETRY},   /* a key race: the loser finds the row */
	    {"55P03", PG_RETRY},   /* lock not available */
	    {"53200", PG_TOO_BIG}, /* out of memory on the server */
	    {"53100", PG_TOO_BIG}, /* disk full */
	    {"23514", PG_REFUSED}, /* a CHECK constraint */
	    {"22003", PG_REFUSED}, /* a value out of range */
	};
	struct pg *pg = connect_or_fail();
	char errstr[512];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum pg_status rc =
		    raise_code(pg, cases[i].sqlstate, errstr, sizeof(errstr));

		if (rc != cases[i].want)
			fail_msg("%s: got %d, wanted %d (%s)",
				 cases[i].sqlstate, (int)rc, (int)cases[i].want,
				 errstr);
		assert_non_null(strstr(errstr, cases[i].sqlstate));
		assert_null(strchr(errstr, '\n'));
	}
	pg_free(pg);
}

/* A connection the server ended is PG_DISCONNECTED, and pg_connect mends
 * it. */
static void test_a_lost_connection_is_disconnected(void **state)
{
	struct pg *pg = connect_or_fail();
	char errstr[512];

	(void)state;
	assert_int_equal(pg_command(pg,
				    "SELECT pg_terminate_backend("
				    "pg_backend_pid())",
				    errstr, sizeof(errstr)),
			 PG_DISCONNECTED);
	assert_false(pg_connected(pg));
	assert_int_equal(pg_connect(pg, errstr, sizeof(errstr)), 0);
	assert_true(pg_ping(pg));
	pg_free(pg);
}

/* A server that takes no writes (a standby; here a read-only session) is
 * given up like a lost connection, so that the next pg_connect looks for
 * the primary, never taken as a refusal of the requests. pg_server names
 * the server connected to. */
static void test_a_read_only_server_is_disconnected(void **state)
{
	struct pg *pg = connect_or_fail();
	char errstr[512], server[160];

	(void)state;
	assert_int_equal(pg_server(pg, server, sizeof(server)), 0);
	assert_non_null(strchr(server, ':'));
	assert_int_equal(pg_command(pg,
				    "SET default_transaction_read_only = on",
				    errstr, sizeof(errstr)),
			 PG_OK);
	assert_int_equal(pg_command(pg, "CREATE TEMP TABLE t_ro (x int)",
				    errstr, sizeof(errstr)),
			 PG_DISCONNECTED);
	assert_non_null(strstr(errstr, "25006"));
	assert_false(pg_connected(pg));
	assert_int_equal(pg_server(pg, server, sizeof(server)), -1);
	assert_int_equal(pg_connect(pg, errstr, sizeof(errstr)), 0);
	assert_int_equal(pg_command(pg, "CREATE TEMP TABLE t_ro (x int)",
				    errstr, sizeof(errstr)),
			 PG_OK);
	pg_free(pg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_a_pipeline_returns_results_in_order),
	    cmocka_unit_test(test_a_pipeline_past_its_bound_sends_nothing_more),
	    cmocka_unit_test(test_failures_are_classified),
	    cmocka_unit_test(test_a_lost_connection_is_disconnected),
	    cmocka_unit_test(test_a_read_only_server_is_disconnected),
	};

	return cmocka_run_group_tests_name("pg", tests, NULL, NULL);
}
