/*
 * bench_redis: what the shared backends of issue 12 cost a turn, against a
 * real redis-server on loopback that this program starts and stops itself
 * (Debian's package; its own port, no persistence).
 *
 *   1. In the process (libmemchat.a): the limiter's work for one turn,
 *      ratelimit_acquire() + ratelimit_reconcile(), on a limiter whose
 *      buckets live on Redis against the same on one that keeps them in
 *      memory; the budget's, budget_reserve() + budget_settle(), with no
 *      budget set (the default: on Redis it still reads the overrides) and
 *      with a tenant budget; the cache's, cache_lookup() (a hit) and
 *      cache_lookup() + cache_store() (a miss), on Redis against the
 *      in-process table; and a whole miss turn's work with the defaults,
 *      all six calls in the order a turn makes them. Both sides run in
 *      alternating blocks, so drift hits them alike. The added latency at
 *      a percentile is the Redis side's minus the memory side's. Goal: the
 *      added p50 of a turn under 0.3 ms.
 *   2. Across processes: 8 concurrent `memchat chat --plain` processes
 *      (one machine's data directory each), each fed M turns (a new
 *      conversation before each, so every request is the same size),
 *      against the loopback test server (tests/server/mockllm): turns per
 *      second with the rate limits in memory and on Redis, and with every
 *      turn also missing and storing in the cache (CACHE_POLICY=always), in
 *      memory and on Redis. Rounds alternate the configurations; the median
 *      round is printed.
 *
 * Prints Markdown tables for docs/benchmarks.md. Exit 0 whether or not the
 * goal is met (it is a measurement), 1 when the harness fails (a server
 * that does not start, a turn that does not answer).
 * Usage: bench_redis MEMCHAT MOCKLLM
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "client/budget.h"
#include "client/cache.h"
#include "client/ratelimit.h"
#include "memchat/engine.h"
#include "net/redis.h"
#include "util/clock.h"

/* In-process samples per side and row, measured in blocks of BLOCK that
 * alternate the sides, after WARMUP unmeasured calls per side. */
#define SAMPLES 20000
#define BLOCK   500
#define WARMUP  1000
/* Tenants the in-process calls cycle through. */
#define TENANTS 64
/* The process part: processes, turns each, rounds per configuration. */
#define PROCS  8
#define TURNS  250
#define ROUNDS 5
/* Longest wait for a server to answer or a batch of processes to end. */
#define GUARD_MS 60000

/* One piece of the cached reply: 40 of them make a 360-byte reply. */
static const char bench_reply_piece[] = "lorem ips";

/* ---- the Redis server -------------------------------------------------- */

struct server {
    pid_t pid;
    int port;
    char url[64];
};

static long long now_ms(void)
{
    return (long long)clock_mono_ms();
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        perror("bench_redis: a free port");
        exit(1);
    }
    close(fd);
    return ntohs(a.sin_port);
}

static bool pings(int port)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    bool ok = false;
    if (c != NULL && c->err == 0) {
        redisReply *r = redisCommand(c, "PING");
        ok = r != NULL && r->type == REDIS_REPLY_STATUS;
        if (r != NULL)
            freeReplyObject(r);
    }
    if (c != NULL)
        redisFree(c);
    return ok;
}

/* What INFO commandstats says of the scripts (EVALSHA) the server at
 * port ran since its start or the last reset: how many (-1 when it cannot
 * say) and the server's time per call in µs. reset: then reset them. */
static long long scripts_run(int port, double *usec_per_call, bool reset)
{
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    long long n = -1;
    *usec_per_call = 0;
    if (c != NULL && c->err == 0) {
        redisReply *r = redisCommand(c, "INFO commandstats");
        /* A bulk string (RESP2, which hiredis speaks unless told otherwise). */
        const char *at = r != NULL && r->type == REDIS_REPLY_STRING ? r->str : NULL;
        at = at != NULL ? strstr(at, "cmdstat_evalsha:calls=") : NULL;
        if (at != NULL) {
            n = strtoll(at + strlen("cmdstat_evalsha:calls="), NULL, 10);
            const char *u = strstr(at, "usec_per_call=");
            if (u != NULL)
                *usec_per_call = strtod(u + strlen("usec_per_call="), NULL);
        }
        if (r != NULL)
            freeReplyObject(r);
        if (reset && (r = redisCommand(c, "CONFIG RESETSTAT")) != NULL)
            freeReplyObject(r);
    }
    if (c != NULL)
        redisFree(c);
    return n;
}

/* Starts redis-server on a free loopback port; it dies with this program
 * (PR_SET_PDEATHSIG), so a crashed bench leaves no server behind. */
static bool server_try(struct server *s, int port)
{
    char portarg[16];
    snprintf(portarg, sizeof portarg, "%d", port);
    pid_t parent = getpid();
    s->pid = fork();
    if (s->pid < 0)
        return false;
    if (s->pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent || devnull < 0)
            _exit(127);
        dup2(devnull, 0);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execlp("redis-server", "redis-server", "--bind", "127.0.0.1", "--port", portarg, "--save",
               "", "--appendonly", "no", "--daemonize", "no", (char *)NULL);
        _exit(127);
    }
    long long deadline = now_ms() + GUARD_MS;
    while (now_ms() < deadline) {
        if (pings(port)) {
            s->port = port;
            snprintf(s->url, sizeof s->url, "redis://127.0.0.1:%d/0", port);
            return true;
        }
        if (waitpid(s->pid, NULL, WNOHANG) == s->pid)
            return false; /* the port was taken meanwhile */
        poll(NULL, 0, 20);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    return false;
}

static void server_start(struct server *s)
{
    for (int i = 0; i < 8; i++)
        if (server_try(s, free_port()))
            return;
    fprintf(stderr, "bench_redis: redis-server did not start (apt-get install redis-server)\n");
    exit(1);
}

static void server_stop(struct server *s)
{
    kill(s->pid, SIGTERM);
    waitpid(s->pid, NULL, 0);
}

/* ---- statistics -------------------------------------------------------- */

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

/* The p-th percentile of v (n sorted values), in µs. */
static double pct_us(const long long *v, int n, double p)
{
    int i = (int)(p / 100.0 * (n - 1) + 0.5);
    return (double)v[i] / 1e3;
}

/* One row: each side's p50/p90/p99 and the added latency at each;
 * returns the added p50 in µs. Sorts both. */
static double row(const char *what, long long *mem, long long *red, int n)
{
    qsort(mem, (size_t)n, sizeof *mem, cmp_ll);
    qsort(red, (size_t)n, sizeof *red, cmp_ll);
    static const double ps[] = {50, 90, 99};
    printf("| %s |", what);
    for (int i = 0; i < 3; i++)
        printf(" %.1f / %.1f |", pct_us(mem, n, ps[i]), pct_us(red, n, ps[i]));
    for (int i = 0; i < 3; i++)
        printf(" %.1f |", pct_us(red, n, ps[i]) - pct_us(mem, n, ps[i]));
    putchar('\n');
    return pct_us(red, n, 50) - pct_us(mem, n, 50);
}

/* ---- part 1: in the process -------------------------------------------- */

/* One side of the in-process measurement: a limiter and a cache, both on
 * Redis or both in memory. */
struct side {
    struct ratelimit *rl;
    struct budget *none;   /* no budget configured, the default */
    struct budget *tenant; /* TENANT_BUDGET_USD set (high enough never to refuse) */
    struct cache *cache;
    struct redis *redis; /* NULL on the memory side */
    int next_key;        /* the next never-stored request, for misses */
};

static const char *const tenant_names[TENANTS] = {
    "t00", "t01", "t02", "t03", "t04", "t05", "t06", "t07", "t08", "t09", "t10", "t11", "t12",
    "t13", "t14", "t15", "t16", "t17", "t18", "t19", "t20", "t21", "t22", "t23", "t24", "t25",
    "t26", "t27", "t28", "t29", "t30", "t31", "t32", "t33", "t34", "t35", "t36", "t37", "t38",
    "t39", "t40", "t41", "t42", "t43", "t44", "t45", "t46", "t47", "t48", "t49", "t50", "t51",
    "t52", "t53", "t54", "t55", "t56", "t57", "t58", "t59", "t60", "t61", "t62", "t63"};

static void side_new(struct side *s, struct redis *r)
{
    struct ratelimit_limits lim;
    ratelimit_limits_init(&lim);
    /* Limits that never refuse, so every call takes its tokens and
     * reconciles: the common path. */
    lim.value[RATELIMIT_TENANT][RATELIMIT_REQUESTS] = RATELIMIT_MAX_VALUE;
    lim.value[RATELIMIT_TENANT][RATELIMIT_TOKENS] = RATELIMIT_MAX_VALUE;
    lim.value[RATELIMIT_USER][RATELIMIT_REQUESTS] = RATELIMIT_MAX_VALUE;
    lim.window_ms = 60000;
    char err[256];
    s->rl = ratelimit_new(&lim, err, sizeof err);
    if (s->rl == NULL) {
        fprintf(stderr, "bench_redis: %s\n", err);
        exit(1);
    }
    struct budget_limits bl;
    budget_limits_init(&bl);
    s->none = budget_new(&bl, err, sizeof err);
    bl.usd[BUDGET_TENANT] = 1e6;
    s->tenant = s->none != NULL ? budget_new(&bl, err, sizeof err) : NULL;
    if (s->tenant == NULL) {
        fprintf(stderr, "bench_redis: %s\n", err);
        exit(1);
    }
    s->cache = cache_new(64u << 20, 3600000);
    s->redis = r;
    if (r != NULL) {
        ratelimit_use_redis(s->rl, r, false, true); /* as the program: the server's clock */
        budget_use_redis(s->none, r, false);
        budget_use_redis(s->tenant, r, false);
        cache_use_redis(s->cache, r);
    }
    s->next_key = 0;
}

static void side_free(struct side *s)
{
    ratelimit_free(s->rl);
    budget_free(s->none);
    budget_free(s->tenant);
    cache_free(s->cache);
}

/* The key of request i of tenant t (i < 0: the one hit over and over). */
static void request_key(int t, int i, uint8_t key[CACHE_KEY_BYTES])
{
    char canonical[128];
    int n =
        snprintf(canonical, sizeof canonical,
                 "{\"model\":\"mock\",\"messages\":[{\"role\":\"user\",\"content\":\"q%d\"}]}", i);
    cache_key(tenant_names[t], "openai", "mock", canonical, (size_t)n, key);
}

/* The limiter's share of a turn. */
static void op_limit(struct side *s, int t)
{
    struct ratelimit_decision d;
    if (ratelimit_acquire(s->rl, tenant_names[t], "u", 500, clock_mono_ms(), &d) != RATELIMIT_OK ||
        d.fell_back) {
        fprintf(stderr, "bench_redis: acquire: %s%s\n", d.reason, d.fallback_reason);
        exit(1);
    }
    ratelimit_reconcile(s->rl, d.shared, tenant_names[t], "u", 500, 213, clock_mono_ms());
}

/* The round trip alone: a PING on the connection the others use (nothing
 * on the memory side). */
static void op_ping(struct side *s, int t)
{
    (void)t;
    if (s->redis == NULL)
        return;
    static const char *argv[] = {"PING"};
    struct redis_args a = {1, argv, NULL};
    redisReply *rep = NULL;
    char err[256];
    if (redis_command(s->redis, &a, &rep, err, sizeof err) != REDIS_ST_OK) {
        fprintf(stderr, "bench_redis: PING: %s\n", err);
        exit(1);
    }
    freeReplyObject(rep);
}

/* A budget's share of a turn: the reservation before the call and its
 * settlement after. */
static void budget_pair(struct budget *b, int t)
{
    struct budget_reservation res;
    struct budget_decision d;
    if (budget_reserve(b, tenant_names[t], "u", "mock", 0.0004, clock_wall_ms(), &res, &d) !=
            BUDGET_OK ||
        d.fell_back) {
        fprintf(stderr, "bench_redis: budget: %s%s\n", d.message, d.fallback_reason);
        exit(1);
    }
    budget_settle(b, &res, 0.0001, clock_wall_ms(), NULL);
}

static void op_budget_none(struct side *s, int t)
{
    budget_pair(s->none, t);
}

static void op_budget_tenant(struct side *s, int t)
{
    budget_pair(s->tenant, t);
}

/* A reply as the offline provider's: 40 pieces. */
static void reply(char *text, size_t *lens, size_t *len)
{
    size_t off = 0, k = strlen(bench_reply_piece);
    for (int i = 0; i < 40; i++) {
        memcpy(text + off, bench_reply_piece, k);
        lens[i] = k;
        off += k;
    }
    text[off] = '\0';
    *len = off;
}

static bool lookup(struct side *s, int t, const uint8_t key[CACHE_KEY_BYTES])
{
    struct cache_owner o = {tenant_names[t], "u"};
    struct cache_view v;
    struct cache_fallback fb = {0};
    bool hit = cache_lookup(s->cache, &o, key, clock_mono_ms(), &v, &fb);
    if (fb.fell_back) {
        fprintf(stderr, "bench_redis: lookup fell back: %s\n", fb.reason);
        exit(1);
    }
    if (hit)
        cache_view_release(&v);
    return hit;
}

static void store(struct side *s, int t, const uint8_t key[CACHE_KEY_BYTES])
{
    char text[512];
    size_t lens[40], len;
    reply(text, lens, &len);
    struct cache_owner o = {tenant_names[t], "u"};
    struct cache_meta m = {.model = "mock", .finish_reason = "stop", .usage = {173, 40, 0, false}};
    struct cache_fallback fb = {0};
    if (cache_store(s->cache, &o, key, text, len, lens, 40, &m, clock_mono_ms(), &fb) !=
            CACHE_PUT_STORED ||
        fb.fell_back) {
        fprintf(stderr, "bench_redis: store failed %s\n", fb.reason);
        exit(1);
    }
}

/* A hit: the request every tenant stored once before the clock started. */
static void op_hit(struct side *s, int t)
{
    uint8_t key[CACHE_KEY_BYTES];
    request_key(t, -1, key);
    if (!lookup(s, t, key)) {
        fprintf(stderr, "bench_redis: the stored reply of tenant %d missed\n", t);
        exit(1);
    }
}

/* A miss: a request never asked, looked up and then stored. */
static void op_miss(struct side *s, int t)
{
    uint8_t key[CACHE_KEY_BYTES];
    request_key(t, s->next_key++, key);
    if (lookup(s, t, key)) {
        fprintf(stderr, "bench_redis: a new request hit\n");
        exit(1);
    }
    store(s, t, key);
}

/* A whole miss turn with the defaults (no budget configured), in the
 * pipeline's order: the cache's lookup (stage 5), the budget's reserve and
 * the limiter's acquire (stage 6), then after the call the store, the
 * reconcile and the budget's settlement. */
static void op_turn(struct side *s, int t)
{
    uint8_t key[CACHE_KEY_BYTES];
    request_key(t, s->next_key++, key);
    if (lookup(s, t, key)) {
        fprintf(stderr, "bench_redis: a new request hit\n");
        exit(1);
    }
    struct budget_reservation res;
    struct budget_decision bd;
    if (budget_reserve(s->none, tenant_names[t], "u", "mock", 0.0004, clock_wall_ms(), &res, &bd) !=
            BUDGET_OK ||
        bd.fell_back) {
        fprintf(stderr, "bench_redis: budget: %s%s\n", bd.message, bd.fallback_reason);
        exit(1);
    }
    struct ratelimit_decision d;
    if (ratelimit_acquire(s->rl, tenant_names[t], "u", 500, clock_mono_ms(), &d) != RATELIMIT_OK ||
        d.fell_back) {
        fprintf(stderr, "bench_redis: acquire: %s%s\n", d.reason, d.fallback_reason);
        exit(1);
    }
    store(s, t, key);
    ratelimit_reconcile(s->rl, d.shared, tenant_names[t], "u", 500, 213, clock_mono_ms());
    budget_settle(s->none, &res, 0.0001, clock_wall_ms(), NULL);
}

/* The rows of the in-process table, measured in PASSES interleaved passes
 * (each row SAMPLES / PASSES calls a pass), so a change of the machine's
 * load during the run hits every row alike. */
struct probe {
    const char *name;
    void (*op)(struct side *, int);
};

static const struct probe probes[] = {
    {"one round trip: PING (for reference)", op_ping},
    {"limiter: acquire + reconcile", op_limit},
    {"budget, none configured: reserve + settle", op_budget_none},
    {"budget, TENANT_BUDGET_USD set: reserve + settle", op_budget_tenant},
    {"cache hit: lookup", op_hit},
    {"cache miss: lookup + store", op_miss},
    {"a miss turn, no budget set: lookup, reserve, acquire, store, reconcile, settle", op_turn},
};
#define N_PROBES (sizeof probes / sizeof probes[0])
#define PASSES   4
#define P_LIMIT  1 /* the rows the goal line quotes */
#define P_HIT    4
#define P_MISS   5
#define P_TURN   6

/* Times calls [from, to) of op on each side in alternating blocks of
 * BLOCK; ns into tm[] and tr[]. */
static void measure(void (*op)(struct side *, int), struct side *mem, struct side *red,
                    long long *tm, long long *tr, int from, int to)
{
    for (int b = from; b < to; b += BLOCK) {
        for (int k = 0; k < 2; k++) {
            struct side *s = (b / BLOCK + k) % 2 == 0 ? mem : red;
            long long *out = s == mem ? tm : tr;
            for (int i = b; i < b + BLOCK && i < to; i++) {
                int64_t t0 = clock_mono_ns();
                op(s, i % TENANTS);
                out[i] = clock_mono_ns() - t0;
            }
        }
    }
}

static void in_process(const struct server *srv)
{
    char err[256];
    struct redis_config rc = {
        .url = srv->url, .timeout_ms = 500, .retry_ms = 1000, .prefix = "bench:"};
    struct redis *r = redis_new(&rc, err, sizeof err);
    if (r == NULL) {
        fprintf(stderr, "bench_redis: %s\n", err);
        exit(1);
    }
    struct side mem, red;
    side_new(&mem, NULL);
    side_new(&red, r);
    for (int t = 0; t < TENANTS; t++) {
        uint8_t key[CACHE_KEY_BYTES];
        request_key(t, -1, key);
        store(&mem, t, key);
        store(&red, t, key);
    }
    for (size_t p = 0; p < N_PROBES; p++)
        for (int i = 0; i < WARMUP; i++) {
            probes[p].op(&mem, i % TENANTS);
            probes[p].op(&red, i % TENANTS);
        }
    static long long tm[N_PROBES][SAMPLES], tr[N_PROBES][SAMPLES];
    for (int pass = 0; pass < PASSES; pass++)
        for (size_t p = 0; p < N_PROBES; p++)
            measure(probes[p].op, &mem, &red, tm[p], tr[p], pass * SAMPLES / PASSES,
                    (pass + 1) * SAMPLES / PASSES);
    printf("| per turn (µs), %d calls each | p50 memory / Redis | p90 memory / Redis | p99 memory "
           "/ Redis | added p50 | added p90 | added p99 |\n|---|---|---|---|---|---|---|\n",
           SAMPLES);
    double added50[N_PROBES];
    for (size_t p = 0; p < N_PROBES; p++)
        added50[p] = row(probes[p].name, tm[p], tr[p], SAMPLES);
    printf("\ngoal (added p50 per turn < 300 µs): limiter %.1f µs %s; cache hit %.1f µs %s; "
           "a whole miss turn (limiter, budget check, cache) %.1f µs %s (cache miss alone "
           "%.1f µs)\n",
           added50[P_LIMIT], added50[P_LIMIT] < 300 ? "PASS" : "FAIL", added50[P_HIT],
           added50[P_HIT] < 300 ? "PASS" : "FAIL", added50[P_TURN],
           added50[P_TURN] < 300 ? "PASS" : "FAIL", added50[P_MISS]);
    side_free(&mem);
    side_free(&red);
    redis_free(r);
    double usec;
    long long calls = scripts_run(srv->port, &usec, false);
    printf("Redis's own time per script (INFO commandstats): %.1f µs over %lld calls\n", usec,
           calls);
}

/* ---- part 2: across processes ------------------------------------------ */

/* A configuration of the process part: extra environment entries. */
struct setup {
    const char *name;
    const char *env[4];
};

static const struct setup setups[] = {
    {"rate limits in memory", {"RATE_LIMIT_BACKEND=memory", NULL}},
    {"rate limits on Redis", {"RATE_LIMIT_BACKEND=redis", NULL}},
    {"limits and cache in memory, every turn a cache miss + store",
     {"RATE_LIMIT_BACKEND=memory", "CACHE_POLICY=always", NULL}},
    {"limits and cache on Redis, every turn a cache miss + store",
     {"RATE_LIMIT_BACKEND=redis", "CACHE_BACKEND=redis", "CACHE_POLICY=always", NULL}},
};
#define N_SETUPS (sizeof setups / sizeof setups[0])

/* Starts the loopback test server; its stdin (closing it stops the
 * server) goes to *keep. */
static pid_t mock_start(const char *bin, char *url, size_t urllen, int *keep)
{
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0)
        exit(1);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        execl(bin, bin, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    char line[64] = "";
    struct pollfd p = {.fd = out[0], .events = POLLIN};
    ssize_t n = poll(&p, 1, GUARD_MS) == 1 ? read(out[0], line, sizeof line - 1) : -1;
    if (n <= 0 || strncmp(line, "PORT=", 5) != 0) {
        fprintf(stderr, "bench_redis: the test server %s did not start\n", bin);
        exit(1);
    }
    line[n] = '\0';
    snprintf(url, urllen, "http://127.0.0.1:%ld/v1", strtol(line + 5, NULL, 10));
    close(out[0]);
    *keep = in[1];
    return pid;
}

/* What a round runs: its number (every round asks new questions) and
 * where the program and the servers are. */
struct round {
    int id;
    const char *memchat, *mock_url, *redis_url;
};

/* One chat process of a round: machine i's directories under dir, M
 * turns on its stdin (a pipe, written at once: it fits), its stdout to a
 * file read afterwards. */
static pid_t chat_spawn(const struct round *rd, const char *dir, int i, const struct setup *su)
{
    const char *memchat = rd->memchat;
    char home[512], data[600], conf[600], base[600], rurl[128], out[600];
    snprintf(home, sizeof home, "%s/m%d", dir, i);
    if (mkdir(home, 0700) != 0 && errno != EEXIST)
        exit(1);
    snprintf(data, sizeof data, "MEMCHAT_DATA_DIR=%s/data", home);
    snprintf(conf, sizeof conf, "MEMCHAT_CONFIG_DIR=%s/config", home);
    snprintf(base, sizeof base, "OPENAI_BASE_URL=%s", rd->mock_url);
    snprintf(rurl, sizeof rurl, "REDIS_URL=%s", rd->redis_url);
    snprintf(out, sizeof out, "%s/out", home);
    char homev[600];
    snprintf(homev, sizeof homev, "HOME=%s", home);
    char *envp[24];
    int n = 0;
    envp[n++] = homev;
    envp[n++] = data;
    envp[n++] = conf;
    envp[n++] = base;
    envp[n++] = rurl;
    envp[n++] = (char *)(uintptr_t) "OPENAI_API_KEY=sk-bench";
    envp[n++] = (char *)(uintptr_t) "LOGNAME=bench";
    envp[n++] = (char *)(uintptr_t) "PATH=/usr/bin:/bin";
    envp[n++] = (char *)(uintptr_t) "MEMCHAT_TENANT=bench";
    envp[n++] = (char *)(uintptr_t) "TENANT_RATE_LIMIT_RPM=1000000000";
    envp[n++] = (char *)(uintptr_t) "TENANT_RATE_LIMIT_TPM=1000000000";
    envp[n++] = (char *)(uintptr_t) "RATE_LIMIT_WINDOW_S=60";
    envp[n++] = (char *)(uintptr_t) "MEMCHAT_MAX_RETRIES=0";
    for (int k = 0; su->env[k] != NULL; k++)
        envp[n++] = (char *)(uintptr_t)su->env[k];
    envp[n] = NULL;
    char *argv[] = {(char *)(uintptr_t)memchat,
                    (char *)(uintptr_t) "chat",
                    (char *)(uintptr_t) "--plain",
                    (char *)(uintptr_t) "--provider",
                    (char *)(uintptr_t) "openai",
                    (char *)(uintptr_t) "--model",
                    (char *)(uintptr_t) "mock",
                    (char *)(uintptr_t) "--no-memory",
                    NULL};
    int in[2];
    if (pipe2(in, O_CLOEXEC) != 0)
        exit(1);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0 || dup2(in[0], 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
            _exit(127);
        execve(memchat, argv, envp);
        _exit(127);
    }
    close(in[0]);
    /* Questions never asked before in any round or process, so the cached
     * setups miss at every turn. */
    static char input[TURNS * 48];
    size_t len = 0;
    for (int t = 0; t < TURNS; t++)
        len +=
            (size_t)snprintf(input + len, sizeof input - len, "/new\nq %d %d %d\n", rd->id, i, t);
    if (write(in[1], input, len) != (ssize_t)len) {
        perror("bench_redis: chat input");
        exit(1);
    }
    close(in[1]);
    return pid;
}

/* How many replies machine i's chat printed. */
static int replies(const char *dir, int i)
{
    char path[600];
    snprintf(path, sizeof path, "%s/m%d/out", dir, i);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f) != NULL)
        n += strncmp(line, "mock reply: q ", 14) == 0;
    fclose(f);
    return n;
}

/* One round of a setup: PROCS chats of TURNS turns, concurrently; turns
 * per second from the first spawn to the last exit. */
static double round_once(const struct round *rd, const struct setup *su)
{
    char dir[] = "/tmp/memchat-bench-redis-XXXXXX";
    if (mkdtemp(dir) == NULL)
        exit(1);
    pid_t pids[PROCS];
    int64_t t0 = clock_mono_ns();
    for (int i = 0; i < PROCS; i++)
        pids[i] = chat_spawn(rd, dir, i, su);
    for (int i = 0; i < PROCS; i++) {
        int st;
        while (waitpid(pids[i], &st, 0) < 0 && errno == EINTR)
            ;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "bench_redis: a chat (%s) ended with status %d; see %s/m%d/out\n",
                    su->name, st, dir, i);
            exit(1);
        }
    }
    double secs = (double)(clock_mono_ns() - t0) / 1e9;
    for (int i = 0; i < PROCS; i++)
        if (replies(dir, i) != TURNS) {
            fprintf(stderr, "bench_redis: chat %d (%s) answered %d of %d turns; see %s/m%d/out\n",
                    i, su->name, replies(dir, i), TURNS, dir, i);
            exit(1);
        }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        exit(1);
    return PROCS * TURNS / secs;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void across_processes(const char *memchat, const char *mockllm, const struct server *srv)
{
    char url[96];
    int keep;
    pid_t mock = mock_start(mockllm, url, sizeof url, &keep);
    double usec;
    scripts_run(srv->port, &usec, true);
    static double tps[N_SETUPS][ROUNDS];
    for (int r = 0; r < ROUNDS; r++)
        for (size_t s = 0; s < N_SETUPS; s++) {
            struct round rd = {(int)(r * N_SETUPS + s), memchat, url, srv->url};
            tps[s][r] = round_once(&rd, &setups[s]);
        }
    close(keep);
    waitpid(mock, NULL, 0);
    /* The Redis setups must have used it, not fallen back in silence: two
     * scripts a turn at least (acquire, reconcile) in the limits-only setup,
     * four in the one with the cache. */
    long long ran = scripts_run(srv->port, &usec, false);
    if (ran < (long long)PROCS * TURNS * ROUNDS * 6) {
        fprintf(stderr, "bench_redis: the chats ran %lld scripts on Redis, want >= %lld\n", ran,
                (long long)PROCS * TURNS * ROUNDS * 6);
        exit(1);
    }
    printf("\nthe chats' scripts on Redis: %lld (%.1f a turn of the Redis setups), %.1f µs "
           "each of Redis's own time\n",
           ran, (double)ran / (2.0 * PROCS * TURNS * ROUNDS), usec);
    printf("\n| %d processes × %d turns of `memchat chat --plain` | turns/s (median of %d) | "
           "rounds | vs in memory |\n|---|---|---|---|\n",
           PROCS, TURNS, ROUNDS);
    double med[N_SETUPS];
    for (size_t s = 0; s < N_SETUPS; s++) {
        double v[ROUNDS];
        memcpy(v, tps[s], sizeof v);
        qsort(v, ROUNDS, sizeof v[0], cmp_double);
        med[s] = v[ROUNDS / 2];
        printf("| %s | %.0f | ", setups[s].name, med[s]);
        for (int r = 0; r < ROUNDS; r++)
            printf("%s%.0f", r ? ", " : "", tps[s][r]);
        /* Setups come in pairs: in memory, then the same on Redis. */
        if (s % 2 == 1)
            printf(" | %.2f× |\n", med[s] / med[s - 1]);
        else
            printf(" | 1.00× |\n");
    }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: bench_redis MEMCHAT MOCKLLM\n");
        return 1;
    }
    if (mc_global_init() != 0)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    struct server srv;
    server_start(&srv);
    printf("bench_redis: redis-server on 127.0.0.1:%d\n\n", srv.port);
    in_process(&srv);
    across_processes(argv[1], argv[2], &srv);
    server_stop(&srv);
    return 0;
}
