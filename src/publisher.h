/*
 * publisher: the Kafka producer of replies and dead-letter copies. Its
 * delivery reports, on its own poller thread, tell the consumer when a job
 * is done.
 */
#ifndef TICKETD_PUBLISHER_H
#define TICKETD_PUBLISHER_H

#include "config.h"
#include "job.h"

#include <stddef.h>

struct publisher;
struct metrics;

/*
 * Called once per job when its last message is delivered (ok = 1) or given
 * up at shutdown (ok = 0). After the call the job belongs to the callee.
 */
typedef void(publisher_done_fn)(struct job *job, int ok, void *arg);

/* Create the producer and start its poller thread. 0, or -1 with errstr. */
int publisher_start(struct publisher **out, const struct config *cfg,
		    struct metrics *metrics, publisher_done_fn *done,
		    void *done_arg, char *errstr, size_t errstr_size)
    __attribute__((warn_unused_result));

/*
 * Publish job's reply (job->outcome.reply) and, with job->dead_letter, a copy
 * of the original message to the dead-letter topic. The job belongs to the
 * producer from here on; it comes back through the done callback. Blocks
 * while the producer's queue is full.
 */
void publisher_send(struct publisher *pub, struct job *job);

/*
 * Wait up to timeout_ms for every reply to be delivered, then give up the
 * rest (their done callback says ok = 0), stop the poller and destroy the
 * producer.
 */
void publisher_stop(struct publisher *pub, int timeout_ms);

/* Messages produced and not yet delivered. */
int publisher_outstanding(struct publisher *pub);

#endif
