/*
 * test_store_pgvector: the pgvector store (memory/store_pgvector.c) end to
 * end against PGlite (tests/server/pglite-server.sh: PostgreSQL with
 * pgvector in memory on 127.0.0.1). One server serves the whole group,
 * because PGlite boots in seconds, not milliseconds; every test uses its
 * own tenants. Queries, counts and lists are held to the brute-force
 * reference of tests/unit/store_suite.h (filter_match and inner products
 * in double precision), under filters that exercise every typed rule
 * (missing keys, wrong types, $ne/$nin); the shared contract and isolation
 * suites run too. The failure tests come last: a closed port, and the
 * server stopped mid-run and started again on its port.
 */
#include "config.h"

#include "../unit/testutil.h"

#include "../unit/store_suite.h"
#include "../unit/tu_config.h"
#include "pglite_harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "config/config.h"
#include "memory/embed.h"
#include "memory/filter.h"
#include "memory/move.h"
#include "memory/store.h"
#include "store/db.h"
#include "net/rest.h"

struct world {
    struct pglite *pg;
    char *dir;
};

static struct world W;

static int group_setup(void **state)
{
    (void)state;
    W.pg = pglite_start();
    W.dir = tu_mkdtemp();
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    pglite_stop(W.pg);
    tu_rmtree(W.dir);
    free(W.dir);
    return 0;
}

/* A store on url (NULL: the server's). */
static struct vstore *store_on(const char *url)
{
    char flag[256];
    snprintf(flag, sizeof flag, "PGVECTOR_URL=%s", url != NULL ? url : pglite_url(W.pg));
    const char *extra[] = {"VECTOR_DB_PROVIDER=pgvector", flag, "MEMORY_REMOTE_TIMEOUT=10s"};
    struct config *cfg = tu_config(W.dir, extra, 3);
    char err[512] = "";
    struct vstore *s = store_pgvector_new(cfg, err, sizeof err);
    config_free(cfg);
    if (s == NULL)
        fail_msg("store_pgvector_new: %s", err);
    return s;
}

static void test_url_required(void **state)
{
    (void)state;
    const char *extra[] = {"VECTOR_DB_PROVIDER=pgvector"};
    struct config *cfg = tu_config(W.dir, extra, 1);
    char err[512] = "";
    assert_null(store_pgvector_new(cfg, err, sizeof err));
    assert_non_null(strstr(err, "PGVECTOR_URL"));
    config_free(cfg);
}

static void test_contract(void **state)
{
    (void)state;
    struct vstore *s = store_on(NULL);
    assert_true(s->remote);
    assert_string_equal(s->name, "pgvector");
    suite_contract(s);
    assert_int_equal(s->last_fail, REST_OK);
    store_free(s);
}

static void test_isolation(void **state)
{
    (void)state;
    struct vstore *stores[2] = {store_on(NULL), store_on(NULL)};
    suite_isolation(stores, 2);
    store_free(stores[0]);
    store_free(stores[1]);
}

static void test_ns_mismatch_names_both(void **state)
{
    (void)state;
    struct vstore *s = store_on(NULL);
    char err[512];
    struct store_ns ns = {.embedder = "openai", .model = "text-embedding-3-small", .dim = DIM};
    assert_int_equal(s->ops->ns_create(s, "pg-mis", &ns, err, sizeof err), 0);
    struct store_ns other = ns;
    snprintf(other.model, sizeof other.model, "nomic-embed-text");
    other.dim = 24;
    assert_int_equal(s->ops->ns_create(s, "pg-mis", &other, err, sizeof err), -1);
    assert_non_null(strstr(err, "text-embedding-3-small"));
    assert_non_null(strstr(err, "nomic-embed-text"));
    assert_non_null(strstr(err, "pg-mis"));
    struct store_ns got;
    assert_int_equal(s->ops->ns_get(s, "pg-mis", &got, err, sizeof err), 0);
    assert_string_equal(got.model, "text-embedding-3-small");
    int64_t gen = got.generation;
    struct tmem m;
    tm_init(&m, "pg-mis", 1, "generation bump", "u1", 1000, 1);
    upsert_ok(s, &m, 1);
    assert_int_equal(s->ops->ns_get(s, "pg-mis", &got, err, sizeof err), 0);
    assert_true(got.generation > gen);
    assert_int_equal(got.count, 1);
    size_t n = 0;
    assert_int_equal(s->ops->delete_filter(s, "pg-mis", NULL, &n, err, sizeof err), 0);
    store_free(s);
}

/* Metadata of every shape the typed rules care about. */
static void fill_meta(struct tmem *m, size_t i)
{
    switch (i % 6) {
    case 0:
        snprintf(m->meta, sizeof m->meta, "{\"topic\":\"work\",\"n\":%zu,\"ok\":true}", i % 10);
        break;
    case 1:
        snprintf(m->meta, sizeof m->meta, "{\"topic\":\"home\",\"n\":\"%zu\"}", i % 10);
        break;
    case 2:
        snprintf(m->meta, sizeof m->meta, "{\"n\":%zu.5,\"ok\":false}", i % 10);
        break;
    case 3:
        m->meta[0] = '\0'; /* none: {} */
        break;
    case 4:
        snprintf(m->meta, sizeof m->meta, "{\"topic\":1,\"it's\":\"a \\\"quoted\\\" key\"}");
        break;
    default:
        snprintf(m->meta, sizeof m->meta, "{ \"topic\" : \"work\" , \"n\" : -%zu }", i % 10);
        break;
    }
}

static const char *const query_filters[] = {
    NULL,
    "{\"topic\":\"work\"}",
    "{\"topic\":{\"$ne\":\"work\"}}",
    "{\"topic\":{\"$nin\":[\"work\",\"home\"]}}",
    "{\"n\":{\"$gt\":3}}",
    "{\"n\":{\"$lte\":2.5}}",
    "{\"n\":\"4\"}",
    "{\"ok\":true}",
    "{\"ok\":{\"$ne\":false}}",
    "{\"missing\":{\"$ne\":1}}",
    "{\"missing\":1}",
    "{\"it's\":\"a \\\"quoted\\\" key\"}",
    "{\"user_id\":{\"$in\":[\"u1\",\"u3\"]},\"kind\":{\"$ne\":\"fact\"}}",
    "{\"$or\":[{\"agent\":\"agent1\"},{\"created_at\":{\"$lt\":1700000001000}}]}",
    "{\"$and\":[{\"n\":{\"$gte\":0}},{\"$or\":[{\"topic\":\"home\"},{\"ok\":true}]}]}",
    "{\"id\":{\"$nin\":[\"0190a1b2-c3d4-7e5f-8a6b-000000000003\"]}}",
    "{\"created_at\":{\"$gte\":1700000003700}}",
};

enum { QN = 240 };

/* Two tenants holding the same ids and vectors: every answer must come
 * from the asked tenant only and equal the brute force. */
static void test_query_list_count_exact(void **state)
{
    (void)state;
    struct vstore *s = store_on(NULL);
    static struct tmem ms[2 * QN];
    const char *tenants[] = {"pq-a", "pq-b"};
    for (size_t t = 0; t < 2; t++) {
        ns_make(s, tenants[t]);
        for (size_t i = 0; i < QN; i++) {
            struct tmem *m = &ms[t * QN + i];
            char text[64], user[8];
            snprintf(text, sizeof text, "memory %zu of %s", i, tenants[t]);
            snprintf(user, sizeof user, "u%zu", (i + t) % 4);
            tm_init(m, tenants[t], i + 1, text, user, 1700000000000 + (int64_t)(i * 37), i % 50);
            snprintf(m->agent, sizeof m->agent, "agent%zu", (i / 3) % 2);
            snprintf(m->kind, sizeof m->kind, "%s", i % 4 == 0 ? "fact" : "note");
            fill_meta(m, i + t);
        }
        upsert_ok(s, &ms[t * QN], QN);
    }
    uint64_t rng = 99;
    for (size_t fi = 0; fi < sizeof query_filters / sizeof query_filters[0]; fi++) {
        struct mem_filter *f = query_filters[fi] ? parse_ok(query_filters[fi]) : NULL;
        for (size_t t = 0; t < 2; t++) {
            float q[DIM];
            rand_vec(&rng, q);
            check_query(s, tenants[t], q, 1, f, ms, 2 * QN);
            check_query(s, tenants[t], q, 10, f, ms, 2 * QN);
            check_query(s, tenants[t], ms[t * QN + fi].vec, 100000, f, ms, 2 * QN);
            check_list_count(s, tenants[t], f, 7, ms, 2 * QN);
        }
        filter_free(f);
    }
    size_t n = 0;
    char err[512];
    for (size_t t = 0; t < 2; t++)
        assert_int_equal(s->ops->delete_filter(s, tenants[t], NULL, &n, err, sizeof err), 0);
    store_free(s);
}

static void test_deletes(void **state)
{
    (void)state;
    struct vstore *s = store_on(NULL);
    char err[512];
    struct tmem a[6], b[6];
    ns_make(s, "pd-a");
    ns_make(s, "pd-b");
    for (size_t i = 0; i < 6; i++) {
        tm_init(&a[i], "pd-a", i + 1, "alpha text", i < 3 ? "u1" : "u2", 1000 + (int64_t)i, i);
        tm_init(&b[i], "pd-b", i + 1, "bravo text", "u1", 2000 + (int64_t)i, i);
    }
    upsert_ok(s, a, 6);
    upsert_ok(s, b, 6);
    /* ids 1 and 2 exist in both tenants; 0x99 in none; one is not a UUID */
    const char *ids[] = {a[0].id, a[1].id, "0190a1b2-c3d4-7e5f-8a6b-000000000099", "nope", a[0].id};
    size_t n = 0;
    assert_int_equal(s->ops->delete_ids(s, "pd-a", ids, 5, &n, err, sizeof err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(count_ok(s, "pd-a", NULL), 4);
    assert_int_equal(count_ok(s, "pd-b", NULL), 6);
    struct mem_filter *f = parse_ok("{\"user_id\":\"u1\"}");
    assert_int_equal(s->ops->delete_filter(s, "pd-a", f, &n, err, sizeof err), 0);
    assert_int_equal(n, 1); /* a[2]: a[0] and a[1] are gone */
    assert_int_equal(count_ok(s, "pd-a", NULL), 3);
    assert_int_equal(count_ok(s, "pd-b", f), 6);
    filter_free(f);
    assert_int_equal(s->ops->delete_filter(s, "pd-a", NULL, &n, err, sizeof err), 0);
    assert_int_equal(n, 3);
    struct store_ns ns;
    assert_int_equal(s->ops->ns_get(s, "pd-a", &ns, err, sizeof err), 1);
    assert_int_equal(count_ok(s, "pd-b", NULL), 6);
    assert_int_equal(s->ops->delete_filter(s, "pd-b", NULL, &n, err, sizeof err), 0);
    store_free(s);
}

static void test_stats_and_namespaces(void **state)
{
    (void)state;
    struct vstore *s = store_on(NULL);
    char err[512];
    ns_make(s, "ps-one");
    struct tmem m[3];
    tm_init(&m[0], "ps-one", 1, "one", "u1", 500, 1);
    tm_init(&m[1], "ps-one", 2, "two two", "u2", 700, 2);
    tm_init(&m[2], "ps-one", 3, "three", "u1", 600, 3);
    upsert_ok(s, m, 3);
    struct store_stats st;
    assert_int_equal(s->ops->stats(s, "ps-one", &st, err, sizeof err), 0);
    assert_int_equal(st.count, 3);
    assert_int_equal(st.users, 2);
    assert_int_equal(st.oldest, 500);
    assert_int_equal(st.newest, 700);
    assert_int_equal(st.text_bytes, strlen("one") + strlen("two two") + strlen("three"));
    assert_true(st.bytes_on_disk > st.text_bytes);
    assert_int_equal(s->ops->stats(s, "ps-none", &st, err, sizeof err), 0);
    assert_int_equal(st.count, 0);
    struct store_health h;
    assert_int_equal(s->ops->health(s, &h, err, sizeof err), 0);
    assert_non_null(strstr(h.server, "PostgreSQL"));
    assert_non_null(strstr(h.server, "pgvector"));
    char where[64];
    snprintf(where, sizeof where, "127.0.0.1:%d/postgres", W.pg->port);
    assert_string_equal(h.where, where);
    assert_null(s->ops->index);
    size_t n = 0;
    assert_int_equal(s->ops->delete_filter(s, "ps-one", NULL, &n, err, sizeof err), 0);
    store_free(s);
}

/* Above 2,000 floats the column is halfvec: vectors read back at half
 * precision, the best match still first. */
static void test_halfvec(void **state)
{
    (void)state;
    struct vstore *s = store_on(NULL);
    char err[512];
    enum { HD = 2500, HN = 4 };
    struct store_ns ns = {.embedder = "openai", .model = "big", .dim = HD};
    assert_int_equal(s->ops->ns_create(s, "ph-big", &ns, err, sizeof err), 0);
    struct mem_record rs[HN];
    float *vecs = calloc((size_t)HN * HD, sizeof *vecs);
    assert_non_null(vecs);
    memset(rs, 0, sizeof rs);
    char text[] = "big vector";
    for (size_t i = 0; i < HN; i++) {
        float *v = &vecs[i * HD];
        for (size_t j = 0; j < HD; j++)
            v[j] = (j % HN == i) ? 0.04f : 0.0f; /* disjoint supports */
        make_id(rs[i].id, i + 1);
        rs[i].text = text;
        snprintf(rs[i].user_id, sizeof rs[i].user_id, "u1");
        snprintf(rs[i].agent, sizeof rs[i].agent, "a");
        snprintf(rs[i].kind, sizeof rs[i].kind, "note");
        rs[i].created_at = 1 + (int64_t)i;
        rs[i].vector = v;
        rs[i].dim = HD;
    }
    assert_int_equal(s->ops->upsert(s, "ph-big", rs, HN, err, sizeof err), 0);
    struct mem_records out;
    assert_int_equal(s->ops->query(s, "ph-big", &vecs[2 * HD], 2, NULL, &out, err, sizeof err), 0);
    assert_int_equal(out.n, 2);
    assert_string_equal(out.v[0].id, rs[2].id);
    assert_true(fabs(out.v[0].score - 625 * 0.04 * 0.04) < 1e-3);
    assert_int_equal(out.v[0].dim, HD);
    assert_true(fabs(out.v[0].vector[2] - 0.04f) < 1e-4);
    mem_records_free(&out);
    size_t n = 0;
    assert_int_equal(s->ops->delete_filter(s, "ph-big", NULL, &n, err, sizeof err), 0);
    assert_int_equal(n, HN);
    free(vecs);
    store_free(s);
}

/* Quotes, backslashes, SQL and tsquery metacharacters in texts and in the
 * searched text reach PostgreSQL only as parameters. */
static void test_keyword_metacharacters(void **state)
{
    (void)state;
    struct vstore *s = store_on(NULL);
    char err[512];
    ns_make(s, "pk-a");
    ns_make(s, "pk-b");
    struct tmem m[4], other;
    tm_init(&m[0], "pk-a", 1, "O'Brien's report; DROP TABLE memchat_namespaces; --", "u1", 1, 1);
    tm_init(&m[1], "pk-a", 2, "a \"quoted\" word & a back\\slash | !bang", "u1", 2, 2);
    tm_init(&m[2], "pk-a", 3, "report report report", "u2", 3, 3);
    tm_init(&m[3], "pk-a", 4, "nothing to see", "u2", 4, 4);
    tm_init(&other, "pk-b", 1, "report from another tenant", "u1", 5, 5);
    upsert_ok(s, m, 4);
    upsert_ok(s, &other, 1);
    struct mem_records out;
    assert_int_equal(s->ops->keyword(s, "pk-a", "report", 10, NULL, &out, err, sizeof err), 0);
    assert_int_equal(out.n, 2);
    assert_string_equal(out.v[0].id, m[2].id); /* three occurrences rank first */
    assert_true(out.v[0].score > out.v[1].score && out.v[1].score > 0);
    assert_non_null(out.v[0].vector);
    mem_records_free(&out);
    const char *nasty[] = {"'; DROP TABLE memchat_namespaces; --", "\"quoted\" & !bang | (",
                           "back\\slash:*", "O'Brien"};
    size_t want[] = {1, 1, 1, 1};
    for (size_t i = 0; i < 4; i++) {
        if (s->ops->keyword(s, "pk-a", nasty[i], 10, NULL, &out, err, sizeof err) != 0)
            fail_msg("keyword %s: %s", nasty[i], err);
        if (out.n != want[i])
            fail_msg("keyword %s: %zu results, want %zu", nasty[i], out.n, want[i]);
        mem_records_free(&out);
    }
    struct mem_filter *f = parse_ok("{\"user_id\":\"u1\"}");
    assert_int_equal(s->ops->keyword(s, "pk-a", "report", 10, f, &out, err, sizeof err), 0);
    assert_int_equal(out.n, 1);
    assert_string_equal(out.v[0].id, m[0].id);
    assert_string_equal(out.v[0].text, m[0].text);
    mem_records_free(&out);
    filter_free(f);
    assert_int_equal(s->ops->keyword(s, "pk-a", "-- ;;", 10, NULL, &out, err, sizeof err), 0);
    assert_int_equal(out.n, 0);
    struct store_ns ns;
    assert_int_equal(s->ops->ns_get(s, "pk-a", &ns, err, sizeof err), 0); /* table still there */
    size_t n = 0;
    assert_int_equal(s->ops->delete_filter(s, "pk-a", NULL, &n, err, sizeof err), 0);
    assert_int_equal(s->ops->delete_filter(s, "pk-b", NULL, &n, err, sizeof err), 0);
    store_free(s);
}

/* A port nobody listens on: bound, then closed. */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* Every record of tenant in s, in id order, vectors loaded. */
static struct mem_records list_all(struct vstore *s, const char *tenant)
{
    struct mem_records rs = {0};
    char err[512] = "";
    if (s->ops->list(s, tenant, NULL, NULL, 10000, true, &rs, err, sizeof err) != 0)
        fail_msg("list %s: %s", tenant, err);
    return rs;
}

/* memory migrate from the local store into pgvector, then reembed there
 * (a dimension change, so another table): every field and vector arrives
 * over the wire bit for bit, and the rebuilt namespace keeps every field
 * with the new embedder's vectors. */
static void test_migrate_and_reembed(void **state)
{
    (void)state;
    enum { MN = 37, NEW_DIM = 24 };
    char path[4200], err[1024] = "";
    snprintf(path, sizeof path, "%s/moves.db", W.dir);
    enum db_error why;
    struct db *db = db_open(path, &why, err, sizeof err);
    if (db == NULL)
        fail_msg("db_open: %s", err);
    struct vstore *local = store_local_new(db, NULL, NULL), *pg = store_on(NULL);
    struct tmem *ms = calloc(MN, sizeof *ms);
    assert_non_null(ms);
    for (size_t i = 0; i < MN; i++) {
        char text[64];
        snprintf(text, sizeof text, "moved memory %zu about %s", i, nato[i % 8]);
        tm_init(&ms[i], "pg-move", 0x500 + i, text, i % 2 ? "u1" : "u2", 1700000000000 + (int64_t)i,
                i + 1);
        fill_meta(&ms[i], i);
    }
    ns_make(local, "pg-move");
    upsert_ok(local, ms, MN);

    struct move_opts o = {.batch = 8};
    struct move_report r;
    if (move_migrate(db, local, pg, "pg-move", &o, &r, err, sizeof err) != MEMORY_OK)
        fail_msg("migrate: %s", err);
    assert_int_equal(r.done, MN);
    assert_int_equal(r.target_count, MN);
    struct mem_records got = list_all(pg, "pg-move");
    assert_int_equal(got.n, MN);
    for (size_t i = 0; i < got.n; i++)
        assert_true(rec_equals(&got.v[i], tm_find(ms, MN, "pg-move", got.v[i].id), true));
    mem_records_free(&got);

    struct embedder *e = embed_local_new(NEW_DIM, err, sizeof err);
    assert_non_null(e);
    if (move_reembed(db, pg, e, "pg-move", &o, &r, err, sizeof err) != MEMORY_OK)
        fail_msg("reembed: %s", err);
    assert_int_equal(r.done, MN);
    struct store_ns ns;
    assert_int_equal(pg->ops->ns_get(pg, "pg-move", &ns, err, sizeof err), 0);
    assert_int_equal(ns.dim, NEW_DIM);
    got = list_all(pg, "pg-move");
    assert_int_equal(got.n, MN);
    float v[NEW_DIM];
    for (size_t i = 0; i < got.n; i++) {
        struct mem_record *g = &got.v[i];
        float *vec = g->vector;
        g->vector = NULL; /* the fields first, then the new vector */
        assert_true(rec_equals(g, tm_find(ms, MN, "pg-move", g->id), false));
        g->vector = vec;
        const char *t = g->text;
        assert_int_equal(embedder_embed(e, EMBED_DOCUMENT, &t, 1, NULL, v, err, sizeof err), 0);
        assert_int_equal(g->dim, NEW_DIM);
        for (int j = 0; j < NEW_DIM; j++)
            assert_true(fabsf(v[j] - vec[j]) < 1e-6f);
    }
    mem_records_free(&got);
    size_t n = 0;
    assert_int_equal(pg->ops->delete_filter(pg, "pg-move", NULL, &n, err, sizeof err), 0);
    embedder_free(e);
    free(ms);
    store_free(pg);
    store_free(local);
    db_close(db);
}

static void test_unreachable_no_secret(void **state)
{
    (void)state;
    int port = closed_port();
    char url[128];
    snprintf(url, sizeof url, "postgresql://memchat:Sup3r-s3cret@127.0.0.1:%d/memories", port);
    struct vstore *s = store_on(url);
    char err[512];
    struct store_ns ns;
    assert_int_equal(s->ops->ns_get(s, "pu-a", &ns, err, sizeof err), -1);
    assert_int_equal(s->last_fail, REST_UNREACHABLE);
    char where[64];
    snprintf(where, sizeof where, "127.0.0.1:%d/memories", port);
    assert_non_null(strstr(err, where));
    assert_non_null(strstr(err, "cannot connect"));
    assert_null(strstr(err, "Sup3r-s3cret"));
    struct store_health h;
    assert_int_equal(s->ops->health(s, &h, err, sizeof err), -1);
    assert_null(strstr(err, "Sup3r-s3cret"));
    assert_int_equal(s->last_fail, REST_UNREACHABLE);
    store_free(s);
}

/* The server goes away under a connected store: the operation fails as
 * unreachable; once a server answers on the port again, the same store
 * reconnects by itself. */
static void test_server_restart(void **state)
{
    (void)state;
    struct vstore *s = store_on(NULL);
    char err[512];
    ns_make(s, "pr-a");
    struct tmem m;
    tm_init(&m, "pr-a", 1, "before the restart", "u1", 1, 1);
    upsert_ok(s, &m, 1);
    int port = W.pg->port;
    pglite_stop(W.pg);
    W.pg = NULL;
    size_t n = 0;
    assert_int_equal(s->ops->count(s, "pr-a", NULL, &n, err, sizeof err), -1);
    assert_int_equal(s->last_fail, REST_UNREACHABLE);
    assert_non_null(strstr(err, "pr-a"));
    W.pg = pglite_start_on(port);
    /* a new, empty server: the store makes its schema again */
    struct store_ns ns;
    assert_int_equal(s->ops->ns_get(s, "pr-a", &ns, err, sizeof err), 1);
    assert_int_equal(s->last_fail, REST_OK);
    ns_make(s, "pr-a");
    upsert_ok(s, &m, 1);
    struct mem_records out = query_ok(s, "pr-a", m.vec, 3, NULL);
    assert_int_equal(out.n, 1);
    assert_true(rec_equals(&out.v[0], &m, true));
    mem_records_free(&out);
    store_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_required),
        cmocka_unit_test(test_contract),
        cmocka_unit_test(test_isolation),
        cmocka_unit_test(test_ns_mismatch_names_both),
        cmocka_unit_test(test_query_list_count_exact),
        cmocka_unit_test(test_deletes),
        cmocka_unit_test(test_stats_and_namespaces),
        cmocka_unit_test(test_halfvec),
        cmocka_unit_test(test_keyword_metacharacters),
        cmocka_unit_test(test_migrate_and_reembed),
        cmocka_unit_test(test_unreachable_no_secret),
        cmocka_unit_test(test_server_restart),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
