/*
 * The response cache on Redis (cache_redis.h): the blob codec and the Lua
 * scripts behind a lookup, a store and a purge.
 *
 * Every script starts with the same forget() (one entry out: its value and
 * its three bookkeeping records, its charge off the total), so eviction,
 * the drop of a malformed blob and both purges cannot disagree on what an
 * entry is made of. The bookkeeping keys are KEYS[1..4] of every script for
 * that reason. Key names of evicted entries are not declared as KEYS: they
 * are only known on the server, which is fine on one Redis (not a Cluster,
 * which memchat does not support).
 *
 * The blob never leaves this file unparsed: cache_redis_decode() checks the
 * version, the flags, the key, every length against the real size and each
 * piece end against the text before cache.c copies anything, so a blob
 * somebody else wrote is a miss, never a crash.
 */
#include "config.h"

#include "client/cache_redis.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "util/alloc.h"

#define CACHE_REDIS_VERSION 1
/* Offsets inside a blob (cache_redis.h gives the layout). */
#define CACHE_REDIS_OFF_BORN  1
#define CACHE_REDIS_OFF_FLAGS 9
#define CACHE_REDIS_OFF_KEY   10
#define CACHE_REDIS_OFF_USAGE 42
#define CACHE_REDIS_OFF_LENS  66
/* The flag bits a version-1 blob may carry. */
#define CACHE_REDIS_FLAG_ESTIMATED 1u
/* Keys handed to one script in a purge, and the SCAN hint. */
#define CACHE_REDIS_BATCH     256
#define CACHE_REDIS_BATCH_STR "256"

/* ---- scripts ---- */

/* KEYS[1..4] of every script: cache:lru, cache:size, cache:bytes, cache:owner. */
#define CACHE_REDIS_LUA_FORGET                                             \
    "local lru, size, total, owner = KEYS[1], KEYS[2], KEYS[3], KEYS[4]\n" \
    "local function forget(k)\n"                                           \
    "  local gone = redis.call('DEL', k)\n"                                \
    "  local sz = redis.call('HGET', size, k)\n"                           \
    "  if sz then\n"                                                       \
    "    redis.call('HDEL', size, k)\n"                                    \
    "    redis.call('DECRBY', total, sz)\n"                                \
    "  end\n"                                                              \
    "  redis.call('ZREM', lru, k)\n"                                       \
    "  local u = redis.call('HGET', owner, k)\n"                           \
    "  if u then\n"                                                        \
    "    redis.call('HDEL', owner, k)\n"                                   \
    "    redis.call('SREM', u, k)\n"                                       \
    "  end\n"                                                              \
    "  return gone\n"                                                      \
    "end\n"

/* The LRU score of a use now: server time in microseconds, but above every score
 * already there, so the order of uses is the order the scripts ran even
 * within one microsecond or when the server's clock steps back. */
#define CACHE_REDIS_LUA_SCORE                                                           \
    "local function use_score(now_us)\n"                                                \
    "  local top = redis.call('ZRANGE', lru, -1, -1, 'WITHSCORES')\n"                   \
    "  if top[2] and tonumber(top[2]) >= now_us then return tonumber(top[2]) + 1 end\n" \
    "  return now_us\n"                                                                 \
    "end\n"                                                                             \
    "local t = redis.call('TIME')\n"                                                    \
    "local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"

/* KEYS[5] the entry. Returns nil (absent), 0 (not a string: deleted) or
 * {blob, server ms}; a hit becomes the most recently used. */
static const char cache_redis_lua_get[] = CACHE_REDIS_LUA_FORGET CACHE_REDIS_LUA_SCORE
    "local key = KEYS[5]\n"
    "local v = redis.pcall('GET', key)\n"
    "if type(v) == 'table' and v.err then forget(key) return 0 end\n"
    "if not v then return nil end\n"
    "redis.call('ZADD', lru, 'XX', use_score(now_us), key)\n"
    "return {v, math.floor(now_us / 1000)}\n";

/* KEYS[5] the entry, KEYS[6] (optional) its user set; ARGV: head, text,
 * ttl ms, max bytes, charge, the born offset. Returns the evicted count. */
static const char cache_redis_lua_put[] = CACHE_REDIS_LUA_FORGET CACHE_REDIS_LUA_SCORE
    "local key, uset = KEYS[5], KEYS[6]\n"
    "local ttl, max, charge = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])\n"
    "if charge > max then return -1 end\n"
    "forget(key)\n" /* a replaced entry's charge and user set go first */
    "if ttl > 0 then redis.call('SET', key, ARGV[1], 'PX', ttl)\n"
    "else redis.call('SET', key, ARGV[1]) end\n"
    "local born = struct.pack('<i8', math.floor(now_us / 1000))\n"
    "redis.call('SETRANGE', key, tonumber(ARGV[6]), born)\n"
    "if #ARGV[2] > 0 then redis.call('APPEND', key, ARGV[2]) end\n"
    "redis.call('HSET', size, key, charge)\n"
    "if uset then\n"
    "  redis.call('HSET', owner, key, uset)\n"
    "  redis.call('SADD', uset, key)\n"
    "end\n"
    "redis.call('ZADD', lru, use_score(now_us), key)\n"
    "local sum = redis.call('INCRBY', total, charge)\n"
    "local evicted = 0\n"
    "while sum > max do\n"
    "  local v = redis.call('ZRANGE', lru, 0, 1)\n"
    "  local victim = v[1]\n"
    "  if victim == key then victim = v[2] end\n"
    "  if not victim then\n"
    /* only this entry is tracked: the total drifted (keys deleted by hand) */
    "    redis.call('SET', total, charge)\n"
    "    break\n"
    "  end\n"
    "  forget(victim)\n"
    "  evicted = evicted + 1\n"
    "  sum = tonumber(redis.call('GET', total))\n"
    "end\n"
    "return evicted\n";

/* KEYS[5..] entries or user sets to delete; with ARGV[1], KEYS[5] only
 * while it still holds exactly ARGV[1] (a malformed blob, not a valid one
 * stored since it was read). Returns how many entries existed. */
static const char cache_redis_lua_forget[] = CACHE_REDIS_LUA_FORGET
    "if ARGV[1] then\n"
    "  if redis.call('TYPE', KEYS[5]).ok == 'string' and redis.call('GET', KEYS[5]) == ARGV[1] "
    "then\n"
    "    return forget(KEYS[5])\n"
    "  end\n"
    "  return 0\n"
    "end\n"
    "local n = 0\n"
    "for i = 5, #KEYS do\n"
    "  if redis.call('TYPE', KEYS[i]).ok == 'set' then redis.call('DEL', KEYS[i])\n"
    "  else n = n + forget(KEYS[i]) end\n"
    "end\n"
    "return n\n";

/* KEYS[5] a user set; ARGV[1] the batch. Returns {entries that existed,
 * members left}. */
static const char cache_redis_lua_purge_user[] =
    CACHE_REDIS_LUA_FORGET "local n = 0\n"
                           "for _, k in ipairs(redis.call('SPOP', KEYS[5], tonumber(ARGV[1]))) do\n"
                           "  n = n + forget(k)\n"
                           "end\n"
                           "return {n, redis.call('SCARD', KEYS[5])}\n";

/* ---- names ---- */

static void cache_redis_name(char out[CACHE_REDIS_KEY_MAX], const char *fmt_prefix,
                             const char *tenant, const char *sep, const char *tail)
{
    int n = snprintf(out, CACHE_REDIS_KEY_MAX, "%scache:%s%s%s", fmt_prefix, tenant, sep, tail);
    if (n < 0 || n >= CACHE_REDIS_KEY_MAX)
        out[0] = '\0';
}

void cache_redis_key_name(const struct redis *r, const char *tenant,
                          const uint8_t key[CACHE_KEY_BYTES], char out[CACHE_REDIS_KEY_MAX])
{
    static const char hex[] = "0123456789abcdef";
    char h[2 * CACHE_KEY_BYTES + 1];
    for (size_t i = 0; i < CACHE_KEY_BYTES; i++) {
        h[2 * i] = hex[key[i] >> 4];
        h[2 * i + 1] = hex[key[i] & 15];
    }
    h[2 * CACHE_KEY_BYTES] = '\0';
    cache_redis_name(out, redis_prefix(r), tenant, ":", h);
}

void cache_redis_user_set_name(const struct redis *r, const char *tenant, const char *user,
                               char out[CACHE_REDIS_KEY_MAX])
{
    cache_redis_name(out, redis_prefix(r), tenant, ":u:", user);
}

/* The bookkeeping keys, KEYS[1..4] of every script. */
struct cache_redis_books {
    char lru[CACHE_REDIS_KEY_MAX], size[CACHE_REDIS_KEY_MAX], total[CACHE_REDIS_KEY_MAX],
        owner[CACHE_REDIS_KEY_MAX];
};

static void cache_redis_books(const struct redis *r, struct cache_redis_books *b)
{
    const char *p = redis_prefix(r);
    snprintf(b->lru, sizeof b->lru, "%scache:lru", p);
    snprintf(b->size, sizeof b->size, "%scache:size", p);
    snprintf(b->total, sizeof b->total, "%scache:bytes", p);
    snprintf(b->owner, sizeof b->owner, "%scache:owner", p);
}

/* ---- the blob ---- */

static void cache_redis_put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void cache_redis_put_i64(unsigned char *p, int64_t v)
{
    uint64_t u = (uint64_t)v;
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(u >> (8 * i));
}

static uint32_t cache_redis_get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int64_t cache_redis_get_i64(const unsigned char *p)
{
    uint64_t u = 0;
    for (int i = 7; i >= 0; i--)
        u = u << 8 | p[i];
    /* Two's complement back without the implementation-defined conversion. */
    return u <= INT64_MAX ? (int64_t)u : -(int64_t)(~u) - 1;
}

size_t cache_redis_head_bytes(size_t n_pieces, size_t model_len, size_t finish_len)
{
    if (n_pieces > (SIZE_MAX - CACHE_REDIS_FIXED_BYTES) / 4)
        return SIZE_MAX;
    size_t n = CACHE_REDIS_FIXED_BYTES + 4 * n_pieces;
    if (model_len > SIZE_MAX - n)
        return SIZE_MAX;
    n += model_len;
    return finish_len > SIZE_MAX - n ? SIZE_MAX : n + finish_len;
}

void cache_redis_encode_head(unsigned char *out, const uint8_t key[CACHE_KEY_BYTES],
                             size_t text_len, const size_t *piece_lens, size_t n_pieces,
                             const char *model, const char *finish_reason,
                             const struct llm_usage *usage)
{
    size_t model_len = strlen(model), finish_len = strlen(finish_reason);
    memset(out, 0, CACHE_REDIS_FIXED_BYTES);
    out[0] = CACHE_REDIS_VERSION;
    out[CACHE_REDIS_OFF_FLAGS] = usage->estimated ? CACHE_REDIS_FLAG_ESTIMATED : 0;
    memcpy(out + CACHE_REDIS_OFF_KEY, key, CACHE_KEY_BYTES);
    cache_redis_put_i64(out + CACHE_REDIS_OFF_USAGE, usage->prompt_tokens);
    cache_redis_put_i64(out + CACHE_REDIS_OFF_USAGE + 8, usage->completion_tokens);
    cache_redis_put_i64(out + CACHE_REDIS_OFF_USAGE + 16, usage->cached_tokens);
    cache_redis_put_u32(out + CACHE_REDIS_OFF_LENS, (uint32_t)model_len);
    cache_redis_put_u32(out + CACHE_REDIS_OFF_LENS + 4, (uint32_t)finish_len);
    cache_redis_put_u32(out + CACHE_REDIS_OFF_LENS + 8, (uint32_t)n_pieces);
    cache_redis_put_u32(out + CACHE_REDIS_OFF_LENS + 12, (uint32_t)text_len);
    unsigned char *p = out + CACHE_REDIS_FIXED_BYTES;
    memcpy(p, model, model_len);
    p += model_len;
    memcpy(p, finish_reason, finish_len);
    p += finish_len;
    uint32_t end = 0;
    for (size_t i = 0; i < n_pieces; i++, p += 4) {
        end += (uint32_t)piece_lens[i];
        cache_redis_put_u32(p, end);
    }
}

/* Whether the piece ends rise to exactly text_len (no piece past the text). */
static bool cache_redis_ends_valid(const struct cache_redis_record *rec)
{
    if (rec->n_pieces == 0)
        return rec->text_len == 0;
    uint32_t prev = 0;
    for (size_t i = 0; i < rec->n_pieces; i++) {
        uint32_t end = cache_redis_record_end(rec, i);
        if (end < prev || end > rec->text_len)
            return false;
        prev = end;
    }
    return prev == rec->text_len;
}

bool cache_redis_decode(const char *blob, size_t len, const uint8_t key[CACHE_KEY_BYTES],
                        struct cache_redis_record *out)
{
    memset(out, 0, sizeof *out);
    const unsigned char *b = (const unsigned char *)blob;
    if (b == NULL || len < CACHE_REDIS_FIXED_BYTES || b[0] != CACHE_REDIS_VERSION ||
        (b[CACHE_REDIS_OFF_FLAGS] & ~CACHE_REDIS_FLAG_ESTIMATED) != 0 ||
        memcmp(b + CACHE_REDIS_OFF_KEY, key, CACHE_KEY_BYTES) != 0)
        return false;
    size_t model_len = cache_redis_get_u32(b + CACHE_REDIS_OFF_LENS);
    size_t finish_len = cache_redis_get_u32(b + CACHE_REDIS_OFF_LENS + 4);
    size_t n_pieces = cache_redis_get_u32(b + CACHE_REDIS_OFF_LENS + 8);
    size_t text_len = cache_redis_get_u32(b + CACHE_REDIS_OFF_LENS + 12);
    size_t head = cache_redis_head_bytes(n_pieces, model_len, finish_len);
    if (head == SIZE_MAX || head > len || len - head != text_len)
        return false;
    out->born_ms = cache_redis_get_i64(b + CACHE_REDIS_OFF_BORN);
    if (out->born_ms < 0) /* server time: never before 1970 */
        return false;
    out->usage = (struct llm_usage){
        .prompt_tokens = cache_redis_get_i64(b + CACHE_REDIS_OFF_USAGE),
        .completion_tokens = cache_redis_get_i64(b + CACHE_REDIS_OFF_USAGE + 8),
        .cached_tokens = cache_redis_get_i64(b + CACHE_REDIS_OFF_USAGE + 16),
        .estimated = (b[CACHE_REDIS_OFF_FLAGS] & CACHE_REDIS_FLAG_ESTIMATED) != 0,
    };
    out->model = blob + CACHE_REDIS_FIXED_BYTES;
    out->model_len = model_len;
    out->finish_reason = out->model + model_len;
    out->finish_len = finish_len;
    out->ends = b + CACHE_REDIS_FIXED_BYTES + model_len + finish_len;
    out->n_pieces = n_pieces;
    out->text = blob + head;
    out->text_len = text_len;
    /* The names become C strings: an inner NUL would cut them silently. */
    if (memchr(out->model, '\0', model_len) != NULL ||
        memchr(out->finish_reason, '\0', finish_len) != NULL || !cache_redis_ends_valid(out)) {
        memset(out, 0, sizeof *out);
        return false;
    }
    return true;
}

uint32_t cache_redis_record_end(const struct cache_redis_record *rec, size_t i)
{
    return cache_redis_get_u32(rec->ends + 4 * i);
}

size_t cache_redis_charge(const struct redis *r, const char *tenant, size_t head_len,
                          size_t text_len)
{
    /* prefix + "cache:" + tenant + ":" + 64 hex digits */
    size_t name = strlen(redis_prefix(r)) + 6 + strlen(tenant) + 1 + 2 * CACHE_KEY_BYTES;
    if (head_len > SIZE_MAX - name || text_len > SIZE_MAX - name - head_len)
        return SIZE_MAX;
    return head_len + text_len + name;
}

/* ---- lookup ---- */

void cache_redis_hit_free(struct cache_redis_hit *hit)
{
    if (hit->reply != NULL)
        freeReplyObject(hit->reply);
    memset(hit, 0, sizeof *hit);
}

static enum redis_status cache_redis_unexpected(struct redis *r, const char *what, char *err,
                                                size_t errlen)
{
    snprintf(err, errlen, "Redis at %s answered the cache's %s with an unexpected reply",
             redis_where(r), what);
    return REDIS_ST_FAILED;
}

/* Deletes the malformed blob at name, unless another process stored a
 * valid one there since it was read. Best effort: the lookup is a miss
 * either way. */
static void cache_redis_drop_blob(struct redis *r, const struct cache_redis_books *b,
                                  const char *name, const char *blob, size_t len)
{
    const char *argv[6] = {b->lru, b->size, b->total, b->owner, name, blob};
    size_t lens[6] = {strlen(b->lru),   strlen(b->size), strlen(b->total),
                      strlen(b->owner), strlen(name),    len};
    struct redis_args a = {.argc = 6, .argv = argv, .lens = lens};
    redisReply *rep = NULL;
    char err[256];
    if (redis_eval(r, cache_redis_lua_forget, 5, &a, &rep, err, sizeof err) == REDIS_ST_OK)
        freeReplyObject(rep);
}

enum redis_status cache_redis_get(struct redis *r, const char *tenant,
                                  const uint8_t key[CACHE_KEY_BYTES], bool *found, bool *corrupt,
                                  struct cache_redis_hit *hit, char *err, size_t errlen)
{
    *found = *corrupt = false;
    memset(hit, 0, sizeof *hit);
    struct cache_redis_books b;
    cache_redis_books(r, &b);
    char name[CACHE_REDIS_KEY_MAX];
    cache_redis_key_name(r, tenant, key, name);
    const char *argv[5] = {b.lru, b.size, b.total, b.owner, name};
    struct redis_args a = {.argc = 5, .argv = argv};
    redisReply *rep = NULL;
    enum redis_status st = redis_eval(r, cache_redis_lua_get, 5, &a, &rep, err, errlen);
    if (st != REDIS_ST_OK)
        return st;
    if (rep->type == REDIS_REPLY_NIL || rep->type == REDIS_REPLY_INTEGER) {
        *corrupt = rep->type == REDIS_REPLY_INTEGER; /* not a string: deleted by the script */
        freeReplyObject(rep);
        return REDIS_ST_OK;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_STRING ||
        rep->element[1]->type != REDIS_REPLY_INTEGER) {
        freeReplyObject(rep);
        return cache_redis_unexpected(r, "lookup", err, errlen);
    }
    const redisReply *blob = rep->element[0];
    if (!cache_redis_decode(blob->str, blob->len, key, &hit->rec)) {
        *corrupt = true;
        cache_redis_drop_blob(r, &b, name, blob->str, blob->len);
        freeReplyObject(rep);
        return REDIS_ST_OK;
    }
    long long now = rep->element[1]->integer;
    hit->age_ms = now > hit->rec.born_ms ? now - hit->rec.born_ms : 0;
    hit->reply = rep;
    *found = true;
    return REDIS_ST_OK;
}

/* ---- store ---- */

enum redis_status cache_redis_put(struct redis *r, const struct cache_redis_item *it,
                                  int64_t ttl_ms, size_t max_bytes, size_t *evicted, char *err,
                                  size_t errlen)
{
    *evicted = 0;
    struct cache_redis_books b;
    cache_redis_books(r, &b);
    char name[CACHE_REDIS_KEY_MAX], uset[CACHE_REDIS_KEY_MAX] = "";
    cache_redis_key_name(r, it->tenant, it->key, name);
    if (it->user != NULL)
        cache_redis_user_set_name(r, it->tenant, it->user, uset);
    char ttl[24], max[24], charge[24], born[8];
    snprintf(ttl, sizeof ttl, "%" PRId64, ttl_ms > 0 ? ttl_ms : 0);
    snprintf(max, sizeof max, "%zu", max_bytes);
    snprintf(charge, sizeof charge, "%zu", it->charge);
    snprintf(born, sizeof born, "%d", CACHE_REDIS_OFF_BORN);
    int nkeys = uset[0] != '\0' ? 6 : 5;
    const char *argv[12] = {b.lru, b.size, b.total, b.owner, name, uset};
    size_t lens[12];
    for (int i = 0; i < nkeys; i++)
        lens[i] = strlen(argv[i]);
    const char *args[6] = {
        (const char *)it->head, it->text != NULL ? it->text : "", ttl, max, charge, born};
    size_t arg_lens[6] = {it->head_len, it->text_len,   strlen(ttl),
                          strlen(max),  strlen(charge), strlen(born)};
    for (int i = 0; i < 6; i++) {
        argv[nkeys + i] = args[i];
        lens[nkeys + i] = arg_lens[i];
    }
    struct redis_args a = {.argc = nkeys + 6, .argv = argv, .lens = lens};
    redisReply *rep = NULL;
    enum redis_status st = redis_eval(r, cache_redis_lua_put, nkeys, &a, &rep, err, errlen);
    if (st != REDIS_ST_OK)
        return st;
    bool ok = rep->type == REDIS_REPLY_INTEGER && rep->integer >= 0;
    if (ok)
        *evicted = (size_t)rep->integer;
    freeReplyObject(rep);
    return ok ? REDIS_ST_OK : cache_redis_unexpected(r, "store", err, errlen);
}

/* ---- purge ---- */

/* Deletes the n names (entries or user sets; lens[i] bytes each) with
 * their bookkeeping. */
static enum redis_status cache_redis_forget(struct redis *r, const struct cache_redis_books *b,
                                            const char *const *names, const size_t *lens, size_t n,
                                            size_t *dropped, char *err, size_t errlen)
{
    if (n == 0)
        return REDIS_ST_OK;
    const char **argv = xcalloc(n + 4, sizeof *argv);
    size_t *argl = xcalloc(n + 4, sizeof *argl);
    const char *books[4] = {b->lru, b->size, b->total, b->owner};
    for (size_t i = 0; i < 4; i++) {
        argv[i] = books[i];
        argl[i] = strlen(books[i]);
    }
    memcpy(argv + 4, names, n * sizeof *names);
    memcpy(argl + 4, lens, n * sizeof *lens);
    struct redis_args a = {.argc = (int)n + 4, .argv = argv, .lens = argl};
    redisReply *rep = NULL;
    enum redis_status st = redis_eval(r, cache_redis_lua_forget, (int)n + 4, &a, &rep, err, errlen);
    xfree(argv);
    xfree(argl);
    if (st != REDIS_ST_OK)
        return st;
    bool ok = rep->type == REDIS_REPLY_INTEGER && rep->integer >= 0;
    if (ok)
        *dropped += (size_t)rep->integer;
    freeReplyObject(rep);
    return ok ? REDIS_ST_OK : cache_redis_unexpected(r, "purge", err, errlen);
}

static enum redis_status cache_redis_purge_user(struct redis *r, const struct cache_redis_books *b,
                                                const char *tenant, const char *user,
                                                size_t *dropped, char *err, size_t errlen)
{
    char uset[CACHE_REDIS_KEY_MAX];
    cache_redis_user_set_name(r, tenant, user, uset);
    const char *argv[6] = {b->lru, b->size, b->total, b->owner, uset, CACHE_REDIS_BATCH_STR};
    struct redis_args a = {.argc = 6, .argv = argv};
    for (;;) {
        redisReply *rep = NULL;
        enum redis_status st = redis_eval(r, cache_redis_lua_purge_user, 5, &a, &rep, err, errlen);
        if (st != REDIS_ST_OK)
            return st;
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
            rep->element[0]->type != REDIS_REPLY_INTEGER ||
            rep->element[1]->type != REDIS_REPLY_INTEGER || rep->element[0]->integer < 0) {
            freeReplyObject(rep);
            return cache_redis_unexpected(r, "purge", err, errlen);
        }
        *dropped += (size_t)rep->element[0]->integer;
        bool done = rep->element[1]->integer <= 0;
        freeReplyObject(rep);
        if (done)
            return REDIS_ST_OK;
    }
}

/* One SCAN-like command's batch: the names in reply (every step-th element
 * of the array, for ZSCAN's member/score pairs) go to forget. */
static enum redis_status cache_redis_forget_batch(struct redis *r,
                                                  const struct cache_redis_books *b,
                                                  const redisReply *list, size_t step,
                                                  size_t *dropped, char *err, size_t errlen)
{
    size_t n = 0;
    const char **names = xcalloc(list->elements / step + 1, sizeof *names);
    size_t *lens = xcalloc(list->elements / step + 1, sizeof *lens);
    for (size_t i = 0; i < list->elements; i += step) {
        const redisReply *e = list->element[i];
        if (e->type == REDIS_REPLY_STRING) {
            names[n] = e->str;
            lens[n++] = e->len;
        }
    }
    enum redis_status st = cache_redis_forget(r, b, names, lens, n, dropped, err, errlen);
    xfree(names);
    xfree(lens);
    return st;
}

/* Runs SCAN (key NULL) or ZSCAN key with MATCH pattern to the end,
 * forgetting every name it lists. A name listed twice is forgotten once:
 * forget() finds nothing the second time. */
static enum redis_status cache_redis_scan(struct redis *r, const struct cache_redis_books *b,
                                          const char *key, const char *pattern, size_t *dropped,
                                          char *err, size_t errlen)
{
    char cursor[32] = "0";
    do {
        const char *argv[7];
        int argc = 0;
        argv[argc++] = key != NULL ? "ZSCAN" : "SCAN";
        if (key != NULL)
            argv[argc++] = key;
        argv[argc++] = cursor;
        argv[argc++] = "MATCH";
        argv[argc++] = pattern;
        argv[argc++] = "COUNT";
        argv[argc++] = CACHE_REDIS_BATCH_STR;
        struct redis_args a = {.argc = argc, .argv = argv};
        redisReply *rep = NULL;
        enum redis_status st = redis_command(r, &a, &rep, err, errlen);
        if (st != REDIS_ST_OK)
            return st;
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
            rep->element[0]->type != REDIS_REPLY_STRING || rep->element[0]->len >= sizeof cursor ||
            rep->element[1]->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(rep);
            return cache_redis_unexpected(r, "purge", err, errlen);
        }
        memcpy(cursor, rep->element[0]->str, rep->element[0]->len);
        cursor[rep->element[0]->len] = '\0';
        st = cache_redis_forget_batch(r, b, rep->element[1], key != NULL ? 2 : 1, dropped, err,
                                      errlen);
        freeReplyObject(rep);
        if (st != REDIS_ST_OK)
            return st;
    } while (strcmp(cursor, "0") != 0);
    return REDIS_ST_OK;
}

enum redis_status cache_redis_purge(struct redis *r, const char *tenant, const char *user,
                                    size_t *dropped, char *err, size_t errlen)
{
    struct cache_redis_books b;
    cache_redis_books(r, &b);
    if (user != NULL)
        return cache_redis_purge_user(r, &b, tenant, user, dropped, err, errlen);
    char pattern[CACHE_REDIS_KEY_MAX];
    cache_redis_name(pattern, redis_prefix(r), tenant, ":", "*");
    /* The keys first (entries, also unlisted ones, and the user sets), then
     * what the bookkeeping still lists of entries that expired meanwhile. */
    enum redis_status st = cache_redis_scan(r, &b, NULL, pattern, dropped, err, errlen);
    if (st == REDIS_ST_OK)
        st = cache_redis_scan(r, &b, b.lru, pattern, dropped, err, errlen);
    return st;
}
