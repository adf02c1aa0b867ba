/*
 * The Qdrant vector store (VECTOR_DB_PROVIDER=qdrant), over Qdrant's REST
 * API through net/rest.h. It follows Qdrant's own multitenancy advice
 * (api-notes §5): one collection per dimension, PREFIX_d{dim}, shared by
 * every tenant and partitioned by a "tenant" payload field with a keyword
 * index marked is_tenant, and a `must` match on that field in every read,
 * count, scroll and delete, so no call can see another tenant's points.
 * A namespace's identity (embedder, model, dimension) is one point of the
 * collection PREFIX_namespaces (vector [1]); its id is derived from the
 * tenant, and a memory's point id from tenant and memory id, because memory
 * ids repeat across tenants.
 *
 * Filters: memchat's filters are typed (filter_match is the reference) and
 * name metadata keys that may hold any character. A Qdrant key path cannot
 * name every key, and Qdrant matches an array payload when any element
 * matches, which filter_match does not. So each point also carries
 * "meta_match": the metadata's scalar top-level values under keys spelled
 * "k" + the key's bytes in hex (always a valid path), arrays and objects
 * left out (they never equal a scalar, exactly as in filter_match), a key
 * repeated in the JSON text becoming an array of its values (Qdrant's "any
 * element" is then filter_match's "any of its values"). Numbers compare
 * through ranges (equality is gte = lte), so 1 and 1.0 are equal as doubles
 * are; strings and booleans through match.value, which Qdrant types.
 * Conditions that can never or always hold (a range over a string) are
 * folded here, so a filter that selects nothing sends no request.
 *
 * list: Qdrant's scroll orders by point id, which is a hash here, not the
 * memory id, and a keyword field cannot be ranged. So list scrolls the
 * memory ids of every matching point (payload "id" only), sorts them, and
 * fetches the page's points by has_id: each page costs one pass over the
 * tenant's matching ids. stats also reads every point's small fields.
 * generation: bumped after each write with set-payload on the namespace
 * point, best effort (a lost race loses a bump, a failed bump is ignored).
 */
#include "config.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "config/config.h"
#include "config/vars.h"
#include "memory/filter.h"
#include "memory/remote.h"
#include "memory/store.h"
#include "net/rest.h"
#include "util/alloc.h"
#include "util/clock.h"

#define QD_SERVICE    "qdrant"
#define QD_PREFIX_MAX 128
#define QD_COLL_MAX   (QD_PREFIX_MAX + 32)
#define QD_PAGE       1000 /* points per scroll page */
#define QD_UPSERT_MAX 256  /* points per upsert request */
#define QD_IDS_MAX    500  /* ids per has_id request */
#define QD_META_FIELD "meta_match"
#define QD_PATH_MAX   (QD_COLL_MAX + 64)
#define QD_DIM_MAX    65536

struct qdrant {
    struct rest *rest;
    char prefix[QD_PREFIX_MAX + 1];
    char ns_coll[QD_COLL_MAX];
};

static struct qdrant *qd_of(struct vstore *s)
{
    return s->impl;
}

/* cJSON constructors never hand NULL to the code below. */
static cJSON *qd_j(cJSON *it)
{
    if (it == NULL)
        alloc_die("qdrant request");
    return it;
}

/* ---- calls -------------------------------------------------------------- */

/* One call; the envelope's "result" into *result (may be NULL when the
 * caller wants none). Sets last_fail. tenant (may be NULL) is added to the
 * message. 0, or -1 with err set; *status is the HTTP status. */
static int qd_call(struct vstore *s, const char *tenant, const char *method, const char *path,
                   const cJSON *body, cJSON **result, long *status, char *err, size_t errlen)
{
    cJSON *out = NULL;
    long st = 0;
    char msg[1024];
    enum rest_fail f =
        rest_call_json(qd_of(s)->rest, method, path, body, &out, &st, msg, sizeof msg);
    if (status != NULL)
        *status = st;
    s->last_fail = (int)f;
    if (result != NULL)
        *result = NULL;
    if (f != REST_OK) {
        if (tenant != NULL)
            snprintf(err, errlen, "%s (tenant %s)", msg, tenant);
        else
            snprintf(err, errlen, "%s", msg);
        return -1;
    }
    /* GET / answers without the envelope: hand back the whole body. */
    cJSON *res = cJSON_DetachItemFromObjectCaseSensitive(out, "result");
    if (res == NULL && strcmp(path, "/") == 0) {
        res = out;
        out = NULL;
    }
    cJSON_Delete(out);
    if (result != NULL)
        *result = res;
    else
        cJSON_Delete(res);
    return 0;
}

/* A reply that is not what the API promises. */
static int qd_bad_reply(struct vstore *s, const char *tenant, const char *what, char *err,
                        size_t errlen)
{
    s->last_fail = REST_BAD_REPLY;
    snprintf(err, errlen, "%s: %s %s: %s (tenant %s)", QD_SERVICE, rest_base_shown(qd_of(s)->rest),
             "reply", what, tenant != NULL ? tenant : "-");
    return -1;
}

static void qd_coll_name(const struct qdrant *q, int dim, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s_d%d", q->prefix, dim);
}

/* {"key":key,"match":{"value":string}} */
static cJSON *qd_match_str(const char *key, const char *value)
{
    cJSON *c = qd_j(cJSON_CreateObject());
    qd_j(cJSON_AddStringToObject(c, "key", key));
    cJSON *m = qd_j(cJSON_AddObjectToObject(c, "match"));
    qd_j(cJSON_AddStringToObject(m, "value", value));
    return c;
}

/* {"must":[tenant match]}: the clause every read, count and delete starts from. */
static cJSON *qd_tenant_filter(const char *tenant)
{
    cJSON *f = qd_j(cJSON_CreateObject());
    cJSON *must = qd_j(cJSON_AddArrayToObject(f, "must"));
    cJSON_AddItemToArray(must, qd_match_str("tenant", tenant));
    return f;
}

/* Adds condition c (taken) to the filter's must list. */
static void qd_filter_add(cJSON *filter, cJSON *c)
{
    cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(filter, "must"), c);
}

/* ---- filters ------------------------------------------------------------ */

enum qd_fold { QD_FALSE, QD_TRUE, QD_COND };

struct qd_cond {
    enum qd_fold fold;
    cJSON *c; /* QD_COND: a condition or a nested filter */
};

/* "meta_match.k<hex of key>" */
static char *qd_meta_path(const char *key)
{
    size_t kl = strlen(key);
    size_t cap = sizeof QD_META_FIELD + 2 + kl * 2 + 1;
    char *p = xmalloc(cap);
    int n = snprintf(p, cap, "%s.k", QD_META_FIELD);
    for (size_t i = 0; i < kl; i++)
        n += snprintf(p + n, cap - (size_t)n, "%02x", (unsigned char)key[i]);
    return p;
}

static cJSON *qd_range(const char *key, enum filter_op op, double v)
{
    cJSON *c = qd_j(cJSON_CreateObject());
    qd_j(cJSON_AddStringToObject(c, "key", key));
    cJSON *r = qd_j(cJSON_AddObjectToObject(c, "range"));
    if (op == FILTER_EQ) {
        qd_j(cJSON_AddNumberToObject(r, "gte", v));
        qd_j(cJSON_AddNumberToObject(r, "lte", v));
        return c;
    }
    const char *name = op == FILTER_GT    ? "gt"
                       : op == FILTER_GTE ? "gte"
                       : op == FILTER_LT  ? "lt"
                                          : "lte";
    qd_j(cJSON_AddNumberToObject(r, name, v));
    return c;
}

/* One value's positive test (cmp is EQ or a range) on key, typed as
 * filter_match types it; QD_FALSE when it can never hold. */
static struct qd_cond qd_value_cond(const struct mem_filter *f, enum filter_op cmp,
                                    const struct filter_value *v)
{
    struct qd_cond r = {QD_FALSE, NULL};
    const char *key = f->key != NULL ? f->key : "";
    bool meta = f->is_meta || (strcmp(key, "id") != 0 && strcmp(key, "user_id") != 0 &&
                               strcmp(key, "agent") != 0 && strcmp(key, "kind") != 0 &&
                               strcmp(key, "created_at") != 0);
    if (!meta && strcmp(key, "created_at") == 0) {
        if (v->type != FILTER_V_NUMBER)
            return r;
        r.fold = QD_COND;
        r.c = qd_range("created_at", cmp, v->n);
        return r;
    }
    if (!meta) {
        if (v->type != FILTER_V_STRING || filter_op_is_range(cmp))
            return r;
        r.fold = QD_COND;
        r.c = qd_match_str(key, v->s != NULL ? v->s : "");
        return r;
    }
    if (v->type != FILTER_V_NUMBER && filter_op_is_range(cmp))
        return r;
    char *path = qd_meta_path(key);
    r.fold = QD_COND;
    if (v->type == FILTER_V_NUMBER) {
        r.c = qd_range(path, cmp, v->n);
    } else if (v->type == FILTER_V_STRING) {
        r.c = qd_match_str(path, v->s != NULL ? v->s : "");
    } else {
        r.c = qd_j(cJSON_CreateObject());
        qd_j(cJSON_AddStringToObject(r.c, "key", path));
        cJSON *m = qd_j(cJSON_AddObjectToObject(r.c, "match"));
        qd_j(cJSON_AddBoolToObject(m, "value", v->b));
    }
    xfree(path);
    return r;
}

/* Joins conds into {"must"|"should"|"must_not": [...]}, or returns the one. */
static cJSON *qd_clause(const char *name, cJSON *list)
{
    if (strcmp(name, "must_not") != 0 && cJSON_GetArraySize(list) == 1) {
        cJSON *one = cJSON_DetachItemFromArray(list, 0);
        cJSON_Delete(list);
        return one;
    }
    cJSON *o = qd_j(cJSON_CreateObject());
    cJSON_AddItemToObject(o, name, list);
    return o;
}

static struct qd_cond qd_translate(const struct mem_filter *f);

static struct qd_cond qd_translate_logic(const struct mem_filter *f)
{
    bool and = f->op == FILTER_AND;
    /* AND: a false child decides, true ones drop out; OR the reverse. */
    enum qd_fold decides = and? QD_FALSE : QD_TRUE;
    cJSON *list = qd_j(cJSON_CreateArray());
    for (size_t i = 0; i < f->n_kids; i++) {
        struct qd_cond k = qd_translate(f->kids[i]);
        if (k.fold == decides) {
            cJSON_Delete(list);
            return (struct qd_cond){decides, NULL};
        }
        if (k.fold == QD_COND)
            cJSON_AddItemToArray(list, k.c);
    }
    if (cJSON_GetArraySize(list) == 0) {
        cJSON_Delete(list);
        return (struct qd_cond){and? QD_TRUE : QD_FALSE, NULL};
    }
    return (struct qd_cond){QD_COND, qd_clause(and? "must" : "should", list)};
}

static struct qd_cond qd_translate(const struct mem_filter *f)
{
    if (f->op == FILTER_AND || f->op == FILTER_OR)
        return qd_translate_logic(f);
    bool negate = f->op == FILTER_NE || f->op == FILTER_NIN;
    size_t n = f->op == FILTER_IN || f->op == FILTER_NIN ? f->n_values : (f->n_values > 0);
    enum filter_op cmp = filter_op_is_range(f->op) ? f->op : FILTER_EQ;
    cJSON *list = qd_j(cJSON_CreateArray());
    for (size_t i = 0; i < n; i++) {
        struct qd_cond c = qd_value_cond(f, cmp, &f->values[i]);
        if (c.fold == QD_COND)
            cJSON_AddItemToArray(list, c.c);
    }
    if (cJSON_GetArraySize(list) == 0) {
        cJSON_Delete(list);
        return (struct qd_cond){negate ? QD_TRUE : QD_FALSE, NULL};
    }
    /* must_not holds when none of its conditions does: $ne and $nin. */
    if (negate)
        return (struct qd_cond){QD_COND, qd_clause("must_not", list)};
    return (struct qd_cond){QD_COND, qd_clause("should", list)};
}

/* The tenant's filter with f's conditions; NULL when f selects nothing. */
static cJSON *qd_filter(const char *tenant, const struct mem_filter *f)
{
    struct qd_cond c = {QD_TRUE, NULL};
    if (f != NULL)
        c = qd_translate(f);
    if (c.fold == QD_FALSE)
        return NULL;
    cJSON *out = qd_tenant_filter(tenant);
    if (c.fold == QD_COND)
        qd_filter_add(out, c.c);
    return out;
}

/* ---- payloads ----------------------------------------------------------- */

/* meta_match of a metadata object (see the top of the file). */
static cJSON *qd_meta_match(const char *metadata)
{
    cJSON *out = qd_j(cJSON_CreateObject());
    cJSON *meta = cJSON_Parse(metadata != NULL ? metadata : "{}");
    for (const cJSON *e = cJSON_IsObject(meta) ? meta->child : NULL; e != NULL; e = e->next) {
        if (e->string == NULL || !(cJSON_IsString(e) || cJSON_IsNumber(e) || cJSON_IsBool(e)))
            continue;
        char *path = qd_meta_path(e->string);
        const char *name = path + sizeof QD_META_FIELD; /* past "meta_match." */
        cJSON *copy = qd_j(cJSON_Duplicate(e, false));
        cJSON *have = cJSON_GetObjectItemCaseSensitive(out, name);
        if (have == NULL) {
            cJSON_AddItemToObject(out, name, copy);
        } else if (cJSON_IsArray(have)) {
            cJSON_AddItemToArray(have, copy);
        } else {
            cJSON *arr = qd_j(cJSON_CreateArray());
            cJSON_AddItemToArray(arr, cJSON_DetachItemViaPointer(out, have));
            cJSON_AddItemToArray(arr, copy);
            cJSON_AddItemToObject(out, name, arr);
        }
        xfree(path);
    }
    cJSON_Delete(meta);
    return out;
}

/* One point of tenant's record r; NULL with err when r is not storable. */
static cJSON *qd_point(const char *tenant, const struct mem_record *r, int dim, char *err,
                       size_t errlen)
{
    if (r->vector == NULL || (r->dim != 0 && r->dim != dim)) {
        snprintf(err, errlen,
                 "%s: tenant %s: memory %s: vector %s, the namespace's dimension is %d", QD_SERVICE,
                 tenant, r->id, r->vector == NULL ? "missing" : "of another dimension", dim);
        return NULL;
    }
    cJSON *payload = remote_record_to_json(r);
    if (payload == NULL) {
        snprintf(err, errlen, "%s: tenant %s: memory %s: metadata is not a JSON object", QD_SERVICE,
                 tenant, r->id);
        return NULL;
    }
    qd_j(cJSON_AddStringToObject(payload, "tenant", tenant));
    cJSON_AddItemToObject(payload, QD_META_FIELD, qd_meta_match(r->metadata));
    char uuid[MC_UUID_STRLEN + 1];
    remote_uuid_from(tenant, r->id, uuid);
    cJSON *p = qd_j(cJSON_CreateObject());
    qd_j(cJSON_AddStringToObject(p, "id", uuid));
    cJSON_AddItemToObject(p, "vector", remote_vector_to_json(r->vector, dim));
    cJSON_AddItemToObject(p, "payload", payload);
    return p;
}

/* Reads a returned point into r (vector when with_vector). */
static int qd_point_record(struct vstore *s, const char *tenant, const cJSON *pt, int dim,
                           bool with_vector, struct mem_record *r, char *err, size_t errlen)
{
    char why[256];
    const cJSON *payload = cJSON_GetObjectItemCaseSensitive(pt, "payload");
    if (remote_record_from_json(payload, r, why, sizeof why) != 0)
        return qd_bad_reply(s, tenant, why, err, errlen);
    const cJSON *score = cJSON_GetObjectItemCaseSensitive(pt, "score");
    r->score = cJSON_IsNumber(score) ? score->valuedouble : 0;
    if (!with_vector)
        return 0;
    r->vector = remote_vector_from_json(cJSON_GetObjectItemCaseSensitive(pt, "vector"), dim);
    if (r->vector == NULL)
        return qd_bad_reply(s, tenant, "a point's vector is missing or of another dimension", err,
                            errlen);
    r->dim = dim;
    return 0;
}

/* ---- namespaces ----------------------------------------------------------- */

/* POSTs body (consumed) to path and finds the reply's "points" array: 0
 * with *res (the caller frees it) and *pts set, or -1 (nothing to free;
 * *status, when not NULL, is the HTTP status of a failed call). */
static int qd_post_points(struct vstore *s, const char *tenant, const char *path, cJSON *body,
                          const char *what, long *status, cJSON **res, const cJSON **pts, char *err,
                          size_t errlen)
{
    *res = NULL;
    int rc = qd_call(s, tenant, "POST", path, body, res, status, err, errlen);
    cJSON_Delete(body);
    if (rc != 0)
        return -1;
    *pts = cJSON_GetObjectItemCaseSensitive(*res, "points");
    if (!cJSON_IsArray(*pts)) {
        cJSON_Delete(*res);
        *res = NULL;
        char why[64];
        snprintf(why, sizeof why, "%s result without points", what);
        return qd_bad_reply(s, tenant, why, err, errlen);
    }
    return 0;
}

/* The tenant's namespace point: 0, 1 when there is none, -1. */
static int qd_ns_read(struct vstore *s, const char *tenant, struct store_ns *ns, char *err,
                      size_t errlen)
{
    struct qdrant *q = qd_of(s);
    char path[QD_PATH_MAX];
    snprintf(path, sizeof path, "/collections/%s/points/scroll", q->ns_coll);
    cJSON *body = qd_j(cJSON_CreateObject());
    cJSON_AddItemToObject(body, "filter", qd_tenant_filter(tenant));
    qd_j(cJSON_AddNumberToObject(body, "limit", 1));
    qd_j(cJSON_AddBoolToObject(body, "with_payload", true));
    qd_j(cJSON_AddBoolToObject(body, "with_vector", false));
    cJSON *res = NULL;
    const cJSON *pts = NULL;
    long status = 0;
    int rc = qd_post_points(s, tenant, path, body, "scroll", &status, &res, &pts, err, errlen);
    if (rc != 0 && status == 404) { /* no namespace collection yet */
        s->last_fail = REST_OK;
        return 1;
    }
    if (rc != 0)
        return -1;
    const cJSON *pt = cJSON_GetArrayItem(pts, 0);
    if (pt == NULL) {
        cJSON_Delete(res);
        return 1;
    }
    char why[256];
    rc = remote_ns_from_json(cJSON_GetObjectItemCaseSensitive(pt, "payload"), ns, why, sizeof why);
    cJSON_Delete(res);
    if (rc != 0)
        return qd_bad_reply(s, tenant, why, err, errlen);
    return 0;
}

/* Creates collection name (vectors of size, Dot) with its tenant index
 * unless it exists. */
static int qd_ensure_collection(struct vstore *s, const char *tenant, const char *name, int size,
                                char *err, size_t errlen)
{
    char path[QD_PATH_MAX];
    snprintf(path, sizeof path, "/collections/%s/exists", name);
    cJSON *res = NULL;
    if (qd_call(s, tenant, "GET", path, NULL, &res, NULL, err, errlen) != 0)
        return -1;
    bool exists = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "exists"));
    cJSON_Delete(res);
    if (exists)
        return 0;
    snprintf(path, sizeof path, "/collections/%s", name);
    cJSON *body = qd_j(cJSON_CreateObject());
    cJSON *vec = qd_j(cJSON_AddObjectToObject(body, "vectors"));
    qd_j(cJSON_AddNumberToObject(vec, "size", size));
    qd_j(cJSON_AddStringToObject(vec, "distance", "Dot"));
    int rc = qd_call(s, tenant, "PUT", path, body, NULL, NULL, err, errlen);
    cJSON_Delete(body);
    if (rc != 0) { /* another process may have created it meanwhile */
        char err2[256];
        snprintf(path, sizeof path, "/collections/%s/exists", name);
        if (qd_call(s, tenant, "GET", path, NULL, &res, NULL, err2, sizeof err2) != 0)
            return -1;
        exists = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "exists"));
        cJSON_Delete(res);
        if (!exists)
            return -1;
    }
    snprintf(path, sizeof path, "/collections/%s/index?wait=true", name);
    body = qd_j(cJSON_CreateObject());
    qd_j(cJSON_AddStringToObject(body, "field_name", "tenant"));
    cJSON *schema = qd_j(cJSON_AddObjectToObject(body, "field_schema"));
    qd_j(cJSON_AddStringToObject(schema, "type", "keyword"));
    qd_j(cJSON_AddBoolToObject(schema, "is_tenant", true));
    rc = qd_call(s, tenant, "PUT", path, body, NULL, NULL, err, errlen);
    cJSON_Delete(body);
    return rc;
}

/* Writes the namespace point (upsert). */
static int qd_ns_write(struct vstore *s, const char *tenant, const struct store_ns *ns, char *err,
                       size_t errlen)
{
    struct qdrant *q = qd_of(s);
    char uuid[MC_UUID_STRLEN + 1], path[QD_PATH_MAX];
    remote_uuid_from("namespace", tenant, uuid);
    cJSON *body = qd_j(cJSON_CreateObject());
    cJSON *pts = qd_j(cJSON_AddArrayToObject(body, "points"));
    cJSON *p = qd_j(cJSON_CreateObject());
    cJSON_AddItemToArray(pts, p);
    qd_j(cJSON_AddStringToObject(p, "id", uuid));
    float one = 1.0f;
    cJSON_AddItemToObject(p, "vector", remote_vector_to_json(&one, 1));
    cJSON_AddItemToObject(p, "payload", remote_ns_to_json(tenant, ns));
    snprintf(path, sizeof path, "/collections/%s/points?wait=true", q->ns_coll);
    int rc = qd_call(s, tenant, "PUT", path, body, NULL, NULL, err, errlen);
    cJSON_Delete(body);
    return rc;
}

/* Best effort: generation + 1 on the namespace point, if it still exists
 * (set-payload by filter never creates a point). Failures are ignored:
 * the write it follows succeeded. */
static void qd_ns_bump(struct vstore *s, const char *tenant, const struct store_ns *ns)
{
    struct qdrant *q = qd_of(s);
    char path[QD_PATH_MAX], err[256];
    snprintf(path, sizeof path, "/collections/%s/points/payload?wait=true", q->ns_coll);
    cJSON *body = qd_j(cJSON_CreateObject());
    cJSON *payload = qd_j(cJSON_AddObjectToObject(body, "payload"));
    qd_j(cJSON_AddNumberToObject(payload, "generation", (double)(ns->generation + 1)));
    cJSON_AddItemToObject(body, "filter", qd_tenant_filter(tenant));
    (void)qd_call(s, tenant, "POST", path, body, NULL, NULL, err, sizeof err);
    s->last_fail = REST_OK;
    cJSON_Delete(body);
}

/* ---- scroll and count ----------------------------------------------------- */

typedef int (*qd_point_fn)(void *ud, const cJSON *pt);

/* Scrolls every point of coll matching filter, page by page, calling fn
 * on each; with_payload is true, false or an array of fields (not taken). */
static int qd_scroll(struct vstore *s, const char *tenant, const char *coll, const cJSON *filter,
                     const cJSON *with_payload, bool with_vector, size_t page, qd_point_fn fn,
                     void *ud, long *status, char *err, size_t errlen)
{
    char path[QD_PATH_MAX];
    snprintf(path, sizeof path, "/collections/%s/points/scroll", coll);
    cJSON *offset = NULL;
    for (;;) {
        cJSON *body = qd_j(cJSON_CreateObject());
        if (filter != NULL)
            cJSON_AddItemToObject(body, "filter", qd_j(cJSON_Duplicate(filter, true)));
        qd_j(cJSON_AddNumberToObject(body, "limit", (double)page));
        cJSON_AddItemToObject(body, "with_payload", qd_j(cJSON_Duplicate(with_payload, true)));
        qd_j(cJSON_AddBoolToObject(body, "with_vector", with_vector));
        if (offset != NULL)
            cJSON_AddItemToObject(body, "offset", offset);
        offset = NULL;
        cJSON *res = NULL;
        const cJSON *pts = NULL;
        if (qd_post_points(s, tenant, path, body, "scroll", status, &res, &pts, err, errlen) != 0)
            return -1;
        const cJSON *pt;
        cJSON_ArrayForEach(pt, pts)
        {
            if (fn(ud, pt) != 0) {
                cJSON_Delete(res);
                return -1;
            }
        }
        cJSON *next = cJSON_GetObjectItemCaseSensitive(res, "next_page_offset");
        if (next != NULL && !cJSON_IsNull(next) && cJSON_GetArraySize(pts) > 0)
            offset = cJSON_DetachItemViaPointer(res, next);
        cJSON_Delete(res);
        if (offset == NULL)
            return 0;
    }
}

static int qd_count_filter(struct vstore *s, const char *tenant, const char *coll,
                           const cJSON *filter, size_t *n, char *err, size_t errlen)
{
    char path[QD_PATH_MAX];
    snprintf(path, sizeof path, "/collections/%s/points/count", coll);
    cJSON *body = qd_j(cJSON_CreateObject());
    cJSON_AddItemToObject(body, "filter", qd_j(cJSON_Duplicate(filter, true)));
    qd_j(cJSON_AddBoolToObject(body, "exact", true));
    cJSON *res = NULL;
    int rc = qd_call(s, tenant, "POST", path, body, &res, NULL, err, errlen);
    cJSON_Delete(body);
    if (rc != 0)
        return -1;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(res, "count");
    if (!cJSON_IsNumber(c) || c->valuedouble < 0) {
        cJSON_Delete(res);
        return qd_bad_reply(s, tenant, "count result without a count", err, errlen);
    }
    *n = (size_t)c->valuedouble;
    cJSON_Delete(res);
    return 0;
}

/* Counts then deletes the points matching filter; *deleted is the count
 * (another writer between the two calls can make it inexact). */
static int qd_delete_filter_json(struct vstore *s, const char *tenant, const char *coll,
                                 const cJSON *filter, size_t *deleted, char *err, size_t errlen)
{
    size_t n = 0;
    if (qd_count_filter(s, tenant, coll, filter, &n, err, errlen) != 0)
        return -1;
    *deleted += n;
    if (n == 0)
        return 0;
    char path[QD_PATH_MAX];
    snprintf(path, sizeof path, "/collections/%s/points/delete?wait=true", coll);
    cJSON *body = qd_j(cJSON_CreateObject());
    cJSON_AddItemToObject(body, "filter", qd_j(cJSON_Duplicate(filter, true)));
    int rc = qd_call(s, tenant, "POST", path, body, NULL, NULL, err, errlen);
    cJSON_Delete(body);
    return rc;
}

/* ---- operations --------------------------------------------------------- */

/* Every operation starts here: no failure class left from an earlier one,
 * and no request without a valid tenant. */
static int qd_begin(struct vstore *s, const char *tenant, char *err, size_t errlen)
{
    s->last_fail = REST_OK;
    return remote_check_tenant(QD_SERVICE, tenant, err, errlen);
}

static int qd_ns_get(struct vstore *s, const char *tenant, struct store_ns *out, char *err,
                     size_t errlen)
{
    if (qd_begin(s, tenant, err, errlen) != 0)
        return -1;
    int rc = qd_ns_read(s, tenant, out, err, errlen);
    if (rc != 0)
        return rc;
    char coll[QD_COLL_MAX];
    qd_coll_name(qd_of(s), out->dim, coll, sizeof coll);
    cJSON *filter = qd_tenant_filter(tenant);
    rc = qd_count_filter(s, tenant, coll, filter, &out->count, err, errlen);
    cJSON_Delete(filter);
    return rc;
}

static int qd_ns_create(struct vstore *s, const char *tenant, const struct store_ns *ns, char *err,
                        size_t errlen)
{
    if (qd_begin(s, tenant, err, errlen) != 0)
        return -1;
    if (ns->dim < 1 || ns->dim > QD_DIM_MAX) {
        snprintf(err, errlen, "%s: tenant %s: dimension %d is not between 1 and %d", QD_SERVICE,
                 tenant, ns->dim, QD_DIM_MAX);
        return -1;
    }
    struct store_ns have;
    int rc = qd_ns_read(s, tenant, &have, err, errlen);
    if (rc < 0)
        return -1;
    if (rc == 0) {
        if (strcmp(have.embedder, ns->embedder) == 0 && strcmp(have.model, ns->model) == 0 &&
            have.dim == ns->dim)
            return 0;
        snprintf(err, errlen,
                 "%s: tenant %s: the namespace holds vectors of %s %s (dimension %d), not %s %s "
                 "(dimension %d)",
                 QD_SERVICE, tenant, have.embedder, have.model, have.dim, ns->embedder, ns->model,
                 ns->dim);
        return -1;
    }
    struct qdrant *q = qd_of(s);
    char coll[QD_COLL_MAX];
    qd_coll_name(q, ns->dim, coll, sizeof coll);
    if (qd_ensure_collection(s, tenant, q->ns_coll, 1, err, errlen) != 0 ||
        qd_ensure_collection(s, tenant, coll, ns->dim, err, errlen) != 0)
        return -1;
    struct store_ns w = *ns;
    w.generation = 0;
    w.count = 0;
    if (w.created_ms == 0)
        w.created_ms = clock_wall_ms();
    return qd_ns_write(s, tenant, &w, err, errlen);
}

/* The namespace an operation works on: 0, 1 when none, -1. */
static int qd_ns_for(struct vstore *s, const char *tenant, struct store_ns *ns, char *coll,
                     char *err, size_t errlen)
{
    if (qd_begin(s, tenant, err, errlen) != 0)
        return -1;
    int rc = qd_ns_read(s, tenant, ns, err, errlen);
    if (rc == 0)
        qd_coll_name(qd_of(s), ns->dim, coll, QD_COLL_MAX);
    return rc;
}

static int qd_upsert(struct vstore *s, const char *tenant, const struct mem_record *recs, size_t n,
                     char *err, size_t errlen)
{
    struct store_ns ns;
    char coll[QD_COLL_MAX], path[QD_PATH_MAX];
    int rc = qd_ns_for(s, tenant, &ns, coll, err, errlen);
    if (rc == 1)
        snprintf(err, errlen, "%s: tenant %s: no namespace (create it first)", QD_SERVICE, tenant);
    if (rc != 0)
        return -1;
    /* Every record is checked before the first batch goes, so a bad one
     * leaves nothing half written. */
    for (size_t i = 0; i < n; i++) {
        cJSON *p = qd_point(tenant, &recs[i], ns.dim, err, errlen);
        if (p == NULL) {
            s->last_fail = REST_OK;
            return -1;
        }
        cJSON_Delete(p);
    }
    snprintf(path, sizeof path, "/collections/%s/points?wait=true", coll);
    for (size_t done = 0; done < n;) {
        cJSON *body = qd_j(cJSON_CreateObject());
        cJSON *pts = qd_j(cJSON_AddArrayToObject(body, "points"));
        for (size_t i = 0; i < QD_UPSERT_MAX && done < n; i++, done++) {
            cJSON *p = qd_point(tenant, &recs[done], ns.dim, err, errlen);
            if (p == NULL) {
                cJSON_Delete(body);
                s->last_fail = REST_OK;
                return -1;
            }
            cJSON_AddItemToArray(pts, p);
        }
        rc = qd_call(s, tenant, "PUT", path, body, NULL, NULL, err, errlen);
        cJSON_Delete(body);
        if (rc != 0)
            return -1;
    }
    if (n > 0)
        qd_ns_bump(s, tenant, &ns);
    return 0;
}

static void qd_records_push(struct mem_records *rs, size_t *cap, struct mem_record *r)
{
    if (rs->n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        rs->v = xreallocarray(rs->v, *cap, sizeof *rs->v);
    }
    rs->v[rs->n++] = *r;
}

/* Reads the points of a query or scroll answer into out. */
static int qd_points_records(struct vstore *s, const char *tenant, const cJSON *pts, int dim,
                             bool with_vector, struct mem_records *out, char *err, size_t errlen)
{
    size_t cap = out->n;
    const cJSON *pt;
    cJSON_ArrayForEach(pt, pts)
    {
        struct mem_record r;
        memset(&r, 0, sizeof r);
        if (qd_point_record(s, tenant, pt, dim, with_vector, &r, err, errlen) != 0) {
            mem_record_clear(&r);
            return -1;
        }
        qd_records_push(out, &cap, &r);
    }
    return 0;
}

static int qd_query(struct vstore *s, const char *tenant, const float *qv, size_t k,
                    const struct mem_filter *f, struct mem_records *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    struct store_ns ns;
    char coll[QD_COLL_MAX], path[QD_PATH_MAX];
    int rc = qd_ns_for(s, tenant, &ns, coll, err, errlen);
    if (rc != 0 || k == 0)
        return rc < 0 ? -1 : 0;
    cJSON *filter = qd_filter(tenant, f);
    if (filter == NULL)
        return 0;
    cJSON *body = qd_j(cJSON_CreateObject());
    cJSON_AddItemToObject(body, "query", remote_vector_to_json(qv, ns.dim));
    cJSON_AddItemToObject(body, "filter", filter);
    qd_j(cJSON_AddNumberToObject(body, "limit", (double)k));
    qd_j(cJSON_AddBoolToObject(body, "with_payload", true));
    qd_j(cJSON_AddBoolToObject(body, "with_vector", true));
    snprintf(path, sizeof path, "/collections/%s/points/query", coll);
    cJSON *res = NULL;
    const cJSON *pts = NULL;
    if (qd_post_points(s, tenant, path, body, "query", NULL, &res, &pts, err, errlen) != 0)
        return -1;
    rc = qd_points_records(s, tenant, pts, ns.dim, true, out, err, errlen);
    cJSON_Delete(res);
    if (rc != 0) {
        mem_records_free(out);
        return -1;
    }
    remote_sort_records(out);
    return 0;
}

/* ---- list --------------------------------------------------------------- */

struct qd_ids {
    char **v;
    size_t n, cap;
    const char *after; /* only ids above it are kept; NULL: all */
    struct vstore *s;
    const char *tenant;
    char *err;
    size_t errlen;
};

static int qd_ids_add(void *ud, const cJSON *pt)
{
    struct qd_ids *ids = ud;
    const cJSON *id =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(pt, "payload"), "id");
    if (!cJSON_IsString(id) || strlen(id->valuestring) > MC_UUID_STRLEN)
        return qd_bad_reply(ids->s, ids->tenant, "a point without a memory id", ids->err,
                            ids->errlen);
    if (ids->after != NULL && strcmp(id->valuestring, ids->after) <= 0)
        return 0;
    if (ids->n == ids->cap) {
        ids->cap = ids->cap ? ids->cap * 2 : 64;
        ids->v = xreallocarray(ids->v, ids->cap, sizeof *ids->v);
    }
    ids->v[ids->n++] = xstrdup(id->valuestring);
    return 0;
}

static void qd_ids_free(struct qd_ids *ids)
{
    for (size_t i = 0; i < ids->n; i++)
        xfree(ids->v[i]);
    xfree(ids->v);
}

static int qd_strcmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int qd_rec_id_cmp(const void *a, const void *b)
{
    return strcmp(((const struct mem_record *)a)->id, ((const struct mem_record *)b)->id);
}

/* Fetches the points of these memory ids (at most QD_IDS_MAX) into out. */
static int qd_fetch_ids(struct vstore *s, const char *tenant, const char *coll, char *const *ids,
                        size_t n, int dim, bool with_vectors, struct mem_records *out, char *err,
                        size_t errlen)
{
    cJSON *filter = qd_tenant_filter(tenant);
    cJSON *has = qd_j(cJSON_CreateObject());
    cJSON *arr = qd_j(cJSON_AddArrayToObject(has, "has_id"));
    for (size_t i = 0; i < n; i++) {
        char uuid[MC_UUID_STRLEN + 1];
        remote_uuid_from(tenant, ids[i], uuid);
        cJSON_AddItemToArray(arr, qd_j(cJSON_CreateString(uuid)));
    }
    qd_filter_add(filter, has);
    char path[QD_PATH_MAX];
    snprintf(path, sizeof path, "/collections/%s/points/scroll", coll);
    cJSON *body = qd_j(cJSON_CreateObject());
    cJSON_AddItemToObject(body, "filter", filter);
    qd_j(cJSON_AddNumberToObject(body, "limit", (double)n));
    qd_j(cJSON_AddBoolToObject(body, "with_payload", true));
    qd_j(cJSON_AddBoolToObject(body, "with_vector", with_vectors));
    cJSON *res = NULL;
    const cJSON *pts = NULL;
    if (qd_post_points(s, tenant, path, body, "scroll", NULL, &res, &pts, err, errlen) != 0)
        return -1;
    int rc = qd_points_records(s, tenant, pts, dim, with_vectors, out, err, errlen);
    cJSON_Delete(res);
    return rc;
}

static int qd_list(struct vstore *s, const char *tenant, const struct mem_filter *f,
                   const char *after_id, size_t limit, bool with_vectors, struct mem_records *out,
                   char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    struct store_ns ns;
    char coll[QD_COLL_MAX];
    int rc = qd_ns_for(s, tenant, &ns, coll, err, errlen);
    if (rc != 0 || limit == 0)
        return rc < 0 ? -1 : 0;
    cJSON *filter = qd_filter(tenant, f);
    if (filter == NULL)
        return 0;
    struct qd_ids ids = {.after = after_id, .s = s, .tenant = tenant, .err = err, .errlen = errlen};
    cJSON *fields = qd_j(cJSON_CreateStringArray((const char *const[]){"id"}, 1));
    rc = qd_scroll(s, tenant, coll, filter, fields, false, QD_PAGE, qd_ids_add, &ids, NULL, err,
                   errlen);
    cJSON_Delete(fields);
    cJSON_Delete(filter);
    if (rc == 0 && ids.n > 0) {
        qsort(ids.v, ids.n, sizeof *ids.v, qd_strcmp);
        size_t want = ids.n < limit ? ids.n : limit;
        for (size_t i = 0; i < want && rc == 0; i += QD_IDS_MAX) {
            size_t m = want - i < QD_IDS_MAX ? want - i : QD_IDS_MAX;
            rc =
                qd_fetch_ids(s, tenant, coll, ids.v + i, m, ns.dim, with_vectors, out, err, errlen);
        }
    }
    qd_ids_free(&ids);
    if (rc != 0) {
        mem_records_free(out);
        return -1;
    }
    if (out->n > 1)
        qsort(out->v, out->n, sizeof *out->v, qd_rec_id_cmp);
    return 0;
}

/* ---- deletes, count, stats ---------------------------------------------- */

static int qd_delete_ids(struct vstore *s, const char *tenant, const char *const *ids, size_t n,
                         size_t *deleted, char *err, size_t errlen)
{
    *deleted = 0;
    struct store_ns ns;
    char coll[QD_COLL_MAX];
    int rc = qd_ns_for(s, tenant, &ns, coll, err, errlen);
    if (rc != 0 || n == 0)
        return rc < 0 ? -1 : 0;
    for (size_t i = 0; i < n && rc == 0; i += QD_IDS_MAX) {
        size_t m = n - i < QD_IDS_MAX ? n - i : QD_IDS_MAX;
        cJSON *filter = qd_tenant_filter(tenant);
        cJSON *has = qd_j(cJSON_CreateObject());
        cJSON *arr = qd_j(cJSON_AddArrayToObject(has, "has_id"));
        for (size_t j = 0; j < m; j++) {
            char uuid[MC_UUID_STRLEN + 1];
            remote_uuid_from(tenant, ids[i + j] != NULL ? ids[i + j] : "", uuid);
            cJSON_AddItemToArray(arr, qd_j(cJSON_CreateString(uuid)));
        }
        qd_filter_add(filter, has);
        rc = qd_delete_filter_json(s, tenant, coll, filter, deleted, err, errlen);
        cJSON_Delete(filter);
    }
    if (rc == 0 && *deleted > 0)
        qd_ns_bump(s, tenant, &ns);
    return rc;
}

/* Purge: the tenant's points, then its namespace point. */
static int qd_purge(struct vstore *s, const char *tenant, const char *coll, size_t *deleted,
                    char *err, size_t errlen)
{
    cJSON *filter = qd_tenant_filter(tenant);
    int rc = qd_delete_filter_json(s, tenant, coll, filter, deleted, err, errlen);
    if (rc == 0) {
        size_t nsp = 0;
        rc = qd_delete_filter_json(s, tenant, qd_of(s)->ns_coll, filter, &nsp, err, errlen);
    }
    cJSON_Delete(filter);
    return rc;
}

static int qd_delete_filter(struct vstore *s, const char *tenant, const struct mem_filter *f,
                            size_t *deleted, char *err, size_t errlen)
{
    *deleted = 0;
    struct store_ns ns;
    char coll[QD_COLL_MAX];
    int rc = qd_ns_for(s, tenant, &ns, coll, err, errlen);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    if (f == NULL)
        return qd_purge(s, tenant, coll, deleted, err, errlen);
    cJSON *filter = qd_filter(tenant, f);
    if (filter == NULL)
        return 0;
    rc = qd_delete_filter_json(s, tenant, coll, filter, deleted, err, errlen);
    cJSON_Delete(filter);
    if (rc == 0 && *deleted > 0)
        qd_ns_bump(s, tenant, &ns);
    return rc;
}

static int qd_count(struct vstore *s, const char *tenant, const struct mem_filter *f, size_t *n,
                    char *err, size_t errlen)
{
    *n = 0;
    struct store_ns ns;
    char coll[QD_COLL_MAX];
    int rc = qd_ns_for(s, tenant, &ns, coll, err, errlen);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    cJSON *filter = qd_filter(tenant, f);
    if (filter == NULL)
        return 0;
    rc = qd_count_filter(s, tenant, coll, filter, n, err, errlen);
    cJSON_Delete(filter);
    return rc;
}

struct qd_stats_acc {
    struct store_stats *st;
    struct qd_ids users;
};

static int qd_stats_add(void *ud, const cJSON *pt)
{
    struct qd_stats_acc *a = ud;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(pt, "payload");
    const cJSON *user = cJSON_GetObjectItemCaseSensitive(p, "user_id");
    const cJSON *created = cJSON_GetObjectItemCaseSensitive(p, "created_at");
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(p, "text");
    if (!cJSON_IsString(user) || !cJSON_IsNumber(created) || !cJSON_IsString(text))
        return qd_bad_reply(a->users.s, a->users.tenant,
                            "a point without user_id, created_at or text", a->users.err,
                            a->users.errlen);
    struct store_stats *st = a->st;
    int64_t c = (int64_t)created->valuedouble;
    if (st->count == 0 || c < st->oldest)
        st->oldest = c;
    if (st->count == 0 || c > st->newest)
        st->newest = c;
    st->count++;
    st->text_bytes += strlen(text->valuestring);
    if (a->users.n == a->users.cap) {
        a->users.cap = a->users.cap ? a->users.cap * 2 : 64;
        a->users.v = xreallocarray(a->users.v, a->users.cap, sizeof *a->users.v);
    }
    a->users.v[a->users.n++] = xstrdup(user->valuestring);
    return 0;
}

static int qd_stats(struct vstore *s, const char *tenant, struct store_stats *out, char *err,
                    size_t errlen)
{
    memset(out, 0, sizeof *out);
    struct store_ns ns;
    char coll[QD_COLL_MAX];
    int rc = qd_ns_for(s, tenant, &ns, coll, err, errlen);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    struct qd_stats_acc a = {.st = out,
                             .users = {.s = s, .tenant = tenant, .err = err, .errlen = errlen}};
    cJSON *filter = qd_tenant_filter(tenant);
    cJSON *fields =
        qd_j(cJSON_CreateStringArray((const char *const[]){"user_id", "created_at", "text"}, 3));
    rc = qd_scroll(s, tenant, coll, filter, fields, false, QD_PAGE, qd_stats_add, &a, NULL, err,
                   errlen);
    cJSON_Delete(fields);
    cJSON_Delete(filter);
    if (rc == 0 && a.users.n > 0) {
        qsort(a.users.v, a.users.n, sizeof *a.users.v, qd_strcmp);
        out->users = 1;
        for (size_t i = 1; i < a.users.n; i++)
            out->users += strcmp(a.users.v[i - 1], a.users.v[i]) != 0;
    }
    qd_ids_free(&a.users);
    /* An estimate: vectors, texts and ~300 bytes of payload and index per point. */
    out->bytes_on_disk = out->count * ((size_t)ns.dim * sizeof(float) + 300) + out->text_bytes;
    return rc;
}

/* ---- namespaces, health, lifecycle --------------------------------------- */

struct qd_names {
    char **v;
    size_t n, cap;
};

static int qd_names_add(void *ud, const cJSON *pt)
{
    struct qd_names *nm = ud;
    const cJSON *t =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(pt, "payload"), "tenant");
    if (!cJSON_IsString(t))
        return 0;
    if (nm->n == nm->cap) {
        nm->cap = nm->cap ? nm->cap * 2 : 16;
        nm->v = xreallocarray(nm->v, nm->cap, sizeof *nm->v);
    }
    nm->v[nm->n++] = xstrdup(t->valuestring);
    return 0;
}

/* The one read without a tenant: it lists the tenants themselves, and
 * reads only the namespace points. */
static int qd_namespaces(struct vstore *s, char ***tenants, size_t *n, char *err, size_t errlen)
{
    *tenants = NULL;
    *n = 0;
    s->last_fail = REST_OK;
    struct qd_names nm = {0};
    cJSON *fields = qd_j(cJSON_CreateStringArray((const char *const[]){"tenant"}, 1));
    long status = 0;
    int rc = qd_scroll(s, NULL, qd_of(s)->ns_coll, NULL, fields, false, QD_PAGE, qd_names_add, &nm,
                       &status, err, errlen);
    cJSON_Delete(fields);
    if (rc != 0 && status == 404) { /* no namespace collection: no tenants */
        s->last_fail = REST_OK;
        rc = 0;
    }
    if (rc != 0) {
        store_names_free(nm.v, nm.n);
        return -1;
    }
    if (nm.n > 1)
        qsort(nm.v, nm.n, sizeof *nm.v, qd_strcmp);
    *tenants = nm.v;
    *n = nm.n;
    return 0;
}

static int qd_health(struct vstore *s, struct store_health *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    s->last_fail = REST_OK;
    snprintf(out->where, sizeof out->where, "%s", rest_base_shown(qd_of(s)->rest));
    cJSON *res = NULL;
    if (qd_call(s, NULL, "GET", "/", NULL, &res, NULL, err, errlen) != 0)
        return -1;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(res, "version");
    snprintf(out->server, sizeof out->server, "qdrant%s%.100s", cJSON_IsString(v) ? " " : "",
             cJSON_IsString(v) ? v->valuestring : "");
    cJSON_Delete(res);
    /* GET / may be open to anyone; listing collections needs the key. */
    return qd_call(s, NULL, "GET", "/collections", NULL, NULL, NULL, err, errlen);
}

static void qd_set_cancel(struct vstore *s, const atomic_bool *cancel)
{
    rest_set_cancel(qd_of(s)->rest, cancel);
}

static void qd_free(struct vstore *s)
{
    struct qdrant *q = qd_of(s);
    if (q != NULL)
        rest_free(q->rest);
    xfree(q);
    xfree(s);
}

static const struct vstore_ops qd_ops = {
    .ns_get = qd_ns_get,
    .ns_create = qd_ns_create,
    .upsert = qd_upsert,
    .query = qd_query,
    .keyword = NULL,
    .list = qd_list,
    .delete_ids = qd_delete_ids,
    .delete_filter = qd_delete_filter,
    .count = qd_count,
    .stats = qd_stats,
    .namespaces = qd_namespaces,
    .index = NULL,
    .health = qd_health,
    .set_cancel = qd_set_cancel,
    .free = qd_free,
};

/* A collection prefix is used raw in URL paths and collection names. */
static bool qd_prefix_ok(const char *p)
{
    size_t n = strlen(p);
    if (n == 0 || n > QD_PREFIX_MAX)
        return false;
    return strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == n;
}

struct vstore *store_qdrant_new(const struct config *cfg, char *err, size_t errlen)
{
    const char *url = config_str(cfg, CFG_QDRANT_URL);
    const char *key = config_str(cfg, CFG_QDRANT_API_KEY);
    const char *prefix = config_str(cfg, CFG_QDRANT_COLLECTION);
    if (url == NULL || (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)) {
        snprintf(err, errlen, "QDRANT_URL: \"%.200s\" is not an http:// or https:// URL",
                 url != NULL ? url : "");
        return NULL;
    }
    if (prefix == NULL || !qd_prefix_ok(prefix)) {
        snprintf(err, errlen, "QDRANT_COLLECTION: \"%.200s\" is not 1 to %d of [A-Za-z0-9_-]",
                 prefix != NULL ? prefix : "", QD_PREFIX_MAX);
        return NULL;
    }
    bool has_key = key != NULL && key[0] != '\0';
    char *hdr = has_key ? xasprintf("api-key: %s", key) : NULL;
    const char *headers[1] = {hdr};
    struct rest_opts o = {
        .service = QD_SERVICE,
        .base_url = url,
        .headers = headers,
        .n_headers = has_key ? 1 : 0,
        .secret = has_key ? key : NULL,
        .timeout_ms = (long)config_duration_ms(cfg, CFG_MEMORY_REMOTE_TIMEOUT),
        .max_retries = (int)config_int(cfg, CFG_MEMCHAT_MAX_RETRIES),
    };
    char rerr[512];
    struct rest *r = rest_new(&o, rerr, sizeof rerr);
    if (hdr != NULL) {
        memset(hdr, 0, strlen(hdr));
        xfree(hdr);
    }
    if (r == NULL) {
        snprintf(err, errlen, "QDRANT_URL: %s", rerr);
        return NULL;
    }
    struct qdrant *q = xcalloc(1, sizeof *q);
    q->rest = r;
    snprintf(q->prefix, sizeof q->prefix, "%s", prefix);
    snprintf(q->ns_coll, sizeof q->ns_coll, "%s_namespaces", prefix);
    struct vstore *s = xcalloc(1, sizeof *s);
    s->ops = &qd_ops;
    snprintf(s->name, sizeof s->name, "qdrant");
    s->remote = true;
    s->last_fail = REST_OK;
    s->impl = q;
    return s;
}
