/*
 * The rollout of memory (rollout/rollout.h): the six rules of DESIGN.md
 * "Is memory on for this turn?" and the persisted settings three of them
 * read. A tenant's own setting is a row of rollout_tenants; the global
 * setting and the percentage are the settings keys 'rollout.global'
 * ('on' | 'off') and 'rollout.percent' ('0'..'100'), absent when unset.
 *
 * rollout_decide() runs once per turn on the turn worker's connection, so
 * it reads at most two small statements (the tenant's row, then both
 * settings keys at once) and only as far down the rules as it must go. A
 * read that fails, or a stored value that is not one memchat writes,
 * makes its rule(s) fall through to the next with a message in err: the
 * turn still runs (the caller logs the message), and nothing is printed
 * here. The writers each run in their own transaction with updated_ms
 * from the wall clock, so `rollout status` can say when a setting changed.
 */
#include "config.h"

#include "rollout/rollout.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <sqlite3.h>

#include "store/db.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/msg.h"

#define ROLLOUT_KEY_GLOBAL  "rollout.global"
#define ROLLOUT_KEY_PERCENT "rollout.percent"

static const char rollout_tenant_sql[] = "SELECT memory FROM rollout_tenants WHERE tenant = ?1";
static const char rollout_settings_sql[] =
    "SELECT key, value FROM settings WHERE key IN ('" ROLLOUT_KEY_GLOBAL "', '" ROLLOUT_KEY_PERCENT
    "')";

/* Adds msg to err: the first message fills it, a later one is appended
 * after "; ", so a decision that fell through twice says both why. */
static void rollout_note(char *err, size_t errlen, const char *msg)
{
    if (err == NULL || errlen == 0)
        return;
    size_t used = strnlen(err, errlen);
    if (used == 0)
        msg_set(err, errlen, "%s", msg);
    else if (used + 2 < errlen)
        msg_set(err + used, errlen - used, "; %s", msg);
}

/* 'on' or 'off' as stored; -1 for anything else. */
static int rollout_parse_global(const char *v, enum rollout_tri *out)
{
    if (strcmp(v, "on") == 0)
        *out = ROLLOUT_ON;
    else if (strcmp(v, "off") == 0)
        *out = ROLLOUT_OFF;
    else
        return -1;
    return 0;
}

/* A whole decimal number 0..100 as stored; -1 for anything else. */
static int rollout_parse_percent(const char *v, int *out)
{
    char *end = NULL;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || n < 0 || n > 100)
        return -1;
    *out = (int)n;
    return 0;
}

/* Reads both settings keys in one statement. *global and *percent start
 * unset (UNSET, -1); each is set only from a well-formed stored value. 0,
 * or -1 with a message when the read failed (both left unset) or a value
 * is malformed (that one left unset, the other still read). */
static int rollout_read_settings(struct db *db, enum rollout_tri *global, int *percent, char *err,
                                 size_t errlen)
{
    *global = ROLLOUT_UNSET;
    *percent = -1;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db_handle(db), rollout_settings_sql, -1, &st, NULL) != SQLITE_OK) {
        db_set_error(db, "rollout: reading the global setting and the percentage", err, errlen);
        return -1;
    }
    int rc, result = 0;
    char msg[512];
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *key = (const char *)sqlite3_column_text(st, 0);
        const char *val = (const char *)sqlite3_column_text(st, 1);
        if (key == NULL || val == NULL)
            continue;
        bool is_global = strcmp(key, ROLLOUT_KEY_GLOBAL) == 0;
        int bad =
            is_global ? rollout_parse_global(val, global) : rollout_parse_percent(val, percent);
        if (bad != 0) {
            snprintf(msg, sizeof msg, "rollout: settings key %s in %s holds '%.40s' (accepted: %s)",
                     key, db_path(db), val, is_global ? "on, off" : "0 to 100");
            rollout_note(err, errlen, msg);
            result = -1;
        }
    }
    if (rc != SQLITE_DONE) {
        *global = ROLLOUT_UNSET;
        *percent = -1;
        db_set_error(db, "rollout: reading the global setting and the percentage", msg, sizeof msg);
        rollout_note(err, errlen, msg);
        result = -1;
    }
    sqlite3_finalize(st);
    return result;
}

/* The tenant's own setting into *own (UNSET when it has none). 0, or -1
 * with a message (*own UNSET). */
static int rollout_read_tenant(struct db *db, const char *tenant, enum rollout_tri *own, char *err,
                               size_t errlen)
{
    *own = ROLLOUT_UNSET;
    sqlite3_stmt *st = NULL;
    char what[128];
    snprintf(what, sizeof what, "rollout: reading tenant %s's own setting", tenant);
    if (sqlite3_prepare_v2(db_handle(db), rollout_tenant_sql, -1, &st, NULL) != SQLITE_OK) {
        db_set_error(db, what, err, errlen);
        return -1;
    }
    int rc = sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *own = sqlite3_column_int(st, 0) != 0 ? ROLLOUT_ON : ROLLOUT_OFF;
    else if (rc != SQLITE_DONE)
        db_set_error(db, what, err, errlen);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

static void rollout_set(struct rollout_decision *out, bool memory, const char *reason)
{
    out->memory = memory;
    out->reason = reason;
}

int rollout_decide(struct db *db, const struct rollout_input *in, struct rollout_decision *out,
                   char *err, size_t errlen)
{
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    /* Rules 1 and 2 need no data file. An agent's memory: true does not
     * decide (the header's contract), so only OFF stops here. */
    if (in->session != ROLLOUT_UNSET) {
        rollout_set(out, in->session == ROLLOUT_ON, "session");
        return 0;
    }
    if (in->agent == ROLLOUT_OFF) {
        rollout_set(out, false, "agent");
        return 0;
    }
    int result = 0;
    if (db != NULL) {
        /* Rules 3 and 4 are about the tenant: without a valid id neither
         * can be asked, so both fall through. */
        bool tenant_ok = in->tenant != NULL && ident_valid(in->tenant);
        if (!tenant_ok) {
            char msg[256];
            snprintf(msg, sizeof msg,
                     "rollout: tenant '%.80s' is not a valid id (accepted: [A-Za-z0-9_-]{1,64}); "
                     "its own setting and the percentage were not consulted",
                     in->tenant != NULL ? in->tenant : "(null)");
            rollout_note(err, errlen, msg);
            result = -1;
        }
        enum rollout_tri own = ROLLOUT_UNSET;
        if (tenant_ok && rollout_read_tenant(db, in->tenant, &own, err, errlen) != 0)
            result = -1;
        if (own != ROLLOUT_UNSET) {
            rollout_set(out, own == ROLLOUT_ON, "tenant");
            return result;
        }
        enum rollout_tri global;
        int percent;
        char msg[1024] = "";
        if (rollout_read_settings(db, &global, &percent, msg, sizeof msg) != 0) {
            rollout_note(err, errlen, msg);
            result = -1;
        }
        /* The percentage decides both ways while it is set: a tenant
         * outside it is off even when the global setting is on. */
        if (tenant_ok && percent >= 0) {
            rollout_set(out, rollout_bucket(in->tenant) < percent, "percent");
            return result;
        }
        if (global != ROLLOUT_UNSET) {
            rollout_set(out, global == ROLLOUT_ON, "global");
            return result;
        }
    }
    rollout_set(out, in->rag_enabled, "env");
    return result;
}

int rollout_bucket(const char *tenant)
{
    if (tenant == NULL)
        return -1;
    /* sodium_init only picks a faster BLAKE2b for this CPU; the portable
     * one gives the same bytes, so its result does not matter here. */
    if (sodium_init() < 0) {
        /* Nothing to do: the hash below does not depend on it. */
    }
    unsigned char h[32];
    crypto_generichash(h, sizeof h, (const unsigned char *)tenant, strlen(tenant), NULL, 0);
    /* Byte by byte, not memcpy: the same bucket on any host's byte order. */
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | h[i];
    return (int)(v % 100);
}

/* Runs one write in its own transaction: sql with ?1 = t1, ?2 = t2 (NULL
 * binds NULL) and ?3 = the wall clock in ms, for the parameters the
 * statement has. *changes (when not NULL) is the rows it changed. 0, or
 * -1 with "what in PATH: message". */
static int rollout_write(struct db *db, const char *what, const char *sql, const char *t1,
                         const char *t2, size_t *changes, char *err, size_t errlen)
{
    if (db == NULL) {
        msg_set(err, errlen, "%s: no data file", what);
        return -1;
    }
    char msg[512];
    if (db_begin(db, msg, sizeof msg) != 0) {
        msg_set(err, errlen, "%s: %s", what, msg);
        return -1;
    }
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db_handle(db), sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        int n = sqlite3_bind_parameter_count(st);
        if (n >= 1)
            rc = db_bind_text_or_null(st, 1, t1);
        if (rc == SQLITE_OK && n >= 2)
            rc = db_bind_text_or_null(st, 2, t2);
        if (rc == SQLITE_OK && n >= 3)
            rc = sqlite3_bind_int64(st, 3, clock_wall_ms());
        if (rc == SQLITE_OK)
            rc = sqlite3_step(st);
    }
    if (rc != SQLITE_DONE) {
        db_set_error(db, what, err, errlen);
        sqlite3_finalize(st);
        db_rollback(db);
        return -1;
    }
    sqlite3_finalize(st);
    if (changes != NULL)
        *changes = (size_t)sqlite3_changes64(db_handle(db));
    if (db_commit(db, msg, sizeof msg) != 0) {
        db_rollback(db);
        msg_set(err, errlen, "%s: %s", what, msg);
        return -1;
    }
    return 0;
}

static const char rollout_upsert_setting_sql[] =
    "INSERT OR REPLACE INTO settings (key, value, updated_ms) VALUES (?1, ?2, ?3)";

int rollout_set_global(struct db *db, bool on, char *err, size_t errlen)
{
    return rollout_write(db, on ? "rollout global on" : "rollout global off",
                         rollout_upsert_setting_sql, ROLLOUT_KEY_GLOBAL, on ? "on" : "off", NULL,
                         err, errlen);
}

int rollout_set_tenant(struct db *db, const char *tenant, bool on, char *err, size_t errlen)
{
    const char *fn = on ? "rollout enable" : "rollout disable";
    if (db_check_ident(fn, "tenant", tenant, err, errlen) != 0)
        return -1;
    char what[128];
    snprintf(what, sizeof what, "%s %s", fn, tenant);
    return rollout_write(db, what,
                         "INSERT OR REPLACE INTO rollout_tenants (tenant, memory, updated_ms)"
                         " VALUES (?1, CAST(?2 AS INTEGER), ?3)",
                         tenant, on ? "1" : "0", NULL, err, errlen);
}

int rollout_reset_tenant(struct db *db, const char *tenant, bool *had, char *err, size_t errlen)
{
    *had = false;
    if (db_check_ident("rollout reset", "tenant", tenant, err, errlen) != 0)
        return -1;
    char what[128];
    snprintf(what, sizeof what, "rollout reset %s", tenant);
    size_t changes = 0;
    if (rollout_write(db, what, "DELETE FROM rollout_tenants WHERE tenant = ?1", tenant, NULL,
                      &changes, err, errlen) != 0)
        return -1;
    *had = changes > 0;
    return 0;
}

int rollout_set_percent(struct db *db, int percent, char *err, size_t errlen)
{
    if (percent < -1 || percent > 100) {
        msg_set(err, errlen, "rollout percent: %d is out of range (accepted: 0 to 100, or off)",
                percent);
        return -1;
    }
    if (percent < 0)
        return rollout_write(db, "rollout percent off", "DELETE FROM settings WHERE key = ?1",
                             ROLLOUT_KEY_PERCENT, NULL, NULL, err, errlen);
    char value[8], what[32];
    snprintf(value, sizeof value, "%d", percent);
    snprintf(what, sizeof what, "rollout percent %d", percent);
    return rollout_write(db, what, rollout_upsert_setting_sql, ROLLOUT_KEY_PERCENT, value, NULL,
                         err, errlen);
}

int rollout_state_read(struct db *db, struct rollout_state *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->global = ROLLOUT_UNSET;
    out->percent = -1;
    if (db == NULL)
        return 0;
    if (rollout_read_settings(db, &out->global, &out->percent, err, errlen) != 0)
        return -1;
    sqlite3_stmt *st = NULL;
    static const char what[] = "rollout: reading the tenants' own settings";
    if (sqlite3_prepare_v2(db_handle(db),
                           "SELECT tenant, memory, updated_ms FROM rollout_tenants ORDER BY tenant",
                           -1, &st, NULL) != SQLITE_OK) {
        db_set_error(db, what, err, errlen);
        return -1;
    }
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        if (t == NULL)
            continue;
        if (out->n_tenants == cap) {
            cap = cap * 2 + 8;
            out->tenants = xreallocarray(out->tenants, cap, sizeof *out->tenants);
        }
        struct rollout_tenant_setting *s = &out->tenants[out->n_tenants++];
        snprintf(s->tenant, sizeof s->tenant, "%s", t);
        s->memory = sqlite3_column_int(st, 1) != 0;
        s->updated_ms = sqlite3_column_int64(st, 2);
    }
    if (rc != SQLITE_DONE)
        db_set_error(db, what, err, errlen);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        rollout_state_free(out);
        return -1;
    }
    return 0;
}

void rollout_state_free(struct rollout_state *s)
{
    if (s == NULL)
        return;
    xfree(s->tenants);
    memset(s, 0, sizeof *s);
}
