/*
 * consumer: ticketd's member of the consumer group. Polls requests, hands
 * them to the workers, pauses when their queues are full, and commits an
 * offset only once it and every offset before it are done (committed in
 * PostgreSQL and their reply delivered).
 *
 * Offsets: enable.auto.offset.store=false; an offset is stored (and then
 * auto-committed) only when the offsets tracker says everything below it is
 * done. On revoke the in-flight work of the revoked partitions is awaited
 * (bounded by drain_timeout_ms) and committed before the partitions go.
 * Work that finishes after its partition left still commits in the
 * database; the idempotency record makes its redelivery elsewhere a replay.
 */
#include "consumer.h"

#include "clock.h"
#include "kafka.h"
#include "log.h"
#include "metrics.h"
#include "offsets.h"
#include "worker.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct partition_state {
	int32_t partition;
	int assigned;
	uint64_t generation;
	struct offsets_window window;
	int store; /* the committable offset moved: store it */
};

struct consumer {
	rd_kafka_t *rk;
	const struct config *cfg;
	struct worker_pool *pool;
	struct metrics *metrics;

	pthread_mutex_t lock; /* guards parts, in_flight */
	pthread_cond_t progress;
	struct partition_state *parts;
	size_t part_count;
	uint64_t next_generation;
	long long in_flight;

	int paused;  /* consumer thread only */
	int closing; /* consumer thread only */
	atomic_int fatal;
	atomic_int stores_due; /* some partition's store is set */
};

/* Caller holds c->lock. */
static struct partition_state *part_find(struct consumer *c, int32_t partition)
{
	for (size_t i = 0; i < c->part_count; i++) {
		if (c->parts[i].partition == partition)
			return &c->parts[i];
	}
	return NULL;
}

/* Caller holds c->lock. NULL when out of memory. */
static struct partition_state *part_get(struct consumer *c, int32_t partition)
{
	struct partition_state *ps = part_find(c, partition);
	struct partition_state *grown;

	if (ps)
		return ps;
	grown = realloc(c->parts, (c->part_count + 1) * sizeof(*c->parts));
	if (!grown)
		return NULL;
	c->parts = grown;
	ps = &c->parts[c->part_count++];
	memset(ps, 0, sizeof(*ps));
	ps->partition = partition;
	offsets_init(&ps->window);
	return ps;
}

static void track_assigned(struct consumer *c,
			   const rd_kafka_topic_partition_list_t *parts)
{
	pthread_mutex_lock(&c->lock);
	for (int i = 0; i < parts->cnt; i++) {
		struct partition_state *ps =
		    part_get(c, parts->elems[i].partition);

		if (!ps) {
			log_error("out of memory tracking partition %d",
				  (int)parts->elems[i].partition);
			continue;
		}
		offsets_release(&ps->window);
		ps->assigned = 1;
		ps->generation = ++c->next_generation;
		atomic_fetch_add(&c->metrics->assigned_partitions, 1);
	}
	pthread_mutex_unlock(&c->lock);
}

static void untrack(struct consumer *c,
		    const rd_kafka_topic_partition_list_t *parts)
{
	pthread_mutex_lock(&c->lock);
	for (int i = 0; i < parts->cnt; i++) {
		struct partition_state *ps =
		    part_find(c, parts->elems[i].partition);

		if (!ps || !ps->assigned)
			continue;
		c->in_flight -= (long long)offsets_in_flight(&ps->window);
		offsets_release(&ps->window);
		ps->assigned = 0;
		atomic_fetch_sub(&c->metrics->assigned_partitions, 1);
	}
	atomic_store(&c->metrics->in_flight, c->in_flight);
	pthread_mutex_unlock(&c->lock);
}

/* In-flight requests of the listed partitions. Caller holds c->lock. */
static size_t in_flight_of(struct consumer *c,
			   const rd_kafka_topic_partition_list_t *parts)
{
	size_t n = 0;

	for (int i = 0; i < parts->cnt; i++) {
		struct partition_state *ps =
		    part_find(c, parts->elems[i].partition);

		if (ps && ps->assigned)
			n += offsets_in_flight(&ps->window);
	}
	return n;
}

/* Wait for the listed partitions' work, or for all (parts NULL). */
static int wait_done(struct consumer *c,
		     const rd_kafka_topic_partition_list_t *parts,
		     int timeout_ms)
{
	struct timespec deadline;
	int done;

	clock_deadline_in(&deadline, timeout_ms);
	pthread_mutex_lock(&c->lock);
	for (;;) {
		done = parts ? in_flight_of(c, parts) == 0 : c->in_flight == 0;
		if (done || pthread_cond_timedwait(&c->progress, &c->lock,
						   &deadline) == ETIMEDOUT)
			break;
	}
	done = parts ? in_flight_of(c, parts) == 0 : c->in_flight == 0;
	pthread_mutex_unlock(&c->lock);
	return done;
}

/*
 * Hand librdkafka the committable offset of every partition whose offset
 * moved since the last call, in one call: the consumer thread does it
 * between polls (and before a commit), instead of the reply poller once a
 * reply, which cost a list and a call into librdkafka for every reply.
 * Consumer thread only (rebalances run on it too, so the assignment
 * cannot change meanwhile).
 */
static void store_offsets(struct consumer *c)
{
	rd_kafka_topic_partition_list_t *list;
	rd_kafka_resp_err_t err;

	if (!atomic_exchange(&c->stores_due, 0))
		return;
	list = rd_kafka_topic_partition_list_new(8);
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < c->part_count; i++) {
		struct partition_state *ps = &c->parts[i];

		if (!ps->store)
			continue;
		ps->store = 0;
		if (ps->assigned)
			rd_kafka_topic_partition_list_add(
			    list, c->cfg->request_topic, ps->partition)
			    ->offset = offsets_committable(&ps->window);
	}
	pthread_mutex_unlock(&c->lock);
	if (list->cnt > 0) {
		err = rd_kafka_offsets_store(c->rk, list);
		if (err)
			log_debug("offset store: %s", rd_kafka_err2str(err));
	}
	rd_kafka_topic_partition_list_destroy(list);
}

static void on_revoke(struct consumer *c, rd_kafka_t *rk,
		      rd_kafka_topic_partition_list_t *parts)
{
	rd_kafka_resp_err_t err;

	if (rd_kafka_assignment_lost(rk)) {
		/* Someone else may own them already: commit nothing. */
		log_warn("%d partitions lost; their in-flight work is answered "
			 "but not committed here",
			 parts->cnt);
		untrack(c, parts);
		return;
	}
	if (!c->closing && !wait_done(c, parts, c->cfg->drain_timeout_ms))
		log_warn("revoke: in-flight work of %d partitions not done "
			 "within %d ms; it will be redelivered and answered "
			 "from the idempotency records",
			 parts->cnt, c->cfg->drain_timeout_ms);
	store_offsets(c);
	/* Synchronous in a rebalance, so that the next owner starts after
	 * our work; asynchronous at shutdown, where consumer_close waits for
	 * it within its bound (a synchronous commit to a broker that is gone
	 * would not return). */
	err = rd_kafka_commit(rk, NULL, c->closing);
	if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
		log_warn("commit on revoke failed: %s", rd_kafka_err2str(err));
	untrack(c, parts);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
			 rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	struct consumer *c = opaque;
	int cooperative =
	    strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
	rd_kafka_error_t *error = NULL;
	rd_kafka_resp_err_t ret = RD_KAFKA_RESP_ERR_NO_ERROR;

	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		log_info("rebalance: %d partitions assigned (%s)", parts->cnt,
			 cooperative ? "cooperative" : "eager");
		track_assigned(c, parts);
		if (cooperative)
			error = rd_kafka_incremental_assign(rk, parts);
		else
			ret = rd_kafka_assign(rk, parts);
		if (c->paused)
			rd_kafka_pause_partitions(rk, parts);
	} else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
		log_info("rebalance: %d partitions revoked", parts->cnt);
		on_revoke(c, rk, parts);
		if (cooperative)
			error = rd_kafka_incremental_unassign(rk, parts);
		else
			ret = rd_kafka_assign(rk, NULL);
	} else {
		log_error("rebalance failed: %s", rd_kafka_err2str(err));
		untrack(c, parts);
		ret = rd_kafka_assign(rk, NULL);
	}
	if (error) {
		log_error("rebalance: %s", rd_kafka_error_string(error));
		rd_kafka_error_destroy(error);
	} else if (ret) {
		log_error("rebalance: %s", rd_kafka_err2str(ret));
	}
}

/* Sum consumer_lag over our partitions from librdkafka's statistics. */
static int on_stats(rd_kafka_t *rk, char *json, size_t json_len, void *opaque)
{
	struct consumer *c = opaque;
	json_t *root = json_loadb(json, json_len, 0, NULL);
	json_t *partitions;
	const char *key;
	json_t *p;
	long long lag = 0;
	int known = 0;

	(void)rk;
	if (!root)
		return 0;
	partitions =
	    json_object_get(json_object_get(json_object_get(root, "topics"),
					    c->cfg->request_topic),
			    "partitions");
	json_object_foreach(partitions, key, p)
	{
		json_int_t v =
		    json_integer_value(json_object_get(p, "consumer_lag"));
		const char *fetch_state =
		    json_string_value(json_object_get(p, "fetch_state"));

		if (strcmp(key, "-1") == 0 || !fetch_state ||
		    strcmp(fetch_state, "none") == 0 || v < 0)
			continue;
		lag += v;
		known = 1;
	}
	atomic_store(&c->metrics->consumer_lag, known ? lag : -1);
	json_decref(root);
	return 0; /* librdkafka frees json */
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	struct consumer *c = opaque;

	if (err == RD_KAFKA_RESP_ERR__FATAL) {
		char why[512];

		rd_kafka_fatal_error(rk, why, sizeof(why));
		log_error("consumer fatal error: %s", why);
		atomic_store(&c->fatal, 1);
		return;
	}
	log_warn("consumer: %s: %s", rd_kafka_err2name(err), reason);
}

static void set_paused(struct consumer *c, int paused)
{
	rd_kafka_topic_partition_list_t *parts = NULL;

	if (rd_kafka_assignment(c->rk, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return;
	if (paused)
		rd_kafka_pause_partitions(c->rk, parts);
	else
		rd_kafka_resume_partitions(c->rk, parts);
	rd_kafka_topic_partition_list_destroy(parts);
	c->paused = paused;
	atomic_store(&c->metrics->consumer_paused, paused);
	if (paused) {
		atomic_fetch_add(&c->metrics->consumer_pauses, 1);
		log_debug("queues full: partitions paused");
	} else {
		log_debug("queues drained: partitions resumed");
	}
}

/* Pause at queue_max, resume at half: bounded memory, no flapping. */
static void flow_control(struct consumer *c)
{
	size_t depth = worker_pool_max_depth(c->pool);

	if (!c->paused && depth >= (size_t)c->cfg->queue_max)
		set_paused(c, 1);
	else if (c->paused && depth <= (size_t)c->cfg->queue_max / 2)
		set_paused(c, 0);
}

static void dispatch(struct consumer *c, rd_kafka_message_t *rkm)
{
	struct job *job = job_from_message(rkm, c->cfg->request_topic);
	struct partition_state *ps;

	if (job) {
		pthread_mutex_lock(&c->lock);
		ps = part_find(c, rkm->partition);
		if (ps && ps->assigned &&
		    offsets_track(&ps->window, rkm->offset) == 0) {
			job->generation = ps->generation;
			c->in_flight++;
			atomic_store(&c->metrics->in_flight, c->in_flight);
		} else {
			job_free(job);
			job = NULL;
		}
		pthread_mutex_unlock(&c->lock);
	}
	if (!job) {
		/* Out of memory, or a message of a partition we no longer
		 * own: go back to it rather than lose it. */
		rd_kafka_topic_partition_list_t *seek =
		    rd_kafka_topic_partition_list_new(1);
		rd_kafka_error_t *error;

		log_warn("partition %d offset %lld not dispatched; seeking "
			 "back to it",
			 (int)rkm->partition, (long long)rkm->offset);
		rd_kafka_topic_partition_list_add(seek, c->cfg->request_topic,
						  rkm->partition)
		    ->offset = rkm->offset;
		error = rd_kafka_seek_partitions(c->rk, seek, 1000);
		if (error)
			rd_kafka_error_destroy(error);
		rd_kafka_topic_partition_list_destroy(seek);
		usleep(100000);
		return;
	}
	worker_pool_dispatch(c->pool, job);
}

void consumer_run(struct consumer *c, volatile sig_atomic_t *run)
{
	while (*run && !atomic_load(&c->fatal)) {
		rd_kafka_message_t *rkm = rd_kafka_consumer_poll(c->rk, 100);

		if (rkm) {
			if (rkm->err) {
				if (rkm->err !=
				    RD_KAFKA_RESP_ERR__PARTITION_EOF)
					log_warn("consumer: %s",
						 rd_kafka_message_errstr(rkm));
			} else {
				dispatch(c, rkm);
			}
			rd_kafka_message_destroy(rkm);
		}
		store_offsets(c);
		flow_control(c);
	}
}

void consumer_job_done(struct job *job, int ok, void *arg)
{
	struct consumer *c = arg;
	struct partition_state *ps;

	pthread_mutex_lock(&c->lock);
	ps = part_find(c, job->partition);
	if (ok && ps && ps->assigned && ps->generation == job->generation) {
		int moved = offsets_done(&ps->window, job->offset);

		if (moved >= 0) {
			c->in_flight--;
			atomic_store(&c->metrics->in_flight, c->in_flight);
		}
		if (moved == 1) {
			ps->store = 1;
			atomic_store(&c->stores_due, 1);
		}
		pthread_cond_broadcast(&c->progress);
	}
	pthread_mutex_unlock(&c->lock);
	job_free(job);
}

int consumer_drain(struct consumer *c, int timeout_ms)
{
	return wait_done(c, NULL, timeout_ms);
}

int consumer_ready(struct consumer *c)
{
	return c && !atomic_load(&c->fatal);
}

void consumer_set_pool(struct consumer *c, struct worker_pool *pool)
{
	c->pool = pool;
}

int consumer_start(struct consumer **out, const struct config *cfg,
		   struct metrics *metrics, char *errstr, size_t errstr_size)
{
	struct consumer *c = calloc(1, sizeof(*c));
	rd_kafka_conf_t *conf = NULL;
	rd_kafka_topic_partition_list_t *topics = NULL;
	rd_kafka_resp_err_t err;
	char interval[24];

	if (!c) {
		snprintf(errstr, errstr_size, "out of memory");
		return -1;
	}
	c->cfg = cfg;
	c->metrics = metrics;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->progress, NULL);

	conf = kafka_conf_new(cfg, "consumer", errstr, errstr_size);
	if (!conf)
		goto fail;
	snprintf(interval, sizeof(interval), "%d", cfg->commit_interval_ms);
	/* At least once: store an offset only when its work is done. These
	 * come first so that consumer_properties can tune, not break, them:
	 * the two offset settings are set again after. */
	if (kafka_conf_set(conf, "group.id", cfg->group_id, errstr,
			   errstr_size) != 0 ||
	    kafka_conf_set(conf, "auto.offset.reset", "earliest", errstr,
			   errstr_size) != 0 ||
	    kafka_conf_set(conf, "partition.assignment.strategy",
			   "cooperative-sticky", errstr, errstr_size) != 0 ||
	    kafka_conf_set(conf, "session.timeout.ms", "10000", errstr,
			   errstr_size) != 0 ||
	    kafka_conf_set_fetch(conf, errstr, errstr_size) != 0 ||
	    kafka_conf_set(conf, "queued.max.messages.kbytes", "8192", errstr,
			   errstr_size) != 0 ||
	    kafka_conf_set(conf, "queued.min.messages", "10000", errstr,
			   errstr_size) != 0 ||
	    kafka_conf_set(conf, "statistics.interval.ms", "5000", errstr,
			   errstr_size) != 0 ||
	    kafka_conf_set(conf, "auto.commit.interval.ms", interval, errstr,
			   errstr_size) != 0 ||
	    kafka_conf_apply_user(conf, cfg, &cfg->consumer_properties, errstr,
				  errstr_size) != 0 ||
	    kafka_conf_set(conf, "enable.auto.commit", "true", errstr,
			   errstr_size) != 0 ||
	    kafka_conf_set(conf, "enable.auto.offset.store", "false", errstr,
			   errstr_size) != 0)
		goto fail;
	rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
	rd_kafka_conf_set_stats_cb(conf, on_stats);
	rd_kafka_conf_set_error_cb(conf, on_error);
	rd_kafka_conf_set_opaque(conf, c);

	c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size);
	if (!c->rk)
		goto fail;
	conf = NULL; /* owned by c->rk now */
	rd_kafka_poll_set_consumer(c->rk);

	topics = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(topics, cfg->request_topic,
					  RD_KAFKA_PARTITION_UA);
	err = rd_kafka_subscribe(c->rk, topics);
	rd_kafka_topic_partition_list_destroy(topics);
	if (err) {
		snprintf(errstr, errstr_size, "cannot subscribe to %s: %s",
			 cfg->request_topic, rd_kafka_err2str(err));
		goto fail;
	}
	*out = c;
	return 0;
fail:
	if (conf)
		rd_kafka_conf_destroy(conf);
	if (c->rk)
		rd_kafka_destroy(c->rk);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->progress);
	free(c);
	return -1;
}

void consumer_close(struct consumer *c, int bound_ms)
{
	rd_kafka_queue_t *queue = rd_kafka_queue_new(c->rk);
	rd_kafka_error_t *error;
	int64_t deadline = clock_now_us() / 1000 + bound_ms;
	int closed = 0;

	c->closing = 1;
	/*
	 * Close through a queue we serve ourselves, not the blocking
	 * rd_kafka_consumer_close(), which waits for the group coordinator
	 * as long as it takes: with the broker gone, forever. The revoke
	 * arrives as an event and goes through on_rebalance (commit what is
	 * done); messages still arriving are dropped unprocessed (their
	 * offsets are not stored: they are redelivered).
	 */
	error = queue ? rd_kafka_consumer_close_queue(c->rk, queue) : NULL;
	if (!queue || error) {
		log_warn("consumer close: %s",
			 error ? rd_kafka_error_string(error)
			       : "out of memory");
		if (error)
			rd_kafka_error_destroy(error);
	} else {
		while (!(closed = rd_kafka_consumer_closed(c->rk)) &&
		       clock_now_us() / 1000 < deadline) {
			rd_kafka_event_t *ev = rd_kafka_queue_poll(queue, 100);

			if (ev &&
			    rd_kafka_event_type(ev) == RD_KAFKA_EVENT_REBALANCE)
				on_rebalance(
				    c->rk, rd_kafka_event_error(ev),
				    rd_kafka_event_topic_partition_list(ev), c);
			rd_kafka_event_destroy(ev);
		}
		if (!closed)
			log_warn(
			    "consumer close: the group was not left within "
			    "%d ms (broker unreachable?); what was not "
			    "committed is redelivered and runs at most once",
			    bound_ms);
	}
	if (queue)
		rd_kafka_queue_destroy(queue);
	rd_kafka_destroy_flags(
	    c->rk, closed ? 0 : RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
	for (size_t i = 0; i < c->part_count; i++)
		offsets_release(&c->parts[i].window);
	free(c->parts);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->progress);
	free(c);
}
