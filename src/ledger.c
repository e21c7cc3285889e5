/*
 * ledger: the booking rules, decided in memory over what one batch read.
 * No libpq, no I/O, no clock of its own.
 *
 * Every rule is the one a transaction of its own would apply to each
 * request in arrival order: seats come out of `remaining`; a request that
 * does not fit is rejected and the next one may still fit; a hold takes
 * seats until it expires, a confirm turns it into a booking with the same
 * seats, a release or a cancel gives them back; a repeated idempotency key
 * is answered with the reply it got the first time.
 */
#include "ledger.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const hold_status_names[LEDGER_HOLD_STATUS_COUNT] = {
    [LEDGER_HOLD_ACTIVE] = "active",
    [LEDGER_HOLD_CONFIRMED] = "confirmed",
    [LEDGER_HOLD_RELEASED] = "released",
    [LEDGER_HOLD_EXPIRED] = "expired",
};

const char *ledger_hold_status_name(enum ledger_hold_status status)
{
	return status < LEDGER_HOLD_STATUS_COUNT ? hold_status_names[status]
						 : "unknown";
}

int ledger_hold_status_parse(const char *s)
{
	for (int i = 0; i < LEDGER_HOLD_STATUS_COUNT; i++) {
		if (strcmp(s, hold_status_names[i]) == 0)
			return i;
	}
	return -1;
}

/* Room for one more item in *items (count used, *cap allocated). */
static int grow(void **items, size_t *cap, size_t count, size_t size)
{
	void *grown;
	size_t new_cap;

	if (count < *cap)
		return 0;
	new_cap = *cap ? *cap * 2 : 16;
	grown = realloc(*items, new_cap * size);
	if (!grown)
		return -1;
	*items = grown;
	*cap = new_cap;
	return 0;
}

#define GROW(lg, name)                                                         \
	grow((void **)&(lg)->name##s, &(lg)->name##_cap, (lg)->name##_count,   \
	     sizeof(*(lg)->name##s))

void ledger_init(struct ledger *lg, const struct ledger_limits *limits,
		 struct request *const *reqs, size_t n)
{
	memset(lg, 0, sizeof(*lg));
	lg->limits = *limits;
	lg->reqs = reqs;
	lg->n = n;
}

void ledger_free(struct ledger *lg)
{
	for (size_t i = 0; i < lg->hold_count; i++)
		free(lg->holds[i].customer);
	for (size_t i = 0; i < lg->booking_count; i++)
		free(lg->bookings[i].own_customer);
	for (size_t i = 0; i < lg->record_count; i++) {
		free(lg->records[i].key);
		free(lg->records[i].fingerprint);
		free(lg->records[i].reply);
	}
	free(lg->sections);
	free(lg->holds);
	free(lg->bookings);
	free(lg->events);
	free(lg->records);
	free(lg->customers);
	free(lg->known_events);
	for (int k = 0; k < LEDGER_ID_KINDS; k++)
		free(lg->ids[k]);
	free(lg->keys);
	memset(lg, 0, sizeof(*lg));
}

void ledger_ids_wanted(struct request *const *reqs, size_t n,
		       size_t wanted[LEDGER_ID_KINDS])
{
	memset(wanted, 0, LEDGER_ID_KINDS * sizeof(wanted[0]));
	for (size_t i = 0; i < n; i++) {
		switch (reqs[i]->type) {
		case REQUEST_CREATE_EVENT:
			wanted[LEDGER_ID_EVENT]++;
			wanted[LEDGER_ID_SECTION] += reqs[i]->section_count;
			break;
		case REQUEST_BOOK:
		case REQUEST_CONFIRM:
			wanted[LEDGER_ID_BOOKING]++;
			break;
		case REQUEST_HOLD:
			wanted[LEDGER_ID_HOLD]++;
			break;
		default:
			break;
		}
	}
}

/* ------------------------------------------------------------ lookups */

/* Binary search over the locked rows (a batch may touch hundreds of
 * sections), then a look at the few the batch creates. */
static struct ledger_section *section_find(const struct ledger *lg, int64_t id)
{
	size_t low = 0, high = lg->locked_section_count;

	while (low < high) {
		size_t mid = low + (high - low) / 2;

		if (lg->sections[mid].id == id)
			return &lg->sections[mid];
		if (lg->sections[mid].id < id)
			low = mid + 1;
		else
			high = mid;
	}
	for (size_t i = lg->locked_section_count; i < lg->section_count; i++) {
		if (lg->sections[i].id == id)
			return &lg->sections[i];
	}
	return NULL;
}

const struct ledger_section *ledger_section(const struct ledger *lg, int64_t id)
{
	return section_find(lg, id);
}

/* Holds and bookings a batch names are few (one per confirm, release or
 * cancel): a scan is cheaper than keeping an index. */
static struct ledger_hold *hold_find(const struct ledger *lg, int64_t id)
{
	for (size_t i = 0; i < lg->hold_count; i++) {
		if (lg->holds[i].id == id)
			return &lg->holds[i];
	}
	return NULL;
}

static struct ledger_booking *booking_find(const struct ledger *lg, int64_t id)
{
	for (size_t i = 0; i < lg->booking_count; i++) {
		if (lg->bookings[i].id == id)
			return &lg->bookings[i];
	}
	return NULL;
}

static int event_known(const struct ledger *lg, int64_t id)
{
	for (size_t i = 0; i < lg->known_event_count; i++) {
		if (lg->known_events[i] == id)
			return 1;
	}
	for (size_t i = 0; i < lg->event_count; i++) {
		if (lg->events[i].id == id)
			return 1;
	}
	return 0;
}

/* Order of the batch's customers: event, then customer byte by byte (as
 * the tables' COLLATE "C"). */
static int customer_order(const void *a, const void *b)
{
	const struct ledger_customer *x = a, *y = b;

	if (x->event_id != y->event_id)
		return x->event_id < y->event_id ? -1 : 1;
	return strcmp(x->customer, y->customer);
}

static struct ledger_customer *
customer_find(const struct ledger *lg, int64_t event_id, const char *customer)
{
	const struct ledger_customer key = {.event_id = event_id,
					    .customer = customer};

	if (lg->customer_count == 0 || !customer)
		return NULL;
	return bsearch(&key, lg->customers, lg->customer_count,
		       sizeof(*lg->customers), customer_order);
}

/* The next id of a kind, or -1 when the batch was given too few. */
static int64_t id_next(struct ledger *lg, enum ledger_id_kind kind)
{
	if (lg->id_used[kind] >= lg->id_count[kind])
		return -1;
	return lg->ids[kind][lg->id_used[kind]++];
}

/* ------------------------------------------------------------ feeding */

int ledger_add_section(struct ledger *lg, int64_t id, int64_t event_id,
		       int capacity, int remaining, int held)
{
	struct ledger_section *s;

	if (GROW(lg, section) != 0)
		return -1;
	s = &lg->sections[lg->section_count++];
	memset(s, 0, sizeof(*s));
	s->id = id;
	s->event_id = event_id;
	s->capacity = capacity;
	s->remaining = remaining;
	s->initial_remaining = remaining;
	s->held = held;
	s->initial_held = held;
	lg->locked_section_count = lg->section_count;
	return 0;
}

int ledger_add_hold(struct ledger *lg, int64_t id, int64_t event_id,
		    int64_t section_id, int quantity, const char *customer,
		    enum ledger_hold_status status, int64_t expires_us)
{
	struct ledger_hold *h;

	if (hold_find(lg, id))
		return 0;
	if (GROW(lg, hold) != 0)
		return -1;
	h = &lg->holds[lg->hold_count];
	memset(h, 0, sizeof(*h));
	h->customer = strdup(customer);
	if (!h->customer)
		return -1;
	h->id = id;
	h->event_id = event_id;
	h->section_id = section_id;
	h->quantity = quantity;
	h->status = status;
	h->initial_status = status;
	h->expires_us = expires_us;
	lg->hold_count++;
	return 0;
}

int ledger_add_booking(struct ledger *lg, int64_t id, int64_t event_id,
		       int64_t section_id, int quantity, int cancelled,
		       const char *customer)
{
	struct ledger_booking *bk;

	if (booking_find(lg, id))
		return 0;
	if (GROW(lg, booking) != 0)
		return -1;
	bk = &lg->bookings[lg->booking_count];
	memset(bk, 0, sizeof(*bk));
	bk->own_customer = strdup(customer);
	if (!bk->own_customer)
		return -1;
	bk->customer = bk->own_customer;
	bk->id = id;
	bk->event_id = event_id;
	bk->section_id = section_id;
	bk->quantity = quantity;
	bk->cancelled = cancelled;
	bk->initial_cancelled = cancelled;
	lg->booking_count++;
	return 0;
}

int ledger_add_record(struct ledger *lg, const char *key,
		      const char *fingerprint, const char *status,
		      const char *reply)
{
	struct ledger_record *r;

	if (GROW(lg, record) != 0)
		return -1;
	r = &lg->records[lg->record_count];
	r->key = strdup(key);
	r->fingerprint = strdup(fingerprint);
	r->reply = strdup(reply);
	r->status = outcome_status_parse(status);
	if (!r->key || !r->fingerprint || !r->reply) {
		free(r->key);
		free(r->fingerprint);
		free(r->reply);
		return -1;
	}
	lg->record_count++;
	return 0;
}

int ledger_add_event(struct ledger *lg, int64_t id)
{
	if (grow((void **)&lg->known_events, &lg->known_event_cap,
		 lg->known_event_count, sizeof(*lg->known_events)) != 0)
		return -1;
	lg->known_events[lg->known_event_count++] = id;
	return 0;
}

int ledger_add_ids(struct ledger *lg, enum ledger_id_kind kind,
		   const int64_t *ids, size_t count)
{
	int64_t *copy = malloc((count ? count : 1) * sizeof(*copy));

	if (!copy)
		return -1;
	memcpy(copy, ids, count * sizeof(*copy));
	free(lg->ids[kind]);
	lg->ids[kind] = copy;
	lg->id_count[kind] = count;
	lg->id_used[kind] = 0;
	return 0;
}

size_t ledger_events_to_check(const struct ledger *lg, int64_t *ids)
{
	size_t count = 0;

	for (size_t i = 0; i < lg->n; i++) {
		const struct request *req = lg->reqs[i];
		const struct ledger_section *s;

		if (req->type != REQUEST_BOOK && req->type != REQUEST_HOLD)
			continue;
		s = section_find(lg, req->section_id);
		if (!s || s->event_id != req->event_id)
			ids[count++] = req->event_id;
	}
	return count;
}

int ledger_collect_customers(struct ledger *lg)
{
	size_t kept = 0;

	lg->customer_count = 0;
	if (lg->limits.max_per_customer <= 0)
		return 0;
	for (size_t i = 0; i < lg->n; i++) {
		const struct request *req = lg->reqs[i];
		struct ledger_customer pair = {.event_id = req->event_id,
					       .customer = req->customer};

		/* A confirm turns a live hold into a booking: it must not
		 * judge the hold's expiry while a book of the same customer
		 * decides elsewhere, so it takes her lock too. */
		if (req->type == REQUEST_CONFIRM) {
			const struct ledger_hold *h =
			    hold_find(lg, req->hold_id);

			if (!h || h->status != LEDGER_HOLD_ACTIVE ||
			    h->expires_us <= lg->now_us)
				continue;
			pair = (struct ledger_customer){
			    .event_id = h->event_id, .customer = h->customer};
		} else if (req->type != REQUEST_BOOK &&
			   req->type != REQUEST_HOLD) {
			continue;
		}
		if (GROW(lg, customer) != 0)
			return -1;
		lg->customers[lg->customer_count++] = pair;
	}
	if (lg->customer_count == 0)
		return 0;
	qsort(lg->customers, lg->customer_count, sizeof(*lg->customers),
	      customer_order);
	for (size_t i = 0; i < lg->customer_count; i++) {
		if (kept == 0 || customer_order(&lg->customers[kept - 1],
						&lg->customers[i]) != 0)
			lg->customers[kept++] = lg->customers[i];
	}
	lg->customer_count = kept;
	return 0;
}

size_t ledger_customer_locks(const struct ledger *lg)
{
	size_t locks = 0, in_event = 0;

	for (size_t i = 0; i < lg->customer_count; i++) {
		if (i > 0 &&
		    lg->customers[i].event_id != lg->customers[i - 1].event_id)
			in_event = 0;
		if (in_event++ < LEDGER_CUSTOMER_BUCKETS)
			locks++;
	}
	return locks;
}

void ledger_expired_given(struct ledger *lg, int64_t section_id)
{
	struct ledger_section *s = section_find(lg, section_id);

	if (s && s->expired == 0)
		s->expired = 1;
}

/* ----------------------------------------------------------- deciding */

static enum ledger_result broken(struct ledger *lg, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static enum ledger_result broken(struct ledger *lg, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(lg->why, sizeof(lg->why), fmt, ap);
	va_end(ap);
	return LEDGER_BROKEN;
}

static void format_timestamp(int64_t us, char *out, size_t size)
{
	time_t secs = (time_t)(us / 1000000);
	struct tm tm;
	size_t pos;

	gmtime_r(&secs, &tm);
	pos = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + pos, size - pos, ".%03dZ", (int)((us % 1000000) / 1000));
}

/* Seats given back (a hold released, a booking cancelled): the batch's
 * later requests of that customer see it, as they would in transactions
 * of their own. */
static void customer_give_back(struct ledger *lg, int64_t event_id,
			       const char *customer, int quantity)
{
	struct ledger_customer *c = customer_find(lg, event_id, customer);

	if (c)
		c->seats -= quantity;
}

/* A hold whose time is up ends as the reaper would end it: seats back. */
static void hold_expire(struct ledger_hold *h, struct ledger_section *s)
{
	h->status = LEDGER_HOLD_EXPIRED;
	s->held -= h->quantity;
	s->remaining += h->quantity;
}

/* End the section's expired holds (given by the caller), once. */
static void reclaim_expired(struct ledger *lg, struct ledger_section *s)
{
	s->expired = 2;
	for (size_t i = 0; i < lg->hold_count; i++) {
		struct ledger_hold *h = &lg->holds[i];

		if (h->section_id == s->id && h->status == LEDGER_HOLD_ACTIVE &&
		    h->expires_us <= lg->now_us)
			hold_expire(h, s);
	}
}

static enum ledger_result new_booking(struct ledger *lg, int64_t event_id,
				      int64_t section_id, int quantity,
				      const char *customer, int64_t hold_id,
				      const char *request_key, int64_t *id)
{
	struct ledger_booking *bk;

	if (GROW(lg, booking) != 0)
		return LEDGER_NO_MEMORY;
	*id = id_next(lg, LEDGER_ID_BOOKING);
	if (*id < 0)
		return broken(lg, "the batch ran out of booking ids");
	bk = &lg->bookings[lg->booking_count++];
	memset(bk, 0, sizeof(*bk));
	bk->id = *id;
	bk->event_id = event_id;
	bk->section_id = section_id;
	bk->quantity = quantity;
	bk->customer = customer;
	bk->hold_id = hold_id;
	bk->request_key = request_key;
	bk->is_new = 1;
	return LEDGER_OK;
}

static enum ledger_result new_hold(struct ledger *lg, const struct request *req,
				   int64_t *id, int64_t *expires_us)
{
	struct ledger_hold *h;

	if (GROW(lg, hold) != 0)
		return LEDGER_NO_MEMORY;
	*id = id_next(lg, LEDGER_ID_HOLD);
	if (*id < 0)
		return broken(lg, "the batch ran out of hold ids");
	h = &lg->holds[lg->hold_count];
	memset(h, 0, sizeof(*h));
	h->customer = strdup(req->customer);
	if (!h->customer)
		return LEDGER_NO_MEMORY;
	lg->hold_count++;
	h->id = *id;
	h->event_id = req->event_id;
	h->section_id = req->section_id;
	h->quantity = req->quantity;
	h->status = LEDGER_HOLD_ACTIVE;
	h->initial_status = LEDGER_HOLD_ACTIVE;
	h->expires_us = lg->now_us + (int64_t)req->ttl_s * 1000000;
	h->request_key = req->idempotency_key;
	h->is_new = 1;
	*expires_us = h->expires_us;
	return LEDGER_OK;
}

/* A book or a hold: seats out of the section, if they fit. */
static enum ledger_result
decide_seats(struct ledger *lg, const struct request *req, struct outcome *out)
{
	struct ledger_section *s = section_find(lg, req->section_id);
	struct ledger_customer *c;
	enum ledger_result rc;
	int64_t id = 0, expires_us = 0;

	if (!s || s->event_id != req->event_id) {
		if (!event_known(lg, req->event_id))
			outcome_set_error(out, ERROR_EVENT_NOT_FOUND,
					  "event %" PRId64 " does not exist",
					  req->event_id);
		else
			outcome_set_error(out, ERROR_SECTION_NOT_FOUND,
					  "section %" PRId64
					  " does not exist in event %" PRId64,
					  req->section_id, req->event_id);
		return LEDGER_OK;
	}
	out->event_id = req->event_id;
	out->section_id = req->section_id;
	/* With max_per_customer every book's and hold's pair was read;
	 * without, there are none. */
	c = customer_find(lg, req->event_id, req->customer);
	if (!c && lg->limits.max_per_customer > 0)
		return broken(lg,
			      "customer %s of event %" PRId64 " was not read",
			      req->customer, req->event_id);
	if (c && c->seats + req->quantity > lg->limits.max_per_customer) {
		outcome_set_error(out, ERROR_QUANTITY_LIMIT,
				  "%s has %" PRId64 " seats for event %" PRId64
				  ", the limit is %d",
				  req->customer, c->seats, req->event_id,
				  lg->limits.max_per_customer);
		out->remaining = s->remaining;
		return LEDGER_OK;
	}
	/* Too few seats: the section's expired holds count as free, so that
	 * a slow reaper never shows as a false sell-out. The caller fetches
	 * them the first time; this request is then decided again from
	 * here (nothing of it has changed the batch yet). */
	if (s->remaining < req->quantity && s->expired == 0 && !s->is_new) {
		lg->needed_section = s->id;
		return LEDGER_NEED_EXPIRED;
	}
	if (s->remaining < req->quantity && s->expired == 1)
		reclaim_expired(lg, s);
	if (s->remaining < req->quantity) {
		outcome_set_error(out, ERROR_INSUFFICIENT_SEATS,
				  "%d requested, %d remaining", req->quantity,
				  s->remaining);
		out->remaining = s->remaining;
		return LEDGER_OK;
	}
	if (req->type == REQUEST_BOOK) {
		rc = new_booking(lg, req->event_id, req->section_id,
				 req->quantity, req->customer, 0,
				 req->idempotency_key, &id);
		if (rc != LEDGER_OK)
			return rc;
		out->status = STATUS_CONFIRMED;
		out->booking_id = id;
	} else {
		rc = new_hold(lg, req, &id, &expires_us);
		if (rc != LEDGER_OK)
			return rc;
		out->status = STATUS_HELD;
		out->hold_id = id;
		format_timestamp(expires_us, out->expires_at,
				 sizeof(out->expires_at));
		s->held += req->quantity;
	}
	s->remaining -= req->quantity;
	if (c)
		c->seats += req->quantity;
	out->quantity = req->quantity;
	out->remaining = s->remaining;
	return LEDGER_OK;
}

/* A confirm or a release of a hold. */
static enum ledger_result decide_hold_end(struct ledger *lg,
					  const struct request *req,
					  struct outcome *out)
{
	struct ledger_hold *h = hold_find(lg, req->hold_id);
	struct ledger_section *s;
	enum ledger_result rc;
	int64_t id;

	if (!h) {
		outcome_set_error(out, ERROR_HOLD_NOT_FOUND,
				  "hold %" PRId64 " does not exist",
				  req->hold_id);
		return LEDGER_OK;
	}
	s = section_find(lg, h->section_id);
	if (!s) {
		/* The hold appeared after the batch found its sections. */
		snprintf(lg->why, sizeof(lg->why),
			 "hold %" PRId64 " is in a section not locked", h->id);
		return LEDGER_RETRY;
	}
	out->hold_id = h->id;
	out->event_id = h->event_id;
	out->section_id = h->section_id;
	out->quantity = h->quantity;
	if (h->status == LEDGER_HOLD_ACTIVE && h->expires_us <= lg->now_us)
		hold_expire(h, s);
	if (h->status == LEDGER_HOLD_EXPIRED) {
		outcome_set_error(out, ERROR_HOLD_EXPIRED,
				  "hold %" PRId64 " has expired", h->id);
		out->remaining = s->remaining;
		return LEDGER_OK;
	}
	if (h->status != LEDGER_HOLD_ACTIVE) {
		outcome_set_error(out, ERROR_HOLD_NOT_ACTIVE,
				  "hold %" PRId64 " is %s", h->id,
				  ledger_hold_status_name(h->status));
		out->remaining = s->remaining;
		return LEDGER_OK;
	}
	if (req->type == REQUEST_CONFIRM) {
		/* Same seats: they were taken when the hold was; no second
		 * decrement. */
		rc = new_booking(lg, h->event_id, h->section_id, h->quantity,
				 h->customer, h->id, req->idempotency_key, &id);
		if (rc != LEDGER_OK)
			return rc;
		h->status = LEDGER_HOLD_CONFIRMED;
		s->held -= h->quantity;
		out->booking_id = id;
	} else {
		h->status = LEDGER_HOLD_RELEASED;
		s->held -= h->quantity;
		s->remaining += h->quantity;
		customer_give_back(lg, h->event_id, h->customer, h->quantity);
	}
	out->status = STATUS_OK;
	out->remaining = s->remaining;
	return LEDGER_OK;
}

static enum ledger_result
decide_cancel(struct ledger *lg, const struct request *req, struct outcome *out)
{
	struct ledger_booking *bk = booking_find(lg, req->booking_id);
	struct ledger_section *s;

	if (!bk) {
		outcome_set_error(out, ERROR_BOOKING_NOT_FOUND,
				  "booking %" PRId64 " does not exist",
				  req->booking_id);
		return LEDGER_OK;
	}
	s = section_find(lg, bk->section_id);
	if (!s) {
		snprintf(lg->why, sizeof(lg->why),
			 "booking %" PRId64 " is in a section not locked",
			 bk->id);
		return LEDGER_RETRY;
	}
	out->booking_id = bk->id;
	out->event_id = bk->event_id;
	out->section_id = bk->section_id;
	out->quantity = bk->quantity;
	if (bk->cancelled) {
		outcome_set_error(out, ERROR_ALREADY_CANCELLED,
				  "booking %" PRId64 " is already cancelled",
				  bk->id);
		out->remaining = s->remaining;
		return LEDGER_OK;
	}
	bk->cancelled = 1;
	s->remaining += bk->quantity;
	customer_give_back(lg, bk->event_id, bk->customer, bk->quantity);
	out->status = STATUS_OK;
	out->remaining = s->remaining;
	return LEDGER_OK;
}

static enum ledger_result decide_create_event(struct ledger *lg,
					      const struct request *req,
					      struct outcome *out)
{
	struct ledger_event *ev;

	if (GROW(lg, event) != 0)
		return LEDGER_NO_MEMORY;
	ev = &lg->events[lg->event_count];
	ev->id = id_next(lg, LEDGER_ID_EVENT);
	ev->req = req;
	if (ev->id < 0)
		return broken(lg, "the batch ran out of event ids");
	out->section_ids = calloc(req->section_count ? req->section_count : 1,
				  sizeof(int64_t));
	if (!out->section_ids)
		return LEDGER_NO_MEMORY;
	lg->event_count++;
	out->section_count = req->section_count;
	for (size_t i = 0; i < req->section_count; i++) {
		struct ledger_section *s;

		if (GROW(lg, section) != 0)
			return LEDGER_NO_MEMORY;
		s = &lg->sections[lg->section_count];
		memset(s, 0, sizeof(*s));
		s->id = id_next(lg, LEDGER_ID_SECTION);
		if (s->id < 0)
			return broken(lg, "the batch ran out of section ids");
		lg->section_count++;
		s->event_id = ev->id;
		s->capacity = req->sections[i].capacity;
		s->remaining = s->capacity;
		s->initial_remaining = s->capacity;
		s->is_new = 1;
		s->name = req->sections[i].name;
		out->section_ids[i] = s->id;
	}
	out->status = STATUS_OK;
	out->event_id = ev->id;
	return LEDGER_OK;
}

/* ------------------------------------------------ idempotency records */

/*
 * Idempotency keys of one batch, by hash: for each key, the stored record
 * or the request of this batch that ran it. A batch of hundreds of
 * requests would otherwise compare every key with every earlier one.
 */
struct ledger_key_slot {
	const char *key; /* NULL: empty */
	size_t index;	 /* into records, or into the batch */
	int stored;	 /* 1: a stored record */
};

static uint64_t key_hash(const char *key)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (const unsigned char *p = (const unsigned char *)key; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	return h;
}

/* The slot of key: where it is, or the empty one where it would go. */
static struct ledger_key_slot *key_slot(struct ledger *lg, const char *key)
{
	size_t at = (size_t)key_hash(key) & lg->key_mask;

	while (lg->keys[at].key && strcmp(lg->keys[at].key, key) != 0)
		at = (at + 1) & lg->key_mask;
	return &lg->keys[at];
}

/* Remember key once (the first entry for a key stays). */
static void key_add(struct ledger *lg, const char *key, size_t index,
		    int stored)
{
	struct ledger_key_slot *slot = key_slot(lg, key);

	if (slot->key)
		return;
	slot->key = key;
	slot->index = index;
	slot->stored = stored;
}

static int keys_init(struct ledger *lg)
{
	size_t size = 16;

	while (size < (lg->record_count + lg->n) * 2)
		size *= 2;
	lg->keys = calloc(size, sizeof(*lg->keys));
	if (!lg->keys)
		return -1;
	lg->key_mask = size - 1;
	for (size_t r = 0; r < lg->record_count; r++)
		key_add(lg, lg->records[r].key, r, 1);
	return 0;
}

/*
 * The idempotency check for request i: answered from a stored record,
 * from an earlier request of this batch with the same key, or refused as
 * a conflict. *answered is 1 when request i needs no decision.
 */
static enum ledger_result answer_repeat(struct ledger *lg, size_t i,
					struct outcome *out, int *answered)
/* out: the batch's outcomes, all n of them */
{
	const struct request *req = lg->reqs[i];
	const struct ledger_key_slot *slot = key_slot(lg, req->idempotency_key);
	const char *fingerprint, *stored;
	int status;

	*answered = 0;
	if (!slot->key)
		return LEDGER_OK;
	*answered = 1;
	if (slot->stored) {
		const struct ledger_record *r = &lg->records[slot->index];

		fingerprint = r->fingerprint;
		stored = r->reply;
		status = r->status;
	} else {
		struct outcome *first = &out[slot->index];

		fingerprint = lg->reqs[slot->index]->fingerprint;
		/* The first of the key in this batch is rendered now: its
		 * text is what the repeat replays. */
		if (!first->reply &&
		    outcome_render(
			first, lg->reqs[slot->index]->request_id,
			request_type_name(lg->reqs[slot->index]->type)) != 0)
			return LEDGER_NO_MEMORY;
		stored = first->reply;
		status = (int)first->status;
	}
	if (strcmp(fingerprint, req->fingerprint) != 0) {
		outcome_set_error(
		    &out[i], ERROR_IDEMPOTENCY_CONFLICT,
		    "idempotency key %s was used for a different request",
		    req->idempotency_key);
		return outcome_render(&out[i], req->request_id,
				      request_type_name(req->type)) == 0
			   ? LEDGER_OK
			   : LEDGER_NO_MEMORY;
	}
	if (status < 0)
		return broken(lg,
			      "the stored status of idempotency key %s is "
			      "not one ticketd writes",
			      req->idempotency_key);
	if (outcome_replay(&out[i], stored, (enum outcome_status)status,
			   req->request_id) != 0)
		return broken(lg,
			      "the stored reply of idempotency key %s is not "
			      "a JSON object (or memory ran out)",
			      req->idempotency_key);
	return LEDGER_OK;
}

enum ledger_result ledger_decide(struct ledger *lg, struct outcome *out)
{
	if (!lg->keys && keys_init(lg) != 0)
		return LEDGER_NO_MEMORY;
	for (; lg->decided < lg->n; lg->decided++) {
		size_t i = lg->decided;
		const struct request *req = lg->reqs[i];
		enum ledger_result rc;
		int answered;

		rc = answer_repeat(lg, i, out, &answered);
		if (rc != LEDGER_OK)
			return rc;
		if (answered)
			continue;
		switch (req->type) {
		case REQUEST_CREATE_EVENT:
			rc = decide_create_event(lg, req, &out[i]);
			break;
		case REQUEST_BOOK:
		case REQUEST_HOLD:
			rc = decide_seats(lg, req, &out[i]);
			break;
		case REQUEST_CONFIRM:
		case REQUEST_RELEASE:
			rc = decide_hold_end(lg, req, &out[i]);
			break;
		case REQUEST_CANCEL:
			rc = decide_cancel(lg, req, &out[i]);
			break;
		default:
			rc = broken(lg, "request %zu has no known type", i);
			break;
		}
		if (rc != LEDGER_OK)
			return rc;
		key_add(lg, req->idempotency_key, i, 0);
	}
	return LEDGER_OK;
}
