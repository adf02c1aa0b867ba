/*
 * bench_ask: what memchat adds on top of the HTTP request itself, against
 * the loopback test server (tests/server/mockllm), memory off.
 *
 *   1. one-shot: `memchat ask` as a fresh process against a bare libcurl
 *      client as a fresh process (this program with --bare-session and one
 *      line of input), each streaming
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
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <sys/socket.h>

#define RUNS         40
#define SESSION_RUNS 400 /* first-delta samples in a session (after one warm-up) */
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

struct child {
    pid_t pid;
    int in, out;
};

static struct child spawn(char *const argv[], char *const envp[])
{
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) {
        perror("pipe");
        exit(1);
    }
    struct child ch = {.pid = fork()};
    if (ch.pid == 0) {
        /* dup2 clears close-on-exec on 0 and 1 only: every other pipe end,
         * this child's and its siblings', closes at exec. */
        dup2(in[0], 0);
        dup2(out[1], 1);
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

/* One fresh process, given input (or none) on stdin: time to its first
 * stdout byte and to its exit. */
static void one_shot(char *const argv[], char *const envp[], const char *input, double *ttfd,
                     double *total)
{
    double t0 = now_ms(), first = -1;
    struct child ch = spawn(argv, envp);
    if (input != NULL && write(ch.in, input, strlen(input)) != (ssize_t)strlen(input))
        exit(1);
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

/* --bare-session URL [HEADER...]: one request per line read on stdin, over
 * one kept-alive connection, printing 'F' at the first reply text and a
 * newline when the response is complete: the same signals the parent reads
 * from memchat's chat, so both are timed alike. */
static int bare_session(const char *url, char **headers, int n_headers)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    for (int i = 0; i < n_headers; i++)
        h = curl_slist_append(h, headers[i]);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, BODY);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, bare_write);
    int seen = 0, rc = 0;
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &seen);
    char line[256];
    while (rc == 0 && fgets(line, sizeof line, stdin) != NULL) {
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

/* Time to the first reply byte of RUNS turns of memchat's chat, each in a
 * new conversation (the /new line is read before the clock starts). */
static void session_ttfd_memchat(char *const argv[], char *const envp[], double *out)
{
    struct child ch = spawn(argv, envp);
    for (int i = -1; i < SESSION_RUNS; i++) { /* turn -1 opens the connection */
        if (write(ch.in, "/new\n", 5) != 5)
            exit(1);
        read_until(ch.out, 1, now_ms(), NULL);
        double t0 = now_ms(), first = -1;
        if (write(ch.in, "hi\n", 3) != 3)
            exit(1);
        read_until(ch.out, 1, t0, &first);
        if (i >= 0)
            out[i] = first;
    }
    reap(&ch);
}

/* The same for this program's --bare-session client. */
static void session_ttfd_bare(char *const argv[], char *const envp[], double *out)
{
    struct child ch = spawn(argv, envp);
    for (int i = -1; i < SESSION_RUNS; i++) {
        double t0 = now_ms(), first = -1;
        if (write(ch.in, "go\n", 3) != 3)
            exit(1);
        read_until(ch.out, 1, t0, &first);
        if (i >= 0)
            out[i] = first;
    }
    reap(&ch);
}

/* A free port on 127.0.0.1 (bound, read, released). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        exit(1);
    close(fd);
    return ntohs(a.sin_port);
}

/* True once something accepts connections on 127.0.0.1:port. */
static bool port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* Starts the Portkey gateway from srcdir's node_modules on a free port;
 * 0 when it is not installed or does not come up within 30 s. */
static pid_t start_portkey(const char *srcdir, int *port)
{
    char script[4096];
    snprintf(script, sizeof script, "%s/node_modules/@portkey-ai/gateway/build/start-server.js",
             srcdir);
    if (access(script, R_OK) != 0)
        return 0;
    *port = free_port();
    char portarg[32], path[4096];
    snprintf(portarg, sizeof portarg, "--port=%d", *port);
    snprintf(path, sizeof path, "PATH=%s", getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
    char *argv[] = {(char *)(uintptr_t) "/usr/bin/env",
                    (char *)(uintptr_t) "node",
                    script,
                    portarg,
                    (char *)(uintptr_t) "--headless",
                    NULL};
    char *envp[] = {path, NULL};
    pid_t pid = fork();
    if (pid == 0) { /* its logging goes nowhere: nothing reads it */
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        execve(argv[0], argv, envp);
        _exit(127);
    }
    for (int i = 0; i < 600 && !port_open(*port); i++)
        usleep(50000); /* waiting for a server to come up, not timing anything */
    if (port_open(*port))
        return pid;
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    return 0;
}

/* The added latency at percentile p: v's p-th value minus the
 * reference's at the same percentile. */
static double added(double *v, double ref, double p)
{
    return pct(v, SESSION_RUNS, p) - ref;
}

/* The gateway comparison: what memchat's pipeline and the Portkey gateway
 * each add to the first delta over bare libcurl, in a session. */
static void gateway_table(char *const chat[], char *const envp[], const char *self, const char *url,
                          const char *base, const char *srcdir)
{
    static double m[SESSION_RUNS], d[SESSION_RUNS], g[SESSION_RUNS];
    char *bare[] = {(char *)(uintptr_t)self, (char *)(uintptr_t) "--bare-session",
                    (char *)(uintptr_t)url, NULL};
    session_ttfd_memchat(chat, envp, m);
    session_ttfd_bare(bare, envp, d);
    int port = 0;
    pid_t pk = start_portkey(srcdir, &port);
    printf("\n| added to the first delta, in session (ms, %d turns) | p50 | p99 |\n"
           "|---|---|---|\n",
           SESSION_RUNS);
    double d50 = pct(d, SESSION_RUNS, 50), d99 = pct(d, SESSION_RUNS, 99);
    printf("| bare libcurl to the server (the reference itself) | %.3f | %.3f |\n", d50, d99);
    printf("| memchat's pipeline | %.3f | %.3f |\n", added(m, d50, 50), added(m, d99, 99));
    if (pk == 0) {
        printf("| Portkey gateway | not installed (npm ci in the source tree) | |\n");
        return;
    }
    char gurl[128], host[256];
    snprintf(gurl, sizeof gurl, "http://127.0.0.1:%d/v1/chat/completions", port);
    snprintf(host, sizeof host, "x-portkey-custom-host: %s/v1", base);
    char *via[] = {(char *)(uintptr_t)self,
                   (char *)(uintptr_t) "--bare-session",
                   gurl,
                   (char *)(uintptr_t) "x-portkey-provider: openai",
                   host,
                   (char *)(uintptr_t) "Authorization: Bearer sk-bench",
                   NULL};
    session_ttfd_bare(via, envp, g);
    double g50 = added(g, d50, 50), g99 = added(g, d99, 99);
    printf("| Portkey gateway %s | %.3f | %.3f |\n", "1.15.2", g50, g99);
    printf("| memchat's ÷ Portkey's | %.2f× | %.2f× |\n", added(m, d50, 50) / g50,
           added(m, d99, 99) / g99);
    kill(pk, SIGTERM);
    waitpid(pk, NULL, 0);
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "--bare-session") == 0)
        return bare_session(argv[2], argv + 3, argc - 3);
    if (argc != 5) {
        fprintf(stderr, "usage: bench_ask MEMCHAT MOCKLLM TMPDIR SRCDIR\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
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
    char *bare[] = {self, (char *)(uintptr_t) "--bare-session", url, NULL};
    double a_ttfd[RUNS], a_tot[RUNS], b_ttfd[RUNS], b_tot[RUNS];
    one_shot(ask, envp, NULL, &a_ttfd[0], &a_tot[0]); /* warm-up: creates the data file */
    for (int i = 0; i < RUNS; i++) {
        one_shot(ask, envp, NULL, &a_ttfd[i], &a_tot[i]);
        one_shot(bare, envp, "go\n", &b_ttfd[i], &b_tot[i]);
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
    ch = spawn(bare, envp);
    for (int i = 0; i < RUNS; i++) {
        double t0 = now_ms();
        if (write(ch.in, "go\n", 3) != 3)
            return 1;
        read_until(ch.out, 1, t0, NULL);
        b_turn[i] = now_ms() - t0;
    }
    reap(&ch);

    printf("| measure (ms, %d runs) | memchat p50 | memchat p95 | bare libcurl p50 | bare libcurl "
           "p95 | ratio of p50 |\n|---|---|---|---|---|---|\n",
           RUNS);
    row("one-shot: first reply byte", a_ttfd, b_ttfd, RUNS);
    row("one-shot: process exit", a_tot, b_tot, RUNS);
    row("in session: one turn", a_turn, b_turn, RUNS);
    gateway_table(chat, envp, self, url, base, argv[4]);
    close(mock_stdin);
    waitpid(mock, NULL, 0);
    return 0;
}
