/*
 * Running a program with a deadline (see runcmd.h for the contract).
 *
 * The child is started with posix_spawn (glibc uses a vfork-like clone, so
 * this is cheap and safe from a multithreaded process, and reports a
 * failed exec as the call's error) and put in its own process group, so
 * one killpg() reaches the program and everything it started. Our pipes
 * are created O_CLOEXEC and moved above 2, so neither this child (beyond
 * its stdio) nor a child spawned by another thread at the same moment can
 * hold one open and delay our EOF.
 *
 * Waiting: POSIX offers no descriptor for "a child exited" (Linux's pidfd
 * would be one), so the loop polls the pipes with a short tick that grows
 * from 1 ms to 50 ms and checks the child with waitid(WNOHANG | WNOWAIT)
 * between polls. A short command costs a few wake-ups; a slow one (a
 * password manager waiting for a GUI prompt) costs at most 20 a second,
 * and the tick also bounds how late a cancel is seen. WNOWAIT leaves the
 * exited child a zombie until after the group is killed: while the zombie
 * exists its pid cannot be reused, so killpg(pid) can never reach a
 * stranger's process group.
 *
 * Input: our end of the stdin pipe is non-blocking and written from the
 * same loop, so a program that prints before it has read everything (or
 * never reads) cannot deadlock us. A write to a pipe whose reader is gone
 * raises SIGPIPE in the writing thread, which would end memchat: the call
 * blocks SIGPIPE in its thread (util/sigpipe.h).
 */
#include "config.h"

#include "util/runcmd.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/clock.h"
#include "util/sigpipe.h"

#define RUNCMD_TICK_MIN_MS 1
#define RUNCMD_TICK_MAX_MS 50
/* Longer timeouts are clamped (about 35 years) so the deadline cannot
 * overflow. */
#define RUNCMD_TIMEOUT_MAX_MS (1LL << 40)
/* Bytes written to stdin per write(): a pipe holds 64 KiB by default. */
#define RUNCMD_WRITE_CHUNK 65536

/* The pipes and buffers of one run. A descriptor is -1 once closed. */
struct runcmd_io {
    int out_fd; /* our end of its stdout */
    int err_fd; /* our end of its stderr; -1 when stderr is /dev/null */
    int in_fd;  /* our end of its stdin; -1 when done or /dev/null */
    char *out;
    size_t out_cap;
    size_t out_len;
    char *errout;
    size_t err_cap;
    size_t err_len;
    size_t err_dropped;
    const char *input;
    size_t input_len;
    size_t input_off;
    bool pipe_fail; /* NO_START came from pipe(), not the spawn */
};

/* Overwrites n bytes in a way the compiler may not drop (util/ has no
 * libsodium, and explicit_bzero is not POSIX). */
static void runcmd_wipe(char *p, size_t n)
{
    volatile char *v = p;
    while (n-- > 0)
        *v++ = 0;
}

static void runcmd_close(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
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

/* A pipe, both ends O_CLOEXEC and above 2. 0, or -1 with errno set and
 * nothing left open. */
static int runcmd_pipe(int fds[2])
{
    int raw[2];
    if (pipe2(raw, O_CLOEXEC) != 0)
        return -1;
    fds[0] = runcmd_above_stdio(raw[0]);
    fds[1] = runcmd_above_stdio(raw[1]);
    if (fds[0] >= 0 && fds[1] >= 0)
        return 0;
    int saved = errno;
    runcmd_close(&fds[0]);
    runcmd_close(&fds[1]);
    errno = saved;
    return -1;
}

/* The child's ends of its stdio pipes (-1: /dev/null). */
struct runcmd_child_fds {
    int in;
    int out;
    int err;
};

/* The file actions that put the child's stdio in place. 0 or an errno
 * value. */
static int runcmd_file_actions(posix_spawn_file_actions_t *fa, const struct runcmd_child_fds *c)
{
    int rc = c->in >= 0 ? posix_spawn_file_actions_adddup2(fa, c->in, 0)
                        : posix_spawn_file_actions_addopen(fa, 0, "/dev/null", O_RDONLY, 0);
    if (rc == 0)
        rc = posix_spawn_file_actions_adddup2(fa, c->out, 1);
    if (rc == 0)
        rc = c->err >= 0 ? posix_spawn_file_actions_adddup2(fa, c->err, 2)
                         : posix_spawn_file_actions_addopen(fa, 2, "/dev/null", O_WRONLY, 0);
#if RUNCMD_CLOSES_ALL_FDS
    if (rc == 0)
        rc = posix_spawn_file_actions_addclosefrom_np(fa, 3);
#endif
    return rc;
}

/* Starts spec's program with the given stdio. 0 with *pid set, or an
 * errno value. */
static int runcmd_spawn(const struct runcmd_spec *spec, const struct runcmd_child_fds *c,
                        pid_t *pid)
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
    /* Our caller blocks every signal; the child must not inherit that, nor
     * any handler or SIG_IGN (a SIGPIPE ignored here must not be in it). */
    short flags = POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    if ((rc = runcmd_file_actions(&fa, c)) == 0 &&
        (rc = posix_spawnattr_setflags(&attr, flags)) == 0 &&
        (rc = posix_spawnattr_setpgroup(&attr, 0)) == 0 &&
        (rc = posix_spawnattr_setsigmask(&attr, &none)) == 0 &&
        (rc = posix_spawnattr_setsigdefault(&attr, &all)) == 0)
        rc = posix_spawn(pid, spec->path, &fa, &attr, spec->argv,
                         spec->envp != NULL ? spec->envp : environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    return rc;
}

/* 1 when the child has exited (left a zombie, which keeps its pid and
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

/* Reads what stdout has into out[out_len..out_cap-2]. 0 read some (or
 * nothing yet), 1 EOF, 2 more than out_cap - 1 bytes, -1 error (errno
 * set). With the buffer full, the probe for one byte more goes to
 * out[out_cap-1], the NUL's slot, so nothing lands past the buffer. */
static int runcmd_read_out(struct runcmd_io *io)
{
    for (;;) {
        size_t room = io->out_cap - 1 - io->out_len;
        ssize_t r = read(io->out_fd, io->out + io->out_len, room > 0 ? room : 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return errno == EAGAIN ? 0 : -1;
        if (r == 0)
            return 1;
        if (room == 0)
            return 2;
        io->out_len += (size_t)r;
        return 0;
    }
}

/* Reads what stderr has: kept while errout has room, dropped after. 0
 * read some, 1 EOF or error (stderr is only informative: it is closed). */
static int runcmd_read_err(struct runcmd_io *io)
{
    for (;;) {
        char scratch[4096];
        size_t room = io->err_cap - 1 - io->err_len;
        char *dst = room > 0 ? io->errout + io->err_len : scratch;
        size_t want = room > 0 ? room : sizeof scratch;
        ssize_t r = read(io->err_fd, dst, want);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && errno == EAGAIN)
            return 0;
        if (r <= 0) {
            runcmd_close(&io->err_fd);
            return 1;
        }
        if (room > 0)
            io->err_len += (size_t)r;
        else
            io->err_dropped += (size_t)r;
        return 0;
    }
}

/* Writes the next piece of the input. Done, or a reader that went away
 * (EPIPE) or failed, closes our end: the child then sees EOF. */
static void runcmd_write_in(struct runcmd_io *io)
{
    while (io->in_fd >= 0 && io->input_off < io->input_len) {
        size_t n = io->input_len - io->input_off;
        if (n > RUNCMD_WRITE_CHUNK)
            n = RUNCMD_WRITE_CHUNK;
        ssize_t w = write(io->in_fd, io->input + io->input_off, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN)
            return;
        if (w < 0) {
            runcmd_close(&io->in_fd);
            return;
        }
        io->input_off += (size_t)w;
    }
    runcmd_close(&io->in_fd);
}

/* Reads whatever stdout and stderr hold right now without blocking: after
 * the child exited, a grandchild may keep the pipes open for ever (and
 * write to them for ever: stderr is read only while there is room). */
static enum runcmd_end runcmd_drain(struct runcmd_io *io)
{
    for (;;) {
        if (io->err_fd >= 0 && io->err_len + 1 >= io->err_cap)
            runcmd_close(&io->err_fd);
        struct pollfd p[2];
        nfds_t np = 0;
        if (io->out_fd >= 0)
            p[np++] = (struct pollfd){.fd = io->out_fd, .events = POLLIN};
        if (io->err_fd >= 0)
            p[np++] = (struct pollfd){.fd = io->err_fd, .events = POLLIN};
        if (np == 0)
            return RUNCMD_EXITED;
        int n = poll(p, np, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return RUNCMD_READ_ERROR;
        if (n == 0)
            return RUNCMD_EXITED;
        for (nfds_t i = 0; i < np; i++) {
            if (p[i].revents == 0)
                continue;
            if (p[i].fd == io->err_fd) {
                (void)runcmd_read_err(io);
                continue;
            }
            int r = runcmd_read_out(io);
            if (r == 1)
                runcmd_close(&io->out_fd);
            if (r == 2)
                return RUNCMD_OVERFLOW;
            if (r < 0)
                return RUNCMD_READ_ERROR;
        }
    }
}

/* Handles what one poll() reported. RUNCMD_EXITED means "go on". */
static enum runcmd_end runcmd_serve(struct runcmd_io *io, const struct pollfd *p, nfds_t np)
{
    for (nfds_t i = 0; i < np; i++) {
        if (p[i].revents == 0)
            continue;
        if (p[i].fd == io->in_fd) {
            runcmd_write_in(io);
        } else if (p[i].fd == io->err_fd) {
            (void)runcmd_read_err(io);
        } else if (p[i].fd == io->out_fd) {
            int r = runcmd_read_out(io);
            if (r == 2)
                return RUNCMD_OVERFLOW;
            if (r < 0)
                return RUNCMD_READ_ERROR;
            if (r == 1)
                runcmd_close(&io->out_fd);
        }
    }
    return RUNCMD_EXITED;
}

/* Runs the wait loop until the child exits, the deadline passes, the
 * cancel flag is set or the output is too long; *err_no holds errno for
 * the error stops. */
static enum runcmd_end runcmd_wait(pid_t pid, struct runcmd_io *io, int64_t deadline,
                                   const atomic_bool *cancel, int *err_no)
{
    int tick = RUNCMD_TICK_MIN_MS;
    for (;;) {
        int ex = runcmd_exited(pid);
        if (ex < 0) {
            *err_no = errno;
            return RUNCMD_WAIT_ERROR;
        }
        if (ex == 1) {
            enum runcmd_end e = runcmd_drain(io);
            *err_no = errno;
            return e;
        }
        if (cancel != NULL && atomic_load(cancel))
            return RUNCMD_CANCELLED;
        int64_t now = clock_mono_ms();
        if (now >= deadline)
            return RUNCMD_TIMEOUT;
        int wait = deadline - now < tick ? (int)(deadline - now) : tick;
        tick = tick * 2 > RUNCMD_TICK_MAX_MS ? RUNCMD_TICK_MAX_MS : tick * 2;
        struct pollfd p[3];
        nfds_t np = 0;
        if (io->out_fd >= 0)
            p[np++] = (struct pollfd){.fd = io->out_fd, .events = POLLIN};
        if (io->err_fd >= 0)
            p[np++] = (struct pollfd){.fd = io->err_fd, .events = POLLIN};
        if (io->in_fd >= 0)
            p[np++] = (struct pollfd){.fd = io->in_fd, .events = POLLOUT};
        bool had_out = io->out_fd >= 0;
        /* With every pipe closed only the exit is left to wait for, and
         * there is nothing to poll for that: poll() then just sleeps. */
        int n = poll(np > 0 ? p : NULL, np, wait);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            *err_no = errno;
            return RUNCMD_READ_ERROR;
        }
        if (n == 0)
            continue;
        enum runcmd_end e = runcmd_serve(io, p, np);
        if (e != RUNCMD_EXITED) {
            *err_no = errno;
            return e;
        }
        /* EOF on stdout usually means the child is exiting right now:
         * look again soon. */
        if (had_out && io->out_fd < 0)
            tick = RUNCMD_TICK_MIN_MS;
    }
}

/* The child's status after reaping: sets res->end to EXITED or SIGNALED
 * (or keeps a stop that came first). */
static void runcmd_status(struct runcmd_result *res, int status)
{
    if (WIFEXITED(status)) {
        res->status = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        res->end = RUNCMD_SIGNALED;
        res->status = WTERMSIG(status);
    } else {
        res->status = status;
    }
}

/* The message for a run that did not exit with status 0. */
static void runcmd_message(const struct runcmd_spec *spec, const struct runcmd_result *res,
                           const struct runcmd_io *io, long long timeout_ms, char *err,
                           size_t errlen)
{
    switch (res->end) {
    case RUNCMD_EXITED:
        snprintf(err, errlen, "exited with status %d", res->status);
        break;
    case RUNCMD_SIGNALED:
        snprintf(err, errlen, "was killed by signal %d", res->status);
        break;
    case RUNCMD_TIMEOUT:
        snprintf(err, errlen, "timed out after %lld ms", timeout_ms);
        break;
    case RUNCMD_OVERFLOW:
        snprintf(err, errlen, "printed more than %zu bytes", spec->out_cap - 1);
        break;
    case RUNCMD_CANCELLED:
        snprintf(err, errlen, "was cancelled");
        break;
    case RUNCMD_NO_START:
        snprintf(err, errlen, "cannot start %s: %s%s", spec->path, io->pipe_fail ? "pipe: " : "",
                 strerror(res->err_no));
        break;
    case RUNCMD_READ_ERROR:
        snprintf(err, errlen, "failed reading its output: %s", strerror(res->err_no));
        break;
    case RUNCMD_WAIT_ERROR:
        snprintf(err, errlen, "could not be waited for: %s", strerror(res->err_no));
        break;
    case RUNCMD_BAD_SPEC:
        snprintf(err, errlen, "has an invalid specification");
        break;
    }
}

/* Checks what cannot be run. 0, or -1 with err set. */
static int runcmd_check_spec(const struct runcmd_spec *spec, char *err, size_t errlen)
{
    if (spec->out == NULL || spec->out_cap == 0) {
        snprintf(err, errlen, "has no room for its output (a buffer of 0 bytes)");
        return -1;
    }
    if (spec->timeout_ms <= 0) {
        snprintf(err, errlen, "has an invalid timeout of %lld ms (it must be positive)",
                 spec->timeout_ms);
        return -1;
    }
    if (spec->path == NULL || spec->path[0] == '\0' || spec->argv == NULL ||
        spec->argv[0] == NULL) {
        snprintf(err, errlen, "has no program to run");
        return -1;
    }
    if (spec->input == NULL && spec->input_len > 0) {
        snprintf(err, errlen, "has %zu bytes of input but no buffer", spec->input_len);
        return -1;
    }
    return 0;
}

/* Creates the pipes of io and the child's ends in c. 0, or -1 with errno
 * set and nothing left open. */
static int runcmd_open_pipes(const struct runcmd_spec *spec, struct runcmd_io *io,
                             struct runcmd_child_fds *c)
{
    int po[2] = {-1, -1}, pe[2] = {-1, -1}, pi[2] = {-1, -1};
    bool want_err = spec->errout != NULL && spec->err_cap > 0;
    if (runcmd_pipe(po) != 0 || (want_err && runcmd_pipe(pe) != 0) ||
        (spec->input != NULL && runcmd_pipe(pi) != 0)) {
        int saved = errno;
        for (int i = 0; i < 2; i++) {
            runcmd_close(&po[i]);
            runcmd_close(&pe[i]);
            runcmd_close(&pi[i]);
        }
        errno = saved;
        return -1;
    }
    /* Only our end is non-blocking: the flag belongs to the open file
     * description, and the child's end is a separate one. */
    if (pi[1] >= 0)
        (void)fcntl(pi[1], F_SETFL, fcntl(pi[1], F_GETFL) | O_NONBLOCK);
    io->out_fd = po[0];
    io->err_fd = pe[0];
    io->in_fd = pi[1];
    c->out = po[1];
    c->err = pe[1];
    c->in = pi[0];
    return 0;
}

/* Kills what is left of the child's group and reaps the child. The child
 * is alive or a zombie here (never reaped yet), so its group id is still
 * ours. After a waitid error the pid's state is unknown (someone else
 * reaped it), so the group is left alone rather than risk a reused id. */
static void runcmd_reap(pid_t pid, struct runcmd_result *res)
{
    if (res->end == RUNCMD_WAIT_ERROR)
        return;
    killpg(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            res->err_no = errno;
            res->end = RUNCMD_WAIT_ERROR;
            return;
        }
    }
    if (res->end == RUNCMD_EXITED)
        runcmd_status(res, status);
}

/* Starts the child and waits for its end; fills res (end, status,
 * lengths). The caller has checked the spec and blocked SIGPIPE. */
static void runcmd_execute(const struct runcmd_spec *spec, struct runcmd_io *io,
                           long long timeout_ms, struct runcmd_result *res)
{
    /* glibc's posix_spawn reports a failed exec, but not every
     * implementation does (valgrind's emulation, older C libraries: the
     * child then exits 127); the common cases are named here alike. */
    if (access(spec->path, X_OK) != 0) {
        res->end = RUNCMD_NO_START;
        res->err_no = errno;
        return;
    }
    struct runcmd_child_fds c = {-1, -1, -1};
    if (runcmd_open_pipes(spec, io, &c) != 0) {
        res->end = RUNCMD_NO_START;
        res->err_no = errno;
        io->pipe_fail = true;
        return;
    }
    int64_t deadline = clock_mono_ms() + timeout_ms;
    pid_t pid = -1;
    int rc = runcmd_spawn(spec, &c, &pid);
    /* Only the child uses its ends; our copies would hide EOF (and keep a
     * reader on its stdin alive after it exits). */
    runcmd_close(&c.in);
    runcmd_close(&c.out);
    runcmd_close(&c.err);
    if (rc != 0) {
        res->end = RUNCMD_NO_START;
        res->err_no = rc;
        return;
    }
    if (io->in_fd >= 0 && io->input_len == 0)
        runcmd_close(&io->in_fd); /* empty input: EOF at once */
    int err_no = 0;
    res->end = runcmd_wait(pid, io, deadline, spec->cancel, &err_no);
    res->err_no = err_no;
    runcmd_reap(pid, res);
}

int runcmd_run(const struct runcmd_spec *spec, struct runcmd_result *res, char *err, size_t errlen)
{
    *res = (struct runcmd_result){.end = RUNCMD_BAD_SPEC, .status = -1};
    if (spec->errout != NULL && spec->err_cap > 0)
        spec->errout[0] = '\0';
    if (spec->out != NULL && spec->out_cap > 0)
        spec->out[0] = '\0';
    if (runcmd_check_spec(spec, err, errlen) != 0)
        return -1;
    long long timeout_ms =
        spec->timeout_ms > RUNCMD_TIMEOUT_MAX_MS ? RUNCMD_TIMEOUT_MAX_MS : spec->timeout_ms;
    struct runcmd_io io = {
        .out_fd = -1,
        .err_fd = -1,
        .in_fd = -1,
        .out = spec->out,
        .out_cap = spec->out_cap,
        .errout = spec->errout,
        .err_cap = spec->errout != NULL ? spec->err_cap : 0,
        .input = spec->input,
        .input_len = spec->input_len,
    };

    struct sigpipe_guard guard;
    sigpipe_block(&guard);
    runcmd_execute(spec, &io, timeout_ms, res);
    runcmd_close(&io.out_fd);
    runcmd_close(&io.err_fd);
    runcmd_close(&io.in_fd);
    sigpipe_restore(&guard);

    res->out_len = io.out_len;
    res->err_len = io.err_len;
    res->err_dropped = io.err_dropped;
    if (io.errout != NULL && io.err_cap > 0)
        io.errout[io.err_len] = '\0';
    if (res->end == RUNCMD_EXITED && res->status == 0) {
        spec->out[io.out_len] = '\0';
        return 0;
    }
    runcmd_message(spec, res, &io, timeout_ms, err, errlen);
    runcmd_wipe(spec->out, spec->out_cap);
    res->out_len = 0;
    return -1;
}

int runcmd_capture(const char *cmd, long long timeout_ms, char *out, size_t cap, size_t *len,
                   char *err, size_t errlen)
{
    char arg0[] = "sh", arg1[] = "-c";
    /* exec's argv is not const for historical reasons; it is not written
     * through. The uintptr_t step keeps -Wcast-qual quiet. */
    char *argv[] = {arg0, arg1, (char *)(uintptr_t)cmd, NULL};
    struct runcmd_spec spec = {
        .path = "/bin/sh",
        .argv = argv,
        .out = out,
        .out_cap = cap,
        .timeout_ms = timeout_ms,
    };
    struct runcmd_result res;
    int rc = runcmd_run(&spec, &res, err, errlen);
    *len = res.out_len;
    return rc;
}
