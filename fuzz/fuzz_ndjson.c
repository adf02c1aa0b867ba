/*
 * Fuzz target: the NDJSON splitter (net/ndjson.h). The first byte picks the
 * line cap and how the rest, the stream, is cut into slices; the stream is
 * split twice, whole and in slices, and both runs must hand over the same
 * lines and end with the same result. Each line must keep the header's
 * contract: NUL-terminated at len, no LF, not blank, within the cap; an
 * error is sticky.
 */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "net/ndjson.h"

struct nd_run {
    size_t max_line;
    size_t stop_after; /* the callback returns 7 at this line; 0: never */
    size_t lines;
    uint64_t digest; /* FNV-1a over every line and its length */
};

static uint64_t digest_add(uint64_t h, const void *p, size_t n)
{
    const unsigned char *u = p;
    for (size_t i = 0; i < n; i++) {
        h ^= u[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static bool is_blank_line(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return false;
    return true;
}

static int on_line(void *ud, const char *line, size_t len)
{
    struct nd_run *r = ud;
    if (line == NULL || line[len] != '\0')
        fuzz_fail("ndjson: a line is not NUL-terminated at len");
    if (memchr(line, '\n', len) != NULL)
        fuzz_fail("ndjson: a line holds an LF");
    if (is_blank_line(line, len))
        fuzz_fail("ndjson: a blank line was handed over");
    if (len > r->max_line)
        fuzz_fail("ndjson: a line is longer than the cap");
    r->digest = digest_add(r->digest, &len, sizeof len);
    r->digest = digest_add(r->digest, line, len);
    r->lines++;
    return r->stop_after != 0 && r->lines == r->stop_after ? 7 : 0;
}

/* Splits s[0..n) in slices from a little generator seeded by seed (one
 * slice when seed is 0); returns ndjson_finish's result. */
static int nd_run(struct nd_run *r, const char *s, size_t n, unsigned seed)
{
    struct ndjson_parser *p = ndjson_new(r->max_line, on_line, r);
    uint32_t x = seed * 2654435761u + 1;
    size_t off = 0;
    while (off < n) {
        size_t len = n - off;
        if (seed != 0) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            size_t want = (x % 8 == 0) ? 0 : 1 + x % 17;
            len = want < len ? want : len;
        }
        int rc = ndjson_feed(p, s + off, len);
        off += len;
        if (rc != 0 && ndjson_feed(p, "x\n", 2) != rc)
            fuzz_fail("ndjson: an error is not sticky");
    }
    int rc = ndjson_finish(p);
    ndjson_free(p);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > FUZZ_MAX_INPUT)
        return 0;
    static const size_t caps[4] = {8, 128, 4096, 65536};
    unsigned ctl = data[0];
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    struct nd_run whole = {caps[ctl & 3], (ctl >> 2) & 7, 0, 0xcbf29ce484222325ull};
    struct nd_run cut = whole;
    int rc_whole = nd_run(&whole, s, n, 0);
    int rc_cut = nd_run(&cut, s, n, (ctl >> 5) + 1);
    if (rc_whole != rc_cut)
        fuzz_fail("ndjson: whole and sliced feeds end with different results");
    if (whole.lines != cut.lines || whole.digest != cut.digest)
        fuzz_fail("ndjson: whole and sliced feeds hand over different lines");
    return 0;
}
