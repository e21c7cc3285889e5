/*
 * kafkacheck: do the Kafka brokers take ticketd as configured? A metadata
 * request from a client set up as ticketd's are, within a bound, and what
 * a failure means: refused for good (SASL credentials, TLS) or not
 * reachable now.
 */
#ifndef TICKETD_KAFKACHECK_H
#define TICKETD_KAFKACHECK_H

#include "config.h"

#include <librdkafka/rdkafka.h>
#include <stddef.h>

enum kafkacheck_result {
	KAFKACHECK_OK,
	KAFKACHECK_DOWN,    /* no broker reachable in time: it may pass */
	KAFKACHECK_REFUSED, /* SASL authentication or TLS failed, or the
			     * broker speaks another security.protocol: it
			     * will not pass by trying again */
};

/*
 * Ask the brokers for their metadata with a client of type (consumer or
 * producer) configured from cfg like ticketd's own (kafka_properties, then
 * role_props, NULL for none, then the SASL password), for at most
 * timeout_ms. It returns as soon as the answer is known: metadata, a
 * refusal, or every broker down. Not KAFKACHECK_OK: errstr says "Kafka: "
 * what is wrong and librdkafka's reason, never a secret.
 */
enum kafkacheck_result
kafkacheck_run(const struct config *cfg, rd_kafka_type_t type,
	       const struct config_properties *role_props, int timeout_ms,
	       char *errstr, size_t errstr_size);

#endif
