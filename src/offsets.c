/*
 * offsets: which offset of a partition may be committed. Pure data: no
 * locking, no I/O; the caller serialises access.
 */
#include "offsets.h"

#include <stdlib.h>
#include <string.h>

#define OFFSETS_INITIAL_CAPACITY 64

void offsets_init(struct offsets_window *w)
{
	memset(w, 0, sizeof(*w));
	w->next_commit = -1;
	w->last_tracked = -1;
}

void offsets_release(struct offsets_window *w)
{
	free(w->offsets);
	free(w->done);
	offsets_init(w);
}

static size_t slot(const struct offsets_window *w, size_t i)
{
	return (w->head + i) % w->capacity;
}

/* Double the ring, unrolling it so that head is 0 again. */
static int grow(struct offsets_window *w)
{
	size_t capacity =
	    w->capacity ? w->capacity * 2 : OFFSETS_INITIAL_CAPACITY;
	int64_t *offsets = malloc(capacity * sizeof(*offsets));
	unsigned char *done = malloc(capacity);

	if (!offsets || !done) {
		free(offsets);
		free(done);
		return -1;
	}
	for (size_t i = 0; i < w->count; i++) {
		offsets[i] = w->offsets[slot(w, i)];
		done[i] = w->done[slot(w, i)];
	}
	free(w->offsets);
	free(w->done);
	w->offsets = offsets;
	w->done = done;
	w->capacity = capacity;
	w->head = 0;
	return 0;
}

int offsets_track(struct offsets_window *w, int64_t offset)
{
	size_t s;

	if (offset < 0 || offset <= w->last_tracked)
		return -1;
	if (w->count == w->capacity && grow(w) != 0)
		return -1;
	s = slot(w, w->count);
	w->offsets[s] = offset;
	w->done[s] = 0;
	w->count++;
	w->last_tracked = offset;
	return 0;
}

/* Binary search over the ring: the tracked offsets are ascending. */
static int find(const struct offsets_window *w, int64_t offset, size_t *index)
{
	size_t lo = 0, hi = w->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int64_t v = w->offsets[slot(w, mid)];

		if (v == offset) {
			*index = mid;
			return 0;
		}
		if (v < offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

int offsets_done(struct offsets_window *w, int64_t offset)
{
	size_t index;
	int moved = 0;

	if (find(w, offset, &index) != 0 || w->done[slot(w, index)])
		return -1;
	w->done[slot(w, index)] = 1;

	/* Pop the done prefix: its last offset + 1 is committable. */
	while (w->count > 0 && w->done[w->head]) {
		w->next_commit = w->offsets[w->head] + 1;
		w->head = (w->head + 1) % w->capacity;
		w->count--;
		moved = 1;
	}
	return moved;
}

int64_t offsets_committable(const struct offsets_window *w)
{
	return w->next_commit;
}

size_t offsets_in_flight(const struct offsets_window *w)
{
	size_t n = 0;

	for (size_t i = 0; i < w->count; i++)
		n += !w->done[slot(w, i)];
	return n;
}
