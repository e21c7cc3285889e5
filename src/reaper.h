/*
 * reaper: a thread that returns the seats of expired holds, in batches,
 * skipping sections that workers hold locked. Several ticketd processes
 * can run one each without waiting on each other.
 */
#ifndef TICKETD_REAPER_H
#define TICKETD_REAPER_H

#include "config.h"

#include <stddef.h>

struct reaper;
struct metrics;
struct availability;

/* Start the thread; the sections it changes are published through av
 * (borrowed, it must outlive the reaper). 0, or -1 with errstr. */
int reaper_start(struct reaper **out, const struct config *cfg,
		 struct metrics *metrics, struct availability *av, char *errstr,
		 size_t errstr_size) __attribute__((warn_unused_result));

/* Stop the thread and free r. */
void reaper_stop(struct reaper *r);

#endif
