/*
 * buf: a growable, NUL-terminated byte buffer. Running out of memory is
 * sticky: every later append is a no-op and buf_take reports it once.
 */
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room for extra more bytes and the NUL; 0, or -1 (and oom) when out of
 * memory. */
static int buf_reserve(struct buf *b, size_t extra)
{
	size_t cap;
	char *grown;

	if (b->oom)
		return -1;
	if (b->len + extra + 1 <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < b->len + extra + 1)
		cap *= 2;
	grown = realloc(b->data, cap);
	if (!grown) {
		b->oom = 1;
		return -1;
	}
	b->data = grown;
	b->cap = cap;
	return 0;
}

void buf_add(struct buf *b, const char *s, size_t n)
{
	if (buf_reserve(b, n) != 0)
		return;
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void buf_add_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

void buf_add_char(struct buf *b, char c)
{
	buf_add(b, &c, 1);
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	va_start(ap, fmt);
	n = vsnprintf(b->data ? b->data + b->len : NULL,
		      b->data ? b->cap - b->len : 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->oom = 1;
		return;
	}
	if (b->data && b->len + (size_t)n < b->cap) {
		b->len += (size_t)n;
		return;
	}
	if (buf_reserve(b, (size_t)n) != 0)
		return;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

char *buf_take(struct buf *b)
{
	char *out;

	if (!b->oom && !b->data)
		buf_reserve(b, 0);
	if (b->oom) {
		buf_free(b);
		return NULL;
	}
	b->data[b->len] = '\0';
	out = b->data;
	memset(b, 0, sizeof(*b));
	return out;
}

void buf_free(struct buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}
