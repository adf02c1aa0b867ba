/*
 * The data-file check the fault and crash suites share: after a fault, a
 * data file must still pass SQLite's own consistency check. Header-only,
 * for test programs (they link SQLite through TEST_LDADD).
 */
#ifndef MEMCHAT_TU_SQLITE_H
#define MEMCHAT_TU_SQLITE_H

#include "testutil.h"

#include <sqlite3.h>

/* Fails the test unless db answers "ok" to PRAGMA integrity_check; where
 * says when (it opens the failure message). */
static inline void tu_expect_integrity(sqlite3 *db, const char *where)
{
    sqlite3_stmt *st = NULL;
    const char *ok = NULL;
    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        ok = (const char *)sqlite3_column_text(st, 0);
    if (ok == NULL || strcmp(ok, "ok") != 0)
        fail_msg("%s: memchat.db damaged: integrity_check: %s", where,
                 ok != NULL ? ok : sqlite3_errmsg(db));
    sqlite3_finalize(st);
}

#endif
