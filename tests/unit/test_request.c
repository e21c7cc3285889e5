/* Unit tests for request: parsing, every refusal, replies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "request.h"

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

static void test_book(void **state)
{
	struct request req;
	struct request_error err;

	(void)state;
	assert_int_equal(
	    parse("{\"type\":\"book\",\"request_id\":\"r-8c1e\","
		  "\"event_id\":99,\"section_id\":100,"
		  "\"quantity\":5,\"customer\":\"alice@example.com\"}",
		  &req, &err),
	    0);
	assert_int_equal(req.type, REQUEST_BOOK);
	assert_string_equal(req.request_id, "r-8c1e");
	assert_string_equal(req.idempotency_key, "r-8c1e");
	assert_int_equal(req.event_id, 99);
	assert_int_equal(req.section_id, 100);
	assert_int_equal(req.quantity, 5);
	assert_string_equal(req.customer, "alice@example.com");
	assert_non_null(req.fingerprint);
	request_free(&req);
}

static void test_every_type(void **state)
{
	static const struct {
		const char *json;
		enum request_type type;
	} cases[] = {
	    {"{\"type\":\"create_event\",\"request_id\":\"a\",\"name\":\"Gig\","
	     "\"venue\":\"Hall\",\"starts_at\":\"2026-12-31T20:00:00Z\","
	     "\"sections\":[{\"name\":\"A\",\"capacity\":5},"
	     "{\"name\":\"B\",\"capacity\":0}]}",
	     REQUEST_CREATE_EVENT},
	    {"{\"type\":\"hold\",\"request_id\":\"b\",\"event_id\":1,"
	     "\"section_id\":2,\"quantity\":1,\"customer\":\"c\"}",
	     REQUEST_HOLD},
	    {"{\"type\":\"confirm\",\"request_id\":\"c\",\"hold_id\":7}",
	     REQUEST_CONFIRM},
	    {"{\"type\":\"release\",\"request_id\":\"d\",\"hold_id\":7}",
	     REQUEST_RELEASE},
	    {"{\"type\":\"cancel\",\"request_id\":\"e\",\"booking_id\":8}",
	     REQUEST_CANCEL},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct request req;
		struct request_error err;

		assert_int_equal(parse(cases[i].json, &req, &err), 0);
		assert_int_equal(req.type, cases[i].type);
		if (req.type == REQUEST_CREATE_EVENT) {
			assert_int_equal(req.section_count, 2);
			assert_string_equal(req.sections[1].name, "B");
			assert_int_equal(req.sections[0].capacity, 5);
			assert_string_equal(req.venue, "Hall");
		}
		if (req.type == REQUEST_HOLD)
			assert_int_equal(req.ttl_s, limits.hold_ttl_default_s);
		if (req.type == REQUEST_CONFIRM || req.type == REQUEST_RELEASE)
			assert_int_equal(req.hold_id, 7);
		if (req.type == REQUEST_CANCEL)
			assert_int_equal(req.booking_id, 8);
		request_free(&req);
	}
}

/* One refusal per row: the message and the code it must get. */
static const struct {
	const char *json;
	enum request_error_code code;
} refusals[] = {
    {"{not json", ERROR_MALFORMED_JSON},
    {"", ERROR_MALFORMED_JSON},
    {"[1,2]", ERROR_MALFORMED_JSON},
    {"42", ERROR_MALFORMED_JSON},
    {"\"book\"", ERROR_MALFORMED_JSON},
    {"{\"type\":\"book\"} trailing", ERROR_MALFORMED_JSON},
    {"{\"type\":\"book\",\"type\":\"hold\",\"request_id\":\"x\"}",
     ERROR_MALFORMED_JSON},
    {"{\"type\":\"book\",\"request_id\":\"x\",\"event_id\":"
     "99999999999999999999999}",
     ERROR_MALFORMED_JSON},
    {"{\"type\":\"book\"}", ERROR_INVALID_FIELD},
    {"{\"type\":\"book\",\"request_id\":\"has space\"}", ERROR_INVALID_FIELD},
    {"{\"type\":\"book\",\"request_id\":7}", ERROR_INVALID_FIELD},
    {"{\"request_id\":\"x\"}", ERROR_INVALID_FIELD},
    {"{\"request_id\":\"x\",\"type\":5}", ERROR_INVALID_FIELD},
    {"{\"request_id\":\"x\",\"type\":\"teleport\"}", ERROR_UNKNOWN_TYPE},
    {"{\"type\":\"book\",\"request_id\":\"x\",\"event_id\":1,\"section_id\":2,"
     "\"quantity\":\"5\",\"customer\":\"c\"}",
     ERROR_INVALID_FIELD},
    {"{\"type\":\"book\",\"request_id\":\"x\",\"event_id\":1,\"section_id\":2,"
     "\"quantity\":5.0,\"customer\":\"c\"}",
     ERROR_INVALID_FIELD},
    {"{\"type\":\"book\",\"request_id\":\"x\",\"event_id\":1,\"section_id\":2,"
     "\"quantity\":true,\"customer\":\"c\"}",
     ERROR_INVALID_FIELD},
    {"{\"type\":\"book\",\"request_id\":\"x\",\"event_id\":1,\"section_id\":2,"
     "\"quantity\":0,\"customer\":\"c\"}",
     ERROR_INVALID_FIELD},
    {"{\"type\":\"book\",\"request_id\":\"x\",\"event_id\":1,\"section_id\":2,"
     "\"quantity\":-1,\"customer\":\"c\"}",
     ERROR_INVALID_FIELD},
    {"{\"type\":\"book\",\"request_id\":\"x\",\"event_id\":1,\"section_id\":2,"
     "\"quantity\":4294967296,\"customer\":\"c\"}",
     ERROR_INVALID_FIELD},
    {"{\"type\":\"book\",\"request_id\":\"x\",\"event_id\":0,\"section_id\":2,"
     "\"quantity\":1,\"customer\":\"c\"}",
     ERROR_INVALID_FIELD},
    {"{\"type\":\"book\",\"request_id\":\"x\",\"event_id\":9007199254740992,"
     "\"section_id\":2,\"quantity\":1,\"customer\":\"c\"}",
     ERROR_INVALID_FIELD},
    {"{\"type\":\"book\",\"request_id\":\"x\",\"event_id\":1,\"section_id\":2,"
     "\"quantity\":1,\"customer\":\"\"}",
     ERROR_INVALID_FIELD},
    {"{\"type\":\"book\",\"request_id\":\"x\",\"event_id\":1,\"section_id\":2,"
     "\"quantity\":1,\"customer\":\"a\\u0001b\"}",
     ERROR_INVALID_FIELD},
    {"{\"type\":\"book\",\"request_id\":\"x\",\"event_id\":1,\"section_id\":2,"
     "\"quantity\":1,\"customer\":\"c\",\"reply_to\":\"bad topic\"}",
     ERROR_INVALID_FIELD},
    {"{\"type\":\"book\",\"request_id\":\"x\",\"event_id\":1,\"section_id\":2,"
     "\"quantity\":11,\"customer\":\"c\"}",
     ERROR_QUANTITY_LIMIT},
    {"{\"type\":\"hold\",\"request_id\":\"x\",\"event_id\":1,\"section_id\":2,"
     "\"quantity\":1,\"customer\":\"c\",\"ttl_s\":3601}",
     ERROR_INVALID_FIELD},
    {"{\"type\":\"confirm\",\"request_id\":\"x\"}", ERROR_INVALID_FIELD},
    {"{\"type\":\"cancel\",\"request_id\":\"x\",\"booking_id\":\"1\"}",
     ERROR_INVALID_FIELD},
    {"{\"type\":\"create_event\",\"request_id\":\"x\",\"name\":\"n\","
     "\"sections\":[]}",
     ERROR_INVALID_FIELD},
    {"{\"type\":\"create_event\",\"request_id\":\"x\",\"name\":\"n\","
     "\"sections\":[{\"name\":\"a\",\"capacity\":1},{\"name\":\"b\","
     "\"capacity\":1},"
     "{\"name\":\"c\",\"capacity\":1},{\"name\":\"d\",\"capacity\":1}]}",
     ERROR_INVALID_FIELD},
    {"{\"type\":\"create_event\",\"request_id\":\"x\",\"name\":\"n\","
     "\"sections\":[{\"name\":\"a\",\"capacity\":1},{\"name\":\"a\","
     "\"capacity\":2}]}",
     ERROR_INVALID_FIELD},
    {"{\"type\":\"create_event\",\"request_id\":\"x\",\"name\":\"n\","
     "\"sections\":[{\"name\":\"a\",\"capacity\":-1}]}",
     ERROR_INVALID_FIELD},
    {"{\"type\":\"create_event\",\"request_id\":\"x\",\"name\":\"n\","
     "\"sections\":[{\"name\":\"a\",\"capacity\":1001}]}",
     ERROR_INVALID_FIELD},
    {"{\"type\":\"create_event\",\"request_id\":\"x\",\"name\":\"n\","
     "\"starts_at\":\"2025-02-29T10:00:00Z\","
     "\"sections\":[{\"name\":\"a\",\"capacity\":1}]}",
     ERROR_INVALID_FIELD},
    {"{\"type\":\"create_event\",\"request_id\":\"x\",\"name\":\"n\","
     "\"starts_at\":\"tomorrow\",\"sections\":[{\"name\":\"a\",\"capacity\":1}]"
     "}",
     ERROR_INVALID_FIELD},
};

static void test_every_refusal(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
		struct request req;
		struct request_error err;

		if (parse(refusals[i].json, &req, &err) == 0) {
			request_free(&req);
			fail_msg("accepted: %s", refusals[i].json);
		}
		if (err.code != refusals[i].code)
			fail_msg("%s: got %s (%s), want %s", refusals[i].json,
				 request_error_code_name(err.code), err.message,
				 request_error_code_name(refusals[i].code));
		assert_true(err.message[0] != '\0');
	}
}

static void test_overlong_fields(void **state)
{
	char json[1024], long_id[140], long_customer[300];
	struct request req;
	struct request_error err;

	(void)state;
	memset(long_id, 'r', 129);
	long_id[129] = '\0';
	snprintf(json, sizeof(json),
		 "{\"type\":\"cancel\",\"request_id\":\"%s\",\"booking_id\":1}",
		 long_id);
	assert_int_equal(parse(json, &req, &err), -1);
	assert_int_equal(err.code, ERROR_INVALID_FIELD);
	long_id[128] = '\0'; /* 128 is the limit, and fine */
	snprintf(json, sizeof(json),
		 "{\"type\":\"cancel\",\"request_id\":\"%s\",\"booking_id\":1}",
		 long_id);
	assert_int_equal(parse(json, &req, &err), 0);
	request_free(&req);

	memset(long_customer, 'c', 255);
	long_customer[255] = '\0';
	snprintf(json, sizeof(json),
		 "{\"type\":\"book\",\"request_id\":\"x\",\"event_id\":1,"
		 "\"section_id\":2,"
		 "\"quantity\":1,\"customer\":\"%s\"}",
		 long_customer);
	assert_int_equal(parse(json, &req, &err), -1);
	assert_int_equal(err.code, ERROR_INVALID_FIELD);
}

static void test_message_too_large(void **state)
{
	size_t len = limits.max_message_bytes + 1;
	char *big = malloc(len);
	struct request req;
	struct request_error err;

	(void)state;
	assert_non_null(big);
	memset(big, ' ', len);
	assert_int_equal(request_parse(big, len, &limits, &req, &err), -1);
	assert_int_equal(err.code, ERROR_MESSAGE_TOO_LARGE);
	free(big);
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
	assert_string_equal(err.request_id, "keep-me");
	assert_string_equal(err.reply_to, "my.replies");
	assert_string_equal(err.type_name, "book");
}

static void test_error_status(void **state)
{
	(void)state;
	assert_int_equal(request_error_status(ERROR_MALFORMED_JSON),
			 STATUS_INVALID);
	assert_int_equal(request_error_status(ERROR_INVALID_FIELD),
			 STATUS_INVALID);
	assert_int_equal(request_error_status(ERROR_UNKNOWN_TYPE),
			 STATUS_INVALID);
	assert_int_equal(request_error_status(ERROR_MESSAGE_TOO_LARGE),
			 STATUS_INVALID);
	assert_int_equal(request_error_status(ERROR_INSUFFICIENT_SEATS),
			 STATUS_REJECTED);
	assert_int_equal(request_error_status(ERROR_QUANTITY_LIMIT),
			 STATUS_REJECTED);
	assert_int_equal(request_error_status(ERROR_IDEMPOTENCY_CONFLICT),
			 STATUS_REJECTED);
}

/* The closed list of DESIGN.md, name for name. */
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
}

static void test_fingerprint(void **state)
{
	struct request a, b, c;
	struct request_error err;

	(void)state;
	assert_int_equal(parse("{\"type\":\"book\",\"request_id\":\"one\","
			       "\"idempotency_key\":\"k\","
			       "\"event_id\":1,\"section_id\":2,\"quantity\":3,"
			       "\"customer\":\"c\"}",
			       &a, &err),
			 0);
	assert_int_equal(parse("{\"customer\":\"c\",\"quantity\":3,\"section_"
			       "id\":2,\"event_id\":1,"
			       "\"idempotency_key\":\"k\",\"request_id\":"
			       "\"two\",\"type\":\"book\"}",
			       &b, &err),
			 0);
	assert_int_equal(parse("{\"type\":\"book\",\"request_id\":\"three\","
			       "\"idempotency_key\":\"k\","
			       "\"event_id\":1,\"section_id\":2,\"quantity\":4,"
			       "\"customer\":\"c\"}",
			       &c, &err),
			 0);
	assert_string_equal(a.idempotency_key, "k");
	assert_string_equal(a.fingerprint, b.fingerprint);
	assert_string_not_equal(a.fingerprint, c.fingerprint);
	request_free(&a);
	request_free(&b);
	request_free(&c);
}

static void test_reply_json(void **state)
{
	struct reply reply = {.status = STATUS_CONFIRMED,
			      .booking_id = 1,
			      .event_id = 99,
			      .section_id = 100,
			      .quantity = 5,
			      .remaining = 0};
	json_t *root;
	char *text;

	(void)state;
	text = reply_to_json("r-8c1e", "book", &reply);
	assert_non_null(text);
	assert_string_equal(
	    text, "{\"request_id\":\"r-8c1e\",\"type\":\"book\",\"status\":"
		  "\"confirmed\","
		  "\"booking_id\":1,\"event_id\":99,\"section_id\":100,"
		  "\"quantity\":5,\"remaining\":0}");
	free(text);

	memset(&reply, 0, sizeof(reply));
	reply.remaining = 0;
	reply_set_error(&reply, ERROR_INSUFFICIENT_SEATS,
			"5 requested, %d remaining\x01\xff", 0);
	text = reply_to_json("r-77aa", "book", &reply);
	root = json_loads(text, 0, NULL);
	assert_non_null(root);
	assert_string_equal(json_string_value(json_object_get(root, "status")),
			    "rejected");
	assert_string_equal(json_string_value(json_object_get(
				json_object_get(root, "error"), "code")),
			    "INSUFFICIENT_SEATS");
	assert_int_equal(json_integer_value(json_object_get(root, "remaining")),
			 0);
	json_decref(root);
	free(text);
}

static void test_reply_rewrite_request_id(void **state)
{
	char *out;

	(void)state;
	out = reply_rewrite_request_id(
	    "{\"request_id\":\"old\",\"type\":\"book\",\"status\":"
	    "\"confirmed\",\"booking_id\":7}",
	    "new");
	assert_string_equal(out, "{\"request_id\":\"new\",\"type\":\"book\","
				 "\"status\":\"confirmed\",\"booking_id\":7}");
	free(out);
	assert_null(reply_rewrite_request_id("not json", "x"));
}

static void test_ids_and_topics(void **state)
{
	(void)state;
	assert_true(request_id_valid("a-B_c.d:9", 9));
	assert_false(request_id_valid("", 0));
	assert_false(request_id_valid("a/b", 3));
	assert_true(request_topic_valid("bookings.replies", 16));
	assert_false(request_topic_valid("a:b", 3));
	assert_false(request_topic_valid("..", 2));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_book),
	    cmocka_unit_test(test_every_type),
	    cmocka_unit_test(test_every_refusal),
	    cmocka_unit_test(test_overlong_fields),
	    cmocka_unit_test(test_message_too_large),
	    cmocka_unit_test(test_refusal_keeps_what_routes_the_reply),
	    cmocka_unit_test(test_error_status),
	    cmocka_unit_test(test_error_code_names),
	    cmocka_unit_test(test_fingerprint),
	    cmocka_unit_test(test_reply_json),
	    cmocka_unit_test(test_reply_rewrite_request_id),
	    cmocka_unit_test(test_ids_and_topics),
	};

	return cmocka_run_group_tests_name("request", tests, NULL, NULL);
}
