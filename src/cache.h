/*
 * cache: answers kept in memory for a short interval, each fetched by one
 * caller at a time (single flight): however many threads ask for a key at
 * once, at most one fetch per key per interval runs, and the others wait
 * for it. The query endpoint keeps /events and /events/{id} here.
 */
#ifndef TICKETD_CACHE_H
#define TICKETD_CACHE_H

#include <stddef.h>
#include <stdint.h>

struct cache;

/* An answer: an HTTP status and its body. */
struct cache_answer {
	unsigned status;
	char *body;	/* heap, NUL-terminated */
	char etag[24];	/* "\"<16 hex digits>\"", from the body */
	int64_t age_ms; /* how old the answer is */
	int hit;	/* 1: served from memory */
};

/*
 * Fetch the answer for a key: 0 with *status and *body (heap; the cache
 * takes it), or -1 when there is none to keep (the database is away):
 * nothing is cached and the caller answers the failure itself.
 */
typedef int(cache_fetch_fn)(void *arg, unsigned *status, char **body);

/* A cache whose answers live ttl_ms, at most max_keys of them. NULL when
 * out of memory. */
struct cache *cache_new(int ttl_ms, size_t max_keys);

void cache_free(struct cache *c);

/*
 * The answer for key: from memory when younger than the interval,
 * otherwise from fetch(arg), run by this caller while the others asking
 * for key wait. 0 with *out filled (out->body is the caller's: free() it),
 * or -1 when fetch failed (or memory ran out).
 */
int cache_get(struct cache *c, const char *key, cache_fetch_fn *fetch,
	      void *arg, struct cache_answer *out)
    __attribute__((warn_unused_result));

/* The ETag of a body, as cache_answer.etag holds it. */
void cache_etag(const char *body, char etag[24]);

#endif
