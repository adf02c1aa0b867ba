/*
 * The rate limiter's buckets on Redis (RATE_LIMIT_BACKEND=redis, issue 12):
 * the same global, tenant and user buckets for requests and tokens as
 * client/ratelimit.c, with the same arithmetic (levels in units x window
 * ms, refilled by capacity per ms, full when first seen), kept in Redis
 * hashes and changed only by Lua scripts, so every process that shares the
 * server takes from the same buckets atomically. The clock is the server's
 * (TIME), so processes whose clocks differ still agree; tests may pass
 * their own.
 *
 * Keys (after REDIS_KEY_PREFIX): `rl:g` (global), `rl:t:<tenant>`,
 * `rl:u:<tenant>/<user>`: fields `rl`, `rc`, `rt` (requests: level,
 * capacity it was kept for, last refill ms) and `tl`, `tc`, `tt`
 * (tokens). Each key expires when all its buckets would be full again, so
 * idle keys cost nothing. Overrides set with `memchat limits set` live in
 * `ovr:t:<tenant>` and `ovr:u:<tenant>/<user>`, fields `rpm`, `tpm` and
 * `budget_usd` (decimal strings; absent = the configured value), read by
 * the scripts at every acquire, so every process enforces the same ones.
 *
 * This module only speaks to Redis; client/ratelimit.c decides when to use
 * it, words the decisions and falls back to its own buckets.
 */
#ifndef MEMCHAT_CLIENT_RATELIMIT_REDIS_H
#define MEMCHAT_CLIENT_RATELIMIT_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/ratelimit.h"
#include "net/redis.h"

/* What the acquire script decided, before it is put in words. */
struct ratelimit_redis_decision {
    enum ratelimit_result result; /* OK, WAIT or REFUSED */
    long long wait_ms;
    enum ratelimit_scope scope;
    enum ratelimit_kind kind;
    long long limit;
    bool overridden;
};

/* now_ms for the calls below: < 0 uses the server's clock (the program);
 * tests pass their own. */

/* Takes one request and `tokens` from every bucket of (tenant, user; user
 * may be NULL) on the server if all have room, else takes nothing and says
 * why in *d. Ids are valid (the caller checked them). */
enum redis_status ratelimit_redis_acquire(struct redis *r, const struct ratelimit_limits *lim,
                                          const char *tenant, const char *user, long long tokens,
                                          int64_t now_ms, struct ratelimit_redis_decision *d,
                                          char *err, size_t errlen);
/* Adds requests and tokens (either sign: a refund gives back, a reconcile
 * pays or gives back) to the limited buckets of (tenant, user). */
enum redis_status ratelimit_redis_adjust(struct redis *r, const struct ratelimit_limits *lim,
                                         const char *tenant, const char *user, long long requests,
                                         long long tokens, int64_t now_ms, char *err,
                                         size_t errlen);
/* The six buckets of (tenant, user; either may be NULL) as they stand. */
enum redis_status ratelimit_redis_snapshot(struct redis *r, const struct ratelimit_limits *lim,
                                           const char *tenant, const char *user, int64_t now_ms,
                                           struct ratelimit_view *out, char *err, size_t errlen);
/* Sets (clear false) or removes one override field ("rpm", "tpm",
 * "budget_usd") of a tenant (user NULL) or user, for every process. */
enum redis_status ratelimit_redis_override(struct redis *r, const char *tenant, const char *user,
                                           const char *name, double value, bool clear, char *err,
                                           size_t errlen);
/* The override fields "rpm", "tpm" and "budget_usd" of a tenant (user
 * NULL) or user as Redis holds them: value[i] and has[i] in that order. */
enum redis_status ratelimit_redis_overrides_get(struct redis *r, const char *tenant,
                                                const char *user, double value[3], bool has[3],
                                                char *err, size_t errlen);

#endif
