/*
 * Tests of the vector stores (memory/store.c, memory/store_local.c): every
 * field of a memory round-trips; an upsert replaces in place; namespaces
 * remember their embedder, model and dimension; every changed row bumps
 * the generation once; a second connection (with its own index cache, or
 * sharing one) sees the other's inserts, updates and deletes at its next
 * query, by the change log or by a full reload once the log was pruned or
 * the namespace purged and made again; the shared cache never holds a
 * transaction's uncommitted rows, and a query after an uncommitted write
 * is refused; filters select the same memories in query, list, count and
 * delete; keyword search ranks by bm25 and never lets the user's text act
 * as FTS5 syntax. The isolation property test (issue 6, item 6) stores
 * thousands of memories across dozens of tenants with the same texts and
 * ids in several of them and checks every result of every operation
 * against a brute-force reference. Namespaces above the HNSW threshold are
 * searched through their graph with the same answers; its file is caught
 * up from the change log when another process wrote since it was saved,
 * adopted when another process built it, and replaced when damaged or
 * left by a purged namespace.
 *
 * Vectors are built here from a seeded generator, so nothing depends on
 * the embedder, and scores are checked against inner products computed
 * here in double precision.
 */
#include "testutil.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "config/config.h"
#include "memory/filter.h"
#include "memory/store.h"
#include "memory/vindex.h"
#include "memory/vscan.h"
#include "store/db.h"
#include "store_suite.h"
#include "tu_config.h"

struct fixture {
    char *dir;
    char *path; /* dir/memchat.db */
};

/* A data file migrated once for the whole program and copied into each
 * test's directory: creating one runs every migration, which costs
 * seconds under valgrind. */
static char *template_dir;

static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb");
    if (in == NULL)
        return; /* no WAL left beside the file */
    FILE *out = fopen(to, "wb");
    assert_non_null(out);
    char buf[65536];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, in)) > 0)
        assert_int_equal(fwrite(buf, 1, got, out), got);
    fclose(in);
    assert_int_equal(fclose(out), 0);
}

static int group_setup(void **state)
{
    (void)state;
    template_dir = tu_mkdtemp();
    char path[4200];
    snprintf(path, sizeof path, "%s/memchat.db", template_dir);
    enum db_error why;
    char err[512];
    struct db *db = db_open(path, &why, err, sizeof err);
    if (db == NULL) {
        fprintf(stderr, "db_open %s: %s\n", path, err);
        return -1;
    }
    db_close(db);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    tu_rmtree(template_dir);
    free(template_dir);
    return 0;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->dir = tu_mkdtemp();
    size_t n = strlen(f->dir) + sizeof "/memchat.db";
    f->path = malloc(n);
    assert_non_null(f->path);
    snprintf(f->path, n, "%s/memchat.db", f->dir);
    static const char *const files[] = {"memchat.db", "memchat.db-wal"};
    for (size_t i = 0; i < 2; i++) {
        char from[4200], to[4200];
        snprintf(from, sizeof from, "%s/%s", template_dir, files[i]);
        snprintf(to, sizeof to, "%s/%s", f->dir, files[i]);
        copy_file(from, to);
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    tu_rmtree(f->dir);
    free(f->dir);
    free(f->path);
    free(f);
    return 0;
}

static struct db *open_db(const char *path)
{
    enum db_error why;
    char err[512];
    struct db *db = db_open(path, &why, err, sizeof err);
    if (db == NULL)
        fail_msg("db_open: %s", err);
    /* Durability is not under test: no fsync per commit keeps it quick. */
    sqlite3_exec(db_handle(db), "PRAGMA synchronous = OFF", NULL, NULL, NULL);
    return db;
}

/* One integer from raw SQL on db, independent of the code under test. */
static long long raw_int(struct db *db, const char *sql, const char *arg)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db_handle(db), sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("prepare %s: %s", sql, sqlite3_errmsg(db_handle(db)));
    if (arg != NULL)
        sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW)
        fail_msg("step %s: %s", sql, sqlite3_errmsg(db_handle(db)));
    long long v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void raw_exec(struct db *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db_handle(db), sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("exec %s: %s", sql, msg != NULL ? msg : "?");
}

/* --- the cases ------------------------------------------------------------------- */

/* store_new builds the store VECTOR_DB_PROVIDER names (local by default),
 * named after it. */
static void store_new_makes_the_configured_local_store(void **state)
{
    struct fixture *fx = *state;
    struct config *cfg = tu_config(fx->dir, NULL, 0);
    struct db *db = open_db(fx->path);
    char err[512] = "";
    struct vstore *s = store_new(cfg, db, NULL, err, sizeof err);
    assert_non_null(s);
    assert_string_equal(s->name, "local");
    assert_non_null(s->ops->keyword);
    store_free(s);
    store_free(NULL);
    db_close(db);
    config_free(cfg);
}

/* Every field written comes back unchanged from list, query and keyword;
 * a NULL metadata reads back as {}, a zero updated_at as created_at, and
 * list leaves the vectors out unless asked. */
static void every_field_round_trips(void **state)
{
    struct fixture *fx = *state;
    struct db *db = open_db(fx->path);
    struct vstore *s = store_local_new(db, NULL, NULL);
    ns_make(s, "acme");
    struct tmem m[2];
    tm_init(&m[0], "acme", 1, "You logged 35 hours last week on Apollo — café ☕", "u-1",
            1710000000123, 1);
    snprintf(m[0].agent, sizeof m[0].agent, "planner_2");
    snprintf(m[0].kind, sizeof m[0].kind, "exchange");
    m[0].updated = 1710000999999;
    snprintf(m[0].meta, sizeof m[0].meta, "{\"project\":\"apollo\",\"n\":3,\"ok\":true}");
    tm_init(&m[1], "acme", 2, "banana bread recipe", "u_2", 1710000000456, 2);
    m[1].updated = 0;
    upsert_ok(s, m, 2);
    m[1].updated = m[1].created; /* what a zero updated_at reads back as */

    char err[512];
    struct mem_records out;
    assert_int_equal(s->ops->list(s, "acme", NULL, NULL, 10, true, &out, err, sizeof err), 0);
    assert_int_equal(out.n, 2);
    assert_true(rec_equals(&out.v[0], &m[0], true));
    assert_true(rec_equals(&out.v[1], &m[1], true));
    assert_string_equal(out.v[1].metadata, "{}");
    mem_records_free(&out);
    assert_null(out.v);
    assert_int_equal(out.n, 0);

    assert_int_equal(s->ops->list(s, "acme", NULL, NULL, 10, false, &out, err, sizeof err), 0);
    assert_int_equal(out.n, 2);
    assert_true(rec_equals(&out.v[0], &m[0], false));
    assert_int_equal(out.v[0].dim, 0);
    mem_records_free(&out);

    out = query_ok(s, "acme", m[0].vec, 1, NULL);
    assert_int_equal(out.n, 1);
    assert_true(rec_equals(&out.v[0], &m[0], true));
    assert_true(fabs(out.v[0].score - 1.0) < EPS);
    mem_records_free(&out);

    assert_int_equal(s->ops->keyword(s, "acme", "apollo", 5, NULL, &out, err, sizeof err), 0);
    assert_int_equal(out.n, 1);
    assert_true(rec_equals(&out.v[0], &m[0], true));
    mem_records_free(&out);
    store_free(s);
    db_close(db);
}

/* An upsert of an existing id replaces every field and the vector in
 * place (same row, count unchanged), also when the id is written in
 * upper case; the keyword index follows the new text. */
static void upsert_replaces_a_record_in_place(void **state)
{
    struct fixture *fx = *state;
    struct db *db = open_db(fx->path);
    struct vstore *s = store_local_new(db, NULL, NULL);
    ns_make(s, "acme");
    struct tmem m;
    tm_init(&m, "acme", 7, "the old text about zebras", "u1", 1000, 1);
    upsert_ok(s, &m, 1);
    long long rowid = raw_int(db, "SELECT rowid FROM memories WHERE tenant = ?", "acme");
    struct mem_records out = query_ok(s, "acme", m.vec, 1, NULL); /* loads the index */
    mem_records_free(&out);

    struct tmem n2;
    tm_init(&n2, "acme", 7, "the new text about giraffes", "u2", 2000, 99);
    snprintf(n2.kind, sizeof n2.kind, "fact");
    snprintf(n2.agent, sizeof n2.agent, "critic");
    snprintf(n2.meta, sizeof n2.meta, "{\"v\":2}");
    for (char *p = n2.id; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    upsert_ok(s, &n2, 1);
    make_id(n2.id, 7); /* stored in canonical lower case */

    assert_int_equal(count_ok(s, "acme", NULL), 1);
    assert_int_equal(raw_int(db, "SELECT rowid FROM memories WHERE tenant = ?", "acme"), rowid);
    out = query_ok(s, "acme", n2.vec, 5, NULL);
    assert_int_equal(out.n, 1);
    assert_true(rec_equals(&out.v[0], &n2, true));
    assert_true(fabs(out.v[0].score - 1.0) < EPS);
    mem_records_free(&out);
    char err[512];
    assert_int_equal(s->ops->keyword(s, "acme", "zebras", 5, NULL, &out, err, sizeof err), 0);
    assert_int_equal(out.n, 0);
    mem_records_free(&out);
    assert_int_equal(s->ops->keyword(s, "acme", "giraffes", 5, NULL, &out, err, sizeof err), 0);
    assert_int_equal(out.n, 1);
    mem_records_free(&out);
    store_free(s);
    db_close(db);
}

/* A namespace remembers embedder, model and dimension: creating it again
 * with the same three is a no-op, with any other is refused naming both;
 * ns_get says 1 for a tenant without one; namespaces() lists them sorted. */
static void namespaces_remember_embedder_model_and_dimension(void **state)
{
    struct fixture *fx = *state;
    struct db *db = open_db(fx->path);
    struct vstore *s = store_local_new(db, NULL, NULL);
    char err[512];
    struct store_ns got;
    assert_int_equal(s->ops->ns_get(s, "zeta", &got, err, sizeof err), 1);
    struct store_ns ns = {.embedder = "local", .model = "hash-v1", .dim = 24, .created_ms = 42};
    assert_int_equal(s->ops->ns_create(s, "zeta", &ns, err, sizeof err), 0);
    assert_int_equal(s->ops->ns_create(s, "zeta", &ns, err, sizeof err), 0);
    assert_int_equal(s->ops->ns_get(s, "zeta", &got, err, sizeof err), 0);
    assert_string_equal(got.embedder, "local");
    assert_string_equal(got.model, "hash-v1");
    assert_int_equal(got.dim, 24);
    assert_int_equal(got.count, 0);
    assert_int_equal(got.created_ms, 42);

    struct store_ns other = ns;
    other.dim = 32;
    assert_int_equal(s->ops->ns_create(s, "zeta", &other, err, sizeof err), -1);
    assert_non_null(strstr(err, "dimension 24"));
    assert_non_null(strstr(err, "dimension 32"));
    assert_non_null(strstr(err, "zeta"));
    other = ns;
    snprintf(other.embedder, sizeof other.embedder, "openai");
    assert_int_equal(s->ops->ns_create(s, "zeta", &other, err, sizeof err), -1);
    assert_non_null(strstr(err, "openai"));
    other = ns;
    snprintf(other.model, sizeof other.model, "hash-v2");
    assert_int_equal(s->ops->ns_create(s, "zeta", &other, err, sizeof err), -1);
    assert_non_null(strstr(err, "hash-v2"));
    other = ns;
    other.dim = 0;
    assert_int_equal(s->ops->ns_create(s, "alpha", &other, err, sizeof err), -1);
    assert_int_equal(s->ops->ns_create(s, "bad tenant", &ns, err, sizeof err), -1);
    assert_non_null(strstr(err, "[A-Za-z0-9_-]{1,64}"));

    ns_make(s, "alpha");
    ns_make(s, "mid");
    char **names = NULL;
    size_t n = 0;
    assert_int_equal(s->ops->namespaces(s, &names, &n, err, sizeof err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(names[0], "alpha");
    assert_string_equal(names[1], "mid");
    assert_string_equal(names[2], "zeta");
    store_names_free(names, n);
    store_free(s);
    db_close(db);
}

/* Records that break the contract are refused before anything is written,
 * and a batch with one bad record writes none; the messages name the
 * store, the tenant, the data file and the record. */
static void upsert_refuses_what_breaks_the_contract(void **state)
{
    struct fixture *fx = *state;
    struct db *db = open_db(fx->path);
    struct vstore *s = store_local_new(db, NULL, NULL);
    char err[512];
    struct tmem m[2];
    tm_init(&m[0], "acme", 1, "fine text", "u1", 1000, 1);
    tm_init(&m[1], "acme", 2, "also fine", "u1", 1000, 2);
    struct mem_record r = tm_rec(&m[0]);
    assert_int_equal(s->ops->upsert(s, "acme", &r, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "no memory namespace"));
    assert_non_null(strstr(err, "local store"));
    assert_non_null(strstr(err, "acme"));
    assert_non_null(strstr(err, fx->path));
    ns_make(s, "acme");
    struct store_ns ns;
    assert_int_equal(s->ops->ns_get(s, "acme", &ns, err, sizeof err), 0);
    int64_t gen0 = ns.generation;

    /* Each case: one field broken in a copy of a good record. */
    for (int c = 0; c < 11; c++) {
        struct mem_record bad = tm_rec(&m[1]);
        float vec[DIM];
        memcpy(vec, m[1].vec, sizeof vec);
        bad.vector = vec;
        const char *expect = NULL;
        switch (c) {
        case 0:
            bad.dim = DIM / 2;
            expect = "dimension is 16";
            break;
        case 1:
            vec[3] = NAN;
            expect = "NaN";
            break;
        case 2:
            bad.text = (char *)(uintptr_t) "caf\xc3";
            expect = "UTF-8";
            break;
        case 3:
            bad.text = (char *)(uintptr_t) "";
            expect = "empty";
            break;
        case 4:
            snprintf(bad.id, sizeof bad.id, "not-a-uuid");
            expect = "not a UUID";
            break;
        case 5:
            snprintf(bad.user_id, sizeof bad.user_id, "a b");
            expect = "user_id";
            break;
        case 6:
            bad.kind[0] = '\0';
            expect = "kind";
            break;
        case 7:
            bad.metadata = (char *)(uintptr_t) "[1, 2]";
            expect = "JSON object";
            break;
        case 8:
            bad.metadata = (char *)(uintptr_t) "{\"a\":";
            expect = "JSON object";
            break;
        case 9:
            bad.vector = NULL;
            expect = "vector is missing";
            break;
        default:
            bad.created_at = -5;
            expect = "Unix milliseconds";
            break;
        }
        struct mem_record batch[2] = {tm_rec(&m[0]), bad};
        if (s->ops->upsert(s, "acme", batch, 2, err, sizeof err) != -1)
            fail_msg("case %d was accepted", c);
        if (strstr(err, expect) == NULL || strstr(err, "record 1") == NULL ||
            strstr(err, fx->path) == NULL)
            fail_msg("case %d: message \"%s\" lacks \"%s\"", c, err, expect);
    }
    assert_int_equal(count_ok(s, "acme", NULL), 0);
    assert_int_equal(s->ops->ns_get(s, "acme", &ns, err, sizeof err), 0);
    assert_int_equal(ns.generation, gen0);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM memories", NULL), 0);
    assert_int_equal(s->ops->upsert(s, "bad/tenant", &r, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "tenant"));
    store_free(s);
    db_close(db);
}

/* Every inserted, updated or deleted row bumps the namespace's generation
 * by exactly one; deleting a missing id bumps nothing. */
static void every_changed_row_bumps_the_generation_once(void **state)
{
    struct fixture *fx = *state;
    struct db *db = open_db(fx->path);
    struct vstore *s = store_local_new(db, NULL, NULL);
    ns_make(s, "acme");
    char err[512];
    struct store_ns ns;
    assert_int_equal(s->ops->ns_get(s, "acme", &ns, err, sizeof err), 0);
    int64_t g = ns.generation;
    struct tmem m[3];
    for (int i = 0; i < 3; i++)
        tm_init(&m[i], "acme", (unsigned)i + 1, "text", "u1", 1000 + i, (uint64_t)i);
    upsert_ok(s, m, 3);
    assert_int_equal(s->ops->ns_get(s, "acme", &ns, err, sizeof err), 0);
    assert_int_equal(ns.generation, g + 3);
    assert_int_equal(ns.count, 3);
    upsert_ok(s, &m[1], 1);
    assert_int_equal(s->ops->ns_get(s, "acme", &ns, err, sizeof err), 0);
    assert_int_equal(ns.generation, g + 4);
    assert_int_equal(ns.count, 3);
    char missing[MC_UUID_STRLEN + 1];
    make_id(missing, 999);
    const char *ids[] = {m[0].id, m[2].id, missing, "garbage"};
    size_t deleted = 0;
    assert_int_equal(s->ops->delete_ids(s, "acme", ids, 4, &deleted, err, sizeof err), 0);
    assert_int_equal(deleted, 2);
    assert_int_equal(s->ops->ns_get(s, "acme", &ns, err, sizeof err), 0);
    assert_int_equal(ns.generation, g + 6);
    assert_int_equal(ns.count, 1);
    assert_int_equal(s->ops->delete_ids(s, "acme", ids, 3, &deleted, err, sizeof err), 0);
    assert_int_equal(deleted, 0);
    assert_int_equal(s->ops->ns_get(s, "acme", &ns, err, sizeof err), 0);
    assert_int_equal(ns.generation, g + 6);
    store_free(s);
    db_close(db);
}

/* The checks of a second connection: s2 on its own connection sees what
 * s1 wrote at its next query, whatever path its index takes. */
static void second_connection_sees_writes(const char *path, bool shared)
{
    struct db *db1 = open_db(path);
    struct db *db2 = open_db(path);
    struct store_cache *cache = shared ? store_cache_new() : NULL;
    struct vstore *s1 = store_local_new(db1, cache, NULL);
    struct vstore *s2 = store_local_new(db2, cache, NULL);
    enum { N = 40 };
    struct tmem *ms = calloc(N * 2, sizeof *ms);
    assert_non_null(ms);
    ns_make(s1, "acme");
    ns_make(s1, "other");
    for (int i = 0; i < 20; i++)
        tm_init(&ms[i], "acme", (unsigned)i + 1, "note", "u1", 1000 + i, (uint64_t)i);
    upsert_ok(s1, ms, 20);
    float q[DIM];
    uint64_t rng = 5;
    rand_vec(&rng, q);
    check_query(s2, "acme", q, 100, NULL, ms, N * 2); /* s2 loads its index */

    /* An update moves record 3 onto q. */
    memcpy(ms[3].vec, q, sizeof q);
    snprintf(ms[3].text, sizeof ms[3].text, "moved");
    upsert_ok(s1, &ms[3], 1);
    struct mem_records out = query_ok(s2, "acme", q, 1, NULL);
    assert_int_equal(out.n, 1);
    assert_true(rec_equals(&out.v[0], &ms[3], true));
    mem_records_free(&out);

    /* Deletes, then inserts. */
    const char *ids[5];
    for (int i = 0; i < 5; i++) {
        ids[i] = ms[2 * i].id;
        ms[2 * i].alive = false;
    }
    size_t deleted = 0;
    char err[512];
    assert_int_equal(s1->ops->delete_ids(s1, "acme", ids, 5, &deleted, err, sizeof err), 0);
    assert_int_equal(deleted, 5);
    check_query(s2, "acme", q, 100, NULL, ms, N * 2);
    for (int i = 20; i < 25; i++)
        tm_init(&ms[i], "acme", (unsigned)i + 1, "note", "u1", 1000 + i, (uint64_t)i);
    upsert_ok(s1, &ms[20], 5);
    check_query(s2, "acme", q, 100, NULL, ms, N * 2);
    check_query(s2, "acme", ms[21].vec, 3, NULL, ms, N * 2);

    /* More changes, then the log is pruned (as the store does past its
     * limit): s2 can no longer catch up and reloads. */
    for (int i = 25; i < 30; i++)
        tm_init(&ms[i], "acme", (unsigned)i + 1, "note", "u1", 1000 + i, (uint64_t)i + 100);
    upsert_ok(s1, &ms[25], 5);
    ids[0] = ms[1].id;
    ms[1].alive = false;
    assert_int_equal(s1->ops->delete_ids(s1, "acme", ids, 1, &deleted, err, sizeof err), 0);
    raw_exec(db1, "DELETE FROM memory_changes WHERE tenant = 'acme'");
    check_query(s2, "acme", q, 100, NULL, ms, N * 2);
    check_query(s2, "acme", ms[27].vec, 2, NULL, ms, N * 2);

    /* A rowid SQLite reuses for another tenant's row must not surface in
     * this tenant through s2's index. */
    long long top = raw_int(db1, "SELECT max(rowid) FROM memories", NULL);
    struct tmem *last = NULL;
    for (int i = 0; i < 30; i++)
        if (ms[i].alive && raw_int(db1, "SELECT rowid FROM memories WHERE id = ?", ms[i].id) == top)
            last = &ms[i];
    assert_non_null(last);
    ids[0] = last->id;
    last->alive = false;
    assert_int_equal(s1->ops->delete_ids(s1, "acme", ids, 1, &deleted, err, sizeof err), 0);
    tm_init(&ms[30], "other", 31, "intruder", "u1", 5000, 777);
    upsert_ok(s1, &ms[30], 1);
    assert_int_equal(raw_int(db1, "SELECT rowid FROM memories WHERE tenant = ?", "other"), top);
    check_query(s2, "acme", ms[30].vec, 100, NULL, ms, N * 2);
    check_query(s2, "other", ms[30].vec, 100, NULL, ms, N * 2);

    /* Purged and made again with the same creation time: s2 must not take
     * the new namespace's change log for the old one's. */
    struct store_ns ns;
    assert_int_equal(s1->ops->ns_get(s1, "acme", &ns, err, sizeof err), 0);
    assert_int_equal(s1->ops->delete_filter(s1, "acme", NULL, &deleted, err, sizeof err), 0);
    for (int i = 0; i < 30; i++)
        ms[i].alive = false;
    assert_int_equal(s1->ops->ns_create(s1, "acme", &ns, err, sizeof err), 0);
    for (int i = 31; i < 34; i++)
        tm_init(&ms[i], "acme", (unsigned)i + 1, "reborn", "u1", 9000 + i, (uint64_t)i + 500);
    upsert_ok(s1, &ms[31], 3);
    check_query(s2, "acme", q, 100, NULL, ms, N * 2);
    check_query(s2, "acme", ms[32].vec, 1, NULL, ms, N * 2);
    check_query(s1, "acme", q, 100, NULL, ms, N * 2);

    store_free(s1);
    store_free(s2);
    store_cache_free(cache);
    db_close(db1);
    db_close(db2);
    free(ms);
}

/* A store on a second connection, with its own index cache, sees inserts,
 * updates and deletes made on the first at its next query, also after
 * the change log was pruned and after a purge. */
static void a_second_connection_with_its_own_cache_sees_every_write(void **state)
{
    struct fixture *fx = *state;
    second_connection_sees_writes(fx->path, false);
}

/* The same with the two stores sharing one index cache, as the engine's
 * workers do. */
static void two_connections_sharing_one_cache_see_every_write(void **state)
{
    struct fixture *fx = *state;
    second_connection_sees_writes(fx->path, true);
}

/* A namespace purged and made again within the same millisecond, on
 * another connection, is never taken for the old one by an index cached
 * from it: the new namespace's change log must not be applied on top of
 * the old rows (whose rowids SQLite hands to the new ones). */
static void a_namespace_made_again_is_not_mistaken_for_the_old(void **state)
{
    struct fixture *fx = *state;
    struct db *db1 = open_db(fx->path);
    struct db *db2 = open_db(fx->path);
    struct vstore *s1 = store_local_new(db1, NULL, NULL);
    struct vstore *s2 = store_local_new(db2, NULL, NULL);
    struct store_ns ns = {.embedder = "local", .model = "hash-v1", .dim = DIM, .created_ms = 777};
    char err[512];
    assert_int_equal(s1->ops->ns_create(s1, "acme", &ns, err, sizeof err), 0);
    struct tmem ms[5];
    memset(ms, 0, sizeof ms);
    tm_init(&ms[0], "acme", 1, "old one", "u1", 1, 1);
    tm_init(&ms[1], "acme", 2, "old two", "u1", 2, 2);
    upsert_ok(s1, ms, 2);
    check_query(s2, "acme", ms[0].vec, 10, NULL, ms, 5);
    size_t deleted;
    assert_int_equal(s1->ops->delete_filter(s1, "acme", NULL, &deleted, err, sizeof err), 0);
    assert_int_equal(s1->ops->ns_create(s1, "acme", &ns, err, sizeof err), 0);
    ms[0].alive = ms[1].alive = false;
    for (int i = 2; i < 5; i++)
        tm_init(&ms[i], "acme", (unsigned)i + 1, "new", "u1", i, (uint64_t)i + 10);
    upsert_ok(s1, &ms[2], 3);
    check_query(s2, "acme", ms[0].vec, 10, NULL, ms, 5);
    check_query(s2, "acme", ms[1].vec, 2, NULL, ms, 5);
    store_free(s1);
    store_free(s2);
    db_close(db1);
    db_close(db2);
}

/* A query of a tenant this connection wrote in a transaction still open
 * is refused with a message saying why; other tenants may be queried;
 * after commit the write is seen, after rollback it never was, and the
 * other connection, sharing the cache, never sees it before the commit. */
static void a_query_after_an_uncommitted_write_is_refused(void **state)
{
    struct fixture *fx = *state;
    struct db *db1 = open_db(fx->path);
    struct db *db2 = open_db(fx->path);
    struct store_cache *cache = store_cache_new();
    struct vstore *s1 = store_local_new(db1, cache, NULL);
    struct vstore *s2 = store_local_new(db2, cache, NULL);
    struct tmem ms[4];
    memset(ms, 0, sizeof ms);
    ns_make(s1, "acme");
    ns_make(s1, "beta");
    tm_init(&ms[0], "acme", 1, "committed", "u1", 1000, 1);
    tm_init(&ms[1], "beta", 2, "beta's", "u1", 1000, 2);
    upsert_ok(s1, &ms[0], 1);
    upsert_ok(s1, &ms[1], 1);
    check_query(s2, "acme", ms[0].vec, 10, NULL, ms, 4);

    char err[512];
    tm_init(&ms[2], "acme", 3, "pending", "u1", 1000, 3);
    assert_int_equal(db_begin(db1, err, sizeof err), 0);
    upsert_ok(s1, &ms[2], 1);
    struct mem_records out;
    assert_int_equal(s1->ops->query(s1, "acme", ms[2].vec, 10, NULL, &out, err, sizeof err), -1);
    assert_non_null(strstr(err, "still open"));
    assert_non_null(strstr(err, "acme"));
    assert_null(out.v);
    ms[2].alive = false; /* not committed: nobody else may see it */
    check_query(s1, "beta", ms[1].vec, 10, NULL, ms, 4);
    check_query(s2, "acme", ms[2].vec, 10, NULL, ms, 4);
    db_rollback(db1);
    check_query(s1, "acme", ms[2].vec, 10, NULL, ms, 4);
    check_query(s2, "acme", ms[2].vec, 10, NULL, ms, 4);

    assert_int_equal(db_begin(db1, err, sizeof err), 0);
    upsert_ok(s1, &ms[2], 1);
    const char *ids[] = {ms[0].id};
    size_t deleted;
    assert_int_equal(s1->ops->delete_ids(s1, "acme", ids, 1, &deleted, err, sizeof err), 0);
    assert_int_equal(s1->ops->query(s1, "acme", ms[2].vec, 10, NULL, &out, err, sizeof err), -1);
    ms[2].alive = false;
    check_query(s2, "acme", ms[2].vec, 10, NULL, ms, 4);
    assert_int_equal(db_commit(db1, err, sizeof err), 0);
    ms[2].alive = true;
    ms[0].alive = false;
    check_query(s1, "acme", ms[2].vec, 10, NULL, ms, 4);
    check_query(s2, "acme", ms[2].vec, 10, NULL, ms, 4);

    /* A refused query leaves the next transaction alone: after commit, a
     * new transaction that wrote only beta may query acme. */
    assert_int_equal(db_begin(db1, err, sizeof err), 0);
    tm_init(&ms[3], "beta", 4, "beta again", "u1", 1000, 4);
    upsert_ok(s1, &ms[3], 1);
    check_query(s1, "acme", ms[2].vec, 10, NULL, ms, 4);
    assert_int_equal(db_commit(db1, err, sizeof err), 0);
    check_query(s2, "beta", ms[3].vec, 10, NULL, ms, 4);

    store_free(s1);
    store_free(s2);
    store_cache_free(cache);
    db_close(db1);
    db_close(db2);
}

/* A write inside the caller's transaction joins it, and one that fails
 * there undoes only itself: the caller's earlier writes stay and commit
 * with the transaction. */
static void a_failed_write_in_the_callers_transaction_undoes_only_itself(void **state)
{
    struct fixture *fx = *state;
    struct db *db = open_db(fx->path);
    struct vstore *s = store_local_new(db, NULL, NULL);
    ns_make(s, "acme");
    struct tmem ms[3];
    memset(ms, 0, sizeof ms);
    for (int i = 0; i < 3; i++)
        tm_init(&ms[i], "acme", (unsigned)i + 1, "note", "u1", i, (uint64_t)i);
    char err[512];
    assert_int_equal(db_begin(db, err, sizeof err), 0);
    upsert_ok(s, &ms[0], 1);
    ms[2].vec[5] = INFINITY; /* a batch whose second record fails in the write */
    struct mem_record batch[2] = {tm_rec(&ms[1]), tm_rec(&ms[2])};
    assert_int_equal(s->ops->upsert(s, "acme", batch, 2, err, sizeof err), -1);
    assert_non_null(strstr(err, "infinity"));
    assert_int_equal(db_commit(db, err, sizeof err), 0);
    ms[1].alive = ms[2].alive = false;
    check_list_count(s, "acme", NULL, 10, ms, 3);
    /* A write with no transaction open commits at once. */
    ms[2].vec[5] = 0;
    ms[2].alive = true;
    upsert_ok(s, &ms[2], 1);
    db_rollback(db); /* nothing open: a no-op */
    check_list_count(s, "acme", NULL, 10, ms, 3);
    store_free(s);
    db_close(db);
}

/* Queries inside a write transaction, or inside a read snapshot older
 * than the shared index, answer from their own snapshot and leave the
 * shared index as it was: it only ever holds committed state. */
static void the_shared_cache_holds_only_committed_state(void **state)
{
    struct fixture *fx = *state;
    struct db *db1 = open_db(fx->path);
    struct db *db2 = open_db(fx->path);
    struct store_cache *cache = store_cache_new();
    struct vstore *s1 = store_local_new(db1, cache, NULL);
    struct vstore *s2 = store_local_new(db2, cache, NULL);
    struct tmem ms[6];
    memset(ms, 0, sizeof ms);
    ns_make(s1, "acme");
    ns_make(s1, "beta");
    for (int i = 0; i < 3; i++)
        tm_init(&ms[i], "acme", (unsigned)i + 1, "note", "u1", 1000 + i, (uint64_t)i);
    upsert_ok(s2, ms, 3);

    /* In a write transaction (of another tenant) the index is not loaded
     * from this snapshot; the answer is still exact. */
    char err[512];
    struct store_stats st;
    assert_int_equal(db_begin(db1, err, sizeof err), 0);
    tm_init(&ms[3], "beta", 4, "beta", "u1", 1000, 4);
    upsert_ok(s1, &ms[3], 1);
    check_query(s1, "acme", ms[1].vec, 2, NULL, ms, 6);
    assert_int_equal(s1->ops->stats(s1, "acme", &st, err, sizeof err), 0);
    assert_int_equal(st.bytes_in_memory, 0);
    assert_int_equal(db_commit(db1, err, sizeof err), 0);
    check_query(s1, "acme", ms[1].vec, 2, NULL, ms, 6);
    assert_int_equal(s1->ops->stats(s1, "acme", &st, err, sizeof err), 0);
    assert_true(st.bytes_in_memory >= 3 * DIM * sizeof(float));

    /* db1 holds an old read snapshot while s2 writes and moves the shared
     * index ahead: s1 answers from its snapshot, then from the new state. */
    raw_exec(db1, "BEGIN");
    assert_int_equal(raw_int(db1, "SELECT count(*) FROM memories", NULL), 4);
    tm_init(&ms[4], "acme", 5, "newer", "u1", 2000, 5);
    upsert_ok(s2, &ms[4], 1);
    check_query(s2, "acme", ms[4].vec, 10, NULL, ms, 6);
    ms[4].alive = false;
    check_query(s1, "acme", ms[4].vec, 10, NULL, ms, 6);
    raw_exec(db1, "COMMIT");
    ms[4].alive = true;
    check_query(s1, "acme", ms[4].vec, 10, NULL, ms, 6);

    store_free(s1);
    store_free(s2);
    store_cache_free(cache);
    db_close(db1);
    db_close(db2);
}

/* The memories of the filter tests: 40 in acme with users, kinds, times
 * and metadata spread over them, and 40 in beta with the same ids and
 * texts. */
static struct tmem *filter_memories(struct vstore *s, size_t *n)
{
    static const char *const words[] = {"apollo", "banana", "comet", "delta"};
    struct tmem *ms = calloc(80, sizeof *ms);
    assert_non_null(ms);
    for (int t = 0; t < 2; t++) {
        const char *tenant = t == 0 ? "acme" : "beta";
        ns_make(s, tenant);
        for (int i = 0; i < 40; i++) {
            struct tmem *m = &ms[t * 40 + i];
            char text[64], user[8];
            snprintf(text, sizeof text, "%s log number %d", words[i % 4], i);
            snprintf(user, sizeof user, "u%d", i % 4);
            tm_init(m, tenant, (unsigned)i + 1, text, user, 1000 * i + t, (uint64_t)(i + 40 * t));
            snprintf(m->kind, sizeof m->kind, "%s", i % 3 == 0 ? "exchange" : "note");
            snprintf(m->meta, sizeof m->meta, "{\"topic\":\"%s\",\"n\":%d}",
                     i % 2 ? "work" : "home", i);
        }
        upsert_ok(s, &ms[t * 40], 40);
    }
    *n = 80;
    return ms;
}

static const char *const filter_texts[] = {
    "{\"user_id\":\"u1\"}",
    "{\"user_id\":{\"$in\":[\"u1\",\"u2\"]}}",
    "{\"user_id\":{\"$ne\":\"u3\"}}",
    "{\"created_at\":{\"$gte\":10000,\"$lte\":25000}}",
    "{\"topic\":\"work\"}",
    "{\"n\":{\"$gt\":30}}",
    "{\"$or\":[{\"user_id\":\"u0\"},{\"kind\":\"exchange\"}]}",
    "{\"$and\":[{\"topic\":\"home\"},{\"user_id\":{\"$nin\":[\"u0\"]}}]}",
    "{\"id\":{\"$in\":[\"0190a1b2-c3d4-7e5f-8a6b-000000000003\","
    "\"0190a1b2-c3d4-7e5f-8a6b-000000000004\"]}}",
    "{\"missing_key\":{\"$ne\":\"x\"}}",
};

/* Each filter selects the same memories, those filter_match accepts, in
 * query, list, count and keyword, and only the tenant's own. */
static void filters_select_the_same_memories_everywhere(void **state)
{
    struct fixture *fx = *state;
    struct db *db = open_db(fx->path);
    struct vstore *s = store_local_new(db, NULL, NULL);
    size_t n;
    struct tmem *ms = filter_memories(s, &n);
    uint64_t rng = 11;
    float q[DIM];
    rand_vec(&rng, q);
    for (size_t i = 0; i < sizeof filter_texts / sizeof filter_texts[0]; i++) {
        struct mem_filter *f = parse_ok(filter_texts[i]);
        for (int t = 0; t < 2; t++) {
            const char *tenant = t == 0 ? "acme" : "beta";
            check_query(s, tenant, q, 100, f, ms, n);
            check_query(s, tenant, q, 3, f, ms, n);
            check_list_count(s, tenant, f, 4, ms, n);
            check_keyword(s, tenant, "apollo", f, ms, n);
        }
        filter_free(f);
    }
    store_free(s);
    db_close(db);
    free(ms);
}

/* delete_filter removes exactly the tenant's memories the filter selects
 * and says how many; the other tenant's, with the same ids, stay. */
static void delete_by_filter_removes_exactly_the_selected(void **state)
{
    struct fixture *fx = *state;
    struct db *db = open_db(fx->path);
    struct vstore *s = store_local_new(db, NULL, NULL);
    size_t n;
    struct tmem *ms = filter_memories(s, &n);
    uint64_t rng = 12;
    float q[DIM];
    rand_vec(&rng, q);
    check_query(s, "acme", q, 100, NULL, ms, n); /* load the index first */
    const char *which[] = {filter_texts[0], filter_texts[4], filter_texts[8]};
    char err[512];
    for (size_t i = 0; i < 3; i++) {
        struct mem_filter *f = parse_ok(which[i]);
        size_t want = 0;
        for (size_t j = 0; j < n; j++)
            if (ms[j].alive && strcmp(ms[j].tenant, "acme") == 0 && tm_matches(&ms[j], f)) {
                want++;
                ms[j].alive = false;
            }
        size_t deleted = 99;
        assert_int_equal(s->ops->delete_filter(s, "acme", f, &deleted, err, sizeof err), 0);
        assert_int_equal(deleted, want);
        filter_free(f);
        check_query(s, "acme", q, 100, NULL, ms, n);
        check_list_count(s, "acme", NULL, 7, ms, n);
        check_list_count(s, "beta", NULL, 7, ms, n);
    }
    check_query(s, "beta", q, 100, NULL, ms, n);
    store_free(s);
    db_close(db);
    free(ms);
}

/* Purging removes the tenant's memories, change log and namespace and
 * nothing of another tenant; the tenant then reads as empty. */
static void purge_removes_the_namespace_and_only_it(void **state)
{
    struct fixture *fx = *state;
    struct db *db = open_db(fx->path);
    struct vstore *s = store_local_new(db, NULL, NULL);
    size_t n;
    struct tmem *ms = filter_memories(s, &n);
    char err[512];
    size_t deleted = 0;
    assert_int_equal(s->ops->delete_filter(s, "acme", NULL, &deleted, err, sizeof err), 0);
    assert_int_equal(deleted, 40);
    for (size_t i = 0; i < 40; i++)
        ms[i].alive = false;
    assert_int_equal(raw_int(db, "SELECT count(*) FROM memories WHERE tenant = ?", "acme"), 0);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM memory_changes WHERE tenant = ?", "acme"),
                     0);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM memory_namespaces WHERE tenant = ?", "acme"),
                     0);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM memories WHERE tenant = ?", "beta"), 40);
    assert_true(raw_int(db, "SELECT count(*) FROM memory_changes WHERE tenant = ?", "beta") > 0);
    struct store_ns ns;
    assert_int_equal(s->ops->ns_get(s, "acme", &ns, err, sizeof err), 1);
    assert_int_equal(count_ok(s, "acme", NULL), 0);
    float q[DIM];
    memcpy(q, ms[0].vec, sizeof q);
    check_query(s, "acme", q, 10, NULL, ms, n);
    check_query(s, "beta", q, 100, NULL, ms, n);
    check_keyword(s, "acme", "apollo", NULL, ms, n);
    check_list_count(s, "beta", NULL, 100, ms, n);
    struct mem_record r = tm_rec(&ms[0]);
    assert_int_equal(s->ops->upsert(s, "acme", &r, 1, err, sizeof err), -1);
    assert_int_equal(s->ops->delete_filter(s, "acme", NULL, &deleted, err, sizeof err), 0);
    assert_int_equal(deleted, 0);
    store_free(s);
    db_close(db);
    free(ms);
}

/* Keyword search ranks by bm25, best first with positive scores: the
 * memory with both words above those with one, the one saying a word
 * three times above the one saying it once. */
static void keyword_ranks_by_bm25(void **state)
{
    struct fixture *fx = *state;
    struct db *db = open_db(fx->path);
    struct vstore *s = store_local_new(db, NULL, NULL);
    ns_make(s, "acme");
    static const char *const texts[] = {
        "apollo hours logged",
        "apollo apollo apollo launch",
        "banana bread recipe",
        "hours of banana peeling",
    };
    struct tmem ms[4];
    memset(ms, 0, sizeof ms);
    for (int i = 0; i < 4; i++)
        tm_init(&ms[i], "acme", (unsigned)i + 1, texts[i], "u1", 1000 + i, (uint64_t)i);
    upsert_ok(s, ms, 4);
    char err[512];
    struct mem_records out;
    assert_int_equal(s->ops->keyword(s, "acme", "apollo", 10, NULL, &out, err, sizeof err), 0);
    assert_int_equal(out.n, 2);
    assert_string_equal(out.v[0].id, ms[1].id);
    assert_string_equal(out.v[1].id, ms[0].id);
    assert_true(out.v[0].score > out.v[1].score);
    assert_true(out.v[1].score > 0);
    assert_non_null(out.v[0].vector);
    mem_records_free(&out);
    assert_int_equal(s->ops->keyword(s, "acme", "Apollo HOURS?", 10, NULL, &out, err, sizeof err),
                     0);
    assert_int_equal(out.n, 3);
    assert_string_equal(out.v[0].id, ms[0].id);
    mem_records_free(&out);
    assert_int_equal(s->ops->keyword(s, "acme", "apollo hours", 1, NULL, &out, err, sizeof err), 0);
    assert_int_equal(out.n, 1);
    assert_string_equal(out.v[0].id, ms[0].id);
    mem_records_free(&out);
    assert_int_equal(s->ops->keyword(s, "acme", "apollo", 0, NULL, &out, err, sizeof err), 0);
    assert_int_equal(out.n, 0);
    store_free(s);
    db_close(db);
}

/* The user's text never acts as FTS5 syntax: quotes, operators, NEAR,
 * prefix stars, column filters, parentheses and Unicode are searched as
 * words (or ignored when they are not words), never an error; invalid
 * UTF-8 is refused by name. */
static void keyword_quotes_hostile_input(void **state)
{
    struct fixture *fx = *state;
    struct db *db = open_db(fx->path);
    struct vstore *s = store_local_new(db, NULL, NULL);
    ns_make(s, "acme");
    static const char *const texts[] = {
        "this AND that",        "NEAR the station", "stars and colons here",
        "café au lait",         "東京 日本語",      "text: with a column-like prefix",
        "plain words about OR",
    };
    enum { NT = sizeof texts / sizeof texts[0] };
    struct tmem ms[NT];
    memset(ms, 0, sizeof ms);
    for (int i = 0; i < NT; i++)
        tm_init(&ms[i], "acme", (unsigned)i + 1, texts[i], "u1", 1000 + i, (uint64_t)i);
    upsert_ok(s, ms, NT);
    static const struct {
        const char *input;
        size_t hits;
    } cases[] = {
        {"\"", 0},
        {"\"\"\"", 0},
        {"AND", 2},             /* the word "and", in two texts */
        {"NEAR(", 1},           /* the word "near" */
        {"NEAR(x y, 3)", 1},    /* near, x, y, 3: only "near" is in a text */
        {"*", 0},               /* not a word */
        {"stars*", 1},          /* the word stars, not a prefix query */
        {":", 0},               /* not a word */
        {"text:", 1},           /* the word text, not a column filter */
        {"text:with", 1},       /* text OR with: one memory has both */
        {"(station)", 1},       /* parentheses separate */
        {"-that +this", 1},     /* operators separate */
        {"café", 1},            /* Unicode word */
        {"cafe", 1},            /* diacritics folded */
        {"日本語", 1},          /* CJK word */
        {"“quoted”", 0},        /* curly quotes inside a quoted term */
        {"OR", 1},              /* the word "or" in "about OR" */
        {"x\"y OR \"z", 0},     /* x, y, z: "or", a stop word, is left out */
        {"and the station", 1}, /* station alone: the stop words are left out */
        {"AND THE", 3},         /* nothing but stop words: they are searched */
        {"^station", 1},        /* caret separates */
        {"col : station", 1},   /* spaced colon */
        {"", 0},
        {"   \t\n", 0},
    };
    char err[512];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct mem_records out;
        if (s->ops->keyword(s, "acme", cases[i].input, 10, NULL, &out, err, sizeof err) != 0)
            fail_msg("keyword \"%s\": %s", cases[i].input, err);
        if (out.n != cases[i].hits)
            fail_msg("keyword \"%s\": %zu hits, want %zu", cases[i].input, out.n, cases[i].hits);
        mem_records_free(&out);
    }
    /* A very long text: its first 64 words are searched, no error. */
    char *big = malloc(200000);
    assert_non_null(big);
    size_t len = 0;
    for (int i = 0; i < 20000; i++)
        len += (size_t)snprintf(big + len, 200000 - len, "w%d ", i);
    struct mem_records out;
    assert_int_equal(s->ops->keyword(s, "acme", big, 10, NULL, &out, err, sizeof err), 0);
    assert_int_equal(out.n, 0);
    free(big);
    assert_int_equal(s->ops->keyword(s, "acme", "caf\xc3", 10, NULL, &out, err, sizeof err), -1);
    assert_non_null(strstr(err, "UTF-8"));
    assert_int_equal(s->ops->keyword(s, "nobody", "café", 10, NULL, &out, err, sizeof err), 0);
    assert_int_equal(out.n, 0);
    store_free(s);
    db_close(db);
}

/* list pages through a tenant in id order: pages of 7 of 25 memories
 * give each once; after the last id the list is empty; limit 0 is empty. */
static void list_pages_in_id_order(void **state)
{
    struct fixture *fx = *state;
    struct db *db = open_db(fx->path);
    struct vstore *s = store_local_new(db, NULL, NULL);
    ns_make(s, "acme");
    ns_make(s, "beta");
    struct tmem ms[50];
    memset(ms, 0, sizeof ms);
    for (int i = 0; i < 25; i++) {
        /* Ids inserted out of order. */
        tm_init(&ms[i], "acme", (unsigned)((i * 7) % 25) + 1, "note", "u1", 1000 + i, (uint64_t)i);
        tm_init(&ms[25 + i], "beta", (unsigned)i + 1, "note", "u1", 5000 + i, (uint64_t)i);
    }
    upsert_ok(s, ms, 25);
    upsert_ok(s, &ms[25], 25);
    check_list_count(s, "acme", NULL, 7, ms, 50);
    check_list_count(s, "acme", NULL, 1, ms, 50);
    check_list_count(s, "acme", NULL, 1000, ms, 50);
    char err[512];
    struct mem_records out;
    char last[MC_UUID_STRLEN + 1];
    make_id(last, 25);
    assert_int_equal(s->ops->list(s, "acme", NULL, last, 10, false, &out, err, sizeof err), 0);
    assert_int_equal(out.n, 0);
    assert_int_equal(s->ops->list(s, "acme", NULL, NULL, 0, false, &out, err, sizeof err), 0);
    assert_int_equal(out.n, 0);
    assert_int_equal(s->ops->list(s, "acme", NULL, "bad id", 3, false, &out, err, sizeof err), -1);
    assert_int_equal(s->ops->list(s, "nobody", NULL, NULL, 3, false, &out, err, sizeof err), 0);
    assert_int_equal(out.n, 0);
    store_free(s);
    db_close(db);
}

/* stats counts memories, distinct users, the oldest and newest times and
 * the text bytes of the tenant alone; the in-memory figure is 0 until a
 * query loads the index, then at least the vectors' bytes. */
static void stats_describe_the_tenant_alone(void **state)
{
    struct fixture *fx = *state;
    struct db *db = open_db(fx->path);
    struct vstore *s = store_local_new(db, NULL, NULL);
    ns_make(s, "acme");
    ns_make(s, "beta");
    struct tmem ms[6];
    memset(ms, 0, sizeof ms);
    size_t text_bytes = 0;
    for (int i = 0; i < 5; i++) {
        char user[8];
        snprintf(user, sizeof user, "u%d", i % 3);
        tm_init(&ms[i], "acme", (unsigned)i + 1, i == 2 ? "café ☕ unicode" : "note text", user,
                5000 - 1000 * i, (uint64_t)i);
        text_bytes += strlen(ms[i].text);
    }
    tm_init(&ms[5], "beta", 9, "beta's own text, longer than the others", "u9", 1, 9);
    upsert_ok(s, ms, 5);
    upsert_ok(s, &ms[5], 1);
    char err[512];
    struct store_stats st;
    assert_int_equal(s->ops->stats(s, "acme", &st, err, sizeof err), 0);
    assert_int_equal(st.count, 5);
    assert_int_equal(st.users, 3);
    assert_int_equal(st.oldest, 1000);
    assert_int_equal(st.newest, 5000);
    assert_int_equal(st.text_bytes, text_bytes);
    assert_true(st.bytes_on_disk >= text_bytes + 5 * DIM * sizeof(float));
    assert_int_equal(st.bytes_in_memory, 0);
    struct mem_records out = query_ok(s, "acme", ms[0].vec, 1, NULL);
    mem_records_free(&out);
    assert_int_equal(s->ops->stats(s, "acme", &st, err, sizeof err), 0);
    assert_true(st.bytes_in_memory >= 5 * DIM * sizeof(float));
    assert_int_equal(s->ops->stats(s, "nobody", &st, err, sizeof err), 0);
    assert_int_equal(st.count, 0);
    assert_int_equal(st.oldest, 0);
    store_free(s);
    db_close(db);
}

/* Every operation refuses a tenant id outside the identifier contract,
 * naming the pattern; query refuses a missing vector; k = 0 is empty. */
static void operations_refuse_bad_tenants(void **state)
{
    struct fixture *fx = *state;
    struct db *db = open_db(fx->path);
    struct vstore *s = store_local_new(db, NULL, NULL);
    ns_make(s, "acme");
    char err[512];
    struct mem_records out;
    float q[DIM] = {1};
    size_t n;
    struct store_stats st;
    struct store_ns ns;
    const char *bad = "../etc";
    assert_int_equal(s->ops->query(s, bad, q, 3, NULL, &out, err, sizeof err), -1);
    assert_non_null(strstr(err, "[A-Za-z0-9_-]{1,64}"));
    assert_int_equal(s->ops->keyword(s, bad, "x", 3, NULL, &out, err, sizeof err), -1);
    assert_int_equal(s->ops->list(s, bad, NULL, NULL, 3, false, &out, err, sizeof err), -1);
    assert_int_equal(s->ops->count(s, bad, NULL, &n, err, sizeof err), -1);
    assert_int_equal(s->ops->stats(s, bad, &st, err, sizeof err), -1);
    assert_int_equal(s->ops->ns_get(s, "", &ns, err, sizeof err), -1);
    assert_int_equal(s->ops->delete_filter(s, NULL, NULL, &n, err, sizeof err), -1);
    assert_int_equal(s->ops->delete_ids(s, bad, NULL, 0, &n, err, sizeof err), -1);
    assert_int_equal(s->ops->query(s, "acme", NULL, 3, NULL, &out, err, sizeof err), -1);
    assert_int_equal(s->ops->query(s, "acme", q, 0, NULL, &out, err, sizeof err), 0);
    assert_int_equal(out.n, 0);
    assert_int_equal(s->ops->query(s, "nobody", q, 5, NULL, &out, err, sizeof err), 0);
    assert_int_equal(out.n, 0);
    store_free(s);
    db_close(db);
}

/* A write prunes its tenant's change log to the last 50,000 entries, and
 * leaves other tenants' logs alone; an index further behind than the log
 * reaches reloads and answers right. The long log is made by hand (the
 * entries a long history of writes would have left), so the test does not
 * have to make 50,000 writes. */
static void the_change_log_is_pruned_to_its_last_entries(void **state)
{
    struct fixture *fx = *state;
    struct db *db1 = open_db(fx->path);
    struct db *db2 = open_db(fx->path);
    struct vstore *s1 = store_local_new(db1, NULL, NULL);
    struct vstore *s2 = store_local_new(db2, NULL, NULL);
    ns_make(s1, "acme");
    ns_make(s1, "beta");
    struct tmem ms[3];
    memset(ms, 0, sizeof ms);
    tm_init(&ms[0], "acme", 1, "first", "u1", 1, 1);
    tm_init(&ms[1], "beta", 2, "beta", "u1", 2, 2);
    upsert_ok(s1, &ms[0], 1);
    upsert_ok(s1, &ms[1], 1);
    check_query(s2, "acme", ms[0].vec, 3, NULL, ms, 3); /* s2's index, at this generation */
    /* 60,000 more changes of rows long gone, in both tenants. */
    static const char *const fake[] = {"acme", "beta"};
    for (int i = 0; i < 2; i++) {
        char sql[512];
        snprintf(sql, sizeof sql,
                 "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 60000)"
                 " INSERT INTO memory_changes (tenant, generation, row) SELECT '%s',"
                 " (SELECT generation FROM memory_namespaces WHERE tenant = '%s') + x, -x FROM c;"
                 " UPDATE memory_namespaces SET generation = generation + 60000"
                 " WHERE tenant = '%s'",
                 fake[i], fake[i], fake[i]);
        raw_exec(db1, sql);
    }
    tm_init(&ms[2], "acme", 3, "second", "u1", 3, 3);
    upsert_ok(s1, &ms[2], 1);
    assert_int_equal(raw_int(db1, "SELECT count(*) FROM memory_changes WHERE tenant = ?", "acme"),
                     50000);
    /* The newest entries are the ones kept. */
    assert_int_equal(raw_int(db1,
                             "SELECT max(generation) - min(generation) FROM memory_changes"
                             " WHERE tenant = ?",
                             "acme"),
                     49999);
    assert_int_equal(raw_int(db1,
                             "SELECT (SELECT generation FROM memory_namespaces WHERE tenant = ?1)"
                             " = (SELECT max(generation) FROM memory_changes WHERE tenant = ?1)",
                             "acme"),
                     1);
    assert_int_equal(raw_int(db1, "SELECT count(*) FROM memory_changes WHERE tenant = ?", "beta"),
                     60001);
    check_query(s2, "acme", ms[2].vec, 3, NULL, ms, 3);
    check_query(s2, "beta", ms[1].vec, 3, NULL, ms, 3);
    store_free(s1);
    store_free(s2);
    db_close(db1);
    db_close(db2);
}

/* --- threads sharing one cache ----------------------------------------------------- */

struct thr {
    const char *path;
    struct store_cache *cache;
    int idx;
    struct tmem *common; /* the "common" tenant's memories, read only */
    size_t n_common;
    int failures;
    char msg[600];
};

static void *thr_main(void *arg)
{
    struct thr *t = arg;
    enum db_error why;
    char err[512];
    struct db *db = db_open(t->path, &why, err, sizeof err);
    if (db == NULL) {
        t->failures++;
        snprintf(t->msg, sizeof t->msg, "db_open: %s", err);
        return NULL;
    }
    sqlite3_exec(db_handle(db), "PRAGMA synchronous = OFF", NULL, NULL, NULL);
    /* The subject is the shared cache, not lock waits: under valgrind,
     * which runs one thread at a time, a writer can hold the lock longer
     * than the data file's 5 s busy timeout while the others wait. */
    sqlite3_busy_timeout(db_handle(db), 120000);
    struct vstore *s = store_local_new(db, t->cache, NULL);
    char tenant[16];
    snprintf(tenant, sizeof tenant, "th%d", t->idx);
    struct store_ns ns = {.embedder = "local", .model = "hash-v1", .dim = DIM};
    if (s->ops->ns_create(s, tenant, &ns, err, sizeof err) != 0) {
        t->failures++;
        snprintf(t->msg, sizeof t->msg, "ns_create: %s", err);
    }
    uint64_t rng = 1000 + (uint64_t)t->idx;
    for (int i = 0; i < 40 && t->failures == 0; i++) {
        struct tmem m;
        tm_init(&m, tenant, (unsigned long long)(t->idx * 1000 + i), "thread note", "u1", i,
                rng_next(&rng));
        struct mem_record r = tm_rec(&m);
        struct mem_records out;
        if (s->ops->upsert(s, tenant, &r, 1, err, sizeof err) != 0 ||
            s->ops->query(s, tenant, m.vec, 1, NULL, &out, err, sizeof err) != 0) {
            t->failures++;
            snprintf(t->msg, sizeof t->msg, "write/query: %s", err);
            break;
        }
        if (out.n != 1 || !rec_equals(&out.v[0], &m, true)) {
            t->failures++;
            snprintf(t->msg, sizeof t->msg, "own query %d: wrong answer", i);
        }
        mem_records_free(&out);
        size_t n = 0;
        if (s->ops->count(s, tenant, NULL, &n, err, sizeof err) != 0 || n != (size_t)i + 1) {
            t->failures++;
            snprintf(t->msg, sizeof t->msg, "count %d: %zu", i, n);
        }
        float q[DIM];
        rand_vec(&rng, q);
        if (s->ops->query(s, "common", q, 5, NULL, &out, err, sizeof err) != 0) {
            t->failures++;
            snprintf(t->msg, sizeof t->msg, "common query: %s", err);
            break;
        }
        if (out.n != 5)
            t->failures++;
        for (size_t j = 0; j < out.n; j++) {
            struct tmem *cm = tm_find(t->common, t->n_common, "common", out.v[j].id);
            if (cm == NULL || !rec_equals(&out.v[j], cm, true) ||
                fabs(out.v[j].score - ref_dot(q, cm->vec)) > EPS) {
                t->failures++;
                snprintf(t->msg, sizeof t->msg, "common query: foreign result %s", out.v[j].id);
            }
        }
        mem_records_free(&out);
    }
    store_free(s);
    db_close(db);
    return NULL;
}

/* Stores on their own connections in four threads share one cache: each
 * sees its own writes at once and reads the common tenant correctly while
 * the others load and update their indexes. */
static void threads_share_one_cache(void **state)
{
    struct fixture *fx = *state;
    struct db *db = open_db(fx->path);
    struct store_cache *cache = store_cache_new();
    struct vstore *s = store_local_new(db, cache, NULL);
    ns_make(s, "common");
    struct tmem common[50];
    for (int i = 0; i < 50; i++)
        tm_init(&common[i], "common", (unsigned)i + 1, "shared note", "u1", i, (uint64_t)i);
    upsert_ok(s, common, 50);
    enum { NT = 4 };
    struct thr t[NT];
    pthread_t th[NT];
    for (int i = 0; i < NT; i++) {
        t[i] = (struct thr){
            .path = fx->path, .cache = cache, .idx = i, .common = common, .n_common = 50};
        assert_int_equal(pthread_create(&th[i], NULL, thr_main, &t[i]), 0);
    }
    for (int i = 0; i < NT; i++) {
        pthread_join(th[i], NULL);
        if (t[i].failures != 0)
            fail_msg("thread %d: %d failures, last: %s", i, t[i].failures, t[i].msg);
    }
    store_free(s);
    store_cache_free(cache);
    db_close(db);
}

/* --- the isolation property test ------------------------------------------------ */

/* The contract every store keeps (tests/unit/store_suite.h), as the
 * remote stores' tests run it. */
static void the_local_store_keeps_the_shared_contract(void **state)
{
    struct fixture *fx = *state;
    struct db *db = open_db(fx->path);
    struct vstore *s = store_local_new(db, NULL, NULL);
    suite_contract(s);
    store_free(s);
    db_close(db);
}

/* THE isolation property (tests/unit/store_suite.h) through three
 * connections of one data file, two of them sharing an index cache. */
static void no_operation_of_a_tenant_touches_another(void **state)
{
    struct fixture *fx = *state;
    struct db *dbs[3] = {open_db(fx->path), open_db(fx->path), open_db(fx->path)};
    struct store_cache *cache = store_cache_new();
    struct vstore *stores[3] = {store_local_new(dbs[0], cache, NULL),
                                store_local_new(dbs[1], cache, NULL),
                                store_local_new(dbs[2], NULL, NULL)};
    suite_isolation(stores, 3);
    for (size_t i = 0; i < 3; i++) {
        store_free(stores[i]);
        db_close(dbs[i]);
    }
    store_cache_free(cache);
}

/* --- the HNSW index of a large namespace ------------------------------------ */

/* HNSW from 50 memories, with a candidate list larger than any test
 * namespace: the search then expands every node it reaches, so its answer
 * is the exact one and check_query's reference applies unchanged. */
static const struct vindex_opts hnsw_small = {
    .hnsw_threshold = 50,
    .hnsw = {.m = 8, .ef_construction = 64, .seed = 42},
    .ef_search = 1024,
};

/* n memories of tenant numbered from first (ids, texts, users u0..u2). */
static void hnsw_fill(struct tmem *ms, size_t n, const char *tenant, size_t first)
{
    for (size_t i = 0; i < n; i++) {
        char text[64];
        snprintf(text, sizeof text, "note %zu", first + i);
        tm_init(&ms[i], tenant, first + i + 1, text,
                i % 3 == 0   ? "u0"
                : i % 3 == 1 ? "u1"
                             : "u2",
                (int64_t)(first + i), first + i + 1000);
    }
}

/* A store with hnsw_small on a new connection to path, holding the n
 * memories ms of tenant acme (filled here); *db receives the connection. */
static struct vstore *hnsw_store(const char *path, struct tmem *ms, size_t n, struct db **db)
{
    *db = open_db(path);
    struct vstore *s = store_local_new(*db, NULL, &hnsw_small);
    ns_make(s, "acme");
    hnsw_fill(ms, n, "acme", 0);
    upsert_ok(s, ms, n);
    return s;
}

static struct store_index_info index_ok(struct vstore *s, const char *tenant, bool rebuild)
{
    struct store_index_info info;
    char err[512];
    if (s->ops->index(s, tenant, rebuild, NULL, NULL, &info, err, sizeof err) != 0)
        fail_msg("index %s: %s", tenant, err);
    return info;
}

static bool file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* A namespace above the threshold is searched through its graph once
 * `index` built it: the answers (with and without filters, after updates
 * and deletes) are those of the reference, the file is written to index/
 * beside the data file, and a namespace below the threshold keeps the
 * exact scan and gets no file. */
static void a_large_namespace_is_searched_through_its_graph(void **state)
{
    struct fixture *fx = *state;
    struct db *db = open_db(fx->path);
    struct vstore *s = store_local_new(db, NULL, &hnsw_small);
    enum { N = 300 };
    struct tmem *ms = calloc(N + 10, sizeof *ms);
    assert_non_null(ms);
    ns_make(s, "acme");
    ns_make(s, "small");
    hnsw_fill(ms, N, "acme", 0);
    upsert_ok(s, ms, N);
    hnsw_fill(&ms[N], 10, "small", N);
    upsert_ok(s, &ms[N], 10);

    struct store_index_info info = index_ok(s, "acme", false);
    assert_true(info.hnsw);
    assert_true(info.built);
    assert_true(info.wanted);
    assert_int_equal(info.count, N);
    assert_int_equal(info.m, 8);
    assert_int_equal(info.file_generation, -1); /* there was none */
    assert_non_null(strstr(info.path, "/index/acme.hnsw"));
    assert_true(file_exists(info.path));
    assert_true(info.bytes_on_disk > (size_t)N * DIM * sizeof(float));

    struct store_index_info small = index_ok(s, "small", false);
    assert_false(small.hnsw);
    assert_false(small.wanted);
    assert_non_null(strstr(small.note, "MEMORY_HNSW_THRESHOLD=50"));
    assert_false(file_exists(small.path));

    uint64_t rs = 5;
    for (int q = 0; q < 20; q++) {
        float v[DIM];
        rand_vec(&rs, v);
        check_query(s, "acme", v, 10, NULL, ms, N + 10);
    }
    struct mem_filter *u1 = parse_ok("{\"user_id\":\"u1\"}");
    struct mem_filter *few = parse_ok("{\"created_at\":{\"$lt\":3}}");
    check_query(s, "acme", ms[7].vec, 10, u1, ms, N + 10);
    check_query(s, "acme", ms[7].vec, 10, few, ms, N + 10);

    /* Updates move a memory's vector; deletes take memories out. */
    for (size_t i = 0; i < 40; i++)
        seed_vec(5000 + i, ms[i].vec);
    upsert_ok(s, ms, 40);
    const char *gone[60];
    for (size_t i = 0; i < 60; i++) {
        gone[i] = ms[100 + i].id;
        ms[100 + i].alive = false;
    }
    size_t deleted;
    char err[512];
    assert_int_equal(s->ops->delete_ids(s, "acme", gone, 60, &deleted, err, sizeof err), 0);
    assert_int_equal(deleted, 60);
    for (size_t i = 0; i < 40; i += 3)
        check_query(s, "acme", ms[i].vec, 10, NULL, ms, N + 10);
    check_query(s, "acme", ms[101].vec, 10, u1, ms, N + 10);
    info = index_ok(s, "acme", false);
    assert_true(info.hnsw);
    assert_false(info.built);
    assert_int_equal(info.count, N - 60);

    filter_free(u1);
    filter_free(few);
    store_free(s);
    db_close(db);
    free(ms);
}

/* The file another process left behind is mapped at the next start and
 * the changes made since it was saved are replayed from the change log
 * (the generation check): a new process finds the memories a second
 * process added and not the ones it deleted, and `index` reports how far
 * behind the file was before saving it again. */
static void a_stale_index_file_is_caught_up_from_the_change_log(void **state)
{
    struct fixture *fx = *state;
    enum { N = 200, ADD = 25 };
    struct tmem *ms = calloc(N + ADD, sizeof *ms);
    assert_non_null(ms);
    struct db *db1;
    struct vstore *s1 = hnsw_store(fx->path, ms, N, &db1);
    struct store_index_info built = index_ok(s1, "acme", false);
    assert_true(built.built);
    int64_t saved = built.generation;

    /* A second process writes without ever querying. */
    struct db *db2 = open_db(fx->path);
    struct vstore *s2 = store_local_new(db2, NULL, &hnsw_small);
    hnsw_fill(&ms[N], ADD, "acme", N);
    upsert_ok(s2, &ms[N], ADD);
    const char *gone[] = {ms[3].id, ms[4].id, ms[150].id};
    size_t deleted;
    char err[512];
    assert_int_equal(s2->ops->delete_ids(s2, "acme", gone, 3, &deleted, err, sizeof err), 0);
    ms[3].alive = ms[4].alive = ms[150].alive = false;

    /* A third process starts: the file is behind by those 28 changes. */
    struct db *db3 = open_db(fx->path);
    struct vstore *s3 = store_local_new(db3, NULL, &hnsw_small);
    check_query(s3, "acme", ms[N + 3].vec, 10, NULL, ms, N + ADD);
    check_query(s3, "acme", ms[3].vec, 10, NULL, ms, N + ADD);
    struct store_index_info info = index_ok(s3, "acme", false);
    assert_true(info.hnsw);
    assert_false(info.built);
    assert_int_equal(info.file_generation, saved);
    assert_int_equal(info.generation, saved + ADD + 3);
    assert_int_equal(info.count, N + ADD - 3);

    /* The first process, holding the old graph, catches up as well. */
    check_query(s1, "acme", ms[N + 7].vec, 10, NULL, ms, N + ADD);

    /* The file was brought up to date: a fourth process replays nothing. */
    struct db *db4 = open_db(fx->path);
    struct vstore *s4 = store_local_new(db4, NULL, &hnsw_small);
    struct store_index_info fresh = index_ok(s4, "acme", false);
    assert_true(fresh.hnsw);
    assert_int_equal(fresh.file_generation, info.generation);
    assert_int_equal(fresh.caught_up, 0);

    struct vstore *ss[] = {s1, s2, s3, s4};
    struct db *dbs[] = {db1, db2, db3, db4};
    for (int i = 0; i < 4; i++) {
        store_free(ss[i]);
        db_close(dbs[i]);
    }
    free(ms);
}

/* A process that scans a large namespace exactly (no file yet) switches
 * to the graph as soon as another process has built the file. */
static void an_index_built_by_another_process_is_adopted(void **state)
{
    struct fixture *fx = *state;
    enum { N = 120 };
    struct tmem ms[N];
    memset(ms, 0, sizeof ms);
    struct db *db1;
    struct vstore *s1 = hnsw_store(fx->path, ms, N, &db1);
    check_query(s1, "acme", ms[9].vec, 5, NULL, ms, N);
    struct store_stats st1;
    char err[512];
    assert_int_equal(s1->ops->stats(s1, "acme", &st1, err, sizeof err), 0);

    struct db *db2 = open_db(fx->path);
    struct vstore *s2 = store_local_new(db2, NULL, &hnsw_small);
    assert_true(index_ok(s2, "acme", false).built);

    check_query(s1, "acme", ms[9].vec, 5, NULL, ms, N);
    struct store_index_info info = index_ok(s1, "acme", false);
    assert_true(info.hnsw);
    assert_false(info.built); /* it took the other process's file */
    store_free(s1);
    store_free(s2);
    db_close(db1);
    db_close(db2);
}

/* A damaged index file, or one of a namespace purged and made again, is
 * never followed: queries scan exactly and stay right, and `index` says
 * what was wrong and builds a new file. Purge removes the file. */
static void a_damaged_or_foreign_index_file_is_replaced(void **state)
{
    struct fixture *fx = *state;
    enum { N = 100 };
    struct tmem ms[N];
    memset(ms, 0, sizeof ms);
    struct db *db;
    struct vstore *s = hnsw_store(fx->path, ms, N, &db);
    struct store_index_info info = index_ok(s, "acme", false);
    assert_true(info.built);
    char path[4200];
    snprintf(path, sizeof path, "%s", info.path);

    /* Garbage where the graph was: a new process must not trust it. */
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 0, SEEK_SET), 0);
    assert_int_equal(fwrite("garbage!", 1, 8, fp), 8);
    assert_int_equal(fclose(fp), 0);
    struct db *db2 = open_db(fx->path);
    struct vstore *s2 = store_local_new(db2, NULL, &hnsw_small);
    check_query(s2, "acme", ms[1].vec, 10, NULL, ms, N);
    info = index_ok(s2, "acme", false);
    assert_true(info.built);
    assert_int_equal(info.file_generation, -1);
    assert_true(strstr(info.note, path) != NULL || strstr(info.note, "index file") != NULL);
    store_free(s2);
    db_close(db2);

    /* Purge, then the same tenant again: the new namespace never takes a
     * file of the old one, and purge removed it anyway. */
    size_t deleted;
    char err[512];
    struct db *db3 = open_db(fx->path);
    struct vstore *s3 = store_local_new(db3, NULL, &hnsw_small);
    check_query(s3, "acme", ms[1].vec, 10, NULL, ms, N); /* maps the good file */
    assert_int_equal(s->ops->delete_filter(s, "acme", NULL, &deleted, err, sizeof err), 0);
    assert_false(file_exists(path));
    ns_make(s, "acme");
    for (size_t i = 0; i < N; i++)
        ms[i].alive = false;
    struct tmem fresh[60];
    memset(fresh, 0, sizeof fresh);
    hnsw_fill(fresh, 60, "acme", 500);
    upsert_ok(s, fresh, 60);
    check_query(s3, "acme", ms[1].vec, 10, NULL, fresh, 60);
    info = index_ok(s3, "acme", false);
    assert_true(info.built);
    store_free(s3);
    db_close(db3);
    store_free(s);
    db_close(db);
}

/* --rebuild builds from the rows even when an up-to-date file exists,
 * and the new graph answers the same. */
static void rebuild_builds_from_the_rows(void **state)
{
    struct fixture *fx = *state;
    enum { N = 80 };
    struct tmem ms[N];
    memset(ms, 0, sizeof ms);
    struct db *db;
    struct vstore *s = hnsw_store(fx->path, ms, N, &db);
    assert_true(index_ok(s, "acme", false).built);
    assert_false(index_ok(s, "acme", false).built);
    struct store_index_info again = index_ok(s, "acme", true);
    assert_true(again.built);
    assert_true(again.hnsw);
    check_query(s, "acme", ms[30].vec, 10, NULL, ms, N);
    store_free(s);
    db_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(store_new_makes_the_configured_local_store, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(every_field_round_trips, setup, teardown),
        cmocka_unit_test_setup_teardown(upsert_replaces_a_record_in_place, setup, teardown),
        cmocka_unit_test_setup_teardown(namespaces_remember_embedder_model_and_dimension, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(upsert_refuses_what_breaks_the_contract, setup, teardown),
        cmocka_unit_test_setup_teardown(every_changed_row_bumps_the_generation_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_second_connection_with_its_own_cache_sees_every_write,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(two_connections_sharing_one_cache_see_every_write, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_namespace_made_again_is_not_mistaken_for_the_old, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_query_after_an_uncommitted_write_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            a_failed_write_in_the_callers_transaction_undoes_only_itself, setup, teardown),
        cmocka_unit_test_setup_teardown(the_shared_cache_holds_only_committed_state, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(filters_select_the_same_memories_everywhere, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(delete_by_filter_removes_exactly_the_selected, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(purge_removes_the_namespace_and_only_it, setup, teardown),
        cmocka_unit_test_setup_teardown(keyword_ranks_by_bm25, setup, teardown),
        cmocka_unit_test_setup_teardown(keyword_quotes_hostile_input, setup, teardown),
        cmocka_unit_test_setup_teardown(list_pages_in_id_order, setup, teardown),
        cmocka_unit_test_setup_teardown(stats_describe_the_tenant_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(operations_refuse_bad_tenants, setup, teardown),
        cmocka_unit_test_setup_teardown(the_change_log_is_pruned_to_its_last_entries, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(threads_share_one_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(no_operation_of_a_tenant_touches_another, setup, teardown),
        cmocka_unit_test_setup_teardown(the_local_store_keeps_the_shared_contract, setup, teardown),
        cmocka_unit_test_setup_teardown(a_large_namespace_is_searched_through_its_graph, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_stale_index_file_is_caught_up_from_the_change_log, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(an_index_built_by_another_process_is_adopted, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_damaged_or_foreign_index_file_is_replaced, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(rebuild_builds_from_the_rows, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
