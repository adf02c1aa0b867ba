/*
 * An incremental newline-delimited JSON splitter (Ollama's native stream,
 * api-notes.md §0.2): fed arbitrary byte slices, it hands over each complete
 * line (without its LF or a trailing CR). Blank lines (only spaces, tabs or
 * a CR) are skipped. It does not parse the JSON: a line that is not JSON is
 * the caller's to count and skip.
 */
#ifndef MEMCHAT_NET_NDJSON_H
#define MEMCHAT_NET_NDJSON_H

#include <stddef.h>

/* Receives one line (NUL-terminated, valid during the call); nonzero stops
 * (use a positive value: the negative ones are this module's errors). */
typedef int (*ndjson_line_fn)(void *ud, const char *line, size_t len);

struct ndjson_parser;

/* A splitter that holds at most max_line bytes of one line (without its
 * LF, with a trailing CR). Never NULL. Free with ndjson_free(). */
struct ndjson_parser *ndjson_new(size_t max_line, ndjson_line_fn fn, void *ud);
/* NULL is a no-op. */
void ndjson_free(struct ndjson_parser *p);
/* Feeds len bytes: 0, NDJSON_TOO_BIG, NDJSON_NO_MEM, or the callback's
 * nonzero value. Any nonzero result is sticky: later calls return it. */
int ndjson_feed(struct ndjson_parser *p, const char *data, size_t len);
/* End of stream: a last line without LF is handed over. 0, the callback's
 * value, or the sticky earlier error. */
int ndjson_finish(struct ndjson_parser *p);

#define NDJSON_TOO_BIG (-1)
#define NDJSON_NO_MEM  (-2)

#endif
