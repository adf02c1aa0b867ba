/*
 * The response cache of cache.h: canonical requests, keys, and the store.
 *
 * The store: every entry is ONE allocation (bookkeeping, key, piece end
 * offsets, text, model, finish reason), immutable once built, so a view can
 * point straight into it. Entries are reference counted: the cache holds one
 * reference while the entry is in the table, each view another; whoever
 * drops the last frees it. Building an entry and freeing dropped ones happen
 * outside the mutex, which only covers the pointer work.
 *
 * Three intrusive links thread each entry: the bucket chain of the hash
 * table, the LRU list (most recent at the head; cache_get moves a hit
 * there), and the age list in put order (oldest at the head), which lets a
 * put drop expired entries in O(1) each without scanning: with one clock,
 * put order is creation order. cache_get still checks the TTL itself, so an
 * expired entry is never served even when the age list is not yet swept.
 *
 * With Redis (cache_use_redis), the calls of the last section ask the
 * server through client/cache_redis.c and fall back to the table only when
 * it cannot serve; a hit there becomes an entry built by the same
 * cache_entry_alloc(), lent to the view alone and never put in the table.
 * The mutex is never held across a round trip (the connection has its own).
 */
#include "config.h"

#include "client/cache.h"

#include <cJSON.h>
#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/cache_redis.h"
#include "net/redis.h"
#include "util/alloc.h"
#include "util/ident.h"
#include "util/log.h"

/* Domain tag hashed first, so these keys never equal another use's BLAKE2b. */
#define CACHE_KEY_TAG "memchat.cache.v1"
/* First bucket count (a power of two); doubles when entries pass it. */
#define CACHE_MIN_BUCKETS 64

struct cache_entry {
    struct cache_entry *chain;               /* next in the bucket */
    struct cache_entry *lru_prev, *lru_next; /* neighbours by recency */
    struct cache_entry *age_prev, *age_next; /* neighbours by put order */
    atomic_uint refs;                        /* the cache's (while listed) + views' */
    uint8_t key[CACHE_KEY_BYTES];
    int64_t created_at_ms;
    size_t bytes; /* charged: cache_entry_bytes() */
    struct llm_usage usage;
    uint32_t text_len, n_pieces;
    const uint32_t *ends; /* into data */
    const char *text, *model, *finish_reason;
    /* ends[n_pieces], then text, model, finish_reason, each with a NUL. The
     * uint32_t array comes first so it is aligned. */
    uint32_t data[];
};

/* An intrusive doubly linked list's ends. */
struct cache_list {
    struct cache_entry *head, *tail;
};

struct cache {
    pthread_mutex_t lock;
    struct cache_entry **buckets;
    size_t mask; /* bucket count - 1 */
    struct cache_list lru, age;
    size_t entries, bytes, max_bytes;
    int64_t ttl_ms;
    uint64_t hits, misses, inserts, evictions, expired, rejected;
    struct redis *redis; /* lent by cache_use_redis(); NULL: this process only */
    bool redis_down;     /* the last call on it failed: logged once per change */
};

/* --- policy ---------------------------------------------------------------- */

bool cache_policy_allows(enum cache_policy policy, double temperature)
{
    switch (policy) {
    case CACHE_POLICY_OFF:
        return false;
    case CACHE_POLICY_TEMPERATURE0:
        /* NAN compares unequal: an unset temperature samples randomly. */
        return temperature == 0.0;
    case CACHE_POLICY_ALWAYS:
        return true;
    }
    return false;
}

bool cache_policy_parse(const char *name, enum cache_policy *out)
{
    static const enum cache_policy all[] = {CACHE_POLICY_OFF, CACHE_POLICY_TEMPERATURE0,
                                            CACHE_POLICY_ALWAYS};
    if (name == NULL)
        return false;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (strcmp(name, cache_policy_name(all[i])) == 0) {
            *out = all[i];
            return true;
        }
    }
    return false;
}

const char *cache_policy_name(enum cache_policy policy)
{
    switch (policy) {
    case CACHE_POLICY_OFF:
        return "off";
    case CACHE_POLICY_TEMPERATURE0:
        return "temperature0";
    case CACHE_POLICY_ALWAYS:
        return "always";
    }
    return "?";
}

/* --- canonical request ----------------------------------------------------- */

struct cache_sort_item {
    cJSON *item;
    size_t index; /* original position: makes qsort stable for equal keys */
};

static int cache_sort_cmp(const void *a, const void *b)
{
    const struct cache_sort_item *x = a, *y = b;
    int d = strcmp(x->item->string != NULL ? x->item->string : "",
                   y->item->string != NULL ? y->item->string : "");
    if (d != 0)
        return d;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Sorts every object's members by key under node, recursively (arrays keep
 * their order). false when memory runs out. */
static bool cache_sort_json(cJSON *node)
{
    for (cJSON *ch = node->child; ch != NULL; ch = ch->next)
        if (!cache_sort_json(ch))
            return false;
    if (!cJSON_IsObject(node) || node->child == NULL || node->child->next == NULL)
        return true;
    size_t n = 0;
    for (cJSON *ch = node->child; ch != NULL; ch = ch->next)
        n++;
    struct cache_sort_item *items = try_calloc(n, sizeof *items);
    if (items == NULL)
        return false;
    n = 0;
    for (cJSON *ch = node->child; ch != NULL; ch = ch->next, n++)
        items[n] = (struct cache_sort_item){.item = ch, .index = n};
    qsort(items, n, sizeof *items, cache_sort_cmp);
    /* Relink in sorted order; cJSON's first child's prev is the last one. */
    for (size_t i = 0; i < n; i++) {
        items[i].item->prev = i > 0 ? items[i - 1].item : items[n - 1].item;
        items[i].item->next = i + 1 < n ? items[i + 1].item : NULL;
    }
    node->child = items[0].item;
    xfree(items);
    return true;
}

/* Adds a borrowed string (no copy: the request outlives the tree). */
static bool cache_add_ref(cJSON *obj, const char *name, const char *value)
{
    cJSON *s = cJSON_CreateStringReference(value != NULL ? value : "");
    if (s == NULL)
        return false;
    bool ok = name == NULL ? cJSON_AddItemToArray(obj, s) : cJSON_AddItemToObjectCS(obj, name, s);
    if (!ok)
        cJSON_Delete(s);
    return ok;
}

static cJSON *cache_canonical_tree(const struct llm_request *req, const cJSON *extra)
{
    cJSON *root = cJSON_CreateObject();
    if (root == NULL)
        return NULL;
    bool ok = cache_add_ref(root, "model", req->model);
    cJSON *msgs = ok ? cJSON_AddArrayToObject(root, "messages") : NULL;
    ok = msgs != NULL;
    for (size_t i = 0; ok && i < req->n_messages; i++) {
        cJSON *m = cJSON_CreateObject();
        ok = m != NULL && cJSON_AddItemToArray(msgs, m);
        if (!ok) {
            cJSON_Delete(m);
            break;
        }
        ok = cache_add_ref(m, "role", req->messages[i].role) &&
             cache_add_ref(m, "content", req->messages[i].content);
    }
    cJSON *rec = ok ? cJSON_AddArrayToObject(root, "recalled") : NULL;
    ok = rec != NULL;
    for (size_t i = 0; ok && i < req->n_recalled; i++)
        ok = cache_add_ref(rec, NULL, req->recalled[i]);
    if (ok) {
        double t = req->temperature;
        if (!isfinite(t))
            ok = cJSON_AddNullToObject(root, "temperature") != NULL;
        else /* + 0.0 turns -0 into 0: the same temperature, one text */
            ok = cJSON_AddNumberToObject(root, "temperature", t + 0.0) != NULL;
    }
    if (ok)
        ok = cJSON_AddNumberToObject(root, "max_tokens", (double)req->max_tokens) != NULL;
    if (ok) {
        cJSON *x = extra != NULL ? cJSON_Duplicate(extra, 1) : cJSON_CreateNull();
        ok = x != NULL && cache_sort_json(x) && cJSON_AddItemToObjectCS(root, "extra", x);
        if (!ok)
            cJSON_Delete(x);
    }
    if (!ok) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

char *cache_canonical_request(const struct llm_request *req, const struct cJSON *extra, size_t *len)
{
    cJSON *root = cache_canonical_tree(req, extra);
    if (root == NULL)
        return NULL;
    char *printed = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (printed == NULL)
        return NULL;
    /* Copied so the caller frees with xfree whatever cJSON's hooks are. */
    size_t n = strlen(printed);
    char *out = try_malloc(n + 1);
    if (out != NULL) {
        memcpy(out, printed, n + 1);
        if (len != NULL)
            *len = n;
    }
    cJSON_free(printed);
    return out;
}

/* --- key ------------------------------------------------------------------- */

static void cache_key_part(crypto_generichash_state *st, const char *s, size_t n)
{
    unsigned char len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)((uint64_t)n >> (8 * i));
    crypto_generichash_update(st, len, sizeof len);
    if (n > 0)
        crypto_generichash_update(st, (const unsigned char *)s, n);
}

void cache_key(const char *tenant, const char *provider, const char *model, const char *canonical,
               size_t canonical_len, uint8_t out[CACHE_KEY_BYTES])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, CACHE_KEY_BYTES);
    crypto_generichash_update(&st, (const unsigned char *)CACHE_KEY_TAG, strlen(CACHE_KEY_TAG));
    const char *parts[] = {tenant, provider, model};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        cache_key_part(&st, parts[i], parts[i] != NULL ? strlen(parts[i]) : 0);
    cache_key_part(&st, canonical, canonical != NULL ? canonical_len : 0);
    crypto_generichash_final(&st, out, CACHE_KEY_BYTES);
}

void cache_key_prefix(const uint8_t key[CACHE_KEY_BYTES], char out[CACHE_KEY_PREFIX_SIZE])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 8; i++) {
        out[2 * i] = hex[key[i] >> 4];
        out[2 * i + 1] = hex[key[i] & 15];
    }
    out[16] = '\0';
}

/* --- entries --------------------------------------------------------------- */

/* a + b, or SIZE_MAX when it overflows (SIZE_MAX never fits a budget). */
static size_t cache_add_size(size_t a, size_t b)
{
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

/* The size of an entry's allocation. */
static size_t cache_alloc_bytes(size_t text_len, size_t n_pieces, size_t model_len,
                                size_t finish_len)
{
    if (n_pieces > SIZE_MAX / sizeof(uint32_t))
        return SIZE_MAX;
    size_t n = cache_add_size(sizeof(struct cache_entry), n_pieces * sizeof(uint32_t));
    n = cache_add_size(n, cache_add_size(text_len, 1));
    n = cache_add_size(n, cache_add_size(model_len, 1));
    return cache_add_size(n, cache_add_size(finish_len, 1));
}

size_t cache_entry_bytes(size_t text_len, size_t n_pieces, const char *model,
                         const char *finish_reason)
{
    size_t n = cache_alloc_bytes(text_len, n_pieces, model != NULL ? strlen(model) : 0,
                                 finish_reason != NULL ? strlen(finish_reason) : 0);
    return cache_add_size(n, sizeof(struct cache_entry *));
}

static void cache_entry_unref(struct cache_entry *e)
{
    if (e != NULL && atomic_fetch_sub(&e->refs, 1) == 1)
        xfree(e);
}

/* Frees a list of dropped entries linked through chain (outside the lock). */
static void cache_unref_chain(struct cache_entry *e)
{
    while (e != NULL) {
        struct cache_entry *next = e->chain;
        cache_entry_unref(e);
        e = next;
    }
}

static uint64_t cache_hash(const uint8_t key[CACHE_KEY_BYTES])
{
    uint64_t h;
    memcpy(&h, key, sizeof h);
    return h;
}

/* --- lists (under the lock) ------------------------------------------------ */

static void cache_lru_unlink(struct cache *c, struct cache_entry *e)
{
    if (e->lru_prev != NULL)
        e->lru_prev->lru_next = e->lru_next;
    else
        c->lru.head = e->lru_next;
    if (e->lru_next != NULL)
        e->lru_next->lru_prev = e->lru_prev;
    else
        c->lru.tail = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

static void cache_lru_push_head(struct cache *c, struct cache_entry *e)
{
    e->lru_prev = NULL;
    e->lru_next = c->lru.head;
    if (c->lru.head != NULL)
        c->lru.head->lru_prev = e;
    else
        c->lru.tail = e;
    c->lru.head = e;
}

static void cache_age_unlink(struct cache *c, struct cache_entry *e)
{
    if (e->age_prev != NULL)
        e->age_prev->age_next = e->age_next;
    else
        c->age.head = e->age_next;
    if (e->age_next != NULL)
        e->age_next->age_prev = e->age_prev;
    else
        c->age.tail = e->age_prev;
    e->age_prev = e->age_next = NULL;
}

static void cache_age_push_tail(struct cache *c, struct cache_entry *e)
{
    e->age_next = NULL;
    e->age_prev = c->age.tail;
    if (c->age.tail != NULL)
        c->age.tail->age_next = e;
    else
        c->age.head = e;
    c->age.tail = e;
}

/* The slot pointing at key's entry (*slot NULL when absent). */
static struct cache_entry **cache_find_slot(const struct cache *c,
                                            const uint8_t key[CACHE_KEY_BYTES])
{
    struct cache_entry **slot = &c->buckets[cache_hash(key) & c->mask];
    while (*slot != NULL && memcmp((*slot)->key, key, CACHE_KEY_BYTES) != 0)
        slot = &(*slot)->chain;
    return slot;
}

/* Takes e out of the table and both lists, and pushes it onto *dropped
 * (through chain) for cache_unref_chain() after the unlock. */
static void cache_remove(struct cache *c, struct cache_entry *e, struct cache_entry **dropped)
{
    struct cache_entry **slot = cache_find_slot(c, e->key);
    *slot = e->chain;
    cache_lru_unlink(c, e);
    cache_age_unlink(c, e);
    c->entries--;
    c->bytes -= e->bytes;
    e->chain = *dropped;
    *dropped = e;
}

static bool cache_expired(const struct cache *c, const struct cache_entry *e, int64_t now_ms)
{
    /* Written as a difference so a huge TTL cannot overflow created + ttl. */
    return c->ttl_ms > 0 && now_ms - e->created_at_ms >= c->ttl_ms;
}

/* Doubles the bucket array; a no-op when it cannot allocate (chains grow). */
static void cache_grow(struct cache *c)
{
    size_t n = (c->mask + 1) * 2;
    struct cache_entry **b = try_calloc(n, sizeof *b);
    if (b == NULL)
        return;
    for (size_t i = 0; i <= c->mask; i++) {
        struct cache_entry *e = c->buckets[i];
        while (e != NULL) {
            struct cache_entry *next = e->chain;
            struct cache_entry **slot = &b[cache_hash(e->key) & (n - 1)];
            e->chain = *slot;
            *slot = e;
            e = next;
        }
    }
    xfree(c->buckets);
    c->buckets = b;
    c->mask = n - 1;
}

/* --- the store ------------------------------------------------------------- */

struct cache *cache_new(size_t max_bytes, int64_t ttl_ms)
{
    struct cache *c = xcalloc(1, sizeof *c);
    if (pthread_mutex_init(&c->lock, NULL) != 0)
        alloc_die("cache mutex");
    c->buckets = xcalloc(CACHE_MIN_BUCKETS, sizeof *c->buckets);
    c->mask = CACHE_MIN_BUCKETS - 1;
    c->max_bytes = max_bytes;
    c->ttl_ms = ttl_ms > 0 ? ttl_ms : 0;
    return c;
}

void cache_free(struct cache *c)
{
    if (c == NULL)
        return;
    struct cache_entry *e = c->lru.head;
    while (e != NULL) {
        struct cache_entry *next = e->lru_next;
        cache_entry_unref(e);
        e = next;
    }
    pthread_mutex_destroy(&c->lock);
    xfree(c->buckets);
    xfree(c);
}

/* Lends e (whose reference the caller hands over) through *out. */
static void cache_view_of(struct cache_entry *e, struct cache_view *out)
{
    *out = (struct cache_view){
        .entry = e,
        .text = e->text,
        .text_len = e->text_len,
        .n_pieces = e->n_pieces,
        .ends = e->ends,
        .model = e->model,
        .finish_reason = e->finish_reason,
        .usage = e->usage,
        .created_at_ms = e->created_at_ms,
    };
}

bool cache_get(struct cache *c, const uint8_t key[CACHE_KEY_BYTES], int64_t now_ms,
               struct cache_view *out)
{
    memset(out, 0, sizeof *out);
    struct cache_entry *dropped = NULL;
    pthread_mutex_lock(&c->lock);
    struct cache_entry *e = *cache_find_slot(c, key);
    if (e != NULL && cache_expired(c, e, now_ms)) {
        cache_remove(c, e, &dropped);
        c->expired++;
        e = NULL;
    }
    if (e != NULL) {
        if (c->lru.head != e) {
            cache_lru_unlink(c, e);
            cache_lru_push_head(c, e);
        }
        atomic_fetch_add(&e->refs, 1);
        c->hits++;
    } else {
        c->misses++;
    }
    pthread_mutex_unlock(&c->lock);
    cache_unref_chain(dropped);
    if (e == NULL)
        return false;
    cache_view_of(e, out);
    return true;
}

const char *cache_view_piece(const struct cache_view *v, size_t i, size_t *len)
{
    size_t start = i > 0 ? v->ends[i - 1] : 0;
    *len = v->ends[i] - start;
    return v->text + start;
}

void cache_view_release(struct cache_view *v)
{
    if (v == NULL)
        return;
    cache_entry_unref(v->entry);
    memset(v, 0, sizeof *v);
}

/* What an entry is made of, before it is one allocation. model and finish
 * are model_len and finish_len bytes (no NUL inside). */
struct cache_parts {
    const uint8_t *key;
    const char *text, *model, *finish;
    size_t text_len, n_pieces, model_len, finish_len;
    const struct llm_usage *usage; /* NULL: unknown */
    int64_t created_at_ms;
};

/* Allocates an entry holding p (outside the lock) with its piece ends left
 * for the caller to fill; NULL when it cannot allocate. */
static struct cache_entry *cache_entry_alloc(const struct cache_parts *p, size_t bytes)
{
    struct cache_entry *e =
        try_malloc(cache_alloc_bytes(p->text_len, p->n_pieces, p->model_len, p->finish_len));
    if (e == NULL)
        return NULL;
    memset(e, 0, sizeof *e);
    atomic_init(&e->refs, 1);
    memcpy(e->key, p->key, CACHE_KEY_BYTES);
    e->created_at_ms = p->created_at_ms;
    e->bytes = bytes;
    if (p->usage != NULL)
        e->usage = *p->usage;
    else
        e->usage =
            (struct llm_usage){.prompt_tokens = -1, .completion_tokens = -1, .cached_tokens = -1};
    e->text_len = (uint32_t)p->text_len;
    e->n_pieces = (uint32_t)p->n_pieces;
    e->ends = e->data;
    char *s = (char *)(e->data + p->n_pieces);
    e->text = s;
    if (p->text_len > 0)
        memcpy(s, p->text, p->text_len);
    s[p->text_len] = '\0';
    s += p->text_len + 1;
    e->model = s;
    memcpy(s, p->model, p->model_len);
    s[p->model_len] = '\0';
    s += p->model_len + 1;
    e->finish_reason = s;
    memcpy(s, p->finish, p->finish_len);
    s[p->finish_len] = '\0';
    return e;
}

/* Builds the entry (outside the lock); NULL when it cannot allocate. */
static struct cache_entry *cache_entry_build(const uint8_t key[CACHE_KEY_BYTES], const char *text,
                                             size_t text_len, const size_t *piece_lens,
                                             size_t n_pieces, const char *model, const char *finish,
                                             size_t bytes, const struct llm_usage *usage,
                                             int64_t now_ms)
{
    struct cache_parts p = {
        .key = key,
        .text = text,
        .model = model,
        .finish = finish,
        .text_len = text_len,
        .n_pieces = n_pieces,
        .model_len = strlen(model),
        .finish_len = strlen(finish),
        .usage = usage,
        .created_at_ms = now_ms,
    };
    struct cache_entry *e = cache_entry_alloc(&p, bytes);
    if (e == NULL)
        return NULL;
    uint32_t *ends = e->data;
    uint32_t end = 0;
    for (size_t i = 0; i < n_pieces; i++) {
        end += (uint32_t)piece_lens[i];
        ends[i] = end;
    }
    return e;
}

/* Whether the piece lengths tile the text exactly (offsets are 32-bit). */
static bool cache_pieces_valid(const char *text, size_t text_len, const size_t *piece_lens,
                               size_t n_pieces)
{
    if (text_len > UINT32_MAX || n_pieces > UINT32_MAX || (text_len > 0 && text == NULL) ||
        (n_pieces > 0 && piece_lens == NULL))
        return false;
    size_t sum = 0;
    for (size_t i = 0; i < n_pieces; i++) {
        if (piece_lens[i] > text_len - sum)
            return false;
        sum += piece_lens[i];
    }
    return sum == text_len;
}

enum cache_put_result cache_put(struct cache *c, const uint8_t key[CACHE_KEY_BYTES],
                                const char *text, size_t text_len, const size_t *piece_lens,
                                size_t n_pieces, const struct cache_meta *meta, int64_t now_ms)
{
    if (!cache_pieces_valid(text, text_len, piece_lens, n_pieces))
        return CACHE_PUT_INVALID;

    const char *model = meta != NULL && meta->model != NULL ? meta->model : "";
    const char *finish = meta != NULL && meta->finish_reason != NULL ? meta->finish_reason : "";
    size_t bytes = cache_entry_bytes(text_len, n_pieces, model, finish);
    if (bytes > c->max_bytes) { /* max_bytes never changes: read without the lock */
        pthread_mutex_lock(&c->lock);
        c->rejected++;
        pthread_mutex_unlock(&c->lock);
        return CACHE_PUT_TOO_BIG;
    }
    struct cache_entry *e =
        cache_entry_build(key, text, text_len, piece_lens, n_pieces, model, finish, bytes,
                          meta != NULL ? &meta->usage : NULL, now_ms);
    if (e == NULL)
        return CACHE_PUT_NO_MEM;

    struct cache_entry *dropped = NULL;
    pthread_mutex_lock(&c->lock);
    struct cache_entry *old = *cache_find_slot(c, key);
    if (old != NULL)
        cache_remove(c, old, &dropped);
    while (c->age.head != NULL && cache_expired(c, c->age.head, now_ms)) {
        cache_remove(c, c->age.head, &dropped);
        c->expired++;
    }
    while (c->bytes + bytes > c->max_bytes && c->lru.tail != NULL) {
        cache_remove(c, c->lru.tail, &dropped);
        c->evictions++;
    }
    if (c->entries + 1 > c->mask + 1)
        cache_grow(c);
    struct cache_entry **slot = &c->buckets[cache_hash(key) & c->mask];
    e->chain = *slot;
    *slot = e;
    cache_lru_push_head(c, e);
    cache_age_push_tail(c, e);
    c->entries++;
    c->bytes += bytes;
    c->inserts++;
    pthread_mutex_unlock(&c->lock);
    cache_unref_chain(dropped);
    return CACHE_PUT_STORED;
}

size_t cache_clear(struct cache *c)
{
    struct cache_entry *dropped = NULL;
    pthread_mutex_lock(&c->lock);
    size_t n = c->entries;
    /* Chain every entry through its (now unused) bucket link for the unref
     * after the unlock; the bucket array keeps its size, the table is just
     * emptied. */
    for (struct cache_entry *e = c->lru.head; e != NULL; e = e->lru_next) {
        e->chain = dropped;
        dropped = e;
    }
    for (size_t i = 0; i <= c->mask; i++)
        c->buckets[i] = NULL;
    c->lru = (struct cache_list){0};
    c->age = (struct cache_list){0};
    c->entries = 0;
    c->bytes = 0;
    pthread_mutex_unlock(&c->lock);
    cache_unref_chain(dropped);
    return n;
}

void cache_stats(struct cache *c, struct cache_stats *out)
{
    pthread_mutex_lock(&c->lock);
    *out = (struct cache_stats){
        .entries = c->entries,
        .bytes = c->bytes,
        .max_bytes = c->max_bytes,
        .hits = c->hits,
        .misses = c->misses,
        .inserts = c->inserts,
        .evictions = c->evictions,
        .expired = c->expired,
        .rejected = c->rejected,
    };
    pthread_mutex_unlock(&c->lock);
}

/* --- shared on Redis ------------------------------------------------------- */

void cache_use_redis(struct cache *c, struct redis *r)
{
    pthread_mutex_lock(&c->lock);
    c->redis = r;
    c->redis_down = false;
    pthread_mutex_unlock(&c->lock);
}

static struct redis *cache_shared(struct cache *c)
{
    pthread_mutex_lock(&c->lock);
    struct redis *r = c->redis;
    pthread_mutex_unlock(&c->lock);
    return r;
}

/* Records whether the server served a call; the log says it once when the
 * shared cache goes away and once when it is back, not at every turn. */
static void cache_note(struct cache *c, struct redis *r, bool up, const char *err)
{
    pthread_mutex_lock(&c->lock);
    bool changed = c->redis_down == up;
    c->redis_down = !up;
    pthread_mutex_unlock(&c->lock);
    if (!changed)
        return;
    if (up)
        log_info("response cache: Redis at %s answers again; the cache is shared again",
                 redis_where(r));
    else
        log_warn("response cache: %s; using the in-process cache until it is back", err);
}

static void cache_fallback_clear(struct cache_fallback *fb)
{
    if (fb == NULL)
        return;
    fb->fell_back = false;
    fb->reason[0] = '\0';
}

static void cache_fell_back(struct cache_fallback *fb, const char *why)
{
    if (fb == NULL)
        return;
    fb->fell_back = true;
    snprintf(fb->reason, sizeof fb->reason, "response cache: %.200s; using the in-process cache",
             why);
}

/* Whether o's ids can go into key names and SCAN patterns (no glob
 * characters, no ':'); else why not in err. */
static bool cache_owner_valid(const struct cache_owner *o, char *err, size_t errlen)
{
    if (o == NULL || o->tenant == NULL || !ident_valid(o->tenant)) {
        snprintf(err, errlen, "the tenant id is not [A-Za-z0-9_-]{1,64}");
        return false;
    }
    if (o->user != NULL && !ident_valid(o->user)) {
        snprintf(err, errlen, "the user id is not [A-Za-z0-9_-]{1,64}");
        return false;
    }
    return true;
}

/* A private entry holding a hit read from the server; NULL when it cannot
 * allocate (the lookup is then a miss). Never in the table, so charged
 * nothing. */
static struct cache_entry *cache_entry_of_hit(const uint8_t key[CACHE_KEY_BYTES],
                                              const struct cache_redis_hit *hit, int64_t now_ms)
{
    const struct cache_redis_record *rec = &hit->rec;
    struct cache_parts p = {
        .key = key,
        .text = rec->text,
        .model = rec->model,
        .finish = rec->finish_reason,
        .text_len = rec->text_len,
        .n_pieces = rec->n_pieces,
        .model_len = rec->model_len,
        .finish_len = rec->finish_len,
        .usage = &rec->usage,
        .created_at_ms = now_ms - hit->age_ms,
    };
    struct cache_entry *e = cache_entry_alloc(&p, 0);
    if (e == NULL)
        return NULL;
    for (size_t i = 0; i < rec->n_pieces; i++)
        e->data[i] = cache_redis_record_end(rec, i);
    return e;
}

bool cache_lookup(struct cache *c, const struct cache_owner *o, const uint8_t key[CACHE_KEY_BYTES],
                  int64_t now_ms, struct cache_view *out, struct cache_fallback *fb)
{
    cache_fallback_clear(fb);
    struct redis *r = cache_shared(c);
    if (r == NULL)
        return cache_get(c, key, now_ms, out);
    char err[200];
    if (!cache_owner_valid(o, err, sizeof err)) {
        cache_fell_back(fb, err);
        return cache_get(c, key, now_ms, out);
    }
    memset(out, 0, sizeof *out);
    bool found = false, corrupt = false;
    struct cache_redis_hit hit;
    enum redis_status st =
        cache_redis_get(r, o->tenant, key, &found, &corrupt, &hit, err, sizeof err);
    cache_note(c, r, st == REDIS_ST_OK, err);
    if (st != REDIS_ST_OK) {
        cache_fell_back(fb, err);
        return cache_get(c, key, now_ms, out);
    }
    if (corrupt)
        log_warn("response cache: deleted a malformed entry of tenant %s on Redis at %s", o->tenant,
                 redis_where(r));
    struct cache_entry *e = found ? cache_entry_of_hit(key, &hit, now_ms) : NULL;
    cache_redis_hit_free(&hit);
    pthread_mutex_lock(&c->lock);
    if (e != NULL)
        c->hits++;
    else
        c->misses++;
    pthread_mutex_unlock(&c->lock);
    if (e == NULL)
        return false;
    cache_view_of(e, out);
    return true;
}

/* Counts a store refused for its size (as cache_put does). */
static enum cache_put_result cache_reject(struct cache *c)
{
    pthread_mutex_lock(&c->lock);
    c->rejected++;
    pthread_mutex_unlock(&c->lock);
    return CACHE_PUT_TOO_BIG;
}

/* Stores on r; REDIS_ST_OK with *res set, or the failure in err (then the
 * caller falls back). Refusals (invalid, too big, no memory) send nothing. */
static enum redis_status cache_store_shared(struct cache *c, struct redis *r,
                                            const struct cache_owner *o,
                                            const uint8_t key[CACHE_KEY_BYTES], const char *text,
                                            size_t text_len, const size_t *piece_lens,
                                            size_t n_pieces, const struct cache_meta *meta,
                                            enum cache_put_result *res, char *err, size_t errlen)
{
    const char *model = meta != NULL && meta->model != NULL ? meta->model : "";
    const char *finish = meta != NULL && meta->finish_reason != NULL ? meta->finish_reason : "";
    size_t model_len = strlen(model), finish_len = strlen(finish);
    if (!cache_pieces_valid(text, text_len, piece_lens, n_pieces) || model_len > UINT32_MAX ||
        finish_len > UINT32_MAX) {
        *res = CACHE_PUT_INVALID;
        return REDIS_ST_OK;
    }
    size_t head_len = cache_redis_head_bytes(n_pieces, model_len, finish_len);
    size_t charge =
        head_len == SIZE_MAX ? SIZE_MAX : cache_redis_charge(r, o->tenant, head_len, text_len);
    /* Refused when either measure passes the bound: the server's charge
     * (blob and key name) or the table's, which a fallback applies. */
    if (charge > c->max_bytes ||
        cache_entry_bytes(text_len, n_pieces, model, finish) > c->max_bytes) {
        *res = cache_reject(c);
        return REDIS_ST_OK;
    }
    unsigned char *head = try_malloc(head_len);
    if (head == NULL) {
        *res = CACHE_PUT_NO_MEM;
        return REDIS_ST_OK;
    }
    static const struct llm_usage unknown = {
        .prompt_tokens = -1, .completion_tokens = -1, .cached_tokens = -1};
    cache_redis_encode_head(head, key, text_len, piece_lens, n_pieces, model, finish,
                            meta != NULL ? &meta->usage : &unknown);
    struct cache_redis_item it = {
        .tenant = o->tenant,
        .user = o->user,
        .key = key,
        .head = head,
        .head_len = head_len,
        .text = text,
        .text_len = text_len,
        .charge = charge,
    };
    size_t evicted = 0;
    enum redis_status st = cache_redis_put(r, &it, c->ttl_ms, c->max_bytes, &evicted, err, errlen);
    xfree(head);
    if (st != REDIS_ST_OK)
        return st;
    pthread_mutex_lock(&c->lock);
    c->inserts++;
    c->evictions += evicted;
    pthread_mutex_unlock(&c->lock);
    *res = CACHE_PUT_STORED;
    return REDIS_ST_OK;
}

enum cache_put_result cache_store(struct cache *c, const struct cache_owner *o,
                                  const uint8_t key[CACHE_KEY_BYTES], const char *text,
                                  size_t text_len, const size_t *piece_lens, size_t n_pieces,
                                  const struct cache_meta *meta, int64_t now_ms,
                                  struct cache_fallback *fb)
{
    cache_fallback_clear(fb);
    struct redis *r = cache_shared(c);
    if (r == NULL)
        return cache_put(c, key, text, text_len, piece_lens, n_pieces, meta, now_ms);
    char err[200];
    if (!cache_owner_valid(o, err, sizeof err)) {
        cache_fell_back(fb, err);
        return cache_put(c, key, text, text_len, piece_lens, n_pieces, meta, now_ms);
    }
    enum cache_put_result res = CACHE_PUT_INVALID;
    enum redis_status st = cache_store_shared(c, r, o, key, text, text_len, piece_lens, n_pieces,
                                              meta, &res, err, sizeof err);
    if (st == REDIS_ST_OK && res != CACHE_PUT_STORED)
        return res; /* refused before anything was sent: says nothing of the server */
    cache_note(c, r, st == REDIS_ST_OK, err);
    if (st == REDIS_ST_OK)
        return res;
    cache_fell_back(fb, err);
    return cache_put(c, key, text, text_len, piece_lens, n_pieces, meta, now_ms);
}

int cache_purge(struct cache *c, const char *tenant, const char *user, size_t *dropped, char *err,
                size_t errlen)
{
    if (errlen > 0)
        err[0] = '\0';
    struct redis *r = cache_shared(c);
    size_t remote = 0;
    int rc = 0;
    if (r != NULL) {
        char why[200];
        struct cache_owner o = {.tenant = tenant, .user = user};
        enum redis_status st = REDIS_ST_FAILED;
        if (cache_owner_valid(&o, why, sizeof why)) {
            st = cache_redis_purge(r, tenant, user, &remote, why, sizeof why);
            cache_note(c, r, st == REDIS_ST_OK, why);
        }
        if (st != REDIS_ST_OK) {
            snprintf(err, errlen, "response cache purge: %s", why);
            rc = -1;
        }
    }
    *dropped = remote + cache_clear(c);
    return rc;
}
