/* kafka: librdkafka configuration shared by the consumer, the reply
 * producer and ticket-flood: checked property setting and logging. */
#ifndef TICKETD_KAFKA_H
#define TICKETD_KAFKA_H

#include "config.h"

#include <librdkafka/rdkafka.h>
#include <stddef.h>

/*
 * A new librdkafka configuration with bootstrap.servers and client.id from
 * cfg and librdkafka's log routed to ours. role names the client in the
 * log ("consumer", "producer"). NULL with errstr on a bad value; the
 * caller owns the result until rd_kafka_new takes it.
 */
rd_kafka_conf_t *kafka_conf_new(const struct config *cfg, const char *role,
				char *errstr, size_t errstr_size);

/*
 * How long the reply producer waits to fill a produce request, in ms, and
 * so the longest a reply waits for company at a low rate. librdkafka's own
 * default: under load fuller produce requests cost the broker less a
 * message than a shorter linger, for a little more latency at the median
 * (docs/benchmarks.md has the sweep); producer_properties can take linger.ms
 * either way. ticket-flood's producers use it too, so that its --echo relay
 * stays a fair ceiling.
 */
#define KAFKA_REPLY_LINGER_MS "5"

/*
 * A producer's configuration as ticketd's producers all want it: durable
 * (acks=all), idempotent (ordered, exactly one copy per produce), waiting
 * up to linger_ms to fill a request, then the user's producer_properties.
 * NULL with errstr on a bad value; the caller owns the result until
 * rd_kafka_new takes it.
 */
rd_kafka_conf_t *kafka_conf_new_producer(const struct config *cfg,
					 const char *role,
					 const char *linger_ms, char *errstr,
					 size_t errstr_size);

/* rd_kafka_conf_set, with the property's name in errstr on failure. */
int kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value,
		   char *errstr, size_t errstr_size)
    __attribute__((warn_unused_result));

/*
 * How a consumer fetches, the same for ticketd and ticket-flood (the
 * benchmark compares them): the broker answers as soon as it has a
 * message (fetch.min.bytes=1), and a fetch that finds nothing waits at most
 * 100 ms. That keeps a reply's latency low at moderate rates and an idle
 * consumer cheap for the broker, at the price of more fetches, each
 * carrying fewer messages, under load (docs/benchmarks.md has the figures).
 * consumer_properties can trade back. 0, or -1 with errstr.
 */
int kafka_conf_set_fetch(rd_kafka_conf_t *conf, char *errstr,
			 size_t errstr_size)
    __attribute__((warn_unused_result));

/* Apply "name=value" properties in order. 0, or -1 with errstr. */
int kafka_conf_apply_properties(rd_kafka_conf_t *conf,
				const struct config_properties *props,
				char *errstr, size_t errstr_size)
    __attribute__((warn_unused_result));

/*
 * What the user configured for this client, in this order: kafka_properties
 * (both clients), then role_props (consumer_properties or
 * producer_properties; NULL for none), then the SASL password from
 * kafka_sasl_password_file or TICKETD_KAFKA_SASL_PASSWORD. 0, or -1 with
 * errstr (which shows no secret value).
 */
int kafka_conf_apply_user(rd_kafka_conf_t *conf, const struct config *cfg,
			  const struct config_properties *role_props,
			  char *errstr, size_t errstr_size)
    __attribute__((warn_unused_result));

/* Route librdkafka's own log lines through log.h. */
void kafka_conf_set_logging(rd_kafka_conf_t *conf);

#endif
