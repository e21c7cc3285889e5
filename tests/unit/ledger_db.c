/*
 * ledger_db: an in-memory stand-in for the tables txn.c reads and writes,
 * for the ledger's tests: it feeds a batch what txn.c's read phase would
 * read under the locks, answers the ledger's requests for expired holds,
 * and applies the rows the ledger leaves as txn.c's write phase would.
 */
#include "ledger_db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct request_limits db_parse_limits = {
    .max_message_bytes = 65536,
    .max_quantity = 100,
    .max_sections = 10,
    .max_section_capacity = 1000000,
    .hold_ttl_default_s = 60,
    .hold_ttl_max_s = 3600,
};

void db_init(struct db *db, int64_t now_us)
{
	/* Counts only: the model test resets one db a hundred thousand
	 * times, and the rows are written before they are read. */
	db->section_count = db->hold_count = db->booking_count = 0;
	db->record_count = db->event_count = 0;
	db->expired_reads = 0;
	db->now_us = now_us;
	db->next_id[LEDGER_ID_EVENT] = 1000;
	db->next_id[LEDGER_ID_SECTION] = 1000;
	db->next_id[LEDGER_ID_HOLD] = 1;
	db->next_id[LEDGER_ID_BOOKING] = 1;
}

void db_free(struct db *db)
{
	for (size_t i = 0; i < db->record_count; i++) {
		free(db->records[i].fingerprint);
		free(db->records[i].reply);
	}
	db->record_count = 0;
}

static void room(size_t count)
{
	if (count >= DB_MAX) {
		fprintf(stderr, "ledger_db: more than %d rows\n", DB_MAX);
		abort();
	}
}

static void copy_text(char *out, size_t size, const char *s)
{
	snprintf(out, size, "%s", s);
}

void db_add_event(struct db *db, int64_t id)
{
	room(db->event_count);
	db->events[db->event_count++] = id;
}

static int active_held(const struct db *db, int64_t section_id)
{
	int seats = 0;

	for (size_t h = 0; h < db->hold_count; h++) {
		if (db->holds[h].section_id == section_id &&
		    db->holds[h].status == LEDGER_HOLD_ACTIVE)
			seats += db->holds[h].quantity;
	}
	return seats;
}

void db_add_section(struct db *db, int64_t id, int64_t event_id, int capacity,
		    int remaining)
{
	room(db->section_count);
	db->sections[db->section_count++] = (struct db_section){
	    id, event_id, capacity, remaining, active_held(db, id)};
}

void db_add_hold(struct db *db, int64_t id, int64_t event_id,
		 int64_t section_id, int quantity, const char *customer,
		 enum ledger_hold_status status, int64_t expires_us)
{
	struct db_hold *h;

	room(db->hold_count);
	h = &db->holds[db->hold_count++];
	memset(h, 0, sizeof(*h));
	h->id = id;
	h->event_id = event_id;
	h->section_id = section_id;
	h->quantity = quantity;
	copy_text(h->customer, sizeof(h->customer), customer);
	h->status = status;
	h->expires_us = expires_us;
	if (status == LEDGER_HOLD_ACTIVE && db_section(db, section_id))
		db_section(db, section_id)->held += quantity;
}

void db_add_booking(struct db *db, int64_t id, int64_t event_id,
		    int64_t section_id, int quantity, const char *customer,
		    int cancelled)
{
	struct db_booking *bk;

	room(db->booking_count);
	bk = &db->bookings[db->booking_count++];
	memset(bk, 0, sizeof(*bk));
	bk->id = id;
	bk->event_id = event_id;
	bk->section_id = section_id;
	bk->quantity = quantity;
	bk->cancelled = cancelled;
	copy_text(bk->customer, sizeof(bk->customer), customer);
}

void db_add_record(struct db *db, const char *key, const char *fingerprint,
		   const char *status, const char *reply)
{
	struct db_record *r;

	room(db->record_count);
	r = &db->records[db->record_count++];
	copy_text(r->key, sizeof(r->key), key);
	copy_text(r->status, sizeof(r->status), status);
	r->fingerprint = strdup(fingerprint);
	r->reply = strdup(reply);
	if (!r->fingerprint || !r->reply)
		abort();
}

struct db_section *db_section(struct db *db, int64_t id)
{
	for (size_t i = 0; i < db->section_count; i++) {
		if (db->sections[i].id == id)
			return &db->sections[i];
	}
	return NULL;
}

struct db_hold *db_hold(struct db *db, int64_t id)
{
	for (size_t i = 0; i < db->hold_count; i++) {
		if (db->holds[i].id == id)
			return &db->holds[i];
	}
	return NULL;
}

struct db_booking *db_booking(struct db *db, int64_t id)
{
	for (size_t i = 0; i < db->booking_count; i++) {
		if (db->bookings[i].id == id)
			return &db->bookings[i];
	}
	return NULL;
}

static struct db_record *db_record(struct db *db, const char *key)
{
	for (size_t i = 0; i < db->record_count; i++) {
		if (strcmp(db->records[i].key, key) == 0)
			return &db->records[i];
	}
	return NULL;
}

static int event_exists(const struct db *db, int64_t id)
{
	for (size_t i = 0; i < db->event_count; i++) {
		if (db->events[i] == id)
			return 1;
	}
	return 0;
}

static int cmp_id(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static void must(int rc)
{
	if (rc != 0) {
		fprintf(stderr, "ledger_db: out of memory\n");
		abort();
	}
}

/* What txn.c's read phase reads: the sections named (directly, or by
 * the holds and bookings named), locked in ascending id order; the holds
 * and bookings named; the records of the batch's keys. */
static void feed(struct db *db, struct ledger *lg)
{
	int64_t ids[DB_MAX];
	size_t count = 0;

	for (size_t i = 0; i < lg->n; i++) {
		const struct request *req = lg->reqs[i];
		const struct db_hold *h;
		const struct db_booking *bk;

		switch (req->type) {
		case REQUEST_BOOK:
		case REQUEST_HOLD:
			ids[count++] = req->section_id;
			break;
		case REQUEST_CONFIRM:
		case REQUEST_RELEASE:
			h = db_hold(db, req->hold_id);
			if (h) {
				ids[count++] = h->section_id;
				must(ledger_add_hold(lg, h->id, h->event_id,
						     h->section_id, h->quantity,
						     h->customer, h->status,
						     h->expires_us));
			}
			break;
		case REQUEST_CANCEL:
			bk = db_booking(db, req->booking_id);
			if (bk) {
				ids[count++] = bk->section_id;
				must(ledger_add_booking(
				    lg, bk->id, bk->event_id, bk->section_id,
				    bk->quantity, bk->cancelled, bk->customer));
			}
			break;
		default:
			break;
		}
	}
	qsort(ids, count, sizeof(ids[0]), cmp_id);
	for (size_t i = 0; i < count; i++) {
		const struct db_section *s = db_section(db, ids[i]);

		if ((i > 0 && ids[i] == ids[i - 1]) || !s)
			continue;
		must(ledger_add_section(lg, s->id, s->event_id, s->capacity,
					s->remaining, s->held));
	}
	for (size_t i = 0; i < lg->n; i++) {
		const struct db_record *r =
		    db_record(db, lg->reqs[i]->idempotency_key);
		int seen = 0;

		for (size_t j = 0; r && j < i; j++)
			seen |=
			    strcmp(lg->reqs[j]->idempotency_key, r->key) == 0;
		if (r && !seen)
			must(ledger_add_record(lg, r->key, r->fingerprint,
					       r->status, r->reply));
	}
}

static void feed_events(struct db *db, struct ledger *lg)
{
	int64_t ids[DB_MAX];
	size_t count = ledger_events_to_check(lg, ids);

	for (size_t i = 0; i < count; i++) {
		if (event_exists(db, ids[i]))
			must(ledger_add_event(lg, ids[i]));
	}
}

/* Confirmed bookings and live holds of each (event, customer) pair. */
static void feed_customers(struct db *db, struct ledger *lg)
{
	must(ledger_collect_customers(lg));
	for (size_t i = 0; i < lg->customer_count; i++) {
		struct ledger_customer *c = &lg->customers[i];

		c->seats = 0;
		for (size_t b = 0; b < db->booking_count; b++) {
			const struct db_booking *bk = &db->bookings[b];

			if (bk->event_id == c->event_id && !bk->cancelled &&
			    strcmp(bk->customer, c->customer) == 0)
				c->seats += bk->quantity;
		}
		for (size_t h = 0; h < db->hold_count; h++) {
			const struct db_hold *hd = &db->holds[h];

			if (hd->event_id == c->event_id &&
			    hd->status == LEDGER_HOLD_ACTIVE &&
			    hd->expires_us > lg->now_us &&
			    strcmp(hd->customer, c->customer) == 0)
				c->seats += hd->quantity;
		}
	}
}

static void feed_ids(struct db *db, struct ledger *lg)
{
	size_t wanted[LEDGER_ID_KINDS];

	ledger_ids_wanted(lg->reqs, lg->n, wanted);
	for (int k = 0; k < LEDGER_ID_KINDS; k++) {
		int64_t ids[DB_MAX];

		room(wanted[k]);
		for (size_t i = 0; i < wanted[k]; i++)
			ids[i] = db->next_id[k]++;
		must(
		    ledger_add_ids(lg, (enum ledger_id_kind)k, ids, wanted[k]));
	}
}

/* The expired holds of a section, as SQL_EXPIRED_HOLDS reads them. */
static void feed_expired(struct db *db, struct ledger *lg, int64_t section_id)
{
	db->expired_reads++;
	for (size_t i = 0; i < db->hold_count; i++) {
		const struct db_hold *h = &db->holds[i];

		if (h->section_id == section_id &&
		    h->status == LEDGER_HOLD_ACTIVE &&
		    h->expires_us <= lg->now_us)
			must(ledger_add_hold(
			    lg, h->id, h->event_id, h->section_id, h->quantity,
			    h->customer, h->status, h->expires_us));
	}
	ledger_expired_given(lg, section_id);
}

/* What txn.c's write phase writes. */
static void apply(struct db *db, const struct ledger *lg,
		  const struct outcome *out)
{
	for (size_t i = 0; i < lg->event_count; i++)
		db_add_event(db, lg->events[i].id);
	for (size_t i = 0; i < lg->section_count; i++) {
		const struct ledger_section *s = &lg->sections[i];

		if (s->is_new) {
			db_add_section(db, s->id, s->event_id, s->capacity,
				       s->remaining);
			db_section(db, s->id)->held = s->held;
		} else {
			db_section(db, s->id)->remaining = s->remaining;
			db_section(db, s->id)->held = s->held;
		}
	}
	for (size_t i = 0; i < lg->hold_count; i++) {
		const struct ledger_hold *h = &lg->holds[i];

		/* Rows only: the sections' counters were written above,
		 * as the ledger left them. */
		if (h->is_new) {
			int held = db_section(db, h->section_id)->held;

			db_add_hold(db, h->id, h->event_id, h->section_id,
				    h->quantity, h->customer, h->status,
				    h->expires_us);
			db_section(db, h->section_id)->held = held;
		} else {
			db_hold(db, h->id)->status = h->status;
		}
	}
	for (size_t i = 0; i < lg->booking_count; i++) {
		const struct ledger_booking *bk = &lg->bookings[i];

		if (bk->is_new) {
			db_add_booking(db, bk->id, bk->event_id, bk->section_id,
				       bk->quantity, bk->customer,
				       bk->cancelled);
			db->bookings[db->booking_count - 1].hold_id =
			    bk->hold_id;
		} else {
			db_booking(db, bk->id)->cancelled = bk->cancelled;
		}
	}
	for (size_t i = 0; i < lg->n; i++) {
		if (out[i].replayed ||
		    out[i].error == ERROR_IDEMPOTENCY_CONFLICT)
			continue;
		db_add_record(db, lg->reqs[i]->idempotency_key,
			      lg->reqs[i]->fingerprint,
			      outcome_status_name(out[i].status), out[i].reply);
	}
}

enum ledger_result db_run_batch(struct db *db,
				const struct ledger_limits *limits,
				struct request *const *reqs, size_t n,
				struct outcome *out)
{
	struct ledger lg;
	enum ledger_result rc;

	ledger_init(&lg, limits, reqs, n);
	lg.now_us = db->now_us;
	feed_ids(db, &lg);
	feed(db, &lg);
	feed_events(db, &lg);
	feed_customers(db, &lg);
	while ((rc = ledger_decide(&lg, out)) == LEDGER_NEED_EXPIRED)
		feed_expired(db, &lg, lg.needed_section);
	if (rc == LEDGER_OK) {
		for (size_t i = 0; i < n; i++) {
			if (!out[i].reply &&
			    outcome_render(&out[i], reqs[i]->request_id,
					   request_type_name(reqs[i]->type)) !=
				0)
				abort();
		}
		apply(db, &lg, out);
	} else {
		for (size_t i = 0; i < n; i++)
			outcome_clear(&out[i]);
	}
	ledger_free(&lg);
	return rc;
}

int db_invariant_holds(const struct db *db)
{
	for (size_t i = 0; i < db->section_count; i++) {
		const struct db_section *s = &db->sections[i];
		long long taken = 0;

		for (size_t b = 0; b < db->booking_count; b++) {
			if (db->bookings[b].section_id == s->id &&
			    !db->bookings[b].cancelled)
				taken += db->bookings[b].quantity;
		}
		for (size_t h = 0; h < db->hold_count; h++) {
			if (db->holds[h].section_id == s->id &&
			    db->holds[h].status == LEDGER_HOLD_ACTIVE)
				taken += db->holds[h].quantity;
		}
		if (s->remaining < 0 || s->remaining > s->capacity ||
		    s->capacity - s->remaining != taken ||
		    s->held != active_held(db, s->id))
			return 0;
	}
	return 1;
}
