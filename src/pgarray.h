/*
 * pgarray: PostgreSQL array literals ("{1,2,3}", "{\"a\",NULL}") built as
 * text parameters, so that one statement over unnest($1, $2, ...) writes
 * or reads a whole batch. No I/O.
 */
#ifndef TICKETD_PGARRAY_H
#define TICKETD_PGARRAY_H

#include "buf.h"

#include <stddef.h>
#include <stdint.h>

struct pgarray {
	struct buf buf;
	size_t count; /* elements so far */
	int done;     /* closed by pgarray_done: no more elements */
};

#define PGARRAY_INIT                                                           \
	{                                                                      \
		BUF_INIT, 0, 0                                                 \
	}

void pgarray_int(struct pgarray *a, int64_t v);

/* A text element, quoted and escaped; s NULL is SQL NULL. */
void pgarray_text(struct pgarray *a, const char *s);

/*
 * The finished literal ("{}" when empty), or NULL when memory ran out at
 * any point. Owned by a; calling it again gives the same literal.
 */
const char *pgarray_done(struct pgarray *a);

void pgarray_free(struct pgarray *a);

/* Free arrays[0..count). */
void pgarray_free_all(struct pgarray *arrays, int count);

#endif
