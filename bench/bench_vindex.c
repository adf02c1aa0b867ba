/*
 * bench_vindex: memchat's vector indexes beside the libraries people would
 * otherwise reach for (issue 9), on the same vectors, one thread each.
 *
 *   1. exact scan: memory/vscan.h (two-pass int8 + exact rescore) against
 *      FAISS's IndexFlatIP searched one query per call with OpenMP set to
 *      one thread: queries/s, effective GB/s (n * dim * 4 bytes per query
 *      over the time per query), and every query's top 10 compared with
 *      FAISS's (same ids in the same order; where they differ, a near-tie
 *      is every rank's exact scores within 1e-6, anything else is a
 *      mismatch and fails the run). A plain reference loop (products
 *      summed in double precision) checks on a subset that vscan's ids and
 *      scores are exactly its own. FAISS with every query in one call (its
 *      BLAS path, on the reference BLAS Debian installs) is an extra line.
 *      Goals: memchat >= 3x FAISS's queries/s, >= 20 GB/s on one core.
 *   2. HNSW: memory/hnsw.h against hnswlib's HierarchicalNSW<float> over
 *      InnerProductSpace, the same M, efConstruction, level seed and
 *      insertion order, single thread: build time (wall and CPU), memory
 *      (each side's own count: hnsw_bytes() and hnswlib's allocations
 *      computed from its fields; and the process's RSS growth around each
 *      build), then recall@10 against the exact top 10 and queries/s over
 *      a range of ef; the headline is each side's queries/s at the smallest
 *      measured ef whose recall@10 reaches 0.95 (no interpolation), and
 *      their ratio. Goals: build <= 1.5x, memory <= 1.2x, ratio >= 1.0.
 *      Then memchat's save and load (a mapped file) round trip: times, file
 *      size, and the loaded index answering every query as the built one.
 *
 * Data are generated here with fixed seeds (no files), dim 384, unit
 * vectors: "uniform" (normalised gaussians: uniform on the sphere) and
 * "clustered" (CENTRES centres uniform on the sphere, each vector a centre
 * plus gaussian noise of SIGMA per dimension, normalised; the noise's norm
 * is about SIGMA * sqrt(384) = 1.2, so a vector keeps about 0.64 of its
 * centre's direction and two vectors of one cluster score about 0.4 while
 * vectors of different clusters score about 0 +- 0.05: groups of
 * near-ties, as real embeddings have). Queries are fresh draws from the
 * same distribution, never copies of base vectors. The exact top 10 of
 * the HNSW part is vscan's.
 *
 * Timing: CLOCK_MONOTONIC for wall time and CLOCK_PROCESS_CPUTIME_ID for
 * CPU time (their ratio shows each side ran on one core), after a warm-up.
 * The HNSW search rounds alternate the two sides ROUNDS times per ef and
 * keep each side's median, so a burst of other load hits both alike. The
 * output is Markdown for docs/benchmarks.md.
 *
 * Memory: one copy of the base vectors lives throughout; each index holds
 * its own copy, and the exact-scan indexes are freed before the next is
 * built (1M x 384 floats are 1.5 GB a copy). The two HNSW graphs live
 * together for the alternating rounds.
 *
 * Usage: bench_vindex [--n=N] [--queries=N] [--m=M] [--efc=EFC]
 *        [--only=scan|hnsw] [--data=uniform|clustered|both] [--all-ef]
 * --all-ef measures every ef of the list instead of stopping once both
 * sides reached the recall goal. Exits 0, or 1 when a correctness check
 * fails (a top 10 that differs beyond near-ties, vscan against the
 * reference loop, the loaded index against the built one) or an index
 * reports an error. Without FAISS or hnswlib (configure did not find
 * them) their columns say "not built" and the rest still runs.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "memory/hnsw.h"
#include "memory/vscan.h"
#include "util/alloc.h"
#include "vindex_ref.h"

#define DIM         384
#define K           10
#define DEFAULT_N   100000
#define DEFAULT_Q   1000
#define DEFAULT_M   16
#define DEFAULT_EFC 200
#define WARMUP      20   /* queries run untimed before a timed scan */
#define REF_QUERIES 20   /* queries the double-precision loop checks */
#define TIE_EPS     1e-6 /* exact scores this close are a near-tie */
#define ROUNDS      3    /* alternating HNSW search rounds per ef */
#define MIN_ROUND_S 0.25 /* a round repeats passes for at least this */
#define RECALL_GOAL 0.95 /* the headline's recall@10 */
#define CENTRES     1000 /* clusters of the clustered data */
#define SIGMA       0.06 /* clustered: noise per dimension */
#define HNSW_SEED   100  /* both graphs' level seed (hnswlib's default) */
#define SHOW_BAD    5    /* mismatches printed per comparison */
#define SEED_DATA   0x76696e6465783031ULL
#define SEED_QUERY  0x71756572793031ULL

static const size_t efs[] = {10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512};
#define N_EFS (sizeof efs / sizeof efs[0])

struct opts {
    size_t n, nq;
    int m, efc;
    bool scan, hnsw;
    bool uniform, clustered;
    bool all_ef;
};

/* ---- time, memory, machine -------------------------------------------- */

/* A reading of both clocks, in seconds. */
struct tmark {
    double wall, cpu;
};

static double ts_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct tmark tmark_now(void)
{
    struct tmark t = {ts_s(CLOCK_MONOTONIC), ts_s(CLOCK_PROCESS_CPUTIME_ID)};
    return t;
}

/* Elapsed since t0: wall in ->wall, CPU in ->cpu. */
static struct tmark tmark_since(struct tmark t0)
{
    struct tmark t = tmark_now();
    t.wall -= t0.wall;
    t.cpu -= t0.cpu;
    return t;
}

/* The process's resident bytes (/proc/self/statm), 0 when unreadable.
 * Freed heap goes back to the system first, so growth is what a build
 * added, not what it reused. */
static size_t rss_bytes(void)
{
#ifdef __GLIBC__
    malloc_trim(0);
#endif
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return 0;
    unsigned long long size = 0, resident = 0;
    int got = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    if (got != 2 || page <= 0)
        return 0;
    return (size_t)resident * (size_t)page;
}

/* /proc/cpuinfo's first "model name" into out. */
static void cpu_model(char *out, size_t outlen)
{
    snprintf(out, outlen, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f == NULL)
        return;
    char line[512];
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "model name", 10) != 0)
            continue;
        const char *colon = strchr(line, ':');
        if (colon == NULL)
            continue;
        colon++;
        while (*colon == ' ' || *colon == '\t')
            colon++;
        snprintf(out, outlen, "%.*s", (int)strcspn(colon, "\n"), colon);
        break;
    }
    fclose(f);
}

/* Dies like xmalloc, but for sizes from the command line, which may be
 * larger than the machine holds: a clear message instead of an abort. */
static void *big_alloc(size_t nmemb, size_t size, const char *what)
{
    if (size != 0 && nmemb > SIZE_MAX / size) {
        fprintf(stderr, "bench_vindex: %s: %zu x %zu bytes overflows\n", what, nmemb, size);
        exit(1);
    }
    void *p = try_malloc(nmemb * size > 0 ? nmemb * size : 1);
    if (p == NULL) {
        fprintf(stderr, "bench_vindex: %s: cannot allocate %zu bytes\n", what, nmemb * size);
        exit(1);
    }
    return p;
}

/* ---- data -------------------------------------------------------------- */

/* splitmix64 and Box-Muller: deterministic on every platform. */
struct rng {
    uint64_t s;
    bool has_spare;
    double spare;
};

static uint64_t rng_u64(struct rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in (0, 1]. */
static double rng_open01(struct rng *r)
{
    return (double)((rng_u64(r) >> 11) + 1) * 0x1.0p-53;
}

static double rng_gauss(struct rng *r)
{
    if (r->has_spare) {
        r->has_spare = false;
        return r->spare;
    }
    double u = rng_open01(r), v = rng_open01(r);
    double rad = sqrt(-2.0 * log(u));
    r->spare = rad * sin(2.0 * M_PI * v);
    r->has_spare = true;
    return rad * cos(2.0 * M_PI * v);
}

enum data_kind { DATA_UNIFORM, DATA_CLUSTERED };

struct dataset {
    const char *name;
    int dim;
    size_t n, nq;
    float *base;    /* n * dim */
    float *queries; /* nq * dim */
};

/* Writes count unit vectors of kind into out; centres (CENTRES * dim) is
 * used for the clustered kind. */
static void gen_vectors(enum data_kind kind, struct rng *r, const float *centres, float *out,
                        size_t count, int dim)
{
    double *tmp = xmalloc((size_t)dim * sizeof *tmp);
    for (size_t i = 0; i < count; i++) {
        const float *c = NULL;
        if (kind == DATA_CLUSTERED)
            c = centres + (size_t)(rng_u64(r) % CENTRES) * (size_t)dim;
        double norm = 0;
        for (int j = 0; j < dim; j++) {
            double x = kind == DATA_CLUSTERED ? (double)c[j] + SIGMA * rng_gauss(r) : rng_gauss(r);
            tmp[j] = x;
            norm += x * x;
        }
        norm = sqrt(norm);
        float *v = out + i * (size_t)dim;
        for (int j = 0; j < dim; j++)
            v[j] = (float)(tmp[j] / norm);
    }
    xfree(tmp);
}

static void dataset_make(struct dataset *d, enum data_kind kind, size_t n, size_t nq)
{
    d->name = kind == DATA_UNIFORM ? "uniform" : "clustered";
    d->dim = DIM;
    d->n = n;
    d->nq = nq;
    d->base = big_alloc(n * DIM, sizeof(float), "base vectors");
    d->queries = big_alloc(nq * DIM, sizeof(float), "query vectors");
    float *centres = NULL;
    struct rng r = {.s = SEED_DATA + (uint64_t)kind};
    if (kind == DATA_CLUSTERED) {
        centres = xmalloc((size_t)CENTRES * DIM * sizeof *centres);
        gen_vectors(DATA_UNIFORM, &r, NULL, centres, CENTRES, DIM);
    }
    gen_vectors(kind, &r, centres, d->base, n, DIM);
    struct rng rq = {.s = SEED_QUERY + (uint64_t)kind};
    gen_vectors(kind, &rq, centres, d->queries, nq, DIM);
    xfree(centres);
}

static void dataset_free(struct dataset *d)
{
    xfree(d->base);
    xfree(d->queries);
    memset(d, 0, sizeof *d);
}

static const float *row_of(const struct dataset *d, size_t row)
{
    return d->base + row * (size_t)d->dim;
}

static const float *query_of(const struct dataset *d, size_t q)
{
    return d->queries + q * (size_t)d->dim;
}

/* The reference score: products (exact in a double) summed in index order. */
static double exact_dot(const float *a, const float *b, int dim)
{
    double s = 0;
    for (int j = 0; j < dim; j++)
        s += (double)a[j] * (double)b[j];
    return s;
}

/* ---- the exact scan ---------------------------------------------------- */

/* The reference loop's top k of one query, best first, ties by lower row. */
static void ref_topk(const struct dataset *d, const float *q, size_t *rows, double *scores)
{
    size_t have = 0;
    for (size_t r = 0; r < d->n; r++) {
        double s = exact_dot(row_of(d, r), q, d->dim);
        if (have == K && s <= scores[K - 1])
            continue; /* rows come in order: an equal score never displaces */
        size_t at = have < K ? have : K - 1;
        while (at > 0 && scores[at - 1] < s) {
            scores[at] = scores[at - 1];
            rows[at] = rows[at - 1];
            at--;
        }
        scores[at] = s;
        rows[at] = r;
        if (have < K)
            have++;
    }
}

/* How a reference's top-k lists compare with memchat's exact ones. */
struct cmp_counts {
    size_t same;       /* same ids, same order */
    size_t ties;       /* different, but every rank's exact scores within TIE_EPS */
    size_t mismatches; /* anything else */
    double worst_tie;  /* the largest gap among the ties */
};

/* Compares ref_ids (nq * K) with gt, printing the first SHOW_BAD
 * mismatches with their score gap. */
static void compare_topk(const struct dataset *d, const uint32_t *gt, const int64_t *ref_ids,
                         const char *who, struct cmp_counts *c)
{
    memset(c, 0, sizeof *c);
    for (size_t q = 0; q < d->nq; q++) {
        const uint32_t *mine = gt + q * K;
        const int64_t *theirs = ref_ids + q * K;
        bool same = true;
        for (size_t i = 0; i < K; i++)
            same = same && theirs[i] == (int64_t)mine[i];
        if (same) {
            c->same++;
            continue;
        }
        double gap = 0;
        size_t bad_rank = K;
        for (size_t i = 0; i < K; i++) {
            if (theirs[i] < 0 || (uint64_t)theirs[i] >= d->n) {
                gap = INFINITY;
                bad_rank = i;
                break;
            }
            double a = exact_dot(row_of(d, mine[i]), query_of(d, q), d->dim);
            double b = exact_dot(row_of(d, (size_t)theirs[i]), query_of(d, q), d->dim);
            if (fabs(a - b) > gap) {
                gap = fabs(a - b);
                bad_rank = i;
            }
        }
        if (gap <= TIE_EPS) {
            c->ties++;
            if (gap > c->worst_tie)
                c->worst_tie = gap;
            continue;
        }
        if (c->mismatches++ < SHOW_BAD)
            printf("- MISMATCH (%s, %s): query %zu rank %zu: memchat row %u, %s id %lld, exact "
                   "score gap %.3g\n",
                   d->name, who, q, bad_rank + 1, mine[bad_rank], who, (long long)theirs[bad_rank],
                   gap);
    }
}

static void print_cmp(const char *label, const struct cmp_counts *c, size_t nq)
{
    printf("- top 10 of %s against memchat's: %zu of %zu identical, %zu differ only by ties "
           "within 1e-6 (largest gap %.2g), %zu mismatches\n",
           label, c->same, nq, c->ties, c->worst_tie, c->mismatches);
}

struct scan_row {
    bool built;
    double qps, ms, gbs, cpu_ratio;
};

static void scan_row_set(struct scan_row *r, const struct dataset *d, struct tmark t, size_t nq)
{
    r->built = true;
    r->qps = (double)nq / t.wall;
    r->ms = t.wall * 1e3 / (double)nq;
    r->gbs = (double)d->n * (double)d->dim * sizeof(float) / (t.wall / (double)nq) / 1e9;
    r->cpu_ratio = t.cpu / t.wall;
}

static void print_scan_row(const char *label, const struct scan_row *r)
{
    if (!r->built) {
        printf("| %s | not built | not built | not built | not built |\n", label);
        return;
    }
    printf("| %s | %.1f | %.2f | %.1f | %.2f |\n", label, r->qps, r->ms, r->gbs, r->cpu_ratio);
}

/* memchat's scan: fills gt (nq * K rows, the exact top 10) and, when timed,
 * the table row and the reference-loop check. Returns the failures. */
static int scan_memchat(const struct dataset *d, uint32_t *gt, bool timed, struct scan_row *row)
{
    int fails = 0;
    struct tmark tb = tmark_now();
    struct vscan *m = vscan_new(d->dim);
    for (size_t i = 0; i < d->n; i++)
        vscan_add(m, row_of(d, i));
    struct tmark build = tmark_since(tb);
    struct vscan_hit hits[K];
    float *mc_scores = big_alloc(d->nq * K, sizeof(float), "memchat scores");

    size_t warm = d->nq < WARMUP ? d->nq : WARMUP;
    for (size_t q = 0; timed && q < warm; q++)
        (void)vscan_topk(m, query_of(d, q), K, NULL, hits);
    size_t rescored = 0;
    struct tmark t0 = tmark_now();
    for (size_t q = 0; q < d->nq; q++) {
        struct vscan_stats st;
        size_t got = vscan_topk_stats(m, query_of(d, q), K, NULL, hits, &st);
        if (got != K) {
            fprintf(stderr, "bench_vindex: vscan_topk returned %zu of %d\n", got, K);
            fails++;
        }
        rescored += st.rescored;
        for (size_t i = 0; i < K; i++) {
            gt[q * K + i] = i < got ? (uint32_t)hits[i].row : UINT32_MAX;
            mc_scores[q * K + i] = i < got ? hits[i].score : NAN;
        }
    }
    struct tmark t = tmark_since(t0);
    size_t bytes_per_row = vscan_bytes_per_row(m);
    vscan_free(m);
    if (!timed) {
        xfree(mc_scores);
        return fails;
    }
    scan_row_set(row, d, t, d->nq);
    printf("- memchat vscan: built in %.2f s, %zu bytes per row; pass 2 rescored %.1f rows per "
           "query on average\n",
           build.wall, bytes_per_row, (double)rescored / (double)d->nq);

    /* The reference loop must give the same rows and the same scores. */
    size_t nref = d->nq < REF_QUERIES ? d->nq : REF_QUERIES, ref_ok = 0, shown = 0;
    double top1 = 0, top10 = 0;
    for (size_t q = 0; q < nref; q++) {
        size_t rows[K];
        double scores[K];
        ref_topk(d, query_of(d, q), rows, scores);
        bool ok = true;
        for (size_t i = 0; i < K; i++)
            ok = ok && rows[i] == gt[q * K + i] && (float)scores[i] == mc_scores[q * K + i];
        if (ok)
            ref_ok++;
        else if (shown++ < SHOW_BAD)
            printf("- MISMATCH (%s): query %zu: vscan's top 10 differs from the reference "
                   "loop's (rank 1: row %u %.9g against row %zu %.9g)\n",
                   d->name, q, gt[q * K], (double)mc_scores[q * K], rows[0], scores[0]);
    }
    for (size_t q = 0; q < d->nq; q++) {
        top1 += (double)mc_scores[q * K];
        top10 += (double)mc_scores[q * K + K - 1];
    }
    printf("- reference loop (products summed in double precision, index order) on %zu "
           "queries: %zu identical to vscan (ids, order and float scores)\n",
           nref, ref_ok);
    printf("- mean exact score of the 1st / 10th neighbour: %.4f / %.4f\n", top1 / (double)d->nq,
           top10 / (double)d->nq);
    fails += (int)(nref - ref_ok);
    xfree(mc_scores);
    return fails;
}

/* FAISS one query per call, then all queries in one call; compares both
 * with gt. Returns the failures. */
static int scan_faiss(const struct dataset *d, const uint32_t *gt, struct scan_row *one,
                      struct scan_row *batch, struct cmp_counts *c_one, struct cmp_counts *c_batch)
{
    char err[256];
    int64_t *ids = big_alloc(d->nq * K, sizeof(int64_t), "FAISS ids");
    float *scores = big_alloc(d->nq * K, sizeof(float), "FAISS scores");
    int fails = 0;
    ref_set_threads(1);
    struct tmark tb = tmark_now();
    struct ref_flat *f = ref_flat_new(d->dim, err, sizeof err);
    if (f == NULL || ref_flat_add(f, d->n, d->base, err, sizeof err) != 0) {
        fprintf(stderr, "bench_vindex: %s\n", err);
        fails++;
        goto out;
    }
    struct tmark build = tmark_since(tb);
    size_t warm = d->nq < WARMUP ? d->nq : WARMUP;
    for (size_t q = 0; q < warm; q++)
        if (ref_flat_search(f, 1, query_of(d, q), K, ids, scores, err, sizeof err) != 0)
            goto fail;
    struct tmark t0 = tmark_now();
    for (size_t q = 0; q < d->nq; q++)
        if (ref_flat_search(f, 1, query_of(d, q), K, ids + q * K, scores + q * K, err,
                            sizeof err) != 0)
            goto fail;
    scan_row_set(one, d, tmark_since(t0), d->nq);
    compare_topk(d, gt, ids, "FAISS", c_one);
    printf("- FAISS IndexFlatIP: add took %.2f s\n", build.wall);

    memset(ids, 0xff, d->nq * K * sizeof *ids);
    t0 = tmark_now();
    if (ref_flat_search(f, d->nq, d->queries, K, ids, scores, err, sizeof err) != 0)
        goto fail;
    scan_row_set(batch, d, tmark_since(t0), d->nq);
    compare_topk(d, gt, ids, "FAISS batch", c_batch);
    fails += (int)(c_one->mismatches + c_batch->mismatches);
    goto out;
fail:
    fprintf(stderr, "bench_vindex: %s\n", err);
    fails++;
out:
    ref_flat_free(f);
    xfree(ids);
    xfree(scores);
    return fails;
}

/* Part 1 for one dataset; fills gt. Returns the failures. */
static int run_scan(const struct opts *o, const struct dataset *d, uint32_t *gt)
{
    if (!o->scan) {
        printf("Exact top 10 for the HNSW part: memchat's vscan (not timed, not checked "
               "against FAISS: --only=hnsw).\n\n");
        return scan_memchat(d, gt, false, NULL);
    }
    printf("### Exact scan, %s data (n = %zu, dim = %d, %zu queries, top 10, one thread)\n\n",
           d->name, d->n, d->dim, d->nq);
    struct scan_row mc = {0}, one = {0}, batch = {0};
    struct cmp_counts c_one = {0}, c_batch = {0};
    int fails = scan_memchat(d, gt, true, &mc);
    if (ref_available_faiss())
        fails += scan_faiss(d, gt, &one, &batch, &c_one, &c_batch);
    else
        printf("- FAISS: not built (configure found no faiss/IndexFlat.h): its rows are "
               "skipped\n");
    if (one.built) {
        print_cmp("FAISS (one query per call)", &c_one, d->nq);
        print_cmp("FAISS (all queries in one call)", &c_batch, d->nq);
    }
    printf("\n| %s, n = %zu | queries/s | ms/query | effective GB/s | CPU/wall |\n", d->name, d->n);
    printf("|---|---:|---:|---:|---:|\n");
    char label[128];
    snprintf(label, sizeof label, "memchat vscan (%s kernel)", vscan_kernel());
    print_scan_row(label, &mc);
    print_scan_row("FAISS IndexFlatIP, one query per call, 1 OpenMP thread", &one);
    /* FAISS takes its BLAS path from distance_compute_blas_threshold (20)
     * queries per call. */
    snprintf(label, sizeof label, "extra: FAISS IndexFlatIP, all %zu queries in one call (%s)",
             d->nq,
             d->nq >= 20 ? "BLAS sgemm on Debian's reference BLAS, 1 thread"
                         : "fewer than 20: its one-by-one path");
    print_scan_row(label, &batch);
    printf("\nEffective GB/s: the float32 matrix (n x dim x 4 bytes) over the time per "
           "query, whatever an index reads (vscan's first pass reads its int8 codes, a "
           "quarter of that).\n\n");
    if (one.built) {
        double ratio = mc.qps / one.qps;
        printf("Goal memchat >= 3x FAISS's queries/s: %.2fx, %s. Goal >= 20 GB/s effective: "
               "%.1f GB/s, %s.\n\n",
               ratio, ratio >= 3.0 ? "met" : "NOT met", mc.gbs, mc.gbs >= 20 ? "met" : "NOT met");
    } else {
        printf("Goal >= 20 GB/s effective: %.1f GB/s, %s (the FAISS ratio: not built).\n\n", mc.gbs,
               mc.gbs >= 20 ? "met" : "NOT met");
    }
    return fails;
}

/* ---- HNSW ---------------------------------------------------------------- */

/* Hits of one query's top-k labels in its exact top 10. */
static size_t recall_hits(const uint32_t *gt_row, const int64_t *labels, size_t got)
{
    size_t hits = 0;
    for (size_t i = 0; i < got; i++)
        for (size_t j = 0; j < K; j++)
            if (labels[i] == (int64_t)gt_row[j]) {
                hits++;
                break;
            }
    return hits;
}

/* One side's figures at one ef. */
struct ef_point {
    bool done;
    double recall;
    double qps;
    double visited; /* memchat only: distances per query */
};

/* memchat's recall@10 at ef over every query (also the untimed warm-up
 * before the rounds), with the mean distances per query in *visited. */
static double mc_recall(struct hnsw *h, const struct dataset *d, const uint32_t *gt, size_t ef,
                        double *visited)
{
    struct hnsw_hit hits[K];
    int64_t labels[K];
    size_t total = 0, vis = 0;
    for (size_t q = 0; q < d->nq; q++) {
        struct hnsw_search_stats st = {0};
        size_t got = hnsw_search(h, query_of(d, q), K, ef, NULL, hits, &st);
        for (size_t i = 0; i < got; i++)
            labels[i] = hnsw_label(h, hits[i].node);
        total += recall_hits(gt + q * K, labels, got);
        vis += st.visited;
    }
    *visited = (double)vis / (double)d->nq;
    return (double)total / (double)(d->nq * K);
}

/* One timed round of memchat: whole passes over the queries for at least
 * MIN_ROUND_S; queries/s. */
static double mc_round(struct hnsw *h, const struct dataset *d, size_t ef)
{
    struct hnsw_hit hits[K];
    size_t passes = 0;
    struct tmark t0 = tmark_now(), t;
    do {
        for (size_t q = 0; q < d->nq; q++)
            (void)hnsw_search(h, query_of(d, q), K, ef, NULL, hits, NULL);
        passes++;
        t = tmark_since(t0);
    } while (t.wall < MIN_ROUND_S);
    return (double)(passes * d->nq) / t.wall;
}

/* hnswlib's recall@10 at ef, as mc_recall(); -1 when it threw. */
static double ref_recall(struct ref_hnsw *h, const struct dataset *d, const uint32_t *gt, size_t ef)
{
    int64_t labels[K];
    float scores[K];
    size_t total = 0;
    ref_hnsw_set_ef(h, ef);
    for (size_t q = 0; q < d->nq; q++) {
        int got = ref_hnsw_search(h, query_of(d, q), K, labels, scores);
        if (got < 0)
            return -1;
        total += recall_hits(gt + q * K, labels, (size_t)got);
    }
    return (double)total / (double)(d->nq * K);
}

/* One timed round of hnswlib, as mc_round(). */
static double ref_round(struct ref_hnsw *h, const struct dataset *d, size_t ef)
{
    int64_t labels[K];
    float scores[K];
    size_t passes = 0;
    struct tmark t0 = tmark_now(), t;
    ref_hnsw_set_ef(h, ef);
    do {
        for (size_t q = 0; q < d->nq; q++)
            (void)ref_hnsw_search(h, query_of(d, q), K, labels, scores);
        passes++;
        t = tmark_since(t0);
    } while (t.wall < MIN_ROUND_S);
    return (double)(passes * d->nq) / t.wall;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of ROUNDS values (sorts v). */
static double median3(double *v)
{
    qsort(v, ROUNDS, sizeof *v, cmp_double);
    return v[ROUNDS / 2];
}

/* One build's figures. */
struct build_fig {
    bool built;
    double wall, cpu;
    size_t own_bytes, rss_growth;
};

static void fmt_mb(char *out, size_t outlen, size_t bytes)
{
    snprintf(out, outlen, "%.1f MB (%zu)", (double)bytes / 1e6, bytes);
}

static void print_build(const char *label, const char *count, const struct build_fig *b)
{
    if (!b->built) {
        printf("| %s | not built | not built | not built | not built |\n", label);
        return;
    }
    char own[64], rss[64];
    fmt_mb(own, sizeof own, b->own_bytes);
    fmt_mb(rss, sizeof rss, b->rss_growth);
    printf("| %s | %.2f | %.2f | %s: %s | %s |\n", label, b->wall, b->cpu, count, own, rss);
}

/* Saves h, loads it back and checks the loaded index answers every query
 * as h does at ef. Returns the failures. */
static int hnsw_roundtrip(struct hnsw *h, const struct dataset *d, size_t ef)
{
    const char *tmp = getenv("TMPDIR");
    char dir[512], path[600], err[512];
    snprintf(dir, sizeof dir, "%s/bench_vindex.XXXXXX", tmp != NULL && *tmp ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        fprintf(stderr, "bench_vindex: mkdtemp %s: %s\n", dir, strerror(errno));
        return 1;
    }
    snprintf(path, sizeof path, "%s/index.hnsw", dir);
    int fails = 0;
    struct hnsw_meta meta = {.generation = 7, .created_ms = 1700000000000LL}, back = {0};
    struct tmark t0 = tmark_now();
    if (hnsw_save(h, &meta, path, err, sizeof err) != 0) {
        fprintf(stderr, "bench_vindex: %s\n", err);
        fails++;
        goto out;
    }
    struct tmark ts = tmark_since(t0);
    struct stat stt;
    long long fsize = stat(path, &stt) == 0 ? (long long)stt.st_size : -1;
    t0 = tmark_now();
    struct hnsw *l = hnsw_load(path, &back, err, sizeof err);
    struct tmark tl = tmark_since(t0);
    if (l == NULL) {
        fprintf(stderr, "bench_vindex: %s\n", err);
        fails++;
        goto out;
    }
    if (back.generation != meta.generation || back.created_ms != meta.created_ms) {
        printf("- MISMATCH: the loaded stamps differ from the saved ones\n");
        fails++;
    }
    size_t differ = 0;
    struct hnsw_hit a[K], b[K];
    t0 = tmark_now();
    for (size_t q = 0; q < d->nq; q++) {
        size_t nb = hnsw_search(l, query_of(d, q), K, ef, NULL, b, NULL);
        size_t na = hnsw_search(h, query_of(d, q), K, ef, NULL, a, NULL);
        bool same = na == nb;
        for (size_t i = 0; same && i < na; i++)
            same = a[i].node == b[i].node && a[i].score == b[i].score &&
                   hnsw_label(h, a[i].node) == hnsw_label(l, b[i].node);
        differ += !same;
    }
    struct tmark tq = tmark_since(t0);
    printf("- memchat save: %.3f s, file %.1f MB (%lld bytes, %.0f bytes per vector); load "
           "(maps the file, checks every link): %.3f s; the loaded index answers all %zu "
           "queries at ef = %zu %s (%.2f s for both indexes, the first pass over the mapped "
           "file included)\n",
           ts.wall, (double)fsize / 1e6, fsize, (double)fsize / (double)d->n, tl.wall, d->nq, ef,
           differ == 0 ? "identically" : "DIFFERENTLY", tq.wall);
    if (differ != 0) {
        printf("- MISMATCH: %zu queries answered differently after load\n", differ);
        fails++;
    }
    hnsw_free(l);
out:
    if (unlink(path) != 0 && errno != ENOENT)
        fprintf(stderr, "bench_vindex: unlink %s: %s\n", path, strerror(errno));
    if (rmdir(dir) != 0)
        fprintf(stderr, "bench_vindex: rmdir %s: %s\n", dir, strerror(errno));
    return fails;
}

/* The first ef index whose recall reaches the goal, or N_EFS. */
static size_t first_at_goal(const struct ef_point *p)
{
    for (size_t i = 0; i < N_EFS; i++)
        if (p[i].done && p[i].recall >= RECALL_GOAL)
            return i;
    return N_EFS;
}

/* Part 2 for one dataset. Returns the failures. */
static int run_hnsw(const struct opts *o, const struct dataset *d, const uint32_t *gt)
{
    int fails = 0;
    char err[256];
    printf("### HNSW, %s data (n = %zu, dim = %d, M = %d, efConstruction = %d, %zu queries, "
           "one thread)\n\n",
           d->name, d->n, d->dim, o->m, o->efc, d->nq);

    struct build_fig mb = {0}, rb = {0};
    struct hnsw_params p = {.m = o->m, .ef_construction = o->efc, .seed = HNSW_SEED};
    size_t rss0 = rss_bytes();
    struct tmark t0 = tmark_now();
    struct hnsw *h = hnsw_new(d->dim, &p);
    if (h == NULL) {
        fprintf(stderr, "bench_vindex: hnsw_new(dim %d, M %d, efC %d) refused\n", d->dim, o->m,
                o->efc);
        return 1;
    }
    hnsw_reserve(h, d->n);
    for (size_t i = 0; i < d->n; i++)
        (void)hnsw_add(h, (int64_t)i, row_of(d, i));
    struct tmark t = tmark_since(t0);
    size_t rss1 = rss_bytes();
    mb = (struct build_fig){true, t.wall, t.cpu, hnsw_bytes(h), rss1 > rss0 ? rss1 - rss0 : 0};

    struct ref_hnsw *r = NULL;
    if (ref_available_hnswlib()) {
        rss0 = rss_bytes();
        t0 = tmark_now();
        r = ref_hnsw_new(d->dim, d->n, o->m, o->efc, HNSW_SEED, err, sizeof err);
        for (size_t i = 0; r != NULL && i < d->n; i++)
            if (ref_hnsw_add(r, row_of(d, i), (int64_t)i, err, sizeof err) != 0) {
                ref_hnsw_free(r);
                r = NULL;
            }
        t = tmark_since(t0);
        rss1 = rss_bytes();
        if (r == NULL) {
            fprintf(stderr, "bench_vindex: %s\n", err);
            fails++;
        } else {
            rb = (struct build_fig){true, t.wall, t.cpu, ref_hnsw_bytes(r),
                                    rss1 > rss0 ? rss1 - rss0 : 0};
        }
    }

    printf("| build, %s, n = %zu | wall s | CPU s | memory (own count) | RSS growth |\n", d->name,
           d->n);
    printf("|---|---:|---:|---:|---:|\n");
    print_build("memchat hnsw", "hnsw_bytes()", &mb);
    print_build("hnswlib", "formula from hnswalg.h", &rb);
    if (rb.built)
        printf("| memchat / hnswlib | %.2fx | %.2fx | %.2fx | %.2fx |\n", mb.wall / rb.wall,
               mb.cpu / rb.cpu, (double)mb.own_bytes / (double)rb.own_bytes,
               (double)mb.rss_growth / (double)(rb.rss_growth > 0 ? rb.rss_growth : 1));
    printf("\n");
    if (rb.built) {
        double bw = mb.wall / rb.wall, mem = (double)mb.own_bytes / (double)rb.own_bytes;
        printf("Goal build <= 1.5x hnswlib's: %.2fx, %s. Goal memory <= 1.2x: %.2fx by each "
               "side's own count, %s.\n\n",
               bw, bw <= 1.5 ? "met" : "NOT met", mem, mem <= 1.2 ? "met" : "NOT met");
    }

    struct ef_point mc[N_EFS], rf[N_EFS];
    memset(mc, 0, sizeof mc);
    memset(rf, 0, sizeof rf);
    for (size_t e = 0; e < N_EFS; e++) {
        size_t ef = efs[e];
        mc[e].recall = mc_recall(h, d, gt, ef, &mc[e].visited);
        mc[e].done = true;
        if (r != NULL) {
            rf[e].recall = ref_recall(r, d, gt, ef);
            if (rf[e].recall < 0) {
                fprintf(stderr, "bench_vindex: hnswlib searchKnn threw at ef %zu\n", ef);
                fails++;
                break;
            }
            rf[e].done = true;
        }
        double qm[ROUNDS], qr[ROUNDS];
        for (int k = 0; k < ROUNDS; k++) {
            qm[k] = mc_round(h, d, ef);
            qr[k] = r != NULL ? ref_round(r, d, ef) : 0;
        }
        mc[e].qps = median3(qm);
        rf[e].qps = median3(qr);
        /* Past the point where both reached the goal, more ef adds nothing
         * to the headline. */
        if (!o->all_ef && first_at_goal(mc) < N_EFS && (r == NULL || first_at_goal(rf) < N_EFS))
            break;
    }

    printf("| ef | memchat recall@10 | memchat queries/s | memchat distances/query | "
           "hnswlib recall@10 | hnswlib queries/s |\n");
    printf("|---:|---:|---:|---:|---:|---:|\n");
    for (size_t e = 0; e < N_EFS && mc[e].done; e++) {
        if (rf[e].done)
            printf("| %zu | %.4f | %.0f | %.0f | %.4f | %.0f |\n", efs[e], mc[e].recall, mc[e].qps,
                   mc[e].visited, rf[e].recall, rf[e].qps);
        else
            printf("| %zu | %.4f | %.0f | %.0f | not built | not built |\n", efs[e], mc[e].recall,
                   mc[e].qps, mc[e].visited);
    }
    printf("\n");
    size_t im = first_at_goal(mc), ir = first_at_goal(rf);
    if (im < N_EFS)
        printf("- memchat: recall@10 >= %.2f first at ef = %zu (%.4f): %.0f queries/s\n",
               RECALL_GOAL, efs[im], mc[im].recall, mc[im].qps);
    else
        printf("- memchat: recall@10 >= %.2f not reached up to ef = %zu\n", RECALL_GOAL,
               efs[N_EFS - 1]);
    if (r == NULL)
        printf("- hnswlib: not built\n");
    else if (ir < N_EFS)
        printf("- hnswlib: recall@10 >= %.2f first at ef = %zu (%.4f): %.0f queries/s\n",
               RECALL_GOAL, efs[ir], rf[ir].recall, rf[ir].qps);
    else
        printf("- hnswlib: recall@10 >= %.2f not reached up to ef = %zu\n", RECALL_GOAL,
               efs[N_EFS - 1]);
    if (im < N_EFS && ir < N_EFS) {
        double ratio = mc[im].qps / rf[ir].qps;
        printf("- headline: memchat / hnswlib queries/s at recall@10 >= %.2f = %.2fx (goal >= "
               "1.0: %s)\n",
               RECALL_GOAL, ratio, ratio >= 1.0 ? "met" : "NOT met");
    } else if (r != NULL && rf[0].done) {
        /* No headline; the last ef both measured still compares them. */
        size_t last = 0;
        while (last + 1 < N_EFS && mc[last + 1].done && rf[last + 1].done)
            last++;
        printf("- no headline: recall@10 %.2f was not reached by both; at ef = %zu, the last "
               "measured, memchat / hnswlib queries/s = %.2fx at recall@10 %.4f / %.4f\n",
               RECALL_GOAL, efs[last], mc[last].qps / rf[last].qps, mc[last].recall,
               rf[last].recall);
    }
    ref_hnsw_free(r);
    fails += hnsw_roundtrip(h, d, im < N_EFS ? efs[im] : 64);
    printf("\n");
    hnsw_free(h);
    return fails;
}

/* ---- main ---------------------------------------------------------------- */

static int parse_size(const char *arg, const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "bench_vindex: %s: need an integer in %lld..%lld\n", arg, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){DEFAULT_N, DEFAULT_Q, DEFAULT_M, DEFAULT_EFC, true, true, true, true, false};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        long long v;
        if (strncmp(a, "--n=", 4) == 0) {
            if (parse_size(a, a + 4, K, 100000000LL, &v) != 0)
                return -1;
            o->n = (size_t)v;
        } else if (strncmp(a, "--queries=", 10) == 0) {
            if (parse_size(a, a + 10, 1, 1000000LL, &v) != 0)
                return -1;
            o->nq = (size_t)v;
        } else if (strncmp(a, "--m=", 4) == 0) {
            if (parse_size(a, a + 4, 2, 100, &v) != 0)
                return -1;
            o->m = (int)v;
        } else if (strncmp(a, "--efc=", 6) == 0) {
            if (parse_size(a, a + 6, 2, 4096, &v) != 0)
                return -1;
            o->efc = (int)v;
        } else if (strcmp(a, "--only=scan") == 0) {
            o->hnsw = false;
        } else if (strcmp(a, "--only=hnsw") == 0) {
            o->scan = false;
        } else if (strcmp(a, "--data=uniform") == 0) {
            o->clustered = false;
        } else if (strcmp(a, "--data=clustered") == 0) {
            o->uniform = false;
        } else if (strcmp(a, "--data=both") == 0) {
            o->uniform = o->clustered = true;
        } else if (strcmp(a, "--all-ef") == 0) {
            o->all_ef = true;
        } else {
            fprintf(stderr, "bench_vindex: unknown argument %s\n", a);
            return -1;
        }
    }
    if (o->efc < o->m) {
        fprintf(stderr, "bench_vindex: --efc=%d is below --m=%d (memchat accepts m..4096)\n",
                o->efc, o->m);
        return -1;
    }
    return 0;
}

static void print_header(const struct opts *o)
{
    char cpu[256];
    struct utsname u;
    cpu_model(cpu, sizeof cpu);
    if (uname(&u) != 0)
        memset(&u, 0, sizeof u);
    printf("## bench_vindex\n\n");
    printf("- CPU: %s (%ld logical CPUs online); kernel: %s %s %s\n", cpu,
           sysconf(_SC_NPROCESSORS_ONLN), u.sysname, u.release, u.machine);
    printf("- n = %zu, dim = %d, %zu queries, top %d, M = %d, efConstruction = %d\n", o->n, DIM,
           o->nq, K, o->m, o->efc);
    printf("- every index on one thread; times are CLOCK_MONOTONIC after a warm-up, "
           "CPU/wall from CLOCK_PROCESS_CPUTIME_ID\n");
    printf("- memchat: vscan kernel %s (chosen at run time from the CPU)\n", vscan_kernel());
    if (ref_available_faiss())
        printf("- FAISS %s (Debian's libfaiss-dev, its baseline x86-64 build), IndexFlatIP, "
               "omp_set_num_threads(1)\n",
               ref_faiss_version());
    else
        printf("- FAISS: not built\n");
    if (ref_available_hnswlib())
        printf("- hnswlib (libhnswlib-dev, header-only), compiled with the project's flags: "
               "%s\n",
               ref_hnswlib_simd());
    else
        printf("- hnswlib: not built\n");
    printf("- data: uniform = normalised gaussians; clustered = %d centres, noise %.2f per "
           "dimension, normalised; queries are fresh draws\n\n",
           CENTRES, SIGMA);
}

int main(int argc, char **argv)
{
    struct opts o;
    if (parse_args(argc, argv, &o) != 0) {
        fprintf(stderr, "usage: bench_vindex [--n=N] [--queries=N] [--m=M] [--efc=EFC] "
                        "[--only=scan|hnsw] [--data=uniform|clustered|both] [--all-ef]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    print_header(&o);
    if (!ref_available_faiss() || !ref_available_hnswlib())
        printf("SKIP (partial, exit status unaffected): %s not built; its columns say "
               "\"not built\"\n\n",
               !ref_available_faiss() && !ref_available_hnswlib() ? "FAISS and hnswlib"
               : !ref_available_faiss()                           ? "FAISS"
                                                                  : "hnswlib");
    int fails = 0;
    for (int kind = DATA_UNIFORM; kind <= DATA_CLUSTERED; kind++) {
        if ((kind == DATA_UNIFORM && !o.uniform) || (kind == DATA_CLUSTERED && !o.clustered))
            continue;
        struct dataset d;
        dataset_make(&d, (enum data_kind)kind, o.n, o.nq);
        uint32_t *gt = big_alloc(o.nq * K, sizeof *gt, "ground truth");
        fails += run_scan(&o, &d, gt);
        if (o.hnsw)
            fails += run_hnsw(&o, &d, gt);
        xfree(gt);
        dataset_free(&d);
    }
    if (fails != 0) {
        printf("bench_vindex: %d correctness check(s) FAILED\n", fails);
        return 1;
    }
    return 0;
}
