/*
 * UUIDv7 generation. Monotonicity within a millisecond uses RFC 9562 §6.2
 * method 1: the 12-bit rand_a field is a counter seeded at random each new
 * millisecond; when it overflows we borrow the next millisecond. The state
 * is process-wide (ids must be unique across both workers) behind a mutex.
 */
#include "config.h"

#include "util/uuid.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "util/clock.h"

static pthread_mutex_t uuid_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t uuid_last_ms;
static unsigned uuid_counter;

/* Fills p with n random bytes. getrandom() only fails before the kernel's
 * pool is seeded (it then blocks) or on a kernel without it (ENOSYS), where
 * /dev/urandom serves; with neither, ids cannot be unique, so we abort. */
static void uuid_random(unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t got = getrandom(p, n, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            FILE *f = fopen("/dev/urandom", "rb");
            size_t r = f != NULL ? fread(p, 1, n, f) : 0;
            if (f != NULL)
                fclose(f);
            if (r != n) {
                fprintf(stderr, "memchat: no source of randomness for ids\n");
                abort();
            }
            return;
        }
        p += got;
        n -= (size_t)got;
    }
}

void uuid7_new(char out[UUID_STRLEN + 1])
{
    unsigned char b[16];
    uuid_random(b, sizeof b);

    pthread_mutex_lock(&uuid_lock);
    int64_t ms = clock_wall_ms();
    if (ms > uuid_last_ms) {
        uuid_last_ms = ms;
        uuid_counter = ((unsigned)b[6] << 4 | b[7] >> 4) & 0x7ff; /* leave headroom */
    } else if (++uuid_counter > 0xfff) {
        uuid_last_ms++;
        uuid_counter = 0;
    }
    ms = uuid_last_ms;
    unsigned counter = uuid_counter;
    pthread_mutex_unlock(&uuid_lock);

    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(ms >> (40 - 8 * i));
    b[6] = (unsigned char)(0x70 | (counter >> 8));
    b[7] = (unsigned char)(counter & 0xff);
    b[8] = (unsigned char)(0x80 | (b[8] & 0x3f));

    static const char hex[] = "0123456789abcdef";
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        *o++ = hex[b[i] >> 4];
        *o++ = hex[b[i] & 15];
    }
    *o = '\0';
}

static int uuid_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool uuid_valid(const char *s)
{
    if (strlen(s) != UUID_STRLEN)
        return false;
    for (int i = 0; i < UUID_STRLEN; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : uuid_hexval(s[i]) < 0)
            return false;
    }
    return true;
}

int64_t uuid7_time_ms(const char *s)
{
    /* A UUIDv7 has version nibble 7 and RFC 9562's variant (10xx, the
     * digit 8, 9, a or b); other variants give the nibble other meanings. */
    if (!uuid_valid(s) || s[14] != '7' || strchr("89abAB", s[19]) == NULL)
        return -1;
    int64_t ms = 0;
    for (int i = 0; i < 13; i++) {
        if (s[i] == '-')
            continue;
        ms = ms << 4 | uuid_hexval(s[i]);
    }
    return ms;
}
