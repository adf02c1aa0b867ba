/*
 * The rate limiter of the turn pipeline (DESIGN.md stage 6): token buckets
 * for requests and for tokens at three scopes, global, tenant and user (a
 * user bucket belongs to one (tenant, user) pair). Each bucket holds at most
 * its per-window value (RATE_LIMIT_RPM and friends; 0 = unlimited) and
 * refills continuously at value / window, so a full bucket allows a burst of
 * one window's worth and then the steady rate. Tenants and users may carry
 * overrides set at run time (`memchat limits set`, persisted by the CLI in
 * the data file and loaded here at start).
 *
 * A turn takes one request and its estimated tokens from every bucket that
 * applies, all or nothing, and gives back or pays the difference once the
 * real usage is known (ratelimit_reconcile). The clock is explicit: every
 * function takes now_ms, which must come from one monotonic clock for the
 * whole limiter (clock_mono_ms() in the program, a plain counter in tests),
 * so tests never sleep. Thread-safe: one mutex guards everything.
 *
 * The protocol for a turn, done for it by ratelimit_acquire_wait():
 *   1. ratelimit_acquire(): OK takes the request and tokens; REFUSED means
 *      the turn can never fit (it needs more tokens than a bucket holds);
 *      WAIT gives the exact ms after which every bucket would have room and
 *      the binding scope and kind (for the `ratelimit.wait` event).
 *   2. on WAIT, sleep that long (cancellably) and acquire again, until the
 *      waits add up to more than RATE_LIMIT_MAX_WAIT_MS: a wait that does
 *      not fit in what is left of it refuses at once rather than sleeping
 *      in vain (buckets only refill at their fixed rate, so it cannot end
 *      sooner unless another turn is reconciled downwards).
 *   3. after the call, ratelimit_reconcile() with the estimate and the real
 *      total; a turn that took its share and then never sent (refused by
 *      its budget, say) gives it back with ratelimit_refund().
 *
 * Shared buckets (RATE_LIMIT_BACKEND=redis, ratelimit_use_redis()): the
 * same buckets live on Redis (client/ratelimit_redis.h), so processes that
 * share the server share the limits, overrides included. When Redis cannot
 * be used, REDIS_FAILURE decides: open takes the turn from this process's
 * own buckets and says so in the decision (fell_back, for the
 * `backend.fallback` event); closed refuses it (RATELIMIT_UNAVAILABLE).
 * Each call tries Redis again (net/redis.h spaces the attempts), so the
 * limiter goes back to the shared buckets as soon as the server is back.
 * A turn's reconcile and refund go to the buckets its acquire took from.
 *
 * Memory stays bounded: the buckets of a tenant or user are made on first
 * use and kept in one table of at most max_entries keys, least recently
 * used first out. A full bucket that has been idle carries no information
 * (a fresh one would be identical), so such keys are dropped first, a few
 * at every acquire; only when more than max_entries keys were active within
 * one window does the table forget a key that still had usage, which can
 * only make that key's limits more lenient, never stricter. Keys with an
 * override are never dropped.
 */
#ifndef MEMCHAT_CLIENT_RATELIMIT_H
#define MEMCHAT_CLIENT_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config;

/* The largest per-window value and the largest token need accepted; a
 * need above it is over every limit. Keeps the bucket arithmetic (value x
 * window in ms) far inside 64 bits. */
#define RATELIMIT_MAX_VALUE 1000000000LL
/* The refill window's range in ms (1 ms .. 7 days) and its default. */
#define RATELIMIT_WINDOW_MAX_MS     (7LL * 24 * 3600 * 1000)
#define RATELIMIT_WINDOW_DEFAULT_MS 60000LL
/* Default and smallest bound on the number of tenant and user keys held. */
#define RATELIMIT_MAX_ENTRIES_DEFAULT 65536
#define RATELIMIT_MAX_ENTRIES_MIN     16

enum ratelimit_scope { RATELIMIT_GLOBAL, RATELIMIT_TENANT, RATELIMIT_USER, RATELIMIT_SCOPE__COUNT };

enum ratelimit_kind { RATELIMIT_REQUESTS, RATELIMIT_TOKENS, RATELIMIT_KIND__COUNT };

/* The configured limits; ratelimit_limits_init() fills the defaults. */
struct ratelimit_limits {
    /* Per window, by scope and kind (RATE_LIMIT_RPM, ..., USER_RATE_LIMIT_TPM);
     * 0 = unlimited. */
    long long value[RATELIMIT_SCOPE__COUNT][RATELIMIT_KIND__COUNT];
    long long window_ms;   /* RATE_LIMIT_WINDOW_S, in ms */
    long long max_wait_ms; /* RATE_LIMIT_MAX_WAIT_MS: how long a turn may wait in all */
    size_t max_entries;    /* tenant and user keys held; 0 = the default */
};

enum ratelimit_result {
    RATELIMIT_ERROR = -1,     /* bad arguments (an invalid id); reason says which */
    RATELIMIT_OK = 0,         /* the request and tokens were taken */
    RATELIMIT_WAIT = 1,       /* nothing taken; room in wait_ms (ratelimit_acquire only) */
    RATELIMIT_REFUSED = 2,    /* nothing taken; the turn is refused (exit 4) */
    RATELIMIT_CANCELLED = 3,  /* nothing taken; the wait was cancelled */
    RATELIMIT_UNAVAILABLE = 4 /* nothing taken; Redis is down and REDIS_FAILURE=closed */
};

/* What an acquire decided. scope, kind and limit name the binding bucket
 * for every result but OK and ERROR. */
struct ratelimit_decision {
    enum ratelimit_result result;
    long long wait_ms;          /* WAIT: ms until every bucket has room */
    long long waited_ms;        /* ratelimit_acquire_wait: ms slept in all */
    enum ratelimit_scope scope; /* the bucket that needs the longest wait */
    enum ratelimit_kind kind;
    long long limit;           /* its capacity (per window) */
    bool overridden;           /* its limit comes from `memchat limits set` */
    char reason[512];          /* WAIT, REFUSED, CANCELLED, ERROR, UNAVAILABLE: for humans */
    bool shared;               /* taken from (or decided by) the buckets on Redis */
    bool fell_back;            /* Redis could not be used: this process's buckets decided */
    char fallback_reason[320]; /* fell_back: why, for the backend.fallback event */
};

/* One bucket as the front ends show it. */
struct ratelimit_bucket_view {
    long long capacity; /* per window; 0 = unlimited (level is then 0) */
    long long level;    /* whole units available now; negative while in debt */
    bool overridden;
};

/* The six buckets of one (tenant, user), read together under the lock. */
struct ratelimit_view {
    struct ratelimit_bucket_view b[RATELIMIT_SCOPE__COUNT][RATELIMIT_KIND__COUNT];
    long long window_ms;
};

/* How ratelimit_acquire_wait() reads the clock and sleeps; the turn passes
 * clock_mono_ms and its cancellable backoff, tests a fake clock. */
struct ratelimit_waiter {
    int64_t (*now_ms)(void *ud);
    /* Sleeps ms; false when the turn was cancelled meanwhile. */
    bool (*sleep_ms)(void *ud, long long ms);
    /* Called before each sleep with the binding scope, kind and wait_ms
     * (the turn sends `ratelimit.wait`); may be NULL. */
    void (*on_wait)(void *ud, const struct ratelimit_decision *d);
    void *ud;
};

struct ratelimit;
struct redis;

/* Fills lim with no limits, the default window and no waiting. */
void ratelimit_limits_init(struct ratelimit_limits *lim);
/* Fills lim from the variables of the issue, looked up by name so any
 * table works: RATE_LIMIT_RPM, RATE_LIMIT_TPM, TENANT_RATE_LIMIT_RPM,
 * TENANT_RATE_LIMIT_TPM, USER_RATE_LIMIT_RPM, USER_RATE_LIMIT_TPM (int),
 * RATE_LIMIT_WINDOW_S and RATE_LIMIT_MAX_WAIT_MS (durations). A variable
 * missing from the table keeps its default from ratelimit_limits_init(). */
void ratelimit_limits_from_config(const struct config *cfg, struct ratelimit_limits *lim);

/* A limiter with these limits, or NULL with a message naming the bad
 * field when one is out of range. Free with ratelimit_free(). */
struct ratelimit *ratelimit_new(const struct ratelimit_limits *lim, char *err, size_t errlen);
/* NULL is a no-op. */
void ratelimit_free(struct ratelimit *rl);
/* Keeps the buckets on r (lent; it must outlive rl). fail_closed is
 * REDIS_FAILURE=closed. server_clock false makes the shared buckets use the
 * callers' now_ms (tests); the program uses the server's clock. */
void ratelimit_use_redis(struct ratelimit *rl, struct redis *r, bool fail_closed,
                         bool server_clock);

/* Takes one request and tokens_needed tokens from every bucket that
 * applies to (tenant, user) if all have room, else takes nothing; fills
 * *d (see enum ratelimit_result). user may be NULL for a tenant-only
 * request. */
enum ratelimit_result ratelimit_acquire(struct ratelimit *rl, const char *tenant, const char *user,
                                        long long tokens_needed, int64_t now_ms,
                                        struct ratelimit_decision *d);
/* The whole protocol above: acquires, sleeping through w while the waits
 * fit in the limiter's max_wait_ms. Returns OK, REFUSED (with a message
 * naming the limit), CANCELLED (sleep_ms returned false) or ERROR. */
enum ratelimit_result ratelimit_acquire_wait(struct ratelimit *rl, const char *tenant,
                                             const char *user, long long tokens_needed,
                                             const struct ratelimit_waiter *w,
                                             struct ratelimit_decision *d);
/* Pays (actual > estimated) or gives back (actual < estimated) the
 * difference on the token buckets of (tenant, user); shared is the
 * acquire's decision's, so the buckets that took the estimate settle it. Paying may take a
 * bucket below zero: that debt is repaid by the refill before the bucket
 * admits anything again, so a turn that used more than it said still
 * counts in full. Giving back never fills a bucket past its capacity. */
void ratelimit_reconcile(struct ratelimit *rl, bool shared, const char *tenant, const char *user,
                         long long estimated, long long actual, int64_t now_ms);
/* Gives back the request and the tokens of an acquire whose call was
 * never made (shared: as for reconcile). */
void ratelimit_refund(struct ratelimit *rl, bool shared, const char *tenant, const char *user,
                      long long tokens, int64_t now_ms);
/* The six buckets of (tenant, user) at now_ms, without changing anything;
 * a scope whose id is NULL reads as unlimited. With Redis, the shared
 * buckets while the connection is up (this process's otherwise: a
 * snapshot never waits for a connection attempt). */
void ratelimit_snapshot(struct ratelimit *rl, const char *tenant, const char *user, int64_t now_ms,
                        struct ratelimit_view *out);

/* Sets the limits of one tenant (user NULL) or one user of a tenant, per
 * window: -1 keeps the configured value for that kind, 0 makes it
 * unlimited. 0, or -1 with a message (bad id or value). */
int ratelimit_set_override(struct ratelimit *rl, const char *tenant, const char *user,
                           long long rpm, long long tpm, char *err, size_t errlen);
/* Removes the override of a tenant or user; false when it had none. */
bool ratelimit_clear_override(struct ratelimit *rl, const char *tenant, const char *user);
/* The override of a tenant or user into *rpm and *tpm (-1 = configured
 * value); false, leaving them alone, when it has none. */
bool ratelimit_get_override(struct ratelimit *rl, const char *tenant, const char *user,
                            long long *rpm, long long *tpm);

/* How many tenant and user keys the limiter holds (for tests and doctor). */
size_t ratelimit_entry_count(struct ratelimit *rl);
/* "global", "tenant", "user" and "requests", "tokens": the event fields. */
const char *ratelimit_scope_name(enum ratelimit_scope s);
const char *ratelimit_kind_name(enum ratelimit_kind k);

#endif
