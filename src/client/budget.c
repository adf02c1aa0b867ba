/*
 * The budgets of budget.h. Calendar arithmetic uses Howard Hinnant's
 * days_from_civil / civil_from_days (proleptic Gregorian, exact for any
 * year), not the C library, so periods do not depend on the time zone or
 * on the width of time_t. Amounts are integer nano-dollars: a price per
 * million tokens of $0.075 is 75 nano-dollars a token, and sums never
 * round.
 *
 * Budget keys live in one chained hash table keyed "tenant" or
 * "tenant/user" ('/' is not in the id alphabet), with an LRU list of the
 * entries that may be dropped: those without an override and without an
 * outstanding reservation (a settle must find the entry it reserved on).
 *
 * With Redis (budget_use_redis), reserve, settle and snapshot ask the
 * scripts of budget_redis.h first, without holding the mutex across the
 * round trip, and build the same decisions and messages from the
 * server's figures. The table then serves when Redis cannot be used (the
 * fallback of REDIS_FAILURE=open) and holds what budget_set_spent()
 * pushed. When Redis stops answering, the spent amounts the table loaded
 * earlier are forgotten: settles went to Redis meanwhile, so the fallback
 * asks the loader again.
 */
#include "config.h"

#include "client/budget.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "client/budget_redis.h"
#include "config/config.h"
#include "util/alloc.h"
#include "util/log.h"

#define BG_KEY_MAX       (2 * IDENT_MAX + 2)
#define BG_DAY_MS        86400000LL
#define BG_NANO          1e9
#define BG_SUM_MAX       (INT64_MAX / 4) /* sums saturate here (2.3e9 USD) */
#define BG_SWEEP         2
#define BG_EVICT_SCAN    8
#define BG_SLOTS_INITIAL 64

static const char *const bg_var_names[BUDGET_SCOPE__COUNT] = {"TENANT_BUDGET_USD",
                                                              "USER_BUDGET_USD"};

struct bg_entry {
    struct bg_entry *hnext;
    struct bg_entry *prev, *next; /* LRU list, most recent first; unlinked when pinned */
    uint64_t hash;
    enum budget_scope scope;
    int64_t ovr; /* override in nano-dollars; -1 = the configured budget */
    bool loaded; /* spent is known for period_start */
    bool in_lru;
    int64_t period_start; /* the period spent and reserved belong to */
    int64_t spent, reserved;
    long n_res; /* outstanding reservations, of any period */
    char key[BG_KEY_MAX];
};

struct budget {
    pthread_mutex_t mu;
    struct budget_limits lim;
    int64_t limit[BUDGET_SCOPE__COUNT]; /* configured, nano-dollars; 0 = none */
    budget_load_fn load;
    void *load_ud;
    uint64_t next_id;
    int64_t now_max; /* the latest now_ms seen: the budget's time never goes back */
    struct bg_entry **slots;
    size_t nslots, count, nlru;
    struct bg_entry *head, *tail;
    struct redis *redis; /* shared budgets; NULL: this process alone */
    bool fail_closed;    /* REDIS_FAILURE=closed */
    bool redis_down;     /* the last use of Redis failed (logged once per change) */
};

const char *budget_scope_name(enum budget_scope s)
{
    switch (s) {
    case BUDGET_TENANT:
        return "tenant";
    case BUDGET_USER:
        return "user";
    case BUDGET_SCOPE__COUNT:
        break;
    }
    return "?";
}

const char *budget_period_name(enum budget_period p)
{
    switch (p) {
    case BUDGET_DAY:
        return "day";
    case BUDGET_WEEK:
        return "week";
    case BUDGET_MONTH:
        return "month";
    }
    return "?";
}

int budget_period_parse(const char *s, enum budget_period *out)
{
    static const enum budget_period all[] = {BUDGET_DAY, BUDGET_WEEK, BUDGET_MONTH};
    for (size_t i = 0; s != NULL && i < sizeof all / sizeof all[0]; i++)
        if (strcmp(s, budget_period_name(all[i])) == 0) {
            *out = all[i];
            return 0;
        }
    return -1;
}

/* ---- calendar ---- */

/* Days since 1970-01-01 of y-m-d (m 1..12, d 1..31). */
static int64_t bg_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* The date of day z since 1970-01-01. */
static void bg_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* floor(a / b) for b > 0. */
static int64_t bg_floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

int budget_period_bounds(enum budget_period p, int64_t now_ms, int64_t *start_ms, int64_t *end_ms)
{
    if (now_ms < BUDGET_TIME_MIN_MS || now_ms > BUDGET_TIME_MAX_MS)
        return -1;
    int64_t day = bg_floor_div(now_ms, BG_DAY_MS);
    int64_t first, next;
    switch (p) {
    case BUDGET_DAY:
        first = day;
        next = day + 1;
        break;
    case BUDGET_WEEK:
        /* 1970-01-01 was a Thursday: (day + 3) mod 7 is 0 on Mondays. */
        first = day - (day + 3 - bg_floor_div(day + 3, 7) * 7);
        next = first + 7;
        break;
    case BUDGET_MONTH: {
        int64_t y;
        unsigned m, d;
        bg_civil_from_days(day, &y, &m, &d);
        first = bg_days_from_civil(y, m, 1);
        next = m == 12 ? bg_days_from_civil(y + 1, 1, 1) : bg_days_from_civil(y, m + 1, 1);
        break;
    }
    default:
        return -1;
    }
    *start_ms = first * BG_DAY_MS;
    *end_ms = next * BG_DAY_MS;
    return 0;
}

void budget_format_time(int64_t ms, char *out, size_t n)
{
    int64_t day = bg_floor_div(ms, BG_DAY_MS);
    int64_t in_day = ms - day * BG_DAY_MS;
    int64_t y;
    unsigned m, d;
    bg_civil_from_days(day, &y, &m, &d);
    int hh = (int)(in_day / 3600000), mi = (int)(in_day / 60000 % 60),
        ss = (int)(in_day / 1000 % 60), frac = (int)(in_day % 1000);
    if (frac != 0)
        snprintf(out, n, "%04lld-%02u-%02uT%02d:%02d:%02d.%03dZ", (long long)y, m, d, hh, mi, ss,
                 frac);
    else
        snprintf(out, n, "%04lld-%02u-%02uT%02d:%02d:%02dZ", (long long)y, m, d, hh, mi, ss);
}

/* ---- amounts ---- */

/* USD to nano-dollars, clamped to [0, BUDGET_MAX_USD]; NAN counts 0. */
static int64_t bg_nusd(double usd)
{
    if (!(usd > 0.0))
        return 0;
    if (usd > BUDGET_MAX_USD)
        usd = BUDGET_MAX_USD;
    return (int64_t)llround(usd * BG_NANO);
}

static double bg_usd(int64_t nusd)
{
    return (double)nusd / BG_NANO;
}

static int64_t bg_add(int64_t a, int64_t b)
{
    int64_t s = a + b; /* both within [-BG_SUM_MAX, BG_SUM_MAX]: no overflow */
    if (s > BG_SUM_MAX)
        return BG_SUM_MAX;
    if (s < 0)
        return 0;
    return s;
}

/* An amount for humans: "$5.00", "$0.000315" (up to 6 decimals, at least 2). */
static void bg_format_usd(int64_t nusd, char *out, size_t n)
{
    char tmp[48];
    snprintf(tmp, sizeof tmp, "%.6f", bg_usd(nusd));
    size_t len = strlen(tmp);
    const char *dot = strchr(tmp, '.');
    while (dot != NULL && len > (size_t)(dot - tmp) + 3 && tmp[len - 1] == '0')
        tmp[--len] = '\0';
    snprintf(out, n, "$%s", tmp);
}

/* ---- configuration ---- */

void budget_limits_init(struct budget_limits *lim)
{
    memset(lim, 0, sizeof *lim);
    lim->period = BUDGET_MONTH;
}

void budget_limits_from_config(const struct config *cfg, struct budget_limits *lim)
{
    budget_limits_init(lim);
    for (int s = 0; s < BUDGET_SCOPE__COUNT; s++) {
        int id = config_find(cfg, bg_var_names[s]);
        if (id < 0)
            continue;
        double v = NAN;
        if (config_var(cfg, id)->type == CFG_NUMBER)
            v = config_number(cfg, id);
        else if (config_var(cfg, id)->type == CFG_INT)
            v = (double)config_int(cfg, id);
        lim->usd[s] = v > 0.0 ? v : 0.0;
    }
    int id = config_find(cfg, "BUDGET_PERIOD");
    enum budget_period p;
    if (id >= 0 && config_var(cfg, id)->type == CFG_ENUM &&
        budget_period_parse(config_str(cfg, id), &p) == 0)
        lim->period = p;
}

/* ---- the table ---- */

static uint64_t bg_hash(const char *key)
{
    uint64_t h = 14695981039346656037ULL; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    return h;
}

/* The key of a tenant (user NULL) or a user; false when an id is invalid. */
static bool bg_make_key(const char *tenant, const char *user, char out[BG_KEY_MAX])
{
    if (tenant == NULL || !ident_valid(tenant) || (user != NULL && !ident_valid(user)))
        return false;
    if (user != NULL)
        snprintf(out, BG_KEY_MAX, "%s/%s", tenant, user);
    else
        snprintf(out, BG_KEY_MAX, "%s", tenant);
    return true;
}

static struct bg_entry *bg_find(const struct budget *b, const char *key)
{
    uint64_t h = bg_hash(key);
    for (struct bg_entry *e = b->slots[h & (b->nslots - 1)]; e != NULL; e = e->hnext)
        if (e->hash == h && strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

static void bg_lru_unlink(struct budget *b, struct bg_entry *e)
{
    if (!e->in_lru)
        return;
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        b->head = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        b->tail = e->prev;
    e->prev = e->next = NULL;
    e->in_lru = false;
    b->nlru--;
}

static void bg_lru_push(struct budget *b, struct bg_entry *e)
{
    e->prev = NULL;
    e->next = b->head;
    if (b->head != NULL)
        b->head->prev = e;
    else
        b->tail = e;
    b->head = e;
    e->in_lru = true;
    b->nlru++;
}

/* Puts e in the LRU list (as most recent) when it may be dropped, and
 * takes it out when it may not: it has an override or reservations. */
static void bg_place(struct budget *b, struct bg_entry *e)
{
    bg_lru_unlink(b, e);
    if (e->ovr < 0 && e->n_res == 0)
        bg_lru_push(b, e);
}

static void bg_detach(struct budget *b, struct bg_entry *e)
{
    struct bg_entry **pp = &b->slots[e->hash & (b->nslots - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    bg_lru_unlink(b, e);
    b->count--;
}

/* True when e holds nothing for the period of now: dropping it loses no
 * information. */
static bool bg_stale(const struct budget *b, const struct bg_entry *e, int64_t now)
{
    int64_t start, end;
    if (budget_period_bounds(b->lim.period, now, &start, &end) != 0)
        return false;
    return !e->loaded || e->period_start < start;
}

/* Removes one droppable entry, preferring a stale one near the tail. */
static struct bg_entry *bg_evict_one(struct budget *b, int64_t now)
{
    struct bg_entry *victim = b->tail;
    struct bg_entry *e = b->tail;
    for (int i = 0; i < BG_EVICT_SCAN && e != NULL; i++, e = e->prev)
        if (bg_stale(b, e, now)) {
            victim = e;
            break;
        }
    bg_detach(b, victim);
    return victim;
}

static void bg_sweep(struct budget *b, int64_t now)
{
    for (int i = 0; i < BG_SWEEP && b->tail != NULL && bg_stale(b, b->tail, now); i++) {
        struct bg_entry *e = b->tail;
        bg_detach(b, e);
        xfree(e);
    }
}

static void bg_grow(struct budget *b)
{
    if (b->count + 1 <= b->nslots / 4 * 3)
        return;
    size_t n = b->nslots * 2;
    struct bg_entry **slots = xcalloc(n, sizeof *slots);
    for (size_t i = 0; i < b->nslots; i++) {
        struct bg_entry *e = b->slots[i];
        while (e != NULL) {
            struct bg_entry *next = e->hnext;
            e->hnext = slots[e->hash & (n - 1)];
            slots[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    xfree(b->slots);
    b->slots = slots;
    b->nslots = n;
}

/* Puts a new entry for key in the hash table (not in the LRU list), in
 * mem when given (an evicted entry's memory) or fresh memory. */
static struct bg_entry *bg_insert(struct budget *b, const char *key, enum budget_scope scope,
                                  struct bg_entry *mem)
{
    struct bg_entry *e = mem != NULL ? mem : xmalloc(sizeof *e);
    memset(e, 0, sizeof *e);
    e->hash = bg_hash(key);
    e->scope = scope;
    e->ovr = -1;
    snprintf(e->key, sizeof e->key, "%s", key);
    bg_grow(b);
    size_t slot = e->hash & (b->nslots - 1);
    e->hnext = b->slots[slot];
    b->slots[slot] = e;
    b->count++;
    return e;
}

/* The entry of key, made (not loaded) when missing, which may drop the
 * least recently used droppable entry; a droppable entry becomes the most
 * recent. */
static struct bg_entry *bg_get(struct budget *b, const char *key, enum budget_scope scope,
                               int64_t now)
{
    struct bg_entry *e = bg_find(b, key);
    if (e == NULL) {
        struct bg_entry *mem = b->nlru >= b->lim.max_entries ? bg_evict_one(b, now) : NULL;
        e = bg_insert(b, key, scope, mem);
    }
    bg_place(b, e);
    return e;
}

/* The budget's time: now_ms, or the latest time seen when now_ms is
 * behind it (threads read the clock before taking the lock), so every
 * entry is brought to one period and never back. */
static int64_t bg_now(struct budget *b, int64_t now_ms)
{
    if (now_ms > b->now_max)
        b->now_max = now_ms;
    return b->now_max;
}

/* The budget that applies to e in nano-dollars (0 = none). */
static int64_t bg_limit(const struct budget *b, const struct bg_entry *e, enum budget_scope s)
{
    return e != NULL && e->ovr >= 0 ? e->ovr : b->limit[s];
}

/* What (tenant, user) spent in [start, end) by the loader into *nusd (0
 * without a loader). 0, or -1 with a message. Locked. */
static int bg_load(struct budget *b, const char *tenant, const char *user, int64_t start,
                   int64_t end, int64_t *nusd, char *err, size_t errlen)
{
    double usd = 0.0;
    *nusd = 0;
    if (b->load == NULL)
        return 0;
    char lerr[256] = "";
    if (b->load(b->load_ud, tenant, user, start, end, &usd, lerr, sizeof lerr) != 0) {
        snprintf(err, errlen, "budget: cannot read what %s %s%s%s spent this %s: %s",
                 user != NULL ? "user" : "tenant", user != NULL ? user : tenant,
                 user != NULL ? " of tenant " : "", user != NULL ? tenant : "",
                 budget_period_name(b->lim.period), lerr);
        return -1;
    }
    *nusd = bg_nusd(usd);
    return 0;
}

/* Brings e to the period of now: a new period (or a first use) starts
 * from what the loader reports, or 0, with nothing reserved. A clock
 * behind the entry's period keeps the entry's. 0, or -1 with a message
 * when the loader fails (e is then left unloaded). */
static int bg_sync(struct budget *b, struct bg_entry *e, const char *tenant, const char *user,
                   int64_t now, char *err, size_t errlen)
{
    int64_t start, end;
    if (budget_period_bounds(b->lim.period, now, &start, &end) != 0) {
        snprintf(err, errlen, "budget: time %lld ms is outside the calendar", (long long)now);
        return -1;
    }
    if (e->loaded && start <= e->period_start)
        return 0;
    int64_t spent = 0;
    if (bg_load(b, tenant, user, start, end, &spent, err, errlen) != 0) {
        e->loaded = false;
        return -1;
    }
    e->period_start = start;
    e->spent = spent;
    e->reserved = 0;
    e->loaded = true;
    return 0;
}

/* ---- life cycle ---- */

struct budget *budget_new(const struct budget_limits *lim, char *err, size_t errlen)
{
    for (int s = 0; s < BUDGET_SCOPE__COUNT; s++)
        if (!(lim->usd[s] >= 0.0 && lim->usd[s] <= BUDGET_MAX_USD)) {
            snprintf(err, errlen, "%s=%g is out of range: accepted 0 (no budget) to %.0f",
                     bg_var_names[s], lim->usd[s], BUDGET_MAX_USD);
            return NULL;
        }
    if (lim->period != BUDGET_DAY && lim->period != BUDGET_WEEK && lim->period != BUDGET_MONTH) {
        snprintf(err, errlen, "BUDGET_PERIOD: unknown period %d (accepted: day|week|month)",
                 (int)lim->period);
        return NULL;
    }
    struct budget *b = xcalloc(1, sizeof *b);
    b->lim = *lim;
    if (b->lim.max_entries == 0)
        b->lim.max_entries = BUDGET_MAX_ENTRIES_DEFAULT;
    if (b->lim.max_entries < BUDGET_MAX_ENTRIES_MIN)
        b->lim.max_entries = BUDGET_MAX_ENTRIES_MIN;
    for (int s = 0; s < BUDGET_SCOPE__COUNT; s++)
        b->limit[s] = bg_nusd(lim->usd[s]);
    b->next_id = 1;
    b->nslots = BG_SLOTS_INITIAL;
    b->slots = xcalloc(b->nslots, sizeof *b->slots);
    pthread_mutex_init(&b->mu, NULL);
    return b;
}

void budget_free(struct budget *b)
{
    if (b == NULL)
        return;
    for (size_t i = 0; i < b->nslots; i++) {
        struct bg_entry *e = b->slots[i];
        while (e != NULL) {
            struct bg_entry *next = e->hnext;
            xfree(e);
            e = next;
        }
    }
    xfree(b->slots);
    pthread_mutex_destroy(&b->mu);
    xfree(b);
}

void budget_set_loader(struct budget *b, budget_load_fn fn, void *ud)
{
    pthread_mutex_lock(&b->mu);
    b->load = fn;
    b->load_ud = ud;
    pthread_mutex_unlock(&b->mu);
}

size_t budget_entry_count(struct budget *b)
{
    pthread_mutex_lock(&b->mu);
    size_t n = b->count;
    pthread_mutex_unlock(&b->mu);
    return n;
}

int budget_set_spent(struct budget *b, const char *tenant, const char *user,
                     int64_t period_start_ms, double usd, char *err, size_t errlen)
{
    char key[BG_KEY_MAX];
    int64_t start, end;
    if (!bg_make_key(tenant, user, key)) {
        snprintf(err, errlen, "budget: invalid tenant or user id (accepted: [A-Za-z0-9_-]{1,64})");
        return -1;
    }
    if (budget_period_bounds(b->lim.period, period_start_ms, &start, &end) != 0 ||
        start != period_start_ms) {
        char when[40];
        budget_format_time(period_start_ms, when, sizeof when);
        snprintf(err, errlen, "budget: %s is not the start of a %s (BUDGET_PERIOD=%s)", when,
                 budget_period_name(b->lim.period), budget_period_name(b->lim.period));
        return -1;
    }
    if (!(usd >= 0.0 && usd <= BUDGET_MAX_USD)) {
        snprintf(err, errlen, "budget: spent amount %g out of range (0 to %.0f USD)", usd,
                 BUDGET_MAX_USD);
        return -1;
    }
    pthread_mutex_lock(&b->mu);
    struct bg_entry *e = bg_get(b, key, user != NULL ? BUDGET_USER : BUDGET_TENANT, b->now_max);
    if (!e->loaded || period_start_ms >= e->period_start) {
        if (!e->loaded || period_start_ms > e->period_start)
            e->reserved = 0; /* reservations of an older period no longer count */
        e->period_start = period_start_ms;
        e->spent = bg_nusd(usd);
        e->loaded = true;
    }
    pthread_mutex_unlock(&b->mu);
    return 0;
}

/* ---- views and messages ---- */

/* One scope's figures from e (NULL: no entry) at the period starting at
 * start. */
static void bg_view_scope(const struct budget *b, const struct bg_entry *e, enum budget_scope s,
                          int64_t start, struct budget_scope_view *v)
{
    memset(v, 0, sizeof *v);
    int64_t limit = bg_limit(b, e, s);
    v->overridden = e != NULL && e->ovr >= 0;
    v->limited = limit > 0;
    if (!v->limited)
        return;
    v->limit_usd = bg_usd(limit);
    int64_t spent = 0, reserved = 0;
    if (e != NULL && e->loaded && e->period_start == start) {
        v->known = true;
        spent = e->spent;
        reserved = e->reserved;
    }
    v->spent_usd = bg_usd(spent);
    v->reserved_usd = bg_usd(reserved);
    v->remaining_usd = bg_usd(limit - spent - reserved);
}

static void bg_view(const struct budget *b, const struct bg_entry *te, const struct bg_entry *ue,
                    bool has_tenant, bool has_user, int64_t now, struct budget_view *out)
{
    memset(out, 0, sizeof *out);
    out->period = b->lim.period;
    if (budget_period_bounds(b->lim.period, now, &out->period_start_ms, &out->resets_at_ms) != 0)
        return;
    if (has_tenant)
        bg_view_scope(b, te, BUDGET_TENANT, out->period_start_ms, &out->s[BUDGET_TENANT]);
    if (has_user)
        bg_view_scope(b, ue, BUDGET_USER, out->period_start_ms, &out->s[BUDGET_USER]);
}

/* "the user budget of bob in tenant acme" or "the tenant budget of acme". */
static void bg_whose(enum budget_scope s, const char *tenant, const char *user, char *out, size_t n)
{
    if (s == BUDGET_USER)
        snprintf(out, n, "the user budget of %s in tenant %s", user, tenant);
    else
        snprintf(out, n, "the tenant budget of %s", tenant);
}

/* "USER_BUDGET_USD=5.00" or "$5.00 set with `memchat limits set`". */
static void bg_limit_text(enum budget_scope s, int64_t limit, bool overridden, char *out, size_t n)
{
    char amount[48];
    bg_format_usd(limit, amount, sizeof amount);
    if (overridden)
        snprintf(out, n, "%s set with `memchat limits set`", amount);
    else
        snprintf(out, n, "%s=%s", bg_var_names[s], amount + 1);
}

static const char *bg_this_period(enum budget_period p)
{
    switch (p) {
    case BUDGET_DAY:
        return "today";
    case BUDGET_WEEK:
        return "this week";
    case BUDGET_MONTH:
        return "this month";
    }
    return "this period";
}

/* The refusal of s's budget: what it holds against its limit, and when
 * the period ending at end resets it. */
static void bg_refusal_text(const struct budget *b, enum budget_scope s, const char *tenant,
                            const char *user, int64_t limit, bool overridden, int64_t spent,
                            int64_t reserved, int64_t est, int64_t end, char *out, size_t n)
{
    char whose[200], lt[96], a[48], r[48], x[48], when[40];
    bg_whose(s, tenant, user, whose, sizeof whose);
    bg_limit_text(s, limit, overridden, lt, sizeof lt);
    bg_format_usd(spent, a, sizeof a);
    bg_format_usd(reserved, r, sizeof r);
    bg_format_usd(est, x, sizeof x);
    budget_format_time(end, when, sizeof when);
    snprintf(out, n,
             "%s has no room for this turn: spent %s %s + reserved by turns in flight "
             "%s + this turn's estimate %s is over %s; it resets at %s",
             whose, a, bg_this_period(b->lim.period), r, x, lt, when);
}

static void bg_no_price_text(enum budget_scope s, const char *tenant, const char *user,
                             const char *model, int64_t limit, bool overridden, char *out, size_t n)
{
    char whose[200], lt[96];
    bg_whose(s, tenant, user, whose, sizeof whose);
    bg_limit_text(s, limit, overridden, lt, sizeof lt);
    snprintf(out, n,
             "model %s has no price; set one in prices.json to use it under a budget (%s is %s)",
             model != NULL && model[0] != '\0' ? model : "(unnamed)", whose, lt);
}

/* ---- Redis: state and views ---- */

void budget_use_redis(struct budget *b, struct redis *r, bool fail_closed)
{
    pthread_mutex_lock(&b->mu);
    b->redis = r;
    b->fail_closed = fail_closed;
    b->redis_down = false;
    pthread_mutex_unlock(&b->mu);
}

/* What went wrong in err, without the "Redis at <where>" redis.c puts
 * first (the callers name the server themselves). */
static const char *bg_redis_cause(const char *err, const char *where)
{
    char head[REDIS_HOST_MAX + 48];
    snprintf(head, sizeof head, "Redis at %s", where);
    size_t n = strlen(head);
    if (strncmp(err, head, n) != 0)
        return err;
    err += n;
    if (strncmp(err, " is unreachable: ", 17) == 0)
        return err + 17;
    if (strncmp(err, ": ", 2) == 0)
        return err + 2;
    return err[0] == ' ' ? err + 1 : err;
}

/* Redis could not be used (locked): logs the change, once, and forgets
 * the spent amounts loaded earlier, which settles on Redis have since
 * made stale (the fallback loads them again). */
static void bg_redis_down(struct budget *b, struct redis *r, const char *err)
{
    if (b->redis_down)
        return;
    b->redis_down = true;
    log_warn("budgets: Redis at %s cannot be used (%s); %s", redis_where(r),
             bg_redis_cause(err, redis_where(r)),
             b->fail_closed ? "REDIS_FAILURE=closed refuses turns until it is back"
                            : "each process enforces budgets alone until it is back "
                              "(REDIS_FAILURE=open)");
    if (b->load == NULL)
        return; /* pushed amounts cannot be loaded again: kept */
    for (size_t i = 0; i < b->nslots; i++)
        for (struct bg_entry *e = b->slots[i]; e != NULL; e = e->hnext)
            if (e->n_res == 0)
                e->loaded = false;
}

/* Redis answered (locked): logs the change back, once. */
static void bg_redis_up(struct budget *b, struct redis *r)
{
    if (!b->redis_down)
        return;
    b->redis_down = false;
    log_info("budgets: Redis at %s answers again; budgets are shared again", redis_where(r));
}

/* Records whether Redis answered, logging a change of state. */
static void bg_redis_note(struct budget *b, struct redis *r, enum redis_status st, const char *err)
{
    pthread_mutex_lock(&b->mu);
    if (st == REDIS_ST_OK)
        bg_redis_up(b, r);
    else
        bg_redis_down(b, r, err);
    pthread_mutex_unlock(&b->mu);
}

static void bg_view_figures(const struct budget_redis_figures *f, struct budget_scope_view *v)
{
    memset(v, 0, sizeof *v);
    v->overridden = f->overridden;
    v->limited = f->limit > 0;
    if (!v->limited)
        return;
    v->limit_usd = bg_usd(f->limit);
    int64_t spent = f->known ? f->spent : 0, reserved = f->known ? f->reserved : 0;
    v->known = f->known;
    v->spent_usd = bg_usd(spent);
    v->reserved_usd = bg_usd(reserved);
    v->remaining_usd = bg_usd(f->limit - spent - reserved);
}

/* A view of the server's figures for the period of q. */
static void bg_view_shared(const struct budget *b, const struct budget_redis_request *q,
                           const struct budget_redis_figures f[BUDGET_SCOPE__COUNT],
                           struct budget_view *out)
{
    memset(out, 0, sizeof *out);
    out->period = b->lim.period;
    out->period_start_ms = q->period_start_ms;
    out->resets_at_ms = q->period_end_ms;
    bg_view_figures(&f[BUDGET_TENANT], &out->s[BUDGET_TENANT]);
    if (q->user != NULL)
        bg_view_figures(&f[BUDGET_USER], &out->s[BUDGET_USER]);
}

/* A request about (tenant, user) at now; false when now is outside the
 * calendar. */
static bool bg_request(const struct budget *b, const char *tenant, const char *user, int64_t now,
                       struct budget_redis_request *q)
{
    memset(q, 0, sizeof *q);
    q->tenant = tenant;
    q->user = user;
    q->now_ms = now;
    memcpy(q->limit, b->limit, sizeof q->limit); /* set once by budget_new */
    return budget_period_bounds(b->lim.period, now, &q->period_start_ms, &q->period_end_ms) == 0;
}

/* ---- Redis: reserve ---- */

/* The spent amounts the server asked for, into q (loader, or what
 * budget_set_spent pushed for the period, or 0). Under the lock so loader
 * calls stay serialised; no Redis round trip is in progress. 0, or -1
 * with a message and *scope the budget that could not be read. */
static int bg_initial_spent(struct budget *b, const struct budget_redis_answer *a,
                            struct budget_redis_request *q, enum budget_scope *scope, char *err,
                            size_t errlen)
{
    int rc = 0;
    pthread_mutex_lock(&b->mu);
    for (int s = 0; s < BUDGET_SCOPE__COUNT && rc == 0; s++) {
        if (!a->need_init[s] || q->has_init[s])
            continue;
        const char *user = s == BUDGET_USER ? q->user : NULL;
        int64_t v = 0;
        if (b->load != NULL) {
            rc = bg_load(b, q->tenant, user, q->period_start_ms, q->period_end_ms, &v, err, errlen);
        } else {
            char key[BG_KEY_MAX];
            const struct bg_entry *e = bg_make_key(q->tenant, user, key) ? bg_find(b, key) : NULL;
            if (e != NULL && e->loaded && e->period_start == q->period_start_ms)
                v = e->spent;
        }
        *scope = (enum budget_scope)s;
        q->has_init[s] = rc == 0;
        q->init_nusd[s] = v;
    }
    pthread_mutex_unlock(&b->mu);
    return rc;
}

/* Turns the server's answer to q into *d and *res. */
static void bg_decide_shared(struct budget *b, const struct budget_redis_request *q,
                             const struct budget_redis_answer *a, const char *model,
                             struct budget_reservation *res, struct budget_decision *d)
{
    const struct budget_redis_figures *f = &a->f[a->scope];
    bg_view_shared(b, q, a->f, &d->view);
    d->scope = a->scope;
    switch (a->outcome) {
    case BUDGET_REDIS_NO_PRICE:
        d->result = BUDGET_NO_PRICE;
        bg_no_price_text(a->scope, q->tenant, q->user, model, f->limit, f->overridden, d->message,
                         sizeof d->message);
        return;
    case BUDGET_REDIS_REFUSED:
        d->result = BUDGET_REFUSED;
        bg_refusal_text(b, a->scope, q->tenant, q->user, f->limit, f->overridden, f->spent,
                        f->reserved, q->est_nusd, q->period_end_ms, d->message, sizeof d->message);
        return;
    case BUDGET_REDIS_RESERVED:
    case BUDGET_REDIS_NONE:
    case BUDGET_REDIS_NEED_INIT:
        break;
    }
    d->result = BUDGET_OK;
    d->scope = BUDGET_TENANT;
    pthread_mutex_lock(&b->mu);
    res->id = b->next_id++;
    pthread_mutex_unlock(&b->mu);
    snprintf(res->tenant, sizeof res->tenant, "%s", q->tenant);
    snprintf(res->user, sizeof res->user, "%s", q->user != NULL ? q->user : "");
    if (a->outcome != BUDGET_REDIS_RESERVED)
        return; /* nothing held: an empty reservation, as without Redis */
    res->shared = true;
    snprintf(res->rid, sizeof res->rid, "%s", q->rid);
    res->period_start_ms = q->period_start_ms;
    res->est_nusd = q->est_nusd;
    for (int s = 0; s < BUDGET_SCOPE__COUNT; s++)
        res->held[s] = a->f[s].limit > 0;
    d->reserved_usd = bg_usd(q->est_nusd);
}

/* Redis could not be used for a reservation: refuses (fail closed, true)
 * or leaves the decision to this process (false) with reason saying why. */
static bool bg_unusable(struct budget *b, struct redis *r, enum redis_status st, const char *err,
                        struct budget_decision *d, char *reason, size_t rlen)
{
    pthread_mutex_lock(&b->mu);
    bool closed = b->fail_closed;
    bg_redis_down(b, r, err);
    pthread_mutex_unlock(&b->mu);
    const char *where = redis_where(r);
    const char *state = st == REDIS_ST_DOWN ? "is unreachable" : "cannot be used";
    const char *cause = bg_redis_cause(err, where);
    if (!closed) {
        snprintf(reason, rlen,
                 "Redis at %s %s, so this process enforces budgets alone until it is back: %s",
                 where, state, cause);
        return false;
    }
    d->result = BUDGET_UNAVAILABLE;
    snprintf(d->message, sizeof d->message,
             "budgets are shared on Redis at %s, which %s: %.256s; REDIS_FAILURE=closed refuses "
             "turns until it is back",
             where, state, cause);
    return true;
}

/* Reserves on Redis. True when that decided (a refusal of fail closed
 * included); false when Redis could not be used and this process is to
 * decide alone, with reason saying why. */
static bool bg_reserve_shared(struct budget *b, struct redis *r, const char *tenant,
                              const char *user, const char *model, double est_usd, int64_t now,
                              struct budget_reservation *res, struct budget_decision *d,
                              char *reason, size_t rlen)
{
    struct budget_redis_request q;
    if (!bg_request(b, tenant, user, now, &q)) {
        d->result = BUDGET_ERROR;
        snprintf(d->message, sizeof d->message, "budget: time %lld ms is outside the calendar",
                 (long long)now);
        return true;
    }
    char rid[BUDGET_RID_LEN + 1];
    budget_redis_new_rid(rid);
    q.rid = rid;
    q.est_nusd = bg_nusd(est_usd);
    q.no_price = !(est_usd >= 0.0);
    struct budget_redis_answer a;
    char err[512] = "";
    enum redis_status st;
    /* Three rounds at most: the second brings the spent amounts the
     * first asked for; a third covers a budget that began to apply in
     * between (an override set meanwhile). */
    for (int round = 0;; round++) {
        st = budget_redis_reserve(r, &q, &a, err, sizeof err);
        if (st != REDIS_ST_OK || a.outcome != BUDGET_REDIS_NEED_INIT)
            break;
        bg_redis_note(b, r, st, err);
        if (round == 2) {
            snprintf(err, sizeof err, "Redis at %s keeps asking for spent amounts", redis_where(r));
            st = REDIS_ST_FAILED;
            break;
        }
        if (bg_initial_spent(b, &a, &q, &d->scope, d->message, sizeof d->message) != 0) {
            d->result = BUDGET_ERROR;
            return true;
        }
    }
    if (st != REDIS_ST_OK)
        return bg_unusable(b, r, st, err, d, reason, rlen);
    bg_redis_note(b, r, st, err);
    bg_decide_shared(b, &q, &a, model, res, d);
    return true;
}

/* ---- reserve and settle ---- */

/* budget_reserve() in this process alone; keys are tenant's and user's
 * (NULL: none). d and res are zeroed. */
static enum budget_result bg_reserve_local(struct budget *b, const char *tenant, const char *user,
                                           const char *tkey, const char *ukey, const char *model,
                                           double est_usd, int64_t now_ms,
                                           struct budget_reservation *res,
                                           struct budget_decision *d)
{
    const char *keys[BUDGET_SCOPE__COUNT] = {tkey, ukey};
    struct bg_entry *ent[BUDGET_SCOPE__COUNT] = {NULL, NULL};
    int64_t limit[BUDGET_SCOPE__COUNT] = {0, 0};
    bool no_price = !(est_usd >= 0.0);
    int64_t est = bg_nusd(est_usd);

    pthread_mutex_lock(&b->mu);
    now_ms = bg_now(b, now_ms);
    bool any = false;
    for (int s = 0; s < BUDGET_SCOPE__COUNT; s++) {
        if (keys[s] == NULL)
            continue;
        ent[s] = bg_find(b, keys[s]);
        limit[s] = bg_limit(b, ent[s], (enum budget_scope)s);
        any = any || limit[s] > 0;
    }
    if (!any) {
        /* No budget applies: an empty reservation, so the turn's settle
         * path is the same with or without budgets. */
        d->result = BUDGET_OK;
        res->id = b->next_id++;
        snprintf(res->tenant, sizeof res->tenant, "%s", tenant);
        snprintf(res->user, sizeof res->user, "%s", user != NULL ? user : "");
        bg_view(b, ent[0], ent[1], true, user != NULL, now_ms, &d->view);
        pthread_mutex_unlock(&b->mu);
        return d->result;
    }
    if (no_price) {
        d->result = BUDGET_NO_PRICE;
        d->scope = limit[BUDGET_USER] > 0 ? BUDGET_USER : BUDGET_TENANT;
        bg_view(b, ent[0], ent[1], true, user != NULL, now_ms, &d->view);
        bool ovr = ent[d->scope] != NULL && ent[d->scope]->ovr >= 0;
        pthread_mutex_unlock(&b->mu);
        bg_no_price_text(d->scope, tenant, user, model, limit[d->scope], ovr, d->message,
                         sizeof d->message);
        return d->result;
    }

    /* Bring every budget that applies to this period (loading it when
     * new), touching both before making either so neither evicts the
     * other. */
    for (int s = 0; s < BUDGET_SCOPE__COUNT; s++)
        if (ent[s] != NULL && ent[s]->in_lru)
            bg_place(b, ent[s]);
    for (int s = 0; s < BUDGET_SCOPE__COUNT; s++) {
        if (limit[s] <= 0)
            continue;
        if (ent[s] == NULL)
            ent[s] = bg_get(b, keys[s], (enum budget_scope)s, now_ms);
        if (bg_sync(b, ent[s], tenant, s == BUDGET_USER ? user : NULL, now_ms, d->message,
                    sizeof d->message) != 0) {
            d->result = BUDGET_ERROR;
            d->scope = (enum budget_scope)s;
            pthread_mutex_unlock(&b->mu);
            return d->result;
        }
    }
    /* All or nothing; the narrower budget is named first. */
    for (int s = BUDGET_USER; s >= BUDGET_TENANT; s--) {
        if (limit[s] <= 0)
            continue;
        const struct bg_entry *e = ent[s];
        if (e->spent + e->reserved + est > limit[s]) {
            d->result = BUDGET_REFUSED;
            d->scope = (enum budget_scope)s;
            bg_view(b, ent[0], ent[1], true, user != NULL, now_ms, &d->view);
            int64_t spent = e->spent, reserved = e->reserved, start = e->period_start;
            bool ovr = e->ovr >= 0;
            pthread_mutex_unlock(&b->mu);
            int64_t ps, pe;
            (void)budget_period_bounds(b->lim.period, start, &ps, &pe);
            bg_refusal_text(b, d->scope, tenant, user, limit[s], ovr, spent, reserved, est, pe,
                            d->message, sizeof d->message);
            return d->result;
        }
    }
    res->id = b->next_id++;
    snprintf(res->tenant, sizeof res->tenant, "%s", tenant);
    snprintf(res->user, sizeof res->user, "%s", user != NULL ? user : "");
    res->est_nusd = est;
    for (int s = 0; s < BUDGET_SCOPE__COUNT; s++) {
        if (limit[s] <= 0)
            continue;
        struct bg_entry *e = ent[s];
        e->reserved = bg_add(e->reserved, est);
        e->n_res++;
        res->held[s] = true;
        res->period_start_ms = e->period_start;
        bg_place(b, e);
    }
    d->result = BUDGET_OK;
    d->reserved_usd = bg_usd(est);
    bg_view(b, ent[0], ent[1], true, user != NULL, now_ms, &d->view);
    bg_sweep(b, now_ms);
    pthread_mutex_unlock(&b->mu);
    return d->result;
}

enum budget_result budget_reserve(struct budget *b, const char *tenant, const char *user,
                                  const char *model, double est_usd, int64_t now_ms,
                                  struct budget_reservation *res, struct budget_decision *d)
{
    memset(d, 0, sizeof *d);
    memset(res, 0, sizeof *res);
    char tkey[BG_KEY_MAX], ukey[BG_KEY_MAX];
    if (!bg_make_key(tenant, NULL, tkey) || (user != NULL && !bg_make_key(tenant, user, ukey))) {
        d->result = BUDGET_ERROR;
        snprintf(d->message, sizeof d->message,
                 "budget: invalid tenant or user id (accepted: [A-Za-z0-9_-]{1,64})");
        return d->result;
    }
    pthread_mutex_lock(&b->mu);
    struct redis *r = b->redis;
    int64_t now = bg_now(b, now_ms);
    pthread_mutex_unlock(&b->mu);
    char reason[sizeof d->fallback_reason] = "";
    if (r != NULL &&
        bg_reserve_shared(b, r, tenant, user, model, est_usd, now, res, d, reason, sizeof reason))
        return d->result;
    memset(d, 0, sizeof *d); /* what a failed round on Redis left */
    memset(res, 0, sizeof *res);
    enum budget_result rc = bg_reserve_local(b, tenant, user, tkey, user != NULL ? ukey : NULL,
                                             model, est_usd, now_ms, res, d);
    if (r != NULL) {
        d->fell_back = true;
        snprintf(d->fallback_reason, sizeof d->fallback_reason, "%s", reason);
    }
    return rc;
}

/* Settles a reservation held on Redis; when Redis cannot be used, the
 * settle is logged and dropped: the reservation's lease frees its money
 * there, and its cost is in the ledger. */
static void bg_settle_shared(struct budget *b, const struct budget_reservation *res, int64_t actual)
{
    pthread_mutex_lock(&b->mu);
    struct redis *r = b->redis;
    pthread_mutex_unlock(&b->mu);
    char err[512] = "";
    enum redis_status st = REDIS_ST_FAILED;
    if (r != NULL)
        st = budget_redis_settle(r, res, actual, err, sizeof err);
    else
        snprintf(err, sizeof err, "budgets no longer use Redis");
    if (st == REDIS_ST_OK) {
        bg_redis_note(b, r, st, err);
        return;
    }
    if (r != NULL)
        bg_redis_note(b, r, st, err);
    char amount[48];
    bg_format_usd(actual, amount, sizeof amount);
    log_warn("budget: settling reservation %s (%s for %s%s%s) on Redis failed and is dropped: "
             "%s; its lease frees it there within an hour",
             res->rid, amount, res->tenant, res->user[0] != '\0' ? "/" : "", res->user, err);
}

void budget_settle(struct budget *b, struct budget_reservation *res, double actual_usd,
                   int64_t now_ms, struct budget_view *after)
{
    const char *tenant = res->tenant[0] != '\0' ? res->tenant : NULL;
    const char *user = res->user[0] != '\0' ? res->user : NULL;
    if (res->id == 0) {
        if (after != NULL)
            budget_snapshot(b, tenant, user, now_ms, after);
        return;
    }
    int64_t actual = bg_nusd(actual_usd);
    if (res->shared) {
        bg_settle_shared(b, res, actual);
        res->id = 0;
        if (after != NULL)
            budget_snapshot(b, tenant, user, now_ms, after);
        return;
    }
    char keys[BUDGET_SCOPE__COUNT][BG_KEY_MAX];
    snprintf(keys[BUDGET_TENANT], BG_KEY_MAX, "%s", res->tenant);
    snprintf(keys[BUDGET_USER], BG_KEY_MAX, "%s/%s", res->tenant, res->user);
    pthread_mutex_lock(&b->mu);
    now_ms = bg_now(b, now_ms);
    bool shared_view = b->redis != NULL;
    struct bg_entry *ent[BUDGET_SCOPE__COUNT] = {
        bg_find(b, keys[BUDGET_TENANT]),
        res->user[0] != '\0' ? bg_find(b, keys[BUDGET_USER]) : NULL};
    for (int s = 0; s < BUDGET_SCOPE__COUNT; s++) {
        struct bg_entry *e = ent[s];
        /* A held entry cannot have been dropped (reservations pin it). */
        if (!res->held[s] || e == NULL)
            continue;
        e->n_res--;
        /* Once the entry moved on to a later period, the reservation's
         * cost belongs to the period it was made in, which no longer
         * counts. */
        if (e->loaded && e->period_start == res->period_start_ms) {
            e->reserved = bg_add(e->reserved, -res->est_nusd);
            e->spent = bg_add(e->spent, actual);
        }
        bg_place(b, e);
    }
    if (after != NULL && !shared_view)
        bg_view(b, ent[0], ent[1], true, res->user[0] != '\0', now_ms, after);
    pthread_mutex_unlock(&b->mu);
    res->id = 0;
    /* A reservation of the fallback, settled with Redis in use: the view
     * is the shared one (or this one again when Redis is still away). */
    if (after != NULL && shared_view)
        budget_snapshot(b, tenant, user, now_ms, after);
}

void budget_release(struct budget *b, struct budget_reservation *res, int64_t now_ms)
{
    budget_settle(b, res, 0.0, now_ms, NULL);
}

/* The server's view of (tenant, user) into *out; false when Redis could
 * not be used. */
static bool bg_snapshot_shared(struct budget *b, struct redis *r, const char *tenant,
                               const char *user, int64_t now, struct budget_view *out)
{
    struct budget_redis_request q;
    if (!bg_request(b, tenant, user, now, &q))
        return false;
    struct budget_redis_figures f[BUDGET_SCOPE__COUNT];
    char err[512] = "";
    enum redis_status st = budget_redis_snapshot(r, &q, f, err, sizeof err);
    bg_redis_note(b, r, st, err);
    if (st != REDIS_ST_OK)
        return false;
    bg_view_shared(b, &q, f, out);
    return true;
}

void budget_snapshot(struct budget *b, const char *tenant, const char *user, int64_t now_ms,
                     struct budget_view *out)
{
    char tkey[BG_KEY_MAX], ukey[BG_KEY_MAX];
    bool tok = tenant != NULL && bg_make_key(tenant, NULL, tkey);
    bool uok = tok && user != NULL && bg_make_key(tenant, user, ukey);
    pthread_mutex_lock(&b->mu);
    struct redis *r = b->redis;
    int64_t now = now_ms > b->now_max ? now_ms : b->now_max;
    pthread_mutex_unlock(&b->mu);
    /* Only on a live connection: a snapshot is read while the user types,
     * and must never wait for a connection attempt. */
    if (r != NULL && tok && redis_is_up(r) &&
        bg_snapshot_shared(b, r, tenant, uok ? user : NULL, now, out))
        return;
    pthread_mutex_lock(&b->mu);
    bg_view(b, tok ? bg_find(b, tkey) : NULL, uok ? bg_find(b, ukey) : NULL, tok, uok,
            now_ms > b->now_max ? now_ms : b->now_max, out);
    pthread_mutex_unlock(&b->mu);
}

/* ---- overrides ---- */

int budget_set_override(struct budget *b, const char *tenant, const char *user, double usd,
                        char *err, size_t errlen)
{
    char key[BG_KEY_MAX];
    if (!bg_make_key(tenant, user, key)) {
        snprintf(err, errlen, "budget override: invalid %s id (accepted: [A-Za-z0-9_-]{1,64})",
                 tenant == NULL || !ident_valid(tenant) ? "tenant" : "user");
        return -1;
    }
    if (!(usd >= 0.0 && usd <= BUDGET_MAX_USD)) {
        snprintf(err, errlen,
                 "budget override: %g USD out of range: accepted 0 (no budget) to %.0f", usd,
                 BUDGET_MAX_USD);
        return -1;
    }
    pthread_mutex_lock(&b->mu);
    /* A key with an override is pinned and does not count against
     * max_entries, so making one evicts nothing. */
    struct bg_entry *e = bg_find(b, key);
    if (e == NULL)
        e = bg_insert(b, key, user != NULL ? BUDGET_USER : BUDGET_TENANT, NULL);
    e->ovr = bg_nusd(usd);
    bg_place(b, e);
    pthread_mutex_unlock(&b->mu);
    return 0;
}

bool budget_clear_override(struct budget *b, const char *tenant, const char *user)
{
    char key[BG_KEY_MAX];
    if (!bg_make_key(tenant, user, key))
        return false;
    pthread_mutex_lock(&b->mu);
    struct bg_entry *e = bg_find(b, key);
    bool had = e != NULL && e->ovr >= 0;
    if (had) {
        e->ovr = -1;
        bg_place(b, e);
        /* Back under the bound (e, now the most recent, is not at risk). */
        while (b->nlru > b->lim.max_entries)
            xfree(bg_evict_one(b, b->now_max));
    }
    pthread_mutex_unlock(&b->mu);
    return had;
}

bool budget_get_override(struct budget *b, const char *tenant, const char *user, double *usd)
{
    char key[BG_KEY_MAX];
    if (!bg_make_key(tenant, user, key))
        return false;
    pthread_mutex_lock(&b->mu);
    const struct bg_entry *e = bg_find(b, key);
    bool had = e != NULL && e->ovr >= 0;
    if (had)
        *usd = bg_usd(e->ovr);
    pthread_mutex_unlock(&b->mu);
    return had;
}
