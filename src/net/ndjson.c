/*
 * The newline-delimited JSON splitter of ndjson.h. Every line is gathered
 * in one util/buf (doubling growth, reused across lines) because the
 * callback wants a NUL-terminated string, which a slice of the input is
 * not; bytes are copied a run at a time, so the cost is linear in the input
 * however it is sliced. Only LF ends a line: a CR before it is stripped when
 * the line is handed over, so a CRLF split across slices needs no state.
 */
#include "config.h"

#include "net/ndjson.h"

#include <stdbool.h>
#include <string.h>

#include "util/alloc.h"
#include "util/buf.h"

struct ndjson_parser {
    ndjson_line_fn fn;
    void *ud;
    struct buf line; /* the current line, bounded by max_line */
    int status;      /* the sticky error once one was returned */
};

struct ndjson_parser *ndjson_new(size_t max_line, ndjson_line_fn fn, void *ud)
{
    struct ndjson_parser *p = xcalloc(1, sizeof *p);
    p->fn = fn;
    p->ud = ud;
    buf_init(&p->line, max_line);
    return p;
}

void ndjson_free(struct ndjson_parser *p)
{
    if (p == NULL)
        return;
    buf_free(&p->line);
    xfree(p);
}

/* True when s[0..n) holds only spaces, tabs and CRs. */
static bool ndjson_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return false;
    return true;
}

/* Hands over the gathered line (less a trailing CR) unless it is blank,
 * and empties the buffer for the next one. */
static int ndjson_emit(struct ndjson_parser *p)
{
    int rc = 0;
    size_t n = p->line.len;
    if (!ndjson_blank(buf_cstr(&p->line), n)) {
        if (p->line.data[n - 1] == '\r')
            p->line.data[--n] = '\0';
        rc = p->fn(p->ud, p->line.data, n);
    }
    buf_reset(&p->line);
    return rc;
}

/* Appends s[0..n) to the current line. */
static int ndjson_hold(struct ndjson_parser *p, const char *s, size_t n)
{
    enum buf_result r = buf_append(&p->line, s, n);
    return r == BUF_OK ? 0 : r == BUF_TOO_BIG ? NDJSON_TOO_BIG : NDJSON_NO_MEM;
}

/* Splits the slice at each LF; returns the first nonzero result. */
static int ndjson_split(struct ndjson_parser *p, const char *s, size_t len)
{
    while (len > 0) {
        const char *lf = memchr(s, '\n', len);
        size_t n = lf != NULL ? (size_t)(lf - s) : len;
        int rc = ndjson_hold(p, s, n);
        if (rc == 0 && lf != NULL)
            rc = ndjson_emit(p);
        if (rc != 0)
            return rc;
        if (lf == NULL)
            break;
        s += n + 1;
        len -= n + 1;
    }
    return 0;
}

int ndjson_feed(struct ndjson_parser *p, const char *data, size_t len)
{
    if (p->status != 0)
        return p->status;
    p->status = ndjson_split(p, data, len);
    return p->status;
}

int ndjson_finish(struct ndjson_parser *p)
{
    if (p->status != 0)
        return p->status;
    p->status = ndjson_emit(p);
    return p->status;
}
