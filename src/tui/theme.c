/*
 * Theme files (layer: data for tui/draw, no curses here): parsing the
 * `ELEMENT = FG [BG] [ATTR...]` lines, finding a theme by name in the
 * user's themes/ and the shipped ones, listing them, and mapping a colour
 * onto a terminal with fewer colours. A theme is all or nothing: every
 * element must be named, so a typo in a file is reported instead of
 * silently drawing that element in the terminal's default colours.
 */
#include "config.h"

#include "tui/theme.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/buf.h"
#include "util/fileio.h"
#include "util/paths.h"

/* A theme file is a few dozen short lines; anything larger is a mistake. */
#define THEME_FILE_MAX (64 * 1024)

static const char *const theme_names_tab[TH__COUNT] = {
#define TH_X_NAME(e, name, what) [e] = name,
    THEME_ELEMENT_LIST(TH_X_NAME)
#undef TH_X_NAME
};

static const char *const theme_colour_names[8] = {
    "black", "red", "green", "yellow", "blue", "magenta", "cyan", "white",
};

static const struct {
    const char *name;
    unsigned bit;
} theme_attr_names[] = {
    {"bold", THEME_BOLD},       {"dim", THEME_DIM},       {"underline", THEME_UNDERLINE},
    {"reverse", THEME_REVERSE}, {"italic", THEME_ITALIC},
};

#define THEME_ACCEPTED_COLOURS                                                                   \
    "default, black, red, green, yellow, blue, magenta, cyan, white, bright-NAME for colours 8 " \
    "to 15, colorN with N 0 to 255"
#define THEME_ACCEPTED_ATTRS "bold, dim, underline, reverse, italic"

/* share/themes/default.theme, element by element (test_tui_theme checks
 * that the two agree). */
static const struct theme_style theme_default_el[TH__COUNT] = {
    [TH_NORMAL] = {-1, -1, 0},
    [TH_TITLE] = {6, -1, THEME_BOLD},
    [TH_TITLE_FOCUS] = {0, 6, THEME_BOLD},
    [TH_SEPARATOR] = {4, -1, 0},
    [TH_USER] = {6, -1, THEME_BOLD},
    [TH_ASSISTANT] = {-1, -1, 0},
    [TH_NOTICE] = {2, -1, 0},
    [TH_ERROR] = {1, -1, THEME_BOLD},
    [TH_CODE] = {252, 236, 0},
    [TH_MARKER] = {5, -1, 0},
    [TH_SELECTED] = {-1, -1, THEME_REVERSE},
    [TH_KEPT] = {2, -1, THEME_BOLD},
    [TH_DROPPED] = {-1, -1, THEME_DIM},
    [TH_SCORE] = {3, -1, 0},
    [TH_LABEL] = {6, -1, 0},
    [TH_VALUE] = {-1, -1, THEME_BOLD},
    [TH_SPARK] = {2, -1, 0},
    [TH_WARN] = {3, -1, THEME_BOLD},
    [TH_STATUS] = {0, 6, 0},
    [TH_STATUS_ALERT] = {7, 1, THEME_BOLD},
    [TH_PROMPT] = {2, -1, THEME_BOLD},
    [TH_INPUT] = {-1, -1, 0},
    [TH_OVERLAY] = {7, 4, 0},
};

const char *theme_element_name(enum theme_element e)
{
    if ((int)e < 0 || e >= TH__COUNT)
        return "?";
    return theme_names_tab[e];
}

void theme_builtin(struct theme *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "default");
    memcpy(out->el, theme_default_el, sizeof out->el);
}

/* A token of a theme line, quoted in a message: printable ASCII only (the
 * message may reach a terminal) and at most 32 bytes. */
static void theme_quote(char *dst, size_t dstlen, const char *s, size_t n)
{
    size_t max = n > 32 ? 32 : n;
    size_t j = 0;
    for (size_t i = 0; i < max && j + 1 < dstlen; i++)
        dst[j++] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    if (n > max && j + 4 < dstlen) {
        memcpy(dst + j, "...", 3);
        j += 3;
    }
    dst[j] = '\0';
}

static bool theme_tok_is(const char *s, size_t n, const char *word)
{
    return strlen(word) == n && memcmp(s, word, n) == 0;
}

/* A colour token: 0 with *c set (-1 for default), or -1. */
static int theme_colour(const char *s, size_t n, short *c)
{
    if (theme_tok_is(s, n, "default")) {
        *c = -1;
        return 0;
    }
    short base = 0;
    if (n > 7 && memcmp(s, "bright-", 7) == 0) {
        base = 8;
        s += 7;
        n -= 7;
    }
    for (short i = 0; i < 8; i++) {
        if (theme_tok_is(s, n, theme_colour_names[i])) {
            *c = (short)(base + i);
            return 0;
        }
    }
    if (base != 0 || n < 6 || n > 8 || memcmp(s, "color", 5) != 0)
        return -1;
    int v = 0;
    for (size_t i = 5; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v > 255)
        return -1;
    *c = (short)v;
    return 0;
}

static int theme_attr(const char *s, size_t n, unsigned *bit)
{
    for (size_t i = 0; i < sizeof theme_attr_names / sizeof theme_attr_names[0]; i++) {
        if (theme_tok_is(s, n, theme_attr_names[i].name)) {
            *bit = theme_attr_names[i].bit;
            return 0;
        }
    }
    return -1;
}

static bool theme_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

/* The next whitespace-separated token of p[*i..end): its start and length,
 * or false at the end. */
static bool theme_next_tok(const char *p, size_t end, size_t *i, const char **tok, size_t *len)
{
    while (*i < end && theme_space(p[*i]))
        (*i)++;
    if (*i == end)
        return false;
    size_t s = *i;
    while (*i < end && !theme_space(p[*i]))
        (*i)++;
    *tok = p + s;
    *len = *i - s;
    return true;
}

/* "normal, title, ..." for messages. */
static void theme_list_elements(struct buf *b)
{
    for (int e = 0; e < TH__COUNT; e++)
        buf_printf(b, "%s%s", e == 0 ? "" : ", ", theme_names_tab[e]);
}

/* Parses one line's right-hand side into *st; 0, or -1 with the message. */
static int theme_parse_style(const char *p, size_t end, const char *origin, unsigned line,
                             const char *elname, struct theme_style *st, char *err, size_t errlen)
{
    char q[40];
    size_t i = 0, len;
    const char *tok;
    if (!theme_next_tok(p, end, &i, &tok, &len)) {
        snprintf(err, errlen, "%s:%u: '%s' has no colour (accepted: %s)", origin, line, elname,
                 THEME_ACCEPTED_COLOURS);
        return -1;
    }
    if (theme_colour(tok, len, &st->fg) != 0) {
        theme_quote(q, sizeof q, tok, len);
        snprintf(err, errlen, "%s:%u: unknown colour '%s' for '%s' (accepted: %s)", origin, line, q,
                 elname, THEME_ACCEPTED_COLOURS);
        return -1;
    }
    st->bg = -1;
    st->attrs = 0;
    bool first = true;
    while (theme_next_tok(p, end, &i, &tok, &len)) {
        unsigned bit;
        if (theme_attr(tok, len, &bit) == 0) {
            st->attrs |= bit;
        } else if (first && theme_colour(tok, len, &st->bg) == 0) {
            /* the background: only right after the foreground */
        } else {
            theme_quote(q, sizeof q, tok, len);
            if (first)
                snprintf(err, errlen,
                         "%s:%u: unknown background colour or attribute '%s' for '%s' "
                         "(accepted colours: %s; attributes: %s)",
                         origin, line, q, elname, THEME_ACCEPTED_COLOURS, THEME_ACCEPTED_ATTRS);
            else
                snprintf(err, errlen, "%s:%u: unknown attribute '%s' for '%s' (accepted: %s)",
                         origin, line, q, elname, THEME_ACCEPTED_ATTRS);
            return -1;
        }
        first = false;
    }
    return 0;
}

int theme_parse(const char *name, const char *text, size_t n, const char *origin, struct theme *out,
                char *err, size_t errlen)
{
    if (origin == NULL)
        origin = "theme";
    struct theme t;
    memset(&t, 0, sizeof t);
    snprintf(t.name, sizeof t.name, "%s", name != NULL ? name : "");
    unsigned set_on[TH__COUNT] = {0}; /* the line that set each element, 0: none */
    unsigned line = 0;
    char q[40];
    size_t pos = 0;
    while (pos < n) {
        line++;
        size_t eol = pos;
        while (eol < n && text[eol] != '\n')
            eol++;
        size_t end = pos;
        while (end < eol && text[end] != '#')
            end++;
        const char *p = text + pos;
        size_t plen = end - pos;
        size_t next = eol < n ? eol + 1 : n;
        size_t i = 0, len;
        const char *tok;
        if (!theme_next_tok(p, plen, &i, &tok, &len)) {
            pos = next; /* blank or a comment */
            continue;
        }
        const char *eq = memchr(p, '=', plen);
        if (eq == NULL) {
            theme_quote(q, sizeof q, tok, len);
            snprintf(err, errlen, "%s:%u: expected ELEMENT = FG [BG] [ATTR...], got '%s'", origin,
                     line, q);
            return -1;
        }
        /* The element is everything before '=', trimmed: one token. */
        size_t elen = (size_t)(eq - p);
        i = 0;
        if (!theme_next_tok(p, elen, &i, &tok, &len)) {
            snprintf(err, errlen,
                     "%s:%u: no element before '=' (expected ELEMENT = FG [BG] [ATTR...])", origin,
                     line);
            return -1;
        }
        int el = -1;
        for (int e = 0; e < TH__COUNT && el < 0; e++)
            if (theme_tok_is(tok, len, theme_names_tab[e]))
                el = e;
        const char *extra;
        size_t extralen;
        if (el < 0 || theme_next_tok(p, elen, &i, &extra, &extralen)) {
            size_t qlen = elen - (size_t)(tok - p);
            while (qlen > 0 && theme_space(tok[qlen - 1]))
                qlen--;
            struct buf b;
            buf_init(&b, 4096);
            theme_list_elements(&b);
            theme_quote(q, sizeof q, tok, qlen);
            snprintf(err, errlen, "%s:%u: unknown element '%s' (accepted: %s)", origin, line, q,
                     buf_cstr(&b));
            buf_free(&b);
            return -1;
        }
        if (set_on[el] != 0) {
            snprintf(err, errlen, "%s:%u: '%s' is set twice (first on line %u)", origin, line,
                     theme_names_tab[el], set_on[el]);
            return -1;
        }
        size_t after = elen + 1;
        if (theme_parse_style(p + after, plen - after, origin, line, theme_names_tab[el], &t.el[el],
                              err, errlen) != 0)
            return -1;
        set_on[el] = line;
        pos = next;
    }
    for (int e = 0; e < TH__COUNT; e++) {
        if (set_on[e] == 0) {
            /* Reported at the last line: the file ended without it. */
            struct buf b;
            buf_init(&b, 4096);
            theme_list_elements(&b);
            snprintf(err, errlen, "%s:%u: '%s' is not set (every element must be named once: %s)",
                     origin, line == 0 ? 1 : line, theme_names_tab[e], buf_cstr(&b));
            buf_free(&b);
            return -1;
        }
    }
    *out = t;
    return 0;
}

static bool theme_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > THEME_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    }
    return true;
}

/* Reads and parses dir/NAME.theme: 0, -1 (message set), or -2 when the
 * file does not exist. */
static int theme_try(const char *dir, const char *name, struct theme *out, char *err, size_t errlen)
{
    char *file = xasprintf("%s.theme", name);
    char *path = paths_join(dir, file);
    xfree(file);
    char *text;
    size_t len;
    int rc = fileio_read_all(path, THEME_FILE_MAX, &text, &len, err, errlen);
    if (rc == 0) {
        rc = theme_parse(name, text, len, path, out, err, errlen);
        xfree(text);
    }
    xfree(path);
    return rc;
}

int theme_load(const char *share_dir, const char *config_dir, const char *name, struct theme *out,
               char *err, size_t errlen)
{
    if (name == NULL || !theme_name_ok(name)) {
        char q[40];
        theme_quote(q, sizeof q, name != NULL ? name : "", name != NULL ? strlen(name) : 0);
        snprintf(err, errlen,
                 "invalid theme name '%s' (accepted: letters, digits, '-', '_' and '.', at most "
                 "%d)",
                 q, THEME_NAME_MAX);
        return -1;
    }
    if (config_dir != NULL && config_dir[0] != '\0') {
        char *dir = paths_join(config_dir, "themes");
        int rc = theme_try(dir, name, out, err, errlen);
        xfree(dir);
        if (rc != -2)
            return rc;
    }
    char *shipped = paths_shipped_dir(share_dir, "themes");
    int rc = theme_try(shipped, name, out, err, errlen);
    if (rc == -2) {
        char **names = theme_names(share_dir, config_dir);
        struct buf b;
        buf_init(&b, 4096);
        for (size_t i = 0; names[i] != NULL; i++)
            buf_printf(&b, "%s%s", i == 0 ? "" : ", ", names[i]);
        if (names[0] == NULL)
            snprintf(err, errlen, "unknown theme '%s' (there are none in %s)", name, shipped);
        else
            snprintf(err, errlen, "unknown theme '%s' (available: %s)", name, buf_cstr(&b));
        buf_free(&b);
        theme_names_free(names);
        rc = -1;
    }
    xfree(shipped);
    return rc;
}

/* Appends the names of dir's *.theme files to *v (n used, cap allocated). */
static void theme_scan(const char *dir, char ***v, size_t *n, size_t *cap)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len <= 6 || strcmp(de->d_name + len - 6, ".theme") != 0)
            continue;
        char *name = xstrndup(de->d_name, len - 6);
        if (!theme_name_ok(name)) {
            xfree(name);
            continue;
        }
        if (*n + 1 >= *cap) {
            *cap = *cap == 0 ? 16 : *cap * 2;
            *v = xreallocarray(*v, *cap, sizeof **v);
        }
        (*v)[(*n)++] = name;
    }
    closedir(d);
}

static int theme_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char **theme_names(const char *share_dir, const char *config_dir)
{
    char **v = NULL;
    size_t n = 0, cap = 0;
    if (config_dir != NULL && config_dir[0] != '\0') {
        char *dir = paths_join(config_dir, "themes");
        theme_scan(dir, &v, &n, &cap);
        xfree(dir);
    }
    char *shipped = paths_shipped_dir(share_dir, "themes");
    theme_scan(shipped, &v, &n, &cap);
    xfree(shipped);
    if (v == NULL)
        return xcalloc(1, sizeof *v);
    qsort(v, n, sizeof *v, theme_cmp);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k > 0 && strcmp(v[k - 1], v[i]) == 0)
            xfree(v[i]);
        else
            v[k++] = v[i];
    }
    v[k] = NULL;
    return v;
}

void theme_names_free(char **names)
{
    if (names == NULL)
        return;
    for (size_t i = 0; names[i] != NULL; i++)
        xfree(names[i]);
    xfree(names);
}

/* xterm's RGB for colour c (0..255). */
static void theme_rgb(int c, int rgb[3])
{
    static const unsigned char base16[16][3] = {
        {0, 0, 0},       {205, 0, 0},   {0, 205, 0},   {205, 205, 0},
        {0, 0, 238},     {205, 0, 205}, {0, 205, 205}, {229, 229, 229},
        {127, 127, 127}, {255, 0, 0},   {0, 255, 0},   {255, 255, 0},
        {92, 92, 255},   {255, 0, 255}, {0, 255, 255}, {255, 255, 255},
    };
    if (c < 16) {
        for (int i = 0; i < 3; i++)
            rgb[i] = base16[c][i];
    } else if (c < 232) {
        int idx = c - 16;
        int lv[3] = {idx / 36, idx / 6 % 6, idx % 6};
        for (int i = 0; i < 3; i++)
            rgb[i] = lv[i] == 0 ? 0 : 55 + 40 * lv[i];
    } else {
        for (int i = 0; i < 3; i++)
            rgb[i] = 8 + 10 * (c - 232);
    }
}

short theme_degrade(short c, int colors)
{
    if (c < 0 || c > 255 || colors < 8)
        return -1;
    if (colors >= 256)
        return c;
    int n = colors >= 16 ? 16 : 8;
    if (c < 16)
        return n == 16 ? c : (short)(c & 7);
    int want[3];
    theme_rgb(c, want);
    /* A grey goes to the nearest grey (black, white, bright black, bright
     * white): by distance alone mid-grey is nearer yellow than white on an
     * 8-colour terminal, and a grey turning into a hue reads as meaning. */
    bool grey = want[0] == want[1] && want[1] == want[2];
    int best = 0;
    long best_d = -1;
    for (int i = 0; i < n; i++) {
        int rgb[3];
        theme_rgb(i, rgb);
        if (grey && !(rgb[0] == rgb[1] && rgb[1] == rgb[2]))
            continue;
        long d = 0;
        for (int k = 0; k < 3; k++)
            d += (long)(rgb[k] - want[k]) * (rgb[k] - want[k]);
        if (best_d < 0 || d < best_d) {
            best_d = d;
            best = i;
        }
    }
    return (short)best;
}
