/*
 * The pieces every remote vector store shares (remote.h): the tenant check,
 * name-derived UUIDs, records and namespaces as JSON under memchat's field
 * names, vectors as JSON arrays that read back bit for bit, and one order
 * for results.
 */
#include "config.h"

#include "memory/remote.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <sodium.h>

#include "util/alloc.h"

int remote_check_tenant(const char *store, const char *tenant, char *err, size_t errlen)
{
    if (tenant != NULL && ident_valid(tenant))
        return 0;
    snprintf(err, errlen, "%s: tenant \"%.64s\" is not a valid tenant id ([A-Za-z0-9_-]{1,64})",
             store, tenant != NULL ? tenant : "");
    return -1;
}

void remote_uuid_from(const char *a, const char *b, char *out)
{
    crypto_generichash_state st;
    unsigned char h[16];
    crypto_generichash_init(&st, NULL, 0, sizeof h);
    crypto_generichash_update(&st, (const unsigned char *)a, strlen(a) + 1);
    crypto_generichash_update(&st, (const unsigned char *)b, strlen(b) + 1);
    crypto_generichash_final(&st, h, sizeof h);
    h[6] = (unsigned char)((h[6] & 0x0f) | 0x80); /* version 8: custom */
    h[8] = (unsigned char)((h[8] & 0x3f) | 0x80); /* the RFC 9562 variant */
    snprintf(out, MC_UUID_STRLEN + 1,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", h[0], h[1],
             h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9], h[10], h[11], h[12], h[13], h[14],
             h[15]);
}

/* cJSON_Add* that never hands NULL to its caller. */
static cJSON *remote_add(cJSON *it)
{
    if (it == NULL)
        alloc_die("cJSON remote payload");
    return it;
}

cJSON *remote_record_to_json(const struct mem_record *r)
{
    cJSON *meta = cJSON_Parse(r->metadata != NULL ? r->metadata : "{}");
    if (!cJSON_IsObject(meta)) {
        cJSON_Delete(meta);
        return NULL;
    }
    cJSON *o = remote_add(cJSON_CreateObject());
    remote_add(cJSON_AddStringToObject(o, "id", r->id));
    remote_add(cJSON_AddStringToObject(o, "text", r->text != NULL ? r->text : ""));
    remote_add(cJSON_AddStringToObject(o, "user_id", r->user_id));
    remote_add(cJSON_AddStringToObject(o, "agent", r->agent));
    remote_add(cJSON_AddStringToObject(o, "kind", r->kind));
    remote_add(cJSON_AddNumberToObject(o, "created_at", (double)r->created_at));
    remote_add(cJSON_AddNumberToObject(
        o, "updated_at", (double)(r->updated_at != 0 ? r->updated_at : r->created_at)));
    cJSON_AddItemToObject(o, "metadata", meta);
    return o;
}

/* Copies the string field name of o into out (cap bytes with the NUL);
 * -1 naming it when missing, not a string or too long. */
static int remote_str_field(const cJSON *o, const char *name, char *out, size_t cap, char *err,
                            size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= cap) {
        snprintf(err, errlen, "field \"%s\" is missing, not a string or longer than %zu bytes",
                 name, cap - 1);
        return -1;
    }
    memcpy(out, v->valuestring, strlen(v->valuestring) + 1);
    return 0;
}

/* The integer field name of o (a JSON number holding an integer). */
static int remote_int_field(const cJSON *o, const char *name, int64_t *out, char *err,
                            size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
        fabs(v->valuedouble) > 9007199254740992.0) {
        snprintf(err, errlen, "field \"%s\" is missing or not an integer", name);
        return -1;
    }
    *out = (int64_t)v->valuedouble;
    return 0;
}

int remote_record_from_json(const cJSON *o, struct mem_record *r, char *err, size_t errlen)
{
    if (!cJSON_IsObject(o)) {
        snprintf(err, errlen, "a record is not a JSON object");
        return -1;
    }
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(o, "text");
    if (remote_str_field(o, "id", r->id, sizeof r->id, err, errlen) != 0 ||
        remote_str_field(o, "user_id", r->user_id, sizeof r->user_id, err, errlen) != 0 ||
        remote_str_field(o, "agent", r->agent, sizeof r->agent, err, errlen) != 0 ||
        remote_str_field(o, "kind", r->kind, sizeof r->kind, err, errlen) != 0 ||
        remote_int_field(o, "created_at", &r->created_at, err, errlen) != 0)
        return -1;
    if (!cJSON_IsString(text)) {
        snprintf(err, errlen, "field \"text\" is missing or not a string");
        return -1;
    }
    if (remote_int_field(o, "updated_at", &r->updated_at, err, errlen) != 0)
        r->updated_at = r->created_at;
    r->text = xstrdup(text->valuestring);
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(o, "metadata");
    cJSON *parsed = NULL;
    if (cJSON_IsString(meta))
        meta = parsed = cJSON_Parse(meta->valuestring);
    if (meta != NULL && !cJSON_IsObject(meta)) {
        cJSON_Delete(parsed);
        snprintf(err, errlen, "field \"metadata\" is not a JSON object");
        return -1;
    }
    if (meta != NULL) {
        char *t = cJSON_PrintUnformatted(meta);
        if (t == NULL)
            alloc_die("record metadata");
        r->metadata = xstrdup(t);
        cJSON_free(t);
    }
    cJSON_Delete(parsed);
    return 0;
}

cJSON *remote_ns_to_json(const char *tenant, const struct store_ns *ns)
{
    cJSON *o = remote_add(cJSON_CreateObject());
    remote_add(cJSON_AddStringToObject(o, "tenant", tenant));
    remote_add(cJSON_AddStringToObject(o, "embedder", ns->embedder));
    remote_add(cJSON_AddStringToObject(o, "model", ns->model));
    remote_add(cJSON_AddNumberToObject(o, "dim", ns->dim));
    remote_add(cJSON_AddNumberToObject(o, "created_ms", (double)ns->created_ms));
    remote_add(cJSON_AddNumberToObject(o, "generation", (double)ns->generation));
    return o;
}

int remote_ns_from_json(const cJSON *o, struct store_ns *ns, char *err, size_t errlen)
{
    int64_t dim = 0;
    memset(ns, 0, sizeof *ns);
    if (remote_str_field(o, "embedder", ns->embedder, sizeof ns->embedder, err, errlen) != 0 ||
        remote_str_field(o, "model", ns->model, sizeof ns->model, err, errlen) != 0 ||
        remote_int_field(o, "dim", &dim, err, errlen) != 0 ||
        remote_int_field(o, "created_ms", &ns->created_ms, err, errlen) != 0)
        return -1;
    if (dim < 1 || dim > 65536) {
        snprintf(err, errlen, "field \"dim\" is %lld, not a dimension", (long long)dim);
        return -1;
    }
    ns->dim = (int)dim;
    if (remote_int_field(o, "generation", &ns->generation, err, errlen) != 0)
        ns->generation = 0;
    return 0;
}

cJSON *remote_vector_to_json(const float *v, int dim)
{
    /* A raw node printed with 9 significant digits, which read back to the
     * same float, instead of cJSON's 15 to 17 digits of a double: a
     * 1024-dimensional vector stays near 11 kB. */
    size_t cap = (size_t)dim * 17 + 3, len = 0;
    char *text = xmalloc(cap);
    text[len++] = '[';
    for (int i = 0; i < dim; i++) {
        float x = isfinite(v[i]) ? v[i] : 0.0f;
        len += (size_t)snprintf(text + len, cap - len, "%s%.9g", i > 0 ? "," : "", (double)x);
    }
    text[len++] = ']';
    text[len] = '\0';
    cJSON *a = remote_add(cJSON_CreateRaw(text));
    xfree(text);
    return a;
}

float *remote_vector_from_json(const cJSON *a, int dim)
{
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != dim)
        return NULL;
    float *v = xmalloc((size_t)dim * sizeof *v);
    int i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, a)
    {
        if (!cJSON_IsNumber(x)) {
            xfree(v);
            return NULL;
        }
        v[i++] = (float)x->valuedouble;
    }
    return v;
}

static int remote_cmp(const void *pa, const void *pb)
{
    const struct mem_record *a = pa, *b = pb;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    return strcmp(a->id, b->id);
}

void remote_sort_records(struct mem_records *rs)
{
    if (rs->n > 1)
        qsort(rs->v, rs->n, sizeof *rs->v, remote_cmp);
}
