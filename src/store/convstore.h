/*
 * Conversations persisted in the data file (schema.c, migration 4): each
 * belongs to one tenant, user and agent and holds its messages in order,
 * one user message and one assistant reply per completed turn, so
 * `memchat ask --continue` and `--conversation ID` pick up where a
 * conversation stopped, and `memchat conversations` lists them. Every
 * function is a few statements on the caller's connection, inside the
 * caller's transaction when one is open (the turn worker appends an
 * exchange in the transaction of the turn's ledger row).
 */
#ifndef MEMCHAT_STORE_CONVSTORE_H
#define MEMCHAT_STORE_CONVSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memchat/event.h"
#include "util/ident.h"

struct db;

/* A conversation's row. */
struct conv_info {
    char id[MC_UUID_STRLEN + 1];
    char tenant[IDENT_MAX + 1];
    char user_id[IDENT_MAX + 1];
    char agent[IDENT_MAX + 1];
    char title[128]; /* the first message, cut at a UTF-8 boundary */
    int64_t created_ms, updated_ms;
    size_t turns; /* completed exchanges */
};

/* One message, owned by the array that holds it. */
struct conv_message {
    char *role; /* "user" or "assistant" */
    char *content;
    char turn[MC_UUID_STRLEN + 1];
    int64_t ts_ms;
};

/* Creates a conversation with a new UUIDv7 id written into id; title from
 * first_message (may be NULL). 0, or -1 with a message. */
int convstore_create(struct db *db, const char *tenant, const char *user, const char *agent,
                     const char *first_message, int64_t now_ms, char id[MC_UUID_STRLEN + 1],
                     char *err, size_t errlen);
/* Reads conversation id of tenant into *out. 0; 1 when there is none in
 * that tenant (another tenant's id is "none"); -1 with a message. */
int convstore_get(struct db *db, const char *tenant, const char *id, struct conv_info *out,
                  char *err, size_t errlen);
/* The most recently updated conversation of tenant and user. 0; 1 when
 * they have none; -1. */
int convstore_latest(struct db *db, const char *tenant, const char *user, struct conv_info *out,
                     char *err, size_t errlen);
/* Appends one exchange (the user's message and the reply) of turn to
 * conversation id and bumps its updated_ms. 0 or -1. */
int convstore_append(struct db *db, const char *id, const char *turn, const char *message,
                     const char *reply, int64_t now_ms, char *err, size_t errlen);
/* The last max_messages messages of conversation id (0: all), oldest
 * first. Free with convstore_messages_free. 0 or -1. */
int convstore_messages(struct db *db, const char *id, size_t max_messages,
                       struct conv_message **out, size_t *n, char *err, size_t errlen);
void convstore_messages_free(struct conv_message *m, size_t n);
/* The conversations of tenant (of user only when user is not NULL),
 * newest first, at most limit (0: all). Free with xfree. 0 or -1. */
int convstore_list(struct db *db, const char *tenant, const char *user, size_t limit,
                   struct conv_info **out, size_t *n, char *err, size_t errlen);
/* Removes conversation id of tenant with its messages. 0; 1 when there is
 * none; -1. */
int convstore_remove(struct db *db, const char *tenant, const char *id, char *err, size_t errlen);
/* Removes every conversation of tenant (of user only when not NULL);
 * *removed says how many. 0 or -1. */
int convstore_purge(struct db *db, const char *tenant, const char *user, size_t *removed, char *err,
                    size_t errlen);

#endif
