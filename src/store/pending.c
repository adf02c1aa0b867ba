/*
 * The pending_memories table (schema.c, migration 4): exchanges waiting to
 * be stored as memories. One row per turn, so writing the same turn twice
 * (the turn gave up on the queue, then the worker failed too) keeps the
 * first row and its count of attempts. The worker reads the due rows
 * oldest first, and either removes a row or counts the failure and moves
 * its next try. The recorded error is cut to PENDING_ERROR_MAX bytes on a
 * character boundary, so a long provider message cannot grow the file.
 * Every statement is prepared with its values bound; nothing here begins
 * or commits a transaction.
 */
#include "config.h"

#include "store/pending.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "store/db.h"
#include "util/alloc.h"
#include "util/msg.h"
#include "util/ident.h"
#include "util/utf8.h"
#include "util/uuid.h"

/* Bytes of a failure's message kept in last_error. */
#define PENDING_ERROR_MAX 1024

static const char pending_insert_sql[] =
    "INSERT INTO pending_memories (turn, tenant, user_id, agent, payload, attempts, created_ms,"
    " next_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (turn) DO NOTHING";
/* ?1 now, ?2 limit. */
#define PENDING_ROW_COLUMNS                                                            \
    "SELECT seq, turn, tenant, user_id, agent, payload, attempts, created_ms, next_ms" \
    " FROM pending_memories"
static const char pending_due_sql[] =
    PENDING_ROW_COLUMNS " WHERE next_ms <= ?1 ORDER BY seq LIMIT ?2";
static const char pending_turn_sql[] = PENDING_ROW_COLUMNS " WHERE turn = ?1";
static const char pending_done_sql[] = "DELETE FROM pending_memories WHERE seq = ?1";
static const char pending_failed_sql[] =
    "UPDATE pending_memories SET attempts = attempts + 1, last_error = ?2, next_ms = ?3"
    " WHERE seq = ?1";
static const char pending_count_sql[] =
    "SELECT count(*) FROM pending_memories WHERE ?1 IS NULL OR tenant = ?1";
static const char pending_next_sql[] = "SELECT min(next_ms) FROM pending_memories";
static const char pending_purge_sql[] =
    "DELETE FROM pending_memories WHERE tenant = ?1 AND (?2 IS NULL OR user_id = ?2)";

/* Copies column i into dst[0..cap), cut at a character boundary. */
static void pending_column_copy(sqlite3_stmt *st, int i, char *dst, size_t cap)
{
    const char *s = (const char *)sqlite3_column_text(st, i);
    size_t n = s != NULL ? (size_t)sqlite3_column_bytes(st, i) : 0;
    n = utf8_truncate(s != NULL ? s : "", n, cap - 1);
    if (n > 0)
        memcpy(dst, s, n);
    dst[n] = '\0';
}

/* Runs a statement on the row of seq; an UPDATE with three parameters
 * also gets text (?2) and next_ms (?3). */
static int pending_by_seq(struct db *db, const char *fn, const char *sql, int64_t seq,
                          const char *text, int64_t next_ms, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db_handle(db), sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        msg_set(err, errlen, "%s: prepare in %s: %s", fn, db_path(db),
                sqlite3_errmsg(db_handle(db)));
        return -1;
    }
    rc = sqlite3_bind_int64(st, 1, seq);
    if (rc == SQLITE_OK && sqlite3_bind_parameter_count(st) >= 3) {
        rc = db_bind_text_or_null(st, 2, text != NULL ? text : "");
        rc = rc ? rc : sqlite3_bind_int64(st, 3, next_ms);
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        msg_set(err, errlen, "%s: row %lld in %s: %s", fn, (long long)seq, db_path(db),
                sqlite3_errmsg(db_handle(db)));
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    return 0;
}

int pending_add(struct db *db, const struct pending_row *r, char *err, size_t errlen)
{
    static const char fn[] = "pending_add";
    if (!uuid_valid(r->turn)) {
        msg_set(err, errlen, "%s: turn '%.80s' is not a valid id (accepted: a UUID)", fn, r->turn);
        return -1;
    }
    if (db_check_ident(fn, "tenant", r->tenant, err, errlen) != 0 ||
        db_check_ident(fn, "user", r->user_id, err, errlen) != 0 ||
        db_check_ident(fn, "agent", r->agent, err, errlen) != 0)
        return -1;
    if (r->payload == NULL) {
        msg_set(err, errlen, "%s: turn %s: payload is NULL (required)", fn, r->turn);
        return -1;
    }
    if (r->attempts < 0) {
        msg_set(err, errlen, "%s: turn %s: attempts %d must be >= 0", fn, r->turn, r->attempts);
        return -1;
    }
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db_handle(db), pending_insert_sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        db_set_error(db, "pending_add: prepare", err, errlen);
        return -1;
    }
    rc = db_bind_text_or_null(st, 1, r->turn);
    rc = rc ? rc : db_bind_text_or_null(st, 2, r->tenant);
    rc = rc ? rc : db_bind_text_or_null(st, 3, r->user_id);
    rc = rc ? rc : db_bind_text_or_null(st, 4, r->agent);
    rc = rc ? rc : db_bind_text_or_null(st, 5, r->payload);
    rc = rc ? rc : sqlite3_bind_int(st, 6, r->attempts);
    rc = rc ? rc : sqlite3_bind_int64(st, 7, r->created_ms);
    rc = rc ? rc : sqlite3_bind_int64(st, 8, r->next_ms);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        msg_set(err, errlen, "%s: turn %s in %s: %s", fn, r->turn, db_path(db),
                sqlite3_errmsg(db_handle(db)));
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    return 0;
}

/* The current row of a PENDING_ROW_COLUMNS query into r. */
static void pending_read_row(sqlite3_stmt *st, struct pending_row *r)
{
    memset(r, 0, sizeof *r);
    r->seq = sqlite3_column_int64(st, 0);
    pending_column_copy(st, 1, r->turn, sizeof r->turn);
    pending_column_copy(st, 2, r->tenant, sizeof r->tenant);
    pending_column_copy(st, 3, r->user_id, sizeof r->user_id);
    pending_column_copy(st, 4, r->agent, sizeof r->agent);
    const char *p = (const char *)sqlite3_column_text(st, 5);
    r->payload = p != NULL ? xstrndup(p, (size_t)sqlite3_column_bytes(st, 5)) : xstrdup("");
    r->attempts = sqlite3_column_int(st, 6);
    r->created_ms = sqlite3_column_int64(st, 7);
    r->next_ms = sqlite3_column_int64(st, 8);
}

int pending_get_turn(struct db *db, const char *turn, struct pending_row *out, char *err,
                     size_t errlen)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db_handle(db), pending_turn_sql, -1, &st, NULL) != SQLITE_OK) {
        db_set_error(db, "pending_get_turn: prepare", err, errlen);
        return -1;
    }
    int rc = sqlite3_bind_text(st, 1, turn, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        pending_read_row(st, out);
    else if (rc != SQLITE_DONE)
        db_set_error(db, "pending_get_turn", err, errlen);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? 1 : -1;
}

int pending_due(struct db *db, int64_t now_ms, size_t max, struct pending_row **out, size_t *n,
                char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    if (max == 0)
        return 0;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db_handle(db), pending_due_sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        db_set_error(db, "pending_due: prepare", err, errlen);
        return -1;
    }
    rc = sqlite3_bind_int64(st, 1, now_ms);
    rc = rc ? rc : sqlite3_bind_int64(st, 2, max > (size_t)INT64_MAX ? -1 : (int64_t)max);
    struct pending_row *v = NULL;
    size_t count = 0, cap = 0;
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (count == cap) {
            cap = cap ? cap * 2 : 8;
            v = xreallocarray(v, cap, sizeof *v);
        }
        pending_read_row(st, &v[count++]);
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_DONE) {
        db_set_error(db, "pending_due", err, errlen);
        sqlite3_finalize(st);
        pending_rows_free(v, count);
        return -1;
    }
    sqlite3_finalize(st);
    *out = v;
    *n = count;
    return 0;
}

void pending_rows_free(struct pending_row *rows, size_t n)
{
    if (rows == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        xfree(rows[i].payload);
    xfree(rows);
}

int pending_done(struct db *db, int64_t seq, char *err, size_t errlen)
{
    /* A row purged meanwhile is done as well: no error. */
    return pending_by_seq(db, "pending_done", pending_done_sql, seq, NULL, 0, err, errlen);
}

int pending_failed(struct db *db, int64_t seq, const char *error, int64_t next_ms, char *err,
                   size_t errlen)
{
    char kept[PENDING_ERROR_MAX + 1];
    size_t n = error != NULL ? strlen(error) : 0;
    n = utf8_truncate(error != NULL ? error : "", n, PENDING_ERROR_MAX);
    if (n > 0)
        memcpy(kept, error, n);
    kept[n] = '\0';
    return pending_by_seq(db, "pending_failed", pending_failed_sql, seq, kept, next_ms, err,
                          errlen);
}

/* The single integer of a one-row query, bound to text ?1 when the query
 * has a parameter; *null says it was NULL. -1 on error. */
static int pending_scalar(struct db *db, const char *sql, const char *text, int64_t *value,
                          bool *null)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db_handle(db), sql, -1, &st, NULL) != SQLITE_OK)
        return -1;
    int rc = SQLITE_OK;
    if (sqlite3_bind_parameter_count(st) >= 1)
        rc = db_bind_text_or_null(st, 1, text);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(st);
        return -1;
    }
    *null = sqlite3_column_type(st, 0) == SQLITE_NULL;
    *value = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return 0;
}

long long pending_count(struct db *db, const char *tenant)
{
    int64_t v = 0;
    bool null = false;
    if (pending_scalar(db, pending_count_sql, tenant, &v, &null) != 0)
        return -1;
    return (long long)v;
}

int64_t pending_next_due(struct db *db)
{
    int64_t v = 0;
    bool null = false;
    if (pending_scalar(db, pending_next_sql, NULL, &v, &null) != 0 || null)
        return -1;
    return v;
}

int pending_purge(struct db *db, const char *tenant, const char *user, size_t *removed, char *err,
                  size_t errlen)
{
    return db_purge_scope(db, "pending_purge", pending_purge_sql, tenant, user, removed, err,
                          errlen);
}
