/*
 * Memories waiting to be stored (schema.c, migration 4). When a turn's
 * exchange cannot be handed to the background worker (its queue is full)
 * or the store fails, the exchange is written here, in the turn's
 * transaction or the worker's, so no memory is lost; the background
 * worker retries the oldest rows with a growing delay until they are
 * stored. payload is the JSON the worker needs (the message, the reply,
 * metadata). One row per turn.
 */
#ifndef MEMCHAT_STORE_PENDING_H
#define MEMCHAT_STORE_PENDING_H

#include <stddef.h>
#include <stdint.h>

#include "memchat/event.h"
#include "util/ident.h"

struct db;

/* One waiting memory. */
struct pending_row {
    int64_t seq;
    char turn[MC_UUID_STRLEN + 1];
    char tenant[IDENT_MAX + 1];
    char user_id[IDENT_MAX + 1];
    char agent[IDENT_MAX + 1];
    char *payload; /* owned when read */
    int attempts;
    int64_t created_ms;
    int64_t next_ms; /* not retried before this Unix ms */
};

/* Adds (or, for a turn already waiting, keeps) one row; payload is
 * borrowed. 0 or -1 with a message. */
int pending_add(struct db *db, const struct pending_row *r, char *err, size_t errlen);
/* Up to max rows due at now_ms (next_ms <= now_ms), oldest first. Free
 * with pending_rows_free. 0 or -1. */
int pending_due(struct db *db, int64_t now_ms, size_t max, struct pending_row **out, size_t *n,
                char *err, size_t errlen);
void pending_rows_free(struct pending_row *rows, size_t n);
/* The row of turn into *out; the caller frees out->payload with xfree.
 * 0; 1 when there is none (already stored); -1 with a message. */
int pending_get_turn(struct db *db, const char *turn, struct pending_row *out, char *err,
                     size_t errlen);
/* The row of seq was stored: removes it. 0 or -1. */
int pending_done(struct db *db, int64_t seq, char *err, size_t errlen);
/* The row of seq failed again: counts the attempt, records the error
 * (never a secret: the caller passes a scrubbed message) and sets
 * next_ms. 0 or -1. */
int pending_failed(struct db *db, int64_t seq, const char *error, int64_t next_ms, char *err,
                   size_t errlen);
/* Rows waiting (for one tenant, or all when tenant is NULL); -1 on error. */
long long pending_count(struct db *db, const char *tenant);
/* The earliest next_ms of all rows, or -1 when none waits. */
int64_t pending_next_due(struct db *db);
/* Removes the tenant's rows (all, or only user's); *removed. 0 or -1. */
int pending_purge(struct db *db, const char *tenant, const char *user, size_t *removed, char *err,
                  size_t errlen);

#endif
