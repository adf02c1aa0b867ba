/*
 * Strict reading of small JSON description files (see jsonfile.h): the
 * bounded warning list, the per-file error and warnings, the capped read
 * with line and column for every failure, and the field checkers that
 * word every message "what is wrong (what is accepted)".
 */
#include "config.h"

#include "util/jsonfile.h"

#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/fileio.h"
#include "util/json.h"
#include "util/utf8.h"

void jsonfile_warnings_init(struct jsonfile_warnings *w, size_t max_lines)
{
    buf_init(&w->text, (max_lines + 2) * (JSONFILE_LINE_MAX + 1));
    w->lines = 0;
    w->max_lines = max_lines;
    w->dropped = 0;
}

void jsonfile_warnings_free(struct jsonfile_warnings *w)
{
    buf_free(&w->text);
    w->lines = 0;
    w->dropped = 0;
}

void jsonfile_warnings_add(struct jsonfile_warnings *w, const char *line, bool over_cap)
{
    if (w->lines >= w->max_lines && !over_cap) {
        w->dropped++;
        return;
    }
    char clean[JSONFILE_LINE_MAX];
    size_t n = strlen(line);
    if (n >= sizeof clean)
        n = sizeof clean - 1;
    n -= utf8_incomplete_tail(line, n);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)line[i];
        clean[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    clean[n] = '\0';
    if (w->lines > 0)
        (void)buf_putc(&w->text, '\n');
    (void)buf_puts(&w->text, clean);
    w->lines++;
}

void jsonfile_warnings_addf(struct jsonfile_warnings *w, const char *fmt, ...)
{
    char line[JSONFILE_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    jsonfile_warnings_add(w, line, false);
}

char *jsonfile_warnings_take(struct jsonfile_warnings *w)
{
    if (w->dropped > 0) {
        char line[128];
        snprintf(line, sizeof line, "(%zu more warnings not shown)", w->dropped);
        jsonfile_warnings_add(w, line, true);
    }
    char *out = w->lines > 0 ? buf_take(&w->text) : NULL;
    jsonfile_warnings_free(w);
    return out;
}

void jsonfile_parse_init(struct jsonfile_parse *p, const char *path, const char *thing,
                         size_t max_warnings)
{
    p->path = path;
    p->thing = thing;
    p->err[0] = '\0';
    jsonfile_warnings_init(&p->warn, max_warnings);
}

void jsonfile_parse_fini(struct jsonfile_parse *p)
{
    jsonfile_warnings_free(&p->warn);
}

int jsonfile_fail(struct jsonfile_parse *p, const char *field, const char *fmt, ...)
{
    char msg[JSONFILE_LINE_MAX / 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (field != NULL)
        snprintf(p->err, sizeof p->err, "%s: field %s: %s", p->path, field, msg);
    else
        snprintf(p->err, sizeof p->err, "%s: %s", p->path, msg);
    return -1;
}

void jsonfile_warn(struct jsonfile_parse *p, const char *fmt, ...)
{
    char msg[JSONFILE_LINE_MAX / 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    jsonfile_warnings_addf(&p->warn, "%s: %s", p->path, msg);
}

void jsonfile_warnings_merge(struct jsonfile_warnings *w, struct jsonfile_parse *p)
{
    const char *lines = buf_cstr(&p->warn.text);
    while (p->warn.lines > 0 && *lines != '\0') {
        const char *nl = strchr(lines, '\n');
        size_t n = nl != NULL ? (size_t)(nl - lines) : strlen(lines);
        char line[JSONFILE_LINE_MAX];
        snprintf(line, sizeof line, "%.*s", (int)n, lines);
        jsonfile_warnings_add(w, line, false);
        lines += n + (nl != NULL);
    }
    if (p->warn.dropped > 0)
        jsonfile_warnings_addf(w, "%s: %zu more warnings about this file not shown", p->path,
                               p->warn.dropped);
    jsonfile_warnings_free(&p->warn);
}

void jsonfile_line_col(const char *text, size_t off, size_t *line, size_t *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && text[i] != '\0'; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '\n') {
            (*line)++;
            *col = 1;
        } else if ((c & 0xc0) != 0x80) {
            (*col)++;
        }
    }
}

/* Checks that p->path is a regular file of at most max bytes. Checked
 * before opening: opening a FIFO would block the front end. */
static int jsonfile_check_stat(struct jsonfile_parse *p, size_t max)
{
    struct stat st;
    if (stat(p->path, &st) != 0)
        return jsonfile_fail(p, NULL, "cannot read: %s", strerror(errno));
    if (!S_ISREG(st.st_mode))
        return jsonfile_fail(p, NULL, "not a regular file (%s is a JSON file)", p->thing);
    if (st.st_size >= 0 && (unsigned long long)st.st_size > max) {
        if (max % (1024 * 1024) == 0)
            return jsonfile_fail(p, NULL, "is %lld bytes; %s file is at most %zu MiB (%zu bytes)",
                                 (long long)st.st_size, p->thing, max / (1024 * 1024), max);
        return jsonfile_fail(p, NULL, "is %lld bytes; %s file is at most %zu bytes",
                             (long long)st.st_size, p->thing, max);
    }
    return 0;
}

int jsonfile_load(struct jsonfile_parse *p, size_t max, struct cJSON **root)
{
    *root = NULL;
    if (jsonfile_check_stat(p, max) != 0)
        return -1;
    char *text = NULL;
    size_t len = 0;
    char ferr[JSONFILE_LINE_MAX / 2];
    if (fileio_read_all(p->path, max, &text, &len, ferr, sizeof ferr) != 0) {
        snprintf(p->err, sizeof p->err, "%s", ferr);
        return -1;
    }
    int rc = -1;
    size_t line, col;
    size_t bad = 0;
    if (strlen(text) != len) {
        jsonfile_line_col(text, strlen(text), &line, &col);
        jsonfile_fail(p, NULL, "line %zu, column %zu: a NUL byte (%s file is JSON text)", line, col,
                      p->thing);
        goto out;
    }
    if (!utf8_valid(text, len, &bad)) {
        jsonfile_line_col(text, bad, &line, &col);
        jsonfile_fail(p, NULL, "line %zu, column %zu: invalid UTF-8 (%s file is UTF-8 text)", line,
                      col, p->thing);
        goto out;
    }
    /* A byte-order mark is not JSON, but editors write one. */
    size_t skip = len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
    /* With require_null_terminated, cJSON looks for the NUL inside the
     * length it is given; fileio_read_all put one at text[len]. */
    const char *end = NULL;
    *root = json_parse(text + skip, len - skip + 1, &end, true);
    if (*root == NULL && errno == ENOMEM) {
        jsonfile_fail(p, NULL, "out of memory reading the file");
        goto out;
    }
    if (*root == NULL) {
        const char *json = text + skip;
        size_t off = end != NULL && end >= json ? (size_t)(end - json) : 0;
        jsonfile_line_col(json, off, &line, &col);
        jsonfile_fail(p, NULL, "line %zu, column %zu: invalid JSON", line, col);
        goto out;
    }
    rc = 0;
out:
    xfree(text);
    return rc;
}

const char *jsonfile_kind(const cJSON *it)
{
    if (cJSON_IsString(it))
        return "a string";
    if (cJSON_IsNumber(it))
        return "a number";
    if (cJSON_IsBool(it))
        return "a boolean";
    if (cJSON_IsNull(it))
        return "null";
    if (cJSON_IsArray(it))
        return "an array";
    if (cJSON_IsObject(it))
        return "an object";
    return "not a JSON value";
}

const char *jsonfile_clip(const char *s, char out[JSONFILE_CLIP_BUF])
{
    size_t n = strlen(s);
    size_t keep = utf8_truncate(s, n, JSONFILE_CLIP);
    memcpy(out, s, keep);
    if (keep < n)
        memcpy(out + keep, "\xe2\x80\xa6", 3);
    out[keep < n ? keep + 3 : keep] = '\0';
    return out;
}

const char *jsonfile_join(const char *const *choices, char *out, size_t outlen)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; choices[i] != NULL && used < outlen; i++) {
        int n = snprintf(out + used, outlen - used, "%s%s", i > 0 ? ", " : "", choices[i]);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    return out;
}

bool jsonfile_in(const char *const *list, const char *s)
{
    for (size_t i = 0; list[i] != NULL; i++)
        if (strcmp(list[i], s) == 0)
            return true;
    return false;
}

/* Edit distance counting a swap of two neighbours as one edit (optimal
 * string alignment), or SIZE_MAX for strings too long to be a typo of a
 * field name. */
static size_t jsonfile_edit_distance(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    if (na > 32 || nb > 32)
        return SIZE_MAX;
    size_t d[33][33];
    for (size_t i = 0; i <= na; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= nb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= na; i++) {
        for (size_t j = 1; j <= nb; j++) {
            size_t best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[na][nb];
}

const char *jsonfile_suggest(const char *key, const char *const *known)
{
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    for (size_t i = 0; known[i] != NULL; i++) {
        size_t d = jsonfile_edit_distance(key, known[i]);
        if (d < best_d) {
            best_d = d;
            best = known[i];
        }
    }
    return best != NULL && best_d <= 2 && best_d < strlen(best) ? best : NULL;
}

const char *jsonfile_repeated_key(const cJSON *obj)
{
    for (const cJSON *it = obj->child; it != NULL; it = it->next) {
        if (it->string == NULL)
            continue;
        for (const cJSON *s = obj->child; s != it; s = s->next)
            if (s->string != NULL && strcmp(s->string, it->string) == 0)
                return it->string;
    }
    return NULL;
}

/* Warns about an unknown key, suggesting the closest known one when it is
 * a likely typo. */
static void jsonfile_warn_unknown(struct jsonfile_parse *p, const char *prefix, const char *key,
                                  const char *const *known)
{
    const char *best = jsonfile_suggest(key, known);
    char clip[JSONFILE_CLIP_BUF];
    jsonfile_clip(key, clip);
    if (best != NULL)
        jsonfile_warn(p, "unknown field '%s%s' ignored (did you mean '%s%s'?)", prefix, clip,
                      prefix, best);
    else
        jsonfile_warn(p, "unknown field '%s%s' ignored", prefix, clip);
}

int jsonfile_check_keys(struct jsonfile_parse *p, const cJSON *obj, const char *prefix,
                        const char *const *known)
{
    int n = cJSON_GetArraySize(obj);
    if (n > JSONFILE_MAX_KEYS) {
        char field[32];
        snprintf(field, sizeof field, "%.*s", prefix[0] != '\0' ? (int)strlen(prefix) - 1 : 0,
                 prefix);
        return jsonfile_fail(p, prefix[0] != '\0' ? field : NULL,
                             "has %d fields; an object of %s file has at most %d", n, p->thing,
                             JSONFILE_MAX_KEYS);
    }
    const char *twice = jsonfile_repeated_key(obj);
    if (twice != NULL) {
        char clip[JSONFILE_CLIP_BUF], field[JSONFILE_CLIP + 64];
        snprintf(field, sizeof field, "%s%s", prefix, jsonfile_clip(twice, clip));
        return jsonfile_fail(p, field, "given twice (each field may appear once)");
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, obj)
    {
        if (it->string != NULL && it->string[0] != '_' && !jsonfile_in(known, it->string))
            jsonfile_warn_unknown(p, prefix, it->string, known);
    }
    return 0;
}

int jsonfile_string(struct jsonfile_parse *p, const char *field, const cJSON *it, size_t max,
                    unsigned flags, char **out)
{
    char want[128];
    snprintf(want, sizeof want, "%s%s of at most %zu bytes",
             (flags & JSONFILE_NONEMPTY) != 0 ? "non-empty " : "",
             (flags & JSONFILE_ONE_LINE) != 0 ? "one line of text" : "text", max);
    if (!cJSON_IsString(it) || it->valuestring == NULL)
        return jsonfile_fail(p, field, "is %s; expected a string: %s", jsonfile_kind(it), want);
    const char *s = it->valuestring;
    size_t n = strlen(s);
    if (n > max)
        return jsonfile_fail(p, field, "is %zu bytes long; expected %s", n, want);
    if ((flags & JSONFILE_NONEMPTY) != 0 && strspn(s, " \t\r\n") == n)
        return jsonfile_fail(p, field, "is empty; expected %s", want);
    if ((flags & JSONFILE_ONE_LINE) != 0)
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
                return jsonfile_fail(p, field,
                                     "holds a line break or control character; expected %s", want);
    *out = xstrdup(s);
    return 0;
}

int jsonfile_choice(struct jsonfile_parse *p, const char *field, const cJSON *it,
                    const char *const *choices, int *out)
{
    char list[256];
    jsonfile_join(choices, list, sizeof list);
    if (!cJSON_IsString(it) || it->valuestring == NULL)
        return jsonfile_fail(p, field, "is %s; expected one of: %s", jsonfile_kind(it), list);
    for (int i = 0; choices[i] != NULL; i++) {
        if (strcmp(choices[i], it->valuestring) == 0) {
            *out = i;
            return 0;
        }
    }
    char clip[JSONFILE_CLIP_BUF];
    return jsonfile_fail(p, field, "'%s' is not accepted (accepted: %s)",
                         jsonfile_clip(it->valuestring, clip), list);
}

int jsonfile_number(struct jsonfile_parse *p, const char *field, const cJSON *it, double min,
                    double max, bool integer, double *out)
{
    char want[96];
    snprintf(want, sizeof want, "%s from %.15g to %.15g", integer ? "an integer" : "a number", min,
             max);
    if (!cJSON_IsNumber(it))
        return jsonfile_fail(p, field, "is %s; expected %s", jsonfile_kind(it), want);
    double v = it->valuedouble;
    if (!(v >= min && v <= max))
        return jsonfile_fail(p, field, "%.15g is out of range (expected %s)", v, want);
    if (integer && (double)(long long)v != v)
        return jsonfile_fail(p, field, "%.15g is not a whole number (expected %s)", v, want);
    *out = v;
    return 0;
}

int jsonfile_bool(struct jsonfile_parse *p, const char *field, const cJSON *it, bool *out)
{
    if (!cJSON_IsBool(it))
        return jsonfile_fail(p, field, "is %s; expected true or false", jsonfile_kind(it));
    *out = cJSON_IsTrue(it);
    return 0;
}

const cJSON *jsonfile_opt(const cJSON *obj, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNull(it) ? NULL : it;
}

static int jsonfile_name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void jsonfile_free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        xfree(names[i]);
    xfree(names);
}

int jsonfile_list_dir(const char *dir, const char *kind, char ***names, size_t *n, char *err,
                      size_t errlen)
{
    *names = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (d == NULL) {
        if (errno == ENOENT)
            return 1;
        snprintf(err, errlen, "cannot read the %s directory %s: %s", kind, dir, strerror(errno));
        return -1;
    }
    size_t cap = 0;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (de->d_name[0] == '.' || len <= 5 || strcmp(de->d_name + len - 5, ".json") != 0)
            continue;
        if (*n == cap) {
            cap = cap == 0 ? 16 : cap * 2;
            *names = xreallocarray(*names, cap, sizeof **names);
        }
        (*names)[(*n)++] = xstrdup(de->d_name);
        errno = 0;
    }
    int saved = errno;
    closedir(d);
    if (saved != 0) {
        snprintf(err, errlen, "cannot read the %s directory %s: %s", kind, dir, strerror(saved));
        jsonfile_free_names(*names, *n);
        *names = NULL;
        *n = 0;
        return -1;
    }
    if (*n > 1)
        qsort(*names, *n, sizeof **names, jsonfile_name_cmp);
    return 0;
}
