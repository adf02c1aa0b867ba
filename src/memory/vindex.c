/*
 * The namespace index of vindex.h. Both kinds keep a rowid -> position map
 * (open addressing; positions are vscan rows or HNSW node numbers). The
 * exact kind deletes by moving its last row into the hole (vscan's O(1)
 * delete) and keeps row -> rowid beside it; the HNSW kind keeps the rowid
 * as each node's label, deletes by tombstone, and replaces a vector by a
 * tombstone plus a new node (a graph cannot move a node in place), so
 * tombstones pile up until vindex_tidy() compacts them.
 */
#include "config.h"

#include "memory/vindex.h"

#include <stdio.h>
#include <string.h>

#include "memory/vscan.h"
#include "util/alloc.h"
#include "util/log.h"

/* A graph compacts once its tombstones reach this fraction (1/N) of its
 * nodes: they still cost routing work and memory. */
#define VINDEX_TIDY_DIVISOR 10

/* --- rowid -> row: open addressing, linear probing ----------------------- */

#define ROWMAP_EMPTY SIZE_MAX

struct rowmap {
    int64_t *keys;
    size_t *vals; /* ROWMAP_EMPTY marks a free slot */
    size_t cap;   /* a power of two, or 0 */
    size_t n;
};

static size_t rowmap_hash(int64_t key, size_t mask)
{
    uint64_t x = (uint64_t)key;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return (size_t)x & mask;
}

static void rowmap_free(struct rowmap *m)
{
    xfree(m->keys);
    xfree(m->vals);
    memset(m, 0, sizeof *m);
}

/* The row of key, or ROWMAP_EMPTY. */
static size_t rowmap_get(const struct rowmap *m, int64_t key)
{
    if (m->cap == 0)
        return ROWMAP_EMPTY;
    size_t mask = m->cap - 1;
    for (size_t i = rowmap_hash(key, mask);; i = (i + 1) & mask) {
        if (m->vals[i] == ROWMAP_EMPTY)
            return ROWMAP_EMPTY;
        if (m->keys[i] == key)
            return m->vals[i];
    }
}

static void rowmap_put(struct rowmap *m, int64_t key, size_t row);

/* Doubles the table (load stays at most one half). */
static void rowmap_grow(struct rowmap *m)
{
    struct rowmap old = *m;
    m->cap = old.cap ? old.cap * 2 : 64;
    m->keys = xreallocarray(NULL, m->cap, sizeof *m->keys);
    m->vals = xreallocarray(NULL, m->cap, sizeof *m->vals);
    for (size_t i = 0; i < m->cap; i++)
        m->vals[i] = ROWMAP_EMPTY;
    m->n = 0;
    for (size_t i = 0; i < old.cap; i++)
        if (old.vals[i] != ROWMAP_EMPTY)
            rowmap_put(m, old.keys[i], old.vals[i]);
    rowmap_free(&old);
}

static void rowmap_put(struct rowmap *m, int64_t key, size_t row)
{
    if ((m->n + 1) * 2 > m->cap)
        rowmap_grow(m);
    size_t mask = m->cap - 1;
    size_t i = rowmap_hash(key, mask);
    while (m->vals[i] != ROWMAP_EMPTY && m->keys[i] != key)
        i = (i + 1) & mask;
    if (m->vals[i] == ROWMAP_EMPTY)
        m->n++;
    m->keys[i] = key;
    m->vals[i] = row;
}

/* Removes key, shifting later entries of its probe run back so that
 * lookups never need tombstones. */
static void rowmap_del(struct rowmap *m, int64_t key)
{
    if (m->cap == 0)
        return;
    size_t mask = m->cap - 1;
    size_t i = rowmap_hash(key, mask);
    while (m->vals[i] != ROWMAP_EMPTY && m->keys[i] != key)
        i = (i + 1) & mask;
    if (m->vals[i] == ROWMAP_EMPTY)
        return;
    for (size_t j = i;;) {
        j = (j + 1) & mask;
        if (m->vals[j] == ROWMAP_EMPTY)
            break;
        size_t home = rowmap_hash(m->keys[j], mask);
        /* j may move to i when its home is not in the cyclic range (i, j]. */
        bool in_range = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_range) {
            m->keys[i] = m->keys[j];
            m->vals[i] = m->vals[j];
            i = j;
        }
    }
    m->vals[i] = ROWMAP_EMPTY;
    m->n--;
}

struct vindex {
    int dim;
    struct vindex_opts opts;
    struct vscan *vs; /* exact kind */
    struct hnsw *hn;  /* HNSW kind */
    int64_t *rowids;  /* exact kind: row -> rowid */
    size_t cap;
    struct rowmap map;       /* rowid -> row or node */
    struct vscan_hit *vhits; /* scratch for queries */
    struct hnsw_hit *hhits;
    size_t hits_cap;
    bool preload_tried; /* opts.preload: the copy was made (or failed) */
};

static struct vindex *vindex_alloc(int dim, const struct vindex_opts *o)
{
    struct vindex *ix = xcalloc(1, sizeof *ix);
    ix->dim = dim;
    if (o != NULL)
        ix->opts = *o;
    return ix;
}

struct vindex *vindex_new(int dim, const struct vindex_opts *o)
{
    struct vscan *vs = vscan_new(dim);
    if (vs == NULL)
        return NULL;
    struct vindex *ix = vindex_alloc(dim, o);
    ix->vs = vs;
    return ix;
}

struct vindex *vindex_new_hnsw(int dim, const struct vindex_opts *o, size_t reserve)
{
    struct hnsw *hn = hnsw_new(dim, &o->hnsw);
    if (hn == NULL)
        return NULL;
    if (reserve > 0)
        hnsw_reserve(hn, reserve);
    struct vindex *ix = vindex_alloc(dim, o);
    ix->hn = hn;
    return ix;
}

void vindex_free(struct vindex *ix)
{
    if (ix == NULL)
        return;
    vscan_free(ix->vs);
    hnsw_free(ix->hn);
    xfree(ix->rowids);
    rowmap_free(&ix->map);
    xfree(ix->vhits);
    xfree(ix->hhits);
    xfree(ix);
}

int vindex_dim(const struct vindex *ix)
{
    return ix->dim;
}

bool vindex_is_hnsw(const struct vindex *ix)
{
    return ix->hn != NULL;
}

size_t vindex_count(const struct vindex *ix)
{
    return ix->hn != NULL ? hnsw_nodes(ix->hn) - hnsw_deleted(ix->hn) : vscan_count(ix->vs);
}

size_t vindex_tombstones(const struct vindex *ix)
{
    return ix->hn != NULL ? hnsw_deleted(ix->hn) : 0;
}

size_t vindex_bytes(const struct vindex *ix)
{
    size_t map = ix->map.cap * (sizeof *ix->map.keys + sizeof *ix->map.vals);
    if (ix->hn != NULL)
        return hnsw_bytes(ix->hn) + map;
    return vscan_count(ix->vs) * vscan_bytes_per_row(ix->vs) + ix->cap * sizeof *ix->rowids + map;
}

static void exact_put(struct vindex *ix, int64_t rowid, const float *v)
{
    size_t row = rowmap_get(&ix->map, rowid);
    if (row != ROWMAP_EMPTY) {
        vscan_set(ix->vs, row, v);
        return;
    }
    row = vscan_add(ix->vs, v);
    if (row >= ix->cap) {
        ix->cap = ix->cap ? ix->cap * 2 : 256;
        if (ix->cap <= row)
            ix->cap = row + 1;
        ix->rowids = xreallocarray(ix->rowids, ix->cap, sizeof *ix->rowids);
    }
    ix->rowids[row] = rowid;
    rowmap_put(&ix->map, rowid, row);
}

void vindex_put(struct vindex *ix, int64_t rowid, const float *v)
{
    if (ix->vs != NULL) {
        exact_put(ix, rowid, v);
        return;
    }
    size_t node = rowmap_get(&ix->map, rowid);
    if (node != ROWMAP_EMPTY)
        hnsw_delete(ix->hn, (uint32_t)node);
    rowmap_put(&ix->map, rowid, hnsw_add(ix->hn, rowid, v));
}

void vindex_remove(struct vindex *ix, int64_t rowid)
{
    size_t row = rowmap_get(&ix->map, rowid);
    if (row == ROWMAP_EMPTY)
        return;
    rowmap_del(&ix->map, rowid);
    if (ix->hn != NULL) {
        hnsw_delete(ix->hn, (uint32_t)row);
        return;
    }
    size_t moved = vscan_remove_swap(ix->vs, row);
    if (moved != row) {
        ix->rowids[row] = ix->rowids[moved];
        rowmap_put(&ix->map, ix->rowids[row], row);
    }
}

/* Rebuilds the map from the graph's live nodes (after a load or a
 * compaction renumbered them). */
static void hnsw_map_rebuild(struct vindex *ix)
{
    rowmap_free(&ix->map);
    size_t n = hnsw_nodes(ix->hn);
    for (size_t i = 0; i < n; i++)
        if (!hnsw_is_deleted(ix->hn, (uint32_t)i))
            rowmap_put(&ix->map, hnsw_label(ix->hn, (uint32_t)i), i);
}

void vindex_tidy(struct vindex *ix)
{
    if (ix->hn == NULL)
        return;
    size_t dead = hnsw_deleted(ix->hn);
    if (dead == 0 || dead * VINDEX_TIDY_DIVISOR < hnsw_nodes(ix->hn))
        return;
    xfree(hnsw_compact(ix->hn));
    hnsw_map_rebuild(ix);
}

void vindex_to_hnsw(struct vindex *ix, vindex_progress_fn progress, void *ud)
{
    if (ix->hn != NULL)
        return;
    size_t n = vscan_count(ix->vs);
    struct hnsw *hn = hnsw_new(ix->dim, &ix->opts.hnsw);
    if (hn == NULL)
        return; /* parameters out of range: the configuration checks them */
    hnsw_reserve(hn, n);
    rowmap_free(&ix->map);
    for (size_t row = 0; row < n; row++) {
        rowmap_put(&ix->map, ix->rowids[row],
                   hnsw_add(hn, ix->rowids[row], vscan_row(ix->vs, row)));
        if (progress != NULL && ((row + 1) % 1024 == 0 || row + 1 == n))
            progress(ud, row + 1, n);
    }
    vscan_free(ix->vs);
    ix->vs = NULL;
    xfree(ix->rowids);
    ix->rowids = NULL;
    ix->cap = 0;
    ix->hn = hn;
}

/* The bound of positions a bitmap covers. */
static size_t vindex_positions(const struct vindex *ix)
{
    return ix->hn != NULL ? hnsw_nodes(ix->hn) : vscan_count(ix->vs);
}

uint64_t *vindex_allow_new(const struct vindex *ix)
{
    return try_calloc(vindex_positions(ix) / 64 + 1, sizeof(uint64_t));
}

void vindex_allow_add(const struct vindex *ix, uint64_t *allow, int64_t rowid)
{
    size_t pos = rowmap_get(&ix->map, rowid);
    if (pos != ROWMAP_EMPTY)
        allow[pos / 64] |= (uint64_t)1 << (pos % 64);
}

static void vindex_hits_reserve(struct vindex *ix, size_t k)
{
    if (k <= ix->hits_cap)
        return;
    ix->vhits = xreallocarray(ix->vhits, k, sizeof *ix->vhits);
    ix->hhits = xreallocarray(ix->hhits, k, sizeof *ix->hhits);
    ix->hits_cap = k;
}

/* MEMORY_HNSW_PRELOAD: the vectors of a loaded graph are copied at its
 * first search, not at load, so that a load that only checks or rebuilds
 * the graph (memchat memory index, stats) never pays for the copy.
 * Failing is not fatal: the mapping serves, more slowly, and the log says
 * why, once. */
static void vindex_preload(struct vindex *ix)
{
    if (!ix->opts.preload || ix->preload_tried)
        return;
    ix->preload_tried = true;
    char why[256];
    if (hnsw_vectors_to_memory(ix->hn, why, sizeof why) != 0)
        log_warn("HNSW index: %s; searching the mapped file instead", why);
}

size_t vindex_topk(struct vindex *ix, const float *q, size_t k, const uint64_t *allow,
                   struct vindex_hit *hits)
{
    size_t held = vindex_positions(ix);
    if (k > held)
        k = held;
    if (k == 0)
        return 0;
    vindex_hits_reserve(ix, k);
    if (ix->hn != NULL) {
        vindex_preload(ix);
        size_t ef = ix->opts.ef_search > k ? ix->opts.ef_search : k;
        size_t n = hnsw_search(ix->hn, q, k, ef, allow, ix->hhits, NULL);
        for (size_t i = 0; i < n; i++) {
            uint32_t node = ix->hhits[i].node;
            hits[i] = (struct vindex_hit){hnsw_label(ix->hn, node), ix->hhits[i].score,
                                          hnsw_vector(ix->hn, node)};
        }
        return n;
    }
    size_t n = vscan_topk(ix->vs, q, k, allow, ix->vhits);
    for (size_t i = 0; i < n; i++) {
        size_t row = ix->vhits[i].row;
        hits[i] = (struct vindex_hit){ix->rowids[row], ix->vhits[i].score, vscan_row(ix->vs, row)};
    }
    return n;
}

int vindex_save(const struct vindex *ix, const struct hnsw_meta *meta, const char *path, char *err,
                size_t errlen)
{
    if (ix->hn == NULL) {
        snprintf(err, errlen, "%s: only an HNSW index is saved", path);
        return -1;
    }
    return hnsw_save(ix->hn, meta, path, err, errlen);
}

struct vindex *vindex_load(const char *path, const struct vindex_opts *o, struct hnsw_meta *meta,
                           char *err, size_t errlen)
{
    struct hnsw *hn = hnsw_load(path, meta, err, errlen);
    if (hn == NULL)
        return NULL;
    struct vindex *ix = vindex_alloc(hnsw_dim(hn), o);
    ix->hn = hn;
    hnsw_params_get(hn, &ix->opts.hnsw);
    hnsw_map_rebuild(ix);
    return ix;
}

bool vindex_hnsw_params(const struct vindex *ix, struct hnsw_params *out)
{
    if (ix->hn == NULL)
        return false;
    hnsw_params_get(ix->hn, out);
    return true;
}
