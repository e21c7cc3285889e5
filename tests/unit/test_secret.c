/* Unit tests for secret: which properties are secrets, masking connection
 * strings and property lists, and reading a password file. Links only
 * secret.o. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "secret.h"

static int is_secret(const char *name)
{
	return secret_property_is_secret(name, strlen(name));
}

static void test_which_properties_are_secrets(void **state)
{
	static const char *const secrets[] = {
	    "sasl.password",
	    "SASL.Password",
	    "ssl.key.password",
	    "ssl.keystore.password",
	    "ssl.key.pem",
	    "ssl_key",
	    "sasl.oauthbearer.client.secret",
	    "sasl.oauthbearer.config",
	};
	static const char *const plain[] = {
	    "sasl.username",	 "sasl.mechanisms",  "security.protocol",
	    "ssl.ca.location",	 "ssl.key.location", "ssl.certificate.pem",
	    "bootstrap.servers",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++) {
		if (!is_secret(secrets[i]))
			fail_msg("%s is not taken for a secret", secrets[i]);
	}
	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		if (is_secret(plain[i]))
			fail_msg("%s is taken for a secret", plain[i]);
	}
	/* Only the first len bytes count: the name of "name=value". */
	assert_true(secret_property_is_secret("sasl.password=x", 13));
	assert_false(secret_property_is_secret("sasl.username=password", 13));
}

static void expect_property(const char *item, const char *want)
{
	char *got = secret_mask_property(item);

	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

static void test_property_masking(void **state)
{
	(void)state;
	expect_property("sasl.password=Planted-1=2", "sasl.password=(hidden)");
	expect_property("ssl.key.password=x", "ssl.key.password=(hidden)");
	expect_property("sasl.username=password", "sasl.username=password");
	expect_property("linger.ms=5", "linger.ms=5");
	expect_property("no-equals-sign", "no-equals-sign");
}

/* conninfo masks to want, and nothing of secret is left in it. */
static void expect_conninfo(const char *conninfo, const char *want,
			    const char *secret)
{
	char *got = secret_mask_conninfo(conninfo);

	assert_non_null(got);
	if (strcmp(got, want) != 0)
		fail_msg("%s\n  masked to %s\n  not      %s", conninfo, got,
			 want);
	if (secret && strstr(got, secret))
		fail_msg("%s still shows %s", got, secret);
	free(got);
}

static void test_conninfo_pairs(void **state)
{
	(void)state;
	expect_conninfo("host=db port=5432 password=Planted7 dbname=t",
			"host=db port=5432 password=(hidden) dbname=t",
			"Planted7");
	expect_conninfo("password = 'Pl an\\'ted' user=u",
			"password=(hidden) user=u", "Pl an");
	expect_conninfo("sslpassword=KeyPass sslkey=/k.pem",
			"sslpassword=(hidden) sslkey=/k.pem", "KeyPass");
	expect_conninfo("password=Pl\\ anted host=h",
			"password=(hidden) host=h", "anted");
	/* Nothing secret: as it was. */
	expect_conninfo("host=127.0.0.1 dbname=ticketd sslmode=verify-full",
			"host=127.0.0.1 dbname=ticketd sslmode=verify-full",
			NULL);
	expect_conninfo("", "", NULL);
	expect_conninfo("dbname=ticketd", "dbname=ticketd", NULL);
	/* Not readable the way libpq reads it: hidden whole. */
	expect_conninfo("host=h password='Planted", SECRET_MASK, "Planted");
	expect_conninfo("host=h Planted", SECRET_MASK, "Planted");
	expect_conninfo("=Planted", SECRET_MASK, "Planted");
}

static void test_conninfo_uris(void **state)
{
	(void)state;
	expect_conninfo("postgresql://app:Planted9@db:5432/ticketd",
			"postgresql://app:(hidden)@db:5432/ticketd",
			"Planted9");
	expect_conninfo("postgres://app:Planted9@db/ticketd?sslmode=require",
			"postgres://app:(hidden)@db/ticketd?sslmode=require",
			"Planted9");
	expect_conninfo(
	    "postgresql://db/t?sslmode=verify-full&password=P1&%70assword=P2",
	    "postgresql://db/t?sslmode=verify-full&password=(hidden)&"
	    "%70assword=(hidden)",
	    "P1");
	expect_conninfo("postgresql://db/t?%70assword=P2",
			"postgresql://db/t?%70assword=(hidden)", "P2");
	expect_conninfo("postgresql://app@h1:5432,h2:5432/t",
			"postgresql://app@h1:5432,h2:5432/t", NULL);
	expect_conninfo("postgresql://", "postgresql://", NULL);
	expect_conninfo("postgresql://u:Planted@", "postgresql://u:(hidden)@",
			"Planted");
}

static char path[] = "/tmp/ticketd-test-secret-XXXXXX";

/* A file holding text with the given mode; its name is in path. */
static void write_file(const char *text, mode_t mode)
{
	int fd;

	strcpy(path, "/tmp/ticketd-test-secret-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(close(fd), 0);
}

static void expect_read(const char *text, const char *want)
{
	char errstr[512] = "";
	char *got = NULL;

	write_file(text, 0600);
	if (secret_read_file(path, &got, errstr, sizeof(errstr)) != 0)
		fail_msg("refused: %s", errstr);
	assert_string_equal(got, want);
	secret_free(got);
	unlink(path);
}

/* Refused, with errstr holding what and not the file's content. */
static void expect_refusal(const char *text, mode_t mode, const char *what)
{
	char errstr[512] = "";
	char *got = (char *)"untouched";

	write_file(text, mode);
	assert_int_equal(secret_read_file(path, &got, errstr, sizeof(errstr)),
			 -1);
	assert_null(got);
	if (!strstr(errstr, what))
		fail_msg("\"%s\" does not say \"%s\"", errstr, what);
	if (text[0] && strstr(errstr, "Planted"))
		fail_msg("\"%s\" shows the file's content", errstr);
	assert_non_null(strstr(errstr, path));
	unlink(path);
}

static void test_read_file(void **state)
{
	char errstr[512];
	char *got = NULL;
	char *big = malloc(5000);

	(void)state;
	expect_read("Planted-pw\n", "Planted-pw");
	expect_read("Planted-pw", "Planted-pw");
	expect_read("Planted-pw\r\nsecond line\n", "Planted-pw");
	expect_read("with spaces and = signs\n", "with spaces and = signs");
	expect_refusal("Planted-pw\n", 0644, "chmod 600");
	expect_refusal("Planted-pw\n", 0640, "mode 0640");
	expect_refusal("Planted-pw\n", 0602, "chmod 600");
	expect_refusal("", 0600, "empty");
	expect_refusal("\nPlanted-pw\n", 0600, "empty");
	assert_non_null(big);
	memset(big, 'P', 4999);
	big[4999] = '\0';
	expect_refusal(big, 0600, "longer than");
	free(big);

	assert_int_equal(
	    secret_read_file("/nonexistent/pw", &got, errstr, sizeof(errstr)),
	    -1);
	assert_non_null(strstr(errstr, "/nonexistent/pw"));
	assert_int_equal(secret_read_file("/tmp", &got, errstr, sizeof(errstr)),
			 -1);
	assert_non_null(strstr(errstr, "not a regular file"));
}

static void test_check_file(void **state)
{
	char errstr[512];

	(void)state;
	write_file("127.0.0.1:5432:*:u:Planted\n", 0600);
	assert_int_equal(secret_check_file(path, errstr, sizeof(errstr)), 0);
	assert_int_equal(chmod(path, 0400), 0);
	assert_int_equal(secret_check_file(path, errstr, sizeof(errstr)), 0);
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(secret_check_file(path, errstr, sizeof(errstr)), -1);
	assert_non_null(strstr(errstr, "chmod 600"));
	assert_null(strstr(errstr, "Planted"));
	unlink(path);
	assert_int_equal(secret_check_file(path, errstr, sizeof(errstr)), -1);
	assert_non_null(strstr(errstr, "cannot read"));
	secret_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_which_properties_are_secrets),
	    cmocka_unit_test(test_property_masking),
	    cmocka_unit_test(test_conninfo_pairs),
	    cmocka_unit_test(test_conninfo_uris),
	    cmocka_unit_test(test_read_file),
	    cmocka_unit_test(test_check_file),
	};

	return cmocka_run_group_tests_name("secret", tests, NULL, NULL);
}
