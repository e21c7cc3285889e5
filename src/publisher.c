/*
 * publisher: the Kafka producer of replies and dead-letter copies. Its
 * delivery reports, on its own poller thread, tell the consumer when a job
 * is done.
 *
 * A reply carries the outcome of a transaction that has committed, so it
 * is never dropped: a delivery that fails for a passing reason (timeout,
 * broker away) is produced again, as the same message; a reply that can
 * never be delivered (its topic does not exist, the partition is out of
 * range) goes to the dead-letter topic instead, with the reason in its
 * headers.
 */
#include "publisher.h"

#include "clock.h"
#include "kafka.h"
#include "log.h"
#include "metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A dead-letter copy carries the original value up to this size. */
#define DEAD_LETTER_VALUE_MAX 900000

/* What a produced message is (job_message.kind). */
enum message_kind {
	MESSAGE_REPLY,		  /* the reply, to its reply address */
	MESSAGE_REPLY_REROUTED,	  /* the reply, to the dead-letter topic */
	MESSAGE_DEAD_LETTER_COPY, /* the request, to the dead-letter topic */
};

/* A message whose delivery must be tried again, by the poller thread. */
struct retry {
	struct retry *next;
	struct job_message *msg;
};

struct publisher {
	rd_kafka_t *rk;
	const struct config *cfg;
	struct metrics *metrics;
	publisher_done_fn *done;
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

static void job_finish(struct publisher *pub, struct job *job, int ok)
{
	if (atomic_fetch_sub(&job->pending_deliveries, 1) != 1)
		return;
	if (ok)
		histogram_observe(&pub->metrics->reply_latency_seconds,
				  (double)(clock_now_us() - job->received_us) /
				      1e6);
	pub->done(job, ok, pub->done_arg);
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

/*
 * The dead-letter topic lacks the request's partition: say so once (the
 * topic should have as many partitions as the request topic, as Spring's
 * default resolver requires), and let the key pick one for this copy
 * (msg->reason says so from now on). Spring's send would fail instead; a
 * dead letter on another partition still names its origin in its headers.
 */
static void dead_letter_repartition(struct publisher *pub,
				    struct job_message *msg)
{
	msg->reason = (int)RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION;
	if (atomic_exchange(&pub->warned_partitions, 1) == 0)
		log_warn("dead-letter topic %s has no partition %d: dead "
			 "letters from partitions it lacks go where their key "
			 "puts them; give it at least as many partitions as "
			 "%s, or set dead_letter_partition = \"any\"",
			 pub->cfg->dead_letter_topic, (int)msg->job->partition,
			 msg->job->topic);
}

/* Produce the reply of msg's job to its reply address, or (rerouted) to
 * the dead-letter topic because that address cannot take it. */
static rd_kafka_resp_err_t produce_reply(struct publisher *pub,
					 struct job_message *msg)
{
	struct job *job = msg->job;
	const char *topic =
	    job->reply_topic[0] ? job->reply_topic : pub->cfg->reply_topic;
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
	if (msg->kind == MESSAGE_REPLY_REROUTED) {
		char message[512];

		snprintf(message, sizeof(message),
			 "reply to topic %s partition %d undeliverable: %s",
			 topic, (int)partition,
			 rd_kafka_err2str((rd_kafka_resp_err_t)msg->reason));
		rd_kafka_header_add(hdrs, "kafka_dlt-exception-message", -1,
				    message, -1);
		rd_kafka_header_add(hdrs, "ticketd-reply-topic", -1, topic, -1);
		topic = pub->cfg->dead_letter_topic;
		partition = RD_KAFKA_PARTITION_UA;
	}
	err = rd_kafka_producev(
	    pub->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
	    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
	    RD_KAFKA_V_KEY(job->key, job->key_len),
	    RD_KAFKA_V_VALUE(job->outcome.reply, strlen(job->outcome.reply)),
	    RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(msg), RD_KAFKA_V_END);
	if (err)
		rd_kafka_headers_destroy(hdrs); /* not handed over */
	return err;
}

/* The request itself, copied to the dead-letter topic as Spring's
 * DeadLetterPublishingRecoverer writes it: its headers, then Spring's. */
static rd_kafka_resp_err_t produce_dead_letter(struct publisher *pub,
					       struct job_message *msg)
{
	struct job *job = msg->job;
	rd_kafka_headers_t *hdrs = dead_letter_headers(job);
	unsigned char partition[4], offset[8], timestamp[8];
	char fqcn[64];
	const char *code = request_error_code_name(job->outcome.error);
	const char *message =
	    job->dead_letter_reason ? job->dead_letter_reason : code;
	size_t value_len = job->value_len;
	int32_t target = RD_KAFKA_PARTITION_UA;
	rd_kafka_resp_err_t err;

	if (strcmp(pub->cfg->dead_letter_partition, "original") == 0 &&
	    !msg->reason)
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
			    pub->cfg->group_id, -1);
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
		    pub->rk, RD_KAFKA_V_TOPIC(pub->cfg->dead_letter_topic),
		    RD_KAFKA_V_PARTITION(target),
		    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
		    RD_KAFKA_V_KEY(job->key, job->key_len),
		    RD_KAFKA_V_VALUE(value_len ? job->value : NULL, value_len),
		    RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(msg),
		    RD_KAFKA_V_END);
		/* Known at once when the topic's metadata is; otherwise the
		 * delivery report says it (failed()). */
		if (err != RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION ||
		    target == RD_KAFKA_PARTITION_UA)
			break;
		dead_letter_repartition(pub, msg);
		target = RD_KAFKA_PARTITION_UA;
	}
	if (err)
		rd_kafka_headers_destroy(hdrs);
	return err;
}

static rd_kafka_resp_err_t produce(struct publisher *pub,
				   struct job_message *msg)
{
	return msg->kind == MESSAGE_DEAD_LETTER_COPY
		   ? produce_dead_letter(pub, msg)
		   : produce_reply(pub, msg);
}

/*
 * What a failed delivery of msg becomes, as err says: the same message
 * again (a passing failure), the reply rerouted to the dead-letter topic
 * (its address can never take it), or nothing (a dead-letter message that
 * can never be delivered: logged, and the job counts as done, since its
 * transaction committed and its redelivery would only replay it). 1 when
 * msg is to be produced again.
 */
static int after_failure(struct job_message *msg, rd_kafka_resp_err_t err)
{
	if (!error_is_permanent(err))
		return 1;
	if (msg->kind == MESSAGE_REPLY) {
		msg->kind = MESSAGE_REPLY_REROUTED;
		msg->reason = (int)err;
		return 1;
	}
	return 0;
}

static void give_up(struct publisher *pub, struct job_message *msg,
		    rd_kafka_resp_err_t err)
{
	log_error("partition %d offset %lld%s: %s undeliverable to the "
		  "dead-letter topic: %s; giving up on it",
		  (int)msg->job->partition, (long long)msg->job->offset,
		  msg->job->trace,
		  msg->kind == MESSAGE_DEAD_LETTER_COPY ? "the dead-letter copy"
							: "the rerouted reply",
		  rd_kafka_err2str(err));
	job_finish(pub, msg->job, 1);
}

static void retry_push(struct publisher *pub, struct job_message *msg)
{
	struct retry *r = calloc(1, sizeof(*r));

	if (!r) {
		log_error(
		    "out of memory: a message of partition %d offset %lld%s "
		    "is not retried; the request is redelivered after a "
		    "restart",
		    (int)msg->job->partition, (long long)msg->job->offset,
		    msg->job->trace);
		job_finish(pub, msg->job, 0);
		return;
	}
	r->msg = msg;
	pthread_mutex_lock(&pub->lock);
	r->next = pub->retries;
	pub->retries = r;
	pthread_mutex_unlock(&pub->lock);
}

/* A message that could not be produced or delivered, as err says. */
static void failed(struct publisher *pub, struct job_message *msg,
		   rd_kafka_resp_err_t err)
{
	if (msg->kind == MESSAGE_DEAD_LETTER_COPY &&
	    err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION && !msg->reason) {
		/* Its partition is missing from the dead-letter topic. */
		dead_letter_repartition(pub, msg);
		retry_push(pub, msg);
		return;
	}
	if (after_failure(msg, err))
		retry_push(pub, msg);
	else
		give_up(pub, msg, err);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *rkm,
			void *opaque)
{
	struct publisher *pub = opaque;
	struct job_message *msg = rkm->_private;

	(void)rk;
	if (!rkm->err) {
		job_finish(pub, msg->job, 1);
		return;
	}
	if (rkm->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE ||
	    rkm->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT) {
		job_finish(pub, msg->job, 0);
		return;
	}
	atomic_fetch_add(&pub->metrics->reply_failures, 1);
	log_warn("delivery to %s for partition %d offset %lld%s failed: %s",
		 rd_kafka_topic_name(rkm->rkt), (int)msg->job->partition,
		 (long long)msg->job->offset, msg->job->trace,
		 rd_kafka_err2str(rkm->err));
	failed(pub, msg, rkm->err);
}

/* Produce, waiting while the local queue is full. */
static rd_kafka_resp_err_t produce_waiting(struct publisher *pub,
					   struct job_message *msg)
{
	rd_kafka_resp_err_t err;

	for (;;) {
		err = produce(pub, msg);
		if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			return err;
		usleep(2000); /* the poller thread drains the queue */
	}
}

static void run_retries(struct publisher *pub)
{
	struct retry *list;

	pthread_mutex_lock(&pub->lock);
	list = pub->retries;
	pub->retries = NULL;
	pthread_mutex_unlock(&pub->lock);

	while (list) {
		struct retry *r = list;
		rd_kafka_resp_err_t err;

		list = r->next;
		err = produce_waiting(pub, r->msg);
		if (err)
			failed(pub, r->msg, err);
		free(r);
	}
}

static void *poller_main(void *arg)
{
	struct publisher *pub = arg;

	while (atomic_load(&pub->running)) {
		rd_kafka_poll(pub->rk, 50);
		run_retries(pub);
	}
	return NULL;
}

void publisher_send(struct publisher *pub, struct job *job)
{
	rd_kafka_resp_err_t err;

	job->reply_message =
	    (struct job_message){.job = job, .kind = MESSAGE_REPLY};
	job->dead_letter_message =
	    (struct job_message){.job = job, .kind = MESSAGE_DEAD_LETTER_COPY};
	atomic_store(&job->pending_deliveries, job->dead_letter ? 2 : 1);
	if (job->dead_letter) {
		atomic_fetch_add(&pub->metrics->dead_lettered, 1);
		err = produce_waiting(pub, &job->dead_letter_message);
		if (err)
			failed(pub, &job->dead_letter_message, err);
	}
	err = produce_waiting(pub, &job->reply_message);
	if (err)
		failed(pub, &job->reply_message, err);
}

int publisher_outstanding(struct publisher *pub)
{
	return rd_kafka_outq_len(pub->rk);
}

/*
 * Learn the default reply topic and the dead-letter topic now, not on the
 * first reply (which would wait a second or so for the metadata), and say
 * so early if one of them is missing. Not fatal: the broker may be away at
 * start-up, and replies wait for it.
 */
static void warm_up(struct publisher *pub)
{
	const char *names[2] = {pub->cfg->reply_topic,
				pub->cfg->dead_letter_topic};

	for (int i = 0; i < 2; i++) {
		const struct rd_kafka_metadata *md = NULL;
		rd_kafka_resp_err_t err;

		pub->known[i] = rd_kafka_topic_new(pub->rk, names[i], NULL);
		if (!pub->known[i])
			continue;
		err = rd_kafka_metadata(pub->rk, 0, pub->known[i], &md, 5000);
		if (!err && md->topic_cnt == 1 && md->topics[0].err)
			err = md->topics[0].err;
		if (err)
			log_warn("topic %s: %s", names[i],
				 rd_kafka_err2str(err));
		if (md)
			rd_kafka_metadata_destroy(md);
	}
}

int publisher_start(struct publisher **out, const struct config *cfg,
		    struct metrics *metrics, publisher_done_fn *done,
		    void *done_arg, char *errstr, size_t errstr_size)
{
	struct publisher *pub = calloc(1, sizeof(*pub));
	rd_kafka_conf_t *conf = NULL;
	int rc;

	if (!pub) {
		snprintf(errstr, errstr_size, "out of memory");
		return -1;
	}
	pub->cfg = cfg;
	pub->metrics = metrics;
	pub->done = done;
	pub->done_arg = done_arg;
	pthread_mutex_init(&pub->lock, NULL);

	conf = kafka_conf_new_producer(cfg, "producer", KAFKA_REPLY_LINGER_MS,
				       errstr, errstr_size);
	if (!conf)
		goto fail;
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	rd_kafka_conf_set_opaque(conf, pub);

	pub->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size);
	if (!pub->rk)
		goto fail;
	conf = NULL; /* rd_kafka_new owns it now */

	warm_up(pub);
	atomic_store(&pub->running, 1);
	rc = pthread_create(&pub->poller, NULL, poller_main, pub);
	if (rc != 0) {
		snprintf(errstr, errstr_size,
			 "cannot start the publisher's poller: %s",
			 strerror(rc));
		goto fail;
	}
	*out = pub;
	return 0;
fail:
	if (conf)
		rd_kafka_conf_destroy(conf);
	for (int i = 0; i < 2; i++) {
		if (pub->known[i])
			rd_kafka_topic_destroy(pub->known[i]);
	}
	if (pub->rk)
		rd_kafka_destroy(pub->rk);
	pthread_mutex_destroy(&pub->lock);
	free(pub);
	return -1;
}

static int retries_pending(struct publisher *pub)
{
	int pending;

	pthread_mutex_lock(&pub->lock);
	pending = pub->retries != NULL;
	pthread_mutex_unlock(&pub->lock);
	return pending;
}

void publisher_stop(struct publisher *pub, int timeout_ms)
{
	int64_t deadline = clock_now_us() + (int64_t)timeout_ms * 1000;

	/* The poller keeps serving delivery reports and retries while we
	 * wait; then it stops and this thread takes over. */
	while (clock_now_us() < deadline &&
	       (rd_kafka_outq_len(pub->rk) > 0 || retries_pending(pub)))
		usleep(10000);
	atomic_store(&pub->running, 0);
	pthread_join(pub->poller, NULL);

	if (rd_kafka_outq_len(pub->rk) > 0 || retries_pending(pub)) {
		log_warn(
		    "%d replies undelivered at shutdown; their requests will "
		    "be redelivered and answered from the idempotency records",
		    rd_kafka_outq_len(pub->rk));
	}
	/* Give up what is left: every job still goes back through done. */
	rd_kafka_purge(pub->rk, RD_KAFKA_PURGE_F_QUEUE |
				    RD_KAFKA_PURGE_F_INFLIGHT |
				    RD_KAFKA_PURGE_F_NON_BLOCKING);
	rd_kafka_poll(pub->rk, 0);
	while (pub->retries) {
		struct retry *r = pub->retries;

		pub->retries = r->next;
		job_finish(pub, r->msg->job, 0);
		free(r);
	}
	rd_kafka_flush(pub->rk, 1000);
	for (int i = 0; i < 2; i++) {
		if (pub->known[i])
			rd_kafka_topic_destroy(pub->known[i]);
	}
	rd_kafka_destroy(pub->rk);
	pthread_mutex_destroy(&pub->lock);
	free(pub);
}
