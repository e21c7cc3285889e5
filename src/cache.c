/*
 * cache: answers kept in memory for a short interval, each fetched by one
 * caller at a time (single flight).
 *
 * One lock guards the table; a fetch runs without it, its key marked
 * LOADING, and those that ask for the key meanwhile wait on the table's
 * condition variable for it. The table holds at most max_keys keys: when
 * full, stale answers are swept out, and if none are stale the new key is
 * fetched without being kept (a flood of distinct ids cannot grow memory).
 */
#include "cache.h"

#include "clock.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum entry_state { ENTRY_EMPTY, ENTRY_LOADING, ENTRY_READY };

struct entry {
	struct entry *next; /* in its bucket */
	char *key;
	enum entry_state state;
	unsigned status;
	char *body;
	char etag[24];
	int64_t made_us;
};

struct cache {
	int64_t ttl_us;
	size_t max_keys, key_count;
	struct entry **buckets;
	size_t bucket_mask;
	pthread_mutex_t lock;
	pthread_cond_t loaded;
};

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	return h;
}

void cache_etag(const char *body, char etag[24])
{
	snprintf(etag, 24, "\"%016" PRIx64 "\"", fnv1a(body));
}

struct cache *cache_new(int ttl_ms, size_t max_keys)
{
	struct cache *c = calloc(1, sizeof(*c));
	size_t buckets = 16;

	if (!c)
		return NULL;
	while (buckets < max_keys * 2)
		buckets *= 2;
	c->buckets = calloc(buckets, sizeof(*c->buckets));
	if (!c->buckets) {
		free(c);
		return NULL;
	}
	c->bucket_mask = buckets - 1;
	c->ttl_us = (int64_t)ttl_ms * 1000;
	c->max_keys = max_keys;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->loaded, NULL);
	return c;
}

static void entry_free(struct entry *e)
{
	free(e->key);
	free(e->body);
	free(e);
}

void cache_free(struct cache *c)
{
	if (!c)
		return;
	for (size_t b = 0; b <= c->bucket_mask; b++) {
		struct entry *e = c->buckets[b];

		while (e) {
			struct entry *next = e->next;

			entry_free(e);
			e = next;
		}
	}
	free(c->buckets);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->loaded);
	free(c);
}

static int fresh(const struct cache *c, const struct entry *e, int64_t now)
{
	return e->state == ENTRY_READY && now - e->made_us < c->ttl_us;
}

/* Drop every answer past its interval (not one being loaded). Caller
 * holds c->lock. */
static void sweep(struct cache *c, int64_t now)
{
	for (size_t b = 0; b <= c->bucket_mask; b++) {
		struct entry **link = &c->buckets[b];

		while (*link) {
			struct entry *e = *link;

			if (e->state != ENTRY_LOADING && !fresh(c, e, now)) {
				*link = e->next;
				entry_free(e);
				c->key_count--;
			} else {
				link = &e->next;
			}
		}
	}
}

/* The entry of key, made (EMPTY) if there is room; NULL when the table is
 * full of fresh answers or memory ran out. Caller holds c->lock. */
static struct entry *entry_of(struct cache *c, const char *key, int64_t now)
{
	struct entry **bucket = &c->buckets[fnv1a(key) & c->bucket_mask];
	struct entry *e;

	for (e = *bucket; e; e = e->next) {
		if (strcmp(e->key, key) == 0)
			return e;
	}
	if (c->key_count >= c->max_keys)
		sweep(c, now);
	if (c->key_count >= c->max_keys)
		return NULL;
	e = calloc(1, sizeof(*e));
	if (!e || !(e->key = strdup(key))) {
		free(e);
		return NULL;
	}
	e->next = *bucket;
	*bucket = e;
	c->key_count++;
	return e;
}

/* Copy a kept answer out. Caller holds c->lock. 0 or -1. */
static int copy_out(const struct entry *e, int64_t now, int hit,
		    struct cache_answer *out)
{
	out->body = strdup(e->body);
	if (!out->body)
		return -1;
	out->status = e->status;
	memcpy(out->etag, e->etag, sizeof(out->etag));
	out->age_ms = (now - e->made_us) / 1000;
	out->hit = hit;
	return 0;
}

/* Fetch without keeping: the table had no room. */
static int fetch_alone(cache_fetch_fn *fetch, void *arg,
		       struct cache_answer *out)
{
	char *body = NULL;

	if (fetch(arg, &out->status, &body) != 0)
		return -1;
	out->body = body;
	cache_etag(body, out->etag);
	out->age_ms = 0;
	out->hit = 0;
	return 0;
}

int cache_get(struct cache *c, const char *key, cache_fetch_fn *fetch,
	      void *arg, struct cache_answer *out)
{
	struct entry *e;
	unsigned status = 0;
	char *body = NULL;
	int rc;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		int64_t now = clock_now_us();

		e = entry_of(c, key, now);
		if (!e) {
			pthread_mutex_unlock(&c->lock);
			return fetch_alone(fetch, arg, out);
		}
		if (fresh(c, e, now)) {
			rc = copy_out(e, now, 1, out);
			pthread_mutex_unlock(&c->lock);
			return rc;
		}
		if (e->state != ENTRY_LOADING)
			break;
		/* Another caller fetches it: its answer is ours. */
		pthread_cond_wait(&c->loaded, &c->lock);
	}
	e->state = ENTRY_LOADING;
	pthread_mutex_unlock(&c->lock);

	rc = fetch(arg, &status, &body);

	pthread_mutex_lock(&c->lock);
	if (rc == 0) {
		free(e->body);
		e->body = body;
		e->status = status;
		cache_etag(body, e->etag);
		e->made_us = clock_now_us();
		e->state = ENTRY_READY;
		rc = copy_out(e, e->made_us, 0, out);
	} else {
		/* Nothing to keep: the next caller tries again. */
		e->state = e->body ? ENTRY_READY : ENTRY_EMPTY;
		e->made_us = 0;
	}
	pthread_cond_broadcast(&c->loaded);
	pthread_mutex_unlock(&c->lock);
	return rc;
}
