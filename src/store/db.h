/*
 * The data file memchat.db (DESIGN.md, "Contract: files"): SQLite in WAL
 * mode with synchronous=FULL, an application id that marks it as memchat's,
 * and a schema_version table with forward migrations applied in order, each
 * in its own transaction. A damaged file, a foreign database or one written
 * by a newer memchat is a clear error and is never modified.
 */
#ifndef MEMCHAT_STORE_DB_H
#define MEMCHAT_STORE_DB_H

#include <stddef.h>

struct sqlite3;
struct db;

/* 'MCHT': PRAGMA application_id of every memchat data file. */
#define DB_APPLICATION_ID 0x4d434854

/* One forward migration: the SQL that takes the schema from version-1 to
 * version. Versions start at 1 and are consecutive. */
struct db_migration {
    int version;
    const char *name;
    const char *sql;
};

/* Why db_open failed. */
enum db_error {
    DB_OK = 0,
    DB_ERR_IO,      /* cannot create, open or lock (permissions, missing dir) */
    DB_ERR_CORRUPT, /* damaged, or not an SQLite file */
    DB_ERR_FOREIGN, /* an SQLite database that is not memchat's */
    DB_ERR_NEWER,   /* schema newer than this build knows */
    DB_ERR_MIGRATE, /* a migration failed (rolled back) */
};

/* memchat's migrations, in order, and how many. */
extern const struct db_migration db_migrations[];
extern const size_t db_migrations_count;

/* Opens or creates path (its directory must exist) and brings its schema up
 * to date with memchat's migrations. NULL on failure with *why set and a
 * message naming the file, what is wrong and what to do in err; a file
 * refused as CORRUPT, FOREIGN or NEWER is left unmodified. The connection
 * may be used by one thread at a time; each thread opens its own. Several
 * connections may open the same file at once. Close with db_close(). */
struct db *db_open(const char *path, enum db_error *why, char *err, size_t errlen);
/* The same with a given migration list (tests). */
struct db *db_open_with(const char *path, const struct db_migration *migrations, size_t n,
                        enum db_error *why, char *err, size_t errlen);
/* Closes the connection; NULL is a no-op. */
void db_close(struct db *db);
/* The underlying connection, for the modules of store/. */
struct sqlite3 *db_handle(struct db *db);
/* The schema version the file is at. */
int db_schema_version(struct db *db);
/* The path the database was opened from. */
const char *db_path(const struct db *db);

struct sqlite3_stmt;

/* "what in PATH: SQLite's message" (the connection's last error) into err,
 * for the modules of store/ and memory/. */
void db_set_error(struct db *db, const char *what, char *err, size_t errlen);
/* Binds s as text (SQLITE_STATIC: the caller keeps s until the statement
 * is reset or finalized), or NULL when s is NULL. An SQLite result code. */
int db_bind_text_or_null(struct sqlite3_stmt *st, int i, const char *s);

/* 0 when id is a valid tenant, user or agent id (util/ident.h); else -1
 * with "fn: what 'id' is not a valid id (accepted: ...)" in err. */
int db_check_ident(const char *fn, const char *what, const char *id, char *err, size_t errlen);
/* Runs one statement that takes a1 as ?1 and a2 as ?2 (NULL binds NULL),
 * such as a DELETE of a tenant's or a user's rows; *changes (when not
 * NULL) is the rows it changed. 0, or -1 with "what in PATH: message". */
int db_exec_two(struct db *db, const char *sql, const char *what, const char *a1, const char *a2,
                size_t *changes, char *err, size_t errlen);
/* The purge of one table by scope: checks tenant (and user when not NULL),
 * then runs sql (?1 tenant, ?2 user or NULL) as db_exec_two, naming fn,
 * the tenant and the user in messages. *removed is the rows removed. */
int db_purge_scope(struct db *db, const char *fn, const char *sql, const char *tenant,
                   const char *user, size_t *removed, char *err, size_t errlen);

/* BEGIN IMMEDIATE / COMMIT / ROLLBACK. 0, or -1 with a message naming the
 * file. A failed COMMIT may leave the transaction open: call db_rollback(),
 * which does nothing when no transaction is open. */
int db_begin(struct db *db, char *err, size_t errlen);
int db_commit(struct db *db, char *err, size_t errlen);
void db_rollback(struct db *db);

/* Copies the WAL into the database file and truncates the WAL, so the old
 * page images (a purged tenant's texts) leave it. 0; 1 when another
 * connection's reader kept it from finishing (try again later); -1 with a
 * message naming the file. */
int db_checkpoint_truncate(struct db *db, char *err, size_t errlen);

#endif
