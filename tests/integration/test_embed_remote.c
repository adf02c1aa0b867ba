/*
 * Tests of the remote embedders (memory/embed_remote.c) through the public
 * path, embedder_new() and embedder_embed(), against fakevec's embed
 * service (tests/server/fake_embed.c), which checks every request against
 * the documented API and answers deterministic, deliberately unnormalised
 * vectors. Most cases run the same check against all five endpoints
 * (OpenAI, Cohere, hosted Hugging Face, a TEI server, Ollama), since the
 * point of the shared plumbing is that they behave alike: vectors and their
 * order across batches, the request fields, authentication, retries of 429
 * and 5xx, an unreachable server, malformed replies, missing keys.
 *
 * The expected vectors are computed here with the fake's documented
 * formula (its header), then normalised as the client must. Retries wait
 * what the fake's Retry-After says (0.01 s), or the policy's 0.5 s for
 * "0"; nothing sleeps. Keys are test strings; the auth cases never print a
 * message that might hold one.
 */
#include "../unit/testutil.h"
#include "../unit/tu_config.h"
#include "fakevec_harness.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "memchat/engine.h"
#include "memory/embed.h"
#include "net/rest.h"

#define KEY              "test-key-123456"
#define RIGHT_KEY        "right-key-987654"
#define DIM              16
#define DIM_S            "16"
#define COHERE_QUERY_XOR 0xC0DEULL

/* One endpoint as the cases iterate them. */
struct pcase {
    const char *provider; /* EMBEDDINGS_PROVIDER */
    const char *api;      /* the fake's --api (its error shape) */
    const char *suffix;   /* appended to the fake's URL for EMBEDDINGS_BASE_URL */
    const char *key_var;  /* NULL: the embedder sends no key */
    bool key_required;    /* the success cases set the key only when required */
    const char *path;     /* the path the requests must reach */
    const char *field;    /* the body's array of texts */
};

static const struct pcase cases[] = {
    {"openai", "openai", "/v1", "OPENAI_API_KEY", true, "/v1/embeddings", "input"},
    {"cohere", "cohere", "", "COHERE_API_KEY", true, "/v2/embed", "texts"},
    {"huggingface", "hf", "/hf-inference", "HF_API_TOKEN", true,
     "/hf-inference/models/intfloat/multilingual-e5-large/pipeline/feature-extraction", "inputs"},
    {"huggingface", "tei", "", "HF_API_TOKEN", false, "/embed", "inputs"},
    {"ollama", "ollama", "", NULL, false, "/api/embed", "input"},
};
#define N_CASES (sizeof cases / sizeof cases[0])

/* The group's scratch dir for configs. */
static char *g_dir;

static int group_setup(void **state)
{
    (void)state;
    if (mc_global_init() != 0)
        return -1;
    g_dir = tu_mkdtemp();
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    tu_rmtree(g_dir);
    free(g_dir);
    return 0;
}

/* ---- helpers --------------------------------------------------------------------- */

/* A fake of pc's API with --dim DIM; key: the credential it accepts. */
static struct mock *start_fake(const struct pcase *pc, const char *key)
{
    const char *opts[] = {"--api", pc->api, "--dim", DIM_S, "--hf-flat", NULL};
    return fv_start("embed", key, opts);
}

/* The embedder of pc at base url (+ pc's suffix), with key (NULL: none)
 * and extra flags; NULL with err when embedder_new refuses. */
static struct embedder *try_embedder(const struct pcase *pc, const char *url, const char *key,
                                     const char *const *extra, size_t n_extra, char *err,
                                     size_t errlen)
{
    char prov[64], base[160], keyf[96];
    snprintf(prov, sizeof prov, "EMBEDDINGS_PROVIDER=%s", pc->provider);
    snprintf(base, sizeof base, "EMBEDDINGS_BASE_URL=%s%s", url != NULL ? url : "",
             url != NULL ? pc->suffix : "");
    const char *flags[14] = {prov, base, "EMBEDDINGS_DIMENSION=" DIM_S};
    size_t n = 3;
    if (key != NULL && pc->key_var != NULL) {
        snprintf(keyf, sizeof keyf, "%s=%s", pc->key_var, key);
        flags[n++] = keyf;
    }
    for (size_t i = 0; i < n_extra && n < 14; i++)
        flags[n++] = extra[i];
    struct config *cfg = tu_config(g_dir, flags, n);
    struct embedder *e = embedder_new(cfg, err, errlen);
    config_free(cfg);
    return e;
}

/* As try_embedder, failing the test when it is refused. */
static struct embedder *make_embedder(const struct pcase *pc, const char *url, const char *key,
                                      const char *const *extra, size_t n_extra)
{
    char err[512] = "";
    struct embedder *e = try_embedder(pc, url, key, extra, n_extra, err, sizeof err);
    if (e == NULL)
        fail_msg("%s embedder_new: %s", pc->api, err);
    return e;
}

/* The key the success cases give pc. */
static const char *ok_key(const struct pcase *pc)
{
    return pc->key_required ? KEY : NULL;
}

/* The fake's vector of text (its header's formula), normalised as the
 * client does: each value made a float, then scaled to norm 1. */
static void expected_vector(const char *text, uint64_t seed_xor, int dim, float *out)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const char *s = text; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    h ^= seed_xor;
    double sum = 0.0;
    for (int j = 0; j < dim; j++) {
        uint64_t z = h + (uint64_t)(j + 1) * 0x9E3779B97F4A7C15ULL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        z ^= z >> 31;
        out[j] = (float)(((double)(z >> 11) / 9007199254740992.0 * 2.0 - 1.0) * 3.0);
        sum += (double)out[j] * (double)out[j];
    }
    for (int j = 0; j < dim; j++)
        out[j] = (float)((double)out[j] / sqrt(sum));
}

/* Fails unless row (dim floats) is text's expected vector. */
static void assert_vector(const float *row, const char *text, uint64_t seed_xor, int dim)
{
    float *want = calloc((size_t)dim, sizeof *want);
    assert_non_null(want);
    expected_vector(text, seed_xor, dim, want);
    double norm = 0.0;
    for (int j = 0; j < dim; j++) {
        if (fabsf(row[j] - want[j]) > 1e-6f)
            fail_msg("vector of '%s': float %d is %g, expected %g", text, j, (double)row[j],
                     (double)want[j]);
        norm += (double)row[j] * (double)row[j];
    }
    assert_true(fabs(norm - 1.0) < 1e-5);
    free(want);
}

/* Every request the fake logged (caller deletes) and their number. */
static cJSON *logged(const struct mock *m, size_t *n)
{
    cJSON *all = NULL;
    *n = mock_requests(m, &all);
    return all;
}

static size_t logged_count(const struct mock *m)
{
    size_t n = 0;
    cJSON_Delete(logged(m, &n));
    return n;
}

/* Request i's body parsed (caller deletes). */
static cJSON *logged_body(const cJSON *all, size_t i)
{
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(all, (int)i), "body");
    assert_true(cJSON_IsString(b));
    cJSON *body = cJSON_Parse(b->valuestring);
    assert_non_null(body);
    return body;
}

static const char *logged_header(const cJSON *all, size_t i, const char *name)
{
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(all, (int)i), "headers");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(h, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const char *logged_path(const cJSON *all, size_t i)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(all, (int)i), "path");
    assert_true(cJSON_IsString(p));
    return p->valuestring;
}

static const char *str_field(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Fails unless err contains needle (err is shown: never use it where a
 * key could be). */
static void assert_has(const char *err, const char *needle)
{
    if (strstr(err, needle) == NULL)
        fail_msg("'%s' is not in the message: %s", needle, err);
}

/* n texts "text number I" (caller frees with free_texts). */
static char **make_texts(size_t n)
{
    char **t = calloc(n, sizeof *t);
    assert_non_null(t);
    for (size_t i = 0; i < n; i++) {
        t[i] = malloc(32);
        assert_non_null(t[i]);
        snprintf(t[i], 32, "text number %zu", i);
    }
    return t;
}

static void free_texts(char **t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(t[i]);
    free(t);
}

/* Embeds texts[0..n) in mode; the rc, out (n * dim, caller frees) and err. */
static int embed(struct embedder *e, enum embed_mode mode, const char *const *texts, size_t n,
                 float **out, char *err, size_t errlen)
{
    *out = calloc(n * (size_t)e->dim, sizeof **out);
    assert_non_null(*out);
    err[0] = '\0';
    return embedder_embed(e, mode, texts, n, NULL, *out, err, errlen);
}

/* ---- success ----------------------------------------------------------------------- */

/* The provider-specific fields of one request body. */
static void check_body(const struct pcase *pc, const cJSON *body, const cJSON *all, size_t i)
{
    const char *auth = logged_header(all, i, "authorization");
    if (pc->key_required) {
        assert_non_null(auth);
        assert_string_equal(auth, "Bearer " KEY);
    } else {
        assert_null(auth);
    }
    if (strcmp(pc->api, "openai") == 0) {
        assert_string_equal(str_field(body, "model"), "text-embedding-3-small");
        assert_string_equal(str_field(body, "encoding_format"), "float");
        assert_int_equal(cJSON_GetObjectItemCaseSensitive(body, "dimensions")->valueint, DIM);
    } else if (strcmp(pc->api, "cohere") == 0) {
        assert_string_equal(str_field(body, "model"), "embed-v4.0");
        assert_string_equal(str_field(body, "input_type"), "search_document");
        const cJSON *et = cJSON_GetObjectItemCaseSensitive(body, "embedding_types");
        assert_int_equal(cJSON_GetArraySize(et), 1);
        assert_string_equal(et->child->valuestring, "float");
        assert_null(cJSON_GetObjectItemCaseSensitive(body, "output_dimension"));
    } else if (strcmp(pc->api, "ollama") == 0) {
        assert_string_equal(str_field(body, "model"), "nomic-embed-text");
        assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "truncate")));
        assert_null(cJSON_GetObjectItemCaseSensitive(body, "dimensions"));
    } else {
        assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "normalize")));
        bool tei = strcmp(pc->api, "tei") == 0;
        assert_int_equal(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "truncate")), tei);
    }
}

/* 70 texts in batches of 32: three requests, in order, each with the
 * documented fields, and every vector the expected normalised one. */
static void success_case(const struct pcase *pc)
{
    struct mock *m = start_fake(pc, ok_key(pc));
    const char *extra[] = {"EMBEDDINGS_BATCH_SIZE=32"};
    struct embedder *e = make_embedder(pc, fv_url(m), ok_key(pc), extra, 1);
    assert_true(e->remote);
    assert_string_equal(e->name, pc->provider);
    assert_int_equal(e->dim, DIM);
    assert_int_equal(e->max_batch, 32);
    assert_true(e->max_bytes >= 8192);
    const size_t n = 70;
    char **texts = make_texts(n);
    float *out = NULL;
    char err[512];
    if (embed(e, EMBED_DOCUMENT, (const char *const *)texts, n, &out, err, sizeof err) != 0)
        fail_msg("%s: %s", pc->api, err);
    assert_int_equal(e->last_fail, REST_OK);
    for (size_t i = 0; i < n; i++)
        assert_vector(out + i * DIM, texts[i], 0, DIM);

    size_t count = 0;
    cJSON *all = logged(m, &count);
    assert_int_equal(count, 3);
    static const size_t sizes[] = {32, 32, 6};
    size_t next = 0;
    for (size_t r = 0; r < 3; r++) {
        assert_string_equal(logged_path(all, r), pc->path);
        cJSON *body = logged_body(all, r);
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(body, pc->field);
        assert_int_equal(cJSON_GetArraySize(arr), sizes[r]);
        for (const cJSON *t = arr->child; t != NULL; t = t->next)
            assert_string_equal(t->valuestring, texts[next++]);
        check_body(pc, body, all, r);
        cJSON_Delete(body);
    }
    cJSON_Delete(all);
    free(out);
    free_texts(texts, n);
    embedder_free(e);
    mock_stop(m);
}

static void t_success(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_CASES; i++)
        success_case(&cases[i]);
}

/* The defaults: model names and per-provider batch sizes. */
static void t_defaults(void **state)
{
    (void)state;
    static const size_t batch[] = {256, 96, 32, 32, 64};
    static const char *const model[] = {"text-embedding-3-small", "embed-v4.0",
                                        "intfloat/multilingual-e5-large",
                                        "intfloat/multilingual-e5-large", "nomic-embed-text"};
    for (size_t i = 0; i < N_CASES; i++) {
        struct embedder *e = make_embedder(&cases[i], "http://127.0.0.1:9", KEY, NULL, 0);
        assert_int_equal(e->max_batch, batch[i]);
        assert_string_equal(e->model, model[i]);
        assert_true(e->remote);
        embedder_free(e);
    }
}

/* Cohere: documents go as search_document, queries as search_query, and
 * the two modes give the fake's two predictable vectors. */
static void t_cohere_modes(void **state)
{
    (void)state;
    const struct pcase *pc = &cases[1];
    struct mock *m = start_fake(pc, ok_key(pc));
    struct embedder *e = make_embedder(pc, fv_url(m), KEY, NULL, 0);
    const char *texts[] = {"what is the plan?", "the launch is on Monday"};
    float *q = NULL, *d = NULL;
    char err[512];
    assert_int_equal(embed(e, EMBED_QUERY, texts, 2, &q, err, sizeof err), 0);
    assert_int_equal(embed(e, EMBED_DOCUMENT, texts, 2, &d, err, sizeof err), 0);
    for (size_t i = 0; i < 2; i++) {
        assert_vector(q + i * DIM, texts[i], COHERE_QUERY_XOR, DIM);
        assert_vector(d + i * DIM, texts[i], 0, DIM);
    }
    size_t count = 0;
    cJSON *all = logged(m, &count);
    assert_int_equal(count, 2);
    cJSON *b0 = logged_body(all, 0), *b1 = logged_body(all, 1);
    assert_string_equal(str_field(b0, "input_type"), "search_query");
    assert_string_equal(str_field(b1, "input_type"), "search_document");
    cJSON_Delete(b0);
    cJSON_Delete(b1);
    cJSON_Delete(all);
    free(q);
    free(d);
    embedder_free(e);
    mock_stop(m);
}

/* Cohere embed-v4 at one of its sizes is asked for it (output_dimension). */
static void t_cohere_output_dimension(void **state)
{
    (void)state;
    const struct pcase *pc = &cases[1];
    struct mock *m = start_fake(pc, ok_key(pc));
    const char *extra[] = {"EMBEDDINGS_DIMENSION=256"};
    struct embedder *e = make_embedder(pc, fv_url(m), KEY, extra, 1);
    const char *texts[] = {"one"};
    float *out = NULL;
    char err[512];
    if (embed(e, EMBED_DOCUMENT, texts, 1, &out, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_vector(out, "one", 0, 256);
    size_t count = 0;
    cJSON *all = logged(m, &count);
    cJSON *b = logged_body(all, 0);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(b, "output_dimension")->valueint, 256);
    cJSON_Delete(b);
    cJSON_Delete(all);
    free(out);
    embedder_free(e);
    mock_stop(m);
}

/* OpenAI: "dimensions" only for text-embedding-3* (the fake refuses it
 * for ada-002), and no key is needed for a server on this machine. */
static void t_openai_model_and_loopback(void **state)
{
    (void)state;
    const struct pcase *pc = &cases[0];
    struct mock *m = start_fake(pc, NULL);
    const char *extra[] = {"EMBEDDINGS_MODEL=text-embedding-ada-002"};
    struct embedder *e = make_embedder(pc, fv_url(m), NULL, extra, 1);
    const char *texts[] = {"one", "two"};
    float *out = NULL;
    char err[512];
    if (embed(e, EMBED_DOCUMENT, texts, 2, &out, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_vector(out + DIM, "two", 0, DIM);
    size_t count = 0;
    cJSON *all = logged(m, &count);
    cJSON *b = logged_body(all, 0);
    assert_null(cJSON_GetObjectItemCaseSensitive(b, "dimensions"));
    assert_string_equal(str_field(b, "model"), "text-embedding-ada-002");
    assert_null(logged_header(all, 0, "authorization"));
    cJSON_Delete(b);
    cJSON_Delete(all);
    free(out);
    embedder_free(e);
    mock_stop(m);
}

/* OpenAI: a batch whose texts sum past 300,000 bytes (so possibly 300k
 * tokens) is split over two requests, order kept. */
static void t_openai_request_bytes(void **state)
{
    (void)state;
    const struct pcase *pc = &cases[0];
    struct mock *m = start_fake(pc, ok_key(pc));
    struct embedder *e = make_embedder(pc, fv_url(m), KEY, NULL, 0);
    const size_t n = 40, len = 8000;
    char **texts = calloc(n, sizeof *texts);
    assert_non_null(texts);
    for (size_t i = 0; i < n; i++) {
        texts[i] = malloc(len + 1);
        assert_non_null(texts[i]);
        memset(texts[i], 'a' + (int)(i % 26), len);
        snprintf(texts[i], 16, "%zu ", i);
        texts[i][strlen(texts[i])] = ' ';
        texts[i][len] = '\0';
    }
    float *out = NULL;
    char err[512];
    if (embed(e, EMBED_DOCUMENT, (const char *const *)texts, n, &out, err, sizeof err) != 0)
        fail_msg("%s", err);
    for (size_t i = 0; i < n; i++)
        assert_vector(out + i * DIM, texts[i], 0, DIM);
    size_t count = 0;
    cJSON *all = logged(m, &count);
    assert_int_equal(count, 2);
    cJSON *b = logged_body(all, 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(b, "input")), 37);
    cJSON_Delete(b);
    cJSON_Delete(all);
    free(out);
    free_texts(texts, n);
    embedder_free(e);
    mock_stop(m);
}

/* The hosted API may answer one text with a flat vector (--hf-flat). */
static void t_hf_flat_vector(void **state)
{
    (void)state;
    const struct pcase *pc = &cases[2];
    struct mock *m = start_fake(pc, ok_key(pc));
    struct embedder *e = make_embedder(pc, fv_url(m), KEY, NULL, 0);
    const char *texts[] = {"alone"};
    float *out = NULL;
    char err[512];
    if (embed(e, EMBED_QUERY, texts, 1, &out, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_vector(out, "alone", 0, DIM);
    free(out);
    embedder_free(e);
    mock_stop(m);
}

/* A TEI server refuses more inputs than its --max-client-batch-size with
 * 413: a refusal, not retried, named. */
static void t_tei_batch_too_big(void **state)
{
    (void)state;
    const struct pcase *pc = &cases[3];
    struct mock *m = start_fake(pc, NULL);
    const char *extra[] = {"EMBEDDINGS_BATCH_SIZE=40"};
    struct embedder *e = make_embedder(pc, fv_url(m), NULL, extra, 1);
    char **texts = make_texts(40);
    float *out = NULL;
    char err[512];
    assert_int_equal(
        embed(e, EMBED_DOCUMENT, (const char *const *)texts, 40, &out, err, sizeof err), -1);
    assert_int_equal(e->last_fail, REST_REFUSED);
    assert_has(err, "huggingface embedder");
    assert_has(err, "HTTP 413");
    assert_has(err, "maximum allowed batch size 32");
    assert_int_equal(logged_count(m), 1);
    free(out);
    free_texts(texts, 40);
    embedder_free(e);
    mock_stop(m);
}

/* An all-zero vector stays zero (normalising must not divide by 0). */
static void t_zero_vector(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_CASES; i++) {
        struct mock *m = start_fake(&cases[i], ok_key(&cases[i]));
        struct embedder *e = make_embedder(&cases[i], fv_url(m), ok_key(&cases[i]), NULL, 0);
        const char *texts[] = {"__fake_zero__", "x"};
        float *out = NULL;
        char err[512];
        if (embed(e, EMBED_DOCUMENT, texts, 2, &out, err, sizeof err) != 0)
            fail_msg("%s: %s", cases[i].api, err);
        for (int j = 0; j < DIM; j++)
            assert_true(out[j] == 0.0f);
        assert_vector(out + DIM, "x", 0, DIM);
        free(out);
        embedder_free(e);
        mock_stop(m);
    }
}

/* ---- failures ---------------------------------------------------------------------- */

/* A wrong key: 401 named with the embedder, never retried, the key in no
 * message (the OpenAI fake quotes the key it got, as the real one does). */
static void t_auth(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_CASES; i++) {
        const struct pcase *pc = &cases[i];
        if (pc->key_var == NULL)
            continue; /* Ollama sends no key; a local server takes anything */
        struct mock *m = start_fake(pc, RIGHT_KEY);
        struct embedder *e = make_embedder(pc, fv_url(m), KEY, NULL, 0);
        const char *texts[] = {"hello"};
        float *out = NULL;
        char err[512];
        assert_int_equal(embed(e, EMBED_DOCUMENT, texts, 1, &out, err, sizeof err), -1);
        assert_int_equal(e->last_fail, REST_AUTH);
        char svc[64];
        snprintf(svc, sizeof svc, "%s embedder", pc->provider);
        assert_non_null(strstr(err, svc));
        assert_non_null(strstr(err, "HTTP 401"));
        assert_null(strstr(err, KEY));
        assert_null(strstr(err, RIGHT_KEY));
        assert_null(strstr(err, "hello"));
        assert_int_equal(logged_count(m), 1);
        free(out);
        embedder_free(e);
        mock_stop(m);
    }
}

/* Runs one text through pc's embedder against m with MEMCHAT_MAX_RETRIES
 * retries; the rc, and err. */
static int embed_one(const struct pcase *pc, struct mock *m, const char *retries, char *err,
                     size_t errlen, int *last_fail)
{
    char r[64];
    snprintf(r, sizeof r, "MEMCHAT_MAX_RETRIES=%s", retries);
    const char *extra[] = {r};
    struct embedder *e = make_embedder(pc, fv_url(m), ok_key(pc), extra, 1);
    const char *texts[] = {"hello"};
    float *out = NULL;
    int rc = embed(e, EMBED_DOCUMENT, texts, 1, &out, err, errlen);
    if (rc == 0)
        assert_vector(out, "hello", 0, DIM);
    *last_fail = e->last_fail;
    free(out);
    embedder_free(e);
    return rc;
}

/* 429 once (Retry-After: 0), then success: two requests, ok. */
static void t_rate_then_ok(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_CASES; i++) {
        struct mock *m = start_fake(&cases[i], ok_key(&cases[i]));
        fv_fail(m, "{\"status\":429,\"count\":1,\"retry_after\":\"0\",\"message\":\"slow down\"}");
        char err[512];
        int lf = -1;
        if (embed_one(&cases[i], m, "2", err, sizeof err, &lf) != 0)
            fail_msg("%s: %s", cases[i].api, err);
        assert_int_equal(lf, REST_OK);
        assert_int_equal(logged_count(m), 2);
        mock_stop(m);
    }
}

/* A status that persists: 1 + MEMCHAT_MAX_RETRIES requests, then the
 * failure class and a message naming the embedder and the status. */
static void persisting_case(int status, enum rest_fail want)
{
    char fail[160], code[32];
    snprintf(fail, sizeof fail,
             "{\"status\":%d,\"count\":10,\"retry_after\":\"0.01\",\"message\":\"injected\"}",
             status);
    snprintf(code, sizeof code, "HTTP %d", status);
    for (size_t i = 0; i < N_CASES; i++) {
        struct mock *m = start_fake(&cases[i], ok_key(&cases[i]));
        fv_fail(m, fail);
        char err[512];
        int lf = -1;
        assert_int_equal(embed_one(&cases[i], m, "2", err, sizeof err, &lf), -1);
        assert_int_equal(lf, want);
        assert_has(err, cases[i].provider);
        assert_has(err, code);
        assert_has(err, "injected");
        assert_int_equal(logged_count(m), 3);
        mock_stop(m);
    }
}

static void t_rate_persisting(void **state)
{
    (void)state;
    persisting_case(429, REST_RATE);
}

static void t_server_error(void **state)
{
    (void)state;
    persisting_case(500, REST_SERVER);
}

/* A loopback port nobody listens on. */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void t_unreachable(void **state)
{
    (void)state;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", closed_port());
    for (size_t i = 0; i < N_CASES; i++) {
        const char *extra[] = {"MEMCHAT_MAX_RETRIES=0"};
        struct embedder *e = make_embedder(&cases[i], url, ok_key(&cases[i]), extra, 1);
        const char *texts[] = {"hello"};
        float *out = NULL;
        char err[512];
        assert_int_equal(embed(e, EMBED_DOCUMENT, texts, 1, &out, err, sizeof err), -1);
        assert_int_equal(e->last_fail, REST_UNREACHABLE);
        assert_has(err, cases[i].provider);
        free(out);
        embedder_free(e);
    }
}

/* One malformed reply: -1, REST_BAD_REPLY, a message holding needle and
 * no text; a good call afterwards clears last_fail. */
static void malformed_case(const struct pcase *pc, struct mock *m, struct embedder *e,
                           const char *magic, const char *needle)
{
    (void)m;
    const char *texts[] = {"alpha", magic, "gamma"};
    float *out = NULL;
    char err[512];
    assert_int_equal(embed(e, EMBED_DOCUMENT, texts, 3, &out, err, sizeof err), -1);
    assert_int_equal(e->last_fail, REST_BAD_REPLY);
    assert_has(err, pc->provider);
    assert_has(err, needle);
    assert_has(err, pc->path);
    assert_null(strstr(err, "alpha"));
    assert_null(strstr(err, magic));
    free(out);
    assert_int_equal(embed(e, EMBED_DOCUMENT, texts, 1, &out, err, sizeof err), 0);
    assert_int_equal(e->last_fail, REST_OK);
    free(out);
}

static void t_malformed(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_CASES; i++) {
        const struct pcase *pc = &cases[i];
        struct mock *m = start_fake(pc, ok_key(pc));
        struct embedder *e = make_embedder(pc, fv_url(m), ok_key(pc), NULL, 0);
        malformed_case(pc, m, e, "__fake_wrong_count__", "2 vectors for 3 texts");
        malformed_case(pc, m, e, "__fake_wrong_dim__",
                       "the model returned 20 floats per vector; EMBEDDINGS_DIMENSION is 16 "
                       "(set it to 20, or choose a model with 16)");
        malformed_case(pc, m, e, "__fake_nan__", "vector 1 holds a value that is not a finite");
        if (strcmp(pc->api, "openai") == 0)
            malformed_case(pc, m, e, "__fake_dup_index__", "index 0 appears twice");
        embedder_free(e);
        mock_stop(m);
    }
}

/* Missing keys and bad settings are refused by embedder_new, naming the
 * variable, without touching the network. */
static void t_config_errors(void **state)
{
    (void)state;
    char err[512];
    /* OpenAI's own server (the default base) needs the key */
    const struct pcase *openai = &cases[0];
    assert_null(try_embedder(openai, NULL, NULL, NULL, 0, err, sizeof err));
    assert_has(err, "OPENAI_API_KEY");
    assert_null(try_embedder(openai, "https://api.example.com", NULL, NULL, 0, err, sizeof err));
    assert_has(err, "OPENAI_API_KEY");
    assert_null(try_embedder(&cases[1], NULL, NULL, NULL, 0, err, sizeof err));
    assert_has(err, "COHERE_API_KEY");
    assert_null(try_embedder(&cases[2], NULL, NULL, NULL, 0, err, sizeof err));
    assert_has(err, "HF_API_TOKEN");
    /* a TEI server and Ollama need none */
    struct embedder *e =
        try_embedder(&cases[3], "http://tei.example:8080", NULL, NULL, 0, err, sizeof err);
    assert_non_null(e);
    embedder_free(e);
    e = try_embedder(&cases[4], "http://127.0.0.1:11434", NULL, NULL, 0, err, sizeof err);
    assert_non_null(e);
    embedder_free(e);

    const char *big[] = {"EMBEDDINGS_BATCH_SIZE=200"};
    assert_null(try_embedder(&cases[1], NULL, KEY, big, 1, err, sizeof err));
    assert_has(err, "EMBEDDINGS_BATCH_SIZE");
    assert_has(err, "96");
    const char *model[] = {"EMBEDDINGS_MODEL=../../admin"};
    assert_null(try_embedder(&cases[2], NULL, KEY, model, 1, err, sizeof err));
    assert_has(err, "EMBEDDINGS_MODEL");
    /* the error never holds the key */
    assert_null(strstr(err, KEY));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_success),
        cmocka_unit_test(t_defaults),
        cmocka_unit_test(t_cohere_modes),
        cmocka_unit_test(t_cohere_output_dimension),
        cmocka_unit_test(t_openai_model_and_loopback),
        cmocka_unit_test(t_openai_request_bytes),
        cmocka_unit_test(t_hf_flat_vector),
        cmocka_unit_test(t_tei_batch_too_big),
        cmocka_unit_test(t_zero_vector),
        cmocka_unit_test(t_auth),
        cmocka_unit_test(t_rate_then_ok),
        cmocka_unit_test(t_rate_persisting),
        cmocka_unit_test(t_server_error),
        cmocka_unit_test(t_unreachable),
        cmocka_unit_test(t_malformed),
        cmocka_unit_test(t_config_errors),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
