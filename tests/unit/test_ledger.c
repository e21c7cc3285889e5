/*
 * Unit tests for the ledger: every booking rule, decided in memory over
 * what a batch read (ledger_db.c stands in for the tables). Linked with
 * the ledger and the request codec only: no libpq, no librdkafka.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ledger.h"
#include "ledger_db.h"
#include "outcome.h"
#include "request.h"

#define NOW_US	  DB_NOW_US
#define SECOND	  DB_SECOND
#define BATCH_MAX 128

/* One batch against one database. */
struct fixture {
	struct db db;
	struct ledger_limits limits;
	struct request reqs[BATCH_MAX];
	struct request *ptrs[BATCH_MAX];
	struct outcome out[BATCH_MAX];
	size_t n;
};

static struct fixture *fixture_new(int max_per_customer)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	db_init(&fx->db, NOW_US);
	fx->limits.max_per_customer = max_per_customer;
	for (size_t i = 0; i < BATCH_MAX; i++) {
		fx->ptrs[i] = &fx->reqs[i];
		fx->out[i] = OUTCOME_BLANK;
	}
	return fx;
}

/* Forget the batch's requests and outcomes; the database stays. */
static void fixture_next_batch(struct fixture *fx)
{
	for (size_t i = 0; i < fx->n; i++) {
		request_free(&fx->reqs[i]);
		outcome_clear(&fx->out[i]);
	}
	fx->n = 0;
}

static void fixture_free(struct fixture *fx)
{
	fixture_next_batch(fx);
	db_free(&fx->db);
	free(fx);
}

/* Add a request to the batch, from its JSON. */
static void add(struct fixture *fx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void add(struct fixture *fx, const char *fmt, ...)
{
	char json[1024];
	struct request_error err;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(json, sizeof(json), fmt, ap);
	va_end(ap);
	assert_true(fx->n < BATCH_MAX);
	if (request_parse(json, strlen(json), &db_parse_limits,
			  &fx->reqs[fx->n], &err) != 0)
		fail_msg("request refused (%s): %s", err.message, json);
	fx->n++;
}

static void book(struct fixture *fx, const char *id, int64_t event,
		 int64_t section, int quantity, const char *customer)
{
	add(fx,
	    "{\"type\":\"book\",\"request_id\":\"%s\",\"event_id\":%lld,"
	    "\"section_id\":%lld,\"quantity\":%d,\"customer\":\"%s\"}",
	    id, (long long)event, (long long)section, quantity, customer);
}

static void hold(struct fixture *fx, const char *id, int64_t event,
		 int64_t section, int quantity, const char *customer)
{
	add(fx,
	    "{\"type\":\"hold\",\"request_id\":\"%s\",\"event_id\":%lld,"
	    "\"section_id\":%lld,\"quantity\":%d,\"customer\":\"%s\","
	    "\"ttl_s\":60}",
	    id, (long long)event, (long long)section, quantity, customer);
}

static void by_id(struct fixture *fx, const char *type, const char *id,
		  int64_t ref)
{
	add(fx, "{\"type\":\"%s\",\"request_id\":\"%s\",\"%s\":%lld}", type, id,
	    strcmp(type, "cancel") == 0 ? "booking_id" : "hold_id",
	    (long long)ref);
}

static enum ledger_result run(struct fixture *fx)
{
	return db_run_batch(&fx->db, &fx->limits, fx->ptrs, fx->n, fx->out);
}

static void run_ok(struct fixture *fx)
{
	assert_int_equal(run(fx), LEDGER_OK);
	assert_true(db_invariant_holds(&fx->db));
}

/* Request i's outcome: its status, error code and remaining. */
static void expect(struct fixture *fx, size_t i, enum outcome_status status,
		   enum request_error_code error, int remaining)
{
	const struct outcome *o = &fx->out[i];

	if (o->status != status || o->error != error ||
	    o->remaining != remaining)
		fail_msg("request %zu: got %s %s remaining %d, wanted %s %s "
			 "remaining %d (%s)",
			 i, outcome_status_name(o->status),
			 request_error_code_name(o->error), o->remaining,
			 outcome_status_name(status),
			 request_error_code_name(error), remaining,
			 o->reply ? o->reply : "no reply");
	assert_non_null(o->reply);
}

/* The seed's shape: event 99, section 100 of capacity `capacity`. */
static void seed(struct fixture *fx, int capacity, int remaining)
{
	db_add_event(&fx->db, 99);
	db_add_section(&fx->db, 100, 99, capacity, remaining);
}

static void test_sell_out_in_arrival_order(void **state)
{
	struct fixture *fx = fixture_new(0);
	char id[16];

	(void)state;
	seed(fx, 5, 5);
	for (int i = 0; i < 10; i++) {
		snprintf(id, sizeof(id), "r-%d", i);
		book(fx, id, 99, 100, 1, "a@b.c");
	}
	run_ok(fx);
	for (size_t i = 0; i < 5; i++) {
		expect(fx, i, STATUS_CONFIRMED, ERROR_NONE, 4 - (int)i);
		assert_int_equal(fx->out[i].booking_id, (int64_t)i + 1);
	}
	for (size_t i = 5; i < 10; i++) {
		expect(fx, i, STATUS_REJECTED, ERROR_INSUFFICIENT_SEATS, 0);
		assert_string_equal(fx->out[i].message,
				    "1 requested, 0 remaining");
	}
	assert_int_equal(db_section(&fx->db, 100)->remaining, 0);
	assert_int_equal(fx->db.booking_count, 5);
	assert_int_equal(fx->db.record_count, 10);
	fixture_free(fx);
}

static void
test_a_request_that_does_not_fit_lets_a_smaller_one_through(void **state)
{
	struct fixture *fx = fixture_new(0);

	(void)state;
	seed(fx, 5, 3);
	db_add_booking(&fx->db, 50, 99, 100, 2, "x@y.z", 0);
	book(fx, "big", 99, 100, 5, "a@b.c");
	book(fx, "two", 99, 100, 2, "a@b.c");
	book(fx, "two-more", 99, 100, 2, "a@b.c");
	book(fx, "one", 99, 100, 1, "a@b.c");
	run_ok(fx);
	expect(fx, 0, STATUS_REJECTED, ERROR_INSUFFICIENT_SEATS, 3);
	assert_string_equal(fx->out[0].message, "5 requested, 3 remaining");
	expect(fx, 1, STATUS_CONFIRMED, ERROR_NONE, 1);
	expect(fx, 2, STATUS_REJECTED, ERROR_INSUFFICIENT_SEATS, 1);
	expect(fx, 3, STATUS_CONFIRMED, ERROR_NONE, 0);
	fixture_free(fx);
}

static void test_hold_then_confirm_in_one_batch(void **state)
{
	struct fixture *fx = fixture_new(0);
	const struct db_hold *h;
	const struct db_booking *bk;

	(void)state;
	seed(fx, 5, 5);
	hold(fx, "h", 99, 100, 2, "a@b.c");
	by_id(fx, "confirm", "c", 1); /* the hold's id, handed out above */
	by_id(fx, "confirm", "c-again", 1);
	run_ok(fx);
	expect(fx, 0, STATUS_HELD, ERROR_NONE, 3);
	assert_int_equal(fx->out[0].hold_id, 1);
	assert_string_equal(fx->out[0].expires_at, "2027-01-15T08:01:00.000Z");
	/* Same seats: no second decrement. */
	expect(fx, 1, STATUS_OK, ERROR_NONE, 3);
	assert_int_equal(fx->out[1].booking_id, 1);
	expect(fx, 2, STATUS_REJECTED, ERROR_HOLD_NOT_ACTIVE, 3);
	assert_string_equal(fx->out[2].message, "hold 1 is confirmed");
	h = db_hold(&fx->db, 1);
	assert_non_null(h);
	assert_int_equal(h->status, LEDGER_HOLD_CONFIRMED);
	bk = db_booking(&fx->db, 1);
	assert_non_null(bk);
	assert_int_equal(bk->hold_id, 1);
	assert_int_equal(bk->quantity, 2);
	assert_string_equal(bk->customer, "a@b.c");
	fixture_free(fx);
}

static void test_confirm_and_release_of_an_expired_hold(void **state)
{
	struct fixture *fx = fixture_new(0);

	(void)state;
	seed(fx, 5, 0);
	db_add_hold(&fx->db, 7, 99, 100, 3, "a@b.c", LEDGER_HOLD_ACTIVE,
		    NOW_US - SECOND);
	db_add_hold(&fx->db, 8, 99, 100, 2, "a@b.c", LEDGER_HOLD_ACTIVE,
		    NOW_US); /* expires at the batch's very clock: expired */
	by_id(fx, "confirm", "c", 7);
	by_id(fx, "release", "r", 8);
	by_id(fx, "confirm", "c2", 7);
	run_ok(fx);
	/* Its time is up: it ends as the reaper would end it, seats back. */
	expect(fx, 0, STATUS_REJECTED, ERROR_HOLD_EXPIRED, 3);
	assert_string_equal(fx->out[0].message, "hold 7 has expired");
	expect(fx, 1, STATUS_REJECTED, ERROR_HOLD_EXPIRED, 5);
	expect(fx, 2, STATUS_REJECTED, ERROR_HOLD_EXPIRED, 5);
	assert_int_equal(db_hold(&fx->db, 7)->status, LEDGER_HOLD_EXPIRED);
	assert_int_equal(db_hold(&fx->db, 8)->status, LEDGER_HOLD_EXPIRED);
	assert_int_equal(fx->db.booking_count, 0);
	fixture_free(fx);
}

static void test_release_and_cancel_give_seats_back(void **state)
{
	struct fixture *fx = fixture_new(0);

	(void)state;
	seed(fx, 5, 0);
	db_add_booking(&fx->db, 40, 99, 100, 2, "a@b.c", 0);
	db_add_hold(&fx->db, 41, 99, 100, 3, "a@b.c", LEDGER_HOLD_ACTIVE,
		    NOW_US + 60 * SECOND);
	book(fx, "b1", 99, 100, 2, "x@y.z");
	by_id(fx, "release", "r", 41);
	book(fx, "b2", 99, 100, 3, "x@y.z");
	by_id(fx, "cancel", "c", 40);
	by_id(fx, "cancel", "c2", 40);
	book(fx, "b3", 99, 100, 2, "x@y.z");
	by_id(fx, "release", "r2", 41);
	run_ok(fx);
	expect(fx, 0, STATUS_REJECTED, ERROR_INSUFFICIENT_SEATS, 0);
	expect(fx, 1, STATUS_OK, ERROR_NONE, 3);
	expect(fx, 2, STATUS_CONFIRMED, ERROR_NONE, 0);
	expect(fx, 3, STATUS_OK, ERROR_NONE, 2);
	expect(fx, 4, STATUS_REJECTED, ERROR_ALREADY_CANCELLED, 2);
	assert_string_equal(fx->out[4].message,
			    "booking 40 is already cancelled");
	expect(fx, 5, STATUS_CONFIRMED, ERROR_NONE, 0);
	expect(fx, 6, STATUS_REJECTED, ERROR_HOLD_NOT_ACTIVE, 0);
	assert_string_equal(fx->out[6].message, "hold 41 is released");
	assert_int_equal(db_hold(&fx->db, 41)->status, LEDGER_HOLD_RELEASED);
	assert_true(db_booking(&fx->db, 40)->cancelled);
	fixture_free(fx);
}

static void test_release_and_cancel_give_a_customer_her_count_back(void **state)
{
	struct fixture *fx = fixture_new(4);

	(void)state;
	seed(fx, 20, 16);
	db_add_booking(&fx->db, 40, 99, 100, 2, "a@b.c", 0);
	db_add_hold(&fx->db, 41, 99, 100, 2, "a@b.c", LEDGER_HOLD_ACTIVE,
		    NOW_US + 60 * SECOND);
	book(fx, "b1", 99, 100, 1, "a@b.c");
	by_id(fx, "release", "r", 41);
	book(fx, "b2", 99, 100, 2, "a@b.c");
	by_id(fx, "cancel", "c", 40);
	hold(fx, "h3", 99, 100, 2, "a@b.c");
	book(fx, "b4", 99, 100, 1, "a@b.c");
	run_ok(fx);
	expect(fx, 0, STATUS_REJECTED, ERROR_QUANTITY_LIMIT, 16);
	assert_string_equal(fx->out[0].message,
			    "a@b.c has 4 seats for event 99, the limit is 4");
	expect(fx, 1, STATUS_OK, ERROR_NONE, 18);
	expect(fx, 2, STATUS_CONFIRMED, ERROR_NONE, 16);
	expect(fx, 3, STATUS_OK, ERROR_NONE, 18);
	expect(fx, 4, STATUS_HELD, ERROR_NONE, 16);
	expect(fx, 5, STATUS_REJECTED, ERROR_QUANTITY_LIMIT, 16);
	fixture_free(fx);
}

static void test_max_per_customer_within_one_batch(void **state)
{
	struct fixture *fx = fixture_new(3);

	(void)state;
	seed(fx, 100, 100);
	db_add_event(&fx->db, 98);
	db_add_section(&fx->db, 200, 98, 100, 100);
	/* An expired hold counts for nothing; a live one counts. */
	db_add_hold(&fx->db, 5, 99, 100, 3, "carol", LEDGER_HOLD_ACTIVE,
		    NOW_US - SECOND);
	db_add_hold(&fx->db, 6, 99, 100, 1, "dave", LEDGER_HOLD_ACTIVE,
		    NOW_US + SECOND);
	db_section(&fx->db, 100)->remaining = 96;
	book(fx, "a1", 99, 100, 2, "alice");
	hold(fx, "a2", 99, 100, 1, "alice");
	book(fx, "a3", 99, 100, 1, "alice");
	book(fx, "a4", 98, 200, 3, "alice"); /* another event: her own count */
	book(fx, "b1", 99, 100, 3, "bob");
	book(fx, "c1", 99, 100, 3, "carol");
	book(fx, "d1", 99, 100, 3, "dave");
	run_ok(fx);
	expect(fx, 0, STATUS_CONFIRMED, ERROR_NONE, 94);
	expect(fx, 1, STATUS_HELD, ERROR_NONE, 93);
	expect(fx, 2, STATUS_REJECTED, ERROR_QUANTITY_LIMIT, 93);
	expect(fx, 3, STATUS_CONFIRMED, ERROR_NONE, 97);
	expect(fx, 4, STATUS_CONFIRMED, ERROR_NONE, 90);
	expect(fx, 5, STATUS_CONFIRMED, ERROR_NONE, 87);
	expect(fx, 6, STATUS_REJECTED, ERROR_QUANTITY_LIMIT, 87);
	assert_string_equal(fx->out[6].message,
			    "dave has 1 seats for event 99, the limit is 3");
	fixture_free(fx);
}

static void test_replay_and_conflict_within_a_batch(void **state)
{
	struct fixture *fx = fixture_new(0);
	char want[512];

	(void)state;
	seed(fx, 5, 5);
	book(fx, "k1", 99, 100, 2, "a@b.c");
	book(fx, "k1", 99, 100, 2, "a@b.c"); /* a redelivery */
	book(fx, "k1", 99, 100, 3, "a@b.c"); /* the key, another payload */
	/* Another request_id under the same idempotency_key. */
	add(fx, "{\"type\":\"book\",\"request_id\":\"other\","
		"\"idempotency_key\":\"k1\",\"event_id\":99,\"section_id\":100,"
		"\"quantity\":2,\"customer\":\"a@b.c\"}");
	run_ok(fx);
	expect(fx, 0, STATUS_CONFIRMED, ERROR_NONE, 3);
	/* A replay is the stored text, nothing decided again. */
	assert_true(fx->out[1].replayed);
	assert_int_equal(fx->out[1].status, STATUS_CONFIRMED);
	assert_string_equal(fx->out[1].reply, fx->out[0].reply);
	expect(fx, 2, STATUS_REJECTED, ERROR_IDEMPOTENCY_CONFLICT, -1);
	assert_string_equal(
	    fx->out[2].message,
	    "idempotency key k1 was used for a different request");
	assert_false(fx->out[2].replayed);
	assert_true(fx->out[3].replayed);
	snprintf(want, sizeof(want),
		 "{\"request_id\":\"other\",\"type\":\"book\",\"status\":"
		 "\"confirmed\",\"booking_id\":1,\"event_id\":99,"
		 "\"section_id\":100,\"quantity\":2,\"remaining\":3}");
	assert_string_equal(fx->out[3].reply, want);
	/* Ran once: one booking, one record. */
	assert_int_equal(fx->db.booking_count, 1);
	assert_int_equal(fx->db.record_count, 1);
	assert_int_equal(db_section(&fx->db, 100)->remaining, 3);
	fixture_free(fx);
}

static void test_replay_and_conflict_against_stored_records(void **state)
{
	struct fixture *fx = fixture_new(0);

	(void)state;
	seed(fx, 5, 5);
	book(fx, "k1", 99, 100, 2, "a@b.c");
	run_ok(fx);
	expect(fx, 0, STATUS_CONFIRMED, ERROR_NONE, 3);
	fixture_next_batch(fx);

	book(fx, "k1", 99, 100, 2, "a@b.c");
	book(fx, "k1", 99, 100, 1, "a@b.c");
	book(fx, "k2", 99, 100, 3, "a@b.c");
	run_ok(fx);
	/* The stored reply, remaining and all, as it was. */
	assert_int_equal(fx->out[0].status, STATUS_CONFIRMED);
	assert_true(fx->out[0].replayed);
	assert_string_equal(
	    fx->out[0].reply,
	    "{\"request_id\":\"k1\",\"type\":\"book\",\"status\":\"confirmed\","
	    "\"booking_id\":1,\"event_id\":99,\"section_id\":100,"
	    "\"quantity\":2,\"remaining\":3}");
	expect(fx, 1, STATUS_REJECTED, ERROR_IDEMPOTENCY_CONFLICT, -1);
	expect(fx, 2, STATUS_CONFIRMED, ERROR_NONE, 0);
	assert_int_equal(fx->db.booking_count, 2);
	fixture_free(fx);
}

/* A stored record ticketd cannot read back is never answered around: the
 * batch fails as broken, and nothing is written. */
static void
test_a_stored_record_that_does_not_parse_breaks_the_batch(void **state)
{
	struct fixture *fx = fixture_new(0);

	(void)state;
	seed(fx, 5, 5);
	book(fx, "k1", 99, 100, 2, "a@b.c");
	db_add_record(&fx->db, "k1", fx->reqs[0].fingerprint, "confirmed",
		      "{not json");
	assert_int_equal(run(fx), LEDGER_BROKEN);
	assert_null(fx->out[0].reply);
	assert_int_equal(fx->db.booking_count, 0);
	assert_int_equal(fx->db.record_count, 1);
	fixture_next_batch(fx);

	book(fx, "k2", 99, 100, 2, "a@b.c");
	db_add_record(&fx->db, "k2", fx->reqs[0].fingerprint, "maybe",
		      "{\"status\":\"maybe\"}");
	assert_int_equal(run(fx), LEDGER_BROKEN);
	assert_int_equal(fx->db.booking_count, 0);
	fixture_free(fx);
}

static void test_event_not_found_against_section_not_found(void **state)
{
	struct fixture *fx = fixture_new(0);

	(void)state;
	seed(fx, 5, 5);
	db_add_event(&fx->db, 77);
	db_add_section(&fx->db, 200, 77, 5, 5);
	book(fx, "e", 98, 100, 1, "a@b.c");
	book(fx, "s", 99, 101, 1, "a@b.c");
	book(fx, "other-event", 99, 200, 1, "a@b.c");
	hold(fx, "other-section", 77, 100, 1, "a@b.c");
	run_ok(fx);
	expect(fx, 0, STATUS_REJECTED, ERROR_EVENT_NOT_FOUND, -1);
	assert_string_equal(fx->out[0].message, "event 98 does not exist");
	expect(fx, 1, STATUS_REJECTED, ERROR_SECTION_NOT_FOUND, -1);
	assert_string_equal(fx->out[1].message,
			    "section 101 does not exist in event 99");
	expect(fx, 2, STATUS_REJECTED, ERROR_SECTION_NOT_FOUND, -1);
	expect(fx, 3, STATUS_REJECTED, ERROR_SECTION_NOT_FOUND, -1);
	assert_int_equal(db_section(&fx->db, 100)->remaining, 5);
	fixture_free(fx);
}

static void test_holds_and_bookings_not_found(void **state)
{
	struct fixture *fx = fixture_new(0);

	(void)state;
	seed(fx, 5, 5);
	by_id(fx, "confirm", "c", 404);
	by_id(fx, "release", "r", 405);
	by_id(fx, "cancel", "x", 406);
	run_ok(fx);
	expect(fx, 0, STATUS_REJECTED, ERROR_HOLD_NOT_FOUND, -1);
	assert_string_equal(fx->out[0].message, "hold 404 does not exist");
	expect(fx, 1, STATUS_REJECTED, ERROR_HOLD_NOT_FOUND, -1);
	expect(fx, 2, STATUS_REJECTED, ERROR_BOOKING_NOT_FOUND, -1);
	assert_string_equal(fx->out[2].message, "booking 406 does not exist");
	fixture_free(fx);
}

/* Expired holds are fetched only when a request needs their seats, once
 * per section, and then count as free. */
static void test_expired_holds_are_reclaimed_only_when_needed(void **state)
{
	struct fixture *fx = fixture_new(0);

	(void)state;
	seed(fx, 5, 1);
	db_add_hold(&fx->db, 9, 99, 100, 4, "a@b.c", LEDGER_HOLD_ACTIVE,
		    NOW_US - SECOND);
	book(fx, "fits", 99, 100, 1, "x@y.z");
	run_ok(fx);
	expect(fx, 0, STATUS_CONFIRMED, ERROR_NONE, 0);
	assert_int_equal(fx->db.expired_reads, 0);
	assert_int_equal(db_hold(&fx->db, 9)->status, LEDGER_HOLD_ACTIVE);
	fixture_next_batch(fx);

	book(fx, "needs-them", 99, 100, 3, "x@y.z");
	book(fx, "too-many", 99, 100, 2, "x@y.z");
	book(fx, "last", 99, 100, 1, "x@y.z");
	run_ok(fx);
	expect(fx, 0, STATUS_CONFIRMED, ERROR_NONE, 1);
	expect(fx, 1, STATUS_REJECTED, ERROR_INSUFFICIENT_SEATS, 1);
	expect(fx, 2, STATUS_CONFIRMED, ERROR_NONE, 0);
	assert_int_equal(fx->db.expired_reads, 1);
	assert_int_equal(db_hold(&fx->db, 9)->status, LEDGER_HOLD_EXPIRED);
	fixture_free(fx);
}

static void test_create_event_then_book_it_in_one_batch(void **state)
{
	struct fixture *fx = fixture_new(0);
	const struct db_section *s;

	(void)state;
	add(fx, "{\"type\":\"create_event\",\"request_id\":\"ev\","
		"\"name\":\"Gala\",\"sections\":[{\"name\":\"A\","
		"\"capacity\":2},{\"name\":\"B\",\"capacity\":0}]}");
	book(fx, "a", 1000, 1000, 2, "a@b.c"); /* the ids handed out above */
	book(fx, "b", 1000, 1001, 1, "a@b.c");
	run_ok(fx);
	expect(fx, 0, STATUS_OK, ERROR_NONE, -1);
	assert_int_equal(fx->out[0].event_id, 1000);
	assert_int_equal(fx->out[0].section_count, 2);
	assert_int_equal(fx->out[0].section_ids[1], 1001);
	expect(fx, 1, STATUS_CONFIRMED, ERROR_NONE, 0);
	expect(fx, 2, STATUS_REJECTED, ERROR_INSUFFICIENT_SEATS, 0);
	s = db_section(&fx->db, 1000);
	assert_non_null(s);
	assert_int_equal(s->capacity, 2);
	assert_int_equal(s->remaining, 0);
	fixture_free(fx);
}

/* The closed list: every code the ledger can give, in one batch, and no
 * other. */
static void test_every_error_code_the_ledger_gives(void **state)
{
	static const enum request_error_code ledger_codes[] = {
	    ERROR_EVENT_NOT_FOUND,	ERROR_SECTION_NOT_FOUND,
	    ERROR_INSUFFICIENT_SEATS,	ERROR_HOLD_NOT_FOUND,
	    ERROR_HOLD_EXPIRED,		ERROR_HOLD_NOT_ACTIVE,
	    ERROR_BOOKING_NOT_FOUND,	ERROR_ALREADY_CANCELLED,
	    ERROR_IDEMPOTENCY_CONFLICT, ERROR_QUANTITY_LIMIT,
	};
	struct fixture *fx = fixture_new(2);
	int seen[ERROR_CODE_COUNT] = {0};

	(void)state;
	seed(fx, 5, 0);
	db_add_hold(&fx->db, 1, 99, 100, 1, "a", LEDGER_HOLD_ACTIVE,
		    NOW_US - SECOND);
	db_add_hold(&fx->db, 2, 99, 100, 1, "a", LEDGER_HOLD_RELEASED, 0);
	db_add_booking(&fx->db, 3, 99, 100, 1, "a", 1);
	db_add_booking(&fx->db, 4, 99, 100, 4, "b", 0);
	book(fx, "e", 98, 100, 1, "a");
	book(fx, "s", 99, 101, 1, "a");
	book(fx, "i", 99, 100, 2, "a");
	by_id(fx, "confirm", "hnf", 9);
	by_id(fx, "confirm", "he", 1);
	by_id(fx, "release", "hna", 2);
	by_id(fx, "cancel", "bnf", 9);
	by_id(fx, "cancel", "ac", 3);
	book(fx, "i", 99, 100, 1, "a");
	book(fx, "q", 99, 100, 1, "b");
	run_ok(fx);
	for (size_t i = 0; i < fx->n; i++)
		seen[fx->out[i].error] = 1;
	for (size_t k = 0; k < sizeof(ledger_codes) / sizeof(ledger_codes[0]);
	     k++) {
		if (!seen[ledger_codes[k]])
			fail_msg("%s not given",
				 request_error_code_name(ledger_codes[k]));
		seen[ledger_codes[k]] = 0;
	}
	for (int code = 1; code < ERROR_CODE_COUNT; code++) {
		if (seen[code])
			fail_msg("the ledger gave %s",
				 request_error_code_name(
				     (enum request_error_code)code));
	}
	fixture_free(fx);
}

/* A hold that appeared after the batch found its sections: its section
 * is not locked, and the batch must run again rather than decide. */
static void test_a_hold_in_a_section_not_locked_retries(void **state)
{
	struct fixture *fx = fixture_new(0);
	struct ledger lg;
	enum ledger_result rc;

	(void)state;
	by_id(fx, "confirm", "c", 5);
	ledger_init(&lg, &fx->limits, fx->ptrs, fx->n);
	lg.now_us = NOW_US;
	assert_int_equal(ledger_add_hold(&lg, 5, 99, 100, 1, "a",
					 LEDGER_HOLD_ACTIVE, NOW_US + SECOND),
			 0);
	rc = ledger_decide(&lg, fx->out);
	assert_int_equal(rc, LEDGER_RETRY);
	assert_non_null(strstr(lg.why, "hold 5"));
	ledger_free(&lg);
	fixture_free(fx);
}

/* The ids a batch is given are an inconsistency to run out of, never a
 * reason to write a row without one. */
static void test_running_out_of_ids_breaks_the_batch(void **state)
{
	struct fixture *fx = fixture_new(0);
	struct ledger lg;

	(void)state;
	book(fx, "b", 99, 100, 1, "a");
	ledger_init(&lg, &fx->limits, fx->ptrs, fx->n);
	lg.now_us = NOW_US;
	assert_int_equal(ledger_add_section(&lg, 100, 99, 5, 5, 0), 0);
	assert_int_equal(ledger_decide(&lg, fx->out), LEDGER_BROKEN);
	assert_non_null(strstr(lg.why, "booking ids"));
	ledger_free(&lg);
	fixture_free(fx);
}

/* With max_per_customer, a book whose customer was not read is an
 * inconsistency: the limit must never be skipped. */
static void test_a_customer_not_read_breaks_the_batch(void **state)
{
	struct fixture *fx = fixture_new(3);
	struct ledger lg;
	const int64_t ids[1] = {1};

	(void)state;
	book(fx, "b", 99, 100, 1, "a");
	ledger_init(&lg, &fx->limits, fx->ptrs, fx->n);
	lg.now_us = NOW_US;
	assert_int_equal(ledger_add_section(&lg, 100, 99, 5, 5, 0), 0);
	assert_int_equal(ledger_add_ids(&lg, LEDGER_ID_BOOKING, ids, 1), 0);
	assert_int_equal(ledger_decide(&lg, fx->out), LEDGER_BROKEN);
	assert_non_null(strstr(lg.why, "was not read"));
	ledger_free(&lg);
	fixture_free(fx);
}

/* Which customers a batch locks: each (event, customer) of its books and
 * holds once, and the holder of a live hold a confirm names; per event at
 * most LEDGER_CUSTOMER_BUCKETS locks. */
static void test_customer_pairs_and_locks(void **state)
{
	struct fixture *fx = fixture_new(5);
	struct ledger lg;
	char name[32];

	(void)state;
	for (int i = 0; i < 70; i++) {
		snprintf(name, sizeof(name), "c%d", i);
		book(fx, name, 1, 10, 1, name);
	}
	book(fx, "again", 1, 10, 1, "c0");
	hold(fx, "h1", 2, 20, 1, "z");
	by_id(fx, "confirm", "live", 30);
	by_id(fx, "confirm", "expired", 31);
	ledger_init(&lg, &fx->limits, fx->ptrs, fx->n);
	lg.now_us = NOW_US;
	assert_int_equal(ledger_add_hold(&lg, 30, 3, 30, 1, "holder",
					 LEDGER_HOLD_ACTIVE, NOW_US + SECOND),
			 0);
	assert_int_equal(ledger_add_hold(&lg, 31, 3, 30, 1, "late",
					 LEDGER_HOLD_ACTIVE, NOW_US),
			 0);
	assert_int_equal(ledger_collect_customers(&lg), 0);
	assert_int_equal(lg.customer_count, 72);
	assert_int_equal(lg.customers[70].event_id, 2);
	assert_string_equal(lg.customers[71].customer, "holder");
	assert_int_equal(ledger_customer_locks(&lg), 64 + 1 + 1);
	ledger_free(&lg);
	fixture_free(fx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sell_out_in_arrival_order),
	    cmocka_unit_test(
		test_a_request_that_does_not_fit_lets_a_smaller_one_through),
	    cmocka_unit_test(test_hold_then_confirm_in_one_batch),
	    cmocka_unit_test(test_confirm_and_release_of_an_expired_hold),
	    cmocka_unit_test(test_release_and_cancel_give_seats_back),
	    cmocka_unit_test(
		test_release_and_cancel_give_a_customer_her_count_back),
	    cmocka_unit_test(test_max_per_customer_within_one_batch),
	    cmocka_unit_test(test_replay_and_conflict_within_a_batch),
	    cmocka_unit_test(test_replay_and_conflict_against_stored_records),
	    cmocka_unit_test(
		test_a_stored_record_that_does_not_parse_breaks_the_batch),
	    cmocka_unit_test(test_event_not_found_against_section_not_found),
	    cmocka_unit_test(test_holds_and_bookings_not_found),
	    cmocka_unit_test(test_expired_holds_are_reclaimed_only_when_needed),
	    cmocka_unit_test(test_create_event_then_book_it_in_one_batch),
	    cmocka_unit_test(test_every_error_code_the_ledger_gives),
	    cmocka_unit_test(test_a_hold_in_a_section_not_locked_retries),
	    cmocka_unit_test(test_running_out_of_ids_breaks_the_batch),
	    cmocka_unit_test(test_a_customer_not_read_breaks_the_batch),
	    cmocka_unit_test(test_customer_pairs_and_locks),
	};

	return cmocka_run_group_tests_name("ledger", tests, NULL, NULL);
}
