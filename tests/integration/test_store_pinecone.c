/*
 * The Pinecone store (memory/store_pinecone.c) against fakevec's pinecone
 * service (tests/server/fake_pinecone.c), which checks every request as the
 * documentation describes it: the host lookup through the control plane,
 * the index's dimension and metric, the shared conformance suite and the
 * isolation property test (tests/unit/store_suite.h), queries under filters
 * that Pinecone's language must express exactly as filter_match reads them
 * (typed values, missing keys, lists and objects in metadata) on the three
 * query paths (values inline, fetched by id, a full scan beyond topK's
 * limit), deletes that leave other tenants' equal ids alone, the wire
 * format in the fake's log, and every failure class with no key in any
 * message. Loopback only; each test starts its own fake.
 */
#include "config.h"

#include "../unit/store_suite.h"
#include "../unit/tu_config.h"
#include "fakevec_harness.h"

#include <cJSON.h>

#include "memory/store.h"
#include "net/rest.h"

#define KEY "pk-test-5ecret-do-not-print"

struct fx {
    char *dir;
    struct mock *m;
    struct config *cfg;
    struct vstore *s;
};

/* Starts the fake with options and a store configured by flags (the
 * controller or host is added by the caller through the flags). */
static void fx_open(struct fx *x, const char *fake_key, const char *const *options,
                    const char *const *flags, size_t n_flags)
{
    memset(x, 0, sizeof *x);
    x->dir = tu_mkdtemp();
    x->m = fv_start("pinecone", fake_key, options);
    char ctl[256];
    snprintf(ctl, sizeof ctl, "PINECONE_CONTROLLER_URL=%s", fv_url(x->m));
    const char *all[14] = {"VECTOR_DB_PROVIDER=pinecone", "PINECONE_API_KEY=" KEY,
                           "PINECONE_INDEX_NAME=memchat", ctl,
                           "MEMCHAT_MAX_RETRIES=1",       "MEMORY_REMOTE_TIMEOUT=5s"};
    size_t n = 6;
    for (size_t i = 0; i < n_flags && n < 14; i++)
        all[n++] = flags[i];
    x->cfg = tu_config(x->dir, all, n);
    char err[512];
    x->s = store_pinecone_new(x->cfg, err, sizeof err);
    if (x->s == NULL)
        fail_msg("store_pinecone_new: %s", err);
    assert_true(x->s->remote);
}

static void fx_close(struct fx *x)
{
    store_free(x->s);
    config_free(x->cfg);
    mock_stop(x->m);
    tu_rmtree(x->dir);
    free(x->dir);
}

static const char *const dim16[] = {"--dim", "16", NULL};

/* --- connection ----------------------------------------------------------- */

/* The host comes from the control plane once; every data-plane request
 * carries the key, the API version and the tenant's namespace. */
static void host_lookup_and_wire(void **state)
{
    (void)state;
    struct fx x;
    fx_open(&x, KEY, dim16, NULL, 0);
    ns_make(x.s, "acme");
    struct tmem m;
    tm_init(&m, "acme", 1, "hello", "u1", 1000, 1);
    upsert_ok(x.s, &m, 1);
    struct mem_records out = query_ok(x.s, "acme", m.vec, 3, NULL);
    assert_int_equal(out.n, 1);
    mem_records_free(&out);

    cJSON *log = NULL;
    size_t n = mock_requests(x.m, &log);
    assert_true(n >= 4);
    size_t lookups = 0;
    cJSON *r;
    cJSON_ArrayForEach(r, log)
    {
        const char *path = cJSON_GetObjectItem(r, "path")->valuestring;
        const char *query = cJSON_GetObjectItem(r, "query")->valuestring;
        cJSON *h = cJSON_GetObjectItem(r, "headers");
        assert_string_equal(cJSON_GetObjectItem(h, "api-key")->valuestring, KEY);
        assert_string_equal(cJSON_GetObjectItem(h, "x-pinecone-api-version")->valuestring,
                            "2025-10");
        if (strcmp(path, "/indexes/memchat") == 0) {
            lookups++;
            continue;
        }
        if (strcmp(path, "/describe_index_stats") == 0)
            continue;
        const char *body = cJSON_GetObjectItem(r, "body")->valuestring;
        bool named = strstr(query, "namespace=acme") != NULL ||
                     strstr(body, "\"namespace\":\"acme\"") != NULL;
        if (!named)
            fail_msg("request %s %s %s names no namespace", path, query, body);
    }
    assert_int_equal(lookups, 1);
    cJSON_Delete(log);

    struct store_health h;
    char err[512];
    assert_int_equal(x.s->ops->health(x.s, &h, err, sizeof err), 0);
    assert_int_equal(h.fixed_dim, 16);
    assert_non_null(strstr(h.where, "http://127.0.0.1:"));
    fx_close(&x);
}

/* A namespace of another dimension than the index's is refused naming both. */
static void dimension_mismatch(void **state)
{
    (void)state;
    static const char *const dim8[] = {"--dim", "8", NULL};
    struct fx x;
    fx_open(&x, NULL, dim8, NULL, 0);
    struct store_ns ns = {.embedder = "openai", .model = "m", .dim = 16};
    char err[512];
    assert_int_equal(x.s->ops->ns_create(x.s, "acme", &ns, err, sizeof err), -1);
    assert_non_null(strstr(err, "dimension 16"));
    assert_non_null(strstr(err, "dimension 8"));
    assert_non_null(strstr(err, "acme"));
    assert_int_equal(x.s->last_fail, REST_OK); /* a setting, not the network */
    fx_close(&x);
}

static void environment_and_metric(void **state)
{
    (void)state;
    static const char *const env[] = {"PINECONE_ENVIRONMENT=us-west1-gcp"};
    struct fx x;
    fx_open(&x, NULL, dim16, env, 1);
    struct store_ns got;
    char err[512];
    assert_int_equal(x.s->ops->ns_get(x.s, "acme", &got, err, sizeof err), -1);
    assert_non_null(strstr(err, "another environment"));
    assert_non_null(strstr(err, "us-west1-gcp"));
    fx_close(&x);

    static const char *const eu[] = {"--dim", "16", "--metric", "euclidean", NULL};
    fx_open(&x, NULL, eu, NULL, 0);
    assert_int_equal(x.s->ops->ns_get(x.s, "acme", &got, err, sizeof err), -1);
    assert_non_null(strstr(err, "euclidean"));
    fx_close(&x);

    static const char *const cos[] = {"--dim", "16", "--metric", "cosine", NULL};
    fx_open(&x, NULL, cos, NULL, 0);
    assert_int_equal(x.s->ops->ns_get(x.s, "acme", &got, err, sizeof err), 1);
    fx_close(&x);
}

/* --- the shared suite ------------------------------------------------------- */

static void contract(void **state)
{
    (void)state;
    struct fx x;
    fx_open(&x, KEY, dim16, NULL, 0);
    suite_contract(x.s);
    fx_close(&x);
}

static void isolation(void **state)
{
    (void)state;
    struct fx x;
    fx_open(&x, KEY, dim16, NULL, 0);
    char err[512];
    struct vstore *more[2];
    for (int i = 0; i < 2; i++) {
        more[i] = store_pinecone_new(x.cfg, err, sizeof err);
        assert_non_null(more[i]);
    }
    struct vstore *stores[] = {x.s, more[0], more[1]};
    suite_isolation(stores, 3);
    store_free(more[0]);
    store_free(more[1]);
    fx_close(&x);
}

/* --- filters ---------------------------------------------------------------- */

static const char *const metas[] = {
    "",
    "{\"topic\":\"work\",\"n\":1}",
    "{\"topic\":\"home\",\"n\":\"1\"}",
    "{\"n\":true,\"flag\":false}",
    "{\"topic\":[\"work\",\"home\"],\"n\":2.5}",
    "{\"topic\":{\"nested\":\"work\"},\"n\":null}",
    "{\"flag\":true,\"n\":7,\"topic\":\"work\"}",
    "{\"we ird.key\":\"x\",\"n\":-3}",
};

static const char *const filters[] = {
    "{\"topic\":\"work\"}",
    "{\"topic\":{\"$ne\":\"work\"}}",
    "{\"n\":1}",
    "{\"n\":\"1\"}",
    "{\"n\":{\"$ne\":1}}",
    "{\"n\":{\"$gte\":1}}",
    "{\"n\":{\"$lt\":2}}",
    "{\"n\":{\"$in\":[1,\"1\",true]}}",
    "{\"n\":{\"$nin\":[1,\"1\",true]}}",
    "{\"flag\":true}",
    "{\"flag\":{\"$ne\":false}}",
    "{\"topic\":{\"$in\":[\"home\",\"work\"]},\"user_id\":{\"$ne\":\"u1\"}}",
    "{\"$or\":[{\"agent\":\"a1\"},{\"created_at\":{\"$lt\":1700000000020}}]}",
    "{\"$and\":[{\"kind\":{\"$nin\":[\"fact\"]}},{\"we ird.key\":\"x\"}]}",
    "{\"missing\":{\"$nin\":[\"a\",\"b\"]}}",
    "{\"missing\":\"a\"}",
    "{\"user_id\":{\"$in\":[\"u0\",\"u2\"]},\"n\":{\"$gt\":0}}",
    "{\"id\":{\"$in\":[\"0190a1b2-c3d4-7e5f-8a6b-000000000003\","
    "\"0190a1b2-c3d4-7e5f-8a6b-000000000009\"]}}",
};

static void filters_vs_reference(void **state)
{
    (void)state;
    struct fx x;
    fx_open(&x, NULL, dim16, NULL, 0);
    enum { N = 80 };
    struct tmem *ms = calloc(2 * N, sizeof *ms);
    assert_non_null(ms);
    const char *tenants[] = {"acme", "globex"};
    for (size_t t = 0; t < 2; t++) {
        ns_make(x.s, tenants[t]);
        for (size_t i = 0; i < N; i++) {
            struct tmem *m = &ms[t * N + i];
            char user[8], text[64];
            snprintf(user, sizeof user, "u%zu", i % 3);
            snprintf(text, sizeof text, "memory %zu of %s", i, tenants[t]);
            tm_init(m, tenants[t], i + 1, text, user, 1700000000000 + (int64_t)i * 7, i * 3 + t);
            snprintf(m->agent, sizeof m->agent, "a%zu", (i / 2) % 2);
            snprintf(m->kind, sizeof m->kind, "%s", i % 4 ? "note" : "fact");
            snprintf(m->meta, sizeof m->meta, "%s", metas[(i + t) % 8]);
        }
        upsert_ok(x.s, &ms[t * N], N);
    }
    uint64_t rng = 7;
    for (size_t fi = 0; fi < sizeof filters / sizeof filters[0]; fi++) {
        struct mem_filter *f = parse_ok(filters[fi]);
        for (size_t t = 0; t < 2; t++) {
            float q[DIM];
            rand_vec(&rng, q);
            check_query(x.s, tenants[t], q, 5, f, &ms[t * N], N);      /* inline */
            check_query(x.s, tenants[t], q, 40, f, &ms[t * N], N);     /* by id */
            check_query(x.s, tenants[t], q, 100000, f, &ms[t * N], N); /* scan */
            check_list_count(x.s, tenants[t], f, 7, &ms[t * N], N);
        }
        filter_free(f);
    }
    free(ms);
    fx_close(&x);
}

/* --- writes ------------------------------------------------------------------- */

static void deletes_stay_in_tenant(void **state)
{
    (void)state;
    struct fx x;
    fx_open(&x, NULL, dim16, NULL, 0);
    struct tmem a[5], b[5];
    for (size_t i = 0; i < 5; i++) {
        tm_init(&a[i], "ta", i + 1, "a text", "u1", 1000 + (int64_t)i, i);
        tm_init(&b[i], "tb", i + 1, "b text", "u2", 2000 + (int64_t)i, i + 10);
        snprintf(a[i].meta, sizeof a[i].meta, "{\"n\":%zu}", i);
    }
    ns_make(x.s, "ta");
    ns_make(x.s, "tb");
    upsert_ok(x.s, a, 5);
    upsert_ok(x.s, b, 5);
    char err[512];
    const char *ids[] = {a[0].id, a[1].id, "0190a1b2-c3d4-7e5f-8a6b-0000000000ff", "nonsense",
                         a[1].id};
    size_t deleted = 0;
    assert_int_equal(x.s->ops->delete_ids(x.s, "ta", ids, 5, &deleted, err, sizeof err), 0);
    assert_int_equal(deleted, 2);
    assert_int_equal(count_ok(x.s, "ta", NULL), 3);
    assert_int_equal(count_ok(x.s, "tb", NULL), 5);

    struct mem_filter *f = parse_ok("{\"n\":{\"$gte\":3}}");
    assert_int_equal(x.s->ops->delete_filter(x.s, "ta", f, &deleted, err, sizeof err), 0);
    assert_int_equal(deleted, 2);
    assert_int_equal(count_ok(x.s, "ta", f), 0);
    assert_int_equal(count_ok(x.s, "ta", NULL), 1);
    filter_free(f);

    struct store_stats st;
    assert_int_equal(x.s->ops->stats(x.s, "tb", &st, err, sizeof err), 0);
    assert_int_equal(st.count, 5);
    assert_int_equal(st.users, 1);
    assert_int_equal(st.oldest, 2000);
    assert_int_equal(st.newest, 2004);
    assert_int_equal(st.text_bytes, 5 * strlen("b text"));

    assert_int_equal(x.s->ops->delete_filter(x.s, "ta", NULL, &deleted, err, sizeof err), 0);
    assert_int_equal(deleted, 1);
    struct store_ns ns;
    assert_int_equal(x.s->ops->ns_get(x.s, "ta", &ns, err, sizeof err), 1);
    assert_int_equal(x.s->ops->ns_get(x.s, "tb", &ns, err, sizeof err), 0);
    assert_int_equal(ns.count, 5);

    /* upserts need the namespace; vectors of the wrong size are refused */
    struct mem_record r = tm_rec(&a[0]);
    assert_int_equal(x.s->ops->upsert(x.s, "ta", &r, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "no memory namespace"));
    r = tm_rec(&b[0]);
    r.dim = 8;
    assert_int_equal(x.s->ops->upsert(x.s, "tb", &r, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "dimension is 16"));
    fx_close(&x);
}

/* Metadata over 40 KB is refused before any request; big batches are
 * split within the limits the fake enforces. */
static void limits(void **state)
{
    (void)state;
    struct fx x;
    fx_open(&x, NULL, dim16, NULL, 0);
    ns_make(x.s, "big");
    size_t n = 1500;
    struct tmem *ms = calloc(n, sizeof *ms);
    struct mem_record *rs = calloc(n, sizeof *rs);
    char *texts = malloc(n * 1500);
    assert_true(ms != NULL && rs != NULL && texts != NULL);
    for (size_t i = 0; i < n; i++) {
        tm_init(&ms[i], "big", i + 1, "t", "u1", (int64_t)i, i);
        rs[i] = tm_rec(&ms[i]);
        memset(texts + i * 1500, 'a' + (int)(i % 26), 1499);
        texts[i * 1500 + 1499] = '\0';
        rs[i].text = texts + i * 1500; /* 1500 records of ~1.6 kB: over 2 MB */
    }
    char err[512];
    assert_int_equal(x.s->ops->upsert(x.s, "big", rs, n, err, sizeof err), 0);
    assert_int_equal(count_ok(x.s, "big", NULL), n);
    cJSON *log = NULL;
    mock_requests(x.m, &log);
    size_t upserts = 0;
    cJSON *r;
    cJSON_ArrayForEach(r, log)
    {
        if (strcmp(cJSON_GetObjectItem(r, "path")->valuestring, "/vectors/upsert") == 0)
            upserts++;
    }
    assert_true(upserts >= 3); /* the namespace record, then at least two batches */
    cJSON_Delete(log);

    char *huge = malloc(41000);
    assert_non_null(huge);
    memset(huge, 'z', 40999);
    huge[40999] = '\0';
    rs[0].text = huge;
    assert_int_equal(x.s->ops->upsert(x.s, "big", rs, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "40960"));
    free(huge);
    free(texts);
    free(rs);
    free(ms);
    fx_close(&x);
}

/* namespaces() lists memchat's (those with a namespace record) only. */
static void namespaces_are_memchats(void **state)
{
    (void)state;
    struct fx x;
    fx_open(&x, NULL, dim16, NULL, 0);
    ns_make(x.s, "zeta");
    ns_make(x.s, "alpha");
    const char *body = "{\"namespace\":\"foreign\",\"vectors\":[{\"id\":\"v1\",\"values\":"
                       "[1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]}]}";
    char req[1024];
    int len = snprintf(req, sizeof req,
                       "POST /vectors/upsert HTTP/1.1\r\nHost: 127.0.0.1\r\nApi-Key: x\r\n"
                       "X-Pinecone-API-Version: 2025-10\r\nContent-Type: application/json\r\n"
                       "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                       strlen(body), body);
    size_t got = 0;
    char *res = mock_raw_exchange(x.m, req, (size_t)len, &got);
    assert_true(got > 12 && strncmp(res, "HTTP/1.1 200", 12) == 0);
    free(res);
    char **names;
    size_t n;
    char err[512];
    assert_int_equal(x.s->ops->namespaces(x.s, &names, &n, err, sizeof err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "alpha");
    assert_string_equal(names[1], "zeta");
    store_names_free(names, n);
    fx_close(&x);
}

/* --- failures ------------------------------------------------------------------ */

static void auth_failure(void **state)
{
    (void)state;
    struct fx x;
    fx_open(&x, "pk-the-right-one", dim16, NULL, 0);
    struct store_ns ns;
    char err[512];
    assert_int_equal(x.s->ops->ns_get(x.s, "acme", &ns, err, sizeof err), -1);
    assert_int_equal(x.s->last_fail, REST_AUTH);
    assert_non_null(strstr(err, "401"));
    assert_null(strstr(err, KEY));
    assert_null(strstr(err, "5ecret"));
    fx_close(&x);
}

static void rate_limit_then_success(void **state)
{
    (void)state;
    struct fx x;
    fx_open(&x, NULL, dim16, NULL, 0);
    ns_make(x.s, "acme");
    fv_fail(x.m, "{\"status\":429,\"count\":1,\"retry_after\":\"0\"}");
    assert_int_equal(count_ok(x.s, "acme", NULL), 0);
    assert_int_equal(x.s->last_fail, REST_OK);
    cJSON *log = NULL;
    size_t n = mock_requests(x.m, &log);
    /* the last two requests are the same stats call: refused, then retried */
    cJSON *a = cJSON_GetArrayItem(log, (int)n - 2), *b = cJSON_GetArrayItem(log, (int)n - 1);
    assert_string_equal(cJSON_GetObjectItem(a, "path")->valuestring, "/describe_index_stats");
    assert_string_equal(cJSON_GetObjectItem(b, "path")->valuestring, "/describe_index_stats");
    cJSON_Delete(log);
    fx_close(&x);
}

static void server_error_persists(void **state)
{
    (void)state;
    struct fx x;
    fx_open(&x, NULL, dim16, NULL, 0);
    ns_make(x.s, "acme");
    fv_fail(x.m, "{\"status\":500,\"count\":5,\"retry_after\":\"0\"}");
    size_t n = 0;
    char err[512];
    assert_int_equal(x.s->ops->count(x.s, "acme", NULL, &n, err, sizeof err), -1);
    assert_int_equal(x.s->last_fail, REST_SERVER);
    assert_non_null(strstr(err, "500"));
    assert_non_null(strstr(err, "acme"));
    fv_reset(x.m);
    fx_close(&x);
}

static void unreachable(void **state)
{
    (void)state;
    static const char *const host[] = {"PINECONE_INDEX_HOST=127.0.0.1:1"};
    struct fx x;
    fx_open(&x, NULL, dim16, host, 1);
    struct store_health h;
    char err[512];
    assert_int_equal(x.s->ops->health(x.s, &h, err, sizeof err), -1);
    assert_int_equal(x.s->last_fail, REST_UNREACHABLE);
    assert_non_null(strstr(h.where, "http://127.0.0.1:1"));
    assert_null(strstr(err, KEY));
    fx_close(&x);
}

static void settings_checked(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    const char *nokey[] = {"VECTOR_DB_PROVIDER=pinecone", "PINECONE_INDEX_NAME=x"};
    struct config *cfg = tu_config(dir, nokey, 2);
    char err[512];
    assert_null(store_pinecone_new(cfg, err, sizeof err));
    assert_non_null(strstr(err, "PINECONE_API_KEY"));
    config_free(cfg);
    const char *noindex[] = {"VECTOR_DB_PROVIDER=pinecone", "PINECONE_API_KEY=" KEY};
    cfg = tu_config(dir, noindex, 2);
    assert_null(store_pinecone_new(cfg, err, sizeof err));
    assert_non_null(strstr(err, "PINECONE_INDEX_NAME"));
    assert_null(strstr(err, KEY));
    config_free(cfg);
    tu_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(settings_checked),
        cmocka_unit_test(host_lookup_and_wire),
        cmocka_unit_test(dimension_mismatch),
        cmocka_unit_test(environment_and_metric),
        cmocka_unit_test(contract),
        cmocka_unit_test(filters_vs_reference),
        cmocka_unit_test(deletes_stay_in_tenant),
        cmocka_unit_test(limits),
        cmocka_unit_test(namespaces_are_memchats),
        cmocka_unit_test(auth_failure),
        cmocka_unit_test(rate_limit_then_success),
        cmocka_unit_test(server_error_persists),
        cmocka_unit_test(unreachable),
        cmocka_unit_test(isolation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
