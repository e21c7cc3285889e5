/*
 * ledger: the booking rules. Given what one batch read under its locks
 * (sections, the holds and bookings it names, idempotency records, the
 * customers' seats, which events exist), the ids it may hand out and the
 * time, it decides every request in arrival order, exactly as if each ran
 * alone, one after another, and leaves each request's outcome and the rows
 * to write. No libpq, no I/O, no clock of its own: unit- and model-tested
 * alone (tests/unit/test_ledger.c, test_ledger_model.c).
 *
 * The caller (txn.c) reads, feeds the rows in with ledger_add_*, calls
 * ledger_decide, writes what the rows say changed, and commits. When a
 * decision needs something it was not given (a section's expired holds),
 * ledger_decide says so, the caller fetches it and calls again: only that
 * rare path pays for the round trip.
 */
#ifndef TICKETD_LEDGER_H
#define TICKETD_LEDGER_H

#include "outcome.h"
#include "request.h"

#include <stddef.h>
#include <stdint.h>

enum ledger_hold_status {
	LEDGER_HOLD_ACTIVE,
	LEDGER_HOLD_CONFIRMED,
	LEDGER_HOLD_RELEASED,
	LEDGER_HOLD_EXPIRED,
	LEDGER_HOLD_STATUS_COUNT,
};

/* "active", "confirmed", "released", "expired" (as the holds table). */
const char *ledger_hold_status_name(enum ledger_hold_status status);
/* The status named s, or -1. */
int ledger_hold_status_parse(const char *s);

struct ledger_section {
	int64_t id;
	int64_t event_id;
	int capacity;
	int remaining;
	int initial_remaining;
	int held; /* seats of its active holds */
	int initial_held;
	int is_new;	  /* created by this batch */
	const char *name; /* new sections: the request's */
	int expired;	  /* 0; 1 once its expired holds were given; 2 once
			   * they were ended in this batch */
};

struct ledger_hold {
	int64_t id;
	int64_t event_id;
	int64_t section_id;
	int quantity;
	char *customer; /* owned */
	enum ledger_hold_status status;
	enum ledger_hold_status initial_status;
	int64_t expires_us; /* microseconds since the epoch */
	int is_new;
	const char *request_key; /* new holds: the request's */
};

struct ledger_booking {
	int64_t id;
	int64_t event_id;
	int64_t section_id;
	int quantity;
	int cancelled;
	int initial_cancelled;
	int is_new;
	int64_t hold_id;      /* 0: not from a hold */
	const char *customer; /* own_customer, the request's or the hold's */
	char *own_customer;   /* owned, for a row given by the caller */
	const char *request_key;
};

struct ledger_event {
	int64_t id;
	const struct request *req; /* the create_event that makes it */
};

/* A stored idempotency record (strings owned). */
struct ledger_record {
	char *key;
	char *fingerprint;
	int status; /* enum outcome_status, -1 when the stored text is unknown
		     */
	char *reply;
};

/* Seats one customer has for one event (with max_per_customer only).
 * customer is borrowed: a request's, or a hold's. */
struct ledger_customer {
	int64_t event_id;
	const char *customer;
	int64_t seats;
};

enum ledger_id_kind {
	LEDGER_ID_EVENT,
	LEDGER_ID_SECTION,
	LEDGER_ID_HOLD,
	LEDGER_ID_BOOKING,
	LEDGER_ID_KINDS,
};

struct ledger_limits {
	int max_per_customer; /* 0: no limit */
};

enum ledger_result {
	LEDGER_OK,
	LEDGER_NEED_EXPIRED, /* give needed_section's expired holds, again */
	LEDGER_RETRY,	     /* a row changed under the batch: run it again */
	LEDGER_NO_MEMORY,
	LEDGER_BROKEN, /* an inconsistency (why says which): never answer */
};

/* Most customer locks one batch may take (see txn.c and sql.c's
 * SQL_LOCK_CUSTOMERS): the server's lock table is shared by every
 * session. A batch that needs more runs in halves. */
#define LEDGER_CUSTOMER_LOCKS_MAX 256

/* Buckets an event's customer locks fall in: SQL_LOCK_CUSTOMERS masks
 * hashtext(customer) with LEDGER_CUSTOMER_BUCKETS - 1 (63). */
#define LEDGER_CUSTOMER_BUCKETS 64

/*
 * One batch's state. The rows are the caller's to read after
 * ledger_decide; only ledger_* functions change them.
 */
struct ledger {
	struct ledger_limits limits;
	struct request *const *reqs; /* borrowed, n of them */
	size_t n;
	/* The clock decisions are made by: the transaction's start, or with
	 * customer locks the clock read after them. */
	int64_t now_us;

	/* Locked sections first, ascending id (locked_section_count), then
	 * the ones the batch creates. */
	struct ledger_section *sections;
	size_t section_count, section_cap, locked_section_count;
	struct ledger_hold *holds;
	size_t hold_count, hold_cap;
	struct ledger_booking *bookings;
	size_t booking_count, booking_cap;
	struct ledger_event *events;
	size_t event_count, event_cap;
	struct ledger_record *records;
	size_t record_count, record_cap;
	struct ledger_customer *customers; /* sorted, each pair once */
	size_t customer_count, customer_cap;
	int64_t *known_events;
	size_t known_event_count, known_event_cap;
	int64_t *ids[LEDGER_ID_KINDS];
	size_t id_count[LEDGER_ID_KINDS], id_used[LEDGER_ID_KINDS];

	/* Deciding: requests before `decided` are done. */
	size_t decided;
	struct ledger_key_slot *keys;
	size_t key_mask;
	int64_t needed_section; /* with LEDGER_NEED_EXPIRED */
	char why[256];		/* with LEDGER_BROKEN or LEDGER_RETRY */
};

/* An empty ledger for reqs[0..n) (borrowed until ledger_free). */
void ledger_init(struct ledger *lg, const struct ledger_limits *limits,
		 struct request *const *reqs, size_t n);

/* Free everything lg owns. */
void ledger_free(struct ledger *lg);

/* How many ids of each kind the batch may hand out, at most. */
void ledger_ids_wanted(struct request *const *reqs, size_t n,
		       size_t wanted[LEDGER_ID_KINDS]);

/*
 * Feeding the batch what it read; each copies what it keeps and returns 0,
 * or -1 when out of memory. Sections must come in ascending id order and
 * before anything is decided; a hold or booking already given is skipped.
 */
int ledger_add_section(struct ledger *lg, int64_t id, int64_t event_id,
		       int capacity, int remaining, int held)
    __attribute__((warn_unused_result));
int ledger_add_hold(struct ledger *lg, int64_t id, int64_t event_id,
		    int64_t section_id, int quantity, const char *customer,
		    enum ledger_hold_status status, int64_t expires_us)
    __attribute__((warn_unused_result));
int ledger_add_booking(struct ledger *lg, int64_t id, int64_t event_id,
		       int64_t section_id, int quantity, int cancelled,
		       const char *customer)
    __attribute__((warn_unused_result));
int ledger_add_record(struct ledger *lg, const char *key,
		      const char *fingerprint, const char *status,
		      const char *reply) __attribute__((warn_unused_result));
/* An event that exists (for EVENT_NOT_FOUND against SECTION_NOT_FOUND). */
int ledger_add_event(struct ledger *lg, int64_t id)
    __attribute__((warn_unused_result));
/* The ids a sequence handed out for kind, used in order. */
int ledger_add_ids(struct ledger *lg, enum ledger_id_kind kind,
		   const int64_t *ids, size_t count)
    __attribute__((warn_unused_result));

/* The locked section with this id, or one the batch created; NULL. */
const struct ledger_section *ledger_section(const struct ledger *lg,
					    int64_t id);

/*
 * The events of books and holds whose section is not among the locked
 * ones: the caller says which of them exist (ledger_add_event). ids has
 * room for lg->n; returns how many were written.
 */
size_t ledger_events_to_check(const struct ledger *lg, int64_t *ids);

/*
 * With max_per_customer: the (event, customer) pairs whose seats the
 * batch must read, under their locks, into lg->customers (sorted, each
 * once): every book's and hold's, and the holder of every live hold a
 * confirm names. Call after the holds are given. 0, or -1 when out of
 * memory.
 */
int ledger_collect_customers(struct ledger *lg)
    __attribute__((warn_unused_result));

/* The customer locks lg->customers takes: per event, one a customer up to
 * LEDGER_CUSTOMER_BUCKETS. */
size_t ledger_customer_locks(const struct ledger *lg);

/*
 * Decide reqs[decided..n) into out[] (n entries, blank on the first call).
 * LEDGER_OK: every out[i] holds its outcome; replays, conflicts and the
 * first of a key repeated in the batch also hold their reply text, the
 * others are the caller's to render (outcome_render). LEDGER_NEED_EXPIRED:
 * give the active holds of needed_section that expired by now_us
 * (ledger_add_hold), then ledger_expired_given, then call again. Any
 * other result: the batch cannot be answered (why says it for
 * LEDGER_BROKEN and LEDGER_RETRY).
 */
enum ledger_result ledger_decide(struct ledger *lg, struct outcome *out);

/* The expired holds of section_id have been given. */
void ledger_expired_given(struct ledger *lg, int64_t section_id);

#endif
