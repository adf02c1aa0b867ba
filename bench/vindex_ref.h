/*
 * The reference vector indexes of bench_vindex behind a small C interface:
 * FAISS's IndexFlatIP (exact inner-product scan) and hnswlib's
 * HierarchicalNSW<float> over InnerProductSpace. Both are C++ libraries and
 * FAISS 1.7.3 as Debian ships it has no C API, so vindex_ref.cpp wraps
 * them; every C++ exception is caught there and comes back as -1 or NULL
 * with a message in err. When configure did not find a library
 * (HAVE_FAISS, HAVE_HNSWLIB), its functions still link: ref_available_*()
 * says 0 and the constructors fail with "not built".
 *
 * Neither wrapper is thread-safe; bench_vindex calls them from one thread.
 */
#ifndef MEMCHAT_BENCH_VINDEX_REF_H
#define MEMCHAT_BENCH_VINDEX_REF_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- FAISS IndexFlatIP ---------------------------------------------- */

/* An exact inner-product index over dim floats per vector. */
struct ref_flat;

/* 1 when FAISS was built in, else 0. */
int ref_available_faiss(void);
/* FAISS's version ("1.7.3"), or "not built". Static storage. */
const char *ref_faiss_version(void);
/* Sets OpenMP's thread count for FAISS's later calls (1 = single thread). */
void ref_set_threads(int n);
/* An empty index, or NULL with a message in err. Free with ref_flat_free(). */
struct ref_flat *ref_flat_new(int dim, char *err, size_t errlen);
/* Appends n vectors (n * dim floats, copied into the index, ids follow
 * insertion order from 0). 0, or -1 with a message in err. */
int ref_flat_add(struct ref_flat *f, size_t n, const float *x, char *err, size_t errlen);
/* The k best ids and their float32 scores of each of nq queries (nq * dim
 * floats) into ids and scores (room for nq * k each, row-major), best
 * first; one call, so nq >= 20 takes FAISS's BLAS path. 0, or -1 with a
 * message in err. */
int ref_flat_search(struct ref_flat *f, size_t nq, const float *q, int k, int64_t *ids,
                    float *scores, char *err, size_t errlen);
/* Frees f; NULL is a no-op. */
void ref_flat_free(struct ref_flat *f);

/* ---- hnswlib HierarchicalNSW ---------------------------------------- */

/* An HNSW graph ranked by inner product (hnswlib distance 1 - ip). */
struct ref_hnsw;

/* 1 when hnswlib was built in, else 0. */
int ref_available_hnswlib(void);
/* What the preprocessor saw when vindex_ref.cpp included hnswlib, e.g.
 * "__SSE__ yes, __AVX__ no, __AVX512F__ no: SSE kernels". Static storage. */
const char *ref_hnswlib_simd(void);
/* An empty graph with room for max_elements vectors of dim floats, M links
 * per upper-level node, ef_construction efc and the level generator seeded
 * with seed; NULL with a message in err. Free with ref_hnsw_free(). */
struct ref_hnsw *ref_hnsw_new(int dim, size_t max_elements, int m, int efc, uint64_t seed,
                              char *err, size_t errlen);
/* Inserts v (dim floats, copied) with label. 0, or -1 with a message. */
int ref_hnsw_add(struct ref_hnsw *h, const float *v, int64_t label, char *err, size_t errlen);
/* Sets the search's candidate list (hnswlib raises it to k itself). */
void ref_hnsw_set_ef(struct ref_hnsw *h, size_t ef);
/* The k nearest labels and their inner products (1 - hnswlib's distance),
 * best first, into ids and scores (room for k). Returns how many, or -1
 * when hnswlib threw. */
int ref_hnsw_search(struct ref_hnsw *h, const float *q, size_t k, int64_t *ids, float *scores);
/* The bytes hnswlib's allocations hold, computed from its own fields with
 * the sizes in hnswalg.h: level 0 blocks (links, vector, label) for
 * max_elements, the upper-level link lists of every node by its level,
 * the per-node pointer, level and lock arrays, the update locks and the
 * visited lists. Excludes malloc's own overhead. */
size_t ref_hnsw_bytes(const struct ref_hnsw *h);
/* Frees h; NULL is a no-op. */
void ref_hnsw_free(struct ref_hnsw *h);

#ifdef __cplusplus
}
#endif

#endif
