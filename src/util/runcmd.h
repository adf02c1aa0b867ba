/*
 * Running a key command (`*_KEY_CMD`, e.g. "pass show openai") and capturing
 * what it prints, with a deadline. The output is a secret, so it is read
 * straight into the caller's (locked) buffer, wiped there on failure, and
 * never copied into an error message. The command runs as `/bin/sh -c CMD`
 * in its own process group with stdin and stderr on /dev/null, an empty
 * signal mask and default signal dispositions (the caller is a worker thread
 * with every signal blocked), and no descriptor of ours beyond 0/1/2.
 *
 * How a run ends: the call waits for the shell's exit and for EOF on its
 * stdout, bounded by the timeout (monotonic clock). A background grandchild
 * may keep the stdout pipe open after the shell exits (`sleep 100 & echo
 * x`); the call does not wait for it: once the shell has exited, what is
 * already readable is drained without blocking, the rest of the process
 * group is killed, and the shell's exit status decides the result. On the
 * deadline, or when the output passes the buffer, the whole group gets
 * SIGKILL. The shell is always reaped (no zombie); processes that left the
 * group (setsid, `set -m`) are out of reach. The process must not reap
 * children wholesale (SIGCHLD set to SIG_IGN, or waitpid(-1) in a handler):
 * the shell's status would be lost ("could not be waited for").
 */
#ifndef MEMCHAT_UTIL_RUNCMD_H
#define MEMCHAT_UTIL_RUNCMD_H

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
