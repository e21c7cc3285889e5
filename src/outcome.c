/*
 * outcome: what one request came to, and the reply text that says so. No
 * I/O: unit-tested and fuzzed with the request parser.
 */
#include "outcome.h"

#include "buf.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const status_names[STATUS_COUNT] = {
    [STATUS_OK] = "ok",		  [STATUS_CONFIRMED] = "confirmed",
    [STATUS_HELD] = "held",	  [STATUS_REJECTED] = "rejected",
    [STATUS_INVALID] = "invalid",
};

const char *outcome_status_name(enum outcome_status status)
{
	return status < STATUS_COUNT ? status_names[status] : "unknown";
}

int outcome_status_parse(const char *s)
{
	for (int i = 0; i < STATUS_COUNT; i++) {
		if (strcmp(s, status_names[i]) == 0)
			return i;
	}
	return -1;
}

enum outcome_status outcome_error_status(enum request_error_code code)
{
	switch (code) {
	case ERROR_MALFORMED_JSON:
	case ERROR_INVALID_FIELD:
	case ERROR_UNKNOWN_TYPE:
	case ERROR_MESSAGE_TOO_LARGE:
		return STATUS_INVALID;
	default:
		return STATUS_REJECTED;
	}
}

void outcome_set_error(struct outcome *outcome, enum request_error_code code,
		       const char *fmt, ...)
{
	va_list ap;

	outcome->status = outcome_error_status(code);
	outcome->error = code;
	va_start(ap, fmt);
	vsnprintf(outcome->message, sizeof(outcome->message), fmt, ap);
	va_end(ap);
}

void outcome_clear(struct outcome *outcome)
{
	free(outcome->section_ids);
	free(outcome->reply);
	*outcome = OUTCOME_BLANK;
}

/*
 * The reply text is written directly, not through jansson: a batch renders
 * hundreds of them, and a json_t tree per reply cost several times the
 * writing (docs/benchmarks.md). Every string goes through json_string_to,
 * which keeps the output valid JSON whatever bytes it is given.
 */
struct json_writer {
	struct buf buf;
	int empty; /* the innermost open object has no member yet */
};

/* A JSON string: printable ASCII, quote and backslash escaped; any other
 * byte (control, DEL, non-ASCII) becomes '?'. */
static void json_string_to(struct buf *b, const char *s)
{
	buf_add_char(b, '"');
	for (const char *run = s;; s++) {
		unsigned char c = (unsigned char)*s;

		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
			continue;
		buf_add(b, run, (size_t)(s - run));
		if (c == '\0')
			break;
		if (c == '"' || c == '\\') {
			char escaped[2] = {'\\', (char)c};

			buf_add(b, escaped, 2);
		} else {
			buf_add_char(b, '?');
		}
		run = s + 1;
	}
	buf_add_char(b, '"');
}

/* { or [: what follows is the first member or element. */
static void json_open(struct json_writer *w, char bracket)
{
	buf_add_char(&w->buf, bracket);
	w->empty = 1;
}

/* } or ]: the object or array was a value of the one around it. */
static void json_close(struct json_writer *w, char bracket)
{
	buf_add_char(&w->buf, bracket);
	w->empty = 0;
}

/* "name": after a comma unless it is the object's first member. */
static void json_member(struct json_writer *w, const char *name)
{
	if (!w->empty)
		buf_add_char(&w->buf, ',');
	w->empty = 0;
	json_string_to(&w->buf, name);
	buf_add_char(&w->buf, ':');
}

static void json_member_string(struct json_writer *w, const char *name,
			       const char *value)
{
	json_member(w, name);
	json_string_to(&w->buf, value);
}

static void json_member_integer(struct json_writer *w, const char *name,
				int64_t value)
{
	json_member(w, name);
	buf_printf(&w->buf, "%" PRId64, value);
}

int outcome_render(struct outcome *outcome, const char *request_id,
		   const char *type_name)
{
	struct json_writer w = {BUF_INIT, 0};

	json_open(&w, '{');
	if (request_id && request_id[0])
		json_member_string(&w, "request_id", request_id);
	if (type_name && type_name[0])
		json_member_string(&w, "type", type_name);
	json_member_string(&w, "status", outcome_status_name(outcome->status));
	if (outcome->error != ERROR_NONE) {
		json_member(&w, "error");
		json_open(&w, '{');
		json_member_string(&w, "code",
				   request_error_code_name(outcome->error));
		/* The message may echo bytes of a broken request:
		 * json_string_to keeps it printable ASCII. */
		json_member_string(&w, "message", outcome->message);
		json_close(&w, '}');
	}
	if (outcome->booking_id > 0)
		json_member_integer(&w, "booking_id", outcome->booking_id);
	if (outcome->hold_id > 0)
		json_member_integer(&w, "hold_id", outcome->hold_id);
	if (outcome->event_id > 0)
		json_member_integer(&w, "event_id", outcome->event_id);
	if (outcome->section_id > 0)
		json_member_integer(&w, "section_id", outcome->section_id);
	if (outcome->quantity > 0)
		json_member_integer(&w, "quantity", outcome->quantity);
	if (outcome->remaining >= 0)
		json_member_integer(&w, "remaining", outcome->remaining);
	if (outcome->expires_at[0])
		json_member_string(&w, "expires_at", outcome->expires_at);
	if (outcome->section_ids) {
		json_member(&w, "section_ids");
		json_open(&w, '[');
		for (size_t i = 0; i < outcome->section_count; i++)
			buf_printf(&w.buf, "%s%" PRId64, i ? "," : "",
				   outcome->section_ids[i]);
		json_close(&w, ']');
	}
	json_close(&w, '}');
	free(outcome->reply);
	outcome->reply = buf_take(&w.buf);
	return outcome->reply ? 0 : -1;
}

int outcome_replay(struct outcome *outcome, const char *stored_reply,
		   enum outcome_status stored_status, const char *request_id)
{
	json_t *obj = json_loads(stored_reply, 0, NULL);
	char *text = NULL;

	if (obj && json_is_object(obj) &&
	    json_object_set_new(obj, "request_id", json_string(request_id)) ==
		0)
		text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(obj);
	if (!text)
		return -1;
	free(outcome->reply);
	outcome->reply = text;
	outcome->status = stored_status;
	outcome->replayed = 1;
	return 0;
}
