/*
 * JSON minification: see jsonmin.h. One scanner, jm_scan(), validates the
 * RFC 8259 grammar and, when asked, writes the text without its
 * insignificant whitespace in the same pass; it is compiled twice (emit on
 * and off) so that validation alone pays nothing for the copy. It is a
 * goto-driven state machine with an explicit stack of one bit per open
 * container (object or array), so nesting costs no recursion and the bound
 * JSONMIN_MAX_DEPTH is a fixed 128-byte array on the C stack.
 *
 * Speed comes from treating runs, not bytes: string bodies are skipped
 * eight bytes at a time while no byte in the word is a quote, a backslash,
 * a control character or non-ASCII, indentation eight spaces at a time,
 * and every token is copied with one memcpy. The write position never
 * passes the read position, which is why output <= input everywhere.
 *
 * jsonmin_content() works in one scratch block of the content's size: it
 * first tries the whole content as one object or array, and otherwise walks
 * the lines once for Markdown fences, minifying the bodies of ```json
 * blocks into the scratch and copying everything between them verbatim.
 */
#include "config.h"

#include "util/jsonmin.h"

#include <stdint.h>
#include <string.h>

#include "util/alloc.h"

/* Byte classes inside a string: 0 control (invalid raw), 1 plain ASCII,
 * 2 quote, 3 backslash, 4 non-ASCII (a UTF-8 sequence to check). */
static const unsigned char jm_str_class[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 10 */
    1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 20 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 30 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 40 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 1, 1, 1, /* 50 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 60 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 70 */
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, /* 80 */
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, /* 90 */
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, /* a0 */
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, /* b0 */
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, /* c0 */
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, /* d0 */
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, /* e0 */
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, /* f0 */
};

#define JM_ONES  UINT64_C(0x0101010101010101)
#define JM_HIGHS UINT64_C(0x8080808080808080)

/* Nonzero when some byte of w is below 0x20, '"', '\\' or >= 0x80: the
 * classic has-zero-byte tests (no false negatives; a false positive only
 * sends the caller to the exact byte loop). */
static inline uint64_t jm_word_special(uint64_t w)
{
    uint64_t q = w ^ (JM_ONES * '"');
    uint64_t b = w ^ (JM_ONES * '\\');
    uint64_t lt = (w - JM_ONES * 0x20) & ~w;
    uint64_t zq = (q - JM_ONES) & ~q;
    uint64_t zb = (b - JM_ONES) & ~b;
    return (lt | zq | zb | w) & JM_HIGHS;
}

static inline bool jm_is_ws(unsigned char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

/* The index of the first non-whitespace byte at or after i (n if none). */
static inline size_t jm_skip_ws(const unsigned char *s, size_t n, size_t i)
{
    /* Pretty-printed JSON indents with long runs of spaces. */
    static const uint64_t spaces = JM_ONES * ' ';
    while (i < n && jm_is_ws(s[i])) {
        i++;
        while (n - i >= 8) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w != spaces)
                break;
            i += 8;
        }
    }
    return i;
}

static inline bool jm_is_cont(unsigned char c)
{
    return (c & 0xC0) == 0x80;
}

/* The length of the well-formed UTF-8 sequence at s[i..n) (RFC 3629: no
 * overlongs, no surrogates, nothing above U+10FFFF), or 0. */
static size_t jm_utf8_len(const unsigned char *s, size_t n, size_t i)
{
    unsigned char c = s[i];
    size_t left = n - i;
    if (c >= 0xC2 && c <= 0xDF)
        return left >= 2 && jm_is_cont(s[i + 1]) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (left < 3 || !jm_is_cont(s[i + 1]) || !jm_is_cont(s[i + 2]))
            return 0;
        if (c == 0xE0 && s[i + 1] < 0xA0) /* overlong */
            return 0;
        if (c == 0xED && s[i + 1] > 0x9F) /* UTF-16 surrogate */
            return 0;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (left < 4 || !jm_is_cont(s[i + 1]) || !jm_is_cont(s[i + 2]) || !jm_is_cont(s[i + 3]))
            return 0;
        if (c == 0xF0 && s[i + 1] < 0x90) /* overlong */
            return 0;
        if (c == 0xF4 && s[i + 1] > 0x8F) /* above U+10FFFF */
            return 0;
        return 4;
    }
    return 0; /* continuation byte, C0, C1 or F5..FF */
}

static inline bool jm_is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/* s[i] is the opening quote: the index just past the closing quote, or 0
 * when the string is invalid or unterminated. */
static size_t jm_string_end(const unsigned char *s, size_t n, size_t i)
{
    size_t j = i + 1;
    for (;;) {
        while (n - j >= 8) {
            uint64_t w;
            memcpy(&w, s + j, 8);
            if (jm_word_special(w) != 0)
                break;
            j += 8;
        }
        while (j < n && jm_str_class[s[j]] == 1)
            j++;
        if (j >= n)
            return 0;
        switch (jm_str_class[s[j]]) {
        case 2:
            return j + 1;
        case 3:
            if (n - j < 2)
                return 0;
            switch (s[j + 1]) {
            case '"':
            case '\\':
            case '/':
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't':
                j += 2;
                break;
            case 'u':
                /* Any four hex digits: RFC 8259 section 8.2 lets a lone
                 * surrogate through the grammar, and we copy it untouched. */
                if (n - j < 6 || !jm_is_hex(s[j + 2]) || !jm_is_hex(s[j + 3]) ||
                    !jm_is_hex(s[j + 4]) || !jm_is_hex(s[j + 5]))
                    return 0;
                j += 6;
                break;
            default:
                return 0;
            }
            break;
        case 4: {
            size_t len = jm_utf8_len(s, n, j);
            if (len == 0)
                return 0;
            j += len;
            break;
        }
        default: /* a raw control character */
            return 0;
        }
    }
}

static inline bool jm_is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* s[i] is '-' or a digit: the index just past the number, or 0 when it
 * breaks the grammar -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?. What
 * follows is the caller's business (so "01" fails there, not here). */
static size_t jm_number_end(const unsigned char *s, size_t n, size_t i)
{
    size_t j = i;
    if (s[j] == '-')
        j++;
    if (j >= n || !jm_is_digit(s[j]))
        return 0;
    if (s[j] == '0') {
        j++;
    } else {
        while (j < n && jm_is_digit(s[j]))
            j++;
    }
    if (j < n && s[j] == '.') {
        j++;
        if (j >= n || !jm_is_digit(s[j]))
            return 0;
        while (j < n && jm_is_digit(s[j]))
            j++;
    }
    if (j < n && (s[j] == 'e' || s[j] == 'E')) {
        j++;
        if (j < n && (s[j] == '+' || s[j] == '-'))
            j++;
        if (j >= n || !jm_is_digit(s[j]))
            return 0;
        while (j < n && jm_is_digit(s[j]))
            j++;
    }
    return j;
}

/* s[i] starts true, false or null: the index just past it, or 0. */
static size_t jm_literal_end(const unsigned char *s, size_t n, size_t i)
{
    static const char *const words[] = {"true", "false", "null"};
    for (size_t k = 0; k < sizeof words / sizeof words[0]; k++) {
        size_t len = strlen(words[k]);
        if (n - i >= len && memcmp(s + i, words[k], len) == 0)
            return i + len;
    }
    return 0;
}

/* Validates s[0..n) as one JSON text and, when emit, writes it minified to
 * out (room for n bytes) and its length to *outlen. Always inlined so that
 * each caller gets a copy specialised on the constant emit. On false, out
 * may hold up to n bytes of garbage. */
static inline __attribute__((always_inline)) bool
jm_scan(const unsigned char *s, size_t n, char *out, size_t *outlen, const bool emit)
{
    uint64_t is_object[(JSONMIN_MAX_DEPTH + 63) / 64]; /* bit d: container d is an object */
    size_t depth = 0;
    size_t i = 0, o = 0, e;
    unsigned char c;

#define JM_COPY(from, to)                               \
    do {                                                \
        if (emit) {                                     \
            memcpy(out + o, s + (from), (to) - (from)); \
            o += (to) - (from);                         \
        }                                               \
    } while (0)
#define JM_PUT(ch)                 \
    do {                           \
        if (emit)                  \
            out[o++] = (char)(ch); \
    } while (0)

value:
    i = jm_skip_ws(s, n, i);
    if (i >= n)
        return false;
    c = s[i];
    switch (c) {
    case '"':
        if ((e = jm_string_end(s, n, i)) == 0)
            return false;
        JM_COPY(i, e);
        i = e;
        goto after_value;
    case '{':
    case '[':
        if (depth == JSONMIN_MAX_DEPTH)
            return false;
        if (c == '{')
            is_object[depth / 64] |= UINT64_C(1) << (depth % 64);
        else
            is_object[depth / 64] &= ~(UINT64_C(1) << (depth % 64));
        depth++;
        JM_PUT(c);
        i = jm_skip_ws(s, n, i + 1);
        if (i >= n)
            return false;
        if (s[i] == (c == '{' ? '}' : ']')) {
            JM_PUT(s[i]);
            i++;
            depth--;
            goto after_value;
        }
        if (c == '{')
            goto key;
        goto value;
    case 't':
    case 'f':
    case 'n':
        if ((e = jm_literal_end(s, n, i)) == 0)
            return false;
        JM_COPY(i, e);
        i = e;
        goto after_value;
    default:
        if (c != '-' && !jm_is_digit(c))
            return false;
        if ((e = jm_number_end(s, n, i)) == 0)
            return false;
        JM_COPY(i, e);
        i = e;
        goto after_value;
    }

key: /* whitespace already skipped, i < n */
    if (s[i] != '"' || (e = jm_string_end(s, n, i)) == 0)
        return false;
    JM_COPY(i, e);
    i = jm_skip_ws(s, n, e);
    if (i >= n || s[i] != ':')
        return false;
    JM_PUT(':');
    i++;
    goto value;

after_value:
    i = jm_skip_ws(s, n, i);
    if (depth == 0) {
        if (i != n)
            return false;
        if (emit)
            *outlen = o;
        return true;
    }
    if (i >= n)
        return false;
    c = s[i];
    {
        bool obj = (is_object[(depth - 1) / 64] >> ((depth - 1) % 64)) & 1;
        if (c == ',') {
            JM_PUT(',');
            if (!obj) {
                i++;
                goto value;
            }
            i = jm_skip_ws(s, n, i + 1);
            if (i >= n)
                return false;
            goto key;
        }
        if (c != (obj ? '}' : ']'))
            return false;
        JM_PUT(c);
        i++;
        depth--;
        goto after_value;
    }
#undef JM_COPY
#undef JM_PUT
}

bool jsonmin_is_json(const char *s, size_t n)
{
    return jm_scan((const unsigned char *)s, n, NULL, NULL, false);
}

size_t jsonmin_value(const char *s, size_t n, char *out)
{
    size_t len;
    if (jm_scan((const unsigned char *)s, n, out, &len, true))
        return len;
    if (n > 0)
        memcpy(out, s, n);
    return n;
}

/* A fence line's backtick run and whether its info string says json. */
struct jm_fence {
    size_t indent; /* blanks before the backticks */
    size_t ticks;
    bool json;
};

/* True when the line t[0..len) (line ending removed) opens a fenced block:
 * optional blanks, >= 3 backticks, an info string without backticks
 * (CommonMark: with one it is inline code, not a fence). */
static bool jm_fence_open(const unsigned char *t, size_t len, struct jm_fence *f)
{
    size_t j = 0;
    while (j < len && (t[j] == ' ' || t[j] == '\t'))
        j++;
    size_t start = j;
    while (j < len && t[j] == '`')
        j++;
    if (j - start < 3 || memchr(t + j, '`', len - j) != NULL)
        return false;
    f->indent = start;
    f->ticks = j - start;
    while (j < len && (t[j] == ' ' || t[j] == '\t'))
        j++;
    size_t end = len;
    while (end > j && (t[end - 1] == ' ' || t[end - 1] == '\t'))
        end--;
    f->json = end - j == 4 && (t[j] | 0x20) == 'j' && (t[j + 1] | 0x20) == 's' &&
              (t[j + 2] | 0x20) == 'o' && (t[j + 3] | 0x20) == 'n';
    return true;
}

/* True when the line t[0..len) closes a block opened with `ticks` backticks:
 * optional blanks, at least that many backticks, optional blanks. */
static bool jm_fence_close(const unsigned char *t, size_t len, size_t ticks)
{
    size_t j = 0;
    while (j < len && (t[j] == ' ' || t[j] == '\t'))
        j++;
    size_t start = j;
    while (j < len && t[j] == '`')
        j++;
    if (j - start < ticks)
        return false;
    while (j < len && (t[j] == ' ' || t[j] == '\t'))
        j++;
    return j == len;
}

/* The line starting at pos: its text ends at *text_end (before any \r\n or
 * \n); returns where the next line starts (n at the end). */
static size_t jm_line(const unsigned char *s, size_t n, size_t pos, size_t *text_end)
{
    const unsigned char *nl = memchr(s + pos, '\n', n - pos);
    size_t end = nl != NULL ? (size_t)(nl - s) : n;
    size_t next = nl != NULL ? end + 1 : n;
    if (nl != NULL && end > pos && s[end - 1] == '\r')
        end--;
    *text_end = end;
    return next;
}

/* The start of the first line at or after the line start `from` whose
 * first non-blank byte is a backtick (only those can be fence lines), or n.
 * Searches for backticks rather than walking lines, so prose and JSON
 * bodies with few backticks are crossed at memchr speed; each line is
 * looked at once at most. */
static size_t jm_next_tick_line(const unsigned char *s, size_t n, size_t from)
{
    size_t p = from;
    while (p < n) {
        const unsigned char *tick = memchr(s + p, '`', n - p);
        if (tick == NULL)
            return n;
        size_t start = (size_t)(tick - s);
        while (start > from && (s[start - 1] == ' ' || s[start - 1] == '\t'))
            start--;
        if (start == from || s[start - 1] == '\n')
            return start;
        const unsigned char *nl = memchr(tick, '\n', n - (size_t)(tick - s));
        if (nl == NULL)
            return n;
        p = (size_t)(nl - s) + 1;
    }
    return n;
}

/* Minifies the bodies of the valid ```json blocks of s[0..n) into scratch
 * (room for n bytes), copying everything else; returns the length. */
static size_t jm_fences(const unsigned char *s, size_t n, char *scratch)
{
    size_t w = 0;      /* bytes written to scratch */
    size_t copied = 0; /* s[0..copied) is accounted for in scratch */
    size_t pos = 0;
    while ((pos = jm_next_tick_line(s, n, pos)) < n) {
        size_t text_end;
        size_t next = jm_line(s, n, pos, &text_end);
        struct jm_fence f;
        if (!jm_fence_open(s + pos, text_end - pos, &f)) {
            pos = next;
            continue;
        }
        size_t body = next, close = next;
        bool closed = false;
        while ((close = jm_next_tick_line(s, n, close)) < n) {
            size_t close_next = jm_line(s, n, close, &text_end);
            if (jm_fence_close(s + close, text_end - close, f.ticks)) {
                closed = true;
                pos = close_next;
                break;
            }
            close = close_next;
        }
        if (!closed)
            break; /* CommonMark: the block runs to the end; leave it all */
        if (!f.json || close == body)
            continue;
        /* close starts a line, so s[close - 1] is the body's last '\n'; that
         * line ending (LF or CRLF) stays so the closing fence keeps its line. */
        size_t json_end = close - 1;
        if (json_end > body && s[json_end - 1] == '\r')
            json_end--;
        memcpy(scratch + w, s + copied, body - copied);
        w += body - copied;
        copied = body;
        /* In a list item the fence is indented and so must its body be, or
         * Markdown ends the item: keep the first value line's blanks, up to
         * the fence's indentation. They are input bytes the minifier would
         * drop, so the output still never grows. */
        size_t first = jm_skip_ws(s, json_end, body), keep = 0;
        while (keep < f.indent && first - keep > body &&
               (s[first - keep - 1] == ' ' || s[first - keep - 1] == '\t'))
            keep++;
        memcpy(scratch + w, s + first - keep, keep);
        size_t len;
        if (jm_scan(s + first, json_end - first, scratch + w + keep, &len, true)) {
            w += keep + len;
            memcpy(scratch + w, s + json_end, close - json_end);
            w += close - json_end;
            copied = close;
        }
        /* else: the raw body is copied with the next span (and overwrites
         * what the failed scan wrote, which never passes body's length). */
    }
    memcpy(scratch + w, s + copied, n - copied);
    return w + (n - copied);
}

enum buf_result jsonmin_content(const char *s, size_t n, struct buf *out, struct jsonmin_stats *st)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t len = 0;
    enum buf_result result = BUF_OK;
    if (n > 0) {
        char *scratch = try_malloc(n);
        if (scratch == NULL)
            return BUF_NO_MEM;
        size_t first = jm_skip_ws(u, n, 0);
        /* Only an object or array makes the whole content JSON: a bare
         * number or word is prose, and minifying it would gain nothing. */
        bool whole =
            first < n && (u[first] == '{' || u[first] == '[') && jm_scan(u, n, scratch, &len, true);
        if (!whole)
            len = jm_fences(u, n, scratch);
        result = buf_append(out, scratch, len);
        xfree(scratch);
        if (result != BUF_OK)
            return result;
    }
    if (st != NULL) {
        st->bytes_before = n;
        st->bytes_after = len;
        st->tokens_saved = (n - len + 3) / 4;
    }
    return BUF_OK;
}
