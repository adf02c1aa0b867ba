/*
 * Whole-file I/O (see fileio.h). fileio_replace() is the classic
 * write-temp-fsync-rename-fsync-dir sequence: the temporary file lives in
 * the target's directory (rename is only atomic within one file system), is
 * chmod'ed explicitly (mkstemp creates 0600 and the umask must not decide a
 * keystore's mode), and is synced before the rename so the rename can never
 * publish a file whose blocks are not on disk. Syncing the directory makes
 * the rename itself durable.
 *
 * Every open, write, fsync, rename and link goes through the I/O fault seam
 * (util/iofault.h), which is the libc call itself unless a hardening test
 * armed it; each is retried on EINTR, as a signal handler may interrupt it.
 */
#include "config.h"

#include "util/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/iofault.h"

int fileio_write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = iofault_write(fd, c, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (w == 0) {
            /* No progress and no error: retrying could spin forever. */
            errno = EIO;
            return -1;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The directory part of path ("." when there is none); caller frees. */
static char *fileio_dirname(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        return xstrdup(".");
    while (slash > path && slash[-1] == '/')
        slash--;
    if (slash == path)
        return xstrdup("/");
    return xstrndup(path, (size_t)(slash - path));
}

int fileio_open(const char *path, int flags, mode_t mode)
{
    int fd;
    while ((fd = iofault_open(path, flags, mode)) < 0 && errno == EINTR)
        continue;
    return fd;
}

int fileio_fsync(int fd)
{
    int rc;
    while ((rc = iofault_fsync(fd)) != 0 && errno == EINTR)
        continue;
    return rc;
}

int fileio_link(const char *from, const char *to)
{
    int rc;
    while ((rc = iofault_link(from, to)) != 0 && errno == EINTR)
        continue;
    return rc;
}

int fileio_mkostemp(char *tmpl)
{
    size_t xs = strlen(tmpl) - 6;
    int fd;
    /* A failed attempt may have filled in the Xs: each retry starts anew. */
    do
        memcpy(tmpl + xs, "XXXXXX", 6);
    while ((fd = iofault_mkostemp(tmpl, O_CLOEXEC)) < 0 && errno == EINTR);
    return fd;
}

int fileio_sync_dir(const char *dir)
{
    int fd = fileio_open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int rc = fileio_fsync(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

int fileio_replace_begin(const char *path, mode_t mode, char **tmp, char *err, size_t errlen)
{
    *tmp = xasprintf("%s.tmp.XXXXXX", path);
    int fd = fileio_mkostemp(*tmp);
    const char *step = fd < 0 ? "create temporary file" : NULL;
    if (fd >= 0 && fchmod(fd, mode) != 0) {
        step = "fchmod";
        int saved = errno;
        close(fd);
        unlink(*tmp);
        errno = saved;
    }
    if (step == NULL)
        return fd;
    snprintf(err, errlen, "cannot write %s: %s: %s", path, step, strerror(errno));
    xfree(*tmp);
    *tmp = NULL;
    return -1;
}

int fileio_replace_end(const char *path, int fd, char *tmp, int write_errno, char *err,
                       size_t errlen)
{
    const char *step = NULL;
    int e = write_errno;
    if (e != 0)
        step = "write";
    else if (fileio_fsync(fd) != 0)
        step = "fsync", e = errno;
    if (close(fd) != 0 && step == NULL)
        step = "close", e = errno;
    if (step == NULL) {
        int rc;
        while ((rc = iofault_rename(tmp, path)) != 0 && errno == EINTR)
            continue;
        if (rc != 0)
            step = "rename", e = errno;
    }
    if (step != NULL) {
        unlink(tmp);
        xfree(tmp);
        snprintf(err, errlen, "cannot write %s: %s: %s", path, step, strerror(e));
        errno = e;
        return -1;
    }
    xfree(tmp);
    char *dir = fileio_dirname(path);
    int rc = 0;
    if (fileio_sync_dir(dir) != 0) {
        snprintf(err, errlen,
                 "cannot write %s: fsync directory %s: %s (the new content is in place but "
                 "may not survive a crash)",
                 path, dir, strerror(errno));
        rc = -1;
    }
    xfree(dir);
    return rc;
}

int fileio_replace(const char *path, const void *data, size_t n, mode_t mode, char *err,
                   size_t errlen)
{
    char *tmp;
    int fd = fileio_replace_begin(path, mode, &tmp, err, errlen);
    if (fd < 0)
        return -1;
    int e = fileio_write_all(fd, data, n) != 0 ? errno : 0;
    return fileio_replace_end(path, fd, tmp, e, err, errlen);
}

/* Reads fd to the end into a new buffer of at most max bytes (+ NUL).
 * 0, -1 with errno set on a read or allocation error (ENOMEM), or -3 when
 * there is more than max. */
static int fileio_slurp(int fd, size_t size_hint, size_t max, char **out, size_t *len)
{
    size_t cap = (size_hint < max ? size_hint : max) + 1; /* room + NUL */
    char *p = try_malloc(cap);
    if (p == NULL) {
        errno = ENOMEM;
        return -1;
    }
    size_t n = 0;
    for (;;) {
        if (n == cap - 1) {
            if (n >= max) {
                /* Full at the limit: one more byte means the file is too big. */
                char probe;
                ssize_t r = read(fd, &probe, 1);
                if (r < 0 && errno == EINTR)
                    continue;
                if (r < 0) {
                    xfree(p);
                    return -1;
                }
                if (r > 0) {
                    xfree(p);
                    return -3;
                }
                break;
            }
            size_t room = cap - 1 < 128 ? 256 : 2 * (cap - 1);
            if (cap - 1 > max / 2 || room > max)
                room = max;
            size_t ncap = room + 1;
            char *q = try_realloc(p, ncap);
            if (q == NULL) {
                xfree(p);
                errno = ENOMEM;
                return -1;
            }
            p = q;
            cap = ncap;
        }
        ssize_t r = read(fd, p + n, cap - 1 - n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int saved = errno;
            xfree(p);
            errno = saved;
            return -1;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    p[n] = '\0';
    *out = p;
    *len = n;
    return 0;
}

int fileio_read_all(const char *path, size_t max, char **out, size_t *len, char *err, size_t errlen)
{
    *out = NULL;
    if (len != NULL)
        *len = 0;
    if (max == SIZE_MAX)
        max--; /* room for the NUL */
    int fd = fileio_open(path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return errno == ENOENT ? -2 : -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "cannot read %s: fstat: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "cannot read %s: it is a directory", path);
        close(fd);
        return -1;
    }
    /* st_size is only a hint (the file may change, and is 0 for pipes and
     * proc files); the read loop enforces the limit either way. */
    if (S_ISREG(st.st_mode) && st.st_size > 0 && (uint64_t)st.st_size > max) {
        snprintf(err, errlen, "cannot read %s: larger than the limit of %zu bytes", path, max);
        close(fd);
        errno = EFBIG;
        return -1;
    }
    size_t hint = S_ISREG(st.st_mode) && st.st_size > 0 ? (size_t)st.st_size : 0;
    char *data;
    size_t n;
    int rc = fileio_slurp(fd, hint, max, &data, &n);
    int saved = errno;
    close(fd);
    if (rc == -3) {
        snprintf(err, errlen, "cannot read %s: larger than the limit of %zu bytes", path, max);
        errno = EFBIG;
        return -1;
    }
    if (rc != 0) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(saved));
        return -1;
    }
    *out = data;
    if (len != NULL)
        *len = n;
    return 0;
}
