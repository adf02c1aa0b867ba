/*
 * Fuzz target: the metadata filter parser (memory/filter.h) and what is
 * built from a parsed filter. An accepted filter must print as JSON that
 * parses back to the same filter (same JSON again), copy and combine with
 * $and, and translate to SQL that SQLite accepts and that selects exactly
 * the records filter_match accepts over a fixed set of records with
 * hostile metadata (repeated keys, quotes in keys, type look-alikes): the
 * local store trusts that SQL, so a disagreement is a wrong recall or an
 * injection. A refused filter must say why. The records and the in-memory
 * table are built once and never change, so no input sees another's state.
 */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "fuzz.h"
#include "memchat/engine.h"
#include "memory/filter.h"
#include "memory/store.h"
#include "util/alloc.h"
#include "util/buf.h"

#define FILTER_BINDS_MAX 4096

static const struct {
    const char *user, *agent, *kind;
    long long created;
    const char *meta;
} fixture[] = {
    {"u1", "assistant", "fact", 1000, "{\"n\":1,\"s\":\"x\",\"b\":true}"},
    {"u2", "planner", "note", 2000, "{\"n\":\"1\",\"s\":\"y\",\"b\":false}"},
    {"u1", "planner", "fact", 0, NULL},
    {"alice", "assistant", "pref", 1700000000000LL, "{}"},
    {"u-3", "a_b", "fact", 5, "{\"n\":1.5e3,\"dup\":1,\"dup\":\"2\",\"x\":[1,2],\"o\":{\"k\":1}}"},
    {"u1", "assistant", "note", 7, "{\"k'ey\":\"v\",\"\":\"empty\",\"$eq\":\"x\",\"nul\":null}"},
    {"bob", "assistant", "fact", 9, "{\"n\":-0.0,\"s\":\"\\u0000x\",\"t\":\"\\\"\",\"b\":1}"},
    {"u2", "x", "y", 1, "{\"user_id\":\"u1\",\"created_at\":5,\"id\":\"z\",\"n\":1e308}"},
};
#define FIXTURE_N (sizeof fixture / sizeof fixture[0])

static struct mem_record recs[FIXTURE_N];
static sqlite3 *db;

static void fixture_init(void)
{
    if (db != NULL)
        return;
    if (mc_global_init() != 0)
        fuzz_fail("filter: mc_global_init failed");
    if (sqlite3_open(":memory:", &db) != SQLITE_OK ||
        sqlite3_exec(db,
                     "CREATE TABLE t (rowid INTEGER PRIMARY KEY, id TEXT NOT NULL,"
                     " user_id TEXT NOT NULL, agent TEXT NOT NULL, kind TEXT NOT NULL,"
                     " created_at INTEGER NOT NULL, metadata TEXT)",
                     NULL, NULL, NULL) != SQLITE_OK)
        fuzz_fail("filter: cannot make the table");
    for (size_t i = 0; i < FIXTURE_N; i++) {
        struct mem_record *r = &recs[i];
        snprintf(r->id, sizeof r->id, "00000000-0000-4000-8000-00000000000%zu", i);
        snprintf(r->user_id, sizeof r->user_id, "%s", fixture[i].user);
        snprintf(r->agent, sizeof r->agent, "%s", fixture[i].agent);
        snprintf(r->kind, sizeof r->kind, "%s", fixture[i].kind);
        r->created_at = fixture[i].created;
        r->updated_at = fixture[i].created;
        r->metadata = fixture[i].meta != NULL ? xstrdup(fixture[i].meta) : NULL;
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(db, "INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?)", -1, &st, NULL) !=
            SQLITE_OK)
            fuzz_fail("filter: cannot prepare the insert");
        sqlite3_bind_int64(st, 1, (sqlite3_int64)i);
        sqlite3_bind_text(st, 2, r->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, r->user_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, r->agent, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, r->kind, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 6, r->created_at);
        if (r->metadata != NULL)
            sqlite3_bind_text(st, 7, r->metadata, -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(st, 7);
        if (sqlite3_step(st) != SQLITE_DONE)
            fuzz_fail("filter: cannot insert a record");
        sqlite3_finalize(st);
    }
}

struct binds {
    const struct filter_value *v[FILTER_BINDS_MAX];
    int n;
    bool overflow;
};

static void binds_push(void *ud, int index, const struct filter_value *v)
{
    struct binds *b = ud;
    if (index != b->n)
        fuzz_fail("filter: binds out of order");
    if (b->n == FILTER_BINDS_MAX) {
        b->overflow = true;
        return;
    }
    b->v[b->n++] = v;
}

/* The SQL of f selects exactly the records filter_match accepts. */
static void check_sql(const struct mem_filter *f)
{
    struct buf sql;
    buf_init(&sql, 1 << 22);
    buf_puts(&sql, "SELECT rowid FROM t WHERE ");
    struct binds *b = calloc(1, sizeof *b);
    if (b == NULL)
        abort();
    if (filter_sql(f, "t.", &sql, binds_push, b) != 0 || b->overflow) {
        /* Too big for the buffer: refused cleanly, nothing to compare. */
        free(b);
        buf_free(&sql);
        return;
    }
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, buf_cstr(&sql), -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "SQL: %s\nerror: %s\n", buf_cstr(&sql), sqlite3_errmsg(db));
        fuzz_fail("filter: filter_sql wrote SQL that does not prepare");
    }
    if (sqlite3_bind_parameter_count(st) != b->n)
        fuzz_fail("filter: the binds do not match the SQL's parameters");
    for (int i = 0; i < b->n; i++) {
        const struct filter_value *v = b->v[i];
        if (v->type == FILTER_V_STRING)
            sqlite3_bind_text(st, i + 1, v->s, -1, SQLITE_STATIC);
        else if (v->type == FILTER_V_NUMBER)
            sqlite3_bind_double(st, i + 1, v->n);
        else
            sqlite3_bind_int(st, i + 1, v->b ? 1 : 0);
    }
    bool hit[FIXTURE_N] = {false};
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        sqlite3_int64 row = sqlite3_column_int64(st, 0);
        if (row < 0 || (size_t)row >= FIXTURE_N)
            fuzz_fail("filter: SQL returned a row that does not exist");
        hit[row] = true;
    }
    if (rc != SQLITE_DONE) {
        fprintf(stderr, "SQL: %s\nerror: %s\n", buf_cstr(&sql), sqlite3_errmsg(db));
        fuzz_fail("filter: the SQL fails when run");
    }
    for (size_t i = 0; i < FIXTURE_N; i++) {
        if (hit[i] != filter_match(f, &recs[i])) {
            fprintf(stderr, "SQL: %s\nrecord %zu metadata %s: SQL %d, filter_match %d\n",
                    buf_cstr(&sql), i, recs[i].metadata ? recs[i].metadata : "NULL", hit[i],
                    !hit[i]);
            fuzz_fail("filter: the SQL and filter_match disagree");
        }
    }
    sqlite3_finalize(st);
    free(b);
    buf_free(&sql);
}

/* f printed, parsed again and printed again gives the same text. */
static char *check_json(const struct mem_filter *f)
{
    struct buf j;
    buf_init(&j, 1 << 22);
    if (filter_to_json(f, &j) != 0)
        fuzz_fail("filter: filter_to_json failed");
    char err[512] = "";
    struct mem_filter *g = filter_parse(buf_cstr(&j), err, sizeof err);
    if (g == NULL) {
        fprintf(stderr, "printed: %s\nerror: %s\n", buf_cstr(&j), err);
        fuzz_fail("filter: a printed filter does not parse again");
    }
    struct buf j2;
    buf_init(&j2, 1 << 22);
    if (filter_to_json(g, &j2) != 0 || strcmp(buf_cstr(&j), buf_cstr(&j2)) != 0)
        fuzz_fail("filter: print, parse, print is not stable");
    buf_free(&j2);
    filter_free(g);
    return buf_take(&j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_MAX_INPUT)
        return 0;
    fixture_init();
    char *json = fuzz_strndup(data, size);
    char err[512] = "";
    struct mem_filter *f = filter_parse(json, err, sizeof err);
    if (f == NULL) {
        if (err[0] == '\0')
            fuzz_fail("filter: refused without a message");
        free(json);
        return 0;
    }
    char *printed = check_json(f);
    struct mem_filter *c = filter_copy(f);
    char *copied = check_json(c);
    if (strcmp(printed, copied) != 0)
        fuzz_fail("filter: a copy prints differently");
    struct mem_filter *both = filter_and(f, c);
    for (size_t i = 0; i < FIXTURE_N; i++)
        if (filter_match(both, &recs[i]) != filter_match(f, &recs[i]))
            fuzz_fail("filter: f AND f differs from f");
    check_sql(f);
    /* A buffer too small for the SQL: refused cleanly (-1), never overrun. */
    struct buf small;
    buf_init(&small, size / 2 + 8);
    struct binds *b = calloc(1, sizeof *b);
    if (b == NULL)
        abort();
    int src = filter_sql(f, "m.", &small, binds_push, b);
    if (src != 0 && src != -1)
        fuzz_fail("filter: filter_sql returned neither 0 nor -1");
    free(b);
    buf_free(&small);
    filter_free(both);
    filter_free(c);
    filter_free(f);
    xfree(copied);
    xfree(printed);
    free(json);
    return 0;
}
