/*
 * Unit tests for the worker pool: every job it is given reaches the
 * publisher exactly once, with a reply, whatever the database or the
 * memory does. Linked with worker.c and the request codec only; the
 * database side (txn_*, pg_*), the publisher and job_free are doubles
 * defined here, and outcome_render is wrapped (-Wl,--wrap) so that a reply
 * can fail to be built on purpose.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <time.h>

#include "availability.h"
#include "config.h"
#include "job.h"
#include "metrics.h"
#include "outcome.h"
#include "pg.h"
#include "publisher.h"
#include "txn.h"
#include "worker.h"

#define JOBS_MAX 32

/* ------------------------------------------------------------ doubles */

/* What the database does with a batch. */
enum script {
	SCRIPT_OK,		 /* everything confirmed */
	SCRIPT_LOCAL_THRICE,	 /* PG_LOCAL three times, then OK */
	SCRIPT_REFUSE_BAD,	 /* PG_REFUSED for any batch holding "bad" */
	SCRIPT_TOO_BIG_OVER_TWO, /* PG_TOO_BIG for more than two */
	SCRIPT_COMMIT_LOST_ONCE	 /* the connection lost during the first
				  * COMMIT (outcome unknown), then OK on
				  * another server */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t published_cond = PTHREAD_COND_INITIALIZER;
static enum script script;
static int txn_calls;
static int local_failures_left;
static int render_failures_left;
static struct job *published[JOBS_MAX];
static int published_count;
static int freed_count;

struct pg {
	int connected;
	int server; /* which server the last connect found: 1, 2, ... */
};

struct pg *txn_pg_new(const char *conninfo)
{
	(void)conninfo;
	return calloc(1, sizeof(struct pg));
}

void pg_free(struct pg *pg)
{
	free(pg);
}

int pg_connected(const struct pg *pg)
{
	return pg->connected;
}

/* A connection lost (SCRIPT_COMMIT_LOST_ONCE) comes back on the next
 * server, as through a multi-host conninfo after a failover. */
int pg_connect(struct pg *pg, char *errstr, size_t errstr_size)
{
	(void)errstr;
	(void)errstr_size;
	pg->connected = 1;
	pg->server++;
	return 0;
}

int pg_server(const struct pg *pg, char *out, size_t out_size)
{
	snprintf(out, out_size, "db%d:5432", pg->server);
	return 0;
}

int __real_outcome_render(struct outcome *outcome, const char *request_id,
			  const char *type_name);
int __wrap_outcome_render(struct outcome *outcome, const char *request_id,
			  const char *type_name);

/* The worker's calls to outcome_render land here. */
int __wrap_outcome_render(struct outcome *outcome, const char *request_id,
			  const char *type_name)
{
	int fail;

	pthread_mutex_lock(&lock);
	fail = render_failures_left > 0;
	if (fail)
		render_failures_left--;
	pthread_mutex_unlock(&lock);
	if (fail)
		return -1; /* as if out of memory */
	return __real_outcome_render(outcome, request_id, type_name);
}

enum pg_status txn_execute(struct pg *pg, const struct ledger_limits *limits,
			   struct request *const *reqs, size_t n,
			   struct outcome *out, struct txn_changes *changes,
			   char *errstr, size_t errstr_size)
{
	enum pg_status rc = PG_OK;

	(void)limits;
	pthread_mutex_lock(&lock);
	txn_calls++;
	if (script == SCRIPT_LOCAL_THRICE && local_failures_left > 0) {
		local_failures_left--;
		rc = PG_LOCAL;
	}
	pthread_mutex_unlock(&lock);
	for (size_t i = 0; rc == PG_OK && i < n; i++) {
		if (script == SCRIPT_REFUSE_BAD &&
		    strcmp(reqs[i]->request_id, "bad") == 0)
			rc = PG_REFUSED;
	}
	if (rc == PG_OK && script == SCRIPT_TOO_BIG_OVER_TWO && n > 2)
		rc = PG_TOO_BIG;
	if (rc == PG_OK && script == SCRIPT_COMMIT_LOST_ONCE &&
	    txn_calls == 1) {
		/* As txn_execute says it: the COMMIT was sent, then the
		 * connection went. */
		changes->commit_unknown = 1;
		pg->connected = 0;
		rc = PG_DISCONNECTED;
	}
	if (rc != PG_OK) {
		snprintf(errstr, errstr_size, "scripted failure %d", (int)rc);
		return rc;
	}
	changes->sections = calloc(1, sizeof(*changes->sections));
	assert_non_null(changes->sections);
	changes->sections[0].section_id = 2;
	changes->sections[0].version = txn_calls;
	changes->count = 1;
	for (size_t i = 0; i < n; i++) {
		out[i].status = STATUS_CONFIRMED;
		out[i].booking_id = (int64_t)i + 1;
		out[i].remaining = 0;
		assert_int_equal(
		    __real_outcome_render(&out[i], reqs[i]->request_id,
					  request_type_name(reqs[i]->type)),
		    0);
	}
	return PG_OK;
}

void txn_changes_clear(struct txn_changes *changes)
{
	free(changes->sections);
	changes->sections = NULL;
	changes->count = 0;
}

static int states_published;

/* The sections' states of every committed batch come here, before its
 * replies. */
void availability_publish(struct availability *av,
			  const struct section_state *states, size_t n)
{
	(void)av;
	pthread_mutex_lock(&lock);
	assert_int_equal(n, 1);
	assert_int_equal(states[0].section_id, 2);
	states_published++;
	pthread_mutex_unlock(&lock);
}

void publisher_send(struct publisher *pub, struct job *job)
{
	(void)pub;
	pthread_mutex_lock(&lock);
	assert_true(published_count < JOBS_MAX);
	published[published_count++] = job;
	pthread_cond_broadcast(&published_cond);
	pthread_mutex_unlock(&lock);
}

/* Jobs are the test's: job_free only counts (the test frees them). */
void job_free(struct job *job)
{
	(void)job;
	pthread_mutex_lock(&lock);
	freed_count++;
	pthread_mutex_unlock(&lock);
}

/* ------------------------------------------------------------ helpers */

struct run {
	struct config cfg;
	struct metrics metrics;
	struct worker_pool *pool;
	struct job jobs[JOBS_MAX];
	int count;
};

static void run_start(struct run *r, enum script what)
{
	char errstr[256];

	memset(r, 0, sizeof(*r));
	pthread_mutex_lock(&lock);
	script = what;
	txn_calls = 0;
	local_failures_left = 3;
	render_failures_left = 0;
	published_count = 0;
	freed_count = 0;
	states_published = 0;
	pthread_mutex_unlock(&lock);
	r->cfg.workers = 1;
	r->cfg.batch_max = 16;
	r->cfg.max_message_bytes = 65536;
	r->cfg.max_quantity = 10;
	r->cfg.max_sections = 10;
	r->cfg.max_section_capacity = 1000;
	r->cfg.hold_ttl_default_s = 60;
	r->cfg.hold_ttl_max_s = 600;
	r->cfg.pg_conninfo = "unused";
	metrics_init(&r->metrics);
	assert_int_equal(worker_pool_start(&r->pool, &r->cfg, NULL, NULL,
					   &r->metrics, errstr, sizeof(errstr)),
			 0);
}

/* Queue a request message (value copied into the job). */
static void queue(struct run *r, const char *value)
{
	struct job *job = &r->jobs[r->count];

	job->partition = 0;
	job->offset = r->count++;
	job->reply_partition = -1;
	job->outcome = OUTCOME_BLANK;
	job->value = strdup(value);
	job->value_len = strlen(value);
	assert_non_null(job->value);
	worker_pool_dispatch(r->pool, job);
}

static void book(struct run *r, const char *request_id)
{
	char json[256];

	snprintf(json, sizeof(json),
		 "{\"type\":\"book\",\"request_id\":\"%s\",\"event_id\":1,"
		 "\"section_id\":2,\"quantity\":1,\"customer\":\"c\"}",
		 request_id);
	queue(r, json);
}

/* Wait (at most 10 s) until `want` jobs were published. */
static void wait_published(int want)
{
	struct timespec deadline;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 10;
	pthread_mutex_lock(&lock);
	while (published_count < want &&
	       pthread_cond_timedwait(&published_cond, &lock, &deadline) == 0)
		;
	pthread_mutex_unlock(&lock);
	assert_int_equal(published_count, want);
}

static void run_stop(struct run *r)
{
	worker_pool_stop(r->pool);
	metrics_destroy(&r->metrics);
	for (int i = 0; i < r->count; i++) {
		free(r->jobs[i].value);
		free(r->jobs[i].dead_letter_reason);
		outcome_clear(&r->jobs[i].outcome);
	}
}

/* The job published at position i, by offset. */
static struct job *published_at(int i)
{
	assert_true(i < published_count);
	return published[i];
}

/* -------------------------------------------------------------- tests */

static void test_every_job_reaches_the_publisher_in_order(void **state)
{
	struct run r;

	(void)state;
	run_start(&r, SCRIPT_OK);
	book(&r, "a");
	queue(&r, "{not json");
	book(&r, "b");
	queue(&r, "{\"type\":\"book\",\"request_id\":\"c\"}");
	book(&r, "d");
	wait_published(5);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(published_at(i)->offset, i);
		assert_non_null(published_at(i)->outcome.reply);
	}
	assert_int_equal(published_at(0)->outcome.status, STATUS_CONFIRMED);
	assert_int_equal(published_at(1)->outcome.error, ERROR_MALFORMED_JSON);
	assert_true(published_at(1)->dead_letter);
	assert_int_equal(published_at(3)->outcome.error, ERROR_INVALID_FIELD);
	assert_int_equal(freed_count, 0);
	/* One state a committed batch, none for a failed one. */
	assert_int_equal(states_published, txn_calls);
	run_stop(&r);
}

/* A failure of ticketd's own (out of memory, a stored record that does
 * not parse) is waited out and run again: never split down to a request
 * answered "the database refused the request". */
static void test_a_local_failure_is_retried_never_answered(void **state)
{
	struct run r;

	(void)state;
	run_start(&r, SCRIPT_LOCAL_THRICE);
	book(&r, "a");
	book(&r, "b");
	wait_published(2);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(published_at(i)->outcome.status,
				 STATUS_CONFIRMED);
		assert_int_equal(published_at(i)->outcome.error, ERROR_NONE);
	}
	assert_int_equal(atomic_load(&r.metrics.local_failures), 3);
	assert_int_equal(atomic_load(&r.metrics.batch_splits), 0);
	assert_true(txn_calls >= 4);
	run_stop(&r);
}

/* A reply that cannot be built (no memory for it) is built again later;
 * the job is never dropped, so its offset can still be committed. */
static void test_a_reply_that_cannot_be_built_is_not_dropped(void **state)
{
	struct run r;

	(void)state;
	run_start(&r, SCRIPT_OK);
	pthread_mutex_lock(&lock);
	render_failures_left = 2;
	pthread_mutex_unlock(&lock);
	queue(&r, "{\"type\":\"nope\",\"request_id\":\"x\"}");
	book(&r, "a");
	wait_published(2);
	assert_int_equal(published_at(0)->outcome.error, ERROR_UNKNOWN_TYPE);
	assert_non_null(published_at(0)->outcome.reply);
	assert_int_equal(published_at(1)->outcome.status, STATUS_CONFIRMED);
	assert_int_equal(freed_count, 0);
	assert_int_equal(atomic_load(&r.metrics.local_failures), 2);
	run_stop(&r);
}

/* A request the database refuses is found by halving, and only it is
 * answered invalid. */
static void test_a_refused_request_is_isolated(void **state)
{
	struct run r;

	(void)state;
	run_start(&r, SCRIPT_REFUSE_BAD);
	book(&r, "a");
	book(&r, "bad");
	book(&r, "c");
	wait_published(3);
	assert_int_equal(published_at(0)->outcome.status, STATUS_CONFIRMED);
	assert_int_equal(published_at(1)->outcome.status, STATUS_INVALID);
	assert_int_equal(published_at(1)->outcome.error, ERROR_INVALID_FIELD);
	assert_non_null(strstr(published_at(1)->outcome.reply,
			       "the database refused the request"));
	assert_int_equal(published_at(2)->outcome.status, STATUS_CONFIRMED);
	run_stop(&r);
}

/* Out of a server resource: the batch runs in halves, nobody is refused. */
static void test_a_batch_too_big_runs_in_halves(void **state)
{
	struct run r;
	char id[16];

	(void)state;
	run_start(&r, SCRIPT_TOO_BIG_OVER_TWO);
	for (int i = 0; i < 7; i++) {
		snprintf(id, sizeof(id), "r%d", i);
		book(&r, id);
	}
	wait_published(7);
	for (int i = 0; i < 7; i++)
		assert_int_equal(published_at(i)->outcome.status,
				 STATUS_CONFIRMED);
	run_stop(&r);
}

/* A connection lost during COMMIT (its outcome unknown) is not answered:
 * the worker reconnects (finding another server, counted as a failover)
 * and runs the same batch again, whose replies then go out once. */
static void test_a_commit_lost_runs_the_batch_again(void **state)
{
	struct run r;

	(void)state;
	run_start(&r, SCRIPT_COMMIT_LOST_ONCE);
	book(&r, "a");
	book(&r, "b");
	wait_published(2);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(published_at(i)->offset, i);
		assert_int_equal(published_at(i)->outcome.status,
				 STATUS_CONFIRMED);
	}
	assert_int_equal(txn_calls, 2);
	assert_int_equal(atomic_load(&r.metrics.db_commit_unknown), 1);
	assert_int_equal(atomic_load(&r.metrics.db_reconnects), 2);
	assert_int_equal(atomic_load(&r.metrics.db_server_changes), 1);
	assert_int_equal(atomic_load(&r.metrics.batch_splits), 0);
	assert_int_equal(states_published, 1);
	run_stop(&r);
	assert_int_equal(published_count, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_job_reaches_the_publisher_in_order),
	    cmocka_unit_test(test_a_local_failure_is_retried_never_answered),
	    cmocka_unit_test(test_a_reply_that_cannot_be_built_is_not_dropped),
	    cmocka_unit_test(test_a_refused_request_is_isolated),
	    cmocka_unit_test(test_a_batch_too_big_runs_in_halves),
	    cmocka_unit_test(test_a_commit_lost_runs_the_batch_again),
	};

	return cmocka_run_group_tests_name("worker", tests, NULL, NULL);
}
