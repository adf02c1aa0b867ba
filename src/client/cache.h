/*
 * The response cache (DESIGN.md, pipeline stage 5; issue 4): an in-process
 * LRU of finished replies with a TTL and a byte budget, so a repeated
 * request is answered without calling the provider.
 *
 * The key is BLAKE2b-256 (libsodium's crypto_generichash, unkeyed) over a
 * domain tag and the length-prefixed tenant, provider, model and canonical
 * request. The canonical request (cache_canonical_request) holds everything
 * that decides the reply, including the system message that carries the
 * recalled memories, so a turn that recalls other memories misses; the
 * tenant in the key means no tenant is ever served another's answer, even
 * for a byte-identical request.
 *
 * A stored reply keeps the deltas it arrived in (one buffer plus their end
 * offsets), so a hit is replayed as the same sequence of `delta` events.
 *
 * Thread safety: one mutex guards the table and the lists; get and put are
 * O(1) (a hash table on the key's first 8 bytes, which are already uniformly
 * random, and an intrusive doubly linked LRU list). cache_get hands out a
 * reference-counted view of the immutable entry, valid until
 * cache_view_release() even if the entry is evicted, expired, replaced or
 * the cache freed meanwhile: no copy on the hit path, no use after free.
 *
 * Clock: every call takes now_ms from the caller (tests never sleep). Use
 * one clock for a cache, preferably clock_mono_ms(); created_at_ms is on it.
 *
 * Shared on Redis (CACHE_BACKEND=redis, issue 12): after cache_use_redis(),
 * cache_lookup/cache_store/cache_purge keep the entries on the server
 * (client/cache_redis.h gives the keys and the blob), so a second process
 * gets the first one's answer; the TTL is the server's, max_bytes bounds
 * memchat's entries there too. While the server cannot serve, they fall
 * back to this process's table and say so (struct cache_fallback); the
 * plain cache_get/cache_put always use the table.
 */
#ifndef MEMCHAT_CLIENT_CACHE_H
#define MEMCHAT_CLIENT_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "llm/provider.h"

struct cJSON;

/* Bytes of a cache key (BLAKE2b-256). */
#define CACHE_KEY_BYTES 32
/* Size of the key_prefix text of the `cache` event: 16 hex digits + NUL. */
#define CACHE_KEY_PREFIX_SIZE 17

/* CACHE_POLICY: which turns may be answered from (and stored in) the cache. */
enum cache_policy {
    CACHE_POLICY_OFF = 0,      /* never */
    CACHE_POLICY_TEMPERATURE0, /* only when the temperature is explicitly 0 */
    CACHE_POLICY_ALWAYS,       /* every turn, whatever its temperature */
};

/* Whether a turn with this temperature may use the cache under policy.
 * temperature is llm_request's: NAN means unset (the model's own default,
 * which samples randomly), so under temperature0 an unset temperature is
 * NOT cacheable; 0.0 and -0.0 are. */
bool cache_policy_allows(enum cache_policy policy, double temperature);
/* Parses "off", "temperature0" or "always" into *out; false (out untouched)
 * for anything else. */
bool cache_policy_parse(const char *name, enum cache_policy *out);
/* The name of policy, as cache_policy_parse() accepts it. */
const char *cache_policy_name(enum cache_policy policy);

/* The canonical JSON of what decides the reply to req, with a fixed key
 * order and no whitespace: {"model","messages":[{"role","content"}...] in
 * order, "recalled":[texts] (the offline provider answers from them; real
 * models see them in the system message, which is there too), "temperature"
 * (null when unset or not finite; -0 as 0), "max_tokens" (as given: 0 means
 * the provider's default, which the provider in the key decides), "extra"}.
 * extra is anything else the caller sends that changes the reply (tool
 * definitions, stop sequences, response format), or NULL (printed null);
 * its object keys are sorted recursively (byte order, stable), so the same
 * settings built in another order give the same text. no_stream is left
 * out: it changes how the reply is cut, not what it says. Returns an
 * allocated string (free with xfree) and its length in *len when len is not
 * NULL; NULL only when memory runs out (the turn then skips the cache). */
char *cache_canonical_request(const struct llm_request *req, const struct cJSON *extra,
                              size_t *len);

/* The cache key of a request: BLAKE2b-256 of "memchat.cache.v1" and then,
 * for tenant, provider, model and canonical in that order, the part's
 * length as 8 bytes little-endian followed by its bytes, so no two
 * different tuples share an encoding ("ab"+"c" is not "a"+"bc"). A NULL
 * string counts as "". canonical is canonical_len bytes (not necessarily
 * NUL-terminated). */
void cache_key(const char *tenant, const char *provider, const char *model, const char *canonical,
               size_t canonical_len, uint8_t out[CACHE_KEY_BYTES]);
/* The `cache` event's key_prefix: the key's first 8 bytes as 16 lowercase
 * hex digits, NUL-terminated. */
void cache_key_prefix(const uint8_t key[CACHE_KEY_BYTES], char out[CACHE_KEY_PREFIX_SIZE]);

struct cache;
struct cache_entry;

/* What cache_get() lends: the stored reply and its metadata. Every pointer
 * stays valid until cache_view_release(), whatever happens to the cache. */
struct cache_view {
    struct cache_entry *entry; /* the reference held; private */
    const char *text;          /* the whole reply, NUL-terminated */
    size_t text_len;
    size_t n_pieces;           /* the deltas it arrived in (cache_view_piece) */
    const uint32_t *ends;      /* private: end offset of each piece in text */
    const char *model;         /* the model that answered */
    const char *finish_reason; /* as the provider said it, "" when none */
    struct llm_usage usage;    /* the original call's usage */
    int64_t created_at_ms;     /* now_ms of the cache_put() */
};

/* What cache_put() stores besides the reply text. Strings are copied; NULL
 * counts as "". */
struct cache_meta {
    const char *model;
    const char *finish_reason;
    struct llm_usage usage;
};

/* Counters for the metrics pane; a consistent snapshot. */
struct cache_stats {
    size_t entries;     /* entries in the cache now */
    size_t bytes;       /* their charged bytes (cache_entry_bytes); <= max_bytes */
    size_t max_bytes;   /* the budget */
    uint64_t hits;      /* cache_get() that found a fresh entry */
    uint64_t misses;    /* cache_get() that did not (absent or expired) */
    uint64_t inserts;   /* entries stored (replacements included) */
    uint64_t evictions; /* entries pushed out to make room (least recently used first) */
    uint64_t expired;   /* entries dropped because they outlived the TTL */
    uint64_t rejected;  /* cache_put() refused: larger than the whole budget */
};

/* Results of cache_put(). */
enum cache_put_result {
    CACHE_PUT_STORED = 0, /* stored (replacing an entry with the same key) */
    CACHE_PUT_TOO_BIG,    /* the entry alone exceeds max_bytes: not stored */
    CACHE_PUT_INVALID,    /* the piece lengths do not add up to text_len: not stored */
    CACHE_PUT_NO_MEM,     /* the entry could not be allocated: not stored */
};

/* A new empty cache holding at most max_bytes (CACHE_MAX_BYTES; 0 stores
 * nothing) of entries that expire ttl_ms after their put (CACHE_TTL; 0:
 * never). Never NULL. Free with cache_free(). */
struct cache *cache_new(size_t max_bytes, int64_t ttl_ms);
/* Frees c and drops its references to its entries; entries still lent to
 * views live on until their cache_view_release(). NULL is a no-op. */
void cache_free(struct cache *c);

/* The bytes an entry is charged: its one allocation (bookkeeping, key,
 * piece offsets, text, model and finish reason with their NULs) plus its
 * hash-table slot. The bucket array beyond one slot per entry is not
 * counted. */
size_t cache_entry_bytes(size_t text_len, size_t n_pieces, const char *model,
                         const char *finish_reason);

/* Looks key up at now_ms. An entry is fresh while now_ms < created_at_ms +
 * ttl_ms (so at exactly ttl_ms after its put it has expired: the bound is
 * exclusive); an expired one is dropped and counts as a miss. On a hit,
 * marks the entry most recently used, fills *out with a reference (release
 * it with cache_view_release()) and returns true; otherwise returns false
 * and leaves out->entry NULL. */
bool cache_get(struct cache *c, const uint8_t key[CACHE_KEY_BYTES], int64_t now_ms,
               struct cache_view *out);
/* Piece i (< v->n_pieces) of the viewed reply: its bytes, and its length in
 * *len. Not NUL-terminated except for the last. */
const char *cache_view_piece(const struct cache_view *v, size_t i, size_t *len);
/* Drops the view's reference (freeing the entry when the cache dropped it
 * too) and clears v. Safe from any thread; a cleared or zeroed view is a
 * no-op. */
void cache_view_release(struct cache_view *v);

/* Stores a reply under key at now_ms: text (text_len bytes) as it arrived
 * in n_pieces deltas of piece_lens[i] bytes each, plus meta. The entry is
 * copied (the caller keeps its buffers). Drops expired entries, then evicts
 * least recently used ones until the new entry fits in max_bytes. Store only
 * complete replies: not failed, cancelled, cut short or asking for tools. */
enum cache_put_result cache_put(struct cache *c, const uint8_t key[CACHE_KEY_BYTES],
                                const char *text, size_t text_len, const size_t *piece_lens,
                                size_t n_pieces, const struct cache_meta *meta, int64_t now_ms);

/* Drops every entry (purge: the keys are hashes, so the entries of one
 * tenant or user cannot be told apart and a purge clears the process's
 * whole cache) and returns how many were dropped. Entries lent to views
 * live on until their cache_view_release(), as with cache_free(). entries
 * and bytes go to 0; no other counter changes (dropped entries count as
 * neither evictions nor expired). */
size_t cache_clear(struct cache *c);

/* A snapshot of c's counters. With Redis, hits, misses, inserts, evictions
 * (made by this process's stores) and rejected count its calls on the
 * server too; entries and bytes stay the in-process table's. */
void cache_stats(struct cache *c, struct cache_stats *out);

/* --- shared on Redis ---------------------------------------------------- */

struct redis;

/* Whom an entry belongs to: its tenant (in its Redis key, besides the hash
 * key that already includes it) and the user whose turn stored it (for
 * purge). Both match [A-Za-z0-9_-]{1,64}; user may be NULL. */
struct cache_owner {
    const char *tenant;
    const char *user;
};

/* Filled by the calls below: fell_back is true when Redis could not serve
 * the call and the in-process cache did; reason says why, for the
 * backend.fallback event (names the server as redis_where() does, never a
 * password). */
struct cache_fallback {
    bool fell_back;
    char reason[256];
};

/* Shares c's entries on Redis (CACHE_BACKEND=redis): r is lent and must
 * outlive c. Call before c is used; without it, the calls below are
 * cache_get/cache_put. */
void cache_use_redis(struct cache *c, struct redis *r);

/* As cache_get(), on Redis when c uses it: a hit there is a private entry
 * (cache_view_release frees it; created_at_ms is now_ms minus its age on
 * the server's clock) and marks it most recently used; a miss there is a
 * miss, and a blob that does not parse is a miss and deleted. When Redis
 * is down or fails (or o's ids cannot be keys), cache_get() answers and
 * *fb says why. fb may be NULL. */
bool cache_lookup(struct cache *c, const struct cache_owner *o, const uint8_t key[CACHE_KEY_BYTES],
                  int64_t now_ms, struct cache_view *out, struct cache_fallback *fb);

/* As cache_put(), on Redis when c uses it: stored under o's tenant with
 * the TTL set on the server, listed under o's user for purge, then the
 * least recently used entries on the server are evicted until their total
 * fits max_bytes. TOO_BIG when the entry exceeds max_bytes here or as
 * charged on the server (nothing is sent). When Redis is down or fails,
 * cache_put() stores it and *fb says why. fb may be NULL. */
enum cache_put_result cache_store(struct cache *c, const struct cache_owner *o,
                                  const uint8_t key[CACHE_KEY_BYTES], const char *text,
                                  size_t text_len, const size_t *piece_lens, size_t n_pieces,
                                  const struct cache_meta *meta, int64_t now_ms,
                                  struct cache_fallback *fb);

/* Drops the entries of tenant stored by turns of user (user NULL: all of
 * the tenant's) from Redis when it is used, and clears the in-process
 * cache (as cache_clear). *dropped = entries dropped in all. 0, or -1 with
 * a message naming the server when Redis could not be reached (the
 * in-process part is still cleared; running it again finishes). */
int cache_purge(struct cache *c, const char *tenant, const char *user, size_t *dropped, char *err,
                size_t errlen);

#endif
