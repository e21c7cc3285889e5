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

#include "log.h"
#include "metrics.h"
#include "reply.h"
#include "store.h"

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
	struct store *st;
	int db_down;
	int64_t db_down_since_us;
	int64_t db_last_log_us;
	struct job **batch;	 /* batch_max entries */
	struct request *parsed;	 /* batch_max entries, batch[i]'s request */
	struct request **reqs;	 /* batch_max entries */
	struct job **valid_jobs; /* batch_max entries */
	struct store_outcome *outcomes; /* batch_max entries */
};

struct worker_pool {
	const struct config *cfg;
	struct reply_producer *rp;
	struct metrics *metrics;
	struct request_limits limits;
	atomic_int stopping;
	int count;
	struct worker *workers;
};

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

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
	int64_t now = job_now_us();

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

/*
 * Connect, waiting with a growing pause (100 ms to 5 s) between tries.
 * 0 once connected, -1 when the pool stops first.
 */
static int ensure_connected(struct worker *w)
{
	int pause_ms = 100;
	char errstr[512];

	while (!store_connected(w->st)) {
		if (atomic_load(&w->pool->stopping))
			return -1;
		if (store_connect(w->st, errstr, sizeof(errstr)) == 0) {
			atomic_fetch_add(&w->pool->metrics->db_reconnects, 1);
			break;
		}
		set_db_down(w, 1, errstr);
		sleep_ms(pause_ms);
		pause_ms = pause_ms * 2 > 5000 ? 5000 : pause_ms * 2;
	}
	set_db_down(w, 0, NULL);
	return 0;
}

static void refuse_in_database(struct job *job, const struct request *req,
			       const char *why)
{
	struct reply reply = {.remaining = -1};

	reply_set_error(&reply, ERROR_INVALID_FIELD,
			"the database refused the request: %s", why);
	job->status = reply.status;
	job->error = reply.error;
	free(job->reply_json);
	job->reply_json = reply_to_json(req->request_id,
					request_type_name(req->type), &reply);
}

/*
 * Run jobs[0..n) as one transaction, again after a retryable error, split
 * in halves after a refusal so that one bad request cannot sink the rest,
 * and after running out of a server resource (a single request then waits
 * and runs again: a full lock table is no fault of its). 0 when every job
 * has its outcome, -1 when the pool stopped first.
 */
static int execute(struct worker *w, struct job **jobs, struct request **reqs,
		   size_t n)
{
	struct metrics *m = w->pool->metrics;
	int pause_ms = 1;
	char errstr[1024];

	for (;;) {
		enum store_result rc;
		int64_t started;

		if (ensure_connected(w) != 0)
			return -1;
		started = job_now_us();
		rc = store_execute_batch(w->st, reqs, n, w->outcomes, errstr,
					 sizeof(errstr));
		if (rc == STORE_OK) {
			histogram_observe(&m->transaction_seconds,
					  (double)(job_now_us() - started) /
					      1e6);
			histogram_observe(&m->batch_size, (double)n);
			for (size_t i = 0; i < n; i++) {
				jobs[i]->status = w->outcomes[i].status;
				jobs[i]->error = w->outcomes[i].error;
				if (w->outcomes[i].replayed)
					atomic_fetch_add(&m->replayed, 1);
				jobs[i]->reply_json = w->outcomes[i].reply_json;
				w->outcomes[i].reply_json = NULL;
			}
			return 0;
		}
		if (rc == STORE_DISCONNECTED) {
			set_db_down(w, 1, errstr);
			continue;
		}
		if (rc == STORE_RETRY || (rc == STORE_TOO_BIG && n == 1)) {
			atomic_fetch_add(&m->batch_retries, 1);
			if (rc == STORE_TOO_BIG && pause_ms == 1)
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
			sleep_ms(pause_ms);
			pause_ms = pause_ms * 2 > 200 ? 200 : pause_ms * 2;
			continue;
		}
		/* STORE_FAILED, or STORE_TOO_BIG for more than one */
		if (rc == STORE_FAILED && n == 1) {
			log_warn("worker %d: partition %d offset %lld%s "
				 "refused by the database: %s",
				 w->index, (int)jobs[0]->partition,
				 (long long)jobs[0]->offset, jobs[0]->trace,
				 errstr);
			refuse_in_database(jobs[0], reqs[0], errstr);
			return 0;
		}
		atomic_fetch_add(&m->batch_splits, 1);
		log_info("worker %d: batch of %zu failed (%s); splitting it",
			 w->index, n, errstr);
		if (execute(w, jobs, reqs, n / 2) != 0)
			return -1;
		return execute(w, jobs + n / 2, reqs + n / 2, n - n / 2);
	}
}

/* Parse each job; a refusal is answered here, without the database. */
static void parse_jobs(struct worker *w, size_t n)
{
	struct worker_pool *pool = w->pool;

	for (size_t i = 0; i < n; i++) {
		struct job *job = w->batch[i];
		struct request *req = &w->parsed[i];
		struct reply reply = {.remaining = -1};
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
		reply_set_error(&reply, err.code, "%s", err.message);
		job->status = reply.status;
		job->error = reply.error;
		job->reply_json =
		    reply_to_json(err.request_id, err.type_name, &reply);
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
}

static void process_batch(struct worker *w, size_t n)
{
	size_t valid = 0;
	struct metrics *m = w->pool->metrics;

	parse_jobs(w, n);
	for (size_t i = 0; i < n; i++) {
		if (w->batch[i]->valid) {
			w->valid_jobs[valid] = w->batch[i];
			w->reqs[valid] = &w->parsed[i];
			valid++;
		}
	}
	if (valid && execute(w, w->valid_jobs, w->reqs, valid) != 0) {
		/* Stopping while the database is away: nothing of this
		 * batch committed, so drop it unanswered; Kafka redelivers. */
		for (size_t i = 0; i < n; i++) {
			request_free(&w->parsed[i]);
			job_free(w->batch[i]);
		}
		return;
	}
	for (size_t i = 0; i < n; i++)
		request_free(&w->parsed[i]);
	/* Replies in arrival order: per section, the order of requests. */
	for (size_t i = 0; i < n; i++) {
		struct job *job = w->batch[i];

		if (!job->reply_json) {
			log_error(
			    "partition %d offset %lld%s: out of memory "
			    "building "
			    "the reply; it is redelivered after a restart",
			    (int)job->partition, (long long)job->offset,
			    job->trace);
			job_free(job);
			continue;
		}
		metrics_count_request(m, job->type, job->status);
		reply_send(w->pool->rp, job);
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
	store_free(w->st);
	free(w->batch);
	free(w->parsed);
	free(w->reqs);
	free(w->valid_jobs);
	free(w->outcomes);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->wake);
}

int worker_pool_start(struct worker_pool **out, const struct config *cfg,
		      struct reply_producer *rp, struct metrics *metrics,
		      char *errstr, size_t errstr_size)
{
	struct worker_pool *pool = calloc(1, sizeof(*pool));
	struct store_limits store_limits = {.max_per_customer =
						cfg->max_per_customer};
	size_t bmax = (size_t)cfg->batch_max;
	int started = 0;

	if (!pool)
		goto oom;
	pool->cfg = cfg;
	pool->rp = rp;
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
		pthread_mutex_init(&w->lock, NULL);
		pthread_cond_init(&w->wake, NULL);
		w->st = store_new(cfg->pg_conninfo, &store_limits);
		w->batch = calloc(bmax, sizeof(*w->batch));
		w->parsed = calloc(bmax, sizeof(*w->parsed));
		w->reqs = calloc(bmax, sizeof(*w->reqs));
		w->valid_jobs = calloc(bmax, sizeof(*w->valid_jobs));
		w->outcomes = calloc(bmax, sizeof(*w->outcomes));
		if (!w->st || !w->batch || !w->parsed || !w->reqs ||
		    !w->valid_jobs || !w->outcomes)
			goto oom;
	}
	for (; started < pool->count; started++) {
		if (pthread_create(&pool->workers[started].thread, NULL,
				   worker_main, &pool->workers[started]) != 0) {
			snprintf(errstr, errstr_size,
				 "cannot start worker thread: %s",
				 strerror(errno));
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
