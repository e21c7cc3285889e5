/*
 * offsets: which offset of a partition may be committed. Pure data: no
 * locking, no I/O; the caller serialises access.
 *
 * Offsets are tracked in the order they were consumed (ascending, gaps
 * allowed) and marked done in any order. The committable offset is the
 * first one not yet done, so a commit never skips work in flight: at
 * least once, whatever order the workers finish in.
 */
#ifndef TICKETD_OFFSETS_H
#define TICKETD_OFFSETS_H

#include <stddef.h>
#include <stdint.h>

struct offsets_window {
	int64_t *offsets; /* ring of tracked offsets, ascending */
	unsigned char *done;
	size_t capacity;
	size_t head;	     /* index of the oldest tracked offset */
	size_t count;	     /* tracked and not yet popped */
	int64_t next_commit; /* -1 until something completes */
	int64_t last_tracked;
};

void offsets_init(struct offsets_window *w);
void offsets_release(struct offsets_window *w);

/*
 * Track a consumed offset. It must be above every offset tracked before
 * (-1 otherwise, or when out of memory).
 */
int offsets_track(struct offsets_window *w, int64_t offset)
    __attribute__((warn_unused_result));

/*
 * Mark a tracked offset done. Returns 1 when the committable offset moved,
 * 0 when it did not, -1 when offset is not tracked (already done, or from
 * before a reassignment): a caller ignores that.
 */
int offsets_done(struct offsets_window *w, int64_t offset);

/* The offset to commit (the next one to consume), or -1 when none yet. */
int64_t offsets_committable(const struct offsets_window *w);

/* How many tracked offsets are not done. */
size_t offsets_in_flight(const struct offsets_window *w);

#endif
