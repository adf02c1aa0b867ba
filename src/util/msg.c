/*
 * msg_set of msg.h: vsnprintf with the NULL checks every caller needs.
 */
#include "config.h"

#include "util/msg.h"

#include <stdarg.h>
#include <stdio.h>

void msg_set(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}
