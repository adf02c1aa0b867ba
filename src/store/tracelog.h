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
 * max_bytes is still written, alone in a fresh file. A file removed,
 * rotated or purged by someone else is followed (reopened or created
 * again); a line never goes into a file no name links to. 0, or -1 with a
 * message naming the path and the cause in err ("No space left on device",
 * or other processes replacing the file thousands of times in a row); on
 * -1 the line was not added (a partial write is cut off). */
int tracelog_write(struct tracelog *tl, const struct cJSON *record, char *err, size_t errlen);
/* The path of the current file (dir/traces.jsonl), owned by tl. */
const char *tracelog_path(const struct tracelog *tl);
/* Removes from dir/traces.jsonl and every rotated dir/traces.jsonl.N the
 * records (lines) whose trace.metadata.tenant is tenant and, when user is
 * not NULL, whose trace.metadata.user is user; every other line (another
 * tenant or user, not JSON, no metadata) stays byte for byte, in order.
 * Each file with something to remove is rewritten under the writers' lock
 * (tracelog_write in any process waits, then follows the new file, so no
 * line is lost) into a 0600 temporary file in dir that is fsynced and
 * renamed over it: a crash leaves the old file or the new one. tenant (and
 * user) must be identifiers (util/ident.h). A missing dir or file is not an
 * error. *removed gets the lines removed (on -1, those of the files already
 * rewritten: running again finishes). 0, or -1 with a message naming the
 * file and the system error in err. */
int tracelog_purge(const char *dir, const char *tenant, const char *user, size_t *removed,
                   char *err, size_t errlen);
/* Closes the file and frees tl; NULL is a no-op. */
void tracelog_free(struct tracelog *tl);

#endif
