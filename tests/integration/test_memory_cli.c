/*
 * memchat memory, conversations and purge end to end: the built program in
 * a private HOME, data dir and config dir, with the offline provider (no
 * key, no network), as on a fresh machine. The cases prove the promises of
 * the verbs: a memory added from the command line is recalled by the next
 * ask of its tenant and of no other; search prints every field of the
 * contract, best first, under each method and filter; a filter or an
 * import line that is wrong is refused by name before anything changes;
 * export and import round-trip every field; history records each add,
 * refresh and delete; conversations carry on with --continue and
 * --conversation; purge removes one user or tenant and nothing else; and
 * bad input (empty, too long, not UTF-8, a bad id) exits 2 with a reason;
 * memory index builds, reports and catches up a tenant's HNSW graph.
 */
#include "cli_harness.h"

#include <math.h>
#include <sys/stat.h>

#define HEADLINE "You logged 35 hours last week on Apollo."

static int case_setup(void **state)
{
    int rc = setup(state);
    /* A fresh machine: no key, so answers come from the offline provider,
     * which quotes what memory recalled. Named, so that a local model
     * server on this machine cannot answer instead. */
    fx_env("MEMCHAT_PROVIDER", "offline");
    return rc;
}

/* The stdout of r up to its first newline, as a new string. */
static char *first_line(const struct run *r)
{
    size_t n = strcspn(r->out, "\n");
    char *s = strndup(r->out, n);
    assert_non_null(s);
    return s;
}

/* memchat memory add ARGS... in tenant; returns the id it printed (the
 * caller frees) after checking it is a UUIDv7. */
#define ADD(tenant, ...) mem_add((tenant), (const char *const[]){__VA_ARGS__, NULL})
static char *mem_add(const char *tenant, const char *const *extra)
{
    const char *args[32] = {"memory", "add", "--tenant", tenant};
    size_t n = 4;
    for (size_t i = 0; extra[i] != NULL; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    struct run r;
    run_memchat(&r, NULL, NULL, args);
    expect_exit(&r, 0, "memory add");
    char *id = first_line(&r);
    if (uuid7_time_ms(id) <= 0)
        fail_msg("memory add printed '%s', not a memory id", r.out);
    run_free(&r);
    return id;
}

/* memchat memory search --json ARGS... in tenant: the items (caller
 * deletes). */
#define SEARCH(tenant, ...) mem_search((tenant), (const char *const[]){__VA_ARGS__, NULL})
static cJSON *mem_search(const char *tenant, const char *const *extra)
{
    const char *args[32] = {"memory", "search", "--json", "--tenant", tenant};
    size_t n = 5;
    for (size_t i = 0; extra[i] != NULL; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    struct run r;
    run_memchat(&r, NULL, NULL, args);
    expect_exit(&r, 0, "memory search");
    cJSON *arr = json_lines(r.out);
    run_free(&r);
    return arr;
}

/* memchat memory export of tenant: the items (caller deletes). */
static cJSON *mem_export(const char *tenant)
{
    struct run r;
    RUN(&r, NULL, "memory", "export", "--tenant", tenant);
    expect_exit(&r, 0, "memory export");
    cJSON *arr = json_lines(r.out);
    run_free(&r);
    return arr;
}

/* How many memories tenant holds, from memory stats --json (0 when the
 * tenant has no namespace). */
static double mem_count(const char *tenant)
{
    struct run r;
    RUN(&r, NULL, "memory", "stats", "--json", "--tenant", tenant);
    expect_exit(&r, 0, "memory stats");
    cJSON *arr = json_lines(r.out);
    double n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        assert_string_equal(jstr(it, "tenant"), tenant);
        n += jnum(it, "count");
    }
    cJSON_Delete(arr);
    run_free(&r);
    return n;
}

/* The item of arr whose id is id, or NULL. */
static const cJSON *find_id(const cJSON *arr, const char *id)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        if (strcmp(jstr(it, "id"), id) == 0)
            return it;
    }
    return NULL;
}

/* Whether any item of arr has text. */
static bool has_text(const cJSON *arr, const char *text)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        if (strcmp(jstr(it, "text"), text) == 0)
            return true;
    }
    return false;
}

/* Words for texts that must not look alike to the embedder (a
 * near-duplicate would refresh instead of adding). */
static const char *const words[] = {
    "amber",   "basalt", "cobalt", "dune",   "ember",  "fjord",  "garnet",  "harbor", "indigo",
    "jasper",  "kelp",   "lagoon", "marble", "nectar", "onyx",   "prairie", "quartz", "reef",
    "saffron", "tundra", "umber",  "velvet", "willow", "xenon",  "yarrow",  "zephyr", "alder",
    "birch",   "cedar",  "dahlia", "elm",    "fern",   "ginkgo", "hazel",   "iris",   "juniper",
    "kiwi",    "lilac",  "maple",  "nutmeg", "olive",  "pepper", "quince",  "rowan",  "sorrel",
    "thyme",   "ulmus",  "violet", "wasabi", "yew"};
#define N_WORDS (sizeof words / sizeof *words)

/* The headline: a memory added on the command line is what the
 * next ask of the tenant recalls, and the offline provider quotes it, so
 * the answer carries the 35 hours; without memory, or in another tenant,
 * it does not. */
static void a_memory_added_is_recalled_by_the_next_ask(void **state)
{
    (void)state;
    char *id = ADD("acme", HEADLINE);
    free(id);

    struct run r;
    RUN(&r, NULL, "ask", "--tenant", "acme", "How many hours did I log last week?");
    expect_exit(&r, 0, "ask");
    expect_in(r.out, "35 hours", "the reply");
    expect_in(r.out, "Apollo", "the reply");
    run_free(&r);

    RUN(&r, NULL, "ask", "--tenant", "acme", "--no-memory", "How many hours did I log last week?");
    expect_exit(&r, 0, "ask --no-memory");
    assert_null(strstr(r.out, "35 hours"));
    run_free(&r);

    RUN(&r, NULL, "ask", "--tenant", "beta", "How many hours did I log last week?");
    expect_exit(&r, 0, "ask in another tenant");
    assert_null(strstr(r.out, "35 hours"));
    run_free(&r);
}

/* search --json prints one object per line with every field of the
 * contract (id, text, score, scores {vector, keyword, fused, mmr},
 * user_id, agent, kind, created_at, metadata), the closest memory first,
 * scores in ranking order, at most --k of them; the table shows the same
 * memory first. */
static void search_json_has_every_field_best_first(void **state)
{
    (void)state;
    char *apollo = ADD("acme", "--user", "alice", "--agent", "scribe", "--meta", "project=apollo",
                       "The Apollo launch review is on Thursday at ten.");
    free(ADD("acme", "--user", "bob", "Lunch with the Zeus team moved to Friday."));
    free(ADD("acme", "--user", "carol", "The printer on floor three is out of toner."));

    /* With the relevance floor at its default the unrelated memories are
     * never recalled; lowered to -1 every memory comes back, ranked. */
    cJSON *arr = SEARCH("acme", "--method", "similarity", "When is the Apollo launch review?");
    assert_true(cJSON_GetArraySize(arr) >= 1 && cJSON_GetArraySize(arr) < 3);
    const cJSON *hit;
    cJSON_ArrayForEach(hit, arr)
    {
        assert_null(strstr(jstr(hit, "text"), "printer"));
        const cJSON *sc = cJSON_GetObjectItemCaseSensitive(hit, "scores");
        assert_true(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(sc, "vector")) >= 0.05);
    }
    cJSON_Delete(arr);
    arr = SEARCH("acme", "--set", "MEMORY_MIN_SIMILARITY=-1", "--method", "similarity",
                 "When is the Apollo launch review?");
    assert_int_equal(cJSON_GetArraySize(arr), 3);
    const cJSON *top = cJSON_GetArrayItem(arr, 0);
    assert_string_equal(jstr(top, "id"), apollo);
    assert_string_equal(jstr(top, "text"), "The Apollo launch review is on Thursday at ten.");
    assert_string_equal(jstr(top, "user_id"), "alice");
    assert_string_equal(jstr(top, "agent"), "scribe");
    assert_true(strlen(jstr(top, "kind")) > 0);
    /* created_at is the id's own millisecond (both UUIDv7 and Unix ms). */
    double created = jnum(top, "created_at");
    assert_true(fabs(created - (double)uuid7_time_ms(apollo)) < 1000);
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(top, "metadata");
    assert_true(cJSON_IsObject(meta));
    assert_string_equal(jstr(meta, "project"), "apollo");
    const cJSON *scores = cJSON_GetObjectItemCaseSensitive(top, "scores");
    assert_true(cJSON_IsObject(scores));
    static const char *const names[] = {"vector", "keyword", "fused", "mmr"};
    for (size_t i = 0; i < 4; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(scores, names[i]);
        if (v == NULL || !(cJSON_IsNumber(v) || cJSON_IsNull(v)))
            fail_msg("scores.%s missing or neither number nor null", names[i]);
    }
    /* similarity ranks by the vector score, and says so. */
    assert_true(fabs(jnum(top, "score") - jnum(scores, "vector")) < 1e-9);
    double last = INFINITY;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        assert_true(jnum(it, "score") <= last);
        last = jnum(it, "score");
    }
    cJSON_Delete(arr);

    arr = SEARCH("acme", "--k", "2", "When is the Apollo launch review?");
    assert_int_equal(cJSON_GetArraySize(arr), 2);
    assert_string_equal(jstr(cJSON_GetArrayItem(arr, 0), "id"), apollo);
    cJSON_Delete(arr);

    struct run r;
    RUN(&r, NULL, "memory", "search", "--tenant", "acme", "When is the Apollo launch review?");
    expect_exit(&r, 0, "memory search (table)");
    char *header = first_line(&r);
    expect_in(header, "SCORE", "the table header");
    expect_in(header, "TEXT", "the table header");
    /* The first row after the header is the Apollo memory, by alice. */
    const char *row = strchr(r.out, '\n') + 1;
    size_t row_len = strcspn(row, "\n");
    char *first = strndup(row, row_len);
    expect_in(first, "Apollo launch review", "the first row");
    expect_in(first, "alice", "the first row");
    free(first);
    free(header);
    run_free(&r);
    free(apollo);
}

/* The three methods each find the memory a query is about, and fill the
 * scores they compute: hybrid a keyword and a fused score, similarity
 * neither; an unknown method is refused naming the ones accepted. */
static void each_method_ranks_and_reports_its_scores(void **state)
{
    (void)state;
    char *zeus = ADD("acme", "Project Zeus ships the billing migration in March.");
    free(ADD("acme", "The office plants need watering on Mondays."));
    free(ADD("acme", "Quarterly taxes are due on the fifteenth."));
    static const char *const methods[] = {"similarity", "mmr", "hybrid"};
    for (size_t i = 0; i < 3; i++) {
        cJSON *arr = SEARCH("acme", "--method", methods[i], "When does Zeus ship billing?");
        if (cJSON_GetArraySize(arr) < 1)
            fail_msg("%s found nothing", methods[i]);
        const cJSON *top = cJSON_GetArrayItem(arr, 0);
        if (strcmp(jstr(top, "id"), zeus) != 0)
            fail_msg("%s ranked '%s' first", methods[i], jstr(top, "text"));
        const cJSON *scores = cJSON_GetObjectItemCaseSensitive(top, "scores");
        const cJSON *fused = cJSON_GetObjectItemCaseSensitive(scores, "fused");
        const cJSON *mmr = cJSON_GetObjectItemCaseSensitive(scores, "mmr");
        if (strcmp(methods[i], "hybrid") == 0)
            assert_true(cJSON_IsNumber(fused));
        else
            assert_true(cJSON_IsNull(fused));
        if (strcmp(methods[i], "similarity") == 0)
            assert_true(cJSON_IsNull(mmr));
        else
            assert_true(cJSON_IsNumber(mmr));
        cJSON_Delete(arr);
    }
    struct run r;
    RUN(&r, NULL, "memory", "search", "--tenant", "acme", "--method", "cosine", "zeus");
    expect_exit(&r, 2, "an unknown method");
    expect_in(r.err, "cosine", "the message");
    expect_in(r.err, "hybrid", "the message");
    run_free(&r);
    free(zeus);
}

/* Filters narrow a search to what they say: user_id $eq and $in, --user,
 * created_at $gte (the memories from a given time on, exactly those of
 * export's created_at), and --meta keys with string and number values. */
static void filters_narrow_search_to_what_they_say(void **state)
{
    (void)state;
    free(ADD("acme", "--user", "alice", "--meta", "project=apollo", "--meta", "hours=35",
             "Alice logged hours on the Apollo design review."));
    free(ADD("acme", "--user", "bob", "--meta", "project=zeus", "--meta", "hours=12",
             "Bob logged hours on the Zeus data migration."));
    char *late = ADD("acme", "--user", "carol", "--meta", "project=apollo", "--meta", "hours=3",
                     "Carol logged hours on the Apollo launch checklist.");
    const char *q = "Who logged hours on which project?";

    cJSON *arr = SEARCH("acme", "--k", "10", "--filter", "{\"user_id\":{\"$eq\":\"alice\"}}", q);
    assert_int_equal(cJSON_GetArraySize(arr), 1);
    assert_string_equal(jstr(cJSON_GetArrayItem(arr, 0), "user_id"), "alice");
    cJSON_Delete(arr);

    arr = SEARCH("acme", "--k", "10", "--user", "bob", q);
    assert_int_equal(cJSON_GetArraySize(arr), 1);
    assert_string_equal(jstr(cJSON_GetArrayItem(arr, 0), "user_id"), "bob");
    cJSON_Delete(arr);

    arr =
        SEARCH("acme", "--k", "10", "--filter", "{\"user_id\":{\"$in\":[\"alice\",\"carol\"]}}", q);
    assert_int_equal(cJSON_GetArraySize(arr), 2);
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        assert_string_not_equal(jstr(it, "user_id"), "bob");
    }
    cJSON_Delete(arr);

    arr = SEARCH("acme", "--k", "10", "--filter", "{\"project\":\"apollo\"}", q);
    assert_int_equal(cJSON_GetArraySize(arr), 2);
    cJSON_ArrayForEach(it, arr)
    {
        assert_string_equal(jstr(cJSON_GetObjectItemCaseSensitive(it, "metadata"), "project"),
                            "apollo");
    }
    cJSON_Delete(arr);

    /* --meta hours=35 was stored as a number: numeric comparisons work. */
    arr = SEARCH("acme", "--k", "10", "--filter", "{\"hours\":{\"$gte\":10}}", q);
    assert_int_equal(cJSON_GetArraySize(arr), 2);
    cJSON_ArrayForEach(it, arr)
    {
        assert_true(jnum(cJSON_GetObjectItemCaseSensitive(it, "metadata"), "hours") >= 10);
    }
    cJSON_Delete(arr);

    /* created_at $gte the last memory's: exactly the memories that export
     * says were created at or after it. */
    cJSON *all = mem_export("acme");
    double t = jnum(find_id(all, late), "created_at");
    size_t want = 0;
    cJSON_ArrayForEach(it, all)
    {
        if (jnum(it, "created_at") >= t)
            want++;
    }
    char filter[128];
    snprintf(filter, sizeof filter, "{\"created_at\":{\"$gte\":%.0f}}", t);
    arr = SEARCH("acme", "--k", "10", "--filter", filter, q);
    assert_int_equal((size_t)cJSON_GetArraySize(arr), want);
    assert_non_null(find_id(arr, late));
    cJSON_ArrayForEach(it, arr)
    {
        assert_true(jnum(it, "created_at") >= t);
    }
    cJSON_Delete(arr);
    cJSON_Delete(all);
    free(late);
}

/* A filter that does not parse exits 2 before anything runs, and the
 * message points at the problem: the unknown operator by name, the
 * option it came from. */
static void a_bad_filter_exits_2_pointing_at_the_problem(void **state)
{
    (void)state;
    free(ADD("acme", "A memory to search."));
    struct run r;
    RUN(&r, NULL, "memory", "search", "--tenant", "acme", "--filter",
        "{\"user_id\":{\"$eqq\":\"alice\"}}", "memory");
    expect_exit(&r, 2, "an unknown operator");
    expect_in(r.err, "--filter", "the message");
    expect_in(r.err, "$eqq", "the message");
    run_free(&r);
    RUN(&r, NULL, "memory", "search", "--tenant", "acme", "--filter", "{\"user_id\": ", "memory");
    expect_exit(&r, 2, "a filter that is not JSON");
    expect_in(r.err, "--filter", "the message");
    run_free(&r);
    RUN(&r, NULL, "memory", "forget", "--tenant", "acme", "--filter",
        "{\"created_at\":{\"$gte\":\"yesterday\"}}");
    expect_exit(&r, 2, "created_at compared with a string");
    expect_in(r.err, "created_at", "the message");
    run_free(&r);
    assert_true(mem_count("acme") == 1);
}

/* forget removes by id (once: the second time the id is unknown and the
 * verb fails) and by filter (every match, nothing else); it takes exactly
 * one of --id and --filter, and an id that is not a UUID is refused. */
static void forget_removes_by_id_and_by_filter(void **state)
{
    (void)state;
    char *a = ADD("acme", "--user", "alice", "Alice prefers tea over coffee.");
    free(ADD("acme", "--user", "bob", "Bob prefers coffee over tea."));
    free(ADD("acme", "--user", "bob", "Bob takes the 8:15 train."));
    char *c = ADD("acme", "--user", "carol", "Carol cycles to work.");

    struct run r;
    RUN(&r, NULL, "memory", "forget", "--tenant", "acme", "--id", a);
    expect_exit(&r, 0, "forget --id");
    expect_in(r.out, "forgot 1 memory", "the output");
    run_free(&r);
    cJSON *all = mem_export("acme");
    assert_int_equal(cJSON_GetArraySize(all), 3);
    assert_null(find_id(all, a));
    cJSON_Delete(all);

    RUN(&r, NULL, "memory", "forget", "--tenant", "acme", "--id", a);
    if (r.status == 0)
        fail_msg("forgetting an unknown id succeeded: %s", r.out);
    assert_true(r.err[0] != '\0');
    run_free(&r);

    RUN(&r, NULL, "memory", "forget", "--tenant", "acme", "--filter", "{\"user_id\":\"bob\"}");
    expect_exit(&r, 0, "forget --filter");
    expect_in(r.out, "forgot 2 memories", "the output");
    run_free(&r);
    all = mem_export("acme");
    assert_int_equal(cJSON_GetArraySize(all), 1);
    assert_non_null(find_id(all, c));
    cJSON_Delete(all);

    RUN(&r, NULL, "memory", "forget", "--tenant", "acme");
    expect_exit(&r, 2, "forget with neither --id nor --filter");
    run_free(&r);
    RUN(&r, NULL, "memory", "forget", "--tenant", "acme", "--id", c, "--filter", "{}");
    expect_exit(&r, 2, "forget with both");
    run_free(&r);
    RUN(&r, NULL, "memory", "forget", "--tenant", "acme", "--id", "42");
    expect_exit(&r, 2, "forget --id that is not a UUID");
    expect_in(r.err, "42", "the message");
    run_free(&r);
    assert_true(mem_count("acme") == 1);
    free(a);
    free(c);
}

/* stats counts each tenant's memories and users: one object for a named
 * tenant, one per tenant without --tenant, and a table naming them. */
static void stats_counts_per_tenant(void **state)
{
    (void)state;
    free(ADD("acme", "--user", "alice", "Acme fact one about rockets."));
    free(ADD("acme", "--user", "bob", "Acme fact two about boats."));
    free(ADD("beta", "Beta fact about bicycles."));

    struct run r;
    RUN(&r, NULL, "memory", "stats", "--json", "--tenant", "acme");
    expect_exit(&r, 0, "stats --tenant");
    cJSON *arr = json_lines(r.out);
    assert_int_equal(cJSON_GetArraySize(arr), 1);
    const cJSON *s = cJSON_GetArrayItem(arr, 0);
    assert_string_equal(jstr(s, "tenant"), "acme");
    assert_true(jnum(s, "count") == 2);
    assert_true(jnum(s, "users") == 2);
    assert_true(jnum(s, "dim") > 0);
    cJSON_Delete(arr);
    run_free(&r);

    RUN(&r, NULL, "memory", "stats", "--json");
    expect_exit(&r, 0, "stats of every tenant");
    arr = json_lines(r.out);
    assert_int_equal(cJSON_GetArraySize(arr), 2);
    double total = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        total += jnum(it, "count");
    }
    assert_true(total == 3);
    cJSON_Delete(arr);
    run_free(&r);

    RUN(&r, NULL, "memory", "stats");
    expect_exit(&r, 0, "stats as a table");
    expect_in(r.out, "acme", "the table");
    expect_in(r.out, "beta", "the table");
    run_free(&r);
}

/* Compares two exported memories field by field: everything exact but the
 * vector, whose floats may be renormalised by a last bit. */
static void expect_same_memory(const cJSON *a, const cJSON *b)
{
    static const char *const strs[] = {"id", "text", "user_id", "agent", "kind"};
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++)
        assert_string_equal(jstr(a, strs[i]), jstr(b, strs[i]));
    assert_true(jnum(a, "created_at") == jnum(b, "created_at"));
    assert_true(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(a, "metadata"),
                              cJSON_GetObjectItemCaseSensitive(b, "metadata"), true));
    const cJSON *va = cJSON_GetObjectItemCaseSensitive(a, "vector");
    const cJSON *vb = cJSON_GetObjectItemCaseSensitive(b, "vector");
    assert_true(cJSON_IsArray(va) && cJSON_IsArray(vb));
    assert_int_equal(cJSON_GetArraySize(va), cJSON_GetArraySize(vb));
    assert_true(cJSON_GetArraySize(va) > 0);
    for (int i = 0; i < cJSON_GetArraySize(va); i++)
        assert_true(fabs(cJSON_GetArrayItem(va, i)->valuedouble -
                         cJSON_GetArrayItem(vb, i)->valuedouble) < 1e-5);
}

/* export then import into another tenant keeps every field of every
 * memory (ids, created_at, users, agents, kinds, metadata, vectors), and
 * the copy is searchable in its new tenant. */
static void export_then_import_round_trips_every_field(void **state)
{
    (void)state;
    free(ADD("acme", "--user", "alice", "--agent", "scribe", "--meta", "project=apollo", "--meta",
             "billable=true", "Alice owns the Apollo budget."));
    free(ADD("acme", "--user", "bob", "--meta", "hours=12.5", "Bob reviews Zeus pull requests."));
    free(ADD("acme", "Anyone may book the big meeting room."));

    struct run r;
    RUN(&r, NULL, "memory", "export", "--tenant", "acme");
    expect_exit(&r, 0, "export");
    char *path = tu_write_file(fx.dir, "acme.jsonl", r.out);
    cJSON *before = json_lines(r.out);
    run_free(&r);
    assert_int_equal(cJSON_GetArraySize(before), 3);

    RUN(&r, NULL, "memory", "import", "--tenant", "copy", path);
    expect_exit(&r, 0, "import");
    expect_in(r.out, "imported 3 memories (0 refreshed)", "the output");
    run_free(&r);

    cJSON *after = mem_export("copy");
    assert_int_equal(cJSON_GetArraySize(after), 3);
    const cJSON *it;
    cJSON_ArrayForEach(it, before)
    {
        const cJSON *twin = find_id(after, jstr(it, "id"));
        if (twin == NULL)
            fail_msg("memory %s was not imported", jstr(it, "id"));
        expect_same_memory(it, twin);
    }
    cJSON *arr = SEARCH("copy", "Who owns the Apollo budget?");
    assert_true(cJSON_GetArraySize(arr) > 0);
    assert_string_equal(jstr(cJSON_GetArrayItem(arr, 0), "text"), "Alice owns the Apollo budget.");
    cJSON_Delete(arr);
    cJSON_Delete(after);
    cJSON_Delete(before);
    free(path);
}

/* An import file with bad lines (not JSON, an id that is not a UUID, no
 * text) exits 2 naming each bad line by number, the good and blank lines
 * not, and imports nothing at all, not even the good lines. */
static void an_import_with_a_bad_line_names_it_and_imports_nothing(void **state)
{
    (void)state;
    const char *file = "{\"text\":\"A good first line.\"}\n"
                       "this is not json\n"
                       "{\"text\":\"An id that is no UUID.\",\"id\":\"1234\"}\n"
                       "{\"id\":\"0190f5a2-7b3c-7def-8123-456789abcdef\",\"user_id\":\"u1\"}\n"
                       "\n"
                       "{\"text\":\"A good last line.\"}\n";
    char *path = tu_write_file(fx.dir, "bad.jsonl", file);
    struct run r;
    RUN(&r, NULL, "memory", "import", "--tenant", "acme", path);
    expect_exit(&r, 2, "import of a file with bad lines");
    char want[4200];
    for (int line = 2; line <= 4; line++) {
        snprintf(want, sizeof want, "%s:%d:", path, line);
        expect_in(r.err, want, "the message");
    }
    static const int good[] = {1, 5, 6};
    for (size_t i = 0; i < 3; i++) {
        snprintf(want, sizeof want, "%s:%d:", path, good[i]);
        if (strstr(r.err, want) != NULL)
            fail_msg("good line %d reported: %s", good[i], r.err);
    }
    expect_in(r.err, "text", "the missing-text message");
    run_free(&r);
    assert_true(mem_count("acme") == 0);

    /* The same lines on stdin are named "stdin". */
    RUN(&r, file, "memory", "import", "--tenant", "acme");
    expect_exit(&r, 2, "import from stdin with bad lines");
    expect_in(r.err, "stdin:2:", "the message");
    run_free(&r);
    assert_true(mem_count("acme") == 0);
    free(path);
}

/* n import lines "Note I: " and eight words drawn from seed, users u0..u6;
 * the caller frees it. */
static char *notes_file(int n, uint32_t seed)
{
    size_t cap = (size_t)n * 160, len = 0;
    char *file = malloc(cap);
    assert_non_null(file);
    uint32_t x = seed;
    for (int i = 0; i < n; i++) {
        len += (size_t)snprintf(file + len, cap - len, "{\"text\":\"Note %d:", i);
        for (int w = 0; w < 8; w++) {
            x = x * 1103515245u + 12345u;
            len += (size_t)snprintf(file + len, cap - len, " %s", words[(x >> 16) % N_WORDS]);
        }
        len += (size_t)snprintf(file + len, cap - len, ".\",\"user_id\":\"u%d\"}\n", i % 7);
        assert_true(len < cap);
    }
    return file;
}

/* 5,000 JSON lines import (in several batches) into one tenant: every one
 * is counted by stats and any one of them can be found. */
static void an_import_of_5000_lines_loads_them_all(void **state)
{
    (void)state;
    char *file = notes_file(5000, 12345);
    char *path = tu_write_file(fx.dir, "big.jsonl", file);
    struct run r;
    RUN(&r, NULL, "memory", "import", "--tenant", "bulk", path);
    expect_exit(&r, 0, "import of 5,000 lines");
    expect_in(r.out, "imported 5000 memories", "the output");
    run_free(&r);
    assert_true(mem_count("bulk") == 5000);

    /* Line 4321 (number 4320) is there, word for word. */
    const char *line = file;
    for (int i = 0; i < 4320; i++)
        line = strchr(line, '\n') + 1;
    const char *t0 = strstr(line, "Note ");
    char *text = strndup(t0, (size_t)(strchr(t0, '"') - t0));
    cJSON *arr = SEARCH("bulk", "--k", "5", "--method", "hybrid", text);
    if (!has_text(arr, text))
        fail_msg("'%s' not found", text);
    cJSON_Delete(arr);
    free(text);
    free(path);
    free(file);
}

/* The one JSON item of `memory index --json --tenant T [extra]`. */
static cJSON *index_json(const char *tenant, const char *extra)
{
    struct run r;
    if (extra != NULL)
        RUN(&r, NULL, "memory", "index", "--json", "--tenant", tenant, extra);
    else
        RUN(&r, NULL, "memory", "index", "--json", "--tenant", tenant);
    expect_exit(&r, 0, "memory index");
    cJSON *arr = json_lines(r.out);
    assert_int_equal(cJSON_GetArraySize(arr), 1);
    cJSON *it = cJSON_DetachItemFromArray(arr, 0);
    cJSON_Delete(arr);
    run_free(&r);
    return it;
}

/* Above MEMORY_HNSW_THRESHOLD an import ends by building the tenant's
 * graph into index/; `memory index` then finds it up to date; a memory
 * added by another process afterwards is replayed onto the saved graph
 * (the file was one change behind) and is found by search; --rebuild
 * builds again from the rows; a small tenant is scanned exactly and a
 * tenant without memories is an error naming it. */
static void memory_index_builds_reports_and_catches_up(void **state)
{
    (void)state;
    fx_env("MEMORY_HNSW_THRESHOLD", "100");
    char *file = notes_file(300, 777);
    char *path = tu_write_file(fx.dir, "big.jsonl", file);
    struct run r;
    RUN(&r, NULL, "memory", "import", "--tenant", "big", path);
    expect_exit(&r, 0, "import of 300 lines");
    expect_in(r.err, "built the HNSW index of tenant big (300 memories)", "import's stderr");
    run_free(&r);
    char ipath[4200];
    snprintf(ipath, sizeof ipath, "%s/index/big.hnsw", fx.data);
    struct stat sb;
    assert_int_equal(stat(ipath, &sb), 0);

    cJSON *it = index_json("big", NULL);
    assert_string_equal(jstr(it, "search"), "hnsw");
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(it, "built")));
    assert_true(jnum(it, "count") == 300);
    assert_true(jnum(it, "caught_up") == 0);
    assert_true(jnum(it, "file_generation") == jnum(it, "generation"));
    assert_string_equal(jstr(it, "path"), ipath);
    double gen = jnum(it, "generation");
    cJSON_Delete(it);

    const char *fresh = "Zebra quokka marmalade on the ferry";
    RUN(&r, NULL, "memory", "add", "--tenant", "big", fresh);
    expect_exit(&r, 0, "memory add");
    run_free(&r);
    it = index_json("big", NULL);
    assert_true(jnum(it, "file_generation") == gen);
    assert_true(jnum(it, "generation") == gen + 1);
    assert_true(jnum(it, "caught_up") == 1);
    assert_true(jnum(it, "count") == 301);
    cJSON_Delete(it);
    cJSON *arr = SEARCH("big", "--k", "3", "--method", "similarity", fresh);
    if (!has_text(arr, fresh))
        fail_msg("the memory added after the index was saved is not found");
    cJSON_Delete(arr);

    it = index_json("big", "--rebuild");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(it, "built")));
    cJSON_Delete(it);
    RUN(&r, NULL, "memory", "index", "--tenant", "big");
    expect_exit(&r, 0, "memory index as text");
    expect_in(r.out, "301 memories, searched through an HNSW graph", "the text output");
    run_free(&r);

    RUN(&r, NULL, "memory", "add", "--tenant", "small", "Just one thing to remember");
    expect_exit(&r, 0, "memory add");
    run_free(&r);
    it = index_json("small", NULL);
    assert_string_equal(jstr(it, "search"), "exact");
    cJSON_Delete(it);
    RUN(&r, NULL, "memory", "index", "--tenant", "nobody");
    expect_exit(&r, 2, "index of an empty tenant");
    expect_in(r.err, "tenant nobody has no memories", "the message");
    run_free(&r);
    free(path);
    free(file);
}

/* history records an add, the refresh of a near-duplicate (the same id,
 * printed as refreshed) and a delete, newest first, with who did it;
 * --limit keeps the newest. */
static void history_shows_add_refresh_and_delete(void **state)
{
    (void)state;
    char *id = ADD("acme", "--user", "alice", "The staging database password rotates monthly.");
    struct run r;
    RUN(&r, NULL, "memory", "add", "--tenant", "acme", "--user", "alice",
        "The staging database password rotates monthly.");
    expect_exit(&r, 0, "adding the same text again");
    char want[64];
    snprintf(want, sizeof want, "refreshed %s\n", id);
    expect_in(r.out, want, "the second add");
    run_free(&r);
    assert_true(mem_count("acme") == 1);
    RUN(&r, NULL, "memory", "forget", "--tenant", "acme", "--id", id);
    expect_exit(&r, 0, "forget");
    run_free(&r);

    RUN(&r, NULL, "memory", "history", "--tenant", "acme", "--json");
    expect_exit(&r, 0, "history --json");
    cJSON *arr = json_lines(r.out);
    run_free(&r);
    assert_int_equal(cJSON_GetArraySize(arr), 3);
    static const char *const ops[] = {"delete", "refresh", "add"}; /* newest first */
    for (int i = 0; i < 3; i++) {
        const cJSON *h = cJSON_GetArrayItem(arr, i);
        assert_string_equal(jstr(h, "op"), ops[i]);
        assert_string_equal(jstr(h, "memory_id"), id);
        assert_true(jnum(h, "ts_ms") > 0);
    }
    assert_string_equal(jstr(cJSON_GetArrayItem(arr, 2), "user_id"), "alice");
    assert_true(jnum(cJSON_GetArrayItem(arr, 0), "ts_ms") >=
                jnum(cJSON_GetArrayItem(arr, 2), "ts_ms"));
    cJSON_Delete(arr);

    RUN(&r, NULL, "memory", "history", "--tenant", "acme", "--limit", "1", "--json");
    expect_exit(&r, 0, "history --limit 1");
    arr = json_lines(r.out);
    assert_int_equal(cJSON_GetArraySize(arr), 1);
    assert_string_equal(jstr(cJSON_GetArrayItem(arr, 0), "op"), "delete");
    cJSON_Delete(arr);
    run_free(&r);

    RUN(&r, NULL, "memory", "history", "--tenant", "acme");
    expect_exit(&r, 0, "history as a table");
    expect_in(r.out, "refresh", "the table");
    expect_in(r.out, id, "the table");
    run_free(&r);
    free(id);
}

/* The conversations of a tenant, newest first (caller deletes). */
static cJSON *conversations(const char *tenant)
{
    struct run r;
    RUN(&r, NULL, "conversations", "--tenant", tenant, "--json");
    expect_exit(&r, 0, "conversations --json");
    cJSON *arr = json_lines(r.out);
    run_free(&r);
    return arr;
}

/* ask --continue carries on the latest conversation (the offline reply
 * says how far into it the turn is), a plain ask starts a new one,
 * --conversation ID picks one, conversations lists them with their turns,
 * and rm removes one; the two flags exclude each other, and an id that is
 * not a UUID, or of no conversation, is refused. */
static void conversations_are_continued_listed_and_removed(void **state)
{
    (void)state;
    struct run r;
    RUN(&r, NULL, "ask", "--tenant", "acme", "--no-memory", "What is the capital of France?");
    expect_exit(&r, 0, "the first ask");
    expect_in(r.out, "message 1 of this conversation", "the first reply");
    run_free(&r);
    RUN(&r, NULL, "ask", "--tenant", "acme", "--no-memory", "--continue", "And of Italy?");
    expect_exit(&r, 0, "ask --continue");
    expect_in(r.out, "message 2 of this conversation", "the continued reply");
    run_free(&r);

    cJSON *arr = conversations("acme");
    assert_int_equal(cJSON_GetArraySize(arr), 1);
    const cJSON *c = cJSON_GetArrayItem(arr, 0);
    assert_true(jnum(c, "turns") == 2);
    assert_string_equal(jstr(c, "user_id"), "tester");
    char *first = strdup(jstr(c, "id"));
    cJSON_Delete(arr);

    RUN(&r, NULL, "ask", "--tenant", "acme", "--no-memory", "A new topic.");
    expect_exit(&r, 0, "a plain ask");
    expect_in(r.out, "message 1 of this conversation", "a new conversation");
    run_free(&r);
    RUN(&r, NULL, "ask", "--tenant", "acme", "--no-memory", "--conversation", first,
        "Back to capitals: and Spain?");
    expect_exit(&r, 0, "ask --conversation");
    expect_in(r.out, "message 3 of this conversation", "the resumed reply");
    run_free(&r);

    arr = conversations("acme");
    assert_int_equal(cJSON_GetArraySize(arr), 2);
    assert_true(jnum(find_id(arr, first), "turns") == 3);
    cJSON_Delete(arr);
    /* stdout of ask is the reply alone; with --json, turn.start names the
     * conversation the turn carries on. */
    RUN(&r, NULL, "ask", "--tenant", "acme", "--no-memory", "--json", "--conversation", first,
        "And Portugal?");
    expect_exit(&r, 0, "ask --json --conversation");
    struct mc_event *evs[256] = {0};
    size_t n = parse_events(r.out, evs, 256);
    check_turn_contract(evs, n);
    assert_string_equal(mc_event_str(must_event(evs, n, MC_EV_TURN_START), "conversation", ""),
                        first);
    free_events(evs, n);
    run_free(&r);
    /* Another tenant sees none of them. */
    arr = conversations("beta");
    assert_int_equal(cJSON_GetArraySize(arr), 0);
    cJSON_Delete(arr);

    RUN(&r, NULL, "conversations", "--tenant", "acme");
    expect_exit(&r, 0, "conversations as a table");
    expect_in(r.out, first, "the table");
    expect_in(r.out, "What is the capital", "the title");
    run_free(&r);

    RUN(&r, NULL, "conversations", "rm", first, "--tenant", "acme");
    expect_exit(&r, 0, "conversations rm");
    run_free(&r);
    arr = conversations("acme");
    assert_int_equal(cJSON_GetArraySize(arr), 1);
    assert_null(find_id(arr, first));
    cJSON_Delete(arr);
    RUN(&r, NULL, "conversations", "rm", first, "--tenant", "acme");
    if (r.status == 0)
        fail_msg("removing a removed conversation succeeded: %s", r.out);
    run_free(&r);

    RUN(&r, NULL, "ask", "--tenant", "acme", "--continue", "--conversation", first, "hi");
    expect_exit(&r, 2, "--continue with --conversation");
    run_free(&r);
    RUN(&r, NULL, "ask", "--tenant", "acme", "--conversation", "yesterday", "hi");
    expect_exit(&r, 2, "--conversation that is not a UUID");
    expect_in(r.err, "yesterday", "the message");
    run_free(&r);
    RUN(&r, NULL, "ask", "--tenant", "acme", "--conversation", first, "hi");
    expect_exit(&r, 2, "--conversation of a removed conversation");
    run_free(&r);
    free(first);
}

/* purge refuses without a terminal and without --yes, and without a
 * --tenant; a user's purge removes that user's memories and
 * conversations and leaves the tenant's other users and other tenants;
 * a tenant's purge empties it. */
static void purge_removes_a_user_or_tenant_and_nothing_else(void **state)
{
    (void)state;
    free(ADD("acme", "--user", "alice", "Alice keeps bees."));
    free(ADD("acme", "--user", "alice", "Alice's locker is number 12."));
    char *bob = ADD("acme", "--user", "bob", "Bob plays the cello.");
    char *beta = ADD("beta", "--user", "alice", "Beta's Alice speaks Welsh.");
    struct run r;
    RUN(&r, NULL, "ask", "--tenant", "acme", "--user", "alice", "Remember my bees?");
    expect_exit(&r, 0, "alice's ask");
    run_free(&r);
    RUN(&r, NULL, "ask", "--tenant", "acme", "--user", "bob", "Remember my cello?");
    expect_exit(&r, 0, "bob's ask");
    run_free(&r);

    RUN(&r, NULL, "purge", "--tenant", "acme", "--user", "alice");
    expect_exit(&r, 2, "purge without a terminal or --yes");
    expect_in(r.err, "--yes", "the message");
    run_free(&r);
    RUN(&r, NULL, "purge", "--yes");
    expect_exit(&r, 2, "purge without --tenant");
    expect_in(r.err, "--tenant", "the message");
    run_free(&r);
    cJSON *all = mem_export("acme");
    size_t before = (size_t)cJSON_GetArraySize(all);
    assert_true(before >= 3);
    cJSON_Delete(all);

    RUN(&r, NULL, "purge", "--tenant", "acme", "--user", "alice", "--yes", "--json");
    expect_exit(&r, 0, "purge of a user");
    cJSON *counts = json_lines(r.out);
    const cJSON *c0 = cJSON_GetArrayItem(counts, 0);
    assert_true(jnum(c0, "memories") >= 2);
    assert_true(jnum(c0, "conversations") == 1);
    cJSON_Delete(counts);
    run_free(&r);

    all = mem_export("acme");
    const cJSON *it;
    cJSON_ArrayForEach(it, all)
    {
        assert_string_not_equal(jstr(it, "user_id"), "alice");
    }
    assert_non_null(find_id(all, bob));
    cJSON_Delete(all);
    cJSON *convs = conversations("acme");
    assert_int_equal(cJSON_GetArraySize(convs), 1);
    assert_string_equal(jstr(cJSON_GetArrayItem(convs, 0), "user_id"), "bob");
    cJSON_Delete(convs);
    all = mem_export("beta");
    assert_non_null(find_id(all, beta));
    cJSON_Delete(all);

    RUN(&r, NULL, "purge", "--tenant", "acme", "--yes");
    expect_exit(&r, 0, "purge of a tenant");
    expect_in(r.out, "purged tenant acme", "the output");
    run_free(&r);
    assert_true(mem_count("acme") == 0);
    convs = conversations("acme");
    assert_int_equal(cJSON_GetArraySize(convs), 0);
    cJSON_Delete(convs);
    assert_true(mem_count("beta") == 1);
    free(bob);
    free(beta);
}

/* Tenants are isolated at the command line: the same text searched,
 * exported or counted in another tenant never shows a memory of the
 * first, and forgetting its id there removes nothing. */
static void a_tenants_memory_never_appears_in_another_tenant(void **state)
{
    (void)state;
    const char *secret = "Tenant A's launch code name is Bluebird.";
    char *id = ADD("tenant-a", secret);
    free(ADD("tenant-b", "Tenant B has a launch too."));
    cJSON *arr = SEARCH("tenant-b", "--k", "10", "--method", "hybrid", secret);
    assert_false(has_text(arr, secret));
    assert_null(find_id(arr, id));
    cJSON_Delete(arr);
    arr = mem_export("tenant-b");
    assert_false(has_text(arr, secret));
    cJSON_Delete(arr);
    struct run r;
    RUN(&r, NULL, "memory", "forget", "--tenant", "tenant-b", "--id", id);
    assert_int_not_equal(r.status, 0);
    run_free(&r);
    arr = SEARCH("tenant-a", secret);
    assert_non_null(find_id(arr, id));
    cJSON_Delete(arr);
    free(id);
}

/* Bad input exits 2 with a reason and stores nothing: empty or blank
 * text, invalid UTF-8 on stdin, an invalid tenant id, text over
 * MEMCHAT_MAX_INPUT_BYTES, bad --meta keys; text over MEMORY_MAX_BYTES is
 * stored in chunks and says how many. */
static void bad_input_is_refused_with_a_reason(void **state)
{
    (void)state;
    struct run r;
    RUN(&r, NULL, "memory", "add", "--tenant", "acme", "");
    expect_exit(&r, 2, "empty text");
    expect_in(r.err, "empty", "the message");
    run_free(&r);
    RUN(&r, " \n\t\n", "memory", "add", "--tenant", "acme");
    expect_exit(&r, 2, "blank text on stdin");
    expect_in(r.err, "empty", "the message");
    run_free(&r);
    RUN(&r, "caf\xc3 au lait \xff\n", "memory", "add", "--tenant", "acme");
    expect_exit(&r, 2, "invalid UTF-8 on stdin");
    expect_in(r.err, "UTF-8", "the message");
    run_free(&r);
    RUN(&r, NULL, "memory", "add", "--tenant", "acme corp", "hello");
    expect_exit(&r, 2, "an invalid tenant id");
    expect_in(r.err, "MEMCHAT_TENANT", "the message");
    run_free(&r);
    RUN(&r, NULL, "memory", "add", "--tenant", "acme", "--meta", "text=x", "hello");
    expect_exit(&r, 2, "a --meta key that is a field");
    run_free(&r);
    RUN(&r, NULL, "memory", "add", "--tenant", "acme", "--meta", "bad key=x", "hello");
    expect_exit(&r, 2, "a --meta key with a space");
    run_free(&r);
    RUN(&r, NULL, "memory", "add", "--tenant", "acme", "--meta", "novalue", "hello");
    expect_exit(&r, 2, "a --meta without =");
    run_free(&r);
    RUN(&r, NULL, "memory", "add", "--tenant", "acme", "--k", "3", "hello");
    expect_exit(&r, 2, "an option add does not take");
    expect_in(r.err, "--k", "the message");
    run_free(&r);

    /* Over MEMCHAT_MAX_INPUT_BYTES: refused, naming the limit. */
    char big[3000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    const char *small_input[] = {"MEMCHAT_MAX_INPUT_BYTES=1000", NULL};
    RUNE(&r, big, small_input, "memory", "add", "--tenant", "acme");
    expect_exit(&r, 2, "text over MEMCHAT_MAX_INPUT_BYTES");
    expect_in(r.err, "MEMCHAT_MAX_INPUT_BYTES", "the message");
    run_free(&r);
    assert_true(mem_count("acme") == 0);

    /* Over MEMORY_MAX_BYTES: chunks, counted on stderr and in stats. */
    char longtext[2600];
    size_t len = 0;
    uint32_t x = 777;
    while (len + 80 < sizeof longtext) {
        for (int w = 0; w < 6; w++) {
            x = x * 1103515245u + 12345u;
            len += (size_t)snprintf(longtext + len, sizeof longtext - len, "%s%s", w > 0 ? " " : "",
                                    words[(x >> 16) % N_WORDS]);
        }
        len += (size_t)snprintf(longtext + len, sizeof longtext - len, ". ");
    }
    const char *small_chunks[] = {"MEMORY_MAX_BYTES=512", NULL};
    RUNE(&r, longtext, small_chunks, "memory", "add", "--tenant", "acme");
    expect_exit(&r, 0, "text over MEMORY_MAX_BYTES");
    expect_in(r.err, "chunks", "the note");
    const char *num = strstr(r.err, "stored as ");
    assert_non_null(num);
    long chunks = strtol(num + strlen("stored as "), NULL, 10);
    assert_true(chunks >= (long)(len / 512));
    run_free(&r);
    assert_true(mem_count("acme") == (double)chunks);
}

/* --meta values keep their JSON types: numbers and booleans as such,
 * anything else (a leading zero, a number too long for a double, text) a
 * string. */
static void meta_values_keep_their_types(void **state)
{
    (void)state;
    free(ADD("acme", "--meta", "n=42", "--meta", "x=-1.5e3", "--meta", "ok=true", "--meta",
             "zip=007", "--meta", "acct=12345678901234567890", "--meta", "who=Ann Lee",
             "Typed metadata sample."));
    cJSON *arr = SEARCH("acme", "Typed metadata sample.");
    assert_int_equal(cJSON_GetArraySize(arr), 1);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(arr, 0), "metadata");
    assert_true(jnum(m, "n") == 42);
    assert_true(jnum(m, "x") == -1500);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "ok")));
    assert_string_equal(jstr(m, "zip"), "007");
    assert_string_equal(jstr(m, "acct"), "12345678901234567890");
    assert_string_equal(jstr(m, "who"), "Ann Lee");
    cJSON_Delete(arr);
}

/* The help lists the new verbs, and a verb's help its actions. */
static void help_lists_the_memory_verbs(void **state)
{
    (void)state;
    struct run r;
    RUN(&r, NULL, "--help");
    expect_exit(&r, 0, "--help");
    expect_in(r.out, "memory", "the help");
    expect_in(r.out, "conversations", "the help");
    expect_in(r.out, "purge", "the help");
    run_free(&r);
    RUN(&r, NULL, "help", "memory");
    expect_exit(&r, 0, "help memory");
    static const char *const actions[] = {"add",    "search", "forget", "stats",
                                          "export", "import", "history"};
    for (size_t i = 0; i < sizeof actions / sizeof *actions; i++) {
        char want[64];
        snprintf(want, sizeof want, "memchat memory %s", actions[i]);
        expect_in(r.out, want, "help memory");
    }
    run_free(&r);
    RUN(&r, NULL, "memory", "frobnicate");
    expect_exit(&r, 2, "an unknown action");
    expect_in(r.err, "frobnicate", "the message");
    run_free(&r);
}

static int memory_cli_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_memory_added_is_recalled_by_the_next_ask, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(search_json_has_every_field_best_first, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(each_method_ranks_and_reports_its_scores, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(filters_narrow_search_to_what_they_say, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_bad_filter_exits_2_pointing_at_the_problem, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(forget_removes_by_id_and_by_filter, case_setup, teardown),
        cmocka_unit_test_setup_teardown(stats_counts_per_tenant, case_setup, teardown),
        cmocka_unit_test_setup_teardown(export_then_import_round_trips_every_field, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(an_import_with_a_bad_line_names_it_and_imports_nothing,
                                        case_setup, teardown),
        cmocka_unit_test_setup_teardown(an_import_of_5000_lines_loads_them_all, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(memory_index_builds_reports_and_catches_up, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(history_shows_add_refresh_and_delete, case_setup, teardown),
        cmocka_unit_test_setup_teardown(conversations_are_continued_listed_and_removed, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(purge_removes_a_user_or_tenant_and_nothing_else, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_tenants_memory_never_appears_in_another_tenant,
                                        case_setup, teardown),
        cmocka_unit_test_setup_teardown(bad_input_is_refused_with_a_reason, case_setup, teardown),
        cmocka_unit_test_setup_teardown(meta_values_keep_their_types, case_setup, teardown),
        cmocka_unit_test_setup_teardown(help_lists_the_memory_verbs, case_setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

int main(void)
{
    return harness_without_terminal(memory_cli_tests);
}
