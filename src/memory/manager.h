/*
 * The memory manager: a tenant's memories as the original client offered
 * them — add_conversation, retrieve_context, search_by_metadata,
 * delete_memories, get_stats — over one embedder and one vector store.
 *
 * Adding embeds the text as a document (split into chunks of at most
 * MEMORY_MAX_BYTES at sentence or word boundaries when longer), and a text
 * whose nearest stored memory of the same user is more similar than
 * MEMORY_DEDUP_THRESHOLD refreshes that memory (its text, metadata and
 * updated_at) instead of adding a copy. Every add, refresh and delete
 * updates the tenant's document frequencies and history (store/memhist.h)
 * in the same transaction as the rows, on the local store.
 *
 * Retrieval embeds the query, weighted by the tenant's document
 * frequencies, and ranks by one of three methods:
 *   similarity: the k nearest by inner product;
 *   mmr: fetch_k nearest, then greedily the one maximising
 *        (1-d)*sim(q,x) - d*max sim(x,kept), d = MEMORY_MMR_DIVERSITY;
 *   hybrid: fetch_k by vector and fetch_k by keywords (bm25), fused
 *        (MEMORY_HYBRID_FUSION: weighted cosine and normalised bm25, or
 *        weighted reciprocal ranks), then MMR with the fused score,
 *        rescaled to [0,1], in place of sim(q,x).
 * Every candidate is returned with all its scores and whether it was kept,
 * so front ends can show why a memory was or was not recalled.
 *
 * A namespace made with another embedder, model or dimension than the
 * configured one is refused with MEMORY_ERR_MISMATCH naming both, for
 * every operation (turns then run without memory).
 */
#ifndef MEMCHAT_MEMORY_MANAGER_H
#define MEMCHAT_MEMORY_MANAGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memory/store.h"

struct config;
struct db;
struct embedder;
struct mem_filter;
struct cJSON;

/* What went wrong, so callers can map it to an exit code or a
 * memory.skipped reason. */
enum memory_status {
    MEMORY_OK = 0,
    MEMORY_ERR_INPUT,     /* bad text, id, filter, metadata: exit 2 */
    MEMORY_ERR_MISMATCH,  /* the namespace's embedder/dimension differs: exit 2,
                            memory.skipped reason dimension_mismatch */
    MEMORY_ERR_NOT_FOUND, /* no memory with that id */
    MEMORY_ERR_EMBED,     /* the embedder failed: reason embedder_down */
    MEMORY_ERR_STORE,     /* the store failed: reason store_down */
    MEMORY_ERR_CANCELLED, /* a long job (migrate, reembed) stopped at a checkpoint */
};

enum memory_method { MEMORY_SIMILARITY, MEMORY_MMR, MEMORY_HYBRID };

/* How hybrid fuses the vector and keyword rankings: weighted scores
 * (cosine and bm25 over the query's best bm25), or reciprocal ranks. */
enum memory_fusion { MEMORY_FUSION_SCORE, MEMORY_FUSION_RRF };

/* Settings, normally from the configuration (memory_settings_from_config). */
struct memory_settings {
    enum memory_method method; /* MEMORY_RETRIEVAL_METHOD */
    size_t k;                  /* MEMORY_RETRIEVAL_K */
    size_t fetch_k;            /* MEMORY_FETCH_K; 0 means 4*k */
    double diversity;          /* MEMORY_MMR_DIVERSITY */
    enum memory_fusion fusion; /* MEMORY_HYBRID_FUSION */
    double keyword_weight;     /* MEMORY_HYBRID_WEIGHT, 0..1 */
    double dedup_threshold;    /* MEMORY_DEDUP_THRESHOLD; > 1 disables */
    size_t max_bytes;          /* MEMORY_MAX_BYTES: chunk size */
    bool user_scope;           /* MEMORY_SCOPE=user */
    /* MEMORY_MIN_SIMILARITY: a candidate whose similarity to the query is
     * below this is never kept, however it ranks (an unrelated memory is
     * noise in the prompt); NAN or -1 keeps everything. */
    double min_similarity;
};

struct memory_manager;

/* One memory to add. Strings are borrowed. */
struct memory_add {
    const char *tenant, *user, *agent; /* valid ids; required */
    const char *kind;                  /* NULL: "note" */
    const char *text;                  /* valid UTF-8, not empty */
    const char *metadata;              /* a JSON object, or NULL */
    const char *id;      /* import: keep this UUID (refused when not one); NULL: new */
    int64_t created_at;  /* import: keep it; 0: now */
    const float *vector; /* import: keep it (renormalised); NULL: embed */
    size_t vector_len;   /* floats in vector: refused unless the embedder's dim */
    bool no_dedup;       /* import: never refresh a near-duplicate */
};

/* What one add did. */
struct memory_added {
    char id[MC_UUID_STRLEN + 1]; /* the memory (the first chunk's when split) */
    bool refreshed;              /* an existing memory was refreshed, not added */
    double similarity;           /* refreshed: the similarity that decided */
    size_t chunks;               /* pieces stored (1 unless split) */
};

/* One candidate of a retrieval. */
struct memory_hit {
    struct mem_record rec; /* vector loaded */
    double vector;         /* inner product with the query; NAN when not ranked by it */
    double keyword;        /* bm25 relevance (hybrid); NAN otherwise */
    double fused;          /* the fused score (hybrid); NAN otherwise */
    double mmr;            /* the MMR score when picked (mmr, hybrid); NAN otherwise */
    double score;          /* the score the method ranked by */
    bool kept;             /* among the k returned */
};

/* A retrieval's answer: candidates, kept ones first in rank order, then
 * the rest by score. Free with memory_result_free(). */
struct memory_result {
    struct memory_hit *hits;
    size_t n;
    size_t n_kept;
    enum memory_method method;
    double latency_ms; /* embed + search + rank */
};

/* The settings of cfg. */
void memory_settings_from_config(const struct config *cfg, struct memory_settings *out);
/* "similarity", "mmr", "hybrid". */
const char *memory_method_name(enum memory_method m);
/* Parses a method name; -1 when unknown. */
int memory_method_parse(const char *name, enum memory_method *out);
/* The memory.skipped reason of a status: "dimension_mismatch",
 * "embedder_down", "store_down", ... */
const char *memory_status_reason(enum memory_status st);

/* A manager over embedder e and store s (both taken over: freed by
 * memory_free, also on failure) on data file db (history and document
 * frequencies; the caller's connection, outliving the manager). NULL with
 * a message on failure. */
struct memory_manager *memory_new(const struct memory_settings *set, struct embedder *e,
                                  struct vstore *s, struct db *db, char *err, size_t errlen);
/* The manager the configuration describes (embedder_new + store_new). */
struct memory_manager *memory_new_from_config(const struct config *cfg, struct db *db,
                                              struct store_cache *cache, char *err, size_t errlen);
/* Frees m; NULL is a no-op. */
void memory_free(struct memory_manager *m);
/* The embedder and store in use (borrowed). */
struct embedder *memory_embedder(struct memory_manager *m);
struct vstore *memory_store(struct memory_manager *m);

/* True when st (MEMORY_ERR_EMBED or MEMORY_ERR_STORE) came from a remote
 * embedder or store whose last operation failed (not from the data file). */
bool memory_failure_remote(struct memory_manager *m, enum memory_status st);
/* Checks that tenant's namespace, if any, matches the embedder.
 * MEMORY_OK, or MEMORY_ERR_MISMATCH with a message naming both (and what
 * to do), or MEMORY_ERR_STORE. */
enum memory_status memory_check(struct memory_manager *m, const char *tenant, char *err,
                                size_t errlen);

/* Adds one memory (creating the namespace on first use). */
enum memory_status memory_add(struct memory_manager *m, const struct memory_add *a,
                              struct memory_added *out, char *err, size_t errlen);
/* Adds many in one transaction (import): all or none. out has n entries. */
enum memory_status memory_add_batch(struct memory_manager *m, const struct memory_add *a, size_t n,
                                    struct memory_added *out, char *err, size_t errlen);
/* add_conversation: stores one exchange as a memory of kind "exchange",
 * text "User: <message>\nAssistant: <reply>". */
enum memory_status memory_add_conversation(struct memory_manager *m, const char *tenant,
                                           const char *user, const char *agent, const char *message,
                                           const char *reply, const char *metadata,
                                           struct memory_added *out, char *err, size_t errlen);

/* retrieve_context: the memories of tenant most relevant to query. k 0
 * and method -1 mean the settings'; filter may be NULL; user, when the
 * settings say user scope, restricts to that user's memories (NULL: no
 * restriction). */
enum memory_status memory_retrieve(struct memory_manager *m, const char *tenant, const char *user,
                                   const char *query, size_t k, int method,
                                   const struct mem_filter *filter, struct memory_result *out,
                                   char *err, size_t errlen);
void memory_result_free(struct memory_result *r);

/* search_by_metadata: up to k records matching filter, in id (time)
 * order after after_id (NULL: from the start); vectors when with_vectors
 * (export). */
enum memory_status memory_list(struct memory_manager *m, const char *tenant,
                               const struct mem_filter *filter, const char *after_id, size_t k,
                               bool with_vectors, struct mem_records *out, char *err,
                               size_t errlen);

/* delete_memories: by id (id not NULL; MEMORY_ERR_NOT_FOUND when absent)
 * or by filter (filter not NULL), recording who deleted (user, agent).
 * *deleted says how many. */
enum memory_status memory_delete(struct memory_manager *m, const char *tenant, const char *id,
                                 const struct mem_filter *filter, const char *user,
                                 const char *agent, size_t *deleted, char *err, size_t errlen);
/* Removes the tenant's memories (all, or user's only when user is not
 * NULL), their frequencies and history. *deleted says how many. */
enum memory_status memory_purge(struct memory_manager *m, const char *tenant, const char *user,
                                size_t *deleted, char *err, size_t errlen);

/* get_stats: a JSON object {tenant, embedder, model, dim, count, users,
 * oldest, newest, generation, text_bytes, bytes_on_disk, bytes_in_memory,
 * bytes_per_memory} for tenant, or, tenant NULL, an array of them for every
 * namespace. Caller frees with cJSON_Delete. */
enum memory_status memory_stats(struct memory_manager *m, const char *tenant, struct cJSON **out,
                                char *err, size_t errlen);

/* Brings tenant's vector index up to date (rebuild: builds it from the
 * rows) and describes it in *out; progress (may be NULL) is called while a
 * graph is built. MEMORY_ERR_NOT_FOUND when the tenant has no memories,
 * MEMORY_ERR_INPUT when the store keeps no index of its own. */
enum memory_status memory_index(struct memory_manager *m, const char *tenant, bool rebuild,
                                store_progress_fn progress, void *ud, struct store_index_info *out,
                                char *err, size_t errlen);

/* Removes tenant's document frequencies, inside the caller's transaction
 * on db (reembed, before counting the texts again). 0, or -1 with err. */
int memory_df_reset(struct db *db, const char *tenant, char *err, size_t errlen);
/* Adds the n texts' terms under embedder e to tenant's document
 * frequencies, inside the caller's transaction. 0, or -1 with err. */
int memory_df_count(struct db *db, const struct embedder *e, const char *tenant,
                    const char *const *texts, size_t n, char *err, size_t errlen);

/* A memory as the JSON object of search output and export: id, text,
 * user_id, agent, kind, created_at, metadata (an object), plus score and
 * scores {vector, keyword, fused, mmr} (null when NAN) when hit is not
 * NULL, plus vector (an array of dim numbers, the record holding no
 * length) when with_vector and the vector is loaded. Caller frees. */
struct cJSON *memory_record_json(const struct mem_record *r, const struct memory_hit *hit,
                                 bool with_vector, int dim);
/* Parses one import line (a JSON object that needs only "text"; id must
 * be a UUID; user_id and agent valid ids; created_at a non-negative
 * integer; metadata an object; vector an array of numbers) into a (its
 * strings and vector point into *hold, which the caller frees with
 * cJSON_Delete, and *vec, freed with xfree). 0, or -1 with a message
 * naming the field. Has no side effects: front ends may call it to check
 * a file before submitting it. */
int memory_parse_import_line(const char *line, struct memory_add *a, struct cJSON **hold,
                             float **vec, size_t *vec_len, char *err, size_t errlen);

#endif
