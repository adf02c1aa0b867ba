/*
 * Tests of the rollout figures (rollout/figures.c) on a known fixture of
 * turn_metrics and ledger rows, written with the store's own insert
 * functions into a fresh data file. Every expected value is worked out by
 * hand in the comments from the rows (the percentiles also with Python's
 * statistics.quantiles(method="inclusive"), the same linear interpolation),
 * and the cases prove each figure's definition: which rows count (memory
 * on, status ok, stored known, recalled > 0, multi-turn conversations),
 * the window's edges, the targets as strict bounds, the minimum samples
 * below which a figure says NO_DATA, a tenant with only memory-off turns,
 * and the basis of the cost comparison (USD when priced, else prompt
 * tokens). USD amounts are binary fractions so every mean is exact.
 */
#include "testutil.h"

#include <math.h>

#include <sqlite3.h>

#include "rollout/figures.h"
#include "store/db.h"
#include "store/ledger.h"
#include "store/metrics.h"

#define HOUR_MS 3600000LL
#define DAY_MS  86400000LL
/* 2024-03-10T12:00:00Z, the "now" of every case. */
#define NOW_MS   1710072000000LL
#define SINCE_MS (NOW_MS - 7 * DAY_MS)
/* A time inside the window, and one before it. */
#define IN_MS  (NOW_MS - DAY_MS)
#define OLD_MS (NOW_MS - 8 * DAY_MS)
/* NULL for a latency or a relevance. */
#define NONE (-1.0)

struct fixture {
    char *dir;
    struct db *db;
    int seq; /* makes turn ids unique */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->dir = tu_mkdtemp();
    char path[4200];
    snprintf(path, sizeof path, "%s/memchat.db", f->dir);
    enum db_error why;
    char err[512];
    f->db = db_open(path, &why, err, sizeof err);
    if (f->db == NULL)
        fail_msg("db_open: %s", err);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    db_close(f->db);
    tu_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* One turn_metrics row. stored: 1, 0, or -1 (NULL); recalled -1 is NULL. */
static void turn(struct fixture *f, const char *tenant, int64_t ts, bool memory, const char *status,
                 double retrieve, double total, int stored, long long recalled, double relevance)
{
    char id[32];
    snprintf(id, sizeof id, "turn-%d", ++f->seq);
    struct turn_metrics m = {
        .turn = id,
        .ts_ms = ts,
        .tenant = tenant,
        .user = "u",
        .agent = "assistant",
        .provider = "offline",
        .model = "offline",
        .memory = memory,
        .status = status,
        .prompt_tokens = -1,
        .completion_tokens = -1,
        .cost_usd = -1,
        .store = stored == 1   ? METRICS_STORE_OK
                 : stored == 0 ? METRICS_STORE_FAILED
                               : METRICS_STORE_UNKNOWN,
        .store_ms = -1,
        .rollout = "env",
        .recalled = recalled,
        .relevance = relevance < 0 ? (double)NAN : relevance,
    };
    for (int s = 0; s < MC_STAGE__COUNT; s++)
        m.latency_ms[s] = -1;
    m.latency_ms[MC_STAGE_RETRIEVE] = retrieve;
    m.latency_ms[MC_STAGE_TOTAL] = total;
    char err[512] = "";
    if (metrics_insert_turn(f->db, &m, err, sizeof err) != 0)
        fail_msg("metrics_insert_turn: %s", err);
}

/* A memory-on ok turn with its retrieval and total latency. */
static void on_ok(struct fixture *f, const char *tenant, double retrieve, double total, int stored,
                  long long recalled, double relevance)
{
    turn(f, tenant, IN_MS, true, "ok", retrieve, total, stored, recalled, relevance);
}

/* A memory-off ok turn with its total latency. */
static void off_ok(struct fixture *f, const char *tenant, double total)
{
    turn(f, tenant, IN_MS, false, "ok", NONE, total, -1, -1, NONE);
}

/* One ledger row; usd < 0 is NULL (no price), prompt < 0 NULL. */
static void ledger(struct fixture *f, const char *tenant, int64_t ts, bool memory,
                   const char *status, const char *conv, double usd, long long prompt)
{
    char id[32];
    snprintf(id, sizeof id, "ledger-%d", ++f->seq);
    struct ledger_row r = {
        .turn = id,
        .ts_ms = ts,
        .tenant = tenant,
        .user = "u",
        .agent = "assistant",
        .provider = "openai",
        .model = "gpt-4o",
        .prompt_tokens = prompt,
        .completion_tokens = 10,
        .usd = usd,
        .latency_ms = 1,
        .memory = memory,
        .status = status,
        .conversation = conv,
    };
    char err[512] = "";
    if (ledger_insert(f->db, &r, err, sizeof err) != 0)
        fail_msg("ledger_insert: %s", err);
}

/* The fixture most cases read:
 *
 * acme, in the window:
 *   10 memory-on ok turns, retrieve 10 20 30 40 50 60 70 80 90 200 ms,
 *      total 300 310 ... 390 ms; stored 1 for eight, 0 for one, NULL for
 *      one; six of them recalled 2 memories with relevance 0.9 0.85 0.95
 *      0.8 0.7 1.0, the other four recalled 0;
 *    1 memory-on error turn: retrieve 5000, total 6000, stored NULL;
 *    4 memory-off ok turns, total 100 150 200 1000 (retrieve 7777 on one,
 *      which memory-off must keep out of figure 1);
 *    1 memory-off error turn, total 5;
 * acme, before the window: 1 memory-on ok turn, retrieve 9999, total
 *    9999, stored 0, recalled 1 with relevance 0.0.
 * acme's ledger: conversation A (memory on): three ok rows in the window,
 *    usd 0.25 0.5 0.25, prompt 100 200 300, and one row before it (usd
 *    100); B (memory off): ok rows usd 0.5 1.0 0.75, prompt 400 500 600;
 *    C (memory on): one row (usd 8: a one-turn conversation); D (memory
 *    off): one ok row usd 0.25 prompt 50 and one error row with no price;
 *    and a memory-on ok row outside any conversation (usd 16).
 *
 * globex, in the window: 6 memory-off ok turns, total 100 ms each; its
 *    ledger: conversation G (memory off), three ok rows of 0.5.
 */
static void load_fixture(struct fixture *f)
{
    static const double rel[] = {0.9, 0.85, 0.95, 0.8, 0.7, 1.0};
    for (int i = 0; i < 10; i++) {
        double retrieve = i < 9 ? 10.0 * (i + 1) : 200.0;
        int stored = i < 8 ? 1 : i == 8 ? 0 : -1;
        on_ok(f, "acme", retrieve, 300.0 + 10 * i, stored, i < 6 ? 2 : 0, i < 6 ? rel[i] : NONE);
    }
    turn(f, "acme", IN_MS, true, "error:provider", 5000, 6000, -1, 0, NONE);
    off_ok(f, "acme", 100);
    off_ok(f, "acme", 150);
    turn(f, "acme", IN_MS, false, "ok", 7777, 200, -1, -1, NONE);
    off_ok(f, "acme", 1000);
    turn(f, "acme", IN_MS, false, "error:network", NONE, 5, -1, -1, NONE);
    turn(f, "acme", OLD_MS, true, "ok", 9999, 9999, 0, 1, 0.0);

    ledger(f, "acme", IN_MS, true, "ok", "A", 0.25, 100);
    ledger(f, "acme", IN_MS, true, "ok", "A", 0.5, 200);
    ledger(f, "acme", IN_MS, true, "ok", "A", 0.25, 300);
    ledger(f, "acme", OLD_MS, true, "ok", "A", 100, 10000);
    ledger(f, "acme", IN_MS, false, "ok", "B", 0.5, 400);
    ledger(f, "acme", IN_MS, false, "ok", "B", 1.0, 500);
    ledger(f, "acme", IN_MS, false, "ok", "B", 0.75, 600);
    ledger(f, "acme", IN_MS, true, "ok", "C", 8, 9000);
    ledger(f, "acme", IN_MS, false, "ok", "D", 0.25, 50);
    ledger(f, "acme", IN_MS, false, "error:provider", "D", NONE, -1);
    ledger(f, "acme", IN_MS, true, "ok", NULL, 16, 9000);

    for (int i = 0; i < 6; i++)
        off_ok(f, "globex", 100);
    for (int i = 0; i < 3; i++)
        ledger(f, "globex", IN_MS, false, "ok", "G", 0.5, 100);
}

static const struct tenant_figures *must_find(const struct figures *fs, const char *tenant)
{
    const struct tenant_figures *t = figures_find(fs, tenant);
    if (t == NULL)
        fail_msg("no figures for tenant %s", tenant);
    return t;
}

static void compute(struct fixture *f, const char *tenant, int64_t since, struct figures *fs)
{
    char err[512] = "";
    if (figures_compute(f->db, tenant, since, NOW_MS, fs, err, sizeof err) != 0)
        fail_msg("figures_compute: %s", err);
}

/* got equals want up to rounding (1e-9); says both when not. */
#define assert_near(got, want) near_((got), (want), #got, __LINE__)
static void near_(double got, double want, const char *what, int line)
{
    if (!(fabs(got - want) <= 1e-9))
        fail_msg("line %d: %s = %.12g, want %.12g", line, what, got, want);
}

/* acme's five figures over the 7-day window, each worked out from the
 * fixture's rows. */
static void the_fixture_gives_the_figures_worked_out_by_hand(void **state)
{
    struct fixture *f = *state;
    load_fixture(f);
    struct figures fs;
    compute(f, NULL, SINCE_MS, &fs);
    assert_int_equal(fs.n, 2);
    assert_string_equal(fs.v[0].tenant, "acme"); /* sorted */
    assert_string_equal(fs.v[1].tenant, "globex");
    const struct tenant_figures *t = must_find(&fs, "acme");

    /* Turns in the window: 10 + 1 on, 4 + 1 off (the old one is out). */
    assert_int_equal(t->turns, 16);
    assert_int_equal(t->turns_on, 11);
    assert_int_equal(t->turns_off, 5);

    /* 1. The ten on-ok retrievals (the error turn's 5000, the off turn's
     * 7777 and the old 9999 excluded). Sorted 10..90, 200: p50 at
     * position 0.5*9 = 4.5 -> 50 + 0.5*(60-50) = 55; p95 at 0.95*9 = 8.55
     * -> 90 + 0.55*(200-90) = 150.5 >= 100: not met. */
    assert_int_equal(t->retrieval.n, 10);
    assert_near(t->retrieval.p50_ms, 55.0);
    assert_near(t->retrieval.p95_ms, 150.5);
    assert_int_equal(t->retrieval.state, FIGURE_NOT_MET);

    /* 2. Memory-on turns with a known outcome: 8 stored + 1 failed = 9
     * (the NULL one and the error turn's NULL excluded): 8/9 < 0.99. */
    assert_int_equal(t->storage.n, 9);
    assert_int_equal(t->storage.stored, 8);
    assert_near(t->storage.rate, 8.0 / 9.0);
    assert_int_equal(t->storage.state, FIGURE_NOT_MET);

    /* 3. The six turns that recalled: (0.9 + 0.85 + 0.95 + 0.8 + 0.7 +
     * 1.0) / 6 = 5.2 / 6 = 0.8667 > 0.8: met. */
    assert_int_equal(t->relevance.n, 6);
    assert_near(t->relevance.mean, 5.2 / 6.0);
    assert_int_equal(t->relevance.state, FIGURE_MET);

    /* 4. Median total of on-ok (300..390: (340 + 350) / 2 = 345) minus
     * off-ok (100 150 200 1000: (150 + 200) / 2 = 175) = 170 < 200: met.
     * The error turns (6000, 5) are out. */
    assert_int_equal(t->added.n_on, 10);
    assert_int_equal(t->added.n_off, 4);
    assert_near(t->added.on_ms, 345.0);
    assert_near(t->added.off_ms, 175.0);
    assert_near(t->added.added_ms, 170.0);
    assert_int_equal(t->added.state, FIGURE_MET);

    /* 5. Multi-turn conversations, ok rows in the window: on = A's three
     * (C has one row; the row outside a conversation and A's old row are
     * out): usd (0.25 + 0.5 + 0.25) / 3 = 1/3, prompt 600 / 3 = 200. off =
     * B's three and D's ok row (D has two rows, one an error): usd (0.5 +
     * 1.0 + 0.75 + 0.25) / 4 = 0.625, prompt 1550 / 4 = 387.5. Priced on
     * both sides with a nonzero total: judged on USD, 1/3 < 0.625: met. */
    assert_int_equal(t->cost.n_on, 3);
    assert_int_equal(t->cost.n_off, 4);
    assert_int_equal(t->cost.n_usd_on, 3);
    assert_int_equal(t->cost.n_usd_off, 4);
    assert_near(t->cost.usd_on, 1.0 / 3.0);
    assert_near(t->cost.usd_off, 0.625);
    assert_near(t->cost.tokens_on, 200.0);
    assert_near(t->cost.tokens_off, 387.5);
    assert_int_equal(t->cost.basis, FIGURE_BASIS_USD);
    assert_int_equal(t->cost.state, FIGURE_MET);
    figures_free(&fs);
    assert_null(fs.v);
    assert_int_equal(fs.n, 0);
}

/* globex has only memory-off turns: every memory-on figure has no
 * samples (NO_DATA, values 0), the added latency has no "on" side and the
 * cost comparison no memory-on rows, so all five are NO_DATA while its
 * turn counts are still reported. */
static void a_tenant_with_only_memory_off_turns_has_no_data(void **state)
{
    struct fixture *f = *state;
    load_fixture(f);
    struct figures fs;
    compute(f, NULL, SINCE_MS, &fs);
    const struct tenant_figures *t = must_find(&fs, "globex");
    assert_int_equal(t->turns, 6);
    assert_int_equal(t->turns_on, 0);
    assert_int_equal(t->turns_off, 6);
    assert_int_equal(t->retrieval.n, 0);
    assert_int_equal(t->retrieval.state, FIGURE_NO_DATA);
    assert_int_equal(t->storage.n, 0);
    assert_int_equal(t->storage.state, FIGURE_NO_DATA);
    assert_int_equal(t->relevance.n, 0);
    assert_int_equal(t->relevance.state, FIGURE_NO_DATA);
    assert_int_equal(t->added.n_on, 0);
    assert_int_equal(t->added.n_off, 6);
    assert_near(t->added.off_ms, 100.0);
    assert_int_equal(t->added.state, FIGURE_NO_DATA);
    assert_int_equal(t->cost.n_on, 0);
    assert_int_equal(t->cost.n_off, 3);
    assert_int_equal(t->cost.basis, FIGURE_BASIS_NONE);
    assert_int_equal(t->cost.state, FIGURE_NO_DATA);
    figures_free(&fs);
}

/* The window: with "all" (INT64_MIN) acme's old turn and ledger row come
 * in, and change exactly the figures they touch; a window of the last
 * hour holds nothing, so no tenant is listed. */
static void rows_outside_the_window_are_excluded(void **state)
{
    struct fixture *f = *state;
    load_fixture(f);
    struct figures fs;
    compute(f, NULL, INT64_MIN, &fs);
    const struct tenant_figures *t = must_find(&fs, "acme");
    assert_int_equal(t->turns, 17);
    assert_int_equal(t->turns_on, 12);
    /* Retrievals gain 9999: 11 values, p50 at 5 -> 60; p95 at 9.5 ->
     * 200 + 0.5*(9999-200) = 5099.5. */
    assert_int_equal(t->retrieval.n, 11);
    assert_near(t->retrieval.p50_ms, 60.0);
    assert_near(t->retrieval.p95_ms, 5099.5);
    /* Storage gains a failure: 8 / 10. Relevance gains 0.0: 5.2 / 7. */
    assert_int_equal(t->storage.n, 10);
    assert_near(t->storage.rate, 0.8);
    assert_int_equal(t->relevance.n, 7);
    assert_near(t->relevance.mean, 5.2 / 7.0);
    assert_int_equal(t->relevance.state, FIGURE_NOT_MET);
    /* On-ok totals gain 9999: 11 values, median the 6th = 350. */
    assert_near(t->added.on_ms, 350.0);
    /* A's old row joins the on side: (1 + 100) / 4 usd, (600 + 10000) / 4
     * prompt tokens; now memory on costs more: not met. */
    assert_int_equal(t->cost.n_on, 4);
    assert_near(t->cost.usd_on, 101.0 / 4.0);
    assert_near(t->cost.tokens_on, 2650.0);
    assert_int_equal(t->cost.state, FIGURE_NOT_MET);
    figures_free(&fs);

    compute(f, NULL, NOW_MS - HOUR_MS, &fs);
    assert_int_equal(fs.n, 0);
    figures_free(&fs);
}

/* The window's edges are both inside: a turn at since_ms and one at
 * now_ms count, one a millisecond before since_ms or after now_ms does
 * not. */
static void the_window_includes_both_edges(void **state)
{
    struct fixture *f = *state;
    turn(f, "edge", SINCE_MS - 1, false, "ok", NONE, 1, -1, -1, NONE);
    turn(f, "edge", SINCE_MS, false, "ok", NONE, 1, -1, -1, NONE);
    turn(f, "edge", NOW_MS, true, "ok", 1, 1, 1, 0, NONE);
    turn(f, "edge", NOW_MS + 1, true, "ok", 1, 1, 1, 0, NONE);
    struct figures fs;
    compute(f, NULL, SINCE_MS, &fs);
    assert_int_equal(fs.n, 1);
    assert_int_equal(fs.v[0].turns, 2);
    assert_int_equal(fs.v[0].turns_on, 1);
    assert_int_equal(fs.v[0].turns_off, 1);
    figures_free(&fs);
}

/* Below the minima a figure says NO_DATA even when its value would meet
 * the target: 4 retrievals of 1..4 ms (p95 3.85 < 100), 4 stores all
 * successful, 4 relevances of 1.0, 2 memory-off turns against 4 on, and
 * two priced rows per side. At the minimum (a fifth turn, a third off
 * turn and a third row per side) each figure gives its verdict. */
static void figures_below_the_minimum_samples_say_no_data(void **state)
{
    struct fixture *f = *state;
    for (int i = 1; i <= 4; i++)
        on_ok(f, "initech", i, 100, 1, 1, 1.0);
    off_ok(f, "initech", 100);
    off_ok(f, "initech", 100);
    for (int i = 0; i < 2; i++) {
        ledger(f, "initech", IN_MS, true, "ok", "on", 0.25, 10);
        ledger(f, "initech", IN_MS, false, "ok", "off", 0.5, 20);
    }
    struct figures fs;
    compute(f, "initech", SINCE_MS, &fs);
    assert_int_equal(fs.n, 1);
    const struct tenant_figures *t = &fs.v[0];
    assert_int_equal(t->retrieval.n, 4);
    assert_near(t->retrieval.p95_ms, 3.85);
    assert_int_equal(t->retrieval.state, FIGURE_NO_DATA);
    assert_int_equal(t->storage.state, FIGURE_NO_DATA);
    assert_int_equal(t->relevance.state, FIGURE_NO_DATA);
    assert_int_equal(t->added.state, FIGURE_NO_DATA);
    assert_int_equal(t->cost.state, FIGURE_NO_DATA);
    figures_free(&fs);

    on_ok(f, "initech", 5, 100, 1, 1, 1.0);
    off_ok(f, "initech", 100);
    ledger(f, "initech", IN_MS, true, "ok", "on", 0.25, 10);
    ledger(f, "initech", IN_MS, false, "ok", "off", 0.5, 20);
    compute(f, "initech", SINCE_MS, &fs);
    t = &fs.v[0];
    assert_int_equal(t->retrieval.n, FIGURES_MIN_TURNS);
    assert_int_equal(t->retrieval.state, FIGURE_MET);
    assert_int_equal(t->storage.state, FIGURE_MET);
    assert_int_equal(t->relevance.state, FIGURE_MET);
    assert_int_equal(t->added.n_off, FIGURES_MIN_SIDE);
    assert_int_equal(t->added.state, FIGURE_MET); /* 100 - 100 = 0 */
    assert_int_equal(t->cost.state, FIGURE_MET);  /* 0.25 < 0.5 */
    figures_free(&fs);
}

/* The targets are strict bounds: p95 of 10 20 30 40 99 is at 0.95*4 = 3.8 ->
 * 40 + 0.8*59 = 87.2 < 100 (met); 5 of 5 stored is 1.0 > 0.99 (met);
 * relevance (0.75 + 0.875 + 3*0.8125) / 5 = 4.0625 / 5 = 0.8125 > 0.8
 * (met); an added latency of exactly 200 (400 against 200) is not < 200
 * (not met). */
static void targets_are_strict_bounds(void **state)
{
    struct fixture *f = *state;
    static const double retrieve[] = {10, 20, 30, 40, 99};
    static const double rel[] = {0.75, 0.875, 0.8125, 0.8125, 0.8125};
    for (int i = 0; i < 5; i++)
        on_ok(f, "umbrella", retrieve[i], 400, 1, 3, rel[i]);
    for (int i = 0; i < 3; i++)
        off_ok(f, "umbrella", 200);
    struct figures fs;
    compute(f, NULL, SINCE_MS, &fs);
    const struct tenant_figures *t = must_find(&fs, "umbrella");
    assert_near(t->retrieval.p95_ms, 87.2);
    assert_int_equal(t->retrieval.state, FIGURE_MET);
    assert_near(t->storage.rate, 1.0);
    assert_int_equal(t->storage.state, FIGURE_MET);
    assert_near(t->relevance.mean, 0.8125);
    assert_int_equal(t->relevance.state, FIGURE_MET);
    assert_near(t->added.added_ms, 200.0);
    assert_int_equal(t->added.state, FIGURE_NOT_MET);
    figures_free(&fs);

    /* At the targets themselves: five retrievals of exactly 100 ms give a
     * p95 of 100, not < 100; 99 stores of 100 are 0.99, not > 0.99. (One
     * transaction, so the hundred inserts are one commit.) */
    char err[512] = "";
    assert_int_equal(db_begin(f->db, err, sizeof err), 0);
    for (int i = 0; i < 100; i++)
        on_ok(f, "boundary", i < 5 ? 100 : NONE, 100, i < 99 ? 1 : 0, 0, NONE);
    assert_int_equal(db_commit(f->db, err, sizeof err), 0);
    compute(f, "boundary", SINCE_MS, &fs);
    t = &fs.v[0];
    assert_int_equal(t->retrieval.n, 5);
    assert_near(t->retrieval.p95_ms, 100.0);
    assert_int_equal(t->retrieval.state, FIGURE_NOT_MET);
    assert_int_equal(t->storage.n, 100);
    assert_near(t->storage.rate, 0.99);
    assert_int_equal(t->storage.state, FIGURE_NOT_MET);
    figures_free(&fs);
}

/* Cost falls back to prompt tokens when USD cannot judge: the offline
 * provider's rows cost 0 on both sides (a zero total), so 50 against 80
 * prompt tokens decides (met); rows without a price (usd NULL) on one
 * side also leave tokens to decide, here 90 against 80 (not met). A
 * tenant with ledger rows but no turn_metrics rows is listed too. */
static void cost_is_judged_on_tokens_when_usd_cannot_say(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < 3; i++) {
        ledger(f, "free", IN_MS, true, "ok", "c1", 0, 50);
        ledger(f, "free", IN_MS, false, "ok", "c2", 0, 80);
        ledger(f, "unpriced", IN_MS, true, "ok", "c3", NONE, 90);
        ledger(f, "unpriced", IN_MS, false, "ok", "c4", 0.5, 80);
    }
    struct figures fs;
    compute(f, NULL, SINCE_MS, &fs);
    assert_int_equal(fs.n, 2);
    const struct tenant_figures *t = must_find(&fs, "free");
    assert_int_equal(t->turns, 0);
    assert_int_equal(t->cost.basis, FIGURE_BASIS_TOKENS);
    assert_near(t->cost.usd_on, 0.0);
    assert_near(t->cost.tokens_on, 50.0);
    assert_near(t->cost.tokens_off, 80.0);
    assert_int_equal(t->cost.state, FIGURE_MET);
    t = must_find(&fs, "unpriced");
    assert_int_equal(t->cost.n_usd_on, 0);
    assert_int_equal(t->cost.n_usd_off, 3);
    assert_int_equal(t->cost.basis, FIGURE_BASIS_TOKENS);
    assert_int_equal(t->cost.state, FIGURE_NOT_MET);
    figures_free(&fs);
}

/* One tenant asked for: only its rows (globex's, not acme's), and a tenant without rows
 * still gets an entry, all NO_DATA; an id that is not an id is refused;
 * no data file means no tenants. */
static void one_tenant_only_and_unknown_tenants(void **state)
{
    struct fixture *f = *state;
    load_fixture(f);
    struct figures fs;
    compute(f, "globex", SINCE_MS, &fs);
    assert_int_equal(fs.n, 1);
    assert_string_equal(fs.v[0].tenant, "globex");
    assert_int_equal(fs.v[0].turns, 6);
    assert_int_equal(fs.v[0].cost.n_off, 3);
    figures_free(&fs);
    compute(f, "nobody", SINCE_MS, &fs);
    assert_int_equal(fs.n, 1);
    assert_int_equal(fs.v[0].turns, 0);
    assert_int_equal(fs.v[0].retrieval.state, FIGURE_NO_DATA);
    assert_int_equal(fs.v[0].cost.state, FIGURE_NO_DATA);
    figures_free(&fs);
    char err[512] = "";
    assert_int_equal(figures_compute(f->db, "not an id", SINCE_MS, NOW_MS, &fs, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "not a valid id"));
    figures_free(&fs);
    assert_int_equal(figures_compute(NULL, NULL, SINCE_MS, NOW_MS, &fs, err, sizeof err), 0);
    assert_int_equal(fs.n, 0);
    figures_free(&fs);
}

/* A read that fails (the table is gone) is an error naming the file. */
static void a_read_error_names_the_data_file(void **state)
{
    struct fixture *f = *state;
    load_fixture(f);
    assert_int_equal(sqlite3_exec(db_handle(f->db), "DROP TABLE ledger", NULL, NULL, NULL), 0);
    struct figures fs;
    char err[512] = "";
    assert_int_equal(figures_compute(f->db, NULL, SINCE_MS, NOW_MS, &fs, err, sizeof err), -1);
    assert_non_null(strstr(err, db_path(f->db)));
    assert_non_null(strstr(err, "ledger"));
    figures_free(&fs);
}

/* The quantile is linear between closest ranks (NumPy's default): odd and
 * even medians, p95 of 1..20 at position 18.05 -> 19.05, the ends, and 0
 * for no values. */
static void quantiles_interpolate_linearly(void **state)
{
    (void)state;
    double a[] = {3, 1, 2};
    assert_near(figures_quantile(a, 3, 0.5), 2.0);
    double b[] = {4, 1, 3, 2};
    assert_near(figures_quantile(b, 4, 0.5), 2.5);
    double c[20];
    for (int i = 0; i < 20; i++)
        c[i] = 20 - i;
    assert_near(figures_quantile(c, 20, 0.95), 19.05);
    assert_near(figures_quantile(c, 20, 0.0), 1.0);
    assert_near(figures_quantile(c, 20, 1.0), 20.0);
    double d[] = {7};
    assert_near(figures_quantile(d, 1, 0.95), 7.0);
    assert_near(figures_quantile(NULL, 0, 0.5), 0.0);
    assert_string_equal(figures_state_name(FIGURE_MET), "met");
    assert_string_equal(figures_state_name(FIGURE_NOT_MET), "not_met");
    assert_string_equal(figures_state_name(FIGURE_NO_DATA), "no_data");
    assert_string_equal(figures_basis_name(FIGURE_BASIS_TOKENS), "prompt_tokens");
    assert_null(figures_basis_name(FIGURE_BASIS_NONE));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(the_fixture_gives_the_figures_worked_out_by_hand, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_tenant_with_only_memory_off_turns_has_no_data, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(rows_outside_the_window_are_excluded, setup, teardown),
        cmocka_unit_test_setup_teardown(the_window_includes_both_edges, setup, teardown),
        cmocka_unit_test_setup_teardown(figures_below_the_minimum_samples_say_no_data, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(targets_are_strict_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(cost_is_judged_on_tokens_when_usd_cannot_say, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(one_tenant_only_and_unknown_tenants, setup, teardown),
        cmocka_unit_test_setup_teardown(a_read_error_names_the_data_file, setup, teardown),
        cmocka_unit_test(quantiles_interpolate_linearly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
