/*
 * Exact nearest-neighbour scan over a namespace's vectors held in memory:
 * inner products of unit float32 vectors (cosine similarity), top k by a
 * bounded heap. The scan runs at the memory-bandwidth limit in two passes:
 * a first pass over int8 codes of the vectors (a quarter of the bytes)
 * computes each score within a known error bound, and only the vectors
 * whose bound reaches the running k-th best are rescored exactly (the
 * products of the float32 vectors summed in double precision in index
 * order, which no rounding of the kernels can reorder), so the result is
 * the exact top k, identical to a plain reference loop. The dot products
 * use AVX2/FMA where the CPU has them (chosen once at run time) and
 * portable C elsewhere.
 */
#ifndef MEMCHAT_MEMORY_VSCAN_H
#define MEMCHAT_MEMORY_VSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A growable matrix of unit vectors of one dimension, with their int8
 * codes. Rows are addressed by index 0..n-1. */
struct vscan;

/* One result: a row and its exact inner product with the query. */
struct vscan_hit {
    size_t row;
    float score;
};

/* An empty matrix of dim floats per row (1..65536). Free with
 * vscan_free(). */
struct vscan *vscan_new(int dim);
/* Frees m; NULL is a no-op. */
void vscan_free(struct vscan *m);
/* Appends one vector (dim floats); returns its row. */
size_t vscan_add(struct vscan *m, const float *v);
/* Replaces row's vector. */
void vscan_set(struct vscan *m, size_t row, const float *v);
/* Moves the last row into row and shrinks by one (O(1) delete); returns
 * the index the moved row had (n-1), so the caller can update its maps. */
size_t vscan_remove_swap(struct vscan *m, size_t row);
/* Rows held. */
size_t vscan_count(const struct vscan *m);
/* Floats per row. */
int vscan_dim(const struct vscan *m);
/* Row's float32 vector, valid until the next change. */
const float *vscan_row(const struct vscan *m, size_t row);
/* Bytes held per row (float32 + codes + bookkeeping), for stats. */
size_t vscan_bytes_per_row(const struct vscan *m);

/* The k rows with the largest inner product with q (dim floats), best
 * first (ties by lower row), written into hits (room for k); returns how
 * many (min(k, rows allowed)). allow, when not NULL, is a bitmap over rows
 * (bit row%64 of allow[row/64]) of the rows that may be returned. */
size_t vscan_topk(const struct vscan *m, const float *q, size_t k, const uint64_t *allow,
                  struct vscan_hit *hits);

/* What one scan did: rows pass 1 read (the allowed ones) and rows pass 2
 * scored exactly; for benchmarks, and for tests that the first pass
 * prunes. */
struct vscan_stats {
    size_t scanned;
    size_t rescored;
};
/* vscan_topk, also filling *stats when stats is not NULL. */
size_t vscan_topk_stats(const struct vscan *m, const float *q, size_t k, const uint64_t *allow,
                        struct vscan_hit *hits, struct vscan_stats *stats);

/* The inner product of two vectors of n floats, with the dispatched
 * kernel (the same one the scan uses). */
float vscan_dot(const float *a, const float *b, size_t n);
/* A dot product kernel: the inner product of two vectors of n floats. */
typedef float (*vscan_dot_fn)(const float *a, const float *b, size_t n);
/* The kernel vscan_dot() uses now (honouring vscan_force_portable()), for
 * callers computing many products without its per-call dispatch. */
vscan_dot_fn vscan_dot_kernel(void);
/* The kernel in use: "avx2" or "portable". */
const char *vscan_kernel(void);
/* Forces the portable kernel (tests compare both); false restores the
 * detected one. Not thread-safe: call before scans start. */
void vscan_force_portable(bool on);

#endif
