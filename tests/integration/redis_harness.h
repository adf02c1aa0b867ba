/*
 * The test-side harness of a real redis-server (Debian's package) on
 * 127.0.0.1 and an ephemeral port, with no persistence, for the tests of
 * the shared limits and cache (issue 12).
 *
 * Redis cannot be told to pick its own port, so redis_start() asks the
 * kernel for a free one (bind to port 0), starts the server on it and, when
 * another process took the port meanwhile, tries again with a new one. The
 * server runs under a small sh wrapper in its own process group whose stdin
 * is a pipe only the test holds: when the test ends, even by a crash, the
 * wrapper reads EOF and kills the server, so no server outlives its test.
 * The wrapper prints the server's pid, so redis_kill() can SIGKILL the
 * server alone (Redis "gone mid-run") and redis_restart() start a fresh
 * one on the same port. Readiness is a PING that succeeds, retried with a
 * bounded guard (REDIS_GUARD_MS); nothing is timed.
 */
#ifndef MEMCHAT_REDIS_HARNESS_H
#define MEMCHAT_REDIS_HARNESS_H

#include "../unit/testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "net/redis.h"

#define REDIS_GUARD_MS   30000
#define REDIS_PORT_TRIES 8

struct redis_server {
    pid_t wrapper; /* the sh wrapper (its own process group) */
    pid_t server;  /* redis-server, 0 once killed */
    int in_fd;     /* the wrapper's stdin: closing it stops everything */
    int out_fd;    /* the wrapper's stdout: the PID= line */
    int port;
    char url[64]; /* redis://127.0.0.1:<port>/0 */
};

static inline long long redis_h_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A port nobody listens on now. */
static inline int redis_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* One line from fd (bounded); false at EOF or when the guard passes. */
static inline bool redis_h_read_line(int fd, char *line, size_t cap)
{
    size_t got = 0;
    long long deadline = redis_h_now_ms() + REDIS_GUARD_MS;
    while (got == 0 || line[got - 1] != '\n') {
        long long left = deadline - redis_h_now_ms();
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        int pr = left > 0 ? poll(&pf, 1, (int)left) : 0;
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            return false;
        ssize_t r = read(fd, line + got, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || got + 2 >= cap)
            return false;
        got++;
    }
    line[got] = '\0';
    return true;
}

/* Whether a server answers PING on port now. */
static inline bool redis_h_ping(int port)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    bool ok = false;
    if (c != NULL && c->err == 0) {
        redisReply *r = redisCommand(c, "PING");
        ok = r != NULL && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
        if (r != NULL)
            freeReplyObject(r);
    }
    if (c != NULL)
        redisFree(c);
    return ok;
}

/* Whether pid runs and is not a zombie (the server is the wrapper's child,
 * not ours, so waitpid cannot tell). */
static inline bool redis_h_alive(pid_t pid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *close_paren = strrchr(buf, ')');
    return close_paren != NULL && close_paren[1] == ' ' && close_paren[2] != 'Z' &&
           close_paren[2] != 'X';
}

static inline void redis_h_reap(struct redis_server *s)
{
    close(s->in_fd);
    kill(-s->wrapper, SIGKILL);
    waitpid(s->wrapper, NULL, 0);
    close(s->out_fd);
}

/* Starts the wrapper and the server on port; false when the server did not
 * come up (the port was taken): everything started is stopped again. */
static inline bool redis_h_spawn(struct redis_server *s, int port)
{
    char portarg[16];
    snprintf(portarg, sizeof portarg, "%d", port);
    char sh[] = "/bin/sh", dash_c[] = "-c", name[] = "redis-wrapper";
    char script[] = "redis-server --bind 127.0.0.1 --port \"$1\" --save '' --appendonly no "
                    "--daemonize no --logfile '' --loglevel warning >/dev/null 2>&1 &\n"
                    "echo PID=$!\n"
                    "read _ignored\n"
                    "kill -9 $! 2>/dev/null\n";
    char *argv[] = {sh, dash_c, script, name, portarg, NULL};
    int rc = tu_spawn_piped("/bin/sh", argv, true, &s->wrapper, &s->in_fd, &s->out_fd);
    if (rc != 0)
        fail_msg("cannot start /bin/sh for redis-server: %s", strerror(rc));
    char line[64];
    long pid = 0;
    if (!redis_h_read_line(s->out_fd, line, sizeof line) || strncmp(line, "PID=", 4) != 0 ||
        (pid = strtol(line + 4, NULL, 10)) <= 0) {
        redis_h_reap(s);
        fail_msg("the redis-server wrapper printed no PID line");
    }
    s->server = (pid_t)pid;
    s->port = port;
    long long deadline = redis_h_now_ms() + REDIS_GUARD_MS;
    while (redis_h_now_ms() < deadline) {
        if (redis_h_ping(port))
            return true;
        if (!redis_h_alive(s->server))
            break; /* it exited: the port was taken */
        struct pollfd none = {.fd = -1};
        poll(&none, 0, 20); /* between attempts, not to pass */
    }
    redis_h_reap(s);
    return false;
}

/* Starts a server on port (0: a free one). Fails the test when
 * redis-server is not installed or never answers. */
static inline struct redis_server *redis_start_on(int port)
{
    struct redis_server *s = calloc(1, sizeof *s);
    assert_non_null(s);
    for (int i = 0; i < REDIS_PORT_TRIES; i++) {
        int p = port != 0 ? port : redis_free_port();
        if (redis_h_spawn(s, p)) {
            snprintf(s->url, sizeof s->url, "redis://127.0.0.1:%d/0", p);
            return s;
        }
        if (port != 0 && i >= 2)
            break;
    }
    free(s);
    fail_msg("redis-server did not answer on 127.0.0.1 (is Debian's redis-server installed? "
             "./quickstart.sh check installs it)");
    return NULL;
}

static inline struct redis_server *redis_start(void)
{
    return redis_start_on(0);
}

/* The URL for REDIS_URL (valid until redis_stop). */
static inline const char *redis_url(const struct redis_server *s)
{
    return s->url;
}

/* memchat's own client (net/redis.h) of the server at url, with key
 * prefix "t:" and the given retry delay; fails the test when it cannot be
 * made. */
static inline struct redis *redis_client_url(const char *url, long long retry_ms)
{
    char err[256] = "";
    struct redis_config c = {.url = url, .timeout_ms = 2000, .retry_ms = retry_ms, .prefix = "t:"};
    struct redis *r = redis_new(&c, err, sizeof err);
    if (r == NULL)
        fail_msg("redis_new: %s", err);
    return r;
}

/* The same, of s. */
static inline struct redis *redis_client(const struct redis_server *s, long long retry_ms)
{
    return redis_client_url(redis_url(s), retry_ms);
}

/* SIGKILLs the server alone (the wrapper waits on): Redis gone mid-run. */
static inline void redis_kill(struct redis_server *s)
{
    if (s->server > 0)
        kill(s->server, SIGKILL);
    long long deadline = redis_h_now_ms() + REDIS_GUARD_MS;
    while (s->server > 0 && redis_h_alive(s->server) && redis_h_now_ms() < deadline) {
        struct pollfd none = {.fd = -1};
        poll(&none, 0, 5);
    }
    s->server = 0;
}

/* Stops everything and frees s; NULL is a no-op. */
static inline void redis_stop(struct redis_server *s)
{
    if (s == NULL)
        return;
    redis_h_reap(s);
    free(s);
}

/* Kills s's server and starts a new, empty one on the same port. */
static inline struct redis_server *redis_restart(struct redis_server *s)
{
    int port = s->port;
    redis_stop(s);
    return redis_start_on(port);
}

#endif
