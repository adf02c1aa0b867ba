/*
 * One connection to the Redis server that many memchat processes share
 * their rate limits, budgets and response cache through (REDIS_URL, issue
 * 12), over hiredis. The connection is made lazily at the first command,
 * authenticated (AUTH, with a user when the URL names one) and moved to the
 * URL's database; every command has REDIS_TIMEOUT to answer. When the
 * server cannot be reached or the connection breaks, the command fails with
 * REDIS_ST_DOWN and the connection is dropped; the next command reconnects,
 * but not sooner than retry_ms after the last failed attempt, so a dead
 * server costs one timeout per retry_ms, not one per turn.
 *
 * Scripts are sent by their SHA-1 (EVALSHA) and loaded on the server when it
 * does not know them (after a restart or SCRIPT FLUSH), so a script's text
 * crosses the network once per connection at most.
 *
 * Messages name the server as redis_where() does, host:port/db or the
 * socket's path: never the user name or password of the URL.
 *
 * Thread-safe: one mutex serialises the commands of a connection.
 */
#ifndef MEMCHAT_NET_REDIS_H
#define MEMCHAT_NET_REDIS_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

/* Longest host, socket path, user and password accepted in REDIS_URL. */
#define REDIS_HOST_MAX     255
#define REDIS_PATH_MAX     107 /* sun_path */
#define REDIS_USER_MAX     255
#define REDIS_PASSWORD_MAX 511
/* Longest key prefix (REDIS_KEY_PREFIX). */
#define REDIS_PREFIX_MAX 64
/* Default wait before a new connection attempt after a failed one. */
#define REDIS_RETRY_MS_DEFAULT 1000

/* What REDIS_URL says: redis://[[user]:password@]host[:port][/db], or a
 * Unix socket as unix:///path[?db=N] or a plain absolute path. */
struct redis_target {
    char host[REDIS_HOST_MAX + 1]; /* "" for a socket */
    int port;                      /* 6379 unless given */
    char path[REDIS_PATH_MAX + 1]; /* the socket, "" for TCP */
    char user[REDIS_USER_MAX + 1]; /* "" for none (AUTH password alone) */
    char password[REDIS_PASSWORD_MAX + 1];
    bool has_password;
    int db; /* 0..INT_MAX; SELECT when not 0 */
};

struct redis_config {
    const char *url;      /* REDIS_URL */
    long long timeout_ms; /* connect and each command; > 0 */
    long long retry_ms;   /* between failed connection attempts; < 0: the default */
    const char *prefix;   /* REDIS_KEY_PREFIX, put before every key memchat uses */
};

enum redis_status {
    REDIS_ST_OK = 0,
    REDIS_ST_DOWN = -1,   /* unreachable, timed out, or the connection broke */
    REDIS_ST_FAILED = -2, /* the server answered with an error (refused password, OOM, ...) */
};

/* A server's command, lent by the caller: argc strings of lens[i] bytes
 * (lens NULL: NUL-terminated). */
struct redis_args {
    int argc;
    const char **argv;
    const size_t *lens;
};

struct redis;

/* Parses url into *t; 0, or -1 with a message naming what is wrong (the
 * message quotes no password). */
int redis_url_parse(const char *url, struct redis_target *t, char *err, size_t errlen);

/* A connection to c->url, not yet made; NULL with a message when the URL
 * or the prefix is malformed. Free with redis_free(). */
struct redis *redis_new(const struct redis_config *c, char *err, size_t errlen);
/* Closes the connection and wipes the password; NULL is a no-op. */
void redis_free(struct redis *r);

/* "127.0.0.1:6379/0" or "/run/redis.sock/0": the server for messages. */
const char *redis_where(const struct redis *r);
/* The key prefix, as configured ("memchat:" by default). */
const char *redis_prefix(const struct redis *r);
/* Whether the last command reached the server (false before the first);
 * never blocks, so a caller that must not wait can check it first. */
bool redis_is_up(struct redis *r);

/* Sends one command; on REDIS_ST_OK *out is the reply (an error reply is
 * REDIS_ST_FAILED instead, with its text in err) to free with
 * freeReplyObject(). On failure *out is NULL and err names the server and
 * what happened. */
enum redis_status redis_command(struct redis *r, const struct redis_args *a, redisReply **out,
                                char *err, size_t errlen);
/* Runs a Lua script (EVALSHA, loading it when the server lacks it) with
 * nkeys of a's strings as KEYS and the rest as ARGV; as redis_command().
 * script must stay valid and unchanged for r's lifetime (a string
 * literal). */
enum redis_status redis_eval(struct redis *r, const char *script, int nkeys,
                             const struct redis_args *a, redisReply **out, char *err,
                             size_t errlen);
/* PING and the server's version into version (e.g. "7.0.15") and the
 * round trip in *rtt_ms; for `memchat doctor`. */
enum redis_status redis_ping(struct redis *r, char *version, size_t vlen, double *rtt_ms, char *err,
                             size_t errlen);

#endif
