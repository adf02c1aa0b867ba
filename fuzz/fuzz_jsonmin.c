/*
 * Fuzz target: the JSON minifier (util/jsonmin.h), the one pass that
 * validates and minifies, and the content rule (a whole JSON value, or the
 * ```json fenced blocks of Markdown). Properties from the header: output is
 * never longer than the input; text that is not JSON comes out unchanged;
 * minified JSON is still JSON and minifying it again changes nothing; the
 * content's stats agree with what was appended; and content that holds no
 * JSON-looking byte at all is left alone.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "util/buf.h"
#include "util/jsonmin.h"

static void check_value(const char *s, size_t n)
{
    char *out = malloc(n > 0 ? n : 1);
    char *again = malloc(n > 0 ? n : 1);
    if (out == NULL || again == NULL)
        abort();
    bool is = jsonmin_is_json(s, n);
    size_t m = jsonmin_value(s, n, out);
    if (m > n)
        fuzz_fail("jsonmin: jsonmin_value grew the text");
    if (!is && (m != n || memcmp(out, s, n) != 0))
        fuzz_fail("jsonmin: text that is not JSON was changed");
    if (is) {
        if (!jsonmin_is_json(out, m))
            fuzz_fail("jsonmin: minified JSON is no longer JSON");
        size_t m2 = jsonmin_value(out, m, again);
        if (m2 != m || memcmp(again, out, m) != 0)
            fuzz_fail("jsonmin: minifying twice changed the text");
    }
    free(out);
    free(again);
}

static void check_content(const char *s, size_t n)
{
    struct buf out;
    buf_init(&out, (size_t)FUZZ_MAX_INPUT * 2);
    buf_append(&out, "p", 1); /* content is appended after what is there */
    struct jsonmin_stats st;
    memset(&st, 0xa5, sizeof st);
    enum buf_result r = jsonmin_content(s, n, &out, &st);
    if (r != BUF_OK)
        fuzz_fail("jsonmin: jsonmin_content failed on a small input");
    if (out.data[0] != 'p')
        fuzz_fail("jsonmin: jsonmin_content overwrote what was in out");
    size_t got = out.len - 1;
    if (st.bytes_before != n || st.bytes_after != got || got > n)
        fuzz_fail("jsonmin: jsonmin_content's stats disagree with its output");
    if (got == n && memcmp(out.data + 1, s, n) != 0)
        fuzz_fail("jsonmin: content changed without saving a byte");
    if ((got == n) != (st.tokens_saved == 0))
        fuzz_fail("jsonmin: tokens_saved disagrees with the bytes saved");
    if (memchr(s, '{', n) == NULL && memchr(s, '[', n) == NULL && memchr(s, '`', n) == NULL &&
        got != n)
        fuzz_fail("jsonmin: content without JSON was changed");
    if (got < n) {
        /* Minifying the result again changes nothing. */
        struct buf again;
        buf_init(&again, (size_t)FUZZ_MAX_INPUT * 2);
        if (jsonmin_content(out.data + 1, got, &again, NULL) != BUF_OK)
            fuzz_fail("jsonmin: second jsonmin_content failed");
        if (again.len != got || memcmp(again.data, out.data + 1, got) != 0)
            fuzz_fail("jsonmin: jsonmin_content is not idempotent");
        buf_free(&again);
    }
    buf_free(&out);

    /* An out buffer that may be too small: BUF_TOO_BIG leaves it empty. */
    struct buf tight;
    buf_init(&tight, n / 2 + 1);
    enum buf_result tr = jsonmin_content(s, n, &tight, NULL);
    if (tr != BUF_OK && (tr != BUF_TOO_BIG || tight.len != 0))
        fuzz_fail("jsonmin: a failed append did not reset the buffer");
    if (tr == BUF_OK && tight.len > n / 2 + 1)
        fuzz_fail("jsonmin: the buffer passed its maximum");
    buf_free(&tight);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_MAX_INPUT)
        return 0;
    const char *s = (const char *)data;
    check_value(s, size);
    check_content(s, size);
    return 0;
}
