/*
 * The memory manager (memory/manager.h): a tenant's memories over one
 * embedder and one vector store, with the tenant's document frequencies
 * (table memory_df) and history (store/memhist.h) kept in the data file.
 *
 * Adding runs in three steps so the write transaction stays short and
 * holds no embedding or network call: first every text is checked and
 * split into pieces (at sentence, else word, else character boundaries,
 * never inside a UTF-8 sequence), then the pieces are embedded as
 * documents and each is placed in a plan (a new record, a replacement of
 * a record whose id an import gives, or a refresh of a near-duplicate,
 * found in the store or earlier in the same batch), and only then one
 * transaction writes the namespace, the records, the frequency changes
 * and the history rows, all or nothing. A memory_add_batch writes history
 * op "import" for what it adds, memory_add and memory_add_conversation
 * write "add"; a refresh is "refresh" in both.
 *
 * Document frequencies count, per namespace, the stored texts (pieces)
 * holding each term embedder_terms() gives: +1 per distinct term of an
 * added text, -1 per term of a text that a refresh, replacement or delete
 * removes; a row whose count reaches 0 is removed (the table's CHECK
 * wants df > 0). Queries are weighted with them; stored vectors never
 * are, so they never change when the corpus grows.
 *
 * Every operation first checks the namespace against the embedder
 * (memory_check) except two: memory_stats, which is how a user sees what
 * a namespace was made with, and a whole-tenant memory_purge, because
 * forgetting everything must work whatever the configuration says (it
 * needs no embedder). A user's purge is checked: its frequency update
 * needs the namespace's own embedder's terms.
 */
#include "config.h"

#include "memory/manager.h"

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "config/config.h"
#include "config/vars.h"
#include "memory/embed.h"
#include "memory/filter.h"
#include "memory/vscan.h"
#include "store/db.h"
#include "store/memhist.h"
#include "util/alloc.h"
#include "util/msg.h"
#include "util/clock.h"
#include "util/ident.h"
#include "util/json.h"
#include "util/utf8.h"
#include "util/uuid.h"

#define MEMORY_TEXT_MAX ((size_t)16 << 20) /* bytes of one memory's text, before chunking */
#define MEMORY_META_MAX ((size_t)65536)    /* bytes of one memory's metadata JSON */
#define MEMORY_K_MAX    ((size_t)1000)     /* most memories one retrieval returns */
#define MEMORY_VEC_MAX  65536              /* floats of an imported vector */
#define MEMORY_RRF_K    60.0               /* reciprocal rank fusion: 1/(60+rank) */
#define MEMORY_PAGE     ((size_t)1000)     /* records per list call when walking a namespace */

struct memory_manager {
    struct memory_settings set;
    struct embedder *e; /* owned */
    struct vstore *s;   /* owned */
    struct db *db;      /* the caller's */
};

static const char mm_df_get_sql[] = "SELECT df FROM memory_df WHERE tenant = ?1 AND term = ?2";
static const char mm_df_inc_sql[] =
    "INSERT INTO memory_df (tenant, term, df) VALUES (?1, ?2, ?3)"
    " ON CONFLICT (tenant, term) DO UPDATE SET df = df + excluded.df";
/* A decrement removes the rows it would take to 0 or below first, then
 * lowers the others, so the CHECK (df > 0) never sees a 0. */
static const char mm_df_drop_sql[] =
    "DELETE FROM memory_df WHERE tenant = ?1 AND term = ?2 AND df <= ?3";
static const char mm_df_dec_sql[] =
    "UPDATE memory_df SET df = df - ?3 WHERE tenant = ?1 AND term = ?2";
static const char mm_df_purge_sql[] = "DELETE FROM memory_df WHERE tenant = ?1";

/* --- small helpers ------------------------------------------------------ */

/* Puts "prefix" before the message already in err (batch positions). */
static void mm_prefix(char *err, size_t errlen, const char *prefix)
{
    if (err == NULL || errlen == 0 || prefix[0] == '\0')
        return;
    char *old = xstrdup(err);
    snprintf(err, errlen, "%s%s", prefix, old);
    xfree(old);
}

/* s as it may appear in a message: at most 40 characters, quotes,
 * backslashes, controls and non-ASCII bytes escaped, so a hostile value
 * cannot reach a terminal raw. */
static const char *mm_quote(const char *s, char *out, size_t outlen)
{
    size_t o = 0, i = 0;
    for (; s[i] != '\0' && i < 40 && o + 5 < outlen; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
            o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", c);
        else
            out[o++] = (char)c;
    }
    if (s[i] != '\0' && o + 4 < outlen) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}

static bool mm_is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* True when s[0..n) holds only ASCII whitespace. */
static bool mm_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!mm_is_ws(s[i]))
            return false;
    return true;
}

/* Code points in valid UTF-8 s[0..n). */
static size_t mm_chars(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80)
            c++;
    return c;
}

/* A kind is [a-z_]{1,32}. */
static bool mm_kind_valid(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n > MEM_KIND_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((k[i] >= 'a' && k[i] <= 'z') || k[i] == '_'))
            return false;
    return true;
}

/* Copies a UUID lowercased (ids are stored in one case, so lookups and
 * filters compare equal). */
static void mm_uuid_lower(const char *in, char out[MC_UUID_STRLEN + 1])
{
    for (size_t i = 0; i < MC_UUID_STRLEN; i++)
        out[i] = (in[i] >= 'A' && in[i] <= 'Z') ? (char)(in[i] - 'A' + 'a') : in[i];
    out[MC_UUID_STRLEN] = '\0';
}

/* Copies a string known to fit (validated ids and kinds). */
static void mm_copy(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src);
}

/* Checks a memory's text: present, valid UTF-8, not only whitespace, at
 * most MEMORY_TEXT_MAX bytes. what names it ("text", "query"). */
static enum memory_status mm_check_text(const char *text, const char *what, char *err,
                                        size_t errlen)
{
    if (text == NULL) {
        msg_set(err, errlen, "%s is missing", what);
        return MEMORY_ERR_INPUT;
    }
    size_t n = strlen(text), bad = 0;
    if (n > MEMORY_TEXT_MAX) {
        msg_set(err, errlen, "%s is %zu bytes; at most %zu are accepted", what, n, MEMORY_TEXT_MAX);
        return MEMORY_ERR_INPUT;
    }
    if (!utf8_valid(text, n, &bad)) {
        msg_set(err, errlen, "%s is not valid UTF-8 (bad byte at offset %zu)", what, bad);
        return MEMORY_ERR_INPUT;
    }
    if (mm_blank(text, n)) {
        msg_set(err, errlen, "%s is empty", what);
        return MEMORY_ERR_INPUT;
    }
    return MEMORY_OK;
}

/* Checks a tenant, user or agent id (what names it). */
static enum memory_status mm_check_ident(const char *id, const char *what, char *err, size_t errlen)
{
    if (id != NULL && ident_valid(id))
        return MEMORY_OK;
    char q[200];
    if (id == NULL)
        msg_set(err, errlen, "%s is missing (accepted: [A-Za-z0-9_-]{1,64})", what);
    else
        msg_set(err, errlen, "%s \"%s\" is not a valid id (accepted: [A-Za-z0-9_-]{1,64})", what,
                mm_quote(id, q, sizeof q));
    return MEMORY_ERR_INPUT;
}

/* Parses metadata text into a JSON object (NULL text: an empty one).
 * NULL with a message when it is not one object of at most 64 KiB of
 * valid UTF-8. */
static cJSON *mm_meta_parse(const char *meta, char *err, size_t errlen)
{
    if (meta == NULL)
        return cJSON_CreateObject();
    size_t n = strlen(meta), bad = 0;
    if (n > MEMORY_META_MAX) {
        msg_set(err, errlen, "metadata is %zu bytes; at most %zu are accepted", n, MEMORY_META_MAX);
        return NULL;
    }
    if (!utf8_valid(meta, n, &bad)) {
        msg_set(err, errlen, "metadata is not valid UTF-8 (bad byte at offset %zu)", bad);
        return NULL;
    }
    const char *end = NULL;
    cJSON *j = json_parse(meta, n + 1, &end, true);
    if (j == NULL && errno == ENOMEM) {
        msg_set(err, errlen, "out of memory reading the metadata");
        return NULL;
    }
    if (j == NULL) {
        size_t at = end != NULL && end >= meta ? (size_t)(end - meta) : 0;
        msg_set(err, errlen, "metadata is not valid JSON (syntax error at byte %zu)", at);
        return NULL;
    }
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        msg_set(err, errlen, "metadata is not a JSON object (e.g. {\"project\": \"apollo\"})");
        return NULL;
    }
    return j;
}

/* j printed compactly, in a string the caller frees with xfree; "{}" for
 * NULL. (Printing cannot fail: cJSON's allocator aborts, util/alloc.h.) */
static char *mm_print(const cJSON *j)
{
    char *p = j != NULL ? cJSON_PrintUnformatted(j) : NULL;
    if (p == NULL)
        return xstrdup("{}");
    char *r = xstrdup(p);
    cJSON_free(p);
    return r;
}

/* A number, or null for NAN, added to o. */
static void mm_add_score(cJSON *o, const char *name, double v)
{
    if (isnan(v))
        cJSON_AddNullToObject(o, name);
    else
        cJSON_AddNumberToObject(o, name, v);
}

/* --- settings and names ------------------------------------------------- */

const char *memory_method_name(enum memory_method m)
{
    switch (m) {
    case MEMORY_SIMILARITY:
        return "similarity";
    case MEMORY_MMR:
        return "mmr";
    case MEMORY_HYBRID:
        return "hybrid";
    }
    return "mmr";
}

int memory_method_parse(const char *name, enum memory_method *out)
{
    static const enum memory_method all[] = {MEMORY_SIMILARITY, MEMORY_MMR, MEMORY_HYBRID};
    for (size_t i = 0; name != NULL && i < sizeof all / sizeof all[0]; i++) {
        if (strcmp(name, memory_method_name(all[i])) == 0) {
            *out = all[i];
            return 0;
        }
    }
    return -1;
}

const char *memory_status_reason(enum memory_status st)
{
    switch (st) {
    case MEMORY_OK:
        return "ok";
    case MEMORY_ERR_INPUT:
        return "bad_input";
    case MEMORY_ERR_MISMATCH:
        return "dimension_mismatch";
    case MEMORY_ERR_NOT_FOUND:
        return "not_found";
    case MEMORY_ERR_EMBED:
        return "embedder_down";
    case MEMORY_ERR_STORE:
        return "store_down";
    case MEMORY_ERR_CANCELLED:
        return "cancelled";
    }
    return "store_down";
}

void memory_settings_from_config(const struct config *cfg, struct memory_settings *out)
{
    memset(out, 0, sizeof *out);
    if (memory_method_parse(config_str(cfg, CFG_MEMORY_RETRIEVAL_METHOD), &out->method) != 0)
        out->method = MEMORY_MMR;
    out->k = (size_t)config_int(cfg, CFG_MEMORY_RETRIEVAL_K);
    out->fetch_k = (size_t)config_int(cfg, CFG_MEMORY_FETCH_K);
    /* An emptied number is unset: no diversity term, no dedup. */
    double d = config_number(cfg, CFG_MEMORY_MMR_DIVERSITY);
    out->diversity = isnan(d) ? 0.0 : d;
    out->fusion = strcmp(config_str(cfg, CFG_MEMORY_HYBRID_FUSION), "rrf") == 0
                      ? MEMORY_FUSION_RRF
                      : MEMORY_FUSION_SCORE;
    double w = config_number(cfg, CFG_MEMORY_HYBRID_WEIGHT);
    out->keyword_weight = isnan(w) ? 0.5 : w;
    double t = config_number(cfg, CFG_MEMORY_DEDUP_THRESHOLD);
    out->dedup_threshold = isnan(t) ? 2.0 : t;
    out->max_bytes = (size_t)config_int(cfg, CFG_MEMORY_MAX_BYTES);
    out->user_scope = strcmp(config_str(cfg, CFG_MEMORY_SCOPE), "user") == 0;
    double ms = config_number(cfg, CFG_MEMORY_MIN_SIMILARITY);
    out->min_similarity = isnan(ms) ? -1.0 : ms;
}

/* --- life cycle --------------------------------------------------------- */

struct memory_manager *memory_new(const struct memory_settings *set, struct embedder *e,
                                  struct vstore *s, struct db *db, char *err, size_t errlen)
{
    const char *bad = NULL;
    if (e == NULL || s == NULL || db == NULL || set == NULL)
        bad = "memory_new: an embedder, a store, a data file and settings are required";
    else if (set->k == 0 || set->k > MEMORY_K_MAX)
        bad = "memory_new: MEMORY_RETRIEVAL_K must be 1..1000";
    else if (!(set->diversity >= 0.0 && set->diversity <= 1.0))
        bad = "memory_new: MEMORY_MMR_DIVERSITY must be 0..1";
    else if (!(set->keyword_weight >= 0.0 && set->keyword_weight <= 1.0))
        bad = "memory_new: MEMORY_HYBRID_WEIGHT must be 0..1";
    else if (isnan(set->dedup_threshold))
        bad = "memory_new: MEMORY_DEDUP_THRESHOLD must be a number";
    else if (set->max_bytes < 16)
        bad = "memory_new: MEMORY_MAX_BYTES must be at least 16";
    else if (e->dim <= 0 || e->max_bytes < 16 || e->max_batch == 0)
        bad = "memory_new: the embedder reports no dimension or limits";
    if (bad != NULL) {
        msg_set(err, errlen, "%s", bad);
        embedder_free(e);
        store_free(s);
        return NULL;
    }
    struct memory_manager *m = xcalloc(1, sizeof *m);
    m->set = *set;
    m->e = e;
    m->s = s;
    m->db = db;
    return m;
}

struct memory_manager *memory_new_from_config(const struct config *cfg, struct db *db,
                                              struct store_cache *cache, char *err, size_t errlen)
{
    struct embedder *e = embedder_new(cfg, err, errlen);
    if (e == NULL)
        return NULL;
    struct vstore *s = store_new(cfg, db, cache, err, errlen);
    if (s == NULL) {
        embedder_free(e);
        return NULL;
    }
    struct memory_settings set;
    memory_settings_from_config(cfg, &set);
    return memory_new(&set, e, s, db, err, errlen);
}

void memory_free(struct memory_manager *m)
{
    if (m == NULL)
        return;
    store_free(m->s);
    embedder_free(m->e);
    xfree(m);
}

struct embedder *memory_embedder(struct memory_manager *m)
{
    return m->e;
}

struct vstore *memory_store(struct memory_manager *m)
{
    return m->s;
}

bool memory_failure_remote(struct memory_manager *m, enum memory_status st)
{
    if (st == MEMORY_ERR_EMBED)
        return m->e->remote && m->e->last_fail != 0;
    if (st == MEMORY_ERR_STORE)
        return m->s->remote && m->s->last_fail != 0;
    return false;
}

/* --- the namespace check ------------------------------------------------ */

/* Validates tenant, reads its namespace into *ns (*exists false and ns
 * zeroed when there is none) and compares it with the embedder. */
static enum memory_status mm_ns(struct memory_manager *m, const char *tenant, struct store_ns *ns,
                                bool *exists, char *err, size_t errlen)
{
    memset(ns, 0, sizeof *ns);
    *exists = false;
    enum memory_status st = mm_check_ident(tenant, "tenant", err, errlen);
    if (st != MEMORY_OK)
        return st;
    int rc = m->s->ops->ns_get(m->s, tenant, ns, err, errlen);
    if (rc < 0)
        return MEMORY_ERR_STORE;
    if (rc == 1) {
        memset(ns, 0, sizeof *ns);
        return MEMORY_OK;
    }
    *exists = true;
    const struct embedder *e = m->e;
    bool dn = strcmp(ns->embedder, e->name) != 0;
    bool dm = strcmp(ns->model, e->model) != 0;
    bool dd = ns->dim != e->dim;
    if (!dn && !dm && !dd)
        return MEMORY_OK;
    /* Name the first setting that differs with the configured identity,
     * and every setting that would restore the stored one. */
    char now[256], fix[256];
    if (dn)
        snprintf(now, sizeof now, "EMBEDDINGS_PROVIDER is %s (%s, %d dimensions)", e->name,
                 e->model, e->dim);
    else if (dm)
        snprintf(now, sizeof now, "EMBEDDINGS_MODEL is %s (%s, %d dimensions)", e->model, e->name,
                 e->dim);
    else
        snprintf(now, sizeof now, "EMBEDDINGS_DIMENSION is %d (%s, %s)", e->dim, e->name, e->model);
    size_t l = 0;
    fix[0] = '\0';
    if (dn)
        l += (size_t)snprintf(fix + l, sizeof fix - l, "EMBEDDINGS_PROVIDER=%s", ns->embedder);
    if (dm && l < sizeof fix)
        l += (size_t)snprintf(fix + l, sizeof fix - l, "%sEMBEDDINGS_MODEL=%s", l ? " " : "",
                              ns->model);
    if (dd && l < sizeof fix)
        snprintf(fix + l, sizeof fix - l, "%sEMBEDDINGS_DIMENSION=%d", l ? " " : "", ns->dim);
    msg_set(err, errlen,
            "tenant %s: memories were stored with embedder %s (%s, %d dimensions) but %s; set "
            "%s again, or re-embed them with the new one: memchat memory reembed --tenant %s",
            tenant, ns->embedder, ns->model, ns->dim, now, fix, tenant);
    return MEMORY_ERR_MISMATCH;
}

enum memory_status memory_check(struct memory_manager *m, const char *tenant, char *err,
                                size_t errlen)
{
    struct store_ns ns;
    bool exists;
    return mm_ns(m, tenant, &ns, &exists, err, errlen);
}

/* --- document frequencies ----------------------------------------------- */

/* Pending changes of document frequencies: (term, +1/-1) pairs, summed
 * per term when applied. */
struct mm_df_change {
    uint32_t term;
    int32_t d;
};
struct mm_df {
    struct mm_df_change *v;
    size_t n, cap;
};

/* Counts text's distinct terms with sign (+1 added, -1 removed). */
static void mm_df_text(const struct embedder *e, struct mm_df *acc, const char *text, int sign)
{
    size_t n = 0;
    uint32_t *t = embedder_terms(e, text, strlen(text), &n);
    if (t == NULL)
        return;
    if (acc->n + n > acc->cap) {
        size_t cap = acc->cap ? acc->cap : 256;
        while (cap < acc->n + n)
            cap *= 2;
        acc->v = xreallocarray(acc->v, cap, sizeof *acc->v);
        acc->cap = cap;
    }
    for (size_t i = 0; i < n; i++)
        acc->v[acc->n++] = (struct mm_df_change){t[i], sign};
    xfree(t);
}

static int mm_df_cmp(const void *a, const void *b)
{
    uint32_t x = ((const struct mm_df_change *)a)->term;
    uint32_t y = ((const struct mm_df_change *)b)->term;
    return x < y ? -1 : x > y;
}

/* Runs one df statement with ?1 tenant, ?2 term, ?3 count. */
static int mm_df_step(sqlite3_stmt *st, const char *tenant, uint32_t term, int64_t count)
{
    sqlite3_reset(st);
    int rc = sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    rc = rc ? rc : sqlite3_bind_int64(st, 2, (sqlite3_int64)term);
    rc = rc ? rc : sqlite3_bind_int64(st, 3, count);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* Writes the summed changes of acc for tenant (inside the caller's
 * transaction) and empties acc. */
static int mm_df_apply(struct db *db, const char *tenant, struct mm_df *acc, char *err,
                       size_t errlen)
{
    int result = 0;
    sqlite3 *h = db_handle(db);
    sqlite3_stmt *inc = NULL, *drop = NULL, *dec = NULL;
    if (acc->n == 0)
        goto out;
    if (sqlite3_prepare_v2(h, mm_df_inc_sql, -1, &inc, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(h, mm_df_drop_sql, -1, &drop, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(h, mm_df_dec_sql, -1, &dec, NULL) != SQLITE_OK)
        goto fail;
    qsort(acc->v, acc->n, sizeof *acc->v, mm_df_cmp);
    for (size_t i = 0; i < acc->n;) {
        uint32_t term = acc->v[i].term;
        int64_t sum = 0;
        for (; i < acc->n && acc->v[i].term == term; i++)
            sum += acc->v[i].d;
        if (sum > 0) {
            if (mm_df_step(inc, tenant, term, sum) != 0)
                goto fail;
        } else if (sum < 0) {
            if (mm_df_step(drop, tenant, term, -sum) != 0 ||
                mm_df_step(dec, tenant, term, -sum) != 0)
                goto fail;
        }
    }
    goto out;
fail:
    msg_set(err, errlen, "tenant %s: updating document frequencies in %s: %s", tenant, db_path(db),
            sqlite3_errmsg(h));
    result = -1;
out:
    sqlite3_finalize(inc);
    sqlite3_finalize(drop);
    sqlite3_finalize(dec);
    xfree(acc->v);
    memset(acc, 0, sizeof *acc);
    return result;
}

/* Removes every frequency of tenant. */
static int mm_df_purge(struct db *db, const char *tenant, char *err, size_t errlen)
{
    sqlite3 *h = db_handle(db);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(h, mm_df_purge_sql, -1, &st, NULL);
    rc = rc ? rc : sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        msg_set(err, errlen, "tenant %s: removing document frequencies in %s: %s", tenant,
                db_path(db), sqlite3_errmsg(h));
        return -1;
    }
    return 0;
}

int memory_df_reset(struct db *db, const char *tenant, char *err, size_t errlen)
{
    return mm_df_purge(db, tenant, err, errlen);
}

int memory_df_count(struct db *db, const struct embedder *e, const char *tenant,
                    const char *const *texts, size_t n, char *err, size_t errlen)
{
    struct mm_df acc = {0};
    for (size_t i = 0; i < n; i++)
        mm_df_text(e, &acc, texts[i], +1);
    return mm_df_apply(db, tenant, &acc, err, errlen);
}

/* df[i] for the n terms of tenant (0 when absent). */
static int mm_df_lookup(struct memory_manager *m, const char *tenant, const uint32_t *terms,
                        size_t n, uint32_t *df, char *err, size_t errlen)
{
    sqlite3 *h = db_handle(m->db);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(h, mm_df_get_sql, -1, &st, NULL);
    rc = rc ? rc : sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    for (size_t i = 0; rc == SQLITE_OK && i < n; i++) {
        sqlite3_reset(st);
        rc = sqlite3_bind_int64(st, 2, (sqlite3_int64)terms[i]);
        if (rc != SQLITE_OK)
            break;
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            sqlite3_int64 v = sqlite3_column_int64(st, 0);
            df[i] = v > (sqlite3_int64)UINT32_MAX ? UINT32_MAX : v < 0 ? 0 : (uint32_t)v;
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            df[i] = 0;
            rc = SQLITE_OK;
        }
    }
    if (rc != SQLITE_OK)
        msg_set(err, errlen, "tenant %s: reading document frequencies in %s: %s", tenant,
                db_path(m->db), sqlite3_errmsg(h));
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? 0 : -1;
}

/* --- splitting long texts ----------------------------------------------- */

/* One piece of a text: text[start..start+len). */
struct mm_span {
    size_t start, len;
};

/* Splits text[0..n) into pieces of at most limit bytes: at the last
 * sentence end (. ! ? before whitespace, or a newline) in the second half
 * of the window, else at the last whitespace, else at the last character
 * boundary. Pieces lose the whitespace around the cuts. A text of at most
 * limit bytes is one piece, as it is. Returns the pieces (caller frees)
 * and their number in *count. */
static struct mm_span *mm_split(const char *text, size_t n, size_t limit, size_t *count)
{
    size_t cap = 1, k = 0;
    struct mm_span *v = xmalloc(sizeof *v);
    if (n <= limit) {
        v[0] = (struct mm_span){0, n};
        *count = 1;
        return v;
    }
    size_t pos = 0;
    while (pos < n && mm_is_ws(text[pos]))
        pos++;
    while (pos < n) {
        const char *w = text + pos;
        size_t rest = n - pos, cut = 0;
        if (rest <= limit) {
            cut = rest;
        } else {
            /* w[limit] exists (rest > limit), so w[j] is readable for j <= limit. */
            for (size_t j = limit; j > limit / 2 && cut == 0; j--)
                if (w[j - 1] == '\n' ||
                    ((w[j - 1] == '.' || w[j - 1] == '!' || w[j - 1] == '?') && mm_is_ws(w[j])))
                    cut = j;
            for (size_t j = limit; j > 0 && cut == 0; j--)
                if (mm_is_ws(w[j]))
                    cut = j;
            if (cut == 0)
                cut = utf8_truncate(w, rest, limit);
            if (cut == 0) {
                uint32_t cp;
                cut = utf8_decode(w, rest, &cp);
            }
        }
        size_t len = cut;
        while (len > 0 && mm_is_ws(w[len - 1]))
            len--;
        if (len > 0) {
            if (k == cap) {
                cap *= 2;
                v = xreallocarray(v, cap, sizeof *v);
            }
            v[k++] = (struct mm_span){pos, len};
        }
        pos += cut;
        while (pos < n && mm_is_ws(text[pos]))
            pos++;
    }
    *count = k;
    return v;
}

/* --- adding ------------------------------------------------------------- */

/* One checked add. */
struct mm_item {
    const struct memory_add *a;
    char id[MC_UUID_STRLEN + 1]; /* the given id, lowercased; "" when none */
    const char *kind;
    cJSON *meta; /* the parsed metadata, owned */
    size_t first, n_pieces;
};

/* One piece to store. */
struct mm_piece {
    size_t item;
    size_t chunk; /* 1-based */
    char *text;   /* owned until moved into an entry */
    float *vec;   /* into the batch's vector array */
    bool refreshed;
    double sim;                  /* refreshed: the similarity that decided */
    char id[MC_UUID_STRLEN + 1]; /* the record it became */
};

/* The state one record will have after the batch. */
struct mm_entry {
    struct mem_record rec; /* text and metadata owned here; vector borrowed */
    char *old_text;        /* the stored text it replaces (owned); NULL for a new record */
    size_t item;           /* the add that wrote it last */
};

/* One history row to write. */
struct mm_hist {
    char id[MC_UUID_STRLEN + 1];
    const char *op;
    size_t item;
    char *detail; /* owned JSON text */
};

/* The plan of a batch: entries by id (an open-addressing table of entry
 * index + 1) and history rows. Both arrays are sized for the batch's
 * pieces up front (each piece makes at most one of each), so pointers
 * into them stay valid. */
struct mm_plan {
    struct mm_entry *v;
    size_t n;
    size_t *slots;
    size_t mask;
    struct mm_hist *h;
    size_t nh;
};

static uint64_t mm_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static void mm_plan_init(struct mm_plan *p, size_t pieces)
{
    memset(p, 0, sizeof *p);
    size_t size = 16;
    while (size < 2 * pieces)
        size *= 2;
    p->v = xcalloc(pieces ? pieces : 1, sizeof *p->v);
    p->h = xcalloc(pieces ? pieces : 1, sizeof *p->h);
    p->slots = xcalloc(size, sizeof *p->slots);
    p->mask = size - 1;
}

static void mm_plan_fini(struct mm_plan *p)
{
    for (size_t i = 0; i < p->n; i++) {
        xfree(p->v[i].rec.text);
        xfree(p->v[i].rec.metadata);
        xfree(p->v[i].old_text);
    }
    for (size_t i = 0; i < p->nh; i++)
        xfree(p->h[i].detail);
    xfree(p->v);
    xfree(p->h);
    xfree(p->slots);
    memset(p, 0, sizeof *p);
}

static struct mm_entry *mm_plan_find(const struct mm_plan *p, const char *id)
{
    for (size_t i = mm_hash(id) & p->mask; p->slots[i] != 0; i = (i + 1) & p->mask)
        if (strcmp(p->v[p->slots[i] - 1].rec.id, id) == 0)
            return &p->v[p->slots[i] - 1];
    return NULL;
}

/* A new zeroed entry with id (not yet in the plan). */
static struct mm_entry *mm_plan_new(struct mm_plan *p, const char *id)
{
    struct mm_entry *e = &p->v[p->n++];
    memset(e, 0, sizeof *e);
    mm_copy(e->rec.id, sizeof e->rec.id, id);
    size_t i = mm_hash(id) & p->mask;
    while (p->slots[i] != 0)
        i = (i + 1) & p->mask;
    p->slots[i] = p->n;
    return e;
}

/* Records one history row; detail (owned JSON) is taken over. */
static void mm_plan_hist(struct mm_plan *p, const char *id, const char *op, size_t item,
                         cJSON *detail)
{
    struct mm_hist *h = &p->h[p->nh++];
    mm_copy(h->id, sizeof h->id, id);
    h->op = op;
    h->item = item;
    h->detail = mm_print(detail);
    cJSON_Delete(detail);
}

/* A history detail: kind, characters, and the piece's position when the
 * text was split. Never the text. */
static cJSON *mm_detail(const char *kind, const char *text, size_t chunk, size_t chunks)
{
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "kind", kind);
    cJSON_AddNumberToObject(d, "chars", (double)mm_chars(text, strlen(text)));
    if (chunks > 1) {
        cJSON_AddNumberToObject(d, "chunk", (double)chunk);
        cJSON_AddNumberToObject(d, "chunks", (double)chunks);
    }
    return d;
}

/* The metadata text of a piece: old's keys (a refreshed record's; the
 * chunk keys dropped), then the add's own keys over them, then, for a
 * split text, {"chunk": i, "chunks": n, "parent": the first piece's id}. */
static char *mm_meta_for(const cJSON *meta, const char *old, size_t chunk, size_t chunks,
                         const char *parent)
{
    /* Our own stored text: want of memory aborts (util/alloc.h) rather than
     * pass for damaged metadata whose keys would be dropped. */
    cJSON *o = old != NULL ? cJSON_Parse(old) : NULL;
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        o = cJSON_CreateObject();
    }
    if (old != NULL) {
        cJSON_DeleteItemFromObjectCaseSensitive(o, "chunk");
        cJSON_DeleteItemFromObjectCaseSensitive(o, "chunks");
        cJSON_DeleteItemFromObjectCaseSensitive(o, "parent");
    }
    const cJSON *c;
    cJSON_ArrayForEach(c, meta)
    {
        cJSON_DeleteItemFromObjectCaseSensitive(o, c->string);
        cJSON_AddItemToObject(o, c->string, cJSON_Duplicate(c, true));
    }
    if (chunks > 1) {
        cJSON_DeleteItemFromObjectCaseSensitive(o, "chunk");
        cJSON_DeleteItemFromObjectCaseSensitive(o, "chunks");
        cJSON_DeleteItemFromObjectCaseSensitive(o, "parent");
        cJSON_AddNumberToObject(o, "chunk", (double)chunk);
        cJSON_AddNumberToObject(o, "chunks", (double)chunks);
        cJSON_AddStringToObject(o, "parent", parent);
    }
    char *r = mm_print(o);
    cJSON_Delete(o);
    return r;
}

/* Everything one add call works on. */
struct mm_batch {
    struct memory_manager *m;
    const char *tenant;
    bool ns_exists;
    bool import;
    int64_t now;
    struct mm_item *items;
    size_t n_items;
    struct mm_piece *pieces;
    size_t n_pieces;
    float *vecs; /* n_pieces * dim */
    struct mm_plan plan;
};

static void mm_batch_fini(struct mm_batch *b)
{
    for (size_t i = 0; i < b->n_items; i++)
        cJSON_Delete(b->items[i].meta);
    for (size_t i = 0; i < b->n_pieces; i++)
        xfree(b->pieces[i].text);
    xfree(b->items);
    xfree(b->pieces);
    xfree(b->vecs);
    mm_plan_fini(&b->plan);
}

/* Checks one add (tenant checked by the caller). */
static enum memory_status mm_check_add(const struct memory_add *a, int dim, struct mm_item *it,
                                       char *err, size_t errlen)
{
    enum memory_status st = mm_check_ident(a->user, "user", err, errlen);
    st = st ? st : mm_check_ident(a->agent, "agent", err, errlen);
    st = st ? st : mm_check_text(a->text, "text", err, errlen);
    if (st != MEMORY_OK)
        return st;
    char q[200];
    it->kind = a->kind != NULL ? a->kind : "note";
    if (!mm_kind_valid(it->kind)) {
        msg_set(err, errlen, "kind \"%s\" is not accepted (accepted: [a-z_]{1,32})",
                mm_quote(it->kind, q, sizeof q));
        return MEMORY_ERR_INPUT;
    }
    if (a->id != NULL) {
        if (!uuid_valid(a->id)) {
            msg_set(err, errlen, "id \"%s\" is not a UUID", mm_quote(a->id, q, sizeof q));
            return MEMORY_ERR_INPUT;
        }
        mm_uuid_lower(a->id, it->id);
    }
    if (a->vector != NULL && a->vector_len != (size_t)dim) {
        msg_set(err, errlen, "vector has %zu numbers; the embedder makes %d", a->vector_len, dim);
        return MEMORY_ERR_INPUT;
    }
    if (a->created_at < 0) {
        msg_set(err, errlen, "created_at %" PRId64 " is negative (Unix milliseconds expected)",
                a->created_at);
        return MEMORY_ERR_INPUT;
    }
    it->meta = mm_meta_parse(a->metadata, err, errlen);
    if (it->meta == NULL)
        return MEMORY_ERR_INPUT;
    return MEMORY_OK;
}

/* Copies v (dim floats) into out scaled to norm 1. */
static enum memory_status mm_copy_vector(const float *v, int dim, float *out, char *err,
                                         size_t errlen)
{
    double ss = 0.0;
    for (int i = 0; i < dim; i++) {
        if (!isfinite(v[i])) {
            msg_set(err, errlen, "vector[%d] is not a finite number", i);
            return MEMORY_ERR_INPUT;
        }
        ss += (double)v[i] * (double)v[i];
    }
    if (!(ss > 0.0) || !isfinite(ss)) {
        msg_set(err, errlen, "vector has no direction (all zeros) or overflows");
        return MEMORY_ERR_INPUT;
    }
    double inv = 1.0 / sqrt(ss);
    for (int i = 0; i < dim; i++)
        out[i] = (float)((double)v[i] * inv);
    return MEMORY_OK;
}

/* Step 1: checks every add, splits texts into pieces, and embeds the
 * pieces that bring no vector. */
static enum memory_status mm_batch_prepare(struct mm_batch *b, const struct memory_add *a, size_t n,
                                           char *err, size_t errlen)
{
    struct memory_manager *m = b->m;
    int dim = m->e->dim;
    size_t limit = m->set.max_bytes < m->e->max_bytes ? m->set.max_bytes : m->e->max_bytes;
    enum memory_status st = MEMORY_OK;
    char where[64] = "";
    b->items = xcalloc(n ? n : 1, sizeof *b->items);
    b->n_items = n;
    struct mm_span **spans = xcalloc(n ? n : 1, sizeof *spans);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        struct mm_item *it = &b->items[i];
        it->a = &a[i];
        if (n > 1)
            snprintf(where, sizeof where, "memory %zu of %zu: ", i + 1, n);
        if (a[i].tenant == NULL || strcmp(a[i].tenant, b->tenant) != 0) {
            msg_set(err, errlen, "every memory of a batch must have the tenant %s", b->tenant);
            st = MEMORY_ERR_INPUT;
        }
        st = st ? st : mm_check_add(&a[i], dim, it, err, errlen);
        if (st != MEMORY_OK) {
            mm_prefix(err, errlen, where);
            goto out;
        }
        /* A given vector stands for the whole text, so that text is kept
         * whole. */
        size_t len = strlen(a[i].text);
        if (a[i].vector != NULL) {
            spans[i] = xmalloc(sizeof *spans[i]);
            spans[i][0] = (struct mm_span){0, len};
            it->n_pieces = 1;
        } else {
            spans[i] = mm_split(a[i].text, len, limit, &it->n_pieces);
        }
        it->first = total;
        total += it->n_pieces;
    }
    b->pieces = xcalloc(total ? total : 1, sizeof *b->pieces);
    b->n_pieces = total;
    b->vecs = try_calloc(total ? total : 1, (size_t)dim * sizeof(float));
    if (b->vecs == NULL) {
        msg_set(err, errlen, "out of memory for the vectors of %zu memories", total);
        st = MEMORY_ERR_INPUT;
        goto out;
    }
    const char **texts = xcalloc(total ? total : 1, sizeof *texts);
    size_t *which = xcalloc(total ? total : 1, sizeof *which);
    size_t n_embed = 0;
    for (size_t i = 0; i < n && st == MEMORY_OK; i++) {
        struct mm_item *it = &b->items[i];
        for (size_t c = 0; c < it->n_pieces; c++) {
            struct mm_piece *p = &b->pieces[it->first + c];
            p->item = i;
            p->chunk = c + 1;
            p->sim = NAN;
            p->text = xstrndup(a[i].text + spans[i][c].start, spans[i][c].len);
            p->vec = b->vecs + (it->first + c) * (size_t)dim;
            if (a[i].vector != NULL) {
                st = mm_copy_vector(a[i].vector, dim, p->vec, err, errlen);
                if (st != MEMORY_OK && n > 1) {
                    snprintf(where, sizeof where, "memory %zu of %zu: ", i + 1, n);
                    mm_prefix(err, errlen, where);
                }
            } else {
                texts[n_embed] = p->text;
                which[n_embed++] = it->first + c;
            }
        }
    }
    if (st == MEMORY_OK && n_embed > 0) {
        /* Embedded in place when every piece needs it; else contiguously,
         * then moved to their pieces' rows (the pieces with given vectors
         * are interleaved). */
        bool direct = n_embed == total;
        float *out = direct ? b->vecs : try_calloc(n_embed, (size_t)dim * sizeof(float));
        if (out == NULL) {
            msg_set(err, errlen, "out of memory for the vectors of %zu memories", n_embed);
            st = MEMORY_ERR_INPUT;
        } else if (embedder_embed(m->e, EMBED_DOCUMENT, texts, n_embed, NULL, out, err, errlen) !=
                   0) {
            st = MEMORY_ERR_EMBED;
        } else if (!direct) {
            for (size_t j = 0; j < n_embed; j++)
                memcpy(b->pieces[which[j]].vec, out + j * (size_t)dim, (size_t)dim * sizeof(float));
        }
        if (!direct)
            xfree(out);
    }
    xfree(texts);
    xfree(which);
out:
    for (size_t i = 0; i < n; i++)
        xfree(spans[i]);
    xfree(spans);
    return st;
}

/* The stored record with id in tenant: 0 found (*rec filled; the caller
 * clears it), 1 absent, -1 on failure. */
static int mm_stored_by_id(struct memory_manager *m, const char *tenant, const char *id,
                           struct mem_record *rec, char *err, size_t errlen)
{
    struct mem_filter *f = filter_eq("id", id);
    struct mem_records rs = {0};
    int rc = m->s->ops->list(m->s, tenant, f, NULL, 1, false, &rs, err, errlen);
    filter_free(f);
    if (rc != 0)
        return -1;
    if (rs.n == 0 || strcmp(rs.v[0].id, id) != 0) {
        mem_records_free(&rs);
        return 1;
    }
    *rec = rs.v[0];
    memset(&rs.v[0], 0, sizeof rs.v[0]);
    mem_records_free(&rs);
    return 0;
}

/* The nearest stored record of user to v: 0 found (*rec filled; the
 * caller clears it), 1 when the user has none, -1 on failure. */
static int mm_stored_nearest(struct memory_manager *m, const char *tenant, const char *user,
                             const float *v, struct mem_record *rec, char *err, size_t errlen)
{
    struct mem_filter *f = filter_eq("user_id", user);
    struct mem_records rs = {0};
    int rc = m->s->ops->query(m->s, tenant, v, 1, f, &rs, err, errlen);
    filter_free(f);
    if (rc != 0)
        return -1;
    if (rs.n == 0) {
        mem_records_free(&rs);
        return 1;
    }
    *rec = rs.v[0];
    memset(&rs.v[0], 0, sizeof rs.v[0]);
    mem_records_free(&rs);
    return 0;
}

/* Fills a new or replaced entry's fields from piece p of item it. */
static void mm_entry_fill(struct mm_entry *e, const struct mm_item *it, struct mm_piece *p,
                          const char *parent)
{
    const struct memory_add *a = it->a;
    mm_copy(e->rec.user_id, sizeof e->rec.user_id, a->user);
    mm_copy(e->rec.agent, sizeof e->rec.agent, a->agent);
    mm_copy(e->rec.kind, sizeof e->rec.kind, it->kind);
    xfree(e->rec.text);
    e->rec.text = p->text;
    p->text = NULL;
    xfree(e->rec.metadata);
    e->rec.metadata = mm_meta_for(it->meta, NULL, p->chunk, it->n_pieces, parent);
    e->rec.vector = p->vec;
    e->item = p->item;
}

/* Step 2 for one piece: an explicit id (import) makes or replaces that
 * record; otherwise a near-duplicate of the same user, stored or earlier
 * in the batch, is refreshed; otherwise a new record is made. */
static enum memory_status mm_place(struct mm_batch *b, size_t pi, char *err, size_t errlen)
{
    struct memory_manager *m = b->m;
    struct mm_piece *p = &b->pieces[pi];
    const struct mm_item *it = &b->items[p->item];
    const struct memory_add *a = it->a;
    const char *parent = p->chunk > 1 ? b->pieces[it->first].id : NULL;
    const char *new_op = b->import ? "import" : "add";
    struct mem_record stored;
    memset(&stored, 0, sizeof stored);

    if (p->chunk == 1 && it->id[0] != '\0') {
        mm_copy(p->id, sizeof p->id, it->id);
        struct mm_entry *e = mm_plan_find(&b->plan, it->id);
        bool replaced = e != NULL;
        if (e == NULL) {
            e = mm_plan_new(&b->plan, it->id);
            int rc = b->ns_exists ? mm_stored_by_id(m, b->tenant, it->id, &stored, err, errlen) : 1;
            if (rc < 0)
                return MEMORY_ERR_STORE;
            if (rc == 0) {
                replaced = true;
                e->old_text = stored.text;
                stored.text = NULL;
                e->rec.created_at = stored.created_at;
                mem_record_clear(&stored);
            }
        }
        mm_entry_fill(e, it, p, p->id);
        int64_t created = a->created_at > 0 ? a->created_at : replaced ? e->rec.created_at : b->now;
        e->rec.created_at = created;
        e->rec.updated_at = replaced ? b->now : created;
        cJSON *d = mm_detail(it->kind, e->rec.text, p->chunk, it->n_pieces);
        if (replaced)
            cJSON_AddTrueToObject(d, "replaced");
        if (a->vector != NULL)
            cJSON_AddStringToObject(d, "vector", "kept");
        mm_plan_hist(&b->plan, p->id, new_op, p->item, d);
        return MEMORY_OK;
    }

    double threshold = m->set.dedup_threshold;
    if (!a->no_dedup && threshold <= 1.0) {
        double best = threshold;
        struct mm_entry *target = NULL;
        bool from_store = false;
        if (b->ns_exists) {
            int rc = mm_stored_nearest(m, b->tenant, a->user, p->vec, &stored, err, errlen);
            if (rc < 0)
                return MEMORY_ERR_STORE;
            /* A record the batch already changes is compared below with
             * its new vector instead. */
            if (rc == 0 && mm_plan_find(&b->plan, stored.id) == NULL && stored.score > best) {
                best = stored.score;
                from_store = true;
            }
        }
        int dim = m->e->dim;
        for (size_t i = 0; i < b->plan.n; i++) {
            struct mm_entry *e = &b->plan.v[i];
            if (e->item == p->item || strcmp(e->rec.user_id, a->user) != 0)
                continue;
            double sim = (double)vscan_dot(e->rec.vector, p->vec, (size_t)dim);
            if (sim > best) {
                best = sim;
                target = e;
                from_store = false;
            }
        }
        if (from_store) {
            target = mm_plan_new(&b->plan, stored.id);
            target->old_text = stored.text;
            stored.text = NULL;
            target->rec.metadata = stored.metadata;
            stored.metadata = NULL;
            mm_copy(target->rec.user_id, sizeof target->rec.user_id, stored.user_id);
            mm_copy(target->rec.agent, sizeof target->rec.agent, stored.agent);
            mm_copy(target->rec.kind, sizeof target->rec.kind, stored.kind);
            target->rec.created_at = stored.created_at;
        }
        mem_record_clear(&stored);
        if (target != NULL) {
            mm_copy(p->id, sizeof p->id, target->rec.id);
            p->refreshed = true;
            p->sim = best;
            char *meta = mm_meta_for(it->meta, target->rec.metadata, p->chunk, it->n_pieces,
                                     parent != NULL ? parent : p->id);
            xfree(target->rec.metadata);
            target->rec.metadata = meta;
            xfree(target->rec.text);
            target->rec.text = p->text;
            p->text = NULL;
            target->rec.vector = p->vec;
            target->rec.updated_at = b->now;
            target->item = p->item;
            cJSON *d = mm_detail(target->rec.kind, target->rec.text, p->chunk, it->n_pieces);
            cJSON_AddNumberToObject(d, "similarity", round(best * 1e4) / 1e4);
            mm_plan_hist(&b->plan, p->id, "refresh", p->item, d);
            return MEMORY_OK;
        }
    }

    uuid7_new(p->id);
    struct mm_entry *e = mm_plan_new(&b->plan, p->id);
    mm_entry_fill(e, it, p, parent != NULL ? parent : p->id);
    e->rec.created_at = a->created_at > 0 ? a->created_at : b->now;
    e->rec.updated_at = e->rec.created_at;
    cJSON *d = mm_detail(it->kind, e->rec.text, p->chunk, it->n_pieces);
    if (a->vector != NULL)
        cJSON_AddStringToObject(d, "vector", "kept");
    mm_plan_hist(&b->plan, p->id, new_op, p->item, d);
    return MEMORY_OK;
}

/* Step 3: one transaction with the namespace, the records, the frequency
 * changes and the history rows. */
static enum memory_status mm_batch_write(struct mm_batch *b, char *err, size_t errlen)
{
    struct memory_manager *m = b->m;
    struct mm_plan *p = &b->plan;
    struct mm_df acc = {0};
    for (size_t i = 0; i < p->n; i++) {
        if (p->v[i].old_text != NULL)
            mm_df_text(m->e, &acc, p->v[i].old_text, -1);
        mm_df_text(m->e, &acc, p->v[i].rec.text, +1);
    }
    struct mem_record *recs = xcalloc(p->n ? p->n : 1, sizeof *recs);
    for (size_t i = 0; i < p->n; i++)
        recs[i] = p->v[i].rec;
    struct store_ns ns;
    memset(&ns, 0, sizeof ns);
    mm_copy(ns.embedder, sizeof ns.embedder, m->e->name);
    mm_copy(ns.model, sizeof ns.model, m->e->model);
    ns.dim = m->e->dim;
    ns.created_ms = b->now;

    enum memory_status st = MEMORY_OK;
    if (db_begin(m->db, err, errlen) != 0) {
        xfree(recs);
        xfree(acc.v);
        return MEMORY_ERR_STORE;
    }
    if (m->s->ops->ns_create(m->s, b->tenant, &ns, err, errlen) != 0 ||
        (p->n > 0 && m->s->ops->upsert(m->s, b->tenant, recs, p->n, err, errlen) != 0) ||
        mm_df_apply(m->db, b->tenant, &acc, err, errlen) != 0)
        st = MEMORY_ERR_STORE;
    for (size_t i = 0; st == MEMORY_OK && i < p->nh; i++) {
        const struct memory_add *a = b->items[p->h[i].item].a;
        struct memhist_row row = {
            .ts_ms = b->now,
            .tenant = (char *)(uintptr_t)b->tenant,
            .memory_id = p->h[i].id,
            .op = (char *)(uintptr_t)p->h[i].op,
            .user_id = (char *)(uintptr_t)a->user,
            .agent = (char *)(uintptr_t)a->agent,
            .detail = p->h[i].detail,
        };
        if (memhist_add(m->db, &row, err, errlen) != 0)
            st = MEMORY_ERR_STORE;
    }
    if (st == MEMORY_OK && db_commit(m->db, err, errlen) != 0)
        st = MEMORY_ERR_STORE;
    if (st != MEMORY_OK)
        db_rollback(m->db);
    xfree(recs);
    xfree(acc.v);
    return st;
}

/* memory_add and memory_add_batch: n adds of one tenant, all or none. */
static enum memory_status mm_add_many(struct memory_manager *m, const struct memory_add *a,
                                      size_t n, bool import, struct memory_added *out, char *err,
                                      size_t errlen)
{
    if (out != NULL)
        memset(out, 0, n * sizeof *out);
    if (n == 0)
        return MEMORY_OK;
    struct mm_batch b;
    memset(&b, 0, sizeof b);
    b.m = m;
    b.tenant = a[0].tenant;
    b.import = import;
    b.now = clock_wall_ms();
    struct store_ns ns;
    enum memory_status st = mm_ns(m, b.tenant, &ns, &b.ns_exists, err, errlen);
    st = st ? st : mm_batch_prepare(&b, a, n, err, errlen);
    if (st == MEMORY_OK)
        mm_plan_init(&b.plan, b.n_pieces);
    for (size_t i = 0; st == MEMORY_OK && i < b.n_pieces; i++)
        st = mm_place(&b, i, err, errlen);
    st = st ? st : mm_batch_write(&b, err, errlen);
    if (st == MEMORY_OK && out != NULL) {
        for (size_t i = 0; i < n; i++) {
            const struct mm_item *it = &b.items[i];
            const struct mm_piece *first = &b.pieces[it->first];
            mm_copy(out[i].id, sizeof out[i].id, first->id);
            out[i].chunks = it->n_pieces;
            out[i].refreshed = true;
            out[i].similarity = NAN;
            for (size_t c = 0; c < it->n_pieces; c++) {
                const struct mm_piece *pc = &b.pieces[it->first + c];
                if (!pc->refreshed)
                    out[i].refreshed = false;
                else if (isnan(out[i].similarity) || pc->sim < out[i].similarity)
                    out[i].similarity = pc->sim;
            }
            if (!out[i].refreshed)
                out[i].similarity = NAN;
        }
    }
    mm_batch_fini(&b);
    return st;
}

enum memory_status memory_add(struct memory_manager *m, const struct memory_add *a,
                              struct memory_added *out, char *err, size_t errlen)
{
    return mm_add_many(m, a, 1, false, out, err, errlen);
}

enum memory_status memory_add_batch(struct memory_manager *m, const struct memory_add *a, size_t n,
                                    struct memory_added *out, char *err, size_t errlen)
{
    return mm_add_many(m, a, n, true, out, err, errlen);
}

enum memory_status memory_add_conversation(struct memory_manager *m, const char *tenant,
                                           const char *user, const char *agent, const char *message,
                                           const char *reply, const char *metadata,
                                           struct memory_added *out, char *err, size_t errlen)
{
    if (message == NULL || reply == NULL) {
        msg_set(err, errlen, "an exchange needs a message and a reply");
        return MEMORY_ERR_INPUT;
    }
    enum memory_status st = mm_check_text(message, "message", err, errlen);
    if (st != MEMORY_OK)
        return st;
    size_t bad = 0;
    if (!utf8_valid(reply, strlen(reply), &bad)) {
        msg_set(err, errlen, "reply is not valid UTF-8 (bad byte at offset %zu)", bad);
        return MEMORY_ERR_INPUT;
    }
    /* An empty reply (a provider that only restates the request) stores
     * the user's message alone. */
    char *text = reply[0] != '\0' ? xasprintf("User: %s\nAssistant: %s", message, reply)
                                  : xasprintf("User: %s", message);
    struct memory_add a = {
        .tenant = tenant,
        .user = user,
        .agent = agent,
        .kind = "exchange",
        .text = text,
        .metadata = metadata,
    };
    st = mm_add_many(m, &a, 1, false, out, err, errlen);
    xfree(text);
    return st;
}

/* --- retrieval ---------------------------------------------------------- */

/* Embeds query (cut to what the embedder takes) in query mode, weighted
 * by tenant's document frequencies over docs stored texts. */
static enum memory_status mm_embed_query(struct memory_manager *m, const char *tenant, size_t docs,
                                         const char *query, float *q, char *err, size_t errlen)
{
    size_t len = utf8_truncate(query, strlen(query), m->e->max_bytes);
    char *text = xstrndup(query, len);
    size_t nt = 0;
    uint32_t *terms = embedder_terms(m->e, text, len, &nt);
    uint32_t *df = NULL;
    struct embed_df edf = {.docs = docs, .terms = terms, .n = nt};
    enum memory_status st = MEMORY_OK;
    if (terms != NULL) {
        df = xcalloc(nt, sizeof *df);
        edf.df = df;
        if (mm_df_lookup(m, tenant, terms, nt, df, err, errlen) != 0)
            st = MEMORY_ERR_STORE;
    }
    const char *const texts[1] = {text};
    if (st == MEMORY_OK && embedder_embed(m->e, EMBED_QUERY, texts, 1, terms != NULL ? &edf : NULL,
                                          q, err, errlen) != 0)
        st = MEMORY_ERR_EMBED;
    xfree(df);
    xfree(terms);
    xfree(text);
    return st;
}

/* A hit taking over r (r is left zeroed), every score NAN. */
static void mm_hit_take(struct memory_hit *h, struct mem_record *r)
{
    memset(h, 0, sizeof *h);
    h->rec = *r;
    memset(r, 0, sizeof *r);
    h->vector = h->keyword = h->fused = h->mmr = h->score = NAN;
}

/* Greedy MMR over n candidates (vectors vecs[i], dim floats, NULL meaning
 * similar to nothing; relevance rel[i]): picks up to k, each time the one
 * maximising (1-d)*rel - d*max sim(x, picked) (the max taken as 0 before
 * the first pick; ties to the lower index, the better rank). Writes the
 * picks in order into order and each pick's score into mmr[pick];
 * returns how many. */
static size_t mm_mmr(const float *const *vecs, int dim, const double *rel, size_t n, size_t k,
                     double d, size_t *order, double *mmr)
{
    double *maxsim = xcalloc(n ? n : 1, sizeof *maxsim);
    bool *picked = xcalloc(n ? n : 1, sizeof *picked);
    size_t np = 0;
    for (; np < k && np < n; np++) {
        size_t best = n;
        double best_score = 0.0;
        for (size_t i = 0; i < n; i++) {
            if (picked[i])
                continue;
            double s = (1.0 - d) * rel[i] - d * (np > 0 ? maxsim[i] : 0.0);
            if (best == n || s > best_score) {
                best = i;
                best_score = s;
            }
        }
        picked[best] = true;
        order[np] = best;
        mmr[best] = best_score;
        for (size_t i = 0; i < n; i++) {
            if (picked[i])
                continue;
            double sim = vecs[i] != NULL && vecs[best] != NULL
                             ? (double)vscan_dot(vecs[i], vecs[best], (size_t)dim)
                             : 0.0;
            if (np == 0 || sim > maxsim[i])
                maxsim[i] = sim;
        }
    }
    xfree(maxsim);
    xfree(picked);
    return np;
}

/* Relevance of the candidates not kept, for sorting them. */
struct mm_rest {
    size_t i;
    double rel;
};

static int mm_rest_cmp(const void *a, const void *b)
{
    const struct mm_rest *x = a, *y = b;
    if (x->rel != y->rel)
        return x->rel > y->rel ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* Moves cands[0..n) into out in result order: the kept ones
 * (order[0..nk)) first, then the others by relevance, best first. */
static void mm_assemble(struct memory_hit *cands, size_t n, const size_t *order, size_t nk,
                        const double *rel, struct memory_result *out)
{
    out->hits = xcalloc(n ? n : 1, sizeof *out->hits);
    out->n = n;
    out->n_kept = nk;
    bool *done = xcalloc(n ? n : 1, sizeof *done);
    for (size_t j = 0; j < nk; j++) {
        out->hits[j] = cands[order[j]];
        out->hits[j].kept = true;
        done[order[j]] = true;
    }
    struct mm_rest *rest = xcalloc(n ? n : 1, sizeof *rest);
    size_t nr = 0;
    for (size_t i = 0; i < n; i++)
        if (!done[i])
            rest[nr++] = (struct mm_rest){i, isnan(rel[i]) ? -(double)INFINITY : rel[i]};
    qsort(rest, nr, sizeof *rest, mm_rest_cmp);
    for (size_t j = 0; j < nr; j++) {
        out->hits[nk + j] = cands[rest[j].i];
        out->hits[nk + j].kept = false;
    }
    xfree(rest);
    xfree(done);
}

/* MMR (or, hybrid, its final step) over candidates whose relevance is
 * rel; fills mmr and score of the kept ones and moves everything into
 * out. */
static void mm_rank_mmr(struct memory_manager *m, struct memory_hit *cands, size_t n,
                        const double *rel, size_t k, struct memory_result *out)
{
    const float **vecs = xcalloc(n ? n : 1, sizeof *vecs);
    double *mmr = xcalloc(n ? n : 1, sizeof *mmr);
    size_t *order = xcalloc(n ? n : 1, sizeof *order);
    for (size_t i = 0; i < n; i++)
        vecs[i] = cands[i].rec.vector;
    size_t nk = mm_mmr(vecs, m->e->dim, rel, n, k, m->set.diversity, order, mmr);
    for (size_t j = 0; j < nk; j++) {
        cands[order[j]].mmr = mmr[order[j]];
        cands[order[j]].score = mmr[order[j]];
    }
    mm_assemble(cands, n, order, nk, rel, out);
    xfree(vecs);
    xfree(mmr);
    xfree(order);
}

/* Hybrid's fusion: adds the keyword ranking rk to the n vector candidates
 * (ranked best first; cands has room for rk's too) and sets each one's
 * fused score. A keyword-only candidate gets its vector similarity from
 * its own vector; a vector-only one keeps keyword NAN (not ranked) and
 * counts as 0, bm25's floor.
 * score: (1 - w) * cosine + w * bm25 / the query's best bm25, which beats
 * bm25 alone on SciFact where reciprocal ranks did not (the vector
 * ranking is the weaker one there, and ranks weigh both the same);
 * rrf: (1 - w) / (60 + vector rank) + w / (60 + keyword rank), ranks from
 * 1, the classic form at w = 0.5 (docs/benchmarks.md has both). */
static void mm_fuse(const struct memory_manager *m, const float *q, struct memory_hit *cands,
                    size_t *n, const struct mem_records *rk)
{
    double w = m->set.keyword_weight;
    bool rrf = m->set.fusion == MEMORY_FUSION_RRF;
    size_t nv = *n;
    double kwmax = 0;
    for (size_t j = 0; j < rk->n; j++)
        kwmax = rk->v[j].score > kwmax ? rk->v[j].score : kwmax;
    for (size_t i = 0; i < nv; i++)
        cands[i].fused = rrf ? (1 - w) / (MEMORY_RRF_K + (double)(i + 1)) : 0;
    for (size_t j = 0; j < rk->n; j++) {
        size_t at = *n;
        for (size_t i = 0; i < nv && at == *n; i++)
            if (strcmp(cands[i].rec.id, rk->v[j].id) == 0)
                at = i;
        double kw = rk->v[j].score; /* before mm_hit_take moves the record */
        if (at == *n) {
            mm_hit_take(&cands[at], &rk->v[j]);
            cands[at].vector = cands[at].rec.vector != NULL
                                   ? (double)vscan_dot(q, cands[at].rec.vector, (size_t)m->e->dim)
                                   : (double)NAN;
            cands[at].fused = 0;
            (*n)++;
        }
        cands[at].keyword = kw;
        if (rrf)
            cands[at].fused += w / (MEMORY_RRF_K + (double)(j + 1));
    }
    if (rrf)
        return;
    for (size_t i = 0; i < *n; i++) {
        double v = isnan(cands[i].vector) ? 0 : cands[i].vector;
        double kw = kwmax > 0 && !isnan(cands[i].keyword) ? cands[i].keyword / kwmax : 0;
        cands[i].fused = (1 - w) * v + w * kw;
    }
}

/* The ranking itself, once the query vector q exists. */
static enum memory_status mm_rank(struct memory_manager *m, const char *tenant, const char *query,
                                  const float *q, size_t k, enum memory_method method,
                                  const struct mem_filter *f, struct memory_result *out, char *err,
                                  size_t errlen)
{
    size_t fetch = m->set.fetch_k > 0 ? m->set.fetch_k : 4 * k;
    if (fetch < k)
        fetch = k;
    const struct vstore_ops *ops = m->s->ops;
    struct mem_records rv = {0}, rk = {0};
    if (ops->query(m->s, tenant, q, method == MEMORY_SIMILARITY ? k : fetch, f, &rv, err, errlen) !=
        0)
        return MEMORY_ERR_STORE;
    if (method == MEMORY_HYBRID && ops->keyword != NULL &&
        ops->keyword(m->s, tenant, query, fetch, f, &rk, err, errlen) != 0) {
        mem_records_free(&rv);
        return MEMORY_ERR_STORE;
    }
    size_t cap = rv.n + rk.n;
    struct memory_hit *cands = xcalloc(cap ? cap : 1, sizeof *cands);
    double *rel = xcalloc(cap ? cap : 1, sizeof *rel);
    size_t n = 0;
    for (size_t i = 0; i < rv.n; i++, n++) {
        double score = rv.v[i].score;
        mm_hit_take(&cands[n], &rv.v[i]);
        cands[n].vector = score;
        rel[n] = score;
    }
    if (method == MEMORY_SIMILARITY) {
        size_t *order = xcalloc(n ? n : 1, sizeof *order);
        for (size_t i = 0; i < n; i++) {
            order[i] = i;
            cands[i].score = cands[i].vector;
        }
        mm_assemble(cands, n, order, n, rel, out);
        xfree(order);
    } else if (method == MEMORY_MMR) {
        mm_rank_mmr(m, cands, n, rel, k, out);
    } else {
        mm_fuse(m, q, cands, &n, &rk);
        /* The fused scores rescaled to [0,1] over the candidates (the best
         * 1, the worst 0; all 1 when equal) stand for sim(q,x) in MMR. */
        double lo = (double)INFINITY, hi = -(double)INFINITY;
        for (size_t i = 0; i < n; i++) {
            lo = cands[i].fused < lo ? cands[i].fused : lo;
            hi = cands[i].fused > hi ? cands[i].fused : hi;
        }
        for (size_t i = 0; i < n; i++)
            rel[i] = hi > lo ? (cands[i].fused - lo) / (hi - lo) : 1.0;
        mm_rank_mmr(m, cands, n, rel, k, out);
    }
    xfree(cands);
    xfree(rel);
    mem_records_free(&rv);
    mem_records_free(&rk);
    return MEMORY_OK;
}

/* Un-keeps the kept hits less similar to the query than min, keeping the
 * order of the result (kept first, in rank order). Their scores stay, so
 * front ends can show why a high-ranked memory was left out. */
static void mm_drop_unrelated(struct memory_result *r, double min)
{
    size_t w = 0;
    for (size_t i = 0; i < r->n_kept; i++)
        if (isnan(r->hits[i].vector) || r->hits[i].vector >= min)
            w++;
    if (w == r->n_kept)
        return;
    struct memory_hit *dropped = xcalloc(r->n_kept - w, sizeof *dropped);
    size_t nk = 0, nd = 0;
    for (size_t i = 0; i < r->n_kept; i++) {
        struct memory_hit h = r->hits[i];
        if (isnan(h.vector) || h.vector >= min) {
            r->hits[nk++] = h;
        } else {
            h.kept = false;
            dropped[nd++] = h;
        }
    }
    memcpy(r->hits + nk, dropped, nd * sizeof *dropped);
    r->n_kept = nk;
    xfree(dropped);
}

enum memory_status memory_retrieve(struct memory_manager *m, const char *tenant, const char *user,
                                   const char *query, size_t k, int method,
                                   const struct mem_filter *filter, struct memory_result *out,
                                   char *err, size_t errlen)
{
    int64_t t0 = clock_mono_ns();
    memset(out, 0, sizeof *out);
    enum memory_method meth = m->set.method;
    if (method != -1) {
        if (method != MEMORY_SIMILARITY && method != MEMORY_MMR && method != MEMORY_HYBRID) {
            msg_set(err, errlen,
                    "retrieval method %d is not known (accepted: similarity, mmr, "
                    "hybrid)",
                    method);
            return MEMORY_ERR_INPUT;
        }
        meth = (enum memory_method)method;
    }
    out->method = meth;
    if (k == 0)
        k = m->set.k;
    if (k > MEMORY_K_MAX) {
        msg_set(err, errlen, "k %zu is too large (accepted: 1..%zu)", k, MEMORY_K_MAX);
        return MEMORY_ERR_INPUT;
    }
    enum memory_status st = mm_check_text(query, "query", err, errlen);
    if (st == MEMORY_OK && user != NULL)
        st = mm_check_ident(user, "user", err, errlen);
    struct store_ns ns;
    bool exists = false;
    st = st ? st : mm_ns(m, tenant, &ns, &exists, err, errlen);
    if (st != MEMORY_OK || !exists) {
        out->latency_ms = clock_since_ms(t0);
        return st;
    }
    struct mem_filter *scoped = NULL;
    const struct mem_filter *f = filter;
    if (m->set.user_scope && user != NULL) {
        struct mem_filter *uf = filter_eq("user_id", user);
        scoped = filter_and(filter, uf);
        filter_free(uf);
        f = scoped;
    }
    float *q = xcalloc((size_t)m->e->dim, sizeof *q);
    st = mm_embed_query(m, tenant, ns.count, query, q, err, errlen);
    st = st ? st : mm_rank(m, tenant, query, q, k, meth, f, out, err, errlen);
    if (st == MEMORY_OK)
        mm_drop_unrelated(out, m->set.min_similarity);
    xfree(q);
    filter_free(scoped);
    out->latency_ms = clock_since_ms(t0);
    return st;
}

void memory_result_free(struct memory_result *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n; i++)
        mem_record_clear(&r->hits[i].rec);
    xfree(r->hits);
    memset(r, 0, sizeof *r);
}

/* --- listing ------------------------------------------------------------ */

/* Appends the records of from to to (taking them over; from is freed). */
static void mm_records_append(struct mem_records *to, struct mem_records *from)
{
    if (from->n > 0) {
        to->v = xreallocarray(to->v, to->n + from->n, sizeof *to->v);
        memcpy(to->v + to->n, from->v, from->n * sizeof *from->v);
        to->n += from->n;
        memset(from->v, 0, from->n * sizeof *from->v);
    }
    mem_records_free(from);
}

enum memory_status memory_list(struct memory_manager *m, const char *tenant,
                               const struct mem_filter *filter, const char *after_id, size_t k,
                               bool with_vectors, struct mem_records *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    char after[MC_UUID_STRLEN + 1] = "", q[200];
    if (after_id != NULL) {
        if (!uuid_valid(after_id)) {
            msg_set(err, errlen, "after \"%s\" is not a UUID", mm_quote(after_id, q, sizeof q));
            return MEMORY_ERR_INPUT;
        }
        mm_uuid_lower(after_id, after);
    }
    struct store_ns ns;
    bool exists;
    enum memory_status st = mm_ns(m, tenant, &ns, &exists, err, errlen);
    if (st != MEMORY_OK || !exists)
        return st;
    /* k 0 means every matching record, read a page at a time. */
    for (;;) {
        size_t want = k > 0 ? k - out->n : MEMORY_PAGE;
        if (want > MEMORY_PAGE)
            want = MEMORY_PAGE;
        struct mem_records page = {0};
        if (m->s->ops->list(m->s, tenant, filter, after[0] ? after : NULL, want, with_vectors,
                            &page, err, errlen) != 0) {
            mem_records_free(out);
            return MEMORY_ERR_STORE;
        }
        size_t got = page.n;
        if (got > 0)
            mm_copy(after, sizeof after, page.v[got - 1].id);
        mm_records_append(out, &page);
        if (got < want || (k > 0 && out->n >= k))
            break;
    }
    return MEMORY_OK;
}

/* --- deleting ----------------------------------------------------------- */

/* A delete's history row for record r. */
static int mm_hist_delete(struct memory_manager *m, const char *tenant, const struct mem_record *r,
                          const char *user, const char *agent, const char *by, int64_t now,
                          char *err, size_t errlen)
{
    cJSON *d = mm_detail(r->kind, r->text != NULL ? r->text : "", 1, 1);
    cJSON_AddStringToObject(d, "owner", r->user_id);
    cJSON_AddStringToObject(d, "by", by);
    char *detail = mm_print(d);
    cJSON_Delete(d);
    struct memhist_row row = {
        .ts_ms = now,
        .tenant = (char *)(uintptr_t)tenant,
        .memory_id = (char *)(uintptr_t)r->id,
        .op = (char *)(uintptr_t) "delete",
        .user_id = (char *)(uintptr_t)user,
        .agent = (char *)(uintptr_t)agent,
        .detail = detail,
    };
    int rc = memhist_add(m->db, &row, err, errlen);
    xfree(detail);
    return rc;
}

/* Deletes the records matching f a page at a time inside the open
 * transaction, counting their terms out and writing history rows. */
static enum memory_status mm_delete_matching(struct memory_manager *m, const char *tenant,
                                             const struct mem_filter *f, const char *user,
                                             const char *agent, struct mm_df *acc, size_t *deleted,
                                             char *err, size_t errlen)
{
    int64_t now = clock_wall_ms();
    char after[MC_UUID_STRLEN + 1] = "";
    for (;;) {
        struct mem_records page = {0};
        if (m->s->ops->list(m->s, tenant, f, after[0] ? after : NULL, MEMORY_PAGE, false, &page,
                            err, errlen) != 0)
            return MEMORY_ERR_STORE;
        if (page.n == 0) {
            mem_records_free(&page);
            return MEMORY_OK;
        }
        const char **ids = xcalloc(page.n, sizeof *ids);
        int rc = 0;
        for (size_t i = 0; i < page.n && rc == 0; i++) {
            ids[i] = page.v[i].id;
            mm_df_text(m->e, acc, page.v[i].text != NULL ? page.v[i].text : "", -1);
            rc = mm_hist_delete(m, tenant, &page.v[i], user, agent, "filter", now, err, errlen);
        }
        size_t n = 0;
        if (rc == 0)
            rc = m->s->ops->delete_ids(m->s, tenant, ids, page.n, &n, err, errlen);
        *deleted += n;
        size_t got = page.n;
        mm_copy(after, sizeof after, page.v[got - 1].id);
        xfree(ids);
        mem_records_free(&page);
        if (rc != 0)
            return MEMORY_ERR_STORE;
        if (got < MEMORY_PAGE)
            return MEMORY_OK;
    }
}

enum memory_status memory_delete(struct memory_manager *m, const char *tenant, const char *id,
                                 const struct mem_filter *filter, const char *user,
                                 const char *agent, size_t *deleted, char *err, size_t errlen)
{
    size_t count = 0;
    if (deleted != NULL)
        *deleted = 0;
    char q[200], lid[MC_UUID_STRLEN + 1] = "";
    if ((id == NULL) == (filter == NULL)) {
        msg_set(err, errlen, "forget takes an id or a filter (one of them)");
        return MEMORY_ERR_INPUT;
    }
    if (id != NULL) {
        if (!uuid_valid(id)) {
            msg_set(err, errlen, "id \"%s\" is not a UUID", mm_quote(id, q, sizeof q));
            return MEMORY_ERR_INPUT;
        }
        mm_uuid_lower(id, lid);
    }
    enum memory_status st = mm_check_ident(user, "user", err, errlen);
    st = st ? st : mm_check_ident(agent, "agent", err, errlen);
    struct store_ns ns;
    bool exists = false;
    st = st ? st : mm_ns(m, tenant, &ns, &exists, err, errlen);
    if (st != MEMORY_OK)
        return st;
    if (!exists) {
        if (id == NULL)
            return MEMORY_OK;
        msg_set(err, errlen, "tenant %s has no memory %s", tenant, lid);
        return MEMORY_ERR_NOT_FOUND;
    }
    struct mm_df acc = {0};
    if (db_begin(m->db, err, errlen) != 0)
        return MEMORY_ERR_STORE;
    if (id != NULL) {
        struct mem_record rec;
        memset(&rec, 0, sizeof rec);
        int rc = mm_stored_by_id(m, tenant, lid, &rec, err, errlen);
        if (rc < 0) {
            st = MEMORY_ERR_STORE;
        } else if (rc == 1) {
            msg_set(err, errlen, "tenant %s has no memory %s", tenant, lid);
            st = MEMORY_ERR_NOT_FOUND;
        } else {
            const char *ids[1] = {lid};
            mm_df_text(m->e, &acc, rec.text != NULL ? rec.text : "", -1);
            if (m->s->ops->delete_ids(m->s, tenant, ids, 1, &count, err, errlen) != 0 ||
                mm_hist_delete(m, tenant, &rec, user, agent, "id", clock_wall_ms(), err, errlen) !=
                    0)
                st = MEMORY_ERR_STORE;
        }
        mem_record_clear(&rec);
    } else {
        st = mm_delete_matching(m, tenant, filter, user, agent, &acc, &count, err, errlen);
    }
    if (st == MEMORY_OK && mm_df_apply(m->db, tenant, &acc, err, errlen) != 0)
        st = MEMORY_ERR_STORE;
    if (st == MEMORY_OK && db_commit(m->db, err, errlen) != 0)
        st = MEMORY_ERR_STORE;
    if (st != MEMORY_OK) {
        db_rollback(m->db);
        count = 0;
    }
    xfree(acc.v);
    if (deleted != NULL)
        *deleted = count;
    return st;
}

enum memory_status memory_purge(struct memory_manager *m, const char *tenant, const char *user,
                                size_t *deleted, char *err, size_t errlen)
{
    size_t count = 0, removed = 0;
    if (deleted != NULL)
        *deleted = 0;
    struct store_ns ns;
    bool exists = false;
    enum memory_status st = mm_check_ident(tenant, "tenant", err, errlen);
    if (st == MEMORY_OK && user != NULL) {
        st = mm_check_ident(user, "user", err, errlen);
        st = st ? st : mm_ns(m, tenant, &ns, &exists, err, errlen);
    } else if (st == MEMORY_OK) {
        int rc = m->s->ops->ns_get(m->s, tenant, &ns, err, errlen);
        if (rc < 0)
            st = MEMORY_ERR_STORE;
        exists = rc == 0;
    }
    if (st != MEMORY_OK)
        return st;
    struct mm_df acc = {0};
    struct mem_filter *uf = user != NULL ? filter_eq("user_id", user) : NULL;
    if (db_begin(m->db, err, errlen) != 0) {
        filter_free(uf);
        return MEMORY_ERR_STORE;
    }
    if (exists && user != NULL) {
        /* The user's texts leave the frequencies one by one; the rows go
         * with one delete. */
        char after[MC_UUID_STRLEN + 1] = "";
        for (bool more = true; more && st == MEMORY_OK;) {
            struct mem_records page = {0};
            if (m->s->ops->list(m->s, tenant, uf, after[0] ? after : NULL, MEMORY_PAGE, false,
                                &page, err, errlen) != 0) {
                st = MEMORY_ERR_STORE;
                break;
            }
            for (size_t i = 0; i < page.n; i++)
                mm_df_text(m->e, &acc, page.v[i].text != NULL ? page.v[i].text : "", -1);
            if (page.n > 0)
                mm_copy(after, sizeof after, page.v[page.n - 1].id);
            more = page.n == MEMORY_PAGE;
            mem_records_free(&page);
        }
        if (st == MEMORY_OK &&
            (m->s->ops->delete_filter(m->s, tenant, uf, &count, err, errlen) != 0 ||
             mm_df_apply(m->db, tenant, &acc, err, errlen) != 0))
            st = MEMORY_ERR_STORE;
    } else if (exists) {
        if (m->s->ops->delete_filter(m->s, tenant, NULL, &count, err, errlen) != 0)
            st = MEMORY_ERR_STORE;
    }
    if (st == MEMORY_OK && user == NULL && mm_df_purge(m->db, tenant, err, errlen) != 0)
        st = MEMORY_ERR_STORE;
    if (st == MEMORY_OK && memhist_purge(m->db, tenant, user, &removed, err, errlen) != 0)
        st = MEMORY_ERR_STORE;
    if (st == MEMORY_OK && db_commit(m->db, err, errlen) != 0)
        st = MEMORY_ERR_STORE;
    if (st != MEMORY_OK) {
        db_rollback(m->db);
        count = 0;
    }
    xfree(acc.v);
    filter_free(uf);
    if (deleted != NULL)
        *deleted = count;
    return st;
}

/* --- stats -------------------------------------------------------------- */

/* One namespace's stats object; a tenant without a namespace reports the
 * configured embedder and zeros. */
static enum memory_status mm_stats_one(struct memory_manager *m, const char *tenant, cJSON **out,
                                       char *err, size_t errlen)
{
    struct store_ns ns;
    memset(&ns, 0, sizeof ns);
    struct store_stats ss;
    memset(&ss, 0, sizeof ss);
    int rc = m->s->ops->ns_get(m->s, tenant, &ns, err, errlen);
    if (rc < 0)
        return MEMORY_ERR_STORE;
    if (rc == 0 && m->s->ops->stats(m->s, tenant, &ss, err, errlen) != 0)
        return MEMORY_ERR_STORE;
    bool exists = rc == 0;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "tenant", tenant);
    cJSON_AddStringToObject(o, "embedder", exists ? ns.embedder : m->e->name);
    cJSON_AddStringToObject(o, "model", exists ? ns.model : m->e->model);
    cJSON_AddNumberToObject(o, "dim", exists ? ns.dim : m->e->dim);
    cJSON_AddNumberToObject(o, "count", (double)ss.count);
    cJSON_AddNumberToObject(o, "users", (double)ss.users);
    if (ss.count > 0) {
        cJSON_AddNumberToObject(o, "oldest", (double)ss.oldest);
        cJSON_AddNumberToObject(o, "newest", (double)ss.newest);
    } else {
        cJSON_AddNullToObject(o, "oldest");
        cJSON_AddNullToObject(o, "newest");
    }
    cJSON_AddNumberToObject(o, "generation", (double)ns.generation);
    cJSON_AddNumberToObject(o, "text_bytes", (double)ss.text_bytes);
    cJSON_AddNumberToObject(o, "bytes_on_disk", (double)ss.bytes_on_disk);
    cJSON_AddNumberToObject(o, "bytes_in_memory", (double)ss.bytes_in_memory);
    if (ss.count > 0)
        cJSON_AddNumberToObject(o, "bytes_per_memory",
                                round((double)ss.bytes_on_disk / (double)ss.count));
    else
        cJSON_AddNullToObject(o, "bytes_per_memory");
    *out = o;
    return MEMORY_OK;
}

enum memory_status memory_stats(struct memory_manager *m, const char *tenant, struct cJSON **out,
                                char *err, size_t errlen)
{
    *out = NULL;
    if (tenant != NULL) {
        enum memory_status st = mm_check_ident(tenant, "tenant", err, errlen);
        return st ? st : mm_stats_one(m, tenant, out, err, errlen);
    }
    char **names = NULL;
    size_t n = 0;
    if (m->s->ops->namespaces(m->s, &names, &n, err, errlen) != 0)
        return MEMORY_ERR_STORE;
    cJSON *arr = cJSON_CreateArray();
    enum memory_status st = MEMORY_OK;
    for (size_t i = 0; i < n && st == MEMORY_OK; i++) {
        cJSON *o = NULL;
        st = mm_stats_one(m, names[i], &o, err, errlen);
        if (st == MEMORY_OK)
            cJSON_AddItemToArray(arr, o);
    }
    store_names_free(names, n);
    if (st != MEMORY_OK) {
        cJSON_Delete(arr);
        return st;
    }
    *out = arr;
    return MEMORY_OK;
}

/* --- JSON in and out ---------------------------------------------------- */

struct cJSON *memory_record_json(const struct mem_record *r, const struct memory_hit *hit,
                                 bool with_vector, int dim)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", r->id);
    cJSON_AddStringToObject(o, "text", r->text != NULL ? r->text : "");
    if (hit != NULL) {
        mm_add_score(o, "score", hit->score);
        cJSON *s = cJSON_AddObjectToObject(o, "scores");
        mm_add_score(s, "vector", hit->vector);
        mm_add_score(s, "keyword", hit->keyword);
        mm_add_score(s, "fused", hit->fused);
        mm_add_score(s, "mmr", hit->mmr);
    }
    cJSON_AddStringToObject(o, "user_id", r->user_id);
    cJSON_AddStringToObject(o, "agent", r->agent);
    cJSON_AddStringToObject(o, "kind", r->kind);
    cJSON_AddNumberToObject(o, "created_at", (double)r->created_at);
    cJSON *meta = r->metadata != NULL ? cJSON_Parse(r->metadata) : NULL;
    if (!cJSON_IsObject(meta)) {
        cJSON_Delete(meta);
        meta = cJSON_CreateObject();
    }
    cJSON_AddItemToObject(o, "metadata", meta);
    if (with_vector && r->vector != NULL && dim > 0) {
        /* Each float as the shortest decimal of 9 significant digits,
         * which reads back as the same float and prints in about half the
         * text of the float's exact double. */
        cJSON *arr = cJSON_AddArrayToObject(o, "vector");
        for (int i = 0; i < dim && arr != NULL; i++) {
            char num[32];
            snprintf(num, sizeof num, "%.9g", isfinite(r->vector[i]) ? (double)r->vector[i] : 0.0);
            cJSON_AddItemToArray(arr, cJSON_CreateNumber(strtod(num, NULL)));
        }
    }
    return o;
}

/* "field": "value" as messages show it. */
static void mm_field_msg(char *err, size_t errlen, const char *field, const char *value,
                         const char *problem)
{
    char q[200];
    msg_set(err, errlen, "\"%s\": \"%s\" %s", field, mm_quote(value, q, sizeof q), problem);
}

/* An optional string field of o: NULL when absent or null; -1 when it is
 * there and not a string. */
static int mm_opt_string(const cJSON *o, const char *name, const char **out, char *err,
                         size_t errlen)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, name);
    *out = NULL;
    if (j == NULL || cJSON_IsNull(j))
        return 0;
    if (!cJSON_IsString(j) || j->valuestring == NULL) {
        msg_set(err, errlen, "\"%s\" must be a string", name);
        return -1;
    }
    *out = j->valuestring;
    return 0;
}

int memory_parse_import_line(const char *line, struct memory_add *a, struct cJSON **hold,
                             float **vec, size_t *vec_len, char *err, size_t errlen)
{
    memset(a, 0, sizeof *a);
    *hold = NULL;
    *vec = NULL;
    *vec_len = 0;
    size_t n = strlen(line), bad = 0;
    const char *end = NULL;
    cJSON *o = json_parse(line, n, &end, false);
    if (o == NULL && errno == ENOMEM) {
        msg_set(err, errlen, "out of memory reading the line");
        return -1;
    }
    if (o == NULL) {
        size_t at = end != NULL && end >= line ? (size_t)(end - line) : 0;
        msg_set(err, errlen, "not JSON (syntax error at byte %zu)", at);
        return -1;
    }
    if (end != NULL && !mm_blank(end, n - (size_t)(end - line))) {
        msg_set(err, errlen, "more than one JSON value (extra text at byte %zu)",
                (size_t)(end - line));
        goto fail;
    }
    if (!cJSON_IsObject(o)) {
        msg_set(err, errlen, "not a JSON object (each line is one memory: {\"text\": \"...\"})");
        goto fail;
    }
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "text");
    if (t == NULL || cJSON_IsNull(t)) {
        msg_set(err, errlen, "\"text\" is missing (every line needs one)");
        goto fail;
    }
    if (!cJSON_IsString(t) || t->valuestring == NULL) {
        msg_set(err, errlen, "\"text\" must be a string");
        goto fail;
    }
    size_t tl = strlen(t->valuestring);
    if (!utf8_valid(t->valuestring, tl, &bad)) {
        msg_set(err, errlen, "\"text\" is not valid UTF-8 (bad byte at offset %zu)", bad);
        goto fail;
    }
    if (mm_blank(t->valuestring, tl)) {
        msg_set(err, errlen, "\"text\" is empty");
        goto fail;
    }
    if (tl > MEMORY_TEXT_MAX) {
        msg_set(err, errlen, "\"text\" is %zu bytes; at most %zu are accepted", tl,
                MEMORY_TEXT_MAX);
        goto fail;
    }
    a->text = t->valuestring;
    if (mm_opt_string(o, "id", &a->id, err, errlen) != 0)
        goto fail;
    if (a->id != NULL && !uuid_valid(a->id)) {
        mm_field_msg(err, errlen, "id", a->id, "is not a UUID");
        goto fail;
    }
    if (mm_opt_string(o, "user_id", &a->user, err, errlen) != 0)
        goto fail;
    if (a->user != NULL && !ident_valid(a->user)) {
        mm_field_msg(err, errlen, "user_id", a->user,
                     "is not a valid id (accepted: [A-Za-z0-9_-]{1,64})");
        goto fail;
    }
    if (mm_opt_string(o, "agent", &a->agent, err, errlen) != 0)
        goto fail;
    if (a->agent != NULL && !ident_valid(a->agent)) {
        mm_field_msg(err, errlen, "agent", a->agent,
                     "is not a valid id (accepted: [A-Za-z0-9_-]{1,64})");
        goto fail;
    }
    if (mm_opt_string(o, "kind", &a->kind, err, errlen) != 0)
        goto fail;
    if (a->kind != NULL && !mm_kind_valid(a->kind)) {
        mm_field_msg(err, errlen, "kind", a->kind, "is not accepted (accepted: [a-z_]{1,32})");
        goto fail;
    }
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "created_at");
    if (c != NULL && !cJSON_IsNull(c)) {
        double v = cJSON_IsNumber(c) ? c->valuedouble : -1.0;
        if (!(v >= 0.0 && v <= 9007199254740992.0 && floor(v) == v)) {
            msg_set(err, errlen,
                    "\"created_at\" must be a non-negative integer (Unix "
                    "milliseconds)");
            goto fail;
        }
        a->created_at = (int64_t)v;
    }
    cJSON *md = cJSON_GetObjectItemCaseSensitive(o, "metadata");
    if (md != NULL && !cJSON_IsNull(md)) {
        if (!cJSON_IsObject(md)) {
            msg_set(err, errlen, "\"metadata\" must be a JSON object");
            goto fail;
        }
        /* The object is kept as text in its place, so a->metadata lives
         * as long as *hold. */
        char *text = mm_print(md);
        size_t ml = strlen(text);
        bool ok = ml <= MEMORY_META_MAX && utf8_valid(text, ml, &bad);
        if (!ok) {
            if (ml > MEMORY_META_MAX)
                msg_set(err, errlen, "\"metadata\" is %zu bytes; at most %zu are accepted", ml,
                        MEMORY_META_MAX);
            else
                msg_set(err, errlen, "\"metadata\" is not valid UTF-8");
            xfree(text);
            goto fail;
        }
        cJSON *s = cJSON_CreateString(text);
        xfree(text);
        if (s == NULL || !cJSON_ReplaceItemInObjectCaseSensitive(o, "metadata", s)) {
            cJSON_Delete(s);
            msg_set(err, errlen, "out of memory reading \"metadata\"");
            goto fail;
        }
        a->metadata = s->valuestring;
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "vector");
    if (v != NULL && !cJSON_IsNull(v)) {
        int len = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : -1;
        if (len < 1 || len > MEMORY_VEC_MAX) {
            msg_set(err, errlen, "\"vector\" must be an array of 1..%d numbers", MEMORY_VEC_MAX);
            goto fail;
        }
        float *f = xcalloc((size_t)len, sizeof *f);
        int i = 0;
        const cJSON *x;
        cJSON_ArrayForEach(x, v)
        {
            if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble) ||
                fabs(x->valuedouble) > (double)FLT_MAX) {
                msg_set(err, errlen, "\"vector\"[%d] is not a number a float can hold", i);
                xfree(f);
                goto fail;
            }
            f[i++] = (float)x->valuedouble;
        }
        *vec = f;
        *vec_len = (size_t)len;
        a->vector = f;
        a->vector_len = (size_t)len;
    }
    *hold = o;
    return 0;
fail:
    cJSON_Delete(o);
    memset(a, 0, sizeof *a);
    return -1;
}

enum memory_status memory_index(struct memory_manager *m, const char *tenant, bool rebuild,
                                store_progress_fn progress, void *ud, struct store_index_info *out,
                                char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    enum memory_status st = mm_check_ident(tenant, "tenant", err, errlen);
    if (st != MEMORY_OK)
        return st;
    if (m->s->ops->index == NULL) {
        snprintf(err, errlen, "the %s vector store keeps its index on its server", m->s->name);
        return MEMORY_ERR_INPUT;
    }
    int rc = m->s->ops->index(m->s, tenant, rebuild, progress, ud, out, err, errlen);
    if (rc == 1) {
        snprintf(err, errlen, "tenant %s has no memories", tenant);
        return MEMORY_ERR_NOT_FOUND;
    }
    return rc == 0 ? MEMORY_OK : MEMORY_ERR_STORE;
}
