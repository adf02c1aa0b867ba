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
};

const size_t db_migrations_count = sizeof db_migrations / sizeof db_migrations[0];
