/*
 * The rate limiter on Redis (client/ratelimit_redis.c through
 * client/ratelimit.c) against a real redis-server. Two limiters on one
 * server stand for two processes: what one takes the other cannot. The
 * shared buckets must decide exactly as the in-process ones do, which a
 * seeded random sequence of acquires, reconciles and refunds checks
 * decision by decision and level by level, on a clock the test drives
 * (the program uses the server's). Then the overrides every process reads,
 * the keys' expiry, and the failure modes: REDIS_FAILURE=open falls back
 * to the process's own buckets and says why, closed refuses, and both go
 * back to the shared buckets when the server is back.
 */
#include "redis_harness.h"

#include "client/ratelimit.h"
#include "client/ratelimit_redis.h"
#include "net/redis.h"

struct fixture {
    struct redis_server *srv;
    struct redis *r1, *r2;
    struct ratelimit *a, *b; /* on r1 and r2: two processes */
    struct ratelimit_limits lim;
};

static struct ratelimit *limiter(const struct ratelimit_limits *lim, struct redis *r, bool closed)
{
    char err[256] = "";
    struct ratelimit *rl = ratelimit_new(lim, err, sizeof err);
    if (rl == NULL)
        fail_msg("ratelimit_new: %s", err);
    if (r != NULL)
        ratelimit_use_redis(rl, r, closed, false);
    return rl;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    f->srv = redis_start();
    f->r1 = redis_client(f->srv, 0);
    f->r2 = redis_client(f->srv, 0);
    ratelimit_limits_init(&f->lim);
    f->lim.value[RATELIMIT_TENANT][RATELIMIT_REQUESTS] = 3;
    f->lim.value[RATELIMIT_USER][RATELIMIT_TOKENS] = 1000;
    f->lim.window_ms = 60000;
    f->a = limiter(&f->lim, f->r1, false);
    f->b = limiter(&f->lim, f->r2, false);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    ratelimit_free(f->a);
    ratelimit_free(f->b);
    redis_free(f->r1);
    redis_free(f->r2);
    redis_stop(f->srv);
    free(f);
    return 0;
}

static void test_two_processes_share(void **state)
{
    struct fixture *f = *state;
    struct ratelimit_decision d;
    int64_t t = 1000000;
    assert_int_equal(ratelimit_acquire(f->a, "acme", "bob", 10, t, &d), RATELIMIT_OK);
    assert_true(d.shared);
    assert_false(d.fell_back);
    assert_int_equal(ratelimit_acquire(f->b, "acme", "eve", 10, t, &d), RATELIMIT_OK);
    assert_int_equal(ratelimit_acquire(f->a, "acme", "bob", 10, t, &d), RATELIMIT_OK);
    /* The fourth request of the tenant, from the other process: a wait of
     * exactly one refill (60 s / 3). */
    assert_int_equal(ratelimit_acquire(f->b, "acme", "eve", 10, t, &d), RATELIMIT_WAIT);
    assert_int_equal(d.scope, RATELIMIT_TENANT);
    assert_int_equal(d.kind, RATELIMIT_REQUESTS);
    assert_int_equal(d.wait_ms, 20000);
    assert_int_equal(d.limit, 3);
    assert_non_null(strstr(d.reason, "TENANT_RATE_LIMIT_RPM=3"));
    /* Another tenant is not affected. */
    assert_int_equal(ratelimit_acquire(f->b, "other", "eve", 10, t, &d), RATELIMIT_OK);
    /* A millisecond short of the refill is still a wait; at it, room. */
    assert_int_equal(ratelimit_acquire(f->b, "acme", "eve", 10, t + 19999, &d), RATELIMIT_WAIT);
    assert_int_equal(d.wait_ms, 1);
    assert_int_equal(ratelimit_acquire(f->a, "acme", "eve", 10, t + 20000, &d), RATELIMIT_OK);

    /* Tokens: bob's bucket (1000 per window) refilled to full by t + 20 s
     * (20 s is 333 tokens); his reconcile pays 2000 more than estimated:
     * it is in debt, seen by the other process. */
    ratelimit_reconcile(f->a, true, "acme", "bob", 10, 2010, t + 20000);
    struct ratelimit_view v;
    ratelimit_snapshot(f->b, "acme", "bob", t + 20000, &v);
    assert_int_equal(v.b[RATELIMIT_USER][RATELIMIT_TOKENS].capacity, 1000);
    assert_int_equal(v.b[RATELIMIT_USER][RATELIMIT_TOKENS].level, -1000);
    assert_int_equal(v.b[RATELIMIT_TENANT][RATELIMIT_REQUESTS].level, 0);
    /* A need over the capacity never fits, whatever the level. */
    assert_int_equal(ratelimit_acquire(f->b, "acme", "bob", 1001, t + 20000, &d),
                     RATELIMIT_REFUSED);
    assert_int_equal(d.scope, RATELIMIT_USER);
    assert_non_null(strstr(d.reason, "can never fit"));
}

/* A small deterministic generator, so a failure can be replayed. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void test_same_decisions_as_in_process(void **state)
{
    struct fixture *f = *state;
    struct ratelimit_limits lim;
    ratelimit_limits_init(&lim);
    lim.value[RATELIMIT_GLOBAL][RATELIMIT_REQUESTS] = 7;
    lim.value[RATELIMIT_GLOBAL][RATELIMIT_TOKENS] = 5000;
    lim.value[RATELIMIT_TENANT][RATELIMIT_REQUESTS] = 4;
    lim.value[RATELIMIT_TENANT][RATELIMIT_TOKENS] = 3000;
    lim.value[RATELIMIT_USER][RATELIMIT_REQUESTS] = 3;
    lim.value[RATELIMIT_USER][RATELIMIT_TOKENS] = 1200;
    lim.window_ms = 10000;
    struct ratelimit *local = limiter(&lim, NULL, false);
    struct ratelimit *shared = limiter(&lim, f->r1, false);
    static const char *const tenants[] = {"t1", "t2"};
    static const char *const users[] = {"u1", "u2", "u3"};
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    int64_t now = 5000000;
    int admitted = 0, waits = 0;
    for (int i = 0; i < 600; i++) {
        now += (int64_t)(rng_next(&seed) % 900);
        const char *tn = tenants[rng_next(&seed) % 2];
        const char *us = rng_next(&seed) % 5 == 0 ? NULL : users[rng_next(&seed) % 3];
        long long need = (long long)(rng_next(&seed) % 700);
        struct ratelimit_decision dl, ds;
        enum ratelimit_result rl = ratelimit_acquire(local, tn, us, need, now, &dl);
        enum ratelimit_result rs = ratelimit_acquire(shared, tn, us, need, now, &ds);
        if (rl != rs || dl.wait_ms != ds.wait_ms || dl.scope != ds.scope || dl.kind != ds.kind ||
            dl.limit != ds.limit)
            fail_msg("step %d (%s/%s need %lld at %lld): local %d wait %lld scope %d kind %d, "
                     "shared %d wait %lld scope %d kind %d",
                     i, tn, us ? us : "-", need, (long long)now, rl, dl.wait_ms, dl.scope, dl.kind,
                     rs, ds.wait_ms, ds.scope, ds.kind);
        assert_string_equal(dl.reason, ds.reason);
        if (rl == RATELIMIT_OK) {
            admitted++;
            long long used = (long long)(rng_next(&seed) % 900);
            if (rng_next(&seed) % 7 == 0) {
                ratelimit_refund(local, false, tn, us, need, now);
                ratelimit_refund(shared, true, tn, us, need, now);
            } else {
                ratelimit_reconcile(local, false, tn, us, need, used, now);
                ratelimit_reconcile(shared, true, tn, us, need, used, now);
            }
        } else if (rl == RATELIMIT_WAIT) {
            waits++;
        }
        struct ratelimit_view vl, vs;
        ratelimit_snapshot(local, tn, us, now, &vl);
        ratelimit_snapshot(shared, tn, us, now, &vs);
        for (int s = 0; s < RATELIMIT_SCOPE__COUNT; s++)
            for (int k = 0; k < RATELIMIT_KIND__COUNT; k++)
                if (vl.b[s][k].level != vs.b[s][k].level ||
                    vl.b[s][k].capacity != vs.b[s][k].capacity)
                    fail_msg("step %d: bucket %d/%d local %lld/%lld shared %lld/%lld", i, s, k,
                             vl.b[s][k].level, vl.b[s][k].capacity, vs.b[s][k].level,
                             vs.b[s][k].capacity);
    }
    /* The sequence exercised both outcomes. */
    assert_true(admitted > 50);
    assert_true(waits > 50);
    ratelimit_free(local);
    ratelimit_free(shared);
}

static void test_shared_overrides(void **state)
{
    struct fixture *f = *state;
    char err[256] = "";
    struct ratelimit_decision d;
    int64_t t = 2000000;
    /* Set by one process, enforced by the other. */
    assert_int_equal(
        ratelimit_redis_override(f->r1, "acme", NULL, "rpm", 1, false, err, sizeof err),
        REDIS_ST_OK);
    assert_int_equal(ratelimit_acquire(f->b, "acme", NULL, 0, t, &d), RATELIMIT_OK);
    assert_int_equal(ratelimit_acquire(f->b, "acme", NULL, 0, t, &d), RATELIMIT_WAIT);
    assert_int_equal(d.limit, 1);
    assert_true(d.overridden);
    assert_non_null(strstr(d.reason, "memchat limits set"));
    /* 0 = unlimited for that key; clearing restores the configured 3. */
    assert_int_equal(
        ratelimit_redis_override(f->r2, "acme", NULL, "rpm", 0, false, err, sizeof err),
        REDIS_ST_OK);
    assert_int_equal(ratelimit_acquire(f->a, "acme", NULL, 0, t, &d), RATELIMIT_OK);
    assert_int_equal(ratelimit_redis_override(f->r2, "acme", NULL, "rpm", 0, true, err, sizeof err),
                     REDIS_ST_OK);
    struct ratelimit_view v;
    ratelimit_snapshot(f->a, "acme", NULL, t, &v);
    assert_int_equal(v.b[RATELIMIT_TENANT][RATELIMIT_REQUESTS].capacity, 3);
    assert_false(v.b[RATELIMIT_TENANT][RATELIMIT_REQUESTS].overridden);
    /* A user's override, for that user only. */
    assert_int_equal(
        ratelimit_redis_override(f->r1, "acme", "bob", "tpm", 50, false, err, sizeof err),
        REDIS_ST_OK);
    assert_int_equal(ratelimit_acquire(f->b, "acme", "bob", 51, t, &d), RATELIMIT_REFUSED);
    assert_true(d.overridden);
    ratelimit_snapshot(f->b, "acme", "eve", t, &v);
    assert_int_equal(v.b[RATELIMIT_USER][RATELIMIT_TOKENS].capacity, 1000);
}

static void test_keys_expire_when_full(void **state)
{
    struct fixture *f = *state;
    struct ratelimit_decision d;
    assert_int_equal(ratelimit_acquire(f->a, "idle", NULL, 0, 3000000, &d), RATELIMIT_OK);
    char err[256] = "";
    const char *argv[2] = {"PTTL", "t:rl:t:idle"};
    struct redis_args a = {2, argv, NULL};
    redisReply *rep = NULL;
    assert_int_equal(redis_command(f->r1, &a, &rep, err, sizeof err), REDIS_ST_OK);
    /* Full again one refill (60 s / 3) later: the key lives that long. */
    assert_true(rep->integer > 0 && rep->integer <= 20001);
    freeReplyObject(rep);
}

static void test_fallback_and_recovery(void **state)
{
    struct fixture *f = *state;
    struct ratelimit *closed = limiter(&f->lim, f->r2, true);
    struct ratelimit_decision d;
    int64_t t = 4000000;
    char where[64];
    snprintf(where, sizeof where, "127.0.0.1:%d", f->srv->port);
    assert_int_equal(ratelimit_acquire(f->a, "down", NULL, 0, t, &d), RATELIMIT_OK);
    assert_true(d.shared);

    redis_kill(f->srv);
    /* open: this process's own buckets decide, and say so. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ratelimit_acquire(f->a, "down", NULL, 0, t, &d), RATELIMIT_OK);
        assert_true(d.fell_back);
        assert_false(d.shared);
        assert_non_null(strstr(d.fallback_reason, where));
    }
    assert_int_equal(ratelimit_acquire(f->a, "down", NULL, 0, t, &d), RATELIMIT_WAIT);
    assert_true(d.fell_back);
    /* closed: refused, naming the server and the setting. */
    assert_int_equal(ratelimit_acquire(closed, "down", NULL, 0, t, &d), RATELIMIT_UNAVAILABLE);
    assert_non_null(strstr(d.reason, where));
    assert_non_null(strstr(d.reason, "REDIS_FAILURE=closed"));
    /* A settlement meant for the shared buckets is dropped, not crashed on. */
    ratelimit_reconcile(f->a, true, "down", NULL, 10, 20, t);

    f->srv = redis_restart(f->srv);
    /* The new server is empty: the shared buckets start full again. */
    assert_int_equal(ratelimit_acquire(f->a, "down", NULL, 0, t, &d), RATELIMIT_OK);
    assert_true(d.shared);
    assert_false(d.fell_back);
    assert_int_equal(ratelimit_acquire(closed, "down", NULL, 0, t, &d), RATELIMIT_OK);
    assert_true(d.shared);
    ratelimit_free(closed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_two_processes_share, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_decisions_as_in_process, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_overrides, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_expire_when_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fallback_and_recovery, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
