/*
 * The shared-server connection of redis.h, over hiredis's blocking API
 * (one request and its reply at a time, which is all a turn needs: every
 * limiter and cache step is one round trip). hiredis writes with plain
 * write(), so each command runs inside the SIGPIPE bracket of
 * util/sigpipe.h: a server that closed the connection gives an error, not
 * a signal that would end memchat.
 */
#include "config.h"

#include "net/redis.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <sodium.h>

#include "util/alloc.h"
#include "util/clock.h"
#include "util/sigpipe.h"

#define REDIS_DEFAULT_PORT 6379
/* Scripts whose SHA-1 one connection remembers (memchat has a handful). */
#define REDIS_SCRIPTS_MAX 16
#define REDIS_SHA_LEN     40
/* Arguments of one command built on the stack (EVALSHA sha n + the caller's). */
#define REDIS_ARGV_STACK 32

struct redis_script_slot {
    const char *source;
    char sha[REDIS_SHA_LEN + 1];
};

struct redis {
    pthread_mutex_t mu;
    struct redis_target t;
    long long timeout_ms;
    long long retry_ms;
    char prefix[REDIS_PREFIX_MAX + 1];
    char where[REDIS_HOST_MAX + 32];
    redisContext *ctx;    /* NULL while disconnected */
    int64_t failed_at_ms; /* the last failed connection attempt; 0: none */
    char last_err[256];   /* why it failed, for the fast refusals after it */
    atomic_bool up;       /* the last command reached the server */
    struct redis_script_slot scripts[REDIS_SCRIPTS_MAX];
    size_t n_scripts;
};

/* ---- REDIS_URL ---- */

static int redis_hex(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Copies s[0..n) into out (cap bytes with the NUL), decoding %XX. */
static bool redis_unescape(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return false;
            int h = redis_hex((unsigned char)s[i + 1]), l = redis_hex((unsigned char)s[i + 2]);
            if (h < 0 || l < 0)
                return false;
            c = h * 16 + l;
            i += 2;
        }
        if (c == '\0' || o + 1 >= cap)
            return false;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return true;
}

static bool redis_parse_int(const char *s, size_t n, long max, long *out)
{
    if (n == 0 || n > 10)
        return false;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

static int redis_url_fail(char *err, size_t errlen, const char *what)
{
    snprintf(err, errlen,
             "REDIS_URL: %s (expected redis://[user:password@]host[:port][/db], "
             "unix:///path/to/socket[?db=N] or /path/to/socket)",
             what);
    return -1;
}

/* A socket path, with an optional ?db=N. */
static int redis_parse_socket(const char *s, struct redis_target *t, char *err, size_t errlen)
{
    const char *q = strchr(s, '?');
    size_t n = q != NULL ? (size_t)(q - s) : strlen(s);
    if (n == 0 || s[0] != '/')
        return redis_url_fail(err, errlen, "the socket path must be absolute");
    if (n > REDIS_PATH_MAX)
        return redis_url_fail(err, errlen, "the socket path is too long");
    memcpy(t->path, s, n);
    t->path[n] = '\0';
    if (q == NULL)
        return 0;
    long db = 0;
    if (strncmp(q, "?db=", 4) != 0 || !redis_parse_int(q + 4, strlen(q + 4), INT_MAX, &db))
        return redis_url_fail(err, errlen, "after the socket path only ?db=N is understood");
    t->db = (int)db;
    return 0;
}

/* [[user]:password@] of a redis:// URL, s[0..n). */
static int redis_parse_userinfo(const char *s, size_t n, struct redis_target *t, char *err,
                                size_t errlen)
{
    const char *colon = memchr(s, ':', n);
    if (colon == NULL) /* redis://password@host is how some tools write it */
        colon = s - 1;
    size_t ulen = colon >= s ? (size_t)(colon - s) : 0;
    const char *pw = colon + 1;
    size_t plen = n - (size_t)(pw - s);
    if (!redis_unescape(s, ulen, t->user, sizeof t->user))
        return redis_url_fail(err, errlen, "the user name is malformed or too long");
    if (!redis_unescape(pw, plen, t->password, sizeof t->password))
        return redis_url_fail(err, errlen, "the password is malformed or too long");
    t->has_password = plen > 0;
    if (!t->has_password && t->user[0] != '\0')
        return redis_url_fail(err, errlen, "a user name needs a password");
    return 0;
}

/* host[:port] or [v6]:port, s[0..n). */
static int redis_parse_hostport(const char *s, size_t n, struct redis_target *t, char *err,
                                size_t errlen)
{
    const char *host = s, *port = NULL;
    size_t hlen = n;
    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (close == NULL)
            return redis_url_fail(err, errlen, "an IPv6 address lacks its ']'");
        host = s + 1;
        hlen = (size_t)(close - host);
        if (close + 1 < s + n) {
            if (close[1] != ':')
                return redis_url_fail(err, errlen, "junk after the IPv6 address");
            port = close + 2;
        }
    } else {
        const char *colon = memchr(s, ':', n);
        if (colon != NULL) {
            hlen = (size_t)(colon - s);
            port = colon + 1;
        }
    }
    if (hlen == 0)
        return redis_url_fail(err, errlen, "no host");
    if (hlen > REDIS_HOST_MAX)
        return redis_url_fail(err, errlen, "the host name is too long");
    memcpy(t->host, host, hlen);
    t->host[hlen] = '\0';
    long p = REDIS_DEFAULT_PORT;
    if (port != NULL && (!redis_parse_int(port, (size_t)(s + n - port), 65535, &p) || p == 0))
        return redis_url_fail(err, errlen, "the port is not a number from 1 to 65535");
    t->port = (int)p;
    return 0;
}

int redis_url_parse(const char *url, struct redis_target *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    t->port = REDIS_DEFAULT_PORT;
    if (url == NULL || url[0] == '\0')
        return redis_url_fail(err, errlen, "empty");
    if (url[0] == '/')
        return redis_parse_socket(url, t, err, errlen);
    if (strncmp(url, "unix://", 7) == 0)
        return redis_parse_socket(url + 7, t, err, errlen);
    if (strncmp(url, "rediss://", 9) == 0)
        return redis_url_fail(err, errlen,
                              "rediss:// (TLS) is not supported by Debian's hiredis; use a "
                              "local TLS tunnel such as stunnel, or a Unix socket");
    if (strncmp(url, "redis://", 8) != 0)
        return redis_url_fail(err, errlen, "unknown scheme");
    const char *s = url + 8;
    size_t auth_end = strcspn(s, "/?#");
    const char *at = NULL;
    for (size_t i = 0; i < auth_end; i++)
        if (s[i] == '@')
            at = s + i;
    if (at != NULL) {
        if (redis_parse_userinfo(s, (size_t)(at - s), t, err, errlen) != 0)
            return -1;
        s = at + 1;
        auth_end = strcspn(s, "/?#");
    }
    if (redis_parse_hostport(s, auth_end, t, err, errlen) != 0)
        return -1;
    const char *rest = s + auth_end;
    if (*rest == '\0')
        return 0;
    if (*rest != '/')
        return redis_url_fail(err, errlen, "query strings and fragments are not understood");
    rest++;
    if (*rest == '\0')
        return 0;
    long db = 0;
    if (!redis_parse_int(rest, strlen(rest), INT_MAX, &db))
        return redis_url_fail(err, errlen, "the database after '/' is not a number");
    t->db = (int)db;
    return 0;
}

/* ---- the connection ---- */

struct redis *redis_new(const struct redis_config *c, char *err, size_t errlen)
{
    struct redis_target t;
    if (redis_url_parse(c->url, &t, err, errlen) != 0)
        return NULL;
    const char *prefix = c->prefix != NULL ? c->prefix : "";
    if (strlen(prefix) > REDIS_PREFIX_MAX) {
        snprintf(err, errlen, "REDIS_KEY_PREFIX is longer than %d bytes", REDIS_PREFIX_MAX);
        sodium_memzero(&t, sizeof t);
        return NULL;
    }
    for (const char *p = prefix; *p != '\0'; p++)
        if (*p <= ' ' || *p == 0x7f || strchr("*?[]\\", *p) != NULL) {
            snprintf(err, errlen,
                     "REDIS_KEY_PREFIX may not hold spaces, control characters or the "
                     "pattern characters * ? [ ] \\");
            sodium_memzero(&t, sizeof t);
            return NULL;
        }
    struct redis *r = xcalloc(1, sizeof *r);
    atomic_init(&r->up, false);
    pthread_mutex_init(&r->mu, NULL);
    r->t = t;
    sodium_memzero(&t, sizeof t);
    r->timeout_ms = c->timeout_ms > 0 ? c->timeout_ms : 1000;
    r->retry_ms = c->retry_ms >= 0 ? c->retry_ms : REDIS_RETRY_MS_DEFAULT;
    snprintf(r->prefix, sizeof r->prefix, "%s", prefix);
    if (r->t.path[0] != '\0')
        snprintf(r->where, sizeof r->where, "%s/%d", r->t.path, r->t.db);
    else if (strchr(r->t.host, ':') != NULL)
        snprintf(r->where, sizeof r->where, "[%s]:%d/%d", r->t.host, r->t.port, r->t.db);
    else
        snprintf(r->where, sizeof r->where, "%s:%d/%d", r->t.host, r->t.port, r->t.db);
    return r;
}

static void redis_drop(struct redis *r)
{
    if (r->ctx != NULL)
        redisFree(r->ctx);
    r->ctx = NULL;
    atomic_store(&r->up, false);
}

void redis_free(struct redis *r)
{
    if (r == NULL)
        return;
    redis_drop(r);
    pthread_mutex_destroy(&r->mu);
    sodium_memzero(&r->t, sizeof r->t);
    xfree(r);
}

const char *redis_where(const struct redis *r)
{
    return r->where;
}

const char *redis_prefix(const struct redis *r)
{
    return r->prefix;
}

bool redis_is_up(struct redis *r)
{
    return atomic_load(&r->up);
}

static struct timeval redis_tv(long long ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

/* Sends argv on the live connection (locked). A NULL reply means the
 * connection is unusable: it is dropped. */
static enum redis_status redis_send(struct redis *r, int argc, const char **argv,
                                    const size_t *lens, redisReply **out, char *err, size_t errlen)
{
    *out = NULL;
    struct sigpipe_guard g;
    sigpipe_block(&g);
    redisReply *rep = redisCommandArgv(r->ctx, argc, argv, lens);
    sigpipe_restore(&g);
    if (rep == NULL) {
        snprintf(err, errlen, "Redis at %s: %s", r->where,
                 r->ctx->errstr[0] != '\0' ? r->ctx->errstr : "the connection broke");
        redis_drop(r);
        return REDIS_ST_DOWN;
    }
    atomic_store(&r->up, true);
    if (rep->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "Redis at %s answered: %.*s", r->where, (int)rep->len, rep->str);
        freeReplyObject(rep);
        return REDIS_ST_FAILED;
    }
    *out = rep;
    return REDIS_ST_OK;
}

/* AUTH and SELECT on a new connection (locked). */
static enum redis_status redis_handshake(struct redis *r, char *err, size_t errlen)
{
    redisReply *rep = NULL;
    enum redis_status st = REDIS_ST_OK;
    if (r->t.has_password) {
        const char *argv[3] = {"AUTH", r->t.user, r->t.password};
        int argc = r->t.user[0] != '\0' ? 3 : 2;
        if (argc == 2)
            argv[1] = r->t.password;
        st = redis_send(r, argc, argv, NULL, &rep, err, errlen);
        freeReplyObject(rep);
        if (st == REDIS_ST_FAILED)
            snprintf(err, errlen, "Redis at %s refused the user name or password of REDIS_URL",
                     r->where);
        if (st != REDIS_ST_OK)
            return st;
    }
    if (r->t.db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", r->t.db);
        const char *argv[2] = {"SELECT", db};
        st = redis_send(r, 2, argv, NULL, &rep, err, errlen);
        freeReplyObject(rep);
    }
    return st;
}

/* Makes the connection when there is none and the retry delay has passed
 * (locked). */
static enum redis_status redis_connect(struct redis *r, char *err, size_t errlen)
{
    if (r->ctx != NULL)
        return REDIS_ST_OK;
    int64_t now = clock_mono_ms();
    if (r->failed_at_ms != 0 && now - r->failed_at_ms < r->retry_ms) {
        snprintf(err, errlen, "%s", r->last_err);
        return REDIS_ST_DOWN;
    }
    struct timeval tv = redis_tv(r->timeout_ms);
    r->ctx = r->t.path[0] != '\0' ? redisConnectUnixWithTimeout(r->t.path, tv)
                                  : redisConnectWithTimeout(r->t.host, r->t.port, tv);
    enum redis_status st = REDIS_ST_DOWN;
    if (r->ctx == NULL) {
        snprintf(err, errlen, "Redis at %s: out of memory while connecting", r->where);
    } else if (r->ctx->err != 0) {
        snprintf(err, errlen, "Redis at %s is unreachable: %s", r->where, r->ctx->errstr);
        redis_drop(r);
    } else {
        redisSetTimeout(r->ctx, tv);
        (void)redisEnableKeepAlive(r->ctx);
        st = redis_handshake(r, err, errlen);
        if (st != REDIS_ST_OK)
            redis_drop(r);
    }
    if (st != REDIS_ST_OK) {
        r->failed_at_ms = now != 0 ? now : 1;
        snprintf(r->last_err, sizeof r->last_err, "%s", err);
        return st == REDIS_ST_FAILED ? REDIS_ST_FAILED : REDIS_ST_DOWN;
    }
    r->failed_at_ms = 0;
    return REDIS_ST_OK;
}

/* Connects when needed and sends; a connection that broke since its last
 * use (the server restarted, an idle timeout closed it) is made again once,
 * at once: the command then reaches the new server. */
static enum redis_status redis_roundtrip(struct redis *r, int argc, const char **argv,
                                         const size_t *lens, redisReply **out, char *err,
                                         size_t errlen)
{
    *out = NULL;
    bool reused = r->ctx != NULL;
    enum redis_status st = redis_connect(r, err, errlen);
    if (st != REDIS_ST_OK)
        return st;
    st = redis_send(r, argc, argv, lens, out, err, errlen);
    if (st != REDIS_ST_DOWN || !reused)
        return st;
    if (redis_connect(r, err, errlen) != REDIS_ST_OK)
        return REDIS_ST_DOWN;
    return redis_send(r, argc, argv, lens, out, err, errlen);
}

enum redis_status redis_command(struct redis *r, const struct redis_args *a, redisReply **out,
                                char *err, size_t errlen)
{
    pthread_mutex_lock(&r->mu);
    enum redis_status st = redis_roundtrip(r, a->argc, a->argv, a->lens, out, err, errlen);
    pthread_mutex_unlock(&r->mu);
    return st;
}

/* The slot remembering script's SHA-1; NULL when the table is full. */
static struct redis_script_slot *redis_slot(struct redis *r, const char *script)
{
    for (size_t i = 0; i < r->n_scripts; i++)
        if (r->scripts[i].source == script)
            return &r->scripts[i];
    if (r->n_scripts == REDIS_SCRIPTS_MAX)
        return NULL;
    struct redis_script_slot *s = &r->scripts[r->n_scripts++];
    s->source = script;
    s->sha[0] = '\0';
    return s;
}

/* SCRIPT LOAD (locked): the server answers with the SHA-1 to call. */
static enum redis_status redis_load(struct redis *r, struct redis_script_slot *s, char *err,
                                    size_t errlen)
{
    const char *argv[3] = {"SCRIPT", "LOAD", s->source};
    redisReply *rep = NULL;
    enum redis_status st = redis_roundtrip(r, 3, argv, NULL, &rep, err, errlen);
    if (st != REDIS_ST_OK)
        return st;
    if (rep->type != REDIS_REPLY_STRING || rep->len != REDIS_SHA_LEN) {
        snprintf(err, errlen, "Redis at %s answered SCRIPT LOAD with no SHA-1", r->where);
        st = REDIS_ST_FAILED;
    } else {
        memcpy(s->sha, rep->str, REDIS_SHA_LEN);
        s->sha[REDIS_SHA_LEN] = '\0';
    }
    freeReplyObject(rep);
    return st;
}

enum redis_status redis_eval(struct redis *r, const char *script, int nkeys,
                             const struct redis_args *a, redisReply **out, char *err, size_t errlen)
{
    *out = NULL;
    int argc = a->argc + 3;
    const char *stack_argv[REDIS_ARGV_STACK];
    size_t stack_lens[REDIS_ARGV_STACK];
    const char **argv = argc <= REDIS_ARGV_STACK ? stack_argv : xcalloc((size_t)argc, sizeof *argv);
    size_t *lens = argc <= REDIS_ARGV_STACK ? stack_lens : xcalloc((size_t)argc, sizeof *lens);
    char nk[16];
    snprintf(nk, sizeof nk, "%d", nkeys);
    for (int i = 0; i < a->argc; i++) {
        argv[i + 3] = a->argv[i];
        lens[i + 3] = a->lens != NULL ? a->lens[i] : strlen(a->argv[i]);
    }
    argv[0] = "EVALSHA";
    lens[0] = 7;
    argv[2] = nk;
    lens[2] = strlen(nk);

    pthread_mutex_lock(&r->mu);
    enum redis_status st = REDIS_ST_FAILED;
    struct redis_script_slot *s = redis_slot(r, script);
    if (s == NULL) {
        snprintf(err, errlen, "internal: more than %d Redis scripts", REDIS_SCRIPTS_MAX);
        goto out;
    }
    /* Twice at most: the second pass follows a NOSCRIPT (the server
     * restarted or flushed its scripts since the SHA-1 was learned). */
    for (int pass = 0; pass < 2; pass++) {
        if (s->sha[0] == '\0' && (st = redis_load(r, s, err, errlen)) != REDIS_ST_OK)
            break;
        argv[1] = s->sha;
        lens[1] = REDIS_SHA_LEN;
        st = redis_roundtrip(r, argc, argv, lens, out, err, errlen);
        if (st != REDIS_ST_FAILED || strstr(err, "NOSCRIPT") == NULL)
            break;
        s->sha[0] = '\0';
    }
out:
    pthread_mutex_unlock(&r->mu);
    if (argv != stack_argv) {
        xfree(argv);
        xfree(lens);
    }
    return st;
}

enum redis_status redis_ping(struct redis *r, char *version, size_t vlen, double *rtt_ms, char *err,
                             size_t errlen)
{
    const char *ping[1] = {"PING"};
    const char *info[2] = {"INFO", "server"};
    redisReply *rep = NULL;
    version[0] = '\0';
    *rtt_ms = 0;
    pthread_mutex_lock(&r->mu);
    enum redis_status st = redis_connect(r, err, errlen);
    int64_t t0 = clock_mono_ns();
    if (st == REDIS_ST_OK)
        st = redis_roundtrip(r, 1, ping, NULL, &rep, err, errlen);
    *rtt_ms = (double)(clock_mono_ns() - t0) / 1e6;
    freeReplyObject(rep);
    rep = NULL;
    if (st == REDIS_ST_OK)
        st = redis_roundtrip(r, 2, info, NULL, &rep, err, errlen);
    pthread_mutex_unlock(&r->mu);
    if (st != REDIS_ST_OK)
        return st;
    const char *v = rep->type == REDIS_REPLY_STRING ? strstr(rep->str, "redis_version:") : NULL;
    if (v != NULL) {
        v += strlen("redis_version:");
        size_t n = strcspn(v, "\r\n");
        snprintf(version, vlen, "%.*s", (int)n, v);
    }
    freeReplyObject(rep);
    return REDIS_ST_OK;
}
