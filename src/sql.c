/*
 * sql: the texts of the statements a batch transaction runs, and how each
 * is planned.
 *
 * Lookups in tables that grow without bound (holds, bookings) are planned
 * for each execution's own parameters (planned_each_time): a cached generic
 * plan made while a table was nearly empty (a fresh deployment's first
 * seconds) keeps scanning all of it as it grows, until autovacuum's next
 * ANALYZE. With sequential scans off (pg_connect) such a plan walks a whole
 * index instead, no better: asked for bookings by id against statistics
 * that call the table empty, the planner picked bookings_customer.
 *
 * The idempotency lookup is the exception: once sequential scans are off,
 * one primary-key probe per key is its only plan, whatever the statistics,
 * as long as idempotency_key is in no other index of processed_requests. So
 * it is prepared like the rest; planning it for every batch cost a tenth of
 * PostgreSQL's CPU at moderate load. The bulk writes keep their prepared,
 * cached plans too: planning them for each batch cost far more
 * (docs/benchmarks.md has both figures). Their plans too can be made on
 * stale statistics (the sections' update then reads every section once per
 * batch); each is made again after the table's next ANALYZE, which
 * sections, updated by every batch, gets from autovacuum within minutes.
 */
#include "sql.h"

/* What a write of sections returns: each row as the availability stream
 * publishes it (the columns of txn.c's read_section_states), stamped
 * with the time of the write. */
#define SECTION_STATE(t)                                                       \
	"RETURNING " t "id, " t "event_id, " t "capacity, " t "remaining, " t  \
	"held, " t "version, "                                                 \
	"(extract(epoch FROM clock_timestamp()) * 1000000)::bigint"

const struct pg_statement sql_statements[SQL_COUNT] = {
    [SQL_NOW] = {"now", 0,
		 "SELECT (extract(epoch FROM now()) * 1000000)::bigint"},
    [SQL_HOLD_SECTIONS] = {"hold_sections", 1,
			   "SELECT id, section_id FROM holds "
			   "WHERE id = ANY($1::bigint[])",
			   1},
    [SQL_BOOKING_SECTIONS] = {"booking_sections", 1,
			      "SELECT id, section_id FROM bookings "
			      "WHERE id = ANY($1::bigint[])",
			      1},
    [SQL_LOCK_SECTIONS] = {"lock_sections", 1,
			   "SELECT id, event_id, capacity, remaining, held "
			   "FROM sections WHERE id = ANY($1::bigint[]) "
			   "ORDER BY id FOR UPDATE"},
    [SQL_LOCK_HOLDS] =
	{"lock_holds", 1,
	 "SELECT id, event_id, section_id, quantity, customer, status, "
	 "(extract(epoch FROM expires_at) * 1000000)::bigint "
	 "FROM holds WHERE id = ANY($1::bigint[]) "
	 "ORDER BY id FOR UPDATE",
	 1},
    [SQL_LOCK_BOOKINGS] = {"lock_bookings", 1,
			   "SELECT id, event_id, section_id, quantity, status,"
			   " customer "
			   "FROM bookings WHERE id = ANY($1::bigint[]) "
			   "ORDER BY id FOR UPDATE",
			   1},
    /* Expired by the batch's clock ($2, microseconds since the epoch). */
    [SQL_EXPIRED_HOLDS] =
	{"expired_holds", 2,
	 "SELECT id, event_id, section_id, quantity, customer, status, "
	 "(extract(epoch FROM expires_at) * 1000000)::bigint "
	 "FROM holds WHERE section_id = $1::bigint "
	 "AND status = 'active' "
	 "AND expires_at <= timestamptz 'epoch' + $2::bigint * "
	 "interval '1 microsecond' "
	 "ORDER BY id FOR UPDATE",
	 1},
    /* One index probe per distinct key, whatever the statistics say: as
     * "idempotency_key = ANY($1)" the planner scanned the whole table for
     * every batch until it had grown large, and that with the section
     * locked (docs/benchmarks.md). */
    [SQL_PROCESSED] = {"processed", 1,
		       "SELECT p.idempotency_key, p.fingerprint, p.status,"
		       " p.reply "
		       "FROM (SELECT DISTINCT unnest($1::text[])) AS k(key) "
		       "CROSS JOIN LATERAL (SELECT * FROM processed_requests"
		       " WHERE idempotency_key = k.key LIMIT 1) AS p"},
    [SQL_EVENTS_EXIST] = {"events_exist", 1,
			  "SELECT id FROM events "
			  "WHERE id = ANY($1::bigint[])"},
    /* With max_per_customer: one customer's books, holds and confirms in
     * one event are decided by one batch at a time, whichever section or
     * process it runs in. Without this, two workers booking her into two
     * sections of an event both read her seats before either committed, and
     * both passed the limit. A transaction-scoped advisory lock per event
     * (hashint8) and one of 64 buckets of customers, "td" in the high
     * bytes of the second key (another application's two-key advisory
     * locks on those values would wait with ours). Every batch takes them
     * after all its row locks, ascending, so no two batches wait for each
     * other in a cycle; at most 64 an event, LEDGER_CUSTOMER_LOCKS_MAX a
     * batch.
     * Two batches of 5 customers of one event share a bucket about one
     * time in three; a batch of some 270 holds nearly all 64, so large
     * batches of one event run one at a time. Relies on READ COMMITTED:
     * the seats are read after the locks, with a fresh snapshot. */
    [SQL_LOCK_CUSTOMERS] =
	{"lock_customers", 2,
	 "SELECT pg_advisory_xact_lock(k.event_key, k.bucket) FROM ("
	 " SELECT DISTINCT hashint8(e) AS event_key,"
	 " x'74640000'::int | (hashtext(c) & 63) AS bucket"
	 " FROM unnest($1::bigint[], $2::text[]) AS u(e, c)"
	 " ORDER BY 1, 2) AS k"},
    /* The seats each (event, customer) pair has, one row per pair by its
     * position in the arrays: confirmed bookings and live holds, live by
     * the clock read now, after the customer locks, which the batch then
     * decides by (its start may be older than a commit it waited for).
     * "event_id + 0" keeps the bookings side on bookings_customer: ANDed
     * with bookings_event_id, the planner walked all of an event's
     * bookings for every pair. */
    [SQL_CUSTOMER_SEATS] =
	{"customer_seats", 2,
	 "WITH clock AS MATERIALIZED (SELECT clock_timestamp() AS t) "
	 "SELECT k.i, coalesce(sum(s.quantity), 0)::bigint,"
	 " (extract(epoch FROM (SELECT t FROM clock)) * 1000000)::bigint "
	 "FROM unnest($1::bigint[], $2::text[]) WITH ORDINALITY"
	 " AS k(event_id, customer, i) "
	 "LEFT JOIN LATERAL ("
	 " SELECT quantity FROM bookings"
	 " WHERE customer = k.customer AND event_id + 0 = k.event_id"
	 " AND status = 'confirmed'"
	 " UNION ALL"
	 " SELECT quantity FROM holds"
	 " WHERE customer = k.customer AND event_id = k.event_id"
	 " AND status = 'active' AND expires_at > (SELECT t FROM clock)"
	 ") AS s ON true GROUP BY k.i",
	 1},
    [SQL_NEXT_EVENT_IDS] = {"next_event_ids", 1,
			    "SELECT nextval('events_id_seq') "
			    "FROM generate_series(1, $1::int)"},
    [SQL_NEXT_SECTION_IDS] = {"next_section_ids", 1,
			      "SELECT nextval('sections_id_seq') "
			      "FROM generate_series(1, $1::int)"},
    [SQL_NEXT_HOLD_IDS] = {"next_hold_ids", 1,
			   "SELECT nextval('holds_id_seq') "
			   "FROM generate_series(1, $1::int)"},
    [SQL_NEXT_BOOKING_IDS] = {"next_booking_ids", 1,
			      "SELECT nextval('bookings_id_seq') "
			      "FROM generate_series(1, $1::int)"},
    [SQL_INSERT_EVENTS] =
	{"insert_events", 4,
	 "INSERT INTO events (id, name, venue, starts_at) "
	 "SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], "
	 "$4::timestamptz[])"},
    /* New and changed sections come back as the availability stream
     * publishes them, version and all (see SECTION_STATE). */
    [SQL_INSERT_SECTIONS] =
	{"insert_sections", 5,
	 "INSERT INTO sections (id, event_id, name, capacity, remaining) "
	 "SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], "
	 "$4::int[], $5::int[]) " SECTION_STATE("sections.")},
    /* version rises with every change, in the same UPDATE: a reader of
     * the availability stream keeps the highest it has seen. */
    [SQL_UPDATE_SECTIONS] =
	{"update_sections", 3,
	 "UPDATE sections s SET remaining = v.remaining, held = v.held, "
	 "version = s.version + 1 "
	 "FROM unnest($1::bigint[], $2::int[], $3::int[]) "
	 "AS v(id, remaining, held) "
	 "WHERE s.id = v.id " SECTION_STATE("s.")},
    [SQL_INSERT_HOLDS] =
	{"insert_holds", 9,
	 "INSERT INTO holds (id, event_id, section_id, quantity, customer,"
	 " status, expires_at, request_key, ended_at) "
	 "SELECT id, event_id, section_id, quantity, customer, status,"
	 " timestamptz 'epoch' + expires_us * interval '1 microsecond',"
	 " request_key,"
	 " CASE WHEN status = 'active' THEN NULL"
	 " ELSE timestamptz 'epoch' + ended_us * interval '1 microsecond' END "
	 "FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::int[],"
	 " $5::text[], $6::text[], $7::bigint[], $8::text[], $9::bigint[]) "
	 "AS v(id, event_id, section_id, quantity, customer, status,"
	 " expires_us, request_key, ended_us)"},
    /* ended_at by the batch's clock, the one it judged expiry by. */
    [SQL_UPDATE_HOLDS] = {"update_holds", 3,
			  "UPDATE holds h SET status = v.status, "
			  "ended_at = timestamptz 'epoch' + v.ended_us * "
			  "interval '1 microsecond' "
			  "FROM unnest($1::bigint[], $2::text[], $3::bigint[]) "
			  "AS v(id, status, ended_us) WHERE h.id = v.id",
			  1},
    [SQL_INSERT_BOOKINGS] =
	{"insert_bookings", 7,
	 "INSERT INTO bookings (id, event_id, section_id, quantity,"
	 " customer, hold_id, request_key) "
	 "SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[],"
	 " $4::int[], $5::text[], $6::bigint[], $7::text[])"},
    [SQL_CANCEL_BOOKINGS] = {"cancel_bookings", 1,
			     "UPDATE bookings SET status = 'cancelled', "
			     "cancelled_at = now() "
			     "WHERE id = ANY($1::bigint[])",
			     1},
    [SQL_INSERT_PROCESSED] =
	{"insert_processed", 6,
	 "INSERT INTO processed_requests (idempotency_key, request_id,"
	 " type, fingerprint, status, reply) "
	 "SELECT * FROM unnest($1::text[], $2::text[], $3::text[],"
	 " $4::text[], $5::text[], $6::text[])"},
};
