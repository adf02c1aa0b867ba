/*
 * The ledger and limit_overrides tables (schema.c, migration 3): the turn
 * worker's one insert per turn, the sums the budgets and `memchat costs`
 * read, and the overrides `memchat limits` keeps. Every statement is
 * prepared with its values bound, never built from them; the only SQL put
 * together at run time is the grouping expression of ledger_costs(), taken
 * from a fixed table. Nothing here begins or commits a transaction: the
 * caller decides (the turn's ledger row shares the metrics row's).
 *
 * Unknown costs stay unknown: a NULL usd is excluded from every sum and
 * counted on its own, so a report can say "3 turns without a price"
 * instead of pretending they were free.
 */
#include "config.h"

#include "store/ledger.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "store/db.h"
#include "util/alloc.h"
#include "util/msg.h"
#include "util/ident.h"

static const char ledger_insert_sql[] =
    "INSERT INTO ledger (turn, ts_ms, tenant, user_id, agent, provider, model, prompt_tokens,"
    " completion_tokens, cached_tokens, usd, latency_ms, cache_hit, memory, retries, status,"
    " minify_bytes_saved, conversation)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/* ?1 tenant, ?2 since, ?3 until, ?4 user (user scope only). */
static const char ledger_spent_tenant_sql[] = "SELECT total(usd), count(*) - count(usd) FROM ledger"
                                              " WHERE tenant = ?1 AND ts_ms >= ?2 AND ts_ms < ?3";
static const char ledger_spent_user_sql[] =
    "SELECT total(usd), count(*) - count(usd) FROM ledger"
    " WHERE tenant = ?1 AND user_id = ?4 AND ts_ms >= ?2 AND ts_ms < ?3";

static const char ledger_override_set_sql[] =
    "INSERT INTO limit_overrides (scope, tenant, user_id, name, value, updated_ms)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
    " ON CONFLICT (scope, tenant, user_id, name)"
    " DO UPDATE SET value = excluded.value, updated_ms = excluded.updated_ms";
static const char ledger_override_clear_sql[] =
    "DELETE FROM limit_overrides WHERE scope = ?1 AND tenant = ?2 AND user_id = ?3"
    " AND (?4 IS NULL OR name = ?4)";
static const char ledger_overrides_sql[] =
    "SELECT scope, tenant, user_id, name, value, updated_ms FROM limit_overrides"
    " ORDER BY scope = 'user', tenant, user_id, name";

/* The grouping key of each enum ledger_group, in its order. The day is
 * the UTC calendar day; dividing by 1000.0 keeps the milliseconds, so a
 * turn at 23:59:59.999 stays on its day. */
static const struct {
    const char *name;
    const char *expr;
} ledger_groups[] = {
    [LEDGER_BY_TENANT] = {"tenant", "tenant"},
    [LEDGER_BY_USER] = {"user", "tenant || '/' || user_id"},
    [LEDGER_BY_AGENT] = {"agent", "agent"},
    [LEDGER_BY_MODEL] = {"model", "model"},
    [LEDGER_BY_DAY] = {"day", "strftime('%Y-%m-%d', ts_ms / 1000.0, 'unixepoch')"},
    [LEDGER_BY_NONE] = {"none", "NULL"},
    [LEDGER_BY_MEMORY] = {"memory", "CASE memory WHEN 1 THEN 'on' ELSE 'off' END"},
    [LEDGER_BY_CONVERSATION] = {"conversation", "coalesce(conversation, '-') || '/memory-' ||"
                                                " CASE memory WHEN 1 THEN 'on' ELSE 'off' END"},
};

#define LEDGER_GROUP_COUNT (sizeof ledger_groups / sizeof ledger_groups[0])

/* A measurement, or NULL when negative or not finite. */
static int ledger_bind_measure(sqlite3_stmt *st, int i, double v)
{
    if (isfinite(v) && v >= 0)
        return sqlite3_bind_double(st, i, v);
    return sqlite3_bind_null(st, i);
}

static int ledger_bind_count(sqlite3_stmt *st, int i, long long v)
{
    if (v >= 0)
        return sqlite3_bind_int64(st, i, v);
    return sqlite3_bind_null(st, i);
}

static bool ledger_is_duplicate(struct db *db)
{
    int x = sqlite3_extended_errcode(db_handle(db));
    return x == SQLITE_CONSTRAINT_PRIMARYKEY || x == SQLITE_CONSTRAINT_UNIQUE;
}

int ledger_insert(struct db *db, const struct ledger_row *r, char *err, size_t errlen)
{
    const char *missing = r->turn == NULL     ? "turn"
                          : r->tenant == NULL ? "tenant"
                          : r->user == NULL   ? "user"
                          : r->agent == NULL  ? "agent"
                          : r->status == NULL ? "status"
                                              : NULL;
    if (missing != NULL) {
        msg_set(err, errlen, "ledger_insert: %s is NULL (required)", missing);
        return -1;
    }
    if (r->retries < 0 || r->minify_bytes_saved < 0) {
        msg_set(err, errlen,
                "ledger_insert: turn %s: retries (%d) and minify_bytes_saved (%lld) must be "
                ">= 0",
                r->turn, r->retries, r->minify_bytes_saved);
        return -1;
    }
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db_handle(db), ledger_insert_sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        db_set_error(db, "ledger_insert: prepare", err, errlen);
        return -1;
    }
    int i = 1;
    rc = db_bind_text_or_null(st, i++, r->turn);
    rc = rc ? rc : sqlite3_bind_int64(st, i++, r->ts_ms);
    rc = rc ? rc : db_bind_text_or_null(st, i++, r->tenant);
    rc = rc ? rc : db_bind_text_or_null(st, i++, r->user);
    rc = rc ? rc : db_bind_text_or_null(st, i++, r->agent);
    rc = rc ? rc : db_bind_text_or_null(st, i++, r->provider);
    rc = rc ? rc : db_bind_text_or_null(st, i++, r->model);
    rc = rc ? rc : ledger_bind_count(st, i++, r->prompt_tokens);
    rc = rc ? rc : ledger_bind_count(st, i++, r->completion_tokens);
    rc = rc ? rc : ledger_bind_count(st, i++, r->cached_tokens);
    rc = rc ? rc : ledger_bind_measure(st, i++, r->usd);
    rc = rc ? rc : ledger_bind_measure(st, i++, r->latency_ms);
    rc = rc ? rc : sqlite3_bind_int(st, i++, r->cache_hit ? 1 : 0);
    rc = rc ? rc : sqlite3_bind_int(st, i++, r->memory ? 1 : 0);
    rc = rc ? rc : sqlite3_bind_int(st, i++, r->retries);
    rc = rc ? rc : db_bind_text_or_null(st, i++, r->status);
    rc = rc ? rc : sqlite3_bind_int64(st, i++, r->minify_bytes_saved);
    rc = rc ? rc : db_bind_text_or_null(st, i++, r->conversation);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        if (ledger_is_duplicate(db))
            msg_set(err, errlen, "ledger_insert: turn %s already has a ledger row in %s", r->turn,
                    db_path(db));
        else
            msg_set(err, errlen, "ledger_insert: turn %s in %s: %s", r->turn, db_path(db),
                    sqlite3_errmsg(db_handle(db)));
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    return 0;
}

int ledger_spent_usd(struct db *db, enum ledger_scope scope, const char *tenant, const char *user,
                     int64_t since_ms, int64_t until_ms, double *usd, long long *unknown_turns,
                     char *err, size_t errlen)
{
    bool by_user = scope == LEDGER_SCOPE_USER;
    if (tenant == NULL || (by_user && user == NULL)) {
        msg_set(err, errlen, "ledger_spent_usd: %s is NULL (required)",
                tenant == NULL ? "tenant" : "user");
        return -1;
    }
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(
        db_handle(db), by_user ? ledger_spent_user_sql : ledger_spent_tenant_sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        db_set_error(db, "ledger_spent_usd: prepare", err, errlen);
        return -1;
    }
    rc = db_bind_text_or_null(st, 1, tenant);
    rc = rc ? rc : sqlite3_bind_int64(st, 2, since_ms);
    rc = rc ? rc : sqlite3_bind_int64(st, 3, until_ms);
    if (by_user)
        rc = rc ? rc : db_bind_text_or_null(st, 4, user);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        msg_set(err, errlen, "ledger_spent_usd: %s %s%s%s in %s: %s", by_user ? "user" : "tenant",
                tenant, by_user ? "/" : "", by_user ? user : "", db_path(db),
                sqlite3_errmsg(db_handle(db)));
        sqlite3_finalize(st);
        return -1;
    }
    *usd = sqlite3_column_double(st, 0);
    if (unknown_turns != NULL)
        *unknown_turns = sqlite3_column_int64(st, 1);
    sqlite3_finalize(st);
    return 0;
}

const char *ledger_group_name(enum ledger_group by)
{
    if ((size_t)by < LEDGER_GROUP_COUNT)
        return ledger_groups[by].name;
    return "?";
}

bool ledger_group_parse(const char *name, enum ledger_group *by)
{
    for (size_t i = 0; i < LEDGER_GROUP_COUNT; i++)
        if (strcmp(ledger_groups[i].name, name) == 0) {
            *by = (enum ledger_group)i;
            return true;
        }
    return false;
}

int ledger_costs(struct db *db, enum ledger_group by, int64_t since_ms, ledger_costs_fn fn,
                 void *ctx, char *err, size_t errlen)
{
    if ((size_t)by >= LEDGER_GROUP_COUNT) {
        msg_set(err, errlen, "ledger_costs: unknown grouping %d", (int)by);
        return -1;
    }
    /* Counts of NULL tokens add 0; total() is 0.0 over no known cost, which
     * count(*) - count(usd) tells apart from a real 0. */
    char sql[768];
    snprintf(sql, sizeof sql,
             "SELECT %s AS k, count(*), coalesce(sum(prompt_tokens), 0),"
             " coalesce(sum(completion_tokens), 0), coalesce(sum(cached_tokens), 0),"
             " total(usd), count(*) - count(usd), sum(cache_hit), sum(minify_bytes_saved)"
             " FROM ledger WHERE ts_ms >= ?1 GROUP BY k ORDER BY k",
             ledger_groups[by].expr);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db_handle(db), sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        db_set_error(db, "ledger_costs: prepare", err, errlen);
        return -1;
    }
    rc = sqlite3_bind_int64(st, 1, since_ms);
    int result = 0;
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct ledger_costs_row row = {
            .key = (const char *)sqlite3_column_text(st, 0),
            .turns = sqlite3_column_int64(st, 1),
            .prompt_tokens = sqlite3_column_int64(st, 2),
            .completion_tokens = sqlite3_column_int64(st, 3),
            .cached_tokens = sqlite3_column_int64(st, 4),
            .usd = sqlite3_column_double(st, 5),
            .unknown_cost_turns = sqlite3_column_int64(st, 6),
            .cache_hits = sqlite3_column_int64(st, 7),
            .bytes_saved = sqlite3_column_int64(st, 8),
        };
        result = fn(&row, ctx);
        if (result != 0)
            break;
        rc = SQLITE_OK;
    }
    if (result == 0 && rc != SQLITE_DONE) {
        msg_set(err, errlen, "ledger_costs: by %s in %s: %s", ledger_groups[by].name, db_path(db),
                sqlite3_errmsg(db_handle(db)));
        result = -1;
    }
    sqlite3_finalize(st);
    return result;
}

/* --- limit overrides --- */

static const char *ledger_scope_sql(enum ledger_scope scope)
{
    return scope == LEDGER_SCOPE_USER ? "user" : "tenant";
}

static bool ledger_name_valid(const char *name)
{
    size_t n = strlen(name);
    return n > 0 && n <= LEDGER_OVERRIDE_NAME_MAX &&
           strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

/* Checks scope, tenant, user and (when not NULL) name for op; the user
 * column's value (""  for a tenant) goes to *user_col. 0, or -1 with a
 * message naming the bad argument and what is accepted. */
static int ledger_override_check(const char *op, enum ledger_scope scope, const char *tenant,
                                 const char *user, const char *name, const char **user_col,
                                 char *err, size_t errlen)
{
    if (scope != LEDGER_SCOPE_TENANT && scope != LEDGER_SCOPE_USER) {
        msg_set(err, errlen, "%s: unknown scope %d (accepted: tenant, user)", op, (int)scope);
        return -1;
    }
    if (tenant == NULL || !ident_valid(tenant)) {
        msg_set(err, errlen, "%s: tenant '%.80s' is not a valid id (accepted: [A-Za-z0-9_-]{1,64})",
                op, tenant != NULL ? tenant : "(null)");
        return -1;
    }
    if (scope == LEDGER_SCOPE_USER) {
        if (user == NULL || !ident_valid(user)) {
            msg_set(err, errlen,
                    "%s: user '%.80s' is not a valid id (accepted: [A-Za-z0-9_-]{1,64})", op,
                    user != NULL ? user : "(null)");
            return -1;
        }
        *user_col = user;
    } else {
        if (user != NULL && user[0] != '\0') {
            msg_set(err, errlen,
                    "%s: a tenant override takes no user (got '%.80s'); use the user scope", op,
                    user);
            return -1;
        }
        *user_col = "";
    }
    if (name != NULL && !ledger_name_valid(name)) {
        msg_set(err, errlen,
                "%s: override name '%.80s' is not valid (accepted: 1 to %d of a-z, 0-9, _)", op,
                name, LEDGER_OVERRIDE_NAME_MAX);
        return -1;
    }
    return 0;
}

int ledger_override_set(struct db *db, enum ledger_scope scope, const char *tenant,
                        const char *user, const char *name, double value, int64_t now_ms, char *err,
                        size_t errlen)
{
    const char *user_col = NULL;
    if (ledger_override_check("ledger_override_set", scope, tenant, user, name, &user_col, err,
                              errlen) != 0)
        return -1;
    if (name == NULL) {
        msg_set(err, errlen, "ledger_override_set: name is NULL (required)");
        return -1;
    }
    if (!isfinite(value) || value < 0) {
        msg_set(err, errlen,
                "ledger_override_set: %s: value %g is not valid (accepted: a finite number "
                ">= 0; 0 = unlimited)",
                name, value);
        return -1;
    }
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db_handle(db), ledger_override_set_sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        db_set_error(db, "ledger_override_set: prepare", err, errlen);
        return -1;
    }
    rc = db_bind_text_or_null(st, 1, ledger_scope_sql(scope));
    rc = rc ? rc : db_bind_text_or_null(st, 2, tenant);
    rc = rc ? rc : db_bind_text_or_null(st, 3, user_col);
    rc = rc ? rc : db_bind_text_or_null(st, 4, name);
    rc = rc ? rc : sqlite3_bind_double(st, 5, value);
    rc = rc ? rc : sqlite3_bind_int64(st, 6, now_ms);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        msg_set(err, errlen, "ledger_override_set: %s %s%s%s %s in %s: %s", ledger_scope_sql(scope),
                tenant, user_col[0] ? "/" : "", user_col, name, db_path(db),
                sqlite3_errmsg(db_handle(db)));
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    return 0;
}

int ledger_override_clear(struct db *db, enum ledger_scope scope, const char *tenant,
                          const char *user, const char *name, char *err, size_t errlen)
{
    const char *user_col = NULL;
    if (ledger_override_check("ledger_override_clear", scope, tenant, user, name, &user_col, err,
                              errlen) != 0)
        return -1;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db_handle(db), ledger_override_clear_sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        db_set_error(db, "ledger_override_clear: prepare", err, errlen);
        return -1;
    }
    rc = db_bind_text_or_null(st, 1, ledger_scope_sql(scope));
    rc = rc ? rc : db_bind_text_or_null(st, 2, tenant);
    rc = rc ? rc : db_bind_text_or_null(st, 3, user_col);
    rc = rc ? rc : db_bind_text_or_null(st, 4, name);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        msg_set(err, errlen, "ledger_override_clear: %s %s%s%s in %s: %s", ledger_scope_sql(scope),
                tenant, user_col[0] ? "/" : "", user_col, db_path(db),
                sqlite3_errmsg(db_handle(db)));
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    if (sqlite3_changes(db_handle(db)) == 0) {
        msg_set(err, errlen, "%s %s%s%s has no override%s%s", ledger_scope_sql(scope), tenant,
                user_col[0] ? "/" : "", user_col, name != NULL ? " named " : "",
                name != NULL ? name : "");
        return 1;
    }
    return 0;
}

int ledger_overrides_each(struct db *db, ledger_override_fn fn, void *ctx, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db_handle(db), ledger_overrides_sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        db_set_error(db, "ledger_overrides_each: prepare", err, errlen);
        return -1;
    }
    int result = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *scope = (const char *)sqlite3_column_text(st, 0);
        struct ledger_override o = {
            .scope = scope != NULL && strcmp(scope, "user") == 0 ? LEDGER_SCOPE_USER
                                                                 : LEDGER_SCOPE_TENANT,
            .tenant = (const char *)sqlite3_column_text(st, 1),
            .user = (const char *)sqlite3_column_text(st, 2),
            .name = (const char *)sqlite3_column_text(st, 3),
            .value = sqlite3_column_double(st, 4),
            .updated_ms = sqlite3_column_int64(st, 5),
        };
        result = fn(&o, ctx);
        if (result != 0)
            break;
    }
    if (result == 0 && rc != SQLITE_DONE) {
        db_set_error(db, "ledger_overrides_each", err, errlen);
        result = -1;
    }
    sqlite3_finalize(st);
    return result;
}
