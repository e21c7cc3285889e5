/*
 * outcome: what one request came to (its status, error and the values its
 * reply reports), and the reply text that says so. No I/O: unit-tested and
 * fuzzed with the request parser.
 *
 * "reply" means only the message on the reply topic: the JSON text that
 * outcome_render writes from an outcome.
 */
#ifndef TICKETD_OUTCOME_H
#define TICKETD_OUTCOME_H

#include "request.h"

#include <stddef.h>
#include <stdint.h>

enum outcome_status {
	STATUS_OK,
	STATUS_CONFIRMED,
	STATUS_HELD,
	STATUS_REJECTED,
	STATUS_INVALID,
	STATUS_COUNT,
};

/*
 * One request's outcome. section_ids and reply are heap; outcome_clear
 * frees them. A zeroed outcome with remaining = -1 is a blank one
 * (OUTCOME_BLANK).
 */
struct outcome {
	enum outcome_status status;
	enum request_error_code error;
	int replayed; /* answered from an idempotency record */
	char message[REQUEST_MESSAGE_MAX];
	int64_t event_id;
	int64_t section_id;
	int64_t booking_id;
	int64_t hold_id;
	int quantity;
	int remaining; /* -1: not part of this reply */
	char expires_at[REQUEST_TIMESTAMP_MAX + 1];
	/* create_event: the new sections' ids, in request order. */
	int64_t *section_ids;
	size_t section_count;
	/* The reply text, once rendered or replayed. */
	char *reply;
};

#define OUTCOME_BLANK ((struct outcome){.remaining = -1})

const char *outcome_status_name(enum outcome_status status);

/* The status an outcome with this error code has: rejected or invalid. */
enum outcome_status outcome_error_status(enum request_error_code code);

/* outcome becomes the rejection or refusal with this code and message. */
void outcome_set_error(struct outcome *outcome, enum request_error_code code,
		       const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Free what outcome owns; it is blank afterwards. */
void outcome_clear(struct outcome *outcome);

/*
 * Write outcome->reply, the reply text (a JSON object), from the outcome.
 * request_id and type_name may be empty (a message too broken to tell) and
 * are then left out. 0, or -1 when out of memory (reply stays NULL).
 */
int outcome_render(struct outcome *outcome, const char *request_id,
		   const char *type_name) __attribute__((warn_unused_result));

/*
 * outcome becomes the replay of a stored reply text for a repeated
 * request: the same text with request_id replaced by this request's own
 * (an idempotency_key may tie together requests with different ids), and
 * the stored status. 0, or -1 when the stored text is not a JSON object or
 * memory ran out.
 */
int outcome_replay(struct outcome *outcome, const char *stored_reply,
		   enum outcome_status stored_status, const char *request_id)
    __attribute__((warn_unused_result));

/* The status named s ("ok", "confirmed", ...), or -1. */
int outcome_status_parse(const char *s);

#endif
