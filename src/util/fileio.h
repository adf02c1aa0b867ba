/*
 * Whole-file I/O that loses nothing: reading with a size bound, and atomic
 * replacement (a temporary file in the same directory, write all, fsync,
 * rename over the target, fsync the directory), so a reader or a crash sees
 * the old content or the new, never a mix.
 */
#ifndef MEMCHAT_UTIL_FILEIO_H
#define MEMCHAT_UTIL_FILEIO_H

#include <stddef.h>
#include <sys/types.h>

/* open(2) through the I/O fault seam (util/iofault), retried on EINTR:
 * every open of the data file, the keystore and the index goes here. */
int fileio_open(const char *path, int flags, mode_t mode);
/* fsync(2) through the seam, retried on EINTR. */
int fileio_fsync(int fd);
/* link(2) through the seam (counted as a rename), retried on EINTR: puts
 * a finished file in place only if nothing is there (EEXIST). */
int fileio_link(const char *from, const char *to);
/* mkostemp(3) with O_CLOEXEC through the seam (counted as an open),
 * retried on EINTR; tmpl ends in XXXXXX, filled in on success. */
int fileio_mkostemp(char *tmpl);
/* Writes all n bytes to fd, retrying on EINTR and short writes. 0 or -1
 * (errno set). */
int fileio_write_all(int fd, const void *p, size_t n);
/* fsyncs directory dir, so a completed rename or link in it survives a
 * crash. 0, or -1 with errno set. */
int fileio_sync_dir(const char *dir);
/* Replaces path with data[0..n) atomically, the new file created with mode
 * (exactly: the umask does not apply). 0, or -1 with a message naming the
 * path and the failing step in err ("cannot write P: fsync: ..."); on
 * failure the old file is untouched and no temporary file is left. The one
 * exception is a failure to sync the directory after the rename: the new
 * content is then in place, and the message says it may not survive a
 * crash. */
int fileio_replace(const char *path, const void *data, size_t n, mode_t mode, char *err,
                   size_t errlen);
/* The same replacement for content written piece by piece: creates the
 * temporary file beside path (mode exactly mode) and returns its fd, with
 * its name in *tmp; -1 with a message in err (nothing left behind). */
int fileio_replace_begin(const char *path, mode_t mode, char **tmp, char *err, size_t errlen);
/* Ends what fileio_replace_begin started, taking fd and tmp over: when
 * write_errno is 0, fsync, close, rename over path and fsync the
 * directory, as fileio_replace; else (a write failed with that errno) the
 * temporary file is removed and err says "write". 0 or -1 with errno set. */
int fileio_replace_end(const char *path, int fd, char *tmp, int write_errno, char *err,
                       size_t errlen);
/* Reads the whole of path into *out (NUL-terminated; free with xfree) and
 * its length into *len (len may be NULL). Fails (-1, message in err naming
 * the path, and the limit when that is the cause; errno EFBIG then) when
 * the file is larger than max bytes, a directory or unreadable. Returns -2 (message set too)
 * when the file does not exist. *out is NULL on every failure. */
int fileio_read_all(const char *path, size_t max, char **out, size_t *len, char *err,
                    size_t errlen);

#endif
