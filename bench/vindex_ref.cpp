/*
 * The C++ side of bench_vindex's references (the interface and its
 * contracts are in vindex_ref.h): FAISS's IndexFlatIP and hnswlib's
 * HierarchicalNSW<float> with InnerProductSpace, called exactly as their
 * documentation shows, with nothing tuned. Every entry point catches C++
 * exceptions, since one must never unwind into C frames. This file is
 * compiled with the project's optimisation flags and no -march, so
 * hnswlib's SIMD choice (made by its header from __SSE__/__AVX__/
 * __AVX512F__) is the one ref_hnswlib_simd() reports.
 */
#include "config.h"

#include "vindex_ref.h"

#include <cstdio>
#include <exception>
#include <mutex>

#ifdef HAVE_FAISS
#include <faiss/IndexFlat.h>
#include <omp.h>
#endif
#ifdef HAVE_HNSWLIB
#ifdef __SANITIZE_ADDRESS__
/* hnswlib's SSE path prefetches through *(datal + j + 1), one entry past a
 * link list (nmslib/hnswlib issue 107, PR 459): harmless in a release build,
 * a heap-buffer-overflow under AddressSanitizer. The sanitized build checks
 * everything else with hnswlib's manual SIMD off; its figures mean nothing
 * anyway. */
#define NO_MANUAL_VECTORIZATION 1
#endif
#include <hnswlib/hnswlib.h>
#endif

/* Writes "where: what" into err (an exception's message, or a reason). */
static void ref_err(char *err, size_t errlen, const char *where, const char *what)
{
    if (err != nullptr && errlen > 0)
        std::snprintf(err, errlen, "%s: %s", where, what);
}

/* ---- FAISS ------------------------------------------------------------ */

#ifdef HAVE_FAISS
struct ref_flat {
    faiss::IndexFlatIP index;
    explicit ref_flat(int dim) : index(dim)
    {
    }
};

extern "C" int ref_available_faiss(void)
{
    return 1;
}

extern "C" const char *ref_faiss_version(void)
{
#define REF_STR2(x) #x
#define REF_STR(x)  REF_STR2(x)
    return REF_STR(FAISS_VERSION_MAJOR) "." REF_STR(FAISS_VERSION_MINOR) "." REF_STR(
        FAISS_VERSION_PATCH);
}

extern "C" void ref_set_threads(int n)
{
    omp_set_num_threads(n);
}

extern "C" struct ref_flat *ref_flat_new(int dim, char *err, size_t errlen)
{
    try {
        return new ref_flat(dim);
    } catch (const std::exception &e) {
        ref_err(err, errlen, "faiss::IndexFlatIP", e.what());
    } catch (...) {
        ref_err(err, errlen, "faiss::IndexFlatIP", "unknown exception");
    }
    return nullptr;
}

extern "C" int ref_flat_add(struct ref_flat *f, size_t n, const float *x, char *err, size_t errlen)
{
    try {
        f->index.add(static_cast<faiss::Index::idx_t>(n), x);
        return 0;
    } catch (const std::exception &e) {
        ref_err(err, errlen, "faiss::IndexFlatIP::add", e.what());
    } catch (...) {
        ref_err(err, errlen, "faiss::IndexFlatIP::add", "unknown exception");
    }
    return -1;
}

extern "C" int ref_flat_search(struct ref_flat *f, size_t nq, const float *q, int k, int64_t *ids,
                               float *scores, char *err, size_t errlen)
{
    static_assert(sizeof(faiss::Index::idx_t) == sizeof(int64_t), "FAISS ids are 64-bit");
    try {
        f->index.search(static_cast<faiss::Index::idx_t>(nq), q, k, scores,
                        reinterpret_cast<faiss::Index::idx_t *>(ids));
        return 0;
    } catch (const std::exception &e) {
        ref_err(err, errlen, "faiss::IndexFlatIP::search", e.what());
    } catch (...) {
        ref_err(err, errlen, "faiss::IndexFlatIP::search", "unknown exception");
    }
    return -1;
}

extern "C" void ref_flat_free(struct ref_flat *f)
{
    delete f;
}
#else
struct ref_flat {
    int unused;
};

extern "C" int ref_available_faiss(void)
{
    return 0;
}

extern "C" const char *ref_faiss_version(void)
{
    return "not built";
}

extern "C" void ref_set_threads(int n)
{
    (void)n;
}

extern "C" struct ref_flat *ref_flat_new(int dim, char *err, size_t errlen)
{
    (void)dim;
    ref_err(err, errlen, "faiss", "not built (configure found no faiss/IndexFlat.h)");
    return nullptr;
}

extern "C" int ref_flat_add(struct ref_flat *f, size_t n, const float *x, char *err, size_t errlen)
{
    (void)f, (void)n, (void)x;
    ref_err(err, errlen, "faiss", "not built");
    return -1;
}

extern "C" int ref_flat_search(struct ref_flat *f, size_t nq, const float *q, int k, int64_t *ids,
                               float *scores, char *err, size_t errlen)
{
    (void)f, (void)nq, (void)q, (void)k, (void)ids, (void)scores;
    ref_err(err, errlen, "faiss", "not built");
    return -1;
}

extern "C" void ref_flat_free(struct ref_flat *f)
{
    (void)f;
}
#endif

/* ---- hnswlib ---------------------------------------------------------- */

extern "C" const char *ref_hnswlib_simd(void)
{
    return "__SSE__ "
#ifdef __SSE__
           "yes"
#else
           "no"
#endif
           ", __AVX__ "
#ifdef __AVX__
           "yes"
#else
           "no"
#endif
           ", __AVX512F__ "
#ifdef __AVX512F__
           "yes"
#else
           "no"
#endif
           ": hnswlib's "
#if defined(NO_MANUAL_VECTORIZATION)
           "scalar kernels (NO_MANUAL_VECTORIZATION: sanitizer build)"
#elif defined(__AVX512F__)
           "AVX-512 kernels (when the CPU has them)"
#elif defined(__AVX__)
           "AVX kernels (when the CPU has them)"
#elif defined(__SSE__)
           "SSE kernels"
#else
           "scalar kernels"
#endif
        ;
}

#ifdef HAVE_HNSWLIB
struct ref_hnsw {
    hnswlib::InnerProductSpace space;
    hnswlib::HierarchicalNSW<float> graph;
    ref_hnsw(int dim, size_t max_elements, int m, int efc, uint64_t seed)
        : space(static_cast<size_t>(dim)),
          graph(&space, max_elements, static_cast<size_t>(m), static_cast<size_t>(efc),
                static_cast<size_t>(seed))
    {
    }
};

extern "C" int ref_available_hnswlib(void)
{
    return 1;
}

extern "C" struct ref_hnsw *ref_hnsw_new(int dim, size_t max_elements, int m, int efc,
                                         uint64_t seed, char *err, size_t errlen)
{
    try {
        return new ref_hnsw(dim, max_elements, m, efc, seed);
    } catch (const std::exception &e) {
        ref_err(err, errlen, "hnswlib::HierarchicalNSW", e.what());
    } catch (...) {
        ref_err(err, errlen, "hnswlib::HierarchicalNSW", "unknown exception");
    }
    return nullptr;
}

extern "C" int ref_hnsw_add(struct ref_hnsw *h, const float *v, int64_t label, char *err,
                            size_t errlen)
{
    try {
        h->graph.addPoint(v, static_cast<hnswlib::labeltype>(label));
        return 0;
    } catch (const std::exception &e) {
        ref_err(err, errlen, "hnswlib::HierarchicalNSW::addPoint", e.what());
    } catch (...) {
        ref_err(err, errlen, "hnswlib::HierarchicalNSW::addPoint", "unknown exception");
    }
    return -1;
}

extern "C" void ref_hnsw_set_ef(struct ref_hnsw *h, size_t ef)
{
    h->graph.setEf(ef);
}

extern "C" int ref_hnsw_search(struct ref_hnsw *h, const float *q, size_t k, int64_t *ids,
                               float *scores)
{
    try {
        auto top = h->graph.searchKnn(q, k);
        /* A max-heap on distance: the worst comes out first. */
        int n = static_cast<int>(top.size());
        for (int i = n - 1; i >= 0; i--) {
            ids[i] = static_cast<int64_t>(top.top().second);
            scores[i] = 1.0f - top.top().first;
            top.pop();
        }
        return n;
    } catch (...) {
        return -1;
    }
}

extern "C" size_t ref_hnsw_bytes(const struct ref_hnsw *h)
{
    const hnswlib::HierarchicalNSW<float> &g = h->graph;
    size_t cap = g.max_elements_;
    size_t bytes = cap * g.size_data_per_element_; /* level 0: links, vector, label */
    bytes += cap * sizeof(void *);                 /* linkLists_ */
    bytes += cap * sizeof(int);                    /* element_levels_ */
    bytes += cap * sizeof(std::mutex);             /* link_list_locks_ */
    bytes += hnswlib::HierarchicalNSW<float>::max_update_element_locks * sizeof(std::mutex);
    bytes += cap * sizeof(hnswlib::vl_type); /* one visited list: one thread searches */
    for (size_t i = 0; i < g.cur_element_count; i++)
        if (g.element_levels_[i] > 0)
            bytes += g.size_links_per_element_ * static_cast<size_t>(g.element_levels_[i]);
    return bytes;
}

extern "C" void ref_hnsw_free(struct ref_hnsw *h)
{
    delete h;
}
#else
struct ref_hnsw {
    int unused;
};

extern "C" int ref_available_hnswlib(void)
{
    return 0;
}

extern "C" struct ref_hnsw *ref_hnsw_new(int dim, size_t max_elements, int m, int efc,
                                         uint64_t seed, char *err, size_t errlen)
{
    (void)dim, (void)max_elements, (void)m, (void)efc, (void)seed;
    ref_err(err, errlen, "hnswlib", "not built (configure found no hnswlib/hnswlib.h)");
    return nullptr;
}

extern "C" int ref_hnsw_add(struct ref_hnsw *h, const float *v, int64_t label, char *err,
                            size_t errlen)
{
    (void)h, (void)v, (void)label;
    ref_err(err, errlen, "hnswlib", "not built");
    return -1;
}

extern "C" void ref_hnsw_set_ef(struct ref_hnsw *h, size_t ef)
{
    (void)h, (void)ef;
}

extern "C" int ref_hnsw_search(struct ref_hnsw *h, const float *q, size_t k, int64_t *ids,
                               float *scores)
{
    (void)h, (void)q, (void)k, (void)ids, (void)scores;
    return -1;
}

extern "C" size_t ref_hnsw_bytes(const struct ref_hnsw *h)
{
    (void)h;
    return 0;
}

extern "C" void ref_hnsw_free(struct ref_hnsw *h)
{
    (void)h;
}
#endif
