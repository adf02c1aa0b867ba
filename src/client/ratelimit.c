/*
 * The token buckets of ratelimit.h. A bucket's level is kept in units x
 * window_ms, so a refill of capacity / window units per ms adds exactly
 * `capacity` per ms and every level, refill and wait is exact integer
 * arithmetic: the wait for n units is ceil((n * window - level) /
 * capacity) ms, and after sleeping exactly that long the acquire succeeds.
 * The bounds in ratelimit.h (values <= 1e9, window <= 7 days) keep
 * value x window below 2^60, and debts saturate well inside 64 bits.
 *
 * Tenant and user buckets live in entries of one chained hash table keyed
 * "tenant" or "tenant/user" ('/' is not in the id alphabet, so the two
 * never collide), with an LRU list of the entries that may be dropped
 * (those without an override). The global buckets are fields of the
 * limiter. Entries are allocated only when a key is first seen; an evicted
 * entry's memory is reused for the new one.
 */
#include "config.h"

#include "client/ratelimit.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "client/ratelimit_redis.h"
#include "config/config.h"
#include "util/alloc.h"
#include "util/ident.h"
#include "util/log.h"

/* "tenant/user" and its NUL. */
#define RL_KEY_MAX (2 * IDENT_MAX + 2)
/* A debt never goes below this level, so repeated reconciles cannot wrap. */
#define RL_LEVEL_MIN (-(INT64_MAX / 4))
/* How many entries a sweep may drop per acquire, and how far from the LRU
 * tail an insertion looks for a full entry before dropping the tail. */
#define RL_SWEEP_PER_ACQUIRE 2
#define RL_EVICT_SCAN        8
#define RL_SLOTS_INITIAL     64

struct rl_bucket {
    long long cap;   /* the capacity level is kept for; 0 = unset or unlimited */
    int64_t level;   /* units x window_ms */
    int64_t last_ms; /* time of the last refill; never moves backwards */
};

struct rl_entry {
    struct rl_entry *hnext;       /* hash chain */
    struct rl_entry *prev, *next; /* LRU list, most recent first; unlinked when pinned */
    uint64_t hash;
    enum ratelimit_scope scope;           /* RATELIMIT_TENANT or RATELIMIT_USER */
    long long ovr[RATELIMIT_KIND__COUNT]; /* override per window; -1 = configured value */
    bool pinned;                          /* has an override: never dropped */
    struct rl_bucket b[RATELIMIT_KIND__COUNT];
    char key[RL_KEY_MAX];
};

struct ratelimit {
    pthread_mutex_t mu;
    struct ratelimit_limits lim;
    struct rl_bucket global[RATELIMIT_KIND__COUNT];
    struct rl_entry **slots;
    size_t nslots;
    size_t count; /* entries in the table */
    size_t nlru;  /* of which in the LRU list (droppable) */
    struct rl_entry *head, *tail;
    int64_t now_max;     /* the latest now_ms seen, for calls that take no clock */
    struct redis *redis; /* the shared buckets, or NULL (lent) */
    bool fail_closed;    /* REDIS_FAILURE=closed */
    bool server_clock;   /* the shared buckets use Redis's clock, not now_ms */
    bool redis_down;     /* the last shared call failed: logged once per outage */
};

/* The environment variable behind each configured limit, for messages. */
static const char *const rl_var_names[RATELIMIT_SCOPE__COUNT][RATELIMIT_KIND__COUNT] = {
    {"RATE_LIMIT_RPM", "RATE_LIMIT_TPM"},
    {"TENANT_RATE_LIMIT_RPM", "TENANT_RATE_LIMIT_TPM"},
    {"USER_RATE_LIMIT_RPM", "USER_RATE_LIMIT_TPM"},
};

const char *ratelimit_scope_name(enum ratelimit_scope s)
{
    switch (s) {
    case RATELIMIT_GLOBAL:
        return "global";
    case RATELIMIT_TENANT:
        return "tenant";
    case RATELIMIT_USER:
        return "user";
    case RATELIMIT_SCOPE__COUNT:
        break;
    }
    return "?";
}

const char *ratelimit_kind_name(enum ratelimit_kind k)
{
    switch (k) {
    case RATELIMIT_REQUESTS:
        return "requests";
    case RATELIMIT_TOKENS:
        return "tokens";
    case RATELIMIT_KIND__COUNT:
        break;
    }
    return "?";
}

/* ---- configuration ---- */

void ratelimit_limits_init(struct ratelimit_limits *lim)
{
    memset(lim, 0, sizeof *lim);
    lim->window_ms = RATELIMIT_WINDOW_DEFAULT_MS;
    lim->max_wait_ms = 0;
    lim->max_entries = 0;
}

/* The value of name as an int or a duration in ms; -1 when the table has
 * no such variable or it has another type. */
static long long rl_config_value(const struct config *cfg, const char *name)
{
    int id = config_find(cfg, name);
    if (id < 0)
        return -1;
    switch (config_var(cfg, id)->type) {
    case CFG_INT:
        return config_int(cfg, id);
    case CFG_DURATION:
        return config_duration_ms(cfg, id);
    case CFG_BOOL:
    case CFG_STRING:
    case CFG_ID:
    case CFG_ENUM:
    case CFG_PATH:
    case CFG_NUMBER:
        break;
    }
    return -1;
}

void ratelimit_limits_from_config(const struct config *cfg, struct ratelimit_limits *lim)
{
    ratelimit_limits_init(lim);
    for (int s = 0; s < RATELIMIT_SCOPE__COUNT; s++)
        for (int k = 0; k < RATELIMIT_KIND__COUNT; k++) {
            long long v = rl_config_value(cfg, rl_var_names[s][k]);
            if (v >= 0)
                lim->value[s][k] = v;
        }
    long long v = rl_config_value(cfg, "RATE_LIMIT_WINDOW_S");
    if (v > 0)
        lim->window_ms = v;
    v = rl_config_value(cfg, "RATE_LIMIT_MAX_WAIT_MS");
    if (v >= 0)
        lim->max_wait_ms = v;
}

/* ---- buckets ---- */

/* Brings bk to now under capacity cap: a bucket seen for the first time (or
 * after being unlimited) starts full; a smaller capacity clips the level;
 * time adds cap per ms up to full. Time going backwards (threads that read
 * the clock before taking the lock) refills nothing. */
static void rl_bucket_sync(struct rl_bucket *bk, long long cap, int64_t window, int64_t now)
{
    if (cap <= 0) {
        bk->cap = 0;
        return;
    }
    int64_t full = cap * window;
    if (bk->cap <= 0) {
        bk->cap = cap;
        bk->level = full;
        bk->last_ms = now;
        return;
    }
    if (bk->cap != cap) {
        /* What was used carries over to the new capacity (raising a limit
         * gives the difference at once, lowering takes it away), but a
         * change alone never puts a bucket into debt. */
        int64_t moved = bk->level + (cap - bk->cap) * window;
        int64_t floor = bk->level < 0 ? bk->level : 0;
        bk->level = moved < floor ? floor : moved;
        bk->cap = cap;
    }
    if (now <= bk->last_ms)
        return;
    if (bk->level < full) {
        int64_t need = full - bk->level;
        int64_t to_full = need / cap + (need % cap != 0);
        int64_t dt = now - bk->last_ms;
        /* dt < to_full keeps dt * cap below need + cap: no overflow. */
        bk->level = dt >= to_full ? full : bk->level + dt * cap;
    }
    bk->last_ms = now;
}

/* Ms until a synced bucket holds n units; 0 when it already does. */
static int64_t rl_bucket_wait(const struct rl_bucket *bk, long long n, int64_t window)
{
    int64_t need = n * window - bk->level;
    if (need <= 0)
        return 0;
    return need / bk->cap + (need % bk->cap != 0);
}

/* Adds delta units (either sign) to a synced bucket: never above full,
 * never below RL_LEVEL_MIN. */
static void rl_bucket_add(struct rl_bucket *bk, long long delta, int64_t window)
{
    if (bk->cap <= 0)
        return;
    int64_t full = bk->cap * window;
    int64_t d = delta * window;
    if (d > 0)
        bk->level = bk->level >= full - d ? full : bk->level + d;
    else
        bk->level = bk->level <= RL_LEVEL_MIN - d ? RL_LEVEL_MIN : bk->level + d;
}

/* Whole units in a synced bucket, rounded down (also in debt). */
static long long rl_bucket_units(const struct rl_bucket *bk, int64_t window)
{
    int64_t q = bk->level / window;
    if (bk->level % window != 0 && bk->level < 0)
        q--;
    return q;
}

/* ---- the table ---- */

static uint64_t rl_hash(const char *key)
{
    uint64_t h = 14695981039346656037ULL; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    return h;
}

/* The key of a tenant (user NULL) or a user into out; false when an id is
 * invalid, which also keeps keys within RL_KEY_MAX. */
static bool rl_make_key(const char *tenant, const char *user, char out[RL_KEY_MAX])
{
    if (tenant == NULL || !ident_valid(tenant) || (user != NULL && !ident_valid(user)))
        return false;
    if (user != NULL)
        snprintf(out, RL_KEY_MAX, "%s/%s", tenant, user);
    else
        snprintf(out, RL_KEY_MAX, "%s", tenant);
    return true;
}

static struct rl_entry *rl_find(const struct ratelimit *rl, const char *key)
{
    uint64_t h = rl_hash(key);
    for (struct rl_entry *e = rl->slots[h & (rl->nslots - 1)]; e != NULL; e = e->hnext)
        if (e->hash == h && strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

static void rl_lru_unlink(struct ratelimit *rl, struct rl_entry *e)
{
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        rl->head = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        rl->tail = e->prev;
    e->prev = e->next = NULL;
    rl->nlru--;
}

static void rl_lru_push(struct ratelimit *rl, struct rl_entry *e)
{
    e->prev = NULL;
    e->next = rl->head;
    if (rl->head != NULL)
        rl->head->prev = e;
    else
        rl->tail = e;
    rl->head = e;
    rl->nlru++;
}

/* Marks e as just used. */
static void rl_touch(struct ratelimit *rl, struct rl_entry *e)
{
    if (e->pinned || rl->head == e)
        return;
    rl_lru_unlink(rl, e);
    rl_lru_push(rl, e);
}

/* Takes e out of the hash table and the LRU list without freeing it. */
static void rl_detach(struct ratelimit *rl, struct rl_entry *e)
{
    struct rl_entry **pp = &rl->slots[e->hash & (rl->nslots - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    if (!e->pinned)
        rl_lru_unlink(rl, e);
    rl->count--;
}

/* The configured or overridden capacity of e for kind k. */
static long long rl_entry_cap(const struct ratelimit *rl, const struct rl_entry *e,
                              enum ratelimit_kind k)
{
    return e->ovr[k] >= 0 ? e->ovr[k] : rl->lim.value[e->scope][k];
}

/* True when every bucket of e is full at now: e carries no information. */
static bool rl_entry_idle(const struct ratelimit *rl, struct rl_entry *e, int64_t now)
{
    for (int k = 0; k < RATELIMIT_KIND__COUNT; k++) {
        long long cap = rl_entry_cap(rl, e, (enum ratelimit_kind)k);
        rl_bucket_sync(&e->b[k], cap, rl->lim.window_ms, now);
        if (cap > 0 && e->b[k].level < cap * rl->lim.window_ms)
            return false;
    }
    return true;
}

/* Removes one droppable entry to make room, preferring an idle one near
 * the LRU tail over the tail itself; returns its memory for reuse. */
static struct rl_entry *rl_evict_one(struct ratelimit *rl, int64_t now)
{
    struct rl_entry *victim = rl->tail;
    struct rl_entry *e = rl->tail;
    for (int i = 0; i < RL_EVICT_SCAN && e != NULL; i++, e = e->prev)
        if (rl_entry_idle(rl, e, now)) {
            victim = e;
            break;
        }
    rl_detach(rl, victim);
    return victim;
}

/* Drops idle entries from the LRU tail, a few per call, so a quiet table
 * shrinks without a timer. */
static void rl_sweep(struct ratelimit *rl, int64_t now)
{
    for (int i = 0; i < RL_SWEEP_PER_ACQUIRE && rl->tail != NULL; i++) {
        struct rl_entry *e = rl->tail;
        if (!rl_entry_idle(rl, e, now))
            break;
        rl_detach(rl, e);
        xfree(e);
    }
}

/* Doubles the slot array once the table is three quarters full. */
static void rl_grow(struct ratelimit *rl)
{
    if (rl->count + 1 <= rl->nslots / 4 * 3)
        return;
    size_t n = rl->nslots * 2;
    struct rl_entry **slots = xcalloc(n, sizeof *slots);
    for (size_t i = 0; i < rl->nslots; i++) {
        struct rl_entry *e = rl->slots[i];
        while (e != NULL) {
            struct rl_entry *next = e->hnext;
            e->hnext = slots[e->hash & (n - 1)];
            slots[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    xfree(rl->slots);
    rl->slots = slots;
    rl->nslots = n;
}

/* Puts a new entry for key in the hash table (not in the LRU list), in
 * mem when given (an evicted entry's memory) or fresh memory: no override,
 * buckets unset so they start full. */
static struct rl_entry *rl_insert(struct ratelimit *rl, const char *key, enum ratelimit_scope scope,
                                  struct rl_entry *mem)
{
    struct rl_entry *e = mem != NULL ? mem : xmalloc(sizeof *e);
    memset(e, 0, sizeof *e);
    e->hash = rl_hash(key);
    e->scope = scope;
    e->ovr[RATELIMIT_REQUESTS] = e->ovr[RATELIMIT_TOKENS] = -1;
    snprintf(e->key, sizeof e->key, "%s", key);
    rl_grow(rl);
    size_t slot = e->hash & (rl->nslots - 1);
    e->hnext = rl->slots[slot];
    rl->slots[slot] = e;
    rl->count++;
    return e;
}

/* The entry of key, made when missing (reusing an evicted entry once the
 * table holds max_entries droppable ones); either way the most recent. */
static struct rl_entry *rl_get(struct ratelimit *rl, const char *key, enum ratelimit_scope scope,
                               int64_t now)
{
    struct rl_entry *e = rl_find(rl, key);
    if (e != NULL) {
        rl_touch(rl, e);
        return e;
    }
    struct rl_entry *mem = rl->nlru >= rl->lim.max_entries ? rl_evict_one(rl, now) : NULL;
    e = rl_insert(rl, key, scope, mem);
    rl_lru_push(rl, e);
    return e;
}

/* ---- life cycle ---- */

struct ratelimit *ratelimit_new(const struct ratelimit_limits *lim, char *err, size_t errlen)
{
    for (int s = 0; s < RATELIMIT_SCOPE__COUNT; s++)
        for (int k = 0; k < RATELIMIT_KIND__COUNT; k++)
            if (lim->value[s][k] < 0 || lim->value[s][k] > RATELIMIT_MAX_VALUE) {
                snprintf(err, errlen, "%s=%lld is out of range: accepted 0 (unlimited) to %lld",
                         rl_var_names[s][k], lim->value[s][k], RATELIMIT_MAX_VALUE);
                return NULL;
            }
    if (lim->window_ms < 1 || lim->window_ms > RATELIMIT_WINDOW_MAX_MS) {
        snprintf(err, errlen,
                 "RATE_LIMIT_WINDOW_S is %lld ms, out of range: accepted 1 ms to 7 days",
                 lim->window_ms);
        return NULL;
    }
    if (lim->max_wait_ms < 0) {
        snprintf(err, errlen, "RATE_LIMIT_MAX_WAIT_MS=%lld is negative", lim->max_wait_ms);
        return NULL;
    }
    struct ratelimit *rl = xcalloc(1, sizeof *rl);
    rl->lim = *lim;
    if (rl->lim.max_entries == 0)
        rl->lim.max_entries = RATELIMIT_MAX_ENTRIES_DEFAULT;
    if (rl->lim.max_entries < RATELIMIT_MAX_ENTRIES_MIN)
        rl->lim.max_entries = RATELIMIT_MAX_ENTRIES_MIN;
    rl->nslots = RL_SLOTS_INITIAL;
    rl->slots = xcalloc(rl->nslots, sizeof *rl->slots);
    pthread_mutex_init(&rl->mu, NULL);
    return rl;
}

void ratelimit_free(struct ratelimit *rl)
{
    if (rl == NULL)
        return;
    for (size_t i = 0; i < rl->nslots; i++) {
        struct rl_entry *e = rl->slots[i];
        while (e != NULL) {
            struct rl_entry *next = e->hnext;
            xfree(e);
            e = next;
        }
    }
    xfree(rl->slots);
    pthread_mutex_destroy(&rl->mu);
    xfree(rl);
}

void ratelimit_use_redis(struct ratelimit *rl, struct redis *r, bool fail_closed, bool server_clock)
{
    rl->redis = r;
    rl->fail_closed = fail_closed;
    rl->server_clock = server_clock;
}

size_t ratelimit_entry_count(struct ratelimit *rl)
{
    pthread_mutex_lock(&rl->mu);
    size_t n = rl->count;
    pthread_mutex_unlock(&rl->mu);
    return n;
}

/* ---- messages ---- */

/* A duration for humans: "42 ms", "1.5 s", "2 min 5 s". */
static void rl_format_ms(long long ms, char *out, size_t n)
{
    if (ms < 1000)
        snprintf(out, n, "%lld ms", ms);
    else if (ms < 60000)
        snprintf(out, n, "%.1f s", (double)ms / 1000.0);
    else /* seconds rounded up first, so 29:59.5 reads "30 min 0 s", never "29 min 60 s" */
        snprintf(out, n, "%lld min %lld s", (ms + 999) / 1000 / 60, (ms + 999) / 1000 % 60);
}

/* Names the limit of one bucket: the variable and its value, or the
 * override, with what it counts, the window and whom it applies to. */
static void rl_limit_text(const struct ratelimit *rl, enum ratelimit_scope s, enum ratelimit_kind k,
                          long long cap, bool overridden, const char *tenant, const char *user,
                          char *out, size_t n)
{
    char win[32], whom[160];
    if (rl->lim.window_ms % 1000 == 0)
        snprintf(win, sizeof win, "%lld s", rl->lim.window_ms / 1000);
    else
        snprintf(win, sizeof win, "%lld ms", rl->lim.window_ms);
    if (s == RATELIMIT_GLOBAL)
        snprintf(whom, sizeof whom, "everyone");
    else if (s == RATELIMIT_TENANT)
        snprintf(whom, sizeof whom, "tenant %s", tenant);
    else
        snprintf(whom, sizeof whom, "user %s of tenant %s", user, tenant);
    if (overridden)
        snprintf(out, n, "the limit of %lld %s per %s for %s set with `memchat limits set`", cap,
                 ratelimit_kind_name(k), win, whom);
    else
        snprintf(out, n, "%s=%lld (%s per %s for %s)", rl_var_names[s][k], cap,
                 ratelimit_kind_name(k), win, whom);
}

static void rl_decision_reset(struct ratelimit_decision *d)
{
    memset(d, 0, sizeof *d);
}

/* ---- acquire ---- */

/* The six capacities and whether each is an override, for (te, ue) which
 * may be NULL (no entry yet: the configured value). */
struct rl_caps {
    long long cap[RATELIMIT_SCOPE__COUNT][RATELIMIT_KIND__COUNT];
    bool ovr[RATELIMIT_SCOPE__COUNT][RATELIMIT_KIND__COUNT];
};

static void rl_resolve(const struct ratelimit *rl, const struct rl_entry *te, const char *user,
                       const struct rl_entry *ue, struct rl_caps *c)
{
    for (int k = 0; k < RATELIMIT_KIND__COUNT; k++) {
        c->cap[RATELIMIT_GLOBAL][k] = rl->lim.value[RATELIMIT_GLOBAL][k];
        c->ovr[RATELIMIT_GLOBAL][k] = false;
        c->ovr[RATELIMIT_TENANT][k] = te != NULL && te->ovr[k] >= 0;
        c->cap[RATELIMIT_TENANT][k] =
            c->ovr[RATELIMIT_TENANT][k] ? te->ovr[k] : rl->lim.value[RATELIMIT_TENANT][k];
        c->ovr[RATELIMIT_USER][k] = ue != NULL && ue->ovr[k] >= 0;
        c->cap[RATELIMIT_USER][k] =
            user == NULL
                ? 0
                : (c->ovr[RATELIMIT_USER][k] ? ue->ovr[k] : rl->lim.value[RATELIMIT_USER][k]);
    }
}

static bool rl_scope_limited(const struct rl_caps *c, enum ratelimit_scope s)
{
    return c->cap[s][RATELIMIT_REQUESTS] > 0 || c->cap[s][RATELIMIT_TOKENS] > 0;
}

/* Puts a WAIT or REFUSED decision of either backend in words. */
static void rl_explain(const struct ratelimit *rl, const char *tenant, const char *user,
                       long long tokens_needed, struct ratelimit_decision *d)
{
    char lt[288], wt[32];
    rl_limit_text(rl, d->scope, d->kind, d->limit, d->overridden, tenant, user, lt, sizeof lt);
    if (d->result == RATELIMIT_REFUSED) {
        snprintf(d->reason, sizeof d->reason,
                 "the turn needs %lld tokens, over %s; it can never fit: shorten the "
                 "conversation or raise the limit",
                 tokens_needed, lt);
        return;
    }
    rl_format_ms(d->wait_ms, wt, sizeof wt);
    snprintf(d->reason, sizeof d->reason, "rate limit reached: %s; room again in %s", lt, wt);
}

/* The clock the shared buckets are given: the server's unless a test
 * wants its own. */
static int64_t rl_shared_now(const struct ratelimit *rl, int64_t now_ms)
{
    return rl->server_clock ? -1 : now_ms;
}

/* Notes whether Redis could be used, logging once when it goes and once
 * when it is back. */
static void rl_shared_health(struct ratelimit *rl, bool up, const char *err)
{
    pthread_mutex_lock(&rl->mu);
    bool was_down = rl->redis_down;
    rl->redis_down = !up;
    pthread_mutex_unlock(&rl->mu);
    if (up && was_down)
        log_info("rate limits: Redis at %s is back; limits are shared again",
                 redis_where(rl->redis));
    else if (!up && !was_down)
        log_warn("rate limits: %s; %s", err,
                 rl->fail_closed ? "REDIS_FAILURE=closed refuses turns until it is back"
                                 : "using this process's own limits until it is back");
}

/* The acquire on Redis. True when it decided (or refused for want of
 * Redis under REDIS_FAILURE=closed); false when this process's buckets
 * must decide instead, with d->fell_back set. */
static bool rl_shared_acquire(struct ratelimit *rl, const char *tenant, const char *user,
                              long long tokens_needed, int64_t now_ms, struct ratelimit_decision *d)
{
    struct ratelimit_redis_decision sd;
    char err[256];
    enum redis_status st = ratelimit_redis_acquire(rl->redis, &rl->lim, tenant, user, tokens_needed,
                                                   rl_shared_now(rl, now_ms), &sd, err, sizeof err);
    rl_shared_health(rl, st == REDIS_ST_OK, err);
    if (st == REDIS_ST_OK) {
        d->result = sd.result;
        d->shared = true;
        d->wait_ms = sd.wait_ms;
        d->scope = sd.scope;
        d->kind = sd.kind;
        d->limit = sd.limit;
        d->overridden = sd.overridden;
        if (d->result != RATELIMIT_OK)
            rl_explain(rl, tenant, user, tokens_needed, d);
        return true;
    }
    if (rl->fail_closed) {
        d->result = RATELIMIT_UNAVAILABLE;
        snprintf(d->reason, sizeof d->reason,
                 "rate limits are shared on Redis, which cannot be used: %s; "
                 "REDIS_FAILURE=closed refuses turns until it is back",
                 err);
        return true;
    }
    d->fell_back = true;
    snprintf(d->fallback_reason, sizeof d->fallback_reason,
             "rate limits: %s; this process's own limits decided", err);
    return false;
}

static enum ratelimit_result rl_local_acquire(struct ratelimit *rl, const char *tenant,
                                              const char *user, const char *tkey, const char *ukey,
                                              long long tokens_needed, int64_t now_ms,
                                              struct ratelimit_decision *d);

enum ratelimit_result ratelimit_acquire(struct ratelimit *rl, const char *tenant, const char *user,
                                        long long tokens_needed, int64_t now_ms,
                                        struct ratelimit_decision *d)
{
    rl_decision_reset(d);
    char tkey[RL_KEY_MAX], ukey[RL_KEY_MAX];
    if (!rl_make_key(tenant, NULL, tkey) || (user != NULL && !rl_make_key(tenant, user, ukey))) {
        d->result = RATELIMIT_ERROR;
        snprintf(d->reason, sizeof d->reason,
                 "rate limit: invalid tenant or user id (accepted: [A-Za-z0-9_-]{1,64})");
        return d->result;
    }
    if (tokens_needed < 0) {
        d->result = RATELIMIT_ERROR;
        snprintf(d->reason, sizeof d->reason, "rate limit: negative token need %lld",
                 tokens_needed);
        return d->result;
    }
    if (rl->redis != NULL && rl_shared_acquire(rl, tenant, user, tokens_needed, now_ms, d))
        return d->result;
    return rl_local_acquire(rl, tenant, user, tkey, ukey, tokens_needed, now_ms, d);
}

/* The acquire on this process's buckets (ids checked). */
static enum ratelimit_result rl_local_acquire(struct ratelimit *rl, const char *tenant,
                                              const char *user, const char *tkey, const char *ukey,
                                              long long tokens_needed, int64_t now_ms,
                                              struct ratelimit_decision *d)
{
    pthread_mutex_lock(&rl->mu);
    if (now_ms > rl->now_max)
        rl->now_max = now_ms;
    struct rl_entry *te = rl_find(rl, tkey);
    struct rl_entry *ue = user != NULL ? rl_find(rl, ukey) : NULL;
    struct rl_caps c;
    rl_resolve(rl, te, user, ue, &c);

    /* A need above a token bucket's capacity can never fit: refuse now,
     * naming the narrowest such limit. */
    for (int s = RATELIMIT_USER; s >= RATELIMIT_GLOBAL; s--) {
        long long cap = c.cap[s][RATELIMIT_TOKENS];
        if (cap > 0 && tokens_needed > cap) {
            d->result = RATELIMIT_REFUSED;
            d->scope = (enum ratelimit_scope)s;
            d->kind = RATELIMIT_TOKENS;
            d->limit = cap;
            d->overridden = c.ovr[s][RATELIMIT_TOKENS];
            pthread_mutex_unlock(&rl->mu);
            rl_explain(rl, tenant, user, tokens_needed, d);
            return d->result;
        }
    }

    /* Mark the entries in use as most recent before making missing ones,
     * so making one can never evict the other (max_entries >= 16 keeps
     * the two newest out of the eviction scan). */
    if (te != NULL)
        rl_touch(rl, te);
    if (ue != NULL)
        rl_touch(rl, ue);
    if (te == NULL && rl_scope_limited(&c, RATELIMIT_TENANT))
        te = rl_get(rl, tkey, RATELIMIT_TENANT, now_ms);
    if (ue == NULL && rl_scope_limited(&c, RATELIMIT_USER))
        ue = rl_get(rl, ukey, RATELIMIT_USER, now_ms);

    struct rl_bucket *bk[RATELIMIT_SCOPE__COUNT][RATELIMIT_KIND__COUNT];
    int64_t window = rl->lim.window_ms;
    int64_t worst = 0;
    for (int s = RATELIMIT_USER; s >= RATELIMIT_GLOBAL; s--)
        for (int k = 0; k < RATELIMIT_KIND__COUNT; k++) {
            long long cap = c.cap[s][k];
            struct rl_entry *owner = s == RATELIMIT_TENANT ? te : s == RATELIMIT_USER ? ue : NULL;
            bk[s][k] = cap <= 0 ? NULL : owner != NULL ? &owner->b[k] : &rl->global[k];
            if (bk[s][k] == NULL)
                continue;
            rl_bucket_sync(bk[s][k], cap, window, now_ms);
            long long n = k == RATELIMIT_REQUESTS ? 1 : tokens_needed;
            int64_t w = rl_bucket_wait(bk[s][k], n, window);
            /* Strictly greater: on a tie the narrower scope binds (it is
             * the one a user can do something about). */
            if (w > worst) {
                worst = w;
                d->scope = (enum ratelimit_scope)s;
                d->kind = (enum ratelimit_kind)k;
                d->limit = cap;
                d->overridden = c.ovr[s][k];
            }
        }
    if (worst == 0) {
        for (int s = 0; s < RATELIMIT_SCOPE__COUNT; s++)
            for (int k = 0; k < RATELIMIT_KIND__COUNT; k++)
                if (bk[s][k] != NULL)
                    rl_bucket_add(bk[s][k], k == RATELIMIT_REQUESTS ? -1 : -tokens_needed, window);
        d->result = RATELIMIT_OK;
    } else {
        d->result = RATELIMIT_WAIT;
        d->wait_ms = worst;
    }
    rl_sweep(rl, now_ms);
    pthread_mutex_unlock(&rl->mu);

    if (d->result == RATELIMIT_WAIT)
        rl_explain(rl, tenant, user, tokens_needed, d);
    return d->result;
}

enum ratelimit_result ratelimit_acquire_wait(struct ratelimit *rl, const char *tenant,
                                             const char *user, long long tokens_needed,
                                             const struct ratelimit_waiter *w,
                                             struct ratelimit_decision *d)
{
    long long waited = 0;
    for (;;) {
        enum ratelimit_result r =
            ratelimit_acquire(rl, tenant, user, tokens_needed, w->now_ms(w->ud), d);
        d->waited_ms = waited;
        if (r != RATELIMIT_WAIT)
            return r;
        /* Every pass sleeps at least 1 ms of the allowance, so the loop
         * ends even with a clock that does not move. */
        long long left = rl->lim.max_wait_ms - waited;
        if (d->wait_ms > left) {
            char lt[288], wt[32], wd[32];
            rl_limit_text(rl, d->scope, d->kind, d->limit, d->overridden, tenant, user, lt,
                          sizeof lt);
            rl_format_ms(d->wait_ms, wt, sizeof wt);
            rl_format_ms(waited, wd, sizeof wd);
            if (waited == 0)
                snprintf(d->reason, sizeof d->reason,
                         "rate limit reached: %s; room again in %s, longer than "
                         "RATE_LIMIT_MAX_WAIT_MS=%lld allows",
                         lt, wt, rl->lim.max_wait_ms);
            else
                snprintf(d->reason, sizeof d->reason,
                         "rate limit reached: %s; still no room after waiting %s, room again "
                         "in %s, past RATE_LIMIT_MAX_WAIT_MS=%lld",
                         lt, wd, wt, rl->lim.max_wait_ms);
            d->result = RATELIMIT_REFUSED;
            return d->result;
        }
        if (w->on_wait != NULL)
            w->on_wait(w->ud, d);
        if (!w->sleep_ms(w->ud, d->wait_ms)) {
            snprintf(d->reason, sizeof d->reason,
                     "cancelled while waiting for the rate limit (%s %s)",
                     ratelimit_scope_name(d->scope), ratelimit_kind_name(d->kind));
            d->result = RATELIMIT_CANCELLED;
            return d->result;
        }
        waited += d->wait_ms;
        d->waited_ms = waited;
    }
}

/* ---- after the call ---- */

/* Adds requests and tokens (either sign) to every limited bucket of
 * (tenant, user). Entries are made only to record a debt: a missing entry
 * is a full bucket, which giving back cannot change. */
static void rl_adjust(struct ratelimit *rl, const char *tenant, const char *user,
                      long long requests, long long tokens, int64_t now_ms)
{
    char tkey[RL_KEY_MAX], ukey[RL_KEY_MAX];
    if (!rl_make_key(tenant, NULL, tkey) || (user != NULL && !rl_make_key(tenant, user, ukey)))
        return;
    if (tokens > RATELIMIT_MAX_VALUE)
        tokens = RATELIMIT_MAX_VALUE;
    if (tokens < -RATELIMIT_MAX_VALUE)
        tokens = -RATELIMIT_MAX_VALUE;
    bool debt = requests < 0 || tokens < 0;
    pthread_mutex_lock(&rl->mu);
    if (now_ms > rl->now_max)
        rl->now_max = now_ms;
    struct rl_entry *te = rl_find(rl, tkey);
    struct rl_entry *ue = user != NULL ? rl_find(rl, ukey) : NULL;
    struct rl_caps c;
    rl_resolve(rl, te, user, ue, &c);
    if (ue != NULL)
        rl_touch(rl, ue);
    if (te == NULL && debt && rl_scope_limited(&c, RATELIMIT_TENANT))
        te = rl_get(rl, tkey, RATELIMIT_TENANT, now_ms);
    if (te != NULL)
        rl_touch(rl, te);
    if (ue == NULL && debt && rl_scope_limited(&c, RATELIMIT_USER))
        ue = rl_get(rl, ukey, RATELIMIT_USER, now_ms);
    const long long delta[RATELIMIT_KIND__COUNT] = {requests, tokens};
    for (int s = 0; s < RATELIMIT_SCOPE__COUNT; s++) {
        struct rl_entry *owner = s == RATELIMIT_TENANT ? te : s == RATELIMIT_USER ? ue : NULL;
        if (s != RATELIMIT_GLOBAL && owner == NULL)
            continue;
        for (int k = 0; k < RATELIMIT_KIND__COUNT; k++) {
            if (c.cap[s][k] <= 0 || delta[k] == 0)
                continue;
            struct rl_bucket *bk = owner != NULL ? &owner->b[k] : &rl->global[k];
            rl_bucket_sync(bk, c.cap[s][k], rl->lim.window_ms, now_ms);
            rl_bucket_add(bk, delta[k], rl->lim.window_ms);
        }
    }
    pthread_mutex_unlock(&rl->mu);
}

/* rl_adjust on the buckets that took the turn: on Redis when shared (a
 * failure there is logged and dropped: the buckets refill by themselves,
 * so nothing is lost for long), else this process's. */
static void rl_adjust_on(struct ratelimit *rl, bool shared, const char *tenant, const char *user,
                         long long requests, long long tokens, int64_t now_ms)
{
    if (!shared || rl->redis == NULL) {
        rl_adjust(rl, tenant, user, requests, tokens, now_ms);
        return;
    }
    if (!ident_valid(tenant) || (user != NULL && !ident_valid(user)))
        return;
    char err[256];
    enum redis_status st =
        ratelimit_redis_adjust(rl->redis, &rl->lim, tenant, user, requests, tokens,
                               rl_shared_now(rl, now_ms), err, sizeof err);
    rl_shared_health(rl, st == REDIS_ST_OK, err);
    if (st != REDIS_ST_OK)
        log_warn("rate limits: the settlement of a turn of %s was dropped: %s", tenant, err);
}

void ratelimit_reconcile(struct ratelimit *rl, bool shared, const char *tenant, const char *user,
                         long long estimated, long long actual, int64_t now_ms)
{
    if (estimated < 0)
        estimated = 0;
    if (actual < 0)
        actual = 0;
    /* Paying more is a negative add, giving back a positive one. */
    if (actual != estimated)
        rl_adjust_on(rl, shared, tenant, user, 0, estimated - actual, now_ms);
}

void ratelimit_refund(struct ratelimit *rl, bool shared, const char *tenant, const char *user,
                      long long tokens, int64_t now_ms)
{
    rl_adjust_on(rl, shared, tenant, user, 1, tokens > 0 ? tokens : 0, now_ms);
}

void ratelimit_snapshot(struct ratelimit *rl, const char *tenant, const char *user, int64_t now_ms,
                        struct ratelimit_view *out)
{
    memset(out, 0, sizeof *out);
    out->window_ms = rl->lim.window_ms;
    char tkey[RL_KEY_MAX], ukey[RL_KEY_MAX];
    bool tok = tenant != NULL && rl_make_key(tenant, NULL, tkey);
    bool uok = tok && user != NULL && rl_make_key(tenant, user, ukey);
    /* Only on a live connection: a snapshot is read while the user types,
     * and must never wait for a connection attempt. */
    if (rl->redis != NULL && redis_is_up(rl->redis)) {
        char err[256];
        enum redis_status st =
            ratelimit_redis_snapshot(rl->redis, &rl->lim, tok ? tenant : NULL, uok ? user : NULL,
                                     rl_shared_now(rl, now_ms), out, err, sizeof err);
        rl_shared_health(rl, st == REDIS_ST_OK, err);
        if (st == REDIS_ST_OK)
            return;
        memset(out, 0, sizeof *out);
        out->window_ms = rl->lim.window_ms;
    }
    pthread_mutex_lock(&rl->mu);
    const struct rl_entry *te = tok ? rl_find(rl, tkey) : NULL;
    const struct rl_entry *ue = uok ? rl_find(rl, ukey) : NULL;
    struct rl_caps c;
    rl_resolve(rl, te, uok ? user : NULL, ue, &c);
    for (int s = 0; s < RATELIMIT_SCOPE__COUNT; s++) {
        const struct rl_entry *owner = s == RATELIMIT_TENANT ? te : s == RATELIMIT_USER ? ue : NULL;
        if ((s == RATELIMIT_TENANT && !tok) || (s == RATELIMIT_USER && !uok))
            continue;
        for (int k = 0; k < RATELIMIT_KIND__COUNT; k++) {
            struct ratelimit_bucket_view *v = &out->b[s][k];
            v->capacity = c.cap[s][k];
            v->overridden = c.ovr[s][k];
            if (v->capacity <= 0)
                continue;
            /* A copy, so reading changes nothing; no entry means full. */
            struct rl_bucket copy = {0, 0, 0};
            if (s == RATELIMIT_GLOBAL)
                copy = rl->global[k];
            else if (owner != NULL)
                copy = owner->b[k];
            rl_bucket_sync(&copy, v->capacity, rl->lim.window_ms, now_ms);
            v->level = rl_bucket_units(&copy, rl->lim.window_ms);
        }
    }
    pthread_mutex_unlock(&rl->mu);
}

/* ---- overrides ---- */

int ratelimit_set_override(struct ratelimit *rl, const char *tenant, const char *user,
                           long long rpm, long long tpm, char *err, size_t errlen)
{
    char key[RL_KEY_MAX];
    if (!rl_make_key(tenant, user, key)) {
        snprintf(err, errlen, "rate limit override: invalid %s id (accepted: [A-Za-z0-9_-]{1,64})",
                 tenant == NULL || !ident_valid(tenant) ? "tenant" : "user");
        return -1;
    }
    const long long v[RATELIMIT_KIND__COUNT] = {rpm, tpm};
    for (int k = 0; k < RATELIMIT_KIND__COUNT; k++)
        if (v[k] < -1 || v[k] > RATELIMIT_MAX_VALUE) {
            snprintf(err, errlen,
                     "rate limit override: %s %lld out of range: accepted -1 (the configured "
                     "value), 0 (unlimited) to %lld",
                     k == RATELIMIT_REQUESTS ? "rpm" : "tpm", v[k], RATELIMIT_MAX_VALUE);
            return -1;
        }
    if (rpm == -1 && tpm == -1) {
        ratelimit_clear_override(rl, tenant, user);
        return 0;
    }
    pthread_mutex_lock(&rl->mu);
    /* A new entry for an override goes straight to the pinned set: it
     * does not count against max_entries, so it evicts nothing. */
    struct rl_entry *e = rl_find(rl, key);
    if (e == NULL)
        e = rl_insert(rl, key, user != NULL ? RATELIMIT_USER : RATELIMIT_TENANT, NULL);
    else if (!e->pinned)
        rl_lru_unlink(rl, e);
    e->pinned = true;
    e->ovr[RATELIMIT_REQUESTS] = rpm;
    e->ovr[RATELIMIT_TOKENS] = tpm;
    pthread_mutex_unlock(&rl->mu);
    return 0;
}

bool ratelimit_clear_override(struct ratelimit *rl, const char *tenant, const char *user)
{
    char key[RL_KEY_MAX];
    if (!rl_make_key(tenant, user, key))
        return false;
    pthread_mutex_lock(&rl->mu);
    struct rl_entry *e = rl_find(rl, key);
    bool had = e != NULL && e->pinned;
    if (had) {
        e->ovr[RATELIMIT_REQUESTS] = e->ovr[RATELIMIT_TOKENS] = -1;
        e->pinned = false;
        rl_lru_push(rl, e);
        /* Back under the bound; the entry keeps its usage meanwhile. */
        while (rl->nlru > rl->lim.max_entries)
            xfree(rl_evict_one(rl, rl->now_max));
    }
    pthread_mutex_unlock(&rl->mu);
    return had;
}

bool ratelimit_get_override(struct ratelimit *rl, const char *tenant, const char *user,
                            long long *rpm, long long *tpm)
{
    char key[RL_KEY_MAX];
    if (!rl_make_key(tenant, user, key))
        return false;
    pthread_mutex_lock(&rl->mu);
    const struct rl_entry *e = rl_find(rl, key);
    bool had = e != NULL && e->pinned;
    if (had) {
        *rpm = e->ovr[RATELIMIT_REQUESTS];
        *tpm = e->ovr[RATELIMIT_TOKENS];
    }
    pthread_mutex_unlock(&rl->mu);
    return had;
}
