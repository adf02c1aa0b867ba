/*
 * Tests of the cost ledger and the limit overrides (store/ledger.c, schema
 * migration 3) and of `memchat costs` (cli/cmd_costs.c): the migration on a
 * file from the previous version, one ledger row per turn, unknown costs
 * kept NULL and counted apart, the sums the budgets read, the groupings of
 * the report (UTC days included), the overrides, and the report's exact
 * text and NDJSON for a small ledger whose sums are worked out by hand.
 * Costs are binary fractions (1/16, 1/4, ...) so every sum is exact and the
 * expected figures follow from arithmetic, not from a previous run.
 */
#include "testutil.h"

#include <inttypes.h>
#include <math.h>
#include <time.h>

#include <sqlite3.h>

#include "cli/cli.h"
#include "memchat/error.h"
#include "store/db.h"
#include "store/ledger.h"
#include "store/metrics.h"
#include "tu_config.h"

#define DAY_MS 86400000LL
/* A string literal as the char * of cli_opts.args (never written to). */
#define ARG(s) ((char *)(uintptr_t)(s))
/* 2024-03-10T12:00:00Z, the "now" of the report tests. */
#define NOW_MS 1710072000000LL
/* 2024-03-01T00:00:00Z: midnight UTC, for the day boundaries. */
#define MAR1_MS 1709251200000LL

struct fixture {
    char *dir;
    char *path; /* dir/memchat.db */
    struct db *db;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->dir = tu_mkdtemp();
    size_t n = strlen(f->dir) + sizeof "/memchat.db";
    f->path = malloc(n);
    assert_non_null(f->path);
    snprintf(f->path, n, "%s/memchat.db", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    db_close(f->db);
    tu_rmtree(f->dir);
    free(f->dir);
    free(f->path);
    free(f);
    return 0;
}

/* Opens the fixture's file at the latest schema. */
static struct db *open_db(struct fixture *f)
{
    enum db_error why;
    char err[512];
    f->db = db_open(f->path, &why, err, sizeof err);
    if (f->db == NULL)
        fail_msg("db_open: %s", err);
    return f->db;
}

/* --- raw sqlite3 helpers, independent of the code under test ------------- */

static long long raw_int(struct db *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db_handle(db), sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db_handle(db)));
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    long long v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* 1 when the first column of sql's row is NULL. */
static int raw_is_null(struct db *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db_handle(db), sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int v = sqlite3_column_type(st, 0) == SQLITE_NULL;
    sqlite3_finalize(st);
    return v;
}

static double raw_double(struct db *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db_handle(db), sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    double v = sqlite3_column_double(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* --- rows ------------------------------------------------------------------ */

/* A complete row with known cost; tests change what they look at. */
static struct ledger_row row_make(const char *turn, int64_t ts_ms, const char *tenant,
                                  const char *user, double usd)
{
    struct ledger_row r = {
        .turn = turn,
        .ts_ms = ts_ms,
        .tenant = tenant,
        .user = user,
        .agent = "assistant",
        .provider = "openai",
        .model = "gpt-4o",
        .prompt_tokens = 100,
        .completion_tokens = 20,
        .cached_tokens = 0,
        .usd = usd,
        .latency_ms = 12.5,
        .cache_hit = false,
        .memory = true,
        .retries = 0,
        .status = "ok",
        .minify_bytes_saved = 0,
    };
    return r;
}

static void insert_ok(struct db *db, const struct ledger_row *r)
{
    char err[512] = "";
    if (ledger_insert(db, r, err, sizeof err) != 0)
        fail_msg("ledger_insert %s: %s", r->turn, err);
}

/* The report fixture (NOW_MS = 2024-03-10T12:00Z), summed by hand:
 *   t1 acme/alice  gpt-4o   1d ago  in 1000 out 200 cached 100  $0.0625  saved 40
 *   t2 acme/bob    claude   2d ago  in  500 out  50 cached   0  $0.25
 *   t3 acme/alice  gpt-4o   3d ago  in 1000 out 200 cached   0  $0 (cache hit)
 *   t4 globex/alice mystery 4d ago  in   10 out  20 cached NULL  no price  saved 7
 *   t5 acme/alice  gpt-4o  40d ago  in  999 out 999 cached   0  $1 (outside 30d)
 * Last 30 days: acme 3 turns, in 2500, out 450, cached 100, $0.3125, 1 hit,
 * 40 bytes; globex 1 turn, in 10, out 20, cached 0, no price, 7 bytes;
 * total 4 turns, in 2510, out 470, cached 100, $0.3125, 1 hit, 47 bytes. */
static void insert_report_fixture(struct db *db)
{
    struct ledger_row r = row_make("t1", NOW_MS - 1 * DAY_MS, "acme", "alice", 0.0625);
    r.prompt_tokens = 1000;
    r.completion_tokens = 200;
    r.cached_tokens = 100;
    r.minify_bytes_saved = 40;
    insert_ok(db, &r);

    r = row_make("t2", NOW_MS - 2 * DAY_MS, "acme", "bob", 0.25);
    r.provider = "anthropic";
    r.model = "claude";
    r.prompt_tokens = 500;
    r.completion_tokens = 50;
    insert_ok(db, &r);

    r = row_make("t3", NOW_MS - 3 * DAY_MS, "acme", "alice", 0);
    r.prompt_tokens = 1000;
    r.completion_tokens = 200;
    r.cache_hit = true;
    insert_ok(db, &r);

    r = row_make("t4", NOW_MS - 4 * DAY_MS, "globex", "alice", -1);
    r.model = "mystery";
    r.agent = "coder";
    r.prompt_tokens = 10;
    r.completion_tokens = 20;
    r.cached_tokens = -1;
    r.minify_bytes_saved = 7;
    insert_ok(db, &r);

    r = row_make("t5", NOW_MS - 40 * DAY_MS, "acme", "alice", 1.0);
    r.prompt_tokens = 999;
    r.completion_tokens = 999;
    insert_ok(db, &r);
}

/* Collects ledger_costs() groups (keys copied). */
struct groups {
    struct ledger_costs_row v[16];
    char keys[16][64];
    size_t n;
};

static int groups_add(const struct ledger_costs_row *row, void *ctx)
{
    struct groups *g = ctx;
    assert_true(g->n < 16);
    g->v[g->n] = *row;
    if (row->key != NULL) {
        snprintf(g->keys[g->n], sizeof g->keys[g->n], "%s", row->key);
        g->v[g->n].key = g->keys[g->n];
    }
    g->n++;
    return 0;
}

static void groups_of(struct db *db, enum ledger_group by, int64_t since, struct groups *g)
{
    char err[512] = "";
    memset(g, 0, sizeof *g);
    if (ledger_costs(db, by, since, groups_add, g, err, sizeof err) != 0)
        fail_msg("ledger_costs: %s", err);
}

/* --- migration --------------------------------------------------------------- */

/* A file at version 2 (metrics and settings) is taken to version 3 by
 * db_open: the ledger and limit_overrides tables and the ledger's indexes
 * appear, the migration is recorded under its name, and the metrics row
 * written before the upgrade is still there. */
static void migration_3_upgrades_a_version_2_file_and_keeps_its_rows(void **state)
{
    struct fixture *f = *state;
    enum db_error why;
    char err[512] = "";
    assert_true(db_migrations_count >= 3);
    assert_string_equal(db_migrations[2].name, "ledger and limits");
    struct db *db = db_open_with(f->path, db_migrations, 2, &why, err, sizeof err);
    assert_non_null(db);
    assert_int_equal(db_schema_version(db), 2);
    /* A row as version 2's code wrote it. */
    assert_int_equal(sqlite3_exec(db_handle(db),
                                  "INSERT INTO turn_metrics (turn, ts_ms, tenant, user_id, agent,"
                                  " memory, status) VALUES ('0190a0b0-0000-7000-8000-000000000001',"
                                  " 1, 'acme', 'alice', 'assistant', 0, 'ok')",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'ledger'"), 0);
    db_close(db);

    db = open_db(f);
    assert_int_equal(db_schema_version(db), (int)db_migrations_count);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM turn_metrics"), 1);
    struct metrics_row row;
    assert_int_equal(
        metrics_get_turn(db, "0190a0b0-0000-7000-8000-000000000001", &row, err, sizeof err), 0);
    assert_string_equal(row.tenant, "acme");
    metrics_row_free(&row);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                                 " AND name IN ('ledger', 'limit_overrides')"),
                     2);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name"
                                 " IN ('ledger_ts', 'ledger_tenant_ts', 'ledger_tenant_user_ts')"),
                     3);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM schema_version WHERE version = 3 AND name = "
                                 "'ledger and limits'"),
                     1);
    /* The new column's default: a row written without it saved nothing. */
    assert_int_equal(raw_int(db, "SELECT dflt_value FROM pragma_table_info('ledger')"
                                 " WHERE name = 'minify_bytes_saved'"),
                     0);
}

/* --- insert ---------------------------------------------------------------- */

/* Every field lands in its column; unknown values (negative tokens, a
 * negative or NaN cost, a negative latency, no provider) are NULL, and a
 * known zero cost stays 0 (a cache hit is free, not unpriced). */
static void insert_stores_every_field_and_null_for_the_unknown(void **state)
{
    struct db *db = open_db(*state);
    struct ledger_row r = row_make("known", NOW_MS, "acme", "alice", 0.0625);
    r.cached_tokens = 30;
    r.cache_hit = true;
    r.memory = false;
    r.retries = 2;
    r.status = "error:network";
    r.minify_bytes_saved = 99;
    insert_ok(db, &r);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM ledger WHERE turn = 'known' AND ts_ms = "
                                 "1710072000000 AND tenant = 'acme' AND user_id = 'alice' AND "
                                 "agent = 'assistant' AND provider = 'openai' AND model = "
                                 "'gpt-4o' AND prompt_tokens = 100 AND completion_tokens = 20 AND "
                                 "cached_tokens = 30 AND usd = 0.0625 AND latency_ms = 12.5 AND "
                                 "cache_hit = 1 AND memory = 0 AND retries = 2 AND status = "
                                 "'error:network' AND minify_bytes_saved = 99"),
                     1);

    r = row_make("unknown", NOW_MS, "acme", "alice", -1);
    r.provider = NULL;
    r.model = NULL;
    r.prompt_tokens = -1;
    r.completion_tokens = -1;
    r.cached_tokens = -1;
    r.latency_ms = -1;
    insert_ok(db, &r);
    assert_true(raw_is_null(db, "SELECT usd FROM ledger WHERE turn = 'unknown'"));
    assert_true(raw_is_null(db, "SELECT provider FROM ledger WHERE turn = 'unknown'"));
    assert_true(raw_is_null(db, "SELECT model FROM ledger WHERE turn = 'unknown'"));
    assert_true(raw_is_null(db, "SELECT prompt_tokens FROM ledger WHERE turn = 'unknown'"));
    assert_true(raw_is_null(db, "SELECT completion_tokens FROM ledger WHERE turn = 'unknown'"));
    assert_true(raw_is_null(db, "SELECT cached_tokens FROM ledger WHERE turn = 'unknown'"));
    assert_true(raw_is_null(db, "SELECT latency_ms FROM ledger WHERE turn = 'unknown'"));

    r = row_make("nan", NOW_MS, "acme", "alice", NAN);
    insert_ok(db, &r);
    assert_true(raw_is_null(db, "SELECT usd FROM ledger WHERE turn = 'nan'"));

    r = row_make("free", NOW_MS, "acme", "alice", 0.0);
    r.cache_hit = true;
    insert_ok(db, &r);
    assert_false(raw_is_null(db, "SELECT usd FROM ledger WHERE turn = 'free'"));
    assert_true(raw_double(db, "SELECT usd FROM ledger WHERE turn = 'free'") == 0.0);
}

/* A second row for the same turn is refused with a message naming the
 * turn, and the first row is left as it was: one row per turn. */
static void a_turn_has_exactly_one_ledger_row(void **state)
{
    struct db *db = open_db(*state);
    struct ledger_row r =
        row_make("0190a0b0-0000-7000-8000-00000000000a", NOW_MS, "acme", "alice", 0.25);
    insert_ok(db, &r);
    r.usd = 0.5;
    r.tenant = "globex";
    char err[512] = "";
    assert_int_equal(ledger_insert(db, &r, err, sizeof err), -1);
    assert_non_null(
        strstr(err, "turn 0190a0b0-0000-7000-8000-00000000000a already has a ledger row"));
    assert_int_equal(raw_int(db, "SELECT count(*) FROM ledger"), 1);
    assert_true(raw_double(db, "SELECT usd FROM ledger") == 0.25);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM ledger WHERE tenant = 'acme'"), 1);
}

/* Required fields missing and negative counts are refused before SQLite
 * sees them, each with a message naming the field; nothing is written. */
static void insert_refuses_missing_fields_and_negative_counts(void **state)
{
    struct db *db = open_db(*state);
    char err[512] = "";
    struct ledger_row r = row_make("x", NOW_MS, "acme", "alice", 0.25);
    r.agent = NULL;
    assert_int_equal(ledger_insert(db, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "agent is NULL"));
    r = row_make(NULL, NOW_MS, "acme", "alice", 0.25);
    assert_int_equal(ledger_insert(db, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "turn is NULL"));
    r = row_make("x", NOW_MS, "acme", "alice", 0.25);
    r.status = NULL;
    assert_int_equal(ledger_insert(db, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "status is NULL"));
    r = row_make("x", NOW_MS, "acme", "alice", 0.25);
    r.retries = -1;
    assert_int_equal(ledger_insert(db, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "retries"));
    r = row_make("x", NOW_MS, "acme", "alice", 0.25);
    r.minify_bytes_saved = -5;
    assert_int_equal(ledger_insert(db, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "minify_bytes_saved"));
    assert_int_equal(raw_int(db, "SELECT count(*) FROM ledger"), 0);
}

/* The insert runs inside the caller's transaction and never commits on its
 * own: rolled back with the metrics row, it is gone; committed, it stays. */
static void insert_belongs_to_the_callers_transaction(void **state)
{
    struct db *db = open_db(*state);
    char err[512] = "";
    assert_int_equal(db_begin(db, err, sizeof err), 0);
    struct ledger_row r = row_make("rolled-back", NOW_MS, "acme", "alice", 0.25);
    insert_ok(db, &r);
    db_rollback(db);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM ledger"), 0);

    assert_int_equal(db_begin(db, err, sizeof err), 0);
    r.turn = "committed";
    insert_ok(db, &r);
    assert_int_equal(db_commit(db, err, sizeof err), 0);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM ledger WHERE turn = 'committed'"), 1);
}

/* --- spent ----------------------------------------------------------------- */

/* A cost that is not known is left out of the sum and counted apart; a
 * known zero counts as a priced turn. */
static void unknown_costs_are_left_out_of_sums_and_counted(void **state)
{
    struct db *db = open_db(*state);
    struct ledger_row r = row_make("a", NOW_MS, "acme", "alice", 0.25);
    insert_ok(db, &r);
    r = row_make("b", NOW_MS, "acme", "alice", -1);
    insert_ok(db, &r);
    r = row_make("c", NOW_MS, "acme", "alice", 0);
    insert_ok(db, &r);
    r = row_make("d", NOW_MS, "acme", "alice", -1);
    insert_ok(db, &r);
    double usd = -1;
    long long unknown = -1;
    char err[512] = "";
    assert_int_equal(ledger_spent_usd(db, LEDGER_SCOPE_TENANT, "acme", NULL, 0, NOW_MS + 1, &usd,
                                      &unknown, err, sizeof err),
                     0);
    assert_true(usd == 0.25);
    assert_int_equal(unknown, 2);
    /* Only unknown costs: the sum is 0 and every turn is counted. */
    assert_int_equal(ledger_spent_usd(db, LEDGER_SCOPE_TENANT, "nobody", NULL, 0, NOW_MS + 1, &usd,
                                      &unknown, err, sizeof err),
                     0);
    assert_true(usd == 0.0);
    assert_int_equal(unknown, 0);
}

/* The tenant scope adds every user of the tenant, the user scope one user
 * of one tenant (the same user id in another tenant is someone else), and
 * the window is [since, until): a turn at since counts, one at until does
 * not (it belongs to the next period). */
static void spent_is_summed_per_scope_over_a_half_open_window(void **state)
{
    struct db *db = open_db(*state);
    const int64_t since = MAR1_MS, until = MAR1_MS + DAY_MS;
    struct ledger_row rows[] = {
        row_make("at-since", since, "acme", "alice", 0.5),
        row_make("inside", since + 1000, "acme", "bob", 0.25),
        row_make("before", since - 1, "acme", "alice", 4),
        row_make("at-until", until, "acme", "alice", 8),
        row_make("last-ms", until - 1, "acme", "alice", 0.125),
        row_make("other-tenant", since + 1000, "globex", "alice", 16),
        row_make("no-price", since + 2000, "acme", "alice", -1),
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        insert_ok(db, &rows[i]);
    double usd = -1;
    long long unknown = -1;
    char err[512] = "";
    assert_int_equal(ledger_spent_usd(db, LEDGER_SCOPE_TENANT, "acme", NULL, since, until, &usd,
                                      &unknown, err, sizeof err),
                     0);
    assert_true(usd == 0.5 + 0.25 + 0.125);
    assert_int_equal(unknown, 1);
    assert_int_equal(ledger_spent_usd(db, LEDGER_SCOPE_USER, "acme", "alice", since, until, &usd,
                                      NULL, err, sizeof err),
                     0);
    assert_true(usd == 0.5 + 0.125);
    assert_int_equal(ledger_spent_usd(db, LEDGER_SCOPE_USER, "globex", "alice", since, until, &usd,
                                      &unknown, err, sizeof err),
                     0);
    assert_true(usd == 16);
    assert_int_equal(unknown, 0);
    /* The user scope needs a user. */
    assert_int_equal(ledger_spent_usd(db, LEDGER_SCOPE_USER, "acme", NULL, since, until, &usd, NULL,
                                      err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "user is NULL"));
}

/* --- grouping -------------------------------------------------------------- */

/* Each grouping sums the right rows under the right key, in key order:
 * users are tenant/user (alice of acme and alice of globex apart), a turn
 * without a model is the NULL key and comes first, and "none" is one group
 * holding everything. The since bound drops the 40-day-old turn. */
static void costs_are_grouped_by_each_key(void **state)
{
    struct db *db = open_db(*state);
    insert_report_fixture(db);
    struct ledger_row r = row_make("nomodel", NOW_MS - DAY_MS, "acme", "carol", 0.5);
    r.model = NULL;
    insert_ok(db, &r);
    const int64_t since = NOW_MS - 30 * DAY_MS;
    struct groups g;

    groups_of(db, LEDGER_BY_TENANT, since, &g);
    assert_int_equal(g.n, 2);
    assert_string_equal(g.v[0].key, "acme");
    assert_int_equal(g.v[0].turns, 4); /* t1 t2 t3 nomodel */
    assert_int_equal(g.v[0].prompt_tokens, 1000 + 500 + 1000 + 100);
    assert_int_equal(g.v[0].completion_tokens, 200 + 50 + 200 + 20);
    assert_int_equal(g.v[0].cached_tokens, 100);
    assert_true(g.v[0].usd == 0.0625 + 0.25 + 0 + 0.5);
    assert_int_equal(g.v[0].unknown_cost_turns, 0);
    assert_int_equal(g.v[0].cache_hits, 1);
    assert_int_equal(g.v[0].bytes_saved, 40);
    assert_string_equal(g.v[1].key, "globex");
    assert_int_equal(g.v[1].turns, 1);
    assert_int_equal(g.v[1].cached_tokens, 0); /* NULL counts add nothing */
    assert_true(g.v[1].usd == 0.0);
    assert_int_equal(g.v[1].unknown_cost_turns, 1);
    assert_int_equal(g.v[1].bytes_saved, 7);

    groups_of(db, LEDGER_BY_USER, since, &g);
    assert_int_equal(g.n, 4);
    assert_string_equal(g.v[0].key, "acme/alice");
    assert_int_equal(g.v[0].turns, 2);
    assert_true(g.v[0].usd == 0.0625);
    assert_string_equal(g.v[1].key, "acme/bob");
    assert_string_equal(g.v[2].key, "acme/carol");
    assert_string_equal(g.v[3].key, "globex/alice");
    assert_int_equal(g.v[3].unknown_cost_turns, 1);

    groups_of(db, LEDGER_BY_AGENT, since, &g);
    assert_int_equal(g.n, 2);
    assert_string_equal(g.v[0].key, "assistant");
    assert_int_equal(g.v[0].turns, 4);
    assert_string_equal(g.v[1].key, "coder");
    assert_int_equal(g.v[1].turns, 1);

    groups_of(db, LEDGER_BY_MODEL, since, &g);
    assert_int_equal(g.n, 4);
    assert_null(g.v[0].key);
    assert_true(g.v[0].usd == 0.5);
    assert_string_equal(g.v[1].key, "claude");
    assert_string_equal(g.v[2].key, "gpt-4o");
    assert_int_equal(g.v[2].turns, 2);
    assert_int_equal(g.v[2].cache_hits, 1);
    assert_string_equal(g.v[3].key, "mystery");

    groups_of(db, LEDGER_BY_NONE, since, &g);
    assert_int_equal(g.n, 1);
    assert_null(g.v[0].key);
    assert_int_equal(g.v[0].turns, 5);
    assert_true(g.v[0].usd == 0.8125);
    assert_int_equal(g.v[0].unknown_cost_turns, 1);

    /* Everything: the old turn joins acme. */
    groups_of(db, LEDGER_BY_NONE, INT64_MIN, &g);
    assert_int_equal(g.v[0].turns, 6);
    assert_true(g.v[0].usd == 1.8125);
}

/* Days are UTC calendar days whatever the local time zone: the last
 * millisecond of 29 February 2024 and the first of 1 March fall on two
 * days, and a time just before the epoch is 31 December 1969. TZ is set to
 * UTC+14, where the last millisecond of 29 February is already 1 March, so
 * a grouping in local time would merge it with 1 March's rows and fail. */
static void day_groups_are_utc_calendar_days(void **state)
{
    struct db *db = open_db(*state);
    char *old_tz = getenv("TZ") != NULL ? strdup(getenv("TZ")) : NULL;
    setenv("TZ", "XST-14", 1); /* POSIX: 14 h east of UTC, no tzdata needed */
    tzset();
    struct ledger_row rows[] = {
        row_make("feb29-last", MAR1_MS - 1, "acme", "alice", 0.5),
        row_make("mar1-first", MAR1_MS, "acme", "alice", 0.25),
        row_make("mar1-last", MAR1_MS + DAY_MS - 1, "acme", "alice", 0.125),
        row_make("pre-epoch", -1, "acme", "alice", 1),
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        insert_ok(db, &rows[i]);
    struct groups g;
    groups_of(db, LEDGER_BY_DAY, INT64_MIN, &g);
    if (old_tz != NULL)
        setenv("TZ", old_tz, 1);
    else
        unsetenv("TZ");
    tzset();
    free(old_tz);
    assert_int_equal(g.n, 3);
    assert_string_equal(g.v[0].key, "1969-12-31");
    assert_string_equal(g.v[1].key, "2024-02-29");
    assert_true(g.v[1].usd == 0.5);
    assert_string_equal(g.v[2].key, "2024-03-01");
    assert_int_equal(g.v[2].turns, 2);
    assert_true(g.v[2].usd == 0.375);
}

static int stop_after_first(const struct ledger_costs_row *row, void *ctx)
{
    (void)row;
    int *calls = ctx;
    ++*calls;
    return 42;
}

/* An empty ledger calls nobody (the "none" grouping included), and a
 * callback's nonzero result stops the walk and is returned. */
static void costs_walk_stops_when_asked_and_is_silent_when_empty(void **state)
{
    struct db *db = open_db(*state);
    char err[512] = "";
    int calls = 0;
    assert_int_equal(
        ledger_costs(db, LEDGER_BY_NONE, INT64_MIN, stop_after_first, &calls, err, sizeof err), 0);
    assert_int_equal(calls, 0);
    insert_report_fixture(db);
    assert_int_equal(
        ledger_costs(db, LEDGER_BY_TENANT, INT64_MIN, stop_after_first, &calls, err, sizeof err),
        42);
    assert_int_equal(calls, 1);
}

/* Group names round-trip and unknown names are refused. */
static void group_names_parse_and_print(void **state)
{
    (void)state;
    static const char *const names[] = {"tenant", "user", "agent", "model", "day", "none"};
    for (size_t i = 0; i < 6; i++) {
        enum ledger_group by;
        assert_true(ledger_group_parse(names[i], &by));
        assert_int_equal(by, (int)i);
        assert_string_equal(ledger_group_name(by), names[i]);
    }
    enum ledger_group by = LEDGER_BY_DAY;
    assert_false(ledger_group_parse("tenants", &by));
    assert_false(ledger_group_parse("", &by));
    assert_int_equal(by, LEDGER_BY_DAY);
}

/* --- overrides ------------------------------------------------------------- */

struct seen {
    char lines[16][160];
    size_t n;
};

static int seen_add(const struct ledger_override *o, void *ctx)
{
    struct seen *s = ctx;
    assert_true(s->n < 16);
    snprintf(s->lines[s->n++], sizeof s->lines[0], "%s %s/%s %s=%g @%" PRId64,
             o->scope == LEDGER_SCOPE_USER ? "user" : "tenant", o->tenant, o->user, o->name,
             o->value, o->updated_ms);
    return 0;
}

static void overrides_list(struct db *db, struct seen *s)
{
    char err[512] = "";
    memset(s, 0, sizeof *s);
    if (ledger_overrides_each(db, seen_add, s, err, sizeof err) != 0)
        fail_msg("ledger_overrides_each: %s", err);
}

/* Set stores, a second set of the same scope/tenant/user/name replaces the
 * value and its time (no second row), the listing is ordered tenants
 * first, and clear removes one name, or all of a scope's names with NULL;
 * clearing what is not there says so (1). */
static void overrides_are_set_replaced_listed_and_cleared(void **state)
{
    struct db *db = open_db(*state);
    char err[512] = "";
    assert_int_equal(
        ledger_override_set(db, LEDGER_SCOPE_USER, "acme", "bob", "rpm", 5, 100, err, sizeof err),
        0);
    assert_int_equal(
        ledger_override_set(db, LEDGER_SCOPE_TENANT, "acme", NULL, "rpm", 60, 101, err, sizeof err),
        0);
    assert_int_equal(ledger_override_set(db, LEDGER_SCOPE_TENANT, "acme", "", "budget_usd", 2.5,
                                         102, err, sizeof err),
                     0);
    assert_int_equal(
        ledger_override_set(db, LEDGER_SCOPE_TENANT, "acme", NULL, "rpm", 30, 200, err, sizeof err),
        0);
    assert_int_equal(
        ledger_override_set(db, LEDGER_SCOPE_USER, "acme", "bob", "tpm", 0, 103, err, sizeof err),
        0);
    struct seen s;
    overrides_list(db, &s);
    assert_int_equal(s.n, 4);
    assert_string_equal(s.lines[0], "tenant acme/ budget_usd=2.5 @102");
    assert_string_equal(s.lines[1], "tenant acme/ rpm=30 @200");
    assert_string_equal(s.lines[2], "user acme/bob rpm=5 @100");
    assert_string_equal(s.lines[3], "user acme/bob tpm=0 @103");

    assert_int_equal(
        ledger_override_clear(db, LEDGER_SCOPE_TENANT, "acme", NULL, "rpm", err, sizeof err), 0);
    assert_int_equal(
        ledger_override_clear(db, LEDGER_SCOPE_TENANT, "acme", NULL, "rpm", err, sizeof err), 1);
    assert_non_null(strstr(err, "tenant acme has no override named rpm"));
    overrides_list(db, &s);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.lines[0], "tenant acme/ budget_usd=2.5 @102");

    /* The tenant's clear-all leaves the user's overrides alone. */
    assert_int_equal(
        ledger_override_clear(db, LEDGER_SCOPE_TENANT, "acme", NULL, NULL, err, sizeof err), 0);
    overrides_list(db, &s);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.lines[0], "user acme/bob rpm=5 @100");
    assert_int_equal(
        ledger_override_clear(db, LEDGER_SCOPE_USER, "acme", "bob", NULL, err, sizeof err), 0);
    overrides_list(db, &s);
    assert_int_equal(s.n, 0);
    assert_int_equal(
        ledger_override_clear(db, LEDGER_SCOPE_USER, "acme", "bob", NULL, err, sizeof err), 1);
    assert_non_null(strstr(err, "user acme/bob has no override"));
}

/* Bad arguments are refused with a message naming the argument and what
 * is accepted, and nothing is stored. */
static void overrides_refuse_bad_ids_names_and_values(void **state)
{
    struct db *db = open_db(*state);
    char err[512] = "";
    assert_int_equal(
        ledger_override_set(db, LEDGER_SCOPE_TENANT, "ac me", NULL, "rpm", 1, 0, err, sizeof err),
        -1);
    assert_non_null(strstr(err, "tenant 'ac me' is not a valid id"));
    assert_int_equal(
        ledger_override_set(db, LEDGER_SCOPE_USER, "acme", NULL, "rpm", 1, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "user '(null)' is not a valid id"));
    assert_int_equal(
        ledger_override_set(db, LEDGER_SCOPE_TENANT, "acme", "bob", "rpm", 1, 0, err, sizeof err),
        -1);
    assert_non_null(strstr(err, "a tenant override takes no user"));
    assert_int_equal(
        ledger_override_set(db, LEDGER_SCOPE_TENANT, "acme", NULL, "RPM", 1, 0, err, sizeof err),
        -1);
    assert_non_null(strstr(err, "override name 'RPM' is not valid"));
    assert_int_equal(
        ledger_override_set(db, LEDGER_SCOPE_TENANT, "acme", NULL, "rpm", -1, 0, err, sizeof err),
        -1);
    assert_non_null(strstr(err, ">= 0"));
    assert_int_equal(ledger_override_set(db, LEDGER_SCOPE_TENANT, "acme", NULL, "rpm", INFINITY, 0,
                                         err, sizeof err),
                     -1);
    assert_int_equal(
        ledger_override_set(db, LEDGER_SCOPE_TENANT, "acme", NULL, NULL, 1, 0, err, sizeof err),
        -1);
    assert_non_null(strstr(err, "name is NULL"));
    assert_int_equal(raw_int(db, "SELECT count(*) FROM limit_overrides"), 0);
}

/* --- memchat costs ----------------------------------------------------------- */

/* --since takes the configuration's durations (bare N is seconds) and
 * "all", and refuses anything else with the accepted forms. */
static void since_takes_config_durations_and_all(void **state)
{
    (void)state;
    char err[512] = "";
    int64_t since = 0;
    assert_int_equal(costs_parse_since("7d", NOW_MS, &since, err, sizeof err), 0);
    assert_int_equal(since, NOW_MS - 7 * DAY_MS);
    assert_int_equal(costs_parse_since("90", NOW_MS, &since, err, sizeof err), 0);
    assert_int_equal(since, NOW_MS - 90000);
    assert_int_equal(costs_parse_since("2w", NOW_MS, &since, err, sizeof err), 0);
    assert_int_equal(since, NOW_MS - 14 * DAY_MS);
    assert_int_equal(costs_parse_since("12h", NOW_MS, &since, err, sizeof err), 0);
    assert_int_equal(since, NOW_MS - 12 * 3600000LL);
    assert_int_equal(costs_parse_since("all", NOW_MS, &since, err, sizeof err), 0);
    assert_true(since == INT64_MIN);
    static const char *const bad[] = {"", "7x", "-5d", "1.5d", "d", "ALL", "99999999999999999w"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        since = 7;
        err[0] = '\0';
        assert_int_equal(costs_parse_since(bad[i], NOW_MS, &since, err, sizeof err), -1);
        assert_int_equal(since, 7);
        assert_non_null(strstr(err, "--since"));
        assert_non_null(strstr(err, "or all"));
    }
}

/* The verb's own options arrive in o->args in both spellings; a missing
 * value or a stray argument is refused. */
static void costs_arguments_are_parsed_in_both_spellings(void **state)
{
    (void)state;
    char err[512] = "";
    const char *by = NULL, *since = NULL;
    char *a1[] = {ARG("--by"), ARG("day"), ARG("--since=7d")};
    struct cli_opts o = {.args = a1, .n_args = 3};
    assert_int_equal(costs_parse_args(&o, &by, &since, err, sizeof err), 0);
    assert_string_equal(by, "day");
    assert_string_equal(since, "7d");
    char *a2[] = {ARG("--by=model")};
    o = (struct cli_opts){.args = a2, .n_args = 1};
    assert_int_equal(costs_parse_args(&o, &by, &since, err, sizeof err), 0);
    assert_string_equal(by, "model");
    assert_null(since);
    char *a3[] = {ARG("--since")};
    o = (struct cli_opts){.args = a3, .n_args = 1};
    assert_int_equal(costs_parse_args(&o, &by, &since, err, sizeof err), -1);
    assert_non_null(strstr(err, "--since needs a value"));
    char *a4[] = {ARG("tenant")};
    o = (struct cli_opts){.args = a4, .n_args = 1};
    assert_int_equal(costs_parse_args(&o, &by, &since, err, sizeof err), -1);
    assert_non_null(strstr(err, "unexpected argument 'tenant'"));
    char *a5[] = {ARG("--byx"), ARG("y")};
    o = (struct cli_opts){.args = a5, .n_args = 2};
    assert_int_equal(costs_parse_args(&o, &by, &since, err, sizeof err), -1);
    assert_non_null(strstr(err, "unexpected argument '--byx'"));
}

/* Runs costs_report into a memory stream; returns the text (caller frees)
 * and the exit code in *rc. */
static char *report(struct db *db, const char *by, const char *since, bool json, int *rc, char *err,
                    size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    assert_non_null(out);
    *rc = costs_report(db, by, since, json, NOW_MS, out, err, errlen);
    assert_int_equal(fclose(out), 0);
    return text;
}

/* The default report (by tenant, last 30 days) of the fixture: the sums
 * worked out at insert_report_fixture(), columns right-aligned to the
 * widest of header and cells ("TENANT" 6, "TURNS" 5, ..., "0.3125" 6 for
 * USD, so "USD" gets 3 spaces of padding and the one-column dash 5), a
 * dash for globex whose only turn has no price, the TOTAL line, and the
 * note counting that turn. The 40-day-old turn is not in it. */
static void the_costs_table_for_a_small_ledger(void **state)
{
    struct db *db = open_db(*state);
    insert_report_fixture(db);
    char err[512] = "";
    int rc = -1;
    char *text = report(db, NULL, NULL, false, &rc, err, sizeof err);
    assert_int_equal(rc, MC_EXIT_OK);
    assert_string_equal(
        text, "TENANT  TURNS  TOKENS IN  TOKENS OUT  CACHED IN     USD  CACHE HITS  BYTES SAVED\n"
              "acme        3       2500         450        100  0.3125           1           40\n"
              "globex      1         10          20          0       \xe2\x80\x94           0"
              "            7\n"
              "TOTAL       4       2510         470        100  0.3125           1           47\n"
              "note: 1 turn without a price (not in the USD figures)\n");
    free(text);

    /* --since all brings the old turn back: acme gains 1 turn, 999 + 999
     * tokens and $1; no cell outgrows its header, so the layout is the
     * same and only the figures change. */
    text = report(db, "tenant", "all", false, &rc, err, sizeof err);
    assert_int_equal(rc, MC_EXIT_OK);
    assert_non_null(strstr(text, "acme        4       3499        1449        100  1.3125"));
    assert_non_null(strstr(text, "TOTAL       5       3509        1469        100  1.3125"));
    free(text);

    /* By model: the key header is MODEL and the key column is as wide as
     * "mystery" (7). */
    text = report(db, "model", "30d", false, &rc, err, sizeof err);
    assert_int_equal(rc, MC_EXIT_OK);
    assert_string_equal(
        text, "MODEL    TURNS  TOKENS IN  TOKENS OUT  CACHED IN     USD  CACHE HITS  BYTES SAVED\n"
              "claude       1        500          50          0  0.2500           0            0\n"
              "gpt-4o       2       2000         400        100  0.0625           1           40\n"
              "mystery      1         10          20          0       \xe2\x80\x94           0"
              "            7\n"
              "TOTAL        4       2510         470        100  0.3125           1           47\n"
              "note: 1 turn without a price (not in the USD figures)\n");
    free(text);
}

/* With --json: one NDJSON object per group and no total line; usd is null
 * for a group without any price, and since_ms is the window's start
 * (NOW - 30 d = 1710072000000 - 2592000000). --by none is the total as
 * one object with a null key. */
static void the_costs_ndjson_for_a_small_ledger(void **state)
{
    struct db *db = open_db(*state);
    insert_report_fixture(db);
    char err[512] = "";
    int rc = -1;
    char *text = report(db, NULL, NULL, true, &rc, err, sizeof err);
    assert_int_equal(rc, MC_EXIT_OK);
    assert_string_equal(
        text,
        "{\"by\":\"tenant\",\"key\":\"acme\",\"since_ms\":1707480000000,\"turns\":3,"
        "\"prompt_tokens\":2500,\"completion_tokens\":450,\"cached_tokens\":100,\"usd\":0.3125,"
        "\"unknown_cost_turns\":0,\"cache_hits\":1,\"bytes_saved\":40}\n"
        "{\"by\":\"tenant\",\"key\":\"globex\",\"since_ms\":1707480000000,\"turns\":1,"
        "\"prompt_tokens\":10,\"completion_tokens\":20,\"cached_tokens\":0,\"usd\":null,"
        "\"unknown_cost_turns\":1,\"cache_hits\":0,\"bytes_saved\":7}\n");
    free(text);

    text = report(db, "none", "all", true, &rc, err, sizeof err);
    assert_int_equal(rc, MC_EXIT_OK);
    assert_string_equal(text, "{\"by\":\"none\",\"key\":null,\"since_ms\":null,\"turns\":5,"
                              "\"prompt_tokens\":3509,\"completion_tokens\":1469,"
                              "\"cached_tokens\":100,\"usd\":1.3125,\"unknown_cost_turns\":1,"
                              "\"cache_hits\":1,\"bytes_saved\":47}\n");
    free(text);

    /* Days: t1..t4 are 1..4 days before 2024-03-10T12:00Z. */
    text = report(db, "day", "7d", true, &rc, err, sizeof err);
    assert_int_equal(rc, MC_EXIT_OK);
    const char *p = text;
    static const char *const days[] = {"2024-03-06", "2024-03-07", "2024-03-08", "2024-03-09"};
    for (size_t i = 0; i < 4; i++) {
        char want[64];
        snprintf(want, sizeof want, "\"key\":\"%s\"", days[i]);
        p = strstr(p, want);
        assert_non_null(p);
    }
    free(text);
}

/* No data file and an empty ledger give the same report: the header and a
 * TOTAL of zeros, with 0.0000 USD (no turns cost nothing) and no note;
 * with --json, no output at all. */
static void an_empty_report_is_zeros_and_no_json(void **state)
{
    char err[512] = "";
    int rc = -1;
    static const char want[] =
        "TENANT  TURNS  TOKENS IN  TOKENS OUT  CACHED IN     USD  CACHE HITS  BYTES SAVED\n"
        "TOTAL       0          0           0          0  0.0000           0            0\n";
    char *text = report(NULL, NULL, NULL, false, &rc, err, sizeof err);
    assert_int_equal(rc, MC_EXIT_OK);
    assert_string_equal(text, want);
    free(text);
    struct db *db = open_db(*state);
    text = report(db, NULL, NULL, false, &rc, err, sizeof err);
    assert_int_equal(rc, MC_EXIT_OK);
    assert_string_equal(text, want);
    free(text);
    text = report(db, NULL, NULL, true, &rc, err, sizeof err);
    assert_int_equal(rc, MC_EXIT_OK);
    assert_string_equal(text, "");
    free(text);
}

/* A bad --by or --since is a usage error (exit 2) naming what is
 * accepted, and nothing is printed. */
static void a_bad_grouping_or_window_is_a_usage_error(void **state)
{
    struct db *db = open_db(*state);
    char err[512] = "";
    int rc = -1;
    char *text = report(db, "tenants", NULL, false, &rc, err, sizeof err);
    assert_int_equal(rc, MC_EXIT_USAGE);
    assert_string_equal(text, "");
    assert_non_null(strstr(err, "--by 'tenants' is not a grouping (accepted: tenant, user"));
    free(text);
    text = report(db, NULL, "yesterday", true, &rc, err, sizeof err);
    assert_int_equal(rc, MC_EXIT_USAGE);
    assert_string_equal(text, "");
    assert_non_null(strstr(err, "'yesterday' is not a duration"));
    free(text);
}

/* Runs cmd_costs with stdout sent to a file; returns what it printed. */
static char *run_cmd_costs(const char *dir, char **args, size_t n, int *rc)
{
    struct config *cfg = tu_config(dir, NULL, 0);
    struct cli_opts o = {.json = true, .args = args, .n_args = n};
    char outpath[4200];
    snprintf(outpath, sizeof outpath, "%s/stdout.txt", dir);
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    int fd = open(outpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    assert_true(dup2(fd, STDOUT_FILENO) >= 0);
    close(fd);
    *rc = cmd_costs(cfg, &o);
    fflush(stdout);
    assert_true(dup2(saved, STDOUT_FILENO) >= 0);
    close(saved);
    config_free(cfg);
    char *text = tu_read_file(outpath, NULL);
    assert_non_null(text);
    return text;
}

/* The verb reads MEMCHAT_DATA_DIR/memchat.db: with no file it reports
 * nothing and does not create one (a report never writes a new data
 * file); with one, it prints its groups. */
static void the_verb_reads_the_data_file_and_never_creates_one(void **state)
{
    struct fixture *f = *state;
    char data[4200], dbpath[4300];
    snprintf(data, sizeof data, "%s/data", f->dir);
    snprintf(dbpath, sizeof dbpath, "%s/memchat.db", data);
    assert_int_equal(mkdir(data, 0700), 0);
    int rc = -1;
    char *args[] = {ARG("--since"), ARG("all"), ARG("--by=none")};
    char *text = run_cmd_costs(f->dir, args, 3, &rc);
    assert_int_equal(rc, MC_EXIT_OK);
    assert_string_equal(text, "");
    free(text);
    struct stat st;
    assert_int_equal(stat(dbpath, &st), -1);

    enum db_error why;
    char err[512];
    struct db *db = db_open(dbpath, &why, err, sizeof err);
    assert_non_null(db);
    struct ledger_row r = row_make("only", NOW_MS, "acme", "alice", 0.5);
    insert_ok(db, &r);
    db_close(db);
    text = run_cmd_costs(f->dir, args, 3, &rc);
    assert_int_equal(rc, MC_EXIT_OK);
    assert_non_null(strstr(text, "\"by\":\"none\",\"key\":null,\"since_ms\":null,\"turns\":1,"));
    assert_non_null(strstr(text, "\"usd\":0.5,"));
    free(text);

    char *bad[] = {ARG("--by"), ARG("galaxy")};
    text = run_cmd_costs(f->dir, bad, 2, &rc);
    assert_int_equal(rc, MC_EXIT_USAGE);
    assert_string_equal(text, "");
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(migration_3_upgrades_a_version_2_file_and_keeps_its_rows,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(insert_stores_every_field_and_null_for_the_unknown, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_turn_has_exactly_one_ledger_row, setup, teardown),
        cmocka_unit_test_setup_teardown(insert_refuses_missing_fields_and_negative_counts, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(insert_belongs_to_the_callers_transaction, setup, teardown),
        cmocka_unit_test_setup_teardown(unknown_costs_are_left_out_of_sums_and_counted, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(spent_is_summed_per_scope_over_a_half_open_window, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(costs_are_grouped_by_each_key, setup, teardown),
        cmocka_unit_test_setup_teardown(day_groups_are_utc_calendar_days, setup, teardown),
        cmocka_unit_test_setup_teardown(costs_walk_stops_when_asked_and_is_silent_when_empty, setup,
                                        teardown),
        cmocka_unit_test(group_names_parse_and_print),
        cmocka_unit_test_setup_teardown(overrides_are_set_replaced_listed_and_cleared, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(overrides_refuse_bad_ids_names_and_values, setup, teardown),
        cmocka_unit_test(since_takes_config_durations_and_all),
        cmocka_unit_test(costs_arguments_are_parsed_in_both_spellings),
        cmocka_unit_test_setup_teardown(the_costs_table_for_a_small_ledger, setup, teardown),
        cmocka_unit_test_setup_teardown(the_costs_ndjson_for_a_small_ledger, setup, teardown),
        cmocka_unit_test_setup_teardown(an_empty_report_is_zeros_and_no_json, setup, teardown),
        cmocka_unit_test_setup_teardown(a_bad_grouping_or_window_is_a_usage_error, setup, teardown),
        cmocka_unit_test_setup_teardown(the_verb_reads_the_data_file_and_never_creates_one, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
