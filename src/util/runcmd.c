/*
 * Running a key command with a deadline (see runcmd.h for the contract).
 *
 * The child is started with posix_spawn (glibc uses a vfork-like clone, so
 * this is cheap and safe from a multithreaded process) and put in its own
 * process group, so one killpg() reaches the shell and everything it
 * started. Our pipe is created O_CLOEXEC and moved above 2, so neither this
 * child (beyond its stdout) nor a child spawned by another thread at the
 * same moment can hold it open and delay our EOF.
 *
 * Waiting: POSIX offers no descriptor for "a child exited" (Linux's pidfd
 * would be one), so the loop polls the pipe with a short tick that grows
 * from 1 ms to 50 ms and checks the shell with waitid(WNOHANG | WNOWAIT)
 * between polls. A short command costs a few wake-ups; a slow one (a
 * password manager waiting for a GUI prompt) costs at most 20 a second.
 * WNOWAIT leaves the exited shell a zombie until after the group is killed:
 * while the zombie exists its pid cannot be reused, so killpg(pid) can
 * never reach a stranger's process group.
 */
#include "config.h"

#include "util/runcmd.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/clock.h"

#define RUNCMD_TICK_MIN_MS 1
#define RUNCMD_TICK_MAX_MS 50
/* Longer timeouts are clamped (about 35 years) so the deadline cannot
 * overflow. */
#define RUNCMD_TIMEOUT_MAX_MS (1LL << 40)

/* Why the wait loop stopped. */
enum runcmd_stop {
    RUNCMD_EXITED,   /* the shell exited; its status decides */
    RUNCMD_TIMEOUT,  /* the deadline passed */
    RUNCMD_OVERFLOW, /* more than cap - 1 bytes */
    RUNCMD_READ_ERR, /* read() or poll() failed; errno saved */
    RUNCMD_WAIT_ERR, /* waitid() failed (SIGCHLD ignored?); errno saved */
};

/* Overwrites n bytes in a way the compiler may not drop (util/ has no
 * libsodium, and explicit_bzero is not POSIX). */
static void runcmd_wipe(char *p, size_t n)
{
    volatile char *v = p;
    while (n-- > 0)
        *v++ = 0;
}

/* Moves fd above 2 (keeping O_CLOEXEC), so the child's dup2/open of 0-2
 * cannot clobber it when our caller runs with a standard descriptor
 * closed. The fd or -1 (errno set). */
static int runcmd_above_stdio(int fd)
{
    if (fd > 2)
        return fd;
    int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    int saved = errno;
    close(fd);
    errno = saved;
    return moved;
}

/* Starts /bin/sh -c cmd with stdout on wfd. 0 with *pid set, or an errno
 * value. */
static int runcmd_spawn(const char *cmd, int wfd, pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    int rc = posix_spawn_file_actions_init(&fa);
    if (rc != 0)
        return rc;
    rc = posix_spawnattr_init(&attr);
    if (rc != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return rc;
    }
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    /* Our caller blocks every signal; the shell must not inherit that, nor
     * any handler or SIG_IGN (a SIGPIPE ignored here must not be in it). */
    short flags = POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    if ((rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)) == 0 &&
        (rc = posix_spawn_file_actions_adddup2(&fa, wfd, 1)) == 0 &&
        (rc = posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0)) == 0 &&
#if RUNCMD_CLOSES_ALL_FDS
        (rc = posix_spawn_file_actions_addclosefrom_np(&fa, 3)) == 0 &&
#endif
        (rc = posix_spawnattr_setflags(&attr, flags)) == 0 &&
        (rc = posix_spawnattr_setpgroup(&attr, 0)) == 0 &&
        (rc = posix_spawnattr_setsigmask(&attr, &none)) == 0 &&
        (rc = posix_spawnattr_setsigdefault(&attr, &all)) == 0) {
        char arg0[] = "sh", arg1[] = "-c";
        /* exec's argv is not const for historical reasons; it is not
         * written through. The uintptr_t step keeps -Wcast-qual quiet. */
        char *argv[] = {arg0, arg1, (char *)(uintptr_t)cmd, NULL};
        rc = posix_spawn(pid, "/bin/sh", &fa, &attr, argv, environ);
    }
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    return rc;
}

/* 1 when the shell has exited (left a zombie, which keeps its pid and
 * process group id ours until reaped), 0 while it runs, -1 on error (errno
 * set). */
static int runcmd_exited(pid_t pid)
{
    for (;;) {
        siginfo_t si;
        memset(&si, 0, sizeof si); /* si_pid stays 0 when nothing is ready */
        if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0)
            return si.si_pid == pid ? 1 : 0;
        if (errno != EINTR)
            return -1;
    }
}

/* Reads what fd has into out[*len..cap-2]. 0 read some, 1 EOF, 2 more than
 * cap - 1 bytes, -1 error (errno set). With the buffer full, the probe for
 * one byte more goes to out[cap-1], the NUL's slot, so nothing lands past
 * the buffer. */
static int runcmd_read(int fd, char *out, size_t cap, size_t *len)
{
    for (;;) {
        size_t room = cap - 1 - *len;
        ssize_t r = read(fd, out + *len, room > 0 ? room : 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            return 1;
        if (room == 0)
            return 2;
        *len += (size_t)r;
        return 0;
    }
}

/* Reads whatever fd holds right now without blocking: after the shell
 * exited, a grandchild may keep the pipe open for ever. */
static enum runcmd_stop runcmd_drain(int fd, char *out, size_t cap, size_t *len)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return RUNCMD_READ_ERR;
        if (n == 0)
            return RUNCMD_EXITED;
        int r = runcmd_read(fd, out, cap, len);
        if (r == 1)
            return RUNCMD_EXITED;
        if (r == 2)
            return RUNCMD_OVERFLOW;
        if (r < 0)
            return RUNCMD_READ_ERR;
    }
}

/* Runs the wait loop until the shell exits, the deadline passes or the
 * output is too long; *err_no holds errno for the error stops. */
static enum runcmd_stop runcmd_wait(pid_t pid, int fd, int64_t deadline, char *out, size_t cap,
                                    size_t *len, int *err_no)
{
    bool eof = false;
    int tick = RUNCMD_TICK_MIN_MS;
    for (;;) {
        int ex = runcmd_exited(pid);
        if (ex < 0) {
            *err_no = errno;
            return RUNCMD_WAIT_ERR;
        }
        if (ex == 1) {
            enum runcmd_stop s = eof ? RUNCMD_EXITED : runcmd_drain(fd, out, cap, len);
            *err_no = errno;
            return s;
        }
        int64_t now = clock_mono_ms();
        if (now >= deadline)
            return RUNCMD_TIMEOUT;
        int wait = deadline - now < tick ? (int)(deadline - now) : tick;
        tick = tick * 2 > RUNCMD_TICK_MAX_MS ? RUNCMD_TICK_MAX_MS : tick * 2;
        if (eof) {
            /* The shell closed its stdout but runs on: only its exit is
             * left to wait for, and there is nothing to poll for that. */
            poll(NULL, 0, wait);
            continue;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, wait);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            *err_no = errno;
            return RUNCMD_READ_ERR;
        }
        if (n == 0)
            continue;
        int r = runcmd_read(fd, out, cap, len);
        if (r == 2)
            return RUNCMD_OVERFLOW;
        if (r < 0) {
            *err_no = errno;
            return RUNCMD_READ_ERR;
        }
        if (r == 1) {
            /* EOF usually means the shell is exiting right now: look
             * again soon. */
            eof = true;
            tick = RUNCMD_TICK_MIN_MS;
        }
    }
}

int runcmd_capture(const char *cmd, long long timeout_ms, char *out, size_t cap, size_t *len,
                   char *err, size_t errlen)
{
    *len = 0;
    if (cap == 0) {
        snprintf(err, errlen, "has no room for its output (a buffer of 0 bytes)");
        return -1;
    }
    out[0] = '\0';
    if (timeout_ms <= 0) {
        snprintf(err, errlen, "has an invalid timeout of %lld ms (it must be positive)",
                 timeout_ms);
        return -1;
    }
    if (timeout_ms > RUNCMD_TIMEOUT_MAX_MS)
        timeout_ms = RUNCMD_TIMEOUT_MAX_MS;

    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        snprintf(err, errlen, "cannot start /bin/sh: pipe: %s", strerror(errno));
        return -1;
    }
    int rfd = runcmd_above_stdio(fds[0]);
    int wfd = runcmd_above_stdio(fds[1]);
    if (rfd < 0 || wfd < 0) {
        int saved = errno;
        if (rfd >= 0)
            close(rfd);
        if (wfd >= 0)
            close(wfd);
        snprintf(err, errlen, "cannot start /bin/sh: %s", strerror(saved));
        return -1;
    }
    int64_t deadline = clock_mono_ms() + timeout_ms;
    pid_t pid = -1;
    int rc = runcmd_spawn(cmd, wfd, &pid);
    close(wfd); /* only the child writes; our copy would hide EOF */
    if (rc != 0) {
        close(rfd);
        snprintf(err, errlen, "cannot start /bin/sh: %s", strerror(rc));
        return -1;
    }

    int err_no = 0;
    enum runcmd_stop stop = runcmd_wait(pid, rfd, deadline, out, cap, len, &err_no);
    /* The shell is alive or a zombie here (never reaped yet), so its group
     * id is still ours: kill whatever is left of the group. After a
     * waitid error the pid's state is unknown (someone else reaped it), so
     * the group is left alone rather than risk a reused id. */
    int status = 0;
    if (stop != RUNCMD_WAIT_ERR) {
        killpg(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0) {
            if (errno != EINTR) {
                err_no = errno;
                stop = RUNCMD_WAIT_ERR;
                break;
            }
        }
    }
    close(rfd);

    rc = -1;
    switch (stop) {
    case RUNCMD_EXITED:
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
            rc = 0;
        else if (WIFEXITED(status))
            snprintf(err, errlen, "exited with status %d", WEXITSTATUS(status));
        else if (WIFSIGNALED(status))
            snprintf(err, errlen, "was killed by signal %d", WTERMSIG(status));
        else
            snprintf(err, errlen, "ended with wait status %d", status);
        break;
    case RUNCMD_TIMEOUT:
        snprintf(err, errlen, "timed out after %lld ms", timeout_ms);
        break;
    case RUNCMD_OVERFLOW:
        snprintf(err, errlen, "printed more than %zu bytes", cap - 1);
        break;
    case RUNCMD_READ_ERR:
        snprintf(err, errlen, "failed reading its output: %s", strerror(err_no));
        break;
    case RUNCMD_WAIT_ERR:
        snprintf(err, errlen, "could not be waited for: %s", strerror(err_no));
        break;
    }
    if (rc != 0) {
        runcmd_wipe(out, cap);
        *len = 0;
        return -1;
    }
    out[*len] = '\0';
    return 0;
}
