/*
 * One namespace's vectors in memory, addressed by the local store's
 * rowids: the exact scan of vscan.h, or, for a namespace above
 * MEMORY_HNSW_THRESHOLD, the HNSW graph of hnsw.h, which can be saved to a
 * file of index/ and mapped from it at the next start. The local store
 * (store_local.c) keeps one per namespace in its shared cache and decides
 * when to load, convert and save; this module only holds the vectors and
 * answers queries, so either kind answers the same calls.
 *
 * Not thread-safe: the store holds its cache entry's lock around every
 * call.
 */
#ifndef MEMCHAT_MEMORY_VINDEX_H
#define MEMCHAT_MEMORY_VINDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memory/hnsw.h"

struct vindex;

/* The HNSW settings (MEMORY_HNSW_*). */
struct vindex_opts {
    size_t hnsw_threshold;   /* memories above which a namespace wants HNSW; 0: never */
    struct hnsw_params hnsw; /* m, ef_construction, seed */
    size_t ef_search;        /* candidate list of a query (raised to k) */
    bool preload;            /* a loaded graph's vectors are copied into memory at its first
                                search (hnsw_vectors_to_memory); false: read from the mapping */
};

/* One result: a rowid, its score, and its vector (dim floats, valid until
 * the next change of the index). */
struct vindex_hit {
    int64_t rowid;
    float score;
    const float *vec;
};

/* Called while a graph is built: done of total vectors inserted. */
typedef void (*vindex_progress_fn)(void *ud, size_t done, size_t total);

/* An empty exact index of dim floats per vector (1..65536), or NULL when
 * dim is out of range. Free with vindex_free(). */
struct vindex *vindex_new(int dim, const struct vindex_opts *o);
/* An empty HNSW index with room for reserve vectors, or NULL when dim or
 * the parameters are out of range. Free with vindex_free(). */
struct vindex *vindex_new_hnsw(int dim, const struct vindex_opts *o, size_t reserve);
/* Frees ix; NULL is a no-op. */
void vindex_free(struct vindex *ix);

/* Floats per vector. */
int vindex_dim(const struct vindex *ix);
/* True when ix is an HNSW graph. */
bool vindex_is_hnsw(const struct vindex *ix);
/* Vectors held (tombstones not counted). */
size_t vindex_count(const struct vindex *ix);
/* Tombstones of an HNSW graph awaiting compaction (0 for an exact one). */
size_t vindex_tombstones(const struct vindex *ix);
/* Bytes held (vectors, graph or codes, maps; a mapped file counts). */
size_t vindex_bytes(const struct vindex *ix);

/* Adds rowid's vector, or replaces it when rowid is held. */
void vindex_put(struct vindex *ix, int64_t rowid, const float *v);
/* Removes rowid's vector; absent is a no-op. */
void vindex_remove(struct vindex *ix, int64_t rowid);
/* After a run of changes: compacts an HNSW graph whose tombstones reached
 * a tenth of its nodes. */
void vindex_tidy(struct vindex *ix);
/* Rebuilds an exact index as an HNSW graph of the same vectors (progress
 * may be NULL); an HNSW index is left as it is. */
void vindex_to_hnsw(struct vindex *ix, vindex_progress_fn progress, void *ud);

/* A zeroed bitmap for vindex_allow_add() (free with xfree()), or NULL when
 * memory runs out. */
uint64_t *vindex_allow_new(const struct vindex *ix);
/* Allows rowid in allow; a rowid ix does not hold is ignored. */
void vindex_allow_add(const struct vindex *ix, uint64_t *allow, int64_t rowid);
/* The k best vectors for q among those allowed (NULL: all), best first,
 * into hits (room for k); returns how many. Exact for an exact index; an
 * HNSW graph searches with max(ef_search, k) candidates and still returns
 * min(k, allowed) (hnsw.h). */
size_t vindex_topk(struct vindex *ix, const float *q, size_t k, const uint64_t *allow,
                   struct vindex_hit *hits);

/* Saves an HNSW index with meta to path (hnsw_save); -1 with a message for
 * an exact index or a failed write. */
int vindex_save(const struct vindex *ix, const struct hnsw_meta *meta, const char *path, char *err,
                size_t errlen);
/* Maps the HNSW index saved at path (hnsw_load), with o's ef_search and
 * threshold; NULL with a message (errno ENOENT when the file is missing).
 * Free with vindex_free(). */
struct vindex *vindex_load(const char *path, const struct vindex_opts *o, struct hnsw_meta *meta,
                           char *err, size_t errlen);
/* The parameters an HNSW index was built with; false for an exact one. */
bool vindex_hnsw_params(const struct vindex *ix, struct hnsw_params *out);

#endif
