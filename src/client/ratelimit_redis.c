/*
 * The Redis side of the rate limiter (see ratelimit_redis.h). Three Lua
 * scripts share one prelude: the clock, reading the six capacities
 * (configured values from ARGV, overrides from the ovr: hashes) and
 * bringing a bucket up to now exactly as rl_bucket_sync() does in C.
 *
 * Redis's Lua numbers are doubles: levels in units x window are integers
 * and exact while value x window stays below 2^53 (1e6 per window over a
 * week is 6e14); beyond that they are rounded, which can shift a wait by a
 * millisecond, never admit a turn a bucket has no room for by more than
 * that rounding. Levels are written with %.0f so no digit is lost to
 * Lua's default number format.
 *
 * Every script takes the same KEYS (global, tenant and user buckets, then
 * the tenant's and the user's overrides) and starts its ARGV with the
 * window, the clock and the six configured capacities; a scope whose id is
 * absent is passed as unlimited.
 */
#include "config.h"

#include "client/ratelimit_redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/ident.h"

#define RLR_KEY_MAX (REDIS_PREFIX_MAX + 2 * IDENT_MAX + 16)
#define RLR_NUM     32

/* clock(), caps() and sync(): see the file comment. */
#define RLR_PRELUDE                                                                          \
    "local window = tonumber(ARGV[1])\n"                                                     \
    "local now\n"                                                                            \
    "if ARGV[2] ~= '' then now = tonumber(ARGV[2]) else\n"                                   \
    "  local t = redis.call('TIME')\n"                                                       \
    "  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"                    \
    "end\n"                                                                                  \
    "local cap, ovr = {}, {}\n"                                                              \
    "for s = 1, 3 do\n"                                                                      \
    "  cap[s], ovr[s] = {}, {}\n"                                                            \
    "  for k = 1, 2 do cap[s][k] = tonumber(ARGV[2 + (s - 1) * 2 + k]); ovr[s][k] = 0 end\n" \
    "end\n"                                                                                  \
    "local has = {true, ARGV[9] == '1', ARGV[10] == '1'}\n"                                  \
    "for s = 2, 3 do\n"                                                                      \
    "  if has[s] then\n"                                                                     \
    "    local o = redis.call('HMGET', KEYS[s + 2], 'rpm', 'tpm')\n"                         \
    "    for k = 1, 2 do\n"                                                                  \
    "      local v = tonumber(o[k])\n"                                                       \
    "      if v ~= nil and v >= 0 then cap[s][k] = math.floor(v); ovr[s][k] = 1 end\n"       \
    "    end\n"                                                                              \
    "  else cap[s] = {0, 0} end\n"                                                           \
    "end\n"                                                                                  \
    "local names = {'r', 't'}\n"                                                             \
    "local function sync(key, k, c)\n"                                                       \
    "  local n = names[k]\n"                                                                 \
    "  local v = redis.call('HMGET', key, n .. 'l', n .. 'c', n .. 't')\n"                   \
    "  local level, bc, last = tonumber(v[1]), tonumber(v[2]), tonumber(v[3])\n"             \
    "  local full = c * window\n"                                                            \
    "  if level == nil or bc == nil or bc <= 0 or last == nil then return full, now end\n"   \
    "  if bc ~= c then\n"                                                                    \
    "    local moved = level + (c - bc) * window\n"                                          \
    "    local floor = 0\n"                                                                  \
    "    if level < 0 then floor = level end\n"                                              \
    "    if moved < floor then level = floor else level = moved end\n"                       \
    "  end\n"                                                                                \
    "  if now > last then\n"                                                                 \
    "    if level < full then level = math.min(full, level + (now - last) * c) end\n"        \
    "    last = now\n"                                                                       \
    "  end\n"                                                                                \
    "  return level, last\n"                                                                 \
    "end\n"                                                                                  \
    "local function save(key, k, c, level, last)\n"                                          \
    "  local n = names[k]\n"                                                                 \
    "  redis.call('HSET', key, n .. 'l', string.format('%.0f', level), n .. 'c',\n"          \
    "             string.format('%.0f', c), n .. 't', string.format('%.0f', last))\n"        \
    "  local ttl = math.ceil((c * window - level) / c) + 1\n"                                \
    "  if ttl < 1 then ttl = 1 end\n"                                                        \
    "  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end\n"          \
    "end\n"

/* ARGV[11] = tokens needed. Returns {0} (taken), {1, wait, scope, kind,
 * limit, overridden} or {2, 0, scope, kind, limit, overridden} (never
 * fits); scope and kind count from 0 as the C enums do. */
static const char rlr_acquire_lua[] = RLR_PRELUDE
    "local need = tonumber(ARGV[11])\n"
    "for s = 3, 1, -1 do\n"
    "  if cap[s][2] > 0 and need > cap[s][2] then return {2, 0, s - 1, 1, cap[s][2], "
    "ovr[s][2]} end\n"
    "end\n"
    "local worst, ws, wk = 0, 0, 0\n"
    "local st = {{}, {}, {}}\n"
    "for s = 3, 1, -1 do\n"
    "  for k = 1, 2 do\n"
    "    local c = cap[s][k]\n"
    "    if c > 0 then\n"
    "      local level, last = sync(KEYS[s], k, c)\n"
    "      st[s][k] = {level, last}\n"
    "      local n = need\n"
    "      if k == 1 then n = 1 end\n"
    "      local short = n * window - level\n"
    "      if short > 0 then\n"
    "        local w = math.ceil(short / c)\n"
    "        if w > worst then worst, ws, wk = w, s, k end\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "if worst > 0 then return {1, worst, ws - 1, wk - 1, cap[ws][wk], ovr[ws][wk]} end\n"
    "for s = 1, 3 do\n"
    "  for k = 1, 2 do\n"
    "    local b = st[s][k]\n"
    "    if b ~= nil then\n"
    "      local n = need\n"
    "      if k == 1 then n = 1 end\n"
    "      save(KEYS[s], k, cap[s][k], b[1] - n * window, b[2])\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return {0}\n";

/* ARGV[11], ARGV[12] = requests and tokens to add (either sign). A debt
 * never goes below the C limiter's floor. */
static const char rlr_adjust_lua[] =
    RLR_PRELUDE "local delta = {tonumber(ARGV[11]), tonumber(ARGV[12])}\n"
                "local floor = -1e18\n"
                "for s = 1, 3 do\n"
                "  for k = 1, 2 do\n"
                "    local c = cap[s][k]\n"
                "    if c > 0 and delta[k] ~= 0 then\n"
                "      local level, last = sync(KEYS[s], k, c)\n"
                "      level = math.max(floor, math.min(c * window, level + delta[k] * window))\n"
                "      save(KEYS[s], k, c, level, last)\n"
                "    end\n"
                "  end\n"
                "end\n"
                "return 0\n";

/* Returns per scope and kind {capacity, overridden, whole units}. */
static const char rlr_snapshot_lua[] = RLR_PRELUDE "local out = {}\n"
                                                   "for s = 1, 3 do\n"
                                                   "  for k = 1, 2 do\n"
                                                   "    local c, units = cap[s][k], 0\n"
                                                   "    if c > 0 then\n"
                                                   "      local level = sync(KEYS[s], k, c)\n"
                                                   "      units = math.floor(level / window)\n"
                                                   "    end\n"
                                                   "    table.insert(out, c)\n"
                                                   "    table.insert(out, ovr[s][k])\n"
                                                   "    table.insert(out, units)\n"
                                                   "  end\n"
                                                   "end\n"
                                                   "return out\n";

/* The five keys and the common ARGV of every script. */
struct rlr_call {
    char keys[5][RLR_KEY_MAX];
    char nums[14][RLR_NUM];
    const char *argv[19];
    int argc;
};

static void rlr_key(char *out, const struct redis *r, const char *kind, const char *tenant,
                    const char *user)
{
    if (tenant == NULL)
        snprintf(out, RLR_KEY_MAX, "%s%s", redis_prefix(r), kind);
    else if (user == NULL)
        snprintf(out, RLR_KEY_MAX, "%s%s:t:%s", redis_prefix(r), kind, tenant);
    else
        snprintf(out, RLR_KEY_MAX, "%s%s:u:%s/%s", redis_prefix(r), kind, tenant, user);
}

/* Fills the keys and ARGV[1..10]; extra numbers follow with rlr_arg(). */
static void rlr_prepare(struct rlr_call *c, const struct redis *r,
                        const struct ratelimit_limits *lim, const char *tenant, const char *user,
                        int64_t now_ms)
{
    snprintf(c->keys[0], RLR_KEY_MAX, "%srl:g", redis_prefix(r));
    rlr_key(c->keys[1], r, "rl", tenant != NULL ? tenant : "-", NULL);
    rlr_key(c->keys[2], r, "rl", tenant != NULL ? tenant : "-", user != NULL ? user : "-");
    rlr_key(c->keys[3], r, "ovr", tenant != NULL ? tenant : "-", NULL);
    rlr_key(c->keys[4], r, "ovr", tenant != NULL ? tenant : "-", user != NULL ? user : "-");
    for (int i = 0; i < 5; i++)
        c->argv[i] = c->keys[i];
    c->argc = 5;
    snprintf(c->nums[0], RLR_NUM, "%lld", lim->window_ms);
    if (now_ms >= 0)
        snprintf(c->nums[1], RLR_NUM, "%lld", (long long)now_ms);
    else
        c->nums[1][0] = '\0';
    int n = 2;
    for (int s = 0; s < RATELIMIT_SCOPE__COUNT; s++)
        for (int k = 0; k < RATELIMIT_KIND__COUNT; k++)
            snprintf(c->nums[n++], RLR_NUM, "%lld", lim->value[s][k]);
    snprintf(c->nums[n++], RLR_NUM, "%d", tenant != NULL);
    snprintf(c->nums[n++], RLR_NUM, "%d", tenant != NULL && user != NULL);
    for (int i = 0; i < n; i++)
        c->argv[c->argc++] = c->nums[i];
}

static void rlr_arg(struct rlr_call *c, long long v)
{
    int i = c->argc - 5;
    snprintf(c->nums[i], RLR_NUM, "%lld", v);
    c->argv[c->argc++] = c->nums[i];
}

static enum redis_status rlr_run(struct redis *r, const char *script, struct rlr_call *c,
                                 redisReply **rep, char *err, size_t errlen)
{
    struct redis_args a = {c->argc, c->argv, NULL};
    return redis_eval(r, script, 5, &a, rep, err, errlen);
}

static long long rlr_int(const redisReply *rep, size_t i)
{
    if (rep->type != REDIS_REPLY_ARRAY || i >= rep->elements ||
        rep->element[i]->type != REDIS_REPLY_INTEGER)
        return 0;
    return rep->element[i]->integer;
}

static enum redis_status rlr_bad_reply(struct redis *r, redisReply *rep, char *err, size_t errlen)
{
    snprintf(err, errlen, "Redis at %s: unexpected reply from the rate-limit script",
             redis_where(r));
    freeReplyObject(rep);
    return REDIS_ST_FAILED;
}

enum redis_status ratelimit_redis_acquire(struct redis *r, const struct ratelimit_limits *lim,
                                          const char *tenant, const char *user, long long tokens,
                                          int64_t now_ms, struct ratelimit_redis_decision *d,
                                          char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    struct rlr_call c;
    rlr_prepare(&c, r, lim, tenant, user, now_ms);
    rlr_arg(&c, tokens);
    redisReply *rep = NULL;
    enum redis_status st = rlr_run(r, rlr_acquire_lua, &c, &rep, err, errlen);
    if (st != REDIS_ST_OK)
        return st;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1)
        return rlr_bad_reply(r, rep, err, errlen);
    long long code = rlr_int(rep, 0);
    if (code != 0 && (rep->elements < 6 || rlr_int(rep, 2) < 0 || rlr_int(rep, 2) > 2 ||
                      rlr_int(rep, 3) < 0 || rlr_int(rep, 3) > 1))
        return rlr_bad_reply(r, rep, err, errlen);
    d->result = code == 0 ? RATELIMIT_OK : code == 1 ? RATELIMIT_WAIT : RATELIMIT_REFUSED;
    if (code != 0) {
        d->wait_ms = rlr_int(rep, 1);
        d->scope = (enum ratelimit_scope)rlr_int(rep, 2);
        d->kind = (enum ratelimit_kind)rlr_int(rep, 3);
        d->limit = rlr_int(rep, 4);
        d->overridden = rlr_int(rep, 5) != 0;
    }
    freeReplyObject(rep);
    return REDIS_ST_OK;
}

enum redis_status ratelimit_redis_adjust(struct redis *r, const struct ratelimit_limits *lim,
                                         const char *tenant, const char *user, long long requests,
                                         long long tokens, int64_t now_ms, char *err, size_t errlen)
{
    struct rlr_call c;
    rlr_prepare(&c, r, lim, tenant, user, now_ms);
    rlr_arg(&c, requests);
    rlr_arg(&c, tokens);
    redisReply *rep = NULL;
    enum redis_status st = rlr_run(r, rlr_adjust_lua, &c, &rep, err, errlen);
    freeReplyObject(rep);
    return st;
}

enum redis_status ratelimit_redis_snapshot(struct redis *r, const struct ratelimit_limits *lim,
                                           const char *tenant, const char *user, int64_t now_ms,
                                           struct ratelimit_view *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->window_ms = lim->window_ms;
    struct rlr_call c;
    rlr_prepare(&c, r, lim, tenant, tenant != NULL ? user : NULL, now_ms);
    redisReply *rep = NULL;
    enum redis_status st = rlr_run(r, rlr_snapshot_lua, &c, &rep, err, errlen);
    if (st != REDIS_ST_OK)
        return st;
    size_t want = 3 * RATELIMIT_SCOPE__COUNT * RATELIMIT_KIND__COUNT;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != want)
        return rlr_bad_reply(r, rep, err, errlen);
    size_t i = 0;
    for (int s = 0; s < RATELIMIT_SCOPE__COUNT; s++)
        for (int k = 0; k < RATELIMIT_KIND__COUNT; k++, i += 3) {
            struct ratelimit_bucket_view *v = &out->b[s][k];
            v->capacity = rlr_int(rep, i);
            v->overridden = rlr_int(rep, i + 1) != 0;
            v->level = rlr_int(rep, i + 2);
        }
    freeReplyObject(rep);
    return REDIS_ST_OK;
}

enum redis_status ratelimit_redis_override(struct redis *r, const char *tenant, const char *user,
                                           const char *name, double value, bool clear, char *err,
                                           size_t errlen)
{
    char key[RLR_KEY_MAX], num[RLR_NUM];
    rlr_key(key, r, "ovr", tenant, user);
    snprintf(num, sizeof num, "%.17g", value);
    const char *set[4] = {"HSET", key, name, num};
    const char *del[3] = {"HDEL", key, name};
    struct redis_args a = {clear ? 3 : 4, clear ? del : set, NULL};
    redisReply *rep = NULL;
    enum redis_status st = redis_command(r, &a, &rep, err, errlen);
    freeReplyObject(rep);
    return st;
}

enum redis_status ratelimit_redis_overrides_get(struct redis *r, const char *tenant,
                                                const char *user, double value[3], bool has[3],
                                                char *err, size_t errlen)
{
    char key[RLR_KEY_MAX];
    rlr_key(key, r, "ovr", tenant, user);
    const char *argv[5] = {"HMGET", key, "rpm", "tpm", "budget_usd"};
    struct redis_args a = {5, argv, NULL};
    redisReply *rep = NULL;
    enum redis_status st = redis_command(r, &a, &rep, err, errlen);
    if (st != REDIS_ST_OK)
        return st;
    for (size_t i = 0; i < 3; i++) {
        const redisReply *e =
            rep->type == REDIS_REPLY_ARRAY && i < rep->elements ? rep->element[i] : NULL;
        char *end = NULL;
        has[i] = e != NULL && e->type == REDIS_REPLY_STRING;
        value[i] = has[i] ? strtod(e->str, &end) : 0;
        if (has[i] && (end == e->str || *end != '\0'))
            has[i] = false; /* not a number: the scripts ignore it too */
    }
    freeReplyObject(rep);
    return REDIS_ST_OK;
}
