/*
 * The incremental event-stream parser of sse.h, after the WHATWG HTML
 * "Interpreting an event stream" rules. Bytes are split into lines as they
 * arrive; a line wholly inside one slice is interpreted in place, and only
 * a line that spans slices is gathered in `line`. All buffers are util/buf
 * (doubling growth, kept across events), so the cost is linear in the input
 * however it is sliced, and the memory is bounded by max_event: the pending
 * line plus the pending data never pass it. The one piece of state a slice
 * boundary needs beyond the buffers is `cr_pending`: a CR that ended the
 * previous slice makes an LF starting the next one part of the same line
 * end, not a second (blank, dispatching) line.
 */
#include "config.h"

#include "net/sse.h"

#include <stdbool.h>
#include <string.h>

#include "util/alloc.h"
#include "util/buf.h"

struct sse_parser {
    size_t max_event;
    sse_event_fn fn;
    void *ud;
    struct buf line;  /* the unterminated line spanning slices */
    struct buf data;  /* data: values, each followed by '\n' */
    struct buf event; /* the event: value of the pending event */
    struct buf id;    /* the last id: value; survives dispatch (spec) */
    size_t comments;
    bool cr_pending; /* the last byte fed was a CR ending a line */
    bool first_line; /* no line completed yet: a BOM may lead it */
    int status;      /* the sticky error once one was returned */
};

static const char sse_bom[] = "\xEF\xBB\xBF";

struct sse_parser *sse_new(size_t max_event, sse_event_fn fn, void *ud)
{
    struct sse_parser *p = xcalloc(1, sizeof *p);
    p->max_event = max_event;
    p->fn = fn;
    p->ud = ud;
    buf_init(&p->line, max_event);
    buf_init(&p->data, max_event);
    buf_init(&p->event, max_event);
    buf_init(&p->id, max_event);
    p->first_line = true;
    return p;
}

void sse_free(struct sse_parser *p)
{
    if (p == NULL)
        return;
    buf_free(&p->line);
    buf_free(&p->data);
    buf_free(&p->event);
    buf_free(&p->id);
    xfree(p);
}

size_t sse_comments(const struct sse_parser *p)
{
    return p->comments;
}

/* True when extra more bytes of line keep line + data within max_event. */
static bool sse_fits(const struct sse_parser *p, size_t extra)
{
    size_t held = p->line.len + p->data.len; /* each <= max_event: no wrap */
    return held <= p->max_event && extra <= p->max_event - held;
}

/* Maps a util/buf failure to this module's codes. */
static int sse_buf_error(enum buf_result r)
{
    return r == BUF_OK ? 0 : r == BUF_TOO_BIG ? SSE_TOO_BIG : SSE_NO_MEM;
}

/* Replaces the contents of b with s[0..n). */
static int sse_buf_set(struct buf *b, const char *s, size_t n)
{
    buf_reset(b);
    return sse_buf_error(buf_append(b, s, n));
}

/* Hands the pending event to the callback when it has data (the spec's
 * "dispatch the event"); either way the event type and data start over. */
static int sse_dispatch(struct sse_parser *p)
{
    int rc = 0;
    if (p->data.len > 0) {
        p->data.len--; /* the '\n' after the last data line */
        p->data.data[p->data.len] = '\0';
        struct sse_event ev = {
            .event = buf_cstr(&p->event),
            .data = buf_cstr(&p->data),
            .data_len = p->data.len,
            .id = buf_cstr(&p->id),
        };
        rc = p->fn(p->ud, &ev);
    }
    buf_reset(&p->event);
    buf_reset(&p->data);
    return rc;
}

/* True when name[0..n) is the field name want. */
static bool sse_field_is(const char *name, size_t n, const char *want)
{
    return n == strlen(want) && memcmp(name, want, n) == 0;
}

/* Applies one field; unknown fields and retry: are ignored. */
static int sse_field(struct sse_parser *p, const char *name, size_t nlen, const char *value,
                     size_t vlen)
{
    if (sse_field_is(name, nlen, "data")) {
        enum buf_result r = buf_append(&p->data, value, vlen);
        return sse_buf_error(r == BUF_OK ? buf_putc(&p->data, '\n') : r);
    }
    if (sse_field_is(name, nlen, "event"))
        return sse_buf_set(&p->event, value, vlen);
    if (sse_field_is(name, nlen, "id") && memchr(value, '\0', vlen) == NULL)
        return sse_buf_set(&p->id, value, vlen);
    return 0;
}

/* Interprets one complete line s[0..n) (without its line end). */
static int sse_line(struct sse_parser *p, const char *s, size_t n)
{
    if (p->first_line && n >= 3 && memcmp(s, sse_bom, 3) == 0) {
        s += 3;
        n -= 3;
    }
    p->first_line = false;
    if (n == 0)
        return sse_dispatch(p);
    if (s[0] == ':') {
        p->comments++;
        return 0;
    }
    const char *colon = memchr(s, ':', n);
    if (colon == NULL)
        return sse_field(p, s, n, "", 0);
    size_t nlen = (size_t)(colon - s);
    const char *value = colon + 1;
    size_t vlen = n - nlen - 1;
    if (vlen > 0 && value[0] == ' ') {
        value++;
        vlen--;
    }
    return sse_field(p, s, nlen, value, vlen);
}

/* Keeps s[0..n), the start of a line the next slice continues. */
static int sse_hold(struct sse_parser *p, const char *s, size_t n)
{
    if (!sse_fits(p, n))
        return SSE_TOO_BIG;
    return sse_buf_error(buf_append(&p->line, s, n));
}

/* A line end follows s[0..n): interprets the whole line, joined with any
 * held start. */
static int sse_complete(struct sse_parser *p, const char *s, size_t n)
{
    if (p->line.len == 0) {
        if (!sse_fits(p, n))
            return SSE_TOO_BIG;
        return sse_line(p, s, n);
    }
    int rc = sse_hold(p, s, n);
    if (rc != 0)
        return rc;
    rc = sse_line(p, p->line.data, p->line.len);
    buf_reset(&p->line);
    return rc;
}

/* The index of the first CR or LF in s[i..len), or len. */
static size_t sse_find_eol(const char *s, size_t i, size_t len)
{
    while (i < len && s[i] != '\n' && s[i] != '\r')
        i++;
    return i;
}

/* Splits the slice into lines; returns the first nonzero result. */
static int sse_split(struct sse_parser *p, const char *s, size_t len)
{
    size_t i = 0;
    if (p->cr_pending && len > 0) {
        p->cr_pending = false;
        if (s[0] == '\n')
            i = 1; /* the second half of a CRLF split by the slicing */
    }
    while (i < len) {
        size_t j = sse_find_eol(s, i, len);
        if (j == len)
            return sse_hold(p, s + i, len - i);
        int rc = sse_complete(p, s + i, j - i);
        if (s[j] == '\r') {
            if (j + 1 == len)
                p->cr_pending = true;
            else if (s[j + 1] == '\n')
                j++;
        }
        if (rc != 0)
            return rc;
        i = j + 1;
    }
    return 0;
}

int sse_feed(struct sse_parser *p, const char *data, size_t len)
{
    if (p->status != 0)
        return p->status;
    p->status = sse_split(p, data, len);
    return p->status;
}

int sse_finish(struct sse_parser *p)
{
    bool bom_only = p->first_line && p->line.len == 3 && memcmp(p->line.data, sse_bom, 3) == 0;
    int pending = (p->line.len > 0 && !bom_only) || p->data.len > 0;
    buf_reset(&p->line);
    buf_reset(&p->data);
    buf_reset(&p->event);
    p->cr_pending = false;
    return pending;
}
