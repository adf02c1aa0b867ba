/*
 * The scripts and replies of budget_redis.h. Three scripts share one Lua
 * preamble (exact amounts as {whole dollars, nano-dollars} pairs, the
 * limits in force, a budget's figures): reserve and settle change keys,
 * snapshot only reads. Each runs atomically on the server, so two
 * processes reserving at once never both fit into the last dollar.
 *
 * Replies of reserve and snapshot are arrays of strings: the outcome, the
 * scope concerned (1 tenant, 2 user, 0 none), the two need-init flags,
 * then for the tenant and the user budget: limit, overridden, known,
 * spent, reserved. Anything else is a failed command, not a crash.
 */
#include "config.h"

#include "client/budget_redis.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

/* Prefix (64) + "budget:u:" + tenant/user (129) + ":" + ms (20). */
#define BR_KEY_MAX    256
#define BR_NUM_MAX    24
#define BR_REPLY_HEAD 4
#define BR_REPLY_PER  5

/* Amounts, limits and figures in Lua; KEYS are (budget, overrides) pairs,
 * tenant first. */
#define BR_LUA_PREAMBLE                                                                  \
    "local B = 1000000000\n"                                                             \
    "local CAP = {2305843009, 213693951}\n"                                              \
    "local MAXUSD = {1000000000, 0}\n"                                                   \
    "local function cmp(a, b)\n"                                                         \
    "  if a[1] ~= b[1] then return a[1] < b[1] and -1 or 1 end\n"                        \
    "  if a[2] ~= b[2] then return a[2] < b[2] and -1 or 1 end\n"                        \
    "  return 0\n"                                                                       \
    "end\n"                                                                              \
    "local function add(a, b)\n"                                                         \
    "  local s = {a[1] + b[1], a[2] + b[2]}\n"                                           \
    "  if s[2] >= B then s = {s[1] + 1, s[2] - B} end\n"                                 \
    "  if cmp(s, CAP) > 0 then return CAP end\n"                                         \
    "  return s\n"                                                                       \
    "end\n"                                                                              \
    "local function nonzero(a) return a[1] > 0 or a[2] > 0 end\n"                        \
    "local function fmt(a)\n"                                                            \
    "  if a[1] > 0 then return string.format('%d%09d', a[1], a[2]) end\n"                \
    "  return string.format('%d', a[2])\n"                                               \
    "end\n"                                                                              \
    "-- nano-dollars as a decimal string; anything else is 0\n"                          \
    "local function amt(s)\n"                                                            \
    "  if type(s) ~= 'string' or not string.find(s, '^%d+$') then return {0, 0} end\n"   \
    "  s = (string.gsub(s, '^0+(%d)', '%1'))\n"                                          \
    "  local n = #s\n"                                                                   \
    "  if n <= 9 then return {0, tonumber(s)} end\n"                                     \
    "  if n > 19 then return CAP end\n"                                                  \
    "  local a = {tonumber(string.sub(s, 1, n - 9)), tonumber(string.sub(s, n - 8))}\n"  \
    "  if cmp(a, CAP) > 0 then return CAP end\n"                                         \
    "  return a\n"                                                                       \
    "end\n"                                                                              \
    "-- an override in USD (decimal, or any number Lua reads); nil: none\n"              \
    "local function usd(s)\n"                                                            \
    "  if type(s) ~= 'string' then return nil end\n"                                     \
    "  local i, f = string.match(s, '^%s*(%d*)%.?(%d*)%s*$')\n"                          \
    "  local a\n"                                                                        \
    "  if i ~= nil and (i ~= '' or f ~= '') then\n"                                      \
    "    i = (string.gsub(i, '^0+', ''))\n"                                              \
    "    if #i > 10 then return MAXUSD end\n"                                            \
    "    a = {tonumber(i) or 0, tonumber(string.sub(f .. '000000000', 1, 9))}\n"         \
    "    if #f > 9 and string.byte(f, 10) >= 53 then a = add(a, {0, 1}) end\n"           \
    "  else\n"                                                                           \
    "    local v = tonumber(s)\n"                                                        \
    "    if v == nil or v ~= v or v < 0 then return nil end\n"                           \
    "    if v >= 1e9 then return MAXUSD end\n"                                           \
    "    local h = math.floor(v)\n"                                                      \
    "    a = add({h, 0}, {0, math.floor((v - h) * B + 0.5)})\n"                          \
    "  end\n"                                                                            \
    "  if cmp(a, MAXUSD) > 0 then return MAXUSD end\n"                                   \
    "  return a\n"                                                                       \
    "end\n"                                                                              \
    "-- the limits in force: the overrides, else the configured ARGV[base + s]\n"        \
    "local function limits(ns, base)\n"                                                  \
    "  local lim, ovr = {}, {}\n"                                                        \
    "  for s = 1, ns do\n"                                                               \
    "    local o = usd(redis.call('HGET', KEYS[2 * s], 'budget_usd'))\n"                 \
    "    lim[s], ovr[s] = o or amt(ARGV[base + s]), o ~= nil\n"                          \
    "  end\n"                                                                            \
    "  return lim, ovr\n"                                                                \
    "end\n"                                                                              \
    "-- {known, spent, reserved} of a budget; prune turns reservations whose\n"          \
    "-- lease ended into x: fields (forgotten at tomb) and drops old x: ones\n"          \
    "local function scan(key, now, prune, tomb)\n"                                       \
    "  local all = redis.call('HGETALL', key)\n"                                         \
    "  local known, spent, res = false, {0, 0}, {0, 0}\n"                                \
    "  for i = 1, #all, 2 do\n"                                                          \
    "    local f, v = all[i], all[i + 1]\n"                                              \
    "    local kind = string.sub(f, 1, 2)\n"                                             \
    "    if f == 'spent' then\n"                                                         \
    "      known, spent = true, amt(v)\n"                                                \
    "    elseif kind == 'r:' or kind == 'x:' then\n"                                     \
    "      local a, d = string.match(v, '^(%d+) (%-?%d+)$')\n"                           \
    "      local live = a ~= nil and tonumber(d) > now\n"                                \
    "      if kind == 'r:' and live then\n"                                              \
    "        res = add(res, amt(a))\n"                                                   \
    "      elseif prune and not live then\n"                                             \
    "        redis.call('HDEL', key, f)\n"                                               \
    "        if kind == 'r:' and a ~= nil then\n"                                        \
    "          redis.call('HSET', key, 'x:' .. string.sub(f, 3), a .. ' ' .. tomb)\n"    \
    "        end\n"                                                                      \
    "      end\n"                                                                        \
    "    end\n"                                                                          \
    "  end\n"                                                                            \
    "  return {known, spent, res}\n"                                                     \
    "end\n"                                                                              \
    "local function flag(b) return b and '1' or '0' end\n"                               \
    "-- the reply; budgets without a figure yet are read, not pruned\n"                  \
    "local function reply(status, scope, ns, lim, ovr, fig, need, now)\n"                \
    "  local out = {status, tostring(scope), flag(need[1]), flag(need[2])}\n"            \
    "  for s = 1, 2 do\n"                                                                \
    "    local l, o, f = {0, 0}, false, nil\n"                                           \
    "    if s <= ns then\n"                                                              \
    "      l, o = lim[s], ovr[s]\n"                                                      \
    "      if nonzero(l) then f = fig[s] or scan(KEYS[2 * s - 1], now, false, '') end\n" \
    "    end\n"                                                                          \
    "    f = f or {false, {0, 0}, {0, 0}}\n"                                             \
    "    for _, x in ipairs({fmt(l), flag(o), flag(f[1]), fmt(f[2]), fmt(f[3])}) do\n"   \
    "      out[#out + 1] = x\n"                                                          \
    "    end\n"                                                                          \
    "  end\n"                                                                            \
    "  return out\n"                                                                     \
    "end\n"

/* ARGV: rid, est, no_price, now, lease end, forget lapsed at, time to
 * live, tenant limit, user limit, tenant init, user init ("" = none). */
static const char br_reserve_lua[] = BR_LUA_PREAMBLE
    "local ns = #KEYS / 2\n"
    "local now = tonumber(ARGV[4])\n"
    "local lim, ovr = limits(ns, 7)\n"
    "local fig, need, any = {}, {false, false}, false\n"
    "for s = 1, ns do if nonzero(lim[s]) then any = true end end\n"
    "if not any then return reply('none', 0, ns, lim, ovr, fig, need, now) end\n"
    "if ARGV[3] == '1' then\n"
    "  local sc = (ns == 2 and nonzero(lim[2])) and 2 or 1\n"
    "  return reply('noprice', sc, ns, lim, ovr, fig, need, now)\n"
    "end\n"
    "local missing = false\n"
    "for s = 1, ns do\n"
    "  local k = KEYS[2 * s - 1]\n"
    "  if nonzero(lim[s]) and redis.call('HEXISTS', k, 'spent') == 0 then\n"
    "    if ARGV[9 + s] ~= '' then\n"
    "      redis.call('HSETNX', k, 'spent', ARGV[9 + s])\n"
    "      redis.call('PEXPIRE', k, ARGV[7])\n"
    "    else\n"
    "      need[s], missing = true, true\n"
    "    end\n"
    "  end\n"
    "end\n"
    "if missing then return reply('init', 0, ns, lim, ovr, fig, need, now) end\n"
    "for s = 1, ns do\n"
    "  if nonzero(lim[s]) then fig[s] = scan(KEYS[2 * s - 1], now, true, ARGV[6]) end\n"
    "end\n"
    "local est = amt(ARGV[2])\n"
    "for s = ns, 1, -1 do\n"
    "  if fig[s] and cmp(add(add(fig[s][2], fig[s][3]), est), lim[s]) > 0 then\n"
    "    return reply('refused', s, ns, lim, ovr, fig, need, now)\n"
    "  end\n"
    "end\n"
    "for s = 1, ns do\n"
    "  if fig[s] then\n"
    "    redis.call('HSET', KEYS[2 * s - 1], 'r:' .. ARGV[1], ARGV[2] .. ' ' .. ARGV[5])\n"
    "    redis.call('PEXPIRE', KEYS[2 * s - 1], ARGV[7])\n"
    "    fig[s][3] = add(fig[s][3], est)\n"
    "  end\n"
    "end\n"
    "return reply('ok', 0, ns, lim, ovr, fig, need, now)\n";

/* ARGV: now, tenant limit, user limit. */
static const char br_snapshot_lua[] =
    BR_LUA_PREAMBLE "local ns = #KEYS / 2\n"
                    "local now = tonumber(ARGV[1])\n"
                    "local lim, ovr = limits(ns, 1)\n"
                    "return reply('view', 0, ns, lim, ovr, {}, {false, false}, now)\n";

/* KEYS: the budgets the reservation held. ARGV: rid, actual. A live
 * reservation or a lapsed one is removed and its cost added; one already
 * gone (settled, or forgotten) adds nothing. */
static const char br_settle_lua[] = BR_LUA_PREAMBLE
    "local n = 0\n"
    "for i = 1, #KEYS do\n"
    "  local k, f = KEYS[i], 'r:' .. ARGV[1]\n"
    "  if redis.call('HEXISTS', k, f) == 0 then f = 'x:' .. ARGV[1] end\n"
    "  if redis.call('HDEL', k, f) == 1 then\n"
    "    n = n + 1\n"
    "    local sp = redis.call('HGET', k, 'spent')\n"
    "    if sp then redis.call('HSET', k, 'spent', fmt(add(amt(sp), amt(ARGV[2])))) end\n"
    "  end\n"
    "end\n"
    "return n\n";

void budget_redis_new_rid(char out[BUDGET_RID_LEN + 1])
{
    unsigned char raw[BUDGET_RID_LEN / 2];
    /* Idempotent; randombytes_buf draws from the kernel even when it
     * fails, so the result does not matter here. */
    int rc = sodium_init();
    (void)rc;
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(out, BUDGET_RID_LEN + 1, raw, sizeof raw);
}

/* ---- keys ---- */

static void br_budget_key(const struct redis *r, const char *tenant, const char *user,
                          int64_t start, char out[BR_KEY_MAX])
{
    if (user != NULL)
        snprintf(out, BR_KEY_MAX, "%sbudget:u:%s/%s:%" PRId64, redis_prefix(r), tenant, user,
                 start);
    else
        snprintf(out, BR_KEY_MAX, "%sbudget:t:%s:%" PRId64, redis_prefix(r), tenant, start);
}

static void br_override_key(const struct redis *r, const char *tenant, const char *user,
                            char out[BR_KEY_MAX])
{
    if (user != NULL)
        snprintf(out, BR_KEY_MAX, "%sovr:u:%s/%s", redis_prefix(r), tenant, user);
    else
        snprintf(out, BR_KEY_MAX, "%sovr:t:%s", redis_prefix(r), tenant);
}

/* KEYS of reserve and snapshot: (budget, overrides) of the tenant, then
 * of the user when there is one. The count of keys. */
static int br_pair_keys(const struct redis *r, const struct budget_redis_request *q,
                        char keys[4][BR_KEY_MAX], const char *argv[])
{
    br_budget_key(r, q->tenant, NULL, q->period_start_ms, keys[0]);
    br_override_key(r, q->tenant, NULL, keys[1]);
    int n = 2;
    if (q->user != NULL) {
        br_budget_key(r, q->tenant, q->user, q->period_start_ms, keys[2]);
        br_override_key(r, q->tenant, q->user, keys[3]);
        n = 4;
    }
    for (int i = 0; i < n; i++)
        argv[i] = keys[i];
    return n;
}

/* ---- replies ---- */

static const redisReply *br_elem(const redisReply *rep, size_t i)
{
    if (i >= rep->elements || rep->element[i]->type != REDIS_REPLY_STRING)
        return NULL;
    return rep->element[i];
}

/* A non-negative decimal amount, clamped to BUDGET_REDIS_SUM_MAX. */
static bool br_amount(const redisReply *e, int64_t *out)
{
    if (e == NULL || e->len == 0 || e->len >= BR_NUM_MAX)
        return false;
    char buf[BR_NUM_MAX];
    memcpy(buf, e->str, e->len);
    buf[e->len] = '\0';
    char *end = NULL;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (*end != '\0' || v < 0)
        return false;
    *out = errno == ERANGE || v > BUDGET_REDIS_SUM_MAX ? BUDGET_REDIS_SUM_MAX : (int64_t)v;
    return true;
}

static bool br_flag(const redisReply *e, bool *out)
{
    if (e == NULL || e->len != 1 || (e->str[0] != '0' && e->str[0] != '1'))
        return false;
    *out = e->str[0] == '1';
    return true;
}

static bool br_figures(const redisReply *rep, size_t at, struct budget_redis_figures *f)
{
    return br_amount(br_elem(rep, at), &f->limit) &&
           br_flag(br_elem(rep, at + 1), &f->overridden) &&
           br_flag(br_elem(rep, at + 2), &f->known) && br_amount(br_elem(rep, at + 3), &f->spent) &&
           br_amount(br_elem(rep, at + 4), &f->reserved);
}

static bool br_outcome(const redisReply *e, enum budget_redis_outcome *out)
{
    static const struct {
        const char *name;
        enum budget_redis_outcome o;
    } all[] = {{"ok", BUDGET_REDIS_RESERVED},      {"none", BUDGET_REDIS_NONE},
               {"noprice", BUDGET_REDIS_NO_PRICE}, {"refused", BUDGET_REDIS_REFUSED},
               {"init", BUDGET_REDIS_NEED_INIT},   {"view", BUDGET_REDIS_NONE}};
    for (size_t i = 0; e != NULL && i < sizeof all / sizeof all[0]; i++)
        if (strlen(all[i].name) == e->len && memcmp(all[i].name, e->str, e->len) == 0) {
            *out = all[i].o;
            return true;
        }
    return false;
}

/* Reads a reserve or snapshot reply into *a; false when it is not one. */
static bool br_parse(const redisReply *rep, struct budget_redis_answer *a)
{
    memset(a, 0, sizeof *a);
    if (rep->type != REDIS_REPLY_ARRAY ||
        rep->elements != BR_REPLY_HEAD + BR_REPLY_PER * BUDGET_SCOPE__COUNT)
        return false;
    const redisReply *sc = br_elem(rep, 1);
    if (!br_outcome(br_elem(rep, 0), &a->outcome) || sc == NULL || sc->len != 1 ||
        sc->str[0] < '0' || sc->str[0] > '2')
        return false;
    a->scope = sc->str[0] == '2' ? BUDGET_USER : BUDGET_TENANT;
    for (int s = 0; s < BUDGET_SCOPE__COUNT; s++)
        if (!br_flag(br_elem(rep, 2 + (size_t)s), &a->need_init[s]) ||
            !br_figures(rep, BR_REPLY_HEAD + BR_REPLY_PER * (size_t)s, &a->f[s]))
            return false;
    return true;
}

/* Runs script and parses its reply into *a. */
static enum redis_status br_run(struct redis *r, const char *script, int nkeys,
                                const struct redis_args *args, struct budget_redis_answer *a,
                                char *err, size_t errlen)
{
    redisReply *rep = NULL;
    enum redis_status st = redis_eval(r, script, nkeys, args, &rep, err, errlen);
    if (st != REDIS_ST_OK)
        return st;
    if (!br_parse(rep, a)) {
        snprintf(err, errlen, "Redis at %s answered a budget script with an unexpected reply",
                 redis_where(r));
        st = REDIS_ST_FAILED;
    }
    freeReplyObject(rep);
    return st;
}

/* ---- the three operations ---- */

/* How long a key of q's period is kept: until a day after the period
 * ends by the caller's clock. Relative, not PEXPIREAT, so a caller whose
 * clock is behind the server's (or a test's made-up time) never makes a
 * key expire at once. */
static int64_t br_ttl(const struct budget_redis_request *q)
{
    int64_t left = q->period_end_ms - q->now_ms;
    return (left > 0 ? left : 0) + BUDGET_REDIS_KEEP_MS;
}

enum redis_status budget_redis_reserve(struct redis *r, const struct budget_redis_request *q,
                                       struct budget_redis_answer *a, char *err, size_t errlen)
{
    char keys[4][BR_KEY_MAX];
    char num[9][BR_NUM_MAX];
    const char *argv[4 + 11];
    int nk = br_pair_keys(r, q, keys, argv);
    const char **av = argv + nk;
    int64_t vals[] = {q->est_nusd,
                      q->now_ms,
                      q->now_ms + BUDGET_REDIS_LEASE_MS,
                      q->now_ms + BUDGET_REDIS_TOMB_MS,
                      br_ttl(q),
                      q->limit[BUDGET_TENANT],
                      q->limit[BUDGET_USER],
                      q->init_nusd[BUDGET_TENANT],
                      q->init_nusd[BUDGET_USER]};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++)
        snprintf(num[i], BR_NUM_MAX, "%" PRId64, vals[i]);
    av[0] = q->rid != NULL ? q->rid : "";
    av[1] = num[0];
    av[2] = q->no_price ? "1" : "0";
    for (int i = 1; i <= 6; i++)
        av[2 + i] = num[i];
    av[9] = q->has_init[BUDGET_TENANT] ? num[7] : "";
    av[10] = q->has_init[BUDGET_USER] ? num[8] : "";
    struct redis_args args = {nk + 11, argv, NULL};
    return br_run(r, br_reserve_lua, nk, &args, a, err, errlen);
}

enum redis_status budget_redis_snapshot(struct redis *r, const struct budget_redis_request *q,
                                        struct budget_redis_figures f[BUDGET_SCOPE__COUNT],
                                        char *err, size_t errlen)
{
    char keys[4][BR_KEY_MAX];
    char num[3][BR_NUM_MAX];
    const char *argv[4 + 3];
    int nk = br_pair_keys(r, q, keys, argv);
    snprintf(num[0], BR_NUM_MAX, "%" PRId64, q->now_ms);
    snprintf(num[1], BR_NUM_MAX, "%" PRId64, q->limit[BUDGET_TENANT]);
    snprintf(num[2], BR_NUM_MAX, "%" PRId64, q->limit[BUDGET_USER]);
    for (int i = 0; i < 3; i++)
        argv[nk + i] = num[i];
    struct redis_args args = {nk + 3, argv, NULL};
    struct budget_redis_answer a;
    enum redis_status st = br_run(r, br_snapshot_lua, nk, &args, &a, err, errlen);
    if (st == REDIS_ST_OK)
        memcpy(f, a.f, sizeof a.f);
    return st;
}

enum redis_status budget_redis_settle(struct redis *r, const struct budget_reservation *res,
                                      int64_t actual_nusd, char *err, size_t errlen)
{
    char keys[BUDGET_SCOPE__COUNT][BR_KEY_MAX];
    char actual[BR_NUM_MAX];
    const char *argv[BUDGET_SCOPE__COUNT + 2];
    int nk = 0;
    for (int s = 0; s < BUDGET_SCOPE__COUNT; s++) {
        if (!res->held[s])
            continue;
        br_budget_key(r, res->tenant, s == BUDGET_USER ? res->user : NULL, res->period_start_ms,
                      keys[nk]);
        argv[nk] = keys[nk];
        nk++;
    }
    if (nk == 0)
        return REDIS_ST_OK;
    snprintf(actual, sizeof actual, "%" PRId64, actual_nusd);
    argv[nk] = res->rid;
    argv[nk + 1] = actual;
    struct redis_args args = {nk + 2, argv, NULL};
    redisReply *rep = NULL;
    enum redis_status st = redis_eval(r, br_settle_lua, nk, &args, &rep, err, errlen);
    if (st == REDIS_ST_OK && rep->type != REDIS_REPLY_INTEGER) {
        snprintf(err, errlen, "Redis at %s answered the budget settle script unexpectedly",
                 redis_where(r));
        st = REDIS_ST_FAILED;
    }
    freeReplyObject(rep);
    return st;
}
