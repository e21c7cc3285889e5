/* config: ticketd's settings, read from a libconfig file and the environment.
 */
#ifndef TICKETD_CONFIG_H
#define TICKETD_CONFIG_H

#include <stddef.h>

/* librdkafka properties passed through verbatim, "name=value" each. */
struct config_properties {
	char **items;
	size_t count;
};

struct config {
	/* Kafka */
	char *brokers;
	char *group_id;
	char *request_topic;
	char *reply_topic;
	char *dead_letter_topic;
	char *dead_letter_partition; /* "original" or "any" */
	char *availability_topic;
	int availability_interval_ms;
	char *client_id;
	struct config_properties kafka_properties; /* both clients, first */
	struct config_properties consumer_properties;
	struct config_properties producer_properties;
	int commit_interval_ms;
	char *kafka_sasl_password_file;
	/* Not a setting: the SASL password, read from kafka_sasl_password_file
	 * or taken from TICKETD_KAFKA_SASL_PASSWORD; NULL when neither. Never
	 * printed or logged. */
	char *kafka_sasl_password;

	/* PostgreSQL */
	char *pg_conninfo;
	char *pg_passfile;
	/* The query endpoint's reads but GET /requests/{id}: pg_conninfo
	 * unless set (may be a standby, behind the primary). */
	char *http_pg_conninfo;

	/* Workers */
	int workers;
	int batch_max;
	int queue_max;
	int drain_timeout_ms;

	/* Limits */
	int max_message_bytes;
	int max_quantity;
	int max_sections;
	int max_section_capacity;
	int max_per_customer;

	/* Holds */
	int hold_ttl_default_s;
	int hold_ttl_max_s;
	int reaper_interval_ms;
	int reaper_batch;

	/* HTTP */
	char *http_address;
	int http_port;
	int http_pool_size;
	int http_max_limit;
	int http_cache_ms;
	int http_max_connections;
	int http_per_ip_connections;
	int http_idle_timeout_s;

	/* Logging */
	char *log_level;
	char *log_format;
};

/*
 * Fill cfg with the defaults, then the settings of the file at path (NULL:
 * defaults only), then the TICKETD_<NAME> environment variables; then read
 * the SASL password (kafka_sasl_password_file or TICKETD_KAFKA_SASL_PASSWORD)
 * and check pg_passfile. Returns 0, or -1 with "file:line: what is wrong" in
 * errstr, which never holds a secret. On -1 cfg holds whatever was set so
 * far; config_free it either way.
 */
int config_load(struct config *cfg, const char *path, char *errstr,
		size_t errstr_size) __attribute__((warn_unused_result));

/*
 * What workers = 0 stands for on a machine where this process may use
 * cpus CPUs: one worker a CPU, at least 2 and at most 16.
 */
int config_workers_for_cpus(int cpus);

/* Free every string cfg owns. cfg itself belongs to the caller. */
void config_free(struct config *cfg);

/* Print every setting and its value, for --print-config: passwords in
 * pg_conninfo and secret librdkafka properties are masked, the SASL
 * password is never shown. */
void config_print(const struct config *cfg);

/* Call fn for each setting name in the table (tests check the sample file). */
void config_each_name(void (*fn)(const char *name, void *arg), void *arg);

#endif
