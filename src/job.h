/*
 * job: one consumed request message on its way through ticketd, from the
 * consumer thread through a worker to the reply producer.
 *
 * Ownership: the consumer creates a job (job_from_message) and hands it to
 * a worker queue; the worker hands it to the publisher; the delivery
 * report of its last message hands it back to the consumer, which marks
 * its offset done and job_free()s it.
 */
#ifndef TICKETD_JOB_H
#define TICKETD_JOB_H

#include "outcome.h"
#include "request.h"

#include <librdkafka/rdkafka.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* A version-00 W3C traceparent: 00-<32 hex>-<16 hex>-<2 hex>. */
#define JOB_TRACEPARENT_LEN 55

struct job;

/* One message the publisher produces for a job (its reply, or the
 * dead-letter copy of its request): what the delivery report gets back. */
struct job_message {
	struct job *job;
	int kind;   /* the publisher's: which message this is */
	int reason; /* the publisher's: why it was rerouted, if it was */
};

struct job {
	struct job *next; /* worker queue link */

	/* Where the message came from (copied: the message is destroyed). */
	const char *topic; /* the configured request topic: lives for the run */
	int32_t partition;
	int64_t offset;
	int64_t timestamp_ms;
	rd_kafka_timestamp_type_t timestamp_type; /* for the dead letter */
	uint64_t generation; /* of the partition's assignment, see consumer.c */
	void *key;
	size_t key_len;
	void *value;
	size_t value_len;

	/* The request's own headers (a copy, owned), which its dead-letter
	 * copy carries again; NULL when it had none. */
	rd_kafka_headers_t *headers;
	/* " traceparent=<value>" when the request carries a valid W3C
	 * traceparent, else "": log lines about the request end with it,
	 * and the reply copies traceparent and tracestate only then. */
	char trace[16 + JOB_TRACEPARENT_LEN];

	/* Spring request/reply headers, if present. */
	void *correlation_id;
	size_t correlation_id_len;
	/* Where the reply goes: kafka_replyTopic, else the request's reply_to
	 * (set by the worker), else "" for the configured reply topic. */
	char reply_topic[REQUEST_TOPIC_MAX + 1];
	int32_t
	    reply_partition; /* kafka_replyPartition with the header, or -1 */
	int64_t received_us;

	/* Set by the worker. The parsed request itself lives in the worker's
	 * batch, not here. */
	int valid;
	int type; /* enum request_type, or REQUEST_TYPE_COUNT when unknown */
	struct outcome outcome; /* with its reply text once decided */
	int dead_letter; /* copy the message to the dead-letter topic too */
	char *dead_letter_reason; /* "CODE: message", with dead_letter */

	/* Set by the publisher. */
	struct job_message reply_message, dead_letter_message;
	atomic_int pending_deliveries;
};

/*
 * A job for rkm, copying everything it needs: rkm stays the caller's.
 * NULL when out of memory.
 */
struct job *job_from_message(const rd_kafka_message_t *rkm, const char *topic);

/*
 * Is v (len bytes, not NUL-terminated) a W3C traceparent that a receiver
 * may use: version 00 exactly 55 characters, a later version at least 55
 * with '-' after them; lowercase hex; version not ff; trace-id and
 * parent-id not all zero.
 */
int job_traceparent_valid(const char *v, size_t len);

/* The name Kafka's Java client gives a timestamp type ("CreateTime",
 * "LogAppendTime", "NoTimestampType"), as Spring writes it. */
const char *job_timestamp_type_name(rd_kafka_timestamp_type_t type);

/* Free job and everything it owns. */
void job_free(struct job *job);

#endif
