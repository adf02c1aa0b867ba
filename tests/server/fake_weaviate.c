/*
 * The weaviate service of fakevec: an in-memory Weaviate holding classes
 * (properties with types and tokenization, multi-tenancy, the distance),
 * tenants as shards, objects with vectors, exact search, and a parser for
 * the GraphQL subset memchat sends (Get and Aggregate with tenant,
 * nearVector, where, limit, _additional). It is strict where Weaviate is
 * (api-notes §7), so a store that passes against it sent what the
 * documentation says: a multi-tenant class needs the tenant on every data
 * request (422 otherwise), unknown classes and properties are refused,
 * values must suit the property's type, ids must be UUIDs, vectors must
 * have the class's length, and GraphQL operators must be enums. Where
 * Weaviate's behaviour is not documented the fake takes the stricter
 * reading: NotEqual does not match objects without the property (a store
 * must say what it means with Not), Equal on a text property is only
 * modelled for tokenization "field" (Weaviate matches tokens otherwise),
 * and IsNull needs indexNullState.
 *
 * Options: --delete-limit N, the most objects one batch delete removes
 * (Weaviate's QUERY_MAXIMUM_RESULTS; default 10000), so a test can make a
 * client repeat.
 */
#include "config.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fakevec.h"

#define MAX_RESULTS 10000

struct fprop {
    char name[240];
    char type[16];         /* text int number boolean */
    char tokenization[16]; /* text only */
};

struct fobj {
    char id[37];
    cJSON *props;
    float *vec;
    int dim;
};

struct shard {
    char name[65]; /* "" in a class without multi-tenancy */
    struct fobj *v;
    size_t n, cap;
};

struct fclass {
    char name[128];
    bool mt, null_state;
    char distance[16];
    struct fprop *props;
    size_t nprops;
    int dim; /* 0 until the first vector */
    struct shard *shards;
    size_t nshards;
};

struct wst {
    struct fclass *v;
    size_t n;
    size_t delete_limit;
};

/* ---- small helpers ---------------------------------------------------- */

static void *xrealloc_or_die(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL) {
        fprintf(stderr, "fake weaviate: out of memory\n");
        exit(2);
    }
    return q;
}

__attribute__((format(printf, 3, 4))) static void werr(struct fv_reply *rep, int status,
                                                       const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *o = cJSON_CreateObject();
    cJSON *a = cJSON_AddArrayToObject(o, "error");
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "message", msg);
    cJSON_AddItemToArray(a, m);
    fv_reply_json(rep, status, o);
}

static bool is_uuid(const char *s)
{
    if (strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
            return false;
    }
    return true;
}

static bool name_ok(const char *s, bool cls)
{
    if (s[0] == '\0' || strlen(s) > 230)
        return false;
    if (cls ? !isupper((unsigned char)s[0]) : !(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return false;
    for (const char *p = s + 1; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_'))
            return false;
    return true;
}

static bool tenant_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return false;
    for (const char *p = s; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_' || *p == '-'))
            return false;
    return true;
}

static struct fclass *class_find(struct wst *w, const char *name)
{
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->v[i].name, name) == 0)
            return &w->v[i];
    return NULL;
}

static struct fprop *prop_find(const struct fclass *c, const char *name)
{
    for (size_t i = 0; i < c->nprops; i++)
        if (strcmp(c->props[i].name, name) == 0)
            return &c->props[i];
    return NULL;
}

static struct shard *shard_find(struct fclass *c, const char *name)
{
    for (size_t i = 0; i < c->nshards; i++)
        if (strcmp(c->shards[i].name, name) == 0)
            return &c->shards[i];
    return NULL;
}

static struct shard *shard_add(struct fclass *c, const char *name)
{
    c->shards = xrealloc_or_die(c->shards, (c->nshards + 1) * sizeof *c->shards);
    struct shard *s = &c->shards[c->nshards++];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    return s;
}

static void obj_free(struct fobj *o)
{
    cJSON_Delete(o->props);
    free(o->vec);
}

static void shard_clear(struct shard *s)
{
    for (size_t i = 0; i < s->n; i++)
        obj_free(&s->v[i]);
    free(s->v);
}

static void class_clear(struct fclass *c)
{
    for (size_t i = 0; i < c->nshards; i++)
        shard_clear(&c->shards[i]);
    free(c->shards);
    free(c->props);
}

static void shard_remove(struct fclass *c, size_t i)
{
    shard_clear(&c->shards[i]);
    c->shards[i] = c->shards[--c->nshards];
}

static struct fobj *obj_find(struct shard *s, const char *id, size_t *idx)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcasecmp(s->v[i].id, id) == 0) {
            if (idx != NULL)
                *idx = i;
            return &s->v[i];
        }
    return NULL;
}

static void obj_remove(struct shard *s, size_t i)
{
    obj_free(&s->v[i]);
    s->v[i] = s->v[--s->n];
}

/* The shard a data request names: the tenant is required exactly when the
 * class is multi-tenant (Weaviate answers 422 otherwise). NULL with msg. */
static struct shard *shard_for(struct fclass *c, const char *tenant, char *msg, size_t msglen)
{
    bool has = tenant != NULL && tenant[0] != '\0';
    if (c->mt && !has) {
        snprintf(msg, msglen, "class %s has multi-tenancy enabled, but request was without tenant",
                 c->name);
        return NULL;
    }
    if (!c->mt && has) {
        snprintf(msg, msglen, "class %s has multi-tenancy disabled, but request was with tenant",
                 c->name);
        return NULL;
    }
    struct shard *s = shard_find(c, has ? tenant : "");
    if (s == NULL && !c->mt)
        s = shard_add(c, "");
    if (s == NULL)
        snprintf(msg, msglen, "tenant not found: \"%s\"", tenant);
    return s;
}

/* ---- schema --------------------------------------------------------------- */

static cJSON *class_json(const struct fclass *c)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "class", c->name);
    cJSON_AddStringToObject(o, "vectorizer", "none");
    cJSON *vic = cJSON_AddObjectToObject(o, "vectorIndexConfig");
    cJSON_AddStringToObject(vic, "distance", c->distance);
    cJSON *mt = cJSON_AddObjectToObject(o, "multiTenancyConfig");
    cJSON_AddBoolToObject(mt, "enabled", c->mt);
    cJSON_AddBoolToObject(mt, "autoTenantCreation", false);
    cJSON *iic = cJSON_AddObjectToObject(o, "invertedIndexConfig");
    cJSON_AddBoolToObject(iic, "indexNullState", c->null_state);
    cJSON *ps = cJSON_AddArrayToObject(o, "properties");
    for (size_t i = 0; i < c->nprops; i++) {
        cJSON *p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "name", c->props[i].name);
        cJSON *dt = cJSON_AddArrayToObject(p, "dataType");
        cJSON_AddItemToArray(dt, cJSON_CreateString(c->props[i].type));
        if (c->props[i].tokenization[0])
            cJSON_AddStringToObject(p, "tokenization", c->props[i].tokenization);
        cJSON_AddItemToArray(ps, p);
    }
    return o;
}

/* Reads a property definition into p; NULL or the problem. */
static const char *prop_parse(const cJSON *j, struct fprop *p)
{
    memset(p, 0, sizeof *p);
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(j, "name");
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(j, "dataType");
    const cJSON *tk = cJSON_GetObjectItemCaseSensitive(j, "tokenization");
    if (!cJSON_IsString(n) || !name_ok(n->valuestring, false))
        return "property name must match /[_A-Za-z][_0-9A-Za-z]*/";
    snprintf(p->name, sizeof p->name, "%s", n->valuestring);
    if (!cJSON_IsArray(dt) || cJSON_GetArraySize(dt) != 1 || !cJSON_IsString(dt->child))
        return "property dataType must be a list of one type";
    const char *t = dt->child->valuestring;
    if (strcmp(t, "text") && strcmp(t, "int") && strcmp(t, "number") && strcmp(t, "boolean"))
        return "property dataType not supported by the fake (text int number boolean)";
    snprintf(p->type, sizeof p->type, "%s", t);
    if (tk != NULL) {
        if (strcmp(t, "text") != 0)
            return "tokenization is only for text properties";
        if (!cJSON_IsString(tk) ||
            (strcmp(tk->valuestring, "word") != 0 && strcmp(tk->valuestring, "field") != 0 &&
             strcmp(tk->valuestring, "whitespace") != 0 &&
             strcmp(tk->valuestring, "lowercase") != 0))
            return "unknown tokenization";
        snprintf(p->tokenization, sizeof p->tokenization, "%s", tk->valuestring);
    } else if (strcmp(t, "text") == 0) {
        snprintf(p->tokenization, sizeof p->tokenization, "word");
    }
    for (const cJSON *e = j->child; e; e = e->next)
        if (strcmp(e->string, "name") && strcmp(e->string, "dataType") &&
            strcmp(e->string, "tokenization") && strcmp(e->string, "indexFilterable") &&
            strcmp(e->string, "indexSearchable") && strcmp(e->string, "description"))
            return "unknown key in a property";
    return NULL;
}

static void schema_create(struct wst *w, const cJSON *b, struct fv_reply *rep)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(b, "class");
    if (!cJSON_IsString(name) || !name_ok(name->valuestring, true))
        return werr(rep, 422, "class name must match /^[A-Z][_0-9A-Za-z]*$/");
    if (class_find(w, name->valuestring) != NULL)
        return werr(rep, 422, "class name \"%s\" already exists", name->valuestring);
    const cJSON *vz = cJSON_GetObjectItemCaseSensitive(b, "vectorizer");
    if (!cJSON_IsString(vz) || strcmp(vz->valuestring, "none") != 0)
        return werr(rep, 422, "the fake has no modules: vectorizer must be \"none\"");
    struct fclass c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "%s", name->valuestring);
    snprintf(c.distance, sizeof c.distance, "cosine");
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(b, "multiTenancyConfig");
    c.mt = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(mt, "enabled"));
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(mt, "autoTenantCreation")))
        return werr(rep, 422, "fake: autoTenantCreation is not modelled");
    const cJSON *vic = cJSON_GetObjectItemCaseSensitive(b, "vectorIndexConfig");
    const cJSON *dist = cJSON_GetObjectItemCaseSensitive(vic, "distance");
    if (dist != NULL) {
        if (!cJSON_IsString(dist) ||
            (strcmp(dist->valuestring, "cosine") && strcmp(dist->valuestring, "dot") &&
             strcmp(dist->valuestring, "l2-squared")))
            return werr(rep, 422, "vectorIndexConfig.distance: unknown distance");
        snprintf(c.distance, sizeof c.distance, "%s", dist->valuestring);
    }
    const cJSON *iic = cJSON_GetObjectItemCaseSensitive(b, "invertedIndexConfig");
    c.null_state = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(iic, "indexNullState"));
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(b, "properties"), *p;
    cJSON_ArrayForEach(p, props)
    {
        struct fprop fp;
        const char *bad = prop_parse(p, &fp);
        if (bad == NULL && prop_find(&c, fp.name) != NULL)
            bad = "a property is defined twice";
        if (bad != NULL) {
            free(c.props);
            return werr(rep, 422, "class %s: %s", c.name, bad);
        }
        c.props = xrealloc_or_die(c.props, (c.nprops + 1) * sizeof *c.props);
        c.props[c.nprops++] = fp;
    }
    w->v = xrealloc_or_die(w->v, (w->n + 1) * sizeof *w->v);
    w->v[w->n++] = c;
    fv_reply_json(rep, 200, class_json(&c));
}

static void prop_add(struct fclass *c, const cJSON *b, struct fv_reply *rep)
{
    struct fprop fp;
    const char *bad = prop_parse(b, &fp);
    if (bad != NULL)
        return werr(rep, 422, "class %s: %s", c->name, bad);
    if (prop_find(c, fp.name) != NULL)
        return werr(rep, 422, "class %s: property \"%s\" already exists", c->name, fp.name);
    c->props = xrealloc_or_die(c->props, (c->nprops + 1) * sizeof *c->props);
    c->props[c->nprops++] = fp;
    fv_reply_json(rep, 200, cJSON_Duplicate(b, true));
}

static void tenants_route(struct fclass *c, const struct fv_request *rq, const char *one,
                          struct fv_reply *rep)
{
    if (!c->mt)
        return werr(rep, 422, "multi-tenancy is not enabled for class \"%s\"", c->name);
    if (one != NULL) {
        if (strcmp(rq->method, "GET") != 0)
            return werr(rep, 405, "method not allowed");
        struct shard *s = shard_find(c, one);
        if (s == NULL)
            return werr(rep, 404, "tenant \"%s\" not found", one);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", s->name);
        cJSON_AddStringToObject(o, "activityStatus", "ACTIVE");
        return fv_reply_json(rep, 200, o);
    }
    if (strcmp(rq->method, "GET") == 0) {
        cJSON *a = cJSON_CreateArray();
        for (size_t i = 0; i < c->nshards; i++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", c->shards[i].name);
            cJSON_AddStringToObject(o, "activityStatus", "ACTIVE");
            cJSON_AddItemToArray(a, o);
        }
        return fv_reply_json(rep, 200, a);
    }
    if (!cJSON_IsArray(rq->json))
        return werr(rep, 422, "tenants: the body must be a JSON array");
    const cJSON *e;
    if (strcmp(rq->method, "POST") == 0) {
        cJSON_ArrayForEach(e, rq->json)
        {
            const cJSON *n = cJSON_GetObjectItemCaseSensitive(e, "name");
            if (!cJSON_IsString(n) || !tenant_ok(n->valuestring))
                return werr(rep, 422, "tenant name must match ^[A-Za-z0-9\\-_]{1,64}$");
            if (shard_find(c, n->valuestring) != NULL)
                return werr(rep, 422, "tenant \"%s\" already exists", n->valuestring);
        }
        cJSON_ArrayForEach(e, rq->json)
            shard_add(c, cJSON_GetObjectItemCaseSensitive(e, "name")->valuestring);
        return fv_reply_json(rep, 200, cJSON_Duplicate(rq->json, true));
    }
    if (strcmp(rq->method, "DELETE") == 0) {
        cJSON_ArrayForEach(e, rq->json)
        {
            if (!cJSON_IsString(e))
                return werr(rep, 422, "tenants delete: the body must be a list of names");
            for (size_t i = 0; i < c->nshards; i++)
                if (strcmp(c->shards[i].name, e->valuestring) == 0)
                    shard_remove(c, i);
        }
        return fv_reply_json(rep, 200, NULL);
    }
    werr(rep, 405, "method not allowed");
}

/* ---- objects -------------------------------------------------------------- */

/* NULL when value suits property p, else the problem. */
static const char *value_suits(const struct fprop *p, const cJSON *v)
{
    if (strcmp(p->type, "text") == 0)
        return cJSON_IsString(v) ? NULL : "a text property needs a string";
    if (strcmp(p->type, "boolean") == 0)
        return cJSON_IsBool(v) ? NULL : "a boolean property needs true or false";
    if (!cJSON_IsNumber(v))
        return "a numeric property needs a number";
    if (strcmp(p->type, "int") == 0 && v->valuedouble != floor(v->valuedouble))
        return "an int property needs an integer";
    return NULL;
}

static const char *batch_one(struct wst *w, const cJSON *o)
{
    static char msg[512];
    const cJSON *cls = cJSON_GetObjectItemCaseSensitive(o, "class");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
    const cJSON *tn = cJSON_GetObjectItemCaseSensitive(o, "tenant");
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(o, "properties");
    const cJSON *vec = cJSON_GetObjectItemCaseSensitive(o, "vector");
    struct fclass *c = cJSON_IsString(cls) ? class_find(w, cls->valuestring) : NULL;
    if (c == NULL)
        return "class not found";
    if (!cJSON_IsString(id) || !is_uuid(id->valuestring))
        return "id must be a UUID";
    if (tn != NULL && !cJSON_IsString(tn))
        return "tenant must be a string";
    struct shard *s = shard_for(c, tn ? tn->valuestring : NULL, msg, sizeof msg);
    if (s == NULL)
        return msg;
    if (props != NULL && !cJSON_IsObject(props))
        return "properties must be an object";
    for (const cJSON *e = props ? props->child : NULL; e; e = e->next) {
        struct fprop *p = prop_find(c, e->string);
        if (p == NULL) {
            snprintf(msg, sizeof msg, "no such prop with name '%s' found in class '%s'", e->string,
                     c->name);
            return msg;
        }
        const char *bad = value_suits(p, e);
        if (bad != NULL) {
            snprintf(msg, sizeof msg, "property %s: %s", e->string, bad);
            return msg;
        }
    }
    int dim = vec != NULL ? cJSON_GetArraySize(vec) : 0;
    if (vec != NULL) {
        const cJSON *x;
        if (!cJSON_IsArray(vec) || dim == 0)
            return "vector must be a non-empty list of numbers";
        cJSON_ArrayForEach(x, vec) if (!cJSON_IsNumber(x)) return "vector must be numbers";
        if (c->dim != 0 && dim != c->dim) {
            snprintf(msg, sizeof msg,
                     "new node has a vector with length %d. Existing nodes have "
                     "vectors with length %d",
                     dim, c->dim);
            return msg;
        }
    }
    if (c->mt && vec == NULL)
        return "fake: objects of a multi-tenant class need a vector";
    size_t idx;
    struct fobj *ob = obj_find(s, id->valuestring, &idx);
    if (ob == NULL) {
        if (s->n == s->cap) {
            s->cap = s->cap ? s->cap * 2 : 16;
            s->v = xrealloc_or_die(s->v, s->cap * sizeof *s->v);
        }
        ob = &s->v[s->n++];
        memset(ob, 0, sizeof *ob);
    } else {
        obj_free(ob);
    }
    snprintf(ob->id, sizeof ob->id, "%s", id->valuestring);
    for (char *p = ob->id; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    ob->props = props ? cJSON_Duplicate(props, true) : cJSON_CreateObject();
    ob->vec = NULL;
    ob->dim = dim;
    if (dim > 0) {
        if (c->dim == 0)
            c->dim = dim;
        ob->vec = xrealloc_or_die(NULL, (size_t)dim * sizeof *ob->vec);
        int i = 0;
        const cJSON *x;
        cJSON_ArrayForEach(x, vec) ob->vec[i++] = (float)x->valuedouble;
    }
    return NULL;
}

static void batch_objects(struct wst *w, const struct fv_request *rq, struct fv_reply *rep)
{
    const cJSON *objs = cJSON_GetObjectItemCaseSensitive(rq->json, "objects"), *o;
    if (!cJSON_IsArray(objs))
        return werr(rep, 422, "batch: \"objects\" must be a list");
    cJSON *out = cJSON_CreateArray();
    cJSON_ArrayForEach(o, objs)
    {
        cJSON *e = cJSON_Duplicate(o, true);
        cJSON_DeleteItemFromObjectCaseSensitive(e, "vector");
        cJSON *r = cJSON_AddObjectToObject(e, "result");
        const char *bad = batch_one(w, o);
        if (bad != NULL) {
            cJSON *errs = cJSON_AddObjectToObject(r, "errors");
            cJSON *list = cJSON_AddArrayToObject(errs, "error");
            cJSON *m = cJSON_CreateObject();
            cJSON_AddStringToObject(m, "message", bad);
            cJSON_AddItemToArray(list, m);
        }
        cJSON_AddItemToArray(out, e);
    }
    fv_reply_json(rep, 200, out);
}

static cJSON *vec_json(const struct fobj *o)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < o->dim; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber((double)o->vec[i]));
    return a;
}

static cJSON *obj_json(const struct fclass *c, const struct shard *s, const struct fobj *o,
                       bool vector)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "class", c->name);
    cJSON_AddStringToObject(j, "id", o->id);
    cJSON_AddItemToObject(j, "properties", cJSON_Duplicate(o->props, true));
    if (c->mt)
        cJSON_AddStringToObject(j, "tenant", s->name);
    if (vector && o->vec != NULL)
        cJSON_AddItemToObject(j, "vector", vec_json(o));
    return j;
}

static int obj_cmp(const void *a, const void *b)
{
    return strcmp((*(const struct fobj *const *)a)->id, (*(const struct fobj *const *)b)->id);
}

/* The shard's objects sorted by id (an array of pointers; free it). */
static struct fobj **sorted(const struct shard *s)
{
    struct fobj **v = xrealloc_or_die(NULL, (s->n + 1) * sizeof *v);
    for (size_t i = 0; i < s->n; i++)
        v[i] = &s->v[i];
    qsort(v, s->n, sizeof *v, obj_cmp);
    return v;
}

static void objects_list(struct wst *w, const struct fv_request *rq, struct fv_reply *rep)
{
    char cls[256] = "", tenant[128] = "", after[64] = "", lim[32] = "", inc[64] = "";
    fv_query_param(rq, "class", 0, cls, sizeof cls);
    fv_query_param(rq, "tenant", 0, tenant, sizeof tenant);
    fv_query_param(rq, "include", 0, inc, sizeof inc);
    bool has_after = fv_query_param(rq, "after", 0, after, sizeof after);
    fv_query_param(rq, "limit", 0, lim, sizeof lim);
    struct fclass *c = class_find(w, cls);
    if (c == NULL)
        return werr(rep, cls[0] ? 404 : 422,
                    "fake: the class parameter is required and must exist");
    if (has_after && !is_uuid(after))
        return werr(rep, 422, "after must be a UUID");
    long limit = lim[0] ? strtol(lim, NULL, 10) : 25;
    if (limit <= 0 || limit > MAX_RESULTS)
        return werr(rep, 422, "limit must be 1..%d", MAX_RESULTS);
    char msg[256];
    struct shard *s = shard_for(c, tenant, msg, sizeof msg);
    if (s == NULL)
        return werr(rep, 422, "%s", msg);
    struct fobj **v = sorted(s);
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "objects");
    long got = 0;
    for (size_t i = 0; i < s->n && got < limit; i++) {
        if (has_after && strcmp(v[i]->id, after) <= 0)
            continue;
        cJSON_AddItemToArray(arr, obj_json(c, s, v[i], strcmp(inc, "vector") == 0));
        got++;
    }
    free(v);
    cJSON_AddNumberToObject(o, "totalResults", (double)got);
    fv_reply_json(rep, 200, o);
}

static void object_one(struct wst *w, const struct fv_request *rq, const char *cname,
                       const char *id, struct fv_reply *rep)
{
    struct fclass *c = class_find(w, cname);
    if (c == NULL)
        return werr(rep, 404, "class \"%s\" not found", cname);
    if (!is_uuid(id))
        return werr(rep, 422, "id must be a UUID");
    char tenant[128] = "", msg[256];
    fv_query_param(rq, "tenant", 0, tenant, sizeof tenant);
    struct shard *s = shard_for(c, tenant, msg, sizeof msg);
    if (s == NULL)
        return werr(rep, 422, "%s", msg);
    size_t idx;
    struct fobj *o = obj_find(s, id, &idx);
    if (o == NULL)
        return fv_reply_json(rep, 404, NULL);
    if (strcmp(rq->method, "GET") == 0)
        return fv_reply_json(rep, 200, obj_json(c, s, o, true));
    if (strcmp(rq->method, "DELETE") == 0) {
        obj_remove(s, idx);
        return fv_reply_json(rep, 204, NULL);
    }
    werr(rep, 405, "method not allowed");
}

/* ---- where filters ---------------------------------------------------------- */

struct wctx {
    struct fclass *c;
    bool gql; /* operators are enums (GraphQL), else strings (REST) */
    char msg[512];
};

__attribute__((format(printf, 2, 3))) static int wfail(struct wctx *x, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->msg, sizeof x->msg, fmt, ap);
    va_end(ap);
    return -1;
}

static const char *w_operator(struct wctx *x, const cJSON *w)
{
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(w, "operator");
    if (x->gql ? !cJSON_IsRaw(op) : !cJSON_IsString(op))
        return NULL;
    return op->valuestring;
}

/* The one value<Type> key of a comparison. */
static const cJSON *w_value(const cJSON *w)
{
    const cJSON *found = NULL;
    for (const cJSON *e = w->child; e; e = e->next)
        if (strncmp(e->string, "value", 5) == 0) {
            if (found != NULL)
                return NULL;
            found = e;
        }
    return found;
}

static int cmp_values(const cJSON *have, const cJSON *want, bool text)
{
    if (text)
        return strcmp(have->valuestring, want->valuestring);
    double a = cJSON_IsBool(have) ? cJSON_IsTrue(have) : have->valuedouble;
    double b = cJSON_IsBool(want) ? cJSON_IsTrue(want) : want->valuedouble;
    return a < b ? -1 : a > b;
}

/* The value key a type takes (ContainsAny: the array one). */
static bool vkey_ok(const char *type, const char *vkey, bool array)
{
    char want[32];
    const char *t = strcmp(type, "text") == 0      ? "Text"
                    : strcmp(type, "int") == 0     ? "Int"
                    : strcmp(type, "number") == 0  ? "Number"
                    : strcmp(type, "boolean") == 0 ? "Boolean"
                                                   : "?";
    snprintf(want, sizeof want, "value%s%s", t, array ? "Array" : "");
    return strcmp(vkey, want) == 0 ||
           (strcmp(type, "text") == 0 && !array && strcmp(vkey, "valueString") == 0);
}

static bool value_typed(const char *type, const cJSON *v)
{
    if (strcmp(type, "text") == 0)
        return cJSON_IsString(v);
    if (strcmp(type, "boolean") == 0)
        return cJSON_IsBool(v);
    if (!cJSON_IsNumber(v))
        return false;
    return strcmp(type, "int") != 0 || v->valuedouble == floor(v->valuedouble);
}

/* Evaluates where on o (NULL: validates only). 0 with *out, or -1 with
 * x->msg. */
static int w_eval(struct wctx *x, const cJSON *w, const struct fobj *o, bool *out)
{
    const char *op = w_operator(x, w);
    *out = false;
    if (!cJSON_IsObject(w) || op == NULL)
        return wfail(x, "where: every filter needs an operator (%s)",
                     x->gql ? "a GraphQL enum" : "a string");
    bool is_and = strcmp(op, "And") == 0, is_or = strcmp(op, "Or") == 0;
    if (is_and || is_or || strcmp(op, "Not") == 0) {
        const cJSON *ops = cJSON_GetObjectItemCaseSensitive(w, "operands"), *e;
        int n = cJSON_GetArraySize(ops);
        if (!cJSON_IsArray(ops) || n == 0 || (!is_and && !is_or && n != 1))
            return wfail(x, "where: %s needs operands (Not: exactly one)", op);
        bool acc = is_and;
        cJSON_ArrayForEach(e, ops)
        {
            bool r;
            if (w_eval(x, e, o, &r) != 0)
                return -1;
            acc = is_and ? acc && r : is_or ? acc || r : !r;
        }
        *out = acc;
        return 0;
    }
    const cJSON *path = cJSON_GetObjectItemCaseSensitive(w, "path");
    if (!cJSON_IsArray(path) || cJSON_GetArraySize(path) != 1 || !cJSON_IsString(path->child))
        return wfail(x, "where %s: path must be a list of one property name", op);
    const char *pname = path->child->valuestring;
    const cJSON *val = w_value(w);
    if (val == NULL)
        return wfail(x, "where on %s: exactly one value<Type> is needed", pname);
    bool is_id = strcmp(pname, "id") == 0 || strcmp(pname, "_id") == 0;
    struct fprop idp = {.name = "id", .type = "text", .tokenization = "field"};
    struct fprop *p = is_id ? &idp : prop_find(x->c, pname);
    if (p == NULL)
        return wfail(x, "where: no such prop with name '%s' in the class", pname);
    bool contains = strcmp(op, "ContainsAny") == 0;
    bool isnull = strcmp(op, "IsNull") == 0;
    bool eq = strcmp(op, "Equal") == 0, ne = strcmp(op, "NotEqual") == 0;
    int rop = strcmp(op, "GreaterThan") == 0        ? 1
              : strcmp(op, "GreaterThanEqual") == 0 ? 2
              : strcmp(op, "LessThan") == 0         ? 3
              : strcmp(op, "LessThanEqual") == 0    ? 4
                                                    : 0;
    if (!contains && !isnull && !eq && !ne && rop == 0)
        return wfail(x, "where: operator %s is not supported by the fake", op);
    if (isnull) {
        if (!x->c->null_state)
            return wfail(x, "where on %s: IsNull needs invertedIndexConfig.indexNullState", pname);
        if (strcmp(val->string, "valueBoolean") != 0 || !cJSON_IsBool(val))
            return wfail(x, "where on %s: IsNull takes valueBoolean", pname);
    } else if (!vkey_ok(p->type, val->string, contains)) {
        return wfail(x, "where: wrong value type for property %s", pname);
    }
    if (contains) {
        const cJSON *e;
        if (!cJSON_IsArray(val) || cJSON_GetArraySize(val) == 0)
            return wfail(x, "where on %s: ContainsAny needs a non-empty list", pname);
        cJSON_ArrayForEach(e, val) if (!value_typed(p->type, e)) return wfail(
            x, "where on %s: a list value of the wrong type", pname);
    } else if (!isnull && !value_typed(p->type, val)) {
        return wfail(x, "where on %s: the value is not of the property's type", pname);
    }
    bool text = strcmp(p->type, "text") == 0;
    if (text && (eq || ne || contains) && strcmp(p->tokenization, "field") != 0)
        return wfail(x,
                     "fake: Equal on %s, a text property not tokenized \"field\", matches "
                     "tokens in Weaviate; not modelled",
                     pname);
    if (rop != 0 && strcmp(p->type, "boolean") == 0)
        return wfail(x, "where on %s: no range operators on booleans", pname);
    if (is_id && (rop != 0 || contains)) {
        const cJSON *e;
        if (rop != 0)
            return wfail(x, "where on %s: fake: range operators on ids are not modelled", pname);
        cJSON_ArrayForEach(e, val) if (!is_uuid(e->valuestring)) return wfail(
            x, "where on %s: ids must be UUIDs", pname);
    } else if (is_id && !is_uuid(val->valuestring)) {
        return wfail(x, "where on %s: ids must be UUIDs", pname);
    }
    if (o == NULL)
        return 0;
    cJSON *idv = NULL;
    const cJSON *have = NULL;
    if (is_id)
        have = idv = cJSON_CreateString(o->id);
    else
        have = cJSON_GetObjectItemCaseSensitive(o->props, pname);
    bool missing = have == NULL || cJSON_IsNull(have);
    if (isnull) {
        *out = missing == (bool)cJSON_IsTrue(val);
    } else if (missing) {
        *out = false; /* NotEqual too: the stricter reading */
    } else if (contains) {
        const cJSON *e;
        cJSON_ArrayForEach(e, val)
        {
            bool hit = is_id ? strcasecmp(have->valuestring, e->valuestring) == 0
                             : cmp_values(have, e, text) == 0;
            *out = *out || hit;
        }
    } else {
        int c =
            is_id ? strcasecmp(have->valuestring, val->valuestring) : cmp_values(have, val, text);
        *out = eq         ? c == 0
               : ne       ? c != 0
               : rop == 1 ? c > 0
               : rop == 2 ? c >= 0
               : rop == 3 ? c < 0
                          : c <= 0;
    }
    cJSON_Delete(idv);
    return 0;
}

static void batch_delete(struct wst *w, const struct fv_request *rq, struct fv_reply *rep)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(rq->json, "match");
    const cJSON *cls = cJSON_GetObjectItemCaseSensitive(m, "class");
    const cJSON *where = cJSON_GetObjectItemCaseSensitive(m, "where");
    const cJSON *dry = cJSON_GetObjectItemCaseSensitive(rq->json, "dryRun");
    struct fclass *c = cJSON_IsString(cls) ? class_find(w, cls->valuestring) : NULL;
    if (c == NULL)
        return werr(rep, 422, "batch delete: match.class must name an existing class");
    if (!cJSON_IsObject(where))
        return werr(rep, 422, "batch delete: match.where is required");
    char tenant[128] = "", msg[256];
    fv_query_param(rq, "tenant", 0, tenant, sizeof tenant);
    struct shard *s = shard_for(c, tenant, msg, sizeof msg);
    if (s == NULL)
        return werr(rep, 422, "%s", msg);
    struct wctx x = {c, false, ""};
    bool r;
    if (w_eval(&x, where, NULL, &r) != 0)
        return werr(rep, 422, "%s", x.msg);
    struct fobj **v = sorted(s);
    char **ids = xrealloc_or_die(NULL, (s->n + 1) * sizeof *ids);
    size_t matches = 0, done = 0;
    for (size_t i = 0; i < s->n; i++) {
        w_eval(&x, where, v[i], &r);
        if (r)
            ids[matches++] = v[i]->id;
    }
    char(*del)[37] = xrealloc_or_die(NULL, (matches + 1) * sizeof *del);
    for (size_t i = 0; i < matches && i < w->delete_limit; i++)
        snprintf(del[done++], sizeof del[0], "%s", ids[i]);
    free(ids);
    free(v);
    if (!cJSON_IsTrue(dry))
        for (size_t i = 0; i < done; i++) {
            size_t idx;
            if (obj_find(s, del[i], &idx) != NULL)
                obj_remove(s, idx);
        }
    free(del);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "match", cJSON_Duplicate(m, true));
    cJSON_AddStringToObject(o, "output", "minimal");
    cJSON_AddBoolToObject(o, "dryRun", cJSON_IsTrue(dry));
    cJSON *res = cJSON_AddObjectToObject(o, "results");
    cJSON_AddNumberToObject(res, "matches", (double)matches);
    cJSON_AddNumberToObject(res, "limit", (double)w->delete_limit);
    cJSON_AddNumberToObject(res, "successful", cJSON_IsTrue(dry) ? 0 : (double)done);
    cJSON_AddNumberToObject(res, "failed", 0);
    fv_reply_json(rep, 200, o);
}

/* ---- GraphQL ------------------------------------------------------------------ */

struct gp {
    const char *s;
    size_t i;
    char err[256];
};

static void gp_ws(struct gp *g)
{
    for (;;) {
        char ch = g->s[g->i];
        if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == ',')
            g->i++;
        else if (ch == '#')
            while (g->s[g->i] && g->s[g->i] != '\n')
                g->i++;
        else
            return;
    }
}

static bool gp_name(struct gp *g, char *out, size_t outlen)
{
    gp_ws(g);
    size_t n = 0;
    const char *p = g->s + g->i;
    if (!(isalpha((unsigned char)p[0]) || p[0] == '_'))
        return false;
    while (isalnum((unsigned char)p[n]) || p[n] == '_')
        n++;
    if (n >= outlen)
        return false;
    memcpy(out, p, n);
    out[n] = '\0';
    g->i += n;
    return true;
}

static bool gp_eat(struct gp *g, char c)
{
    gp_ws(g);
    if (g->s[g->i] != c)
        return false;
    g->i++;
    return true;
}

static cJSON *gp_fail(struct gp *g, const char *m)
{
    if (g->err[0] == '\0')
        snprintf(g->err, sizeof g->err, "Syntax Error GraphQL request (offset %zu): %s", g->i, m);
    return NULL;
}

static void put_utf8(char *out, size_t *n, unsigned cp)
{
    if (cp < 0x80) {
        out[(*n)++] = (char)cp;
    } else if (cp < 0x800) {
        out[(*n)++] = (char)(0xc0 | (cp >> 6));
        out[(*n)++] = (char)(0x80 | (cp & 0x3f));
    } else {
        out[(*n)++] = (char)(0xe0 | (cp >> 12));
        out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[(*n)++] = (char)(0x80 | (cp & 0x3f));
    }
}

static cJSON *gp_string(struct gp *g)
{
    g->i++; /* the opening quote */
    size_t start = g->i;
    char *out = xrealloc_or_die(NULL, strlen(g->s + start) + 1);
    size_t n = 0;
    for (;;) {
        char ch = g->s[g->i];
        if (ch == '\0' || ch == '\n' || ch == '\r') {
            free(out);
            return gp_fail(g, "unterminated string");
        }
        g->i++;
        if (ch == '"')
            break;
        if (ch != '\\') {
            out[n++] = ch;
            continue;
        }
        char e = g->s[g->i++];
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e != '\0' && simple != NULL) {
            static const char map[] = "\"\\/\b\f\n\r\t";
            out[n++] = map[simple - "\"\\/bfnrt"];
        } else if (e == 'u') {
            unsigned cp = 0;
            for (int k = 0; k < 4; k++) {
                char h = g->s[g->i++];
                if (!isxdigit((unsigned char)h)) {
                    free(out);
                    return gp_fail(g, "bad \\u escape");
                }
                cp = cp * 16 +
                     (unsigned)(isdigit((unsigned char)h) ? h - '0' : (tolower(h) - 'a' + 10));
            }
            put_utf8(out, &n, cp);
        } else {
            free(out);
            return gp_fail(g, "invalid escape in a string");
        }
    }
    out[n] = '\0';
    cJSON *s = cJSON_CreateString(out);
    free(out);
    return s;
}

static cJSON *gp_value(struct gp *g, int depth)
{
    gp_ws(g);
    char ch = g->s[g->i];
    if (depth > 64)
        return gp_fail(g, "too deep");
    if (ch == '"')
        return gp_string(g);
    if (ch == '-' || isdigit((unsigned char)ch)) {
        char *end;
        double d = strtod(g->s + g->i, &end);
        if (end == g->s + g->i)
            return gp_fail(g, "bad number");
        g->i = (size_t)(end - g->s);
        return cJSON_CreateNumber(d);
    }
    if (ch == '[') {
        g->i++;
        cJSON *a = cJSON_CreateArray();
        while (!gp_eat(g, ']')) {
            cJSON *v = gp_value(g, depth + 1);
            if (v == NULL) {
                cJSON_Delete(a);
                return NULL;
            }
            cJSON_AddItemToArray(a, v);
        }
        return a;
    }
    if (ch == '{') {
        g->i++;
        cJSON *o = cJSON_CreateObject();
        while (!gp_eat(g, '}')) {
            char name[256];
            cJSON *v = NULL;
            if (!gp_name(g, name, sizeof name) || !gp_eat(g, ':') ||
                (v = gp_value(g, depth + 1)) == NULL) {
                cJSON_Delete(o);
                return gp_fail(g, "bad object field");
            }
            cJSON_AddItemToObject(o, name, v);
        }
        return o;
    }
    char name[256];
    if (!gp_name(g, name, sizeof name))
        return gp_fail(g, "unexpected character");
    if (strcmp(name, "true") == 0 || strcmp(name, "false") == 0)
        return cJSON_CreateBool(name[0] == 't');
    if (strcmp(name, "null") == 0)
        return cJSON_CreateNull();
    return cJSON_CreateRaw(name); /* an enum */
}

/* A selection set: [{"name","args":{...},"sel":[...]}]. */
static cJSON *gp_selection(struct gp *g, int depth)
{
    if (!gp_eat(g, '{'))
        return gp_fail(g, "expected {");
    if (depth > 16)
        return gp_fail(g, "too deep");
    cJSON *sel = cJSON_CreateArray();
    while (!gp_eat(g, '}')) {
        char name[256];
        if (!gp_name(g, name, sizeof name)) {
            cJSON_Delete(sel);
            return gp_fail(g, "expected a field name");
        }
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "name", name);
        cJSON_AddItemToArray(sel, f);
        cJSON *args = cJSON_AddObjectToObject(f, "args");
        if (gp_eat(g, '(')) {
            while (!gp_eat(g, ')')) {
                char an[256];
                cJSON *v = NULL;
                if (!gp_name(g, an, sizeof an) || !gp_eat(g, ':') || (v = gp_value(g, 0)) == NULL) {
                    cJSON_Delete(sel);
                    return gp_fail(g, "bad argument");
                }
                cJSON_AddItemToObject(args, an, v);
            }
        }
        gp_ws(g);
        if (g->s[g->i] == '{') {
            cJSON *kids = gp_selection(g, depth + 1);
            if (kids == NULL) {
                cJSON_Delete(sel);
                return NULL;
            }
            cJSON_AddItemToObject(f, "sel", kids);
        }
    }
    return sel;
}

static cJSON *gq_error(const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNullToObject(o, "data");
    cJSON *errs = cJSON_AddArrayToObject(o, "errors");
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddItemToArray(errs, e);
    return o;
}

struct hit {
    const struct fobj *o;
    double dist;
};

static int hit_cmp(const void *a, const void *b)
{
    const struct hit *x = a, *y = b;
    if (x->dist != y->dist)
        return x->dist < y->dist ? -1 : 1;
    return strcmp(x->o->id, y->o->id);
}

static double distance(const struct fclass *c, const float *q, const struct fobj *o)
{
    float dot = 0, qq = 0, oo = 0, l2 = 0;
    for (int i = 0; i < o->dim; i++) {
        dot += q[i] * o->vec[i];
        qq += q[i] * q[i];
        oo += o->vec[i] * o->vec[i];
        l2 += (q[i] - o->vec[i]) * (q[i] - o->vec[i]);
    }
    if (strcmp(c->distance, "dot") == 0)
        return -(double)dot;
    if (strcmp(c->distance, "l2-squared") == 0)
        return (double)l2;
    return qq > 0 && oo > 0 ? 1.0 - (double)dot / sqrt((double)qq * (double)oo) : 1.0;
}

/* The fields of a hit as the selection asks. */
static const char *hit_json(const struct fclass *c, const cJSON *sel, const struct hit *h,
                            bool near, cJSON **out)
{
    cJSON *o = cJSON_CreateObject();
    const cJSON *f;
    *out = o;
    cJSON_ArrayForEach(f, sel)
    {
        const char *n = cJSON_GetObjectItemCaseSensitive(f, "name")->valuestring;
        if (strcmp(n, "_additional") == 0) {
            cJSON *add = cJSON_AddObjectToObject(o, "_additional");
            const cJSON *k;
            cJSON_ArrayForEach(k, cJSON_GetObjectItemCaseSensitive(f, "sel"))
            {
                const char *kn = cJSON_GetObjectItemCaseSensitive(k, "name")->valuestring;
                if (strcmp(kn, "id") == 0)
                    cJSON_AddStringToObject(add, "id", h->o->id);
                else if (strcmp(kn, "distance") == 0 && near)
                    cJSON_AddNumberToObject(add, "distance", h->dist);
                else if (strcmp(kn, "distance") == 0)
                    cJSON_AddNullToObject(add, "distance");
                else if (strcmp(kn, "vector") == 0)
                    cJSON_AddItemToObject(add, "vector", vec_json(h->o));
                else
                    return "fake: unknown _additional field";
            }
            continue;
        }
        if (prop_find(c, n) == NULL)
            return "Cannot query field on the class";
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(h->o->props, n);
        cJSON_AddItemToObject(o, n, v ? cJSON_Duplicate(v, true) : cJSON_CreateNull());
    }
    return NULL;
}

/* One Get or Aggregate class field; NULL or an error message. */
static const char *gql_class(struct wst *w, bool aggregate, const cJSON *field, cJSON *into,
                             char *msg, size_t msglen)
{
    const char *cname = cJSON_GetObjectItemCaseSensitive(field, "name")->valuestring;
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(field, "args");
    const cJSON *sel = cJSON_GetObjectItemCaseSensitive(field, "sel");
    struct fclass *c = class_find(w, cname);
    if (c == NULL) {
        snprintf(msg, msglen, "Cannot query field \"%s\" on type \"%s\".", cname,
                 aggregate ? "AggregateObjectsObj" : "GetObjectsObj");
        return msg;
    }
    for (const cJSON *a = args->child; a; a = a->next)
        if (strcmp(a->string, "tenant") && strcmp(a->string, "where") &&
            (aggregate || (strcmp(a->string, "nearVector") && strcmp(a->string, "limit")))) {
            snprintf(msg, msglen, "Unknown argument \"%s\" on field \"%s\"", a->string, cname);
            return msg;
        }
    const cJSON *tn = cJSON_GetObjectItemCaseSensitive(args, "tenant");
    if (tn != NULL && !cJSON_IsString(tn))
        return "tenant must be a string";
    struct shard *s = shard_for(c, tn ? tn->valuestring : NULL, msg, msglen);
    if (s == NULL)
        return msg;
    const cJSON *where = cJSON_GetObjectItemCaseSensitive(args, "where");
    struct wctx x = {c, true, ""};
    bool r;
    if (where != NULL && w_eval(&x, where, NULL, &r) != 0) {
        snprintf(msg, msglen, "%s", x.msg);
        return msg;
    }
    const cJSON *nv = cJSON_GetObjectItemCaseSensitive(args, "nearVector");
    const cJSON *vec = cJSON_GetObjectItemCaseSensitive(nv, "vector");
    float *q = NULL;
    if (nv != NULL) {
        int n = cJSON_GetArraySize(vec);
        if (!cJSON_IsArray(vec) || n == 0 || (c->dim != 0 && n != c->dim))
            return "nearVector: vector of the wrong length";
        q = xrealloc_or_die(NULL, (size_t)n * sizeof *q);
        int i = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, vec)
        {
            if (!cJSON_IsNumber(e)) {
                free(q);
                return "nearVector: vector must be numbers";
            }
            q[i++] = (float)e->valuedouble;
        }
    }
    const cJSON *lim = cJSON_GetObjectItemCaseSensitive(args, "limit");
    double limit = lim ? (cJSON_IsNumber(lim) ? lim->valuedouble : -1) : 10;
    if (limit < 0 || limit != floor(limit) || limit > MAX_RESULTS) {
        free(q);
        return "limit must be an integer 0..10000 (QUERY_MAXIMUM_RESULTS)";
    }
    struct hit *hits = xrealloc_or_die(NULL, (s->n + 1) * sizeof *hits);
    size_t nh = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (where != NULL) {
            w_eval(&x, where, &s->v[i], &r);
            if (!r)
                continue;
        }
        hits[nh].o = &s->v[i];
        hits[nh].dist = q != NULL && s->v[i].vec != NULL ? distance(c, q, &s->v[i]) : 0;
        nh++;
    }
    free(q);
    if (aggregate) {
        free(hits);
        const cJSON *f = sel ? sel->child : NULL;
        if (f == NULL || f->next != NULL ||
            strcmp(cJSON_GetObjectItemCaseSensitive(f, "name")->valuestring, "meta") != 0)
            return "fake: Aggregate supports only meta { count }";
        cJSON *arr = cJSON_AddArrayToObject(into, cname);
        cJSON *o = cJSON_CreateObject();
        cJSON *meta = cJSON_AddObjectToObject(o, "meta");
        cJSON_AddNumberToObject(meta, "count", (double)nh);
        cJSON_AddItemToArray(arr, o);
        return NULL;
    }
    qsort(hits, nh, sizeof *hits, hit_cmp);
    cJSON *arr = cJSON_AddArrayToObject(into, cname);
    const char *bad = NULL;
    for (size_t i = 0; i < nh && i < (size_t)limit && bad == NULL; i++) {
        cJSON *o;
        bad = hit_json(c, sel, &hits[i], nv != NULL, &o);
        cJSON_AddItemToArray(arr, o);
    }
    free(hits);
    return bad;
}

static void graphql(struct wst *w, const struct fv_request *rq, struct fv_reply *rep)
{
    const cJSON *qs = cJSON_GetObjectItemCaseSensitive(rq->json, "query");
    if (!cJSON_IsString(qs))
        return werr(rep, 422, "graphql: \"query\" must be a string");
    struct gp g = {qs->valuestring, 0, ""};
    char name[64];
    size_t save = g.i;
    if (gp_name(&g, name, sizeof name) && strcmp(name, "query") == 0)
        gp_name(&g, name, sizeof name);
    else
        g.i = save;
    cJSON *doc = gp_selection(&g, 0);
    gp_ws(&g);
    if (doc != NULL && g.s[g.i] != '\0') {
        cJSON_Delete(doc);
        doc = gp_fail(&g, "text after the query");
    }
    if (doc == NULL)
        return fv_reply_json(rep, 200, gq_error(g.err));
    cJSON *out = cJSON_CreateObject();
    cJSON *data = cJSON_AddObjectToObject(out, "data");
    const char *bad = NULL;
    char msg[512];
    const cJSON *top;
    cJSON_ArrayForEach(top, doc)
    {
        const char *tn = cJSON_GetObjectItemCaseSensitive(top, "name")->valuestring;
        bool agg = strcmp(tn, "Aggregate") == 0;
        if (!agg && strcmp(tn, "Get") != 0) {
            bad = "fake: only Get and Aggregate are supported";
            break;
        }
        cJSON *into = cJSON_AddObjectToObject(data, tn);
        const cJSON *f;
        cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(top, "sel"))
        {
            bad = gql_class(w, agg, f, into, msg, sizeof msg);
            if (bad != NULL)
                break;
        }
        if (bad != NULL)
            break;
    }
    cJSON_Delete(doc);
    if (bad != NULL) {
        cJSON_Delete(out);
        out = gq_error(bad);
    }
    fv_reply_json(rep, 200, out);
}

/* ---- routing ------------------------------------------------------------------ */

static void *weaviate_init(int argc, char **argv)
{
    struct wst *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->delete_limit = MAX_RESULTS;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--delete-limit") == 0 && i + 1 < argc) {
            w->delete_limit = (size_t)strtoul(argv[++i], NULL, 10);
        } else {
            fprintf(stderr, "fake weaviate: unknown option %s\n", argv[i]);
            free(w);
            return NULL;
        }
    }
    if (w->delete_limit == 0)
        w->delete_limit = 1;
    return w;
}

/* Splits path (after /v1/) into at most 4 segments. */
static size_t split(const char *path, char seg[4][256])
{
    size_t n = 0;
    const char *p = path;
    while (*p && n < 4) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        size_t l = strcspn(p, "/");
        snprintf(seg[n++], 256, "%.*s", (int)(l < 255 ? l : 255), p);
        p += l;
    }
    return *p ? 5 : n;
}

static void weaviate_handle(void *st, const struct fv_request *rq, struct fv_reply *rep)
{
    struct wst *w = st;
    if (!fv_auth_ok(rq, "authorization", "Bearer "))
        return werr(rep, 401, "anonymous access not enabled, please provide an auth scheme");
    if (strncmp(rq->path, "/v1/", 4) != 0)
        return werr(rep, 404, "not found");
    char seg[4][256];
    size_t n = split(rq->path + 4, seg);
    const char *m = rq->method;
    bool get = strcmp(m, "GET") == 0, post = strcmp(m, "POST") == 0;
    bool del = strcmp(m, "DELETE") == 0;
    if (n == 2 && strcmp(seg[0], ".well-known") == 0 && get)
        return fv_reply_json(rep, 200, NULL);
    if (n == 1 && strcmp(seg[0], "meta") == 0 && get) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "hostname", "http://[::]:8080");
        cJSON_AddStringToObject(o, "version", "1.27.0-fake");
        cJSON_AddItemToObject(o, "modules", cJSON_CreateObject());
        return fv_reply_json(rep, 200, o);
    }
    if (n == 1 && strcmp(seg[0], "graphql") == 0 && post)
        return graphql(w, rq, rep);
    if (n == 2 && strcmp(seg[0], "batch") == 0 && strcmp(seg[1], "objects") == 0) {
        if (rq->json == NULL)
            return werr(rep, 422, "batch: a JSON body is required");
        if (post)
            return batch_objects(w, rq, rep);
        if (del)
            return batch_delete(w, rq, rep);
    }
    if (n == 1 && strcmp(seg[0], "objects") == 0 && get)
        return objects_list(w, rq, rep);
    if (n == 3 && strcmp(seg[0], "objects") == 0 && (get || del))
        return object_one(w, rq, seg[1], seg[2], rep);
    if (n >= 1 && strcmp(seg[0], "schema") == 0) {
        if (n == 1 && get) {
            cJSON *o = cJSON_CreateObject();
            cJSON *a = cJSON_AddArrayToObject(o, "classes");
            for (size_t i = 0; i < w->n; i++)
                cJSON_AddItemToArray(a, class_json(&w->v[i]));
            return fv_reply_json(rep, 200, o);
        }
        if (n == 1 && post) {
            if (!cJSON_IsObject(rq->json))
                return werr(rep, 422, "schema: a JSON object is required");
            return schema_create(w, rq->json, rep);
        }
        struct fclass *c = n >= 2 ? class_find(w, seg[1]) : NULL;
        if (c == NULL)
            return werr(rep, 404, "class \"%s\" not found", n >= 2 ? seg[1] : "");
        if (n == 2 && get)
            return fv_reply_json(rep, 200, class_json(c));
        if (n == 2 && del) {
            class_clear(c);
            *c = w->v[--w->n];
            return fv_reply_json(rep, 200, NULL);
        }
        if (n == 3 && strcmp(seg[2], "properties") == 0 && post)
            return prop_add(c, rq->json, rep);
        if (n >= 3 && strcmp(seg[2], "tenants") == 0)
            return tenants_route(c, rq, n == 4 ? seg[3] : NULL, rep);
    }
    werr(rep, 404, "fake weaviate: no route for %s %s", m, rq->path);
}

static void weaviate_error(void *st, int status, const char *message, struct fv_reply *rep)
{
    (void)st;
    werr(rep, status, "%s", message);
}

static void weaviate_reset(void *st)
{
    struct wst *w = st;
    for (size_t i = 0; i < w->n; i++)
        class_clear(&w->v[i]);
    free(w->v);
    w->v = NULL;
    w->n = 0;
}

static void weaviate_free(void *st)
{
    weaviate_reset(st);
    free(st);
}

const struct fv_service fv_weaviate_service = {
    .name = "weaviate",
    .init = weaviate_init,
    .handle = weaviate_handle,
    .error = weaviate_error,
    .reset = weaviate_reset,
    .free = weaviate_free,
};
