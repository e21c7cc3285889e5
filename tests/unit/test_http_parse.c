/* Unit tests for the query endpoint's pure parts: routing and parameters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "route.h"

static void test_routes(void **state)
{
	static const struct {
		const char *url;
		enum route route;
		const char *id;
	} cases[] = {
	    {"/events", ROUTE_EVENTS, ""},
	    {"/bookings", ROUTE_BOOKINGS, ""},
	    {"/healthz", ROUTE_HEALTHZ, ""},
	    {"/readyz", ROUTE_READYZ, ""},
	    {"/metrics", ROUTE_METRICS, ""},
	    {"/events/42", ROUTE_EVENT, "42"},
	    {"/bookings/7", ROUTE_BOOKING, "7"},
	    {"/holds/9007199254740991", ROUTE_HOLD, "9007199254740991"},
	    {"/requests/r-1", ROUTE_REQUEST, "r-1"},
	    {"/requests/a:b.c_d", ROUTE_REQUEST, "a:b.c_d"},
	    /* The router only cuts the id out; whether it is one is
	     * route_parse_id's (or request_id_valid's) business. */
	    {"/events/abc", ROUTE_EVENT, "abc"},
	    {"/holds/-1", ROUTE_HOLD, "-1"},
	};
	char id[32];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(id, 'x', sizeof(id));
		if (route_parse(cases[i].url, id, sizeof(id)) != cases[i].route)
			fail_msg("%s: wrong route", cases[i].url);
		assert_string_equal(id, cases[i].id);
	}
}

static void test_not_found(void **state)
{
	static const char *const urls[] = {
	    /* Trailing slash: the collections have no such name, and an
	     * item path needs its id. */
	    "/events/",
	    "/bookings/",
	    "/holds/",
	    "/requests/",
	    "/healthz/",
	    "/readyz/",
	    "/metrics/",
	    /* Nested paths. */
	    "/events/1/x",
	    "/events/1/",
	    "/bookings/7/sections",
	    "/holds/1/2",
	    "/requests/a/b",
	    "/events//1",
	    /* Near misses. */
	    "/holds",
	    "/requests",
	    "/eventsx",
	    "/events1",
	    "/Events",
	    "/EVENTS/1",
	    "events",
	    "//events",
	    "/",
	    "",
	    "/healthz?x=1",
	    "/api/events",
	};
	char id[32];

	(void)state;
	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
		if (route_parse(urls[i], id, sizeof(id)) != ROUTE_NOT_FOUND)
			fail_msg("%s: routed", urls[i]);
		assert_string_equal(id, "");
	}
}

/* An id too long for the caller's buffer is a bad id, never cut short. */
static void test_overlong_id(void **state)
{
	char id[8];
	char small[1];

	(void)state;
	assert_int_equal(route_parse("/events/1234567", id, sizeof(id)),
			 ROUTE_EVENT);
	assert_string_equal(id, "1234567");
	assert_int_equal(route_parse("/events/12345678", id, sizeof(id)),
			 ROUTE_BAD_ID);
	assert_string_equal(id, "");
	assert_int_equal(route_parse("/bookings/123456789", id, sizeof(id)),
			 ROUTE_BAD_ID);
	assert_int_equal(route_parse("/holds/123456789", id, sizeof(id)),
			 ROUTE_BAD_ID);
	assert_int_equal(route_parse("/requests/abcdefghi", id, sizeof(id)),
			 ROUTE_BAD_ID);
	/* Nested wins over long: it is not a known path at all. */
	assert_int_equal(route_parse("/events/123456789/x", id, sizeof(id)),
			 ROUTE_NOT_FOUND);
	/* Room for the NUL only. */
	assert_int_equal(route_parse("/events/1", small, sizeof(small)),
			 ROUTE_BAD_ID);
	assert_int_equal(route_parse("/events", small, sizeof(small)),
			 ROUTE_EVENTS);

	/* What the server uses: 160 bytes, so 159 fit. */
	{
		char url[200] = "/requests/";
		char big[160];

		memset(url + 10, 'r', 159);
		url[169] = '\0';
		assert_int_equal(route_parse(url, big, sizeof(big)),
				 ROUTE_REQUEST);
		assert_int_equal(strlen(big), 159);
		url[169] = 'r';
		url[170] = '\0';
		assert_int_equal(route_parse(url, big, sizeof(big)),
				 ROUTE_BAD_ID);
	}
}

static void test_ids(void **state)
{
	static const char *const bad[] = {
	    "",
	    "0",
	    "00",
	    "-1",
	    "+1",
	    "1e3",
	    "1.0",
	    "0x10",
	    " 1",
	    "1 ",
	    "1\n",
	    "abc",
	    "\xd9\xa1", /* ARABIC-INDIC DIGIT ONE */
	    "9007199254740992",
	    "9999999999999999",
	    "12345678901234567", /* 17 digits */
	    "00000000000000001", /* 17 digits, even if it is 1 */
	    "18446744073709551617",
	};
	int64_t v;

	(void)state;
	assert_int_equal(route_parse_id("1", &v), 0);
	assert_int_equal(v, 1);
	/* Leading zeros are read as decimal, not octal: 007 is 7. */
	assert_int_equal(route_parse_id("007", &v), 0);
	assert_int_equal(v, 7);
	assert_int_equal(route_parse_id("010", &v), 0);
	assert_int_equal(v, 10);
	assert_int_equal(route_parse_id("0000000000000001", &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(route_parse_id("9007199254740991", &v), 0);
	assert_int_equal(v, 9007199254740991LL);
	assert_int_equal(route_parse_id("1234567890123456", &v), 0);
	assert_int_equal(v, 1234567890123456LL);

	assert_int_equal(route_parse_id(NULL, &v), -1);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = 12345;
		if (route_parse_id(bad[i], &v) != -1)
			fail_msg("accepted \"%s\"", bad[i]);
		/* A refusal leaves out alone. */
		assert_int_equal(v, 12345);
	}
}

static void test_limits(void **state)
{
	static const char *const bad[] = {
	    "0",   "501", "",	"-5",  "ten",
	    "1.5", " 5",  "5 ", "1e2", "99999999999999999999",
	};
	int limit = 0;

	(void)state;
	/* Absent: the default, capped to the maximum. */
	assert_int_equal(route_parse_limit(NULL, 50, 500, &limit), 0);
	assert_int_equal(limit, 50);
	assert_int_equal(route_parse_limit(NULL, 50, 20, &limit), 0);
	assert_int_equal(limit, 20);
	assert_int_equal(route_parse_limit(NULL, 50, 50, &limit), 0);
	assert_int_equal(limit, 50);
	/* 1..max. */
	assert_int_equal(route_parse_limit("1", 50, 500, &limit), 0);
	assert_int_equal(limit, 1);
	assert_int_equal(route_parse_limit("500", 50, 500, &limit), 0);
	assert_int_equal(limit, 500);
	assert_int_equal(route_parse_limit("050", 50, 500, &limit), 0);
	assert_int_equal(limit, 50);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		limit = 77;
		if (route_parse_limit(bad[i], 50, 500, &limit) != -1)
			fail_msg("accepted limit \"%s\"", bad[i]);
		assert_int_equal(limit, 77);
	}
	/* Far above an int: refused, not wrapped round into range. */
	assert_int_equal(route_parse_limit("4294967297", 50, 500, &limit), -1);
	assert_int_equal(route_parse_limit("4294967297", 50, 10000, &limit),
			 -1);
}

static int customer_ok(const char *s)
{
	return route_customer_valid(s, strlen(s));
}

static void test_customers(void **state)
{
	char long_name[300];

	(void)state;
	assert_true(customer_ok("alice@example.com"));
	assert_true(customer_ok("J\xc3\xbcrgen \xe2\x82\xac \xf0\x9f\x8e\xab"));
	assert_false(customer_ok(""));
	assert_false(customer_ok("\xff"));	       /* not UTF-8 */
	assert_false(customer_ok("a\xc3"));	       /* cut short */
	assert_false(customer_ok("\xc0\xaf"));	       /* overlong '/' */
	assert_false(customer_ok("\xed\xa0\x80"));     /* a surrogate */
	assert_false(customer_ok("\xf4\x90\x80\x80")); /* > U+10FFFF */
	assert_false(route_customer_valid("a\0b", 3)); /* a NUL inside */
	assert_false(route_customer_valid("\xc3", 1)); /* cut at len */
	memset(long_name, 'c', sizeof(long_name));
	long_name[254] = '\0';
	assert_true(route_customer_valid(long_name, strlen(long_name)));
	long_name[254] = 'c';
	long_name[255] = '\0';
	assert_false(route_customer_valid(long_name, strlen(long_name)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_routes),
	    cmocka_unit_test(test_not_found),
	    cmocka_unit_test(test_overlong_id),
	    cmocka_unit_test(test_ids),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_customers),
	};

	return cmocka_run_group_tests_name("http_parse", tests, NULL, NULL);
}
