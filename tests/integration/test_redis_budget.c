/*
 * Tests of the shared budgets (client/budget with budget_use_redis, issue
 * 12) against a real redis-server: two struct budget objects on one
 * server stand for two processes. A reservation in one counts against the
 * other; refusals name the same budget, amounts and reset time as the
 * in-process budget would; settles are seen by both, once; the loader
 * initialises spent once, the first process winning; overrides in Redis
 * apply to both; a reservation whose lease passed no longer counts, yet
 * its late settle still does; amounts stay exact past 2^53 nano-dollars;
 * a reservation settles into its own period. Faults: Redis down at start
 * or killed mid-run falls back in-process (open) or refuses (closed), logs
 * each change once, and shared budgets work again once Redis is back.
 * Time is explicit (now_ms); nothing sleeps.
 */
#include "redis_harness.h"

#include "client/budget.h"
#include "client/budget_redis.h"
#include "net/redis.h"
#include "util/log.h"

#include <math.h>

#define PREFIX "t:"

struct fx {
    struct redis_server *srv;
    struct redis *r1, *r2;
};

/* What a loader reports, how often it was asked, and what it does first
 * (another process initialising the budget meanwhile). */
struct loader {
    double usd;
    int calls;
    struct budget *race; /* reserves $0 of acme on it before answering */
    int64_t race_now;
};

static int64_t utc(int y, int mo, int d, int h)
{
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    return (int64_t)timegm(&tm) * 1000;
}

#define NOW utc(2025, 3, 10, 12)

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->srv = redis_start();
    f->r1 = redis_client(f->srv, 0);
    f->r2 = redis_client(f->srv, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    redis_free(f->r1);
    redis_free(f->r2);
    redis_stop(f->srv);
    free(f);
    return 0;
}

static struct budget *new_budget(double tenant_usd, double user_usd)
{
    struct budget_limits lim;
    budget_limits_init(&lim);
    lim.usd[BUDGET_TENANT] = tenant_usd;
    lim.usd[BUDGET_USER] = user_usd;
    char err[256] = "";
    struct budget *b = budget_new(&lim, err, sizeof err);
    if (b == NULL)
        fail_msg("budget_new: %s", err);
    return b;
}

static struct budget *shared_budget(struct redis *r, double tenant_usd, double user_usd,
                                    bool closed)
{
    struct budget *b = new_budget(tenant_usd, user_usd);
    budget_use_redis(b, r, closed);
    return b;
}

static int count_load(void *ud, const char *tenant, const char *user, int64_t start_ms,
                      int64_t end_ms, double *usd, char *err, size_t errlen)
{
    (void)tenant, (void)user, (void)start_ms, (void)end_ms, (void)err, (void)errlen;
    struct loader *l = ud;
    l->calls++;
    if (l->race != NULL) {
        struct budget_reservation res;
        struct budget_decision d;
        assert_int_equal(budget_reserve(l->race, "acme", NULL, "m", 0.0, l->race_now, &res, &d),
                         BUDGET_OK);
        budget_release(l->race, &res, l->race_now);
    }
    *usd = l->usd;
    return 0;
}

/* Sends a command of up to 4 words; fails the test unless it succeeds. */
static void cmd(struct redis *r, const char *a0, const char *a1, const char *a2, const char *a3)
{
    const char *argv[4] = {a0, a1, a2, a3};
    int argc = a3 != NULL ? 4 : a2 != NULL ? 3 : 2;
    struct redis_args args = {argc, argv, NULL};
    redisReply *rep = NULL;
    char err[256] = "";
    if (redis_command(r, &args, &rep, err, sizeof err) != REDIS_ST_OK)
        fail_msg("%s %s: %s", a0, a1, err);
    freeReplyObject(rep);
}

/* HGET key field into out ("" when absent). */
static void hget(struct redis *r, const char *key, const char *field, char *out, size_t n)
{
    const char *argv[3] = {"HGET", key, field};
    struct redis_args args = {3, argv, NULL};
    redisReply *rep = NULL;
    char err[256] = "";
    if (redis_command(r, &args, &rep, err, sizeof err) != REDIS_ST_OK)
        fail_msg("HGET %s: %s", key, err);
    snprintf(out, n, "%s", rep->type == REDIS_REPLY_STRING ? rep->str : "");
    freeReplyObject(rep);
}

static void tenant_key(int64_t now, char *out, size_t n)
{
    int64_t start, end;
    assert_int_equal(budget_period_bounds(BUDGET_MONTH, now, &start, &end), 0);
    snprintf(out, n, PREFIX "budget:t:acme:%lld", (long long)start);
}

static void assert_usd(double got, double want)
{
    if (fabs(got - want) > 1e-11)
        fail_msg("got %.12f USD, want %.12f", got, want);
}

static enum budget_result reserve(struct budget *b, const char *user, double usd, int64_t now,
                                  struct budget_reservation *res, struct budget_decision *d)
{
    return budget_reserve(b, "acme", user, "gpt-test", usd, now, res, d);
}

/* The refusal message the in-process budget gives after reserving first
 * then asking for second, with the given overrides (< 0: none). */
static void local_refusal(double tenant_usd, double user_usd, double tenant_ovr, double user_ovr,
                          const char *user, double first, double second, char *out, size_t n)
{
    struct budget *b = new_budget(tenant_usd, user_usd);
    char err[256];
    if (tenant_ovr >= 0)
        assert_int_equal(budget_set_override(b, "acme", NULL, tenant_ovr, err, sizeof err), 0);
    if (user_ovr >= 0)
        assert_int_equal(budget_set_override(b, "acme", user, user_ovr, err, sizeof err), 0);
    struct budget_reservation r1, r2;
    struct budget_decision d;
    if (first > 0)
        assert_int_equal(reserve(b, user, first, NOW, &r1, &d), BUDGET_OK);
    enum budget_result rc = reserve(b, user, second, NOW, &r2, &d);
    assert_true(rc == BUDGET_REFUSED || rc == BUDGET_NO_PRICE);
    snprintf(out, n, "%s", d.message);
    budget_free(b);
}

static void reservation_in_one_counts_against_the_other(void **state)
{
    struct fx *f = *state;
    struct budget *b1 = shared_budget(f->r1, 10, 0, false);
    struct budget *b2 = shared_budget(f->r2, 10, 0, false);
    struct budget_reservation r1, r2;
    struct budget_decision d;
    assert_int_equal(reserve(b1, NULL, 6, NOW, &r1, &d), BUDGET_OK);
    assert_true(r1.shared);
    assert_int_equal(strlen(r1.rid), BUDGET_RID_LEN);
    assert_false(d.fell_back);
    assert_usd(d.reserved_usd, 6);
    assert_usd(d.view.s[BUDGET_TENANT].remaining_usd, 4);

    assert_int_equal(reserve(b2, NULL, 6, NOW, &r2, &d), BUDGET_REFUSED);
    assert_int_equal(d.scope, BUDGET_TENANT);
    assert_int_equal(r2.id, 0);
    char want[640];
    local_refusal(10, 0, -1, -1, NULL, 6, 6, want, sizeof want);
    assert_string_equal(d.message, want);
    const struct budget_scope_view *v = &d.view.s[BUDGET_TENANT];
    assert_true(v->limited && v->known && !v->overridden);
    assert_usd(v->spent_usd, 0);
    assert_usd(v->reserved_usd, 6);
    assert_usd(v->limit_usd, 10);
    assert_false(d.view.s[BUDGET_USER].limited);
    assert_int_equal(d.view.resets_at_ms, utc(2025, 4, 1, 0));

    budget_release(b1, &r1, NOW);
    assert_int_equal(reserve(b2, NULL, 6, NOW, &r2, &d), BUDGET_OK);
    budget_release(b2, &r2, NOW);
    budget_free(b1);
    budget_free(b2);
}

static void settle_adds_spent_seen_by_both_once(void **state)
{
    struct fx *f = *state;
    struct budget *b1 = shared_budget(f->r1, 10, 0, false);
    struct budget *b2 = shared_budget(f->r2, 10, 0, false);
    struct budget_reservation res, copy;
    struct budget_decision d;
    assert_int_equal(reserve(b1, NULL, 6, NOW, &res, &d), BUDGET_OK);
    copy = res;
    struct budget_view after;
    budget_settle(b1, &res, 2.5, NOW, &after);
    assert_int_equal(res.id, 0);
    assert_usd(after.s[BUDGET_TENANT].spent_usd, 2.5);
    assert_usd(after.s[BUDGET_TENANT].reserved_usd, 0);

    /* The same settle again (a resent command): counted once. */
    budget_settle(b1, &copy, 2.5, NOW, NULL);
    budget_settle(b1, &res, 2.5, NOW, NULL); /* id 0: a no-op */

    /* b2's process has talked to Redis before (a snapshot never dials). */
    char version[32], err[256];
    double rtt = 0;
    assert_int_equal(redis_ping(f->r2, version, sizeof version, &rtt, err, sizeof err),
                     REDIS_ST_OK);
    struct budget_view v;
    budget_snapshot(b2, "acme", NULL, NOW, &v);
    assert_true(v.s[BUDGET_TENANT].known);
    assert_usd(v.s[BUDGET_TENANT].spent_usd, 2.5);
    assert_usd(v.s[BUDGET_TENANT].reserved_usd, 0);
    assert_usd(v.s[BUDGET_TENANT].remaining_usd, 7.5);
    char key[128], spent[64];
    tenant_key(NOW, key, sizeof key);
    hget(f->r1, key, "spent", spent, sizeof spent);
    assert_string_equal(spent, "2500000000");
    budget_free(b1);
    budget_free(b2);
}

static void loader_initialises_spent_once(void **state)
{
    struct fx *f = *state;
    struct budget *b1 = shared_budget(f->r1, 10, 0, false);
    struct budget *b2 = shared_budget(f->r2, 10, 0, false);
    struct loader l1 = {3.0, 0, NULL, 0}, l2 = {100.0, 0, NULL, 0};
    budget_set_loader(b1, count_load, &l1);
    budget_set_loader(b2, count_load, &l2);
    struct budget_reservation r1, r2;
    struct budget_decision d;
    assert_int_equal(reserve(b1, NULL, 1, NOW, &r1, &d), BUDGET_OK);
    assert_int_equal(l1.calls, 1);
    assert_usd(d.view.s[BUDGET_TENANT].spent_usd, 3);
    assert_int_equal(reserve(b2, NULL, 1, NOW, &r2, &d), BUDGET_OK);
    assert_int_equal(l2.calls, 0);
    assert_usd(d.view.s[BUDGET_TENANT].spent_usd, 3);
    assert_usd(d.view.s[BUDGET_TENANT].reserved_usd, 2);
    assert_int_equal(reserve(b1, NULL, 1, NOW, &r1, &d), BUDGET_OK);
    assert_int_equal(l1.calls, 1);
    budget_free(b1);
    budget_free(b2);
}

/* b2 is told to load, but b1 initialises the budget while b2's loader
 * runs: the first figure stays. */
static void first_initialisation_wins(void **state)
{
    struct fx *f = *state;
    struct budget *b1 = shared_budget(f->r1, 10, 0, false);
    struct budget *b2 = shared_budget(f->r2, 10, 0, false);
    struct loader l1 = {3.0, 0, NULL, 0}, l2 = {100.0, 0, b1, NOW};
    budget_set_loader(b1, count_load, &l1);
    budget_set_loader(b2, count_load, &l2);
    struct budget_reservation res;
    struct budget_decision d;
    assert_int_equal(reserve(b2, NULL, 1, NOW, &res, &d), BUDGET_OK);
    assert_int_equal(l2.calls, 1);
    assert_int_equal(l1.calls, 1);
    assert_usd(d.view.s[BUDGET_TENANT].spent_usd, 3);
    budget_free(b1);
    budget_free(b2);
}

static void overrides_in_redis_apply_to_both(void **state)
{
    struct fx *f = *state;
    struct budget *b1 = shared_budget(f->r1, 10, 0, false);
    struct budget *b2 = shared_budget(f->r2, 10, 0, false);
    struct budget_reservation res;
    struct budget_decision d;
    char want[640];
    cmd(f->r1, "HSET", PREFIX "ovr:t:acme", "budget_usd", "1");
    local_refusal(10, 0, 1, -1, NULL, 0, 2, want, sizeof want);
    assert_int_equal(reserve(b1, NULL, 2, NOW, &res, &d), BUDGET_REFUSED);
    assert_string_equal(d.message, want);
    assert_non_null(strstr(d.message, "$1.00 set with `memchat limits set`"));
    assert_true(d.view.s[BUDGET_TENANT].overridden);
    assert_usd(d.view.s[BUDGET_TENANT].limit_usd, 1);
    assert_int_equal(reserve(b2, NULL, 2, NOW, &res, &d), BUDGET_REFUSED);
    assert_string_equal(d.message, want);

    /* "0": no budget for acme at all. */
    cmd(f->r1, "HSET", PREFIX "ovr:t:acme", "budget_usd", "0");
    assert_int_equal(reserve(b2, NULL, 2, NOW, &res, &d), BUDGET_OK);
    assert_false(res.shared);
    assert_false(d.view.s[BUDGET_TENANT].limited);
    assert_true(d.view.s[BUDGET_TENANT].overridden);
    budget_release(b2, &res, NOW);

    /* A user override where no user budget is configured. */
    cmd(f->r2, "HSET", PREFIX "ovr:u:acme/bob", "budget_usd", "0.5");
    local_refusal(10, 0, 0, 0.5, "bob", 0, 1, want, sizeof want);
    assert_int_equal(reserve(b1, "bob", 1, NOW, &res, &d), BUDGET_REFUSED);
    assert_int_equal(d.scope, BUDGET_USER);
    assert_string_equal(d.message, want);
    assert_int_equal(reserve(b1, "carol", 1, NOW, &res, &d), BUDGET_OK);
    budget_release(b1, &res, NOW);

    /* A value that is not a number is ignored: the configured 10 USD. */
    cmd(f->r1, "HSET", PREFIX "ovr:t:acme", "budget_usd", "lots");
    assert_int_equal(reserve(b1, NULL, 11, NOW, &res, &d), BUDGET_REFUSED);
    assert_false(d.view.s[BUDGET_TENANT].overridden);
    budget_free(b1);
    budget_free(b2);
}

static void user_and_tenant_all_or_nothing(void **state)
{
    struct fx *f = *state;
    struct budget *b1 = shared_budget(f->r1, 10, 2, false);
    struct budget *b2 = shared_budget(f->r2, 10, 2, false);
    struct budget_reservation r1, r2, r3;
    struct budget_decision d;
    assert_int_equal(reserve(b1, "bob", 1.5, NOW, &r1, &d), BUDGET_OK);
    assert_true(r1.held[BUDGET_TENANT] && r1.held[BUDGET_USER]);
    char want[640];
    local_refusal(10, 2, -1, -1, "bob", 1.5, 1, want, sizeof want);
    assert_int_equal(reserve(b2, "bob", 1, NOW, &r2, &d), BUDGET_REFUSED);
    assert_int_equal(d.scope, BUDGET_USER);
    assert_string_equal(d.message, want);
    assert_usd(d.view.s[BUDGET_USER].reserved_usd, 1.5);
    assert_int_equal(reserve(b2, "carol", 1, NOW, &r3, &d), BUDGET_OK);
    /* The refused turn held nothing on the tenant: 2.5 USD reserved. */
    struct budget_view v;
    budget_snapshot(b1, "acme", NULL, NOW, &v);
    assert_usd(v.s[BUDGET_TENANT].reserved_usd, 2.5);
    assert_int_equal(reserve(b2, NULL, 8, NOW, &r2, &d), BUDGET_REFUSED);
    assert_int_equal(d.scope, BUDGET_TENANT);
    assert_int_equal(reserve(b2, NULL, 7.5, NOW, &r2, &d), BUDGET_OK);
    budget_settle(b1, &r1, 1, NOW, NULL);
    budget_snapshot(b2, "acme", "bob", NOW, &v);
    assert_usd(v.s[BUDGET_USER].spent_usd, 1);
    assert_usd(v.s[BUDGET_TENANT].spent_usd, 1);
    assert_usd(v.s[BUDGET_TENANT].reserved_usd, 8.5);
    budget_free(b1);
    budget_free(b2);
}

static void no_price_names_the_budget(void **state)
{
    struct fx *f = *state;
    struct budget *b1 = shared_budget(f->r1, 10, 2, false);
    struct budget_reservation res;
    struct budget_decision d;
    char want[640];
    local_refusal(10, 2, -1, -1, "bob", 0, NAN, want, sizeof want);
    assert_int_equal(reserve(b1, "bob", NAN, NOW, &res, &d), BUDGET_NO_PRICE);
    assert_int_equal(d.scope, BUDGET_USER);
    assert_string_equal(d.message, want);
    budget_free(b1);
}

static void lapsed_reservation_no_longer_counts(void **state)
{
    struct fx *f = *state;
    struct budget *b1 = shared_budget(f->r1, 10, 0, false);
    struct budget *b2 = shared_budget(f->r2, 10, 0, false);
    struct budget_reservation held, res;
    struct budget_decision d;
    assert_int_equal(reserve(b1, NULL, 6, NOW, &held, &d), BUDGET_OK);
    /* b1's process "dies" holding 6 USD. */
    int64_t lapse = NOW + BUDGET_REDIS_LEASE_MS;
    assert_int_equal(reserve(b2, NULL, 6, lapse - 1, &res, &d), BUDGET_REFUSED);
    assert_int_equal(reserve(b2, NULL, 6, lapse, &res, &d), BUDGET_OK);
    assert_usd(d.view.s[BUDGET_TENANT].reserved_usd, 6);
    /* A settle that comes after the lease still counts its cost. */
    budget_settle(b1, &held, 2, lapse + 1, NULL);
    struct budget_view v;
    budget_snapshot(b2, "acme", NULL, lapse + 1, &v);
    assert_usd(v.s[BUDGET_TENANT].spent_usd, 2);
    assert_usd(v.s[BUDGET_TENANT].reserved_usd, 6);
    budget_free(b1);
    budget_free(b2);
}

/* 1e9 USD is 1e18 nano-dollars, far past 2^53: every step stays exact. */
static void amounts_stay_exact_past_2_53(void **state)
{
    struct fx *f = *state;
    struct budget *b1 = shared_budget(f->r1, 1e9, 0, false);
    struct budget *b2 = shared_budget(f->r2, 1e9, 0, false);
    struct loader l = {999999999.5, 0, NULL, 0};
    budget_set_loader(b1, count_load, &l);
    struct budget_reservation r1, r2;
    struct budget_decision d;
    assert_int_equal(reserve(b1, NULL, 0.5, NOW, &r1, &d), BUDGET_OK);
    assert_int_equal(reserve(b2, NULL, 1e-9, NOW, &r2, &d), BUDGET_REFUSED);
    budget_settle(b1, &r1, 0.499999999, NOW, NULL);
    char key[128], spent[64];
    tenant_key(NOW, key, sizeof key);
    hget(f->r1, key, "spent", spent, sizeof spent);
    assert_string_equal(spent, "999999999999999999");
    assert_int_equal(reserve(b2, NULL, 1e-9, NOW, &r2, &d), BUDGET_OK);
    assert_int_equal(reserve(b1, NULL, 1e-9, NOW, &r1, &d), BUDGET_REFUSED);
    budget_settle(b2, &r2, 1e-9, NOW, NULL);
    hget(f->r1, key, "spent", spent, sizeof spent);
    assert_string_equal(spent, "1000000000000000000");
    budget_free(b1);
    budget_free(b2);
}

static void reservation_settles_into_its_period(void **state)
{
    struct fx *f = *state;
    struct budget *b1 = shared_budget(f->r1, 10, 0, false);
    struct budget_reservation res;
    struct budget_decision d;
    int64_t march = utc(2025, 3, 31, 23), april = utc(2025, 4, 1, 1);
    assert_int_equal(reserve(b1, NULL, 6, march, &res, &d), BUDGET_OK);
    struct budget_view v;
    budget_settle(b1, &res, 4, april, &v);
    assert_int_equal(v.period_start_ms, utc(2025, 4, 1, 0));
    assert_usd(v.s[BUDGET_TENANT].spent_usd, 0);
    assert_usd(v.s[BUDGET_TENANT].reserved_usd, 0);
    char key[128], spent[64];
    tenant_key(march, key, sizeof key);
    hget(f->r1, key, "spent", spent, sizeof spent);
    assert_string_equal(spent, "4000000000");
    budget_free(b1);
}

/* How many lines of the log at path hold needle. */
static int log_count(const char *path, const char *needle)
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof line, fp) != NULL)
        n += strstr(line, needle) != NULL;
    fclose(fp);
    return n;
}

static void redis_killed_mid_run(void **state)
{
    struct fx *f = *state;
    char *dir = tu_mkdtemp();
    char logpath[4200], err[256];
    snprintf(logpath, sizeof logpath, "%s/memchat.log", dir);
    assert_int_equal(log_open(logpath, LOG_DEBUG, err, sizeof err), 0);
    struct budget *open = shared_budget(f->r1, 10, 0, false);
    struct budget *closed = shared_budget(f->r2, 10, 0, true);
    struct loader l = {1.0, 0, NULL, 0};
    budget_set_loader(open, count_load, &l);
    struct budget_reservation before, res, res2;
    struct budget_decision d;
    assert_int_equal(reserve(open, NULL, 2, NOW, &before, &d), BUDGET_OK);
    assert_true(before.shared);
    assert_int_equal(l.calls, 1);

    redis_kill(f->srv);
    char where[64];
    snprintf(where, sizeof where, "127.0.0.1:%d", f->srv->port);
    assert_int_equal(reserve(open, NULL, 3, NOW, &res, &d), BUDGET_OK);
    assert_true(d.fell_back);
    assert_false(res.shared);
    assert_non_null(strstr(d.fallback_reason, where));
    assert_int_equal(l.calls, 2); /* the fallback asks the ledger */
    assert_usd(d.view.s[BUDGET_TENANT].spent_usd, 1);
    assert_usd(d.view.s[BUDGET_TENANT].reserved_usd, 3);

    assert_int_equal(reserve(closed, NULL, 3, NOW, &res2, &d), BUDGET_UNAVAILABLE);
    assert_int_equal(res2.id, 0);
    assert_false(d.fell_back);
    assert_non_null(strstr(d.message, "budgets are shared on Redis at "));
    assert_non_null(strstr(d.message, where));
    assert_non_null(strstr(d.message, "REDIS_FAILURE=closed refuses turns until it is back"));

    /* A shared reservation settled while Redis is away is dropped. */
    budget_settle(open, &before, 2, NOW, NULL);
    assert_int_equal(before.id, 0);
    struct budget_view v;
    budget_snapshot(open, "acme", NULL, NOW, &v);
    assert_usd(v.s[BUDGET_TENANT].reserved_usd, 3);

    f->srv = redis_restart(f->srv);
    assert_int_equal(reserve(open, NULL, 1, NOW, &res2, &d), BUDGET_OK);
    assert_false(d.fell_back);
    assert_true(res2.shared);
    assert_int_equal(l.calls, 3); /* the new server knew nothing: loaded again */
    budget_release(open, &res2, NOW);
    assert_int_equal(reserve(closed, NULL, 1, NOW, &res2, &d), BUDGET_OK);
    assert_true(res2.shared);
    budget_settle(closed, &res2, 1, NOW, NULL);
    budget_settle(open, &res, 3, NOW, &v); /* the fallback's own, settled here */
    assert_usd(v.s[BUDGET_TENANT].spent_usd, 2);

    log_close();
    assert_int_equal(log_count(logpath, "cannot be used ("), 2);
    assert_int_equal(log_count(logpath, "answers again"), 2);
    assert_int_equal(log_count(logpath, "is dropped"), 1);
    budget_free(open);
    budget_free(closed);
    tu_rmtree(dir);
    free(dir);
}

static void redis_down_at_start(void **state)
{
    (void)state;
    int port = redis_free_port();
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", port);
    struct redis *r1 = redis_client_url(url, 0), *r2 = redis_client_url(url, 0);
    struct budget *open = shared_budget(r1, 10, 0, false);
    struct budget *closed = shared_budget(r2, 10, 0, true);
    struct budget_reservation res;
    struct budget_decision d;
    assert_int_equal(reserve(open, NULL, 3, NOW, &res, &d), BUDGET_OK);
    assert_true(d.fell_back);
    budget_settle(open, &res, 3, NOW, NULL);
    assert_int_equal(reserve(closed, NULL, 3, NOW, &res, &d), BUDGET_UNAVAILABLE);

    struct redis_server *srv = redis_start_on(port);
    assert_int_equal(reserve(closed, NULL, 3, NOW, &res, &d), BUDGET_OK);
    assert_true(res.shared);
    budget_settle(closed, &res, 3, NOW, NULL);
    assert_int_equal(reserve(open, NULL, 3, NOW, &res, &d), BUDGET_OK);
    assert_false(d.fell_back);
    assert_usd(d.view.s[BUDGET_TENANT].spent_usd, 3);
    assert_usd(d.view.s[BUDGET_TENANT].reserved_usd, 3);
    budget_release(open, &res, NOW);
    budget_free(open);
    budget_free(closed);
    redis_free(r1);
    redis_free(r2);
    redis_stop(srv);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(reservation_in_one_counts_against_the_other),
        T(settle_adds_spent_seen_by_both_once),
        T(loader_initialises_spent_once),
        T(first_initialisation_wins),
        T(overrides_in_redis_apply_to_both),
        T(user_and_tenant_all_or_nothing),
        T(no_price_names_the_budget),
        T(lapsed_reservation_no_longer_counts),
        T(amounts_stay_exact_past_2_53),
        T(reservation_settles_into_its_period),
        T(redis_killed_mid_run),
        cmocka_unit_test(redis_down_at_start),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
