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
    {
        4,
        "memory and conversations",
        /* A tenant's memory namespace (memory/store_local.c): the embedder
         * and dimension its vectors were made with, and a generation
         * number that the triggers below bump on every write to its
         * memories, so any connection sees another's writes by reading one
         * row. count is kept by the same triggers. */
        "CREATE TABLE memory_namespaces ("
        " tenant TEXT PRIMARY KEY NOT NULL,"
        " embedder TEXT NOT NULL,"
        " model TEXT NOT NULL,"
        " dim INTEGER NOT NULL CHECK (dim > 0),"
        " generation INTEGER NOT NULL DEFAULT 0,"
        " count INTEGER NOT NULL DEFAULT 0,"
        " created_ms INTEGER NOT NULL"
        ");"
        /* Memories: the fields of DESIGN.md's identifier contract plus the
         * tenant and the vector (dim float32, little-endian). Ids are
         * unique per tenant, so one export can be imported into two
         * tenants without either touching the other. created_at and
         * updated_at are Unix ms; metadata is a JSON object. */
        "CREATE TABLE memories ("
        " rowid INTEGER PRIMARY KEY,"
        " tenant TEXT NOT NULL REFERENCES memory_namespaces (tenant),"
        " id TEXT NOT NULL,"
        " text TEXT NOT NULL,"
        " user_id TEXT NOT NULL,"
        " agent TEXT NOT NULL,"
        " kind TEXT NOT NULL,"
        " created_at INTEGER NOT NULL,"
        " updated_at INTEGER NOT NULL,"
        " metadata TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),"
        " vector BLOB NOT NULL,"
        " UNIQUE (tenant, id)"
        ");"
        "CREATE INDEX memories_tenant_user ON memories (tenant, user_id);"
        "CREATE INDEX memories_tenant_created ON memories (tenant, created_at);"
        /* Keyword ranking (bm25) over the texts, an external-content FTS5
         * table kept in step by triggers. */
        "CREATE VIRTUAL TABLE memories_fts USING fts5 ("
        " text, content='memories', content_rowid='rowid',"
        " tokenize='porter unicode61 remove_diacritics 2');"
        /* Every change to a row is also logged with the generation it
         * made, so a cached index at generation G catches up by re-reading
         * the rows changed after G instead of the whole namespace
         * (memory/store_local.c prunes old entries). */
        "CREATE TABLE memory_changes ("
        " tenant TEXT NOT NULL,"
        " generation INTEGER NOT NULL,"
        " row INTEGER NOT NULL,"
        " PRIMARY KEY (tenant, generation)"
        ") WITHOUT ROWID;"
        "CREATE TRIGGER memories_ai AFTER INSERT ON memories BEGIN"
        " INSERT INTO memories_fts (rowid, text) VALUES (new.rowid, new.text);"
        " UPDATE memory_namespaces SET generation = generation + 1, count = count + 1"
        "  WHERE tenant = new.tenant;"
        " INSERT INTO memory_changes (tenant, generation, row) VALUES (new.tenant,"
        "  (SELECT generation FROM memory_namespaces WHERE tenant = new.tenant), new.rowid);"
        " END;"
        "CREATE TRIGGER memories_ad AFTER DELETE ON memories BEGIN"
        " INSERT INTO memories_fts (memories_fts, rowid, text) VALUES ('delete', old.rowid, "
        "old.text);"
        " UPDATE memory_namespaces SET generation = generation + 1, count = count - 1"
        "  WHERE tenant = old.tenant;"
        " INSERT INTO memory_changes (tenant, generation, row) VALUES (old.tenant,"
        "  (SELECT generation FROM memory_namespaces WHERE tenant = old.tenant), old.rowid);"
        " END;"
        "CREATE TRIGGER memories_au AFTER UPDATE ON memories BEGIN"
        " INSERT INTO memories_fts (memories_fts, rowid, text) VALUES ('delete', old.rowid, "
        "old.text);"
        " INSERT INTO memories_fts (rowid, text) VALUES (new.rowid, new.text);"
        " UPDATE memory_namespaces SET generation = generation + 1 WHERE tenant = new.tenant;"
        " INSERT INTO memory_changes (tenant, generation, row) VALUES (new.tenant,"
        "  (SELECT generation FROM memory_namespaces WHERE tenant = new.tenant), new.rowid);"
        " END;"
        /* Document frequencies of the terms of a tenant's stored texts,
         * which weight the local embedder's queries (memory/manager.c). */
        "CREATE TABLE memory_df ("
        " tenant TEXT NOT NULL,"
        " term INTEGER NOT NULL,"
        " df INTEGER NOT NULL CHECK (df > 0),"
        " PRIMARY KEY (tenant, term)"
        ") WITHOUT ROWID;"
        /* Every add, refresh and delete of a memory (store/memhist.c):
         * when, who, what changed. detail is a JSON object that never
         * holds a memory's text, so forgetting forgets. */
        "CREATE TABLE memory_history ("
        " seq INTEGER PRIMARY KEY,"
        " tenant TEXT NOT NULL,"
        " memory_id TEXT NOT NULL,"
        " op TEXT NOT NULL CHECK (op IN ('add', 'refresh', 'delete', 'import')),"
        " user_id TEXT NOT NULL,"
        " agent TEXT NOT NULL,"
        " ts_ms INTEGER NOT NULL,"
        " detail TEXT NOT NULL DEFAULT '{}'"
        ");"
        "CREATE INDEX memory_history_tenant ON memory_history (tenant, seq);"
        /* Memories a turn could not store yet (store down, queue full),
         * written in the turn's transaction and retried by the background
         * worker (store/pending.c). payload is the JSON of the exchange. */
        "CREATE TABLE pending_memories ("
        " seq INTEGER PRIMARY KEY,"
        " turn TEXT NOT NULL UNIQUE,"
        " tenant TEXT NOT NULL,"
        " user_id TEXT NOT NULL,"
        " agent TEXT NOT NULL,"
        " payload TEXT NOT NULL,"
        " attempts INTEGER NOT NULL DEFAULT 0,"
        " last_error TEXT NOT NULL DEFAULT '',"
        " created_ms INTEGER NOT NULL,"
        " next_ms INTEGER NOT NULL DEFAULT 0"
        ");"
        "CREATE INDEX pending_memories_tenant ON pending_memories (tenant);"
        /* Conversations (store/convstore.c) and their messages, in order. */
        "CREATE TABLE conversations ("
        " id TEXT PRIMARY KEY NOT NULL,"
        " tenant TEXT NOT NULL,"
        " user_id TEXT NOT NULL,"
        " agent TEXT NOT NULL,"
        " title TEXT NOT NULL DEFAULT '',"
        " created_ms INTEGER NOT NULL,"
        " updated_ms INTEGER NOT NULL"
        ");"
        "CREATE INDEX conversations_tenant_user ON conversations (tenant, user_id, updated_ms);"
        "CREATE TABLE conversation_messages ("
        " conversation TEXT NOT NULL,"
        " seq INTEGER NOT NULL,"
        " turn TEXT NOT NULL,"
        " role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),"
        " content TEXT NOT NULL,"
        " ts_ms INTEGER NOT NULL,"
        " PRIMARY KEY (conversation, seq)"
        ") WITHOUT ROWID;"
        /* The conversation a ledger row's turn belonged to (NULL for
         * turns outside one), so costs compare memory on and off on the
         * same conversation. */
        "ALTER TABLE ledger ADD COLUMN conversation TEXT;"
        "CREATE INDEX ledger_conversation ON ledger (conversation);",
    },
    {
        5,
        "rollout",
        /* A tenant's own memory setting (`memchat rollout enable|disable`,
         * cleared by `rollout reset`); the global setting and the
         * percentage live in settings ('rollout.global' = 'on'|'off',
         * 'rollout.percent' = '0'..'100'). updated_ms is Unix ms. */
        "CREATE TABLE rollout_tenants ("
        " tenant TEXT PRIMARY KEY NOT NULL,"
        " memory INTEGER NOT NULL CHECK (memory IN (0, 1)),"
        " updated_ms INTEGER NOT NULL"
        ") WITHOUT ROWID;"
        /* What the rollout figures need of a turn besides its latencies:
         * the rule that decided memory (the rollout event's reason), how
         * many memories were injected and their mean similarity to the
         * message (context relevance; NULL when none were), its
         * conversation (cost per request on multi-turn conversations),
         * and its agent step (index from 1; NULL outside a multi-step
         * run). */
        "ALTER TABLE turn_metrics ADD COLUMN rollout TEXT;"
        "ALTER TABLE turn_metrics ADD COLUMN recalled INTEGER;"
        "ALTER TABLE turn_metrics ADD COLUMN relevance REAL;"
        "ALTER TABLE turn_metrics ADD COLUMN conversation TEXT;"
        "ALTER TABLE turn_metrics ADD COLUMN step INTEGER;",
    },
    {
        6,
        "memory moves",
        /* The checkpoint of an unfinished `memchat memory migrate` or
         * `reembed` (memory/move.h), one per tenant and kind, so a run
         * that stopped (Ctrl-C, a server down, a crash) resumes where it
         * was. source and target name the stores (migrate) or the store
         * and the new embedder "name/model/dim" (reembed); cursor is the
         * last memory id done in the phase; done and total count
         * memories. Times are Unix ms. */
        "CREATE TABLE memory_moves ("
        " tenant TEXT NOT NULL,"
        " kind TEXT NOT NULL CHECK (kind IN ('migrate', 'reembed')),"
        " source TEXT NOT NULL,"
        " target TEXT NOT NULL,"
        " phase TEXT NOT NULL,"
        " cursor TEXT NOT NULL DEFAULT '',"
        " done INTEGER NOT NULL DEFAULT 0,"
        " total INTEGER NOT NULL DEFAULT 0,"
        " started_ms INTEGER NOT NULL,"
        " updated_ms INTEGER NOT NULL,"
        " PRIMARY KEY (tenant, kind)"
        ") WITHOUT ROWID;"
        /* A reembed's copy of the tenant's memories, taken before the old
         * namespace is removed, with the new vector once embedded (NULL
         * until then): what the namespace is rebuilt from, so no memory
         * exists only in a store being rewritten. */
        "CREATE TABLE memory_move_rows ("
        " tenant TEXT NOT NULL,"
        " id TEXT NOT NULL,"
        " user_id TEXT NOT NULL,"
        " agent TEXT NOT NULL,"
        " kind TEXT NOT NULL,"
        " created_at INTEGER NOT NULL,"
        " updated_at INTEGER NOT NULL,"
        " text TEXT NOT NULL,"
        " metadata TEXT,"
        " vector BLOB,"
        " PRIMARY KEY (tenant, id)"
        ") WITHOUT ROWID;",
    },
};

const size_t db_migrations_count = sizeof db_migrations / sizeof db_migrations[0];
