/*
 * Bounded growable buffers: see buf.h. Growth doubles the capacity so that
 * appending byte by byte stays linear; the bound is checked before any
 * allocation so an oversized append never touches memory.
 */
#include "config.h"

#include "util/buf.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

void buf_init(struct buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    /* One byte is always needed for the NUL, so the largest usable bound is
     * SIZE_MAX - 1; clamping here keeps len + extra + 1 and max + 1 from
     * wrapping in buf_grow() when a caller passes SIZE_MAX for "no bound". */
    b->max = max < SIZE_MAX ? max : SIZE_MAX - 1;
}

void buf_free(struct buf *b)
{
    xfree(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

static enum buf_result buf_fail(struct buf *b, enum buf_result r)
{
    buf_free(b);
    return r;
}

/* Makes room for `extra` more bytes plus the NUL. */
static enum buf_result buf_grow(struct buf *b, size_t extra)
{
    if (extra > b->max || b->len > b->max - extra)
        return buf_fail(b, BUF_TOO_BIG);
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return BUF_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > b->max + 1)
        cap = b->max + 1;
    char *p = try_realloc(b->data, cap);
    if (p == NULL)
        return buf_fail(b, BUF_NO_MEM);
    b->data = p;
    b->cap = cap;
    return BUF_OK;
}

enum buf_result buf_append(struct buf *b, const void *p, size_t n)
{
    enum buf_result r = buf_grow(b, n);
    if (r != BUF_OK)
        return r;
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return BUF_OK;
}

enum buf_result buf_puts(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

enum buf_result buf_putc(struct buf *b, char c)
{
    return buf_append(b, &c, 1);
}

enum buf_result buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return buf_fail(b, BUF_NO_MEM);
    enum buf_result r = buf_grow(b, (size_t)n);
    if (r != BUF_OK)
        return r;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return BUF_OK;
}

enum buf_result buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    enum buf_result r = buf_vprintf(b, fmt, ap);
    va_end(ap);
    return r;
}

const char *buf_cstr(const struct buf *b)
{
    return b->data != NULL ? b->data : "";
}

void buf_consume(struct buf *b, size_t n)
{
    if (n >= b->len) {
        buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

char *buf_take(struct buf *b)
{
    char *p = b->data != NULL ? b->data : xstrdup("");
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}
