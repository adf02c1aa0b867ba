/*
 * Tests of util/runcmd: exact capture, exit statuses and signals, the
 * deadline killing the whole process group, the output bound, the child's
 * stdio, signals and descriptors, and that errors never carry the output;
 * then what runcmd_run adds: input on stdin (large, and refused by the
 * program without a SIGPIPE), stderr kept up to its cap, a given
 * environment, cancel, and a program that cannot start.
 *
 * The process is made a child subreaper (Linux), so the background
 * processes a command leaves behind become our children when the shell
 * dies, and waitpid() on them proves they were killed by SIGKILL without
 * any sleeping. Commands that should finish quickly get a generous 10 s
 * timeout: hitting it turns their expected success into a "timed out"
 * failure, so no test relies on timing, and none asserts a duration.
 */
#include "config.h"

#include "testutil.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "util/alloc.h"
#include "util/runcmd.h"

#define QUICK_MS  10000 /* never reached by a passing test */
#define EXPIRE_MS 1000  /* for the tests that want the deadline */
#define CANARY    "CANARY-7f3a9c"

struct fx {
    char *dir;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    f->dir = tu_mkdtemp();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    tu_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* True when all n bytes of p are c. */
static bool all_bytes(const char *p, size_t n, char c)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != c)
            return false;
    return true;
}

/* Waits for pid (one of our children or an orphan we reap) and asserts
 * it was killed by SIGKILL. */
static void expect_killed(pid_t pid)
{
    int st = 0;
    pid_t got;
    while ((got = waitpid(pid, &st, 0)) < 0 && errno == EINTR)
        ;
    assert_int_equal(got, pid);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGKILL);
}

/* The output keeps every byte, NULs and high bytes included, and the
 * trailing newline; it is NUL-terminated after len. */
static void output_is_captured_exactly_with_binary_bytes_and_newline(void **state)
{
    (void)state;
    char out[64], err[256] = "";
    memset(out, 'Z', sizeof out);
    size_t len = 99;
    assert_int_equal(runcmd_capture("printf 'a\\000b\\377\\n'", QUICK_MS, out, sizeof out, &len,
                                    err, sizeof err),
                     0);
    assert_int_equal(len, 5);
    assert_memory_equal(out, "a\0b\377\n", 5);
    assert_int_equal(out[5], '\0');
}

/* Output of exactly cap - 1 bytes fits; a nonzero exit is reported with
 * its status. */
static void exact_fit_succeeds_and_nonzero_exit_reports_the_status(void **state)
{
    (void)state;
    char out[8], err[256] = "";
    size_t len = 0;
    assert_int_equal(
        runcmd_capture("printf 0123456", QUICK_MS, out, sizeof out, &len, err, sizeof err), 0);
    assert_int_equal(len, 7);
    assert_string_equal(out, "0123456");

    assert_int_equal(runcmd_capture("exit 3", QUICK_MS, out, sizeof out, &len, err, sizeof err),
                     -1);
    assert_string_equal(err, "exited with status 3");
    assert_int_equal(len, 0);
}

/* The child starts with default dispositions and an empty signal mask
 * even when the caller ignores and blocks SIGTERM (a worker thread blocks
 * everything): the shell's `kill -TERM $$` then kills it, and the status
 * says which signal. An inherited SIG_IGN or mask would let it exit 0. */
static void child_gets_default_signals_and_death_by_signal_is_reported(void **state)
{
    (void)state;
    struct sigaction ign = {.sa_handler = SIG_IGN}, old_act;
    sigemptyset(&ign.sa_mask);
    sigset_t term, old_mask;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    assert_int_equal(sigaction(SIGTERM, &ign, &old_act), 0);
    assert_int_equal(pthread_sigmask(SIG_BLOCK, &term, &old_mask), 0);

    char out[64], err[256] = "";
    size_t len = 0;
    int rc = runcmd_capture("kill -TERM $$; echo survived", QUICK_MS, out, sizeof out, &len, err,
                            sizeof err);

    assert_int_equal(pthread_sigmask(SIG_SETMASK, &old_mask, NULL), 0);
    assert_int_equal(sigaction(SIGTERM, &old_act, NULL), 0);
    assert_int_equal(rc, -1);
    assert_string_equal(err, "was killed by signal 15");
    assert_int_equal(len, 0);
}

/* On the deadline the whole group gets SIGKILL: the shell (exec'd into
 * sleep) is reaped before the call returns, so its pid no longer exists,
 * and the background sleep it started dies of SIGKILL too. The error
 * names the timeout, not the output or the command. */
static void timeout_kills_the_whole_group_and_reaps_the_shell(void **state)
{
    struct fx *f = *state;
    char *pidfile = xasprintf("%s/pids", f->dir);
    char *cmd =
        xasprintf("echo " CANARY "; sleep 30 & echo \"$$ $!\" > '%s'; exec sleep 30", pidfile);
    char out[64], err[256] = "";
    size_t len = 0;
    assert_int_equal(runcmd_capture(cmd, EXPIRE_MS, out, sizeof out, &len, err, sizeof err), -1);
    assert_string_equal(err, "timed out after 1000 ms");
    assert_int_equal(len, 0);
    assert_true(all_bytes(out, sizeof out, '\0')); /* the canary was wiped */

    char *pids = tu_read_file(pidfile, NULL);
    assert_non_null(pids);
    long shell = 0, bg = 0;
    assert_int_equal(sscanf(pids, "%ld %ld", &shell, &bg), 2); /* written before the deadline */
    errno = 0;
    assert_int_equal(kill((pid_t)shell, 0), -1);
    assert_int_equal(errno, ESRCH);
    expect_killed((pid_t)bg);
    free(pids);
    xfree(cmd);
    xfree(pidfile);
}

/* Output past cap - 1 bytes is refused: nothing is written past the
 * buffer, the buffer is wiped, and an endless writer is killed instead of
 * running into the timeout. */
static void output_longer_than_the_buffer_is_refused_without_writing_past_it(void **state)
{
    (void)state;
    char big[32], err[256] = "";
    memset(big, 'Z', sizeof big);
    size_t len = 0;
    assert_int_equal(runcmd_capture("printf 0123456789", QUICK_MS, big, 8, &len, err, sizeof err),
                     -1);
    assert_string_equal(err, "printed more than 7 bytes");
    assert_int_equal(len, 0);
    assert_true(all_bytes(big, 8, '\0'));
    assert_true(all_bytes(big + 8, sizeof big - 8, 'Z'));

    char out[64];
    assert_int_equal(runcmd_capture("yes", QUICK_MS, out, sizeof out, &len, err, sizeof err), -1);
    assert_string_equal(err, "printed more than 63 bytes");
}

/* The child's stdin is /dev/null, not ours: with our stdin a pipe that
 * stays open, `cat` would block until the timeout; it returns at once
 * with nothing. */
static void stdin_is_dev_null_not_the_callers(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    int saved = dup(0);
    assert_true(saved >= 0);
    assert_int_equal(dup2(p[0], 0), 0);

    char out[64], err[256] = "";
    size_t len = 99;
    int rc = runcmd_capture("cat", QUICK_MS, out, sizeof out, &len, err, sizeof err);

    assert_int_equal(dup2(saved, 0), 0);
    close(saved);
    close(p[0]);
    close(p[1]);
    assert_int_equal(rc, 0);
    assert_int_equal(len, 0);
    assert_string_equal(out, "");
}

/* The shell's stdin and stderr are both /dev/null (what it prints on
 * stderr is not captured). */
static void stdin_and_stderr_are_dev_null(void **state)
{
    (void)state;
    char out[256], err[256] = "";
    size_t len = 0;
    assert_int_equal(runcmd_capture("echo oops >&2; readlink /proc/$$/fd/0 /proc/$$/fd/2; exit $?",
                                    QUICK_MS, out, sizeof out, &len, err, sizeof err),
                     0);
    assert_string_equal(out, "/dev/null\n/dev/null\n");
}

/* No error message carries the output or the command (which holds the
 * same canary): a failing exit and an overflow both print it first. */
static void errors_never_contain_the_output_or_the_command(void **state)
{
    (void)state;
    char out[64], err[256] = "";
    size_t len = 0;
    assert_int_equal(
        runcmd_capture("echo " CANARY "; exit 1", QUICK_MS, out, sizeof out, &len, err, sizeof err),
        -1);
    assert_string_equal(err, "exited with status 1");
    assert_true(all_bytes(out, sizeof out, '\0'));

    assert_int_equal(
        runcmd_capture("echo " CANARY CANARY, QUICK_MS, out, 10, &len, err, sizeof err), -1);
    assert_null(strstr(err, "CANARY"));
    assert_true(all_bytes(out, 10, '\0'));
}

/* A background grandchild holding stdout open does not make the call wait
 * for it: once the shell exits, its output is drained, the leftover group
 * is killed and the call succeeds (10 s timeout, so waiting for EOF would
 * fail the test with "timed out"). The grandchild dies of SIGKILL. */
static void background_grandchild_holding_stdout_does_not_hang_the_call(void **state)
{
    (void)state;
    char out[64], err[256] = "";
    size_t len = 0;
    assert_int_equal(
        runcmd_capture("sleep 30 & echo $!", QUICK_MS, out, sizeof out, &len, err, sizeof err), 0);
    assert_true(len >= 2 && out[len - 1] == '\n');
    char *end = NULL;
    long bg = strtol(out, &end, 10);
    assert_true(bg > 0 && end == out + len - 1);
    expect_killed((pid_t)bg);
}

/* Descriptors: the child holds 0, 1, 2, and otherwise only what the
 * contract allows: nothing when RUNCMD_CLOSES_ALL_FDS, else only
 * descriptors we had open without FD_CLOEXEC before the call. Our capture
 * pipe (created during the call, so at a number that was free before)
 * is never among them. The list is the shell's own (/proc/$$/fd read by a
 * separate ls, which is not exec'd because a command follows it). */
static void child_inherits_only_stdio_and_what_the_contract_allows(void **state)
{
    (void)state;
    enum { MAXFD = 4096 };
    static bool inheritable[MAXFD];
    memset(inheritable, 0, sizeof inheritable);
    int mine = open("/dev/null", O_RDONLY); /* deliberately without O_CLOEXEC */
    assert_true(mine > 2 && mine < MAXFD);
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL) {
        close(mine);
        skip();
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        long fd = strtol(de->d_name, NULL, 10);
        if (de->d_name[0] == '.' || fd == dirfd(d) || fd < 0 || fd >= MAXFD)
            continue;
        int fl = fcntl((int)fd, F_GETFD);
        if (fl >= 0 && !(fl & FD_CLOEXEC))
            inheritable[fd] = true;
    }
    closedir(d);

    char out[4096], err[256] = "";
    size_t len = 0;
    assert_int_equal(
        runcmd_capture("ls /proc/$$/fd; exit $?", QUICK_MS, out, sizeof out, &len, err, sizeof err),
        0);
    bool seen[3] = {false, false, false}, saw_mine = false;
    char *save = NULL;
    for (char *line = strtok_r(out, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char *end = NULL;
        long fd = strtol(line, &end, 10);
        assert_true(*end == '\0' && fd >= 0 && fd < MAXFD);
        if (fd <= 2) {
            seen[fd] = true;
            continue;
        }
        if (fd == mine)
            saw_mine = true;
        assert_false(RUNCMD_CLOSES_ALL_FDS);
        assert_true(inheritable[fd]);
    }
    close(mine);
    assert_true(seen[0] && seen[1] && seen[2]);
    assert_int_equal(saw_mine, !RUNCMD_CLOSES_ALL_FDS);
}

/* Invalid arguments are refused before anything runs. */
static void empty_buffer_and_nonpositive_timeout_are_refused(void **state)
{
    struct fx *f = *state;
    char *marker = xasprintf("%s/ran", f->dir);
    char *cmd = xasprintf("touch '%s'", marker);
    char out[8], err[256] = "";
    size_t len = 0;
    assert_int_equal(runcmd_capture(cmd, QUICK_MS, out, 0, &len, err, sizeof err), -1);
    assert_non_null(strstr(err, "no room"));
    assert_int_equal(runcmd_capture(cmd, 0, out, sizeof out, &len, err, sizeof err), -1);
    assert_non_null(strstr(err, "invalid timeout of 0 ms"));
    assert_int_equal(access(marker, F_OK), -1);
    xfree(cmd);
    xfree(marker);
}

struct thread_arg {
    int id;
    int failures;
};

static void *run_many(void *p)
{
    struct thread_arg *a = p;
    for (int i = 0; i < 20; i++) {
        char cmd[64], want[64], out[64], err[256];
        size_t len = 0;
        snprintf(cmd, sizeof cmd, "echo thread-%d-run-%d", a->id, i);
        snprintf(want, sizeof want, "thread-%d-run-%d\n", a->id, i);
        if (runcmd_capture(cmd, QUICK_MS, out, sizeof out, &len, err, sizeof err) != 0 ||
            strcmp(out, want) != 0 || len != strlen(want))
            a->failures++;
    }
    return NULL;
}

/* Two threads running commands at once each get exactly their own
 * output (no shared state, no crossed pipes). */
static void two_threads_run_commands_at_once(void **state)
{
    (void)state;
    struct thread_arg a = {.id = 1}, b = {.id = 2};
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, run_many, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, run_many, &b), 0);
    assert_int_equal(pthread_join(ta, NULL), 0);
    assert_int_equal(pthread_join(tb, NULL), 0);
    assert_int_equal(a.failures, 0);
    assert_int_equal(b.failures, 0);
}

/* A spec for argv (path = argv[0]) with out of cap bytes. */
static struct runcmd_spec spec_for(char *const *argv, char *out, size_t cap)
{
    return (struct runcmd_spec){
        .path = argv[0], .argv = argv, .out = out, .out_cap = cap, .timeout_ms = QUICK_MS};
}

/* A large input with every byte value goes through cat unchanged: the
 * input is written while the output is read, so neither side blocks on a
 * full pipe. */
static void run_feeds_large_binary_input_while_reading_the_output(void **state)
{
    (void)state;
    size_t n = 1024 * 1024 + 7;
    char *in = xmalloc(n);
    for (size_t i = 0; i < n; i++)
        in[i] = (char)(i * 7 + i / 256);
    char *out = xmalloc(n + 1);
    char arg0[] = "/bin/cat";
    char *argv[] = {arg0, NULL};
    struct runcmd_spec spec = spec_for(argv, out, n + 1);
    spec.input = in;
    spec.input_len = n;
    struct runcmd_result res;
    char err[256] = "";
    assert_int_equal(runcmd_run(&spec, &res, err, sizeof err), 0);
    assert_int_equal(res.end, RUNCMD_EXITED);
    assert_int_equal(res.status, 0);
    assert_int_equal(res.out_len, n);
    assert_memory_equal(out, in, n);
    assert_int_equal(out[n], '\0');

    /* Empty input is an immediate EOF, not /dev/null's absence of one. */
    spec.input_len = 0;
    assert_int_equal(runcmd_run(&spec, &res, err, sizeof err), 0);
    assert_int_equal(res.out_len, 0);
    xfree(out);
    xfree(in);
}

/* A program that exits without reading its input: our write meets a
 * closed pipe. No SIGPIPE kills us (the default disposition here) or is
 * left pending, and the mask is restored, whether SIGPIPE was blocked
 * before (a worker thread) or not. */
static void run_survives_a_program_that_does_not_read_its_input(void **state)
{
    (void)state;
    size_t n = 1024 * 1024;
    char *in = xmalloc(n);
    memset(in, 'x', n);
    char out[16], err[256] = "";
    char arg0[] = "/bin/sh", arg1[] = "-c", arg2[] = "echo done";
    char *argv[] = {arg0, arg1, arg2, NULL};
    struct runcmd_spec spec = spec_for(argv, out, sizeof out);
    spec.input = in;
    spec.input_len = n;
    struct runcmd_result res;
    for (int blocked = 0; blocked < 2; blocked++) {
        sigset_t pipe_set, old, now, pending;
        sigemptyset(&pipe_set);
        sigaddset(&pipe_set, SIGPIPE);
        assert_int_equal(pthread_sigmask(blocked ? SIG_BLOCK : SIG_UNBLOCK, &pipe_set, &old), 0);
        assert_int_equal(runcmd_run(&spec, &res, err, sizeof err), 0);
        assert_string_equal(out, "done\n");
        assert_int_equal(pthread_sigmask(SIG_SETMASK, NULL, &now), 0);
        assert_int_equal(sigismember(&now, SIGPIPE), blocked);
        assert_int_equal(sigpending(&pending), 0);
        assert_false(sigismember(&pending, SIGPIPE));
        assert_int_equal(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
    }
    xfree(in);
}

/* stderr is kept up to its cap and the rest is read and dropped, so a
 * program writing far more than a pipe holds does not block; stdout is
 * separate. Without errout, stderr stays /dev/null. */
static void run_keeps_stderr_up_to_its_cap_and_drops_the_rest(void **state)
{
    (void)state;
    char out[64], errout[101], err[256] = "";
    char arg0[] = "/bin/sh", arg1[] = "-c",
         arg2[] = "head -c 1000000 /dev/zero | tr '\\000' e >&2; echo out";
    char *argv[] = {arg0, arg1, arg2, NULL};
    struct runcmd_spec spec = spec_for(argv, out, sizeof out);
    spec.errout = errout;
    spec.err_cap = sizeof errout;
    struct runcmd_result res;
    assert_int_equal(runcmd_run(&spec, &res, err, sizeof err), 0);
    assert_string_equal(out, "out\n");
    assert_int_equal(res.err_len, 100);
    assert_true(all_bytes(errout, 100, 'e'));
    assert_int_equal(errout[100], '\0');
    /* All but what the pipe could still hold when the program exited
     * (64 KiB by default). */
    assert_true(res.err_dropped >= 500000);
    assert_true(res.err_len + res.err_dropped <= 1000000);

    /* stderr is kept on failure too, and out is wiped. */
    char arg2b[] = "echo " CANARY "; echo why >&2; exit 5";
    argv[2] = arg2b;
    assert_int_equal(runcmd_run(&spec, &res, err, sizeof err), -1);
    assert_string_equal(err, "exited with status 5");
    assert_int_equal(res.end, RUNCMD_EXITED);
    assert_int_equal(res.status, 5);
    assert_string_equal(errout, "why\n");
    assert_true(all_bytes(out, sizeof out, '\0'));
}

/* The environment given is the whole environment. */
static void run_gives_the_program_exactly_the_environment_given(void **state)
{
    (void)state;
    setenv("RUNCMD_TEST_CANARY", CANARY, 1);
    char out[256], err[256] = "";
    char arg0[] = "/usr/bin/env";
    char *argv[] = {arg0, NULL};
    char e0[] = "ONLY=1", e1[] = "ALSO=two words";
    char *envp[] = {e0, e1, NULL};
    struct runcmd_spec spec = spec_for(argv, out, sizeof out);
    spec.envp = envp;
    struct runcmd_result res;
    assert_int_equal(runcmd_run(&spec, &res, err, sizeof err), 0);
    assert_string_equal(out, "ONLY=1\nALSO=two words\n");
    unsetenv("RUNCMD_TEST_CANARY");
}

/* A cancel flag already set stops the run at once: the program, which
 * would sleep for 30 s, is killed with its group. */
static void run_stops_when_the_cancel_flag_is_set(void **state)
{
    (void)state;
    atomic_bool cancel = true;
    char out[64], err[256] = "";
    char arg0[] = "/bin/sh", arg1[] = "-c", arg2[] = "echo $$; exec sleep 30";
    char *argv[] = {arg0, arg1, arg2, NULL};
    struct runcmd_spec spec = spec_for(argv, out, sizeof out);
    spec.cancel = &cancel;
    struct runcmd_result res;
    assert_int_equal(runcmd_run(&spec, &res, err, sizeof err), -1);
    assert_int_equal(res.end, RUNCMD_CANCELLED);
    assert_string_equal(err, "was cancelled");
    assert_int_equal(res.out_len, 0);
}

/* A program that does not exist cannot start: the path and the reason,
 * and nothing else; a spec without a program is refused. */
static void run_reports_a_program_that_cannot_start(void **state)
{
    (void)state;
    char out[64], err[256] = "";
    char arg0[] = "/nonexistent/" CANARY;
    char *argv[] = {arg0, NULL};
    struct runcmd_spec spec = spec_for(argv, out, sizeof out);
    struct runcmd_result res;
    assert_int_equal(runcmd_run(&spec, &res, err, sizeof err), -1);
    assert_int_equal(res.end, RUNCMD_NO_START);
    assert_int_equal(res.err_no, ENOENT);
    char want[256];
    snprintf(want, sizeof want, "cannot start /nonexistent/" CANARY ": %s", strerror(ENOENT));
    assert_string_equal(err, want);

    argv[0] = NULL;
    spec.path = NULL;
    assert_int_equal(runcmd_run(&spec, &res, err, sizeof err), -1);
    assert_int_equal(res.end, RUNCMD_BAD_SPEC);
    assert_string_equal(err, "has no program to run");
}

int main(void)
{
    /* Orphans of our commands become our children, to be reaped and
     * checked (see the header comment). */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
        perror("prctl(PR_SET_CHILD_SUBREAPER)");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(output_is_captured_exactly_with_binary_bytes_and_newline,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(exact_fit_succeeds_and_nonzero_exit_reports_the_status,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(child_gets_default_signals_and_death_by_signal_is_reported,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(timeout_kills_the_whole_group_and_reaps_the_shell, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            output_longer_than_the_buffer_is_refused_without_writing_past_it, setup, teardown),
        cmocka_unit_test_setup_teardown(stdin_is_dev_null_not_the_callers, setup, teardown),
        cmocka_unit_test_setup_teardown(stdin_and_stderr_are_dev_null, setup, teardown),
        cmocka_unit_test_setup_teardown(errors_never_contain_the_output_or_the_command, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(background_grandchild_holding_stdout_does_not_hang_the_call,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(child_inherits_only_stdio_and_what_the_contract_allows,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(empty_buffer_and_nonpositive_timeout_are_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(two_threads_run_commands_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(run_feeds_large_binary_input_while_reading_the_output,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(run_survives_a_program_that_does_not_read_its_input, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(run_keeps_stderr_up_to_its_cap_and_drops_the_rest, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(run_gives_the_program_exactly_the_environment_given, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(run_stops_when_the_cancel_flag_is_set, setup, teardown),
        cmocka_unit_test_setup_teardown(run_reports_a_program_that_cannot_start, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
