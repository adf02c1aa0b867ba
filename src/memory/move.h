/*
 * Moving a tenant's memories between backends. `memchat memory migrate`
 * copies a namespace, vectors and all, from one vector store to another;
 * `memchat memory reembed` rebuilds a namespace with the configured
 * embedder after a change of embedder, model or dimension.
 *
 * Both work a page at a time in id order and write a checkpoint to the
 * data file (table memory_moves) after every page, so a run stopped by
 * Ctrl-C, a server that went down or a crash resumes where it was when the
 * same command runs again. migrate never changes the source, and its
 * writes are upserts by id, so a page written twice changes nothing.
 * reembed first copies the namespace into the data file (memory_move_rows)
 * and embeds the copy there, the old namespace untouched; only then does it
 * remove the old namespace and write the new one from the copy. At every
 * moment each memory is in the store or in the data file, whatever fails.
 *
 * Neither writes history rows: the memories are the same ones. reembed
 * recomputes the tenant's document frequencies with the new embedder's
 * terms; migrate keeps them (same texts, same embedder).
 */
#ifndef MEMCHAT_MEMORY_MOVE_H
#define MEMCHAT_MEMORY_MOVE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "memory/manager.h"

struct db;
struct embedder;
struct vstore;

#define MOVE_BATCH_DEFAULT 256 /* memories per page */
#define MOVE_BATCH_MAX     10000
#define MOVE_IDENT_MAX     160 /* "embedder/model/dim" or a store name */

/* Called after each page: stage ("copying", "reading", "embedding",
 * "writing"), done of total memories. */
typedef void (*move_progress_fn)(void *ud, const char *stage, size_t done, size_t total);

struct move_opts {
    size_t batch;              /* memories per page; 0: MOVE_BATCH_DEFAULT */
    bool restart;              /* migrate: drop an unfinished migrate of another pair */
    bool force;                /* reembed: even when the namespace already has the
                                  embedder's identity (a model updated in place) */
    const atomic_bool *cancel; /* set: stop after the current page; NULL: never */
    move_progress_fn progress; /* NULL: not reported */
    void *ud;
};

/* What a run did, also when it failed or was cancelled (then done says
 * how far the checkpoint is). */
struct move_report {
    size_t total;                /* memories to move (counted when the move started) */
    size_t done;                 /* of them, moved so far, by this run and earlier ones */
    size_t resumed_from;         /* done when this run started (0: a fresh start) */
    bool resumed;                /* this run continued a checkpoint */
    bool nothing_to_do;          /* reembed: the namespace already has the embedder's identity */
    size_t source_count;         /* migrate: memories in the source at the end */
    size_t target_count;         /* memories in the target namespace at the end */
    size_t target_before;        /* migrate: memories the target had before (a merge) */
    char source[MOVE_IDENT_MAX]; /* migrate: the source store; reembed: the old identity */
    char target[MOVE_IDENT_MAX]; /* migrate: the target store; reembed: the new identity */
    bool remote;                 /* the failure came from a server (exit 3) */
};

/* Copies tenant's namespace from store from to store to (different
 * stores; the local one is on db). The target's namespace is created with
 * the source's embedder, model and dimension; one that exists with others
 * is MEMORY_ERR_MISMATCH; one that exists with the same is merged into
 * (ids it shares with the source are overwritten). A checkpoint of
 * another pair is MEMORY_ERR_INPUT unless o->restart. MEMORY_ERR_NOT_FOUND
 * when the source has no namespace; MEMORY_ERR_CANCELLED when o->cancel
 * stopped it. */
enum memory_status move_migrate(struct db *db, struct vstore *from, struct vstore *to,
                                const char *tenant, const struct move_opts *o,
                                struct move_report *out, char *err, size_t errlen);

/* Rebuilds tenant's namespace in store s (the local one on db) with
 * embedder e. A namespace that already has e's identity is left alone
 * (out->nothing_to_do) unless o->force. A text longer than e embeds is
 * MEMORY_ERR_INPUT before anything changes. A checkpoint whose new
 * identity is not e's is restarted with e while the old namespace still
 * exists, and refused (MEMORY_ERR_MISMATCH, naming both) once it is being
 * rewritten. */
enum memory_status move_reembed(struct db *db, struct vstore *s, struct embedder *e,
                                const char *tenant, const struct move_opts *o,
                                struct move_report *out, char *err, size_t errlen);

/* Removes tenant's checkpoints and reembed copy (purge); *removed counts
 * the copied memories removed. 0, or -1 with a message. */
int move_purge(struct db *db, const char *tenant, size_t *removed, char *err, size_t errlen);

#endif
