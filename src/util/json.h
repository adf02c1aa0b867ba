/*
 * Parsing JSON that comes from outside (a network body, a file, user or
 * model input). Its size is not ours to bound, so want of memory while
 * parsing is an ordinary error here, not the abort that building JSON from
 * our own data takes (util/alloc.h, alloc_json). Text we stored ourselves
 * (a memory's metadata, a job's payload) is parsed with cJSON directly.
 */
#ifndef MEMCHAT_UTIL_JSON_H
#define MEMCHAT_UTIL_JSON_H

#include <stdbool.h>
#include <stddef.h>

struct cJSON;

/* Parses text[0..len) like cJSON_ParseWithLengthOpts (end, when not NULL,
 * gets where parsing stopped; require_nul as in cJSON). NULL with errno
 * ENOMEM for want of memory, EINVAL for malformed text; never aborts.
 * The caller frees the result with cJSON_Delete. */
struct cJSON *json_parse(const char *text, size_t len, const char **end, bool require_nul);
/* json_parse of a whole NUL-terminated string (nothing may follow the
 * value but white space). */
struct cJSON *json_parse_str(const char *s);

#endif
