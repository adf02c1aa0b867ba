/*
 * Running a program with a deadline and capturing what it prints. One
 * spawner serves two callers: runcmd_run (an argv run without a shell,
 * with a given environment, bytes on its stdin, stdout and stderr each
 * captured up to a cap, a cancel flag), used by tools/runner.c for tool
 * executables; and runcmd_capture on top of it, for a key command
 * (`*_KEY_CMD`, e.g. "pass show openai") run as `/bin/sh -c CMD`.
 *
 * Every run: the program starts in its own process group, with an empty
 * signal mask and default signal dispositions (the caller is a worker
 * thread with every signal blocked), and no descriptor of ours beyond
 * 0/1/2. Its stdout may be a secret (a key command's is), so it is read
 * straight into the caller's (locked) buffer, wiped there on failure, and
 * never copied into an error message.
 *
 * How a run ends: the call waits for the program's exit and for EOF on its
 * stdout, bounded by the timeout (monotonic clock). A background grandchild
 * may keep the stdout pipe open after the program exits (`sleep 100 & echo
 * x`); the call does not wait for it: once the program has exited, what is
 * already readable is drained without blocking, the rest of the process
 * group is killed, and the program's exit status decides the result. On
 * the deadline, on cancel, or when the output passes the buffer, the whole
 * group gets SIGKILL. The program is always reaped (no zombie); processes
 * that left the group (setsid, `set -m`) are out of reach. The process
 * must not reap children wholesale (SIGCHLD set to SIG_IGN, or waitpid(-1)
 * in a handler): the program's status would be lost ("could not be waited
 * for").
 */
#ifndef MEMCHAT_UTIL_RUNCMD_H
#define MEMCHAT_UTIL_RUNCMD_H

#include <stdatomic.h>
#include <stddef.h>
#include <unistd.h> /* defines __GLIBC__ (via features.h) for the test below */

/* 1 when the child is started with every descriptor above 2 closed (glibc
 * 2.34+: posix_spawn_file_actions_addclosefrom_np), so it inherits exactly
 * 0/1/2; 0 when only our own descriptors are kept from it (they are all
 * O_CLOEXEC) and a caller's non-CLOEXEC descriptor would be inherited. */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
#define RUNCMD_CLOSES_ALL_FDS 1
#else
#define RUNCMD_CLOSES_ALL_FDS 0
#endif

/* What to run and where its output goes. Borrowed for the call. */
struct runcmd_spec {
    const char *path;  /* the executable, run as is (no PATH search) */
    char *const *argv; /* NULL-terminated; argv[0] is what the program sees */
    char *const *envp; /* its environment, NULL-terminated; NULL: ours */
    /* Written to its stdin, then EOF; NULL: stdin is /dev/null. A program
     * that exits or closes stdin without reading it all is no error (the
     * EPIPE is ignored, and no SIGPIPE reaches the caller). */
    const char *input;
    size_t input_len;
    /* stdout into out[0..out_cap-2], NUL-terminated (out_cap >= 1); more
     * is the error "printed more than N bytes" (N = out_cap - 1). */
    char *out;
    size_t out_cap;
    /* stderr into errout[0..err_cap-2], NUL-terminated; the rest is read
     * and dropped, so a chatty program never blocks. NULL (or err_cap 0):
     * stderr is /dev/null. */
    char *errout;
    size_t err_cap;
    long long timeout_ms;      /* > 0; whole run, spawn to exit */
    const atomic_bool *cancel; /* checked at least every 50 ms; NULL: never */
};

/* How a run ended. */
enum runcmd_end {
    RUNCMD_EXITED,     /* exited by itself: status is its exit status */
    RUNCMD_SIGNALED,   /* died of a signal not sent by us: status is the signal */
    RUNCMD_TIMEOUT,    /* killed at the deadline */
    RUNCMD_OVERFLOW,   /* printed more than out_cap - 1 bytes: killed */
    RUNCMD_CANCELLED,  /* *cancel was set: killed */
    RUNCMD_NO_START,   /* a pipe or the spawn failed (err_no) */
    RUNCMD_READ_ERROR, /* reading its output failed (err_no): killed */
    RUNCMD_WAIT_ERROR, /* waiting for it failed (err_no; SIGCHLD ignored?) */
    RUNCMD_BAD_SPEC,   /* an invalid spec: nothing was started */
};

struct runcmd_result {
    enum runcmd_end end;
    int status;         /* EXITED: the exit status; SIGNALED: the signal; else -1 */
    size_t out_len;     /* bytes in out; 0 after a failure (out is wiped) */
    size_t err_len;     /* bytes in errout (kept on failure too) */
    size_t err_dropped; /* stderr bytes past err_cap - 1, read and dropped */
    int err_no;         /* the errno of NO_START, READ_ERROR, WAIT_ERROR */
};

/* Runs spec->path with spec->argv as described above and fills res.
 * Returns 0 when the program exited with status 0. Otherwise -1 with out
 * wiped (all out_cap bytes zero, out_len 0) and err set to one of:
 * "cannot start PATH: <strerror>" (or "cannot start PATH: pipe: ..."),
 * "exited with status N", "was killed by signal N", "timed out after N
 * ms", "printed more than N bytes", "was cancelled", "failed reading its
 * output: <strerror>", "could not be waited for: <strerror>", or a note on
 * an invalid spec. err never holds the output, the input, argv beyond the
 * path, or the environment. Writes nothing past out[out_cap-1] or
 * errout[err_cap-1]. Thread-safe, no global state (it blocks SIGPIPE in
 * the calling thread for the call and restores the mask); EINTR-safe. */
int runcmd_run(const struct runcmd_spec *spec, struct runcmd_result *res, char *err, size_t errlen);

/* Runs `/bin/sh -c cmd` and reads its stdout into out[0..cap-2] (at most
 * cap - 1 bytes, binary-safe), NUL-terminated, *len = bytes read; cap must
 * be at least 1 and timeout_ms positive. Returns 0 when the shell exited
 * with status 0. Otherwise -1 with out wiped (all cap bytes zero, *len 0)
 * and err set to one of: "cannot start /bin/sh: <strerror>", "exited with
 * status N", "was killed by signal N", "timed out after N ms", "printed
 * more than N bytes" (N = cap - 1), "failed reading its output: <strerror>",
 * "could not be waited for: <strerror>", or a note on an invalid argument.
 * err never holds the output nor cmd (the caller names the command, e.g.
 * "OPENAI_KEY_CMD timed out after 5000 ms"). Writes nothing past out[cap-1].
 * Thread-safe, no global state; EINTR-safe. */
int runcmd_capture(const char *cmd, long long timeout_ms, char *out, size_t cap, size_t *len,
                   char *err, size_t errlen);

#endif
