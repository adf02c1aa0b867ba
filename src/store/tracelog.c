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
 *
 * A purge rewrites files under the same lock: it locks the current file
 * (creating it, empty, when only rotated files are left, since rotation
 * runs under that lock), rewrites the rotated files, then writes the new
 * current file, locks it and renames it over the old one before letting
 * go. A writer that waited for the old file's lock finds it replaced and
 * follows the path to the new one, whose lock it gets only after the purge
 * is done; no line lands in a file that is then thrown away.
 */
#include "config.h"

#include "store/tracelog.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>

#include "util/alloc.h"
#include "util/buf.h"
#include "util/fileio.h"
#include "util/json.h"
#include "util/ident.h"
#include "util/paths.h"

#define TRACELOG_FILE "traces.jsonl"
/* Rounds of "lock, find the file rotated or full, let go" before writing
 * into whatever file is locked: only a storm of rotations by other
 * processes gets here, and a line in a slightly wrong file beats a lost
 * one. */
#define TRACELOG_MAX_ROUNDS 64
/* A locked file that no name links to any more (replaced by a purge,
 * removed, dropped by rotation with keep 0) would swallow the line, so the
 * writer tries on past TRACELOG_MAX_ROUNDS, up to this many rounds, and
 * then gives up with an error rather than lose the line silently. A purge
 * locks the current file with the same bound. */
#define TRACELOG_MAX_ROUNDS_GONE 4096
/* A purge's temporary files: hidden, and no match for traces.jsonl.N. */
#define TRACELOG_PURGE_TMP ".traces.jsonl.purge-"
/* Bytes a purge reads and writes at a time. */
#define TRACELOG_PURGE_CHUNK 65536

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

/* The size of the open file in *size, and in *linked whether any name
 * still links to it; true when the path still names it. */
static bool tracelog_is_current(const struct tracelog *tl, long long *size, bool *linked)
{
    struct stat open_st, path_st;
    *size = 0;
    *linked = false;
    if (fstat(tl->fd, &open_st) != 0)
        return false;
    *size = (long long)open_st.st_size;
    *linked = open_st.st_nlink > 0;
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
        bool linked;
        if (!tracelog_is_current(tl, &size, &linked) && (!last || !linked)) {
            /* Rotated by another process, or removed: follow the path. */
            tracelog_close_fd(tl);
            if (round >= TRACELOG_MAX_ROUNDS_GONE) {
                snprintf(err, errlen,
                         "cannot write trace log %s: other processes replaced it %d times "
                         "in a row",
                         tl->path, round + 1);
                return -1;
            }
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
    /* A record holds the turn's text: its size is not ours to bound. */
    alloc_fallible_begin();
    char *json = cJSON_PrintUnformatted(record);
    alloc_fallible_end();
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

/* --- purge ---------------------------------------------------------------- */

/* Whether name is a rotated trace file: traces.jsonl.<digits>. */
static bool tracelog_is_rotated(const char *name)
{
    size_t n = strlen(TRACELOG_FILE);
    if (strncmp(name, TRACELOG_FILE, n) != 0 || name[n] != '.' || name[n + 1] == '\0')
        return false;
    for (const char *p = name + n + 1; *p != '\0'; p++)
        if (*p < '0' || *p > '9')
            return false;
    return true;
}

/* The rotated files of dir (their full paths, in *paths, *n of them; free
 * each and the array with xfree) and whether traces.jsonl is there. With
 * clean, also removes temporary files a purge left behind when it crashed
 * (the caller holds the lock, so no purge is running). 1 when dir does not
 * exist, 0, or -1 with err set. */
static int tracelog_list(const char *dir, bool clean, char ***paths, size_t *n, bool *has_current,
                         char *err, size_t errlen)
{
    *paths = NULL;
    *n = 0;
    *has_current = false;
    DIR *d = opendir(dir);
    if (d == NULL) {
        if (errno == ENOENT)
            return 1;
        snprintf(err, errlen, "cannot list trace log directory %s: %s", dir, strerror(errno));
        return -1;
    }
    size_t cap = 0;
    struct dirent *de;
    for (errno = 0; (de = readdir(d)) != NULL; errno = 0) {
        if (strcmp(de->d_name, TRACELOG_FILE) == 0) {
            *has_current = true;
        } else if (tracelog_is_rotated(de->d_name)) {
            if (*n == cap) {
                cap = cap == 0 ? 8 : cap * 2;
                *paths = xrealloc(*paths, cap * sizeof **paths);
            }
            (*paths)[(*n)++] = paths_join(dir, de->d_name);
        } else if (clean &&
                   strncmp(de->d_name, TRACELOG_PURGE_TMP, strlen(TRACELOG_PURGE_TMP)) == 0) {
            char *p = paths_join(dir, de->d_name);
            if (unlink(p) != 0) {
                /* Harmless: it is hidden and never read. */
            }
            xfree(p);
        }
    }
    int saved = errno;
    closedir(d);
    if (saved != 0) {
        snprintf(err, errlen, "cannot list trace log directory %s: %s", dir, strerror(saved));
        for (size_t i = 0; i < *n; i++)
            xfree((*paths)[i]);
        xfree(*paths);
        *paths = NULL;
        *n = 0;
        return -1;
    }
    return 0;
}

/* Locks the current file of the log at path the way writers do, creating it
 * empty when missing; the locked descriptor in *fd. 1 when the directory is
 * gone, 0, or -1 with err set. */
static int tracelog_purge_lock(const char *path, int *fd, char *err, size_t errlen)
{
    *fd = -1;
    for (int round = 0; round < TRACELOG_MAX_ROUNDS_GONE; round++) {
        int f = open(path, O_RDONLY | O_CLOEXEC);
        if (f < 0 && errno == ENOENT) {
            f = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
            if (f < 0 && errno == EEXIST)
                continue; /* a writer created it meanwhile */
            if (f < 0 && errno == ENOENT)
                return 1;
            if (f >= 0 && fchmod(f, 0600) != 0) {
                snprintf(err, errlen, "cannot set the mode of trace log %s: %s", path,
                         strerror(errno));
                close(f);
                return -1;
            }
        }
        if (f < 0) {
            snprintf(err, errlen, "cannot open trace log %s: %s", path, strerror(errno));
            return -1;
        }
        if (tracelog_flock(f, LOCK_EX) != 0) {
            snprintf(err, errlen, "cannot lock trace log %s: %s", path, strerror(errno));
            close(f);
            return -1;
        }
        struct stat open_st, path_st;
        if (fstat(f, &open_st) == 0 && stat(path, &path_st) == 0 &&
            open_st.st_dev == path_st.st_dev && open_st.st_ino == path_st.st_ino) {
            *fd = f;
            return 0;
        }
        /* Rotated or replaced while we waited: lock the new one. */
        flock(f, LOCK_UN);
        close(f);
    }
    snprintf(err, errlen, "cannot lock trace log %s: other processes keep replacing it", path);
    return -1;
}

/* 1 when the n bytes of line (no newline) are exactly one JSON record of
 * the tenant (and user), 0 when not (malformed text included: not ours to
 * remove), -1 with errno ENOMEM when it could not be parsed for want of
 * memory: a purge must fail then, not keep the line unnoticed. */
static int tracelog_record_matches(const char *line, size_t n, const char *tenant, const char *user)
{
    const char *end = NULL;
    cJSON *r = json_parse(line, n, &end, false);
    if (r == NULL)
        return errno == ENOMEM ? -1 : 0;
    /* Only trailing whitespace may follow the value. */
    while (end < line + n && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
        end++;
    const cJSON *meta =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "trace"), "metadata");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(meta, "tenant");
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(meta, "user");
    bool match = end == line + n && cJSON_IsObject(meta) && cJSON_IsString(t) &&
                 strcmp(t->valuestring, tenant) == 0 &&
                 (user == NULL || (cJSON_IsString(u) && strcmp(u->valuestring, user) == 0));
    cJSON_Delete(r);
    return match;
}

/* Where a file's kept lines go. */
struct tracelog_sink {
    int fd;
    struct buf out; /* pending bytes, written at TRACELOG_PURGE_CHUNK */
    size_t removed;
};

/* Handles one line (with its newline, if any): counted when it matches,
 * else queued for the new file. 0, or -1 with errno set. */
static int tracelog_purge_line(struct tracelog_sink *s, const struct buf *line, const char *tenant,
                               const char *user)
{
    size_t n = line->len;
    if (n > 0 && line->data[n - 1] == '\n')
        n--;
    int match = tracelog_record_matches(line->data, n, tenant, user);
    if (match != 0) {
        s->removed += match > 0;
        return match > 0 ? 0 : -1;
    }
    if (s->out.len > 0 && s->out.len + line->len > TRACELOG_PURGE_CHUNK) {
        if (fileio_write_all(s->fd, s->out.data, s->out.len) != 0)
            return -1;
        buf_reset(&s->out);
    }
    if (line->len > TRACELOG_PURGE_CHUNK) /* alone: no copy */
        return fileio_write_all(s->fd, line->data, line->len);
    if (buf_append(&s->out, line->data, line->len) != BUF_OK) {
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

/* Streams in (the file at path) line by line into s. 0, or -1 with err
 * set. */
static int tracelog_purge_stream(int in, const char *path, struct tracelog_sink *s,
                                 const char *tenant, const char *user, char *err, size_t errlen)
{
    char *chunk = xmalloc(TRACELOG_PURGE_CHUNK);
    struct buf line;
    /* A line is as long as its record: tracelog_write does not bound it. */
    buf_init(&line, SIZE_MAX / 2);
    int rc = 0;
    for (;;) {
        ssize_t got = read(in, chunk, TRACELOG_PURGE_CHUNK);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            snprintf(err, errlen, "cannot read trace log %s: %s", path, strerror(errno));
            rc = -1;
            break;
        }
        if (got == 0)
            break;
        const char *p = chunk, *stop = chunk + got;
        while (p < stop && rc == 0) {
            const char *nl = memchr(p, '\n', (size_t)(stop - p));
            const char *q = nl != NULL ? nl + 1 : stop;
            if (buf_append(&line, p, (size_t)(q - p)) != BUF_OK) {
                snprintf(err, errlen, "cannot purge trace log %s: out of memory for a line", path);
                rc = -1;
            } else if (nl != NULL) {
                if (tracelog_purge_line(s, &line, tenant, user) != 0) {
                    snprintf(err, errlen, "cannot write the purged copy of trace log %s: %s", path,
                             strerror(errno));
                    rc = -1;
                }
                buf_reset(&line);
            }
            p = q;
        }
        if (rc != 0)
            break;
    }
    /* A last line without a newline counts like the others. */
    if (rc == 0 && line.len > 0 && tracelog_purge_line(s, &line, tenant, user) != 0) {
        snprintf(err, errlen, "cannot write the purged copy of trace log %s: %s", path,
                 strerror(errno));
        rc = -1;
    }
    if (rc == 0 && s->out.len > 0 && fileio_write_all(s->fd, s->out.data, s->out.len) != 0) {
        snprintf(err, errlen, "cannot write the purged copy of trace log %s: %s", path,
                 strerror(errno));
        rc = -1;
    }
    buf_free(&line);
    xfree(chunk);
    return rc;
}

/* Rewrites the file at path without the tenant's (user's) lines, when it
 * has any: kept lines to a temporary file in dir, fsync, rename over path.
 * With locked_fd non-NULL the new file is locked before the rename and its
 * descriptor left in *locked_fd (-1 when nothing was replaced), so writers
 * wait for the caller. Adds the lines removed to *removed and sets
 * *replaced. A missing file is skipped. 0, or -1 with err set. */
static int tracelog_purge_file(const char *dir, const char *path, const char *tenant,
                               const char *user, int *locked_fd, size_t *removed, bool *replaced,
                               char *err, size_t errlen)
{
    if (locked_fd != NULL)
        *locked_fd = -1;
    int in = open(path, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "cannot read trace log %s: %s", path, strerror(errno));
        return -1;
    }
    char *tmp = xasprintf("%s/" TRACELOG_PURGE_TMP "XXXXXX", dir);
    struct tracelog_sink s = {.fd = mkostemp(tmp, O_CLOEXEC)};
    if (s.fd < 0) {
        snprintf(err, errlen, "cannot purge trace log %s: cannot create %s: %s", path, tmp,
                 strerror(errno));
        close(in);
        xfree(tmp);
        return -1;
    }
    buf_init(&s.out, TRACELOG_PURGE_CHUNK);
    int rc = tracelog_purge_stream(in, path, &s, tenant, user, err, errlen);
    close(in);
    buf_free(&s.out);
    const char *step = NULL;
    if (rc == 0 && s.removed > 0) {
        /* Exactly 0600, whatever the umask; durable before it replaces. */
        if (fchmod(s.fd, 0600) != 0)
            step = "chmod";
        else if (fsync(s.fd) != 0)
            step = "fsync";
        else if (locked_fd != NULL && tracelog_flock(s.fd, LOCK_EX) != 0)
            step = "lock";
        else if (rename(tmp, path) != 0)
            step = "rename";
        if (step != NULL) {
            snprintf(err, errlen, "cannot write the purged copy of trace log %s: %s %s: %s", path,
                     step, tmp, strerror(errno));
            rc = -1;
        }
    }
    if (rc == 0 && s.removed > 0) {
        *removed += s.removed;
        *replaced = true;
        if (locked_fd != NULL)
            *locked_fd = s.fd;
        else
            close(s.fd);
    } else {
        /* Nothing to remove, or a failure: the old file stays as it was. */
        close(s.fd);
        unlink(tmp);
    }
    xfree(tmp);
    return rc;
}

int tracelog_purge(const char *dir, const char *tenant, const char *user, size_t *removed,
                   char *err, size_t errlen)
{
    *removed = 0;
    if (tenant == NULL || !ident_valid(tenant) || (user != NULL && !ident_valid(user))) {
        snprintf(err, errlen,
                 "cannot purge trace log in %s: tenant \"%s\" and user \"%s\" must be "
                 "1 to 64 of A-Z a-z 0-9 _ -",
                 dir, tenant != NULL ? tenant : "(null)", user != NULL ? user : "(none)");
        return -1;
    }
    char **paths = NULL;
    size_t n = 0;
    bool has_current;
    /* A first look, so that a directory with no trace files stays as it
     * is (locking creates traces.jsonl). */
    int rc = tracelog_list(dir, false, &paths, &n, &has_current, err, errlen);
    for (size_t i = 0; i < n; i++)
        xfree(paths[i]);
    xfree(paths);
    paths = NULL;
    if (rc != 0 || (n == 0 && !has_current))
        return rc < 0 ? -1 : 0;

    char *path = paths_join(dir, TRACELOG_FILE);
    int lock_fd = -1, new_fd = -1;
    rc = tracelog_purge_lock(path, &lock_fd, err, errlen);
    if (rc != 0) {
        xfree(path);
        return rc < 0 ? -1 : 0;
    }
    /* Again under the lock: rotation may have moved files meanwhile. */
    bool replaced = false;
    rc = tracelog_list(dir, true, &paths, &n, &has_current, err, errlen);
    if (rc > 0)
        rc = 0; /* the directory went away under us: nothing left to purge */
    for (size_t i = 0; i < n && rc == 0; i++)
        rc =
            tracelog_purge_file(dir, paths[i], tenant, user, NULL, removed, &replaced, err, errlen);
    /* The current file last: once the new one is in place, writers may
     * rotate again as soon as we let go. */
    if (rc == 0)
        rc = tracelog_purge_file(dir, path, tenant, user, &new_fd, removed, &replaced, err, errlen);
    if (replaced && fileio_sync_dir(dir) != 0 && rc == 0) {
        snprintf(err, errlen,
                 "purged trace log %s, but cannot sync directory %s (the purge may not "
                 "survive a crash): %s",
                 path, dir, strerror(errno));
        rc = -1;
    }
    if (new_fd >= 0) {
        flock(new_fd, LOCK_UN);
        close(new_fd);
    }
    flock(lock_fd, LOCK_UN);
    close(lock_fd);
    for (size_t i = 0; i < n; i++)
        xfree(paths[i]);
    xfree(paths);
    xfree(path);
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
