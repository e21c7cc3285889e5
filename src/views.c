/*
 * views: the query endpoint's read-only SQL, each view one JSON document
 * made by PostgreSQL. Every view is sent unnamed, so planned for its very
 * values: the filters of view_bookings pick different indexes. An event's
 * view reads its section rows only (booked and held are counters kept on
 * them), so it costs the same however many seats have sold.
 */
#include "views.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct pg_statement views[VIEW_COUNT] = {
    [VIEW_EVENTS] =
	{"view_events", 2,
	 "WITH page AS ("
	 " SELECT id, name, venue, starts_at FROM events"
	 " WHERE id > $1::bigint ORDER BY id LIMIT $2::int) "
	 "SELECT json_build_object("
	 " 'events', coalesce(json_agg(page ORDER BY id), '[]'::json),"
	 " 'next', CASE WHEN count(*) = $2::int THEN max(id)::text END"
	 ")::text FROM page",
	 1},
    [VIEW_EVENT] =
	{"view_event", 1,
	 "SELECT json_build_object("
	 " 'id', e.id, 'name', e.name, 'venue', e.venue,"
	 " 'starts_at', e.starts_at,"
	 " 'sections', coalesce((SELECT json_agg(json_build_object("
	 "  'id', s.id, 'name', s.name, 'capacity', s.capacity,"
	 "  'remaining', s.remaining,"
	 "  'booked', s.capacity - s.remaining - s.held, 'held', s.held,"
	 "  'version', s.version"
	 " ) ORDER BY s.id) FROM sections s WHERE s.event_id = e.id),"
	 " '[]'::json))::text "
	 "FROM events e WHERE e.id = $1::bigint",
	 1},
    [VIEW_BOOKINGS] =
	{"view_bookings", 5,
	 "WITH page AS ("
	 " SELECT id, event_id, section_id, quantity, customer, status,"
	 " hold_id, created_at, cancelled_at FROM bookings"
	 " WHERE ($1::bigint IS NULL OR event_id = $1::bigint)"
	 " AND ($2::bigint IS NULL OR section_id = $2::bigint)"
	 " AND ($3::text IS NULL OR customer = $3::text)"
	 " AND id > $4::bigint ORDER BY id LIMIT $5::int) "
	 "SELECT json_build_object("
	 " 'bookings', coalesce(json_agg(page ORDER BY id), '[]'::json),"
	 " 'next', CASE WHEN count(*) = $5::int THEN max(id)::text END"
	 ")::text FROM page",
	 1},
    [VIEW_BOOKING] =
	{"view_booking", 1,
	 "SELECT row_to_json(b)::text FROM ("
	 " SELECT id, event_id, section_id, quantity, customer, status,"
	 " hold_id, created_at, cancelled_at FROM bookings"
	 " WHERE id = $1::bigint) b",
	 1},
    [VIEW_HOLD] = {"view_hold", 1,
		   "SELECT row_to_json(h)::text FROM ("
		   " SELECT id, event_id, section_id, quantity, customer,"
		   " CASE WHEN status = 'active' AND expires_at <= now()"
		   "  THEN 'expired' ELSE status END AS status,"
		   " expires_at, created_at, ended_at FROM holds"
		   " WHERE id = $1::bigint) h",
		   1},
    [VIEW_REQUEST] =
	{"view_request", 1,
	 "SELECT json_build_object("
	 " 'request_id', request_id, 'idempotency_key', idempotency_key,"
	 " 'type', type, 'status', status, 'processed_at', processed_at,"
	 " 'reply', reply::json)::text "
	 "FROM (SELECT * FROM processed_requests"
	 "  WHERE idempotency_key = $1::text AND request_id = $1::text"
	 " UNION ALL"
	 " SELECT * FROM processed_requests"
	 "  WHERE request_id = $1::text AND request_id <> idempotency_key"
	 ") AS r ORDER BY processed_at DESC, idempotency_key LIMIT 1",
	 1},
};

struct pg *views_pg_new(const char *conninfo)
{
	return pg_new(conninfo, views, VIEW_COUNT);
}

enum pg_status views_run(struct pg *pg, enum view view,
			 const char *const *params, char **json, char *errstr,
			 size_t errstr_size)
{
	PGresult *res = NULL;
	enum pg_status rc;

	*json = NULL;
	errstr[0] = '\0';
	if (!pg_connected(pg)) {
		snprintf(errstr, errstr_size, "not connected");
		return PG_DISCONNECTED;
	}
	rc = pg_run(pg, (int)view, params, &res, errstr, errstr_size);
	if (rc != PG_OK)
		return rc;
	if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0)) {
		*json = strdup(PQgetvalue(res, 0, 0));
		if (!*json) {
			snprintf(errstr, errstr_size, "out of memory");
			rc = PG_LOCAL;
		}
	}
	PQclear(res);
	return rc;
}
