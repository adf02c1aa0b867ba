/*
 * The trace log: traces/traces.jsonl in the data dir, one trace record
 * (client/trace.h) per line, rotated by size to traces.jsonl.1 (the newest)
 * .. traces.jsonl.<keep>. Several memchat processes may append to the same
 * directory at once: each line goes out whole under an exclusive flock, and
 * a process notices when another one rotated the file under it.
 */
#ifndef MEMCHAT_STORE_TRACELOG_H
#define MEMCHAT_STORE_TRACELOG_H

#include <stddef.h>

struct cJSON;
struct tracelog;

/* Opens the trace log dir/traces.jsonl, creating dir (mode 0700) and the
 * file (mode 0600) when missing. Rotation: when the file plus the next line
 * would pass max_bytes (<= 0: never), traces.jsonl becomes traces.jsonl.1,
 * .1 becomes .2, ..., and only `keep` (>= 0) rotated files remain. NULL with
 * a message naming the path and the system error in err. Free with
 * tracelog_free. */
struct tracelog *tracelog_open(const char *dir, long long max_bytes, int keep, char *err,
                               size_t errlen);
/* Appends record as one line (compact JSON and '\n') with one write on an
 * O_APPEND descriptor, rotating first when needed; a line larger than
 * max_bytes is still written, alone in a fresh file. A file removed or
 * rotated by someone else is followed (reopened or created again). 0, or -1
 * with a message naming the path and the cause in err ("No space left on
 * device"); on -1 the line was not added (a partial write is cut off). */
int tracelog_write(struct tracelog *tl, const struct cJSON *record, char *err, size_t errlen);
/* The path of the current file (dir/traces.jsonl), owned by tl. */
const char *tracelog_path(const struct tracelog *tl);
/* Closes the file and frees tl; NULL is a no-op. */
void tracelog_free(struct tracelog *tl);

#endif
