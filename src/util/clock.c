/*
 * Time sources: CLOCK_MONOTONIC for every latency memchat reports and
 * CLOCK_REALTIME for event timestamps and created_at fields.
 */
#include "config.h"

#include "util/clock.h"

#include <time.h>

static int64_t clock_read_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t clock_mono_ns(void)
{
    return clock_read_ns(CLOCK_MONOTONIC);
}

int64_t clock_mono_ms(void)
{
    return clock_mono_ns() / 1000000;
}

int64_t clock_wall_ms(void)
{
    return clock_read_ns(CLOCK_REALTIME) / 1000000;
}

double clock_since_ms(int64_t start_ns)
{
    return (double)(clock_mono_ns() - start_ns) / 1e6;
}
