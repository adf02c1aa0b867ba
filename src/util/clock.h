/*
 * Time: a monotonic clock for latencies (never jumps with the wall clock)
 * and the wall clock in Unix milliseconds for timestamps.
 */
#ifndef MEMCHAT_UTIL_CLOCK_H
#define MEMCHAT_UTIL_CLOCK_H

#include <stdint.h>

/* Monotonic time in nanoseconds from an arbitrary origin. */
int64_t clock_mono_ns(void);
/* Monotonic time in milliseconds. */
int64_t clock_mono_ms(void);
/* Wall-clock time in Unix milliseconds. */
int64_t clock_wall_ms(void);
/* Milliseconds elapsed since a clock_mono_ns() reading, as a double. */
double clock_since_ms(int64_t start_ns);

#endif
