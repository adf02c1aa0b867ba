/*
 * Bounded growable byte buffers (after curl's dynbuf). Every buffer has a
 * maximum size given at init; an append that would pass it, or that cannot
 * allocate, frees the contents, resets the buffer and returns an error, so a
 * hostile peer can never make memchat grow without bound. The contents are
 * always NUL-terminated for convenience (the NUL is not counted in len).
 */
#ifndef MEMCHAT_UTIL_BUF_H
#define MEMCHAT_UTIL_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "util/alloc.h"

/* Results of the append functions. */
enum buf_result {
    BUF_OK = 0,
    BUF_TOO_BIG = -1, /* the append would pass the maximum; buffer reset */
    BUF_NO_MEM = -2,  /* allocation failed; buffer reset */
};

struct buf {
    char *data; /* NULL until the first append */
    size_t len;
    size_t cap;
    size_t max; /* upper bound on len */
};

/* Initialises an empty buffer that may hold at most max bytes. */
void buf_init(struct buf *b, size_t max);
/* Frees the contents; the buffer stays usable (empty, same max). */
void buf_free(struct buf *b);
/* Empties the buffer but keeps its allocation. */
void buf_reset(struct buf *b);
/* Appends n bytes of p. */
enum buf_result buf_append(struct buf *b, const void *p, size_t n);
/* Appends a C string. */
enum buf_result buf_puts(struct buf *b, const char *s);
/* Appends one byte. */
enum buf_result buf_putc(struct buf *b, char c);
/* Appends formatted text. */
enum buf_result buf_printf(struct buf *b, const char *fmt, ...) MC_PRINTF(2, 3);
enum buf_result buf_vprintf(struct buf *b, const char *fmt, va_list ap) MC_PRINTF(2, 0);
/* The contents as a C string; "" (static) when empty. Valid until the next
 * append or free. */
const char *buf_cstr(const struct buf *b);
/* Removes the first n bytes (n > len empties it). */
void buf_consume(struct buf *b, size_t n);
/* Hands the contents to the caller (free with xfree), leaving b empty.
 * Returns an allocated "" when empty. */
char *buf_take(struct buf *b);

#endif
