/*
 * Tests of the response cache shared on Redis (cache.h's cache_lookup,
 * cache_store and cache_purge over client/cache_redis.c; issue 12) against
 * a real redis-server from redis_harness.h: a second struct cache (a second
 * process's worth) gets the first one's answer whole; tenants stay apart;
 * the TTL is set on the server; the byte bound evicts least recently used
 * entries, also ones already gone; malformed blobs are misses and deleted;
 * purges of a user and of a tenant remove exactly theirs; a killed server
 * means the in-process cache, with a reason naming the server (logged once
 * each way), until it is back; oversized entries never reach the server, large ones cross whole;
 * ids that cannot be key parts never reach it either; concurrent stores keep
 * the bookkeeping consistent. Expiry is checked by PTTL, never waited for:
 * nothing sleeps or measures time.
 */
#include "redis_harness.h"

#include <pthread.h>
#include <sodium.h>

#include "client/cache.h"
#include "client/cache_redis.h"
#include "net/redis.h"
#include "util/log.h"

#define TTL_MS   60000
#define BIG_MAX  (1u << 20)
#define N_THREAD 4

struct fx {
    struct redis_server *s;
    redisContext *raw; /* the test's own look at the server */
};

static int group_setup(void **state)
{
    (void)state;
    return sodium_init() < 0 ? -1 : 0;
}

static int fx_setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->s = redis_start();
    f->raw = redisConnect("127.0.0.1", f->s->port);
    assert_true(f->raw != NULL && f->raw->err == 0);
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    if (f->raw != NULL)
        redisFree(f->raw);
    redis_stop(f->s);
    free(f);
    return 0;
}

/* A cache on its own connection: what one process has. */
struct proc {
    struct redis *r;
    struct cache *c;
};

static struct proc proc_new(const struct fx *f, size_t max_bytes, int64_t ttl_ms)
{
    struct proc p = {.r = redis_client(f->s, 0), .c = cache_new(max_bytes, ttl_ms)};
    cache_use_redis(p.c, p.r);
    return p;
}

static void proc_free(struct proc *p)
{
    cache_free(p->c);
    redis_free(p->r);
}

/* A raw command's reply (the test frees it). */
static redisReply *raw(struct fx *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(f->raw, fmt, ap);
    va_end(ap);
    assert_non_null(rep);
    return rep;
}

static long long raw_int(struct fx *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(f->raw, fmt, ap);
    va_end(ap);
    assert_non_null(rep);
    long long v = 0;
    if (rep->type == REDIS_REPLY_INTEGER)
        v = rep->integer;
    else if (rep->type == REDIS_REPLY_STRING)
        v = strtoll(rep->str, NULL, 10);
    else if (rep->type != REDIS_REPLY_NIL)
        fail_msg("unexpected reply type %d", rep->type);
    freeReplyObject(rep);
    return v;
}

static void test_key(unsigned n, uint8_t key[CACHE_KEY_BYTES])
{
    char s[32];
    int len = snprintf(s, sizeof s, "request-%u", n);
    cache_key("acme", "openai", "gpt-x", s, (size_t)len, key);
}

/* The key name an entry of tenant gets with the test's prefix. */
static void entry_name(struct proc *p, const char *tenant, const uint8_t key[CACHE_KEY_BYTES],
                       char out[CACHE_REDIS_KEY_MAX])
{
    cache_redis_key_name(p->r, tenant, key, out);
    assert_true(strncmp(out, "t:cache:", 8) == 0);
}

/* Stores text as one piece for tenant/user; asserts it went to Redis. */
static void store(struct proc *p, const char *tenant, const char *user,
                  const uint8_t key[CACHE_KEY_BYTES], const char *text)
{
    size_t len = strlen(text);
    struct cache_meta meta = {.model = "m", .finish_reason = "stop"};
    struct cache_owner o = {.tenant = tenant, .user = user};
    struct cache_fallback fb;
    assert_int_equal(cache_store(p->c, &o, key, text, len, &len, 1, &meta, 1000, &fb),
                     CACHE_PUT_STORED);
    if (fb.fell_back)
        fail_msg("fell back: %s", fb.reason);
}

static bool lookup(struct proc *p, const char *tenant, const uint8_t key[CACHE_KEY_BYTES])
{
    struct cache_owner o = {.tenant = tenant, .user = "alice"};
    struct cache_fallback fb;
    struct cache_view v;
    bool hit = cache_lookup(p->c, &o, key, 1000, &v, &fb);
    if (fb.fell_back)
        fail_msg("fell back: %s", fb.reason);
    assert_int_equal(hit, v.entry != NULL);
    cache_view_release(&v);
    return hit;
}

static long long count_keys(struct fx *f, const char *pattern)
{
    redisReply *rep = raw(f, "KEYS %s", pattern);
    assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
    long long n = (long long)rep->elements;
    freeReplyObject(rep);
    return n;
}

/* The charge of a one-piece "m"/"stop" entry of tenant with text_len bytes. */
static size_t charge_of(struct proc *p, const char *tenant, size_t text_len)
{
    return cache_redis_charge(p->r, tenant, cache_redis_head_bytes(1, 1, 4), text_len);
}

/* --- sharing --------------------------------------------------------------- */

/* What one cache stores, another one on its own connection finds whole:
 * the same deltas, model, finish reason and usage. */
static void a_second_process_gets_the_first_ones_answer(void **state)
{
    struct fx *f = *state;
    struct proc a = proc_new(f, BIG_MAX, TTL_MS), b = proc_new(f, BIG_MAX, TTL_MS);
    const char *pieces[] = {"Hel", "lo, ", "", "w\xc3\xb6rld", "!"};
    size_t lens[5], off = 0;
    char text[64];
    for (size_t i = 0; i < 5; i++) {
        lens[i] = strlen(pieces[i]);
        memcpy(text + off, pieces[i], lens[i]);
        off += lens[i];
    }
    uint8_t k[CACHE_KEY_BYTES];
    test_key(1, k);
    struct cache_meta meta = {
        .model = "gpt-x-2024",
        .finish_reason = "length",
        .usage = {.prompt_tokens = 120,
                  .completion_tokens = 5,
                  .cached_tokens = 64,
                  .estimated = true},
    };
    struct cache_owner o = {.tenant = "acme", .user = "alice"};
    struct cache_fallback fb = {.fell_back = true};
    assert_int_equal(cache_store(a.c, &o, k, text, off, lens, 5, &meta, 5000, &fb),
                     CACHE_PUT_STORED);
    assert_false(fb.fell_back);

    struct cache_view v;
    fb.fell_back = true;
    assert_true(cache_lookup(b.c, &o, k, 7000, &v, &fb));
    assert_false(fb.fell_back);
    assert_string_equal(fb.reason, "");
    assert_int_equal(v.n_pieces, 5);
    assert_int_equal(v.text_len, off);
    assert_memory_equal(v.text, text, off);
    assert_int_equal(v.text[off], '\0');
    for (size_t i = 0; i < 5; i++) {
        size_t len;
        const char *piece = cache_view_piece(&v, i, &len);
        assert_int_equal(len, lens[i]);
        assert_memory_equal(piece, pieces[i], len);
    }
    assert_string_equal(v.model, "gpt-x-2024");
    assert_string_equal(v.finish_reason, "length");
    assert_int_equal(v.usage.prompt_tokens, 120);
    assert_int_equal(v.usage.completion_tokens, 5);
    assert_int_equal(v.usage.cached_tokens, 64);
    assert_true(v.usage.estimated);
    assert_true(v.created_at_ms <= 7000); /* now minus its age on the server */
    /* the view is private: the process that read it can go first */
    proc_free(&b);
    assert_string_equal(v.model, "gpt-x-2024");
    cache_view_release(&v);

    /* the local tables stayed empty; the counters saw the calls */
    struct cache_stats st;
    cache_stats(a.c, &st);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.inserts, 1);
    b = proc_new(f, BIG_MAX, TTL_MS);
    uint8_t other[CACHE_KEY_BYTES];
    test_key(2, other);
    assert_false(lookup(&b, "acme", other));
    assert_true(lookup(&b, "acme", k));
    cache_stats(b.c, &st);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.misses, 1);
    assert_int_equal(st.entries, 0);

    /* the documented key layout */
    char name[CACHE_REDIS_KEY_MAX];
    entry_name(&a, "acme", k, name);
    char want[CACHE_REDIS_KEY_MAX] = "t:cache:acme:";
    for (size_t i = 0; i < CACHE_KEY_BYTES; i++)
        snprintf(want + strlen(want), sizeof want - strlen(want), "%02x", k[i]);
    assert_string_equal(name, want);
    assert_int_equal(raw_int(f, "EXISTS %s", name), 1);
    /* the blob parses, and the store script wrote the server's time in it */
    redisReply *blob = raw(f, "GET %s", name);
    assert_int_equal(blob->type, REDIS_REPLY_STRING);
    struct cache_redis_record rec;
    assert_true(cache_redis_decode(blob->str, blob->len, k, &rec));
    assert_true(rec.born_ms > 1600000000000LL);
    assert_int_equal(rec.text_len, off);
    freeReplyObject(blob);
    assert_int_equal(raw_int(f, "SISMEMBER t:cache:acme:u:alice %s", name), 1);
    assert_int_equal(raw_int(f, "ZCARD t:cache:lru"), 1);
    size_t charge = cache_redis_charge(a.r, "acme", cache_redis_head_bytes(5, 10, 6), off);
    assert_int_equal(raw_int(f, "HGET t:cache:size %s", name), (long long)charge);
    assert_int_equal(raw_int(f, "GET t:cache:bytes"), (long long)charge);
    proc_free(&a);
    proc_free(&b);
}

/* The same key bytes under another tenant are another entry. */
static void tenants_are_isolated(void **state)
{
    struct fx *f = *state;
    struct proc p = proc_new(f, BIG_MAX, TTL_MS);
    uint8_t k[CACHE_KEY_BYTES];
    test_key(1, k);
    store(&p, "acme", "alice", k, "acme's answer");
    assert_false(lookup(&p, "globex", k));
    assert_true(lookup(&p, "acme", k));
    char name[CACHE_REDIS_KEY_MAX];
    entry_name(&p, "globex", k, name);
    assert_int_equal(raw_int(f, "EXISTS %s", name), 0);
    /* an id that could not be a key part (a glob, a ':') never reaches the
     * server: the in-process cache serves, and says why */
    struct cache_owner bad = {.tenant = "ac*me", .user = "alice"};
    struct cache_fallback fb;
    struct cache_view v;
    assert_false(cache_lookup(p.c, &bad, k, 0, &v, &fb));
    assert_true(fb.fell_back);
    assert_non_null(strstr(fb.reason, "tenant id"));
    size_t len = 1;
    bad = (struct cache_owner){.tenant = "acme", .user = "al:ice"};
    assert_int_equal(cache_store(p.c, &bad, k, "x", len, &len, 1, NULL, 0, &fb), CACHE_PUT_STORED);
    assert_true(fb.fell_back);
    assert_non_null(strstr(fb.reason, "user id"));
    assert_int_equal(count_keys(f, "t:cache:ac\\*me*"), 0);
    assert_int_equal(count_keys(f, "*al:ice*"), 0);
    proc_free(&p);
}

/* The TTL is the server's: PX on the entry; 0 means none. The user set
 * has none (its members leave with their entries). */
static void the_ttl_is_set_on_the_server(void **state)
{
    struct fx *f = *state;
    struct proc p = proc_new(f, BIG_MAX, TTL_MS), forever = proc_new(f, BIG_MAX, 0);
    uint8_t k1[CACHE_KEY_BYTES], k2[CACHE_KEY_BYTES];
    test_key(1, k1);
    test_key(2, k2);
    store(&p, "acme", "alice", k1, "expires");
    store(&forever, "acme", "alice", k2, "stays");
    char n1[CACHE_REDIS_KEY_MAX], n2[CACHE_REDIS_KEY_MAX];
    entry_name(&p, "acme", k1, n1);
    entry_name(&p, "acme", k2, n2);
    long long pttl = raw_int(f, "PTTL %s", n1);
    assert_true(pttl > 0 && pttl <= TTL_MS);
    assert_int_equal(raw_int(f, "PTTL %s", n2), -1);
    assert_int_equal(raw_int(f, "PTTL t:cache:acme:u:alice"), -1);
    /* storing again renews the TTL; storing without one removes it */
    store(&forever, "acme", "alice", k1, "now stays");
    assert_int_equal(raw_int(f, "PTTL %s", n1), -1);
    store(&p, "acme", "alice", k1, "expires again");
    pttl = raw_int(f, "PTTL %s", n1);
    assert_true(pttl > 0 && pttl <= TTL_MS);
    proc_free(&p);
    proc_free(&forever);
}

/* --- the size bound ---------------------------------------------------------- */

static long long server_total(struct fx *f)
{
    return raw_int(f, "GET t:cache:bytes");
}

/* The sum of the charges the server lists: what the total must equal. */
static long long listed_total(struct fx *f)
{
    redisReply *rep = raw(f, "HVALS t:cache:size");
    assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
    long long sum = 0;
    for (size_t i = 0; i < rep->elements; i++)
        sum += strtoll(rep->element[i]->str, NULL, 10);
    freeReplyObject(rep);
    return sum;
}

/* max_bytes bounds the entries on the server: after many puts the total
 * stays within it, the least recently used are gone (a hit counts as a
 * use), the newest are there. */
static void the_size_bound_evicts_least_recently_used(void **state)
{
    struct fx *f = *state;
    struct proc tmp = proc_new(f, BIG_MAX, TTL_MS);
    size_t one = charge_of(&tmp, "acme", 10); /* "answer-NNN" */
    proc_free(&tmp);
    size_t max = 3 * one + one / 2;
    struct proc p = proc_new(f, max, TTL_MS);
    uint8_t k[12][CACHE_KEY_BYTES];
    char text[16];
    for (unsigned i = 0; i < 12; i++)
        test_key(i, k[i]);
    for (unsigned i = 0; i < 3; i++) {
        snprintf(text, sizeof text, "answer-%03u", i);
        store(&p, "acme", "alice", k[i], text);
    }
    assert_true(lookup(&p, "acme", k[0])); /* 0 is now used after 1 and 2 */
    store(&p, "acme", "alice", k[3], "answer-003");
    assert_true(lookup(&p, "acme", k[0]));
    assert_false(lookup(&p, "acme", k[1]));
    assert_true(lookup(&p, "acme", k[2]));
    assert_true(lookup(&p, "acme", k[3]));
    for (unsigned i = 4; i < 12; i++) {
        snprintf(text, sizeof text, "answer-%03u", i);
        store(&p, "acme", "alice", k[i], text);
        assert_true(server_total(f) <= (long long)max);
    }
    for (unsigned i = 0; i < 9; i++)
        assert_false(lookup(&p, "acme", k[i]));
    for (unsigned i = 9; i < 12; i++)
        assert_true(lookup(&p, "acme", k[i]));
    assert_int_equal(server_total(f), 3 * (long long)one);
    assert_int_equal(listed_total(f), 3 * (long long)one);
    assert_int_equal(raw_int(f, "ZCARD t:cache:lru"), 3);
    assert_int_equal(raw_int(f, "HLEN t:cache:owner"), 3);
    /* evicted entries left alice's set too */
    assert_int_equal(raw_int(f, "SCARD t:cache:acme:u:alice"), 3);
    struct cache_stats st;
    cache_stats(p.c, &st);
    assert_int_equal(st.evictions, 9);
    assert_int_equal(st.inserts, 12);
    proc_free(&p);
}

/* An entry that is gone when its turn to be evicted comes (expired by TTL;
 * deleted here, which looks the same to the server) just gives its charge
 * back. */
static void eviction_tolerates_entries_already_gone(void **state)
{
    struct fx *f = *state;
    struct proc tmp = proc_new(f, BIG_MAX, TTL_MS);
    size_t one = charge_of(&tmp, "acme", 10);
    proc_free(&tmp);
    struct proc p = proc_new(f, 2 * one, TTL_MS);
    uint8_t k[3][CACHE_KEY_BYTES];
    for (unsigned i = 0; i < 3; i++)
        test_key(i, k[i]);
    store(&p, "acme", "alice", k[0], "answer-000");
    store(&p, "acme", "alice", k[1], "answer-001");
    char n0[CACHE_REDIS_KEY_MAX];
    entry_name(&p, "acme", k[0], n0);
    assert_int_equal(raw_int(f, "DEL %s", n0), 1);
    assert_int_equal(server_total(f), 2 * (long long)one); /* still charged */
    store(&p, "acme", "alice", k[2], "answer-002");
    assert_int_equal(server_total(f), 2 * (long long)one);
    assert_int_equal(listed_total(f), 2 * (long long)one);
    assert_int_equal(raw_int(f, "ZSCORE t:cache:lru %s", n0), 0);
    assert_true(lookup(&p, "acme", k[1]));
    assert_true(lookup(&p, "acme", k[2]));
    proc_free(&p);
}

/* Storing a key again replaces the entry and its charge, and moves it to
 * the new user's set. */
static void a_replaced_entry_is_charged_once(void **state)
{
    struct fx *f = *state;
    struct proc p = proc_new(f, BIG_MAX, TTL_MS);
    uint8_t k[CACHE_KEY_BYTES];
    test_key(1, k);
    store(&p, "acme", "alice", k, "first answer");
    store(&p, "acme", "bob", k, "second");
    assert_int_equal(server_total(f), (long long)charge_of(&p, "acme", 6));
    assert_int_equal(raw_int(f, "EXISTS t:cache:acme:u:alice"), 0);
    assert_int_equal(raw_int(f, "SCARD t:cache:acme:u:bob"), 1);
    struct cache_owner o = {.tenant = "acme"};
    struct cache_view v;
    assert_true(cache_lookup(p.c, &o, k, 0, &v, NULL));
    assert_string_equal(v.text, "second");
    cache_view_release(&v);
    proc_free(&p);
}

/* An entry larger than max_bytes is refused before anything is sent. */
static void too_big_is_not_stored_on_the_server(void **state)
{
    struct fx *f = *state;
    struct proc p = proc_new(f, 200, TTL_MS);
    char text[300];
    memset(text, 'x', sizeof text);
    size_t len = sizeof text;
    uint8_t k[CACHE_KEY_BYTES];
    test_key(1, k);
    struct cache_owner o = {.tenant = "acme", .user = "alice"};
    struct cache_fallback fb;
    assert_int_equal(cache_store(p.c, &o, k, text, len, &len, 1, NULL, 0, &fb), CACHE_PUT_TOO_BIG);
    assert_false(fb.fell_back);
    assert_int_equal(raw_int(f, "DBSIZE"), 0);
    struct cache_stats st;
    cache_stats(p.c, &st);
    assert_int_equal(st.rejected, 1);
    assert_int_equal(st.entries, 0);
    /* and piece lengths that do not add up are refused too */
    size_t wrong = len - 1;
    assert_int_equal(cache_store(p.c, &o, k, text, len, &wrong, 1, NULL, 0, &fb),
                     CACHE_PUT_INVALID);
    assert_int_equal(raw_int(f, "DBSIZE"), 0);
    proc_free(&p);
}

/* A large reply in many pieces crosses whole (CACHE_MAX_BYTES may be
 * tens of MiB). */
static void a_large_reply_crosses_whole(void **state)
{
    struct fx *f = *state;
    enum { PIECES = 4096, PIECE = 1024 };
    size_t total = (size_t)PIECES * PIECE;
    char *text = malloc(total);
    size_t *lens = malloc(PIECES * sizeof *lens);
    assert_true(text != NULL && lens != NULL);
    for (size_t i = 0; i < total; i++)
        text[i] = (char)('a' + (i * 7 + i / 13) % 26);
    for (size_t i = 0; i < PIECES; i++)
        lens[i] = PIECE;
    lens[0] = 0; /* an empty delta, made up by the next */
    lens[1] = 2 * PIECE;
    struct proc a = proc_new(f, 64u << 20, TTL_MS), b = proc_new(f, 64u << 20, TTL_MS);
    uint8_t k[CACHE_KEY_BYTES];
    test_key(1, k);
    struct cache_owner o = {.tenant = "acme", .user = "alice"};
    struct cache_fallback fb;
    assert_int_equal(cache_store(a.c, &o, k, text, total, lens, PIECES, NULL, 0, &fb),
                     CACHE_PUT_STORED);
    assert_false(fb.fell_back);
    struct cache_view v;
    assert_true(cache_lookup(b.c, &o, k, 0, &v, &fb));
    assert_int_equal(v.text_len, total);
    assert_memory_equal(v.text, text, total);
    assert_int_equal(v.n_pieces, PIECES);
    size_t off = 0;
    for (size_t i = 0; i < PIECES; i++) {
        size_t len;
        const char *piece = cache_view_piece(&v, i, &len);
        assert_int_equal(len, lens[i]);
        assert_ptr_equal(piece, v.text + off);
        off += len;
    }
    assert_int_equal(v.usage.prompt_tokens, -1);
    cache_view_release(&v);
    free(text);
    free(lens);
    proc_free(&a);
    proc_free(&b);
}

/* --- malformed blobs ------------------------------------------------------------ */

/* Puts value (len bytes) at name, as somebody else might. */
static void raw_set(struct fx *f, const char *name, const char *value, size_t len)
{
    redisReply *rep = raw(f, "SET %s %b", name, value, len);
    freeReplyObject(rep);
}

/* A lookup of k is a miss and the key is gone afterwards. */
static void assert_dropped(struct fx *f, struct proc *p, const uint8_t k[CACHE_KEY_BYTES],
                           const char *name)
{
    assert_false(lookup(p, "acme", k));
    assert_int_equal(raw_int(f, "EXISTS %s", name), 0);
}

/* Whatever sits at an entry's key, a blob that does not parse exactly is
 * a miss, never a crash, and is deleted with its bookkeeping. */
static void a_malformed_blob_is_a_miss_and_deleted(void **state)
{
    struct fx *f = *state;
    struct proc p = proc_new(f, BIG_MAX, TTL_MS);
    uint8_t k[CACHE_KEY_BYTES], k2[CACHE_KEY_BYTES];
    test_key(1, k);
    test_key(2, k2);
    char name[CACHE_REDIS_KEY_MAX], name2[CACHE_REDIS_KEY_MAX];
    entry_name(&p, "acme", k, name);
    entry_name(&p, "acme", k2, name2);

    /* a valid blob to take apart */
    store(&p, "acme", "alice", k, "a valid answer");
    redisReply *rep = raw(f, "GET %s", name);
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    size_t len = rep->len;
    char *good = malloc(len + 1);
    assert_non_null(good);
    memcpy(good, rep->str, len);
    freeReplyObject(rep);

    /* garbage over a tracked entry: deleted, its charge given back */
    raw_set(f, name, "garbage", 7);
    assert_dropped(f, &p, k, name);
    assert_int_equal(server_total(f), 0);
    assert_int_equal(raw_int(f, "ZCARD t:cache:lru"), 0);
    assert_int_equal(raw_int(f, "SCARD t:cache:acme:u:alice"), 0);

    raw_set(f, name, "", 0);
    assert_dropped(f, &p, k, name);
    /* every truncation of a valid blob, and one byte too many */
    for (size_t cut = 0; cut < len; cut += (cut < 100 ? 1 : 7)) {
        raw_set(f, name, good, cut);
        assert_dropped(f, &p, k, name);
    }
    char *longer = malloc(len + 1);
    assert_non_null(longer);
    memcpy(longer, good, len);
    longer[len] = 'x';
    raw_set(f, name, longer, len + 1);
    assert_dropped(f, &p, k, name);
    free(longer);
    /* the blob of k copied under k2's name */
    raw_set(f, name2, good, len);
    assert_dropped(f, &p, k2, name2);
    /* a version, flag or length byte out of place; a huge length */
    const size_t flips[] = {0, 9, 66, 70, 74, 78, 81};
    for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
        good[flips[i]] ^= 0x40;
        raw_set(f, name, good, len);
        assert_dropped(f, &p, k, name);
        good[flips[i]] ^= 0x40;
    }
    /* a piece end past the text (the one end sits after "m" and "stop") */
    good[82 + 1 + 4] = (char)0xff;
    raw_set(f, name, good, len);
    assert_dropped(f, &p, k, name);
    /* not a string at all */
    freeReplyObject(raw(f, "RPUSH %s a b", name));
    assert_dropped(f, &p, k, name);
    free(good);

    /* and the key works again afterwards */
    store(&p, "acme", "alice", k, "a valid answer");
    assert_true(lookup(&p, "acme", k));
    assert_int_equal(server_total(f), (long long)charge_of(&p, "acme", 14));
    proc_free(&p);
}

/* --- purge ------------------------------------------------------------------- */

/* purge of a user drops that user's entries of that tenant only; purge of
 * a tenant drops all of its entries (also ones only the bookkeeping still
 * lists) and not another tenant's; both clear the in-process table. */
static void purge_removes_exactly_the_users_then_the_tenants(void **state)
{
    struct fx *f = *state;
    struct proc p = proc_new(f, BIG_MAX, TTL_MS), other = proc_new(f, BIG_MAX, TTL_MS);
    uint8_t k[6][CACHE_KEY_BYTES];
    for (unsigned i = 0; i < 6; i++)
        test_key(i, k[i]);
    store(&p, "acme", "alice", k[0], "alice 0");
    store(&p, "acme", "alice", k[1], "alice 1");
    store(&p, "acme", "bob", k[2], "bob 2");
    store(&p, "acme", NULL, k[3], "nobody 3");
    store(&p, "globex", "alice", k[4], "globex alice 4");
    store(&p, "acme", "bob", k[5], "bob 5");
    /* bob's k[5] expired (deleted by hand: the server cannot tell) */
    char n5[CACHE_REDIS_KEY_MAX];
    entry_name(&p, "acme", k[5], n5);
    assert_int_equal(raw_int(f, "DEL %s", n5), 1);
    /* one entry in the in-process table */
    size_t one = 5;
    assert_int_equal(cache_put(p.c, k[0], "local", 5, &one, 1, NULL, 0), CACHE_PUT_STORED);

    size_t dropped = 99;
    char err[256] = "x";
    assert_int_equal(cache_purge(p.c, "acme", "alice", &dropped, err, sizeof err), 0);
    assert_string_equal(err, "");
    assert_int_equal(dropped, 2 + 1);
    assert_false(lookup(&other, "acme", k[0]));
    assert_false(lookup(&other, "acme", k[1]));
    assert_true(lookup(&other, "acme", k[2]));
    assert_true(lookup(&other, "acme", k[3]));
    assert_true(lookup(&other, "globex", k[4]));
    assert_int_equal(raw_int(f, "EXISTS t:cache:acme:u:alice"), 0);
    assert_int_equal(raw_int(f, "EXISTS t:cache:globex:u:alice"), 1);
    struct cache_stats st;
    cache_stats(p.c, &st);
    assert_int_equal(st.entries, 0);

    /* purging again finds nothing */
    assert_int_equal(cache_purge(p.c, "acme", "alice", &dropped, err, sizeof err), 0);
    assert_int_equal(dropped, 0);

    assert_int_equal(cache_purge(p.c, "acme", NULL, &dropped, err, sizeof err), 0);
    assert_int_equal(dropped, 2); /* k[2], k[3]; k[5] was already gone */
    assert_false(lookup(&other, "acme", k[2]));
    assert_false(lookup(&other, "acme", k[3]));
    assert_true(lookup(&other, "globex", k[4]));
    assert_int_equal(count_keys(f, "t:cache:acme:*"), 0);
    /* the bookkeeping lists globex's entry alone, and the total is its */
    assert_int_equal(raw_int(f, "ZCARD t:cache:lru"), 1);
    assert_int_equal(raw_int(f, "HLEN t:cache:size"), 1);
    assert_int_equal(raw_int(f, "HLEN t:cache:owner"), 1);
    assert_int_equal(server_total(f), (long long)charge_of(&p, "globex", 14));
    proc_free(&p);
    proc_free(&other);
}

/* A tenant purge goes through SCAN in batches: more entries than one batch. */
static void purge_of_a_large_tenant_takes_every_batch(void **state)
{
    struct fx *f = *state;
    struct proc p = proc_new(f, BIG_MAX, TTL_MS);
    enum { N = 700 };
    for (unsigned i = 0; i < N; i++) {
        uint8_t k[CACHE_KEY_BYTES];
        test_key(i, k);
        store(&p, "acme", i % 2 ? "alice" : "bob", k, "x");
    }
    uint8_t kg[CACHE_KEY_BYTES];
    test_key(N, kg);
    store(&p, "globex", "bob", kg, "y");
    size_t dropped = 0;
    char err[256];
    assert_int_equal(cache_purge(p.c, "acme", "alice", &dropped, err, sizeof err), 0);
    assert_int_equal(dropped, N / 2);
    assert_int_equal(cache_purge(p.c, "acme", NULL, &dropped, err, sizeof err), 0);
    assert_int_equal(dropped, N / 2);
    assert_int_equal(count_keys(f, "t:cache:acme:*"), 0);
    assert_int_equal(raw_int(f, "ZCARD t:cache:lru"), 1);
    assert_int_equal(server_total(f), (long long)charge_of(&p, "globex", 1));
    proc_free(&p);
}

/* --- Redis gone mid-run ------------------------------------------------------------ */

static void assert_names_server(const struct fx *f, const char *reason)
{
    char where[64];
    snprintf(where, sizeof where, "127.0.0.1:%d", f->s->port);
    if (strstr(reason, where) == NULL)
        fail_msg("\"%s\" does not name %s", reason, where);
}

/* With the server killed, lookups and stores use the in-process cache and
 * say so with a reason naming the server; the purge clears the table and
 * reports the failure. Once a server answers again (retry_ms 0: at the
 * next call), the shared cache is used again. */
/* How many lines of the log at path hold both needles. */
static int log_lines_with(const char *path, const char *a, const char *b)
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, fp) != NULL)
        n += strstr(line, a) != NULL && strstr(line, b) != NULL;
    fclose(fp);
    return n;
}

static void a_killed_server_falls_back_then_recovers(void **state)
{
    struct fx *f = *state;
    char *dir = tu_mkdtemp();
    char logpath[4096], lerr[256];
    snprintf(logpath, sizeof logpath, "%s/memchat.log", dir);
    assert_int_equal(log_open(logpath, LOG_INFO, lerr, sizeof lerr), 0);
    struct proc p = proc_new(f, BIG_MAX, TTL_MS);
    uint8_t k[CACHE_KEY_BYTES];
    test_key(1, k);
    store(&p, "acme", "alice", k, "shared");

    redis_kill(f->s);
    struct cache_owner o = {.tenant = "acme", .user = "alice"};
    struct cache_fallback fb;
    struct cache_view v;
    assert_false(cache_lookup(p.c, &o, k, 0, &v, &fb));
    assert_true(fb.fell_back);
    assert_names_server(f, fb.reason);
    assert_non_null(strstr(fb.reason, "using the in-process cache"));
    assert_null(strstr(fb.reason, "redis://"));
    size_t len = 5;
    memset(&fb, 0, sizeof fb);
    assert_int_equal(cache_store(p.c, &o, k, "local", len, &len, 1, NULL, 0, &fb),
                     CACHE_PUT_STORED);
    assert_true(fb.fell_back);
    assert_names_server(f, fb.reason);
    assert_true(cache_lookup(p.c, &o, k, 1, &v, &fb));
    assert_true(fb.fell_back);
    assert_string_equal(v.text, "local");
    cache_view_release(&v);
    struct cache_stats st;
    cache_stats(p.c, &st);
    assert_int_equal(st.entries, 1);

    size_t dropped = 0;
    char err[256] = "";
    assert_int_equal(cache_purge(p.c, "acme", NULL, &dropped, err, sizeof err), -1);
    assert_names_server(f, err);
    assert_int_equal(dropped, 1); /* the in-process part is cleared anyway */
    cache_stats(p.c, &st);
    assert_int_equal(st.entries, 0);

    redisFree(f->raw);
    f->s = redis_restart(f->s);
    f->raw = redisConnect("127.0.0.1", f->s->port);
    assert_true(f->raw != NULL && f->raw->err == 0);
    fb.fell_back = true;
    assert_false(cache_lookup(p.c, &o, k, 2, &v, &fb)); /* a new, empty server */
    assert_false(fb.fell_back);
    fb.fell_back = true;
    assert_int_equal(cache_store(p.c, &o, k, "again", len, &len, 1, NULL, 3, &fb),
                     CACHE_PUT_STORED);
    assert_false(fb.fell_back);
    struct proc q = proc_new(f, BIG_MAX, TTL_MS);
    assert_true(lookup(&q, "acme", k));
    assert_int_equal(cache_purge(p.c, "acme", "alice", &dropped, err, sizeof err), 0);
    assert_int_equal(dropped, 1);
    proc_free(&q);
    proc_free(&p);
    /* the log says it once each way, not at every call */
    log_close();
    assert_int_equal(log_lines_with(logpath, " warn ", "using the in-process cache"), 1);
    assert_int_equal(log_lines_with(logpath, " info ", "the cache is shared again"), 1);
    tu_rmtree(dir);
    free(dir);
}

/* --- many processes at once --------------------------------------------------------- */

struct worker {
    struct fx *f;
    size_t max;
    unsigned id;
    int failures; /* checked by the main thread: cmocka asserts are not thread-safe */
};

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    struct proc p = proc_new(w->f, w->max, TTL_MS);
    for (unsigned i = 0; i < 200; i++) {
        uint8_t k[CACHE_KEY_BYTES];
        test_key(w->id * 1000 + i % 50, k);
        char text[32];
        size_t len = (size_t)snprintf(text, sizeof text, "w%u-%u", w->id, i);
        struct cache_owner o = {.tenant = "acme", .user = w->id % 2 ? "alice" : "bob"};
        struct cache_fallback fb;
        if (cache_store(p.c, &o, k, text, len, &len, 1, NULL, 0, &fb) != CACHE_PUT_STORED ||
            fb.fell_back)
            w->failures++;
        struct cache_view v;
        (void)cache_lookup(p.c, &o, k, 0, &v, &fb);
        if (fb.fell_back)
            w->failures++;
        cache_view_release(&v);
    }
    proc_free(&p);
    return NULL;
}

/* Processes storing and looking up at once under a small bound leave the
 * bookkeeping consistent: the total is the sum of the listed charges, within
 * the bound, and lists, sizes and owners agree. */
static void concurrent_processes_keep_the_books_consistent(void **state)
{
    struct fx *f = *state;
    struct proc tmp = proc_new(f, BIG_MAX, TTL_MS);
    size_t max = 20 * charge_of(&tmp, "acme", 8);
    proc_free(&tmp);
    pthread_t th[N_THREAD];
    struct worker w[N_THREAD];
    for (unsigned i = 0; i < N_THREAD; i++) {
        w[i] = (struct worker){.f = f, .max = max, .id = i + 1};
        assert_int_equal(pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
    }
    for (unsigned i = 0; i < N_THREAD; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(w[i].failures, 0);
    }
    long long total = server_total(f);
    assert_true(total > 0 && total <= (long long)max);
    assert_int_equal(listed_total(f), total);
    long long n = raw_int(f, "ZCARD t:cache:lru");
    assert_int_equal(raw_int(f, "HLEN t:cache:size"), n);
    assert_int_equal(raw_int(f, "HLEN t:cache:owner"), n);
    assert_int_equal(count_keys(f, "t:cache:acme:????????????????????????????????????????????????"
                                   "????????????????"),
                     n);
    assert_int_equal(
        raw_int(f, "SCARD t:cache:acme:u:alice") + raw_int(f, "SCARD t:cache:acme:u:bob"), n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_second_process_gets_the_first_ones_answer, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(tenants_are_isolated, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(the_ttl_is_set_on_the_server, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(the_size_bound_evicts_least_recently_used, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(eviction_tolerates_entries_already_gone, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(a_replaced_entry_is_charged_once, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(too_big_is_not_stored_on_the_server, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(a_large_reply_crosses_whole, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(a_malformed_blob_is_a_miss_and_deleted, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(purge_removes_exactly_the_users_then_the_tenants, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(purge_of_a_large_tenant_takes_every_batch, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(a_killed_server_falls_back_then_recovers, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(concurrent_processes_keep_the_books_consistent, fx_setup,
                                        fx_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
