/*
 * Fuzz target: the server-delay headers (net/retry.h): retry-after-ms and
 * Retry-After (seconds, fractions, or an HTTP date read by curl_getdate).
 * The first byte says which headers are present, the next eight give the
 * clock, and the rest holds the two values separated by the first LF. The
 * result must be -1 or a delay in [0, 1e15] ms, the ms header must win when
 * it parses, and the delay the retry policy derives from it must stay in
 * its documented bounds for any attempt and jitter.
 */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "net/retry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 9 || size > FUZZ_MAX_INPUT)
        return 0;
    unsigned ctl = data[0];
    uint64_t clock = 0;
    for (int i = 1; i <= 8; i++)
        clock = clock << 8 | data[i];
    /* Any time from 1970 to about the year 3000, as a real clock gives. */
    int64_t now_ms = (int64_t)(clock % ((uint64_t)1 << 45));
    const uint8_t *rest = data + 9;
    size_t n = size - 9;
    const uint8_t *lf = memchr(rest, '\n', n);
    size_t n1 = lf != NULL ? (size_t)(lf - rest) : n;
    char *ms = fuzz_strndup(rest, n1);
    char *ra = lf != NULL ? fuzz_strndup(lf + 1, n - n1 - 1) : fuzz_strndup(rest, n);

    const char *ms_arg = (ctl & 1) ? ms : NULL;
    const char *ra_arg = (ctl & 2) ? ra : NULL;
    long long d = retry_parse_after(ms_arg, ra_arg, now_ms);
    if (d < -1 || d > 1000000000000000LL)
        fuzz_fail("retry: a delay out of range");
    long long d_ms = retry_parse_after(ms_arg, NULL, now_ms);
    if (d_ms >= 0 && d != d_ms)
        fuzz_fail("retry: retry-after-ms parsed but did not win");
    if (ms_arg == NULL && ra_arg == NULL && d != -1)
        fuzz_fail("retry: a delay without any header");

    int attempt = (int)(ctl >> 2) - 8; /* -8..55: bad and huge attempts too */
    double r = (double)(data[1] ^ data[8]) / 256.0;
    long long w = retry_delay_ms(attempt, d, r);
    if (d > 0 && d <= RETRY_SERVER_MAX_MS) {
        if (w != d)
            fuzz_fail("retry: the server's delay was not used");
    } else if (w < 375 || w > 8000) {
        fuzz_fail("retry: the computed delay is outside [375, 8000] ms");
    }
    struct retry_failure f = {(long)(clock % 700), (ctl & 4) != 0, (int)(clock % 3) - 1, d,
                              (ctl & 8) != 0};
    if (retry_should(&f, attempt, 2) && f.delta_shown)
        fuzz_fail("retry: a retry after a delta was shown");
    free(ms);
    free(ra);
    return 0;
}
