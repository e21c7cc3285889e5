/*
 * consumer: ticketd's member of the consumer group. Polls requests, hands
 * them to the workers, pauses when their queues are full, and commits an
 * offset only once it and every offset before it are done (committed in
 * PostgreSQL and their reply delivered).
 */
#ifndef TICKETD_CONSUMER_H
#define TICKETD_CONSUMER_H

#include "config.h"
#include "job.h"

#include <signal.h>
#include <stddef.h>

struct consumer;
struct worker_pool;
struct metrics;

/* Create the consumer and subscribe. 0, or -1 with errstr. */
int consumer_start(struct consumer **out, const struct config *cfg,
		   struct metrics *metrics, char *errstr, size_t errstr_size)
    __attribute__((warn_unused_result));

/* The workers the consumer feeds; set before consumer_run. */
void consumer_set_pool(struct consumer *c, struct worker_pool *pool);

/* Poll and dispatch until *run becomes 0. */
void consumer_run(struct consumer *c, volatile sig_atomic_t *run);

/*
 * A job's reply was delivered (ok = 1) or given up (ok = 0). Marks its
 * offset done when ok and frees job. Called from the reply poller thread:
 * matches reply_done_fn.
 */
void consumer_job_done(struct job *job, int ok, void *arg);

/* Wait up to timeout_ms for every consumed request to be done. 1 if all
 * are. */
int consumer_drain(struct consumer *c, int timeout_ms);

/* Commit what is done, leave the group (waiting at most bound_ms for the
 * broker), free c. */
void consumer_close(struct consumer *c, int bound_ms);

/* 1 while the consumer is a healthy group member (assigned or waiting). */
int consumer_ready(struct consumer *c);

#endif
