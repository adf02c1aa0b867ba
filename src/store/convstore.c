/*
 * The conversations and conversation_messages tables (schema.c, migration
 * 4). A conversation belongs to one tenant: every read and removal by id
 * also matches the tenant, so another tenant's id is indistinguishable
 * from one that does not exist. Messages are numbered per conversation
 * (seq, from 1) and read in that order; an exchange is numbered and
 * inserted by one statement, so its two messages are never split. The
 * title is the first message on one line, cut at a character boundary,
 * so a listing stays one line per conversation. Every statement is
 * prepared with its values bound; nothing here begins or commits a
 * transaction (the turn worker appends inside the turn's).
 */
#include "config.h"

#include "store/convstore.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "store/db.h"
#include "util/alloc.h"
#include "util/msg.h"
#include "util/ident.h"
#include "util/utf8.h"
#include "util/uuid.h"

/* Title bytes kept of the first message (the field holds 127). */
#define CONV_TITLE_MAX 120

static const char conv_insert_sql[] =
    "INSERT INTO conversations (id, tenant, user_id, agent, title, created_ms, updated_ms)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)";
/* The columns of a struct conv_info, in its order; turns counts replies. */
#define CONV_COLUMNS                                                             \
    "c.id, c.tenant, c.user_id, c.agent, c.title, c.created_ms, c.updated_ms,"   \
    " (SELECT count(*) FROM conversation_messages m WHERE m.conversation = c.id" \
    " AND m.role = 'assistant')"
static const char conv_get_sql[] =
    "SELECT " CONV_COLUMNS " FROM conversations c WHERE c.id = ?1 AND c.tenant = ?2";
/* ?1 tenant, ?2 user (NULL: all), ?3 limit (-1: all). Ties on updated_ms
 * go to the later id, which UUIDv7 makes the later created. */
static const char conv_list_sql[] =
    "SELECT " CONV_COLUMNS " FROM conversations c WHERE c.tenant = ?1"
    " AND (?2 IS NULL OR c.user_id = ?2) ORDER BY c.updated_ms DESC, c.id DESC LIMIT ?3";
static const char conv_touch_sql[] = "UPDATE conversations SET updated_ms = ?2 WHERE id = ?1";
/* ?1 conversation, ?2 turn, ?3 message, ?4 reply, ?5 ts. */
static const char conv_append_sql[] =
    "WITH m(s) AS (SELECT coalesce(max(seq), 0) FROM conversation_messages"
    " WHERE conversation = ?1)"
    " INSERT INTO conversation_messages (conversation, seq, turn, role, content, ts_ms)"
    " SELECT ?1, s + 1, ?2, 'user', ?3, ?5 FROM m"
    " UNION ALL SELECT ?1, s + 2, ?2, 'assistant', ?4, ?5 FROM m";
/* ?1 conversation, ?2 limit (-1: all): the last messages, oldest first. */
static const char conv_messages_sql[] =
    "SELECT role, content, turn, ts_ms FROM (SELECT seq, role, content, turn, ts_ms"
    " FROM conversation_messages WHERE conversation = ?1 ORDER BY seq DESC LIMIT ?2)"
    " ORDER BY seq";
/* Messages go first, checked against the tenant, so a failure between the
 * two statements never leaves text without the row that purge finds. */
static const char conv_remove_messages_sql[] =
    "DELETE FROM conversation_messages WHERE conversation = ?1"
    " AND EXISTS (SELECT 1 FROM conversations WHERE id = ?1 AND tenant = ?2)";
static const char conv_remove_sql[] = "DELETE FROM conversations WHERE id = ?1 AND tenant = ?2";
/* ?1 tenant, ?2 user (NULL: all). */
static const char conv_purge_messages_sql[] =
    "DELETE FROM conversation_messages WHERE conversation IN (SELECT id FROM conversations"
    " WHERE tenant = ?1 AND (?2 IS NULL OR user_id = ?2))";
static const char conv_purge_sql[] =
    "DELETE FROM conversations WHERE tenant = ?1 AND (?2 IS NULL OR user_id = ?2)";

/* A size_t limit as SQLite's LIMIT: 0 (and anything SQLite cannot count)
 * is -1, no limit. */
static int64_t conv_limit(size_t limit)
{
    return limit == 0 || limit > (size_t)INT64_MAX ? -1 : (int64_t)limit;
}

static int conv_check_uuid(const char *fn, const char *what, const char *id, char *err,
                           size_t errlen)
{
    if (id != NULL && uuid_valid(id))
        return 0;
    msg_set(err, errlen, "%s: %s '%.80s' is not a valid id (accepted: a UUID)", fn, what,
            id != NULL ? id : "(null)");
    return -1;
}

/* Copies column i into dst[0..cap), cut at a character boundary. */
static void conv_column_copy(sqlite3_stmt *st, int i, char *dst, size_t cap)
{
    const char *s = (const char *)sqlite3_column_text(st, i);
    size_t n = s != NULL ? (size_t)sqlite3_column_bytes(st, i) : 0;
    n = utf8_truncate(s != NULL ? s : "", n, cap - 1);
    if (n > 0)
        memcpy(dst, s, n);
    dst[n] = '\0';
}

/* The title of a conversation from its first message: runs of whitespace
 * and line breaks become one space, other control characters go, invalid
 * bytes become U+FFFD, and the result stops at the last whole character
 * within CONV_TITLE_MAX bytes. */
static void conv_title(const char *msg, char title[CONV_TITLE_MAX + 1])
{
    size_t len = 0;
    bool space = false;
    size_t n = msg != NULL ? strlen(msg) : 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += utf8_decode(msg + i, n - i, &cp);
        if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || cp == '\v' || cp == '\f') {
            space = len > 0;
            continue;
        }
        if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
            continue;
        char enc[4];
        size_t k = utf8_encode(cp, enc);
        if (len + (space ? 1 : 0) + k > CONV_TITLE_MAX)
            break;
        if (space)
            title[len++] = ' ';
        space = false;
        memcpy(title + len, enc, k);
        len += k;
    }
    title[len] = '\0';
}

int convstore_create(struct db *db, const char *tenant, const char *user, const char *agent,
                     const char *first_message, int64_t now_ms, char id[MC_UUID_STRLEN + 1],
                     char *err, size_t errlen)
{
    static const char fn[] = "convstore_create";
    if (db_check_ident(fn, "tenant", tenant, err, errlen) != 0 ||
        db_check_ident(fn, "user", user, err, errlen) != 0 ||
        db_check_ident(fn, "agent", agent, err, errlen) != 0)
        return -1;
    char title[CONV_TITLE_MAX + 1];
    conv_title(first_message, title);
    char newid[UUID_STRLEN + 1];
    uuid7_new(newid);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db_handle(db), conv_insert_sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        db_set_error(db, "convstore_create: prepare", err, errlen);
        return -1;
    }
    rc = db_bind_text_or_null(st, 1, newid);
    rc = rc ? rc : db_bind_text_or_null(st, 2, tenant);
    rc = rc ? rc : db_bind_text_or_null(st, 3, user);
    rc = rc ? rc : db_bind_text_or_null(st, 4, agent);
    rc = rc ? rc : db_bind_text_or_null(st, 5, title);
    rc = rc ? rc : sqlite3_bind_int64(st, 6, now_ms);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        msg_set(err, errlen, "%s: tenant %s user %s in %s: %s", fn, tenant, user, db_path(db),
                sqlite3_errmsg(db_handle(db)));
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    memcpy(id, newid, sizeof newid);
    return 0;
}

/* Fills *out from a row of CONV_COLUMNS. */
static void conv_read_info(sqlite3_stmt *st, struct conv_info *out)
{
    memset(out, 0, sizeof *out);
    conv_column_copy(st, 0, out->id, sizeof out->id);
    conv_column_copy(st, 1, out->tenant, sizeof out->tenant);
    conv_column_copy(st, 2, out->user_id, sizeof out->user_id);
    conv_column_copy(st, 3, out->agent, sizeof out->agent);
    conv_column_copy(st, 4, out->title, sizeof out->title);
    out->created_ms = sqlite3_column_int64(st, 5);
    out->updated_ms = sqlite3_column_int64(st, 6);
    int64_t turns = sqlite3_column_int64(st, 7);
    out->turns = turns > 0 ? (size_t)turns : 0;
}

/* Runs a query of CONV_COLUMNS bound to (a1, a2, limit) and collects at
 * most its rows. 0 or -1 (with a message saying what). */
static int conv_query(struct db *db, const char *sql, const char *what, const char *a1,
                      const char *a2, int64_t limit, struct conv_info **out, size_t *n, char *err,
                      size_t errlen)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db_handle(db), sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        msg_set(err, errlen, "%s: prepare in %s: %s", what, db_path(db),
                sqlite3_errmsg(db_handle(db)));
        return -1;
    }
    rc = db_bind_text_or_null(st, 1, a1);
    rc = rc ? rc : db_bind_text_or_null(st, 2, a2);
    if (rc == SQLITE_OK && sqlite3_bind_parameter_count(st) >= 3)
        rc = sqlite3_bind_int64(st, 3, limit);
    struct conv_info *v = NULL;
    size_t count = 0, cap = 0;
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (count == cap) {
            cap = cap ? cap * 2 : 8;
            v = xreallocarray(v, cap, sizeof *v);
        }
        conv_read_info(st, &v[count++]);
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_DONE) {
        msg_set(err, errlen, "%s in %s: %s", what, db_path(db), sqlite3_errmsg(db_handle(db)));
        sqlite3_finalize(st);
        xfree(v);
        return -1;
    }
    sqlite3_finalize(st);
    *out = v;
    *n = count;
    return 0;
}

int convstore_get(struct db *db, const char *tenant, const char *id, struct conv_info *out,
                  char *err, size_t errlen)
{
    static const char fn[] = "convstore_get";
    if (db_check_ident(fn, "tenant", tenant, err, errlen) != 0 ||
        conv_check_uuid(fn, "conversation", id, err, errlen) != 0)
        return -1;
    struct conv_info *v = NULL;
    size_t n = 0;
    char what[256];
    snprintf(what, sizeof what, "%s: conversation %s of tenant %s", fn, id, tenant);
    if (conv_query(db, conv_get_sql, what, id, tenant, -1, &v, &n, err, errlen) != 0)
        return -1;
    if (n == 0) {
        msg_set(err, errlen, "tenant %s has no conversation %s", tenant, id);
        return 1;
    }
    *out = v[0];
    xfree(v);
    return 0;
}

int convstore_latest(struct db *db, const char *tenant, const char *user, struct conv_info *out,
                     char *err, size_t errlen)
{
    static const char fn[] = "convstore_latest";
    if (db_check_ident(fn, "tenant", tenant, err, errlen) != 0 ||
        db_check_ident(fn, "user", user, err, errlen) != 0)
        return -1;
    struct conv_info *v = NULL;
    size_t n = 0;
    char what[256];
    snprintf(what, sizeof what, "%s: tenant %s user %s", fn, tenant, user);
    if (conv_query(db, conv_list_sql, what, tenant, user, 1, &v, &n, err, errlen) != 0)
        return -1;
    if (n == 0) {
        msg_set(err, errlen, "tenant %s user %s has no conversation", tenant, user);
        return 1;
    }
    *out = v[0];
    xfree(v);
    return 0;
}

int convstore_list(struct db *db, const char *tenant, const char *user, size_t limit,
                   struct conv_info **out, size_t *n, char *err, size_t errlen)
{
    static const char fn[] = "convstore_list";
    *out = NULL;
    *n = 0;
    if (db_check_ident(fn, "tenant", tenant, err, errlen) != 0 ||
        (user != NULL && db_check_ident(fn, "user", user, err, errlen) != 0))
        return -1;
    char what[256];
    snprintf(what, sizeof what, "%s: tenant %s%s%s", fn, tenant, user ? " user " : "",
             user ? user : "");
    return conv_query(db, conv_list_sql, what, tenant, user, conv_limit(limit), out, n, err,
                      errlen);
}

int convstore_append(struct db *db, const char *id, const char *turn, const char *message,
                     const char *reply, int64_t now_ms, char *err, size_t errlen)
{
    static const char fn[] = "convstore_append";
    if (conv_check_uuid(fn, "conversation", id, err, errlen) != 0 ||
        conv_check_uuid(fn, "turn", turn, err, errlen) != 0)
        return -1;
    if (message == NULL || reply == NULL) {
        msg_set(err, errlen, "%s: conversation %s: %s is NULL (required)", fn, id,
                message == NULL ? "message" : "reply");
        return -1;
    }
    /* The touch first: it proves the conversation exists, and should the
     * insert then fail outside a transaction, only a timestamp moved. */
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db_handle(db), conv_touch_sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        db_set_error(db, "convstore_append: prepare", err, errlen);
        return -1;
    }
    rc = db_bind_text_or_null(st, 1, id);
    rc = rc ? rc : sqlite3_bind_int64(st, 2, now_ms);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        msg_set(err, errlen, "%s: conversation %s in %s: %s", fn, id, db_path(db),
                sqlite3_errmsg(db_handle(db)));
        return -1;
    }
    if (sqlite3_changes(db_handle(db)) == 0) {
        msg_set(err, errlen, "%s: no conversation %s in %s", fn, id, db_path(db));
        return -1;
    }
    rc = sqlite3_prepare_v2(db_handle(db), conv_append_sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        db_set_error(db, "convstore_append: prepare", err, errlen);
        return -1;
    }
    rc = db_bind_text_or_null(st, 1, id);
    rc = rc ? rc : db_bind_text_or_null(st, 2, turn);
    rc = rc ? rc : db_bind_text_or_null(st, 3, message);
    rc = rc ? rc : db_bind_text_or_null(st, 4, reply);
    rc = rc ? rc : sqlite3_bind_int64(st, 5, now_ms);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        msg_set(err, errlen, "%s: conversation %s turn %s in %s: %s", fn, id, turn, db_path(db),
                sqlite3_errmsg(db_handle(db)));
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    return 0;
}

int convstore_messages(struct db *db, const char *id, size_t max_messages,
                       struct conv_message **out, size_t *n, char *err, size_t errlen)
{
    static const char fn[] = "convstore_messages";
    *out = NULL;
    *n = 0;
    if (conv_check_uuid(fn, "conversation", id, err, errlen) != 0)
        return -1;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db_handle(db), conv_messages_sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        db_set_error(db, "convstore_messages: prepare", err, errlen);
        return -1;
    }
    rc = db_bind_text_or_null(st, 1, id);
    rc = rc ? rc : sqlite3_bind_int64(st, 2, conv_limit(max_messages));
    struct conv_message *v = NULL;
    size_t count = 0, cap = 0;
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            v = xreallocarray(v, cap, sizeof *v);
        }
        struct conv_message *m = &v[count++];
        const char *role = (const char *)sqlite3_column_text(st, 0);
        m->role = xstrdup(role != NULL ? role : "");
        const char *content = (const char *)sqlite3_column_text(st, 1);
        m->content =
            content != NULL ? xstrndup(content, (size_t)sqlite3_column_bytes(st, 1)) : xstrdup("");
        conv_column_copy(st, 2, m->turn, sizeof m->turn);
        m->ts_ms = sqlite3_column_int64(st, 3);
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_DONE) {
        msg_set(err, errlen, "%s: conversation %s in %s: %s", fn, id, db_path(db),
                sqlite3_errmsg(db_handle(db)));
        sqlite3_finalize(st);
        convstore_messages_free(v, count);
        return -1;
    }
    sqlite3_finalize(st);
    *out = v;
    *n = count;
    return 0;
}

void convstore_messages_free(struct conv_message *m, size_t n)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        xfree(m[i].role);
        xfree(m[i].content);
    }
    xfree(m);
}

int convstore_remove(struct db *db, const char *tenant, const char *id, char *err, size_t errlen)
{
    static const char fn[] = "convstore_remove";
    if (db_check_ident(fn, "tenant", tenant, err, errlen) != 0 ||
        conv_check_uuid(fn, "conversation", id, err, errlen) != 0)
        return -1;
    char what[256];
    snprintf(what, sizeof what, "%s: conversation %s of tenant %s", fn, id, tenant);
    size_t changes = 0;
    if (db_exec_two(db, conv_remove_messages_sql, what, id, tenant, &changes, err, errlen) != 0 ||
        db_exec_two(db, conv_remove_sql, what, id, tenant, &changes, err, errlen) != 0)
        return -1;
    if (changes == 0) {
        msg_set(err, errlen, "tenant %s has no conversation %s", tenant, id);
        return 1;
    }
    return 0;
}

int convstore_purge(struct db *db, const char *tenant, const char *user, size_t *removed, char *err,
                    size_t errlen)
{
    static const char fn[] = "convstore_purge";
    if (removed != NULL)
        *removed = 0;
    if (db_check_ident(fn, "tenant", tenant, err, errlen) != 0 ||
        (user != NULL && db_check_ident(fn, "user", user, err, errlen) != 0))
        return -1;
    char what[256];
    snprintf(what, sizeof what, "%s: tenant %s%s%s", fn, tenant, user ? " user " : "",
             user ? user : "");
    size_t changes = 0;
    if (db_exec_two(db, conv_purge_messages_sql, what, tenant, user, &changes, err, errlen) != 0 ||
        db_exec_two(db, conv_purge_sql, what, tenant, user, &changes, err, errlen) != 0)
        return -1;
    if (removed != NULL)
        *removed = changes;
    return 0;
}
