/*
 * Vector stores: where a tenant's memories live. One interface for the
 * `local` store of the embedded defaults (memory/store_local.c: rows in
 * memchat.db, FTS5 for keywords, an in-memory exact index per namespace)
 * and the remote ones of a later issue (pgvector, Qdrant, Pinecone,
 * Weaviate), each with its own multi-tenancy. Every operation names its
 * tenant, and an implementation must never return, change or count a
 * memory of another tenant (the isolation property test checks it).
 *
 * A namespace (one tenant's memories) records the embedder, model and
 * dimension its vectors were made with, and a generation number bumped by
 * every write, so a cached index knows when another connection or process
 * changed it. A record's fields are those of DESIGN.md's identifier
 * contract: id (UUIDv7, unique per tenant), text, user_id, agent, kind,
 * created_at (Unix ms), metadata (a JSON object), plus its vector.
 *
 * A store object is used by one thread at a time; the engine makes one per
 * worker, on that worker's data-file connection, and lets them share one
 * index cache (struct store_cache) so a namespace is held in memory once.
 */
#ifndef MEMCHAT_MEMORY_STORE_H
#define MEMCHAT_MEMORY_STORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memchat/event.h"
#include "util/ident.h"

struct config;
struct db;
struct vindex_opts;
struct mem_filter;

#define MEM_KIND_MAX 32 /* bytes of a kind ("note", "exchange", ...) */

/* One memory. Strings marked owned belong to the record; free a record's
 * contents with mem_record_clear(). */
struct mem_record {
    char id[MC_UUID_STRLEN + 1];
    char *text; /* owned, valid UTF-8 */
    char user_id[IDENT_MAX + 1];
    char agent[IDENT_MAX + 1];
    char kind[MEM_KIND_MAX + 1];
    int64_t created_at; /* Unix ms */
    int64_t updated_at; /* Unix ms: the last refresh; created_at when never refreshed */
    char *metadata;     /* owned JSON object text; NULL means {} */
    float *vector;      /* owned, dim floats; NULL when not loaded */
    int dim;            /* floats in vector: set by reads; on upsert 0 trusts the caller
                           to pass the namespace's dimension, else it must equal it */
    double score;       /* query: inner product with the query; keyword: bm25 relevance
                           (higher is better); 0 otherwise */
};

/* A list of records, owned: free with mem_records_free(). */
struct mem_records {
    struct mem_record *v;
    size_t n;
};

/* A namespace's identity and state. */
struct store_ns {
    char embedder[32];
    char model[64];
    int dim;
    int64_t generation;
    size_t count;
    int64_t created_ms;
};

/* Figures for `memchat memory stats`. */
struct store_stats {
    size_t count;           /* memories */
    size_t users;           /* distinct user_id */
    int64_t oldest, newest; /* created_at; 0 when empty */
    size_t text_bytes;      /* sum of text lengths */
    size_t bytes_on_disk;   /* estimate: rows, vectors and keyword index */
    size_t bytes_in_memory; /* the in-memory index; 0 when not loaded */
};

/* The state of a namespace's vector index (`memchat memory index`). */
struct store_index_info {
    bool hnsw;               /* searched through an HNSW graph (else an exact scan) */
    bool wanted;             /* count is above the threshold */
    bool built;              /* this call built the graph from the rows */
    size_t count;            /* memories in the namespace */
    size_t tombstones;       /* deleted nodes still in the graph */
    size_t threshold;        /* MEMORY_HNSW_THRESHOLD (0: never) */
    int m, ef_construction;  /* of the graph in use, else the configured ones */
    size_t ef_search;        /* configured */
    int64_t generation;      /* the namespace's */
    int64_t file_generation; /* the index file's before this call; -1: none */
    size_t caught_up;        /* changes replayed onto the file's graph from the log */
    size_t bytes_in_memory;  /* the index held by this process */
    size_t bytes_on_disk;    /* the index file, after this call */
    char path[4096];         /* the index file ("" when the store keeps none) */
    char note[512];          /* why there is no graph, or what the file had wrong */
};

/* What `memchat doctor` learns from a remote store's server. */
struct store_health {
    int fixed_dim;    /* a dimension the server imposes (Pinecone's index); 0 when none */
    char server[128]; /* what the server says it is ("qdrant 1.12.1"), "" when it does not */
    char where[256];  /* the URL, host or database checked, without credentials */
};

/* Called while an index is built: done of total vectors. */
typedef void (*store_progress_fn)(void *ud, size_t done, size_t total);

struct vstore;

/* What a store implements. Every function returns 0 on success, or -1
 * with a message in err naming the store, the tenant and what failed;
 * ns_get also returns 1 when the namespace does not exist. Writes run in
 * the caller's transaction when one is open on the store's connection
 * (the local store), else in their own. */
struct vstore_ops {
    int (*ns_get)(struct vstore *s, const char *tenant, struct store_ns *out, char *err,
                  size_t errlen);
    /* Creates the namespace with ns's embedder, model and dim; no-op when
     * it exists with the same three, -1 naming both when it differs. */
    int (*ns_create)(struct vstore *s, const char *tenant, const struct store_ns *ns, char *err,
                     size_t errlen);
    /* Inserts the records, or replaces those whose id exists in the
     * tenant (all their fields and vector). Vectors are required and of
     * the namespace's dimension. */
    int (*upsert)(struct vstore *s, const char *tenant, const struct mem_record *recs, size_t n,
                  char *err, size_t errlen);
    /* The k records with the largest inner product with q (dim floats)
     * among those matching f (NULL: all), best first, score set, vectors
     * loaded. */
    int (*query)(struct vstore *s, const char *tenant, const float *q, size_t k,
                 const struct mem_filter *f, struct mem_records *out, char *err, size_t errlen);
    /* The k records best matching text by keywords (bm25), best first,
     * score set (higher better), vectors loaded. NULL in stores without
     * keyword search. Text is user input: quoting is the store's job. */
    int (*keyword)(struct vstore *s, const char *tenant, const char *text, size_t k,
                   const struct mem_filter *f, struct mem_records *out, char *err, size_t errlen);
    /* Records matching f in id order, starting after after_id (NULL: from
     * the first), at most limit; vectors loaded when with_vectors. */
    int (*list)(struct vstore *s, const char *tenant, const struct mem_filter *f,
                const char *after_id, size_t limit, bool with_vectors, struct mem_records *out,
                char *err, size_t errlen);
    /* Deletes the records with these ids (missing ones are skipped);
     * *deleted is how many were. */
    int (*delete_ids)(struct vstore *s, const char *tenant, const char *const *ids, size_t n,
                      size_t *deleted, char *err, size_t errlen);
    /* Deletes the records matching f; f NULL deletes the namespace with
     * all its records (purge). */
    int (*delete_filter)(struct vstore *s, const char *tenant, const struct mem_filter *f,
                         size_t *deleted, char *err, size_t errlen);
    /* Records matching f (NULL: all). */
    int (*count)(struct vstore *s, const char *tenant, const struct mem_filter *f, size_t *n,
                 char *err, size_t errlen);
    int (*stats)(struct vstore *s, const char *tenant, struct store_stats *out, char *err,
                 size_t errlen);
    /* Every tenant that has a namespace, sorted; free with
     * store_names_free(). */
    int (*namespaces)(struct vstore *s, char ***tenants, size_t *n, char *err, size_t errlen);
    /* Brings tenant's vector index up to date (rebuild: from the rows,
     * whatever exists) and describes it; progress may be NULL. NULL in
     * stores whose server keeps the index. ns_get's 1 when the namespace
     * does not exist. */
    int (*index)(struct vstore *s, const char *tenant, bool rebuild, store_progress_fn progress,
                 void *ud, struct store_index_info *out, char *err, size_t errlen);
    /* Checks that the server answers and accepts the credentials (one
     * cheap read) and fills out. NULL in the local store. */
    int (*health)(struct vstore *s, struct store_health *out, char *err, size_t errlen);
    /* Makes later calls end early (failing, last_fail REST_CANCELLED) while
     * *cancel is set; NULL: never. NULL in stores that do not wait on a
     * server's HTTP API (local; pgvector, whose statements time out). */
    void (*set_cancel)(struct vstore *s, const atomic_bool *cancel);
    void (*free)(struct vstore *s);
};

struct vstore {
    const struct vstore_ops *ops;
    char name[32]; /* VECTOR_DB_PROVIDER: "local", ... */
    bool remote;   /* a server's store: its failures are a network error (exit 3) */
    /* How the last failed operation failed (enum rest_fail of net/rest.h;
     * pgvector maps libpq's failures onto it); REST_OK (0) after a success
     * or in the local store. */
    int last_fail;
    void *impl;
};

/* The in-memory indexes of the local store, shared by the stores of one
 * process (each worker's), guarded by its own lock. Free with
 * store_cache_free() after the stores that use it. */
struct store_cache;
struct store_cache *store_cache_new(void);
void store_cache_free(struct store_cache *c);

/* The local store on db (the caller's connection, which must outlive the
 * store) with the shared cache (NULL: a private one) and the HNSW settings
 * o (NULL: exact scans only); index files go to index/ beside the data
 * file. At most one local store per connection: it learns when the
 * connection's transactions end through SQLite's commit and rollback
 * hooks. Free with store_free(). */
struct vstore *store_local_new(struct db *db, struct store_cache *cache,
                               const struct vindex_opts *o);
/* The local store's HNSW settings from cfg (MEMORY_HNSW_*). */
void store_vindex_opts(const struct config *cfg, struct vindex_opts *o);
/* The store VECTOR_DB_PROVIDER names, on db and cache for the local one;
 * NULL with a message naming the variable. Free with store_free(). */
struct vstore *store_new(const struct config *cfg, struct db *db, struct store_cache *cache,
                         char *err, size_t errlen);
/* The remote stores, configured from cfg (their variables in
 * docs/configuration.md). Each connects lazily: construction fails only on
 * a malformed setting, with a message naming the variable; the server is
 * first asked by the first operation (or health). Free with store_free(). */
struct vstore *store_pgvector_new(const struct config *cfg, char *err, size_t errlen);
struct vstore *store_qdrant_new(const struct config *cfg, char *err, size_t errlen);
struct vstore *store_pinecone_new(const struct config *cfg, char *err, size_t errlen);
struct vstore *store_weaviate_new(const struct config *cfg, char *err, size_t errlen);
/* The store called name (a VECTOR_DB_PROVIDER value), configured from cfg
 * otherwise (`memory migrate` opens a store besides the configured one). */
struct vstore *store_new_named(const struct config *cfg, const char *name, struct db *db,
                               struct store_cache *cache, char *err, size_t errlen);
/* The stores VECTOR_DB_PROVIDER accepts, for messages. */
#define STORE_NAMES "local, pgvector, qdrant, pinecone, weaviate"
/* True when name is one of STORE_NAMES. */
bool store_known(const char *name);
/* Lets *cancel (borrowed; NULL: none) end s's calls early (set_cancel). */
void store_set_cancel(struct vstore *s, const atomic_bool *cancel);
/* Frees s; NULL is a no-op. */
void store_free(struct vstore *s);

/* Frees a record's owned strings and vector and zeroes it. */
void mem_record_clear(struct mem_record *r);
/* Frees every record and the array; zeroes *rs. NULL is a no-op. */
void mem_records_free(struct mem_records *rs);
/* Frees what namespaces() returned. */
void store_names_free(char **names, size_t n);

#endif
