/*
 * request: booking request messages, JSON to struct, validated. No I/O:
 * unit-tested and fuzzed on its own (outcome.c writes the replies).
 */
#include "request.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest id accepted: PostgreSQL bigint, and exact in a JSON double. */
#define REQUEST_ID_VALUE_MAX ((int64_t)9007199254740991LL)

static const char *const type_names[REQUEST_TYPE_COUNT] = {
    [REQUEST_CREATE_EVENT] = "create_event",
    [REQUEST_BOOK] = "book",
    [REQUEST_HOLD] = "hold",
    [REQUEST_CONFIRM] = "confirm",
    [REQUEST_RELEASE] = "release",
    [REQUEST_CANCEL] = "cancel",
};

static const char *const error_names[ERROR_CODE_COUNT] = {
    [ERROR_NONE] = "NONE",
    [ERROR_MALFORMED_JSON] = "MALFORMED_JSON",
    [ERROR_INVALID_FIELD] = "INVALID_FIELD",
    [ERROR_UNKNOWN_TYPE] = "UNKNOWN_TYPE",
    [ERROR_EVENT_NOT_FOUND] = "EVENT_NOT_FOUND",
    [ERROR_SECTION_NOT_FOUND] = "SECTION_NOT_FOUND",
    [ERROR_INSUFFICIENT_SEATS] = "INSUFFICIENT_SEATS",
    [ERROR_HOLD_NOT_FOUND] = "HOLD_NOT_FOUND",
    [ERROR_HOLD_EXPIRED] = "HOLD_EXPIRED",
    [ERROR_HOLD_NOT_ACTIVE] = "HOLD_NOT_ACTIVE",
    [ERROR_BOOKING_NOT_FOUND] = "BOOKING_NOT_FOUND",
    [ERROR_ALREADY_CANCELLED] = "ALREADY_CANCELLED",
    [ERROR_IDEMPOTENCY_CONFLICT] = "IDEMPOTENCY_CONFLICT",
    [ERROR_QUANTITY_LIMIT] = "QUANTITY_LIMIT",
    [ERROR_MESSAGE_TOO_LARGE] = "MESSAGE_TOO_LARGE",
};

const char *request_type_name(enum request_type type)
{
	return type < REQUEST_TYPE_COUNT ? type_names[type] : "unknown";
}

const char *request_error_code_name(enum request_error_code code)
{
	return code < ERROR_CODE_COUNT ? error_names[code] : "UNKNOWN";
}

static int id_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
	       c == '-';
}

int request_id_valid(const char *s, size_t len)
{
	if (len < 1 || len > REQUEST_ID_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (!id_char(s[i]))
			return 0;
	}
	return 1;
}

int request_topic_valid(const char *s, size_t len)
{
	if (len < 1 || len > REQUEST_TOPIC_MAX)
		return 0;
	if ((len == 1 && s[0] == '.') ||
	    (len == 2 && s[0] == '.' && s[1] == '.'))
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (!id_char(s[i]) || s[i] == ':')
			return 0;
	}
	return 1;
}

static void error_set(struct request_error *err, enum request_error_code code,
		      const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void error_set(struct request_error *err, enum request_error_code code,
		      const char *fmt, ...)
{
	va_list ap;

	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
}

/* Field readers: 0 on success, -1 with err set. A missing optional field
 * leaves out untouched and succeeds. */

static int read_text(json_t *root, const char *name, int required,
		     size_t max_len, char *out, size_t out_size,
		     struct request_error *err)
{
	json_t *value = json_object_get(root, name);
	const char *s;
	size_t len;

	if (!value || json_is_null(value)) {
		if (!required)
			return 0;
		error_set(err, ERROR_INVALID_FIELD, "%s is required", name);
		return -1;
	}
	if (!json_is_string(value)) {
		error_set(err, ERROR_INVALID_FIELD, "%s must be a string",
			  name);
		return -1;
	}
	s = json_string_value(value);
	len = json_string_length(value);
	if (len < 1 || len > max_len || len >= out_size) {
		error_set(err, ERROR_INVALID_FIELD,
			  "%s must be 1 to %zu characters long", name, max_len);
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
			error_set(err, ERROR_INVALID_FIELD,
				  "%s must not contain control characters",
				  name);
			return -1;
		}
	}
	memcpy(out, s, len + 1);
	return 0;
}

static int read_identifier(json_t *root, const char *name, int required,
			   char *out, struct request_error *err)
{
	json_t *value = json_object_get(root, name);

	if (!value || json_is_null(value)) {
		if (!required)
			return 0;
		error_set(err, ERROR_INVALID_FIELD, "%s is required", name);
		return -1;
	}
	if (!json_is_string(value) ||
	    !request_id_valid(json_string_value(value),
			      json_string_length(value))) {
		error_set(err, ERROR_INVALID_FIELD,
			  "%s must be 1 to %d characters of [A-Za-z0-9._:-]",
			  name, REQUEST_ID_MAX);
		return -1;
	}
	memcpy(out, json_string_value(value), json_string_length(value) + 1);
	return 0;
}

static int read_integer(json_t *root, const char *name, int required,
			json_int_t min, json_int_t max, json_int_t *out,
			struct request_error *err)
{
	json_t *value = json_object_get(root, name);
	json_int_t v;

	if (!value || json_is_null(value)) {
		if (!required)
			return 0;
		error_set(err, ERROR_INVALID_FIELD, "%s is required", name);
		return -1;
	}
	if (!json_is_integer(value)) {
		error_set(err, ERROR_INVALID_FIELD, "%s must be an integer",
			  name);
		return -1;
	}
	v = json_integer_value(value);
	if (v < min || v > max) {
		error_set(err, ERROR_INVALID_FIELD,
			  "%s must be between %lld and %lld", name,
			  (long long)min, (long long)max);
		return -1;
	}
	*out = v;
	return 0;
}

static int read_id(json_t *root, const char *name, int64_t *out,
		   struct request_error *err)
{
	json_int_t v = 0;

	if (read_integer(root, name, 1, 1, REQUEST_ID_VALUE_MAX, &v, err) != 0)
		return -1;
	*out = v;
	return 0;
}

static int digits(const char *s, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

/*
 * RFC 3339 date-time: YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM), 'T' or
 * ' ' between date and time. Checked here so that PostgreSQL never sees a
 * timestamp it would refuse.
 */
static int timestamp_valid(const char *s)
{
	static const int days[] = {31, 29, 31, 30, 31, 30,
				   31, 31, 30, 31, 30, 31};
	int year, month, day, hour, minute, second, tz_h, tz_m;
	const char *p;

	if (strlen(s) < 20)
		return 0;
	if (digits(s, 4, &year) || s[4] != '-' || digits(s + 5, 2, &month) ||
	    s[7] != '-' || digits(s + 8, 2, &day) ||
	    (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
	    digits(s + 11, 2, &hour) || s[13] != ':' ||
	    digits(s + 14, 2, &minute) || s[16] != ':' ||
	    digits(s + 17, 2, &second))
		return 0;
	if (year < 1970 || month < 1 || month > 12 || day < 1 ||
	    day > days[month - 1] || hour > 23 || minute > 59 || second > 59)
		return 0;
	if (month == 2 && day == 29 &&
	    !((year % 4 == 0 && year % 100 != 0) || year % 400 == 0))
		return 0;
	p = s + 19;
	if (*p == '.') {
		int n = 0;

		for (p++; *p >= '0' && *p <= '9'; p++)
			n++;
		if (n < 1 || n > 6)
			return 0;
	}
	if (*p == 'Z' || *p == 'z')
		return p[1] == '\0';
	if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':' &&
	    !digits(p + 1, 2, &tz_h) && !digits(p + 4, 2, &tz_m))
		return tz_h <= 23 && tz_m <= 59;
	return 0;
}

static int parse_sections(json_t *root, const struct request_limits *limits,
			  struct request *req, struct request_error *err)
{
	json_t *list = json_object_get(root, "sections");
	size_t n;

	if (!json_is_array(list) || json_array_size(list) < 1 ||
	    json_array_size(list) > (size_t)limits->max_sections) {
		error_set(err, ERROR_INVALID_FIELD,
			  "sections must be an array of 1 to %d sections",
			  limits->max_sections);
		return -1;
	}
	n = json_array_size(list);
	req->sections = calloc(n, sizeof(*req->sections));
	if (!req->sections) {
		error_set(err, ERROR_INVALID_FIELD, "out of memory");
		return -1;
	}
	req->section_count = n;
	for (size_t i = 0; i < n; i++) {
		json_t *item = json_array_get(list, i);
		json_int_t capacity = 0;

		if (!json_is_object(item)) {
			error_set(err, ERROR_INVALID_FIELD,
				  "sections[%zu] must be an object", i);
			return -1;
		}
		if (read_text(item, "name", 1, REQUEST_NAME_MAX,
			      req->sections[i].name,
			      sizeof(req->sections[i].name), err) != 0 ||
		    read_integer(item, "capacity", 1, 0,
				 limits->max_section_capacity, &capacity,
				 err) != 0) {
			char inner[REQUEST_MESSAGE_MAX];

			snprintf(inner, sizeof(inner), "%s", err->message);
			error_set(err, ERROR_INVALID_FIELD, "sections[%zu].%s",
				  i, inner);
			return -1;
		}
		req->sections[i].capacity = (int)capacity;
		for (size_t j = 0; j < i; j++) {
			if (strcmp(req->sections[j].name,
				   req->sections[i].name) == 0) {
				error_set(err, ERROR_INVALID_FIELD,
					  "sections[%zu].name repeats \"%s\"",
					  i, req->sections[i].name);
				return -1;
			}
		}
	}
	return 0;
}

static int parse_seat_request(json_t *root, const struct request_limits *limits,
			      struct request *req, struct request_error *err)
{
	json_int_t quantity = 0;

	if (read_id(root, "event_id", &req->event_id, err) != 0 ||
	    read_id(root, "section_id", &req->section_id, err) != 0 ||
	    read_integer(root, "quantity", 1, 1, INT32_MAX, &quantity, err) !=
		0 ||
	    read_text(root, "customer", 1, REQUEST_CUSTOMER_MAX, req->customer,
		      sizeof(req->customer), err) != 0)
		return -1;
	req->quantity = (int)quantity;
	if (req->type == REQUEST_HOLD) {
		json_int_t ttl = limits->hold_ttl_default_s;

		if (read_integer(root, "ttl_s", 0, 1, limits->hold_ttl_max_s,
				 &ttl, err) != 0)
			return -1;
		req->ttl_s = (int)ttl;
	}
	if (req->quantity > limits->max_quantity) {
		error_set(err, ERROR_QUANTITY_LIMIT,
			  "%d seats requested, at most %d per request",
			  req->quantity, limits->max_quantity);
		return -1;
	}
	return 0;
}

static int parse_body(json_t *root, const struct request_limits *limits,
		      struct request *req, struct request_error *err)
{
	switch (req->type) {
	case REQUEST_CREATE_EVENT:
		if (read_text(root, "name", 1, REQUEST_NAME_MAX, req->name,
			      sizeof(req->name), err) != 0 ||
		    read_text(root, "venue", 0, REQUEST_NAME_MAX, req->venue,
			      sizeof(req->venue), err) != 0 ||
		    read_text(root, "starts_at", 0, REQUEST_TIMESTAMP_MAX,
			      req->starts_at, sizeof(req->starts_at), err) != 0)
			return -1;
		if (req->starts_at[0] && !timestamp_valid(req->starts_at)) {
			error_set(err, ERROR_INVALID_FIELD,
				  "starts_at must be an RFC 3339 date-time, "
				  "e.g. 2026-12-31T20:00:00Z");
			return -1;
		}
		return parse_sections(root, limits, req, err);
	case REQUEST_BOOK:
	case REQUEST_HOLD:
		return parse_seat_request(root, limits, req, err);
	case REQUEST_CONFIRM:
	case REQUEST_RELEASE:
		return read_id(root, "hold_id", &req->hold_id, err);
	case REQUEST_CANCEL:
		return read_id(root, "booking_id", &req->booking_id, err);
	case REQUEST_TYPE_COUNT:
		break;
	}
	error_set(err, ERROR_UNKNOWN_TYPE, "unknown type");
	return -1;
}

/*
 * The canonical payload: the type and every field that decides the
 * outcome, as a compact JSON array. Two requests with one key and equal
 * fingerprints are the same request.
 */
static char *fingerprint_build(const struct request *req)
{
	json_t *a = json_array();
	char *out = NULL;

	if (!a)
		return NULL;
	json_array_append_new(a, json_string(type_names[req->type]));
	switch (req->type) {
	case REQUEST_CREATE_EVENT:
		json_array_append_new(a, json_string(req->name));
		json_array_append_new(a, json_string(req->venue));
		json_array_append_new(a, json_string(req->starts_at));
		for (size_t i = 0; i < req->section_count; i++) {
			json_array_append_new(
			    a, json_string(req->sections[i].name));
			json_array_append_new(
			    a, json_integer(req->sections[i].capacity));
		}
		break;
	case REQUEST_BOOK:
	case REQUEST_HOLD:
		json_array_append_new(a, json_integer(req->event_id));
		json_array_append_new(a, json_integer(req->section_id));
		json_array_append_new(a, json_integer(req->quantity));
		json_array_append_new(a, json_string(req->customer));
		if (req->type == REQUEST_HOLD)
			json_array_append_new(a, json_integer(req->ttl_s));
		break;
	case REQUEST_CONFIRM:
	case REQUEST_RELEASE:
		json_array_append_new(a, json_integer(req->hold_id));
		break;
	case REQUEST_CANCEL:
		json_array_append_new(a, json_integer(req->booking_id));
		break;
	case REQUEST_TYPE_COUNT:
		break;
	}
	out = json_dumps(a, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(a);
	return out;
}

/*
 * Before any refusal: copy whatever can address and correlate the reply
 * (request_id, reply_to, a known type) into err, each only if valid, so
 * that a request refused for any reason is still answered where its
 * client listens.
 */
static void salvage_address(json_t *root, struct request_error *err)
{
	json_t *v = json_object_get(root, "request_id");

	if (json_is_string(v) &&
	    request_id_valid(json_string_value(v), json_string_length(v)))
		memcpy(err->request_id, json_string_value(v),
		       json_string_length(v) + 1);
	v = json_object_get(root, "reply_to");
	if (json_is_string(v) &&
	    request_topic_valid(json_string_value(v), json_string_length(v)))
		memcpy(err->reply_to, json_string_value(v),
		       json_string_length(v) + 1);
	v = json_object_get(root, "type");
	if (json_is_string(v)) {
		for (int t = 0; t < REQUEST_TYPE_COUNT; t++) {
			if (strcmp(json_string_value(v), type_names[t]) == 0)
				snprintf(err->type_name, sizeof(err->type_name),
					 "%s", type_names[t]);
		}
	}
}

int request_parse(const char *buf, size_t len,
		  const struct request_limits *limits, struct request *req,
		  struct request_error *err)
{
	json_error_t jerr;
	json_t *root = NULL;
	json_t *type;
	const char *type_name;
	int found = 0;

	memset(req, 0, sizeof(*req));
	memset(err, 0, sizeof(*err));

	if (len > limits->max_message_bytes) {
		error_set(err, ERROR_MESSAGE_TOO_LARGE,
			  "message is %zu bytes, the limit is %zu", len,
			  limits->max_message_bytes);
		return -1;
	}
	if (!buf || len == 0) {
		error_set(err, ERROR_MALFORMED_JSON, "message has no value");
		return -1;
	}
	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		error_set(err, ERROR_MALFORMED_JSON, "%s at line %d column %d",
			  jerr.text, jerr.line, jerr.column);
		return -1;
	}
	if (!json_is_object(root)) {
		error_set(err, ERROR_MALFORMED_JSON,
			  "message must be a JSON object");
		goto fail;
	}

	/* Read what addresses the reply first, so that even a refusal of
	 * the rest can be correlated and routed. */
	salvage_address(root, err);
	if (read_identifier(root, "request_id", 1, req->request_id, err) != 0)
		goto fail;
	memcpy(err->request_id, req->request_id, sizeof(err->request_id));
	{
		json_t *reply_to = json_object_get(root, "reply_to");

		if (reply_to && !json_is_null(reply_to)) {
			if (!json_is_string(reply_to) ||
			    !request_topic_valid(
				json_string_value(reply_to),
				json_string_length(reply_to))) {
				error_set(
				    err, ERROR_INVALID_FIELD,
				    "reply_to must be a Kafka topic name");
				goto fail;
			}
			memcpy(req->reply_to, json_string_value(reply_to),
			       json_string_length(reply_to) + 1);
			memcpy(err->reply_to, req->reply_to,
			       sizeof(err->reply_to));
		}
	}

	type = json_object_get(root, "type");
	if (!type || !json_is_string(type)) {
		error_set(err, ERROR_INVALID_FIELD,
			  "type is required and must be a string");
		goto fail;
	}
	type_name = json_string_value(type);
	for (int t = 0; t < REQUEST_TYPE_COUNT; t++) {
		if (strcmp(type_name, type_names[t]) == 0) {
			req->type = (enum request_type)t;
			found = 1;
			break;
		}
	}
	if (!found) {
		error_set(err, ERROR_UNKNOWN_TYPE,
			  "type must be one of create_event, book, hold, "
			  "confirm, release, cancel");
		goto fail;
	}
	snprintf(err->type_name, sizeof(err->type_name), "%s", type_name);

	if (read_identifier(root, "idempotency_key", 0, req->idempotency_key,
			    err) != 0)
		goto fail;
	if (!req->idempotency_key[0])
		memcpy(req->idempotency_key, req->request_id,
		       sizeof(req->idempotency_key));

	if (parse_body(root, limits, req, err) != 0)
		goto fail;

	req->fingerprint = fingerprint_build(req);
	if (!req->fingerprint) {
		error_set(err, ERROR_INVALID_FIELD, "out of memory");
		goto fail;
	}
	json_decref(root);
	return 0;

fail:
	request_free(req);
	json_decref(root);
	return -1;
}

void request_free(struct request *req)
{
	free(req->sections);
	req->sections = NULL;
	req->section_count = 0;
	free(req->fingerprint);
	req->fingerprint = NULL;
}
