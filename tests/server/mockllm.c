/*
 * mockllm: the loopback LLM test server the integration tests start and stop
 * themselves (spec: "The loopback LLM test server", tests/server/mockserver.h
 * is its harness). It speaks just enough HTTP/1.1 (keep-alive, Content-Length
 * and chunked request bodies, chunked streamed replies) to play OpenAI,
 * Anthropic and Ollama, and misbehaves on demand: the request's "model"
 * string (`mock:<behaviour>,...`) picks error statuses, stalls, drops,
 * garbage events, split UTF-8 writes, an endless stream or a JSON reply
 * (`json`: the object {"mock":"reply","message":<the last user message>},
 * written indented over several lines as models often do, so a test can see
 * whether its client minified it; streamed or whole alike; split-utf8's
 * extra text is not added to it, which would make it invalid). Two more shape
 * the reply for benchmarks: `words=N` makes the text N words "w1 w2 ... wN"
 * (one piece, one delta, per word and its space: N completion tokens; in
 * place of the normal text and split-utf8's, not of json's), and `rate=N`
 * paces a streamed reply at N pieces a second, piece i due at start + i/N
 * (start: once the reply is built), so the pace does not drift with the
 * loop's late wake-ups (a whole reply waits npieces/N s).
 * Tool calls (function calling), on all three routes, streamed and whole:
 * - `tool=NAME` (several with `+`: `tool=a+b` is two parallel calls in one
 *   reply, in that order): when the last message is the user's and tools
 *   are allowed (a non-empty "tools" array, and tool_choice not "none" nor
 *   {"type":"none"}; Ollama has no tool_choice, so no tools = none), the
 *   reply calls those tools with arguments {"text":"<the last user
 *   message>"}. OpenAI streams a first fragment per call (id "call_N",
 *   type, name, "" arguments), then the arguments in pieces of at most 7
 *   bytes interleaved by index, finish_reason "tool_calls"; Anthropic one
 *   tool_use block per call (id "toolu_N"; content_block_start with input
 *   {}, input_json_delta pieces, content_block_stop), stop_reason
 *   "tool_use"; Ollama all calls whole in one line, arguments an object,
 *   no id, function.index 0, 1... Whole replies carry the same calls
 *   (OpenAI arguments as a string, content null). completion_tokens is
 *   the number of argument pieces. Otherwise the reply is text, as below.
 * - `toolloop`: calls the tool `loop` on every request (after tool results
 *   too) while tools are allowed, and answers "no more tools" when not.
 * - `toolargs-bad`: the calls' arguments are the invalid JSON `{"text":`
 *   (whole Anthropic and Ollama replies put it as a string where the
 *   object belongs); on its own it calls the tool `echo`.
 * - A request that ends with tool results (OpenAI's and Ollama's role
 *   "tool" messages, Anthropic's user message of tool_result blocks) gets
 *   the text "tool results: <content 1> | <content 2> ..." (the contents
 *   exactly as received, in order; Anthropic's is_error ones as "error:
 *   <content>"), whatever the other behaviours, toolloop excepted, so a
 *   test can see a result went back intact.
 * The stream behaviours apply to tool streams too (oversize excepted): the
 * cutting ones after two argument fragments.
 * Transport faults at an exact byte (for the stream fault tests), counted
 * over the whole response as written to the socket (status line, headers,
 * chunk framing and body), on every route, after the reply was built with
 * the other behaviours (not with oversize, whose body is generated lazily):
 * - `cut=N`: the connection is closed (FIN) after N bytes, or after the
 *   whole response when it is shorter (so a raw client reads it to EOF);
 * - `reset=N`: the same, but the close is an RST (SO_LINGER 0);
 * - `stall-at=N`: nothing is written after N bytes; the connection stays
 *   open until the client gives up.
 * N is decimal and may be 0 or carry leading zeros (`cut=000120`), so a
 * test can vary it without changing the request's length.
 * Two more feed one outsized event into a streamed text reply, after its
 * first piece (the rest of the reply follows as usual), generated as it is
 * written so the mock never holds it: `bigline=N` a text piece of exactly
 * N bytes of 'x' in one line (a delta, or past the client's cap), and
 * `nested=N` a payload of N nested arrays `[[[...]]]` (not an object: a
 * client skips it). `--first-seq N`
 * numbers requests from N + 1 (the ids in replies, e.g. chatcmpl-mock-<seq>,
 * then keep one width over a long test).
 * One thread, one
 * poll() loop: every connection is a small state machine whose reply is a
 * queue of output segments (bytes with an optional delay before them or a
 * time they are due at, "stall" or "close"), so a slow or stalled
 * connection never blocks another and delays are poll timeouts, never
 * sleeps. It links libc only (no libmemchat, no cJSON), hence its own tiny
 * buffer, JSON scanner and JSON writer.
 * It binds 127.0.0.1 only, prints `PORT=<n>`, and exits 0 on stdin EOF or
 * SIGTERM, freeing everything (the tests run it under ASan).
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_BODY         (8u * 1024u * 1024u) /* larger request bodies get 413 */
#define MAX_HEADERS      (64u * 1024u)        /* larger header sections get 413 */
#define MAX_INPUT        (MAX_BODY + MAX_HEADERS + 1024u * 1024u) /* + chunk framing */
#define READ_SIZE        65536u
#define WRITE_BUDGET     (1024u * 1024u) /* per connection per loop turn (fairness) */
#define PIECE_MAX        7u
#define SLOW_US          20000       /* `slow`: 20 ms between pieces */
#define SPLIT_PACE_US    200         /* `split-utf8`: gap between tiny writes */
#define RATE_MAX         1000000     /* `rate=N`: at most a piece a microsecond */
#define WORDS_MAX        1000000     /* `words=N`: at most a million words (~7 MB) */
#define BIGLINE_MAX      (1ul << 31) /* `bigline=N`: at most 2 GiB in one line */
#define NESTED_MAX       100000000ul /* `nested=N`: at most 10^8 arrays deep */
#define LINGER_US        2000000     /* drain time after a closing reply */
#define OVERSIZE_LIMIT   (256ull * 1024u * 1024u)
#define OVERSIZE_BATCH   65536u
#define BIG_ERROR_SIZE   (1024u * 1024u)
#define TOOLS_MAX        8          /* `tool=a+b+...`: names called in one reply */
#define TOOL_NAME_MAX    64         /* bytes of a tool name, as OpenAI allows */
#define FIXED_CREATED    1735689600 /* 2025-01-01T00:00:00Z: replies are deterministic */
#define FIXED_CREATED_AT "2025-01-01T00:00:00Z"

/* The SIGTERM self-pipe's write end: the one global, because a signal handler
 * can reach nothing else. */
static int sig_pipe_wr = -1;

/* ---- small growable byte buffer (aborts on OOM: a test server) ---------- */

struct sbuf {
    char *p;
    size_t len, cap;
};

static void die_oom(void)
{
    fputs("mockllm: out of memory\n", stderr);
    abort();
}

static void *xmalloc_or_die(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        die_oom();
    return p;
}

static char *xstrndup_or_die(const char *s, size_t n)
{
    char *p = xmalloc_or_die(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static void sb_reserve(struct sbuf *b, size_t extra)
{
    if (b->cap - b->len > extra)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len <= extra) {
        if (cap > SIZE_MAX / 2)
            die_oom();
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (p == NULL)
        die_oom();
    b->p = p;
    b->cap = cap;
    b->p[b->len] = '\0';
}

static void sb_put(struct sbuf *b, const void *s, size_t n)
{
    sb_reserve(b, n);
    if (n > 0)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(struct sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

static void sb_putc(struct sbuf *b, char c)
{
    sb_put(b, &c, 1);
}

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[512];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof tmp) {
        sb_put(b, tmp, (size_t)n);
        return;
    }
    sb_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static void sb_free(struct sbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* Takes the bytes out of b (caller frees), leaving b empty. */
static char *sb_take(struct sbuf *b, size_t *len)
{
    if (b->p == NULL)
        sb_reserve(b, 0);
    char *p = b->p;
    *len = b->len;
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}

/* ---- UTF-8 and JSON output ----------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 when invalid
 * (overlongs, surrogates and values past U+10FFFF are invalid). */
static size_t utf8_valid_len(const unsigned char *s, size_t n)
{
    if (n == 0)
        return 0;
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    unsigned cp = c & (0xFFu >> (len + 1));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

static void utf8_put(struct sbuf *b, unsigned cp)
{
    char u[4];
    if (cp < 0x80) {
        u[0] = (char)cp;
        sb_put(b, u, 1);
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        sb_put(b, u, 2);
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        sb_put(b, u, 3);
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        sb_put(b, u, 4);
    }
}

/* Appends the body of a JSON string (no quotes) for the n bytes at s: valid
 * UTF-8 passes through raw, invalid bytes become \ufffd so the output is
 * always valid JSON. */
static void json_put_inner(struct sbuf *b, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned char c = u[i];
        if (c >= 0x80) {
            size_t l = utf8_valid_len(u + i, n - i);
            if (l == 0) {
                sb_puts(b, "\\ufffd");
                i++;
            } else {
                sb_put(b, u + i, l);
                i += l;
            }
            continue;
        }
        switch (c) {
        case '"':
            sb_puts(b, "\\\"");
            break;
        case '\\':
            sb_puts(b, "\\\\");
            break;
        case '\n':
            sb_puts(b, "\\n");
            break;
        case '\r':
            sb_puts(b, "\\r");
            break;
        case '\t':
            sb_puts(b, "\\t");
            break;
        case '\b':
            sb_puts(b, "\\b");
            break;
        case '\f':
            sb_puts(b, "\\f");
            break;
        default:
            if (c < 0x20)
                sb_printf(b, "\\u%04x", (unsigned)c);
            else
                sb_putc(b, (char)c);
        }
        i++;
    }
}

/* Appends s (n bytes) as a quoted JSON string. */
static void json_put_str(struct sbuf *b, const char *s, size_t n)
{
    sb_putc(b, '"');
    json_put_inner(b, s, n);
    sb_putc(b, '"');
}

/* ---- JSON scanner: just enough to read a request body -------------------- */

#define JSON_MAX_DEPTH 256

static const char *js_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The 4 hex digits at p as a number, -1 when not hex. */
static long hex4(const char *p)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hex_val(p[i]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

/* p at an opening quote: the byte after the closing quote, NULL when the
 * string is malformed (bad escape, raw control byte, unterminated). */
static const char *js_str_end(const char *p, const char *end)
{
    if (p >= end || *p != '"')
        return NULL;
    p++;
    while (p < end) {
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            return p + 1;
        if (c < 0x20)
            return NULL;
        if (c != '\\') {
            p++;
            continue;
        }
        if (end - p < 2)
            return NULL;
        char e = p[1];
        if (e == 'u') {
            if (end - p < 6 || hex4(p + 2) < 0)
                return NULL;
            p += 6;
        } else if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' ||
                   e == 'r' || e == 't') {
            p += 2;
        } else {
            return NULL;
        }
    }
    return NULL;
}

static const char *js_lit_end(const char *p, const char *end, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(end - p) < n || memcmp(p, lit, n) != 0)
        return NULL;
    return p + n;
}

/* The byte after the JSON value starting at p (leading whitespace skipped),
 * NULL when malformed or nested deeper than JSON_MAX_DEPTH. */
static const char *js_val_end(const char *p, const char *end, int depth)
{
    if (depth > JSON_MAX_DEPTH)
        return NULL;
    p = js_ws(p, end);
    if (p >= end)
        return NULL;
    switch (*p) {
    case '"':
        return js_str_end(p, end);
    case '{':
        p = js_ws(p + 1, end);
        if (p < end && *p == '}')
            return p + 1;
        for (;;) {
            p = js_str_end(p, end);
            if (p == NULL)
                return NULL;
            p = js_ws(p, end);
            if (p >= end || *p != ':')
                return NULL;
            p = js_val_end(p + 1, end, depth + 1);
            if (p == NULL)
                return NULL;
            p = js_ws(p, end);
            if (p >= end)
                return NULL;
            if (*p == '}')
                return p + 1;
            if (*p != ',')
                return NULL;
            p = js_ws(p + 1, end);
        }
    case '[':
        p = js_ws(p + 1, end);
        if (p < end && *p == ']')
            return p + 1;
        for (;;) {
            p = js_val_end(p, end, depth + 1);
            if (p == NULL)
                return NULL;
            p = js_ws(p, end);
            if (p >= end)
                return NULL;
            if (*p == ']')
                return p + 1;
            if (*p != ',')
                return NULL;
            p++;
        }
    case 't':
        return js_lit_end(p, end, "true");
    case 'f':
        return js_lit_end(p, end, "false");
    case 'n':
        return js_lit_end(p, end, "null");
    default: {
        const char *q = p;
        if (q < end && *q == '-')
            q++;
        if (q >= end || *q < '0' || *q > '9')
            return NULL;
        while (q < end && ((*q >= '0' && *q <= '9') || *q == '.' || *q == 'e' || *q == 'E' ||
                           *q == '+' || *q == '-'))
            q++;
        return q;
    }
    }
}

/* Appends the decoded bytes of the (validated) JSON string at p to out:
 * escapes resolved, \uXXXX surrogate pairs joined, lone surrogates U+FFFD. */
static void js_str_decode(const char *p, const char *end, struct sbuf *out)
{
    p++;
    while (p < end && *p != '"') {
        if (*p != '\\') {
            sb_putc(out, *p++);
            continue;
        }
        if (end - p < 2)
            return;
        char e = p[1];
        if (e != 'u') {
            char c = e == 'b'   ? '\b'
                     : e == 'f' ? '\f'
                     : e == 'n' ? '\n'
                     : e == 'r' ? '\r'
                     : e == 't' ? '\t'
                                : e; /* \" \\ \/ */
            sb_putc(out, c);
            p += 2;
            continue;
        }
        if (end - p < 6)
            return;
        long cp = hex4(p + 2);
        p += 6;
        if (cp < 0)
            return;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            long lo = (end - p >= 6 && p[0] == '\\' && p[1] == 'u') ? hex4(p + 2) : -1;
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p += 6;
            } else {
                cp = 0xFFFD;
            }
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            cp = 0xFFFD;
        }
        utf8_put(out, (unsigned)cp);
    }
}

/* The value of member key in the (validated) object at obj, whitespace
 * skipped; NULL when obj is not an object or has no such member. */
static const char *js_obj_get(const char *obj, const char *end, const char *key)
{
    if (obj == NULL || obj >= end || *obj != '{')
        return NULL;
    const char *p = js_ws(obj + 1, end);
    size_t klen = strlen(key);
    while (p < end && *p == '"') {
        const char *kend = js_str_end(p, end);
        if (kend == NULL)
            return NULL;
        struct sbuf k = {0};
        js_str_decode(p, kend, &k);
        bool match = k.len == klen && (klen == 0 || memcmp(k.p, key, klen) == 0);
        sb_free(&k);
        p = js_ws(kend, end);
        if (p >= end || *p != ':')
            return NULL;
        p = js_ws(p + 1, end);
        if (match)
            return p;
        p = js_val_end(p, end, 0);
        if (p == NULL)
            return NULL;
        p = js_ws(p, end);
        if (p >= end || *p != ',')
            return NULL;
        p = js_ws(p + 1, end);
    }
    return NULL;
}

/* Iterates the (validated) array at *it: the next element (whitespace
 * skipped), or NULL at the end. Start with *it pointing at '['. */
static const char *js_arr_next(const char **it, const char *end)
{
    const char *p = *it;
    if (p == NULL || p >= end)
        return NULL;
    if (*p == '[')
        p = js_ws(p + 1, end);
    else if (*p == ',')
        p = js_ws(p + 1, end);
    else
        return NULL;
    if (p >= end || *p == ']') {
        *it = NULL;
        return NULL;
    }
    const char *e = js_val_end(p, end, 0);
    if (e == NULL) {
        *it = NULL;
        return NULL;
    }
    *it = js_ws(e, end);
    return p;
}

/* True when the value at v is the string s. */
static bool js_str_is(const char *v, const char *end, const char *s)
{
    if (v == NULL || v >= end || *v != '"')
        return false;
    const char *e = js_str_end(v, end);
    if (e == NULL)
        return false;
    struct sbuf d = {0};
    js_str_decode(v, e, &d);
    bool eq = d.len == strlen(s) && (d.len == 0 || memcmp(d.p, s, d.len) == 0);
    sb_free(&d);
    return eq;
}

/* Appends the text of a message content: a string, or an array of parts
 * whose "text" strings are joined (OpenAI content parts, Anthropic blocks). */
static void js_content_text(const char *v, const char *end, struct sbuf *out)
{
    if (v == NULL || v >= end)
        return;
    if (*v == '"') {
        js_str_decode(v, js_str_end(v, end), out);
        return;
    }
    if (*v != '[')
        return;
    const char *it = v;
    const char *el;
    while ((el = js_arr_next(&it, end)) != NULL) {
        const char *type = js_obj_get(el, end, "type");
        if (type != NULL && !js_str_is(type, end, "text"))
            continue;
        const char *t = js_obj_get(el, end, "text");
        if (t != NULL && *t == '"')
            js_str_decode(t, js_str_end(t, end), out);
    }
}

/* ---- what a chat request asks about tools ------------------------------------- */

/* The API a chat request came in on. */
enum route { R_OPENAI, R_ANTHROPIC, R_OLLAMA };

/* True when the Anthropic content at v is an array holding a tool_result
 * block: a user message that carries tool results. */
static bool an_has_tool_result(const char *v, const char *end)
{
    if (v == NULL || v >= end || *v != '[')
        return false;
    const char *it = v;
    const char *el;
    while ((el = js_arr_next(&it, end)) != NULL)
        if (js_str_is(js_obj_get(el, end, "type"), end, "tool_result"))
            return true;
    return false;
}

/* The last element of the array at arr, NULL when empty or not an array. */
static const char *js_arr_last(const char *arr, const char *end)
{
    if (arr == NULL || arr >= end || *arr != '[')
        return NULL;
    const char *it = arr;
    const char *el, *last = NULL;
    while ((el = js_arr_next(&it, end)) != NULL)
        last = el;
    return last;
}

/* True when the request offers tools and lets the model call them: a
 * non-empty "tools" array, and tool_choice not "none" (OpenAI) nor
 * {"type":"none"} (Anthropic). Ollama has no tool_choice: a client that
 * forbids tools sends none, which this reads the same way. */
static bool tools_allowed(const char *root, const char *end)
{
    const char *tools = js_obj_get(root, end, "tools");
    const char *it = tools;
    if (tools == NULL || *tools != '[' || js_arr_next(&it, end) == NULL)
        return false;
    const char *choice = js_obj_get(root, end, "tool_choice");
    return !js_str_is(choice, end, "none") &&
           !js_str_is(js_obj_get(choice, end, "type"), end, "none");
}

/* True when the last message is the user's own (not Anthropic's user
 * message of tool_result blocks). */
static bool last_is_user(const char *msgs, const char *end)
{
    const char *last = js_arr_last(msgs, end);
    return last != NULL && js_str_is(js_obj_get(last, end, "role"), end, "user") &&
           !an_has_tool_result(js_obj_get(last, end, "content"), end);
}

/* Appends one result to out: " | " between results, "error: " before an
 * Anthropic result marked is_error, then its content's text. */
static void result_put(struct sbuf *out, size_t *k, const char *content, const char *end,
                       bool error)
{
    if ((*k)++ > 0)
        sb_puts(out, " | ");
    if (error)
        sb_puts(out, "error: ");
    js_content_text(content, end, out);
}

/* When the request ends with tool results (OpenAI's and Ollama's trailing
 * role "tool" messages, Anthropic's user message of tool_result blocks),
 * appends "tool results: <content 1> | <content 2> ..." to out, each
 * content exactly as received, in order, and returns true. */
static bool tool_results_text(const char *msgs, const char *end, enum route r, struct sbuf *out)
{
    const char *last = js_arr_last(msgs, end);
    if (last == NULL)
        return false;
    size_t k = 0;
    if (r == R_ANTHROPIC) {
        const char *content = js_obj_get(last, end, "content");
        if (!js_str_is(js_obj_get(last, end, "role"), end, "user") ||
            !an_has_tool_result(content, end))
            return false;
        sb_puts(out, "tool results: ");
        const char *it = content;
        const char *el;
        while ((el = js_arr_next(&it, end)) != NULL) {
            if (!js_str_is(js_obj_get(el, end, "type"), end, "tool_result"))
                continue;
            const char *err = js_obj_get(el, end, "is_error");
            result_put(out, &k, js_obj_get(el, end, "content"), end, err != NULL && *err == 't');
        }
        return true;
    }
    /* The trailing run of role "tool" messages: count it, then walk to it. */
    size_t total = 0, run = 0;
    const char *it = msgs;
    const char *el;
    while ((el = js_arr_next(&it, end)) != NULL) {
        total++;
        run = js_str_is(js_obj_get(el, end, "role"), end, "tool") ? run + 1 : 0;
    }
    if (run == 0)
        return false;
    sb_puts(out, "tool results: ");
    it = msgs;
    for (size_t i = 0; (el = js_arr_next(&it, end)) != NULL; i++)
        if (i >= total - run)
            result_put(out, &k, js_obj_get(el, end, "content"), end, false);
    return true;
}

/* ---- requests -------------------------------------------------------------- */

struct header {
    char *name; /* lower-case */
    char *value;
};

struct request {
    char *method, *path;
    struct header *hdrs;
    size_t nhdrs;
    char *body;
    size_t bodylen;
    bool keepalive;
};

static void request_fini(struct request *rq)
{
    free(rq->method);
    free(rq->path);
    for (size_t i = 0; i < rq->nhdrs; i++) {
        free(rq->hdrs[i].name);
        free(rq->hdrs[i].value);
    }
    free(rq->hdrs);
    free(rq->body);
    memset(rq, 0, sizeof *rq);
}

static const char *request_header(const struct request *rq, const char *name)
{
    for (size_t i = 0; i < rq->nhdrs; i++)
        if (strcmp(rq->hdrs[i].name, name) == 0)
            return rq->hdrs[i].value;
    return NULL;
}

/* True when the comma-separated header value contains token (any case). */
static bool header_has_token(const char *value, const char *token)
{
    size_t n = strlen(token);
    for (const char *p = value; p != NULL && *p != '\0';) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *e = p;
        while (*e != '\0' && *e != ',')
            e++;
        const char *t = e;
        while (t > p && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if ((size_t)(t - p) == n && strncasecmp(p, token, n) == 0)
            return true;
        p = e;
    }
    return false;
}

enum parse_status { PARSE_MORE, PARSE_DONE, PARSE_BAD, PARSE_TOO_BIG };

/* Where the header section of buf ends (after its blank line), 0 when it
 * is not complete yet. Lines may end in \r\n or \n. */
static size_t find_header_end(const char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (buf[i] != '\n')
            continue;
        if (i + 1 < len && buf[i + 1] == '\n')
            return i + 2;
        if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

static bool parse_size(const char *s, size_t n, int base, unsigned long long *out)
{
    if (n == 0 || n > 16)
        return false;
    unsigned long long v = 0;
    for (size_t i = 0; i < n; i++) {
        int d = base == 16 ? hex_val(s[i]) : (s[i] >= '0' && s[i] <= '9' ? s[i] - '0' : -1);
        if (d < 0)
            return false;
        v = v * (unsigned)base + (unsigned)d;
    }
    *out = v;
    return true;
}

/* Parses the request line and headers of buf[0..hend) into rq. */
static enum parse_status parse_head(const char *buf, size_t hend, struct request *rq)
{
    const char *p = buf, *end = buf + hend;
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (eol == NULL)
        return PARSE_BAD;
    const char *le = eol > p && eol[-1] == '\r' ? eol - 1 : eol;
    const char *sp1 = memchr(p, ' ', (size_t)(le - p));
    if (sp1 == NULL || sp1 == p)
        return PARSE_BAD;
    const char *sp2 = memchr(sp1 + 1, ' ', (size_t)(le - sp1 - 1));
    if (sp2 == NULL || sp2 == sp1 + 1)
        return PARSE_BAD;
    size_t vlen = (size_t)(le - sp2 - 1);
    bool http10;
    if (vlen == 8 && memcmp(sp2 + 1, "HTTP/1.1", 8) == 0)
        http10 = false;
    else if (vlen == 8 && memcmp(sp2 + 1, "HTTP/1.0", 8) == 0)
        http10 = true;
    else
        return PARSE_BAD;
    rq->method = xstrndup_or_die(p, (size_t)(sp1 - p));
    rq->path = xstrndup_or_die(sp1 + 1, (size_t)(sp2 - sp1 - 1));
    size_t cap = 0;
    for (p = eol + 1; p < end; p = eol + 1) {
        eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            return PARSE_BAD;
        le = eol > p && eol[-1] == '\r' ? eol - 1 : eol;
        if (le == p)
            break; /* the blank line */
        const char *colon = memchr(p, ':', (size_t)(le - p));
        if (colon == NULL || colon == p)
            return PARSE_BAD;
        for (const char *q = p; q < colon; q++)
            if (*q == ' ' || *q == '\t')
                return PARSE_BAD;
        const char *v = colon + 1, *ve = le;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        char *name = xstrndup_or_die(p, (size_t)(colon - p));
        for (char *q = name; *q; q++)
            if (*q >= 'A' && *q <= 'Z')
                *q = (char)(*q - 'A' + 'a');
        struct header *dup = NULL;
        for (size_t i = 0; i < rq->nhdrs; i++)
            if (strcmp(rq->hdrs[i].name, name) == 0)
                dup = &rq->hdrs[i];
        if (dup != NULL) { /* repeated header: join as one list value */
            struct sbuf j = {0};
            sb_puts(&j, dup->value);
            sb_puts(&j, ", ");
            sb_put(&j, v, (size_t)(ve - v));
            free(dup->value);
            size_t jl;
            dup->value = sb_take(&j, &jl);
            free(name);
            continue;
        }
        if (rq->nhdrs == cap) {
            cap = cap ? cap * 2 : 16;
            struct header *h = realloc(rq->hdrs, cap * sizeof *h);
            if (h == NULL)
                die_oom();
            rq->hdrs = h;
        }
        rq->hdrs[rq->nhdrs].name = name;
        rq->hdrs[rq->nhdrs].value = xstrndup_or_die(v, (size_t)(ve - v));
        rq->nhdrs++;
    }
    const char *conn = request_header(rq, "connection");
    rq->keepalive = !http10 && !(conn != NULL && header_has_token(conn, "close"));
    return PARSE_DONE;
}

/* Decodes a chunked body starting at buf[0]: PARSE_DONE with the decoded
 * body in out and *used = bytes consumed (trailers included). */
static enum parse_status parse_chunked(const char *buf, size_t len, struct sbuf *out, size_t *used)
{
    size_t pos = 0;
    for (;;) {
        const char *eol = memchr(buf + pos, '\n', len - pos);
        if (eol == NULL)
            return len - pos > 1024 ? PARSE_BAD : PARSE_MORE;
        size_t lend = (size_t)(eol - buf);
        size_t s = pos, e = lend;
        if (e > s && buf[e - 1] == '\r')
            e--;
        size_t x = s;
        while (x < e && hex_val(buf[x]) >= 0)
            x++;
        unsigned long long n;
        if (!parse_size(buf + s, x - s, 16, &n))
            return PARSE_BAD;
        if (n > MAX_BODY || out->len + n > MAX_BODY)
            return PARSE_TOO_BIG;
        pos = lend + 1;
        if (n == 0) { /* trailers up to a blank line */
            for (;;) {
                eol = memchr(buf + pos, '\n', len - pos);
                if (eol == NULL)
                    return PARSE_MORE;
                size_t l = (size_t)(eol - (buf + pos));
                bool blank = l == 0 || (l == 1 && buf[pos] == '\r');
                pos += l + 1;
                if (blank) {
                    *used = pos;
                    return PARSE_DONE;
                }
            }
        }
        if (len - pos < n + 1)
            return PARSE_MORE;
        sb_put(out, buf + pos, (size_t)n);
        pos += (size_t)n;
        if (buf[pos] == '\r') {
            if (len - pos < 2)
                return PARSE_MORE;
            pos++;
        }
        if (buf[pos] != '\n')
            return PARSE_BAD;
        pos++;
    }
}

/* ---- behaviours ------------------------------------------------------------ */

enum err_kind {
    E_NONE,
    E_429_SECONDS,
    E_429_DATE,
    E_429_MS,
    E_429_LONG,
    E_500,
    E_500_MALFORMED,
    E_529,
    E_401,
    E_400,
    E_BIG
};

/* How the response is cut at byte cut_at (cut=, reset=, stall-at=). */
enum cut_kind { CUT_NONE, CUT_CLOSE, CUT_RESET, CUT_STALL };

#define CUT_MAX (1ul << 30) /* the largest N of cut=N and its kin */

struct behave {
    enum err_kind err;
    bool no_retry_header, usage_in_finish, no_usage, hang, stall, drop, malformed, crlf, split,
        oversize, midstream, slow;
    bool json;       /* the reply text is an indented JSON object quoting the message */
    bool echo_key;   /* Opik routes only: the error body quotes the authorization header */
    bool spans_only; /* Opik routes only: trace batches are served normally */
    bool has_then;
    unsigned long then_n;
    unsigned long rate;  /* rate=N: streamed pieces per second (0: as fast as possible) */
    unsigned long words; /* words=N: the reply is "w1 w2 ... wN" (0: the normal text) */
    /* tool=A+B: the tools one reply calls, in order (ntools 0: none) */
    char tools[TOOLS_MAX][TOOL_NAME_MAX + 1];
    size_t ntools;
    bool toolloop;     /* call the tool `loop` on every request tools may answer */
    bool toolargs_bad; /* the calls' arguments are cut JSON: {"text": */
    enum cut_kind cut; /* cut=N, reset=N, stall-at=N */
    unsigned long cut_at;
    unsigned long bigline; /* bigline=N: one text piece of N bytes (0: none) */
    unsigned long nested;  /* nested=N: one payload N arrays deep (0: none) */
};

static const struct {
    const char *name;
    enum err_kind err;
} err_names[] = {
    {"429-seconds", E_429_SECONDS},
    {"429-date", E_429_DATE},
    {"429-ms", E_429_MS},
    {"429-long", E_429_LONG},
    {"500", E_500},
    {"500-malformed", E_500_MALFORMED},
    {"529", E_529},
    {"401", E_401},
    {"400", E_400},
    {"big-error", E_BIG},
};

static const struct {
    const char *name;
    size_t off; /* of the bool in struct behave */
} flag_names[] = {
    {"no-retry-header", offsetof(struct behave, no_retry_header)},
    {"usage-in-finish", offsetof(struct behave, usage_in_finish)},
    {"no-usage", offsetof(struct behave, no_usage)},
    {"hang", offsetof(struct behave, hang)},
    {"stall", offsetof(struct behave, stall)},
    {"drop", offsetof(struct behave, drop)},
    {"malformed", offsetof(struct behave, malformed)},
    {"crlf", offsetof(struct behave, crlf)},
    {"split-utf8", offsetof(struct behave, split)},
    {"oversize", offsetof(struct behave, oversize)},
    {"mid-stream-error", offsetof(struct behave, midstream)},
    {"slow", offsetof(struct behave, slow)},
    {"json", offsetof(struct behave, json)},
    {"echo-key", offsetof(struct behave, echo_key)},
    {"spans-only", offsetof(struct behave, spans_only)},
    {"toolloop", offsetof(struct behave, toolloop)},
    {"toolargs-bad", offsetof(struct behave, toolargs_bad)},
};

/* Parses the count of `rate=N` or `words=N`: decimal, 1 to max. */
static bool behave_count(const char *v, unsigned long max, unsigned long *out)
{
    if (*v < '0' || *v > '9')
        return false;
    char *endp;
    errno = 0;
    unsigned long n = strtoul(v, &endp, 10);
    if (*endp != '\0' || errno != 0 || n == 0 || n > max)
        return false;
    *out = n;
    return true;
}

/* True for the bytes of a tool name: [A-Za-z0-9_-], as OpenAI allows. */
static bool tool_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

/* Appends the names of `tool=A+B` (v is "A+B") to b's tools; false when a
 * name is empty, too long or not a tool name, or when there are too many. */
static bool behave_tools(struct behave *b, const char *v)
{
    for (;;) {
        size_t n = strcspn(v, "+");
        if (n == 0 || n > TOOL_NAME_MAX || b->ntools == TOOLS_MAX)
            return false;
        for (size_t i = 0; i < n; i++)
            if (!tool_name_char(v[i]))
                return false;
        memcpy(b->tools[b->ntools], v, n);
        b->tools[b->ntools][n] = '\0';
        b->ntools++;
        if (v[n] == '\0')
            return true;
        v += n + 1;
    }
}

/* Parses the N of `cut=N`, `reset=N` or `stall-at=N` (v): decimal, 0 to
 * CUT_MAX, leading zeros allowed. */
static bool behave_cut(struct behave *b, enum cut_kind kind, const char *v)
{
    if (*v < '0' || *v > '9')
        return false;
    char *endp;
    errno = 0;
    unsigned long n = strtoul(v, &endp, 10);
    if (*endp != '\0' || errno != 0 || n > CUT_MAX)
        return false;
    b->cut = kind;
    b->cut_at = n;
    return true;
}

/* Sets one behaviour named w in b; false when w is not a behaviour. */
static bool behave_set(struct behave *b, const char *w)
{
    for (size_t i = 0; i < sizeof err_names / sizeof err_names[0]; i++) {
        if (strcmp(w, err_names[i].name) == 0) {
            if (b->err == E_NONE) /* the first error named wins */
                b->err = err_names[i].err;
            return true;
        }
    }
    for (size_t i = 0; i < sizeof flag_names / sizeof flag_names[0]; i++) {
        if (strcmp(w, flag_names[i].name) == 0) {
            *(bool *)((char *)b + flag_names[i].off) = true;
            return true;
        }
    }
    if (strncmp(w, "then=", 5) == 0 && w[5] >= '0' && w[5] <= '9') {
        char *endp;
        errno = 0;
        b->then_n = strtoul(w + 5, &endp, 10);
        b->has_then = true;
        return *endp == '\0' && errno == 0;
    }
    if (strncmp(w, "rate=", 5) == 0)
        return behave_count(w + 5, RATE_MAX, &b->rate);
    if (strncmp(w, "words=", 6) == 0)
        return behave_count(w + 6, WORDS_MAX, &b->words);
    if (strncmp(w, "tool=", 5) == 0)
        return behave_tools(b, w + 5);
    if (strncmp(w, "bigline=", 8) == 0)
        return behave_count(w + 8, BIGLINE_MAX, &b->bigline);
    if (strncmp(w, "nested=", 7) == 0)
        return behave_count(w + 7, NESTED_MAX, &b->nested);
    if (strncmp(w, "cut=", 4) == 0)
        return behave_cut(b, CUT_CLOSE, w + 4);
    if (strncmp(w, "reset=", 6) == 0)
        return behave_cut(b, CUT_RESET, w + 6);
    if (strncmp(w, "stall-at=", 9) == 0)
        return behave_cut(b, CUT_STALL, w + 9);
    return w[0] == '\0'; /* an empty item, as in "mock:,500" */
}

/* Parses "mock:<b>[,<b>...]" into b; any other model string is the normal
 * behaviour. Returns false with the unknown name in bad when a behaviour is
 * not one of the spec's. */
static bool behave_parse(const char *model, struct behave *b, char *bad, size_t badlen)
{
    memset(b, 0, sizeof *b);
    if (strncmp(model, "mock:", 5) != 0)
        return true;
    for (const char *p = model + 5; *p != '\0';) {
        size_t n = strcspn(p, ",");
        char w[128];
        if (n >= sizeof w) {
            snprintf(bad, badlen, "%.*s", (int)n, p);
            return false;
        }
        memcpy(w, p, n);
        w[n] = '\0';
        if (!behave_set(b, w)) {
            snprintf(bad, badlen, "%s", w);
            return false;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    return true;
}

/* then=N: after N requests the failure behaviours stop; the formatting ones
 * (usage placement, malformed, crlf, split-utf8, slow, json, rate, words)
 * and the tool ones stay. */
static void behave_disarm(struct behave *b)
{
    b->err = E_NONE;
    b->hang = b->stall = b->drop = b->oversize = b->midstream = b->echo_key = false;
    b->cut = CUT_NONE;
}

struct counter {
    struct counter *next;
    char *model;
    unsigned long n;
};

/* ---- connections and their output queue ------------------------------------ */

/* SEG_RESET closes with an RST (cut behaviours' reset=N). */
enum seg_kind { SEG_DATA, SEG_STALL, SEG_CLOSE, SEG_RESET, SEG_GEN };

/* One step of a reply. SEG_GEN refills data lazily from unit (one HTTP chunk
 * of repeated units per refill) until limit bytes were generated. */
struct seg {
    struct seg *next;
    enum seg_kind kind;
    char *data;
    size_t len, off;
    int64_t delay_us; /* wait this long after the previous step */
    int64_t due_us;   /* and not before this time (now_us() clock; 0: none) */
    long piece;       /* the reply piece it carries, -1 for any other step */
    bool split;       /* write 1-3 bytes at a time, SPLIT_PACE_US apart */
    char *unit;
    size_t unitlen;
    unsigned long long generated, limit;
};

enum conn_state {
    C_RECV,    /* reading a request */
    C_SEND,    /* writing a reply */
    C_STALLED, /* writes nothing more; open until the client closes */
    C_LINGER,  /* reply done, write side shut: draining until EOF or deadline */
    C_DEAD
};

struct conn {
    struct conn *next;
    int fd;
    unsigned long id;
    enum conn_state state;
    struct sbuf in;
    struct seg *head, *tail;
    int64_t next_ok_us; /* no write before this time */
    int64_t linger_deadline_us;
    unsigned split_phase;
    bool close_after;   /* close (lingering) when the queue drains */
    bool peer_eof;      /* the client shut its side: stop reading */
    bool continue_sent; /* 100 Continue sent for the request being read */
};

struct server {
    int lfd, sig_rd;
    bool stdin_open;
    FILE *log;
    unsigned long seq, nconn;
    struct conn *conns;
    struct counter *counters;
};

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void seg_free(struct seg *g)
{
    free(g->data);
    free(g->unit);
    free(g);
}

static struct seg *q_push(struct conn *c, enum seg_kind kind, int64_t delay_us, bool split)
{
    struct seg *g = xmalloc_or_die(sizeof *g);
    memset(g, 0, sizeof *g);
    g->kind = kind;
    g->piece = -1;
    g->delay_us = delay_us;
    g->split = split;
    if (c->head == NULL) {
        c->head = c->tail = g;
        if (delay_us > 0 && now_us() + delay_us > c->next_ok_us)
            c->next_ok_us = now_us() + delay_us;
    } else {
        c->tail->next = g;
        c->tail = g;
    }
    return g;
}

/* Queues a copy of n bytes. */
static void q_bytes(struct conn *c, const char *s, size_t n, int64_t delay_us, bool split)
{
    if (n == 0 && delay_us == 0)
        return;
    struct seg *g = q_push(c, SEG_DATA, delay_us, split);
    g->data = xstrndup_or_die(s, n);
    g->len = n;
}

/* Queues n bytes framed as one HTTP chunk. */
static void q_chunk(struct conn *c, const char *s, size_t n, int64_t delay_us, bool split)
{
    if (n == 0)
        return;
    struct sbuf b = {0};
    sb_printf(&b, "%zx\r\n", n);
    sb_put(&b, s, n);
    sb_puts(&b, "\r\n");
    struct seg *g = q_push(c, SEG_DATA, delay_us, split);
    g->data = sb_take(&b, &g->len);
}

/* rate=N: makes piece i of the segments queued after `after` (NULL: all)
 * due at now + i/N, now being once they are all built (a long reply takes
 * milliseconds to build), so the pace does not drift with late wake-ups. */
static void q_schedule(struct conn *c, struct seg *after, unsigned long rate)
{
    int64_t start = now_us();
    for (struct seg *g = after != NULL ? after->next : c->head; g != NULL; g = g->next)
        if (g->piece >= 0)
            g->due_us = start + (int64_t)((double)g->piece * 1e6 / (double)rate);
    if (c->head != NULL && c->head->due_us > c->next_ok_us)
        c->next_ok_us = c->head->due_us;
}

static void q_mark(struct conn *c, enum seg_kind kind)
{
    q_push(c, kind, 0, false);
}

static void q_gen(struct conn *c, const char *unit, size_t unitlen, unsigned long long limit,
                  bool split)
{
    struct seg *g = q_push(c, SEG_GEN, 0, split);
    g->unit = xstrndup_or_die(unit, unitlen);
    g->unitlen = unitlen;
    g->limit = limit;
}

/* Refills a SEG_GEN: false when it has generated its limit. The last
 * refill stops at the limit (rounded up to whole units). */
static bool gen_refill(struct seg *g)
{
    if (g->generated >= g->limit || g->unitlen == 0)
        return false;
    size_t k = OVERSIZE_BATCH / g->unitlen + 1;
    unsigned long long left = (g->limit - g->generated + g->unitlen - 1) / g->unitlen;
    if (k > left)
        k = (size_t)left;
    struct sbuf b = {0};
    sb_printf(&b, "%zx\r\n", k * g->unitlen);
    for (size_t i = 0; i < k; i++)
        sb_put(&b, g->unit, g->unitlen);
    sb_puts(&b, "\r\n");
    g->generated += k * g->unitlen;
    free(g->data);
    g->data = sb_take(&b, &g->len);
    g->off = 0;
    return true;
}

static void conn_clear_queue(struct conn *c)
{
    while (c->head != NULL) {
        struct seg *g = c->head;
        c->head = g->next;
        seg_free(g);
    }
    c->tail = NULL;
}

static void conn_kill(struct conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->state = C_DEAD;
    conn_clear_queue(c);
}

/* ---- reply building ---------------------------------------------------------- */

static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not Found";
    case 413:
        return "Content Too Large";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 529:
        return "Overloaded";
    default:
        return "Unknown";
    }
}

/* Appends the status line and the common headers; extra is zero or more
 * complete "Name: value\r\n" lines. clen < 0 means chunked. */
static void head_put(struct sbuf *h, const struct conn *c, int status, const char *ctype,
                     long long clen, const char *extra)
{
    sb_printf(h, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n", status, reason(status), ctype);
    if (clen < 0)
        sb_puts(h, "Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n");
    else
        sb_printf(h, "Content-Length: %lld\r\n", clen);
    if (c->close_after)
        sb_puts(h, "Connection: close\r\n");
    if (extra != NULL)
        sb_puts(h, extra);
    sb_puts(h, "\r\n");
}

/* Queues a complete fixed reply. */
static void q_fixed(struct conn *c, int status, const char *ctype, const char *extra,
                    const char *body, size_t len)
{
    struct sbuf h = {0};
    head_put(&h, c, status, ctype, (long long)len, extra);
    sb_put(&h, body, len);
    q_bytes(c, h.p, h.len, 0, false);
    sb_free(&h);
}

/* An error body in the route's own format. */
static void err_body(struct sbuf *b, enum route r, const char *oa_type, const char *an_type,
                     const char *msg, unsigned long seq)
{
    if (r == R_OPENAI) {
        sb_puts(b, "{\"error\":{\"message\":");
        json_put_str(b, msg, strlen(msg));
        sb_printf(b, ",\"type\":\"%s\",\"param\":null,\"code\":null}}", oa_type);
    } else if (r == R_ANTHROPIC) {
        sb_printf(b, "{\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":", an_type);
        json_put_str(b, msg, strlen(msg));
        sb_printf(b, "},\"request_id\":\"req_mock_%lu\"}", seq);
    } else {
        sb_puts(b, "{\"error\":");
        json_put_str(b, msg, strlen(msg));
        sb_puts(b, "}");
    }
}

/* Appends the retry header of a 429 behaviour to extra (nothing for the
 * other kinds). */
static void retry_header_put(struct sbuf *extra, enum err_kind k)
{
    if (k == E_429_SECONDS) {
        sb_puts(extra, "Retry-After: 1\r\n");
    } else if (k == E_429_LONG) {
        sb_puts(extra, "Retry-After: 3600\r\n");
    } else if (k == E_429_MS) {
        sb_puts(extra, "retry-after-ms: 150\r\n");
    } else if (k == E_429_DATE) {
        time_t t = time(NULL) + 2;
        struct tm tm;
        char date[64];
        gmtime_r(&t, &tm);
        strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        sb_printf(extra, "Retry-After: %s\r\n", date);
    }
}

/* Queues the reply of an error behaviour. */
static void q_error(struct conn *c, enum route r, const struct behave *b, unsigned long seq)
{
    struct sbuf body = {0}, extra = {0};
    int status = 500;
    switch (b->err) {
    case E_429_SECONDS:
    case E_429_DATE:
    case E_429_MS:
    case E_429_LONG:
        status = 429;
        err_body(&body, r, "rate_limit_error", "rate_limit_error", "mock rate limit", seq);
        retry_header_put(&extra, b->err);
        break;
    case E_500:
        err_body(&body, r, "server_error", "api_error", "mock internal error", seq);
        break;
    case E_500_MALFORMED:
        sb_puts(&body, "{\"error\":{\"code\":500,\"message\":\"[json.exception.parse_error.101] "
                       "parse error\",\"type\":\"server_error\"}}");
        break;
    case E_529:
        status = 529;
        sb_puts(&body, "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":"
                       "\"Overloaded\"}}");
        break;
    case E_401:
        status = 401;
        err_body(&body, r, "authentication_error", "authentication_error",
                 "mock authentication error: invalid API key", seq);
        break;
    case E_400:
        status = 400;
        err_body(&body, r, "invalid_request_error", "invalid_request_error", "mock invalid request",
                 seq);
        break;
    case E_BIG: {
        /* The message first, so that a client keeping only a prefix still
         * has it; padding brings the body to exactly BIG_ERROR_SIZE. */
        if (r == R_OPENAI)
            sb_puts(&body, "{\"error\":{\"message\":\"mock big error\",\"type\":\"server_error\","
                           "\"param\":null,\"code\":null,\"padding\":\"");
        else if (r == R_ANTHROPIC)
            sb_puts(&body, "{\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":"
                           "\"mock big error\",\"padding\":\"");
        else
            sb_puts(&body, "{\"error\":\"mock big error\",\"padding\":\"");
        const char *tail = r == R_OLLAMA ? "\"}" : "\"}}";
        size_t pad = BIG_ERROR_SIZE - body.len - strlen(tail);
        sb_reserve(&body, pad);
        memset(body.p + body.len, 'x', pad);
        body.len += pad;
        sb_puts(&body, tail);
        break;
    }
    case E_NONE:
        break;
    }
    if (b->no_retry_header)
        sb_puts(&extra, "x-should-retry: false\r\n");
    if (r == R_ANTHROPIC)
        sb_printf(&extra, "request-id: req_mock_%lu\r\n", seq);
    q_fixed(c, status, "application/json", extra.p, body.p, body.len);
    sb_free(&body);
    sb_free(&extra);
}

/* One tool call of a reply: its arguments text cut into pieces like the
 * reply text (streamed OpenAI and Anthropic send one fragment per piece). */
struct tcall {
    char name[TOOL_NAME_MAX + 1];
    char id[24];      /* "call_N" (OpenAI), "toolu_N" (Anthropic); Ollama sends none */
    struct sbuf args; /* {"text":"..."}, or the cut {"text": of toolargs-bad */
    bool bad;         /* args is not JSON: whole replies send it as a string */
    size_t *poff, *plen;
    size_t npieces;
};

/* What the reply says, and how it is cut into pieces. */
struct reply {
    enum route route;
    bool stream, include_usage;
    char *model;
    struct sbuf text; /* the whole reply text */
    bool fffd;        /* split-utf8: one extra piece whose JSON is "\ufffd" */
    size_t *poff, *plen;
    size_t npieces;      /* including the \ufffd piece; a tool reply: its calls' pieces */
    struct tcall *calls; /* a tool reply's calls (ncalls 0: a text reply) */
    size_t ncalls;
    unsigned long prompt_tokens, seq;
};

static void reply_fini(struct reply *rp)
{
    free(rp->model);
    sb_free(&rp->text);
    free(rp->poff);
    free(rp->plen);
    for (size_t i = 0; i < rp->ncalls; i++) {
        sb_free(&rp->calls[i].args);
        free(rp->calls[i].poff);
        free(rp->calls[i].plen);
    }
    free(rp->calls);
}

/* Cuts s[0..n) into pieces of at most PIECE_MAX bytes, never inside a
 * UTF-8 sequence: offsets and lengths in new arrays with room for `extra`
 * more pieces. */
static void pieces_cut(const char *text, size_t n, size_t extra, size_t **poff, size_t **plen,
                       size_t *np)
{
    size_t cap = n / 4 + 2 + extra;
    *poff = xmalloc_or_die(cap * sizeof **poff);
    *plen = xmalloc_or_die(cap * sizeof **plen);
    *np = 0;
    const unsigned char *s = (const unsigned char *)text;
    for (size_t off = 0; off < n;) {
        size_t k = n - off < PIECE_MAX ? n - off : PIECE_MAX;
        if (off + k < n) {
            /* back off to the start of a split sequence (at most 3 bytes,
             * so every piece but the last has 4 or more: cap holds) */
            size_t j = k;
            while (j > k - 3 && (s[off + j] & 0xC0) == 0x80)
                j--;
            if ((s[off + j] & 0xC0) != 0x80)
                k = j;
        }
        (*poff)[*np] = off;
        (*plen)[*np] = k;
        (*np)++;
        off += k;
    }
}

/* Cuts the text into pieces (pieces_cut), plus split-utf8's extra one. */
static void reply_cut(struct reply *rp)
{
    pieces_cut(rp->text.p, rp->text.len, 2, &rp->poff, &rp->plen, &rp->npieces);
    if (rp->fffd) {
        rp->poff[rp->npieces] = rp->text.len;
        rp->plen[rp->npieces] = 0;
        rp->npieces++;
    }
}

/* Adds a call to tool name whose arguments are {"text": text}, or the cut
 * {"text": when bad. Its pieces count as the reply's. */
static void reply_add_call(struct reply *rp, const char *name, const char *text, size_t tlen,
                           bool bad)
{
    struct tcall *calls = realloc(rp->calls, (rp->ncalls + 1) * sizeof *calls);
    if (calls == NULL)
        die_oom();
    rp->calls = calls;
    struct tcall *tc = &calls[rp->ncalls++];
    memset(tc, 0, sizeof *tc);
    snprintf(tc->name, sizeof tc->name, "%s", name);
    snprintf(tc->id, sizeof tc->id, "%s_%zu", rp->route == R_ANTHROPIC ? "toolu" : "call",
             rp->ncalls);
    tc->bad = bad;
    sb_puts(&tc->args, "{\"text\":");
    if (!bad) {
        json_put_str(&tc->args, text, tlen);
        sb_putc(&tc->args, '}');
    }
    pieces_cut(tc->args.p, tc->args.len, 0, &tc->poff, &tc->plen, &tc->npieces);
    rp->npieces += tc->npieces;
}

/* Cuts a words=N text into one piece per word, its space included. */
static void reply_cut_words(struct reply *rp)
{
    size_t n = rp->text.len, cap = n / 2 + 1;
    rp->poff = xmalloc_or_die(cap * sizeof *rp->poff);
    rp->plen = xmalloc_or_die(cap * sizeof *rp->plen);
    rp->npieces = 0;
    for (size_t off = 0; off < n;) {
        const char *sp = memchr(rp->text.p + off, ' ', n - off);
        size_t k = sp != NULL ? (size_t)(sp - (rp->text.p + off)) + 1 : n - off;
        rp->poff[rp->npieces] = off;
        rp->plen[rp->npieces] = k;
        rp->npieces++;
        off += k;
    }
}

/* Appends piece i as a JSON string. */
static void piece_json(struct sbuf *b, const struct reply *rp, size_t i)
{
    if (rp->fffd && i == rp->npieces - 1)
        sb_puts(b, "\"\\ufffd\"");
    else
        json_put_str(b, rp->text.p + rp->poff[i], rp->plen[i]);
}

/* Appends the whole reply text as one JSON string. */
static void text_json(struct sbuf *b, const struct reply *rp)
{
    sb_putc(b, '"');
    json_put_inner(b, rp->text.p, rp->text.len);
    if (rp->fffd)
        sb_puts(b, "\\ufffd");
    sb_putc(b, '"');
}

/* Queues one stream event (SSE event or NDJSON line, written with \n line
 * ends) as one HTTP chunk, with `crlf` applied: \r\n ends, or bare \r for
 * the event marked lone_cr (SSE only). */
static void q_event(struct conn *c, const struct behave *b, const char *ev, size_t n, bool lone_cr,
                    int64_t delay_us)
{
    if (!b->crlf) {
        q_chunk(c, ev, n, delay_us, b->split);
        return;
    }
    struct sbuf t = {0};
    for (size_t i = 0; i < n; i++) {
        if (ev[i] == '\n')
            sb_puts(&t, lone_cr ? "\r" : "\r\n");
        else
            sb_putc(&t, ev[i]);
    }
    q_chunk(c, t.p, t.len, delay_us, b->split);
    sb_free(&t);
}

static void oa_chunk_open(struct sbuf *e, const struct reply *rp)
{
    sb_printf(e,
              "data: {\"id\":\"chatcmpl-mock-%lu\",\"object\":\"chat.completion.chunk\","
              "\"created\":%d,\"model\":",
              rp->seq, FIXED_CREATED);
    json_put_str(e, rp->model, strlen(rp->model));
}

static void usage_oa(struct sbuf *e, const struct reply *rp)
{
    sb_printf(e, "\"usage\":{\"prompt_tokens\":%lu,\"completion_tokens\":%zu,\"total_tokens\":%lu}",
              rp->prompt_tokens, rp->npieces, rp->prompt_tokens + rp->npieces);
}

/* The stream event of piece i (i == npieces: the oversize filler piece). */
static void ev_piece(struct sbuf *e, const struct reply *rp, size_t i)
{
    if (rp->route == R_OPENAI) {
        oa_chunk_open(e, rp);
        sb_puts(e, ",\"choices\":[{\"index\":0,\"delta\":{\"content\":");
    } else if (rp->route == R_ANTHROPIC) {
        sb_puts(e, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\","
                   "\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":");
    } else {
        sb_puts(e, "{\"model\":");
        json_put_str(e, rp->model, strlen(rp->model));
        sb_puts(e, ",\"created_at\":\"" FIXED_CREATED_AT "\",\"message\":{\"role\":\"assistant\","
                   "\"content\":");
    }
    if (i < rp->npieces)
        piece_json(e, rp, i);
    else
        sb_puts(e, "\"endless\"");
    if (rp->route == R_OPENAI)
        sb_puts(e, "},\"logprobs\":null,\"finish_reason\":null}]");
    else
        sb_puts(e, "}");
    if (rp->route == R_OPENAI && rp->include_usage)
        sb_puts(e, ",\"usage\":null");
    sb_puts(e, rp->route == R_OLLAMA ? ",\"done\":false}\n" : "}\n\n");
}

/* Queues the garbage of `malformed` (between the first and second piece). */
static void q_garbage(struct conn *c, const struct behave *b, const struct reply *rp)
{
    if (rp->route == R_OLLAMA) {
        q_event(c, b, "{broken\n", 8, false, 0);
        return;
    }
    static const char *const junk[] = {": ping\n\n", "data: {not json}\n\n", "data: [1,2,3]\n\n",
                                       "event: bogus\ndata: x\n\n"};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
        q_event(c, b, junk[i], strlen(junk[i]), false, 0);
}

/* Queues the status line and headers of a streamed reply. */
static void q_stream_head(struct conn *c, const struct reply *rp)
{
    struct sbuf h = {0};
    char extra[64] = "";
    if (rp->route == R_ANTHROPIC)
        snprintf(extra, sizeof extra, "request-id: req_mock_%lu\r\n", rp->seq);
    head_put(&h, c, 200, rp->route == R_OLLAMA ? "application/x-ndjson" : "text/event-stream", -1,
             extra);
    q_bytes(c, h.p, h.len, 0, false);
    sb_free(&h);
}

/* Anthropic's message_start event. */
static void ev_an_start(struct sbuf *e, const struct behave *b, const struct reply *rp)
{
    sb_printf(e,
              "event: message_start\ndata: {\"type\":\"message_start\",\"message\":"
              "{\"id\":\"msg_mock_%lu\",\"type\":\"message\",\"role\":\"assistant\","
              "\"model\":",
              rp->seq);
    json_put_str(e, rp->model, strlen(rp->model));
    sb_puts(e, ",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null");
    if (!b->no_usage)
        sb_printf(e, ",\"usage\":{\"input_tokens\":%lu,\"output_tokens\":1}", rp->prompt_tokens);
    sb_puts(e, "}}\n\n");
}

/* Anthropic's and Ollama's usage figures (OpenAI's: usage_oa). */
static void usage_an(struct sbuf *e, const struct reply *rp)
{
    sb_printf(e, ",\"usage\":{\"input_tokens\":%lu,\"output_tokens\":%zu}", rp->prompt_tokens,
              rp->npieces);
}

static void usage_ol(struct sbuf *e, const struct reply *rp)
{
    sb_printf(e, ",\"total_duration\":0,\"prompt_eval_count\":%lu,\"eval_count\":%zu",
              rp->prompt_tokens, rp->npieces);
}

/* The events that end a stream: OpenAI's finish chunk (finish_reason
 * "tool_calls" for a tool reply), its usage chunk and [DONE]; Anthropic's
 * message_delta (stop_reason "tool_use" for a tool reply, whose blocks
 * were already closed) and message_stop; Ollama's done line. */
static void ev_end(struct sbuf *e, const struct behave *b, const struct reply *rp)
{
    bool tools = rp->ncalls > 0;
    if (rp->route == R_OPENAI) {
        oa_chunk_open(e, rp);
        sb_printf(e,
                  ",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,"
                  "\"finish_reason\":\"%s\"}]",
                  tools ? "tool_calls" : "stop");
        if (b->usage_in_finish && !b->no_usage) {
            sb_putc(e, ',');
            usage_oa(e, rp);
        } else if (rp->include_usage) {
            sb_puts(e, ",\"usage\":null");
        }
        sb_puts(e, "}\n\n");
        if (rp->include_usage && !b->usage_in_finish && !b->no_usage) {
            oa_chunk_open(e, rp);
            sb_puts(e, ",\"choices\":[],");
            usage_oa(e, rp);
            sb_puts(e, "}\n\n");
        }
        sb_puts(e, "data: [DONE]\n\n");
    } else if (rp->route == R_ANTHROPIC) {
        if (!tools)
            sb_puts(e, "event: content_block_stop\ndata: {\"type\":\"content_block_stop\","
                       "\"index\":0}\n\n");
        sb_printf(e,
                  "event: message_delta\ndata: {\"type\":\"message_delta\","
                  "\"delta\":{\"stop_reason\":\"%s\",\"stop_sequence\":null}",
                  tools ? "tool_use" : "end_turn");
        if (!b->no_usage)
            usage_an(e, rp);
        sb_puts(e, "}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    } else {
        sb_puts(e, "{\"model\":");
        json_put_str(e, rp->model, strlen(rp->model));
        sb_puts(e, ",\"created_at\":\"" FIXED_CREATED_AT "\",\"message\":{\"role\":\"assistant\","
                   "\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\"");
        if (!b->no_usage)
            usage_ol(e, rp);
        sb_puts(e, "}\n");
    }
}

/* Ends a stream the way stall, drop or mid-stream-error cut it: stall
 * writes nothing more, drop sends half of next (the event that would have
 * come next) inside its chunk and closes, mid-stream-error sends the
 * route's error event and ends the body. */
static void q_cut(struct conn *c, const struct behave *b, enum route r, const char *next,
                  size_t nlen)
{
    if (b->stall) {
        q_mark(c, SEG_STALL);
        return;
    }
    if (b->drop) {
        struct sbuf part = {0};
        sb_printf(&part, "%zx\r\n", nlen);
        sb_put(&part, next, nlen / 2);
        q_bytes(c, part.p, part.len, 0, b->split);
        q_mark(c, SEG_CLOSE);
        sb_free(&part);
        return;
    }
    const char *ev = r == R_OPENAI ? "data: {\"error\":{\"message\":\"mock mid-stream failure\","
                                     "\"type\":\"server_error\"}}\n\n"
                     : r == R_ANTHROPIC
                         ? "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":"
                           "\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"
                         : "{\"error\":\"mock mid-stream failure\"}\n";
    q_event(c, b, ev, strlen(ev), false, 0);
    q_bytes(c, "0\r\n\r\n", 5, 0, b->split);
}

/* Queues the outsized event of bigline=N or nested=N: the route's framing
 * around N generated bytes of 'x' (a text piece), or N '[' then N ']'. */
static void q_big(struct conn *c, const struct behave *b, const struct reply *rp)
{
    if (b->bigline == 0 && b->nested == 0)
        return;
    struct sbuf head = {0};
    const char *tail;
    if (b->bigline > 0) {
        struct sbuf e = {0};
        ev_piece(&e, rp, 0);
        /* Piece 0's event with its text replaced: cut it at the text. */
        const char *text = strstr(e.p, rp->route == R_ANTHROPIC ? "\"text\":\"" : "\"content\":\"");
        size_t at = (size_t)(text - e.p) + (rp->route == R_ANTHROPIC ? 8 : 11);
        sb_put(&head, e.p, at);
        const char *rest = e.p + at + 1;
        while (*rest != '"') /* the piece's own text, without escapes in it */
            rest++;
        q_chunk(c, head.p, head.len, 0, b->split);
        q_gen(c, "x", 1, b->bigline, b->split);
        q_chunk(c, rest, strlen(rest), 0, b->split);
        sb_free(&e);
        sb_free(&head);
        return;
    }
    if (rp->route == R_ANTHROPIC)
        sb_puts(&head, "event: content_block_delta\ndata: ");
    else if (rp->route == R_OPENAI)
        sb_puts(&head, "data: ");
    tail = rp->route == R_OLLAMA ? "\n" : "\n\n";
    q_chunk(c, head.p, head.len, 0, b->split);
    q_gen(c, "[", 1, b->nested, b->split);
    q_gen(c, "]", 1, b->nested, b->split);
    q_chunk(c, tail, strlen(tail), 0, b->split);
    sb_free(&head);
}

/* Queues a streamed reply (SSE or NDJSON) with the stream behaviours. */
static void q_stream(struct conn *c, const struct behave *b, const struct reply *rp)
{
    struct sbuf e = {0};
    q_stream_head(c, rp);

    /* preamble */
    if (rp->route == R_OPENAI) {
        oa_chunk_open(&e, rp);
        sb_puts(&e,
                ",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
                "\"logprobs\":null,\"finish_reason\":null}]");
        if (rp->include_usage)
            sb_puts(&e, ",\"usage\":null");
        sb_puts(&e, "}\n\n");
        q_event(c, b, e.p, e.len, false, 0);
    } else if (rp->route == R_ANTHROPIC) {
        ev_an_start(&e, b, rp);
        q_event(c, b, e.p, e.len, false, 0);
        e.len = 0;
        static const char cbs[] =
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,"
            "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n";
        static const char ping[] = "event: ping\ndata: {\"type\":\"ping\"}\n\n";
        q_event(c, b, cbs, sizeof cbs - 1, false, 0);
        q_event(c, b, ping, sizeof ping - 1, false, 0);
    }

    bool cut = b->stall || b->drop || b->midstream;
    struct seg *before = c->tail;
    for (size_t i = 0; i < rp->npieces; i++) {
        if (cut && i == 2)
            break;
        e.len = 0;
        ev_piece(&e, rp, i);
        q_event(c, b, e.p, e.len, i == 1 && rp->route != R_OLLAMA, b->slow ? SLOW_US : 0);
        c->tail->piece = (long)i;
        if (i == 0 && b->malformed)
            q_garbage(c, b, rp);
        if (i == 0)
            q_big(c, b, rp);
    }
    if (b->rate > 0)
        q_schedule(c, before, b->rate);
    if (cut) {
        e.len = 0;
        if (b->drop) /* half of the next event */
            ev_piece(&e, rp, rp->npieces > 2 ? 2 : rp->npieces);
        q_cut(c, b, rp->route, e.p, e.len);
        sb_free(&e);
        return;
    }
    if (b->oversize) {
        e.len = 0;
        ev_piece(&e, rp, rp->npieces);
        q_gen(c, e.p, e.len, OVERSIZE_LIMIT, b->split);
    }

    /* the end */
    e.len = 0;
    ev_end(&e, b, rp);
    q_event(c, b, e.p, e.len, false, 0);
    q_bytes(c, "0\r\n\r\n", 5, 0, b->split);
    sb_free(&e);
}

/* A tool call's arguments as a JSON value: the object itself (Anthropic's
 * input, Ollama's arguments) unless as_string or the text is not JSON
 * (toolargs-bad), then as a JSON string holding the text. */
static void tcall_args_json(struct sbuf *e, const struct tcall *tc, bool as_string)
{
    if (as_string || tc->bad)
        json_put_str(e, tc->args.p, tc->args.len);
    else
        sb_put(e, tc->args.p, tc->args.len);
}

/* Ollama's message.tool_calls: whole calls, arguments an object, no id. */
static void ol_calls_json(struct sbuf *e, const struct reply *rp)
{
    sb_puts(e, "[");
    for (size_t i = 0; i < rp->ncalls; i++) {
        sb_printf(e, "%s{\"function\":{\"index\":%zu,\"name\":", i > 0 ? "," : "", i);
        json_put_str(e, rp->calls[i].name, strlen(rp->calls[i].name));
        sb_puts(e, ",\"arguments\":");
        tcall_args_json(e, &rp->calls[i], false);
        sb_puts(e, "}}");
    }
    sb_puts(e, "]");
}

/* A streamed tool reply in progress: fragment events are counted so that
 * the cutting behaviours (stall, drop, mid-stream-error) strike after two
 * of them, as they strike after two pieces of a text reply. */
struct tstream {
    struct conn *c;
    const struct behave *b;
    const struct reply *rp;
    size_t k;  /* fragment events queued */
    bool done; /* a cutting behaviour ended the stream */
};

/* Queues fragment event e (cutting the stream instead when its time has
 * come); false once the stream was cut. */
static bool ts_fragment(struct tstream *ts, const struct sbuf *e)
{
    const struct behave *b = ts->b;
    if (ts->done)
        return false;
    if ((b->stall || b->drop || b->midstream) && ts->k == 2) {
        q_cut(ts->c, b, ts->rp->route, e->p, e->len);
        ts->done = true;
        return false;
    }
    q_event(ts->c, b, e->p, e->len, false, b->slow ? SLOW_US : 0);
    ts->c->tail->piece = (long)ts->k;
    if (ts->k == 0 && b->malformed)
        q_garbage(ts->c, b, ts->rp);
    ts->k++;
    return true;
}

/* OpenAI: a chunk whose delta is {"tool_calls":[<call>]}; call is written
 * by the caller between open and close. */
static void oa_tool_open(struct sbuf *e, const struct reply *rp, size_t index)
{
    oa_chunk_open(e, rp);
    sb_printf(e, ",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":%zu", index);
}

static void oa_tool_close(struct sbuf *e, const struct reply *rp)
{
    sb_puts(e, "}]},\"logprobs\":null,\"finish_reason\":null}]");
    if (rp->include_usage)
        sb_puts(e, ",\"usage\":null");
    sb_puts(e, "}\n\n");
}

/* OpenAI's tool-call stream (api-notes.md §1.6): a first fragment per
 * call with its id, type, name and "" arguments, then the arguments'
 * pieces interleaved by index (piece 0 of every call, then piece 1...). */
static void ts_openai(struct tstream *ts, struct sbuf *e)
{
    const struct reply *rp = ts->rp;
    e->len = 0;
    oa_chunk_open(e, rp);
    sb_puts(e, ",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null},"
               "\"logprobs\":null,\"finish_reason\":null}]");
    if (rp->include_usage)
        sb_puts(e, ",\"usage\":null");
    sb_puts(e, "}\n\n");
    q_event(ts->c, ts->b, e->p, e->len, false, 0);
    size_t most = 0;
    for (size_t i = 0; i < rp->ncalls; i++) {
        const struct tcall *tc = &rp->calls[i];
        e->len = 0;
        oa_tool_open(e, rp, i);
        sb_puts(e, ",\"id\":");
        json_put_str(e, tc->id, strlen(tc->id));
        sb_puts(e, ",\"type\":\"function\",\"function\":{\"name\":");
        json_put_str(e, tc->name, strlen(tc->name));
        sb_puts(e, ",\"arguments\":\"\"}");
        oa_tool_close(e, rp);
        q_event(ts->c, ts->b, e->p, e->len, false, 0);
        if (tc->npieces > most)
            most = tc->npieces;
    }
    for (size_t r = 0; r < most; r++) {
        for (size_t i = 0; i < rp->ncalls; i++) {
            const struct tcall *tc = &rp->calls[i];
            if (r >= tc->npieces)
                continue;
            e->len = 0;
            oa_tool_open(e, rp, i);
            sb_puts(e, ",\"function\":{\"arguments\":");
            json_put_str(e, tc->args.p + tc->poff[r], tc->plen[r]);
            sb_puts(e, "}");
            oa_tool_close(e, rp);
            if (!ts_fragment(ts, e))
                return;
        }
    }
}

/* Anthropic's tool-call stream (api-notes.md §2.4): per call, one
 * tool_use block: content_block_start with input {}, the arguments'
 * pieces as input_json_delta, content_block_stop. */
static void ts_anthropic(struct tstream *ts, struct sbuf *e)
{
    const struct reply *rp = ts->rp;
    e->len = 0;
    ev_an_start(e, ts->b, rp);
    q_event(ts->c, ts->b, e->p, e->len, false, 0);
    for (size_t i = 0; i < rp->ncalls; i++) {
        const struct tcall *tc = &rp->calls[i];
        e->len = 0;
        sb_printf(e,
                  "event: content_block_start\ndata: {\"type\":\"content_block_start\","
                  "\"index\":%zu,\"content_block\":{\"type\":\"tool_use\",\"id\":",
                  i);
        json_put_str(e, tc->id, strlen(tc->id));
        sb_puts(e, ",\"name\":");
        json_put_str(e, tc->name, strlen(tc->name));
        sb_puts(e, ",\"input\":{}}}\n\n");
        q_event(ts->c, ts->b, e->p, e->len, false, 0);
        for (size_t r = 0; r < tc->npieces; r++) {
            e->len = 0;
            sb_printf(e,
                      "event: content_block_delta\ndata: {\"type\":\"content_block_delta\","
                      "\"index\":%zu,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":",
                      i);
            json_put_str(e, tc->args.p + tc->poff[r], tc->plen[r]);
            sb_puts(e, "}}\n\n");
            if (!ts_fragment(ts, e))
                return;
        }
        e->len = 0;
        sb_printf(e,
                  "event: content_block_stop\ndata: {\"type\":\"content_block_stop\","
                  "\"index\":%zu}\n\n",
                  i);
        q_event(ts->c, ts->b, e->p, e->len, false, 0);
    }
}

/* Ollama's tool-call stream (api-notes.md §3.1): every call whole, in one
 * line, arguments as objects. */
static void ts_ollama(struct tstream *ts, struct sbuf *e)
{
    e->len = 0;
    sb_puts(e, "{\"model\":");
    json_put_str(e, ts->rp->model, strlen(ts->rp->model));
    sb_puts(e, ",\"created_at\":\"" FIXED_CREATED_AT "\",\"message\":{\"role\":\"assistant\","
               "\"content\":\"\",\"tool_calls\":");
    ol_calls_json(e, ts->rp);
    sb_puts(e, "},\"done\":false}\n");
    (void)ts_fragment(ts, e);
}

/* Queues a streamed tool reply. The stream behaviours apply as to text
 * (crlf, split-utf8, slow, rate and malformed per fragment event; the
 * cutting ones after two fragments, or at the end when there are fewer;
 * usage placement), except oversize. */
static void q_stream_tools(struct conn *c, const struct behave *b, const struct reply *rp)
{
    struct sbuf e = {0};
    struct tstream ts = {.c = c, .b = b, .rp = rp};
    q_stream_head(c, rp);
    struct seg *before = c->tail;
    if (rp->route == R_OPENAI)
        ts_openai(&ts, &e);
    else if (rp->route == R_ANTHROPIC)
        ts_anthropic(&ts, &e);
    else
        ts_ollama(&ts, &e);
    if (b->rate > 0)
        q_schedule(c, before, b->rate);
    if (!ts.done) {
        e.len = 0;
        ev_end(&e, b, rp);
        if (b->stall || b->drop || b->midstream) {
            q_cut(c, b, rp->route, e.p, e.len);
        } else {
            q_event(c, b, e.p, e.len, false, 0);
            q_bytes(c, "0\r\n\r\n", 5, 0, b->split);
        }
    }
    sb_free(&e);
}

/* The non-streamed body into b; with tail non-NULL it is cut around the
 * reply text (for the endless `oversize` body): b gets everything up to and
 * including the text's opening quote, tail the closing quote and the rest. */
static void body_whole(struct sbuf *b, struct sbuf *tail, const struct behave *bh,
                       const struct reply *rp)
{
    struct sbuf *t = tail != NULL ? tail : b;
    if (rp->route == R_OPENAI) {
        sb_printf(b,
                  "{\"id\":\"chatcmpl-mock-%lu\",\"object\":\"chat.completion\",\"created\":%d,"
                  "\"model\":",
                  rp->seq, FIXED_CREATED);
        json_put_str(b, rp->model, strlen(rp->model));
        sb_puts(b, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
    } else if (rp->route == R_ANTHROPIC) {
        sb_printf(b,
                  "{\"id\":\"msg_mock_%lu\",\"type\":\"message\",\"role\":\"assistant\","
                  "\"model\":",
                  rp->seq);
        json_put_str(b, rp->model, strlen(rp->model));
        sb_puts(b, ",\"content\":[{\"type\":\"text\",\"text\":");
    } else {
        sb_puts(b, "{\"model\":");
        json_put_str(b, rp->model, strlen(rp->model));
        sb_puts(b, ",\"created_at\":\"" FIXED_CREATED_AT "\",\"message\":{\"role\":\"assistant\","
                   "\"content\":");
    }
    if (tail == NULL) {
        text_json(b, rp);
    } else {
        sb_putc(b, '"');
        sb_putc(t, '"');
    }
    if (rp->route == R_OPENAI) {
        sb_puts(t, ",\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"stop\"}]");
        if (!bh->no_usage) {
            sb_putc(t, ',');
            usage_oa(t, rp);
        }
        sb_puts(t, "}");
    } else if (rp->route == R_ANTHROPIC) {
        sb_puts(t, "}],\"stop_reason\":\"end_turn\",\"stop_sequence\":null");
        if (!bh->no_usage)
            usage_an(t, rp);
        sb_puts(t, "}");
    } else {
        sb_puts(t, "},\"done\":true,\"done_reason\":\"stop\"");
        if (!bh->no_usage)
            usage_ol(t, rp);
        sb_puts(t, "}");
    }
}

/* The non-streamed body of a tool reply: OpenAI's message.tool_calls
 * (content null, arguments as a string, finish_reason "tool_calls"),
 * Anthropic's tool_use blocks (input the object; stop_reason "tool_use"),
 * Ollama's message.tool_calls. toolargs-bad's text goes where an object
 * belongs as a string, which is how such a reply reaches a client whose
 * server could not make an object of the model's output. */
static void body_whole_tools(struct sbuf *b, const struct behave *bh, const struct reply *rp)
{
    if (rp->route == R_OLLAMA) {
        sb_puts(b, "{\"model\":");
        json_put_str(b, rp->model, strlen(rp->model));
        sb_puts(b, ",\"created_at\":\"" FIXED_CREATED_AT "\",\"message\":{\"role\":\"assistant\","
                   "\"content\":\"\",\"tool_calls\":");
        ol_calls_json(b, rp);
        sb_puts(b, "},\"done\":true,\"done_reason\":\"stop\"");
        if (!bh->no_usage)
            usage_ol(b, rp);
        sb_puts(b, "}");
        return;
    }
    bool oa = rp->route == R_OPENAI;
    if (oa)
        sb_printf(b,
                  "{\"id\":\"chatcmpl-mock-%lu\",\"object\":\"chat.completion\",\"created\":%d,"
                  "\"model\":",
                  rp->seq, FIXED_CREATED);
    else
        sb_printf(b,
                  "{\"id\":\"msg_mock_%lu\",\"type\":\"message\",\"role\":\"assistant\","
                  "\"model\":",
                  rp->seq);
    json_put_str(b, rp->model, strlen(rp->model));
    sb_puts(b, oa ? ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                    "\"content\":null,\"tool_calls\":["
                  : ",\"content\":[");
    for (size_t i = 0; i < rp->ncalls; i++) {
        const struct tcall *tc = &rp->calls[i];
        sb_puts(b, i > 0 ? "," : "");
        sb_puts(b, oa ? "{\"id\":" : "{\"type\":\"tool_use\",\"id\":");
        json_put_str(b, tc->id, strlen(tc->id));
        sb_puts(b, oa ? ",\"type\":\"function\",\"function\":{\"name\":" : ",\"name\":");
        json_put_str(b, tc->name, strlen(tc->name));
        sb_puts(b, oa ? ",\"arguments\":" : ",\"input\":");
        tcall_args_json(b, tc, oa);
        sb_puts(b, oa ? "}}" : "}");
    }
    if (oa) {
        sb_puts(b, "],\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"tool_calls\"}]");
        if (!bh->no_usage) {
            sb_putc(b, ',');
            usage_oa(b, rp);
        }
    } else {
        sb_puts(b, "],\"stop_reason\":\"tool_use\",\"stop_sequence\":null");
        if (!bh->no_usage)
            usage_an(b, rp);
    }
    sb_puts(b, "}");
}

/* Queues a non-streamed reply, the stream behaviours applied to one body:
 * stall sends the headers only, drop half the body then closes, slow waits
 * before the body, oversize sends an endless text (chunked), malformed a body
 * that is not JSON, mid-stream-error an error object with status 200. */
static void q_whole(struct conn *c, const struct behave *b, const struct reply *rp)
{
    struct sbuf h = {0}, body = {0};
    char extra[64] = "";
    if (rp->route == R_ANTHROPIC)
        snprintf(extra, sizeof extra, "request-id: req_mock_%lu\r\n", rp->seq);
    if (b->oversize && rp->ncalls == 0) {
        struct sbuf tail = {0};
        body_whole(&body, &tail, b, rp);
        head_put(&h, c, 200, "application/json", -1, extra);
        q_bytes(c, h.p, h.len, 0, false);
        q_chunk(c, body.p, body.len, 0, b->split);
        q_gen(c, "endless ", 8, OVERSIZE_LIMIT, b->split);
        q_chunk(c, tail.p, tail.len, 0, b->split);
        q_bytes(c, "0\r\n\r\n", 5, 0, b->split);
        sb_free(&tail);
    } else if (b->malformed) {
        head_put(&h, c, 200, "application/json", 10, extra);
        q_bytes(c, h.p, h.len, 0, false);
        q_bytes(c, "{not json}", 10, 0, b->split);
    } else if (b->midstream) {
        err_body(&body, rp->route, "server_error", "overloaded_error", "mock mid-stream failure",
                 rp->seq);
        head_put(&h, c, 200, "application/json", (long long)body.len, extra);
        q_bytes(c, h.p, h.len, 0, false);
        q_bytes(c, body.p, body.len, 0, b->split);
    } else {
        if (rp->ncalls > 0)
            body_whole_tools(&body, b, rp);
        else
            body_whole(&body, NULL, b, rp);
        head_put(&h, c, 200, "application/json", (long long)body.len, extra);
        q_bytes(c, h.p, h.len, 0, false);
        int64_t delay = b->slow ? (int64_t)SLOW_US * (int64_t)rp->npieces : 0;
        if (b->rate > 0) /* the time the streamed pieces would have taken */
            delay += (int64_t)((double)rp->npieces * 1e6 / (double)b->rate);
        if (b->stall) {
            q_mark(c, SEG_STALL);
        } else if (b->drop) {
            q_bytes(c, body.p, body.len / 2, delay, b->split);
            q_mark(c, SEG_CLOSE);
        } else {
            q_bytes(c, body.p, body.len, delay, b->split);
        }
    }
    sb_free(&h);
    sb_free(&body);
}

/* Applies cut=N, reset=N or stall-at=N to the reply queued after `after`
 * (NULL: the whole queue): its data segments are kept up to N bytes in
 * all, the rest dropped, and the close, reset or stall follows (after the
 * whole reply when it is shorter). A reply that already ends in a stall or
 * close of its own, or generates its body (oversize), is left as it is
 * past that point. */
static void q_cut_at(struct conn *c, struct seg *after, enum cut_kind kind, unsigned long n)
{
    unsigned long left = n;
    struct seg *g = after != NULL ? after->next : c->head;
    struct seg *last = after;
    for (; g != NULL; last = g, g = g->next) {
        if (g->kind != SEG_DATA)
            return; /* stall, close or generated: not cut */
        if (g->len <= left) {
            left -= g->len;
            continue;
        }
        g->len = left;
        last = g;
        g = g->next;
        break;
    }
    /* Drop what follows `last`, then end there. */
    while (g != NULL) {
        struct seg *next = g->next;
        seg_free(g);
        g = next;
    }
    if (last != NULL) {
        last->next = NULL;
        c->tail = last;
    } else {
        c->head = c->tail = NULL;
    }
    q_mark(c, kind == CUT_RESET ? SEG_RESET : kind == CUT_STALL ? SEG_STALL : SEG_CLOSE);
}

/* ---- request handling -------------------------------------------------------- */

static void log_request(struct server *s, const struct conn *c, const struct request *rq)
{
    if (s->log == NULL)
        return;
    struct sbuf l = {0};
    sb_printf(&l, "{\"seq\":%lu,\"conn\":%lu,\"method\":", s->seq, c->id);
    json_put_str(&l, rq->method, strlen(rq->method));
    sb_puts(&l, ",\"path\":");
    json_put_str(&l, rq->path, strlen(rq->path));
    sb_puts(&l, ",\"headers\":{");
    for (size_t i = 0; i < rq->nhdrs; i++) {
        if (i > 0)
            sb_putc(&l, ',');
        json_put_str(&l, rq->hdrs[i].name, strlen(rq->hdrs[i].name));
        sb_putc(&l, ':');
        json_put_str(&l, rq->hdrs[i].value, strlen(rq->hdrs[i].value));
    }
    sb_puts(&l, "},\"body\":");
    json_put_str(&l, rq->body != NULL ? rq->body : "", rq->bodylen);
    sb_puts(&l, "}\n");
    fwrite(l.p, 1, l.len, s->log);
    fflush(s->log);
    sb_free(&l);
}

/* Counts a request with this model string; returns its number since the
 * last reset (1 for the first). */
static unsigned long counter_bump(struct server *s, const char *model)
{
    for (struct counter *k = s->counters; k != NULL; k = k->next)
        if (strcmp(k->model, model) == 0)
            return ++k->n;
    struct counter *k = xmalloc_or_die(sizeof *k);
    k->model = xstrndup_or_die(model, strlen(model));
    k->n = 1;
    k->next = s->counters;
    s->counters = k;
    return 1;
}

static void counters_free(struct server *s)
{
    while (s->counters != NULL) {
        struct counter *k = s->counters;
        s->counters = k->next;
        free(k->model);
        free(k);
    }
}

/* The tool behaviours' part of a reply, tried before the text ones: true
 * when rp now holds tool calls or the text that answers tool results.
 * toolloop calls `loop` whenever tools are allowed and otherwise says "no
 * more tools"; tool results at the end of the request are answered
 * "tool results: ..." (whatever the other behaviours); tool=NAME (and
 * toolargs-bad, calling `echo` when no name is given) calls its tools when
 * the last message is the user's and tools are allowed. The arguments are
 * {"text": <the last user message's text>}. */
static bool reply_tools(struct reply *rp, const struct behave *b, const char *root, const char *end,
                        const char *msgs, const char *last)
{
    bool allowed = tools_allowed(root, end);
    struct sbuf said = {0};
    js_content_text(last, end, &said);
    const char *text = said.p != NULL ? said.p : "";
    bool done = true;
    if (b->toolloop && allowed) {
        reply_add_call(rp, "loop", text, said.len, b->toolargs_bad);
    } else if (b->toolloop) {
        sb_puts(&rp->text, "no more tools");
    } else if (tool_results_text(msgs, end, rp->route, &rp->text)) {
        /* answered */
    } else if ((b->ntools > 0 || b->toolargs_bad) && allowed && last_is_user(msgs, end)) {
        for (size_t i = 0; i < b->ntools; i++)
            reply_add_call(rp, b->tools[i], text, said.len, b->toolargs_bad);
        if (b->ntools == 0)
            reply_add_call(rp, "echo", text, said.len, true);
    } else {
        done = false;
    }
    sb_free(&said);
    return done;
}

/* A chat request on route r: reads the body, picks the behaviour, queues
 * the reply (or, for hang, nothing). */
static void handle_chat(struct server *s, struct conn *c, const struct request *rq, enum route r)
{
    struct seg *before = c->tail; /* the reply is queued after it */
    const char *body = rq->body != NULL ? rq->body : "";
    const char *end = body + rq->bodylen;
    const char *root = js_ws(body, end);
    const char *after = js_val_end(root, end, 0);
    if (root >= end || *root != '{' || after == NULL || js_ws(after, end) != end) {
        struct sbuf m = {0};
        err_body(&m, r, "invalid_request_error", "invalid_request_error",
                 "mock: the request body is not a JSON object", s->seq);
        q_fixed(c, 400, "application/json", NULL, m.p, m.len);
        sb_free(&m);
        return;
    }

    struct reply rp;
    memset(&rp, 0, sizeof rp);
    rp.route = r;
    rp.seq = s->seq;
    rp.prompt_tokens = (unsigned long)(rq->bodylen / 10);
    struct sbuf model = {0};
    const char *mv = js_obj_get(root, end, "model");
    if (mv != NULL && *mv == '"')
        js_str_decode(mv, js_str_end(mv, end), &model);
    size_t ml;
    rp.model = sb_take(&model, &ml);
    const char *sv = js_obj_get(root, end, "stream");
    rp.stream = sv != NULL ? *sv == 't' : r == R_OLLAMA; /* Ollama streams by default */
    const char *so = js_obj_get(root, end, "stream_options");
    const char *iu = js_obj_get(so, end, "include_usage");
    rp.include_usage = r == R_OPENAI && iu != NULL && *iu == 't';

    struct behave b;
    char badname[160];
    if (strlen(rp.model) != ml || !behave_parse(rp.model, &b, badname, sizeof badname)) {
        struct sbuf m = {0}, msg = {0};
        sb_printf(&msg, "mock: unknown behaviour '%s' in model '%s'",
                  strlen(rp.model) != ml ? "(NUL byte)" : badname, rp.model);
        err_body(&m, r, "invalid_request_error", "invalid_request_error", msg.p, s->seq);
        q_fixed(c, 400, "application/json", NULL, m.p, m.len);
        sb_free(&m);
        sb_free(&msg);
        reply_fini(&rp);
        return;
    }
    unsigned long nth = counter_bump(s, rp.model);
    if (b.has_then && nth > b.then_n)
        behave_disarm(&b);

    if (b.no_usage)
        rp.include_usage = false; /* not even the "usage":null placeholders */
    if (b.err != E_NONE) {
        q_error(c, r, &b, s->seq);
        if (b.cut != CUT_NONE)
            q_cut_at(c, before, b.cut, b.cut_at);
        reply_fini(&rp);
        return;
    }
    if (b.hang) {
        c->state = C_STALLED;
        reply_fini(&rp);
        return;
    }

    const char *msgs = js_obj_get(root, end, "messages");
    const char *last = NULL;
    if (msgs != NULL && *msgs == '[') {
        /* the last user message the user wrote (not Anthropic's carrier
         * of tool results) */
        const char *it = msgs;
        const char *el;
        while ((el = js_arr_next(&it, end)) != NULL) {
            const char *content = js_obj_get(el, end, "content");
            if (js_str_is(js_obj_get(el, end, "role"), end, "user") &&
                !an_has_tool_result(content, end))
                last = content;
        }
    } else {
        msgs = NULL;
    }
    bool by_words = false;
    if (reply_tools(&rp, &b, root, end, msgs, last)) {
        /* a tool reply, or the text that answers tool results */
    } else if (b.words > 0 && !b.json) {
        /* words=N: "w1 w2 ... wN", one piece per word with its space */
        by_words = true;
        for (unsigned long w = 1; w <= b.words; w++)
            sb_printf(&rp.text, "w%lu%s", w, w < b.words ? " " : "");
    } else if (b.json) {
        /* json: the message quoted in an indented object (no split text:
         * its extra \ufffd piece would make the reply invalid JSON) */
        struct sbuf said = {0};
        js_content_text(last, end, &said);
        sb_puts(&rp.text, "{\n  \"mock\": \"reply\",\n  \"message\": ");
        json_put_str(&rp.text, said.p != NULL ? said.p : "", said.len);
        sb_puts(&rp.text, "\n}");
        sb_free(&said);
    } else {
        /* the reply text: mock reply: + the last user message's text */
        sb_puts(&rp.text, "mock reply: ");
        if (b.split) {
            sb_puts(&rp.text, "h\xc3\xa9llo w\xc3\xb6rld \xe2\x98\x83 \xf0\x9d\x84\x9e ");
            rp.fffd = true;
        }
        js_content_text(last, end, &rp.text);
    }
    /* a tool reply's calls were cut as they were added */
    if (by_words)
        reply_cut_words(&rp);
    else if (rp.ncalls == 0)
        reply_cut(&rp);

    if (rp.stream && rp.ncalls > 0)
        q_stream_tools(c, &b, &rp);
    else if (rp.stream)
        q_stream(c, &b, &rp);
    else
        q_whole(c, &b, &rp);
    if (b.cut != CUT_NONE)
        q_cut_at(c, before, b.cut, b.cut_at);
    reply_fini(&rp);
}

/* ---- Opik ingestion ------------------------------------------------------------ */

#define OPIK_BATCH_MAX 1000 /* Opik's @Size(min=1,max=1000) on both batch bodies */

/* The member a batch body holds ("traces" or "spans") when path ends in
 * one of Opik's batch endpoints, NULL otherwise. */
static const char *opik_member(const char *path)
{
    static const struct {
        const char *suffix, *member;
    } eps[] = {{"/v1/private/traces/batch", "traces"}, {"/v1/private/spans/batch", "spans"}};
    size_t n = strlen(path);
    for (size_t i = 0; i < sizeof eps / sizeof eps[0]; i++) {
        size_t e = strlen(eps[i].suffix);
        if (n >= e && strcmp(path + n - e, eps[i].suffix) == 0)
            return eps[i].member;
    }
    return NULL;
}

/* The behaviour segment of an Opik path into out: the first path segment
 * that starts with "mock:" (it can only come before /v1), "" when none. */
static void opik_spec(const char *path, char *out, size_t outlen)
{
    const char *p = strstr(path, "/mock:");
    if (p == NULL) {
        out[0] = '\0';
        return;
    }
    size_t n = strcspn(p + 1, "/");
    snprintf(out, outlen, "%.*s", (int)n, p + 1);
}

/* The status of an error behaviour on an Opik route. */
static int opik_err_status(enum err_kind k)
{
    switch (k) {
    case E_429_SECONDS:
    case E_429_DATE:
    case E_429_MS:
    case E_429_LONG:
        return 429;
    case E_529:
        return 529;
    case E_401:
        return 401;
    case E_400:
        return 400;
    case E_NONE:
    case E_500:
    case E_500_MALFORMED:
    case E_BIG:
        break;
    }
    return 500;
}

/* Queues Opik's public error body {"code","message","details"}; extra as
 * for head_put. */
static void q_opik_error(struct conn *c, int status, const char *extra, const char *msg,
                         const char *details)
{
    struct sbuf body = {0};
    sb_printf(&body, "{\"code\":%d,\"message\":", status);
    json_put_str(&body, msg, strlen(msg));
    sb_puts(&body, ",\"details\":");
    json_put_str(&body, details, strlen(details));
    sb_puts(&body, "}");
    q_fixed(c, status, "application/json", extra, body.p, body.len);
    sb_free(&body);
}

/* Queues the reply of an error behaviour on an Opik route. */
static void q_opik_behaviour_error(struct conn *c, const struct request *rq, const struct behave *b)
{
    struct sbuf extra = {0}, msg = {0}, details = {0};
    int status = opik_err_status(b->err);
    retry_header_put(&extra, b->err);
    if (b->no_retry_header)
        sb_puts(&extra, "x-should-retry: false\r\n");
    if (b->echo_key) {
        /* A careless server quoting the credential back: the client must
         * mask it in its messages. */
        const char *auth = request_header(rq, "authorization");
        if (b->err == E_NONE)
            status = 401;
        sb_printf(&msg, "mock: invalid API key '%s'", auth != NULL ? auth : "");
        sb_printf(&details, "the key %s is not known", auth != NULL ? auth : "");
    } else if (b->err == E_BIG) {
        sb_puts(&msg, "mock big error");
        sb_reserve(&details, BIG_ERROR_SIZE);
        memset(details.p, 'x', BIG_ERROR_SIZE);
        details.len = BIG_ERROR_SIZE;
        details.p[details.len] = '\0';
    } else {
        sb_printf(&msg, "mock %s",
                  status == 429   ? "rate limit"
                  : status >= 500 ? "internal error"
                                  : "invalid request");
        sb_puts(&details, "mock details");
    }
    q_opik_error(c, status, extra.p, msg.p != NULL ? msg.p : "",
                 details.p != NULL ? details.p : "");
    sb_free(&extra);
    sb_free(&msg);
    sb_free(&details);
}

/* The number of objects in the array body[member] of an Opik batch body,
 * -1 when the body is not a JSON object holding such an array. */
static long opik_batch_count(const struct request *rq, const char *member)
{
    const char *body = rq->body != NULL ? rq->body : "";
    const char *end = body + rq->bodylen;
    const char *root = js_ws(body, end);
    const char *after = js_val_end(root, end, 0);
    if (root >= end || *root != '{' || after == NULL || js_ws(after, end) != end)
        return -1;
    const char *arr = js_obj_get(root, end, member);
    if (arr == NULL || *arr != '[')
        return -1;
    long n = 0;
    const char *it = arr, *el;
    while ((el = js_arr_next(&it, end)) != NULL) {
        if (*el != '{')
            return -1;
        n++;
    }
    return n;
}

/* A POST to an Opik batch endpoint: the behaviour of the path's mock:
 * segment (counted per segment for then=N), else Opik's own checks of the
 * body (422 outside 1..1000 items) and 204. */
static void handle_opik(struct server *s, struct conn *c, const struct request *rq,
                        const char *path, const char *member)
{
    char spec[200], bad[160];
    struct behave b;
    opik_spec(path, spec, sizeof spec);
    if (!behave_parse(spec, &b, bad, sizeof bad)) {
        struct sbuf msg = {0};
        sb_printf(&msg, "mock: unknown behaviour '%s' in path '%s'", bad, path);
        q_opik_error(c, 400, NULL, msg.p, "");
        sb_free(&msg);
        return;
    }
    if (b.spans_only && strcmp(member, "spans") != 0) {
        memset(&b, 0, sizeof b); /* served normally and not counted */
    } else if (spec[0] != '\0') {
        struct sbuf key = {0};
        sb_printf(&key, "opik %s", spec); /* apart from the chat routes' model counters */
        unsigned long nth = counter_bump(s, key.p);
        sb_free(&key);
        if (b.has_then && nth > b.then_n)
            behave_disarm(&b);
    }
    if (b.hang || b.stall) {
        c->state = C_STALLED;
        return;
    }
    if (b.drop) {
        q_mark(c, SEG_CLOSE);
        return;
    }
    if (b.err != E_NONE || b.echo_key) {
        q_opik_behaviour_error(c, rq, &b);
        return;
    }
    long n = opik_batch_count(rq, member);
    if (n < 1 || n > OPIK_BATCH_MAX) {
        struct sbuf e = {0};
        if (n < 0)
            sb_printf(&e, "{\"errors\":[\"mock: the body is not {\\\"%s\\\":[{...},...]}\"]}",
                      member);
        else
            sb_printf(&e, "{\"errors\":[\"%s size must be between 1 and %d\"]}", member,
                      OPIK_BATCH_MAX);
        q_fixed(c, 422, "application/json", NULL, e.p, e.len);
        sb_free(&e);
        return;
    }
    struct sbuf h = {0};
    sb_puts(&h, "HTTP/1.1 204 No Content\r\n");
    if (c->close_after)
        sb_puts(&h, "Connection: close\r\n");
    sb_puts(&h, "\r\n");
    q_bytes(c, h.p, h.len, 0, false);
    sb_free(&h);
}

/* Answers one complete request: logs it, then routes it. */
static void handle_request(struct server *s, struct conn *c, const struct request *rq)
{
    s->seq++;
    log_request(s, c, rq);
    c->close_after = !rq->keepalive;
    c->state = C_SEND;

    size_t plen = strcspn(rq->path, "?");
    char path[256];
    snprintf(path, sizeof path, "%.*s", (int)(plen < 255 ? plen : 255), rq->path);
    bool post = strcmp(rq->method, "POST") == 0, get = strcmp(rq->method, "GET") == 0;

    const char *opik = post ? opik_member(path) : NULL;

    if (opik != NULL) {
        handle_opik(s, c, rq, path, opik);
    } else if (post && strcmp(path, "/v1/chat/completions") == 0) {
        handle_chat(s, c, rq, R_OPENAI);
    } else if (post && strcmp(path, "/v1/messages") == 0) {
        handle_chat(s, c, rq, R_ANTHROPIC);
    } else if (post && strcmp(path, "/api/chat") == 0) {
        handle_chat(s, c, rq, R_OLLAMA);
    } else if (get && strcmp(path, "/v1/models") == 0) {
        static const char models[] =
            "{\"object\":\"list\",\"data\":[{\"id\":\"mock-model\",\"object\":\"model\"}]}";
        q_fixed(c, 200, "application/json", NULL, models, sizeof models - 1);
    } else if (get && strcmp(path, "/api/tags") == 0) {
        static const char tags[] = "{\"models\":[{\"name\":\"mock-model\"}]}";
        q_fixed(c, 200, "application/json", NULL, tags, sizeof tags - 1);
    } else if (strcmp(path, "/_mock/reset") == 0) {
        counters_free(s);
        q_fixed(c, 200, "application/json", NULL, "{}", 2);
    } else {
        struct sbuf m = {0}, msg = {0};
        sb_puts(&msg, "mock: no route for ");
        sb_puts(&msg, rq->method);
        sb_putc(&msg, ' ');
        sb_puts(&msg, rq->path);
        err_body(&m, R_OPENAI, "not_found_error", "", msg.p, s->seq);
        q_fixed(c, 404, "application/json", NULL, m.p, m.len);
        sb_free(&m);
        sb_free(&msg);
    }
    if (c->state == C_SEND && c->head == NULL)
        c->state = C_RECV; /* nothing queued (cannot happen today): read on */
}

/* Answers a request that cannot be served (bad syntax, too big) and closes. */
static void refuse(struct conn *c, int status, const char *msg)
{
    struct sbuf m = {0};
    c->close_after = true;
    c->state = C_SEND;
    err_body(&m, R_OPENAI, "invalid_request_error", "", msg, 0);
    q_fixed(c, status, "application/json", NULL, m.p, m.len);
    sb_free(&m);
}

/* Parses and answers the request at the start of c->in if it is complete. */
static void conn_try_request(struct server *s, struct conn *c)
{
    if (c->state != C_RECV || c->in.len == 0)
        return;
    size_t hend = find_header_end(c->in.p, c->in.len);
    if (hend == 0) {
        if (c->in.len > MAX_HEADERS)
            refuse(c, 413, "mock: request header section over 64 KiB");
        else if (c->peer_eof)
            c->state = C_DEAD;
        return;
    }
    struct request rq;
    memset(&rq, 0, sizeof rq);
    if (hend > MAX_HEADERS) {
        refuse(c, 413, "mock: request header section over 64 KiB");
        return;
    }
    if (parse_head(c->in.p, hend, &rq) != PARSE_DONE) {
        request_fini(&rq);
        refuse(c, 400, "mock: malformed HTTP request");
        return;
    }
    const char *te = request_header(&rq, "transfer-encoding");
    const char *cl = request_header(&rq, "content-length");
    size_t total;
    struct sbuf body = {0};
    if (te != NULL && header_has_token(te, "chunked")) {
        size_t used = 0;
        enum parse_status ps = parse_chunked(c->in.p + hend, c->in.len - hend, &body, &used);
        if (ps != PARSE_DONE) {
            sb_free(&body);
            if (ps == PARSE_BAD) {
                request_fini(&rq);
                refuse(c, 400, "mock: malformed chunked request body");
                return;
            }
            if (ps == PARSE_TOO_BIG) {
                s->seq++;
                log_request(s, c, &rq);
                request_fini(&rq);
                refuse(c, 413, "mock: request body over 8 MiB");
                return;
            }
            goto need_more;
        }
        total = hend + used;
    } else {
        unsigned long long n = 0;
        if (cl != NULL && !parse_size(cl, strlen(cl), 10, &n)) {
            request_fini(&rq);
            refuse(c, 400, "mock: bad Content-Length");
            return;
        }
        if (n > MAX_BODY) {
            s->seq++;
            log_request(s, c, &rq);
            request_fini(&rq);
            refuse(c, 413, "mock: request body over 8 MiB");
            return;
        }
        if (c->in.len - hend < n)
            goto need_more;
        sb_put(&body, c->in.p + hend, (size_t)n);
        total = hend + (size_t)n;
    }
    rq.body = sb_take(&body, &rq.bodylen);
    handle_request(s, c, &rq);
    request_fini(&rq);
    memmove(c->in.p, c->in.p + total, c->in.len - total);
    c->in.len -= total;
    c->continue_sent = false;
    return;

need_more:
    if (c->in.len >= MAX_INPUT) { /* e.g. a chunked body framed in tiny chunks */
        request_fini(&rq);
        refuse(c, 413, "mock: request over the input bound");
        return;
    }
    if (c->peer_eof) {
        c->state = C_DEAD;
    } else if (!c->continue_sent) {
        const char *ex = request_header(&rq, "expect");
        if (ex != NULL && strcasecmp(ex, "100-continue") == 0) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            q_bytes(c, cont, sizeof cont - 1, 0, false);
        }
        c->continue_sent = true;
    }
    request_fini(&rq);
}

/* ---- the loop ------------------------------------------------------------------ */

/* The queue of c drained: next request, or the lingering close. */
static void conn_reply_done(struct server *s, struct conn *c, int64_t now)
{
    if (c->state != C_SEND)
        return;
    if (c->close_after || c->peer_eof) {
        shutdown(c->fd, SHUT_WR);
        c->state = C_LINGER;
        c->linger_deadline_us = now + LINGER_US;
        if (c->peer_eof)
            conn_kill(c);
        return;
    }
    c->state = C_RECV;
    conn_try_request(s, c);
}

/* Writes what is due of c's queue, until the socket is full, a delay is
 * pending or this turn's budget is spent. */
static void conn_write(struct server *s, struct conn *c, int64_t now)
{
    size_t budget = WRITE_BUDGET;
    while (c->head != NULL && c->state != C_DEAD && budget > 0) {
        if (now < c->next_ok_us)
            return;
        struct seg *g = c->head;
        if (g->kind == SEG_STALL) {
            conn_clear_queue(c);
            c->state = C_STALLED;
            return;
        }
        if (g->kind == SEG_CLOSE) {
            conn_kill(c);
            return;
        }
        if (g->kind == SEG_RESET) {
            /* An abortive close: the kernel answers with an RST. */
            struct linger lg = {.l_onoff = 1, .l_linger = 0};
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            conn_kill(c);
            return;
        }
        bool more = g->off < g->len;
        if (!more && g->kind == SEG_GEN)
            more = gen_refill(g);
        if (more) {
            size_t n = g->len - g->off;
            if (g->split) {
                size_t step = 1 + c->split_phase++ % 3;
                if (n > step)
                    n = step;
            }
            if (n > budget)
                n = budget;
            ssize_t w = send(c->fd, g->data + g->off, n, MSG_NOSIGNAL);
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                if (errno != EAGAIN && errno != EWOULDBLOCK)
                    conn_kill(c);
                return;
            }
            g->off += (size_t)w;
            budget -= (size_t)w;
            if (g->split)
                c->next_ok_us = now + SPLIT_PACE_US;
            continue; /* the next turn of the loop pops g when it is done */
        }
        c->head = g->next;
        if (c->head == NULL)
            c->tail = NULL;
        seg_free(g);
        if (c->head != NULL && now + c->head->delay_us > c->next_ok_us)
            c->next_ok_us = now + c->head->delay_us;
        if (c->head != NULL && c->head->due_us > c->next_ok_us)
            c->next_ok_us = c->head->due_us;
    }
    if (c->head == NULL && c->state == C_SEND)
        conn_reply_done(s, c, now);
}

static void conn_read(struct server *s, struct conn *c)
{
    for (int round = 0; round < 16 && !c->peer_eof; round++) {
        if (c->state == C_STALLED || c->state == C_LINGER) {
            char junk[4096];
            ssize_t r = recv(c->fd, junk, sizeof junk, 0);
            if (r > 0)
                continue;
            if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
                return;
            conn_kill(c);
            return;
        }
        if (c->in.len >= MAX_INPUT)
            break; /* conn_try_request refuses it, or it waits for C_RECV */
        sb_reserve(&c->in, READ_SIZE);
        ssize_t r = recv(c->fd, c->in.p + c->in.len, READ_SIZE, 0);
        if (r > 0) {
            c->in.len += (size_t)r;
            c->in.p[c->in.len] = '\0';
            continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            break;
        if (r < 0) {
            conn_kill(c);
            return;
        }
        c->peer_eof = true;
    }
    if (c->state == C_RECV)
        conn_try_request(s, c);
    if (c->peer_eof && c->state == C_RECV && c->head == NULL)
        conn_kill(c);
}

static void conn_accept(struct server *s)
{
    for (;;) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = xmalloc_or_die(sizeof *c);
        memset(c, 0, sizeof *c);
        c->fd = fd;
        c->id = ++s->nconn;
        c->state = C_RECV;
        c->next = s->conns;
        s->conns = c;
    }
}

static void conn_free(struct conn *c)
{
    conn_kill(c);
    sb_free(&c->in);
    free(c);
}

static void on_sigterm(int sig)
{
    (void)sig;
    int e = errno;
    if (sig_pipe_wr >= 0) {
        ssize_t w = write(sig_pipe_wr, "T", 1);
        (void)w;
    }
    errno = e;
}

static int serve(struct server *s)
{
    struct pollfd *pfd = NULL;
    struct conn **who = NULL;
    size_t cap = 0;
    for (;;) {
        size_t nconn = 0;
        for (struct conn *c = s->conns; c != NULL; c = c->next)
            nconn++;
        if (nconn + 3 > cap) {
            cap = (nconn + 3) * 2;
            pfd = realloc(pfd, cap * sizeof *pfd);
            who = realloc(who, cap * sizeof *who);
            if (pfd == NULL || who == NULL)
                die_oom();
        }
        int64_t now = now_us();
        int64_t wake = -1;
        size_t n = 0;
        pfd[n].fd = s->sig_rd;
        pfd[n].events = POLLIN;
        who[n++] = NULL;
        pfd[n].fd = s->stdin_open ? STDIN_FILENO : -1;
        pfd[n].events = POLLIN;
        who[n++] = NULL;
        pfd[n].fd = s->lfd;
        pfd[n].events = POLLIN;
        who[n++] = NULL;
        for (struct conn *c = s->conns; c != NULL; c = c->next) {
            short ev = 0;
            if (!c->peer_eof && !(c->state == C_SEND && c->in.len >= MAX_INPUT))
                ev |= POLLIN;
            if (c->head != NULL) {
                if (c->next_ok_us <= now)
                    ev |= POLLOUT;
                else if (wake < 0 || c->next_ok_us < wake)
                    wake = c->next_ok_us;
            }
            if (c->state == C_LINGER && (wake < 0 || c->linger_deadline_us < wake))
                wake = c->linger_deadline_us;
            pfd[n].fd = c->fd;
            pfd[n].events = ev;
            who[n++] = c;
        }
        struct timespec ts, *tsp = NULL;
        if (wake >= 0) {
            int64_t d = wake > now ? wake - now : 0;
            ts.tv_sec = (time_t)(d / 1000000);
            ts.tv_nsec = (long)(d % 1000000) * 1000;
            tsp = &ts;
        }
        int rc = ppoll(pfd, (nfds_t)n, tsp, NULL);
        if (rc < 0 && errno != EINTR) {
            perror("mockllm: ppoll");
            free(pfd);
            free(who);
            return 1;
        }
        if (rc > 0 && (pfd[0].revents & POLLIN))
            break; /* SIGTERM */
        if (rc > 0 && pfd[1].revents != 0) {
            char junk[256];
            ssize_t r = read(STDIN_FILENO, junk, sizeof junk);
            if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN))
                break; /* stdin EOF: the test that started us is done */
        }
        if (rc > 0 && (pfd[2].revents & POLLIN))
            conn_accept(s);
        now = now_us();
        for (size_t i = 3; i < n; i++) {
            struct conn *c = who[i];
            if (c->state == C_DEAD)
                continue;
            if (rc > 0 && (pfd[i].revents & (POLLERR | POLLHUP | POLLNVAL))) {
                conn_kill(c); /* reset, or both directions shut: nobody listens */
                continue;
            }
            if (rc > 0 && (pfd[i].revents & POLLIN))
                conn_read(s, c);
            if (c->state != C_DEAD && c->head != NULL && c->next_ok_us <= now)
                conn_write(s, c, now);
            if (c->state == C_LINGER && now >= c->linger_deadline_us)
                conn_kill(c);
        }
        for (struct conn **pp = &s->conns; *pp != NULL;) {
            if ((*pp)->state == C_DEAD) {
                struct conn *d = *pp;
                *pp = d->next;
                conn_free(d);
            } else {
                pp = &(*pp)->next;
            }
        }
    }
    free(pfd);
    free(who);
    return 0;
}

static void usage(void)
{
    fputs("usage: mockllm [--log FILE] [--first-seq N]\n"
          "Serves a mock LLM on 127.0.0.1 (ephemeral port, printed as PORT=<n>) until stdin\n"
          "reaches EOF or SIGTERM; --log appends every request as one NDJSON line;\n"
          "--first-seq numbers the requests from N + 1.\n",
          stderr);
}

int main(int argc, char **argv)
{
    const char *log_path = NULL;
    unsigned long first_seq = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--log") == 0 && i + 1 < argc) {
            log_path = argv[++i];
        } else if (strcmp(argv[i], "--first-seq") == 0 && i + 1 < argc &&
                   behave_count(argv[i + 1], 1000000000ul, &first_seq)) {
            i++;
        } else {
            usage();
            return 2;
        }
    }
    struct server s;
    memset(&s, 0, sizeof s);
    s.stdin_open = true;
    s.seq = first_seq;
    if (log_path != NULL) {
        s.log = fopen(log_path, "a");
        if (s.log == NULL) {
            fprintf(stderr, "mockllm: cannot open log file %s: %s\n", log_path, strerror(errno));
            return 2;
        }
    }

    int sp[2];
    if (pipe2(sp, O_CLOEXEC | O_NONBLOCK) != 0) {
        perror("mockllm: pipe2");
        return 1;
    }
    s.sig_rd = sp[0];
    sig_pipe_wr = sp[1];
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sa.sa_handler = on_sigterm;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);

    s.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t alen = sizeof addr;
    if (s.lfd < 0 || bind(s.lfd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        listen(s.lfd, 128) != 0 || getsockname(s.lfd, (struct sockaddr *)&addr, &alen) != 0) {
        perror("mockllm: cannot listen on 127.0.0.1");
        return 1;
    }
    printf("PORT=%u\n", (unsigned)ntohs(addr.sin_port));
    fflush(stdout);

    int rc = serve(&s);

    while (s.conns != NULL) {
        struct conn *c = s.conns;
        s.conns = c->next;
        conn_free(c);
    }
    counters_free(&s);
    close(s.lfd);
    close(sp[0]);
    close(sp[1]);
    sig_pipe_wr = -1;
    if (s.log != NULL)
        fclose(s.log);
    return rc;
}
