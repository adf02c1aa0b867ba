/*
 * Latency histograms: fixed memory, log-linear buckets (each power of two
 * split into 32 linear sub-buckets, like HdrHistogram), so percentiles are
 * within 1/32 ≈ 3 % of the true value at any scale. Values are microseconds.
 */
#ifndef MEMCHAT_UTIL_HIST_H
#define MEMCHAT_UTIL_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 5
#define HIST_SUB      (1 << HIST_SUB_BITS)
#define HIST_BUCKETS  ((64 - HIST_SUB_BITS) * HIST_SUB)

struct hist {
    uint64_t counts[HIST_BUCKETS];
    uint64_t total;
    uint64_t min, max;
    double sum;
};

/* Empties h. */
void hist_init(struct hist *h);
/* Records one value (microseconds; negative values count as 0). */
void hist_record(struct hist *h, int64_t value_us);
/* The value at percentile p (0 < p <= 100): the upper edge of the bucket
 * holding the p-th percentile sample, clamped to [min, max]. 0 when empty. */
uint64_t hist_percentile(const struct hist *h, double p);
/* Mean of the recorded values; 0 when empty. */
double hist_mean(const struct hist *h);
/* Adds every count of src into dst. */
void hist_merge(struct hist *dst, const struct hist *src);

#endif
