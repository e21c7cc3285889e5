/*
 * metrics: process-wide counters and histograms, updated lock-free from
 * any thread and rendered in the Prometheus text format.
 */
#include "metrics.h"

#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double size_bounds[METRICS_BUCKETS] = {
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000};
static const double second_bounds[METRICS_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1,    0.25,  0.5,	   1,	  2.5,	5,     10};

void metrics_init(struct metrics *m)
{
	memset(m, 0, sizeof(*m));
	m->batch_size.bounds = size_bounds;
	m->transaction_seconds.bounds = second_bounds;
	m->reply_latency_seconds.bounds = second_bounds;
	atomic_store(&m->consumer_lag, -1);
	atomic_store(&m->http_db_standby, -1);
	atomic_store(&m->http_db_lag_us, -1);
	pthread_mutex_init(&m->server_lock, NULL);
}

void metrics_destroy(struct metrics *m)
{
	pthread_mutex_destroy(&m->server_lock);
}

int metrics_db_server_set(struct metrics *m, const char *server)
{
	int changed;

	char kept[sizeof(m->db_server)];

	/* It becomes a label value: no quote or backslash in it. */
	snprintf(kept, sizeof(kept), "%s", server);
	for (char *p = kept; *p; p++) {
		if (*p == '"' || *p == '\\' || *p == '\n')
			*p = '_';
	}
	pthread_mutex_lock(&m->server_lock);
	changed = m->db_server[0] && strcmp(m->db_server, kept) != 0;
	memcpy(m->db_server, kept, sizeof(kept));
	pthread_mutex_unlock(&m->server_lock);
	if (changed)
		atomic_fetch_add(&m->db_server_changes, 1);
	return changed;
}

void metrics_db_server(struct metrics *m, char *out, size_t out_size)
{
	pthread_mutex_lock(&m->server_lock);
	snprintf(out, out_size, "%s", m->db_server);
	pthread_mutex_unlock(&m->server_lock);
}

void histogram_observe(struct histogram *h, double value)
{
	int i = 0;

	while (i < METRICS_BUCKETS && value > h->bounds[i])
		i++;
	atomic_fetch_add(&h->counts[i], 1);
	atomic_fetch_add(&h->sum_micros,
			 (unsigned long long)(value * 1000000.0 + 0.5));
}

void metrics_count_request(struct metrics *m, int type,
			   enum outcome_status status)
{
	if (type < 0 || type > REQUEST_TYPE_COUNT)
		type = REQUEST_TYPE_COUNT;
	if (status >= STATUS_COUNT)
		return;
	atomic_fetch_add(&m->requests[type][status], 1);
}

static void counter(struct buf *t, const char *name, const char *help,
		    unsigned long long value)
{
	buf_printf(t, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help,
		   name, name, value);
}

static void gauge(struct buf *t, const char *name, const char *help,
		  long long value)
{
	buf_printf(t, "# HELP %s %s\n# TYPE %s gauge\n%s %lld\n", name, help,
		   name, name, value);
}

static void histogram(struct buf *t, const char *name, const char *help,
		      struct histogram *h)
{
	unsigned long long cumulative = 0;

	buf_printf(t, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	for (int i = 0; i <= METRICS_BUCKETS; i++) {
		cumulative += atomic_load(&h->counts[i]);
		if (i < METRICS_BUCKETS)
			buf_printf(t, "%s_bucket{le=\"%g\"} %llu\n", name,
				   h->bounds[i], cumulative);
		else
			buf_printf(t, "%s_bucket{le=\"+Inf\"} %llu\n", name,
				   cumulative);
	}
	buf_printf(t, "%s_sum %.6f\n%s_count %llu\n", name,
		   (double)atomic_load(&h->sum_micros) / 1000000.0, name,
		   cumulative);
}

char *metrics_render(struct metrics *m)
{
	struct buf t = BUF_INIT;
	char server[160];
	long long lag_us;

	buf_printf(&t, "# HELP ticketd_requests_total Requests answered, by "
		       "type and status.\n"
		       "# TYPE ticketd_requests_total counter\n");
	for (int type = 0; type <= REQUEST_TYPE_COUNT; type++) {
		for (int status = 0; status < STATUS_COUNT; status++) {
			buf_printf(
			    &t,
			    "ticketd_requests_total{type=\"%s\",status=\"%s\"} "
			    "%llu\n",
			    type < REQUEST_TYPE_COUNT
				? request_type_name((enum request_type)type)
				: "unknown",
			    outcome_status_name((enum outcome_status)status),
			    atomic_load(&m->requests[type][status]));
		}
	}
	counter(&t, "ticketd_requests_replayed_total",
		"Repeated requests answered from their idempotency record.",
		atomic_load(&m->replayed));
	counter(&t, "ticketd_dead_lettered_total",
		"Messages copied to the dead-letter topic.",
		atomic_load(&m->dead_lettered));
	counter(&t, "ticketd_batch_retries_total",
		"Batches run again after a retryable database error.",
		atomic_load(&m->batch_retries));
	counter(&t, "ticketd_batch_splits_total",
		"Batches split to isolate a request the database refused.",
		atomic_load(&m->batch_splits));
	counter(&t, "ticketd_local_failures_total",
		"Batches and replies that failed in ticketd itself (out of "
		"memory, a stored record that does not parse) and wait to run "
		"again.",
		atomic_load(&m->local_failures));
	counter(&t, "ticketd_db_reconnects_total",
		"Worker reconnections to PostgreSQL.",
		atomic_load(&m->db_reconnects));
	counter(&t, "ticketd_db_commit_unknown_total",
		"Batches whose connection was lost while their COMMIT may have "
		"been under way, run again (their idempotency records say "
		"whether they had committed).",
		atomic_load(&m->db_commit_unknown));
	counter(
	    &t, "ticketd_db_server_changes_total",
	    "Worker reconnections that found another PostgreSQL server than "
	    "the one before (a failover).",
	    atomic_load(&m->db_server_changes));
	counter(&t, "ticketd_reply_failures_total",
		"Reply deliveries that failed and were produced again or "
		"dead-lettered.",
		atomic_load(&m->reply_failures));
	counter(&t, "ticketd_holds_reaped_total",
		"Expired holds whose seats the reaper returned.",
		atomic_load(&m->holds_reaped));
	counter(&t, "ticketd_consumer_pauses_total",
		"Times the consumer paused its partitions because the queues "
		"were full.",
		atomic_load(&m->consumer_pauses));
	counter(&t, "ticketd_http_requests_total",
		"HTTP requests served by the query endpoint.",
		atomic_load(&m->http_requests));
	counter(&t, "ticketd_http_cache_hits_total",
		"Query endpoint answers served from the read cache.",
		atomic_load(&m->http_cache_hits));
	counter(&t, "ticketd_http_cache_misses_total",
		"Query endpoint answers the read cache had to fetch from "
		"PostgreSQL.",
		atomic_load(&m->http_cache_misses));
	counter(&t, "ticketd_availability_published_total",
		"Section states delivered to the availability topic.",
		atomic_load(&m->availability_published));
	counter(
	    &t, "ticketd_availability_failures_total",
	    "Section states whose delivery to the availability topic failed "
	    "(the newest state of the section is produced again).",
	    atomic_load(&m->availability_failures));
	histogram(&t, "ticketd_batch_size",
		  "Requests per database transaction.", &m->batch_size);
	histogram(&t, "ticketd_transaction_seconds",
		  "Time of one batch transaction, BEGIN to COMMIT.",
		  &m->transaction_seconds);
	histogram(&t, "ticketd_request_latency_seconds",
		  "From consuming a request to the delivery of its reply.",
		  &m->reply_latency_seconds);
	gauge(&t, "ticketd_queue_depth", "Requests queued for the workers.",
	      atomic_load(&m->queue_depth));
	gauge(&t, "ticketd_in_flight",
	      "Requests consumed whose offset is not yet committable.",
	      atomic_load(&m->in_flight));
	gauge(
	    &t, "ticketd_consumer_lag",
	    "Messages behind the end of the assigned partitions (-1: unknown).",
	    atomic_load(&m->consumer_lag));
	gauge(&t, "ticketd_assigned_partitions",
	      "Partitions of the request topic assigned to this process.",
	      atomic_load(&m->assigned_partitions));
	gauge(&t, "ticketd_consumer_paused",
	      "1 while the consumer is paused for back-pressure.",
	      atomic_load(&m->consumer_paused));
	gauge(&t, "ticketd_workers_db_down",
	      "Workers without a PostgreSQL connection.",
	      atomic_load(&m->workers_db_down));
	metrics_db_server(m, server, sizeof(server));
	if (server[0])
		buf_printf(&t,
			   "# HELP ticketd_db_server The PostgreSQL server the "
			   "workers last connected to (the primary).\n"
			   "# TYPE ticketd_db_server gauge\n"
			   "ticketd_db_server{server=\"%s\"} 1\n",
			   server);
	gauge(&t, "ticketd_http_db_standby",
	      "1 when the query endpoint reads from a standby, 0 from a "
	      "primary, -1 not sampled (http_pg_conninfo is the workers').",
	      atomic_load(&m->http_db_standby));
	lag_us = atomic_load(&m->http_db_lag_us);
	buf_printf(&t,
		   "# HELP ticketd_http_db_replication_lag_seconds How far the "
		   "query endpoint's standby is behind the primary (0 on a "
		   "primary or a standby that has replayed all it received, "
		   "-1 unknown).\n"
		   "# TYPE ticketd_http_db_replication_lag_seconds gauge\n"
		   "ticketd_http_db_replication_lag_seconds %.3f\n",
		   lag_us < 0 ? -1.0 : (double)lag_us / 1e6);
	return buf_take(&t);
}
