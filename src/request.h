/*
 * request: booking request messages, JSON to struct, validated. No I/O:
 * unit-tested and fuzzed on its own (outcome.h writes the replies).
 */
#ifndef TICKETD_REQUEST_H
#define TICKETD_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#define REQUEST_ID_MAX	      128
#define REQUEST_TOPIC_MAX     249
#define REQUEST_NAME_MAX      200
#define REQUEST_CUSTOMER_MAX  254
#define REQUEST_TIMESTAMP_MAX 40
#define REQUEST_MESSAGE_MAX   256

enum request_type {
	REQUEST_CREATE_EVENT,
	REQUEST_BOOK,
	REQUEST_HOLD,
	REQUEST_CONFIRM,
	REQUEST_RELEASE,
	REQUEST_CANCEL,
	REQUEST_TYPE_COUNT,
};

/* The closed list of error codes replies carry (README documents each). */
enum request_error_code {
	ERROR_NONE = 0,
	ERROR_MALFORMED_JSON,
	ERROR_INVALID_FIELD,
	ERROR_UNKNOWN_TYPE,
	ERROR_EVENT_NOT_FOUND,
	ERROR_SECTION_NOT_FOUND,
	ERROR_INSUFFICIENT_SEATS,
	ERROR_HOLD_NOT_FOUND,
	ERROR_HOLD_EXPIRED,
	ERROR_HOLD_NOT_ACTIVE,
	ERROR_BOOKING_NOT_FOUND,
	ERROR_ALREADY_CANCELLED,
	ERROR_IDEMPOTENCY_CONFLICT,
	ERROR_QUANTITY_LIMIT,
	ERROR_MESSAGE_TOO_LARGE,
	ERROR_CODE_COUNT,
};

struct request_section {
	char name[REQUEST_NAME_MAX + 1];
	int capacity;
};

struct request_limits {
	size_t max_message_bytes;
	int max_quantity;
	int max_sections;
	int max_section_capacity;
	int hold_ttl_default_s;
	int hold_ttl_max_s;
};

/*
 * A parsed request. Strings are NUL-terminated copies; sections is the one
 * heap part (request_free releases it). Fields a type does not use are 0
 * or empty.
 */
struct request {
	enum request_type type;
	char request_id[REQUEST_ID_MAX + 1];
	char idempotency_key[REQUEST_ID_MAX + 1];
	char reply_to[REQUEST_TOPIC_MAX + 1];

	int64_t event_id;
	int64_t section_id;
	int64_t hold_id;
	int64_t booking_id;
	int quantity;
	int ttl_s;
	char customer[REQUEST_CUSTOMER_MAX + 1];

	char name[REQUEST_NAME_MAX + 1];
	char venue[REQUEST_NAME_MAX + 1];
	char starts_at[REQUEST_TIMESTAMP_MAX + 1];
	struct request_section *sections;
	size_t section_count;

	/* Canonical form of the payload, for the idempotency check (heap). */
	char *fingerprint;
};

/*
 * Why a request was refused before it reached the database. request_id,
 * type_name and reply_to keep whatever could be read, so that the reply
 * can still be addressed and correlated.
 */
struct request_error {
	enum request_error_code code;
	char message[REQUEST_MESSAGE_MAX];
	char request_id[REQUEST_ID_MAX + 1];
	char type_name[32];
	char reply_to[REQUEST_TOPIC_MAX + 1];
};

/*
 * Parse and validate one message value. On 0, req is filled and owns heap
 * memory: request_free it. On -1, err says why (req needs no free).
 * A payload that is valid but asks for more than max_quantity fails with
 * ERROR_QUANTITY_LIMIT, the one business rule decided here.
 */
int request_parse(const char *buf, size_t len,
		  const struct request_limits *limits, struct request *req,
		  struct request_error *err)
    __attribute__((warn_unused_result));

void request_free(struct request *req);

const char *request_type_name(enum request_type type);
const char *request_error_code_name(enum request_error_code code);

/* Is s a valid request_id / idempotency_key: 1-128 of [A-Za-z0-9._:-]? */
int request_id_valid(const char *s, size_t len);
/* Is s a valid Kafka topic name: 1-249 of [A-Za-z0-9._-]? */
int request_topic_valid(const char *s, size_t len);

#endif
