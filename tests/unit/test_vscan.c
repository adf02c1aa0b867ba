/*
 * Tests of memory/vscan: the two-pass scan returns exactly what a plain
 * reference loop returns (the same rows in the same order, ties by lower
 * row, scores within 1e-5 of the exact inner product) for uniform and
 * clustered vectors, dimensions with and without SIMD tails, vectors at the
 * int8 codes' limits, vectors that are not unit length, duplicates and
 * permuted vectors with equal true scores, k beyond the rows, k = 0, the
 * allow bitmap, and rows changed by vscan_set and vscan_remove_swap; both
 * kernels, each checked against the reference. Fixed seeds throughout.
 */
#include "testutil.h"

#include "memory/vscan.h"

#include <math.h>

#include "util/alloc.h"

/* xorshift64*: deterministic, good enough for test data. */
static uint64_t rng_state;

static void rng_seed(uint64_t s)
{
    rng_state = s * 0x9E3779B97F4A7C15ull + 1;
}

static uint64_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

/* Uniform in [0, 1). */
static double rng_unit(void)
{
    return (double)(rng_next() >> 11) * (1.0 / 9007199254740992.0);
}

static size_t rng_below(size_t n)
{
    return (size_t)(rng_next() % n);
}

static double rng_gauss(void)
{
    double u = rng_unit(), v = rng_unit();
    return sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v);
}

static void normalise(float *v, int dim)
{
    double s = 0;
    for (int i = 0; i < dim; i++)
        s += (double)v[i] * (double)v[i];
    if (s == 0)
        return;
    double inv = 1.0 / sqrt(s);
    for (int i = 0; i < dim; i++)
        v[i] = (float)((double)v[i] * inv);
}

/* A random unit vector. */
static void gen_unit(float *v, int dim)
{
    for (int i = 0; i < dim; i++)
        v[i] = (float)rng_gauss();
    normalise(v, dim);
}

/* The reference: the inner product summed in double, in index order. */
static double ref_dot(const float *a, const float *b, int dim)
{
    double s = 0;
    for (int i = 0; i < dim; i++)
        s += (double)a[i] * (double)b[i];
    return s;
}

struct ref_hit {
    double s;
    size_t row;
};

static int ref_cmp(const void *pa, const void *pb)
{
    const struct ref_hit *a = pa, *b = pb;
    if (a->s != b->s)
        return a->s > b->s ? -1 : 1;
    return (a->row > b->row) - (a->row < b->row);
}

static bool allowed_row(const uint64_t *allow, size_t row)
{
    return allow == NULL || (allow[row / 64] >> (row % 64) & 1);
}

/* The reference top k over rows[0..n) (dim floats each): every allowed
 * row scored, sorted by score then row. Returns how many. */
static size_t ref_topk(const float *rows, size_t n, int dim, const float *q, size_t k,
                       const uint64_t *allow, struct ref_hit *out)
{
    struct ref_hit *all = xmalloc((n + 1) * sizeof *all);
    size_t m = 0;
    for (size_t r = 0; r < n; r++) {
        if (!allowed_row(allow, r))
            continue;
        all[m].s = ref_dot(q, rows + r * (size_t)dim, dim);
        all[m].row = r;
        m++;
    }
    qsort(all, m, sizeof *all, ref_cmp);
    size_t got = m < k ? m : k;
    memcpy(out, all, got * sizeof *all);
    xfree(all);
    return got;
}

/* Runs vscan_topk and the reference and asserts they agree exactly: same
 * count, same rows in the same order, each score within 1e-5 of the
 * reference (and of vscan_dot on the stored row), relative to
 * ||q|| ||x|| when that passes 1. */
static void check_query(const struct vscan *m, const float *rows, const float *q, size_t k,
                        const uint64_t *allow)
{
    size_t n = vscan_count(m);
    int dim = vscan_dim(m);
    struct vscan_hit *hits = xmalloc((k + 1) * sizeof *hits);
    struct ref_hit *want = xmalloc((k + 1) * sizeof *want);
    size_t got = vscan_topk(m, q, k, allow, hits);
    size_t wn = ref_topk(rows, n, dim, q, k, allow, want);
    assert_int_equal(got, wn);
    for (size_t i = 0; i < got; i++) {
        if (hits[i].row != want[i].row)
            fail_msg("kernel %s, dim %d, n %zu, k %zu: hit %zu is row %zu (%.9g), want row %zu "
                     "(%.9g)",
                     vscan_kernel(), dim, n, k, i, hits[i].row, (double)hits[i].score, want[i].row,
                     want[i].s);
        /* 1e-5 for unit vectors; relative to ||q|| ||x|| for the others */
        const float *x = vscan_row(m, hits[i].row);
        double tol = 1e-5 * fmax(1.0, sqrt(ref_dot(q, q, dim) * ref_dot(x, x, dim)));
        assert_true(fabs((double)hits[i].score - want[i].s) <= tol);
        float d = vscan_dot(q, x, (size_t)dim);
        assert_true(fabs((double)hits[i].score - (double)d) <= tol);
    }
    xfree(hits);
    xfree(want);
}

/* Both kernels, in turn, then the detected one again. */
static const bool kernel_modes[2] = {false, true};

/* check_query under each kernel in turn, then the detected one again. */
static void check_both(const struct vscan *m, const float *rows, const float *q, size_t k,
                       const uint64_t *allow)
{
    for (size_t mode = 0; mode < 2; mode++) {
        vscan_force_portable(kernel_modes[mode]);
        check_query(m, rows, q, k, allow);
    }
    vscan_force_portable(false);
}

/* Uniform random unit vectors in dims with and without SIMD tails
 * (16, 17, 100, 384, 1000), several k: both kernels return the reference
 * top k exactly, and every row stays 64-byte aligned through growth. */
static void the_scan_equals_the_reference_on_random_vectors(void **state)
{
    (void)state;
    static const int dims[] = {16, 17, 100, 384, 1000};
    static const size_t counts[] = {3000, 2500, 2000, 1500, 600};
    static const size_t ks[] = {1, 10, 37};
    for (size_t di = 0; di < sizeof dims / sizeof *dims; di++) {
        int dim = dims[di];
        size_t n = counts[di];
        rng_seed(100 + (uint64_t)dim);
        float *rows = xmalloc(n * (size_t)dim * sizeof(float));
        struct vscan *m = vscan_new(dim);
        assert_non_null(m);
        for (size_t r = 0; r < n; r++) {
            gen_unit(rows + r * (size_t)dim, dim);
            assert_int_equal(vscan_add(m, rows + r * (size_t)dim), r);
        }
        assert_int_equal(vscan_count(m), n);
        for (size_t r = 0; r < n; r++) {
            assert_int_equal((uintptr_t)vscan_row(m, r) % 64, 0);
            assert_memory_equal(vscan_row(m, r), rows + r * (size_t)dim,
                                (size_t)dim * sizeof(float));
        }
        float *q = xmalloc((size_t)dim * sizeof(float));
        for (int qi = 0; qi < 6; qi++) {
            gen_unit(q, dim);
            for (size_t ki = 0; ki < sizeof ks / sizeof *ks; ki++)
                check_both(m, rows, q, ks[ki], NULL);
        }
        vscan_force_portable(false);
        xfree(q);
        xfree(rows);
        vscan_free(m);
    }
}

/* Clustered vectors (a few centres, small noise) put many scores close
 * together, where the int8 bound prunes least and a wrong bound would
 * drop a true neighbour; queries near a centre. Both kernels. */
static void the_scan_equals_the_reference_on_clustered_vectors(void **state)
{
    (void)state;
    const int dim = 384;
    const size_t n = 4000, ncent = 8;
    rng_seed(7);
    float *cent = xmalloc(ncent * dim * sizeof(float));
    float *rows = xmalloc(n * dim * sizeof(float));
    float *q = xmalloc(dim * sizeof(float));
    for (size_t c = 0; c < ncent; c++)
        gen_unit(cent + c * dim, dim);
    struct vscan *m = vscan_new(dim);
    for (size_t r = 0; r < n; r++) {
        const float *c = cent + rng_below(ncent) * dim;
        double noise = r % 2 ? 0.02 : 0.2;
        for (int i = 0; i < dim; i++)
            rows[r * dim + i] = (float)((double)c[i] + noise * rng_gauss() / sqrt(dim));
        normalise(rows + r * dim, dim);
        vscan_add(m, rows + r * dim);
    }
    for (int qi = 0; qi < 10; qi++) {
        const float *c = cent + rng_below(ncent) * dim;
        for (int i = 0; i < dim; i++)
            q[i] = (float)((double)c[i] + 0.05 * rng_gauss() / sqrt(dim));
        normalise(q, dim);
        check_both(m, rows, q, 10, NULL);
        check_both(m, rows, q, 100, NULL);
    }
    vscan_force_portable(false);
    xfree(cent);
    xfree(rows);
    xfree(q);
    vscan_free(m);
}

/* Vectors whose components are all +-1/sqrt(dim) quantise to codes of
 * +-127 everywhere, the largest products the int8 kernel must sum without
 * saturating; rows that are not unit length (scaled up and down, one zero
 * vector) must be ranked by their true inner product too. */
static void codes_at_their_limits_and_unnormalised_rows_stay_exact(void **state)
{
    (void)state;
    const int dim = 100;
    const size_t n = 1200;
    rng_seed(11);
    float *rows = xmalloc(n * dim * sizeof(float));
    float *q = xmalloc(dim * sizeof(float));
    struct vscan *m = vscan_new(dim);
    for (size_t r = 0; r < n; r++) {
        double scale = r % 3 == 0 ? 1.0 : r % 3 == 1 ? 7.5 : 0.01;
        for (int i = 0; i < dim; i++) {
            if (r < n / 2)
                rows[r * dim + i] = (float)((rng_next() & 1 ? 1.0 : -1.0) / sqrt(dim));
            else
                rows[r * dim + i] = (float)(scale * rng_gauss());
        }
        if (r == n - 1)
            memset(rows + r * dim, 0, dim * sizeof(float));
        vscan_add(m, rows + r * dim);
    }
    for (int qi = 0; qi < 8; qi++) {
        for (int i = 0; i < dim; i++)
            q[i] = (float)(qi % 2 ? (rng_next() & 1 ? 1.0 : -1.0) / sqrt(dim) : 3 * rng_gauss());
        check_both(m, rows, q, 15, NULL);
    }
    /* A zero query scores every row 0: the first k rows, in row order. */
    memset(q, 0, dim * sizeof(float));
    struct vscan_hit hits[5];
    assert_int_equal(vscan_topk(m, q, 5, NULL, hits), 5);
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(hits[i].row, i);
        assert_true(hits[i].score == 0);
    }
    vscan_force_portable(false);
    xfree(rows);
    xfree(q);
    vscan_free(m);
}

/* Exact duplicates tie bit for bit and come out by lower row; rows that
 * are permutations of one another score the same up to the last bit
 * under a constant query, where only summing like the reference orders
 * them like the reference. */
static void ties_are_broken_by_the_lower_row_like_the_reference(void **state)
{
    (void)state;
    const int dim = 17;
    const size_t n = 300;
    rng_seed(3);
    float base[17];
    gen_unit(base, dim);
    float *rows = xmalloc(n * dim * sizeof(float));
    struct vscan *m = vscan_new(dim);
    for (size_t r = 0; r < n; r++) {
        float *v = rows + r * dim;
        if (r % 3 == 0) {
            memcpy(v, base, sizeof base); /* duplicates */
        } else {
            memcpy(v, base, sizeof base); /* a random permutation */
            for (int i = dim - 1; i > 0; i--) {
                size_t j = rng_below((size_t)i + 1);
                float t = v[i];
                v[i] = v[j];
                v[j] = t;
            }
        }
        vscan_add(m, v);
    }
    float q[17];
    for (int i = 0; i < dim; i++)
        q[i] = 0.2425356f; /* about 1/sqrt(17) */
    check_both(m, rows, q, 50, NULL);
    check_both(m, rows, base, 120, NULL);
    /* The duplicates of base are its best matches, lowest rows first. */
    struct vscan_hit hits[4];
    assert_int_equal(vscan_topk(m, base, 4, NULL, hits), 4);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(hits[i].row, 3 * i);
    vscan_force_portable(false);
    xfree(rows);
    vscan_free(m);
}

/* k beyond the rows returns every row, sorted; k = 0 and an empty matrix
 * return nothing (and write nothing). */
static void k_beyond_the_rows_returns_them_all_and_k_zero_nothing(void **state)
{
    (void)state;
    const int dim = 16;
    rng_seed(5);
    struct vscan *m = vscan_new(dim);
    float q[16];
    gen_unit(q, dim);
    struct vscan_hit hit = {77, 1.5f};
    assert_int_equal(vscan_topk(m, q, 10, NULL, &hit), 0);
    assert_int_equal(hit.row, 77);
    float rows[7 * 16];
    for (size_t r = 0; r < 7; r++) {
        gen_unit(rows + r * dim, dim);
        vscan_add(m, rows + r * dim);
    }
    check_query(m, rows, q, 1000, NULL);
    struct vscan_hit hits[8];
    assert_int_equal(vscan_topk(m, q, 8, NULL, hits), 7);
    assert_int_equal(vscan_topk(m, q, 0, NULL, NULL), 0);
    vscan_free(m);
}

/* The allow bitmap: only allowed rows come back, k still filled from
 * them, whatever the density (empty, one row, sparse, dense, whole words
 * on and off, a partial last word); both kernels. */
static void only_rows_in_the_allow_bitmap_are_returned(void **state)
{
    (void)state;
    const int dim = 100;
    const size_t n = 1000; /* 15 full words and a partial one */
    rng_seed(9);
    float *rows = xmalloc(n * dim * sizeof(float));
    struct vscan *m = vscan_new(dim);
    for (size_t r = 0; r < n; r++) {
        gen_unit(rows + r * dim, dim);
        vscan_add(m, rows + r * dim);
    }
    uint64_t allow[16];
    float q[100];
    static const double density[] = {0, 0.001, 0.05, 0.5, 0.95, 1};
    for (size_t di = 0; di < sizeof density / sizeof *density; di++) {
        for (int rep = 0; rep < 3; rep++) {
            memset(allow, 0, sizeof allow);
            for (size_t r = 0; r < n; r++)
                if (rng_unit() < density[di])
                    allow[r / 64] |= (uint64_t)1 << (r % 64);
            if (rep == 1) {
                allow[2] = ~(uint64_t)0; /* a whole word on, its neighbour off */
                allow[3] = 0;
            }
            if (rep == 2 && density[di] == 0)
                allow[n / 64] |= (uint64_t)1 << (n % 64 - 1); /* only the last row */
            gen_unit(q, dim);
            check_both(m, rows, q, 10, allow);
            check_both(m, rows, q, 200, allow);
        }
    }
    vscan_force_portable(false);
    xfree(rows);
    vscan_free(m);
}

/* A unit vector with about nnz nonzero dimensions at random places
 * (non-negative, like the local embedder's hashed features). */
static void gen_sparse(float *v, int dim, int nnz)
{
    memset(v, 0, (size_t)dim * sizeof(float));
    for (int i = 0; i < nnz; i++)
        v[rng_below((size_t)dim)] = (float)(0.05 + rng_unit());
    normalise(v, dim);
}

/* Queries with few nonzero codes (as the local embedder's are) make pass 1
 * read only the quads of dimensions they touch: with rows as sparse as
 * short notes, in dims that are and are not a multiple of four, with and
 * without a filter, a one-dimension query and an all-zero one (every score
 * 0, so the lowest rows win), both kernels still return the reference. */
static void sparse_queries_stay_exact(void **state)
{
    (void)state;
    static const int dims[] = {1024, 1001};
    static const int qnnz[] = {1, 3, 50, 0};
    for (size_t di = 0; di < 2; di++) {
        int dim = dims[di];
        size_t n = 1500; /* 23 full blocks and a partial one */
        rng_seed(700 + (uint64_t)dim);
        float *rows = xmalloc(n * (size_t)dim * sizeof(float));
        struct vscan *m = vscan_new(dim);
        for (size_t r = 0; r < n; r++) {
            gen_sparse(rows + r * (size_t)dim, dim, 20 + (int)rng_below(200));
            vscan_add(m, rows + r * (size_t)dim);
        }
        uint64_t allow[24];
        for (size_t w = 0; w < 24; w++)
            allow[w] = w % 3 == 0 ? rng_next() : (uint64_t)1 << rng_below(64);
        float *q = xmalloc((size_t)dim * sizeof(float));
        for (size_t qi = 0; qi < 4; qi++) {
            if (qnnz[qi] == 0)
                memset(q, 0, (size_t)dim * sizeof(float));
            else
                gen_sparse(q, dim, qnnz[qi]);
            check_both(m, rows, q, 10, NULL);
            check_both(m, rows, q, 10, allow);
        }
        vscan_force_portable(false);
        xfree(q);
        xfree(rows);
        vscan_free(m);
    }
}

/* vscan_set replaces a row's vector and codes; vscan_remove_swap moves the
 * last row into the hole and returns its old index; after a long random
 * series of both (and adds), the scan still equals the reference over the
 * rows as the test tracked them. */
static void set_and_remove_swap_keep_the_scan_exact(void **state)
{
    (void)state;
    const int dim = 384;
    rng_seed(13);
    size_t cap = 3000, n = 0;
    float *rows = xmalloc(cap * dim * sizeof(float));
    float *v = xmalloc(dim * sizeof(float));
    struct vscan *m = vscan_new(dim);
    for (int step = 0; step < 4000; step++) {
        size_t op = rng_below(10);
        if (n == 0 || op < 5) {
            if (n == cap)
                continue;
            gen_unit(rows + n * dim, dim);
            assert_int_equal(vscan_add(m, rows + n * dim), n);
            n++;
        } else if (op < 8) {
            size_t r = rng_below(n);
            gen_unit(rows + r * dim, dim);
            vscan_set(m, r, rows + r * dim);
        } else {
            size_t r = rng_below(n);
            assert_int_equal(vscan_remove_swap(m, r), n - 1);
            memmove(rows + r * dim, rows + (n - 1) * dim, dim * sizeof(float));
            n--;
        }
        assert_int_equal(vscan_count(m), n);
        if (step % 500 == 499) {
            for (size_t r = 0; r < n; r++)
                assert_memory_equal(vscan_row(m, r), rows + r * dim, dim * sizeof(float));
            gen_unit(v, dim);
            check_both(m, rows, v, 10, NULL);
            /* A stored vector finds itself first. */
            size_t r = rng_below(n);
            struct vscan_hit hit;
            assert_int_equal(vscan_topk(m, rows + r * dim, 1, NULL, &hit), 1);
            assert_true(fabs((double)hit.score - 1.0) < 1e-5);
            assert_memory_equal(vscan_row(m, hit.row), rows + r * dim, dim * sizeof(float));
        }
    }
    vscan_force_portable(false);
    while (n > 0) { /* removing down to empty, the last row included */
        assert_int_equal(vscan_remove_swap(m, n - 1), n - 1);
        n--;
    }
    assert_int_equal(vscan_topk(m, v, 3, NULL, NULL), 0);
    xfree(rows);
    xfree(v);
    vscan_free(m);
}

/* vscan_dot of both kernels equals the double reference within float
 * rounding for every length 0..80 (all the SIMD tails) and a long one;
 * vscan_kernel names the kernel in force and the override switches it. */
static void both_dot_kernels_equal_the_reference(void **state)
{
    (void)state;
    rng_seed(17);
    float a[1000], b[1000];
    for (int i = 0; i < 1000; i++) {
        a[i] = (float)rng_gauss();
        b[i] = (float)rng_gauss();
    }
    const char *detected = vscan_kernel();
    assert_true(strcmp(detected, "avx2") == 0 || strcmp(detected, "portable") == 0);
    for (size_t mode = 0; mode < 2; mode++) {
        vscan_force_portable(kernel_modes[mode]);
        assert_string_equal(vscan_kernel(), kernel_modes[mode] ? "portable" : detected);
        for (size_t n = 0; n <= 1000; n = n < 80 ? n + 1 : 1000) {
            double want = ref_dot(a, b, (int)n), mag = 0;
            for (size_t i = 0; i < n; i++)
                mag += fabs((double)a[i] * (double)b[i]);
            double got = (double)vscan_dot(a, b, n);
            /* float sums: error below n * 2^-24 of the sum of |products| */
            assert_true(fabs(got - want) <= (double)(n + 1) * 6e-8 * mag + 1e-30);
            if (n == 1000)
                break;
        }
    }
    vscan_force_portable(false);
    assert_string_equal(vscan_kernel(), detected);
}

/* The error bound is nearly tight when the quantisation error lines up
 * with the other vector, and the scan must still be exact there. With
 * s = 2^-10, a row with one component 127 s and the others s (50 + 0.49)
 * has codes 127 and 50 (scale exactly s), so its int8 score with the
 * query (0.25, ..., 0.25), which quantises exactly, is 0.25 * 15 * 0.49 s
 * below its true one: all of ||q|| ||x - x_hat||. Rows made of whole codes
 * (exact) that score between the two would push that row out of the top k
 * if the bound's first term were 10% smaller. The second construction
 * swaps the roles (an exact row, the query carrying the error) and fails
 * without the second term. Both kernels, k = 1 and 2. */
static void the_scan_stays_exact_where_the_bound_is_tight(void **state)
{
    (void)state;
    enum { D = 16 };
    const float s = 1.0f / 1024;
    float rows[4 * D], q[D];
    struct vscan *m = vscan_new(D);
    /* first term: rows 0-2 exact, seven codes above the tight row's x_hat
     * (1.75 s over its int8 score, 0.0875 s under its true one; the bound
     * is 0.25 * 0.49 s * sqrt(15) * 4 = 1.898 s) */
    for (size_t r = 0; r < 3; r++)
        for (int i = 0; i < D; i++)
            rows[r * D + i] = i == 0 ? 127 * s : (i + (int)r) % 2 == 0 && i < 15 ? 51 * s : 50 * s;
    for (int i = 0; i < D; i++) {
        rows[3 * D + i] = i == 0 ? 127 * s : (float)(50.49 * (double)s);
        q[i] = 0.25f;
    }
    for (size_t r = 0; r < 4; r++)
        vscan_add(m, rows + r * D);
    for (size_t mode = 0; mode < 2; mode++) {
        vscan_force_portable(kernel_modes[mode]);
        struct vscan_hit hit;
        assert_int_equal(vscan_topk(m, q, 1, NULL, &hit), 1);
        assert_int_equal(hit.row, 3);
        check_query(m, rows, q, 2, NULL);
    }
    vscan_free(m);
    /* second term: the query carries the error; row 3 = (0.25, ...) is
     * exact and its int8 score is 0.25 * 15 * 0.49 s low; rows 0-2 have
     * one component, exact, and score in between, 1.74 to 1.78 s over
     * that int8 score */
    m = vscan_new(D);
    for (int i = 0; i < D; i++)
        q[i] = i == 0 ? 127 * s : (float)(50.49 * (double)s);
    double approx = 0.25 * (127.0 + 15 * 50.0) * (double)s;
    for (size_t r = 0; r < 3; r++) {
        memset(rows + r * D, 0, D * sizeof(float));
        rows[r * D] =
            (float)((approx + (1.74 + 0.02 * (double)r) * (double)s) / (127.0 * (double)s));
    }
    for (int i = 0; i < D; i++)
        rows[3 * D + i] = 0.25f;
    for (size_t r = 0; r < 4; r++)
        vscan_add(m, rows + r * D);
    for (size_t mode = 0; mode < 2; mode++) {
        vscan_force_portable(kernel_modes[mode]);
        struct vscan_hit hit;
        assert_int_equal(vscan_topk(m, q, 1, NULL, &hit), 1);
        assert_int_equal(hit.row, 3);
        check_query(m, rows, q, 2, NULL);
    }
    vscan_force_portable(false);
    vscan_free(m);
}

/* Vectors with a NaN or an infinity cannot be bounded, so the first pass
 * never prunes them: a row with +inf where the query is positive scores
 * +inf and comes first; a row with a NaN scores NaN and ranks after every
 * number; the other rows come out as the reference has them. A NaN query
 * scores every row NaN: the first k rows in row order. */
static void rows_with_nan_or_infinity_follow_the_documented_order(void **state)
{
    (void)state;
    enum { D = 17, N = 200 };
    rng_seed(31);
    float *rows = xmalloc(N * D * sizeof(float));
    struct vscan *m = vscan_new(D);
    float q[D];
    gen_unit(q, D);
    q[0] = 0.5f;
    for (size_t r = 0; r < N; r++) {
        gen_unit(rows + r * D, D);
        if (r == 5)
            rows[r * D + 3] = NAN;
        if (r == 9)
            rows[r * D] = INFINITY;
        vscan_add(m, rows + r * D);
    }
    uint64_t finite[4] = {~(uint64_t)0, ~(uint64_t)0, ~(uint64_t)0, ~(uint64_t)0};
    finite[0] &= ~((uint64_t)1 << 5 | (uint64_t)1 << 9);
    struct vscan_hit *hits = xmalloc(N * sizeof *hits);
    struct ref_hit want[N];
    for (size_t mode = 0; mode < 2; mode++) {
        vscan_force_portable(kernel_modes[mode]);
        assert_int_equal(vscan_topk(m, q, N, NULL, hits), N);
        assert_int_equal(hits[0].row, 9);
        assert_true(isinf(hits[0].score) && hits[0].score > 0);
        assert_int_equal(hits[N - 1].row, 5);
        assert_true(isnan(hits[N - 1].score));
        assert_int_equal(ref_topk(rows, N, D, q, N, finite, want), N - 2);
        for (size_t i = 0; i < N - 2; i++)
            assert_int_equal(hits[i + 1].row, want[i].row);
        assert_int_equal(vscan_topk(m, q, 10, NULL, hits), 10);
        assert_int_equal(hits[0].row, 9);
        for (size_t i = 1; i < 10; i++)
            assert_int_equal(hits[i].row, want[i - 1].row);
        q[2] = NAN;
        assert_int_equal(vscan_topk(m, q, 4, NULL, hits), 4);
        for (size_t i = 0; i < 4; i++) {
            assert_int_equal(hits[i].row, i);
            assert_true(isnan(hits[i].score));
        }
        q[2] = 0.1f;
    }
    vscan_force_portable(false);
    xfree(hits);
    xfree(rows);
    vscan_free(m);
}

/* The first pass does its job: on uniform random unit vectors the int8
 * bound leaves only a few rows to rescore exactly (a few times k: the
 * scores' spread, about 1/sqrt(dim), is many times the bound, about
 * 0.02), every allowed row is read once, and the two kernels' int8 dot
 * products agree exactly, which shows as the same rows rescored. */
static void the_first_pass_prunes_and_both_kernels_agree_on_it(void **state)
{
    (void)state;
    const int dim = 384;
    const size_t n = 3000;
    rng_seed(21);
    float *rows = xmalloc(n * dim * sizeof(float));
    struct vscan *m = vscan_new(dim);
    for (size_t r = 0; r < n; r++) {
        gen_unit(rows + r * dim, dim);
        vscan_add(m, rows + r * dim);
    }
    uint64_t allow[47];
    for (size_t i = 0; i < 47; i++)
        allow[i] = i % 3 == 0 ? 0 : i % 3 == 1 ? ~(uint64_t)0 : 0x5555555555555555ull;
    size_t allowed = 0;
    for (size_t r = 0; r < n; r++)
        allowed += allowed_row(allow, r);
    float q[384];
    size_t total = 0;
    for (int qi = 0; qi < 10; qi++) {
        gen_unit(q, dim);
        for (int a = 0; a < 2; a++) {
            const uint64_t *al = a ? allow : NULL;
            struct vscan_hit hits[10];
            struct vscan_stats st[2];
            for (size_t mode = 0; mode < 2; mode++) {
                vscan_force_portable(kernel_modes[mode]);
                assert_int_equal(vscan_topk_stats(m, q, 10, al, hits, &st[mode]), 10);
            }
            assert_int_equal(st[0].scanned, a ? allowed : n);
            assert_int_equal(st[0].scanned, st[1].scanned);
            assert_int_equal(st[0].rescored, st[1].rescored);
            assert_true(st[0].rescored >= 10);
            assert_true(st[0].rescored <= 100);
            total += st[0].rescored;
        }
    }
    assert_true(total <= 20 * 40); /* about 2-4 k per query on average */
    vscan_force_portable(false);
    xfree(rows);
    vscan_free(m);
}

/* Dimensions outside 1..65536 are refused; the bytes per row count the
 * padded float row, the codes and the per-row bookkeeping. */
static void construction_checks_the_dimension_and_reports_its_size(void **state)
{
    (void)state;
    assert_null(vscan_new(0));
    assert_null(vscan_new(-3));
    assert_null(vscan_new(65537));
    struct vscan *m = vscan_new(65536);
    assert_non_null(m);
    assert_int_equal(vscan_dim(m), 65536);
    vscan_free(m);
    m = vscan_new(384);
    assert_int_equal(vscan_count(m), 0);
    size_t b = vscan_bytes_per_row(m);
    assert_true(b >= 384 * 4 + 384 && b <= 384 * 4 + 384 + 64);
    vscan_free(m);
    m = vscan_new(17); /* padded: 32 floats, 32 code bytes */
    assert_true(vscan_bytes_per_row(m) >= 32 * 4 + 32);
    vscan_free(m);
    vscan_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_scan_equals_the_reference_on_random_vectors),
        cmocka_unit_test(the_scan_equals_the_reference_on_clustered_vectors),
        cmocka_unit_test(codes_at_their_limits_and_unnormalised_rows_stay_exact),
        cmocka_unit_test(ties_are_broken_by_the_lower_row_like_the_reference),
        cmocka_unit_test(k_beyond_the_rows_returns_them_all_and_k_zero_nothing),
        cmocka_unit_test(only_rows_in_the_allow_bitmap_are_returned),
        cmocka_unit_test(sparse_queries_stay_exact),
        cmocka_unit_test(set_and_remove_swap_keep_the_scan_exact),
        cmocka_unit_test(both_dot_kernels_equal_the_reference),
        cmocka_unit_test(the_scan_stays_exact_where_the_bound_is_tight),
        cmocka_unit_test(rows_with_nan_or_infinity_follow_the_documented_order),
        cmocka_unit_test(the_first_pass_prunes_and_both_kernels_agree_on_it),
        cmocka_unit_test(construction_checks_the_dimension_and_reports_its_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
