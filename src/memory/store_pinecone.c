/*
 * The Pinecone vector store (VECTOR_DB_PROVIDER=pinecone), over Pinecone's
 * REST data plane (api-notes §6, API version 2025-10) through net/rest.h.
 *
 * Multi-tenancy is Pinecone's own recommendation: one namespace per tenant,
 * named by the tenant id (a valid namespace name), so every request names
 * the tenant's namespace and no request can reach another tenant's data.
 * The index is one, with one dimension and one metric: its dimension is
 * read at the first operation (describe_index_stats) and a namespace of
 * another dimension is refused; a euclidean index is refused (memchat ranks
 * by inner product), a cosine one accepted (memchat's vectors are unit, so
 * cosine equals the inner product), scores are recomputed here from the
 * returned values so they are exact inner products whatever the metric.
 *
 * Pinecone metadata is flat, so a record is stored as memchat's fields
 * (id, text, user_id, agent, kind, created_at, updated_at), its metadata
 * as the verbatim JSON text "metadata" (read back bit for bit), and each
 * top-level scalar metadata value again as a typed, filterable field:
 * "ms_KEY" for strings, "mn_KEY" for numbers, "mb_KEY" for booleans. The
 * type in the name makes comparisons typed whatever Pinecone does with
 * {"n": 1} against "1", and values that filter_match never matches (lists,
 * objects, null) are left out, which is exactly how filter_match treats
 * them: like a missing key, matched only by $ne and $nin.
 *
 * A namespace's identity (remote_ns_to_json) lives in the namespace as a
 * reserved record "__memchat_namespace__" with a unit vector. Queries ask
 * for topK = k + 1 and drop it, so no filter needs to exclude it; list,
 * count and stats skip its id. Serverless indexes filter neither list nor
 * stats, so filtered list, count and delete list every id, fetch the
 * records and apply filter_match here: their cost grows with the tenant's
 * memories (documented). Query results are checked with filter_match too,
 * so a server that over-matches cannot leak a record the filter excludes.
 */
#include "config.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
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
#include "util/buf.h"
#include "util/clock.h"
#include "util/ident.h"
#include "util/utf8.h"
#include "util/uuid.h"

#define PC_SERVICE      "pinecone"
#define PC_API_VERSION  "2025-10"
#define PC_RESERVED_ID  "__memchat_namespace__"
#define PC_META_MAX     40960   /* bytes of one record's metadata (40 KB) */
#define PC_UPSERT_MAX   1000    /* records per upsert */
#define PC_UPSERT_BYTES 1900000 /* body bytes per upsert: under the 2 MB limit */
#define PC_FETCH_MAX    100     /* ids per fetch or delete: keeps the URL near 5 kB */
#define PC_LIST_LIMIT   100     /* ids per list page */
#define PC_TOPK_MAX     10000   /* Pinecone's topK limit */
#define PC_INLINE_TOPK  32      /* up to this topK the query returns values and metadata */
#define PC_DIM_MAX      20000
#define PC_KEY_MAX      256 /* bytes of a filterable metadata key (as filter.c) */

struct pc {
    char *api_key; /* secure copy, wiped on free */
    char *host;    /* configured data-plane URL, NULL: looked up */
    char *index_name;
    char *environment;
    char *controller;
    long timeout_ms;
    int max_retries;
    struct rest *control;
    struct rest *data;
    const atomic_bool *cancel; /* given to control and data, made lazily */
    bool ready;
    int dim;
    char metric[32];
    char where[256]; /* the data-plane URL, for messages and health */
};

/* A list of strings, owned. */
struct pc_ids {
    char **v;
    size_t n, cap;
};

static void pc_ids_push(struct pc_ids *l, const char *s)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = xreallocarray(l->v, l->cap, sizeof *l->v);
    }
    l->v[l->n++] = xstrdup(s);
}

static void pc_ids_free(struct pc_ids *l)
{
    for (size_t i = 0; i < l->n; i++)
        xfree(l->v[i]);
    xfree(l->v);
    memset(l, 0, sizeof *l);
}

static int pc_strcmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "pinecone: tenant "T": MESSAGE"; a problem found here, not a network one. */
static void pc_fail(struct vstore *s, const char *tenant, char *err, size_t errlen, const char *fmt,
                    ...) MC_PRINTF(5, 6);
static void pc_fail(struct vstore *s, const char *tenant, char *err, size_t errlen, const char *fmt,
                    ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    s->last_fail = REST_OK;
    if (tenant != NULL)
        snprintf(err, errlen, "%s: tenant \"%s\": %s", PC_SERVICE, tenant, msg);
    else
        snprintf(err, errlen, "%s: %s", PC_SERVICE, msg);
}

/* ---- endpoints ---------------------------------------------------------- */

static struct rest *pc_rest(struct pc *P, const char *base, char *err, size_t errlen)
{
    size_t n = strlen("Api-Key: ") + strlen(P->api_key) + 1;
    char *auth = xsecure_malloc(n); /* wiped when freed: it holds the key */
    snprintf(auth, n, "Api-Key: %s", P->api_key);
    const char *headers[] = {auth, "X-Pinecone-API-Version: " PC_API_VERSION};
    struct rest_opts o = {
        .service = PC_SERVICE,
        .base_url = base,
        .headers = headers,
        .n_headers = 2,
        .secret = P->api_key,
        .timeout_ms = P->timeout_ms,
        .max_retries = P->max_retries,
    };
    struct rest *r = rest_new(&o, err, errlen);
    xsecure_free(auth);
    if (r != NULL)
        rest_set_cancel(r, P->cancel);
    return r;
}

/* One call; on failure err is the rest message with the tenant and what
 * memchat was doing, and s->last_fail its class. 404 is returned as
 * REST_REFUSED with *status set, for callers that expect it. */
static enum rest_fail pc_call(struct vstore *s, struct rest *r, const char *tenant,
                              const char *what, const char *method, const char *path,
                              const char *body, cJSON **out, long *status, char *err, size_t errlen)
{
    char msg[768];
    long st = 0;
    enum rest_fail f = rest_call(r, method, path, body, out, &st, msg, sizeof msg);
    if (status != NULL)
        *status = st;
    if (f == REST_OK) {
        s->last_fail = REST_OK;
        return f;
    }
    s->last_fail = (int)f;
    if (tenant != NULL)
        snprintf(err, errlen, "%s (tenant \"%s\", %s)", msg, tenant, what);
    else
        snprintf(err, errlen, "%s (%s)", msg, what);
    return f;
}

static enum rest_fail pc_call_json(struct vstore *s, const char *tenant, const char *what,
                                   const char *method, const char *path, const cJSON *body,
                                   cJSON **out, long *status, char *err, size_t errlen)
{
    struct pc *P = s->impl;
    char *text = NULL;
    if (body != NULL && (text = cJSON_PrintUnformatted(body)) == NULL)
        alloc_die("pinecone request");
    enum rest_fail f =
        pc_call(s, P->data, tenant, what, method, path, text, out, status, err, errlen);
    cJSON_free(text);
    return f;
}

/* A host as the control plane gives it ("name-hash.svc.env.pinecone.io",
 * no scheme) made a URL: https://, except loopback hosts (Pinecone Local,
 * the fakes), which speak plain http. */
static char *pc_host_url(const char *host)
{
    if (strstr(host, "://") != NULL)
        return xstrdup(host);
    static const char *const local[] = {"127.0.0.1", "localhost", "[::1]"};
    for (size_t i = 0; i < sizeof local / sizeof local[0]; i++) {
        size_t n = strlen(local[i]);
        if (strncmp(host, local[i], n) == 0 && (host[n] == '\0' || host[n] == ':'))
            return xasprintf("http://%s", host);
    }
    return xasprintf("https://%s", host);
}

/* Reads the control plane's answer for the index: host, dimension, metric. */
static int pc_take_index(struct vstore *s, const cJSON *j, char **host, char *err, size_t errlen)
{
    struct pc *P = s->impl;
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(j, "host");
    if (!cJSON_IsString(h) || h->valuestring[0] == '\0') {
        pc_fail(s, NULL, err, errlen, "the control plane %s gave no host for the index \"%s\"",
                P->controller, P->index_name);
        s->last_fail = REST_BAD_REPLY;
        return -1;
    }
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "status");
    const cJSON *ready = cJSON_GetObjectItemCaseSensitive(st, "ready");
    if (cJSON_IsFalse(ready)) {
        const cJSON *state = cJSON_GetObjectItemCaseSensitive(st, "state");
        pc_fail(s, NULL, err, errlen, "the index \"%s\" is not ready yet (state %s); try again",
                P->index_name, cJSON_IsString(state) ? state->valuestring : "unknown");
        return -1;
    }
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "dimension");
    if (cJSON_IsNumber(d))
        P->dim = d->valueint;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "metric");
    if (cJSON_IsString(m))
        snprintf(P->metric, sizeof P->metric, "%s", m->valuestring);
    *host = pc_host_url(h->valuestring);
    return 0;
}

/* The data-plane URL: PINECONE_INDEX_HOST, else the control plane's. */
static char *pc_resolve_host(struct vstore *s, char *err, size_t errlen)
{
    struct pc *P = s->impl;
    if (P->host != NULL)
        return xstrdup(P->host);
    if (P->control == NULL && (P->control = pc_rest(P, P->controller, err, errlen)) == NULL)
        return NULL;
    char name[512], path[600];
    if (rest_escape(P->index_name, name, sizeof name) != 0) {
        pc_fail(s, NULL, err, errlen, "PINECONE_INDEX_NAME is too long");
        return NULL;
    }
    snprintf(path, sizeof path, "/indexes/%s", name);
    cJSON *j = NULL;
    long status = 0;
    if (pc_call(s, P->control, NULL, "looking up the index's host", "GET", path, NULL, &j, &status,
                err, errlen) != REST_OK) {
        if (status == 404)
            pc_fail(s, NULL, err, errlen,
                    "the index \"%s\" does not exist at %s (PINECONE_INDEX_NAME; create it with "
                    "the metric dotproduct)",
                    P->index_name, rest_base_shown(P->control));
        return NULL;
    }
    char *host = NULL;
    int rc = pc_take_index(s, j, &host, err, errlen);
    cJSON_Delete(j);
    return rc == 0 ? host : NULL;
}

/* Checks the index's dimension and metric from describe_index_stats. */
static int pc_check_index(struct vstore *s, char *err, size_t errlen)
{
    struct pc *P = s->impl;
    cJSON *j = NULL;
    if (pc_call(s, P->data, NULL, "reading the index's dimension", "POST", "/describe_index_stats",
                "{}", &j, NULL, err, errlen) != REST_OK)
        return -1;
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "dimension");
    if (cJSON_IsNumber(d))
        P->dim = d->valueint;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "metric");
    if (cJSON_IsString(m))
        snprintf(P->metric, sizeof P->metric, "%s", m->valuestring);
    cJSON_Delete(j);
    if (P->dim < 1 || P->dim > PC_DIM_MAX) {
        pc_fail(s, NULL, err, errlen, "%s: the index reports no usable dimension (%d)", P->where,
                P->dim);
        s->last_fail = REST_BAD_REPLY;
        return -1;
    }
    if (strcmp(P->metric, "euclidean") == 0) {
        pc_fail(s, NULL, err, errlen,
                "%s: the index's metric is euclidean; memchat ranks by inner product: use an "
                "index with the metric dotproduct (or cosine)",
                P->where);
        return -1;
    }
    return 0;
}

/* Connects on first use: the host, the environment check, the data-plane
 * endpoint, the dimension. Not cached on failure, so a later operation
 * tries again. */
static int pc_ready(struct vstore *s, char *err, size_t errlen)
{
    struct pc *P = s->impl;
    if (P->ready)
        return 0;
    char *host = pc_resolve_host(s, err, errlen);
    if (host == NULL)
        return -1;
    if (P->environment != NULL && strstr(host, P->environment) == NULL) {
        pc_fail(s, NULL, err, errlen,
                "the index \"%s\" is served from %s, which is not in the environment \"%s\" "
                "(PINECONE_ENVIRONMENT): the index is in another environment",
                P->index_name ? P->index_name : "(PINECONE_INDEX_HOST)", host, P->environment);
        xfree(host);
        return -1;
    }
    if (P->data == NULL) {
        P->data = pc_rest(P, host, err, errlen);
        if (P->data == NULL) {
            xfree(host);
            return -1;
        }
        snprintf(P->where, sizeof P->where, "%s", rest_base_shown(P->data));
    }
    xfree(host);
    if (pc_check_index(s, err, errlen) != 0)
        return -1;
    P->ready = true;
    return 0;
}

/* The start of every operation: the tenant, then the connection. */
static int pc_begin(struct vstore *s, const char *tenant, char *err, size_t errlen)
{
    s->last_fail = REST_OK;
    if (remote_check_tenant(PC_SERVICE, tenant, err, errlen) != 0)
        return -1;
    return pc_ready(s, err, errlen);
}

/* ---- records ------------------------------------------------------------ */

/* True when key can be a filterable field: filter.c's key length, no
 * control bytes, valid UTF-8. Pinecone's own key rules are not documented
 * beyond "no leading $", which the prefixes rule out. */
static bool pc_key_ok(const char *key)
{
    size_t n = strlen(key);
    if (n == 0 || n > PC_KEY_MAX || !utf8_valid(key, n, NULL))
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)key[i] < 0x20 || key[i] == 0x7f)
            return false;
    return true;
}

/* Adds the typed, filterable copies of meta's scalar values to md. The
 * first of duplicate keys wins (a filter on a duplicated key is checked
 * against all of them by filter_match only in list, count and delete). */
static void pc_add_meta_fields(cJSON *md, const cJSON *meta)
{
    for (const cJSON *e = meta->child; e != NULL; e = e->next) {
        if (e->string == NULL || !pc_key_ok(e->string))
            continue;
        const char *prefix = cJSON_IsString(e)   ? "ms_"
                             : cJSON_IsNumber(e) ? "mn_"
                             : cJSON_IsBool(e)   ? "mb_"
                                                 : NULL;
        if (prefix == NULL)
            continue; /* lists, objects, null: never matched but by $ne/$nin */
        char *name = xasprintf("%s%s", prefix, e->string);
        if (cJSON_GetObjectItemCaseSensitive(md, name) == NULL) {
            cJSON *copy = cJSON_Duplicate(e, false);
            if (copy == NULL)
                alloc_die("pinecone metadata");
            cJSON_AddItemToObject(md, name, copy);
        }
        xfree(name);
    }
}

/* The Pinecone metadata of r. NULL when r's metadata is not an object. */
static cJSON *pc_record_meta(const struct mem_record *r, const char *id)
{
    const char *mtext = r->metadata != NULL ? r->metadata : "{}";
    cJSON *meta = cJSON_Parse(mtext);
    if (!cJSON_IsObject(meta)) {
        cJSON_Delete(meta);
        return NULL;
    }
    cJSON *md = cJSON_CreateObject();
    if (md == NULL)
        alloc_die("pinecone metadata");
    cJSON_AddStringToObject(md, "id", id);
    cJSON_AddStringToObject(md, "text", r->text);
    cJSON_AddStringToObject(md, "user_id", r->user_id);
    cJSON_AddStringToObject(md, "agent", r->agent);
    cJSON_AddStringToObject(md, "kind", r->kind);
    cJSON_AddNumberToObject(md, "created_at", (double)r->created_at);
    cJSON_AddNumberToObject(md, "updated_at",
                            (double)(r->updated_at > 0 ? r->updated_at : r->created_at));
    cJSON_AddStringToObject(md, "metadata", mtext);
    pc_add_meta_fields(md, meta);
    cJSON_Delete(meta);
    return md;
}

/* Why r cannot be stored, or NULL. */
static const char *pc_record_problem(const struct mem_record *r, int dim)
{
    if (memchr(r->id, '\0', sizeof r->id) == NULL || !uuid_valid(r->id))
        return "the id is not a UUID";
    if (r->text == NULL || r->text[0] == '\0')
        return "the text is empty";
    if (!utf8_valid(r->text, strlen(r->text), NULL))
        return "the text is not valid UTF-8";
    if (memchr(r->user_id, '\0', sizeof r->user_id) == NULL || !ident_valid(r->user_id))
        return "the user_id is not valid (accepted: [A-Za-z0-9_-]{1,64})";
    if (memchr(r->agent, '\0', sizeof r->agent) == NULL || !ident_valid(r->agent))
        return "the agent is not valid (accepted: [A-Za-z0-9_-]{1,64})";
    if (memchr(r->kind, '\0', sizeof r->kind) == NULL || !ident_valid(r->kind))
        return "the kind is not valid (accepted: [A-Za-z0-9_-]{1,32})";
    if (r->created_at < 0 || r->updated_at < 0)
        return "created_at and updated_at are Unix milliseconds (0 or more)";
    if (r->vector == NULL)
        return "the vector is missing";
    if (r->dim != 0 && r->dim != dim)
        return "the vector's dimension is not the index's";
    bool nonzero = false;
    for (int i = 0; i < dim; i++) {
        if (!isfinite(r->vector[i]))
            return "the vector holds a NaN or an infinity";
        nonzero = nonzero || r->vector[i] != 0.0f;
    }
    return nonzero ? NULL : "the vector is all zeros (Pinecone refuses those)";
}

static void pc_canon_id(const char *id, char out[MC_UUID_STRLEN + 1])
{
    size_t i = 0;
    for (; i < MC_UUID_STRLEN && id[i] != '\0'; i++)
        out[i] = (char)tolower((unsigned char)id[i]);
    out[i] = '\0';
}

/* A Pinecone vector {"id","values","metadata"} as a record; vector loaded
 * when with_vector. 0, or -1 naming the field. */
static int pc_record_from(const cJSON *v, int dim, bool with_vector, struct mem_record *r,
                          char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(v, "metadata");
    char why[256];
    if (remote_record_from_json(md, r, why, sizeof why) != 0) {
        snprintf(err, errlen, "record %.64s: %s", r->id[0] ? r->id : "?", why);
        return -1;
    }
    /* The metadata verbatim, as the local store gives it back. */
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(md, "metadata");
    if (cJSON_IsString(mt)) {
        xfree(r->metadata);
        r->metadata = xstrdup(mt->valuestring);
    } else if (r->metadata == NULL) {
        r->metadata = xstrdup("{}");
    }
    const cJSON *values = cJSON_GetObjectItemCaseSensitive(v, "values");
    if (!with_vector)
        return 0;
    r->vector = remote_vector_from_json(values, dim);
    if (r->vector == NULL) {
        snprintf(err, errlen, "record %s: \"values\" is not %d numbers", r->id, dim);
        return -1;
    }
    r->dim = dim;
    return 0;
}

static struct mem_record *pc_records_push(struct mem_records *rs, size_t *cap)
{
    if (rs->n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        rs->v = xreallocarray(rs->v, *cap, sizeof *rs->v);
    }
    memset(&rs->v[rs->n], 0, sizeof rs->v[rs->n]);
    return &rs->v[rs->n++];
}

static double pc_dot(const float *a, const float *b, int dim)
{
    double d = 0;
    for (int i = 0; i < dim; i++)
        d += (double)a[i] * (double)b[i];
    return d;
}

/* ---- data-plane reads --------------------------------------------------- */

/* Fetches ids[0..n) of tenant (at most PC_FETCH_MAX) into *vectors: the
 * answer's "vectors" object (id -> vector), owned through *root. */
static int pc_fetch(struct vstore *s, const char *tenant, char *const *ids, size_t n, cJSON **root,
                    const cJSON **vectors, char *err, size_t errlen)
{
    struct buf path;
    buf_init(&path, 1024 * 1024);
    buf_printf(&path, "/vectors/fetch?namespace=%s", tenant);
    for (size_t i = 0; i < n; i++) {
        char esc[400];
        if (rest_escape(ids[i], esc, sizeof esc) != 0)
            continue; /* too long to be one of ours */
        buf_printf(&path, "&ids=%s", esc);
    }
    *root = NULL;
    enum rest_fail f = pc_call(s, ((struct pc *)s->impl)->data, tenant, "fetching records", "GET",
                               buf_cstr(&path), NULL, root, NULL, err, errlen);
    buf_free(&path);
    if (f != REST_OK)
        return -1;
    *vectors = cJSON_GetObjectItemCaseSensitive(*root, "vectors");
    if (*vectors != NULL && !cJSON_IsObject(*vectors)) {
        pc_fail(s, tenant, err, errlen, "fetch: \"vectors\" is not an object");
        s->last_fail = REST_BAD_REPLY;
        cJSON_Delete(*root);
        return -1;
    }
    return 0;
}

/* Every id of tenant's namespace but the reserved one, sorted. */
static int pc_list_ids(struct vstore *s, const char *tenant, struct pc_ids *out, char *err,
                       size_t errlen)
{
    struct pc *P = s->impl;
    memset(out, 0, sizeof *out);
    char token[1024] = "";
    for (;;) {
        char path[1400];
        snprintf(path, sizeof path, "/vectors/list?namespace=%s&limit=%d%s%s", tenant,
                 PC_LIST_LIMIT, token[0] ? "&paginationToken=" : "", token);
        cJSON *j = NULL;
        long status = 0;
        if (pc_call(s, P->data, tenant, "listing ids", "GET", path, NULL, &j, &status, err,
                    errlen) != REST_OK) {
            if (status == 404) { /* UNVERIFIED: a namespace that does not exist */
                s->last_fail = REST_OK;
                break;
            }
            pc_ids_free(out);
            return -1;
        }
        const cJSON *v;
        cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(j, "vectors"))
        {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(v, "id");
            if (cJSON_IsString(id) && strcmp(id->valuestring, PC_RESERVED_ID) != 0)
                pc_ids_push(out, id->valuestring);
        }
        const cJSON *next = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(j, "pagination"), "next");
        token[0] = '\0';
        if (cJSON_IsString(next) && next->valuestring[0] != '\0')
            rest_escape(next->valuestring, token, sizeof token);
        cJSON_Delete(j);
        if (token[0] == '\0')
            break;
    }
    if (out->n > 1)
        qsort(out->v, out->n, sizeof *out->v, pc_strcmp);
    return 0;
}

/* Appends to out the records of ids[0..n) that exist and match f, in the
 * order of ids, fetching PC_FETCH_MAX at a time, until out holds limit. */
static int pc_load(struct vstore *s, const char *tenant, char *const *ids, size_t n,
                   const struct mem_filter *f, bool with_vectors, size_t limit,
                   struct mem_records *out, size_t *cap, char *err, size_t errlen)
{
    struct pc *P = s->impl;
    for (size_t at = 0; at < n && out->n < limit; at += PC_FETCH_MAX) {
        size_t m = n - at < PC_FETCH_MAX ? n - at : PC_FETCH_MAX;
        cJSON *root = NULL;
        const cJSON *vectors = NULL;
        if (pc_fetch(s, tenant, ids + at, m, &root, &vectors, err, errlen) != 0)
            return -1;
        for (size_t i = 0; i < m && out->n < limit; i++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(vectors, ids[at + i]);
            if (v == NULL)
                continue; /* deleted meanwhile, or not yet visible */
            struct mem_record r;
            char why[512];
            if (pc_record_from(v, P->dim, with_vectors, &r, why, sizeof why) != 0) {
                mem_record_clear(&r);
                cJSON_Delete(root);
                pc_fail(s, tenant, err, errlen, "%s: %s", P->where, why);
                s->last_fail = REST_BAD_REPLY;
                return -1;
            }
            if (!filter_match(f, &r)) {
                mem_record_clear(&r);
                continue;
            }
            *pc_records_push(out, cap) = r;
        }
        cJSON_Delete(root);
    }
    return 0;
}

/* Every record of tenant matching f, in id order. */
static int pc_scan(struct vstore *s, const char *tenant, const struct mem_filter *f,
                   bool with_vectors, struct mem_records *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    struct pc_ids ids;
    if (pc_list_ids(s, tenant, &ids, err, errlen) != 0)
        return -1;
    size_t cap = 0;
    int rc = pc_load(s, tenant, ids.v, ids.n, f, with_vectors, (size_t)-1, out, &cap, err, errlen);
    pc_ids_free(&ids);
    if (rc != 0)
        mem_records_free(out);
    return rc;
}

/* The vectorCount of tenant in describe_index_stats (0 when absent). */
static int pc_ns_vectors(struct vstore *s, const char *tenant, size_t *n, char *err, size_t errlen)
{
    cJSON *j = NULL;
    if (pc_call_json(s, tenant, "reading the index's stats", "POST", "/describe_index_stats", NULL,
                     &j, NULL, err, errlen) != REST_OK)
        return -1;
    const cJSON *ns =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "namespaces"), tenant);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(ns, "vectorCount");
    *n = cJSON_IsNumber(c) && c->valuedouble > 0 ? (size_t)c->valuedouble : 0;
    cJSON_Delete(j);
    return 0;
}

/* The namespace record of tenant: 0 and ns filled, 1 when absent. */
static int pc_ns_read(struct vstore *s, const char *tenant, struct store_ns *ns, char *err,
                      size_t errlen)
{
    static char reserved[] = PC_RESERVED_ID; /* pc_fetch takes the ids of a pc_ids */
    char *ids[] = {reserved};
    cJSON *root = NULL;
    const cJSON *vectors = NULL;
    if (pc_fetch(s, tenant, ids, 1, &root, &vectors, err, errlen) != 0)
        return -1;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(vectors, PC_RESERVED_ID);
    if (v == NULL) {
        cJSON_Delete(root);
        return 1;
    }
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(v, "metadata");
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(md, "namespace");
    cJSON *o = cJSON_IsString(text) ? cJSON_Parse(text->valuestring) : NULL;
    char why[256] = "field \"namespace\" is missing or not JSON";
    int rc = o != NULL ? remote_ns_from_json(o, ns, why, sizeof why) : -1;
    cJSON_Delete(o);
    cJSON_Delete(root);
    if (rc != 0) {
        pc_fail(s, tenant, err, errlen, "the namespace record %s is damaged: %s", PC_RESERVED_ID,
                why);
        s->last_fail = REST_BAD_REPLY;
        return -1;
    }
    return 0;
}

/* ---- filters ------------------------------------------------------------ */

/* A translated filter: always true, never true, or a Pinecone condition. */
enum pc_tri { PC_TRUE, PC_FALSE, PC_COND };

static cJSON *pc_obj1(const char *key, cJSON *v)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL || v == NULL)
        alloc_die("pinecone filter");
    cJSON_AddItemToObject(o, key, v);
    return o;
}

static cJSON *pc_value(const struct filter_value *v)
{
    cJSON *j = v->type == FILTER_V_STRING   ? cJSON_CreateString(v->s ? v->s : "")
               : v->type == FILTER_V_NUMBER ? cJSON_CreateNumber(v->n)
                                            : cJSON_CreateBool(v->b);
    if (j == NULL)
        alloc_die("pinecone filter");
    return j;
}

/* {"$or":[{field:{op:v}},{field:{"$exists":false}}]}: the negations also
 * match a record without the field, as filter_match's do (whether
 * Pinecone's $ne/$nin match a missing key is not documented). */
static cJSON *pc_or_missing(const char *field, cJSON *cond)
{
    cJSON * or = cJSON_CreateArray();
    if (or == NULL)
        alloc_die("pinecone filter");
    cJSON_AddItemToArray(or, pc_obj1(field, cond));
    cJSON_AddItemToArray(or, pc_obj1(field, pc_obj1("$exists", cJSON_CreateFalse())));
    return pc_obj1("$or", or);
}

static const char *pc_op_name(enum filter_op op)
{
    switch (op) {
    case FILTER_GT:
        return "$gt";
    case FILTER_GTE:
        return "$gte";
    case FILTER_LT:
        return "$lt";
    case FILTER_LTE:
        return "$lte";
    default:
        return "$eq";
    }
}

/* The stored field a value of type t is compared in, or false when no
 * stored field of that type exists for key (then nothing equals it). */
static bool pc_field_for(const struct mem_filter *f, enum filter_vtype t, char *out, size_t outlen)
{
    const char *key = f->key ? f->key : "";
    enum filter_field fl = filter_field_of(key, f->is_meta);
    if (fl != FILTER_FIELD_META) {
        bool num = fl == FILTER_FIELD_CREATED;
        if (num != (t == FILTER_V_NUMBER))
            return false;
        snprintf(out, outlen, "%s", key);
        return true;
    }
    if (!pc_key_ok(key))
        return false;
    const char *prefix = t == FILTER_V_STRING ? "ms_" : t == FILTER_V_NUMBER ? "mn_" : "mb_";
    snprintf(out, outlen, "%s%s", prefix, key);
    return true;
}

/* The positive form of one comparison ($eq, $in, a range): the values
 * grouped by the field their type lives in, OR-ed. */
static enum pc_tri pc_positive(const struct mem_filter *f, cJSON **out)
{
    bool list = f->op == FILTER_IN || f->op == FILTER_NIN;
    bool range = filter_op_is_range(f->op);
    cJSON * or = cJSON_CreateArray();
    static const enum filter_vtype types[] = {FILTER_V_STRING, FILTER_V_NUMBER, FILTER_V_BOOL};
    for (size_t t = 0; t < 3; t++) {
        char field[PC_KEY_MAX + 8];
        if (range && types[t] != FILTER_V_NUMBER)
            continue; /* filter_match: ranges compare numbers only */
        if (!pc_field_for(f, types[t], field, sizeof field))
            continue;
        cJSON *vals = cJSON_CreateArray();
        size_t n = list ? f->n_values : (f->n_values > 0 ? 1 : 0);
        for (size_t i = 0; i < n; i++)
            if (f->values[i].type == types[t])
                cJSON_AddItemToArray(vals, pc_value(&f->values[i]));
        int count = cJSON_GetArraySize(vals);
        if (count == 0) {
            cJSON_Delete(vals);
            continue;
        }
        if (count == 1 || types[t] == FILTER_V_BOOL) {
            /* $in takes strings or numbers only: booleans are OR-ed $eq. */
            cJSON *it;
            cJSON_ArrayForEach(it, vals)
            {
                cJSON_AddItemToArray(or, pc_obj1(field, pc_obj1(range ? pc_op_name(f->op) : "$eq",
                                                                cJSON_Duplicate(it, true))));
            }
            cJSON_Delete(vals);
        } else {
            cJSON_AddItemToArray(or, pc_obj1(field, pc_obj1("$in", vals)));
        }
    }
    int n = cJSON_GetArraySize(or);
    if (n == 0) {
        cJSON_Delete(or);
        return PC_FALSE;
    }
    if (n == 1) {
        *out = cJSON_DetachItemFromArray(or, 0);
        cJSON_Delete(or);
    } else {
        *out = pc_obj1("$or", or);
    }
    return PC_COND;
}

/* The negation of a $eq/$in: for each typed field, the value is not among
 * that type's values or the field is missing; AND-ed. */
static enum pc_tri pc_negative(const struct mem_filter *f, cJSON **out)
{
    cJSON *and = cJSON_CreateArray();
    static const enum filter_vtype types[] = {FILTER_V_STRING, FILTER_V_NUMBER, FILTER_V_BOOL};
    size_t n = f->op == FILTER_NIN ? f->n_values : (f->n_values > 0 ? 1 : 0);
    for (size_t t = 0; t < 3; t++) {
        char field[PC_KEY_MAX + 8];
        if (!pc_field_for(f, types[t], field, sizeof field))
            continue;
        for (size_t i = 0; i < n; i++) {
            if (f->values[i].type != types[t])
                continue;
            bool fixed = filter_field_of(f->key, f->is_meta) != FILTER_FIELD_META;
            cJSON *ne = pc_obj1("$ne", pc_value(&f->values[i]));
            /* memchat's own fields exist on every record. */
            cJSON_AddItemToArray(and, fixed ? pc_obj1(field, ne) : pc_or_missing(field, ne));
        }
    }
    int count = cJSON_GetArraySize(and);
    if (count == 0) {
        cJSON_Delete(and);
        return PC_TRUE;
    }
    if (count == 1) {
        *out = cJSON_DetachItemFromArray(and, 0);
        cJSON_Delete(and);
    } else {
        *out = pc_obj1("$and", and);
    }
    return PC_COND;
}

static enum pc_tri pc_translate(const struct mem_filter *f, cJSON **out);

/* $and/$or with constants folded: an always-false kid decides an $and,
 * an always-true one an $or, and the others drop out. */
static enum pc_tri pc_combine(const struct mem_filter *f, cJSON **out)
{
    bool and = f->op == FILTER_AND;
    enum pc_tri decides = and? PC_FALSE : PC_TRUE;
    cJSON *kids = cJSON_CreateArray();
    for (size_t i = 0; i < f->n_kids; i++) {
        cJSON *k = NULL;
        enum pc_tri t = pc_translate(f->kids[i], &k);
        if (t == decides) {
            cJSON_Delete(kids);
            return decides;
        }
        if (t == PC_COND)
            cJSON_AddItemToArray(kids, k);
    }
    int n = cJSON_GetArraySize(kids);
    if (n == 0) {
        cJSON_Delete(kids);
        return and? PC_TRUE : PC_FALSE;
    }
    if (n == 1) {
        *out = cJSON_DetachItemFromArray(kids, 0);
        cJSON_Delete(kids);
    } else {
        *out = pc_obj1(and? "$and" : "$or", kids);
    }
    return PC_COND;
}

static enum pc_tri pc_translate(const struct mem_filter *f, cJSON **out)
{
    *out = NULL;
    if (f == NULL)
        return PC_TRUE;
    if (f->op == FILTER_AND || f->op == FILTER_OR)
        return pc_combine(f, out);
    if (f->n_values == 0)
        return f->op == FILTER_NE || f->op == FILTER_NIN ? PC_TRUE : PC_FALSE;
    if (f->op == FILTER_NE || f->op == FILTER_NIN)
        return pc_negative(f, out);
    return pc_positive(f, out);
}

/* ---- operations --------------------------------------------------------- */

static int pc_ns_get(struct vstore *s, const char *tenant, struct store_ns *out, char *err,
                     size_t errlen)
{
    if (pc_begin(s, tenant, err, errlen) != 0)
        return -1;
    int rc = pc_ns_read(s, tenant, out, err, errlen);
    if (rc != 0)
        return rc;
    size_t n = 0;
    if (pc_ns_vectors(s, tenant, &n, err, errlen) != 0)
        return -1;
    out->count = n > 0 ? n - 1 : 0;
    return 0;
}

/* Upserts the vectors (JSON texts) in batches within Pinecone's limits. */
static int pc_upsert_texts(struct vstore *s, const char *tenant, char *const *texts, size_t n,
                           char *err, size_t errlen)
{
    struct buf body;
    buf_init(&body, PC_UPSERT_BYTES + 4096);
    size_t i = 0;
    while (i < n) {
        buf_reset(&body);
        buf_printf(&body, "{\"namespace\":\"%s\",\"vectors\":[", tenant);
        size_t in_batch = 0;
        while (i < n && in_batch < PC_UPSERT_MAX &&
               (in_batch == 0 || body.len + strlen(texts[i]) + 3 <= PC_UPSERT_BYTES)) {
            buf_printf(&body, "%s%s", in_batch ? "," : "", texts[i]);
            in_batch++;
            i++;
        }
        buf_puts(&body, "]}");
        cJSON *j = NULL;
        enum rest_fail f =
            pc_call(s, ((struct pc *)s->impl)->data, tenant, "upserting records", "POST",
                    "/vectors/upsert", buf_cstr(&body), &j, NULL, err, errlen);
        cJSON_Delete(j);
        if (f != REST_OK) {
            buf_free(&body);
            return -1;
        }
    }
    buf_free(&body);
    return 0;
}

/* One vector's JSON text. */
static char *pc_vector_text(const char *id, const float *values, int dim, cJSON *metadata)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        alloc_die("pinecone vector");
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddItemToObject(o, "values", remote_vector_to_json(values, dim));
    cJSON_AddItemToObject(o, "metadata", metadata);
    char *t = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (t == NULL)
        alloc_die("pinecone vector");
    char *copy = xstrdup(t);
    cJSON_free(t);
    return copy;
}

static int pc_ns_create(struct vstore *s, const char *tenant, const struct store_ns *ns, char *err,
                        size_t errlen)
{
    if (pc_begin(s, tenant, err, errlen) != 0)
        return -1;
    struct pc *P = s->impl;
    if (ns == NULL || memchr(ns->embedder, '\0', sizeof ns->embedder) == NULL ||
        memchr(ns->model, '\0', sizeof ns->model) == NULL || ns->embedder[0] == '\0' ||
        ns->dim < 1) {
        pc_fail(s, tenant, err, errlen,
                "ns_create: the namespace needs an embedder name, a model name and a dimension");
        return -1;
    }
    if (ns->dim != P->dim) {
        pc_fail(s, tenant, err, errlen,
                "the namespace's vectors have dimension %d (embedder %s, model \"%s\"), but the "
                "Pinecone index at %s has dimension %d: use an index of dimension %d or an "
                "embedder of dimension %d",
                ns->dim, ns->embedder, ns->model, P->where, P->dim, ns->dim, P->dim);
        return -1;
    }
    struct store_ns have;
    int rc = pc_ns_read(s, tenant, &have, err, errlen);
    if (rc < 0)
        return -1;
    if (rc == 0) {
        if (strcmp(have.embedder, ns->embedder) == 0 && strcmp(have.model, ns->model) == 0 &&
            have.dim == ns->dim)
            return 0;
        pc_fail(s, tenant, err, errlen,
                "the namespace holds vectors of embedder %s, model \"%s\", dimension %d; the "
                "configuration asks for embedder %s, model \"%s\", dimension %d",
                have.embedder, have.model, have.dim, ns->embedder, ns->model, ns->dim);
        return -1;
    }
    struct store_ns made = *ns;
    made.created_ms = ns->created_ms > 0 ? ns->created_ms : clock_wall_ms();
    made.count = 0;
    cJSON *id = remote_ns_to_json(tenant, &made);
    char *idtext = cJSON_PrintUnformatted(id);
    cJSON_Delete(id);
    if (idtext == NULL)
        alloc_die("pinecone namespace");
    cJSON *md = cJSON_CreateObject();
    cJSON_AddBoolToObject(md, "memchat_reserved", true);
    cJSON_AddStringToObject(md, "namespace", idtext);
    cJSON_free(idtext);
    /* A unit vector: Pinecone refuses all-zero dense vectors. */
    float *unit = xcalloc((size_t)P->dim, sizeof *unit);
    unit[0] = 1.0f;
    char *text = pc_vector_text(PC_RESERVED_ID, unit, P->dim, md);
    xfree(unit);
    rc = pc_upsert_texts(s, tenant, &text, 1, err, errlen);
    xfree(text);
    return rc;
}

/* The JSON texts of recs as Pinecone vectors, checked. */
static int pc_upsert_prepare(struct vstore *s, const char *tenant, const struct mem_record *recs,
                             size_t n, char **texts, char *err, size_t errlen)
{
    struct pc *P = s->impl;
    for (size_t i = 0; i < n; i++) {
        const struct mem_record *r = &recs[i];
        const char *why = pc_record_problem(r, P->dim);
        char id[MC_UUID_STRLEN + 1] = "?";
        if (why == NULL || strcmp(why, "the id is not a UUID") != 0)
            pc_canon_id(r->id, id);
        cJSON *md = why == NULL ? pc_record_meta(r, id) : NULL;
        if (why == NULL && md == NULL)
            why = "the metadata is not a JSON object";
        if (why == NULL) {
            char *mt = cJSON_PrintUnformatted(md);
            size_t bytes = mt != NULL ? strlen(mt) : 0;
            cJSON_free(mt);
            if (bytes > PC_META_MAX) {
                cJSON_Delete(md);
                pc_fail(s, tenant, err, errlen,
                        "upsert: record %zu (id %s): its text and metadata take %zu bytes; "
                        "Pinecone stores at most %d bytes of metadata per record",
                        i, id, bytes, PC_META_MAX);
                return -1;
            }
        }
        if (why != NULL && r->dim != 0 && r->dim != P->dim) {
            pc_fail(s, tenant, err, errlen,
                    "upsert: record %zu (id %s): the vector has %d floats; the index's "
                    "dimension is %d",
                    i, id, r->dim, P->dim);
            return -1;
        }
        if (why != NULL) {
            pc_fail(s, tenant, err, errlen, "upsert: record %zu (id %s): %s", i, id, why);
            return -1;
        }
        texts[i] = pc_vector_text(id, r->vector, P->dim, md);
    }
    return 0;
}

static int pc_upsert(struct vstore *s, const char *tenant, const struct mem_record *recs, size_t n,
                     char *err, size_t errlen)
{
    if (pc_begin(s, tenant, err, errlen) != 0)
        return -1;
    if (n == 0)
        return 0;
    if (recs == NULL) {
        pc_fail(s, tenant, err, errlen, "upsert: no records given for a count of %zu", n);
        return -1;
    }
    struct store_ns ns;
    int rc = pc_ns_read(s, tenant, &ns, err, errlen);
    if (rc == 1)
        pc_fail(s, tenant, err, errlen,
                "upsert: the tenant has no memory namespace yet (create it first with its "
                "embedder and dimension)");
    if (rc != 0)
        return -1;
    char **texts = xcalloc(n, sizeof *texts);
    rc = pc_upsert_prepare(s, tenant, recs, n, texts, err, errlen);
    if (rc == 0)
        rc = pc_upsert_texts(s, tenant, texts, n, err, errlen);
    for (size_t i = 0; i < n; i++)
        xfree(texts[i]);
    xfree(texts);
    return rc;
}

/* Scores out against q, sorts best first and keeps k. */
static void pc_rank(struct mem_records *out, const float *q, int dim, size_t k)
{
    for (size_t i = 0; i < out->n; i++)
        out->v[i].score = pc_dot(q, out->v[i].vector, dim);
    remote_sort_records(out);
    while (out->n > k)
        mem_record_clear(&out->v[--out->n]);
}

/* The query's matches as records: inline ones read directly, the others
 * fetched by id. */
static int pc_query_matches(struct vstore *s, const char *tenant, const cJSON *matches,
                            bool inline_records, const struct mem_filter *f,
                            struct mem_records *out, char *err, size_t errlen)
{
    struct pc *P = s->impl;
    size_t cap = 0;
    struct pc_ids ids = {0};
    const cJSON *m;
    cJSON_ArrayForEach(m, matches)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "id");
        if (!cJSON_IsString(id) || strcmp(id->valuestring, PC_RESERVED_ID) == 0)
            continue;
        if (!inline_records) {
            pc_ids_push(&ids, id->valuestring);
            continue;
        }
        struct mem_record r;
        char why[512];
        if (pc_record_from(m, P->dim, true, &r, why, sizeof why) != 0) {
            mem_record_clear(&r);
            pc_fail(s, tenant, err, errlen, "query: %s: %s", P->where, why);
            s->last_fail = REST_BAD_REPLY;
            return -1;
        }
        if (!filter_match(f, &r)) {
            mem_record_clear(&r);
            continue;
        }
        *pc_records_push(out, &cap) = r;
    }
    int rc = 0;
    if (!inline_records)
        rc = pc_load(s, tenant, ids.v, ids.n, f, true, (size_t)-1, out, &cap, err, errlen);
    pc_ids_free(&ids);
    return rc;
}

static int pc_query(struct vstore *s, const char *tenant, const float *q, size_t k,
                    const struct mem_filter *f, struct mem_records *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (pc_begin(s, tenant, err, errlen) != 0)
        return -1;
    struct pc *P = s->impl;
    cJSON *cond = NULL;
    enum pc_tri t = pc_translate(f, &cond);
    if (k == 0 || t == PC_FALSE)
        return 0;
    int rc;
    if (k >= PC_TOPK_MAX) {
        /* Beyond topK's limit: every record, scored here. */
        cJSON_Delete(cond);
        rc = pc_scan(s, tenant, f, true, out, err, errlen);
    } else {
        bool inline_records = k + 1 <= PC_INLINE_TOPK;
        cJSON *body = cJSON_CreateObject();
        cJSON_AddStringToObject(body, "namespace", tenant);
        cJSON_AddNumberToObject(body, "topK", (double)(k + 1));
        cJSON_AddItemToObject(body, "vector", remote_vector_to_json(q, P->dim));
        if (cond != NULL)
            cJSON_AddItemToObject(body, "filter", cond);
        cJSON_AddBoolToObject(body, "includeValues", inline_records);
        cJSON_AddBoolToObject(body, "includeMetadata", inline_records);
        cJSON *j = NULL;
        rc = pc_call_json(s, tenant, "querying", "POST", "/query", body, &j, NULL, err, errlen) ==
                     REST_OK
                 ? 0
                 : -1;
        cJSON_Delete(body);
        if (rc == 0)
            rc = pc_query_matches(s, tenant, cJSON_GetObjectItemCaseSensitive(j, "matches"),
                                  inline_records, f, out, err, errlen);
        cJSON_Delete(j);
    }
    if (rc != 0) {
        mem_records_free(out);
        return -1;
    }
    pc_rank(out, q, P->dim, k);
    return 0;
}

static int pc_list(struct vstore *s, const char *tenant, const struct mem_filter *f,
                   const char *after_id, size_t limit, bool with_vectors, struct mem_records *out,
                   char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (pc_begin(s, tenant, err, errlen) != 0)
        return -1;
    char after[MC_UUID_STRLEN + 1] = "";
    if (after_id != NULL) {
        if (!uuid_valid(after_id)) {
            pc_fail(s, tenant, err, errlen, "list: the id to start after is not a UUID");
            return -1;
        }
        pc_canon_id(after_id, after);
    }
    if (limit == 0)
        return 0;
    struct pc_ids ids;
    if (pc_list_ids(s, tenant, &ids, err, errlen) != 0)
        return -1;
    size_t from = 0;
    while (from < ids.n && strcmp(ids.v[from], after) <= 0)
        from++;
    size_t cap = 0;
    int rc = pc_load(s, tenant, ids.v + from, ids.n - from, f, with_vectors, limit, out, &cap, err,
                     errlen);
    pc_ids_free(&ids);
    if (rc != 0)
        mem_records_free(out);
    return rc;
}

/* Deletes ids[0..n) of tenant, PC_FETCH_MAX at a time. */
static int pc_delete_list(struct vstore *s, const char *tenant, char *const *ids, size_t n,
                          char *err, size_t errlen)
{
    for (size_t at = 0; at < n; at += PC_FETCH_MAX) {
        size_t m = n - at < PC_FETCH_MAX ? n - at : PC_FETCH_MAX;
        cJSON *body = cJSON_CreateObject();
        cJSON *arr = cJSON_AddArrayToObject(body, "ids");
        for (size_t i = 0; i < m; i++)
            cJSON_AddItemToArray(arr, cJSON_CreateString(ids[at + i]));
        cJSON_AddStringToObject(body, "namespace", tenant);
        cJSON *j = NULL;
        enum rest_fail f = pc_call_json(s, tenant, "deleting records", "POST", "/vectors/delete",
                                        body, &j, NULL, err, errlen);
        cJSON_Delete(body);
        cJSON_Delete(j);
        if (f != REST_OK)
            return -1;
    }
    return 0;
}

static int pc_delete_ids(struct vstore *s, const char *tenant, const char *const *ids, size_t n,
                         size_t *deleted, char *err, size_t errlen)
{
    if (deleted != NULL)
        *deleted = 0;
    if (pc_begin(s, tenant, err, errlen) != 0)
        return -1;
    if (n == 0)
        return 0;
    if (ids == NULL) {
        pc_fail(s, tenant, err, errlen, "delete: no ids given for a count of %zu", n);
        return -1;
    }
    struct pc_ids want = {0};
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == NULL || !uuid_valid(ids[i]))
            continue; /* not a UUID: no memory has it (nor the reserved record) */
        char id[MC_UUID_STRLEN + 1];
        pc_canon_id(ids[i], id);
        bool dup = false;
        for (size_t j = 0; j < want.n && !dup; j++)
            dup = strcmp(want.v[j], id) == 0;
        if (!dup)
            pc_ids_push(&want, id);
    }
    /* Only the ids that exist count as deleted: fetch them first. */
    struct mem_records found = {0};
    size_t cap = 0;
    int rc = pc_load(s, tenant, want.v, want.n, NULL, false, (size_t)-1, &found, &cap, err, errlen);
    pc_ids_free(&want);
    struct pc_ids gone = {0};
    for (size_t i = 0; rc == 0 && i < found.n; i++)
        pc_ids_push(&gone, found.v[i].id);
    mem_records_free(&found);
    if (rc == 0)
        rc = pc_delete_list(s, tenant, gone.v, gone.n, err, errlen);
    if (rc == 0 && deleted != NULL)
        *deleted = gone.n;
    pc_ids_free(&gone);
    return rc;
}

/* Purge: deleteAll in the tenant's namespace, the namespace record too. */
static int pc_purge(struct vstore *s, const char *tenant, size_t *deleted, char *err, size_t errlen)
{
    size_t n = 0;
    if (pc_ns_vectors(s, tenant, &n, err, errlen) != 0)
        return -1;
    cJSON *body = cJSON_CreateObject();
    cJSON_AddBoolToObject(body, "deleteAll", true);
    cJSON_AddStringToObject(body, "namespace", tenant);
    cJSON *j = NULL;
    long status = 0;
    enum rest_fail f = pc_call_json(s, tenant, "deleting the namespace", "POST", "/vectors/delete",
                                    body, &j, &status, err, errlen);
    cJSON_Delete(body);
    cJSON_Delete(j);
    if (f != REST_OK && status != 404) /* UNVERIFIED: 404 for a namespace that is gone */
        return -1;
    s->last_fail = REST_OK;
    if (deleted != NULL)
        *deleted = n > 0 ? n - 1 : 0;
    return 0;
}

static int pc_delete_filter(struct vstore *s, const char *tenant, const struct mem_filter *f,
                            size_t *deleted, char *err, size_t errlen)
{
    if (deleted != NULL)
        *deleted = 0;
    if (pc_begin(s, tenant, err, errlen) != 0)
        return -1;
    if (f == NULL)
        return pc_purge(s, tenant, deleted, err, errlen);
    struct mem_records hit;
    if (pc_scan(s, tenant, f, false, &hit, err, errlen) != 0)
        return -1;
    struct pc_ids gone = {0};
    for (size_t i = 0; i < hit.n; i++)
        pc_ids_push(&gone, hit.v[i].id);
    mem_records_free(&hit);
    int rc = pc_delete_list(s, tenant, gone.v, gone.n, err, errlen);
    if (rc == 0 && deleted != NULL)
        *deleted = gone.n;
    pc_ids_free(&gone);
    return rc;
}

static int pc_count(struct vstore *s, const char *tenant, const struct mem_filter *f, size_t *n,
                    char *err, size_t errlen)
{
    *n = 0;
    if (pc_begin(s, tenant, err, errlen) != 0)
        return -1;
    if (f == NULL) {
        size_t v = 0;
        if (pc_ns_vectors(s, tenant, &v, err, errlen) != 0)
            return -1;
        *n = v > 0 ? v - 1 : 0; /* the namespace record */
        return 0;
    }
    struct mem_records hit;
    if (pc_scan(s, tenant, f, false, &hit, err, errlen) != 0)
        return -1;
    *n = hit.n;
    mem_records_free(&hit);
    return 0;
}

static int pc_stats(struct vstore *s, const char *tenant, struct store_stats *out, char *err,
                    size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (pc_begin(s, tenant, err, errlen) != 0)
        return -1;
    struct pc *P = s->impl;
    struct mem_records all;
    if (pc_scan(s, tenant, NULL, false, &all, err, errlen) != 0)
        return -1;
    struct pc_ids users = {0};
    for (size_t i = 0; i < all.n; i++) {
        const struct mem_record *r = &all.v[i];
        bool seen = false;
        for (size_t j = 0; j < users.n && !seen; j++)
            seen = strcmp(users.v[j], r->user_id) == 0;
        if (!seen)
            pc_ids_push(&users, r->user_id);
        if (out->oldest == 0 || r->created_at < out->oldest)
            out->oldest = r->created_at;
        if (r->created_at > out->newest)
            out->newest = r->created_at;
        size_t text = strlen(r->text);
        out->text_bytes += text;
        /* An estimate: the vector, the stored fields and the metadata. */
        out->bytes_on_disk += (size_t)P->dim * sizeof(float) + 2 * text +
                              strlen(r->metadata ? r->metadata : "{}") + 160;
    }
    out->count = all.n;
    out->users = users.n;
    pc_ids_free(&users);
    mem_records_free(&all);
    return 0;
}

static int pc_namespaces(struct vstore *s, char ***tenants, size_t *n, char *err, size_t errlen)
{
    *tenants = NULL;
    *n = 0;
    s->last_fail = REST_OK;
    if (pc_ready(s, err, errlen) != 0)
        return -1;
    cJSON *j = NULL;
    if (pc_call_json(s, NULL, "listing namespaces", "POST", "/describe_index_stats", NULL, &j, NULL,
                     err, errlen) != REST_OK)
        return -1;
    struct pc_ids names = {0};
    const cJSON *ns;
    int rc = 0;
    cJSON_ArrayForEach(ns, cJSON_GetObjectItemCaseSensitive(j, "namespaces"))
    {
        if (ns->string == NULL || !ident_valid(ns->string))
            continue; /* not a tenant id: not memchat's */
        struct store_ns id;
        int got = pc_ns_read(s, ns->string, &id, err, errlen);
        if (got < 0) {
            rc = -1;
            break;
        }
        if (got == 0) /* memchat's namespaces hold their namespace record */
            pc_ids_push(&names, ns->string);
    }
    cJSON_Delete(j);
    if (rc != 0) {
        pc_ids_free(&names);
        return -1;
    }
    if (names.n > 1)
        qsort(names.v, names.n, sizeof *names.v, pc_strcmp);
    *tenants = names.v;
    *n = names.n;
    return 0;
}

static int pc_health(struct vstore *s, struct store_health *out, char *err, size_t errlen)
{
    struct pc *P = s->impl;
    memset(out, 0, sizeof *out);
    s->last_fail = REST_OK;
    P->ready = false; /* health asks the server every time */
    if (pc_ready(s, err, errlen) != 0) {
        snprintf(out->where, sizeof out->where, "%s",
                 P->where[0] ? P->where : (P->host ? P->host : P->controller));
        return -1;
    }
    out->fixed_dim = P->dim;
    snprintf(out->server, sizeof out->server, "pinecone index%s%s (%s)", P->index_name ? " " : "",
             P->index_name ? P->index_name : "", P->metric[0] ? P->metric : "metric unknown");
    snprintf(out->where, sizeof out->where, "%s", P->where);
    return 0;
}

static void pc_set_cancel(struct vstore *s, const atomic_bool *cancel)
{
    struct pc *P = s->impl;
    P->cancel = cancel;
    if (P->control != NULL)
        rest_set_cancel(P->control, cancel);
    if (P->data != NULL)
        rest_set_cancel(P->data, cancel);
}

static void pc_free(struct vstore *s)
{
    struct pc *P = s->impl;
    if (P != NULL) {
        rest_free(P->control);
        rest_free(P->data);
        xsecure_free(P->api_key);
        xfree(P->host);
        xfree(P->index_name);
        xfree(P->environment);
        xfree(P->controller);
        xfree(P);
    }
    xfree(s);
}

static const struct vstore_ops pc_ops = {
    .ns_get = pc_ns_get,
    .ns_create = pc_ns_create,
    .upsert = pc_upsert,
    .query = pc_query,
    .keyword = NULL,
    .list = pc_list,
    .delete_ids = pc_delete_ids,
    .delete_filter = pc_delete_filter,
    .count = pc_count,
    .stats = pc_stats,
    .namespaces = pc_namespaces,
    .index = NULL,
    .health = pc_health,
    .set_cancel = pc_set_cancel,
    .free = pc_free,
};

static char *pc_setting(const struct config *cfg, int id)
{
    const char *v = config_str(cfg, id);
    return v != NULL && v[0] != '\0' ? xstrdup(v) : NULL;
}

struct vstore *store_pinecone_new(const struct config *cfg, char *err, size_t errlen)
{
    const char *key = config_str(cfg, CFG_PINECONE_API_KEY);
    if (key == NULL || key[0] == '\0') {
        snprintf(err, errlen, "%s: PINECONE_API_KEY is not set (VECTOR_DB_PROVIDER=pinecone)",
                 PC_SERVICE);
        return NULL;
    }
    const char *host = config_str(cfg, CFG_PINECONE_INDEX_HOST);
    const char *name = config_str(cfg, CFG_PINECONE_INDEX_NAME);
    if ((host == NULL || host[0] == '\0') && (name == NULL || name[0] == '\0')) {
        snprintf(err, errlen,
                 "%s: set PINECONE_INDEX_HOST (the index's data-plane URL) or "
                 "PINECONE_INDEX_NAME (looked up at PINECONE_CONTROLLER_URL)",
                 PC_SERVICE);
        return NULL;
    }
    struct pc *P = xcalloc(1, sizeof *P);
    P->api_key = xsecure_dup(key, strlen(key));
    P->host = host != NULL && host[0] != '\0' ? pc_host_url(host) : NULL;
    P->index_name = pc_setting(cfg, CFG_PINECONE_INDEX_NAME);
    P->environment = pc_setting(cfg, CFG_PINECONE_ENVIRONMENT);
    P->controller = pc_setting(cfg, CFG_PINECONE_CONTROLLER_URL);
    if (P->controller == NULL)
        P->controller = xstrdup("https://api.pinecone.io");
    P->timeout_ms = (long)config_duration_ms(cfg, CFG_MEMORY_REMOTE_TIMEOUT);
    P->max_retries = (int)config_int(cfg, CFG_MEMCHAT_MAX_RETRIES);
    struct vstore *s = xcalloc(1, sizeof *s);
    s->ops = &pc_ops;
    snprintf(s->name, sizeof s->name, "pinecone");
    s->remote = true;
    s->last_fail = REST_OK;
    s->impl = P;
    return s;
}
