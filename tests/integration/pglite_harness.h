/*
 * The test-side harness of the PGlite test server (tests/server/
 * pglite-server.sh): PostgreSQL with pgvector in memory on 127.0.0.1, for
 * the pgvector store's tests. pglite_start() runs the script (its own
 * process group, its stdin a pipe only the test holds, so the server dies
 * with a crashed test), reads its PORT=<n> line and then retries a libpq
 * connection until one succeeds, all bounded by PGLITE_GUARD_MS (PGlite
 * boots a WebAssembly PostgreSQL, which takes seconds, more on a busy
 * machine); pglite_url() is the URL to give PGVECTOR_URL; pglite_stop()
 * closes the stdin and waits (bounded), killing the group only when the
 * server does not exit. pglite_restart() starts a new server on the same
 * port, for the tests of a server that went away and came back.
 * Without node_modules the test fails saying to run npm ci.
 */
#ifndef MEMCHAT_PGLITE_HARNESS_H
#define MEMCHAT_PGLITE_HARNESS_H

#include "../unit/testutil.h"

#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include <libpq-fe.h>

#define PGLITE_GUARD_MS 180000

struct pglite {
    pid_t pid;
    int in_fd, out_fd;
    int port;
    char url[96]; /* postgresql://postgres@127.0.0.1:<port>/postgres */
};

static inline long long pglite_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The script's path; fails the test when the server is not installed. */
static inline void pglite_paths(char *script, size_t len)
{
    const char *src = getenv("MEMCHAT_SRCDIR");
    if (src == NULL || *src == '\0')
        fail_msg("MEMCHAT_SRCDIR is not set (make check sets it)");
    char mod[4200];
    snprintf(mod, sizeof mod, "%s/node_modules/@electric-sql/pglite-socket/dist/scripts/server.js",
             src);
    struct stat st;
    if (stat(mod, &st) != 0)
        fail_msg("%s is missing: run npm ci (./quickstart.sh check does it)", mod);
    snprintf(script, len, "%s/tests/server/pglite-server.sh", src);
}

static inline void pglite_kill(struct pglite *p)
{
    kill(-p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
}

/* Reads the PORT=<n> line (bounded). */
static inline void pglite_read_port(struct pglite *p)
{
    char line[64];
    size_t got = 0;
    long long deadline = pglite_now_ms() + PGLITE_GUARD_MS;
    while (got == 0 || line[got - 1] != '\n') {
        long long left = deadline - pglite_now_ms();
        struct pollfd pf = {.fd = p->out_fd, .events = POLLIN};
        int pr = left > 0 ? poll(&pf, 1, (int)left) : 0;
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0) {
            pglite_kill(p);
            fail_msg("the PGlite server printed no PORT line within %d ms", PGLITE_GUARD_MS);
        }
        ssize_t r = read(p->out_fd, line + got, sizeof line - 1 - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || got + (size_t)r >= sizeof line - 1) {
            pglite_kill(p);
            fail_msg("the PGlite server exited or printed garbage before its PORT line");
        }
        got += (size_t)r;
    }
    line[got] = '\0';
    char *end = NULL;
    long port = strncmp(line, "PORT=", 5) == 0 ? strtol(line + 5, &end, 10) : 0;
    if (end == NULL || *end != '\n' || port <= 0 || port > 65535) {
        pglite_kill(p);
        fail_msg("the PGlite server printed '%s' instead of PORT=<n>", line);
    }
    p->port = (int)port;
}

/* Retries a connection until one succeeds (bounded): the server may print
 * its port a moment before it answers the startup message. */
static inline void pglite_wait_ready(struct pglite *p)
{
    long long deadline = pglite_now_ms() + PGLITE_GUARD_MS;
    char last[256] = "";
    while (pglite_now_ms() < deadline) {
        PGconn *c = PQconnectdb(p->url);
        bool ok = c != NULL && PQstatus(c) == CONNECTION_OK;
        if (!ok && c != NULL)
            snprintf(last, sizeof last, "%s", PQerrorMessage(c));
        PQfinish(c);
        if (ok)
            return;
        struct pollfd none = {.fd = -1};
        poll(&none, 0, 100); /* between attempts, not to pass */
    }
    pglite_kill(p);
    fail_msg("the PGlite server on port %d accepted no connection within %d ms: %s", p->port,
             PGLITE_GUARD_MS, last);
}

/* Starts the server on port (0: any free one); fails the test on error. */
static inline struct pglite *pglite_start_on(int port)
{
    char script[4300];
    pglite_paths(script, sizeof script);
    struct pglite *p = calloc(1, sizeof *p);
    assert_non_null(p);
    char portarg[16];
    snprintf(portarg, sizeof portarg, "%d", port);
    char sh[] = "/bin/sh";
    char *argv[] = {sh, script, portarg, NULL};
    int rc = tu_spawn_piped("/bin/sh", argv, true, &p->pid, &p->in_fd, &p->out_fd);
    if (rc != 0)
        fail_msg("cannot start %s: %s", script, strerror(rc));
    pglite_read_port(p);
    snprintf(p->url, sizeof p->url, "postgresql://postgres@127.0.0.1:%d/postgres", p->port);
    pglite_wait_ready(p);
    return p;
}

static inline struct pglite *pglite_start(void)
{
    return pglite_start_on(0);
}

/* The URL for PGVECTOR_URL (valid until pglite_stop). */
static inline const char *pglite_url(const struct pglite *p)
{
    return p->url;
}

/* Stops the server (closes its stdin), waits for it (bounded) and frees
 * p; fails the test when it does not exit. NULL is a no-op. */
static inline void pglite_stop(struct pglite *p)
{
    if (p == NULL)
        return;
    close(p->in_fd);
    long long deadline = pglite_now_ms() + PGLITE_GUARD_MS;
    pid_t done = 0;
    while (done == 0) {
        done = waitpid(p->pid, NULL, WNOHANG);
        if (done < 0 && errno == EINTR)
            done = 0;
        if (done != 0)
            break;
        if (pglite_now_ms() >= deadline) {
            pglite_kill(p);
            close(p->out_fd);
            free(p);
            fail_msg("the PGlite server did not exit within %d ms of its stdin closing",
                     PGLITE_GUARD_MS);
        }
        /* its stdout reaches EOF when it exits: wait on that */
        struct pollfd pf = {.fd = p->out_fd, .events = POLLIN};
        if (poll(&pf, 1, 50) > 0) {
            char junk[256];
            if (read(p->out_fd, junk, sizeof junk) < 0 && errno != EINTR)
                break;
        }
    }
    /* the script's node child goes with its EXIT trap; make sure of it */
    kill(-p->pid, SIGKILL);
    close(p->out_fd);
    free(p);
}

/* Stops p and starts a new, empty server on the same port. */
static inline struct pglite *pglite_restart(struct pglite *p)
{
    int port = p->port;
    pglite_stop(p);
    return pglite_start_on(port);
}

#endif
