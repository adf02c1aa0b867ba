/*
 * The settings engine (DESIGN.md, "Contract: configuration"). It is generic
 * over a table of variables: config_load() reads the sources weakest first
 * (table defaults, config.env in the config dir, a working-directory .env,
 * the environment, then "NAME=VALUE" flags), checks every value against its
 * variable's type before storing it, and records where each effective value
 * came from. A bad value is an error even when a stronger source would have
 * replaced it: silently ignoring a line the user wrote hides a mistake.
 *
 * Two rules protect the user. A .env in the working directory may come from
 * a cloned repository, so it may not name commands, endpoints, directories
 * or the master key (a hostile one could otherwise send keys to its own
 * server); that check looks at the name's shape before the unknown-name
 * check, so it also covers variables added later. And a secret's value
 * never appears in full in any message or display (config_quote()).
 *
 * Duration rules: a name ending in _MS takes a bare integer of
 * milliseconds, one ending in _S a bare integer of seconds; any other
 * duration is N (seconds) or N followed by one of s m h d w. All are stored
 * in milliseconds and the table's range is in milliseconds.
 *
 * Computed defaults (memchat's user and directories) come from a hook the
 * table's owner installs (vars.c), run after the sources so that it knows
 * which variables still need one and can fail only when none was given.
 */
#include "config.h"

#include "config/config.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/alloc.h"
#include "util/buf.h"
#include "util/fileio.h"
#include "util/ident.h"
#include "util/paths.h"
#include "util/utf8.h"

extern char **environ;

#define CONFIG_FILE_MAX  (1024 * 1024)        /* config.env and .env */
#define CONFIG_DIR_VAR   "MEMCHAT_CONFIG_DIR" /* where config.env lives */
#define CONFIG_QUOTE_MAX 60                   /* bytes of a value echoed in a message */
#define CONFIG_NAME_MAX  128                  /* longer names get no suggestion */

/* The effective value of one variable. */
struct cfg_val {
    char *text;    /* as given (paths expanded); owned, never NULL */
    long long num; /* CFG_BOOL 0/1, CFG_INT, CFG_DURATION in ms */
    enum cfg_origin origin;
    unsigned line;  /* for the file origins */
    char *computed; /* default from the hook; owned; NULL: the table's */
};

struct config {
    const struct cfg_var *vars;
    size_t n;
    struct cfg_val *vals;
    char **warnings;
    size_t n_warnings;
    char *home; /* HOME of the loaded environment, for ~/ in config_set() */
    bool loaded;
    config_defaults_fn defaults_fn;
};

/* Used to check MEMCHAT_CONFIG_DIR when the table does not list it. */
static const struct cfg_var config_dir_var = {CONFIG_DIR_VAR, CFG_PATH,      NULL,        0, 0,
                                              NULL,           CFG_F_NO_FILE, "config dir"};

/* ---- small helpers ---- */

const char *config_getenv(const char *const *envp, const char *name)
{
    if (envp == NULL)
        return getenv(name);
    size_t n = strlen(name);
    for (const char *const *e = envp; *e != NULL; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
            return *e + n + 1;
    return NULL;
}

char *config_xdg_dir(const char *const *envp, const char *xdg_var, const char *home_fallback)
{
    const char *v = config_getenv(envp, xdg_var);
    if (v != NULL && v[0] == '/')
        return paths_join(v, "memchat");
    const char *home = config_getenv(envp, "HOME");
    if (home == NULL || home[0] == '\0')
        return NULL;
    char *base = paths_join(home, home_fallback);
    char *p = paths_join(base, "memchat");
    xfree(base);
    return p;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Secret masking: "…" + the last 4 characters from 12 characters on,
 * "****" below (a short secret's last 4 would be most of it). */
static void cfg_mask(const char *value, char *out, size_t outlen)
{
    size_t n = strlen(value);
    if (n == 0) {
        snprintf(out, outlen, "%s", "");
        return;
    }
    size_t chars = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)value[i] & 0xC0) != 0x80)
            chars++;
    if (chars < 12 || !utf8_valid(value, n, NULL)) {
        snprintf(out, outlen, "%s", "****");
        return;
    }
    size_t start = n, seen = 0;
    while (start > 0 && seen < 4) {
        start--;
        if (((unsigned char)value[start] & 0xC0) != 0x80)
            seen++;
    }
    snprintf(out, outlen, "\xe2\x80\xa6%s", value + start);
}

const char *config_quote(const struct cfg_var *v, const char *value, char *out, size_t outlen)
{
    if (v != NULL && (v->flags & CFG_F_SECRET)) {
        cfg_mask(value, out, outlen);
        return out;
    }
    struct buf b;
    buf_init(&b, 4 * CONFIG_QUOTE_MAX + 16);
    size_t n = strlen(value);
    for (size_t i = 0; i < n;) {
        if (i >= CONFIG_QUOTE_MAX) {
            buf_puts(&b, "\xe2\x80\xa6");
            break;
        }
        unsigned char c = (unsigned char)value[i];
        if (c < 0x20 || c == 0x7f) {
            buf_printf(&b, "\\x%02x", c);
            i++;
            continue;
        }
        if (c < 0x80) {
            buf_putc(&b, (char)c);
            i++;
            continue;
        }
        size_t bad = 0, len;
        uint32_t cp;
        len = utf8_decode(value + i, n - i, &cp);
        /* Invalid bytes, C1 controls and bidi overrides are escaped byte by
         * byte (the continuation bytes then fail to decode on their own). */
        bool hostile = (cp >= 0x80 && cp <= 0x9f) || (cp >= 0x202a && cp <= 0x202e) ||
                       (cp >= 0x2066 && cp <= 0x2069);
        if (!utf8_valid(value + i, len, &bad) || hostile) {
            buf_printf(&b, "\\x%02x", c);
            i++;
            continue;
        }
        buf_append(&b, value + i, len);
        i += len;
    }
    snprintf(out, outlen, "%s", buf_cstr(&b));
    buf_free(&b);
    return out;
}

/* ---- values ---- */

/* 0 with *out set when s is an optional '-' and decimal digits that fit a
 * long long; -1 otherwise (strtoll alone accepts spaces, '+' and junk). */
static int cfg_parse_ll(const char *s, bool allow_minus, long long *out)
{
    const char *p = s;
    if (allow_minus && *p == '-')
        p++;
    if (*p == '\0')
        return -1;
    for (const char *q = p; *q != '\0'; q++)
        if (*q < '0' || *q > '9')
            return -1;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

/* A plain decimal number ("0.7", "2", "-1.5e-3" is refused: no exponent,
 * no sign but '-', no hex, no inf/nan) into *out. 0 or -1. */
static int cfg_parse_number(const char *s, double *out)
{
    const char *p = s[0] == '-' ? s + 1 : s;
    size_t int_digits = strspn(p, "0123456789");
    const char *q = p + int_digits;
    size_t frac_digits = 0;
    if (*q == '.')
        frac_digits = strspn(q + 1, "0123456789");
    if (int_digits + frac_digits == 0 || q[*q == '.' ? frac_digits + 1 : 0] != '\0')
        return -1;
    errno = 0;
    char *end = NULL;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

/* ms as the largest unit that divides it exactly: "7d", "90s", "250ms". */
static void cfg_fmt_ms(long long ms, char *out, size_t outlen)
{
    static const struct {
        long long ms;
        const char *unit;
    } units[] = {
        {604800000LL, "w"}, {86400000LL, "d"}, {3600000LL, "h"}, {60000LL, "m"}, {1000LL, "s"}};
    if (ms == 0) {
        snprintf(out, outlen, "0s");
        return;
    }
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (ms % units[i].ms == 0) {
            snprintf(out, outlen, "%lld%s", ms / units[i].ms, units[i].unit);
            return;
        }
    snprintf(out, outlen, "%lldms", ms);
}

/* What a duration variable accepts, for messages. */
static void cfg_duration_accepted(const struct cfg_var *v, char *out, size_t outlen)
{
    char lo[32], hi[32];
    cfg_fmt_ms(v->min, lo, sizeof lo);
    cfg_fmt_ms(v->max, hi, sizeof hi);
    if (ends_with(v->name, "_MS"))
        snprintf(out, outlen, "an integer number of milliseconds, %lld..%lld", v->min, v->max);
    else if (ends_with(v->name, "_S") && v->min % 1000 == 0 && v->max % 1000 == 0)
        snprintf(out, outlen, "an integer number of seconds, %lld..%lld", v->min / 1000,
                 v->max / 1000);
    else if (ends_with(v->name, "_S"))
        snprintf(out, outlen, "an integer number of seconds, %s..%s", lo, hi);
    else
        snprintf(out, outlen, "N, or N followed by s, m, h, d or w (bare N is seconds), %s..%s", lo,
                 hi);
}

/* The duration in ms, or -1 (syntax) / -2 (out of range). */
static int cfg_parse_duration(const struct cfg_var *v, const char *s, long long *ms)
{
    long long mult = 1000;
    size_t n = strlen(s);
    char digits[32];
    if (ends_with(v->name, "_MS")) {
        mult = 1;
    } else if (!ends_with(v->name, "_S") && n > 0 && strchr("smhdw", s[n - 1]) != NULL) {
        switch (s[n - 1]) {
        case 'm':
            mult = 60000LL;
            break;
        case 'h':
            mult = 3600000LL;
            break;
        case 'd':
            mult = 86400000LL;
            break;
        case 'w':
            mult = 604800000LL;
            break;
        default:
            break;
        }
        n--;
    }
    if (n == 0 || strspn(s, "0123456789") != n)
        return -1;
    if (n >= sizeof digits)
        return -2;
    memcpy(digits, s, n);
    digits[n] = '\0';
    long long count;
    if (cfg_parse_ll(digits, false, &count) != 0)
        return -2; /* only digits, so it failed by overflowing */
    if (count > LLONG_MAX / mult)
        return -2;
    *ms = count * mult;
    if (*ms < v->min || *ms > v->max)
        return -2;
    return 0;
}

static bool cfg_parse_bool(const char *s, long long *out)
{
    static const char *const yes[] = {"true", "1", "yes", "on"};
    static const char *const no[] = {"false", "0", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return true;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return true;
        }
    }
    return false;
}

static bool cfg_enum_has(const char *choices, const char *s)
{
    size_t n = strlen(s);
    for (const char *c = choices; c != NULL && *c != '\0';) {
        const char *bar = strchr(c, '|');
        size_t len = bar != NULL ? (size_t)(bar - c) : strlen(c);
        if (len == n && n > 0 && strncmp(c, s, n) == 0)
            return true;
        c = bar != NULL ? bar + 1 : NULL;
    }
    return false;
}

/* Checks value for v; on success *text (owned, may be NULL when not
 * wanted) is the stored form and *num the number. home expands ~/ in paths
 * (NULL: leave it, as config_check_value() does). */
static int cfg_parse(const struct cfg_var *v, const char *value, const char *source, bool expand,
                     const char *home, char **text, long long *num, char *err, size_t errlen)
{
    char shown[4 * CONFIG_QUOTE_MAX + 32];
    config_quote(v, value, shown, sizeof shown);
    long long n = 0;
    if (!utf8_valid(value, strlen(value), NULL)) {
        snprintf(err, errlen, "%s: %s: '%s' is not valid UTF-8", source, v->name, shown);
        return -1;
    }
    switch (v->type) {
    case CFG_BOOL:
        if (!cfg_parse_bool(value, &n)) {
            snprintf(err, errlen,
                     "%s: %s: '%s' is not a boolean (accepted: true|false|1|0|yes|no|on|off)",
                     source, v->name, shown);
            return -1;
        }
        break;
    case CFG_INT:
        if (cfg_parse_ll(value, true, &n) != 0) {
            /* Digits that do not fit are a range problem, not a syntax one. */
            const char *d = value[0] == '-' ? value + 1 : value;
            bool digits = *d != '\0' && strspn(d, "0123456789") == strlen(d);
            snprintf(err, errlen, "%s: %s: '%s' is not %s (accepted: %lld..%lld)", source, v->name,
                     shown, digits ? "in range" : "an integer", v->min, v->max);
            return -1;
        }
        if (n < v->min || n > v->max) {
            snprintf(err, errlen, "%s: %s: '%s' is not in range (accepted: %lld..%lld)", source,
                     v->name, shown, v->min, v->max);
            return -1;
        }
        break;
    case CFG_DURATION: {
        int rc = cfg_parse_duration(v, value, &n);
        if (rc != 0) {
            char acc[160];
            cfg_duration_accepted(v, acc, sizeof acc);
            snprintf(err, errlen, "%s: %s: '%s' is not %s (accepted: %s)", source, v->name, shown,
                     rc == -2 ? "in range" : "a duration", acc);
            return -1;
        }
        break;
    }
    case CFG_NUMBER: {
        double d = 0;
        if (value[0] == '\0')
            break; /* unset: the consumer's default */
        if (cfg_parse_number(value, &d) != 0 || d < (double)v->min || d > (double)v->max) {
            snprintf(err, errlen,
                     "%s: %s: '%s' is not %s (accepted: a decimal number %lld..%lld, "
                     "or empty for the default)",
                     source, v->name, shown,
                     cfg_parse_number(value, &d) != 0 ? "a number" : "in range", v->min, v->max);
            return -1;
        }
        break;
    }
    case CFG_STRING:
        break;
    case CFG_ID:
        if (!ident_valid(value)) {
            snprintf(err, errlen,
                     "%s: %s: '%s' is not an id (accepted: 1 to %d characters of A-Z a-z 0-9 _ "
                     "-)",
                     source, v->name, shown, IDENT_MAX);
            return -1;
        }
        break;
    case CFG_ENUM:
        if (!cfg_enum_has(v->choices, value)) {
            snprintf(err, errlen, "%s: %s: '%s' is not one of the choices (accepted: %s)", source,
                     v->name, shown, v->choices != NULL ? v->choices : "");
            return -1;
        }
        break;
    case CFG_PATH:
        if (value[0] == '\0') {
            snprintf(err, errlen,
                     "%s: %s: '' is not a path (accepted: a non-empty path; ~/ means $HOME)",
                     source, v->name);
            return -1;
        }
        if (expand && (strcmp(value, "~") == 0 || starts_with(value, "~/"))) {
            if (home == NULL || home[0] == '\0') {
                snprintf(err, errlen,
                         "%s: %s: '%s' is not a path memchat can expand: HOME is not set "
                         "(accepted: a path, with ~/ only when HOME is set)",
                         source, v->name, shown);
                return -1;
            }
            if (text != NULL)
                *text = value[1] == '\0' ? xstrdup(home) : paths_join(home, value + 2);
            *num = 0;
            return 0;
        }
        break;
    }
    if (text != NULL)
        *text = xstrdup(value);
    *num = n;
    return 0;
}

int config_check_value(const struct cfg_var *v, const char *value, const char *source, char *err,
                       size_t errlen)
{
    long long num;
    return cfg_parse(v, value, source, false, NULL, NULL, &num, err, errlen);
}

/* Parses and stores value as id's effective value from origin. */
static int cfg_store(struct config *cfg, int id, const char *value, const char *source,
                     enum cfg_origin origin, unsigned line, char *err, size_t errlen)
{
    char *text = NULL;
    long long num = 0;
    if (cfg_parse(&cfg->vars[id], value, source, true, cfg->home, &text, &num, err, errlen) != 0)
        return -1;
    struct cfg_val *val = &cfg->vals[id];
    xfree(val->text);
    val->text = text;
    val->num = num;
    val->origin = origin;
    val->line = line;
    return 0;
}

/* Back to the table's defaults; a bad default is a bug in the table. */
static void cfg_reset(struct config *cfg)
{
    for (size_t i = 0; i < cfg->n; i++) {
        struct cfg_val *val = &cfg->vals[i];
        xfree(val->text);
        xfree(val->computed);
        val->computed = NULL;
        val->text = NULL;
        val->num = 0;
        val->origin = CFG_FROM_DEFAULT;
        val->line = 0;
        const char *d = cfg->vars[i].dflt;
        if (d == NULL || d[0] == '\0') {
            /* Empty: unset (a path or string) or computed later. */
            val->text = xstrdup("");
            continue;
        }
        char err[512];
        int rc = cfg_store(cfg, (int)i, d, "default", CFG_FROM_DEFAULT, 0, err, sizeof err);
        assert(rc == 0 && "invalid default in a config table (test_config checks them)");
        if (rc != 0)
            val->text = xstrdup(d);
    }
    for (size_t i = 0; i < cfg->n_warnings; i++)
        xfree(cfg->warnings[i]);
    xfree(cfg->warnings);
    cfg->warnings = NULL;
    cfg->n_warnings = 0;
}

/* ---- life cycle ---- */

struct config *config_new(const struct cfg_var *vars, size_t n)
{
    struct config *cfg = xcalloc(1, sizeof *cfg);
    cfg->vars = vars;
    cfg->n = n;
    cfg->vals = xcalloc(n > 0 ? n : 1, sizeof *cfg->vals);
    cfg_reset(cfg);
    return cfg;
}

void config_free(struct config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->n; i++) {
        xfree(cfg->vals[i].text);
        xfree(cfg->vals[i].computed);
    }
    for (size_t i = 0; i < cfg->n_warnings; i++)
        xfree(cfg->warnings[i]);
    xfree(cfg->warnings);
    xfree(cfg->vals);
    xfree(cfg->home);
    xfree(cfg);
}

void config_set_defaults_fn(struct config *cfg, config_defaults_fn fn)
{
    cfg->defaults_fn = fn;
}

void config_add_warning(struct config *cfg, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *w = xvasprintf(fmt, ap);
    va_end(ap);
    cfg->warnings = xreallocarray(cfg->warnings, cfg->n_warnings + 1, sizeof *cfg->warnings);
    cfg->warnings[cfg->n_warnings++] = w;
}

int config_set_default(struct config *cfg, int id, const char *value, char *err, size_t errlen)
{
    assert(id >= 0 && (size_t)id < cfg->n);
    long long num;
    if (cfg_parse(&cfg->vars[id], value, "default", false, NULL, NULL, &num, err, errlen) != 0)
        return -1;
    struct cfg_val *val = &cfg->vals[id];
    xfree(val->computed);
    val->computed = xstrdup(value);
    if (val->origin == CFG_FROM_DEFAULT)
        return cfg_store(cfg, id, value, "default", CFG_FROM_DEFAULT, 0, err, errlen);
    return 0;
}

/* ---- unknown names ---- */

/* Optimal string alignment distance (Damerau-Levenshtein with adjacent
 * transpositions), case-insensitive so "memchat_tenant" finds its match. */
static size_t cfg_distance(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    size_t rows[3][CONFIG_NAME_MAX + 1];
    size_t *pp = rows[0], *prev = rows[1], *cur = rows[2];
    for (size_t j = 0; j <= m; j++)
        prev[j] = j;
    for (size_t i = 1; i <= n; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= m; j++) {
            int ca = tolower((unsigned char)a[i - 1]), cb = tolower((unsigned char)b[j - 1]);
            size_t cost = ca == cb ? 0 : 1;
            size_t best = prev[j] + 1;
            if (cur[j - 1] + 1 < best)
                best = cur[j - 1] + 1;
            if (prev[j - 1] + cost < best)
                best = prev[j - 1] + cost;
            if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == cb && pp[j - 2] + 1 < best)
                best = pp[j - 2] + 1;
            cur[j] = best;
        }
        size_t *t = pp;
        pp = prev;
        prev = cur;
        cur = t;
    }
    return prev[m];
}

/* " (did you mean X?)" for the closest known name when it is close, else "". */
static void cfg_suggest(const struct config *cfg, const char *name, char *out, size_t outlen)
{
    out[0] = '\0';
    size_t len = strlen(name);
    if (len > CONFIG_NAME_MAX)
        return;
    size_t limit = len / 3 > 2 ? len / 3 : 2;
    size_t best = SIZE_MAX;
    const char *best_name = NULL;
    for (size_t i = 0; i < cfg->n; i++) {
        const char *cand = cfg->vars[i].name;
        if (strlen(cand) > CONFIG_NAME_MAX)
            continue;
        size_t d = cfg_distance(name, cand);
        if (d < best) {
            best = d;
            best_name = cand;
        }
    }
    if (best_name != NULL && best <= limit)
        snprintf(out, outlen, " (did you mean %s?)", best_name);
}

/* A name a working-directory .env may not set, whether known or not.
 * PINECONE_INDEX_HOST is a URL under another name: a .env that set it
 * would send the Pinecone key to a host of its choosing. */
static bool cfg_untrusted_name(const char *name)
{
    return ends_with(name, "_CMD") || ends_with(name, "_URL") || ends_with(name, "_URL_OVERRIDE") ||
           strcmp(name, "PINECONE_INDEX_HOST") == 0 ||
           (starts_with(name, "MEMCHAT_") && ends_with(name, "_DIR") &&
            strlen(name) > strlen("MEMCHAT_DIR")) ||
           strcmp(name, "MEMCHAT_MASTER_KEY") == 0 ||
           strcmp(name, "TOOL_CREDENTIALS_ENCRYPTION_KEY") == 0;
}

/* ---- files ---- */

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_name_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool is_name_char(char c)
{
    return is_name_start(c) || (c >= '0' && c <= '9');
}

/* What is wrong with a line, for the message. */
enum line_result { LINE_OK, LINE_SKIP, LINE_BAD };

/* Splits one line (NUL-terminated, no newline) into *name and *value
 * (both owned by the caller on LINE_OK); *why says what is malformed. */
static enum line_result cfg_parse_line(const char *s, char **name, char **value, const char **why)
{
    const char *p = s;
    while (is_blank(*p))
        p++;
    if (*p == '\0' || *p == '#')
        return LINE_SKIP;
    if (strncmp(p, "export", 6) == 0 && is_blank(p[6])) {
        p += 6;
        while (is_blank(*p))
            p++;
    }
    const char *n0 = p;
    if (!is_name_start(*p)) {
        *why = "bad name";
        return LINE_BAD;
    }
    while (is_name_char(*p))
        p++;
    if (*p != '=') {
        *why = strchr(p, '=') != NULL ? "bad name" : "no '='";
        return LINE_BAD;
    }
    size_t name_len = (size_t)(p - n0);
    p++;
    while (is_blank(*p))
        p++;
    struct buf b;
    buf_init(&b, CONFIG_FILE_MAX);
    const char *rest;
    if (*p == '\'') {
        const char *close = strchr(p + 1, '\'');
        if (close == NULL) {
            buf_free(&b);
            *why = "unterminated quote";
            return LINE_BAD;
        }
        buf_append(&b, p + 1, (size_t)(close - p - 1));
        rest = close + 1;
    } else if (*p == '"') {
        const char *q = p + 1;
        for (;; q++) {
            if (*q == '\0') {
                buf_free(&b);
                *why = "unterminated quote";
                return LINE_BAD;
            }
            if (*q == '"')
                break;
            if (*q == '\\' && (q[1] == '"' || q[1] == '\\')) {
                buf_putc(&b, q[1]);
                q++;
            } else if (*q == '\\' && q[1] == 'n') {
                buf_putc(&b, '\n');
                q++;
            } else {
                /* Any other backslash stays, as in the shell. */
                buf_putc(&b, *q);
            }
        }
        rest = q + 1;
    } else {
        /* Unquoted: a # after whitespace starts a comment; the value is
         * trimmed. q[-1] is at worst the '=', so a # right after it is part
         * of the value. */
        const char *end = p;
        for (const char *q = p; *q != '\0'; q++) {
            if (*q == '#' && is_blank(q[-1]))
                break;
            end = q + 1;
        }
        while (end > p && is_blank(end[-1]))
            end--;
        buf_append(&b, p, (size_t)(end - p));
        rest = "";
    }
    while (is_blank(*rest))
        rest++;
    if (*rest != '\0' && *rest != '#') {
        buf_free(&b);
        *why = "text after the closing quote";
        return LINE_BAD;
    }
    *name = xstrndup(n0, name_len);
    *value = buf_take(&b);
    return LINE_OK;
}

/* Applies one NAME=VALUE from a file (origin config.env or .env). */
static int cfg_apply_file_var(struct config *cfg, const char *label, enum cfg_origin origin,
                              unsigned line, const char *name, const char *value,
                              const char *config_dir, char *err, size_t errlen)
{
    if (origin == CFG_FROM_DOTENV && cfg_untrusted_name(name)) {
        snprintf(err, errlen,
                 "%s:%u: %s may not be set in a working-directory .env (it is untrusted); move it "
                 "to config.env in %s or set it in the environment",
                 label, line, name, config_dir);
        return -1;
    }
    int id = config_find(cfg, name);
    if (id < 0) {
        char hint[CONFIG_NAME_MAX + 32];
        cfg_suggest(cfg, name, hint, sizeof hint);
        snprintf(err, errlen, "%s:%u: unknown setting %s%s", label, line, name, hint);
        return -1;
    }
    if (cfg->vars[id].flags & CFG_F_NO_FILE) {
        snprintf(err, errlen,
                 "%s:%u: %s cannot be set in %s; set it in the environment or with --set", label,
                 line, name, label);
        return -1;
    }
    char source[64];
    snprintf(source, sizeof source, "%s:%u", label, line);
    return cfg_store(cfg, id, value, source, origin, line, err, errlen);
}

/* Reads and applies path; a missing file is fine. */
static int cfg_load_file(struct config *cfg, const char *path, const char *label,
                         enum cfg_origin origin, const char *config_dir, char *err, size_t errlen)
{
    char *data = NULL;
    size_t len = 0;
    char ferr[512];
    int rc = fileio_read_all(path, CONFIG_FILE_MAX, &data, &len, ferr, sizeof ferr);
    if (rc == -2)
        return 0;
    if (rc != 0) {
        snprintf(err, errlen, "%s", ferr); /* names the path and the reason */
        return -1;
    }
    size_t bad = 0;
    const char *nul = memchr(data, '\0', len);
    if (nul != NULL || !utf8_valid(data, len, &bad)) {
        size_t at = nul != NULL ? (size_t)(nul - data) : bad;
        unsigned line = 1;
        for (size_t i = 0; i < at; i++)
            line += data[i] == '\n';
        snprintf(err, errlen, "%s:%u: %s (%s must be UTF-8 text)", label, line,
                 nul != NULL ? "NUL byte" : "invalid UTF-8", path);
        xfree(data);
        return -1;
    }
    rc = 0;
    unsigned line = 0;
    for (char *s = data; rc == 0 && s < data + len;) {
        char *nl = memchr(s, '\n', (size_t)(data + len - s));
        char *end = nl != NULL ? nl : data + len;
        line++;
        *end = '\0';
        if (end > s && end[-1] == '\r')
            end[-1] = '\0';
        char *name = NULL, *value = NULL;
        const char *why = "";
        enum line_result lr = cfg_parse_line(s, &name, &value, &why);
        if (lr == LINE_BAD) {
            snprintf(err, errlen, "%s:%u: malformed line: expected NAME=VALUE (%s)", label, line,
                     why);
            rc = -1;
        } else if (lr == LINE_OK) {
            rc = cfg_apply_file_var(cfg, label, origin, line, name, value, config_dir, err, errlen);
        }
        xfree(name);
        xfree(value);
        s = end + 1;
    }
    xfree(data);
    return rc;
}

/* ---- environment and flags ---- */

static int cfg_load_environ(struct config *cfg, const char *const *envp, char *err, size_t errlen)
{
    const char *const *e = envp != NULL ? envp : (const char *const *)environ;
    for (; e != NULL && *e != NULL; e++) {
        const char *eq = strchr(*e, '=');
        if (eq == NULL || eq == *e)
            continue;
        size_t n = (size_t)(eq - *e);
        char name[CONFIG_NAME_MAX + 1];
        if (n > CONFIG_NAME_MAX) {
            /* Too long to be ours; warn only about a MEMCHAT_ one. */
            if (strncmp(*e, "MEMCHAT_", 8) == 0)
                config_add_warning(cfg, "environment: unknown setting %.*s…", 40, *e);
            continue;
        }
        memcpy(name, *e, n);
        name[n] = '\0';
        int id = config_find(cfg, name);
        if (id < 0) {
            /* MEMCHAT_FAULT_*: the fault-injection seams of the hardening
             * tests (util/alloc, util/iofault), read before the config. */
            if (starts_with(name, "MEMCHAT_") && !starts_with(name, "MEMCHAT_FAULT_")) {
                char hint[CONFIG_NAME_MAX + 32];
                cfg_suggest(cfg, name, hint, sizeof hint);
                config_add_warning(cfg, "environment: unknown setting %s%s", name, hint);
            }
            continue;
        }
        /* getenv() takes the first of duplicated names; so do we. */
        if (cfg->vals[id].origin == CFG_FROM_ENV)
            continue;
        if (cfg_store(cfg, id, eq + 1, "environment", CFG_FROM_ENV, 0, err, errlen) != 0)
            return -1;
    }
    return 0;
}

/* Splits "NAME=VALUE"; -1 with a message when there is no NAME. */
static int cfg_split_flag(const char *flag, char *name, size_t namelen, const char **value,
                          char *err, size_t errlen)
{
    const char *eq = strchr(flag, '=');
    if (eq == NULL || eq == flag) {
        /* A bare name is shown; other text may be a misplaced secret. */
        static const struct cfg_var masked = {"", CFG_STRING, NULL, 0, 0, NULL, CFG_F_SECRET, ""};
        bool is_name = flag[0] != '\0' &&
                       strspn(flag, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                    "abcdefghijklmnopqrstuvwxyz0123456789_") == strlen(flag);
        char shown[4 * CONFIG_QUOTE_MAX + 32];
        snprintf(err, errlen, "--set: '%s' is not NAME=VALUE",
                 config_quote(is_name ? NULL : &masked, flag, shown, sizeof shown));
        return -1;
    }
    if ((size_t)(eq - flag) >= namelen) {
        snprintf(err, errlen, "--set: unknown setting %.40s\xe2\x80\xa6 (name too long)", flag);
        return -1;
    }
    memcpy(name, flag, (size_t)(eq - flag));
    name[eq - flag] = '\0';
    *value = eq + 1;
    return 0;
}

static int cfg_load_flags(struct config *cfg, const char *const *flags, size_t n, char *err,
                          size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        char name[CONFIG_NAME_MAX + 1];
        const char *value;
        if (cfg_split_flag(flags[i], name, sizeof name, &value, err, errlen) != 0)
            return -1;
        int id = config_find(cfg, name);
        if (id < 0) {
            char hint[CONFIG_NAME_MAX + 32];
            cfg_suggest(cfg, name, hint, sizeof hint);
            snprintf(err, errlen, "--set: unknown setting %s%s", name, hint);
            return -1;
        }
        if (cfg_store(cfg, id, value, "--set", CFG_FROM_FLAG, 0, err, errlen) != 0)
            return -1;
    }
    return 0;
}

/* The config dir: opts->config_dir, else MEMCHAT_CONFIG_DIR from the flags
 * (the last wins, as for any flag), else from the environment, else the
 * XDG default. Caller frees *dir. */
static int cfg_resolve_dir(const struct config *cfg, const struct config_load_opts *opts,
                           char **dir, char *err, size_t errlen)
{
    if (opts->config_dir != NULL) {
        *dir = xstrdup(opts->config_dir);
        return 0;
    }
    int id = config_find(cfg, CONFIG_DIR_VAR);
    const struct cfg_var *v = id >= 0 ? &cfg->vars[id] : &config_dir_var;
    long long num;
    const char *from_flag = NULL;
    for (size_t i = 0; i < opts->n_flags; i++) {
        size_t n = strlen(CONFIG_DIR_VAR);
        if (strncmp(opts->flags[i], CONFIG_DIR_VAR, n) == 0 && opts->flags[i][n] == '=')
            from_flag = opts->flags[i] + n + 1;
    }
    if (from_flag != NULL)
        return cfg_parse(v, from_flag, "--set", true, cfg->home, dir, &num, err, errlen);
    const char *from_env = config_getenv(opts->environ, CONFIG_DIR_VAR);
    if (from_env != NULL)
        return cfg_parse(v, from_env, "environment", true, cfg->home, dir, &num, err, errlen);
    *dir = opts->environ != NULL ? config_xdg_dir(opts->environ, "XDG_CONFIG_HOME", ".config")
                                 : paths_default_config_dir();
    if (*dir == NULL) {
        snprintf(err, errlen,
                 "cannot find the config dir: HOME is not set (nor an absolute XDG_CONFIG_HOME); "
                 "set HOME, or set %s in the environment or with --set",
                 CONFIG_DIR_VAR);
        return -1;
    }
    return 0;
}

int config_load(struct config *cfg, const struct config_load_opts *opts, char *err, size_t errlen)
{
    static const struct config_load_opts none;
    if (opts == NULL)
        opts = &none;
    cfg_reset(cfg);
    xfree(cfg->home);
    const char *home = config_getenv(opts->environ, "HOME");
    cfg->home = home != NULL && home[0] != '\0' ? xstrdup(home) : NULL;
    cfg->loaded = true;

    char *dir = NULL;
    if (cfg_resolve_dir(cfg, opts, &dir, err, errlen) != 0)
        return -1;
    char *path = paths_join(dir, "config.env");
    int rc = cfg_load_file(cfg, path, "config.env", CFG_FROM_CONFIG_ENV, dir, err, errlen);
    xfree(path);
    const char *dotenv = opts->dotenv_path != NULL ? opts->dotenv_path : "./.env";
    if (rc == 0 && dotenv[0] != '\0')
        rc = cfg_load_file(cfg, dotenv, ".env", CFG_FROM_DOTENV, dir, err, errlen);
    if (rc == 0)
        rc = cfg_load_environ(cfg, opts->environ, err, errlen);
    if (rc == 0)
        rc = cfg_load_flags(cfg, opts->flags, opts->n_flags, err, errlen);
    if (rc == 0 && opts->config_dir != NULL) {
        int id = config_find(cfg, CONFIG_DIR_VAR);
        if (id >= 0)
            rc = cfg_store(cfg, id, dir, "--set", CFG_FROM_FLAG, 0, err, errlen);
    }
    if (rc == 0 && cfg->defaults_fn != NULL)
        rc = cfg->defaults_fn(cfg, opts->environ, dir, err, errlen);
    xfree(dir);
    return rc;
}

int config_set(struct config *cfg, int id, const char *value, char *err, size_t errlen)
{
    assert(id >= 0 && (size_t)id < cfg->n);
    if (!cfg->loaded && cfg->home == NULL) {
        const char *home = getenv("HOME");
        cfg->home = home != NULL && home[0] != '\0' ? xstrdup(home) : NULL;
    }
    return cfg_store(cfg, id, value, "--set", CFG_FROM_FLAG, 0, err, errlen);
}

/* ---- getters ---- */

static const struct cfg_val *cfg_val(const struct config *cfg, int id, enum cfg_type want)
{
    assert(id >= 0 && (size_t)id < cfg->n);
    assert(cfg->vars[id].type == want);
    (void)want;
    return &cfg->vals[id];
}

bool config_bool(const struct config *cfg, int id)
{
    return cfg_val(cfg, id, CFG_BOOL)->num != 0;
}

long long config_int(const struct config *cfg, int id)
{
    return cfg_val(cfg, id, CFG_INT)->num;
}

long long config_duration_ms(const struct config *cfg, int id)
{
    return cfg_val(cfg, id, CFG_DURATION)->num;
}

double config_number(const struct config *cfg, int id)
{
    const char *text = cfg_val(cfg, id, CFG_NUMBER)->text;
    double d = NAN;
    if (text[0] != '\0' && cfg_parse_number(text, &d) != 0)
        d = NAN;
    return d;
}

const char *config_str(const struct config *cfg, int id)
{
    assert(id >= 0 && (size_t)id < cfg->n);
    enum cfg_type t = cfg->vars[id].type;
    assert(t == CFG_STRING || t == CFG_ID || t == CFG_ENUM || t == CFG_PATH || t == CFG_NUMBER);
    (void)t;
    return cfg->vals[id].text;
}

int config_find(const struct config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n; i++)
        if (strcmp(cfg->vars[i].name, name) == 0)
            return (int)i;
    return -1;
}

size_t config_count(const struct config *cfg)
{
    return cfg->n;
}

const struct cfg_var *config_var(const struct config *cfg, int id)
{
    assert(id >= 0 && (size_t)id < cfg->n);
    return &cfg->vars[id];
}

const char *config_display(const struct config *cfg, int id, char *out, size_t outlen)
{
    assert(id >= 0 && (size_t)id < cfg->n);
    if (cfg->vars[id].flags & CFG_F_SECRET)
        cfg_mask(cfg->vals[id].text, out, outlen);
    else
        snprintf(out, outlen, "%s", cfg->vals[id].text);
    return out;
}

const char *config_source(const struct config *cfg, int id, char *out, size_t outlen)
{
    assert(id >= 0 && (size_t)id < cfg->n);
    const struct cfg_val *val = &cfg->vals[id];
    switch (val->origin) {
    case CFG_FROM_DEFAULT:
        snprintf(out, outlen, "default");
        break;
    case CFG_FROM_CONFIG_ENV:
        snprintf(out, outlen, "config.env:%u", val->line);
        break;
    case CFG_FROM_DOTENV:
        snprintf(out, outlen, ".env:%u", val->line);
        break;
    case CFG_FROM_ENV:
        snprintf(out, outlen, "env");
        break;
    case CFG_FROM_FLAG:
        snprintf(out, outlen, "flag");
        break;
    }
    return out;
}

enum cfg_origin config_origin(const struct config *cfg, int id)
{
    assert(id >= 0 && (size_t)id < cfg->n);
    return cfg->vals[id].origin;
}

const char *config_default(const struct config *cfg, int id)
{
    assert(id >= 0 && (size_t)id < cfg->n);
    if (cfg->vals[id].computed != NULL)
        return cfg->vals[id].computed;
    return cfg->vars[id].dflt != NULL ? cfg->vars[id].dflt : "";
}

size_t config_warning_count(const struct config *cfg)
{
    return cfg->n_warnings;
}

const char *config_warning(const struct config *cfg, size_t i)
{
    assert(i < cfg->n_warnings);
    return cfg->warnings[i];
}
