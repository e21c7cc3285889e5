/*
 * availability: the latest state of every section a committed batch (or
 * the reaper) changed, published to a compacted topic keyed by section id.
 *
 * Its own producer (acks=all, idempotence), apart from the replies': a
 * topic that is slow or missing fills this producer's queue, never the one
 * replies wait on. A section's newest state waits in its slot, pending,
 * until the poller thread produces it, at most availability_interval_ms
 * later (0: the committing thread produces it at once): a section changed
 * by many batches in that interval costs one message, not one a batch,
 * which is most of what this producer and the broker spend on it under
 * load. A failed delivery makes the section pending again; a state
 * superseded by a newer version is dropped, never retried: readers keep the
 * highest version they have seen, and the newest state is the only one
 * that matters.
 */
#include "availability.h"

#include "buf.h"
#include "clock.h"
#include "kafka.h"
#include "log.h"
#include "metrics.h"

#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* How long a failed state waits before it is produced again. */
#define RETRY_PAUSE_MS 200

/* One section's newest state known here, and whether it still has to go
 * out (pending) or was handed to the producer. */
struct slot {
	int used;
	int pending;
	struct section_state state;
};

struct availability {
	const struct config *cfg;
	struct metrics *metrics;
	rd_kafka_t *rk;
	pthread_t poller;
	pthread_mutex_t lock; /* guards everything below */
	int running;
	struct slot *slots; /* open addressing by section id */
	size_t slot_count, slot_cap;
	int64_t *pending; /* sections whose slot is pending, each once */
	size_t pending_count, pending_cap;
	int64_t next_flush_us;
	int64_t retry_after_us; /* after a failure, no produce before */
	int64_t failure_logged_us;
};

char *availability_to_json(const struct section_state *state)
{
	struct buf b = BUF_INIT;
	time_t secs = (time_t)(state->at_us / 1000000);
	char at[40];
	struct tm tm;
	size_t pos;

	gmtime_r(&secs, &tm);
	pos = strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(at + pos, sizeof(at) - pos, ".%06dZ",
		 (int)(state->at_us % 1000000));
	buf_printf(&b,
		   "{\"event_id\":%" PRId64 ",\"section_id\":%" PRId64
		   ",\"capacity\":%d,\"remaining\":%d,\"held\":%d,"
		   "\"version\":%" PRId64 ",\"at\":\"%s\"}",
		   state->event_id, state->section_id, state->capacity,
		   state->remaining, state->held, state->version, at);
	return buf_take(&b);
}

static uint64_t slot_hash(int64_t id)
{
	uint64_t h = (uint64_t)id * 0x9e3779b97f4a7c15ULL;

	return h ^ (h >> 29);
}

/* The slot of section id (found, or the empty one it would take). Caller
 * holds av->lock; there is always room (slots_grow keeps half free). */
static struct slot *slot_of(struct availability *av, int64_t id)
{
	size_t at = (size_t)slot_hash(id) & (av->slot_cap - 1);

	while (av->slots[at].used && av->slots[at].state.section_id != id)
		at = (at + 1) & (av->slot_cap - 1);
	return &av->slots[at];
}

/* Room for one more section. Caller holds av->lock. 0 or -1. */
static int slots_grow(struct availability *av)
{
	struct slot *old = av->slots;
	size_t old_cap = av->slot_cap, cap;

	if (av->slot_count + 1 <= av->slot_cap / 2)
		return 0;
	cap = old_cap ? old_cap * 2 : 1024;
	av->slots = calloc(cap, sizeof(*av->slots));
	if (!av->slots) {
		av->slots = old;
		return -1;
	}
	av->slot_cap = cap;
	for (size_t i = 0; i < old_cap; i++) {
		if (old[i].used)
			*slot_of(av, old[i].state.section_id) = old[i];
	}
	free(old);
	return 0;
}

/* Which state a message carries: its delivery report's opaque. */
struct sent_state {
	int64_t section_id;
	int64_t version;
};

/* Hand one state to the producer. Caller holds av->lock. 0, or -1 when
 * the producer would not take it now (it stays pending). */
static int produce(struct availability *av, struct slot *slot)
{
	char key[24];
	char *value = availability_to_json(&slot->state);
	struct sent_state *sent;
	rd_kafka_resp_err_t err;

	if (!value)
		return -1;
	sent = malloc(sizeof(*sent));
	if (!sent) {
		free(value);
		return -1;
	}
	sent->section_id = slot->state.section_id;
	sent->version = slot->state.version;
	snprintf(key, sizeof(key), "%" PRId64, slot->state.section_id);
	/* The value is handed over (F_FREE); the key is copied. */
	err = rd_kafka_producev(av->rk,
				RD_KAFKA_V_TOPIC(av->cfg->availability_topic),
				RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
				RD_KAFKA_V_KEY(key, strlen(key)),
				RD_KAFKA_V_VALUE(value, strlen(value)),
				RD_KAFKA_V_OPAQUE(sent), RD_KAFKA_V_END);
	if (err) {
		free(value);
		free(sent);
		return -1;
	}
	slot->pending = 0;
	return 0;
}

/* The section of slot is to be produced (again). Caller holds av->lock.
 * 0, or -1 when out of memory (the state is lost: the section's next
 * change supersedes it). */
static int mark_pending(struct availability *av, struct slot *slot)
{
	if (slot->pending)
		return 0;
	if (av->pending_count == av->pending_cap) {
		size_t cap = av->pending_cap ? av->pending_cap * 2 : 256;
		int64_t *grown = realloc(av->pending, cap * sizeof(*grown));

		if (!grown)
			return -1;
		av->pending = grown;
		av->pending_cap = cap;
	}
	av->pending[av->pending_count++] = slot->state.section_id;
	slot->pending = 1;
	return 0;
}

/* Produce every pending section's newest state, unless a failure asked
 * for a pause. What the producer will not take now stays pending. Caller
 * holds av->lock. */
static void flush(struct availability *av)
{
	size_t kept = 0;
	int stopped = 0;

	if (av->retry_after_us && clock_now_us() < av->retry_after_us)
		return;
	av->retry_after_us = 0;
	for (size_t i = 0; i < av->pending_count; i++) {
		struct slot *slot = slot_of(av, av->pending[i]);

		if (!slot->used || !slot->pending)
			continue;
		if (!stopped && produce(av, slot) == 0)
			continue;
		if (!stopped) {
			stopped = 1;
			av->retry_after_us =
			    clock_now_us() + 1000 * RETRY_PAUSE_MS;
		}
		av->pending[kept++] = av->pending[i];
	}
	av->pending_count = kept;
}

void availability_publish(struct availability *av,
			  const struct section_state *states, size_t n)
{
	if (!av || n == 0)
		return;
	pthread_mutex_lock(&av->lock);
	for (size_t i = 0; i < n; i++) {
		struct slot *slot;

		if (slots_grow(av) != 0) {
			log_warn("availability: out of memory; section %" PRId64
				 " version %" PRId64 " not published",
				 states[i].section_id, states[i].version);
			continue;
		}
		slot = slot_of(av, states[i].section_id);
		if (slot->used && slot->state.version >= states[i].version)
			continue; /* already has as new a state */
		if (!slot->used)
			av->slot_count++;
		slot->used = 1;
		slot->state = states[i];
		if (mark_pending(av, slot) != 0)
			log_warn("availability: out of memory; section %" PRId64
				 " version %" PRId64 " not published",
				 states[i].section_id, states[i].version);
	}
	if (av->cfg->availability_interval_ms == 0)
		flush(av);
	pthread_mutex_unlock(&av->lock);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *rkm,
			void *opaque)
{
	struct availability *av = opaque;
	struct sent_state *sent = rkm->_private;
	struct slot *slot;

	(void)rk;
	if (!rkm->err) {
		atomic_fetch_add(&av->metrics->availability_published, 1);
		free(sent);
		return;
	}
	atomic_fetch_add(&av->metrics->availability_failures, 1);
	pthread_mutex_lock(&av->lock);
	if (clock_now_us() - av->failure_logged_us > 30000000) {
		log_warn(
		    "availability: publishing to %s failed: %s; the newest "
		    "state of each section is produced again",
		    av->cfg->availability_topic, rd_kafka_err2str(rkm->err));
		av->failure_logged_us = clock_now_us();
	}
	slot = slot_of(av, sent->section_id);
	/* Superseded by a newer state: that one counts, not this. */
	if (slot->used && slot->state.version == sent->version &&
	    mark_pending(av, slot) == 0 && av->retry_after_us == 0)
		av->retry_after_us = clock_now_us() + 1000 * RETRY_PAUSE_MS;
	pthread_mutex_unlock(&av->lock);
	free(sent);
}

/* The poller's round: what is pending goes out once per interval, and a
 * failed one once its pause is over. */
static void run_pending(struct availability *av)
{
	int64_t now = clock_now_us();

	pthread_mutex_lock(&av->lock);
	if (now >= av->next_flush_us ||
	    (av->retry_after_us && now >= av->retry_after_us)) {
		flush(av);
		av->next_flush_us =
		    now + 1000 * (int64_t)av->cfg->availability_interval_ms;
	}
	pthread_mutex_unlock(&av->lock);
}

static int is_running(struct availability *av)
{
	int running;

	pthread_mutex_lock(&av->lock);
	running = av->running;
	pthread_mutex_unlock(&av->lock);
	return running;
}

static void *poller_main(void *arg)
{
	struct availability *av = arg;

	int tick = av->cfg->availability_interval_ms;

	/* Delivery reports and retries at least every 50 ms. */
	if (tick <= 0 || tick > 50)
		tick = 50;
	while (is_running(av)) {
		rd_kafka_poll(av->rk, tick);
		run_pending(av);
	}
	return NULL;
}

int availability_start(struct availability **out, const struct config *cfg,
		       struct metrics *metrics, char *errstr,
		       size_t errstr_size)
{
	struct availability *av;
	rd_kafka_conf_t *conf;
	int rc;

	*out = NULL;
	if (strcmp(cfg->availability_topic, "off") == 0)
		return 0;
	av = calloc(1, sizeof(*av));
	if (!av) {
		snprintf(errstr, errstr_size, "out of memory");
		return -1;
	}
	av->cfg = cfg;
	av->metrics = metrics;
	pthread_mutex_init(&av->lock, NULL);
	/* Durable and in order per section; a few milliseconds of linger
	 * put a busy moment's states into one request. */
	conf = kafka_conf_new_producer(cfg, "availability", "5", errstr,
				       errstr_size);
	if (!conf)
		goto fail;
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	rd_kafka_conf_set_opaque(conf, av);
	av->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size);
	if (!av->rk)
		goto fail;
	conf = NULL; /* rd_kafka_new owns it now */
	av->running = 1;
	rc = pthread_create(&av->poller, NULL, poller_main, av);
	if (rc != 0) {
		snprintf(errstr, errstr_size,
			 "cannot start the availability poller: %s",
			 strerror(rc));
		goto fail;
	}
	*out = av;
	return 0;
fail:
	if (conf)
		rd_kafka_conf_destroy(conf);
	if (av->rk)
		rd_kafka_destroy(av->rk);
	pthread_mutex_destroy(&av->lock);
	free(av);
	return -1;
}

static int pending_count(struct availability *av)
{
	int pending;

	pthread_mutex_lock(&av->lock);
	pending = (int)av->pending_count;
	pthread_mutex_unlock(&av->lock);
	return pending;
}

void availability_stop(struct availability *av, int timeout_ms)
{
	int64_t deadline;

	if (!av)
		return;
	deadline = clock_now_us() + (int64_t)timeout_ms * 1000;
	while (clock_now_us() < deadline &&
	       (rd_kafka_outq_len(av->rk) > 0 || pending_count(av) > 0))
		clock_sleep_ms(10);
	if (rd_kafka_outq_len(av->rk) > 0 || pending_count(av) > 0)
		log_warn("availability: %d states not published at shutdown; "
			 "each section's next change supersedes them",
			 rd_kafka_outq_len(av->rk) + pending_count(av));
	pthread_mutex_lock(&av->lock);
	av->running = 0;
	pthread_mutex_unlock(&av->lock);
	pthread_join(av->poller, NULL);
	rd_kafka_purge(av->rk,
		       RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
	rd_kafka_poll(av->rk, 0);
	rd_kafka_destroy(av->rk);
	pthread_mutex_destroy(&av->lock);
	free(av->slots);
	free(av->pending);
	free(av);
}
