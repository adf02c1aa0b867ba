/*
 * Tests of tui/theme: the file format (colours, attributes, comments,
 * spacing), every kind of error naming its file and line and leaving the
 * output untouched, the shipped themes (each loads, the built-in theme is
 * exactly share/themes/default.theme, mono has no colour, solarized-dark
 * uses the Solarized palette), finding themes by name with the user's
 * winning, the sorted list of names, and degrading 256 colours to 16 or 8.
 */
#include "testutil.h"

#include "tui/theme.h"

#include "util/alloc.h"
#include "util/buf.h"

/* The source tree's share/ (make check sets MEMCHAT_SRCDIR). Caller frees. */
static char *share_dir(void)
{
    const char *src = getenv("MEMCHAT_SRCDIR");
    return xasprintf("%s/share", src != NULL && *src != '\0' ? src : MC_SRCDIR);
}

/* A complete theme text: every element "= green", except that line
 * `replace_el` (-1: none) is replaced by `replacement` (NULL: dropped),
 * and `extra` (may be NULL) is appended as the last line. Caller frees. */
static char *theme_text(int replace_el, const char *replacement, const char *extra)
{
    struct buf b;
    buf_init(&b, 1 << 16);
    buf_puts(&b, "# a test theme\n\n");
    for (int e = 0; e < TH__COUNT; e++) {
        if (e == replace_el) {
            if (replacement != NULL)
                buf_printf(&b, "%s\n", replacement);
        } else {
            buf_printf(&b, "%s = green\n", theme_element_name((enum theme_element)e));
        }
    }
    if (extra != NULL)
        buf_printf(&b, "%s\n", extra);
    return buf_take(&b);
}

/* Parses text expecting failure: the message starts "t.theme:LINE: ",
 * contains `want`, and *out was not touched. */
static void assert_parse_error(const char *text, unsigned line, const char *want)
{
    struct theme t, before;
    memset(&t, 0x77, sizeof t);
    before = t;
    char err[2048] = "";
    assert_int_equal(theme_parse("t", text, strlen(text), "t.theme", &t, err, sizeof err), -1);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "t.theme:%u: ", line);
    if (strncmp(err, prefix, strlen(prefix)) != 0 || strstr(err, want) == NULL)
        fail_msg("message '%s' lacks '%s' or '%s'", err, prefix, want);
    assert_memory_equal(&t, &before, sizeof t);
}

/* Every element has a distinct, non-empty name, and an out-of-range value
 * still gets a string. */
static void element_names_are_distinct_and_never_null(void **state)
{
    (void)state;
    for (int e = 0; e < TH__COUNT; e++) {
        const char *a = theme_element_name((enum theme_element)e);
        assert_non_null(a);
        assert_true(a[0] != '\0');
        for (int f = e + 1; f < TH__COUNT; f++)
            assert_string_not_equal(a, theme_element_name((enum theme_element)f));
    }
    assert_string_equal(theme_element_name(TH_USER), "user");
    assert_string_equal(theme_element_name(TH_STATUS_ALERT), "status-alert");
    assert_non_null(theme_element_name(TH__COUNT));
    assert_non_null(theme_element_name((enum theme_element) - 1));
}

/* Colours by name, bright-NAME, colorN and default; an optional
 * background; attributes in any order; comments, blank lines, CRLF, tabs
 * and no spaces around '='. */
static void parse_reads_colours_attributes_and_comments(void **state)
{
    (void)state;
    char *text = theme_text(TH_USER, "user = bright-cyan color17 bold underline  # the user", NULL);
    struct theme t;
    char err[1024];
    assert_int_equal(theme_parse("mine", text, strlen(text), "t.theme", &t, err, sizeof err), 0);
    xfree(text);
    assert_string_equal(t.name, "mine");
    assert_int_equal(t.el[TH_USER].fg, 14);
    assert_int_equal(t.el[TH_USER].bg, 17);
    assert_int_equal(t.el[TH_USER].attrs, THEME_BOLD | THEME_UNDERLINE);
    assert_int_equal(t.el[TH_NORMAL].fg, 2);
    assert_int_equal(t.el[TH_NORMAL].bg, -1);
    assert_int_equal(t.el[TH_NORMAL].attrs, 0);

    static const struct {
        const char *line;
        short fg, bg;
        unsigned attrs;
    } cases[] = {
        {"error = red", 1, -1, 0},
        {"error = default default", -1, -1, 0},
        {"error=black white", 0, 7, 0},
        {"\terror\t=\tcolor0\tcolor255\treverse\r", 0, 255, THEME_REVERSE},
        {"error = bright-black bright-white", 8, 15, 0},
        {"error = yellow dim italic bold", 3, -1, THEME_DIM | THEME_ITALIC | THEME_BOLD},
        {"error = magenta blue reverse underline", 5, 4, THEME_REVERSE | THEME_UNDERLINE},
        {"  error = color007   # leading zeros are digits too", 7, -1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        text = theme_text(TH_ERROR, cases[i].line, NULL);
        memset(&t, 0, sizeof t);
        if (theme_parse("x", text, strlen(text), "t.theme", &t, err, sizeof err) != 0)
            fail_msg("'%s': %s", cases[i].line, err);
        xfree(text);
        assert_int_equal(t.el[TH_ERROR].fg, cases[i].fg);
        assert_int_equal(t.el[TH_ERROR].bg, cases[i].bg);
        assert_int_equal(t.el[TH_ERROR].attrs, cases[i].attrs);
    }

    /* No newline at the end, and Windows line ends throughout. */
    struct buf b;
    buf_init(&b, 1 << 16);
    for (int e = 0; e < TH__COUNT; e++)
        buf_printf(&b, "%s%s = blue\r", e == 0 ? "" : "\n",
                   theme_element_name((enum theme_element)e));
    assert_int_equal(theme_parse("x", buf_cstr(&b), b.len, "t.theme", &t, err, sizeof err), 0);
    assert_int_equal(t.el[TH_OVERLAY].fg, 4);
    buf_free(&b);
}

/* Each malformed line is an error naming the file and the line (the
 * header comment and a blank line come first, so element e is on line
 * e + 3) and what is accepted; *out stays as it was. */
static void parse_errors_name_the_file_and_line(void **state)
{
    (void)state;
    unsigned user_line = TH_USER + 3;
    static const struct {
        const char *line;
        const char *want;
    } cases[] = {
        {"usr = red", "unknown element 'usr' (accepted: normal, title, "},
        {"user name = red", "unknown element 'user name'"},
        {"= red", "no element before '='"},
        {"user red", "expected ELEMENT = FG [BG] [ATTR...], got 'user'"},
        {"user =", "'user' has no colour (accepted: default, black"},
        {"user = purple", "unknown colour 'purple' for 'user' (accepted: default,"},
        {"user = color256", "unknown colour 'color256'"},
        {"user = color", "unknown colour 'color'"},
        {"user = color-1", "unknown colour 'color-1'"},
        {"user = color1x", "unknown colour 'color1x'"},
        {"user = bright-default", "unknown colour 'bright-default'"},
        {"user = bright-color3", "unknown colour 'bright-color3'"},
        {"user = Red", "unknown colour 'Red'"},
        {"user = bold", "unknown colour 'bold'"},
        {"user = red blink", "unknown background colour or attribute 'blink' for 'user' "
                             "(accepted colours: default,"},
        {"user = red blue blink", "unknown attribute 'blink' for 'user' (accepted: bold, dim, "
                                  "underline, reverse, italic)"},
        {"user = red blue green", "unknown attribute 'green'"},
        {"user = red bold blue", "unknown attribute 'blue'"},
        {"user = \x1b[31m", "unknown colour '?[31m'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *text = theme_text(TH_USER, cases[i].line, NULL);
        assert_parse_error(text, user_line, cases[i].want);
        xfree(text);
    }

    /* Set twice: reported on the second line, naming the first. */
    char *text = theme_text(-1, NULL, "title = red");
    char want[64];
    snprintf(want, sizeof want, "'title' is set twice (first on line %d)", TH_TITLE + 3);
    assert_parse_error(text, TH__COUNT + 3, want);
    xfree(text);

    /* Missing: reported at the end of the file, listing the elements. */
    text = theme_text(TH_KEPT, NULL, NULL);
    assert_parse_error(text, TH__COUNT + 1,
                       "'kept' is not set (every element must be named once: "
                       "normal, title,");
    xfree(text);
    assert_parse_error("", 1, "'normal' is not set");
    assert_parse_error("# only a comment\n", 1, "'normal' is not set");
}

/* theme_builtin is exactly share/themes/default.theme, loaded the way the
 * TUI loads it, so a missing file changes nothing. */
static void builtin_theme_equals_the_shipped_default(void **state)
{
    (void)state;
    char *share = share_dir();
    struct theme file, builtin;
    char err[1024] = "";
    if (theme_load(share, NULL, "default", &file, err, sizeof err) != 0)
        fail_msg("%s", err);
    theme_builtin(&builtin);
    assert_string_equal(builtin.name, "default");
    assert_string_equal(file.name, "default");
    for (int e = 0; e < TH__COUNT; e++) {
        const struct theme_style *a = &file.el[e], *b = &builtin.el[e];
        if (a->fg != b->fg || a->bg != b->bg || a->attrs != b->attrs)
            fail_msg("'%s': file %d %d %u, built-in %d %d %u",
                     theme_element_name((enum theme_element)e), a->fg, a->bg, a->attrs, b->fg,
                     b->bg, b->attrs);
    }
    xfree(share);
}

/* Every shipped theme loads, opens with a comment saying what it is for,
 * and keeps the distinctions the screen relies on (the selection, the
 * focused title, errors and the status line differ from plain text). mono
 * uses no colour at all; solarized-dark only Solarized's palette. */
static void shipped_themes_load_and_keep_their_promises(void **state)
{
    (void)state;
    char *share = share_dir();
    char **names = theme_names(share, NULL);
    static const char *const want[] = {"default", "light", "mono", "solarized-dark"};
    for (size_t i = 0; i < 4; i++) {
        assert_non_null(names[i]);
        assert_string_equal(names[i], want[i]);
    }
    assert_null(names[4]);
    theme_names_free(names);

    for (size_t i = 0; i < 4; i++) {
        struct theme t;
        char err[1024] = "";
        if (theme_load(share, "", want[i], &t, err, sizeof err) != 0)
            fail_msg("%s: %s", want[i], err);
        assert_string_equal(t.name, want[i]);
        static const enum theme_element distinct[] = {TH_SELECTED, TH_TITLE_FOCUS, TH_ERROR,
                                                      TH_STATUS};
        for (size_t k = 0; k < 4; k++) {
            const struct theme_style *a = &t.el[distinct[k]], *n = &t.el[TH_NORMAL];
            assert_true(a->fg != n->fg || a->bg != n->bg || a->attrs != n->attrs);
        }
        const struct theme_style *f = &t.el[TH_TITLE_FOCUS], *ti = &t.el[TH_TITLE];
        assert_true(f->fg != ti->fg || f->bg != ti->bg || f->attrs != ti->attrs);

        char *path = xasprintf("%s/themes/%s.theme", share, want[i]);
        char *text = tu_read_file(path, NULL);
        assert_non_null(text);
        char opening[80];
        snprintf(opening, sizeof opening, "# %s: ", want[i]);
        assert_true(strncmp(text, opening, strlen(opening)) == 0);
        free(text);
        xfree(path);

        if (strcmp(want[i], "mono") == 0) {
            for (int e = 0; e < TH__COUNT; e++) {
                assert_int_equal(t.el[e].fg, -1);
                assert_int_equal(t.el[e].bg, -1);
            }
        }
        if (strcmp(want[i], "solarized-dark") == 0) {
            static const short palette[] = {234, 235, 240, 244, 245, 136, 166,
                                            160, 125, 61,  33,  37,  64};
            for (int e = 0; e < TH__COUNT; e++) {
                short c[2] = {t.el[e].fg, t.el[e].bg};
                for (int k = 0; k < 2; k++) {
                    bool found = false;
                    for (size_t p = 0; p < sizeof palette / sizeof palette[0]; p++)
                        found = found || palette[p] == c[k];
                    if (!found)
                        fail_msg("solarized-dark '%s' uses colour %d",
                                 theme_element_name((enum theme_element)e), c[k]);
                }
            }
        }
    }
    xfree(share);
}

/* A fresh directory with a themes/ inside; the path of themes/ is
 * returned in *themes (caller frees both). */
static char *make_theme_dir(char **themes)
{
    char *dir = tu_mkdtemp();
    *themes = xasprintf("%s/themes", dir);
    assert_int_equal(mkdir(*themes, 0700), 0);
    return dir;
}

/* An unknown name is an error listing the themes there are (user's and
 * shipped, sorted); a malformed name is refused before any file is
 * looked at. */
static void load_reports_unknown_and_invalid_names(void **state)
{
    (void)state;
    char *share = share_dir();
    char *themes;
    char *config = make_theme_dir(&themes);
    char *text = theme_text(-1, NULL, NULL);
    char *p = tu_write_file(themes, "mine.theme", text);
    free(p);

    struct theme t, before;
    memset(&t, 0x33, sizeof t);
    before = t;
    char err[2048] = "";
    assert_int_equal(theme_load(share, config, "nope", &t, err, sizeof err), -1);
    assert_string_equal(
        err, "unknown theme 'nope' (available: default, light, mine, mono, solarized-dark)");
    assert_memory_equal(&t, &before, sizeof t);

    static const char *const bad[] = {"", "../default", "a/b", "sp ace", "x\x1b", "caf\xc3\xa9"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(theme_load(share, config, bad[i], &t, err, sizeof err), -1);
        assert_non_null(strstr(err, "invalid theme name"));
        assert_non_null(strstr(err, "accepted: letters, digits"));
    }
    char longname[THEME_NAME_MAX + 2];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(theme_load(share, config, longname, &t, err, sizeof err), -1);
    assert_non_null(strstr(err, "invalid theme name"));
    longname[THEME_NAME_MAX] = '\0'; /* exactly the maximum: valid, but unknown */
    assert_int_equal(theme_load(share, config, longname, &t, err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown theme"));
    assert_memory_equal(&t, &before, sizeof t);

    /* With no themes anywhere the message says where it looked. */
    char *empty = tu_mkdtemp();
    assert_int_equal(theme_load(empty, NULL, "default", &t, err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown theme 'default' (there are none in "));
    assert_non_null(strstr(err, empty));

    xfree(text);
    tu_rmtree(config);
    tu_rmtree(empty);
    free(config);
    free(empty);
    xfree(themes);
    xfree(share);
}

/* A theme in the config dir's themes/ wins over a shipped one of the same
 * name; one of its own loads too; and a broken user theme is reported
 * with its path and line, not replaced by the shipped one. */
static void user_themes_override_shipped_ones(void **state)
{
    (void)state;
    char *share = share_dir();
    char *themes;
    char *config = make_theme_dir(&themes);
    char *text = theme_text(-1, NULL, NULL);
    char *p1 = tu_write_file(themes, "default.theme", text);
    char *p2 = tu_write_file(themes, "mine.theme", text);
    xfree(text);

    struct theme t;
    char err[2048] = "";
    assert_int_equal(theme_load(share, config, "default", &t, err, sizeof err), 0);
    assert_string_equal(t.name, "default");
    for (int e = 0; e < TH__COUNT; e++)
        assert_int_equal(t.el[e].fg, 2); /* the user's all-green, not the shipped one */
    assert_int_equal(theme_load(share, config, "mine", &t, err, sizeof err), 0);
    assert_string_equal(t.name, "mine");
    /* Themes the user did not override still come from share/. */
    assert_int_equal(theme_load(share, config, "mono", &t, err, sizeof err), 0);
    assert_int_equal(t.el[TH_USER].fg, -1);

    text = theme_text(TH_TITLE, "title = red sparkly", NULL);
    char *p3 = tu_write_file(themes, "default.theme", text);
    xfree(text);
    memset(&t, 0x11, sizeof t);
    struct theme before = t;
    assert_int_equal(theme_load(share, config, "default", &t, err, sizeof err), -1);
    char *want =
        xasprintf("%s:%d: unknown background colour or attribute 'sparkly'", p3, TH_TITLE + 3);
    if (strncmp(err, want, strlen(want)) != 0)
        fail_msg("'%s' does not start with '%s'", err, want);
    assert_memory_equal(&t, &before, sizeof t);
    xfree(want);

    /* A file larger than any theme, and a directory in its place. */
    char *big = xmalloc(70 * 1024);
    memset(big, '#', 70 * 1024 - 1);
    big[70 * 1024 - 1] = '\0';
    char *p4 = tu_write_file(themes, "big.theme", big);
    xfree(big);
    assert_int_equal(theme_load(share, config, "big", &t, err, sizeof err), -1);
    assert_non_null(strstr(err, "larger than the limit"));
    char *d = xasprintf("%s/dir.theme", themes);
    assert_int_equal(mkdir(d, 0700), 0);
    assert_int_equal(theme_load(share, config, "dir", &t, err, sizeof err), -1);
    assert_non_null(strstr(err, "directory"));
    assert_memory_equal(&t, &before, sizeof t);

    free(p1);
    free(p2);
    free(p3);
    free(p4);
    xfree(d);
    tu_rmtree(config);
    free(config);
    xfree(themes);
    xfree(share);
}

/* theme_names merges the two directories, sorted, each name once, and
 * skips files that are not themes or whose names could not be loaded;
 * missing directories give an empty list. */
static void names_are_sorted_and_deduplicated(void **state)
{
    (void)state;
    char *sthemes, *cthemes;
    char *share = make_theme_dir(&sthemes);
    char *config = make_theme_dir(&cthemes);
    static const char *const sfiles[] = {"b.theme", "a.theme",        "d-1.theme",  "notes.txt",
                                         ".theme",  "bad name.theme", "x.theme.bak"};
    static const char *const cfiles[] = {"a.theme", "c_2.theme", "B.theme"};
    for (size_t i = 0; i < sizeof sfiles / sizeof sfiles[0]; i++)
        free(tu_write_file(sthemes, sfiles[i], "# x\n"));
    for (size_t i = 0; i < sizeof cfiles / sizeof cfiles[0]; i++)
        free(tu_write_file(cthemes, cfiles[i], "# x\n"));

    char **names = theme_names(share, config);
    static const char *const want[] = {"B", "a", "b", "c_2", "d-1"};
    size_t n = 0;
    while (names[n] != NULL)
        n++;
    assert_int_equal(n, 5);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(names[i], want[i]);
    theme_names_free(names);

    /* Only one of the two directories. */
    names = theme_names(share, NULL);
    assert_string_equal(names[0], "a");
    assert_string_equal(names[1], "b");
    assert_string_equal(names[2], "d-1");
    assert_null(names[3]);
    theme_names_free(names);

    char *missing = xasprintf("%s/nowhere", share);
    names = theme_names(missing, missing);
    assert_null(names[0]);
    theme_names_free(names);
    theme_names_free(NULL);

    xfree(missing);
    tu_rmtree(share);
    tu_rmtree(config);
    free(share);
    free(config);
    xfree(sthemes);
    xfree(cthemes);
}

/* theme_degrade: -1 stays; fewer than 8 colours has none; 256 or more
 * keeps every colour; the first 16 are kept on a 16-colour terminal and
 * lose brightness (c & 7) on an 8-colour one. */
static void degrade_keeps_what_the_terminal_has(void **state)
{
    (void)state;
    assert_int_equal(theme_degrade(-1, 8), -1);
    assert_int_equal(theme_degrade(-1, 256), -1);
    assert_int_equal(theme_degrade(5, 2), -1);
    assert_int_equal(theme_degrade(5, 0), -1);
    for (short c = 0; c < 256; c++) {
        assert_int_equal(theme_degrade(c, 256), c);
        assert_int_equal(theme_degrade(c, 1 << 24), c);
        short d16 = theme_degrade(c, 16), d8 = theme_degrade(c, 8);
        assert_true(d16 >= 0 && d16 < 16);
        assert_true(d8 >= 0 && d8 < 8);
        if (c < 16) {
            assert_int_equal(d16, c);
            assert_int_equal(d8, c & 7);
        }
        /* An 88-colour terminal gets the 16-colour mapping. */
        assert_int_equal(theme_degrade(c, 88), d16);
    }
    assert_int_equal(theme_degrade(9, 8), 1);
    assert_int_equal(theme_degrade(15, 8), 7);
}

/* Cube and grey entries map to the nearest standard colour by RGB
 * distance (xterm's values): entries equal to a standard colour map to it
 * exactly (16 = #000000 = 0, 196 = #ff0000 = 9, 46 = #00ff00 = 10,
 * 226 = #ffff00 = 11, 201 = #ff00ff = 13, 51 = #00ffff = 14,
 * 231 = #ffffff = 15); at 8 colours pure red goes to 1 (#cd0000), white to
 * 7 (#e5e5e5); grey 244 (#808080) is next to 8 (#7f7f7f) at 16 and, of
 * the greys an 8-colour terminal has, nearer 7 (101 away) than 0 (128);
 * 21 (#0000ff) is 4 (#0000ee, 17 away) rather than 12 (#5c5cff); the
 * darkest grey 232 (#080808) is black. */
static void degrade_picks_the_nearest_standard_colour(void **state)
{
    (void)state;
    static const short exact[][2] = {{16, 0},   {196, 9}, {46, 10}, {226, 11},
                                     {201, 13}, {51, 14}, {231, 15}};
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
        assert_int_equal(theme_degrade(exact[i][0], 16), exact[i][1]);
    assert_int_equal(theme_degrade(196, 8), 1);
    assert_int_equal(theme_degrade(231, 8), 7);
    assert_int_equal(theme_degrade(16, 8), 0);
    assert_int_equal(theme_degrade(244, 16), 8);
    assert_int_equal(theme_degrade(244, 8), 7);
    assert_int_equal(theme_degrade(21, 16), 4);
    assert_int_equal(theme_degrade(232, 16), 0);
    assert_int_equal(theme_degrade(255, 16), 7); /* #eeeeee: 7 is 9 away per channel, 15 is 17 */
    assert_int_equal(theme_degrade(240, 16), 8); /* #585858: 8 is 39 away, black 88 */
    assert_int_equal(theme_degrade(136, 16), 3); /* #af8700 is nearest yellow #cdcd00 */
}

/* Greys (the ramp and the cube's diagonal) stay grey: each maps to black,
 * white, bright black or bright white, never to a hue, even where a hue is
 * nearer by distance (#808080 is nearer yellow #cdcd00 than white #e5e5e5
 * on an 8-colour terminal). */
static void degrade_keeps_greys_grey(void **state)
{
    (void)state;
    short greys[24 + 6];
    size_t n = 0;
    for (short c = 232; c < 256; c++)
        greys[n++] = c;
    static const short diagonal[] = {16, 59, 102, 145, 188, 231}; /* r = g = b in the cube */
    for (size_t i = 0; i < 6; i++)
        greys[n++] = diagonal[i];
    for (size_t i = 0; i < n; i++) {
        short d16 = theme_degrade(greys[i], 16), d8 = theme_degrade(greys[i], 8);
        assert_true(d16 == 0 || d16 == 7 || d16 == 8 || d16 == 15);
        assert_true(d8 == 0 || d8 == 7);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(element_names_are_distinct_and_never_null),
        cmocka_unit_test(parse_reads_colours_attributes_and_comments),
        cmocka_unit_test(parse_errors_name_the_file_and_line),
        cmocka_unit_test(builtin_theme_equals_the_shipped_default),
        cmocka_unit_test(shipped_themes_load_and_keep_their_promises),
        cmocka_unit_test(load_reports_unknown_and_invalid_names),
        cmocka_unit_test(user_themes_override_shipped_ones),
        cmocka_unit_test(names_are_sorted_and_deduplicated),
        cmocka_unit_test(degrade_keeps_what_the_terminal_has),
        cmocka_unit_test(degrade_picks_the_nearest_standard_colour),
        cmocka_unit_test(degrade_keeps_greys_grey),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
