/*
 * Tests of net/sse: a corpus of event streams (OpenAI, Anthropic and
 * llama.cpp shapes; CR, CRLF and mixed line ends; multi-line data; fields
 * with and without the space; id, retry and unknown fields; a BOM; blank
 * lines without data; an event cut off at EOF), each fed whole, byte by byte
 * and in 200 seeded random slicings, all of which must record exactly the
 * event list written by hand for the stream. Then the slice-boundary CRLF,
 * the max_event bound at and past the limit, linear growth for a huge event
 * fed bytewise, the callback's stop value, and UTF-8 split across slices.
 */
#include "testutil.h"

#include "net/sse.h"

#include "util/alloc.h"
#include "util/buf.h"

/* One expected event. */
struct want {
    const char *event;
    const char *data;
    const char *id;
};

/* A stream, the events it must yield, its comment count and what
 * sse_finish() must say at its end. */
struct stream_case {
    const char *bytes;
    size_t len;
    const struct want *events;
    size_t n_events;
    size_t comments;
    int finish;
};

#define BYTES(lit)  lit, sizeof(lit) - 1
#define EVENTS(arr) arr, sizeof(arr) / sizeof(arr[0])

/* Records every event as "{event}{id}len:data\n" (length-prefixed, so data
 * holding newlines or braces cannot blur two events into one). */
struct rec {
    struct buf out;
    size_t calls;
    size_t stop_at; /* the call that returns stop_val; 0 = never */
    int stop_val;
};

static void rec_put(struct buf *out, const char *event, const char *id, const char *data,
                    size_t len)
{
    assert_int_equal(buf_printf(out, "{%s}{%s}%zu:", event, id, len), BUF_OK);
    assert_int_equal(buf_append(out, data, len), BUF_OK);
    assert_int_equal(buf_putc(out, '\n'), BUF_OK);
}

static int rec_event(void *ud, const struct sse_event *ev)
{
    struct rec *r = ud;
    assert_int_equal(ev->data[ev->data_len], '\0'); /* NUL-terminated as promised */
    rec_put(&r->out, ev->event, ev->id, ev->data, ev->data_len);
    r->calls++;
    return r->calls == r->stop_at ? r->stop_val : 0;
}

static void rec_init(struct rec *r)
{
    memset(r, 0, sizeof *r);
    buf_init(&r->out, SIZE_MAX);
}

/* xorshift64*: deterministic, so a failing slicing reproduces. */
static uint64_t prng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

/* The next slice length: mostly short (0 included, to feed empty slices),
 * sometimes long enough to carry several lines at once. */
static size_t prng_slice(uint64_t *s, size_t left)
{
    uint64_t x = prng_next(s);
    size_t n = x % 8 == 0 ? (size_t)(x >> 8) % (left + 1) : (size_t)(x >> 8) % 6;
    return n < left ? n : left;
}

enum feed_mode { FEED_WHOLE, FEED_BYTES, FEED_RANDOM };

/* Feeds the case in the given mode and returns what was recorded (caller
 * frees); also checks the comment count and sse_finish(). */
static char *run_case(const struct stream_case *c, enum feed_mode mode, uint64_t seed)
{
    struct rec r;
    rec_init(&r);
    struct sse_parser *p = sse_new(1 << 20, rec_event, &r);
    size_t off = 0;
    while (off < c->len || (mode == FEED_RANDOM && off == 0)) {
        size_t n = mode == FEED_WHOLE   ? c->len
                   : mode == FEED_BYTES ? 1
                                        : prng_slice(&seed, c->len - off);
        assert_int_equal(sse_feed(p, c->bytes + off, n), 0);
        off += n;
    }
    assert_int_equal(sse_comments(p), c->comments);
    assert_int_equal(sse_finish(p), c->finish);
    sse_free(p);
    return buf_take(&r.out);
}

/* The hand-written expectation in the recorder's format. */
static char *expected_of(const struct stream_case *c)
{
    struct buf b;
    buf_init(&b, SIZE_MAX);
    for (size_t i = 0; i < c->n_events; i++)
        rec_put(&b, c->events[i].event, c->events[i].id, c->events[i].data,
                strlen(c->events[i].data));
    return buf_take(&b);
}

static void assert_same_events(const char *got, const char *want, const char *how)
{
    if (strcmp(got, want) != 0)
        print_message("fed %s:\n--- got\n%s--- want\n%s", how, got, want);
    assert_string_equal(got, want);
}

/* Whole, bytewise and 200 random slicings all yield the expected list. */
static void check_case(const struct stream_case *c)
{
    char *want = expected_of(c);
    char *got = run_case(c, FEED_WHOLE, 0);
    assert_same_events(got, want, "whole");
    free(got);
    got = run_case(c, FEED_BYTES, 0);
    assert_same_events(got, want, "byte by byte");
    free(got);
    for (uint64_t seed = 1; seed <= 200; seed++) {
        got = run_case(c, FEED_RANDOM, seed * 0x9E3779B97F4A7C15ULL);
        assert_same_events(got, want, "in random slices");
        free(got);
    }
    free(want);
}

#define OA_ROLE                                                                             \
    "{\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"},\"finish_" \
    "reason\":null}]}"
#define OA_HEL                                                                                    \
    "{\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":" \
    "null}]}"
#define OA_LO                                                                                    \
    "{\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":" \
    "null}]}"
#define OA_STOP \
    "{\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}"
#define OA_USAGE                                                                            \
    "{\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2," \
    "\"total_tokens\":7}}"

/* OpenAI: data-only events, the usage chunk with empty choices, then the
 * literal [DONE], all with an empty event name and id. */
static void an_openai_stream_yields_chunks_usage_and_done(void **state)
{
    (void)state;
    static const char s[] = "data: " OA_ROLE "\n\ndata: " OA_HEL "\n\ndata: " OA_LO
                            "\n\ndata: " OA_STOP "\n\ndata: " OA_USAGE "\n\ndata: [DONE]\n\n";
    static const struct want w[] = {{"", OA_ROLE, ""}, {"", OA_HEL, ""},   {"", OA_LO, ""},
                                    {"", OA_STOP, ""}, {"", OA_USAGE, ""}, {"", "[DONE]", ""}};
    struct stream_case c = {BYTES(s), EVENTS(w), 0, 0};
    check_case(&c);
}

#define AN_START "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"content\":[]}}"
#define AN_DELTA                                                                                 \
    "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":" \
    "\"Hi\"}}"
#define AN_ERROR \
    "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}"

/* Anthropic: every event is named, a ping event sits between the others,
 * and an error event after the 200 reaches the callback like any other. */
static void an_anthropic_stream_yields_named_events_ping_and_error(void **state)
{
    (void)state;
    static const char s[] = "event: message_start\ndata: " AN_START "\n\n"
                            "event: ping\ndata: {\"type\": \"ping\"}\n\n"
                            "event: content_block_delta\ndata: " AN_DELTA "\n\n"
                            "event: error\ndata: " AN_ERROR "\n\n";
    static const struct want w[] = {{"message_start", AN_START, ""},
                                    {"ping", "{\"type\": \"ping\"}", ""},
                                    {"content_block_delta", AN_DELTA, ""},
                                    {"error", AN_ERROR, ""}};
    struct stream_case c = {BYTES(s), EVENTS(w), 0, 0};
    check_case(&c);
}

#define LL_HI "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}"
#define LL_FIN                                                                         \
    "{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{" \
    "\"prompt_tokens\":3,\"completion_tokens\":1},\"timings\":{\"predicted_ms\":1.5}}"

/* llama.cpp: ": ping" comments (alone, and between an event's lines) are
 * counted and change nothing; usage rides in the finish chunk. */
static void a_llamacpp_stream_counts_ping_comments_and_keeps_usage(void **state)
{
    (void)state;
    static const char s[] =
        ": ping\n\ndata: " LL_HI "\n\n: ping\ndata: " LL_FIN "\n\n:\ndata: [DONE]\n\n";
    static const struct want w[] = {{"", LL_HI, ""}, {"", LL_FIN, ""}, {"", "[DONE]", ""}};
    struct stream_case c = {BYTES(s), EVENTS(w), 3, 0};
    check_case(&c);
}

/* A lone CR ends a line exactly like LF. */
static void cr_only_line_ends_split_lines(void **state)
{
    (void)state;
    static const char s[] = "event: a\rdata: 1\r\rdata: 2\r\r";
    static const struct want w[] = {{"a", "1", ""}, {"", "2", ""}};
    struct stream_case c = {BYTES(s), EVENTS(w), 0, 0};
    check_case(&c);
}

/* CRLF is one line end, so no CR leaks into values and "\r\n\r\n"
 * dispatches once. */
static void crlf_line_ends_are_one_line_end_each(void **state)
{
    (void)state;
    static const char s[] = "event: a\r\ndata: 1\r\ndata: 2\r\n\r\nid: 9\r\ndata: 3\r\n\r\n";
    static const struct want w[] = {{"a", "1\n2", ""}, {"", "3", "9"}};
    struct stream_case c = {BYTES(s), EVENTS(w), 0, 0};
    check_case(&c);
}

/* Mixed ends: "\r\r\n" is a CR line end then one CRLF (a blank line), and
 * "\n\r" is an LF then a CR blank line; each event dispatches once. */
static void mixed_line_ends_in_one_stream(void **state)
{
    (void)state;
    static const char s[] = "data: a\r\n\ndata: b\r\r\ndata: c\n\rdata: d\r\n\r";
    static const struct want w[] = {{"", "a", ""}, {"", "b", ""}, {"", "c", ""}, {"", "d", ""}};
    struct stream_case c = {BYTES(s), EVENTS(w), 0, 0};
    check_case(&c);
}

/* Data lines join with '\n'; "data:" and a bare "data" add empty lines; an
 * event whose only data is empty still dispatches (its buffer held "\n"). */
static void multi_line_data_joins_with_newlines(void **state)
{
    (void)state;
    static const char s[] = "data: line1\ndata: line2\ndata:\ndata\ndata: line5\n\n"
                            "data:\n\ndata\n\n";
    static const struct want w[] = {
        {"", "line1\nline2\n\n\nline5", ""}, {"", "", ""}, {"", "", ""}};
    struct stream_case c = {BYTES(s), EVENTS(w), 0, 0};
    check_case(&c);
}

/* Exactly one space after the colon is dropped: with none or one the value
 * is the same, a second space stays, later colons belong to the value. */
static void one_space_after_the_colon_is_optional(void **state)
{
    (void)state;
    static const char s[] = "data:x\n\ndata: x\n\ndata:  x\n\ndata: \n\n"
                            "event:foo\ndata: a: b\n\n";
    static const struct want w[] = {
        {"", "x", ""}, {"", "x", ""}, {"", " x", ""}, {"", "", ""}, {"foo", "a: b", ""}};
    struct stream_case c = {BYTES(s), EVENTS(w), 0, 0};
    check_case(&c);
}

/* id persists across events until changed (a bare "id" empties it, an id
 * holding NUL is ignored, an id set in an undispatched event still counts);
 * retry, unknown fields, "DATA" and "data " are ignored; the last event:
 * wins. */
static void id_retry_and_unknown_fields(void **state)
{
    (void)state;
    static const char s[] = "id: 7\nretry: 1000\nfoo: bar\nDATA: upper\ndata : no\ndata: a\n\n"
                            "data: b\n\n"
                            "id\ndata: c\n\n"
                            "id: 8\nretry: x\n\n"
                            "id: a\0b\nevent: x\nevent: y\ndata: d\n\n";
    static const struct want w[] = {{"", "a", "7"}, {"", "b", "7"}, {"", "c", ""}, {"y", "d", "8"}};
    struct stream_case c = {BYTES(s), EVENTS(w), 0, 0};
    check_case(&c);
}

/* A BOM is skipped only at the very start of the stream: later, before a
 * field name, it makes the field unknown, and inside a value it is data. */
static void a_leading_bom_is_skipped_once(void **state)
{
    (void)state;
    static const char s[] = "\xEF\xBB\xBF"
                            "data: a\n\n\xEF\xBB\xBF"
                            "data: b\n\ndata: \xEF\xBB\xBFkeep\n\n";
    static const struct want w[] = {{"", "a", ""}, {"", "\xEF\xBB\xBFkeep", ""}};
    struct stream_case c = {BYTES(s), EVENTS(w), 0, 0};
    check_case(&c);
}

/* Blank lines with no data dispatch nothing, and they reset a pending
 * event name, so "lonely" never reaches a later event. */
static void blank_lines_without_data_dispatch_nothing(void **state)
{
    (void)state;
    static const char s[] = "\n\n\r\n\revent: lonely\n\ndata: x\n\n:only a comment\n\n";
    static const struct want w[] = {{"", "x", ""}};
    struct stream_case c = {BYTES(s), EVENTS(w), 1, 0};
    check_case(&c);
}

/* An event with no closing blank line is discarded at EOF, and finish
 * reports it, whether its last line ended or not. */
static void an_event_cut_off_at_eof_is_discarded(void **state)
{
    (void)state;
    static const char s1[] = "data: a\n\nevent: e\ndata: b\n";
    static const char s2[] = "data: a\n\ndata: b";
    static const struct want w[] = {{"", "a", ""}};
    struct stream_case c1 = {BYTES(s1), EVENTS(w), 0, 1};
    struct stream_case c2 = {BYTES(s2), EVENTS(w), 0, 1};
    check_case(&c1);
    check_case(&c2);
}

/* A CR closing one slice and an LF opening the next are one line end: the
 * LF must not count as a blank line, even with an empty slice between,
 * while a CR after a slice-final CR is a real blank line. */
static void a_crlf_split_across_slices_is_one_line_end(void **state)
{
    (void)state;
    struct rec r;
    rec_init(&r);
    struct sse_parser *p = sse_new(1024, rec_event, &r);
    assert_int_equal(sse_feed(p, "data: x\r", 8), 0);
    assert_int_equal(sse_feed(p, "", 0), 0);
    assert_int_equal(sse_feed(p, "\n", 1), 0);
    assert_int_equal(r.calls, 0); /* the LF was no blank line */
    assert_int_equal(sse_feed(p, "data: y\r", 8), 0);
    assert_int_equal(sse_feed(p, "\r", 1), 0);
    assert_int_equal(r.calls, 1);
    assert_string_equal(buf_cstr(&r.out), "{}{}3:x\ny\n");
    assert_int_equal(sse_finish(p), 0);
    sse_free(p);
    buf_free(&r.out);
}

/* Feeds s whole or bytewise into a parser bounded at max; returns the first
 * nonzero feed result (0 when all succeeded) and the event count. */
static int feed_bounded(const char *s, size_t len, size_t max, int bytewise, size_t *calls)
{
    struct rec r;
    rec_init(&r);
    struct sse_parser *p = sse_new(max, rec_event, &r);
    int rc = 0;
    for (size_t off = 0; off < len && rc == 0; off += bytewise ? 1 : len)
        rc = sse_feed(p, s + off, bytewise ? 1 : len);
    if (rc != 0)
        assert_int_equal(sse_feed(p, "\n\n", 2), rc); /* the error is sticky */
    *calls = r.calls;
    sse_free(p);
    buf_free(&r.out);
    return rc;
}

/* A line of exactly max_event bytes passes and one byte more fails, whole
 * or bytewise; with a data line already held the pending line gets only
 * what is left (line plus data is what is bounded). */
static void max_event_allows_the_limit_and_rejects_one_more(void **state)
{
    (void)state;
    char s[200];
    for (int bytewise = 0; bytewise <= 1; bytewise++) {
        size_t calls;
        /* "data: " + 58 = 64 bytes: at the limit. */
        int n = snprintf(s, sizeof s, "data: %058d\r\n\r\n", 0);
        assert_int_equal(feed_bounded(s, (size_t)n, 64, bytewise, &calls), 0);
        assert_int_equal(calls, 1);
        n = snprintf(s, sizeof s, "data: %059d\r\n\r\n", 0);
        assert_int_equal(feed_bounded(s, (size_t)n, 64, bytewise, &calls), SSE_TOO_BIG);
        assert_int_equal(calls, 0);
        /* First line keeps 20 + '\n' = 21 bytes of data, so the second
         * line may hold 43 bytes ("data: " + 37) but not 44. */
        n = snprintf(s, sizeof s, "data: %020d\ndata: %037d\n\n", 0, 0);
        assert_int_equal(feed_bounded(s, (size_t)n, 64, bytewise, &calls), 0);
        assert_int_equal(calls, 1);
        n = snprintf(s, sizeof s, "data: %020d\ndata: %038d\n\n", 0, 0);
        assert_int_equal(feed_bounded(s, (size_t)n, 64, bytewise, &calls), SSE_TOO_BIG);
        /* A dispatched event frees its budget for the next one. */
        n = snprintf(s, sizeof s, "data: %058d\n\ndata: %058d\n\n", 0, 1);
        assert_int_equal(feed_bounded(s, (size_t)n, 64, bytewise, &calls), 0);
        assert_int_equal(calls, 2);
    }
}

/* A 1 MiB event fed one byte at a time costs a logarithmic number of
 * allocations (doubling buffers), not one per byte, and arrives intact. */
static void a_huge_event_fed_bytewise_allocates_logarithmically(void **state)
{
    (void)state;
    const size_t big = (size_t)1 << 20;
    struct rec r;
    rec_init(&r);
    struct sse_parser *p = sse_new(2 * big, rec_event, &r);
    unsigned long before = alloc_count();
    for (const char *c = "data: "; *c != '\0'; c++)
        assert_int_equal(sse_feed(p, c, 1), 0);
    for (size_t i = 0; i < big; i++)
        assert_int_equal(sse_feed(p, &"0123456789"[i % 10], 1), 0);
    assert_int_equal(sse_feed(p, "\n", 1), 0);
    assert_int_equal(sse_feed(p, "\n", 1), 0);
    unsigned long allocs = alloc_count() - before;
    assert_true(allocs < 64);
    assert_int_equal(r.calls, 1);
    const char *out = buf_cstr(&r.out);
    static const char head[] = "{}{}1048576:";
    assert_memory_equal(out, head, sizeof head - 1);
    const char *data = out + sizeof head - 1;
    for (size_t i = 0; i < big; i++)
        assert_int_equal(data[i], "0123456789"[i % 10]);
    assert_int_equal(data[big], '\n');
    sse_free(p);
    buf_free(&r.out);
}

/* A nonzero callback result stops the feed at once (later events in the
 * same slice are not delivered) and is returned, then again on every
 * later feed; whole and bytewise alike. */
static void a_nonzero_callback_stops_and_is_returned(void **state)
{
    (void)state;
    static const char s[] = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
    for (int bytewise = 0; bytewise <= 1; bytewise++) {
        struct rec r;
        rec_init(&r);
        r.stop_at = 2;
        r.stop_val = 7;
        struct sse_parser *p = sse_new(1024, rec_event, &r);
        int rc = 0;
        size_t step = bytewise ? 1 : sizeof s - 1;
        for (size_t off = 0; off < sizeof s - 1 && rc == 0; off += step)
            rc = sse_feed(p, s + off, step);
        assert_int_equal(rc, 7);
        assert_int_equal(r.calls, 2);
        assert_int_equal(sse_feed(p, "data: 4\n\n", 9), 7);
        assert_int_equal(r.calls, 2);
        assert_string_equal(buf_cstr(&r.out), "{}{}1:1\n{}{}1:2\n");
        sse_free(p);
        buf_free(&r.out);
    }
}

/* Multibyte UTF-8 cut at every byte position (two slices) and at every
 * pair of positions (three slices) comes out byte-identical. */
static void utf8_split_across_slices_comes_out_joined(void **state)
{
    (void)state;
    static const char text[] = "h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80!";
    static const char s[] = "data: h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80!\n\n";
    const size_t len = sizeof s - 1;
    char want[64];
    snprintf(want, sizeof want, "{}{}%zu:%s\n", sizeof text - 1, text);
    for (size_t a = 0; a <= len; a++) {
        for (size_t b = a; b <= len; b++) {
            struct rec r;
            rec_init(&r);
            struct sse_parser *p = sse_new(1024, rec_event, &r);
            assert_int_equal(sse_feed(p, s, a), 0);
            assert_int_equal(sse_feed(p, s + a, b - a), 0);
            assert_int_equal(sse_feed(p, s + b, len - b), 0);
            assert_string_equal(buf_cstr(&r.out), want);
            sse_free(p);
            buf_free(&r.out);
        }
    }
}

/* sse_free(NULL) is a no-op, and finish on a clean stream (or one that
 * held only a BOM) reports nothing pending. */
static void free_null_and_finish_on_a_clean_stream(void **state)
{
    (void)state;
    sse_free(NULL);
    struct rec r;
    rec_init(&r);
    struct sse_parser *p = sse_new(64, rec_event, &r);
    assert_int_equal(sse_finish(p), 0);
    sse_free(p);
    p = sse_new(64, rec_event, &r);
    assert_int_equal(sse_feed(p, "\xEF\xBB", 2), 0);
    assert_int_equal(sse_feed(p, "\xBF", 1), 0);
    assert_int_equal(sse_finish(p), 0);
    sse_free(p);
    assert_int_equal(r.calls, 0);
    buf_free(&r.out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(an_openai_stream_yields_chunks_usage_and_done),
        cmocka_unit_test(an_anthropic_stream_yields_named_events_ping_and_error),
        cmocka_unit_test(a_llamacpp_stream_counts_ping_comments_and_keeps_usage),
        cmocka_unit_test(cr_only_line_ends_split_lines),
        cmocka_unit_test(crlf_line_ends_are_one_line_end_each),
        cmocka_unit_test(mixed_line_ends_in_one_stream),
        cmocka_unit_test(multi_line_data_joins_with_newlines),
        cmocka_unit_test(one_space_after_the_colon_is_optional),
        cmocka_unit_test(id_retry_and_unknown_fields),
        cmocka_unit_test(a_leading_bom_is_skipped_once),
        cmocka_unit_test(blank_lines_without_data_dispatch_nothing),
        cmocka_unit_test(an_event_cut_off_at_eof_is_discarded),
        cmocka_unit_test(a_crlf_split_across_slices_is_one_line_end),
        cmocka_unit_test(max_event_allows_the_limit_and_rejects_one_more),
        cmocka_unit_test(a_huge_event_fed_bytewise_allocates_logarithmically),
        cmocka_unit_test(a_nonzero_callback_stops_and_is_returned),
        cmocka_unit_test(utf8_split_across_slices_comes_out_joined),
        cmocka_unit_test(free_null_and_finish_on_a_clean_stream),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
