/*
 * metrics: process-wide counters and histograms, updated lock-free from
 * any thread and rendered in the Prometheus text format.
 */
#ifndef TICKETD_METRICS_H
#define TICKETD_METRICS_H

#include "outcome.h"
#include "request.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#define METRICS_BUCKETS 14

struct histogram {
	const double *bounds; /* METRICS_BUCKETS upper bounds, ascending */
	atomic_ullong counts[METRICS_BUCKETS + 1]; /* last: +Inf */
	atomic_ullong sum_micros; /* sum of observations * 1e6 */
};

struct metrics {
	/* requests answered, by type (last row: type unknown) and status */
	atomic_ullong requests[REQUEST_TYPE_COUNT + 1][STATUS_COUNT];
	atomic_ullong replayed;
	atomic_ullong dead_lettered;
	atomic_ullong batch_retries;
	atomic_ullong batch_splits;
	atomic_ullong local_failures;
	atomic_ullong db_reconnects;
	atomic_ullong db_commit_unknown;
	atomic_ullong db_server_changes;
	atomic_ullong reply_failures;
	atomic_ullong holds_reaped;
	atomic_ullong consumer_pauses;
	atomic_ullong http_requests;
	atomic_ullong http_cache_hits;
	atomic_ullong http_cache_misses;
	atomic_ullong availability_published;
	atomic_ullong availability_failures;
	struct histogram batch_size;
	struct histogram transaction_seconds;
	struct histogram reply_latency_seconds;
	atomic_llong queue_depth;
	atomic_llong in_flight;
	atomic_llong consumer_lag; /* -1 until the first statistics */
	atomic_int assigned_partitions;
	atomic_int consumer_paused;
	atomic_int workers_db_down; /* workers without a connection */
	/* The query endpoint's database: 1 a standby, 0 a primary, -1 not
	 * known (not sampled: it reads from the workers' database); its
	 * replay lag in microseconds, -1 when not known. */
	atomic_int http_db_standby;
	atomic_llong http_db_lag_us;

	pthread_mutex_t server_lock; /* guards db_server */
	char db_server[160]; /* "host:port" the workers last connected to */
};

void metrics_init(struct metrics *m);

/* Release what metrics_init set up. */
void metrics_destroy(struct metrics *m);

void histogram_observe(struct histogram *h, double value);

/*
 * A worker connected to server ("host:port"). Returns 1 when that is
 * another server than the workers' connections went to before (a failover,
 * or a move behind one address), counted in db_server_changes; 0 when it is
 * the same, or the first.
 */
int metrics_db_server_set(struct metrics *m, const char *server);

/* The server the workers last connected to, "" before the first. */
void metrics_db_server(struct metrics *m, char *out, size_t out_size);

void metrics_count_request(struct metrics *m, int type,
			   enum outcome_status status);

/*
 * The Prometheus text exposition, heap-allocated (caller frees), or NULL
 * when out of memory.
 */
char *metrics_render(struct metrics *m);

#endif
