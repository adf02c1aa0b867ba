/*
 * Log-linear latency histograms (see hist.h). A value v >= 32 with highest
 * set bit e (5 <= e <= 62) falls in sub-bucket (v >> (e - 5)) of its power
 * of two, i.e. bucket (e - 5) * 32 + (v >> (e - 5)); values below 64 map to
 * themselves, so small values are exact. Every bucket above 63 spans
 * 2^(e-5) values starting at a value >= 32 * 2^(e-5), so its upper edge is
 * less than 1/32 (3.125 %) above any value in it. The largest int64 value
 * lands in the last bucket, HIST_BUCKETS - 1.
 */
#include "config.h"

#include "util/hist.h"

#include <math.h>
#include <string.h>

/* The bucket of v (v < 2^63). */
static unsigned hist_bucket(uint64_t v)
{
    if (v < 2 * HIST_SUB)
        return (unsigned)v;
    unsigned e = 63 - (unsigned)__builtin_clzll(v);
    unsigned shift = e - HIST_SUB_BITS;
    return shift * HIST_SUB + (unsigned)(v >> shift);
}

/* The largest value that falls in bucket b. */
static uint64_t hist_bucket_upper(unsigned b)
{
    if (b < 2 * HIST_SUB)
        return b;
    unsigned shift = b / HIST_SUB - 1;
    uint64_t top = b % HIST_SUB + HIST_SUB;
    return ((top + 1) << shift) - 1;
}

void hist_init(struct hist *h)
{
    memset(h, 0, sizeof *h);
}

void hist_record(struct hist *h, int64_t value_us)
{
    uint64_t v = value_us > 0 ? (uint64_t)value_us : 0;
    h->counts[hist_bucket(v)]++;
    if (h->total == 0 || v < h->min)
        h->min = v;
    if (h->total == 0 || v > h->max)
        h->max = v;
    h->total++;
    h->sum += (double)v;
}

uint64_t hist_percentile(const struct hist *h, double p)
{
    if (h->total == 0)
        return 0;
    /* The rank of the sample: ceil(p / 100 * total), with a relative slack
     * of 1e-12 so a decimal p such as 99.9, not exact in binary, does not
     * round one rank up. Out-of-range p is clamped to the first or last. */
    double x = p / 100.0 * (double)h->total;
    uint64_t rank = 1;
    if (x > 1.0)
        rank = x >= (double)h->total ? h->total : (uint64_t)ceil(x - x * 1e-12);
    uint64_t seen = 0;
    for (unsigned b = 0; b < HIST_BUCKETS; b++) {
        seen += h->counts[b];
        if (seen >= rank) {
            uint64_t v = hist_bucket_upper(b);
            if (v < h->min)
                return h->min;
            return v > h->max ? h->max : v;
        }
    }
    return h->max; /* unreachable while counts add up to total */
}

double hist_mean(const struct hist *h)
{
    return h->total != 0 ? h->sum / (double)h->total : 0.0;
}

void hist_merge(struct hist *dst, const struct hist *src)
{
    if (src->total == 0)
        return;
    for (unsigned b = 0; b < HIST_BUCKETS; b++)
        dst->counts[b] += src->counts[b];
    if (dst->total == 0 || src->min < dst->min)
        dst->min = src->min;
    if (dst->total == 0 || src->max > dst->max)
        dst->max = src->max;
    dst->total += src->total;
    dst->sum += src->sum;
}
