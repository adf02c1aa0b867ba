/*
 * The test-side harness of the loopback LLM test server (tests/server/mockllm,
 * spec "The loopback LLM test server"): cmocka tests start their own server
 * with mock_start(), point the client at mock_url(), read what the server
 * received with mock_requests(), and stop it with mock_stop(), which proves
 * the server did not crash (exit status 0, and under ASan no leak). The
 * server's stdin is a pipe held only by the test process, so the server also
 * dies with a test that crashes. Every wait is bounded by MOCK_GUARD_MS and
 * fails the test instead of hanging. Header-only (static inline functions),
 * for test programs that link cJSON.
 *
 * Opik endpoints: a POST to any path ending in /v1/private/traces/batch or
 * /v1/private/spans/batch is logged like every request and answered 204
 * (no body) when its body is {"traces":[{...},...]} or {"spans":[...]}
 * with 1 to 1000 objects, else 422 {"errors":["..."]} as Opik's own
 * validation does. Failures are picked by a path segment "mock:<b>[,<b>...]"
 * before /v1 (so in the base URL: <mock_url>/mock:500,then=2/api), with the
 * chat routes' behaviour names:
 *   500, 529, 401, 400, big-error   that status with Opik's error body
 *                                   {"code":N,"message":"mock ...","details":"..."}
 *   429-seconds, 429-ms, 429-date, 429-long   429 with Retry-After: 1,
 *                                   retry-after-ms: 150, an HTTP date 2 s on,
 *                                   Retry-After: 3600
 *   echo-key                        401 (or the status named with it) whose
 *                                   message and details quote the request's
 *                                   authorization header (for scrub tests)
 *   hang (or stall)                 never answers; the connection stays open
 *   drop                            closes the connection without an answer
 *   no-retry-header                 adds x-should-retry: false
 *   spans-only                      the behaviour applies to span batches
 *                                   only; trace batches get 204, uncounted
 *   then=N                          the first N requests with this same
 *                                   segment (traces and spans counted
 *                                   together) misbehave, later ones get 204;
 *                                   mock_reset() restarts the count
 * An unknown name gets 400 naming it.
 */
#ifndef MEMCHAT_MOCKSERVER_H
#define MEMCHAT_MOCKSERVER_H

#include "../unit/testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include <cJSON.h>

/* How long any wait on the server may take before the test fails; generous
 * because ASan and valgrind slow everything down. */
#define MOCK_GUARD_MS 20000

/* One running server; mock_start() makes it, mock_stop() frees it. */
struct mock {
    pid_t pid;
    int in_fd;  /* write end of the server's stdin: closing it stops it */
    int out_fd; /* read end of the server's stdout */
    int port;
    char *dir;      /* private tmp dir holding the log */
    char *log_path; /* dir/requests.ndjson */
    char url[40];   /* http://127.0.0.1:<port> */
};

/* Milliseconds on the monotonic clock (for the hang guards). */
static inline long long mock_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Starts the program named by the environment variable bin_env (e.g.
 * MEMCHAT_MOCK_BIN) with --log <tmpdir>/requests.ndjson and then the
 * arguments extra (NULL-terminated; NULL for none), and waits (bounded) for
 * its PORT=<n> line; fails the test on any error. The caller stops and
 * frees it with mock_stop(). */
static inline struct mock *mock_start_with(const char *bin_env, const char *const *extra)
{
    const char *bin = getenv(bin_env);
    if (bin == NULL || *bin == '\0')
        fail_msg("%s is not set (make check sets it)", bin_env);
    struct mock *m = calloc(1, sizeof *m);
    assert_non_null(m);
    m->dir = tu_mkdtemp();
    size_t n = strlen(m->dir) + sizeof "/requests.ndjson";
    m->log_path = malloc(n);
    assert_non_null(m->log_path);
    snprintf(m->log_path, n, "%s/requests.ndjson", m->dir);

    char *argv[32];
    size_t argc = 0;
    argv[argc++] = strdup(bin);
    argv[argc++] = strdup("--log");
    argv[argc++] = strdup(m->log_path);
    for (size_t i = 0; extra != NULL && extra[i] != NULL && argc < 31; i++)
        argv[argc++] = strdup(extra[i]);
    argv[argc] = NULL;
    for (size_t i = 0; i < argc; i++)
        assert_non_null(argv[i]);
    /* Closing our end of its stdin stops the server (tu_spawn_piped keeps
     * it from every other child). */
    int rc = tu_spawn_piped(bin, argv, false, &m->pid, &m->in_fd, &m->out_fd);
    for (size_t i = 0; i < argc; i++)
        free(argv[i]);
    if (rc != 0)
        fail_msg("cannot start the mock server %s: %s", bin, strerror(rc));

    char line[64];
    size_t got = 0;
    long long deadline = mock_now_ms() + MOCK_GUARD_MS;
    while (got == 0 || line[got - 1] != '\n') {
        long long left = deadline - mock_now_ms();
        struct pollfd p = {.fd = m->out_fd, .events = POLLIN};
        int pr = left > 0 ? poll(&p, 1, (int)left) : 0;
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0) {
            kill(m->pid, SIGKILL);
            waitpid(m->pid, NULL, 0);
            fail_msg("the mock server %s printed no PORT line within %d ms", bin, MOCK_GUARD_MS);
        }
        ssize_t r = read(m->out_fd, line + got, sizeof line - 1 - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || got + (size_t)r >= sizeof line - 1) {
            int st = 0;
            if (r > 0)
                kill(m->pid, SIGKILL);
            waitpid(m->pid, &st, 0);
            fail_msg("the mock server %s printed no PORT line (exit status %d, signal %d)", bin,
                     WIFEXITED(st) ? WEXITSTATUS(st) : -1, WIFSIGNALED(st) ? WTERMSIG(st) : 0);
        }
        got += (size_t)r;
    }
    line[got] = '\0';
    char *end = NULL;
    long port = strncmp(line, "PORT=", 5) == 0 ? strtol(line + 5, &end, 10) : 0;
    if (end == NULL || *end != '\n' || port <= 0 || port > 65535) {
        kill(m->pid, SIGKILL);
        waitpid(m->pid, NULL, 0);
        fail_msg("the mock server printed '%s' instead of PORT=<n>", line);
    }
    m->port = (int)port;
    snprintf(m->url, sizeof m->url, "http://127.0.0.1:%d", m->port);
    return m;
}

/* Starts $MEMCHAT_MOCK_BIN, the loopback LLM test server (see
 * mock_start_with). */
static inline struct mock *mock_start(void)
{
    return mock_start_with("MEMCHAT_MOCK_BIN", NULL);
}

/* The server's base URL, "http://127.0.0.1:<port>" (valid until mock_stop). */
static inline const char *mock_url(const struct mock *m)
{
    return m->url;
}

/* Every request the server logged so far, as a new cJSON array of the
 * logged objects ({"seq","conn","method","path","headers","body"}) in
 * arrival order; the caller frees it with cJSON_Delete. Returns the count.
 * A last line still being written (no newline yet) is not counted; every
 * request is logged before its reply is sent. Fails the test on a line that
 * is not JSON. */
static inline size_t mock_requests(const struct mock *m, cJSON **out_array)
{
    cJSON *arr = cJSON_CreateArray();
    assert_non_null(arr);
    size_t len = 0;
    char *text = tu_read_file(m->log_path, &len);
    if (text != NULL) {
        for (char *p = text; p < text + len;) {
            char *nl = memchr(p, '\n', (size_t)(text + len - p));
            if (nl == NULL)
                break;
            if (nl > p) {
                cJSON *o = cJSON_ParseWithLength(p, (size_t)(nl - p));
                if (o == NULL) {
                    cJSON_Delete(arr);
                    free(text);
                    fail_msg("mock server log %s: a line is not JSON", m->log_path);
                }
                cJSON_AddItemToArray(arr, o);
            }
            p = nl + 1;
        }
        free(text);
    }
    *out_array = arr;
    return (size_t)cJSON_GetArraySize(arr);
}

/* How many requests the server received since the last POST /_mock/reset
 * (its log is cumulative and records the reset request itself). */
static inline size_t mock_count_since_reset(const struct mock *m)
{
    cJSON *arr = NULL;
    mock_requests(m, &arr);
    size_t n = 0;
    const cJSON *req;
    cJSON_ArrayForEach(req, arr)
    {
        const cJSON *path = cJSON_GetObjectItemCaseSensitive(req, "path");
        bool reset = cJSON_IsString(path) && strcmp(path->valuestring, "/_mock/reset") == 0;
        n = reset ? 0 : n + 1;
    }
    cJSON_Delete(arr);
    return n;
}

/* Sends the raw bytes req (len) to the server on a new connection and
 * returns everything it answers until it closes (caller frees; *out_len gets
 * the length). The request should carry "Connection: close". Fails the test
 * on a connection error or when the answer takes over MOCK_GUARD_MS. */
static inline char *mock_raw_exchange(const struct mock *m, const char *req, size_t len,
                                      size_t *out_len)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)m->port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        int e = errno;
        close(fd);
        fail_msg("cannot connect to the mock server at %s: %s", m->url, strerror(e));
    }
    for (size_t off = 0; off < len;) {
        ssize_t w = send(fd, req + off, len - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            close(fd);
            fail_msg("cannot send to the mock server at %s", m->url);
        }
        off += (size_t)w;
    }
    size_t cap = 4096, n = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    long long deadline = mock_now_ms() + MOCK_GUARD_MS;
    for (;;) {
        long long left = deadline - mock_now_ms();
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int pr = left > 0 ? poll(&p, 1, (int)left) : 0;
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0) {
            close(fd);
            free(out);
            fail_msg("the mock server at %s did not answer within %d ms", m->url, MOCK_GUARD_MS);
        }
        if (cap - n < 4096) {
            cap *= 2;
            char *bigger = realloc(out, cap);
            assert_non_null(bigger);
            out = bigger;
        }
        ssize_t r = recv(fd, out + n, cap - n - 1, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    out[n] = '\0';
    if (out_len != NULL)
        *out_len = n;
    return out;
}

/* Resets the server's then=N counters (GET /_mock/reset on a raw socket;
 * note that the reset request itself is logged like any other). */
static inline void mock_reset(struct mock *m)
{
    static const char req[] = "GET /_mock/reset HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                              "Connection: close\r\n\r\n";
    size_t n = 0;
    char *res = mock_raw_exchange(m, req, sizeof req - 1, &n);
    int ok = n >= 12 && strncmp(res, "HTTP/1.1 200", 12) == 0;
    free(res);
    assert_true(ok);
}

/* Stops the server (closes its stdin), waits for it (bounded), removes the
 * tmp dir and frees m; fails the test unless the server exited with status
 * 0. NULL is a no-op. */
static inline void mock_stop(struct mock *m)
{
    if (m == NULL)
        return;
    close(m->in_fd);
    int st = 0;
    pid_t done = 0;
    long long deadline = mock_now_ms() + MOCK_GUARD_MS;
    while (done == 0) {
        done = waitpid(m->pid, &st, WNOHANG);
        if (done < 0 && errno == EINTR)
            done = 0;
        if (done != 0)
            break;
        long long left = deadline - mock_now_ms();
        if (left <= 0) {
            kill(m->pid, SIGKILL);
            waitpid(m->pid, &st, 0);
            close(m->out_fd);
            fail_msg("the mock server did not exit within %d ms of its stdin closing",
                     MOCK_GUARD_MS);
        }
        /* the server's stdout reaches EOF when it exits: wait on that, with
         * a short timeout in case someone else still holds the pipe */
        struct pollfd p = {.fd = m->out_fd, .events = POLLIN};
        if (poll(&p, 1, left < 50 ? (int)left : 50) > 0) {
            char junk[256];
            if (read(m->out_fd, junk, sizeof junk) < 0 && errno != EINTR)
                break;
        }
    }
    if (done <= 0)
        waitpid(m->pid, &st, 0);
    close(m->out_fd);
    tu_rmtree(m->dir);
    free(m->dir);
    free(m->log_path);
    free(m);
    if (!WIFEXITED(st))
        fail_msg("the mock server died of signal %d", WIFSIGNALED(st) ? WTERMSIG(st) : -1);
    assert_int_equal(WEXITSTATUS(st), 0);
}

#endif
