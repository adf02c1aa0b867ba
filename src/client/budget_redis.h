/*
 * The Redis side of the shared budgets (RATE_LIMIT_BACKEND=redis, issue
 * 12): Lua scripts that reserve, settle and read budgets atomically on the
 * server, so every memchat process sees and changes the same figures.
 * budget.c decides what an answer means for the turn (messages, falling
 * back, logging); this module knows the keys, the scripts and the replies.
 *
 * Keys, after the connection's prefix P (REDIS_KEY_PREFIX):
 *   P budget:t:<tenant>:<period_start_ms>         a tenant's budget, one period
 *   P budget:u:<tenant>/<user>:<period_start_ms>  a user's budget, one period
 * are hashes of
 *   spent     nano-dollars settled in the period; absent until initialised
 *   r:<rid>   an outstanding reservation, "<nano-dollars> <lease end, ms>"
 *   x:<rid>   a reservation whose lease ended, "<nano-dollars> <forget at, ms>":
 *             no longer counted, but a late settle still adds its cost
 * expiring BUDGET_REDIS_KEEP_MS after the period ends (by the clock of the
 * last process that reserved: a time to live, set at each reservation). The
 * limits in force are the configured ones, passed by the caller, unless
 *   P ovr:t:<tenant>, P ovr:u:<tenant>/<user>  field budget_usd
 * holds an override (decimal USD, "0" = no budget; written by the limits
 * code; a value that is not a non-negative number is ignored).
 *
 * Amounts are integer nano-dollars written as decimal strings, exactly as
 * budget.c keeps them. Lua 5.1's numbers are doubles, exact only up to
 * 2^53 nano-dollars ($9M), below BUDGET_MAX_USD, so the scripts split
 * each amount into whole dollars and nano-dollars, both exact, to add and
 * compare: every figure is exact up to the saturation budget.c uses.
 *
 * Time is the caller's (now_ms): the period of a key and the end of a
 * lease are computed by the process that reserves.
 */
#ifndef MEMCHAT_CLIENT_BUDGET_REDIS_H
#define MEMCHAT_CLIENT_BUDGET_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/budget.h"
#include "net/redis.h"

/* How long a reservation holds money without being settled: a process
 * killed mid-turn stops holding it after this. */
#define BUDGET_REDIS_LEASE_MS 3600000LL
/* How long a lapsed reservation is remembered for a late settle. */
#define BUDGET_REDIS_TOMB_MS 86400000LL
/* How long a period's keys outlive the period (late settles land there). */
#define BUDGET_REDIS_KEEP_MS 86400000LL
/* Amounts saturate here, as in budget.c (INT64_MAX / 4 nano-dollars). */
#define BUDGET_REDIS_SUM_MAX (INT64_MAX / 4)

/* One budget as the server holds it, in nano-dollars. */
struct budget_redis_figures {
    int64_t limit;   /* in force; 0 = no budget */
    bool overridden; /* the limit comes from the ovr: hash */
    bool known;      /* spent is initialised for the period */
    int64_t spent, reserved;
};

enum budget_redis_outcome {
    BUDGET_REDIS_RESERVED,  /* the estimate is held by every budget that applies */
    BUDGET_REDIS_NONE,      /* no budget applies: nothing held */
    BUDGET_REDIS_NO_PRICE,  /* a budget applies and the model has no price */
    BUDGET_REDIS_REFUSED,   /* scope's budget has no room: nothing held */
    BUDGET_REDIS_NEED_INIT, /* need_init budgets lack spent: load them and ask again */
};

/* What a reservation (or a snapshot, which reads est, rid and init not)
 * is about. */
struct budget_redis_request {
    const char *tenant;
    const char *user; /* NULL: the tenant alone */
    int64_t period_start_ms, period_end_ms, now_ms;
    int64_t limit[BUDGET_SCOPE__COUNT]; /* configured, nano-dollars; 0 = none */
    int64_t est_nusd;
    bool no_price;
    const char *rid;
    bool has_init[BUDGET_SCOPE__COUNT]; /* spent to set when the server lacks it */
    int64_t init_nusd[BUDGET_SCOPE__COUNT];
};

struct budget_redis_answer {
    enum budget_redis_outcome outcome;
    enum budget_scope scope; /* REFUSED, NO_PRICE: the budget concerned */
    bool need_init[BUDGET_SCOPE__COUNT];
    struct budget_redis_figures
        f[BUDGET_SCOPE__COUNT]; /* after the reservation, or as they stand */
};

/* A fresh random reservation id, BUDGET_RID_LEN hex digits. */
void budget_redis_new_rid(char out[BUDGET_RID_LEN + 1]);
/* Reserves q->est_nusd under q->rid on every budget of (tenant, user)
 * that applies, all or nothing, after setting spent where q->has_init
 * says and the server lacks it; *a says what happened. A redis status
 * with a message. */
enum redis_status budget_redis_reserve(struct redis *r, const struct budget_redis_request *q,
                                       struct budget_redis_answer *a, char *err, size_t errlen);
/* Removes res's reservation (a live or lapsed one) from the budgets it
 * held and adds actual_nusd to their spent, in res's period; a reservation
 * the server no longer has is left alone (settling twice adds once). */
enum redis_status budget_redis_settle(struct redis *r, const struct budget_reservation *res,
                                      int64_t actual_nusd, char *err, size_t errlen);
/* The figures of q's budgets at q->now_ms into f (scopes that do not
 * apply: zero), changing nothing. */
enum redis_status budget_redis_snapshot(struct redis *r, const struct budget_redis_request *q,
                                        struct budget_redis_figures f[BUDGET_SCOPE__COUNT],
                                        char *err, size_t errlen);

#endif
