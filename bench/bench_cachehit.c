/*
 * bench_cachehit: the time of a whole turn answered from the response cache,
 * inside the process: client_turn_run() from turn.start to turn.done
 * (rollout, inject, minify, the cache key and lookup, the replayed deltas,
 * usage, cost, every event built and handed to a sink), on the offline
 * provider with CACHE_POLICY=always. Measured twice: without the data file
 * (the pipeline alone) and with it (the turn's metrics and ledger rows, one
 * durable commit). Prints a Markdown table for docs/benchmarks.md.
 */
#include "config.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/cache.h"
#include "client/turn.h"
#include "config/config.h"
#include "engine/engine_internal.h"
#include "llm/prices.h"
#include "llm/provider.h"
#include "memchat/engine.h"
#include "store/db.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/uuid.h"

#define TURNS    20000
#define DB_TURNS 300

static void sink(void *ud, struct mc_event *ev, int64_t *seq)
{
    (void)ud;
    if (seq != NULL)
        (*seq)++;
    mc_event_free(ev);
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

/* Runs n hit turns; per-turn ns into out (sorted). */
static void run(struct turn_env *env, int n, long long *out)
{
    for (int i = -1; i < n; i++) { /* turn -1 fills the cache */
        char turn[UUID_STRLEN + 1];
        uuid7_new(turn);
        int64_t seq = 0;
        struct emit em = {.turn = turn, .seq = &seq, .sink = sink, .sink_ud = NULL};
        struct turn_input in = {.turn = turn,
                                .tenant = "bench",
                                .user = "u",
                                .agent = "assistant",
                                .text = "What is the capital of France? Answer in one word.",
                                .memory = MC_MEMORY_OFF};
        struct turn_outcome o;
        int64_t t0 = clock_mono_ns();
        client_turn_run(env, &in, &em, &o);
        int64_t dt = clock_mono_ns() - t0;
        if (i >= 0) {
            if (!o.cache_hit) {
                fprintf(stderr, "bench_cachehit: turn %d was not a cache hit\n", i);
                exit(1);
            }
            out[i] = dt;
        }
    }
    qsort(out, (size_t)n, sizeof *out, cmp_ll);
}

static void row(const char *what, const long long *v, int n)
{
    printf("| %s | %d | %.1f | %.1f | %.1f |\n", what, n, (double)v[n / 2] / 1e3,
           (double)v[(int)(n * 0.99)] / 1e3, (double)v[n - 1] / 1e3);
}

int main(void)
{
    if (mc_global_init() != 0)
        return 1;
    char dir[] = "/tmp/memchat-bench-XXXXXX";
    if (mkdtemp(dir) == NULL)
        return 1;
    char data[256], conf[256];
    snprintf(data, sizeof data, "MEMCHAT_DATA_DIR=%s", dir);
    snprintf(conf, sizeof conf, "MEMCHAT_CONFIG_DIR=%s", dir);
    const char *flags[] = {data, conf, "CACHE_POLICY=always", "RAG_ENABLED=false"};
    const char *env_vars[] = {"LOGNAME=bench", NULL};
    struct config *cfg = config_new_memchat();
    struct config_load_opts lo = {
        .dotenv_path = "", .environ = env_vars, .flags = flags, .n_flags = 4};
    char err[512];
    if (config_load(cfg, &lo, err, sizeof err) != 0) {
        fprintf(stderr, "bench_cachehit: %s\n", err);
        return 1;
    }
    char shipped[4096];
    struct prices *prices = NULL;
    if (prices_shipped_path("", shipped, sizeof shipped) != 0 ||
        prices_load(&prices, shipped, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "bench_cachehit: %s\n", err);
        return 1;
    }
    struct llm_provider *p = llm_offline_new();
    struct cache *cache = cache_new(64u << 20, 0);
    atomic_bool cancel;
    atomic_init(&cancel, false);
    struct turn_env env = {.cfg = cfg,
                           .provider = p,
                           .model = "offline",
                           .cancel = &cancel,
                           .prices = prices,
                           .cache = cache,
                           .cache_policy = CACHE_POLICY_ALWAYS};
    static long long mem[TURNS], withdb[DB_TURNS];
    run(&env, TURNS, mem);

    char path[300];
    snprintf(path, sizeof path, "%s/memchat.db", dir);
    enum db_error why;
    env.db = db_open(path, &why, err, sizeof err);
    if (env.db == NULL) {
        fprintf(stderr, "bench_cachehit: %s\n", err);
        return 1;
    }
    run(&env, DB_TURNS, withdb);
    db_close(env.db);

    printf("| cache-hit turn (µs) | turns | p50 | p99 | max |\n|---|---|---|---|---|\n");
    row("pipeline in memory (no data file)", mem, TURNS);
    row("with its metrics and ledger rows (one durable commit)", withdb, DB_TURNS);
    cache_free(cache);
    llm_provider_free(p);
    prices_free(prices);
    config_free(cfg);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : 1;
}
