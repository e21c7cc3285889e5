/*
 * worker: the pool of worker threads. Each has its own queue and its own
 * PostgreSQL connection, and runs what is queued as one batch transaction.
 */
#ifndef TICKETD_WORKER_H
#define TICKETD_WORKER_H

#include "config.h"
#include "job.h"

#include <stddef.h>

struct worker_pool;
struct publisher;
struct availability;
struct metrics;

/* Start cfg->workers threads; replies go through pub, the sections their
 * batches change through av (both borrowed: they outlive the pool). 0, or
 * -1 with errstr. */
int worker_pool_start(struct worker_pool **out, const struct config *cfg,
		      struct publisher *pub, struct availability *av,
		      struct metrics *metrics, char *errstr, size_t errstr_size)
    __attribute__((warn_unused_result));

/*
 * Queue job on the worker its key hashes to (one section, one worker, in
 * order); unkeyed jobs go by partition. The job belongs to the pool now.
 * Never blocks: the consumer keeps the queues bounded by pausing.
 */
void worker_pool_dispatch(struct worker_pool *pool, struct job *job);

/* The longest queue, for back-pressure. */
size_t worker_pool_max_depth(struct worker_pool *pool);

/* 1 when every worker has a database connection. */
int worker_pool_db_ready(struct worker_pool *pool);

/*
 * Stop the workers: each finishes the transaction it is in (or gives up
 * waiting for the database) and exits. Jobs still queued are freed
 * unanswered: their offsets were never committed, so Kafka redelivers
 * them. Frees pool.
 */
void worker_pool_stop(struct worker_pool *pool);

#endif
