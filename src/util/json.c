/*
 * Parsing outside JSON inside a fallible section (util/json.h), so a
 * parser never ends the program and its caller can say whether the text
 * was bad or memory ran out.
 */
#include "config.h"

#include "util/json.h"

#include <errno.h>
#include <string.h>

#include <cJSON.h>

#include "util/alloc.h"

struct cJSON *json_parse(const char *text, size_t len, const char **end, bool require_nul)
{
    alloc_fallible_begin();
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, end, require_nul);
    int no_memory = alloc_fallible_end();
    if (j == NULL)
        errno = no_memory ? ENOMEM : EINVAL;
    return j;
}

struct cJSON *json_parse_str(const char *s)
{
    return json_parse(s, strlen(s) + 1, NULL, true);
}
