/*
 * Tests of the Weaviate store (memory/store_weaviate.c) against fakevec's
 * weaviate service (tests/server/fake_weaviate.c), which refuses what the
 * documented API refuses (a data request without its tenant, unknown
 * properties, mistyped values, enum operators quoted in GraphQL). The
 * shared conformance suite (tests/unit/store_suite.h) runs first: the
 * contract on one store and the isolation property test over two stores
 * of one server. Then what is Weaviate's own: typed metadata filters
 * against filter_match on records whose keys are missing or of mixed
 * types, filter values that try to break out of a GraphQL string, the
 * shape of every request (the tenant named on each data request), batch
 * deletes that must repeat, and the failure classes (auth without the
 * key in the message, 429 retried, 500 persisting, unreachable).
 */
#include "../unit/testutil.h"
#include "../unit/tu_config.h"
#include "fakevec_harness.h"

#include "../unit/store_suite.h"

#include "config/config.h"
#include "memchat/engine.h"
#include "memory/filter.h"
#include "memory/store.h"
#include "net/rest.h"

#define KEY "wv-secret-key-4242"

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

/* A store on url with key (NULL: none) and extra flags. */
static struct vstore *make_store(const char *url, const char *key, const char *extra)
{
    char u[256], k[128];
    snprintf(u, sizeof u, "WEAVIATE_URL=%s", url);
    snprintf(k, sizeof k, "WEAVIATE_API_KEY=%s", key != NULL ? key : "");
    const char *flags[] = {"VECTOR_DB_PROVIDER=weaviate", u, k, "MEMORY_REMOTE_TIMEOUT=3s",
                           extra != NULL ? extra : "MEMCHAT_MAX_RETRIES=2"};
    struct config *cfg = tu_config(g_dir, flags, 5);
    char err[512];
    struct vstore *s = store_weaviate_new(cfg, err, sizeof err);
    config_free(cfg);
    if (s == NULL)
        fail_msg("store_weaviate_new: %s", err);
    assert_true(s->remote);
    return s;
}

static void t_contract(void **state)
{
    (void)state;
    struct mock *m = fv_start("weaviate", NULL, NULL);
    struct vstore *s = make_store(fv_url(m), NULL, NULL);
    suite_contract(s);
    store_free(s);
    mock_stop(m);
}

static void t_isolation(void **state)
{
    (void)state;
    struct mock *m = fv_start("weaviate", NULL, NULL);
    struct vstore *s[2] = {make_store(fv_url(m), NULL, NULL), make_store(fv_url(m), NULL, NULL)};
    suite_isolation(s, 2);
    store_free(s[0]);
    store_free(s[1]);
    mock_stop(m);
}

/* Memories whose metadata exercises typed filters: keys missing, of mixed
 * types, booleans, quotes and newlines in values and keys. */
static const char *const metas[] = {
    "",
    "{\"n\":1,\"topic\":\"work\"}",
    "{\"n\":\"1\",\"topic\":\"home\"}",
    "{\"n\":2.5,\"ok\":true}",
    "{\"n\":true,\"ok\":false,\"topic\":\"work\"}",
    "{\"q\":\"say \\\"hi\\\"\\\\ and\\nbye\",\"topic\":null}",
    "{\"we\\\"ird key\":\"x\",\"n\":-3}",
    "{\"topic\":[\"work\"],\"n\":{\"a\":1}}",
};
#define NM (sizeof metas / sizeof metas[0])

static const char *const filters[] = {
    NULL,
    "{\"n\":1}",
    "{\"n\":\"1\"}",
    "{\"n\":true}",
    "{\"n\":{\"$ne\":1}}",
    "{\"n\":{\"$gt\":0}}",
    "{\"n\":{\"$gte\":2.5}}",
    "{\"n\":{\"$lt\":2}}",
    "{\"n\":{\"$in\":[1,\"1\",true]}}",
    "{\"n\":{\"$nin\":[1,2.5]}}",
    "{\"topic\":\"work\"}",
    "{\"topic\":{\"$ne\":\"work\"}}",
    "{\"ok\":{\"$nin\":[true]}}",
    "{\"missing\":{\"$ne\":\"x\"}}",
    "{\"missing\":\"x\"}",
    "{\"q\":\"say \\\"hi\\\"\\\\ and\\nbye\"}",
    "{\"q\":\"\\\"}) { Get { X } } #\"}",
    "{\"we\\\"ird key\":\"x\"}",
    "{\"created_at\":{\"$gt\":1000.5}}",
    "{\"created_at\":{\"$lte\":1003}}",
    "{\"created_at\":1002.5}",
    "{\"created_at\":{\"$ne\":1002.5}}",
    "{\"user_id\":{\"$ne\":\"u0\"},\"kind\":{\"$in\":[\"note\",\"fact\"]}}",
    "{\"$or\":[{\"agent\":\"a1\"},{\"n\":{\"$lte\":-3}}]}",
    "{\"$and\":[{\"topic\":{\"$ne\":\"home\"}},{\"$or\":[{\"ok\":false},{\"n\":{\"$ne\":1}}]}]}",
    "{\"id\":{\"$in\":[\"0190a1b2-c3d4-7e5f-8a6b-000000000003\","
    "\"0190a1b2-c3d4-7e5f-8a6b-00000000000a\"]}}",
    "{\"id\":{\"$ne\":\"0190a1b2-c3d4-7e5f-8a6b-000000000003\"}}",
};
#define NF (sizeof filters / sizeof filters[0])

static void fill(struct tmem *ms, size_t n, const char *tenant)
{
    static const char *const kinds[] = {"note", "fact", "exchange"};
    for (size_t i = 0; i < n; i++) {
        char user[8];
        snprintf(user, sizeof user, "u%zu", i % 3);
        tm_init(&ms[i], tenant, i + 1, "some text", user, 1000 + (int64_t)i, i + 5);
        snprintf(ms[i].kind, sizeof ms[i].kind, "%s", kinds[i % 3]);
        snprintf(ms[i].agent, sizeof ms[i].agent, "a%zu", i % 2);
        snprintf(ms[i].meta, sizeof ms[i].meta, "%s", metas[i % NM]);
    }
}

/* Every filter against filter_match: top k, list pages of 3, count, then
 * delete by filter on a copy tenant. */
static void t_filters(void **state)
{
    (void)state;
    struct mock *m = fv_start("weaviate", NULL, NULL);
    struct vstore *s = make_store(fv_url(m), NULL, NULL);
    enum { N = 24 };
    struct tmem ms[N];
    ns_make(s, "ft");
    fill(ms, N, "ft");
    upsert_ok(s, ms, N);
    float q[DIM];
    seed_vec(77, q);
    for (size_t i = 0; i < NF; i++) {
        struct mem_filter *f = filters[i] != NULL ? parse_ok(filters[i]) : NULL;
        check_query(s, "ft", q, 5, f, ms, N);
        check_query(s, "ft", q, 100, f, ms, N);
        check_list_count(s, "ft", f, 3, ms, N);
        filter_free(f);
    }
    /* delete by filter, one tenant per filter */
    for (size_t i = 1; i < NF; i++) {
        char tenant[16];
        snprintf(tenant, sizeof tenant, "fd%zu", i);
        struct tmem cp[N];
        ns_make(s, tenant);
        fill(cp, N, tenant);
        upsert_ok(s, cp, N);
        struct mem_filter *f = parse_ok(filters[i]);
        size_t want = 0, deleted = 0;
        for (size_t j = 0; j < N; j++)
            if (tm_matches(&cp[j], f)) {
                cp[j].alive = false;
                want++;
            }
        char err[512];
        if (s->ops->delete_filter(s, tenant, f, &deleted, err, sizeof err) != 0)
            fail_msg("delete_filter %s: %s", filters[i], err);
        if (deleted != want)
            fail_msg("delete_filter %s: %zu deleted, want %zu", filters[i], deleted, want);
        check_list_count(s, tenant, NULL, 7, cp, N);
        filter_free(f);
    }
    check_list_count(s, "ft", NULL, 5, ms, N); /* untouched */
    store_free(s);
    mock_stop(m);
}

/* Ids repeat across tenants; deleting in one leaves the other's. A batch
 * delete that removes 2 per call must be repeated. */
static void t_deletes(void **state)
{
    (void)state;
    const char *opts[] = {"--delete-limit", "2", NULL};
    struct mock *m = fv_start("weaviate", NULL, opts);
    struct vstore *s = make_store(fv_url(m), NULL, NULL);
    enum { N = 9 };
    struct tmem a[N], b[N];
    ns_make(s, "ta");
    ns_make(s, "tb");
    fill(a, N, "ta");
    fill(b, N, "tb");
    upsert_ok(s, a, N);
    upsert_ok(s, b, N);
    const char *ids[] = {a[0].id, a[1].id, "0190a1b2-c3d4-7e5f-8a6b-0000000fffff", "not-a-uuid"};
    size_t deleted = 0;
    char err[512];
    assert_int_equal(s->ops->delete_ids(s, "ta", ids, 4, &deleted, err, sizeof err), 0);
    assert_int_equal(deleted, 2);
    a[0].alive = a[1].alive = false;
    check_list_count(s, "ta", NULL, 4, a, N);
    check_list_count(s, "tb", NULL, 4, b, N);
    struct mem_filter *f = parse_ok("{\"user_id\":{\"$ne\":\"u0\"}}");
    assert_int_equal(s->ops->delete_filter(s, "tb", f, &deleted, err, sizeof err), 0);
    assert_int_equal(deleted, 6);
    for (size_t i = 0; i < N; i++)
        b[i].alive = tm_matches(&b[i], f) ? false : b[i].alive;
    check_list_count(s, "tb", NULL, 4, b, N);
    filter_free(f);
    check_list_count(s, "ta", NULL, 4, a, N);
    /* a delete in an unknown tenant deletes nothing */
    assert_int_equal(s->ops->delete_ids(s, "nobody", ids, 2, &deleted, err, sizeof err), 0);
    assert_int_equal(deleted, 0);
    store_free(s);
    mock_stop(m);
}

/* What the server received: classes as designed, and every data request
 * names its tenant. */
static void t_request_shapes(void **state)
{
    (void)state;
    struct mock *m = fv_start("weaviate", NULL, NULL);
    struct vstore *s = make_store(fv_url(m), NULL, NULL);
    struct tmem ms[4];
    ns_make(s, "shape-1");
    fill(ms, 4, "shape-1");
    upsert_ok(s, ms, 4);
    float q[DIM];
    seed_vec(3, q);
    struct mem_filter *f = parse_ok("{\"topic\":\"work\"}");
    struct mem_records out = query_ok(s, "shape-1", q, 2, f);
    mem_records_free(&out);
    count_ok(s, "shape-1", f);
    char err[512];
    size_t n;
    const char *ids[] = {ms[0].id};
    assert_int_equal(s->ops->delete_ids(s, "shape-1", ids, 1, &n, err, sizeof err), 0);
    assert_int_equal(s->ops->delete_filter(s, "shape-1", f, &n, err, sizeof err), 0);
    filter_free(f);
    struct store_stats st;
    assert_int_equal(s->ops->stats(s, "shape-1", &st, err, sizeof err), 0);
    assert_int_equal(st.count, 2);

    cJSON *log;
    size_t nreq = mock_requests(m, &log);
    bool saw_class = false, saw_tenant = false, saw_prop = false;
    for (size_t i = 0; i < nreq; i++) {
        const cJSON *r = cJSON_GetArrayItem(log, (int)i);
        const char *method = cJSON_GetObjectItem(r, "method")->valuestring;
        const char *path = cJSON_GetObjectItem(r, "path")->valuestring;
        const char *query = cJSON_GetObjectItem(r, "query")->valuestring;
        const cJSON *bj = cJSON_GetObjectItem(r, "body");
        const char *body = cJSON_IsString(bj) ? bj->valuestring : "";
        if (strcmp(path, "/v1/schema") == 0 && strcmp(method, "POST") == 0 &&
            strstr(body, "MemchatD16") != NULL) {
            saw_class = true;
            assert_non_null(strstr(body, "\"distance\":\"dot\""));
            assert_non_null(strstr(body, "\"enabled\":true"));
            assert_non_null(strstr(body, "\"vectorizer\":\"none\""));
        }
        if (strcmp(path, "/v1/schema/MemchatD16/tenants") == 0 && strcmp(method, "POST") == 0)
            saw_tenant = strstr(body, "shape-1") != NULL;
        if (strcmp(path, "/v1/schema/MemchatD16/properties") == 0)
            saw_prop = saw_prop || strstr(body, "ms_746f706963") != NULL; /* "topic" */
        if (strcmp(path, "/v1/graphql") == 0)
            assert_non_null(strstr(body, "tenant: \\\"shape-1\\\""));
        if (strncmp(path, "/v1/objects/MemchatD16/", 23) == 0 ||
            (strcmp(path, "/v1/batch/objects") == 0 && strcmp(method, "DELETE") == 0) ||
            (strcmp(path, "/v1/objects") == 0 && strstr(query, "MemchatD16") != NULL))
            assert_non_null(strstr(query, "tenant=shape-1"));
        if (strcmp(path, "/v1/batch/objects") == 0 && strcmp(method, "POST") == 0 &&
            strstr(body, "MemchatD16") != NULL)
            assert_non_null(strstr(body, "\"tenant\":\"shape-1\""));
    }
    assert_true(saw_class && saw_tenant && saw_prop);
    cJSON_Delete(log);
    store_free(s);
    mock_stop(m);
}

static void t_auth(void **state)
{
    (void)state;
    struct mock *m = fv_start("weaviate", KEY, NULL);
    struct vstore *s = make_store(fv_url(m), "wrong-key-777", NULL);
    struct store_health h;
    char err[512];
    assert_int_equal(s->ops->health(s, &h, err, sizeof err), -1);
    assert_int_equal(s->last_fail, REST_AUTH);
    assert_null(strstr(err, "wrong-key-777"));
    assert_null(strstr(err, KEY));
    struct store_ns ns;
    assert_int_equal(s->ops->ns_get(s, "acme", &ns, err, sizeof err), -1);
    assert_int_equal(s->last_fail, REST_AUTH);
    assert_null(strstr(err, "wrong-key-777"));
    store_free(s);
    s = make_store(fv_url(m), KEY, NULL);
    if (s->ops->health(s, &h, err, sizeof err) != 0)
        fail_msg("health: %s", err);
    assert_string_equal(h.server, "weaviate 1.27.0-fake");
    assert_non_null(strstr(h.where, "/v1"));
    assert_int_equal(s->last_fail, REST_OK);
    store_free(s);
    mock_stop(m);
}

static void t_retries(void **state)
{
    (void)state;
    struct mock *m = fv_start("weaviate", NULL, NULL);
    struct vstore *s = make_store(fv_url(m), NULL, "MEMCHAT_MAX_RETRIES=2");
    ns_make(s, "rt");
    fv_fail(m, "{\"status\":429,\"count\":2,\"retry_after\":\"0.01\"}");
    struct store_ns ns;
    char err[512];
    if (s->ops->ns_get(s, "rt", &ns, err, sizeof err) != 0)
        fail_msg("ns_get after 429s: %s", err);
    assert_int_equal(ns.dim, DIM);
    fv_fail(m, "{\"status\":500,\"count\":20,\"retry_after\":\"0.01\"}");
    assert_int_equal(s->ops->ns_get(s, "rt", &ns, err, sizeof err), -1);
    assert_int_equal(s->last_fail, REST_SERVER);
    assert_non_null(strstr(err, "rt"));
    fv_reset(m);
    store_free(s);
    mock_stop(m);
    /* nothing listens there any more */
    s = make_store("http://127.0.0.1:1", NULL, "MEMCHAT_MAX_RETRIES=0");
    assert_int_equal(s->ops->ns_get(s, "rt", &ns, err, sizeof err), -1);
    assert_int_equal(s->last_fail, REST_UNREACHABLE);
    store_free(s);
}

static void t_bad_prefix(void **state)
{
    (void)state;
    const char *flags[] = {"WEAVIATE_CLASS=bad-name"};
    struct config *cfg = tu_config(g_dir, flags, 1);
    char err[512];
    assert_null(store_weaviate_new(cfg, err, sizeof err));
    assert_non_null(strstr(err, "WEAVIATE_CLASS"));
    config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_bad_prefix),     cmocka_unit_test(t_contract),
        cmocka_unit_test(t_filters),        cmocka_unit_test(t_deletes),
        cmocka_unit_test(t_request_shapes), cmocka_unit_test(t_auth),
        cmocka_unit_test(t_retries),        cmocka_unit_test(t_isolation),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
