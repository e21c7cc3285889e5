/* Unit tests for the query endpoint's pure parts: routing and parameters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http.h"

static void test_routes(void **state)
{
	char id[32];

	(void)state;
	assert_int_equal(http_route_parse("/events", id, sizeof(id)),
			 HTTP_ROUTE_EVENTS);
	assert_int_equal(http_route_parse("/bookings", id, sizeof(id)),
			 HTTP_ROUTE_BOOKINGS);
	assert_int_equal(http_route_parse("/healthz", id, sizeof(id)),
			 HTTP_ROUTE_HEALTHZ);
	assert_int_equal(http_route_parse("/readyz", id, sizeof(id)),
			 HTTP_ROUTE_READYZ);
	assert_int_equal(http_route_parse("/metrics", id, sizeof(id)),
			 HTTP_ROUTE_METRICS);
	assert_int_equal(http_route_parse("/events/42", id, sizeof(id)),
			 HTTP_ROUTE_EVENT);
	assert_string_equal(id, "42");
	assert_int_equal(http_route_parse("/bookings/7", id, sizeof(id)),
			 HTTP_ROUTE_BOOKING);
	assert_int_equal(http_route_parse("/holds/7", id, sizeof(id)),
			 HTTP_ROUTE_HOLD);
	assert_int_equal(http_route_parse("/requests/r-1", id, sizeof(id)),
			 HTTP_ROUTE_REQUEST);
	assert_string_equal(id, "r-1");
	assert_int_equal(http_route_parse("/events/", id, sizeof(id)),
			 HTTP_ROUTE_NOT_FOUND);
	assert_int_equal(http_route_parse("/events/1/x", id, sizeof(id)),
			 HTTP_ROUTE_NOT_FOUND);
	assert_int_equal(http_route_parse("/eventsx", id, sizeof(id)),
			 HTTP_ROUTE_NOT_FOUND);
	assert_int_equal(http_route_parse("/", id, sizeof(id)),
			 HTTP_ROUTE_NOT_FOUND);
	assert_int_equal(http_route_parse("", id, sizeof(id)),
			 HTTP_ROUTE_NOT_FOUND);
	assert_int_equal(
	    http_route_parse("/events/123456789012345678901234567890123", id,
			     sizeof(id)),
	    HTTP_ROUTE_BAD_ID);
}

static void test_ids(void **state)
{
	int64_t v = 0;

	(void)state;
	assert_int_equal(http_parse_id("1", &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(http_parse_id("007", &v), 0);
	assert_int_equal(v, 7);
	assert_int_equal(http_parse_id("9007199254740991", &v), 0);
	assert_int_equal(http_parse_id("9007199254740992", &v), -1);
	assert_int_equal(http_parse_id("12345678901234567", &v), -1);
	assert_int_equal(http_parse_id("", &v), -1);
	assert_int_equal(http_parse_id(NULL, &v), -1);
	assert_int_equal(http_parse_id("0", &v), -1);
	assert_int_equal(http_parse_id("-1", &v), -1);
	assert_int_equal(http_parse_id("1e3", &v), -1);
	assert_int_equal(http_parse_id(" 1", &v), -1);
	assert_int_equal(http_parse_id("1 ", &v), -1);
}

static void test_limits(void **state)
{
	int limit = 0;

	(void)state;
	assert_int_equal(http_parse_limit(NULL, 50, 500, &limit), 0);
	assert_int_equal(limit, 50);
	assert_int_equal(http_parse_limit(NULL, 50, 20, &limit), 0);
	assert_int_equal(limit, 20);
	assert_int_equal(http_parse_limit("500", 50, 500, &limit), 0);
	assert_int_equal(limit, 500);
	assert_int_equal(http_parse_limit("501", 50, 500, &limit), -1);
	assert_int_equal(http_parse_limit("0", 50, 500, &limit), -1);
	assert_int_equal(http_parse_limit("ten", 50, 500, &limit), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_routes),
	    cmocka_unit_test(test_ids),
	    cmocka_unit_test(test_limits),
	};

	return cmocka_run_group_tests_name("http_parse", tests, NULL, NULL);
}
