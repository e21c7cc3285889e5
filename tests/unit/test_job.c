/* Unit tests for job: which traceparent headers ticketd passes on, and the
 * timestamp-type names its dead letters carry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "job.h"

#define VALID "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

static int valid(const char *s)
{
	return job_traceparent_valid(s, strlen(s));
}

static void test_traceparent_version_00(void **state)
{
	(void)state;
	assert_int_equal(strlen(VALID), JOB_TRACEPARENT_LEN);
	assert_true(valid(VALID));
	assert_true(
	    valid("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"));
	/* version 00 has nothing after the flags */
	assert_false(valid(VALID "-x"));
	assert_false(valid(VALID "0"));
	/* one character short */
	assert_false(
	    valid("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01"));
	assert_false(valid(""));
	assert_false(job_traceparent_valid(NULL, 0));
}

static void test_traceparent_refusals(void **state)
{
	(void)state;
	/* uppercase hex */
	assert_false(
	    valid("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"));
	/* all-zero trace-id, all-zero parent-id */
	assert_false(
	    valid("00-00000000000000000000000000000000-00f067aa0ba902b7-01"));
	assert_false(
	    valid("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"));
	/* version ff is forbidden */
	assert_false(
	    valid("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
	/* wrong separators, non-hex flags */
	assert_false(
	    valid("00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
	assert_false(
	    valid("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g"));
	/* control bytes where hex belongs (log injection) */
	assert_false(
	    valid("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902\n7-01"));
}

static void test_traceparent_later_versions(void **state)
{
	(void)state;
	/* a receiver of version 00 accepts a later version's first fields */
	assert_true(
	    valid("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
	assert_true(valid(
	    "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future"));
	assert_false(valid(
	    "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01future"));
}

static void test_timestamp_type_names(void **state)
{
	(void)state;
	assert_string_equal(
	    job_timestamp_type_name(RD_KAFKA_TIMESTAMP_CREATE_TIME),
	    "CreateTime");
	assert_string_equal(
	    job_timestamp_type_name(RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME),
	    "LogAppendTime");
	assert_string_equal(
	    job_timestamp_type_name(RD_KAFKA_TIMESTAMP_NOT_AVAILABLE),
	    "NoTimestampType");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_traceparent_version_00),
	    cmocka_unit_test(test_traceparent_refusals),
	    cmocka_unit_test(test_traceparent_later_versions),
	    cmocka_unit_test(test_timestamp_type_names),
	};

	return cmocka_run_group_tests_name("job", tests, NULL, NULL);
}
