/* Unit tests for config: file, environment, bounds, and the sample file
 * documenting every setting. Run from the repository root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

static char errstr[1024];

static const char *write_file(const char *text)
{
	static char path[] = "/tmp/ticketd-test-config-XXXXXX";
	int fd;
	FILE *f;

	strcpy(path, "/tmp/ticketd-test-config-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	fputs(text, f);
	fclose(f);
	return path;
}

static int load_text(struct config *cfg, const char *text)
{
	const char *path = write_file(text);
	int rc = config_load(cfg, path, errstr, sizeof(errstr));

	unlink(path);
	return rc;
}

static int teardown(void **state)
{
	(void)state;
	unsetenv("TICKETD_WORKERS");
	unsetenv("TICKETD_PG");
	unsetenv("TICKETD_PG_CONNINFO");
	unsetenv("TICKETD_CONSUMER_PROPERTIES");
	return 0;
}

static void test_defaults(void **state)
{
	struct config cfg;

	(void)state;
	assert_int_equal(config_load(&cfg, NULL, errstr, sizeof(errstr)), 0);
	assert_string_equal(cfg.request_topic, "bookings.requests");
	assert_string_equal(cfg.reply_topic, "bookings.replies");
	assert_string_equal(cfg.dead_letter_topic, "bookings.dead-letter");
	assert_int_equal(cfg.workers, 4);
	assert_int_equal(cfg.consumer_properties.count, 0);
	config_free(&cfg);
}

static void test_errors_name_file_and_line(void **state)
{
	struct config cfg;

	(void)state;
	assert_int_equal(load_text(&cfg, "workers = 2;\nbatch_max = 0;\n"), -1);
	assert_non_null(strstr(errstr, ":2: batch_max"));
	config_free(&cfg);
	assert_int_equal(load_text(&cfg, "\n\nno_such_thing = 1;\n"), -1);
	assert_non_null(
	    strstr(errstr, ":3: unknown setting \"no_such_thing\""));
	config_free(&cfg);
	assert_int_equal(load_text(&cfg, "workers = \"four\";\n"), -1);
	assert_non_null(strstr(errstr, "workers must be an integer"));
	config_free(&cfg);
	assert_int_equal(load_text(&cfg, "brokers = 5;\n"), -1);
	assert_non_null(strstr(errstr, "brokers must be a string"));
	config_free(&cfg);
	assert_int_equal(load_text(&cfg, "workers = 2;\nbatch_max = = 3;\n"),
			 -1);
	assert_non_null(
	    strstr(errstr, ":2:")); /* syntax error, with its line */
	config_free(&cfg);
	assert_int_equal(
	    load_text(&cfg, "consumer_properties = [ \"novalue\" ];\n"), -1);
	assert_non_null(strstr(errstr, "name=value"));
	config_free(&cfg);
	assert_int_equal(load_text(&cfg, "log_level = \"loud\";\n"), -1);
	assert_non_null(strstr(errstr, "log_level"));
	config_free(&cfg);
	assert_int_equal(
	    load_text(&cfg,
		      "hold_ttl_default_s = 100;\nhold_ttl_max_s = 10;\n"),
	    -1);
	assert_non_null(strstr(errstr, "hold_ttl_default_s"));
	config_free(&cfg);
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
	setenv("TICKETD_PG", "host=example dbname=x", 1);
	setenv("TICKETD_CONSUMER_PROPERTIES",
	       "fetch.wait.max.ms=5,session.timeout.ms=6000", 1);
	assert_int_equal(
	    load_text(&cfg, "workers = 2;\npg_conninfo = \"dbname=file\";\n"),
	    0);
	assert_int_equal(cfg.workers, 7);
	assert_string_equal(cfg.pg_conninfo, "host=example dbname=x");
	assert_int_equal(cfg.consumer_properties.count, 2);
	assert_string_equal(cfg.consumer_properties.items[1],
			    "session.timeout.ms=6000");
	config_free(&cfg);
	setenv("TICKETD_PG_CONNINFO", "dbname=long", 1);
	assert_int_equal(config_load(&cfg, NULL, errstr, sizeof(errstr)), 0);
	assert_string_equal(cfg.pg_conninfo, "dbname=long");
	config_free(&cfg);
	setenv("TICKETD_WORKERS", "lots", 1);
	assert_int_equal(config_load(&cfg, NULL, errstr, sizeof(errstr)), -1);
	assert_non_null(strstr(errstr, "TICKETD_WORKERS"));
	config_free(&cfg);
}

struct doc_check {
	const char *text;
	int missing;
};

static void check_documented(const char *name, void *arg)
{
	struct doc_check *check = arg;
	char needle[128];

	snprintf(needle, sizeof(needle), "\n%s = ", name);
	if (!strstr(check->text, needle)) {
		print_error("setting %s is not in etc/ticketd.conf\n", name);
		check->missing++;
	}
}

/* The sample file loads, and documents every setting there is. */
static void test_sample_file_documents_every_setting(void **state)
{
	struct config cfg;
	struct doc_check check = {0};
	FILE *f = fopen("etc/ticketd.conf", "r");
	char *text;
	long size;

	(void)state;
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	rewind(f);
	text = calloc(1, (size_t)size + 2);
	text[0] = '\n';
	assert_int_equal(fread(text + 1, 1, (size_t)size, f), (size_t)size);
	fclose(f);
	check.text = text;
	config_each_name(check_documented, &check);
	assert_int_equal(check.missing, 0);
	free(text);
	assert_int_equal(
	    config_load(&cfg, "etc/ticketd.conf", errstr, sizeof(errstr)), 0);
	config_free(&cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_defaults, teardown),
	    cmocka_unit_test_teardown(test_errors_name_file_and_line, teardown),
	    cmocka_unit_test_teardown(test_environment_wins, teardown),
	    cmocka_unit_test_teardown(test_sample_file_documents_every_setting,
				      teardown),
	};

	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
