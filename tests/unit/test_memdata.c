/*
 * Tests of the memory data tables of schema migration 4 that are not the
 * memories themselves: the history of a tenant's memories
 * (store/memhist.c), conversations and their messages (store/convstore.c)
 * and the memories waiting to be stored (store/pending.c). Each case opens
 * a fresh data file with db_open, so the real migrations build the tables,
 * and checks what it wrote through the module under test and, where the
 * module cannot see it (orphaned messages, last_error), with raw SQL.
 */
#include "testutil.h"

#include <inttypes.h>

#include <sqlite3.h>

#include "store/convstore.h"
#include "store/db.h"
#include "store/memhist.h"
#include "store/pending.h"
#include "util/alloc.h"
#include "util/uuid.h"

struct fixture {
    char *dir;
    struct db *db;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->dir = tu_mkdtemp();
    size_t n = strlen(f->dir) + sizeof "/memchat.db";
    char *path = malloc(n);
    assert_non_null(path);
    snprintf(path, n, "%s/memchat.db", f->dir);
    enum db_error why;
    char err[512];
    f->db = db_open(path, &why, err, sizeof err);
    free(path);
    if (f->db == NULL)
        fail_msg("db_open: %s", err);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    db_close(f->db);
    tu_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* One integer from raw SQL, independent of the code under test. */
static long long raw_int(struct db *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db_handle(db), sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("prepare %s: %s", sql, sqlite3_errmsg(db_handle(db)));
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    long long v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* --- memhist ------------------------------------------------------------ */

/* Adds a history row; the id is a fresh UUIDv7 copied into id (if not NULL). */
static void hist_add(struct db *db, const char *tenant, const char *user, const char *op,
                     int64_t ts, const char *detail, char *id)
{
    char mid[UUID_STRLEN + 1];
    uuid7_new(mid);
    struct memhist_row r = {.ts_ms = ts,
                            .tenant = (char *)(uintptr_t)tenant,
                            .memory_id = mid,
                            .op = (char *)(uintptr_t)op,
                            .user_id = (char *)(uintptr_t)user,
                            .agent = (char *)(uintptr_t) "assistant",
                            .detail = (char *)(uintptr_t)detail};
    char err[256];
    if (memhist_add(db, &r, err, sizeof err) != 0)
        fail_msg("memhist_add: %s", err);
    if (id != NULL)
        memcpy(id, mid, sizeof mid);
}

/* Every field written comes back, newest first, and a NULL detail reads
 * as the empty object. */
static void test_memhist_rows_round_trip_newest_first(void **state)
{
    struct fixture *f = *state;
    char id1[UUID_STRLEN + 1], id2[UUID_STRLEN + 1];
    hist_add(f->db, "acme", "u1", "add", 1000, NULL, id1);
    hist_add(f->db, "acme", "u2", "refresh", 2000, "{\"similarity\":0.97}", id2);
    struct memhist_row *rows = NULL;
    size_t n = 0;
    char err[256];
    assert_int_equal(memhist_list(f->db, "acme", 0, 0, &rows, &n, err, sizeof err), 0);
    assert_int_equal(n, 2);
    assert_true(rows[0].seq > rows[1].seq);
    assert_string_equal(rows[0].memory_id, id2);
    assert_string_equal(rows[0].op, "refresh");
    assert_string_equal(rows[0].user_id, "u2");
    assert_string_equal(rows[0].agent, "assistant");
    assert_string_equal(rows[0].tenant, "acme");
    assert_string_equal(rows[0].detail, "{\"similarity\":0.97}");
    assert_int_equal(rows[0].ts_ms, 2000);
    assert_string_equal(rows[1].memory_id, id1);
    assert_string_equal(rows[1].op, "add");
    assert_string_equal(rows[1].detail, "{}");
    assert_int_equal(rows[1].ts_ms, 1000);
    memhist_rows_free(rows, n);

    /* A tenant without history reads as no rows and a NULL array. */
    assert_int_equal(memhist_list(f->db, "other", 0, 0, &rows, &n, err, sizeof err), 0);
    assert_int_equal(n, 0);
    assert_null(rows);
}

/* Paging with before and limit walks all rows once, newest first. */
static void test_memhist_list_pages_with_before_and_limit(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < 7; i++)
        hist_add(f->db, "acme", "u1", "add", 100 + i, NULL, NULL);
    hist_add(f->db, "beta", "u1", "add", 50, NULL, NULL);
    int64_t before = 0, last_ts = INT64_MAX;
    size_t total = 0, pages = 0;
    char err[256];
    for (;;) {
        struct memhist_row *rows = NULL;
        size_t n = 0;
        assert_int_equal(memhist_list(f->db, "acme", before, 3, &rows, &n, err, sizeof err), 0);
        if (n == 0)
            break;
        assert_true(n <= 3);
        for (size_t i = 0; i < n; i++) {
            assert_string_equal(rows[i].tenant, "acme");
            assert_true(rows[i].ts_ms < last_ts);
            last_ts = rows[i].ts_ms;
        }
        before = rows[n - 1].seq;
        total += n;
        pages++;
        memhist_rows_free(rows, n);
    }
    assert_int_equal(total, 7);
    assert_int_equal(pages, 3); /* 3 + 3 + 1 */
    assert_int_equal(last_ts, 100);
}

/* An op outside the four, a detail that is not a JSON object, a bad tenant
 * and a memory id that is not a UUID are refused, and write nothing. */
static void test_memhist_refuses_invalid_rows(void **state)
{
    struct fixture *f = *state;
    char mid[UUID_STRLEN + 1];
    uuid7_new(mid);
    struct memhist_row r = {.ts_ms = 1,
                            .tenant = (char *)(uintptr_t) "acme",
                            .memory_id = mid,
                            .op = (char *)(uintptr_t) "update",
                            .user_id = (char *)(uintptr_t) "u1",
                            .agent = (char *)(uintptr_t) "assistant"};
    char err[256] = "";
    assert_int_equal(memhist_add(f->db, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "update"));
    assert_non_null(strstr(err, "delete")); /* says what is accepted */
    r.op = (char *)(uintptr_t) "add";
    r.detail = (char *)(uintptr_t) "[1,2]";
    assert_int_equal(memhist_add(f->db, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "JSON object"));
    r.detail = (char *)(uintptr_t) "{\"a\":";
    assert_int_equal(memhist_add(f->db, &r, err, sizeof err), -1);
    r.detail = NULL;
    r.tenant = (char *)(uintptr_t) "ac me";
    assert_int_equal(memhist_add(f->db, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "tenant"));
    r.tenant = (char *)(uintptr_t) "acme";
    r.memory_id = (char *)(uintptr_t) "not-a-uuid";
    assert_int_equal(memhist_add(f->db, &r, err, sizeof err), -1);
    assert_int_equal(raw_int(f->db, "SELECT count(*) FROM memory_history"), 0);
}

/* Purge by user removes only that user's rows of that tenant; purge by
 * tenant removes the rest of the tenant; other tenants keep theirs. */
static void test_memhist_purge_by_user_and_by_tenant(void **state)
{
    struct fixture *f = *state;
    hist_add(f->db, "acme", "u1", "add", 1, NULL, NULL);
    hist_add(f->db, "acme", "u1", "delete", 2, NULL, NULL);
    hist_add(f->db, "acme", "u2", "add", 3, NULL, NULL);
    hist_add(f->db, "beta", "u1", "add", 4, NULL, NULL);
    size_t removed = 99;
    char err[256];
    assert_int_equal(memhist_purge(f->db, "acme", "u1", &removed, err, sizeof err), 0);
    assert_int_equal(removed, 2);
    assert_int_equal(
        raw_int(f->db, "SELECT count(*) FROM memory_history WHERE tenant = 'acme' AND user_id = "
                       "'u2'"),
        1);
    assert_int_equal(raw_int(f->db, "SELECT count(*) FROM memory_history WHERE tenant = 'beta'"),
                     1);
    assert_int_equal(memhist_purge(f->db, "acme", NULL, &removed, err, sizeof err), 0);
    assert_int_equal(removed, 1);
    assert_int_equal(raw_int(f->db, "SELECT count(*) FROM memory_history WHERE tenant = 'acme'"),
                     0);
    assert_int_equal(raw_int(f->db, "SELECT count(*) FROM memory_history WHERE tenant = 'beta' "
                                    "AND user_id = 'u1'"),
                     1);
}

/* --- convstore ---------------------------------------------------------- */

static void conv_new(struct db *db, const char *tenant, const char *user, const char *first,
                     int64_t now, char id[MC_UUID_STRLEN + 1])
{
    char err[256];
    if (convstore_create(db, tenant, user, "assistant", first, now, id, err, sizeof err) != 0)
        fail_msg("convstore_create: %s", err);
}

static void conv_add(struct db *db, const char *id, const char *msg, const char *reply, int64_t now)
{
    char turn[UUID_STRLEN + 1], err[256];
    uuid7_new(turn);
    if (convstore_append(db, id, turn, msg, reply, now, err, sizeof err) != 0)
        fail_msg("convstore_append: %s", err);
}

/* A conversation reads back with its owner, times, a UUIDv7 id and the
 * first message folded to one line as its title. */
static void test_convstore_create_and_get_round_trip(void **state)
{
    struct fixture *f = *state;
    char id[MC_UUID_STRLEN + 1];
    conv_new(f->db, "acme", "u1", "  How many\n\thours \x01 did I  log?\r\n", 5000, id);
    assert_true(uuid7_time_ms(id) >= 0);
    struct conv_info c;
    char err[256];
    assert_int_equal(convstore_get(f->db, "acme", id, &c, err, sizeof err), 0);
    assert_string_equal(c.id, id);
    assert_string_equal(c.tenant, "acme");
    assert_string_equal(c.user_id, "u1");
    assert_string_equal(c.agent, "assistant");
    assert_string_equal(c.title, "How many hours did I log?");
    assert_int_equal(c.created_ms, 5000);
    assert_int_equal(c.updated_ms, 5000);
    assert_int_equal(c.turns, 0);

    /* No first message: an empty title. */
    conv_new(f->db, "acme", "u1", NULL, 5000, id);
    assert_int_equal(convstore_get(f->db, "acme", id, &c, err, sizeof err), 0);
    assert_string_equal(c.title, "");
}

/* The title stops at 120 bytes without splitting a character, and an
 * invalid byte becomes U+FFFD rather than reaching the listing. */
static void test_convstore_title_is_cut_on_a_character_boundary(void **state)
{
    struct fixture *f = *state;
    char msg[256], want[256], id[MC_UUID_STRLEN + 1];
    struct conv_info c;
    char err[256];

    /* 119 bytes then a 2-byte é: 121 > 120, so the é goes whole. */
    memset(msg, 'a', 119);
    memcpy(msg + 119, "\xc3\xa9 tail", 8);
    conv_new(f->db, "acme", "u1", msg, 1, id);
    assert_int_equal(convstore_get(f->db, "acme", id, &c, err, sizeof err), 0);
    memset(want, 'a', 119);
    want[119] = '\0';
    assert_string_equal(c.title, want);

    /* 118 bytes then é: exactly 120, kept. */
    memset(msg, 'b', 118);
    memcpy(msg + 118, "\xc3\xa9 tail", 8);
    conv_new(f->db, "acme", "u1", msg, 1, id);
    assert_int_equal(convstore_get(f->db, "acme", id, &c, err, sizeof err), 0);
    memset(want, 'b', 118);
    memcpy(want + 118, "\xc3\xa9", 3);
    assert_string_equal(c.title, want);
    assert_int_equal(strlen(c.title), 120);

    conv_new(f->db, "acme", "u1", "bad \xff byte", 1, id);
    assert_int_equal(convstore_get(f->db, "acme", id, &c, err, sizeof err), 0);
    assert_string_equal(c.title, "bad \xef\xbf\xbd byte");
}

/* Exchanges read back in the order appended (user, then assistant), the
 * last N when asked for fewer, with turns counted and updated_ms bumped. */
static void test_convstore_messages_in_order_and_last_n(void **state)
{
    struct fixture *f = *state;
    char id[MC_UUID_STRLEN + 1];
    conv_new(f->db, "acme", "u1", "q1", 10, id);
    char turn1[UUID_STRLEN + 1], err[256];
    uuid7_new(turn1);
    assert_int_equal(convstore_append(f->db, id, turn1, "q1", "a1", 11, err, sizeof err), 0);
    conv_add(f->db, id, "q2", "a2", 12);
    conv_add(f->db, id, "q3", "a3", 13);

    struct conv_message *m = NULL;
    size_t n = 0;
    assert_int_equal(convstore_messages(f->db, id, 0, &m, &n, err, sizeof err), 0);
    assert_int_equal(n, 6);
    const char *want[] = {"q1", "a1", "q2", "a2", "q3", "a3"};
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(m[i].content, want[i]);
        assert_string_equal(m[i].role, i % 2 == 0 ? "user" : "assistant");
    }
    assert_string_equal(m[0].turn, turn1);
    assert_string_equal(m[1].turn, turn1);
    assert_string_not_equal(m[2].turn, turn1);
    assert_int_equal(m[0].ts_ms, 11);
    assert_int_equal(m[5].ts_ms, 13);
    convstore_messages_free(m, n);

    assert_int_equal(convstore_messages(f->db, id, 3, &m, &n, err, sizeof err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(m[0].content, "a2");
    assert_string_equal(m[1].content, "q3");
    assert_string_equal(m[2].content, "a3");
    convstore_messages_free(m, n);

    struct conv_info c;
    assert_int_equal(convstore_get(f->db, "acme", id, &c, err, sizeof err), 0);
    assert_int_equal(c.turns, 3);
    assert_int_equal(c.updated_ms, 13);
    assert_int_equal(c.created_ms, 10);
    assert_string_equal(c.title, "q1");
}

/* Appending to a conversation that does not exist fails and writes
 * nothing; bad ids and NULL texts are refused. */
static void test_convstore_append_refuses_missing_conversation(void **state)
{
    struct fixture *f = *state;
    char id[UUID_STRLEN + 1], turn[UUID_STRLEN + 1], err[256] = "";
    uuid7_new(id);
    uuid7_new(turn);
    assert_int_equal(convstore_append(f->db, id, turn, "q", "a", 1, err, sizeof err), -1);
    assert_non_null(strstr(err, id));
    assert_int_equal(convstore_append(f->db, "nope", turn, "q", "a", 1, err, sizeof err), -1);
    conv_new(f->db, "acme", "u1", "q", 1, id);
    assert_int_equal(convstore_append(f->db, id, "nope", "q", "a", 1, err, sizeof err), -1);
    assert_int_equal(convstore_append(f->db, id, turn, "q", NULL, 1, err, sizeof err), -1);
    assert_int_equal(raw_int(f->db, "SELECT count(*) FROM conversation_messages"), 0);
}

/* A 1 MiB message and reply (with multi-byte text) round-trip unchanged. */
static void test_convstore_large_messages_round_trip(void **state)
{
    struct fixture *f = *state;
    size_t len = 1 << 20;
    char *big = malloc(len + 1);
    assert_non_null(big);
    for (size_t i = 0; i < len; i += 4)
        memcpy(big + i, i % 8 == 0 ? "abcd" : "\xe2\x82\xac!", 4);
    big[len] = '\0';
    char id[MC_UUID_STRLEN + 1];
    conv_new(f->db, "acme", "u1", big, 1, id);
    conv_add(f->db, id, big, big, 2);
    struct conv_message *m = NULL;
    size_t n = 0;
    char err[256];
    assert_int_equal(convstore_messages(f->db, id, 0, &m, &n, err, sizeof err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(strlen(m[0].content), len);
    assert_memory_equal(m[0].content, big, len);
    assert_memory_equal(m[1].content, big, len);
    convstore_messages_free(m, n);
    struct conv_info c;
    assert_int_equal(convstore_get(f->db, "acme", id, &c, err, sizeof err), 0);
    assert_int_equal(strlen(c.title), 120); /* 15 whole "abcd€!" */
    assert_memory_equal(c.title, "abcd\xe2\x82\xac!", 8);
    free(big);
}

/* Another tenant's conversation id is "none" for get and remove, which
 * leave it whole; lists show only the asked tenant's conversations. */
static void test_convstore_isolates_tenants(void **state)
{
    struct fixture *f = *state;
    char a[MC_UUID_STRLEN + 1], b[MC_UUID_STRLEN + 1];
    conv_new(f->db, "acme", "u1", "secret plan", 1, a);
    conv_add(f->db, a, "secret plan", "noted", 2);
    conv_new(f->db, "beta", "u1", "hello", 3, b);
    struct conv_info c;
    char err[256];
    assert_int_equal(convstore_get(f->db, "beta", a, &c, err, sizeof err), 1);
    assert_int_equal(convstore_remove(f->db, "beta", a, err, sizeof err), 1);
    assert_int_equal(convstore_get(f->db, "acme", a, &c, err, sizeof err), 0);
    assert_int_equal(c.turns, 1);
    assert_int_equal(raw_int(f->db, "SELECT count(*) FROM conversation_messages"), 2);

    struct conv_info *v = NULL;
    size_t n = 0;
    assert_int_equal(convstore_list(f->db, "beta", NULL, 0, &v, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(v[0].id, b);
    xfree(v);
    assert_int_equal(convstore_latest(f->db, "beta", "u1", &c, err, sizeof err), 0);
    assert_string_equal(c.id, b);

    /* The owner removes it: row and messages go; a second remove is none. */
    assert_int_equal(convstore_remove(f->db, "acme", a, err, sizeof err), 0);
    assert_int_equal(convstore_get(f->db, "acme", a, &c, err, sizeof err), 1);
    assert_int_equal(raw_int(f->db, "SELECT count(*) FROM conversation_messages"), 0);
    assert_int_equal(convstore_remove(f->db, "acme", a, err, sizeof err), 1);
    assert_int_equal(convstore_get(f->db, "beta", b, &c, err, sizeof err), 0);
}

/* Lists are newest-updated first, filtered by user, cut at the limit, and
 * latest is the user's most recently updated conversation. */
static void test_convstore_list_order_user_and_limit(void **state)
{
    struct fixture *f = *state;
    char c1[MC_UUID_STRLEN + 1], c2[MC_UUID_STRLEN + 1], c3[MC_UUID_STRLEN + 1];
    conv_new(f->db, "acme", "u1", "one", 100, c1);
    conv_new(f->db, "acme", "u1", "two", 200, c2);
    conv_new(f->db, "acme", "u2", "three", 300, c3);
    conv_add(f->db, c1, "one", "reply", 400); /* c1 becomes the latest */
    struct conv_info *v = NULL;
    size_t n = 0;
    char err[256];
    assert_int_equal(convstore_list(f->db, "acme", NULL, 0, &v, &n, err, sizeof err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(v[0].id, c1);
    assert_string_equal(v[1].id, c3);
    assert_string_equal(v[2].id, c2);
    assert_int_equal(v[0].turns, 1);
    assert_int_equal(v[1].turns, 0);
    xfree(v);
    assert_int_equal(convstore_list(f->db, "acme", "u1", 1, &v, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(v[0].id, c1);
    xfree(v);
    struct conv_info c;
    assert_int_equal(convstore_latest(f->db, "acme", "u2", &c, err, sizeof err), 0);
    assert_string_equal(c.id, c3);
    assert_int_equal(convstore_latest(f->db, "acme", "u9", &c, err, sizeof err), 1);
    assert_int_equal(convstore_list(f->db, "zeta", NULL, 0, &v, &n, err, sizeof err), 0);
    assert_int_equal(n, 0);
    assert_null(v);
}

/* Purge by user removes that user's conversations and their messages;
 * purge by tenant the rest; the other tenant keeps everything. */
static void test_convstore_purge_by_user_and_by_tenant(void **state)
{
    struct fixture *f = *state;
    char a1[MC_UUID_STRLEN + 1], a2[MC_UUID_STRLEN + 1], b1[MC_UUID_STRLEN + 1];
    conv_new(f->db, "acme", "u1", "x", 1, a1);
    conv_add(f->db, a1, "x", "y", 2);
    conv_new(f->db, "acme", "u2", "x", 1, a2);
    conv_add(f->db, a2, "x", "y", 2);
    conv_new(f->db, "beta", "u1", "x", 1, b1);
    conv_add(f->db, b1, "x", "y", 2);
    size_t removed = 0;
    char err[256];
    assert_int_equal(convstore_purge(f->db, "acme", "u1", &removed, err, sizeof err), 0);
    assert_int_equal(removed, 1);
    struct conv_info c;
    assert_int_equal(convstore_get(f->db, "acme", a1, &c, err, sizeof err), 1);
    assert_int_equal(convstore_get(f->db, "acme", a2, &c, err, sizeof err), 0);
    assert_int_equal(raw_int(f->db, "SELECT count(*) FROM conversation_messages"), 4);
    assert_int_equal(convstore_purge(f->db, "acme", NULL, &removed, err, sizeof err), 0);
    assert_int_equal(removed, 1);
    assert_int_equal(raw_int(f->db, "SELECT count(*) FROM conversations WHERE tenant = 'acme'"), 0);
    assert_int_equal(raw_int(f->db, "SELECT count(*) FROM conversation_messages"), 2);
    assert_int_equal(convstore_get(f->db, "beta", b1, &c, err, sizeof err), 0);
    assert_int_equal(c.turns, 1);
}

/* --- pending ------------------------------------------------------------ */

static void pend_add(struct db *db, const char *tenant, const char *user, int64_t next,
                     const char *payload, char turn[UUID_STRLEN + 1])
{
    struct pending_row r = {.created_ms = 7, .next_ms = next};
    uuid7_new(r.turn);
    snprintf(r.tenant, sizeof r.tenant, "%s", tenant);
    snprintf(r.user_id, sizeof r.user_id, "%s", user);
    snprintf(r.agent, sizeof r.agent, "assistant");
    r.payload = (char *)(uintptr_t)payload;
    char err[256];
    if (pending_add(db, &r, err, sizeof err) != 0)
        fail_msg("pending_add: %s", err);
    if (turn != NULL)
        memcpy(turn, r.turn, UUID_STRLEN + 1);
}

/* Due rows come oldest first, only those whose next_ms has come, at most
 * max; done removes, failed counts and postpones; count and next_due
 * follow. */
static void test_pending_due_done_failed_and_counts(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(pending_next_due(f->db), -1);
    assert_int_equal(pending_count(f->db, NULL), 0);
    char t1[UUID_STRLEN + 1];
    pend_add(f->db, "acme", "u1", 50, "{\"n\":1}", t1);
    pend_add(f->db, "acme", "u1", 0, "{\"n\":2}", NULL);
    pend_add(f->db, "beta", "u1", 10, "{\"n\":3}", NULL);
    pend_add(f->db, "acme", "u2", 500, "{\"n\":4}", NULL);
    assert_int_equal(pending_count(f->db, NULL), 4);
    assert_int_equal(pending_count(f->db, "acme"), 3);
    assert_int_equal(pending_count(f->db, "zeta"), 0);
    assert_int_equal(pending_next_due(f->db), 0);

    struct pending_row *rows = NULL;
    size_t n = 0;
    char err[256];
    assert_int_equal(pending_due(f->db, 100, 10, &rows, &n, err, sizeof err), 0);
    assert_int_equal(n, 3); /* n:4 is not due before 500 */
    assert_string_equal(rows[0].payload, "{\"n\":1}");
    assert_string_equal(rows[0].turn, t1);
    assert_string_equal(rows[0].tenant, "acme");
    assert_string_equal(rows[0].user_id, "u1");
    assert_string_equal(rows[0].agent, "assistant");
    assert_int_equal(rows[0].created_ms, 7);
    assert_int_equal(rows[0].next_ms, 50);
    assert_int_equal(rows[0].attempts, 0);
    assert_string_equal(rows[1].payload, "{\"n\":2}");
    assert_string_equal(rows[2].payload, "{\"n\":3}");
    assert_true(rows[0].seq < rows[1].seq && rows[1].seq < rows[2].seq);
    int64_t seq1 = rows[0].seq, seq2 = rows[1].seq;
    pending_rows_free(rows, n);

    assert_int_equal(pending_due(f->db, 100, 2, &rows, &n, err, sizeof err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(rows[0].seq, seq1);
    pending_rows_free(rows, n);

    assert_int_equal(pending_done(f->db, seq2, err, sizeof err), 0);
    assert_int_equal(pending_failed(f->db, seq1, "store down", 1000, err, sizeof err), 0);
    assert_int_equal(pending_count(f->db, "acme"), 2);
    assert_int_equal(pending_next_due(f->db), 10);
    assert_int_equal(pending_due(f->db, 100, 10, &rows, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].tenant, "beta");
    pending_rows_free(rows, n);
    assert_int_equal(pending_due(f->db, 1000, 10, &rows, &n, err, sizeof err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(rows[0].seq, seq1);
    assert_int_equal(rows[0].attempts, 1);
    assert_int_equal(rows[0].next_ms, 1000);
    pending_rows_free(rows, n);
    assert_int_equal(
        raw_int(f->db, "SELECT count(*) FROM pending_memories WHERE last_error = 'store down'"), 1);

    /* A long error is kept to a bounded prefix. */
    char *longerr = malloc(100001);
    assert_non_null(longerr);
    memset(longerr, 'e', 100000);
    longerr[100000] = '\0';
    assert_int_equal(pending_failed(f->db, seq1, longerr, 2000, err, sizeof err), 0);
    free(longerr);
    long long kept = raw_int(f->db, "SELECT max(length(last_error)) FROM pending_memories");
    assert_true(kept > 0 && kept <= 4096);
    assert_int_equal(raw_int(f->db, "SELECT max(attempts) FROM pending_memories"), 2);
}

/* A turn's row is found by its turn id with every field, whatever its
 * next_ms; once done it is gone (1), and another turn's id finds nothing. */
static void test_pending_get_turn_finds_the_row_of_a_turn(void **state)
{
    struct fixture *f = *state;
    char t1[UUID_STRLEN + 1], t2[UUID_STRLEN + 1], err[256];
    pend_add(f->db, "acme", "u1", 999999, "{\"v\":1}", t1);
    pend_add(f->db, "beta", "u2", 0, "{\"v\":2}", t2);
    struct pending_row r;
    assert_int_equal(pending_get_turn(f->db, t1, &r, err, sizeof err), 0);
    assert_string_equal(r.turn, t1);
    assert_string_equal(r.tenant, "acme");
    assert_string_equal(r.user_id, "u1");
    assert_string_equal(r.payload, "{\"v\":1}");
    assert_int_equal(r.next_ms, 999999);
    assert_int_equal(pending_done(f->db, r.seq, err, sizeof err), 0);
    xfree(r.payload);
    assert_int_equal(pending_get_turn(f->db, t1, &r, err, sizeof err), 1);
    assert_null(r.payload);
    assert_int_equal(pending_get_turn(f->db, t2, &r, err, sizeof err), 0);
    assert_string_equal(r.tenant, "beta");
    xfree(r.payload);
}

/* A second add for a turn already waiting keeps the first row as it was. */
static void test_pending_add_keeps_the_existing_row_of_a_turn(void **state)
{
    struct fixture *f = *state;
    char t[UUID_STRLEN + 1], err[256];
    pend_add(f->db, "acme", "u1", 0, "{\"v\":\"first\"}", t);
    struct pending_row r = {.created_ms = 9, .next_ms = 0};
    memcpy(r.turn, t, sizeof r.turn);
    snprintf(r.tenant, sizeof r.tenant, "acme");
    snprintf(r.user_id, sizeof r.user_id, "u1");
    snprintf(r.agent, sizeof r.agent, "assistant");
    r.payload = (char *)(uintptr_t) "{\"v\":\"second\"}";
    assert_int_equal(pending_add(f->db, &r, err, sizeof err), 0);
    assert_int_equal(pending_count(f->db, NULL), 1);
    struct pending_row *rows = NULL;
    size_t n = 0;
    assert_int_equal(pending_due(f->db, 0, 10, &rows, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].payload, "{\"v\":\"first\"}");
    assert_int_equal(rows[0].created_ms, 7);
    pending_rows_free(rows, n);

    /* Bad ids and a missing payload are refused. */
    snprintf(r.turn, sizeof r.turn, "not-a-uuid");
    assert_int_equal(pending_add(f->db, &r, err, sizeof err), -1);
    uuid7_new(r.turn);
    snprintf(r.tenant, sizeof r.tenant, "a/b");
    assert_int_equal(pending_add(f->db, &r, err, sizeof err), -1);
    snprintf(r.tenant, sizeof r.tenant, "acme");
    r.payload = NULL;
    assert_int_equal(pending_add(f->db, &r, err, sizeof err), -1);
    assert_int_equal(pending_count(f->db, NULL), 1);
}

/* Purge by user, then by tenant, leaves other users and tenants. */
static void test_pending_purge_by_user_and_by_tenant(void **state)
{
    struct fixture *f = *state;
    pend_add(f->db, "acme", "u1", 0, "{}", NULL);
    pend_add(f->db, "acme", "u1", 0, "{}", NULL);
    pend_add(f->db, "acme", "u2", 0, "{}", NULL);
    pend_add(f->db, "beta", "u1", 0, "{}", NULL);
    size_t removed = 0;
    char err[256];
    assert_int_equal(pending_purge(f->db, "acme", "u1", &removed, err, sizeof err), 0);
    assert_int_equal(removed, 2);
    assert_int_equal(pending_count(f->db, "acme"), 1);
    assert_int_equal(pending_purge(f->db, "acme", NULL, &removed, err, sizeof err), 0);
    assert_int_equal(removed, 1);
    assert_int_equal(pending_count(f->db, "acme"), 0);
    assert_int_equal(pending_count(f->db, "beta"), 1);
}

/* --- transactions ------------------------------------------------------- */

/* Rows written by all three modules inside the caller's transaction vanish
 * when it rolls back, so they never begin or commit one of their own. */
static void test_writes_inside_a_rolled_back_transaction_vanish(void **state)
{
    struct fixture *f = *state;
    char err[256], id[MC_UUID_STRLEN + 1];
    assert_int_equal(db_begin(f->db, err, sizeof err), 0);
    hist_add(f->db, "acme", "u1", "add", 1, NULL, NULL);
    conv_new(f->db, "acme", "u1", "q", 1, id);
    conv_add(f->db, id, "q", "a", 2);
    pend_add(f->db, "acme", "u1", 0, "{}", NULL);
    assert_int_equal(pending_count(f->db, NULL), 1);
    db_rollback(f->db);
    assert_int_equal(raw_int(f->db, "SELECT count(*) FROM memory_history"), 0);
    assert_int_equal(raw_int(f->db, "SELECT count(*) FROM conversations"), 0);
    assert_int_equal(raw_int(f->db, "SELECT count(*) FROM conversation_messages"), 0);
    assert_int_equal(pending_count(f->db, NULL), 0);

    /* The same writes committed stay. */
    assert_int_equal(db_begin(f->db, err, sizeof err), 0);
    conv_new(f->db, "acme", "u1", "q", 1, id);
    conv_add(f->db, id, "q", "a", 2);
    assert_int_equal(db_commit(f->db, err, sizeof err), 0);
    assert_int_equal(raw_int(f->db, "SELECT count(*) FROM conversation_messages"), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_memhist_rows_round_trip_newest_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memhist_list_pages_with_before_and_limit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_memhist_refuses_invalid_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memhist_purge_by_user_and_by_tenant, setup, teardown),
        cmocka_unit_test_setup_teardown(test_convstore_create_and_get_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_convstore_title_is_cut_on_a_character_boundary, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_convstore_messages_in_order_and_last_n, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_convstore_append_refuses_missing_conversation, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_convstore_large_messages_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_convstore_isolates_tenants, setup, teardown),
        cmocka_unit_test_setup_teardown(test_convstore_list_order_user_and_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_convstore_purge_by_user_and_by_tenant, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pending_due_done_failed_and_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_get_turn_finds_the_row_of_a_turn, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pending_add_keeps_the_existing_row_of_a_turn, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pending_purge_by_user_and_by_tenant, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writes_inside_a_rolled_back_transaction_vanish, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
