/*
 * Column widths and line wrapping for the TUI, without curses (layer: the
 * text model under tui/draw). Everything works on clusters: a character
 * followed by the zero-width characters (combining marks, joiners,
 * variation selectors) that belong to it, so a mark always travels with its
 * base and a break never lands between them. A cluster is a "space" for
 * breaking only when it is a lone ' ' byte; a tab is a 4-column character
 * like any other (code and lists indent with it, and breaking there would
 * lose the indentation). Spaces at a break are dropped only in WORDS mode:
 * CHARS (code blocks, the input line) keeps every byte but the '\n's.
 */
#include "config.h"

#include "tui/text.h"

#include <limits.h>
#include <wchar.h>

#include "util/alloc.h"
#include "util/utf8.h"

bool text_cp_unsafe(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || (cp >= 0x202a && cp <= 0x202e) ||
           (cp >= 0x2066 && cp <= 0x2069);
}

size_t text_safe_prefix(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f) {
            i++;
            continue;
        }
        if (c < 0x80)
            return i; /* C0 or DEL */
        uint32_t cp;
        size_t len = utf8_decode(s + i, n - i, &cp);
        if (len == 1 || text_cp_unsafe(cp))
            return i; /* an invalid byte (a lone byte >= 0x80 decodes as 1), C1, bidi */
        i += len;
    }
    return n;
}

int text_cp_width(uint32_t cp)
{
    /* Controls, bidi overrides and U+FFFD are drawn as U+FFFD, one column;
     * wcwidth would say -1 (or 0 for NUL and the overrides). Above
     * U+10FFFF is not a code point at all. */
    if (text_cp_unsafe(cp) || cp == 0xfffd || cp > 0x10ffff)
        return 1;
    int w = wcwidth((wchar_t)cp);
    if (w < 0)
        return 1;
    return w > 2 ? 2 : w;
}

/* The character at s[i..n): its length in bytes (>= 1) and columns. */
static size_t text_char(const char *s, size_t i, size_t n, int *cols)
{
    if (s[i] == '\t') {
        *cols = TEXT_TAB_COLS;
        return 1;
    }
    if (s[i] == '\n') {
        *cols = 0;
        return 1;
    }
    if ((unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7f) {
        *cols = 1; /* printable ASCII, most text: no wcwidth call */
        return 1;
    }
    uint32_t cp;
    size_t len = utf8_decode(s + i, n - i, &cp);
    *cols = text_cp_width(cp);
    return len;
}

size_t text_width(const char *s, size_t n)
{
    size_t w = 0;
    for (size_t i = 0; i < n;) {
        int c;
        i += text_char(s, i, n, &c);
        w += (size_t)c;
    }
    return w;
}

size_t text_fit(const char *s, size_t n, size_t cols)
{
    size_t used = 0;
    for (size_t i = 0; i < n;) {
        int c;
        size_t len = text_char(s, i, n, &c);
        /* A zero-width character fits whenever the one before it did, so it
         * is never separated from its base. */
        if (used + (size_t)c > cols)
            return i;
        used += (size_t)c;
        i += len;
    }
    return n;
}

/* The cluster at s[i..end) (end is a '\n' or the end of the text): a
 * character and the zero-width characters after it. Returns its length in
 * bytes and stores its columns. */
static size_t text_cluster(const char *s, size_t i, size_t end, int *cols)
{
    size_t j = i + text_char(s, i, end, cols);
    while (j < end) {
        int c;
        size_t len = text_char(s, j, end, &c);
        if (c != 0)
            break;
        j += len;
    }
    return j - i;
}

/* True when the cluster at s[i..end) is a lone space: a ' ' not carrying a
 * combining mark (a mark on a space is a visible character). */
static bool text_is_space(const char *s, size_t i, size_t end)
{
    if (s[i] != ' ')
        return false;
    int c;
    return text_cluster(s, i, end, &c) == 1;
}

void text_lines_init(struct text_lines *l)
{
    l->v = NULL;
    l->n = 0;
    l->cap = 0;
}

void text_lines_free(struct text_lines *l)
{
    xfree(l->v);
    text_lines_init(l);
}

static void text_lines_push(struct text_lines *l, const char *s, size_t start, size_t end)
{
    if (l->n == l->cap) {
        l->cap = l->cap == 0 ? 16 : l->cap * 2;
        l->v = xreallocarray(l->v, l->cap, sizeof *l->v);
    }
    /* s may be NULL for empty text, and NULL + 0 is undefined. */
    size_t w = end > start ? text_width(s + start, end - start) : 0;
    l->v[l->n++] = (struct text_line){
        .start = start,
        .len = end - start,
        .cols = w > (size_t)INT_MAX ? INT_MAX : (int)w,
    };
}

/* Wraps the hard line s[a..b) (no '\n' inside); returns the lines added,
 * at least one. */
static size_t text_wrap_hard_line(const char *s, size_t a, size_t b, size_t width,
                                  enum text_wrap_mode mode, struct text_lines *out)
{
    size_t added = 0;
    size_t pos = a;
    while (pos < b) {
        /* Fill the line cluster by cluster; remember the last run of spaces
         * that follows something visible (a run at the very start of the
         * line is indentation, and breaking there gives an empty line). */
        size_t used = 0, off = pos;
        size_t run_start = 0, run_end = 0;
        bool have_run = false, seen_text = false;
        int c = 0;
        size_t clen = 0;
        while (off < b) {
            clen = text_cluster(s, off, b, &c);
            if (used + (size_t)c > width)
                break;
            if (text_is_space(s, off, b)) {
                if (seen_text && (!have_run || run_end != off)) {
                    run_start = off;
                    have_run = true;
                }
                run_end = off + clen;
            } else {
                seen_text = true;
            }
            used += (size_t)c;
            off += clen;
        }
        if (off == b) {
            /* The rest fits: no break, so trailing spaces stay. */
            text_lines_push(out, s, pos, b);
            added++;
            break;
        }
        size_t brk;
        if (off == pos)
            brk = pos + clen; /* wider than the line: alone on one */
        else if (mode == TEXT_WRAP_WORDS && have_run && !text_is_space(s, off, b))
            brk = run_start; /* the word that does not fit moves down whole */
        else
            brk = off; /* a space, or CHARS, or a word wider than the line */
        /* Drop the run of spaces around a break between words from both
         * lines. CHARS keeps every byte: code keeps its alignment, and the
         * input line must show every space the cursor can sit on. */
        size_t end = brk, next = brk;
        if (mode == TEXT_WRAP_WORDS) {
            while (end > pos && s[end - 1] == ' ')
                end--;
            while (next < b && text_is_space(s, next, b))
                next++;
        }
        if (end > pos) {
            text_lines_push(out, s, pos, end);
            added++;
        }
        pos = next;
    }
    if (added == 0) {
        /* An empty hard line, or one of nothing but spaces wider than the
         * pane: still one (empty) screen line. */
        text_lines_push(out, s, a, a);
        added++;
    }
    return added;
}

size_t text_wrap(const char *s, size_t n, int width, enum text_wrap_mode mode,
                 struct text_lines *out)
{
    size_t w = width < 1 ? 1 : (size_t)width;
    if (n == 0) {
        text_lines_push(out, s, 0, 0);
        return 1;
    }
    size_t added = 0;
    size_t a = 0;
    while (a < n) {
        size_t b = a;
        while (b < n && s[b] != '\n')
            b++;
        added += text_wrap_hard_line(s, a, b, w, mode, out);
        /* The '\n' ends this line; one at the very end opens no new one. */
        a = b + 1;
    }
    return added;
}
