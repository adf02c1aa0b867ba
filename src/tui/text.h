/*
 * Text for the screen, without curses: how many columns a piece of UTF-8
 * takes and where it breaks into lines of a pane. Widths come from
 * wcwidth(3), so the process must run under a UTF-8 locale (the TUI calls
 * setlocale first; tests set C.UTF-8). Input is expected to have gone
 * through utf8_sanitize_terminal already, but nothing here trusts it:
 * an invalid byte counts as one column (it is drawn as U+FFFD), a control
 * character or a bidi override as one column (drawn as U+FFFD too), a tab
 * as TEXT_TAB_COLS; text_safe_prefix tells the drawing code what may go to
 * curses as it is.
 */
#ifndef MEMCHAT_TUI_TEXT_H
#define MEMCHAT_TUI_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Columns a tab takes everywhere in the TUI (drawn as spaces). */
#define TEXT_TAB_COLS 4

/* Columns of code point cp: 0 (combining marks, zero-width joiners), 1 or
 * 2 (East Asian wide and fullwidth, most emoji); controls, bidi overrides
 * and isolates, unassigned code points and U+FFFD count 1. */
int text_cp_width(uint32_t cp);
/* True for the code points that must never reach the terminal as they
 * are (they are drawn as U+FFFD): C0 and C1 controls, DEL, and the bidi
 * overrides and isolates (U+202A..U+202E, U+2066..U+2069). */
bool text_cp_unsafe(uint32_t cp);
/* The length of the longest prefix of s[0..n) that may go to curses as it
 * is: valid UTF-8 holding no code point text_cp_unsafe refuses (so no tab
 * or newline either, which the caller draws itself). */
size_t text_safe_prefix(const char *s, size_t n);
/* Columns of s[0..n): the sum of its code points' widths, invalid bytes 1
 * each, '\t' TEXT_TAB_COLS, '\n' 0. */
size_t text_width(const char *s, size_t n);
/* The byte offset in s[0..n) of the first character that does not fit in
 * cols columns (n when all fit); never splits a UTF-8 sequence, and keeps
 * zero-width characters with the character before them. */
size_t text_fit(const char *s, size_t n, size_t cols);

/* One screen line of wrapped text: bytes [start, start + len) of the
 * input, cols columns wide, without the '\n' or the space it broke at. */
struct text_line {
    size_t start, len;
    int cols;
};

/* How text_wrap breaks a line that is too wide. */
enum text_wrap_mode {
    TEXT_WRAP_WORDS, /* at the last space that fits; a word wider than the
                        line is split at a character boundary */
    TEXT_WRAP_CHARS, /* at the last character that fits (code blocks) */
};

/* A growable array of lines; text_lines_init, text_lines_free. */
struct text_lines {
    struct text_line *v;
    size_t n, cap;
};
void text_lines_init(struct text_lines *l);
/* Frees the array (not the text it points into). */
void text_lines_free(struct text_lines *l);

/* Appends to out the lines of s[0..n) wrapped at width columns (width >= 1;
 * a width of 1 still places a wide character alone on its line). '\n'
 * ends a line; empty text or a trailing '\n' gives an empty last line only
 * when n == 0 (one empty line) — "a\n" wraps to one line "a". In WORDS mode a
 * run of spaces at a break is dropped from both lines' ends; CHARS mode
 * keeps every byte but the newlines. Returns the number of
 * lines appended. */
size_t text_wrap(const char *s, size_t n, int width, enum text_wrap_mode mode,
                 struct text_lines *out);

#endif
