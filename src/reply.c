/*
 * reply: the producer of replies and dead-letter copies. Its delivery
 * reports, on its own poller thread, tell the consumer when a job is done.
 *
 * A reply carries the outcome of a transaction that has committed, so it
 * is never dropped: a delivery that fails for a passing reason (timeout,
 * broker away) is produced again; one that can never succeed (the reply
 * topic does not exist, the partition is out of range) goes to the
 * dead-letter topic instead, with the reason in its headers.
 */
#include "reply.h"

#include "kafka.h"
#include "log.h"
#include "metrics.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A dead-letter copy carries the original value up to this size. */
#define DEAD_LETTER_VALUE_MAX 900000

/* A job whose delivery must be tried again, by the poller thread. */
struct retry {
	struct retry *next;
	struct job *job;
	int dead_letter;	 /* which of its messages */
	rd_kafka_resp_err_t err; /* why the last try failed */
	int reroute;		 /* send the reply to the dead-letter topic */
};

struct reply_producer {
	rd_kafka_t *rk;
	const struct config *cfg;
	struct metrics *metrics;
	reply_done_fn *done;
	void *done_arg;
	pthread_t poller;
	atomic_int running;
	pthread_mutex_t lock; /* guards retries */
	struct retry *retries;
	rd_kafka_topic_t
	    *known[2]; /* reply and dead-letter topics, kept warm */
	atomic_int warned_partitions; /* dead_letter_repartition said so */
};

static void put_be32(unsigned char *out, uint32_t v)
{
	out[0] = (unsigned char)(v >> 24);
	out[1] = (unsigned char)(v >> 16);
	out[2] = (unsigned char)(v >> 8);
	out[3] = (unsigned char)v;
}

static void put_be64(unsigned char *out, uint64_t v)
{
	put_be32(out, (uint32_t)(v >> 32));
	put_be32(out + 4, (uint32_t)v);
}

static void job_finish(struct reply_producer *rp, struct job *job, int ok)
{
	if (atomic_fetch_sub(&job->pending_deliveries, 1) != 1)
		return;
	if (ok)
		histogram_observe(&rp->metrics->reply_latency_seconds,
				  (double)(job_now_us() - job->received_us) /
				      1e6);
	rp->done(job, ok, rp->done_arg);
}

static int error_is_permanent(rd_kafka_resp_err_t err)
{
	switch (err) {
	case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
	case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
	case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
	case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
	case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
	case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
	case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
	case RD_KAFKA_RESP_ERR_INVALID_RECORD:
		return 1;
	default:
		return 0;
	}
}

/*
 * W3C trace context: a valid traceparent and the tracestate beside it go
 * on with the reply, unchanged, so that a tracer sees one trace from the
 * request to its answer. An invalid traceparent is dropped with its
 * tracestate, as the W3C recommendation asks of a receiver.
 */
static void add_trace_context(rd_kafka_headers_t *hdrs, const struct job *job)
{
	static const char *const names[] = {"traceparent", "tracestate"};
	const void *value;
	size_t size;

	if (!job->trace[0] || !job->headers)
		return;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (rd_kafka_header_get_last(job->headers, names[i], &value,
					     &size) ==
			RD_KAFKA_RESP_ERR_NO_ERROR &&
		    value)
			rd_kafka_header_add(hdrs, names[i], -1, value,
					    (ssize_t)size);
	}
}

/*
 * The request's own headers, as Spring's DeadLetterPublishingRecoverer
 * copies them: all of them, except the exception headers of an earlier
 * dead-lettering (Spring strips those by default, so that the last
 * failure's are the only ones). Earlier kafka_dlt-original-* headers stay;
 * the ones added after them are the last, which is what Spring reads.
 */
static rd_kafka_headers_t *dead_letter_headers(const struct job *job)
{
	static const char exception_prefix[] = "kafka_dlt-exception-";
	size_t count = job->headers ? rd_kafka_header_cnt(job->headers) : 0;
	rd_kafka_headers_t *hdrs = rd_kafka_headers_new(count + 10);
	const char *name;
	const void *value;
	size_t size;

	for (size_t i = 0; i < count; i++) {
		if (rd_kafka_header_get_all(job->headers, i, &name, &value,
					    &size) !=
		    RD_KAFKA_RESP_ERR_NO_ERROR)
			break;
		if (strncmp(name, exception_prefix,
			    sizeof(exception_prefix) - 1) == 0)
			continue;
		rd_kafka_header_add(hdrs, name, -1, value,
				    value ? (ssize_t)size : 0);
	}
	return hdrs;
}

/* Produce the reply of job to its reply address (or, reroute, to the
 * dead-letter topic because that address cannot take it). */
static rd_kafka_resp_err_t produce_reply(struct reply_producer *rp,
					 struct job *job, int reroute,
					 rd_kafka_resp_err_t why)
{
	const char *topic =
	    job->reply_topic[0] ? job->reply_topic : rp->cfg->reply_topic;
	int32_t partition = job->reply_topic[0] && job->reply_partition >= 0
				? job->reply_partition
				: RD_KAFKA_PARTITION_UA;
	rd_kafka_headers_t *hdrs = rd_kafka_headers_new(6);
	rd_kafka_resp_err_t err;

	if (job->correlation_id)
		rd_kafka_header_add(hdrs, "kafka_correlationId", -1,
				    job->correlation_id,
				    (ssize_t)job->correlation_id_len);
	add_trace_context(hdrs, job);
	if (reroute) {
		char message[512];

		snprintf(message, sizeof(message),
			 "reply to topic %s partition %d undeliverable: %s",
			 topic, (int)partition, rd_kafka_err2str(why));
		rd_kafka_header_add(hdrs, "kafka_dlt-exception-message", -1,
				    message, -1);
		rd_kafka_header_add(hdrs, "ticketd-reply-topic", -1, topic, -1);
		topic = rp->cfg->dead_letter_topic;
		partition = RD_KAFKA_PARTITION_UA;
	}
	err = rd_kafka_producev(
	    rp->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
	    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
	    RD_KAFKA_V_KEY(job->key, job->key_len),
	    RD_KAFKA_V_VALUE(job->reply_json, strlen(job->reply_json)),
	    RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(job), RD_KAFKA_V_END);
	if (err)
		rd_kafka_headers_destroy(hdrs); /* not handed over */
	return err;
}

/*
 * The dead-letter topic lacks the request's partition: say so once (the
 * topic should have as many partitions as the request topic, as Spring's
 * default resolver requires), and let the key pick one from now on for
 * this job. Spring's send would fail instead; a dead letter that lands on
 * another partition still says where it came from in its headers.
 */
static void dead_letter_repartition(struct reply_producer *rp, struct job *job)
{
	job->dead_letter_any_partition = 1;
	if (atomic_exchange(&rp->warned_partitions, 1) == 0)
		log_warn("dead-letter topic %s has no partition %d: dead "
			 "letters from partitions it lacks go where their key "
			 "puts them; give it at least as many partitions as "
			 "%s, or set dead_letter_partition = \"any\"",
			 rp->cfg->dead_letter_topic, (int)job->partition,
			 job->topic);
}

static rd_kafka_resp_err_t produce_dead_letter(struct reply_producer *rp,
					       struct job *job)
{
	rd_kafka_headers_t *hdrs = dead_letter_headers(job);
	unsigned char partition[4], offset[8], timestamp[8];
	char fqcn[64];
	const char *code = request_error_code_name(job->error);
	const char *message =
	    job->dead_letter_reason ? job->dead_letter_reason : code;
	size_t value_len = job->value_len;
	int32_t target = RD_KAFKA_PARTITION_UA;
	rd_kafka_resp_err_t err;

	if (strcmp(rp->cfg->dead_letter_partition, "original") == 0 &&
	    !job->dead_letter_any_partition)
		target = job->partition;
	put_be32(partition, (uint32_t)job->partition);
	put_be64(offset, (uint64_t)job->offset);
	put_be64(timestamp, (uint64_t)job->timestamp_ms);
	snprintf(fqcn, sizeof(fqcn), "ticketd.%s", code);
	rd_kafka_header_add(hdrs, "kafka_dlt-original-topic", -1, job->topic,
			    -1);
	rd_kafka_header_add(hdrs, "kafka_dlt-original-partition", -1, partition,
			    4);
	rd_kafka_header_add(hdrs, "kafka_dlt-original-offset", -1, offset, 8);
	rd_kafka_header_add(hdrs, "kafka_dlt-original-timestamp", -1, timestamp,
			    8);
	rd_kafka_header_add(hdrs, "kafka_dlt-original-timestamp-type", -1,
			    job_timestamp_type_name(job->timestamp_type), -1);
	rd_kafka_header_add(hdrs, "kafka_dlt-original-consumer-group", -1,
			    rp->cfg->group_id, -1);
	rd_kafka_header_add(hdrs, "kafka_dlt-exception-fqcn", -1, fqcn, -1);
	rd_kafka_header_add(hdrs, "kafka_dlt-exception-message", -1, message,
			    -1);
	if (value_len > DEAD_LETTER_VALUE_MAX) {
		/* Too large for the topic: the headers still say where the
		 * original is. */
		rd_kafka_header_add(hdrs, "ticketd-value-omitted", -1, "true",
				    -1);
		value_len = 0;
	}
	for (;;) {
		err = rd_kafka_producev(
		    rp->rk, RD_KAFKA_V_TOPIC(rp->cfg->dead_letter_topic),
		    RD_KAFKA_V_PARTITION(target),
		    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
		    RD_KAFKA_V_KEY(job->key, job->key_len),
		    RD_KAFKA_V_VALUE(value_len ? job->value : NULL, value_len),
		    RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(job),
		    RD_KAFKA_V_END);
		/* Known at once when the topic's metadata is; otherwise the
		 * delivery report says it (on_delivery). */
		if (err != RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION ||
		    target == RD_KAFKA_PARTITION_UA)
			break;
		dead_letter_repartition(rp, job);
		target = RD_KAFKA_PARTITION_UA;
	}
	if (err)
		rd_kafka_headers_destroy(hdrs);
	return err;
}

static void retry_push(struct reply_producer *rp, struct job *job,
		       int dead_letter, rd_kafka_resp_err_t err)
{
	struct retry *r = calloc(1, sizeof(*r));

	if (!r) {
		log_error(
		    "out of memory: reply for partition %d offset %lld%s is "
		    "not retried; the request is redelivered after a restart",
		    (int)job->partition, (long long)job->offset, job->trace);
		job_finish(rp, job, 0);
		return;
	}
	r->job = job;
	r->dead_letter = dead_letter;
	r->err = err;
	r->reroute = !dead_letter && error_is_permanent(err);
	pthread_mutex_lock(&rp->lock);
	r->next = rp->retries;
	rp->retries = r;
	pthread_mutex_unlock(&rp->lock);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *rkm,
			void *opaque)
{
	struct reply_producer *rp = opaque;
	struct job *job = rkm->_private;
	int dead_letter = strcmp(rd_kafka_topic_name(rkm->rkt),
				 rp->cfg->dead_letter_topic) == 0;

	(void)rk;
	if (!rkm->err) {
		job_finish(rp, job, 1);
		return;
	}
	if (rkm->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE ||
	    rkm->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT) {
		job_finish(rp, job, 0);
		return;
	}
	if (dead_letter && rkm->err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION &&
	    !job->dead_letter_any_partition) {
		dead_letter_repartition(rp, job);
		retry_push(rp, job, 1, rkm->err);
		return;
	}
	atomic_fetch_add(&rp->metrics->reply_failures, 1);
	if (dead_letter && error_is_permanent(rkm->err)) {
		log_error("dead-letter copy of partition %d offset %lld%s "
			  "undeliverable: %s; giving up on it",
			  (int)job->partition, (long long)job->offset,
			  job->trace, rd_kafka_err2str(rkm->err));
		job_finish(rp, job, 1);
		return;
	}
	log_warn("delivery to %s for partition %d offset %lld%s failed: %s; "
		 "trying again",
		 rd_kafka_topic_name(rkm->rkt), (int)job->partition,
		 (long long)job->offset, job->trace,
		 rd_kafka_err2str(rkm->err));
	retry_push(rp, job, dead_letter, rkm->err);
}

/* Produce, waiting while the local queue is full. */
static rd_kafka_resp_err_t produce_waiting(struct reply_producer *rp,
					   struct job *job, int dead_letter,
					   int reroute, rd_kafka_resp_err_t why)
{
	rd_kafka_resp_err_t err;

	for (;;) {
		err = dead_letter ? produce_dead_letter(rp, job)
				  : produce_reply(rp, job, reroute, why);
		if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			return err;
		usleep(2000); /* the poller thread drains the queue */
	}
}

static void run_retries(struct reply_producer *rp)
{
	struct retry *list;

	pthread_mutex_lock(&rp->lock);
	list = rp->retries;
	rp->retries = NULL;
	pthread_mutex_unlock(&rp->lock);

	while (list) {
		struct retry *r = list;
		rd_kafka_resp_err_t err;

		list = r->next;
		err = produce_waiting(rp, r->job, r->dead_letter, r->reroute,
				      r->err);
		if (err) {
			if (r->reroute || r->dead_letter) {
				log_error(
				    "partition %d offset %lld%s: cannot "
				    "produce to the dead-letter topic: %s",
				    (int)r->job->partition,
				    (long long)r->job->offset, r->job->trace,
				    rd_kafka_err2str(err));
				job_finish(rp, r->job, 1);
			} else {
				retry_push(rp, r->job, 0, err);
			}
		}
		free(r);
	}
}

static void *poller_main(void *arg)
{
	struct reply_producer *rp = arg;

	while (atomic_load(&rp->running)) {
		rd_kafka_poll(rp->rk, 50);
		run_retries(rp);
	}
	return NULL;
}

void reply_send(struct reply_producer *rp, struct job *job)
{
	rd_kafka_resp_err_t err;

	atomic_store(&job->pending_deliveries, job->dead_letter ? 2 : 1);
	if (job->dead_letter) {
		atomic_fetch_add(&rp->metrics->dead_lettered, 1);
		err = produce_waiting(rp, job, 1, 0, 0);
		if (err)
			retry_push(rp, job, 1, err);
	}
	err = produce_waiting(rp, job, 0, 0, 0);
	if (err)
		retry_push(rp, job, 0, err);
}

int reply_outstanding(struct reply_producer *rp)
{
	return rd_kafka_outq_len(rp->rk);
}

/*
 * Learn the default reply topic and the dead-letter topic now, not on the
 * first reply (which would wait a second or so for the metadata), and say
 * so early if one of them is missing. Not fatal: the broker may be away at
 * start-up, and replies wait for it.
 */
static void warm_up(struct reply_producer *rp)
{
	const char *names[2] = {rp->cfg->reply_topic,
				rp->cfg->dead_letter_topic};

	for (int i = 0; i < 2; i++) {
		const struct rd_kafka_metadata *md = NULL;
		rd_kafka_resp_err_t err;

		rp->known[i] = rd_kafka_topic_new(rp->rk, names[i], NULL);
		if (!rp->known[i])
			continue;
		err = rd_kafka_metadata(rp->rk, 0, rp->known[i], &md, 5000);
		if (!err && md->topic_cnt == 1 && md->topics[0].err)
			err = md->topics[0].err;
		if (err)
			log_warn("topic %s: %s", names[i],
				 rd_kafka_err2str(err));
		if (md)
			rd_kafka_metadata_destroy(md);
	}
}

int reply_start(struct reply_producer **out, const struct config *cfg,
		struct metrics *metrics, reply_done_fn *done, void *done_arg,
		char *errstr, size_t errstr_size)
{
	struct reply_producer *rp = calloc(1, sizeof(*rp));
	rd_kafka_conf_t *conf = NULL;

	if (!rp) {
		snprintf(errstr, errstr_size, "out of memory");
		return -1;
	}
	rp->cfg = cfg;
	rp->metrics = metrics;
	rp->done = done;
	rp->done_arg = done_arg;
	pthread_mutex_init(&rp->lock, NULL);

	conf = kafka_conf_new(cfg, "producer", errstr, errstr_size);
	if (!conf)
		goto fail;
	/* Durable, ordered, exactly one copy per produce: the defaults
	 * that matter here, before the user's own properties. */
	if (kafka_conf_set(conf, "enable.idempotence", "true", errstr,
			   errstr_size) != 0 ||
	    kafka_conf_set(conf, "acks", "all", errstr, errstr_size) != 0 ||
	    kafka_conf_set(conf, "linger.ms", "2", errstr, errstr_size) != 0 ||
	    kafka_conf_apply_properties(conf, &cfg->producer_properties, errstr,
					errstr_size) != 0)
		goto fail;
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	rd_kafka_conf_set_opaque(conf, rp);

	rp->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size);
	if (!rp->rk)
		goto fail;
	conf = NULL; /* rd_kafka_new owns it now */

	warm_up(rp);
	atomic_store(&rp->running, 1);
	if (pthread_create(&rp->poller, NULL, poller_main, rp) != 0) {
		snprintf(errstr, errstr_size,
			 "cannot start the reply poller: %s", strerror(errno));
		goto fail;
	}
	*out = rp;
	return 0;
fail:
	if (conf)
		rd_kafka_conf_destroy(conf);
	for (int i = 0; i < 2; i++) {
		if (rp->known[i])
			rd_kafka_topic_destroy(rp->known[i]);
	}
	if (rp->rk)
		rd_kafka_destroy(rp->rk);
	pthread_mutex_destroy(&rp->lock);
	free(rp);
	return -1;
}

static int retries_pending(struct reply_producer *rp)
{
	int pending;

	pthread_mutex_lock(&rp->lock);
	pending = rp->retries != NULL;
	pthread_mutex_unlock(&rp->lock);
	return pending;
}

void reply_stop(struct reply_producer *rp, int timeout_ms)
{
	int64_t deadline = job_now_us() + (int64_t)timeout_ms * 1000;

	/* The poller keeps serving delivery reports and retries while we
	 * wait; then it stops and this thread takes over. */
	while (job_now_us() < deadline &&
	       (rd_kafka_outq_len(rp->rk) > 0 || retries_pending(rp)))
		usleep(10000);
	atomic_store(&rp->running, 0);
	pthread_join(rp->poller, NULL);

	if (rd_kafka_outq_len(rp->rk) > 0 || retries_pending(rp)) {
		log_warn(
		    "%d replies undelivered at shutdown; their requests will "
		    "be redelivered and answered from the idempotency records",
		    rd_kafka_outq_len(rp->rk));
	}
	/* Give up what is left: every job still goes back through done. */
	rd_kafka_purge(rp->rk, RD_KAFKA_PURGE_F_QUEUE |
				   RD_KAFKA_PURGE_F_INFLIGHT |
				   RD_KAFKA_PURGE_F_NON_BLOCKING);
	rd_kafka_poll(rp->rk, 0);
	while (rp->retries) {
		struct retry *r = rp->retries;

		rp->retries = r->next;
		job_finish(rp, r->job, 0);
		free(r);
	}
	rd_kafka_flush(rp->rk, 1000);
	for (int i = 0; i < 2; i++) {
		if (rp->known[i])
			rd_kafka_topic_destroy(rp->known[i]);
	}
	rd_kafka_destroy(rp->rk);
	pthread_mutex_destroy(&rp->lock);
	free(rp);
}
