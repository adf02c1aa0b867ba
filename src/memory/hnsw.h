/*
 * An HNSW graph (hierarchical navigable small world, Malkov and Yashunin)
 * over unit float32 vectors, ranked by inner product (cosine similarity),
 * for namespaces too large for the exact scan of vscan.h. Nodes are
 * numbered 0..n-1 in insertion order and carry the caller's int64 label
 * (the local store's rowid). Deleting a node leaves a tombstone that still
 * routes searches but is never returned; hnsw_compact() removes the
 * tombstones, relinks their neighbours and renumbers the nodes.
 *
 * A search may be restricted to the nodes of an allow bitmap; it still
 * returns min(k, allowed live nodes) results: a very selective filter is
 * answered by an exact scan of the allowed nodes, and a graph search that
 * finds fewer than k is completed the same way.
 *
 * An index is saved to one file (written beside it, synced and renamed, so
 * a reader sees the old file or the new one) and loaded by mapping the file
 * privately: loading reads the link tables to check them, the vectors are
 * paged in as searches touch them, and later inserts and relinks go to
 * private memory, never to the file. Every link, level and count of a
 * loaded file is checked, so a damaged file is refused with a message, not
 * followed.
 *
 * Not thread-safe: one index is used by one thread at a time (searches use
 * scratch memory inside the index); the local store holds its cache
 * entry's lock around every call.
 */
#ifndef MEMCHAT_MEMORY_HNSW_H
#define MEMCHAT_MEMORY_HNSW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hnsw;

/* How the graph is built. */
struct hnsw_params {
    int m;               /* links per node on the upper levels, 2..100; level 0 has 2m */
    int ef_construction; /* candidate list while inserting, m..4096 */
    uint64_t seed;       /* draws the levels: same seed and inserts, same graph */
};

/* One result: a node and its inner product with the query. */
struct hnsw_hit {
    uint32_t node;
    float score;
};

/* The caller's stamps, saved and loaded with the index verbatim (the local
 * store's namespace generation and creation time). */
struct hnsw_meta {
    int64_t generation;
    int64_t created_ms;
};

/* An empty index of dim floats per vector (1..65536), or NULL when dim or
 * p is out of range. Free with hnsw_free(). */
struct hnsw *hnsw_new(int dim, const struct hnsw_params *p);
/* Frees h (and unmaps its file); NULL is a no-op. */
void hnsw_free(struct hnsw *h);
/* Makes room for n nodes in all, so a bulk build does not regrow. */
void hnsw_reserve(struct hnsw *h, size_t n);
/* Inserts v (dim floats, copied) with label; returns its node number.
 * Aborts through alloc_die past 2^32 - 2 nodes or when memory runs out. */
uint32_t hnsw_add(struct hnsw *h, int64_t label, const float *v);
/* Marks node deleted (a tombstone); deleting twice is a no-op. */
void hnsw_delete(struct hnsw *h, uint32_t node);
/* True when node is a tombstone. */
bool hnsw_is_deleted(const struct hnsw *h, uint32_t node);
/* Nodes held, tombstones included (node numbers are below this). */
size_t hnsw_nodes(const struct hnsw *h);
/* Tombstones held. */
size_t hnsw_deleted(const struct hnsw *h);
/* Node's label. */
int64_t hnsw_label(const struct hnsw *h, uint32_t node);
/* Node's vector (dim floats), valid until the next change of h. */
const float *hnsw_vector(const struct hnsw *h, uint32_t node);
/* Floats per vector. */
int hnsw_dim(const struct hnsw *h);
/* The parameters h was built with. */
void hnsw_params_get(const struct hnsw *h, struct hnsw_params *out);
/* Bytes h holds: its allocations plus the mapped file. */
size_t hnsw_bytes(const struct hnsw *h);

/* The k live nodes with the largest inner product with q (dim floats),
 * best first, into hits (room for k); ef is the search's candidate list
 * (raised to k). allow, when not NULL, is a bitmap over node numbers (bit
 * node%64 of allow[node/64], hnsw_nodes()/64+1 words) of the nodes that
 * may be returned. Returns min(k, live allowed nodes) (see the file
 * comment). stats, when not NULL, receives what the search did. */
struct hnsw_search_stats {
    size_t visited; /* distances computed */
    bool exact;     /* answered (or completed) by an exact scan */
};
size_t hnsw_search(struct hnsw *h, const float *q, size_t k, size_t ef, const uint64_t *allow,
                   struct hnsw_hit *hits, struct hnsw_search_stats *stats);

/* Removes every tombstone: each live node that linked to one is relinked
 * among its other neighbours and the tombstone's, and the nodes are
 * renumbered in their old order. Returns remap (the caller frees it
 * with xfree()): remap[old] = the new number, or UINT32_MAX for a removed node;
 * it has as many entries as hnsw_nodes() had before the call. */
uint32_t *hnsw_compact(struct hnsw *h);

/* Writes h and meta to path atomically (a temporary file beside it, fsync, rename, fsync of
 * the directory). 0, or -1 with a message naming path in err. */
int hnsw_save(const struct hnsw *h, const struct hnsw_meta *meta, const char *path, char *err,
              size_t errlen);
/* Maps the index saved at path: NULL with a message in err when the file
 * is missing (errno ENOENT is left for the caller to tell apart), of
 * another format or version, or damaged. *meta receives the stamps. */
struct hnsw *hnsw_load(const char *path, struct hnsw_meta *meta, char *err, size_t errlen);
/* Copies the vectors of a loaded file's nodes out of the mapping into
 * anonymous memory, on transparent huge pages where the kernel allows: a
 * search then takes no page faults and few TLB misses on them, which at a
 * million vectors of 4 KB is most of the tail latency (docs/benchmarks.md),
 * for the vectors' size in private memory and the time to copy them. 0 (also
 * when nothing is mapped or it was done), or -1 with err set when the memory
 * cannot be had: the index then keeps reading the mapping. */
int hnsw_vectors_to_memory(struct hnsw *h, char *err, size_t errlen);

#endif
