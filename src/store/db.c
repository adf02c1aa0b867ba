/*
 * Opening memchat.db (DESIGN.md, "Contract: files"). The order of the steps
 * is the point of this file: everything that decides whether the file is
 * ours to change is done by reading only, and only then does memchat write
 * (the application id of a new file, WAL mode, migrations). So a damaged
 * file, another program's database, or a file written by a newer memchat is
 * reported and left byte for byte as it was:
 *
 *   1. the first 16 bytes are read with plain read(2) and must be SQLite's
 *      magic (an empty file is a new one), so SQLite never opens a file that
 *      is not a database (it would play a leftover journal into it);
 *   2. PRAGMA application_id and the list of tables tell memchat's file,
 *      a new (empty) database and a foreign one apart;
 *   3. the schema_version rows must be 1..N with this build's names, and N
 *      at most the last migration this build knows;
 *   4. only then: journal_mode=WAL, synchronous=FULL, foreign_keys=ON, and
 *      the missing migrations, each in its own BEGIN IMMEDIATE transaction
 *      together with its schema_version row.
 *
 * A refused file is closed without the checkpoint SQLite makes when the last
 * connection to a WAL file closes, so not even pages another program left
 * in its WAL reach the main file.
 *
 * Several connections may open the same file at once (the engine opens one
 * per worker, possibly from two threads): the new-file set-up and every
 * migration re-read the state inside BEGIN IMMEDIATE, so whichever
 * connection comes second finds the work done and does nothing; the switch
 * to WAL, which SQLite refuses outright to a connection that loses that
 * race, is retried within the busy timeout (db_configure).
 *
 * What is detected at open: a file that is not SQLite, a truncated file
 * (SQLite compares the page count in the header with the file size), damage
 * to page 1, to sqlite_master or to the schema_version table (all are read at
 * every open). Damage inside other tables is found by PRAGMA quick_check
 * before any migration writes to the file, and otherwise when a query reads
 * the damaged page (the query then fails with SQLITE_CORRUPT). A full check
 * on every open would cost a read of the whole file per connection, which
 * grows with the history kept; a damaged byte in the unused space of a page
 * is invisible to every check, and harmless.
 */
#include "config.h"

#include "store/db.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store/faultvfs.h"
#include "util/alloc.h"
#include "util/fileio.h"
#include "util/ident.h"
#include "util/msg.h"
#include "util/clock.h"

/* How long a connection waits for another one's write lock. Migrations and
 * the new-file set-up take milliseconds; a turn's insert less. */
#define DB_BUSY_TIMEOUT_MS 5000

#define DB_ADVICE_DAMAGED \
    "memchat left it untouched: move it aside to start a new data file, or restore a backup"
#define DB_ADVICE_FOREIGN \
    "memchat left it untouched: move it aside or set MEMCHAT_DATA_DIR to another directory"

struct db {
    sqlite3 *conn;
    char *path;
    int version;
};

/* Sets *why and the message; both may be absent. */
static void db_fail(enum db_error *why, enum db_error kind, char *err, size_t errlen,
                    const char *fmt, ...) MC_PRINTF(5, 6);

static void db_fail(enum db_error *why, enum db_error kind, char *err, size_t errlen,
                    const char *fmt, ...)
{
    if (why != NULL)
        *why = kind;
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
}

static bool db_rc_is_damage(int rc)
{
    return (rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB;
}

/* Reports a failed SQLite call during open: damage as DB_ERR_CORRUPT with
 * the advice, anything else (locked, I/O, permissions) as DB_ERR_IO. */
static void db_fail_sqlite(struct db *db, int rc, const char *what, enum db_error *why, char *err,
                           size_t errlen)
{
    if (db_rc_is_damage(rc)) {
        db_fail(why, DB_ERR_CORRUPT, err, errlen,
                "%s is damaged or not an SQLite database (%s: %s); " DB_ADVICE_DAMAGED, db->path,
                what, sqlite3_errmsg(db->conn));
        return;
    }
    int sys = sqlite3_system_errno(db->conn);
    db_fail(why, DB_ERR_IO, err, errlen, "cannot use %s: %s: %s%s%s", db->path, what,
            sqlite3_errmsg(db->conn), sys != 0 ? ": " : "", sys != 0 ? strerror(sys) : "");
}

/* Step 1: the file must be empty, absent, or start with SQLite's magic. Read
 * with plain read(2) so that SQLite never opens (and never journals into,
 * or "recovers") a file that is not a database. Returns 1 when the file does
 * not exist. */
static int db_check_magic(const char *path, enum db_error *why, char *err, size_t errlen)
{
    static const char magic[16] = "SQLite format 3";
    /* O_NONBLOCK: opening a FIFO planted at the path must not hang. */
    int fd = fileio_open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0);
    if (fd < 0) {
        if (errno == ENOENT)
            return 1;
        db_fail(why, DB_ERR_IO, err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        db_fail(why, DB_ERR_IO, err, errlen, "cannot open %s: fstat: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        db_fail(why, DB_ERR_IO, err, errlen,
                "cannot open %s: it is not a regular file (a directory or a device); "
                "memchat left it untouched",
                path);
        close(fd);
        return -1;
    }
    if (st.st_size == 0) {
        close(fd);
        return 0; /* an empty file is a new database to SQLite too */
    }
    char head[16];
    size_t got = 0;
    while (got < sizeof head) {
        ssize_t n = read(fd, head + got, sizeof head - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            db_fail(why, DB_ERR_IO, err, errlen, "cannot read %s: %s", path, strerror(errno));
            close(fd);
            return -1;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (got < sizeof head || memcmp(head, magic, sizeof magic) != 0) {
        db_fail(why, DB_ERR_CORRUPT, err, errlen,
                "%s is not an SQLite database (damaged or foreign); " DB_ADVICE_DAMAGED, path);
        return -1;
    }
    return 0;
}

/* Creates a missing data file empty and private (0600) before SQLite opens
 * it: SQLite would create it 0644, and its -wal and -shm files take the
 * main file's mode. A connection that loses the race to create it checks
 * the winner's file like any existing one. */
static int db_create_private(const char *path, enum db_error *why, char *err, size_t errlen)
{
    int fd = fileio_open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOCTTY | O_CLOEXEC, 0600);
    if (fd >= 0) {
        close(fd);
        return 0;
    }
    if (errno == EEXIST)
        return db_check_magic(path, why, err, errlen) < 0 ? -1 : 0;
    db_fail(why, DB_ERR_IO, err, errlen, "cannot create %s: %s", path, strerror(errno));
    return -1;
}

/* The single integer result of sql into *out. SQLite's result code. */
static int db_query_int(sqlite3 *conn, const char *sql, long long *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(conn, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        *out = 0;
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

/* What the file is, from step 2. */
enum db_kind {
    DB_KIND_NEW,     /* application_id 0 and no tables */
    DB_KIND_MEMCHAT, /* memchat's application id */
    DB_KIND_FOREIGN,
};

/* Step 2: reads application_id and whether any table exists, inside the
 * caller's transaction. Only reads.
 * 0 with *kind set, or -1 with the error reported. */
static int db_identify(struct db *db, enum db_kind *kind, enum db_error *why, char *err,
                       size_t errlen)
{
    long long app = 0, objects = 0;
    int rc = db_query_int(db->conn, "PRAGMA application_id", &app);
    if (rc != SQLITE_OK) {
        db_fail_sqlite(db, rc, "reading its application id", why, err, errlen);
        return -1;
    }
    if (app == DB_APPLICATION_ID) {
        *kind = DB_KIND_MEMCHAT;
        return 0;
    }
    if (app != 0) {
        db_fail(why, DB_ERR_FOREIGN, err, errlen,
                "%s is the SQLite database of another program (application id 0x%08llx, "
                "memchat's is 0x%08x); " DB_ADVICE_FOREIGN,
                db->path, (unsigned long long)(app & 0xffffffffLL), (unsigned)DB_APPLICATION_ID);
        return -1;
    }
    rc = db_query_int(db->conn, "SELECT count(*) FROM sqlite_master", &objects);
    if (rc != SQLITE_OK) {
        db_fail_sqlite(db, rc, "reading its list of tables", why, err, errlen);
        return -1;
    }
    if (objects != 0) {
        db_fail(why, DB_ERR_FOREIGN, err, errlen,
                "%s is an SQLite database that is not memchat's (it has tables but not "
                "memchat's application id 0x%08x); " DB_ADVICE_FOREIGN,
                db->path, (unsigned)DB_APPLICATION_ID);
        return -1;
    }
    *kind = DB_KIND_NEW;
    return 0;
}

/* Runs sql (one or more statements). SQLite's result code. */
static int db_exec(struct db *db, const char *sql)
{
    return sqlite3_exec(db->conn, sql, NULL, NULL, NULL);
}

/* Ends a transaction opened by this file when it could not be committed. */
static void db_rollback_quiet(struct db *db)
{
    if (!sqlite3_get_autocommit(db->conn))
        (void)sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
}

/* A new file becomes memchat's: the application id and the schema_version
 * table in one transaction, so a file with memchat's id always has the
 * table. Another connection may have done it first, or (improbably) another
 * program may have written the file since step 2: both are re-checked inside
 * the write lock. */
static int db_initialise(struct db *db, enum db_error *why, char *err, size_t errlen)
{
    int rc = db_exec(db, "BEGIN IMMEDIATE");
    if (rc != SQLITE_OK) {
        db_fail_sqlite(db, rc, "starting its first transaction", why, err, errlen);
        return -1;
    }
    enum db_kind kind;
    if (db_identify(db, &kind, why, err, errlen) != 0) {
        db_rollback_quiet(db);
        return -1;
    }
    if (kind == DB_KIND_NEW) {
        char sql[256];
        snprintf(sql, sizeof sql,
                 "PRAGMA application_id = %d;"
                 "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                 " applied_at INTEGER NOT NULL /* Unix ms */);",
                 DB_APPLICATION_ID);
        rc = db_exec(db, sql);
        if (rc != SQLITE_OK) {
            db_fail_sqlite(db, rc, "creating the schema_version table", why, err, errlen);
            db_rollback_quiet(db);
            return -1;
        }
    }
    rc = db_exec(db, "COMMIT");
    if (rc != SQLITE_OK) {
        db_fail_sqlite(db, rc, "committing its first transaction", why, err, errlen);
        db_rollback_quiet(db);
        return -1;
    }
    return 0;
}

/* Step 3: the schema history. The rows must be versions 1..N in order, and
 * every version this build knows must carry this build's name (a file from
 * a diverging build would otherwise pass as up to date). *version = N.
 * Reads only. */
static int db_read_version(struct db *db, const struct db_migration *migrations, size_t n,
                           int *version, enum db_error *why, char *err, size_t errlen)
{
    long long has_table = 0;
    int rc = db_query_int(db->conn,
                          "SELECT count(*) FROM sqlite_master"
                          " WHERE type = 'table' AND name = 'schema_version'",
                          &has_table);
    if (rc != SQLITE_OK) {
        db_fail_sqlite(db, rc, "reading its list of tables", why, err, errlen);
        return -1;
    }
    if (has_table == 0) {
        db_fail(why, DB_ERR_CORRUPT, err, errlen,
                "%s has memchat's application id but no schema_version table (damaged); "
                "" DB_ADVICE_DAMAGED,
                db->path);
        return -1;
    }
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(db->conn, "SELECT version, name FROM schema_version ORDER BY version",
                            -1, &st, NULL);
    if (rc != SQLITE_OK) {
        db_fail_sqlite(db, rc, "reading schema_version", why, err, errlen);
        return -1;
    }
    /* The whole history is read before judging it: a newer file is told
     * so even if it also has gaps, and a gap is damage before a diverging
     * name is another build. */
    long long expect = 1, last = 0, gap_found = 0, gap_expected = 0;
    int mismatch = 0;
    char found_name[64] = "";
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        long long v = sqlite3_column_int64(st, 0);
        const char *name = (const char *)sqlite3_column_text(st, 1);
        if (v != expect && gap_expected == 0) {
            gap_found = v;
            gap_expected = expect;
        }
        if (mismatch == 0 && v == expect && (size_t)v <= n &&
            (name == NULL || strcmp(name, migrations[v - 1].name) != 0)) {
            mismatch = (int)v;
            snprintf(found_name, sizeof found_name, "%s", name != NULL ? name : "(null)");
        }
        last = v; /* ORDER BY version: the last row is the highest */
        expect++;
    }
    if (rc != SQLITE_DONE) {
        db_fail_sqlite(db, rc, "reading schema_version", why, err, errlen);
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    if (last > (long long)n) {
        db_fail(why, DB_ERR_NEWER, err, errlen,
                "%s was written by a newer memchat (schema %lld; this build knows up to %zu); "
                "upgrade memchat. memchat left the file untouched",
                db->path, last, n);
        return -1;
    }
    if (gap_expected != 0) {
        db_fail(why, DB_ERR_CORRUPT, err, errlen,
                "%s has an inconsistent schema_version table (version %lld where %lld was "
                "expected); " DB_ADVICE_DAMAGED,
                db->path, gap_found, gap_expected);
        return -1;
    }
    if (mismatch != 0) {
        db_fail(why, DB_ERR_FOREIGN, err, errlen,
                "%s was written by a different memchat build: its schema version %d is \"%s\", "
                "this build's is \"%s\"; " DB_ADVICE_FOREIGN,
                db->path, mismatch, found_name, migrations[mismatch - 1].name);
        return -1;
    }
    *version = (int)last;
    return 0;
}

/* PRAGMA journal_mode = WAL once: SQLite's result code, and the mode the
 * file is in afterwards in mode. */
static int db_try_wal(struct db *db, char *mode, size_t modelen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db->conn, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            const char *m = (const char *)sqlite3_column_text(st, 0);
            snprintf(mode, modelen, "%s", m != NULL ? m : "");
            rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

/* Step 4a: WAL with full syncs, so a committed turn survives a power cut,
 * and readers never block the writer. */
/* Every commit is durable in the WAL (synchronous=FULL), so neither the
 * checkpoint SQLite runs when the last connection closes nor deleting the
 * WAL adds safety; they cost four fsyncs at every exit and a directory
 * fsync when the next run re-creates the WAL. memchat is a program started
 * per question, so both go: the WAL persists, and SQLite's automatic
 * checkpoint (every 1000 pages, during a commit) keeps it bounded. */
static void db_keep_wal(struct db *db)
{
    int one = 1;
    (void)sqlite3_file_control(db->conn, "main", SQLITE_FCNTL_PERSIST_WAL, &one);
    (void)sqlite3_db_config(db->conn, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL);
}

static int db_configure(struct db *db, enum db_error *why, char *err, size_t errlen)
{
    /* Switching a file to WAL upgrades a read lock to a write lock, and
     * SQLite refuses that at once, without its busy handler, while another
     * connection holds the write lock (deadlock avoidance): two connections
     * opening the same new file switch it at the same moment. The loser
     * retries once the winner is done, within the busy timeout. Only a new
     * file's first opens meet this; once the file is in WAL the pragma
     * writes nothing. */
    char mode[16] = "";
    int64_t start = clock_mono_ms();
    int delay_ms = 1;
    int rc;
    while (((rc = db_try_wal(db, mode, sizeof mode)) & 0xff) == SQLITE_BUSY &&
           clock_mono_ms() - start < DB_BUSY_TIMEOUT_MS) {
        sqlite3_sleep(delay_ms);
        if (delay_ms < 64)
            delay_ms *= 2;
    }
    if (rc != SQLITE_OK) {
        db_fail_sqlite(db, rc, "switching to WAL mode", why, err, errlen);
        return -1;
    }
    if (strcmp(mode, "wal") != 0) {
        db_fail(why, DB_ERR_IO, err, errlen,
                "cannot use %s: SQLite refused WAL mode (journal_mode stays \"%s\"); "
                "is the data directory on a network file system?",
                db->path, mode);
        return -1;
    }
    /* secure_delete: a forgotten or purged memory's text is overwritten in
     * the file, not left in a free page. */
    rc = db_exec(db, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;"
                     " PRAGMA secure_delete = ON");
    if (rc != SQLITE_OK) {
        db_fail_sqlite(db, rc, "setting synchronous and foreign_keys", why, err, errlen);
        return -1;
    }
    db_keep_wal(db);
    return 0;
}

/* Step 4b, before the first migration writes: a quick check of every page,
 * so a damaged file is not made worse. */
static int db_quick_check(struct db *db, enum db_error *why, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db->conn, "PRAGMA quick_check(1)", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            const char *res = (const char *)sqlite3_column_text(st, 0);
            if (res == NULL || strcmp(res, "ok") != 0) {
                db_fail(why, DB_ERR_CORRUPT, err, errlen,
                        "%s is damaged (quick_check: %s); " DB_ADVICE_DAMAGED, db->path,
                        res != NULL ? res : "no result");
                sqlite3_finalize(st);
                return -1;
            }
            rc = SQLITE_OK;
        }
        sqlite3_finalize(st);
    }
    if (rc != SQLITE_OK) {
        db_fail_sqlite(db, rc, "checking its pages", why, err, errlen);
        return -1;
    }
    return 0;
}

/* Step 4c: applies migration m (version v) unless another connection has
 * done it meanwhile; the version is re-read under the write lock. A failure
 * rolls back the migration's own statements and its schema_version row. */
static int db_migrate_one(struct db *db, const struct db_migration *m, size_t n, enum db_error *why,
                          char *err, size_t errlen)
{
    int rc = db_exec(db, "BEGIN IMMEDIATE");
    if (rc != SQLITE_OK) {
        db_fail_sqlite(db, rc, "starting a migration", why, err, errlen);
        return -1;
    }
    long long cur = 0;
    rc = db_query_int(db->conn, "SELECT coalesce(max(version), 0) FROM schema_version", &cur);
    if (rc != SQLITE_OK) {
        db_fail_sqlite(db, rc, "reading schema_version", why, err, errlen);
        db_rollback_quiet(db);
        return -1;
    }
    if (cur > (long long)n) {
        db_rollback_quiet(db);
        db_fail(why, DB_ERR_NEWER, err, errlen,
                "%s was upgraded by a newer memchat while opening (schema %lld; this build knows "
                "up to %zu); upgrade memchat",
                db->path, cur, n);
        return -1;
    }
    if (cur >= m->version) {
        db_rollback_quiet(db); /* another connection applied it: nothing to do */
        return 0;
    }
    if (cur != m->version - 1) {
        db_rollback_quiet(db);
        db_fail(why, DB_ERR_CORRUPT, err, errlen,
                "%s changed schema version under memchat (%lld, expected %d); " DB_ADVICE_DAMAGED,
                db->path, cur, m->version - 1);
        return -1;
    }

    const char *step = "its SQL";
    rc = db_exec(db, m->sql);
    if (rc == SQLITE_OK) {
        step = "recording it in schema_version";
        sqlite3_stmt *st = NULL;
        rc = sqlite3_prepare_v2(db->conn,
                                "INSERT INTO schema_version (version, name, applied_at)"
                                " VALUES (?, ?, ?)",
                                -1, &st, NULL);
        if (rc == SQLITE_OK) {
            sqlite3_bind_int(st, 1, m->version);
            sqlite3_bind_text(st, 2, m->name, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 3, clock_wall_ms());
            rc = sqlite3_step(st);
            if (rc == SQLITE_DONE)
                rc = SQLITE_OK;
        }
        sqlite3_finalize(st);
    }
    if (rc == SQLITE_OK) {
        step = "COMMIT";
        rc = db_exec(db, "COMMIT");
    }
    if (rc == SQLITE_OK)
        return 0;

    /* The message before ROLLBACK replaces it. */
    char msg[512];
    snprintf(msg, sizeof msg, "%s", sqlite3_errmsg(db->conn));
    db_rollback_quiet(db);
    db_fail(why, db_rc_is_damage(rc) ? DB_ERR_CORRUPT : DB_ERR_MIGRATE, err, errlen,
            "%s: migration %d \"%s\" failed (%s: %s); rolled back, the file stays at schema "
            "version %d",
            db->path, m->version, m->name, step, msg, m->version - 1);
    return -1;
}

/* A bad list is a programming error, not a property of the file. */
static void db_assert_migrations(const struct db_migration *migrations, size_t n)
{
    assert(n == 0 || migrations != NULL);
    for (size_t i = 0; i < n; i++) {
        assert(migrations[i].version == (int)i + 1);
        assert(migrations[i].name != NULL && migrations[i].name[0] != '\0');
        assert(migrations[i].sql != NULL);
    }
    (void)migrations;
}

struct db *db_open_with(const char *path, const struct db_migration *migrations, size_t n,
                        enum db_error *why, char *err, size_t errlen)
{
    db_assert_migrations(migrations, n);
    if (why != NULL)
        *why = DB_OK;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    /* Each connection is used by one thread at a time, so SQLite's
     * per-connection mutex (SQLITE_OPEN_FULLMUTEX) would only cost; separate
     * connections in separate threads need a library built thread-safe. */
    if (sqlite3_threadsafe() == 0) {
        db_fail(why, DB_ERR_IO, err, errlen,
                "cannot use %s: this SQLite library was built without thread support "
                "(SQLITE_THREADSAFE=0)",
                path);
        return NULL;
    }
    int magic = db_check_magic(path, why, err, errlen);
    if (magic == 1)
        magic = db_create_private(path, why, err, errlen);
    if (magic != 0)
        return NULL;

    struct db *db = xcalloc(1, sizeof *db);
    db->path = xstrdup(path);
    /* SQLite may be built with URI filenames on (Debian's is): a relative
     * path starting "file:" must stay a file name. No SQLITE_OPEN_NOFOLLOW:
     * it refuses a symbolic link anywhere in the path, and a home directory
     * reached through one is common; the data directory is the user's own. */
    char *open_path = strncmp(path, "file:", 5) == 0 ? xasprintf("./%s", path) : xstrdup(path);
    /* NULL (SQLite's own I/O) unless a hardening test enabled the I/O
     * fault seam (store/faultvfs.h). */
    const char *vfs = faultvfs_install();
    int rc = sqlite3_open_v2(open_path, &db->conn,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, vfs);
    xfree(open_path);
    if (db->conn == NULL) {
        db_fail(why, DB_ERR_IO, err, errlen, "cannot open %s: %s", path, sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_extended_result_codes(db->conn, 1);
    if (rc != SQLITE_OK) {
        int sys = sqlite3_system_errno(db->conn);
        db_fail(why, DB_ERR_IO, err, errlen, "cannot open %s: %s%s%s", path,
                sqlite3_errmsg(db->conn), sys != 0 ? ": " : "", sys != 0 ? strerror(sys) : "");
        goto fail;
    }
    sqlite3_busy_timeout(db->conn, DB_BUSY_TIMEOUT_MS);
    /* When the read-write open fails, SQLite quietly opens the file
     * read-only, and the first write fails with "attempt to write a
     * readonly database". A file we may write was lost to an I/O error,
     * not to its permissions: say so now. */
    if (sqlite3_db_readonly(db->conn, "main") == 1 && access(path, W_OK) == 0) {
        db_fail(why, DB_ERR_IO, err, errlen,
                "cannot open %s for writing: opening it read-write failed (an I/O error?) and "
                "SQLite could only open it read-only",
                path);
        goto fail;
    }

    /* One read transaction, so the application id and the table list come
     * from the same state of the file: another connection may be
     * initialising it at this moment. */
    enum db_kind kind;
    rc = db_exec(db, "BEGIN");
    if (rc != SQLITE_OK) {
        db_fail_sqlite(db, rc, "starting a read", why, err, errlen);
        goto fail;
    }
    int identified = db_identify(db, &kind, why, err, errlen);
    db_rollback_quiet(db); /* it only read */
    if (identified != 0)
        goto fail;
    if (kind == DB_KIND_NEW && db_initialise(db, why, err, errlen) != 0)
        goto fail;
    int version = 0;
    if (db_read_version(db, migrations, n, &version, why, err, errlen) != 0)
        goto fail;
    if (db_configure(db, why, err, errlen) != 0)
        goto fail;
    if ((size_t)version < n) {
        if (db_quick_check(db, why, err, errlen) != 0)
            goto fail;
        for (size_t i = (size_t)version; i < n; i++)
            if (db_migrate_one(db, &migrations[i], n, why, err, errlen) != 0)
                goto fail;
    }
    db->version = (int)n;
    return db;

fail:
    if (db->conn != NULL) {
        /* The last connection to a WAL file checkpoints it on close, which
         * writes the main file: not for a file memchat refused. */
        (void)sqlite3_db_config(db->conn, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL);
        sqlite3_close_v2(db->conn);
    }
    xfree(db->path);
    xfree(db);
    return NULL;
}

struct db *db_open(const char *path, enum db_error *why, char *err, size_t errlen)
{
    return db_open_with(path, db_migrations, db_migrations_count, why, err, errlen);
}

void db_close(struct db *db)
{
    if (db == NULL)
        return;
    sqlite3_close_v2(db->conn);
    xfree(db->path);
    xfree(db);
}

struct sqlite3 *db_handle(struct db *db)
{
    return db->conn;
}

int db_schema_version(struct db *db)
{
    return db->version;
}

const char *db_path(const struct db *db)
{
    return db->path;
}

/* Runs a transaction statement, naming it and the file on failure. */
static int db_tx(struct db *db, const char *sql, char *err, size_t errlen)
{
    int rc = db_exec(db, sql);
    if (rc == SQLITE_OK)
        return 0;
    /* A -wal or -shm file that failed to open read-write is opened
     * read-only too (see db_open_with), which SQLite reports as a
     * read-only database. */
    bool fell_back = (rc & 0xff) == SQLITE_READONLY && access(db->path, W_OK) == 0;
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s on %s: %s%s", sql, db->path, sqlite3_errmsg(db->conn),
                 fell_back ? " (the file is writable: opening it or its -wal or -shm file "
                             "read-write failed, an I/O error?)"
                           : "");
    return -1;
}

int db_begin(struct db *db, char *err, size_t errlen)
{
    return db_tx(db, "BEGIN IMMEDIATE", err, errlen);
}

int db_commit(struct db *db, char *err, size_t errlen)
{
    return db_tx(db, "COMMIT", err, errlen);
}

void db_rollback(struct db *db)
{
    db_rollback_quiet(db);
}

int db_checkpoint_truncate(struct db *db, char *err, size_t errlen)
{
    int busy = 0,
        rc = sqlite3_wal_checkpoint_v2(db->conn, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    if (rc == SQLITE_BUSY)
        busy = 1;
    else if (rc != SQLITE_OK) {
        snprintf(err, errlen, "checkpointing %s: %s", db->path, sqlite3_errmsg(db->conn));
        return -1;
    }
    return busy;
}

void db_set_error(struct db *db, const char *what, char *err, size_t errlen)
{
    msg_set(err, errlen, "%s in %s: %s", what, db->path, sqlite3_errmsg(db->conn));
}

int db_bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
    if (s != NULL)
        return sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    return sqlite3_bind_null(st, i);
}

int db_check_ident(const char *fn, const char *what, const char *id, char *err, size_t errlen)
{
    if (id != NULL && ident_valid(id))
        return 0;
    msg_set(err, errlen, "%s: %s '%.80s' is not a valid id (accepted: [A-Za-z0-9_-]{1,64})", fn,
            what, id != NULL ? id : "(null)");
    return -1;
}

int db_exec_two(struct db *db, const char *sql, const char *what, const char *a1, const char *a2,
                size_t *changes, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db->conn, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        msg_set(err, errlen, "%s: prepare in %s: %s", what, db->path, sqlite3_errmsg(db->conn));
        return -1;
    }
    rc = db_bind_text_or_null(st, 1, a1);
    rc = rc ? rc : db_bind_text_or_null(st, 2, a2);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        msg_set(err, errlen, "%s in %s: %s", what, db->path, sqlite3_errmsg(db->conn));
        return -1;
    }
    if (changes != NULL)
        *changes = (size_t)sqlite3_changes64(db->conn);
    return 0;
}

int db_purge_scope(struct db *db, const char *fn, const char *sql, const char *tenant,
                   const char *user, size_t *removed, char *err, size_t errlen)
{
    if (removed != NULL)
        *removed = 0;
    if (db_check_ident(fn, "tenant", tenant, err, errlen) != 0 ||
        (user != NULL && db_check_ident(fn, "user", user, err, errlen) != 0))
        return -1;
    char what[256];
    snprintf(what, sizeof what, "%s: tenant %s%s%s", fn, tenant, user ? " user " : "",
             user ? user : "");
    return db_exec_two(db, sql, what, tenant, user, removed, err, errlen);
}
