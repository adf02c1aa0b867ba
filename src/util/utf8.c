/*
 * UTF-8 handling for untrusted text. Well-formedness follows Unicode's
 * table 3-7 (the same rule as RFC 3629): the second byte's range depends on
 * the lead byte, which is what rules out overlongs (C0, C1, E0 80..9F,
 * F0 80..8F), surrogates (ED A0..BF) and code points above U+10FFFF
 * (F4 90.., F5..FF). Every function below is built on one scanner,
 * utf8_scan(), so validation, decoding, truncation and sanitising can never
 * disagree about where a sequence ends.
 *
 * The terminal sanitiser replaces each *maximal subpart* of an ill-formed
 * sequence with one U+FFFD (Unicode's recommended practice, also the
 * WHATWG decoder's): "E2 82 41" gives U+FFFD "A" (E2 82 is a valid start cut
 * short), while "C0 80" gives two U+FFFD (C0 can never start a sequence, so
 * each byte is its own bad unit). Its output contains no ESC, no C0 control
 * other than \n and \t, no DEL and no C1 control, so nothing it emits can
 * start a terminal control sequence, however the input was split or
 * malformed; parsing escape sequences whole only decides how much of their
 * text to drop along with the introducer.
 */
#include "config.h"

#include "util/utf8.h"

enum utf8_scan_result {
    UTF8_OK,    /* a complete well-formed sequence */
    UTF8_BAD,   /* ill-formed; *len is the maximal subpart (>= 1) */
    UTF8_SHORT, /* a valid start cut off by the end of input; *len = n */
};

/* Examines the sequence at s[0..n), n > 0: its status, its length (see the
 * enum) and, when UTF8_OK, its code point in *cp. */
static enum utf8_scan_result utf8_scan(const unsigned char *s, size_t n, uint32_t *cp, size_t *len)
{
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        *len = 1;
        return UTF8_OK;
    }
    size_t need;
    uint32_t v;
    unsigned lo = 0x80, hi = 0xbf; /* the allowed range of the next byte */
    if (c >= 0xc2 && c <= 0xdf) {
        need = 2;
        v = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 3;
        v = c & 0x0f;
        if (c == 0xe0)
            lo = 0xa0; /* overlong below U+0800 */
        else if (c == 0xed)
            hi = 0x9f; /* surrogates U+D800..U+DFFF */
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4;
        v = c & 0x07;
        if (c == 0xf0)
            lo = 0x90; /* overlong below U+10000 */
        else if (c == 0xf4)
            hi = 0x8f; /* above U+10FFFF */
    } else {
        *len = 1; /* a continuation byte, C0, C1 or F5..FF */
        return UTF8_BAD;
    }
    for (size_t i = 1; i < need; i++) {
        if (i >= n) {
            *len = i;
            return UTF8_SHORT;
        }
        unsigned b = s[i];
        if (b < lo || b > hi) {
            *len = i;
            return UTF8_BAD;
        }
        lo = 0x80;
        hi = 0xbf;
        v = v << 6 | (b & 0x3f);
    }
    *cp = v;
    *len = need;
    return UTF8_OK;
}

bool utf8_valid(const char *s, size_t n, size_t *bad)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        /* Plain ASCII runs are the common case; skip them without scanning. */
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t len;
        if (utf8_scan(u + i, n - i, &cp, &len) != UTF8_OK) {
            if (bad != NULL)
                *bad = i;
            return false;
        }
        i += len;
    }
    return true;
}

size_t utf8_decode(const char *s, size_t n, uint32_t *cp)
{
    size_t len;
    if (n == 0 || utf8_scan((const unsigned char *)s, n, cp, &len) != UTF8_OK) {
        *cp = 0xfffd;
        return 1;
    }
    return len;
}

size_t utf8_encode(uint32_t cp, char out[4])
{
    if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        cp = 0xfffd;
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

static bool utf8_is_cont(unsigned char c)
{
    return (c & 0xc0) == 0x80;
}

size_t utf8_truncate(const char *s, size_t n, size_t max)
{
    const unsigned char *u = (const unsigned char *)s;
    if (max >= n)
        return n;
    /* Cutting at max splits a sequence only when a well-formed one starts
     * in the three bytes before max and reaches past it. Stray or
     * ill-formed bytes are single units and may be cut anywhere. */
    for (size_t k = 1; k <= 3 && k <= max; k++) {
        size_t j = max - k;
        if (utf8_is_cont(u[j]))
            continue;
        uint32_t cp;
        size_t len;
        if (utf8_scan(u + j, n - j, &cp, &len) == UTF8_OK && len > k)
            return j;
        break;
    }
    return max;
}

size_t utf8_incomplete_tail(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t k = 1; k <= 3 && k <= n; k++) {
        size_t j = n - k;
        if (utf8_is_cont(u[j]))
            continue;
        uint32_t cp;
        size_t len;
        return utf8_scan(u + j, k, &cp, &len) == UTF8_SHORT ? k : 0;
    }
    return 0;
}

/* Skips an escape sequence whose ESC is at s[0] (n >= 1); returns how many
 * bytes to drop. A sequence cut short by the end of input is dropped whole;
 * a malformed one is dropped up to (not including) the byte that broke it,
 * which the caller then handles on its own. */
static size_t utf8_skip_escape(const unsigned char *s, size_t n)
{
    if (n < 2)
        return n;
    unsigned c = s[1];
    size_t i = 2;
    if (c == '[') {
        /* CSI: parameter (0x30-0x3F) and intermediate (0x20-0x2F) bytes, in
         * any order for leniency, then one final byte 0x40-0x7E. */
        while (i < n && s[i] >= 0x20 && s[i] <= 0x3f)
            i++;
        if (i < n && s[i] >= 0x40 && s[i] <= 0x7e)
            i++;
        return i;
    }
    if (c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_') {
        /* OSC (ends with BEL or ST), DCS, SOS, PM, APC (end with ST = ESC \). */
        for (; i < n; i++) {
            if (c == ']' && s[i] == 0x07)
                return i + 1;
            if (s[i] == 0x1b && i + 1 < n && s[i + 1] == '\\')
                return i + 2;
        }
        return n;
    }
    /* Other forms (ECMA-35): intermediates 0x20-0x2F, then a final byte
     * 0x30-0x7E, as in ESC c, ESC 7, ESC ( B, ESC # 8. */
    i = 1;
    while (i < n && s[i] >= 0x20 && s[i] <= 0x2f)
        i++;
    if (i < n && s[i] >= 0x30 && s[i] <= 0x7e)
        i++;
    return i;
}

/* True for code points the sanitiser drops (the escape introducer aside). */
static bool utf8_drop_cp(uint32_t cp)
{
    if (cp < 0x20)
        return cp != '\n' && cp != '\t'; /* \r too: \r\n becomes \n */
    if (cp >= 0x7f && cp <= 0x9f)
        return true; /* DEL and the C1 controls */
    return (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

enum buf_result utf8_sanitize_terminal(struct buf *out, const char *s, size_t n)
{
    static const char replacement[] = "\xef\xbf\xbd";
    const unsigned char *u = (const unsigned char *)s;
    size_t keep = 0; /* start of the run of bytes kept as they are */
    size_t i = 0;
    enum buf_result r = BUF_OK;
    while (i < n) {
        uint32_t cp = 0;
        size_t len;
        enum utf8_scan_result st = utf8_scan(u + i, n - i, &cp, &len);
        bool bad = st != UTF8_OK;
        if (!bad && cp == 0x1b) {
            len = utf8_skip_escape(u + i, n - i);
        } else if (!bad && !utf8_drop_cp(cp)) {
            i += len;
            continue;
        }
        /* Flush the kept run, then drop or replace this unit. */
        if (i > keep)
            r = buf_append(out, s + keep, i - keep);
        if (r == BUF_OK && bad)
            r = buf_append(out, replacement, 3);
        if (r != BUF_OK)
            return r;
        i += len;
        keep = i;
    }
    if (n > keep)
        r = buf_append(out, s + keep, n - keep);
    return r;
}
