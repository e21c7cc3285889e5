/* Unit tests for request: parsing, every refusal, fingerprints, replies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "outcome.h"
#include "request.h"

/* Small on purpose, so that every bound is cheap to step over. */
static const struct request_limits limits = {
    .max_message_bytes = 4096,
    .max_quantity = 10,
    .max_sections = 3,
    .max_section_capacity = 1000,
    .hold_ttl_default_s = 600,
    .hold_ttl_max_s = 3600,
};

static int parse(const char *json, struct request *req,
		 struct request_error *err)
{
	return request_parse(json, strlen(json), &limits, req, err);
}

/* Parse what must be accepted; say why when it is not. */
static void parse_ok(const char *json, struct request *req)
{
	struct request_error err;

	if (parse(json, req, &err) != 0)
		fail_msg("refused with %s (%s): %s",
			 request_error_code_name(err.code), err.message, json);
	assert_non_null(req->fingerprint);
}

/*
 * Parse what must be refused with code. request_id is what err must keep
 * for correlation ("" when the message had no valid one); needle, when
 * not NULL, must appear in the message (the field a client has to fix).
 */
static void refuse(const char *json, size_t len, enum request_error_code code,
		   const char *request_id, const char *needle)
{
	struct request req;
	struct request_error err;

	if (request_parse(json, len, &limits, &req, &err) == 0) {
		request_free(&req);
		fail_msg("accepted: %s", json);
	}
	if (err.code != code)
		fail_msg("%s: got %s (%s), want %s", json,
			 request_error_code_name(err.code), err.message,
			 request_error_code_name(code));
	if (err.message[0] == '\0')
		fail_msg("%s: refused without a message", json);
	if (strcmp(err.request_id, request_id) != 0)
		fail_msg("%s: err.request_id is \"%s\", want \"%s\"", json,
			 err.request_id, request_id);
	if (needle && !strstr(err.message, needle))
		fail_msg("%s: message \"%s\" does not name \"%s\"", json,
			 err.message, needle);
	/* "On -1 ... req needs no free": nothing may be left behind. */
	assert_null(req.sections);
	assert_null(req.fingerprint);
}

static void refuse_str(const char *json, enum request_error_code code,
		       const char *request_id, const char *needle)
{
	refuse(json, strlen(json), code, request_id, needle);
}

/* ------------------------------------------------------ the six types */

static void test_book(void **state)
{
	struct request req;

	(void)state;
	parse_ok("{\"type\":\"book\",\"request_id\":\"r-8c1e\","
		 "\"event_id\":99,\"section_id\":100,"
		 "\"quantity\":5,\"customer\":\"alice@example.com\"}",
		 &req);
	assert_int_equal(req.type, REQUEST_BOOK);
	assert_string_equal(req.request_id, "r-8c1e");
	/* No idempotency_key: the request_id is the key. */
	assert_string_equal(req.idempotency_key, "r-8c1e");
	assert_string_equal(req.reply_to, "");
	assert_int_equal(req.event_id, 99);
	assert_int_equal(req.section_id, 100);
	assert_int_equal(req.quantity, 5);
	assert_string_equal(req.customer, "alice@example.com");
	/* Fields a book does not use stay 0 or empty. */
	assert_int_equal(req.hold_id, 0);
	assert_int_equal(req.booking_id, 0);
	assert_int_equal(req.ttl_s, 0);
	assert_string_equal(req.name, "");
	assert_string_equal(req.venue, "");
	assert_string_equal(req.starts_at, "");
	assert_null(req.sections);
	assert_int_equal(req.section_count, 0);
	request_free(&req);
	/* request_free leaves nothing dangling: a second call is harmless. */
	assert_null(req.fingerprint);
	request_free(&req);
}

static void test_book_with_every_optional_field(void **state)
{
	struct request req;

	(void)state;
	parse_ok(
	    "{\"type\":\"book\",\"request_id\":\"r:1.a_B-9\","
	    "\"idempotency_key\":\"order-77\",\"reply_to\":\"shop.replies\","
	    "\"event_id\":9007199254740991,\"section_id\":1,"
	    "\"quantity\":10,\"customer\":\"Zo\\u00eb <zoe@example.com>\"}\n",
	    &req);
	assert_int_equal(req.type, REQUEST_BOOK);
	assert_string_equal(req.request_id, "r:1.a_B-9");
	assert_string_equal(req.idempotency_key, "order-77");
	assert_string_equal(req.reply_to, "shop.replies");
	assert_int_equal(req.event_id, 9007199254740991LL);
	assert_int_equal(req.section_id, 1);
	assert_int_equal(req.quantity, limits.max_quantity);
	assert_string_equal(req.customer, "Zo\xc3\xab <zoe@example.com>");
	request_free(&req);
}

static void test_hold(void **state)
{
	struct request req;

	(void)state;
	parse_ok("{\"type\":\"hold\",\"request_id\":\"h-1\",\"event_id\":1,"
		 "\"section_id\":2,\"quantity\":3,\"customer\":\"bob\"}",
		 &req);
	assert_int_equal(req.type, REQUEST_HOLD);
	assert_string_equal(req.request_id, "h-1");
	assert_string_equal(req.idempotency_key, "h-1");
	assert_int_equal(req.event_id, 1);
	assert_int_equal(req.section_id, 2);
	assert_int_equal(req.quantity, 3);
	assert_string_equal(req.customer, "bob");
	/* No ttl_s: the configured default. */
	assert_int_equal(req.ttl_s, limits.hold_ttl_default_s);
	assert_int_equal(req.hold_id, 0);
	assert_int_equal(req.booking_id, 0);
	request_free(&req);

	parse_ok("{\"type\":\"hold\",\"request_id\":\"h-2\",\"event_id\":1,"
		 "\"section_id\":2,\"quantity\":1,\"customer\":\"bob\","
		 "\"ttl_s\":30}",
		 &req);
	assert_int_equal(req.ttl_s, 30);
	request_free(&req);

	/* Both ends of the range. */
	parse_ok("{\"type\":\"hold\",\"request_id\":\"h-3\",\"event_id\":1,"
		 "\"section_id\":2,\"quantity\":1,\"customer\":\"bob\","
		 "\"ttl_s\":3600}",
		 &req);
	assert_int_equal(req.ttl_s, limits.hold_ttl_max_s);
	request_free(&req);
	parse_ok("{\"type\":\"hold\",\"request_id\":\"h-4\",\"event_id\":1,"
		 "\"section_id\":2,\"quantity\":1,\"customer\":\"bob\","
		 "\"ttl_s\":1}",
		 &req);
	assert_int_equal(req.ttl_s, 1);
	request_free(&req);

	/* null is absent: the default again. */
	parse_ok("{\"type\":\"hold\",\"request_id\":\"h-5\",\"event_id\":1,"
		 "\"section_id\":2,\"quantity\":1,\"customer\":\"bob\","
		 "\"ttl_s\":null}",
		 &req);
	assert_int_equal(req.ttl_s, limits.hold_ttl_default_s);
	request_free(&req);
}

static void test_confirm_release_cancel(void **state)
{
	struct request req;

	(void)state;
	parse_ok("{\"type\":\"confirm\",\"request_id\":\"c-1\",\"hold_id\":7}",
		 &req);
	assert_int_equal(req.type, REQUEST_CONFIRM);
	assert_string_equal(req.request_id, "c-1");
	assert_string_equal(req.idempotency_key, "c-1");
	assert_int_equal(req.hold_id, 7);
	assert_int_equal(req.booking_id, 0);
	assert_int_equal(req.event_id, 0);
	assert_int_equal(req.section_id, 0);
	assert_int_equal(req.quantity, 0);
	assert_string_equal(req.customer, "");
	request_free(&req);

	parse_ok("{\"request_id\":\"rel-1\",\"hold_id\":9007199254740991,"
		 "\"type\":\"release\",\"idempotency_key\":\"k-rel\"}",
		 &req);
	assert_int_equal(req.type, REQUEST_RELEASE);
	assert_string_equal(req.request_id, "rel-1");
	assert_string_equal(req.idempotency_key, "k-rel");
	assert_int_equal(req.hold_id, 9007199254740991LL);
	assert_int_equal(req.booking_id, 0);
	request_free(&req);

	parse_ok("{\"type\":\"cancel\",\"request_id\":\"x-1\",\"booking_id\":8,"
		 "\"reply_to\":\"a-b_c.d\"}",
		 &req);
	assert_int_equal(req.type, REQUEST_CANCEL);
	assert_string_equal(req.request_id, "x-1");
	assert_string_equal(req.idempotency_key, "x-1");
	assert_string_equal(req.reply_to, "a-b_c.d");
	assert_int_equal(req.booking_id, 8);
	assert_int_equal(req.hold_id, 0);
	request_free(&req);
}

static void test_create_event(void **state)
{
	struct request req;

	(void)state;
	parse_ok("{\"type\":\"create_event\",\"request_id\":\"ev-1\","
		 "\"name\":\"Gig\",\"venue\":\"Hall\","
		 "\"starts_at\":\"2026-12-31T20:00:00Z\","
		 "\"sections\":[{\"name\":\"A\",\"capacity\":5},"
		 "{\"name\":\"B\",\"capacity\":0},"
		 "{\"name\":\"Balcony\",\"capacity\":1000}]}",
		 &req);
	assert_int_equal(req.type, REQUEST_CREATE_EVENT);
	assert_string_equal(req.request_id, "ev-1");
	assert_string_equal(req.idempotency_key, "ev-1");
	assert_string_equal(req.name, "Gig");
	assert_string_equal(req.venue, "Hall");
	assert_string_equal(req.starts_at, "2026-12-31T20:00:00Z");
	assert_int_equal(req.section_count, 3);
	assert_non_null(req.sections);
	assert_string_equal(req.sections[0].name, "A");
	assert_int_equal(req.sections[0].capacity, 5);
	assert_string_equal(req.sections[1].name, "B");
	assert_int_equal(req.sections[1].capacity, 0);
	assert_string_equal(req.sections[2].name, "Balcony");
	assert_int_equal(req.sections[2].capacity, limits.max_section_capacity);
	assert_int_equal(req.event_id, 0);
	assert_int_equal(req.section_id, 0);
	assert_int_equal(req.quantity, 0);
	request_free(&req);
	assert_null(req.sections);
	assert_int_equal(req.section_count, 0);

	/* venue and starts_at are optional. */
	parse_ok(
	    "{\"type\":\"create_event\",\"request_id\":\"ev-2\","
	    "\"name\":\"Gig\",\"sections\":[{\"name\":\"A\",\"capacity\":1}]}",
	    &req);
	assert_string_equal(req.venue, "");
	assert_string_equal(req.starts_at, "");
	assert_int_equal(req.section_count, 1);
	request_free(&req);
}

/* The RFC 3339 forms starts_at takes, and the near misses it does not. */
static void test_starts_at(void **state)
{
	static const char *const good[] = {
	    "2026-12-31T20:00:00Z",	   "2026-12-31T20:00:00z",
	    "2026-12-31 20:00:00Z",	   "2024-02-29T00:00:00Z",
	    "2000-02-29T00:00:00Z",	   "2026-06-01T08:30:00+02:00",
	    "2026-06-01T08:30:00-23:59",   "2026-06-01T08:30:00.5Z",
	    "2026-06-01T08:30:00.123456Z", "1970-01-01T00:00:00Z",
	    "9999-12-31T23:59:59Z",
	};
	static const char *const bad[] = {
	    "2025-02-29T10:00:00Z",	 "2100-02-29T10:00:00Z",
	    "2026-04-31T10:00:00Z",	 "2026-13-01T10:00:00Z",
	    "2026-00-01T10:00:00Z",	 "2026-01-00T10:00:00Z",
	    "2026-01-01T24:00:00Z",	 "2026-01-01T10:60:00Z",
	    "2026-01-01T10:00:60Z",	 "2026-01-01T10:00:00",
	    "2026-01-01T10:00:00+24:00", "2026-01-01T10:00:00+0100",
	    "2026-01-01T10:00:00.Z",	 "2026-01-01T10:00:00.1234567Z",
	    "2026-01-01T10:00:00ZZ",	 "2026-01-01",
	    "1969-12-31T23:59:59Z",	 "tomorrow",
	    "2026-1-01T10:00:00Z",	 "2026-01-01X10:00:00Z",
	};
	char json[512];

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct request req;

		snprintf(json, sizeof(json),
			 "{\"type\":\"create_event\",\"request_id\":\"x\","
			 "\"name\":\"n\",\"starts_at\":\"%s\","
			 "\"sections\":[{\"name\":\"a\",\"capacity\":1}]}",
			 good[i]);
		parse_ok(json, &req);
		assert_string_equal(req.starts_at, good[i]);
		request_free(&req);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(json, sizeof(json),
			 "{\"type\":\"create_event\",\"request_id\":\"x\","
			 "\"name\":\"n\",\"starts_at\":\"%s\","
			 "\"sections\":[{\"name\":\"a\",\"capacity\":1}]}",
			 bad[i]);
		refuse_str(json, ERROR_INVALID_FIELD, "x", "starts_at");
	}
}

/*
 * RFC 3339 5.6: "T" and "Z" may be lower case. The parser takes a lower
 * case z already; a lower case t is the same rule (and PostgreSQL reads it).
 */
static void test_starts_at_lower_case_t(void **state)
{
	struct request req;

	(void)state;
	parse_ok("{\"type\":\"create_event\",\"request_id\":\"x\","
		 "\"name\":\"n\",\"starts_at\":\"2026-12-31t20:00:00z\","
		 "\"sections\":[{\"name\":\"a\",\"capacity\":1}]}",
		 &req);
	assert_string_equal(req.starts_at, "2026-12-31t20:00:00z");
	request_free(&req);
}

/* ------------------------------------------------------------ refusals */

#define BOOK_HEAD "{\"type\":\"book\",\"request_id\":\"x\","
#define BOOK_OK_TAIL                                                           \
	"\"event_id\":1,\"section_id\":2,\"quantity\":1,\"customer\":\"c\"}"
#define CREATE_HEAD                                                            \
	"{\"type\":\"create_event\",\"request_id\":\"x\",\"name\":\"n\","

/*
 * One refusal per row: the message, the code it must get, the request_id
 * err must keep for correlation, and a word the message must hold.
 */
static const struct {
	const char *json;
	enum request_error_code code;
	const char *request_id;
	const char *needle;
} refusals[] = {
    /* Not a JSON object at all. */
    {"{not json", ERROR_MALFORMED_JSON, "", NULL},
    {"", ERROR_MALFORMED_JSON, "", NULL},
    {"   \n", ERROR_MALFORMED_JSON, "", NULL},
    {"[1,2]", ERROR_MALFORMED_JSON, "", NULL},
    {"[{\"type\":\"book\",\"request_id\":\"x\"}]", ERROR_MALFORMED_JSON, "",
     NULL},
    {"42", ERROR_MALFORMED_JSON, "", NULL},
    {"\"book\"", ERROR_MALFORMED_JSON, "", NULL},
    {"null", ERROR_MALFORMED_JSON, "", NULL},
    {"true", ERROR_MALFORMED_JSON, "", NULL},
    {"{\"type\":\"book\"} trailing", ERROR_MALFORMED_JSON, "", NULL},
    {BOOK_HEAD BOOK_OK_TAIL "{}", ERROR_MALFORMED_JSON, "", NULL},
    {BOOK_HEAD BOOK_OK_TAIL ",", ERROR_MALFORMED_JSON, "", NULL},
    {"{\"type\":\"book\",\"request_id\":\"x\",}", ERROR_MALFORMED_JSON, "",
     NULL},
    {"\xef\xbb\xbf{\"type\":\"book\",\"request_id\":\"x\"}",
     ERROR_MALFORMED_JSON, "", NULL},
    {"{\"type\":\"book\",\"request_id\":\"x\",\"customer\":\"\xff\"}",
     ERROR_MALFORMED_JSON, "", NULL},
    {"{\"type\":\"book\",\"request_id\":\"x\",\"customer\":\"a\\u0000b\"}",
     ERROR_MALFORMED_JSON, "", NULL},
    /* Duplicate keys: which one would count is anybody's guess. */
    {"{\"type\":\"book\",\"type\":\"hold\",\"request_id\":\"x\"}",
     ERROR_MALFORMED_JSON, "", NULL},
    {"{\"type\":\"book\",\"request_id\":\"x\",\"request_id\":\"y\"}",
     ERROR_MALFORMED_JSON, "", NULL},
    {CREATE_HEAD
     "\"sections\":[{\"name\":\"a\",\"name\":\"b\",\"capacity\":1}]}",
     ERROR_MALFORMED_JSON, "", NULL},
    /* Integers jansson cannot hold in an int64. */
    {BOOK_HEAD "\"event_id\":99999999999999999999999}", ERROR_MALFORMED_JSON,
     "", NULL},
    {BOOK_HEAD "\"event_id\":-9223372036854775809}", ERROR_MALFORMED_JSON, "",
     NULL},

    /* request_id: required, 1-128 of [A-Za-z0-9._:-]. */
    {"{\"type\":\"book\"}", ERROR_INVALID_FIELD, "", "request_id"},
    {"{}", ERROR_INVALID_FIELD, "", "request_id"},
    {"{\"type\":\"book\",\"request_id\":null}", ERROR_INVALID_FIELD, "",
     "request_id"},
    {"{\"type\":\"book\",\"request_id\":\"\"}", ERROR_INVALID_FIELD, "",
     "request_id"},
    {"{\"type\":\"book\",\"request_id\":\"has space\"}", ERROR_INVALID_FIELD,
     "", "request_id"},
    {"{\"type\":\"book\",\"request_id\":\"a/b\"}", ERROR_INVALID_FIELD, "",
     "request_id"},
    {"{\"type\":\"book\",\"request_id\":\"caf\\u00e9\"}", ERROR_INVALID_FIELD,
     "", "request_id"},
    {"{\"type\":\"book\",\"request_id\":\"a\\nb\"}", ERROR_INVALID_FIELD, "",
     "request_id"},
    {"{\"type\":\"book\",\"request_id\":7}", ERROR_INVALID_FIELD, "",
     "request_id"},
    {"{\"type\":\"book\",\"request_id\":[\"x\"]}", ERROR_INVALID_FIELD, "",
     "request_id"},
    /* idempotency_key follows the same rule; the request_id is kept. */
    {BOOK_HEAD "\"idempotency_key\":\"\"," BOOK_OK_TAIL, ERROR_INVALID_FIELD,
     "x", "idempotency_key"},
    {BOOK_HEAD "\"idempotency_key\":\"k y\"," BOOK_OK_TAIL, ERROR_INVALID_FIELD,
     "x", "idempotency_key"},
    {BOOK_HEAD "\"idempotency_key\":5," BOOK_OK_TAIL, ERROR_INVALID_FIELD, "x",
     "idempotency_key"},

    /* type */
    {"{\"request_id\":\"x\"}", ERROR_INVALID_FIELD, "x", "type"},
    {"{\"request_id\":\"x\",\"type\":5}", ERROR_INVALID_FIELD, "x", "type"},
    {"{\"request_id\":\"x\",\"type\":null}", ERROR_INVALID_FIELD, "x", "type"},
    {"{\"request_id\":\"x\",\"type\":\"teleport\"}", ERROR_UNKNOWN_TYPE, "x",
     "type"},
    {"{\"request_id\":\"x\",\"type\":\"Book\"}", ERROR_UNKNOWN_TYPE, "x",
     "type"},
    {"{\"request_id\":\"x\",\"type\":\"\"}", ERROR_UNKNOWN_TYPE, "x", "type"},
    {"{\"request_id\":\"x\",\"type\":\"book \"}", ERROR_UNKNOWN_TYPE, "x",
     "type"},

    /* reply_to: a Kafka topic name. */
    {BOOK_HEAD "\"reply_to\":\"bad topic\"," BOOK_OK_TAIL, ERROR_INVALID_FIELD,
     "x", "reply_to"},
    {BOOK_HEAD "\"reply_to\":\"\"," BOOK_OK_TAIL, ERROR_INVALID_FIELD, "x",
     "reply_to"},
    {BOOK_HEAD "\"reply_to\":\"a:b\"," BOOK_OK_TAIL, ERROR_INVALID_FIELD, "x",
     "reply_to"},
    {BOOK_HEAD "\"reply_to\":\"..\"," BOOK_OK_TAIL, ERROR_INVALID_FIELD, "x",
     "reply_to"},
    {BOOK_HEAD "\"reply_to\":5," BOOK_OK_TAIL, ERROR_INVALID_FIELD, "x",
     "reply_to"},

    /* Seat requests: integers that are integers, ids in 1..2^53-1. */
    {BOOK_HEAD "\"event_id\":1,\"section_id\":2,\"quantity\":\"5\","
	       "\"customer\":\"c\"}",
     ERROR_INVALID_FIELD, "x", "quantity"},
    {BOOK_HEAD "\"event_id\":1,\"section_id\":2,\"quantity\":5.0,"
	       "\"customer\":\"c\"}",
     ERROR_INVALID_FIELD, "x", "quantity"},
    {BOOK_HEAD "\"event_id\":1,\"section_id\":2,\"quantity\":1e0,"
	       "\"customer\":\"c\"}",
     ERROR_INVALID_FIELD, "x", "quantity"},
    {BOOK_HEAD "\"event_id\":1,\"section_id\":2,\"quantity\":true,"
	       "\"customer\":\"c\"}",
     ERROR_INVALID_FIELD, "x", "quantity"},
    {BOOK_HEAD "\"event_id\":1,\"section_id\":2,\"quantity\":0,"
	       "\"customer\":\"c\"}",
     ERROR_INVALID_FIELD, "x", "quantity"},
    {BOOK_HEAD "\"event_id\":1,\"section_id\":2,\"quantity\":-1,"
	       "\"customer\":\"c\"}",
     ERROR_INVALID_FIELD, "x", "quantity"},
    {BOOK_HEAD "\"event_id\":1,\"section_id\":2,\"quantity\":2147483648,"
	       "\"customer\":\"c\"}",
     ERROR_INVALID_FIELD, "x", "quantity"},
    {BOOK_HEAD "\"event_id\":1,\"section_id\":2,\"customer\":\"c\"}",
     ERROR_INVALID_FIELD, "x", "quantity"},
    {BOOK_HEAD "\"event_id\":0,\"section_id\":2,\"quantity\":1,"
	       "\"customer\":\"c\"}",
     ERROR_INVALID_FIELD, "x", "event_id"},
    {BOOK_HEAD "\"event_id\":-5,\"section_id\":2,\"quantity\":1,"
	       "\"customer\":\"c\"}",
     ERROR_INVALID_FIELD, "x", "event_id"},
    {BOOK_HEAD "\"event_id\":9007199254740992,\"section_id\":2,"
	       "\"quantity\":1,\"customer\":\"c\"}",
     ERROR_INVALID_FIELD, "x", "event_id"},
    {BOOK_HEAD "\"event_id\":9223372036854775807,\"section_id\":2,"
	       "\"quantity\":1,\"customer\":\"c\"}",
     ERROR_INVALID_FIELD, "x", "event_id"},
    {BOOK_HEAD "\"event_id\":\"1\",\"section_id\":2,\"quantity\":1,"
	       "\"customer\":\"c\"}",
     ERROR_INVALID_FIELD, "x", "event_id"},
    {BOOK_HEAD "\"event_id\":1.5,\"section_id\":2,\"quantity\":1,"
	       "\"customer\":\"c\"}",
     ERROR_INVALID_FIELD, "x", "event_id"},
    {BOOK_HEAD "\"section_id\":2,\"quantity\":1,\"customer\":\"c\"}",
     ERROR_INVALID_FIELD, "x", "event_id"},
    {BOOK_HEAD "\"event_id\":1,\"section_id\":0,\"quantity\":1,"
	       "\"customer\":\"c\"}",
     ERROR_INVALID_FIELD, "x", "section_id"},
    {BOOK_HEAD "\"event_id\":1,\"section_id\":-2,\"quantity\":1,"
	       "\"customer\":\"c\"}",
     ERROR_INVALID_FIELD, "x", "section_id"},
    {BOOK_HEAD "\"event_id\":1,\"quantity\":1,\"customer\":\"c\"}",
     ERROR_INVALID_FIELD, "x", "section_id"},
    /* customer: 1-254 characters, no control characters. */
    {BOOK_HEAD "\"event_id\":1,\"section_id\":2,\"quantity\":1,"
	       "\"customer\":\"\"}",
     ERROR_INVALID_FIELD, "x", "customer"},
    {BOOK_HEAD "\"event_id\":1,\"section_id\":2,\"quantity\":1,"
	       "\"customer\":\"a\\u0001b\"}",
     ERROR_INVALID_FIELD, "x", "customer"},
    {BOOK_HEAD "\"event_id\":1,\"section_id\":2,\"quantity\":1,"
	       "\"customer\":\"a\\nb\"}",
     ERROR_INVALID_FIELD, "x", "customer"},
    {BOOK_HEAD "\"event_id\":1,\"section_id\":2,\"quantity\":1,"
	       "\"customer\":\"a\\u007fb\"}",
     ERROR_INVALID_FIELD, "x", "customer"},
    {BOOK_HEAD "\"event_id\":1,\"section_id\":2,\"quantity\":1,"
	       "\"customer\":5}",
     ERROR_INVALID_FIELD, "x", "customer"},
    {BOOK_HEAD "\"event_id\":1,\"section_id\":2,\"quantity\":1}",
     ERROR_INVALID_FIELD, "x", "customer"},
    /* Holds: ttl_s in 1..hold_ttl_max_s. */
    {"{\"type\":\"hold\",\"request_id\":\"x\",\"event_id\":1,\"section_id\":2,"
     "\"quantity\":1,\"customer\":\"c\",\"ttl_s\":3601}",
     ERROR_INVALID_FIELD, "x", "ttl_s"},
    {"{\"type\":\"hold\",\"request_id\":\"x\",\"event_id\":1,\"section_id\":2,"
     "\"quantity\":1,\"customer\":\"c\",\"ttl_s\":0}",
     ERROR_INVALID_FIELD, "x", "ttl_s"},
    {"{\"type\":\"hold\",\"request_id\":\"x\",\"event_id\":1,\"section_id\":2,"
     "\"quantity\":1,\"customer\":\"c\",\"ttl_s\":-1}",
     ERROR_INVALID_FIELD, "x", "ttl_s"},
    {"{\"type\":\"hold\",\"request_id\":\"x\",\"event_id\":1,\"section_id\":2,"
     "\"quantity\":1,\"customer\":\"c\",\"ttl_s\":\"30\"}",
     ERROR_INVALID_FIELD, "x", "ttl_s"},
    {"{\"type\":\"hold\",\"request_id\":\"x\",\"event_id\":1,\"section_id\":2,"
     "\"quantity\":1,\"customer\":\"c\",\"ttl_s\":4294967297}",
     ERROR_INVALID_FIELD, "x", "ttl_s"},

    /* confirm, release, cancel: one id each. */
    {"{\"type\":\"confirm\",\"request_id\":\"x\"}", ERROR_INVALID_FIELD, "x",
     "hold_id"},
    {"{\"type\":\"confirm\",\"request_id\":\"x\",\"hold_id\":0}",
     ERROR_INVALID_FIELD, "x", "hold_id"},
    {"{\"type\":\"release\",\"request_id\":\"x\",\"hold_id\":-7}",
     ERROR_INVALID_FIELD, "x", "hold_id"},
    {"{\"type\":\"release\",\"request_id\":\"x\",\"hold_id\":9007199254740992}",
     ERROR_INVALID_FIELD, "x", "hold_id"},
    {"{\"type\":\"release\",\"request_id\":\"x\",\"booking_id\":7}",
     ERROR_INVALID_FIELD, "x", "hold_id"},
    {"{\"type\":\"cancel\",\"request_id\":\"x\",\"booking_id\":\"1\"}",
     ERROR_INVALID_FIELD, "x", "booking_id"},
    {"{\"type\":\"cancel\",\"request_id\":\"x\",\"booking_id\":0}",
     ERROR_INVALID_FIELD, "x", "booking_id"},
    {"{\"type\":\"cancel\",\"request_id\":\"x\",\"hold_id\":3}",
     ERROR_INVALID_FIELD, "x", "booking_id"},

    /* create_event: a name, and 1..max_sections distinct sections. */
    {"{\"type\":\"create_event\",\"request_id\":\"x\","
     "\"sections\":[{\"name\":\"a\",\"capacity\":1}]}",
     ERROR_INVALID_FIELD, "x", "name"},
    {CREATE_HEAD
     "\"venue\":\"\",\"sections\":[{\"name\":\"a\",\"capacity\":1}]}",
     ERROR_INVALID_FIELD, "x", "venue"},
    {CREATE_HEAD
     "\"venue\":\"a\\tb\",\"sections\":[{\"name\":\"a\",\"capacity\":1}]}",
     ERROR_INVALID_FIELD, "x", "venue"},
    {CREATE_HEAD
     "\"starts_at\":5,\"sections\":[{\"name\":\"a\",\"capacity\":1}]}",
     ERROR_INVALID_FIELD, "x", "starts_at"},
    {CREATE_HEAD "\"sections\":[]}", ERROR_INVALID_FIELD, "x", "sections"},
    {CREATE_HEAD "\"sections\":{\"name\":\"a\",\"capacity\":1}}",
     ERROR_INVALID_FIELD, "x", "sections"},
    {CREATE_HEAD "\"venue\":\"v\"}", ERROR_INVALID_FIELD, "x", "sections"},
    {CREATE_HEAD
     "\"sections\":[{\"name\":\"a\",\"capacity\":1},"
     "{\"name\":\"b\",\"capacity\":1},{\"name\":\"c\",\"capacity\":1},"
     "{\"name\":\"d\",\"capacity\":1}]}",
     ERROR_INVALID_FIELD, "x", "sections"},
    {CREATE_HEAD "\"sections\":[{\"name\":\"a\",\"capacity\":1},"
		 "{\"name\":\"a\",\"capacity\":2}]}",
     ERROR_INVALID_FIELD, "x", "sections[1].name"},
    {CREATE_HEAD "\"sections\":[{\"name\":\"a\",\"capacity\":-1}]}",
     ERROR_INVALID_FIELD, "x", "sections[0].capacity"},
    {CREATE_HEAD "\"sections\":[{\"name\":\"a\",\"capacity\":1001}]}",
     ERROR_INVALID_FIELD, "x", "sections[0].capacity"},
    {CREATE_HEAD "\"sections\":[{\"name\":\"a\",\"capacity\":\"5\"}]}",
     ERROR_INVALID_FIELD, "x", "sections[0].capacity"},
    {CREATE_HEAD "\"sections\":[{\"name\":\"a\"}]}", ERROR_INVALID_FIELD, "x",
     "sections[0].capacity"},
    {CREATE_HEAD "\"sections\":[{\"name\":\"a\",\"capacity\":1},"
		 "{\"capacity\":1}]}",
     ERROR_INVALID_FIELD, "x", "sections[1].name"},
    {CREATE_HEAD "\"sections\":[{\"name\":\"\",\"capacity\":1}]}",
     ERROR_INVALID_FIELD, "x", "sections[0].name"},
    {CREATE_HEAD "\"sections\":[\"a\"]}", ERROR_INVALID_FIELD, "x",
     "sections[0]"},
    {CREATE_HEAD "\"starts_at\":\"2025-02-29T10:00:00Z\","
		 "\"sections\":[{\"name\":\"a\",\"capacity\":1}]}",
     ERROR_INVALID_FIELD, "x", "starts_at"},

    /* QUANTITY_LIMIT is the business rule: only a request that is
     * otherwise valid gets it; a broken one is invalid first. */
    {BOOK_HEAD "\"event_id\":1,\"section_id\":2,\"quantity\":11,"
	       "\"customer\":\"c\"}",
     ERROR_QUANTITY_LIMIT, "x", "11"},
    {BOOK_HEAD "\"event_id\":1,\"section_id\":2,\"quantity\":2147483647,"
	       "\"customer\":\"c\"}",
     ERROR_QUANTITY_LIMIT, "x", NULL},
    {"{\"type\":\"hold\",\"request_id\":\"x\",\"event_id\":1,\"section_id\":2,"
     "\"quantity\":11,\"customer\":\"c\"}",
     ERROR_QUANTITY_LIMIT, "x", NULL},
    {BOOK_HEAD "\"event_id\":1,\"section_id\":2,\"quantity\":11,"
	       "\"customer\":\"\"}",
     ERROR_INVALID_FIELD, "x", "customer"},
    {BOOK_HEAD "\"event_id\":1,\"section_id\":2,\"quantity\":11}",
     ERROR_INVALID_FIELD, "x", "customer"},
    {BOOK_HEAD "\"event_id\":0,\"section_id\":2,\"quantity\":11,"
	       "\"customer\":\"c\"}",
     ERROR_INVALID_FIELD, "x", "event_id"},
    {"{\"type\":\"hold\",\"request_id\":\"x\",\"event_id\":1,\"section_id\":2,"
     "\"quantity\":11,\"customer\":\"c\",\"ttl_s\":99999}",
     ERROR_INVALID_FIELD, "x", "ttl_s"},
    {BOOK_HEAD "\"reply_to\":\"no way\",\"event_id\":1,\"section_id\":2,"
	       "\"quantity\":11,\"customer\":\"c\"}",
     ERROR_INVALID_FIELD, "x", "reply_to"},
};

static void test_every_refusal(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++)
		refuse_str(refusals[i].json, refusals[i].code,
			   refusals[i].request_id, refusals[i].needle);
}

static void test_overlong_fields(void **state)
{
	char json[1024], text[300];
	struct request req;

	(void)state;
	/* request_id: 128 is the limit, and fine; 129 is not. */
	memset(text, 'r', 129);
	text[129] = '\0';
	snprintf(json, sizeof(json),
		 "{\"type\":\"cancel\",\"request_id\":\"%s\",\"booking_id\":1}",
		 text);
	refuse_str(json, ERROR_INVALID_FIELD, "", "request_id");
	text[128] = '\0';
	snprintf(json, sizeof(json),
		 "{\"type\":\"cancel\",\"request_id\":\"%s\",\"booking_id\":1}",
		 text);
	parse_ok(json, &req);
	assert_string_equal(req.request_id, text);
	assert_string_equal(req.idempotency_key, text);
	request_free(&req);

	/* idempotency_key: the same 128. */
	memset(text, 'k', 129);
	text[129] = '\0';
	snprintf(json, sizeof(json),
		 "{\"type\":\"cancel\",\"request_id\":\"x\",\"booking_id\":1,"
		 "\"idempotency_key\":\"%s\"}",
		 text);
	refuse_str(json, ERROR_INVALID_FIELD, "x", "idempotency_key");
	text[128] = '\0';
	snprintf(json, sizeof(json),
		 "{\"type\":\"cancel\",\"request_id\":\"x\",\"booking_id\":1,"
		 "\"idempotency_key\":\"%s\"}",
		 text);
	parse_ok(json, &req);
	assert_string_equal(req.idempotency_key, text);
	request_free(&req);

	/* customer: 254 fits, 255 does not. */
	memset(text, 'c', 255);
	text[255] = '\0';
	snprintf(json, sizeof(json),
		 BOOK_HEAD "\"event_id\":1,\"section_id\":2,"
			   "\"quantity\":1,\"customer\":\"%s\"}",
		 text);
	refuse_str(json, ERROR_INVALID_FIELD, "x", "customer");
	text[254] = '\0';
	snprintf(json, sizeof(json),
		 BOOK_HEAD "\"event_id\":1,\"section_id\":2,"
			   "\"quantity\":1,\"customer\":\"%s\"}",
		 text);
	parse_ok(json, &req);
	assert_string_equal(req.customer, text);
	request_free(&req);

	/* The event's name: 200 fits, 201 does not. */
	memset(text, 'n', 201);
	text[201] = '\0';
	snprintf(
	    json, sizeof(json),
	    "{\"type\":\"create_event\",\"request_id\":\"x\",\"name\":\"%s\","
	    "\"sections\":[{\"name\":\"a\",\"capacity\":1}]}",
	    text);
	refuse_str(json, ERROR_INVALID_FIELD, "x", "name");
	text[200] = '\0';
	snprintf(
	    json, sizeof(json),
	    "{\"type\":\"create_event\",\"request_id\":\"x\",\"name\":\"%s\","
	    "\"sections\":[{\"name\":\"%s\",\"capacity\":1}]}",
	    text, text);
	parse_ok(json, &req);
	assert_string_equal(req.name, text);
	assert_string_equal(req.sections[0].name, text);
	request_free(&req);

	/* reply_to: Kafka's 249, kept on the refusal that follows. */
	memset(text, 't', 250);
	text[250] = '\0';
	snprintf(json, sizeof(json),
		 BOOK_HEAD "\"reply_to\":\"%s\"," BOOK_OK_TAIL, text);
	refuse_str(json, ERROR_INVALID_FIELD, "x", "reply_to");
	text[249] = '\0';
	snprintf(json, sizeof(json),
		 BOOK_HEAD "\"reply_to\":\"%s\"," BOOK_OK_TAIL, text);
	parse_ok(json, &req);
	assert_string_equal(req.reply_to, text);
	request_free(&req);
}

static void test_message_too_large(void **state)
{
	static const char book[] = BOOK_HEAD BOOK_OK_TAIL;
	size_t len = limits.max_message_bytes + 1;
	char *big = malloc(len);
	struct request req;
	struct request_error err;

	(void)state;
	assert_non_null(big);
	/* A valid book padded with whitespace: exactly at the limit it is
	 * read, one byte more and it is not even looked at. */
	memset(big, ' ', len);
	memcpy(big, book, strlen(book));
	assert_int_equal(request_parse(big, len - 1, &limits, &req, &err), 0);
	request_free(&req);
	refuse(big, len, ERROR_MESSAGE_TOO_LARGE, "", NULL);
	assert_int_equal(request_parse(big, len, &limits, &req, &err), -1);
	assert_non_null(strstr(err.message, "4096"));
	free(big);

	/* No value at all (a tombstone): malformed, not a crash. */
	assert_int_equal(request_parse(NULL, 0, &limits, &req, &err), -1);
	assert_int_equal(err.code, ERROR_MALFORMED_JSON);
}

/* Bytes after the message that are not JSON: an embedded NUL. */
static void test_embedded_nul(void **state)
{
	static const char json[] = BOOK_HEAD BOOK_OK_TAIL "\0garbage";

	(void)state;
	refuse(json, sizeof(json) - 1, ERROR_MALFORMED_JSON, "", NULL);
}

static void test_refusal_keeps_what_routes_the_reply(void **state)
{
	struct request req;
	struct request_error err;

	(void)state;
	assert_int_equal(parse("{\"type\":\"book\",\"request_id\":\"keep-me\","
			       "\"reply_to\":\"my.replies\",\"quantity\":0}",
			       &req, &err),
			 -1);
	assert_int_equal(err.code, ERROR_INVALID_FIELD);
	assert_string_equal(err.request_id, "keep-me");
	assert_string_equal(err.reply_to, "my.replies");
	assert_string_equal(err.type_name, "book");

	/* An unknown type keeps the id and the address, not the type. */
	assert_int_equal(parse("{\"type\":\"teleport\",\"request_id\":\"k2\","
			       "\"reply_to\":\"my.replies\"}",
			       &req, &err),
			 -1);
	assert_int_equal(err.code, ERROR_UNKNOWN_TYPE);
	assert_string_equal(err.request_id, "k2");
	assert_string_equal(err.reply_to, "my.replies");
	assert_string_equal(err.type_name, "");

	/* A business refusal keeps all three too. */
	assert_int_equal(
	    parse("{\"type\":\"hold\",\"request_id\":\"k3\","
		  "\"reply_to\":\"r\",\"event_id\":1,\"section_id\":2,"
		  "\"quantity\":50,\"customer\":\"c\"}",
		  &req, &err),
	    -1);
	assert_int_equal(err.code, ERROR_QUANTITY_LIMIT);
	assert_string_equal(err.request_id, "k3");
	assert_string_equal(err.reply_to, "r");
	assert_string_equal(err.type_name, "hold");

	/* A stale err is not reused: everything is cleared first. */
	assert_int_equal(parse("[]", &req, &err), -1);
	assert_int_equal(err.code, ERROR_MALFORMED_JSON);
	assert_string_equal(err.request_id, "");
	assert_string_equal(err.reply_to, "");
	assert_string_equal(err.type_name, "");
}

/*
 * request.h: "request_id, type_name and reply_to keep whatever could be
 * read, so that the reply can still be addressed". A missing or bad
 * request_id is the commonest client mistake: its refusal must still go to
 * the reply_to the client listens on, not to the default topic.
 */
static void test_bad_request_id_keeps_reply_to(void **state)
{
	static const char *const messages[] = {
	    "{\"type\":\"book\",\"request_id\":\"bad id\","
	    "\"reply_to\":\"my.replies\"}",
	    "{\"type\":\"book\",\"reply_to\":\"my.replies\"}",
	    "{\"reply_to\":\"my.replies\",\"request_id\":7,"
	    "\"type\":\"book\"}",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(messages) / sizeof(messages[0]); i++) {
		struct request req;
		struct request_error err;

		assert_int_equal(parse(messages[i], &req, &err), -1);
		assert_int_equal(err.code, ERROR_INVALID_FIELD);
		assert_string_equal(err.request_id, "");
		if (strcmp(err.reply_to, "my.replies") != 0)
			fail_msg("%s: err.reply_to is \"%s\": the refusal "
				 "goes to the default topic",
				 messages[i], err.reply_to);
		assert_string_equal(err.type_name, "book");
	}
}

/* ------------------------------------------------- codes and statuses */

static void test_error_status(void **state)
{
	(void)state;
	/* invalid: the message is wrong. */
	assert_int_equal(outcome_error_status(ERROR_MALFORMED_JSON),
			 STATUS_INVALID);
	assert_int_equal(outcome_error_status(ERROR_INVALID_FIELD),
			 STATUS_INVALID);
	assert_int_equal(outcome_error_status(ERROR_UNKNOWN_TYPE),
			 STATUS_INVALID);
	assert_int_equal(outcome_error_status(ERROR_MESSAGE_TOO_LARGE),
			 STATUS_INVALID);
	/* rejected: a business rule said no. */
	assert_int_equal(outcome_error_status(ERROR_EVENT_NOT_FOUND),
			 STATUS_REJECTED);
	assert_int_equal(outcome_error_status(ERROR_SECTION_NOT_FOUND),
			 STATUS_REJECTED);
	assert_int_equal(outcome_error_status(ERROR_INSUFFICIENT_SEATS),
			 STATUS_REJECTED);
	assert_int_equal(outcome_error_status(ERROR_HOLD_NOT_FOUND),
			 STATUS_REJECTED);
	assert_int_equal(outcome_error_status(ERROR_HOLD_EXPIRED),
			 STATUS_REJECTED);
	assert_int_equal(outcome_error_status(ERROR_HOLD_NOT_ACTIVE),
			 STATUS_REJECTED);
	assert_int_equal(outcome_error_status(ERROR_BOOKING_NOT_FOUND),
			 STATUS_REJECTED);
	assert_int_equal(outcome_error_status(ERROR_ALREADY_CANCELLED),
			 STATUS_REJECTED);
	assert_int_equal(outcome_error_status(ERROR_IDEMPOTENCY_CONFLICT),
			 STATUS_REJECTED);
	assert_int_equal(outcome_error_status(ERROR_QUANTITY_LIMIT),
			 STATUS_REJECTED);
}

/* The closed list of DESIGN.md, name for name, in its order. */
static void test_error_code_names(void **state)
{
	static const char *const names[] = {
	    "MALFORMED_JSON",	 "INVALID_FIELD",     "UNKNOWN_TYPE",
	    "EVENT_NOT_FOUND",	 "SECTION_NOT_FOUND", "INSUFFICIENT_SEATS",
	    "HOLD_NOT_FOUND",	 "HOLD_EXPIRED",      "HOLD_NOT_ACTIVE",
	    "BOOKING_NOT_FOUND", "ALREADY_CANCELLED", "IDEMPOTENCY_CONFLICT",
	    "QUANTITY_LIMIT",	 "MESSAGE_TOO_LARGE",
	};

	(void)state;
	assert_int_equal(ERROR_CODE_COUNT - 1,
			 sizeof(names) / sizeof(names[0]));
	for (int i = 1; i < ERROR_CODE_COUNT; i++)
		assert_string_equal(
		    request_error_code_name((enum request_error_code)i),
		    names[i - 1]);
	assert_string_equal(request_error_code_name(ERROR_CODE_COUNT),
			    "UNKNOWN");
}

static void test_type_and_status_names(void **state)
{
	(void)state;
	assert_string_equal(request_type_name(REQUEST_CREATE_EVENT),
			    "create_event");
	assert_string_equal(request_type_name(REQUEST_BOOK), "book");
	assert_string_equal(request_type_name(REQUEST_HOLD), "hold");
	assert_string_equal(request_type_name(REQUEST_CONFIRM), "confirm");
	assert_string_equal(request_type_name(REQUEST_RELEASE), "release");
	assert_string_equal(request_type_name(REQUEST_CANCEL), "cancel");
	assert_string_equal(request_type_name(REQUEST_TYPE_COUNT), "unknown");
	/* The five statuses of DESIGN.md. */
	assert_string_equal(outcome_status_name(STATUS_OK), "ok");
	assert_string_equal(outcome_status_name(STATUS_CONFIRMED), "confirmed");
	assert_string_equal(outcome_status_name(STATUS_HELD), "held");
	assert_string_equal(outcome_status_name(STATUS_REJECTED), "rejected");
	assert_string_equal(outcome_status_name(STATUS_INVALID), "invalid");
	assert_string_equal(outcome_status_name(STATUS_COUNT), "unknown");
}

static void test_ids_and_topics(void **state)
{
	(void)state;
	assert_true(request_id_valid("a-B_c.d:9", 9));
	assert_true(request_id_valid("abc", 1)); /* length, not the NUL */
	assert_false(request_id_valid("", 0));
	assert_false(request_id_valid("a/b", 3));
	assert_false(request_id_valid("a b", 3));
	assert_false(request_id_valid("a\0b", 3));
	assert_true(request_topic_valid("bookings.replies", 16));
	assert_true(request_topic_valid("a", 1));
	assert_true(request_topic_valid("...", 3));
	assert_false(request_topic_valid("", 0));
	assert_false(request_topic_valid("a:b", 3));
	assert_false(request_topic_valid(".", 1));
	assert_false(request_topic_valid("..", 2));
}

/* ---------------------------------------------------------- fingerprint */

static char *fingerprint_of(const char *json)
{
	struct request req;
	char *fp;

	parse_ok(json, &req);
	fp = strdup(req.fingerprint);
	assert_non_null(fp);
	request_free(&req);
	return fp;
}

static void test_fingerprint(void **state)
{
	char *a, *b, *other;
	struct request ra, rb;

	(void)state;
	/* Same key, same payload, another request_id and key order. */
	parse_ok("{\"type\":\"book\",\"request_id\":\"one\",\"idempotency_"
		 "key\":\"k\","
		 "\"event_id\":1,\"section_id\":2,\"quantity\":3,\"customer\":"
		 "\"c\"}",
		 &ra);
	parse_ok("{\"customer\":\"c\",\"quantity\":3,\"section_id\":2,\"event_"
		 "id\":1,"
		 "\"idempotency_key\":\"k\",\"request_id\":\"two\",\"type\":"
		 "\"book\"}",
		 &rb);
	assert_string_equal(ra.idempotency_key, "k");
	assert_string_equal(rb.idempotency_key, "k");
	assert_string_not_equal(ra.request_id, rb.request_id);
	assert_string_equal(ra.fingerprint, rb.fingerprint);
	/* Nothing that routes or correlates is in it. */
	assert_null(strstr(ra.fingerprint, "one"));
	request_free(&ra);
	request_free(&rb);

	a = fingerprint_of(BOOK_HEAD "\"event_id\":1,\"section_id\":2,"
				     "\"quantity\":3,\"customer\":\"c\"}");
	/* Where the reply goes is not what the request asks. */
	b = fingerprint_of(
	    BOOK_HEAD "\"reply_to\":\"elsewhere\",\"event_id\":1,"
		      "\"section_id\":2,\"quantity\":3,\"customer\":\"c\"}");
	assert_string_equal(a, b);
	free(b);

	/* Each field that decides the outcome changes it. */
	other = fingerprint_of(BOOK_HEAD "\"event_id\":1,\"section_id\":2,"
					 "\"quantity\":4,\"customer\":\"c\"}");
	assert_string_not_equal(a, other);
	free(other);
	other = fingerprint_of(BOOK_HEAD "\"event_id\":9,\"section_id\":2,"
					 "\"quantity\":3,\"customer\":\"c\"}");
	assert_string_not_equal(a, other);
	free(other);
	other = fingerprint_of(BOOK_HEAD "\"event_id\":1,\"section_id\":9,"
					 "\"quantity\":3,\"customer\":\"c\"}");
	assert_string_not_equal(a, other);
	free(other);
	other = fingerprint_of(BOOK_HEAD "\"event_id\":1,\"section_id\":2,"
					 "\"quantity\":3,\"customer\":\"d\"}");
	assert_string_not_equal(a, other);
	free(other);
	/* A hold is not a book of the same seats. */
	other = fingerprint_of("{\"type\":\"hold\",\"request_id\":\"x\","
			       "\"event_id\":1,\"section_id\":2,"
			       "\"quantity\":3,\"customer\":\"c\"}");
	assert_string_not_equal(a, other);
	free(other);
	free(a);

	/* The default ttl and the same ttl spelt out are one request. */
	a = fingerprint_of(
	    "{\"type\":\"hold\",\"request_id\":\"x\",\"event_id\":1,"
	    "\"section_id\":2,\"quantity\":3,\"customer\":\"c\"}");
	b = fingerprint_of(
	    "{\"type\":\"hold\",\"request_id\":\"x\",\"event_id\":1,"
	    "\"section_id\":2,\"quantity\":3,\"customer\":\"c\","
	    "\"ttl_s\":600}");
	other = fingerprint_of(
	    "{\"type\":\"hold\",\"request_id\":\"x\",\"event_id\":1,"
	    "\"section_id\":2,\"quantity\":3,\"customer\":\"c\","
	    "\"ttl_s\":601}");
	assert_string_equal(a, b);
	assert_string_not_equal(a, other);
	free(a);
	free(b);
	free(other);

	/* confirm and release of one hold are different requests. */
	a = fingerprint_of(
	    "{\"type\":\"confirm\",\"request_id\":\"x\",\"hold_id\":7}");
	b = fingerprint_of(
	    "{\"type\":\"release\",\"request_id\":\"x\",\"hold_id\":7}");
	other = fingerprint_of(
	    "{\"type\":\"confirm\",\"request_id\":\"x\",\"hold_id\":8}");
	assert_string_not_equal(a, b);
	assert_string_not_equal(a, other);
	free(a);
	free(b);
	free(other);

	/* create_event: every section, in order. */
	a = fingerprint_of(CREATE_HEAD
			   "\"sections\":[{\"name\":\"a\",\"capacity\":1},"
			   "{\"name\":\"b\",\"capacity\":2}]}");
	b = fingerprint_of(CREATE_HEAD
			   "\"sections\":[{\"name\":\"a\",\"capacity\":1},"
			   "{\"name\":\"b\",\"capacity\":3}]}");
	other = fingerprint_of(CREATE_HEAD
			       "\"sections\":[{\"name\":\"b\",\"capacity\":2},"
			       "{\"name\":\"a\",\"capacity\":1}]}");
	assert_string_not_equal(a, b);
	assert_string_not_equal(a, other);
	free(b);
	b = fingerprint_of(CREATE_HEAD
			   "\"venue\":\"v\",\"sections\":[{\"name\":\"a\","
			   "\"capacity\":1},{\"name\":\"b\",\"capacity\":2}]}");
	assert_string_not_equal(a, b);
	free(a);
	free(b);
	free(other);
}

/* ---------------------------------------------------------------- replies */

static json_t *load_reply(const char *text)
{
	json_error_t jerr;
	json_t *root;

	assert_non_null(text);
	root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		fail_msg("reply is not JSON (%s): %s", jerr.text, text);
	assert_true(json_is_object(root));
	return root;
}

static const char *get_string(json_t *obj, const char *name)
{
	json_t *value = json_object_get(obj, name);

	if (!json_is_string(value))
		fail_msg("\"%s\" is not a string", name);
	return json_string_value(value);
}

/* The reply text of an outcome, handed to the test (free() it). */
static char *reply_text(struct outcome *outcome, const char *request_id,
			const char *type_name)
{
	char *text;

	assert_int_equal(outcome_render(outcome, request_id, type_name), 0);
	text = outcome->reply;
	outcome->reply = NULL;
	return text;
}

/* A stored reply replayed for request_id, or NULL when it cannot be. */
static char *rewrite(const char *stored, const char *request_id)
{
	struct outcome outcome = OUTCOME_BLANK;

	if (outcome_replay(&outcome, stored, STATUS_OK, request_id) != 0) {
		assert_null(outcome.reply);
		return NULL;
	}
	assert_int_equal(outcome.replayed, 1);
	return outcome.reply;
}

static void test_reply_confirmed(void **state)
{
	struct outcome reply = {.status = STATUS_CONFIRMED,
				.booking_id = 1,
				.event_id = 99,
				.section_id = 100,
				.quantity = 5,
				.remaining = 0};
	char *text;

	(void)state;
	/* DESIGN.md's example, to the byte. */
	text = reply_text(&reply, "r-8c1e", "book");
	assert_non_null(text);
	assert_string_equal(
	    text, "{\"request_id\":\"r-8c1e\",\"type\":\"book\","
		  "\"status\":\"confirmed\",\"booking_id\":1,\"event_id\":99,"
		  "\"section_id\":100,\"quantity\":5,\"remaining\":0}");
	free(text);
}

static void test_reply_rejected(void **state)
{
	struct outcome reply = {.remaining = 0};
	json_t *root, *error;
	char *text;

	(void)state;
	outcome_set_error(&reply, ERROR_INSUFFICIENT_SEATS,
			  "%d requested, %d remaining", 5, 0);
	assert_int_equal(reply.status, STATUS_REJECTED);
	assert_int_equal(reply.error, ERROR_INSUFFICIENT_SEATS);
	text = reply_text(&reply, "r-77aa", "book");
	/* DESIGN.md's example, to the byte. */
	assert_string_equal(
	    text,
	    "{\"request_id\":\"r-77aa\",\"type\":\"book\","
	    "\"status\":\"rejected\",\"error\":{\"code\":"
	    "\"INSUFFICIENT_SEATS\",\"message\":\"5 requested, 0 remaining\"},"
	    "\"remaining\":0}");
	root = load_reply(text);
	assert_string_equal(get_string(root, "request_id"), "r-77aa");
	assert_string_equal(get_string(root, "type"), "book");
	assert_string_equal(get_string(root, "status"), "rejected");
	error = json_object_get(root, "error");
	assert_true(json_is_object(error));
	assert_string_equal(get_string(error, "code"), "INSUFFICIENT_SEATS");
	assert_string_equal(get_string(error, "message"),
			    "5 requested, 0 remaining");
	assert_int_equal(json_integer_value(json_object_get(root, "remaining")),
			 0);
	assert_null(json_object_get(root, "booking_id"));
	json_decref(root);
	free(text);
}

/* Whatever bytes the message holds, the reply is valid JSON. */
static void test_reply_message_bytes(void **state)
{
	static const char *const messages[] = {
	    "bad byte \xff here",      "caf\xc3\xa9 (UTF-8)",
	    "cut UTF-8 \xc3",	       "ctl \x01\x02\x1b[31m\x7f",
	    "line\nbreak\ttab\rcr",    "quote \" backslash \\ slash /",
	    "\xf0\x9f\x8e\xab ticket",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(messages) / sizeof(messages[0]); i++) {
		struct outcome reply = {.remaining = -1};
		json_t *root;
		const char *message;
		char *text;

		outcome_set_error(&reply, ERROR_INVALID_FIELD, "%s",
				  messages[i]);
		assert_int_equal(reply.status, STATUS_INVALID);
		text = reply_text(&reply, "r-1", "book");
		root = load_reply(text);
		message = get_string(json_object_get(root, "error"), "message");
		assert_true(message[0] != '\0');
		for (const char *p = message; *p; p++)
			assert_true(*p >= 0x20 && *p < 0x7f);
		assert_string_equal(get_string(root, "status"), "invalid");
		/* remaining -1 is "not part of this reply". */
		assert_null(json_object_get(root, "remaining"));
		json_decref(root);
		free(text);
	}

	/* Printable ASCII, quotes included, comes back unchanged. */
	{
		struct outcome reply = {.remaining = -1};
		json_t *root;
		char *text;

		outcome_set_error(&reply, ERROR_INVALID_FIELD, "%s",
				  messages[5]);
		text = reply_text(&reply, "r-1", NULL);
		root = load_reply(text);
		assert_string_equal(
		    get_string(json_object_get(root, "error"), "message"),
		    messages[5]);
		json_decref(root);
		free(text);
	}

	/* The longest message there can be. */
	{
		struct outcome reply = {.remaining = -1};
		char long_message[2 * REQUEST_MESSAGE_MAX];
		json_t *root;
		char *text;

		memset(long_message, '\xff', sizeof(long_message) - 1);
		long_message[sizeof(long_message) - 1] = '\0';
		outcome_set_error(&reply, ERROR_INVALID_FIELD, "%s",
				  long_message);
		text = reply_text(&reply, "r-1", "book");
		root = load_reply(text);
		assert_int_equal(
		    strlen(
			get_string(json_object_get(root, "error"), "message")),
		    REQUEST_MESSAGE_MAX - 1);
		json_decref(root);
		free(text);
	}
}

/* A message too broken to have an id still gets an answerable reply. */
static void test_reply_to_a_parse_error(void **state)
{
	struct request req;
	struct request_error err;
	struct outcome reply = {.remaining = -1};
	json_t *root;
	char *text;

	(void)state;
	assert_int_equal(parse("{\"type\":\"book\", \xff\x01 oops", &req, &err),
			 -1);
	outcome_set_error(&reply, err.code, "%s", err.message);
	text = reply_text(&reply, err.request_id, err.type_name);
	root = load_reply(text);
	assert_null(json_object_get(root, "request_id"));
	assert_null(json_object_get(root, "type"));
	assert_string_equal(get_string(root, "status"), "invalid");
	assert_string_equal(get_string(json_object_get(root, "error"), "code"),
			    "MALFORMED_JSON");
	json_decref(root);
	free(text);
}

/* The escaping, to the byte: quote and backslash escaped, every other byte
 * outside printable ASCII one '?'; an empty list is []. */
static void test_reply_escaping_to_the_byte(void **state)
{
	struct outcome reply = {.remaining = -1};
	int64_t none[1] = {0};
	char *text;

	(void)state;
	outcome_set_error(&reply, ERROR_INVALID_FIELD, "%s",
			  "q\"b\\c/\xc3\xa9\x01\x7f");
	text = reply_text(&reply, "r-1", "book");
	assert_string_equal(
	    text, "{\"request_id\":\"r-1\",\"type\":\"book\","
		  "\"status\":\"invalid\",\"error\":{\"code\":"
		  "\"INVALID_FIELD\",\"message\":\"q\\\"b\\\\c/????\"}}");
	free(text);

	memset(&reply, 0, sizeof(reply));
	reply.status = STATUS_OK;
	reply.remaining = -1;
	reply.section_ids = none;
	reply.section_count = 0;
	text = reply_text(&reply, "ev-1", "create_event");
	assert_string_equal(text,
			    "{\"request_id\":\"ev-1\",\"type\":\"create_"
			    "event\",\"status\":\"ok\",\"section_ids\":[]}");
	free(text);
}

static void test_reply_held_and_created(void **state)
{
	struct outcome reply = {.status = STATUS_HELD,
				.hold_id = 12,
				.event_id = 1,
				.section_id = 2,
				.quantity = 3,
				.remaining = 7,
				.expires_at = "2026-12-31T20:10:00Z"};
	int64_t ids[] = {100, 101};
	char *text;

	(void)state;
	text = reply_text(&reply, "h-1", "hold");
	assert_string_equal(
	    text,
	    "{\"request_id\":\"h-1\",\"type\":\"hold\",\"status\":\"held\","
	    "\"hold_id\":12,\"event_id\":1,\"section_id\":2,\"quantity\":3,"
	    "\"remaining\":7,\"expires_at\":\"2026-12-31T20:10:00Z\"}");
	free(text);

	memset(&reply, 0, sizeof(reply));
	reply.status = STATUS_OK;
	reply.event_id = 5;
	reply.remaining = -1;
	reply.section_ids = ids;
	reply.section_count = 2;
	text = reply_text(&reply, "ev-1", "create_event");
	assert_string_equal(
	    text, "{\"request_id\":\"ev-1\",\"type\":\"create_event\","
		  "\"status\":\"ok\",\"event_id\":5,"
		  "\"section_ids\":[100,101]}");
	free(text);
}

static void test_reply_rewrite_request_id(void **state)
{
	struct outcome replies[3] = {
	    {.status = STATUS_CONFIRMED,
	     .booking_id = 1,
	     .event_id = 99,
	     .section_id = 100,
	     .quantity = 5,
	     .remaining = 0},
	    {.status = STATUS_HELD,
	     .hold_id = 9007199254740991LL,
	     .quantity = 1,
	     .remaining = 4,
	     .expires_at = "2026-12-31T20:10:00.5+01:00"},
	    {.remaining = 3},
	};
	char *out;

	(void)state;
	outcome_set_error(&replies[2], ERROR_IDEMPOTENCY_CONFLICT,
			  "key \"k\" was used for another payload \\ \x01");
	/* A stored reply sent again reads as if built for the new id. */
	for (size_t i = 0; i < sizeof(replies) / sizeof(replies[0]); i++) {
		char *stored = reply_text(&replies[i], "old-id", "book");
		char *want = reply_text(&replies[i], "new-id", "book");

		out = rewrite(stored, "new-id");
		assert_non_null(out);
		assert_string_equal(out, want);
		free(out);
		free(stored);
		free(want);
	}

	/* Only request_id changes, wherever it is; the rest keeps its
	 * bytes and its order. */
	out = rewrite("{\"request_id\":\"old\",\"type\":"
		      "\"book\",\"status\":\"confirmed\","
		      "\"booking_id\":7}",
		      "new");
	assert_string_equal(out, "{\"request_id\":\"new\",\"type\":\"book\","
				 "\"status\":\"confirmed\",\"booking_id\":7}");
	free(out);
	out = rewrite("{\"status\":\"ok\",\"request_id\":\"old\",\"z\":[3,2,1],"
		      "\"a\":{\"y\":1,\"b\":\"x\"}}",
		      "n:2");
	assert_string_equal(out, "{\"status\":\"ok\",\"request_id\":\"n:2\","
				 "\"z\":[3,2,1],\"a\":{\"y\":1,\"b\":\"x\"}}");
	free(out);

	assert_null(rewrite("not json", "x"));
	assert_null(rewrite("", "x"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_book),
	    cmocka_unit_test(test_book_with_every_optional_field),
	    cmocka_unit_test(test_hold),
	    cmocka_unit_test(test_confirm_release_cancel),
	    cmocka_unit_test(test_create_event),
	    cmocka_unit_test(test_starts_at),
	    cmocka_unit_test(test_starts_at_lower_case_t),
	    cmocka_unit_test(test_every_refusal),
	    cmocka_unit_test(test_overlong_fields),
	    cmocka_unit_test(test_message_too_large),
	    cmocka_unit_test(test_embedded_nul),
	    cmocka_unit_test(test_refusal_keeps_what_routes_the_reply),
	    cmocka_unit_test(test_bad_request_id_keeps_reply_to),
	    cmocka_unit_test(test_error_status),
	    cmocka_unit_test(test_error_code_names),
	    cmocka_unit_test(test_type_and_status_names),
	    cmocka_unit_test(test_ids_and_topics),
	    cmocka_unit_test(test_fingerprint),
	    cmocka_unit_test(test_reply_confirmed),
	    cmocka_unit_test(test_reply_rejected),
	    cmocka_unit_test(test_reply_message_bytes),
	    cmocka_unit_test(test_reply_to_a_parse_error),
	    cmocka_unit_test(test_reply_escaping_to_the_byte),
	    cmocka_unit_test(test_reply_held_and_created),
	    cmocka_unit_test(test_reply_rewrite_request_id),
	};

	return cmocka_run_group_tests_name("request", tests, NULL, NULL);
}
