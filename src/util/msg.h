/*
 * Error messages into the caller's buffer: every module returns errors as
 * values with a message buffer (the house rule), and they all fill it the
 * same way.
 */
#ifndef MEMCHAT_UTIL_MSG_H
#define MEMCHAT_UTIL_MSG_H

#include <stddef.h>

#include "util/alloc.h"

/* printf into err[0..errlen), always NUL-terminated; err may be NULL (or
 * errlen 0): then nothing is written. */
void msg_set(char *err, size_t errlen, const char *fmt, ...) MC_PRINTF(3, 4);

#endif
