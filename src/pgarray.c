/*
 * pgarray: PostgreSQL array literals built as text parameters, so that one
 * statement over unnest($1, $2, ...) writes or reads a whole batch.
 */
#include "pgarray.h"

#include <inttypes.h>
#include <string.h>

static void pgarray_sep(struct pgarray *a)
{
	buf_add_char(&a->buf, a->count++ ? ',' : '{');
}

void pgarray_int(struct pgarray *a, int64_t v)
{
	pgarray_sep(a);
	buf_printf(&a->buf, "%" PRId64, v);
}

void pgarray_text(struct pgarray *a, const char *s)
{
	pgarray_sep(a);
	if (!s) {
		buf_add_str(&a->buf, "NULL");
		return;
	}
	buf_add_char(&a->buf, '"');
	for (const char *run = s;; s++) {
		if (*s != '"' && *s != '\\' && *s != '\0')
			continue;
		buf_add(&a->buf, run, (size_t)(s - run));
		if (*s == '\0')
			break;
		buf_add_char(&a->buf, '\\');
		run = s;
	}
	buf_add_char(&a->buf, '"');
}

const char *pgarray_done(struct pgarray *a)
{
	if (!a->done) {
		if (a->count == 0)
			buf_add_char(&a->buf, '{');
		buf_add_char(&a->buf, '}');
		a->done = 1;
	}
	return a->buf.oom ? NULL : a->buf.data;
}

void pgarray_free(struct pgarray *a)
{
	buf_free(&a->buf);
	a->count = 0;
	a->done = 0;
}

void pgarray_free_all(struct pgarray *arrays, int count)
{
	for (int k = 0; k < count; k++)
		pgarray_free(&arrays[k]);
}
