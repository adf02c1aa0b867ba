/*
 * The `local` vector store of the embedded defaults (memory/store.h): a
 * tenant's memories are rows of `memories` in memchat.db (schema migration
 * 4), their vectors BLOBs of dim float32 little-endian, their texts indexed
 * by the external-content FTS5 table memories_fts for keyword ranking.
 *
 * Vector queries run on an in-memory index per namespace (a vscan matrix
 * plus rowid<->row maps) held in a struct store_cache that the stores of
 * one process share. An index is loaded on the first query and, before
 * each query, compared with the namespace's generation, which the schema's
 * triggers bump on every write and log in memory_changes with the rowid
 * they touched: an index behind catches up by re-reading just those rows,
 * and reloads fully when the log no longer reaches back (pruned), when the
 * namespace was purged and created again, or when anything looks off.
 *
 * What the shared cache holds is always committed state. A query runs in
 * one read snapshot (its own transaction, or the caller's); the index is
 * brought forward only from a snapshot that cannot contain this
 * connection's uncommitted writes: never inside a write transaction, where
 * the index is used only when it already matches the snapshot exactly, and
 * a private scan of the snapshot's rows answers otherwise (also when the
 * caller's older snapshot lags the shared index). A query of a tenant this
 * store wrote in a transaction still open is refused outright: its answer
 * would depend on rows that may yet roll back. The store learns that a
 * transaction ended from SQLite's commit and rollback hooks, so one local
 * store per connection (the engine makes one per worker).
 *
 * Every statement names its tenant, and rows are always re-read with
 * "rowid = ? AND tenant = ?", so neither a stale index nor a rowid that
 * SQLite reused for another tenant's memory can return another tenant's
 * row (the isolation property of memory/store.h).
 */
#include "config.h"

#include "memory/store.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "memory/filter.h"
#include "memory/stopwords.h"
#include "memory/vindex.h"
#include "store/db.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/ident.h"
#include "util/utf8.h"
#include "util/uuid.h"

/* memory_changes entries kept per tenant: an index more than this many
 * writes behind reloads fully instead of catching up. */
#define LOCAL_LOG_KEEP 50000
/* Largest dimension a namespace may have (vscan's limit). */
#define LOCAL_DIM_MAX 65536
/* Bound on generated SQL (a filter has at most 1,000 nodes). */
#define LOCAL_SQL_MAX (1u << 20)
/* Bound on an index file's path. */
#define LOCAL_PATH_MAX 4096
/* Keyword queries use at most this many words of the user's text. */
#define LOCAL_FTS_TERMS_MAX 64

/* --- one namespace's index ------------------------------------------------ */

/* An index file as last looked at, to notice another process writing a
 * new one. */
struct local_file_seen {
    bool exists;
    dev_t dev;
    ino_t ino;
    off_t size;
    int64_t mtime_ns;
};

struct local_index {
    struct vindex *vx; /* NULL: not loaded */
    int dim;
    int64_t generation;      /* of the committed state the index holds */
    int64_t created_ms;      /* the namespace's, telling a re-created one apart */
    int64_t file_generation; /* of the index file it was loaded from or saved to; -1: none */
    size_t caught_up;        /* changes replayed onto the file's graph when it was loaded */
    struct local_file_seen seen;
    bool hinted; /* the "run memchat memory index" hint was logged */
};

/* An empty index (nothing loaded, no file). */
static void index_init(struct local_index *ix)
{
    memset(ix, 0, sizeof *ix);
    ix->file_generation = -1;
}

static void index_reset(struct local_index *ix)
{
    vindex_free(ix->vx);
    index_init(ix);
}

/* Makes vx (taken over) ix's index of the namespace as ns describes it. */
static void index_install(struct local_index *ix, struct vindex *vx, const struct store_ns *ns)
{
    index_reset(ix);
    ix->vx = vx;
    ix->dim = ns->dim;
    ix->generation = ns->generation;
    ix->created_ms = ns->created_ms;
}

/* --- the shared cache ----------------------------------------------------- */

struct cache_entry {
    char tenant[IDENT_MAX + 1];
    pthread_mutex_t lock; /* guards ix */
    struct local_index ix;
    struct cache_entry *next;
};

struct store_cache {
    pthread_mutex_t lock; /* guards the list; entries live until the cache */
    struct cache_entry *head;
};

struct store_cache *store_cache_new(void)
{
    struct store_cache *c = xcalloc(1, sizeof *c);
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

void store_cache_free(struct store_cache *c)
{
    if (c == NULL)
        return;
    struct cache_entry *e = c->head;
    while (e != NULL) {
        struct cache_entry *next = e->next;
        index_reset(&e->ix);
        pthread_mutex_destroy(&e->lock);
        xfree(e);
        e = next;
    }
    pthread_mutex_destroy(&c->lock);
    xfree(c);
}

/* The entry of tenant, created empty when create is set (else NULL when
 * absent). The pointer stays valid until the cache is freed. */
static struct cache_entry *cache_entry_get(struct store_cache *c, const char *tenant, bool create)
{
    pthread_mutex_lock(&c->lock);
    struct cache_entry *e = c->head;
    while (e != NULL && strcmp(e->tenant, tenant) != 0)
        e = e->next;
    if (e == NULL && create) {
        e = xcalloc(1, sizeof *e);
        snprintf(e->tenant, sizeof e->tenant, "%s", tenant);
        pthread_mutex_init(&e->lock, NULL);
        index_init(&e->ix);
        e->next = c->head;
        c->head = e;
    }
    pthread_mutex_unlock(&c->lock);
    return e;
}

/* --- the store object ----------------------------------------------------- */

struct local {
    struct db *db;
    sqlite3 *conn;
    struct store_cache *cache;
    bool own_cache;
    /* Tenants written in the transaction open on conn (cleared by the
     * commit and rollback hooks, and whenever no transaction is open). */
    char (*dirty)[IDENT_MAX + 1];
    size_t n_dirty, cap_dirty;
    /* Statements run on every query, prepared once. */
    sqlite3_stmt *st_ns;  /* namespace row */
    sqlite3_stmt *st_vec; /* one row's vector */
    sqlite3_stmt *st_rec; /* one row's fields, without its vector */
    float *scratch;       /* one decoded vector */
    int scratch_dim;
    struct vindex_opts opts;             /* hnsw_threshold 0: exact scans only */
    char index_dir[LOCAL_PATH_MAX - 80]; /* index/ beside the data file; "" keeps no files */
};

static const char local_ns_sql[] = "SELECT embedder, model, dim, generation, count, created_ms"
                                   " FROM memory_namespaces WHERE tenant = ?";
static const char local_vec_sql[] = "SELECT vector FROM memories WHERE rowid = ? AND tenant = ?";
#define LOCAL_FIELDS "id, text, user_id, agent, kind, created_at, updated_at, metadata"
/* The vector is the last column, so leaving it out spares reading the
 * row's overflow pages: a query takes its hits' vectors from the index. */
static const char local_rec_sql[] =
    "SELECT " LOCAL_FIELDS " FROM memories WHERE rowid = ? AND tenant = ?";

/* A printable copy of a name for messages: names that break the
 * identifier contract may hold anything. */
static const char *local_shown(const char *s, char *out, size_t outlen)
{
    if (s == NULL)
        return "(null)";
    size_t j = 0;
    for (size_t i = 0; s[i] != '\0' && j + 1 < outlen; i++)
        out[j++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    out[j] = '\0';
    return out;
}

static void local_fail(const struct local *L, const char *tenant, char *err, size_t errlen,
                       const char *fmt, ...) MC_PRINTF(5, 6);

/* Formats "local store, tenant T, data file PATH: <message>". */
static void local_fail(const struct local *L, const char *tenant, char *err, size_t errlen,
                       const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    char shown[IDENT_MAX + 8];
    int n = snprintf(err, errlen, "local store, tenant %s, data file %s: ",
                     local_shown(tenant, shown, sizeof shown), db_path(L->db));
    if (n < 0 || (size_t)n >= errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

/* The same with SQLite's message about what failed. */
static void local_fail_sql(const struct local *L, const char *tenant, const char *what, char *err,
                           size_t errlen)
{
    local_fail(L, tenant, err, errlen, "%s: %s", what, sqlite3_errmsg(L->conn));
}

static int local_check_tenant(const struct local *L, const char *tenant, const char *op, char *err,
                              size_t errlen)
{
    if (tenant != NULL && ident_valid(tenant))
        return 0;
    local_fail(L, tenant, err, errlen,
               "%s: the tenant id is not valid (accepted: [A-Za-z0-9_-]{1,64})", op);
    return -1;
}

/* A prepared statement kept for the store's life. */
static sqlite3_stmt *local_stmt(struct local *L, sqlite3_stmt **slot, const char *sql)
{
    if (*slot == NULL &&
        sqlite3_prepare_v3(L->conn, sql, -1, SQLITE_PREPARE_PERSISTENT, slot, NULL) != SQLITE_OK) {
        sqlite3_finalize(*slot);
        *slot = NULL;
    }
    return *slot;
}

/* Ends a use of a kept statement, so it holds no read lock. */
static void local_stmt_done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

static int local_commit_hook(void *arg)
{
    struct local *L = arg;
    L->n_dirty = 0;
    return 0;
}

static void local_rollback_hook(void *arg)
{
    struct local *L = arg;
    L->n_dirty = 0;
}

/* True when this store wrote tenant in the transaction open now. */
static bool local_is_dirty(struct local *L, const char *tenant)
{
    if (sqlite3_get_autocommit(L->conn)) {
        L->n_dirty = 0; /* no transaction open: nothing can be pending */
        return false;
    }
    for (size_t i = 0; i < L->n_dirty; i++)
        if (strcmp(L->dirty[i], tenant) == 0)
            return true;
    return false;
}

static void local_mark_dirty(struct local *L, const char *tenant)
{
    if (local_is_dirty(L, tenant))
        return;
    if (L->n_dirty == L->cap_dirty) {
        L->cap_dirty = L->cap_dirty ? L->cap_dirty * 2 : 4;
        L->dirty = xreallocarray(L->dirty, L->cap_dirty, sizeof *L->dirty);
    }
    snprintf(L->dirty[L->n_dirty++], sizeof *L->dirty, "%s", tenant);
}

/* --- vectors as BLOBs ------------------------------------------------------ */

static void vec_encode(const float *v, int dim, unsigned char *out)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(out, v, (size_t)dim * sizeof *v);
#else
    for (int i = 0; i < dim; i++) {
        uint32_t u;
        memcpy(&u, &v[i], sizeof u);
        for (int b = 0; b < 4; b++)
            out[4 * i + b] = (unsigned char)(u >> (8 * b));
    }
#endif
}

static void vec_decode(const unsigned char *in, int dim, float *v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(v, in, (size_t)dim * sizeof *v);
#else
    for (int i = 0; i < dim; i++) {
        uint32_t u = 0;
        for (int b = 0; b < 4; b++)
            u |= (uint32_t)in[4 * i + b] << (8 * b);
        memcpy(&v[i], &u, sizeof u);
    }
#endif
}

/* The scratch vector, sized for dim floats. */
static float *local_scratch(struct local *L, int dim)
{
    if (L->scratch_dim < dim) {
        xfree(L->scratch);
        L->scratch = xreallocarray(NULL, (size_t)dim, sizeof *L->scratch);
        L->scratch_dim = dim;
    }
    return L->scratch;
}

/* --- filters into SQL ----------------------------------------------------- */

/* The filter's values in the order of their `?`s. */
struct local_binds {
    const struct filter_value **v;
    size_t n, cap;
};

static void local_binds_push(void *ud, int index, const struct filter_value *v)
{
    struct local_binds *b = ud;
    if (index < 0)
        return;
    size_t i = (size_t)index;
    if (i >= b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        while (cap <= i)
            cap *= 2;
        b->v = xreallocarray(b->v, cap, sizeof *b->v);
        for (size_t j = b->cap; j < cap; j++)
            b->v[j] = NULL;
        b->cap = cap;
    }
    b->v[i] = v;
    if (i + 1 > b->n)
        b->n = i + 1;
}

/* Binds the filter's values from parameter first on. */
static int local_binds_apply(sqlite3_stmt *st, int first, const struct local_binds *b)
{
    int rc = SQLITE_OK;
    for (size_t i = 0; i < b->n && rc == SQLITE_OK; i++) {
        const struct filter_value *v = b->v[i];
        int at = first + (int)i;
        if (v == NULL)
            rc = sqlite3_bind_null(st, at);
        else if (v->type == FILTER_V_STRING)
            rc = sqlite3_bind_text(st, at, v->s != NULL ? v->s : "", -1, SQLITE_STATIC);
        else if (v->type == FILTER_V_NUMBER)
            rc = sqlite3_bind_double(st, at, v->n);
        else
            rc = sqlite3_bind_int(st, at, v->b ? 1 : 0);
    }
    return rc;
}

/* Prepares head + "(" filter ")" + tail with `?` parameters; the filter's
 * values are bound from parameter first on, the caller binds the others.
 * NULL with a message on failure. */
static sqlite3_stmt *local_prepare_filtered(struct local *L, const char *tenant, const char *op,
                                            const char *head, const struct mem_filter *f,
                                            const char *prefix, const char *tail, int first,
                                            char *err, size_t errlen)
{
    struct buf sql;
    buf_init(&sql, LOCAL_SQL_MAX);
    struct local_binds binds = {0};
    sqlite3_stmt *st = NULL;
    if (buf_puts(&sql, head) != BUF_OK || buf_putc(&sql, '(') != BUF_OK ||
        filter_sql(f, prefix, &sql, local_binds_push, &binds) != 0 ||
        buf_putc(&sql, ')') != BUF_OK || buf_puts(&sql, tail) != BUF_OK) {
        local_fail(L, tenant, err, errlen, "%s: the filter is too large to translate", op);
        goto out;
    }
    if (sqlite3_prepare_v2(L->conn, buf_cstr(&sql), -1, &st, NULL) != SQLITE_OK) {
        char what[96];
        snprintf(what, sizeof what, "%s: preparing the filtered statement", op);
        local_fail_sql(L, tenant, what, err, errlen);
        sqlite3_finalize(st);
        st = NULL;
        goto out;
    }
    if (local_binds_apply(st, first, &binds) != SQLITE_OK) {
        char what[96];
        snprintf(what, sizeof what, "%s: binding the filter's values", op);
        local_fail_sql(L, tenant, what, err, errlen);
        sqlite3_finalize(st);
        st = NULL;
    }
out:
    buf_free(&sql);
    xfree(binds.v);
    return st;
}

/* --- transactions --------------------------------------------------------- */

/* A read snapshot: the caller's transaction when one is open, else one of
 * our own (*own set), so every statement of an operation sees one state. */
static int local_read_begin(struct local *L, const char *tenant, bool *own, char *err,
                            size_t errlen)
{
    *own = false;
    if (!sqlite3_get_autocommit(L->conn))
        return 0;
    if (sqlite3_exec(L->conn, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
        local_fail_sql(L, tenant, "starting a read", err, errlen);
        return -1;
    }
    *own = true;
    return 0;
}

static void local_read_end(struct local *L, bool own)
{
    if (own && sqlite3_exec(L->conn, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        sqlite3_exec(L->conn, "ROLLBACK", NULL, NULL, NULL);
}

/* A write: its own IMMEDIATE transaction when none is open, else a
 * savepoint in the caller's (so a failed operation leaves nothing behind
 * either way), the tenant then marked as written in that transaction. */
static int local_write_begin(struct local *L, const char *tenant, const char *op, bool *own,
                             char *err, size_t errlen)
{
    *own = false;
    if (sqlite3_get_autocommit(L->conn)) {
        L->n_dirty = 0;
        char msg[512];
        if (db_begin(L->db, msg, sizeof msg) != 0) {
            local_fail(L, tenant, err, errlen, "%s: %s", op, msg);
            return -1;
        }
        *own = true;
        return 0;
    }
    local_mark_dirty(L, tenant);
    if (sqlite3_exec(L->conn, "SAVEPOINT vstore_write", NULL, NULL, NULL) != SQLITE_OK) {
        char what[96];
        snprintf(what, sizeof what, "%s: starting a savepoint", op);
        local_fail_sql(L, tenant, what, err, errlen);
        return -1;
    }
    return 0;
}

/* Ends the write: commits (or releases the savepoint) when ok, else undoes
 * it, leaving the message already in err. */
static int local_write_end(struct local *L, const char *tenant, const char *op, bool own, bool ok,
                           char *err, size_t errlen)
{
    if (own) {
        if (!ok) {
            db_rollback(L->db);
            return -1;
        }
        char msg[512];
        if (db_commit(L->db, msg, sizeof msg) != 0) {
            local_fail(L, tenant, err, errlen, "%s: %s", op, msg);
            db_rollback(L->db);
            return -1;
        }
        return 0;
    }
    if (!ok) {
        sqlite3_exec(L->conn, "ROLLBACK TO vstore_write", NULL, NULL, NULL);
        sqlite3_exec(L->conn, "RELEASE vstore_write", NULL, NULL, NULL);
        local_mark_dirty(L, tenant); /* the caller's earlier writes may remain */
        return -1;
    }
    if (sqlite3_exec(L->conn, "RELEASE vstore_write", NULL, NULL, NULL) != SQLITE_OK) {
        char what[96];
        snprintf(what, sizeof what, "%s: releasing the savepoint", op);
        local_fail_sql(L, tenant, what, err, errlen);
        return -1;
    }
    return 0;
}

/* --- reading rows ----------------------------------------------------------- */

/* Reads tenant's namespace row: 0, 1 when absent, -1 with a message. */
static int local_ns_read(struct local *L, const char *tenant, struct store_ns *ns, char *err,
                         size_t errlen)
{
    sqlite3_stmt *st = local_stmt(L, &L->st_ns, local_ns_sql);
    if (st == NULL) {
        local_fail_sql(L, tenant, "reading the namespace", err, errlen);
        return -1;
    }
    memset(ns, 0, sizeof *ns);
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *e = sqlite3_column_text(st, 0);
        const unsigned char *m = sqlite3_column_text(st, 1);
        snprintf(ns->embedder, sizeof ns->embedder, "%s", e != NULL ? (const char *)e : "");
        snprintf(ns->model, sizeof ns->model, "%s", m != NULL ? (const char *)m : "");
        int64_t dim = sqlite3_column_int64(st, 2);
        ns->dim = dim > 0 && dim <= LOCAL_DIM_MAX ? (int)dim : 0;
        ns->generation = sqlite3_column_int64(st, 3);
        int64_t count = sqlite3_column_int64(st, 4);
        ns->count = count > 0 ? (size_t)count : 0;
        ns->created_ms = sqlite3_column_int64(st, 5);
        local_stmt_done(st);
        if (ns->dim == 0) {
            local_fail(L, tenant, err, errlen,
                       "the namespace records dimension %lld (accepted: 1..%d); the data file "
                       "was changed by hand",
                       (long long)dim, LOCAL_DIM_MAX);
            return -1;
        }
        return 0;
    }
    if (rc == SQLITE_DONE) {
        local_stmt_done(st);
        return 1;
    }
    local_fail_sql(L, tenant, "reading the namespace", err, errlen);
    local_stmt_done(st);
    return -1;
}

/* Copies a text column into a fixed field, truncating (the writes check
 * the lengths, so only a hand-edited file truncates). */
static void local_copy_col(sqlite3_stmt *st, int col, char *out, size_t outlen)
{
    const unsigned char *s = sqlite3_column_text(st, col);
    size_t n = (size_t)sqlite3_column_bytes(st, col);
    if (s == NULL)
        n = 0;
    if (n >= outlen)
        n = outlen - 1;
    if (n > 0)
        memcpy(out, s, n);
    out[n] = '\0';
}

/* Fills r from the columns LOCAL_FIELDS at col.., the vector at col+8 when
 * with_vector. -1 when the vector is not dim floats. */
static int local_read_record(sqlite3_stmt *st, int col, bool with_vector, int dim,
                             struct mem_record *r)
{
    memset(r, 0, sizeof *r);
    local_copy_col(st, col, r->id, sizeof r->id);
    const unsigned char *text = sqlite3_column_text(st, col + 1);
    r->text = xstrndup(text != NULL ? (const char *)text : "",
                       text != NULL ? (size_t)sqlite3_column_bytes(st, col + 1) : 0);
    local_copy_col(st, col + 2, r->user_id, sizeof r->user_id);
    local_copy_col(st, col + 3, r->agent, sizeof r->agent);
    local_copy_col(st, col + 4, r->kind, sizeof r->kind);
    r->created_at = sqlite3_column_int64(st, col + 5);
    r->updated_at = sqlite3_column_int64(st, col + 6);
    const unsigned char *meta = sqlite3_column_text(st, col + 7);
    r->metadata = xstrndup(meta != NULL ? (const char *)meta : "{}",
                           meta != NULL ? (size_t)sqlite3_column_bytes(st, col + 7) : 2);
    if (!with_vector)
        return 0;
    const void *blob = sqlite3_column_blob(st, col + 8);
    size_t bytes = (size_t)sqlite3_column_bytes(st, col + 8);
    if (blob == NULL || bytes != (size_t)dim * sizeof(float))
        return -1;
    r->vector = xreallocarray(NULL, (size_t)dim, sizeof *r->vector);
    vec_decode(blob, dim, r->vector);
    r->dim = dim;
    return 0;
}

/* A new zeroed record at the end of rs. */
static struct mem_record *local_records_push(struct mem_records *rs, size_t *cap)
{
    if (rs->n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        rs->v = xreallocarray(rs->v, *cap, sizeof *rs->v);
    }
    struct mem_record *r = &rs->v[rs->n++];
    memset(r, 0, sizeof *r);
    return r;
}

/* --- loading and syncing an index ----------------------------------------- */

/* Puts the vectors of tenant's rows matching f (NULL: all) into vx, of
 * the namespace's dimension; progress (may be NULL) counts them against
 * total. */
static int local_rows_load(struct local *L, const char *tenant, const struct mem_filter *f,
                           struct vindex *vx, store_progress_fn progress, void *ud, size_t total,
                           char *err, size_t errlen)
{
    sqlite3_stmt *st = local_prepare_filtered(
        L, tenant, "loading the index", "SELECT rowid, vector FROM memories WHERE tenant = ? AND ",
        f, "", "", 2, err, errlen);
    if (st == NULL)
        return -1;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    int dim = vindex_dim(vx);
    float *v = local_scratch(L, dim);
    size_t done = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t rowid = sqlite3_column_int64(st, 0);
        const void *blob = sqlite3_column_blob(st, 1);
        if (blob == NULL || (size_t)sqlite3_column_bytes(st, 1) != (size_t)dim * sizeof(float)) {
            local_fail(L, tenant, err, errlen,
                       "loading the index: row %lld holds a vector of %d bytes, not %d floats "
                       "(the namespace's dimension)",
                       (long long)rowid, sqlite3_column_bytes(st, 1), dim);
            sqlite3_finalize(st);
            return -1;
        }
        vec_decode(blob, dim, v);
        vindex_put(vx, rowid, v);
        if (progress != NULL && (++done % 1024 == 0 || done == total))
            progress(ud, done, total);
    }
    if (rc != SQLITE_DONE) {
        local_fail_sql(L, tenant, "loading the index", err, errlen);
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    return 0;
}

/* Brings ix from its generation to ns's by re-reading the rows that
 * memory_changes lists. *done is false when the log does not reach back
 * (the caller reloads fully). -1 leaves ix half updated: reset it. */
static int local_catch_up(struct local *L, const char *tenant, const struct store_ns *ns,
                          struct local_index *ix, bool *done, char *err, size_t errlen)
{
    *done = false;
    int64_t behind = ns->generation - ix->generation;
    if (behind <= 0 || behind > (int64_t)ns->count + 1024)
        return 0; /* a reload reads fewer rows */
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(L->conn,
                           "SELECT generation, row FROM memory_changes WHERE tenant = ?"
                           " AND generation > ? AND generation <= ? ORDER BY generation",
                           -1, &st, NULL) != SQLITE_OK) {
        local_fail_sql(L, tenant, "reading the change log", err, errlen);
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, ix->generation);
    sqlite3_bind_int64(st, 3, ns->generation);
    int64_t *rows = xreallocarray(NULL, (size_t)behind, sizeof *rows);
    int64_t expect = ix->generation + 1;
    size_t n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        /* One entry per generation, none missing: else entries were pruned. */
        if (sqlite3_column_int64(st, 0) != expect || n == (size_t)behind)
            break;
        rows[n++] = sqlite3_column_int64(st, 1);
        expect++;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        local_fail_sql(L, tenant, "reading the change log", err, errlen);
        sqlite3_finalize(st);
        xfree(rows);
        return -1;
    }
    sqlite3_finalize(st);
    if (n != (size_t)behind) {
        xfree(rows);
        return 0;
    }
    sqlite3_stmt *sv = local_stmt(L, &L->st_vec, local_vec_sql);
    if (sv == NULL) {
        local_fail_sql(L, tenant, "reading a changed row", err, errlen);
        xfree(rows);
        return -1;
    }
    float *v = local_scratch(L, ix->dim);
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_int64(sv, 1, rows[i]);
        sqlite3_bind_text(sv, 2, tenant, -1, SQLITE_STATIC);
        rc = sqlite3_step(sv);
        if (rc == SQLITE_ROW) {
            const void *blob = sqlite3_column_blob(sv, 0);
            if (blob == NULL ||
                (size_t)sqlite3_column_bytes(sv, 0) != (size_t)ix->dim * sizeof(float)) {
                local_fail(L, tenant, err, errlen,
                           "catching up: row %lld holds a vector of %d bytes, not %d floats",
                           (long long)rows[i], sqlite3_column_bytes(sv, 0), ix->dim);
                local_stmt_done(sv);
                xfree(rows);
                return -1;
            }
            vec_decode(blob, ix->dim, v);
            vindex_put(ix->vx, rows[i], v);
        } else if (rc == SQLITE_DONE) {
            /* Deleted, or since reused by another tenant: gone from this one. */
            vindex_remove(ix->vx, rows[i]);
        } else {
            local_fail_sql(L, tenant, "reading a changed row", err, errlen);
            local_stmt_done(sv);
            xfree(rows);
            return -1;
        }
        local_stmt_done(sv);
    }
    xfree(rows);
    ix->generation = ns->generation;
    vindex_tidy(ix->vx);
    /* The triggers' count is a free consistency check. */
    *done = vindex_count(ix->vx) == ns->count;
    return 0;
}

/* --- index files ------------------------------------------------------------ */

/* True when a namespace of count memories is searched through HNSW. */
static bool local_wants_hnsw(const struct local *L, size_t count)
{
    return L->opts.hnsw_threshold > 0 && count > L->opts.hnsw_threshold;
}

/* tenant's index file into out; false when the store keeps none. */
static bool local_index_path(const struct local *L, const char *tenant, char *out, size_t outlen)
{
    if (L->index_dir[0] == '\0') {
        if (outlen > 0)
            out[0] = '\0';
        return false;
    }
    return (size_t)snprintf(out, outlen, "%s/%.64s.hnsw", L->index_dir, tenant) < outlen;
}

/* What path looks like now. */
static struct local_file_seen local_file_look(const char *path)
{
    struct local_file_seen f = {0};
    struct stat sb;
    if (stat(path, &sb) != 0)
        return f;
    f.exists = true;
    f.dev = sb.st_dev;
    f.ino = sb.st_ino;
    f.size = sb.st_size;
    f.mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
    return f;
}

static bool local_file_same(const struct local_file_seen *a, const struct local_file_seen *b)
{
    return a->exists == b->exists && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime_ns == b->mtime_ns;
}

/* Loads tenant's index file into the empty ix and replays the log from
 * the file's generation to ns's. 0 with ix loaded; 1 when the file is
 * missing or unusable (ix left empty, the reason in note); -1 on a
 * database error. */
static int local_file_load(struct local *L, const char *tenant, const struct store_ns *ns,
                           struct local_index *ix, char *note, size_t notelen, char *err,
                           size_t errlen)
{
    char path[LOCAL_PATH_MAX];
    if (!local_index_path(L, tenant, path, sizeof path)) {
        snprintf(note, notelen, "no index directory");
        return 1;
    }
    ix->seen = local_file_look(path);
    struct hnsw_meta meta;
    char why[512];
    struct vindex *vx = vindex_load(path, &L->opts, &meta, why, sizeof why);
    if (vx == NULL) {
        snprintf(note, notelen, "%s", why);
        return 1;
    }
    const char *stale = NULL;
    if (meta.created_ms != ns->created_ms)
        stale = "belongs to an earlier namespace of the same tenant (purged since)";
    else if (vindex_dim(vx) != ns->dim)
        stale = "has another dimension than the namespace";
    else if (meta.generation > ns->generation)
        stale = "is ahead of the data file (was the data file restored from a copy?)";
    if (stale != NULL) {
        snprintf(note, notelen, "the index file %s", stale);
        vindex_free(vx);
        return 1;
    }
    struct local_file_seen seen = ix->seen;
    index_install(ix, vx, ns);
    ix->seen = seen;
    ix->generation = meta.generation;
    ix->file_generation = meta.generation;
    bool done = meta.generation == ns->generation && vindex_count(vx) == ns->count;
    if (!done && local_catch_up(L, tenant, ns, ix, &done, err, errlen) != 0) {
        index_reset(ix);
        ix->seen = seen;
        return -1;
    }
    if (!done) {
        snprintf(note, notelen,
                 "the index file is %lld changes behind the data file, further back than its "
                 "change log reaches",
                 (long long)(ns->generation - meta.generation));
        index_reset(ix);
        ix->seen = seen;
        return 1;
    }
    ix->caught_up = (size_t)(ns->generation - meta.generation);
    return 0;
}

/* Saves ix's graph as tenant's index file; 0, or -1 with a message. */
static int local_file_save(struct local *L, const char *tenant, struct local_index *ix, char *err,
                           size_t errlen)
{
    char path[LOCAL_PATH_MAX];
    if (!local_index_path(L, tenant, path, sizeof path))
        return 0;
    if (mkdir(L->index_dir, 0700) != 0 && errno != EEXIST) {
        local_fail(L, tenant, err, errlen, "creating %s: %s", L->index_dir, strerror(errno));
        return -1;
    }
    struct hnsw_meta meta = {.generation = ix->generation, .created_ms = ix->created_ms};
    char why[1024];
    if (vindex_save(ix->vx, &meta, path, why, sizeof why) != 0) {
        local_fail(L, tenant, err, errlen, "saving the index: %s", why);
        return -1;
    }
    ix->file_generation = ix->generation;
    ix->seen = local_file_look(path);
    return 0;
}

/* After a sync: a graph that has run far ahead of its file is saved, so
 * the next process replays little of the log; a failure only costs that. */
static void local_file_refresh(struct local *L, const char *tenant, struct local_index *ix)
{
    if (!vindex_is_hnsw(ix->vx))
        return;
    int64_t behind = ix->generation - ix->file_generation;
    size_t every = vindex_count(ix->vx) / 32;
    if (every < 1024)
        every = 1024;
    if (ix->file_generation >= 0 && behind < (int64_t)every)
        return;
    char err[1024];
    if (local_file_save(L, tenant, ix, err, sizeof err) != 0)
        log_warn("%s", err);
}

/* --- syncing ----------------------------------------------------------------- */

/* Loads the namespace afresh: from its index file when it wants HNSW and
 * the file is usable, else from the rows into an exact index. */
static int local_reload(struct local *L, const char *tenant, const struct store_ns *ns,
                        struct local_index *ix, char *err, size_t errlen)
{
    char note[1024] = "";
    bool hinted = ix->hinted;
    if (local_wants_hnsw(L, ns->count)) {
        int rc = local_file_load(L, tenant, ns, ix, note, sizeof note, err, errlen);
        if (rc <= 0)
            return rc;
    }
    struct local_file_seen seen = ix->seen;
    struct vindex *vx = vindex_new(ns->dim, &L->opts);
    if (vx == NULL || local_rows_load(L, tenant, NULL, vx, NULL, NULL, 0, err, errlen) != 0) {
        if (vx == NULL)
            local_fail(L, tenant, err, errlen, "the namespace's dimension %d is out of range",
                       ns->dim);
        vindex_free(vx);
        index_reset(ix);
        return -1;
    }
    index_install(ix, vx, ns);
    ix->seen = seen;
    ix->hinted = hinted;
    if (local_wants_hnsw(L, ns->count) && !ix->hinted) {
        log_info("tenant %s: %zu memories, above MEMORY_HNSW_THRESHOLD=%zu, searched by exact "
                 "scan until its HNSW index is built (memchat memory index --tenant %s)%s%s",
                 tenant, ns->count, L->opts.hnsw_threshold, tenant, note[0] ? ": " : "", note);
        ix->hinted = true;
    }
    return 0;
}

/* Brings the index to the committed state ns describes, catching up when
 * it can, else reloading. The caller holds the entry's lock and reads a
 * snapshot free of this connection's uncommitted writes. */
static int local_sync(struct local *L, const char *tenant, const struct store_ns *ns,
                      struct local_index *ix, char *err, size_t errlen)
{
    if (ix->vx != NULL && ix->created_ms == ns->created_ms && ix->dim == ns->dim &&
        ix->generation < ns->generation) {
        bool done = false;
        if (local_catch_up(L, tenant, ns, ix, &done, err, errlen) != 0) {
            index_reset(ix);
            return -1;
        }
        if (done) {
            local_file_refresh(L, tenant, ix);
            return 0;
        }
    }
    if (local_reload(L, tenant, ns, ix, err, errlen) != 0)
        return -1;
    local_file_refresh(L, tenant, ix);
    return 0;
}

/* An exact index of a namespace that wants HNSW switches to the index
 * file as soon as one appears or changes (another process built it). */
static int local_adopt_file(struct local *L, const char *tenant, const struct store_ns *ns,
                            struct local_index *ix, char *err, size_t errlen)
{
    if (ix->vx == NULL || vindex_is_hnsw(ix->vx) || !local_wants_hnsw(L, ns->count))
        return 0;
    char path[LOCAL_PATH_MAX];
    if (!local_index_path(L, tenant, path, sizeof path))
        return 0;
    struct local_file_seen now = local_file_look(path);
    if (!now.exists || local_file_same(&now, &ix->seen))
        return 0;
    struct local_index fresh;
    index_init(&fresh);
    char note[1024];
    int rc = local_file_load(L, tenant, ns, &fresh, note, sizeof note, err, errlen);
    if (rc != 0) {
        ix->seen = now; /* not again until it changes */
        return rc < 0 ? -1 : 0;
    }
    index_reset(ix);
    *ix = fresh;
    return 0;
}

/* The allow bitmap over ix of tenant's rows matching f. */
static uint64_t *local_allow(struct local *L, const char *tenant, const struct mem_filter *f,
                             const struct local_index *ix, char *err, size_t errlen)
{
    uint64_t *allow = vindex_allow_new(ix->vx);
    if (allow == NULL) {
        local_fail(L, tenant, err, errlen, "query: out of memory for the filter of %zu rows",
                   vindex_count(ix->vx));
        return NULL;
    }
    sqlite3_stmt *st = local_prepare_filtered(L, tenant, "query",
                                              "SELECT rowid FROM memories WHERE tenant = ? AND ", f,
                                              "", "", 2, err, errlen);
    if (st == NULL) {
        xfree(allow);
        return NULL;
    }
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        vindex_allow_add(ix->vx, allow, sqlite3_column_int64(st, 0));
    if (rc != SQLITE_DONE) {
        local_fail_sql(L, tenant, "query: applying the filter", err, errlen);
        sqlite3_finalize(st);
        xfree(allow);
        return NULL;
    }
    sqlite3_finalize(st);
    return allow;
}

/* --- the operations ------------------------------------------------------- */

static int local_ns_get(struct vstore *s, const char *tenant, struct store_ns *out, char *err,
                        size_t errlen)
{
    struct local *L = s->impl;
    if (local_check_tenant(L, tenant, "ns_get", err, errlen) != 0)
        return -1;
    return local_ns_read(L, tenant, out, err, errlen);
}

static int local_ns_create(struct vstore *s, const char *tenant, const struct store_ns *ns,
                           char *err, size_t errlen)
{
    struct local *L = s->impl;
    if (local_check_tenant(L, tenant, "ns_create", err, errlen) != 0)
        return -1;
    if (ns == NULL || memchr(ns->embedder, '\0', sizeof ns->embedder) == NULL ||
        memchr(ns->model, '\0', sizeof ns->model) == NULL || ns->embedder[0] == '\0' ||
        ns->dim < 1 || ns->dim > LOCAL_DIM_MAX) {
        local_fail(L, tenant, err, errlen,
                   "ns_create: the namespace needs an embedder name, a model name and a "
                   "dimension of 1..%d (got %d)",
                   LOCAL_DIM_MAX, ns != NULL ? ns->dim : 0);
        return -1;
    }
    bool own;
    if (local_write_begin(L, tenant, "ns_create", &own, err, errlen) != 0)
        return -1;
    struct store_ns have;
    int rc = local_ns_read(L, tenant, &have, err, errlen);
    bool ok = rc >= 0;
    if (rc == 0 && (strcmp(have.embedder, ns->embedder) != 0 ||
                    strcmp(have.model, ns->model) != 0 || have.dim != ns->dim)) {
        local_fail(L, tenant, err, errlen,
                   "the namespace holds vectors of embedder %s, model \"%s\", dimension %d; "
                   "the configuration asks for embedder %s, model \"%s\", dimension %d "
                   "(restore the setting, or run memchat memory reembed)",
                   have.embedder, have.model, have.dim, ns->embedder, ns->model, ns->dim);
        ok = false;
    } else if (rc == 1) {
        /* The generation starts at a random point, so an index cached
         * from an earlier namespace of the same name (purged, then made
         * again) can never mistake the new one's change log for its own. */
        uint64_t r = 0;
        sqlite3_randomness(sizeof r, &r);
        int64_t base = (int64_t)(r >> 12);
        int64_t created = ns->created_ms > 0 ? ns->created_ms : clock_wall_ms();
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(L->conn,
                               "INSERT INTO memory_namespaces (tenant, embedder, model, dim,"
                               " generation, count, created_ms) VALUES (?, ?, ?, ?, ?, 0, ?)",
                               -1, &st, NULL) != SQLITE_OK) {
            local_fail_sql(L, tenant, "ns_create", err, errlen);
            ok = false;
        } else {
            sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, ns->embedder, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 3, ns->model, -1, SQLITE_STATIC);
            sqlite3_bind_int(st, 4, ns->dim);
            sqlite3_bind_int64(st, 5, base);
            sqlite3_bind_int64(st, 6, created);
            if (sqlite3_step(st) != SQLITE_DONE) {
                local_fail_sql(L, tenant, "ns_create", err, errlen);
                ok = false;
            }
        }
        sqlite3_finalize(st);
    }
    return local_write_end(L, tenant, "ns_create", own, ok, err, errlen);
}

/* Checks the fields of recs[i] (not the vector, which needs the
 * namespace's dimension). */
static int local_check_record(struct local *L, const char *tenant, const struct mem_record *r,
                              size_t i, char *err, size_t errlen)
{
    char shown[MC_UUID_STRLEN + 8];
    const char *id = local_shown(r->id, shown, sizeof shown);
    const char *why = NULL;
    size_t bad = 0;
    if (memchr(r->id, '\0', sizeof r->id) == NULL || !uuid_valid(r->id))
        why = "the id is not a UUID";
    else if (r->text == NULL || r->text[0] == '\0')
        why = "the text is empty";
    else if (!utf8_valid(r->text, strlen(r->text), &bad)) {
        local_fail(L, tenant, err, errlen,
                   "upsert: record %zu (id %s): the text is not valid UTF-8 (byte %zu)", i, id,
                   bad);
        return -1;
    } else if (memchr(r->user_id, '\0', sizeof r->user_id) == NULL || !ident_valid(r->user_id))
        why = "the user_id is not valid (accepted: [A-Za-z0-9_-]{1,64})";
    else if (memchr(r->agent, '\0', sizeof r->agent) == NULL || !ident_valid(r->agent))
        why = "the agent is not valid (accepted: [A-Za-z0-9_-]{1,64})";
    else if (memchr(r->kind, '\0', sizeof r->kind) == NULL || !ident_valid(r->kind))
        why = "the kind is not valid (accepted: [A-Za-z0-9_-]{1,32})";
    else if (r->created_at < 0 || r->updated_at < 0)
        why = "created_at and updated_at are Unix milliseconds (0 or more)";
    else if (r->vector == NULL)
        why = "the vector is missing";
    if (why == NULL && r->metadata != NULL) {
        cJSON *meta = cJSON_Parse(r->metadata);
        if (!cJSON_IsObject(meta))
            why = "the metadata is not a JSON object";
        cJSON_Delete(meta);
    }
    if (why == NULL)
        return 0;
    local_fail(L, tenant, err, errlen, "upsert: record %zu (id %s): %s", i, id, why);
    return -1;
}

/* Keeps the last LOCAL_LOG_KEEP change-log entries of tenant. */
static int local_prune(struct local *L, const char *tenant, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(L->conn,
                                "DELETE FROM memory_changes WHERE tenant = ?1 AND generation <="
                                " (SELECT generation FROM memory_namespaces WHERE tenant = ?1)"
                                " - ?2",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, LOCAL_LOG_KEEP);
        rc = sqlite3_step(st);
    }
    if (rc != SQLITE_DONE) {
        local_fail_sql(L, tenant, "pruning the change log", err, errlen);
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    return 0;
}

/* Lowercases a UUID into out; false when id cannot be one. */
static bool local_canon_id(const char *id, char out[MC_UUID_STRLEN + 1])
{
    size_t n = id != NULL ? strnlen(id, MC_UUID_STRLEN + 1) : MC_UUID_STRLEN + 1;
    if (n > MC_UUID_STRLEN)
        return false;
    for (size_t i = 0; i < n; i++)
        out[i] = (id[i] >= 'A' && id[i] <= 'F') ? (char)(id[i] - 'A' + 'a') : id[i];
    out[n] = '\0';
    return true;
}

static bool local_vector_finite(const float *v, int dim)
{
    for (int i = 0; i < dim; i++)
        if (!isfinite(v[i]))
            return false;
    return true;
}

static int local_upsert(struct vstore *s, const char *tenant, const struct mem_record *recs,
                        size_t n, char *err, size_t errlen)
{
    struct local *L = s->impl;
    if (local_check_tenant(L, tenant, "upsert", err, errlen) != 0)
        return -1;
    if (n == 0)
        return 0;
    if (recs == NULL) {
        local_fail(L, tenant, err, errlen, "upsert: no records given for a count of %zu", n);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (local_check_record(L, tenant, &recs[i], i, err, errlen) != 0)
            return -1;
    bool own;
    if (local_write_begin(L, tenant, "upsert", &own, err, errlen) != 0)
        return -1;
    bool ok = false;
    unsigned char *blob = NULL;
    sqlite3_stmt *st = NULL;
    struct store_ns ns;
    int rc = local_ns_read(L, tenant, &ns, err, errlen);
    if (rc == 1)
        local_fail(L, tenant, err, errlen,
                   "upsert: the tenant has no memory namespace yet (create it first with its "
                   "embedder and dimension)");
    if (rc != 0)
        goto out;
    if (sqlite3_prepare_v2(
            L->conn,
            "INSERT INTO memories (tenant, id, text, user_id, agent, kind, created_at,"
            " updated_at, metadata, vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (tenant, id) DO UPDATE SET text = excluded.text,"
            " user_id = excluded.user_id, agent = excluded.agent, kind = excluded.kind,"
            " created_at = excluded.created_at, updated_at = excluded.updated_at,"
            " metadata = excluded.metadata, vector = excluded.vector",
            -1, &st, NULL) != SQLITE_OK) {
        local_fail_sql(L, tenant, "upsert", err, errlen);
        goto out;
    }
    blob = xreallocarray(NULL, (size_t)ns.dim, sizeof(float));
    for (size_t i = 0; i < n; i++) {
        const struct mem_record *r = &recs[i];
        char id[MC_UUID_STRLEN + 1];
        local_canon_id(r->id, id);
        if (r->dim != 0 && r->dim != ns.dim) {
            local_fail(L, tenant, err, errlen,
                       "upsert: record %zu (id %s): the vector has %d floats; the namespace's "
                       "dimension is %d (embedder %s)",
                       i, id, r->dim, ns.dim, ns.embedder);
            goto out;
        }
        if (!local_vector_finite(r->vector, ns.dim)) {
            local_fail(L, tenant, err, errlen,
                       "upsert: record %zu (id %s): the vector holds a NaN or an infinity", i, id);
            goto out;
        }
        vec_encode(r->vector, ns.dim, blob);
        sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, r->text, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, r->user_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, r->agent, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, r->kind, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 7, r->created_at);
        sqlite3_bind_int64(st, 8, r->updated_at > 0 ? r->updated_at : r->created_at);
        sqlite3_bind_text(st, 9, r->metadata != NULL ? r->metadata : "{}", -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 10, blob, ns.dim * (int)sizeof(float), SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE) {
            char what[96];
            snprintf(what, sizeof what, "upsert: record %zu (id %s)", i, id);
            local_fail_sql(L, tenant, what, err, errlen);
            goto out;
        }
        sqlite3_reset(st);
    }
    ok = local_prune(L, tenant, err, errlen) == 0;
out:
    sqlite3_finalize(st);
    xfree(blob);
    return local_write_end(L, tenant, "upsert", own, ok, err, errlen);
}

/* Reads the records of rowids (best first) with scores into out. 1 when a
 * row is missing (the index was stale), -1 on error. */
/* The records of the n hits (rowids, scores, and vectors: n rows of dim
 * floats, copied from the index), read in the current snapshot. 0, 1
 * when a row is gone, -1 on error. */
static int local_fetch_hits(struct local *L, const char *tenant, int dim, const int64_t *rowids,
                            const float *scores, const float *vecs, size_t n,
                            struct mem_records *out, char *err, size_t errlen)
{
    sqlite3_stmt *st = local_stmt(L, &L->st_rec, local_rec_sql);
    if (st == NULL) {
        local_fail_sql(L, tenant, "query: reading a record", err, errlen);
        return -1;
    }
    size_t cap = 0;
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_int64(st, 1, rowids[i]);
        sqlite3_bind_text(st, 2, tenant, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE) {
            local_stmt_done(st);
            return 1;
        }
        if (rc != SQLITE_ROW) {
            local_fail_sql(L, tenant, "query: reading a record", err, errlen);
            local_stmt_done(st);
            return -1;
        }
        struct mem_record *r = local_records_push(out, &cap);
        local_read_record(st, 0, false, dim, r);
        r->vector = xreallocarray(NULL, (size_t)dim, sizeof *r->vector);
        memcpy(r->vector, vecs + i * (size_t)dim, (size_t)dim * sizeof(float));
        r->dim = dim;
        r->score = (double)scores[i];
        local_stmt_done(st);
    }
    return 0;
}

/* The k best rows of vx for q among those allowed (NULL: all), as rowids,
 * scores and vectors (dim floats each), best first (all allocated; free
 * them); returns how many. */
static size_t local_topk(struct vindex *vx, const float *q, size_t k, const uint64_t *allow,
                         int64_t **rowids, float **scores, float **vecs)
{
    size_t held = vindex_count(vx) + vindex_tombstones(vx);
    size_t kk = k < held ? k : held;
    struct vindex_hit *hits = xreallocarray(NULL, kk + 1, sizeof *hits);
    size_t nh = vindex_topk(vx, q, kk, allow, hits);
    *rowids = xreallocarray(NULL, nh + 1, sizeof **rowids);
    *scores = xreallocarray(NULL, nh + 1, sizeof **scores);
    size_t dim = (size_t)vindex_dim(vx);
    *vecs = xreallocarray(NULL, nh * dim + 1, sizeof **vecs);
    for (size_t i = 0; i < nh; i++) {
        (*rowids)[i] = hits[i].rowid;
        (*scores)[i] = hits[i].score;
        memcpy(*vecs + i * dim, hits[i].vec, dim * sizeof(float));
    }
    xfree(hits);
    return nh;
}

/* One attempt at a query in the current snapshot: 0, 1 when the shared
 * index proved stale (retry with reload set), -1 on error. */
static int local_query_once(struct local *L, const char *tenant, const float *q, size_t k,
                            const struct mem_filter *f, bool reload, struct mem_records *out,
                            char *err, size_t errlen)
{
    struct store_ns ns;
    int rc = local_ns_read(L, tenant, &ns, err, errlen);
    if (rc == 1) {
        /* No namespace, no memories; an index of a purged one goes. */
        struct cache_entry *gone = cache_entry_get(L->cache, tenant, false);
        if (gone != NULL) {
            pthread_mutex_lock(&gone->lock);
            index_reset(&gone->ix);
            pthread_mutex_unlock(&gone->lock);
        }
        return 0;
    }
    if (rc != 0)
        return -1;
    struct cache_entry *e = cache_entry_get(L->cache, tenant, true);
    int64_t *rowids = NULL;
    float *scores = NULL, *vecs = NULL;
    size_t nh = 0;
    int result;

    pthread_mutex_lock(&e->lock);
    struct local_index *ix = &e->ix;
    if (reload)
        index_reset(ix);
    bool same = ix->vx != NULL && ix->created_ms == ns.created_ms && ix->dim == ns.dim;
    bool use_cache;
    if (same && ix->generation == ns.generation &&
        sqlite3_txn_state(L->conn, "main") != SQLITE_TXN_WRITE &&
        local_adopt_file(L, tenant, &ns, ix, err, errlen) != 0) {
        pthread_mutex_unlock(&e->lock);
        return -1;
    }
    if (same && ix->vx != NULL && ix->generation == ns.generation) {
        use_cache = true;
    } else if (sqlite3_txn_state(L->conn, "main") == SQLITE_TXN_WRITE) {
        use_cache = false; /* this snapshot may hold uncommitted rows of ours */
    } else if (same && ix->generation > ns.generation) {
        use_cache = false; /* the caller's snapshot is older than the index */
    } else {
        if (local_sync(L, tenant, &ns, ix, err, errlen) != 0) {
            pthread_mutex_unlock(&e->lock);
            return -1;
        }
        use_cache = true;
    }
    if (use_cache) {
        uint64_t *allow = NULL;
        if (f != NULL && (allow = local_allow(L, tenant, f, ix, err, errlen)) == NULL) {
            pthread_mutex_unlock(&e->lock);
            return -1;
        }
        nh = local_topk(ix->vx, q, k, allow, &rowids, &scores, &vecs);
        xfree(allow);
    }
    pthread_mutex_unlock(&e->lock);

    if (!use_cache) {
        /* A private exact scan of this snapshot's matching rows. */
        struct vindex *mine = vindex_new(ns.dim, NULL);
        if (mine == NULL || local_rows_load(L, tenant, f, mine, NULL, NULL, 0, err, errlen) != 0) {
            if (mine == NULL)
                local_fail(L, tenant, err, errlen, "query: dimension %d out of range", ns.dim);
            vindex_free(mine);
            return -1;
        }
        nh = local_topk(mine, q, k, NULL, &rowids, &scores, &vecs);
        vindex_free(mine);
    }
    result = local_fetch_hits(L, tenant, ns.dim, rowids, scores, vecs, nh, out, err, errlen);
    if (result == 1 && !use_cache) {
        local_fail(L, tenant, err, errlen, "query: a row vanished within one snapshot");
        result = -1;
    }
    if (result != 0)
        mem_records_free(out);
    xfree(rowids);
    xfree(scores);
    xfree(vecs);
    return result;
}

static int local_query(struct vstore *s, const char *tenant, const float *q, size_t k,
                       const struct mem_filter *f, struct mem_records *out, char *err,
                       size_t errlen)
{
    struct local *L = s->impl;
    memset(out, 0, sizeof *out);
    if (local_check_tenant(L, tenant, "query", err, errlen) != 0)
        return -1;
    if (q == NULL) {
        local_fail(L, tenant, err, errlen, "query: no query vector");
        return -1;
    }
    if (local_is_dirty(L, tenant)) {
        local_fail(L, tenant, err, errlen,
                   "query refused: this connection wrote to the tenant's memories in a "
                   "transaction that is still open; query before the transaction begins or "
                   "after it ends");
        return -1;
    }
    if (k == 0)
        return 0;
    for (int attempt = 0;; attempt++) {
        bool own;
        if (local_read_begin(L, tenant, &own, err, errlen) != 0)
            return -1;
        int rc = local_query_once(L, tenant, q, k, f, attempt > 0, out, err, errlen);
        local_read_end(L, own);
        if (rc != 1)
            return rc;
        if (attempt > 0) {
            local_fail(L, tenant, err, errlen,
                       "query: the index disagrees with the rows after a reload");
            return -1;
        }
    }
}

/* A byte of a keyword-query word: ASCII letters and digits, and every
 * byte of a non-ASCII character. */
static bool local_fts_word_byte(unsigned char c)
{
    return c >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* The user's text as an FTS5 query: its words, each a quoted string, OR-ed,
 * so no FTS5 syntax of the user's ever reaches MATCH unquoted. Words are
 * runs of ASCII letters and digits and of non-ASCII bytes (the tokenizer
 * splits the latter further where Unicode says so); everything else, the
 * double quote included, separates. Stop words are left out unless the
 * text has nothing else: "the" or "of" matches nearly every row, so FTS5
 * would score the whole namespace for words bm25 weighs at almost nothing
 * (160 ms a query at 100,000 notes). *terms is how many words. */
static int local_fts_query(const char *text, struct buf *out, size_t *terms)
{
    *terms = 0;
    for (int pass = 0; pass < 2 && *terms == 0; pass++) {
        bool skip_stop = pass == 0;
        const unsigned char *p = (const unsigned char *)text;
        while (*p != '\0' && *terms < LOCAL_FTS_TERMS_MAX) {
            while (*p != '\0' && !local_fts_word_byte(*p))
                p++;
            const unsigned char *w = p;
            while (local_fts_word_byte(*p))
                p++;
            if (p == w)
                break;
            if (skip_stop && stopword_is((const char *)w, (size_t)(p - w)))
                continue;
            if ((*terms > 0 && buf_puts(out, " OR ") != BUF_OK) || buf_putc(out, '"') != BUF_OK ||
                buf_append(out, w, (size_t)(p - w)) != BUF_OK || buf_putc(out, '"') != BUF_OK)
                return -1;
            (*terms)++;
        }
    }
    return 0;
}

/* Steps st to its end, appending each row's record (its fields from
 * column 0, the vector when with_vectors) to out; a row's score is minus
 * column score_col (bm25: lower is better) when score_col >= 0. Finalizes
 * st. 0, or -1 with a message naming op (out is then freed). */
static int local_collect(struct local *L, const char *tenant, const char *op, sqlite3_stmt *st,
                         bool with_vectors, int dim, int score_col, struct mem_records *out,
                         char *err, size_t errlen)
{
    size_t cap = 0;
    int result = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct mem_record *r = local_records_push(out, &cap);
        if (local_read_record(st, 0, with_vectors, dim, r) != 0) {
            local_fail(L, tenant, err, errlen, "%s: record %s holds a vector that is not %d floats",
                       op, r->id, dim);
            result = -1;
            break;
        }
        if (score_col >= 0)
            r->score = -sqlite3_column_double(st, score_col);
    }
    if (result == 0 && rc != SQLITE_DONE) {
        local_fail_sql(L, tenant, op, err, errlen);
        result = -1;
    }
    sqlite3_finalize(st);
    if (result != 0)
        mem_records_free(out);
    return result;
}

static int local_keyword(struct vstore *s, const char *tenant, const char *text, size_t k,
                         const struct mem_filter *f, struct mem_records *out, char *err,
                         size_t errlen)
{
    struct local *L = s->impl;
    memset(out, 0, sizeof *out);
    if (local_check_tenant(L, tenant, "keyword", err, errlen) != 0)
        return -1;
    size_t bad = 0;
    if (text == NULL || !utf8_valid(text, strlen(text), &bad)) {
        local_fail(L, tenant, err, errlen, "keyword: the text %s (byte %zu)",
                   text == NULL ? "is missing" : "is not valid UTF-8", bad);
        return -1;
    }
    if (k == 0)
        return 0;
    struct buf match;
    buf_init(&match, 64 * 1024);
    size_t terms = 0;
    if (local_fts_query(text, &match, &terms) != 0) {
        buf_free(&match);
        local_fail(L, tenant, err, errlen, "keyword: the text is too long to search");
        return -1;
    }
    if (terms == 0) {
        buf_free(&match);
        return 0;
    }
    struct store_ns ns;
    int rc = local_ns_read(L, tenant, &ns, err, errlen);
    if (rc != 0) {
        buf_free(&match);
        return rc == 1 ? 0 : -1;
    }
    /* Parameters: MATCH 1, tenant 2, the filter's from 3, the limit last. */
    sqlite3_stmt *st = local_prepare_filtered(
        L, tenant, "keyword",
        "SELECT m.id, m.text, m.user_id, m.agent, m.kind, m.created_at, m.updated_at,"
        " m.metadata, m.vector, bm25(memories_fts) AS r FROM memories_fts"
        " JOIN memories m ON m.rowid = memories_fts.rowid"
        " WHERE memories_fts MATCH ? AND m.tenant = ? AND ",
        f, "m.", " ORDER BY r, m.rowid LIMIT ?", 3, err, errlen);
    if (st == NULL) {
        buf_free(&match);
        return -1;
    }
    sqlite3_bind_text(st, 1, buf_cstr(&match), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, sqlite3_bind_parameter_count(st),
                       k > (size_t)INT64_MAX ? INT64_MAX : (int64_t)k);
    int result = local_collect(L, tenant, "keyword", st, true, ns.dim, 9, out, err, errlen);
    buf_free(&match);
    return result;
}

static int local_list(struct vstore *s, const char *tenant, const struct mem_filter *f,
                      const char *after_id, size_t limit, bool with_vectors,
                      struct mem_records *out, char *err, size_t errlen)
{
    struct local *L = s->impl;
    memset(out, 0, sizeof *out);
    if (local_check_tenant(L, tenant, "list", err, errlen) != 0)
        return -1;
    char after[MC_UUID_STRLEN + 1] = "";
    if (after_id != NULL && (!uuid_valid(after_id) || !local_canon_id(after_id, after))) {
        local_fail(L, tenant, err, errlen, "list: the id to start after is not a UUID");
        return -1;
    }
    if (limit == 0)
        return 0;
    struct store_ns ns;
    int rc = local_ns_read(L, tenant, &ns, err, errlen);
    if (rc != 0)
        return rc == 1 ? 0 : -1;
    /* Parameters: tenant 1, after 2, the filter's from 3, the limit last. */
    sqlite3_stmt *st = local_prepare_filtered(
        L, tenant, "list",
        with_vectors
            ? "SELECT " LOCAL_FIELDS ", vector FROM memories WHERE tenant = ? AND id > ? AND "
            : "SELECT " LOCAL_FIELDS ", NULL FROM memories WHERE tenant = ? AND id > ? AND ",
        f, "", " ORDER BY id LIMIT ?", 3, err, errlen);
    if (st == NULL)
        return -1;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, after, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, sqlite3_bind_parameter_count(st),
                       limit > (size_t)INT64_MAX ? INT64_MAX : (int64_t)limit);
    return local_collect(L, tenant, "list", st, with_vectors, ns.dim, -1, out, err, errlen);
}

/* After a user deletes memories: FTS5 segments are immutable, so the
 * deleted texts' words stay in older segments until a merge; 'optimize'
 * merges them all now, so forgetting removes the words from the keyword
 * index too (secure_delete zeroes the freed pages). Its cost grows with
 * the index, which is why only deletes a user asks for run it. A failure
 * only postpones the cleanup to FTS5's own merges: logged, not fatal. */
static bool local_fts_forget(struct local *L)
{
    char *msg = NULL;
    if (sqlite3_exec(L->conn, "INSERT INTO memories_fts (memories_fts) VALUES ('optimize')", NULL,
                     NULL, &msg) != SQLITE_OK)
        log_warn("keyword index of %s not compacted after a delete: %s", db_path(L->db),
                 msg != NULL ? msg : "unknown error");
    sqlite3_free(msg);
    return true;
}

static int local_delete_ids(struct vstore *s, const char *tenant, const char *const *ids, size_t n,
                            size_t *deleted, char *err, size_t errlen)
{
    struct local *L = s->impl;
    size_t count = 0;
    if (deleted != NULL)
        *deleted = 0;
    if (local_check_tenant(L, tenant, "delete", err, errlen) != 0)
        return -1;
    if (n == 0)
        return 0;
    if (ids == NULL) {
        local_fail(L, tenant, err, errlen, "delete: no ids given for a count of %zu", n);
        return -1;
    }
    bool own;
    if (local_write_begin(L, tenant, "delete", &own, err, errlen) != 0)
        return -1;
    bool ok = false;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(L->conn, "DELETE FROM memories WHERE tenant = ? AND id = ?", -1, &st,
                           NULL) != SQLITE_OK) {
        local_fail_sql(L, tenant, "delete", err, errlen);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        char id[MC_UUID_STRLEN + 1];
        if (!local_canon_id(ids[i], id))
            continue; /* not a UUID: no memory has it */
        sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, id, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) != SQLITE_DONE) {
            local_fail_sql(L, tenant, "delete", err, errlen);
            goto out;
        }
        count += (size_t)sqlite3_changes(L->conn);
        sqlite3_reset(st);
    }
    ok = local_prune(L, tenant, err, errlen) == 0 && (count == 0 || local_fts_forget(L));
out:
    sqlite3_finalize(st);
    if (local_write_end(L, tenant, "delete", own, ok, err, errlen) != 0)
        return -1;
    if (deleted != NULL)
        *deleted = count;
    return 0;
}

/* Runs one statement binding tenant as ?1; adds the rows it changed. */
static int local_exec_tenant(struct local *L, const char *tenant, const char *sql, size_t *changed,
                             char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(L->conn, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
    }
    if (rc != SQLITE_DONE) {
        local_fail_sql(L, tenant, "purge", err, errlen);
        sqlite3_finalize(st);
        return -1;
    }
    if (changed != NULL)
        *changed += (size_t)sqlite3_changes(L->conn);
    sqlite3_finalize(st);
    return 0;
}

static int local_delete_filter(struct vstore *s, const char *tenant, const struct mem_filter *f,
                               size_t *deleted, char *err, size_t errlen)
{
    struct local *L = s->impl;
    size_t count = 0;
    if (deleted != NULL)
        *deleted = 0;
    if (local_check_tenant(L, tenant, "delete", err, errlen) != 0)
        return -1;
    bool own;
    if (local_write_begin(L, tenant, "delete", &own, err, errlen) != 0)
        return -1;
    bool ok = false;
    if (f == NULL) {
        /* Purge: the rows (their triggers log into memory_changes, which
         * goes next), the log, then the namespace. */
        ok = local_exec_tenant(L, tenant, "DELETE FROM memories WHERE tenant = ?1", &count, err,
                               errlen) == 0 &&
             local_exec_tenant(L, tenant, "DELETE FROM memory_changes WHERE tenant = ?1", NULL, err,
                               errlen) == 0 &&
             local_exec_tenant(L, tenant, "DELETE FROM memory_namespaces WHERE tenant = ?1", NULL,
                               err, errlen) == 0 &&
             (count == 0 || local_fts_forget(L));
    } else {
        sqlite3_stmt *st = local_prepare_filtered(L, tenant, "delete",
                                                  "DELETE FROM memories WHERE tenant = ? AND ", f,
                                                  "", "", 2, err, errlen);
        if (st != NULL) {
            sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
            if (sqlite3_step(st) == SQLITE_DONE) {
                count = (size_t)sqlite3_changes(L->conn);
                ok =
                    local_prune(L, tenant, err, errlen) == 0 && (count == 0 || local_fts_forget(L));
            } else {
                local_fail_sql(L, tenant, "delete", err, errlen);
            }
            sqlite3_finalize(st);
        }
    }
    int rc = local_write_end(L, tenant, "delete", own, ok, err, errlen);
    if (f == NULL) {
        /* Drop this process's index of the purged namespace (other
         * processes see the namespace gone, or re-created). */
        struct cache_entry *e = cache_entry_get(L->cache, tenant, false);
        if (e != NULL) {
            pthread_mutex_lock(&e->lock);
            index_reset(&e->ix);
            pthread_mutex_unlock(&e->lock);
        }
        /* Its index file goes too: it is only a cache of the rows (and a
         * namespace created again would not take it, by its creation
         * time), but it holds the vectors. */
        char path[LOCAL_PATH_MAX];
        if (rc == 0 && local_index_path(L, tenant, path, sizeof path) && unlink(path) != 0 &&
            errno != ENOENT)
            log_warn("purge of %s: removing %s: %s", tenant, path, strerror(errno));
    }
    if (rc != 0)
        return -1;
    if (deleted != NULL)
        *deleted = count;
    return 0;
}

static int local_count(struct vstore *s, const char *tenant, const struct mem_filter *f, size_t *n,
                       char *err, size_t errlen)
{
    struct local *L = s->impl;
    *n = 0;
    if (local_check_tenant(L, tenant, "count", err, errlen) != 0)
        return -1;
    if (f == NULL) {
        struct store_ns ns;
        int rc = local_ns_read(L, tenant, &ns, err, errlen);
        if (rc == 0)
            *n = ns.count;
        return rc < 0 ? -1 : 0;
    }
    sqlite3_stmt *st = local_prepare_filtered(L, tenant, "count",
                                              "SELECT count(*) FROM memories WHERE tenant = ? AND ",
                                              f, "", "", 2, err, errlen);
    if (st == NULL)
        return -1;
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) {
        local_fail_sql(L, tenant, "count", err, errlen);
        sqlite3_finalize(st);
        return -1;
    }
    int64_t c = sqlite3_column_int64(st, 0);
    *n = c > 0 ? (size_t)c : 0;
    sqlite3_finalize(st);
    return 0;
}

static size_t local_col_size(sqlite3_stmt *st, int col)
{
    int64_t v = sqlite3_column_int64(st, col);
    return v > 0 ? (size_t)v : 0;
}

static int local_stats(struct vstore *s, const char *tenant, struct store_stats *out, char *err,
                       size_t errlen)
{
    struct local *L = s->impl;
    memset(out, 0, sizeof *out);
    if (local_check_tenant(L, tenant, "stats", err, errlen) != 0)
        return -1;
    /* The on-disk estimate: each row's payload, its entries in the three
     * indexes (tenant + key + rowid), a change-log entry, and the keyword
     * index, which runs at roughly the size of the text it indexes. */
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(
            L->conn,
            "SELECT count(*), count(DISTINCT user_id), coalesce(min(created_at), 0),"
            " coalesce(max(created_at), 0), coalesce(sum(length(CAST(text AS BLOB))), 0),"
            " coalesce(sum(length(id) + length(CAST(text AS BLOB)) + length(user_id)"
            " + length(agent) + length(kind) + length(CAST(metadata AS BLOB))"
            " + length(vector) + 4 * length(tenant) + 2 * length(id) + length(user_id) + 96),"
            " 0) FROM memories WHERE tenant = ?",
            -1, &st, NULL) != SQLITE_OK) {
        local_fail_sql(L, tenant, "stats", err, errlen);
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) {
        local_fail_sql(L, tenant, "stats", err, errlen);
        sqlite3_finalize(st);
        return -1;
    }
    out->count = local_col_size(st, 0);
    out->users = local_col_size(st, 1);
    out->oldest = sqlite3_column_int64(st, 2);
    out->newest = sqlite3_column_int64(st, 3);
    out->text_bytes = local_col_size(st, 4);
    out->bytes_on_disk = local_col_size(st, 5) + out->text_bytes;
    sqlite3_finalize(st);
    struct store_ns ns;
    int rc = local_ns_read(L, tenant, &ns, err, errlen);
    if (rc < 0)
        return -1;
    struct cache_entry *e = cache_entry_get(L->cache, tenant, false);
    if (rc == 0 && e != NULL) {
        pthread_mutex_lock(&e->lock);
        const struct local_index *ix = &e->ix;
        if (ix->vx != NULL && ix->created_ms == ns.created_ms)
            out->bytes_in_memory = vindex_bytes(ix->vx);
        pthread_mutex_unlock(&e->lock);
    }
    return 0;
}

static int local_namespaces(struct vstore *s, char ***tenants, size_t *n, char *err, size_t errlen)
{
    struct local *L = s->impl;
    *tenants = NULL;
    *n = 0;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(L->conn, "SELECT tenant FROM memory_namespaces ORDER BY tenant", -1, &st,
                           NULL) != SQLITE_OK) {
        local_fail_sql(L, "*", "namespaces", err, errlen);
        sqlite3_finalize(st);
        return -1;
    }
    char **v = NULL;
    size_t cnt = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (cnt == cap) {
            cap = cap ? cap * 2 : 16;
            v = xreallocarray(v, cap, sizeof *v);
        }
        const unsigned char *t = sqlite3_column_text(st, 0);
        v[cnt++] = xstrdup(t != NULL ? (const char *)t : "");
    }
    if (rc != SQLITE_DONE) {
        local_fail_sql(L, "*", "namespaces", err, errlen);
        sqlite3_finalize(st);
        store_names_free(v, cnt);
        return -1;
    }
    sqlite3_finalize(st);
    *tenants = v;
    *n = cnt;
    return 0;
}

/* --- memchat memory index ---------------------------------------------------- */

/* Fills the parts of out that describe the index in use. */
static void local_index_describe(const struct local_index *ix, struct store_index_info *out)
{
    out->hnsw = ix->vx != NULL && vindex_is_hnsw(ix->vx);
    out->bytes_in_memory = ix->vx != NULL ? vindex_bytes(ix->vx) : 0;
    struct hnsw_params p;
    if (ix->vx != NULL && vindex_hnsw_params(ix->vx, &p)) {
        out->m = p.m;
        out->ef_construction = p.ef_construction;
        out->tombstones = vindex_tombstones(ix->vx);
    }
    if (out->path[0] != '\0') {
        struct local_file_seen f = local_file_look(out->path);
        out->bytes_on_disk = f.exists ? (size_t)f.size : 0;
    }
}

/* Builds ix's graph: from the exact index when it holds the namespace
 * now, else from the rows. */
static int local_index_build(struct local *L, const char *tenant, const struct store_ns *ns,
                             struct local_index *ix, bool from_rows, store_progress_fn progress,
                             void *ud, char *err, size_t errlen)
{
    if (!from_rows && ix->vx != NULL && !vindex_is_hnsw(ix->vx) &&
        ix->created_ms == ns->created_ms && ix->generation == ns->generation) {
        vindex_to_hnsw(ix->vx, progress, ud);
        if (vindex_is_hnsw(ix->vx))
            return 0;
    }
    struct vindex *vx = vindex_new_hnsw(ns->dim, &L->opts, ns->count);
    if (vx == NULL) {
        local_fail(L, tenant, err, errlen,
                   "index: MEMORY_HNSW_M=%d and MEMORY_HNSW_EF_CONSTRUCTION=%d are out of range",
                   L->opts.hnsw.m, L->opts.hnsw.ef_construction);
        return -1;
    }
    if (local_rows_load(L, tenant, NULL, vx, progress, ud, ns->count, err, errlen) != 0) {
        vindex_free(vx);
        return -1;
    }
    index_install(ix, vx, ns);
    return 0;
}

/* Under the entry's lock: brings ix to an up-to-date graph (loading the
 * file, catching up, or building) and saves it when the file lags. */
static int local_index_locked(struct local *L, const char *tenant, const struct store_ns *ns,
                              struct local_index *ix, bool rebuild, store_progress_fn progress,
                              void *ud, struct store_index_info *out, char *err, size_t errlen)
{
    bool same = ix->vx != NULL && ix->created_ms == ns->created_ms && ix->dim == ns->dim;
    if (!rebuild && same && vindex_is_hnsw(ix->vx)) {
        out->file_generation = ix->file_generation;
        if (local_sync(L, tenant, ns, ix, err, errlen) != 0)
            return -1;
    } else if (!rebuild) {
        struct local_index fresh;
        index_init(&fresh);
        int rc = local_file_load(L, tenant, ns, &fresh, out->note, sizeof out->note, err, errlen);
        if (rc < 0)
            return -1;
        if (rc == 0) {
            out->file_generation = fresh.file_generation;
            out->caught_up = fresh.caught_up;
            index_reset(ix);
            *ix = fresh;
        } else {
            if (same && local_sync(L, tenant, ns, ix, err, errlen) != 0)
                return -1;
            if (local_index_build(L, tenant, ns, ix, false, progress, ud, err, errlen) != 0)
                return -1;
            out->built = true;
        }
    } else {
        if (local_index_build(L, tenant, ns, ix, true, progress, ud, err, errlen) != 0)
            return -1;
        out->built = true;
    }
    if (ix->file_generation != ix->generation && local_file_save(L, tenant, ix, err, errlen) != 0)
        return -1;
    return 0;
}

static int local_index_op(struct vstore *s, const char *tenant, bool rebuild,
                          store_progress_fn progress, void *ud, struct store_index_info *out,
                          char *err, size_t errlen)
{
    struct local *L = s->impl;
    memset(out, 0, sizeof *out);
    out->file_generation = -1;
    if (local_check_tenant(L, tenant, "index", err, errlen) != 0)
        return -1;
    if (sqlite3_txn_state(L->conn, "main") == SQLITE_TXN_WRITE) {
        local_fail(L, tenant, err, errlen,
                   "index refused inside a write transaction: its rows may yet roll back");
        return -1;
    }
    bool own;
    if (local_read_begin(L, tenant, &own, err, errlen) != 0)
        return -1;
    struct store_ns ns;
    int rc = local_ns_read(L, tenant, &ns, err, errlen);
    if (rc != 0) {
        local_read_end(L, own);
        return rc;
    }
    out->count = ns.count;
    out->generation = ns.generation;
    out->threshold = L->opts.hnsw_threshold;
    out->wanted = local_wants_hnsw(L, ns.count);
    out->m = L->opts.hnsw.m;
    out->ef_construction = L->opts.hnsw.ef_construction;
    out->ef_search = L->opts.ef_search;
    local_index_path(L, tenant, out->path, sizeof out->path);

    struct cache_entry *e = cache_entry_get(L->cache, tenant, true);
    pthread_mutex_lock(&e->lock);
    if (!out->wanted) {
        snprintf(out->note, sizeof out->note,
                 L->opts.hnsw_threshold == 0
                     ? "MEMORY_HNSW_THRESHOLD=0: every namespace is searched by exact scan"
                     : "not above MEMORY_HNSW_THRESHOLD=%zu: searched by exact scan",
                 L->opts.hnsw_threshold);
        rc = 0; /* an exact index loads on the first query: nothing to build */
    } else {
        rc = local_index_locked(L, tenant, &ns, &e->ix, rebuild, progress, ud, out, err, errlen);
    }
    if (rc == 0)
        local_index_describe(&e->ix, out);
    pthread_mutex_unlock(&e->lock);
    local_read_end(L, own);
    return rc;
}

static void local_free(struct vstore *s)
{
    struct local *L = s->impl;
    /* Take the hooks back; another local store on the same connection
     * (against the one-per-connection rule) gets its own reinstated. */
    void *prev = sqlite3_commit_hook(L->conn, NULL, NULL);
    if (prev != NULL && prev != L)
        sqlite3_commit_hook(L->conn, local_commit_hook, prev);
    prev = sqlite3_rollback_hook(L->conn, NULL, NULL);
    if (prev != NULL && prev != L)
        sqlite3_rollback_hook(L->conn, local_rollback_hook, prev);
    sqlite3_finalize(L->st_ns);
    sqlite3_finalize(L->st_vec);
    sqlite3_finalize(L->st_rec);
    if (L->own_cache)
        store_cache_free(L->cache);
    xfree(L->dirty);
    xfree(L->scratch);
    xfree(L);
    xfree(s);
}

static const struct vstore_ops local_ops = {
    .ns_get = local_ns_get,
    .ns_create = local_ns_create,
    .upsert = local_upsert,
    .query = local_query,
    .keyword = local_keyword,
    .list = local_list,
    .delete_ids = local_delete_ids,
    .delete_filter = local_delete_filter,
    .count = local_count,
    .stats = local_stats,
    .namespaces = local_namespaces,
    .index = local_index_op,
    .free = local_free,
};

/* index/ beside the data file at db_file into out; "" for a database
 * without a file (":memory:"), or a path too long to hold. */
static void local_index_dir(const char *db_file, char *out, size_t outlen)
{
    out[0] = '\0';
    if (db_file == NULL || db_file[0] == '\0' || strcmp(db_file, ":memory:") == 0)
        return;
    const char *slash = strrchr(db_file, '/');
    int n = slash == NULL ? snprintf(out, outlen, "index")
                          : snprintf(out, outlen, "%.*s/index", (int)(slash - db_file), db_file);
    if (n < 0 || (size_t)n >= outlen)
        out[0] = '\0';
}

struct vstore *store_local_new(struct db *db, struct store_cache *cache,
                               const struct vindex_opts *o)
{
    struct local *L = xcalloc(1, sizeof *L);
    L->db = db;
    L->conn = db_handle(db);
    L->own_cache = cache == NULL;
    L->cache = cache != NULL ? cache : store_cache_new();
    if (o != NULL)
        L->opts = *o;
    local_index_dir(db_path(db), L->index_dir, sizeof L->index_dir);
    sqlite3_commit_hook(L->conn, local_commit_hook, L);
    sqlite3_rollback_hook(L->conn, local_rollback_hook, L);
    struct vstore *s = xcalloc(1, sizeof *s);
    s->ops = &local_ops;
    snprintf(s->name, sizeof s->name, "local");
    s->impl = L;
    return s;
}
