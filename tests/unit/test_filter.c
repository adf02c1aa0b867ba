/*
 * Tests of memory/filter: the SQL translation selects exactly the records
 * filter_match accepts (a property test over thousands of random filters
 * and records in an in-memory SQLite table, hostile metadata keys and
 * values included); every kind of bad filter is refused with a message
 * that points at the problem; the JSON form round-trips; the constructors
 * (filter_eq, filter_and, filter_copy) build what they say; and
 * filter_match's documented semantics (typed comparisons, missing keys,
 * repeated keys).
 */
#include "testutil.h"

#include "memory/filter.h"

#include <math.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "memory/store.h"
#include "util/alloc.h"
#include "util/buf.h"

/* ---- helpers ---------------------------------------------------------- */

static uint64_t rng_state;

static void rng_seed(uint64_t s)
{
    rng_state = s * 0x9E3779B97F4A7C15ull + 1;
}

static uint64_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

static size_t rng_below(size_t n)
{
    return (size_t)(rng_next() % n);
}

/* Parses json, asserting it parses; the test frees the result. */
static struct mem_filter *parse_ok(const char *json)
{
    char err[256];
    struct mem_filter *f = filter_parse(json, err, sizeof err);
    if (f == NULL)
        fail_msg("filter %s refused: %s", json, err);
    return f;
}

/* Asserts json is refused with exactly the message want. */
static void assert_refused(const char *json, const char *want)
{
    char err[512];
    memset(err, 'x', sizeof err);
    struct mem_filter *f = filter_parse(json, err, sizeof err);
    if (f != NULL) {
        filter_free(f);
        fail_msg("filter %s was accepted; want \"%s\"", json, want);
    }
    if (strcmp(err, want) != 0)
        fail_msg("filter %s:\n got  %s\n want %s", json, err, want);
}

/* filter_to_json as a string the caller frees. */
static char *to_json(const struct mem_filter *f)
{
    struct buf b;
    buf_init(&b, 1 << 20);
    assert_int_equal(filter_to_json(f, &b), 0);
    return buf_take(&b);
}

/* The bound values, in parameter order, as the local store binds them. */
struct binds {
    const struct filter_value *v[4096];
    int n;
};

static void binds_push(void *ud, int index, const struct filter_value *v)
{
    struct binds *b = ud;
    assert_int_equal(index, b->n); /* in the order of the `?`s */
    assert_true(b->n < 4096);
    b->v[b->n++] = v;
}

/* A record with the given fields; metadata is copied (NULL stays NULL). */
static void rec_init(struct mem_record *r, const char *id, const char *user, const char *agent,
                     const char *kind, int64_t created, const char *meta)
{
    memset(r, 0, sizeof *r);
    snprintf(r->id, sizeof r->id, "%s", id);
    snprintf(r->user_id, sizeof r->user_id, "%s", user);
    snprintf(r->agent, sizeof r->agent, "%s", agent);
    snprintf(r->kind, sizeof r->kind, "%s", kind);
    r->created_at = created;
    r->updated_at = created;
    r->metadata = meta ? xstrdup(meta) : NULL;
}

/* Frees what rec_init allocated. */
static void rec_clear(struct mem_record *r)
{
    xfree(r->metadata);
    r->metadata = NULL;
}

/* An in-memory table holding records, in the columns filter_sql names. */
static sqlite3 *db_with(const struct mem_record *recs, size_t n)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE t (rowid INTEGER PRIMARY KEY, id TEXT NOT NULL,"
                                  " user_id TEXT NOT NULL, agent TEXT NOT NULL, kind TEXT NOT NULL,"
                                  " created_at INTEGER NOT NULL, metadata TEXT)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(
        sqlite3_prepare_v2(db, "INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?)", -1, &st, NULL),
        SQLITE_OK);
    for (size_t i = 0; i < n; i++) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)i);
        sqlite3_bind_text(st, 2, recs[i].id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, recs[i].user_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, recs[i].agent, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, recs[i].kind, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 6, recs[i].created_at);
        if (recs[i].metadata)
            sqlite3_bind_text(st, 7, recs[i].metadata, -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(st, 7);
        assert_int_equal(sqlite3_step(st), SQLITE_DONE);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    return db;
}

/* Runs SELECT rowid FROM t WHERE <filter_sql(f)> and sets hit[rowid];
 * the prefix "t." is used, so column names must come out prefixed. */
static void sql_select(sqlite3 *db, const struct mem_filter *f, bool *hit, size_t n)
{
    struct buf sql;
    buf_init(&sql, 1 << 20);
    assert_int_equal(buf_puts(&sql, "SELECT rowid FROM t WHERE "), BUF_OK);
    struct binds *b = xcalloc(1, sizeof *b);
    assert_int_equal(filter_sql(f, "t.", &sql, binds_push, b), 0);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, buf_cstr(&sql), -1, &st, NULL) != SQLITE_OK)
        fail_msg("SQL does not prepare: %s\n%s", sqlite3_errmsg(db), buf_cstr(&sql));
    assert_int_equal(sqlite3_bind_parameter_count(st), b->n);
    for (int i = 0; i < b->n; i++) {
        const struct filter_value *v = b->v[i];
        int rc = v->type == FILTER_V_STRING ? sqlite3_bind_text(st, i + 1, v->s, -1, SQLITE_STATIC)
                 : v->type == FILTER_V_NUMBER ? sqlite3_bind_double(st, i + 1, v->n)
                                              : sqlite3_bind_int(st, i + 1, v->b ? 1 : 0);
        assert_int_equal(rc, SQLITE_OK);
    }
    memset(hit, 0, n * sizeof *hit);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        sqlite3_int64 row = sqlite3_column_int64(st, 0);
        assert_true(row >= 0 && (size_t)row < n);
        hit[row] = true;
    }
    if (rc != SQLITE_DONE)
        fail_msg("SQL fails: %s\n%s", sqlite3_errmsg(db), buf_cstr(&sql));
    sqlite3_finalize(st);
    xfree(b);
    buf_free(&sql);
}

/* Asserts the SQL selects exactly the records filter_match accepts;
 * returns how many matched. */
static size_t assert_sql_agrees(sqlite3 *db, const struct mem_filter *f,
                                const struct mem_record *recs, size_t n, const char *what)
{
    bool *hit = xcalloc(n, sizeof *hit);
    sql_select(db, f, hit, n);
    size_t matched = 0;
    for (size_t i = 0; i < n; i++) {
        bool want = filter_match(f, &recs[i]);
        matched += want;
        if (hit[i] != want)
            fail_msg("%s: record %zu (metadata %s): SQL says %d, filter_match says %d", what, i,
                     recs[i].metadata ? recs[i].metadata : "NULL", hit[i], want);
    }
    xfree(hit);
    return matched;
}

/* ---- the property test ------------------------------------------------ */

/* Hostile keys: quotes of both kinds, backslashes, JSON path syntax, SQL,
 * control characters, non-ASCII, a key named like a column. */
static const char *const meta_keys[] = {
    "topic",
    "Topic",
    "n",
    "flag",
    "a.b",
    "a[0]",
    "$.x",
    "it's",
    "say \"hi\"",
    "back\\slash",
    "x') OR 1=1 OR ('",
    "'; DROP TABLE t; --",
    "new\nline",
    "caf\xc3\xa9",
    "metadata",
    "*",
};
#define N_META_KEYS (sizeof meta_keys / sizeof *meta_keys)

static const char *const str_values[] = {
    "a", "b", "", "u1", "it's", "1", "true", "\"q\"", "'; DROP TABLE t; --", "caf\xc3\xa9",
};
#define N_STR_VALUES (sizeof str_values / sizeof *str_values)

static const double num_values[] = {0, 1, -1, 2, 0.5, 1.5, -2.25, 100, 1e15, 9007199254740993.0};
#define N_NUM_VALUES (sizeof num_values / sizeof *num_values)

static const char *const users[] = {"u1", "u2", "u3", "bob_9", "A-b"};
static const char *const agents[] = {"main", "helper", "x"};
static const char *const kinds[] = {"note", "exchange", "fact"};

static cJSON *random_scalar(void)
{
    switch (rng_below(3)) {
    case 0:
        return cJSON_CreateString(str_values[rng_below(N_STR_VALUES)]);
    case 1:
        return cJSON_CreateNumber(num_values[rng_below(N_NUM_VALUES)]);
    default:
        return cJSON_CreateBool(rng_below(2));
    }
}

/* Metadata of a random record: NULL, {} or up to five keys (sometimes one
 * twice) with scalars, null, a list or an object as values. */
static char *random_metadata(void)
{
    size_t pick = rng_below(20);
    if (pick == 0)
        return NULL;
    if (pick == 1)
        return xstrdup("{}");
    if (pick == 2) /* keys with escapes, as another writer might store them */
        return xstrdup("{\"say \\\"hi\\\"\":\"a\",\"back\\\\slash\":1,\"caf\\u00e9\":true,"
                       "\"topic\":\"\\u0061\",\"n\":2.0,\"n\":9007199254740993}");
    cJSON *o = cJSON_CreateObject();
    size_t nk = 1 + rng_below(5);
    for (size_t i = 0; i < nk; i++) {
        const char *k = meta_keys[rng_below(N_META_KEYS)];
        cJSON *v;
        switch (rng_below(8)) {
        case 0:
            v = cJSON_CreateNull();
            break;
        case 1:
            v = cJSON_CreateArray();
            cJSON_AddItemToArray(v, cJSON_CreateString("a"));
            break;
        case 2:
            v = cJSON_CreateObject();
            cJSON_AddItemToObject(v, "topic", cJSON_CreateString("a"));
            break;
        default:
            v = random_scalar();
        }
        cJSON_AddItemToObject(o, k, v); /* may repeat a key: cJSON keeps both */
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    char *r = xstrdup(s);
    cJSON_free(s);
    return r;
}

static void random_record(struct mem_record *r, size_t i)
{
    char id[40];
    snprintf(id, sizeof id, "0190a3b4-0000-7000-8000-%012zx", i % 40);
    char *meta = random_metadata();
    rec_init(r, id, users[rng_below(5)], agents[rng_below(3)], kinds[rng_below(3)],
             1000 + (int64_t)rng_below(20), meta);
    xfree(meta);
}

/* A value for key: of the field's type (from values the records hold),
 * any scalar for metadata keys; numbers only when number is set. */
static cJSON *random_value(const char *key, bool number)
{
    char id[40];
    if (strcmp(key, "created_at") == 0)
        return cJSON_CreateNumber(995 + (double)rng_below(30) + (rng_below(4) == 0 ? 0.5 : 0));
    if (number)
        return cJSON_CreateNumber(num_values[rng_below(N_NUM_VALUES)]);
    if (strcmp(key, "user_id") == 0)
        return cJSON_CreateString(users[rng_below(5)]);
    if (strcmp(key, "agent") == 0)
        return cJSON_CreateString(agents[rng_below(3)]);
    if (strcmp(key, "kind") == 0)
        return cJSON_CreateString(kinds[rng_below(3)]);
    if (strcmp(key, "id") == 0) {
        snprintf(id, sizeof id, "0190A3B4-0000-7000-8000-%012zx", rng_below(45));
        return cJSON_CreateString(id);
    }
    return random_scalar();
}

/* A field or a metadata key; not one starting with "$", which a filter
 * reads as an operator. */
static const char *random_key(void)
{
    static const char *const fields[] = {"id", "user_id", "agent", "kind", "created_at"};
    if (rng_below(2) == 0)
        return fields[rng_below(5)];
    const char *k;
    do
        k = meta_keys[rng_below(N_META_KEYS)];
    while (k[0] == '$');
    return k;
}

/* The condition on one key: a bare value or an object of 1-2 operators. */
static cJSON *random_condition(const char *key)
{
    static const char *const ops[] = {"$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte"};
    bool str_field = strcmp(key, "id") == 0 || strcmp(key, "user_id") == 0 ||
                     strcmp(key, "agent") == 0 || strcmp(key, "kind") == 0;
    if (rng_below(4) == 0)
        return random_value(key, false);
    cJSON *o = cJSON_CreateObject();
    size_t nops = 1 + rng_below(2);
    for (size_t i = 0; i < nops; i++) {
        const char *op = ops[rng_below(str_field ? 4 : 8)];
        if (cJSON_GetObjectItemCaseSensitive(o, op) != NULL)
            continue;
        cJSON *v;
        if (strcmp(op, "$in") == 0 || strcmp(op, "$nin") == 0) {
            v = cJSON_CreateArray();
            size_t n = 1 + rng_below(4);
            for (size_t j = 0; j < n; j++)
                cJSON_AddItemToArray(v, random_value(key, false));
        } else {
            v = random_value(key, op[1] == 'g' || op[1] == 'l');
        }
        cJSON_AddItemToObject(o, op, v);
    }
    return o;
}

/* A random filter object up to depth levels of $and/$or. */
static cJSON *random_filter(int depth)
{
    cJSON *o = cJSON_CreateObject();
    size_t pick = rng_below(10);
    if (depth > 0 && pick < 4) {
        cJSON *a = cJSON_AddArrayToObject(o, pick < 2 ? "$and" : "$or");
        size_t n = 1 + rng_below(3);
        for (size_t i = 0; i < n; i++)
            cJSON_AddItemToArray(a, random_filter(depth - 1));
        return o;
    }
    size_t nkeys = 1 + (rng_below(3) == 0 ? rng_below(3) : 0);
    for (size_t i = 0; i < nkeys; i++) {
        const char *k = random_key();
        if (cJSON_GetObjectItemCaseSensitive(o, k) == NULL)
            cJSON_AddItemToObject(o, k, random_condition(k));
    }
    return o;
}

/* Thousands of random filters (fixed seed) over random records with
 * hostile metadata: every filter parses, its SQL prepares and selects
 * exactly the records filter_match accepts, and its JSON form parses back
 * to a filter with the same JSON form and the same SQL results. The run
 * must also match something and miss something often, or it proves
 * little. */
static void sql_selects_exactly_what_filter_match_accepts(void **state)
{
    (void)state;
    rng_seed(2024);
    enum { NREC = 160, NFILTERS = 3000 };
    struct mem_record *recs = xcalloc(NREC, sizeof *recs);
    for (size_t i = 0; i < NREC; i++)
        random_record(&recs[i], i);
    sqlite3 *db = db_with(recs, NREC);
    size_t some = 0, none = 0, all = 0;
    for (int t = 0; t < NFILTERS; t++) {
        cJSON *j = random_filter(3);
        char *text = cJSON_PrintUnformatted(j);
        cJSON_Delete(j);
        struct mem_filter *f = parse_ok(text);
        size_t m = assert_sql_agrees(db, f, recs, NREC, text);
        some += m > 0 && m < NREC;
        none += m == 0;
        all += m == NREC;
        char *again = to_json(f);
        struct mem_filter *g = parse_ok(again);
        char *third = to_json(g);
        assert_string_equal(again, third);
        if (t % 10 == 0)
            assert_sql_agrees(db, g, recs, NREC, again);
        filter_free(g);
        xfree(third);
        xfree(again);
        filter_free(f);
        cJSON_free(text);
    }
    assert_true(some > NFILTERS / 4);
    assert_true(none > 10 && all > 10);
    /* The table survived every hostile key and value. */
    assert_int_equal(sqlite3_exec(db, "SELECT count(*) FROM t", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    for (size_t i = 0; i < NREC; i++)
        rec_clear(&recs[i]);
    xfree(recs);
}

/* ---- hostile input ---------------------------------------------------- */

/* A key that tries to close the string literal and add a condition is
 * just a key: it matches only records that have it, the SQL holds it with
 * its quotes doubled, and string values never appear in the SQL text at
 * all (they are parameters). */
static void hostile_keys_and_values_cannot_change_the_statement(void **state)
{
    (void)state;
    struct mem_record recs[3];
    rec_init(&recs[0], "0190a3b4-0000-7000-8000-000000000001", "u1", "a", "note", 1, "{}");
    rec_init(&recs[1], "0190a3b4-0000-7000-8000-000000000002", "u1", "a", "note", 2,
             "{\"x') OR 1=1 OR ('\":\"v\"}");
    rec_init(&recs[2], "0190a3b4-0000-7000-8000-000000000003", "u1", "a", "note", 3,
             "{\"k\":\"'); DROP TABLE t; --\"}");
    sqlite3 *db = db_with(recs, 3);
    struct mem_filter *f = parse_ok("{\"x') OR 1=1 OR ('\": \"v\"}");
    bool hit[3];
    sql_select(db, f, hit, 3);
    assert_false(hit[0]);
    assert_true(hit[1]);
    assert_false(hit[2]);
    struct buf sql;
    buf_init(&sql, 4096);
    assert_int_equal(filter_sql(f, "", &sql, NULL, NULL), 0);
    assert_non_null(strstr(buf_cstr(&sql), "'x'') OR 1=1 OR (''"));
    filter_free(f);
    f = parse_ok("{\"k\": {\"$in\": [\"'); DROP TABLE t; --\"]}}");
    buf_reset(&sql);
    assert_int_equal(filter_sql(f, "", &sql, NULL, NULL), 0);
    assert_null(strstr(buf_cstr(&sql), "DROP"));
    sql_select(db, f, hit, 3);
    assert_false(hit[0]);
    assert_false(hit[1]);
    assert_true(hit[2]);
    filter_free(f);
    buf_free(&sql);
    sqlite3_close(db);
    for (size_t i = 0; i < 3; i++)
        rec_clear(&recs[i]);
}

/* ---- error messages --------------------------------------------------- */

/* Each kind of bad filter is refused with its own message, which starts
 * with the JSON path of the problem ("filter" for the whole) and says what
 * is accepted. */
static void bad_filters_are_refused_with_a_path_and_a_reason(void **state)
{
    (void)state;
    assert_refused("{\"$and\":[{\"user_id\":\"u1\"},{\"user_id\":{\"$eqq\":\"u2\"}}]}",
                   "$and[1].user_id: unknown operator \"$eqq\" (accepted: $eq $ne $in $nin $gt "
                   "$gte $lt $lte)");
    assert_refused("{\"created_at\":{\"$gte\":\"yesterday\"}}",
                   "created_at: $gte takes a number, got a string");
    assert_refused("{\"created_at\":\"2024\"}", "created_at: expects a number, got a string");
    assert_refused("{\"created_at\":{\"$lt\":1e400}}", "created_at: $lt takes a finite number");
    assert_refused("{\"user_id\":\"a b\"}",
                   "user_id: \"a b\" is not a valid id ([A-Za-z0-9_-]{1,64})");
    assert_refused("{\"agent\":{\"$nin\":[\"ok\",\"bad id\"]}}",
                   "agent: $nin[1] \"bad id\" is not a valid id ([A-Za-z0-9_-]{1,64})");
    assert_refused("{\"id\":\"0190a3b4-0000-7000-8000-00000000000\"}",
                   "id: \"0190a3b4-0000-7000-8000-00000000000\" is not a UUID");
    assert_refused("{\"id\":{\"$eq\":7}}", "id: $eq takes a string, got a number");
    assert_refused("{\"kind\":\"\"}", "kind: \"\" is not a kind (1 to 32 bytes)");
    assert_refused("{\"user_id\":{\"$in\":[]}}", "user_id: $in takes a non-empty list");
    assert_refused("{\"user_id\":{\"$in\":\"u1\"}}", "user_id: $in takes a list, got a string");
    assert_refused("{\"user_id\":{\"$in\":[\"u1\",3]}}",
                   "user_id: $in[1] takes a string, got a number");
    assert_refused("{\"user_id\":{\"$gt\":\"a\"}}",
                   "user_id: $gt compares numbers: it applies to created_at and metadata keys, "
                   "not user_id");
    assert_refused("{\"topic\":{\"$lt\":\"x\"}}", "topic: $lt takes a number, got a string");
    assert_refused("{\"topic\":null}",
                   "topic: expects a string, a finite number or a boolean, got null");
    assert_refused("{\"topic\":{\"$eq\":{\"a\":1}}}",
                   "topic: $eq takes a string, a finite number or a boolean, got an object");
    assert_refused("{\"topic\":[\"a\"]}",
                   "topic: a list needs an operator: {\"$in\": [...]} or {\"$nin\": [...]}");
    assert_refused("{\"topic\":{}}",
                   "topic: an empty operator object (accepted: $eq $ne $in $nin $gt $gte $lt "
                   "$lte)");
    assert_refused("{\"topic\":{\"eq\":1}}",
                   "topic: unknown operator \"eq\" (accepted: $eq $ne $in $nin $gt $gte $lt "
                   "$lte)");
    assert_refused("{\"$nor\":[{\"a\":1}]}",
                   "$nor: unknown operator \"$nor\" here (accepted: $and $or, or a field or "
                   "metadata key with its condition)");
    assert_refused("{\"$and\":[]}", "$and: takes a non-empty list of filters");
    assert_refused("{\"$or\":{\"a\":1}}", "$or: takes a list of filters, got an object");
    assert_refused("{\"$and\":[{\"a\":1},2]}", "$and[1]: takes a filter object, got a number");
    assert_refused("{\"$or\":[{\"a\":1},{\"$and\":[{\"b\":2},{\"user_id\":{\"$ne\":5}}]}]}",
                   "$or[1].$and[1].user_id: $ne takes a string, got a number");
    assert_refused("{\"$and\":[{}]}",
                   "$and[0]: an empty filter object (give at least one condition)");
    assert_refused("{}", "filter: an empty filter object (give at least one condition)");
    assert_refused("{\"\":1}", "filter: an empty key (name a field or a metadata key)");
    assert_refused("[1]", "filter: must be a JSON object, got a list");
    assert_refused("\"u1\"", "filter: must be a JSON object, got a string");
    /* A key with quotes and control characters is shown escaped. */
    assert_refused("{\"a\\\"b\\n\":{\"$x\":1}}",
                   "a\\\"b\\x0a: unknown operator \"$x\" (accepted: $eq $ne $in $nin $gt $gte "
                   "$lt $lte)");
}

/* JSON syntax errors give the byte offset where parsing stopped, marked
 * with ^ in an excerpt of the text. cJSON stops on a bad byte, except
 * where it expects a string: there it stops one past the byte that is not
 * an opening quote (the "}" at byte 16 of {"user_id":"u1",}, so byte 17).
 * Trailing garbage stops at the garbage, a bad literal at its start, text
 * that ends early at its end; a long text is cut to the 24 bytes before
 * the mark and 16 after. */
static void json_syntax_errors_give_the_byte_offset(void **state)
{
    (void)state;
    assert_refused("{\"user_id\":\"u1\",}",
                   "filter: not valid JSON: parsing stopped at byte 17 of 17 (marked ^): "
                   "{\"user_id\":\"u1\",}^");
    assert_refused(
        "{\"a\":1} x",
        "filter: not valid JSON: parsing stopped at byte 8 of 9 (marked ^): {\"a\":1} ^x");
    assert_refused(
        "{\"a\":tru}",
        "filter: not valid JSON: parsing stopped at byte 5 of 9 (marked ^): {\"a\":^tru}");
    assert_refused("{\"a\":",
                   "filter: not valid JSON: parsing stopped at byte 5 of 5 (marked ^): {\"a\":^");
    assert_refused("{\"user_id\":\"u1\", \"agent\": \"main\", \"kind\": note, \"topic\": "
                   "\"a long tail of text\"}",
                   "filter: not valid JSON: parsing stopped at byte 42 of 79 (marked ^): "
                   "...agent\": \"main\", \"kind\": ^note, \"topic\": \"...");
    /* control bytes in the excerpt are escaped; a missing colon stops at
     * the byte where the colon should be, after the whitespace */
    assert_refused("{\"a\":1,\n\"b\" 2}", "filter: not valid JSON: parsing stopped at byte 12 of "
                                          "14 (marked ^): {\"a\":1,\\x0a\"b\" ^2}");
    assert_refused("", "filter: empty text (a filter is a JSON object)");
    char err[64];
    assert_null(filter_parse(NULL, err, sizeof err));
    assert_string_equal(err, "filter: no filter text");
}

/* Nesting: 32 levels of objects parse, 33 do not, and the message names
 * the path down to the level that is too deep. */
static void nesting_deeper_than_32_is_refused(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 4096);
    for (int levels = 32; levels <= 33; levels++) {
        buf_reset(&b);
        for (int i = 1; i < levels; i++)
            buf_puts(&b, "{\"$and\":[");
        buf_puts(&b, "{\"a\":1}");
        for (int i = 1; i < levels; i++)
            buf_puts(&b, "]}");
        char err[512];
        struct mem_filter *f = filter_parse(buf_cstr(&b), err, sizeof err);
        if (levels == 32) {
            assert_non_null(f);
            filter_free(f);
        } else {
            assert_null(f);
            /* The path: 31 "$and[0]" steps, then the 32nd $and. */
            assert_non_null(strstr(err, "$and[0].$and[0].$and[0]"));
            assert_non_null(strstr(err, ": the filter nests deeper than 32 levels"));
        }
    }
    buf_free(&b);
}

/* Size: 1,000 conditions and listed values are accepted, 1,001 are not,
 * whether in one $in list or as many keys. */
static void more_than_1000_nodes_are_refused(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 1 << 20);
    for (int n = 1000; n <= 1001; n++) {
        buf_reset(&b);
        buf_puts(&b, "{\"n\":{\"$in\":[");
        for (int i = 0; i < n; i++)
            buf_printf(&b, "%s%d", i ? "," : "", i);
        buf_puts(&b, "]}}");
        char err[256];
        struct mem_filter *f = filter_parse(buf_cstr(&b), err, sizeof err);
        if (n == 1000) {
            assert_non_null(f);
            assert_int_equal(f->n_values, 1000);
            filter_free(f);
        } else {
            assert_null(f);
            assert_string_equal(err, "n: the filter has more than 1000 conditions and listed "
                                     "values");
        }
    }
    /* 500 keys is 500 conditions plus the $and holding them; 1000 keys
     * with their $and pass the limit. */
    for (int n = 500; n <= 1000; n += 500) {
        buf_reset(&b);
        buf_puts(&b, "{");
        for (int i = 0; i < n; i++)
            buf_printf(&b, "%s\"k%d\":%d", i ? "," : "", i, i);
        buf_puts(&b, "}");
        char err[256];
        struct mem_filter *f = filter_parse(buf_cstr(&b), err, sizeof err);
        if (n == 500) {
            assert_non_null(f);
            assert_int_equal(f->op, FILTER_AND);
            assert_int_equal(f->n_kids, 500);
            filter_free(f);
        } else {
            assert_null(f);
            assert_string_equal(err, "filter: the filter has more than 1000 conditions and "
                                     "listed values");
        }
    }
    buf_free(&b);
}

/* The message buffer is never overrun: a short one gets a truncated,
 * terminated message, a zero-length one is not written. */
static void messages_fit_the_buffer_they_are_given(void **state)
{
    (void)state;
    char err[12];
    memset(err, 'x', sizeof err);
    assert_null(filter_parse("{\"user_id\":\"a b\"}", err, 8));
    assert_string_equal(err, "user_id");
    assert_int_equal(err[8], 'x');
    char none = 'z';
    assert_null(filter_parse("{\"user_id\":\"a b\"}", &none, 0));
    assert_int_equal(none, 'z');
}

/* ---- the tree and its forms ------------------------------------------- */

/* The parsed tree: bare values are $eq, several keys are an $and, several
 * operators on a key are an $and, fields and metadata keys are told apart,
 * and an upper-case UUID is stored lower-case like the stored ids. */
static void the_parsed_tree_has_the_documented_shape(void **state)
{
    (void)state;
    struct mem_filter *f =
        parse_ok("{\"user_id\":\"u1\",\"created_at\":{\"$gte\":5,\"$lt\":9},\"topic\":true,"
                 "\"id\":\"0190A3B4-0000-7000-8000-0000000000AB\"}");
    assert_int_equal(f->op, FILTER_AND);
    assert_int_equal(f->n_kids, 5);
    assert_int_equal(f->kids[0]->op, FILTER_EQ);
    assert_string_equal(f->kids[0]->key, "user_id");
    assert_false(f->kids[0]->is_meta);
    assert_int_equal(f->kids[0]->values[0].type, FILTER_V_STRING);
    assert_string_equal(f->kids[0]->values[0].s, "u1");
    assert_int_equal(f->kids[1]->op, FILTER_GTE);
    assert_true(f->kids[1]->values[0].type == FILTER_V_NUMBER && f->kids[1]->values[0].n == 5);
    assert_int_equal(f->kids[2]->op, FILTER_LT);
    assert_true(f->kids[3]->is_meta);
    assert_int_equal(f->kids[3]->values[0].type, FILTER_V_BOOL);
    assert_true(f->kids[3]->values[0].b);
    assert_string_equal(f->kids[4]->values[0].s, "0190a3b4-0000-7000-8000-0000000000ab");
    filter_free(f);
    f = parse_ok("{\"$or\":[{\"kind\":\"note\"}]}");
    assert_int_equal(f->op, FILTER_OR);
    assert_int_equal(f->n_kids, 1);
    filter_free(f);
}

/* filter_to_json writes the explicit form, which parses back to itself;
 * a NULL filter is {}; a full buffer is -1. */
static void the_json_form_is_explicit_and_round_trips(void **state)
{
    (void)state;
    struct mem_filter *f = parse_ok("{\"user_id\":\"u1\",\"created_at\":{\"$gte\":1700000000000},"
                                    "\"$or\":[{\"tag\":{\"$in\":[\"a\",2,false]}},{\"k\":{\"$ne\":"
                                    "1.5}}]}");
    char *s = to_json(f);
    assert_string_equal(s, "{\"$and\":[{\"user_id\":{\"$eq\":\"u1\"}},{\"created_at\":{\"$gte\":"
                           "1700000000000}},{\"$or\":[{\"tag\":{\"$in\":[\"a\",2,false]}},{\"k\":"
                           "{\"$ne\":1.5}}]}]}");
    struct mem_filter *g = parse_ok(s);
    char *t = to_json(g);
    assert_string_equal(s, t);
    xfree(s);
    xfree(t);
    filter_free(g);
    s = to_json(NULL);
    assert_string_equal(s, "{}");
    xfree(s);
    struct buf small;
    buf_init(&small, 10);
    assert_int_equal(filter_to_json(f, &small), -1);
    buf_free(&small);
    filter_free(f);
}

/* filter_eq makes {"key": {"$eq": value}} (a metadata node for other
 * keys); filter_and(a, b) matches what both match, copies a lone input and
 * gives NULL for two NULLs; filter_copy is deep (it outlives its source). */
static void the_constructors_build_what_they_say(void **state)
{
    (void)state;
    struct mem_filter *u = filter_eq("user_id", "u1");
    char *s = to_json(u);
    assert_string_equal(s, "{\"user_id\":{\"$eq\":\"u1\"}}");
    xfree(s);
    assert_false(u->is_meta);
    struct mem_filter *t = filter_eq("topic", "x");
    assert_true(t->is_meta);
    struct mem_filter *both = filter_and(u, t);
    s = to_json(both);
    assert_string_equal(s,
                        "{\"$and\":[{\"user_id\":{\"$eq\":\"u1\"}},{\"topic\":{\"$eq\":\"x\"}}]}");
    xfree(s);
    struct mem_record r;
    rec_init(&r, "0190a3b4-0000-7000-8000-000000000001", "u1", "a", "note", 1, "{\"topic\":\"x\"}");
    assert_true(filter_match(both, &r));
    snprintf(r.user_id, sizeof r.user_id, "u2");
    assert_false(filter_match(both, &r));
    assert_true(filter_match(t, &r));
    struct mem_filter *lone = filter_and(NULL, t);
    struct mem_filter *copy = filter_copy(both);
    filter_free(t);
    filter_free(u);
    filter_free(both);
    s = to_json(lone);
    assert_string_equal(s, "{\"topic\":{\"$eq\":\"x\"}}");
    xfree(s);
    s = to_json(copy);
    assert_string_equal(s,
                        "{\"$and\":[{\"user_id\":{\"$eq\":\"u1\"}},{\"topic\":{\"$eq\":\"x\"}}]}");
    xfree(s);
    assert_null(filter_and(NULL, NULL));
    assert_null(filter_copy(NULL));
    filter_free(NULL);
    filter_free(lone);
    filter_free(copy);
    rec_clear(&r);
}

/* filter_sql: NULL is "1"; columns carry the prefix; one `?` per value,
 * bound in order; -1 when the buffer is too small. */
static void the_sql_form_uses_the_prefix_and_parameters(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 4096);
    assert_int_equal(filter_sql(NULL, "m.", &b, NULL, NULL), 0);
    assert_string_equal(buf_cstr(&b), "1");
    buf_reset(&b);
    struct mem_filter *f =
        parse_ok("{\"user_id\":{\"$in\":[\"u1\",\"u2\"]},\"created_at\":{\"$lt\":"
                 "7},\"topic\":\"x\"}");
    struct binds *bd = xcalloc(1, sizeof *bd);
    assert_int_equal(filter_sql(f, "m.", &b, binds_push, bd), 0);
    assert_string_equal(buf_cstr(&b),
                        "((m.user_id IN (?, ?)) AND (m.created_at < ?) AND EXISTS (SELECT 1 FROM "
                        "json_each(m.metadata) AS mf_je WHERE mf_je.key = 'topic' AND "
                        "((mf_je.type = 'text' AND mf_je.atom = ?))))");
    assert_int_equal(bd->n, 4);
    assert_string_equal(bd->v[0]->s, "u1");
    assert_string_equal(bd->v[1]->s, "u2");
    assert_true(bd->v[2]->n == 7);
    assert_string_equal(bd->v[3]->s, "x");
    struct buf small;
    buf_init(&small, 20);
    assert_int_equal(filter_sql(f, "m.", &small, NULL, NULL), -1);
    buf_free(&small);
    xfree(bd);
    filter_free(f);
    buf_free(&b);
}

/* filter_match: comparisons are typed (the string "1", the number 1 and
 * true are three different values); numbers compare as doubles (an
 * integer beyond 2^53 equals the double it rounds to, in both readings);
 * a missing metadata key (or no metadata, or metadata that is not an
 * object) matches only $ne and $nin; a repeated key matches when any of
 * its values does; NULL matches all. The same records through SQL agree
 * (all but the list, which the store never holds). */
static void filter_match_follows_the_documented_semantics(void **state)
{
    (void)state;
    enum { N = 7 };
    struct mem_record recs[N];
    const char *metas[N] = {"{\"n\":\"1\"}",
                            "{\"n\":1}",
                            "{\"n\":true}",
                            NULL,
                            "{\"n\":2,\"n\":1}",
                            "{\"n\":9007199254740993}",
                            "[1,2]"};
    for (size_t i = 0; i < N; i++)
        rec_init(&recs[i], "0190a3b4-0000-7000-8000-000000000001", "u1", "a", "note", 5, metas[i]);
    sqlite3 *db = db_with(recs, N - 1);
    static const struct {
        const char *filter;
        bool want[N];
    } cases[] = {
        {"{\"n\":\"1\"}", {1, 0, 0, 0, 0, 0, 0}},
        {"{\"n\":1}", {0, 1, 0, 0, 1, 0, 0}},
        {"{\"n\":true}", {0, 0, 1, 0, 0, 0, 0}},
        {"{\"n\":{\"$ne\":1}}", {1, 0, 1, 1, 0, 1, 1}},
        {"{\"n\":{\"$nin\":[1,\"1\"]}}", {0, 0, 1, 1, 0, 1, 1}},
        {"{\"n\":{\"$gte\":1}}", {0, 1, 0, 0, 1, 1, 0}},
        {"{\"n\":{\"$gt\":1}}", {0, 0, 0, 0, 1, 1, 0}},
        {"{\"n\":9007199254740992}", {0, 0, 0, 0, 0, 1, 0}},
        {"{\"missing\":{\"$ne\":\"x\"}}", {1, 1, 1, 1, 1, 1, 1}},
        {"{\"missing\":\"x\"}", {0, 0, 0, 0, 0, 0, 0}},
        {"{\"created_at\":{\"$gte\":5,\"$lte\":5}}", {1, 1, 1, 1, 1, 1, 1}},
        {"{\"created_at\":{\"$gt\":5}}", {0, 0, 0, 0, 0, 0, 0}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        struct mem_filter *f = parse_ok(cases[c].filter);
        for (size_t i = 0; i < N; i++)
            if (filter_match(f, &recs[i]) != cases[c].want[i])
                fail_msg("%s on %s: want %d", cases[c].filter, metas[i] ? metas[i] : "NULL",
                         cases[c].want[i]);
        assert_sql_agrees(db, f, recs, N - 1, cases[c].filter);
        filter_free(f);
    }
    assert_true(filter_match(NULL, &recs[0]));
    sqlite3_close(db);
    for (size_t i = 0; i < N; i++)
        rec_clear(&recs[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sql_selects_exactly_what_filter_match_accepts),
        cmocka_unit_test(hostile_keys_and_values_cannot_change_the_statement),
        cmocka_unit_test(bad_filters_are_refused_with_a_path_and_a_reason),
        cmocka_unit_test(json_syntax_errors_give_the_byte_offset),
        cmocka_unit_test(nesting_deeper_than_32_is_refused),
        cmocka_unit_test(more_than_1000_nodes_are_refused),
        cmocka_unit_test(messages_fit_the_buffer_they_are_given),
        cmocka_unit_test(the_parsed_tree_has_the_documented_shape),
        cmocka_unit_test(the_json_form_is_explicit_and_round_trips),
        cmocka_unit_test(the_constructors_build_what_they_say),
        cmocka_unit_test(the_sql_form_uses_the_prefix_and_parameters),
        cmocka_unit_test(filter_match_follows_the_documented_semantics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
