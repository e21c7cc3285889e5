/*
 * kafkacheck: do the Kafka brokers take ticketd as configured? A metadata
 * request from a client set up as ticketd's are, within a bound, and what
 * a failure means: refused for good (SASL credentials, TLS) or not
 * reachable now.
 *
 * librdkafka retries every failure by itself and reports it only through
 * the error callback, so the verdict comes from the errors seen while the
 * metadata request waits.
 */
#include "kafkacheck.h"

#include "kafka.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* One metadata request waits at most this long before the errors seen so
 * far are looked at. */
#define KAFKACHECK_SLICE_MS 200

struct seen {
	int refused;
	int all_down;
	const char *cause;
	char reason[512];
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The cause, in words, of an error that will not pass; NULL for one that
 * may. */
static const char *refusal(rd_kafka_resp_err_t err, const char *reason)
{
	/* By its text first: librdkafka reports the same failed certificate
	 * check as _SSL or, when it surfaces on a read, as _TRANSPORT. */
	if (strstr(reason, "certificate verify failed"))
		return "TLS: the broker's certificate is not trusted "
		       "(ssl.ca.location) or does not name the host";
	if (strstr(reason, "SSL handshake failed"))
		return "TLS: the handshake failed";
	switch (err) {
	case RD_KAFKA_RESP_ERR__AUTHENTICATION:
	case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
		/* librdkafka reports the broker's refusal of the mechanism
		 * as an authentication error, with the broker's words. */
		if (strstr(reason, "Unsupported SASL mechanism"))
			return "the broker does not offer this sasl.mechanisms";
		return "SASL authentication failed (a wrong password or an "
		       "unknown user: the broker does not say which)";
	case RD_KAFKA_RESP_ERR_UNSUPPORTED_SASL_MECHANISM:
		return "the broker does not offer this sasl.mechanisms";
	case RD_KAFKA_RESP_ERR_ILLEGAL_SASL_STATE:
		return "the broker expected another SASL exchange "
		       "(security.protocol or sasl.mechanisms)";
	case RD_KAFKA_RESP_ERR__SSL:
		return "TLS: the handshake failed";
	case RD_KAFKA_RESP_ERR__TRANSPORT:
		/* librdkafka's own diagnosis of a plaintext client talking
		 * to a TLS listener: disconnected at the first request. */
		if (strstr(reason, "security.protocol"))
			return "the broker speaks another security.protocol "
			       "(it probably wants TLS: SASL_SSL or SSL)";
		return NULL;
	default:
		return NULL;
	}
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	struct seen *seen = opaque;
	const char *cause;

	(void)rk;
	if (seen->refused)
		return; /* the first refusal is the one to report */
	cause = refusal((rd_kafka_resp_err_t)err, reason);
	if (cause) {
		seen->refused = 1;
		seen->cause = cause;
		snprintf(seen->reason, sizeof(seen->reason), "%s", reason);
	} else if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
		seen->all_down = 1;
		if (!seen->reason[0])
			snprintf(seen->reason, sizeof(seen->reason), "%s",
				 reason);
	} else {
		snprintf(seen->reason, sizeof(seen->reason), "%s", reason);
	}
}

enum kafkacheck_result
kafkacheck_run(const struct config *cfg, rd_kafka_type_t type,
	       const struct config_properties *role_props, int timeout_ms,
	       char *errstr, size_t errstr_size)
{
	struct seen seen = {0};
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;
	long long deadline = now_ms() + timeout_ms;
	enum kafkacheck_result rc = KAFKACHECK_DOWN;
	char why[512];

	conf = kafka_conf_new(cfg, "check", why, sizeof(why));
	if (!conf || kafka_conf_apply_user(conf, cfg, role_props, why,
					   sizeof(why)) != 0) {
		snprintf(errstr, errstr_size, "Kafka: %s", why);
		if (conf)
			rd_kafka_conf_destroy(conf);
		return KAFKACHECK_REFUSED;
	}
	rd_kafka_conf_set_error_cb(conf, on_error);
	rd_kafka_conf_set_opaque(conf, &seen);
	rk = rd_kafka_new(type, conf, why, sizeof(why));
	if (!rk) {
		/* A property that only makes sense with others (sasl.* with
		 * security.protocol=plaintext, ...): a setting to fix. */
		snprintf(errstr, errstr_size, "Kafka: %s", why);
		rd_kafka_conf_destroy(conf);
		return KAFKACHECK_REFUSED;
	}
	for (;;) {
		const struct rd_kafka_metadata *md = NULL;
		long long left = deadline - now_ms();
		rd_kafka_resp_err_t err;

		if (left <= 0)
			break;
		err = rd_kafka_metadata(rk, 0, NULL, &md,
					(int)(left < KAFKACHECK_SLICE_MS
						  ? left
						  : KAFKACHECK_SLICE_MS));
		if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
			rd_kafka_metadata_destroy(md);
			rc = KAFKACHECK_OK;
			break;
		}
		rd_kafka_poll(rk, 0); /* serves on_error */
		if (seen.refused || seen.all_down)
			break;
	}
	if (rc != KAFKACHECK_OK && seen.refused) {
		rc = KAFKACHECK_REFUSED;
		snprintf(errstr, errstr_size, "Kafka: %s: %s", seen.cause,
			 seen.reason);
	} else if (rc != KAFKACHECK_OK) {
		snprintf(errstr, errstr_size, "Kafka: %s %s: %s",
			 seen.all_down ? "no broker reachable at"
				       : "no answer within the bound from",
			 cfg->brokers,
			 seen.reason[0] ? seen.reason : "no error reported");
	}
	rd_kafka_destroy(rk);
	return rc;
}
