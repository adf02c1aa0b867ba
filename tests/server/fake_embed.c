/*
 * The embed service of fakevec: one loopback fake for the four remote
 * embedding APIs memchat speaks (../shared/api-notes.md 1.9, 3.1, 4.1-4.3),
 * so the embedders' tests run without keys or network:
 *   POST /embeddings, /v1/embeddings                      OpenAI
 *   POST /v2/embed                                        Cohere Embed v2
 *   POST /embed                                           Hugging Face TEI
 *   POST [...]/models/{owner/name}/pipeline/feature-extraction   hosted Hugging Face
 *   POST /api/embed                                       Ollama
 * Each request is checked against the documentation (required fields and
 * their types, OpenAI's 2048 inputs and no empty string, "dimensions" only
 * for text-embedding-3*, Cohere's 1..96 texts, input_type and
 * embedding_types values, output_dimension only 256/512/1024/1536 on
 * embed-v4*, TEI's batch ceiling, the hosted path's shape, Ollama's model
 * and input) and refused in that API's error shape when it does not match,
 * so a client that passes here sent what the documentation says.
 * With --key, a request whose Authorization is not "Bearer KEY" gets 401
 * (OpenAI's body quotes the key it got, as the real one quotes part of it,
 * so tests see the client scrub it; TEI's 401 has an empty body as the real
 * one); the hosted API wants some Bearer even without --key; Ollama, a
 * local server, accepts anything.
 *
 * Vectors are deterministic so tests can compute them: value j of a text's
 * vector is 3 * (2u - 1), u = the top 53 bits of splitmix64(seed + (j+1) *
 * 0x9E3779B97F4A7C15) / 2^53, seed = FNV-1a 64 of the text (XOR 0xC0DE for
 * Cohere's search_query, so query and document vectors differ predictably).
 * They are deliberately NOT unit length (the client must normalise), even
 * when "normalize" is asked for. Their size is --dim N (default 8), or the
 * request's OpenAI "dimensions" / Ollama "dimensions" / Cohere
 * "output_dimension". OpenAI's data[] is sent in reverse order (the client
 * must sort by index).
 *
 * Misbehaviour, chosen by a magic text anywhere in the inputs, so one fake
 * serves a test's good and bad calls alike:
 *   __fake_wrong_count__   one vector fewer than texts
 *   __fake_wrong_dim__     every vector has 4 floats more
 *   __fake_nan__           that text's vector starts with a string
 *   __fake_zero__          that text's vector is all zeros
 *   __fake_dup_index__     (OpenAI) every item has index 0
 * Options: --dim N; --max-batch N (TEI's --max-client-batch-size, default
 * 32: more inputs get 413); --hf-flat (hosted API: a one-text request gets
 * a flat vector, the other shape api-notes 4.3 allows); --api
 * openai|cohere|tei|hf|ollama (the error shape of injected failures, which
 * the core asks for before this service sees the request; without it, the
 * API of the last request handled, else OpenAI's).
 */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fakevec.h"

#define FE_OPENAI_MAX_INPUTS 2048
#define FE_COHERE_MAX_TEXTS  96
#define FE_DIM_MAX           8192

enum fe_api { FE_OPENAI, FE_COHERE, FE_TEI, FE_HF, FE_OLLAMA };

struct fe_state {
    int dim;
    int max_batch;
    bool hf_flat;
    bool api_fixed;
    enum fe_api api; /* for error shapes */
};

/* One request's reading: the texts and what to answer with. */
struct fe_job {
    const cJSON *texts; /* array of strings, or one string */
    int dim;
    uint64_t seed_xor;
};

/* ---- options --------------------------------------------------------------------- */

static bool fe_api_named(const char *s, enum fe_api *out)
{
    static const char *const names[] = {"openai", "cohere", "tei", "hf", "ollama"};
    for (int i = 0; i < 5; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (enum fe_api)i;
            return true;
        }
    return false;
}

static bool fe_int_arg(const char *s, int lo, int hi, int *out)
{
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || v < lo || v > hi)
        return false;
    *out = (int)v;
    return true;
}

static void *embed_init(int argc, char **argv)
{
    struct fe_state *st = calloc(1, sizeof *st);
    if (st == NULL)
        return NULL;
    st->dim = 8;
    st->max_batch = 32;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
        bool ok = true;
        if (strcmp(a, "--hf-flat") == 0) {
            st->hf_flat = true;
        } else if (strcmp(a, "--dim") == 0) {
            ok = fe_int_arg(v, 1, FE_DIM_MAX, &st->dim);
            i++;
        } else if (strcmp(a, "--max-batch") == 0) {
            ok = fe_int_arg(v, 1, 100000, &st->max_batch);
            i++;
        } else if (strcmp(a, "--api") == 0) {
            ok = fe_api_named(v, &st->api);
            st->api_fixed = true;
            i++;
        } else {
            ok = false;
        }
        if (!ok) {
            fprintf(stderr, "fakevec embed: bad option %s\n", a);
            free(st);
            return NULL;
        }
    }
    return st;
}

/* ---- error shapes ---------------------------------------------------------------- */

static const char *fe_openai_type(int status)
{
    if (status == 401)
        return "invalid_request_error";
    if (status == 429)
        return "rate_limit_error";
    if (status >= 500)
        return "server_error";
    return "invalid_request_error";
}

/* message in api's error body with status. */
static void fe_error_as(enum fe_api api, int status, const char *message, struct fv_reply *rep)
{
    cJSON *o = cJSON_CreateObject();
    if (api == FE_OPENAI) {
        cJSON *e = cJSON_AddObjectToObject(o, "error");
        cJSON_AddStringToObject(e, "message", message);
        cJSON_AddStringToObject(e, "type", fe_openai_type(status));
        cJSON_AddNullToObject(e, "param");
        if (status == 401)
            cJSON_AddStringToObject(e, "code", "invalid_api_key");
        else
            cJSON_AddNullToObject(e, "code");
    } else if (api == FE_COHERE) {
        cJSON_AddStringToObject(o, "id", "fake-cohere-error");
        cJSON_AddStringToObject(o, "message", message);
    } else if (api == FE_TEI) {
        cJSON_AddStringToObject(o, "error", message);
        cJSON_AddStringToObject(o, "error_type", status == 429 ? "Overloaded" : "Validation");
    } else {
        cJSON_AddStringToObject(o, "error", message); /* Ollama; hosted HF (UNVERIFIED) */
    }
    fv_reply_json(rep, status, o);
}

static void embed_error(void *st, int status, const char *message, struct fv_reply *rep)
{
    const struct fe_state *s = st;
    fe_error_as(s->api, status, message, rep);
}

/* ---- vectors --------------------------------------------------------------------- */

static uint64_t fe_fnv(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return h;
}

static double fe_value(uint64_t seed, int j)
{
    uint64_t z = seed + (uint64_t)(j + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return ((double)(z >> 11) / 9007199254740992.0 * 2.0 - 1.0) * 3.0;
}

/* The vector of text (with the magic texts' misbehaviour). */
static cJSON *fe_vector(const char *text, int dim, uint64_t seed_xor)
{
    cJSON *v = cJSON_CreateArray();
    bool zero = strcmp(text, "__fake_zero__") == 0;
    if (strcmp(text, "__fake_nan__") == 0)
        cJSON_AddItemToArray(v, cJSON_CreateString("NaN"));
    uint64_t seed = fe_fnv(text) ^ seed_xor;
    for (int j = cJSON_GetArraySize(v); j < dim; j++)
        cJSON_AddItemToArray(v, cJSON_CreateNumber(zero ? 0.0 : fe_value(seed, j)));
    return v;
}

static size_t fe_count(const cJSON *texts)
{
    return cJSON_IsString(texts) ? 1 : (size_t)cJSON_GetArraySize(texts);
}

static const char *fe_text(const cJSON *texts, size_t i)
{
    return cJSON_IsString(texts) ? texts->valuestring
                                 : cJSON_GetArrayItem(texts, (int)i)->valuestring;
}

static bool fe_has(const cJSON *texts, const char *magic)
{
    for (size_t i = 0; i < fe_count(texts); i++)
        if (strcmp(fe_text(texts, i), magic) == 0)
            return true;
    return false;
}

/* The vectors of job as an array (misbehaving as the magic texts ask). */
static cJSON *fe_matrix(const struct fe_job *job)
{
    size_t n = fe_count(job->texts);
    if (fe_has(job->texts, "__fake_wrong_count__"))
        n--;
    int dim = job->dim + (fe_has(job->texts, "__fake_wrong_dim__") ? 4 : 0);
    cJSON *m = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(m, fe_vector(fe_text(job->texts, i), dim, job->seed_xor));
    return m;
}

/* ---- request checks -------------------------------------------------------------- */

/* Checks v is a string, or (array_ok) an array of 1..max strings; empty
 * strings only when empty_ok. NULL, or what is wrong. */
static const char *fe_check_texts(const cJSON *v, size_t max, bool empty_ok)
{
    if (cJSON_IsString(v))
        return empty_ok || v->valuestring[0] != '\0' ? NULL : "an input is an empty string";
    if (!cJSON_IsArray(v))
        return "the inputs must be a string or an array of strings";
    size_t n = (size_t)cJSON_GetArraySize(v);
    if (n == 0)
        return "the inputs array is empty";
    if (n > max)
        return "too many inputs in one request";
    for (const cJSON *it = v->child; it != NULL; it = it->next) {
        if (!cJSON_IsString(it))
            return "every input must be a string";
        if (!empty_ok && it->valuestring[0] == '\0')
            return "an input is an empty string";
    }
    return NULL;
}

/* An optional field of the given cJSON type check; true when absent. */
static bool fe_opt(const cJSON *o, const char *name, cJSON_bool (*is)(const cJSON *))
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return v == NULL || is(v);
}

static bool fe_nonempty_string(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) && v->valuestring[0] != '\0';
}

/* An optional positive integer field into *out (unchanged when absent);
 * false when present and not one. */
static bool fe_opt_dim(const cJSON *o, const char *name, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (v == NULL)
        return true;
    if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > FE_DIM_MAX ||
        v->valuedouble != (double)(int)v->valuedouble)
        return false;
    *out = (int)v->valuedouble;
    return true;
}

static bool fe_bearer_ok(const struct fv_request *rq)
{
    return fv_auth_ok(rq, "authorization", "Bearer ");
}

/* ---- the APIs -------------------------------------------------------------------- */

static void fe_openai(struct fe_state *s, const struct fv_request *rq, struct fv_reply *rep)
{
    (void)s;
    const cJSON *j = rq->json;
    if (!fe_bearer_ok(rq)) {
        const char *got = fv_header(rq, "authorization");
        char msg[512];
        if (got != NULL && strncmp(got, "Bearer ", 7) == 0)
            got += 7;
        snprintf(msg, sizeof msg, "Incorrect API key provided: %s.", got != NULL ? got : "none");
        fe_error_as(FE_OPENAI, 401, msg, rep);
        return;
    }
    if (!cJSON_IsObject(j) || !fe_nonempty_string(j, "model")) {
        fe_error_as(FE_OPENAI, 400, "you must provide a model parameter", rep);
        return;
    }
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(j, "input");
    const char *bad = input == NULL ? "'input' is a required property"
                                    : fe_check_texts(input, FE_OPENAI_MAX_INPUTS, false);
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(j, "encoding_format");
    if (bad == NULL && fmt != NULL &&
        !(cJSON_IsString(fmt) && strcmp(fmt->valuestring, "float") == 0))
        bad = "this fake serves encoding_format float only";
    struct fe_job job = {.texts = input, .dim = s->dim};
    const char *model = cJSON_GetObjectItemCaseSensitive(j, "model")->valuestring;
    if (bad == NULL && cJSON_GetObjectItemCaseSensitive(j, "dimensions") != NULL &&
        strncmp(model, "text-embedding-3", 16) != 0)
        bad = "This model does not support specifying dimensions.";
    if (bad == NULL && !fe_opt_dim(j, "dimensions", &job.dim))
        bad = "dimensions must be an integer of at least 1";
    if (bad != NULL) {
        fe_error_as(FE_OPENAI, 400, bad, rep);
        return;
    }
    bool dup = fe_has(input, "__fake_dup_index__");
    cJSON *m = fe_matrix(&job);
    cJSON *data = cJSON_CreateArray();
    for (int i = cJSON_GetArraySize(m) - 1; i >= 0; i--) { /* reversed on purpose */
        cJSON *it = cJSON_CreateObject();
        cJSON_AddStringToObject(it, "object", "embedding");
        cJSON_AddNumberToObject(it, "index", dup ? 0 : i);
        cJSON_AddItemToObject(it, "embedding", cJSON_DetachItemFromArray(m, i));
        cJSON_AddItemToArray(data, it);
    }
    cJSON_Delete(m);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON_AddStringToObject(o, "model", model);
    cJSON_AddItemToObject(o, "data", data);
    cJSON *u = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", (double)fe_count(input));
    cJSON_AddNumberToObject(u, "total_tokens", (double)fe_count(input));
    fv_reply_json(rep, 200, o);
}

static bool fe_one_of(const char *s, const char *const *list)
{
    for (; *list != NULL; list++)
        if (strcmp(s, *list) == 0)
            return true;
    return false;
}

/* NULL, or what is wrong with Cohere's input_type and embedding_types. */
static const char *fe_cohere_types(const cJSON *j)
{
    static const char *const inputs[] = {"search_document", "search_query", "classification",
                                         "clustering",      "image",        NULL};
    static const char *const types[] = {"float",   "int8",   "uint8", "binary",
                                        "ubinary", "base64", NULL};
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(j, "input_type");
    if (!cJSON_IsString(it) || !fe_one_of(it->valuestring, inputs))
        return "invalid request: input_type must be one of search_document, search_query, "
               "classification, clustering, image";
    const cJSON *et = cJSON_GetObjectItemCaseSensitive(j, "embedding_types");
    if (et == NULL)
        return NULL;
    if (!cJSON_IsArray(et))
        return "invalid request: embedding_types must be an array";
    for (const cJSON *t = et->child; t != NULL; t = t->next)
        if (!cJSON_IsString(t) || !fe_one_of(t->valuestring, types))
            return "invalid request: unknown embedding type";
    if (cJSON_GetArraySize(et) != 1 || strcmp(et->child->valuestring, "float") != 0)
        return "this fake serves embedding_types [\"float\"] only";
    return NULL;
}

/* NULL, or what is wrong with output_dimension (embed-v4 only, 4 sizes). */
static const char *fe_cohere_dim(const cJSON *j, struct fe_job *job)
{
    const cJSON *od = cJSON_GetObjectItemCaseSensitive(j, "output_dimension");
    if (od == NULL)
        return NULL;
    const char *model = cJSON_GetObjectItemCaseSensitive(j, "model")->valuestring;
    if (strncmp(model, "embed-v4", 8) != 0)
        return "invalid request: output_dimension is only supported by embed-v4 and newer";
    int d = 0;
    if (!fe_opt_dim(j, "output_dimension", &d) || (d != 256 && d != 512 && d != 1024 && d != 1536))
        return "invalid request: output_dimension must be 256, 512, 1024 or 1536";
    job->dim = d;
    return NULL;
}

static void fe_cohere(struct fe_state *s, const struct fv_request *rq, struct fv_reply *rep)
{
    const cJSON *j = rq->json;
    if (!fe_bearer_ok(rq)) {
        fe_error_as(FE_COHERE, 401, "invalid api token", rep);
        return;
    }
    if (!cJSON_IsObject(j) || !fe_nonempty_string(j, "model")) {
        fe_error_as(FE_COHERE, 400, "invalid request: model is required", rep);
        return;
    }
    const cJSON *texts = cJSON_GetObjectItemCaseSensitive(j, "texts");
    struct fe_job job = {.texts = texts, .dim = s->dim};
    const char *bad = cJSON_IsArray(texts) ? fe_check_texts(texts, FE_COHERE_MAX_TEXTS, true)
                                           : "invalid request: texts must be an array";
    if (bad == NULL)
        bad = fe_cohere_types(j);
    if (bad == NULL)
        bad = fe_cohere_dim(j, &job);
    if (bad != NULL) {
        fe_error_as(FE_COHERE, 400, bad, rep);
        return;
    }
    const char *mode = cJSON_GetObjectItemCaseSensitive(j, "input_type")->valuestring;
    job.seed_xor = strcmp(mode, "search_query") == 0 ? 0xC0DE : 0;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", "fake-cohere-embed");
    cJSON_AddStringToObject(o, "response_type", "embeddings_by_type");
    cJSON *emb = cJSON_AddObjectToObject(o, "embeddings");
    cJSON_AddItemToObject(emb, "float", fe_matrix(&job));
    cJSON_AddItemToObject(o, "texts", cJSON_Duplicate(texts, true));
    cJSON *meta = cJSON_AddObjectToObject(o, "meta");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(meta, "api_version"), "version", "2");
    cJSON_AddNumberToObject(cJSON_AddObjectToObject(meta, "billed_units"), "input_tokens",
                            (double)fe_count(texts));
    fv_reply_json(rep, 200, o);
}

/* NULL, or what is wrong with a TEI / hosted body's optional fields. */
static const char *fe_hf_options(const cJSON *j)
{
    if (!fe_opt(j, "normalize", cJSON_IsBool) || !fe_opt(j, "truncate", cJSON_IsBool))
        return "normalize and truncate must be booleans";
    const cJSON *td = cJSON_GetObjectItemCaseSensitive(j, "truncation_direction");
    if (td != NULL && !(cJSON_IsString(td) && (strcmp(td->valuestring, "Left") == 0 ||
                                               strcmp(td->valuestring, "Right") == 0)))
        return "truncation_direction must be Left or Right";
    return NULL;
}

static void fe_tei(struct fe_state *s, const struct fv_request *rq, struct fv_reply *rep)
{
    const cJSON *j = rq->json;
    if (!fe_bearer_ok(rq)) {
        fv_reply_text(rep, 401, "text/plain", ""); /* TEI's 401 has no body */
        return;
    }
    const cJSON *inputs = cJSON_GetObjectItemCaseSensitive(j, "inputs");
    const char *bad =
        inputs == NULL ? "missing field `inputs`" : fe_check_texts(inputs, SIZE_MAX, true);
    if (bad == NULL)
        bad = fe_hf_options(j);
    if (bad != NULL) {
        fe_error_as(FE_TEI, 422, bad, rep);
        return;
    }
    if (fe_count(inputs) > (size_t)s->max_batch) {
        char msg[160];
        snprintf(msg, sizeof msg, "batch size %zu > maximum allowed batch size %d",
                 fe_count(inputs), s->max_batch);
        fe_error_as(FE_TEI, 413, msg, rep);
        return;
    }
    struct fe_job job = {.texts = inputs, .dim = s->dim};
    fv_reply_json(rep, 200, fe_matrix(&job));
}

/* True when path is [prefix]/models/{id}/pipeline/feature-extraction with
 * an id of one or two non-empty segments. */
static bool fe_hosted_path(const char *path)
{
    static const char tail[] = "/pipeline/feature-extraction";
    const char *m = strstr(path, "/models/");
    size_t pl = strlen(path), tl = sizeof tail - 1;
    if (m == NULL || pl < tl || strcmp(path + pl - tl, tail) != 0)
        return false;
    const char *id = m + 8, *end = path + pl - tl;
    if (end <= id || id[0] == '/' || end[-1] == '/')
        return false;
    int slashes = 0;
    for (const char *p = id; p < end; p++)
        if (*p == '/' && (++slashes > 1 || p[1] == '/'))
            return false;
    return true;
}

static void fe_hosted(struct fe_state *s, const struct fv_request *rq, struct fv_reply *rep)
{
    const cJSON *j = rq->json;
    const char *auth = fv_header(rq, "authorization");
    if (auth == NULL || strncmp(auth, "Bearer ", 7) != 0 || !fe_bearer_ok(rq)) {
        fe_error_as(FE_HF, 401, "Invalid credentials in Authorization header", rep);
        return;
    }
    const cJSON *inputs = cJSON_GetObjectItemCaseSensitive(j, "inputs");
    const char *bad =
        inputs == NULL ? "inputs is required" : fe_check_texts(inputs, SIZE_MAX, true);
    if (bad == NULL)
        bad = fe_hf_options(j);
    if (bad != NULL) {
        fe_error_as(FE_HF, 400, bad, rep);
        return;
    }
    struct fe_job job = {.texts = inputs, .dim = s->dim};
    cJSON *m = fe_matrix(&job);
    if (s->hf_flat && cJSON_GetArraySize(m) == 1) {
        cJSON *row = cJSON_DetachItemFromArray(m, 0);
        cJSON_Delete(m);
        m = row;
    }
    fv_reply_json(rep, 200, m);
}

static void fe_ollama(struct fe_state *s, const struct fv_request *rq, struct fv_reply *rep)
{
    const cJSON *j = rq->json;
    if (!cJSON_IsObject(j) || !fe_nonempty_string(j, "model")) {
        fe_error_as(FE_OLLAMA, 400, "model is required", rep);
        return;
    }
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(j, "input");
    struct fe_job job = {.texts = input, .dim = s->dim};
    const char *bad = input == NULL ? "input is required" : fe_check_texts(input, SIZE_MAX, true);
    if (bad == NULL && !fe_opt(j, "truncate", cJSON_IsBool))
        bad = "truncate must be a boolean";
    if (bad == NULL && !fe_opt_dim(j, "dimensions", &job.dim))
        bad = "dimensions must be a positive integer";
    if (bad != NULL) {
        fe_error_as(FE_OLLAMA, 400, bad, rep);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", cJSON_GetObjectItemCaseSensitive(j, "model")->valuestring);
    cJSON_AddItemToObject(o, "embeddings", fe_matrix(&job));
    cJSON_AddNumberToObject(o, "total_duration", 1000);
    cJSON_AddNumberToObject(o, "load_duration", 10);
    cJSON_AddNumberToObject(o, "prompt_eval_count", (double)fe_count(input));
    fv_reply_json(rep, 200, o);
}

/* The API a path belongs to; false when none. */
static bool fe_route(const char *path, enum fe_api *api)
{
    if (strcmp(path, "/embeddings") == 0 || strcmp(path, "/v1/embeddings") == 0)
        *api = FE_OPENAI;
    else if (strcmp(path, "/v2/embed") == 0)
        *api = FE_COHERE;
    else if (strcmp(path, "/embed") == 0)
        *api = FE_TEI;
    else if (strcmp(path, "/api/embed") == 0)
        *api = FE_OLLAMA;
    else if (fe_hosted_path(path))
        *api = FE_HF;
    else
        return false;
    return true;
}

static void embed_handle(void *st, const struct fv_request *rq, struct fv_reply *rep)
{
    struct fe_state *s = st;
    enum fe_api api = s->api;
    if (!fe_route(rq->path, &api)) {
        fe_error_as(s->api, 404, "fakevec embed: no such route", rep);
        return;
    }
    if (!s->api_fixed)
        s->api = api;
    if (strcmp(rq->method, "POST") != 0) {
        fe_error_as(api, 405, "method not allowed", rep);
        return;
    }
    switch (api) {
    case FE_OPENAI:
        fe_openai(s, rq, rep);
        break;
    case FE_COHERE:
        fe_cohere(s, rq, rep);
        break;
    case FE_TEI:
        fe_tei(s, rq, rep);
        break;
    case FE_HF:
        fe_hosted(s, rq, rep);
        break;
    case FE_OLLAMA:
        fe_ollama(s, rq, rep);
        break;
    }
}

static void embed_free(void *st)
{
    free(st);
}

const struct fv_service fv_embed_service = {
    .name = "embed",
    .init = embed_init,
    .handle = embed_handle,
    .error = embed_error,
    .reset = NULL, /* nothing is stored */
    .free = embed_free,
};
