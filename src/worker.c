/*
 * worker: the pool of worker threads. Each has its own queue and its own
 * PostgreSQL connection, and runs what is queued as one batch transaction.
 *
 * At low load a batch is the one request that arrived, so latency stays
 * that of one transaction; under load everything that queued up while the
 * last transaction ran goes into the next, so one lock and one commit
 * serve many requests. No artificial wait is ever added.
 */
#include "worker.h"

#include "availability.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "publisher.h"
#include "txn.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct worker {
	struct worker_pool *pool;
	int index;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct job *head, *tail; /* guarded by lock */
	atomic_size_t depth;
	struct pg *pg;
	unsigned int seed; /* for jittered pauses */
	int db_down;
	int64_t db_down_since_us;
	int64_t db_last_log_us;
	struct job **batch;	  /* batch_max entries */
	struct request *parsed;	  /* batch_max entries, batch[i]'s request */
	struct request **reqs;	  /* batch_max entries */
	struct job **valid_jobs;  /* batch_max entries */
	struct outcome *outcomes; /* batch_max entries, blank between batches */
};

struct worker_pool {
	const struct config *cfg;
	struct publisher *pub;
	struct availability *av;
	struct metrics *metrics;
	struct request_limits limits;
	struct ledger_limits ledger_limits;
	atomic_int stopping;
	int count;
	struct worker *workers;
};

/* FNV-1a: stable across processes, so the routing is too. */
static uint32_t hash_bytes(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 16777619u;
	}
	return h;
}

void worker_pool_dispatch(struct worker_pool *pool, struct job *job)
{
	uint32_t h = job->key ? hash_bytes(job->key, job->key_len)
			      : (uint32_t)job->partition;
	struct worker *w = &pool->workers[h % (uint32_t)pool->count];

	job->next = NULL;
	pthread_mutex_lock(&w->lock);
	if (w->tail)
		w->tail->next = job;
	else
		w->head = job;
	w->tail = job;
	atomic_fetch_add(&w->depth, 1);
	atomic_fetch_add(&pool->metrics->queue_depth, 1);
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
}

size_t worker_pool_max_depth(struct worker_pool *pool)
{
	size_t max = 0;

	for (int i = 0; i < pool->count; i++) {
		size_t d = atomic_load(&pool->workers[i].depth);

		if (d > max)
			max = d;
	}
	return max;
}

int worker_pool_db_ready(struct worker_pool *pool)
{
	return atomic_load(&pool->metrics->workers_db_down) == 0;
}

/* Take up to batch_max jobs, waiting for one. 0 when stopping. */
static size_t take_batch(struct worker *w)
{
	size_t n = 0;
	size_t max = (size_t)w->pool->cfg->batch_max;

	pthread_mutex_lock(&w->lock);
	while (!w->head && !atomic_load(&w->pool->stopping))
		pthread_cond_wait(&w->wake, &w->lock);
	if (!atomic_load(&w->pool->stopping)) {
		while (w->head && n < max) {
			w->batch[n++] = w->head;
			w->head = w->head->next;
		}
		if (!w->head)
			w->tail = NULL;
	}
	pthread_mutex_unlock(&w->lock);
	atomic_fetch_sub(&w->depth, n);
	atomic_fetch_sub(&w->pool->metrics->queue_depth, (long long)n);
	return n;
}

static void set_db_down(struct worker *w, int down, const char *why)
{
	int64_t now = clock_now_us();

	if (down && !w->db_down) {
		w->db_down = 1;
		w->db_down_since_us = now;
		w->db_last_log_us = now;
		atomic_fetch_add(&w->pool->metrics->workers_db_down, 1);
		log_warn("worker %d: database unavailable: %s; retrying",
			 w->index, why);
	} else if (down && now - w->db_last_log_us > 30000000) {
		w->db_last_log_us = now;
		log_warn(
		    "worker %d: database still unavailable after %llds: %s",
		    w->index,
		    (long long)((now - w->db_down_since_us) / 1000000), why);
	} else if (!down && w->db_down) {
		w->db_down = 0;
		atomic_fetch_sub(&w->pool->metrics->workers_db_down, 1);
		log_info("worker %d: database connection back after %lldms",
			 w->index,
			 (long long)((now - w->db_down_since_us) / 1000));
	}
}

/* A pause of about ms (0.75 to 1.25 times), so that the workers of every
 * process do not all knock on the new primary in the same instant. */
static int jittered_ms(struct worker *w, int ms)
{
	return ms * (75 + (int)(rand_r(&w->seed) % 51)) / 100;
}

/* Which server a new connection found: a failover when it is another
 * than the workers' connections had. */
static void note_server(struct worker *w)
{
	char server[160], before[160];

	if (pg_server(w->pg, server, sizeof(server)) != 0)
		return;
	metrics_db_server(w->pool->metrics, before, sizeof(before));
	if (metrics_db_server_set(w->pool->metrics, server))
		log_warn("worker %d: the database is now %s (was %s): a "
			 "failover",
			 w->index, server, before);
	else
		log_debug("worker %d: connected to %s", w->index, server);
}

/*
 * Connect, waiting with a growing pause (50 ms to 2 s, jittered) between
 * tries: a failover's new primary takes writes a few seconds after the old
 * one died, and a longer pause would only add to that. Through a
 * multi-host conninfo every try goes over the hosts in order (with
 * target_session_attrs=read-write, to the one that takes writes). 0 once
 * connected, -1 when the pool stops first.
 */
static int ensure_connected(struct worker *w)
{
	int pause_ms = 50;
	char errstr[512];

	while (!pg_connected(w->pg)) {
		if (atomic_load(&w->pool->stopping))
			return -1;
		if (pg_connect(w->pg, errstr, sizeof(errstr)) == 0) {
			atomic_fetch_add(&w->pool->metrics->db_reconnects, 1);
			note_server(w);
			break;
		}
		set_db_down(w, 1, errstr);
		clock_sleep_ms(jittered_ms(w, pause_ms));
		pause_ms = pause_ms * 2 > 2000 ? 2000 : pause_ms * 2;
	}
	set_db_down(w, 0, NULL);
	return 0;
}

/*
 * Wait before trying again after a failure of ours (out of memory, a
 * stored record that does not parse), growing the pause to 5 s, logging
 * the first and then every 30 s. 0 to try again, -1 when the pool stops
 * first.
 */
static int wait_after_local_failure(struct worker *w, int *pause_ms,
				    int64_t *logged_us, const char *what,
				    const char *why)
{
	int64_t now = clock_now_us();

	atomic_fetch_add(&w->pool->metrics->local_failures, 1);
	if (*logged_us == 0 || now - *logged_us > 30000000) {
		log_error("worker %d: %s: %s; trying again, nothing answered",
			  w->index, what, why);
		*logged_us = now;
	}
	if (atomic_load(&w->pool->stopping))
		return -1;
	clock_sleep_ms(*pause_ms);
	*pause_ms = *pause_ms * 2 > 5000 ? 5000 : *pause_ms * 2;
	return 0;
}

/*
 * The reply text of a job decided without the database (a refusal of the
 * parser, or of the database itself): rendered, waiting out a lack of
 * memory rather than dropping the job. 0, or -1 when the pool stops first.
 */
static int render_reply(struct worker *w, struct job *job,
			const char *request_id, const char *type_name)
{
	int pause_ms = 10;
	int64_t logged_us = 0;

	while (outcome_render(&job->outcome, request_id, type_name) != 0) {
		if (wait_after_local_failure(w, &pause_ms, &logged_us,
					     "building a reply",
					     "out of memory") != 0)
			return -1;
	}
	return 0;
}

/* The database refused this one request: it is answered invalid, with the
 * server's reason. 0, or -1 when the pool stops first. */
static int refuse_in_database(struct worker *w, struct job *job,
			      const struct request *req, const char *why)
{
	outcome_clear(&job->outcome);
	outcome_set_error(&job->outcome, ERROR_INVALID_FIELD,
			  "the database refused the request: %s", why);
	return render_reply(w, job, req->request_id,
			    request_type_name(req->type));
}

/*
 * Run jobs[0..n) as one transaction, again after a retryable error or a
 * failure of ours (never answering those), split in halves after a
 * refusal so that one bad request cannot sink the rest, and after running
 * out of a server resource (a single request then waits and runs again: a
 * full lock table is no fault of its). 0 when every job has its outcome,
 * -1 when the pool stopped first.
 */
static int execute(struct worker *w, struct job **jobs, struct request **reqs,
		   size_t n)
{
	struct metrics *m = w->pool->metrics;
	int pause_ms = 1, local_pause_ms = 10;
	int64_t local_logged_us = 0;
	char errstr[1024];

	for (;;) {
		struct txn_changes changes = {NULL, 0, 0};
		enum pg_status rc;
		int64_t started;

		if (ensure_connected(w) != 0)
			return -1;
		started = clock_now_us();
		rc = txn_execute(w->pg, &w->pool->ledger_limits, reqs, n,
				 w->outcomes, &changes, errstr, sizeof(errstr));
		if (rc == PG_OK) {
			/* Committed: the sections' new states go out first,
			 * without waiting on Kafka. */
			availability_publish(w->pool->av, changes.sections,
					     changes.count);
			txn_changes_clear(&changes);
			histogram_observe(&m->transaction_seconds,
					  (double)(clock_now_us() - started) /
					      1e6);
			histogram_observe(&m->batch_size, (double)n);
			for (size_t i = 0; i < n; i++) {
				if (w->outcomes[i].replayed)
					atomic_fetch_add(&m->replayed, 1);
				outcome_clear(&jobs[i]->outcome);
				jobs[i]->outcome = w->outcomes[i];
				w->outcomes[i] = OUTCOME_BLANK;
			}
			return 0;
		}
		if (rc == PG_DISCONNECTED) {
			/* Nothing was answered yet: the batch runs again as
			 * it is. After a COMMIT whose outcome is unknown, its
			 * idempotency records (if it committed) make that run
			 * a replay with the same replies. */
			if (changes.commit_unknown) {
				atomic_fetch_add(&m->db_commit_unknown, 1);
				log_warn(
				    "worker %d: connection lost during the "
				    "COMMIT of a batch of %zu (%s); running "
				    "it again, its idempotency records "
				    "decide",
				    w->index, n, errstr);
			}
			txn_changes_clear(&changes);
			set_db_down(w, 1, errstr);
			continue;
		}
		if (rc == PG_LOCAL) {
			/* Nothing committed, and nothing the database said
			 * is wrong with the requests: answering them now
			 * could give a repeat of one a different answer. */
			if (wait_after_local_failure(
				w, &local_pause_ms, &local_logged_us,
				"a batch failed in ticketd", errstr) != 0)
				return -1;
			continue;
		}
		if (rc == PG_RETRY || (rc == PG_TOO_BIG && n == 1)) {
			atomic_fetch_add(&m->batch_retries, 1);
			if (rc == PG_TOO_BIG && pause_ms == 1)
				log_warn(
				    "worker %d: partition %d offset %lld%s "
				    "waits for the database: %s",
				    w->index, (int)jobs[0]->partition,
				    (long long)jobs[0]->offset, jobs[0]->trace,
				    errstr);
			else
				log_debug("worker %d: batch of %zu retried: %s",
					  w->index, n, errstr);
			if (atomic_load(&w->pool->stopping))
				return -1;
			clock_sleep_ms(pause_ms);
			pause_ms = pause_ms * 2 > 200 ? 200 : pause_ms * 2;
			continue;
		}
		/* PG_REFUSED, or PG_TOO_BIG for more than one */
		if (rc == PG_REFUSED && n == 1) {
			log_warn("worker %d: partition %d offset %lld%s "
				 "refused by the database: %s",
				 w->index, (int)jobs[0]->partition,
				 (long long)jobs[0]->offset, jobs[0]->trace,
				 errstr);
			return refuse_in_database(w, jobs[0], reqs[0], errstr);
		}
		atomic_fetch_add(&m->batch_splits, 1);
		log_info("worker %d: batch of %zu failed (%s); splitting it",
			 w->index, n, errstr);
		if (execute(w, jobs, reqs, n / 2) != 0)
			return -1;
		return execute(w, jobs + n / 2, reqs + n / 2, n - n / 2);
	}
}

/*
 * Parse each job; a refusal is answered here, without the database. 0, or
 * -1 when the pool stops first.
 */
static int parse_jobs(struct worker *w, size_t n)
{
	struct worker_pool *pool = w->pool;

	for (size_t i = 0; i < n; i++) {
		struct job *job = w->batch[i];
		struct request *req = &w->parsed[i];
		struct request_error err;

		job->type = REQUEST_TYPE_COUNT;
		if (request_parse(job->value, job->value_len, &pool->limits,
				  req, &err) == 0) {
			job->valid = 1;
			job->type = (int)req->type;
			if (!job->reply_topic[0] && req->reply_to[0])
				memcpy(job->reply_topic, req->reply_to,
				       sizeof(job->reply_topic));
			continue;
		}
		if (!job->reply_topic[0] && err.reply_to[0])
			memcpy(job->reply_topic, err.reply_to,
			       sizeof(job->reply_topic));
		outcome_set_error(&job->outcome, err.code, "%s", err.message);
		if (render_reply(w, job, err.request_id, err.type_name) != 0)
			return -1;
		/* What cannot be read as a request at all is kept for a
		 * human: a copy goes to the dead-letter topic. */
		if (err.code == ERROR_MALFORMED_JSON ||
		    err.code == ERROR_MESSAGE_TOO_LARGE) {
			job->dead_letter = 1;
			if (asprintf(&job->dead_letter_reason, "%s: %s",
				     request_error_code_name(err.code),
				     err.message) < 0)
				job->dead_letter_reason = NULL;
		}
		log_debug("partition %d offset %lld%s: %s: %s",
			  (int)job->partition, (long long)job->offset,
			  job->trace, request_error_code_name(err.code),
			  err.message);
	}
	return 0;
}

/* Free the batch's parsed requests, and with drop its jobs too: the pool
 * is stopping and nothing of them was answered (Kafka redelivers them). */
static void batch_release(struct worker *w, size_t n, int drop)
{
	for (size_t i = 0; i < n; i++) {
		request_free(&w->parsed[i]);
		if (drop)
			job_free(w->batch[i]);
	}
}

static void process_batch(struct worker *w, size_t n)
{
	size_t valid = 0;
	struct metrics *m = w->pool->metrics;

	memset(w->parsed, 0, n * sizeof(*w->parsed));
	if (parse_jobs(w, n) != 0) {
		batch_release(w, n, 1);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (w->batch[i]->valid) {
			w->valid_jobs[valid] = w->batch[i];
			w->reqs[valid] = &w->parsed[i];
			valid++;
		}
	}
	if (valid && execute(w, w->valid_jobs, w->reqs, valid) != 0) {
		batch_release(w, n, 1);
		return;
	}
	batch_release(w, n, 0);
	/* Replies in arrival order: per section, the order of requests.
	 * Every job has its reply text here (txn_execute renders them before
	 * COMMIT, render_reply waits for the rest). */
	for (size_t i = 0; i < n; i++) {
		struct job *job = w->batch[i];

		metrics_count_request(m, job->type, job->outcome.status);
		publisher_send(w->pool->pub, job);
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	size_t n;

	while ((n = take_batch(w)) > 0)
		process_batch(w, n);
	return NULL;
}

static void worker_release(struct worker *w)
{
	struct job *job = w->head;

	while (job) {
		struct job *next = job->next;

		job_free(job);
		job = next;
	}
	pg_free(w->pg);
	free(w->batch);
	free(w->parsed);
	free(w->reqs);
	free(w->valid_jobs);
	if (w->outcomes && w->pool) {
		for (size_t i = 0; i < (size_t)w->pool->cfg->batch_max; i++)
			outcome_clear(&w->outcomes[i]);
	}
	free(w->outcomes);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->wake);
}

int worker_pool_start(struct worker_pool **out, const struct config *cfg,
		      struct publisher *pub, struct availability *av,
		      struct metrics *metrics, char *errstr, size_t errstr_size)
{
	struct worker_pool *pool;
	size_t bmax = (size_t)cfg->batch_max;
	int started = 0;

	/* workers = 0 is resolved to a count before the pool starts. */
	if (cfg->workers < 1) {
		snprintf(errstr, errstr_size, "workers is %d, not a count",
			 cfg->workers);
		return -1;
	}
	pool = calloc(1, sizeof(*pool));
	if (!pool)
		goto oom;
	pool->cfg = cfg;
	pool->pub = pub;
	pool->av = av;
	pool->ledger_limits.max_per_customer = cfg->max_per_customer;
	pool->metrics = metrics;
	pool->limits = (struct request_limits){
	    .max_message_bytes = (size_t)cfg->max_message_bytes,
	    .max_quantity = cfg->max_quantity,
	    .max_sections = cfg->max_sections,
	    .max_section_capacity = cfg->max_section_capacity,
	    .hold_ttl_default_s = cfg->hold_ttl_default_s,
	    .hold_ttl_max_s = cfg->hold_ttl_max_s,
	};
	pool->count = cfg->workers;
	pool->workers = calloc((size_t)pool->count, sizeof(*pool->workers));
	if (!pool->workers)
		goto oom;
	for (int i = 0; i < pool->count; i++) {
		struct worker *w = &pool->workers[i];

		w->pool = pool;
		w->index = i;
		w->seed = (unsigned int)(clock_now_us() ^ (i * 2654435761u));
		pthread_mutex_init(&w->lock, NULL);
		pthread_cond_init(&w->wake, NULL);
		w->pg = txn_pg_new(cfg->pg_conninfo);
		w->batch = calloc(bmax, sizeof(*w->batch));
		w->parsed = calloc(bmax, sizeof(*w->parsed));
		w->reqs = calloc(bmax, sizeof(*w->reqs));
		w->valid_jobs = calloc(bmax, sizeof(*w->valid_jobs));
		w->outcomes = calloc(bmax, sizeof(*w->outcomes));
		if (w->outcomes) {
			for (size_t k = 0; k < bmax; k++)
				w->outcomes[k] = OUTCOME_BLANK;
		}
		if (!w->pg || !w->batch || !w->parsed || !w->reqs ||
		    !w->valid_jobs || !w->outcomes)
			goto oom;
	}
	for (; started < pool->count; started++) {
		int rc = pthread_create(&pool->workers[started].thread, NULL,
					worker_main, &pool->workers[started]);

		if (rc != 0) {
			snprintf(errstr, errstr_size,
				 "cannot start worker thread: %s",
				 strerror(rc));
			goto fail;
		}
	}
	*out = pool;
	return 0;
oom:
	snprintf(errstr, errstr_size, "out of memory");
fail:
	if (pool) {
		atomic_store(&pool->stopping, 1);
		for (int i = 0; i < started; i++) {
			pthread_mutex_lock(&pool->workers[i].lock);
			pthread_cond_signal(&pool->workers[i].wake);
			pthread_mutex_unlock(&pool->workers[i].lock);
			pthread_join(pool->workers[i].thread, NULL);
		}
		for (int i = 0; pool->workers && i < pool->count; i++)
			worker_release(&pool->workers[i]);
		free(pool->workers);
		free(pool);
	}
	return -1;
}

void worker_pool_stop(struct worker_pool *pool)
{
	atomic_store(&pool->stopping, 1);
	for (int i = 0; i < pool->count; i++) {
		struct worker *w = &pool->workers[i];

		pthread_mutex_lock(&w->lock);
		pthread_cond_broadcast(&w->wake);
		pthread_mutex_unlock(&w->lock);
	}
	for (int i = 0; i < pool->count; i++)
		pthread_join(pool->workers[i].thread, NULL);
	for (int i = 0; i < pool->count; i++)
		worker_release(&pool->workers[i]);
	free(pool->workers);
	free(pool);
}
