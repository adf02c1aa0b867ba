/*
 * The pgvector vector store (VECTOR_DB_PROVIDER=pgvector): a tenant's
 * memories in PostgreSQL with the pgvector extension, reached through
 * libpq at PGVECTOR_URL.
 *
 * Layout. memchat_namespaces holds one row per tenant (embedder, model,
 * dimension, generation, creation time). Memories live in one table per
 * dimension, memchat_memories_d{dim}, because a vector column has one
 * dimension: every tenant of that dimension shares it, confined by
 * `tenant = $1` in every statement (the primary key is (tenant, id), ids
 * and tenants use the "C" collation so list paging and namespaces() order
 * bytes like the local store). Vectors are vector(dim), or halfvec(dim)
 * above 2000 floats (pgvector's HNSW limit for vector; halfvec's is 4000,
 * above which the table has no HNSW index). Metadata is a `json` column,
 * not jsonb: json keeps the caller's text byte for byte, which the store
 * contract demands (jsonb reorders keys and respaces), and `->` still
 * reads keys for filters.
 *
 * Exactness. The interface promises the exact top k under any filter, and
 * an HNSW scan with a WHERE clause post-filters (it can return fewer). So
 * a query scans exactly (SET LOCAL enable_indexscan = off: the planner
 * then takes the tenant's rows through a bitmap scan of the primary key
 * and sorts them) when the tenant holds at most PG_EXACT_ROWS memories, k
 * is above PG_HNSW_K_MAX, or pgvector is older than 0.8; otherwise it
 * uses the HNSW index with hnsw.iterative_scan = strict_order and
 * hnsw.ef_search >= k, which is approximate by nature (docs say so).
 *
 * Every statement that takes input is prepared once per connection (named
 * by a hash of its SQL and a tag drawn at connect, because PGlite shares
 * one backend session between its clients, where names would collide) and
 * binds every value, user text included, as a parameter; filters become
 * SQL with $n parameters that mirror filter_match() exactly. Only DDL and
 * transaction control, which take no input, run as plain text.
 *
 * Connections are lazy: the first operation connects and creates the
 * schema (IF NOT EXISTS, under an advisory lock, in a transaction). When
 * an operation fails because the connection broke, the store reconnects
 * once and runs it again. The URL may hold a password: it is never
 * shown, and the password is scrubbed from every message libpq returns.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>
#include <libpq-fe.h>

#include "config/config.h"
#include "config/vars.h"
#include "memory/filter.h"
#include "memory/remote.h"
#include "memory/stopwords.h"
#include "memory/store.h"
#include "net/rest.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/ident.h"
#include "util/utf8.h"
#include "util/uuid.h"

#define PG_SERVICE      "pgvector"
#define PG_DIM_MAX      16000 /* vector and halfvec hold at most 16,000 floats */
#define PG_VECTOR_HNSW  2000  /* above: halfvec, whose HNSW limit is 4,000 */
#define PG_HALF_HNSW    4000  /* above: no HNSW index, exact scans only */
#define PG_EXACT_ROWS   20000 /* tenants up to this size are always scanned exactly */
#define PG_HNSW_K_MAX   1000  /* hnsw.ef_search's maximum */
#define PG_BATCH_ROWS   500   /* rows of one INSERT of an upsert */
#define PG_PREPARED_MAX 512   /* beyond: unnamed statements (filters of many shapes) */
#define PG_TERMS_MAX    64    /* words of a keyword search */
#define PG_SQL_MAX      (1u << 20)
#define PG_ARG_MAX      (256u << 20)

#define PG_FIELDS "id, text, user_id, agent, kind, created_at, updated_at, metadata::text"

struct pg {
    char *conninfo; /* PGVECTOR_URL: may hold a password, never shown */
    char *password; /* scrubbed from messages; NULL when the URL has none */
    char where[256];
    long timeout_ms;
    PGconn *conn;
    unsigned tag; /* this connection's prefix of statement names */
    int vec_major, vec_minor;
    uint64_t *prepared; /* statement hashes prepared on conn */
    size_t n_prepared;
    int *dims; /* dimensions whose table this connection made sure of */
    size_t n_dims;
};

/* Positional parameters, all passed as text. */
struct pgargs {
    char **v;
    size_t n, cap;
};

static struct pg *pg_of(struct vstore *s)
{
    return s->impl;
}

/* ---- messages ---------------------------------------------------------- */

/* Copies msg into out with the password replaced and trailing newlines
 * dropped (libpq's messages end with one). */
static void pg_scrub(const struct pg *P, const char *msg, char *out, size_t outlen)
{
    struct buf b;
    buf_init(&b, outlen > 1 ? outlen - 1 : 1);
    const char *pw = P->password;
    size_t pwlen = pw != NULL ? strlen(pw) : 0;
    for (const char *p = msg != NULL ? msg : ""; *p != '\0';) {
        if (pwlen > 0 && strncmp(p, pw, pwlen) == 0) {
            buf_puts(&b, "***");
            p += pwlen;
            continue;
        }
        buf_putc(&b, *p == '\n' ? ' ' : *p);
        p++;
    }
    snprintf(out, outlen, "%s", buf_cstr(&b));
    buf_free(&b);
    size_t n = strlen(out);
    while (n > 0 && out[n - 1] == ' ')
        out[--n] = '\0';
}

static void pg_fail(struct vstore *s, enum rest_fail f, const char *tenant, const char *op,
                    char *err, size_t errlen, const char *fmt, ...) MC_PRINTF(7, 8);
/* "pgvector (host:port/db): tenant T: op: what", and last_fail. */
static void pg_fail(struct vstore *s, enum rest_fail f, const char *tenant, const char *op,
                    char *err, size_t errlen, const char *fmt, ...)
{
    char what[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    char clean[1024];
    pg_scrub(pg_of(s), what, clean, sizeof clean);
    s->last_fail = (int)f;
    if (tenant != NULL)
        snprintf(err, errlen, "%s (%s): tenant %s: %s: %s", PG_SERVICE, pg_of(s)->where, tenant, op,
                 clean);
    else
        snprintf(err, errlen, "%s (%s): %s: %s", PG_SERVICE, pg_of(s)->where, op, clean);
}

/* How a failed statement failed, from its SQLSTATE: class 28 is the
 * credentials, 08 and the shutdown and cancel codes (statement_timeout
 * included) the connection or its time; no SQLSTATE at all means libpq
 * itself lost the server. */
static enum rest_fail pg_classify(const struct pg *P, const PGresult *r)
{
    if (P->conn == NULL || PQstatus(P->conn) != CONNECTION_OK)
        return REST_UNREACHABLE;
    const char *st = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (st == NULL || strlen(st) != 5)
        return REST_UNREACHABLE;
    if (strncmp(st, "28", 2) == 0)
        return REST_AUTH;
    if (strncmp(st, "08", 2) == 0 || strncmp(st, "57P", 3) == 0 || strcmp(st, "57014") == 0)
        return REST_UNREACHABLE;
    if (strncmp(st, "53", 2) == 0 || strncmp(st, "58", 2) == 0 || strncmp(st, "XX", 2) == 0)
        return REST_SERVER;
    return REST_REFUSED;
}

static void pg_fail_result(struct vstore *s, const PGresult *r, const char *tenant, const char *op,
                           char *err, size_t errlen)
{
    struct pg *P = pg_of(s);
    const char *msg = r != NULL ? PQresultErrorMessage(r) : "";
    if (msg == NULL || *msg == '\0')
        msg = P->conn != NULL ? PQerrorMessage(P->conn) : "no connection";
    const char *st = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    pg_fail(s, pg_classify(P, r), tenant, op, err, errlen, "%s%s%s%s", msg,
            st != NULL ? " (SQLSTATE " : "", st != NULL ? st : "", st != NULL ? ")" : "");
}

/* ---- parameters ------------------------------------------------------- */

/* Adds a parameter; returns its number ($n). */
static int pgargs_take(struct pgargs *a, char *owned)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 16;
        a->v = xreallocarray(a->v, a->cap, sizeof *a->v);
    }
    a->v[a->n++] = owned;
    return (int)a->n;
}

static int pgargs_add(struct pgargs *a, const char *s)
{
    return pgargs_take(a, xstrdup(s));
}

static void pgargs_free(struct pgargs *a)
{
    for (size_t i = 0; i < a->n; i++)
        xfree(a->v[i]);
    xfree(a->v);
    memset(a, 0, sizeof *a);
}

/* A vector as pgvector's text form; %.9g reads back to the same float. */
static char *pg_vector_text(const float *v, int dim)
{
    struct buf b;
    buf_init(&b, PG_ARG_MAX);
    buf_putc(&b, '[');
    for (int i = 0; i < dim; i++)
        buf_printf(&b, i ? ",%.9g" : "%.9g", (double)v[i]);
    buf_putc(&b, ']');
    return buf_take(&b);
}

/* Appends s as an element of a PostgreSQL array literal. */
static void pg_array_elem(struct buf *b, const char *s)
{
    buf_putc(b, '"');
    for (const char *p = s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            buf_putc(b, '\\');
        buf_putc(b, *p);
    }
    buf_putc(b, '"');
}

/* ---- filters ---------------------------------------------------------- */

static const char *pf_cmp(enum filter_op op)
{
    switch (op) {
    case FILTER_GT:
        return " > ";
    case FILTER_GTE:
        return " >= ";
    case FILTER_LT:
        return " < ";
    case FILTER_LTE:
        return " <= ";
    default:
        return " = ";
    }
}

/* A value's parameter: strings as text, numbers as float8 (filter_match
 * compares doubles), booleans as boolean. */
static int pf_value(struct pgargs *a, const struct filter_value *v)
{
    switch (v->type) {
    case FILTER_V_STRING:
        return pgargs_add(a, v->s != NULL ? v->s : "");
    case FILTER_V_NUMBER:
        return pgargs_take(a, xasprintf("%.17g", v->n));
    case FILTER_V_BOOL:
        return pgargs_add(a, v->b ? "true" : "false");
    }
    return pgargs_add(a, "");
}

/* One typed test of metadata key $k against v. CASE, not AND: PostgreSQL
 * may evaluate AND's operands in any order, and the cast of a string to
 * float8 would throw. A missing key gives NULL, which CASE turns false. */
static void pf_meta_value(struct buf *sql, struct pgargs *a, int k, enum filter_op cmp,
                          const struct filter_value *v)
{
    int p = pf_value(a, v);
    switch (v->type) {
    case FILTER_V_STRING:
        buf_printf(sql,
                   "CASE WHEN json_typeof(metadata -> $%d::text) = 'string' THEN"
                   " (metadata ->> $%d::text) = $%d::text ELSE FALSE END",
                   k, k, p);
        break;
    case FILTER_V_NUMBER:
        buf_printf(sql,
                   "CASE WHEN json_typeof(metadata -> $%d::text) = 'number' THEN"
                   " (metadata ->> $%d::text)::float8%s$%d::float8 ELSE FALSE END",
                   k, k, pf_cmp(cmp), p);
        break;
    case FILTER_V_BOOL:
        buf_printf(sql,
                   "CASE WHEN json_typeof(metadata -> $%d::text) = 'boolean' THEN"
                   " (metadata ->> $%d::text)::boolean = $%d::boolean ELSE FALSE END",
                   k, k, p);
        break;
    }
}

static void pf_meta(struct buf *sql, struct pgargs *a, const struct mem_filter *f)
{
    bool negate = f->op == FILTER_NE || f->op == FILTER_NIN;
    bool range = filter_op_is_range(f->op);
    size_t n = f->op == FILTER_IN || f->op == FILTER_NIN ? f->n_values : 1;
    size_t used = 0;
    for (size_t i = 0; i < n; i++)
        used += !range || f->values[i].type == FILTER_V_NUMBER;
    if (used == 0) {
        buf_puts(sql, negate ? "TRUE" : "FALSE");
        return;
    }
    int k = pgargs_add(a, f->key != NULL ? f->key : "");
    buf_puts(sql, negate ? "(NOT (" : "((");
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        if (range && f->values[i].type != FILTER_V_NUMBER)
            continue;
        if (!first)
            buf_puts(sql, " OR ");
        first = false;
        pf_meta_value(sql, a, k, range ? f->op : FILTER_EQ, &f->values[i]);
    }
    buf_puts(sql, "))");
}

static bool pf_takes(enum filter_field fl, enum filter_vtype t)
{
    if (fl == FILTER_FIELD_META)
        return true;
    return fl == FILTER_FIELD_CREATED ? t == FILTER_V_NUMBER : t == FILTER_V_STRING;
}

static void pf_field_cmp(struct buf *sql, struct pgargs *a, const struct mem_filter *f,
                         enum filter_field fl)
{
    static const char *const cols[] = {
        [FILTER_FIELD_META] = "metadata", [FILTER_FIELD_ID] = "id",
        [FILTER_FIELD_USER] = "user_id",  [FILTER_FIELD_AGENT] = "agent",
        [FILTER_FIELD_KIND] = "kind",     [FILTER_FIELD_CREATED] = "created_at::float8",
    };
    const char *cast = fl == FILTER_FIELD_CREATED ? "::float8" : "::text";
    bool negate = f->op == FILTER_NE || f->op == FILTER_NIN;
    if (filter_op_is_range(f->op) && fl != FILTER_FIELD_CREATED) {
        buf_puts(sql, "FALSE");
        return;
    }
    size_t n = f->op == FILTER_IN || f->op == FILTER_NIN ? f->n_values : 1;
    size_t used = 0;
    for (size_t i = 0; i < n; i++)
        used += pf_takes(fl, f->values[i].type);
    if (used == 0) {
        buf_puts(sql, negate ? "TRUE" : "FALSE");
        return;
    }
    buf_printf(sql, "(%s", cols[fl]);
    if (filter_op_is_range(f->op)) {
        buf_printf(sql, "%s$%d%s)", pf_cmp(f->op), pf_value(a, &f->values[0]), cast);
        return;
    }
    /* Every column is NOT NULL, so NOT IN needs no NULL care. */
    buf_puts(sql, negate ? " NOT IN (" : " IN (");
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        if (!pf_takes(fl, f->values[i].type))
            continue;
        buf_printf(sql, "%s$%d%s", first ? "" : ", ", pf_value(a, &f->values[i]), cast);
        first = false;
    }
    buf_puts(sql, "))");
}

/* Appends f as an SQL boolean over the memories table, its values as
 * parameters after those already in a. NULL appends TRUE. */
static void pf_node(struct buf *sql, struct pgargs *a, const struct mem_filter *f)
{
    if (f == NULL) {
        buf_puts(sql, "TRUE");
        return;
    }
    if (f->op == FILTER_AND || f->op == FILTER_OR) {
        if (f->n_kids == 0) {
            buf_puts(sql, f->op == FILTER_AND ? "TRUE" : "FALSE");
            return;
        }
        buf_putc(sql, '(');
        for (size_t i = 0; i < f->n_kids; i++) {
            if (i > 0)
                buf_puts(sql, f->op == FILTER_AND ? " AND " : " OR ");
            pf_node(sql, a, f->kids[i]);
        }
        buf_putc(sql, ')');
        return;
    }
    if (f->n_values == 0) {
        buf_puts(sql, f->op == FILTER_NE || f->op == FILTER_NIN ? "TRUE" : "FALSE");
        return;
    }
    enum filter_field fl = filter_field_of(f->key, f->is_meta);
    if (fl == FILTER_FIELD_META)
        pf_meta(sql, a, f);
    else
        pf_field_cmp(sql, a, f, fl);
}

/* ---- the connection ---------------------------------------------------- */

static void pg_disconnect(struct pg *P)
{
    if (P->conn != NULL)
        PQfinish(P->conn);
    P->conn = NULL;
    P->n_prepared = 0;
    P->n_dims = 0;
}

static bool pg_broken(const struct pg *P)
{
    return P->conn == NULL || PQstatus(P->conn) != CONNECTION_OK;
}

/* A connection failure is about the credentials when libpq says so (no
 * result, so no SQLSTATE, comes with a failed connect). */
static enum rest_fail pg_connect_class(const char *msg)
{
    if (strstr(msg, "authentication failed") != NULL || strstr(msg, "no password") != NULL ||
        strstr(msg, "pg_hba.conf") != NULL || strstr(msg, "does not exist") != NULL)
        return REST_AUTH;
    return REST_UNREACHABLE;
}

/* Runs a statement that takes no input (transaction control, DDL, SET). */
static int pg_simple(struct vstore *s, const char *sql, const char *tenant, const char *op,
                     char *err, size_t errlen)
{
    PGresult *r = PQexec(pg_of(s)->conn, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        PQclear(r);
        return 0;
    }
    pg_fail_result(s, r, tenant, op, err, errlen);
    PQclear(r);
    return -1;
}

static void pg_notice_ignore(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static int pg_connect(struct vstore *s, const char *tenant, const char *op, char *err,
                      size_t errlen)
{
    struct pg *P = pg_of(s);
    char ct[24];
    snprintf(ct, sizeof ct, "%ld",
             (P->timeout_ms + 999) / 1000 < 2 ? 2 : (P->timeout_ms + 999) / 1000);
    const char *keys[] = {"dbname", "connect_timeout", "fallback_application_name", NULL};
    const char *vals[] = {P->conninfo, ct, "memchat", NULL};
    P->conn = PQconnectdbParams(keys, vals, 1);
    if (P->conn == NULL || PQstatus(P->conn) != CONNECTION_OK) {
        char msg[512];
        pg_scrub(P, P->conn != NULL ? PQerrorMessage(P->conn) : "out of memory", msg, sizeof msg);
        pg_disconnect(P);
        pg_fail(s, pg_connect_class(msg), tenant, op, err, errlen,
                "cannot connect (PGVECTOR_URL): %s", msg);
        return -1;
    }
    /* Library code never prints: libpq's default notice processor writes
     * NOTICEs ("relation ... already exists, skipping") to stderr. */
    PQsetNoticeProcessor(P->conn, pg_notice_ignore, NULL);
    /* A tag per connection: PGlite's clients share one session, where a
     * reconnecting store would meet its own earlier statement names. */
    static unsigned serial;
    P->tag = (unsigned)((uint64_t)getpid() * 2654435761u) ^ (unsigned)clock_wall_ms() ^
             (++serial * 40503u);
    char set[64];
    snprintf(set, sizeof set, "SET statement_timeout = %ld", P->timeout_ms);
    if (pg_simple(s, set, tenant, op, err, errlen) != 0) {
        pg_disconnect(P);
        return -1;
    }
    return 0;
}

/* pgvector's version (0.0 when the extension is not installed). */
static int pg_read_version(struct vstore *s, const char *tenant, const char *op, char *err,
                           size_t errlen)
{
    struct pg *P = pg_of(s);
    PGresult *r = PQexec(P->conn, "SELECT extversion FROM pg_extension WHERE extname = 'vector'");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        pg_fail_result(s, r, tenant, op, err, errlen);
        PQclear(r);
        return -1;
    }
    P->vec_major = P->vec_minor = 0;
    if (PQntuples(r) == 1)
        sscanf(PQgetvalue(r, 0, 0), "%d.%d", &P->vec_major, &P->vec_minor);
    PQclear(r);
    return 0;
}

/* The extension and the namespaces table, once per connection; the
 * advisory lock serialises two processes creating them at once (CREATE
 * ... IF NOT EXISTS alone can still collide on the catalog). */
static int pg_schema(struct vstore *s, const char *tenant, const char *op, char *err, size_t errlen)
{
    static const char ddl[] =
        "BEGIN; SELECT pg_advisory_xact_lock(7305880311); CREATE EXTENSION IF NOT EXISTS vector;"
        " CREATE TABLE IF NOT EXISTS memchat_namespaces (tenant text COLLATE \"C\" PRIMARY KEY,"
        " embedder text NOT NULL, model text NOT NULL, dim int NOT NULL,"
        " generation bigint NOT NULL, created_ms bigint NOT NULL); COMMIT";
    if (pg_simple(s, ddl, tenant, op, err, errlen) != 0) {
        if (!pg_broken(pg_of(s)))
            PQclear(PQexec(pg_of(s)->conn, "ROLLBACK"));
        return -1;
    }
    return pg_read_version(s, tenant, op, err, errlen);
}

/* Connects (and creates the schema) when not connected. */
static int pg_ready(struct vstore *s, const char *tenant, const char *op, bool schema, char *err,
                    size_t errlen)
{
    struct pg *P = pg_of(s);
    if (!pg_broken(P))
        return 0;
    pg_disconnect(P);
    if (pg_connect(s, tenant, op, err, errlen) != 0)
        return -1;
    if (schema && pg_schema(s, tenant, op, err, errlen) != 0) {
        pg_disconnect(P);
        return -1;
    }
    return 0;
}

typedef int (*pg_body)(struct vstore *s, const char *tenant, void *ctx, char *err, size_t errlen);

/* Runs body on a live connection; when it fails because the connection
 * broke (the server restarted, a proxy dropped it), reconnects once and
 * runs it again. A write that broke during COMMIT may then run twice:
 * upserts replace and deletes skip what is gone, so that is harmless. */
static int pg_run_any(struct vstore *s, const char *tenant, const char *op, pg_body body, void *ctx,
                      char *err, size_t errlen)
{
    s->last_fail = REST_OK;
    int rc = -1;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (pg_ready(s, tenant, op, true, err, errlen) != 0)
            return -1;
        rc = body(s, tenant, ctx, err, errlen);
        if (rc >= 0) {
            s->last_fail = REST_OK;
            return rc;
        }
        if (!pg_broken(pg_of(s)))
            return rc;
        pg_disconnect(pg_of(s));
    }
    return rc;
}

/* pg_run_any for one tenant, checked first so no statement can run
 * without a valid tenant to confine it. */
static int pg_run(struct vstore *s, const char *tenant, const char *op, pg_body body, void *ctx,
                  char *err, size_t errlen)
{
    s->last_fail = REST_OK;
    if (remote_check_tenant(PG_SERVICE, tenant, err, errlen) != 0) {
        s->last_fail = REST_REFUSED;
        return -1;
    }
    return pg_run_any(s, tenant, op, body, ctx, err, errlen);
}

static uint64_t pg_hash(const char *s)
{
    uint64_t h = 14695981039346656037ULL;
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* Runs sql with a's parameters, prepared once per connection; the result
 * (PGRES_TUPLES_OK or PGRES_COMMAND_OK), or NULL with err set. */
static PGresult *pg_exec(struct vstore *s, const char *tenant, const char *op, const char *sql,
                         const struct pgargs *a, char *err, size_t errlen)
{
    struct pg *P = pg_of(s);
    uint64_t h = pg_hash(sql);
    char name[48];
    snprintf(name, sizeof name, "mc%08x_%016" PRIx64, P->tag, h);
    bool known = false;
    for (size_t i = 0; i < P->n_prepared && !known; i++)
        known = P->prepared[i] == h;
    const char *const *vals = a != NULL ? (const char *const *)a->v : NULL;
    int n = a != NULL ? (int)a->n : 0;
    PGresult *r = NULL;
    if (!known && P->n_prepared < PG_PREPARED_MAX) {
        r = PQprepare(P->conn, name, sql, 0, NULL);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            pg_fail_result(s, r, tenant, op, err, errlen);
            PQclear(r);
            return NULL;
        }
        PQclear(r);
        P->prepared = xreallocarray(P->prepared, P->n_prepared + 1, sizeof *P->prepared);
        P->prepared[P->n_prepared++] = h;
        known = true;
    }
    if (known)
        r = PQexecPrepared(P->conn, name, n, vals, NULL, NULL, 0);
    else
        r = PQexecParams(P->conn, sql, n, NULL, vals, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
        return r;
    pg_fail_result(s, r, tenant, op, err, errlen);
    PQclear(r);
    return NULL;
}

/* Runs a statement whose result is not needed; *changed gets the rows it
 * changed when not NULL. */
static int pg_exec_done(struct vstore *s, const char *tenant, const char *op, const char *sql,
                        const struct pgargs *a, size_t *changed, char *err, size_t errlen)
{
    PGresult *r = pg_exec(s, tenant, op, sql, a, err, errlen);
    if (r == NULL)
        return -1;
    if (changed != NULL) {
        const char *t = PQcmdTuples(r);
        *changed += t != NULL && *t != '\0' ? (size_t)strtoull(t, NULL, 10) : 0;
    }
    PQclear(r);
    return 0;
}

static int pg_begin(struct vstore *s, const char *tenant, const char *op, char *err, size_t errlen)
{
    return pg_simple(s, "BEGIN", tenant, op, err, errlen);
}

/* Commits when ok, else rolls back (quietly: the first error is the one
 * to report). */
static int pg_end(struct vstore *s, const char *tenant, const char *op, bool ok, char *err,
                  size_t errlen)
{
    if (ok)
        return pg_simple(s, "COMMIT", tenant, op, err, errlen);
    if (!pg_broken(pg_of(s)))
        PQclear(PQexec(pg_of(s)->conn, "ROLLBACK"));
    return -1;
}

/* ---- namespaces and tables -------------------------------------------- */

static const char *pg_vtype(int dim)
{
    return dim > PG_VECTOR_HNSW ? "halfvec" : "vector";
}

static void pg_table(int dim, char *out, size_t outlen)
{
    snprintf(out, outlen, "memchat_memories_d%d", dim);
}

/* The memories table of dim with its indexes, once per connection. */
static int pg_ensure_dim(struct vstore *s, const char *tenant, int dim, char *err, size_t errlen)
{
    struct pg *P = pg_of(s);
    for (size_t i = 0; i < P->n_dims; i++)
        if (P->dims[i] == dim)
            return 0;
    char t[48];
    pg_table(dim, t, sizeof t);
    const char *vt = pg_vtype(dim);
    struct buf b;
    buf_init(&b, 8192);
    buf_printf(&b,
               "BEGIN; SELECT pg_advisory_xact_lock(7305880311);"
               " CREATE TABLE IF NOT EXISTS %s (tenant text COLLATE \"C\" NOT NULL,"
               " id text COLLATE \"C\" NOT NULL, text text NOT NULL, user_id text NOT NULL,"
               " agent text NOT NULL, kind text NOT NULL, created_at bigint NOT NULL,"
               " updated_at bigint NOT NULL, metadata json NOT NULL, embedding %s(%d) NOT NULL,"
               " PRIMARY KEY (tenant, id));"
               " CREATE INDEX IF NOT EXISTS %s_tenant ON %s (tenant);"
               " CREATE INDEX IF NOT EXISTS %s_fts ON %s USING gin (to_tsvector('simple', text));",
               t, vt, dim, t, t, t, t);
    if (dim <= PG_HALF_HNSW)
        buf_printf(&b,
                   " CREATE INDEX IF NOT EXISTS %s_hnsw ON %s USING hnsw (embedding %s_ip_ops);", t,
                   t, vt);
    buf_puts(&b, " COMMIT");
    int rc = pg_simple(s, buf_cstr(&b), tenant, "creating the memories table", err, errlen);
    buf_free(&b);
    if (rc != 0) {
        pg_end(s, tenant, "creating the memories table", false, err, errlen);
        return -1;
    }
    P->dims = xreallocarray(P->dims, P->n_dims + 1, sizeof *P->dims);
    P->dims[P->n_dims++] = dim;
    return 0;
}

/* Reads the namespace row: 0, 1 when there is none, -1 on error. */
static int pg_ns_read(struct vstore *s, const char *tenant, const char *op, struct store_ns *ns,
                      char *err, size_t errlen)
{
    memset(ns, 0, sizeof *ns);
    struct pgargs a = {0};
    pgargs_add(&a, tenant);
    PGresult *r = pg_exec(s, tenant, op,
                          "SELECT embedder, model, dim, generation, created_ms"
                          " FROM memchat_namespaces WHERE tenant = $1",
                          &a, err, errlen);
    pgargs_free(&a);
    if (r == NULL)
        return -1;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return 1;
    }
    snprintf(ns->embedder, sizeof ns->embedder, "%s", PQgetvalue(r, 0, 0));
    snprintf(ns->model, sizeof ns->model, "%s", PQgetvalue(r, 0, 1));
    ns->dim = (int)strtol(PQgetvalue(r, 0, 2), NULL, 10);
    ns->generation = strtoll(PQgetvalue(r, 0, 3), NULL, 10);
    ns->created_ms = strtoll(PQgetvalue(r, 0, 4), NULL, 10);
    PQclear(r);
    if (ns->dim < 1 || ns->dim > PG_DIM_MAX) {
        pg_fail(s, REST_BAD_REPLY, tenant, op, err, errlen, "memchat_namespaces says dimension %d",
                ns->dim);
        return -1;
    }
    return 0;
}

/* A count(*) of the tenant's rows matching f. */
static int pg_count_rows(struct vstore *s, const char *tenant, const char *op, int dim,
                         const struct mem_filter *f, size_t *n, char *err, size_t errlen)
{
    char t[48];
    pg_table(dim, t, sizeof t);
    struct buf sql;
    buf_init(&sql, PG_SQL_MAX);
    struct pgargs a = {0};
    pgargs_add(&a, tenant);
    buf_printf(&sql, "SELECT count(*) FROM %s WHERE tenant = $1 AND ", t);
    pf_node(&sql, &a, f);
    PGresult *r = pg_exec(s, tenant, op, buf_cstr(&sql), &a, err, errlen);
    buf_free(&sql);
    pgargs_free(&a);
    if (r == NULL)
        return -1;
    *n = (size_t)strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return 0;
}

static int pg_ns_bump(struct vstore *s, const char *tenant, const char *op, char *err,
                      size_t errlen)
{
    struct pgargs a = {0};
    pgargs_add(&a, tenant);
    int rc = pg_exec_done(s, tenant, op,
                          "UPDATE memchat_namespaces SET generation = generation + 1"
                          " WHERE tenant = $1",
                          &a, NULL, err, errlen);
    pgargs_free(&a);
    return rc;
}

static int body_ns_get(struct vstore *s, const char *tenant, void *ctx, char *err, size_t errlen)
{
    struct store_ns *out = ctx;
    int rc = pg_ns_read(s, tenant, "ns_get", out, err, errlen);
    if (rc != 0)
        return rc;
    if (pg_ensure_dim(s, tenant, out->dim, err, errlen) != 0)
        return -1;
    return pg_count_rows(s, tenant, "ns_get", out->dim, NULL, &out->count, err, errlen);
}

static int pg_ns_get(struct vstore *s, const char *tenant, struct store_ns *out, char *err,
                     size_t errlen)
{
    memset(out, 0, sizeof *out);
    return pg_run(s, tenant, "ns_get", body_ns_get, out, err, errlen);
}

static int body_ns_create(struct vstore *s, const char *tenant, void *ctx, char *err, size_t errlen)
{
    const struct store_ns *ns = ctx;
    if (pg_ensure_dim(s, tenant, ns->dim, err, errlen) != 0)
        return -1;
    struct pgargs a = {0};
    pgargs_add(&a, tenant);
    pgargs_add(&a, ns->embedder);
    pgargs_add(&a, ns->model);
    pgargs_take(&a, xasprintf("%d", ns->dim));
    /* The generation starts at the clock, so a namespace made again after
     * a purge never repeats the generations of the one before. */
    int64_t now = clock_wall_ms();
    pgargs_take(&a, xasprintf("%" PRId64, now));
    pgargs_take(&a, xasprintf("%" PRId64, ns->created_ms > 0 ? ns->created_ms : now));
    int rc = pg_exec_done(s, tenant, "ns_create",
                          "INSERT INTO memchat_namespaces (tenant, embedder, model, dim,"
                          " generation, created_ms) VALUES ($1, $2, $3, $4::int, $5::bigint,"
                          " $6::bigint) ON CONFLICT (tenant) DO NOTHING",
                          &a, NULL, err, errlen);
    pgargs_free(&a);
    if (rc != 0)
        return -1;
    struct store_ns have;
    rc = pg_ns_read(s, tenant, "ns_create", &have, err, errlen);
    if (rc == 1)
        pg_fail(s, REST_SERVER, tenant, "ns_create", err, errlen,
                "the namespace row is missing right after its insert");
    if (rc != 0)
        return -1;
    if (strcmp(have.embedder, ns->embedder) == 0 && strcmp(have.model, ns->model) == 0 &&
        have.dim == ns->dim)
        return 0;
    pg_fail(s, REST_REFUSED, tenant, "ns_create", err, errlen,
            "the namespace holds vectors of embedder %s, model \"%s\", dimension %d; the "
            "configuration asks for embedder %s, model \"%s\", dimension %d",
            have.embedder, have.model, have.dim, ns->embedder, ns->model, ns->dim);
    return -1;
}

static int pg_ns_create(struct vstore *s, const char *tenant, const struct store_ns *ns, char *err,
                        size_t errlen)
{
    s->last_fail = REST_OK;
    if (remote_check_tenant(PG_SERVICE, tenant, err, errlen) != 0) {
        s->last_fail = REST_REFUSED;
        return -1;
    }
    if (ns == NULL || memchr(ns->embedder, '\0', sizeof ns->embedder) == NULL ||
        memchr(ns->model, '\0', sizeof ns->model) == NULL || ns->embedder[0] == '\0' ||
        ns->dim < 1 || ns->dim > PG_DIM_MAX) {
        pg_fail(s, REST_REFUSED, tenant, "ns_create", err, errlen,
                "the namespace needs an embedder name, a model name and a dimension of 1..%d "
                "(got %d)",
                PG_DIM_MAX, ns != NULL ? ns->dim : 0);
        return -1;
    }
    struct store_ns copy = *ns;
    return pg_run(s, tenant, "ns_create", body_ns_create, &copy, err, errlen);
}

/* ---- reading records --------------------------------------------------- */

/* Parses pgvector's text form "[x,y,...]" of exactly dim floats. */
static float *pg_parse_vector(const char *s, int dim)
{
    if (s == NULL || *s != '[')
        return NULL;
    float *v = xmalloc((size_t)dim * sizeof *v);
    const char *p = s + 1;
    for (int i = 0; i < dim; i++) {
        char *end = NULL;
        errno = 0;
        v[i] = strtof(p, &end);
        if (end == p || (*end != (i + 1 < dim ? ',' : ']'))) {
            xfree(v);
            return NULL;
        }
        p = end + 1;
    }
    return v;
}

static struct mem_record *pg_records_push(struct mem_records *rs, size_t *cap)
{
    if (rs->n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        rs->v = xreallocarray(rs->v, *cap, sizeof *rs->v);
    }
    struct mem_record *r = &rs->v[rs->n++];
    memset(r, 0, sizeof *r);
    return r;
}

/* Every row of r as a record: PG_FIELDS from column 0, the vector's text
 * in column 8 (NULL: not loaded), the score in column 9 when has_score. */
static int pg_collect(struct vstore *s, const char *tenant, const char *op, PGresult *r, int dim,
                      bool has_score, struct mem_records *out, char *err, size_t errlen)
{
    size_t cap = 0;
    int rows = PQntuples(r);
    for (int i = 0; i < rows; i++) {
        struct mem_record *m = pg_records_push(out, &cap);
        snprintf(m->id, sizeof m->id, "%s", PQgetvalue(r, i, 0));
        m->text = xstrdup(PQgetvalue(r, i, 1));
        snprintf(m->user_id, sizeof m->user_id, "%s", PQgetvalue(r, i, 2));
        snprintf(m->agent, sizeof m->agent, "%s", PQgetvalue(r, i, 3));
        snprintf(m->kind, sizeof m->kind, "%s", PQgetvalue(r, i, 4));
        m->created_at = strtoll(PQgetvalue(r, i, 5), NULL, 10);
        m->updated_at = strtoll(PQgetvalue(r, i, 6), NULL, 10);
        m->metadata = xstrdup(PQgetvalue(r, i, 7));
        if (!PQgetisnull(r, i, 8)) {
            m->vector = pg_parse_vector(PQgetvalue(r, i, 8), dim);
            m->dim = dim;
            if (m->vector == NULL) {
                pg_fail(s, REST_BAD_REPLY, tenant, op, err, errlen,
                        "record %s holds a vector that is not %d floats", m->id, dim);
                mem_records_free(out);
                return -1;
            }
        }
        if (has_score)
            m->score = strtod(PQgetvalue(r, i, 9), NULL);
    }
    return 0;
}

/* ---- upsert ------------------------------------------------------------- */

/* Lowercases a UUID into out; false when id cannot be one. */
static bool pg_canon_id(const char *id, char out[MC_UUID_STRLEN + 1])
{
    size_t n = id != NULL ? strnlen(id, MC_UUID_STRLEN + 1) : MC_UUID_STRLEN + 1;
    if (n > MC_UUID_STRLEN || !uuid_valid(id))
        return false;
    for (size_t i = 0; i < n; i++)
        out[i] = (id[i] >= 'A' && id[i] <= 'F') ? (char)(id[i] - 'A' + 'a') : id[i];
    out[n] = '\0';
    return true;
}

/* Checks recs[i]'s fields (the vector's length needs the namespace). */
static int pg_check_record(struct vstore *s, const char *tenant, const struct mem_record *r,
                           size_t i, char *err, size_t errlen)
{
    char id[MC_UUID_STRLEN + 1];
    const char *why = NULL;
    size_t bad = 0;
    if (memchr(r->id, '\0', sizeof r->id) == NULL || !pg_canon_id(r->id, id))
        why = "the id is not a UUID";
    else if (r->text == NULL || r->text[0] == '\0')
        why = "the text is empty";
    else if (!utf8_valid(r->text, strlen(r->text), &bad))
        why = "the text is not valid UTF-8";
    else if (memchr(r->user_id, '\0', sizeof r->user_id) == NULL || !ident_valid(r->user_id))
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
        struct cJSON *meta = cJSON_Parse(r->metadata);
        if (!cJSON_IsObject(meta))
            why = "the metadata is not a JSON object";
        cJSON_Delete(meta);
    }
    if (why == NULL)
        return 0;
    pg_fail(s, REST_REFUSED, tenant, "upsert", err, errlen, "record %zu: %s", i, why);
    return -1;
}

struct pg_pos {
    char id[MC_UUID_STRLEN + 1];
    size_t pos;
};

static int pg_pos_cmp(const void *a, const void *b)
{
    const struct pg_pos *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    if (c != 0)
        return c;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* The records to write, in input order, of each id only the last (one
 * INSERT ... ON CONFLICT cannot touch a row twice). Free with xfree. */
static size_t *pg_last_of_each(const struct mem_record *recs, size_t n, size_t *kept)
{
    struct pg_pos *ps = xcalloc(n, sizeof *ps);
    for (size_t i = 0; i < n; i++) {
        pg_canon_id(recs[i].id, ps[i].id);
        ps[i].pos = i;
    }
    qsort(ps, n, sizeof *ps, pg_pos_cmp);
    bool *keep = xcalloc(n, sizeof *keep);
    for (size_t i = 0; i < n; i++)
        keep[ps[i].pos] = i + 1 == n || strcmp(ps[i].id, ps[i + 1].id) != 0;
    size_t *idx = xcalloc(n, sizeof *idx);
    *kept = 0;
    for (size_t i = 0; i < n; i++)
        if (keep[i])
            idx[(*kept)++] = i;
    xfree(keep);
    xfree(ps);
    return idx;
}

struct pg_upsert {
    const struct mem_record *recs;
    size_t n;
};

/* One INSERT of rows idx[from..to): arrays of text, one per column, as
 * parameters, unnested into rows; the casts place each value. */
static int pg_insert_chunk(struct vstore *s, const char *tenant, const struct store_ns *ns,
                           const struct mem_record *recs, const size_t *idx, size_t from, size_t to,
                           char *err, size_t errlen)
{
    struct buf col[9];
    for (int c = 0; c < 9; c++) {
        buf_init(&col[c], PG_ARG_MAX);
        buf_putc(&col[c], '{');
    }
    for (size_t j = from; j < to; j++) {
        const struct mem_record *r = &recs[idx[j]];
        char id[MC_UUID_STRLEN + 1], num[32];
        pg_canon_id(r->id, id);
        const char *sep = j > from ? "," : "";
        for (int c = 0; c < 9; c++)
            buf_puts(&col[c], sep);
        pg_array_elem(&col[0], id);
        pg_array_elem(&col[1], r->text);
        pg_array_elem(&col[2], r->user_id);
        pg_array_elem(&col[3], r->agent);
        pg_array_elem(&col[4], r->kind);
        snprintf(num, sizeof num, "%" PRId64, r->created_at);
        buf_puts(&col[5], num);
        snprintf(num, sizeof num, "%" PRId64, r->updated_at > 0 ? r->updated_at : r->created_at);
        buf_puts(&col[6], num);
        pg_array_elem(&col[7], r->metadata != NULL ? r->metadata : "{}");
        char *vec = pg_vector_text(r->vector, ns->dim);
        pg_array_elem(&col[8], vec);
        xfree(vec);
    }
    struct pgargs a = {0};
    pgargs_add(&a, tenant);
    bool full = false;
    for (int c = 0; c < 9; c++) {
        full |= buf_putc(&col[c], '}') != BUF_OK;
        pgargs_take(&a, buf_take(&col[c]));
        buf_free(&col[c]);
    }
    int rc = -1;
    if (full) {
        pg_fail(s, REST_REFUSED, tenant, "upsert", err, errlen,
                "a batch of records is larger than %u MiB", PG_ARG_MAX >> 20);
    } else {
        char t[48], sql[1024];
        pg_table(ns->dim, t, sizeof t);
        snprintf(sql, sizeof sql,
                 "INSERT INTO %s (tenant, id, text, user_id, agent, kind, created_at,"
                 " updated_at, metadata, embedding) SELECT $1, u.id, u.text, u.user_id, u.agent,"
                 " u.kind, u.created_at, u.updated_at, u.metadata::json, u.embedding::%s(%d)"
                 " FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[],"
                 " $7::bigint[], $8::bigint[], $9::text[], $10::text[]) AS u(id, text, user_id,"
                 " agent, kind, created_at, updated_at, metadata, embedding)"
                 " ON CONFLICT (tenant, id) DO UPDATE SET text = EXCLUDED.text,"
                 " user_id = EXCLUDED.user_id, agent = EXCLUDED.agent, kind = EXCLUDED.kind,"
                 " created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at,"
                 " metadata = EXCLUDED.metadata, embedding = EXCLUDED.embedding",
                 t, pg_vtype(ns->dim), ns->dim);
        rc = pg_exec_done(s, tenant, "upsert", sql, &a, NULL, err, errlen);
    }
    pgargs_free(&a);
    return rc;
}

static bool pg_finite(const float *v, int dim)
{
    for (int i = 0; i < dim; i++)
        if (!isfinite(v[i]))
            return false;
    return true;
}

static int body_upsert(struct vstore *s, const char *tenant, void *ctx, char *err, size_t errlen)
{
    struct pg_upsert *u = ctx;
    struct store_ns ns;
    int rc = pg_ns_read(s, tenant, "upsert", &ns, err, errlen);
    if (rc == 1)
        pg_fail(s, REST_REFUSED, tenant, "upsert", err, errlen,
                "the tenant has no memory namespace yet (create it first with its embedder and "
                "dimension)");
    if (rc != 0)
        return -1;
    for (size_t i = 0; i < u->n; i++) {
        const struct mem_record *r = &u->recs[i];
        if (r->dim != 0 && r->dim != ns.dim) {
            pg_fail(s, REST_REFUSED, tenant, "upsert", err, errlen,
                    "record %zu: the vector has %d floats; the namespace's dimension is %d "
                    "(embedder %s)",
                    i, r->dim, ns.dim, ns.embedder);
            return -1;
        }
        if (!pg_finite(r->vector, ns.dim)) {
            pg_fail(s, REST_REFUSED, tenant, "upsert", err, errlen,
                    "record %zu: the vector holds a NaN or an infinity", i);
            return -1;
        }
    }
    if (pg_ensure_dim(s, tenant, ns.dim, err, errlen) != 0)
        return -1;
    size_t kept = 0;
    size_t *idx = pg_last_of_each(u->recs, u->n, &kept);
    bool ok = pg_begin(s, tenant, "upsert", err, errlen) == 0;
    if (!ok) {
        xfree(idx);
        return -1;
    }
    for (size_t from = 0; ok && from < kept; from += PG_BATCH_ROWS) {
        size_t to = from + PG_BATCH_ROWS < kept ? from + PG_BATCH_ROWS : kept;
        ok = pg_insert_chunk(s, tenant, &ns, u->recs, idx, from, to, err, errlen) == 0;
    }
    xfree(idx);
    ok = ok && pg_ns_bump(s, tenant, "upsert", err, errlen) == 0;
    return pg_end(s, tenant, "upsert", ok, err, errlen);
}

static int pg_upsert(struct vstore *s, const char *tenant, const struct mem_record *recs, size_t n,
                     char *err, size_t errlen)
{
    s->last_fail = REST_OK;
    if (remote_check_tenant(PG_SERVICE, tenant, err, errlen) != 0) {
        s->last_fail = REST_REFUSED;
        return -1;
    }
    if (n == 0)
        return 0;
    if (recs == NULL) {
        pg_fail(s, REST_REFUSED, tenant, "upsert", err, errlen,
                "no records given for a count of %zu", n);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (pg_check_record(s, tenant, &recs[i], i, err, errlen) != 0)
            return -1;
    struct pg_upsert u = {recs, n};
    return pg_run(s, tenant, "upsert", body_upsert, &u, err, errlen);
}

/* ---- query -------------------------------------------------------------- */

struct pg_query {
    const float *q;
    size_t k;
    const struct mem_filter *f;
    struct mem_records *out;
};

/* Makes the next SELECT exact, or an HNSW scan that keeps going until it
 * has k matches in order (see the top of the file). */
static int pg_query_mode(struct vstore *s, const char *tenant, const struct store_ns *ns, size_t k,
                         char *err, size_t errlen)
{
    struct pg *P = pg_of(s);
    bool iterative = P->vec_major > 0 || P->vec_minor >= 8;
    size_t rows = 0;
    if (iterative && k <= PG_HNSW_K_MAX && ns->dim <= PG_HALF_HNSW &&
        pg_count_rows(s, tenant, "query", ns->dim, NULL, &rows, err, errlen) != 0)
        return -1;
    if (!iterative || k > PG_HNSW_K_MAX || ns->dim > PG_HALF_HNSW || rows <= PG_EXACT_ROWS)
        return pg_simple(s, "SET LOCAL enable_indexscan = off", tenant, "query", err, errlen);
    char set[96];
    snprintf(set, sizeof set,
             "SET LOCAL hnsw.iterative_scan = strict_order; SET LOCAL hnsw.ef_search = %zu",
             k < 40 ? (size_t)40 : k);
    return pg_simple(s, set, tenant, "query", err, errlen);
}

static int pg_query_select(struct vstore *s, const char *tenant, const struct store_ns *ns,
                           struct pg_query *pq, char *err, size_t errlen)
{
    char t[48];
    pg_table(ns->dim, t, sizeof t);
    const char *vt = pg_vtype(ns->dim);
    struct buf sql;
    buf_init(&sql, PG_SQL_MAX);
    struct pgargs a = {0};
    pgargs_add(&a, tenant);
    pgargs_take(&a, pg_vector_text(pq->q, ns->dim));
    pgargs_take(&a, xasprintf("%zu", pq->k));
    buf_printf(&sql,
               "SELECT " PG_FIELDS ", embedding::text, -(embedding <#> $2::%s(%d)) FROM %s"
               " WHERE tenant = $1 AND ",
               vt, ns->dim, t);
    pf_node(&sql, &a, pq->f);
    buf_printf(&sql, " ORDER BY embedding <#> $2::%s(%d) LIMIT $3::bigint", vt, ns->dim);
    int rc = -1;
    PGresult *r = pg_exec(s, tenant, "query", buf_cstr(&sql), &a, err, errlen);
    if (r != NULL) {
        rc = pg_collect(s, tenant, "query", r, ns->dim, true, pq->out, err, errlen);
        PQclear(r);
    }
    buf_free(&sql);
    pgargs_free(&a);
    return rc;
}

/* The tenant's namespace into *ns with its dimension's table ready: 0;
 * 1 when the tenant has none (the caller answers "nothing"); -1 on error. */
static int pg_ns_open(struct vstore *s, const char *tenant, const char *what, struct store_ns *ns,
                      char *err, size_t errlen)
{
    int rc = pg_ns_read(s, tenant, what, ns, err, errlen);
    if (rc != 0)
        return rc;
    return pg_ensure_dim(s, tenant, ns->dim, err, errlen) != 0 ? -1 : 0;
}

static int body_query(struct vstore *s, const char *tenant, void *ctx, char *err, size_t errlen)
{
    struct pg_query *pq = ctx;
    memset(pq->out, 0, sizeof *pq->out);
    struct store_ns ns;
    int rc = pg_ns_open(s, tenant, "query", &ns, err, errlen);
    if (rc != 0)
        return rc == 1 ? 0 : -1;
    if (pg_begin(s, tenant, "query", err, errlen) != 0)
        return -1;
    bool ok = pg_query_mode(s, tenant, &ns, pq->k, err, errlen) == 0 &&
              pg_query_select(s, tenant, &ns, pq, err, errlen) == 0;
    if (pg_end(s, tenant, "query", ok, err, errlen) != 0) {
        mem_records_free(pq->out);
        return -1;
    }
    remote_sort_records(pq->out);
    return 0;
}

static int pg_query(struct vstore *s, const char *tenant, const float *q, size_t k,
                    const struct mem_filter *f, struct mem_records *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    s->last_fail = REST_OK;
    if (q == NULL) {
        pg_fail(s, REST_REFUSED, tenant, "query", err, errlen, "no query vector");
        return -1;
    }
    if (k == 0)
        return remote_check_tenant(PG_SERVICE, tenant, err, errlen);
    struct pg_query pq = {q, k, f, out};
    return pg_run(s, tenant, "query", body_query, &pq, err, errlen);
}

/* ---- keyword search ----------------------------------------------------- */

/* A byte of a keyword word: ASCII letters and digits, and every byte of a
 * non-ASCII character (as the local store splits). */
static bool pg_word_byte(unsigned char c)
{
    return c >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* The text as a tsquery of its words OR-ed, each quoted: the words hold
 * no quote, backslash or operator, so nothing of the user's can be tsquery
 * syntax, and the whole goes to to_tsquery as a bound parameter anyway.
 * Stop words are left out unless the text has nothing else. */
static size_t pg_tsquery(const char *text, struct buf *out)
{
    size_t terms = 0;
    for (int pass = 0; pass < 2 && terms == 0; pass++) {
        const unsigned char *p = (const unsigned char *)text;
        while (*p != '\0' && terms < PG_TERMS_MAX) {
            while (*p != '\0' && !pg_word_byte(*p))
                p++;
            const unsigned char *w = p;
            while (pg_word_byte(*p))
                p++;
            if (p == w)
                break;
            if (pass == 0 && stopword_is((const char *)w, (size_t)(p - w)))
                continue;
            buf_puts(out, terms > 0 ? " | '" : "'");
            buf_append(out, w, (size_t)(p - w));
            buf_putc(out, '\'');
            terms++;
        }
    }
    return terms;
}

struct pg_keyword {
    const char *tsq;
    size_t k;
    const struct mem_filter *f;
    struct mem_records *out;
};

static int body_keyword(struct vstore *s, const char *tenant, void *ctx, char *err, size_t errlen)
{
    struct pg_keyword *kw = ctx;
    memset(kw->out, 0, sizeof *kw->out);
    struct store_ns ns;
    int rc = pg_ns_open(s, tenant, "keyword", &ns, err, errlen);
    if (rc != 0)
        return rc == 1 ? 0 : -1;
    char t[48];
    pg_table(ns.dim, t, sizeof t);
    struct buf sql;
    buf_init(&sql, PG_SQL_MAX);
    struct pgargs a = {0};
    pgargs_add(&a, tenant);
    pgargs_add(&a, kw->tsq);
    pgargs_take(&a, xasprintf("%zu", kw->k));
    buf_printf(&sql,
               "SELECT " PG_FIELDS ", embedding::text,"
               " ts_rank(to_tsvector('simple', text), to_tsquery('simple', $2)) AS r FROM %s"
               " WHERE tenant = $1 AND to_tsvector('simple', text) @@ to_tsquery('simple', $2)"
               " AND ",
               t);
    pf_node(&sql, &a, kw->f);
    buf_puts(&sql, " ORDER BY r DESC, id LIMIT $3::bigint");
    rc = -1;
    PGresult *r = pg_exec(s, tenant, "keyword", buf_cstr(&sql), &a, err, errlen);
    if (r != NULL) {
        rc = pg_collect(s, tenant, "keyword", r, ns.dim, true, kw->out, err, errlen);
        PQclear(r);
    }
    buf_free(&sql);
    pgargs_free(&a);
    return rc;
}

static int pg_keyword(struct vstore *s, const char *tenant, const char *text, size_t k,
                      const struct mem_filter *f, struct mem_records *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    s->last_fail = REST_OK;
    if (remote_check_tenant(PG_SERVICE, tenant, err, errlen) != 0) {
        s->last_fail = REST_REFUSED;
        return -1;
    }
    size_t bad = 0;
    if (text == NULL || !utf8_valid(text, strlen(text), &bad)) {
        pg_fail(s, REST_REFUSED, tenant, "keyword", err, errlen, "the text %s (byte %zu)",
                text == NULL ? "is missing" : "is not valid UTF-8", bad);
        return -1;
    }
    if (k == 0)
        return 0;
    struct buf tsq;
    buf_init(&tsq, 64 * 1024);
    if (pg_tsquery(text, &tsq) == 0) {
        buf_free(&tsq);
        return 0;
    }
    struct pg_keyword kw = {buf_cstr(&tsq), k, f, out};
    int rc = pg_run(s, tenant, "keyword", body_keyword, &kw, err, errlen);
    buf_free(&tsq);
    return rc;
}

/* ---- list, count, stats ------------------------------------------------ */

struct pg_list {
    const struct mem_filter *f;
    const char *after;
    size_t limit;
    bool with_vectors;
    struct mem_records *out;
};

static int body_list(struct vstore *s, const char *tenant, void *ctx, char *err, size_t errlen)
{
    struct pg_list *l = ctx;
    memset(l->out, 0, sizeof *l->out);
    struct store_ns ns;
    int rc = pg_ns_open(s, tenant, "list", &ns, err, errlen);
    if (rc != 0)
        return rc == 1 ? 0 : -1;
    char t[48];
    pg_table(ns.dim, t, sizeof t);
    struct buf sql;
    buf_init(&sql, PG_SQL_MAX);
    struct pgargs a = {0};
    pgargs_add(&a, tenant);
    pgargs_add(&a, l->after);
    pgargs_take(&a, xasprintf("%zu", l->limit));
    buf_printf(&sql, "SELECT " PG_FIELDS ", %s FROM %s WHERE tenant = $1 AND id > $2 AND ",
               l->with_vectors ? "embedding::text" : "NULL", t);
    pf_node(&sql, &a, l->f);
    buf_puts(&sql, " ORDER BY id LIMIT $3::bigint");
    rc = -1;
    PGresult *r = pg_exec(s, tenant, "list", buf_cstr(&sql), &a, err, errlen);
    if (r != NULL) {
        rc = pg_collect(s, tenant, "list", r, ns.dim, false, l->out, err, errlen);
        PQclear(r);
    }
    buf_free(&sql);
    pgargs_free(&a);
    return rc;
}

static int pg_list(struct vstore *s, const char *tenant, const struct mem_filter *f,
                   const char *after_id, size_t limit, bool with_vectors, struct mem_records *out,
                   char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    s->last_fail = REST_OK;
    char after[MC_UUID_STRLEN + 1] = "";
    if (after_id != NULL && !pg_canon_id(after_id, after)) {
        pg_fail(s, REST_REFUSED, tenant, "list", err, errlen,
                "the id to start after is not a UUID");
        return -1;
    }
    if (limit == 0)
        return remote_check_tenant(PG_SERVICE, tenant, err, errlen);
    struct pg_list l = {f, after, limit, with_vectors, out};
    return pg_run(s, tenant, "list", body_list, &l, err, errlen);
}

struct pg_count {
    const struct mem_filter *f;
    size_t *n;
};

static int body_count(struct vstore *s, const char *tenant, void *ctx, char *err, size_t errlen)
{
    struct pg_count *c = ctx;
    struct store_ns ns;
    int rc = pg_ns_open(s, tenant, "count", &ns, err, errlen);
    if (rc != 0)
        return rc == 1 ? 0 : -1;
    return pg_count_rows(s, tenant, "count", ns.dim, c->f, c->n, err, errlen);
}

static int pg_count(struct vstore *s, const char *tenant, const struct mem_filter *f, size_t *n,
                    char *err, size_t errlen)
{
    *n = 0;
    struct pg_count c = {f, n};
    return pg_run(s, tenant, "count", body_count, &c, err, errlen);
}

static int body_stats(struct vstore *s, const char *tenant, void *ctx, char *err, size_t errlen)
{
    struct store_stats *out = ctx;
    memset(out, 0, sizeof *out);
    struct store_ns ns;
    int rc = pg_ns_open(s, tenant, "stats", &ns, err, errlen);
    if (rc != 0)
        return rc == 1 ? 0 : -1;
    char t[48], sql[512];
    pg_table(ns.dim, t, sizeof t);
    /* On disk: each row as stored, plus the keyword index, which runs at
     * roughly the size of the text. */
    snprintf(sql, sizeof sql,
             "SELECT count(*), count(DISTINCT user_id), coalesce(min(created_at), 0),"
             " coalesce(max(created_at), 0), coalesce(sum(octet_length(text)), 0),"
             " coalesce(sum(pg_column_size(m.*)), 0) FROM %s m WHERE tenant = $1",
             t);
    struct pgargs a = {0};
    pgargs_add(&a, tenant);
    PGresult *r = pg_exec(s, tenant, "stats", sql, &a, err, errlen);
    pgargs_free(&a);
    if (r == NULL)
        return -1;
    out->count = (size_t)strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    out->users = (size_t)strtoull(PQgetvalue(r, 0, 1), NULL, 10);
    out->oldest = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
    out->newest = strtoll(PQgetvalue(r, 0, 3), NULL, 10);
    out->text_bytes = (size_t)strtoull(PQgetvalue(r, 0, 4), NULL, 10);
    out->bytes_on_disk = (size_t)strtoull(PQgetvalue(r, 0, 5), NULL, 10) + out->text_bytes;
    PQclear(r);
    return 0;
}

static int pg_stats(struct vstore *s, const char *tenant, struct store_stats *out, char *err,
                    size_t errlen)
{
    memset(out, 0, sizeof *out);
    return pg_run(s, tenant, "stats", body_stats, out, err, errlen);
}

/* ---- deletes -------------------------------------------------------------- */

struct pg_delete {
    const char *const *ids;
    size_t n;
    const struct mem_filter *f;
    size_t count;
};

static int body_delete_ids(struct vstore *s, const char *tenant, void *ctx, char *err,
                           size_t errlen)
{
    struct pg_delete *d = ctx;
    d->count = 0;
    struct store_ns ns;
    int rc = pg_ns_open(s, tenant, "delete", &ns, err, errlen);
    if (rc != 0)
        return rc == 1 ? 0 : -1;
    struct buf arr;
    buf_init(&arr, PG_ARG_MAX);
    buf_putc(&arr, '{');
    size_t valid = 0;
    for (size_t i = 0; i < d->n; i++) {
        char id[MC_UUID_STRLEN + 1];
        if (!pg_canon_id(d->ids[i], id))
            continue; /* not a UUID: no memory has it */
        buf_puts(&arr, valid++ ? ",\"" : "\"");
        buf_puts(&arr, id);
        buf_putc(&arr, '"');
    }
    buf_putc(&arr, '}');
    if (valid == 0) {
        buf_free(&arr);
        return 0;
    }
    char t[48], sql[256];
    pg_table(ns.dim, t, sizeof t);
    snprintf(sql, sizeof sql, "DELETE FROM %s WHERE tenant = $1 AND id = ANY ($2::text[])", t);
    struct pgargs a = {0};
    pgargs_add(&a, tenant);
    pgargs_take(&a, buf_take(&arr));
    buf_free(&arr);
    bool ok = pg_begin(s, tenant, "delete", err, errlen) == 0;
    if (!ok) {
        pgargs_free(&a);
        return -1;
    }
    ok = pg_exec_done(s, tenant, "delete", sql, &a, &d->count, err, errlen) == 0 &&
         pg_ns_bump(s, tenant, "delete", err, errlen) == 0;
    pgargs_free(&a);
    return pg_end(s, tenant, "delete", ok, err, errlen);
}

static int pg_delete_ids(struct vstore *s, const char *tenant, const char *const *ids, size_t n,
                         size_t *deleted, char *err, size_t errlen)
{
    if (deleted != NULL)
        *deleted = 0;
    s->last_fail = REST_OK;
    if (remote_check_tenant(PG_SERVICE, tenant, err, errlen) != 0) {
        s->last_fail = REST_REFUSED;
        return -1;
    }
    if (n == 0)
        return 0;
    if (ids == NULL) {
        pg_fail(s, REST_REFUSED, tenant, "delete", err, errlen, "no ids given for a count of %zu",
                n);
        return -1;
    }
    struct pg_delete d = {ids, n, NULL, 0};
    if (pg_run(s, tenant, "delete", body_delete_ids, &d, err, errlen) != 0)
        return -1;
    if (deleted != NULL)
        *deleted = d.count;
    return 0;
}

static int body_delete_filter(struct vstore *s, const char *tenant, void *ctx, char *err,
                              size_t errlen)
{
    struct pg_delete *d = ctx;
    d->count = 0;
    struct store_ns ns;
    int rc = pg_ns_open(s, tenant, "delete", &ns, err, errlen);
    if (rc != 0)
        return rc == 1 ? 0 : -1;
    char t[48];
    pg_table(ns.dim, t, sizeof t);
    struct buf sql;
    buf_init(&sql, PG_SQL_MAX);
    struct pgargs a = {0};
    pgargs_add(&a, tenant);
    buf_printf(&sql, "DELETE FROM %s WHERE tenant = $1 AND ", t);
    pf_node(&sql, &a, d->f);
    bool ok = pg_begin(s, tenant, "delete", err, errlen) == 0;
    if (ok) {
        ok = pg_exec_done(s, tenant, "delete", buf_cstr(&sql), &a, &d->count, err, errlen) == 0;
        /* Purge (no filter): the namespace goes too, in the same
         * transaction; otherwise the write bumps its generation. */
        ok = ok && (d->f == NULL ? pg_exec_done(s, tenant, "purge",
                                                "DELETE FROM memchat_namespaces WHERE tenant = $1",
                                                &a, NULL, err, errlen) == 0
                                 : pg_ns_bump(s, tenant, "delete", err, errlen) == 0);
        rc = pg_end(s, tenant, "delete", ok, err, errlen);
    } else {
        rc = -1;
    }
    buf_free(&sql);
    pgargs_free(&a);
    return rc;
}

static int pg_delete_filter(struct vstore *s, const char *tenant, const struct mem_filter *f,
                            size_t *deleted, char *err, size_t errlen)
{
    if (deleted != NULL)
        *deleted = 0;
    struct pg_delete d = {NULL, 0, f, 0};
    if (pg_run(s, tenant, f == NULL ? "purge" : "delete", body_delete_filter, &d, err, errlen) != 0)
        return -1;
    if (deleted != NULL)
        *deleted = d.count;
    return 0;
}

/* ---- namespaces, health ----------------------------------------------------- */

struct pg_names {
    char **v;
    size_t n;
};

/* The one statement without a tenant: it lists them. */
static int body_namespaces(struct vstore *s, const char *tenant, void *ctx, char *err,
                           size_t errlen)
{
    struct pg_names *nm = ctx;
    PGresult *r =
        pg_exec(s, tenant, "namespaces", "SELECT tenant FROM memchat_namespaces ORDER BY tenant",
                NULL, err, errlen);
    if (r == NULL)
        return -1;
    int rows = PQntuples(r);
    nm->v = rows > 0 ? xcalloc((size_t)rows, sizeof *nm->v) : NULL;
    for (int i = 0; i < rows; i++)
        nm->v[nm->n++] = xstrdup(PQgetvalue(r, i, 0));
    PQclear(r);
    return 0;
}

static int pg_namespaces(struct vstore *s, char ***tenants, size_t *n, char *err, size_t errlen)
{
    *tenants = NULL;
    *n = 0;
    struct pg_names nm = {NULL, 0};
    if (pg_run_any(s, NULL, "namespaces", body_namespaces, &nm, err, errlen) != 0)
        return -1;
    *tenants = nm.v;
    *n = nm.n;
    return 0;
}

/* One cheap read that needs no schema: the server's version and the
 * extension's (not installed yet is fine: the first write creates it). */
static int pg_health(struct vstore *s, struct store_health *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    struct pg *P = pg_of(s);
    snprintf(out->where, sizeof out->where, "%s", P->where);
    s->last_fail = REST_OK;
    if (pg_ready(s, NULL, "health", false, err, errlen) != 0)
        return -1;
    PGresult *r = pg_exec(s, NULL, "health",
                          "SELECT current_setting('server_version'),"
                          " (SELECT extversion FROM pg_extension WHERE extname = 'vector')",
                          NULL, err, errlen);
    if (r == NULL) {
        if (pg_broken(P))
            pg_disconnect(P);
        return -1;
    }
    const char *ext = PQgetisnull(r, 0, 1) ? NULL : PQgetvalue(r, 0, 1);
    snprintf(out->server, sizeof out->server, "PostgreSQL %s, pgvector %s", PQgetvalue(r, 0, 0),
             ext != NULL ? ext : "not installed yet (memchat creates it on first use)");
    PQclear(r);
    return 0;
}

static void pg_free(struct vstore *s)
{
    struct pg *P = pg_of(s);
    pg_disconnect(P);
    xfree(P->prepared);
    xfree(P->dims);
    if (P->conninfo != NULL)
        xsecure_free(P->conninfo);
    if (P->password != NULL)
        xsecure_free(P->password);
    xfree(P);
    xfree(s);
}

static const struct vstore_ops pg_ops = {
    .ns_get = pg_ns_get,
    .ns_create = pg_ns_create,
    .upsert = pg_upsert,
    .query = pg_query,
    .keyword = pg_keyword,
    .list = pg_list,
    .delete_ids = pg_delete_ids,
    .delete_filter = pg_delete_filter,
    .count = pg_count,
    .stats = pg_stats,
    .namespaces = pg_namespaces,
    .index = NULL,
    .health = pg_health,
    .free = pg_free,
};

/* host:port/db for messages, from libpq's parse of the URL (never the
 * URL itself, which may hold a password); the password for scrubbing. */
static int pg_parse_url(struct pg *P, const char *url)
{
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &msg);
    if (opts == NULL) {
        PQfreemem(msg);
        return -1;
    }
    const char *host = NULL, *port = NULL, *db = NULL, *user = NULL;
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        if (o->val == NULL || *o->val == '\0')
            continue;
        if (strcmp(o->keyword, "host") == 0 ||
            (host == NULL && strcmp(o->keyword, "hostaddr") == 0))
            host = o->val;
        else if (strcmp(o->keyword, "port") == 0)
            port = o->val;
        else if (strcmp(o->keyword, "dbname") == 0)
            db = o->val;
        else if (strcmp(o->keyword, "user") == 0)
            user = o->val;
        else if (strcmp(o->keyword, "password") == 0)
            P->password = xsecure_dup(o->val, strlen(o->val));
    }
    snprintf(P->where, sizeof P->where, "%s:%s/%s", host != NULL ? host : "localhost",
             port != NULL ? port : "5432", db != NULL ? db : (user != NULL ? user : "postgres"));
    PQconninfoFree(opts);
    return 0;
}

struct vstore *store_pgvector_new(const struct config *cfg, char *err, size_t errlen)
{
    const char *url = config_str(cfg, CFG_PGVECTOR_URL);
    if (url == NULL || *url == '\0') {
        snprintf(err, errlen,
                 "VECTOR_DB_PROVIDER=pgvector needs PGVECTOR_URL (a PostgreSQL connection URI, "
                 "postgresql://user:password@host:5432/db), and it is empty");
        return NULL;
    }
    struct pg *P = xcalloc(1, sizeof *P);
    if (pg_parse_url(P, url) != 0) {
        xfree(P);
        snprintf(err, errlen,
                 "PGVECTOR_URL: libpq cannot read it as a connection URI "
                 "(postgresql://user:password@host:5432/db); the value is not shown, as it may "
                 "hold a password");
        return NULL;
    }
    P->conninfo = xsecure_dup(url, strlen(url));
    P->timeout_ms = (long)config_duration_ms(cfg, CFG_MEMORY_REMOTE_TIMEOUT);
    if (P->timeout_ms <= 0)
        P->timeout_ms = 30000;
    struct vstore *s = xcalloc(1, sizeof *s);
    s->ops = &pg_ops;
    snprintf(s->name, sizeof s->name, "pgvector");
    s->remote = true;
    s->last_fail = REST_OK;
    s->impl = P;
    return s;
}
