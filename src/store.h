/*
 * store: all SQL. One struct store is one PostgreSQL connection with its
 * prepared statements; it is used by one thread at a time.
 */
#ifndef TICKETD_STORE_H
#define TICKETD_STORE_H

#include "request.h"

#include <stddef.h>
#include <stdint.h>

struct store;

enum store_result {
	STORE_OK = 0,
	STORE_RETRY, /* serialization failure, deadlock, key race: run again */
	STORE_DISCONNECTED, /* the connection is gone: reconnect, run again */
	STORE_FAILED,	    /* the database refused something in the batch */
	STORE_TOO_BIG,	    /* out of a server resource (SQLSTATE class 53), or
			     * more customer locks than one batch may take: run
			     * it in halves; alone, run it again later */
};

/* What one request came to. reply_json is heap; store_outcome_clear frees it.
 */
struct store_outcome {
	enum reply_status status;
	enum request_error_code error;
	int replayed; /* answered from the idempotency record */
	char *reply_json;
};

struct store_limits {
	int max_per_customer; /* 0: no limit */
};

/* A store for conninfo, not yet connected. NULL when out of memory. */
struct store *store_new(const char *conninfo,
			const struct store_limits *limits);

/* Free st and close its connection. */
void store_free(struct store *st);

/* (Re)connect and prepare every statement. 0, or -1 with errstr. */
int store_connect(struct store *st, char *errstr, size_t errstr_size)
    __attribute__((warn_unused_result));

int store_connected(const struct store *st);

/*
 * Run the n requests as one transaction: lock the sections they touch in
 * ascending id order, read their idempotency records, decide each request
 * in order in memory, write everything in bulk, commit. On STORE_OK every
 * out[i] is filled (the caller clears them); on any other result nothing
 * was committed and out[] is left empty.
 */
enum store_result store_execute_batch(struct store *st,
				      struct request *const *reqs, size_t n,
				      struct store_outcome *out, char *errstr,
				      size_t errstr_size);

void store_outcome_clear(struct store_outcome *outcome);

/*
 * Expire up to batch_max holds whose time is up, returning their seats,
 * skipping sections another transaction has locked. *reaped is how many
 * holds ended.
 */
enum store_result store_reap_expired_holds(struct store *st, int batch_max,
					   int *reaped, char *errstr,
					   size_t errstr_size);

/* The read-only views of the query endpoint, each one JSON document. */
enum store_view {
	STORE_VIEW_EVENTS,   /* $1 after id, $2 limit */
	STORE_VIEW_EVENT,    /* $1 event id */
	STORE_VIEW_BOOKINGS, /* $1 event, $2 section, $3 customer (NULL: any),
				$4 after id, $5 limit */
	STORE_VIEW_BOOKING,  /* $1 booking id */
	STORE_VIEW_HOLD,     /* $1 hold id */
	STORE_VIEW_REQUEST,  /* $1 request_id */
	STORE_VIEW_COUNT,
};

/*
 * Run a view with its text parameters (NULL for SQL NULL). On STORE_OK,
 * *json is the document (caller frees) or NULL when there is no such row.
 */
enum store_result store_view(struct store *st, enum store_view view,
			     const char *const *params, char **json,
			     char *errstr, size_t errstr_size);

/* SELECT 1: is the database answering? */
int store_ping(struct store *st);

#endif
