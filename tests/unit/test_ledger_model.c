/*
 * The ledger's model test: random sequences of requests (all six types,
 * several events, sections and customers, repeated keys, stored records,
 * per-customer limits, live and expired holds), each decided as ONE batch
 * by the ledger (through ledger_db.c, as txn.c would run it), must give
 * every request exactly the outcome, reply text and all, that a small
 * reference model gives them decided one at a time, in order; and leave
 * the same rows.
 *
 * The model below is written from the rules as README.md states them, not
 * from ledger.c. It shares only the request codec (parsing, rendering and
 * replaying reply texts) with the code under test.
 *
 *   TICKETD_LEDGER_SEED=N     first batch's seed (default: from the clock)
 *   TICKETD_LEDGER_BATCHES=N  how many batches (default 100000)
 * A failure prints the seed of the batch that failed; run that one alone
 * with TICKETD_LEDGER_SEED=<it> TICKETD_LEDGER_BATCHES=1.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "ledger.h"
#include "ledger_db.h"
#include "outcome.h"
#include "request.h"

#define NOW_US	     DB_NOW_US
#define SECOND	     DB_SECOND
#define MAX_REQUESTS 24
#define MODEL_MAX    96

static const char *const customers[] = {"ann", "bo", "cy", "dee"};

/* ---------------------------------------------------- the random source */

static uint64_t rng_state;

static uint64_t rng_next(void)
{
	/* xorshift64*: small, and the same sequence everywhere. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

/* 0 .. n-1 */
static int rng_below(int n)
{
	return (int)(rng_next() % (uint64_t)n);
}

/* percent out of 100 */
static int rng_chance(int percent)
{
	return rng_below(100) < percent;
}

/* ----------------------------------------------------- the reference model */

struct m_section {
	int64_t id, event_id;
	int capacity, remaining;
};

struct m_hold {
	int64_t id, event_id, section_id;
	int quantity;
	const char *customer;
	enum ledger_hold_status status;
	int64_t expires_us;
};

struct m_booking {
	int64_t id, event_id, section_id;
	int quantity;
	const char *customer;
	int cancelled;
};

struct m_record {
	char key[REQUEST_ID_MAX + 1];
	char *fingerprint;
	enum outcome_status status;
	char *reply;
};

struct model {
	int max_per_customer;
	int64_t now_us;
	int64_t events[MODEL_MAX];
	size_t event_count;
	struct m_section sections[MODEL_MAX];
	size_t section_count;
	struct m_hold holds[MODEL_MAX];
	size_t hold_count;
	struct m_booking bookings[MODEL_MAX];
	size_t booking_count;
	struct m_record records[MODEL_MAX];
	size_t record_count;
	int64_t next_event, next_section, next_hold, next_booking;
};

static void model_room(size_t count)
{
	if (count >= MODEL_MAX)
		fail_msg("model: more than %d rows", MODEL_MAX);
}

static struct m_section *m_section(struct model *m, int64_t id)
{
	for (size_t i = 0; i < m->section_count; i++) {
		if (m->sections[i].id == id)
			return &m->sections[i];
	}
	return NULL;
}

static struct m_hold *m_hold(struct model *m, int64_t id)
{
	for (size_t i = 0; i < m->hold_count; i++) {
		if (m->holds[i].id == id)
			return &m->holds[i];
	}
	return NULL;
}

static struct m_booking *m_booking(struct model *m, int64_t id)
{
	for (size_t i = 0; i < m->booking_count; i++) {
		if (m->bookings[i].id == id)
			return &m->bookings[i];
	}
	return NULL;
}

static int m_event_exists(const struct model *m, int64_t id)
{
	for (size_t i = 0; i < m->event_count; i++) {
		if (m->events[i] == id)
			return 1;
	}
	return 0;
}

static const char *customer_name(const char *s)
{
	for (size_t i = 0; i < sizeof(customers) / sizeof(customers[0]); i++) {
		if (strcmp(s, customers[i]) == 0)
			return customers[i];
	}
	fail_msg("unknown customer %s", s);
	return NULL;
}

/* Seats a customer holds for an event now: confirmed bookings, and holds
 * still active and not yet past their time. */
static long long m_customer_seats(const struct model *m, int64_t event_id,
				  const char *customer)
{
	long long seats = 0;

	for (size_t i = 0; i < m->booking_count; i++) {
		const struct m_booking *b = &m->bookings[i];

		if (b->event_id == event_id && !b->cancelled &&
		    strcmp(b->customer, customer) == 0)
			seats += b->quantity;
	}
	for (size_t i = 0; i < m->hold_count; i++) {
		const struct m_hold *h = &m->holds[i];

		if (h->event_id == event_id &&
		    h->status == LEDGER_HOLD_ACTIVE &&
		    h->expires_us > m->now_us &&
		    strcmp(h->customer, customer) == 0)
			seats += h->quantity;
	}
	return seats;
}

static void m_timestamp(int64_t us, char *out, size_t size)
{
	time_t secs = (time_t)(us / 1000000);
	struct tm tm;
	size_t pos;

	gmtime_r(&secs, &tm);
	pos = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + pos, size - pos, ".%03dZ", (int)((us % 1000000) / 1000));
}

static void m_book_or_hold(struct model *m, const struct request *r,
			   struct outcome *o)
{
	struct m_section *s = m_section(m, r->section_id);

	if (!s || s->event_id != r->event_id) {
		if (m_event_exists(m, r->event_id))
			outcome_set_error(o, ERROR_SECTION_NOT_FOUND,
					  "section %lld does not exist in "
					  "event %lld",
					  (long long)r->section_id,
					  (long long)r->event_id);
		else
			outcome_set_error(o, ERROR_EVENT_NOT_FOUND,
					  "event %lld does not exist",
					  (long long)r->event_id);
		return;
	}
	o->event_id = r->event_id;
	o->section_id = r->section_id;
	if (m->max_per_customer > 0) {
		long long seats = m_customer_seats(m, r->event_id, r->customer);

		if (seats + r->quantity > m->max_per_customer) {
			outcome_set_error(o, ERROR_QUANTITY_LIMIT,
					  "%s has %lld seats for event %lld, "
					  "the limit is %d",
					  r->customer, seats,
					  (long long)r->event_id,
					  m->max_per_customer);
			o->remaining = s->remaining;
			return;
		}
	}
	if (s->remaining < r->quantity) {
		/* Expired holds are free seats, even before the reaper. */
		for (size_t i = 0; i < m->hold_count; i++) {
			struct m_hold *h = &m->holds[i];

			if (h->section_id == s->id &&
			    h->status == LEDGER_HOLD_ACTIVE &&
			    h->expires_us <= m->now_us) {
				h->status = LEDGER_HOLD_EXPIRED;
				s->remaining += h->quantity;
			}
		}
	}
	if (s->remaining < r->quantity) {
		outcome_set_error(o, ERROR_INSUFFICIENT_SEATS,
				  "%d requested, %d remaining", r->quantity,
				  s->remaining);
		o->remaining = s->remaining;
		return;
	}
	s->remaining -= r->quantity;
	if (r->type == REQUEST_BOOK) {
		model_room(m->booking_count);
		m->bookings[m->booking_count++] =
		    (struct m_booking){m->next_booking,
				       r->event_id,
				       r->section_id,
				       r->quantity,
				       customer_name(r->customer),
				       0};
		o->status = STATUS_CONFIRMED;
		o->booking_id = m->next_booking++;
	} else {
		int64_t expires = m->now_us + (int64_t)r->ttl_s * SECOND;

		model_room(m->hold_count);
		m->holds[m->hold_count++] =
		    (struct m_hold){m->next_hold,
				    r->event_id,
				    r->section_id,
				    r->quantity,
				    customer_name(r->customer),
				    LEDGER_HOLD_ACTIVE,
				    expires};
		o->status = STATUS_HELD;
		o->hold_id = m->next_hold++;
		m_timestamp(expires, o->expires_at, sizeof(o->expires_at));
	}
	o->quantity = r->quantity;
	o->remaining = s->remaining;
}

static void m_end_hold(struct model *m, const struct request *r,
		       struct outcome *o)
{
	static const char *const names[] = {"active", "confirmed", "released",
					    "expired"};
	struct m_hold *h = m_hold(m, r->hold_id);
	struct m_section *s;

	if (!h) {
		outcome_set_error(o, ERROR_HOLD_NOT_FOUND,
				  "hold %lld does not exist",
				  (long long)r->hold_id);
		return;
	}
	s = m_section(m, h->section_id);
	o->hold_id = h->id;
	o->event_id = h->event_id;
	o->section_id = h->section_id;
	o->quantity = h->quantity;
	if (h->status == LEDGER_HOLD_ACTIVE && h->expires_us <= m->now_us) {
		h->status = LEDGER_HOLD_EXPIRED;
		s->remaining += h->quantity;
	}
	o->remaining = s->remaining;
	if (h->status == LEDGER_HOLD_EXPIRED) {
		outcome_set_error(o, ERROR_HOLD_EXPIRED,
				  "hold %lld has expired", (long long)h->id);
		return;
	}
	if (h->status != LEDGER_HOLD_ACTIVE) {
		outcome_set_error(o, ERROR_HOLD_NOT_ACTIVE, "hold %lld is %s",
				  (long long)h->id, names[h->status]);
		return;
	}
	o->status = STATUS_OK;
	if (r->type == REQUEST_CONFIRM) {
		h->status = LEDGER_HOLD_CONFIRMED;
		model_room(m->booking_count);
		m->bookings[m->booking_count++] = (struct m_booking){
		    m->next_booking, h->event_id, h->section_id,
		    h->quantity,     h->customer, 0};
		o->booking_id = m->next_booking++;
	} else {
		h->status = LEDGER_HOLD_RELEASED;
		s->remaining += h->quantity;
		o->remaining = s->remaining;
	}
}

static void m_cancel(struct model *m, const struct request *r,
		     struct outcome *o)
{
	struct m_booking *b = m_booking(m, r->booking_id);
	struct m_section *s;

	if (!b) {
		outcome_set_error(o, ERROR_BOOKING_NOT_FOUND,
				  "booking %lld does not exist",
				  (long long)r->booking_id);
		return;
	}
	s = m_section(m, b->section_id);
	o->booking_id = b->id;
	o->event_id = b->event_id;
	o->section_id = b->section_id;
	o->quantity = b->quantity;
	if (b->cancelled) {
		outcome_set_error(o, ERROR_ALREADY_CANCELLED,
				  "booking %lld is already cancelled",
				  (long long)b->id);
		o->remaining = s->remaining;
		return;
	}
	b->cancelled = 1;
	s->remaining += b->quantity;
	o->status = STATUS_OK;
	o->remaining = s->remaining;
}

static void m_create_event(struct model *m, const struct request *r,
			   struct outcome *o)
{
	model_room(m->event_count);
	m->events[m->event_count++] = m->next_event;
	o->status = STATUS_OK;
	o->event_id = m->next_event++;
	o->section_ids = calloc(r->section_count, sizeof(int64_t));
	assert_non_null(o->section_ids);
	o->section_count = r->section_count;
	for (size_t i = 0; i < r->section_count; i++) {
		model_room(m->section_count);
		m->sections[m->section_count++] = (struct m_section){
		    m->next_section, o->event_id, r->sections[i].capacity,
		    r->sections[i].capacity};
		o->section_ids[i] = m->next_section++;
	}
}

static struct m_record *m_record(struct model *m, const char *key)
{
	for (size_t i = 0; i < m->record_count; i++) {
		if (strcmp(m->records[i].key, key) == 0)
			return &m->records[i];
	}
	return NULL;
}

static void m_store(struct model *m, const char *key, const char *fingerprint,
		    enum outcome_status status, const char *reply)
{
	struct m_record *rec;

	model_room(m->record_count);
	rec = &m->records[m->record_count++];
	snprintf(rec->key, sizeof(rec->key), "%s", key);
	rec->fingerprint = strdup(fingerprint);
	rec->reply = strdup(reply);
	rec->status = status;
	assert_true(rec->fingerprint && rec->reply);
}

/* One request, alone: its own transaction against the model's state. */
static void model_decide(struct model *m, const struct request *r,
			 struct outcome *o)
{
	const struct m_record *rec = m_record(m, r->idempotency_key);

	if (rec && strcmp(rec->fingerprint, r->fingerprint) != 0) {
		outcome_set_error(
		    o, ERROR_IDEMPOTENCY_CONFLICT,
		    "idempotency key %s was used for a different request",
		    r->idempotency_key);
		assert_int_equal(outcome_render(o, r->request_id,
						request_type_name(r->type)),
				 0);
		return;
	}
	if (rec) {
		assert_int_equal(
		    outcome_replay(o, rec->reply, rec->status, r->request_id),
		    0);
		return;
	}
	switch (r->type) {
	case REQUEST_CREATE_EVENT:
		m_create_event(m, r, o);
		break;
	case REQUEST_BOOK:
	case REQUEST_HOLD:
		m_book_or_hold(m, r, o);
		break;
	case REQUEST_CONFIRM:
	case REQUEST_RELEASE:
		m_end_hold(m, r, o);
		break;
	case REQUEST_CANCEL:
		m_cancel(m, r, o);
		break;
	default:
		fail_msg("no such type");
	}
	assert_int_equal(
	    outcome_render(o, r->request_id, request_type_name(r->type)), 0);
	m_store(m, r->idempotency_key, r->fingerprint, o->status, o->reply);
}

static void model_free(struct model *m)
{
	for (size_t i = 0; i < m->record_count; i++) {
		free(m->records[i].fingerprint);
		free(m->records[i].reply);
	}
	m->record_count = 0;
}

/* ------------------------------------------------- the random batches */

/* One case: a starting state, put both in the database and in the model,
 * and the requests of one batch. */
struct trial {
	struct db *db;
	struct model *m;
	struct request reqs[MAX_REQUESTS];
	struct request *ptrs[MAX_REQUESTS];
	char json[MAX_REQUESTS][512];
	struct outcome batch[MAX_REQUESTS];
	struct outcome alone[MAX_REQUESTS];
	size_t n;
	int64_t first_new_hold, first_new_booking, first_new_section;
};

static void parse_into(struct trial *t, const char *json)
{
	struct request_error err;

	snprintf(t->json[t->n], sizeof(t->json[t->n]), "%s", json);
	if (request_parse(json, strlen(json), &db_parse_limits, &t->reqs[t->n],
			  &err) != 0)
		fail_msg("generated request refused (%s): %s", err.message,
			 json);
	t->ptrs[t->n] = &t->reqs[t->n];
	t->n++;
}

static int64_t pick_hold_id(const struct trial *t, int existing)
{
	switch (rng_below(5)) {
	case 0:
		return 999; /* no such hold */
	case 1:
	case 2:
		return t->first_new_hold + rng_below(3); /* made in the batch */
	default:
		return existing ? 1 + rng_below(existing) : 999;
	}
}

static int64_t pick_booking_id(const struct trial *t, int existing)
{
	switch (rng_below(5)) {
	case 0:
		return 999;
	case 1:
		return t->first_new_booking + rng_below(3);
	default:
		return existing ? 1 + rng_below(existing) : 999;
	}
}

/* A random request's JSON, with this request_id and key. */
static void random_request(struct trial *t, char *out, size_t size,
			   const char *id, const char *key)
{
	char key_field[160] = "";
	const struct db_section *s;
	int64_t event, section;
	int kind = rng_below(100);

	if (key)
		snprintf(key_field, sizeof(key_field),
			 ",\"idempotency_key\":\"%s\"", key);
	if (kind < 55) {
		/* book or hold, mostly for a section of its own event */
		if (rng_chance(8)) {
			section = t->first_new_section + rng_below(2);
			event = t->db->next_id[LEDGER_ID_EVENT];
		} else {
			s = &t->db->sections[rng_below(
			    (int)t->db->section_count)];
			section = s->id;
			event = s->event_id;
		}
		if (rng_chance(10))
			event = 1 + rng_below(4); /* 3 and 4 are unknown */
		if (rng_chance(5))
			section = 55; /* no such section */
		if (kind < 35)
			snprintf(out, size,
				 "{\"type\":\"book\",\"request_id\":\"%s\"%s,"
				 "\"event_id\":%lld,\"section_id\":%lld,"
				 "\"quantity\":%d,\"customer\":\"%s\"}",
				 id, key_field, (long long)event,
				 (long long)section, 1 + rng_below(4),
				 customers[rng_below(4)]);
		else
			snprintf(out, size,
				 "{\"type\":\"hold\",\"request_id\":\"%s\"%s,"
				 "\"event_id\":%lld,\"section_id\":%lld,"
				 "\"quantity\":%d,\"customer\":\"%s\","
				 "\"ttl_s\":%d}",
				 id, key_field, (long long)event,
				 (long long)section, 1 + rng_below(4),
				 customers[rng_below(4)], 1 + rng_below(5));
	} else if (kind < 85) {
		const char *type = kind < 72 ? "confirm" : "release";

		snprintf(out, size,
			 "{\"type\":\"%s\",\"request_id\":\"%s\"%s,"
			 "\"hold_id\":%lld}",
			 type, id, key_field,
			 (long long)pick_hold_id(t, (int)t->db->hold_count));
	} else if (kind < 96) {
		snprintf(
		    out, size,
		    "{\"type\":\"cancel\",\"request_id\":\"%s\"%s,"
		    "\"booking_id\":%lld}",
		    id, key_field,
		    (long long)pick_booking_id(t, (int)t->db->booking_count));
	} else {
		snprintf(out, size,
			 "{\"type\":\"create_event\",\"request_id\":\"%s\"%s,"
			 "\"name\":\"e\",\"sections\":[{\"name\":\"a\","
			 "\"capacity\":%d},{\"name\":\"b\",\"capacity\":%d}]}",
			 id, key_field, rng_below(5), rng_below(5));
	}
}

/* The starting state: events 1 and 2, a few sections, holds of every
 * status (live, past their time, ended), bookings (some cancelled), and
 * idempotency records of earlier requests. */
static void random_state(struct trial *t)
{
	struct db *db = t->db;
	struct model *m = t->m;
	int sections = 1 + rng_below(4);
	int64_t hold_id = 1, booking_id = 1;

	db_add_event(db, 1);
	db_add_event(db, 2);
	for (int i = 0; i < sections; i++) {
		int capacity = rng_below(9);
		int taken = 0;
		int64_t id = 10 + i, event = 1 + rng_below(2);

		for (int k = rng_below(4); k > 0; k--) {
			int q = 1 + rng_below(3);
			int cancelled = rng_chance(30);

			if (!cancelled && taken + q > capacity)
				continue;
			taken += cancelled ? 0 : q;
			db_add_booking(db, booking_id++, event, id, q,
				       customers[rng_below(4)], cancelled);
		}
		for (int k = rng_below(4); k > 0; k--) {
			int q = 1 + rng_below(3);
			enum ledger_hold_status st =
			    (enum ledger_hold_status)rng_below(
				LEDGER_HOLD_STATUS_COUNT);
			int64_t expires = NOW_US + (rng_below(5) - 2) * SECOND;

			if (rng_chance(40))
				st = LEDGER_HOLD_ACTIVE;
			if (st == LEDGER_HOLD_ACTIVE && taken + q > capacity)
				continue;
			taken += st == LEDGER_HOLD_ACTIVE ? q : 0;
			db_add_hold(db, hold_id++, event, id, q,
				    customers[rng_below(4)], st, expires);
		}
		db_add_section(db, id, event, capacity, capacity - taken);
	}
	/* The model starts from the very same rows. */
	m->event_count = 0;
	for (size_t i = 0; i < db->event_count; i++)
		m->events[m->event_count++] = db->events[i];
	m->section_count = 0;
	for (size_t i = 0; i < db->section_count; i++) {
		const struct db_section *s = &db->sections[i];

		m->sections[m->section_count++] = (struct m_section){
		    s->id, s->event_id, s->capacity, s->remaining};
	}
	m->hold_count = 0;
	for (size_t i = 0; i < db->hold_count; i++) {
		const struct db_hold *h = &db->holds[i];

		m->holds[m->hold_count++] =
		    (struct m_hold){h->id,
				    h->event_id,
				    h->section_id,
				    h->quantity,
				    customer_name(h->customer),
				    h->status,
				    h->expires_us};
	}
	m->booking_count = 0;
	for (size_t i = 0; i < db->booking_count; i++) {
		const struct db_booking *b = &db->bookings[i];

		m->bookings[m->booking_count++] =
		    (struct m_booking){b->id,
				       b->event_id,
				       b->section_id,
				       b->quantity,
				       customer_name(b->customer),
				       b->cancelled};
	}
	/* The ids the batch will hand out begin where the sequences are. */
	db->next_id[LEDGER_ID_HOLD] = 100;
	db->next_id[LEDGER_ID_BOOKING] = 100;
	db->next_id[LEDGER_ID_EVENT] = 50;
	db->next_id[LEDGER_ID_SECTION] = 500;
	m->next_hold = t->first_new_hold = 100;
	m->next_booking = t->first_new_booking = 100;
	m->next_event = 50;
	m->next_section = t->first_new_section = 500;
}

/* Earlier requests' records, keys s0..: a repeat of one is a replay or a
 * conflict. */
static void random_records(struct trial *t)
{
	for (int k = rng_below(3); k > 0; k--) {
		char key[16], json[512];
		struct request req;
		struct request_error err;
		struct outcome o = OUTCOME_BLANK;
		static const enum outcome_status statuses[] = {
		    STATUS_CONFIRMED, STATUS_HELD, STATUS_OK, STATUS_REJECTED};

		snprintf(key, sizeof(key), "s%d", k);
		random_request(t, json, sizeof(json), key, NULL);
		assert_int_equal(request_parse(json, strlen(json),
					       &db_parse_limits, &req, &err),
				 0);
		o.status = statuses[rng_below(4)];
		o.booking_id = 7;
		o.remaining = rng_below(5);
		assert_int_equal(
		    outcome_render(&o, key, request_type_name(req.type)), 0);
		db_add_record(t->db, key, req.fingerprint,
			      outcome_status_name(o.status), o.reply);
		m_store(t->m, key, req.fingerprint, o.status, o.reply);
		/* The next batch may send it again, or its key with
		 * another payload. */
		request_free(&req);
		outcome_clear(&o);
	}
}

static void random_batch(struct trial *t)
{
	int count = 1 + rng_below(MAX_REQUESTS);

	for (int i = 0; i < count; i++) {
		char id[16], json[512];
		int what = rng_below(100);

		snprintf(id, sizeof(id), "r%d", i);
		if (what < 6 && t->n > 0) {
			/* a redelivery of an earlier request */
			snprintf(json, sizeof(json), "%s",
				 t->json[rng_below((int)t->n)]);
		} else if (what < 10 && t->n > 0) {
			/* an earlier key, maybe another payload */
			char key[16];

			snprintf(key, sizeof(key), "r%d", rng_below((int)t->n));
			random_request(t, json, sizeof(json), id, key);
		} else if (what < 14 && t->m->record_count > 0) {
			/* a stored key */
			random_request(
			    t, json, sizeof(json), id,
			    t->m->records[rng_below((int)t->m->record_count)]
				.key);
		} else {
			random_request(t, json, sizeof(json), id, NULL);
		}
		parse_into(t, json);
	}
}

static void trial_clear(struct trial *t)
{
	for (size_t i = 0; i < t->n; i++) {
		request_free(&t->reqs[i]);
		outcome_clear(&t->batch[i]);
		outcome_clear(&t->alone[i]);
	}
	t->n = 0;
	model_free(t->m);
	db_free(t->db);
}

/* The batch's rows against the model's, row by row. 1 when equal. */
static int same_rows(struct trial *t, char *why, size_t size)
{
	struct db *db = t->db;
	struct model *m = t->m;

	if (db->section_count != m->section_count ||
	    db->hold_count != m->hold_count ||
	    db->booking_count != m->booking_count) {
		snprintf(why, size, "row counts differ");
		return 0;
	}
	for (size_t i = 0; i < m->section_count; i++) {
		const struct db_section *s = db_section(db, m->sections[i].id);

		if (!s || s->remaining != m->sections[i].remaining) {
			snprintf(why, size, "section %lld remaining differs",
				 (long long)m->sections[i].id);
			return 0;
		}
	}
	for (size_t i = 0; i < m->hold_count; i++) {
		const struct db_hold *h = db_hold(db, m->holds[i].id);

		if (!h || h->status != m->holds[i].status ||
		    h->quantity != m->holds[i].quantity) {
			snprintf(why, size, "hold %lld differs",
				 (long long)m->holds[i].id);
			return 0;
		}
	}
	for (size_t i = 0; i < m->booking_count; i++) {
		const struct db_booking *b = db_booking(db, m->bookings[i].id);

		if (!b || b->cancelled != m->bookings[i].cancelled ||
		    b->section_id != m->bookings[i].section_id) {
			snprintf(why, size, "booking %lld differs",
				 (long long)m->bookings[i].id);
			return 0;
		}
	}
	if (!db_invariant_holds(db)) {
		snprintf(why, size, "the invariant is broken");
		return 0;
	}
	return 1;
}

static void report(const struct trial *t, uint64_t seed, size_t at,
		   const char *why)
{
	fprintf(stderr,
		"ledger model: batch of seed %llu differs at request %zu: %s\n"
		"  replay: TICKETD_LEDGER_SEED=%llu TICKETD_LEDGER_BATCHES=1 "
		"build/tests/unit/test_ledger_model\n",
		(unsigned long long)seed, at, why, (unsigned long long)seed);
	for (size_t i = 0; i < t->n; i++)
		fprintf(stderr, "  %2zu %s\n     batch: %s\n     alone: %s\n",
			i, t->json[i],
			t->batch[i].reply ? t->batch[i].reply : "-",
			t->alone[i].reply ? t->alone[i].reply : "-");
}

/* One random batch: 0 when the ledger and the model agree. */
static int one_trial(struct trial *t, uint64_t seed)
{
	struct ledger_limits limits;
	enum ledger_result rc;
	char why[128];

	rng_state = seed * 2654435761ULL + 0x9e3779b97f4a7c15ULL;
	db_init(t->db, NOW_US);
	memset(t->m, 0, sizeof(*t->m));
	t->m->now_us = NOW_US;
	limits.max_per_customer = rng_chance(50) ? 0 : 1 + rng_below(6);
	t->m->max_per_customer = limits.max_per_customer;
	random_state(t);
	random_records(t);
	random_batch(t);
	for (size_t i = 0; i < t->n; i++) {
		t->batch[i] = OUTCOME_BLANK;
		t->alone[i] = OUTCOME_BLANK;
	}
	rc = db_run_batch(t->db, &limits, t->ptrs, t->n, t->batch);
	for (size_t i = 0; i < t->n; i++)
		model_decide(t->m, t->ptrs[i], &t->alone[i]);
	if (rc != LEDGER_OK) {
		report(t, seed, 0, "the batch did not decide");
		return -1;
	}
	for (size_t i = 0; i < t->n; i++) {
		const struct outcome *b = &t->batch[i], *a = &t->alone[i];

		if (b->status != a->status || b->error != a->error ||
		    b->replayed != a->replayed ||
		    strcmp(b->reply, a->reply) != 0) {
			report(t, seed, i, "outcomes differ");
			return -1;
		}
	}
	if (!same_rows(t, why, sizeof(why))) {
		report(t, seed, t->n, why);
		return -1;
	}
	return 0;
}

static uint64_t env_number(const char *name, uint64_t fallback)
{
	const char *v = getenv(name);

	return v && *v ? strtoull(v, NULL, 10) : fallback;
}

static void test_batch_equals_one_at_a_time(void **state)
{
	uint64_t first =
	    env_number("TICKETD_LEDGER_SEED", (uint64_t)time(NULL));
	uint64_t batches = env_number("TICKETD_LEDGER_BATCHES", 100000);
	struct trial *t = calloc(1, sizeof(*t));
	uint64_t requests = 0;

	(void)state;
	assert_non_null(t);
	t->db = calloc(1, sizeof(*t->db));
	t->m = calloc(1, sizeof(*t->m));
	assert_true(t->db && t->m);
	for (uint64_t k = 0; k < batches; k++) {
		if (one_trial(t, first + k) != 0) {
			trial_clear(t);
			fail_msg("the batch and one-at-a-time disagree (seed "
				 "%llu)",
				 (unsigned long long)(first + k));
		}
		requests += t->n;
		trial_clear(t);
	}
	printf("ledger model: %llu batches, %llu requests, seeds %llu..%llu, "
	       "all agree\n",
	       (unsigned long long)batches, (unsigned long long)requests,
	       (unsigned long long)first,
	       (unsigned long long)(first + batches - 1));
	free(t->db);
	free(t->m);
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_batch_equals_one_at_a_time),
	};

	return cmocka_run_group_tests_name("ledger model", tests, NULL, NULL);
}
