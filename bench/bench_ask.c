/*
 * bench_ask: what memchat adds on top of the HTTP request itself, against
 * the loopback test server (tests/server/mockllm), memory off.
 *
 *   1. one-shot: `memchat ask` as a fresh process against a bare libcurl
 *      client as a fresh process (this program with --bare), each streaming
 *      the same reply; time to the first reply byte on stdout and to exit.
 *   2. in session: N turns of `memchat chat --plain` (one process, one
 *      kept-alive connection, a new conversation each turn so the request
 *      is the same) against N bare libcurl requests over one connection in
 *      one process; time per turn.
 *
 * Runs are interleaved so that drift hits both sides alike; medians and p95
 * are printed as a Markdown table for docs/benchmarks.md. Run by `make bench`.
 */
#include "config.h"

#include <curl/curl.h>
#include <stdint.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RUNS 40
#define BODY \
    "{\"model\":\"mock\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(double *v, int n, double p)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    int i = (int)(p / 100.0 * (n - 1) + 0.5);
    return v[i];
}

/* --bare: streamed requests; for each, prints one byte when the first
 * piece of reply text arrives (so the parent can time it, as it times
 * memchat's first delta) and a newline when the response is complete, so
 * both sides print one line per turn. */
static size_t bare_write(char *p, size_t sz, size_t n, void *ud)
{
    int *seen = ud;
    if (!*seen && memmem(p, sz * n, "\"content\":\"m", 12) != NULL) {
        *seen = 1;
        fputc('F', stdout);
        fflush(stdout);
    }
    return sz * n;
}

static int bare_once(const char *url, int turns)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, BODY);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, bare_write);
    int seen = 0;
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &seen);
    int rc = 0;
    for (int i = 0; i < turns && rc == 0; i++) {
        seen = 0;
        rc = curl_easy_perform(c) != CURLE_OK;
        fputc('\n', stdout);
        fflush(stdout);
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    curl_global_cleanup();
    return rc;
}

struct child {
    pid_t pid;
    int in, out;
};

static struct child spawn(char *const argv[], char *const envp[])
{
    int in[2], out[2];
    if (pipe(in) != 0 || pipe(out) != 0) {
        perror("pipe");
        exit(1);
    }
    struct child ch = {.pid = fork()};
    if (ch.pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        execve(argv[0], argv, envp);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    ch.in = in[1];
    ch.out = out[0];
    return ch;
}

/* Reads from fd until `want` newlines have been seen (0: until EOF); the
 * time of the first byte goes to *first. */
static int read_until(int fd, int want, double start, double *first)
{
    char b[65536];
    int lines = 0;
    for (;;) {
        ssize_t n = read(fd, b, sizeof b);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return want == 0 ? 0 : -1;
        if (first != NULL && *first < 0)
            *first = now_ms() - start;
        for (ssize_t i = 0; i < n; i++)
            lines += b[i] == '\n';
        if (want > 0 && lines >= want)
            return 0;
    }
}

static int reap(struct child *ch)
{
    close(ch->in);
    close(ch->out);
    int st = 0;
    waitpid(ch->pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* One fresh process: time to first stdout byte and to exit. */
static void one_shot(char *const argv[], char *const envp[], double *ttfd, double *total)
{
    double t0 = now_ms(), first = -1;
    struct child ch = spawn(argv, envp);
    close(ch.in);
    ch.in = -1;
    read_until(ch.out, 0, t0, &first);
    int st = 0;
    close(ch.out);
    waitpid(ch.pid, &st, 0);
    *total = now_ms() - t0;
    *ttfd = first;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "bench: %s failed (status %d)\n", argv[0], st);
        exit(1);
    }
}

/* Starts the mock server; returns its pid and writes its base URL. */
static pid_t start_mock(const char *bin, char *url, size_t urllen, int *keep)
{
    char *argv[] = {(char *)(uintptr_t)bin, NULL};
    char *envp[] = {NULL};
    struct child ch = spawn(argv, envp);
    char line[64] = "";
    ssize_t n = read(ch.out, line, sizeof line - 1);
    if (n <= 0 || strncmp(line, "PORT=", 5) != 0) {
        fprintf(stderr, "bench: the test server did not start\n");
        exit(1);
    }
    line[n] = '\0';
    snprintf(url, urllen, "http://127.0.0.1:%d", atoi(line + 5)); /* checksrc: allow atoi (bench) */
    *keep = ch.in; /* its stdin: closing it stops the server */
    close(ch.out);
    return ch.pid;
}

static void row(const char *what, double *a, double *b, int n)
{
    double ma = pct(a, n, 50), mb = pct(b, n, 50);
    printf("| %s | %.2f | %.2f | %.2f | %.2f | %.2f× |\n", what, ma, pct(a, n, 95), mb,
           pct(b, n, 95), ma / mb);
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--bare") == 0)
        return bare_once(argv[2], atoi(argv[3])); /* checksrc: allow atoi (bench) */
    if (argc != 4) {
        fprintf(stderr, "usage: bench_ask MEMCHAT MOCKLLM TMPDIR\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    char base[128], url[256], e_base[300], e_data[600], e_cfg[600], e_home[600];
    int mock_stdin;
    pid_t mock = start_mock(argv[2], base, sizeof base, &mock_stdin);
    snprintf(url, sizeof url, "%s/v1/chat/completions", base);
    snprintf(e_base, sizeof e_base, "OPENAI_BASE_URL=%s/v1", base);
    snprintf(e_data, sizeof e_data, "MEMCHAT_DATA_DIR=%s/data", argv[3]);
    snprintf(e_cfg, sizeof e_cfg, "MEMCHAT_CONFIG_DIR=%s/config", argv[3]);
    snprintf(e_home, sizeof e_home, "HOME=%s", argv[3]);
    char *envp[] = {e_base, e_data, e_cfg, e_home, (char *)(uintptr_t) "LOGNAME=bench", NULL};
    char self[4096];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    self[sl > 0 ? sl : 0] = '\0';

    char *ask[] = {argv[1],
                   (char *)(uintptr_t) "ask",
                   (char *)(uintptr_t) "--no-memory",
                   (char *)(uintptr_t) "--provider",
                   (char *)(uintptr_t) "openai",
                   (char *)(uintptr_t) "--model",
                   (char *)(uintptr_t) "mock",
                   (char *)(uintptr_t) "hi",
                   NULL};
    char *bare[] = {self, (char *)(uintptr_t) "--bare", url, (char *)(uintptr_t) "1", NULL};
    double a_ttfd[RUNS], a_tot[RUNS], b_ttfd[RUNS], b_tot[RUNS];
    one_shot(ask, envp, &a_ttfd[0], &a_tot[0]); /* warm-up: creates the data file */
    for (int i = 0; i < RUNS; i++) {
        one_shot(ask, envp, &a_ttfd[i], &a_tot[i]);
        one_shot(bare, envp, &b_ttfd[i], &b_tot[i]);
    }

    /* In session: RUNS turns through one chat process. Each turn starts a
     * new conversation (/new, which prints one line), so that memchat sends
     * the same one-message request as the bare client instead of the
     * growing history a memory-off chat carries by design. */
    char *chat[] = {argv[1],
                    (char *)(uintptr_t) "chat",
                    (char *)(uintptr_t) "--plain",
                    (char *)(uintptr_t) "--no-memory",
                    (char *)(uintptr_t) "--provider",
                    (char *)(uintptr_t) "openai",
                    (char *)(uintptr_t) "--model",
                    (char *)(uintptr_t) "mock",
                    NULL};
    double a_turn[RUNS], b_turn[RUNS];
    struct child ch = spawn(chat, envp);
    for (int i = 0; i < RUNS; i++) {
        double t0 = now_ms();
        if (write(ch.in, "/new\nhi\n", 8) != 8)
            return 1;
        read_until(ch.out, 2, t0, NULL);
        a_turn[i] = now_ms() - t0;
    }
    reap(&ch);
    char turns[16];
    snprintf(turns, sizeof turns, "%d", RUNS);
    char *bare_n[] = {self, (char *)(uintptr_t) "--bare", url, turns, NULL};
    ch = spawn(bare_n, envp);
    double t_prev = now_ms();
    for (int i = 0; i < RUNS; i++) {
        read_until(ch.out, 1, t_prev, NULL);
        double t = now_ms();
        b_turn[i] = t - t_prev;
        t_prev = t;
    }
    reap(&ch);

    printf("| measure (ms, %d runs) | memchat p50 | memchat p95 | bare libcurl p50 | bare libcurl "
           "p95 | ratio of p50 |\n|---|---|---|---|---|---|\n",
           RUNS);
    row("one-shot: first reply byte", a_ttfd, b_ttfd, RUNS);
    row("one-shot: process exit", a_tot, b_tot, RUNS);
    row("in session: one turn", a_turn, b_turn, RUNS);
    close(mock_stdin);
    waitpid(mock, NULL, 0);
    return 0;
}
