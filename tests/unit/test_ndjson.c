/*
 * Tests of net/ndjson: an Ollama-like stream (a malformed line, CRLF, blank
 * and whitespace-only lines, a final line without LF) fed whole, byte by
 * byte and in 200 seeded random slicings must hand over exactly the lines
 * written by hand; the max_line bound at and past the limit; a nonzero
 * callback result stopping the splitter; finish on empty and blank tails.
 */
#include "testutil.h"

#include "net/ndjson.h"

#include "util/alloc.h"
#include "util/buf.h"

/* Records each line as "len:line\n" (length-prefixed, so a line holding a
 * newline-like byte cannot pass for two). */
struct rec {
    struct buf out;
    size_t calls;
    size_t stop_at; /* the call that returns stop_val; 0 = never */
    int stop_val;
};

static void rec_put(struct buf *out, const char *line, size_t len)
{
    assert_int_equal(buf_printf(out, "%zu:", len), BUF_OK);
    assert_int_equal(buf_append(out, line, len), BUF_OK);
    assert_int_equal(buf_putc(out, '\n'), BUF_OK);
}

static int rec_line(void *ud, const char *line, size_t len)
{
    struct rec *r = ud;
    assert_int_equal(line[len], '\0'); /* NUL-terminated as promised */
    rec_put(&r->out, line, len);
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

/* The next slice length: mostly short (0 included), sometimes long. */
static size_t prng_slice(uint64_t *s, size_t left)
{
    uint64_t x = prng_next(s);
    size_t n = x % 8 == 0 ? (size_t)(x >> 8) % (left + 1) : (size_t)(x >> 8) % 6;
    return n < left ? n : left;
}

#define OL_1 \
    "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"done\":false}"
#define OL_2 \
    "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"lo\"},\"done\":false}"
#define OL_3                                                                                \
    "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true," \
    "\"done_reason\":\"stop\",\"prompt_eval_count\":26,\"eval_count\":2}"

/* LF, a CRLF blank line, a CRLF-ended line, an empty line, a malformed line
 * (the splitter does not judge JSON), a whitespace-only line, a CR-only
 * line, and a final line without LF. */
static const char ollama[] = OL_1 "\n\r\n" OL_2 "\r\n\nnot json {\n \t \n\r\n" OL_3;
static const char *const ollama_lines[] = {OL_1, OL_2, "not json {", OL_3};

enum feed_mode { FEED_WHOLE, FEED_BYTES, FEED_RANDOM };

/* Feeds the Ollama stream in the given mode, finishes, and returns what
 * was recorded (caller frees). */
static char *run_ollama(enum feed_mode mode, uint64_t seed)
{
    struct rec r;
    rec_init(&r);
    struct ndjson_parser *p = ndjson_new(4096, rec_line, &r);
    const size_t len = sizeof ollama - 1;
    size_t off = 0;
    while (off < len) {
        size_t n = mode == FEED_WHOLE ? len : mode == FEED_BYTES ? 1 : prng_slice(&seed, len - off);
        assert_int_equal(ndjson_feed(p, ollama + off, n), 0);
        off += n;
    }
    assert_int_equal(r.calls, 3); /* the last line waits for finish */
    assert_int_equal(ndjson_finish(p), 0);
    ndjson_free(p);
    return buf_take(&r.out);
}

/* The same lines come out whole, bytewise and in 200 random slicings:
 * CRs stripped, blank lines skipped, the unterminated tail handed over by
 * finish. */
static void an_ollama_stream_yields_the_same_lines_however_sliced(void **state)
{
    (void)state;
    struct buf want;
    buf_init(&want, SIZE_MAX);
    for (size_t i = 0; i < sizeof ollama_lines / sizeof ollama_lines[0]; i++)
        rec_put(&want, ollama_lines[i], strlen(ollama_lines[i]));
    char *got = run_ollama(FEED_WHOLE, 0);
    assert_string_equal(got, buf_cstr(&want));
    free(got);
    got = run_ollama(FEED_BYTES, 0);
    assert_string_equal(got, buf_cstr(&want));
    free(got);
    for (uint64_t seed = 1; seed <= 200; seed++) {
        got = run_ollama(FEED_RANDOM, seed * 0x9E3779B97F4A7C15ULL);
        assert_string_equal(got, buf_cstr(&want));
        free(got);
    }
    buf_free(&want);
}

/* Feeds s whole or bytewise into a splitter bounded at max, then finishes;
 * returns the first nonzero result and the lines recorded. */
static int feed_bounded(const char *s, size_t max, int bytewise, struct rec *r)
{
    rec_init(r);
    struct ndjson_parser *p = ndjson_new(max, rec_line, r);
    size_t len = strlen(s);
    int rc = 0;
    for (size_t off = 0; off < len && rc == 0; off += bytewise ? 1 : len)
        rc = ndjson_feed(p, s + off, bytewise ? 1 : len);
    if (rc == 0)
        rc = ndjson_finish(p);
    else
        assert_int_equal(ndjson_finish(p), rc); /* the error is sticky */
    ndjson_free(p);
    return rc;
}

/* A line of exactly max_line bytes passes and one more fails, whole or
 * bytewise, with or without its LF; a trailing CR counts while held (the
 * splitter cannot know it is trailing before the LF arrives). */
static void max_line_allows_the_limit_and_rejects_one_more(void **state)
{
    (void)state;
    for (int bytewise = 0; bytewise <= 1; bytewise++) {
        struct rec r;
        assert_int_equal(feed_bounded("0123456789abcdef\n0123456789abcdef", 16, bytewise, &r), 0);
        assert_string_equal(buf_cstr(&r.out), "16:0123456789abcdef\n16:0123456789abcdef\n");
        buf_free(&r.out);
        assert_int_equal(feed_bounded("0123456789abcdefg\n", 16, bytewise, &r), NDJSON_TOO_BIG);
        assert_int_equal(r.calls, 0);
        buf_free(&r.out);
        assert_int_equal(feed_bounded("0123456789abcdefg", 16, bytewise, &r), NDJSON_TOO_BIG);
        buf_free(&r.out);
        assert_int_equal(feed_bounded("0123456789abcde\r\n", 16, bytewise, &r), 0);
        assert_string_equal(buf_cstr(&r.out), "15:0123456789abcde\n");
        buf_free(&r.out);
        assert_int_equal(feed_bounded("0123456789abcdef\r\n", 16, bytewise, &r), NDJSON_TOO_BIG);
        buf_free(&r.out);
    }
}

/* A nonzero callback result stops at once (the rest of the slice is not
 * delivered), is returned, and is returned again by later feeds and by
 * finish without calling back. */
static void a_nonzero_callback_stops_and_is_returned(void **state)
{
    (void)state;
    for (int bytewise = 0; bytewise <= 1; bytewise++) {
        struct rec r;
        rec_init(&r);
        r.stop_at = 2;
        r.stop_val = 5;
        struct ndjson_parser *p = ndjson_new(64, rec_line, &r);
        static const char s[] = "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n";
        int rc = 0;
        size_t step = bytewise ? 1 : sizeof s - 1;
        for (size_t off = 0; off < sizeof s - 1 && rc == 0; off += step)
            rc = ndjson_feed(p, s + off, step);
        assert_int_equal(rc, 5);
        assert_int_equal(ndjson_feed(p, "{}\n", 3), 5);
        assert_int_equal(ndjson_finish(p), 5);
        assert_int_equal(r.calls, 2);
        assert_string_equal(buf_cstr(&r.out), "7:{\"a\":1}\n7:{\"a\":2}\n");
        ndjson_free(p);
        buf_free(&r.out);
    }
}

/* finish hands over nothing for an empty stream or a blank tail, and the
 * callback's value when it stops on the tail; ndjson_free(NULL) is a no-op. */
static void finish_on_empty_and_blank_tails(void **state)
{
    (void)state;
    ndjson_free(NULL);
    struct rec r;
    assert_int_equal(feed_bounded("", 64, 0, &r), 0);
    assert_int_equal(r.calls, 0);
    buf_free(&r.out);
    assert_int_equal(feed_bounded("{}\n  \r", 64, 0, &r), 0);
    assert_string_equal(buf_cstr(&r.out), "2:{}\n");
    buf_free(&r.out);
    rec_init(&r);
    r.stop_at = 1;
    r.stop_val = 9;
    struct ndjson_parser *p = ndjson_new(64, rec_line, &r);
    assert_int_equal(ndjson_feed(p, "{\"tail\":1}\r", 11), 0);
    assert_int_equal(ndjson_finish(p), 9);
    assert_string_equal(buf_cstr(&r.out), "10:{\"tail\":1}\n");
    ndjson_free(p);
    buf_free(&r.out);
}

/* A 1 MiB line fed byte by byte costs a logarithmic number of allocations
 * (the line buffer doubles), not one per byte. */
static void a_huge_line_fed_bytewise_allocates_logarithmically(void **state)
{
    (void)state;
    const size_t big = (size_t)1 << 20;
    struct rec r;
    rec_init(&r);
    struct ndjson_parser *p = ndjson_new(big, rec_line, &r);
    unsigned long before = alloc_count();
    for (size_t i = 0; i < big; i++)
        assert_int_equal(ndjson_feed(p, "x", 1), 0);
    assert_int_equal(ndjson_feed(p, "\n", 1), 0);
    assert_true(alloc_count() - before < 64);
    assert_int_equal(r.calls, 1);
    assert_memory_equal(buf_cstr(&r.out), "1048576:xxx", 11);
    ndjson_free(p);
    buf_free(&r.out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(an_ollama_stream_yields_the_same_lines_however_sliced),
        cmocka_unit_test(max_line_allows_the_limit_and_rejects_one_more),
        cmocka_unit_test(a_nonzero_callback_stops_and_is_returned),
        cmocka_unit_test(finish_on_empty_and_blank_tails),
        cmocka_unit_test(a_huge_line_fed_bytewise_allocates_logarithmically),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
