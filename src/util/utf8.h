/*
 * UTF-8: validation, safe truncation, and the terminal sanitiser that every
 * piece of untrusted text (model output, recalled memories, file names) goes
 * through before it reaches a terminal.
 */
#ifndef MEMCHAT_UTIL_UTF8_H
#define MEMCHAT_UTIL_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* True when s[0..n) is well-formed UTF-8 (no overlongs, no surrogates, no
 * code point above U+10FFFF). On false, *bad (if not NULL) is the offset of
 * the first byte of the first bad sequence. */
bool utf8_valid(const char *s, size_t n, size_t *bad);
/* Decodes the code point at s[0..n): returns its length in bytes (1..4) and
 * stores it in *cp; an invalid or truncated sequence returns 1 and stores
 * U+FFFD. n must be > 0. */
size_t utf8_decode(const char *s, size_t n, uint32_t *cp);
/* Encodes cp into out (4 bytes room); returns the length (1..4). A
 * surrogate or a value above U+10FFFF is encoded as U+FFFD. */
size_t utf8_encode(uint32_t cp, char out[4]);
/* The largest length <= max that does not split a UTF-8 sequence of s[0..n). */
size_t utf8_truncate(const char *s, size_t n, size_t max);
/* How many bytes at the end of s[0..n) are an incomplete (but so far valid)
 * sequence that more input could complete: 0..3. For joining streamed text
 * split mid-character. */
size_t utf8_incomplete_tail(const char *s, size_t n);

/* Appends s[0..n) to out made safe for a terminal: invalid bytes become
 * U+FFFD, one per maximal subpart (a truncated but valid start such as
 * E2 82 is one, each byte that cannot start a sequence is one; so the
 * output is at most 3 bytes per input byte); C0 controls other than \n and
 * \t, DEL and C1 controls (U+0080..U+009F) are removed;
 * escape sequences (CSI, OSC, DCS, and two-byte ESC forms) are removed
 * whole, and an OSC, DCS, SOS, PM or APC string without its terminator
 * runs to the end of s (the sequences are parsed per call: a caller that
 * streams must not split them); bidirectional overrides and isolates
 * (U+202A..U+202E, U+2066..U+2069) are removed. \r\n becomes \n; a lone \r
 * is removed. Returns the buf result of the appends. */
enum buf_result utf8_sanitize_terminal(struct buf *out, const char *s, size_t n);

#endif
