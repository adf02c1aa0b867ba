/*
 * Tests of the response cache (client/cache.h): the canonical request and
 * the key (determinism, sensitivity to every part, length prefixes, tenant
 * isolation), the policy, and the store (TTL with an explicit clock, LRU
 * eviction by bytes, oversized entries, replayed deltas, counters, and
 * concurrent use under a small budget), the calls that share the cache on
 * Redis when none is set (the plain in-process calls), and the blob the
 * entries are stored as there (round trip, and every malformation refused;
 * tests/integration/test_redis_cache.c has the server). Every clock is a
 * now_ms argument: nothing sleeps.
 */
#include "testutil.h"

#include <cJSON.h>
#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "client/cache.h"
#include "client/cache_redis.h"
#include "util/alloc.h"

static int group_setup(void **state)
{
    (void)state;
    /* The engine's mc_global_init does this in the program. */
    return sodium_init() < 0 ? -1 : 0;
}

/* A uniformly random-looking key derived from n (as real keys are). */
static void test_key(unsigned n, uint8_t key[CACHE_KEY_BYTES])
{
    char s[32];
    int len = snprintf(s, sizeof s, "key-%u", n);
    cache_key("t", "p", "m", s, (size_t)len, key);
}

static size_t test_put_text(struct cache *c, const uint8_t key[CACHE_KEY_BYTES], const char *text,
                            int64_t now_ms)
{
    size_t len = strlen(text);
    struct cache_meta meta = {.model = "m", .finish_reason = "stop"};
    assert_int_equal(cache_put(c, key, text, len, &len, 1, &meta, now_ms), CACHE_PUT_STORED);
    return cache_entry_bytes(len, 1, "m", "stop");
}

static bool test_hit(struct cache *c, const uint8_t key[CACHE_KEY_BYTES], int64_t now_ms)
{
    struct cache_view v;
    bool hit = cache_get(c, key, now_ms, &v);
    cache_view_release(&v);
    return hit;
}

static struct llm_request test_request(const struct llm_message *msgs, size_t n)
{
    return (struct llm_request){
        .model = "gpt-x",
        .messages = msgs,
        .n_messages = n,
        .temperature = 0.0,
        .max_tokens = 16,
    };
}

/* The canonical text of req (+ extra); the test frees it with xfree. */
static char *test_canonical(const struct llm_request *req, const cJSON *extra)
{
    size_t len = 0;
    char *s = cache_canonical_request(req, extra, &len);
    assert_non_null(s);
    assert_int_equal(len, strlen(s));
    return s;
}

static void test_key_of(const char *tenant, const char *canonical, uint8_t key[CACHE_KEY_BYTES])
{
    cache_key(tenant, "openai", "gpt-x", canonical, strlen(canonical), key);
}

/* --- key --------------------------------------------------------------- */

/* The key is the documented BLAKE2b-256 of the tag and the length-prefixed
 * parts, recomputed here independently, and the same on every call. */
static void key_is_blake2b_of_the_documented_encoding(void **state)
{
    (void)state;
    uint8_t a[CACHE_KEY_BYTES], b[CACHE_KEY_BYTES], want[CACHE_KEY_BYTES];
    cache_key("acme", "openai", "gpt-x", "{}", 2, a);
    cache_key("acme", "openai", "gpt-x", "{}", 2, b);
    assert_memory_equal(a, b, CACHE_KEY_BYTES);

    unsigned char enc[128];
    size_t n = 0;
    memcpy(enc, "memchat.cache.v1", 16);
    n = 16;
    const char *parts[] = {"acme", "openai", "gpt-x", "{}"};
    for (size_t i = 0; i < 4; i++) {
        size_t len = strlen(parts[i]);
        memset(enc + n, 0, 8);
        enc[n] = (unsigned char)len; /* little-endian; every length < 256 */
        n += 8;
        memcpy(enc + n, parts[i], len);
        n += len;
    }
    crypto_generichash(want, sizeof want, enc, n, NULL, 0);
    assert_memory_equal(a, want, CACHE_KEY_BYTES);
}

/* Changing any one part (tenant, provider, model, canonical request)
 * changes the key. */
static void every_part_of_the_key_changes_it(void **state)
{
    (void)state;
    uint8_t base[CACHE_KEY_BYTES], k[CACHE_KEY_BYTES];
    cache_key("acme", "openai", "gpt-x", "{\"a\":1}", 7, base);
    cache_key("acmf", "openai", "gpt-x", "{\"a\":1}", 7, k);
    assert_memory_not_equal(base, k, CACHE_KEY_BYTES);
    cache_key("acme", "anthropic", "gpt-x", "{\"a\":1}", 7, k);
    assert_memory_not_equal(base, k, CACHE_KEY_BYTES);
    cache_key("acme", "openai", "gpt-y", "{\"a\":1}", 7, k);
    assert_memory_not_equal(base, k, CACHE_KEY_BYTES);
    cache_key("acme", "openai", "gpt-x", "{\"a\":2}", 7, k);
    assert_memory_not_equal(base, k, CACHE_KEY_BYTES);
    /* canonical_len counts: a prefix of the same bytes is another request */
    cache_key("acme", "openai", "gpt-x", "{\"a\":1}", 6, k);
    assert_memory_not_equal(base, k, CACHE_KEY_BYTES);
}

/* Moving bytes across a part boundary changes the key: "ab"+"c" is not
 * "a"+"bc", at every boundary. */
static void length_prefixes_keep_part_boundaries_apart(void **state)
{
    (void)state;
    uint8_t x[CACHE_KEY_BYTES], y[CACHE_KEY_BYTES];
    cache_key("ab", "c", "m", "r", 1, x);
    cache_key("a", "bc", "m", "r", 1, y);
    assert_memory_not_equal(x, y, CACHE_KEY_BYTES);
    cache_key("t", "pm", "", "r", 1, x);
    cache_key("t", "p", "m", "r", 1, y);
    assert_memory_not_equal(x, y, CACHE_KEY_BYTES);
    cache_key("t", "p", "mr", "", 0, x);
    cache_key("t", "p", "m", "r", 1, y);
    assert_memory_not_equal(x, y, CACHE_KEY_BYTES);
    /* a tenant name ending in a length-like byte sequence cannot fake one */
    cache_key("t\x01", "p", "m", "r", 1, x);
    cache_key("t", "\x01p", "m", "r", 1, y);
    assert_memory_not_equal(x, y, CACHE_KEY_BYTES);
}

/* key_prefix is the first 8 key bytes in lowercase hex (checked against
 * libsodium's own encoder). */
static void key_prefix_is_the_first_eight_bytes_in_hex(void **state)
{
    (void)state;
    uint8_t key[CACHE_KEY_BYTES];
    for (int i = 0; i < CACHE_KEY_BYTES; i++)
        key[i] = (uint8_t)(0xf0 + i * 7);
    char got[CACHE_KEY_PREFIX_SIZE], want[17];
    memset(got, 'x', sizeof got);
    cache_key_prefix(key, got);
    sodium_bin2hex(want, sizeof want, key, 8);
    assert_string_equal(got, want);
    assert_int_equal(strlen(got), 16);
}

/* --- canonical request ---------------------------------------------------- */

/* The canonical form has the documented fixed key order and no whitespace. */
static void canonical_request_has_fixed_order_and_no_whitespace(void **state)
{
    (void)state;
    struct llm_message msgs[] = {{.role = "system", .content = "S"},
                                 {.role = "user", .content = "hi"}};
    struct llm_request req = test_request(msgs, 2);
    char *s = test_canonical(&req, NULL);
    assert_string_equal(s, "{\"model\":\"gpt-x\",\"messages\":[{\"role\":\"system\",\"content\":"
                           "\"S\"},{\"role\":\"user\",\"content\":\"hi\"}],\"recalled\":[],"
                           "\"temperature\":0,\"max_tokens\":16,\"extra\":null}");
    xfree(s);
}

/* Extra settings built with their keys in another order, at any depth,
 * give the same canonical text (keys sorted, arrays kept in order), and the
 * caller's object is left as it was. */
static void canonical_request_is_stable_under_key_order(void **state)
{
    (void)state;
    struct llm_message msgs[] = {{.role = "user", .content = "hi"}};
    struct llm_request req = test_request(msgs, 1);
    cJSON *x = cJSON_Parse("{\"tools\":[{\"name\":\"a\",\"params\":{\"y\":1,\"x\":2}}],"
                           "\"stop\":[\"\\n\"],\"format\":\"json\"}");
    cJSON *y = cJSON_Parse("{\"format\":\"json\",\"stop\":[\"\\n\"],"
                           "\"tools\":[{\"params\":{\"x\":2,\"y\":1},\"name\":\"a\"}]}");
    assert_non_null(x);
    assert_non_null(y);
    char *before = cJSON_PrintUnformatted(x);
    char *sx = test_canonical(&req, x);
    char *sy = test_canonical(&req, y);
    assert_string_equal(sx, sy);
    assert_non_null(strstr(sx, "\"extra\":{\"format\":\"json\",\"stop\":[\"\\n\"],"
                               "\"tools\":[{\"name\":\"a\",\"params\":{\"x\":2,\"y\":1}}]}}"));
    char *after = cJSON_PrintUnformatted(x);
    assert_string_equal(before, after);

    /* array order is meaning, not noise */
    cJSON *z = cJSON_Parse("{\"format\":\"json\",\"stop\":[\"\\n\"],"
                           "\"tools\":[{\"params\":{\"y\":1,\"x\":2},\"name\":\"a\"}],"
                           "\"order\":[1,2]}");
    cJSON *w = cJSON_Parse("{\"format\":\"json\",\"stop\":[\"\\n\"],"
                           "\"tools\":[{\"params\":{\"y\":1,\"x\":2},\"name\":\"a\"}],"
                           "\"order\":[2,1]}");
    char *sz = test_canonical(&req, z);
    char *sw = test_canonical(&req, w);
    assert_string_not_equal(sz, sw);
    cJSON_free(before);
    cJSON_free(after);
    xfree(sx);
    xfree(sy);
    xfree(sz);
    xfree(sw);
    cJSON_Delete(x);
    cJSON_Delete(y);
    cJSON_Delete(z);
    cJSON_Delete(w);
}

/* Each thing that decides the reply changes the canonical text: model,
 * a role, a content, message order, temperature (unset vs 0), max_tokens,
 * recalled texts, extra; no_stream does not. */
static void canonical_request_changes_with_everything_that_decides_the_reply(void **state)
{
    (void)state;
    struct llm_message msgs[] = {{.role = "system", .content = "S"},
                                 {.role = "user", .content = "hi"}};
    struct llm_message swapped[] = {{.role = "user", .content = "hi"},
                                    {.role = "system", .content = "S"}};
    struct llm_message role[] = {{.role = "system", .content = "S"},
                                 {.role = "assistant", .content = "hi"}};
    struct llm_message content[] = {{.role = "system", .content = "S"},
                                    {.role = "user", .content = "hi!"}};
    const char *mem[] = {"likes tea"};
    struct llm_request base = test_request(msgs, 2);
    char *b = test_canonical(&base, NULL);

    struct llm_request v[8];
    for (size_t i = 0; i < 8; i++)
        v[i] = base;
    v[0].model = "gpt-y";
    v[1].messages = swapped;
    v[2].messages = role;
    v[3].messages = content;
    v[4].temperature = NAN;
    v[5].max_tokens = 17;
    v[6].recalled = mem;
    v[6].n_recalled = 1;
    v[7].n_messages = 1;
    for (size_t i = 0; i < 8; i++) {
        char *s = test_canonical(&v[i], NULL);
        assert_string_not_equal(s, b);
        xfree(s);
    }
    cJSON *extra = cJSON_CreateObject();
    char *s = test_canonical(&base, extra);
    assert_string_not_equal(s, b);
    xfree(s);
    cJSON_Delete(extra);

    struct llm_request same = base;
    same.no_stream = true;
    same.temperature = -0.0;
    s = test_canonical(&same, NULL);
    assert_string_equal(s, b);
    xfree(s);
    xfree(b);
}

/* Recalled memories travel in the system message; another memory there
 * gives another key, so a turn never gets an answer built on memories it
 * did not recall. */
static void recalled_memory_text_changes_the_key(void **state)
{
    (void)state;
    struct llm_message a[] = {
        {.role = "system", .content = "You help.\n<recalled>likes tea</recalled>"},
        {.role = "user", .content = "what do I drink?"}};
    struct llm_message b[] = {
        {.role = "system", .content = "You help.\n<recalled>likes coffee</recalled>"},
        {.role = "user", .content = "what do I drink?"}};
    struct llm_request ra = test_request(a, 2), rb = test_request(b, 2);
    char *sa = test_canonical(&ra, NULL), *sb = test_canonical(&rb, NULL);
    uint8_t ka[CACHE_KEY_BYTES], kb[CACHE_KEY_BYTES];
    test_key_of("acme", sa, ka);
    test_key_of("acme", sb, kb);
    assert_memory_not_equal(ka, kb, CACHE_KEY_BYTES);
    xfree(sa);
    xfree(sb);
}

/* Contents are JSON-escaped, so a content that looks like the end of one
 * message and the start of another is not two messages, and the content
 * reads back byte for byte. */
static void canonical_request_escapes_contents(void **state)
{
    (void)state;
    const char *tricky = "a\"},{\"role\":\"user\",\"content\":\"b\\\n\t\xc3\xa9";
    struct llm_message one[] = {{.role = "user", .content = tricky}};
    struct llm_message two[] = {{.role = "user", .content = "a"}, {.role = "user", .content = "b"}};
    struct llm_request r1 = test_request(one, 1), r2 = test_request(two, 2);
    char *s1 = test_canonical(&r1, NULL), *s2 = test_canonical(&r2, NULL);
    assert_string_not_equal(s1, s2);
    cJSON *j = cJSON_Parse(s1);
    assert_non_null(j);
    cJSON *m = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "messages"), 0);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(m, "content")->valuestring, tricky);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "messages")), 1);
    cJSON_Delete(j);
    xfree(s1);
    xfree(s2);
}

/* Two tenants sending byte-identical requests get different keys, and a
 * reply stored for one is a miss for the other. */
static void tenants_never_share_an_entry(void **state)
{
    (void)state;
    struct llm_message msgs[] = {{.role = "user", .content = "same question"}};
    struct llm_request req = test_request(msgs, 1);
    char *s = test_canonical(&req, NULL);
    uint8_t ka[CACHE_KEY_BYTES], kb[CACHE_KEY_BYTES];
    test_key_of("tenant-a", s, ka);
    test_key_of("tenant-b", s, kb);
    assert_memory_not_equal(ka, kb, CACHE_KEY_BYTES);

    struct cache *c = cache_new(1 << 20, 0);
    test_put_text(c, ka, "a's answer", 0);
    assert_false(test_hit(c, kb, 1));
    assert_true(test_hit(c, ka, 1));
    cache_free(c);
    xfree(s);
}

/* --- policy --------------------------------------------------------------- */

/* off never caches; temperature0 only an explicit 0 (also -0), never an
 * unset temperature (NAN: the model's random default) nor any other value;
 * always caches everything. Names parse both ways; others are refused. */
static void policy_decides_by_explicit_temperature(void **state)
{
    (void)state;
    double temps[] = {0.0, -0.0, 0.7, 1e-9, NAN, INFINITY};
    bool t0[] = {true, true, false, false, false, false};
    for (size_t i = 0; i < sizeof temps / sizeof temps[0]; i++) {
        assert_false(cache_policy_allows(CACHE_POLICY_OFF, temps[i]));
        assert_int_equal(cache_policy_allows(CACHE_POLICY_TEMPERATURE0, temps[i]), t0[i]);
        assert_true(cache_policy_allows(CACHE_POLICY_ALWAYS, temps[i]));
    }
    enum cache_policy all[] = {CACHE_POLICY_OFF, CACHE_POLICY_TEMPERATURE0, CACHE_POLICY_ALWAYS};
    for (size_t i = 0; i < 3; i++) {
        enum cache_policy p =
            CACHE_POLICY_ALWAYS == all[i] ? CACHE_POLICY_OFF : CACHE_POLICY_ALWAYS;
        assert_true(cache_policy_parse(cache_policy_name(all[i]), &p));
        assert_int_equal(p, all[i]);
    }
    enum cache_policy p = CACHE_POLICY_ALWAYS;
    assert_false(cache_policy_parse("Temperature0", &p));
    assert_false(cache_policy_parse("", &p));
    assert_false(cache_policy_parse(NULL, &p));
    assert_int_equal(p, CACHE_POLICY_ALWAYS);
}

/* --- store: TTL ----------------------------------------------------------- */

/* An entry put at t is served up to t + ttl - 1 and has expired at exactly
 * t + ttl (exclusive bound); the expired get is a miss that frees it. */
static void ttl_bound_is_exclusive(void **state)
{
    (void)state;
    struct cache *c = cache_new(1 << 20, 500);
    uint8_t k[CACHE_KEY_BYTES];
    test_key(1, k);
    test_put_text(c, k, "answer", 1000);
    assert_true(test_hit(c, k, 1000));
    assert_true(test_hit(c, k, 1499));
    assert_false(test_hit(c, k, 1500));
    struct cache_stats st;
    cache_stats(c, &st);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.bytes, 0);
    assert_int_equal(st.expired, 1);
    assert_int_equal(st.hits, 2);
    assert_int_equal(st.misses, 1);
    /* a clock behind the put (another thread's earlier reading) is fresh */
    test_put_text(c, k, "answer", 2000);
    assert_true(test_hit(c, k, 1999));
    cache_free(c);
}

/* A TTL of 0 means entries never expire. */
static void ttl_zero_never_expires(void **state)
{
    (void)state;
    struct cache *c = cache_new(1 << 20, 0);
    uint8_t k[CACHE_KEY_BYTES];
    test_key(1, k);
    test_put_text(c, k, "answer", 0);
    assert_true(test_hit(c, k, INT64_MAX));
    cache_free(c);
}

/* A put drops entries that have expired, even ones never looked up again,
 * so dead entries do not hold the budget. */
static void put_frees_expired_entries(void **state)
{
    (void)state;
    struct cache *c = cache_new(1 << 20, 100);
    uint8_t k1[CACHE_KEY_BYTES], k2[CACHE_KEY_BYTES], k3[CACHE_KEY_BYTES];
    test_key(1, k1);
    test_key(2, k2);
    test_key(3, k3);
    test_put_text(c, k1, "one", 0);
    test_put_text(c, k2, "two", 50);
    size_t b3 = test_put_text(c, k3, "three", 120); /* k1 expired at 100, k2 not yet */
    struct cache_stats st;
    cache_stats(c, &st);
    assert_int_equal(st.entries, 2);
    assert_int_equal(st.expired, 1);
    assert_int_equal(st.bytes, cache_entry_bytes(3, 1, "m", "stop") + b3);
    assert_int_equal(st.misses, 0);
    cache_free(c);
}

/* --- store: budget and LRU ------------------------------------------------ */

/* With room for three equal entries, a fourth evicts the least recently
 * used; a get counts as use, so the refreshed entry survives and the next
 * oldest goes. */
static void lru_eviction_follows_recency_by_bytes(void **state)
{
    (void)state;
    size_t s = cache_entry_bytes(1, 1, "m", "stop");
    struct cache *c = cache_new(3 * s, 0);
    uint8_t k[5][CACHE_KEY_BYTES];
    for (unsigned i = 0; i < 5; i++)
        test_key(i, k[i]);
    test_put_text(c, k[0], "A", 0);
    test_put_text(c, k[1], "B", 1);
    test_put_text(c, k[2], "C", 2);
    assert_true(test_hit(c, k[0], 3)); /* A is now the most recent */
    test_put_text(c, k[3], "D", 4);    /* evicts B, the least recent */
    assert_false(test_hit(c, k[1], 5));
    test_put_text(c, k[4], "E", 6); /* recency D, A, C: evicts C */
    assert_false(test_hit(c, k[2], 7));
    assert_true(test_hit(c, k[0], 8));
    assert_true(test_hit(c, k[3], 9));
    assert_true(test_hit(c, k[4], 10));
    struct cache_stats st;
    cache_stats(c, &st);
    assert_int_equal(st.evictions, 2);
    assert_int_equal(st.entries, 3);
    assert_int_equal(st.bytes, 3 * s);
    cache_free(c);
}

/* An entry as large as two small ones evicts as many LRU entries as it
 * needs, and no more. */
static void a_large_entry_evicts_until_it_fits(void **state)
{
    (void)state;
    size_t s = cache_entry_bytes(1, 1, "m", "stop");
    size_t big_len = 1 + s; /* one byte of text costs one byte */
    assert_int_equal(cache_entry_bytes(big_len, 1, "m", "stop"), 2 * s);
    struct cache *c = cache_new(3 * s, 0);
    uint8_t k[4][CACHE_KEY_BYTES];
    for (unsigned i = 0; i < 4; i++)
        test_key(i, k[i]);
    test_put_text(c, k[0], "A", 0);
    test_put_text(c, k[1], "B", 1);
    test_put_text(c, k[2], "C", 2);
    char *big = xmalloc(big_len + 1);
    memset(big, 'x', big_len);
    big[big_len] = '\0';
    test_put_text(c, k[3], big, 3);
    assert_false(test_hit(c, k[0], 4));
    assert_false(test_hit(c, k[1], 4));
    assert_true(test_hit(c, k[2], 4));
    assert_true(test_hit(c, k[3], 4));
    struct cache_stats st;
    cache_stats(c, &st);
    assert_int_equal(st.evictions, 2);
    assert_int_equal(st.bytes, 3 * s);
    xfree(big);
    cache_free(c);
}

/* An entry larger than the whole budget is refused without evicting
 * anything; one exactly the budget's size is stored; a budget of 0 stores
 * nothing. */
static void an_entry_larger_than_the_budget_is_not_stored(void **state)
{
    (void)state;
    size_t s = cache_entry_bytes(5, 1, "m", "stop");
    size_t small = cache_entry_bytes(1, 1, "m", "stop");
    struct cache *c = cache_new(s - 1, 0);
    uint8_t k1[CACHE_KEY_BYTES], k2[CACHE_KEY_BYTES];
    test_key(1, k1);
    test_key(2, k2);
    test_put_text(c, k1, "x", 0);
    size_t len = 5;
    struct cache_meta meta = {.model = "m", .finish_reason = "stop"};
    assert_int_equal(cache_put(c, k2, "hello", 5, &len, 1, &meta, 1), CACHE_PUT_TOO_BIG);
    assert_true(test_hit(c, k1, 2));
    assert_false(test_hit(c, k2, 2));
    struct cache_stats st;
    cache_stats(c, &st);
    assert_int_equal(st.rejected, 1);
    assert_int_equal(st.evictions, 0);
    assert_int_equal(st.bytes, small);
    cache_free(c);

    c = cache_new(s, 0);
    assert_int_equal(cache_put(c, k2, "hello", 5, &len, 1, &meta, 1), CACHE_PUT_STORED);
    cache_stats(c, &st);
    assert_int_equal(st.bytes, s);
    cache_free(c);

    c = cache_new(0, 0);
    len = 0;
    assert_int_equal(cache_put(c, k2, "", 0, &len, 1, NULL, 1), CACHE_PUT_TOO_BIG);
    cache_free(c);
}

/* A put under an existing key replaces the entry: the new reply is served
 * and only its bytes are charged. */
static void put_replaces_an_entry_with_the_same_key(void **state)
{
    (void)state;
    struct cache *c = cache_new(1 << 20, 0);
    uint8_t k[CACHE_KEY_BYTES];
    test_key(1, k);
    test_put_text(c, k, "old reply", 0);
    size_t b = test_put_text(c, k, "new", 1);
    struct cache_view v;
    assert_true(cache_get(c, k, 2, &v));
    assert_string_equal(v.text, "new");
    assert_int_equal(v.created_at_ms, 1);
    cache_view_release(&v);
    struct cache_stats st;
    cache_stats(c, &st);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.bytes, b);
    assert_int_equal(st.inserts, 2);
    cache_free(c);
}

/* Keys that share their first 8 bytes (the hash) land in one bucket and
 * are still told apart by the whole key. */
static void keys_in_one_bucket_stay_distinct(void **state)
{
    (void)state;
    struct cache *c = cache_new(1 << 20, 0);
    uint8_t a[CACHE_KEY_BYTES], b[CACHE_KEY_BYTES];
    test_key(1, a);
    memcpy(b, a, CACHE_KEY_BYTES);
    b[31] ^= 1;
    test_put_text(c, a, "for a", 0);
    uint8_t other[CACHE_KEY_BYTES];
    memcpy(other, a, CACHE_KEY_BYTES);
    other[8] ^= 1;
    assert_false(test_hit(c, other, 1));
    test_put_text(c, b, "for b", 0);
    struct cache_view v;
    assert_true(cache_get(c, a, 1, &v));
    assert_string_equal(v.text, "for a");
    cache_view_release(&v);
    assert_true(cache_get(c, b, 1, &v));
    assert_string_equal(v.text, "for b");
    cache_view_release(&v);
    cache_free(c);
}

/* Ten thousand entries (many bucket-array doublings) are all found. */
static void many_entries_are_all_found(void **state)
{
    (void)state;
    struct cache *c = cache_new((size_t)64 << 20, 0);
    uint8_t k[CACHE_KEY_BYTES];
    for (unsigned i = 0; i < 10000; i++) {
        test_key(i, k);
        char text[16];
        snprintf(text, sizeof text, "r%u", i);
        test_put_text(c, k, text, i);
    }
    for (unsigned i = 0; i < 10000; i++) {
        test_key(i, k);
        struct cache_view v;
        assert_true(cache_get(c, k, 20000, &v));
        char text[16];
        snprintf(text, sizeof text, "r%u", i);
        assert_string_equal(v.text, text);
        cache_view_release(&v);
    }
    struct cache_stats st;
    cache_stats(c, &st);
    assert_int_equal(st.entries, 10000);
    assert_int_equal(st.evictions, 0);
    cache_free(c);
}

/* --- store: replay and views ---------------------------------------------- */

/* A hit gives back the deltas as they were stored: same count, same bytes
 * in the same order (an empty delta included), plus the metadata. */
static void a_hit_replays_the_stored_deltas(void **state)
{
    (void)state;
    const char *pieces[] = {"Hel", "lo, ", "", "w\xc3\xb6rld", "!"};
    size_t n = sizeof pieces / sizeof pieces[0];
    size_t lens[5];
    char text[64] = "";
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        lens[i] = strlen(pieces[i]);
        memcpy(text + off, pieces[i], lens[i]);
        off += lens[i];
    }
    struct cache *c = cache_new(1 << 20, 0);
    uint8_t k[CACHE_KEY_BYTES];
    test_key(1, k);
    struct cache_meta meta = {
        .model = "gpt-x-2024",
        .finish_reason = "stop",
        .usage = {.prompt_tokens = 12, .completion_tokens = 5, .cached_tokens = 3},
    };
    assert_int_equal(cache_put(c, k, text, off, lens, n, &meta, 42), CACHE_PUT_STORED);
    struct cache_view v;
    assert_true(cache_get(c, k, 43, &v));
    assert_int_equal(v.n_pieces, n);
    assert_int_equal(v.text_len, off);
    assert_memory_equal(v.text, text, off);
    assert_int_equal(v.text[off], '\0');
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *p = cache_view_piece(&v, i, &len);
        assert_int_equal(len, lens[i]);
        assert_memory_equal(p, pieces[i], len);
    }
    assert_string_equal(v.model, "gpt-x-2024");
    assert_string_equal(v.finish_reason, "stop");
    assert_int_equal(v.usage.prompt_tokens, 12);
    assert_int_equal(v.usage.completion_tokens, 5);
    assert_int_equal(v.usage.cached_tokens, 3);
    assert_int_equal(v.created_at_ms, 42);
    cache_view_release(&v);
    assert_null(v.entry);
    cache_view_release(&v); /* a released view is a no-op */
    cache_free(c);
}

/* Piece lengths that do not tile the text exactly are refused. */
static void piece_lengths_must_add_up_to_the_text(void **state)
{
    (void)state;
    struct cache *c = cache_new(1 << 20, 0);
    uint8_t k[CACHE_KEY_BYTES];
    test_key(1, k);
    size_t short_lens[] = {2, 2};
    size_t long_lens[] = {3, 3};
    size_t wrap_lens[] = {SIZE_MAX, 6};
    assert_int_equal(cache_put(c, k, "hello", 5, short_lens, 2, NULL, 0), CACHE_PUT_INVALID);
    assert_int_equal(cache_put(c, k, "hello", 5, long_lens, 2, NULL, 0), CACHE_PUT_INVALID);
    assert_int_equal(cache_put(c, k, "hello", 5, wrap_lens, 2, NULL, 0), CACHE_PUT_INVALID);
    assert_int_equal(cache_put(c, k, "hello", 5, NULL, 0, NULL, 0), CACHE_PUT_INVALID);
    assert_false(test_hit(c, k, 0));
    /* without meta: "" strings and usage unknown (-1) */
    size_t ok_lens[] = {2, 3};
    assert_int_equal(cache_put(c, k, "hello", 5, ok_lens, 2, NULL, 0), CACHE_PUT_STORED);
    struct cache_view v;
    assert_true(cache_get(c, k, 0, &v));
    assert_string_equal(v.model, "");
    assert_string_equal(v.finish_reason, "");
    assert_int_equal(v.usage.prompt_tokens, -1);
    cache_view_release(&v);
    cache_free(c);
}

/* A view stays readable after its entry is evicted and after the cache is
 * freed (ASan/valgrind would flag a use after free). */
static void a_view_outlives_eviction_and_cache_free(void **state)
{
    (void)state;
    size_t s = cache_entry_bytes(5, 1, "m", "stop");
    struct cache *c = cache_new(s, 0);
    uint8_t k1[CACHE_KEY_BYTES], k2[CACHE_KEY_BYTES];
    test_key(1, k1);
    test_key(2, k2);
    test_put_text(c, k1, "first", 0);
    struct cache_view v1, v2;
    assert_true(cache_get(c, k1, 1, &v1));
    test_put_text(c, k2, "other", 2); /* evicts k1 while v1 holds it */
    assert_false(test_hit(c, k1, 3));
    assert_string_equal(v1.text, "first");
    assert_true(cache_get(c, k2, 3, &v2));
    cache_free(c);
    assert_string_equal(v2.text, "other");
    cache_view_release(&v1);
    cache_view_release(&v2);
}

/* Freeing a cache that still holds entries frees them all (valgrind). */
static void free_releases_live_entries(void **state)
{
    (void)state;
    struct cache *c = cache_new(1 << 20, 0);
    uint8_t k[CACHE_KEY_BYTES];
    for (unsigned i = 0; i < 100; i++) {
        test_key(i, k);
        test_put_text(c, k, "some reply", i);
    }
    cache_free(c);
    cache_free(NULL);
}

/* cache_clear drops every entry and says how many: nothing is found after
 * it, entries and bytes are 0, the other counters keep their values, a view
 * taken before stays readable until released (ASan/valgrind would flag a
 * use after free or a leak), and the cache works as before afterwards. */
static void clear_drops_every_entry_but_a_lent_view_lives_on(void **state)
{
    (void)state;
    struct cache *c = cache_new(1 << 20, 0);
    uint8_t k[CACHE_KEY_BYTES], k0[CACHE_KEY_BYTES];
    for (unsigned i = 0; i < 100; i++) { /* more than CACHE_MIN_BUCKETS */
        test_key(i, k);
        test_put_text(c, k, i == 0 ? "the lent one" : "some reply", i);
    }
    test_key(0, k0);
    struct cache_view v;
    assert_true(cache_get(c, k0, 100, &v));
    struct cache_stats before, after;
    cache_stats(c, &before);
    assert_int_equal(before.entries, 100);

    assert_int_equal(cache_clear(c), 100);
    cache_stats(c, &after);
    assert_int_equal(after.entries, 0);
    assert_int_equal(after.bytes, 0);
    assert_int_equal(after.hits, before.hits);
    assert_int_equal(after.misses, before.misses);
    assert_int_equal(after.inserts, before.inserts);
    assert_int_equal(after.evictions, before.evictions);
    assert_int_equal(after.expired, before.expired);
    for (unsigned i = 0; i < 100; i++) {
        test_key(i, k);
        assert_false(test_hit(c, k, 101));
    }
    assert_string_equal(v.text, "the lent one");
    size_t len;
    assert_memory_equal(cache_view_piece(&v, 0, &len), "the lent one", 12);
    assert_int_equal(len, 12);

    /* Usable again, and a second clear drops only what came since. */
    assert_int_equal(cache_clear(c), 0);
    size_t b = test_put_text(c, k0, "again", 102);
    assert_true(test_hit(c, k0, 103));
    cache_stats(c, &after);
    assert_int_equal(after.entries, 1);
    assert_int_equal(after.bytes, b);
    cache_view_release(&v);
    assert_int_equal(cache_clear(c), 1);
    cache_free(c);
}

/* The counters count what happened: hits, misses, inserts, and bytes as
 * the sum of the charged entry sizes. */
static void stats_count_what_happened(void **state)
{
    (void)state;
    struct cache *c = cache_new(1 << 20, 0);
    struct cache_stats st;
    cache_stats(c, &st);
    assert_int_equal(st.entries + st.bytes + st.hits + st.misses + st.inserts, 0);
    assert_int_equal(st.max_bytes, 1 << 20);
    uint8_t k1[CACHE_KEY_BYTES], k2[CACHE_KEY_BYTES];
    test_key(1, k1);
    test_key(2, k2);
    assert_false(test_hit(c, k1, 0));
    size_t b1 = test_put_text(c, k1, "one", 0);
    size_t b2 = test_put_text(c, k2, "twotwo", 0);
    assert_true(test_hit(c, k1, 1));
    assert_true(test_hit(c, k1, 1));
    assert_true(test_hit(c, k2, 1));
    cache_stats(c, &st);
    assert_int_equal(st.hits, 3);
    assert_int_equal(st.misses, 1);
    assert_int_equal(st.inserts, 2);
    assert_int_equal(st.entries, 2);
    assert_int_equal(st.bytes, b1 + b2);
    assert_int_equal(b2 - b1, 3); /* three more bytes of text cost three bytes */
    cache_free(c);
}

/* --- concurrency ---------------------------------------------------------- */

#define CONC_THREADS 4
#define CONC_OPS     50000 /* per thread: 200k in all */
#define CONC_KEYS    64
#define CONC_BUDGET  4096
#define CONC_TTL     24 /* ticks: short enough that entries expire */

struct conc_shared {
    struct cache *c;
    uint8_t keys[CONC_KEYS][CACHE_KEY_BYTES];
    atomic_llong clock; /* one tick per operation, all threads */
};

struct conc {
    struct conc_shared *sh;
    unsigned seed;
    /* filled by the thread, checked by the main thread (cmocka asserts are
     * not for other threads) */
    unsigned long gets, bad_views, over_budget;
};

static unsigned conc_rand(unsigned *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* A view must hold exactly what was put for its key: every byte is the
 * key's letter, the pieces tile the text, the metadata names the key. */
static bool conc_view_ok(const struct cache_view *v, unsigned k)
{
    char model[16];
    snprintf(model, sizeof model, "m%u", k);
    if (strcmp(v->model, model) != 0 || v->usage.prompt_tokens != (long long)k)
        return false;
    size_t total = 0;
    for (size_t i = 0; i < v->n_pieces; i++) {
        size_t len;
        const char *p = cache_view_piece(v, i, &len);
        for (size_t j = 0; j < len; j++)
            if (p[j] != (char)('a' + k % 26))
                return false;
        total += len;
    }
    return total == v->text_len && v->text[total] == '\0';
}

static void conc_put(struct conc *t, unsigned k, unsigned r, int64_t now)
{
    char text[400];
    size_t lens[8];
    size_t len = (r >> 10) % sizeof text;
    size_t n = 1 + (r >> 20) % 8;
    memset(text, 'a' + (int)(k % 26), len);
    size_t left = len;
    for (size_t i = 0; i < n; i++) {
        lens[i] = i + 1 < n ? left / 2 : left;
        left -= lens[i];
    }
    char model[16];
    snprintf(model, sizeof model, "m%u", k);
    struct cache_meta meta = {
        .model = model, .finish_reason = "stop", .usage = {.prompt_tokens = k}};
    if (cache_put(t->sh->c, t->sh->keys[k], text, len, lens, n, &meta, now) != CACHE_PUT_STORED)
        t->bad_views++; /* every entry here fits the budget */
}

static void *conc_worker(void *arg)
{
    struct conc *t = arg;
    /* views kept across later operations, so other threads evict entries
     * that are still being read */
    struct cache_view held[2] = {{0}};
    unsigned held_key[2] = {0, 0};
    for (int op = 0; op < CONC_OPS; op++) {
        unsigned r = conc_rand(&t->seed);
        unsigned k = r % CONC_KEYS;
        int64_t now = atomic_fetch_add(&t->sh->clock, 1);
        if ((r >> 8) % 3 != 0) {
            struct cache_view v;
            t->gets++;
            if (cache_get(t->sh->c, t->sh->keys[k], now, &v)) {
                if (!conc_view_ok(&v, k))
                    t->bad_views++;
                unsigned slot = (r >> 12) % 2;
                if (held[slot].entry != NULL && !conc_view_ok(&held[slot], held_key[slot]))
                    t->bad_views++;
                cache_view_release(&held[slot]);
                held[slot] = v;
                held_key[slot] = k;
            }
        } else {
            conc_put(t, k, r, now);
        }
        if (op % 512 == 0) {
            struct cache_stats st;
            cache_stats(t->sh->c, &st);
            if (st.bytes > st.max_bytes)
                t->over_budget++;
        }
    }
    cache_view_release(&held[0]);
    cache_view_release(&held[1]);
    return NULL;
}

/* Four threads doing 200k random gets and puts on 64 keys with a budget of
 * a few entries and a short TTL: every view read is intact (also while
 * other threads evict its entry), the bytes never pass the budget, and the
 * counters add up to the gets made. */
static void concurrent_use_keeps_views_intact_and_bytes_in_budget(void **state)
{
    (void)state;
    static struct conc_shared sh;
    static struct conc workers[CONC_THREADS];
    sh.c = cache_new(CONC_BUDGET, CONC_TTL);
    atomic_init(&sh.clock, 0);
    for (unsigned i = 0; i < CONC_KEYS; i++)
        test_key(i, sh.keys[i]);
    pthread_t th[CONC_THREADS];
    for (int i = 0; i < CONC_THREADS; i++) {
        workers[i] = (struct conc){.sh = &sh, .seed = 2463534242u + (unsigned)i * 7919u};
        assert_int_equal(pthread_create(&th[i], NULL, conc_worker, &workers[i]), 0);
    }
    unsigned long gets = 0;
    for (int i = 0; i < CONC_THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(workers[i].bad_views, 0);
        assert_int_equal(workers[i].over_budget, 0);
        gets += workers[i].gets;
    }
    struct cache_stats st;
    cache_stats(sh.c, &st);
    assert_int_equal(st.hits + st.misses, gets);
    assert_true(st.bytes <= CONC_BUDGET);
    /* the run exercised what it claims to: hits, evictions, expiry */
    assert_true(st.hits > 0);
    assert_true(st.evictions > 0);
    assert_true(st.expired > 0);
    cache_free(sh.c);
}

/* --- shared calls without Redis, and the Redis blob ----------------------- */

/* Without cache_use_redis, lookup/store/purge are the in-process calls and
 * never report a fallback. */
static void without_redis_the_shared_calls_are_the_local_ones(void **state)
{
    (void)state;
    struct cache *c = cache_new(1 << 20, 100);
    uint8_t k[CACHE_KEY_BYTES];
    test_key(1, k);
    struct cache_owner o = {.tenant = "acme", .user = "alice"};
    struct cache_fallback fb = {.fell_back = true, .reason = "stale"};
    size_t len = 5;
    assert_int_equal(cache_store(c, &o, k, "hello", len, &len, 1, NULL, 10, &fb), CACHE_PUT_STORED);
    assert_false(fb.fell_back);
    assert_string_equal(fb.reason, "");
    struct cache_view v;
    fb.fell_back = true;
    assert_true(cache_lookup(c, &o, k, 20, &v, &fb));
    assert_false(fb.fell_back);
    assert_string_equal(v.text, "hello");
    assert_int_equal(v.created_at_ms, 10);
    cache_view_release(&v);
    assert_false(cache_lookup(c, NULL, k, 110, &v, NULL)); /* the TTL is the table's */
    assert_int_equal(cache_store(c, &o, k, "hello", len, &len, 1, NULL, 120, NULL),
                     CACHE_PUT_STORED);
    size_t dropped = 0;
    char err[64] = "x";
    assert_int_equal(cache_purge(c, "acme", "alice", &dropped, err, sizeof err), 0);
    assert_int_equal(dropped, 1);
    assert_string_equal(err, "");
    struct cache_stats st;
    cache_stats(c, &st);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.inserts, 2);
    cache_free(c);
}

/* A blob of key: head from cache_redis_encode_head, then the text. */
struct test_blob {
    char *bytes;
    size_t len, head;
};

static struct test_blob test_blob_make(const uint8_t key[CACHE_KEY_BYTES], const char *text,
                                       size_t text_len, const size_t *lens, size_t n,
                                       const char *model, const char *finish,
                                       const struct llm_usage *usage)
{
    struct test_blob b = {.head = cache_redis_head_bytes(n, strlen(model), strlen(finish))};
    b.len = b.head + text_len;
    b.bytes = malloc(b.len + 1);
    assert_non_null(b.bytes);
    cache_redis_encode_head((unsigned char *)b.bytes, key, text_len, lens, n, model, finish, usage);
    memcpy(b.bytes + b.head, text, text_len);
    return b;
}

/* What is encoded decodes to the same fields; born is the store script's
 * (0 before it runs). The text may hold a NUL. */
static void redis_blob_round_trips(void **state)
{
    (void)state;
    uint8_t k[CACHE_KEY_BYTES];
    test_key(1, k);
    size_t lens[] = {3, 0, 4};
    struct llm_usage u = {.prompt_tokens = 1234567890123LL,
                          .completion_tokens = -1,
                          .cached_tokens = 0,
                          .estimated = true};
    struct test_blob b2 = test_blob_make(k, "abc\0efg", 7, lens, 3, "gpt-x", "stop", &u);
    struct cache_redis_record rec;
    assert_true(cache_redis_decode(b2.bytes, b2.len, k, &rec));
    assert_int_equal(rec.born_ms, 0);
    assert_int_equal(rec.usage.prompt_tokens, 1234567890123LL);
    assert_int_equal(rec.usage.completion_tokens, -1);
    assert_int_equal(rec.usage.cached_tokens, 0);
    assert_true(rec.usage.estimated);
    assert_int_equal(rec.model_len, 5);
    assert_memory_equal(rec.model, "gpt-x", 5);
    assert_int_equal(rec.finish_len, 4);
    assert_memory_equal(rec.finish_reason, "stop", 4);
    assert_int_equal(rec.n_pieces, 3);
    assert_int_equal(cache_redis_record_end(&rec, 0), 3);
    assert_int_equal(cache_redis_record_end(&rec, 1), 3);
    assert_int_equal(cache_redis_record_end(&rec, 2), 7);
    assert_int_equal(rec.text_len, 7);
    assert_memory_equal(rec.text, "abc\0efg", 7);
    free(b2.bytes);

    /* the empty reply: no pieces, no text, no names */
    struct llm_usage none = {.prompt_tokens = -1, .completion_tokens = -1, .cached_tokens = -1};
    struct test_blob b = test_blob_make(k, "", 0, NULL, 0, "", "", &none);
    assert_int_equal(b.len, CACHE_REDIS_FIXED_BYTES);
    assert_true(cache_redis_decode(b.bytes, b.len, k, &rec));
    assert_int_equal(rec.n_pieces + rec.text_len + rec.model_len + rec.finish_len, 0);
    assert_false(rec.usage.estimated);
    free(b.bytes);
}

/* Anything but an exact blob of the key is refused: every truncation, a
 * byte more, another key, an unknown version or flag, lengths that do not
 * add up, piece ends out of order or past the text, a NUL in a name, a
 * time before 1970. */
static void redis_blob_refuses_every_malformation(void **state)
{
    (void)state;
    uint8_t k[CACHE_KEY_BYTES], other[CACHE_KEY_BYTES];
    test_key(1, k);
    test_key(2, other);
    size_t lens[] = {2, 3};
    struct llm_usage u = {.prompt_tokens = 5};
    struct test_blob b = test_blob_make(k, "hello", 5, lens, 2, "m", "stop", &u);
    struct cache_redis_record rec;
    assert_true(cache_redis_decode(b.bytes, b.len, k, &rec));
    assert_false(cache_redis_decode(b.bytes, b.len, other, &rec));
    assert_false(cache_redis_decode(NULL, 0, k, &rec));
    for (size_t cut = 0; cut < b.len; cut++)
        assert_false(cache_redis_decode(b.bytes, cut, k, &rec));
    b.bytes[b.len] = 'x';
    assert_false(cache_redis_decode(b.bytes, b.len + 1, k, &rec));

    /* version, flags (but estimated, bit 0), key and each length field,
     * bit by bit */
    const size_t fields[][2] = {{0, 1}, {9, 1}, {10, 32}, {66, 16}};
    for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++) {
        for (size_t i = fields[f][0]; i < fields[f][0] + fields[f][1]; i++) {
            for (unsigned bit = i == 9 ? 1 : 0; bit < 8; bit++) {
                b.bytes[i] ^= (char)(1u << bit);
                assert_false(cache_redis_decode(b.bytes, b.len, k, &rec));
                b.bytes[i] ^= (char)(1u << bit);
            }
        }
    }
    b.bytes[8] = (char)0x80; /* born's sign bit */
    assert_false(cache_redis_decode(b.bytes, b.len, k, &rec));
    b.bytes[8] = 0;
    size_t ends = CACHE_REDIS_FIXED_BYTES + 1 + 4;
    b.bytes[ends] = 4; /* first end after the second (5 > 4 is fine, 4 < 5 is not) */
    b.bytes[ends + 4] = 3;
    assert_false(cache_redis_decode(b.bytes, b.len, k, &rec));
    b.bytes[ends] = 2;
    b.bytes[ends + 4] = 4; /* the last end short of the text */
    assert_false(cache_redis_decode(b.bytes, b.len, k, &rec));
    b.bytes[ends + 4] = 6; /* past it */
    assert_false(cache_redis_decode(b.bytes, b.len, k, &rec));
    b.bytes[ends + 4] = 5;
    assert_true(cache_redis_decode(b.bytes, b.len, k, &rec));
    b.bytes[CACHE_REDIS_FIXED_BYTES] = '\0'; /* the model "m" */
    assert_false(cache_redis_decode(b.bytes, b.len, k, &rec));
    b.bytes[CACHE_REDIS_FIXED_BYTES] = 'm';
    b.bytes[CACHE_REDIS_FIXED_BYTES + 2] = '\0'; /* in "stop" */
    assert_false(cache_redis_decode(b.bytes, b.len, k, &rec));
    free(b.bytes);
}

/* Random damage to a blob never makes decode read out of bounds, and what
 * it accepts is consistent (ASan and valgrind watch the reads). */
static void redis_blob_survives_random_damage(void **state)
{
    (void)state;
    uint8_t k[CACHE_KEY_BYTES];
    test_key(1, k);
    size_t lens[] = {1, 2, 3, 4};
    struct llm_usage u = {.prompt_tokens = 5};
    struct test_blob b = test_blob_make(k, "abcdefghij", 10, lens, 4, "model", "stop", &u);
    char *copy = malloc(b.len);
    assert_non_null(copy);
    unsigned seed = 12345;
    for (unsigned iter = 0; iter < 20000; iter++) {
        memcpy(copy, b.bytes, b.len);
        for (unsigned j = 0; j < 1 + iter % 3; j++) {
            seed = seed * 1103515245u + 12345u;
            copy[(seed >> 8) % b.len] = (char)(seed >> 20);
        }
        size_t len = b.len - (iter % 5 == 0 ? (seed >> 4) % b.len : 0);
        struct cache_redis_record rec;
        if (!cache_redis_decode(copy, len, k, &rec))
            continue;
        assert_true(rec.text + rec.text_len == copy + len);
        for (size_t i = 0; i < rec.n_pieces; i++)
            assert_true(cache_redis_record_end(&rec, i) <= rec.text_len);
    }
    free(copy);
    free(b.bytes);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(key_is_blake2b_of_the_documented_encoding),
        cmocka_unit_test(every_part_of_the_key_changes_it),
        cmocka_unit_test(length_prefixes_keep_part_boundaries_apart),
        cmocka_unit_test(key_prefix_is_the_first_eight_bytes_in_hex),
        cmocka_unit_test(canonical_request_has_fixed_order_and_no_whitespace),
        cmocka_unit_test(canonical_request_is_stable_under_key_order),
        cmocka_unit_test(canonical_request_changes_with_everything_that_decides_the_reply),
        cmocka_unit_test(recalled_memory_text_changes_the_key),
        cmocka_unit_test(canonical_request_escapes_contents),
        cmocka_unit_test(tenants_never_share_an_entry),
        cmocka_unit_test(policy_decides_by_explicit_temperature),
        cmocka_unit_test(ttl_bound_is_exclusive),
        cmocka_unit_test(ttl_zero_never_expires),
        cmocka_unit_test(put_frees_expired_entries),
        cmocka_unit_test(lru_eviction_follows_recency_by_bytes),
        cmocka_unit_test(a_large_entry_evicts_until_it_fits),
        cmocka_unit_test(an_entry_larger_than_the_budget_is_not_stored),
        cmocka_unit_test(put_replaces_an_entry_with_the_same_key),
        cmocka_unit_test(keys_in_one_bucket_stay_distinct),
        cmocka_unit_test(many_entries_are_all_found),
        cmocka_unit_test(a_hit_replays_the_stored_deltas),
        cmocka_unit_test(piece_lengths_must_add_up_to_the_text),
        cmocka_unit_test(a_view_outlives_eviction_and_cache_free),
        cmocka_unit_test(free_releases_live_entries),
        cmocka_unit_test(clear_drops_every_entry_but_a_lent_view_lives_on),
        cmocka_unit_test(stats_count_what_happened),
        cmocka_unit_test(concurrent_use_keeps_views_intact_and_bytes_in_budget),
        cmocka_unit_test(without_redis_the_shared_calls_are_the_local_ones),
        cmocka_unit_test(redis_blob_round_trips),
        cmocka_unit_test(redis_blob_refuses_every_malformation),
        cmocka_unit_test(redis_blob_survives_random_damage),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
