/*
 * Tests of util/utf8: validation against an independent reference decoder
 * (one written from the code-point rules rather than the byte table),
 * decoding and encoding of every code point, truncation and incomplete
 * tails on every split of real text, and the terminal sanitiser on each
 * kind of control sequence plus a randomised check that its output can
 * never carry a control sequence.
 */
#include "testutil.h"

#include "util/utf8.h"

#include "util/alloc.h"
#include "util/buf.h"

/* A decoder written from the definitions (bit patterns, then the code point
 * must be in range for its length, not a surrogate and <= U+10FFFF):
 * returns the length of the well-formed sequence at s, or 0. */
static size_t ref_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned c = s[0];
    size_t len;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xe0) == 0xc0) {
        len = 2, v = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3, v = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return len;
}

/* The reference verdict for a whole string: true, or false with the offset
 * of the first sequence that does not decode. */
static bool ref_valid(const unsigned char *s, size_t n, size_t *bad)
{
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t len = ref_decode(s + i, n - i, &cp);
        if (len == 0) {
            *bad = i;
            return false;
        }
        i += len;
    }
    return true;
}

/* A small deterministic PRNG (xorshift64*) so failures reproduce. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dULL;
}

/* Checks utf8_valid on s against the reference, offset included. */
static void check_valid_like_reference(const unsigned char *s, size_t n)
{
    size_t bad = 12345, ref_bad = 54321;
    bool ok = utf8_valid((const char *)s, n, &bad);
    bool ref_ok = ref_valid(s, n, &ref_bad);
    assert_int_equal(ok, ref_ok);
    if (!ok)
        assert_int_equal(bad, ref_bad);
}

/* Well-formed text of every length class passes, with the boundary code
 * points of each class; the empty string is valid. */
static void valid_accepts_well_formed_text(void **state)
{
    (void)state;
    static const char *const ok[] = {
        "",
        "plain ascii",
        "\x7f",
        "\xc2\x80",         /* U+0080 */
        "\xdf\xbf",         /* U+07FF */
        "\xe0\xa0\x80",     /* U+0800 */
        "\xed\x9f\xbf",     /* U+D7FF, just below the surrogates */
        "\xee\x80\x80",     /* U+E000, just above them */
        "\xef\xbf\xbf",     /* U+FFFF */
        "\xf0\x90\x80\x80", /* U+10000 */
        "\xf4\x8f\xbf\xbf", /* U+10FFFF */
        "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        size_t bad = 99;
        assert_true(utf8_valid(ok[i], strlen(ok[i]), &bad));
        assert_int_equal(bad, 99); /* untouched on success */
    }
    assert_true(utf8_valid("a\0b", 3, NULL)); /* NUL is a valid code point */
}

/* Overlongs, surrogates, values above U+10FFFF, truncated sequences and
 * stray continuation bytes are rejected, and the offset names the first
 * byte of the first bad sequence (not of the string, not of the bad byte). */
static void valid_rejects_each_kind_of_bad_sequence_at_its_offset(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t bad;
    } cases[] = {
        {"\xc0\x80", 0},             /* overlong NUL */
        {"ab\xc1\xbf", 2},           /* overlong U+007F */
        {"\xe0\x80\x80", 0},         /* overlong 3-byte */
        {"x\xe0\x9f\xbf", 1},        /* overlong U+07FF */
        {"\xf0\x80\x80\x80", 0},     /* overlong 4-byte */
        {"\xf0\x8f\xbf\xbf", 0},     /* overlong U+FFFF */
        {"ok\xed\xa0\x80", 2},       /* U+D800 */
        {"\xed\xbf\xbf", 0},         /* U+DFFF */
        {"\xf4\x90\x80\x80", 0},     /* U+110000 */
        {"\xf5\x80\x80\x80", 0},     /* lead byte beyond the range */
        {"\xff", 0},                 /* never valid */
        {"abc\xe2\x82", 3},          /* truncated at the end */
        {"\xe2\x82x", 0},            /* truncated by an ASCII byte */
        {"a\x80", 1},                /* stray continuation */
        {"\xc3\xa9\xbf", 2},         /* continuation after a complete sequence */
        {"\xe6\x97\xa5\xc3", 3},     /* lone lead byte at the end */
        {"\xf0\x9f\x98\x80\xf0", 4}, /* same, after an emoji */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t bad = 99;
        assert_false(utf8_valid(cases[i].s, strlen(cases[i].s), &bad));
        assert_int_equal(bad, cases[i].bad);
        assert_false(utf8_valid(cases[i].s, strlen(cases[i].s), NULL));
    }
}

/* Every string of one and two bytes, every 3- and 4-byte string with the
 * first two bytes free and the rest from a set of edge values, and random
 * strings biased to high bytes, get the reference decoder's verdict and
 * offset: the byte-range table matches the code-point rules exactly. */
static void valid_agrees_with_a_reference_decoder_exhaustively(void **state)
{
    (void)state;
    static const unsigned char tails[] = {0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90,
                                          0x9f, 0xa0, 0xbf, 0xc0, 0xe0, 0xff};
    unsigned char s[4];
    for (unsigned a = 0; a < 256; a++) {
        s[0] = (unsigned char)a;
        check_valid_like_reference(s, 1);
        for (unsigned b = 0; b < 256; b++) {
            s[1] = (unsigned char)b;
            check_valid_like_reference(s, 2);
            if (a < 0xe0 || a > 0xf7)
                continue;
            for (size_t c = 0; c < sizeof tails; c++) {
                s[2] = tails[c];
                check_valid_like_reference(s, 3);
                for (size_t d = 0; d < sizeof tails; d++) {
                    s[3] = tails[d];
                    check_valid_like_reference(s, 4);
                }
            }
        }
    }
    unsigned char r[32];
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = rng_next() % sizeof r;
        for (size_t i = 0; i < n; i++) {
            uint64_t x = rng_next();
            /* Half ASCII, half from 0x80..0xFF, so valid runs occur. */
            r[i] = (unsigned char)(x & 1 ? (x >> 8) % 0x80 : 0x80 + (x >> 8) % 0x80);
        }
        check_valid_like_reference(r, n);
    }
}

/* decode returns the length and code point of a good sequence, and 1 with
 * U+FFFD for a bad or truncated one, so a caller always makes progress. */
static void decode_returns_length_and_code_point_or_replacement(void **state)
{
    (void)state;
    uint32_t cp = 0;
    assert_int_equal(utf8_decode("A", 1, &cp), 1);
    assert_int_equal(cp, 0x41);
    assert_int_equal(utf8_decode("\xc3\xa9x", 3, &cp), 2);
    assert_int_equal(cp, 0xe9);
    assert_int_equal(utf8_decode("\xe2\x82\xac", 3, &cp), 3);
    assert_int_equal(cp, 0x20ac);
    assert_int_equal(utf8_decode("\xf0\x9f\x98\x80", 4, &cp), 4);
    assert_int_equal(cp, 0x1f600);
    /* Truncated by n although the bytes after it are right. */
    assert_int_equal(utf8_decode("\xe2\x82\xac", 2, &cp), 1);
    assert_int_equal(cp, 0xfffd);
    assert_int_equal(utf8_decode("\xed\xa0\x80", 3, &cp), 1);
    assert_int_equal(cp, 0xfffd);
    assert_int_equal(utf8_decode("\x80", 1, &cp), 1);
    assert_int_equal(cp, 0xfffd);
}

/* Every scalar value encodes to the length its range requires, the bytes
 * are valid, and decode gives the value back; surrogates and values above
 * U+10FFFF encode as U+FFFD. */
static void encode_round_trips_every_code_point(void **state)
{
    (void)state;
    char out[4];
    for (uint32_t cp = 0; cp <= 0x10ffff; cp++) {
        if (cp >= 0xd800 && cp <= 0xdfff)
            continue;
        size_t len = utf8_encode(cp, out);
        size_t want = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
        assert_int_equal(len, want);
        uint32_t back = 0xffffffff;
        assert_int_equal(utf8_decode(out, len, &back), len);
        assert_int_equal(back, cp);
    }
    static const uint32_t bad[] = {0xd800, 0xdbff, 0xdc00, 0xdfff, 0x110000, 0xffffffff};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(utf8_encode(bad[i], out), 3);
        assert_memory_equal(out, "\xef\xbf\xbd", 3);
    }
}

/* truncate never splits a sequence: on a mixed string, every max gives the
 * largest sequence boundary <= max; invalid bytes are single units. */
static void truncate_never_splits_a_sequence(void **state)
{
    (void)state;
    /* a(1) é(2) €(3) 😀(4) b(1): boundaries at 0 1 3 6 10 11 */
    const char *s = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
                    "b";
    size_t n = strlen(s);
    static const size_t expect[] = {0, 1, 1, 3, 3, 3, 6, 6, 6, 6, 10, 11};
    for (size_t max = 0; max <= n; max++)
        assert_int_equal(utf8_truncate(s, n, max), expect[max]);
    assert_int_equal(utf8_truncate(s, n, n + 100), n);
    /* Bad bytes can be cut anywhere: no sequence exists to split. */
    assert_int_equal(utf8_truncate("\xff\xff\xff", 3, 2), 2);
    assert_int_equal(utf8_truncate("a\x80\x80\x80", 4, 3), 3);
    /* A lead byte whose sequence is ill-formed is one unit too. */
    assert_int_equal(utf8_truncate("\xe2\x82x", 3, 1), 1);
}

/* For every split of valid text, truncating at the split gives a valid
 * prefix no more than 3 bytes short of it. */
static void truncate_gives_a_valid_prefix_at_every_length(void **state)
{
    (void)state;
    const char *s = "Gr\xc3\xbc\xc3\x9f"
                    "e \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x91\xa9\xe2\x80\x8d"
                    "\xf0\x9f\x92\xbb e\xcc\x81";
    size_t n = strlen(s);
    assert_true(utf8_valid(s, n, NULL));
    for (size_t max = 0; max <= n; max++) {
        size_t t = utf8_truncate(s, n, max);
        assert_true(t <= max);
        assert_true(max - t <= 3);
        assert_true(utf8_valid(s, t, NULL));
        assert_true(utf8_valid(s + t, n - t, NULL)); /* the rest is whole too */
    }
}

/* incomplete_tail counts only a valid-so-far prefix at the very end. */
static void incomplete_tail_counts_a_valid_unfinished_prefix(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t tail;
    } cases[] = {
        {"", 0},
        {"ab", 0},
        {"a\xc3", 1},
        {"a\xe2\x82", 2},
        {"\xe2", 1},
        {"\xf0\x9f\x98", 3},
        {"\xf0\x9f", 2},
        {"\xc3\xa9", 0},         /* complete */
        {"\xf0\x9f\x98\x80", 0}, /* complete */
        {"a\xc0", 0},            /* C0 can never start a sequence */
        {"a\xe0\x80", 0},        /* E0 80 is an overlong start */
        {"\xed\xa0", 0},         /* a surrogate start */
        {"\xf4\x90", 0},         /* above U+10FFFF */
        {"\xf8", 0},
        {"\x80\x80\x80", 0}, /* only continuations */
        {"a\x80", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_int_equal(utf8_incomplete_tail(cases[i].s, strlen(cases[i].s)), cases[i].tail);
}

/* Streaming: text cut at every pair of positions into three chunks and
 * rejoined by carrying each chunk's incomplete tail into the next yields
 * only valid pieces that concatenate to the original. */
static void incomplete_tail_joins_text_split_anywhere(void **state)
{
    (void)state;
    const char *s = "\xc3\xa9t\xc3\xa9 \xe2\x82\xac\xf0\x9f\x98\x80"
                    "z\xe6\x97\xa5";
    size_t n = strlen(s);
    for (size_t cut1 = 0; cut1 <= n; cut1++) {
        for (size_t cut2 = cut1; cut2 <= n; cut2++) {
            size_t cuts[] = {0, cut1, cut2, n};
            char carry[4], joined[64];
            size_t carried = 0, out = 0;
            for (int c = 0; c < 3; c++) {
                char piece[64];
                size_t len = 0;
                memcpy(piece, carry, carried);
                len = carried;
                memcpy(piece + len, s + cuts[c], cuts[c + 1] - cuts[c]);
                len += cuts[c + 1] - cuts[c];
                size_t tail = c < 2 ? utf8_incomplete_tail(piece, len) : 0;
                assert_true(utf8_valid(piece, len - tail, NULL));
                memcpy(joined + out, piece, len - tail);
                out += len - tail;
                memcpy(carry, piece + len - tail, tail);
                carried = tail;
            }
            assert_int_equal(out, n);
            assert_memory_equal(joined, s, n);
        }
    }
}

/* Sanitises s[0..n) into a fresh buffer and compares with want. */
static void check_sanitize(const char *s, size_t n, const char *want)
{
    struct buf b;
    buf_init(&b, 1 << 16);
    assert_int_equal(utf8_sanitize_terminal(&b, s, n), BUF_OK);
    if (strcmp(buf_cstr(&b), want) != 0 || b.len != strlen(want))
        fail_msg("sanitize(\"%s\") gave \"%s\", want \"%s\"", s, buf_cstr(&b), want);
    buf_free(&b);
}

#define SANE(s, want) check_sanitize(s, sizeof(s) - 1, want)

/* Printable text of every kind passes unchanged: ASCII, \n and \t, Latin
 * letters, wide CJK, combining marks, emoji with ZWJ and skin tone, NBSP,
 * and the code points right next to the removed ranges. */
static void sanitize_keeps_printable_text(void **state)
{
    (void)state;
    static const char *const keep[] = {
        "",
        "hello, world ~!@#$%^&*()_+{}|:\"<>?`-=[]\\;',./",
        "line one\nline two\ttabbed\n",
        "caf\xc3\xa9 na\xc3\xafve",
        "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xed\x95\x9c\xea\xb5\xad\xec\x96\xb4",
        "e\xcc\x81 a\xcc\x8a",
        "\xf0\x9f\x98\x80 \xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x92\xbb \xf0\x9f\x91\x8d\xf0\x9f"
        "\x8f\xbd",
        "\xc2\xa0\xc2\xa1",     /* U+00A0 U+00A1: first after the C1 range */
        "\xe2\x80\xa9",         /* U+2029, just below U+202A */
        "\xe2\x80\xaf",         /* U+202F, just above U+202E */
        "\xe2\x81\xa5",         /* U+2065, just below U+2066 */
        "\xe2\x81\xaa",         /* U+206A, just above U+2069 */
        "\xe2\x80\x8e",         /* U+200E LRM is a mark, not an override */
        "\xef\xbf\xbd",         /* U+FFFD itself */
        "\xf4\x8f\xbf\xbf",     /* U+10FFFF */
        "[31m not an escape ]", /* brackets without ESC are text */
    };
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
        check_sanitize(keep[i], strlen(keep[i]), keep[i]);
}

/* C0 controls other than \n and \t, DEL and the C1 controls U+0080..U+009F
 * are removed; NUL inside the input is removed, not a terminator. */
static void sanitize_removes_control_characters(void **state)
{
    (void)state;
    SANE("a\x01"
         "b\x07"
         "c\x08"
         "d\x0b\x0c\x0e\x1f"
         "e",
         "abcde");
    SANE("a\0b", "ab");
    SANE("del\x7f!", "del!");
    SANE("a\xc2\x80"
         "b\xc2\x85"
         "c\xc2\x9b"
         "d\xc2\x9f"
         "e",
         "abcde");
    SANE("tab\there\n", "tab\there\n");
}

/* \r\n becomes \n and a lone \r (which would move the cursor back over
 * earlier text) is removed, also at the start or end. */
static void sanitize_normalises_carriage_returns(void **state)
{
    (void)state;
    SANE("a\r\nb\r\n", "a\nb\n");
    SANE("\rfake\rreal", "fakereal");
    SANE("end\r", "end");
    SANE("\r\r\n", "\n");
}

/* CSI sequences go whole: SGR colours, private modes, cursor moves, ones
 * with intermediates; a CSI broken by a control byte loses only its head,
 * and the byte is then handled on its own. */
static void sanitize_removes_csi_sequences_whole(void **state)
{
    (void)state;
    SANE("\x1b[31mred\x1b[0m", "red");
    SANE("\x1b[1;2Hx\x1b[2J\x1b[?25l\x1b[?1049h", "x");
    SANE("a\x1b[2 qb", "ab");   /* intermediate byte */
    SANE("a\x1b[>0;1cb", "ab"); /* private parameter prefix */
    SANE("a\x1b[31\nb", "a\nb");
    SANE("a\x1b[", "a"); /* cut short at the end */
    SANE("a\x1b[12;3", "a");
}

/* OSC strings end at BEL or ST (ESC \), DCS, SOS, PM and APC strings at
 * ST; the string goes with its terminator, so titles and hyperlink targets
 * never show, but the hyperlink's visible text does. */
static void sanitize_removes_string_sequences_whole(void **state)
{
    (void)state;
    SANE("\x1b]0;evil title\x07"
         "after",
         "after");
    SANE("\x1b]8;;http://evil.example/\x1b\\link\x1b]8;;\x1b\\", "link");
    SANE("\x1b]52;c;SGVsbG8=\x07x", "x"); /* clipboard write */
    SANE("\x1bPq#0;2;0;0;0#0~~\x1b\\x", "x");
    SANE("a\x1bXsos\x1b\\b", "ab");
    SANE("a\x1b^pm\x1b\\b", "ab");
    SANE("a\x1b_apc\x1b\\b", "ab");
    /* BEL ends an OSC but not a DCS, which runs on to its ST. */
    SANE("a\x1bPdcs\x07still\x1b\\b", "ab");
}

/* An OSC or DCS without terminator swallows the rest of the input rather
 * than letting its payload show. */
static void sanitize_drops_unterminated_strings_at_the_end(void **state)
{
    (void)state;
    SANE("ok\x1b]0;title never ends", "ok");
    SANE("ok\x1bPdcs payload\x1b", "ok");
    SANE("ok\x1b_apc\x1b", "ok");
}

/* Other ESC forms (ECMA-35): ESC final, ESC intermediates final. A lone
 * ESC at the end goes too; ESC ESC starts over at the second. */
static void sanitize_removes_two_byte_escape_forms(void **state)
{
    (void)state;
    SANE("\x1b"
         "cX",
         "X"); /* full reset */
    SANE("\x1b(BX\x1b)0Y", "XY");
    SANE("\x1b"
         "7a\x1b"
         "8",
         "a"); /* save, restore cursor */
    SANE("\x1b#8", "");
    SANE("a\x1b=b\x1b>c", "abc");
    SANE("end\x1b", "end");
    SANE("\x1b\x1b[31mx", "x");
    SANE("a\x1b\nb", "a\nb"); /* ESC before a control: only ESC goes */
    SANE("a\x1b\xc3\xa9", "a\xc3\xa9");
}

/* Bidi overrides and isolates (the "Trojan Source" characters) are
 * removed. */
static void sanitize_removes_bidi_overrides_and_isolates(void **state)
{
    (void)state;
    SANE("a\xe2\x80\xaa"
         "b\xe2\x80\xab"
         "c\xe2\x80\xac"
         "d\xe2\x80\xad"
         "e\xe2\x80\xae"
         "f",
         "abcdef");
    SANE("a\xe2\x81\xa6"
         "b\xe2\x81\xa7"
         "c\xe2\x81\xa8"
         "d\xe2\x81\xa9"
         "e",
         "abcde");
}

/* Invalid bytes become U+FFFD, one per maximal subpart (Unicode's
 * recommended practice): a truncated valid start is one unit, a byte that
 * can never start a sequence is one unit each. */
static void sanitize_replaces_each_maximal_bad_subpart_once(void **state)
{
    (void)state;
    SANE("a\xff"
         "b",
         "a\xef\xbf\xbd"
         "b");
    SANE("\xe2\x82"
         "A",
         "\xef\xbf\xbd"
         "A"); /* E2 82 is one subpart */
    SANE("\xc0\x80", "\xef\xbf\xbd\xef\xbf\xbd");
    SANE("\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    SANE("\xf0\x9f\x98", "\xef\xbf\xbd"); /* truncated at the end */
    SANE("\x9b"
         "31m",
         "\xef\xbf\xbd"
         "31m"); /* a raw 8-bit CSI byte */
    SANE("\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
}

/* The output is appended after what the buffer already holds. */
static void sanitize_appends_to_the_buffer(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 100);
    assert_int_equal(buf_puts(&b, "> "), BUF_OK);
    assert_int_equal(utf8_sanitize_terminal(&b, "x\x1b[1my", 6), BUF_OK);
    assert_string_equal(buf_cstr(&b), "> xy");
    buf_free(&b);
}

/* The buffer's bound and allocation failures come back as the buf
 * results, with the buffer reset as buf.h promises. */
static void sanitize_reports_buffer_errors(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 5);
    assert_int_equal(utf8_sanitize_terminal(&b, "12345", 5), BUF_OK);
    assert_int_equal(utf8_sanitize_terminal(&b, "6", 1), BUF_TOO_BIG);
    assert_int_equal(b.len, 0);
    /* The bound also counts replacement characters, which are longer than
     * the bytes they replace. */
    assert_int_equal(utf8_sanitize_terminal(&b, "\xff\xff", 2), BUF_TOO_BIG);
    buf_free(&b);

    buf_init(&b, 100);
    alloc_fail_after(1, 0);
    enum buf_result r = utf8_sanitize_terminal(&b, "abc", 3);
    alloc_fail_after(0, 0);
    assert_int_equal(r, BUF_NO_MEM);
    assert_null(b.data);
    buf_free(&b);
}

/* Nothing the sanitiser emits can reach the terminal as a control: over
 * many random strings made of escape-sequence pieces, controls, bad bytes
 * and text, the output is valid UTF-8 with no ESC, no C0 other than \n and
 * \t, no DEL, no C1, no bidi control, and sanitising it again changes
 * nothing. */
static void sanitize_output_never_contains_controls(void **state)
{
    (void)state;
    static const char *const atoms[] = {
        "\x1b", "[",    "]",    "P",    "\\",   "\x07",     "\r",           "\n",       "\t",
        "\x7f", "\x9b", "\xc2", "\x9d", "\x80", "\xe2",     "\x80\xae",     "\xf0\x9f", "\x98",
        "\xff", "a",    "31",   ";",    "m",    "\xc3\xa9", "\xe2\x81\xa6", "\x00",
    };
    size_t natoms = sizeof atoms / sizeof atoms[0];
    for (int iter = 0; iter < 5000; iter++) {
        char in[256];
        size_t n = 0;
        size_t parts = rng_next() % 24;
        for (size_t p = 0; p < parts; p++) {
            size_t a = rng_next() % natoms;
            size_t len = a == natoms - 1 ? 1 : strlen(atoms[a]);
            memcpy(in + n, atoms[a], len);
            n += len;
        }
        struct buf b;
        buf_init(&b, 4096);
        assert_int_equal(utf8_sanitize_terminal(&b, in, n), BUF_OK);
        const unsigned char *o = (const unsigned char *)buf_cstr(&b);
        assert_true(utf8_valid((const char *)o, b.len, NULL));
        for (size_t i = 0; i < b.len; i++) {
            assert_true(o[i] >= 0x20 || o[i] == '\n' || o[i] == '\t');
            assert_true(o[i] != 0x7f);
            if (o[i] == 0xc2 && i + 1 < b.len)
                assert_true(o[i + 1] >= 0xa0); /* no U+0080..U+009F */
            if (o[i] == 0xe2 && i + 2 < b.len) {
                unsigned cp = (o[i + 1] & 0x3fu) << 6 | (o[i + 2] & 0x3fu);
                cp |= 0x2000;
                assert_false(cp >= 0x202a && cp <= 0x202e);
                assert_false(cp >= 0x2066 && cp <= 0x2069);
            }
        }
        struct buf again;
        buf_init(&again, 4096);
        assert_int_equal(utf8_sanitize_terminal(&again, buf_cstr(&b), b.len), BUF_OK);
        assert_int_equal(again.len, b.len);
        assert_memory_equal(buf_cstr(&again), buf_cstr(&b), b.len);
        buf_free(&again);
        buf_free(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_accepts_well_formed_text),
        cmocka_unit_test(valid_rejects_each_kind_of_bad_sequence_at_its_offset),
        cmocka_unit_test(valid_agrees_with_a_reference_decoder_exhaustively),
        cmocka_unit_test(decode_returns_length_and_code_point_or_replacement),
        cmocka_unit_test(encode_round_trips_every_code_point),
        cmocka_unit_test(truncate_never_splits_a_sequence),
        cmocka_unit_test(truncate_gives_a_valid_prefix_at_every_length),
        cmocka_unit_test(incomplete_tail_counts_a_valid_unfinished_prefix),
        cmocka_unit_test(incomplete_tail_joins_text_split_anywhere),
        cmocka_unit_test(sanitize_keeps_printable_text),
        cmocka_unit_test(sanitize_removes_control_characters),
        cmocka_unit_test(sanitize_normalises_carriage_returns),
        cmocka_unit_test(sanitize_removes_csi_sequences_whole),
        cmocka_unit_test(sanitize_removes_string_sequences_whole),
        cmocka_unit_test(sanitize_drops_unterminated_strings_at_the_end),
        cmocka_unit_test(sanitize_removes_two_byte_escape_forms),
        cmocka_unit_test(sanitize_removes_bidi_overrides_and_isolates),
        cmocka_unit_test(sanitize_replaces_each_maximal_bad_subpart_once),
        cmocka_unit_test(sanitize_appends_to_the_buffer),
        cmocka_unit_test(sanitize_reports_buffer_errors),
        cmocka_unit_test(sanitize_output_never_contains_controls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
