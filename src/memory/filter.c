/*
 * Memory filters (see filter.h): the JSON parser with its path-precise
 * messages, the tree's copy and free, and its three readings: compact JSON
 * for events, an SQL expression for the local store, and a direct
 * evaluation on one record that the tests hold the SQL to.
 *
 * Comparisons are typed in both readings: a string equals only a string,
 * a number only a number (integer or real), a boolean only a boolean, so
 * {"n": 1} does not match the metadata {"n": "1"} or {"n": true}. A value
 * whose type does not suit a field (a number for user_id, say, in a tree
 * built by hand; the parser refuses them) makes $eq, $in and the ranges
 * false and $ne, $nin true, the same in SQL and in filter_match.
 *
 * Metadata keys go to SQLite through json_each, not a json_extract path:
 * SQLite's path syntax has no escapes, and before 3.45 it compares a path
 * label with the key as escaped in the JSON text, so keys holding a quote,
 * a backslash or an escaped character cannot be addressed by path at all.
 * json_each's key column is the decoded key, compared with the key as an
 * SQL string literal (quotes doubled: SQLite's only escape there), so any
 * key works and none can change the statement. A key present several times
 * in one object matches when any of its values does, in both readings.
 */
#include "config.h"

#include "memory/filter.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "memory/store.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/ident.h"
#include "util/json.h"
#include "util/uuid.h"

#define FILTER_DEPTH_MAX 32   /* nesting of objects through $and/$or */
#define FILTER_NODES_MAX 1000 /* conditions plus listed values */
#define FILTER_KEY_MAX   256  /* bytes of a metadata key */
#define PATH_MAX_SHOWN   200  /* bytes of a JSON path in a message */

#define OPS_ACCEPTED "$eq $ne $in $nin $gt $gte $lt $lte"

/* ---- fields ----------------------------------------------------------- */

enum filter_field filter_field_of(const char *key, bool is_meta)
{
    if (is_meta || key == NULL)
        return FILTER_FIELD_META;
    if (strcmp(key, "id") == 0)
        return FILTER_FIELD_ID;
    if (strcmp(key, "user_id") == 0)
        return FILTER_FIELD_USER;
    if (strcmp(key, "agent") == 0)
        return FILTER_FIELD_AGENT;
    if (strcmp(key, "kind") == 0)
        return FILTER_FIELD_KIND;
    if (strcmp(key, "created_at") == 0)
        return FILTER_FIELD_CREATED;
    return FILTER_FIELD_META;
}

/* The value type a field compares with; metadata takes any. */
static bool field_takes(enum filter_field fl, enum filter_vtype t)
{
    switch (fl) {
    case FILTER_FIELD_META:
        return true;
    case FILTER_FIELD_CREATED:
        return t == FILTER_V_NUMBER;
    case FILTER_FIELD_ID:
    case FILTER_FIELD_USER:
    case FILTER_FIELD_AGENT:
    case FILTER_FIELD_KIND:
        return t == FILTER_V_STRING;
    }
    return false;
}

bool filter_op_is_range(enum filter_op op)
{
    return op == FILTER_GT || op == FILTER_GTE || op == FILTER_LT || op == FILTER_LTE;
}

static const char *op_name(enum filter_op op)
{
    switch (op) {
    case FILTER_AND:
        return "$and";
    case FILTER_OR:
        return "$or";
    case FILTER_EQ:
        return "$eq";
    case FILTER_NE:
        return "$ne";
    case FILTER_IN:
        return "$in";
    case FILTER_NIN:
        return "$nin";
    case FILTER_GT:
        return "$gt";
    case FILTER_GTE:
        return "$gte";
    case FILTER_LT:
        return "$lt";
    case FILTER_LTE:
        return "$lte";
    }
    return "?";
}

/* ---- the tree --------------------------------------------------------- */

static struct mem_filter *node_new(enum filter_op op)
{
    struct mem_filter *f = xcalloc(1, sizeof *f);
    f->op = op;
    return f;
}

void filter_free(struct mem_filter *f)
{
    if (f == NULL)
        return;
    for (size_t i = 0; i < f->n_kids; i++)
        filter_free(f->kids[i]);
    xfree(f->kids);
    for (size_t i = 0; i < f->n_values; i++)
        if (f->values[i].type == FILTER_V_STRING)
            xfree(f->values[i].s);
    xfree(f->values);
    xfree(f->key);
    xfree(f);
}

struct mem_filter *filter_copy(const struct mem_filter *f)
{
    if (f == NULL)
        return NULL;
    struct mem_filter *c = node_new(f->op);
    c->key = f->key ? xstrdup(f->key) : NULL;
    c->is_meta = f->is_meta;
    if (f->n_values > 0) {
        c->values = xcalloc(f->n_values, sizeof *c->values);
        c->n_values = f->n_values;
        for (size_t i = 0; i < f->n_values; i++) {
            c->values[i] = f->values[i];
            if (f->values[i].type == FILTER_V_STRING)
                c->values[i].s = xstrdup(f->values[i].s ? f->values[i].s : "");
        }
    }
    if (f->n_kids > 0) {
        c->kids = xcalloc(f->n_kids, sizeof *c->kids);
        c->n_kids = f->n_kids;
        for (size_t i = 0; i < f->n_kids; i++)
            c->kids[i] = filter_copy(f->kids[i]);
    }
    return c;
}

struct mem_filter *filter_and(const struct mem_filter *a, const struct mem_filter *b)
{
    if (a == NULL || b == NULL)
        return filter_copy(a != NULL ? a : b);
    struct mem_filter *f = node_new(FILTER_AND);
    f->kids = xcalloc(2, sizeof *f->kids);
    f->kids[0] = filter_copy(a);
    f->kids[1] = filter_copy(b);
    f->n_kids = 2;
    return f;
}

struct mem_filter *filter_eq(const char *key, const char *value)
{
    struct mem_filter *f = node_new(FILTER_EQ);
    f->key = xstrdup(key);
    f->is_meta = filter_field_of(key, false) == FILTER_FIELD_META;
    f->values = xcalloc(1, sizeof *f->values);
    f->values[0].type = FILTER_V_STRING;
    f->values[0].s = xstrdup(value);
    f->n_values = 1;
    return f;
}

/* ---- parsing ---------------------------------------------------------- */

struct parser {
    char *err;
    size_t errlen;
    bool failed;
    size_t nodes;
};

/* Appends s to dst (of size cap, holding *len bytes) for a message: at most
 * max bytes of s, control bytes escaped (and quotes and backslashes when
 * quotes is set), "..." when cut. */
static void show_append_q(char *dst, size_t cap, size_t *len, const char *s, size_t max,
                          bool quotes)
{
    size_t n = 0;
    for (; s[n] != '\0' && n < max; n++) {
        unsigned char c = (unsigned char)s[n];
        char tmp[8];
        if (c < 0x20 || c == 0x7f)
            snprintf(tmp, sizeof tmp, "\\x%02x", c);
        else if (quotes && (c == '"' || c == '\\'))
            snprintf(tmp, sizeof tmp, "\\%c", c);
        else
            snprintf(tmp, sizeof tmp, "%c", c);
        size_t tl = strlen(tmp);
        if (*len + tl + 1 > cap)
            return;
        memcpy(dst + *len, tmp, tl + 1);
        *len += tl;
    }
    if (s[n] != '\0' && *len + 4 <= cap) {
        memcpy(dst + *len, "...", 4);
        *len += 3;
    }
}

static void show_append(char *dst, size_t cap, size_t *len, const char *s, size_t max)
{
    show_append_q(dst, cap, len, s, max, true);
}

/* A value quoted for a message ("a b"), cut at 60 bytes. */
struct shown {
    char s[300];
};

static const char *show(struct shown *b, const char *s)
{
    size_t len = 1;
    b->s[0] = '"';
    b->s[1] = '\0';
    show_append(b->s, sizeof b->s - 2, &len, s, 60);
    b->s[len] = '"';
    b->s[len + 1] = '\0';
    return b->s;
}

/* Records the first error: "path: message". */
static void perr(struct parser *p, const char *path, const char *fmt, ...) MC_PRINTF(3, 4);
static void perr(struct parser *p, const char *path, const char *fmt, ...)
{
    if (p->failed)
        return;
    p->failed = true;
    if (p->errlen == 0)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(p->err, p->errlen, "%s: %s", path[0] ? path : "filter", msg);
}

/* path + "." + key (or path + "[i]" when key is NULL), for messages. */
struct path {
    char s[PATH_MAX_SHOWN + 80];
};

static const char *path_key(struct path *out, const char *path, const char *key)
{
    size_t len = strlen(path);
    memcpy(out->s, path, len + 1);
    if (len > 0 && len + 1 < sizeof out->s)
        out->s[len++] = '.';
    out->s[len] = '\0';
    show_append(out->s, sizeof out->s, &len, key, PATH_MAX_SHOWN > len ? PATH_MAX_SHOWN - len : 1);
    return out->s;
}

static const char *path_index(struct path *out, const char *path, const char *op, size_t i)
{
    path_key(out, path, op);
    char idx[24];
    snprintf(idx, sizeof idx, "[%zu]", i);
    size_t len = strlen(out->s), il = strlen(idx);
    if (len + il < sizeof out->s)
        memcpy(out->s + len, idx, il + 1);
    return out->s;
}

static const char *json_kind(const cJSON *v)
{
    if (cJSON_IsString(v))
        return "a string";
    if (cJSON_IsNumber(v))
        return "a number";
    if (cJSON_IsBool(v))
        return "a boolean";
    if (cJSON_IsNull(v))
        return "null";
    if (cJSON_IsArray(v))
        return "a list";
    if (cJSON_IsObject(v))
        return "an object";
    return "an invalid value";
}

static bool count_node(struct parser *p, const char *path, size_t n)
{
    p->nodes += n;
    if (p->nodes > FILTER_NODES_MAX) {
        perr(p, path, "the filter has more than %d conditions and listed values", FILTER_NODES_MAX);
        return false;
    }
    return true;
}

/* Reads one value v compared with field fl (key for messages) into out.
 * opref names the operator or list element ("$gte", "$in[2]"), "" for a
 * bare value. */
static bool parse_value(struct parser *p, const char *path, enum filter_field fl, const char *opref,
                        bool range, const cJSON *v, struct filter_value *out)
{
    char verb[48];
    snprintf(verb, sizeof verb, "%s%s", opref, opref[0] ? " takes" : "expects");
    struct shown sh;
    if (range || fl == FILTER_FIELD_CREATED) {
        if (!cJSON_IsNumber(v)) {
            perr(p, path, "%s a number, got %s", verb, json_kind(v));
            return false;
        }
        if (!isfinite(v->valuedouble)) {
            perr(p, path, "%s a finite number", verb);
            return false;
        }
        out->type = FILTER_V_NUMBER;
        out->n = v->valuedouble;
        return true;
    }
    if (fl == FILTER_FIELD_META) {
        if (cJSON_IsString(v)) {
            out->type = FILTER_V_STRING;
            out->s = xstrdup(v->valuestring);
        } else if (cJSON_IsNumber(v) && isfinite(v->valuedouble)) {
            out->type = FILTER_V_NUMBER;
            out->n = v->valuedouble;
        } else if (cJSON_IsBool(v)) {
            out->type = FILTER_V_BOOL;
            out->b = cJSON_IsTrue(v);
        } else {
            perr(p, path, "%s a string, a finite number or a boolean, got %s", verb,
                 cJSON_IsNumber(v) ? "an infinite number" : json_kind(v));
            return false;
        }
        return true;
    }
    if (!cJSON_IsString(v)) {
        perr(p, path, "%s a string, got %s", verb, json_kind(v));
        return false;
    }
    const char *s = v->valuestring;
    const char *sep = opref[0] ? " " : "";
    if (fl == FILTER_FIELD_ID && !uuid_valid(s)) {
        perr(p, path, "%s%s%s is not a UUID", opref, sep, show(&sh, s));
        return false;
    }
    if ((fl == FILTER_FIELD_USER || fl == FILTER_FIELD_AGENT) && !ident_valid(s)) {
        perr(p, path, "%s%s%s is not a valid id ([A-Za-z0-9_-]{1,%d})", opref, sep, show(&sh, s),
             IDENT_MAX);
        return false;
    }
    if (fl == FILTER_FIELD_KIND && (s[0] == '\0' || strlen(s) > MEM_KIND_MAX)) {
        perr(p, path, "%s%s%s is not a kind (1 to %d bytes)", opref, sep, show(&sh, s),
             MEM_KIND_MAX);
        return false;
    }
    out->type = FILTER_V_STRING;
    out->s = xstrdup(s);
    if (fl == FILTER_FIELD_ID) /* stored ids are lowercase; accept either case */
        for (char *c = out->s; *c; c++)
            *c = (char)tolower((unsigned char)*c);
    return true;
}

static bool op_lookup(const char *s, enum filter_op *op)
{
    static const enum filter_op ops[] = {FILTER_EQ, FILTER_NE,  FILTER_IN, FILTER_NIN,
                                         FILTER_GT, FILTER_GTE, FILTER_LT, FILTER_LTE};
    for (size_t i = 0; i < sizeof ops / sizeof *ops; i++) {
        if (strcmp(s, op_name(ops[i])) == 0) {
            *op = ops[i];
            return true;
        }
    }
    return false;
}

/* One comparison node: key op v, at path (the key's). */
static struct mem_filter *parse_cmp(struct parser *p, const char *path, const char *key,
                                    enum filter_field fl, enum filter_op op, bool bare,
                                    const cJSON *v)
{
    if (!count_node(p, path, 1))
        return NULL;
    const char *name = op_name(op);
    if (filter_op_is_range(op) && fl != FILTER_FIELD_CREATED && fl != FILTER_FIELD_META) {
        perr(p, path, "%s compares numbers: it applies to created_at and metadata keys, not %s",
             name, key);
        return NULL;
    }
    struct mem_filter *f = node_new(op);
    f->key = xstrdup(key);
    f->is_meta = fl == FILTER_FIELD_META;
    if (op == FILTER_IN || op == FILTER_NIN) {
        if (!cJSON_IsArray(v)) {
            perr(p, path, "%s takes a list, got %s", name, json_kind(v));
            goto fail;
        }
        int n = cJSON_GetArraySize(v);
        if (n == 0) {
            perr(p, path, "%s takes a non-empty list", name);
            goto fail;
        }
        if (!count_node(p, path, (size_t)n - 1))
            goto fail;
        f->values = xcalloc((size_t)n, sizeof *f->values);
        size_t i = 0;
        for (const cJSON *e = v->child; e != NULL; e = e->next, i++) {
            char opref[32];
            snprintf(opref, sizeof opref, "%s[%zu]", name, i);
            if (!parse_value(p, path, fl, opref, false, e, &f->values[i]))
                goto fail;
            f->n_values = i + 1;
        }
        return f;
    }
    f->values = xcalloc(1, sizeof *f->values);
    if (!parse_value(p, path, fl, bare ? "" : name, filter_op_is_range(op), v, &f->values[0]))
        goto fail;
    f->n_values = 1;
    return f;
fail:
    filter_free(f);
    return NULL;
}

/* A growable list of nodes, and/or-ed by the caller. */
struct nodes {
    struct mem_filter **v;
    size_t n, cap;
};

static void nodes_push(struct nodes *l, struct mem_filter *f)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 4;
        l->v = xreallocarray(l->v, l->cap, sizeof *l->v);
    }
    l->v[l->n++] = f;
}

static void nodes_free(struct nodes *l)
{
    for (size_t i = 0; i < l->n; i++)
        filter_free(l->v[i]);
    xfree(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

/* The nodes as one: itself when alone, else an op node holding them. */
static struct mem_filter *nodes_join(struct parser *p, const char *path, struct nodes *l,
                                     enum filter_op op)
{
    if (l->n == 1) {
        struct mem_filter *f = l->v[0];
        xfree(l->v);
        return f;
    }
    if (!count_node(p, path, 1)) {
        nodes_free(l);
        return NULL;
    }
    struct mem_filter *f = node_new(op);
    f->kids = l->v;
    f->n_kids = l->n;
    return f;
}

/* A field or metadata key with its value: a bare value ($eq) or an
 * object of operators (several mean all of them); appended to out. */
static bool parse_key(struct parser *p, const char *path, const char *key, const cJSON *v,
                      struct nodes *out)
{
    struct path kp;
    path_key(&kp, path, key);
    if (key[0] == '\0') {
        perr(p, path, "an empty key (name a field or a metadata key)");
        return false;
    }
    if (strlen(key) > FILTER_KEY_MAX) {
        perr(p, kp.s, "a key longer than %d bytes", FILTER_KEY_MAX);
        return false;
    }
    enum filter_field fl = filter_field_of(key, false);
    if (cJSON_IsObject(v)) {
        if (v->child == NULL) {
            perr(p, kp.s, "an empty operator object (accepted: " OPS_ACCEPTED ")");
            return false;
        }
        for (const cJSON *e = v->child; e != NULL; e = e->next) {
            enum filter_op op;
            struct shown sh;
            if (!op_lookup(e->string, &op)) {
                perr(p, kp.s, "unknown operator %s (accepted: " OPS_ACCEPTED ")",
                     show(&sh, e->string));
                return false;
            }
            struct mem_filter *f = parse_cmp(p, kp.s, key, fl, op, false, e);
            if (f == NULL)
                return false;
            nodes_push(out, f);
        }
        return true;
    }
    if (cJSON_IsArray(v)) {
        perr(p, kp.s, "a list needs an operator: {\"$in\": [...]} or {\"$nin\": [...]}");
        return false;
    }
    struct mem_filter *f = parse_cmp(p, kp.s, key, fl, FILTER_EQ, true, v);
    if (f == NULL)
        return false;
    nodes_push(out, f);
    return true;
}

static struct mem_filter *parse_object(struct parser *p, const char *path, const cJSON *obj,
                                       int depth);

/* $and / $or: a non-empty list of filter objects. */
static struct mem_filter *parse_logic(struct parser *p, const char *path, const char *name,
                                      enum filter_op op, const cJSON *v, int depth)
{
    struct path lp;
    path_key(&lp, path, name);
    if (!cJSON_IsArray(v)) {
        perr(p, lp.s, "takes a list of filters, got %s", json_kind(v));
        return NULL;
    }
    if (v->child == NULL) {
        perr(p, lp.s, "takes a non-empty list of filters");
        return NULL;
    }
    if (depth + 1 > FILTER_DEPTH_MAX) {
        perr(p, lp.s, "the filter nests deeper than %d levels", FILTER_DEPTH_MAX);
        return NULL;
    }
    struct nodes kids = {0};
    size_t i = 0;
    for (const cJSON *e = v->child; e != NULL; e = e->next, i++) {
        struct path ep;
        path_index(&ep, path, name, i);
        if (!cJSON_IsObject(e)) {
            perr(p, ep.s, "takes a filter object, got %s", json_kind(e));
            nodes_free(&kids);
            return NULL;
        }
        struct mem_filter *f = parse_object(p, ep.s, e, depth + 1);
        if (f == NULL) {
            nodes_free(&kids);
            return NULL;
        }
        nodes_push(&kids, f);
    }
    /* A one-element list is kept as a node of its own, so the tree and
     * filter_to_json show what was written. */
    if (!count_node(p, lp.s, 1)) {
        nodes_free(&kids);
        return NULL;
    }
    struct mem_filter *f = node_new(op);
    f->kids = kids.v;
    f->n_kids = kids.n;
    return f;
}

static struct mem_filter *parse_object(struct parser *p, const char *path, const cJSON *obj,
                                       int depth)
{
    if (obj->child == NULL) {
        perr(p, path, "an empty filter object (give at least one condition)");
        return NULL;
    }
    struct nodes conds = {0};
    for (const cJSON *e = obj->child; e != NULL; e = e->next) {
        const char *key = e->string;
        bool ok;
        if (strcmp(key, "$and") == 0 || strcmp(key, "$or") == 0) {
            struct mem_filter *f =
                parse_logic(p, path, key, key[1] == 'a' ? FILTER_AND : FILTER_OR, e, depth);
            ok = f != NULL;
            if (ok)
                nodes_push(&conds, f);
        } else if (key[0] == '$') {
            struct path kp;
            struct shown sh;
            perr(p, path_key(&kp, path, key),
                 "unknown operator %s here (accepted: $and $or, or a field or metadata key with "
                 "its condition)",
                 show(&sh, key));
            ok = false;
        } else {
            ok = parse_key(p, path, key, e, &conds);
        }
        if (!ok) {
            nodes_free(&conds);
            return NULL;
        }
    }
    return nodes_join(p, path, &conds, FILTER_AND);
}

struct mem_filter *filter_parse(const char *json, char *err, size_t errlen)
{
    struct parser p = {err, errlen, false, 0};
    if (errlen > 0)
        err[0] = '\0';
    if (json == NULL) {
        perr(&p, "", "no filter text");
        return NULL;
    }
    const char *end = NULL;
    cJSON *root = json_parse(json, strlen(json) + 1, &end, true);
    if (root == NULL && errno == ENOMEM) {
        perr(&p, "", "out of memory reading the filter");
        return NULL;
    }
    if (root == NULL) {
        /* cJSON stops at the bad byte or just after it (inside a string),
         * so the message shows the text on both sides of where it stopped. */
        size_t len = strlen(json);
        size_t off = end != NULL && end >= json ? (size_t)(end - json) : 0;
        if (off > len)
            off = len;
        size_t from = off > 24 ? off - 24 : 0;
        char before[128], after[96];
        size_t bl = 0, al = 0;
        before[0] = after[0] = '\0';
        if (from > 0)
            show_append_q(before, sizeof before, &bl, "...", 3, false);
        char *head = xstrndup(json + from, off - from);
        show_append_q(before, sizeof before, &bl, head, 24, false);
        xfree(head);
        show_append_q(after, sizeof after, &al, json + off, 16, false);
        if (len == 0)
            perr(&p, "", "empty text (a filter is a JSON object)");
        else
            perr(&p, "", "not valid JSON: parsing stopped at byte %zu of %zu (marked ^): %s^%s",
                 off, len, before, after);
        return NULL;
    }
    struct mem_filter *f = NULL;
    if (!cJSON_IsObject(root))
        perr(&p, "", "must be a JSON object, got %s", json_kind(root));
    else
        f = parse_object(&p, "", root, 1);
    cJSON_Delete(root);
    return f;
}

/* ---- JSON ------------------------------------------------------------- */

static cJSON *value_json(const struct filter_value *v)
{
    switch (v->type) {
    case FILTER_V_STRING:
        return cJSON_CreateString(v->s ? v->s : "");
    case FILTER_V_NUMBER:
        return cJSON_CreateNumber(v->n);
    case FILTER_V_BOOL:
        return cJSON_CreateBool(v->b);
    }
    return NULL;
}

/* The node as a cJSON object; NULL when an allocation fails. */
static cJSON *node_json(const struct mem_filter *f)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    if (f->op == FILTER_AND || f->op == FILTER_OR) {
        cJSON *a = cJSON_AddArrayToObject(o, op_name(f->op));
        if (a == NULL)
            goto fail;
        for (size_t i = 0; i < f->n_kids; i++) {
            cJSON *k = node_json(f->kids[i]);
            if (k == NULL || !cJSON_AddItemToArray(a, k)) {
                cJSON_Delete(k);
                goto fail;
            }
        }
        return o;
    }
    cJSON *ops = cJSON_AddObjectToObject(o, f->key ? f->key : "");
    if (ops == NULL)
        goto fail;
    cJSON *val;
    if (f->op == FILTER_IN || f->op == FILTER_NIN) {
        val = cJSON_CreateArray();
        for (size_t i = 0; val != NULL && i < f->n_values; i++) {
            cJSON *e = value_json(&f->values[i]);
            if (e == NULL || !cJSON_AddItemToArray(val, e)) {
                cJSON_Delete(e);
                cJSON_Delete(val);
                val = NULL;
            }
        }
    } else {
        val = f->n_values > 0 ? value_json(&f->values[0]) : cJSON_CreateNull();
    }
    if (val == NULL || !cJSON_AddItemToObject(ops, op_name(f->op), val)) {
        cJSON_Delete(val);
        goto fail;
    }
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}

int filter_to_json(const struct mem_filter *f, struct buf *out)
{
    if (f == NULL)
        return buf_puts(out, "{}") == BUF_OK ? 0 : -1;
    cJSON *o = node_json(f);
    if (o == NULL)
        return -1;
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (s == NULL)
        return -1;
    int rc = buf_puts(out, s) == BUF_OK ? 0 : -1;
    cJSON_free(s);
    return rc;
}

/* ---- SQL -------------------------------------------------------------- */

struct sqlgen {
    struct buf *out;
    const char *prefix;
    void (*bind)(void *ud, int index, const struct filter_value *v);
    void *ud;
    int next;
    bool failed;
};

static void sq_puts(struct sqlgen *g, const char *s)
{
    if (!g->failed && buf_puts(g->out, s) != BUF_OK)
        g->failed = true;
}

static void sq_col(struct sqlgen *g, const char *col)
{
    sq_puts(g, g->prefix);
    sq_puts(g, col);
}

/* A `?` bound to v. */
static void sq_param(struct sqlgen *g, const struct filter_value *v)
{
    sq_puts(g, "?");
    if (g->bind != NULL)
        g->bind(g->ud, g->next, v);
    g->next++;
}

/* s as an SQL string literal: single quotes doubled. */
static void sq_literal(struct sqlgen *g, const char *s)
{
    sq_puts(g, "'");
    for (const char *q; (q = strchr(s, '\'')) != NULL; s = q + 1) {
        if (!g->failed && buf_append(g->out, s, (size_t)(q - s + 1)) != BUF_OK)
            g->failed = true;
        sq_puts(g, "'");
    }
    sq_puts(g, s);
    sq_puts(g, "'");
}

static const char *sql_cmp(enum filter_op op)
{
    switch (op) {
    case FILTER_GT:
        return " > ";
    case FILTER_GTE:
        return " >= ";
    case FILTER_LT:
        return " < ";
    case FILTER_LTE:
        return " <= ";
    case FILTER_NE:
        return " <> ";
    default:
        return " = ";
    }
}

/* One metadata value test inside json_each (alias mf_je): typed. */
static void sq_meta_value(struct sqlgen *g, enum filter_op cmp, const struct filter_value *v)
{
    switch (v->type) {
    case FILTER_V_STRING:
        sq_puts(g, "(mf_je.type = 'text' AND mf_je.atom = ");
        break;
    case FILTER_V_NUMBER:
        sq_puts(g, "(mf_je.type IN ('integer', 'real') AND CAST(mf_je.atom AS REAL)");
        sq_puts(g, sql_cmp(cmp));
        break;
    case FILTER_V_BOOL: /* atom is 1 or 0; the value binds as an integer */
        sq_puts(g, "(mf_je.type IN ('true', 'false') AND mf_je.atom = ");
        break;
    }
    sq_param(g, v);
    sq_puts(g, ")");
}

static void sq_meta(struct sqlgen *g, const struct mem_filter *f)
{
    bool negate = f->op == FILTER_NE || f->op == FILTER_NIN;
    bool range = filter_op_is_range(f->op);
    /* Which values take part: ranges compare numbers only. */
    size_t used = 0;
    for (size_t i = 0; i < f->n_values; i++)
        if (!range || f->values[i].type == FILTER_V_NUMBER)
            used++;
    if (used == 0) {
        sq_puts(g, negate ? "1" : "0");
        return;
    }
    sq_puts(g, negate ? "NOT EXISTS" : "EXISTS");
    sq_puts(g, " (SELECT 1 FROM json_each(");
    sq_col(g, "metadata");
    sq_puts(g, ") AS mf_je WHERE mf_je.key = ");
    sq_literal(g, f->key ? f->key : "");
    sq_puts(g, " AND (");
    size_t n = f->op == FILTER_IN || f->op == FILTER_NIN ? f->n_values : 1;
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        if (range && f->values[i].type != FILTER_V_NUMBER)
            continue;
        if (!first)
            sq_puts(g, " OR ");
        first = false;
        sq_meta_value(g, range ? f->op : FILTER_EQ, &f->values[i]);
    }
    sq_puts(g, "))");
}

static void sq_field(struct sqlgen *g, const struct mem_filter *f, enum filter_field fl)
{
    static const char *const cols[] = {
        [FILTER_FIELD_META] = "metadata", [FILTER_FIELD_ID] = "id",
        [FILTER_FIELD_USER] = "user_id",  [FILTER_FIELD_AGENT] = "agent",
        [FILTER_FIELD_KIND] = "kind",     [FILTER_FIELD_CREATED] = "created_at",
    };
    bool negate = f->op == FILTER_NE || f->op == FILTER_NIN;
    if (filter_op_is_range(f->op) && fl != FILTER_FIELD_CREATED) {
        sq_puts(g, "0");
        return;
    }
    size_t n = f->op == FILTER_IN || f->op == FILTER_NIN ? f->n_values : 1;
    size_t used = 0;
    for (size_t i = 0; i < n && i < f->n_values; i++)
        if (field_takes(fl, f->values[i].type))
            used++;
    if (used == 0) {
        sq_puts(g, negate ? "1" : "0");
        return;
    }
    sq_puts(g, "(");
    sq_col(g, cols[fl]);
    if (f->op == FILTER_IN || f->op == FILTER_NIN) {
        sq_puts(g, negate ? " NOT IN (" : " IN (");
        bool first = true;
        for (size_t i = 0; i < n; i++) {
            if (!field_takes(fl, f->values[i].type))
                continue;
            if (!first)
                sq_puts(g, ", ");
            first = false;
            sq_param(g, &f->values[i]);
        }
        sq_puts(g, "))");
        return;
    }
    sq_puts(g, sql_cmp(f->op));
    sq_param(g, &f->values[0]);
    sq_puts(g, ")");
}

static void sq_node(struct sqlgen *g, const struct mem_filter *f)
{
    if (f->op == FILTER_AND || f->op == FILTER_OR) {
        if (f->n_kids == 0) {
            sq_puts(g, f->op == FILTER_AND ? "1" : "0");
            return;
        }
        sq_puts(g, "(");
        for (size_t i = 0; i < f->n_kids; i++) {
            if (i > 0)
                sq_puts(g, f->op == FILTER_AND ? " AND " : " OR ");
            sq_node(g, f->kids[i]);
        }
        sq_puts(g, ")");
        return;
    }
    if (f->n_values == 0) { /* a hand-built node without a value matches nothing */
        sq_puts(g, f->op == FILTER_NE || f->op == FILTER_NIN ? "1" : "0");
        return;
    }
    enum filter_field fl = filter_field_of(f->key, f->is_meta);
    if (fl == FILTER_FIELD_META)
        sq_meta(g, f);
    else
        sq_field(g, f, fl);
}

int filter_sql(const struct mem_filter *f, const char *prefix, struct buf *out,
               void (*bind)(void *ud, int index, const struct filter_value *v), void *ud)
{
    struct sqlgen g = {out, prefix ? prefix : "", bind, ud, 0, false};
    if (f == NULL)
        sq_puts(&g, "1");
    else
        sq_node(&g, f);
    return g.failed ? -1 : 0;
}

/* ---- evaluation ------------------------------------------------------- */

struct matcher {
    const struct mem_record *r;
    cJSON *meta; /* parsed on first use; NULL: no metadata, or not an object */
    bool parsed;
};

static bool meta_value_is(const cJSON *item, enum filter_op cmp, const struct filter_value *v)
{
    switch (v->type) {
    case FILTER_V_STRING:
        return cmp == FILTER_EQ && cJSON_IsString(item) &&
               strcmp(item->valuestring, v->s ? v->s : "") == 0;
    case FILTER_V_BOOL:
        return cmp == FILTER_EQ && cJSON_IsBool(item) && (cJSON_IsTrue(item) != 0) == v->b;
    case FILTER_V_NUMBER:
        if (!cJSON_IsNumber(item))
            return false;
        switch (cmp) {
        case FILTER_GT:
            return item->valuedouble > v->n;
        case FILTER_GTE:
            return item->valuedouble >= v->n;
        case FILTER_LT:
            return item->valuedouble < v->n;
        case FILTER_LTE:
            return item->valuedouble <= v->n;
        default:
            return item->valuedouble == v->n;
        }
    }
    return false;
}

static bool match_meta(const struct mem_filter *f, struct matcher *m)
{
    if (!m->parsed) {
        m->parsed = true;
        if (m->r->metadata != NULL) {
            m->meta = cJSON_Parse(m->r->metadata);
            if (m->meta != NULL && !cJSON_IsObject(m->meta)) {
                cJSON_Delete(m->meta);
                m->meta = NULL;
            }
        }
    }
    bool negate = f->op == FILTER_NE || f->op == FILTER_NIN;
    bool range = filter_op_is_range(f->op);
    size_t n = f->op == FILTER_IN || f->op == FILTER_NIN ? f->n_values : 1;
    bool found = false;
    const char *key = f->key ? f->key : "";
    for (const cJSON *e = m->meta ? m->meta->child : NULL; e != NULL && !found; e = e->next) {
        if (e->string == NULL || strcmp(e->string, key) != 0)
            continue;
        for (size_t i = 0; i < n && !found; i++)
            found = meta_value_is(e, range ? f->op : FILTER_EQ, &f->values[i]);
    }
    return negate ? !found : found;
}

static bool field_value_is(const struct mem_record *r, enum filter_field fl, enum filter_op cmp,
                           const struct filter_value *v)
{
    if (!field_takes(fl, v->type))
        return false;
    if (fl == FILTER_FIELD_CREATED) {
        double c = (double)r->created_at;
        switch (cmp) {
        case FILTER_GT:
            return c > v->n;
        case FILTER_GTE:
            return c >= v->n;
        case FILTER_LT:
            return c < v->n;
        case FILTER_LTE:
            return c <= v->n;
        default:
            return c == v->n;
        }
    }
    if (filter_op_is_range(cmp))
        return false;
    const char *s = fl == FILTER_FIELD_ID      ? r->id
                    : fl == FILTER_FIELD_USER  ? r->user_id
                    : fl == FILTER_FIELD_AGENT ? r->agent
                                               : r->kind;
    return strcmp(s, v->s ? v->s : "") == 0;
}

static bool match_node(const struct mem_filter *f, struct matcher *m)
{
    if (f->op == FILTER_AND) {
        for (size_t i = 0; i < f->n_kids; i++)
            if (!match_node(f->kids[i], m))
                return false;
        return true;
    }
    if (f->op == FILTER_OR) {
        for (size_t i = 0; i < f->n_kids; i++)
            if (match_node(f->kids[i], m))
                return true;
        return false;
    }
    bool negate = f->op == FILTER_NE || f->op == FILTER_NIN;
    if (f->n_values == 0)
        return negate;
    enum filter_field fl = filter_field_of(f->key, f->is_meta);
    if (fl == FILTER_FIELD_META)
        return match_meta(f, m);
    size_t n = f->op == FILTER_IN || f->op == FILTER_NIN ? f->n_values : 1;
    bool found = false;
    for (size_t i = 0; i < n && !found; i++)
        found = field_value_is(m->r, fl, negate ? FILTER_EQ : f->op, &f->values[i]);
    return negate ? !found : found;
}

bool filter_match(const struct mem_filter *f, const struct mem_record *r)
{
    if (f == NULL)
        return true;
    struct matcher m = {r, NULL, false};
    bool ok = match_node(f, &m);
    cJSON_Delete(m.meta);
    return ok;
}
