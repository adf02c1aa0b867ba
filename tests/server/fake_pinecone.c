/*
 * The pinecone service of fakevec: a loopback Pinecone index (control
 * plane GET /indexes/{name} and the REST data plane of api-notes §6) that
 * memchat's store is tested against. It keeps namespaces of vectors in
 * memory, searches them exactly (dot product, ties by id), evaluates the
 * whole filter language, and checks every request as strictly as the
 * documentation allows: the Api-Key (with --key) and the API version
 * headers, camelCase fields only, the documented limits (1,000 vectors and
 * 2 MB per upsert, 40 KB of metadata, topK <= 10,000, 1,000 ids per fetch
 * or delete), metadata value types, non-zero vectors of the index's
 * dimension. It is stricter than Pinecone where memchat wants it to be:
 * every data-plane request must name a namespace, since memchat always
 * names the tenant's, and $ne/$nin do not match a record missing the key
 * (Pinecone does not document it), so the store must say what it means.
 *
 * Options: --dim N (default 8), --index NAME (default memchat), --metric M
 * (default dotproduct).
 */
#include "config.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fakevec.h"

#define PF_UPSERT_MAX   1000
#define PF_UPSERT_BYTES 2000000
#define PF_META_MAX     40960
#define PF_TOPK_MAX     10000
#define PF_IDS_MAX      1000
#define PF_LIST_MAX     100

struct pf_vec {
    char *id;
    float *values;
    cJSON *metadata; /* NULL: none */
};

struct pf_ns {
    char *name;
    struct pf_vec *v;
    size_t n, cap;
};

struct pf {
    int dim;
    char index[128];
    char metric[32];
    struct pf_ns *ns;
    size_t n_ns;
};

static void *pf_alloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        abort();
    return q;
}

static char *pf_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(pf_alloc(NULL, n), s, n);
}

/* ---- state ------------------------------------------------------------- */

static void pf_vec_free(struct pf_vec *v)
{
    free(v->id);
    free(v->values);
    cJSON_Delete(v->metadata);
}

static void pf_reset(void *st)
{
    struct pf *p = st;
    for (size_t i = 0; i < p->n_ns; i++) {
        for (size_t j = 0; j < p->ns[i].n; j++)
            pf_vec_free(&p->ns[i].v[j]);
        free(p->ns[i].v);
        free(p->ns[i].name);
    }
    free(p->ns);
    p->ns = NULL;
    p->n_ns = 0;
}

static struct pf_ns *pf_ns_find(struct pf *p, const char *name, bool create)
{
    for (size_t i = 0; i < p->n_ns; i++)
        if (strcmp(p->ns[i].name, name) == 0)
            return &p->ns[i];
    if (!create)
        return NULL;
    p->ns = pf_alloc(p->ns, (p->n_ns + 1) * sizeof *p->ns);
    struct pf_ns *ns = &p->ns[p->n_ns++];
    memset(ns, 0, sizeof *ns);
    ns->name = pf_strdup(name);
    return ns;
}

/* Pinecone lists only namespaces that hold vectors. */
static void pf_ns_drop_empty(struct pf *p)
{
    for (size_t i = 0; i < p->n_ns;) {
        if (p->ns[i].n > 0) {
            i++;
            continue;
        }
        free(p->ns[i].v);
        free(p->ns[i].name);
        p->ns[i] = p->ns[--p->n_ns];
    }
}

static struct pf_vec *pf_vec_find(struct pf_ns *ns, const char *id)
{
    for (size_t i = 0; ns != NULL && i < ns->n; i++)
        if (strcmp(ns->v[i].id, id) == 0)
            return &ns->v[i];
    return NULL;
}

static void pf_vec_remove(struct pf_ns *ns, struct pf_vec *v)
{
    pf_vec_free(v);
    *v = ns->v[--ns->n];
}

/* ---- replies ----------------------------------------------------------- */

static void pf_error(void *st, int status, const char *message, struct fv_reply *rep)
{
    (void)st;
    const char *code = status == 400   ? "INVALID_ARGUMENT"
                       : status == 401 ? "UNAUTHENTICATED"
                       : status == 404 ? "NOT_FOUND"
                       : status == 429 ? "RESOURCE_EXHAUSTED"
                       : status >= 500 ? "INTERNAL"
                                       : "FAILED_PRECONDITION";
    cJSON *o = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", message);
    fv_reply_json(rep, status, o);
}

/* A 400 whose message is what, then why. */
static void pf_bad(struct fv_reply *rep, const char *what, const char *why)
{
    char msg[512];
    snprintf(msg, sizeof msg, "%s%s", what, why);
    pf_error(NULL, 400, msg, rep);
}

/* True when every key of o is among the allowed ones (camelCase). */
static bool pf_keys_ok(const cJSON *o, const char *const *allowed, struct fv_reply *rep)
{
    for (const cJSON *e = o->child; e != NULL; e = e->next) {
        bool ok = false;
        for (size_t i = 0; allowed[i] != NULL && !ok; i++)
            ok = strcmp(e->string, allowed[i]) == 0;
        if (!ok) {
            pf_bad(rep, "unknown field: ", e->string);
            return false;
        }
    }
    return true;
}

/* The body's "namespace" (required by this fake), or NULL after a 400. */
static const char *pf_body_ns(const cJSON *body, struct fv_reply *rep)
{
    const cJSON *ns = cJSON_GetObjectItemCaseSensitive(body, "namespace");
    if (!cJSON_IsString(ns) || ns->valuestring[0] == '\0') {
        pf_bad(rep, "", "namespace is required (memchat always names the tenant's)");
        return NULL;
    }
    return ns->valuestring;
}

/* ---- filters ----------------------------------------------------------- */

static bool pf_scalar_eq(const cJSON *a, const cJSON *b)
{
    if (cJSON_IsString(a) && cJSON_IsString(b))
        return strcmp(a->valuestring, b->valuestring) == 0;
    if (cJSON_IsNumber(a) && cJSON_IsNumber(b))
        return a->valuedouble == b->valuedouble;
    if (cJSON_IsBool(a) && cJSON_IsBool(b))
        return cJSON_IsTrue(a) == cJSON_IsTrue(b);
    return false;
}

/* A stored value equals v: a list of strings when any element does. */
static bool pf_value_eq(const cJSON *stored, const cJSON *v)
{
    if (!cJSON_IsArray(stored))
        return pf_scalar_eq(stored, v);
    const cJSON *e;
    cJSON_ArrayForEach(e, stored)
    {
        if (pf_scalar_eq(e, v))
            return true;
    }
    return false;
}

static bool pf_in(const cJSON *stored, const cJSON *list)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, list)
    {
        if (pf_value_eq(stored, e))
            return true;
    }
    return false;
}

/* Checks a filter's syntax; NULL when valid, else the problem. */
static const char *pf_filter_check(const cJSON *f, int depth)
{
    if (!cJSON_IsObject(f) || depth > 40)
        return "a filter must be an object";
    for (const cJSON *e = f->child; e != NULL; e = e->next) {
        if (strcmp(e->string, "$and") == 0 || strcmp(e->string, "$or") == 0) {
            if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) == 0)
                return "$and and $or take a non-empty list of filters";
            const cJSON *k;
            cJSON_ArrayForEach(k, e)
            {
                const char *why = pf_filter_check(k, depth + 1);
                if (why != NULL)
                    return why;
            }
            continue;
        }
        if (e->string[0] == '$')
            return "unknown top-level operator";
        if (cJSON_IsString(e) || cJSON_IsNumber(e) || cJSON_IsBool(e))
            continue;
        if (!cJSON_IsObject(e) || e->child == NULL)
            return "a field's condition must be a value or an object of operators";
        for (const cJSON *op = e->child; op != NULL; op = op->next) {
            const char *o = op->string;
            bool scalar = cJSON_IsString(op) || cJSON_IsNumber(op) || cJSON_IsBool(op);
            if (strcmp(o, "$eq") == 0 || strcmp(o, "$ne") == 0) {
                if (!scalar)
                    return "$eq and $ne take a string, a number or a boolean";
            } else if (strcmp(o, "$gt") == 0 || strcmp(o, "$gte") == 0 || strcmp(o, "$lt") == 0 ||
                       strcmp(o, "$lte") == 0) {
                if (!cJSON_IsNumber(op))
                    return "$gt, $gte, $lt and $lte take a number";
            } else if (strcmp(o, "$in") == 0 || strcmp(o, "$nin") == 0) {
                if (!cJSON_IsArray(op))
                    return "$in and $nin take a list";
                const cJSON *x;
                cJSON_ArrayForEach(x, op)
                {
                    if (!cJSON_IsString(x) && !cJSON_IsNumber(x))
                        return "$in and $nin take strings or numbers";
                }
            } else if (strcmp(o, "$exists") == 0) {
                if (!cJSON_IsBool(op))
                    return "$exists takes a boolean";
            } else {
                return "unknown operator";
            }
        }
    }
    return NULL;
}

static bool pf_op_match(const cJSON *stored, const cJSON *op)
{
    const char *o = op->string;
    if (strcmp(o, "$exists") == 0)
        return (stored != NULL) == (cJSON_IsTrue(op) != 0);
    if (stored == NULL)
        return false; /* also $ne and $nin: this fake's strict reading */
    if (strcmp(o, "$eq") == 0)
        return pf_value_eq(stored, op);
    if (strcmp(o, "$ne") == 0)
        return !pf_value_eq(stored, op);
    if (strcmp(o, "$in") == 0)
        return pf_in(stored, op);
    if (strcmp(o, "$nin") == 0)
        return !pf_in(stored, op);
    if (!cJSON_IsNumber(stored))
        return false;
    double a = stored->valuedouble, b = op->valuedouble;
    if (strcmp(o, "$gt") == 0)
        return a > b;
    if (strcmp(o, "$gte") == 0)
        return a >= b;
    if (strcmp(o, "$lt") == 0)
        return a < b;
    return a <= b;
}

static bool pf_match(const cJSON *f, const cJSON *md)
{
    for (const cJSON *e = f->child; e != NULL; e = e->next) {
        bool is_and = strcmp(e->string, "$and") == 0;
        if (is_and || strcmp(e->string, "$or") == 0) {
            bool any = false, all = true;
            const cJSON *k;
            cJSON_ArrayForEach(k, e)
            {
                bool m = pf_match(k, md);
                any = any || m;
                all = all && m;
            }
            if (!(is_and ? all : any))
                return false;
            continue;
        }
        const cJSON *stored = md != NULL ? cJSON_GetObjectItemCaseSensitive(md, e->string) : NULL;
        if (!cJSON_IsObject(e)) {
            if (stored == NULL || !pf_value_eq(stored, e))
                return false;
            continue;
        }
        for (const cJSON *op = e->child; op != NULL; op = op->next)
            if (!pf_op_match(stored, op))
                return false;
    }
    return true;
}

/* ---- vectors ----------------------------------------------------------- */

static cJSON *pf_values_json(const float *v, int dim)
{
    size_t cap = (size_t)dim * 18 + 3, len = 0;
    char *text = pf_alloc(NULL, cap);
    text[len++] = '[';
    for (int i = 0; i < dim; i++)
        len += (size_t)snprintf(text + len, cap - len, "%s%.9g", i ? "," : "", (double)v[i]);
    text[len++] = ']';
    text[len] = '\0';
    cJSON *a = cJSON_CreateRaw(text);
    free(text);
    return a;
}

static cJSON *pf_vec_json(const struct pf *p, const struct pf_vec *v, bool values, bool metadata)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", v->id);
    if (values)
        cJSON_AddItemToObject(o, "values", pf_values_json(v->values, p->dim));
    if (metadata && v->metadata != NULL)
        cJSON_AddItemToObject(o, "metadata", cJSON_Duplicate(v->metadata, true));
    return o;
}

/* The values as floats; NULL with why set when not dim numbers, not
 * finite, or all zero. */
static float *pf_values(const struct pf *p, const cJSON *a, const char **why)
{
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != p->dim) {
        *why = "values must be a list of exactly the index's dimension of numbers";
        return NULL;
    }
    float *v = pf_alloc(NULL, (size_t)p->dim * sizeof *v);
    int i = 0;
    bool nonzero = false;
    const cJSON *x;
    cJSON_ArrayForEach(x, a)
    {
        if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble)) {
            free(v);
            *why = "values must be finite numbers";
            return NULL;
        }
        v[i] = (float)x->valuedouble;
        nonzero = nonzero || v[i] != 0.0f;
        i++;
    }
    if (!nonzero) {
        free(v);
        *why = "dense vectors must contain at least one non-zero value";
        return NULL;
    }
    return v;
}

static const char *pf_meta_check(const cJSON *md)
{
    if (md == NULL)
        return NULL;
    if (!cJSON_IsObject(md))
        return "metadata must be an object";
    for (const cJSON *e = md->child; e != NULL; e = e->next) {
        if (e->string[0] == '$')
            return "metadata keys must not start with $";
        if (cJSON_IsString(e) || cJSON_IsNumber(e) || cJSON_IsBool(e))
            continue;
        if (!cJSON_IsArray(e))
            return "metadata values must be strings, numbers, booleans or lists of strings "
                   "(no null, no objects)";
        const cJSON *x;
        cJSON_ArrayForEach(x, e)
        {
            if (!cJSON_IsString(x))
                return "metadata lists must hold strings only";
        }
    }
    char *t = cJSON_PrintUnformatted(md);
    size_t n = t != NULL ? strlen(t) : 0;
    free(t);
    return n > PF_META_MAX ? "metadata size exceeds the limit of 40960 bytes per vector" : NULL;
}

/* ---- endpoints --------------------------------------------------------- */

static void pf_describe_index(struct pf *p, const struct fv_request *rq, const char *name,
                              struct fv_reply *rep)
{
    if (strcmp(name, p->index) != 0) {
        pf_error(p, 404, "Resource not found", rep);
        return;
    }
    const char *host = fv_header(rq, "host");
    const char *colon = host != NULL ? strrchr(host, ':') : NULL;
    char h[64];
    snprintf(h, sizeof h, "127.0.0.1:%s", colon != NULL ? colon + 1 : "80");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", p->index);
    cJSON_AddNumberToObject(o, "dimension", p->dim);
    cJSON_AddStringToObject(o, "metric", p->metric);
    cJSON_AddStringToObject(o, "host", h);
    cJSON_AddStringToObject(o, "vector_type", "dense");
    cJSON *st = cJSON_AddObjectToObject(o, "status");
    cJSON_AddBoolToObject(st, "ready", true);
    cJSON_AddStringToObject(st, "state", "Ready");
    cJSON *spec = cJSON_AddObjectToObject(o, "spec");
    cJSON *sl = cJSON_AddObjectToObject(spec, "serverless");
    cJSON_AddStringToObject(sl, "cloud", "aws");
    cJSON_AddStringToObject(sl, "region", "us-east-1");
    fv_reply_json(rep, 200, o);
}

/* Checks one upserted vector; the stored form into out. */
static const char *pf_upsert_one(struct pf *p, const cJSON *v, struct pf_vec *out)
{
    static const char *const keys[] = {"id", "values", "metadata", NULL};
    for (const cJSON *e = v->child; e != NULL; e = e->next) {
        bool ok = false;
        for (size_t i = 0; keys[i] != NULL && !ok; i++)
            ok = strcmp(e->string, keys[i]) == 0;
        if (!ok)
            return "a vector has an unknown field (accepted here: id, values, metadata)";
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(v, "id");
    if (!cJSON_IsString(id) || id->valuestring[0] == '\0' || strlen(id->valuestring) > 512)
        return "a vector's id must be a string of 1 to 512 bytes";
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(v, "metadata");
    const char *why = pf_meta_check(md);
    if (why != NULL)
        return why;
    float *values = pf_values(p, cJSON_GetObjectItemCaseSensitive(v, "values"), &why);
    if (values == NULL)
        return why;
    out->id = pf_strdup(id->valuestring);
    out->values = values;
    out->metadata = md != NULL ? cJSON_Duplicate(md, true) : NULL;
    return NULL;
}

static void pf_upsert(struct pf *p, const struct fv_request *rq, struct fv_reply *rep)
{
    static const char *const keys[] = {"vectors", "namespace", NULL};
    if (!pf_keys_ok(rq->json, keys, rep))
        return;
    const char *name = pf_body_ns(rq->json, rep);
    if (name == NULL)
        return;
    if (rq->body_len > PF_UPSERT_BYTES) {
        pf_bad(rep, "", "request size exceeds the limit of 2 MB per upsert");
        return;
    }
    const cJSON *vs = cJSON_GetObjectItemCaseSensitive(rq->json, "vectors");
    int n = cJSON_GetArraySize(vs);
    if (!cJSON_IsArray(vs) || n < 1 || n > PF_UPSERT_MAX) {
        pf_bad(rep, "", "vectors must be a list of 1 to 1000 vectors");
        return;
    }
    struct pf_vec *batch = pf_alloc(NULL, (size_t)n * sizeof *batch);
    int got = 0;
    const char *why = NULL;
    const cJSON *v;
    cJSON_ArrayForEach(v, vs)
    {
        if (why == NULL && (why = pf_upsert_one(p, v, &batch[got])) == NULL)
            got++;
    }
    if (why != NULL) {
        for (int i = 0; i < got; i++)
            pf_vec_free(&batch[i]);
        free(batch);
        pf_bad(rep, "", why);
        return;
    }
    struct pf_ns *ns = pf_ns_find(p, name, true);
    for (int i = 0; i < n; i++) {
        struct pf_vec *old = pf_vec_find(ns, batch[i].id);
        if (old != NULL) {
            pf_vec_free(old);
            *old = batch[i];
            continue;
        }
        if (ns->n == ns->cap) {
            ns->cap = ns->cap ? ns->cap * 2 : 64;
            ns->v = pf_alloc(ns->v, ns->cap * sizeof *ns->v);
        }
        ns->v[ns->n++] = batch[i];
    }
    free(batch);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "upsertedCount", n);
    fv_reply_json(rep, 200, o);
}

struct pf_hit {
    const struct pf_vec *v;
    double score;
};

static int pf_hit_cmp(const void *a, const void *b)
{
    const struct pf_hit *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return strcmp(x->v->id, y->v->id);
}

/* The query's vector: "vector", or the stored one of "id"; NULL after a 400. */
static const float *pf_query_vector(struct pf *p, const cJSON *body, struct pf_ns *ns,
                                    float **owned, struct fv_reply *rep)
{
    const cJSON *vec = cJSON_GetObjectItemCaseSensitive(body, "vector");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(body, "id");
    *owned = NULL;
    if ((vec != NULL) == (id != NULL)) {
        pf_bad(rep, "", "provide exactly one of vector and id");
        return NULL;
    }
    if (vec != NULL) {
        const char *why = NULL;
        *owned = pf_values(p, vec, &why);
        if (*owned == NULL)
            pf_bad(rep, "vector: ", why);
        return *owned;
    }
    const struct pf_vec *v = cJSON_IsString(id) ? pf_vec_find(ns, id->valuestring) : NULL;
    if (v == NULL)
        pf_bad(rep, "", "id: no such vector in the namespace");
    return v != NULL ? v->values : NULL;
}

static void pf_query(struct pf *p, const struct fv_request *rq, struct fv_reply *rep)
{
    static const char *const keys[] = {"namespace", "topK",          "vector",          "id",
                                       "filter",    "includeValues", "includeMetadata", NULL};
    if (!pf_keys_ok(rq->json, keys, rep))
        return;
    const char *name = pf_body_ns(rq->json, rep);
    if (name == NULL)
        return;
    const cJSON *topk = cJSON_GetObjectItemCaseSensitive(rq->json, "topK");
    if (!cJSON_IsNumber(topk) || topk->valuedouble != floor(topk->valuedouble) ||
        topk->valuedouble < 1 || topk->valuedouble > PF_TOPK_MAX) {
        pf_bad(rep, "", "topK must be an integer from 1 to 10000");
        return;
    }
    const cJSON *filter = cJSON_GetObjectItemCaseSensitive(rq->json, "filter");
    const char *why = filter != NULL ? pf_filter_check(filter, 0) : NULL;
    if (why != NULL) {
        pf_bad(rep, "filter: ", why);
        return;
    }
    struct pf_ns *ns = pf_ns_find(p, name, false);
    float *owned;
    const float *q = pf_query_vector(p, rq->json, ns, &owned, rep);
    if (q == NULL)
        return;
    bool values = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rq->json, "includeValues"));
    bool meta = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rq->json, "includeMetadata"));
    size_t n = 0, cap = ns != NULL ? ns->n : 0;
    struct pf_hit *hits = pf_alloc(NULL, (cap ? cap : 1) * sizeof *hits);
    for (size_t i = 0; i < cap; i++) {
        if (filter != NULL && !pf_match(filter, ns->v[i].metadata))
            continue;
        double d = 0;
        for (int k = 0; k < p->dim; k++)
            d += (double)q[k] * (double)ns->v[i].values[k];
        hits[n++] = (struct pf_hit){&ns->v[i], d};
    }
    qsort(hits, n, sizeof *hits, pf_hit_cmp);
    cJSON *o = cJSON_CreateObject();
    cJSON *ms = cJSON_AddArrayToObject(o, "matches");
    for (size_t i = 0; i < n && i < (size_t)topk->valuedouble; i++) {
        cJSON *m = pf_vec_json(p, hits[i].v, values, meta);
        cJSON_AddNumberToObject(m, "score", (float)hits[i].score);
        cJSON_AddItemToArray(ms, m);
    }
    cJSON_AddStringToObject(o, "namespace", name);
    cJSON_AddNumberToObject(cJSON_AddObjectToObject(o, "usage"), "readUnits", 1);
    free(hits);
    free(owned);
    fv_reply_json(rep, 200, o);
}

static void pf_fetch(struct pf *p, const struct fv_request *rq, struct fv_reply *rep)
{
    char name[256], id[600];
    if (!fv_query_param(rq, "namespace", 0, name, sizeof name) || name[0] == '\0') {
        pf_bad(rep, "", "namespace is required (memchat always names the tenant's)");
        return;
    }
    size_t n = 0;
    while (fv_query_param(rq, "ids", n, id, sizeof id))
        n++;
    if (n < 1 || n > PF_IDS_MAX) {
        pf_bad(rep, "", "ids: give 1 to 1000 ids");
        return;
    }
    struct pf_ns *ns = pf_ns_find(p, name, false);
    cJSON *o = cJSON_CreateObject();
    cJSON *vs = cJSON_AddObjectToObject(o, "vectors");
    for (size_t i = 0; i < n; i++) {
        fv_query_param(rq, "ids", i, id, sizeof id);
        const struct pf_vec *v = pf_vec_find(ns, id);
        if (v != NULL && cJSON_GetObjectItemCaseSensitive(vs, id) == NULL)
            cJSON_AddItemToObject(vs, id, pf_vec_json(p, v, true, true));
    }
    cJSON_AddStringToObject(o, "namespace", name);
    cJSON_AddNumberToObject(cJSON_AddObjectToObject(o, "usage"), "readUnits", 1);
    fv_reply_json(rep, 200, o);
}

static void pf_delete(struct pf *p, const struct fv_request *rq, struct fv_reply *rep)
{
    static const char *const keys[] = {"ids", "deleteAll", "filter", "namespace", NULL};
    if (!pf_keys_ok(rq->json, keys, rep))
        return;
    const char *name = pf_body_ns(rq->json, rep);
    if (name == NULL)
        return;
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(rq->json, "ids");
    const cJSON *all = cJSON_GetObjectItemCaseSensitive(rq->json, "deleteAll");
    const cJSON *filter = cJSON_GetObjectItemCaseSensitive(rq->json, "filter");
    if ((ids != NULL) + (cJSON_IsTrue(all) != 0) + (filter != NULL) != 1 ||
        (all != NULL && !cJSON_IsBool(all))) {
        pf_bad(rep, "", "send exactly one of ids, deleteAll and filter");
        return;
    }
    if (ids != NULL && (!cJSON_IsArray(ids) || cJSON_GetArraySize(ids) < 1 ||
                        cJSON_GetArraySize(ids) > PF_IDS_MAX)) {
        pf_bad(rep, "", "ids must be a list of 1 to 1000 ids");
        return;
    }
    const char *why = filter != NULL ? pf_filter_check(filter, 0) : NULL;
    if (why != NULL) {
        pf_bad(rep, "filter: ", why);
        return;
    }
    struct pf_ns *ns = pf_ns_find(p, name, false);
    for (size_t i = 0; ns != NULL && i < ns->n;) {
        struct pf_vec *v = &ns->v[i];
        bool hit = cJSON_IsTrue(all) || (filter != NULL && pf_match(filter, v->metadata));
        const cJSON *x;
        cJSON_ArrayForEach(x, ids)
        {
            hit = hit || (cJSON_IsString(x) && strcmp(x->valuestring, v->id) == 0);
        }
        if (hit)
            pf_vec_remove(ns, v);
        else
            i++;
    }
    pf_ns_drop_empty(p);
    fv_reply_json(rep, 200, cJSON_CreateObject());
}

static void pf_stats(struct pf *p, const struct fv_request *rq, struct fv_reply *rep)
{
    if (rq->json != NULL && !cJSON_IsObject(rq->json)) {
        pf_bad(rep, "", "the body must be an object");
        return;
    }
    if (cJSON_GetObjectItemCaseSensitive(rq->json, "filter") != NULL) {
        pf_bad(rep, "", "serverless indexes do not support describe_index_stats with a filter");
        return;
    }
    static const char *const keys[] = {NULL};
    if (rq->json != NULL && !pf_keys_ok(rq->json, keys, rep))
        return;
    cJSON *o = cJSON_CreateObject();
    cJSON *nss = cJSON_AddObjectToObject(o, "namespaces");
    size_t total = 0;
    for (size_t i = 0; i < p->n_ns; i++) {
        cJSON_AddNumberToObject(cJSON_AddObjectToObject(nss, p->ns[i].name), "vectorCount",
                                (double)p->ns[i].n);
        total += p->ns[i].n;
    }
    cJSON_AddNumberToObject(o, "dimension", p->dim);
    cJSON_AddNumberToObject(o, "indexFullness", 0);
    cJSON_AddNumberToObject(o, "totalVectorCount", (double)total);
    cJSON_AddStringToObject(o, "metric", p->metric);
    cJSON_AddStringToObject(o, "vectorType", "dense");
    fv_reply_json(rep, 200, o);
}

static int pf_strcmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Ids in order; the pagination token is the last id returned, hex-encoded
 * (opaque to the client). */
static void pf_list(struct pf *p, const struct fv_request *rq, struct fv_reply *rep)
{
    char name[256], prefix[512] = "", limit_s[32] = "", token[1100] = "", after[560] = "";
    if (!fv_query_param(rq, "namespace", 0, name, sizeof name) || name[0] == '\0') {
        pf_bad(rep, "", "namespace is required (memchat always names the tenant's)");
        return;
    }
    fv_query_param(rq, "prefix", 0, prefix, sizeof prefix);
    long limit = 100;
    if (fv_query_param(rq, "limit", 0, limit_s, sizeof limit_s)) {
        char *end;
        limit = strtol(limit_s, &end, 10);
        if (*end != '\0' || limit < 1 || limit > PF_LIST_MAX) {
            pf_bad(rep, "", "limit must be from 1 to 100");
            return;
        }
    }
    if (fv_query_param(rq, "paginationToken", 0, token, sizeof token)) {
        size_t tl = strlen(token);
        for (size_t i = 0; i + 1 < tl && i / 2 < sizeof after - 1; i += 2) {
            unsigned x = 0;
            if (sscanf(token + i, "%2x", &x) != 1) {
                pf_bad(rep, "", "invalid paginationToken");
                return;
            }
            after[i / 2] = (char)x;
            after[i / 2 + 1] = '\0';
        }
        if (after[0] == '\0' || tl % 2 != 0) {
            pf_bad(rep, "", "invalid paginationToken");
            return;
        }
    }
    struct pf_ns *ns = pf_ns_find(p, name, false);
    size_t n = ns != NULL ? ns->n : 0, m = 0;
    char **ids = pf_alloc(NULL, (n ? n : 1) * sizeof *ids);
    for (size_t i = 0; i < n; i++)
        if (strncmp(ns->v[i].id, prefix, strlen(prefix)) == 0 && strcmp(ns->v[i].id, after) > 0)
            ids[m++] = ns->v[i].id;
    qsort(ids, m, sizeof *ids, pf_strcmp);
    cJSON *o = cJSON_CreateObject();
    cJSON *vs = cJSON_AddArrayToObject(o, "vectors");
    size_t shown = m < (size_t)limit ? m : (size_t)limit;
    for (size_t i = 0; i < shown; i++) {
        cJSON *v = cJSON_CreateObject();
        cJSON_AddStringToObject(v, "id", ids[i]);
        cJSON_AddItemToArray(vs, v);
    }
    if (shown < m) {
        const char *last = ids[shown - 1];
        char hex[1100] = "";
        for (size_t i = 0; last[i] != '\0' && 2 * i + 2 < sizeof hex; i++)
            snprintf(hex + 2 * i, 3, "%02x", (unsigned char)last[i]);
        cJSON_AddStringToObject(cJSON_AddObjectToObject(o, "pagination"), "next", hex);
    }
    cJSON_AddStringToObject(o, "namespace", name);
    cJSON_AddNumberToObject(cJSON_AddObjectToObject(o, "usage"), "readUnits", 1);
    free(ids);
    fv_reply_json(rep, 200, o);
}

static void pf_handle(void *st, const struct fv_request *rq, struct fv_reply *rep)
{
    struct pf *p = st;
    if (!fv_auth_ok(rq, "api-key", "")) {
        pf_error(p, 401, "Invalid API Key", rep);
        return;
    }
    if (fv_header(rq, "x-pinecone-api-version") == NULL) {
        pf_bad(rep, "", "the X-Pinecone-API-Version header is missing");
        return;
    }
    bool get = strcmp(rq->method, "GET") == 0, post = strcmp(rq->method, "POST") == 0;
    if (get && strncmp(rq->path, "/indexes/", 9) == 0) {
        pf_describe_index(p, rq, rq->path + 9, rep);
        return;
    }
    if (get && strcmp(rq->path, "/vectors/fetch") == 0) {
        pf_fetch(p, rq, rep);
        return;
    }
    if (get && strcmp(rq->path, "/vectors/list") == 0) {
        pf_list(p, rq, rep);
        return;
    }
    if (post && strcmp(rq->path, "/describe_index_stats") == 0) {
        pf_stats(p, rq, rep);
        return;
    }
    if (!post || (strcmp(rq->path, "/vectors/upsert") != 0 && strcmp(rq->path, "/query") != 0 &&
                  strcmp(rq->path, "/vectors/delete") != 0)) {
        pf_error(p, 404, "Not Found", rep);
        return;
    }
    if (!cJSON_IsObject(rq->json)) {
        pf_bad(rep, "", "the body must be a JSON object");
        return;
    }
    if (strcmp(rq->path, "/vectors/upsert") == 0)
        pf_upsert(p, rq, rep);
    else if (strcmp(rq->path, "/query") == 0)
        pf_query(p, rq, rep);
    else
        pf_delete(p, rq, rep);
}

static void *pf_init(int argc, char **argv)
{
    struct pf *p = pf_alloc(NULL, sizeof *p);
    memset(p, 0, sizeof *p);
    p->dim = 8;
    snprintf(p->index, sizeof p->index, "memchat");
    snprintf(p->metric, sizeof p->metric, "dotproduct");
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--dim") == 0 && i + 1 < argc) {
            char *end;
            long d = strtol(argv[++i], &end, 10);
            if (*end != '\0' || d < 1 || d > 20000) {
                fprintf(stderr, "fake pinecone: --dim takes 1..20000\n");
                free(p);
                return NULL;
            }
            p->dim = (int)d;
        } else if (strcmp(argv[i], "--index") == 0 && i + 1 < argc) {
            snprintf(p->index, sizeof p->index, "%s", argv[++i]);
        } else if (strcmp(argv[i], "--metric") == 0 && i + 1 < argc) {
            snprintf(p->metric, sizeof p->metric, "%s", argv[++i]);
        } else {
            fprintf(stderr, "fake pinecone: unknown option %s\n", argv[i]);
            free(p);
            return NULL;
        }
    }
    return p;
}

static void pf_free(void *st)
{
    pf_reset(st);
    free(st);
}

const struct fv_service fv_pinecone_service = {
    .name = "pinecone",
    .init = pf_init,
    .handle = pf_handle,
    .error = pf_error,
    .reset = pf_reset,
    .free = pf_free,
};
