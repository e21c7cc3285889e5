/* config: ticketd's settings, read from a libconfig file and the environment.
 */
#include "config.h"

#include "log.h"
#include "secret.h"

#include <ctype.h>
#include <errno.h>
#include <libconfig.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum setting_type {
	SETTING_STRING,
	SETTING_INT,
	SETTING_PROPERTIES,
};

/*
 * One row per setting: the name in the file (and, upper-cased, after
 * TICKETD_ in the environment), its type, where it goes, its default and
 * its bounds. etc/ticketd.conf documents every row; `make check-config`
 * verifies that.
 */
struct setting {
	const char *name;
	enum setting_type type;
	size_t offset;
	const char *default_string;
	int default_int;
	int min;
	int max;
};

#define STR(name, def)                                                         \
	{                                                                      \
#name, SETTING_STRING, offsetof(struct config, name), def, 0,  \
		    0, 0                                                       \
	}
#define INT(name, def, lo, hi)                                                 \
	{                                                                      \
#name, SETTING_INT, offsetof(struct config, name), NULL, def,  \
		    lo, hi                                                     \
	}
#define PROPS(name)                                                            \
	{                                                                      \
#name, SETTING_PROPERTIES, offsetof(struct config, name),      \
		    NULL, 0, 0, 0                                              \
	}

static const struct setting settings[] = {
    STR(brokers, "127.0.0.1:9092"),
    STR(group_id, "ticketd"),
    STR(request_topic, "bookings.requests"),
    STR(reply_topic, "bookings.replies"),
    STR(dead_letter_topic, "bookings.dead-letter"),
    STR(dead_letter_partition, "original"),
    STR(availability_topic, "bookings.availability"),
    INT(availability_interval_ms, 50, 0, 10000),
    STR(client_id, "ticketd"),
    PROPS(kafka_properties),
    PROPS(consumer_properties),
    PROPS(producer_properties),
    INT(commit_interval_ms, 1000, 10, 60000),
    STR(kafka_sasl_password_file, ""),

    STR(pg_conninfo, "dbname=ticketd"),
    STR(pg_passfile, ""),
    STR(http_pg_conninfo, ""),

    INT(workers, 0, 0, 64),
    INT(batch_max, 500, 1, 10000),
    INT(queue_max, 10000, 1, 1000000),
    INT(drain_timeout_ms, 15000, 0, 600000),

    INT(max_message_bytes, 65536, 256, 1048576),
    INT(max_quantity, 10, 1, 1000000),
    INT(max_sections, 100, 1, 10000),
    INT(max_section_capacity, 1000000, 1, 2000000000),
    INT(max_per_customer, 0, 0, 1000000),

    INT(hold_ttl_default_s, 600, 1, 86400),
    INT(hold_ttl_max_s, 3600, 1, 86400),
    INT(reaper_interval_ms, 1000, 10, 600000),
    INT(reaper_batch, 500, 1, 100000),

    STR(http_address, "127.0.0.1"),
    INT(http_port, 8080, 0, 65535),
    INT(http_pool_size, 2, 1, 64),
    INT(http_max_limit, 500, 1, 10000),
    INT(http_cache_ms, 100, 0, 60000),
    INT(http_max_connections, 4096, 16, 100000),
    INT(http_per_ip_connections, 64, 1, 100000),
    INT(http_idle_timeout_s, 3, 1, 300),

    STR(log_level, "info"),
    STR(log_format, "logfmt"),
};

#define SETTING_COUNT (sizeof(settings) / sizeof(settings[0]))

static char **string_at(struct config *cfg, const struct setting *s)
{
	return (char **)((char *)cfg + s->offset);
}

static int *int_at(struct config *cfg, const struct setting *s)
{
	return (int *)((char *)cfg + s->offset);
}

static struct config_properties *properties_at(struct config *cfg,
					       const struct setting *s)
{
	return (struct config_properties *)((char *)cfg + s->offset);
}

static const struct setting *setting_find(const char *name)
{
	for (size_t i = 0; i < SETTING_COUNT; i++) {
		if (strcmp(settings[i].name, name) == 0)
			return &settings[i];
	}
	return NULL;
}

static int set_string(char **target, const char *value, char *errstr,
		      size_t errstr_size)
{
	char *copy = strdup(value);

	if (!copy) {
		snprintf(errstr, errstr_size, "out of memory");
		return -1;
	}
	free(*target);
	*target = copy;
	return 0;
}

static int set_int(int *target, const struct setting *s, long long value,
		   const char *where, char *errstr, size_t errstr_size)
{
	if (value < s->min || value > s->max) {
		snprintf(errstr, errstr_size,
			 "%s: %s = %lld is out of range [%d, %d]", where,
			 s->name, value, s->min, s->max);
		return -1;
	}
	*target = (int)value;
	return 0;
}

/*
 * Append "name=value" to props; the property must have both parts. A
 * refusal names the setting and the item's place, not its text: a comma in
 * a password given in the environment would put part of it there.
 */
static int properties_add(struct config_properties *props, const char *item,
			  const char *where, const char *name, char *errstr,
			  size_t errstr_size)
{
	const char *eq = strchr(item, '=');
	char **grown;

	if (!eq || eq == item) {
		snprintf(errstr, errstr_size,
			 "%s: %s item %zu is not a \"name=value\" librdkafka "
			 "property",
			 where, name, props->count + 1);
		return -1;
	}
	grown = realloc(props->items, (props->count + 1) * sizeof(char *));
	if (!grown)
		goto fail;
	props->items = grown;
	props->items[props->count] = strdup(item);
	if (!props->items[props->count])
		goto fail;
	props->count++;
	return 0;
fail:
	snprintf(errstr, errstr_size, "out of memory");
	return -1;
}

static void properties_clear(struct config_properties *props)
{
	for (size_t i = 0; i < props->count; i++)
		free(props->items[i]);
	free(props->items);
	props->items = NULL;
	props->count = 0;
}

static int apply_file_setting(struct config *cfg, const struct setting *s,
			      config_setting_t *cs, const char *where,
			      char *errstr, size_t errstr_size)
{
	switch (s->type) {
	case SETTING_STRING:
		if (config_setting_type(cs) != CONFIG_TYPE_STRING) {
			snprintf(errstr, errstr_size, "%s: %s must be a string",
				 where, s->name);
			return -1;
		}
		return set_string(string_at(cfg, s),
				  config_setting_get_string(cs), errstr,
				  errstr_size);
	case SETTING_INT:
		if (config_setting_type(cs) != CONFIG_TYPE_INT &&
		    config_setting_type(cs) != CONFIG_TYPE_INT64) {
			snprintf(errstr, errstr_size,
				 "%s: %s must be an integer", where, s->name);
			return -1;
		}
		return set_int(int_at(cfg, s), s, config_setting_get_int64(cs),
			       where, errstr, errstr_size);
	case SETTING_PROPERTIES: {
		struct config_properties *props = properties_at(cfg, s);
		int n;

		if (!config_setting_is_aggregate(cs)) {
			snprintf(
			    errstr, errstr_size,
			    "%s: %s must be a list of \"name=value\" strings",
			    where, s->name);
			return -1;
		}
		properties_clear(props);
		n = config_setting_length(cs);
		for (int i = 0; i < n; i++) {
			config_setting_t *item =
			    config_setting_get_elem(cs, (unsigned)i);
			if (config_setting_type(item) != CONFIG_TYPE_STRING) {
				snprintf(errstr, errstr_size,
					 "%s: %s[%d] must be a string", where,
					 s->name, i);
				return -1;
			}
			if (properties_add(
				props, config_setting_get_string(item), where,
				s->name, errstr, errstr_size) != 0)
				return -1;
		}
		return 0;
	}
	}
	return -1;
}

static int load_file(struct config *cfg, const char *path, char *errstr,
		     size_t errstr_size)
{
	config_t lc;
	config_setting_t *root;
	int rc = -1;
	int n;

	config_init(&lc);
	if (config_read_file(&lc, path) != CONFIG_TRUE) {
		if (config_error_type(&lc) == CONFIG_ERR_FILE_IO)
			snprintf(errstr, errstr_size, "%s: cannot read: %s",
				 path, strerror(errno));
		else
			snprintf(errstr, errstr_size, "%s:%d: %s",
				 config_error_file(&lc) ? config_error_file(&lc)
							: path,
				 config_error_line(&lc),
				 config_error_text(&lc));
		goto fail;
	}

	root = config_root_setting(&lc);
	n = config_setting_length(root);
	for (int i = 0; i < n; i++) {
		config_setting_t *cs =
		    config_setting_get_elem(root, (unsigned)i);
		const char *name = config_setting_name(cs);
		const struct setting *s = setting_find(name);
		char where[512];

		snprintf(where, sizeof(where), "%s:%d",
			 config_setting_source_file(cs)
			     ? config_setting_source_file(cs)
			     : path,
			 config_setting_source_line(cs));
		if (!s) {
			snprintf(errstr, errstr_size,
				 "%s: unknown setting \"%s\"", where, name);
			goto fail;
		}
		if (apply_file_setting(cfg, s, cs, where, errstr,
				       errstr_size) != 0)
			goto fail;
	}
	rc = 0;
fail:
	/* Every string was copied above: nothing points into lc any more. */
	config_destroy(&lc);
	return rc;
}

static int load_environment(struct config *cfg, char *errstr,
			    size_t errstr_size)
{
	for (size_t i = 0; i < SETTING_COUNT; i++) {
		const struct setting *s = &settings[i];
		char env_name[96] = "TICKETD_";
		size_t pos = strlen(env_name);
		const char *value;
		char where[128];

		for (const char *p = s->name; *p && pos + 1 < sizeof(env_name);
		     p++)
			env_name[pos++] = (char)toupper((unsigned char)*p);
		env_name[pos] = '\0';
		value = getenv(env_name);
		/* The stack's stack.env says TICKETD_PG: take it too. */
		if (!value && strcmp(s->name, "pg_conninfo") == 0) {
			value = getenv("TICKETD_PG");
			snprintf(env_name, sizeof(env_name), "TICKETD_PG");
		}
		if (!value)
			continue;
		snprintf(where, sizeof(where), "environment %s", env_name);

		if (s->type == SETTING_STRING) {
			if (set_string(string_at(cfg, s), value, errstr,
				       errstr_size) != 0)
				return -1;
		} else if (s->type == SETTING_INT) {
			char *end;
			long long v;

			errno = 0;
			v = strtoll(value, &end, 10);
			if (errno || end == value || *end != '\0') {
				snprintf(errstr, errstr_size,
					 "%s: \"%s\" is not an integer", where,
					 value);
				return -1;
			}
			if (set_int(int_at(cfg, s), s, v, where, errstr,
				    errstr_size) != 0)
				return -1;
		} else {
			/* Several properties, separated by commas. */
			struct config_properties *props = properties_at(cfg, s);
			char *copy = strdup(value);
			char *save = NULL;

			if (!copy) {
				snprintf(errstr, errstr_size, "out of memory");
				return -1;
			}
			properties_clear(props);
			for (char *item = strtok_r(copy, ",", &save); item;
			     item = strtok_r(NULL, ",", &save)) {
				if (properties_add(props, item, where, s->name,
						   errstr, errstr_size) != 0) {
					free(copy);
					return -1;
				}
			}
			free(copy);
		}
	}
	return 0;
}

/* Where a property list sets name, or NULL. */
static const char *properties_setting(const struct config *cfg,
				      const char *name)
{
	static const struct {
		const char *setting;
		size_t offset;
	} lists[] = {
	    {"kafka_properties", offsetof(struct config, kafka_properties)},
	    {"consumer_properties",
	     offsetof(struct config, consumer_properties)},
	    {"producer_properties",
	     offsetof(struct config, producer_properties)},
	};
	size_t len = strlen(name);

	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		const struct config_properties *p =
		    (const struct config_properties *)((const char *)cfg +
						       lists[i].offset);

		for (size_t j = 0; j < p->count; j++) {
			if (strncmp(p->items[j], name, len) == 0 &&
			    p->items[j][len] == '=')
				return lists[i].setting;
		}
	}
	return NULL;
}

/*
 * The secrets that are not in the file: the SASL password from its file or
 * the environment (one of the two), and pg_passfile, which libpq reads
 * itself but would skip, with a warning nobody sees, if others could read
 * it. errstr names files and settings, never what they hold.
 */
static int load_secrets(struct config *cfg, char *errstr, size_t errstr_size)
{
	const char *env = getenv("TICKETD_KAFKA_SASL_PASSWORD");
	const char *list;
	char why[512];

	if (env && cfg->kafka_sasl_password_file[0]) {
		snprintf(errstr, errstr_size,
			 "the SASL password is given twice: "
			 "TICKETD_KAFKA_SASL_PASSWORD and "
			 "kafka_sasl_password_file; give one");
		return -1;
	}
	if (cfg->kafka_sasl_password_file[0]) {
		if (secret_read_file(cfg->kafka_sasl_password_file,
				     &cfg->kafka_sasl_password, why,
				     sizeof(why)) != 0) {
			snprintf(errstr, errstr_size,
				 "kafka_sasl_password_file %s", why);
			return -1;
		}
	} else if (env) {
		if (env[0] == '\0') {
			snprintf(
			    errstr, errstr_size,
			    "TICKETD_KAFKA_SASL_PASSWORD is set but empty");
			return -1;
		}
		cfg->kafka_sasl_password = strdup(env);
		if (!cfg->kafka_sasl_password) {
			snprintf(errstr, errstr_size, "out of memory");
			return -1;
		}
	}
	list = properties_setting(cfg, "sasl.password");
	if (cfg->kafka_sasl_password && list) {
		snprintf(errstr, errstr_size,
			 "sasl.password is set in %s and by %s; give it once",
			 list,
			 cfg->kafka_sasl_password_file[0]
			     ? "kafka_sasl_password_file"
			     : "TICKETD_KAFKA_SASL_PASSWORD");
		return -1;
	}
	if (cfg->pg_passfile[0] &&
	    secret_check_file(cfg->pg_passfile, why, sizeof(why)) != 0) {
		snprintf(errstr, errstr_size, "pg_passfile %s", why);
		return -1;
	}
	return 0;
}

/* Checks that span several settings. */
static int validate(const struct config *cfg, char *errstr, size_t errstr_size)
{
	if (cfg->hold_ttl_default_s > cfg->hold_ttl_max_s) {
		snprintf(errstr, errstr_size,
			 "hold_ttl_default_s (%d) is above hold_ttl_max_s (%d)",
			 cfg->hold_ttl_default_s, cfg->hold_ttl_max_s);
		return -1;
	}
	if (log_level_parse(cfg->log_level) < 0) {
		snprintf(
		    errstr, errstr_size,
		    "log_level \"%s\" is not one of error, warn, info, debug",
		    cfg->log_level);
		return -1;
	}
	if (log_format_parse(cfg->log_format) < 0) {
		snprintf(errstr, errstr_size,
			 "log_format \"%s\" is not one of logfmt, json",
			 cfg->log_format);
		return -1;
	}
	if (strcmp(cfg->dead_letter_partition, "original") != 0 &&
	    strcmp(cfg->dead_letter_partition, "any") != 0) {
		snprintf(errstr, errstr_size,
			 "dead_letter_partition \"%s\" is not one of original, "
			 "any",
			 cfg->dead_letter_partition);
		return -1;
	}
	if (cfg->brokers[0] == '\0' || cfg->group_id[0] == '\0' ||
	    cfg->request_topic[0] == '\0' || cfg->reply_topic[0] == '\0' ||
	    cfg->dead_letter_topic[0] == '\0' ||
	    cfg->availability_topic[0] == '\0') {
		snprintf(errstr, errstr_size,
			 "brokers, group_id and the topics must not be empty "
			 "(availability_topic may be \"off\")");
		return -1;
	}
	return 0;
}

int config_load(struct config *cfg, const char *path, char *errstr,
		size_t errstr_size)
{
	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < SETTING_COUNT; i++) {
		const struct setting *s = &settings[i];

		if (s->type == SETTING_STRING) {
			if (set_string(string_at(cfg, s), s->default_string,
				       errstr, errstr_size) != 0)
				return -1;
		} else if (s->type == SETTING_INT) {
			*int_at(cfg, s) = s->default_int;
		}
	}
	if (path && load_file(cfg, path, errstr, errstr_size) != 0)
		return -1;
	if (load_environment(cfg, errstr, errstr_size) != 0)
		return -1;
	/* The query endpoint reads where the workers write unless told. */
	if (!cfg->http_pg_conninfo[0] &&
	    set_string(&cfg->http_pg_conninfo, cfg->pg_conninfo, errstr,
		       errstr_size) != 0)
		return -1;
	if (validate(cfg, errstr, errstr_size) != 0)
		return -1;
	return load_secrets(cfg, errstr, errstr_size);
}

int config_workers_for_cpus(int cpus)
{
	/* Each worker holds a transaction at a time: more workers than CPUs
	 * make smaller batches, each paying a transaction's fixed cost, and
	 * two keep one batch's database work beside another's decisions
	 * (docs/benchmarks.md has the sweep). */
	if (cpus < 2)
		return 2;
	return cpus > 16 ? 16 : cpus;
}

void config_free(struct config *cfg)
{
	for (size_t i = 0; i < SETTING_COUNT; i++) {
		const struct setting *s = &settings[i];

		if (s->type == SETTING_STRING) {
			free(*string_at(cfg, s));
			*string_at(cfg, s) = NULL;
		} else if (s->type == SETTING_PROPERTIES) {
			properties_clear(properties_at(cfg, s));
		}
	}
	secret_free(cfg->kafka_sasl_password);
	cfg->kafka_sasl_password = NULL;
}

void config_print(const struct config *cfg)
{
	struct config *c = (struct config *)cfg;

	for (size_t i = 0; i < SETTING_COUNT; i++) {
		const struct setting *s = &settings[i];

		if (s->type == SETTING_STRING &&
		    (s->offset == offsetof(struct config, pg_conninfo) ||
		     s->offset == offsetof(struct config, http_pg_conninfo))) {
			char *shown = secret_mask_conninfo(*string_at(c, s));

			printf("%s = \"%s\"\n", s->name,
			       shown ? shown : SECRET_MASK);
			free(shown);
		} else if (s->type == SETTING_STRING) {
			printf("%s = \"%s\"\n", s->name, *string_at(c, s));
		} else if (s->type == SETTING_INT) {
			printf("%s = %d\n", s->name, *int_at(c, s));
		} else {
			struct config_properties *p = properties_at(c, s);

			printf("%s = [", s->name);
			for (size_t j = 0; j < p->count; j++) {
				char *shown = secret_mask_property(p->items[j]);

				printf("%s\"%s\"", j ? ", " : " ",
				       shown ? shown : SECRET_MASK);
				free(shown);
			}
			printf(" ]\n");
		}
	}
	if (c->kafka_sasl_password)
		printf("# the SASL password is set (from %s), not shown\n",
		       c->kafka_sasl_password_file[0]
			   ? "kafka_sasl_password_file"
			   : "TICKETD_KAFKA_SASL_PASSWORD");
}

void config_each_name(void (*fn)(const char *name, void *arg), void *arg)
{
	for (size_t i = 0; i < SETTING_COUNT; i++)
		fn(settings[i].name, arg);
}
