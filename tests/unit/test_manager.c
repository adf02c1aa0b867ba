/*
 * Tests of the memory manager (memory/manager.c) on a temporary data file
 * with the real local embedder and store: recall of a paraphrased fact,
 * the MMR and hybrid rankings checked against hand computations on fixed
 * vectors (a fake embedder maps known texts to known vectors), dedup by
 * refresh, chunking, the namespace mismatch for every operation, user
 * scope, deletes and purges with their history, document frequencies
 * against a recomputation from the stored texts, batches that are all or
 * nothing, bad input, stats and the import/export JSON. A fake embedder
 * and a wrapper around the local store fail on demand for the error paths.
 */
#include "testutil.h"

#include <math.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "memory/embed.h"
#include "memory/filter.h"
#include "memory/manager.h"
#include "memory/store.h"
#include "store/db.h"
#include "store/memhist.h"
#include "store_wrap.h"
#include "tu_config.h"
#include "util/alloc.h"
#include "util/utf8.h"
#include "util/uuid.h"

#define FAKE_DIM 4

/* |a - b| <= eps in double (cmocka's assert_float_equal works in float). */
#define assert_near(a, b, eps) near_at((double)(a), (double)(b), (eps), __FILE__, __LINE__)

static void near_at(double a, double b, double eps, const char *file, int line)
{
    if (!(fabs(a - b) <= eps))
        fail_msg("%s:%d: %.17g is not within %g of %.17g", file, line, a, eps, b);
}

struct fixture {
    char *dir;
    struct db *db;
    struct memory_manager *m;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->dir = tu_mkdtemp();
    char path[4200], err[512] = "";
    snprintf(path, sizeof path, "%s/memchat.db", f->dir);
    enum db_error why;
    f->db = db_open(path, &why, err, sizeof err);
    if (f->db == NULL)
        fail_msg("db_open: %s", err);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    memory_free(f->m);
    db_close(f->db);
    tu_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* The defaults of config/vars.h. */
static struct memory_settings defaults(void)
{
    struct memory_settings s = {
        .method = MEMORY_MMR,
        .k = 5,
        .fetch_k = 0,
        .diversity = 0.3,
        .fusion = MEMORY_FUSION_SCORE,
        .keyword_weight = 0.5,
        .dedup_threshold = 0.95,
        .max_bytes = 8192,
        .user_scope = false,
    };
    return s;
}

/* A manager over the local embedder (dim) and the local store on f's file. */
static struct memory_manager *local_manager(struct fixture *f, const struct memory_settings *set,
                                            int dim)
{
    char err[512] = "";
    struct embedder *e = embed_local_new(dim, err, sizeof err);
    if (e == NULL)
        fail_msg("embed_local_new: %s", err);
    struct vstore *s = store_local_new(f->db, NULL, NULL);
    assert_non_null(s);
    struct memory_manager *m = memory_new(set, e, s, f->db, err, sizeof err);
    if (m == NULL)
        fail_msg("memory_new: %s", err);
    return m;
}

/* --- a fake embedder: fixed vectors for fixed texts ---------------------- */

struct fake_vec {
    const char *text;
    float v[FAKE_DIM];
};

struct fake_emb {
    const struct fake_vec *table;
    size_t n;
    bool fail;
};

static int fake_embed(struct embedder *e, enum embed_mode mode, const char *const *texts, size_t n,
                      const struct embed_df *df, float *out, char *err, size_t errlen)
{
    (void)mode;
    (void)df;
    struct fake_emb *fe = e->impl;
    if (fe->fail) {
        snprintf(err, errlen, "embedder fake: the service is down");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < fe->n && strcmp(fe->table[j].text, texts[i]) != 0)
            j++;
        if (j == fe->n) {
            snprintf(err, errlen, "embedder fake: no vector for \"%s\"", texts[i]);
            return -1;
        }
        memcpy(out + i * FAKE_DIM, fe->table[j].v, sizeof fe->table[j].v);
    }
    return 0;
}

static size_t fake_terms(const struct embedder *e, const char *text, size_t len, uint32_t *terms,
                         size_t cap)
{
    (void)e;
    (void)text;
    (void)len;
    (void)terms;
    (void)cap;
    return 0;
}

static void fake_free(struct embedder *e)
{
    xfree(e->impl);
    xfree(e);
}

static const struct embedder_ops fake_ops = {
    .embed = fake_embed, .terms = fake_terms, .free = fake_free};

static struct embedder *fake_new(const struct fake_vec *table, size_t n)
{
    struct embedder *e = xcalloc(1, sizeof *e);
    struct fake_emb *fe = xcalloc(1, sizeof *fe);
    fe->table = table;
    fe->n = n;
    e->ops = &fake_ops;
    snprintf(e->name, sizeof e->name, "fake");
    snprintf(e->model, sizeof e->model, "fixed");
    e->dim = FAKE_DIM;
    e->max_bytes = 1024;
    e->max_batch = 2;
    e->impl = fe;
    return e;
}

/* --- helpers ------------------------------------------------------------- */

/* Adds text as user's note in tenant; fails the test on error. */
static void add_ok(struct memory_manager *m, const char *tenant, const char *user, const char *text,
                   const char *meta, struct memory_added *out)
{
    struct memory_add a = {
        .tenant = tenant, .user = user, .agent = "assistant", .text = text, .metadata = meta};
    struct memory_added tmp;
    char err[512] = "";
    enum memory_status st = memory_add(m, &a, out != NULL ? out : &tmp, err, sizeof err);
    if (st != MEMORY_OK)
        fail_msg("memory_add(%s): %s", text, err);
}

/* Memories of tenant. */
static size_t count_of(struct memory_manager *m, const char *tenant)
{
    struct mem_records rs = {0};
    char err[512] = "";
    enum memory_status st = memory_list(m, tenant, NULL, NULL, 0, false, &rs, err, sizeof err);
    if (st != MEMORY_OK)
        fail_msg("memory_list: %s", err);
    size_t n = rs.n;
    mem_records_free(&rs);
    return n;
}

/* The text of tenant's memory id (caller frees), or NULL. */
static char *text_of(struct memory_manager *m, const char *tenant, const char *id)
{
    struct mem_filter *f = filter_eq("id", id);
    struct mem_records rs = {0};
    char err[512] = "";
    assert_int_equal(memory_list(m, tenant, f, NULL, 0, false, &rs, err, sizeof err), MEMORY_OK);
    filter_free(f);
    char *t = rs.n == 1 ? strdup(rs.v[0].text) : NULL;
    mem_records_free(&rs);
    return t;
}

/* How many history rows of tenant have op. */
static size_t hist_count(struct db *db, const char *tenant, const char *op)
{
    struct memhist_row *rows = NULL;
    size_t n = 0, c = 0;
    char err[512] = "";
    if (memhist_list(db, tenant, 0, 0, &rows, &n, err, sizeof err) != 0)
        fail_msg("memhist_list: %s", err);
    for (size_t i = 0; i < n; i++)
        if (strcmp(rows[i].op, op) == 0)
            c++;
    memhist_rows_free(rows, n);
    return c;
}

static int u32_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Checks that tenant's memory_df rows are exactly the document
 * frequencies recomputed from its stored texts with the embedder's terms.
 * Returns the number of distinct terms. */
static size_t check_df(struct fixture *f, struct memory_manager *m, const char *tenant)
{
    struct mem_records rs = {0};
    char err[512] = "";
    assert_int_equal(memory_list(m, tenant, NULL, NULL, 0, false, &rs, err, sizeof err), MEMORY_OK);
    uint32_t *all = NULL;
    size_t n_all = 0;
    for (size_t i = 0; i < rs.n; i++) {
        size_t nt = 0;
        uint32_t *t = embedder_terms(memory_embedder(m), rs.v[i].text, strlen(rs.v[i].text), &nt);
        all = realloc(all, (n_all + nt + 1) * sizeof *all);
        assert_non_null(all);
        if (nt > 0)
            memcpy(all + n_all, t, nt * sizeof *t);
        n_all += nt;
        xfree(t);
    }
    mem_records_free(&rs);
    if (n_all > 0)
        qsort(all, n_all, sizeof *all, u32_cmp);
    /* The expected (term, df) pairs, in term order. */
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db_handle(f->db),
                                        "SELECT term, df FROM memory_df WHERE tenant = ?1"
                                        " ORDER BY term",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    size_t i = 0, terms = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        uint32_t term = (uint32_t)sqlite3_column_int64(st, 0);
        long long df = sqlite3_column_int64(st, 1);
        assert_true(i < n_all);
        assert_int_equal(all[i], term);
        long long want = 0;
        for (; i < n_all && all[i] == term; i++)
            want++;
        assert_int_equal(df, want);
        terms++;
    }
    assert_int_equal(i, n_all);
    sqlite3_finalize(st);
    free(all);
    return terms;
}

/* --- recall -------------------------------------------------------------- */

/* The example: a fact stored among others is recalled first for a
 * paraphrased question, by every method. */
static void test_add_then_retrieve_recalls_the_paraphrased_fact(void **state)
{
    struct fixture *f = *state;
    struct memory_settings set = defaults();
    f->m = local_manager(f, &set, 384);
    const char *others[] = {
        "The cafeteria serves pasta on Fridays.",
        "Your manager is Dana Whitfield.",
        "The Apollo design review moved to the third floor meeting room.",
        "You prefer tea over coffee in the afternoon.",
        "The VPN certificate expires in March.",
        "Your parking spot is number 42 in the east garage.",
    };
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
        add_ok(f->m, "acme", "alice", others[i], NULL, NULL);
    struct memory_added fact;
    add_ok(f->m, "acme", "alice", "You logged 35 hours last week on Apollo.", NULL, &fact);
    assert_false(fact.refreshed);
    assert_int_equal(fact.chunks, 1);
    assert_true(uuid_valid(fact.id));

    for (int meth = MEMORY_SIMILARITY; meth <= MEMORY_HYBRID; meth++) {
        struct memory_result r;
        char err[512] = "";
        assert_int_equal(memory_retrieve(f->m, "acme", "alice",
                                         "How many hours did I log last week?", 3, meth, NULL, &r,
                                         err, sizeof err),
                         MEMORY_OK);
        assert_int_equal(r.method, meth);
        assert_true(r.n_kept >= 1);
        assert_string_equal(r.hits[0].rec.id, fact.id);
        assert_string_equal(r.hits[0].rec.text, "You logged 35 hours last week on Apollo.");
        assert_true(r.hits[0].kept);
        assert_true(r.latency_ms >= 0.0);
        memory_result_free(&r);
    }
    /* Another tenant sees nothing of acme's. */
    struct memory_result r;
    char err[512] = "";
    assert_int_equal(memory_retrieve(f->m, "globex", NULL, "How many hours did I log?", 0, -1, NULL,
                                     &r, err, sizeof err),
                     MEMORY_OK);
    assert_int_equal(r.n, 0);
    memory_result_free(&r);
}

/* --- rankings on fixed vectors ------------------------------------------- */

/* q = e1; A, B, C, D with sim(q,.) = .8, .6, .28, 0; sim(A,B) = .96,
 * sim(A,C) = .224, sim(B,C) = .168, D orthogonal to all. */
static const struct fake_vec rank_vecs[] = {
    {"query", {1.0f, 0.0f, 0.0f, 0.0f}}, {"alpha", {0.8f, 0.6f, 0.0f, 0.0f}},
    {"bravo", {0.6f, 0.8f, 0.0f, 0.0f}}, {"charlie", {0.28f, 0.0f, 0.96f, 0.0f}},
    {"delta", {0.0f, 0.0f, 0.0f, 1.0f}},
};

/* A manager over the fake embedder with the given table; no dedup. */
static struct memory_manager *fake_manager(struct fixture *f, struct memory_settings *set,
                                           const struct fake_vec *table, size_t n)
{
    char err[512] = "";
    set->dedup_threshold = 2.0;
    struct memory_manager *m = memory_new(
        set, fake_new(table, n), store_local_new(f->db, NULL, NULL), f->db, err, sizeof err);
    if (m == NULL)
        fail_msg("memory_new: %s", err);
    return m;
}

/* Finds the hit with text in r. */
static const struct memory_hit *hit_of(const struct memory_result *r, const char *text)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->hits[i].rec.text, text) == 0)
            return &r->hits[i];
    fail_msg("no hit for %s", text);
    return NULL;
}

/* MMR with d = 0.5, k = 3, worked by hand: first alpha (0.5*.8 = .4);
 * then bravo .5*.6 - .5*.96 = -.18, charlie .5*.28 - .5*.224 = .028,
 * delta 0 - 0 = 0, so charlie; then bravo -.18 against delta 0, so delta.
 * bravo is a candidate not kept, with its vector score and no MMR score. */
static void test_mmr_matches_a_hand_computation(void **state)
{
    struct fixture *f = *state;
    struct memory_settings set = defaults();
    set.diversity = 0.5;
    f->m = fake_manager(f, &set, rank_vecs, 5);
    const char *docs[] = {"alpha", "bravo", "charlie", "delta"};
    for (size_t i = 0; i < 4; i++)
        add_ok(f->m, "acme", "u1", docs[i], NULL, NULL);
    struct memory_result r;
    char err[512] = "";
    assert_int_equal(
        memory_retrieve(f->m, "acme", NULL, "query", 3, MEMORY_MMR, NULL, &r, err, sizeof err),
        MEMORY_OK);
    assert_int_equal(r.n, 4);
    assert_int_equal(r.n_kept, 3);
    assert_string_equal(r.hits[0].rec.text, "alpha");
    assert_string_equal(r.hits[1].rec.text, "charlie");
    assert_string_equal(r.hits[2].rec.text, "delta");
    assert_string_equal(r.hits[3].rec.text, "bravo");
    assert_false(r.hits[3].kept);
    /* Scores from the float vectors, so within float rounding. */
    assert_near(r.hits[0].mmr, 0.4, 1e-6);
    assert_near(r.hits[1].mmr, 0.5 * 0.28 - 0.5 * 0.224, 1e-6);
    assert_near(r.hits[2].mmr, 0.0, 1e-6);
    assert_near(r.hits[0].score, r.hits[0].mmr, 0.0);
    assert_near(r.hits[1].vector, 0.28, 1e-6);
    assert_near(r.hits[3].vector, 0.6, 1e-6);
    assert_true(isnan(r.hits[3].mmr));
    assert_true(isnan(r.hits[3].score));
    for (size_t i = 0; i < r.n; i++) {
        assert_true(isnan(r.hits[i].keyword));
        assert_true(isnan(r.hits[i].fused));
    }
    memory_result_free(&r);
}

/* With diversity 0, MMR's picks are the similarity order, and similarity
 * reports its vector score as the score. */
static void test_mmr_with_zero_diversity_is_the_similarity_order(void **state)
{
    struct fixture *f = *state;
    struct memory_settings set = defaults();
    set.diversity = 0.0;
    f->m = fake_manager(f, &set, rank_vecs, 5);
    const char *docs[] = {"delta", "charlie", "bravo", "alpha"};
    for (size_t i = 0; i < 4; i++)
        add_ok(f->m, "acme", "u1", docs[i], NULL, NULL);
    struct memory_result a, b;
    char err[512] = "";
    assert_int_equal(
        memory_retrieve(f->m, "acme", NULL, "query", 3, MEMORY_MMR, NULL, &a, err, sizeof err),
        MEMORY_OK);
    assert_int_equal(memory_retrieve(f->m, "acme", NULL, "query", 3, MEMORY_SIMILARITY, NULL, &b,
                                     err, sizeof err),
                     MEMORY_OK);
    assert_int_equal(a.n_kept, 3);
    assert_int_equal(b.n_kept, 3);
    assert_int_equal(b.n, 3);
    const char *want[] = {"alpha", "bravo", "charlie"};
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(a.hits[i].rec.text, want[i]);
        assert_string_equal(b.hits[i].rec.text, want[i]);
        assert_near(b.hits[i].score, b.hits[i].vector, 0.0);
        assert_true(isnan(b.hits[i].mmr));
        /* d = 0: the MMR score is the similarity itself. */
        assert_near(a.hits[i].mmr, a.hits[i].vector, 1e-9);
    }
    memory_result_free(&a);
    memory_result_free(&b);
}

/* The same with the local embedder on real texts: d = 0 MMR and
 * similarity keep the same memories in the same order. */
static void test_mmr_with_zero_diversity_matches_similarity_on_real_texts(void **state)
{
    struct fixture *f = *state;
    struct memory_settings set = defaults();
    set.diversity = 0.0;
    f->m = local_manager(f, &set, 384);
    const char *docs[] = {
        "The quarterly report is due on the fifth.", "Quarterly numbers look strong this year.",
        "Bring the report to the board meeting.",    "The board meets every second Tuesday.",
        "Lunch is at noon in the garden.",           "The garden needs watering on weekends.",
        "Your report card from school was framed.",  "Strong coffee helps in the morning.",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++)
        add_ok(f->m, "acme", "u1", docs[i], NULL, NULL);
    struct memory_result a, b;
    char err[512] = "";
    assert_int_equal(memory_retrieve(f->m, "acme", NULL, "when is the quarterly report due", 5,
                                     MEMORY_MMR, NULL, &a, err, sizeof err),
                     MEMORY_OK);
    assert_int_equal(memory_retrieve(f->m, "acme", NULL, "when is the quarterly report due", 5,
                                     MEMORY_SIMILARITY, NULL, &b, err, sizeof err),
                     MEMORY_OK);
    assert_int_equal(a.n_kept, 5);
    assert_int_equal(b.n_kept, 5);
    for (size_t i = 0; i < 5; i++)
        assert_string_equal(a.hits[i].rec.id, b.hits[i].rec.id);
    memory_result_free(&a);
    memory_result_free(&b);
}

/* The hybrid tests' fake vectors: the query "zebra" and three memories,
 * "Zebra" matching it by keyword (FTS5 folds the case) but far by vector. */
static const struct fake_vec zebra_table[] = {
    {"zebra", {1.0f, 0.0f, 0.0f, 0.0f}},
    {"papaya", {0.8f, 0.6f, 0.0f, 0.0f}},
    {"zebra banana", {0.6f, 0.8f, 0.0f, 0.0f}},
    {"Zebra", {0.28f, 0.0f, 0.96f, 0.0f}},
};

/* Hybrid with reciprocal-rank fusion (w = .5), k = 2 and fetch_k = 2,
 * worked by hand. Vector top 2: papaya (.8), zebra banana (.6). Keyword
 * top 2 for "zebra": "Zebra" (the shorter text ranks first in bm25),
 * "zebra banana". Fused: papaya .5/61, zebra banana .5/62 + .5/62, Zebra
 * .5/61 (keyword-only, its vector score
 * .28 computed from its stored vector). Rescaled: papaya 0, zebra banana
 * 1, Zebra 0. MMR (d = .3): zebra banana .7; then papaya -.3*.96 = -.288
 * against Zebra -.3*.168 = -.0504, so Zebra. */
static void test_hybrid_fusion_matches_a_hand_computation(void **state)
{
    struct fixture *f = *state;
    struct memory_settings set = defaults();
    set.fetch_k = 2;
    set.diversity = 0.3;
    set.fusion = MEMORY_FUSION_RRF;
    set.keyword_weight = 0.5;
    f->m = fake_manager(f, &set, zebra_table, 4);
    add_ok(f->m, "acme", "u1", "papaya", NULL, NULL);
    add_ok(f->m, "acme", "u1", "zebra banana", NULL, NULL);
    add_ok(f->m, "acme", "u1", "Zebra", NULL, NULL);
    struct memory_result r;
    char err[512] = "";
    assert_int_equal(
        memory_retrieve(f->m, "acme", NULL, "zebra", 2, MEMORY_HYBRID, NULL, &r, err, sizeof err),
        MEMORY_OK);
    assert_int_equal(r.n, 3);
    assert_int_equal(r.n_kept, 2);
    assert_string_equal(r.hits[0].rec.text, "zebra banana");
    assert_string_equal(r.hits[1].rec.text, "Zebra");
    assert_string_equal(r.hits[2].rec.text, "papaya");
    const struct memory_hit *zb = hit_of(&r, "zebra banana"), *z = hit_of(&r, "Zebra"),
                            *p = hit_of(&r, "papaya");
    /* (1 - w) / (60 + vector rank) + w / (60 + keyword rank), w = 0.5 */
    assert_near(zb->fused, 0.5 / 62.0 + 0.5 / 62.0, 1e-12);
    assert_near(z->fused, 0.5 / 61.0, 1e-12);
    assert_near(p->fused, 0.5 / 61.0, 1e-12);
    assert_near(z->vector, 0.28, 1e-6);
    assert_near(p->vector, 0.8, 1e-6);
    assert_true(isnan(p->keyword));
    assert_true(z->keyword > zb->keyword);
    assert_near(zb->mmr, 0.7, 1e-9);
    assert_near(z->mmr, -0.3 * (0.6 * 0.28), 1e-6);
    assert_near(zb->score, zb->mmr, 0.0);
    assert_true(isnan(p->mmr));
    memory_result_free(&r);
}

/* Score fusion: fused = (1 - w) * cosine + w * bm25 / the best bm25, a
 * vector-only candidate counting keyword 0; at w = 0 the vector ranking
 * decides, at w = 1 the keyword one, and in between the blend (here the
 * mid-ranked "zebra banana", second on both lists, wins at w = 0.5). */
static void test_hybrid_score_fusion_weighs_both_rankings(void **state)
{
    struct fixture *f = *state;
    static const double weights[] = {0.0, 0.5, 1.0};
    static const char *const first[] = {"papaya", "zebra banana", "Zebra"};
    for (size_t wi = 0; wi < 3; wi++) {
        struct memory_settings set = defaults();
        set.fetch_k = 2;
        set.diversity = 0;
        set.keyword_weight = weights[wi];
        assert_int_equal(set.fusion, MEMORY_FUSION_SCORE); /* the default */
        memory_free(f->m);
        f->m = fake_manager(f, &set, zebra_table, 4);
        if (wi == 0) {
            add_ok(f->m, "acme", "u1", "papaya", NULL, NULL);
            add_ok(f->m, "acme", "u1", "zebra banana", NULL, NULL);
            add_ok(f->m, "acme", "u1", "Zebra", NULL, NULL);
        }
        struct memory_result r;
        char err[512] = "";
        assert_int_equal(memory_retrieve(f->m, "acme", NULL, "zebra", 1, MEMORY_HYBRID, NULL, &r,
                                         err, sizeof err),
                         MEMORY_OK);
        assert_int_equal(r.n, 3);
        assert_string_equal(r.hits[0].rec.text, first[wi]);
        const struct memory_hit *zb = hit_of(&r, "zebra banana"), *z = hit_of(&r, "Zebra"),
                                *p = hit_of(&r, "papaya");
        double w = weights[wi];
        assert_true(isnan(p->keyword));
        assert_true(z->keyword > zb->keyword && zb->keyword > 0);
        assert_near(p->fused, (1 - w) * 0.8, 1e-6);
        assert_near(z->fused, (1 - w) * 0.28 + w, 1e-6);
        assert_near(zb->fused, (1 - w) * 0.6 + w * zb->keyword / z->keyword, 1e-6);
        memory_result_free(&r);
    }
}

/* --- dedup ----------------------------------------------------------------- */

/* A near-duplicate of the same user's memory refreshes it: one record,
 * the new text and metadata, created_at kept, a refresh history row. The
 * same text from another user is a memory of its own. */
static void test_dedup_refreshes_instead_of_adding(void **state)
{
    struct fixture *f = *state;
    struct memory_settings set = defaults();
    f->m = local_manager(f, &set, 384);
    struct memory_added a1, a2, a3;
    add_ok(f->m, "acme", "alice", "I like green tea in the morning.", "{\"src\":\"chat\"}", &a1);
    add_ok(f->m, "acme", "alice", "I like green tea in the morning!", "{\"n\":2}", &a2);
    assert_true(a2.refreshed);
    assert_string_equal(a2.id, a1.id);
    assert_true(a2.similarity > 0.95);
    assert_int_equal(count_of(f->m, "acme"), 1);
    char *t = text_of(f->m, "acme", a1.id);
    assert_string_equal(t, "I like green tea in the morning!");
    free(t);
    struct mem_records rs = {0};
    char err[512] = "";
    assert_int_equal(memory_list(f->m, "acme", NULL, NULL, 0, false, &rs, err, sizeof err),
                     MEMORY_OK);
    assert_int_equal(rs.n, 1);
    assert_true(rs.v[0].updated_at >= rs.v[0].created_at);
    /* The stored keys stay, the new ones join them. */
    cJSON *md = cJSON_Parse(rs.v[0].metadata);
    assert_string_equal(cJSON_GetObjectItem(md, "src")->valuestring, "chat");
    assert_int_equal(cJSON_GetObjectItem(md, "n")->valueint, 2);
    cJSON_Delete(md);
    mem_records_free(&rs);
    assert_int_equal(hist_count(f->db, "acme", "add"), 1);
    assert_int_equal(hist_count(f->db, "acme", "refresh"), 1);

    add_ok(f->m, "acme", "bob", "I like green tea in the morning.", NULL, &a3);
    assert_false(a3.refreshed);
    assert_true(isnan(a3.similarity));
    assert_int_equal(count_of(f->m, "acme"), 2);

    /* no_dedup adds a copy. */
    struct memory_add a = {.tenant = "acme",
                           .user = "alice",
                           .agent = "assistant",
                           .text = "I like green tea in the morning!",
                           .no_dedup = true};
    struct memory_added out;
    assert_int_equal(memory_add(f->m, &a, &out, err, sizeof err), MEMORY_OK);
    assert_false(out.refreshed);
    assert_int_equal(count_of(f->m, "acme"), 3);
    check_df(f, f->m, "acme");
}

/* Near-duplicates inside one batch merge too, as if added one by one. */
static void test_dedup_applies_within_a_batch(void **state)
{
    struct fixture *f = *state;
    struct memory_settings set = defaults();
    f->m = local_manager(f, &set, 384);
    struct memory_add a[3] = {
        {.tenant = "acme",
         .user = "alice",
         .agent = "x",
         .text = "The wifi password is on the fridge."},
        {.tenant = "acme",
         .user = "alice",
         .agent = "x",
         .text = "The wifi password is on the fridge!"},
        {.tenant = "acme", .user = "alice", .agent = "x", .text = "Trains to Lyon leave hourly."},
    };
    struct memory_added out[3];
    char err[512] = "";
    assert_int_equal(memory_add_batch(f->m, a, 3, out, err, sizeof err), MEMORY_OK);
    assert_false(out[0].refreshed);
    assert_true(out[1].refreshed);
    assert_string_equal(out[1].id, out[0].id);
    assert_false(out[2].refreshed);
    assert_int_equal(count_of(f->m, "acme"), 2);
    char *t = text_of(f->m, "acme", out[0].id);
    assert_string_equal(t, "The wifi password is on the fridge!");
    free(t);
    assert_int_equal(hist_count(f->db, "acme", "import"), 2);
    assert_int_equal(hist_count(f->db, "acme", "refresh"), 1);
    check_df(f, f->m, "acme");
}

/* --- chunking -------------------------------------------------------------- */

/* A text longer than MEMORY_MAX_BYTES is stored in pieces of at most that
 * size, cut at sentence ends where there are some, never inside a UTF-8
 * character (a run of two-byte letters without spaces forces a cut at a
 * character boundary), with {"chunk","chunks","parent"} metadata; the
 * pieces hold every non-space byte of the text, in order. */
static void test_a_long_text_is_chunked_at_boundaries(void **state)
{
    struct fixture *f = *state;
    struct memory_settings set = defaults();
    set.max_bytes = 256;
    f->m = local_manager(f, &set, 384);
    char text[4096];
    size_t n = 0;
    for (int i = 0; i < 12; i++)
        n += (size_t)snprintf(text + n, sizeof text - n,
                              "Grüße aus München, Satz %d, mit einigen Wörtern mehr. ", i);
    for (int i = 0; i < 300; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, "ü");
    n += (size_t)snprintf(text + n, sizeof text - n, " Ende.");
    struct memory_added out;
    add_ok(f->m, "acme", "alice", text, "{\"topic\":\"travel\"}", &out);
    assert_true(out.chunks > 3);
    struct mem_records rs = {0};
    char err[512] = "";
    assert_int_equal(memory_list(f->m, "acme", NULL, NULL, 0, false, &rs, err, sizeof err),
                     MEMORY_OK);
    assert_int_equal(rs.n, out.chunks);
    char *joined = calloc(1, n + 1), *orig = calloc(1, n + 1);
    size_t jl = 0, ol = 0, sentence_ends = 0;
    for (size_t i = 0; i < n; i++)
        if (text[i] != ' ')
            orig[ol++] = text[i];
    /* List order is id order, which is the order of the pieces. */
    for (size_t i = 0; i < rs.n; i++) {
        const char *t = rs.v[i].text;
        size_t tl = strlen(t);
        assert_true(tl <= 256);
        assert_true(tl > 0);
        assert_true(utf8_valid(t, tl, NULL));
        if (t[tl - 1] == '.')
            sentence_ends++;
        for (size_t j = 0; j < tl; j++)
            if (t[j] != ' ')
                joined[jl++] = t[j];
        cJSON *md = cJSON_Parse(rs.v[i].metadata);
        assert_non_null(md);
        assert_int_equal(cJSON_GetObjectItem(md, "chunk")->valueint, (int)i + 1);
        assert_int_equal(cJSON_GetObjectItem(md, "chunks")->valueint, (int)out.chunks);
        assert_string_equal(cJSON_GetObjectItem(md, "parent")->valuestring, out.id);
        assert_string_equal(cJSON_GetObjectItem(md, "topic")->valuestring, "travel");
        cJSON_Delete(md);
    }
    assert_string_equal(rs.v[0].id, out.id);
    /* The German sentences are cut at their full stops. */
    assert_true(sentence_ends >= 2);
    assert_int_equal(jl, ol);
    assert_memory_equal(joined, orig, ol);
    free(joined);
    free(orig);
    mem_records_free(&rs);
    check_df(f, f->m, "acme");
}

/* --- mismatch --------------------------------------------------------------- */

/* A namespace made with 384 dimensions is refused by a manager with 256
 * for every operation, with a message naming both; stats still shows it
 * and a whole-tenant purge still forgets it. */
static void test_a_mismatch_is_refused_for_every_operation(void **state)
{
    struct fixture *f = *state;
    struct memory_settings set = defaults();
    f->m = local_manager(f, &set, 384);
    struct memory_added out, kept;
    add_ok(f->m, "acme", "alice", "The door code is 1234.", NULL, &kept);
    struct memory_manager *m = local_manager(f, &set, 256);
    char err[1024] = "";
    assert_int_equal(memory_check(m, "acme", err, sizeof err), MEMORY_ERR_MISMATCH);
    assert_non_null(strstr(err, "tenant acme: memories were stored with embedder local (hash-v1, "
                                "384 dimensions) but EMBEDDINGS_DIMENSION is 256"));
    assert_non_null(strstr(err, "set EMBEDDINGS_DIMENSION=384 again"));
    assert_non_null(strstr(err, "memchat memory reembed"));
    assert_string_equal(memory_status_reason(MEMORY_ERR_MISMATCH), "dimension_mismatch");
    /* Another embedder altogether: every setting to restore is named. */
    struct memory_settings fs = defaults();
    struct memory_manager *fm = fake_manager(f, &fs, rank_vecs, 5);
    assert_int_equal(memory_check(fm, "acme", err, sizeof err), MEMORY_ERR_MISMATCH);
    assert_non_null(strstr(err, "but EMBEDDINGS_PROVIDER is fake (fixed, 4 dimensions); set "
                                "EMBEDDINGS_PROVIDER=local EMBEDDINGS_MODEL=hash-v1 "
                                "EMBEDDINGS_DIMENSION=384 again"));
    memory_free(fm);

    struct memory_add a = {
        .tenant = "acme", .user = "alice", .agent = "assistant", .text = "Another fact."};
    assert_int_equal(memory_add(m, &a, &out, err, sizeof err), MEMORY_ERR_MISMATCH);
    assert_int_equal(memory_add_batch(m, &a, 1, &out, err, sizeof err), MEMORY_ERR_MISMATCH);
    assert_int_equal(memory_add_conversation(m, "acme", "alice", "assistant", "hi", "hello", NULL,
                                             &out, err, sizeof err),
                     MEMORY_ERR_MISMATCH);
    struct memory_result r;
    assert_int_equal(
        memory_retrieve(m, "acme", NULL, "door code", 0, -1, NULL, &r, err, sizeof err),
        MEMORY_ERR_MISMATCH);
    memory_result_free(&r);
    struct mem_records rs = {0};
    assert_int_equal(memory_list(m, "acme", NULL, NULL, 0, false, &rs, err, sizeof err),
                     MEMORY_ERR_MISMATCH);
    size_t deleted = 99;
    assert_int_equal(
        memory_delete(m, "acme", kept.id, NULL, "alice", "assistant", &deleted, err, sizeof err),
        MEMORY_ERR_MISMATCH);
    assert_int_equal(deleted, 0);
    struct mem_filter *flt = filter_eq("user_id", "alice");
    assert_int_equal(
        memory_delete(m, "acme", NULL, flt, "alice", "assistant", &deleted, err, sizeof err),
        MEMORY_ERR_MISMATCH);
    filter_free(flt);
    assert_int_equal(memory_purge(m, "acme", "alice", &deleted, err, sizeof err),
                     MEMORY_ERR_MISMATCH);
    /* Nothing changed. */
    assert_int_equal(count_of(f->m, "acme"), 1);

    cJSON *stats = NULL;
    assert_int_equal(memory_stats(m, "acme", &stats, err, sizeof err), MEMORY_OK);
    assert_int_equal(cJSON_GetObjectItem(stats, "dim")->valueint, 384);
    cJSON_Delete(stats);
    assert_int_equal(memory_purge(m, "acme", NULL, &deleted, err, sizeof err), MEMORY_OK);
    assert_int_equal(deleted, 1);
    /* With the namespace gone, the 256-dimension manager may start afresh. */
    assert_int_equal(memory_check(m, "acme", err, sizeof err), MEMORY_OK);
    memory_free(m);
}

/* --- scope, delete, purge ---------------------------------------------------- */

/* With MEMORY_SCOPE=user a user recalls only their own memories; with the
 * tenant scope (or no user) everyone's. */
static void test_user_scope_recalls_only_the_users_memories(void **state)
{
    struct fixture *f = *state;
    struct memory_settings set = defaults();
    set.user_scope = true;
    f->m = local_manager(f, &set, 384);
    add_ok(f->m, "acme", "alice", "My locker code is 4812.", NULL, NULL);
    add_ok(f->m, "acme", "bob", "My locker code is 9921.", NULL, NULL);
    struct memory_result r;
    char err[512] = "";
    assert_int_equal(memory_retrieve(f->m, "acme", "alice", "what is my locker code", 5,
                                     MEMORY_SIMILARITY, NULL, &r, err, sizeof err),
                     MEMORY_OK);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.hits[0].rec.user_id, "alice");
    memory_result_free(&r);
    assert_int_equal(memory_retrieve(f->m, "acme", NULL, "what is my locker code", 5,
                                     MEMORY_SIMILARITY, NULL, &r, err, sizeof err),
                     MEMORY_OK);
    assert_int_equal(r.n, 2);
    memory_result_free(&r);
    /* The caller's filter combines with the scope. */
    struct mem_filter *flt = filter_parse("{\"user_id\":{\"$eq\":\"bob\"}}", err, sizeof err);
    assert_non_null(flt);
    assert_int_equal(memory_retrieve(f->m, "acme", "alice", "what is my locker code", 5, MEMORY_MMR,
                                     flt, &r, err, sizeof err),
                     MEMORY_OK);
    assert_int_equal(r.n, 0);
    memory_result_free(&r);
    filter_free(flt);

    struct memory_manager *tm;
    set.user_scope = false;
    tm = local_manager(f, &set, 384);
    assert_int_equal(memory_retrieve(tm, "acme", "alice", "what is my locker code", 5,
                                     MEMORY_SIMILARITY, NULL, &r, err, sizeof err),
                     MEMORY_OK);
    assert_int_equal(r.n, 2);
    memory_result_free(&r);
    memory_free(tm);
}

/* Delete by id removes that memory (again: not found), delete by filter
 * removes the matching ones; each leaves a delete history row without
 * the text. */
static void test_delete_by_id_and_by_filter(void **state)
{
    struct fixture *f = *state;
    struct memory_settings set = defaults();
    f->m = local_manager(f, &set, 384);
    struct memory_added a, b, c;
    add_ok(f->m, "acme", "alice", "Secret plans for the launch party.", "{\"project\":\"x\"}", &a);
    add_ok(f->m, "acme", "alice", "Budget sheet lives in the shared drive.", "{\"project\":\"x\"}",
           &b);
    add_ok(f->m, "acme", "alice", "The printer on floor two jams often.", "{\"project\":\"y\"}",
           &c);
    size_t deleted = 0;
    char err[512] = "";
    assert_int_equal(
        memory_delete(f->m, "acme", a.id, NULL, "alice", "cli", &deleted, err, sizeof err),
        MEMORY_OK);
    assert_int_equal(deleted, 1);
    assert_int_equal(count_of(f->m, "acme"), 2);
    assert_int_equal(
        memory_delete(f->m, "acme", a.id, NULL, "alice", "cli", &deleted, err, sizeof err),
        MEMORY_ERR_NOT_FOUND);
    assert_non_null(strstr(err, a.id));
    struct mem_filter *flt = filter_parse("{\"project\":\"x\"}", err, sizeof err);
    assert_non_null(flt);
    assert_int_equal(
        memory_delete(f->m, "acme", NULL, flt, "alice", "cli", &deleted, err, sizeof err),
        MEMORY_OK);
    filter_free(flt);
    assert_int_equal(deleted, 1);
    assert_int_equal(count_of(f->m, "acme"), 1);
    char *t = text_of(f->m, "acme", c.id);
    assert_non_null(t);
    free(t);
    assert_int_equal(hist_count(f->db, "acme", "delete"), 2);
    /* No history row holds a memory's text. */
    struct memhist_row *rows = NULL;
    size_t n = 0;
    assert_int_equal(memhist_list(f->db, "acme", 0, 0, &rows, &n, err, sizeof err), 0);
    for (size_t i = 0; i < n; i++) {
        assert_null(strstr(rows[i].detail, "launch"));
        assert_null(strstr(rows[i].detail, "Budget"));
    }
    memhist_rows_free(rows, n);
    /* Neither or both of id and filter is a usage error. */
    assert_int_equal(
        memory_delete(f->m, "acme", NULL, NULL, "alice", "cli", &deleted, err, sizeof err),
        MEMORY_ERR_INPUT);
    assert_int_equal(
        memory_delete(f->m, "acme", "not-a-uuid", NULL, "alice", "cli", &deleted, err, sizeof err),
        MEMORY_ERR_INPUT);
    check_df(f, f->m, "acme");
}

/* Purging a user removes that user's memories and history in that tenant
 * only; purging a tenant removes everything of it, frequencies included. */
static void test_purge_of_a_user_leaves_the_others(void **state)
{
    struct fixture *f = *state;
    struct memory_settings set = defaults();
    f->m = local_manager(f, &set, 384);
    add_ok(f->m, "acme", "alice", "Alice parks in row C.", NULL, NULL);
    add_ok(f->m, "acme", "alice", "Alice is allergic to peanuts.", NULL, NULL);
    add_ok(f->m, "acme", "bob", "Bob parks in row D.", NULL, NULL);
    add_ok(f->m, "other", "alice", "Alice at other likes jazz.", NULL, NULL);
    size_t deleted = 0;
    char err[512] = "";
    assert_int_equal(memory_purge(f->m, "acme", "alice", &deleted, err, sizeof err), MEMORY_OK);
    assert_int_equal(deleted, 2);
    assert_int_equal(count_of(f->m, "acme"), 1);
    assert_int_equal(count_of(f->m, "other"), 1);
    assert_int_equal(hist_count(f->db, "acme", "add"), 1);
    assert_int_equal(hist_count(f->db, "other", "add"), 1);
    assert_true(check_df(f, f->m, "acme") > 0);

    assert_int_equal(memory_purge(f->m, "acme", NULL, &deleted, err, sizeof err), MEMORY_OK);
    assert_int_equal(deleted, 1);
    assert_int_equal(count_of(f->m, "acme"), 0);
    assert_int_equal(hist_count(f->db, "acme", "add"), 0);
    assert_int_equal(check_df(f, f->m, "acme"), 0);
    assert_int_equal(count_of(f->m, "other"), 1);
    assert_true(check_df(f, f->m, "other") > 0);
}

/* The frequencies stay exactly those of the stored texts through adds,
 * refreshes, imports that replace, and deletes. */
static void test_document_frequencies_follow_every_change(void **state)
{
    struct fixture *f = *state;
    struct memory_settings set = defaults();
    f->m = local_manager(f, &set, 384);
    struct memory_added a, b;
    add_ok(f->m, "acme", "u", "Red apples and green pears.", NULL, &a);
    add_ok(f->m, "acme", "u", "Green tea with lemon.", NULL, &b);
    assert_true(check_df(f, f->m, "acme") > 0);
    add_ok(f->m, "acme", "u", "Red apples and green pears!", NULL, NULL); /* refresh */
    check_df(f, f->m, "acme");
    /* An import that replaces b by id. */
    struct memory_add imp = {
        .tenant = "acme", .user = "u", .agent = "x", .id = b.id, .text = "Black coffee, no sugar."};
    struct memory_added out;
    char err[512] = "";
    assert_int_equal(memory_add_batch(f->m, &imp, 1, &out, err, sizeof err), MEMORY_OK);
    assert_string_equal(out.id, b.id);
    assert_int_equal(count_of(f->m, "acme"), 2);
    check_df(f, f->m, "acme");
    size_t deleted;
    assert_int_equal(memory_delete(f->m, "acme", a.id, NULL, "u", "x", &deleted, err, sizeof err),
                     MEMORY_OK);
    check_df(f, f->m, "acme");
    assert_int_equal(memory_delete(f->m, "acme", b.id, NULL, "u", "x", &deleted, err, sizeof err),
                     MEMORY_OK);
    assert_int_equal(check_df(f, f->m, "acme"), 0);
}

/* --- batches ----------------------------------------------------------------- */

/* One bad record in a batch stores nothing, and the message says which. */
static void test_an_import_batch_is_all_or_nothing(void **state)
{
    struct fixture *f = *state;
    struct memory_settings set = defaults();
    f->m = local_manager(f, &set, 384);
    struct memory_add a[3] = {
        {.tenant = "acme", .user = "u", .agent = "x", .text = "First."},
        {.tenant = "acme", .user = "u", .agent = "x", .text = "Second."},
        {.tenant = "acme", .user = "u", .agent = "x", .text = "Third.", .metadata = "[1,2]"},
    };
    struct memory_added out[3];
    char err[512] = "";
    assert_int_equal(memory_add_batch(f->m, a, 3, out, err, sizeof err), MEMORY_ERR_INPUT);
    assert_non_null(strstr(err, "memory 3 of 3"));
    assert_non_null(strstr(err, "metadata"));
    assert_int_equal(count_of(f->m, "acme"), 0);
    assert_int_equal(hist_count(f->db, "acme", "import"), 0);
}

/* A store that fails after writing the rows: the transaction is rolled
 * back, so no row, frequency or history remains. */
static void test_a_store_failure_mid_write_leaves_nothing(void **state)
{
    struct fixture *f = *state;
    struct memory_settings set = defaults();
    struct wrap *w;
    char err[512] = "";
    struct embedder *e = embed_local_new(384, err, sizeof err);
    assert_non_null(e);
    f->m = memory_new(&set, e, wrap_new(store_local_new(f->db, NULL, NULL), "wrap", false, &w),
                      f->db, err, sizeof err);
    assert_non_null(f->m);
    add_ok(f->m, "acme", "u", "Kept from before.", NULL, NULL);
    w->fail_upsert = true;
    struct memory_add a[2] = {
        {.tenant = "acme", .user = "u", .agent = "x", .text = "Lost one."},
        {.tenant = "acme", .user = "u", .agent = "x", .text = "Lost two."},
    };
    struct memory_added out[2];
    assert_int_equal(memory_add_batch(f->m, a, 2, out, err, sizeof err), MEMORY_ERR_STORE);
    assert_non_null(strstr(err, "disk full"));
    assert_string_equal(memory_status_reason(MEMORY_ERR_STORE), "store_down");
    w->fail_upsert = false;
    assert_int_equal(count_of(f->m, "acme"), 1);
    assert_int_equal(hist_count(f->db, "acme", "import"), 0);
    check_df(f, f->m, "acme");
    /* A retrieval after the rollback sees only the committed memory. */
    struct memory_result r;
    assert_int_equal(
        memory_retrieve(f->m, "acme", NULL, "Lost one", 5, -1, NULL, &r, err, sizeof err),
        MEMORY_OK);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.hits[0].rec.text, "Kept from before.");
    memory_result_free(&r);
}

/* A store that is down: every operation reports MEMORY_ERR_STORE with
 * the store's message. */
static void test_a_store_that_is_down_is_reported(void **state)
{
    struct fixture *f = *state;
    struct memory_settings set = defaults();
    struct wrap *w;
    char err[512] = "";
    struct embedder *e = embed_local_new(384, err, sizeof err);
    f->m = memory_new(&set, e, wrap_new(store_local_new(f->db, NULL, NULL), "wrap", false, &w),
                      f->db, err, sizeof err);
    add_ok(f->m, "acme", "u", "Something to find.", NULL, NULL);
    w->fail_all = true;
    struct memory_added out;
    struct memory_add a = {.tenant = "acme", .user = "u", .agent = "x", .text = "More."};
    assert_int_equal(memory_add(f->m, &a, &out, err, sizeof err), MEMORY_ERR_STORE);
    assert_non_null(strstr(err, "connection refused"));
    struct memory_result r;
    assert_int_equal(
        memory_retrieve(f->m, "acme", NULL, "something", 0, -1, NULL, &r, err, sizeof err),
        MEMORY_ERR_STORE);
    memory_result_free(&r);
    cJSON *s = NULL;
    assert_int_equal(memory_stats(f->m, NULL, &s, err, sizeof err), MEMORY_ERR_STORE);
    assert_null(s);
    w->fail_all = false;
    assert_int_equal(count_of(f->m, "acme"), 1);
}

/* An embedder that fails: adds and retrievals report MEMORY_ERR_EMBED
 * (reason embedder_down) and store nothing. */
static void test_an_embedder_that_fails_is_reported(void **state)
{
    struct fixture *f = *state;
    struct memory_settings set = defaults();
    f->m = fake_manager(f, &set, rank_vecs, 5);
    add_ok(f->m, "acme", "u", "alpha", NULL, NULL);
    ((struct fake_emb *)memory_embedder(f->m)->impl)->fail = true;
    struct memory_added out;
    struct memory_add a = {.tenant = "acme", .user = "u", .agent = "x", .text = "bravo"};
    char err[512] = "";
    assert_int_equal(memory_add(f->m, &a, &out, err, sizeof err), MEMORY_ERR_EMBED);
    assert_non_null(strstr(err, "service is down"));
    assert_string_equal(memory_status_reason(MEMORY_ERR_EMBED), "embedder_down");
    struct memory_result r;
    assert_int_equal(memory_retrieve(f->m, "acme", NULL, "query", 0, -1, NULL, &r, err, sizeof err),
                     MEMORY_ERR_EMBED);
    memory_result_free(&r);
    ((struct fake_emb *)memory_embedder(f->m)->impl)->fail = false;
    assert_int_equal(count_of(f->m, "acme"), 1);
}

/* --- bad input ---------------------------------------------------------------- */

/* Each bad input is MEMORY_ERR_INPUT with a message naming the field. */
static void test_bad_input_is_refused_with_a_clear_message(void **state)
{
    struct fixture *f = *state;
    struct memory_settings set = defaults();
    f->m = local_manager(f, &set, 384);
    static const struct {
        struct memory_add a;
        const char *want;
    } cases[] = {
        {{.tenant = "acme", .user = "u", .agent = "x", .text = ""}, "text is empty"},
        {{.tenant = "acme", .user = "u", .agent = "x", .text = " \n\t "}, "text is empty"},
        {{.tenant = "acme", .user = "u", .agent = "x", .text = NULL}, "text is missing"},
        {{.tenant = "acme", .user = "u", .agent = "x", .text = "bad \xc3\x28 byte"},
         "text is not valid UTF-8 (bad byte at offset 4)"},
        {{.tenant = "acme", .user = "u", .agent = "x", .text = "ok", .metadata = "{\"a\":"},
         "metadata is not valid JSON"},
        {{.tenant = "acme", .user = "u", .agent = "x", .text = "ok", .metadata = "\"str\""},
         "metadata is not a JSON object"},
        {{.tenant = "acme", .user = "u", .agent = "x", .text = "ok", .id = "1234"},
         "id \"1234\" is not a UUID"},
        {{.tenant = "ac me", .user = "u", .agent = "x", .text = "ok"},
         "tenant \"ac me\" is not a valid id"},
        {{.tenant = "acme", .user = "u/1", .agent = "x", .text = "ok"},
         "user \"u/1\" is not a valid id"},
        {{.tenant = "acme", .user = "u", .agent = "x", .text = "ok", .kind = "Note"},
         "kind \"Note\" is not accepted"},
    };
    char err[512];
    struct memory_added out;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        err[0] = '\0';
        assert_int_equal(memory_add(f->m, &cases[i].a, &out, err, sizeof err), MEMORY_ERR_INPUT);
        if (strstr(err, cases[i].want) == NULL)
            fail_msg("case %zu: \"%s\" does not contain \"%s\"", i, err, cases[i].want);
    }
    /* Metadata over 64 KiB. */
    char *big = malloc(70000);
    assert_non_null(big);
    memset(big, ' ', 69999);
    big[0] = '{';
    big[69997] = '}';
    big[69998] = '\0';
    struct memory_add a = {
        .tenant = "acme", .user = "u", .agent = "x", .text = "ok", .metadata = big};
    assert_int_equal(memory_add(f->m, &a, &out, err, sizeof err), MEMORY_ERR_INPUT);
    assert_non_null(strstr(err, "at most 65536"));
    free(big);
    /* A query that is empty. */
    struct memory_result r;
    assert_int_equal(memory_retrieve(f->m, "acme", NULL, "  ", 0, -1, NULL, &r, err, sizeof err),
                     MEMORY_ERR_INPUT);
    memory_result_free(&r);
    assert_int_equal(count_of(f->m, "acme"), 0);
}

/* --- conversations, stats and JSON ---------------------------------------- */

/* add_conversation stores the exchange as one "exchange" memory. */
static void test_add_conversation_stores_the_exchange(void **state)
{
    struct fixture *f = *state;
    struct memory_settings set = defaults();
    f->m = local_manager(f, &set, 384);
    struct memory_added out;
    char err[512] = "";
    assert_int_equal(memory_add_conversation(f->m, "acme", "alice", "assistant",
                                             "Where is the demo?", "In room 4.",
                                             "{\"turn\":\"t1\"}", &out, err, sizeof err),
                     MEMORY_OK);
    struct mem_records rs = {0};
    assert_int_equal(memory_list(f->m, "acme", NULL, NULL, 0, false, &rs, err, sizeof err),
                     MEMORY_OK);
    assert_int_equal(rs.n, 1);
    assert_string_equal(rs.v[0].text, "User: Where is the demo?\nAssistant: In room 4.");
    assert_string_equal(rs.v[0].kind, "exchange");
    assert_string_equal(rs.v[0].agent, "assistant");
    mem_records_free(&rs);
}

/* stats gives the fields of the header for one tenant, and an array over
 * every namespace without one. */
static void test_stats_json(void **state)
{
    struct fixture *f = *state;
    struct memory_settings set = defaults();
    f->m = local_manager(f, &set, 384);
    add_ok(f->m, "acme", "alice", "One fact.", NULL, NULL);
    add_ok(f->m, "acme", "bob", "Another, quite different, fact about trains.", NULL, NULL);
    add_ok(f->m, "beta", "carol", "Beta's fact.", NULL, NULL);
    cJSON *s = NULL;
    char err[512] = "";
    assert_int_equal(memory_stats(f->m, "acme", &s, err, sizeof err), MEMORY_OK);
    assert_string_equal(cJSON_GetObjectItem(s, "tenant")->valuestring, "acme");
    assert_string_equal(cJSON_GetObjectItem(s, "embedder")->valuestring, "local");
    assert_int_equal(cJSON_GetObjectItem(s, "dim")->valueint, 384);
    assert_int_equal(cJSON_GetObjectItem(s, "count")->valueint, 2);
    assert_int_equal(cJSON_GetObjectItem(s, "users")->valueint, 2);
    assert_int_equal(
        cJSON_GetObjectItem(s, "text_bytes")->valueint,
        (int)(strlen("One fact.") + strlen("Another, quite different, fact about trains.")));
    assert_true(cJSON_GetObjectItem(s, "generation")->valuedouble >= 2);
    assert_true(cJSON_IsNumber(cJSON_GetObjectItem(s, "bytes_per_memory")));
    assert_true(cJSON_GetObjectItem(s, "newest")->valuedouble >=
                cJSON_GetObjectItem(s, "oldest")->valuedouble);
    const char *keys[] = {"model", "bytes_on_disk", "bytes_in_memory"};
    for (size_t i = 0; i < 3; i++)
        assert_non_null(cJSON_GetObjectItem(s, keys[i]));
    cJSON_Delete(s);
    assert_int_equal(memory_stats(f->m, NULL, &s, err, sizeof err), MEMORY_OK);
    assert_true(cJSON_IsArray(s));
    assert_int_equal(cJSON_GetArraySize(s), 2);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(s, 1), "tenant")->valuestring,
                        "beta");
    cJSON_Delete(s);
    /* A tenant with no namespace has zeros and the configured embedder. */
    assert_int_equal(memory_stats(f->m, "nobody", &s, err, sizeof err), MEMORY_OK);
    assert_int_equal(cJSON_GetObjectItem(s, "count")->valueint, 0);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(s, "oldest")));
    cJSON_Delete(s);
}

/* An import line gives back every field, and its errors name the field. */
static void test_import_lines_parse_and_name_bad_fields(void **state)
{
    (void)state;
    struct memory_add a;
    cJSON *hold = NULL;
    float *vec = NULL;
    size_t vl = 0;
    char err[512] = "";
    assert_int_equal(memory_parse_import_line(
                         "{\"id\":\"0190a3c2-7e5b-7c3a-9f1e-2b3c4d5e6f70\",\"text\":\"Hi there\","
                         "\"user_id\":\"alice\",\"agent\":\"bot\",\"kind\":\"note\",\"created_at\":"
                         "1700000000000,"
                         "\"metadata\":{\"k\":\"v\"},\"vector\":[3,4],\"score\":0.5}  ",
                         &a, &hold, &vec, &vl, err, sizeof err),
                     0);
    assert_string_equal(a.text, "Hi there");
    assert_string_equal(a.id, "0190a3c2-7e5b-7c3a-9f1e-2b3c4d5e6f70");
    assert_string_equal(a.user, "alice");
    assert_string_equal(a.agent, "bot");
    assert_string_equal(a.kind, "note");
    assert_true(a.created_at == 1700000000000LL);
    assert_string_equal(a.metadata, "{\"k\":\"v\"}");
    assert_int_equal(vl, 2);
    assert_int_equal(a.vector_len, 2);
    assert_ptr_equal(a.vector, vec);
    assert_near(vec[1], 4.0, 0.0);
    assert_null(a.tenant);
    cJSON_Delete(hold);
    xfree(vec);

    assert_int_equal(
        memory_parse_import_line("{\"text\":\"only\"}", &a, &hold, &vec, &vl, err, sizeof err), 0);
    assert_null(a.id);
    assert_null(a.user);
    assert_null(vec);
    cJSON_Delete(hold);

    static const struct {
        const char *line, *want;
    } bad[] = {
        {"{\"id\":\"x\",\"text\":\"t\"}", "\"id\": \"x\" is not a UUID"},
        {"{\"id\":\"0190a3c2\"}", "\"text\" is missing"},
        {"{\"text\":\"\"}", "\"text\" is empty"},
        {"{\"text\":5}", "\"text\" must be a string"},
        {"{\"text\":\"t\",\"user_id\":\"a b\"}", "\"user_id\": \"a b\" is not a valid id"},
        {"{\"text\":\"t\",\"created_at\":-5}", "\"created_at\" must be a non-negative integer"},
        {"{\"text\":\"t\",\"created_at\":1.5}", "\"created_at\" must be a non-negative integer"},
        {"{\"text\":\"t\",\"metadata\":[1]}", "\"metadata\" must be a JSON object"},
        {"{\"text\":\"t\",\"vector\":[1,\"a\"]}", "\"vector\"[1]"},
        {"{\"text\":\"t\",\"vector\":[]}", "\"vector\" must be an array"},
        {"{\"text\":\"t\",\"kind\":\"K!\"}", "\"kind\": \"K!\" is not accepted"},
        {"{\"text\":\"t\"", "not JSON (syntax error at byte"},
        {"[1]", "not a JSON object"},
        {"{\"text\":\"t\"} {}", "more than one JSON value"},
        {"{\"text\":\"bad \xff\"}", "\"text\" is not valid UTF-8"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(
            memory_parse_import_line(bad[i].line, &a, &hold, &vec, &vl, err, sizeof err), -1);
        assert_null(hold);
        assert_null(vec);
        if (strstr(err, bad[i].want) == NULL)
            fail_msg("line %zu: \"%s\" does not contain \"%s\"", i, err, bad[i].want);
    }
}

/* An exported memory imported into another tenant keeps its id, fields,
 * created_at and vector (renormalised), and is found there. */
static void test_export_then_import_round_trips(void **state)
{
    struct fixture *f = *state;
    struct memory_settings set = defaults();
    f->m = local_manager(f, &set, 384);
    struct memory_added out;
    add_ok(f->m, "acme", "alice", "The spare key is under the blue pot.",
           "{\"room\":\"porch\",\"n\":3}", &out);
    struct mem_records rs = {0};
    char err[512] = "";
    assert_int_equal(memory_list(f->m, "acme", NULL, NULL, 0, true, &rs, err, sizeof err),
                     MEMORY_OK);
    assert_int_equal(rs.n, 1);
    assert_non_null(rs.v[0].vector);
    cJSON *j = memory_record_json(&rs.v[0], NULL, true, 384);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "vector")), 384);
    assert_null(cJSON_GetObjectItem(j, "score"));
    assert_string_equal(cJSON_GetObjectItem(j, "kind")->valuestring, "note");
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "metadata"), "n")->valueint, 3);
    char *line = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);

    struct memory_add a;
    cJSON *hold = NULL;
    float *vec = NULL;
    size_t vl = 0;
    assert_int_equal(memory_parse_import_line(line, &a, &hold, &vec, &vl, err, sizeof err), 0);
    cJSON_free(line);
    assert_int_equal(vl, 384);
    a.tenant = "beta";
    struct memory_added got;
    /* A vector of another length is refused, never read past its end. */
    a.vector_len = 383;
    assert_int_equal(memory_add_batch(f->m, &a, 1, &got, err, sizeof err), MEMORY_ERR_INPUT);
    assert_non_null(strstr(err, "vector has 383 numbers; the embedder makes 384"));
    a.vector_len = vl;
    assert_int_equal(memory_add_batch(f->m, &a, 1, &got, err, sizeof err), MEMORY_OK);
    assert_string_equal(got.id, out.id);
    cJSON_Delete(hold);
    xfree(vec);

    struct mem_records rb = {0};
    assert_int_equal(memory_list(f->m, "beta", NULL, NULL, 0, true, &rb, err, sizeof err),
                     MEMORY_OK);
    assert_int_equal(rb.n, 1);
    assert_string_equal(rb.v[0].id, rs.v[0].id);
    assert_string_equal(rb.v[0].text, rs.v[0].text);
    assert_string_equal(rb.v[0].user_id, "alice");
    assert_true(rb.v[0].created_at == rs.v[0].created_at);
    for (int i = 0; i < 384; i++)
        assert_near(rb.v[0].vector[i], rs.v[0].vector[i], 1e-6);
    cJSON *m1 = cJSON_Parse(rb.v[0].metadata);
    assert_string_equal(cJSON_GetObjectItem(m1, "room")->valuestring, "porch");
    cJSON_Delete(m1);
    mem_records_free(&rb);
    mem_records_free(&rs);
    assert_int_equal(hist_count(f->db, "beta", "import"), 1);

    /* A search hit's JSON carries its scores, null where not computed. */
    struct memory_result r;
    assert_int_equal(memory_retrieve(f->m, "beta", NULL, "where is the spare key", 1,
                                     MEMORY_SIMILARITY, NULL, &r, err, sizeof err),
                     MEMORY_OK);
    assert_int_equal(r.n, 1);
    cJSON *h = memory_record_json(&r.hits[0].rec, &r.hits[0], false, 384);
    assert_null(cJSON_GetObjectItem(h, "vector"));
    assert_near(cJSON_GetObjectItem(h, "score")->valuedouble, r.hits[0].vector, 1e-12);
    cJSON *sc = cJSON_GetObjectItem(h, "scores");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(sc, "mmr")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(sc, "keyword")));
    assert_true(cJSON_IsNumber(cJSON_GetObjectItem(sc, "vector")));
    cJSON_Delete(h);
    memory_result_free(&r);
}

/* More memories than one page of the store (1,000): list with k 0 walks
 * every page, k and after_id page by hand, and a delete by filter removes
 * every match across pages, keeping the frequencies exact. */
static void test_operations_walk_past_one_page(void **state)
{
    struct fixture *f = *state;
    struct memory_settings set = defaults();
    f->m = local_manager(f, &set, 64);
    size_t n = 1010, odd = 4;
    struct memory_add *a = calloc(n, sizeof *a);
    char(*texts)[64] = calloc(n, sizeof *texts);
    assert_non_null(a);
    assert_non_null(texts);
    for (size_t i = 0; i < n; i++) {
        snprintf(texts[i], sizeof texts[i], "note %zu about item %zu", i, i * 7);
        a[i] = (struct memory_add){.tenant = "acme",
                                   .user = i < n - odd ? "many" : "few",
                                   .agent = "x",
                                   .text = texts[i],
                                   .no_dedup = true};
    }
    struct memory_added *out = calloc(n, sizeof *out);
    char err[512] = "";
    assert_int_equal(memory_add_batch(f->m, a, n, out, err, sizeof err), MEMORY_OK);
    assert_int_equal(count_of(f->m, "acme"), n);
    struct mem_records rs = {0};
    assert_int_equal(memory_list(f->m, "acme", NULL, NULL, 600, false, &rs, err, sizeof err),
                     MEMORY_OK);
    assert_int_equal(rs.n, 600);
    char after[64];
    snprintf(after, sizeof after, "%s", rs.v[599].id);
    mem_records_free(&rs);
    assert_int_equal(memory_list(f->m, "acme", NULL, after, 0, false, &rs, err, sizeof err),
                     MEMORY_OK);
    assert_int_equal(rs.n, n - 600);
    assert_true(strcmp(rs.v[0].id, after) > 0);
    mem_records_free(&rs);

    struct mem_filter *flt = filter_eq("user_id", "many");
    size_t deleted = 0;
    assert_int_equal(
        memory_delete(f->m, "acme", NULL, flt, "admin", "cli", &deleted, err, sizeof err),
        MEMORY_OK);
    filter_free(flt);
    assert_int_equal(deleted, n - odd);
    assert_int_equal(hist_count(f->db, "acme", "delete"), n - odd);
    assert_int_equal(count_of(f->m, "acme"), odd);
    check_df(f, f->m, "acme");
    assert_int_equal(memory_purge(f->m, "acme", "few", &deleted, err, sizeof err), MEMORY_OK);
    assert_int_equal(deleted, odd);
    assert_int_equal(count_of(f->m, "acme"), 0);
    assert_int_equal(check_df(f, f->m, "acme"), 0);
    free(a);
    free(texts);
    free(out);
}

/* The settings and the manager come from the configuration's variables. */
static void test_the_manager_comes_from_the_configuration(void **state)
{
    struct fixture *f = *state;
    const char *flags[] = {
        "MEMORY_RETRIEVAL_METHOD=hybrid", "MEMORY_RETRIEVAL_K=7",       "MEMORY_FETCH_K=30",
        "MEMORY_MMR_DIVERSITY=0.5",       "MEMORY_DEDUP_THRESHOLD=0.9", "MEMORY_SCOPE=user",
        "MEMORY_MAX_BYTES=512",           "EMBEDDINGS_DIMENSION=128",
    };
    struct config *cfg = tu_config(f->dir, flags, sizeof flags / sizeof flags[0]);
    struct memory_settings set;
    memory_settings_from_config(cfg, &set);
    assert_int_equal(set.method, MEMORY_HYBRID);
    assert_int_equal(set.k, 7);
    assert_int_equal(set.fetch_k, 30);
    assert_near(set.diversity, 0.5, 0.0);
    assert_near(set.dedup_threshold, 0.9, 0.0);
    assert_true(set.user_scope);
    assert_int_equal(set.max_bytes, 512);
    char err[512] = "";
    f->m = memory_new_from_config(cfg, f->db, NULL, err, sizeof err);
    if (f->m == NULL)
        fail_msg("memory_new_from_config: %s", err);
    assert_int_equal(memory_embedder(f->m)->dim, 128);
    assert_string_equal(memory_embedder(f->m)->name, "local");
    assert_string_equal(memory_store(f->m)->name, "local");
    config_free(cfg);

    /* The defaults: mmr, 5, tenant scope. */
    cfg = tu_config(f->dir, NULL, 0);
    memory_settings_from_config(cfg, &set);
    assert_int_equal(set.method, MEMORY_MMR);
    assert_int_equal(set.k, 5);
    assert_int_equal(set.fetch_k, 0);
    assert_near(set.diversity, 0.3, 0.0);
    assert_near(set.dedup_threshold, 0.95, 0.0);
    assert_false(set.user_scope);
    assert_int_equal(set.max_bytes, 8192);
    config_free(cfg);
}

/* The method names round-trip, and statuses map to their reasons. */
static void test_names_and_settings(void **state)
{
    (void)state;
    enum memory_method m;
    for (int i = MEMORY_SIMILARITY; i <= MEMORY_HYBRID; i++) {
        assert_int_equal(memory_method_parse(memory_method_name((enum memory_method)i), &m), 0);
        assert_int_equal(m, i);
    }
    assert_int_equal(memory_method_parse("cosine", &m), -1);
    assert_string_equal(memory_status_reason(MEMORY_ERR_INPUT), "bad_input");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_add_then_retrieve_recalls_the_paraphrased_fact, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_mmr_matches_a_hand_computation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mmr_with_zero_diversity_is_the_similarity_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_mmr_with_zero_diversity_matches_similarity_on_real_texts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hybrid_fusion_matches_a_hand_computation, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_hybrid_score_fusion_weighs_both_rankings, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dedup_refreshes_instead_of_adding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dedup_applies_within_a_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_long_text_is_chunked_at_boundaries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_mismatch_is_refused_for_every_operation, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_user_scope_recalls_only_the_users_memories, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_delete_by_id_and_by_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_purge_of_a_user_leaves_the_others, setup, teardown),
        cmocka_unit_test_setup_teardown(test_document_frequencies_follow_every_change, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_an_import_batch_is_all_or_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_store_failure_mid_write_leaves_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_store_that_is_down_is_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_an_embedder_that_fails_is_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input_is_refused_with_a_clear_message, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_add_conversation_stores_the_exchange, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats_json, setup, teardown),
        cmocka_unit_test(test_import_lines_parse_and_name_bad_fields),
        cmocka_unit_test_setup_teardown(test_export_then_import_round_trips, setup, teardown),
        cmocka_unit_test_setup_teardown(test_operations_walk_past_one_page, setup, teardown),
        cmocka_unit_test_setup_teardown(test_the_manager_comes_from_the_configuration, setup,
                                        teardown),
        cmocka_unit_test(test_names_and_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
