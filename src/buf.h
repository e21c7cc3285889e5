/*
 * buf: a growable, NUL-terminated byte buffer. Running out of memory is
 * sticky: every later append is a no-op and buf_take reports it once, so
 * that a writer checks for failure at the end, not at every step.
 */
#ifndef TICKETD_BUF_H
#define TICKETD_BUF_H

#include <stddef.h>

struct buf {
	char *data; /* NUL-terminated once anything was added */
	size_t len;
	size_t cap;
	int oom;
};

#define BUF_INIT                                                               \
	{                                                                      \
		NULL, 0, 0, 0                                                  \
	}

/* Append n bytes of s. */
void buf_add(struct buf *b, const char *s, size_t n);

/* Append the string s. */
void buf_add_str(struct buf *b, const char *s);

/* Append one byte. */
void buf_add_char(struct buf *b, char c);

/* Append formatted text. */
void buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * The text, handed to the caller (free() it), or NULL when memory ran out
 * at any point (the buffer is freed then). b is empty afterwards. An empty
 * buffer gives "".
 */
char *buf_take(struct buf *b);

/* Free what b holds; b is empty afterwards. */
void buf_free(struct buf *b);

#endif
