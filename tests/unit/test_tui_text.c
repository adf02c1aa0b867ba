/*
 * Tests of tui/text: column widths of ASCII, wide, zero-width, invalid and
 * control characters; text_fit never splitting a character or separating
 * a mark from its base; and text_wrap on each case a pane meets (words,
 * hard newlines, spaces at breaks, words and characters wider than the
 * pane, tabs, code blocks), then a randomised property check that every
 * byte of the input lands in exactly one line or in a dropped break.
 * Widths come from wcwidth, so every case runs under C.UTF-8.
 */
#include "testutil.h"

#include "tui/text.h"

#include <locale.h>

#include "util/utf8.h"

/* Sets the UTF-8 locale wcwidth needs; a test without it proves nothing. */
static int setup_locale(void **state)
{
    (void)state;
    assert_non_null(setlocale(LC_ALL, "C.UTF-8"));
    return 0;
}

/* Wraps the C string s and returns the lines (caller frees). */
static struct text_lines wrap(const char *s, int width, enum text_wrap_mode mode)
{
    struct text_lines l;
    text_lines_init(&l);
    size_t got = text_wrap(s, strlen(s), width, mode, &l);
    assert_int_equal(got, l.n);
    return l;
}

/* Asserts that line i of l is the text want with cols columns. */
static void assert_line(const char *s, const struct text_lines *l, size_t i, const char *want,
                        int cols)
{
    assert_true(i < l->n);
    const struct text_line *ln = &l->v[i];
    if (ln->len != strlen(want) || memcmp(s + ln->start, want, ln->len) != 0)
        fail_msg("line %zu is '%.*s', expected '%s'", i, (int)ln->len, s + ln->start, want);
    assert_int_equal(ln->cols, cols);
}

/* Printable ASCII is one column, CJK and fullwidth forms two, combining
 * marks and joiners zero; controls, unassigned code points, U+FFFD and
 * values beyond Unicode one (they are drawn as U+FFFD). */
static void cp_width_covers_each_class_of_character(void **state)
{
    (void)state;
    assert_int_equal(text_cp_width('a'), 1);
    assert_int_equal(text_cp_width(' '), 1);
    assert_int_equal(text_cp_width(0x4e2d), 2);  /* 中 */
    assert_int_equal(text_cp_width(0xff21), 2);  /* fullwidth A */
    assert_int_equal(text_cp_width(0xac00), 2);  /* Hangul syllable */
    assert_int_equal(text_cp_width(0x1f600), 2); /* 😀 */
    assert_int_equal(text_cp_width(0x0301), 0);  /* combining acute */
    assert_int_equal(text_cp_width(0x200d), 0);  /* zero-width joiner */
    assert_int_equal(text_cp_width(0xfe0f), 0);  /* variation selector 16 */
    assert_int_equal(text_cp_width(0x00e9), 1);  /* é precomposed */
    assert_int_equal(text_cp_width(0xfffd), 1);
    assert_int_equal(text_cp_width(0x00), 1);
    assert_int_equal(text_cp_width(0x01), 1);
    assert_int_equal(text_cp_width(0x1b), 1);
    assert_int_equal(text_cp_width(0x7f), 1);
    assert_int_equal(text_cp_width(0x85), 1);
    assert_int_equal(text_cp_width(0x0378), 1); /* unassigned */
    assert_int_equal(text_cp_width(0x110000), 1);
    assert_int_equal(text_cp_width(0xffffffffu), 1);
}

/* text_width sums the characters: invalid bytes one each (a truncated
 * sequence is one per byte here, as utf8_decode reports it), a tab
 * TEXT_TAB_COLS, a newline nothing. */
static void width_sums_characters_invalid_bytes_and_tabs(void **state)
{
    (void)state;
    assert_int_equal(text_width("", 0), 0);
    assert_int_equal(text_width("abc", 3), 3);
    assert_int_equal(text_width("中文", 6), 4);
    assert_int_equal(text_width("e\xcc\x81", 3), 1);
    assert_int_equal(text_width("\xff\xfe", 2), 2);
    assert_int_equal(text_width("\xe4\xb8", 2), 2);
    assert_int_equal(text_width("a\tb", 3), 2 + TEXT_TAB_COLS);
    assert_int_equal(text_width("a\nb", 3), 2);
    assert_int_equal(text_width("😀x", 5), 3);
    /* Only n bytes count, not up to a NUL. */
    assert_int_equal(text_width("abcdef", 2), 2);
}

/* text_fit stops before the first character that does not fit, never
 * inside a UTF-8 sequence, and keeps zero-width marks with their base. */
static void fit_stops_at_character_boundaries(void **state)
{
    (void)state;
    assert_int_equal(text_fit("abcdef", 6, 3), 3);
    assert_int_equal(text_fit("abc", 3, 10), 3);
    assert_int_equal(text_fit("abc", 3, 0), 0);
    /* 中 takes columns 2 and 3, so with 2 columns only "a" fits. */
    assert_int_equal(text_fit("a中b", 5, 2), 1);
    assert_int_equal(text_fit("a中b", 5, 3), 4);
    assert_int_equal(text_fit("中中", 6, 3), 3);
    assert_int_equal(text_fit("中中", 6, 1), 0);
    /* The mark after the last fitting 'e' comes with it. */
    assert_int_equal(text_fit("e\xcc\x81x", 4, 1), 3);
    assert_int_equal(text_fit("\xff\xff\xff", 3, 2), 2);
    assert_int_equal(text_fit("\tx", 2, TEXT_TAB_COLS - 1), 0);
    assert_int_equal(text_fit("\tx", 2, TEXT_TAB_COLS), 1);
}

/* The empty text is one empty line; '\n' ends a line, and a trailing one
 * opens no further line, but an empty line between two newlines stays. */
static void wrap_ends_lines_at_hard_newlines(void **state)
{
    (void)state;
    struct text_lines l = wrap("", 10, TEXT_WRAP_WORDS);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.v[0].len, 0);
    assert_int_equal(l.v[0].cols, 0);
    text_lines_free(&l);

    const char *s = "a\nb";
    l = wrap(s, 10, TEXT_WRAP_WORDS);
    assert_int_equal(l.n, 2);
    assert_line(s, &l, 0, "a", 1);
    assert_line(s, &l, 1, "b", 1);
    text_lines_free(&l);

    s = "a\n";
    l = wrap(s, 10, TEXT_WRAP_WORDS);
    assert_int_equal(l.n, 1);
    assert_line(s, &l, 0, "a", 1);
    text_lines_free(&l);

    s = "\n";
    l = wrap(s, 10, TEXT_WRAP_WORDS);
    assert_int_equal(l.n, 1);
    assert_line(s, &l, 0, "", 0);
    text_lines_free(&l);

    s = "a\n\nb\n\n";
    l = wrap(s, 10, TEXT_WRAP_WORDS);
    assert_int_equal(l.n, 4);
    assert_line(s, &l, 0, "a", 1);
    assert_line(s, &l, 1, "", 0);
    assert_int_equal(l.v[1].start, 2);
    assert_line(s, &l, 2, "b", 1);
    assert_line(s, &l, 3, "", 0);
    text_lines_free(&l);
}

/* Words move to the next line whole when they do not fit, and the space
 * they broke at belongs to neither line. */
static void wrap_breaks_ascii_at_the_last_space_that_fits(void **state)
{
    (void)state;
    const char *s = "the quick brown fox jumps";
    struct text_lines l = wrap(s, 10, TEXT_WRAP_WORDS);
    assert_int_equal(l.n, 3);
    assert_line(s, &l, 0, "the quick", 9);
    assert_line(s, &l, 1, "brown fox", 9);
    assert_line(s, &l, 2, "jumps", 5);
    assert_int_equal(l.v[1].start, 10);
    text_lines_free(&l);

    /* A line exactly as wide as the pane is not broken. */
    s = "abcde";
    l = wrap(s, 5, TEXT_WRAP_WORDS);
    assert_int_equal(l.n, 1);
    assert_line(s, &l, 0, "abcde", 5);
    text_lines_free(&l);
}

/* A run of spaces at a break is dropped from both sides, whether the
 * overflow falls inside the run or right after it; spaces that are not at
 * a break (indentation, trailing spaces that fit, runs inside a line)
 * stay. */
static void wrap_drops_runs_of_spaces_only_at_breaks(void **state)
{
    (void)state;
    const char *s = "aaa    bbb";
    struct text_lines l = wrap(s, 5, TEXT_WRAP_WORDS);
    assert_int_equal(l.n, 2);
    assert_line(s, &l, 0, "aaa", 3);
    assert_line(s, &l, 1, "bbb", 3);
    assert_int_equal(l.v[1].start, 7);
    text_lines_free(&l);

    s = "abcd efgh";
    l = wrap(s, 5, TEXT_WRAP_WORDS); /* "abcd " fits exactly */
    assert_int_equal(l.n, 2);
    assert_line(s, &l, 0, "abcd", 4);
    assert_line(s, &l, 1, "efgh", 4);
    text_lines_free(&l);

    s = "  ab  cd";
    l = wrap(s, 20, TEXT_WRAP_WORDS);
    assert_int_equal(l.n, 1);
    assert_line(s, &l, 0, "  ab  cd", 8);
    text_lines_free(&l);

    s = "ab   ";
    l = wrap(s, 5, TEXT_WRAP_WORDS);
    assert_int_equal(l.n, 1);
    assert_line(s, &l, 0, "ab   ", 5);
    text_lines_free(&l);

    /* Trailing spaces past the edge vanish without an empty line. */
    s = "ab      ";
    l = wrap(s, 5, TEXT_WRAP_WORDS);
    assert_int_equal(l.n, 1);
    assert_line(s, &l, 0, "ab", 2);
    text_lines_free(&l);

    /* Indentation is kept, and is not a break point. */
    s = "  ab cdef";
    l = wrap(s, 6, TEXT_WRAP_WORDS);
    assert_int_equal(l.n, 2);
    assert_line(s, &l, 0, "  ab", 4);
    assert_line(s, &l, 1, "cdef", 4);
    text_lines_free(&l);

    /* Indentation before a word longer than the line is not a break
     * point either: the word is split after it. */
    s = "  abcdefgh";
    l = wrap(s, 5, TEXT_WRAP_WORDS);
    assert_int_equal(l.n, 2);
    assert_line(s, &l, 0, "  abc", 5);
    assert_line(s, &l, 1, "defgh", 5);
    text_lines_free(&l);

    /* A hard line of spaces wider than the pane is still one line. */
    s = "x\n        \ny";
    l = wrap(s, 3, TEXT_WRAP_WORDS);
    assert_int_equal(l.n, 3);
    assert_line(s, &l, 0, "x", 1);
    assert_line(s, &l, 1, "", 0);
    assert_line(s, &l, 2, "y", 1);
    text_lines_free(&l);
}

/* A word wider than the pane is split at character boundaries, after
 * moving to a line of its own. */
static void wrap_splits_a_word_longer_than_the_width(void **state)
{
    (void)state;
    const char *s = "abcdefghij";
    struct text_lines l = wrap(s, 4, TEXT_WRAP_WORDS);
    assert_int_equal(l.n, 3);
    assert_line(s, &l, 0, "abcd", 4);
    assert_line(s, &l, 1, "efgh", 4);
    assert_line(s, &l, 2, "ij", 2);
    text_lines_free(&l);

    s = "hi abcdefghij";
    l = wrap(s, 4, TEXT_WRAP_WORDS);
    assert_int_equal(l.n, 4);
    assert_line(s, &l, 0, "hi", 2);
    assert_line(s, &l, 1, "abcd", 4);
    assert_line(s, &l, 2, "efgh", 4);
    assert_line(s, &l, 3, "ij", 2);
    text_lines_free(&l);
}

/* Wide characters count two columns; one that would straddle the last
 * column moves to the next line; at width 1 each one sits alone on its
 * line (the only line allowed to be wider than the pane). */
static void wrap_places_wide_characters_whole(void **state)
{
    (void)state;
    const char *s = "中文字符";
    struct text_lines l = wrap(s, 5, TEXT_WRAP_WORDS);
    assert_int_equal(l.n, 2);
    assert_line(s, &l, 0, "中文", 4);
    assert_line(s, &l, 1, "字符", 4);
    text_lines_free(&l);

    s = "abcd中";
    l = wrap(s, 5, TEXT_WRAP_WORDS);
    assert_int_equal(l.n, 2);
    assert_line(s, &l, 0, "abcd", 4);
    assert_line(s, &l, 1, "中", 2);
    text_lines_free(&l);

    s = "中a中";
    l = wrap(s, 1, TEXT_WRAP_WORDS);
    assert_int_equal(l.n, 3);
    assert_line(s, &l, 0, "中", 2);
    assert_line(s, &l, 1, "a", 1);
    assert_line(s, &l, 2, "中", 2);
    text_lines_free(&l);

    s = "😀😀😀";
    l = wrap(s, 5, TEXT_WRAP_WORDS);
    assert_int_equal(l.n, 2);
    assert_line(s, &l, 0, "😀😀", 4);
    assert_line(s, &l, 1, "😀", 2);
    text_lines_free(&l);

    /* Width 1 with plain text: one character a line. */
    s = "ab c";
    l = wrap(s, 1, TEXT_WRAP_WORDS);
    assert_int_equal(l.n, 3);
    assert_line(s, &l, 0, "a", 1);
    assert_line(s, &l, 1, "b", 1);
    assert_line(s, &l, 2, "c", 1);
    text_lines_free(&l);
}

/* Combining marks take no column and stay with their base, so no line
 * starts with one, except when the text itself does. */
static void wrap_keeps_combining_marks_with_their_base(void **state)
{
    (void)state;
    const char *s = "e\xcc\x81"
                    "e\xcc\x81"
                    "e\xcc\x81";
    struct text_lines l = wrap(s, 2, TEXT_WRAP_WORDS);
    assert_int_equal(l.n, 2);
    assert_line(s, &l, 0,
                "e\xcc\x81"
                "e\xcc\x81",
                2);
    assert_line(s, &l, 1, "e\xcc\x81", 1);
    text_lines_free(&l);

    /* The same in CHARS mode, and with several marks on one base. */
    s = "ae\xcc\x81\xcc\xa3x";
    l = wrap(s, 2, TEXT_WRAP_CHARS);
    assert_int_equal(l.n, 2);
    assert_line(s, &l, 0, "ae\xcc\x81\xcc\xa3", 2);
    assert_line(s, &l, 1, "x", 1);
    text_lines_free(&l);

    /* A mark on a space makes it a visible character, not a break. */
    s = "a \xcc\x81"
        "b";
    l = wrap(s, 2, TEXT_WRAP_WORDS);
    assert_int_equal(l.n, 2);
    assert_line(s, &l, 0, "a \xcc\x81", 2);
    assert_line(s, &l, 1, "b", 1);
    text_lines_free(&l);

    /* Text that starts with a mark keeps it at the start. */
    s = "\xcc\x81"
        "ab";
    l = wrap(s, 1, TEXT_WRAP_WORDS);
    assert_int_equal(l.n, 2);
    assert_line(s, &l, 0,
                "\xcc\x81"
                "a",
                1);
    assert_line(s, &l, 1, "b", 1);
    text_lines_free(&l);
}

/* Invalid bytes are one column each, and wrapping never splits a valid
 * sequence or loses a byte. */
static void wrap_counts_invalid_bytes_as_one_column(void **state)
{
    (void)state;
    const char *s = "\xff\xff\xff";
    struct text_lines l = wrap(s, 2, TEXT_WRAP_WORDS);
    assert_int_equal(l.n, 2);
    assert_line(s, &l, 0, "\xff\xff", 2);
    assert_line(s, &l, 1, "\xff", 1);
    text_lines_free(&l);

    s = "a\xe4\xb8"
        "中";
    l = wrap(s, 3, TEXT_WRAP_CHARS);
    assert_int_equal(l.n, 2);
    assert_line(s, &l, 0, "a\xe4\xb8", 3);
    assert_line(s, &l, 1, "中", 2);
    text_lines_free(&l);
}

/* A tab is TEXT_TAB_COLS columns wherever it falls, is not a break point,
 * and alone is allowed past a pane narrower than it. */
static void wrap_counts_tabs_as_tab_cols(void **state)
{
    (void)state;
    const char *s = "\tx";
    struct text_lines l = wrap(s, 10, TEXT_WRAP_WORDS);
    assert_int_equal(l.n, 1);
    assert_line(s, &l, 0, "\tx", TEXT_TAB_COLS + 1);
    text_lines_free(&l);

    s = "a\tb";
    l = wrap(s, TEXT_TAB_COLS, TEXT_WRAP_WORDS);
    assert_int_equal(l.n, 3);
    assert_line(s, &l, 0, "a", 1);
    assert_line(s, &l, 1, "\t", TEXT_TAB_COLS);
    assert_line(s, &l, 2, "b", 1);
    text_lines_free(&l);

    s = "\t";
    l = wrap(s, 2, TEXT_WRAP_CHARS);
    assert_int_equal(l.n, 1);
    assert_line(s, &l, 0, "\t", TEXT_TAB_COLS);
    text_lines_free(&l);
}

/* CHARS mode breaks at the last character that fits, even inside a word,
 * and keeps every space: code keeps its alignment and the input line shows
 * every space the cursor can be on. */
static void wrap_chars_mode_breaks_at_the_last_character(void **state)
{
    (void)state;
    const char *s = "abc def";
    struct text_lines l = wrap(s, 5, TEXT_WRAP_CHARS);
    assert_int_equal(l.n, 2);
    assert_line(s, &l, 0, "abc d", 5);
    assert_line(s, &l, 1, "ef", 2);
    text_lines_free(&l);

    /* The same text in WORDS mode moves "def" whole. */
    l = wrap(s, 5, TEXT_WRAP_WORDS);
    assert_int_equal(l.n, 2);
    assert_line(s, &l, 0, "abc", 3);
    assert_line(s, &l, 1, "def", 3);
    text_lines_free(&l);

    s = "abcde  fg";
    l = wrap(s, 5, TEXT_WRAP_CHARS);
    assert_int_equal(l.n, 2);
    assert_line(s, &l, 0, "abcde", 5);
    assert_line(s, &l, 1, "  fg", 4);
    text_lines_free(&l);

    s = "    x = 1;";
    l = wrap(s, 8, TEXT_WRAP_CHARS);
    assert_int_equal(l.n, 2);
    assert_line(s, &l, 0, "    x = ", 8);
    assert_line(s, &l, 1, "1;", 2);
    text_lines_free(&l);

    /* Spaces alone, wider than the pane: all of them, line by line. */
    s = "     ";
    l = wrap(s, 2, TEXT_WRAP_CHARS);
    assert_int_equal(l.n, 3);
    assert_line(s, &l, 0, "  ", 2);
    assert_line(s, &l, 1, "  ", 2);
    assert_line(s, &l, 2, " ", 1);
    text_lines_free(&l);
}

/* text_wrap appends: lines already in the array stay, and the return value
 * counts only the new ones; text_lines_free leaves an empty array. */
static void wrap_appends_to_existing_lines(void **state)
{
    (void)state;
    struct text_lines l;
    text_lines_init(&l);
    assert_int_equal(text_wrap("aa bb", 5, 2, TEXT_WRAP_WORDS, &l), 2);
    assert_int_equal(text_wrap("ccc", 3, 10, TEXT_WRAP_WORDS, &l), 1);
    assert_int_equal(l.n, 3);
    assert_int_equal(l.v[0].start, 0);
    assert_int_equal(l.v[1].start, 3);
    assert_int_equal(l.v[2].start, 0);
    assert_int_equal(l.v[2].len, 3);
    /* Enough to grow the array several times. */
    char many[400];
    for (size_t i = 0; i < sizeof many; i++)
        many[i] = i % 2 == 0 ? 'x' : '\n';
    assert_int_equal(text_wrap(many, sizeof many, 3, TEXT_WRAP_CHARS, &l), 200);
    assert_int_equal(l.n, 203);
    text_lines_free(&l);
    assert_null(l.v);
    assert_int_equal(l.n, 0);
    assert_int_equal(l.cap, 0);
    text_lines_free(&l); /* twice is harmless */
}

/* xorshift32: a fixed sequence, so a failure reproduces. */
static uint32_t rnd(uint32_t *st)
{
    uint32_t x = *st;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *st = x;
    return x;
}

/* The width of a single character at s[i..n) and its length, written here
 * from text_cp_width (tabs and newlines as text.h says). */
static size_t ref_char(const char *s, size_t i, size_t n, int *cols)
{
    if (s[i] == '\t' || s[i] == '\n') {
        *cols = s[i] == '\t' ? TEXT_TAB_COLS : 0;
        return 1;
    }
    uint32_t cp;
    size_t len = utf8_decode(s + i, n - i, &cp);
    *cols = text_cp_width(cp);
    return len;
}

/* True when a character boundary of s falls at offset off. */
static bool ref_boundary(const char *s, size_t n, size_t off)
{
    size_t i = 0;
    while (i < off) {
        int c;
        i += ref_char(s, i, n, &c);
    }
    return i == off;
}

/* Columns of the first word of s[a..b): up to the first lone space (a
 * space not followed by a zero-width mark); a space carrying a mark is part
 * of a word. */
static size_t ref_first_word_cols(const char *s, size_t a, size_t b)
{
    size_t w = 0;
    for (size_t i = a; i < b;) {
        int c;
        size_t len = ref_char(s, i, b, &c);
        if (s[i] == ' ') {
            int c2 = 1;
            if (i + 1 < b)
                ref_char(s, i + 1, b, &c2);
            if (c2 != 0)
                break;
        }
        w += (size_t)c;
        i += len;
    }
    return w;
}

/* Pieces of the random texts: every kind of character the wrapper treats
 * differently. */
static const char *const pieces[] = {
    "a",        "b", "word", " ", "  ",       "\n",           "\t", "中",         "e\xcc\x81",
    "\xcc\x81", "😀", "\xff", "é", "\xe4\xb8", "\xe2\x80\x8d", "ｘ", "xyzzyplugh",
};

/* Random texts, both modes, widths 1..12: the lines are in order and
 * disjoint; every byte outside them is a space or a newline (in CHARS mode
 * a newline) and every newline is outside them; concatenating the lines
 * gives the input's non-space content in order; each line's cols is its
 * width and at most the pane's (one character alone may be wider); no line
 * starts with a mark unless its hard line does; in WORDS mode no line ends
 * or starts with a space at a break; and each line is as full as the mode
 * allows (the next character, or in WORDS mode the next word, would not
 * have fit). */
static void wrap_covers_every_byte_once_on_random_text(void **state)
{
    (void)state;
    uint32_t st = 0x9e3779b9u;
    char s[512];
    char content[512], rebuilt[512];
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = 0;
        size_t npieces = rnd(&st) % 24;
        for (size_t k = 0; k < npieces; k++) {
            const char *p = pieces[rnd(&st) % (sizeof pieces / sizeof pieces[0])];
            size_t len = strlen(p);
            if (n + len > sizeof s)
                break;
            memcpy(s + n, p, len);
            n += len;
        }
        int width = 1 + (int)(rnd(&st) % 12);
        enum text_wrap_mode mode = rnd(&st) % 2 ? TEXT_WRAP_WORDS : TEXT_WRAP_CHARS;
        struct text_lines l;
        text_lines_init(&l);
        size_t got = text_wrap(s, n, width, mode, &l);
        assert_int_equal(got, l.n);
        assert_true(l.n >= 1);

        size_t hard = 1;
        for (size_t i = 0; i + 1 < n; i++)
            hard += s[i] == '\n';
        assert_true(l.n >= hard);

        size_t clen = 0, rlen = 0;
        for (size_t i = 0; i < n; i++)
            if (s[i] != ' ' && s[i] != '\n')
                content[clen++] = s[i];

        size_t prev_end = 0;
        for (size_t li = 0; li < l.n; li++) {
            const struct text_line *ln = &l.v[li];
            assert_true(ln->start >= prev_end);
            assert_true(ln->start + ln->len <= n);
            assert_true(ref_boundary(s, n, ln->start));
            assert_true(ref_boundary(s, n, ln->start + ln->len));
            /* The gap before this line: spaces and newlines only. */
            for (size_t i = prev_end; i < ln->start; i++)
                assert_true(s[i] == '\n' || (s[i] == ' ' && mode == TEXT_WRAP_WORDS));
            bool same_hard_line =
                li > 0 && memchr(s + prev_end, '\n', ln->start - prev_end) == NULL;
            /* No newline inside a line. */
            assert_null(memchr(s + ln->start, '\n', ln->len));
            assert_int_equal((size_t)ln->cols, text_width(s + ln->start, ln->len));
            if (ln->cols > width) {
                /* One character and its marks. */
                int c;
                size_t first = ref_char(s, ln->start, n, &c);
                assert_true(c > width);
                assert_int_equal(text_width(s + ln->start + first, ln->len - first), 0);
            }
            if (ln->len > 0) {
                int c;
                ref_char(s, ln->start, n, &c);
                if (c == 0 && s[ln->start] != '\n')
                    assert_true(ln->start == 0 || s[ln->start - 1] == '\n');
            }
            if (same_hard_line) {
                /* A break inside a hard line: in WORDS mode no space kept
                 * at either side of it. */
                const struct text_line *pl = &l.v[li - 1];
                assert_true(pl->len > 0 && ln->len > 0);
                if (mode == TEXT_WRAP_WORDS)
                    assert_true(s[pl->start + pl->len - 1] != ' ');
                if (mode == TEXT_WRAP_WORDS && s[ln->start] == ' ') {
                    int c2 = 1;
                    if (ln->start + 1 < n)
                        ref_char(s, ln->start + 1, n, &c2);
                    assert_int_equal(c2, 0); /* a space carrying a mark */
                }
                /* The previous line was as full as the mode allows: with
                 * the gap, the next character (CHARS) or the whole next
                 * word of the input (WORDS) would not have fit. */
                size_t gap = ln->start - (pl->start + pl->len);
                size_t next_cols;
                if (mode == TEXT_WRAP_CHARS) {
                    int c;
                    ref_char(s, ln->start, n, &c);
                    next_cols = (size_t)c;
                } else {
                    const char *nl = memchr(s + ln->start, '\n', n - ln->start);
                    size_t hard_end = nl != NULL ? (size_t)(nl - s) : n;
                    next_cols = ref_first_word_cols(s, ln->start, hard_end);
                }
                assert_true((size_t)pl->cols + gap + next_cols > (size_t)width);
                if (mode == TEXT_WRAP_WORDS && gap == 0 && pl->cols <= width) {
                    /* A word was split: only when the line before had no
                     * space after a visible character to break at. */
                    bool seen = false;
                    for (size_t i = pl->start; i < pl->start + pl->len;) {
                        int c;
                        size_t len = ref_char(s, i, n, &c);
                        if (s[i] == ' ' && seen) {
                            int c2 = 1;
                            if (i + 1 < n)
                                ref_char(s, i + 1, n, &c2);
                            assert_int_equal(c2, 0); /* only a marked space */
                        }
                        if (s[i] != ' ')
                            seen = true;
                        i += len;
                    }
                }
            }
            for (size_t i = ln->start; i < ln->start + ln->len; i++)
                if (s[i] != ' ')
                    rebuilt[rlen++] = s[i];
            prev_end = ln->start + ln->len;
        }
        for (size_t i = prev_end; i < n; i++)
            assert_true(s[i] == '\n' || (s[i] == ' ' && mode == TEXT_WRAP_WORDS));
        assert_int_equal(rlen, clen);
        assert_memory_equal(rebuilt, content, clen);
        text_lines_free(&l);
    }
}

/* On random text, text_fit returns a character boundary whose prefix fits
 * and after which the next character would not (or the end). */
static void fit_is_the_longest_prefix_that_fits_on_random_text(void **state)
{
    (void)state;
    uint32_t st = 12345;
    char s[256];
    for (int iter = 0; iter < 5000; iter++) {
        size_t n = 0;
        size_t npieces = rnd(&st) % 16;
        for (size_t k = 0; k < npieces; k++) {
            const char *p = pieces[rnd(&st) % (sizeof pieces / sizeof pieces[0])];
            size_t len = strlen(p);
            if (n + len > sizeof s)
                break;
            memcpy(s + n, p, len);
            n += len;
        }
        size_t cols = rnd(&st) % 20;
        size_t off = text_fit(s, n, cols);
        assert_true(off <= n);
        assert_true(ref_boundary(s, n, off));
        assert_true(text_width(s, off) <= cols);
        if (off < n) {
            int c;
            ref_char(s, off, n, &c);
            assert_true(c > 0);
            assert_true(text_width(s, off) + (size_t)c > cols);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cp_width_covers_each_class_of_character),
        cmocka_unit_test(width_sums_characters_invalid_bytes_and_tabs),
        cmocka_unit_test(fit_stops_at_character_boundaries),
        cmocka_unit_test(wrap_ends_lines_at_hard_newlines),
        cmocka_unit_test(wrap_breaks_ascii_at_the_last_space_that_fits),
        cmocka_unit_test(wrap_drops_runs_of_spaces_only_at_breaks),
        cmocka_unit_test(wrap_splits_a_word_longer_than_the_width),
        cmocka_unit_test(wrap_places_wide_characters_whole),
        cmocka_unit_test(wrap_keeps_combining_marks_with_their_base),
        cmocka_unit_test(wrap_counts_invalid_bytes_as_one_column),
        cmocka_unit_test(wrap_counts_tabs_as_tab_cols),
        cmocka_unit_test(wrap_chars_mode_breaks_at_the_last_character),
        cmocka_unit_test(wrap_appends_to_existing_lines),
        cmocka_unit_test(wrap_covers_every_byte_once_on_random_text),
        cmocka_unit_test(fit_is_the_longest_prefix_that_fits_on_random_text),
    };
    return cmocka_run_group_tests(tests, setup_locale, NULL);
}
