/*
 * The turn_metrics table (schema.c, migrations 1 and 5): the turn worker's insert
 * at the end of a turn, the background worker's store outcome, and reading
 * one row back. Column lists are built from MC_STAGE_LIST, so each stage of
 * include/memchat/event.h maps to its lat_<stage> column; a stage without a
 * column makes every statement here fail to prepare (and test_store fail).
 * NULL stands for "not measured": a stage that did not run, no token count,
 * no price, no store attempted.
 */
#include "config.h"

#include "store/metrics.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "store/db.h"
#include "util/alloc.h"

#define METRICS_LAT_COL(e, name) "lat_" name ", "
#define METRICS_LAT_ARG(e, name) "?, "

static const char metrics_insert_sql[] =
    "INSERT INTO turn_metrics (turn, ts_ms, tenant, user_id, agent, provider, model, "
    "memory, " MC_STAGE_LIST(
        METRICS_LAT_COL) "status, prompt_tokens, completion_tokens, cost_usd, stored, store_ms,"
                         " rollout, recalled, relevance, conversation, step)"
                         " VALUES (?, ?, ?, ?, ?, ?, ?, ?, " MC_STAGE_LIST(
                             METRICS_LAT_ARG) "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

static const char metrics_select_sql[] =
    "SELECT turn, ts_ms, tenant, user_id, agent, provider, model, memory, " MC_STAGE_LIST(
        METRICS_LAT_COL) "status, prompt_tokens, completion_tokens, cost_usd, stored,"
                         " store_ms, rollout, recalled, relevance, conversation, step"
                         " FROM turn_metrics WHERE turn = ?";

static const char metrics_store_sql[] =
    "UPDATE turn_metrics SET stored = ?, store_ms = ? WHERE turn = ?";

/* Binds a measurement, or NULL for a negative or non-finite one. */
static int metrics_bind_measure(sqlite3_stmt *st, int i, double v)
{
    if (isfinite(v) && v >= 0)
        return sqlite3_bind_double(st, i, v);
    return sqlite3_bind_null(st, i);
}

static int metrics_bind_count(sqlite3_stmt *st, int i, long long v)
{
    if (v >= 0)
        return sqlite3_bind_int64(st, i, v);
    return sqlite3_bind_null(st, i);
}

/* Formats "op: turn T in PATH: SQLite's message". */
static void metrics_fail(struct db *db, const char *op, const char *turn, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s: turn %s in %s: %s", op, turn, db_path(db),
                 sqlite3_errmsg(db_handle(db)));
}

int metrics_insert_turn(struct db *db, const struct turn_metrics *m, char *err, size_t errlen)
{
    const char *missing = m->turn == NULL     ? "turn"
                          : m->tenant == NULL ? "tenant"
                          : m->user == NULL   ? "user"
                          : m->agent == NULL  ? "agent"
                          : m->status == NULL ? "status"
                                              : NULL;
    if (missing != NULL) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "metrics_insert_turn: %s is NULL (required)", missing);
        return -1;
    }
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db_handle(db), metrics_insert_sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        metrics_fail(db, "metrics_insert_turn", m->turn, err, errlen);
        return -1;
    }
    int i = 1;
    rc = db_bind_text_or_null(st, i++, m->turn);
    rc = rc ? rc : sqlite3_bind_int64(st, i++, m->ts_ms);
    rc = rc ? rc : db_bind_text_or_null(st, i++, m->tenant);
    rc = rc ? rc : db_bind_text_or_null(st, i++, m->user);
    rc = rc ? rc : db_bind_text_or_null(st, i++, m->agent);
    rc = rc ? rc : db_bind_text_or_null(st, i++, m->provider);
    rc = rc ? rc : db_bind_text_or_null(st, i++, m->model);
    rc = rc ? rc : sqlite3_bind_int(st, i++, m->memory ? 1 : 0);
    for (int s = 0; s < MC_STAGE__COUNT; s++)
        rc = rc ? rc : metrics_bind_measure(st, i++, m->latency_ms[s]);
    rc = rc ? rc : db_bind_text_or_null(st, i++, m->status);
    rc = rc ? rc : metrics_bind_count(st, i++, m->prompt_tokens);
    rc = rc ? rc : metrics_bind_count(st, i++, m->completion_tokens);
    rc = rc ? rc : metrics_bind_measure(st, i++, m->cost_usd);
    bool known = m->store != METRICS_STORE_UNKNOWN;
    rc = rc ? rc
            : (known ? sqlite3_bind_int(st, i++, m->store == METRICS_STORE_OK)
                     : sqlite3_bind_null(st, i++));
    rc = rc ? rc : metrics_bind_measure(st, i++, known ? m->store_ms : -1.0);
    rc = rc ? rc : db_bind_text_or_null(st, i++, m->rollout);
    rc = rc ? rc : metrics_bind_count(st, i++, m->recalled);
    rc =
        rc ? rc
           : (m->recalled > 0 && isfinite(m->relevance) ? sqlite3_bind_double(st, i++, m->relevance)
                                                        : sqlite3_bind_null(st, i++));
    rc = rc ? rc : db_bind_text_or_null(st, i++, m->conversation);
    rc = rc ? rc : (m->step > 0 ? sqlite3_bind_int(st, i++, m->step) : sqlite3_bind_null(st, i++));
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        metrics_fail(db, "metrics_insert_turn", m->turn, err, errlen);
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    return 0;
}

int metrics_set_store(struct db *db, const char *turn, int stored, double latency_ms, char *err,
                      size_t errlen)
{
    if (turn == NULL || stored < -1 || stored > 1) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen,
                     "metrics_set_store: %s (turn must be set; stored is 1, 0 or -1, got %d)",
                     turn == NULL ? "turn is NULL" : "bad stored", stored);
        return -1;
    }
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db_handle(db), metrics_store_sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        metrics_fail(db, "metrics_set_store", turn, err, errlen);
        return -1;
    }
    rc = stored < 0 ? sqlite3_bind_null(st, 1) : sqlite3_bind_int(st, 1, stored);
    rc = rc ? rc : metrics_bind_measure(st, 2, latency_ms);
    rc = rc ? rc : db_bind_text_or_null(st, 3, turn);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        metrics_fail(db, "metrics_set_store", turn, err, errlen);
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    if (sqlite3_changes(db_handle(db)) == 0) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "metrics_set_store: turn %s has no row in %s", turn, db_path(db));
        return 1;
    }
    return 0;
}

/* A copy of text column i, or NULL for SQL NULL. */
static char *metrics_column_text(sqlite3_stmt *st, int i)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    return s != NULL ? xstrdup((const char *)s) : NULL;
}

/* Column i as a double, or -1 for NULL. */
static double metrics_column_measure(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? -1 : sqlite3_column_double(st, i);
}

static long long metrics_column_count(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, i);
}

int metrics_get_turn(struct db *db, const char *turn, struct metrics_row *row, char *err,
                     size_t errlen)
{
    memset(row, 0, sizeof *row);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db_handle(db), metrics_select_sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        metrics_fail(db, "metrics_get_turn", turn, err, errlen);
        return -1;
    }
    rc = db_bind_text_or_null(st, 1, turn);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        sqlite3_finalize(st);
        return 1;
    }
    if (rc != SQLITE_ROW) {
        metrics_fail(db, "metrics_get_turn", turn, err, errlen);
        sqlite3_finalize(st);
        return -1;
    }
    int i = 0;
    row->turn = metrics_column_text(st, i++);
    row->ts_ms = sqlite3_column_int64(st, i++);
    row->tenant = metrics_column_text(st, i++);
    row->user = metrics_column_text(st, i++);
    row->agent = metrics_column_text(st, i++);
    row->provider = metrics_column_text(st, i++);
    row->model = metrics_column_text(st, i++);
    row->memory = sqlite3_column_int(st, i++) != 0;
    for (int s = 0; s < MC_STAGE__COUNT; s++)
        row->latency_ms[s] = metrics_column_measure(st, i++);
    row->status = metrics_column_text(st, i++);
    row->prompt_tokens = metrics_column_count(st, i++);
    row->completion_tokens = metrics_column_count(st, i++);
    row->cost_usd = metrics_column_measure(st, i++);
    row->stored = sqlite3_column_type(st, i) == SQLITE_NULL ? -1 : sqlite3_column_int(st, i);
    i++;
    row->store_latency_ms = metrics_column_measure(st, i++);
    row->rollout = metrics_column_text(st, i++);
    row->recalled = metrics_column_count(st, i++);
    row->relevance =
        sqlite3_column_type(st, i) == SQLITE_NULL ? (double)NAN : sqlite3_column_double(st, i);
    i++;
    row->conversation = metrics_column_text(st, i++);
    row->step = sqlite3_column_type(st, i) == SQLITE_NULL ? 0 : sqlite3_column_int(st, i);
    sqlite3_finalize(st);
    return 0;
}

void metrics_row_free(struct metrics_row *row)
{
    if (row == NULL)
        return;
    xfree(row->turn);
    xfree(row->tenant);
    xfree(row->user);
    xfree(row->agent);
    xfree(row->provider);
    xfree(row->model);
    xfree(row->rollout);
    xfree(row->conversation);
    xfree(row->status);
    memset(row, 0, sizeof *row);
}
