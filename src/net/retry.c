/*
 * The retry policy of retry.h: which failures are retried, how long to
 * wait, and how to read a server's Retry-After. Numbers are parsed by hand
 * rather than with strtod because strtod follows LC_NUMERIC (the TUI sets
 * the user's locale, where the decimal point may be a comma) and accepts
 * forms no server sends ("inf", "0x1p3"); HTTP dates go to libcurl's
 * curl_getdate(), which reads IMF-fixdate, RFC 850 and asctime forms.
 */
#include "config.h"

#include "net/retry.h"

#include <math.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

/* Parsed delays are clamped here so the conversion to long long is defined;
 * anything this large is far above RETRY_SERVER_MAX_MS anyway. */
#define RETRY_PARSE_MAX_MS 1e15

bool retry_status_retryable(long status)
{
    return status == 408 || status == 409 || status == 429 || status >= 500;
}

bool retry_should(const struct retry_failure *f, int attempts_done, int max_retries)
{
    if (f->delta_shown || attempts_done >= max_retries)
        return false;
    if (f->should_retry == 0 || f->should_retry == 1)
        return f->should_retry == 1;
    if (f->transport)
        return true;
    return retry_status_retryable(f->status);
}

long long retry_delay_ms(int attempt, long long server_delay_ms, double r)
{
    if (server_delay_ms > 0 && server_delay_ms <= RETRY_SERVER_MAX_MS)
        return server_delay_ms;
    if (attempt < 1)
        attempt = 1;
    /* 500 ms doubled per attempt reaches the 8 s cap at attempt 5; capping
     * the exponent first keeps a huge attempt from overflowing the shift. */
    long long base = attempt >= 5 ? 8000 : 500LL << (attempt - 1);
    if (!(r >= 0.0)) /* also catches NaN */
        r = 0.0;
    if (r > 1.0)
        r = 1.0;
    return llround((double)base * (1.0 - 0.25 * r));
}

/* Narrows s[0..*n) to its content without surrounding blanks. */
static const char *retry_trim(const char *s, size_t *n)
{
    size_t len = strlen(s);
    while (len > 0 && strchr(" \t\r\n", s[len - 1]) != NULL)
        len--;
    while (len > 0 && strchr(" \t\r\n", s[0]) != NULL) {
        s++;
        len--;
    }
    *n = len;
    return s;
}

/* A plain decimal s[0..n) ("15", "1.5", ".5"; no sign, exponent or
 * words) into *out; false when s is anything else. */
static bool retry_parse_decimal(const char *s, size_t n, double *out)
{
    double v = 0.0, scale = 1.0;
    bool dot = false, digits = false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.' && !dot) {
            dot = true;
        } else if (s[i] >= '0' && s[i] <= '9') {
            digits = true;
            if (dot) {
                scale /= 10.0;
                v += scale * (s[i] - '0');
            } else {
                v = v * 10.0 + (s[i] - '0');
            }
        } else {
            return false;
        }
    }
    *out = v;
    return digits && isfinite(v);
}

/* ms rounded to a whole number of milliseconds, clamped into range. */
static long long retry_round_ms(double ms)
{
    return ms >= RETRY_PARSE_MAX_MS ? (long long)RETRY_PARSE_MAX_MS : llround(ms);
}

/* The retry-after-ms value in ms, or -1. */
static long long retry_parse_ms(const char *value)
{
    size_t n;
    const char *s = retry_trim(value, &n);
    double v;
    return retry_parse_decimal(s, n, &v) ? retry_round_ms(v) : -1;
}

/* The Retry-After value (seconds or an HTTP date) in ms from now_ms, or -1. */
static long long retry_parse_seconds_or_date(const char *value, int64_t now_ms)
{
    size_t n;
    const char *s = retry_trim(value, &n);
    double v;
    if (retry_parse_decimal(s, n, &v))
        return retry_round_ms(v * 1000.0);
    char date[64]; /* the longest form, RFC 850, is 40 characters */
    if (n == 0 || n >= sizeof date)
        return -1;
    memcpy(date, s, n);
    date[n] = '\0';
    time_t t = curl_getdate(date, NULL);
    if (t == -1)
        return -1;
    double ms = (double)t * 1000.0 - (double)now_ms;
    return ms <= 0.0 ? 0 : retry_round_ms(ms);
}

long long retry_parse_after(const char *retry_after_ms, const char *retry_after, int64_t now_ms)
{
    long long ms = retry_after_ms != NULL ? retry_parse_ms(retry_after_ms) : -1;
    if (ms < 0 && retry_after != NULL)
        ms = retry_parse_seconds_or_date(retry_after, now_ms);
    return ms;
}
