/*
 * The remote embedders: OpenAI (and any server speaking its /embeddings,
 * such as llama.cpp or vLLM), Cohere Embed v2, Hugging Face (the hosted
 * Inference API, or a self-hosted text-embeddings-inference server) and
 * Ollama's native /api/embed. API facts follow ../shared/api-notes.md
 * (sections 1.9, 3.1, 4.1 to 4.3).
 *
 * The providers differ only in where they live, which credential they take,
 * how a request is written and where the vectors sit in the reply, so each
 * is one row of a table ({defaults, request builder, reply reader}) over
 * shared plumbing: one struct rest per embedder (net/rest.h: retries, the
 * failure classes, the key scrubbed from every message), and one checker
 * that insists on exactly n vectors of exactly EMBEDDINGS_DIMENSION finite
 * numbers before anything reaches the caller. A reply that breaks that
 * promise is a bad reply with a message that says how to fix the setting,
 * never a silent truncation: a namespace records its dimension, and vectors
 * of another size would poison it. Vectors are L2-normalised here whatever
 * the server claims, because stores and rankers assume norm 1.
 *
 * Construction never touches the network (embedder_new is called by
 * `memchat config` and `doctor` too); a missing key is refused up front,
 * naming the variable, because every call would fail with 401 anyway.
 * A rest object is used by one thread at a time, and so is an embedder:
 * each memory manager makes its own. Messages never hold a text or a key.
 */
#include "config.h"

#include "memory/embed.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <cJSON.h>

#include "config/config.h"
#include "config/vars.h"
#include "net/rest.h"
#include "util/alloc.h"

/* Per-text size: the manager already cuts texts to MEMORY_MAX_BYTES
 * (8192 by default), so this only bounds what a user may raise it to.
 * OpenAI refuses inputs over 8192 tokens instead of truncating; a token is
 * at least one byte, so 8192 bytes can never be refused. The others are
 * asked to truncate, so a longer text is cut by the server, not refused. */
#define OPENAI_MAX_BYTES   8192
#define REMOTE_MAX_BYTES   32768
#define OPENAI_REQ_BYTES   300000 /* 300k tokens per request; bytes >= tokens */
#define REMOTE_MSG_MAX     512
#define REMOTE_MODEL_SHOWN 64

enum key_rule {
    KEY_NONE,           /* never sent (local Ollama ignores it) */
    KEY_OPTIONAL,       /* sent when set (a TEI server started with --api-key) */
    KEY_REQUIRED,       /* refused at construction when missing */
    KEY_UNLESS_LOOPBACK /* required unless the server is on this machine */
};

struct remote_impl;

/* One provider's row. */
struct remote_api {
    const char *provider;      /* EMBEDDINGS_PROVIDER */
    const char *default_model; /* when EMBEDDINGS_MODEL is empty */
    const char *default_base;  /* when EMBEDDINGS_BASE_URL and base_var are empty */
    int base_var;              /* the chat provider's base URL as fallback; -1: none */
    int key_var;               /* -1: none */
    enum key_rule key_rule;
    const char *path;     /* appended to the base URL */
    bool path_has_model;  /* path is "/models/" MODEL path (hosted Hugging Face) */
    size_t default_batch; /* EMBEDDINGS_BATCH_SIZE=0 */
    size_t max_batch;     /* the API's documented ceiling; 0: none documented */
    size_t max_bytes;     /* per text */
    size_t max_req_bytes; /* texts' bytes per request; 0: no limit */
    /* The request body for texts[0..n). */
    cJSON *(*build)(const struct remote_impl *ri, enum embed_mode mode, const char *const *texts,
                    size_t n);
    /* Points rows[0..n) at the reply's vectors (not yet checked), or
     * returns -1 with what is wrong in why. */
    int (*rows)(const cJSON *reply, size_t n, const cJSON **rows, char *why, size_t whylen);
};

/* An embedder's state (embedder.impl). */
struct remote_impl {
    const struct remote_api *api;
    struct rest *rest;
    char *path;
    const char *model; /* the embedder's model field */
    int dim;
    bool send_dim; /* the model takes a requested dimension */
};

/* ---- request builders ------------------------------------------------------------ */

/* texts[0..n) as a JSON array of strings. */
static cJSON *remote_texts_json(const char *const *texts, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(texts[i]));
    return a;
}

static cJSON *openai_build(const struct remote_impl *ri, enum embed_mode mode,
                           const char *const *texts, size_t n)
{
    (void)mode;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", ri->model);
    cJSON_AddItemToObject(o, "input", remote_texts_json(texts, n));
    cJSON_AddStringToObject(o, "encoding_format", "float");
    if (ri->send_dim)
        cJSON_AddNumberToObject(o, "dimensions", ri->dim);
    return o;
}

static cJSON *cohere_build(const struct remote_impl *ri, enum embed_mode mode,
                           const char *const *texts, size_t n)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", ri->model);
    cJSON_AddStringToObject(o, "input_type",
                            mode == EMBED_QUERY ? "search_query" : "search_document");
    cJSON_AddItemToObject(o, "texts", remote_texts_json(texts, n));
    cJSON *types = cJSON_AddArrayToObject(o, "embedding_types");
    cJSON_AddItemToArray(types, cJSON_CreateString("float"));
    if (ri->send_dim)
        cJSON_AddNumberToObject(o, "output_dimension", ri->dim);
    return o;
}

/* Hosted Hugging Face and TEI share the body; TEI is also asked to
 * truncate (its default is to refuse a long text). */
static cJSON *hf_body(const char *const *texts, size_t n, bool truncate)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "inputs", remote_texts_json(texts, n));
    cJSON_AddBoolToObject(o, "normalize", true);
    if (truncate)
        cJSON_AddBoolToObject(o, "truncate", true);
    return o;
}

static cJSON *hosted_build(const struct remote_impl *ri, enum embed_mode mode,
                           const char *const *texts, size_t n)
{
    (void)ri;
    (void)mode;
    return hf_body(texts, n, false);
}

static cJSON *tei_build(const struct remote_impl *ri, enum embed_mode mode,
                        const char *const *texts, size_t n)
{
    (void)ri;
    (void)mode;
    return hf_body(texts, n, true);
}

/* Ollama's "dimensions" is never sent: only some models can shorten their
 * vectors and older servers reject the field, so EMBEDDINGS_DIMENSION must
 * be the model's own size (the dimension check says which when not). */
static cJSON *ollama_build(const struct remote_impl *ri, enum embed_mode mode,
                           const char *const *texts, size_t n)
{
    (void)mode;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", ri->model);
    cJSON_AddItemToObject(o, "input", remote_texts_json(texts, n));
    cJSON_AddBoolToObject(o, "truncate", true);
    return o;
}

/* ---- reply readers --------------------------------------------------------------- */

/* rows[0..n) from the items of arr, which must be an array of n items;
 * what names arr in a message. */
static int remote_rows_of(const cJSON *arr, const char *what, size_t n, const cJSON **rows,
                          char *why, size_t whylen)
{
    if (!cJSON_IsArray(arr)) {
        snprintf(why, whylen, "the reply has no %s array", what);
        return -1;
    }
    size_t got = (size_t)cJSON_GetArraySize(arr);
    if (got != n) {
        snprintf(why, whylen, "the reply holds %zu vectors for %zu texts", got, n);
        return -1;
    }
    size_t i = 0;
    for (const cJSON *it = arr->child; it != NULL; it = it->next)
        rows[i++] = it;
    return 0;
}

/* data[] may come in any order: each index 0..n-1 exactly once. */
static int openai_rows(const cJSON *reply, size_t n, const cJSON **rows, char *why, size_t whylen)
{
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(reply, "data");
    const cJSON **items = xcalloc(n, sizeof *items);
    int rc = remote_rows_of(data, "data", n, items, why, whylen);
    for (size_t i = 0; i < n; i++)
        rows[i] = NULL;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const cJSON *idx = cJSON_GetObjectItemCaseSensitive(items[i], "index");
        double d = cJSON_IsNumber(idx) ? idx->valuedouble : -1.0;
        if (d < 0 || d >= (double)n || d != floor(d)) {
            snprintf(why, whylen, "data[%zu] has no index between 0 and %zu", i, n - 1);
            rc = -1;
        } else if (rows[(size_t)d] != NULL) {
            snprintf(why, whylen, "index %zu appears twice in data", (size_t)d);
            rc = -1;
        } else {
            rows[(size_t)d] = cJSON_GetObjectItemCaseSensitive(items[i], "embedding");
        }
    }
    xfree(items);
    return rc;
}

static int cohere_rows(const cJSON *reply, size_t n, const cJSON **rows, char *why, size_t whylen)
{
    const cJSON *emb = cJSON_GetObjectItemCaseSensitive(reply, "embeddings");
    return remote_rows_of(cJSON_GetObjectItemCaseSensitive(emb, "float"), "embeddings.float", n,
                          rows, why, whylen);
}

/* A flat vector for one input is accepted as well as a one-row matrix:
 * which one the hosted API sends is UNVERIFIED (api-notes 4.3). */
static int hosted_rows(const cJSON *reply, size_t n, const cJSON **rows, char *why, size_t whylen)
{
    if (n == 1 && cJSON_IsArray(reply) && cJSON_IsNumber(reply->child)) {
        rows[0] = reply;
        return 0;
    }
    return remote_rows_of(reply, "top-level", n, rows, why, whylen);
}

static int tei_rows(const cJSON *reply, size_t n, const cJSON **rows, char *why, size_t whylen)
{
    return remote_rows_of(reply, "top-level", n, rows, why, whylen);
}

static int ollama_rows(const cJSON *reply, size_t n, const cJSON **rows, char *why, size_t whylen)
{
    return remote_rows_of(cJSON_GetObjectItemCaseSensitive(reply, "embeddings"), "embeddings", n,
                          rows, why, whylen);
}

/* ---- the providers --------------------------------------------------------------- */

static const struct remote_api api_openai = {
    .provider = "openai",
    .default_model = "text-embedding-3-small",
    .default_base = "https://api.openai.com/v1",
    .base_var = CFG_OPENAI_BASE_URL,
    .key_var = CFG_OPENAI_API_KEY,
    .key_rule = KEY_UNLESS_LOOPBACK,
    .path = "/embeddings",
    /* 2048 items are allowed, but 256 keeps a batch of long texts well
     * under the 300k tokens of one request; max_req_bytes splits the rest */
    .default_batch = 256,
    .max_batch = 2048,
    .max_bytes = OPENAI_MAX_BYTES,
    .max_req_bytes = OPENAI_REQ_BYTES,
    .build = openai_build,
    .rows = openai_rows,
};

static const struct remote_api api_cohere = {
    .provider = "cohere",
    .default_model = "embed-v4.0",
    .default_base = "https://api.cohere.com",
    .base_var = -1,
    .key_var = CFG_COHERE_API_KEY,
    .key_rule = KEY_REQUIRED,
    .path = "/v2/embed",
    .default_batch = 96,
    .max_batch = 96,
    .max_bytes = REMOTE_MAX_BYTES,
    .build = cohere_build,
    .rows = cohere_rows,
};

static const struct remote_api api_hf_hosted = {
    .provider = "huggingface",
    .default_model = "intfloat/multilingual-e5-large",
    .default_base = "https://router.huggingface.co/hf-inference",
    .base_var = -1,
    .key_var = CFG_HF_API_TOKEN,
    .key_rule = KEY_REQUIRED,
    .path = "/pipeline/feature-extraction",
    .path_has_model = true,
    .default_batch = 32,
    .max_bytes = REMOTE_MAX_BYTES,
    .build = hosted_build,
    .rows = hosted_rows,
};

/* A TEI server's ceiling is its --max-client-batch-size (32 unless
 * changed), so a larger EMBEDDINGS_BATCH_SIZE is the user's to choose. */
static const struct remote_api api_hf_tei = {
    .provider = "huggingface",
    .default_model = "intfloat/multilingual-e5-large",
    .default_base = NULL,
    .base_var = -1,
    .key_var = CFG_HF_API_TOKEN,
    .key_rule = KEY_OPTIONAL,
    .path = "/embed",
    .default_batch = 32,
    .max_bytes = REMOTE_MAX_BYTES,
    .build = tei_build,
    .rows = tei_rows,
};

static const struct remote_api api_ollama = {
    .provider = "ollama",
    .default_model = "nomic-embed-text",
    .default_base = "http://127.0.0.1:11434",
    .base_var = CFG_OLLAMA_BASE_URL,
    .key_var = -1,
    .key_rule = KEY_NONE,
    .path = "/api/embed",
    .default_batch = 64,
    .max_bytes = REMOTE_MAX_BYTES,
    .build = ollama_build,
    .rows = ollama_rows,
};

/* ---- checking and copying vectors ------------------------------------------------ */

/* The service prefix of every message: "openai embedder". */
static void remote_service(const struct embedder *e, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s embedder", e->name);
}

/* Copies row i (checked: dim finite numbers) into out, L2-normalised. */
static int remote_copy_row(const struct embedder *e, const cJSON *row, size_t i, float *out,
                           char *why, size_t whylen)
{
    if (!cJSON_IsArray(row)) {
        snprintf(why, whylen, "vector %zu is not an array of numbers", i);
        return -1;
    }
    int got = cJSON_GetArraySize(row);
    if (got != e->dim) {
        snprintf(why, whylen,
                 "the model returned %d floats per vector; EMBEDDINGS_DIMENSION is %d (set it to "
                 "%d, or choose a model with %d)",
                 got, e->dim, got, e->dim);
        return -1;
    }
    double sum = 0.0;
    size_t k = 0;
    for (const cJSON *v = row->child; v != NULL; v = v->next, k++) {
        /* beyond FLT_MAX the conversion to float is undefined */
        double d = cJSON_IsNumber(v) ? v->valuedouble : (double)NAN;
        if (!isfinite(d) || fabs(d) > (double)FLT_MAX) {
            snprintf(why, whylen, "vector %zu holds a value that is not a finite number (at %zu)",
                     i, k);
            return -1;
        }
        out[k] = (float)d;
        sum += (double)out[k] * (double)out[k];
    }
    if (sum > 0.0) {
        double inv = 1.0 / sqrt(sum);
        for (k = 0; k < (size_t)e->dim; k++)
            out[k] = (float)((double)out[k] * inv);
    }
    return 0;
}

/* The vectors of reply for n texts into out, or -1 with a message. */
static int remote_read_reply(const struct embedder *e, const cJSON *reply, size_t n, float *out,
                             char *err, size_t errlen)
{
    const struct remote_impl *ri = e->impl;
    const cJSON **rows = xcalloc(n, sizeof *rows);
    char why[REMOTE_MSG_MAX] = "";
    int rc = ri->api->rows(reply, n, rows, why, sizeof why);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = remote_copy_row(e, rows[i], i, out + i * (size_t)e->dim, why, sizeof why);
    xfree(rows);
    if (rc != 0) {
        char svc[64];
        remote_service(e, svc, sizeof svc);
        snprintf(err, errlen, "%s: POST %s%s: %s", svc, rest_base_shown(ri->rest), ri->path, why);
    }
    return rc;
}

/* One request for texts[0..n). */
static int remote_request(struct embedder *e, enum embed_mode mode, const char *const *texts,
                          size_t n, float *out, char *err, size_t errlen)
{
    struct remote_impl *ri = e->impl;
    cJSON *body = ri->api->build(ri, mode, texts, n);
    cJSON *reply = NULL;
    enum rest_fail f = rest_call_json(ri->rest, "POST", ri->path, body, &reply, NULL, err, errlen);
    cJSON_Delete(body);
    if (f == REST_OK && remote_read_reply(e, reply, n, out, err, errlen) != 0)
        f = REST_BAD_REPLY;
    cJSON_Delete(reply);
    e->last_fail = (int)f;
    return f == REST_OK ? 0 : -1;
}

/* How many of texts[0..n) fit one request under the API's byte budget
 * (at least one: a single text is already within max_bytes). */
static size_t remote_fit(const struct remote_api *api, const char *const *texts, size_t n)
{
    if (api->max_req_bytes == 0)
        return n;
    size_t bytes = 0, m = 0;
    while (m < n) {
        bytes += strlen(texts[m]);
        if (m > 0 && bytes > api->max_req_bytes)
            break;
        m++;
    }
    return m;
}

static int remote_embed(struct embedder *e, enum embed_mode mode, const char *const *texts,
                        size_t n, const struct embed_df *df, float *out, char *err, size_t errlen)
{
    (void)df; /* remote models weight nothing by the tenant's frequencies */
    const struct remote_impl *ri = e->impl;
    for (size_t i = 0; i < n;) {
        size_t m = remote_fit(ri->api, texts + i, n - i);
        if (remote_request(e, mode, texts + i, m, out + i * (size_t)e->dim, err, errlen) != 0)
            return -1;
        i += m;
    }
    e->last_fail = REST_OK;
    return 0;
}

static void remote_set_cancel(struct embedder *e, const atomic_bool *cancel)
{
    rest_set_cancel(((struct remote_impl *)e->impl)->rest, cancel);
}

static void remote_free(struct embedder *e)
{
    struct remote_impl *ri = e->impl;
    rest_free(ri->rest);
    xfree(ri->path);
    xfree(ri);
    xfree(e);
}

static const struct embedder_ops remote_ops = {
    .embed = remote_embed,
    .terms = NULL,
    .set_cancel = remote_set_cancel,
    .free = remote_free,
};

/* ---- construction ---------------------------------------------------------------- */

/* True when url's host is this machine (localhost, 127.0.0.0/8, ::1): a
 * local OpenAI-compatible server usually wants no key. */
static bool remote_is_loopback(const char *url)
{
    const char *h = strstr(url, "://");
    h = h != NULL ? h + 3 : url;
    size_t auth = strcspn(h, "/?#");
    for (size_t i = 0; i < auth; i++)
        if (h[i] == '@')
            return false; /* credentials in the URL: not a bare local server */
    if (strncmp(h, "[::1]", 5) == 0)
        return true;
    size_t hl = strcspn(h, ":/?#");
    if (hl == 9 && strncmp(h, "localhost", 9) == 0)
        return true;
    return hl > 4 && strncmp(h, "127.", 4) == 0;
}

/* The hosted Hugging Face API is used when the base URL is empty or names
 * its hf-inference router; any other URL is a TEI server. */
static bool hf_is_hosted(const char *base)
{
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        n--;
    static const char tail[] = "/hf-inference";
    size_t t = sizeof tail - 1;
    return n == 0 || (n >= t && strncmp(base + n - t, tail, t) == 0);
}

/* The row for provider and base URL; NULL when the provider is unknown. */
static const struct remote_api *remote_api_for(const char *provider, const char *base)
{
    if (strcmp(provider, "openai") == 0)
        return &api_openai;
    if (strcmp(provider, "cohere") == 0)
        return &api_cohere;
    if (strcmp(provider, "huggingface") == 0)
        return hf_is_hosted(base) ? &api_hf_hosted : &api_hf_tei;
    if (strcmp(provider, "ollama") == 0)
        return &api_ollama;
    return NULL;
}

/* A model id that may go into a URL path as is (owner/name of the Hub):
 * letters, digits, '.', '_', '-' and single '/' between segments. */
static bool remote_model_path_ok(const char *m)
{
    if (m[0] == '/' || strstr(m, "//") != NULL || strstr(m, "..") != NULL)
        return false;
    for (const char *p = m; *p != '\0'; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-' || c == '/';
        if (!ok)
            return false;
    }
    return m[strlen(m) - 1] != '/';
}

/* Checks the model name and writes it into e->model. */
static int remote_set_model(const struct config *cfg, const struct remote_api *api,
                            struct embedder *e, char *err, size_t errlen)
{
    const char *model = config_str(cfg, CFG_EMBEDDINGS_MODEL);
    if (model[0] == '\0')
        model = api->default_model;
    char q[REMOTE_MODEL_SHOWN + 16];
    if (strlen(model) >= sizeof e->model) {
        snprintf(err, errlen, "EMBEDDINGS_MODEL: %s is longer than %zu bytes",
                 config_quote(config_var(cfg, CFG_EMBEDDINGS_MODEL), model, q, sizeof q),
                 sizeof e->model - 1);
        return -1;
    }
    if (api->path_has_model && !remote_model_path_ok(model)) {
        snprintf(err, errlen,
                 "EMBEDDINGS_MODEL: %s is not a Hugging Face model id (owner/name of letters, "
                 "digits, '.', '_' and '-')",
                 config_quote(config_var(cfg, CFG_EMBEDDINGS_MODEL), model, q, sizeof q));
        return -1;
    }
    snprintf(e->model, sizeof e->model, "%s", model);
    return 0;
}

/* EMBEDDINGS_BATCH_SIZE, or the provider's default; above the API's
 * documented ceiling is an error rather than a request sure to fail. */
static int remote_set_batch(const struct config *cfg, const struct remote_api *api,
                            struct embedder *e, char *err, size_t errlen)
{
    long long b = config_int(cfg, CFG_EMBEDDINGS_BATCH_SIZE);
    if (b == 0) {
        e->max_batch = api->default_batch;
        return 0;
    }
    if (api->max_batch > 0 && (size_t)b > api->max_batch) {
        snprintf(err, errlen,
                 "EMBEDDINGS_BATCH_SIZE: %lld is more than the %s embedder takes per request "
                 "(at most %zu; 0 picks %zu)",
                 b, api->provider, api->max_batch, api->default_batch);
        return -1;
    }
    e->max_batch = (size_t)b;
    return 0;
}

/* The base URL: EMBEDDINGS_BASE_URL, else the chat provider's, else the
 * API's own. */
static const char *remote_base(const struct config *cfg, const struct remote_api *api)
{
    const char *base = config_str(cfg, CFG_EMBEDDINGS_BASE_URL);
    if (base[0] == '\0' && api->base_var >= 0)
        base = config_str(cfg, api->base_var);
    if (base[0] == '\0' && api->default_base != NULL)
        base = api->default_base;
    return base;
}

/* The credential to send, "" for none, or NULL with a message naming the
 * variable when a required one is missing. */
static const char *remote_key(const struct config *cfg, const struct remote_api *api,
                              const char *base, char *err, size_t errlen)
{
    if (api->key_var < 0 || api->key_rule == KEY_NONE)
        return "";
    const char *key = config_str(cfg, api->key_var);
    if (key[0] != '\0')
        return key;
    const char *var = config_var(cfg, api->key_var)->name;
    if (api->key_rule == KEY_REQUIRED) {
        snprintf(err, errlen, "%s: the %s embedder needs a key; set %s", var, api->provider, var);
        return NULL;
    }
    if (api->key_rule == KEY_UNLESS_LOOPBACK && !remote_is_loopback(base)) {
        snprintf(err, errlen,
                 "%s: the %s embedder needs a key for a server that is not on this machine; "
                 "set %s (or EMBEDDINGS_BASE_URL to a local server)",
                 var, api->provider, var);
        return NULL;
    }
    return "";
}

/* Whether the model accepts a requested output size: OpenAI's
 * text-embedding-3 family, Cohere's embed-v4 at its four sizes. */
static bool remote_send_dim(const struct remote_api *api, const char *model, int dim)
{
    if (api == &api_openai)
        return strncmp(model, "text-embedding-3", 16) == 0;
    if (api == &api_cohere)
        return strncmp(model, "embed-v4", 8) == 0 &&
               (dim == 256 || dim == 512 || dim == 1024 || dim == 1536);
    return false;
}

/* The endpoint: base URL, Authorization header, timeout and retries. */
static struct rest *remote_rest(const struct config *cfg, const struct embedder *e,
                                const char *base, const char *key, char *err, size_t errlen)
{
    char svc[64];
    remote_service(e, svc, sizeof svc);
    char *auth = key[0] != '\0' ? xasprintf("Authorization: Bearer %s", key) : NULL;
    const char *headers[] = {auth, "Accept: application/json"};
    struct rest_opts o = {
        .service = svc,
        .base_url = base,
        .headers = auth != NULL ? headers : headers + 1,
        .n_headers = auth != NULL ? 2 : 1,
        .secret = key,
        .timeout_ms = (long)config_duration_ms(cfg, CFG_MEMORY_REMOTE_TIMEOUT),
        .max_retries = (int)config_int(cfg, CFG_MEMCHAT_MAX_RETRIES),
    };
    struct rest *r = rest_new(&o, err, errlen);
    if (auth != NULL) {
        memset(auth, 0, strlen(auth));
        xfree(auth);
    }
    return r;
}

struct embedder *embed_remote_new(const struct config *cfg, char *err, size_t errlen)
{
    const char *provider = config_str(cfg, CFG_EMBEDDINGS_PROVIDER);
    const char *user_base = config_str(cfg, CFG_EMBEDDINGS_BASE_URL);
    const struct remote_api *api = remote_api_for(provider, user_base);
    if (api == NULL) {
        snprintf(err, errlen,
                 "EMBEDDINGS_PROVIDER: unknown embedder; accepted: local, openai, cohere, "
                 "huggingface, ollama");
        return NULL;
    }
    struct embedder *e = xcalloc(1, sizeof *e);
    e->ops = &remote_ops;
    snprintf(e->name, sizeof e->name, "%s", api->provider);
    e->dim = (int)config_int(cfg, CFG_EMBEDDINGS_DIMENSION);
    e->max_bytes = api->max_bytes;
    e->remote = true;
    const char *base = remote_base(cfg, api);
    const char *key = NULL;
    if (remote_set_model(cfg, api, e, err, errlen) != 0 ||
        remote_set_batch(cfg, api, e, err, errlen) != 0 ||
        (key = remote_key(cfg, api, base, err, errlen)) == NULL) {
        xfree(e);
        return NULL;
    }
    struct rest *r = remote_rest(cfg, e, base, key, err, errlen);
    if (r == NULL) {
        xfree(e);
        return NULL;
    }
    struct remote_impl *ri = xcalloc(1, sizeof *ri);
    ri->api = api;
    ri->rest = r;
    ri->path =
        api->path_has_model ? xasprintf("/models/%s%s", e->model, api->path) : xstrdup(api->path);
    ri->model = e->model;
    ri->dim = e->dim;
    ri->send_dim = remote_send_dim(api, e->model, e->dim);
    e->impl = ri;
    return e;
}
