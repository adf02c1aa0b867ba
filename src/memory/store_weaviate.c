/*
 * The Weaviate vector store (VECTOR_DB_PROVIDER=weaviate), over REST and
 * GraphQL through net/rest.h. Multi-tenancy is Weaviate's own: one
 * collection per dimension (PREFIX + "D" + dim, multi-tenant, vectorizer
 * "none", distance "dot") and one Weaviate tenant per memchat tenant, so
 * each tenant is its own shard and the server confines every data request
 * to the tenant it names; ids may therefore repeat across tenants. A plain
 * collection PREFIX + "Namespaces" records each namespace's identity (the
 * object id is derived from the tenant), which is also how an operation
 * learns the tenant's dimension, hence its collection.
 *
 * Filters become Weaviate where filters that match filter_match() exactly.
 * Each scalar top-level metadata key is stored, besides the metadata JSON
 * text, as a typed property named after its type and its key in hex
 * ("ms_"/"mn_"/"mb_" + hex, or a hash for long keys), because property
 * names are restricted and a value's type is part of a comparison: a
 * string compares only with the "ms_" property, so typed comparisons come
 * for free. A missing key matching only $ne and $nin is expressed with Not
 * over the positive comparison (the complement includes objects without
 * the property), and a comparison on a property the collection does not
 * have is the constant false, folded away before anything is sent. Filter
 * values are user input: they are printed into GraphQL through one escaper.
 *
 * list pages in id order with the REST cursor (which takes no filter) and
 * applies filter_match here, so a filtered list reads the tenant's objects
 * from after_id until it has `limit` matches (cost: up to the tenant's
 * size per call); stats reads every object once.
 */
#include "config.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>

#include "config/config.h"
#include "config/vars.h"
#include "memory/filter.h"
#include "memory/remote.h"
#include "memory/store.h"
#include "net/rest.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/uuid.h"

#define WV             "weaviate"
#define WV_CLS         96    /* a class name: prefix (<= 48) + "D" + dim, or + "Namespaces" */
#define WV_PAGE        500   /* objects per cursor page */
#define WV_MAX_RESULTS 10000 /* Weaviate's QUERY_MAXIMUM_RESULTS default (UNVERIFIED) */
#define WV_BATCH       100   /* objects per batch import */
#define WV_KEY_HEX_MAX 100   /* longer metadata keys are named by a hash */

struct wv {
    struct rest *rest;
    char prefix[64];
    char ns_class[96];
    cJSON *props; /* class name -> {property name: true}, as last seen */
};

/* What a filter translates to: a constant, or a where tree. */
enum wh_kind { WH_FALSE, WH_TRUE, WH_EXPR };

static int64_t wv_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void wv_class_of(const struct wv *w, int dim, char *out, size_t outlen)
{
    snprintf(out, outlen, "%sD%d", w->prefix, dim);
}

/* One call; remembers how it failed and names the tenant. 404 is not a
 * failure to the callers that pass want404 (it means "absent"). */
static int wv_call(struct vstore *s, const char *tenant, const char *method, const char *path,
                   const cJSON *body, cJSON **out, long *status, char *err, size_t errlen)
{
    struct wv *w = s->impl;
    char msg[1024];
    long st = 0;
    *out = NULL;
    enum rest_fail f = rest_call_json(w->rest, method, path, body, out, &st, msg, sizeof msg);
    if (status != NULL)
        *status = st;
    s->last_fail = f;
    if (f == REST_OK)
        return 0;
    if (tenant != NULL)
        snprintf(err, errlen, "%s (tenant \"%s\")", msg, tenant);
    else
        snprintf(err, errlen, "%s", msg);
    return -1;
}

/* A failure that is not HTTP's: a reply we cannot use, a GraphQL error,
 * or a caller's mistake (fail REST_OK: not the network's). */
__attribute__((format(printf, 5, 6))) static int wv_refuse(struct vstore *s, int fail, char *err,
                                                           size_t errlen, const char *fmt, ...)
{
    s->last_fail = fail;
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(err, errlen, WV " at %s: %s", rest_base_shown(((struct wv *)s->impl)->rest), msg);
    return -1;
}

/* The first GraphQL error message, or NULL when there is none. */
static const char *wv_gql_error(const cJSON *res)
{
    const cJSON *errs = cJSON_GetObjectItemCaseSensitive(res, "errors");
    if (!cJSON_IsArray(errs) || cJSON_GetArraySize(errs) == 0)
        return NULL;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(errs->child, "message");
    return cJSON_IsString(m) ? m->valuestring : "(no message)";
}

/* POST /v1/graphql; the data object of the answer in *data (owned by
 * *res). */
static int wv_graphql(struct vstore *s, const char *tenant, const char *query, cJSON **res,
                      cJSON **data, char *err, size_t errlen)
{
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "query", query);
    int rc = wv_call(s, tenant, "POST", "/graphql", body, res, NULL, err, errlen);
    cJSON_Delete(body);
    if (rc != 0)
        return -1;
    const char *ge = wv_gql_error(*res);
    if (ge != NULL) {
        rc = wv_refuse(s, REST_REFUSED, err, errlen, "graphql (tenant \"%s\"): %s", tenant, ge);
        cJSON_Delete(*res);
        *res = NULL;
        return rc;
    }
    *data = cJSON_GetObjectItemCaseSensitive(*res, "data");
    if (!cJSON_IsObject(*data)) {
        cJSON_Delete(*res);
        *res = NULL;
        return wv_refuse(s, REST_BAD_REPLY, err, errlen, "graphql (tenant \"%s\"): %s", tenant,
                         "no \"data\" in the answer");
    }
    return 0;
}

/* ---- GraphQL printing --------------------------------------------------- */

/* s as a GraphQL string literal: every quote, backslash and control
 * character escaped, so no value can end the string early. */
static void gq_string(struct buf *b, const char *s)
{
    buf_putc(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"':
            buf_puts(b, "\\\"");
            break;
        case '\\':
            buf_puts(b, "\\\\");
            break;
        case '\n':
            buf_puts(b, "\\n");
            break;
        case '\r':
            buf_puts(b, "\\r");
            break;
        case '\t':
            buf_puts(b, "\\t");
            break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                buf_printf(b, "\\u%04x", *p);
            else
                buf_putc(b, (char)*p);
        }
    }
    buf_putc(b, '"');
}

static void gq_number(struct buf *b, double d)
{
    if (d == floor(d) && fabs(d) < 9007199254740992.0)
        buf_printf(b, "%.0f", d);
    else
        buf_printf(b, "%.17g", d);
}

/* A where tree (REST JSON form) in GraphQL's syntax: keys bare, the
 * operator an enum, every other string a literal. */
static void gq_value(struct buf *b, const cJSON *v, bool is_enum)
{
    if (cJSON_IsString(v)) {
        if (is_enum)
            buf_puts(b, v->valuestring); /* one of our operator names */
        else
            gq_string(b, v->valuestring);
    } else if (cJSON_IsNumber(v)) {
        gq_number(b, v->valuedouble);
    } else if (cJSON_IsBool(v)) {
        buf_puts(b, cJSON_IsTrue(v) ? "true" : "false");
    } else if (cJSON_IsArray(v)) {
        buf_putc(b, '[');
        for (const cJSON *e = v->child; e; e = e->next) {
            gq_value(b, e, false);
            if (e->next)
                buf_puts(b, ", ");
        }
        buf_putc(b, ']');
    } else if (cJSON_IsObject(v)) {
        buf_putc(b, '{');
        for (const cJSON *e = v->child; e; e = e->next) {
            buf_printf(b, "%s: ", e->string);
            gq_value(b, e, strcmp(e->string, "operator") == 0);
            if (e->next)
                buf_puts(b, ", ");
        }
        buf_putc(b, '}');
    } else {
        buf_puts(b, "null");
    }
}

/* ---- property names and the schema cache ------------------------------ */

/* The property holding metadata key of type t ('s' text, 'n' number,
 * 'b' boolean): [_A-Za-z][_0-9A-Za-z]*, distinct per key and type. */
static void wv_meta_prop(const char *key, char t, char *out, size_t outlen)
{
    size_t kl = strlen(key);
    if (kl <= WV_KEY_HEX_MAX) {
        size_t o = (size_t)snprintf(out, outlen, "m%c_", t);
        for (size_t i = 0; i < kl && o + 3 <= outlen; i++, o += 2)
            snprintf(out + o, outlen - o, "%02x", (unsigned char)key[i]);
        return;
    }
    char u[MC_UUID_STRLEN + 1];
    remote_uuid_from("weaviate metadata key", key, u);
    size_t o = (size_t)snprintf(out, outlen, "m%ch_", t);
    for (const char *p = u; *p && o + 2 <= outlen; p++)
        if (*p != '-')
            out[o++] = *p;
    out[o < outlen ? o : outlen - 1] = '\0';
}

static const char *wv_meta_type(char t)
{
    return t == 's' ? "text" : t == 'n' ? "number" : "boolean";
}

/* Reads class cls's properties into the cache; 1 when the class does not
 * exist. */
static int wv_schema_load(struct vstore *s, const char *cls, cJSON **classdef, char *err,
                          size_t errlen)
{
    struct wv *w = s->impl;
    char path[512];
    snprintf(path, sizeof path, "/schema/%s", cls);
    cJSON *res = NULL;
    long st = 0;
    if (wv_call(s, NULL, "GET", path, NULL, &res, &st, err, errlen) != 0) {
        if (st == 404) {
            s->last_fail = REST_OK;
            return 1;
        }
        return -1;
    }
    cJSON *set = cJSON_CreateObject();
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(res, "properties");
    const cJSON *p;
    cJSON_ArrayForEach(p, props)
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(p, "name");
        if (cJSON_IsString(n) && !cJSON_HasObjectItem(set, n->valuestring))
            cJSON_AddTrueToObject(set, n->valuestring);
    }
    cJSON_DeleteItemFromObjectCaseSensitive(w->props, cls);
    cJSON_AddItemToObject(w->props, cls, set);
    if (classdef != NULL)
        *classdef = res;
    else
        cJSON_Delete(res);
    return 0;
}

static bool wv_has_prop(struct vstore *s, const char *cls, const char *prop)
{
    struct wv *w = s->impl;
    const cJSON *set = cJSON_GetObjectItemCaseSensitive(w->props, cls);
    return set != NULL && cJSON_HasObjectItem(set, prop);
}

static cJSON *wv_prop_def(const char *name, const char *type, const char *tokenization)
{
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "name", name);
    cJSON *dt = cJSON_AddArrayToObject(p, "dataType");
    cJSON_AddItemToArray(dt, cJSON_CreateString(type));
    if (tokenization != NULL)
        cJSON_AddStringToObject(p, "tokenization", tokenization);
    return p;
}

/* Creates class cls unless it exists (another client may create it at the
 * same time: a refused creation is fine when the class is there after). */
static int wv_class_ensure(struct vstore *s, const char *cls, bool multi, cJSON *props, char *err,
                           size_t errlen)
{
    cJSON *def = NULL;
    int rc = wv_schema_load(s, cls, &def, err, errlen);
    if (rc <= 0) {
        const cJSON *mt = cJSON_GetObjectItemCaseSensitive(def, "multiTenancyConfig");
        bool on = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(mt, "enabled"));
        cJSON_Delete(def);
        cJSON_Delete(props);
        if (rc == 0 && on != multi)
            return wv_refuse(s, REST_REFUSED, err, errlen,
                             "class %s exists with multi-tenancy %s; memchat needs the other", cls,
                             on ? "on" : "off");
        return rc;
    }
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "class", cls);
    cJSON_AddStringToObject(body, "vectorizer", "none");
    if (multi) {
        cJSON *vic = cJSON_AddObjectToObject(body, "vectorIndexConfig");
        cJSON_AddStringToObject(vic, "distance", "dot");
    }
    cJSON *mt = cJSON_AddObjectToObject(body, "multiTenancyConfig");
    cJSON_AddBoolToObject(mt, "enabled", multi);
    if (multi) {
        cJSON_AddBoolToObject(mt, "autoTenantCreation", false);
        cJSON_AddBoolToObject(mt, "autoTenantActivation", true);
    }
    cJSON_AddItemToObject(body, "properties", props);
    cJSON *res = NULL;
    rc = wv_call(s, NULL, "POST", "/schema", body, &res, NULL, err, errlen);
    cJSON_Delete(body);
    cJSON_Delete(res);
    if (rc != 0 && s->last_fail == REST_REFUSED && wv_schema_load(s, cls, NULL, err, errlen) == 0)
        rc = 0;
    if (rc == 0)
        rc = wv_schema_load(s, cls, NULL, err, errlen) == 0 ? 0 : -1;
    return rc;
}

static int wv_ns_class_ensure(struct vstore *s, char *err, size_t errlen)
{
    struct wv *w = s->impl;
    cJSON *props = cJSON_CreateArray();
    cJSON_AddItemToArray(props, wv_prop_def("tenant", "text", "field"));
    cJSON_AddItemToArray(props, wv_prop_def("embedder", "text", "field"));
    cJSON_AddItemToArray(props, wv_prop_def("model", "text", "field"));
    cJSON_AddItemToArray(props, wv_prop_def("dim", "int", NULL));
    cJSON_AddItemToArray(props, wv_prop_def("created_ms", "int", NULL));
    cJSON_AddItemToArray(props, wv_prop_def("generation", "int", NULL));
    return wv_class_ensure(s, w->ns_class, false, props, err, errlen);
}

static int wv_data_class_ensure(struct vstore *s, const char *cls, char *err, size_t errlen)
{
    cJSON *props = cJSON_CreateArray();
    cJSON_AddItemToArray(props, wv_prop_def("text", "text", "word"));
    cJSON_AddItemToArray(props, wv_prop_def("userId", "text", "field"));
    cJSON_AddItemToArray(props, wv_prop_def("agent", "text", "field"));
    cJSON_AddItemToArray(props, wv_prop_def("kind", "text", "field"));
    cJSON_AddItemToArray(props, wv_prop_def("createdAt", "int", NULL));
    cJSON_AddItemToArray(props, wv_prop_def("updatedAt", "int", NULL));
    cJSON *meta = wv_prop_def("metadata", "text", "field");
    cJSON_AddFalseToObject(meta, "indexSearchable");
    cJSON_AddItemToArray(props, meta);
    return wv_class_ensure(s, cls, true, props, err, errlen);
}

/* Adds property name of type to cls unless it is there. */
static int wv_prop_ensure(struct vstore *s, const char *cls, const char *name, const char *type,
                          char *err, size_t errlen)
{
    if (wv_has_prop(s, cls, name))
        return 0;
    char path[512];
    snprintf(path, sizeof path, "/schema/%s/properties", cls);
    cJSON *body = wv_prop_def(name, type, strcmp(type, "text") == 0 ? "field" : NULL);
    cJSON *res = NULL;
    int rc = wv_call(s, NULL, "POST", path, body, &res, NULL, err, errlen);
    cJSON_Delete(body);
    cJSON_Delete(res);
    /* Another client may have added it meanwhile: the schema says. */
    if (rc != 0 && s->last_fail == REST_REFUSED && wv_schema_load(s, cls, NULL, err, errlen) == 0 &&
        wv_has_prop(s, cls, name))
        return 0;
    if (rc != 0)
        return -1;
    cJSON *set = cJSON_GetObjectItemCaseSensitive(((struct wv *)s->impl)->props, cls);
    if (set != NULL)
        cJSON_AddTrueToObject(set, name);
    return 0;
}

/* ---- namespaces ---------------------------------------------------------- */

/* The namespace object of tenant: 0 with ns, 1 when absent. */
static int wv_ns_load(struct vstore *s, const char *tenant, struct store_ns *ns, char *err,
                      size_t errlen)
{
    struct wv *w = s->impl;
    char id[MC_UUID_STRLEN + 1], path[256];
    remote_uuid_from("namespace", tenant, id);
    snprintf(path, sizeof path, "/objects/%s/%s", w->ns_class, id);
    cJSON *res = NULL;
    long st = 0;
    if (wv_call(s, tenant, "GET", path, NULL, &res, &st, err, errlen) != 0) {
        if (st != 404)
            return -1;
        s->last_fail = REST_OK;
        return 1;
    }
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(res, "properties");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(props, "tenant");
    char msg[256];
    int rc = 0;
    memset(ns, 0, sizeof *ns);
    if (!cJSON_IsString(t) || strcmp(t->valuestring, tenant) != 0)
        rc = wv_refuse(s, REST_BAD_REPLY, err, errlen, "namespace object of tenant \"%s\": %s",
                       tenant, "it names another tenant");
    else if (remote_ns_from_json(props, ns, msg, sizeof msg) != 0)
        rc = wv_refuse(s, REST_BAD_REPLY, err, errlen, "namespace object of tenant \"%s\": %s",
                       tenant, msg);
    cJSON_Delete(res);
    return rc;
}

/* The tenant's namespace and class: 1 (no error) when there is none. */
static int wv_ns_class(struct vstore *s, const char *tenant, struct store_ns *ns, char *cls,
                       size_t clslen, char *err, size_t errlen)
{
    if (remote_check_tenant(WV, tenant, err, errlen) != 0)
        return -1;
    int rc = wv_ns_load(s, tenant, ns, err, errlen);
    if (rc == 0)
        wv_class_of(s->impl, ns->dim, cls, clslen);
    return rc;
}

static int wv_count_where(struct vstore *s, const char *tenant, const char *cls, const cJSON *where,
                          size_t *n, char *err, size_t errlen);

static int wv_ns_get(struct vstore *s, const char *tenant, struct store_ns *out, char *err,
                     size_t errlen)
{
    char cls[WV_CLS];
    int rc = wv_ns_class(s, tenant, out, cls, sizeof cls, err, errlen);
    if (rc != 0)
        return rc;
    return wv_count_where(s, tenant, cls, NULL, &out->count, err, errlen);
}

static int wv_tenant_create(struct vstore *s, const char *tenant, const char *cls, char *err,
                            size_t errlen)
{
    char path[512];
    snprintf(path, sizeof path, "/schema/%s/tenants", cls);
    cJSON *body = cJSON_CreateArray();
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "name", tenant);
    cJSON_AddItemToArray(body, t);
    cJSON *res = NULL;
    int rc = wv_call(s, tenant, "POST", path, body, &res, NULL, err, errlen);
    cJSON_Delete(body);
    cJSON_Delete(res);
    if (rc == 0 || s->last_fail != REST_REFUSED)
        return rc;
    /* Refused: fine when the tenant exists already (a half-done create). */
    snprintf(path, sizeof path, "/schema/%s/tenants/%s", cls, tenant);
    char msg[256];
    if (wv_call(s, tenant, "GET", path, NULL, &res, NULL, msg, sizeof msg) != 0)
        return -1;
    cJSON_Delete(res);
    return 0;
}

static cJSON *wv_batch_object(const char *cls, const char *tenant, const char *id, cJSON *props)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "class", cls);
    if (tenant != NULL)
        cJSON_AddStringToObject(o, "tenant", tenant);
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddItemToObject(o, "properties", props);
    return o;
}

/* POST /v1/batch/objects and every entry's result checked. */
static int wv_batch(struct vstore *s, const char *tenant, cJSON *objects, char *err, size_t errlen)
{
    cJSON *body = cJSON_CreateObject();
    cJSON_AddItemToObject(body, "objects", objects);
    cJSON *res = NULL;
    int rc = wv_call(s, tenant, "POST", "/batch/objects", body, &res, NULL, err, errlen);
    cJSON_Delete(body);
    if (rc != 0)
        return -1;
    if (!cJSON_IsArray(res)) {
        cJSON_Delete(res);
        return wv_refuse(s, REST_BAD_REPLY, err, errlen, "batch import (tenant \"%s\"): %s", tenant,
                         "the answer is not an array");
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, res)
    {
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(e, "result");
        const cJSON *errs = cJSON_GetObjectItemCaseSensitive(r, "errors");
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(errs, "error");
        if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) == 0)
            continue;
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(list->child, "message");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        char what[512];
        snprintf(what, sizeof what, "object %s: %s", cJSON_IsString(id) ? id->valuestring : "?",
                 cJSON_IsString(m) ? m->valuestring : "(no message)");
        rc = wv_refuse(s, REST_REFUSED, err, errlen, "batch import (tenant \"%s\"): %s", tenant,
                       what);
        break;
    }
    cJSON_Delete(res);
    return rc;
}

static int wv_ns_create(struct vstore *s, const char *tenant, const struct store_ns *ns, char *err,
                        size_t errlen)
{
    if (remote_check_tenant(WV, tenant, err, errlen) != 0)
        return -1;
    if (ns->dim <= 0 || ns->dim > 65536) {
        snprintf(err, errlen, WV ": tenant \"%s\": dimension %d is out of range", tenant, ns->dim);
        return -1;
    }
    struct store_ns have;
    int rc = wv_ns_load(s, tenant, &have, err, errlen);
    if (rc < 0)
        return -1;
    if (rc == 0) {
        if (have.dim == ns->dim && strcmp(have.embedder, ns->embedder) == 0 &&
            strcmp(have.model, ns->model) == 0)
            return 0;
        snprintf(err, errlen,
                 WV ": tenant \"%s\": the namespace holds vectors of %s %s (%d dimensions), "
                    "not %s %s (%d)",
                 tenant, have.embedder, have.model, have.dim, ns->embedder, ns->model, ns->dim);
        s->last_fail = REST_OK;
        return -1;
    }
    char cls[WV_CLS];
    wv_class_of(s->impl, ns->dim, cls, sizeof cls);
    /* The namespace object goes last: when it exists, so does the rest. */
    if (wv_ns_class_ensure(s, err, errlen) != 0 || wv_data_class_ensure(s, cls, err, errlen) != 0 ||
        wv_tenant_create(s, tenant, cls, err, errlen) != 0)
        return -1;
    struct store_ns rec = *ns;
    rec.count = 0;
    rec.generation = 0;
    if (rec.created_ms == 0)
        rec.created_ms = wv_now_ms();
    char id[MC_UUID_STRLEN + 1];
    remote_uuid_from("namespace", tenant, id);
    struct wv *w = s->impl;
    cJSON *objs = cJSON_CreateArray();
    cJSON_AddItemToArray(objs,
                         wv_batch_object(w->ns_class, NULL, id, remote_ns_to_json(tenant, &rec)));
    return wv_batch(s, tenant, objs, err, errlen);
}

/* ---- records --------------------------------------------------------------- */

/* The record's scalar metadata values as typed properties added to props;
 * their names and types go to need ({name: type}). -1 when the metadata
 * is not a JSON object. */
static int wv_meta_props(const char *metadata, cJSON *props, cJSON *need)
{
    cJSON *meta = cJSON_Parse(metadata != NULL ? metadata : "{}");
    if (!cJSON_IsObject(meta)) {
        cJSON_Delete(meta);
        return -1;
    }
    char *text = cJSON_PrintUnformatted(meta);
    if (text == NULL)
        alloc_die("weaviate metadata");
    cJSON_AddStringToObject(props, "metadata", text);
    cJSON_free(text);
    for (const cJSON *e = meta->child; e; e = e->next) {
        char t = cJSON_IsString(e) ? 's' : cJSON_IsNumber(e) ? 'n' : cJSON_IsBool(e) ? 'b' : 0;
        if (t == 0 || e->string == NULL)
            continue;
        char name[256];
        wv_meta_prop(e->string, t, name, sizeof name);
        if (cJSON_HasObjectItem(props, name)) /* a repeated key: the first one counts */
            continue;
        cJSON_AddItemToObject(props, name, cJSON_Duplicate(e, false));
        if (!cJSON_HasObjectItem(need, name))
            cJSON_AddStringToObject(need, name, wv_meta_type(t));
    }
    cJSON_Delete(meta);
    return 0;
}

static cJSON *wv_record_object(const char *cls, const char *tenant, const struct mem_record *r,
                               int dim, cJSON *need)
{
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "text", r->text != NULL ? r->text : "");
    cJSON_AddStringToObject(p, "userId", r->user_id);
    cJSON_AddStringToObject(p, "agent", r->agent);
    cJSON_AddStringToObject(p, "kind", r->kind);
    cJSON_AddNumberToObject(p, "createdAt", (double)r->created_at);
    cJSON_AddNumberToObject(p, "updatedAt",
                            (double)(r->updated_at != 0 ? r->updated_at : r->created_at));
    if (wv_meta_props(r->metadata, p, need) != 0) {
        cJSON_Delete(p);
        return NULL;
    }
    cJSON *o = wv_batch_object(cls, tenant, r->id, p);
    cJSON_AddItemToObject(o, "vector", remote_vector_to_json(r->vector, dim));
    return o;
}

static int wv_upsert(struct vstore *s, const char *tenant, const struct mem_record *recs, size_t n,
                     char *err, size_t errlen)
{
    struct store_ns ns;
    char cls[WV_CLS];
    int rc = wv_ns_class(s, tenant, &ns, cls, sizeof cls, err, errlen);
    if (rc == 1)
        return wv_refuse(s, REST_OK, err, errlen, "tenant \"%s\": %s", tenant,
                         "no namespace (create it first)");
    if (rc != 0)
        return -1;
    for (size_t start = 0; start < n && rc == 0; start += WV_BATCH) {
        size_t end = n - start > WV_BATCH ? start + WV_BATCH : n;
        cJSON *objs = cJSON_CreateArray(), *need = cJSON_CreateObject();
        for (size_t i = start; i < end && rc == 0; i++) {
            const struct mem_record *r = &recs[i];
            const char *why = r->vector == NULL || (r->dim != 0 && r->dim != ns.dim)
                                  ? "no vector, or not of the namespace's dimension"
                              : !uuid_valid(r->id) ? "the id is not a UUID"
                                                   : NULL;
            cJSON *o = why == NULL ? wv_record_object(cls, tenant, r, ns.dim, need) : NULL;
            if (why == NULL && o == NULL)
                why = "its metadata is not a JSON object";
            if (why != NULL) {
                char what[256];
                snprintf(what, sizeof what, "memory %s: %s", r->id, why);
                rc = wv_refuse(s, REST_OK, err, errlen, "tenant \"%s\": %s", tenant, what);
                break;
            }
            cJSON_AddItemToArray(objs, o);
        }
        for (const cJSON *p = need->child; p && rc == 0; p = p->next)
            rc = wv_prop_ensure(s, cls, p->string, p->valuestring, err, errlen);
        cJSON_Delete(need);
        if (rc == 0)
            rc = wv_batch(s, tenant, objs, err, errlen);
        else
            cJSON_Delete(objs);
    }
    return rc;
}

/* An object's fields (REST properties or a GraphQL hit) as a record. */
static int wv_record_read(struct vstore *s, const char *tenant, const char *id, const cJSON *props,
                          const cJSON *vec, int dim, struct mem_record *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    static const char *const names[][2] = {
        {"text", "text"},         {"userId", "user_id"},       {"agent", "agent"},
        {"kind", "kind"},         {"createdAt", "created_at"}, {"updatedAt", "updated_at"},
        {"metadata", "metadata"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(props, names[i][0]);
        if (v != NULL && !cJSON_IsNull(v))
            cJSON_AddItemToObject(o, names[i][1], cJSON_Duplicate(v, true));
    }
    char msg[256];
    int rc = remote_record_from_json(o, r, msg, sizeof msg);
    cJSON_Delete(o);
    if (rc == 0 && vec != NULL) {
        r->vector = remote_vector_from_json(vec, dim);
        r->dim = dim;
        if (r->vector == NULL) {
            rc = -1;
            snprintf(msg, sizeof msg, "the vector is not %d numbers", dim);
        }
    }
    if (rc != 0) {
        char what[400];
        snprintf(what, sizeof what, "object %s: %s", id, msg);
        return wv_refuse(s, REST_BAD_REPLY, err, errlen, "tenant \"%s\": %s", tenant, what);
    }
    return 0;
}

static void wv_records_push(struct mem_records *out, size_t *cap, struct mem_record *r)
{
    if (out->n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        out->v = xreallocarray(out->v, *cap, sizeof *out->v);
    }
    out->v[out->n++] = *r;
}

/* ---- filters ---------------------------------------------------------------- */

struct wh_ctx {
    struct vstore *s;
    const char *cls;
    bool reloaded; /* the schema was read once for a property not in the cache */
};

static cJSON *wh_cmp(const char *path, const char *op, const char *vkey, cJSON *val)
{
    cJSON *c = cJSON_CreateObject();
    cJSON *p = cJSON_AddArrayToObject(c, "path");
    cJSON_AddItemToArray(p, cJSON_CreateString(path));
    cJSON_AddStringToObject(c, "operator", op);
    cJSON_AddItemToObject(c, vkey, val);
    return c;
}

static cJSON *wh_group(const char *op, cJSON *operands)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "operator", op);
    cJSON_AddItemToObject(c, "operands", operands);
    return c;
}

static const char *wh_op_name(enum filter_op op)
{
    switch (op) {
    case FILTER_GT:
        return "GreaterThan";
    case FILTER_GTE:
        return "GreaterThanEqual";
    case FILTER_LT:
        return "LessThan";
    case FILTER_LTE:
        return "LessThanEqual";
    default:
        return "Equal";
    }
}

/* created_at (an int property) op n for any double n, exactly as
 * filter_match compares (double)created_at with n. */
static enum wh_kind wh_created(enum filter_op op, double n, cJSON **out)
{
    const double lim = 9007199254740992.0; /* 2^53: beyond, no realistic timestamp */
    if (n >= lim)
        return op == FILTER_LT || op == FILTER_LTE ? WH_TRUE : WH_FALSE;
    if (n <= -lim)
        return op == FILTER_GT || op == FILTER_GTE ? WH_TRUE : WH_FALSE;
    double f = floor(n);
    if (f != n) {
        if (op == FILTER_EQ)
            return WH_FALSE;
        /* c > 5.5 <=> c > 5; c >= 5.5 <=> c > 5; c < 5.5 <=> c <= 5; c <= 5.5 <=> c <= 5 */
        op = op == FILTER_GT || op == FILTER_GTE ? FILTER_GT : FILTER_LTE;
    }
    *out = wh_cmp("createdAt", wh_op_name(op), "valueInt", cJSON_CreateNumber(f));
    return WH_EXPR;
}

/* A metadata property: whether the class has it (the schema is read again
 * once per translation before saying no: another client may have added
 * it). */
static int wh_meta_has(struct wh_ctx *c, const char *prop, char *err, size_t errlen)
{
    if (wv_has_prop(c->s, c->cls, prop))
        return 1;
    if (c->reloaded)
        return 0;
    c->reloaded = true;
    int rc = wv_schema_load(c->s, c->cls, NULL, err, errlen);
    if (rc < 0)
        return -1;
    return wv_has_prop(c->s, c->cls, prop) ? 1 : 0;
}

/* One positive comparison: key op v (op EQ or a range). */
static enum wh_kind wh_atom(struct wh_ctx *c, const struct mem_filter *f, enum filter_op op,
                            const struct filter_value *v, cJSON **out, int *fail, char *err,
                            size_t errlen)
{
    bool range = op != FILTER_EQ;
    const char *key = f->key != NULL ? f->key : "";
    if (!f->is_meta && strcmp(key, "created_at") == 0)
        return v->type == FILTER_V_NUMBER ? wh_created(op, v->n, out) : WH_FALSE;
    if (!f->is_meta) {
        const char *path = strcmp(key, "id") == 0        ? "id"
                           : strcmp(key, "user_id") == 0 ? "userId"
                           : strcmp(key, "agent") == 0   ? "agent"
                           : strcmp(key, "kind") == 0    ? "kind"
                                                         : NULL;
        if (path != NULL) {
            if (v->type != FILTER_V_STRING || range)
                return WH_FALSE;
            const char *sv = v->s != NULL ? v->s : "";
            /* Weaviate reads ids case-insensitively; memchat's ids are
             * lowercase and compared exactly. */
            if (strcmp(path, "id") == 0) {
                if (!uuid_valid(sv))
                    return WH_FALSE;
                for (const char *p = sv; *p; p++)
                    if (*p >= 'A' && *p <= 'F')
                        return WH_FALSE;
            }
            *out = wh_cmp(path, "Equal", "valueText", cJSON_CreateString(sv));
            return WH_EXPR;
        }
    }
    if (range && v->type != FILTER_V_NUMBER)
        return WH_FALSE;
    char t = v->type == FILTER_V_STRING ? 's' : v->type == FILTER_V_NUMBER ? 'n' : 'b';
    char prop[256];
    wv_meta_prop(key, t, prop, sizeof prop);
    int has = wh_meta_has(c, prop, err, errlen);
    if (has < 0) {
        *fail = 1;
        return WH_FALSE;
    }
    if (has == 0)
        return WH_FALSE;
    cJSON *val = t == 's'   ? cJSON_CreateString(v->s != NULL ? v->s : "")
                 : t == 'n' ? cJSON_CreateNumber(v->n)
                            : cJSON_CreateBool(v->b);
    const char *vkey = t == 's' ? "valueText" : t == 'n' ? "valueNumber" : "valueBoolean";
    *out = wh_cmp(prop, wh_op_name(op), vkey, val);
    return WH_EXPR;
}

/* Combines kinds[] / exprs[] (n of them) with And (is_and) or Or,
 * folding constants. */
static enum wh_kind wh_fold(bool is_and, enum wh_kind *kinds, cJSON **exprs, size_t n, cJSON **out)
{
    enum wh_kind absorbing = is_and ? WH_FALSE : WH_TRUE;
    cJSON *ops = cJSON_CreateArray();
    size_t nexpr = 0;
    bool absorbed = false;
    for (size_t i = 0; i < n; i++) {
        if (kinds[i] == absorbing)
            absorbed = true;
        if (kinds[i] == WH_EXPR) {
            cJSON_AddItemToArray(ops, exprs[i]);
            nexpr++;
        }
    }
    if (absorbed || nexpr == 0) {
        cJSON_Delete(ops);
        return absorbed ? absorbing : (is_and ? WH_TRUE : WH_FALSE);
    }
    if (nexpr == 1) {
        *out = cJSON_DetachItemFromArray(ops, 0);
        cJSON_Delete(ops);
        return WH_EXPR;
    }
    *out = wh_group(is_and ? "And" : "Or", ops);
    return WH_EXPR;
}

static enum wh_kind wh_node(struct wh_ctx *c, const struct mem_filter *f, cJSON **out, int *fail,
                            char *err, size_t errlen);

static enum wh_kind wh_list(struct wh_ctx *c, const struct mem_filter *f, bool is_and, cJSON **out,
                            int *fail, char *err, size_t errlen)
{
    bool kids = f->op == FILTER_AND || f->op == FILTER_OR;
    size_t n = kids ? f->n_kids : f->n_values;
    enum wh_kind *kinds = xcalloc(n ? n : 1, sizeof *kinds);
    cJSON **exprs = xcalloc(n ? n : 1, sizeof *exprs);
    for (size_t i = 0; i < n; i++) {
        kinds[i] = kids ? wh_node(c, f->kids[i], &exprs[i], fail, err, errlen)
                        : wh_atom(c, f, FILTER_EQ, &f->values[i], &exprs[i], fail, err, errlen);
    }
    enum wh_kind k = wh_fold(is_and, kinds, exprs, n, out);
    xfree(kinds);
    xfree(exprs);
    return k;
}

static enum wh_kind wh_node(struct wh_ctx *c, const struct mem_filter *f, cJSON **out, int *fail,
                            char *err, size_t errlen)
{
    switch (f->op) {
    case FILTER_AND:
        return wh_list(c, f, true, out, fail, err, errlen);
    case FILTER_OR:
    case FILTER_IN:
        return wh_list(c, f, false, out, fail, err, errlen);
    case FILTER_NE:
    case FILTER_NIN: {
        /* Not over the positive form: its complement includes the objects
         * without the property, as filter_match's missing key does. */
        cJSON *pos = NULL;
        enum wh_kind k = f->n_values == 0 ? WH_FALSE
                         : f->op == FILTER_NE
                             ? wh_atom(c, f, FILTER_EQ, &f->values[0], &pos, fail, err, errlen)
                             : wh_list(c, f, false, &pos, fail, err, errlen);
        if (k != WH_EXPR)
            return k == WH_TRUE ? WH_FALSE : WH_TRUE;
        cJSON *ops = cJSON_CreateArray();
        cJSON_AddItemToArray(ops, pos);
        *out = wh_group("Not", ops);
        return WH_EXPR;
    }
    default:
        if (f->n_values == 0)
            return WH_FALSE;
        return wh_atom(c, f, f->op, &f->values[0], out, fail, err, errlen);
    }
}

/* f as a where tree for class cls (*where NULL unless WH_EXPR); -1 on a
 * failure to read the schema. */
static int wv_where(struct vstore *s, const char *cls, const struct mem_filter *f,
                    enum wh_kind *kind, cJSON **where, char *err, size_t errlen)
{
    *where = NULL;
    *kind = WH_TRUE;
    if (f == NULL)
        return 0;
    struct wh_ctx c = {s, cls, false};
    int fail = 0;
    cJSON *w = NULL;
    *kind = wh_node(&c, f, &w, &fail, err, errlen);
    if (fail) {
        cJSON_Delete(w);
        return -1;
    }
    *where = *kind == WH_EXPR ? w : NULL;
    return 0;
}

/* ---- reads ------------------------------------------------------------------ */

static int wv_count_where(struct vstore *s, const char *tenant, const char *cls, const cJSON *where,
                          size_t *n, char *err, size_t errlen)
{
    struct buf q;
    buf_init(&q, 16u << 20);
    buf_printf(&q, "{ Aggregate { %s(tenant: ", cls);
    gq_string(&q, tenant);
    if (where != NULL) {
        buf_puts(&q, ", where: ");
        gq_value(&q, where, false);
    }
    buf_puts(&q, ") { meta { count } } } }");
    if (buf_cstr(&q)[0] == '\0') {
        buf_free(&q);
        return wv_refuse(s, REST_OK, err, errlen, "tenant \"%s\": %s", tenant,
                         "the filter is too large");
    }
    cJSON *res = NULL, *data = NULL;
    int rc = wv_graphql(s, tenant, buf_cstr(&q), &res, &data, err, errlen);
    buf_free(&q);
    if (rc != 0)
        return -1;
    const cJSON *arr =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(data, "Aggregate"), cls);
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(arr, 0), "meta");
    const cJSON *cnt = cJSON_GetObjectItemCaseSensitive(meta, "count");
    if (!cJSON_IsNumber(cnt) || cnt->valuedouble < 0) {
        cJSON_Delete(res);
        return wv_refuse(s, REST_BAD_REPLY, err, errlen, "aggregate (tenant \"%s\"): %s", tenant,
                         "no meta.count in the answer");
    }
    *n = (size_t)cnt->valuedouble;
    cJSON_Delete(res);
    return 0;
}

static int wv_count(struct vstore *s, const char *tenant, const struct mem_filter *f, size_t *n,
                    char *err, size_t errlen)
{
    *n = 0;
    struct store_ns ns;
    char cls[WV_CLS];
    int rc = wv_ns_class(s, tenant, &ns, cls, sizeof cls, err, errlen);
    if (rc != 0)
        return rc > 0 ? 0 : -1;
    enum wh_kind k;
    cJSON *where = NULL;
    if (wv_where(s, cls, f, &k, &where, err, errlen) != 0)
        return -1;
    if (k == WH_FALSE)
        return 0;
    rc = wv_count_where(s, tenant, cls, where, n, err, errlen);
    cJSON_Delete(where);
    return rc;
}

static int wv_query(struct vstore *s, const char *tenant, const float *q, size_t k,
                    const struct mem_filter *f, struct mem_records *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    struct store_ns ns;
    char cls[WV_CLS];
    int rc = wv_ns_class(s, tenant, &ns, cls, sizeof cls, err, errlen);
    if (rc != 0 || k == 0)
        return rc > 0 ? 0 : rc;
    enum wh_kind kind;
    cJSON *where = NULL;
    if (wv_where(s, cls, f, &kind, &where, err, errlen) != 0)
        return -1;
    if (kind == WH_FALSE)
        return 0;
    if (k > WV_MAX_RESULTS)
        k = WV_MAX_RESULTS;
    struct buf b;
    buf_init(&b, 64u << 20);
    buf_printf(&b, "{ Get { %s(tenant: ", cls);
    gq_string(&b, tenant);
    cJSON *vec = remote_vector_to_json(q, ns.dim);
    char *vtext = cJSON_PrintUnformatted(vec);
    cJSON_Delete(vec);
    if (vtext == NULL)
        alloc_die("weaviate vector");
    buf_printf(&b, ", nearVector: {vector: %s}", vtext);
    cJSON_free(vtext);
    if (where != NULL) {
        buf_puts(&b, ", where: ");
        gq_value(&b, where, false);
    }
    cJSON_Delete(where);
    buf_printf(&b,
               ", limit: %zu) { text userId agent kind createdAt updatedAt metadata "
               "_additional { id distance vector } } } }",
               k);
    if (buf_cstr(&b)[0] == '\0') {
        buf_free(&b);
        return wv_refuse(s, REST_OK, err, errlen, "tenant \"%s\": %s", tenant,
                         "the query is too large");
    }
    cJSON *res = NULL, *data = NULL;
    rc = wv_graphql(s, tenant, buf_cstr(&b), &res, &data, err, errlen);
    buf_free(&b);
    if (rc != 0)
        return -1;
    const cJSON *hits =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(data, "Get"), cls);
    size_t cap = 0;
    const cJSON *h;
    cJSON_ArrayForEach(h, hits)
    {
        const cJSON *add = cJSON_GetObjectItemCaseSensitive(h, "_additional");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(add, "id");
        const cJSON *dist = cJSON_GetObjectItemCaseSensitive(add, "distance");
        struct mem_record r;
        if (!cJSON_IsString(id) || !cJSON_IsNumber(dist)) {
            rc = wv_refuse(s, REST_BAD_REPLY, err, errlen, "query (tenant \"%s\"): %s", tenant,
                           "a hit without _additional id and distance");
            break;
        }
        if (wv_record_read(s, tenant, id->valuestring, h,
                           cJSON_GetObjectItemCaseSensitive(add, "vector"), ns.dim, &r, err,
                           errlen) != 0) {
            mem_record_clear(&r);
            rc = -1;
            break;
        }
        r.score = -dist->valuedouble; /* Weaviate's dot distance is the negative product */
        wv_records_push(out, &cap, &r);
    }
    cJSON_Delete(res);
    if (rc != 0) {
        mem_records_free(out);
        return -1;
    }
    remote_sort_records(out);
    return 0;
}

/* Calls each(ud, object) for the tenant's objects after `after` in id
 * order (the REST cursor) until it returns nonzero (1: stop, -1: fail). */
typedef int (*wv_each_fn)(void *ud, const char *id, const cJSON *obj, char *err, size_t errlen);

static int wv_scan(struct vstore *s, const char *tenant, const char *cls, const char *after,
                   bool vectors, size_t page, wv_each_fn each, void *ud, char *err, size_t errlen)
{
    char cur[MC_UUID_STRLEN * 3 + 1] = "";
    if (after != NULL && rest_escape(after, cur, sizeof cur) != 0)
        return wv_refuse(s, REST_OK, err, errlen, "tenant \"%s\": %s", tenant,
                         "after_id is too long");
    for (;;) {
        char path[512];
        snprintf(path, sizeof path, "/objects?class=%s&tenant=%s&limit=%zu%s%s%s", cls, tenant,
                 page, vectors ? "&include=vector" : "", cur[0] ? "&after=" : "", cur);
        cJSON *res = NULL;
        if (wv_call(s, tenant, "GET", path, NULL, &res, NULL, err, errlen) != 0)
            return -1;
        const cJSON *objs = cJSON_GetObjectItemCaseSensitive(res, "objects");
        size_t got = 0;
        int rc = 0;
        const cJSON *o;
        cJSON_ArrayForEach(o, objs)
        {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
            got++;
            if (!cJSON_IsString(id) || strlen(id->valuestring) > MC_UUID_STRLEN) {
                rc = wv_refuse(s, REST_BAD_REPLY, err, errlen, "list (tenant \"%s\"): %s", tenant,
                               "an object without a UUID id");
                break;
            }
            /* The cursor pages by id; a server that did not is caught here. */
            if (cur[0] != '\0' && strcmp(id->valuestring, cur) <= 0) {
                rc = wv_refuse(s, REST_BAD_REPLY, err, errlen, "list (tenant \"%s\"): %s", tenant,
                               "the cursor did not return ids in order");
                break;
            }
            snprintf(cur, sizeof cur, "%s", id->valuestring);
            rc = each(ud, id->valuestring, o, err, errlen);
            if (rc != 0)
                break;
        }
        cJSON_Delete(res);
        if (rc != 0)
            return rc > 0 ? 0 : -1;
        if (got < page)
            return 0;
    }
}

struct list_ctx {
    struct vstore *s;
    const char *tenant;
    const struct mem_filter *f;
    size_t limit, cap;
    int dim;
    bool vectors;
    struct mem_records *out;
};

static int list_each(void *ud, const char *id, const cJSON *obj, char *err, size_t errlen)
{
    struct list_ctx *c = ud;
    struct mem_record r;
    const cJSON *vec = c->vectors ? cJSON_GetObjectItemCaseSensitive(obj, "vector") : NULL;
    if (wv_record_read(c->s, c->tenant, id, cJSON_GetObjectItemCaseSensitive(obj, "properties"),
                       vec, c->dim, &r, err, errlen) != 0) {
        mem_record_clear(&r);
        return -1;
    }
    if (c->vectors && r.vector == NULL) {
        mem_record_clear(&r);
        return wv_refuse(c->s, REST_BAD_REPLY, err, errlen, "list (tenant \"%s\"): %s", c->tenant,
                         "an object without its vector");
    }
    if (!filter_match(c->f, &r)) {
        mem_record_clear(&r);
        return 0;
    }
    wv_records_push(c->out, &c->cap, &r);
    return c->out->n >= c->limit ? 1 : 0;
}

static int wv_list(struct vstore *s, const char *tenant, const struct mem_filter *f,
                   const char *after_id, size_t limit, bool with_vectors, struct mem_records *out,
                   char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    struct store_ns ns;
    char cls[WV_CLS];
    int rc = wv_ns_class(s, tenant, &ns, cls, sizeof cls, err, errlen);
    if (rc != 0 || limit == 0)
        return rc > 0 ? 0 : rc;
    struct list_ctx c = {s, tenant, f, limit, 0, ns.dim, with_vectors, out};
    /* Unfiltered, a page of exactly what is wanted; filtered, bigger pages
     * since filter_match drops some. */
    size_t page = f == NULL ? (limit < WV_PAGE ? limit : WV_PAGE) : WV_PAGE;
    if (wv_scan(s, tenant, cls, after_id, with_vectors, page, list_each, &c, err, errlen) != 0) {
        mem_records_free(out);
        return -1;
    }
    return 0;
}

struct stats_ctx {
    struct store_stats *st;
    cJSON *users;
};

static int stats_each(void *ud, const char *id, const cJSON *obj, char *err, size_t errlen)
{
    (void)id;
    (void)err;
    (void)errlen;
    struct stats_ctx *c = ud;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(obj, "properties");
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(p, "userId");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(p, "text");
    const cJSON *cr = cJSON_GetObjectItemCaseSensitive(p, "createdAt");
    c->st->count++;
    if (cJSON_IsString(u) && !cJSON_HasObjectItem(c->users, u->valuestring)) {
        cJSON_AddTrueToObject(c->users, u->valuestring);
        c->st->users++;
    }
    if (cJSON_IsString(t))
        c->st->text_bytes += strlen(t->valuestring);
    if (cJSON_IsNumber(cr)) {
        int64_t v = (int64_t)cr->valuedouble;
        if (c->st->count == 1 || v < c->st->oldest)
            c->st->oldest = v;
        if (c->st->count == 1 || v > c->st->newest)
            c->st->newest = v;
    }
    return 0;
}

static int wv_stats(struct vstore *s, const char *tenant, struct store_stats *out, char *err,
                    size_t errlen)
{
    memset(out, 0, sizeof *out);
    struct store_ns ns;
    char cls[WV_CLS];
    int rc = wv_ns_class(s, tenant, &ns, cls, sizeof cls, err, errlen);
    if (rc != 0)
        return rc > 0 ? 0 : -1;
    struct stats_ctx c = {out, cJSON_CreateObject()};
    rc = wv_scan(s, tenant, cls, NULL, false, WV_PAGE, stats_each, &c, err, errlen);
    cJSON_Delete(c.users);
    /* An estimate: vectors as float32, texts, and ~256 bytes of the rest. */
    out->bytes_on_disk = out->count * ((size_t)ns.dim * 4 + 256) + out->text_bytes;
    return rc;
}

/* ---- deletes ------------------------------------------------------------ */

static int wv_delete_ids(struct vstore *s, const char *tenant, const char *const *ids, size_t n,
                         size_t *deleted, char *err, size_t errlen)
{
    *deleted = 0;
    struct store_ns ns;
    char cls[WV_CLS];
    int rc = wv_ns_class(s, tenant, &ns, cls, sizeof cls, err, errlen);
    if (rc != 0)
        return rc > 0 ? 0 : -1;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == NULL || !uuid_valid(ids[i]))
            continue; /* not a memory id: nothing of that id exists */
        char path[512];
        snprintf(path, sizeof path, "/objects/%s/%s?tenant=%s", cls, ids[i], tenant);
        cJSON *res = NULL;
        long st = 0;
        rc = wv_call(s, tenant, "DELETE", path, NULL, &res, &st, err, errlen);
        cJSON_Delete(res);
        if (rc == 0) {
            (*deleted)++;
        } else if (st == 404) {
            s->last_fail = REST_OK;
        } else {
            return -1;
        }
    }
    return 0;
}

/* DELETE /v1/batch/objects, repeated while the server deleted fewer than
 * matched (it deletes at most QUERY_MAXIMUM_RESULTS per call). */
static int wv_delete_where(struct vstore *s, const char *tenant, const char *cls,
                           const cJSON *where, size_t *deleted, char *err, size_t errlen)
{
    char path[512];
    snprintf(path, sizeof path, "/batch/objects?tenant=%s", tenant);
    for (int round = 0; round < 100000; round++) {
        cJSON *body = cJSON_CreateObject();
        cJSON *m = cJSON_AddObjectToObject(body, "match");
        cJSON_AddStringToObject(m, "class", cls);
        cJSON_AddItemToObject(m, "where", cJSON_Duplicate(where, true));
        cJSON_AddStringToObject(body, "output", "minimal");
        cJSON_AddFalseToObject(body, "dryRun");
        cJSON *res = NULL;
        int rc = wv_call(s, tenant, "DELETE", path, body, &res, NULL, err, errlen);
        cJSON_Delete(body);
        if (rc != 0)
            return -1;
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(res, "results");
        const cJSON *matches = cJSON_GetObjectItemCaseSensitive(r, "matches");
        const cJSON *ok = cJSON_GetObjectItemCaseSensitive(r, "successful");
        const cJSON *failed = cJSON_GetObjectItemCaseSensitive(r, "failed");
        if (!cJSON_IsNumber(matches) || !cJSON_IsNumber(ok)) {
            cJSON_Delete(res);
            return wv_refuse(s, REST_BAD_REPLY, err, errlen, "batch delete (tenant \"%s\"): %s",
                             tenant, "no results.matches and results.successful");
        }
        double mt = matches->valuedouble, done = ok->valuedouble;
        bool any_failed = cJSON_IsNumber(failed) && failed->valuedouble > 0;
        cJSON_Delete(res);
        *deleted += done > 0 ? (size_t)done : 0;
        if (any_failed)
            return wv_refuse(s, REST_SERVER, err, errlen, "batch delete (tenant \"%s\"): %s",
                             tenant, "the server failed to delete some objects");
        if (mt <= done || done <= 0)
            return 0;
    }
    return 0;
}

static int wv_purge(struct vstore *s, const char *tenant, size_t *deleted, char *err, size_t errlen)
{
    struct wv *w = s->impl;
    struct store_ns ns;
    char cls[WV_CLS];
    int rc = wv_ns_class(s, tenant, &ns, cls, sizeof cls, err, errlen);
    if (rc != 0)
        return rc > 0 ? 0 : -1;
    if (wv_count_where(s, tenant, cls, NULL, deleted, err, errlen) != 0)
        return -1;
    char path[512];
    snprintf(path, sizeof path, "/schema/%s/tenants", cls);
    cJSON *body = cJSON_CreateArray(), *res = NULL;
    cJSON_AddItemToArray(body, cJSON_CreateString(tenant));
    rc = wv_call(s, tenant, "DELETE", path, body, &res, NULL, err, errlen);
    cJSON_Delete(body);
    cJSON_Delete(res);
    if (rc != 0)
        return -1;
    char id[MC_UUID_STRLEN + 1];
    remote_uuid_from("namespace", tenant, id);
    snprintf(path, sizeof path, "/objects/%s/%s", w->ns_class, id);
    long st = 0;
    rc = wv_call(s, tenant, "DELETE", path, NULL, &res, &st, err, errlen);
    cJSON_Delete(res);
    if (rc != 0 && st == 404) {
        s->last_fail = REST_OK;
        rc = 0;
    }
    return rc;
}

static int wv_delete_filter(struct vstore *s, const char *tenant, const struct mem_filter *f,
                            size_t *deleted, char *err, size_t errlen)
{
    *deleted = 0;
    if (f == NULL)
        return wv_purge(s, tenant, deleted, err, errlen);
    struct store_ns ns;
    char cls[WV_CLS];
    int rc = wv_ns_class(s, tenant, &ns, cls, sizeof cls, err, errlen);
    if (rc != 0)
        return rc > 0 ? 0 : -1;
    enum wh_kind k;
    cJSON *where = NULL;
    if (wv_where(s, cls, f, &k, &where, err, errlen) != 0)
        return -1;
    if (k == WH_FALSE)
        return 0;
    if (k == WH_TRUE) {
        /* A filter that holds for every memory: a batch delete needs a
         * where, and every object has a createdAt. */
        cJSON *ops = cJSON_CreateArray();
        cJSON_AddItemToArray(
            ops, wh_cmp("createdAt", "GreaterThanEqual", "valueInt", cJSON_CreateNumber(0)));
        cJSON_AddItemToArray(ops,
                             wh_cmp("createdAt", "LessThan", "valueInt", cJSON_CreateNumber(0)));
        where = wh_group("Or", ops);
    }
    rc = wv_delete_where(s, tenant, cls, where, deleted, err, errlen);
    cJSON_Delete(where);
    return rc;
}

/* ---- namespaces, health, lifecycle --------------------------------------- */

struct names_ctx {
    char **v;
    size_t n, cap;
};

static int names_each(void *ud, const char *id, const cJSON *obj, char *err, size_t errlen)
{
    (void)id;
    (void)err;
    (void)errlen;
    struct names_ctx *c = ud;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(obj, "properties"), "tenant");
    if (!cJSON_IsString(t))
        return 0;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->v = xreallocarray(c->v, c->cap, sizeof *c->v);
    }
    c->v[c->n++] = xstrdup(t->valuestring);
    return 0;
}

static int names_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int wv_namespaces(struct vstore *s, char ***tenants, size_t *n, char *err, size_t errlen)
{
    struct wv *w = s->impl;
    *tenants = NULL;
    *n = 0;
    int rc = wv_schema_load(s, w->ns_class, NULL, err, errlen);
    if (rc != 0)
        return rc > 0 ? 0 : -1;
    struct names_ctx c = {NULL, 0, 0};
    char path[512];
    char cur[MC_UUID_STRLEN + 1] = "";
    for (;;) {
        snprintf(path, sizeof path, "/objects?class=%s&limit=%d%s%s", w->ns_class, WV_PAGE,
                 cur[0] ? "&after=" : "", cur);
        cJSON *res = NULL;
        if (wv_call(s, NULL, "GET", path, NULL, &res, NULL, err, errlen) != 0) {
            store_names_free(c.v, c.n);
            return -1;
        }
        const cJSON *objs = cJSON_GetObjectItemCaseSensitive(res, "objects"), *o;
        size_t got = 0;
        cJSON_ArrayForEach(o, objs)
        {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
            got++;
            if (cJSON_IsString(id) && strlen(id->valuestring) <= MC_UUID_STRLEN)
                snprintf(cur, sizeof cur, "%s", id->valuestring);
            names_each(&c, NULL, o, err, errlen);
        }
        cJSON_Delete(res);
        if (got < WV_PAGE)
            break;
    }
    if (c.n > 1)
        qsort(c.v, c.n, sizeof *c.v, names_cmp);
    *tenants = c.v;
    *n = c.n;
    return 0;
}

static int wv_health(struct vstore *s, struct store_health *out, char *err, size_t errlen)
{
    struct wv *w = s->impl;
    memset(out, 0, sizeof *out);
    snprintf(out->where, sizeof out->where, "%s", rest_base_shown(w->rest));
    cJSON *res = NULL;
    if (wv_call(s, NULL, "GET", "/.well-known/ready", NULL, &res, NULL, err, errlen) != 0)
        return -1;
    cJSON_Delete(res);
    if (wv_call(s, NULL, "GET", "/meta", NULL, &res, NULL, err, errlen) != 0)
        return -1;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(res, "version");
    snprintf(out->server, sizeof out->server, WV " %s", cJSON_IsString(v) ? v->valuestring : "?");
    cJSON_Delete(res);
    /* /meta may be open to anonymous readers; the schema is not. */
    if (wv_call(s, NULL, "GET", "/schema", NULL, &res, NULL, err, errlen) != 0)
        return -1;
    cJSON_Delete(res);
    return 0;
}

static void wv_set_cancel(struct vstore *s, const atomic_bool *cancel)
{
    rest_set_cancel(((struct wv *)s->impl)->rest, cancel);
}

static void wv_free(struct vstore *s)
{
    struct wv *w = s->impl;
    if (w != NULL) {
        rest_free(w->rest);
        cJSON_Delete(w->props);
        xfree(w);
    }
    xfree(s);
}

static const struct vstore_ops wv_ops = {
    .ns_get = wv_ns_get,
    .ns_create = wv_ns_create,
    .upsert = wv_upsert,
    .query = wv_query,
    .keyword = NULL,
    .list = wv_list,
    .delete_ids = wv_delete_ids,
    .delete_filter = wv_delete_filter,
    .count = wv_count,
    .stats = wv_stats,
    .namespaces = wv_namespaces,
    .index = NULL,
    .health = wv_health,
    .set_cancel = wv_set_cancel,
    .free = wv_free,
};

/* A class name prefix Weaviate accepts: a capital letter, then letters,
 * digits or underscores. */
static bool wv_prefix_ok(const char *p)
{
    size_t n = strlen(p);
    if (n == 0 || n > 48 || !(p[0] >= 'A' && p[0] <= 'Z'))
        return false;
    for (size_t i = 1; i < n; i++) {
        char c = p[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

struct vstore *store_weaviate_new(const struct config *cfg, char *err, size_t errlen)
{
    const char *url = config_str(cfg, CFG_WEAVIATE_URL);
    const char *key = config_str(cfg, CFG_WEAVIATE_API_KEY);
    const char *prefix = config_str(cfg, CFG_WEAVIATE_CLASS);
    if (url == NULL || url[0] == '\0') {
        snprintf(err, errlen, "WEAVIATE_URL: not set");
        return NULL;
    }
    if (prefix == NULL || !wv_prefix_ok(prefix)) {
        snprintf(err, errlen,
                 "WEAVIATE_CLASS=\"%s\": not a Weaviate class name prefix "
                 "([A-Z][A-Za-z0-9_]{0,47})",
                 prefix != NULL ? prefix : "");
        return NULL;
    }
    size_t ul = strlen(url);
    while (ul > 0 && url[ul - 1] == '/')
        ul--;
    char *base = xasprintf("%.*s/v1", (int)ul, url);
    char *auth = NULL;
    const char *headers[1];
    size_t nh = 0;
    if (key != NULL && key[0] != '\0') {
        auth = xasprintf("Authorization: Bearer %s", key);
        headers[nh++] = auth;
    }
    struct rest_opts o = {
        .service = WV,
        .base_url = base,
        .headers = headers,
        .n_headers = nh,
        .secret = key,
        .timeout_ms = config_duration_ms(cfg, CFG_MEMORY_REMOTE_TIMEOUT),
        .max_retries = (int)config_int(cfg, CFG_MEMCHAT_MAX_RETRIES),
    };
    struct rest *r = rest_new(&o, err, errlen);
    xfree(base);
    if (auth != NULL) {
        memset(auth, 0, strlen(auth));
        xfree(auth);
    }
    if (r == NULL)
        return NULL;
    struct wv *w = xcalloc(1, sizeof *w);
    w->rest = r;
    snprintf(w->prefix, sizeof w->prefix, "%s", prefix);
    snprintf(w->ns_class, sizeof w->ns_class, "%sNamespaces", prefix);
    w->props = cJSON_CreateObject();
    struct vstore *s = xcalloc(1, sizeof *s);
    s->ops = &wv_ops;
    snprintf(s->name, sizeof s->name, "weaviate");
    s->remote = true;
    s->last_fail = REST_OK;
    s->impl = w;
    return s;
}
