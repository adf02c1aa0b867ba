/*
 * UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then random bits, so ids
 * sort by creation time. Used for turns and memory ids in every store.
 */
#ifndef MEMCHAT_UTIL_UUID_H
#define MEMCHAT_UTIL_UUID_H

#include <stdbool.h>
#include <stdint.h>

#define UUID_STRLEN 36

/* Writes a new UUIDv7 as 36 lowercase characters plus NUL. Ids made by one
 * process are strictly increasing, even within one millisecond. */
void uuid7_new(char out[UUID_STRLEN + 1]);
/* True when s is a canonical lowercase or uppercase UUID of any version. */
bool uuid_valid(const char *s);
/* The Unix milliseconds in a UUIDv7 string; -1 when s is not a UUIDv7. */
int64_t uuid7_time_ms(const char *s);

#endif
