/*
 * test_store_qdrant: the Qdrant store (memory/store_qdrant.c) against
 * fakevec's qdrant service (tests/server/fake_qdrant.c), which checks every
 * request against api-notes §5 and refuses any read, count, scroll, query
 * or delete whose filter lacks a must match on "tenant". Answers are held
 * to the brute-force reference of tests/unit/store_suite.h (filter_match
 * and inner products), including filters on metadata keys Qdrant paths
 * cannot spell and values the typed comparison must keep apart; the log of
 * requests shows their shapes (tenant filter, wait=true, api-key); failures
 * are injected to see each one classified (auth, rate limit, server,
 * unreachable) without the key in any message. The shared conformance suite
 * (contract and isolation) runs last.
 */
#include "config.h"

#include "../unit/store_suite.h"
#include "../unit/tu_config.h"
#include "fakevec_harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cJSON.h>

#include "config/config.h"
#include "memory/filter.h"
#include "memory/remote.h"
#include "memory/store.h"
#include "net/rest.h"
#include "util/alloc.h"

#define KEY "qd-secret-KEY-123456"

struct fx {
    struct mock *m;
    char *dir;
    struct config *cfg;
    struct vstore *s;
};

static struct vstore *open_store(struct fx *f, const char *url, const char *key, int retries)
{
    char u[128], k[128], r[64];
    snprintf(u, sizeof u, "QDRANT_URL=%s", url);
    snprintf(k, sizeof k, "QDRANT_API_KEY=%s", key != NULL ? key : "");
    snprintf(r, sizeof r, "MEMCHAT_MAX_RETRIES=%d", retries);
    const char *extra[] = {u, k, r, "MEMORY_REMOTE_TIMEOUT=5s", "VECTOR_DB_PROVIDER=qdrant"};
    if (f->cfg != NULL)
        config_free(f->cfg);
    f->cfg = tu_config(f->dir, extra, 5);
    char err[512];
    struct vstore *s = store_qdrant_new(f->cfg, err, sizeof err);
    if (s == NULL)
        fail_msg("store_qdrant_new: %s", err);
    assert_true(s->remote);
    assert_string_equal(s->name, "qdrant");
    return s;
}

static int fx_setup_key(void **state, const char *key)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->dir = tu_mkdtemp();
    f->m = fv_start("qdrant", key, NULL);
    f->s = open_store(f, fv_url(f->m), key, 2);
    *state = f;
    return 0;
}

static int fx_setup(void **state)
{
    return fx_setup_key(state, NULL);
}

static int fx_setup_auth(void **state)
{
    return fx_setup_key(state, KEY);
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    store_free(f->s);
    config_free(f->cfg);
    mock_stop(f->m);
    tu_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* The logged requests whose path ends with suffix (NULL: all). */
static size_t log_count(struct mock *m, const char *method, const char *suffix)
{
    cJSON *arr = NULL;
    mock_requests(m, &arr);
    size_t n = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, arr)
    {
        const char *p = cJSON_GetObjectItem(r, "path")->valuestring;
        const char *me = cJSON_GetObjectItem(r, "method")->valuestring;
        size_t pl = strlen(p), sl = suffix != NULL ? strlen(suffix) : 0;
        if ((method == NULL || strcmp(me, method) == 0) &&
            (suffix == NULL || (pl >= sl && strcmp(p + pl - sl, suffix) == 0)))
            n++;
    }
    cJSON_Delete(arr);
    return n;
}

/* ---- namespaces --------------------------------------------------------- */

static void test_ns_create_get_mismatch(void **state)
{
    struct fx *f = *state;
    struct vstore *s = f->s;
    char err[512];
    struct store_ns got;
    assert_int_equal(s->ops->ns_get(s, "acme", &got, err, sizeof err), 1);
    struct store_ns ns = {.embedder = "openai", .model = "text-embedding-3-small", .dim = DIM};
    assert_int_equal(s->ops->ns_create(s, "acme", &ns, err, sizeof err), 0);
    assert_int_equal(s->ops->ns_get(s, "acme", &got, err, sizeof err), 0);
    assert_string_equal(got.model, "text-embedding-3-small");
    assert_int_equal(got.dim, DIM);
    assert_int_equal(got.count, 0);
    assert_true(got.created_ms > 0);
    assert_int_equal(s->ops->ns_create(s, "acme", &ns, err, sizeof err), 0);

    /* A second tenant of the same dimension shares the collection. */
    assert_int_equal(s->ops->ns_create(s, "globex", &ns, err, sizeof err), 0);
    assert_int_equal(log_count(f->m, "PUT", "/collections/memchat_d16"), 1);
    assert_int_equal(log_count(f->m, "PUT", "/collections/memchat_namespaces"), 1);
    assert_int_equal(log_count(f->m, "PUT", "/collections/memchat_d16/index"), 1);

    struct store_ns other = ns;
    other.dim = 32;
    assert_int_equal(s->ops->ns_create(s, "acme", &other, err, sizeof err), -1);
    assert_non_null(strstr(err, "acme"));
    assert_non_null(strstr(err, "dimension 16"));
    assert_non_null(strstr(err, "dimension 32"));

    /* The collection and the tenant index as documented. */
    cJSON *arr = NULL;
    mock_requests(f->m, &arr);
    bool saw_coll = false, saw_index = false;
    const cJSON *r;
    cJSON_ArrayForEach(r, arr)
    {
        const char *p = cJSON_GetObjectItem(r, "path")->valuestring;
        cJSON *b = cJSON_Parse(cJSON_GetObjectItem(r, "body")->valuestring);
        if (strcmp(p, "/collections/memchat_d16") == 0) {
            cJSON *v = cJSON_GetObjectItem(b, "vectors");
            assert_int_equal(cJSON_GetObjectItem(v, "size")->valueint, DIM);
            assert_string_equal(cJSON_GetObjectItem(v, "distance")->valuestring, "Dot");
            saw_coll = true;
        }
        if (strcmp(p, "/collections/memchat_d16/index") == 0) {
            assert_string_equal(cJSON_GetObjectItem(r, "query")->valuestring, "wait=true");
            assert_string_equal(cJSON_GetObjectItem(b, "field_name")->valuestring, "tenant");
            cJSON *fs = cJSON_GetObjectItem(b, "field_schema");
            assert_string_equal(cJSON_GetObjectItem(fs, "type")->valuestring, "keyword");
            assert_true(cJSON_IsTrue(cJSON_GetObjectItem(fs, "is_tenant")));
            saw_index = true;
        }
        cJSON_Delete(b);
    }
    cJSON_Delete(arr);
    assert_true(saw_coll && saw_index);

    /* Another dimension: its own collection. */
    assert_int_equal(s->ops->ns_create(s, "initech", &other, err, sizeof err), 0);
    assert_int_equal(log_count(f->m, "PUT", "/collections/memchat_d32"), 1);
    char **names;
    size_t n;
    assert_int_equal(s->ops->namespaces(s, &names, &n, err, sizeof err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(names[0], "acme");
    assert_string_equal(names[1], "globex");
    assert_string_equal(names[2], "initech");
    store_names_free(names, n);
    assert_int_equal(s->last_fail, REST_OK);
}

/* ---- data against the reference ----------------------------------------- */

enum { PER = 60 };

/* Metadata that tests typed comparison, odd keys and what Qdrant would
 * read differently (arrays, repeated keys, nested objects). */
static const char *const metas[] = {
    "{\"project\":\"apollo\",\"n\":3,\"ok\":true}",
    "{\"project\":\"zeus\",\"n\":3.5,\"ok\":false}",
    "{\"project\":\"apollo\",\"n\":\"3\"}",
    "{\"a.b\":\"dot\",\"q\\\"uote\":1,\"sp ace\":true}",
    "{\"project\":[\"apollo\",\"zeus\"],\"n\":[3]}",
    "{\"n\":1,\"n\":7,\"project\":\"hera\"}",
    "{\"nest\":{\"x\":1},\"caf\xc3\xa9\":\"\xc3\xbc\"}",
    "",
    "{\"n\":-2,\"ok\":true,\"project\":null}",
    "{\"n\":1000}",
};
enum { NMETA = sizeof metas / sizeof metas[0] };

static void fill(struct tmem *ms, const char *tenant, uint64_t seed)
{
    static const char *const kinds[] = {"note", "exchange", "fact"};
    for (size_t i = 0; i < PER; i++) {
        char text[64], user[8];
        snprintf(text, sizeof text, "memory %zu of %s", i, tenant);
        snprintf(user, sizeof user, "u%zu", (i * 7 + seed) % 4);
        tm_init(&ms[i], tenant, i + 1, text, user, 1700000000000 + (int64_t)i * 1000,
                seed * 1000 + i);
        snprintf(ms[i].kind, sizeof ms[i].kind, "%s", kinds[(i + seed) % 3]);
        snprintf(ms[i].meta, sizeof ms[i].meta, "%s", metas[(i + seed) % NMETA]);
    }
}

static const char *const filters[] = {
    "{\"user_id\":\"u1\"}",
    "{\"kind\":{\"$in\":[\"note\",\"fact\"]}}",
    "{\"project\":\"apollo\"}",
    "{\"project\":{\"$ne\":\"apollo\"}}",
    "{\"project\":{\"$nin\":[\"apollo\",\"zeus\"]}}",
    "{\"n\":3}",
    "{\"n\":\"3\"}",
    "{\"n\":3.5}",
    "{\"n\":{\"$gte\":3}}",
    "{\"n\":{\"$lt\":2}}",
    "{\"n\":{\"$in\":[1,\"3\",1000]}}",
    "{\"n\":7}",
    "{\"ok\":true}",
    "{\"ok\":{\"$ne\":false}}",
    "{\"a.b\":\"dot\"}",
    "{\"q\\\"uote\":1}",
    "{\"sp ace\":true}",
    "{\"caf\xc3\xa9\":\"\xc3\xbc\"}",
    "{\"nest\":{\"$ne\":1}}",
    "{\"missing\":{\"$ne\":\"x\"}}",
    "{\"missing\":\"x\"}",
    "{\"$or\":[{\"user_id\":\"u2\"},{\"n\":{\"$lt\":3}}]}",
    "{\"$and\":[{\"kind\":\"note\"},{\"$or\":[{\"ok\":true},{\"project\":\"hera\"}]}]}",
    "{\"created_at\":{\"$gte\":1700000030000,\"$lt\":1700000050000}}",
    "{\"created_at\":1700000010000}",
    "{\"id\":{\"$in\":[\"0190a1b2-c3d4-7e5f-8a6b-000000000001\","
    "\"0190a1b2-c3d4-7e5f-8a6b-000000000009\"]}}",
    "{\"id\":{\"$nin\":[\"0190a1b2-c3d4-7e5f-8a6b-000000000001\"]},\"agent\":\"assistant\"}",
};
enum { NF = sizeof filters / sizeof filters[0] };

static void make_two(struct vstore *s, struct tmem *a, struct tmem *b)
{
    ns_make(s, "acme");
    ns_make(s, "globex");
    fill(a, "acme", 1);
    fill(b, "globex", 2);
    upsert_ok(s, a, PER);
    upsert_ok(s, b, PER);
}

static void test_queries_lists_vs_reference(void **state)
{
    struct fx *f = *state;
    struct vstore *s = f->s;
    static struct tmem a[PER], b[PER];
    make_two(s, a, b);
    uint64_t rng = 99;
    for (size_t i = 0; i < NF + 1; i++) {
        struct mem_filter *flt = i < NF ? parse_ok(filters[i]) : NULL;
        float q[DIM];
        rand_vec(&rng, q);
        check_query(s, "acme", q, 5, flt, a, PER);
        check_query(s, "globex", q, 1000, flt, b, PER);
        check_query(s, "acme", a[i % PER].vec, 1, flt, a, PER);
        check_list_count(s, "acme", flt, 7, a, PER);
        check_list_count(s, "globex", flt, 1000, b, PER);
        filter_free(flt);
    }
    /* Replace: one id, new text and vector, in acme only. */
    struct tmem n = a[4];
    snprintf(n.text, sizeof n.text, "replaced");
    seed_vec(4242, n.vec);
    snprintf(n.meta, sizeof n.meta, "{\"v\":2}");
    upsert_ok(s, &n, 1);
    a[4] = n;
    assert_int_equal(count_ok(s, "acme", NULL), PER);
    check_query(s, "acme", n.vec, 3, NULL, a, PER);
    check_query(s, "globex", n.vec, 3, NULL, b, PER);
    check_list_count(s, "globex", NULL, 13, b, PER);
}

/* ---- deletes, purge, stats ------------------------------------------------ */

static void test_delete_ids_other_tenant_untouched(void **state)
{
    struct fx *f = *state;
    struct vstore *s = f->s;
    static struct tmem a[PER], b[PER];
    make_two(s, a, b);
    const char *ids[] = {a[0].id, a[1].id, a[2].id, "0190a1b2-c3d4-7e5f-8a6b-0000000fffff"};
    size_t deleted = 0;
    char err[512];
    assert_int_equal(s->ops->delete_ids(s, "acme", ids, 4, &deleted, err, sizeof err), 0);
    assert_int_equal(deleted, 3);
    a[0].alive = a[1].alive = a[2].alive = false;
    check_list_count(s, "acme", NULL, 100, a, PER);
    check_list_count(s, "globex", NULL, 100, b, PER); /* same ids live on there */
    assert_int_equal(s->ops->delete_ids(s, "acme", ids, 4, &deleted, err, sizeof err), 0);
    assert_int_equal(deleted, 0);
    struct store_ns ns;
    assert_int_equal(s->ops->ns_get(s, "acme", &ns, err, sizeof err), 0);
    assert_int_equal(ns.count, PER - 3);
    assert_int_equal(ns.generation, 2); /* one upsert and one delete that deleted */
}

static void test_delete_filter_purge_stats(void **state)
{
    struct fx *f = *state;
    struct vstore *s = f->s;
    static struct tmem a[PER], b[PER];
    make_two(s, a, b);
    char err[512];
    struct mem_filter *flt = parse_ok("{\"project\":\"apollo\"}");
    size_t want = 0, deleted = 0;
    for (size_t i = 0; i < PER; i++)
        if (tm_matches(&a[i], flt)) {
            a[i].alive = false;
            want++;
        }
    assert_true(want > 0);
    assert_int_equal(s->ops->delete_filter(s, "acme", flt, &deleted, err, sizeof err), 0);
    assert_int_equal(deleted, want);
    filter_free(flt);
    check_list_count(s, "acme", NULL, 1000, a, PER);
    check_list_count(s, "globex", NULL, 1000, b, PER);

    struct store_stats st;
    assert_int_equal(s->ops->stats(s, "globex", &st, err, sizeof err), 0);
    assert_int_equal(st.count, PER);
    assert_int_equal(st.users, 4);
    assert_int_equal(st.oldest, 1700000000000);
    assert_int_equal(st.newest, 1700000000000 + (PER - 1) * 1000);
    size_t tb = 0;
    for (size_t i = 0; i < PER; i++)
        tb += strlen(b[i].text);
    assert_int_equal(st.text_bytes, tb);
    assert_true(st.bytes_on_disk > tb);

    /* Purge acme: its points and namespace go, globex stays. */
    assert_int_equal(s->ops->delete_filter(s, "acme", NULL, &deleted, err, sizeof err), 0);
    assert_int_equal(deleted, PER - want);
    struct store_ns ns;
    assert_int_equal(s->ops->ns_get(s, "acme", &ns, err, sizeof err), 1);
    assert_int_equal(count_ok(s, "acme", NULL), 0);
    assert_int_equal(count_ok(s, "globex", NULL), PER);
    char **names;
    size_t n;
    assert_int_equal(s->ops->namespaces(s, &names, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(names[0], "globex");
    store_names_free(names, n);
    assert_int_equal(s->ops->stats(s, "acme", &st, err, sizeof err), 0);
    assert_int_equal(st.count, 0);
}

/* A filter that can never hold is answered without asking the server. */
static void test_impossible_filter_sends_nothing(void **state)
{
    struct fx *f = *state;
    struct vstore *s = f->s;
    static struct tmem a[PER], b[PER];
    make_two(s, a, b);
    struct mem_filter *flt = parse_ok("{\"user_id\":\"u1\"}");
    xfree(flt->values[0].s); /* a number for user_id: only a hand-built tree */
    flt->values[0].s = NULL;
    flt->values[0].type = FILTER_V_NUMBER;
    flt->values[0].n = 1;
    size_t before = log_count(f->m, "POST", "/points/count");
    assert_int_equal(count_ok(s, "acme", flt), 0);
    assert_int_equal(log_count(f->m, "POST", "/points/count"), before);
    check_list_count(s, "acme", flt, 10, a, PER);
    flt->op = FILTER_NE; /* and $ne of it holds for all */
    assert_int_equal(count_ok(s, "acme", flt), PER);
    filter_free(flt);
}

/* ---- request shapes ------------------------------------------------------- */

static void test_request_shapes(void **state)
{
    struct fx *f = *state;
    struct vstore *s = f->s;
    static struct tmem a[PER], b[PER];
    make_two(s, a, b);
    float q[DIM] = {1};
    struct mem_filter *flt = parse_ok("{\"project\":\"apollo\"}");
    struct mem_records out = query_ok(s, "acme", q, 3, flt);
    mem_records_free(&out);
    char err[512];
    assert_int_equal(s->ops->list(s, "acme", flt, NULL, 5, false, &out, err, sizeof err), 0);
    mem_records_free(&out);
    size_t d = 0;
    const char *ids[] = {a[0].id};
    assert_int_equal(s->ops->delete_ids(s, "acme", ids, 1, &d, err, sizeof err), 0);
    assert_int_equal(s->ops->delete_filter(s, "acme", flt, &d, err, sizeof err), 0);
    filter_free(flt);

    cJSON *arr = NULL;
    mock_requests(f->m, &arr);
    size_t reads = 0, writes = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, arr)
    {
        const char *p = cJSON_GetObjectItem(r, "path")->valuestring;
        const char *m = cJSON_GetObjectItem(r, "method")->valuestring;
        const char *qs = cJSON_GetObjectItem(r, "query")->valuestring;
        cJSON *body = cJSON_Parse(cJSON_GetObjectItem(r, "body")->valuestring);
        bool write = strcmp(m, "PUT") == 0 || strstr(p, "/points/delete") != NULL ||
                     strstr(p, "/points/payload") != NULL;
        if (write && strstr(p, "/points") != NULL) {
            assert_string_equal(qs, "wait=true");
            writes++;
        }
        if (strstr(p, "/points/") != NULL && strstr(p, "/points/payload") == NULL) {
            /* every read, count, scroll, query and delete names its tenant */
            cJSON *must = cJSON_GetObjectItem(cJSON_GetObjectItem(body, "filter"), "must");
            cJSON *first = cJSON_GetArrayItem(must, 0);
            assert_string_equal(cJSON_GetObjectItem(first, "key")->valuestring, "tenant");
            const char *t =
                cJSON_GetObjectItem(cJSON_GetObjectItem(first, "match"), "value")->valuestring;
            assert_true(strcmp(t, "acme") == 0 || strcmp(t, "globex") == 0);
            reads++;
        }
        if (strstr(p, "/points/query") != NULL) {
            assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(body, "query")), DIM);
            assert_int_equal(cJSON_GetObjectItem(body, "limit")->valueint, 3);
            assert_true(cJSON_IsTrue(cJSON_GetObjectItem(body, "with_payload")));
            assert_true(cJSON_IsTrue(cJSON_GetObjectItem(body, "with_vector")));
        }
        assert_null(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "headers"), "api-key"));
        cJSON_Delete(body);
    }
    cJSON_Delete(arr);
    assert_true(reads > 8);
    assert_true(writes >= 6);
    /* The point ids are the derived UUIDs, the memory id in the payload. */
    assert_int_equal(log_count(f->m, "POST", "/points/search"), 0);
}

/* ---- auth and failures ---------------------------------------------------- */

static void test_auth(void **state)
{
    struct fx *f = *state;
    char err[512];
    struct store_ns got;
    /* With the right key: works, and the key goes as api-key. */
    assert_int_equal(f->s->ops->ns_get(f->s, "acme", &got, err, sizeof err), 1);
    cJSON *arr = NULL;
    mock_requests(f->m, &arr);
    cJSON *h = cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 0), "headers");
    assert_string_equal(cJSON_GetObjectItem(h, "api-key")->valuestring, KEY);
    cJSON_Delete(arr);
    struct store_health hl;
    assert_int_equal(f->s->ops->health(f->s, &hl, err, sizeof err), 0);
    assert_string_equal(hl.server, "qdrant 1.12.1");
    assert_string_equal(hl.where, fv_url(f->m));

    /* With a wrong key: REST_AUTH, and no key in the message. */
    store_free(f->s);
    f->s = open_store(f, fv_url(f->m), "wrong-" KEY, 2);
    assert_int_equal(f->s->ops->ns_get(f->s, "acme", &got, err, sizeof err), -1);
    assert_int_equal(f->s->last_fail, REST_AUTH);
    assert_non_null(strstr(err, "401"));
    assert_non_null(strstr(err, "acme"));
    assert_null(strstr(err, KEY));
    struct store_ns ns = {.embedder = "local", .model = "m", .dim = DIM};
    assert_int_equal(f->s->ops->ns_create(f->s, "acme", &ns, err, sizeof err), -1);
    assert_int_equal(f->s->last_fail, REST_AUTH);
    assert_null(strstr(err, KEY));
    assert_int_equal(f->s->ops->health(f->s, &hl, err, sizeof err), -1);
    assert_int_equal(f->s->last_fail, REST_AUTH);
    assert_null(strstr(err, KEY));
}

static void test_429_then_success(void **state)
{
    struct fx *f = *state;
    char err[512];
    struct store_ns ns = {.embedder = "local", .model = "m", .dim = DIM};
    fv_fail(f->m, "{\"status\":429,\"count\":2,\"retry_after\":\"0\"}");
    assert_int_equal(f->s->ops->ns_create(f->s, "acme", &ns, err, sizeof err), 0);
    assert_int_equal(f->s->last_fail, REST_OK);
    /* the first call was tried three times */
    assert_int_equal(log_count(f->m, "POST", "/collections/memchat_namespaces/points/scroll"), 3);
    struct store_ns got;
    assert_int_equal(f->s->ops->ns_get(f->s, "acme", &got, err, sizeof err), 0);
}

static void test_500_persisting(void **state)
{
    struct fx *f = *state;
    char err[512];
    struct store_ns ns = {.embedder = "local", .model = "m", .dim = DIM};
    assert_int_equal(f->s->ops->ns_create(f->s, "acme", &ns, err, sizeof err), 0);
    store_free(f->s);
    f->s = open_store(f, fv_url(f->m), NULL, 1);
    fv_fail(f->m, "{\"status\":500,\"count\":5,\"message\":\"boom\"}");
    size_t n = 0;
    assert_int_equal(f->s->ops->count(f->s, "acme", NULL, &n, err, sizeof err), -1);
    assert_int_equal(f->s->last_fail, REST_SERVER);
    assert_non_null(strstr(err, "500"));
    assert_non_null(strstr(err, "boom"));
    assert_non_null(strstr(err, "acme"));
    /* the next operation starts with no failure class left over */
    assert_int_equal(f->s->ops->count(f->s, "no/such", NULL, &n, err, sizeof err), -1);
    assert_int_equal(f->s->last_fail, REST_OK);
    fv_reset(f->m);
    /* reset forgot the data too: the tenant has no namespace now */
    assert_int_equal(f->s->ops->count(f->s, "acme", NULL, &n, err, sizeof err), 0);
    assert_int_equal(f->s->last_fail, REST_OK);
}

static void test_unreachable(void **state)
{
    struct fx *f = *state;
    /* A port nobody listens on: bind, read it, close. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t sl = sizeof sa;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    close(fd);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", ntohs(sa.sin_port));
    store_free(f->s);
    f->s = open_store(f, url, KEY, 0);
    char err[512];
    struct store_ns got;
    assert_int_equal(f->s->ops->ns_get(f->s, "acme", &got, err, sizeof err), -1);
    assert_int_equal(f->s->last_fail, REST_UNREACHABLE);
    assert_non_null(strstr(err, "qdrant"));
    assert_null(strstr(err, KEY));
}

static void test_bad_settings(void **state)
{
    struct fx *f = *state;
    const char *extra[] = {"QDRANT_URL=ftp://x", "QDRANT_COLLECTION=a/b"};
    struct config *cfg = tu_config(f->dir, extra, 1);
    char err[512];
    assert_null(store_qdrant_new(cfg, err, sizeof err));
    assert_non_null(strstr(err, "QDRANT_URL"));
    config_free(cfg);
    cfg = tu_config(f->dir, extra + 1, 1);
    assert_null(store_qdrant_new(cfg, err, sizeof err));
    assert_non_null(strstr(err, "QDRANT_COLLECTION"));
    config_free(cfg);
}

/* ---- the fake itself ---------------------------------------------------------- */

/* One raw request to the fake; returns the status and copies the body. */
static int raw(struct mock *m, const char *method, const char *path, const char *auth,
               const char *body, char *out, size_t outlen)
{
    char req[2048];
    int n = snprintf(req, sizeof req,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     method, path, auth, strlen(body), body);
    assert_true(n > 0 && (size_t)n < sizeof req);
    size_t len = 0;
    char *res = mock_raw_exchange(m, req, (size_t)n, &len);
    assert_true(len > 12);
    int status = (int)strtol(res + 9, NULL, 10);
    const char *b = strstr(res, "\r\n\r\n");
    snprintf(out, outlen, "%s", b != NULL ? b + 4 : "");
    free(res);
    return status;
}

/* The fake refuses what the tests rely on it refusing, so passing tests
 * mean the store sent what the notes say. */
static void test_fake_is_strict(void **state)
{
    struct fx *f = *state;
    const char *bearer = "Authorization: Bearer " KEY;
    char out[1024];
    assert_int_equal(raw(f->m, "GET", "/collections", "X-No: 1", "", out, sizeof out), 401);
    assert_non_null(strstr(out, "\"status\":{\"error\""));
    assert_int_equal(raw(f->m, "GET", "/collections", bearer, "", out, sizeof out), 200);
    assert_int_equal(raw(f->m, "PUT", "/collections/memchat_d2", bearer,
                         "{\"vectors\":{\"size\":2,\"distance\":\"Dot\"}}", out, sizeof out),
                     200);
    /* unconfined reads and deletes */
    assert_int_equal(raw(f->m, "POST", "/collections/memchat_d2/points/count", bearer,
                         "{\"exact\":true}", out, sizeof out),
                     400);
    assert_non_null(strstr(out, "fake: tenant filter missing"));
    assert_int_equal(raw(f->m, "POST", "/collections/memchat_d2/points/delete", bearer,
                         "{\"points\":[1]}", out, sizeof out),
                     400);
    assert_int_equal(raw(f->m, "POST", "/collections/memchat_d2/points/query", bearer,
                         "{\"query\":[1,0],\"filter\":{\"should\":[{\"key\":\"tenant\","
                         "\"match\":{\"value\":\"a\"}}]}}",
                         out, sizeof out),
                     400);
    /* wrong vector length, unknown filter field, a fraction in match.value */
    assert_int_equal(raw(f->m, "PUT", "/collections/memchat_d2/points?wait=true", bearer,
                         "{\"points\":[{\"id\":1,\"vector\":[1,2,3],\"payload\":{}}]}", out,
                         sizeof out),
                     400);
    assert_non_null(strstr(out, "expected dim: 2"));
#define TF "{\"filter\":{\"must\":[{\"key\":\"tenant\",\"match\":{\"value\":\"a\"}},%s]}}"
    char body[512];
    snprintf(body, sizeof body, TF, "{\"key\":\"n\",\"matches\":{\"value\":1}}");
    assert_int_equal(
        raw(f->m, "POST", "/collections/memchat_d2/points/count", bearer, body, out, sizeof out),
        422);
    snprintf(body, sizeof body, TF, "{\"key\":\"n\",\"match\":{\"value\":1.5}}");
    assert_int_equal(
        raw(f->m, "POST", "/collections/memchat_d2/points/count", bearer, body, out, sizeof out),
        422);
    snprintf(body, sizeof body, TF, "{\"key\":\"n\",\"range\":{\"gte\":1.5}}");
    assert_int_equal(
        raw(f->m, "POST", "/collections/memchat_d2/points/count", bearer, body, out, sizeof out),
        200);
    assert_int_equal(
        raw(f->m, "POST", "/collections/nope/points/count", bearer, body, out, sizeof out), 404);
}

/* ---- the shared suite ------------------------------------------------------- */

static void test_suite_contract(void **state)
{
    struct fx *f = *state;
    suite_contract(f->s);
}

static void test_suite_isolation(void **state)
{
    struct fx *f = *state;
    struct vstore *more[2];
    struct config *cfgs[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++) {
        struct fx tmp = {.dir = f->dir};
        more[i] = open_store(&tmp, fv_url(f->m), NULL, 2);
        cfgs[i] = tmp.cfg;
    }
    struct vstore *stores[3] = {f->s, more[0], more[1]};
    suite_isolation(stores, 3);
    for (int i = 0; i < 2; i++) {
        store_free(more[i]);
        config_free(cfgs[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ns_create_get_mismatch, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_queries_lists_vs_reference, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_delete_ids_other_tenant_untouched, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_delete_filter_purge_stats, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_impossible_filter_sends_nothing, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_request_shapes, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_auth, fx_setup_auth, fx_teardown),
        cmocka_unit_test_setup_teardown(test_429_then_success, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_500_persisting, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_unreachable, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_bad_settings, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_fake_is_strict, fx_setup_auth, fx_teardown),
        cmocka_unit_test_setup_teardown(test_suite_contract, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_suite_isolation, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
