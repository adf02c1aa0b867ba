/*
 * The history of a tenant's memories (schema.c, migration 4): one row per
 * add, refresh, import and delete, saying when, which user and agent, and
 * what changed, as a small JSON object that never holds the memory's text
 * (forgetting forgets). `memchat memory history` reads it; purge removes
 * it. Every function is a statement on the caller's connection, inside
 * the caller's transaction when one is open.
 */
#ifndef MEMCHAT_STORE_MEMHIST_H
#define MEMCHAT_STORE_MEMHIST_H

#include <stddef.h>
#include <stdint.h>

struct db;

/* One row. Strings are borrowed on insert, owned (free with
 * memhist_rows_free) when read. */
struct memhist_row {
    int64_t seq;
    int64_t ts_ms;
    char *tenant;
    char *memory_id;
    char *op; /* "add", "refresh", "import", "delete" */
    char *user_id;
    char *agent;
    char *detail; /* JSON object text; NULL on insert means {} */
};

/* Appends one row (seq is assigned). 0, or -1 with a message naming the
 * file; an op outside the four is refused. */
int memhist_add(struct db *db, const struct memhist_row *r, char *err, size_t errlen);
/* The tenant's rows, newest first, at most limit (0: all), only those with
 * seq < before when before > 0 (paging). *rows is NULL when there are
 * none. 0 or -1. */
int memhist_list(struct db *db, const char *tenant, int64_t before, size_t limit,
                 struct memhist_row **rows, size_t *n, char *err, size_t errlen);
/* Frees rows read by memhist_list. */
void memhist_rows_free(struct memhist_row *rows, size_t n);
/* Removes the tenant's rows (all, or only user's when user is not NULL);
 * *removed says how many. 0 or -1. */
int memhist_purge(struct db *db, const char *tenant, const char *user, size_t *removed, char *err,
                  size_t errlen);

#endif
