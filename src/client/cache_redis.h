/*
 * The response cache's entries on a shared Redis server (CACHE_BACKEND=redis,
 * issue 12): the blob an entry is stored as, and the round trips of a
 * lookup, a store and a purge. cache.c decides when to use it (and falls
 * back to the in-process table when the server cannot serve); this module
 * only speaks to the server. Every step that reads and writes more than one
 * key is one Lua script, so concurrent processes keep the bookkeeping
 * consistent.
 *
 * Keys (P is redis_prefix(), T the tenant, U a user):
 *   P cache:T:<64 hex of the cache key>  the entry's blob, PX the cache TTL
 *   P cache:T:u:U   set of the entry key names U's turns stored (no TTL:
 *                   members leave when their entry is evicted, dropped or
 *                   purged, so it never outgrows the tracked entries)
 *   P cache:lru     sorted set: entry key name -> last use (server time in
 *                   microseconds, kept strictly increasing so that ties
 *                   cannot reorder uses)
 *   P cache:size    hash: entry key name -> bytes charged (value + key name)
 *   P cache:owner   hash: entry key name -> its user set's key name
 *   P cache:bytes   the sum of cache:size, kept <= the storing process's
 *                   max_bytes by evicting least recently used entries
 * An entry that expired by TTL stays in the three bookkeeping keys until
 * evicted or purged, which then just subtracts its charge. Processes with
 * different CACHE_MAX_BYTES share the keys; each store evicts down to its
 * own bound.
 *
 * The blob, all integers little-endian, validated field by field on read:
 *   u8 version (1) | i64 born (server ms, written by the store script) |
 *   u8 flags (bit 0: usage.estimated; others 0) | 32-byte cache key |
 *   i64 prompt, completion, cached tokens | u32 model_len, finish_len,
 *   n_pieces, text_len | model | finish_reason | u32 end of each piece |
 *   text.
 * The key inside makes a blob copied under another name invalid.
 */
#ifndef MEMCHAT_CLIENT_CACHE_REDIS_H
#define MEMCHAT_CLIENT_CACHE_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/cache.h"
#include "net/redis.h"

/* Room for any key name of this module, NUL included. */
#define CACHE_REDIS_KEY_MAX 256
/* Bytes of a blob before its model name. */
#define CACHE_REDIS_FIXED_BYTES 82

/* A blob taken apart: every pointer points into the blob. */
struct cache_redis_record {
    int64_t born_ms; /* server time of the store */
    struct llm_usage usage;
    const char *model, *finish_reason; /* not NUL-terminated: *_len bytes */
    size_t model_len, finish_len;
    const unsigned char *ends; /* n_pieces u32 LE end offsets (cache_redis_record_end) */
    size_t n_pieces;
    const char *text;
    size_t text_len;
};

/* A hit of cache_redis_get(): the reply owns the bytes rec points into. */
struct cache_redis_hit {
    redisReply *reply;
    struct cache_redis_record rec;
    int64_t age_ms; /* server time since the store, >= 0 */
};

/* The entry's key name into out ("" when it does not fit). */
void cache_redis_key_name(const struct redis *r, const char *tenant,
                          const uint8_t key[CACHE_KEY_BYTES], char out[CACHE_REDIS_KEY_MAX]);
/* The user set's key name into out ("" when it does not fit). */
void cache_redis_user_set_name(const struct redis *r, const char *tenant, const char *user,
                               char out[CACHE_REDIS_KEY_MAX]);

/* Bytes of a blob's head (everything but the text); SIZE_MAX on overflow. */
size_t cache_redis_head_bytes(size_t n_pieces, size_t model_len, size_t finish_len);
/* Writes the head of key's blob into out (cache_redis_head_bytes() bytes;
 * born is left 0 for the store script). piece_lens must add up to text_len. */
void cache_redis_encode_head(unsigned char *out, const uint8_t key[CACHE_KEY_BYTES],
                             size_t text_len, const size_t *piece_lens, size_t n_pieces,
                             const char *model, const char *finish_reason,
                             const struct llm_usage *usage);
/* Parses a blob read at key's name into *out; false when it is not exactly
 * a version-1 blob of key (any length, flag, offset or text out of place). */
bool cache_redis_decode(const char *blob, size_t len, const uint8_t key[CACHE_KEY_BYTES],
                        struct cache_redis_record *out);
/* The end offset of piece i (< rec->n_pieces) in the text. */
uint32_t cache_redis_record_end(const struct cache_redis_record *rec, size_t i);

/* The bytes an entry is charged on the server: its blob plus its key name. */
size_t cache_redis_charge(const struct redis *r, const char *tenant, size_t head_len,
                          size_t text_len);

/* Looks key of tenant up, marking it most recently used: REDIS_ST_OK with
 * *found and *hit (release with cache_redis_hit_free) on a hit, *found false
 * on a miss (absent, or not a valid blob: then deleted, *corrupt set);
 * otherwise the status with err naming the server. */
enum redis_status cache_redis_get(struct redis *r, const char *tenant,
                                  const uint8_t key[CACHE_KEY_BYTES], bool *found, bool *corrupt,
                                  struct cache_redis_hit *hit, char *err, size_t errlen);
/* Frees a hit's reply and clears it; a cleared hit is a no-op. */
void cache_redis_hit_free(struct cache_redis_hit *hit);

/* What cache_redis_put() stores: a head from cache_redis_encode_head() and
 * the text after it, charged charge bytes (cache_redis_charge). */
struct cache_redis_item {
    const char *tenant, *user; /* user NULL: in no user set */
    const uint8_t *key;        /* CACHE_KEY_BYTES */
    const unsigned char *head;
    size_t head_len;
    const char *text;
    size_t text_len;
    size_t charge;
};
/* Stores it with a TTL of ttl_ms (0: none), then evicts least recently used
 * entries until the server's total fits max_bytes; their count in
 * *evicted. charge must not exceed max_bytes (the caller refuses those). */
enum redis_status cache_redis_put(struct redis *r, const struct cache_redis_item *it,
                                  int64_t ttl_ms, size_t max_bytes, size_t *evicted, char *err,
                                  size_t errlen);

/* Deletes the entries tenant's turns by user stored (user NULL: all of
 * tenant's, and its user sets) with their bookkeeping, adding how many
 * entries existed to *dropped. On failure what was deleted stays deleted:
 * running it again finishes. */
enum redis_status cache_redis_purge(struct redis *r, const char *tenant, const char *user,
                                    size_t *dropped, char *err, size_t errlen);

#endif
