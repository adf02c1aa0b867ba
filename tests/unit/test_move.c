/*
 * Tests of memory/move.c, the resumable migrate and reembed, on temporary
 * data files with the real local embedder and store. A second data file's
 * local store, behind a wrapper that can pose as a server's store and fail
 * on demand (store_wrap.h), is the other side of a migrate. Each test
 * checks what a user relies on: every field and vector arrives, nothing of
 * another tenant does, a run stopped by a failure or a cancel leaves a
 * checkpoint that matches what was written and the next run finishes from
 * it, every memory exists somewhere at every stop, and the refusals change
 * nothing.
 */
#include "testutil.h"

#include <math.h>
#include <stdatomic.h>

#include <sqlite3.h>

#include "memory/embed.h"
#include "memory/manager.h"
#include "memory/move.h"
#include "memory/store.h"
#include "store/db.h"
#include "store_wrap.h"
#include "util/alloc.h"

#define N_MEM 23 /* memories of tenant acme in each test */
#define DIM_A 16 /* the dimension they are stored with */
#define DIM_B 24 /* the dimension a reembed moves them to */
#define BATCH 5  /* memories per page: N_MEM makes 5 pages */

struct fixture {
    char *dir;
    struct db *db;  /* memchat.db: checkpoints, and the local store */
    struct db *db2; /* other.db: the other store's rows */
};

static struct db *open_db(const char *dir, const char *name)
{
    char path[4200], err[512] = "";
    snprintf(path, sizeof path, "%s/%s", dir, name);
    enum db_error why;
    struct db *db = db_open(path, &why, err, sizeof err);
    if (db == NULL)
        fail_msg("db_open %s: %s", name, err);
    return db;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->dir = tu_mkdtemp();
    f->db = open_db(f->dir, "memchat.db");
    f->db2 = open_db(f->dir, "other.db");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    db_close(f->db);
    db_close(f->db2);
    tu_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* ---- helpers ------------------------------------------------------------ */

static struct embedder *local_embedder(int dim)
{
    char err[256] = "";
    struct embedder *e = embed_local_new(dim, err, sizeof err);
    if (e == NULL)
        fail_msg("embed_local_new: %s", err);
    return e;
}

/* Stores n distinct memories of tenant on db's local store with dim. */
static void seed(struct db *db, const char *tenant, size_t n, int dim)
{
    struct memory_settings set;
    memset(&set, 0, sizeof set);
    set.k = 5;
    set.dedup_threshold = 2; /* never refresh */
    set.max_bytes = 2000;
    char err[512] = "";
    struct memory_manager *m =
        memory_new(&set, local_embedder(dim), store_local_new(db, NULL, NULL), db, err, sizeof err);
    if (m == NULL)
        fail_msg("memory_new: %s", err);
    static const char *const topics[] = {"sailing", "bread", "chess", "tea", "volcanoes"};
    for (size_t i = 0; i < n; i++) {
        char text[160], meta[64];
        snprintf(text, sizeof text, "Note %zu: the user talked about %s on day %zu of the trip.", i,
                 topics[i % 5], i * 7 % 31);
        snprintf(meta, sizeof meta, "{\"i\":%zu,\"topic\":\"%s\"}", i, topics[i % 5]);
        struct memory_add a = {.tenant = tenant,
                               .user = i % 2 ? "alice" : "bob",
                               .agent = "assistant",
                               .text = text,
                               .metadata = meta,
                               .no_dedup = true};
        struct memory_added out;
        if (memory_add(m, &a, &out, err, sizeof err) != MEMORY_OK)
            fail_msg("memory_add: %s", err);
    }
    memory_free(m);
}

/* Every record of tenant in s, vectors loaded, in id order. */
static struct mem_records all_of(struct vstore *s, const char *tenant)
{
    struct mem_records rs = {0};
    char err[512] = "";
    if (s->ops->list(s, tenant, NULL, NULL, 100000, true, &rs, err, sizeof err) != 0)
        fail_msg("list: %s", err);
    return rs;
}

static size_t count_of(struct vstore *s, const char *tenant)
{
    size_t n = 0;
    char err[512] = "";
    if (s->ops->count(s, tenant, NULL, &n, err, sizeof err) != 0)
        fail_msg("count: %s", err);
    return n;
}

static int dim_of(struct vstore *s, const char *tenant)
{
    struct store_ns ns;
    char err[512] = "";
    int rc = s->ops->ns_get(s, tenant, &ns, err, sizeof err);
    if (rc < 0)
        fail_msg("ns_get: %s", err);
    return rc == 1 ? 0 : ns.dim;
}

/* The one integer sql (binding tenant as ?1, when it has it) answers. */
static long long sql_int(struct db *db, const char *sql, const char *tenant)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db_handle(db), sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_bind_parameter_count(st) > 0)
        sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    long long v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static long long checkpoints(struct db *db)
{
    return sql_int(db, "SELECT count(*) FROM memory_moves", NULL);
}

static long long checkpoint_done(struct db *db, const char *kind)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT done FROM memory_moves WHERE tenant = ?1 AND kind = '%s'",
             kind);
    return sql_int(db, sql, "acme");
}

static long long copy_rows(struct db *db)
{
    return sql_int(db, "SELECT count(*) FROM memory_move_rows", NULL);
}

/* Same fields; vectors too when with_vectors (bit for bit: a migrate
 * copies them). */
static void same_records(const struct mem_records *a, const struct mem_records *b,
                         bool with_vectors)
{
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        const struct mem_record *x = &a->v[i], *y = &b->v[i];
        assert_string_equal(x->id, y->id);
        assert_string_equal(x->text, y->text);
        assert_string_equal(x->user_id, y->user_id);
        assert_string_equal(x->agent, y->agent);
        assert_string_equal(x->kind, y->kind);
        assert_int_equal(x->created_at, y->created_at);
        assert_int_equal(x->updated_at, y->updated_at);
        assert_string_equal(x->metadata != NULL ? x->metadata : "{}",
                            y->metadata != NULL ? y->metadata : "{}");
        if (with_vectors) {
            assert_int_equal(x->dim, y->dim);
            assert_memory_equal(x->vector, y->vector, (size_t)x->dim * sizeof(float));
        }
    }
}

/* Each record's vector is e's embedding of its text. */
static void vectors_are_embeddings(const struct mem_records *rs, struct embedder *e)
{
    float *v = xcalloc((size_t)e->dim, sizeof *v);
    char err[256] = "";
    for (size_t i = 0; i < rs->n; i++) {
        const char *t = rs->v[i].text;
        assert_int_equal(embedder_embed(e, EMBED_DOCUMENT, &t, 1, NULL, v, err, sizeof err), 0);
        assert_int_equal(rs->v[i].dim, e->dim);
        for (int j = 0; j < e->dim; j++)
            assert_true(fabsf(v[j] - rs->v[i].vector[j]) < 1e-6f);
    }
    xfree(v);
}

/* acme's records in a and b are the same, vectors included. */
static void expect_same_in_both(struct vstore *a, struct vstore *b)
{
    struct mem_records x = all_of(a, "acme"), y = all_of(b, "acme");
    same_records(&x, &y, true);
    mem_records_free(&x);
    mem_records_free(&y);
}

/* acme's records in s are those of *before (freed here) with e's vectors. */
static void expect_reembedded(struct vstore *s, struct mem_records *before, struct embedder *e)
{
    struct mem_records after = all_of(s, "acme");
    same_records(before, &after, false);
    vectors_are_embeddings(&after, e);
    mem_records_free(before);
    mem_records_free(&after);
}

/* Sets the cancel flag at the stop-th progress call of stage. */
struct stopper {
    atomic_bool cancel;
    const char *stage;
    int calls, stop;
};

static void stopper_progress(void *ud, const char *stage, size_t done, size_t total)
{
    struct stopper *s = ud;
    assert_true(done <= total);
    if (s->stage != NULL && strcmp(stage, s->stage) == 0 && ++s->calls == s->stop)
        atomic_store(&s->cancel, true);
}

static struct move_opts opts_with(struct stopper *s)
{
    struct move_opts o = {.batch = BATCH};
    if (s != NULL) {
        o.cancel = &s->cancel;
        o.progress = stopper_progress;
        o.ud = s;
    }
    return o;
}

/* ---- migrate ------------------------------------------------------------ */

/* Every field and vector of the tenant arrives, another tenant's do not,
 * the target namespace has the source's identity, and the finished move
 * leaves no checkpoint. */
static void migrate_copies_every_field_and_vector(void **state)
{
    struct fixture *f = *state;
    seed(f->db, "acme", N_MEM, DIM_A);
    seed(f->db, "zeta", 4, DIM_A);
    struct wrap *w;
    struct vstore *from = store_local_new(f->db, NULL, NULL);
    struct vstore *to = wrap_new(store_local_new(f->db2, NULL, NULL), "qdrant", true, &w);
    struct move_opts o = opts_with(NULL);
    struct move_report r;
    char err[1024] = "";
    assert_int_equal(move_migrate(f->db, from, to, "acme", &o, &r, err, sizeof err), MEMORY_OK);
    assert_int_equal(r.total, N_MEM);
    assert_int_equal(r.done, N_MEM);
    assert_false(r.resumed);
    assert_int_equal(r.source_count, N_MEM);
    assert_int_equal(r.target_count, N_MEM);
    assert_int_equal(r.target_before, 0);
    assert_string_equal(r.source, "local");
    assert_string_equal(r.target, "qdrant");
    expect_same_in_both(from, to);
    assert_int_equal(dim_of(to, "acme"), DIM_A);
    assert_int_equal(dim_of(to, "zeta"), 0);
    assert_int_equal(count_of(from, "acme"), N_MEM);
    assert_int_equal(checkpoints(f->db), 0);
    store_free(to);
    store_free(from);
}

/* A server failing in the middle: the checkpoint holds exactly the pages
 * written, the message says how to resume, and the next run writes only
 * the rest and ends with the same records. */
static void migrate_resumes_after_a_server_failure(void **state)
{
    struct fixture *f = *state;
    seed(f->db, "acme", N_MEM, DIM_A);
    struct wrap *w;
    struct vstore *from = store_local_new(f->db, NULL, NULL);
    struct vstore *to = wrap_new(store_local_new(f->db2, NULL, NULL), "qdrant", true, &w);
    struct move_opts o = opts_with(NULL);
    struct move_report r;
    char err[1024] = "";
    w->upserts_left = 2;
    assert_int_equal(move_migrate(f->db, from, to, "acme", &o, &r, err, sizeof err),
                     MEMORY_ERR_STORE);
    assert_true(r.remote);
    assert_non_null(strstr(err, "run the same command to resume"));
    assert_non_null(strstr(err, "checkpoint: 10 of 23")); /* the stored one, not one ahead */
    assert_int_equal(checkpoint_done(f->db, "migrate"), 2 * BATCH);
    assert_int_equal(count_of(to, "acme"), 2 * BATCH);

    w->upserts_left = -1;
    assert_int_equal(move_migrate(f->db, from, to, "acme", &o, &r, err, sizeof err), MEMORY_OK);
    assert_true(r.resumed);
    assert_int_equal(r.resumed_from, 2 * BATCH);
    assert_int_equal(r.done, N_MEM);
    expect_same_in_both(from, to);
    assert_int_equal(checkpoints(f->db), 0);
    store_free(to);
    store_free(from);
}

/* Into the local store, a page and its checkpoint commit together: a
 * write that fails after writing is rolled back with its checkpoint, so
 * the two always agree; a cancel stops at a checkpoint too. */
static void migrate_into_the_local_store_commits_page_and_checkpoint_together(void **state)
{
    struct fixture *f = *state;
    seed(f->db2, "acme", N_MEM, DIM_A);
    struct wrap *wf, *wt;
    struct vstore *from = wrap_new(store_local_new(f->db2, NULL, NULL), "pgvector", true, &wf);
    struct vstore *to = wrap_new(store_local_new(f->db, NULL, NULL), "local", false, &wt);
    struct stopper stop = {.stage = "copying", .stop = 3};
    struct move_opts o = opts_with(&stop);
    struct move_report r;
    char err[1024] = "";
    /* The progress calls: one before the first page, then one per page. */
    assert_int_equal(move_migrate(f->db, from, to, "acme", &o, &r, err, sizeof err),
                     MEMORY_ERR_CANCELLED);
    assert_non_null(strstr(err, "stopped after 10 of 23"));
    assert_int_equal(checkpoint_done(f->db, "migrate"), 2 * BATCH);
    assert_int_equal(count_of(to, "acme"), 2 * BATCH);

    atomic_store(&stop.cancel, false);
    stop.stage = NULL;
    wt->fail_upsert = true; /* writes, then fails: the transaction must undo it */
    assert_int_equal(move_migrate(f->db, from, to, "acme", &o, &r, err, sizeof err),
                     MEMORY_ERR_STORE);
    assert_false(r.remote);
    assert_int_equal(checkpoint_done(f->db, "migrate"), 2 * BATCH);
    assert_int_equal(count_of(to, "acme"), 2 * BATCH);

    wt->fail_upsert = false;
    assert_int_equal(move_migrate(f->db, from, to, "acme", &o, &r, err, sizeof err), MEMORY_OK);
    assert_int_equal(r.resumed_from, 2 * BATCH);
    expect_same_in_both(from, to);
    store_free(to);
    store_free(from);
}

/* The refusals: the same store twice, a tenant without memories, a target
 * made with another dimension (nothing written), and a checkpoint of
 * another pair unless --restart. */
static void migrate_refuses_what_it_cannot_do_and_changes_nothing(void **state)
{
    struct fixture *f = *state;
    seed(f->db, "acme", N_MEM, DIM_A);
    seed(f->db2, "acme", 3, DIM_B);
    struct wrap *w, *w2;
    struct vstore *from = store_local_new(f->db, NULL, NULL);
    struct vstore *to = wrap_new(store_local_new(f->db2, NULL, NULL), "qdrant", true, &w);
    struct move_opts o = opts_with(NULL);
    struct move_report r;
    char err[1024] = "";
    assert_int_equal(move_migrate(f->db, from, from, "acme", &o, &r, err, sizeof err),
                     MEMORY_ERR_INPUT);
    assert_int_equal(move_migrate(f->db, from, to, "nobody", &o, &r, err, sizeof err),
                     MEMORY_ERR_NOT_FOUND);
    assert_non_null(strstr(err, "no memories"));
    assert_int_equal(move_migrate(f->db, from, to, "acme", &o, &r, err, sizeof err),
                     MEMORY_ERR_MISMATCH);
    assert_non_null(strstr(err, "/16"));
    assert_non_null(strstr(err, "/24"));
    assert_int_equal(count_of(to, "acme"), 3);
    assert_int_equal(checkpoints(f->db), 0); /* a refusal leaves no checkpoint behind */

    /* An unfinished migrate to qdrant, then one to weaviate. */
    size_t gone = 0;
    assert_int_equal(to->ops->delete_filter(to, "acme", NULL, &gone, err, sizeof err), 0);
    w->upserts_left = 1;
    assert_int_equal(move_migrate(f->db, from, to, "acme", &o, &r, err, sizeof err),
                     MEMORY_ERR_STORE);
    store_free(to);
    to = wrap_new(store_local_new(f->db2, NULL, NULL), "weaviate", true, &w2);
    assert_int_equal(move_migrate(f->db, from, to, "acme", &o, &r, err, sizeof err),
                     MEMORY_ERR_INPUT);
    assert_non_null(strstr(err, "--from local --to qdrant"));
    assert_non_null(strstr(err, "--restart"));
    o.restart = true;
    assert_int_equal(move_migrate(f->db, from, to, "acme", &o, &r, err, sizeof err), MEMORY_OK);
    assert_false(r.resumed);
    assert_int_equal(r.target_before, BATCH); /* the page the failed run wrote */
    assert_int_equal(r.target_count, N_MEM);
    assert_int_equal(checkpoints(f->db), 0);
    store_free(to);
    store_free(from);
}

/* ---- reembed ------------------------------------------------------------ */

/* A dimension change: the namespace gets the new identity, every field is
 * kept, every vector is the new embedder's, the document frequencies are
 * recounted (they were corrupted first, so a run that kept them fails),
 * and no checkpoint or copy is left. */
static void reembed_rebuilds_the_namespace_with_the_new_embedder(void **state)
{
    struct fixture *f = *state;
    seed(f->db, "acme", N_MEM, DIM_A);
    seed(f->db, "ref", N_MEM, DIM_B); /* the same texts stored at DIM_B */
    assert_int_equal(sqlite3_exec(db_handle(f->db),
                                  "UPDATE memory_df SET df = df + 7 WHERE tenant = 'acme'", NULL,
                                  NULL, NULL),
                     SQLITE_OK);
    struct vstore *s = store_local_new(f->db, NULL, NULL);
    struct mem_records before = all_of(s, "acme");
    struct embedder *e = local_embedder(DIM_B);
    struct move_opts o = opts_with(NULL);
    struct move_report r;
    char err[1024] = "";
    assert_int_equal(move_reembed(f->db, s, e, "acme", &o, &r, err, sizeof err), MEMORY_OK);
    assert_string_equal(r.source, "local/hash-v1/16");
    assert_string_equal(r.target, "local/hash-v1/24");
    assert_int_equal(r.done, N_MEM);
    assert_int_equal(r.target_count, N_MEM);
    assert_false(r.nothing_to_do);
    assert_int_equal(dim_of(s, "acme"), DIM_B);
    expect_reembedded(s, &before, e);
    const char *df_diff =
        "SELECT (SELECT count(*) FROM (SELECT term, df FROM memory_df WHERE tenant = 'acme'"
        " EXCEPT SELECT term, df FROM memory_df WHERE tenant = 'ref'))"
        " + (SELECT count(*) FROM (SELECT term, df FROM memory_df WHERE tenant = 'ref'"
        " EXCEPT SELECT term, df FROM memory_df WHERE tenant = 'acme'))";
    assert_true(sql_int(f->db, "SELECT count(*) FROM memory_df WHERE tenant = 'ref'", NULL) > 0);
    assert_int_equal(sql_int(f->db, df_diff, NULL), 0);
    assert_int_equal(checkpoints(f->db), 0);
    assert_int_equal(copy_rows(f->db), 0);

    /* Again: nothing to do, unless forced. */
    assert_int_equal(move_reembed(f->db, s, e, "acme", &o, &r, err, sizeof err), MEMORY_OK);
    assert_true(r.nothing_to_do);
    o.force = true;
    assert_int_equal(move_reembed(f->db, s, e, "acme", &o, &r, err, sizeof err), MEMORY_OK);
    assert_false(r.nothing_to_do);
    assert_int_equal(r.done, N_MEM);
    assert_int_equal(count_of(s, "acme"), N_MEM);
    embedder_free(e);
    store_free(s);
}

/* Stopped in each phase in turn (reading, embedding, writing), every
 * memory is in the store or in the copy at every stop, and the last run
 * finishes with every memory re-embedded. */
static void reembed_resumes_from_every_phase(void **state)
{
    struct fixture *f = *state;
    seed(f->db, "acme", N_MEM, DIM_A);
    struct vstore *s = store_local_new(f->db, NULL, NULL);
    struct mem_records before = all_of(s, "acme");
    struct embedder *e = local_embedder(DIM_B);
    struct move_report r;
    char err[1024] = "";
    static const char *const stages[] = {"reading", "embedding", "writing"};
    for (size_t i = 0; i < 3; i++) {
        struct stopper stop = {.stage = stages[i], .stop = 2};
        struct move_opts o = opts_with(&stop);
        assert_int_equal(move_reembed(f->db, s, e, "acme", &o, &r, err, sizeof err),
                         MEMORY_ERR_CANCELLED);
        assert_true(i == 0 || r.resumed);
        long long in_store = (long long)count_of(s, "acme"), copied = copy_rows(f->db);
        if (i < 2) {
            /* The old namespace is untouched until the copy is embedded. */
            assert_int_equal(in_store, N_MEM);
            assert_int_equal(dim_of(s, "acme"), DIM_A);
        } else {
            assert_int_equal(copied, N_MEM);
            assert_int_equal(in_store, BATCH);
            assert_int_equal(dim_of(s, "acme"), DIM_B);
        }
        assert_int_equal(checkpoint_done(f->db, "reembed"), BATCH);
    }
    struct move_opts o = opts_with(NULL);
    assert_int_equal(move_reembed(f->db, s, e, "acme", &o, &r, err, sizeof err), MEMORY_OK);
    assert_true(r.resumed);
    assert_int_equal(r.resumed_from, BATCH);
    expect_reembedded(s, &before, e);
    assert_int_equal(copy_rows(f->db), 0);
    embedder_free(e);
    store_free(s);
}

/* A server store failing while the new namespace is written: the copy
 * still holds every memory, and the next run finishes. */
static void reembed_survives_a_store_failure_while_writing(void **state)
{
    struct fixture *f = *state;
    seed(f->db2, "acme", N_MEM, DIM_A);
    struct wrap *w;
    struct vstore *s = wrap_new(store_local_new(f->db2, NULL, NULL), "qdrant", true, &w);
    struct mem_records before = all_of(s, "acme");
    struct embedder *e = local_embedder(DIM_B);
    struct move_opts o = opts_with(NULL);
    struct move_report r;
    char err[1024] = "";
    w->upserts_left = 1;
    assert_int_equal(move_reembed(f->db, s, e, "acme", &o, &r, err, sizeof err), MEMORY_ERR_STORE);
    assert_true(r.remote);
    assert_non_null(strstr(err, "resume"));
    assert_int_equal(copy_rows(f->db), N_MEM);
    assert_int_equal(count_of(s, "acme"), BATCH);
    w->upserts_left = -1;
    assert_int_equal(move_reembed(f->db, s, e, "acme", &o, &r, err, sizeof err), MEMORY_OK);
    expect_reembedded(s, &before, e);
    embedder_free(e);
    store_free(s);
}

/* The embedder changed again before the old namespace was removed: the
 * copy is embedded again with the newest one. Changed while the new
 * namespace is being written: refused, naming both, until the first one
 * is configured again. */
static void reembed_follows_or_refuses_an_embedder_changed_midway(void **state)
{
    struct fixture *f = *state;
    seed(f->db, "acme", N_MEM, DIM_A);
    struct vstore *s = store_local_new(f->db, NULL, NULL);
    struct embedder *e24 = local_embedder(DIM_B), *e32 = local_embedder(32);
    struct move_report r;
    char err[1024] = "";
    struct stopper stop = {.stage = "embedding", .stop = 3};
    struct move_opts o = opts_with(&stop);
    assert_int_equal(move_reembed(f->db, s, e24, "acme", &o, &r, err, sizeof err),
                     MEMORY_ERR_CANCELLED);
    o = opts_with(NULL);
    assert_int_equal(move_reembed(f->db, s, e32, "acme", &o, &r, err, sizeof err), MEMORY_OK);
    assert_int_equal(dim_of(s, "acme"), 32);
    struct mem_records after = all_of(s, "acme");
    vectors_are_embeddings(&after, e32);
    mem_records_free(&after);

    stop = (struct stopper){.stage = "writing", .stop = 2};
    o = opts_with(&stop);
    assert_int_equal(move_reembed(f->db, s, e24, "acme", &o, &r, err, sizeof err),
                     MEMORY_ERR_CANCELLED);
    o = opts_with(NULL);
    assert_int_equal(move_reembed(f->db, s, e32, "acme", &o, &r, err, sizeof err),
                     MEMORY_ERR_MISMATCH);
    assert_non_null(strstr(err, "local/hash-v1/24"));
    assert_non_null(strstr(err, "local/hash-v1/32"));
    assert_int_equal(copy_rows(f->db), N_MEM);
    assert_int_equal(move_reembed(f->db, s, e24, "acme", &o, &r, err, sizeof err), MEMORY_OK);
    assert_int_equal(count_of(s, "acme"), N_MEM);
    assert_int_equal(dim_of(s, "acme"), DIM_B);
    embedder_free(e24);
    embedder_free(e32);
    store_free(s);
}

/* A text longer than the new embedder takes stops the reembed before
 * anything changed, naming the memory; a tenant without memories is
 * refused. */
static void reembed_refuses_a_text_the_embedder_cannot_take(void **state)
{
    struct fixture *f = *state;
    seed(f->db, "acme", N_MEM, DIM_A);
    struct vstore *s = store_local_new(f->db, NULL, NULL);
    struct embedder *e = local_embedder(DIM_B);
    e->max_bytes = 30; /* shorter than every seeded text */
    struct move_opts o = opts_with(NULL);
    struct move_report r;
    char err[1024] = "";
    assert_int_equal(move_reembed(f->db, s, e, "acme", &o, &r, err, sizeof err), MEMORY_ERR_INPUT);
    assert_non_null(strstr(err, "nothing was changed"));
    struct mem_records rs = all_of(s, "acme");
    assert_non_null(strstr(err, rs.v[0].id));
    mem_records_free(&rs);
    assert_int_equal(dim_of(s, "acme"), DIM_A);
    assert_int_equal(count_of(s, "acme"), N_MEM);
    assert_int_equal(checkpoints(f->db), 0);
    assert_int_equal(copy_rows(f->db), 0);
    assert_int_equal(move_reembed(f->db, s, e, "nobody", &o, &r, err, sizeof err),
                     MEMORY_ERR_NOT_FOUND);
    embedder_free(e);
    store_free(s);
}

/* Purge removes the tenant's checkpoints and copy, and only the tenant's. */
static void purge_removes_checkpoints_and_the_copy(void **state)
{
    struct fixture *f = *state;
    seed(f->db, "acme", N_MEM, DIM_A);
    seed(f->db, "zeta", N_MEM, DIM_A);
    struct vstore *s = store_local_new(f->db, NULL, NULL);
    struct embedder *e = local_embedder(DIM_B);
    struct move_report r;
    char err[1024] = "";
    const char *const tenants[] = {"acme", "zeta"};
    for (size_t i = 0; i < 2; i++) {
        struct stopper stop = {.stage = "embedding", .stop = 2};
        struct move_opts o = opts_with(&stop);
        assert_int_equal(move_reembed(f->db, s, e, tenants[i], &o, &r, err, sizeof err),
                         MEMORY_ERR_CANCELLED);
    }
    assert_int_equal(copy_rows(f->db), 2 * N_MEM);
    size_t removed = 0;
    assert_int_equal(move_purge(f->db, "acme", &removed, err, sizeof err), 0);
    assert_int_equal(removed, N_MEM);
    assert_int_equal(copy_rows(f->db), N_MEM);
    assert_int_equal(checkpoints(f->db), 1);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM memory_moves WHERE tenant = ?1", "zeta"),
                     1);
    embedder_free(e);
    store_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(migrate_copies_every_field_and_vector, setup, teardown),
        cmocka_unit_test_setup_teardown(migrate_resumes_after_a_server_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(
            migrate_into_the_local_store_commits_page_and_checkpoint_together, setup, teardown),
        cmocka_unit_test_setup_teardown(migrate_refuses_what_it_cannot_do_and_changes_nothing,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(reembed_rebuilds_the_namespace_with_the_new_embedder, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(reembed_resumes_from_every_phase, setup, teardown),
        cmocka_unit_test_setup_teardown(reembed_survives_a_store_failure_while_writing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(reembed_follows_or_refuses_an_embedder_changed_midway,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(reembed_refuses_a_text_the_embedder_cannot_take, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(purge_removes_checkpoints_and_the_copy, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
