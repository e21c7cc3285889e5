/*
 * route: which view of the query endpoint a URL asks for, and its ids and
 * page sizes, read strictly. Pure: unit-tested and fuzzed on its own.
 */
#ifndef TICKETD_ROUTE_H
#define TICKETD_ROUTE_H

#include <stddef.h>
#include <stdint.h>

enum route {
	ROUTE_NOT_FOUND,
	ROUTE_EVENTS,
	ROUTE_EVENT,
	ROUTE_BOOKINGS,
	ROUTE_BOOKING,
	ROUTE_HOLD,
	ROUTE_REQUEST,
	ROUTE_HEALTHZ,
	ROUTE_READYZ,
	ROUTE_METRICS,
	ROUTE_BAD_ID, /* a known path with an id that is not one */
};

/*
 * Route url; for routes with an id, the id's text goes to id (NUL-
 * terminated, at most id_size - 1 bytes).
 */
enum route route_parse(const char *url, char *id, size_t id_size);

/* A positive decimal id up to 2^53 - 1, nothing else. 0 or -1. */
int route_parse_id(const char *s, int64_t *out);

/*
 * A customer filter of len bytes: 1 to 254 bytes of valid UTF-8 and no NUL
 * (the database would refuse other bytes, and that is the caller's error,
 * not a 500; a NUL would cut the filter short unseen). 1 or 0.
 */
int route_customer_valid(const char *s, size_t len);

/* A page size: absent gives default_limit; 1..max_limit. 0 or -1. */
int route_parse_limit(const char *s, int default_limit, int max_limit,
		      int *out);

#endif
