/* Unit tests for config: file, environment, bounds, and the sample file
 * documenting every setting. Run from the repository root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "cpus.h"

extern char **environ;

static char errstr[1024];
static char path[] = "/tmp/ticketd-test-config-XXXXXX";

/* Write text to a fresh file; its name is in path until the next call. */
static void write_file(const char *text)
{
	int fd;
	FILE *f;

	strcpy(path, "/tmp/ticketd-test-config-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static int load_text(struct config *cfg, const char *text)
{
	int rc;

	write_file(text);
	errstr[0] = '\0';
	rc = config_load(cfg, path, errstr, sizeof(errstr));
	unlink(path);
	return rc;
}

/* The file must be refused, and errstr must start with where and hold
 * what (either may be NULL). */
static void refuse_text(const char *text, const char *where, const char *what)
{
	struct config cfg;
	char prefix[128];

	if (load_text(&cfg, text) == 0) {
		config_free(&cfg);
		fail_msg("accepted: %s", text);
	}
	config_free(&cfg);
	if (where) {
		snprintf(prefix, sizeof(prefix), "%s:%s", path, where);
		if (strncmp(errstr, prefix, strlen(prefix)) != 0)
			fail_msg("\"%s\" does not start with \"%s\"", errstr,
				 prefix);
	}
	if (what && !strstr(errstr, what))
		fail_msg("\"%s\" does not say \"%s\"", errstr, what);
}

/*
 * Each test starts and ends without any TICKETD_ variable, whatever the
 * shell that ran it had (a sourced stack.env sets TICKETD_PG).
 */
static int clear_environment(void **state)
{
	int again = 1;

	(void)state;
	while (again) {
		again = 0;
		for (char **e = environ; *e; e++) {
			char name[128];
			const char *eq = strchr(*e, '=');
			size_t len = eq ? (size_t)(eq - *e) : strlen(*e);

			if (strncmp(*e, "TICKETD_", 8) != 0 ||
			    len >= sizeof(name))
				continue;
			memcpy(name, *e, len);
			name[len] = '\0';
			unsetenv(name);
			again = 1; /* environ changed under us: start over */
			break;
		}
	}
	return 0;
}

static void test_defaults(void **state)
{
	struct config cfg;

	(void)state;
	assert_int_equal(config_load(&cfg, NULL, errstr, sizeof(errstr)), 0);
	assert_string_equal(cfg.brokers, "127.0.0.1:9092");
	assert_string_equal(cfg.group_id, "ticketd");
	assert_string_equal(cfg.request_topic, "bookings.requests");
	assert_string_equal(cfg.reply_topic, "bookings.replies");
	assert_string_equal(cfg.dead_letter_topic, "bookings.dead-letter");
	assert_string_equal(cfg.client_id, "ticketd");
	assert_int_equal(cfg.consumer_properties.count, 0);
	assert_int_equal(cfg.producer_properties.count, 0);
	assert_string_equal(cfg.pg_conninfo, "dbname=ticketd");
	/* The query endpoint reads where the workers write unless told. */
	assert_string_equal(cfg.http_pg_conninfo, "dbname=ticketd");
	/* 0: one a CPU, resolved by the daemon at start-up. */
	assert_int_equal(cfg.workers, 0);
	assert_true(cfg.batch_max >= 1);
	assert_true(cfg.queue_max >= cfg.batch_max);
	assert_int_equal(cfg.max_quantity, 10);
	assert_true(cfg.hold_ttl_default_s <= cfg.hold_ttl_max_s);
	assert_true(cfg.max_message_bytes >= 256);
	assert_string_equal(cfg.http_address, "127.0.0.1");
	assert_string_equal(cfg.log_level, "info");
	assert_string_equal(cfg.log_format, "logfmt");
	config_free(&cfg);
	/* config_free leaves nothing dangling: a second call is harmless. */
	assert_null(cfg.brokers);
	config_free(&cfg);
}

static void test_file_values(void **state)
{
	struct config cfg;

	(void)state;
	assert_int_equal(
	    load_text(
		&cfg,
		"# a comment\n"
		"brokers = \"k1:9092,k2:9092\";\n"
		"workers = 8;\n"
		"max_message_bytes = 1048576L;\n"
		"consumer_properties = [ \"session.timeout.ms=6000\",\n"
		"    \"fetch.wait.max.ms=5\", \"ssl.key.password=a=b\" ];\n"
		"producer_properties = ( \"linger.ms=1\" );\n"
		"log_level = \"debug\";\n"
		"log_format = \"json\";\n"),
	    0);
	assert_string_equal(cfg.brokers, "k1:9092,k2:9092");
	assert_int_equal(cfg.workers, 8);
	assert_int_equal(cfg.max_message_bytes, 1048576);
	assert_int_equal(cfg.consumer_properties.count, 3);
	assert_string_equal(cfg.consumer_properties.items[0],
			    "session.timeout.ms=6000");
	assert_string_equal(cfg.consumer_properties.items[1],
			    "fetch.wait.max.ms=5");
	/* Only the first '=' splits: values may hold more. */
	assert_string_equal(cfg.consumer_properties.items[2],
			    "ssl.key.password=a=b");
	assert_int_equal(cfg.producer_properties.count, 1);
	assert_string_equal(cfg.producer_properties.items[0], "linger.ms=1");
	assert_string_equal(cfg.log_level, "debug");
	assert_string_equal(cfg.log_format, "json");
	/* What the file does not say keeps its default. */
	assert_string_equal(cfg.group_id, "ticketd");
	config_free(&cfg);

	/* Every log level there is. */
	assert_int_equal(load_text(&cfg, "log_level = \"error\";\n"), 0);
	config_free(&cfg);
	assert_int_equal(load_text(&cfg, "log_level = \"warn\";\n"), 0);
	config_free(&cfg);
	assert_int_equal(load_text(&cfg, "log_level = \"info\";\n"), 0);
	config_free(&cfg);
	/* Bounds are inclusive. */
	assert_int_equal(load_text(&cfg, "workers = 1;\nhttp_port = 0;\n"), 0);
	assert_int_equal(cfg.workers, 1);
	assert_int_equal(cfg.http_port, 0);
	config_free(&cfg);
	assert_int_equal(load_text(&cfg, "workers = 64;\nhttp_port = 65535;\n"),
			 0);
	config_free(&cfg);
	/* An empty file is all defaults. */
	assert_int_equal(load_text(&cfg, ""), 0);
	assert_int_equal(cfg.workers, 0);
	config_free(&cfg);
}

/* workers = 0: one a CPU, between 2 and 16; a cgroup quota counts. */
static void test_workers_follow_the_cpus(void **state)
{
	(void)state;
	assert_int_equal(config_workers_for_cpus(1), 2);
	assert_int_equal(config_workers_for_cpus(2), 2);
	assert_int_equal(config_workers_for_cpus(6), 6);
	assert_int_equal(config_workers_for_cpus(16), 16);
	assert_int_equal(config_workers_for_cpus(96), 16);
	assert_true(cpus_available() >= 1);
	assert_int_equal(cpus_quota_parse("200000 100000\n"), 2);
	assert_int_equal(cpus_quota_parse("150000 100000\n"), 2);
	assert_int_equal(cpus_quota_parse("50000 100000"), 1);
	assert_int_equal(cpus_quota_parse("max 100000\n"), 0);
	assert_int_equal(cpus_quota_parse(""), 0);
	assert_int_equal(cpus_quota_parse("200000\n"), 0);
	assert_int_equal(cpus_quota_parse("-5 100000\n"), 0);
	assert_int_equal(cpus_quota_parse("200000 0\n"), 0);
	assert_int_equal(cpus_quota_parse("200000 100000 junk"), 0);
	assert_int_equal(cpus_quota_parse(NULL), 0);
	assert_int_equal(cpus_quota_parse("9223372036854775807 1\n"), 4096);
	assert_int_equal(cpus_quota_parse("99999999999999999999 100000\n"), 0);
}

/* A refusal says file:line: and what is wrong. */
static void test_errors_name_file_and_line(void **state)
{
	struct config cfg;

	(void)state;
	/* Out of range. */
	refuse_text("workers = 2;\nbatch_max = 0;\n", "2: ", "batch_max");
	refuse_text("workers = 2;\nbatch_max = 0;\n", "2: ", "out of range");
	refuse_text("\nworkers = 65;\n", "2: ", "workers");
	refuse_text("workers = -1;\n", "1: ", "workers");
	refuse_text("http_port = -1;\n", "1: ", "http_port");
	refuse_text("workers = 5000000000L;\n", "1: ", "workers");
	refuse_text("workers = 4294967300L;\n", "1: ", "workers");
	/* Unknown setting, with its line. */
	refuse_text("\n\nno_such_thing = 1;\n",
		    "3: ", "unknown setting \"no_such_thing\"");
	refuse_text("kafka = { brokers = \"x\"; };\n", "1: ", "kafka");
	/* Wrong type. */
	refuse_text("workers = \"four\";\n",
		    "1: ", "workers must be an integer");
	refuse_text("workers = 4.0;\n", "1: ", "workers must be an integer");
	refuse_text("workers = true;\n", "1: ", "workers must be an integer");
	refuse_text("brokers = 5;\n", "1: ", "brokers must be a string");
	refuse_text("consumer_properties = \"a=b\";\n",
		    "1: ", "consumer_properties");
	refuse_text("consumer_properties = [ 5 ];\n",
		    "1: ", "consumer_properties");
	/* A property without its name=value shape. */
	refuse_text("consumer_properties = [ \"a=b\", \"novalue\" ];\n",
		    "1: ", "name=value");
	refuse_text("producer_properties = [ \"=value\" ];\n",
		    "1: ", "name=value");
	/* Syntax errors and a repeated setting, with their line. */
	refuse_text("workers = 2;\nbatch_max = = 3;\n", "2: ", NULL);
	refuse_text("workers = 2;\nworkers = 3;\n", "2: ", NULL);
	/* Values checked against each other or a list. */
	refuse_text("log_level = \"loud\";\n", NULL, "log_level");
	refuse_text("log_level = \"\";\n", NULL, "log_level");
	refuse_text("log_format = \"xml\";\n", NULL, "log_format");
	refuse_text("hold_ttl_default_s = 100;\nhold_ttl_max_s = 10;\n", NULL,
		    "hold_ttl_default_s");
	refuse_text("brokers = \"\";\n", NULL, "brokers");
	refuse_text("reply_topic = \"\";\n", NULL, NULL);
	/* A file that is not there. */
	assert_int_equal(config_load(&cfg, "/nonexistent/ticketd.conf", errstr,
				     sizeof(errstr)),
			 -1);
	assert_non_null(strstr(errstr, "/nonexistent/ticketd.conf"));
	config_free(&cfg);
}

static void test_environment_wins(void **state)
{
	struct config cfg;

	(void)state;
	setenv("TICKETD_WORKERS", "7", 1);
	setenv("TICKETD_BROKERS", "env:9092", 1);
	setenv("TICKETD_PG", "host=example dbname=x", 1);
	setenv("TICKETD_CONSUMER_PROPERTIES",
	       "fetch.wait.max.ms=5,session.timeout.ms=6000", 1);
	assert_int_equal(load_text(&cfg,
				   "workers = 2;\nbrokers = \"file:9092\";\n"
				   "pg_conninfo = \"dbname=file\";\n"
				   "consumer_properties = [ \"a=1\" ];\n"),
			 0);
	assert_int_equal(cfg.workers, 7);
	assert_string_equal(cfg.brokers, "env:9092");
	/* TICKETD_PG, the stack's name, is pg_conninfo. */
	assert_string_equal(cfg.pg_conninfo, "host=example dbname=x");
	/* http_pg_conninfo unset follows pg_conninfo wherever it came from. */
	assert_string_equal(cfg.http_pg_conninfo, "host=example dbname=x");
	/* The list replaces the file's, it is not appended to it. */
	assert_int_equal(cfg.consumer_properties.count, 2);
	assert_string_equal(cfg.consumer_properties.items[0],
			    "fetch.wait.max.ms=5");
	assert_string_equal(cfg.consumer_properties.items[1],
			    "session.timeout.ms=6000");
	config_free(&cfg);

	/* The setting's own name wins over the alias. */
	setenv("TICKETD_PG_CONNINFO", "dbname=long", 1);
	assert_int_equal(config_load(&cfg, NULL, errstr, sizeof(errstr)), 0);
	assert_string_equal(cfg.pg_conninfo, "dbname=long");
	config_free(&cfg);

	/* Set, it is its own (a standby). */
	setenv("TICKETD_HTTP_PG_CONNINFO", "host=standby dbname=x", 1);
	assert_int_equal(config_load(&cfg, NULL, errstr, sizeof(errstr)), 0);
	assert_string_equal(cfg.pg_conninfo, "dbname=long");
	assert_string_equal(cfg.http_pg_conninfo, "host=standby dbname=x");
	config_free(&cfg);
	unsetenv("TICKETD_HTTP_PG_CONNINFO");
}

static void test_environment_refusals(void **state)
{
	static const struct {
		const char *name;
		const char *value;
	} bad[] = {
	    {"TICKETD_WORKERS", "lots"},
	    {"TICKETD_WORKERS", ""},
	    {"TICKETD_WORKERS", "7x"},
	    {"TICKETD_WORKERS", "-1"},
	    {"TICKETD_WORKERS", "65"},
	    {"TICKETD_WORKERS", "99999999999999999999"},
	    {"TICKETD_CONSUMER_PROPERTIES", "a=1,novalue"},
	    {"TICKETD_LOG_LEVEL", "verbose"},
	    {"TICKETD_HOLD_TTL_DEFAULT_S", "7200"},
	};
	struct config cfg;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv(bad[i].name, bad[i].value, 1);
		if (config_load(&cfg, NULL, errstr, sizeof(errstr)) == 0) {
			config_free(&cfg);
			fail_msg("accepted %s=%s", bad[i].name, bad[i].value);
		}
		config_free(&cfg);
		/* Say which variable, unless a cross-setting check spoke. */
		if (!strstr(errstr, bad[i].name) &&
		    !strstr(errstr, "log_level") &&
		    !strstr(errstr, "hold_ttl_default_s"))
			fail_msg("%s=%s: \"%s\" does not name it", bad[i].name,
				 bad[i].value, errstr);
		unsetenv(bad[i].name);
	}
}

struct doc_check {
	const char *text;
	int missing;
	int count;
};

static void check_documented(const char *name, void *arg)
{
	struct doc_check *check = arg;
	char needle[128];

	check->count++;
	/* At the start of a line: a setting, not a comment about it. */
	snprintf(needle, sizeof(needle), "\n%s = ", name);
	if (!strstr(check->text, needle)) {
		print_error("setting %s is not in etc/ticketd.conf\n", name);
		check->missing++;
	}
}

static char *read_all(const char *name)
{
	FILE *f = fopen(name, "r");
	char *text;
	long size;

	if (!f)
		fail_msg("cannot open %s (run from the repository root)", name);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	size = ftell(f);
	assert_true(size >= 0);
	rewind(f);
	text = calloc(1, (size_t)size + 2);
	assert_non_null(text);
	/* A leading newline, so that the first line matches "\nname". */
	text[0] = '\n';
	assert_int_equal(fread(text + 1, 1, (size_t)size, f), (size_t)size);
	fclose(f);
	return text;
}

/* The sample file loads, and documents every setting there is. */
static void test_sample_file_documents_every_setting(void **state)
{
	struct config cfg;
	struct doc_check check = {0};
	char *text = read_all("etc/ticketd.conf");

	(void)state;
	check.text = text;
	config_each_name(check_documented, &check);
	assert_true(check.count >= 29);
	assert_int_equal(check.missing, 0);
	free(text);
	if (config_load(&cfg, "etc/ticketd.conf", errstr, sizeof(errstr)) != 0)
		fail_msg("etc/ticketd.conf: %s", errstr);
	config_free(&cfg);
}

/* What config_print writes for cfg, as a heap string. */
static char *print_to_string(const struct config *cfg)
{
	char name[] = "/tmp/ticketd-test-print-XXXXXX";
	int fd = mkstemp(name);
	int saved;
	char *text;

	assert_true(fd >= 0);
	fflush(stdout);
	saved = dup(STDOUT_FILENO);
	assert_true(saved >= 0);
	assert_true(dup2(fd, STDOUT_FILENO) >= 0);
	config_print(cfg);
	fflush(stdout);
	assert_true(dup2(saved, STDOUT_FILENO) >= 0);
	close(saved);
	close(fd);
	text = read_all(name);
	unlink(name);
	return text;
}

/*
 * The sample shows the defaults: an installed copy changes nothing until
 * someone edits it.
 */
static void test_sample_file_shows_the_defaults(void **state)
{
	struct config defaults, sample;
	char *want, *got;

	(void)state;
	assert_int_equal(config_load(&defaults, NULL, errstr, sizeof(errstr)),
			 0);
	assert_int_equal(
	    config_load(&sample, "etc/ticketd.conf", errstr, sizeof(errstr)),
	    0);
	want = print_to_string(&defaults);
	got = print_to_string(&sample);
	assert_non_null(strstr(want, "\nworkers = 0\n"));
	assert_string_equal(got, want);
	free(want);
	free(got);
	config_free(&defaults);
	config_free(&sample);
}

/* A file of its own holding text (mode 0600, mkstemp's); the caller
 * unlinks name. */
static void write_secret_file(char *name, const char *text)
{
	int fd = mkstemp(name);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(close(fd), 0);
}

/* Loaded, or failed with errstr saying what and holding no "Planted". */
static int load_secret_text(struct config *cfg, const char *text,
			    const char *what)
{
	int rc = load_text(cfg, text);

	if (strstr(errstr, "Planted"))
		fail_msg("the refusal shows the secret: %s", errstr);
	if (what && rc == 0)
		fail_msg("accepted: %s", text);
	if (what && !strstr(errstr, what))
		fail_msg("\"%s\" does not say \"%s\"", errstr, what);
	return rc;
}

static void test_security_settings(void **state)
{
	char pw[] = "/tmp/ticketd-test-pw-XXXXXX";
	char passfile[] = "/tmp/ticketd-test-pgpass-XXXXXX";
	char text[1024];
	struct config cfg;

	(void)state;
	write_secret_file(pw, "Planted-sasl\n");
	write_secret_file(passfile, "*:*:*:*:Planted-pg\n");
	snprintf(text, sizeof(text),
		 "kafka_properties = [ \"security.protocol=SASL_SSL\",\n"
		 "    \"sasl.mechanisms=SCRAM-SHA-512\" ];\n"
		 "kafka_sasl_password_file = \"%s\";\n"
		 "pg_passfile = \"%s\";\n",
		 pw, passfile);
	assert_int_equal(load_secret_text(&cfg, text, NULL), 0);
	assert_int_equal(cfg.kafka_properties.count, 2);
	assert_string_equal(cfg.kafka_properties.items[1],
			    "sasl.mechanisms=SCRAM-SHA-512");
	assert_string_equal(cfg.kafka_sasl_password, "Planted-sasl");
	assert_string_equal(cfg.pg_passfile, passfile);
	config_free(&cfg);
	assert_null(cfg.kafka_sasl_password);

	/* The password in the environment instead. */
	setenv("TICKETD_KAFKA_SASL_PASSWORD", "Planted-env", 1);
	assert_int_equal(load_secret_text(&cfg, "", NULL), 0);
	assert_string_equal(cfg.kafka_sasl_password, "Planted-env");
	config_free(&cfg);
	/* Not both, and not beside a sasl.password property. */
	load_secret_text(&cfg, text, "given twice");
	config_free(&cfg);
	load_secret_text(
	    &cfg, "consumer_properties = [ \"sasl.password=Planted\" ];\n",
	    "consumer_properties");
	config_free(&cfg);
	setenv("TICKETD_KAFKA_SASL_PASSWORD", "", 1);
	load_secret_text(&cfg, "", "empty");
	config_free(&cfg);
	unsetenv("TICKETD_KAFKA_SASL_PASSWORD");

	/* Files others may read, or that are not there. */
	assert_int_equal(chmod(pw, 0644), 0);
	load_secret_text(&cfg, text, "kafka_sasl_password_file");
	config_free(&cfg);
	load_secret_text(&cfg, text, "chmod 600");
	config_free(&cfg);
	assert_int_equal(chmod(pw, 0600), 0);
	assert_int_equal(chmod(passfile, 0640), 0);
	load_secret_text(&cfg, text, "pg_passfile");
	config_free(&cfg);
	unlink(passfile);
	load_secret_text(&cfg, text, "pg_passfile");
	config_free(&cfg);
	unlink(pw);
	load_secret_text(&cfg, "kafka_sasl_password_file = \"/nonexistent\";\n",
			 "/nonexistent");
	config_free(&cfg);

	/* A refused property list does not quote its items: a comma in a
	 * password given in the environment would cut it there. */
	setenv("TICKETD_KAFKA_PROPERTIES", "sasl.password=Plan,ted", 1);
	assert_int_equal(config_load(&cfg, NULL, errstr, sizeof(errstr)), -1);
	assert_null(strstr(errstr, "ted"));
	assert_non_null(strstr(errstr, "TICKETD_KAFKA_PROPERTIES"));
	config_free(&cfg);
	unsetenv("TICKETD_KAFKA_PROPERTIES");
}

/* --print-config shows no password: conninfo, property lists, SASL. */
static void test_print_masks_secrets(void **state)
{
	struct config cfg;
	char *out;

	(void)state;
	assert_int_equal(
	    load_text(&cfg,
		      "pg_conninfo = \"host=db password=Planted1 user=u\";\n"
		      "http_pg_conninfo = \"host=r password=Planted5\";\n"
		      "kafka_properties = [ \"ssl.key.password=Planted2\",\n"
		      "    \"sasl.username=u\" ];\n"
		      "consumer_properties = [ \"sasl.password=Planted3\" ];\n"
		      "producer_properties = [ \"ssl.key.pem=Planted4\" ];\n"),
	    0);
	out = print_to_string(&cfg);
	if (strstr(out, "Planted"))
		fail_msg("--print-config shows a secret:\n%s", out);
	assert_non_null(
	    strstr(out, "pg_conninfo = \"host=db password=(hidden) user=u\""));
	assert_non_null(
	    strstr(out, "http_pg_conninfo = \"host=r password=(hidden)\""));
	assert_non_null(strstr(out, "\"ssl.key.password=(hidden)\""));
	assert_non_null(strstr(out, "\"sasl.username=u\""));
	assert_non_null(strstr(out, "\"sasl.password=(hidden)\""));
	assert_non_null(strstr(out, "\"ssl.key.pem=(hidden)\""));
	free(out);
	config_free(&cfg);

	setenv("TICKETD_PG", "postgresql://u:Planted5@db/t", 1);
	setenv("TICKETD_KAFKA_SASL_PASSWORD", "Planted6", 1);
	assert_int_equal(config_load(&cfg, NULL, errstr, sizeof(errstr)), 0);
	out = print_to_string(&cfg);
	if (strstr(out, "Planted"))
		fail_msg("--print-config shows a secret:\n%s", out);
	assert_non_null(strstr(out, "postgresql://u:(hidden)@db/t"));
	assert_non_null(strstr(out, "TICKETD_KAFKA_SASL_PASSWORD"));
	free(out);
	config_free(&cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_defaults, clear_environment,
					    clear_environment),
	    cmocka_unit_test_setup_teardown(test_file_values, clear_environment,
					    clear_environment),
	    cmocka_unit_test_setup_teardown(test_errors_name_file_and_line,
					    clear_environment,
					    clear_environment),
	    cmocka_unit_test(test_workers_follow_the_cpus),
	    cmocka_unit_test_setup_teardown(
		test_environment_wins, clear_environment, clear_environment),
	    cmocka_unit_test_setup_teardown(test_environment_refusals,
					    clear_environment,
					    clear_environment),
	    cmocka_unit_test_setup_teardown(
		test_sample_file_documents_every_setting, clear_environment,
		clear_environment),
	    cmocka_unit_test_setup_teardown(test_sample_file_shows_the_defaults,
					    clear_environment,
					    clear_environment),
	    cmocka_unit_test_setup_teardown(
		test_security_settings, clear_environment, clear_environment),
	    cmocka_unit_test_setup_teardown(
		test_print_masks_secrets, clear_environment, clear_environment),
	};

	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
