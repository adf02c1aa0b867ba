/*
 * The cost ledger and the limit overrides (schema.c, migration 3).
 *
 * The ledger holds one row per turn: who (tenant, user, agent), what
 * (provider, model), the tokens, the cost in USD, the latency, whether the
 * answer came from the cache, whether memory was on, the retries, the
 * status and the bytes JSON minification saved. The turn's id is the
 * primary key, so "exactly one row per turn" is the schema's rule, not the
 * caller's discipline. A cost that is not known (a model without a price)
 * is NULL, never 0: sums add the known costs and count the unknown ones
 * apart. Budgets read their spending from here at start-up, and
 * `memchat costs` reports from here.
 *
 * The limit overrides are the per-tenant and per-user values that
 * `memchat limits set` stores in place of the configured RATE_LIMIT_* and
 * *_BUDGET_USD defaults (names in use: "rpm", "tpm", "budget_usd").
 *
 * Every function here is one or a few statements on the caller's
 * connection, never its own transaction: the turn worker writes the ledger
 * row inside the transaction that holds the turn's metrics row.
 */
#ifndef MEMCHAT_STORE_LEDGER_H
#define MEMCHAT_STORE_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct db;

/* One turn's row. Strings are borrowed for the call. */
struct ledger_row {
    const char *turn;                  /* UUIDv7 of the turn, the primary key; required */
    int64_t ts_ms;                     /* when the turn started, Unix ms (UTC) */
    const char *tenant, *user, *agent; /* required */
    const char *provider, *model;      /* NULL when the turn never chose one */
    long long prompt_tokens;           /* -1 (any negative) is NULL: not reported */
    long long completion_tokens;       /* likewise */
    long long cached_tokens;           /* prompt tokens served from the provider's cache */
    double usd;                        /* negative or NaN is NULL: no price known */
    double latency_ms;                 /* whole turn; negative or NaN is NULL */
    bool cache_hit;                    /* answered from memchat's response cache */
    bool memory;                       /* memory on for this turn */
    int retries;                       /* retries of the send stage, >= 0 */
    const char *status;                /* "ok", "error:<code>" or "cancelled"; required */
    long long minify_bytes_saved;      /* bytes JSON minification removed, >= 0 */
    const char *conversation;          /* the turn's conversation; NULL when none */
};

/* Inserts r. The caller owns the transaction (db_begin/db_commit around
 * this and the metrics row); this never begins or commits. 0, or -1 with a
 * message naming the turn and the file: a missing required field, a
 * negative retries or bytes count, or "turn X already has a ledger row". */
int ledger_insert(struct db *db, const struct ledger_row *r, char *err, size_t errlen);

/* Who a sum or an override is about. */
enum ledger_scope {
    LEDGER_SCOPE_TENANT, /* every user of a tenant */
    LEDGER_SCOPE_USER,   /* one user of one tenant (user ids are per tenant) */
};

/* The known costs of scope's turns with since_ms <= ts_ms < until_ms, into
 * *usd; turns of that window whose cost is NULL are counted into
 * *unknown_turns (may be NULL). user is ignored for LEDGER_SCOPE_TENANT.
 * 0, or -1 with a message. */
int ledger_spent_usd(struct db *db, enum ledger_scope scope, const char *tenant, const char *user,
                     int64_t since_ms, int64_t until_ms, double *usd, long long *unknown_turns,
                     char *err, size_t errlen);

/* How ledger_costs() groups the rows. */
enum ledger_group {
    LEDGER_BY_TENANT,
    LEDGER_BY_USER, /* key "tenant/user": user ids are per tenant */
    LEDGER_BY_AGENT,
    LEDGER_BY_MODEL,  /* key NULL for turns without a model */
    LEDGER_BY_DAY,    /* key "YYYY-MM-DD", the UTC day of ts_ms */
    LEDGER_BY_NONE,   /* one group (key NULL) holding every row */
    LEDGER_BY_MEMORY, /* key "on" or "off": turns with memory on against off */
    /* key "CONVERSATION/memory-on|off" ("-" for turns outside one): the
     * cost of a conversation's turns with memory on against off */
    LEDGER_BY_CONVERSATION,
};

/* One group's sums. Token sums treat NULL counts as 0. */
struct ledger_costs_row {
    const char *key; /* borrowed for the callback; see enum ledger_group */
    long long turns;
    long long prompt_tokens, completion_tokens, cached_tokens;
    double usd;                   /* sum of the known costs (0 when none is known) */
    long long unknown_cost_turns; /* turns whose cost is NULL */
    long long cache_hits;
    long long bytes_saved; /* minification savings */
};

/* Called once per group; a nonzero return stops the walk and becomes
 * ledger_costs()'s result. */
typedef int (*ledger_costs_fn)(const struct ledger_costs_row *row, void *ctx);

/* Sums the rows with ts_ms >= since_ms (INT64_MIN: all) by group, calling
 * fn for each group in ascending key order (NULL first). No rows, no
 * calls (LEDGER_BY_NONE included). 0, fn's nonzero result, or -1 with a
 * message. */
int ledger_costs(struct db *db, enum ledger_group by, int64_t since_ms, ledger_costs_fn fn,
                 void *ctx, char *err, size_t errlen);
/* The group's name as `memchat costs --by` spells it ("tenant", ...,
 * "none"). */
const char *ledger_group_name(enum ledger_group by);
/* The group called name; false when there is none. */
bool ledger_group_parse(const char *name, enum ledger_group *by);

/* --- limit overrides --- */

/* An override's name: lowercase letters, digits and '_', 1 to 32 bytes. */
#define LEDGER_OVERRIDE_NAME_MAX 32

/* One stored override, borrowed for the callback. */
struct ledger_override {
    enum ledger_scope scope;
    const char *tenant;
    const char *user; /* "" for LEDGER_SCOPE_TENANT */
    const char *name;
    double value;
    int64_t updated_ms;
};

/* Sets (or replaces) name for scope: tenant always, user only for
 * LEDGER_SCOPE_USER (it must be NULL or "" for a tenant), both valid ids
 * (util/ident.h); value finite and >= 0 (0 = unlimited, as in the
 * configuration); now_ms recorded as updated_ms. 0, or -1 with a message
 * naming what is wrong. */
int ledger_override_set(struct db *db, enum ledger_scope scope, const char *tenant,
                        const char *user, const char *name, double value, int64_t now_ms, char *err,
                        size_t errlen);
/* Removes name for scope/tenant/user, or every name there when name is
 * NULL. 0 removed, 1 there was nothing to remove (err says what), -1 error. */
int ledger_override_clear(struct db *db, enum ledger_scope scope, const char *tenant,
                          const char *user, const char *name, char *err, size_t errlen);

/* Called once per override; nonzero stops the walk and is returned. */
typedef int (*ledger_override_fn)(const struct ledger_override *o, void *ctx);
/* Calls fn for every override, ordered by scope (tenant first), tenant,
 * user, name. 0, fn's nonzero result, or -1 with a message. */
int ledger_overrides_each(struct db *db, ledger_override_fn fn, void *ctx, char *err,
                          size_t errlen);

#endif
