/*
 * Tests of client/budget: calendar periods in UTC on edge dates (leap
 * days, year ends, the ISO week's Sunday-to-Monday turn, before 1970) and
 * against the C library's timegm over two centuries; reserve, settle and
 * release arithmetic (exact in nano-dollars); refusals naming the budget,
 * the amounts and the reset time; the streamed, retried, cancelled, cached
 * and never-sent flows; models without a price; overrides; the loader of
 * spent amounts (and failing closed); period rollover; the bound on the
 * key table; and threads reserving at once never letting spent + reserved
 * pass a limit. Dates are built with timegm, an oracle independent of the
 * module's own calendar code.
 */
#include "testutil.h"

#include "client/budget.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "config/config.h"

/* Unix ms of a UTC date and time, by the C library. */
static int64_t utc(int y, int mo, int d, int h, int mi, int s, int ms)
{
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    return (int64_t)timegm(&tm) * 1000 + ms;
}

static void check_bounds(enum budget_period p, int64_t now, int64_t want_start, int64_t want_end)
{
    int64_t s = 0, e = 0;
    assert_int_equal(budget_period_bounds(p, now, &s, &e), 0);
    assert_int_equal(s, want_start);
    assert_int_equal(e, want_end);
}

static struct budget *new_budget(double tenant_usd, double user_usd, enum budget_period p)
{
    struct budget_limits lim;
    budget_limits_init(&lim);
    lim.usd[BUDGET_TENANT] = tenant_usd;
    lim.usd[BUDGET_USER] = user_usd;
    lim.period = p;
    char err[256] = "";
    struct budget *b = budget_new(&lim, err, sizeof err);
    if (b == NULL)
        fail_msg("budget_new: %s", err);
    return b;
}

/* Amounts in views are nano-dollars turned into doubles: compare to a
 * hundredth of a nano-dollar. */
static void assert_usd(double got, double want)
{
    if (fabs(got - want) > 1e-11)
        fail_msg("got %.12f USD, want %.12f", got, want);
}

/* Edge dates, each worked out by hand: 2024-02-29 (a leap day, a
 * Thursday: its ISO week starts Monday 02-26, its month has 29 days);
 * 2025-12-31T23:59:59.999Z (a Wednesday: its week runs into 2026, its day
 * and month end at the new year); Sunday 2025-03-02 23:59 belongs to the
 * week of Monday 02-24, and Monday 03-03 00:00 starts the next; 2021-01-01,
 * a Friday, is in the week of Monday 2020-12-28; 2100 is not a leap year,
 * 2000 is; 1970-01-01 (a Thursday) is in the week of 1969-12-29, and the
 * last ms of 1969 is in 1969's last day (floor, not truncation). */
static void periods_are_exact_on_edge_dates(void **state)
{
    (void)state;
    int64_t t = utc(2024, 2, 29, 12, 0, 0, 0);
    check_bounds(BUDGET_DAY, t, utc(2024, 2, 29, 0, 0, 0, 0), utc(2024, 3, 1, 0, 0, 0, 0));
    check_bounds(BUDGET_WEEK, t, utc(2024, 2, 26, 0, 0, 0, 0), utc(2024, 3, 4, 0, 0, 0, 0));
    check_bounds(BUDGET_MONTH, t, utc(2024, 2, 1, 0, 0, 0, 0), utc(2024, 3, 1, 0, 0, 0, 0));

    t = utc(2025, 12, 31, 23, 59, 59, 999);
    check_bounds(BUDGET_DAY, t, utc(2025, 12, 31, 0, 0, 0, 0), utc(2026, 1, 1, 0, 0, 0, 0));
    check_bounds(BUDGET_WEEK, t, utc(2025, 12, 29, 0, 0, 0, 0), utc(2026, 1, 5, 0, 0, 0, 0));
    check_bounds(BUDGET_MONTH, t, utc(2025, 12, 1, 0, 0, 0, 0), utc(2026, 1, 1, 0, 0, 0, 0));
    check_bounds(BUDGET_MONTH, t + 1, utc(2026, 1, 1, 0, 0, 0, 0), utc(2026, 2, 1, 0, 0, 0, 0));

    check_bounds(BUDGET_WEEK, utc(2025, 3, 2, 23, 59, 0, 0), utc(2025, 2, 24, 0, 0, 0, 0),
                 utc(2025, 3, 3, 0, 0, 0, 0));
    check_bounds(BUDGET_WEEK, utc(2025, 3, 2, 23, 59, 59, 999), utc(2025, 2, 24, 0, 0, 0, 0),
                 utc(2025, 3, 3, 0, 0, 0, 0));
    check_bounds(BUDGET_WEEK, utc(2025, 3, 3, 0, 0, 0, 0), utc(2025, 3, 3, 0, 0, 0, 0),
                 utc(2025, 3, 10, 0, 0, 0, 0));
    check_bounds(BUDGET_WEEK, utc(2021, 1, 1, 8, 0, 0, 0), utc(2020, 12, 28, 0, 0, 0, 0),
                 utc(2021, 1, 4, 0, 0, 0, 0));

    check_bounds(BUDGET_MONTH, utc(2100, 2, 28, 1, 0, 0, 0), utc(2100, 2, 1, 0, 0, 0, 0),
                 utc(2100, 3, 1, 0, 0, 0, 0));
    check_bounds(BUDGET_DAY, utc(2100, 2, 28, 1, 0, 0, 0), utc(2100, 2, 28, 0, 0, 0, 0),
                 utc(2100, 3, 1, 0, 0, 0, 0));
    check_bounds(BUDGET_DAY, utc(2000, 2, 28, 1, 0, 0, 0), utc(2000, 2, 28, 0, 0, 0, 0),
                 utc(2000, 2, 29, 0, 0, 0, 0));
    check_bounds(BUDGET_MONTH, utc(2025, 4, 30, 23, 0, 0, 0), utc(2025, 4, 1, 0, 0, 0, 0),
                 utc(2025, 5, 1, 0, 0, 0, 0));

    check_bounds(BUDGET_WEEK, 0, utc(1969, 12, 29, 0, 0, 0, 0), utc(1970, 1, 5, 0, 0, 0, 0));
    check_bounds(BUDGET_DAY, -1, utc(1969, 12, 31, 0, 0, 0, 0), 0);
    check_bounds(BUDGET_MONTH, -1, utc(1969, 12, 1, 0, 0, 0, 0), 0);

    /* the accepted range: years 1 to 9999 */
    int64_t s, e;
    assert_int_equal(budget_period_bounds(BUDGET_MONTH, BUDGET_TIME_MAX_MS, &s, &e), 0);
    assert_int_equal(e, BUDGET_TIME_MAX_MS + 1);
    assert_int_equal(budget_period_bounds(BUDGET_MONTH, BUDGET_TIME_MAX_MS + 1, &s, &e), -1);
    assert_int_equal(budget_period_bounds(BUDGET_DAY, BUDGET_TIME_MIN_MS, &s, &e), 0);
    assert_int_equal(s, BUDGET_TIME_MIN_MS);
    assert_int_equal(budget_period_bounds(BUDGET_DAY, BUDGET_TIME_MIN_MS - 1, &s, &e), -1);
}

/* The three periods agree with the C library's calendar (gmtime_r and
 * timegm, normalising day-of-month arithmetic) at 30000 instants spread
 * with an odd step over 1950..2150, and every instant lies inside its
 * period. */
static void periods_agree_with_the_c_library(void **state)
{
    (void)state;
    int64_t from = utc(1950, 1, 1, 0, 0, 0, 0), to = utc(2150, 1, 1, 0, 0, 0, 0);
    int64_t step = (to - from) / 30000 + 7919;
    for (int64_t now = from; now < to; now += step) {
        time_t secs = (time_t)(now >= 0 ? now / 1000 : (now - 999) / 1000);
        struct tm tm;
        assert_non_null(gmtime_r(&secs, &tm));
        int64_t want[3][2];
        struct tm d = tm;
        d.tm_hour = d.tm_min = d.tm_sec = 0;
        want[BUDGET_DAY][0] = (int64_t)timegm(&d) * 1000;
        d.tm_mday += 1;
        want[BUDGET_DAY][1] = (int64_t)timegm(&d) * 1000;
        d = tm;
        d.tm_hour = d.tm_min = d.tm_sec = 0;
        d.tm_mday -= (tm.tm_wday + 6) % 7; /* back to Monday */
        want[BUDGET_WEEK][0] = (int64_t)timegm(&d) * 1000;
        d.tm_mday += 7;
        want[BUDGET_WEEK][1] = (int64_t)timegm(&d) * 1000;
        d = tm;
        d.tm_hour = d.tm_min = d.tm_sec = 0;
        d.tm_mday = 1;
        want[BUDGET_MONTH][0] = (int64_t)timegm(&d) * 1000;
        d.tm_mon += 1;
        want[BUDGET_MONTH][1] = (int64_t)timegm(&d) * 1000;
        for (int p = 0; p < 3; p++) {
            int64_t s, e;
            assert_int_equal(budget_period_bounds((enum budget_period)p, now, &s, &e), 0);
            assert_int_equal(s, want[p][0]);
            assert_int_equal(e, want[p][1]);
            assert_true(s <= now && now < e);
        }
    }
}

/* Times print as ISO 8601 UTC, with milliseconds only when there are
 * some; periods parse and print by name. */
static void times_and_periods_print_as_documented(void **state)
{
    (void)state;
    char buf[40];
    budget_format_time(utc(2025, 2, 1, 0, 0, 0, 0), buf, sizeof buf);
    assert_string_equal(buf, "2025-02-01T00:00:00Z");
    budget_format_time(utc(2025, 12, 31, 23, 59, 59, 999), buf, sizeof buf);
    assert_string_equal(buf, "2025-12-31T23:59:59.999Z");
    budget_format_time(-1, buf, sizeof buf);
    assert_string_equal(buf, "1969-12-31T23:59:59.999Z");
    enum budget_period p;
    assert_int_equal(budget_period_parse("week", &p), 0);
    assert_int_equal(p, BUDGET_WEEK);
    assert_int_equal(budget_period_parse("Week", &p), -1);
    assert_int_equal(budget_period_parse(NULL, &p), -1);
    assert_string_equal(budget_period_name(BUDGET_MONTH), "month");
}

/* Reserve, settle and release add up exactly: with USER_BUDGET_USD=1.00,
 * 0.30 + 0.50 fit, 0.25 more does not (1.05); settling the 0.30 turn at
 * 0.10 frees room for it (0.10 + 0.50 + 0.25 = 0.85); releasing the 0.50
 * leaves 0.10 spent, 0.25 reserved, 0.65 remaining. Amounts are kept in
 * nano-dollars: 0.1 + 0.2 fill a 0.3 budget exactly, and one more
 * nano-dollar is refused (in doubles 0.1 + 0.2 > 0.3). */
static void reserve_settle_and_release_add_up_exactly(void **state)
{
    (void)state;
    struct budget *b = new_budget(0, 1.00, BUDGET_MONTH);
    int64_t now = utc(2025, 1, 15, 12, 0, 0, 0);
    struct budget_reservation r1, r2, r3;
    struct budget_decision d;
    assert_int_equal(budget_reserve(b, "acme", "bob", "m", 0.30, now, &r1, &d), BUDGET_OK);
    assert_true(d.view.s[BUDGET_USER].limited);
    assert_false(d.view.s[BUDGET_TENANT].limited);
    assert_usd(d.reserved_usd, 0.30);
    assert_usd(d.view.s[BUDGET_USER].remaining_usd, 0.70);
    assert_int_equal(budget_reserve(b, "acme", "bob", "m", 0.50, now, &r2, &d), BUDGET_OK);
    assert_usd(d.view.s[BUDGET_USER].reserved_usd, 0.80);
    assert_int_equal(budget_reserve(b, "acme", "bob", "m", 0.25, now, &r3, &d), BUDGET_REFUSED);
    assert_int_equal(r3.id, 0);
    assert_int_equal(d.scope, BUDGET_USER);
    /* another user of the tenant has a budget of their own */
    struct budget_reservation other;
    assert_int_equal(budget_reserve(b, "acme", "eve", "m", 0.90, now, &other, &d), BUDGET_OK);

    struct budget_view v;
    budget_settle(b, &r1, 0.10, now, &v);
    assert_int_equal(r1.id, 0);
    assert_usd(v.s[BUDGET_USER].spent_usd, 0.10);
    assert_usd(v.s[BUDGET_USER].reserved_usd, 0.50);
    assert_int_equal(budget_reserve(b, "acme", "bob", "m", 0.25, now, &r3, &d), BUDGET_OK);
    budget_release(b, &r2, now);
    budget_snapshot(b, "acme", "bob", now, &v);
    assert_true(v.s[BUDGET_USER].known);
    assert_usd(v.s[BUDGET_USER].spent_usd, 0.10);
    assert_usd(v.s[BUDGET_USER].reserved_usd, 0.25);
    assert_usd(v.s[BUDGET_USER].remaining_usd, 0.65);
    budget_settle(b, &r3, 0.25, now, NULL);
    budget_settle(b, &other, 0.90, now, NULL);
    budget_free(b);

    b = new_budget(0.3, 0, BUDGET_DAY);
    assert_int_equal(budget_reserve(b, "acme", NULL, "m", 0.1, now, &r1, &d), BUDGET_OK);
    assert_int_equal(budget_reserve(b, "acme", NULL, "m", 0.2, now, &r2, &d), BUDGET_OK);
    assert_int_equal(budget_reserve(b, "acme", NULL, "m", 1e-9, now, &r3, &d), BUDGET_REFUSED);
    budget_settle(b, &r1, 0.1, now, NULL);
    budget_settle(b, &r2, 0.2, now, NULL);
    assert_int_equal(budget_reserve(b, "acme", NULL, "m", 1e-9, now, &r3, &d), BUDGET_REFUSED);
    assert_int_equal(budget_reserve(b, "acme", NULL, "m", 0, now, &r3, &d), BUDGET_OK);
    budget_release(b, &r3, now);
    budget_free(b);
}

/* A refusal says which budget, how much was spent and reserved, the
 * estimate, the limit and when it resets (the end of the month, as
 * ISO time and in the view); an override is named as one. Nothing is
 * reserved by a refused turn. */
static void a_refusal_names_the_budget_the_amounts_and_the_reset(void **state)
{
    (void)state;
    struct budget *b = new_budget(5.00, 0, BUDGET_MONTH);
    int64_t now = utc(2025, 1, 20, 9, 30, 0, 0);
    char err[256];
    assert_int_equal(
        budget_set_spent(b, "acme", NULL, utc(2025, 1, 1, 0, 0, 0, 0), 4.90, err, sizeof err), 0);
    struct budget_reservation r, r2;
    struct budget_decision d;
    assert_int_equal(budget_reserve(b, "acme", "bob", "m", 0.05, now, &r, &d), BUDGET_OK);
    assert_int_equal(budget_reserve(b, "acme", "bob", "m", 0.10, now, &r2, &d), BUDGET_REFUSED);
    assert_int_equal(d.scope, BUDGET_TENANT);
    assert_non_null(strstr(d.message, "the tenant budget of acme has no room for this turn"));
    assert_non_null(strstr(d.message, "spent $4.90 this month"));
    assert_non_null(strstr(d.message, "reserved by turns in flight $0.05"));
    assert_non_null(strstr(d.message, "estimate $0.10"));
    assert_non_null(strstr(d.message, "TENANT_BUDGET_USD=5.00"));
    assert_non_null(strstr(d.message, "resets at 2025-02-01T00:00:00Z"));
    assert_int_equal(d.view.resets_at_ms, utc(2025, 2, 1, 0, 0, 0, 0));
    assert_usd(d.view.s[BUDGET_TENANT].reserved_usd, 0.05);
    assert_usd(d.view.s[BUDGET_TENANT].remaining_usd, 0.05);

    assert_int_equal(budget_set_override(b, "acme", "bob", 0.001, err, sizeof err), 0);
    assert_int_equal(budget_reserve(b, "acme", "bob", "m", 0.002, now, &r2, &d), BUDGET_REFUSED);
    assert_int_equal(d.scope, BUDGET_USER);
    assert_non_null(strstr(d.message, "the user budget of bob in tenant acme"));
    assert_non_null(strstr(d.message, "$0.001 set with `memchat limits set`"));
    budget_settle(b, &r, 0.05, now, NULL);
    budget_free(b);
}

/* The flows of a turn. Streamed: estimated 0.10, cost 0.25, so spent
 * passes the estimate and, at a 0.30 budget, the next 0.10 turn is
 * refused; a later overspend shows a negative remainder. Retried: one
 * 0.30 reservation for three attempts settled once with their sum (0.22);
 * settling or releasing again changes nothing. Cancelled: the partial
 * 0.04 is what counts. Cached: settled at 0, nothing spent. */
static void streamed_retried_cancelled_and_cached_turns_settle_right(void **state)
{
    (void)state;
    int64_t now = utc(2025, 6, 1, 0, 0, 0, 0);
    struct budget_reservation r;
    struct budget_decision d;
    struct budget_view v;

    struct budget *b = new_budget(0.30, 0, BUDGET_WEEK);
    assert_int_equal(budget_reserve(b, "acme", "bob", "m", 0.10, now, &r, &d), BUDGET_OK);
    budget_settle(b, &r, 0.25, now, &v);
    assert_usd(v.s[BUDGET_TENANT].spent_usd, 0.25);
    assert_usd(v.s[BUDGET_TENANT].reserved_usd, 0);
    assert_int_equal(budget_reserve(b, "acme", "bob", "m", 0.10, now, &r, &d), BUDGET_REFUSED);
    assert_int_equal(budget_reserve(b, "acme", "bob", "m", 0.05, now, &r, &d), BUDGET_OK);
    budget_settle(b, &r, 0.15, now, &v);
    assert_usd(v.s[BUDGET_TENANT].remaining_usd, -0.10);
    budget_free(b);

    b = new_budget(0.30, 0, BUDGET_WEEK);
    assert_int_equal(budget_reserve(b, "acme", "bob", "m", 0.30, now, &r, &d), BUDGET_OK);
    double attempts[] = {0.05, 0.05, 0.12};
    budget_settle(b, &r, attempts[0] + attempts[1] + attempts[2], now, &v);
    assert_usd(v.s[BUDGET_TENANT].spent_usd, 0.22);
    budget_settle(b, &r, 0.22, now, &v);
    budget_release(b, &r, now);
    budget_snapshot(b, "acme", NULL, now, &v);
    assert_usd(v.s[BUDGET_TENANT].spent_usd, 0.22);
    assert_usd(v.s[BUDGET_TENANT].reserved_usd, 0);

    assert_int_equal(budget_reserve(b, "acme", "bob", "m", 0.08, now, &r, &d), BUDGET_OK);
    budget_settle(b, &r, 0.04, now, &v); /* cancelled after part of the reply */
    assert_usd(v.s[BUDGET_TENANT].spent_usd, 0.26);

    assert_int_equal(budget_reserve(b, "acme", "bob", "m", 0.04, now, &r, &d), BUDGET_OK);
    budget_settle(b, &r, 0.0, now, &v); /* answered from the cache */
    assert_usd(v.s[BUDGET_TENANT].spent_usd, 0.26);
    assert_usd(v.s[BUDGET_TENANT].reserved_usd, 0);
    /* an unknown actual cost (NAN) counts 0 rather than poisoning the sum */
    assert_int_equal(budget_reserve(b, "acme", "bob", "m", 0.04, now, &r, &d), BUDGET_OK);
    budget_settle(b, &r, NAN, now, &v);
    assert_usd(v.s[BUDGET_TENANT].spent_usd, 0.26);
    budget_free(b);
}

/* A model without a price (NAN or negative estimate) is refused when a
 * budget applies, naming the model and prices.json; with no budget it
 * passes with an empty reservation whose settle changes nothing. */
static void a_model_without_a_price_is_refused_only_under_a_budget(void **state)
{
    (void)state;
    int64_t now = utc(2025, 6, 1, 0, 0, 0, 0);
    struct budget_reservation r;
    struct budget_decision d;
    struct budget *b = new_budget(0, 2.0, BUDGET_MONTH);
    assert_int_equal(budget_reserve(b, "acme", "bob", "gpt-x", NAN, now, &r, &d), BUDGET_NO_PRICE);
    assert_int_equal(r.id, 0);
    assert_int_equal(d.scope, BUDGET_USER);
    assert_non_null(strstr(
        d.message, "model gpt-x has no price; set one in prices.json to use it under a budget"));
    assert_non_null(strstr(d.message, "USER_BUDGET_USD=2.00"));
    assert_int_equal(budget_reserve(b, "acme", "bob", "gpt-x", -1, now, &r, &d), BUDGET_NO_PRICE);
    /* a tenant-only turn is under no user budget */
    assert_int_equal(budget_reserve(b, "acme", NULL, "gpt-x", NAN, now, &r, &d), BUDGET_OK);
    budget_release(b, &r, now);
    budget_free(b);

    b = new_budget(0, 0, BUDGET_MONTH);
    assert_int_equal(budget_reserve(b, "acme", "bob", "gpt-x", NAN, now, &r, &d), BUDGET_OK);
    assert_int_not_equal(r.id, 0);
    assert_false(r.held[BUDGET_TENANT] || r.held[BUDGET_USER]);
    struct budget_view v;
    budget_settle(b, &r, 123.0, now, &v);
    assert_false(v.s[BUDGET_TENANT].limited || v.s[BUDGET_USER].limited);
    assert_int_equal(budget_entry_count(b), 0);
    budget_free(b);
}

/* Overrides beat the configured budgets and clear back: a tenant override
 * of 2.00 over TENANT_BUDGET_USD=10; a user override of 0 frees that user
 * from USER_BUDGET_USD=1 while others stay under it; bad ids and amounts
 * are refused. */
static void overrides_take_precedence_and_clear_back(void **state)
{
    (void)state;
    int64_t now = utc(2025, 6, 1, 0, 0, 0, 0);
    struct budget *b = new_budget(10.0, 1.0, BUDGET_MONTH);
    char err[256];
    assert_int_equal(budget_set_override(b, "acme", NULL, 2.0, err, sizeof err), 0);
    assert_int_equal(budget_set_override(b, "acme", "bob", 0, err, sizeof err), 0);
    double usd = -1;
    assert_true(budget_get_override(b, "acme", NULL, &usd));
    assert_usd(usd, 2.0);
    assert_true(budget_get_override(b, "acme", "bob", &usd));
    assert_usd(usd, 0);
    assert_false(budget_get_override(b, "acme", "eve", &usd));

    struct budget_reservation r;
    struct budget_decision d;
    assert_int_equal(budget_reserve(b, "acme", "bob", "m", 1.5, now, &r, &d), BUDGET_OK);
    assert_false(d.view.s[BUDGET_USER].limited);
    assert_true(d.view.s[BUDGET_USER].overridden);
    assert_true(d.view.s[BUDGET_TENANT].overridden);
    assert_usd(d.view.s[BUDGET_TENANT].limit_usd, 2.0);
    budget_settle(b, &r, 1.5, now, NULL);
    assert_int_equal(budget_reserve(b, "acme", "eve", "m", 1.01, now, &r, &d), BUDGET_REFUSED);
    assert_int_equal(d.scope, BUDGET_USER);
    assert_int_equal(budget_reserve(b, "acme", "bob", "m", 0.6, now, &r, &d), BUDGET_REFUSED);
    assert_int_equal(d.scope, BUDGET_TENANT);

    assert_true(budget_clear_override(b, "acme", NULL));
    assert_false(budget_clear_override(b, "acme", NULL));
    assert_int_equal(budget_reserve(b, "acme", "bob", "m", 0.6, now, &r, &d), BUDGET_OK);
    assert_usd(d.view.s[BUDGET_TENANT].limit_usd, 10.0);
    budget_release(b, &r, now);
    assert_true(budget_clear_override(b, "acme", "bob"));
    assert_int_equal(budget_reserve(b, "acme", "bob", "m", 1.01, now, &r, &d), BUDGET_REFUSED);

    assert_int_equal(budget_set_override(b, "a cme", NULL, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "tenant"));
    assert_int_equal(budget_set_override(b, "acme", "", 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "user"));
    assert_int_equal(budget_set_override(b, "acme", NULL, -1, err, sizeof err), -1);
    assert_int_equal(budget_set_override(b, "acme", NULL, NAN, err, sizeof err), -1);
    budget_free(b);
}

/* A loader that records its calls and reports fixed amounts or fails. */
struct ledger {
    int calls;
    int64_t start, end;
    char tenant[80], user[80];
    double tenant_usd, user_usd;
    bool fail;
};

static int ledger_load(void *ud, const char *tenant, const char *user, int64_t start_ms,
                       int64_t end_ms, double *usd, char *err, size_t errlen)
{
    struct ledger *l = ud;
    l->calls++;
    l->start = start_ms;
    l->end = end_ms;
    snprintf(l->tenant, sizeof l->tenant, "%s", tenant);
    snprintf(l->user, sizeof l->user, "%s", user != NULL ? user : "(null)");
    if (l->fail) {
        snprintf(err, errlen, "database is locked");
        return -1;
    }
    *usd = user != NULL ? l->user_usd : l->tenant_usd;
    return 0;
}

/* The loader is asked once per key and period, for exactly the period's
 * bounds, and what it reports counts against the budget; a failing loader
 * refuses the turn with its message (fail closed) and reserves nothing;
 * a new period asks again. */
static void spent_amounts_come_from_the_loader(void **state)
{
    (void)state;
    struct budget *b = new_budget(3.0, 1.0, BUDGET_WEEK);
    struct ledger l = {.tenant_usd = 2.5, .user_usd = 0.25};
    budget_set_loader(b, ledger_load, &l);
    int64_t now = utc(2025, 3, 5, 10, 0, 0, 0); /* a Wednesday */
    struct budget_reservation r;
    struct budget_decision d;
    assert_int_equal(budget_reserve(b, "acme", "bob", "m", 0.5, now, &r, &d), BUDGET_OK);
    assert_int_equal(l.calls, 2);
    assert_int_equal(l.start, utc(2025, 3, 3, 0, 0, 0, 0));
    assert_int_equal(l.end, utc(2025, 3, 10, 0, 0, 0, 0));
    assert_string_equal(l.user, "bob");
    assert_usd(d.view.s[BUDGET_TENANT].spent_usd, 2.5);
    assert_usd(d.view.s[BUDGET_USER].spent_usd, 0.25);
    budget_settle(b, &r, 0.5, now, NULL);
    /* 2.5 + 0.5 spent = 3.0: the tenant is full; no new loads */
    assert_int_equal(budget_reserve(b, "acme", "bob", "m", 0.01, now + 1000, &r, &d),
                     BUDGET_REFUSED);
    assert_int_equal(l.calls, 2);

    /* next week: loaded again, for the new bounds */
    int64_t next = utc(2025, 3, 10, 0, 0, 0, 0);
    l.tenant_usd = 0;
    l.user_usd = 0;
    assert_int_equal(budget_reserve(b, "acme", "bob", "m", 0.5, next, &r, &d), BUDGET_OK);
    assert_int_equal(l.calls, 4);
    assert_int_equal(l.start, next);
    budget_settle(b, &r, 0.5, next, NULL);

    /* a failing ledger refuses (no budget is passed unread) */
    l.fail = true;
    assert_int_equal(budget_reserve(b, "other", "eve", "m", 0.01, next, &r, &d), BUDGET_ERROR);
    assert_int_equal(r.id, 0);
    assert_non_null(strstr(d.message, "database is locked"));
    assert_non_null(strstr(d.message, "tenant other"));
    l.fail = false;
    struct budget_view v;
    assert_int_equal(budget_reserve(b, "other", "eve", "m", 0.01, next, &r, &d), BUDGET_OK);
    budget_settle(b, &r, 0.01, next, &v);
    assert_usd(v.s[BUDGET_USER].spent_usd, 0.01);
    budget_free(b);
}

/* budget_set_spent needs a period's start, ignores data for a period the
 * key has left, and a snapshot before any reservation shows it. */
static void set_spent_checks_the_period(void **state)
{
    (void)state;
    struct budget *b = new_budget(0, 1.0, BUDGET_MONTH);
    char err[256];
    int64_t jan = utc(2025, 1, 1, 0, 0, 0, 0), feb = utc(2025, 2, 1, 0, 0, 0, 0);
    assert_int_equal(budget_set_spent(b, "acme", "bob", jan + 1, 0.5, err, sizeof err), -1);
    assert_non_null(strstr(err, "not the start of a month"));
    assert_int_equal(budget_set_spent(b, "acme", "bob", jan, -0.5, err, sizeof err), -1);
    assert_int_equal(budget_set_spent(b, "acme", "b b", jan, 0.5, err, sizeof err), -1);
    assert_int_equal(budget_set_spent(b, "acme", "bob", feb, 0.75, err, sizeof err), 0);
    assert_int_equal(budget_set_spent(b, "acme", "bob", jan, 0.10, err, sizeof err), 0);
    struct budget_view v;
    budget_snapshot(b, "acme", "bob", feb + 5, &v);
    assert_true(v.s[BUDGET_USER].known);
    assert_usd(v.s[BUDGET_USER].spent_usd, 0.75);
    /* a key never seen reads as not known, spent 0 */
    budget_snapshot(b, "acme", "eve", feb + 5, &v);
    assert_true(v.s[BUDGET_USER].limited);
    assert_false(v.s[BUDGET_USER].known);
    assert_usd(v.s[BUDGET_USER].remaining_usd, 1.0);
    budget_free(b);
}

/* Rollover: the day's budget (1.00) is full of reservations at 23:59;
 * at midnight a new day starts with nothing spent or reserved. The
 * yesterday's reservation settles into yesterday (documented choice), so
 * today still has exactly 1.00 - 0.60 = 0.40 for a 0.40 turn; a thread
 * whose clock is a little behind cannot take the budget back to
 * yesterday. */
static void a_new_period_starts_afresh_and_old_reservations_settle_into_theirs(void **state)
{
    (void)state;
    struct budget *b = new_budget(1.0, 0, BUDGET_DAY);
    int64_t late = utc(2025, 5, 31, 23, 59, 0, 0), midnight = utc(2025, 6, 1, 0, 0, 0, 0);
    struct budget_reservation old, r, r2;
    struct budget_decision d;
    assert_int_equal(budget_reserve(b, "acme", NULL, "m", 0.60, late, &old, &d), BUDGET_OK);
    assert_int_equal(budget_reserve(b, "acme", NULL, "m", 0.60, late, &r, &d), BUDGET_REFUSED);
    assert_non_null(strstr(d.message, "spent $0.00 today"));
    assert_non_null(strstr(d.message, "resets at 2025-06-01T00:00:00Z"));

    assert_int_equal(budget_reserve(b, "acme", NULL, "m", 0.60, midnight, &r, &d), BUDGET_OK);
    assert_int_equal(d.view.period_start_ms, midnight);
    assert_int_equal(d.view.resets_at_ms, utc(2025, 6, 2, 0, 0, 0, 0));
    assert_usd(d.view.s[BUDGET_TENANT].reserved_usd, 0.60);
    struct budget_view v;
    budget_settle(b, &old, 0.60, midnight + 10, &v);
    assert_usd(v.s[BUDGET_TENANT].spent_usd, 0);
    assert_usd(v.s[BUDGET_TENANT].reserved_usd, 0.60);
    assert_int_equal(budget_reserve(b, "acme", NULL, "m", 0.40, late, &r2, &d), BUDGET_OK);
    assert_int_equal(d.view.period_start_ms, midnight);
    assert_usd(d.view.s[BUDGET_TENANT].remaining_usd, 0);
    budget_settle(b, &r, 0.60, midnight + 20, NULL);
    budget_settle(b, &r2, 0.40, midnight + 20, NULL);
    budget_snapshot(b, "acme", NULL, midnight + 30, &v);
    assert_usd(v.s[BUDGET_TENANT].spent_usd, 1.0);
    budget_free(b);
}

/* The key table stays bounded: 20000 distinct users with a user budget
 * leave at most max_entries droppable keys (plus the override); a key
 * that was dropped is loaded again when it comes back; after the period
 * ends, reservations sweep the stale keys away two at a time. */
static void the_key_table_stays_bounded(void **state)
{
    (void)state;
    struct budget_limits lim;
    budget_limits_init(&lim);
    lim.usd[BUDGET_USER] = 1.0;
    lim.period = BUDGET_DAY;
    lim.max_entries = 100;
    char err[256];
    struct budget *b = budget_new(&lim, err, sizeof err);
    assert_non_null(b);
    struct ledger l = {.user_usd = 0.5};
    budget_set_loader(b, ledger_load, &l);
    assert_int_equal(budget_set_override(b, "acme", "vip", 9.0, err, sizeof err), 0);
    int64_t now = utc(2025, 6, 1, 12, 0, 0, 0);
    struct budget_reservation r;
    struct budget_decision d;
    for (int i = 0; i < 20000; i++) {
        char user[32];
        snprintf(user, sizeof user, "u%d", i);
        assert_int_equal(budget_reserve(b, "acme", user, "m", 0.25, now, &r, &d), BUDGET_OK);
        budget_settle(b, &r, 0.25, now, NULL);
        assert_true(budget_entry_count(b) <= 101);
    }
    assert_int_equal(l.calls, 20000);
    /* u0 was dropped: remembered, its 0.75 (0.5 loaded + 0.25 settled)
     * would refuse 0.5 more; reloaded, the fake ledger's 0.5 lets it
     * pass, and the loader is called once more. */
    assert_int_equal(budget_reserve(b, "acme", "u0", "m", 0.5, now, &r, &d), BUDGET_OK);
    assert_int_equal(l.calls, 20001);
    budget_release(b, &r, now);
    double usd;
    assert_true(budget_get_override(b, "acme", "vip", &usd));
    budget_free(b);

    lim.max_entries = 0;
    b = budget_new(&lim, err, sizeof err);
    for (int i = 0; i < 10; i++) {
        char user[32];
        snprintf(user, sizeof user, "u%d", i);
        assert_int_equal(budget_reserve(b, "acme", user, "m", 0.25, now, &r, &d), BUDGET_OK);
        budget_settle(b, &r, 0.25, now, NULL);
    }
    assert_int_equal(budget_entry_count(b), 10);
    int64_t tomorrow = now + 86400000;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(budget_reserve(b, "acme", "x", "m", 0.01, tomorrow, &r, &d), BUDGET_OK);
        budget_settle(b, &r, 0.01, tomorrow, NULL);
    }
    assert_int_equal(budget_entry_count(b), 1);
    budget_free(b);
}

/* Bad input: invalid ids are errors; budget_new refuses bad limits
 * naming the variable. */
static void bad_arguments_are_errors(void **state)
{
    (void)state;
    struct budget *b = new_budget(1, 1, BUDGET_MONTH);
    struct budget_reservation r;
    struct budget_decision d;
    assert_int_equal(budget_reserve(b, "a/b", NULL, "m", 0.1, 0, &r, &d), BUDGET_ERROR);
    assert_int_equal(budget_reserve(b, NULL, "bob", "m", 0.1, 0, &r, &d), BUDGET_ERROR);
    assert_int_equal(budget_reserve(b, "acme", "bo b", "m", 0.1, 0, &r, &d), BUDGET_ERROR);
    assert_int_equal(r.id, 0);
    budget_free(b);

    struct budget_limits lim;
    char err[256];
    budget_limits_init(&lim);
    lim.usd[BUDGET_USER] = -1;
    assert_null(budget_new(&lim, err, sizeof err));
    assert_non_null(strstr(err, "USER_BUDGET_USD"));
    lim.usd[BUDGET_USER] = NAN;
    assert_null(budget_new(&lim, err, sizeof err));
    budget_limits_init(&lim);
    lim.period = (enum budget_period)7;
    assert_null(budget_new(&lim, err, sizeof err));
    assert_non_null(strstr(err, "BUDGET_PERIOD"));
}

/* The configuration helper reads numbers (unset = no budget) and the
 * period enum by name; a table without them leaves the defaults. */
static void limits_come_from_the_configuration(void **state)
{
    (void)state;
    static const struct cfg_var vars[] = {
        {"TENANT_BUDGET_USD", CFG_NUMBER, "", 0, 1000000000, NULL, 0, "d"},
        {"USER_BUDGET_USD", CFG_NUMBER, "0", 0, 1000000000, NULL, 0, "d"},
        {"BUDGET_PERIOD", CFG_ENUM, "month", 0, 0, "day|week|month", 0, "d"},
    };
    struct config *cfg = config_new(vars, 3);
    char err[256] = "";
    struct budget_limits lim;
    budget_limits_from_config(cfg, &lim);
    assert_usd(lim.usd[BUDGET_TENANT], 0);
    assert_usd(lim.usd[BUDGET_USER], 0);
    assert_int_equal(lim.period, BUDGET_MONTH);
    assert_int_equal(config_set(cfg, 0, "12.5", err, sizeof err), 0);
    assert_int_equal(config_set(cfg, 1, "0.75", err, sizeof err), 0);
    assert_int_equal(config_set(cfg, 2, "week", err, sizeof err), 0);
    budget_limits_from_config(cfg, &lim);
    assert_usd(lim.usd[BUDGET_TENANT], 12.5);
    assert_usd(lim.usd[BUDGET_USER], 0.75);
    assert_int_equal(lim.period, BUDGET_WEEK);
    config_free(cfg);
}

/* ---- concurrency ---- */

#define N_THREADS 8
#define N_HELD    3

struct race {
    struct budget *b;
    int rounds;
    bool hold;       /* keep up to N_HELD reservations open at once */
    bool settle_all; /* settle every turn (else release every other one) */
    int64_t settle;  /* what a settled turn costs, nano-dollars */
    atomic_int granted;
    atomic_int settled;
    atomic_int violations;
};

static void *race_main(void *arg)
{
    struct race *r = arg;
    int64_t now = utc(2025, 6, 1, 12, 0, 0, 0);
    struct budget_reservation held[N_HELD];
    int n = 0;
    for (int i = 0; i < r->rounds; i++) {
        struct budget_reservation res;
        struct budget_decision d;
        enum budget_result rc = budget_reserve(r->b, "acme", "bob", "m", 0.01, now, &res, &d);
        /* the view is taken under the lock together with the decision */
        const struct budget_scope_view *t = &d.view.s[BUDGET_TENANT];
        if (t->spent_usd + t->reserved_usd > t->limit_usd + 1e-12)
            atomic_fetch_add(&r->violations, 1);
        if (rc == BUDGET_OK) {
            atomic_fetch_add(&r->granted, 1);
            held[n++] = res;
        }
        /* close the oldest when full (or at once when not holding):
         * settled, or on even rounds released (never sent) */
        if (n == (r->hold ? N_HELD : 1) || (n > 0 && rc != BUDGET_OK)) {
            if (r->settle_all || i % 2 == 1) {
                budget_settle(r->b, &held[0], (double)r->settle / 1e9, now, NULL);
                atomic_fetch_add(&r->settled, 1);
            } else {
                budget_release(r->b, &held[0], now);
            }
            memmove(&held[0], &held[1], (size_t)(n - 1) * sizeof held[0]);
            n--;
        }
    }
    while (n > 0)
        budget_release(r->b, &held[--n], now);
    return NULL;
}

static void race_run(struct race *r)
{
    pthread_t th[N_THREADS];
    atomic_init(&r->granted, 0);
    atomic_init(&r->settled, 0);
    atomic_init(&r->violations, 0);
    for (int i = 0; i < N_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, race_main, r), 0);
    for (int i = 0; i < N_THREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
}

/* Eight threads reserving 0.01 at once against a 1.00 tenant budget, each
 * turn settled at its estimate: exactly 100 of the 2400 attempts pass
 * (every grant adds 0.01 for good, and while fewer than 100 passed there
 * is room for one more), and no view ever shows spent + reserved above
 * the limit. Then, against 0.10, threads hold up to three reservations
 * each (24 wanted, 10 fit), settle half at 0.000001 and release the rest,
 * 5000 rounds each: no view passes the limit, and at the end nothing is
 * reserved and spent is exactly the settled count x 0.000001 (a lost
 * update under a race would show in either). */
static void concurrent_reservations_never_pass_the_limit(void **state)
{
    (void)state;
    struct race r = {.b = new_budget(1.0, 0, BUDGET_MONTH),
                     .rounds = 300,
                     .settle_all = true,
                     .settle = 10000000};
    race_run(&r);
    struct budget_view v;
    budget_snapshot(r.b, "acme", "bob", utc(2025, 6, 1, 12, 0, 0, 0), &v);
    assert_int_equal(atomic_load(&r.violations), 0);
    assert_int_equal(atomic_load(&r.granted), 100);
    assert_int_equal(atomic_load(&r.settled), 100);
    assert_usd(v.s[BUDGET_TENANT].reserved_usd, 0);
    assert_usd(v.s[BUDGET_TENANT].spent_usd, 1.0);
    budget_free(r.b);

    struct race h = {
        .b = new_budget(0.10, 0, BUDGET_MONTH), .rounds = 5000, .hold = true, .settle = 1000};
    race_run(&h);
    budget_snapshot(h.b, "acme", "bob", utc(2025, 6, 1, 12, 0, 0, 0), &v);
    assert_int_equal(atomic_load(&h.violations), 0);
    assert_true(atomic_load(&h.granted) > 0);
    assert_usd(v.s[BUDGET_TENANT].reserved_usd, 0);
    assert_usd(v.s[BUDGET_TENANT].spent_usd, atomic_load(&h.settled) * 1e-6);
    budget_free(h.b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(periods_are_exact_on_edge_dates),
        cmocka_unit_test(periods_agree_with_the_c_library),
        cmocka_unit_test(times_and_periods_print_as_documented),
        cmocka_unit_test(reserve_settle_and_release_add_up_exactly),
        cmocka_unit_test(a_refusal_names_the_budget_the_amounts_and_the_reset),
        cmocka_unit_test(streamed_retried_cancelled_and_cached_turns_settle_right),
        cmocka_unit_test(a_model_without_a_price_is_refused_only_under_a_budget),
        cmocka_unit_test(overrides_take_precedence_and_clear_back),
        cmocka_unit_test(spent_amounts_come_from_the_loader),
        cmocka_unit_test(set_spent_checks_the_period),
        cmocka_unit_test(a_new_period_starts_afresh_and_old_reservations_settle_into_theirs),
        cmocka_unit_test(the_key_table_stays_bounded),
        cmocka_unit_test(bad_arguments_are_errors),
        cmocka_unit_test(limits_come_from_the_configuration),
        cmocka_unit_test(concurrent_reservations_never_pass_the_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
