/*
 * http: the read-only query endpoint (libmicrohttpd): events, bookings,
 * holds, stored request outcomes, health, readiness and metrics.
 */
#ifndef TICKETD_HTTP_H
#define TICKETD_HTTP_H

#include "config.h"

#include <stddef.h>
#include <stdint.h>

struct http_server;
struct metrics;
struct consumer;
struct worker_pool;

/* Listen on cfg->http_address:http_port (port 0: none). 0, or -1 with
 * errstr. */
int http_start(struct http_server **out, const struct config *cfg,
	       struct metrics *metrics, struct consumer *consumer,
	       struct worker_pool *pool, char *errstr, size_t errstr_size)
    __attribute__((warn_unused_result));

/* The port listened on, 0 when disabled. */
int http_port(const struct http_server *http);

/* Stop listening and free http (NULL is fine). */
void http_stop(struct http_server *http);

/* The outcome of routing one request: pure, for tests and fuzzing. */
enum http_route {
	HTTP_ROUTE_NOT_FOUND,
	HTTP_ROUTE_EVENTS,
	HTTP_ROUTE_EVENT,
	HTTP_ROUTE_BOOKINGS,
	HTTP_ROUTE_BOOKING,
	HTTP_ROUTE_HOLD,
	HTTP_ROUTE_REQUEST,
	HTTP_ROUTE_HEALTHZ,
	HTTP_ROUTE_READYZ,
	HTTP_ROUTE_METRICS,
	HTTP_ROUTE_BAD_ID, /* a known path with an id that is not one */
};

/*
 * Route url; for routes with an id, the id's text goes to id (NUL-
 * terminated, at most id_size - 1 bytes).
 */
enum http_route http_route_parse(const char *url, char *id, size_t id_size);

/* A positive decimal id up to 2^53 - 1, nothing else. 0 or -1. */
int http_parse_id(const char *s, int64_t *out);

/*
 * A customer filter: 1 to 254 bytes of valid UTF-8 (the database would
 * refuse other bytes, and that is the caller's error, not a 500). 1 or 0.
 */
int http_customer_valid(const char *s);

/* A page size: absent gives default_limit; 1..max_limit. 0 or -1. */
int http_parse_limit(const char *s, int default_limit, int max_limit, int *out);

#endif
