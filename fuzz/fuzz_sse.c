/*
 * Fuzz target: the SSE parser (net/sse.h). The first byte picks the
 * parser's event cap and how the rest, the stream, is cut into slices. The
 * stream is parsed twice, whole and in slices, and both runs must dispatch
 * the same events (a digest of each event's fields, in order), end with
 * the same result and count the same comments: libcurl hands the body over
 * in arbitrary pieces, so where the pieces end must never show. Each event
 * must respect the header's contract: data NUL-terminated at data_len, no
 * more than the cap.
 */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "net/sse.h"

struct sse_run {
    size_t max_event;
    size_t stop_after; /* the callback returns 7 at this event; 0: never */
    size_t events;
    uint64_t digest; /* FNV-1a over every event's fields */
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

static int on_event(void *ud, const struct sse_event *ev)
{
    struct sse_run *r = ud;
    if (ev->event == NULL || ev->data == NULL || ev->id == NULL)
        fuzz_fail("sse: an event field is NULL");
    if (ev->data[ev->data_len] != '\0')
        fuzz_fail("sse: data is not NUL-terminated at data_len");
    if (ev->data_len > r->max_event)
        fuzz_fail("sse: an event is larger than the cap");
    size_t el = strlen(ev->event), il = strlen(ev->id);
    r->digest = digest_add(r->digest, ev->event, el + 1);
    r->digest = digest_add(r->digest, ev->data, ev->data_len + 1);
    r->digest = digest_add(r->digest, ev->id, il + 1);
    r->events++;
    return r->stop_after != 0 && r->events == r->stop_after ? 7 : 0;
}

/* Parses s[0..n) in slices from the little generator seeded by seed (one
 * slice when seed is 0); returns feed's last result, *fin sse_finish's. */
static int sse_run(struct sse_run *r, const char *s, size_t n, unsigned seed, int *fin,
                   size_t *comments)
{
    struct sse_parser *p = sse_new(r->max_event, on_event, r);
    int rc = 0;
    uint32_t x = seed * 2654435761u + 1;
    size_t off = 0;
    while (off < n) {
        size_t len = n - off;
        if (seed != 0) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            size_t want = (x % 8 == 0) ? 0 : 1 + x % 17; /* empty slices too */
            len = want < len ? want : len;
        }
        rc = sse_feed(p, s + off, len);
        off += len;
    }
    if (n == 0)
        rc = sse_feed(p, s, 0);
    *fin = sse_finish(p);
    *comments = sse_comments(p);
    sse_free(p);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > FUZZ_MAX_INPUT)
        return 0;
    static const size_t caps[4] = {16, 256, 4096, 65536};
    unsigned ctl = data[0];
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    struct sse_run whole = {caps[ctl & 3], (ctl >> 2) & 7, 0, 0xcbf29ce484222325ull};
    struct sse_run cut = whole;
    int fin_whole, fin_cut;
    size_t com_whole, com_cut;
    int rc_whole = sse_run(&whole, s, n, 0, &fin_whole, &com_whole);
    int rc_cut = sse_run(&cut, s, n, (ctl >> 5) + 1, &fin_cut, &com_cut);
    if (rc_whole != rc_cut)
        fuzz_fail("sse: whole and sliced feeds return different results");
    if (whole.events != cut.events || whole.digest != cut.digest)
        fuzz_fail("sse: whole and sliced feeds dispatch different events");
    if (rc_whole == 0 && (fin_whole != fin_cut || com_whole != com_cut))
        fuzz_fail("sse: whole and sliced feeds end differently");
    return 0;
}
