/*
 * The I/O fault seam. util/fileio.c makes its open, write, fsync, rename
 * and link calls through the wrappers below, and the SQLite shim (store/faultvfs.c)
 * asks iofault_next() before SQLite's own open, write, fsync, truncate and
 * unlink, so the hardening tests can make the n-th of those operations fail
 * with EIO, ENOSPC or EINTR, or write only part of what was asked, and then
 * check that the data file, the keystore and the index hold their old or
 * their new content, never a mix (docs/reliability.md).
 *
 * Counting is process-wide, with atomics, across all threads, as for the
 * allocation seam of util/alloc.h. Disarmed, a wrapper is its libc call and
 * one atomic increment.
 *
 * What each kind does, at the operation it strikes:
 *   eio, enospc  the call fails with that errno and does nothing;
 *   eintr        the call fails with EINTR and does nothing: the caller
 *                must retry it (fileio and SQLite do), and the retry, the
 *                next operation, succeeds;
 *   short        a write writes the first half of what it was asked (at
 *                least 1 byte) and returns that count: the caller must loop.
 *                Only writes can be short, so a short fault counts writes
 *                whatever OP says.
 *
 * MEMCHAT_FAULT_IO=OP:N:KIND arms the seam for a run of the program:
 *   OP    open | write | fsync | rename | truncate | unlink | any
 *         (a link(2) that puts a file in place, as master.key's creation
 *         does, counts as a rename: it plays the same part)
 *   N     the N-th operation of OP from the start (1 = the first); "N+"
 *         fails that one and every later one of OP (eio and enospc only:
 *         a sticky eintr would never let a retry through)
 *   KIND  eio | enospc | eintr | short
 * e.g. "write:3:enospc", "any:7:eio", "fsync:1+:eio", "any:12:short".
 * MEMCHAT_FAULT_IO_REPORT=PATH writes, when the process exits normally, one
 * line "ops=T open=A write=B fsync=C rename=D truncate=E unlink=F fired=0|1"
 * to PATH, so that a sweep learns how many operations a command makes and
 * when N has gone past the end. Either variable enables the seam, and with
 * it the SQLite shim; neither set, SQLite's I/O is untouched.
 */
#ifndef MEMCHAT_UTIL_IOFAULT_H
#define MEMCHAT_UTIL_IOFAULT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

enum iofault_op {
    IOFAULT_OPEN,
    IOFAULT_WRITE,
    IOFAULT_FSYNC,
    IOFAULT_RENAME,
    IOFAULT_TRUNCATE,
    IOFAULT_UNLINK,
    IOFAULT_OP__COUNT,
    IOFAULT_ANY = IOFAULT_OP__COUNT, /* arming only: whichever operation comes */
};

enum iofault_kind {
    IOFAULT_NONE,
    IOFAULT_EIO,
    IOFAULT_ENOSPC,
    IOFAULT_EINTR,
    IOFAULT_SHORT,
};

/* Arms the seam: the n-th operation of op (IOFAULT_ANY: of any) from now
 * (1 = the next) gets kind, and so does every later one of op when sticky
 * (ignored for eintr and short). A short fault counts writes only. n = 0
 * or kind IOFAULT_NONE disarms. Enables the seam (iofault_enabled). */
void iofault_arm(enum iofault_op op, unsigned long n, enum iofault_kind kind, bool sticky);
/* Disarms; the counts go on. */
void iofault_disarm(void);
/* How many operations of op (IOFAULT_ANY: of all) were seen since start. */
unsigned long iofault_count(enum iofault_op op);
/* Whether an armed fault has struck since the last iofault_arm. */
bool iofault_fired(void);
/* Whether the seam was enabled (armed once, or a variable was set): the
 * SQLite shim is installed only then. */
bool iofault_enabled(void);
/* Counts one operation of op and returns the fault to inject into it
 * (IOFAULT_NONE mostly; IOFAULT_SHORT only for a write). For shims that
 * make the call themselves. */
enum iofault_kind iofault_next(enum iofault_op op);
/* The errno a kind sets (EIO, ENOSPC, EINTR; 0 for none and short). */
int iofault_errno(enum iofault_kind kind);

/* The wrappers: the libc call, with the armed fault injected. Same
 * contracts and errno as open(2), mkostemp(3) (counted as an open),
 * write(2), fsync(2), rename(2), link(2) (counted as a rename). None
 * retries EINTR itself. */
int iofault_open(const char *path, int flags, mode_t mode);
int iofault_mkostemp(char *tmpl, int flags);
ssize_t iofault_write(int fd, const void *p, size_t n);
int iofault_fsync(int fd);
int iofault_rename(const char *from, const char *to);
int iofault_link(const char *from, const char *to);

/* Parses kind name s ("eio", ...); IOFAULT_NONE when unknown. */
enum iofault_kind iofault_kind_parse(const char *s);
/* Arms the seam from MEMCHAT_FAULT_IO and registers the exit report of
 * MEMCHAT_FAULT_IO_REPORT (see above). Call once, first thing in main. 0
 * (also when neither is set), or -1 with a message in err when the spec is
 * malformed. */
int iofault_setup_env(char *err, size_t errlen);

#endif
