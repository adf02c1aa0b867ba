/*
 * Tests of net/retry: the backoff schedule for attempts 1..8 at both ends
 * of the jitter, the 60 s window for server delays, the retryable statuses,
 * x-should-retry overriding them both ways, a shown delta never retrying,
 * the attempts budget, and the parsing of retry-after-ms and Retry-After
 * (milliseconds, seconds, the three HTTP date forms, past dates, blanks,
 * garbage, negatives and non-finite numbers). Expected values are worked
 * out by hand from the formula in DESIGN.md stage 8.
 */
#include "testutil.h"

#include "net/retry.h"

#include <limits.h>

/* At r = 0 the delay doubles from 0.5 s and stops at 8 s (attempt 5 on):
 * 0.5, 1, 2, 4, 8, 8, 8, 8 s. */
static void the_schedule_doubles_to_eight_seconds_at_r_zero(void **state)
{
    (void)state;
    static const long long want[] = {500, 1000, 2000, 4000, 8000, 8000, 8000, 8000};
    for (int n = 1; n <= 8; n++)
        assert_int_equal(retry_delay_ms(n, -1, 0.0), want[n - 1]);
}

/* At r = 0.999 each delay is times 1 - 0.24975 = 0.75025: 375.125, 750.25,
 * 1500.5, 3001, 6002 ms, rounded to the nearest ms (1500.5 is a tie, so
 * either neighbour is a correct rounding). */
static void the_schedule_shrinks_by_at_most_a_quarter_at_r_near_one(void **state)
{
    (void)state;
    assert_int_equal(retry_delay_ms(1, -1, 0.999), 375);
    assert_int_equal(retry_delay_ms(2, -1, 0.999), 750);
    long long third = retry_delay_ms(3, -1, 0.999);
    assert_true(third == 1500 || third == 1501);
    assert_int_equal(retry_delay_ms(4, -1, 0.999), 3001);
    for (int n = 5; n <= 8; n++)
        assert_int_equal(retry_delay_ms(n, -1, 0.999), 6002);
}

/* Every jitter in [0, 1) lands in [0.75, 1] of the base and shrinks the
 * delay monotonically: a sweep of r. The result is rounded, not truncated:
 * r = 0.001 at attempt 1 gives 499.875 ms, so 500. */
static void any_jitter_stays_within_three_quarters_and_the_base(void **state)
{
    (void)state;
    for (int i = 0; i < 1000; i++) {
        double r = i / 1000.0;
        long long d = retry_delay_ms(3, -1, r);
        assert_true(d >= 1500 && d <= 2000);
        assert_true(d <= retry_delay_ms(3, -1, (i > 0 ? i - 1 : 0) / 1000.0)); /* monotone */
    }
    assert_int_equal(retry_delay_ms(1, -1, 0.001), 500);
}

/* attempt <= 0 counts as the first retry, and a huge attempt neither
 * overflows nor passes the 8 s cap. */
static void out_of_range_attempts_are_clamped(void **state)
{
    (void)state;
    assert_int_equal(retry_delay_ms(0, -1, 0.0), 500);
    assert_int_equal(retry_delay_ms(-7, -1, 0.0), 500);
    assert_int_equal(retry_delay_ms(64, -1, 0.0), 8000);
    assert_int_equal(retry_delay_ms(INT_MAX, -1, 0.0), 8000);
}

/* A server delay is used as is when 0 < d <= 60000; 0, -1, 60001 and an
 * hour fall back to the formula (attempt 2 at r = 0: 1000 ms). */
static void the_server_delay_is_used_only_within_sixty_seconds(void **state)
{
    (void)state;
    assert_int_equal(retry_delay_ms(2, 1, 0.5), 1);
    assert_int_equal(retry_delay_ms(2, 1500, 0.5), 1500);
    assert_int_equal(retry_delay_ms(2, 60000, 0.5), 60000);
    assert_int_equal(retry_delay_ms(2, 0, 0.0), 1000);
    assert_int_equal(retry_delay_ms(2, -1, 0.0), 1000);
    assert_int_equal(retry_delay_ms(2, 60001, 0.0), 1000);
    assert_int_equal(retry_delay_ms(2, 3600000, 0.0), 1000);
}

/* A failure with a status and no other signal. */
static struct retry_failure status_failure(long status)
{
    struct retry_failure f = {status, false, -1, -1, false};
    return f;
}

/* 408, 409, 429 and every 5xx (529 included) retry; 400, 401, 403, 404
 * and 422 are final. */
static void retryable_statuses_follow_the_sdk_rule(void **state)
{
    (void)state;
    static const long yes[] = {408, 409, 429, 500, 502, 503, 504, 529, 599};
    static const long no[] = {400, 401, 403, 404, 413, 422};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        struct retry_failure f = status_failure(yes[i]);
        assert_true(retry_status_retryable(yes[i]));
        assert_true(retry_should(&f, 0, 2));
    }
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        struct retry_failure f = status_failure(no[i]);
        assert_false(retry_status_retryable(no[i]));
        assert_false(retry_should(&f, 0, 2));
    }
}

/* Connection errors and timeouts (no response) retry. */
static void transport_errors_retry(void **state)
{
    (void)state;
    struct retry_failure f = {0, true, -1, -1, false};
    assert_true(retry_should(&f, 0, 2));
}

/* x-should-retry: true makes a 400 retry, false stops a 503 and a
 * transport error. */
static void x_should_retry_overrides_both_ways(void **state)
{
    (void)state;
    struct retry_failure f = status_failure(400);
    f.should_retry = 1;
    assert_true(retry_should(&f, 0, 2));
    f = status_failure(503);
    f.should_retry = 0;
    assert_false(retry_should(&f, 0, 2));
    f.transport = true;
    assert_false(retry_should(&f, 0, 2));
}

/* Once a delta reached the user nothing retries, not even a transport
 * error or a server that asks for it. */
static void a_shown_delta_never_retries(void **state)
{
    (void)state;
    struct retry_failure f = status_failure(503);
    f.delta_shown = true;
    assert_false(retry_should(&f, 0, 2));
    f.transport = true;
    assert_false(retry_should(&f, 0, 2));
    f.should_retry = 1;
    assert_false(retry_should(&f, 0, 2));
}

/* With max 0 nothing retries; with max 2 the retries numbered 0 and 1
 * happen and the third does not, even when the server insists. */
static void the_attempts_budget_is_respected(void **state)
{
    (void)state;
    struct retry_failure f = status_failure(429);
    assert_false(retry_should(&f, 0, 0));
    assert_true(retry_should(&f, 0, 2));
    assert_true(retry_should(&f, 1, 2));
    assert_false(retry_should(&f, 2, 2));
    assert_false(retry_should(&f, 3, 2));
    f.should_retry = 1;
    assert_false(retry_should(&f, 2, 2));
}

/* retry-after-ms is milliseconds (fractions round), Retry-After seconds
 * (fractions allowed); surrounding blanks are trimmed; 0 is a valid 0. */
static void numbers_parse_as_milliseconds_or_seconds(void **state)
{
    (void)state;
    assert_int_equal(retry_parse_after("150", NULL, 0), 150);
    assert_int_equal(retry_parse_after("150.6", NULL, 0), 151);
    assert_int_equal(retry_parse_after(" \t150 ", NULL, 0), 150);
    assert_int_equal(retry_parse_after(NULL, "1.5", 0), 1500);
    assert_int_equal(retry_parse_after(NULL, "  2 ", 0), 2000);
    assert_int_equal(retry_parse_after(NULL, ".25", 0), 250);
    assert_int_equal(retry_parse_after(NULL, "0", 0), 0);
    assert_int_equal(retry_parse_after("0", NULL, 0), 0);
}

/* 1994-11-06T08:49:37Z is 784111777 s after the epoch: 8766 days to
 * 1994-01-01 (24 years, 6 of them leap), 304 more to Nov 1, 5 to Nov 6,
 * 9075 * 86400 = 784080000, plus 8 h 49 min 37 s = 31777 s. */
#define DATE_S 784111777LL

/* The date 2 s after now_ms yields 2000 ms in all three HTTP date forms
 * (IMF-fixdate, RFC 850, asctime), and a fractional now shortens it. */
static void http_dates_count_from_now(void **state)
{
    (void)state;
    const int64_t now = (DATE_S - 2) * 1000;
    assert_int_equal(retry_parse_after(NULL, "Sun, 06 Nov 1994 08:49:37 GMT", now), 2000);
    assert_int_equal(retry_parse_after(NULL, "Sunday, 06-Nov-94 08:49:37 GMT", now), 2000);
    assert_int_equal(retry_parse_after(NULL, "Sun Nov  6 08:49:37 1994", now), 2000);
    assert_int_equal(retry_parse_after(NULL, " Sun, 06 Nov 1994 08:49:37 GMT ", now), 2000);
    assert_int_equal(retry_parse_after(NULL, "Sun, 06 Nov 1994 08:49:37 GMT", now + 250), 1750);
}

/* A date in the past, or exactly now, means "retry now": 0. */
static void a_past_date_is_zero(void **state)
{
    (void)state;
    const int64_t now = DATE_S * 1000;
    assert_int_equal(retry_parse_after(NULL, "Sun, 06 Nov 1994 08:49:37 GMT", now), 0);
    assert_int_equal(retry_parse_after(NULL, "Sun, 06 Nov 1994 08:49:37 GMT", now + 86400000), 0);
}

/* Garbage, blanks, signs, exponents and non-finite words are all invalid:
 * -1, for either header. */
static void invalid_values_are_minus_one(void **state)
{
    (void)state;
    static const char *const bad[] = {"",      "   ", "soon", "-1",    "-0.5",
                                      "+3",    "1e3", "inf",  "nan",   "Infinity",
                                      "1.2.3", ".",   "0x10", "12abc", "5 s"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(retry_parse_after(bad[i], NULL, 0), -1);
        assert_int_equal(retry_parse_after(NULL, bad[i], 0), -1);
    }
    assert_int_equal(retry_parse_after(NULL, NULL, 0), -1);
}

/* retry-after-ms wins over Retry-After when valid; an invalid one falls
 * back to Retry-After (as the SDKs do). */
static void retry_after_ms_is_preferred(void **state)
{
    (void)state;
    assert_int_equal(retry_parse_after("250", "5", 0), 250);
    assert_int_equal(retry_parse_after("x", "5", 0), 5000);
    assert_int_equal(retry_parse_after("-3", "5", 0), 5000);
    assert_int_equal(retry_parse_after("x", "y", 0), -1);
}

/* A number too large for the arithmetic is clamped, not wrapped: it stays
 * far above the 60 s window, so the formula is used. */
static void huge_values_stay_huge(void **state)
{
    (void)state;
    long long d = retry_parse_after(NULL, "99999999999999999999999999", 0);
    assert_true(d > RETRY_SERVER_MAX_MS);
    assert_int_equal(retry_delay_ms(1, d, 0.0), 500);
    assert_true(retry_parse_after("1e400", NULL, 0) == -1);
    assert_true(retry_parse_after("99999999999999999999999999", NULL, 0) > RETRY_SERVER_MAX_MS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_schedule_doubles_to_eight_seconds_at_r_zero),
        cmocka_unit_test(the_schedule_shrinks_by_at_most_a_quarter_at_r_near_one),
        cmocka_unit_test(any_jitter_stays_within_three_quarters_and_the_base),
        cmocka_unit_test(out_of_range_attempts_are_clamped),
        cmocka_unit_test(the_server_delay_is_used_only_within_sixty_seconds),
        cmocka_unit_test(retryable_statuses_follow_the_sdk_rule),
        cmocka_unit_test(transport_errors_retry),
        cmocka_unit_test(x_should_retry_overrides_both_ways),
        cmocka_unit_test(a_shown_delta_never_retries),
        cmocka_unit_test(the_attempts_budget_is_respected),
        cmocka_unit_test(numbers_parse_as_milliseconds_or_seconds),
        cmocka_unit_test(http_dates_count_from_now),
        cmocka_unit_test(a_past_date_is_zero),
        cmocka_unit_test(invalid_values_are_minus_one),
        cmocka_unit_test(retry_after_ms_is_preferred),
        cmocka_unit_test(huge_values_stay_huge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
