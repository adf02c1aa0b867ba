/*
 * Memory jobs: what `memchat memory …`, `memchat conversations` and
 * `memchat purge` ask of the engine, run on the turn worker with its
 * memory manager and data-file connection. Each job answers with the items
 * of one `result` event (include/memchat/engine.h lists the kinds and
 * fields) or with an error code and message.
 */
#ifndef MEMCHAT_CLIENT_MEMJOB_H
#define MEMCHAT_CLIENT_MEMJOB_H

#include <stdatomic.h>
#include <stddef.h>

#include "memchat/engine.h"
#include "memchat/error.h"

struct cJSON;
struct cache;
struct config;
struct db;
struct memory_manager;
struct store_cache;

/* What a memory job may use; borrowed. */
struct memjob_env {
    const struct config *cfg;
    struct memory_manager *memory; /* NULL: the memory store could not start */
    struct db *db;
    const char *trace_dir;           /* purge: traces/ of the data dir; NULL: no traces kept */
    struct cache *cache;             /* purge: the process's response cache; NULL: none */
    struct store_cache *store_cache; /* migrate: the process's index cache (NULL: private) */
    const atomic_bool *cancel;       /* migrate, reembed: stop at the next checkpoint */
    /* index, migrate, reembed: called as work advances, with the stage
     * ("index", "copying", ...) (NULL: not reported). */
    void (*progress)(void *ud, const char *stage, size_t done, size_t total);
    void *progress_ud;
};

/* Runs job (already validated by the engine: ids, UTF-8). On success
 * returns MC_ERR_NONE with the result kind in *kind and the items in
 * *items (the caller frees them, or hands them to emit_result). On
 * failure returns the error (MC_ERR_USAGE/INPUT/CONFIG exit 2, MC_ERR_IO
 * exit 1) with a message naming what and where. */
enum mc_error memjob_run(const struct memjob_env *env, const struct mc_memory_job *job,
                         const char **kind, struct cJSON **items, char *err, size_t errlen);

#endif
