/*
 * Tests of the rollout rules (rollout/rollout.c): the six rules of
 * DESIGN.md "Is memory on for this turn?" in their order, checked for every
 * combination of the session, the agent, the tenant's own row, the
 * percentage (tenant inside and outside it), the global setting and
 * RAG_ENABLED against a reference written here from the brief's wording;
 * the settings persisted in the data file (seen after closing and
 * reopening it), reset and `percent off`, ids and ranges refused with a
 * message, the bucket pinned to values computed independently (Python's
 * hashlib) and spread evenly, and a read error that falls through to the
 * rules below it with -1 and a message naming the data file.
 */
#include "testutil.h"

#include <sqlite3.h>

#include "rollout/rollout.h"
#include "store/db.h"
#include "util/clock.h"

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
    enum db_error why;
    char err[512];
    f->db = db_open(f->path, &why, err, sizeof err);
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
    free(f->path);
    free(f);
    return 0;
}

/* Runs sql on db with sqlite3 directly (independent of the code under
 * test); fails the test on error. */
static void raw_exec(struct db *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db_handle(db), sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg);
}

static void ok(int rc, const char *err)
{
    if (rc != 0)
        fail_msg("unexpected failure: %s", err);
}

/* rollout_decide that must succeed. */
static struct rollout_decision decide_ok(struct db *db, const char *tenant,
                                         enum rollout_tri session, enum rollout_tri agent, bool env)
{
    struct rollout_input in = {tenant, session, agent, env};
    struct rollout_decision d = {false, NULL};
    char err[512] = "";
    ok(rollout_decide(db, &in, &d, err, sizeof err), err);
    assert_string_equal(err, "");
    assert_non_null(d.reason);
    return d;
}

/* --- the reference ------------------------------------------------------- */

/* DESIGN.md's list, read top to bottom: the first rule that has something
 * to say decides. row/global: -1 none, 0 off, 1 on; percent -1 none. The
 * agent decides only with memory: false (rollout.h: an agent's memory:
 * true says nothing). */
static void reference(int session, int agent, int row, int percent, int bucket, int global,
                      bool env, bool *memory, const char **reason)
{
    if (session == 0 || session == 1) {
        *memory = session == 1, *reason = "session";
    } else if (agent == 0) {
        *memory = false, *reason = "agent";
    } else if (row == 0 || row == 1) {
        *memory = row == 1, *reason = "tenant";
    } else if (percent >= 0) {
        *memory = bucket < percent, *reason = "percent";
    } else if (global == 0 || global == 1) {
        *memory = global == 1, *reason = "global";
    } else {
        *memory = env, *reason = "env";
    }
}

/* Puts the data file in the state row/percent/global for tenant, through
 * the setters under test (their effect is what the table then checks). */
static void set_state(struct db *db, const char *tenant, int row, int percent, int global)
{
    char err[512] = "";
    bool had;
    if (row < 0)
        ok(rollout_reset_tenant(db, tenant, &had, err, sizeof err), err);
    else
        ok(rollout_set_tenant(db, tenant, row == 1, err, sizeof err), err);
    ok(rollout_set_percent(db, percent, err, sizeof err), err);
    if (global < 0)
        raw_exec(db, "DELETE FROM settings WHERE key = 'rollout.global'");
    else
        ok(rollout_set_global(db, global == 1, err, sizeof err), err);
}

/* Every combination of the six inputs decides as the reference does, for
 * a tenant with a high bucket (acme, 95) and one with a low bucket
 * (globex, 13). The percentage takes three values per tenant: none, the
 * bucket + 1 (the tenant is just inside: bucket < N) and the bucket itself
 * (just outside), so it is seen deciding on and off at the boundary. Each
 * rule is thereby seen deciding (when it is the first to speak) and
 * passing to the next (when it is silent), with every lower rule set
 * against it. Another tenant's row must not leak into the decision. */
static void every_combination_decides_as_the_reference(void **state)
{
    struct fixture *f = *state;
    static const char *const tenants[] = {"acme", "globex"};
    static const int buckets[] = {95, 13}; /* pinned below against Python */
    char err[512] = "";
    /* A neighbour with its own setting, which no case may read. */
    ok(rollout_set_tenant(f->db, "neighbour", true, err, sizeof err), err);
    size_t cases = 0;
    int seen[6][2] = {{0}}; /* reason x memory: each rule seen deciding both ways */
    static const char *const reasons[] = {"session", "agent", "tenant", "percent", "global", "env"};
    for (size_t t = 0; t < 2; t++) {
        assert_int_equal(rollout_bucket(tenants[t]), buckets[t]);
        const int percents[] = {-1, buckets[t] + 1, buckets[t]};
        for (int row = -1; row <= 1; row++)
            for (int p = 0; p < 3; p++)
                for (int global = -1; global <= 1; global++) {
                    set_state(f->db, tenants[t], row, percents[p], global);
                    for (int session = -1; session <= 1; session++)
                        for (int agent = -1; agent <= 1; agent++)
                            for (int env = 0; env <= 1; env++) {
                                bool want;
                                const char *why;
                                reference(session, agent, row, percents[p], buckets[t], global,
                                          env == 1, &want, &why);
                                struct rollout_decision d =
                                    decide_ok(f->db, tenants[t], (enum rollout_tri)session,
                                              (enum rollout_tri)agent, env == 1);
                                if (d.memory != want || strcmp(d.reason, why) != 0)
                                    fail_msg("%s session=%d agent=%d row=%d percent=%d "
                                             "global=%d env=%d: got %s/%s, want %s/%s",
                                             tenants[t], session, agent, row, percents[p], global,
                                             env, d.memory ? "on" : "off", d.reason,
                                             want ? "on" : "off", why);
                                for (int r = 0; r < 6; r++)
                                    if (strcmp(reasons[r], why) == 0)
                                        seen[r][want]++;
                                cases++;
                            }
                }
    }
    assert_int_equal(cases, 2 * 3 * 3 * 3 * 3 * 3 * 2);
    /* The table reached every rule deciding on and deciding off (the
     * agent only decides off). */
    for (int r = 0; r < 6; r++) {
        assert_true(seen[r][0] > 0);
        if (r != 1)
            assert_true(seen[r][1] > 0);
    }
}

/* Without a data file (db NULL) none of the persisted rules is set: the
 * session and the agent still decide, and otherwise RAG_ENABLED does. */
static void without_a_data_file_the_environment_decides(void **state)
{
    (void)state;
    assert_string_equal(decide_ok(NULL, "acme", ROLLOUT_UNSET, ROLLOUT_UNSET, true).reason, "env");
    assert_true(decide_ok(NULL, "acme", ROLLOUT_UNSET, ROLLOUT_UNSET, true).memory);
    assert_false(decide_ok(NULL, "acme", ROLLOUT_UNSET, ROLLOUT_UNSET, false).memory);
    assert_string_equal(decide_ok(NULL, "acme", ROLLOUT_UNSET, ROLLOUT_OFF, true).reason, "agent");
    assert_string_equal(decide_ok(NULL, "acme", ROLLOUT_ON, ROLLOUT_OFF, false).reason, "session");
}

/* The percentage decides both ways: with the global setting on, a tenant
 * outside the percentage is off, and with it off, one inside is on. 0 puts
 * every tenant out, 100 every tenant in. */
static void the_percentage_decides_both_ways(void **state)
{
    struct fixture *f = *state;
    char err[512] = "";
    ok(rollout_set_global(f->db, true, err, sizeof err), err);
    ok(rollout_set_percent(f->db, 50, err, sizeof err), err);
    /* acme's bucket is 95 (out), globex's 13 (in). */
    struct rollout_decision d = decide_ok(f->db, "acme", ROLLOUT_UNSET, ROLLOUT_UNSET, true);
    assert_false(d.memory);
    assert_string_equal(d.reason, "percent");
    ok(rollout_set_global(f->db, false, err, sizeof err), err);
    d = decide_ok(f->db, "globex", ROLLOUT_UNSET, ROLLOUT_UNSET, false);
    assert_true(d.memory);
    assert_string_equal(d.reason, "percent");
    ok(rollout_set_percent(f->db, 0, err, sizeof err), err);
    assert_false(decide_ok(f->db, "globex", ROLLOUT_UNSET, ROLLOUT_UNSET, true).memory);
    ok(rollout_set_percent(f->db, 100, err, sizeof err), err);
    assert_true(decide_ok(f->db, "acme", ROLLOUT_UNSET, ROLLOUT_UNSET, false).memory);
}

/* What the setters write stays in the data file: a new connection (after
 * the first is closed) reads the same state and decides the same way, and
 * rollout_state_read lists the tenants sorted, with updated_ms from the
 * wall clock at the time of the write. */
static void settings_persist_across_a_reopen(void **state)
{
    struct fixture *f = *state;
    char err[512] = "";
    int64_t before = clock_wall_ms();
    ok(rollout_set_global(f->db, false, err, sizeof err), err);
    ok(rollout_set_tenant(f->db, "zeta", true, err, sizeof err), err);
    ok(rollout_set_tenant(f->db, "acme", false, err, sizeof err), err);
    ok(rollout_set_tenant(f->db, "mid", true, err, sizeof err), err);
    ok(rollout_set_percent(f->db, 42, err, sizeof err), err);
    int64_t after = clock_wall_ms();
    db_close(f->db);
    enum db_error why;
    f->db = db_open(f->path, &why, err, sizeof err);
    if (f->db == NULL)
        fail_msg("reopen: %s", err);

    struct rollout_state s;
    ok(rollout_state_read(f->db, &s, err, sizeof err), err);
    assert_int_equal(s.global, ROLLOUT_OFF);
    assert_int_equal(s.percent, 42);
    assert_int_equal(s.n_tenants, 3);
    static const char *const order[] = {"acme", "mid", "zeta"};
    static const bool memory[] = {false, true, true};
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(s.tenants[i].tenant, order[i]);
        assert_int_equal(s.tenants[i].memory, memory[i]);
        assert_true(s.tenants[i].updated_ms >= before && s.tenants[i].updated_ms <= after);
    }
    rollout_state_free(&s);
    assert_null(s.tenants);
    assert_int_equal(s.n_tenants, 0);

    struct rollout_decision d = decide_ok(f->db, "zeta", ROLLOUT_UNSET, ROLLOUT_UNSET, false);
    assert_true(d.memory);
    assert_string_equal(d.reason, "tenant");
    /* "other" has no row: the percentage (42) decides; its bucket is
     * whatever it is, and the answer must agree with it. */
    d = decide_ok(f->db, "other", ROLLOUT_UNSET, ROLLOUT_UNSET, true);
    assert_string_equal(d.reason, "percent");
    assert_int_equal(d.memory, rollout_bucket("other") < 42);
}

/* reset clears the tenant's own setting, says whether there was one, and
 * hands the decision back to the rules below; a second reset finds none. */
static void reset_clears_the_tenants_own_setting(void **state)
{
    struct fixture *f = *state;
    char err[512] = "";
    bool had = false;
    ok(rollout_set_global(f->db, true, err, sizeof err), err);
    ok(rollout_set_tenant(f->db, "acme", false, err, sizeof err), err);
    ok(rollout_set_tenant(f->db, "globex", false, err, sizeof err), err);
    assert_string_equal(decide_ok(f->db, "acme", ROLLOUT_UNSET, ROLLOUT_UNSET, true).reason,
                        "tenant");
    ok(rollout_reset_tenant(f->db, "acme", &had, err, sizeof err), err);
    assert_true(had);
    struct rollout_decision d = decide_ok(f->db, "acme", ROLLOUT_UNSET, ROLLOUT_UNSET, false);
    assert_true(d.memory);
    assert_string_equal(d.reason, "global");
    had = true;
    ok(rollout_reset_tenant(f->db, "acme", &had, err, sizeof err), err);
    assert_false(had);
    /* Only acme's row went. */
    assert_string_equal(decide_ok(f->db, "globex", ROLLOUT_UNSET, ROLLOUT_UNSET, true).reason,
                        "tenant");
}

/* percent off (-1) deletes the key: the state reads -1 again and the
 * global setting decides; turning it off twice is not an error. Values
 * outside 0..100 are refused with what is accepted, and change nothing. */
static void percent_off_clears_it_and_bad_values_are_refused(void **state)
{
    struct fixture *f = *state;
    char err[512] = "";
    ok(rollout_set_global(f->db, false, err, sizeof err), err);
    ok(rollout_set_percent(f->db, 100, err, sizeof err), err);
    assert_string_equal(decide_ok(f->db, "acme", ROLLOUT_UNSET, ROLLOUT_UNSET, true).reason,
                        "percent");
    static const int bad[] = {101, -2, 1000};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = '\0';
        assert_int_equal(rollout_set_percent(f->db, bad[i], err, sizeof err), -1);
        assert_non_null(strstr(err, "0 to 100"));
    }
    struct rollout_state s;
    ok(rollout_state_read(f->db, &s, err, sizeof err), err);
    assert_int_equal(s.percent, 100);
    rollout_state_free(&s);

    ok(rollout_set_percent(f->db, -1, err, sizeof err), err);
    ok(rollout_set_percent(f->db, -1, err, sizeof err), err);
    ok(rollout_state_read(f->db, &s, err, sizeof err), err);
    assert_int_equal(s.percent, -1);
    assert_int_equal(s.global, ROLLOUT_OFF);
    rollout_state_free(&s);
    struct rollout_decision d = decide_ok(f->db, "acme", ROLLOUT_UNSET, ROLLOUT_UNSET, true);
    assert_false(d.memory);
    assert_string_equal(d.reason, "global");
}

/* A fresh data file has nothing set: global unset, no percentage, no
 * tenants. */
static void a_fresh_file_has_nothing_set(void **state)
{
    struct fixture *f = *state;
    struct rollout_state s;
    char err[512] = "";
    ok(rollout_state_read(f->db, &s, err, sizeof err), err);
    assert_int_equal(s.global, ROLLOUT_UNSET);
    assert_int_equal(s.percent, -1);
    assert_int_equal(s.n_tenants, 0);
    rollout_state_free(&s);
    assert_string_equal(decide_ok(f->db, "acme", ROLLOUT_UNSET, ROLLOUT_UNSET, true).reason, "env");
}

/* Tenant ids outside [A-Za-z0-9_-]{1,64} are refused by enable, disable
 * and reset with a message quoting the id and what is accepted, and
 * nothing is written. */
static void bad_tenant_ids_are_refused(void **state)
{
    struct fixture *f = *state;
    char long_id[66];
    memset(long_id, 'a', 65);
    long_id[65] = '\0';
    const char *bad[] = {"", "a b", "acme/x", "caf\xc3\xa9", long_id, NULL};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char err[512] = "";
        bool had = true;
        assert_int_equal(rollout_set_tenant(f->db, bad[i], true, err, sizeof err), -1);
        assert_non_null(strstr(err, "not a valid id"));
        assert_non_null(strstr(err, "A-Za-z0-9_-"));
        err[0] = '\0';
        assert_int_equal(rollout_reset_tenant(f->db, bad[i], &had, err, sizeof err), -1);
        assert_false(had);
        assert_non_null(strstr(err, "rollout reset"));
    }
    /* 64 characters is still an id. */
    long_id[64] = '\0';
    char err[512] = "";
    ok(rollout_set_tenant(f->db, long_id, true, err, sizeof err), err);
    struct rollout_state s;
    ok(rollout_state_read(f->db, &s, err, sizeof err), err);
    assert_int_equal(s.n_tenants, 1);
    assert_string_equal(s.tenants[0].tenant, long_id);
    rollout_state_free(&s);
}

/* The bucket is the first 8 bytes of BLAKE2b-256 of the id, little-endian,
 * mod 100. The expected values were computed independently with Python:
 *   python3 -c 'import hashlib; d=hashlib.blake2b(b"acme",
 *     digest_size=32).digest(); print(int.from_bytes(d[:8],"little")%100)'
 * (acme 95, globex 13, initech 49, default 77, a 1, tenant-0 24, Z_9-x 4). */
static void buckets_match_independently_computed_values(void **state)
{
    (void)state;
    static const struct {
        const char *tenant;
        int bucket;
    } pinned[] = {{"acme", 95}, {"globex", 13},   {"initech", 49}, {"default", 77},
                  {"a", 1},     {"tenant-0", 24}, {"Z_9-x", 4}};
    for (size_t i = 0; i < sizeof pinned / sizeof *pinned; i++) {
        assert_int_equal(rollout_bucket(pinned[i].tenant), pinned[i].bucket);
        /* Stable: the same id, the same bucket, every time. */
        assert_int_equal(rollout_bucket(pinned[i].tenant), pinned[i].bucket);
    }
    assert_int_equal(rollout_bucket(NULL), -1);
}

/* Over 10,000 ids the share with bucket < N is within 2 points of N for
 * several N, so `percent N` turns on about N % of tenants; every bucket
 * is within 0..99. */
static void buckets_spread_within_two_points_of_n(void **state)
{
    (void)state;
    enum { IDS = 10000 };
    static int bucket[IDS];
    for (int i = 0; i < IDS; i++) {
        char id[32];
        snprintf(id, sizeof id, "tenant-%d", i);
        bucket[i] = rollout_bucket(id);
        assert_true(bucket[i] >= 0 && bucket[i] <= 99);
    }
    static const int ns[] = {1, 10, 33, 50, 90};
    for (size_t k = 0; k < sizeof ns / sizeof *ns; k++) {
        int in = 0;
        for (int i = 0; i < IDS; i++)
            in += bucket[i] < ns[k];
        double share = 100.0 * in / IDS;
        if (share < ns[k] - 2.0 || share > ns[k] + 2.0)
            fail_msg("percent %d: %.2f %% of %d ids are in", ns[k], share, IDS);
    }
}

/* The tenant's row cannot be read (its table is gone): the decision falls
 * through to the percentage and the global setting, which still decide,
 * and rollout_decide returns -1 with a message naming the data file. */
static void a_read_error_falls_through_with_a_message(void **state)
{
    struct fixture *f = *state;
    char err[512] = "";
    ok(rollout_set_global(f->db, true, err, sizeof err), err);
    raw_exec(f->db, "DROP TABLE rollout_tenants");
    struct rollout_input in = {"acme", ROLLOUT_UNSET, ROLLOUT_UNSET, false};
    struct rollout_decision d = {false, NULL};
    assert_int_equal(rollout_decide(f->db, &in, &d, err, sizeof err), -1);
    assert_true(d.memory);
    assert_string_equal(d.reason, "global");
    assert_non_null(strstr(err, f->path));
    assert_non_null(strstr(err, "rollout_tenants"));
    /* The session still decides without reading anything, and succeeds. */
    in.session = ROLLOUT_OFF;
    assert_int_equal(rollout_decide(f->db, &in, &d, err, sizeof err), 0);
    assert_string_equal(d.reason, "session");
    assert_string_equal(err, "");

    /* The writers report the missing table with the file's name. */
    assert_int_equal(rollout_set_tenant(f->db, "acme", true, err, sizeof err), -1);
    assert_non_null(strstr(err, f->path));
    assert_non_null(strstr(err, "rollout enable acme"));

    /* With the settings gone as well, both failures are reported and
     * RAG_ENABLED decides. */
    raw_exec(f->db, "DROP TABLE settings");
    in.session = ROLLOUT_UNSET;
    in.rag_enabled = true;
    assert_int_equal(rollout_decide(f->db, &in, &d, err, sizeof err), -1);
    assert_true(d.memory);
    assert_string_equal(d.reason, "env");
    assert_non_null(strstr(err, "rollout_tenants"));
    assert_non_null(strstr(err, "settings"));
    struct rollout_state s;
    assert_int_equal(rollout_state_read(f->db, &s, err, sizeof err), -1);
    assert_null(s.tenants);
}

/* A stored value memchat never writes (edited by hand) is not obeyed: the
 * percentage 'abc' falls through to the global setting, a global 'maybe'
 * to RAG_ENABLED, each with -1 and a message naming the key and what is
 * accepted; status reading refuses the state. */
static void a_malformed_setting_falls_through(void **state)
{
    struct fixture *f = *state;
    char err[512] = "";
    ok(rollout_set_global(f->db, false, err, sizeof err), err);
    raw_exec(f->db, "INSERT INTO settings VALUES ('rollout.percent', 'abc', 0)");
    struct rollout_input in = {"globex", ROLLOUT_UNSET, ROLLOUT_UNSET, true};
    struct rollout_decision d;
    assert_int_equal(rollout_decide(f->db, &in, &d, err, sizeof err), -1);
    assert_false(d.memory);
    assert_string_equal(d.reason, "global");
    assert_non_null(strstr(err, "rollout.percent"));
    assert_non_null(strstr(err, "0 to 100"));
    raw_exec(f->db, "UPDATE settings SET value = 'maybe' WHERE key = 'rollout.global'");
    assert_int_equal(rollout_decide(f->db, &in, &d, err, sizeof err), -1);
    assert_true(d.memory);
    assert_string_equal(d.reason, "env");
    assert_non_null(strstr(err, "rollout.global"));
    struct rollout_state s;
    assert_int_equal(rollout_state_read(f->db, &s, err, sizeof err), -1);
    assert_non_null(strstr(err, f->path));
}

/* A turn whose tenant is not an id cannot consult the tenant's row or the
 * percentage: the global setting decides, with -1 and a message. */
static void an_invalid_tenant_falls_through_to_global(void **state)
{
    struct fixture *f = *state;
    char err[512] = "";
    ok(rollout_set_global(f->db, true, err, sizeof err), err);
    ok(rollout_set_percent(f->db, 0, err, sizeof err), err);
    struct rollout_input in = {"not an id", ROLLOUT_UNSET, ROLLOUT_UNSET, false};
    struct rollout_decision d;
    assert_int_equal(rollout_decide(f->db, &in, &d, err, sizeof err), -1);
    assert_true(d.memory);
    assert_string_equal(d.reason, "global");
    assert_non_null(strstr(err, "not an id"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(every_combination_decides_as_the_reference, setup,
                                        teardown),
        cmocka_unit_test(without_a_data_file_the_environment_decides),
        cmocka_unit_test_setup_teardown(the_percentage_decides_both_ways, setup, teardown),
        cmocka_unit_test_setup_teardown(settings_persist_across_a_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(reset_clears_the_tenants_own_setting, setup, teardown),
        cmocka_unit_test_setup_teardown(percent_off_clears_it_and_bad_values_are_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_fresh_file_has_nothing_set, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_tenant_ids_are_refused, setup, teardown),
        cmocka_unit_test(buckets_match_independently_computed_values),
        cmocka_unit_test(buckets_spread_within_two_points_of_n),
        cmocka_unit_test_setup_teardown(a_read_error_falls_through_with_a_message, setup, teardown),
        cmocka_unit_test_setup_teardown(a_malformed_setting_falls_through, setup, teardown),
        cmocka_unit_test_setup_teardown(an_invalid_tenant_falls_through_to_global, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
