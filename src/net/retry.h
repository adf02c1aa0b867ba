/*
 * The retry policy of DESIGN.md (stage 8), shared by providers and, later,
 * embedders and remote stores. Retry connection errors, timeouts, 408, 409,
 * 429 and every 5xx, at most MEMCHAT_MAX_RETRIES times; attempt n (1 for the
 * first retry) waits min(0.5 * 2^(n-1), 8) s * (1 - 0.25 * r), r in [0, 1),
 * or the server's retry-after-ms / Retry-After when it asks for at most
 * 60 s; a header x-should-retry: true|false overrides the status rule; never
 * retry once a delta was shown. Pure functions: the caller supplies r and
 * the clock, so tests check the arithmetic exactly.
 */
#ifndef MEMCHAT_NET_RETRY_H
#define MEMCHAT_NET_RETRY_H

#include <stdbool.h>
#include <stdint.h>

/* Server delays above this fall back to the formula. */
#define RETRY_SERVER_MAX_MS 60000

/* What went wrong with one attempt. */
struct retry_failure {
    long status;               /* HTTP status, or 0 when no response came */
    bool transport;            /* connection error or timeout (no usable response) */
    int should_retry;          /* x-should-retry: 1 true, 0 false, -1 absent */
    long long server_delay_ms; /* from the headers (retry_parse_after), or -1 */
    bool delta_shown;          /* some reply text already reached the user */
};

/* True when the status alone is retryable: 408, 409, 429, >= 500. */
bool retry_status_retryable(long status);
/* Whether to retry after the given failure, when attempts_done retries were
 * already made out of max_retries. */
bool retry_should(const struct retry_failure *f, int attempts_done, int max_retries);
/* The delay before retry attempt n (1-based), in ms: the server's delay
 * when 0 < server_delay_ms <= RETRY_SERVER_MAX_MS, else the formula with
 * r in [0, 1). */
long long retry_delay_ms(int attempt, long long server_delay_ms, double r);
/* The server's requested delay in ms from the retry-after-ms value (a
 * number of ms) or else the Retry-After value (seconds, fractions allowed,
 * or an HTTP date, measured from now_ms); either may be NULL. -1 when
 * neither is present or valid; a date in the past is 0. */
long long retry_parse_after(const char *retry_after_ms, const char *retry_after, int64_t now_ms);

#endif
