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
#include "util/msg.h"

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
    o->preload = config_bool(cfg, CFG_MEMORY_HNSW_PRELOAD);
}

/* The remote stores' constructors, by name. */
static const struct {
    const char *name;
    struct vstore *(*make)(const struct config *cfg, char *err, size_t errlen);
} store_remotes[] = {
    {"pgvector", store_pgvector_new},
    {"qdrant", store_qdrant_new},
    {"pinecone", store_pinecone_new},
    {"weaviate", store_weaviate_new},
};

bool store_known(const char *name)
{
    if (name == NULL)
        return false;
    if (strcmp(name, "local") == 0)
        return true;
    for (size_t i = 0; i < sizeof store_remotes / sizeof store_remotes[0]; i++)
        if (strcmp(name, store_remotes[i].name) == 0)
            return true;
    return false;
}

struct vstore *store_new_named(const struct config *cfg, const char *name, struct db *db,
                               struct store_cache *cache, char *err, size_t errlen)
{
    if (name == NULL || *name == '\0' || strcmp(name, "local") == 0) {
        struct vindex_opts o;
        store_vindex_opts(cfg, &o);
        return store_local_new(db, cache, &o);
    }
    for (size_t i = 0; i < sizeof store_remotes / sizeof store_remotes[0]; i++)
        if (strcmp(name, store_remotes[i].name) == 0)
            return store_remotes[i].make(cfg, err, errlen);
    /* The configuration's enum accepts only the stores above. */
    msg_set(err, errlen, "VECTOR_DB_PROVIDER=%s: no such vector store (accepted: %s)", name,
            STORE_NAMES);
    return NULL;
}

struct vstore *store_new(const struct config *cfg, struct db *db, struct store_cache *cache,
                         char *err, size_t errlen)
{
    return store_new_named(cfg, config_str(cfg, CFG_VECTOR_DB_PROVIDER), db, cache, err, errlen);
}

void store_set_cancel(struct vstore *s, const atomic_bool *cancel)
{
    if (s != NULL && s->ops->set_cancel != NULL)
        s->ops->set_cancel(s, cancel);
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
