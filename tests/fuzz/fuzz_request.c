/*
 * libFuzzer target: request_parse on any bytes, and the replies built from
 * whatever it says. A broken promise of request.h aborts, so that libFuzzer
 * keeps the input: every refusal is answerable with valid JSON, and what is
 * accepted is within the limits.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "outcome.h"
#include "request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Below -max_len (4096), so that MESSAGE_TOO_LARGE is reached too. */
static const struct request_limits limits = {
    .max_message_bytes = 3072,
    .max_quantity = 10,
    .max_sections = 8,
    .max_section_capacity = 100000,
    .hold_ttl_default_s = 600,
    .hold_ttl_max_s = 3600,
};

#define ID_MAX ((int64_t)9007199254740991LL)

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_request: broken: %s\n", what);
		abort();
	}
}

static int text_ok(const char *s, size_t max_len)
{
	size_t len = strlen(s);

	if (len < 1 || len > max_len)
		return 0;
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	}
	return 1;
}

/* A reply, parsed back: it must be one valid JSON object (caller decrefs). */
static json_t *load_object(const char *json)
{
	json_t *root;

	check(json != NULL, "outcome_render failed");
	root = json_loads(json, JSON_REJECT_DUPLICATES, NULL);
	check(root != NULL, "a reply is not valid JSON");
	check(json_is_object(root), "a reply is not a JSON object");
	return root;
}

static void check_accepted(const uint8_t *data, size_t size,
			   const struct request *req)
{
	struct request again;
	struct request_error err;
	struct outcome reply = {.status = STATUS_CONFIRMED, .remaining = 0};
	struct outcome replayed = OUTCOME_BLANK;
	json_t *root;
	char *json, *rewritten;

	check(req->type < REQUEST_TYPE_COUNT, "type");
	check(request_id_valid(req->request_id, strlen(req->request_id)),
	      "request_id");
	check(request_id_valid(req->idempotency_key,
			       strlen(req->idempotency_key)),
	      "idempotency_key");
	check(!req->reply_to[0] ||
		  request_topic_valid(req->reply_to, strlen(req->reply_to)),
	      "reply_to");
	check(req->fingerprint != NULL, "fingerprint");
	switch (req->type) {
	case REQUEST_BOOK:
	case REQUEST_HOLD:
		check(req->event_id >= 1 && req->event_id <= ID_MAX,
		      "event_id");
		check(req->section_id >= 1 && req->section_id <= ID_MAX,
		      "section_id");
		check(req->quantity >= 1 &&
			  req->quantity <= limits.max_quantity,
		      "quantity");
		check(text_ok(req->customer, REQUEST_CUSTOMER_MAX), "customer");
		check(req->type == REQUEST_BOOK
			  ? req->ttl_s == 0
			  : req->ttl_s >= 1 &&
				req->ttl_s <= limits.hold_ttl_max_s,
		      "ttl_s");
		break;
	case REQUEST_CONFIRM:
	case REQUEST_RELEASE:
		check(req->hold_id >= 1 && req->hold_id <= ID_MAX, "hold_id");
		break;
	case REQUEST_CANCEL:
		check(req->booking_id >= 1 && req->booking_id <= ID_MAX,
		      "booking_id");
		break;
	case REQUEST_CREATE_EVENT:
		check(text_ok(req->name, REQUEST_NAME_MAX), "name");
		check(!req->venue[0] || text_ok(req->venue, REQUEST_NAME_MAX),
		      "venue");
		check(req->section_count >= 1 &&
			  req->section_count <= (size_t)limits.max_sections,
		      "section_count");
		for (size_t i = 0; i < req->section_count; i++) {
			check(text_ok(req->sections[i].name, REQUEST_NAME_MAX),
			      "section name");
			check(req->sections[i].capacity >= 0 &&
				  req->sections[i].capacity <=
				      limits.max_section_capacity,
			      "section capacity");
			for (size_t j = 0; j < i; j++)
				check(strcmp(req->sections[i].name,
					     req->sections[j].name) != 0,
				      "section names repeat");
		}
		break;
	case REQUEST_TYPE_COUNT:
		break;
	}

	/* The same bytes, the same request. */
	check(request_parse((const char *)data, size, &limits, &again, &err) ==
		  0,
	      "a second parse disagrees");
	check(strcmp(again.fingerprint, req->fingerprint) == 0,
	      "fingerprint is not deterministic");
	request_free(&again);

	/* The confirmed reply, and the same reply sent again for another
	 * request of the same key. */
	reply.booking_id = 1;
	reply.event_id = req->event_id;
	reply.section_id = req->section_id;
	reply.quantity = req->quantity;
	json = outcome_render(&reply, req->request_id,
			      request_type_name(req->type)) == 0
		   ? reply.reply
		   : NULL;
	root = load_object(json);
	check(json_is_string(json_object_get(root, "request_id")) &&
		  strcmp(json_string_value(json_object_get(root, "request_id")),
			 req->request_id) == 0,
	      "reply request_id");
	json_decref(root);
	rewritten = outcome_replay(&replayed, json, STATUS_CONFIRMED,
				   "fuzz-other-id") == 0
			? replayed.reply
			: NULL;
	root = load_object(rewritten);
	check(strcmp(json_string_value(json_object_get(root, "request_id")),
		     "fuzz-other-id") == 0,
	      "rewritten request_id");
	json_decref(root);
	outcome_clear(&replayed);
	outcome_clear(&reply);
}

static void check_refused(const struct request *req,
			  const struct request_error *err)
{
	struct outcome reply = OUTCOME_BLANK;
	json_t *root, *error;
	char *json;

	check(err->code == ERROR_MALFORMED_JSON ||
		  err->code == ERROR_INVALID_FIELD ||
		  err->code == ERROR_UNKNOWN_TYPE ||
		  err->code == ERROR_QUANTITY_LIMIT ||
		  err->code == ERROR_MESSAGE_TOO_LARGE,
	      "a code request_parse cannot give");
	check(err->message[0] != '\0', "refused without a message");
	check(!err->request_id[0] ||
		  request_id_valid(err->request_id, strlen(err->request_id)),
	      "err.request_id");
	check(!err->reply_to[0] ||
		  request_topic_valid(err->reply_to, strlen(err->reply_to)),
	      "err.reply_to");
	check(req->sections == NULL && req->fingerprint == NULL,
	      "a refused request holds memory");

	/* What the daemon answers: a refusal must always be answerable. */
	outcome_set_error(&reply, err->code, "%s", err->message);
	json = outcome_render(&reply, err->request_id, err->type_name) == 0
		   ? reply.reply
		   : NULL;
	root = load_object(json);
	check(strcmp(json_string_value(json_object_get(root, "status")),
		     outcome_status_name(outcome_error_status(err->code))) == 0,
	      "reply status");
	error = json_object_get(root, "error");
	check(json_is_object(error) &&
		  json_is_string(json_object_get(error, "code")) &&
		  json_is_string(json_object_get(error, "message")),
	      "reply error object");
	check(strcmp(json_string_value(json_object_get(error, "code")),
		     request_error_code_name(err->code)) == 0,
	      "reply error code");
	json_decref(root);
	outcome_clear(&reply);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct request req;
	struct request_error err;

	if (request_parse((const char *)data, size, &limits, &req, &err) == 0) {
		check_accepted(data, size, &req);
		request_free(&req);
	} else {
		check_refused(&req, &err);
	}
	return 0;
}
