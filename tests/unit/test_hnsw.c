/*
 * Tests of the HNSW graph (memory/hnsw.h): recall against a brute-force
 * reference written here, determinism, filtered and exact-completed
 * searches, tombstones and compaction, and the file (round trip, private
 * mapping, and refusal of damaged files). Sizes are small and seeds fixed
 * so the program runs in seconds under valgrind.
 */
#include "testutil.h"

#include <math.h>
#include <stdbool.h>

#include "memory/hnsw.h"
#include "memory/vindex.h"
#include "memory/vscan.h"
#include "util/alloc.h"

/* The file format of hnsw.c that the damage tests rely on. */
#define HDR_NODES    48
#define HDR_ENTRY    64
#define HDR_SECT     104 /* (offset, size) pairs of uint64 */
#define HDR_CHECKSUM 248
#define SECT_LEVELS  1
#define SECT_LINK0   3
#define SECT_UOFF    4
#define SECT_POOL    5
#define NQ           50 /* queries per recall measure */
#define NQ_FILTER    30 /* queries per filter check */
#define K            10

/* ---- data ------------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double rng_gauss(uint64_t *s)
{
    double u = ((double)(rng_next(s) >> 11) + 1.0) * 0x1p-53;
    double v = (double)(rng_next(s) >> 11) * 0x1p-53;
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

static void normalise(float *v, int dim)
{
    double s = 0;
    for (int i = 0; i < dim; i++)
        s += (double)v[i] * (double)v[i];
    s = 1.0 / sqrt(s);
    for (int i = 0; i < dim; i++)
        v[i] = (float)((double)v[i] * s);
}

/* n unit vectors: uniform on the sphere, or around 20 centres when
 * clustered. Caller frees. */
static float *data_make(size_t n, int dim, bool clustered, uint64_t seed)
{
    float *centres = malloc(20 * (size_t)dim * sizeof(float));
    float *d = malloc(n * (size_t)dim * sizeof(float));
    assert_non_null(centres);
    assert_non_null(d);
    for (size_t i = 0; i < 20 * (size_t)dim; i++)
        centres[i] = (float)rng_gauss(&seed);
    for (size_t i = 0; i < n; i++) {
        float *v = d + i * (size_t)dim;
        const float *c = centres + (rng_next(&seed) % 20) * (size_t)dim;
        for (int j = 0; j < dim; j++)
            v[j] = clustered ? c[j] + (float)(0.35 * rng_gauss(&seed)) : (float)rng_gauss(&seed);
        normalise(v, dim);
    }
    free(centres);
    return d;
}

static struct hnsw *build(const float *d, size_t n, int dim, int m, int efc, uint64_t seed)
{
    struct hnsw_params p = {m, efc, seed};
    struct hnsw *h = hnsw_new(dim, &p);
    assert_non_null(h);
    hnsw_reserve(h, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(hnsw_add(h, (int64_t)i * 7 + 1, d + i * (size_t)dim), i);
    return h;
}

/* ---- the reference ---------------------------------------------------- */

static double dot_ref(const float *a, const float *b, int dim)
{
    double s = 0;
    for (int i = 0; i < dim; i++)
        s += (double)a[i] * (double)b[i];
    return s;
}

/* The k best of the rows i < n with ok[i] (NULL: all), by a plain loop;
 * writes their rows to out best first and returns how many. */
static size_t exact_ref(const float *d, size_t n, int dim, const float *q, size_t k, const bool *ok,
                        uint32_t *out)
{
    double *best = malloc((k + 1) * sizeof *best);
    assert_non_null(best);
    size_t got = 0;
    for (size_t i = 0; i < n; i++) {
        if (ok != NULL && !ok[i])
            continue;
        double s = dot_ref(q, d + i * (size_t)dim, dim);
        size_t j = got < k ? got++ : k;
        if (j == k && s <= best[k - 1])
            continue;
        if (j == k)
            j = k - 1;
        while (j > 0 && best[j - 1] < s) {
            best[j] = best[j - 1];
            out[j] = out[j - 1];
            j--;
        }
        best[j] = s;
        out[j] = (uint32_t)i;
    }
    free(best);
    return got;
}

/* Mean recall@K over NQ fresh queries of the graph search against the
 * reference over the rows with ok[] (NULL: all). node_of maps a result to
 * a data row (NULL: the node is the row). */
static double recall_of(struct hnsw *h, const float *d, size_t n, int dim, bool clustered,
                        size_t ef, const bool *ok, const uint64_t *allow, const uint32_t *row_of)
{
    float *qs = data_make(NQ, dim, clustered, 777);
    size_t hit = 0, total = 0;
    for (size_t qi = 0; qi < NQ; qi++) {
        const float *q = qs + qi * (size_t)dim;
        uint32_t truth[K];
        struct hnsw_hit hits[K];
        size_t t = exact_ref(d, n, dim, q, K, ok, truth);
        size_t g = hnsw_search(h, q, K, ef, allow, hits, NULL);
        assert_int_equal(g, t);
        for (size_t i = 0; i < g; i++) {
            uint32_t row = row_of != NULL ? row_of[hits[i].node] : hits[i].node;
            for (size_t j = 0; j < t; j++)
                hit += row == truth[j];
        }
        total += t;
    }
    free(qs);
    return (double)hit / (double)total;
}

/* The index the result and filter tests share, built once by the group
 * setup (builds dominate the program's time under valgrind): SHARED_N
 * random unit vectors of dim 16, every 13th node from node 1 deleted, so
 * 4800 live nodes and 2400 live even ones, both above the 2048 below
 * which a filtered search is an exact scan. */
#define SHARED_N   5200
#define SHARED_DIM 16
struct shared {
    float *d;
    struct hnsw *h;
};

static int shared_setup(void **state)
{
    struct shared *s = malloc(sizeof *s);
    if (s == NULL)
        return -1;
    s->d = data_make(SHARED_N, SHARED_DIM, false, 7);
    s->h = build(s->d, SHARED_N, SHARED_DIM, 8, 32, 2);
    for (uint32_t i = 1; i < SHARED_N; i += 13)
        hnsw_delete(s->h, i);
    *state = s;
    return 0;
}

static int shared_teardown(void **state)
{
    struct shared *s = *state;
    hnsw_free(s->h);
    free(s->d);
    free(s);
    return 0;
}

/* ---- recall, determinism, results ------------------------------------- */

/* The graph finds at least 95 % of the true top 10 of random unit vectors
 * at a moderate ef, so the construction and the beam search work. */
static void test_recall_on_random_unit_vectors_is_at_least_95_percent(void **state)
{
    (void)state;
    size_t n = 2000;
    int dim = 24;
    float *d = data_make(n, dim, false, 1);
    struct hnsw *h = build(d, n, dim, 8, 40, 5);
    assert_true(recall_of(h, d, n, dim, false, 64, NULL, NULL, NULL) >= 0.95);
    hnsw_free(h);
    free(d);
}

/* The same on clustered vectors, where the heuristic must keep links
 * between clusters for the graph to stay navigable. */
static void test_recall_on_clustered_vectors_is_at_least_95_percent(void **state)
{
    (void)state;
    size_t n = 2000;
    int dim = 24;
    float *d = data_make(n, dim, true, 2);
    struct hnsw *h = build(d, n, dim, 10, 40, 5);
    assert_true(recall_of(h, d, n, dim, true, 128, NULL, NULL, NULL) >= 0.95);
    hnsw_free(h);
    free(d);
}

/* Two graphs built with the same seed from the same inserts answer every
 * query identically, bit for bit (levels come from the seeded generator,
 * and nothing else varies). */
static void test_same_seed_and_inserts_give_identical_results(void **state)
{
    (void)state;
    size_t n = 1000;
    int dim = 16;
    float *d = data_make(n, dim, false, 3);
    float *qs = data_make(40, dim, false, 4);
    struct hnsw *a = build(d, n, dim, 8, 40, 9);
    struct hnsw *b = build(d, n, dim, 8, 40, 9);
    for (size_t qi = 0; qi < 40; qi++) {
        struct hnsw_hit ha[K], hb[K];
        struct hnsw_search_stats sa, sb;
        size_t ga = hnsw_search(a, qs + qi * (size_t)dim, K, 20, NULL, ha, &sa);
        size_t gb = hnsw_search(b, qs + qi * (size_t)dim, K, 20, NULL, hb, &sb);
        assert_int_equal(ga, K);
        assert_int_equal(ga, gb);
        assert_memory_equal(ha, hb, ga * sizeof *ha);
        assert_int_equal(sa.visited, sb.visited);
        assert_false(sa.exact);
    }
    hnsw_free(a);
    hnsw_free(b);
    free(d);
    free(qs);
}

/* Every result is live, ranked best first, labelled as inserted, and
 * carries exactly the dot product of its node's stored vector (the same
 * kernel vscan_dot uses). */
static void test_results_are_best_first_live_and_scored_by_the_dot_product(void **state)
{
    const struct shared *sh = *state;
    struct hnsw *h = sh->h;
    const float *d = sh->d;
    size_t n = SHARED_N;
    int dim = SHARED_DIM;
    float *qs = data_make(30, dim, false, 6);
    for (size_t qi = 0; qi < 30; qi++) {
        const float *q = qs + qi * (size_t)dim;
        struct hnsw_hit hits[25];
        struct hnsw_search_stats st;
        size_t g = hnsw_search(h, q, 25, 50, NULL, hits, &st);
        assert_int_equal(g, 25);
        assert_false(st.exact); /* 4800 live nodes: the graph answers */
        for (size_t i = 0; i < g; i++) {
            uint32_t node = hits[i].node;
            assert_true(node < n);
            assert_false(hnsw_is_deleted(h, node));
            assert_int_equal(hnsw_label(h, node), (int64_t)node * 7 + 1);
            assert_memory_equal(hnsw_vector(h, node), d + node * (size_t)dim,
                                (size_t)dim * sizeof(float));
            float s = vscan_dot(q, hnsw_vector(h, node), (size_t)dim);
            assert_memory_equal(&hits[i].score, &s, sizeof s);
            if (i > 0)
                assert_true(hits[i - 1].score >= hits[i].score);
        }
    }
    free(qs);
}

/* ---- filters ---------------------------------------------------------- */

/* Runs NQ searches with allow (and ok[] its live members) and checks that
 * each returns min(k, allowed live) allowed live nodes; with want_exact,
 * also that they are the reference's answer and came from the scan.
 * Returns the recall against the reference. */
static double check_filter(struct hnsw *h, const float *d, size_t n, int dim, const uint64_t *allow,
                           const bool *ok, size_t k, bool want_exact)
{
    size_t live = 0;
    for (size_t i = 0; i < n; i++)
        live += ok[i];
    size_t want = k < live ? k : live;
    float *qs = data_make(NQ_FILTER, dim, false, 99);
    struct hnsw_hit *hits = malloc((k + 1) * sizeof *hits);
    uint32_t *truth = malloc((k + 1) * sizeof *truth);
    size_t hit = 0, total = 0;
    for (size_t qi = 0; qi < NQ_FILTER; qi++) {
        const float *q = qs + qi * (size_t)dim;
        struct hnsw_search_stats st;
        size_t g = hnsw_search(h, q, k, 64, allow, hits, &st);
        assert_int_equal(g, want);
        size_t t = exact_ref(d, n, dim, q, k, ok, truth);
        assert_int_equal(t, want);
        for (size_t i = 0; i < g; i++) {
            assert_true(ok[hits[i].node]);
            if (i > 0)
                assert_true(hits[i - 1].score >= hits[i].score);
            bool found = false;
            for (size_t j = 0; j < t; j++)
                found = found || truth[j] == hits[i].node;
            hit += found;
            if (want_exact)
                assert_true(found);
        }
        if (want_exact && want > 0)
            assert_true(st.exact);
        total += t;
    }
    free(qs);
    free(hits);
    free(truth);
    return total > 0 ? (double)hit / (double)total : 1.0;
}

/* Allow bitmaps from half the nodes down to none (on the shared index,
 * whose tombstones include allowed nodes): every search returns exactly
 * min(k, allowed live) allowed live nodes; selective ones are answered by
 * the exact scan and match the reference; the broad one (2400 allowed live
 * nodes, above the exact scan's 2048) goes through the graph and still
 * finds most of the true neighbours. */
static void test_filtered_search_returns_min_k_allowed_live_nodes(void **state)
{
    const struct shared *sh = *state;
    struct hnsw *h = sh->h;
    const float *d = sh->d;
    size_t n = SHARED_N;
    int dim = SHARED_DIM;
    size_t words = n / 64 + 1;
    uint64_t *allow = calloc(words, sizeof *allow);
    bool *ok = calloc(n, sizeof *ok);
    /* every 2nd node, 1 in 100, three live ones (and a deleted one), none */
    for (int kind = 0; kind < 4; kind++) {
        memset(allow, 0, words * sizeof *allow);
        memset(ok, 0, n * sizeof *ok);
        for (size_t i = 0; i < n; i++) {
            bool in = kind == 0   ? i % 2 == 0
                      : kind == 1 ? i % 100 == 0
                      : kind == 2 ? (i == 10 || i == 14 || i == 2222 || i == 5199)
                                  : false;
            if (in)
                allow[i / 64] |= (uint64_t)1 << (i % 64);
            ok[i] = in && !hnsw_is_deleted(h, (uint32_t)i);
        }
        assert_true(hnsw_is_deleted(h, 14));
        double r = check_filter(h, d, n, dim, allow, ok, K, kind != 0);
        if (kind == 0)
            assert_true(r >= 0.9);
        /* k above the allowed live count (1 in 100: 60) returns them all */
        check_filter(h, d, n, dim, allow, ok, 70, kind != 0);
    }
    free(allow);
    free(ok);
}

/* ---- deletes and compaction ------------------------------------------- */

/* The whole of path (caller frees); fails the test when unreadable. */
static char *slurp(const char *path, size_t *len)
{
    *len = 0;
    char *buf = tu_read_file(path, len);
    if (buf == NULL) {
        fail_msg("cannot read %s", path);
        abort();
    }
    return buf;
}

static uint32_t read_u32(const char *buf, size_t off)
{
    uint32_t v;
    memcpy(&v, buf + off, sizeof v);
    return v;
}

static uint64_t read_u64(const char *buf, size_t off)
{
    uint64_t v;
    memcpy(&v, buf + off, sizeof v);
    return v;
}

/* The entry point of h, read from a saved copy's header. */
static uint32_t entry_of(const struct hnsw *h, const char *dir)
{
    char path[4096], err[256];
    snprintf(path, sizeof path, "%s/entry.hnsw", dir);
    assert_int_equal(hnsw_save(h, NULL, path, err, sizeof err), 0);
    size_t len;
    char *buf = slurp(path, &len);
    uint32_t e = read_u32(buf, HDR_ENTRY);
    assert_true(e < hnsw_nodes(h));
    free(buf);
    unlink(path);
    return e;
}

/* Deleting 30 % of the nodes, the entry point among them, never returns a
 * deleted node and keeps recall over the survivors; compaction then drops
 * them, renumbers the rest with their labels and vectors, keeps recall,
 * and takes new inserts. */
static void test_deletes_and_compaction_keep_recall_and_remap_nodes(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    size_t n = 3000;
    int dim = 16;
    float *d = data_make(n, dim, true, 11);
    struct hnsw *h = build(d, n, dim, 10, 60, 3);
    bool *ok = malloc(n * sizeof *ok);
    uint32_t entry = entry_of(h, dir);
    uint64_t s = 5;
    size_t dead = 0;
    for (size_t i = 0; i < n; i++) {
        ok[i] = !(i == entry || rng_next(&s) % 10 < 3);
        if (!ok[i]) {
            hnsw_delete(h, (uint32_t)i);
            hnsw_delete(h, (uint32_t)i); /* twice is a no-op */
            dead++;
        }
    }
    assert_true(hnsw_is_deleted(h, entry));
    assert_int_equal(hnsw_deleted(h), dead);
    assert_true(dead > n / 4);
    /* recall_of checks that the counts match; ok[] filters the reference */
    assert_true(recall_of(h, d, n, dim, true, 128, ok, NULL, NULL) >= 0.9);
    float *qs = data_make(50, dim, true, 12);
    for (size_t qi = 0; qi < 50; qi++) {
        struct hnsw_hit hits[40];
        size_t g = hnsw_search(h, qs + qi * (size_t)dim, 40, 40, NULL, hits, NULL);
        assert_int_equal(g, 40);
        for (size_t i = 0; i < g; i++)
            assert_true(ok[hits[i].node]);
    }

    uint32_t *remap = hnsw_compact(h);
    assert_int_equal(hnsw_nodes(h), n - dead);
    assert_int_equal(hnsw_deleted(h), 0);
    uint32_t *row_of = malloc(n * sizeof *row_of);
    uint32_t next = 0;
    for (size_t i = 0; i < n; i++) {
        if (!ok[i]) {
            assert_int_equal(remap[i], UINT32_MAX);
            continue;
        }
        /* survivors keep their old order, label and vector */
        assert_int_equal(remap[i], next++);
        assert_int_equal(hnsw_label(h, remap[i]), (int64_t)i * 7 + 1);
        assert_memory_equal(hnsw_vector(h, remap[i]), d + i * (size_t)dim,
                            (size_t)dim * sizeof(float));
        assert_false(hnsw_is_deleted(h, remap[i]));
        row_of[remap[i]] = (uint32_t)i;
    }
    xfree(remap);
    assert_true(recall_of(h, d, n, dim, true, 128, ok, NULL, row_of) >= 0.95);

    /* inserts after compaction (around other centres: new regions of the
     * graph) are linked in: each finds itself */
    float *more = data_make(300, dim, true, 13);
    for (size_t i = 0; i < 300; i++)
        assert_int_equal(hnsw_add(h, -(int64_t)i, more + i * (size_t)dim), n - dead + i);
    for (size_t i = 0; i < 300; i++) {
        struct hnsw_hit hit;
        assert_int_equal(hnsw_search(h, more + i * (size_t)dim, 1, 64, NULL, &hit, NULL), 1);
        assert_int_equal(hnsw_label(h, hit.node), -(int64_t)i);
    }
    /* compacting with no tombstones renumbers nothing */
    remap = hnsw_compact(h);
    for (uint32_t i = 0; i < hnsw_nodes(h); i++)
        assert_int_equal(remap[i], i);
    xfree(remap);
    free(more);
    free(qs);
    free(row_of);
    free(ok);
    hnsw_free(h);
    free(d);
    tu_rmtree(dir);
    free(dir);
}

/* Deleting every node leaves searches empty, and compaction an empty
 * index that takes inserts again. */
static void test_deleting_everything_then_compacting_leaves_a_usable_empty_index(void **state)
{
    (void)state;
    size_t n = 300;
    int dim = 8;
    float *d = data_make(n, dim, false, 21);
    struct hnsw *h = build(d, n, dim, 6, 20, 1);
    for (uint32_t i = 0; i < n; i++)
        hnsw_delete(h, i);
    struct hnsw_hit hits[K];
    assert_int_equal(hnsw_search(h, d, K, 20, NULL, hits, NULL), 0);
    xfree(hnsw_compact(h));
    assert_int_equal(hnsw_nodes(h), 0);
    assert_int_equal(hnsw_search(h, d, K, 20, NULL, hits, NULL), 0);
    for (size_t i = 0; i < 50; i++)
        hnsw_add(h, (int64_t)i, d + i * (size_t)dim);
    assert_int_equal(hnsw_search(h, d + 7 * (size_t)dim, 1, 20, NULL, hits, NULL), 1);
    assert_int_equal(hits[0].node, 7);
    hnsw_free(h);
    free(d);
}

/* ---- persistence ------------------------------------------------------ */

/* Saving and loading gives the same index: parameters, stamps, labels,
 * tombstones, vectors, and bit-identical search results. Inserts after
 * the load go to private memory (the file stays byte-identical) and give
 * exactly what the same inserts give the never-saved index, since the
 * level generator's state travels with the file. */
static void test_save_and_load_round_trip_and_inserts_after_load_stay_private(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char path[4096], path2[4096], err[512];
    snprintf(path, sizeof path, "%s/ns.hnsw", dir);
    snprintf(path2, sizeof path2, "%s/ns2.hnsw", dir);
    size_t n = 2000;
    int dim = 16;
    float *d = data_make(n, dim, false, 31);
    float *qs = data_make(40, dim, false, 32);
    float *more = data_make(400, dim, false, 33);
    struct hnsw *a = build(d, n, dim, 8, 40, 77);
    for (uint32_t i = 0; i < n; i += 7)
        hnsw_delete(a, i);
    struct hnsw_meta meta = {42, 1700000000123}, got = {0, 0};
    assert_int_equal(hnsw_save(a, &meta, path, err, sizeof err), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    size_t flen;
    char *before = slurp(path, &flen);
    assert_int_equal(flen, (size_t)st.st_size);

    struct hnsw *b = hnsw_load(path, &got, err, sizeof err);
    assert_non_null(b);
    assert_int_equal(got.generation, 42);
    assert_int_equal(got.created_ms, 1700000000123);
    struct hnsw_params pa, pb;
    hnsw_params_get(a, &pa);
    hnsw_params_get(b, &pb);
    assert_int_equal(pa.m, pb.m);
    assert_int_equal(pa.ef_construction, pb.ef_construction);
    assert_int_equal(pa.seed, pb.seed);
    assert_int_equal(hnsw_dim(b), dim);
    assert_int_equal(hnsw_nodes(b), n);
    assert_int_equal(hnsw_deleted(b), hnsw_deleted(a));
    assert_true(hnsw_bytes(b) >= flen); /* the mapping counts */
    for (uint32_t i = 0; i < n; i++) {
        assert_int_equal(hnsw_label(b, i), hnsw_label(a, i));
        assert_int_equal(hnsw_is_deleted(b, i), hnsw_is_deleted(a, i));
        assert_memory_equal(hnsw_vector(b, i), hnsw_vector(a, i), (size_t)dim * sizeof(float));
    }

    /* the same inserts into both, then the same answers, bit for bit */
    for (int round = 0; round < 2; round++) {
        for (size_t qi = 0; qi < 40; qi++) {
            struct hnsw_hit ha[K], hb[K];
            size_t ga = hnsw_search(a, qs + qi * (size_t)dim, K, 24, NULL, ha, NULL);
            size_t gb = hnsw_search(b, qs + qi * (size_t)dim, K, 24, NULL, hb, NULL);
            assert_int_equal(ga, K);
            assert_int_equal(ga, gb);
            assert_memory_equal(ha, hb, ga * sizeof *ha);
        }
        if (round == 0)
            for (size_t i = 0; i < 400; i++) {
                uint32_t na = hnsw_add(a, 5000 + (int64_t)i, more + i * (size_t)dim);
                assert_int_equal(hnsw_add(b, 5000 + (int64_t)i, more + i * (size_t)dim), na);
            }
    }
    size_t alen;
    char *after = slurp(path, &alen);
    assert_int_equal(alen, flen);
    assert_memory_equal(before, after, flen);

    /* a loaded and grown index saves and loads again (both link pools) */
    assert_int_equal(hnsw_save(b, &meta, path2, err, sizeof err), 0);
    struct hnsw *c = hnsw_load(path2, NULL, err, sizeof err);
    assert_non_null(c);
    assert_int_equal(hnsw_nodes(c), n + 400);
    for (size_t qi = 0; qi < 40; qi++) {
        struct hnsw_hit hb[K], hc[K];
        size_t gb = hnsw_search(b, qs + qi * (size_t)dim, K, 24, NULL, hb, NULL);
        size_t gc = hnsw_search(c, qs + qi * (size_t)dim, K, 24, NULL, hc, NULL);
        assert_int_equal(gb, gc);
        assert_memory_equal(hb, hc, gb * sizeof *hb);
    }
    /* compacting a loaded index renumbers its mapped and heap nodes alike */
    uint32_t *remap = hnsw_compact(c);
    assert_int_equal(hnsw_nodes(c), n + 400 - hnsw_deleted(a));
    assert_int_equal(hnsw_label(c, remap[1]), 1 * 7 + 1);
    assert_int_equal(hnsw_label(c, remap[n + 399]), 5000 + 399);
    struct hnsw_hit self;
    assert_int_equal(hnsw_search(c, more + 399 * (size_t)dim, 1, 24, NULL, &self, NULL), 1);
    assert_int_equal(self.node, remap[n + 399]);
    xfree(remap);

    /* saving over the file a loaded index maps keeps the mapping valid */
    assert_int_equal(hnsw_save(b, &meta, path, err, sizeof err), 0);
    assert_int_equal(hnsw_label(b, 3), 3 * 7 + 1);

    hnsw_free(a);
    hnsw_free(b);
    hnsw_free(c);
    free(before);
    free(after);
    free(d);
    free(qs);
    free(more);
    tu_rmtree(dir);
    free(dir);
}

/* A loaded index whose vectors were copied into memory answers bit for bit
 * as the mapped one, saves the same file, grows and compacts, and counts
 * the copy in its bytes. */
static void test_preloaded_vectors_answer_as_the_mapped_file(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char path[4096], path2[4096], err[512];
    snprintf(path, sizeof path, "%s/ns.hnsw", dir);
    snprintf(path2, sizeof path2, "%s/copy.hnsw", dir);
    size_t n = 1500;
    int dim = 24;
    float *d = data_make(n, dim, true, 41);
    float *qs = data_make(30, dim, true, 42);
    struct hnsw *a = build(d, n, dim, 8, 40, 78);
    for (uint32_t i = 0; i < n; i += 11)
        hnsw_delete(a, i);
    struct hnsw_meta meta = {7, 1700000000000};
    assert_int_equal(hnsw_save(a, &meta, path, err, sizeof err), 0);
    struct hnsw *mapped = hnsw_load(path, NULL, err, sizeof err);
    struct hnsw *pre = hnsw_load(path, NULL, err, sizeof err);
    assert_non_null(mapped);
    assert_non_null(pre);
    size_t before = hnsw_bytes(pre);
    assert_int_equal(hnsw_vectors_to_memory(pre, err, sizeof err), 0);
    assert_true(hnsw_bytes(pre) >= before + n * (size_t)dim * sizeof(float));
    assert_int_equal(hnsw_vectors_to_memory(pre, err, sizeof err), 0); /* once is enough */
    for (uint32_t i = 0; i < n; i++)
        assert_memory_equal(hnsw_vector(pre, i), hnsw_vector(mapped, i),
                            (size_t)dim * sizeof(float));
    for (size_t qi = 0; qi < 30; qi++) {
        struct hnsw_hit hm[K], hp[K];
        size_t gm = hnsw_search(mapped, qs + qi * (size_t)dim, K, 24, NULL, hm, NULL);
        size_t gp = hnsw_search(pre, qs + qi * (size_t)dim, K, 24, NULL, hp, NULL);
        assert_int_equal(gm, K);
        assert_int_equal(gm, gp);
        assert_memory_equal(hm, hp, gm * sizeof *hm);
    }
    /* the copy saves the same bytes as the file it came from */
    assert_int_equal(hnsw_save(pre, &meta, path2, err, sizeof err), 0);
    size_t l1, l2;
    char *f1 = slurp(path, &l1), *f2 = slurp(path2, &l2);
    assert_int_equal(l1, l2);
    assert_memory_equal(f1, f2, l1);
    /* the same insert and compaction on both still give the same answers
     * (the compaction leaves the copy behind, freed) */
    uint32_t node = hnsw_add(pre, 9999, d);
    assert_int_equal(hnsw_add(mapped, 9999, d), node);
    uint32_t *remap = hnsw_compact(pre), *remap2 = hnsw_compact(mapped);
    assert_memory_equal(remap, remap2, (n + 1) * sizeof *remap);
    assert_int_equal(hnsw_nodes(pre), n + 1 - hnsw_deleted(a));
    for (size_t qi = 0; qi < 30; qi++) {
        struct hnsw_hit hm[K], hp[K];
        size_t gm = hnsw_search(mapped, qs + qi * (size_t)dim, K, 24, NULL, hm, NULL);
        size_t gp = hnsw_search(pre, qs + qi * (size_t)dim, K, 24, NULL, hp, NULL);
        assert_int_equal(gm, gp);
        assert_memory_equal(hm, hp, gm * sizeof *hm);
    }
    xfree(remap);
    xfree(remap2);
    /* an index built in memory has nothing to copy */
    assert_int_equal(hnsw_vectors_to_memory(a, err, sizeof err), 0);

    hnsw_free(a);
    hnsw_free(mapped);
    hnsw_free(pre);
    free(f1);
    free(f2);
    free(d);
    free(qs);
    tu_rmtree(dir);
    free(dir);
}

/* Through vindex with preload set, the copy is made at the first search,
 * not at load (a load that only checks the graph never pays for it), and
 * the answers are those of the mapped file. */
static void vindex_preloads_at_the_first_search(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/ns.hnsw", dir);
    size_t n = 800;
    int dim = 16;
    float *d = data_make(n, dim, true, 51);
    struct hnsw *a = build(d, n, dim, 8, 40, 79);
    struct hnsw_meta meta = {1, 1};
    assert_int_equal(hnsw_save(a, &meta, path, err, sizeof err), 0);
    struct vindex_opts mapped_o = {.hnsw_threshold = 1, .ef_search = 24};
    struct vindex_opts pre_o = mapped_o;
    pre_o.preload = true;
    struct vindex *mapped = vindex_load(path, &mapped_o, NULL, err, sizeof err);
    struct vindex *pre = vindex_load(path, &pre_o, NULL, err, sizeof err);
    assert_non_null(mapped);
    assert_non_null(pre);
    assert_int_equal(vindex_bytes(pre), vindex_bytes(mapped));
    struct vindex_hit hm[K], hp[K];
    size_t gm = vindex_topk(mapped, d, K, NULL, hm);
    size_t gp = vindex_topk(pre, d, K, NULL, hp);
    assert_int_equal(gm, K);
    assert_int_equal(gm, gp);
    assert_true(vindex_bytes(pre) >= vindex_bytes(mapped) + n * (size_t)dim * sizeof(float));
    for (size_t i = 0; i < gm; i++) {
        assert_int_equal(hm[i].rowid, hp[i].rowid);
        assert_true(hm[i].score == hp[i].score);
        assert_memory_equal(hm[i].vec, hp[i].vec, (size_t)dim * sizeof(float));
    }
    vindex_free(mapped);
    vindex_free(pre);
    hnsw_free(a);
    free(d);
    tu_rmtree(dir);
    free(dir);
}

/* An empty index saves and loads as an empty index. */
static void test_an_empty_index_round_trips(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/empty.hnsw", dir);
    struct hnsw_params p = {4, 8, 1};
    struct hnsw *a = hnsw_new(3, &p);
    assert_int_equal(hnsw_save(a, NULL, path, err, sizeof err), 0);
    struct hnsw_meta meta;
    struct hnsw *b = hnsw_load(path, &meta, err, sizeof err);
    assert_non_null(b);
    assert_int_equal(hnsw_nodes(b), 0);
    assert_int_equal(meta.generation, 0);
    float v[3] = {0, 1, 0};
    struct hnsw_hit hit;
    assert_int_equal(hnsw_search(b, v, 1, 8, NULL, &hit, NULL), 0);
    assert_int_equal(hnsw_add(b, 9, v), 0);
    assert_int_equal(hnsw_search(b, v, 1, 8, NULL, &hit, NULL), 1);
    hnsw_free(a);
    hnsw_free(b);
    tu_rmtree(dir);
    free(dir);
}

static uint64_t fnv1a(const char *p, size_t n)
{
    uint64_t x = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        x ^= (unsigned char)p[i];
        x *= 0x100000001b3ULL;
    }
    return x;
}

/* Writes buf[0..len) to path. */
static void write_bytes(const char *path, const char *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Loading path must fail with a message naming it and saying what. */
static void expect_refused(const char *path, const char *what)
{
    char err[512] = "";
    struct hnsw_meta meta;
    struct hnsw *h = hnsw_load(path, &meta, err, sizeof err);
    if (h != NULL)
        fail_msg("%s was loaded (expected: %s)", path, what);
    assert_non_null(strstr(err, path));
    if (strstr(err, what) == NULL)
        fail_msg("message \"%s\" does not say \"%s\"", err, what);
}

/* Damaged files are refused with a message naming the file and the
 * damage, never followed: truncation, another format, a bad header
 * checksum, a link past the nodes, a count above the level's maximum, an
 * entry point out of range (with a valid checksum, so the range check
 * itself is what refuses it), an upper-link offset outside the pool; a
 * missing file leaves ENOENT. */
static void test_damaged_and_missing_files_are_refused_with_a_message(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char good[4096], bad[4096], err[512];
    snprintf(good, sizeof good, "%s/good.hnsw", dir);
    snprintf(bad, sizeof bad, "%s/bad.hnsw", dir);
    size_t n = 600;
    int dim = 8, m = 6;
    float *d = data_make(n, dim, false, 41);
    struct hnsw *h = build(d, n, dim, m, 24, 4);
    assert_int_equal(hnsw_save(h, NULL, good, err, sizeof err), 0);
    size_t len;
    char *buf = slurp(good, &len);
    char *copy = malloc(len);
    if (copy == NULL)
        abort();
    assert_int_equal(read_u64(buf, HDR_NODES), n);
    uint64_t link0 = read_u64(buf, HDR_SECT + 16 * SECT_LINK0);
    uint64_t levels = read_u64(buf, HDR_SECT + 16 * SECT_LEVELS);
    uint64_t uoff = read_u64(buf, HDR_SECT + 16 * SECT_UOFF);
    assert_true(read_u32(buf, (size_t)link0) > 0); /* node 0 has links */

    write_bytes(bad, buf, len - 100);
    expect_refused(bad, "truncated");
    write_bytes(bad, buf, 100);
    expect_refused(bad, "header");

    memcpy(copy, buf, len);
    memcpy(copy, "SQLite f", 8);
    write_bytes(bad, copy, len);
    expect_refused(bad, "not a memchat HNSW index");

    memcpy(copy, buf, len);
    copy[HDR_ENTRY] ^= 1;
    write_bytes(bad, copy, len);
    expect_refused(bad, "checksum");

    /* node 0's first link past the node count */
    memcpy(copy, buf, len);
    uint32_t v = (uint32_t)n + 5;
    memcpy(copy + link0 + 4, &v, 4);
    write_bytes(bad, copy, len);
    expect_refused(bad, "beyond the 600 nodes");

    /* node 5's level-0 count above 2m */
    memcpy(copy, buf, len);
    v = 2 * (uint32_t)m + 1;
    memcpy(copy + link0 + 5 * (1 + 2 * (size_t)m) * 4, &v, 4);
    write_bytes(bad, copy, len);
    expect_refused(bad, "links on level 0");

    /* entry point past the nodes, the header checksum recomputed */
    memcpy(copy, buf, len);
    v = (uint32_t)n + 1;
    memcpy(copy + HDR_ENTRY, &v, 4);
    uint64_t sum = fnv1a(copy, HDR_CHECKSUM);
    memcpy(copy + HDR_CHECKSUM, &sum, 8);
    write_bytes(bad, copy, len);
    expect_refused(bad, "entry point");

    /* the upper links of some node of level >= 1 moved outside the pool */
    size_t up = n;
    for (size_t i = 0; i < n && up == n; i++)
        if (buf[levels + i] > 0)
            up = i;
    assert_true(up < n);
    memcpy(copy, buf, len);
    v = 0xfffffff0u;
    memcpy(copy + uoff + 4 * up, &v, 4);
    write_bytes(bad, copy, len);
    expect_refused(bad, "past the pool");

    /* the untouched file still loads */
    struct hnsw *ok = hnsw_load(good, NULL, err, sizeof err);
    assert_non_null(ok);
    hnsw_free(ok);

    char missing[4096];
    snprintf(missing, sizeof missing, "%s/missing.hnsw", dir);
    errno = 0;
    assert_null(hnsw_load(missing, NULL, err, sizeof err));
    assert_int_equal(errno, ENOENT);
    char want[4200];
    snprintf(want, sizeof want, "%s: no such file", missing);
    assert_string_equal(err, want);

    free(buf);
    free(copy);
    hnsw_free(h);
    free(d);
    tu_rmtree(dir);
    free(dir);
}

/* A graph walk that finds fewer than k live nodes is completed by an
 * exact scan: a file whose lists are all emptied is valid (every count is
 * within bounds) but leaves the walk only its entry point, and the search
 * must still return the exact top k, saying it scanned. */
static void test_a_walk_that_comes_back_short_is_completed_exactly(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/cut.hnsw", dir);
    size_t n = 600;
    int dim = 8, m = 6;
    float *d = data_make(n, dim, false, 43);
    struct hnsw *h = build(d, n, dim, m, 24, 4);
    assert_int_equal(hnsw_save(h, NULL, path, err, sizeof err), 0);
    size_t len;
    char *buf = slurp(path, &len);
    uint64_t link0 = read_u64(buf, HDR_SECT + 16 * SECT_LINK0);
    uint64_t pool = read_u64(buf, HDR_SECT + 16 * SECT_POOL);
    uint64_t pool_size = read_u64(buf, HDR_SECT + 16 * SECT_POOL + 8);
    for (size_t i = 0; i < n; i++)
        memset(buf + link0 + i * (1 + 2 * (size_t)m) * 4, 0, 4);
    memset(buf + pool, 0, (size_t)pool_size);
    write_bytes(path, buf, len);
    struct hnsw *cut = hnsw_load(path, NULL, err, sizeof err);
    assert_non_null(cut);
    float *qs = data_make(10, dim, false, 44);
    for (size_t qi = 0; qi < 10; qi++) {
        const float *q = qs + qi * (size_t)dim;
        struct hnsw_hit hits[K];
        struct hnsw_search_stats st;
        uint32_t truth[K];
        assert_int_equal(hnsw_search(cut, q, K, 16, NULL, hits, &st), K);
        assert_true(st.exact);
        assert_int_equal(exact_ref(d, n, dim, q, K, NULL, truth), K);
        for (size_t i = 0; i < K; i++)
            assert_int_equal(hits[i].node, truth[i]);
        /* the intact graph answers the same query without the scan */
        assert_int_equal(hnsw_search(h, q, K, 16, NULL, hits, &st), K);
        assert_false(st.exact);
    }
    free(qs);
    free(buf);
    hnsw_free(cut);
    hnsw_free(h);
    free(d);
    tu_rmtree(dir);
    free(dir);
}

/* ---- kernels and edge cases ------------------------------------------- */

/* Forcing the portable dot product builds a graph of the same quality:
 * recall stays at least 95 % and within two points of the dispatched
 * kernel's. */
static void test_the_portable_kernel_gives_the_same_recall(void **state)
{
    (void)state;
    size_t n = 1500;
    int dim = 16;
    float *d = data_make(n, dim, false, 51);
    struct hnsw *h = build(d, n, dim, 8, 32, 5);
    double fast = recall_of(h, d, n, dim, false, 64, NULL, NULL, NULL);
    hnsw_free(h);
    vscan_force_portable(true);
    h = build(d, n, dim, 8, 32, 5);
    double portable = recall_of(h, d, n, dim, false, 64, NULL, NULL, NULL);
    vscan_force_portable(false);
    assert_true(portable >= 0.95);
    assert_true(fabs(portable - fast) <= 0.02);
    hnsw_free(h);
    free(d);
}

/* Bad parameters are refused: dim outside 1..65536, m outside 2..100,
 * ef_construction outside m..4096, no parameters. */
static void test_hnsw_new_rejects_bad_params(void **state)
{
    (void)state;
    struct hnsw_params ok = {16, 200, 1};
    struct hnsw_params bad[] = {{1, 200, 1}, {101, 200, 1}, {16, 15, 1}, {16, 4097, 1}};
    assert_null(hnsw_new(0, &ok));
    assert_null(hnsw_new(65537, &ok));
    assert_null(hnsw_new(16, NULL));
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_null(hnsw_new(16, &bad[i]));
    struct hnsw *h = hnsw_new(65536, &ok);
    assert_non_null(h);
    hnsw_free(h);
    struct hnsw_params edge = {2, 2, 0};
    h = hnsw_new(1, &edge);
    assert_non_null(h);
    hnsw_free(h);
    hnsw_free(NULL);
}

/* The small cases: an empty index and k = 0 return nothing; one node is
 * found; k above the node count returns every live node best first; dim 1
 * (vectors +1 and -1) ranks the +1 nodes first. */
static void test_edge_cases_empty_one_node_large_k_and_dim_1(void **state)
{
    (void)state;
    struct hnsw_params p = {4, 16, 3};
    struct hnsw *h = hnsw_new(4, &p);
    float v[4] = {0.5f, 0.5f, 0.5f, 0.5f};
    struct hnsw_hit hits[100];
    uint64_t allow[1] = {~(uint64_t)0};
    assert_int_equal(hnsw_search(h, v, 5, 10, NULL, hits, NULL), 0);
    assert_int_equal(hnsw_search(h, v, 5, 10, allow, hits, NULL), 0);
    assert_int_equal(hnsw_add(h, 99, v), 0);
    assert_int_equal(hnsw_search(h, v, 0, 10, NULL, hits, NULL), 0);
    assert_int_equal(hnsw_search(h, v, 5, 10, NULL, hits, NULL), 1);
    assert_int_equal(hits[0].node, 0);
    assert_true(fabsf(hits[0].score - 1.0f) < 1e-6f);
    assert_int_equal(hnsw_label(h, 0), 99);
    hnsw_free(h);

    size_t n = 40;
    float *d = data_make(n, 8, false, 61);
    h = build(d, n, 8, 4, 16, 3);
    hnsw_delete(h, 3);
    size_t g = hnsw_search(h, d, 100, 1, NULL, hits, NULL);
    assert_int_equal(g, n - 1);
    for (size_t i = 1; i < g; i++)
        assert_true(hits[i - 1].score >= hits[i].score);
    assert_int_equal(hits[0].node, 0); /* the query is node 0's vector */
    hnsw_free(h);
    free(d);

    h = hnsw_new(1, &p);
    for (int i = 0; i < 200; i++) {
        float x = i % 3 == 0 ? 1.0f : -1.0f;
        hnsw_add(h, i, &x);
    }
    float q = 1.0f;
    g = hnsw_search(h, &q, 50, 60, NULL, hits, NULL);
    assert_int_equal(g, 50);
    for (size_t i = 0; i < g; i++) {
        assert_int_equal(hits[i].node % 3, 0);
        assert_true(hits[i].score == 1.0f);
    }
    g = hnsw_search(h, &q, 100, 100, NULL, hits, NULL);
    assert_int_equal(g, 100);
    assert_true(hits[66].score == 1.0f && hits[67].score == -1.0f);
    hnsw_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recall_on_random_unit_vectors_is_at_least_95_percent),
        cmocka_unit_test(test_recall_on_clustered_vectors_is_at_least_95_percent),
        cmocka_unit_test(test_same_seed_and_inserts_give_identical_results),
        cmocka_unit_test(test_results_are_best_first_live_and_scored_by_the_dot_product),
        cmocka_unit_test(test_filtered_search_returns_min_k_allowed_live_nodes),
        cmocka_unit_test(test_deletes_and_compaction_keep_recall_and_remap_nodes),
        cmocka_unit_test(test_deleting_everything_then_compacting_leaves_a_usable_empty_index),
        cmocka_unit_test(test_save_and_load_round_trip_and_inserts_after_load_stay_private),
        cmocka_unit_test(test_preloaded_vectors_answer_as_the_mapped_file),
        cmocka_unit_test(vindex_preloads_at_the_first_search),
        cmocka_unit_test(test_an_empty_index_round_trips),
        cmocka_unit_test(test_damaged_and_missing_files_are_refused_with_a_message),
        cmocka_unit_test(test_a_walk_that_comes_back_short_is_completed_exactly),
        cmocka_unit_test(test_the_portable_kernel_gives_the_same_recall),
        cmocka_unit_test(test_hnsw_new_rejects_bad_params),
        cmocka_unit_test(test_edge_cases_empty_one_node_large_k_and_dim_1),
    };
    return cmocka_run_group_tests(tests, shared_setup, shared_teardown);
}
