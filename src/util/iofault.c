/*
 * The I/O fault seam (see iofault.h). Like the allocation seam, its state is
 * a handful of process-wide atomics: a fault must reach SQLite's I/O on any
 * engine thread. Arming stores the target (an absolute count of the chosen
 * operation) last, so an operation that sees it armed also sees its kind.
 */
#include "config.h"

#include "util/iofault.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_ulong op_count[IOFAULT_OP__COUNT + 1]; /* [IOFAULT_ANY]: all */
static atomic_ulong fail_at;                         /* 0 = disarmed, else the count that fails */
static atomic_int fail_op;                           /* the counter fail_at refers to */
static atomic_int fail_kind;
static atomic_bool fail_sticky;
static atomic_bool fired;
static atomic_bool enabled;
static const char *report_path;

static const char *const op_names[IOFAULT_OP__COUNT + 1] = {
    "open", "write", "fsync", "rename", "truncate", "unlink", "any",
};

void iofault_arm(enum iofault_op op, unsigned long n, enum iofault_kind kind, bool sticky)
{
    atomic_store(&fail_at, 0);
    atomic_store(&enabled, true);
    if (n == 0 || kind == IOFAULT_NONE)
        return;
    if (kind == IOFAULT_SHORT)
        op = IOFAULT_WRITE;
    atomic_store(&fail_op, (int)op);
    atomic_store(&fail_kind, (int)kind);
    atomic_store(&fail_sticky, sticky && (kind == IOFAULT_EIO || kind == IOFAULT_ENOSPC));
    atomic_store(&fired, false);
    atomic_store(&fail_at, atomic_load(&op_count[op]) + n);
}

void iofault_disarm(void)
{
    atomic_store(&fail_at, 0);
}

unsigned long iofault_count(enum iofault_op op)
{
    return atomic_load(&op_count[op <= IOFAULT_ANY ? op : IOFAULT_ANY]);
}

bool iofault_fired(void)
{
    return atomic_load(&fired);
}

bool iofault_enabled(void)
{
    return atomic_load(&enabled);
}

enum iofault_kind iofault_next(enum iofault_op op)
{
    unsigned long seen[2];
    seen[0] = atomic_fetch_add(&op_count[IOFAULT_ANY], 1) + 1;
    seen[1] = atomic_fetch_add(&op_count[op], 1) + 1;
    unsigned long at = atomic_load(&fail_at);
    if (at == 0)
        return IOFAULT_NONE;
    int target = atomic_load(&fail_op);
    if (target != IOFAULT_ANY && target != (int)op)
        return IOFAULT_NONE;
    unsigned long n = target == IOFAULT_ANY ? seen[0] : seen[1];
    if (n < at || (n > at && !atomic_load(&fail_sticky)))
        return IOFAULT_NONE;
    enum iofault_kind kind = (enum iofault_kind)atomic_load(&fail_kind);
    if (kind == IOFAULT_SHORT && op != IOFAULT_WRITE)
        return IOFAULT_NONE;
    atomic_store(&fired, true);
    return kind;
}

int iofault_errno(enum iofault_kind kind)
{
    switch (kind) {
    case IOFAULT_EIO:
        return EIO;
    case IOFAULT_ENOSPC:
        return ENOSPC;
    case IOFAULT_EINTR:
        return EINTR;
    case IOFAULT_NONE:
    case IOFAULT_SHORT:
        break;
    }
    return 0;
}

/* For the calls that cannot be short: the errno to fail with, or 0. */
static int iofault_fail(enum iofault_op op)
{
    return iofault_errno(iofault_next(op));
}

int iofault_open(const char *path, int flags, mode_t mode)
{
    int e = iofault_fail(IOFAULT_OPEN);
    if (e != 0) {
        errno = e;
        return -1;
    }
    return open(path, flags, mode);
}

int iofault_mkostemp(char *tmpl, int flags)
{
    int e = iofault_fail(IOFAULT_OPEN);
    if (e != 0) {
        errno = e;
        return -1;
    }
    return mkostemp(tmpl, flags);
}

ssize_t iofault_write(int fd, const void *p, size_t n)
{
    enum iofault_kind kind = iofault_next(IOFAULT_WRITE);
    if (kind == IOFAULT_SHORT)
        return write(fd, p, n > 1 ? n / 2 : n);
    int e = iofault_errno(kind);
    if (e != 0) {
        errno = e;
        return -1;
    }
    return write(fd, p, n);
}

int iofault_fsync(int fd)
{
    int e = iofault_fail(IOFAULT_FSYNC);
    if (e != 0) {
        errno = e;
        return -1;
    }
    return fsync(fd);
}

/* rename and link: both put a file in place, so both count as a rename. */
static int iofault_place(int (*fn)(const char *, const char *), const char *from, const char *to)
{
    int e = iofault_fail(IOFAULT_RENAME);
    if (e != 0) {
        errno = e;
        return -1;
    }
    return fn(from, to);
}

int iofault_rename(const char *from, const char *to)
{
    return iofault_place(rename, from, to);
}

int iofault_link(const char *from, const char *to)
{
    return iofault_place(link, from, to);
}

enum iofault_kind iofault_kind_parse(const char *s)
{
    static const char *const names[] = {"", "eio", "enospc", "eintr", "short"};
    for (size_t i = 1; i < sizeof names / sizeof *names; i++)
        if (strcmp(s, names[i]) == 0)
            return (enum iofault_kind)i;
    return IOFAULT_NONE;
}

/* Runs at exit: plain libc, nothing counted, nothing allocated. */
static void iofault_write_report(void)
{
    char line[512];
    int len = snprintf(line, sizeof line, "ops=%lu", iofault_count(IOFAULT_ANY));
    for (int op = 0; op < IOFAULT_OP__COUNT && len > 0 && (size_t)len < sizeof line; op++)
        len += snprintf(line + len, sizeof line - (size_t)len, " %s=%lu", op_names[op],
                        iofault_count((enum iofault_op)op));
    if (len <= 0 || (size_t)len >= sizeof line - 16)
        return;
    len += snprintf(line + len, sizeof line - (size_t)len, " fired=%d\n", iofault_fired() ? 1 : 0);
    int fd = open(report_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    const char *p = line;
    size_t left = (size_t)len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        p += w;
        left -= (size_t)w;
    }
    close(fd);
}

/* Parses "OP:N[+]:KIND" into the arguments of iofault_arm; false when
 * malformed. */
static bool iofault_parse(const char *spec, enum iofault_op *op, unsigned long *n,
                          enum iofault_kind *kind, bool *sticky)
{
    char buf[64];
    if (strlen(spec) >= sizeof buf)
        return false;
    memcpy(buf, spec, strlen(spec) + 1);
    char *c1 = strchr(buf, ':');
    char *c2 = c1 != NULL ? strchr(c1 + 1, ':') : NULL;
    if (c2 == NULL)
        return false;
    *c1 = *c2 = '\0';
    int found = -1;
    for (int i = 0; i <= IOFAULT_ANY; i++)
        if (strcmp(buf, op_names[i]) == 0)
            found = i;
    const char *num = c1 + 1;
    if (found < 0 || *num < '1' || *num > '9')
        return false;
    char *end;
    errno = 0;
    *n = strtoul(num, &end, 10);
    *sticky = *end == '+';
    if (*sticky)
        end++;
    *kind = iofault_kind_parse(c2 + 1);
    if (errno != 0 || end != c2 || *kind == IOFAULT_NONE)
        return false;
    if (*sticky && *kind != IOFAULT_EIO && *kind != IOFAULT_ENOSPC)
        return false;
    *op = (enum iofault_op)found;
    return true;
}

int iofault_setup_env(char *err, size_t errlen)
{
    const char *spec = getenv("MEMCHAT_FAULT_IO");
    const char *report = getenv("MEMCHAT_FAULT_IO_REPORT");
    if (report != NULL && *report != '\0') {
        atomic_store(&enabled, true);
        report_path = report;
        if (atexit(iofault_write_report) != 0)
            report_path = NULL;
    }
    if (spec == NULL || *spec == '\0')
        return 0;
    enum iofault_op op;
    unsigned long n;
    enum iofault_kind kind;
    bool sticky;
    if (!iofault_parse(spec, &op, &n, &kind, &sticky)) {
        snprintf(err, errlen,
                 "MEMCHAT_FAULT_IO: '%.64s' is not OP:N:KIND (OP open, write, fsync, rename, "
                 "truncate, unlink or any; N from 1, N+ to keep failing with eio or enospc; "
                 "KIND eio, enospc, eintr or short)",
                 spec);
        return -1;
    }
    iofault_arm(op, n, kind, sticky);
    return 0;
}
