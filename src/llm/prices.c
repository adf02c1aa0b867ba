/*
 * The price table (see prices.h for the format and the lookup rules). Both
 * files go through one parser: the shipped file in strict mode (every field
 * of every entry required, so the data we ship is complete and dated), the
 * override in merge mode (fields replace those of the entry with the same
 * id; new entries need only what makes a price). Validation names the file
 * and the JSON path of the bad field, because a budget that silently prices
 * a model at 0 is worse than a refusal to start. After loading, the table
 * is never written again, which is what makes concurrent lookups safe.
 */
#include "config.h"

#include "llm/prices.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cJSON.h>

#include "util/alloc.h"
#include "util/fileio.h"
#include "util/json.h"

#ifndef MC_PKGDATADIR
#error "MC_PKGDATADIR must name the installed data directory (Makefile.am defines it)"
#endif
#ifndef MC_SRCDIR
#error "MC_SRCDIR must name the source tree (Makefile.am defines it)"
#endif

/* One model entry, or one provider's flat price (provider == NULL, id is the
 * provider's name). */
struct prices_entry {
    char *id;
    char *provider;
    double input, cached_input, output;
    bool has_input, has_cached_input, has_output;
    char *checked; /* NULL until given */
    char *source;
    char *note;
    char **aliases;
    size_t n_aliases;
};

struct prices {
    struct prices_entry *models;
    size_t n_models, cap_models;
    struct prices_entry *providers;
    size_t n_providers, cap_providers;
};

/* What one file's parse needs to report errors and to decide strictness. */
struct prices_ctx {
    const char *path;
    bool strict; /* the shipped file: everything required */
    char *err;
    size_t errlen;
};

static int prices_fail(const struct prices_ctx *c, const char *fmt, ...) MC_PRINTF(2, 3);

/* Writes "PATH: message" to the context's error buffer; returns -1. */
static int prices_fail(const struct prices_ctx *c, const char *fmt, ...)
{
    int n = snprintf(c->err, c->errlen, "%s: ", c->path);
    if (n >= 0 && (size_t)n < c->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static void prices_entry_fini(struct prices_entry *e)
{
    xfree(e->id);
    xfree(e->provider);
    xfree(e->checked);
    xfree(e->source);
    xfree(e->note);
    for (size_t i = 0; i < e->n_aliases; i++)
        xfree(e->aliases[i]);
    xfree(e->aliases);
}

void prices_free(struct prices *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->n_models; i++)
        prices_entry_fini(&p->models[i]);
    for (size_t i = 0; i < p->n_providers; i++)
        prices_entry_fini(&p->providers[i]);
    xfree(p->models);
    xfree(p->providers);
    xfree(p);
}

/* Keys starting with '_' are comments the parser skips. */
static bool prices_is_comment(const cJSON *item)
{
    return item->string != NULL && item->string[0] == '_';
}

/* True when an earlier sibling of item has the same key: cJSON keeps both
 * copies, and a lookup would silently see only the first. (Walks forward from
 * the parent: cJSON links the first child's prev to the last child.) */
static bool prices_key_seen_before(const cJSON *parent, const cJSON *item)
{
    for (const cJSON *s = parent->child; s != NULL && s != item; s = s->next)
        if (s->string != NULL && strcmp(s->string, item->string) == 0)
            return true;
    return false;
}

/* A finite number >= 0. */
static int prices_number(const struct prices_ctx *c, const char *section, const char *id,
                         const cJSON *item, double *out)
{
    if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble) || item->valuedouble < 0)
        return prices_fail(c, "%s.%s.%s: not a non-negative number (USD per million tokens)",
                           section, id, item->string);
    *out = item->valuedouble;
    return 0;
}

static bool prices_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* YYYY-MM-DD naming a real calendar day. */
static bool prices_valid_date(const char *s)
{
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return false;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
            return false;
    int y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    int m = (s[5] - '0') * 10 + (s[6] - '0');
    int d = (s[8] - '0') * 10 + (s[9] - '0');
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m < 1 || m > 12 || d < 1)
        return false;
    int max = mdays[m - 1] + (m == 2 && prices_leap(y) ? 1 : 0);
    return d <= max;
}

/* A string field, replacing *dst. allow_empty: "" is accepted. */
static int prices_string(const struct prices_ctx *c, const char *section, const char *id,
                         const cJSON *item, bool allow_empty, char **dst)
{
    if (!cJSON_IsString(item) || item->valuestring == NULL ||
        (!allow_empty && item->valuestring[0] == '\0'))
        return prices_fail(c, "%s.%s.%s: not a %sstring", section, id, item->string,
                           allow_empty ? "" : "non-empty ");
    xfree(*dst);
    *dst = xstrdup(item->valuestring);
    return 0;
}

/* "aliases": an array of non-empty strings, replacing the entry's list. */
static int prices_aliases(const struct prices_ctx *c, const char *id, const cJSON *item,
                          struct prices_entry *e)
{
    if (!cJSON_IsArray(item))
        return prices_fail(c, "models.%s.aliases: not an array of model ids", id);
    size_t n = (size_t)cJSON_GetArraySize(item);
    char **list = n > 0 ? xcalloc(n, sizeof *list) : NULL;
    size_t i = 0;
    const cJSON *a;
    cJSON_ArrayForEach(a, item)
    {
        if (!cJSON_IsString(a) || a->valuestring == NULL || a->valuestring[0] == '\0') {
            for (size_t j = 0; j < i; j++)
                xfree(list[j]);
            xfree(list);
            return prices_fail(c, "models.%s.aliases[%zu]: not a non-empty string", id, i);
        }
        list[i++] = xstrdup(a->valuestring);
    }
    for (size_t j = 0; j < e->n_aliases; j++)
        xfree(e->aliases[j]);
    xfree(e->aliases);
    e->aliases = list;
    e->n_aliases = i;
    return 0;
}

static struct prices_entry *prices_find(struct prices_entry *v, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].id, id) == 0)
            return &v[i];
    return NULL;
}

/* A new zeroed entry at the end of *v. */
static struct prices_entry *prices_append(struct prices_entry **v, size_t *n, size_t *cap,
                                          const char *id)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *v = xreallocarray(*v, *cap, sizeof **v);
    }
    struct prices_entry *e = &(*v)[(*n)++];
    memset(e, 0, sizeof *e);
    e->id = xstrdup(id);
    return e;
}

/* Applies one entry object of section ("models" or "providers") to the
 * table: creates it, or replaces the fields it gives. */
static int prices_apply_entry(struct prices *p, const struct prices_ctx *c, bool is_model,
                              const cJSON *obj)
{
    const char *section = is_model ? "models" : "providers";
    const char *id = obj->string;
    if (id[0] == '\0')
        return prices_fail(c, "%s: an entry has an empty name", section);
    if (!cJSON_IsObject(obj))
        return prices_fail(c, "%s.%s: not an object", section, id);

    struct prices_entry *e = is_model ? prices_find(p->models, p->n_models, id)
                                      : prices_find(p->providers, p->n_providers, id);
    bool added = e == NULL;
    if (added)
        e = is_model ? prices_append(&p->models, &p->n_models, &p->cap_models, id)
                     : prices_append(&p->providers, &p->n_providers, &p->cap_providers, id);

    const cJSON *f;
    cJSON_ArrayForEach(f, obj)
    {
        const char *k = f->string;
        if (prices_is_comment(f))
            continue;
        if (prices_key_seen_before(obj, f))
            return prices_fail(c, "%s.%s.%s: given twice", section, id, k);
        int rc;
        if (strcmp(k, "input") == 0) {
            rc = prices_number(c, section, id, f, &e->input);
            e->has_input = true;
        } else if (strcmp(k, "cached_input") == 0) {
            rc = prices_number(c, section, id, f, &e->cached_input);
            e->has_cached_input = true;
        } else if (strcmp(k, "output") == 0) {
            rc = prices_number(c, section, id, f, &e->output);
            e->has_output = true;
        } else if (strcmp(k, "checked") == 0) {
            if (!cJSON_IsString(f) || f->valuestring == NULL || !prices_valid_date(f->valuestring))
                return prices_fail(c, "%s.%s.checked: not a date written YYYY-MM-DD", section, id);
            rc = prices_string(c, section, id, f, false, &e->checked);
        } else if (strcmp(k, "source") == 0) {
            rc = prices_string(c, section, id, f, false, &e->source);
        } else if (strcmp(k, "note") == 0) {
            rc = prices_string(c, section, id, f, true, &e->note);
        } else if (is_model && strcmp(k, "provider") == 0) {
            rc = prices_string(c, section, id, f, false, &e->provider);
        } else if (is_model && strcmp(k, "aliases") == 0) {
            rc = prices_aliases(c, id, f, e);
        } else {
            return prices_fail(c,
                               "%s.%s.%s: unknown field (accepted: %sinput, cached_input, output, "
                               "checked, source, note%s; \"_\" starts a comment)",
                               section, id, k, is_model ? "provider, " : "",
                               is_model ? ", aliases" : "");
        }
        if (rc != 0)
            return rc;
    }

    /* What an entry must give: everything in the shipped file; a price
     * (and, for a model, its provider) for one an override adds. */
    const char *missing = NULL;
    if (is_model && e->provider == NULL)
        missing = "provider";
    else if (!e->has_input)
        missing = "input";
    else if (!e->has_output)
        missing = "output";
    else if (c->strict && !e->has_cached_input)
        missing = "cached_input";
    else if (c->strict && e->checked == NULL)
        missing = "checked";
    else if (c->strict && e->source == NULL)
        missing = "source";
    if (missing != NULL)
        return prices_fail(c, "%s.%s: %s is missing%s", section, id, missing,
                           added && !c->strict
                               ? " (a model the table does not have needs provider, "
                                 "input and output)"
                               : "");
    if (!e->has_cached_input) {
        /* Never cheaper than what the user stated. */
        e->cached_input = e->input;
        e->has_cached_input = true;
    }
    return 0;
}

/* One section object ("models" or "providers"). */
static int prices_apply_section(struct prices *p, const struct prices_ctx *c, bool is_model,
                                const cJSON *sec)
{
    const char *section = is_model ? "models" : "providers";
    if (!cJSON_IsObject(sec))
        return prices_fail(c, "%s: not an object of %s", section,
                           is_model ? "model ids" : "provider names");
    const cJSON *item;
    cJSON_ArrayForEach(item, sec)
    {
        if (prices_is_comment(item))
            continue;
        if (prices_key_seen_before(sec, item))
            return prices_fail(c, "%s.%s: given twice", section, item->string);
        if (prices_apply_entry(p, c, is_model, item) != 0)
            return -1;
    }
    return 0;
}

/* Every alias belongs to one entry; in strict mode no alias is a model id. */
static int prices_check_aliases(const struct prices *p, const struct prices_ctx *c)
{
    for (size_t i = 0; i < p->n_models; i++) {
        const struct prices_entry *e = &p->models[i];
        for (size_t a = 0; a < e->n_aliases; a++) {
            const char *al = e->aliases[a];
            if (c->strict && prices_find(p->models, p->n_models, al) != NULL)
                return prices_fail(c, "models.%s.aliases[%zu]: \"%s\" is also a model id", e->id, a,
                                   al);
            for (size_t j = 0; j <= i; j++) {
                const struct prices_entry *o = &p->models[j];
                size_t end = j == i ? a : o->n_aliases;
                for (size_t b = 0; b < end; b++)
                    if (strcmp(o->aliases[b], al) == 0)
                        return prices_fail(c,
                                           "models.%s.aliases[%zu]: \"%s\" is already an alias "
                                           "of models.%s",
                                           e->id, a, al, o->id);
            }
        }
    }
    return 0;
}

/* The header fields: version 1, USD, per million tokens. */
static int prices_check_header(const struct prices_ctx *c, const cJSON *root)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "version");
    const cJSON *cur = cJSON_GetObjectItemCaseSensitive(root, "currency");
    const cJSON *unit = cJSON_GetObjectItemCaseSensitive(root, "unit");
    if (v != NULL && (!cJSON_IsNumber(v) || v->valuedouble != 1.0))
        return prices_fail(c, "version: not 1 (the only format this memchat reads)");
    if (cur != NULL && (!cJSON_IsString(cur) || strcmp(cur->valuestring, "USD") != 0))
        return prices_fail(c, "currency: not \"USD\" (prices are kept in US dollars)");
    if (unit != NULL &&
        (!cJSON_IsString(unit) || strcmp(unit->valuestring, "per_million_tokens") != 0))
        return prices_fail(c, "unit: not \"per_million_tokens\"");
    if (c->strict) {
        const char *missing = v == NULL      ? "version"
                              : cur == NULL  ? "currency"
                              : unit == NULL ? "unit"
                                             : NULL;
        if (missing != NULL)
            return prices_fail(c, "%s is missing", missing);
    }
    return 0;
}

/* The line and column (1-based) of offset off in text. */
static void prices_line_col(const char *text, size_t off, size_t *line, size_t *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && text[i] != '\0'; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

/* Parses one file into p. Returns 0, -1 on error, or 1 when the file does
 * not exist and missing_ok. */
static int prices_parse_file(struct prices *p, const struct prices_ctx *c, bool missing_ok)
{
    char *text = NULL;
    size_t len = 0;
    char ferr[512];
    int rc = fileio_read_all(c->path, PRICES_MAX_FILE, &text, &len, ferr, sizeof ferr);
    if (rc == -2 && missing_ok)
        return 1;
    if (rc == -2) {
        snprintf(c->err, c->errlen,
                 "%s: the shipped price table is missing (set MEMCHAT_SHARE_DIR to the directory "
                 "that holds prices.json)",
                 c->path);
        return -1;
    }
    if (rc != 0) {
        snprintf(c->err, c->errlen, "price table: %s", ferr);
        return -1;
    }
    if (strlen(text) != len) {
        xfree(text);
        return prices_fail(c, "contains a NUL byte (not a JSON text)");
    }
    /* With require_null_terminated, cJSON looks for the NUL inside the
     * length it is given; fileio_read_all put one at text[len]. */
    const char *end = NULL;
    cJSON *root = json_parse(text, len + 1, &end, true);
    if (root == NULL && errno == ENOMEM) {
        xfree(text);
        return prices_fail(c, "out of memory reading the file");
    }
    if (root == NULL) {
        size_t line, col;
        size_t off = end != NULL && end >= text ? (size_t)(end - text) : 0;
        prices_line_col(text, off, &line, &col);
        xfree(text);
        return prices_fail(c, "line %zu, column %zu: invalid JSON", line, col);
    }
    xfree(text);

    rc = -1;
    if (!cJSON_IsObject(root)) {
        prices_fail(c, "not a JSON object (expected {\"version\": 1, \"models\": {...}})");
        goto out;
    }
    const cJSON *item;
    cJSON_ArrayForEach(item, root)
    {
        const char *k = item->string;
        if (prices_is_comment(item))
            continue;
        if (prices_key_seen_before(root, item)) {
            prices_fail(c, "%s: given twice", k);
            goto out;
        }
        if (strcmp(k, "version") != 0 && strcmp(k, "currency") != 0 && strcmp(k, "unit") != 0 &&
            strcmp(k, "models") != 0 && strcmp(k, "providers") != 0) {
            prices_fail(c,
                        "%s: unknown field (accepted: version, currency, unit, models, "
                        "providers; \"_\" starts a comment)",
                        k);
            goto out;
        }
    }
    if (prices_check_header(c, root) != 0)
        goto out;
    const cJSON *models = cJSON_GetObjectItemCaseSensitive(root, "models");
    const cJSON *providers = cJSON_GetObjectItemCaseSensitive(root, "providers");
    if (models == NULL && c->strict) {
        prices_fail(c, "models is missing");
        goto out;
    }
    if (models != NULL && prices_apply_section(p, c, true, models) != 0)
        goto out;
    if (providers != NULL && prices_apply_section(p, c, false, providers) != 0)
        goto out;
    if (prices_check_aliases(p, c) != 0)
        goto out;
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

int prices_load(struct prices **out, const char *shipped_path, const char *override_path, char *err,
                size_t errlen)
{
    *out = NULL;
    struct prices *p = xcalloc(1, sizeof *p);
    struct prices_ctx c = {.path = shipped_path, .strict = true, .err = err, .errlen = errlen};
    if (prices_parse_file(p, &c, false) != 0) {
        prices_free(p);
        return -1;
    }
    if (override_path != NULL) {
        c.path = override_path;
        c.strict = false;
        if (prices_parse_file(p, &c, true) < 0) {
            prices_free(p);
            return -1;
        }
    }
    *out = p;
    return 0;
}

static void prices_fill(const struct prices_entry *e, const char *provider_name,
                        struct model_price *price)
{
    price->input = e->input;
    price->cached_input = e->cached_input;
    price->output = e->output;
    price->model = e->provider != NULL ? e->id : "*";
    price->provider = e->provider != NULL ? e->provider : provider_name;
    price->checked = e->checked != NULL ? e->checked : "";
    price->source = e->source != NULL ? e->source : "";
}

bool prices_lookup(const struct prices *p, const char *provider, const char *model,
                   struct model_price *price)
{
    if (p == NULL || model == NULL)
        return false;
    for (size_t i = 0; i < p->n_models; i++) {
        const struct prices_entry *e = &p->models[i];
        if (strcmp(e->id, model) == 0 && (provider == NULL || strcmp(e->provider, provider) == 0)) {
            prices_fill(e, NULL, price);
            return true;
        }
    }
    for (size_t i = 0; i < p->n_models; i++) {
        const struct prices_entry *e = &p->models[i];
        if (provider != NULL && strcmp(e->provider, provider) != 0)
            continue;
        for (size_t a = 0; a < e->n_aliases; a++) {
            if (strcmp(e->aliases[a], model) == 0) {
                prices_fill(e, NULL, price);
                return true;
            }
        }
    }
    if (provider != NULL) {
        for (size_t i = 0; i < p->n_providers; i++) {
            const struct prices_entry *e = &p->providers[i];
            if (strcmp(e->id, provider) == 0) {
                prices_fill(e, e->id, price);
                return true;
            }
        }
    }
    return false;
}

double prices_cost(const struct model_price *price, const struct llm_usage *usage)
{
    if (price == NULL || usage == NULL || usage->prompt_tokens < 0 || usage->completion_tokens < 0)
        return NAN;
    long long cached = usage->cached_tokens < 0 ? 0 : usage->cached_tokens;
    if (cached > usage->prompt_tokens)
        cached = usage->prompt_tokens;
    double uncached = (double)(usage->prompt_tokens - cached);
    return (uncached * price->input + (double)cached * price->cached_input +
            (double)usage->completion_tokens * price->output) /
           1e6;
}

size_t prices_count(const struct prices *p)
{
    return p != NULL ? p->n_models : 0;
}

const char *prices_model_at(const struct prices *p, size_t i, const char **provider)
{
    if (p == NULL || i >= p->n_models)
        return NULL;
    if (provider != NULL)
        *provider = p->models[i].provider;
    return p->models[i].id;
}

int prices_shipped_path(const char *share_dir, char *out, size_t outlen)
{
    int n;
    if (share_dir != NULL && share_dir[0] != '\0') {
        n = snprintf(out, outlen, "%s/prices.json", share_dir);
    } else {
        struct stat st;
        n = snprintf(out, outlen, "%s/prices.json", MC_PKGDATADIR);
        if (n < 0 || (size_t)n >= outlen || stat(out, &st) != 0 || !S_ISREG(st.st_mode))
            n = snprintf(out, outlen, "%s/share/prices.json", MC_SRCDIR);
    }
    if (n < 0 || (size_t)n >= outlen) {
        if (outlen > 0)
            out[0] = '\0';
        return -1;
    }
    return 0;
}
