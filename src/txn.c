/*
 * txn: one batch of requests as one PostgreSQL transaction.
 *
 * Its shape, whatever the request types:
 *   1. find the sections the batch touches (holds and bookings named by id
 *      are looked up first: their section never changes);
 *   2. lock those sections, ascending id (no deadlock between batches);
 *   3. lock the holds and bookings named, read the idempotency records;
 *      with max_per_customer, lock the batch's customers and read their
 *      seats;
 *   4. the ledger decides each request in arrival order, in memory;
 *   5. write events, holds, bookings, sections and idempotency records
 *      with one statement per table (arrays + unnest); commit once. The
 *      reply texts are rendered while the server inserts the bookings.
 * Steps 2-3 go to the server as one pipeline, step 5 with its COMMIT as
 * another: two round trips whatever the batch's size, one more when it
 * names holds or bookings by id, one more with max_per_customer, one more
 * when a request names an unknown section, and one per section whose
 * expired holds a request needs (docs/design.md).
 */
#include "txn.h"

#include "pgarray.h"
#include "sql.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pg *txn_pg_new(const char *conninfo)
{
	return pg_new(conninfo, sql_statements, SQL_COUNT);
}

/* errstr for a failure of ours; PG_LOCAL. */
static enum pg_status local_failure(char *errstr, size_t errstr_size,
				    const char *why)
{
	snprintf(errstr, errstr_size, "%s", why);
	return PG_LOCAL;
}

/* ------------------------------------------------------ reading phase */

/* What the batch names: sections (of books and holds), holds (confirm,
 * release) and bookings (cancel), and every idempotency key. */
struct batch_names {
	struct pgarray sections, holds, bookings, keys;
};

static void names_collect(struct batch_names *names,
			  struct request *const *reqs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct request *req = reqs[i];

		switch (req->type) {
		case REQUEST_BOOK:
		case REQUEST_HOLD:
			pgarray_int(&names->sections, req->section_id);
			break;
		case REQUEST_CONFIRM:
		case REQUEST_RELEASE:
			pgarray_int(&names->holds, req->hold_id);
			break;
		case REQUEST_CANCEL:
			pgarray_int(&names->bookings, req->booking_id);
			break;
		default:
			break;
		}
		pgarray_text(&names->keys, req->idempotency_key);
	}
}

static void names_free(struct batch_names *names)
{
	pgarray_free(&names->sections);
	pgarray_free(&names->holds);
	pgarray_free(&names->bookings);
	pgarray_free(&names->keys);
}

/* Which section each named hold or booking lives in (a row's section
 * never changes): added to names->sections. */
static enum pg_status read_owner_sections(struct pg *pg,
					  struct batch_names *names,
					  char *errstr, size_t errstr_size)
{
	const struct {
		struct pgarray *ids;
		enum sql_statement which;
	} owners[] = {{&names->holds, SQL_HOLD_SECTIONS},
		      {&names->bookings, SQL_BOOKING_SECTIONS}};

	for (size_t k = 0; k < sizeof(owners) / sizeof(owners[0]); k++) {
		const char *params[1] = {pgarray_done(owners[k].ids)};
		PGresult *res = NULL;
		enum pg_status rc;

		if (owners[k].ids->count == 0)
			continue;
		if (!params[0])
			return local_failure(errstr, errstr_size,
					     "out of memory");
		rc = pg_run(pg, owners[k].which, params, &res, errstr,
			    errstr_size);
		if (rc != PG_OK)
			return rc;
		for (int r = 0; r < PQntuples(res); r++)
			pgarray_int(&names->sections, pg_int(res, r, 1));
		PQclear(res);
	}
	return PG_OK;
}

/* Queue a statement whose one parameter is an array; its result's index. */
static size_t send_array(struct pg_pipeline *p, enum sql_statement which,
			 struct pgarray *array)
{
	const char *params[1] = {pgarray_done(array)};

	if (!params[0]) {
		pg_pipeline_fail(p, "out of memory");
		return 0;
	}
	return pg_pipeline_send(p, (int)which, params);
}

/* Rows as SQL_LOCK_HOLDS and SQL_EXPIRED_HOLDS give them; 0 or -1. */
static int feed_holds(struct ledger *lg, const PGresult *res)
{
	for (int r = 0; r < PQntuples(res); r++) {
		int status = ledger_hold_status_parse(PQgetvalue(res, r, 5));

		if (status < 0 ||
		    ledger_add_hold(lg, pg_int(res, r, 0), pg_int(res, r, 1),
				    pg_int(res, r, 2), (int)pg_int(res, r, 3),
				    PQgetvalue(res, r, 4),
				    (enum ledger_hold_status)status,
				    pg_int(res, r, 6)) != 0)
			return -1;
	}
	return 0;
}

/* The results of the read pipeline, into the ledger; 0 or -1. */
static int feed_reads(struct ledger *lg, const PGresult *sections,
		      const PGresult *holds, const PGresult *bookings,
		      const PGresult *records)
{
	for (int r = 0; sections && r < PQntuples(sections); r++) {
		if (ledger_add_section(lg, pg_int(sections, r, 0),
				       pg_int(sections, r, 1),
				       (int)pg_int(sections, r, 2),
				       (int)pg_int(sections, r, 3),
				       (int)pg_int(sections, r, 4)) != 0)
			return -1;
	}
	if (holds && feed_holds(lg, holds) != 0)
		return -1;
	for (int r = 0; bookings && r < PQntuples(bookings); r++) {
		if (ledger_add_booking(
			lg, pg_int(bookings, r, 0), pg_int(bookings, r, 1),
			pg_int(bookings, r, 2), (int)pg_int(bookings, r, 3),
			strcmp(PQgetvalue(bookings, r, 4), "cancelled") == 0,
			PQgetvalue(bookings, r, 5)) != 0)
			return -1;
	}
	for (int r = 0; r < PQntuples(records); r++) {
		if (ledger_add_record(lg, PQgetvalue(records, r, 0),
				      PQgetvalue(records, r, 1),
				      PQgetvalue(records, r, 2),
				      PQgetvalue(records, r, 3)) != 0)
			return -1;
	}
	return 0;
}

/* The ids a sequence handed out (res as SQL_NEXT_*_IDS); 0 or -1. */
static int feed_ids(struct ledger *lg, enum ledger_id_kind kind,
		    const PGresult *res, size_t wanted)
{
	int64_t *ids;
	int rc;

	if ((size_t)PQntuples(res) != wanted)
		return -1;
	ids = malloc(wanted * sizeof(*ids));
	if (!ids)
		return -1;
	for (size_t i = 0; i < wanted; i++)
		ids[i] = pg_int(res, (int)i, 0);
	rc = ledger_add_ids(lg, kind, ids, wanted);
	free(ids);
	return rc;
}

/*
 * Steps 1 to 3 (but the customers): find the sections (a round trip of
 * its own only when holds or bookings are named by id), then, in one
 * pipeline: BEGIN, the clock, the ids the batch may need, the section
 * locks (ascending id), the locks on the named holds and bookings, and
 * the idempotency records. The records come last: read after the locks,
 * they see every batch that committed before this one got the sections.
 */
static enum pg_status read_phase(struct pg *pg, struct ledger *lg, char *errstr,
				 size_t errstr_size)
{
	static const enum sql_statement next_ids[LEDGER_ID_KINDS] = {
	    [LEDGER_ID_EVENT] = SQL_NEXT_EVENT_IDS,
	    [LEDGER_ID_SECTION] = SQL_NEXT_SECTION_IDS,
	    [LEDGER_ID_HOLD] = SQL_NEXT_HOLD_IDS,
	    [LEDGER_ID_BOOKING] = SQL_NEXT_BOOKING_IDS};
	struct batch_names names = {PGARRAY_INIT, PGARRAY_INIT, PGARRAY_INIT,
				    PGARRAY_INIT};
	struct pg_pipeline p;
	size_t wanted[LEDGER_ID_KINDS], at_ids[LEDGER_ID_KINDS] = {0};
	size_t at_now, at_sections = 0, at_holds = 0, at_bookings = 0,
		       at_records;
	char count_text[LEDGER_ID_KINDS][24];
	enum pg_status rc;

	ledger_ids_wanted(lg->reqs, lg->n, wanted);
	names_collect(&names, lg->reqs, lg->n);
	rc = read_owner_sections(pg, &names, errstr, errstr_size);
	if (rc != PG_OK)
		goto done;
	if (pg_pipeline_start(&p, pg, errstr, errstr_size) != 0) {
		rc = PG_DISCONNECTED;
		goto done;
	}
	/* Read committed, whatever the database's default: each statement
	 * sees what committed before it started, which the customer locks
	 * rely on (SQL_LOCK_CUSTOMERS). */
	pg_pipeline_command(&p, "BEGIN ISOLATION LEVEL READ COMMITTED");
	at_now = pg_pipeline_send(&p, SQL_NOW, NULL);
	for (int k = 0; k < LEDGER_ID_KINDS; k++) {
		const char *params[1] = {count_text[k]};

		if (wanted[k] == 0)
			continue;
		snprintf(count_text[k], sizeof(count_text[k]), "%zu",
			 wanted[k]);
		at_ids[k] = pg_pipeline_send(&p, next_ids[k], params);
	}
	if (names.sections.count)
		at_sections =
		    send_array(&p, SQL_LOCK_SECTIONS, &names.sections);
	if (names.holds.count)
		at_holds = send_array(&p, SQL_LOCK_HOLDS, &names.holds);
	if (names.bookings.count)
		at_bookings =
		    send_array(&p, SQL_LOCK_BOOKINGS, &names.bookings);
	at_records = send_array(&p, SQL_PROCESSED, &names.keys);
	rc = pg_pipeline_run(&p, errstr, errstr_size);
	if (rc != PG_OK)
		goto done;

	lg->now_us = pg_int(p.results[at_now], 0, 0);
	for (int k = 0; k < LEDGER_ID_KINDS && rc == PG_OK; k++) {
		if (wanted[k] && feed_ids(lg, (enum ledger_id_kind)k,
					  p.results[at_ids[k]], wanted[k]) != 0)
			rc = local_failure(errstr, errstr_size,
					   "cannot take the batch's ids");
	}
	if (rc == PG_OK &&
	    feed_reads(lg, names.sections.count ? p.results[at_sections] : NULL,
		       names.holds.count ? p.results[at_holds] : NULL,
		       names.bookings.count ? p.results[at_bookings] : NULL,
		       p.results[at_records]) != 0)
		rc = local_failure(errstr, errstr_size,
				   "out of memory reading the batch");
	pg_pipeline_clear(&p);
done:
	names_free(&names);
	return rc;
}

/* Which events exist, for telling EVENT_NOT_FOUND from SECTION_NOT_FOUND:
 * a round trip only when a request names a section not locked. */
static enum pg_status read_events(struct pg *pg, struct ledger *lg,
				  char *errstr, size_t errstr_size)
{
	struct pgarray ids = PGARRAY_INIT;
	int64_t *wanted = malloc((lg->n ? lg->n : 1) * sizeof(*wanted));
	const char *params[1];
	PGresult *res = NULL;
	enum pg_status rc = PG_OK;
	size_t count;

	if (!wanted)
		return local_failure(errstr, errstr_size, "out of memory");
	count = ledger_events_to_check(lg, wanted);
	for (size_t i = 0; i < count; i++)
		pgarray_int(&ids, wanted[i]);
	free(wanted);
	if (count == 0)
		goto done;
	params[0] = pgarray_done(&ids);
	if (!params[0]) {
		rc = local_failure(errstr, errstr_size, "out of memory");
		goto done;
	}
	rc = pg_run(pg, SQL_EVENTS_EXIST, params, &res, errstr, errstr_size);
	for (int r = 0; rc == PG_OK && r < PQntuples(res); r++) {
		if (ledger_add_event(lg, pg_int(res, r, 0)) != 0)
			rc =
			    local_failure(errstr, errstr_size, "out of memory");
	}
	PQclear(res);
done:
	pgarray_free(&ids);
	return rc;
}

/* The rows of SQL_CUSTOMER_SEATS: seats by the pair's position, and the
 * clock the batch decides by from now on. */
static enum pg_status feed_customer_seats(struct ledger *lg,
					  const PGresult *res, char *errstr,
					  size_t errstr_size)
{
	if ((size_t)PQntuples(res) != lg->customer_count) {
		snprintf(errstr, errstr_size,
			 "customer_seats: %d rows for %zu pairs",
			 PQntuples(res), lg->customer_count);
		return PG_LOCAL;
	}
	lg->now_us = pg_int(res, 0, 2);
	for (int r = 0; r < PQntuples(res); r++) {
		int64_t at = pg_int(res, r, 0);

		if (at < 1 || (size_t)at > lg->customer_count) {
			snprintf(errstr, errstr_size,
				 "customer_seats: row for pair %" PRId64
				 " of %zu",
				 at, lg->customer_count);
			return PG_LOCAL;
		}
		lg->customers[at - 1].seats = pg_int(res, r, 1);
	}
	return PG_OK;
}

/*
 * With max_per_customer: lock the (event, customer) pairs the batch books,
 * holds or confirms for (SQL_LOCK_CUSTOMERS), then read the seats each
 * already has and the clock, in one round trip whatever the batch's size.
 */
static enum pg_status read_customer_seats(struct pg *pg, struct ledger *lg,
					  char *errstr, size_t errstr_size)
{
	struct pgarray events = PGARRAY_INIT, customers = PGARRAY_INIT;
	const char *params[2];
	struct pg_pipeline p;
	enum pg_status rc;
	size_t locks;

	if (ledger_collect_customers(lg) != 0)
		return local_failure(errstr, errstr_size, "out of memory");
	if (lg->customer_count == 0)
		return PG_OK;
	locks = ledger_customer_locks(lg);
	if (locks > LEDGER_CUSTOMER_LOCKS_MAX) {
		snprintf(errstr, errstr_size,
			 "the batch needs up to %zu customer locks, more than "
			 "%d",
			 locks, LEDGER_CUSTOMER_LOCKS_MAX);
		return PG_TOO_BIG;
	}
	for (size_t i = 0; i < lg->customer_count; i++) {
		pgarray_int(&events, lg->customers[i].event_id);
		pgarray_text(&customers, lg->customers[i].customer);
	}
	params[0] = pgarray_done(&events);
	params[1] = pgarray_done(&customers);
	if (!params[0] || !params[1]) {
		rc = local_failure(errstr, errstr_size, "out of memory");
	} else if (pg_pipeline_start(&p, pg, errstr, errstr_size) != 0) {
		rc = PG_DISCONNECTED;
	} else {
		size_t at;

		pg_pipeline_send(&p, SQL_LOCK_CUSTOMERS, params);
		at = pg_pipeline_send(&p, SQL_CUSTOMER_SEATS, params);
		rc = pg_pipeline_run(&p, errstr, errstr_size);
		if (rc == PG_OK)
			rc = feed_customer_seats(lg, p.results[at], errstr,
						 errstr_size);
		pg_pipeline_clear(&p);
	}
	pgarray_free(&events);
	pgarray_free(&customers);
	return rc;
}

/* ----------------------------------------------------- deciding phase */

/* The active holds of a section that expired by the batch's clock, for a
 * request that finds too few seats (the section is locked). */
static enum pg_status read_expired_holds(struct pg *pg, struct ledger *lg,
					 int64_t section_id, char *errstr,
					 size_t errstr_size)
{
	char id[24], now[24];
	const char *params[2] = {id, now};
	PGresult *res = NULL;
	enum pg_status rc;

	snprintf(id, sizeof(id), "%" PRId64, section_id);
	snprintf(now, sizeof(now), "%" PRId64, lg->now_us);
	rc = pg_run(pg, SQL_EXPIRED_HOLDS, params, &res, errstr, errstr_size);
	if (rc != PG_OK)
		return rc;
	if (feed_holds(lg, res) != 0)
		rc = local_failure(errstr, errstr_size,
				   "out of memory reading expired holds");
	PQclear(res);
	ledger_expired_given(lg, section_id);
	return rc;
}

/* Step 4: the ledger decides, fetching what it asks for. */
static enum pg_status decide(struct pg *pg, struct ledger *lg,
			     struct outcome *out, char *errstr,
			     size_t errstr_size)
{
	for (;;) {
		enum pg_status rc;

		switch (ledger_decide(lg, out)) {
		case LEDGER_OK:
			return PG_OK;
		case LEDGER_NEED_EXPIRED:
			rc = read_expired_holds(pg, lg, lg->needed_section,
						errstr, errstr_size);
			if (rc != PG_OK)
				return rc;
			continue;
		case LEDGER_RETRY:
			snprintf(errstr, errstr_size, "%s", lg->why);
			return PG_RETRY;
		case LEDGER_NO_MEMORY:
			return local_failure(errstr, errstr_size,
					     "out of memory deciding");
		case LEDGER_BROKEN:
			return local_failure(errstr, errstr_size, lg->why);
		}
		return local_failure(errstr, errstr_size, "ledger: no result");
	}
}

/* ------------------------------------------------------- writing phase */

/* Most parameters a statement of arrays takes (SQL_INSERT_HOLDS: 9). */
#define ARRAY_PARAMS_MAX 12

/* Queue one write on the write pipeline; its outcome comes with the
 * COMMIT's. */
static void send_arrays(struct pg_pipeline *writes, enum sql_statement which,
			struct pgarray *arrays, int count)
{
	const char *params[ARRAY_PARAMS_MAX];

	if (count > ARRAY_PARAMS_MAX) {
		pg_pipeline_fail(writes, "too many array parameters");
		return;
	}
	for (int k = 0; k < count; k++) {
		params[k] = pgarray_done(&arrays[k]);
		if (!params[k]) {
			pg_pipeline_fail(writes, "out of memory");
			return;
		}
	}
	pg_pipeline_send(writes, (int)which, params);
}

/* The events and sections the batch creates; the index of the sections'
 * insert among the pipeline's results, or -1 when there is none. */
static long write_events(const struct ledger *lg, struct pg_pipeline *writes)
{
	struct pgarray ev[4] = {PGARRAY_INIT, PGARRAY_INIT, PGARRAY_INIT,
				PGARRAY_INIT};
	struct pgarray sec[5] = {PGARRAY_INIT, PGARRAY_INIT, PGARRAY_INIT,
				 PGARRAY_INIT, PGARRAY_INIT};

	long at;

	if (lg->event_count == 0)
		return -1;
	for (size_t i = 0; i < lg->event_count; i++) {
		const struct request *req = lg->events[i].req;

		pgarray_int(&ev[0], lg->events[i].id);
		pgarray_text(&ev[1], req->name);
		pgarray_text(&ev[2], req->venue[0] ? req->venue : NULL);
		pgarray_text(&ev[3], req->starts_at[0] ? req->starts_at : NULL);
	}
	for (size_t i = 0; i < lg->section_count; i++) {
		const struct ledger_section *s = &lg->sections[i];

		if (!s->is_new)
			continue;
		pgarray_int(&sec[0], s->id);
		pgarray_int(&sec[1], s->event_id);
		pgarray_text(&sec[2], s->name);
		pgarray_int(&sec[3], s->capacity);
		pgarray_int(&sec[4], s->remaining);
	}
	send_arrays(writes, SQL_INSERT_EVENTS, ev, 4);
	at = (long)writes->count;
	send_arrays(writes, SQL_INSERT_SECTIONS, sec, 5);
	pgarray_free_all(ev, 4);
	pgarray_free_all(sec, 5);
	return at;
}

/* The changed sections' new remaining and held; the index of the update
 * among the pipeline's results, or -1 when nothing changed. */
static long write_sections(const struct ledger *lg, struct pg_pipeline *writes)
{
	struct pgarray a[3] = {PGARRAY_INIT, PGARRAY_INIT, PGARRAY_INIT};
	long at = -1;

	for (size_t i = 0; i < lg->section_count; i++) {
		const struct ledger_section *s = &lg->sections[i];

		if (s->is_new || (s->remaining == s->initial_remaining &&
				  s->held == s->initial_held))
			continue;
		pgarray_int(&a[0], s->id);
		pgarray_int(&a[1], s->remaining);
		pgarray_int(&a[2], s->held);
	}
	if (a[0].count) {
		at = (long)writes->count;
		send_arrays(writes, SQL_UPDATE_SECTIONS, a, 3);
	}
	pgarray_free_all(a, 3);
	return at;
}

/* Holds ended in the batch get ended_at from the clock the batch judged
 * them by, not the transaction's start. */
static void write_holds(const struct ledger *lg, struct pg_pipeline *writes)
{
	struct pgarray ins[9], upd[3];

	for (int k = 0; k < 9; k++)
		ins[k] = (struct pgarray)PGARRAY_INIT;
	for (int k = 0; k < 3; k++)
		upd[k] = (struct pgarray)PGARRAY_INIT;
	for (size_t i = 0; i < lg->hold_count; i++) {
		const struct ledger_hold *h = &lg->holds[i];
		const char *status = ledger_hold_status_name(h->status);

		if (h->is_new) {
			pgarray_int(&ins[0], h->id);
			pgarray_int(&ins[1], h->event_id);
			pgarray_int(&ins[2], h->section_id);
			pgarray_int(&ins[3], h->quantity);
			pgarray_text(&ins[4], h->customer);
			pgarray_text(&ins[5], status);
			pgarray_int(&ins[6], h->expires_us);
			pgarray_text(&ins[7], h->request_key);
			pgarray_int(&ins[8], lg->now_us);
		} else if (h->status != h->initial_status) {
			pgarray_int(&upd[0], h->id);
			pgarray_text(&upd[1], status);
			pgarray_int(&upd[2], lg->now_us);
		}
	}
	if (ins[0].count)
		send_arrays(writes, SQL_INSERT_HOLDS, ins, 9);
	if (upd[0].count)
		send_arrays(writes, SQL_UPDATE_HOLDS, upd, 3);
	pgarray_free_all(ins, 9);
	pgarray_free_all(upd, 3);
}

static void write_bookings(const struct ledger *lg, struct pg_pipeline *writes)
{
	struct pgarray ins[7], cancelled = PGARRAY_INIT;

	for (int k = 0; k < 7; k++)
		ins[k] = (struct pgarray)PGARRAY_INIT;
	for (size_t i = 0; i < lg->booking_count; i++) {
		const struct ledger_booking *bk = &lg->bookings[i];

		if (bk->is_new) {
			pgarray_int(&ins[0], bk->id);
			pgarray_int(&ins[1], bk->event_id);
			pgarray_int(&ins[2], bk->section_id);
			pgarray_int(&ins[3], bk->quantity);
			pgarray_text(&ins[4], bk->customer);
			if (bk->hold_id > 0)
				pgarray_int(&ins[5], bk->hold_id);
			else
				pgarray_text(&ins[5], NULL);
			pgarray_text(&ins[6], bk->request_key);
		} else if (bk->cancelled != bk->initial_cancelled) {
			pgarray_int(&cancelled, bk->id);
		}
	}
	/* New bookings that were cancelled in the same batch are inserted
	 * then cancelled, like two batches would. */
	for (size_t i = 0; i < lg->booking_count; i++) {
		if (lg->bookings[i].is_new && lg->bookings[i].cancelled)
			pgarray_int(&cancelled, lg->bookings[i].id);
	}
	if (ins[0].count)
		send_arrays(writes, SQL_INSERT_BOOKINGS, ins, 7);
	if (cancelled.count)
		send_arrays(writes, SQL_CANCEL_BOOKINGS, &cancelled, 1);
	pgarray_free_all(ins, 7);
	pgarray_free(&cancelled);
}

/* One idempotency record per request that ran; every reply is rendered
 * by now. */
static void write_records(struct request *const *reqs, size_t n,
			  const struct outcome *out, struct pg_pipeline *writes)
{
	struct pgarray a[6];

	for (int k = 0; k < 6; k++)
		a[k] = (struct pgarray)PGARRAY_INIT;
	for (size_t i = 0; i < n; i++) {
		/* Replays and conflicts add nothing: the record is there. */
		if (out[i].replayed ||
		    out[i].error == ERROR_IDEMPOTENCY_CONFLICT)
			continue;
		pgarray_text(&a[0], reqs[i]->idempotency_key);
		pgarray_text(&a[1], reqs[i]->request_id);
		pgarray_text(&a[2], request_type_name(reqs[i]->type));
		pgarray_text(&a[3], reqs[i]->fingerprint);
		pgarray_text(&a[4], outcome_status_name(out[i].status));
		pgarray_text(&a[5], out[i].reply);
	}
	if (a[0].count)
		send_arrays(writes, SQL_INSERT_PROCESSED, a, 6);
	pgarray_free_all(a, 6);
}

/*
 * The sections the batch created and changed, as the writes returned them
 * (columns of sql.c's SECTION_STATE). Committed already: a lack of memory
 * here only costs their availability message, which the section's next
 * change supersedes.
 */
static void read_section_states(struct txn_changes *changes,
				const PGresult *created,
				const PGresult *updated)
{
	const PGresult *results[2] = {created, updated};
	size_t rows = 0;

	changes->count = 0;
	for (int k = 0; k < 2; k++)
		rows += results[k] ? (size_t)PQntuples(results[k]) : 0;
	if (rows == 0)
		return;
	changes->sections = calloc(rows, sizeof(*changes->sections));
	if (!changes->sections)
		return;
	for (int k = 0; k < 2; k++) {
		for (int r = 0; results[k] && r < PQntuples(results[k]); r++) {
			struct section_state *st =
			    &changes->sections[changes->count++];

			st->section_id = pg_int(results[k], r, 0);
			st->event_id = pg_int(results[k], r, 1);
			st->capacity = (int)pg_int(results[k], r, 2);
			st->remaining = (int)pg_int(results[k], r, 3);
			st->held = (int)pg_int(results[k], r, 4);
			st->version = pg_int(results[k], r, 5);
			st->at_us = pg_int(results[k], r, 6);
		}
	}
}

void txn_changes_clear(struct txn_changes *changes)
{
	free(changes->sections);
	changes->sections = NULL;
	changes->count = 0;
	changes->commit_unknown = 0;
}

/*
 * Step 5: every write of the batch and its COMMIT in one pipeline. A write
 * that fails aborts the rest: the COMMIT never runs and the caller rolls
 * back.
 */
static enum pg_status write_phase(struct pg *pg, const struct ledger *lg,
				  struct outcome *out,
				  struct txn_changes *changes, char *errstr,
				  size_t errstr_size)
{
	struct pg_pipeline writes;
	enum pg_status rc;
	long at_new, at_changed;
	int commit_sent;

	if (pg_pipeline_start(&writes, pg, errstr, errstr_size) != 0)
		return PG_DISCONNECTED;
	at_new = write_events(lg, &writes);
	/* Holds and bookings before the sections' new remaining: their
	 * foreign key checks then find the section rows this transaction
	 * locked FOR UPDATE, and have nothing to lock or log. */
	write_holds(lg, &writes);
	write_bookings(lg, &writes);
	at_changed = write_sections(lg, &writes);
	/* The server inserts the bookings while the replies are rendered:
	 * the idempotency records that carry them go last. */
	pg_pipeline_push(&writes);
	for (size_t i = 0; i < lg->n && !writes.broken; i++) {
		if (!out[i].reply &&
		    outcome_render(&out[i], lg->reqs[i]->request_id,
				   request_type_name(lg->reqs[i]->type)) != 0)
			pg_pipeline_fail(&writes, "out of memory");
	}
	write_records(lg->reqs, lg->n, out, &writes);
	pg_pipeline_command(&writes, "COMMIT");
	commit_sent = !writes.broken;
	rc = pg_pipeline_run(&writes, errstr, errstr_size);
	/* The server may have committed before the connection went (a
	 * primary killed while its standby already had the commit): only a
	 * second run can tell. */
	if (rc == PG_DISCONNECTED && commit_sent)
		changes->commit_unknown = 1;
	if (rc == PG_OK)
		read_section_states(
		    changes, at_new >= 0 ? writes.results[at_new] : NULL,
		    at_changed >= 0 ? writes.results[at_changed] : NULL);
	pg_pipeline_clear(&writes);
	return rc;
}

enum pg_status txn_execute(struct pg *pg, const struct ledger_limits *limits,
			   struct request *const *reqs, size_t n,
			   struct outcome *out, struct txn_changes *changes,
			   char *errstr, size_t errstr_size)
{
	struct ledger lg;
	enum pg_status rc;

	errstr[0] = '\0';
	if (!pg_connected(pg)) {
		snprintf(errstr, errstr_size, "not connected");
		return PG_DISCONNECTED;
	}
	ledger_init(&lg, limits, reqs, n);
	if ((rc = read_phase(pg, &lg, errstr, errstr_size)) != PG_OK ||
	    (rc = read_events(pg, &lg, errstr, errstr_size)) != PG_OK ||
	    (rc = read_customer_seats(pg, &lg, errstr, errstr_size)) != PG_OK ||
	    (rc = decide(pg, &lg, out, errstr, errstr_size)) != PG_OK ||
	    (rc = write_phase(pg, &lg, out, changes, errstr, errstr_size)) !=
		PG_OK)
		goto fail;
	ledger_free(&lg);
	return PG_OK;

fail:
	/* Whatever failed, no transaction may stay open. */
	pg_rollback(pg);
	for (size_t i = 0; i < n; i++)
		outcome_clear(&out[i]);
	ledger_free(&lg);
	return rc;
}
