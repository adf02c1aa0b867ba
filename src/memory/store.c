/*
 * The store-independent half of memory/store.h: choosing the store that
 * VECTOR_DB_PROVIDER names, freeing stores, and freeing the records and
 * name lists that every store's operations hand out. The stores themselves
 * live in their own files (memory/store_local.c for the embedded default;
 * store_pgvector.c, store_qdrant.c, store_pinecone.c and store_weaviate.c
 * for the servers), so adding one touches only store_new() here.
 */
#include "config.h"

#include "memory/store.h"

#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "config/vars.h"
#include "memory/vindex.h"
#include "util/alloc.h"

/* Every graph draws its levels from the same seed, so the same rows give
 * the same graph in every process (and in tests). */
#define STORE_HNSW_SEED 0x6d656d63686174ULL

void store_vindex_opts(const struct config *cfg, struct vindex_opts *o)
{
    memset(o, 0, sizeof *o);
    o->hnsw_threshold = (size_t)config_int(cfg, CFG_MEMORY_HNSW_THRESHOLD);
    o->hnsw.m = (int)config_int(cfg, CFG_MEMORY_HNSW_M);
    o->hnsw.ef_construction = (int)config_int(cfg, CFG_MEMORY_HNSW_EF_CONSTRUCTION);
    o->hnsw.seed = STORE_HNSW_SEED;
    o->ef_search = (size_t)config_int(cfg, CFG_MEMORY_HNSW_EF_SEARCH);
}

struct vstore *store_new(const struct config *cfg, struct db *db, struct store_cache *cache,
                         char *err, size_t errlen)
{
    const char *provider = config_str(cfg, CFG_VECTOR_DB_PROVIDER);
    if (provider == NULL || *provider == '\0' || strcmp(provider, "local") == 0) {
        struct vindex_opts o;
        store_vindex_opts(cfg, &o);
        return store_local_new(db, cache, &o);
    }
    if (strcmp(provider, "pgvector") == 0)
        return store_pgvector_new(cfg, err, errlen);
    if (strcmp(provider, "qdrant") == 0)
        return store_qdrant_new(cfg, err, errlen);
    if (strcmp(provider, "pinecone") == 0)
        return store_pinecone_new(cfg, err, errlen);
    if (strcmp(provider, "weaviate") == 0)
        return store_weaviate_new(cfg, err, errlen);
    /* The configuration's enum accepts only the stores above. */
    if (err != NULL && errlen > 0)
        snprintf(err, errlen,
                 "VECTOR_DB_PROVIDER=%s: no such vector store (accepted: local, pgvector, qdrant, "
                 "pinecone, weaviate)",
                 provider);
    return NULL;
}

void store_free(struct vstore *s)
{
    if (s == NULL)
        return;
    s->ops->free(s);
}

void mem_record_clear(struct mem_record *r)
{
    if (r == NULL)
        return;
    xfree(r->text);
    xfree(r->metadata);
    xfree(r->vector);
    memset(r, 0, sizeof *r);
}

void mem_records_free(struct mem_records *rs)
{
    if (rs == NULL)
        return;
    for (size_t i = 0; i < rs->n; i++)
        mem_record_clear(&rs->v[i]);
    xfree(rs->v);
    rs->v = NULL;
    rs->n = 0;
}

void store_names_free(char **names, size_t n)
{
    if (names == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        xfree(names[i]);
    xfree(names);
}
