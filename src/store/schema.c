/*
 * memchat's schema, as the list of forward migrations that db_open() applies
 * in order (store/db.c). Migrations are append-only: once a version has been
 * released its SQL and its name are never edited (files in the field were
 * built by it, and db_open() checks the recorded names); a change to the
 * schema is a new migration at the end. The SQL is plain text on purpose:
 * building it from macros such as MC_STAGE_LIST would silently change an
 * old migration when the list grows. A new stage therefore needs a new
 * migration adding its lat_<stage> column (test_store checks that every
 * stage has one).
 */
#include "config.h"

#include "store/db.h"

const struct db_migration db_migrations[] = {
    {
        1,
        "turn metrics",
        /* One row per turn (store/metrics.c). Latencies are milliseconds,
         * NULL when the stage did not run; ts_ms is Unix ms. */
        "CREATE TABLE turn_metrics ("
        " turn TEXT PRIMARY KEY NOT NULL,"
        " ts_ms INTEGER NOT NULL,"
        " tenant TEXT NOT NULL,"
        " user_id TEXT NOT NULL,"
        " agent TEXT NOT NULL,"
        " provider TEXT,"
        " model TEXT,"
        " memory INTEGER NOT NULL,"
        " lat_rollout REAL,"
        " lat_retrieve REAL,"
        " lat_inject REAL,"
        " lat_minify REAL,"
        " lat_cache REAL,"
        " lat_ratelimit REAL,"
        " lat_key REAL,"
        " lat_first_token REAL,"
        " lat_send REAL,"
        " lat_tools REAL,"
        " lat_total REAL,"
        " status TEXT NOT NULL,"
        " prompt_tokens INTEGER,"
        " completion_tokens INTEGER,"
        " cost_usd REAL,"
        " stored INTEGER,"
        " store_ms REAL"
        ");"
        "CREATE INDEX turn_metrics_tenant_ts ON turn_metrics (tenant, ts_ms);",
    },
    {
        2,
        "settings",
        /* Persisted global settings (the rollout's global on/off); updated_ms
         * is Unix ms. */
        "CREATE TABLE settings ("
        " key TEXT PRIMARY KEY NOT NULL,"
        " value TEXT NOT NULL,"
        " updated_ms INTEGER NOT NULL"
        ");",
    },
    {
        3,
        "ledger and limits",
        /* The cost ledger (store/ledger.c): one row per turn, enforced by
         * the primary key. usd is NULL when the model has no price (never
         * 0 for "unknown"); token counts and latency are NULL when not
         * reported. The indexes serve the costs report (ts_ms) and the
         * budgets' sums per tenant and per user over a period. */
        "CREATE TABLE ledger ("
        " turn TEXT PRIMARY KEY NOT NULL,"
        " ts_ms INTEGER NOT NULL,"
        " tenant TEXT NOT NULL,"
        " user_id TEXT NOT NULL,"
        " agent TEXT NOT NULL,"
        " provider TEXT,"
        " model TEXT,"
        " prompt_tokens INTEGER CHECK (prompt_tokens IS NULL OR prompt_tokens >= 0),"
        " completion_tokens INTEGER CHECK (completion_tokens IS NULL OR completion_tokens >= 0),"
        " cached_tokens INTEGER CHECK (cached_tokens IS NULL OR cached_tokens >= 0),"
        " usd REAL CHECK (usd IS NULL OR usd >= 0),"
        " latency_ms REAL,"
        " cache_hit INTEGER NOT NULL CHECK (cache_hit IN (0, 1)),"
        " memory INTEGER NOT NULL CHECK (memory IN (0, 1)),"
        " retries INTEGER NOT NULL CHECK (retries >= 0),"
        " status TEXT NOT NULL,"
        " minify_bytes_saved INTEGER NOT NULL DEFAULT 0 CHECK (minify_bytes_saved >= 0)"
        ");"
        "CREATE INDEX ledger_ts ON ledger (ts_ms);"
        "CREATE INDEX ledger_tenant_ts ON ledger (tenant, ts_ms);"
        "CREATE INDEX ledger_tenant_user_ts ON ledger (tenant, user_id, ts_ms);"
        /* Per-tenant and per-user values of the rate limits and budgets
         * (`memchat limits set`); user_id is '' exactly for a tenant's
         * own override. updated_ms is Unix ms. */
        "CREATE TABLE limit_overrides ("
        " scope TEXT NOT NULL CHECK (scope IN ('tenant', 'user')),"
        " tenant TEXT NOT NULL,"
        " user_id TEXT NOT NULL DEFAULT '',"
        " name TEXT NOT NULL,"
        " value REAL NOT NULL CHECK (value >= 0),"
        " updated_ms INTEGER NOT NULL,"
        " PRIMARY KEY (scope, tenant, user_id, name),"
        " CHECK ((scope = 'tenant') = (user_id = ''))"
        ");",
    },
};

const size_t db_migrations_count = sizeof db_migrations / sizeof db_migrations[0];
