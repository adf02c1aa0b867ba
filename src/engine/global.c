/*
 * Process-wide set-up (mc_global_init): cJSON, SQLite and libcurl allocate
 * through util/alloc, so one seam sees every allocation of the process and
 * the fault-injection tests reach inside the libraries. SQLite accepts a
 * custom allocator only before it is first used, so this runs once, first,
 * from every program and test; pthread_once makes repeated calls return the
 * first call's result.
 */
#include "config.h"

#include "memchat/engine.h"

#include <cJSON.h>
#include <sodium.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>
#if HAVE_MALLOC_USABLE_SIZE
#include <malloc.h>
#endif

#include "net/http.h"
#include "util/alloc.h"

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static int global_result = -1;

#if HAVE_MALLOC_USABLE_SIZE
/* SQLite asks for the size of its allocations (for its memory statistics
 * and to use all of a block); the C library knows it. */
static void *global_sqlite_malloc(int n)
{
    return try_malloc(n > 0 ? (size_t)n : 0);
}

static void global_sqlite_free(void *p)
{
    xfree(p);
}

static void *global_sqlite_realloc(void *p, int n)
{
    return try_realloc(p, n > 0 ? (size_t)n : 0);
}

static int global_sqlite_size(void *p)
{
    return p != NULL ? (int)malloc_usable_size(p) : 0;
}
#else
/* Without malloc_usable_size, each block carries its size in an 8-byte
 * header (8 keeps SQLite's alignment). */
#define GLOBAL_HDR 8

static void *global_sqlite_malloc(int n)
{
    if (n < 0)
        return NULL;
    unsigned char *p = try_malloc((size_t)n + GLOBAL_HDR);
    if (p == NULL)
        return NULL;
    *(int64_t *)(void *)p = n;
    return p + GLOBAL_HDR;
}

static void global_sqlite_free(void *p)
{
    if (p != NULL)
        xfree((unsigned char *)p - GLOBAL_HDR);
}

static void *global_sqlite_realloc(void *p, int n)
{
    if (n < 0)
        return NULL;
    unsigned char *q = try_realloc((unsigned char *)p - GLOBAL_HDR, (size_t)n + GLOBAL_HDR);
    if (q == NULL)
        return NULL;
    *(int64_t *)(void *)q = n;
    return q + GLOBAL_HDR;
}

static int global_sqlite_size(void *p)
{
    return p != NULL ? (int)*(int64_t *)(void *)((unsigned char *)p - GLOBAL_HDR) : 0;
}
#endif

static int global_sqlite_roundup(int n)
{
    return (n + 7) & ~7;
}

static int global_sqlite_init(void *app)
{
    (void)app;
    return SQLITE_OK;
}

static void global_sqlite_shutdown(void *app)
{
    (void)app;
}

static const sqlite3_mem_methods global_sqlite_mem = {
    .xMalloc = global_sqlite_malloc,
    .xFree = global_sqlite_free,
    .xRealloc = global_sqlite_realloc,
    .xSize = global_sqlite_size,
    .xRoundup = global_sqlite_roundup,
    .xInit = global_sqlite_init,
    .xShutdown = global_sqlite_shutdown,
    .pAppData = NULL,
};

static void global_init_once(void)
{
    /* Building JSON aborts on want of memory unless a fallible section
     * (parsers of outside text, util/json.h) asks for a NULL instead. */
    cJSON_Hooks hooks = {.malloc_fn = alloc_json, .free_fn = xfree};
    cJSON_InitHooks(&hooks);
    /* libsodium picks its implementations once (BLAKE2b for cache keys). */
    if (sodium_init() < 0)
        return;
    /* libcurl too, before any handle exists (it cannot switch later). */
    if (http_global_init() != 0)
        return;
    /* SQLite copies the table; a non-const copy matches the type it reads. */
    sqlite3_mem_methods mem = global_sqlite_mem;
    if (sqlite3_config(SQLITE_CONFIG_MALLOC, &mem) != SQLITE_OK)
        return; /* SQLite was already in use: too late to route it */
    if (sqlite3_initialize() != SQLITE_OK)
        return;
    global_result = 0;
}

int mc_global_init(void)
{
    pthread_once(&global_once, global_init_once);
    return global_result;
}
