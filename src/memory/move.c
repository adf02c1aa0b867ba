/*
 * memory/move.h: migrate and reembed, page by page, with a checkpoint in
 * the data file after each page.
 *
 * A checkpoint is one memory_moves row per (tenant, kind): the phase, the
 * last memory id the phase finished (cursor), and done of total. migrate
 * has one phase, "copy". reembed has four: "read" copies the namespace's
 * records into memory_move_rows; "embed" fills their vectors with the new
 * embedder; "swap" recounts the document frequencies, removes the old
 * namespace and creates the new one; "write" upserts the copy into the new
 * namespace. When the local store is written, the page and its checkpoint
 * share one transaction on the data file; a remote store's write comes
 * first and its checkpoint after, so a crash between them repeats one
 * page, which the upsert by id makes harmless.
 */
#include "config.h"

#include "memory/move.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "memory/embed.h"
#include "memory/store.h"
#include "store/db.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/ident.h"
#include "util/msg.h"

/* The checkpoint row. */
struct mv_state {
    const char *kind; /* "migrate" or "reembed" */
    char source[MOVE_IDENT_MAX];
    char target[MOVE_IDENT_MAX];
    char phase[16];
    char cursor[MC_UUID_STRLEN + 1];
    int64_t done, total, started_ms;
};

/* What one run works with. */
struct mv {
    struct db *db;
    const char *tenant;
    const char *what; /* "migrate" or "reembed", for messages */
    const struct move_opts *o;
    size_t batch;
    struct move_report *out;
    struct mv_state st;
};

static const char mv_get_sql[] =
    "SELECT source, target, phase, cursor, done, total, started_ms FROM memory_moves"
    " WHERE tenant = ?1 AND kind = ?2";
static const char mv_put_sql[] =
    "INSERT OR REPLACE INTO memory_moves"
    " (tenant, kind, source, target, phase, cursor, done, total, started_ms, updated_ms)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
static const char mv_drop_sql[] = "DELETE FROM memory_moves WHERE tenant = ?1 AND kind = ?2";
static const char mv_rows_drop_sql[] = "DELETE FROM memory_move_rows WHERE tenant = ?1";
static const char mv_rows_put_sql[] =
    "INSERT OR REPLACE INTO memory_move_rows"
    " (tenant, id, user_id, agent, kind, created_at, updated_at, text, metadata, vector)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, NULL)";
static const char mv_rows_page_sql[] =
    "SELECT id, user_id, agent, kind, created_at, updated_at, text, metadata, vector"
    " FROM memory_move_rows WHERE tenant = ?1 AND id > ?2 ORDER BY id LIMIT ?3";
static const char mv_rows_vec_sql[] =
    "UPDATE memory_move_rows SET vector = ?3 WHERE tenant = ?1 AND id = ?2";
static const char mv_rows_count_sql[] = "SELECT count(*) FROM memory_move_rows WHERE tenant = ?1";
static const char mv_rows_unvec_sql[] =
    "UPDATE memory_move_rows SET vector = NULL WHERE tenant = ?1";

/* ---- the checkpoint ---------------------------------------------------- */

/* "what of tenant T: doing in PATH: SQLite's message". */
static int mv_sql_fail(struct mv *v, sqlite3_stmt *st, const char *doing, char *err, size_t errlen)
{
    msg_set(err, errlen, "memory %s of tenant %s: %s in %s: %s", v->what, v->tenant, doing,
            db_path(v->db), sqlite3_errmsg(db_handle(v->db)));
    sqlite3_finalize(st);
    return -1;
}

static void mv_copy_col(char *dst, size_t cap, sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(dst, cap, "%s", t != NULL ? (const char *)t : "");
}

/* Reads the checkpoint into v->st: 0 found, 1 none, -1 on failure. */
static int mv_state_get(struct mv *v, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db_handle(v->db), mv_get_sql, -1, &st, NULL) != SQLITE_OK)
        return mv_sql_fail(v, st, "reading the checkpoint", err, errlen);
    sqlite3_bind_text(st, 1, v->tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, v->st.kind, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        sqlite3_finalize(st);
        return 1;
    }
    if (rc != SQLITE_ROW)
        return mv_sql_fail(v, st, "reading the checkpoint", err, errlen);
    mv_copy_col(v->st.source, sizeof v->st.source, st, 0);
    mv_copy_col(v->st.target, sizeof v->st.target, st, 1);
    mv_copy_col(v->st.phase, sizeof v->st.phase, st, 2);
    mv_copy_col(v->st.cursor, sizeof v->st.cursor, st, 3);
    v->st.done = sqlite3_column_int64(st, 4);
    v->st.total = sqlite3_column_int64(st, 5);
    v->st.started_ms = sqlite3_column_int64(st, 6);
    sqlite3_finalize(st);
    return 0;
}

/* Writes v->st (inside the caller's transaction, if any). */
static int mv_state_put(struct mv *v, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db_handle(v->db), mv_put_sql, -1, &st, NULL) != SQLITE_OK)
        return mv_sql_fail(v, st, "writing the checkpoint", err, errlen);
    sqlite3_bind_text(st, 1, v->tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, v->st.kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, v->st.source, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, v->st.target, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, v->st.phase, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, v->st.cursor, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, v->st.done);
    sqlite3_bind_int64(st, 8, v->st.total);
    sqlite3_bind_int64(st, 9, v->st.started_ms);
    sqlite3_bind_int64(st, 10, clock_wall_ms());
    if (sqlite3_step(st) != SQLITE_DONE)
        return mv_sql_fail(v, st, "writing the checkpoint", err, errlen);
    sqlite3_finalize(st);
    return 0;
}

/* Runs sql binding ?1 tenant and ?2 kind (when the statement has it). */
static int mv_exec(struct mv *v, const char *sql, const char *doing, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db_handle(v->db), sql, -1, &st, NULL) != SQLITE_OK)
        return mv_sql_fail(v, st, doing, err, errlen);
    sqlite3_bind_text(st, 1, v->tenant, -1, SQLITE_STATIC);
    if (sqlite3_bind_parameter_count(st) >= 2)
        sqlite3_bind_text(st, 2, v->st.kind, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        return mv_sql_fail(v, st, doing, err, errlen);
    sqlite3_finalize(st);
    return 0;
}

/* Removes the checkpoint (and a reembed's copy) in one transaction. */
static int mv_state_drop(struct mv *v, char *err, size_t errlen)
{
    if (db_begin(v->db, err, errlen) != 0)
        return -1;
    bool reembed = strcmp(v->st.kind, "reembed") == 0;
    if (mv_exec(v, mv_drop_sql, "removing the checkpoint", err, errlen) != 0 ||
        (reembed && mv_exec(v, mv_rows_drop_sql, "removing the copy", err, errlen) != 0) ||
        db_commit(v->db, err, errlen) != 0) {
        db_rollback(v->db);
        return -1;
    }
    return 0;
}

/* ---- what both moves share --------------------------------------------- */

static void mv_report_progress(struct mv *v, const char *stage)
{
    v->out->done = (size_t)v->st.done;
    v->out->total = (size_t)v->st.total;
    if (v->o->progress != NULL) {
        size_t total = (size_t)(v->st.total > v->st.done ? v->st.total : v->st.done);
        v->o->progress(v->o->ud, stage, (size_t)v->st.done, total);
    }
}

/* MEMORY_ERR_CANCELLED when the cancel flag is set, naming where to
 * resume; MEMORY_OK otherwise. */
static enum memory_status mv_cancelled(struct mv *v, char *err, size_t errlen)
{
    if (v->o->cancel == NULL || !atomic_load(v->o->cancel))
        return MEMORY_OK;
    msg_set(err, errlen,
            "memory %s of tenant %s: stopped after %" PRId64 " of %" PRId64
            " memories (%s); run the same command to resume",
            v->what, v->tenant, v->st.done, v->st.total, v->st.phase);
    return MEMORY_ERR_CANCELLED;
}

/* Appends how far the stored checkpoint is to a failure's message, so
 * the user knows the run can resume. */
static void mv_say_checkpoint(const struct mv *v, char *err, size_t errlen)
{
    if (v->st.phase[0] == '\0' || v->st.total < 0) /* no checkpoint stored yet */
        return;
    size_t len = strlen(err);
    if (len + 1 < errlen)
        snprintf(err + len, errlen - len,
                 " (checkpoint: %" PRId64 " of %" PRId64
                 " memories, phase %s; run the same command to resume)",
                 v->st.done, v->st.total, v->st.phase);
}

/* A store's failure: remote ones are a network error. */
static enum memory_status mv_store_fail(struct mv *v, const struct vstore *s, char *err,
                                        size_t errlen)
{
    if (mv_cancelled(v, err, errlen) != MEMORY_OK)
        return MEMORY_ERR_CANCELLED; /* the call failed because Ctrl-C ended it */
    v->out->remote = s->remote && s->last_fail != 0;
    mv_say_checkpoint(v, err, errlen);
    return MEMORY_ERR_STORE;
}

static void mv_ident(char *out, size_t cap, const char *embedder, const char *model, int dim)
{
    snprintf(out, cap, "%s/%s/%d", embedder, model, dim);
}

/* Writes a page (n > 0 records in id order) into store to and advances
 * the checkpoint past it; for the local store, the page and the checkpoint
 * commit together. A failed write leaves v->st as it was, so its message
 * names the checkpoint the next run starts from. */
static enum memory_status mv_write_page(struct mv *v, struct vstore *to, const struct mem_record *r,
                                        size_t n, char *err, size_t errlen)
{
    bool local = !to->remote;
    if (local && db_begin(v->db, err, errlen) != 0)
        return MEMORY_ERR_STORE;
    if (to->ops->upsert(to, v->tenant, r, n, err, errlen) != 0) {
        if (local)
            db_rollback(v->db);
        return mv_store_fail(v, to, err, errlen);
    }
    snprintf(v->st.cursor, sizeof v->st.cursor, "%s", r[n - 1].id);
    v->st.done += (int64_t)n;
    if (mv_state_put(v, err, errlen) != 0 || (local && db_commit(v->db, err, errlen) != 0)) {
        if (local)
            db_rollback(v->db);
        return MEMORY_ERR_STORE;
    }
    return MEMORY_OK;
}

static void mv_init(struct mv *v, struct db *db, const char *tenant, const char *kind,
                    const struct move_opts *o, struct move_report *out)
{
    memset(out, 0, sizeof *out);
    memset(v, 0, sizeof *v);
    v->db = db;
    v->tenant = tenant;
    v->what = kind;
    v->o = o;
    v->batch = o->batch > 0 ? o->batch : MOVE_BATCH_DEFAULT;
    if (v->batch > MOVE_BATCH_MAX)
        v->batch = MOVE_BATCH_MAX;
    v->out = out;
    v->st.kind = kind;
}

/* Counts tenant's memories in s. */
static enum memory_status mv_count(struct mv *v, struct vstore *s, size_t *n, char *err,
                                   size_t errlen)
{
    if (s->ops->count(s, v->tenant, NULL, n, err, errlen) != 0)
        return mv_store_fail(v, s, err, errlen);
    return MEMORY_OK;
}

/* ---- migrate ----------------------------------------------------------- */

/* Reads the migrate checkpoint, or prepares a fresh one without writing
 * it (out->resumed says which), so a refusal leaves nothing behind. */
static enum memory_status mv_migrate_begin(struct mv *v, struct vstore *from, struct vstore *to,
                                           char *err, size_t errlen)
{
    int got = mv_state_get(v, err, errlen);
    if (got < 0)
        return MEMORY_ERR_STORE;
    if (got == 0 &&
        (strcmp(v->st.source, from->name) != 0 || strcmp(v->st.target, to->name) != 0)) {
        if (!v->o->restart) {
            msg_set(err, errlen,
                    "memory migrate of tenant %s: an unfinished migrate from %s to %s exists "
                    "(%" PRId64 " of %" PRId64
                    " memories copied); finish it with memchat memory migrate --from %s --to %s "
                    "--tenant %s, or start this one with --restart",
                    v->tenant, v->st.source, v->st.target, v->st.done, v->st.total, v->st.source,
                    v->st.target, v->tenant);
            return MEMORY_ERR_INPUT;
        }
        got = 1;
    }
    if (got == 0 && v->o->restart)
        got = 1;
    if (got == 0) {
        v->out->resumed = true;
        v->out->resumed_from = (size_t)v->st.done;
        return MEMORY_OK;
    }
    /* A fresh start: written by mv_migrate_start once the target agrees. */
    snprintf(v->st.source, sizeof v->st.source, "%s", from->name);
    snprintf(v->st.target, sizeof v->st.target, "%s", to->name);
    snprintf(v->st.phase, sizeof v->st.phase, "copy");
    v->st.cursor[0] = '\0';
    v->st.done = 0;
    v->st.total = -1;
    return MEMORY_OK;
}

/* Writes a fresh checkpoint (total: the source's count now). */
static enum memory_status mv_migrate_start(struct mv *v, struct vstore *from, char *err,
                                           size_t errlen)
{
    size_t n = 0;
    enum memory_status st = mv_count(v, from, &n, err, errlen);
    if (st != MEMORY_OK)
        return st;
    v->st.total = (int64_t)n;
    v->st.started_ms = clock_wall_ms();
    return mv_state_put(v, err, errlen) == 0 ? MEMORY_OK : MEMORY_ERR_STORE;
}

/* Makes the target's namespace with the source's identity: refused when
 * it exists with another; its count before goes to the report. */
static enum memory_status mv_migrate_target(struct mv *v, struct vstore *to,
                                            const struct store_ns *ns, char *err, size_t errlen)
{
    struct store_ns have;
    int got = to->ops->ns_get(to, v->tenant, &have, err, errlen);
    if (got < 0)
        return mv_store_fail(v, to, err, errlen);
    if (got == 0 && (strcmp(have.embedder, ns->embedder) != 0 ||
                     strcmp(have.model, ns->model) != 0 || have.dim != ns->dim)) {
        msg_set(err, errlen,
                "memory migrate of tenant %s: the %s store already holds its memories made with "
                "%s/%s/%d, and the %s store's are %s/%s/%d; reembed one side first, or purge the "
                "target's",
                v->tenant, to->name, have.embedder, have.model, have.dim, v->st.source,
                ns->embedder, ns->model, ns->dim);
        return MEMORY_ERR_MISMATCH;
    }
    if (got == 1 && v->st.done > 0) {
        /* The target lost what this checkpoint copied (purged meanwhile):
         * copy from the start. */
        v->st.done = 0;
        v->st.cursor[0] = '\0';
        v->out->resumed_from = 0;
    }
    if (got == 0 && !v->out->resumed) {
        size_t n = 0;
        enum memory_status st = mv_count(v, to, &n, err, errlen);
        if (st != MEMORY_OK)
            return st;
        v->out->target_before = n;
    }
    if (to->ops->ns_create(to, v->tenant, ns, err, errlen) != 0)
        return mv_store_fail(v, to, err, errlen);
    return MEMORY_OK;
}

enum memory_status move_migrate(struct db *db, struct vstore *from, struct vstore *to,
                                const char *tenant, const struct move_opts *o,
                                struct move_report *out, char *err, size_t errlen)
{
    struct mv v;
    mv_init(&v, db, tenant, "migrate", o, out);
    snprintf(out->source, sizeof out->source, "%s", from->name);
    snprintf(out->target, sizeof out->target, "%s", to->name);
    if (!ident_valid(tenant)) {
        msg_set(err, errlen, "memory migrate: tenant '%s' is not a valid id", tenant);
        return MEMORY_ERR_INPUT;
    }
    if (strcmp(from->name, to->name) == 0) {
        msg_set(err, errlen, "memory migrate: --from and --to both name the %s store", from->name);
        return MEMORY_ERR_INPUT;
    }
    struct store_ns ns;
    int got = from->ops->ns_get(from, tenant, &ns, err, errlen);
    if (got < 0)
        return mv_store_fail(&v, from, err, errlen);
    if (got == 1) {
        msg_set(err, errlen, "memory migrate: tenant %s has no memories in the %s store", tenant,
                from->name);
        return MEMORY_ERR_NOT_FOUND;
    }
    enum memory_status st = mv_migrate_begin(&v, from, to, err, errlen);
    if (st == MEMORY_OK)
        st = mv_migrate_target(&v, to, &ns, err, errlen);
    if (st == MEMORY_OK && v.st.total < 0)
        st = mv_migrate_start(&v, from, err, errlen);
    if (st == MEMORY_OK)
        mv_report_progress(&v, "copying");
    while (st == MEMORY_OK && (st = mv_cancelled(&v, err, errlen)) == MEMORY_OK) {
        struct mem_records page = {0};
        if (from->ops->list(from, tenant, NULL, v.st.cursor[0] ? v.st.cursor : NULL, v.batch, true,
                            &page, err, errlen) != 0) {
            st = mv_store_fail(&v, from, err, errlen);
            break;
        }
        if (page.n == 0) {
            mem_records_free(&page);
            break;
        }
        st = mv_write_page(&v, to, page.v, page.n, err, errlen);
        mem_records_free(&page);
        mv_report_progress(&v, "copying");
    }
    if (st != MEMORY_OK)
        return st;
    if ((st = mv_count(&v, from, &out->source_count, err, errlen)) != MEMORY_OK ||
        (st = mv_count(&v, to, &out->target_count, err, errlen)) != MEMORY_OK)
        return st;
    return mv_state_drop(&v, err, errlen) == 0 ? MEMORY_OK : MEMORY_ERR_STORE;
}

/* ---- reembed ------------------------------------------------------------ */

/* Reads the copy's rows after the cursor into page (vectors when they
 * have been embedded, of dim floats). */
static int mv_rows_page(struct mv *v, int dim, struct mem_records *page, char *err, size_t errlen)
{
    memset(page, 0, sizeof *page);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db_handle(v->db), mv_rows_page_sql, -1, &st, NULL) != SQLITE_OK)
        return mv_sql_fail(v, st, "reading the copy", err, errlen);
    sqlite3_bind_text(st, 1, v->tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, v->st.cursor, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)v->batch);
    page->v = xcalloc(v->batch, sizeof *page->v);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct mem_record *r = &page->v[page->n++];
        mv_copy_col(r->id, sizeof r->id, st, 0);
        mv_copy_col(r->user_id, sizeof r->user_id, st, 1);
        mv_copy_col(r->agent, sizeof r->agent, st, 2);
        mv_copy_col(r->kind, sizeof r->kind, st, 3);
        r->created_at = sqlite3_column_int64(st, 4);
        r->updated_at = sqlite3_column_int64(st, 5);
        r->text = xstrdup((const char *)sqlite3_column_text(st, 6));
        if (sqlite3_column_type(st, 7) != SQLITE_NULL)
            r->metadata = xstrdup((const char *)sqlite3_column_text(st, 7));
        const void *blob = sqlite3_column_blob(st, 8);
        if (blob != NULL && sqlite3_column_bytes(st, 8) == dim * (int)sizeof(float)) {
            r->vector = xmalloc((size_t)dim * sizeof(float));
            memcpy(r->vector, blob, (size_t)dim * sizeof(float));
            r->dim = dim;
        }
    }
    if (rc != SQLITE_DONE) {
        mem_records_free(page);
        return mv_sql_fail(v, st, "reading the copy", err, errlen);
    }
    sqlite3_finalize(st);
    return 0;
}

/* Binds a record's fields to mv_rows_put_sql. */
static void mv_bind_record(sqlite3_stmt *st, const char *tenant, const struct mem_record *r)
{
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, r->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, r->user_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, r->agent, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, r->kind, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, r->created_at);
    sqlite3_bind_int64(st, 7, r->updated_at);
    sqlite3_bind_text(st, 8, r->text != NULL ? r->text : "", -1, SQLITE_STATIC);
    db_bind_text_or_null(st, 9, r->metadata);
}

/* Stores a page of the old namespace in the copy, with the checkpoint. */
static int mv_rows_put(struct mv *v, const struct mem_records *page, char *err, size_t errlen)
{
    if (db_begin(v->db, err, errlen) != 0)
        return -1;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db_handle(v->db), mv_rows_put_sql, -1, &st, NULL) != SQLITE_OK)
        goto fail;
    for (size_t i = 0; i < page->n; i++) {
        sqlite3_reset(st);
        mv_bind_record(st, v->tenant, &page->v[i]);
        if (sqlite3_step(st) != SQLITE_DONE)
            goto fail;
    }
    sqlite3_finalize(st);
    if (mv_state_put(v, err, errlen) == 0 && db_commit(v->db, err, errlen) == 0)
        return 0;
    db_rollback(v->db);
    return -1;
fail:
    mv_sql_fail(v, st, "copying the memories", err, errlen);
    db_rollback(v->db);
    return -1;
}

/* Stores the page's new vectors in the copy, with the checkpoint. */
static int mv_rows_vectors(struct mv *v, const struct mem_records *page, const float *vecs, int dim,
                           char *err, size_t errlen)
{
    if (db_begin(v->db, err, errlen) != 0)
        return -1;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db_handle(v->db), mv_rows_vec_sql, -1, &st, NULL) != SQLITE_OK)
        goto fail;
    for (size_t i = 0; i < page->n; i++) {
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, v->tenant, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, page->v[i].id, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 3, vecs + i * (size_t)dim, dim * (int)sizeof(float), SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
            goto fail;
    }
    sqlite3_finalize(st);
    if (mv_state_put(v, err, errlen) == 0 && db_commit(v->db, err, errlen) == 0)
        return 0;
    db_rollback(v->db);
    return -1;
fail:
    mv_sql_fail(v, st, "storing the new vectors", err, errlen);
    db_rollback(v->db);
    return -1;
}

/* Starts the next phase at the beginning of the copy. */
static void mv_phase(struct mv *v, const char *phase, int64_t total)
{
    snprintf(v->st.phase, sizeof v->st.phase, "%s", phase);
    v->st.cursor[0] = '\0';
    v->st.done = 0;
    v->st.total = total;
}

/* Phase "read": the old namespace into the copy. A text the new embedder
 * cannot take ends the reembed before anything changed. */
static enum memory_status mv_reembed_read(struct mv *v, struct vstore *s, const struct embedder *e,
                                          char *err, size_t errlen)
{
    enum memory_status st;
    while ((st = mv_cancelled(v, err, errlen)) == MEMORY_OK) {
        struct mem_records page = {0};
        if (s->ops->list(s, v->tenant, NULL, v->st.cursor[0] ? v->st.cursor : NULL, v->batch, false,
                         &page, err, errlen) != 0)
            return mv_store_fail(v, s, err, errlen);
        for (size_t i = 0; i < page.n; i++) {
            size_t len = page.v[i].text != NULL ? strlen(page.v[i].text) : 0;
            if (len > e->max_bytes) {
                msg_set(err, errlen,
                        "memory reembed of tenant %s: memory %s is %zu bytes, longer than the %s "
                        "embedder takes (%zu); nothing was changed (forget it and add its text "
                        "again, which splits it, then run reembed)",
                        v->tenant, page.v[i].id, len, e->name, e->max_bytes);
                mem_records_free(&page);
                /* Dropping the checkpoint is tidiness: if it fails, the
                 * next run reads again and stops here again. */
                char scratch[256];
                (void)mv_state_drop(v, scratch, sizeof scratch);
                return MEMORY_ERR_INPUT;
            }
        }
        if (page.n == 0) {
            mem_records_free(&page);
            break;
        }
        snprintf(v->st.cursor, sizeof v->st.cursor, "%s", page.v[page.n - 1].id);
        v->st.done += (int64_t)page.n;
        int rc = mv_rows_put(v, &page, err, errlen);
        mem_records_free(&page);
        if (rc != 0)
            return MEMORY_ERR_STORE;
        mv_report_progress(v, "reading");
    }
    if (st != MEMORY_OK)
        return st;
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(db_handle(v->db), mv_rows_count_sql, -1, &q, NULL) != SQLITE_OK ||
        sqlite3_bind_text(q, 1, v->tenant, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_step(q) != SQLITE_ROW) {
        mv_sql_fail(v, q, "counting the copy", err, errlen);
        return MEMORY_ERR_STORE;
    }
    int64_t n = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    mv_phase(v, "embed", n);
    return mv_state_put(v, err, errlen) == 0 ? MEMORY_OK : MEMORY_ERR_STORE;
}

/* Phase "embed": the copy's texts through the new embedder. */
static enum memory_status mv_reembed_embed(struct mv *v, struct embedder *e, char *err,
                                           size_t errlen)
{
    enum memory_status st;
    float *vecs = xcalloc(v->batch, (size_t)e->dim * sizeof(float));
    const char **texts = xcalloc(v->batch, sizeof *texts);
    while ((st = mv_cancelled(v, err, errlen)) == MEMORY_OK) {
        struct mem_records page;
        if (mv_rows_page(v, e->dim, &page, err, errlen) != 0) {
            st = MEMORY_ERR_STORE;
            break;
        }
        if (page.n == 0) {
            mem_records_free(&page);
            break;
        }
        for (size_t i = 0; i < page.n; i++)
            texts[i] = page.v[i].text;
        if (embedder_embed(e, EMBED_DOCUMENT, texts, page.n, NULL, vecs, err, errlen) != 0) {
            mem_records_free(&page);
            if ((st = mv_cancelled(v, err, errlen)) != MEMORY_OK)
                break;
            v->out->remote = e->remote && e->last_fail != 0;
            mv_say_checkpoint(v, err, errlen);
            st = MEMORY_ERR_EMBED;
            break;
        }
        snprintf(v->st.cursor, sizeof v->st.cursor, "%s", page.v[page.n - 1].id);
        v->st.done += (int64_t)page.n;
        int rc = mv_rows_vectors(v, &page, vecs, e->dim, err, errlen);
        mem_records_free(&page);
        if (rc != 0) {
            st = MEMORY_ERR_STORE;
            break;
        }
        mv_report_progress(v, "embedding");
    }
    xfree(vecs);
    xfree(texts);
    if (st != MEMORY_OK)
        return st;
    snprintf(v->st.phase, sizeof v->st.phase, "swap");
    return MEMORY_OK; /* "swap" is written with the frequencies it recounts */
}

/* The document frequencies of the copy's texts under e's terms, replacing
 * the tenant's, inside the caller's transaction. */
static int mv_recount_df(struct mv *v, const struct embedder *e, char *err, size_t errlen)
{
    if (memory_df_reset(v->db, v->tenant, err, errlen) != 0)
        return -1;
    char cursor[MC_UUID_STRLEN + 1];
    snprintf(cursor, sizeof cursor, "%s", v->st.cursor);
    v->st.cursor[0] = '\0';
    const char **texts = xcalloc(v->batch, sizeof *texts);
    int rc = 0;
    for (;;) {
        struct mem_records page;
        if ((rc = mv_rows_page(v, 0, &page, err, errlen)) != 0)
            break;
        for (size_t i = 0; i < page.n; i++)
            texts[i] = page.v[i].text;
        if (page.n > 0) {
            snprintf(v->st.cursor, sizeof v->st.cursor, "%s", page.v[page.n - 1].id);
            rc = memory_df_count(v->db, e, v->tenant, texts, page.n, err, errlen);
        }
        size_t n = page.n;
        mem_records_free(&page);
        if (rc != 0 || n == 0)
            break;
    }
    xfree(texts);
    snprintf(v->st.cursor, sizeof v->st.cursor, "%s", cursor);
    return rc;
}

/* Removes the old namespace and creates the new one (inside the caller's
 * transaction for the local store). */
static enum memory_status mv_reembed_replace(struct mv *v, struct vstore *s,
                                             const struct embedder *e, char *err, size_t errlen)
{
    struct store_ns ns = {.dim = e->dim};
    snprintf(ns.embedder, sizeof ns.embedder, "%s", e->name);
    snprintf(ns.model, sizeof ns.model, "%s", e->model);
    size_t gone = 0;
    if (s->ops->delete_filter(s, v->tenant, NULL, &gone, err, errlen) != 0 ||
        s->ops->ns_create(s, v->tenant, &ns, err, errlen) != 0)
        return mv_store_fail(v, s, err, errlen);
    return MEMORY_OK;
}

/* Phase "swap": the frequencies and the "swap" checkpoint commit
 * together; then the namespace is replaced and "write" begins. The local
 * store does all of it in one transaction. A resumed "swap" replaces the
 * namespace again, which is harmless: the copy has every memory. */
static enum memory_status mv_reembed_swap(struct mv *v, struct vstore *s, struct embedder *e,
                                          bool recount, char *err, size_t errlen)
{
    bool local = !s->remote;
    int64_t n = v->st.total;
    if (recount || local) {
        if (db_begin(v->db, err, errlen) != 0)
            return MEMORY_ERR_STORE;
        if ((recount && mv_recount_df(v, e, err, errlen) != 0) ||
            mv_state_put(v, err, errlen) != 0) {
            db_rollback(v->db);
            return MEMORY_ERR_STORE;
        }
        if (!local && db_commit(v->db, err, errlen) != 0) {
            db_rollback(v->db);
            return MEMORY_ERR_STORE;
        }
    }
    enum memory_status st = mv_reembed_replace(v, s, e, err, errlen);
    if (st == MEMORY_OK) {
        mv_phase(v, "write", n);
        if (mv_state_put(v, err, errlen) != 0)
            st = MEMORY_ERR_STORE;
    }
    if (local) {
        if (st == MEMORY_OK && db_commit(v->db, err, errlen) != 0)
            st = MEMORY_ERR_STORE;
        if (st != MEMORY_OK) {
            db_rollback(v->db);
            snprintf(v->st.phase, sizeof v->st.phase, "swap");
        }
    }
    return st;
}

/* Phase "write": the copy, with its new vectors, into the new namespace. */
static enum memory_status mv_reembed_write(struct mv *v, struct vstore *s, const struct embedder *e,
                                           char *err, size_t errlen)
{
    enum memory_status st;
    while ((st = mv_cancelled(v, err, errlen)) == MEMORY_OK) {
        struct mem_records page;
        if (mv_rows_page(v, e->dim, &page, err, errlen) != 0)
            return MEMORY_ERR_STORE;
        if (page.n == 0) {
            mem_records_free(&page);
            break;
        }
        for (size_t i = 0; i < page.n; i++) {
            if (page.v[i].vector == NULL) { /* cannot happen after "embed"; never upsert NULL */
                msg_set(err, errlen,
                        "memory reembed of tenant %s: memory %s has no new vector in the copy "
                        "in %s",
                        v->tenant, page.v[i].id, db_path(v->db));
                mem_records_free(&page);
                return MEMORY_ERR_STORE;
            }
        }
        st = mv_write_page(v, s, page.v, page.n, err, errlen);
        mem_records_free(&page);
        if (st != MEMORY_OK)
            return st;
        mv_report_progress(v, "writing");
    }
    return st;
}

/* Reads or starts the reembed checkpoint. */
static enum memory_status mv_reembed_begin(struct mv *v, struct vstore *s, const char *want,
                                           char *err, size_t errlen)
{
    int got = mv_state_get(v, err, errlen);
    if (got < 0)
        return MEMORY_ERR_STORE;
    if (got == 0) {
        v->out->resumed = true;
        v->out->resumed_from = (size_t)v->st.done;
        snprintf(v->out->source, sizeof v->out->source, "%s", v->st.source);
        if (strcmp(v->st.target, want) == 0)
            return MEMORY_OK;
        bool rewriting = strcmp(v->st.phase, "swap") == 0 || strcmp(v->st.phase, "write") == 0;
        if (rewriting) {
            msg_set(err, errlen,
                    "memory reembed of tenant %s: its namespace is being rewritten with %s "
                    "(%" PRId64 " of %" PRId64
                    " memories written), and the embedder is now %s; configure %s again and run "
                    "reembed to finish, then reembed with the new one",
                    v->tenant, v->st.target, v->st.done, v->st.total, want, v->st.target);
            return MEMORY_ERR_MISMATCH;
        }
        /* The old namespace is intact: embed the copy again with e. */
        snprintf(v->st.target, sizeof v->st.target, "%s", want);
        if (strcmp(v->st.phase, "embed") == 0) {
            mv_phase(v, "embed", v->st.total);
            v->out->resumed_from = 0;
            if (mv_exec(v, mv_rows_unvec_sql, "clearing the copy's vectors", err, errlen) != 0)
                return MEMORY_ERR_STORE;
        }
        return mv_state_put(v, err, errlen) == 0 ? MEMORY_OK : MEMORY_ERR_STORE;
    }
    struct store_ns ns;
    got = s->ops->ns_get(s, v->tenant, &ns, err, errlen);
    if (got < 0)
        return mv_store_fail(v, s, err, errlen);
    if (got == 1) {
        msg_set(err, errlen, "memory reembed: tenant %s has no memories in the %s store", v->tenant,
                s->name);
        return MEMORY_ERR_NOT_FOUND;
    }
    mv_ident(v->out->source, sizeof v->out->source, ns.embedder, ns.model, ns.dim);
    if (strcmp(v->out->source, want) == 0 && !v->o->force) {
        v->out->nothing_to_do = true;
        v->out->total = v->out->target_count = ns.count;
        return MEMORY_OK;
    }
    size_t n = 0;
    enum memory_status st = mv_count(v, s, &n, err, errlen);
    if (st != MEMORY_OK)
        return st;
    snprintf(v->st.source, sizeof v->st.source, "%s", v->out->source);
    snprintf(v->st.target, sizeof v->st.target, "%s", want);
    mv_phase(v, "read", (int64_t)n);
    v->st.started_ms = clock_wall_ms();
    /* A copy left without its checkpoint (it cannot be, but it must not
     * mix into this one) goes with the start. */
    if (db_begin(v->db, err, errlen) != 0)
        return MEMORY_ERR_STORE;
    if (mv_exec(v, mv_rows_drop_sql, "clearing the copy", err, errlen) != 0 ||
        mv_state_put(v, err, errlen) != 0 || db_commit(v->db, err, errlen) != 0) {
        db_rollback(v->db);
        return MEMORY_ERR_STORE;
    }
    return MEMORY_OK;
}

enum memory_status move_reembed(struct db *db, struct vstore *s, struct embedder *e,
                                const char *tenant, const struct move_opts *o,
                                struct move_report *out, char *err, size_t errlen)
{
    struct mv v;
    mv_init(&v, db, tenant, "reembed", o, out);
    if (!ident_valid(tenant)) {
        msg_set(err, errlen, "memory reembed: tenant '%s' is not a valid id", tenant);
        return MEMORY_ERR_INPUT;
    }
    mv_ident(out->target, sizeof out->target, e->name, e->model, e->dim);
    enum memory_status st = mv_reembed_begin(&v, s, out->target, err, errlen);
    if (st != MEMORY_OK || out->nothing_to_do)
        return st;
    bool recount = true;
    if (strcmp(v.st.phase, "read") == 0) {
        mv_report_progress(&v, "reading");
        st = mv_reembed_read(&v, s, e, err, errlen);
    }
    if (st == MEMORY_OK && strcmp(v.st.phase, "embed") == 0) {
        mv_report_progress(&v, "embedding");
        st = mv_reembed_embed(&v, e, err, errlen);
    } else if (st == MEMORY_OK && strcmp(v.st.phase, "swap") == 0) {
        recount = false; /* a resumed swap: its frequencies are committed */
    }
    if (st == MEMORY_OK && strcmp(v.st.phase, "swap") == 0)
        st = mv_reembed_swap(&v, s, e, recount, err, errlen);
    if (st == MEMORY_OK && strcmp(v.st.phase, "write") == 0) {
        mv_report_progress(&v, "writing");
        st = mv_reembed_write(&v, s, e, err, errlen);
    }
    if (st != MEMORY_OK)
        return st;
    if ((st = mv_count(&v, s, &out->target_count, err, errlen)) != MEMORY_OK)
        return st;
    return mv_state_drop(&v, err, errlen) == 0 ? MEMORY_OK : MEMORY_ERR_STORE;
}

int move_purge(struct db *db, const char *tenant, size_t *removed, char *err, size_t errlen)
{
    *removed = 0;
    struct mv v = {.db = db, .tenant = tenant, .what = "purge", .st.kind = "reembed"};
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db_handle(db), mv_rows_drop_sql, -1, &st, NULL) != SQLITE_OK)
        return mv_sql_fail(&v, st, "removing the reembed copy", err, errlen);
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        return mv_sql_fail(&v, st, "removing the reembed copy", err, errlen);
    *removed = (size_t)sqlite3_changes(db_handle(db));
    sqlite3_finalize(st);
    return mv_exec(&v, "DELETE FROM memory_moves WHERE tenant = ?1", "removing the checkpoints",
                   err, errlen);
}
