/*
 * job: one consumed request message on its way through ticketd, from the
 * consumer thread through a worker to the reply producer.
 */
#include "job.h"

#include "clock.h"
#include "log.h"

#include <stdio.h>
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

static int hex_run(const char *s, size_t n)
{
	int nonzero = 0;

	for (size_t i = 0; i < n; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return -1;
		nonzero |= s[i] != '0';
	}
	return nonzero;
}

int job_traceparent_valid(const char *v, size_t len)
{
	if (!v || len < JOB_TRACEPARENT_LEN || v[2] != '-' || v[35] != '-' ||
	    v[52] != '-')
		return 0;
	if (hex_run(v, 2) < 0 || (v[0] == 'f' && v[1] == 'f'))
		return 0;
	if (hex_run(v + 3, 32) != 1 || hex_run(v + 36, 16) != 1 ||
	    hex_run(v + 53, 2) < 0)
		return 0;
	/* Version 00 is exactly this long; a later one may append fields
	 * that this version does not know, after a '-'. */
	if (v[0] == '0' && v[1] == '0')
		return len == JOB_TRACEPARENT_LEN;
	return len == JOB_TRACEPARENT_LEN || v[JOB_TRACEPARENT_LEN] == '-';
}

const char *job_timestamp_type_name(rd_kafka_timestamp_type_t type)
{
	switch (type) {
	case RD_KAFKA_TIMESTAMP_CREATE_TIME:
		return "CreateTime";
	case RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME:
		return "LogAppendTime";
	default:
		return "NoTimestampType";
	}
}

static int read_headers(struct job *job, const rd_kafka_message_t *rkm)
{
	rd_kafka_headers_t *hdrs = NULL;
	const void *value;
	size_t size;

	if (rd_kafka_message_headers(rkm, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return 0; /* no headers */
	/* Kept whole: a dead letter carries them again, as Spring's
	 * recoverer copies every header of the record it publishes. */
	job->headers = rd_kafka_headers_copy(hdrs);
	if (!job->headers)
		return -1;
	if (rd_kafka_header_get_last(hdrs, "traceparent", &value, &size) ==
		RD_KAFKA_RESP_ERR_NO_ERROR &&
	    job_traceparent_valid(value, size))
		snprintf(job->trace, sizeof(job->trace), " traceparent=%.*s",
			 JOB_TRACEPARENT_LEN, (const char *)value);

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
			log_warn("partition %d offset %lld%s: kafka_replyTopic "
				 "is not a valid topic name, replying to the "
				 "default topic",
				 (int)rkm->partition, (long long)rkm->offset,
				 job->trace);
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
	job->timestamp_type = tstype;
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
	if (job->headers)
		rd_kafka_headers_destroy(job->headers);
	free(job->key);
	free(job->value);
	free(job->correlation_id);
	outcome_clear(&job->outcome);
	free(job->dead_letter_reason);
	free(job);
}
