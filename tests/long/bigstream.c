/*
 * bigstream: the long stream runs of `make check-long-streams` (issue 13,
 * deliverable 4; docs/reliability.md, "Streams"). It starts the loopback
 * mock (tests/server/mockllm) and runs `memchat ask` against it for each
 * outsized stream: an endless stream (the mock's `oversize`, 256 MiB of
 * events, streamed and whole), a 10 MiB single line within the default
 * 16 MiB cap and past a 1 MiB one, a 2 GiB line (endless for the client),
 * and a payload of 100,000 nested arrays, on all three providers. Each run
 * must end by itself with the right exit code and, for the capped ones,
 * the message naming MEMCHAT_MAX_RESPONSE_BYTES, and its peak RSS (the
 * getrusage(RUSAGE_CHILDREN) ru_maxrss of a process whose only child was
 * that memchat) must stay under a bound derived from the cap and the
 * size of what the stream makes memchat keep (see rss_bound()). A table
 * of the figures is printed for docs/reliability.md. Meant for a build
 * without sanitizers (their shadow memory would swamp the figures).
 *
 * usage: bigstream MEMCHAT MOCKLLM SCRATCH_DIR
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MIB         (1024L * 1024L)
#define DEFAULT_CAP (16L * MIB) /* MEMCHAT_MAX_RESPONSE_BYTES's default */
#define SMALL_CAP   (1L * MIB)
#define BIG_LINE    (10L * MIB)
#define GUARD_S     600 /* a run still going after this is a hang */
#define QUESTION    "hello"
#define REPLY       "mock reply: " QUESTION "\n"

/* What one run asks for and must come to. */
struct run_case {
    const char *name;
    const char *provider;
    const char *model;
    const char *set; /* a --set NAME=VALUE, or NULL */
    int want_exit;
    const char *want_err; /* a part of stderr, or NULL */
    long out_bytes;       /* stdout's exact size, or -1 */
    long held;            /* bytes of the stream memchat may hold (rss_bound) */
    int copies;           /* how many times over (rss_bound) */
};

/* The bytes held and their copies (see rss_bound) */
#define CAPPED       2                  /* a stream stopped at the cap: one parser buffer */
#define DELIVERED    9                  /* a payload parsed and shown: every copy of a reply */
#define STREAM_HELD  (DEFAULT_CAP / 16) /* oversize: 7 bytes of text per ~170-byte event */
#define NESTED_BYTES 200000L

static const struct run_case cases[] = {
    {"baseline", "openai", "mock", NULL, 0, NULL, (long)sizeof REPLY - 1, 0, 0},
    {"endless stream", "openai", "mock:oversize", NULL, 3,
     "MEMCHAT_MAX_RESPONSE_BYTES (16777216 bytes)", -1, STREAM_HELD, DELIVERED},
    {"endless stream", "anthropic", "mock:oversize", NULL, 3,
     "MEMCHAT_MAX_RESPONSE_BYTES (16777216 bytes)", -1, STREAM_HELD, DELIVERED},
    {"endless stream", "ollama", "mock:oversize", NULL, 3,
     "MEMCHAT_MAX_RESPONSE_BYTES (16777216 bytes)", -1, STREAM_HELD, DELIVERED},
    {"endless answer", "openai", "mock:oversize", "MEMCHAT_STREAM=false", 3,
     "MEMCHAT_MAX_RESPONSE_BYTES (16777216 bytes)", -1, DEFAULT_CAP, CAPPED},
    {"10 MiB line", "openai", "mock:bigline=10485760", NULL, 0, NULL,
     BIG_LINE + (long)sizeof REPLY - 1, BIG_LINE, DELIVERED},
    {"10 MiB line", "anthropic", "mock:bigline=10485760", NULL, 0, NULL,
     BIG_LINE + (long)sizeof REPLY - 1, BIG_LINE, DELIVERED},
    {"10 MiB line", "ollama", "mock:bigline=10485760", NULL, 0, NULL,
     BIG_LINE + (long)sizeof REPLY - 1, BIG_LINE, DELIVERED},
    {"10 MiB line, 1 MiB cap", "openai", "mock:bigline=10485760",
     "MEMCHAT_MAX_RESPONSE_BYTES=1048576", 3, "MEMCHAT_MAX_RESPONSE_BYTES (1048576 bytes)", -1,
     SMALL_CAP, CAPPED},
    {"10 MiB line, 1 MiB cap", "ollama", "mock:bigline=10485760",
     "MEMCHAT_MAX_RESPONSE_BYTES=1048576", 3, "MEMCHAT_MAX_RESPONSE_BYTES (1048576 bytes)", -1,
     SMALL_CAP, CAPPED},
    {"2 GiB line", "anthropic", "mock:bigline=2147483648", NULL, 3,
     "MEMCHAT_MAX_RESPONSE_BYTES (16777216 bytes)", -1, DEFAULT_CAP, CAPPED},
    {"100,000 nested arrays", "openai", "mock:nested=100000", NULL, 0, NULL, (long)sizeof REPLY - 1,
     NESTED_BYTES, DELIVERED},
    {"100,000 nested arrays", "anthropic", "mock:nested=100000", NULL, 0, NULL,
     (long)sizeof REPLY - 1, NESTED_BYTES, DELIVERED},
    {"100,000 nested arrays", "ollama", "mock:nested=100000", NULL, 0, NULL, (long)sizeof REPLY - 1,
     NESTED_BYTES, DELIVERED},
};

/* The RSS (KiB) a run may reach: the baseline (a small reply) plus the
 * bytes of the stream memchat may hold (held) times the copies it makes
 * of them, plus 8 MiB of slack for the allocator's arenas and page
 * rounding. What is held: a stream stopped by the cap holds at most the
 * cap (a util/buf never grows past its max + 1), in one buffer: the SSE
 * line and data buffers share one max_event budget (sse_fits), the NDJSON
 * line or the whole answer has its own; CAPPED = 2 counts the old block
 * during the last realloc. A payload that is parsed and shown is copied
 * (DELIVERED = 9): the parser's line and data buffers (2), the parsed
 * JSON string (1), the turn's reply text grown by doubling (2), what the
 * front end writes and the conversation store binds (2), SQLite's page
 * cache of the stored reply (2). An endless stream of small events holds
 * one event at a time and the text it showed: under cap / 16, since the
 * mock's events carry 7 bytes of text in about 170. */
static long rss_bound(long base_kb, long held, int copies)
{
    return base_kb + (long)copies * held / 1024 + 8 * 1024;
}

/* --- processes --- */

static void die(const char *what)
{
    fprintf(stderr, "bigstream: %s: %s\n", what, strerror(errno));
    exit(2);
}

struct mock {
    pid_t pid;
    int in_fd; /* closing it stops the mock */
    int port;
};

static void mock_start(struct mock *m, const char *bin)
{
    int in_p[2], out_p[2];
    if (pipe2(in_p, O_CLOEXEC) != 0 || pipe2(out_p, O_CLOEXEC) != 0)
        die("pipe");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in_p[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&fa, out_p[1], STDOUT_FILENO);
    char *argv[] = {strdup(bin), NULL};
    if (argv[0] == NULL)
        die("strdup");
    int rc = posix_spawn(&m->pid, bin, &fa, NULL, argv, environ);
    free(argv[0]);
    posix_spawn_file_actions_destroy(&fa);
    close(in_p[0]);
    close(out_p[1]);
    if (rc != 0) {
        errno = rc;
        die(bin);
    }
    m->in_fd = in_p[1];
    char line[64] = "";
    size_t got = 0;
    while (got < sizeof line - 1 && (got == 0 || line[got - 1] != '\n')) {
        struct pollfd p = {.fd = out_p[0], .events = POLLIN};
        if (poll(&p, 1, 20000) <= 0)
            die("the mock printed no PORT line");
        ssize_t r = read(out_p[0], line + got, sizeof line - 1 - got);
        if (r <= 0)
            die("the mock printed no PORT line");
        got += (size_t)r;
    }
    close(out_p[0]);
    if (sscanf(line, "PORT=%d", &m->port) != 1)
        die("the mock printed no PORT line");
}

static int mock_stop(struct mock *m)
{
    close(m->in_fd);
    int st = 0;
    waitpid(m->pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* What one run came to. */
struct outcome {
    int status;   /* exit code, or 128 + signal */
    long rss_kb;  /* ru_maxrss of RUSAGE_CHILDREN */
    double secs;  /* wall time */
    bool hung;    /* killed after GUARD_S */
    long out_len; /* stdout bytes */
    char err[2048];
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* In a fresh child: runs memchat (its only child) with argv and env,
 * stdout and stderr to files, and reports status and RUSAGE_CHILDREN's
 * peak RSS through fd. Never returns. */
static void measure(int fd, const char *bin, char *const argv[], char *const env[],
                    const char *out_path, const char *err_path)
{
    setpgid(0, 0); /* so the parent can kill the pair after a hang */
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, out_path, O_WRONLY | O_CREAT | O_TRUNC,
                                     0600);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, err_path, O_WRONLY | O_CREAT | O_TRUNC,
                                     0600);
    pid_t pid;
    long result[2] = {-1, -1};
    if (posix_spawn(&pid, bin, &fa, NULL, argv, env) == 0) {
        int st = 0;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
        struct rusage ru;
        getrusage(RUSAGE_CHILDREN, &ru);
        result[0] = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        result[1] = ru.ru_maxrss;
    }
    ssize_t w = write(fd, result, sizeof result);
    _exit(w == (ssize_t)sizeof result ? 0 : 1);
}

/* A writable copy of a NULL-terminated list (posix_spawn's type). */
static char **dup_list(const char *const *list)
{
    size_t n = 0;
    while (list[n] != NULL)
        n++;
    char **out = calloc(n + 1, sizeof *out);
    if (out == NULL)
        die("calloc");
    for (size_t i = 0; i < n; i++)
        if ((out[i] = strdup(list[i])) == NULL)
            die("strdup");
    return out;
}

static void free_list(char **list)
{
    for (size_t i = 0; list[i] != NULL; i++)
        free(list[i]);
    free(list);
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static void read_head(const char *path, char *out, size_t outlen)
{
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    size_t n = fread(out, 1, outlen - 1, f);
    out[n] = '\0';
    fclose(f);
}

static void run_one(const struct run_case *rc, const char *memchat, const char *dir, int port,
                    struct outcome *o)
{
    char home[4200], data[4200], conf[4200], out_path[4200], err_path[4200];
    snprintf(home, sizeof home, "HOME=%s", dir);
    snprintf(data, sizeof data, "MEMCHAT_DATA_DIR=%s/data", dir);
    snprintf(conf, sizeof conf, "MEMCHAT_CONFIG_DIR=%s/config", dir);
    snprintf(out_path, sizeof out_path, "%s/stdout", dir);
    snprintf(err_path, sizeof err_path, "%s/stderr", dir);
    char openai[128], anthropic[128], ollama[128];
    snprintf(openai, sizeof openai, "OPENAI_BASE_URL=http://127.0.0.1:%d/v1", port);
    snprintf(anthropic, sizeof anthropic, "ANTHROPIC_BASE_URL=http://127.0.0.1:%d", port);
    snprintf(ollama, sizeof ollama, "OLLAMA_BASE_URL=http://127.0.0.1:%d", port);
    const char *const env_c[] = {home,
                                 data,
                                 conf,
                                 "LOGNAME=tester",
                                 "PATH=/usr/bin:/bin",
                                 openai,
                                 anthropic,
                                 ollama,
                                 "OPENAI_API_KEY=sk-bigstream-test",
                                 "ANTHROPIC_API_KEY=sk-ant-bigstream-test",
                                 "MEMCHAT_MAX_RETRIES=0",
                                 NULL};
    const char *argv_c[16];
    size_t n = 0;
    argv_c[n++] = memchat;
    argv_c[n++] = "ask";
    argv_c[n++] = "--no-memory";
    argv_c[n++] = "--provider";
    argv_c[n++] = rc->provider;
    argv_c[n++] = "--model";
    argv_c[n++] = rc->model;
    if (rc->set != NULL) {
        argv_c[n++] = "--set";
        argv_c[n++] = rc->set;
    }
    argv_c[n++] = QUESTION;
    argv_c[n] = NULL;
    char **argv = dup_list(argv_c), **env = dup_list(env_c);

    memset(o, 0, sizeof *o);
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        die("pipe");
    double t0 = now_s();
    pid_t child = fork();
    if (child < 0)
        die("fork");
    if (child == 0) {
        close(p[0]);
        measure(p[1], memchat, argv, env, out_path, err_path);
    }
    close(p[1]);
    long result[2] = {-1, -1};
    struct pollfd pf = {.fd = p[0], .events = POLLIN};
    if (poll(&pf, 1, GUARD_S * 1000) <= 0) {
        o->hung = true;
        kill(-child, SIGKILL);
    } else if (read(p[0], result, sizeof result) != (ssize_t)sizeof result) {
        result[0] = -1;
    }
    close(p[0]);
    waitpid(child, NULL, 0);
    o->secs = now_s() - t0;
    o->status = (int)result[0];
    o->rss_kb = result[1];
    o->out_len = file_size(out_path);
    read_head(err_path, o->err, sizeof o->err);
    free_list(argv);
    free_list(env);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: bigstream MEMCHAT MOCKLLM SCRATCH_DIR\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct mock m;
    mock_start(&m, argv[2]);
    size_t nc = sizeof cases / sizeof cases[0];
    long base_kb = 0;
    int failures = 0;
    printf("%-24s %-10s %5s %9s %9s %8s  %s\n", "case", "provider", "exit", "RSS KiB", "bound",
           "secs", "outcome");
    for (size_t i = 0; i < nc; i++) {
        const struct run_case *rc = &cases[i];
        struct outcome o;
        run_one(rc, argv[1], argv[3], m.port, &o);
        if (i == 0)
            base_kb = o.rss_kb;
        long bound = rss_bound(base_kb, rc->held, rc->copies);
        char why[256] = "ok";
        if (o.hung)
            snprintf(why, sizeof why, "FAIL: still running after %d s", GUARD_S);
        else if (o.status != rc->want_exit)
            snprintf(why, sizeof why, "FAIL: exit %d, want %d: %.150s", o.status, rc->want_exit,
                     o.err);
        else if (rc->want_err != NULL && strstr(o.err, rc->want_err) == NULL)
            snprintf(why, sizeof why, "FAIL: the message lacks \"%s\": %.120s", rc->want_err,
                     o.err);
        else if (rc->out_bytes >= 0 && o.out_len != rc->out_bytes)
            snprintf(why, sizeof why, "FAIL: %ld bytes on stdout, want %ld", o.out_len,
                     rc->out_bytes);
        else if (o.rss_kb <= 0 || (i > 0 && o.rss_kb > bound))
            snprintf(why, sizeof why, "FAIL: peak RSS %ld KiB over the bound %ld KiB", o.rss_kb,
                     bound);
        else if (rc->want_err != NULL)
            snprintf(why, sizeof why, "ok: %.*s", (int)strcspn(o.err, "\n"), o.err);
        if (strncmp(why, "FAIL", 4) == 0)
            failures++;
        printf("%-24s %-10s %5d %9ld %9ld %8.2f  %s\n", rc->name, rc->provider, o.status, o.rss_kb,
               i > 0 ? bound : 0L, o.secs, why);
        fflush(stdout);
    }
    int ms = mock_stop(&m);
    if (ms != 0) {
        printf("the mock exited with status %d\n", ms);
        failures++;
    }
    printf("check-long-streams: %zu runs, %d failed\n", nc, failures);
    return failures == 0 ? 0 : 1;
}
