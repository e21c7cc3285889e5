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

#endif
