/*
 * Tests of client/ratelimit: the bucket arithmetic (capacity, refill over
 * simulated time, partial refill, never past capacity), the exact wait for
 * each binding scope and kind, all-or-nothing takes, the refusal of a need
 * larger than a bucket, unlimited scopes, overrides per tenant and per user
 * and clearing them, reconciliation both ways with debt, refunds, the
 * snapshot, the bound on the key table with its preference for idle keys,
 * the waiting protocol with a fake clock and sleep (cancel included), and
 * concurrency: threads never take more than the capacity plus the refill.
 * Every expected figure is worked out from the rule "capacity per window,
 * refilled at capacity / window per ms"; the clock is a plain number, so
 * nothing sleeps.
 */
#include "testutil.h"

#include "client/ratelimit.h"

#include <pthread.h>
#include <stdatomic.h>

#include "config/config.h"

#define MIN 60000LL /* the default window, in ms */

/* A limiter over lim, failing the test when it is refused. */
static struct ratelimit *new_rl(const struct ratelimit_limits *lim)
{
    char err[256] = "";
    struct ratelimit *rl = ratelimit_new(lim, err, sizeof err);
    if (rl == NULL)
        fail_msg("ratelimit_new: %s", err);
    return rl;
}

/* A limiter with one value set: scope s, kind k, v per minute. */
static struct ratelimit *new_rl1(enum ratelimit_scope s, enum ratelimit_kind k, long long v)
{
    struct ratelimit_limits lim;
    ratelimit_limits_init(&lim);
    lim.value[s][k] = v;
    return new_rl(&lim);
}

static enum ratelimit_result acq(struct ratelimit *rl, const char *t, const char *u, long long n,
                                 int64_t now, struct ratelimit_decision *d)
{
    return ratelimit_acquire(rl, t, u, n, now, d);
}

static long long level(struct ratelimit *rl, const char *t, const char *u, int64_t now,
                       enum ratelimit_scope s, enum ratelimit_kind k)
{
    struct ratelimit_view v;
    ratelimit_snapshot(rl, t, u, now, &v);
    return v.b[s][k].level;
}

/* A fresh bucket holds exactly its capacity: RATE_LIMIT_RPM=5 admits five
 * requests at one instant and not a sixth, which must wait one refill
 * period of 60000 / 5 = 12000 ms. */
static void a_new_bucket_holds_exactly_its_capacity(void **state)
{
    (void)state;
    struct ratelimit *rl = new_rl1(RATELIMIT_GLOBAL, RATELIMIT_REQUESTS, 5);
    struct ratelimit_decision d;
    for (int i = 0; i < 5; i++)
        assert_int_equal(acq(rl, "t", "u", 0, 1000, &d), RATELIMIT_OK);
    assert_int_equal(acq(rl, "t", "u", 0, 1000, &d), RATELIMIT_WAIT);
    assert_int_equal(d.wait_ms, 12000);
    assert_int_equal(d.scope, RATELIMIT_GLOBAL);
    assert_int_equal(d.kind, RATELIMIT_REQUESTS);
    assert_int_equal(d.limit, 5);
    assert_non_null(strstr(d.reason, "RATE_LIMIT_RPM=5"));
    ratelimit_free(rl);
}

/* Refill is continuous and exact: with RPM=6 one request comes back every
 * 10000 ms, so at 9999 ms there is still none (1 ms to go) and at 10000 ms
 * there is one. A TPM=1000 bucket emptied at 0 holds 500 at 30000 ms and
 * still 500 whole tokens at 30001 ms (500.0166...), and after any amount
 * of time no more than its 1000. */
static void buckets_refill_continuously_and_never_pass_capacity(void **state)
{
    (void)state;
    struct ratelimit *rl = new_rl1(RATELIMIT_USER, RATELIMIT_REQUESTS, 6);
    struct ratelimit_decision d;
    for (int i = 0; i < 6; i++)
        assert_int_equal(acq(rl, "t", "u", 0, 0, &d), RATELIMIT_OK);
    assert_int_equal(acq(rl, "t", "u", 0, 9999, &d), RATELIMIT_WAIT);
    assert_int_equal(d.wait_ms, 1);
    assert_int_equal(acq(rl, "t", "u", 0, 10000, &d), RATELIMIT_OK);
    assert_int_equal(acq(rl, "t", "u", 0, 10000, &d), RATELIMIT_WAIT);
    assert_int_equal(d.wait_ms, 10000);
    ratelimit_free(rl);

    rl = new_rl1(RATELIMIT_TENANT, RATELIMIT_TOKENS, 1000);
    assert_int_equal(acq(rl, "t", NULL, 1000, 0, &d), RATELIMIT_OK);
    assert_int_equal(level(rl, "t", NULL, 0, RATELIMIT_TENANT, RATELIMIT_TOKENS), 0);
    assert_int_equal(level(rl, "t", NULL, 30000, RATELIMIT_TENANT, RATELIMIT_TOKENS), 500);
    assert_int_equal(level(rl, "t", NULL, 30001, RATELIMIT_TENANT, RATELIMIT_TOKENS), 500);
    assert_int_equal(level(rl, "t", NULL, 59999, RATELIMIT_TENANT, RATELIMIT_TOKENS), 999);
    assert_int_equal(level(rl, "t", NULL, 60000, RATELIMIT_TENANT, RATELIMIT_TOKENS), 1000);
    assert_int_equal(level(rl, "t", NULL, 1000000000LL, RATELIMIT_TENANT, RATELIMIT_TOKENS), 1000);
    /* A refill in many small steps (each acquire brings the bucket up to
     * date) lands exactly where one step does: 300 + 21000 / 60 = 650. */
    assert_int_equal(acq(rl, "t", NULL, 700, 2000000000LL, &d), RATELIMIT_OK);
    for (int64_t t = 2000000000LL; t <= 2000000000LL + 21000; t += 7)
        assert_int_equal(acq(rl, "t", NULL, 0, t, &d), RATELIMIT_OK);
    assert_int_equal(level(rl, "t", NULL, 2000000000LL + 21000, RATELIMIT_TENANT, RATELIMIT_TOKENS),
                     650);
    ratelimit_free(rl);
}

/* The wait is exact for every scope and kind: with only that bucket
 * limited to 4 per minute (requests) or 400 (tokens, 100 per turn), four
 * turns empty it and the fifth waits 60000 / 4 = 15000 ms, named by scope
 * and kind; one ms early it still waits 1 ms, on time it passes. */
static void the_wait_is_exact_for_each_binding_scope_and_kind(void **state)
{
    (void)state;
    for (int s = 0; s < RATELIMIT_SCOPE__COUNT; s++)
        for (int k = 0; k < RATELIMIT_KIND__COUNT; k++) {
            struct ratelimit *rl = new_rl1((enum ratelimit_scope)s, (enum ratelimit_kind)k,
                                           k == RATELIMIT_REQUESTS ? 4 : 400);
            struct ratelimit_decision d;
            for (int i = 0; i < 4; i++)
                assert_int_equal(acq(rl, "acme", "bob", 100, 500, &d), RATELIMIT_OK);
            assert_int_equal(acq(rl, "acme", "bob", 100, 500, &d), RATELIMIT_WAIT);
            assert_int_equal(d.wait_ms, 15000);
            assert_int_equal(d.scope, s);
            assert_int_equal(d.kind, k);
            assert_int_equal(acq(rl, "acme", "bob", 100, 500 + 14999, &d), RATELIMIT_WAIT);
            assert_int_equal(d.wait_ms, 1);
            assert_int_equal(acq(rl, "acme", "bob", 100, 500 + 15000, &d), RATELIMIT_OK);
            ratelimit_free(rl);
        }
}

/* With several limits, the wait is the longest of the buckets' waits and
 * names that bucket. User RPM=2, tenant TPM=600, global RPM=10: after two
 * turns of 100 tokens the user needs 30000 ms for a request while the
 * tenant needs ceil((500 - 400) * 60000 / 600) = 10000 ms for 500 tokens:
 * the user binds. Another user of the tenant is bound by the tenant alone. */
static void the_longest_wait_binds(void **state)
{
    (void)state;
    struct ratelimit_limits lim;
    ratelimit_limits_init(&lim);
    lim.value[RATELIMIT_USER][RATELIMIT_REQUESTS] = 2;
    lim.value[RATELIMIT_TENANT][RATELIMIT_TOKENS] = 600;
    lim.value[RATELIMIT_GLOBAL][RATELIMIT_REQUESTS] = 10;
    struct ratelimit *rl = new_rl(&lim);
    struct ratelimit_decision d;
    assert_int_equal(acq(rl, "acme", "bob", 100, 0, &d), RATELIMIT_OK);
    assert_int_equal(acq(rl, "acme", "bob", 100, 0, &d), RATELIMIT_OK);
    assert_int_equal(acq(rl, "acme", "bob", 500, 0, &d), RATELIMIT_WAIT);
    assert_int_equal(d.scope, RATELIMIT_USER);
    assert_int_equal(d.kind, RATELIMIT_REQUESTS);
    assert_int_equal(d.wait_ms, 30000);
    assert_int_equal(acq(rl, "acme", "eve", 500, 0, &d), RATELIMIT_WAIT);
    assert_int_equal(d.scope, RATELIMIT_TENANT);
    assert_int_equal(d.kind, RATELIMIT_TOKENS);
    assert_int_equal(d.wait_ms, 10000);
    assert_non_null(strstr(d.reason, "TENANT_RATE_LIMIT_TPM=600"));
    assert_non_null(strstr(d.reason, "tenant acme"));
    ratelimit_free(rl);

    /* On a tie the narrowest scope is named: user and global both at 1
     * request per minute both need 60000 ms; the user is told. */
    ratelimit_limits_init(&lim);
    lim.value[RATELIMIT_USER][RATELIMIT_REQUESTS] = 1;
    lim.value[RATELIMIT_GLOBAL][RATELIMIT_REQUESTS] = 1;
    lim.value[RATELIMIT_GLOBAL][RATELIMIT_TOKENS] = 100;
    rl = new_rl(&lim);
    assert_int_equal(acq(rl, "acme", "bob", 100, 0, &d), RATELIMIT_OK);
    assert_int_equal(acq(rl, "acme", "bob", 100, 0, &d), RATELIMIT_WAIT);
    assert_int_equal(d.wait_ms, 60000);
    assert_int_equal(d.scope, RATELIMIT_USER);
    ratelimit_free(rl);
}

/* Waits round up to the next whole ms, never down: with RPM=7 a request
 * comes back every 8571.43 ms, so the wait is 8572; at 8571 ms there is
 * still 1 ms to go, at 8572 the turn passes. */
static void waits_round_up_to_whole_milliseconds(void **state)
{
    (void)state;
    struct ratelimit *rl = new_rl1(RATELIMIT_TENANT, RATELIMIT_REQUESTS, 7);
    struct ratelimit_decision d;
    for (int i = 0; i < 7; i++)
        assert_int_equal(acq(rl, "acme", "bob", 0, 0, &d), RATELIMIT_OK);
    assert_int_equal(acq(rl, "acme", "bob", 0, 0, &d), RATELIMIT_WAIT);
    assert_int_equal(d.wait_ms, 8572);
    assert_int_equal(acq(rl, "acme", "bob", 0, 8571, &d), RATELIMIT_WAIT);
    assert_int_equal(d.wait_ms, 1);
    assert_int_equal(acq(rl, "acme", "bob", 0, 8572, &d), RATELIMIT_OK);
    ratelimit_free(rl);
}

/* A clock behind a bucket's last refill (a thread that read the clock
 * before another took the lock) refills nothing and takes nothing extra:
 * RPM=10, one taken at 6000 ms leaves 9; one more at 0 ms leaves 8. */
static void a_clock_behind_the_last_refill_changes_nothing(void **state)
{
    (void)state;
    struct ratelimit *rl = new_rl1(RATELIMIT_GLOBAL, RATELIMIT_REQUESTS, 10);
    struct ratelimit_decision d;
    assert_int_equal(acq(rl, "acme", "bob", 0, 6000, &d), RATELIMIT_OK);
    assert_int_equal(acq(rl, "acme", "bob", 0, 0, &d), RATELIMIT_OK);
    assert_int_equal(level(rl, "acme", "bob", 6000, RATELIMIT_GLOBAL, RATELIMIT_REQUESTS), 8);
    assert_int_equal(level(rl, "acme", "bob", 0, RATELIMIT_GLOBAL, RATELIMIT_REQUESTS), 8);
    ratelimit_free(rl);
}

/* All or nothing: when the user's bucket has no room, the global and
 * tenant buckets keep what they had (99 of 100 after the one turn that
 * passed, not 98), however often the refused turn is tried. */
static void a_refused_turn_takes_from_no_bucket(void **state)
{
    (void)state;
    struct ratelimit_limits lim;
    ratelimit_limits_init(&lim);
    lim.value[RATELIMIT_GLOBAL][RATELIMIT_REQUESTS] = 100;
    lim.value[RATELIMIT_TENANT][RATELIMIT_REQUESTS] = 100;
    lim.value[RATELIMIT_TENANT][RATELIMIT_TOKENS] = 5000;
    lim.value[RATELIMIT_USER][RATELIMIT_REQUESTS] = 1;
    struct ratelimit *rl = new_rl(&lim);
    struct ratelimit_decision d;
    assert_int_equal(acq(rl, "acme", "bob", 1000, 0, &d), RATELIMIT_OK);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(acq(rl, "acme", "bob", 1000, 0, &d), RATELIMIT_WAIT);
        assert_int_equal(d.scope, RATELIMIT_USER);
    }
    struct ratelimit_view v;
    ratelimit_snapshot(rl, "acme", "bob", 0, &v);
    assert_int_equal(v.b[RATELIMIT_GLOBAL][RATELIMIT_REQUESTS].level, 99);
    assert_int_equal(v.b[RATELIMIT_TENANT][RATELIMIT_REQUESTS].level, 99);
    assert_int_equal(v.b[RATELIMIT_TENANT][RATELIMIT_TOKENS].level, 4000);
    assert_int_equal(v.b[RATELIMIT_USER][RATELIMIT_REQUESTS].level, 0);
    ratelimit_free(rl);
}

/* A need larger than a bucket can ever hold is refused at once, naming the
 * variable and its value, and takes nothing; under an override the
 * message points at `memchat limits set` instead. */
static void a_need_over_capacity_is_refused_with_the_limit_named(void **state)
{
    (void)state;
    struct ratelimit_limits lim;
    ratelimit_limits_init(&lim);
    lim.value[RATELIMIT_USER][RATELIMIT_TOKENS] = 8000;
    lim.value[RATELIMIT_GLOBAL][RATELIMIT_TOKENS] = 100000;
    struct ratelimit *rl = new_rl(&lim);
    struct ratelimit_decision d;
    assert_int_equal(acq(rl, "acme", "bob", 9000, 0, &d), RATELIMIT_REFUSED);
    assert_int_equal(d.scope, RATELIMIT_USER);
    assert_int_equal(d.kind, RATELIMIT_TOKENS);
    assert_non_null(strstr(d.reason, "the turn needs 9000 tokens, over USER_RATE_LIMIT_TPM=8000"));
    assert_non_null(strstr(d.reason, "user bob of tenant acme"));
    assert_int_equal(level(rl, "acme", "bob", 0, RATELIMIT_GLOBAL, RATELIMIT_TOKENS), 100000);
    /* exactly the capacity fits */
    assert_int_equal(acq(rl, "acme", "bob", 8000, 0, &d), RATELIMIT_OK);

    char err[256];
    assert_int_equal(ratelimit_set_override(rl, "acme", "eve", -1, 500, err, sizeof err), 0);
    assert_int_equal(acq(rl, "acme", "eve", 501, 0, &d), RATELIMIT_REFUSED);
    assert_true(d.overridden);
    assert_int_equal(d.limit, 500);
    assert_non_null(strstr(d.reason, "memchat limits set"));
    ratelimit_free(rl);
}

/* Unlimited (0) scopes never bind and hold no state: with nothing limited
 * every turn passes whatever it needs and no key is stored; the snapshot
 * reports capacity 0. */
static void unlimited_scopes_never_bind(void **state)
{
    (void)state;
    struct ratelimit_limits lim;
    ratelimit_limits_init(&lim);
    struct ratelimit *rl = new_rl(&lim);
    struct ratelimit_decision d;
    for (int i = 0; i < 1000; i++)
        assert_int_equal(acq(rl, "acme", "bob", RATELIMIT_MAX_VALUE * 10, 0, &d), RATELIMIT_OK);
    assert_int_equal(ratelimit_entry_count(rl), 0);
    struct ratelimit_view v;
    ratelimit_snapshot(rl, "acme", "bob", 0, &v);
    for (int s = 0; s < RATELIMIT_SCOPE__COUNT; s++)
        for (int k = 0; k < RATELIMIT_KIND__COUNT; k++)
            assert_int_equal(v.b[s][k].capacity, 0);
    ratelimit_free(rl);

    /* Only the user scope limited: global and tenant never bind. */
    rl = new_rl1(RATELIMIT_USER, RATELIMIT_REQUESTS, 1);
    assert_int_equal(acq(rl, "acme", "bob", 5, 0, &d), RATELIMIT_OK);
    assert_int_equal(acq(rl, "acme", "bob", 5, 0, &d), RATELIMIT_WAIT);
    assert_int_equal(d.scope, RATELIMIT_USER);
    /* A tenant-only turn (user NULL) has no user bucket at all. */
    for (int i = 0; i < 10; i++)
        assert_int_equal(acq(rl, "acme", NULL, 5, 0, &d), RATELIMIT_OK);
    ratelimit_free(rl);
}

/* Overrides take precedence over the configuration and clear back to it:
 * a tenant override of 2 requests beats TENANT_RATE_LIMIT_RPM=10; a user
 * override of 0 makes that user unlimited despite USER_RATE_LIMIT_RPM=1;
 * -1 keeps the configured value of that kind; clearing restores the
 * configured limits; bad ids and values are refused with a message. */
static void overrides_take_precedence_and_clear_back(void **state)
{
    (void)state;
    struct ratelimit_limits lim;
    ratelimit_limits_init(&lim);
    lim.value[RATELIMIT_TENANT][RATELIMIT_REQUESTS] = 10;
    lim.value[RATELIMIT_TENANT][RATELIMIT_TOKENS] = 1000;
    lim.value[RATELIMIT_USER][RATELIMIT_REQUESTS] = 1;
    struct ratelimit *rl = new_rl(&lim);
    struct ratelimit_decision d;
    char err[256];
    assert_int_equal(ratelimit_set_override(rl, "acme", NULL, 2, -1, err, sizeof err), 0);
    assert_int_equal(ratelimit_set_override(rl, "acme", "bob", 0, -1, err, sizeof err), 0);
    long long rpm = 99, tpm = 99;
    assert_true(ratelimit_get_override(rl, "acme", NULL, &rpm, &tpm));
    assert_int_equal(rpm, 2);
    assert_int_equal(tpm, -1);
    assert_true(ratelimit_get_override(rl, "acme", "bob", &rpm, &tpm));
    assert_int_equal(rpm, 0);
    assert_false(ratelimit_get_override(rl, "acme", "eve", &rpm, &tpm));
    assert_false(ratelimit_get_override(rl, "other", NULL, &rpm, &tpm));

    /* bob: user unlimited, tenant 2 requests */
    assert_int_equal(acq(rl, "acme", "bob", 10, 0, &d), RATELIMIT_OK);
    assert_int_equal(acq(rl, "acme", "bob", 10, 0, &d), RATELIMIT_OK);
    assert_int_equal(acq(rl, "acme", "bob", 10, 0, &d), RATELIMIT_WAIT);
    assert_int_equal(d.scope, RATELIMIT_TENANT);
    assert_true(d.overridden);
    assert_int_equal(d.wait_ms, 30000);
    /* the tenant's token limit stayed the configured 1000 (-1) */
    struct ratelimit_view v;
    ratelimit_snapshot(rl, "acme", "bob", 0, &v);
    assert_int_equal(v.b[RATELIMIT_TENANT][RATELIMIT_TOKENS].capacity, 1000);
    assert_false(v.b[RATELIMIT_TENANT][RATELIMIT_TOKENS].overridden);
    assert_int_equal(v.b[RATELIMIT_TENANT][RATELIMIT_TOKENS].level, 980);
    assert_int_equal(v.b[RATELIMIT_USER][RATELIMIT_REQUESTS].capacity, 0);
    assert_true(v.b[RATELIMIT_USER][RATELIMIT_REQUESTS].overridden);

    /* Clearing restores TENANT_RATE_LIMIT_RPM=10: the two taken leave 8. */
    assert_true(ratelimit_clear_override(rl, "acme", NULL));
    assert_false(ratelimit_clear_override(rl, "acme", NULL));
    assert_false(ratelimit_get_override(rl, "acme", NULL, &rpm, &tpm));
    assert_int_equal(level(rl, "acme", "bob", 0, RATELIMIT_TENANT, RATELIMIT_REQUESTS), 8);
    assert_int_equal(acq(rl, "acme", "bob", 10, 0, &d), RATELIMIT_OK);
    /* and bob back to USER_RATE_LIMIT_RPM=1, which his next turn meets */
    assert_true(ratelimit_clear_override(rl, "acme", "bob"));
    assert_int_equal(acq(rl, "acme", "bob", 10, 0, &d), RATELIMIT_OK);
    assert_int_equal(acq(rl, "acme", "bob", 10, 0, &d), RATELIMIT_WAIT);
    assert_int_equal(d.scope, RATELIMIT_USER);
    assert_false(d.overridden);

    assert_int_equal(ratelimit_set_override(rl, "ac me", NULL, 1, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "tenant"));
    assert_int_equal(ratelimit_set_override(rl, "acme", "b/b", 1, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "user"));
    assert_int_equal(ratelimit_set_override(rl, "acme", NULL, -2, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "rpm"));
    assert_int_equal(
        ratelimit_set_override(rl, "acme", NULL, 1, RATELIMIT_MAX_VALUE + 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "tpm"));
    /* -1 for both is the same as clearing */
    assert_int_equal(ratelimit_set_override(rl, "acme", NULL, 3, 3, err, sizeof err), 0);
    assert_int_equal(ratelimit_set_override(rl, "acme", NULL, -1, -1, err, sizeof err), 0);
    assert_false(ratelimit_get_override(rl, "acme", NULL, &rpm, &tpm));
    ratelimit_free(rl);
}

/* A changed limit keeps what was used. Of TENANT_RATE_LIMIT_TPM=1000, 100
 * are used; an override of 300 leaves 200 (not 300). Once those are taken
 * too, raising it to 500 gives the 200 difference at once; lowering it to
 * 100, below the 300 used, empties the bucket but makes no debt. */
static void a_changed_limit_keeps_the_usage(void **state)
{
    (void)state;
    struct ratelimit *rl = new_rl1(RATELIMIT_TENANT, RATELIMIT_TOKENS, 1000);
    struct ratelimit_decision d;
    char err[256];
    assert_int_equal(acq(rl, "acme", NULL, 100, 0, &d), RATELIMIT_OK);
    assert_int_equal(ratelimit_set_override(rl, "acme", NULL, -1, 300, err, sizeof err), 0);
    assert_int_equal(level(rl, "acme", NULL, 0, RATELIMIT_TENANT, RATELIMIT_TOKENS), 200);
    assert_int_equal(acq(rl, "acme", NULL, 200, 0, &d), RATELIMIT_OK);
    assert_int_equal(acq(rl, "acme", NULL, 1, 0, &d), RATELIMIT_WAIT);
    assert_int_equal(d.wait_ms, 200); /* 60000 / 300 per token */
    assert_int_equal(ratelimit_set_override(rl, "acme", NULL, -1, 500, err, sizeof err), 0);
    assert_int_equal(acq(rl, "acme", NULL, 0, 0, &d), RATELIMIT_OK); /* brings it up to date */
    assert_int_equal(level(rl, "acme", NULL, 0, RATELIMIT_TENANT, RATELIMIT_TOKENS), 200);
    assert_int_equal(ratelimit_set_override(rl, "acme", NULL, -1, 100, err, sizeof err), 0);
    assert_int_equal(level(rl, "acme", NULL, 0, RATELIMIT_TENANT, RATELIMIT_TOKENS), 0);
    assert_int_equal(acq(rl, "acme", NULL, 0, 0, &d), RATELIMIT_OK);
    assert_int_equal(level(rl, "acme", NULL, 0, RATELIMIT_TENANT, RATELIMIT_TOKENS), 0);
    ratelimit_free(rl);
}

/* Reconciliation moves the token buckets by actual - estimated: 300
 * estimated of TPM=1000 leaves 700; 500 actual pays 200 more (500 left);
 * a later 100 actual for 500 estimated gives 400 back (900); giving back
 * never passes 1000. A turn that used 1600 of a 1000 estimate leaves a
 * debt of 600 that the refill repays first: 100 more tokens then wait
 * (100 + 600) * 60 = 42000 ms. Requests are not touched. */
static void reconciliation_pays_and_gives_back(void **state)
{
    (void)state;
    struct ratelimit_limits lim;
    ratelimit_limits_init(&lim);
    lim.value[RATELIMIT_USER][RATELIMIT_TOKENS] = 1000;
    lim.value[RATELIMIT_USER][RATELIMIT_REQUESTS] = 10;
    lim.value[RATELIMIT_GLOBAL][RATELIMIT_TOKENS] = 1000;
    struct ratelimit *rl = new_rl(&lim);
    struct ratelimit_decision d;
    assert_int_equal(acq(rl, "acme", "bob", 300, 0, &d), RATELIMIT_OK);
    ratelimit_reconcile(rl, false, "acme", "bob", 300, 500, 0);
    assert_int_equal(level(rl, "acme", "bob", 0, RATELIMIT_USER, RATELIMIT_TOKENS), 500);
    assert_int_equal(level(rl, "acme", "bob", 0, RATELIMIT_GLOBAL, RATELIMIT_TOKENS), 500);
    ratelimit_reconcile(rl, false, "acme", "bob", 500, 100, 0);
    assert_int_equal(level(rl, "acme", "bob", 0, RATELIMIT_USER, RATELIMIT_TOKENS), 900);
    ratelimit_reconcile(rl, false, "acme", "bob", 5000, 0, 0);
    assert_int_equal(level(rl, "acme", "bob", 0, RATELIMIT_USER, RATELIMIT_TOKENS), 1000);
    assert_int_equal(level(rl, "acme", "bob", 0, RATELIMIT_USER, RATELIMIT_REQUESTS), 9);

    assert_int_equal(acq(rl, "acme", "bob", 1000, 0, &d), RATELIMIT_OK);
    ratelimit_reconcile(rl, false, "acme", "bob", 1000, 1600, 0);
    assert_int_equal(level(rl, "acme", "bob", 0, RATELIMIT_USER, RATELIMIT_TOKENS), -600);
    assert_int_equal(acq(rl, "acme", "bob", 100, 0, &d), RATELIMIT_WAIT);
    assert_int_equal(d.wait_ms, 42000);
    assert_int_equal(acq(rl, "acme", "bob", 100, 42000, &d), RATELIMIT_OK);
    /* A huge debt saturates rather than wrapping around. */
    for (int i = 0; i < 100; i++)
        ratelimit_reconcile(rl, false, "acme", "bob", 0, RATELIMIT_MAX_VALUE, 42000);
    assert_true(level(rl, "acme", "bob", 42000, RATELIMIT_USER, RATELIMIT_TOKENS) < 0);
    ratelimit_free(rl);
}

/* A refund gives back the request and the tokens of a turn that never
 * sent, so the next one passes at once. */
static void a_refund_gives_back_request_and_tokens(void **state)
{
    (void)state;
    struct ratelimit_limits lim;
    ratelimit_limits_init(&lim);
    lim.value[RATELIMIT_USER][RATELIMIT_REQUESTS] = 1;
    lim.value[RATELIMIT_TENANT][RATELIMIT_TOKENS] = 100;
    struct ratelimit *rl = new_rl(&lim);
    struct ratelimit_decision d;
    assert_int_equal(acq(rl, "acme", "bob", 100, 0, &d), RATELIMIT_OK);
    assert_int_equal(acq(rl, "acme", "bob", 100, 0, &d), RATELIMIT_WAIT);
    ratelimit_refund(rl, false, "acme", "bob", 100, 0);
    assert_int_equal(acq(rl, "acme", "bob", 100, 0, &d), RATELIMIT_OK);
    ratelimit_free(rl);
}

/* The snapshot shows the six buckets' capacities and levels, and reading
 * it changes nothing: no key is made, a later acquire sees the same. */
static void the_snapshot_shows_six_buckets_without_side_effects(void **state)
{
    (void)state;
    struct ratelimit_limits lim;
    ratelimit_limits_init(&lim);
    long long want[3][2] = {{100, 10000}, {20, 2000}, {5, 500}};
    for (int s = 0; s < 3; s++)
        for (int k = 0; k < 2; k++)
            lim.value[s][k] = want[s][k];
    lim.window_ms = 10000;
    struct ratelimit *rl = new_rl(&lim);
    struct ratelimit_view v;
    ratelimit_snapshot(rl, "acme", "bob", 0, &v);
    assert_int_equal(ratelimit_entry_count(rl), 0);
    assert_int_equal(v.window_ms, 10000);
    for (int s = 0; s < 3; s++)
        for (int k = 0; k < 2; k++) {
            assert_int_equal(v.b[s][k].capacity, want[s][k]);
            assert_int_equal(v.b[s][k].level, want[s][k]);
        }
    struct ratelimit_decision d;
    assert_int_equal(acq(rl, "acme", "bob", 120, 0, &d), RATELIMIT_OK);
    ratelimit_snapshot(rl, "acme", "bob", 100, &v);
    /* 100 ms of a 10000 ms window refills a hundredth of each capacity:
     * 99 + 1, 9880 + 100, 19 + 0.2, 1880 + 20, 4 + 0.05, 380 + 5. */
    assert_int_equal(v.b[RATELIMIT_GLOBAL][RATELIMIT_REQUESTS].level, 100);
    assert_int_equal(v.b[RATELIMIT_GLOBAL][RATELIMIT_TOKENS].level, 9980);
    assert_int_equal(v.b[RATELIMIT_TENANT][RATELIMIT_REQUESTS].level, 19);
    assert_int_equal(v.b[RATELIMIT_TENANT][RATELIMIT_TOKENS].level, 1900);
    assert_int_equal(v.b[RATELIMIT_USER][RATELIMIT_REQUESTS].level, 4);
    assert_int_equal(v.b[RATELIMIT_USER][RATELIMIT_TOKENS].level, 385);
    /* The snapshot at 100 ms did not move the buckets' clocks: at 0 the
     * user bucket holds what the acquire left. */
    ratelimit_snapshot(rl, "acme", "bob", 0, &v);
    assert_int_equal(v.b[RATELIMIT_USER][RATELIMIT_TOKENS].level, 380);
    /* NULL ids read as unlimited scopes */
    ratelimit_snapshot(rl, NULL, NULL, 0, &v);
    assert_int_equal(v.b[RATELIMIT_GLOBAL][RATELIMIT_TOKENS].capacity, 10000);
    assert_int_equal(v.b[RATELIMIT_TENANT][RATELIMIT_TOKENS].capacity, 0);
    assert_int_equal(v.b[RATELIMIT_USER][RATELIMIT_TOKENS].capacity, 0);
    ratelimit_free(rl);
}

/* 100000 distinct users at one instant never hold more than max_entries
 * keys (each has usage, so the least recently used are forgotten), and a
 * key with an override is never dropped. */
static void the_key_table_stays_bounded(void **state)
{
    (void)state;
    struct ratelimit_limits lim;
    ratelimit_limits_init(&lim);
    lim.value[RATELIMIT_USER][RATELIMIT_REQUESTS] = 1;
    lim.max_entries = 1000;
    struct ratelimit *rl = new_rl(&lim);
    char err[256];
    assert_int_equal(ratelimit_set_override(rl, "acme", "vip", 7, -1, err, sizeof err), 0);
    struct ratelimit_decision d;
    for (int i = 0; i < 100000; i++) {
        char user[32];
        snprintf(user, sizeof user, "u%d", i);
        assert_int_equal(acq(rl, "acme", user, 0, 0, &d), RATELIMIT_OK);
        assert_true(ratelimit_entry_count(rl) <= 1000 + 1);
    }
    long long rpm, tpm;
    assert_true(ratelimit_get_override(rl, "acme", "vip", &rpm, &tpm));
    assert_int_equal(rpm, 7);
    /* The newest user is remembered; the first was forgotten (its bucket
     * reads full again: the bound can only make limits more lenient). */
    assert_int_equal(level(rl, "acme", "u99999", 0, RATELIMIT_USER, RATELIMIT_REQUESTS), 0);
    assert_int_equal(level(rl, "acme", "u0", 0, RATELIMIT_USER, RATELIMIT_REQUESTS), 1);
    ratelimit_free(rl);
}

/* Idle keys go first and by themselves. With USER_RATE_LIMIT_RPM=2: busy
 * takes 2 at 0 ms (1.33 back at 40000 ms), light takes 1 at 1 ms (full at
 * 30001 ms). At 40000 ms, new users fill the table of 16; the next new
 * one drops light (idle) rather than busy (the tail, still in use), so
 * busy still reads 1. Later, with everyone refilled, acquires sweep the
 * idle keys away a few at a time until only the active remain. */
static void idle_keys_are_dropped_first(void **state)
{
    (void)state;
    struct ratelimit_limits lim;
    ratelimit_limits_init(&lim);
    lim.value[RATELIMIT_USER][RATELIMIT_REQUESTS] = 2;
    lim.max_entries = 16;
    struct ratelimit *rl = new_rl(&lim);
    struct ratelimit_decision d;
    assert_int_equal(acq(rl, "t", "busy", 0, 0, &d), RATELIMIT_OK);
    assert_int_equal(acq(rl, "t", "busy", 0, 0, &d), RATELIMIT_OK);
    assert_int_equal(acq(rl, "t", "light", 0, 1, &d), RATELIMIT_OK);
    for (int i = 0; i < 14; i++) {
        char user[32];
        snprintf(user, sizeof user, "c%d", i);
        assert_int_equal(acq(rl, "t", user, 0, 40000, &d), RATELIMIT_OK);
    }
    assert_int_equal(ratelimit_entry_count(rl), 16);
    assert_int_equal(acq(rl, "t", "c14", 0, 40000, &d), RATELIMIT_OK);
    assert_int_equal(ratelimit_entry_count(rl), 16);
    assert_int_equal(level(rl, "t", "busy", 40000, RATELIMIT_USER, RATELIMIT_REQUESTS), 1);

    /* At 200000 ms every bucket is full again; each acquire by "x" drops up
     * to two idle keys from the tail, so 8 acquires empty the table but
     * for x itself. */
    for (int i = 0; i < 8; i++)
        assert_int_equal(acq(rl, "t", "x", 0, 200000 + i * 30000, &d), RATELIMIT_OK);
    assert_int_equal(ratelimit_entry_count(rl), 1);
    ratelimit_free(rl);
}

/* A fake clock and sleep for the waiting protocol. */
struct fake {
    int64_t now;
    bool advance;         /* sleeping moves the clock */
    bool cancel_at_sleep; /* the sleep reports a cancel */
    int sleeps, waits;
    long long last_wait;
    struct ratelimit *rl; /* when set, a competing turn takes the room */
};

static int64_t fake_now(void *ud)
{
    return ((struct fake *)ud)->now;
}

static bool fake_sleep(void *ud, long long ms)
{
    struct fake *f = ud;
    f->sleeps++;
    if (f->advance)
        f->now += ms;
    if (f->rl != NULL) {
        struct ratelimit_decision d;
        assert_int_equal(ratelimit_acquire(f->rl, "acme", "rival", 0, f->now, &d), RATELIMIT_OK);
    }
    return !f->cancel_at_sleep;
}

static void fake_on_wait(void *ud, const struct ratelimit_decision *d)
{
    struct fake *f = ud;
    f->waits++;
    f->last_wait = d->wait_ms;
    assert_int_equal(d->result, RATELIMIT_WAIT);
}

/* The protocol: a turn waits the exact time (one `ratelimit.wait` report,
 * one sleep) and then passes; a wait longer than RATE_LIMIT_MAX_WAIT_MS
 * refuses at once without sleeping; a cancel during the wait ends it
 * with nothing taken; a rival taking the room meanwhile makes the turn
 * wait again while the allowance lasts, then refuse. */
static void acquire_wait_sleeps_exactly_and_refuses_past_the_maximum(void **state)
{
    (void)state;
    struct ratelimit_limits lim;
    ratelimit_limits_init(&lim);
    lim.value[RATELIMIT_TENANT][RATELIMIT_REQUESTS] = 1;
    lim.max_wait_ms = 60000;
    struct ratelimit *rl = new_rl(&lim);
    struct fake f = {.now = 5, .advance = true};
    struct ratelimit_waiter w = {fake_now, fake_sleep, fake_on_wait, &f};
    struct ratelimit_decision d;
    assert_int_equal(ratelimit_acquire_wait(rl, "acme", "bob", 0, &w, &d), RATELIMIT_OK);
    assert_int_equal(f.sleeps, 0);
    assert_int_equal(ratelimit_acquire_wait(rl, "acme", "bob", 0, &w, &d), RATELIMIT_OK);
    assert_int_equal(f.sleeps, 1);
    assert_int_equal(f.waits, 1);
    assert_int_equal(f.last_wait, 60000);
    assert_int_equal(d.waited_ms, 60000);
    assert_int_equal(f.now, 60005);

    /* cancelled: nothing taken, so once the room is back a plain acquire passes */
    f.cancel_at_sleep = true;
    assert_int_equal(ratelimit_acquire_wait(rl, "acme", "bob", 0, &w, &d), RATELIMIT_CANCELLED);
    assert_non_null(strstr(d.reason, "cancelled"));
    assert_int_equal(ratelimit_acquire(rl, "acme", "bob", 0, f.now, &d), RATELIMIT_OK);
    ratelimit_free(rl);

    /* Too long to wait: refused at once, naming both limits. */
    lim.max_wait_ms = 30000;
    rl = new_rl(&lim);
    f = (struct fake){.now = 0, .advance = true};
    assert_int_equal(ratelimit_acquire_wait(rl, "acme", "bob", 0, &w, &d), RATELIMIT_OK);
    assert_int_equal(ratelimit_acquire_wait(rl, "acme", "bob", 0, &w, &d), RATELIMIT_REFUSED);
    assert_int_equal(f.sleeps, 0);
    assert_int_equal(d.scope, RATELIMIT_TENANT);
    assert_int_equal(d.wait_ms, 60000);
    assert_non_null(strstr(d.reason, "TENANT_RATE_LIMIT_RPM=1"));
    assert_non_null(strstr(d.reason, "RATE_LIMIT_MAX_WAIT_MS=30000"));
    ratelimit_free(rl);

    /* A rival takes each refill: the turn waits 60000 twice (120000 of
     * 150000), then the third wait does not fit what is left. */
    lim.max_wait_ms = 150000;
    rl = new_rl(&lim);
    f = (struct fake){.now = 0, .advance = true, .rl = rl};
    assert_int_equal(ratelimit_acquire(rl, "acme", "bob", 0, 0, &d), RATELIMIT_OK);
    assert_int_equal(ratelimit_acquire_wait(rl, "acme", "bob", 0, &w, &d), RATELIMIT_REFUSED);
    assert_int_equal(f.sleeps, 2);
    assert_int_equal(d.waited_ms, 120000);
    assert_non_null(strstr(d.reason, "still no room after waiting"));
    ratelimit_free(rl);

    /* A sleep that does not move the clock still ends: the allowance is
     * counted in slept ms, not clock time. */
    lim.max_wait_ms = 150000;
    rl = new_rl(&lim);
    f = (struct fake){.now = 0, .advance = false};
    assert_int_equal(ratelimit_acquire(rl, "acme", "bob", 0, 0, &d), RATELIMIT_OK);
    assert_int_equal(ratelimit_acquire_wait(rl, "acme", "bob", 0, &w, &d), RATELIMIT_REFUSED);
    assert_int_equal(f.sleeps, 2);
    ratelimit_free(rl);

    /* max_wait 0 (the library default) refuses without waiting. */
    lim.max_wait_ms = 0;
    rl = new_rl(&lim);
    f = (struct fake){.now = 0, .advance = true};
    w.on_wait = NULL;
    assert_int_equal(ratelimit_acquire_wait(rl, "acme", "bob", 0, &w, &d), RATELIMIT_OK);
    assert_int_equal(ratelimit_acquire_wait(rl, "acme", "bob", 0, &w, &d), RATELIMIT_REFUSED);
    assert_int_equal(f.sleeps, 0);
    ratelimit_free(rl);
}

/* Bad input is an error, not a decision: invalid ids and negative needs;
 * bad limits are refused by ratelimit_new naming the variable. */
static void bad_arguments_are_errors(void **state)
{
    (void)state;
    struct ratelimit *rl = new_rl1(RATELIMIT_USER, RATELIMIT_REQUESTS, 1);
    struct ratelimit_decision d;
    assert_int_equal(acq(rl, "bad id", "bob", 0, 0, &d), RATELIMIT_ERROR);
    assert_non_null(strstr(d.reason, "invalid"));
    assert_int_equal(acq(rl, NULL, "bob", 0, 0, &d), RATELIMIT_ERROR);
    assert_int_equal(acq(rl, "acme", "", 0, 0, &d), RATELIMIT_ERROR);
    assert_int_equal(acq(rl, "acme", "bob", -1, 0, &d), RATELIMIT_ERROR);
    ratelimit_free(rl);

    struct ratelimit_limits lim;
    char err[256];
    ratelimit_limits_init(&lim);
    lim.value[RATELIMIT_TENANT][RATELIMIT_TOKENS] = -5;
    assert_null(ratelimit_new(&lim, err, sizeof err));
    assert_non_null(strstr(err, "TENANT_RATE_LIMIT_TPM=-5"));
    ratelimit_limits_init(&lim);
    lim.window_ms = 0;
    assert_null(ratelimit_new(&lim, err, sizeof err));
    assert_non_null(strstr(err, "RATE_LIMIT_WINDOW_S"));
    ratelimit_limits_init(&lim);
    lim.max_wait_ms = -1;
    assert_null(ratelimit_new(&lim, err, sizeof err));
    assert_non_null(strstr(err, "RATE_LIMIT_MAX_WAIT_MS"));
}

/* The configuration helper reads the variables by name and their types
 * (ints, durations in ms); a table without them leaves the defaults. */
static void limits_come_from_the_configuration(void **state)
{
    (void)state;
    static const struct cfg_var vars[] = {
        {"RATE_LIMIT_RPM", CFG_INT, "0", 0, 1000000000, NULL, 0, "d"},
        {"TENANT_RATE_LIMIT_TPM", CFG_INT, "0", 0, 1000000000, NULL, 0, "d"},
        {"USER_RATE_LIMIT_RPM", CFG_INT, "0", 0, 1000000000, NULL, 0, "d"},
        {"RATE_LIMIT_WINDOW_S", CFG_DURATION, "60", 1, 604800000, NULL, 0, "d"},
        {"RATE_LIMIT_MAX_WAIT_MS", CFG_DURATION, "30000", 0, 600000, NULL, 0, "d"},
        {"OTHER", CFG_STRING, "", 0, 0, NULL, 0, "d"},
    };
    struct config *cfg = config_new(vars, sizeof vars / sizeof vars[0]);
    char err[256] = "";
    assert_int_equal(config_set(cfg, 0, "120", err, sizeof err), 0);
    assert_int_equal(config_set(cfg, 1, "9000", err, sizeof err), 0);
    assert_int_equal(config_set(cfg, 3, "90", err, sizeof err), 0);
    struct ratelimit_limits lim;
    ratelimit_limits_from_config(cfg, &lim);
    assert_int_equal(lim.value[RATELIMIT_GLOBAL][RATELIMIT_REQUESTS], 120);
    assert_int_equal(lim.value[RATELIMIT_GLOBAL][RATELIMIT_TOKENS], 0);
    assert_int_equal(lim.value[RATELIMIT_TENANT][RATELIMIT_TOKENS], 9000);
    assert_int_equal(lim.value[RATELIMIT_USER][RATELIMIT_REQUESTS], 0);
    assert_int_equal(lim.window_ms, 90000);
    assert_int_equal(lim.max_wait_ms, 30000);
    config_free(cfg);

    cfg = config_new(vars + 5, 1);
    ratelimit_limits_from_config(cfg, &lim);
    assert_int_equal(lim.window_ms, RATELIMIT_WINDOW_DEFAULT_MS);
    assert_int_equal(lim.value[RATELIMIT_GLOBAL][RATELIMIT_REQUESTS], 0);
    config_free(cfg);
}

/* ---- concurrency ---- */

#define N_THREADS 8

struct race {
    struct ratelimit *rl;
    atomic_llong clock; /* when advancing, each attempt reads and moves it */
    bool advance;
    int attempts;
    long long tokens;
    atomic_int granted;
    atomic_int granted_user[2];
    int64_t max_now;
    pthread_mutex_t mu;
};

struct racer {
    struct race *r;
    int idx;
};

static void *race_main(void *arg)
{
    struct racer *me = arg;
    struct race *r = me->r;
    const char *user = me->idx % 2 == 0 ? "even" : "odd";
    int64_t seen = 0;
    for (int i = 0; i < r->attempts; i++) {
        int64_t now = r->advance ? atomic_fetch_add(&r->clock, 1) + 1 : atomic_load(&r->clock);
        if (now > seen)
            seen = now;
        struct ratelimit_decision d;
        if (ratelimit_acquire(r->rl, "acme", user, r->tokens, now, &d) == RATELIMIT_OK) {
            atomic_fetch_add(&r->granted, 1);
            atomic_fetch_add(&r->granted_user[me->idx % 2], 1);
        }
    }
    pthread_mutex_lock(&r->mu);
    if (seen > r->max_now)
        r->max_now = seen;
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

static void race_run(struct race *r)
{
    pthread_t th[N_THREADS];
    struct racer who[N_THREADS];
    pthread_mutex_init(&r->mu, NULL);
    for (int i = 0; i < N_THREADS; i++) {
        who[i] = (struct racer){r, i};
        assert_int_equal(pthread_create(&th[i], NULL, race_main, &who[i]), 0);
    }
    for (int i = 0; i < N_THREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    pthread_mutex_destroy(&r->mu);
}

/* Eight threads at one instant against a global limit of K = 1000
 * requests and user limits of 300 each (two users, four threads each):
 * exactly 300 per user succeed, never one more, out of 8 x 500 attempts.
 * Against the global limit alone exactly 1000 succeed. */
static void concurrent_turns_never_overshoot_at_a_fixed_clock(void **state)
{
    (void)state;
    struct ratelimit_limits lim;
    ratelimit_limits_init(&lim);
    lim.value[RATELIMIT_GLOBAL][RATELIMIT_REQUESTS] = 1000;
    lim.value[RATELIMIT_USER][RATELIMIT_REQUESTS] = 300;
    struct race r = {.rl = new_rl(&lim), .attempts = 500, .tokens = 10};
    atomic_init(&r.clock, 777);
    atomic_init(&r.granted, 0);
    atomic_init(&r.granted_user[0], 0);
    atomic_init(&r.granted_user[1], 0);
    race_run(&r);
    assert_int_equal(atomic_load(&r.granted_user[0]), 300);
    assert_int_equal(atomic_load(&r.granted_user[1]), 300);
    ratelimit_free(r.rl);

    lim.value[RATELIMIT_USER][RATELIMIT_REQUESTS] = 0;
    struct race g = {.rl = new_rl(&lim), .attempts = 500, .tokens = 10};
    atomic_init(&g.clock, 777);
    atomic_init(&g.granted, 0);
    atomic_init(&g.granted_user[0], 0);
    atomic_init(&g.granted_user[1], 0);
    race_run(&g);
    assert_int_equal(atomic_load(&g.granted), 1000);
    ratelimit_free(g.rl);
}

/* With simulated time moving 1 ms per attempt (16000 attempts, the clock
 * read outside the lock, so calls arrive slightly out of order), what is
 * granted never passes capacity + refill over the time that passed: for
 * 100 requests per 1000 ms window, 100 + elapsed / 10 turns; for 2000
 * tokens per window at 50 a turn, 2000 + 2 x elapsed tokens. Buckets only
 * fill while nothing is granted, so the first capacity's worth always
 * passes (100 turns; 40 turns of 50 tokens). */
static void concurrent_turns_never_pass_capacity_plus_refill(void **state)
{
    (void)state;
    struct ratelimit_limits lim;
    ratelimit_limits_init(&lim);
    lim.window_ms = 1000;
    lim.value[RATELIMIT_GLOBAL][RATELIMIT_REQUESTS] = 100;
    struct race r = {.rl = new_rl(&lim), .attempts = 2000, .tokens = 50, .advance = true};
    atomic_init(&r.clock, 0);
    atomic_init(&r.granted, 0);
    atomic_init(&r.granted_user[0], 0);
    atomic_init(&r.granted_user[1], 0);
    race_run(&r);
    long long elapsed = r.max_now; /* from 0 */
    long long bound = 100 + elapsed * 100 / 1000;
    long long got = atomic_load(&r.granted);
    assert_true(got >= 100);
    assert_true(got <= bound);
    ratelimit_free(r.rl);

    lim.value[RATELIMIT_GLOBAL][RATELIMIT_REQUESTS] = 0;
    lim.value[RATELIMIT_TENANT][RATELIMIT_TOKENS] = 2000;
    struct race t = {.rl = new_rl(&lim), .attempts = 2000, .tokens = 50, .advance = true};
    atomic_init(&t.clock, 0);
    atomic_init(&t.granted, 0);
    atomic_init(&t.granted_user[0], 0);
    atomic_init(&t.granted_user[1], 0);
    race_run(&t);
    got = atomic_load(&t.granted);
    assert_true(got >= 40);
    assert_true(got * 50 <= 2000 + t.max_now * 2000 / 1000);
    ratelimit_free(t.rl);
}

/* Waits over a minute are written in minutes and whole seconds, rounded
 * up: 29 min 59.5 s reads "30 min 0 s", never "29 min 60 s". */
static void long_waits_read_in_whole_minutes_and_seconds(void **state)
{
    (void)state;
    static const struct {
        long long window_ms;
        const char *says;
    } cases[] = {
        {1799500, "room again in 30 min 0 s"},
        {1799000, "room again in 29 min 59 s"},
        {61001, "room again in 1 min 2 s"},
        {59999, "room again in 60.0 s"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct ratelimit_limits lim;
        ratelimit_limits_init(&lim);
        lim.value[RATELIMIT_TENANT][RATELIMIT_REQUESTS] = 1;
        lim.window_ms = cases[i].window_ms;
        struct ratelimit *rl = new_rl(&lim);
        struct ratelimit_decision d;
        assert_int_equal(acq(rl, "acme", NULL, 0, 0, &d), RATELIMIT_OK);
        assert_int_equal(acq(rl, "acme", NULL, 0, 0, &d), RATELIMIT_WAIT);
        if (strstr(d.reason, cases[i].says) == NULL)
            fail_msg("window %lld: '%s' lacks '%s'", cases[i].window_ms, d.reason, cases[i].says);
        ratelimit_free(rl);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_new_bucket_holds_exactly_its_capacity),
        cmocka_unit_test(long_waits_read_in_whole_minutes_and_seconds),
        cmocka_unit_test(buckets_refill_continuously_and_never_pass_capacity),
        cmocka_unit_test(the_wait_is_exact_for_each_binding_scope_and_kind),
        cmocka_unit_test(the_longest_wait_binds),
        cmocka_unit_test(waits_round_up_to_whole_milliseconds),
        cmocka_unit_test(a_clock_behind_the_last_refill_changes_nothing),
        cmocka_unit_test(a_refused_turn_takes_from_no_bucket),
        cmocka_unit_test(a_need_over_capacity_is_refused_with_the_limit_named),
        cmocka_unit_test(unlimited_scopes_never_bind),
        cmocka_unit_test(overrides_take_precedence_and_clear_back),
        cmocka_unit_test(a_changed_limit_keeps_the_usage),
        cmocka_unit_test(reconciliation_pays_and_gives_back),
        cmocka_unit_test(a_refund_gives_back_request_and_tokens),
        cmocka_unit_test(the_snapshot_shows_six_buckets_without_side_effects),
        cmocka_unit_test(the_key_table_stays_bounded),
        cmocka_unit_test(idle_keys_are_dropped_first),
        cmocka_unit_test(acquire_wait_sleeps_exactly_and_refuses_past_the_maximum),
        cmocka_unit_test(bad_arguments_are_errors),
        cmocka_unit_test(limits_come_from_the_configuration),
        cmocka_unit_test(concurrent_turns_never_overshoot_at_a_fixed_clock),
        cmocka_unit_test(concurrent_turns_never_pass_capacity_plus_refill),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
