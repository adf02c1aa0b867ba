/*
 * The qdrant service of fakevec: an in-memory Qdrant REST server for the
 * tests of memory/store_qdrant.c. It keeps collections (vector size and
 * distance, payload indexes) and their points (unsigned integer or UUID
 * ids, a vector, a payload), searches exactly (Dot or Cosine), evaluates
 * Qdrant's filter grammar (must/should/must_not/min_should, match
 * value/any/except, range, has_id, is_empty, is_null, dotted keys into
 * nested objects, arrays matching when any element does), scrolls in
 * point-id order with next_page_offset, counts, deletes by ids or filter
 * and sets payload. Everything follows api-notes §5, and what the notes
 * do not fix follows the real server as far as known.
 *
 * It is strict on purpose, so a test that passes has sent what the
 * documentation says: paths, methods, required fields and their types,
 * vector lengths, unknown fields (in bodies and filters) are checked, and
 * a failing request gets Qdrant's error envelope {"status":{"error":..},
 * "time":0,"result":null}: 404 for a missing collection or route, 400 for
 * wrong input (as Qdrant says "Wrong input"), 422 for a body that does not
 * deserialize (the fake's choice: real Qdrant's status for some of these
 * is 400). With --key, the api-key header or Authorization: Bearer must
 * carry it, else 401, in the same envelope (real Qdrant's 401 body is not
 * documented in the notes). GET / answers without the envelope, as the real
 * server does.
 *
 * One rule is not Qdrant's but memchat's (api-notes §5, multitenancy): a
 * read, count, scroll, query, delete or set-payload whose filter has no
 * `must` match on "tenant" is refused with 400 "fake: tenant filter
 * missing", so the tests prove every call is confined to one tenant. The
 * only exemption is a scroll of a collection named *_namespaces (listing
 * the tenants is the one read that cannot name one).
 */
#include "config.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fakevec.h"

#define QF_NAME_MAX 255

struct qf_point {
    char id[40];  /* canonical: lowercase hyphenated UUID, or decimal digits */
    bool numeric; /* an unsigned integer id */
    unsigned long long num;
    float *vec;
    cJSON *payload; /* object */
    unsigned long version;
};

struct qf_coll {
    char name[QF_NAME_MAX + 1];
    int size;
    char distance[16];
    cJSON *indexes; /* field name -> schema */
    struct qf_point *pts;
    size_t n, cap;
};

struct qf_state {
    struct qf_coll **colls;
    size_t n, cap;
    unsigned long op_id;
};

/* A failed check: status and message; the handler answers it. */
struct qf_err {
    int status;
    char msg[512];
};

static bool qf_fail(struct qf_err *e, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool qf_fail(struct qf_err *e, int status, const char *fmt, ...)
{
    if (e->status != 0)
        return false;
    e->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return false;
}

static void *qf_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL) {
        fputs("fake_qdrant: out of memory\n", stderr);
        abort();
    }
    return p;
}

static void *qf_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL) {
        fputs("fake_qdrant: out of memory\n", stderr);
        abort();
    }
    return q;
}

/* ---- replies ------------------------------------------------------------ */

static void qf_ok(struct fv_reply *rep, cJSON *result)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "result", result != NULL ? result : cJSON_CreateNull());
    cJSON_AddStringToObject(o, "status", "ok");
    cJSON_AddNumberToObject(o, "time", 0);
    fv_reply_json(rep, 200, o);
}

static void qdrant_error(void *st, int status, const char *message, struct fv_reply *rep)
{
    (void)st;
    cJSON *o = cJSON_CreateObject();
    cJSON *s = cJSON_AddObjectToObject(o, "status");
    cJSON_AddStringToObject(s, "error", message);
    cJSON_AddNumberToObject(o, "time", 0);
    cJSON_AddNullToObject(o, "result");
    fv_reply_json(rep, status, o);
}

static cJSON *qf_update_result(struct qf_state *st, const struct fv_request *rq)
{
    char wait[16] = "";
    fv_query_param(rq, "wait", 0, wait, sizeof wait);
    cJSON *r = cJSON_CreateObject();
    cJSON_AddNumberToObject(r, "operation_id", (double)++st->op_id);
    cJSON_AddStringToObject(r, "status", strcmp(wait, "true") == 0 ? "completed" : "acknowledged");
    return r;
}

/* ---- state ---------------------------------------------------------------- */

static void qf_point_free(struct qf_point *p)
{
    free(p->vec);
    cJSON_Delete(p->payload);
}

static void qf_coll_free(struct qf_coll *c)
{
    for (size_t i = 0; i < c->n; i++)
        qf_point_free(&c->pts[i]);
    free(c->pts);
    cJSON_Delete(c->indexes);
    free(c);
}

static struct qf_coll *qf_coll_find(struct qf_state *st, const char *name)
{
    for (size_t i = 0; i < st->n; i++)
        if (strcmp(st->colls[i]->name, name) == 0)
            return st->colls[i];
    return NULL;
}

static void qf_coll_remove(struct qf_state *st, struct qf_coll *c)
{
    for (size_t i = 0; i < st->n; i++) {
        if (st->colls[i] != c)
            continue;
        qf_coll_free(c);
        st->colls[i] = st->colls[--st->n];
        return;
    }
}

/* Point ids sort: integers first by value, then UUIDs by text. */
static int qf_id_cmp(const struct qf_point *a, const struct qf_point *b)
{
    if (a->numeric != b->numeric)
        return a->numeric ? -1 : 1;
    if (a->numeric)
        return a->num < b->num ? -1 : a->num > b->num;
    return strcmp(a->id, b->id);
}

static int qf_point_qsort(const void *a, const void *b)
{
    return qf_id_cmp(a, b);
}

/* An ExtendedPointId into p's id fields. */
static bool qf_parse_id(const cJSON *v, struct qf_point *p, struct qf_err *e)
{
    memset(p->id, 0, sizeof p->id);
    if (cJSON_IsNumber(v)) {
        if (v->valuedouble < 0 || v->valuedouble != floor(v->valuedouble) ||
            v->valuedouble > 18446744073709551615.0)
            return qf_fail(
                e, 422,
                "Format error in JSON body: point id must be an unsigned integer or a UUID");
        p->numeric = true;
        p->num = (unsigned long long)v->valuedouble;
        snprintf(p->id, sizeof p->id, "%llu", p->num);
        return true;
    }
    if (!cJSON_IsString(v))
        return qf_fail(e, 422,
                       "Format error in JSON body: point id must be an unsigned integer or a UUID");
    const char *s = v->valuestring;
    /* Only the hyphenated form: the notes leave the other UNVERIFIED. */
    if (strlen(s) != 36)
        return qf_fail(e, 422, "Format error in JSON body: point id \"%.60s\" is not a UUID", s);
    for (int i = 0; i < 36; i++) {
        bool hy = i == 8 || i == 13 || i == 18 || i == 23;
        if (hy ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
            return qf_fail(e, 422, "Format error in JSON body: point id \"%.60s\" is not a UUID",
                           s);
        p->id[i] = (char)tolower((unsigned char)s[i]);
    }
    p->numeric = false;
    p->num = 0;
    return true;
}

static cJSON *qf_id_json(const struct qf_point *p)
{
    return p->numeric ? cJSON_CreateNumber((double)p->num) : cJSON_CreateString(p->id);
}

/* Refuses any key of o not in the NULL-terminated list. */
static bool qf_known_fields(const cJSON *o, const char *what, const char *const *allowed,
                            struct qf_err *e)
{
    for (const cJSON *c = o->child; c != NULL; c = c->next) {
        bool ok = false;
        for (size_t i = 0; allowed[i] != NULL && !ok; i++)
            ok = strcmp(c->string, allowed[i]) == 0;
        if (!ok)
            return qf_fail(e, 422, "Format error in JSON body: %s: unknown field `%.80s`", what,
                           c->string);
    }
    return true;
}

/* ---- filters ----------------------------------------------------------- */

/* The values at a dotted key path of payload (arrays at the end expand). */
struct qf_vals {
    const cJSON *v[256];
    size_t n;
};

static bool qf_key_ok(const char *key)
{
    if (key[0] == '\0')
        return false;
    for (const char *c = key; *c; c++)
        if (!(isalnum((unsigned char)*c) || *c == '_' || *c == '-' || *c == '.' || *c == '[' ||
              *c == ']'))
            return false;
    return true;
}

static void qf_collect(const cJSON *node, const char *path, struct qf_vals *out)
{
    if (node == NULL)
        return;
    if (*path == '\0') {
        if (cJSON_IsArray(node)) {
            const cJSON *x;
            cJSON_ArrayForEach(x, node) if (out->n < 256) out->v[out->n++] = x;
        } else if (out->n < 256) {
            out->v[out->n++] = node;
        }
        return;
    }
    size_t len = strcspn(path, ".");
    char seg[256];
    if (len >= sizeof seg)
        return;
    memcpy(seg, path, len);
    seg[len] = '\0';
    bool all = len > 2 && strcmp(seg + len - 2, "[]") == 0;
    if (all)
        seg[len - 2] = '\0';
    const char *rest = path[len] == '.' ? path + len + 1 : path + len;
    const cJSON *child = cJSON_IsObject(node) ? cJSON_GetObjectItemCaseSensitive(node, seg) : NULL;
    if (all && cJSON_IsArray(child)) {
        const cJSON *x;
        cJSON_ArrayForEach(x, child) qf_collect(x, rest, out);
        return;
    }
    qf_collect(child, rest, out);
}

static bool qf_is_int(const cJSON *v)
{
    return cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) &&
           fabs(v->valuedouble) < 9.2e18;
}

/* A match value: string, integer or bool (floats are refused by Qdrant). */
static bool qf_value_ok(const cJSON *v)
{
    return cJSON_IsString(v) || qf_is_int(v) || cJSON_IsBool(v);
}

static bool qf_value_eq(const cJSON *have, const cJSON *want)
{
    if (cJSON_IsString(want))
        return cJSON_IsString(have) && strcmp(have->valuestring, want->valuestring) == 0;
    if (cJSON_IsBool(want))
        return cJSON_IsBool(have) && cJSON_IsTrue(have) == cJSON_IsTrue(want);
    return qf_is_int(have) && have->valuedouble == want->valuedouble;
}

static bool qf_check_filter(const cJSON *f, struct qf_err *e, int depth);

static bool qf_check_match(const cJSON *m, struct qf_err *e)
{
    static const char *const allowed[] = {"value", "any", "except", NULL};
    if (!cJSON_IsObject(m) || cJSON_GetArraySize(m) != 1)
        return qf_fail(
            e, 422,
            "Format error in JSON body: match must be an object with one of value, any, except");
    if (!qf_known_fields(m, "match", allowed, e))
        return false;
    const cJSON *v = m->child;
    if (strcmp(v->string, "value") == 0) {
        if (!qf_value_ok(v))
            return qf_fail(
                e, 422,
                "Format error in JSON body: match.value must be a string, an integer or a bool");
        return true;
    }
    if (!cJSON_IsArray(v))
        return qf_fail(e, 422, "Format error in JSON body: match.%s must be a list", v->string);
    const cJSON *x;
    cJSON_ArrayForEach(x, v) if (!cJSON_IsString(x) && !qf_is_int(x)) return qf_fail(
        e, 422, "Format error in JSON body: match.%s takes strings or integers", v->string);
    return true;
}

static bool qf_check_range(const cJSON *r, struct qf_err *e)
{
    static const char *const allowed[] = {"gt", "gte", "lt", "lte", NULL};
    if (!cJSON_IsObject(r) || r->child == NULL)
        return qf_fail(e, 422,
                       "Format error in JSON body: range must be an object with gt/gte/lt/lte");
    if (!qf_known_fields(r, "range", allowed, e))
        return false;
    for (const cJSON *c = r->child; c != NULL; c = c->next)
        if (!cJSON_IsNumber(c) && !cJSON_IsNull(c))
            return qf_fail(e, 422, "Format error in JSON body: range.%s must be a number",
                           c->string);
    return true;
}

static bool qf_check_cond(const cJSON *c, struct qf_err *e, int depth)
{
    if (!cJSON_IsObject(c))
        return qf_fail(e, 422, "Format error in JSON body: a condition must be an object");
    const cJSON *key = cJSON_GetObjectItemCaseSensitive(c, "key");
    if (key != NULL) {
        static const char *const allowed[] = {"key", "match", "range", NULL};
        if (!qf_known_fields(c, "field condition", allowed, e))
            return false;
        if (!cJSON_IsString(key) || !qf_key_ok(key->valuestring))
            return qf_fail(e, 400, "Wrong input: bad payload key in a field condition");
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(c, "match");
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(c, "range");
        if ((m == NULL) == (r == NULL))
            return qf_fail(e, 422,
                           "Format error in JSON body: a field condition needs exactly one of "
                           "match, range (fake)");
        return m != NULL ? qf_check_match(m, e) : qf_check_range(r, e);
    }
    if (cJSON_GetObjectItemCaseSensitive(c, "has_id") != NULL) {
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(c, "has_id");
        static const char *const allowed[] = {"has_id", NULL};
        if (!qf_known_fields(c, "has_id condition", allowed, e))
            return false;
        if (!cJSON_IsArray(ids))
            return qf_fail(e, 422, "Format error in JSON body: has_id must be a list");
        const cJSON *x;
        struct qf_point tmp;
        cJSON_ArrayForEach(x, ids) if (!qf_parse_id(x, &tmp, e)) return false;
        return true;
    }
    const cJSON *ie = cJSON_GetObjectItemCaseSensitive(c, "is_empty");
    if (ie == NULL)
        ie = cJSON_GetObjectItemCaseSensitive(c, "is_null");
    if (ie != NULL) {
        if (cJSON_GetArraySize(c) != 1 || !cJSON_IsObject(ie) ||
            !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(ie, "key")))
            return qf_fail(e, 422,
                           "Format error in JSON body: is_empty/is_null take {\"key\":...}");
        return true;
    }
    return qf_check_filter(c, e, depth + 1);
}

static bool qf_check_clause(const cJSON *v, struct qf_err *e, int depth)
{
    if (cJSON_IsArray(v)) {
        const cJSON *c;
        cJSON_ArrayForEach(c, v) if (!qf_check_cond(c, e, depth)) return false;
        return true;
    }
    if (cJSON_IsNull(v))
        return true;
    return qf_check_cond(v, e, depth);
}

static bool qf_check_filter(const cJSON *f, struct qf_err *e, int depth)
{
    static const char *const allowed[] = {"must", "should", "must_not", "min_should", NULL};
    if (depth > 64)
        return qf_fail(e, 400, "Wrong input: filter nested too deep");
    if (!cJSON_IsObject(f))
        return qf_fail(e, 422, "Format error in JSON body: filter must be an object");
    if (!qf_known_fields(f, "filter", allowed, e))
        return false;
    for (const cJSON *c = f->child; c != NULL; c = c->next) {
        if (strcmp(c->string, "min_should") == 0) {
            const cJSON *conds = cJSON_GetObjectItemCaseSensitive(c, "conditions");
            const cJSON *mc = cJSON_GetObjectItemCaseSensitive(c, "min_count");
            if (!cJSON_IsArray(conds) || !qf_is_int(mc))
                return qf_fail(
                    e, 422, "Format error in JSON body: min_should takes conditions and min_count");
            if (!qf_check_clause(conds, e, depth))
                return false;
            continue;
        }
        if (!qf_check_clause(c, e, depth))
            return false;
    }
    return true;
}

static bool qf_eval_filter(const cJSON *f, const struct qf_point *p);

static bool qf_eval_field(const cJSON *c, const struct qf_point *p)
{
    struct qf_vals vals = {.n = 0};
    qf_collect(p->payload, cJSON_GetObjectItemCaseSensitive(c, "key")->valuestring, &vals);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(c, "match");
    if (m != NULL) {
        const cJSON *v = m->child;
        if (strcmp(v->string, "value") == 0) {
            for (size_t i = 0; i < vals.n; i++)
                if (qf_value_eq(vals.v[i], v))
                    return true;
            return false;
        }
        bool any = strcmp(v->string, "any") == 0;
        for (size_t i = 0; i < vals.n; i++) {
            bool in = false;
            const cJSON *x;
            cJSON_ArrayForEach(x, v) in = in || qf_value_eq(vals.v[i], x);
            if (any == in)
                return true;
        }
        return false;
    }
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(c, "range");
    for (size_t i = 0; i < vals.n; i++) {
        if (!cJSON_IsNumber(vals.v[i]))
            continue;
        double x = vals.v[i]->valuedouble;
        bool ok = true;
        for (const cJSON *b = r->child; b != NULL && ok; b = b->next) {
            if (!cJSON_IsNumber(b))
                continue;
            if (strcmp(b->string, "gt") == 0)
                ok = x > b->valuedouble;
            else if (strcmp(b->string, "gte") == 0)
                ok = x >= b->valuedouble;
            else if (strcmp(b->string, "lt") == 0)
                ok = x < b->valuedouble;
            else
                ok = x <= b->valuedouble;
        }
        if (ok)
            return true;
    }
    return false;
}

static bool qf_eval_cond(const cJSON *c, const struct qf_point *p)
{
    if (cJSON_GetObjectItemCaseSensitive(c, "key") != NULL)
        return qf_eval_field(c, p);
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(c, "has_id");
    if (ids != NULL) {
        const cJSON *x;
        cJSON_ArrayForEach(x, ids)
        {
            struct qf_point tmp;
            struct qf_err e = {0};
            if (qf_parse_id(x, &tmp, &e) && qf_id_cmp(&tmp, p) == 0)
                return true;
        }
        return false;
    }
    const cJSON *ie = cJSON_GetObjectItemCaseSensitive(c, "is_empty");
    bool empty = ie != NULL;
    if (ie == NULL)
        ie = cJSON_GetObjectItemCaseSensitive(c, "is_null");
    if (ie != NULL) {
        struct qf_vals vals = {.n = 0};
        qf_collect(p->payload, cJSON_GetObjectItemCaseSensitive(ie, "key")->valuestring, &vals);
        if (empty) {
            for (size_t i = 0; i < vals.n; i++)
                if (!cJSON_IsNull(vals.v[i]))
                    return false;
            return true;
        }
        return vals.n == 1 && cJSON_IsNull(vals.v[0]);
    }
    return qf_eval_filter(c, p);
}

/* How many conditions of clause v hold. */
static size_t qf_eval_count(const cJSON *v, const struct qf_point *p, size_t *total)
{
    size_t n = 0;
    *total = 0;
    if (cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsArray(v)) {
        *total = 1;
        return qf_eval_cond(v, p);
    }
    const cJSON *c;
    cJSON_ArrayForEach(c, v)
    {
        (*total)++;
        n += qf_eval_cond(c, p);
    }
    return n;
}

static bool qf_eval_filter(const cJSON *f, const struct qf_point *p)
{
    if (f == NULL || cJSON_IsNull(f))
        return true;
    for (const cJSON *c = f->child; c != NULL; c = c->next) {
        size_t total = 0;
        if (strcmp(c->string, "min_should") == 0) {
            size_t n = qf_eval_count(cJSON_GetObjectItemCaseSensitive(c, "conditions"), p, &total);
            if (n < (size_t)cJSON_GetObjectItemCaseSensitive(c, "min_count")->valuedouble)
                return false;
            continue;
        }
        size_t n = qf_eval_count(c, p, &total);
        if (strcmp(c->string, "must") == 0 && n != total)
            return false;
        if (strcmp(c->string, "should") == 0 && total > 0 && n == 0)
            return false;
        if (strcmp(c->string, "must_not") == 0 && n > 0)
            return false;
    }
    return true;
}

/* memchat's rule: the filter's must names one tenant. */
static bool qf_has_tenant(const cJSON *filter)
{
    const cJSON *must = cJSON_GetObjectItemCaseSensitive(filter, "must");
    const cJSON *c;
    if (cJSON_IsObject(must)) {
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(must, "key");
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(must, "match"), "value");
        return cJSON_IsString(k) && strcmp(k->valuestring, "tenant") == 0 && cJSON_IsString(v);
    }
    cJSON_ArrayForEach(c, must)
    {
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(c, "key");
        const cJSON *v =
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c, "match"), "value");
        if (cJSON_IsString(k) && strcmp(k->valuestring, "tenant") == 0 && cJSON_IsString(v))
            return true;
    }
    return false;
}

/* The request's filter, checked: NULL when absent (allowed only when
 * tenant_exempt); false with e set when wrong. */
static bool qf_take_filter(const cJSON *body, bool tenant_exempt, const cJSON **out,
                           struct qf_err *e)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(body, "filter");
    *out = NULL;
    if (f != NULL && !cJSON_IsNull(f)) {
        if (!qf_check_filter(f, e, 0))
            return false;
        *out = f;
    }
    if (!tenant_exempt && (*out == NULL || !qf_has_tenant(*out)))
        return qf_fail(e, 400, "fake: tenant filter missing");
    return true;
}

/* ---- payload selection ---------------------------------------------------- */

static bool qf_check_with_payload(const cJSON *w, struct qf_err *e)
{
    if (w == NULL || cJSON_IsBool(w))
        return true;
    const cJSON *list = w;
    if (cJSON_IsObject(w)) {
        list = cJSON_GetObjectItemCaseSensitive(w, "include");
        if (list == NULL)
            list = cJSON_GetObjectItemCaseSensitive(w, "exclude");
        if (cJSON_GetArraySize(w) != 1)
            list = NULL;
    }
    if (!cJSON_IsArray(list))
        return qf_fail(e, 422,
                       "Format error in JSON body: with_payload must be a bool, a list of fields "
                       "or {include|exclude}");
    const cJSON *x;
    cJSON_ArrayForEach(x, list) if (!cJSON_IsString(x)) return qf_fail(
        e, 422, "Format error in JSON body: with_payload fields must be strings");
    return true;
}

static bool qf_in_list(const cJSON *list, const char *name)
{
    const cJSON *x;
    cJSON_ArrayForEach(x, list) if (strcmp(x->valuestring, name) == 0) return true;
    return false;
}

/* The point as Qdrant answers it. */
static cJSON *qf_point_json(const struct qf_coll *c, const struct qf_point *p, const cJSON *wp,
                            bool wv, bool defpayload, const double *score)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "id", qf_id_json(p));
    cJSON_AddNumberToObject(o, "version", (double)p->version);
    if (score != NULL)
        cJSON_AddNumberToObject(o, "score", *score);
    bool want = wp == NULL ? defpayload : !cJSON_IsFalse(wp);
    if (want) {
        const cJSON *inc = cJSON_IsArray(wp) ? wp : cJSON_GetObjectItemCaseSensitive(wp, "include");
        const cJSON *exc = cJSON_GetObjectItemCaseSensitive(wp, "exclude");
        cJSON *pl = cJSON_CreateObject();
        for (const cJSON *f = p->payload->child; f != NULL; f = f->next) {
            if ((inc != NULL && !qf_in_list(inc, f->string)) ||
                (exc != NULL && qf_in_list(exc, f->string)))
                continue;
            cJSON_AddItemToObject(pl, f->string, cJSON_Duplicate(f, true));
        }
        cJSON_AddItemToObject(o, "payload", pl);
    }
    if (wv) {
        cJSON *v = cJSON_CreateArray();
        for (int i = 0; i < c->size; i++)
            cJSON_AddItemToArray(v, cJSON_CreateNumber((double)p->vec[i]));
        cJSON_AddItemToObject(o, "vector", v);
    }
    return o;
}

/* ---- handlers ----------------------------------------------------------- */

static bool qf_name_ok(const char *n)
{
    size_t len = strlen(n);
    return len > 0 && len <= QF_NAME_MAX &&
           strspn(n, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == len;
}

static bool qf_body_object(const struct fv_request *rq, struct qf_err *e)
{
    if (!cJSON_IsObject(rq->json))
        return qf_fail(e, 422, "Format error in JSON body: the body must be a JSON object");
    const char *ct = fv_header(rq, "content-type");
    if (ct == NULL || strncmp(ct, "application/json", 16) != 0)
        return qf_fail(e, 400, "fake: Content-Type must be application/json");
    return true;
}

static void qf_create_collection(struct qf_state *st, const char *name, const struct fv_request *rq,
                                 struct fv_reply *rep, struct qf_err *e)
{
    static const char *const allowed[] = {"vectors",
                                          "hnsw_config",
                                          "optimizers_config",
                                          "quantization_config",
                                          "shard_number",
                                          "replication_factor",
                                          "sparse_vectors",
                                          "on_disk_payload",
                                          "write_consistency_factor",
                                          NULL};
    if (!qf_body_object(rq, e) || !qf_known_fields(rq->json, "CreateCollection", allowed, e))
        return;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(rq->json, "vectors");
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(v, "size");
    const cJSON *dist = cJSON_GetObjectItemCaseSensitive(v, "distance");
    static const char *const vallowed[] = {"size", "distance", "on_disk", "hnsw_config", NULL};
    if (!cJSON_IsObject(v) || !qf_known_fields(v, "vectors", vallowed, e))
        return (void)qf_fail(e, 422,
                             "Format error in JSON body: vectors must be {size, distance} (the "
                             "fake has no named vectors)");
    if (!qf_is_int(size) || size->valuedouble < 1 || size->valuedouble > 65536)
        return (void)qf_fail(e, 422,
                             "Format error in JSON body: vectors.size must be a positive integer");
    if (!cJSON_IsString(dist) ||
        (strcmp(dist->valuestring, "Dot") != 0 && strcmp(dist->valuestring, "Cosine") != 0 &&
         strcmp(dist->valuestring, "Euclid") != 0 && strcmp(dist->valuestring, "Manhattan") != 0))
        return (void)qf_fail(
            e, 422,
            "Format error in JSON body: vectors.distance must be Cosine, Euclid, Dot or Manhattan");
    if (strcmp(dist->valuestring, "Dot") != 0 && strcmp(dist->valuestring, "Cosine") != 0)
        return (void)qf_fail(e, 400, "fake: only Dot and Cosine are implemented");
    if (qf_coll_find(st, name) != NULL)
        return (void)qf_fail(e, 409, "Wrong input: Collection `%s` already exists!", name);
    struct qf_coll *c = qf_xcalloc(1, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    c->size = (int)size->valuedouble;
    snprintf(c->distance, sizeof c->distance, "%s", dist->valuestring);
    c->indexes = cJSON_CreateObject();
    if (st->n == st->cap) {
        st->cap = st->cap ? st->cap * 2 : 8;
        st->colls = qf_xrealloc(st->colls, st->cap * sizeof *st->colls);
    }
    st->colls[st->n++] = c;
    qf_ok(rep, cJSON_CreateTrue());
}

static void qf_create_index(struct qf_state *st, struct qf_coll *c, const struct fv_request *rq,
                            struct fv_reply *rep, struct qf_err *e)
{
    static const char *const allowed[] = {"field_name", "field_schema", NULL};
    static const char *const types[] = {"keyword", "integer",  "float", "geo", "text",
                                        "bool",    "datetime", "uuid",  NULL};
    if (!qf_body_object(rq, e) || !qf_known_fields(rq->json, "CreateFieldIndex", allowed, e))
        return;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(rq->json, "field_name");
    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(rq->json, "field_schema");
    if (!cJSON_IsString(name) || !qf_key_ok(name->valuestring))
        return (void)qf_fail(e, 422, "Format error in JSON body: field_name must be a payload key");
    const cJSON *type =
        cJSON_IsString(schema) ? schema : cJSON_GetObjectItemCaseSensitive(schema, "type");
    bool known = false;
    for (size_t i = 0; cJSON_IsString(type) && types[i] != NULL && !known; i++)
        known = strcmp(type->valuestring, types[i]) == 0;
    if (!known)
        return (void)qf_fail(e, 422,
                             "Format error in JSON body: field_schema must name an index type");
    const cJSON *ten = cJSON_GetObjectItemCaseSensitive(schema, "is_tenant");
    if (ten != NULL && (!cJSON_IsBool(ten) || (strcmp(type->valuestring, "keyword") != 0 &&
                                               strcmp(type->valuestring, "uuid") != 0)))
        return (void)qf_fail(
            e, 422, "Format error in JSON body: is_tenant is a bool of keyword and uuid indexes");
    cJSON_DeleteItemFromObjectCaseSensitive(c->indexes, name->valuestring);
    cJSON_AddItemToObject(c->indexes, name->valuestring, cJSON_Duplicate(schema, true));
    qf_ok(rep, qf_update_result(st, rq));
}

static struct qf_point *qf_point_find(struct qf_coll *c, const struct qf_point *key)
{
    for (size_t i = 0; i < c->n; i++)
        if (qf_id_cmp(&c->pts[i], key) == 0)
            return &c->pts[i];
    return NULL;
}

static bool qf_read_vector(const struct qf_coll *c, const cJSON *v, float **out, struct qf_err *e)
{
    if (!cJSON_IsArray(v))
        return qf_fail(e, 422,
                       "Format error in JSON body: a vector must be a list of numbers (the fake "
                       "has no named vectors)");
    if (cJSON_GetArraySize(v) != c->size)
        return qf_fail(e, 400, "Wrong input: Vector dimension error: expected dim: %d, got %d",
                       c->size, cJSON_GetArraySize(v));
    float *vec = qf_xcalloc((size_t)c->size, sizeof *vec);
    int i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, v)
    {
        if (!cJSON_IsNumber(x)) {
            free(vec);
            return qf_fail(e, 422, "Format error in JSON body: a vector holds a non-number");
        }
        vec[i++] = (float)x->valuedouble;
    }
    if (strcmp(c->distance, "Cosine") == 0) { /* Qdrant normalises on the way in */
        double n = 0;
        for (int k = 0; k < c->size; k++)
            n += (double)vec[k] * (double)vec[k];
        n = sqrt(n);
        for (int k = 0; n > 0 && k < c->size; k++)
            vec[k] = (float)((double)vec[k] / n);
    }
    *out = vec;
    return true;
}

static void qf_upsert(struct qf_state *st, struct qf_coll *c, const struct fv_request *rq,
                      struct fv_reply *rep, struct qf_err *e)
{
    static const char *const allowed[] = {"points", "shard_key", NULL};
    static const char *const pallowed[] = {"id", "vector", "payload", NULL};
    if (!qf_body_object(rq, e) || !qf_known_fields(rq->json, "PointsList", allowed, e))
        return;
    const cJSON *pts = cJSON_GetObjectItemCaseSensitive(rq->json, "points");
    if (!cJSON_IsArray(pts))
        return (void)qf_fail(
            e, 422,
            "Format error in JSON body: points must be a list (the fake has no batch form)");
    /* Check all first: a refused request changes nothing. */
    const cJSON *p;
    cJSON_ArrayForEach(p, pts)
    {
        struct qf_point tmp;
        float *vec = NULL;
        if (!cJSON_IsObject(p) || !qf_known_fields(p, "PointStruct", pallowed, e))
            return (void)qf_fail(e, 422, "Format error in JSON body: a point must be an object");
        if (!qf_parse_id(cJSON_GetObjectItemCaseSensitive(p, "id"), &tmp, e) ||
            !qf_read_vector(c, cJSON_GetObjectItemCaseSensitive(p, "vector"), &vec, e))
            return;
        free(vec);
        const cJSON *pl = cJSON_GetObjectItemCaseSensitive(p, "payload");
        if (pl != NULL && !cJSON_IsObject(pl) && !cJSON_IsNull(pl))
            return (void)qf_fail(e, 422, "Format error in JSON body: payload must be an object");
    }
    cJSON_ArrayForEach(p, pts)
    {
        struct qf_point np = {0};
        qf_parse_id(cJSON_GetObjectItemCaseSensitive(p, "id"), &np, e);
        qf_read_vector(c, cJSON_GetObjectItemCaseSensitive(p, "vector"), &np.vec, e);
        const cJSON *pl = cJSON_GetObjectItemCaseSensitive(p, "payload");
        np.payload = cJSON_IsObject(pl) ? cJSON_Duplicate(pl, true) : cJSON_CreateObject();
        np.version = st->op_id + 1;
        struct qf_point *old = qf_point_find(c, &np);
        if (old != NULL) {
            qf_point_free(old);
            *old = np;
            continue;
        }
        if (c->n == c->cap) {
            c->cap = c->cap ? c->cap * 2 : 64;
            c->pts = qf_xrealloc(c->pts, c->cap * sizeof *c->pts);
        }
        c->pts[c->n++] = np;
    }
    qsort(c->pts, c->n, sizeof *c->pts, qf_point_qsort);
    qf_ok(rep, qf_update_result(st, rq));
}

struct qf_scored {
    size_t i;
    double score;
};

static int qf_scored_cmp(const void *pa, const void *pb)
{
    const struct qf_scored *a = pa, *b = pb;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    return a->i < b->i ? -1 : a->i > b->i;
}

static void qf_query(struct qf_coll *c, const struct fv_request *rq, struct fv_reply *rep,
                     struct qf_err *e)
{
    static const char *const allowed[] = {"query",  "filter",          "limit",
                                          "offset", "with_payload",    "with_vector",
                                          "params", "score_threshold", NULL};
    if (!qf_body_object(rq, e) || !qf_known_fields(rq->json, "QueryRequest", allowed, e))
        return;
    const cJSON *filter;
    if (!qf_take_filter(rq->json, false, &filter, e))
        return;
    const cJSON *lim = cJSON_GetObjectItemCaseSensitive(rq->json, "limit");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(rq->json, "offset");
    const cJSON *wp = cJSON_GetObjectItemCaseSensitive(rq->json, "with_payload");
    const cJSON *wv = cJSON_GetObjectItemCaseSensitive(rq->json, "with_vector");
    const cJSON *thr = cJSON_GetObjectItemCaseSensitive(rq->json, "score_threshold");
    if ((lim != NULL && (!qf_is_int(lim) || lim->valuedouble < 1)) ||
        (off != NULL && (!qf_is_int(off) || off->valuedouble < 0)) ||
        (wv != NULL && !cJSON_IsBool(wv)) || (thr != NULL && !cJSON_IsNumber(thr)) ||
        !qf_check_with_payload(wp, e))
        return (void)qf_fail(e, 422,
                             "Format error in JSON body: limit, offset, with_vector or "
                             "score_threshold has the wrong type");
    float *q = NULL;
    const cJSON *qv = cJSON_GetObjectItemCaseSensitive(rq->json, "query");
    if (!cJSON_IsArray(qv))
        return (void)qf_fail(e, 400, "fake: only a dense vector query is implemented");
    if (!qf_read_vector(c, qv, &q, e))
        return;
    struct qf_scored *sc = qf_xcalloc(c->n, sizeof *sc);
    size_t m = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (!qf_eval_filter(filter, &c->pts[i]))
            continue;
        float d = 0; /* Qdrant scores in float32 */
        for (int k = 0; k < c->size; k++)
            d += q[k] * c->pts[i].vec[k];
        if (thr != NULL && (double)d < thr->valuedouble)
            continue;
        sc[m].i = i;
        sc[m].score = (double)d;
        m++;
    }
    free(q);
    qsort(sc, m, sizeof *sc, qf_scored_cmp);
    size_t from = off != NULL ? (size_t)off->valuedouble : 0;
    size_t limit = lim != NULL ? (size_t)lim->valuedouble : 10;
    cJSON *res = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(res, "points");
    for (size_t j = from; j < m && j - from < limit; j++)
        cJSON_AddItemToArray(
            arr, qf_point_json(c, &c->pts[sc[j].i], wp, cJSON_IsTrue(wv), false, &sc[j].score));
    free(sc);
    qf_ok(rep, res);
}

static void qf_scroll(struct qf_coll *c, const struct fv_request *rq, struct fv_reply *rep,
                      struct qf_err *e)
{
    static const char *const allowed[] = {"filter",      "limit",    "offset", "with_payload",
                                          "with_vector", "order_by", NULL};
    if (!qf_body_object(rq, e) || !qf_known_fields(rq->json, "ScrollRequest", allowed, e))
        return;
    size_t nl = strlen(c->name);
    bool exempt = nl > 11 && strcmp(c->name + nl - 11, "_namespaces") == 0;
    const cJSON *filter;
    if (!qf_take_filter(rq->json, exempt, &filter, e))
        return;
    const cJSON *lim = cJSON_GetObjectItemCaseSensitive(rq->json, "limit");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(rq->json, "offset");
    const cJSON *wp = cJSON_GetObjectItemCaseSensitive(rq->json, "with_payload");
    const cJSON *wv = cJSON_GetObjectItemCaseSensitive(rq->json, "with_vector");
    if (cJSON_GetObjectItemCaseSensitive(rq->json, "order_by") != NULL)
        return (void)qf_fail(e, 400, "fake: order_by is not implemented");
    if ((lim != NULL && (!qf_is_int(lim) || lim->valuedouble < 1)) ||
        (wv != NULL && !cJSON_IsBool(wv)) || !qf_check_with_payload(wp, e))
        return (void)qf_fail(e, 422,
                             "Format error in JSON body: limit or with_vector has the wrong type");
    struct qf_point start = {0};
    if (off != NULL && !cJSON_IsNull(off) && !qf_parse_id(off, &start, e))
        return;
    size_t limit = lim != NULL ? (size_t)lim->valuedouble : 10;
    cJSON *res = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(res, "points");
    size_t got = 0;
    cJSON *next = NULL;
    for (size_t i = 0; i < c->n; i++) {
        if (off != NULL && !cJSON_IsNull(off) && qf_id_cmp(&c->pts[i], &start) < 0)
            continue;
        if (!qf_eval_filter(filter, &c->pts[i]))
            continue;
        if (got == limit) {
            next = qf_id_json(&c->pts[i]);
            break;
        }
        cJSON_AddItemToArray(arr, qf_point_json(c, &c->pts[i], wp, cJSON_IsTrue(wv), true, NULL));
        got++;
    }
    cJSON_AddItemToObject(res, "next_page_offset", next != NULL ? next : cJSON_CreateNull());
    qf_ok(rep, res);
}

static void qf_count(struct qf_coll *c, const struct fv_request *rq, struct fv_reply *rep,
                     struct qf_err *e)
{
    static const char *const allowed[] = {"filter", "exact", NULL};
    if (!qf_body_object(rq, e) || !qf_known_fields(rq->json, "CountRequest", allowed, e))
        return;
    const cJSON *ex = cJSON_GetObjectItemCaseSensitive(rq->json, "exact");
    if (ex != NULL && !cJSON_IsBool(ex))
        return (void)qf_fail(e, 422, "Format error in JSON body: exact must be a bool");
    const cJSON *filter;
    if (!qf_take_filter(rq->json, false, &filter, e))
        return;
    size_t n = 0;
    for (size_t i = 0; i < c->n; i++)
        n += qf_eval_filter(filter, &c->pts[i]);
    cJSON *res = cJSON_CreateObject();
    cJSON_AddNumberToObject(res, "count", (double)n);
    qf_ok(rep, res);
}

/* Deletes or sets payload on the points the selector (points or filter) picks. */
static void qf_select_apply(struct qf_state *st, struct qf_coll *c, const struct fv_request *rq,
                            struct fv_reply *rep, struct qf_err *e, const cJSON *payload)
{
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(rq->json, "points");
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(rq->json, "filter");
    if ((ids == NULL) == (f == NULL))
        return (void)qf_fail(e, 422, "Format error in JSON body: give either points or filter");
    if (ids != NULL)
        return (void)qf_fail(e, 400, "fake: tenant filter missing");
    const cJSON *filter;
    if (!qf_take_filter(rq->json, false, &filter, e))
        return;
    size_t keep = 0;
    for (size_t i = 0; i < c->n; i++) {
        bool hit = qf_eval_filter(filter, &c->pts[i]);
        if (hit && payload != NULL) {
            for (const cJSON *k = payload->child; k != NULL; k = k->next) {
                cJSON_DeleteItemFromObjectCaseSensitive(c->pts[i].payload, k->string);
                cJSON_AddItemToObject(c->pts[i].payload, k->string, cJSON_Duplicate(k, true));
            }
        }
        if (hit && payload == NULL) {
            qf_point_free(&c->pts[i]);
            continue;
        }
        c->pts[keep++] = c->pts[i];
    }
    c->n = keep;
    qf_ok(rep, qf_update_result(st, rq));
}

static void qf_delete_points(struct qf_state *st, struct qf_coll *c, const struct fv_request *rq,
                             struct fv_reply *rep, struct qf_err *e)
{
    static const char *const allowed[] = {"points", "filter", "shard_key", NULL};
    if (!qf_body_object(rq, e) || !qf_known_fields(rq->json, "PointsSelector", allowed, e))
        return;
    qf_select_apply(st, c, rq, rep, e, NULL);
}

static void qf_set_payload(struct qf_state *st, struct qf_coll *c, const struct fv_request *rq,
                           struct fv_reply *rep, struct qf_err *e)
{
    static const char *const allowed[] = {"payload", "points", "filter", "key", "shard_key", NULL};
    if (!qf_body_object(rq, e) || !qf_known_fields(rq->json, "SetPayload", allowed, e))
        return;
    const cJSON *pl = cJSON_GetObjectItemCaseSensitive(rq->json, "payload");
    if (!cJSON_IsObject(pl))
        return (void)qf_fail(e, 422, "Format error in JSON body: payload must be an object");
    if (cJSON_GetObjectItemCaseSensitive(rq->json, "key") != NULL)
        return (void)qf_fail(e, 400, "fake: set payload with key is not implemented");
    qf_select_apply(st, c, rq, rep, e, pl);
}

static cJSON *qf_coll_info(const struct qf_coll *c)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "status", "green");
    cJSON_AddStringToObject(r, "optimizer_status", "ok");
    cJSON_AddNumberToObject(r, "points_count", (double)c->n);
    cJSON_AddNumberToObject(r, "indexed_vectors_count", 0);
    cJSON_AddNumberToObject(r, "segments_count", 1);
    cJSON *params = cJSON_AddObjectToObject(cJSON_AddObjectToObject(r, "config"), "params");
    cJSON *v = cJSON_AddObjectToObject(params, "vectors");
    cJSON_AddNumberToObject(v, "size", c->size);
    cJSON_AddStringToObject(v, "distance", c->distance);
    cJSON *ps = cJSON_AddObjectToObject(r, "payload_schema");
    for (const cJSON *i = c->indexes->child; i != NULL; i = i->next) {
        cJSON *o = cJSON_AddObjectToObject(ps, i->string);
        const cJSON *t = cJSON_IsString(i) ? i : cJSON_GetObjectItemCaseSensitive(i, "type");
        cJSON_AddStringToObject(o, "data_type", cJSON_IsString(t) ? t->valuestring : "keyword");
        if (cJSON_IsObject(i))
            cJSON_AddItemToObject(o, "params", cJSON_Duplicate(i, true));
    }
    return r;
}

/* Routes /collections/NAME[/REST]. */
static void qf_collection_route(struct qf_state *st, const struct fv_request *rq, const char *name,
                                const char *rest, struct fv_reply *rep, struct qf_err *e)
{
    const char *m = rq->method;
    if (!qf_name_ok(name))
        return (void)qf_fail(e, 422, "Wrong input: bad collection name");
    struct qf_coll *c = qf_coll_find(st, name);
    if (strcmp(rest, "") == 0 && strcmp(m, "PUT") == 0)
        return qf_create_collection(st, name, rq, rep, e);
    if (strcmp(rest, "/exists") == 0 && strcmp(m, "GET") == 0) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddBoolToObject(r, "exists", c != NULL);
        return qf_ok(rep, r);
    }
    if (c == NULL)
        return (void)qf_fail(e, 404, "Not found: Collection `%s` doesn't exist!", name);
    if (strcmp(rest, "") == 0 && strcmp(m, "GET") == 0)
        return qf_ok(rep, qf_coll_info(c));
    if (strcmp(rest, "") == 0 && strcmp(m, "DELETE") == 0) {
        qf_coll_remove(st, c);
        return qf_ok(rep, cJSON_CreateTrue());
    }
    if (strcmp(rest, "/index") == 0 && strcmp(m, "PUT") == 0)
        return qf_create_index(st, c, rq, rep, e);
    if (strcmp(rest, "/points") == 0 && strcmp(m, "PUT") == 0)
        return qf_upsert(st, c, rq, rep, e);
    if (strcmp(rest, "/points") == 0 && strcmp(m, "POST") == 0)
        return (void)qf_fail(e, 400, "fake: tenant filter missing"); /* get by ids has no filter */
    if (strcmp(m, "POST") != 0)
        return (void)qf_fail(e, 404, "fake: no route %s /collections/%s%s", m, name, rest);
    if (strcmp(rest, "/points/query") == 0)
        return qf_query(c, rq, rep, e);
    if (strcmp(rest, "/points/scroll") == 0)
        return qf_scroll(c, rq, rep, e);
    if (strcmp(rest, "/points/count") == 0)
        return qf_count(c, rq, rep, e);
    if (strcmp(rest, "/points/delete") == 0)
        return qf_delete_points(st, c, rq, rep, e);
    if (strcmp(rest, "/points/payload") == 0)
        return qf_set_payload(st, c, rq, rep, e);
    if (strcmp(rest, "/points/search") == 0)
        return (void)qf_fail(e, 404, "fake: /points/search is deprecated; use /points/query");
    qf_fail(e, 404, "fake: no route %s /collections/%s%s", m, name, rest);
}

static void qdrant_handle(void *vst, const struct fv_request *rq, struct fv_reply *rep)
{
    struct qf_state *st = vst;
    struct qf_err e = {0};
    if (!fv_auth_ok(rq, "api-key", "") && !fv_auth_ok(rq, "authorization", "Bearer ")) {
        qdrant_error(st, 401, "Unauthorized: must provide a valid API key", rep);
        return;
    }
    const char *p = rq->path;
    if (strcmp(p, "/") == 0 && strcmp(rq->method, "GET") == 0) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "title", "qdrant - vector search engine");
        cJSON_AddStringToObject(o, "version", "1.12.1");
        cJSON_AddStringToObject(o, "commit", "fake");
        fv_reply_json(rep, 200, o);
        return;
    }
    if ((strcmp(p, "/healthz") == 0 || strcmp(p, "/readyz") == 0) &&
        strcmp(rq->method, "GET") == 0) {
        fv_reply_text(rep, 200, "text/plain", "healthz check passed");
        return;
    }
    if (strcmp(p, "/collections") == 0 && strcmp(rq->method, "GET") == 0) {
        cJSON *r = cJSON_CreateObject();
        cJSON *arr = cJSON_AddArrayToObject(r, "collections");
        for (size_t i = 0; i < st->n; i++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", st->colls[i]->name);
            cJSON_AddItemToArray(arr, o);
        }
        qf_ok(rep, r);
        return;
    }
    if (strncmp(p, "/collections/", 13) == 0) {
        char name[QF_NAME_MAX + 2];
        size_t len = strcspn(p + 13, "/");
        if (len > QF_NAME_MAX) {
            qf_fail(&e, 422, "Wrong input: collection name too long");
        } else {
            memcpy(name, p + 13, len);
            name[len] = '\0';
            qf_collection_route(st, rq, name, p + 13 + len, rep, &e);
        }
    } else {
        qf_fail(&e, 404, "fake: no route %s %s", rq->method, p);
    }
    if (e.status != 0)
        qdrant_error(st, e.status, e.msg, rep);
}

static void *qdrant_init(int argc, char **argv)
{
    if (argc > 0) {
        fprintf(stderr, "fake_qdrant: unknown option %s\n", argv[0]);
        return NULL;
    }
    return qf_xcalloc(1, sizeof(struct qf_state));
}

static void qdrant_reset(void *vst)
{
    struct qf_state *st = vst;
    for (size_t i = 0; i < st->n; i++)
        qf_coll_free(st->colls[i]);
    st->n = 0;
}

static void qdrant_free(void *vst)
{
    struct qf_state *st = vst;
    if (st == NULL)
        return;
    qdrant_reset(st);
    free(st->colls);
    free(st);
}

const struct fv_service fv_qdrant_service = {
    .name = "qdrant",
    .init = qdrant_init,
    .handle = qdrant_handle,
    .error = qdrant_error,
    .reset = qdrant_reset,
    .free = qdrant_free,
};
