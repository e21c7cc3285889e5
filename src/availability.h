/*
 * availability: the latest state of every section a committed batch (or
 * the reaper) changed, published to a compacted topic keyed by section id,
 * so that any number of readers follow availability without touching
 * PostgreSQL. Published only after commit (never ahead of the database),
 * possibly a little behind it; a state that fails to go out is retried
 * unless a newer one for its section superseded it; nothing here ever
 * waits on Kafka, so it never holds back a reply or an offset.
 */
#ifndef TICKETD_AVAILABILITY_H
#define TICKETD_AVAILABILITY_H

#include "config.h"

#include <stddef.h>
#include <stdint.h>

/* One section's state, as its row said right after a committed change. */
struct section_state {
	int64_t section_id;
	int64_t event_id;
	int capacity;
	int remaining;
	int held;
	int64_t version; /* rises with every change of the row */
	int64_t at_us;	 /* when it was written, microseconds since the epoch */
};

struct availability;
struct metrics;

/*
 * Start the producer of cfg->availability_topic ("off": none; then every
 * call below is a no-op). 0, or -1 with errstr.
 */
int availability_start(struct availability **out, const struct config *cfg,
		       struct metrics *metrics, char *errstr,
		       size_t errstr_size) __attribute__((warn_unused_result));

/* Publish states[0..n) (copied). Never blocks on Kafka. */
void availability_publish(struct availability *av,
			  const struct section_state *states, size_t n);

/* Deliver what is pending for up to timeout_ms, then stop and free av
 * (NULL is fine). */
void availability_stop(struct availability *av, int timeout_ms);

/*
 * The message value of a state: {"event_id","section_id","capacity",
 * "remaining","held","version","at"} (heap; NULL when out of memory).
 */
char *availability_to_json(const struct section_state *state);

#endif
