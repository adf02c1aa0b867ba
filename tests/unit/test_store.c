/*
 * Tests of the data file (store/db.c, store/schema.c, store/metrics.c):
 * what a new memchat.db looks like, forward migrations, concurrent opens,
 * and above all that a damaged, foreign or newer file is reported and left
 * byte for byte as it was. Setup and inspection use sqlite3 directly, so
 * the checks do not rely on the code under test.
 */
#include "testutil.h"

#include <math.h>
#include <pthread.h>

#include <sqlite3.h>

#include "memchat/event.h"
#include "store/db.h"
#include "store/metrics.h"

struct fixture {
    char *dir;
    char *path; /* dir/memchat.db, not created */
    char wal[4200], shm[4200];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->dir = tu_mkdtemp();
    f->path = malloc(strlen(f->dir) + sizeof "/memchat.db");
    assert_non_null(f->path);
    snprintf(f->path, strlen(f->dir) + sizeof "/memchat.db", "%s/memchat.db", f->dir);
    snprintf(f->wal, sizeof f->wal, "%s-wal", f->path);
    snprintf(f->shm, sizeof f->shm, "%s-shm", f->path);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    tu_rmtree(f->dir);
    free(f->dir);
    free(f->path);
    free(f);
    return 0;
}

/* --- helpers: raw sqlite3 and file bytes --------------------------------- */

static sqlite3 *raw_open(const char *path)
{
    sqlite3 *c = NULL;
    assert_int_equal(sqlite3_open_v2(path, &c, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
                     SQLITE_OK);
    return c;
}

static void raw_exec_on(sqlite3 *c, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(c, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fail_msg("%s: %s", sql, msg != NULL ? msg : "?");
}

static void raw_exec(const char *path, const char *sql)
{
    sqlite3 *c = raw_open(path);
    raw_exec_on(c, sql);
    assert_int_equal(sqlite3_close(c), SQLITE_OK);
}

static long long raw_int_on(sqlite3 *c, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(c));
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    long long v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static long long raw_int(const char *path, const char *sql)
{
    sqlite3 *c = raw_open(path);
    long long v = raw_int_on(c, sql);
    assert_int_equal(sqlite3_close(c), SQLITE_OK);
    return v;
}

/* The text result of sql into out. */
static void raw_text(const char *path, const char *sql, char *out, size_t outlen)
{
    sqlite3 *c = raw_open(path);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(c, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    const unsigned char *s = sqlite3_column_text(st, 0);
    snprintf(out, outlen, "%s", s != NULL ? (const char *)s : "(null)");
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_close(c), SQLITE_OK);
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static long file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (long)st.st_size;
}

/* Writes n bytes to path (created or truncated). */
static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(p, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);
}

/* Overwrites n bytes at off with byte b. */
static void damage(const char *path, long off, size_t n, unsigned char b)
{
    unsigned char junk[64];
    assert_true(n <= sizeof junk);
    memset(junk, b, n);
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, junk, n, off), (ssize_t)n);
    assert_int_equal(close(fd), 0);
}

/* A snapshot of a file's bytes, compared after the code under test ran. */
struct snap {
    char *data;
    size_t len;
};

static struct snap snap_take(const char *path)
{
    struct snap s;
    s.data = tu_read_file(path, &s.len);
    assert_non_null(s.data);
    return s;
}

/* Asserts path still holds exactly the snapshot's bytes; frees it. */
static void snap_assert_same(struct snap *s, const char *path)
{
    size_t len = 0;
    char *now = tu_read_file(path, &len);
    assert_non_null(now);
    assert_int_equal(len, s->len);
    assert_memory_equal(now, s->data, len);
    free(now);
    free(s->data);
    s->data = NULL;
}

/* A memchat file at the latest schema, closed, so its WAL is checkpointed
 * into the main file and removed. */
static void make_memchat_db(const char *path, size_t nmigrations)
{
    enum db_error why;
    char err[512];
    struct db *db = db_open_with(path, db_migrations, nmigrations, &why, err, sizeof err);
    if (db == NULL)
        fail_msg("db_open: %s", err);
    db_close(db);
    /* memchat keeps its WAL across runs (no checkpoint on close); the damage
     * tests want every page in the main file, so checkpoint it there. */
    raw_exec(path, "PRAGMA wal_checkpoint(TRUNCATE)");
}

/* Expects db_open to fail with want; returns nothing, checks the message
 * names the file. */
static void expect_open_fails(const char *path, enum db_error want, char *err, size_t errlen)
{
    enum db_error why = DB_OK;
    struct db *db = db_open(path, &why, err, errlen);
    if (db != NULL) {
        db_close(db);
        fail_msg("db_open of %s succeeded, expected error %d", path, (int)want);
    }
    if (why != want)
        fail_msg("db_open: error %d (%s), expected %d", (int)why, err, (int)want);
    assert_non_null(strstr(err, path));
}

/* Deterministic noise (xorshift32) so a failure reproduces. */
static void fill_noise(unsigned char *p, size_t n, uint32_t seed)
{
    uint32_t x = seed;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (unsigned char)x;
    }
}

/* --- a new file ---------------------------------------------------------- */

/* A new file is memchat's: WAL (persistent, so seen by another connection),
 * synchronous=FULL and foreign keys on the handle, the application id, every
 * migration applied and recorded once, and both tables present. */
static void a_new_file_gets_wal_full_sync_app_id_and_the_latest_schema(void **state)
{
    struct fixture *f = *state;
    enum db_error why = DB_ERR_IO;
    char err[512] = "";
    struct db *db = db_open(f->path, &why, err, sizeof err);
    assert_non_null(db);
    assert_int_equal(why, DB_OK);
    assert_string_equal(db_path(db), f->path);
    assert_true(db_migrations_count >= 2);
    assert_int_equal(db_schema_version(db), (int)db_migrations_count);
    assert_int_equal(raw_int_on(db_handle(db), "PRAGMA synchronous"), 2);
    assert_int_equal(raw_int_on(db_handle(db), "PRAGMA foreign_keys"), 1);

    char mode[32];
    raw_text(f->path, "PRAGMA journal_mode", mode, sizeof mode);
    assert_string_equal(mode, "wal");
    assert_int_equal(raw_int(f->path, "PRAGMA application_id"), DB_APPLICATION_ID);
    assert_int_equal(raw_int(f->path, "SELECT max(version) FROM schema_version"),
                     (long long)db_migrations_count);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM schema_version"),
                     (long long)db_migrations_count);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                                      " AND name IN ('turn_metrics', 'settings')"),
                     2);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM sqlite_master WHERE type = 'index'"
                                      " AND name = 'turn_metrics_tenant_ts'"),
                     1);
    char name[64];
    raw_text(f->path, "SELECT name FROM schema_version WHERE version = 1", name, sizeof name);
    assert_string_equal(name, db_migrations[0].name);
    db_close(db);
}

/* Every stage of MC_STAGE_LIST has its lat_<stage> REAL column, so adding a
 * stage without a migration fails here. */
static void every_stage_has_a_latency_column(void **state)
{
    struct fixture *f = *state;
    make_memchat_db(f->path, db_migrations_count);
    sqlite3 *c = raw_open(f->path);
    for (int s = 0; s < MC_STAGE__COUNT; s++) {
        char sql[256];
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM pragma_table_info('turn_metrics')"
                 " WHERE name = 'lat_%s' AND type = 'REAL'",
                 mc_stage_name((enum mc_stage)s));
        assert_int_equal(raw_int_on(c, sql), 1);
    }
    assert_int_equal(sqlite3_close(c), SQLITE_OK);
}

/* Opening an up-to-date file changes nothing in its history: the
 * schema_version rows (with their applied_at) are the same after reopening,
 * and the version is still the last one. */
static void reopening_an_up_to_date_file_is_idempotent(void **state)
{
    struct fixture *f = *state;
    make_memchat_db(f->path, db_migrations_count);
    raw_exec(f->path, "UPDATE schema_version SET applied_at = 1234 WHERE version = 1");
    for (int i = 0; i < 2; i++) {
        enum db_error why;
        char err[512];
        struct db *db = db_open(f->path, &why, err, sizeof err);
        assert_non_null(db);
        assert_int_equal(db_schema_version(db), (int)db_migrations_count);
        db_close(db);
    }
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM schema_version"),
                     (long long)db_migrations_count);
    assert_int_equal(raw_int(f->path, "SELECT applied_at FROM schema_version WHERE version = 1"),
                     1234);
}

/* --- migrations ---------------------------------------------------------- */

static struct turn_metrics sample_turn(const char *turn)
{
    struct turn_metrics m;
    memset(&m, 0, sizeof m);
    m.turn = turn;
    m.ts_ms = 1700000000123LL;
    m.tenant = "acme";
    m.user = "ana";
    m.agent = "support";
    m.provider = "offline";
    m.model = "echo-1";
    m.memory = true;
    for (int s = 0; s < MC_STAGE__COUNT; s++)
        m.latency_ms[s] = 0.5 + s;
    m.status = "ok";
    m.prompt_tokens = 120;
    m.completion_tokens = 30;
    m.cost_usd = 0.0125;
    return m;
}

/* A file at version 1 (the first migration only) is taken to version 2 by
 * a build that knows both, and its rows survive. */
static void forward_migration_from_v1_to_v2_keeps_the_rows(void **state)
{
    struct fixture *f = *state;
    enum db_error why;
    char err[512];
    struct db *db = db_open_with(f->path, db_migrations, 1, &why, err, sizeof err);
    assert_non_null(db);
    assert_int_equal(db_schema_version(db), 1);
    db_close(db);
    /* A row as version 1's code wrote it (today's insert names later
     * columns). */
    raw_exec(f->path, "INSERT INTO turn_metrics (turn, ts_ms, tenant, user_id, agent, memory,"
                      " status) VALUES ('0190a0b0-0000-7000-8000-000000000001', 1, 'acme',"
                      " 'alice', 'assistant', 1, 'ok')");
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM sqlite_master WHERE name = 'settings'"),
                     0);

    db = db_open_with(f->path, db_migrations, 2, &why, err, sizeof err);
    assert_non_null(db);
    assert_int_equal(db_schema_version(db), 2);
    db_close(db);
    char tenant[64];
    raw_text(f->path, "SELECT tenant FROM turn_metrics", tenant, sizeof tenant);
    assert_string_equal(tenant, "acme");
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM sqlite_master WHERE name = 'settings'"),
                     1);
    assert_int_equal(raw_int(f->path, "SELECT max(version) FROM schema_version"), 2);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM turn_metrics"), 1);
}

/* A migration that fails half-way is rolled back whole: the table its first
 * statement created is gone, no schema_version row was added, the error
 * names the migration, and the file still opens with a good list. */
static void a_failing_migration_rolls_back_and_leaves_the_previous_version(void **state)
{
    struct fixture *f = *state;
    const struct db_migration broken[] = {
        db_migrations[0],
        {2, "half done", "CREATE TABLE half_done (x INTEGER); THIS IS NOT SQL;"},
    };
    enum db_error why = DB_OK;
    char err[512] = "";
    struct db *db = db_open_with(f->path, broken, 2, &why, err, sizeof err);
    assert_null(db);
    assert_int_equal(why, DB_ERR_MIGRATE);
    assert_non_null(strstr(err, "migration 2 \"half done\""));
    assert_non_null(strstr(err, "syntax error"));
    assert_non_null(strstr(err, f->path));

    assert_int_equal(raw_int(f->path, "SELECT max(version) FROM schema_version"), 1);
    assert_int_equal(
        raw_int(f->path, "SELECT count(*) FROM sqlite_master WHERE name = 'half_done'"), 0);
    assert_int_equal(
        raw_int(f->path, "SELECT count(*) FROM sqlite_master WHERE name = 'turn_metrics'"), 1);

    db = db_open(f->path, &why, err, sizeof err);
    assert_non_null(db);
    assert_int_equal(db_schema_version(db), (int)db_migrations_count);
    db_close(db);
}

/* A file written by a newer memchat (schema 99, whose row still lives only
 * in the WAL because the writer did not checkpoint) is refused as NEWER, and
 * neither the main file nor the WAL change: memchat did not checkpoint it. */
static void a_newer_file_is_refused_and_left_untouched(void **state)
{
    struct fixture *f = *state;
    make_memchat_db(f->path, db_migrations_count);
    sqlite3 *c = raw_open(f->path);
    assert_int_equal(sqlite3_db_config(c, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL),
                     SQLITE_OK);
    raw_exec_on(c, "INSERT INTO schema_version VALUES (99, 'future', 0)");
    assert_int_equal(sqlite3_close(c), SQLITE_OK);
    assert_true(file_size(f->wal) > 0);
    struct snap main_before = snap_take(f->path), wal_before = snap_take(f->wal);

    char err[512];
    expect_open_fails(f->path, DB_ERR_NEWER, err, sizeof err);
    assert_non_null(strstr(err, "schema 99"));
    assert_non_null(strstr(err, "upgrade memchat"));
    snap_assert_same(&main_before, f->path);
    snap_assert_same(&wal_before, f->wal);

    /* The history is intact for the newer memchat. */
    assert_int_equal(raw_int(f->path, "SELECT max(version) FROM schema_version"), 99);
}

/* A file whose recorded names differ from this build's (another build's
 * version 2) is not taken as up to date. */
static void a_file_from_a_diverging_build_is_refused(void **state)
{
    struct fixture *f = *state;
    make_memchat_db(f->path, 1);
    raw_exec(f->path, "INSERT INTO schema_version VALUES (2, 'something else', 0)");
    struct snap before = snap_take(f->path);
    char err[512];
    expect_open_fails(f->path, DB_ERR_FOREIGN, err, sizeof err);
    assert_non_null(strstr(err, "something else"));
    snap_assert_same(&before, f->path);
}

/* A schema_version history that does not count 1, 2, ... is damage. */
static void a_schema_history_not_counting_from_one_is_corrupt(void **state)
{
    struct fixture *f = *state;
    make_memchat_db(f->path, 1);
    raw_exec(f->path, "UPDATE schema_version SET version = 0 WHERE version = 1");
    char err[512];
    expect_open_fails(f->path, DB_ERR_CORRUPT, err, sizeof err);
    assert_non_null(strstr(err, "inconsistent schema_version"));
}

/* --- files that are not memchat's ---------------------------------------- */

/* Random bytes and a text file are not SQLite: CORRUPT, byte-identical, and
 * no journal or WAL appears next to them (SQLite never opened them). */
static void garbage_and_text_files_are_corrupt_and_untouched(void **state)
{
    struct fixture *f = *state;
    unsigned char noise[8192];
    fill_noise(noise, sizeof noise, 0x9e3779b9u);
    const char *text = "this is my memchat.db, said nobody\n";
    for (int kind = 0; kind < 2; kind++) {
        if (kind == 0)
            write_bytes(f->path, noise, sizeof noise);
        else
            write_bytes(f->path, text, strlen(text));
        struct snap before = snap_take(f->path);
        char err[512];
        expect_open_fails(f->path, DB_ERR_CORRUPT, err, sizeof err);
        assert_non_null(strstr(err, "is not an SQLite database (damaged or foreign)"));
        assert_non_null(strstr(err, "untouched"));
        snap_assert_same(&before, f->path);
        assert_false(exists(f->wal));
        assert_false(exists(f->shm));
    }
}

/* Copies src to dst. */
static void copy_file(const char *src, const char *dst)
{
    size_t len = 0;
    char *data = tu_read_file(src, &len);
    assert_non_null(data);
    write_bytes(dst, data, len);
    free(data);
}

/* A garbage file next to a leftover rollback journal (a crash of whatever
 * wrote it) must not be "recovered": SQLite would play the journal's pages
 * into any file it opens. memchat reads the magic itself first, so SQLite
 * never opens the file, and both files stay as they were. */
static void a_garbage_file_with_a_hot_journal_is_not_rolled_back_into(void **state)
{
    struct fixture *f = *state;
    char src[4300], src_journal[4400], journal[4400];
    snprintf(src, sizeof src, "%s/other.db", f->dir);
    snprintf(src_journal, sizeof src_journal, "%s-journal", src);
    snprintf(journal, sizeof journal, "%s-journal", f->path);

    /* A transaction larger than the page cache spills into the file, so the
     * journal is hot while the transaction is open: copy it then. */
    sqlite3 *c = raw_open(src);
    raw_exec_on(c, "PRAGMA journal_mode = DELETE; PRAGMA cache_size = 2;"
                   "CREATE TABLE t (x BLOB);"
                   "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 64)"
                   " INSERT INTO t SELECT randomblob(900) FROM n;"
                   "BEGIN; UPDATE t SET x = randomblob(900);");
    assert_true(file_size(src_journal) > 0);
    copy_file(src_journal, journal);
    raw_exec_on(c, "ROLLBACK");
    assert_int_equal(sqlite3_close(c), SQLITE_OK);

    unsigned char noise[64 * 1024];
    fill_noise(noise, sizeof noise, 77u);
    write_bytes(f->path, noise, sizeof noise);
    struct snap before = snap_take(f->path), journal_before = snap_take(journal);
    char err[512];
    expect_open_fails(f->path, DB_ERR_CORRUPT, err, sizeof err);
    snap_assert_same(&before, f->path);
    snap_assert_same(&journal_before, journal);
}

/* The right magic followed by noise reaches SQLite, which must call it
 * damaged; the file is not changed. */
static void the_sqlite_magic_followed_by_noise_is_corrupt_and_untouched(void **state)
{
    struct fixture *f = *state;
    unsigned char bytes[8192];
    fill_noise(bytes, sizeof bytes, 12345u);
    memcpy(bytes, "SQLite format 3", 16);
    write_bytes(f->path, bytes, sizeof bytes);
    struct snap before = snap_take(f->path);
    char err[512];
    expect_open_fails(f->path, DB_ERR_CORRUPT, err, sizeof err);
    snap_assert_same(&before, f->path);
}

/* An empty file (left by a crash before the first write, or by touch) is a
 * new database, not damage. */
static void an_empty_file_is_a_new_database(void **state)
{
    struct fixture *f = *state;
    write_bytes(f->path, "", 0);
    enum db_error why;
    char err[512];
    struct db *db = db_open(f->path, &why, err, sizeof err);
    assert_non_null(db);
    assert_int_equal(db_schema_version(db), (int)db_migrations_count);
    db_close(db);
    assert_int_equal(raw_int(f->path, "PRAGMA application_id"), DB_APPLICATION_ID);
}

/* Another program's database (tables, no application id) is FOREIGN and
 * unchanged; being in rollback mode, it gains no WAL either. */
static void a_foreign_database_with_tables_is_refused_and_untouched(void **state)
{
    struct fixture *f = *state;
    raw_exec(f->path, "CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('mine');");
    struct snap before = snap_take(f->path);
    char err[512];
    expect_open_fails(f->path, DB_ERR_FOREIGN, err, sizeof err);
    assert_non_null(strstr(err, "not memchat's"));
    snap_assert_same(&before, f->path);
    assert_false(exists(f->wal));
    char mode[32];
    raw_text(f->path, "PRAGMA journal_mode", mode, sizeof mode);
    assert_string_equal(mode, "delete");
}

/* A database with another application id is FOREIGN even with no tables,
 * and the message gives both ids. */
static void a_database_with_another_application_id_is_refused_and_untouched(void **state)
{
    struct fixture *f = *state;
    raw_exec(f->path, "PRAGMA application_id = 1234");
    struct snap before = snap_take(f->path);
    char err[512];
    expect_open_fails(f->path, DB_ERR_FOREIGN, err, sizeof err);
    assert_non_null(strstr(err, "0x000004d2"));
    assert_non_null(strstr(err, "0x4d434854"));
    snap_assert_same(&before, f->path);
}

/* A foreign WAL database whose last writer left committed pages in the WAL:
 * memchat must not checkpoint them into the main file on its way out. */
static void a_foreign_wal_database_is_not_checkpointed(void **state)
{
    struct fixture *f = *state;
    sqlite3 *c = raw_open(f->path);
    raw_exec_on(c, "PRAGMA journal_mode = WAL; CREATE TABLE t (x);");
    assert_int_equal(sqlite3_db_config(c, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL),
                     SQLITE_OK);
    raw_exec_on(c, "PRAGMA wal_autocheckpoint = 0; INSERT INTO t VALUES (1), (2);");
    assert_int_equal(sqlite3_close(c), SQLITE_OK);
    assert_true(file_size(f->wal) > 0);
    struct snap main_before = snap_take(f->path), wal_before = snap_take(f->wal);
    char err[512];
    expect_open_fails(f->path, DB_ERR_FOREIGN, err, sizeof err);
    snap_assert_same(&main_before, f->path);
    snap_assert_same(&wal_before, f->wal);
}

/* memchat's connections keep the WAL when they close (no checkpoint, no
 * delete: every commit is already durable there), and what was committed
 * is read back by the next open. */
static void closing_keeps_the_wal_and_loses_nothing(void **state)
{
    struct fixture *f = *state;
    enum db_error why;
    char err[512];
    struct db *db = db_open(f->path, &why, err, sizeof err);
    assert_non_null(db);
    struct turn_metrics m = sample_turn("0190a0b0-0000-7000-8000-0000000000ee");
    assert_int_equal(metrics_insert_turn(db, &m, err, sizeof err), 0);
    db_close(db);
    assert_true(exists(f->wal));
    assert_true(file_size(f->wal) > 0);
    db = db_open(f->path, &why, err, sizeof err);
    assert_non_null(db);
    struct metrics_row row;
    assert_int_equal(metrics_get_turn(db, m.turn, &row, err, sizeof err), 0);
    assert_string_equal(row.tenant, m.tenant);
    metrics_row_free(&row);
    db_close(db);
}

/* --- damaged memchat files ----------------------------------------------- */

/* A memchat file cut to half its size is an error (SQLite compares the page
 * count in the header with the file size), never a success. */
static void a_truncated_file_is_corrupt(void **state)
{
    struct fixture *f = *state;
    make_memchat_db(f->path, db_migrations_count);
    assert_false(exists(f->wal)); /* everything is in the main file */
    long size = file_size(f->path);
    assert_true(size >= 4 * 4096);
    assert_int_equal(truncate(f->path, size / 2), 0);
    struct snap before = snap_take(f->path);
    char err[512];
    expect_open_fails(f->path, DB_ERR_CORRUPT, err, sizeof err);
    assert_non_null(strstr(err, "damaged"));
    snap_assert_same(&before, f->path);
}

/* The page number and page size of table's root page in a closed file. */
static long root_page_offset(const char *path, const char *table)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT rootpage FROM sqlite_master WHERE name = '%s'", table);
    long long page = raw_int(path, sql);
    long long page_size = raw_int(path, "PRAGMA page_size");
    assert_true(page >= 2);
    return (long)((page - 1) * page_size);
}

/* A damaged b-tree header on the page of schema_version (read at every
 * open) is caught at open. The bytes hit are the page's header, not its
 * middle: the middle of a page this small is unused space, which no check
 * can see and no query reads. */
static void a_damaged_schema_version_page_is_caught_at_open(void **state)
{
    struct fixture *f = *state;
    make_memchat_db(f->path, db_migrations_count);
    long off = root_page_offset(f->path, "schema_version");
    damage(f->path, off, 8, 0xee);
    struct snap before = snap_take(f->path);
    char err[512];
    expect_open_fails(f->path, DB_ERR_CORRUPT, err, sizeof err);
    snap_assert_same(&before, f->path);
}

/* Damage to sqlite_master (page 1's b-tree, after the 100-byte header) is
 * caught at open too. */
static void a_damaged_sqlite_master_is_caught_at_open(void **state)
{
    struct fixture *f = *state;
    make_memchat_db(f->path, db_migrations_count);
    damage(f->path, 100, 8, 0xee);
    struct snap before = snap_take(f->path);
    char err[512];
    expect_open_fails(f->path, DB_ERR_CORRUPT, err, sizeof err);
    snap_assert_same(&before, f->path);
}

/* Damage inside another table is not looked for at a plain open (that
 * would read the whole file per connection): the open succeeds but a query
 * touching the page fails. Before a migration writes, quick_check finds it
 * and the file is left as it was. */
static void a_damaged_table_page_is_caught_by_queries_and_before_migrating(void **state)
{
    struct fixture *f = *state;
    enum db_error why;
    char err[512];
    struct db *db = db_open_with(f->path, db_migrations, 1, &why, err, sizeof err);
    assert_non_null(db);
    db_close(db);
    raw_exec(f->path, "INSERT INTO turn_metrics (turn, ts_ms, tenant, user_id, agent, memory,"
                      " status) VALUES ('0190a0b0-0000-7000-8000-0000000000dd', 1, 'acme',"
                      " 'alice', 'assistant', 1, 'ok')");
    long off = root_page_offset(f->path, "turn_metrics");
    damage(f->path, off, 8, 0xee);

    /* The lookup goes through the primary key's index to the table page. */
    db = db_open_with(f->path, db_migrations, 1, &why, err, sizeof err);
    assert_non_null(db);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db_handle(db),
                                        "SELECT tenant FROM turn_metrics WHERE turn ="
                                        " '0190a0b0-0000-7000-8000-0000000000dd'",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_CORRUPT);
    assert_non_null(strstr(sqlite3_errmsg(db_handle(db)), "malformed"));
    sqlite3_finalize(st);
    db_close(db);

    struct snap before = snap_take(f->path);
    expect_open_fails(f->path, DB_ERR_CORRUPT, err, sizeof err);
    assert_non_null(strstr(err, "quick_check"));
    snap_assert_same(&before, f->path);
    assert_int_equal(raw_int(f->path, "SELECT max(version) FROM schema_version"), 1);
}

/* --- where the file cannot be --------------------------------------------- */

/* A missing directory and a directory at the path are I/O errors naming the
 * path; nothing is created. */
static void an_unusable_path_is_an_io_error(void **state)
{
    struct fixture *f = *state;
    char path[4300];
    snprintf(path, sizeof path, "%s/missing/memchat.db", f->dir);
    char err[512];
    enum db_error why = DB_OK;
    assert_null(db_open(path, &why, err, sizeof err));
    assert_int_equal(why, DB_ERR_IO);
    assert_non_null(strstr(err, path));

    assert_int_equal(mkdir(f->path, 0700), 0);
    expect_open_fails(f->path, DB_ERR_IO, err, sizeof err);
    assert_non_null(strstr(err, "not a regular file"));
}

/* --- two connections at once --------------------------------------------- */

struct racer {
    const char *path;
    pthread_barrier_t *start;
    struct db *db;
    char err[512];
};

static void *racer_run(void *arg)
{
    struct racer *r = arg;
    enum db_error why;
    pthread_barrier_wait(r->start);
    r->db = db_open(r->path, &why, r->err, sizeof r->err);
    return NULL;
}

#define RACERS 3

/* Several threads (the engine opens a connection per worker) opening the
 * same new file at the same moment all succeed, and each migration is
 * recorded once: the losers of each race find the work done inside their
 * BEGIN IMMEDIATE, and retry the WAL switch SQLite refuses them while the
 * winner makes it. Repeated on fresh files to give the interleavings a
 * chance; without the re-checks this fails within a few rounds. */
static void threads_opening_a_new_file_at_once_all_succeed(void **state)
{
    struct fixture *f = *state;
    for (int round = 0; round < 100; round++) {
        char path[4300];
        snprintf(path, sizeof path, "%s/race-%d.db", f->dir, round);
        pthread_barrier_t start;
        assert_int_equal(pthread_barrier_init(&start, NULL, RACERS), 0);
        struct racer r[RACERS];
        pthread_t t[RACERS];
        for (int i = 0; i < RACERS; i++) {
            memset(&r[i], 0, sizeof r[i]);
            r[i].path = path;
            r[i].start = &start;
            assert_int_equal(pthread_create(&t[i], NULL, racer_run, &r[i]), 0);
        }
        for (int i = 0; i < RACERS; i++)
            assert_int_equal(pthread_join(t[i], NULL), 0);
        pthread_barrier_destroy(&start);
        for (int i = 0; i < RACERS; i++) {
            if (r[i].db == NULL)
                fail_msg("round %d, thread %d: %s", round, i, r[i].err);
            assert_int_equal(db_schema_version(r[i].db), (int)db_migrations_count);
        }
        assert_int_equal(raw_int(path, "SELECT count(*) FROM schema_version"),
                         (long long)db_migrations_count);
        assert_int_equal(raw_int(path, "PRAGMA application_id"), DB_APPLICATION_ID);
        char mode[32];
        raw_text(path, "PRAGMA journal_mode", mode, sizeof mode);
        assert_string_equal(mode, "wal");
        for (int i = 0; i < RACERS; i++)
            db_close(r[i].db);
    }
}

/* --- metrics -------------------------------------------------------------- */

static struct db *open_fresh(const struct fixture *f)
{
    enum db_error why;
    char err[512];
    struct db *db = db_open(f->path, &why, err, sizeof err);
    if (db == NULL)
        fail_msg("db_open: %s", err);
    return db;
}

/* The rollout figures' fields (migration 5) read back as written: the
 * rule, the recalled count with its mean relevance (negative allowed: a
 * remote embedder's cosine), the conversation and the agent step. */
static void metrics_round_trip_of_the_rollout_fields(void **state)
{
    struct fixture *f = *state;
    struct db *db = open_fresh(f);
    char err[512];
    struct turn_metrics m = sample_turn("0190a0b0-0000-7000-8000-00000000001a");
    m.rollout = "percent";
    m.recalled = 3;
    m.relevance = -0.25;
    m.conversation = "0190a0b0-0000-7000-8000-0000000000c1";
    m.step = 2;
    assert_int_equal(metrics_insert_turn(db, &m, err, sizeof err), 0);
    struct metrics_row row;
    assert_int_equal(metrics_get_turn(db, m.turn, &row, err, sizeof err), 0);
    assert_string_equal(row.rollout, "percent");
    assert_int_equal(row.recalled, 3);
    assert_true(row.relevance == -0.25);
    assert_string_equal(row.conversation, m.conversation);
    assert_int_equal(row.step, 2);
    metrics_row_free(&row);
    db_close(db);
}

/* A row reads back as written; negative or NaN latencies, -1 token counts,
 * a negative cost and a NULL provider are stored as SQL NULL and read back
 * as -1 / NULL; stored is NULL until set. */
static void metrics_round_trip_with_nulls(void **state)
{
    struct fixture *f = *state;
    struct db *db = open_fresh(f);
    char err[512];
    struct turn_metrics m = sample_turn("0190a0b0-0000-7000-8000-00000000000a");
    m.provider = NULL;
    m.memory = false;
    m.latency_ms[MC_STAGE_RETRIEVE] = -1;
    m.latency_ms[MC_STAGE_TOOLS] = NAN;
    m.completion_tokens = -1;
    m.cost_usd = -1;
    assert_int_equal(metrics_insert_turn(db, &m, err, sizeof err), 0);

    struct metrics_row row;
    assert_int_equal(metrics_get_turn(db, m.turn, &row, err, sizeof err), 0);
    assert_string_equal(row.turn, m.turn);
    assert_int_equal(row.ts_ms, m.ts_ms);
    assert_string_equal(row.tenant, "acme");
    assert_string_equal(row.user, "ana");
    assert_string_equal(row.agent, "support");
    assert_null(row.provider);
    assert_string_equal(row.model, "echo-1");
    assert_false(row.memory);
    for (int s = 0; s < MC_STAGE__COUNT; s++) {
        double want = (s == MC_STAGE_RETRIEVE || s == MC_STAGE_TOOLS) ? -1 : 0.5 + s;
        assert_true(row.latency_ms[s] == want);
    }
    assert_string_equal(row.status, "ok");
    assert_int_equal(row.prompt_tokens, 120);
    assert_int_equal(row.completion_tokens, -1);
    assert_true(row.cost_usd == -1);
    assert_int_equal(row.stored, -1);
    assert_true(row.store_latency_ms == -1);
    /* Migration 5's columns, unset: NULL, and no relevance without a
     * recalled memory even though the struct's 0.0 is a number. */
    assert_null(row.rollout);
    assert_null(row.conversation);
    assert_int_equal(row.recalled, 0);
    assert_true(isnan(row.relevance));
    assert_int_equal(row.step, 0);
    metrics_row_free(&row);
    assert_null(row.turn);
    metrics_row_free(NULL);

    sqlite3 *c = db_handle(db);
    assert_int_equal(raw_int_on(c, "SELECT (provider IS NULL) + (lat_retrieve IS NULL)"
                                   " + (lat_tools IS NULL) + (completion_tokens IS NULL)"
                                   " + (cost_usd IS NULL) + (stored IS NULL) FROM turn_metrics"),
                     6);
    assert_int_equal(raw_int_on(c, "SELECT memory FROM turn_metrics"), 0);

    /* A second sample with every field set reads back whole. */
    struct turn_metrics full = sample_turn("0190a0b0-0000-7000-8000-00000000000b");
    assert_int_equal(metrics_insert_turn(db, &full, err, sizeof err), 0);
    assert_int_equal(metrics_get_turn(db, full.turn, &row, err, sizeof err), 0);
    assert_string_equal(row.provider, "offline");
    assert_true(row.memory);
    assert_true(row.latency_ms[MC_STAGE_TOTAL] == 0.5 + MC_STAGE_TOTAL);
    assert_int_equal(row.completion_tokens, 30);
    assert_true(fabs(row.cost_usd - 0.0125) < 1e-12);
    metrics_row_free(&row);

    assert_int_equal(metrics_get_turn(db, "no-such-turn", &row, err, sizeof err), 1);
    assert_null(row.turn);
    db_close(db);
}

/* Inserting a turn twice or without a required field is an error naming
 * the operation, not a silent overwrite. */
static void metrics_insert_rejects_duplicates_and_missing_fields(void **state)
{
    struct fixture *f = *state;
    struct db *db = open_fresh(f);
    char err[512];
    struct turn_metrics m = sample_turn("0190a0b0-0000-7000-8000-00000000000c");
    assert_int_equal(metrics_insert_turn(db, &m, err, sizeof err), 0);
    m.status = "error:timeout";
    assert_int_equal(metrics_insert_turn(db, &m, err, sizeof err), -1);
    assert_non_null(strstr(err, "metrics_insert_turn"));
    assert_non_null(strstr(err, m.turn));
    assert_non_null(strstr(err, "UNIQUE"));

    struct turn_metrics bad = sample_turn("0190a0b0-0000-7000-8000-00000000000d");
    bad.tenant = NULL;
    assert_int_equal(metrics_insert_turn(db, &bad, err, sizeof err), -1);
    assert_non_null(strstr(err, "tenant"));
    assert_int_equal(raw_int_on(db_handle(db), "SELECT count(*) FROM turn_metrics"), 1);
    char status[64];
    db_close(db);
    raw_text(f->path, "SELECT status FROM turn_metrics", status, sizeof status);
    assert_string_equal(status, "ok");
}

/* metrics_set_store records stored/failed/skipped with the latency, says
 * when the turn has no row, and rejects a stored value outside -1..1. */
/* The insert records the store outcome in the same row: stored (1),
 * failed (0), or unknown (NULL, with its latency NULL too). */
static void metrics_insert_records_the_store_outcome(void **state)
{
    struct fixture *f = *state;
    struct db *db = open_fresh(f);
    char err[512];
    static const struct {
        const char *turn;
        enum metrics_store store;
        int stored;
        double ms;
    } cases[] = {
        {"0190a0b0-0000-7000-8000-0000000000a1", METRICS_STORE_OK, 1, 12.5},
        {"0190a0b0-0000-7000-8000-0000000000a2", METRICS_STORE_FAILED, 0, 3.0},
        {"0190a0b0-0000-7000-8000-0000000000a3", METRICS_STORE_UNKNOWN, -1, -1.0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct turn_metrics m = sample_turn(cases[i].turn);
        m.store = cases[i].store;
        m.store_ms = cases[i].store == METRICS_STORE_UNKNOWN ? 99.0 : cases[i].ms;
        assert_int_equal(metrics_insert_turn(db, &m, err, sizeof err), 0);
        struct metrics_row row;
        assert_int_equal(metrics_get_turn(db, m.turn, &row, err, sizeof err), 0);
        assert_int_equal(row.stored, cases[i].stored);
        assert_true(row.store_latency_ms == cases[i].ms);
        metrics_row_free(&row);
    }
    db_close(db);
}

static void metrics_set_store_updates_the_row(void **state)
{
    struct fixture *f = *state;
    struct db *db = open_fresh(f);
    char err[512];
    struct turn_metrics m = sample_turn("0190a0b0-0000-7000-8000-00000000000e");
    assert_int_equal(metrics_insert_turn(db, &m, err, sizeof err), 0);
    struct metrics_row row;

    assert_int_equal(metrics_set_store(db, m.turn, 1, 42.5, err, sizeof err), 0);
    assert_int_equal(metrics_get_turn(db, m.turn, &row, err, sizeof err), 0);
    assert_int_equal(row.stored, 1);
    assert_true(row.store_latency_ms == 42.5);
    metrics_row_free(&row);

    assert_int_equal(metrics_set_store(db, m.turn, 0, 7, err, sizeof err), 0);
    assert_int_equal(metrics_get_turn(db, m.turn, &row, err, sizeof err), 0);
    assert_int_equal(row.stored, 0);
    assert_true(row.store_latency_ms == 7);
    metrics_row_free(&row);

    assert_int_equal(metrics_set_store(db, m.turn, -1, -1, err, sizeof err), 0);
    assert_int_equal(metrics_get_turn(db, m.turn, &row, err, sizeof err), 0);
    assert_int_equal(row.stored, -1);
    assert_true(row.store_latency_ms == -1);
    metrics_row_free(&row);

    assert_int_equal(metrics_set_store(db, "no-such-turn", 1, 1, err, sizeof err), 1);
    assert_non_null(strstr(err, "no-such-turn has no row"));
    assert_int_equal(metrics_set_store(db, m.turn, 2, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "got 2"));
    db_close(db);
}

/* --- transactions --------------------------------------------------------- */

/* Rolled back work is gone, committed work stays; rollback without a
 * transaction and close of NULL do nothing; COMMIT without BEGIN is an
 * error naming the file. */
static void transactions_commit_and_roll_back(void **state)
{
    struct fixture *f = *state;
    struct db *db = open_fresh(f);
    char err[512];
    struct turn_metrics a = sample_turn("0190a0b0-0000-7000-8000-0000000000a1");
    struct turn_metrics b = sample_turn("0190a0b0-0000-7000-8000-0000000000b2");
    struct metrics_row row;

    assert_int_equal(db_begin(db, err, sizeof err), 0);
    assert_int_equal(metrics_insert_turn(db, &a, err, sizeof err), 0);
    db_rollback(db);
    assert_int_equal(metrics_get_turn(db, a.turn, &row, err, sizeof err), 1);

    assert_int_equal(db_begin(db, err, sizeof err), 0);
    assert_int_equal(metrics_insert_turn(db, &b, err, sizeof err), 0);
    assert_int_equal(db_commit(db, err, sizeof err), 0);
    db_rollback(db);
    assert_int_equal(metrics_get_turn(db, b.turn, &row, err, sizeof err), 0);
    metrics_row_free(&row);

    assert_int_equal(db_commit(db, err, sizeof err), -1);
    assert_non_null(strstr(err, f->path));
    db_close(db);
    db_close(NULL);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM turn_metrics"), 1);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(a_new_file_gets_wal_full_sync_app_id_and_the_latest_schema),
        T(every_stage_has_a_latency_column),
        T(reopening_an_up_to_date_file_is_idempotent),
        T(forward_migration_from_v1_to_v2_keeps_the_rows),
        T(a_failing_migration_rolls_back_and_leaves_the_previous_version),
        T(a_newer_file_is_refused_and_left_untouched),
        T(a_file_from_a_diverging_build_is_refused),
        T(a_schema_history_not_counting_from_one_is_corrupt),
        T(garbage_and_text_files_are_corrupt_and_untouched),
        T(a_garbage_file_with_a_hot_journal_is_not_rolled_back_into),
        T(the_sqlite_magic_followed_by_noise_is_corrupt_and_untouched),
        T(an_empty_file_is_a_new_database),
        T(a_foreign_database_with_tables_is_refused_and_untouched),
        T(a_database_with_another_application_id_is_refused_and_untouched),
        T(a_foreign_wal_database_is_not_checkpointed),
        T(closing_keeps_the_wal_and_loses_nothing),
        T(a_truncated_file_is_corrupt),
        T(a_damaged_schema_version_page_is_caught_at_open),
        T(a_damaged_sqlite_master_is_caught_at_open),
        T(a_damaged_table_page_is_caught_by_queries_and_before_migrating),
        T(an_unusable_path_is_an_io_error),
        T(threads_opening_a_new_file_at_once_all_succeed),
        T(metrics_round_trip_of_the_rollout_fields),
        T(metrics_round_trip_with_nulls),
        T(metrics_insert_rejects_duplicates_and_missing_fields),
        T(metrics_insert_records_the_store_outcome),
        T(metrics_set_store_updates_the_row),
        T(transactions_commit_and_roll_back),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
