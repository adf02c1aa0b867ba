/*
 * The HNSW graph of hnsw.h: the algorithm of Malkov and Yashunin as
 * hnswlib implements it (greedy descent with ef = 1 on the upper levels, a
 * beam search of ef candidates on the insertion or search level, neighbours
 * chosen by the heuristic of their Algorithm 4, 2m links on level 0 and m
 * above, levels drawn with mult = 1 / ln m), over inner products: the
 * "distance" is -dot, computed by vscan's dispatched kernel.
 *
 * Storage is one column per kind of per-node data (vectors, level-0 link
 * lists of 1 + 2m words, labels, levels, and the offset of a node's upper
 * link lists in a pool of words), so a search touches only the links and
 * the vectors. A column is addressed in two parts: the rows of a loaded
 * file stay in its private mapping (rows 0..n0-1), and later rows go to
 * heap segments of a fixed power-of-two number of rows, so growth never
 * copies anything and a node's address is a compare, a shift and a
 * multiply. The upper links of the mapped nodes stay in the file's pool
 * and those of later nodes go to a heap pool. The tombstone bitmap is
 * always on the heap (one bit a node).
 *
 * Searches keep their scratch in the index: an epoch-tagged visited array
 * (cleared only when the 16-bit tag wraps), the candidate and result
 * heaps, and the neighbour buffer, so a warm search allocates nothing.
 * While the distances of a node's unvisited neighbours are computed, the
 * next neighbour's vector and then the next candidate's links are
 * prefetched: the graph walk is a chain of cache misses otherwise.
 *
 * Tombstones and filters (hnswlib's approach): every node routes, only
 * live allowed ones enter the results, and the search then runs until its
 * results are full. When the live allowed nodes are few (at most
 * max(n/50, 2048), or at most ef) an exact scan of them is cheaper than
 * such a walk and is what answers; a walk that still comes back short (a
 * part of the graph it cannot reach) is completed by the same scan.
 * Compaction relinks each list that held a tombstone (see relink()), makes
 * the links it gained mutual, and copies the live nodes into fresh
 * columns in their old order, which also leaves a loaded file's mapping.
 *
 * The file (native byte order, which the header records): a 256-byte
 * header (struct file_hdr; its last 8 bytes are the FNV-1a hash of the
 * rest), then the sections in this order, each at the next multiple of 64
 * bytes: labels (int64), levels (uint8), tombstones (uint64 words), level-0
 * links (1 + 2m uint32 per node), upper-link offsets (uint32 per node, in
 * words into the pool; 0 for a level-0 node), the pool (for a node of level
 * L, L lists of 1 + m words, level 1 first), and vectors (vstride bytes per
 * node). Loading checks that the header's layout is exactly the one its
 * counts imply, and every count, link, level and offset, before any search
 * can follow them.
 */
#include "config.h"

#include "memory/hnsw.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "memory/vscan.h"
#include "util/alloc.h"
#include "util/fileio.h"

#define NODE_NONE   UINT32_MAX
#define NODES_MAX   (UINT32_MAX - 1u) /* 2^32 - 2 nodes; UINT32_MAX means "none" */
#define LEVEL_MAX   63                /* far above any drawn level (m >= 2 gives <= 53) */
#define DIM_MAX     65536
#define M_MIN       2
#define M_MAX       100
#define EFC_MAX     4096
#define SEG_BYTES   ((size_t)8 << 20) /* a vector segment holds about this much */
#define SEG_SHIFT   12                /* at most 4096 rows a segment */
#define ALIGN       64                /* vector rows and file sections */
#define SMALL_EXACT 2048              /* a filter this selective is scanned exactly */

#define FILE_MAGIC   "MCHNSW01"
#define FILE_VERSION 1u
#define FILE_BOM     0x01020304u
#define REBUILD_HINT "(rebuild it with memchat memory index --rebuild)"

/* One entry of a heap or candidate list: a distance (-dot) and a node. */
struct pair {
    float d;
    uint32_t id;
};

/* One kind of per-node data, see the file comment. */
struct col {
    char *map;    /* rows 0..n0-1 in the mapped file, or NULL */
    size_t width; /* bytes per row */
    char **seg;   /* heap segments (row n0 + s * seg_rows onwards), aligned */
    char **raw;   /* what xmalloc returned for each segment */
    size_t nseg, segcap;
};

struct hnsw {
    int dim, m, m0, efc;
    uint64_t seed, rng;
    double mult;
    size_t vbytes;      /* dim * 4: the bytes of a vector */
    size_t vstride;     /* bytes per vector row, vbytes padded to 64 when it costs little */
    unsigned seg_shift; /* rows per heap segment = 1 << seg_shift */

    uint32_t n, n0, ndel;
    uint32_t entry; /* NODE_NONE when empty */
    int maxlevel;   /* -1 when empty */

    struct col vec, link0, label, level, uoff;
    uint64_t *tomb; /* tombstones, tombcap words, zero past n */
    size_t tombcap;
    uint32_t *mpool; /* upper lists of the mapped nodes (in the private mapping) */
    size_t mpool_words;
    uint32_t *hpool; /* upper lists of the heap nodes */
    size_t hpool_n, hpool_cap;
    void *map; /* the private mapping of a loaded file, or NULL */
    size_t maplen;
    void *vmem; /* the mapped rows' vectors copied to anonymous memory, or NULL */
    size_t vmemlen;

    /* scratch of searches and inserts */
    vscan_dot_fn dot;
    uint16_t *vis;
    size_t viscap;
    uint16_t vtag;
    struct pair *cand, *res, *sel;
    size_t candn, candcap, resn, rescap, selcap;
    uint32_t *nb; /* m0 words: a list's unvisited neighbours */
    const float **kept;
};

/* The file's header; see the file comment. Fields are native-endian. */
struct file_sect {
    uint64_t off, size;
};
enum { S_LABELS, S_LEVELS, S_TOMB, S_LINK0, S_UOFF, S_POOL, S_VEC, S_COUNT };
struct file_hdr {
    char magic[8];
    uint32_t version, byte_order;
    uint32_t dim, m, ef_construction, vstride;
    uint64_t seed, rng;
    uint64_t nodes, deleted;
    uint32_t entry;
    int32_t max_level;
    int64_t generation, created_ms;
    uint64_t pool_words, file_size;
    struct file_sect sect[S_COUNT];
    uint8_t reserved[32];
    uint64_t checksum; /* FNV-1a 64 of every byte before it */
};
_Static_assert(sizeof(struct file_hdr) == 256, "the header is 256 bytes");

/* ---- distances, heaps, random levels ---------------------------------- */

/* -dot, with a NaN ranked last (every comparison with it would be false). */
static inline float dist_of(float dot)
{
    return dot == dot ? -dot : INFINITY;
}

/* True when a ranks after b: farther, or as far and a higher node. */
static inline bool pair_worse(struct pair a, struct pair b)
{
    return a.d > b.d || (a.d == b.d && a.id > b.id);
}

/* Max-heap (worst on top) push into hp[0..*n), room assured by the caller. */
static void maxheap_push(struct pair *hp, size_t *n, struct pair x)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!pair_worse(x, hp[p]))
            break;
        hp[i] = hp[p];
        i = p;
    }
    hp[i] = x;
}

/* Sifts x down from the root of the max-heap hp[0..n) (n >= 1). */
static void maxheap_sift(struct pair *hp, size_t n, struct pair x)
{
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && pair_worse(hp[c + 1], hp[c]))
            c++;
        if (!pair_worse(hp[c], x))
            break;
        hp[i] = hp[c];
        i = c;
    }
    hp[i] = x;
}

static struct pair maxheap_pop(struct pair *hp, size_t *n)
{
    struct pair top = hp[0];
    struct pair last = hp[--*n];
    if (*n > 0)
        maxheap_sift(hp, *n, last);
    return top;
}

/* Min-heap (best on top) push and pop, as above. */
static void minheap_push(struct pair *hp, size_t *n, struct pair x)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!pair_worse(hp[p], x))
            break;
        hp[i] = hp[p];
        i = p;
    }
    hp[i] = x;
}

static void minheap_pop(struct pair *hp, size_t *n)
{
    struct pair x = hp[--*n];
    size_t len = *n, i = 0;
    if (len == 0)
        return;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= len)
            break;
        if (c + 1 < len && pair_worse(hp[c], hp[c + 1]))
            c++;
        if (!pair_worse(x, hp[c]))
            break;
        hp[i] = hp[c];
        i = c;
    }
    hp[i] = x;
}

static int pair_cmp(const void *a, const void *b)
{
    struct pair x = *(const struct pair *)a, y = *(const struct pair *)b;
    return pair_worse(x, y) ? 1 : pair_worse(y, x) ? -1 : 0;
}

/* Sorts p[0..n) closest first (a total order, so any sort agrees). */
static void pairs_sort(struct pair *p, size_t n)
{
    if (n > 24) {
        qsort(p, n, sizeof *p, pair_cmp);
        return;
    }
    for (size_t i = 1; i < n; i++) {
        struct pair x = p[i];
        size_t j = i;
        for (; j > 0 && pair_worse(p[j - 1], x); j--)
            p[j] = p[j - 1];
        p[j] = x;
    }
}

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* floor(-ln(u) * mult) for u uniform in (0, 1]: level l with
 * probability (1 - 1/m) m^-l, as in the paper. */
static int level_draw(struct hnsw *h)
{
    double u = (double)((splitmix64(&h->rng) >> 11) + 1) * 0x1p-53;
    double r = -log(u) * h->mult;
    return r >= LEVEL_MAX ? LEVEL_MAX : (int)r;
}

/* ---- columns ---------------------------------------------------------- */

static inline char *col_row(const struct col *c, uint32_t n0, unsigned shift, uint32_t i)
{
    if (i < n0)
        return c->map + (size_t)i * c->width;
    i -= n0;
    return c->seg[i >> shift] + (size_t)(i & ((1u << shift) - 1)) * c->width;
}

/* Makes room for rows heap rows of c. */
static void col_reserve(struct col *c, unsigned shift, size_t rows)
{
    size_t need = (rows + ((size_t)1 << shift) - 1) >> shift;
    if (need <= c->nseg)
        return;
    if (need > c->segcap) {
        size_t cap = c->segcap ? c->segcap * 2 : 8;
        if (cap < need)
            cap = need;
        c->seg = xreallocarray(c->seg, cap, sizeof *c->seg);
        c->raw = xreallocarray(c->raw, cap, sizeof *c->raw);
        c->segcap = cap;
    }
    size_t bytes;
    if (__builtin_mul_overflow(c->width, (size_t)1 << shift, &bytes) ||
        __builtin_add_overflow(bytes, (size_t)ALIGN, &bytes))
        alloc_die("hnsw segment");
    while (c->nseg < need) {
        char *raw = xmalloc(bytes);
        c->raw[c->nseg] = raw;
        c->seg[c->nseg] = raw + ((ALIGN - (uintptr_t)raw % ALIGN) % ALIGN);
        c->nseg++;
    }
}

static void col_free(struct col *c)
{
    for (size_t s = 0; s < c->nseg; s++)
        xfree(c->raw[s]);
    xfree(c->raw);
    xfree(c->seg);
    memset(c, 0, sizeof *c);
}

static size_t col_heap_bytes(const struct col *c, unsigned shift)
{
    return c->nseg * (c->width * ((size_t)1 << shift) + ALIGN) + c->segcap * 2 * sizeof(char *);
}

/* ---- node access ------------------------------------------------------ */

static inline const float *node_vec(const struct hnsw *h, uint32_t i)
{
    return (const float *)(void *)col_row(&h->vec, h->n0, h->seg_shift, i);
}

static inline int node_level(const struct hnsw *h, uint32_t i)
{
    return *(const uint8_t *)col_row(&h->level, h->n0, h->seg_shift, i);
}

static inline bool node_dead(const struct hnsw *h, uint32_t i)
{
    return (h->tomb[i >> 6] >> (i & 63)) & 1u;
}

/* The list of node i at level (count, then the links). */
static inline uint32_t *node_links(const struct hnsw *h, uint32_t i, int level)
{
    if (level == 0)
        return (uint32_t *)(void *)col_row(&h->link0, h->n0, h->seg_shift, i);
    uint32_t off = *(const uint32_t *)(void *)col_row(&h->uoff, h->n0, h->seg_shift, i);
    uint32_t *pool = i < h->n0 ? h->mpool : h->hpool;
    return pool + off + (size_t)(level - 1) * (size_t)(h->m + 1);
}

static inline float node_dist(const struct hnsw *h, const float *q, uint32_t i)
{
    return dist_of(h->dot(q, node_vec(h, i), (size_t)h->dim));
}

static inline void prefetch_bytes(const void *p, size_t n)
{
#if defined(__GNUC__)
    const char *c = p;
    for (size_t o = 0; o < n; o += 64)
        __builtin_prefetch(c + o);
#else
    (void)p;
    (void)n;
#endif
}

/* Makes room for rows nodes in all: columns, and the tombstone bitmap. */
static void nodes_reserve(struct hnsw *h, size_t rows)
{
    if (rows > h->n0) {
        size_t heap = rows - h->n0;
        col_reserve(&h->vec, h->seg_shift, heap);
        col_reserve(&h->link0, h->seg_shift, heap);
        col_reserve(&h->label, h->seg_shift, heap);
        col_reserve(&h->level, h->seg_shift, heap);
        col_reserve(&h->uoff, h->seg_shift, heap);
    }
    size_t words = rows / 64 + 1;
    if (words > h->tombcap) {
        size_t cap = h->tombcap * 2 > words ? h->tombcap * 2 : words;
        h->tomb = xreallocarray(h->tomb, cap, sizeof *h->tomb);
        memset(h->tomb + h->tombcap, 0, (cap - h->tombcap) * sizeof *h->tomb);
        h->tombcap = cap;
    }
}

/* ---- scratch ---------------------------------------------------------- */

/* A fresh visited tag; the array covers every node. */
static uint16_t vis_begin(struct hnsw *h)
{
    if (h->viscap < h->n) {
        size_t cap = h->viscap * 2 > h->n ? h->viscap * 2 : h->n;
        h->vis = xreallocarray(h->vis, cap, sizeof *h->vis);
        memset(h->vis + h->viscap, 0, (cap - h->viscap) * sizeof *h->vis);
        h->viscap = cap;
    }
    if (++h->vtag == 0) {
        memset(h->vis, 0, h->viscap * sizeof *h->vis);
        h->vtag = 1;
    }
    return h->vtag;
}

static void pairs_reserve(struct pair **p, size_t *cap, size_t n)
{
    if (n <= *cap)
        return;
    size_t c = *cap * 2 > n ? *cap * 2 : n;
    *p = xreallocarray(*p, c, sizeof **p);
    *cap = c;
}

static inline void cand_push(struct hnsw *h, struct pair x)
{
    if (h->candn == h->candcap)
        pairs_reserve(&h->cand, &h->candcap, h->candn + 1);
    minheap_push(h->cand, &h->candn, x);
}

static void sel_reserve(struct hnsw *h, size_t n)
{
    if (n > h->selcap) {
        pairs_reserve(&h->sel, &h->selcap, n);
        h->kept = xreallocarray(h->kept, h->selcap, sizeof *h->kept);
    }
}

/* ---- the graph -------------------------------------------------------- */

/* Greedy descent on level: moves *cur to a neighbour closer to q until
 * none is (the ef = 1 search of the upper levels). */
static void greedy(const struct hnsw *h, const float *q, uint32_t *cur, float *curd, int level,
                   size_t *ndist)
{
    bool changed = true;
    while (changed) {
        changed = false;
        const uint32_t *ll = node_links(h, *cur, level);
        uint32_t cnt = ll[0];
        for (uint32_t j = 0; j < cnt; j++) {
            if (j + 1 < cnt)
                prefetch_bytes(node_vec(h, ll[j + 2]), h->vbytes);
            float d = node_dist(h, q, ll[j + 1]);
            (*ndist)++;
            if (d < *curd) {
                *curd = d;
                *cur = ll[j + 1];
                changed = true;
            }
        }
    }
}

#define SL_CHECK 1u /* results take only accepted nodes: live, and allowed */
#define SL_FULL  2u /* stop only once the results hold ef nodes */

static inline bool node_accepted(const struct hnsw *h, uint32_t i, const uint64_t *allow)
{
    return !node_dead(h, i) && (allow == NULL || ((allow[i >> 6] >> (i & 63)) & 1u));
}

/* The beam search of one level from ep (at distance epd): leaves the ef
 * best accepted nodes in the max-heap h->res. Every node is routed
 * through; see SL_*. */
static void search_layer(struct hnsw *h, const float *q, uint32_t ep, float epd, int level,
                         size_t ef, const uint64_t *allow, unsigned flags, size_t *ndist)
{
    uint16_t tag = vis_begin(h);
    uint16_t *vis = h->vis;
    pairs_reserve(&h->res, &h->rescap, ef + 1);
    h->candn = 0;
    h->resn = 0;
    float bound = INFINITY;
    vis[ep] = tag;
    if (!(flags & SL_CHECK) || node_accepted(h, ep, allow)) {
        h->res[h->resn++] = (struct pair){epd, ep};
        bound = epd;
    }
    cand_push(h, (struct pair){epd, ep});
    uint32_t *nb = h->nb;
    while (h->candn > 0) {
        struct pair c = h->cand[0];
        if (c.d > bound && (h->resn == ef || !(flags & SL_FULL)))
            break;
        minheap_pop(h->cand, &h->candn);
        const uint32_t *ll = node_links(h, c.id, level);
        uint32_t cnt = ll[0];
        size_t m = 0;
        for (uint32_t j = 0; j < cnt; j++) {
            uint32_t id = ll[j + 1];
            if (vis[id] != tag) {
                vis[id] = tag;
                nb[m++] = id;
            }
        }
        /* every vector's first line now, then each whole vector two
         * distances ahead: measured best at dim 384 (a quarter more
         * queries/s than the next one's first 512 bytes) */
        for (size_t j = 0; j < m; j++)
            prefetch_bytes(node_vec(h, nb[j]), 64);
        for (size_t j = 0; j < m && j < 2; j++)
            prefetch_bytes(node_vec(h, nb[j]), h->vbytes);
        for (size_t j = 0; j < m; j++) {
            if (j + 2 < m)
                prefetch_bytes(node_vec(h, nb[j + 2]), h->vbytes);
            uint32_t id = nb[j];
            float d = node_dist(h, q, id);
            (*ndist)++;
            if (h->resn < ef || d < bound) {
                struct pair p = {d, id};
                cand_push(h, p);
                if (!(flags & SL_CHECK) || node_accepted(h, id, allow)) {
                    if (h->resn < ef)
                        maxheap_push(h->res, &h->resn, p);
                    else
                        maxheap_sift(h->res, h->resn, p);
                }
                if (h->resn > 0)
                    bound = h->res[0].d;
            }
        }
        if (h->candn > 0)
            prefetch_bytes(node_links(h, h->cand[0].id, level), 64);
    }
}

/* Moves the result heap into h->sel, closest first; returns how many. */
static size_t res_drain_sorted(struct hnsw *h)
{
    size_t n = h->resn;
    sel_reserve(h, n);
    for (size_t i = n; i-- > 0;)
        h->sel[i] = maxheap_pop(h->res, &h->resn);
    return n;
}

/* The heuristic of Algorithm 4 over c[0..nc) (closest to the base node
 * first): a candidate is kept only when it is closer to the base than to
 * every candidate kept before it, up to max; fewer than max candidates are
 * all kept. The kept ones end up in c[0..returned), still closest first. */
static size_t select_heuristic(struct hnsw *h, struct pair *c, size_t nc, size_t max)
{
    if (nc < max)
        return nc;
    const float **kept = h->kept;
    size_t k = 0;
    for (size_t i = 0; i < nc && k < max; i++) {
        const float *ci = node_vec(h, c[i].id);
        bool good = true;
        for (size_t j = 0; j < k; j++) {
            if (dist_of(h->dot(ci, kept[j], (size_t)h->dim)) < c[i].d) {
                good = false;
                break;
            }
        }
        if (good) {
            kept[k] = ci;
            c[k++] = c[i];
        }
    }
    return k;
}

/* Adds the link s -> x (at distance dxs) on level; a full list is shrunk
 * back to the level's maximum by the heuristic, x a candidate with the
 * links already there. */
static void link_back(struct hnsw *h, uint32_t s, uint32_t x, float dxs, int level,
                      struct pair *buf)
{
    uint32_t *ll = node_links(h, s, level);
    uint32_t cnt = ll[0];
    size_t max = level == 0 ? (size_t)h->m0 : (size_t)h->m;
    if (cnt < max) {
        ll[cnt + 1] = x;
        ll[0] = cnt + 1;
        return;
    }
    const float *sv = node_vec(h, s);
    for (uint32_t j = 0; j < cnt; j++) {
        uint32_t id = ll[j + 1];
        prefetch_bytes(node_vec(h, ll[j + 1 < cnt ? j + 2 : j + 1]), h->vbytes);
        buf[j] = (struct pair){dist_of(h->dot(sv, node_vec(h, id), (size_t)h->dim)), id};
    }
    buf[cnt] = (struct pair){dxs, x};
    pairs_sort(buf, cnt + 1);
    size_t k = select_heuristic(h, buf, cnt + 1, max);
    for (size_t j = 0; j < k; j++)
        ll[j + 1] = buf[j].id;
    ll[0] = (uint32_t)k;
}

/* ---- lifetime --------------------------------------------------------- */

static bool params_ok(int dim, const struct hnsw_params *p)
{
    return p != NULL && dim >= 1 && dim <= DIM_MAX && p->m >= M_MIN && p->m <= M_MAX &&
           p->ef_construction >= p->m && p->ef_construction <= EFC_MAX;
}

/* The row width of a vector: padded to 64 bytes when that adds at most a
 * sixteenth, so rows of the usual dimensions start on cache lines. */
static size_t vec_stride(int dim)
{
    size_t b = (size_t)dim * sizeof(float);
    size_t pad = (ALIGN - b % ALIGN) % ALIGN;
    return pad * 16 <= b ? b + pad : b;
}

/* An empty index (params checked by the caller). */
static struct hnsw *index_alloc(int dim, const struct hnsw_params *p)
{
    struct hnsw *h = xcalloc(1, sizeof *h);
    h->dim = dim;
    h->m = p->m;
    h->m0 = 2 * p->m;
    h->efc = p->ef_construction;
    h->seed = p->seed;
    h->rng = p->seed;
    h->mult = 1.0 / log((double)p->m);
    h->vbytes = (size_t)dim * sizeof(float);
    h->vstride = vec_stride(dim);
    unsigned shift = SEG_SHIFT;
    while (shift > 0 && (h->vstride << shift) > SEG_BYTES)
        shift--;
    h->seg_shift = shift;
    h->entry = NODE_NONE;
    h->maxlevel = -1;
    h->vec.width = h->vstride;
    h->link0.width = (size_t)(1 + h->m0) * sizeof(uint32_t);
    h->label.width = sizeof(int64_t);
    h->level.width = 1;
    h->uoff.width = sizeof(uint32_t);
    h->nb = xmalloc((size_t)h->m0 * sizeof *h->nb);
    h->dot = vscan_dot_kernel();
    nodes_reserve(h, 0);
    return h;
}

struct hnsw *hnsw_new(int dim, const struct hnsw_params *p)
{
    if (!params_ok(dim, p))
        return NULL;
    return index_alloc(dim, p);
}

/* Frees what holds the nodes (not the scratch). */
static void storage_free(struct hnsw *h)
{
    col_free(&h->vec);
    col_free(&h->link0);
    col_free(&h->label);
    col_free(&h->level);
    col_free(&h->uoff);
    xfree(h->tomb);
    xfree(h->hpool);
    if (h->map != NULL)
        munmap(h->map, h->maplen);
    if (h->vmem != NULL)
        munmap(h->vmem, h->vmemlen);
    h->tomb = NULL;
    h->hpool = NULL;
    h->map = NULL;
    h->vmem = NULL;
}

static void scratch_free(struct hnsw *h)
{
    xfree(h->vis);
    xfree(h->cand);
    xfree(h->res);
    xfree(h->sel);
    xfree(h->nb);
    xfree((void *)h->kept);
}

void hnsw_free(struct hnsw *h)
{
    if (h == NULL)
        return;
    storage_free(h);
    scratch_free(h);
    xfree(h);
}

void hnsw_reserve(struct hnsw *h, size_t n)
{
    if (n > NODES_MAX)
        n = NODES_MAX;
    nodes_reserve(h, n);
}

/* ---- inserts ---------------------------------------------------------- */

/* Appends node n's rows (vector, label, level, empty lists) and returns
 * its number. */
static uint32_t node_append(struct hnsw *h, int64_t label, const float *v, int level)
{
    if (h->n >= NODES_MAX)
        alloc_die("hnsw: more than 2^32 - 2 nodes");
    uint32_t id = h->n;
    nodes_reserve(h, (size_t)id + 1);
    char *vr = col_row(&h->vec, h->n0, h->seg_shift, id);
    memcpy(vr, v, h->vbytes);
    memset(vr + h->vbytes, 0, h->vstride - h->vbytes);
    memcpy(col_row(&h->label, h->n0, h->seg_shift, id), &label, sizeof label);
    *(uint8_t *)col_row(&h->level, h->n0, h->seg_shift, id) = (uint8_t)level;
    uint32_t *l0 = (uint32_t *)(void *)col_row(&h->link0, h->n0, h->seg_shift, id);
    memset(l0, 0, h->link0.width);
    uint32_t off = 0;
    if (level > 0) {
        size_t words = (size_t)level * (size_t)(h->m + 1);
        if (h->hpool_n + words > UINT32_MAX)
            alloc_die("hnsw: upper link pool");
        if (h->hpool_n + words > h->hpool_cap) {
            size_t cap = h->hpool_cap * 2 > h->hpool_n + words ? h->hpool_cap * 2
                                                               : h->hpool_n + words + 1024;
            h->hpool = xreallocarray(h->hpool, cap, sizeof *h->hpool);
            h->hpool_cap = cap;
        }
        off = (uint32_t)h->hpool_n;
        memset(h->hpool + off, 0, words * sizeof *h->hpool);
        h->hpool_n += words;
    }
    memcpy(col_row(&h->uoff, h->n0, h->seg_shift, id), &off, sizeof off);
    h->n++;
    return id;
}

uint32_t hnsw_add(struct hnsw *h, int64_t label, const float *v)
{
    int level = level_draw(h);
    uint32_t id = node_append(h, label, v, level);
    if (h->entry == NODE_NONE) {
        h->entry = id;
        h->maxlevel = level;
        return id;
    }
    h->dot = vscan_dot_kernel();
    sel_reserve(h, (size_t)h->efc + (size_t)h->m0 + 2);
    const float *x = node_vec(h, id);
    size_t ndist = 0;
    uint32_t cur = h->entry;
    float curd = node_dist(h, x, cur);
    for (int l = h->maxlevel; l > level; l--)
        greedy(h, x, &cur, &curd, l, &ndist);
    unsigned flags = SL_FULL | (h->ndel > 0 ? SL_CHECK : 0u);
    for (int l = level < h->maxlevel ? level : h->maxlevel; l >= 0; l--) {
        search_layer(h, x, cur, curd, l, (size_t)h->efc, NULL, flags, &ndist);
        if (h->resn == 0) /* only tombstones reached: link to the entry anyway */
            h->res[h->resn++] = (struct pair){curd, cur};
        size_t nc = res_drain_sorted(h);
        size_t k = select_heuristic(h, h->sel, nc, (size_t)h->m);
        /* link_back's buffer lies past the selection in sel */
        struct pair *buf = h->sel + k;
        uint32_t *ll = node_links(h, id, l);
        for (size_t j = 0; j < k; j++)
            ll[j + 1] = h->sel[j].id;
        ll[0] = (uint32_t)k;
        for (size_t j = 0; j < k; j++)
            link_back(h, h->sel[j].id, id, h->sel[j].d, l, buf);
        cur = h->sel[0].id;
        curd = h->sel[0].d;
    }
    if (level > h->maxlevel) {
        h->maxlevel = level;
        h->entry = id;
    }
    return id;
}

void hnsw_delete(struct hnsw *h, uint32_t node)
{
    assert(node < h->n);
    if (node >= h->n || node_dead(h, node))
        return;
    h->tomb[node >> 6] |= (uint64_t)1 << (node & 63);
    h->ndel++;
}

bool hnsw_is_deleted(const struct hnsw *h, uint32_t node)
{
    assert(node < h->n);
    return node < h->n && node_dead(h, node);
}

size_t hnsw_nodes(const struct hnsw *h)
{
    return h->n;
}

size_t hnsw_deleted(const struct hnsw *h)
{
    return h->ndel;
}

int64_t hnsw_label(const struct hnsw *h, uint32_t node)
{
    assert(node < h->n);
    int64_t label;
    memcpy(&label, col_row(&h->label, h->n0, h->seg_shift, node), sizeof label);
    return label;
}

const float *hnsw_vector(const struct hnsw *h, uint32_t node)
{
    assert(node < h->n);
    return node_vec(h, node);
}

int hnsw_dim(const struct hnsw *h)
{
    return h->dim;
}

void hnsw_params_get(const struct hnsw *h, struct hnsw_params *out)
{
    out->m = h->m;
    out->ef_construction = h->efc;
    out->seed = h->seed;
}

size_t hnsw_bytes(const struct hnsw *h)
{
    size_t b = sizeof *h + h->maplen + h->vmemlen;
    b += col_heap_bytes(&h->vec, h->seg_shift) + col_heap_bytes(&h->link0, h->seg_shift);
    b += col_heap_bytes(&h->label, h->seg_shift) + col_heap_bytes(&h->level, h->seg_shift);
    b += col_heap_bytes(&h->uoff, h->seg_shift);
    b += h->tombcap * sizeof *h->tomb + h->hpool_cap * sizeof *h->hpool;
    b += h->viscap * sizeof *h->vis + (h->candcap + h->rescap) * sizeof(struct pair);
    b += h->selcap * (sizeof(struct pair) + sizeof(float *)) + (size_t)h->m0 * sizeof(uint32_t);
    return b;
}

/* ---- search ----------------------------------------------------------- */

/* Bit mask of the nodes of bitmap word w that exist. */
static inline uint64_t word_mask(const struct hnsw *h, size_t w)
{
    size_t left = h->n - w * 64;
    return left >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << left) - 1);
}

/* Live nodes that allow allows. */
static size_t count_allowed(const struct hnsw *h, const uint64_t *allow)
{
    size_t c = 0, words = ((size_t)h->n + 63) / 64;
    for (size_t w = 0; w < words; w++)
        c += (size_t)__builtin_popcountll(allow[w] & ~h->tomb[w] & word_mask(h, w));
    return c;
}

/* Writes the result heap's best k into hits, best first; returns how many. */
static size_t res_to_hits(struct hnsw *h, size_t k, struct hnsw_hit *hits)
{
    while (h->resn > k)
        maxheap_pop(h->res, &h->resn);
    size_t got = h->resn;
    for (size_t i = got; i-- > 0;) {
        struct pair p = maxheap_pop(h->res, &h->resn);
        hits[i] = (struct hnsw_hit){p.id, -p.d};
    }
    return got;
}

/* The exact top k of the live allowed nodes, by a scan. */
static size_t search_exact(struct hnsw *h, const float *q, size_t k, const uint64_t *allow,
                           struct hnsw_hit *hits, size_t *ndist)
{
    pairs_reserve(&h->res, &h->rescap, k + 1);
    h->resn = 0;
    size_t words = ((size_t)h->n + 63) / 64;
    for (size_t w = 0; w < words; w++) {
        uint64_t bits = ~h->tomb[w] & word_mask(h, w);
        if (allow != NULL)
            bits &= allow[w];
        while (bits != 0) {
            uint32_t id = (uint32_t)(w * 64 + (size_t)__builtin_ctzll(bits));
            bits &= bits - 1;
            struct pair p = {node_dist(h, q, id), id};
            (*ndist)++;
            if (h->resn < k)
                maxheap_push(h->res, &h->resn, p);
            else if (pair_worse(h->res[0], p))
                maxheap_sift(h->res, h->resn, p);
        }
    }
    return res_to_hits(h, k, hits);
}

size_t hnsw_search(struct hnsw *h, const float *q, size_t k, size_t ef, const uint64_t *allow,
                   struct hnsw_hit *hits, struct hnsw_search_stats *stats)
{
    size_t ndist = 0, got = 0;
    bool exact = false;
    if (k == 0 || h->n == 0)
        goto out;
    h->dot = vscan_dot_kernel();
    size_t live = allow != NULL ? count_allowed(h, allow) : (size_t)(h->n - h->ndel);
    size_t want = k < live ? k : live;
    if (want == 0)
        goto out;
    if (ef < k)
        ef = k;
    bool filtered = allow != NULL || h->ndel > 0;
    size_t small = h->n / 50 > SMALL_EXACT ? h->n / 50 : SMALL_EXACT;
    if (live <= ef || (filtered && live <= small)) {
        got = search_exact(h, q, want, allow, hits, &ndist);
        exact = true;
        goto out;
    }
    uint32_t cur = h->entry;
    float curd = node_dist(h, q, cur);
    ndist++;
    for (int l = h->maxlevel; l > 0; l--)
        greedy(h, q, &cur, &curd, l, &ndist);
    search_layer(h, q, cur, curd, 0, ef, allow, filtered ? SL_CHECK | SL_FULL : 0u, &ndist);
    got = res_to_hits(h, want, hits);
    if (got < want) {
        got = search_exact(h, q, want, allow, hits, &ndist);
        exact = true;
    }
out:
    if (stats != NULL)
        *stats = (struct hnsw_search_stats){ndist, exact};
    return got;
}

/* ---- compaction ------------------------------------------------------- */

/* A link that compaction added: from node i to u on level, at distance d. */
struct newlink {
    uint32_t i, u;
    float d;
    int level;
};
struct newlinks {
    struct newlink *v;
    size_t n, cap;
};

/* Relinks node i's list on level when it links to a tombstone. Its live
 * links stay (construction chose them); the live links of the tombstones
 * it linked to are the candidates for the freed places, closest first,
 * each kept when the heuristic accepts it beside every link kept so far,
 * up to the level's maximum. Re-selecting the whole list by the heuristic
 * instead prunes the lists that back-links had filled: on clustered data
 * that lost 4 points of recall@10 at 5 % tombstones, where this keeps the
 * recall the graph had with them. The links gained go to added. */
static void relink(struct hnsw *h, uint32_t i, int level, struct newlinks *added)
{
    uint32_t *ll = node_links(h, i, level);
    uint32_t cnt = ll[0];
    size_t ntomb = 0;
    for (uint32_t j = 0; j < cnt; j++)
        if (node_dead(h, ll[j + 1]))
            h->nb[ntomb++] = ll[j + 1];
    if (ntomb == 0)
        return;
    size_t max = level == 0 ? (size_t)h->m0 : (size_t)h->m;
    sel_reserve(h, max);
    uint16_t tag = vis_begin(h);
    h->vis[i] = tag;
    size_t k = 0;
    for (uint32_t j = 0; j < cnt; j++) {
        uint32_t id = ll[j + 1];
        if (!node_dead(h, id)) {
            h->vis[id] = tag;
            h->kept[k] = node_vec(h, id);
            ll[++k] = id;
        }
    }
    const float *iv = node_vec(h, i);
    size_t nc = 0;
    for (size_t t = 0; t < ntomb; t++) {
        const uint32_t *tl = node_links(h, h->nb[t], level);
        for (uint32_t u = 0; u < tl[0]; u++) {
            uint32_t id = tl[u + 1];
            if (node_dead(h, id) || h->vis[id] == tag)
                continue;
            h->vis[id] = tag;
            sel_reserve(h, nc + 1);
            h->sel[nc++] = (struct pair){dist_of(h->dot(iv, node_vec(h, id), (size_t)h->dim)), id};
        }
    }
    pairs_sort(h->sel, nc);
    for (size_t j = 0; j < nc && k < max; j++) {
        const float *cv = node_vec(h, h->sel[j].id);
        bool good = true;
        for (size_t x = 0; x < k && good; x++)
            good = !(dist_of(h->dot(cv, h->kept[x], (size_t)h->dim)) < h->sel[j].d);
        if (!good)
            continue;
        h->kept[k] = cv;
        ll[++k] = h->sel[j].id;
        if (added->n == added->cap) {
            added->cap = added->cap ? added->cap * 2 : 1024;
            added->v = xreallocarray(added->v, added->cap, sizeof *added->v);
        }
        added->v[added->n++] = (struct newlink){i, h->sel[j].id, h->sel[j].d, level};
    }
    ll[0] = (uint32_t)k;
}

/* Copies node i of h into fresh (appended), its links renumbered by remap. */
static void node_copy(struct hnsw *fresh, const struct hnsw *h, uint32_t i, const uint32_t *remap)
{
    int level = node_level(h, i);
    uint32_t id = node_append(fresh, hnsw_label(h, i), node_vec(h, i), level);
    for (int l = 0; l <= level; l++) {
        const uint32_t *src = node_links(h, i, l);
        uint32_t *dst = node_links(fresh, id, l);
        uint32_t k = 0;
        for (uint32_t j = 0; j < src[0]; j++)
            if (remap[src[j + 1]] != NODE_NONE)
                dst[++k] = remap[src[j + 1]];
        dst[0] = k;
    }
}

uint32_t *hnsw_compact(struct hnsw *h)
{
    uint32_t *remap = xmalloc(((size_t)h->n + 1) * sizeof *remap);
    if (h->ndel == 0) {
        for (uint32_t i = 0; i < h->n; i++)
            remap[i] = i;
        return remap;
    }
    h->dot = vscan_dot_kernel();
    struct newlinks added = {NULL, 0, 0};
    for (uint32_t i = 0; i < h->n; i++) {
        if (node_dead(h, i))
            continue;
        int level = node_level(h, i);
        for (int l = 0; l <= level; l++)
            relink(h, i, l, &added);
    }
    /* the gained links made mutual, as an insert makes its links (a full
     * list shrunk by the heuristic), once no list holds a tombstone: this
     * gives back the in-links the tombstones took with them */
    sel_reserve(h, (size_t)h->m0 + 2);
    for (size_t a = 0; a < added.n; a++) {
        struct newlink e = added.v[a];
        const uint32_t *ul = node_links(h, e.u, e.level);
        bool has = false;
        for (uint32_t x = 0; x < ul[0] && !has; x++)
            has = ul[x + 1] == e.i;
        if (!has)
            link_back(h, e.u, e.i, e.d, e.level, h->sel);
    }
    xfree(added.v);
    uint32_t live = 0;
    for (uint32_t i = 0; i < h->n; i++)
        remap[i] = node_dead(h, i) ? NODE_NONE : live++;

    struct hnsw_params p = {h->m, h->efc, h->seed};
    struct hnsw *fresh = index_alloc(h->dim, &p);
    fresh->rng = h->rng;
    nodes_reserve(fresh, live);
    for (uint32_t i = 0; i < h->n; i++)
        if (remap[i] != NODE_NONE)
            node_copy(fresh, h, i, remap);
    if (h->entry != NODE_NONE && remap[h->entry] != NODE_NONE) {
        fresh->entry = remap[h->entry];
        fresh->maxlevel = h->maxlevel;
    } else {
        for (uint32_t i = 0; i < fresh->n; i++) {
            int l = node_level(fresh, i);
            if (l > fresh->maxlevel) {
                fresh->maxlevel = l;
                fresh->entry = i;
            }
        }
    }

    /* h takes fresh's storage and keeps its own scratch */
    struct hnsw old = *h;
    *h = *fresh;
    h->vis = old.vis;
    h->viscap = old.viscap;
    h->vtag = old.vtag;
    h->cand = old.cand;
    h->candcap = old.candcap;
    h->res = old.res;
    h->rescap = old.rescap;
    h->sel = old.sel;
    h->selcap = old.selcap;
    h->kept = old.kept;
    h->nb = old.nb;
    h->candn = h->resn = 0;
    storage_free(&old);
    scratch_free(fresh);
    xfree(fresh);
    return remap;
}

/* ---- the file --------------------------------------------------------- */

static uint64_t fnv1a(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t x = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        x ^= s[i];
        x *= 0x100000001b3ULL;
    }
    return x;
}

static uint64_t align_up(uint64_t x)
{
    return (x + ALIGN - 1) / ALIGN * ALIGN;
}

/* The sections of a file of n nodes and its total size. All factors are
 * bounded (n < 2^32, a row <= 256 KiB, pool < 2^32 words), so no sum
 * overflows 64 bits. */
static uint64_t layout(uint64_t n, uint64_t m, uint64_t vstride, uint64_t pool_words,
                       struct file_sect sect[S_COUNT])
{
    uint64_t size[S_COUNT] = {
        [S_LABELS] = n * 8,
        [S_LEVELS] = n,
        [S_TOMB] = (n / 64 + 1) * 8,
        [S_LINK0] = n * (1 + 2 * m) * 4,
        [S_UOFF] = n * 4,
        [S_POOL] = pool_words * 4,
        [S_VEC] = n * vstride,
    };
    uint64_t off = sizeof(struct file_hdr);
    for (int s = 0; s < S_COUNT; s++) {
        off = align_up(off);
        sect[s] = (struct file_sect){off, size[s]};
        off += size[s];
    }
    return off;
}

/* Buffered writes to fd; the first error sticks in err (an errno). */
struct writer {
    int fd, err;
    char *buf;
    size_t len;
    uint64_t pos;
};
#define WRITER_BUF ((size_t)1 << 16)

static void writer_flush(struct writer *w)
{
    if (w->err == 0 && w->len > 0 && fileio_write_all(w->fd, w->buf, w->len) != 0)
        w->err = errno ? errno : EIO;
    w->len = 0;
}

static void writer_put(struct writer *w, const void *p, size_t n)
{
    w->pos += n;
    if (n >= WRITER_BUF) {
        writer_flush(w);
        if (w->err == 0 && fileio_write_all(w->fd, p, n) != 0)
            w->err = errno ? errno : EIO;
        return;
    }
    if (w->len + n > WRITER_BUF)
        writer_flush(w);
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

/* Zeros up to offset off. */
static void writer_pad(struct writer *w, uint64_t off)
{
    static const char zeros[ALIGN];
    while (w->pos < off) {
        uint64_t gap = off - w->pos;
        writer_put(w, zeros, gap < ALIGN ? (size_t)gap : ALIGN);
    }
}

/* Writes rows 0..n-1 of c. */
static void writer_col(struct writer *w, const struct hnsw *h, const struct col *c)
{
    if (h->n0 > 0)
        writer_put(w, c->map, (size_t)h->n0 * c->width);
    size_t rows = (size_t)1 << h->seg_shift;
    for (size_t r = h->n0, s = 0; r < h->n; s++) {
        size_t take = h->n - r < rows ? h->n - r : rows;
        writer_put(w, c->seg[s], take * c->width);
        r += take;
    }
}

int hnsw_save(const struct hnsw *h, const struct hnsw_meta *meta, const char *path, char *err,
              size_t errlen)
{
    uint64_t pool_words = (uint64_t)h->mpool_words + h->hpool_n;
    if (pool_words > UINT32_MAX) {
        snprintf(err, errlen, "cannot write %s: the upper links exceed 2^32 words", path);
        return -1;
    }
    struct file_hdr hd;
    memset(&hd, 0, sizeof hd);
    memcpy(hd.magic, FILE_MAGIC, sizeof hd.magic);
    hd.version = FILE_VERSION;
    hd.byte_order = FILE_BOM;
    hd.dim = (uint32_t)h->dim;
    hd.m = (uint32_t)h->m;
    hd.ef_construction = (uint32_t)h->efc;
    hd.vstride = (uint32_t)h->vstride;
    hd.seed = h->seed;
    hd.rng = h->rng;
    hd.nodes = h->n;
    hd.deleted = h->ndel;
    hd.entry = h->entry;
    hd.max_level = h->maxlevel;
    hd.generation = meta != NULL ? meta->generation : 0;
    hd.created_ms = meta != NULL ? meta->created_ms : 0;
    hd.pool_words = pool_words;
    hd.file_size = layout(h->n, (uint64_t)h->m, h->vstride, pool_words, hd.sect);
    hd.checksum = fnv1a(&hd, offsetof(struct file_hdr, checksum));

    char *tmp;
    int fd = fileio_replace_begin(path, 0600, &tmp, err, errlen);
    if (fd < 0)
        return -1;
    struct writer w = {fd, 0, xmalloc(WRITER_BUF), 0, 0};
    writer_put(&w, &hd, sizeof hd);
    writer_pad(&w, hd.sect[S_LABELS].off);
    writer_col(&w, h, &h->label);
    writer_pad(&w, hd.sect[S_LEVELS].off);
    writer_col(&w, h, &h->level);
    writer_pad(&w, hd.sect[S_TOMB].off);
    writer_put(&w, h->tomb, (size_t)hd.sect[S_TOMB].size);
    writer_pad(&w, hd.sect[S_LINK0].off);
    writer_col(&w, h, &h->link0);
    writer_pad(&w, hd.sect[S_UOFF].off);
    for (uint32_t i = 0; i < h->n; i++) {
        /* one pool in the file: the heap pool follows the mapped one */
        uint32_t off = 0;
        if (node_level(h, i) > 0) {
            memcpy(&off, col_row(&h->uoff, h->n0, h->seg_shift, i), sizeof off);
            if (i >= h->n0)
                off += (uint32_t)h->mpool_words;
        }
        writer_put(&w, &off, sizeof off);
    }
    writer_pad(&w, hd.sect[S_POOL].off);
    if (h->mpool_words > 0)
        writer_put(&w, h->mpool, h->mpool_words * sizeof(uint32_t));
    if (h->hpool_n > 0)
        writer_put(&w, h->hpool, h->hpool_n * sizeof(uint32_t));
    writer_pad(&w, hd.sect[S_VEC].off);
    writer_col(&w, h, &h->vec);
    writer_flush(&w);
    xfree(w.buf);
    return fileio_replace_end(path, fd, tmp, w.err, err, errlen);
}

/* "index file PATH: what (rebuild it ...)" into err; returns false. */
static bool load_fail(char *err, size_t errlen, const char *path, const char *fmt, ...)
    MC_PRINTF(4, 5);
static bool load_fail(char *err, size_t errlen, const char *path, const char *fmt, ...)
{
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(err, errlen, "index file %s: %s %s", path, what, REBUILD_HINT);
    return false;
}

/* Checks the header alone (counts, parameters, layout against size). */
static bool load_check_header(const struct file_hdr *hd, uint64_t size, const char *path, char *err,
                              size_t errlen)
{
    if (memcmp(hd->magic, FILE_MAGIC, sizeof hd->magic) != 0)
        return load_fail(err, errlen, path, "not a memchat HNSW index (no %s magic)", FILE_MAGIC);
    if (hd->byte_order != FILE_BOM)
        return load_fail(err, errlen, path, "written on a machine of another byte order");
    if (hd->version != FILE_VERSION)
        return load_fail(err, errlen, path, "format version %u, this memchat reads version %u",
                         (unsigned)hd->version, FILE_VERSION);
    if (fnv1a(hd, offsetof(struct file_hdr, checksum)) != hd->checksum)
        return load_fail(err, errlen, path, "header checksum mismatch");
    struct hnsw_params p = {(int)hd->m, (int)hd->ef_construction, hd->seed};
    if (hd->dim > DIM_MAX || hd->m > M_MAX || hd->ef_construction > EFC_MAX ||
        !params_ok((int)hd->dim, &p))
        return load_fail(err, errlen, path,
                         "dim %u, m %u, ef_construction %u out of range (dim 1..%d, m %d..%d, "
                         "ef_construction m..%d)",
                         (unsigned)hd->dim, (unsigned)hd->m, (unsigned)hd->ef_construction, DIM_MAX,
                         M_MIN, M_MAX, EFC_MAX);
    if (hd->vstride != vec_stride((int)hd->dim))
        return load_fail(err, errlen, path, "vector stride %u, expected %zu for dim %u",
                         (unsigned)hd->vstride, vec_stride((int)hd->dim), (unsigned)hd->dim);
    if (hd->nodes > NODES_MAX || hd->deleted > hd->nodes)
        return load_fail(err, errlen, path, "node count %llu, tombstones %llu out of range",
                         (unsigned long long)hd->nodes, (unsigned long long)hd->deleted);
    if (hd->pool_words > UINT32_MAX)
        return load_fail(err, errlen, path, "upper link pool of %llu words (at most 2^32 - 1)",
                         (unsigned long long)hd->pool_words);
    if (hd->nodes == 0 ? hd->entry != NODE_NONE || hd->max_level != -1
                       : hd->entry >= hd->nodes || hd->max_level < 0 || hd->max_level > LEVEL_MAX)
        return load_fail(
            err, errlen, path, "entry point %u at level %d out of range (%llu nodes, levels 0..%d)",
            (unsigned)hd->entry, (int)hd->max_level, (unsigned long long)hd->nodes, LEVEL_MAX);
    struct file_sect sect[S_COUNT];
    uint64_t total = layout(hd->nodes, hd->m, hd->vstride, hd->pool_words, sect);
    if (memcmp(sect, hd->sect, sizeof sect) != 0 || hd->file_size != total)
        return load_fail(err, errlen, path, "section table does not match its counts");
    if (size != total)
        return load_fail(err, errlen, path, "%llu bytes, its header says %llu (truncated?)",
                         (unsigned long long)size, (unsigned long long)total);
    if (total > SIZE_MAX)
        return load_fail(err, errlen, path, "too large to map (%llu bytes)",
                         (unsigned long long)total);
    return true;
}

/* Checks every level, count, link and offset of the mapped h, so no
 * search can leave the tables. */
static bool load_check_graph(const struct hnsw *h, const struct file_hdr *hd, const char *path,
                             char *err, size_t errlen)
{
    uint32_t n = h->n;
    size_t words = (size_t)n / 64 + 1;
    size_t dead = 0;
    for (size_t w = 0; w < words; w++) {
        uint64_t mask = w * 64 + 64 <= n ? ~(uint64_t)0 : (((uint64_t)1 << (n - w * 64)) - 1);
        if (h->tomb[w] & ~mask)
            return load_fail(err, errlen, path, "tombstone bits set past node %u", n);
        dead += (size_t)__builtin_popcountll(h->tomb[w]);
    }
    if (dead != hd->deleted)
        return load_fail(err, errlen, path, "%zu tombstones marked, its header says %llu", dead,
                         (unsigned long long)hd->deleted);
    if (n > 0 && node_level(h, h->entry) != h->maxlevel)
        return load_fail(err, errlen, path, "entry point %u is at level %d, not the top level %d",
                         (unsigned)h->entry, node_level(h, h->entry), h->maxlevel);
    size_t span = (size_t)h->m + 1;
    for (uint32_t i = 0; i < n; i++) {
        int level = node_level(h, i);
        if (level > h->maxlevel)
            return load_fail(err, errlen, path, "node %u at level %d, above the top level %d",
                             (unsigned)i, level, h->maxlevel);
        if (level > 0) {
            uint32_t off;
            memcpy(&off, col_row(&h->uoff, h->n0, h->seg_shift, i), sizeof off);
            if ((uint64_t)off + (uint64_t)level * span > h->mpool_words)
                return load_fail(err, errlen, path,
                                 "upper links of node %u at word %u, past the pool of %zu words",
                                 (unsigned)i, (unsigned)off, h->mpool_words);
        }
        for (int l = 0; l <= level; l++) {
            const uint32_t *ll = node_links(h, i, l);
            uint32_t max = l == 0 ? (uint32_t)h->m0 : (uint32_t)h->m;
            if (ll[0] > max)
                return load_fail(err, errlen, path, "node %u has %u links on level %d (at most %u)",
                                 (unsigned)i, (unsigned)ll[0], l, (unsigned)max);
            for (uint32_t j = 0; j < ll[0]; j++) {
                uint32_t t = ll[j + 1];
                if (t >= n)
                    return load_fail(err, errlen, path,
                                     "link %u of node %u on level %d is %u, beyond the %u nodes",
                                     (unsigned)j, (unsigned)i, l, (unsigned)t, (unsigned)n);
                if (l > 0 && node_level(h, t) < l)
                    return load_fail(err, errlen, path,
                                     "node %u links on level %d to node %u of level %d",
                                     (unsigned)i, l, (unsigned)t, node_level(h, t));
            }
        }
    }
    return true;
}

struct hnsw *hnsw_load(const char *path, struct hnsw_meta *meta, char *err, size_t errlen)
{
    int fd = fileio_open(path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT)
            snprintf(err, errlen, "%s: no such file", path);
        else
            snprintf(err, errlen, "cannot open %s: %s", path, strerror(e));
        errno = e;
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        snprintf(err, errlen, "cannot open %s: fstat: %s", path, strerror(e));
        return NULL;
    }
    struct file_hdr hd;
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size < sizeof hd) {
        close(fd);
        if (!S_ISREG(st.st_mode))
            load_fail(err, errlen, path, "not a regular file");
        else
            load_fail(err, errlen, path, "%llu bytes, shorter than its %zu-byte header",
                      (unsigned long long)st.st_size, sizeof hd);
        return NULL;
    }
    ssize_t got = pread(fd, &hd, sizeof hd, 0);
    if (got != (ssize_t)sizeof hd) {
        int e = got < 0 ? errno : EIO;
        close(fd);
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(e));
        return NULL;
    }
    if (!load_check_header(&hd, (uint64_t)st.st_size, path, err, errlen)) {
        close(fd);
        return NULL;
    }
    size_t len = (size_t)st.st_size;
    void *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED) {
        snprintf(err, errlen, "cannot map %s: %s", path, strerror(e));
        return NULL;
    }

    struct hnsw_params p = {(int)hd.m, (int)hd.ef_construction, hd.seed};
    struct hnsw *h = index_alloc((int)hd.dim, &p);
    char *base = map;
    h->map = map;
    h->maplen = len;
    h->rng = hd.rng;
    h->n = h->n0 = (uint32_t)hd.nodes;
    h->ndel = (uint32_t)hd.deleted;
    h->entry = hd.entry;
    h->maxlevel = hd.max_level;
    h->label.map = base + hd.sect[S_LABELS].off;
    h->level.map = base + hd.sect[S_LEVELS].off;
    h->link0.map = base + hd.sect[S_LINK0].off;
    h->uoff.map = base + hd.sect[S_UOFF].off;
    h->vec.map = base + hd.sect[S_VEC].off;
    h->mpool = (uint32_t *)(void *)(base + hd.sect[S_POOL].off);
    h->mpool_words = (size_t)hd.pool_words;
    size_t words = (size_t)hd.nodes / 64 + 1;
    xfree(h->tomb);
    h->tomb = try_calloc(words, sizeof *h->tomb);
    h->tombcap = h->tomb != NULL ? words : 0;
    if (h->tomb == NULL) {
        hnsw_free(h);
        snprintf(err, errlen, "cannot load %s: out of memory for %zu nodes", path,
                 (size_t)hd.nodes);
        return NULL;
    }
    memcpy(h->tomb, base + hd.sect[S_TOMB].off, words * sizeof *h->tomb);
    if (!load_check_graph(h, &hd, path, err, errlen)) {
        hnsw_free(h);
        return NULL;
    }
    h->vis = try_calloc(h->n + 1, sizeof *h->vis);
    if (h->vis == NULL) {
        hnsw_free(h);
        snprintf(err, errlen, "cannot load %s: out of memory for %zu nodes", path,
                 (size_t)hd.nodes);
        return NULL;
    }
    h->viscap = (size_t)h->n + 1;
    if (meta != NULL)
        *meta = (struct hnsw_meta){hd.generation, hd.created_ms};
    return h;
}

int hnsw_vectors_to_memory(struct hnsw *h, char *err, size_t errlen)
{
    if (h->map == NULL || h->vmem != NULL || h->n0 == 0)
        return 0;
    size_t len = (size_t)h->n0 * h->vstride;
    void *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        snprintf(err, errlen, "cannot copy %zu MB of vectors into memory: %s", len >> 20,
                 strerror(errno));
        return -1;
    }
#ifdef MADV_HUGEPAGE
    /* Advice only: where transparent huge pages are off, the copy still
     * spares the searches the file's page faults. */
    (void)madvise(mem, len, MADV_HUGEPAGE);
#endif
    memcpy(mem, h->vec.map, len);
    h->vec.map = mem;
    h->vmem = mem;
    h->vmemlen = len;
    return 0;
}
