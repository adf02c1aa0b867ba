/* Identifier validation: see ident.h. */
#include "config.h"

#include "util/ident.h"

#include <stddef.h>

bool ident_valid(const char *s)
{
    if (s == NULL)
        return false;
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        char c = s[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        if (!ok || n >= IDENT_MAX)
            return false;
    }
    return n > 0;
}
