/* kafka: librdkafka configuration shared by the consumer, the reply
 * producer and ticket-flood: checked property setting and logging. */
#include "kafka.h"

#include "log.h"
#include "secret.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value,
		   char *errstr, size_t errstr_size)
{
	char why[512];

	if (rd_kafka_conf_set(conf, name, value, why, sizeof(why)) !=
	    RD_KAFKA_CONF_OK) {
		/* librdkafka's reason names the property, not its value. */
		snprintf(
		    errstr, errstr_size, "librdkafka property %s=%s: %s", name,
		    secret_property_is_secret(name, strlen(name)) ? SECRET_MASK
								  : value,
		    why);
		return -1;
	}
	return 0;
}

int kafka_conf_set_fetch(rd_kafka_conf_t *conf, char *errstr,
			 size_t errstr_size)
{
	if (kafka_conf_set(conf, "fetch.wait.max.ms", "100", errstr,
			   errstr_size) != 0)
		return -1;
	return kafka_conf_set(conf, "fetch.min.bytes", "1", errstr,
			      errstr_size);
}

int kafka_conf_apply_properties(rd_kafka_conf_t *conf,
				const struct config_properties *props,
				char *errstr, size_t errstr_size)
{
	for (size_t i = 0; i < props->count; i++) {
		char *copy = strdup(props->items[i]);
		char *eq;
		int rc;

		if (!copy) {
			snprintf(errstr, errstr_size, "out of memory");
			return -1;
		}
		eq = strchr(copy, '=');
		*eq = '\0'; /* config.c checked that there is one */
		rc = kafka_conf_set(conf, copy, eq + 1, errstr, errstr_size);
		free(copy);
		if (rc != 0)
			return -1;
	}
	return 0;
}

int kafka_conf_apply_user(rd_kafka_conf_t *conf, const struct config *cfg,
			  const struct config_properties *role_props,
			  char *errstr, size_t errstr_size)
{
	if (kafka_conf_apply_properties(conf, &cfg->kafka_properties, errstr,
					errstr_size) != 0)
		return -1;
	if (role_props && kafka_conf_apply_properties(conf, role_props, errstr,
						      errstr_size) != 0)
		return -1;
	/* config.c refused a sasl.password in the lists beside this one. */
	if (cfg->kafka_sasl_password &&
	    kafka_conf_set(conf, "sasl.password", cfg->kafka_sasl_password,
			   errstr, errstr_size) != 0)
		return -1;
	return 0;
}

/* syslog levels, as librdkafka reports them, to ours. */
static void on_log(const rd_kafka_t *rk, int level, const char *fac,
		   const char *buf)
{
	const char *name = rk ? rd_kafka_name(rk) : "rdkafka";

	if (level <= 3)
		log_error("kafka %s %s: %s", name, fac, buf);
	else if (level == 4)
		log_warn("kafka %s %s: %s", name, fac, buf);
	else if (level <= 6)
		log_info("kafka %s %s: %s", name, fac, buf);
	else
		log_debug("kafka %s %s: %s", name, fac, buf);
}

void kafka_conf_set_logging(rd_kafka_conf_t *conf)
{
	rd_kafka_conf_set_log_cb(conf, on_log);
}

rd_kafka_conf_t *kafka_conf_new(const struct config *cfg, const char *role,
				char *errstr, size_t errstr_size)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char client_id[256];

	snprintf(client_id, sizeof(client_id), "%s-%s", cfg->client_id, role);
	if (kafka_conf_set(conf, "bootstrap.servers", cfg->brokers, errstr,
			   errstr_size) != 0 ||
	    kafka_conf_set(conf, "client.id", client_id, errstr, errstr_size) !=
		0) {
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	kafka_conf_set_logging(conf);
	return conf;
}

rd_kafka_conf_t *kafka_conf_new_producer(const struct config *cfg,
					 const char *role,
					 const char *linger_ms, char *errstr,
					 size_t errstr_size)
{
	rd_kafka_conf_t *conf = kafka_conf_new(cfg, role, errstr, errstr_size);

	if (!conf)
		return NULL;
	/* The defaults that matter, before the user's own properties. */
	if (kafka_conf_set(conf, "enable.idempotence", "true", errstr,
			   errstr_size) != 0 ||
	    kafka_conf_set(conf, "acks", "all", errstr, errstr_size) != 0 ||
	    kafka_conf_set(conf, "linger.ms", linger_ms, errstr, errstr_size) !=
		0 ||
	    kafka_conf_apply_user(conf, cfg, &cfg->producer_properties, errstr,
				  errstr_size) != 0) {
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	return conf;
}
