/*
 * Budgets that really block (DESIGN.md stage 6): US dollars per tenant and
 * per user of a tenant, per calendar period in UTC (a day from 00:00, an
 * ISO week from Monday 00:00, a month from the 1st 00:00). Limits come from
 * TENANT_BUDGET_USD and USER_BUDGET_USD (0 = no budget) and per-tenant or
 * per-user overrides set at run time (`memchat limits set`).
 *
 * A turn reserves its estimated cost before the call, from every budget
 * that applies, all or nothing: a reservation is refused when spent +
 * reserved + estimate would pass the limit, with a message naming the
 * budget, the amounts and when it resets. After the call the turn settles
 * the reservation with what it really cost, whatever happened: a streamed
 * reply may cost more than estimated (spent may then pass the limit: the
 * money is gone, and the next turn is refused); a retried turn holds one
 * reservation for all its attempts and settles once with their sum; a
 * cancelled turn settles what it used, maybe 0; a turn answered from the
 * cache settles 0, and a turn that never sent is released. Settling twice
 * is a no-op, so the error paths may settle freely.
 *
 * Periods: a reservation belongs to the period it was made in. When a
 * period ends, every budget starts the new one with nothing spent and
 * nothing reserved (or what the loader reports); a reservation made before
 * the turn of the period settles into the old period and no longer counts.
 * So the ledger should date a turn's cost by the turn's start, and the
 * loader should sum rows by that date.
 *
 * What was spent before the process started comes from the ledger: through
 * a loader callback, asked for each (tenant, user) the first time it is
 * needed in a period, or pushed with budget_set_spent(). Amounts are kept
 * in integer nano-dollars, so sums and the limit check are exact. The
 * clock is explicit (now_ms, wall clock in Unix ms). Thread-safe: one
 * mutex guards everything; the loader runs under it.
 *
 * Memory stays bounded like the rate limiter's: at most max_entries keys
 * without an override or an outstanding reservation, least recently used
 * first out, keys of an ended period first. A dropped key is loaded again
 * the next time it is needed; without a loader it would start from 0.
 *
 * Shared budgets (RATE_LIMIT_BACKEND=redis, budget_use_redis()): every
 * process reserves, settles and reads the same figures on one Redis
 * server, by scripts that run atomically there (client/budget_redis.h has
 * the key layout). The limits are the configured ones, overridden by what
 * Redis holds for the tenant or user (the limits code writes it there);
 * budget_set_override() and friends then only set what this process
 * enforces on its own when Redis cannot be used. What was spent before
 * Redis knew a budget comes from the loader (or budget_set_spent()), once:
 * the first process to report it wins. The loader then runs without any
 * Redis round trip in progress but still with the budget locked, so its
 * calls stay serialised. When Redis cannot be used, REDIS_FAILURE=open
 * (the default) lets this process decide alone (decision.fell_back says
 * so) and REDIS_FAILURE=closed refuses (BUDGET_UNAVAILABLE); each change
 * of state is logged once, and Redis is used again as soon as it answers.
 */
#ifndef MEMCHAT_CLIENT_BUDGET_H
#define MEMCHAT_CLIENT_BUDGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/ident.h"

struct config;
struct redis;

/* The largest budget, estimate or cost accepted, in USD. */
#define BUDGET_MAX_USD             1e9
#define BUDGET_MAX_ENTRIES_DEFAULT 65536
#define BUDGET_MAX_ENTRIES_MIN     16
/* The calendar range budget_period_bounds() accepts: years 1 to 9999. */
#define BUDGET_TIME_MIN_MS (-62135596800000LL)
#define BUDGET_TIME_MAX_MS 253402300799999LL
/* The length of a shared reservation's id (hex digits). */
#define BUDGET_RID_LEN 32

enum budget_period { BUDGET_DAY, BUDGET_WEEK, BUDGET_MONTH };

enum budget_scope { BUDGET_TENANT, BUDGET_USER, BUDGET_SCOPE__COUNT };

/* The configured budgets; budget_limits_init() fills the defaults. */
struct budget_limits {
    double usd[BUDGET_SCOPE__COUNT]; /* TENANT_BUDGET_USD, USER_BUDGET_USD; 0 = none */
    enum budget_period period;       /* BUDGET_PERIOD */
    size_t max_entries;              /* keys held; 0 = the default */
};

/* Reads what (tenant, user) spent in [start_ms, end_ms) into *usd; user
 * NULL means the whole tenant. 0, or -1 with a message: the reservation
 * then fails (a budget that cannot be read does not let turns through).
 * Runs with the budget locked: it must not call the budget. */
typedef int (*budget_load_fn)(void *ud, const char *tenant, const char *user, int64_t start_ms,
                              int64_t end_ms, double *usd, char *err, size_t errlen);

/* A reservation, held by the turn (no heap; copyable). id 0 means none is
 * outstanding. */
struct budget_reservation {
    uint64_t id;
    char tenant[IDENT_MAX + 1];
    char user[IDENT_MAX + 1]; /* "" for a tenant-only turn */
    bool held[BUDGET_SCOPE__COUNT];
    int64_t period_start_ms; /* the period the reservation belongs to */
    int64_t est_nusd;        /* the estimate, in nano-dollars */
    bool shared;             /* held on Redis, under rid; else in this process */
    char rid[BUDGET_RID_LEN + 1];
};

/* One budget as events and front ends show it. */
struct budget_scope_view {
    bool limited;    /* a budget applies; the amounts below are 0 otherwise */
    bool overridden; /* its limit comes from `memchat limits set` */
    bool known;      /* spent is known for the current period (loaded or set) */
    double limit_usd;
    double spent_usd;     /* settled in the current period */
    double reserved_usd;  /* outstanding reservations */
    double remaining_usd; /* limit - spent - reserved; negative when overspent */
};

struct budget_view {
    struct budget_scope_view s[BUDGET_SCOPE__COUNT];
    enum budget_period period;
    int64_t period_start_ms;
    int64_t resets_at_ms; /* the end of the current period */
};

enum budget_result {
    BUDGET_ERROR = -1,      /* bad arguments or the loader failed; message says which */
    BUDGET_OK = 0,          /* reserved (maybe nothing: no budget applies) */
    BUDGET_REFUSED = 1,     /* the estimate does not fit a budget (exit 4) */
    BUDGET_NO_PRICE = 2,    /* the model has no price and a budget applies (exit 4) */
    BUDGET_UNAVAILABLE = 3, /* Redis cannot be used and REDIS_FAILURE=closed (exit 4) */
};

struct budget_decision {
    enum budget_result result;
    enum budget_scope scope;   /* REFUSED, NO_PRICE: the budget that refused */
    double reserved_usd;       /* OK: this turn's reservation (the `budget` event) */
    struct budget_view view;   /* after the reservation, or as things stood */
    char message[640];         /* all but OK: for humans */
    bool fell_back;            /* Redis could not be used: this process decided alone */
    char fallback_reason[256]; /* fell_back: why, naming the server (backend.fallback) */
};

/* Fills lim with no budgets, monthly. */
void budget_limits_init(struct budget_limits *lim);
/* Fills lim from TENANT_BUDGET_USD, USER_BUDGET_USD (numbers; unset = 0)
 * and BUDGET_PERIOD (day|week|month), looked up by name; a variable
 * missing from the table keeps its default. */
void budget_limits_from_config(const struct config *cfg, struct budget_limits *lim);

/* The period [*start_ms, *end_ms) holding now_ms, in UTC. 0, or -1 when
 * now_ms is outside years 1..9999. */
int budget_period_bounds(enum budget_period p, int64_t now_ms, int64_t *start_ms, int64_t *end_ms);
/* "day", "week", "month". */
const char *budget_period_name(enum budget_period p);
/* Parses "day", "week" or "month"; 0, or -1 for anything else. */
int budget_period_parse(const char *s, enum budget_period *out);
/* ms as ISO 8601 UTC, "2025-02-01T00:00:00Z" (".123" when ms are not 0),
 * into out (32 bytes are enough). */
void budget_format_time(int64_t ms, char *out, size_t n);

/* A budget over lim, or NULL with a message when a field is out of
 * range. Free with budget_free(). */
struct budget *budget_new(const struct budget_limits *lim, char *err, size_t errlen);
/* NULL is a no-op. Outstanding reservations simply vanish. */
void budget_free(struct budget *b);
/* Keeps the budgets on Redis (RATE_LIMIT_BACKEND=redis): r is lent and
 * must outlive b; fail_closed is REDIS_FAILURE=closed. */
void budget_use_redis(struct budget *b, struct redis *r, bool fail_closed);
/* Sets (fn NULL: removes) the loader of spent amounts; ud is lent. */
void budget_set_loader(struct budget *b, budget_load_fn fn, void *ud);
/* Records that (tenant, user) spent usd in the period starting at
 * period_start_ms (which must be a period's start); data for a period
 * older than the one the key is in is ignored. 0, or -1 with a message. */
int budget_set_spent(struct budget *b, const char *tenant, const char *user,
                     int64_t period_start_ms, double usd, char *err, size_t errlen);

/* Reserves est_usd (NAN or negative: the model has no price) for a turn
 * of (tenant, user; user may be NULL) against every budget that applies,
 * all or nothing. On OK, *res holds the reservation (settle or release
 * it exactly once; later calls are no-ops); otherwise res->id is 0. model
 * only names the model in messages. Fills *d. With Redis, the shared
 * budgets decide; when Redis cannot be used, this process decides
 * (d->fell_back) or, fail closed, BUDGET_UNAVAILABLE. */
enum budget_result budget_reserve(struct budget *b, const char *tenant, const char *user,
                                  const char *model, double est_usd, int64_t now_ms,
                                  struct budget_reservation *res, struct budget_decision *d);
/* Replaces the reservation's estimate by the actual cost (NAN or negative
 * counts 0), fills *after (may be NULL) with the budgets as they now
 * stand, and sets res->id to 0. A reservation held on Redis is settled
 * there; when Redis cannot be used then, the settle is logged and dropped
 * (its lease frees the money there within BUDGET_REDIS_LEASE_MS). */
void budget_settle(struct budget *b, struct budget_reservation *res, double actual_usd,
                   int64_t now_ms, struct budget_view *after);
/* Drops a reservation whose call was never made (settle with 0). */
void budget_release(struct budget *b, struct budget_reservation *res, int64_t now_ms);
/* The budgets of (tenant, user; either may be NULL) at now_ms, without
 * loading or changing anything: Redis's figures while its connection is
 * up (a snapshot never waits for one), this process's otherwise. */
void budget_snapshot(struct budget *b, const char *tenant, const char *user, int64_t now_ms,
                     struct budget_view *out);

/* Sets the budget of one tenant (user NULL) or one user of a tenant, in
 * USD per period; 0 means none for that key. 0, or -1 with a message.
 * With Redis, the overrides in force are Redis's; these are this
 * process's, for when Redis cannot be used. */
int budget_set_override(struct budget *b, const char *tenant, const char *user, double usd,
                        char *err, size_t errlen);
/* Removes the override of a tenant or user; false when it had none. */
bool budget_clear_override(struct budget *b, const char *tenant, const char *user);
/* The override of a tenant or user into *usd; false when it has none. */
bool budget_get_override(struct budget *b, const char *tenant, const char *user, double *usd);

/* How many keys the budget holds (for tests and doctor). */
size_t budget_entry_count(struct budget *b);
/* "tenant", "user": the event field. */
const char *budget_scope_name(enum budget_scope s);

#endif
