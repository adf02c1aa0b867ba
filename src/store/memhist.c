/*
 * The memory_history table (schema.c, migration 4): one row per add,
 * refresh, import and delete of a memory, read newest first by `memchat
 * memory history` and removed by purge. The detail column is a JSON object
 * the caller builds without the memory's text; this module checks that it
 * is an object and stores it as given. Every statement is prepared with
 * its values bound; nothing here begins or commits a transaction (the
 * caller's write of the memory and its history row share one).
 */
#include "config.h"

#include "store/memhist.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "store/db.h"
#include "util/alloc.h"
#include "util/msg.h"
#include "util/ident.h"
#include "util/uuid.h"

static const char memhist_insert_sql[] =
    "INSERT INTO memory_history (tenant, memory_id, op, user_id, agent, ts_ms, detail)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
/* ?1 tenant, ?2 before (<= 0: no bound), ?3 limit (-1: all). */
static const char memhist_list_sql[] =
    "SELECT seq, ts_ms, tenant, memory_id, op, user_id, agent, detail FROM memory_history"
    " WHERE tenant = ?1 AND (?2 <= 0 OR seq < ?2) ORDER BY seq DESC LIMIT ?3";
/* ?2 NULL: every user of the tenant. */
static const char memhist_purge_sql[] =
    "DELETE FROM memory_history WHERE tenant = ?1 AND (?2 IS NULL OR user_id = ?2)";

static const char *const memhist_ops[] = {"add", "refresh", "import", "delete"};

static bool memhist_op_known(const char *op)
{
    for (size_t i = 0; i < sizeof memhist_ops / sizeof memhist_ops[0]; i++)
        if (strcmp(op, memhist_ops[i]) == 0)
            return true;
    return false;
}

/* True when detail is the text of one JSON object. */
static bool memhist_detail_valid(const char *detail)
{
    cJSON *j = cJSON_ParseWithLength(detail, strlen(detail));
    bool ok = j != NULL && cJSON_IsObject(j);
    cJSON_Delete(j);
    return ok;
}

int memhist_add(struct db *db, const struct memhist_row *r, char *err, size_t errlen)
{
    static const char fn[] = "memhist_add";
    if (db_check_ident(fn, "tenant", r->tenant, err, errlen) != 0 ||
        db_check_ident(fn, "user", r->user_id, err, errlen) != 0 ||
        db_check_ident(fn, "agent", r->agent, err, errlen) != 0)
        return -1;
    if (r->memory_id == NULL || !uuid_valid(r->memory_id)) {
        msg_set(err, errlen, "%s: memory id '%.80s' is not a UUID", fn,
                r->memory_id != NULL ? r->memory_id : "(null)");
        return -1;
    }
    if (r->op == NULL || !memhist_op_known(r->op)) {
        msg_set(err, errlen,
                "%s: op '%.40s' is not known (accepted: add, refresh, import, "
                "delete)",
                fn, r->op != NULL ? r->op : "(null)");
        return -1;
    }
    const char *detail = r->detail != NULL ? r->detail : "{}";
    if (!memhist_detail_valid(detail)) {
        msg_set(err, errlen, "%s: memory %s: detail is not a JSON object", fn, r->memory_id);
        return -1;
    }
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db_handle(db), memhist_insert_sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        db_set_error(db, "memhist_add: prepare", err, errlen);
        return -1;
    }
    rc = db_bind_text_or_null(st, 1, r->tenant);
    rc = rc ? rc : db_bind_text_or_null(st, 2, r->memory_id);
    rc = rc ? rc : db_bind_text_or_null(st, 3, r->op);
    rc = rc ? rc : db_bind_text_or_null(st, 4, r->user_id);
    rc = rc ? rc : db_bind_text_or_null(st, 5, r->agent);
    rc = rc ? rc : sqlite3_bind_int64(st, 6, r->ts_ms);
    rc = rc ? rc : db_bind_text_or_null(st, 7, detail);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        msg_set(err, errlen, "%s: tenant %s memory %s in %s: %s", fn, r->tenant, r->memory_id,
                db_path(db), sqlite3_errmsg(db_handle(db)));
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    return 0;
}

/* An owned copy of column i (text may hold any bytes; NULL reads as ""). */
static char *memhist_column_dup(sqlite3_stmt *st, int i)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    size_t n = (size_t)sqlite3_column_bytes(st, i);
    return s != NULL ? xstrndup((const char *)s, n) : xstrdup("");
}

int memhist_list(struct db *db, const char *tenant, int64_t before, size_t limit,
                 struct memhist_row **rows, size_t *n, char *err, size_t errlen)
{
    *rows = NULL;
    *n = 0;
    if (db_check_ident("memhist_list", "tenant", tenant, err, errlen) != 0)
        return -1;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db_handle(db), memhist_list_sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        db_set_error(db, "memhist_list: prepare", err, errlen);
        return -1;
    }
    /* A limit beyond what SQLite counts is no limit. */
    int64_t lim = limit == 0 || limit > (size_t)INT64_MAX ? -1 : (int64_t)limit;
    rc = db_bind_text_or_null(st, 1, tenant);
    rc = rc ? rc : sqlite3_bind_int64(st, 2, before);
    rc = rc ? rc : sqlite3_bind_int64(st, 3, lim);
    struct memhist_row *out = NULL;
    size_t count = 0, cap = 0;
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            out = xreallocarray(out, cap, sizeof *out);
        }
        struct memhist_row *r = &out[count++];
        r->seq = sqlite3_column_int64(st, 0);
        r->ts_ms = sqlite3_column_int64(st, 1);
        r->tenant = memhist_column_dup(st, 2);
        r->memory_id = memhist_column_dup(st, 3);
        r->op = memhist_column_dup(st, 4);
        r->user_id = memhist_column_dup(st, 5);
        r->agent = memhist_column_dup(st, 6);
        r->detail = memhist_column_dup(st, 7);
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_DONE) {
        msg_set(err, errlen, "memhist_list: tenant %s in %s: %s", tenant, db_path(db),
                sqlite3_errmsg(db_handle(db)));
        sqlite3_finalize(st);
        memhist_rows_free(out, count);
        return -1;
    }
    sqlite3_finalize(st);
    *rows = out;
    *n = count;
    return 0;
}

void memhist_rows_free(struct memhist_row *rows, size_t n)
{
    if (rows == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        xfree(rows[i].tenant);
        xfree(rows[i].memory_id);
        xfree(rows[i].op);
        xfree(rows[i].user_id);
        xfree(rows[i].agent);
        xfree(rows[i].detail);
    }
    xfree(rows);
}

int memhist_purge(struct db *db, const char *tenant, const char *user, size_t *removed, char *err,
                  size_t errlen)
{
    return db_purge_scope(db, "memhist_purge", memhist_purge_sql, tenant, user, removed, err,
                          errlen);
}
