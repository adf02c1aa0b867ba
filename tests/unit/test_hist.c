/*
 * Tests of util/hist: percentiles compared with an exact sort of the same
 * samples from several seeded distributions (the error bound of the
 * log-linear buckets), exactness for small values, the bucket edges at
 * every power of two up to INT64_MAX, the empty and single-value cases,
 * and merging.
 */
#include "testutil.h"

#include "util/hist.h"

#include <math.h>

#define NSAMPLES 10000

/* xorshift64*: deterministic, so a failure reproduces. */
static uint64_t rng_state;
static uint64_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dULL;
}

/* Uniform in [0, 1). */
static double rng_unit(void)
{
    return (double)(rng_next() >> 11) / 9007199254740992.0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The exact percentile by the header's rule: the ceil(p/100*n)-th smallest
 * sample, with p given in thousandths of a percent so the rank is computed
 * in integers, independently of the implementation's floating point. */
static uint64_t exact_percentile(const uint64_t *sorted, size_t n, uint64_t p_milli)
{
    uint64_t rank = (p_milli * n + 99999) / 100000;
    if (rank < 1)
        rank = 1;
    return sorted[rank - 1];
}

enum dist { DIST_UNIFORM, DIST_EXPONENTIAL, DIST_LOG_UNIFORM, DIST_BIMODAL, DIST__COUNT };

static uint64_t draw(enum dist d)
{
    switch (d) {
    case DIST_UNIFORM:
        return rng_next() % 1000000; /* 0..1 s */
    case DIST_EXPONENTIAL:
        return (uint64_t)(-log(1.0 - rng_unit()) * 20000.0); /* mean 20 ms */
    case DIST_LOG_UNIFORM:
        return (uint64_t)exp(rng_unit() * log(1e12)); /* 1 µs .. 11 days */
    case DIST_BIMODAL:
        /* Cache hits near 300 µs, misses near 2 s: the tail is far away. */
        return rng_next() % 10 < 8 ? 250 + rng_next() % 100 : 1500000 + rng_next() % 1000000;
    case DIST__COUNT:
        break;
    }
    return 0;
}

/* For 10,000 samples of each distribution, every percentile from p1 to
 * p100 is at least the exact value and less than 1/32 (3.125 %) above it:
 * the upper edge of the bucket holding the exact sample. */
static void percentiles_are_within_the_bucket_error_of_exact_ones(void **state)
{
    (void)state;
    static const uint64_t ps[] = {1000,  10000, 25000, 50000, 75000, 90000,
                                  95000, 99000, 99900, 99990, 100000};
    static uint64_t v[NSAMPLES];
    static struct hist h;
    for (int d = 0; d < DIST__COUNT; d++) {
        rng_state = 0x853c49e6748fea9bULL + (uint64_t)d;
        hist_init(&h);
        for (size_t i = 0; i < NSAMPLES; i++) {
            v[i] = draw((enum dist)d);
            hist_record(&h, (int64_t)v[i]);
        }
        qsort(v, NSAMPLES, sizeof v[0], cmp_u64);
        assert_int_equal(h.total, NSAMPLES);
        assert_int_equal(h.min, v[0]);
        assert_int_equal(h.max, v[NSAMPLES - 1]);
        for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
            uint64_t exact = exact_percentile(v, NSAMPLES, ps[i]);
            uint64_t got = hist_percentile(&h, (double)ps[i] / 1000.0);
            if (got < exact || (double)(got - exact) > 0.032 * (double)exact)
                fail_msg("distribution %d p%.3f: got %llu, exact %llu", d, (double)ps[i] / 1000.0,
                         (unsigned long long)got, (unsigned long long)exact);
        }
        assert_int_equal(hist_percentile(&h, 100.0), v[NSAMPLES - 1]);
    }
}

/* Percentiles never decrease as p grows. */
static void percentiles_are_monotonic_in_p(void **state)
{
    (void)state;
    static struct hist h;
    hist_init(&h);
    rng_state = 42;
    for (int i = 0; i < NSAMPLES; i++)
        hist_record(&h, (int64_t)draw(DIST_LOG_UNIFORM));
    uint64_t prev = 0;
    for (double p = 0.5; p <= 100.0; p += 0.5) {
        uint64_t q = hist_percentile(&h, p);
        assert_true(q >= prev);
        prev = q;
    }
}

/* Values below 32 have a bucket each, so every percentile of small values
 * is the exact sample; p = 100*k/31 also checks that the rank is not
 * pushed up by the rounding of a p that is not exact in binary. */
static void small_values_are_exact(void **state)
{
    (void)state;
    static struct hist h;
    hist_init(&h);
    for (int v = 31; v >= 1; v--)
        hist_record(&h, v);
    for (int k = 1; k <= 31; k++)
        assert_int_equal(hist_percentile(&h, 100.0 * k / 31.0), k);
    /* Ties: 1,1,1,2 -> p75 is the third sample (1), p76 the fourth (2). */
    hist_init(&h);
    hist_record(&h, 1);
    hist_record(&h, 1);
    hist_record(&h, 1);
    hist_record(&h, 2);
    assert_int_equal(hist_percentile(&h, 75.0), 1);
    assert_int_equal(hist_percentile(&h, 76.0), 2);
}

/* Each value, recorded beside a much larger one, is reported at p50 as its
 * bucket's upper edge: exact below 64, and otherwise at most 1/32 above it
 * (never below) — at every power of two and its neighbours up to
 * INT64_MAX, so no bucket index overflows the array. */
static void bucket_edges_hold_at_every_scale(void **state)
{
    (void)state;
    static struct hist h;
    uint64_t vals[400];
    size_t n = 0;
    for (uint64_t v = 0; v < 200; v++)
        vals[n++] = v;
    for (int e = 6; e < 63; e++) {
        vals[n++] = (1ULL << e) - 1;
        vals[n++] = 1ULL << e;
        vals[n++] = (1ULL << e) + 1;
    }
    vals[n++] = (uint64_t)INT64_MAX - 1;
    for (size_t i = 0; i < n; i++) {
        hist_init(&h);
        hist_record(&h, (int64_t)vals[i]);
        hist_record(&h, INT64_MAX);
        uint64_t got = hist_percentile(&h, 50.0);
        assert_true(got >= vals[i]);
        if (vals[i] < 64)
            assert_int_equal(got, vals[i]);
        else
            assert_true(got - vals[i] <= vals[i] / 32);
    }
    hist_init(&h);
    hist_record(&h, INT64_MAX);
    assert_int_equal(hist_percentile(&h, 100.0), INT64_MAX);
    assert_int_equal(h.counts[HIST_BUCKETS - 1], 1);
}

/* An empty histogram reports 0 for every percentile and the mean. */
static void empty_histogram_reports_zero(void **state)
{
    (void)state;
    static struct hist h;
    hist_init(&h);
    assert_int_equal(hist_percentile(&h, 50.0), 0);
    assert_int_equal(hist_percentile(&h, 100.0), 0);
    assert_true(hist_mean(&h) == 0.0);
    assert_int_equal(h.total, 0);
}

/* One value is every percentile exactly, thanks to the clamp to
 * [min, max], though its bucket is wider than one. */
static void single_value_is_every_percentile(void **state)
{
    (void)state;
    static struct hist h;
    hist_init(&h);
    hist_record(&h, 123457);
    assert_int_equal(hist_percentile(&h, 0.1), 123457);
    assert_int_equal(hist_percentile(&h, 50.0), 123457);
    assert_int_equal(hist_percentile(&h, 100.0), 123457);
    assert_true(hist_mean(&h) == 123457.0);
}

/* Negative values (a clock step) count as 0. */
static void negative_values_count_as_zero(void **state)
{
    (void)state;
    static struct hist h;
    hist_init(&h);
    hist_record(&h, -5);
    hist_record(&h, INT64_MIN);
    hist_record(&h, 10);
    assert_int_equal(h.min, 0);
    assert_int_equal(hist_percentile(&h, 50.0), 0);
    assert_int_equal(hist_percentile(&h, 100.0), 10);
    assert_true(fabs(hist_mean(&h) - 10.0 / 3.0) < 1e-9);
}

/* The mean is the exact mean of the values, not of bucket edges. */
static void mean_is_exact(void **state)
{
    (void)state;
    static struct hist h;
    hist_init(&h);
    rng_state = 7;
    double sum = 0;
    for (int i = 0; i < NSAMPLES; i++) {
        uint64_t v = draw(DIST_EXPONENTIAL);
        sum += (double)v;
        hist_record(&h, (int64_t)v);
    }
    assert_true(fabs(hist_mean(&h) - sum / NSAMPLES) < 1e-6);
}

/* Merging the histograms of two halves gives the histogram of the whole,
 * bucket for bucket; merging an empty one changes nothing, and merging into
 * an empty one copies min and max. */
static void merge_equals_recording_everything_in_one(void **state)
{
    (void)state;
    static struct hist a, b, all, empty;
    hist_init(&a);
    hist_init(&b);
    hist_init(&all);
    hist_init(&empty);
    rng_state = 99;
    for (int i = 0; i < NSAMPLES; i++) {
        /* Different ranges in each half so min and max come from both. */
        uint64_t v = i % 2 ? draw(DIST_UNIFORM) + 1000 : draw(DIST_BIMODAL);
        hist_record(i % 2 ? &a : &b, (int64_t)v);
        hist_record(&all, (int64_t)v);
    }
    hist_merge(&a, &empty);
    hist_merge(&a, &b);
    assert_memory_equal(a.counts, all.counts, sizeof all.counts);
    assert_int_equal(a.total, all.total);
    assert_int_equal(a.min, all.min);
    assert_int_equal(a.max, all.max);
    assert_true(fabs(a.sum - all.sum) <= 1e-9 * all.sum);
    assert_int_equal(hist_percentile(&a, 99.0), hist_percentile(&all, 99.0));

    static struct hist c;
    hist_init(&c);
    hist_merge(&c, &b); /* b's min (> 0) replaces c's zeroed one */
    assert_true(b.min > 0);
    assert_int_equal(c.min, b.min);
    assert_int_equal(c.max, b.max);
    assert_int_equal(c.total, b.total);

    static struct hist d;
    hist_init(&d);
    hist_record(&d, 700);
    hist_merge(&d, &empty); /* empty's zeroed min must not come across */
    assert_int_equal(d.total, 1);
    assert_int_equal(d.min, 700);
    assert_int_equal(d.max, 700);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(percentiles_are_within_the_bucket_error_of_exact_ones),
        cmocka_unit_test(percentiles_are_monotonic_in_p),
        cmocka_unit_test(small_values_are_exact),
        cmocka_unit_test(bucket_edges_hold_at_every_scale),
        cmocka_unit_test(empty_histogram_reports_zero),
        cmocka_unit_test(single_value_is_every_percentile),
        cmocka_unit_test(negative_values_count_as_zero),
        cmocka_unit_test(mean_is_exact),
        cmocka_unit_test(merge_equals_recording_everything_in_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
