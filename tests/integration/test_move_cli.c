/*
 * memchat memory migrate and memchat memory reembed end to end: the built
 * program in a private HOME, data dir and config dir, the remote vector
 * store and embedder played by fakevec's loopback fakes. The cases prove
 * the promises of the two verbs: migrate copies a tenant's memories with
 * every field and the very same vectors, so the other store answers a
 * search as the first did, and leaves the source as it was; reembed
 * rebuilds a namespace made with another dimension or embedder, keeping
 * every memory; a server failing midway exits 3 with a checkpoint that
 * the same command resumes from, losing nothing; wrong command lines exit
 * 2 with a reason; and purge drops a tenant's checkpoints.
 */
#include "config.h"

#include "cli_harness.h"
#include "fakevec_harness.h"

#include <math.h>
#include <sqlite3.h>

#define KEY       "sk-move-cli-test-0123456789"
#define N_MIGRATE 40
#define N_REEMBED 30
#define VEC_EPS   1e-5

/* The configurations a case switches between (the fixture's environment
 * cannot be overridden, so these come with each run). */
static const char *const LOCAL64[] = {"EMBEDDINGS_DIMENSION=64", NULL};
static const char *const QDRANT64[] = {"EMBEDDINGS_DIMENSION=64", "VECTOR_DB_PROVIDER=qdrant",
                                       NULL};
static const char *const LOCAL32[] = {"EMBEDDINGS_DIMENSION=32", NULL};
static const char *const QDRANT32[] = {"EMBEDDINGS_DIMENSION=32", "VECTOR_DB_PROVIDER=qdrant",
                                       NULL};

static int case_setup(void **state)
{
    int rc = setup(state);
    /* No key and no retries: answers from the offline provider, and a
     * server's 500 ends a run at once. */
    fx_env("MEMCHAT_PROVIDER", "offline");
    fx_env("MEMCHAT_MAX_RETRIES", "0");
    return rc;
}

/* Starts the qdrant fake and points the fixture's QDRANT_URL at it. */
static struct mock *start_qdrant(void)
{
    struct mock *m = fv_start("qdrant", NULL, NULL);
    fx_env("QDRANT_URL", fv_url(m));
    return m;
}

/* ---- the memories ---- */

/* The text of memory i: distinct words in distinct combinations. */
static void memory_text(size_t i, char *out, size_t cap)
{
    static const char *const animals[] = {"walrus", "heron",  "lynx",  "otter",
                                          "badger", "falcon", "gecko", "marmot"};
    static const char *const cities[] = {"Lisbon", "Oslo", "Quito", "Hanoi", "Tbilisi"};
    static const char *const items[] = {"harmonica", "telescope", "kettle", "compass",
                                        "lantern",   "violin",    "hammock"};
    snprintf(out, cap, "Note %zu: the %s from %s packed a %s for trip %zu", i, animals[i % 8],
             cities[i % 5], items[i % 7], i * 37 % 101);
}

/* Imports n memories into tenant (each with a user, a creation time and
 * metadata) and checks the tenant then holds n. */
static void import_memories(const char *const *env, const char *tenant, size_t n)
{
    size_t cap = n * 256 + 1, len = 0;
    char *in = malloc(cap);
    assert_non_null(in);
    in[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        char text[160];
        memory_text(i, text, sizeof text);
        len += (size_t)snprintf(in + len, cap - len,
                                "{\"text\":\"%s\",\"user_id\":\"%s\",\"created_at\":%lld,"
                                "\"metadata\":{\"n\":%zu,\"tag\":\"t%zu\"}}\n",
                                text, i % 2 ? "alice" : "bob",
                                1700000000000LL + (long long)i * 60000, i, i % 3);
        assert_true(len < cap);
    }
    struct run r;
    RUNE(&r, in, env, "memory", "import", "--tenant", tenant);
    expect_exit(&r, 0, "memory import");
    run_free(&r);
    free(in);
}

/* memory export of tenant: the items (caller deletes). */
static cJSON *export_memories(const char *const *env, const char *tenant)
{
    struct run r;
    RUNE(&r, NULL, env, "memory", "export", "--tenant", tenant);
    expect_exit(&r, 0, "memory export");
    cJSON *arr = json_lines(r.out);
    run_free(&r);
    return arr;
}

/* memory stats --json of tenant: its one object (caller deletes). */
static cJSON *tenant_stats(const char *const *env, const char *tenant)
{
    struct run r;
    RUNE(&r, NULL, env, "memory", "stats", "--json", "--tenant", tenant);
    expect_exit(&r, 0, "memory stats");
    cJSON *arr = json_lines(r.out);
    assert_int_equal(cJSON_GetArraySize(arr), 1);
    cJSON *it = cJSON_DetachItemFromArray(arr, 0);
    cJSON_Delete(arr);
    run_free(&r);
    return it;
}

/* Fails unless tenant's namespace has dim dimensions and count memories. */
static void expect_stats(const char *const *env, const char *tenant, double dim, double count)
{
    cJSON *s = tenant_stats(env, tenant);
    if (jnum(s, "dim") != dim || jnum(s, "count") != count)
        fail_msg("stats of %s: dim %.0f, count %.0f; want dim %.0f, count %.0f", tenant,
                 jnum(s, "dim"), jnum(s, "count"), dim, count);
    cJSON_Delete(s);
}

/* The ids memory search --json gives for query, best first (a cJSON array
 * of strings; caller deletes). method NULL: the configured one. */
static cJSON *search_ids(const char *const *env, const char *tenant, const char *query,
                         const char *method)
{
    struct run r;
    if (method != NULL)
        RUNE(&r, NULL, env, "memory", "search", "--json", "--tenant", tenant, "--method", method,
             query);
    else
        RUNE(&r, NULL, env, "memory", "search", "--json", "--tenant", tenant, query);
    expect_exit(&r, 0, "memory search");
    cJSON *items = json_lines(r.out), *ids = cJSON_CreateArray();
    const cJSON *it;
    cJSON_ArrayForEach(it, items) cJSON_AddItemToArray(ids, cJSON_CreateString(jstr(it, "id")));
    cJSON_Delete(items);
    run_free(&r);
    assert_true(cJSON_GetArraySize(ids) > 0);
    return ids;
}

/* The item of arr whose id is id, or NULL. */
static const cJSON *find_id(const cJSON *arr, const char *id)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) if (strcmp(jstr(it, "id"), id) == 0) return it;
    return NULL;
}

/* The id of the memory whose text is text in an export; fails when none. */
static const char *id_of_text(const cJSON *arr, const char *text)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) if (strcmp(jstr(it, "text"), text) == 0) return jstr(it, "id");
    fail_msg("no memory has the text '%s'", text);
    return NULL;
}

/* Fails unless the vectors of a and b are equal within VEC_EPS. */
static void expect_same_vector(const cJSON *a, const cJSON *b, const char *id)
{
    const cJSON *va = cJSON_GetObjectItemCaseSensitive(a, "vector");
    const cJSON *vb = cJSON_GetObjectItemCaseSensitive(b, "vector");
    assert_true(cJSON_IsArray(va) && cJSON_IsArray(vb));
    int n = cJSON_GetArraySize(va);
    if (n == 0 || n != cJSON_GetArraySize(vb))
        fail_msg("memory %s: vectors of %d and %d floats", id, n, cJSON_GetArraySize(vb));
    for (int i = 0; i < n; i++) {
        double x = cJSON_GetArrayItem(va, i)->valuedouble;
        double y = cJSON_GetArrayItem(vb, i)->valuedouble;
        if (fabs(x - y) > VEC_EPS)
            fail_msg("memory %s: vector[%d] is %.9g, want %.9g", id, i, y, x);
    }
}

/* Fails unless the vector of every item of arr has dim floats. */
static void expect_vector_dims(const cJSON *arr, int dim)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(it, "vector");
        if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != dim)
            fail_msg("memory %s: its vector does not have %d floats", jstr(it, "id"), dim);
    }
}

/* Fails unless got holds the memories of want, every field the same (and
 * the vectors too when vectors is true). */
static void expect_same_memories(const cJSON *want, const cJSON *got, bool vectors)
{
    assert_int_equal(cJSON_GetArraySize(got), cJSON_GetArraySize(want));
    static const char *const fields[] = {"text", "user_id", "agent", "kind"};
    const cJSON *w;
    cJSON_ArrayForEach(w, want)
    {
        const char *id = jstr(w, "id");
        const cJSON *g = find_id(got, id);
        if (g == NULL)
            fail_msg("memory %s is missing", id);
        for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
            if (strcmp(jstr(w, fields[i]), jstr(g, fields[i])) != 0)
                fail_msg("memory %s: %s is '%s', want '%s'", id, fields[i], jstr(g, fields[i]),
                         jstr(w, fields[i]));
        assert_true(jnum(w, "created_at") == jnum(g, "created_at"));
        const cJSON *wm = cJSON_GetObjectItemCaseSensitive(w, "metadata");
        const cJSON *gm = cJSON_GetObjectItemCaseSensitive(g, "metadata");
        if (!cJSON_IsObject(wm) || !cJSON_Compare(wm, gm, true))
            fail_msg("memory %s: metadata differs", id);
        if (vectors)
            expect_same_vector(w, g, id);
    }
}

/* ---- checkpoints and failures ---- */

/* N of "(resumed after N)" in out; -1 when out does not say it resumed. */
static long resumed_after(const char *out)
{
    static const char mark[] = "(resumed after ";
    const char *p = strstr(out, mark);
    return p != NULL ? strtol(p + sizeof mark - 1, NULL, 10) : -1;
}

/* The done of tenant's checkpoint of kind in the data file; -1 when there
 * is none. */
static long long checkpoint_done(const char *tenant, const char *kind)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/memchat.db", fx.data);
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *q = NULL;
    assert_int_equal(sqlite3_prepare_v2(h,
                                        "SELECT done FROM memory_moves WHERE tenant = ?1 AND "
                                        "kind = ?2",
                                        -1, &q, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(q, 1, tenant, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, kind, -1, SQLITE_STATIC);
    long long done = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int64(q, 0) : -1;
    sqlite3_finalize(q);
    sqlite3_close(h);
    return done;
}

/* How many requests the fake has logged. */
static size_t requests_so_far(const struct mock *m)
{
    cJSON *log = NULL;
    size_t n = mock_requests(m, &log);
    cJSON_Delete(log);
    return n;
}

/* Arms m to answer 500 to every request after the next `after`. */
static void fail_after(struct mock *m, size_t after)
{
    char json[96];
    snprintf(json, sizeof json, "{\"status\":500,\"count\":100000,\"after\":%zu}", after);
    fv_fail(m, json);
}

/* Takes an armed failure back, keeping the fake's data (fv_reset would
 * forget it). */
static void disarm(struct mock *m)
{
    fv_fail(m, "{\"status\":500,\"count\":0}");
}

/* memory migrate --from local --to qdrant --tenant acme --batch 5. */
static void migrate_to_qdrant(struct run *r)
{
    RUNE(r, NULL, LOCAL64, "memory", "migrate", "--from", "local", "--to", "qdrant", "--tenant",
         "acme", "--batch", "5");
}

/* Makes the migrate of acme into the qdrant fake fail halfway: a first,
 * complete run measures how many requests it takes; the fake forgets it,
 * and the same command, with the fake failing after half of them, must
 * exit 3 saying how to resume. The fake is disarmed on return. Returns
 * N of the message's "(checkpoint: N of", the memories written. */
static long migrate_fails_midway(struct mock *m)
{
    struct run r;
    size_t before = requests_so_far(m);
    migrate_to_qdrant(&r);
    expect_exit(&r, 0, "the measuring migrate");
    run_free(&r);
    size_t full = requests_so_far(m) - before;
    fv_reset(m);
    fail_after(m, full / 2);
    migrate_to_qdrant(&r);
    expect_exit(&r, 3, "migrate with the store failing");
    expect_in(r.err, "qdrant", "the message names the store");
    expect_in(r.err, "run the same command to resume", "the message says how to resume");
    static const char mark[] = "(checkpoint: ";
    const char *p = strstr(r.err, mark);
    long n = p != NULL ? strtol(p + sizeof mark - 1, NULL, 10) : -1;
    run_free(&r);
    disarm(m);
    return n;
}

/* ---- the cases ---- */

/* local to qdrant with pages of 7: every id, text, user, metadata,
 * creation time and vector arrives; the source is unchanged; both stores
 * answer a search with the same ids in the same order; and migrating back
 * merges into the local namespace, which already holds them all. */
static void migrate_copies_every_field_and_vector(void **state)
{
    (void)state;
    struct mock *m = start_qdrant();
    import_memories(LOCAL64, "acme", N_MIGRATE);
    cJSON *local = export_memories(LOCAL64, "acme");

    struct run r;
    RUNE(&r, NULL, LOCAL64, "memory", "migrate", "--from", "local", "--to", "qdrant", "--tenant",
         "acme", "--batch", "7");
    expect_exit(&r, 0, "migrate local to qdrant");
    expect_in(r.out, "tenant acme: copied 40 memories from the local store to the qdrant store\n",
              "the summary");
    expect_in(r.out, "  now: 40 in local (unchanged), 40 in qdrant; set VECTOR_DB_PROVIDER=qdrant",
              "the counts");
    assert_int_equal(resumed_after(r.out), -1);
    run_free(&r);

    cJSON *remote = export_memories(QDRANT64, "acme");
    expect_same_memories(local, remote, true);
    cJSON *again = export_memories(LOCAL64, "acme");
    expect_same_memories(local, again, true);
    expect_stats(QDRANT64, "acme", 64, N_MIGRATE);

    static const char *const queries[] = {"the otter from Oslo and its violin",
                                          "who packed a lantern for trip 12?"};
    for (size_t i = 0; i < sizeof queries / sizeof *queries; i++) {
        cJSON *a = search_ids(LOCAL64, "acme", queries[i], NULL);
        cJSON *b = search_ids(QDRANT64, "acme", queries[i], NULL);
        if (!cJSON_Compare(a, b, true))
            fail_msg("search '%s' ranks differently on the two stores", queries[i]);
        cJSON_Delete(a);
        cJSON_Delete(b);
    }

    RUNE(&r, NULL, LOCAL64, "memory", "migrate", "--from", "qdrant", "--to", "local", "--tenant",
         "acme", "--json");
    expect_exit(&r, 0, "migrate qdrant to local");
    cJSON *lines = json_lines(r.out);
    assert_int_equal(cJSON_GetArraySize(lines), 1);
    const cJSON *it = cJSON_GetArrayItem(lines, 0);
    assert_string_equal(jstr(it, "tenant"), "acme");
    assert_string_equal(jstr(it, "from"), "qdrant");
    assert_string_equal(jstr(it, "to"), "local");
    assert_true(jnum(it, "total") == N_MIGRATE && jnum(it, "done") == N_MIGRATE);
    assert_true(jnum(it, "target_before") == N_MIGRATE);
    assert_true(jnum(it, "target_count") == N_MIGRATE && jnum(it, "source_count") == N_MIGRATE);
    assert_false(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "resumed")));
    cJSON_Delete(lines);
    run_free(&r);
    cJSON_Delete(again);
    again = export_memories(LOCAL64, "acme");
    expect_same_memories(local, again, true);

    cJSON_Delete(again);
    cJSON_Delete(remote);
    cJSON_Delete(local);
    mock_stop(m);
}

/* The store failing halfway: exit 3 with a checkpoint; the same command
 * then resumes after the pages it had written (a multiple of the page,
 * more than none and fewer than all) and the target ends up with every
 * memory, and no checkpoint is left. */
static void migrate_resumes_after_a_server_failure(void **state)
{
    (void)state;
    struct mock *m = start_qdrant();
    import_memories(LOCAL64, "acme", N_MIGRATE);
    long said = migrate_fails_midway(m);
    long long done = checkpoint_done("acme", "migrate");
    assert_true(done > 0 && done < N_MIGRATE);
    assert_int_equal(said, done); /* the message names the stored checkpoint */
    cJSON *s = tenant_stats(QDRANT64, "acme");
    assert_true(jnum(s, "count") > 0 && jnum(s, "count") < N_MIGRATE);
    cJSON_Delete(s);

    struct run r;
    migrate_to_qdrant(&r);
    expect_exit(&r, 0, "the resumed migrate");
    long k = resumed_after(r.out);
    if (k <= 0 || k >= N_MIGRATE || k % 5 != 0)
        fail_msg("the resumed migrate says resumed after %ld:\n%s", k, r.out);
    assert_true(k == done);
    expect_in(r.out, "copied 40 memories from the local store to the qdrant store", "the summary");
    expect_in(r.out, "now: 40 in local (unchanged), 40 in qdrant", "the counts");
    run_free(&r);

    cJSON *local = export_memories(LOCAL64, "acme");
    cJSON *remote = export_memories(QDRANT64, "acme");
    expect_same_memories(local, remote, true);
    assert_int_equal(checkpoint_done("acme", "migrate"), -1);
    cJSON_Delete(local);
    cJSON_Delete(remote);
    mock_stop(m);
}

/* A dimension changed under the local store: search refuses and names
 * reembed; reembed keeps every memory and field with vectors of the new
 * size, writes no history, and search finds again; a second run has
 * nothing to do, and --force embeds them again. */
static void reembed_after_a_dimension_change(void **state)
{
    (void)state;
    import_memories(LOCAL64, "acme", N_REEMBED);
    cJSON *before = export_memories(LOCAL64, "acme");
    struct run r;
    RUNE(&r, NULL, LOCAL64, "memory", "history", "--json", "--tenant", "acme", "--limit", "1000");
    expect_exit(&r, 0, "memory history");
    char *history = strdup(r.out);
    run_free(&r);

    char text[160];
    memory_text(7, text, sizeof text);
    RUNE(&r, NULL, LOCAL32, "memory", "search", "--tenant", "acme", text);
    expect_exit(&r, 2, "search with another dimension");
    expect_in(r.err, "memchat memory reembed --tenant acme", "the fix");
    run_free(&r);

    RUNE(&r, NULL, LOCAL32, "memory", "reembed", "--tenant", "acme", "--batch", "4");
    expect_exit(&r, 0, "reembed");
    expect_in(r.out,
              "tenant acme: re-embedded 30 memories in the local store, from local/hash-v1/64 "
              "to local/hash-v1/32\n",
              "the summary");
    assert_int_equal(resumed_after(r.out), -1);
    run_free(&r);
    expect_stats(LOCAL32, "acme", 32, N_REEMBED);
    assert_int_equal(checkpoint_done("acme", "reembed"), -1);

    cJSON *ids = search_ids(LOCAL32, "acme", text, "similarity");
    assert_string_equal(cJSON_GetArrayItem(ids, 0)->valuestring, id_of_text(before, text));
    cJSON_Delete(ids);
    cJSON *after = export_memories(LOCAL32, "acme");
    expect_same_memories(before, after, false);
    expect_vector_dims(after, 32);
    RUNE(&r, NULL, LOCAL32, "memory", "history", "--json", "--tenant", "acme", "--limit", "1000");
    expect_exit(&r, 0, "memory history");
    assert_string_equal(r.out, history);
    run_free(&r);

    RUNE(&r, NULL, LOCAL32, "memory", "reembed", "--tenant", "acme");
    expect_exit(&r, 0, "a second reembed");
    expect_in(r.out, "its 30 memories are already embedded with local/hash-v1/32; nothing to do",
              "nothing to do");
    run_free(&r);
    RUNE(&r, NULL, LOCAL32, "memory", "reembed", "--tenant", "acme", "--force", "--json");
    expect_exit(&r, 0, "reembed --force");
    cJSON *lines = json_lines(r.out);
    const cJSON *it = cJSON_GetArrayItem(lines, 0);
    assert_string_equal(jstr(it, "from"), "local/hash-v1/32");
    assert_string_equal(jstr(it, "to"), "local/hash-v1/32");
    assert_string_equal(jstr(it, "store"), "local");
    assert_true(jnum(it, "done") == N_REEMBED && jnum(it, "target_count") == N_REEMBED);
    assert_false(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "nothing_to_do")));
    cJSON_Delete(lines);
    run_free(&r);
    expect_stats(LOCAL32, "acme", 32, N_REEMBED);

    free(history);
    cJSON_Delete(after);
    cJSON_Delete(before);
}

/* A remote embedder failing halfway through a reembed: exit 3, the old
 * namespace intact under the old configuration; the same command resumes
 * after the pages already embedded and ends with the new dimension and
 * every memory. A first tenant, reembedded completely, measures how many
 * requests a run makes. */
static void reembed_resumes_after_an_embedder_failure(void **state)
{
    (void)state;
    struct mock *m = fv_start("embed", KEY, NULL);
    char base[160];
    snprintf(base, sizeof base, "EMBEDDINGS_BASE_URL=%s/v1", fv_url(m));
    const char *const remote[] = {"EMBEDDINGS_PROVIDER=openai", base, "OPENAI_API_KEY=" KEY,
                                  "EMBEDDINGS_DIMENSION=16", NULL};
    import_memories(LOCAL64, "probe", N_REEMBED);
    import_memories(LOCAL64, "acme", N_REEMBED);
    cJSON *before = export_memories(LOCAL64, "acme");

    struct run r;
    size_t start = requests_so_far(m);
    RUNE(&r, NULL, remote, "memory", "reembed", "--tenant", "probe", "--batch", "5");
    expect_exit(&r, 0, "the measuring reembed");
    run_free(&r);
    fail_after(m, (requests_so_far(m) - start) / 2);

    RUNE(&r, NULL, remote, "memory", "reembed", "--tenant", "acme", "--batch", "5");
    expect_exit(&r, 3, "reembed with the embedder failing");
    expect_in(r.err, "openai", "the message names the embedder");
    expect_in(r.err, "run the same command to resume", "the message says how to resume");
    assert_null(strstr(r.err, KEY));
    run_free(&r);
    expect_stats(LOCAL64, "acme", 64, N_REEMBED);
    cJSON *kept = export_memories(LOCAL64, "acme");
    expect_same_memories(before, kept, true);
    cJSON_Delete(kept);

    fv_reset(m);
    RUNE(&r, NULL, remote, "memory", "reembed", "--tenant", "acme", "--batch", "5");
    expect_exit(&r, 0, "the resumed reembed");
    long k = resumed_after(r.out);
    if (k <= 0 || k >= N_REEMBED || k % 5 != 0)
        fail_msg("the resumed reembed says resumed after %ld:\n%s", k, r.out);
    expect_in(r.out,
              "re-embedded 30 memories in the local store, from local/hash-v1/64 to "
              "openai/text-embedding-3-small/16",
              "the summary");
    run_free(&r);
    expect_stats(remote, "acme", 16, N_REEMBED);
    cJSON *after = export_memories(remote, "acme");
    expect_same_memories(before, after, false);
    expect_vector_dims(after, 16);
    assert_int_equal(checkpoint_done("acme", "reembed"), -1);

    cJSON_Delete(after);
    cJSON_Delete(before);
    mock_stop(m);
}

/* Runs memchat with env and args; fails unless it exits 2 with needle on
 * stderr. */
#define EXPECT_USAGE(needle, env, ...)           \
    do {                                         \
        struct run r_;                           \
        RUNE(&r_, NULL, env, __VA_ARGS__);       \
        expect_exit(&r_, 2, needle);             \
        expect_in(r_.err, needle, "the reason"); \
        assert_null(strstr(r_.out, "copied"));   \
        run_free(&r_);                           \
    } while (0)

/* Wrong command lines and impossible moves exit 2 with a reason, and a
 * refused migrate changes nothing in the target. */
static void wrong_moves_exit_2_with_a_reason(void **state)
{
    (void)state;
    struct mock *m = start_qdrant();
    import_memories(LOCAL64, "acme", 3);
    EXPECT_USAGE("--from and --to both name the local store", LOCAL64, "memory", "migrate",
                 "--from", "local", "--to", "local", "--tenant", "acme");
    EXPECT_USAGE("(accepted: local, pgvector, qdrant, pinecone, weaviate)", LOCAL64, "memory",
                 "migrate", "--from", "nosuch", "--to", "qdrant", "--tenant", "acme");
    EXPECT_USAGE("needs --to STORE", LOCAL64, "memory", "migrate", "--from", "local", "--tenant",
                 "acme");
    EXPECT_USAGE("needs --from STORE", LOCAL64, "memory", "migrate", "--to", "qdrant", "--tenant",
                 "acme");
    EXPECT_USAGE("tenant nobody has no memories", LOCAL64, "memory", "migrate", "--from", "local",
                 "--to", "qdrant", "--tenant", "nobody");
    EXPECT_USAGE("--batch", LOCAL64, "memory", "migrate", "--from", "local", "--to", "qdrant",
                 "--tenant", "acme", "--batch", "0");
    EXPECT_USAGE("does not take --from", LOCAL64, "memory", "reembed", "--from", "local",
                 "--tenant", "acme");
    EXPECT_USAGE("tenant nobody has no memories", LOCAL64, "memory", "reembed", "--tenant",
                 "nobody");

    struct run r;
    RUNE(&r, NULL, QDRANT32, "memory", "add", "--tenant", "acme", "made with 32 dimensions");
    expect_exit(&r, 0, "memory add into qdrant");
    run_free(&r);
    RUNE(&r, NULL, LOCAL64, "memory", "migrate", "--from", "local", "--to", "qdrant", "--tenant",
         "acme");
    expect_exit(&r, 2, "migrate into a namespace of another dimension");
    expect_in(r.err, "already holds its memories made with local/hash-v1/32", "the target's");
    expect_in(r.err, "local/hash-v1/64", "the source's");
    run_free(&r);
    expect_stats(QDRANT32, "acme", 32, 1);
    assert_int_equal(checkpoint_done("acme", "migrate"), -1); /* a refusal leaves none */
    mock_stop(m);
}

/* The fake has logged at least w->at requests: the one after them hangs. */
struct hang_watch {
    const struct mock *m;
    size_t at;
};

static bool hang_reached(void *ud)
{
    const struct hang_watch *w = ud;
    return requests_so_far(w->m) >= w->at;
}

/* Ctrl-C while the store does not answer: the migrate says it stops at
 * its checkpoint and does, at once rather than after the request's
 * timeout (120 s here; the harness would fail the test at 60), exits 130
 * saying how to resume, and the same command then finishes from the
 * stored checkpoint. */
static void ctrl_c_stops_a_migrate_at_its_checkpoint(void **state)
{
    (void)state;
    struct mock *m = start_qdrant();
    import_memories(LOCAL64, "acme", N_MIGRATE);
    struct run r;
    size_t before = requests_so_far(m);
    migrate_to_qdrant(&r);
    expect_exit(&r, 0, "the measuring migrate");
    run_free(&r);
    size_t after = (requests_so_far(m) - before) / 2;
    fv_reset(m);
    char json[96];
    snprintf(json, sizeof json, "{\"hang\":true,\"count\":1,\"after\":%zu}", after);
    fv_fail(m, json);
    struct hang_watch w = {.m = m, .at = requests_so_far(m) + after};
    struct run_trigger t = {.ready = hang_reached, .ud = &w, .signo = SIGINT};
    const char *const env[] = {"EMBEDDINGS_DIMENSION=64", "MEMORY_REMOTE_TIMEOUT=120s", NULL};
    const char *const args[] = {"memory",   "migrate", "--from",  "local", "--to", "qdrant",
                                "--tenant", "acme",    "--batch", "5",     NULL};
    run_memchat_when(&r, NULL, env, args, &t);
    expect_exit(&r, 130, "migrate interrupted");
    expect_in(r.err, "stopping at the next checkpoint", "the first Ctrl-C's answer");
    expect_in(r.err, "run the same command to resume", "how to resume");
    run_free(&r);
    long long done = checkpoint_done("acme", "migrate");
    assert_true(done >= 0 && done < N_MIGRATE);
    disarm(m);

    migrate_to_qdrant(&r);
    expect_exit(&r, 0, "the resumed migrate");
    if (done > 0)
        assert_int_equal(resumed_after(r.out), done);
    run_free(&r);
    cJSON *local = export_memories(LOCAL64, "acme");
    cJSON *remote = export_memories(QDRANT64, "acme");
    expect_same_memories(local, remote, true);
    cJSON_Delete(local);
    cJSON_Delete(remote);
    mock_stop(m);
}

/* purge removes the tenant's checkpoint: after a migrate failed halfway
 * and the tenant was purged, the tenant has nothing to migrate, and once
 * it has memories again their migrate starts afresh (merging into what
 * the target kept) instead of resuming. */
static void purge_drops_a_checkpoint(void **state)
{
    (void)state;
    struct mock *m = start_qdrant();
    import_memories(LOCAL64, "acme", N_MIGRATE);
    migrate_fails_midway(m);
    assert_true(checkpoint_done("acme", "migrate") > 0);

    struct run r;
    RUNE(&r, NULL, LOCAL64, "purge", "--tenant", "acme", "--yes");
    expect_exit(&r, 0, "purge");
    run_free(&r);
    assert_int_equal(checkpoint_done("acme", "migrate"), -1);
    migrate_to_qdrant(&r);
    expect_exit(&r, 2, "migrate of a purged tenant");
    expect_in(r.err, "has no memories", "the reason");
    assert_null(strstr(r.out, "resumed"));
    run_free(&r);

    import_memories(LOCAL64, "acme", N_MIGRATE);
    RUNE(&r, NULL, LOCAL64, "memory", "migrate", "--from", "local", "--to", "qdrant", "--tenant",
         "acme", "--batch", "5", "--json");
    expect_exit(&r, 0, "migrate after the purge");
    cJSON *lines = json_lines(r.out);
    const cJSON *it = cJSON_GetArrayItem(lines, 0);
    assert_false(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "resumed")));
    assert_true(jnum(it, "resumed_from") == 0);
    assert_true(jnum(it, "done") == N_MIGRATE && jnum(it, "total") == N_MIGRATE);
    double kept = jnum(it, "target_before");
    assert_true(kept > 0 && kept < N_MIGRATE);
    assert_true(jnum(it, "target_count") == N_MIGRATE + kept);
    cJSON_Delete(lines);
    run_free(&r);
    mock_stop(m);
}

static int run_all(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(migrate_copies_every_field_and_vector, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(migrate_resumes_after_a_server_failure, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(reembed_after_a_dimension_change, case_setup, teardown),
        cmocka_unit_test_setup_teardown(reembed_resumes_after_an_embedder_failure, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(wrong_moves_exit_2_with_a_reason, case_setup, teardown),
        cmocka_unit_test_setup_teardown(ctrl_c_stops_a_migrate_at_its_checkpoint, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(purge_drops_a_checkpoint, case_setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

int main(void)
{
    return harness_without_terminal(run_all);
}
