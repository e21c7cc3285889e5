/*
 * job: one consumed request message on its way through ticketd, from the
 * consumer thread through a worker to the reply producer.
 */
#include "job.h"

#include "clock.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

static void *copy_bytes(const void *data, size_t len)
{
	void *copy = malloc(len ? len : 1);

	if (copy && len)
		memcpy(copy, data, len);
	return copy;
}

/* kafka_replyPartition: Spring writes a 4-byte big-endian int. */
static int32_t parse_partition(const unsigned char *v, size_t len)
{
	if (len != 4)
		return -1;
	return (int32_t)(((uint32_t)v[0] << 24) | ((uint32_t)v[1] << 16) |
			 ((uint32_t)v[2] << 8) | (uint32_t)v[3]);
}

static int read_headers(struct job *job, const rd_kafka_message_t *rkm)
{
	rd_kafka_headers_t *hdrs = NULL;
	const void *value;
	size_t size;

	if (rd_kafka_message_headers(rkm, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return 0; /* no headers */

	if (rd_kafka_header_get_last(hdrs, "kafka_correlationId", &value,
				     &size) == RD_KAFKA_RESP_ERR_NO_ERROR &&
	    value) {
		job->correlation_id = copy_bytes(value, size);
		if (!job->correlation_id)
			return -1;
		job->correlation_id_len = size;
	}
	if (rd_kafka_header_get_last(hdrs, "kafka_replyTopic", &value, &size) ==
		RD_KAFKA_RESP_ERR_NO_ERROR &&
	    value) {
		if (request_topic_valid(value, size)) {
			memcpy(job->reply_topic, value, size);
			job->reply_topic[size] = '\0';
		} else {
			log_warn(
			    "partition %d offset %lld: kafka_replyTopic is not "
			    "a valid topic name, replying to the default topic",
			    (int)rkm->partition, (long long)rkm->offset);
		}
	}
	if (rd_kafka_header_get_last(hdrs, "kafka_replyPartition", &value,
				     &size) == RD_KAFKA_RESP_ERR_NO_ERROR &&
	    value)
		job->reply_partition = parse_partition(value, size);
	return 0;
}

struct job *job_from_message(const rd_kafka_message_t *rkm, const char *topic)
{
	struct job *job = calloc(1, sizeof(*job));
	rd_kafka_timestamp_type_t tstype;

	if (!job)
		return NULL;
	job->topic = topic;
	job->partition = rkm->partition;
	job->offset = rkm->offset;
	job->timestamp_ms = rd_kafka_message_timestamp(rkm, &tstype);
	job->reply_partition = -1;
	job->received_us = clock_now_us();
	job->outcome = OUTCOME_BLANK;
	atomic_init(&job->pending_deliveries, 0);
	if (rkm->key) {
		job->key = copy_bytes(rkm->key, rkm->key_len);
		if (!job->key)
			goto fail;
		job->key_len = rkm->key_len;
	}
	if (rkm->payload) {
		job->value = copy_bytes(rkm->payload, rkm->len);
		if (!job->value)
			goto fail;
		job->value_len = rkm->len;
	}
	if (read_headers(job, rkm) != 0)
		goto fail;
	return job;
fail:
	job_free(job);
	return NULL;
}

void job_free(struct job *job)
{
	if (!job)
		return;
	free(job->key);
	free(job->value);
	free(job->correlation_id);
	outcome_clear(&job->outcome);
	free(job->dead_letter_reason);
	free(job);
}
