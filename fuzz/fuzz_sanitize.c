/*
 * Fuzz target: the terminal sanitiser (util/utf8.h utf8_sanitize_terminal),
 * which every piece of untrusted text passes before it reaches a terminal.
 * It checks what the header promises, on every input: the output is valid
 * UTF-8; holds no ESC, no C0 control but \n and \t, no DEL, no C1 control
 * (U+0080..U+009F), no bidirectional override or isolate (U+202A..U+202E,
 * U+2066..U+2069); is at most three bytes per input byte; is appended after
 * what the buffer held; and sanitising it again changes nothing. Text that
 * holds none of those things passes unchanged (the sanitiser removes what
 * is dangerous, not what is unusual). A failed property aborts, so
 * libFuzzer keeps the input.
 */
#include "config.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "util/buf.h"
#include "util/utf8.h"

/* True when the code point may never reach the terminal. */
static bool forbidden(uint32_t cp)
{
    if (cp < 0x20)
        return cp != '\n' && cp != '\t';
    if (cp >= 0x7f && cp <= 0x9f)
        return true;
    return (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

/* Checks the safety properties of s[0..n). */
static void check_safe(const char *s, size_t n)
{
    if (!utf8_valid(s, n, NULL))
        fuzz_fail("sanitize: the output is not valid UTF-8");
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len = utf8_decode(s + i, n - i, &cp);
        if (forbidden(cp))
            fuzz_fail("sanitize: a control, C1 or bidi character reached the output");
        i += len;
    }
}

/* True when s[0..n) is valid UTF-8 with nothing the sanitiser removes. */
static bool harmless(const char *s, size_t n)
{
    if (!utf8_valid(s, n, NULL))
        return false;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len = utf8_decode(s + i, n - i, &cp);
        if (forbidden(cp))
            return false;
        i += len;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_MAX_INPUT)
        return 0;
    const char *s = (const char *)data;
    struct buf out;
    buf_init(&out, 3 * size + 16);
    buf_putc(&out, 'x'); /* the sanitised text is appended after this */
    if (utf8_sanitize_terminal(&out, s, size) != BUF_OK)
        fuzz_fail("sanitize: the output passed three bytes per input byte");
    if (out.data[0] != 'x')
        fuzz_fail("sanitize: what the buffer held was overwritten");
    const char *o = out.data + 1;
    size_t on = out.len - 1;
    check_safe(o, on);
    if (on > 3 * size)
        fuzz_fail("sanitize: more than three output bytes per input byte");
    if (harmless(s, size) && (on != size || memcmp(o, s, size) != 0))
        fuzz_fail("sanitize: harmless text was changed");

    struct buf again;
    buf_init(&again, 3 * on + 16);
    if (utf8_sanitize_terminal(&again, o, on) != BUF_OK)
        fuzz_fail("sanitize: sanitising the output failed");
    if (again.len != on || (on > 0 && memcmp(again.data, o, on) != 0))
        fuzz_fail("sanitize: sanitising twice changed the text");
    buf_free(&again);
    buf_free(&out);

    /* A buffer that may be too small: an error, never an overrun. */
    struct buf tight;
    buf_init(&tight, size / 2 + 1);
    enum buf_result tr = utf8_sanitize_terminal(&tight, s, size);
    if (tr != BUF_OK && tight.len != 0)
        fuzz_fail("sanitize: a failed append did not reset the buffer");
    buf_free(&tight);
    return 0;
}
