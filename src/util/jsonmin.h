/*
 * JSON minification for message contents: insignificant whitespace out of
 * JSON that users and tools paste into a conversation, so it costs fewer
 * prompt tokens. Only whitespace outside strings is removed; string
 * contents, escapes and numbers are copied byte for byte, so the minified
 * text parses to the same value. Anything that is not strictly valid JSON
 * (RFC 8259, well-formed UTF-8, nesting at most JSONMIN_MAX_DEPTH) is left
 * exactly as it was.
 *
 * Time is linear: jsonmin_is_json and jsonmin_value are one pass that
 * validates and minifies together; jsonmin_content makes at most three (a
 * try of the whole content, a search for fence lines, the fenced bodies).
 * No allocation per byte (jsonmin_content allocates one scratch block per
 * call); the output is never longer than the input. Pure functions with no
 * state: thread-safe.
 */
#ifndef MEMCHAT_UTIL_JSONMIN_H
#define MEMCHAT_UTIL_JSONMIN_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

/* The deepest nesting of objects and arrays that counts as JSON; deeper
 * input is "not JSON, leave it" (it also bounds the validator's stack). */
#define JSONMIN_MAX_DEPTH 1000

/* What jsonmin_content did, for the `minify` event. */
struct jsonmin_stats {
    size_t bytes_before; /* the content's length */
    size_t bytes_after;  /* the length appended to out; == bytes_before iff unchanged */
    /* An estimate, (bytes_before - bytes_after + 3) / 4: util cannot ask the
     * model's tokenizer, the bytes removed are whitespace runs, and about
     * four bytes per token is the usual rule for such text (rounded up, so
     * any saving counts as at least one token; 0 when nothing changed). */
    size_t tokens_saved;
};

/* True when s[0..n) is one JSON text per RFC 8259 (any value, surrounded by
 * optional whitespace), in well-formed UTF-8, nested at most
 * JSONMIN_MAX_DEPTH deep. Lone surrogate escapes (\ud800) are valid syntax. */
bool jsonmin_is_json(const char *s, size_t n);

/* Writes the JSON text s[0..n) to out without the whitespace outside
 * strings (leading and trailing included) and returns the new length; when
 * s is not JSON by jsonmin_is_json, writes it unchanged and returns n (one
 * fused pass validates and minifies). out has room for n bytes, is not
 * NUL-terminated, and must not overlap s. */
size_t jsonmin_value(const char *s, size_t n, char *out);

/* Appends the message content s[0..n) to out with its JSON minified:
 *  - when the whole content, ignoring leading and trailing whitespace, is a
 *    JSON object or array, the minified value alone (that whitespace goes
 *    too); a bare number, string or literal is prose, not a JSON content;
 *  - otherwise, every Markdown fenced block whose opening line is a run of
 *    k >= 3 backticks and the info string "json" (any case; spaces or tabs
 *    around it and before the fence allowed) and whose closing line is a
 *    run of >= k backticks alone, with a body that is valid JSON (any
 *    value), gets that body minified; the fence lines and the line ending
 *    before the closing fence are kept. Other fenced blocks (```python,
 *    bare ```) are skipped whole, so a ```json line inside one is text; an
 *    unterminated fence leaves everything after it alone; lines end in LF
 *    or CRLF.
 * Everything else is byte-identical, and the output is never longer than
 * the input. st (may be NULL) is filled on success. Returns BUF_OK, the
 * buf error of the append (out reset, as buf does), or BUF_NO_MEM when the
 * scratch block cannot be allocated (out untouched). s must not point into
 * out. */
enum buf_result jsonmin_content(const char *s, size_t n, struct buf *out, struct jsonmin_stats *st);

#endif
