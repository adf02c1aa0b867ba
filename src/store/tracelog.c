/*
 * The trace log (store/tracelog.h). Appends share the file between
 * processes with two mechanisms: O_APPEND makes each write land at the end,
 * and an exclusive flock on the file makes "check the size, maybe rotate,
 * write" one step, so two processes never both rotate, nor write into a file
 * the other is renaming away.
 *
 * A lock belongs to an inode, not to the name: a process that waited for the
 * lock while another rotated holds, once it gets it, the lock of what is now
 * traces.jsonl.1. So after locking, the file behind the descriptor is
 * compared with the one the path names (st_dev and st_ino), and when they
 * differ (rotated, or removed by the user) the log reopens the path and
 * tries again.
 */
#include "config.h"

#include "store/tracelog.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>

#include "util/alloc.h"
#include "util/fileio.h"
#include "util/paths.h"

#define TRACELOG_FILE "traces.jsonl"
/* Rounds of "lock, find the file rotated or full, let go" before writing
 * into whatever file is locked: only a storm of rotations by other
 * processes gets here, and a line in a slightly wrong file beats a lost
 * one. */
#define TRACELOG_MAX_ROUNDS 64

struct tracelog {
    char *dir;
    char *path; /* dir/traces.jsonl */
    int fd;     /* O_APPEND; -1 until (re)opened at the next write */
    long long max_bytes;
    int keep;
};

/* Unlocks and closes the descriptor. The explicit unlock matters: close
 * drops the lock only when no forked child still shares the open file. */
static void tracelog_close_fd(struct tracelog *tl)
{
    if (tl->fd >= 0) {
        flock(tl->fd, LOCK_UN);
        close(tl->fd);
    }
    tl->fd = -1;
}

/* Opens the path, creating the file with mode 0600 (and the directory
 * again when the user removed it). 0, or -1 with err set. */
static int tracelog_open_fd(struct tracelog *tl, char *err, size_t errlen)
{
    tracelog_close_fd(tl);
    /* Three rounds cover a file or directory removed between two calls. */
    for (int round = 0; round < 3; round++) {
        int fd = open(tl->path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) {
            /* Created here: exactly 0600, whatever the umask. */
            if (fchmod(fd, 0600) != 0) {
                snprintf(err, errlen, "cannot set the mode of trace log %s: %s", tl->path,
                         strerror(errno));
                close(fd);
                return -1;
            }
            tl->fd = fd;
            return 0;
        }
        if (errno == EEXIST) {
            fd = open(tl->path, O_WRONLY | O_APPEND | O_CLOEXEC);
            if (fd >= 0) {
                tl->fd = fd;
                return 0;
            }
            if (errno == ENOENT)
                continue;
        } else if (errno == ENOENT) {
            if (paths_mkdir_p(tl->dir, 0700, err, errlen) != 0)
                return -1;
            continue;
        }
        break;
    }
    snprintf(err, errlen, "cannot open trace log %s: %s", tl->path, strerror(errno));
    return -1;
}

/* flock that outlasts signals. */
static int tracelog_flock(int fd, int op)
{
    while (flock(fd, op) != 0) {
        if (errno != EINTR)
            return -1;
    }
    return 0;
}

/* The size of the open file in *size; true when the path still names it. */
static bool tracelog_is_current(const struct tracelog *tl, long long *size)
{
    struct stat open_st, path_st;
    *size = 0;
    if (fstat(tl->fd, &open_st) != 0)
        return false;
    *size = (long long)open_st.st_size;
    if (stat(tl->path, &path_st) != 0)
        return false;
    return open_st.st_dev == path_st.st_dev && open_st.st_ino == path_st.st_ino;
}

/* Removes path.n, tolerating its absence. */
static int tracelog_remove_nth(const struct tracelog *tl, int n, bool *gone, char *err,
                               size_t errlen)
{
    char *p = xasprintf("%s.%d", tl->path, n);
    int rc = 0;
    *gone = false;
    if (unlink(p) != 0) {
        if (errno == ENOENT) {
            *gone = true;
        } else {
            snprintf(err, errlen, "cannot remove old trace log %s: %s", p, strerror(errno));
            rc = -1;
        }
    }
    xfree(p);
    return rc;
}

/* Shifts the rotated files up by one and moves the current file to .1,
 * dropping what would pass `keep`. The caller holds the lock. */
static int tracelog_rotate(const struct tracelog *tl, char *err, size_t errlen)
{
    if (tl->keep == 0) {
        if (unlink(tl->path) != 0 && errno != ENOENT) {
            snprintf(err, errlen, "cannot remove full trace log %s: %s", tl->path, strerror(errno));
            return -1;
        }
        return 0;
    }
    /* The oldest goes, and so do files left by a larger `keep` before. */
    for (int n = tl->keep; n < INT_MAX; n++) {
        bool gone;
        if (tracelog_remove_nth(tl, n, &gone, err, errlen) != 0)
            return -1;
        if (gone && n > tl->keep)
            break;
    }
    for (int n = tl->keep - 1; n >= 0; n--) {
        char *from = n == 0 ? xstrdup(tl->path) : xasprintf("%s.%d", tl->path, n);
        char *to = xasprintf("%s.%d", tl->path, n + 1);
        int rc = 0;
        if (rename(from, to) != 0 && errno != ENOENT) {
            snprintf(err, errlen, "cannot rotate trace log %s to %s: %s", from, to,
                     strerror(errno));
            rc = -1;
        }
        xfree(from);
        xfree(to);
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* Appends the n bytes of line under the lock, rotating first when the file
 * is full; see the top of the file. */
static int tracelog_append(struct tracelog *tl, const char *line, size_t n, char *err,
                           size_t errlen)
{
    for (int round = 0;; round++) {
        bool last = round >= TRACELOG_MAX_ROUNDS;
        if (tl->fd < 0 && tracelog_open_fd(tl, err, errlen) != 0)
            return -1;
        if (tracelog_flock(tl->fd, LOCK_EX) != 0) {
            snprintf(err, errlen, "cannot lock trace log %s: %s", tl->path, strerror(errno));
            tracelog_close_fd(tl);
            return -1;
        }
        long long size;
        if (!tracelog_is_current(tl, &size) && !last) {
            /* Rotated by another process, or removed: follow the path. */
            tracelog_close_fd(tl);
            continue;
        }
        /* size > 0: a line too long for any file still goes in a fresh one. */
        if (tl->max_bytes > 0 && size > 0 && size + (long long)n > tl->max_bytes && !last) {
            int rc = tracelog_rotate(tl, err, errlen);
            tracelog_close_fd(tl);
            if (rc != 0)
                return -1;
            continue;
        }
        int rc = 0;
        if (fileio_write_all(tl->fd, line, n) != 0) {
            int saved = errno;
            /* Readers take the file line by line: cut a partial line off
             * again (the lock keeps other writers out meanwhile). */
            if (ftruncate(tl->fd, (off_t)size) != 0) {
                /* Nothing better to do: the error below is the news. */
            }
            snprintf(err, errlen, "cannot write trace log %s: %s", tl->path, strerror(saved));
            rc = -1;
        }
        tracelog_flock(tl->fd, LOCK_UN);
        return rc;
    }
}

struct tracelog *tracelog_open(const char *dir, long long max_bytes, int keep, char *err,
                               size_t errlen)
{
    if (keep < 0) {
        snprintf(err, errlen, "trace log %s: keep must be 0 or more, not %d", dir, keep);
        return NULL;
    }
    if (paths_mkdir_p(dir, 0700, err, errlen) != 0)
        return NULL;
    struct tracelog *tl = xcalloc(1, sizeof *tl);
    tl->dir = xstrdup(dir);
    tl->path = paths_join(dir, TRACELOG_FILE);
    tl->fd = -1;
    tl->max_bytes = max_bytes;
    tl->keep = keep;
    if (tracelog_open_fd(tl, err, errlen) != 0) {
        tracelog_free(tl);
        return NULL;
    }
    return tl;
}

int tracelog_write(struct tracelog *tl, const cJSON *record, char *err, size_t errlen)
{
    char *json = cJSON_PrintUnformatted(record);
    if (json == NULL) {
        snprintf(err, errlen, "cannot write trace log %s: out of memory formatting the record",
                 tl->path);
        return -1;
    }
    /* One buffer, so the line and its newline go out in one write. */
    size_t n = strlen(json);
    char *line = try_malloc(n + 1);
    if (line == NULL) {
        cJSON_free(json);
        snprintf(err, errlen, "cannot write trace log %s: out of memory (%zu bytes)", tl->path,
                 n + 1);
        return -1;
    }
    memcpy(line, json, n);
    line[n] = '\n';
    cJSON_free(json);
    int rc = tracelog_append(tl, line, n + 1, err, errlen);
    xfree(line);
    return rc;
}

const char *tracelog_path(const struct tracelog *tl)
{
    return tl->path;
}

void tracelog_free(struct tracelog *tl)
{
    if (tl == NULL)
        return;
    tracelog_close_fd(tl);
    xfree(tl->dir);
    xfree(tl->path);
    xfree(tl);
}
