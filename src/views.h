/*
 * views: the query endpoint's read-only SQL, each view one JSON document
 * made by PostgreSQL. Used by http.c over connections of its own.
 */
#ifndef TICKETD_VIEWS_H
#define TICKETD_VIEWS_H

#include "pg.h"

enum view {
	VIEW_EVENTS,   /* $1 after id, $2 limit */
	VIEW_EVENT,    /* $1 event id */
	VIEW_BOOKINGS, /* $1 event, $2 section, $3 customer (NULL: any),
			  $4 after id, $5 limit */
	VIEW_BOOKING,  /* $1 booking id */
	VIEW_HOLD,     /* $1 hold id */
	VIEW_REQUEST,  /* $1 request_id */
	VIEW_COUNT,
};

/* A connection for the views. NULL when out of memory. */
struct pg *views_pg_new(const char *conninfo);

/*
 * Run a view with its text parameters (NULL for SQL NULL). On PG_OK, *json
 * is the document (the caller frees it) or NULL when there is no such row;
 * otherwise errstr says why.
 */
enum pg_status views_run(struct pg *pg, enum view view,
			 const char *const *params, char **json, char *errstr,
			 size_t errstr_size)
    __attribute__((warn_unused_result));

#endif
