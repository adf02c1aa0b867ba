/*
 * The SQLite shim of the I/O fault seam (see faultvfs.h). It works at two
 * levels, because SQLite's "unix" VFS does the retrying that must be
 * tested:
 *
 *   - its system calls open, write, pwrite/pwrite64, ftruncate and unlink
 *     are replaced (xSetSystemCall) by wrappers that ask the seam, so an
 *     injected EINTR or short write meets SQLite's own retry loops, and an
 *     EIO or ENOSPC comes back through them as SQLite's error code;
 *   - fsync cannot be replaced that way, so a VFS "memchat-fault" wraps
 *     "unix" and asks the seam in xSync; every other method is passed on.
 *
 * SQLite retries neither an interrupted fsync nor an interrupted unlink
 * (local file systems never interrupt them): for those two the shim itself
 * makes the retry an injected EINTR asks for, so only eio and enospc fail
 * them. Replacing system calls is not thread-safe, which is why it happens
 * once, before the first connection opens (faultvfs_install).
 */
#include "config.h"

#include "store/faultvfs.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/types.h>
#include <unistd.h>

#include <sqlite3.h>

#include "util/iofault.h"

#define FAULTVFS_NAME "memchat-fault"

/* A file of the shim: the unix VFS's own file follows it in the block
 * SQLite allocates (szOsFile covers both). */
struct fv_file {
    sqlite3_file base;
    sqlite3_file *real;
};

typedef int (*fv_open_fn)(const char *, int, int);
typedef ssize_t (*fv_write_fn)(int, const void *, size_t);
typedef ssize_t (*fv_pwrite_fn)(int, const void *, size_t, off_t);
typedef int (*fv_ftruncate_fn)(int, off_t);
typedef int (*fv_unlink_fn)(const char *);

static sqlite3_vfs *fv_unix;
static sqlite3_vfs fv_vfs;
static sqlite3_io_methods fv_io[3];
static const char *fv_name;
static pthread_once_t fv_once = PTHREAD_ONCE_INIT;

static fv_open_fn sys_open;
static fv_write_fn sys_write;
static fv_pwrite_fn sys_pwrite, sys_pwrite64;
static fv_ftruncate_fn sys_ftruncate;
static fv_unlink_fn sys_unlink;

/* --- the replaced system calls -------------------------------------------- */

/* The errno to fail a call of op with now, or 0. */
static int fv_fail(enum iofault_op op)
{
    return iofault_errno(iofault_next(op));
}

static int fv_sys_open(const char *path, int flags, int mode)
{
    int e = fv_fail(IOFAULT_OPEN);
    if (e != 0) {
        errno = e;
        return -1;
    }
    return sys_open(path, flags, mode);
}

/* How many of n bytes a write may write now: n, fewer (short), or 0 with
 * errno set when the write fails. */
static size_t fv_write_len(size_t n)
{
    enum iofault_kind k = iofault_next(IOFAULT_WRITE);
    if (k == IOFAULT_NONE)
        return n;
    if (k == IOFAULT_SHORT)
        return n > 1 ? n / 2 : n;
    errno = iofault_errno(k);
    return 0;
}

static ssize_t fv_sys_write(int fd, const void *p, size_t n)
{
    size_t len = fv_write_len(n);
    if (len == 0 && n > 0)
        return -1;
    return sys_write(fd, p, len);
}

static ssize_t fv_sys_pwrite(int fd, const void *p, size_t n, off_t off)
{
    size_t len = fv_write_len(n);
    if (len == 0 && n > 0)
        return -1;
    return sys_pwrite(fd, p, len, off);
}

static ssize_t fv_sys_pwrite64(int fd, const void *p, size_t n, off_t off)
{
    size_t len = fv_write_len(n);
    if (len == 0 && n > 0)
        return -1;
    return sys_pwrite64(fd, p, len, off);
}

static int fv_sys_ftruncate(int fd, off_t size)
{
    int e = fv_fail(IOFAULT_TRUNCATE);
    if (e != 0) {
        errno = e;
        return -1;
    }
    return sys_ftruncate(fd, size);
}

static int fv_sys_unlink(const char *path)
{
    int e = fv_fail(IOFAULT_UNLINK);
    if (e != 0 && e != EINTR) {
        errno = e;
        return -1;
    }
    return sys_unlink(path); /* EINTR: this is the retry (see above) */
}

/* Replaces the system call name of vfs with fn; the original, or NULL
 * when vfs does not use that call or refused the swap. */
static sqlite3_syscall_ptr fv_replace(sqlite3_vfs *vfs, const char *name, sqlite3_syscall_ptr fn)
{
    sqlite3_syscall_ptr cur = vfs->xGetSystemCall(vfs, name);
    if (cur == NULL || vfs->xSetSystemCall(vfs, name, fn) != SQLITE_OK)
        return NULL;
    return cur;
}

static void fv_replace_syscalls(sqlite3_vfs *vfs)
{
    if (vfs->iVersion < 3 || vfs->xSetSystemCall == NULL || vfs->xGetSystemCall == NULL)
        return;
    sys_open = (fv_open_fn)fv_replace(vfs, "open", (sqlite3_syscall_ptr)fv_sys_open);
    sys_write = (fv_write_fn)fv_replace(vfs, "write", (sqlite3_syscall_ptr)fv_sys_write);
    sys_unlink = (fv_unlink_fn)fv_replace(vfs, "unlink", (sqlite3_syscall_ptr)fv_sys_unlink);
    /* The offset arguments are SQLite's 64-bit off_t: matched only when
     * ours is 64 bits too. */
    if (sizeof(off_t) != 8)
        return;
    sys_pwrite = (fv_pwrite_fn)fv_replace(vfs, "pwrite", (sqlite3_syscall_ptr)fv_sys_pwrite);
    sys_pwrite64 = (fv_pwrite_fn)fv_replace(vfs, "pwrite64", (sqlite3_syscall_ptr)fv_sys_pwrite64);
    sys_ftruncate =
        (fv_ftruncate_fn)fv_replace(vfs, "ftruncate", (sqlite3_syscall_ptr)fv_sys_ftruncate);
}

/* --- the wrapping VFS: xSync asks the seam, the rest is passed on -------- */

static sqlite3_file *fv_real(sqlite3_file *f)
{
    return ((struct fv_file *)(void *)f)->real;
}

static int fv_close(sqlite3_file *f)
{
    sqlite3_file *r = fv_real(f);
    return r->pMethods->xClose(r);
}

static int fv_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off)
{
    sqlite3_file *r = fv_real(f);
    return r->pMethods->xRead(r, p, n, off);
}

static int fv_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
    sqlite3_file *r = fv_real(f);
    return r->pMethods->xWrite(r, p, n, off);
}

static int fv_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    sqlite3_file *r = fv_real(f);
    return r->pMethods->xTruncate(r, size);
}

static int fv_sync(sqlite3_file *f, int flags)
{
    enum iofault_kind k = iofault_next(IOFAULT_FSYNC);
    if (k == IOFAULT_EIO || k == IOFAULT_ENOSPC)
        return SQLITE_IOERR_FSYNC;
    sqlite3_file *r = fv_real(f); /* EINTR: this is the retry (see above) */
    return r->pMethods->xSync(r, flags);
}

static int fv_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    sqlite3_file *r = fv_real(f);
    return r->pMethods->xFileSize(r, size);
}

static int fv_lock(sqlite3_file *f, int level)
{
    sqlite3_file *r = fv_real(f);
    return r->pMethods->xLock(r, level);
}

static int fv_unlock(sqlite3_file *f, int level)
{
    sqlite3_file *r = fv_real(f);
    return r->pMethods->xUnlock(r, level);
}

static int fv_check_reserved(sqlite3_file *f, int *out)
{
    sqlite3_file *r = fv_real(f);
    return r->pMethods->xCheckReservedLock(r, out);
}

static int fv_file_control(sqlite3_file *f, int op, void *arg)
{
    sqlite3_file *r = fv_real(f);
    return r->pMethods->xFileControl(r, op, arg);
}

static int fv_sector_size(sqlite3_file *f)
{
    sqlite3_file *r = fv_real(f);
    return r->pMethods->xSectorSize(r);
}

static int fv_device_chars(sqlite3_file *f)
{
    sqlite3_file *r = fv_real(f);
    return r->pMethods->xDeviceCharacteristics(r);
}

static int fv_shm_map(sqlite3_file *f, int page, int size, int extend, void volatile **out)
{
    sqlite3_file *r = fv_real(f);
    return r->pMethods->xShmMap(r, page, size, extend, out);
}

static int fv_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    sqlite3_file *r = fv_real(f);
    return r->pMethods->xShmLock(r, offset, n, flags);
}

static void fv_shm_barrier(sqlite3_file *f)
{
    sqlite3_file *r = fv_real(f);
    r->pMethods->xShmBarrier(r);
}

static int fv_shm_unmap(sqlite3_file *f, int del)
{
    sqlite3_file *r = fv_real(f);
    return r->pMethods->xShmUnmap(r, del);
}

static int fv_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **out)
{
    sqlite3_file *r = fv_real(f);
    return r->pMethods->xFetch(r, off, n, out);
}

static int fv_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    sqlite3_file *r = fv_real(f);
    return r->pMethods->xUnfetch(r, off, p);
}

static int fv_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out_flags)
{
    (void)vfs;
    struct fv_file *p = (struct fv_file *)(void *)f;
    p->real = (sqlite3_file *)(void *)(p + 1);
    int rc = fv_unix->xOpen(fv_unix, name, p->real, flags, out_flags);
    /* SQLite calls xClose whenever pMethods is set, even after a failed
     * open: ours is set exactly when the real file's is. */
    const sqlite3_io_methods *m = p->real->pMethods;
    if (m == NULL)
        p->base.pMethods = NULL;
    else
        p->base.pMethods = &fv_io[(m->iVersion < 1 ? 1 : m->iVersion > 3 ? 3 : m->iVersion) - 1];
    return rc;
}

static void fv_setup(void)
{
    if (!iofault_enabled())
        return;
    fv_unix = sqlite3_vfs_find("unix");
    if (fv_unix == NULL)
        return;
    for (int i = 0; i < 3; i++) {
        fv_io[i] = (sqlite3_io_methods){
            .iVersion = i + 1,
            .xClose = fv_close,
            .xRead = fv_read,
            .xWrite = fv_write,
            .xTruncate = fv_truncate,
            .xSync = fv_sync,
            .xFileSize = fv_file_size,
            .xLock = fv_lock,
            .xUnlock = fv_unlock,
            .xCheckReservedLock = fv_check_reserved,
            .xFileControl = fv_file_control,
            .xSectorSize = fv_sector_size,
            .xDeviceCharacteristics = fv_device_chars,
            .xShmMap = fv_shm_map,
            .xShmLock = fv_shm_lock,
            .xShmBarrier = fv_shm_barrier,
            .xShmUnmap = fv_shm_unmap,
            .xFetch = fv_fetch,
            .xUnfetch = fv_unfetch,
        };
    }
    fv_replace_syscalls(fv_unix);
    /* The unix VFS's other methods take any of its variants' structs (that
     * is how "unix-none" and "unix-dotfile" are made): a copy serves. */
    fv_vfs = *fv_unix;
    fv_vfs.pNext = NULL;
    fv_vfs.zName = FAULTVFS_NAME;
    fv_vfs.szOsFile = (int)sizeof(struct fv_file) + fv_unix->szOsFile;
    fv_vfs.xOpen = fv_open;
    if (sqlite3_vfs_register(&fv_vfs, 0) == SQLITE_OK)
        fv_name = FAULTVFS_NAME;
}

const char *faultvfs_install(void)
{
    pthread_once(&fv_once, fv_setup);
    return fv_name;
}
