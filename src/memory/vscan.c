/*
 * The exact scan of vscan.h. Each row is held twice: its float32 vector
 * (64-byte aligned rows, zero padded) and an int8 code x_hat = scale * c
 * with c in [-127, 127], plus the row's quantisation error ||x - x_hat||
 * and ||x_hat||. A query is quantised the same way; then for any row
 *
 *   |q.x - q_hat.x_hat| <= ||q|| ||x - x_hat|| + ||q - q_hat|| ||x_hat||
 *
 * (write q.x - q_hat.x_hat = q.(x - x_hat) + (q - q_hat).x_hat and apply
 * Cauchy-Schwarz to each term), so the integer dot product of the codes
 * gives every row's score within a bound. Pass 1 streams the codes (a
 * quarter of the float bytes), keeps the k best lower bounds, and keeps a
 * row as a candidate when its upper bound reaches the k-th best lower
 * bound. Pass 2 rescores the candidates, best upper bound first, until the
 * next upper bound falls below the k-th best exact score.
 *
 * "Exact" is the reference loop's definition: the sum of the products in
 * double precision, in index order. A product of two floats is exact in a
 * double, so this sum does not depend on fused multiply-add or on the
 * compiler, and rows whose true scores tie are ordered the same way the
 * reference orders them (a float32 or reordered sum would break near-ties
 * differently). The candidates are few (about k ln(n/k) plus the rows
 * within the error bound), so this costs little; four candidates are summed
 * side by side to hide the addition latency.
 *
 * The codes are laid out for short queries. Rows come in blocks of 64 (one
 * word of the allow bitmap), and inside a block the codes of each quad of
 * dimensions are stored together, row after row (256 bytes: 64 rows x 4
 * codes). A query quantised to int8 keeps only its larger weights, and a
 * query of the local embedder has about 50 nonzero codes of 1024, in
 * about a fifth of the quads: pass 1 reads only those quads, so the
 * integer dot product is the same as over every dimension while the bytes
 * read per query fall about five-fold (measured in docs/benchmarks.md). A
 * dense query (a remote embedder's) reads every quad, as a row-major scan
 * would.
 *
 * Kernels: the int8 codes' dot product and vscan_dot, in AVX2 (+FMA) where
 * the CPU has them and portable C elsewhere, chosen once per process behind
 * pthread_once. The choice and the tests' override are process-wide state
 * on purpose: a property of the CPU, not of any one matrix.
 */
#include "config.h"

#include "memory/vscan.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define VSCAN_X86 1
#include <immintrin.h>
#else
#define VSCAN_X86 0
#endif

#define ROW_ALIGN 64             /* bytes: rows start on a cache line */
#define BLOCK     64             /* rows per code block: one word of the allow bitmap */
#define QUAD      4              /* dimensions whose codes are stored side by side */
#define QUAD_SPAN (BLOCK * QUAD) /* bytes of one quad in one block */
#define DIM_MAX   65536
/* A bitmap word with at least this many rows allowed is scored whole (the
 * 64 rows' codes are streamed anyway) and the others ignored; sparser
 * words score their rows one by one. */
#define BLOCK_MIN_ALLOWED 12

struct vscan {
    int dim;
    size_t fstride; /* floats per row, dim rounded up to ROW_ALIGN bytes */
    size_t nquads;  /* quads of dimensions, dim / QUAD rounded up */
    size_t cblock;  /* code bytes per block of BLOCK rows */
    size_t n, cap;
    char *fraw; /* the allocations; f and c point inside them, aligned */
    char *craw;
    float *f;
    int8_t *c;    /* the code blocks, see the file comment */
    float *scale; /* per row: x_hat = scale * c */
    float *xerr;  /* per row: ||x - x_hat||, rounded up */
    float *hnorm; /* per row: ||x_hat||, rounded up */
};

/* ---- kernels ---------------------------------------------------------- */

/* A query as pass 1 reads it: the quads with a nonzero code, and each
 * quad's four codes packed in an int32 (byte t = dimension 4p + t). */
struct qquads {
    uint32_t *idx;
    int32_t *word;
    size_t n;
};

struct vscan_kernels {
    const char *name;
    float (*dot)(const float *a, const float *b, size_t n);
    /* out[j] = the query's code dot product with row j of the block, for
     * the BLOCK rows of block; next is the block scanned after this one
     * (or NULL), whose quads are prefetched. */
    void (*dot_i8)(const struct qquads *q, const int8_t *block, const int8_t *next,
                   int32_t out[BLOCK]);
};

static float dot_portable(const float *a, const float *b, size_t n)
{
    /* Eight independent sums: the compiler may vectorise them, and the
     * rounding error grows with n/8 instead of n. */
    float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (size_t j = 0; j < 8; j++)
            s[j] += a[i + j] * b[i + j];
    float t = 0;
    for (; i < n; i++)
        t += a[i] * b[i];
    return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7])) + t;
}

/* The signed byte t of a quad word. */
static int32_t quad_byte(int32_t w, int t)
{
    return (int32_t)(int8_t)(uint8_t)((uint32_t)w >> (8 * t));
}

/* The prefetch of the quads the next block's scan reads: they are
 * scattered 256-byte runs that no hardware prefetcher predicts. */
static void prefetch_quads(const struct qquads *q, const int8_t *next)
{
#if defined(__GNUC__)
    if (next == NULL)
        return;
    for (size_t i = 0; i < q->n; i++) {
        uintptr_t a = (uintptr_t)next + (uintptr_t)q->idx[i] * QUAD_SPAN;
        for (size_t b = 0; b < QUAD_SPAN; b += 64)
            __builtin_prefetch((const void *)(a + b));
    }
#else
    (void)q;
    (void)next;
#endif
}

static void dot_i8_portable(const struct qquads *q, const int8_t *block, const int8_t *next,
                            int32_t out[BLOCK])
{
    prefetch_quads(q, next);
    for (size_t j = 0; j < BLOCK; j++)
        out[j] = 0;
    for (size_t i = 0; i < q->n; i++) {
        const int8_t *x = block + (size_t)q->idx[i] * QUAD_SPAN;
        int32_t q0 = quad_byte(q->word[i], 0), q1 = quad_byte(q->word[i], 1);
        int32_t q2 = quad_byte(q->word[i], 2), q3 = quad_byte(q->word[i], 3);
        for (size_t j = 0; j < BLOCK; j++, x += QUAD)
            out[j] += q0 * x[0] + q1 * x[1] + q2 * x[2] + q3 * x[3];
    }
}

static const struct vscan_kernels kernels_portable = {"portable", dot_portable, dot_i8_portable};

#if VSCAN_X86
__attribute__((target("avx2,fma"))) static float hsum256_ps(__m256 v)
{
    __m128 lo = _mm256_castps256_ps128(v);
    __m128 hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

__attribute__((target("avx2,fma"))) static float dot_avx2(const float *a, const float *b, size_t n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float t = 0;
    for (; i < n; i++)
        t += a[i] * b[i];
    return hsum256_ps(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3))) + t;
}

/* One step of the signed int8 dot product: maddubs multiplies unsigned by
 * signed bytes, so it gets |q| and x with q's sign moved onto it; pairs sum
 * to at most 2 * 127 * 127, inside int16, and madd widens them to int32. */
__attribute__((target("avx2"))) static inline __m256i i8_step(__m256i acc, __m256i qa, __m256i qv,
                                                              const int8_t *x, __m256i ones)
{
    __m256i xs = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)(const void *)x), qv);
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(qa, xs), ones));
}

/* A quad's 256 bytes are eight loads of eight rows' four codes each: the
 * query's quad broadcast to every row, one int32 lane per row, so eight
 * accumulators hold the block's 64 sums in row order. */
__attribute__((target("avx2"))) static void dot_i8_avx2(const struct qquads *q, const int8_t *block,
                                                        const int8_t *next, int32_t out[BLOCK])
{
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i a[8];
    for (int r = 0; r < 8; r++)
        a[r] = _mm256_setzero_si256();
    for (size_t i = 0; i < q->n; i++) {
        const int8_t *x = block + (size_t)q->idx[i] * QUAD_SPAN;
        if (next != NULL) {
            uintptr_t pf = (uintptr_t)next + (uintptr_t)q->idx[i] * QUAD_SPAN;
            for (int b = 0; b < QUAD_SPAN; b += 64) /* an integer: no pointer leaves its object */
                _mm_prefetch((const char *)(pf + (uintptr_t)b), _MM_HINT_T0);
        }
        __m256i qv = _mm256_set1_epi32(q->word[i]);
        __m256i qa = _mm256_abs_epi8(qv);
        for (int r = 0; r < 8; r++)
            a[r] = i8_step(a[r], qa, qv, x + 32 * r, ones);
    }
    for (int r = 0; r < 8; r++)
        _mm256_storeu_si256((__m256i *)(void *)(out + 8 * r), a[r]);
}

static const struct vscan_kernels kernels_avx2 = {"avx2", dot_avx2, dot_i8_avx2};
#endif

static pthread_once_t detect_once = PTHREAD_ONCE_INIT;
static const struct vscan_kernels *kernels_detected = &kernels_portable;
static atomic_bool kernels_forced_portable;

static void kernels_detect(void)
{
#if VSCAN_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        kernels_detected = &kernels_avx2;
#endif
}

static const struct vscan_kernels *kernels_get(void)
{
    pthread_once(&detect_once, kernels_detect);
    if (atomic_load_explicit(&kernels_forced_portable, memory_order_relaxed))
        return &kernels_portable;
    return kernels_detected;
}

float vscan_dot(const float *a, const float *b, size_t n)
{
    return kernels_get()->dot(a, b, n);
}

vscan_dot_fn vscan_dot_kernel(void)
{
    return kernels_get()->dot;
}

const char *vscan_kernel(void)
{
    return kernels_get()->name;
}

void vscan_force_portable(bool on)
{
    atomic_store(&kernels_forced_portable, on);
}

/* ---- quantisation ----------------------------------------------------- */

/* The smallest float >= v (v >= 0), so a stored bound never shrinks. */
static float float_up(double v)
{
    float f = (float)v;
    if ((double)f < v)
        f = nextafterf(f, INFINITY);
    return f;
}

/* Quantises x[0..dim) into code[0..dim) (the caller zeroes the padding):
 * scale = max|x| / 127 and c = round(x / scale). Sets *err = ||x - x_hat||
 * and *hnorm = ||x_hat||, in double. A vector with a NaN or an infinity
 * gets all-zero codes and an infinite error, so no bound ever prunes it. */
static void quantise(const float *x, int dim, int8_t *code, float *scale, double *err,
                     double *hnorm)
{
    float m = 0;
    bool finite = true;
    for (int i = 0; i < dim; i++) {
        if (!isfinite(x[i]))
            finite = false;
        else if (fabsf(x[i]) > m)
            m = fabsf(x[i]);
    }
    if (!finite) {
        memset(code, 0, (size_t)dim);
        *scale = 0;
        *err = HUGE_VAL;
        *hnorm = 0;
        return;
    }
    float s = m / 127.0f;
    double e = 0, h = 0;
    for (int i = 0; i < dim; i++) {
        long c = 0;
        if (s > 0) {
            c = lrint((double)x[i] / (double)s);
            c = c > 127 ? 127 : c < -127 ? -127 : c;
        }
        code[i] = (int8_t)c;
        double hat = (double)s * (double)c; /* exact: 24 by 8 bits */
        double d = (double)x[i] - hat;
        e += d * d;
        h += hat * hat;
    }
    *scale = s;
    *err = sqrt(e);
    *hnorm = sqrt(h);
}

/* ---- the matrix ------------------------------------------------------- */

static size_t round_up(size_t v, size_t m)
{
    return (v + m - 1) / m * m;
}

static void *align_ptr(char *raw)
{
    uintptr_t p = (uintptr_t)raw;
    return raw + (round_up(p, ROW_ALIGN) - p);
}

struct vscan *vscan_new(int dim)
{
    if (dim < 1 || dim > DIM_MAX)
        return NULL;
    struct vscan *m = xcalloc(1, sizeof *m);
    m->dim = dim;
    m->fstride = round_up((size_t)dim, ROW_ALIGN / sizeof(float));
    m->nquads = round_up((size_t)dim, QUAD) / QUAD;
    m->cblock = m->nquads * QUAD_SPAN;
    return m;
}

void vscan_free(struct vscan *m)
{
    if (m == NULL)
        return;
    xfree(m->fraw);
    xfree(m->craw);
    xfree(m->scale);
    xfree(m->xerr);
    xfree(m->hnorm);
    xfree(m);
}

/* Grows an aligned block of rows to cap rows of rowbytes, keeping the
 * first n rows; *raw is the allocation, the result the aligned start. */
static void *grow_aligned(char **raw, void *aligned, size_t n, size_t cap, size_t rowbytes)
{
    if (cap > (SIZE_MAX - ROW_ALIGN) / rowbytes)
        alloc_die("vscan rows");
    size_t old_off = *raw ? (size_t)((char *)aligned - *raw) : 0;
    *raw = xrealloc(*raw, cap * rowbytes + ROW_ALIGN);
    char *p = align_ptr(*raw);
    /* realloc keeps the bytes at the old offset; the new block may need
     * another one to be aligned. */
    if ((size_t)(p - *raw) != old_off && n > 0)
        memmove(p, *raw + old_off, n * rowbytes);
    return p;
}

static void vscan_reserve(struct vscan *m, size_t want)
{
    if (want <= m->cap)
        return;
    size_t cap = m->cap ? m->cap : 16;
    while (cap < want) {
        if (cap > SIZE_MAX / 2)
            alloc_die("vscan rows");
        cap *= 2;
    }
    m->f = grow_aligned(&m->fraw, m->f, m->n, cap, m->fstride * sizeof(float));
    /* Codes come in whole blocks; new ones start zeroed, so the rows past
     * n in the last block are defined bytes (their sums are never read). */
    size_t oldblocks = round_up(m->cap, BLOCK) / BLOCK, blocks = round_up(cap, BLOCK) / BLOCK;
    m->c = grow_aligned(&m->craw, m->c, oldblocks, blocks, m->cblock);
    memset(m->c + oldblocks * m->cblock, 0, (blocks - oldblocks) * m->cblock);
    m->scale = xreallocarray(m->scale, cap, sizeof *m->scale);
    m->xerr = xreallocarray(m->xerr, cap, sizeof *m->xerr);
    m->hnorm = xreallocarray(m->hnorm, cap, sizeof *m->hnorm);
    m->cap = cap;
}

/* Row's four codes of quad p. */
static int8_t *code_at(const struct vscan *m, size_t row, size_t p)
{
    return m->c + row / BLOCK * m->cblock + p * QUAD_SPAN + row % BLOCK * QUAD;
}

void vscan_set(struct vscan *m, size_t row, const float *v)
{
    assert(row < m->n);
    float *f = m->f + row * m->fstride;
    memcpy(f, v, (size_t)m->dim * sizeof(float));
    memset(f + m->dim, 0, (m->fstride - (size_t)m->dim) * sizeof(float));
    int8_t *code = xcalloc(m->nquads, QUAD); /* zero padded to whole quads */
    double err, hnorm;
    quantise(v, m->dim, code, &m->scale[row], &err, &hnorm);
    for (size_t p = 0; p < m->nquads; p++)
        memcpy(code_at(m, row, p), code + p * QUAD, QUAD);
    xfree(code);
    m->xerr[row] = float_up(err);
    m->hnorm[row] = float_up(hnorm);
}

size_t vscan_add(struct vscan *m, const float *v)
{
    vscan_reserve(m, m->n + 1);
    size_t row = m->n++;
    vscan_set(m, row, v);
    return row;
}

size_t vscan_remove_swap(struct vscan *m, size_t row)
{
    assert(row < m->n);
    size_t last = m->n - 1;
    if (row != last) {
        memcpy(m->f + row * m->fstride, m->f + last * m->fstride, m->fstride * sizeof(float));
        for (size_t p = 0; p < m->nquads; p++)
            memcpy(code_at(m, row, p), code_at(m, last, p), QUAD);
        m->scale[row] = m->scale[last];
        m->xerr[row] = m->xerr[last];
        m->hnorm[row] = m->hnorm[last];
    }
    m->n = last;
    return last;
}

size_t vscan_count(const struct vscan *m)
{
    return m->n;
}

int vscan_dim(const struct vscan *m)
{
    return m->dim;
}

const float *vscan_row(const struct vscan *m, size_t row)
{
    assert(row < m->n);
    return m->f + row * m->fstride;
}

size_t vscan_bytes_per_row(const struct vscan *m)
{
    return m->fstride * sizeof(float) + m->nquads * QUAD + 3 * sizeof(float);
}

/* ---- the scan --------------------------------------------------------- */

/* A pass-1 survivor: its row and upper bound. */
struct cand {
    double hi;
    size_t row;
};

/* Orders candidates by upper bound, highest first (ties: lower row). */
static int cand_cmp(const void *pa, const void *pb)
{
    const struct cand *a = pa, *b = pb;
    if (a->hi != b->hi)
        return a->hi > b->hi ? -1 : 1;
    return (a->row > b->row) - (a->row < b->row);
}

/* An exact result during the scan. */
struct scored {
    double s;
    size_t row;
};

/* True when a ranks after b: lower score, or equal score and higher row.
 * NaN (from a non-finite vector) ranks after every number. */
static bool ranks_after(const struct scored *a, const struct scored *b)
{
    bool an = isnan(a->s), bn = isnan(b->s);
    if (an != bn)
        return an;
    if (!an && a->s != b->s)
        return a->s < b->s;
    return a->row > b->row;
}

static int scored_cmp(const void *pa, const void *pb)
{
    const struct scored *a = pa, *b = pb;
    if (a->row == b->row)
        return 0;
    return ranks_after(a, b) ? 1 : -1;
}

/* Min-heap (root = the one that ranks last) of at most cap results. */
struct topk {
    struct scored *v;
    size_t n, cap;
};

static void topk_sift_down(struct topk *h, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, w = i;
        if (l < h->n && ranks_after(&h->v[l], &h->v[w]))
            w = l;
        if (l + 1 < h->n && ranks_after(&h->v[l + 1], &h->v[w]))
            w = l + 1;
        if (w == i)
            return;
        struct scored t = h->v[i];
        h->v[i] = h->v[w];
        h->v[w] = t;
        i = w;
    }
}

static void topk_push(struct topk *h, double s, size_t row)
{
    struct scored x = {s, row};
    if (h->n < h->cap) {
        size_t i = h->n++;
        while (i > 0 && ranks_after(&x, &h->v[(i - 1) / 2])) {
            h->v[i] = h->v[(i - 1) / 2];
            i = (i - 1) / 2;
        }
        h->v[i] = x;
    } else if (ranks_after(&h->v[0], &x)) {
        h->v[0] = x;
        topk_sift_down(h, 0);
    }
}

/* Min-heap of the cap largest pass-1 lower bounds; lb_floor() is the
 * k-th largest once full, -inf before. */
struct lbheap {
    double *v;
    size_t n, cap;
};

static void lb_push(struct lbheap *h, double x)
{
    if (h->n < h->cap) {
        size_t i = h->n++;
        while (i > 0 && x < h->v[(i - 1) / 2]) {
            h->v[i] = h->v[(i - 1) / 2];
            i = (i - 1) / 2;
        }
        h->v[i] = x;
        return;
    }
    if (!(x > h->v[0]))
        return;
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, w = l;
        if (l >= h->n)
            break;
        if (l + 1 < h->n && h->v[l + 1] < h->v[l])
            w = l + 1;
        if (!(h->v[w] < x))
            break;
        h->v[i] = h->v[w];
        i = w;
    }
    h->v[i] = x;
}

static double lb_floor(const struct lbheap *h)
{
    return h->n == h->cap ? h->v[0] : -HUGE_VAL;
}

/* What pass 1 needs of the query: a row's score is within
 * e = c_err * ||x - x_hat|| + c_hat * ||x_hat|| of scale * scale_x * idot. */
struct qinfo {
    double scale, c_err, c_hat;
};

struct scan {
    const struct vscan *m;
    struct qinfo q;
    struct lbheap lb;
    struct cand *cands;
    size_t ncands, capcands;
};

/* A row whose upper bound reaches the k-th best lower bound: a candidate,
 * and its lower bound may raise that floor. */
static void scan_take(struct scan *sc, size_t row, double hi, double lo)
{
    if (sc->ncands == sc->capcands) {
        sc->capcands = sc->capcands ? 2 * sc->capcands : 256;
        sc->cands = xreallocarray(sc->cands, sc->capcands, sizeof *sc->cands);
    }
    sc->cands[sc->ncands].hi = isnan(hi) ? HUGE_VAL : hi;
    sc->cands[sc->ncands].row = row;
    sc->ncands++;
    if (!isnan(lo))
        lb_push(&sc->lb, lo);
}

/* Pass 1 over the rows base + j (j < cnt <= 64) whose bit j is set in
 * mask, with their code dot products: the bounds in one loop the compiler
 * can vectorise, then the rare rows that reach the floor. A row below the floor changes nothing:
 * its lower bound is below it too. */
static void scan_block(struct scan *sc, size_t base, size_t cnt, const int32_t *idots,
                       uint64_t mask)
{
    const struct vscan *m = sc->m;
    const float *xs = m->scale + base, *xe = m->xerr + base, *xh = m->hnorm + base;
    double hi[64], lo[64];
    for (size_t j = 0; j < cnt; j++) {
        double a = sc->q.scale * (double)xs[j] * (double)idots[j];
        double e = sc->q.c_err * (double)xe[j] + sc->q.c_hat * (double)xh[j];
        hi[j] = a + e;
        lo[j] = a - e;
    }
    double floor_now = lb_floor(&sc->lb);
    for (size_t j = 0; j < cnt; j++) {
        if ((mask >> j & 1) && !(hi[j] < floor_now)) {
            scan_take(sc, base + j, hi[j], lo[j]);
            floor_now = lb_floor(&sc->lb);
        }
    }
}

/* The quads of the query's codes qc (nquads * QUAD bytes) that are not
 * all zero. The caller frees idx and word. */
static struct qquads query_quads(const int8_t *qc, size_t nquads)
{
    struct qquads q = {xcalloc(nquads, sizeof *q.idx), xcalloc(nquads, sizeof *q.word), 0};
    for (size_t p = 0; p < nquads; p++) {
        /* Byte t of the word is dimension 4p + t whatever the host's
         * byte order, as the kernels read it. */
        uint32_t packed = 0;
        for (int t = 0; t < QUAD; t++)
            packed |= (uint32_t)(uint8_t)qc[p * QUAD + (size_t)t] << (8 * t);
        if (packed == 0)
            continue;
        q.idx[q.n] = (uint32_t)p;
        q.word[q.n] = (int32_t)packed;
        q.n++;
    }
    return q;
}

/* The code dot product of row j of block alone: for the sparse bitmap
 * words of a selective filter, where scoring the whole block would read
 * 64 rows' quads for a few. */
static int32_t row_idot(const struct qquads *q, const int8_t *block, size_t j)
{
    int32_t s = 0;
    for (size_t i = 0; i < q->n; i++) {
        const int8_t *x = block + (size_t)q->idx[i] * QUAD_SPAN + j * QUAD;
        for (int t = 0; t < QUAD; t++)
            s += quad_byte(q->word[i], t) * x[t];
    }
    return s;
}

/* The reference sums of four rows with q, each in index order. */
static void exact4(const float *q, const float *const x[4], size_t n, double out[4])
{
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0; i < n; i++) {
        double qi = (double)q[i];
        s0 += qi * (double)x[0][i];
        s1 += qi * (double)x[1][i];
        s2 += qi * (double)x[2][i];
        s3 += qi * (double)x[3][i];
    }
    out[0] = s0;
    out[1] = s1;
    out[2] = s2;
    out[3] = s3;
}

size_t vscan_topk(const struct vscan *m, const float *q, size_t k, const uint64_t *allow,
                  struct vscan_hit *hits)
{
    return vscan_topk_stats(m, q, k, allow, hits, NULL);
}

size_t vscan_topk_stats(const struct vscan *m, const float *q, size_t k, const uint64_t *allow,
                        struct vscan_hit *hits, struct vscan_stats *stats)
{
    struct vscan_stats st = {0, 0};
    if (stats != NULL)
        *stats = st;
    if (k == 0 || m->n == 0)
        return 0;
    const struct vscan_kernels *kern = kernels_get();
    size_t kk = k < m->n ? k : m->n;
    struct scan sc = {.m = m};

    /* The query's codes, zero padded like the rows'. */
    int8_t *qc = xcalloc(m->nquads, QUAD);
    float qscale;
    double qerr, qhnorm, qn = 0;
    quantise(q, m->dim, qc, &qscale, &qerr, &qhnorm);
    for (int i = 0; i < m->dim; i++)
        qn += (double)q[i] * (double)q[i];
    qn = isinf(qerr) ? HUGE_VAL : sqrt(qn);
    /* The bound of the file comment, ||q|| ||x - x_hat|| + ||q - q_hat||
     * ||x_hat||, widened for rounding: by 1e-5 relative for its own
     * arithmetic and the floats its terms were stored in, and by
     * 1e-6 ||q|| ||x|| (||x|| <= ||x_hat|| + ||x - x_hat||) for the
     * rounding of the approximate score and of the reference sum, which
     * is at most dim * 2^-53 relative (below 1e-11 for any dim here). */
    sc.q.scale = (double)qscale;
    sc.q.c_err = qn * (1 + 1e-5) + 1e-6 * qn;
    sc.q.c_hat = qerr * (1 + 1e-5) + 1e-6 * qn;
    sc.lb.cap = kk;
    sc.lb.v = xmalloc(kk * sizeof *sc.lb.v);
    struct qquads qq = query_quads(qc, m->nquads);

    /* Pass 1, one block (one bitmap word) at a time. */
    int32_t idots[BLOCK];
    size_t nblocks = round_up(m->n, BLOCK) / BLOCK;
    for (size_t b = 0; b < nblocks; b++) {
        size_t base = b * BLOCK;
        size_t cnt = m->n - base < BLOCK ? m->n - base : BLOCK;
        uint64_t full = cnt == BLOCK ? ~(uint64_t)0 : ((uint64_t)1 << cnt) - 1;
        uint64_t w = allow ? allow[b] & full : full;
        if (w == 0)
            continue;
        size_t pop = (size_t)__builtin_popcountll(w);
        st.scanned += pop;
        const int8_t *block = m->c + b * m->cblock;
        if (pop >= BLOCK_MIN_ALLOWED) {
            const int8_t *next = b + 1 < nblocks ? block + m->cblock : NULL;
            kern->dot_i8(&qq, block, next, idots);
            scan_block(&sc, base, cnt, idots, w);
            continue;
        }
        for (; w != 0; w &= w - 1) {
            size_t j = (size_t)__builtin_ctzll(w);
            idots[0] = row_idot(&qq, block, j);
            scan_block(&sc, base + j, 1, idots, 1);
        }
    }

    /* Pass 2: drop the candidates the final k-th lower bound rules out,
     * then rescore the rest best bound first. */
    double lbfloor = lb_floor(&sc.lb);
    size_t nc = 0;
    for (size_t i = 0; i < sc.ncands; i++)
        if (!(sc.cands[i].hi < lbfloor))
            sc.cands[nc++] = sc.cands[i];
    if (nc > 1)
        qsort(sc.cands, nc, sizeof *sc.cands, cand_cmp);
    struct topk top = {xmalloc(kk * sizeof *top.v), 0, kk};
    size_t i = 0;
    while (i < nc) {
        /* The next four that can still enter (an upper bound equal to the
         * k-th score may still win its tie by a lower row). */
        size_t rows[4], nb = 0;
        for (; i < nc && nb < 4; i++) {
            if (top.n == top.cap && !isnan(top.v[0].s) && sc.cands[i].hi < top.v[0].s)
                break;
            rows[nb++] = sc.cands[i].row;
        }
        if (nb == 0)
            break;
#if defined(__GNUC__)
        /* The next batch's rows, fetched while this one is summed: the
         * candidates are scattered, so no hardware prefetcher sees them. */
        for (size_t j = i; j < nc && j < i + 4; j++)
            for (size_t b = 0; b < (size_t)m->dim * sizeof(float); b += 64)
                __builtin_prefetch((const char *)vscan_row(m, sc.cands[j].row) + b);
#endif
        const float *x[4];
        for (size_t j = 0; j < 4; j++)
            x[j] = vscan_row(m, rows[j < nb ? j : 0]);
        double s[4];
        exact4(q, x, (size_t)m->dim, s);
        for (size_t j = 0; j < nb; j++)
            topk_push(&top, s[j], rows[j]);
        st.rescored += nb;
        if (nb < 4)
            break;
    }
    qsort(top.v, top.n, sizeof *top.v, scored_cmp);
    for (size_t j = 0; j < top.n; j++) {
        hits[j].row = top.v[j].row;
        hits[j].score = (float)top.v[j].s;
    }
    size_t got = top.n;
    if (stats != NULL)
        *stats = st;
    xfree(top.v);
    xfree(sc.cands);
    xfree(sc.lb.v);
    xfree(qq.idx);
    xfree(qq.word);
    xfree(qc);
    return got;
}
