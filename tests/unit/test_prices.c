/*
 * Tests of llm/prices: the shipped share/prices.json (parses, every entry
 * complete, dated and sourced, every alias resolving to its family), the
 * lookup rules (exact id, listed aliases only, provider must match, provider
 * flat prices, unknown -> not found and NAN, never 0), the cost arithmetic
 * with and without cached tokens, overrides (add, replace one field, errors
 * naming the file and the JSON path), the file-size bound, and the order in
 * which prices_shipped_path() looks for the shipped file.
 */
#include "testutil.h"

#include "llm/prices.h"

#include <math.h>

#include <cJSON.h>

/* A small strict table the lookup and override tests control, so they do
 * not break when a real price changes. */
static const char *const FIXTURE =
    "{\"version\": 1, \"currency\": \"USD\", \"unit\": \"per_million_tokens\",\n"
    " \"_comment\": \"a fixture\",\n"
    " \"providers\": {\"offline\": {\"input\": 0, \"cached_input\": 0, \"output\": 0,\n"
    "                \"checked\": \"2026-11-23\", \"source\": \"builtin\"}},\n"
    " \"models\": {\n"
    "  \"mini\": {\"provider\": \"openai\", \"input\": 0.15, \"cached_input\": 0.075,\n"
    "           \"output\": 0.60, \"checked\": \"2026-11-23\", \"source\": \"https://a.example\",\n"
    "           \"aliases\": [\"mini-2024-07-18\"]},\n"
    "  \"sonnet\": {\"provider\": \"anthropic\", \"input\": 3, \"cached_input\": 0.3,\n"
    "             \"output\": 15, \"checked\": \"2026-02-28\", \"source\": \"https://b.example\",\n"
    "             \"note\": \"n\", \"_why\": \"comments are skipped\"}\n"
    " }}\n";

struct fx {
    char *dir;
    char *fixture; /* path of FIXTURE in dir */
    char err[1024];
};

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof *fx);
    fx->dir = tu_mkdtemp();
    fx->fixture = tu_write_file(fx->dir, "shipped.json", FIXTURE);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    tu_rmtree(fx->dir);
    free(fx->dir);
    free(fx->fixture);
    free(fx);
    return 0;
}

/* The source tree's share/prices.json (make check sets MEMCHAT_SRCDIR). */
static void shipped_path(char *out, size_t n)
{
    const char *src = getenv("MEMCHAT_SRCDIR");
    snprintf(out, n, "%s/share/prices.json", src != NULL && *src ? src : MC_SRCDIR);
}

/* Loads FIXTURE plus an override with the given text; returns the result
 * of prices_load and leaves the table in *p (NULL on failure). The override
 * path is returned in *opath (caller frees). */
static int load_with_override(struct fx *fx, const char *override, struct prices **p, char **opath)
{
    *opath = tu_write_file(fx->dir, "prices.json", override);
    fx->err[0] = '\0';
    return prices_load(p, fx->fixture, *opath, fx->err, sizeof fx->err);
}

/* Asserts that loading FIXTURE with override fails, that the message names
 * the override file, and that it contains want. */
static void expect_override_error(struct fx *fx, const char *override, const char *want)
{
    struct prices *p = (struct prices *)0x1;
    char *opath;
    assert_int_equal(load_with_override(fx, override, &p, &opath), -1);
    assert_null(p);
    if (strstr(fx->err, opath) == NULL || strstr(fx->err, want) == NULL)
        fail_msg("error \"%s\" should name %s and say \"%s\"", fx->err, opath, want);
    free(opath);
}

/* cmocka's assert_float_equal works in float, far coarser than the 1e-12
 * USD the cost must be exact to. */
static void expect_usd(double got, double want)
{
    if (!(fabs(got - want) <= 1e-12))
        fail_msg("cost %.17g USD, expected %.17g", got, want);
}

static bool is_date(const char *s)
{
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return false;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
            return false;
    return true;
}

/* The shipped table loads, and every model in it (read here with cJSON,
 * independently of the module) has a provider, non-negative prices with a
 * cache read no dearer than a fresh token, a YYYY-MM-DD checked date and an
 * https source (the offline provider, which has no web page, excepted); the
 * module returns exactly those numbers for the id and for each alias. */
static void the_shipped_table_is_complete_dated_and_sourced(void **state)
{
    struct fx *fx = *state;
    char path[4096];
    shipped_path(path, sizeof path);
    struct prices *p = NULL;
    if (prices_load(&p, path, NULL, fx->err, sizeof fx->err) != 0)
        fail_msg("shipped table: %s", fx->err);

    char *text = tu_read_file(path, NULL);
    assert_non_null(text);
    cJSON *root = cJSON_Parse(text);
    free(text);
    assert_non_null(root);
    const cJSON *models = cJSON_GetObjectItemCaseSensitive(root, "models");
    assert_true(cJSON_IsObject(models));
    size_t n = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, models)
    {
        n++;
        const char *id = m->string;
        const cJSON *prov = cJSON_GetObjectItemCaseSensitive(m, "provider");
        const cJSON *in = cJSON_GetObjectItemCaseSensitive(m, "input");
        const cJSON *ca = cJSON_GetObjectItemCaseSensitive(m, "cached_input");
        const cJSON *out = cJSON_GetObjectItemCaseSensitive(m, "output");
        const cJSON *chk = cJSON_GetObjectItemCaseSensitive(m, "checked");
        const cJSON *src = cJSON_GetObjectItemCaseSensitive(m, "source");
        if (!cJSON_IsString(prov) || prov->valuestring[0] == '\0' || !cJSON_IsNumber(in) ||
            !cJSON_IsNumber(ca) || !cJSON_IsNumber(out) || !cJSON_IsString(chk) ||
            !cJSON_IsString(src))
            fail_msg("models.%s lacks a field or has the wrong type", id);
        if (in->valuedouble < 0 || ca->valuedouble < 0 || out->valuedouble < 0)
            fail_msg("models.%s has a negative price", id);
        if (ca->valuedouble > in->valuedouble)
            fail_msg("models.%s: a cache read dearer than a fresh input token", id);
        if (!is_date(chk->valuestring))
            fail_msg("models.%s.checked \"%s\" is not YYYY-MM-DD", id, chk->valuestring);
        if (strcmp(prov->valuestring, "offline") != 0 &&
            strncmp(src->valuestring, "https://", 8) != 0)
            fail_msg("models.%s.source \"%s\" is not an https URL", id, src->valuestring);

        struct model_price pr;
        if (!prices_lookup(p, prov->valuestring, id, &pr))
            fail_msg("models.%s is not found under %s", id, prov->valuestring);
        assert_string_equal(pr.model, id);
        assert_true(pr.input == in->valuedouble && pr.cached_input == ca->valuedouble &&
                    pr.output == out->valuedouble);
        assert_string_equal(pr.checked, chk->valuestring);
        assert_string_equal(pr.source, src->valuestring);

        const cJSON *aliases = cJSON_GetObjectItemCaseSensitive(m, "aliases");
        const cJSON *a;
        cJSON_ArrayForEach(a, aliases)
        {
            struct model_price ap;
            if (!prices_lookup(p, prov->valuestring, a->valuestring, &ap))
                fail_msg("alias %s of %s is not found", a->valuestring, id);
            assert_string_equal(ap.model, id);
        }
    }
    assert_int_equal(prices_count(p), n);

    /* The models the issue names are there (a table that lost one would
     * silently make its turns unpriced). */
    static const char *const openai[] = {"gpt-4o",       "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini",
                                         "gpt-4.1-nano", "o3",          "o4-mini"};
    static const char *const anthropic[] = {"claude-sonnet-4-5", "claude-opus-4-1",
                                            "claude-haiku-4-5", "claude-3-5-haiku"};
    struct model_price pr;
    for (size_t i = 0; i < sizeof openai / sizeof *openai; i++)
        if (!prices_lookup(p, "openai", openai[i], &pr))
            fail_msg("%s is missing from the shipped table", openai[i]);
    for (size_t i = 0; i < sizeof anthropic / sizeof *anthropic; i++)
        if (!prices_lookup(p, "anthropic", anthropic[i], &pr))
            fail_msg("%s is missing from the shipped table", anthropic[i]);
    cJSON_Delete(root);
    prices_free(p);
}

/* In the shipped table the offline provider costs exactly 0, for its own
 * model and for any model name it is run with. */
static void offline_costs_zero_in_the_shipped_table(void **state)
{
    struct fx *fx = *state;
    char path[4096];
    shipped_path(path, sizeof path);
    struct prices *p = NULL;
    assert_int_equal(prices_load(&p, path, NULL, fx->err, sizeof fx->err), 0);
    struct llm_usage u = {.prompt_tokens = 123456, .completion_tokens = 7890, .cached_tokens = 11};
    struct model_price pr;
    assert_true(prices_lookup(p, "offline", "offline", &pr));
    assert_true(prices_cost(&pr, &u) == 0.0);
    assert_true(prices_lookup(p, "offline", "gpt-4o", &pr));
    assert_string_equal(pr.model, "*");
    assert_true(prices_cost(&pr, &u) == 0.0);
    prices_free(p);
}

/* Only listed aliases resolve: a dated snapshot that the table does not
 * list (gpt-4o-2024-05-13 had other prices) and a made-up suffix are not
 * found, and neither is a known model under the wrong provider. */
static void unlisted_snapshots_and_wrong_providers_are_not_found(void **state)
{
    struct fx *fx = *state;
    char path[4096];
    shipped_path(path, sizeof path);
    struct prices *p = NULL;
    assert_int_equal(prices_load(&p, path, NULL, fx->err, sizeof fx->err), 0);
    struct model_price pr;
    assert_true(prices_lookup(p, "openai", "gpt-4o", &pr));
    assert_false(prices_lookup(p, "openai", "gpt-4o-2024-05-13", &pr));
    assert_false(prices_lookup(p, "openai", "gpt-4o-mini-2099-01-01", &pr));
    assert_false(prices_lookup(p, "openai", "GPT-4O", &pr));
    assert_false(prices_lookup(p, "anthropic", "gpt-4o", &pr));
    assert_false(prices_lookup(p, "ollama", "gpt-4o", &pr));
    prices_free(p);
}

/* An exact id finds its entry with every field, under its provider or
 * under any provider (NULL); an alias finds the family and reports the
 * family's id; comments (_keys) are skipped. */
static void lookup_finds_exact_ids_and_listed_aliases(void **state)
{
    struct fx *fx = *state;
    struct prices *p = NULL;
    assert_int_equal(prices_load(&p, fx->fixture, NULL, fx->err, sizeof fx->err), 0);
    assert_int_equal(prices_count(p), 2);
    struct model_price pr;
    assert_true(prices_lookup(p, "anthropic", "sonnet", &pr));
    assert_true(pr.input == 3.0 && pr.cached_input == 0.3 && pr.output == 15.0);
    assert_string_equal(pr.model, "sonnet");
    assert_string_equal(pr.provider, "anthropic");
    assert_string_equal(pr.checked, "2026-02-28");
    assert_string_equal(pr.source, "https://b.example");
    assert_true(prices_lookup(p, NULL, "mini", &pr));
    assert_string_equal(pr.provider, "openai");
    assert_true(prices_lookup(p, "openai", "mini-2024-07-18", &pr));
    assert_string_equal(pr.model, "mini");
    assert_true(pr.input == 0.15);
    assert_false(prices_lookup(p, "anthropic", "mini-2024-07-18", &pr));
    assert_false(prices_lookup(p, "openai", "mini-2024", &pr));
    assert_false(prices_lookup(NULL, "openai", "mini", &pr));
    prices_free(p);
}

/* An unknown model is not found, *price is left alone, and its cost is
 * NAN: never 0, which a budget would read as free. */
static void an_unknown_model_costs_nan_never_zero(void **state)
{
    struct fx *fx = *state;
    struct prices *p = NULL;
    assert_int_equal(prices_load(&p, fx->fixture, NULL, fx->err, sizeof fx->err), 0);
    struct model_price pr = {.input = 42.0};
    assert_false(prices_lookup(p, "openai", "no-such-model", &pr));
    assert_true(pr.input == 42.0);
    struct llm_usage u = {.prompt_tokens = 1000, .completion_tokens = 10, .cached_tokens = 0};
    double c = prices_cost(NULL, &u);
    assert_true(isnan(c));
    assert_false(c == 0.0);
    prices_free(p);
}

/* Cost = ((prompt - cached) * input + cached * cached_input + completion *
 * output) / 1e6, exact to 1e-12: 800*0.15 + 200*0.075 + 500*0.60 = 435 ->
 * 435e-6 with 200 cached; 1000*0.15 + 500*0.60 = 450 -> 450e-6 without, and
 * the same when the provider did not report caching (-1). */
static void cost_bills_cached_tokens_at_the_cached_rate(void **state)
{
    (void)state;
    struct model_price pr = {.input = 0.15, .cached_input = 0.075, .output = 0.60};
    struct llm_usage u = {.prompt_tokens = 1000, .completion_tokens = 500, .cached_tokens = 200};
    expect_usd(prices_cost(&pr, &u), 435e-6);
    u.cached_tokens = 0;
    expect_usd(prices_cost(&pr, &u), 450e-6);
    u.cached_tokens = -1;
    expect_usd(prices_cost(&pr, &u), 450e-6);
    /* A large turn: 2M prompt (1.5M cached) + 100k out at 3 / 0.3 / 15:
     * 0.5M*3 + 1.5M*0.3 + 0.1M*15 = 1.5 + 0.45 + 1.5 = 3.45 USD. */
    struct model_price big = {.input = 3.0, .cached_input = 0.3, .output = 15.0};
    struct llm_usage b = {
        .prompt_tokens = 2000000, .completion_tokens = 100000, .cached_tokens = 1500000};
    expect_usd(prices_cost(&big, &b), 3.45);
}

/* Inconsistent or unknown usage: cached above prompt is clamped to prompt
 * (all of the prompt billed as cached); an unknown prompt or completion
 * count makes the cost unknown (NAN), not a partial sum. */
static void cost_of_odd_usage_is_clamped_or_unknown(void **state)
{
    (void)state;
    struct model_price pr = {.input = 2.0, .cached_input = 0.5, .output = 8.0};
    struct llm_usage u = {.prompt_tokens = 100, .completion_tokens = 10, .cached_tokens = 150};
    expect_usd(prices_cost(&pr, &u), (100 * 0.5 + 10 * 8.0) / 1e6);
    u.prompt_tokens = -1;
    assert_true(isnan(prices_cost(&pr, &u)));
    u.prompt_tokens = 100;
    u.completion_tokens = -1;
    assert_true(isnan(prices_cost(&pr, &u)));
    assert_true(isnan(prices_cost(&pr, NULL)));
}

/* An override adds a model (cached_input defaulting to its input price, so
 * a cache read is never billed below the stated price), replaces a single
 * field of a shipped model while keeping the others, and may give an alias
 * of the shipped table its own entry, which then wins over the alias. */
static void overrides_add_models_and_replace_fields(void **state)
{
    struct fx *fx = *state;
    struct prices *p = NULL;
    char *opath;
    int rc = load_with_override(fx,
                                "{\"models\": {\n"
                                "  \"local-llama\": {\"provider\": \"openai\", \"input\": 0.5,\n"
                                "                  \"output\": 1.5},\n"
                                "  \"mini\": {\"output\": 1.25},\n"
                                "  \"mini-2024-07-18\": {\"provider\": \"openai\", \"input\": 9,\n"
                                "                      \"cached_input\": 1, \"output\": 9}},\n"
                                " \"providers\": {\"ollama\": {\"input\": 0, \"output\": 0}}}\n",
                                &p, &opath);
    if (rc != 0)
        fail_msg("override: %s", fx->err);
    free(opath);
    assert_int_equal(prices_count(p), 4);
    struct model_price pr;
    assert_true(prices_lookup(p, "openai", "local-llama", &pr));
    assert_true(pr.input == 0.5 && pr.cached_input == 0.5 && pr.output == 1.5);
    assert_string_equal(pr.checked, "");
    assert_string_equal(pr.source, "");
    assert_true(prices_lookup(p, "openai", "mini", &pr));
    assert_true(pr.input == 0.15 && pr.cached_input == 0.075 && pr.output == 1.25);
    assert_string_equal(pr.checked, "2026-11-23");
    assert_true(prices_lookup(p, "openai", "mini-2024-07-18", &pr));
    assert_string_equal(pr.model, "mini-2024-07-18");
    assert_true(pr.input == 9.0);
    /* A provider's flat price covers its models but no other provider's,
     * and an exact model entry wins over it. */
    assert_true(prices_lookup(p, "ollama", "llama3.2", &pr));
    assert_string_equal(pr.model, "*");
    assert_string_equal(pr.provider, "ollama");
    assert_false(prices_lookup(p, "openai", "llama3.2", &pr));
    assert_true(prices_lookup(p, "offline", "mini", &pr));
    assert_string_equal(pr.model, "*");
    prices_free(p);
}

/* Bad values are refused with the override's path and the JSON path of the
 * field: negative, textual and infinite-looking prices, a bad date, an
 * empty provider. */
static void malformed_override_values_name_the_field(void **state)
{
    struct fx *fx = *state;
    expect_override_error(fx,
                          "{\"models\": {\"gpt-x\": {\"provider\": \"openai\", \"input\": 1, "
                          "\"output\": -1}}}",
                          "models.gpt-x.output: not a non-negative number");
    expect_override_error(fx, "{\"models\": {\"mini\": {\"input\": \"0.15\"}}}",
                          "models.mini.input: not a non-negative number");
    expect_override_error(fx, "{\"models\": {\"mini\": {\"cached_input\": true}}}",
                          "models.mini.cached_input: not a non-negative number");
    expect_override_error(fx, "{\"models\": {\"mini\": {\"output\": 1e999}}}",
                          "models.mini.output: not a non-negative number");
    expect_override_error(fx, "{\"models\": {\"mini\": {\"checked\": \"2026-02-30\"}}}",
                          "models.mini.checked: not a date written YYYY-MM-DD");
    expect_override_error(fx, "{\"models\": {\"mini\": {\"provider\": \"\"}}}",
                          "models.mini.provider: not a non-empty string");
    expect_override_error(fx, "{\"providers\": {\"ollama\": {\"input\": 0, \"output\": -0.5}}}",
                          "providers.ollama.output: not a non-negative number");
}

/* Wrong shapes are refused the same way: a non-object root, models as an
 * array, an entry that is not an object, a misspelt field, a repeated key,
 * aliases that are not strings or belong to two entries, a new model
 * without provider or output, another currency, and invalid JSON (with its
 * line and column). */
static void malformed_override_shapes_name_the_field(void **state)
{
    struct fx *fx = *state;
    expect_override_error(fx, "[1, 2]", "not a JSON object");
    expect_override_error(fx, "{\"models\": []}", "models: not an object of model ids");
    expect_override_error(fx, "{\"models\": {\"x\": 3}}", "models.x: not an object");
    expect_override_error(fx, "{\"models\": {\"mini\": {\"ouptut\": 1}}}",
                          "models.mini.ouptut: unknown field");
    expect_override_error(fx, "{\"model\": {}}", "model: unknown field");
    expect_override_error(fx, "{\"models\": {\"mini\": {\"output\": 1, \"output\": 2}}}",
                          "models.mini.output: given twice");
    expect_override_error(fx, "{\"models\": {\"mini\": {\"aliases\": [\"a\", 7]}}}",
                          "models.mini.aliases[1]: not a non-empty string");
    expect_override_error(fx, "{\"models\": {\"sonnet\": {\"aliases\": [\"mini-2024-07-18\"]}}}",
                          "\"mini-2024-07-18\" is already an alias of models.");
    expect_override_error(fx, "{\"models\": {\"new\": {\"input\": 1, \"output\": 1}}}",
                          "models.new: provider is missing");
    expect_override_error(fx, "{\"models\": {\"new\": {\"provider\": \"openai\", \"input\": 1}}}",
                          "models.new: output is missing");
    expect_override_error(fx, "{\"currency\": \"EUR\"}", "currency: not \"USD\"");
    expect_override_error(fx, "{\"version\": 2}", "version: not 1");
    expect_override_error(fx, "{\"models\": {\n  \"mini\": {\"output\": 1,}\n}}", "line 2, column");
    expect_override_error(fx, "{\"models\": {}} trailing", "invalid JSON");
}

/* An override file that does not exist is no override: the load succeeds
 * with the shipped prices unchanged. */
static void a_missing_override_file_is_fine(void **state)
{
    struct fx *fx = *state;
    char missing[4096];
    snprintf(missing, sizeof missing, "%s/no-such-dir/prices.json", fx->dir);
    struct prices *p = NULL;
    assert_int_equal(prices_load(&p, fx->fixture, missing, fx->err, sizeof fx->err), 0);
    struct model_price pr;
    assert_true(prices_lookup(p, "openai", "mini", &pr));
    assert_true(pr.output == 0.60);
    prices_free(p);
}

/* A missing shipped table is an error naming the file and the setting that
 * points elsewhere; a shipped table that leaves out a field fails even
 * though an override could do so. */
static void the_shipped_table_must_exist_and_be_complete(void **state)
{
    struct fx *fx = *state;
    char missing[4096];
    snprintf(missing, sizeof missing, "%s/nope/prices.json", fx->dir);
    struct prices *p = (struct prices *)0x1;
    assert_int_equal(prices_load(&p, missing, NULL, fx->err, sizeof fx->err), -1);
    assert_null(p);
    assert_non_null(strstr(fx->err, missing));
    assert_non_null(strstr(fx->err, "MEMCHAT_SHARE_DIR"));

    char *bad =
        tu_write_file(fx->dir, "incomplete.json",
                      "{\"version\": 1, \"currency\": \"USD\", \"unit\": "
                      "\"per_million_tokens\", \"models\": {\"m\": {\"provider\": \"openai\", "
                      "\"input\": 1, \"cached_input\": 0.5, \"output\": 2, \"source\": "
                      "\"https://x\"}}}");
    assert_int_equal(prices_load(&p, bad, NULL, fx->err, sizeof fx->err), -1);
    assert_non_null(strstr(fx->err, bad));
    assert_non_null(strstr(fx->err, "models.m: checked is missing"));
    free(bad);

    bad = tu_write_file(fx->dir, "noversion.json", "{\"models\": {}}");
    assert_int_equal(prices_load(&p, bad, NULL, fx->err, sizeof fx->err), -1);
    assert_non_null(strstr(fx->err, "version is missing"));
    free(bad);
}

/* Files over PRICES_MAX_FILE are refused (shipped or override) before they
 * are parsed, even when their content is valid JSON. */
static void an_oversized_file_is_refused(void **state)
{
    struct fx *fx = *state;
    size_t n = PRICES_MAX_FILE + 1;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, ' ', n);
    memcpy(big, "{\"models\": {}}", 14);
    big[n] = '\0';
    char *path = tu_write_file(fx->dir, "big.json", big);
    free(big);
    struct prices *p = NULL;
    assert_int_equal(prices_load(&p, fx->fixture, path, fx->err, sizeof fx->err), -1);
    assert_non_null(strstr(fx->err, path));
    assert_non_null(strstr(fx->err, "limit"));
    assert_int_equal(prices_load(&p, path, NULL, fx->err, sizeof fx->err), -1);
    assert_non_null(strstr(fx->err, "limit"));
    free(path);
}

/* prices_shipped_path: a non-empty MEMCHAT_SHARE_DIR wins (even before the
 * file exists there), and a table written there loads; otherwise the
 * installed copy when there is one, else the source tree; a buffer too
 * small is an error, not a truncated path. */
static void the_shipped_path_follows_the_documented_order(void **state)
{
    struct fx *fx = *state;
    char out[4096], want[4096];
    assert_int_equal(prices_shipped_path(fx->dir, out, sizeof out), 0);
    snprintf(want, sizeof want, "%s/prices.json", fx->dir);
    assert_string_equal(out, want);
    char *copy = tu_write_file(fx->dir, "prices.json", FIXTURE);
    struct prices *p = NULL;
    assert_int_equal(prices_load(&p, out, NULL, fx->err, sizeof fx->err), 0);
    assert_int_equal(prices_count(p), 2);
    prices_free(p);
    free(copy);

    struct stat st;
    snprintf(want, sizeof want, "%s/prices.json", MC_PKGDATADIR);
    if (stat(want, &st) != 0 || !S_ISREG(st.st_mode))
        snprintf(want, sizeof want, "%s/share/prices.json", MC_SRCDIR);
    assert_int_equal(prices_shipped_path("", out, sizeof out), 0);
    assert_string_equal(out, want);
    assert_int_equal(prices_shipped_path(NULL, out, sizeof out), 0);
    assert_string_equal(out, want);

    assert_int_equal(prices_shipped_path(fx->dir, out, 8), -1);
    assert_string_equal(out, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(the_shipped_table_is_complete_dated_and_sourced, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(offline_costs_zero_in_the_shipped_table, setup, teardown),
        cmocka_unit_test_setup_teardown(unlisted_snapshots_and_wrong_providers_are_not_found, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(lookup_finds_exact_ids_and_listed_aliases, setup, teardown),
        cmocka_unit_test_setup_teardown(an_unknown_model_costs_nan_never_zero, setup, teardown),
        cmocka_unit_test(cost_bills_cached_tokens_at_the_cached_rate),
        cmocka_unit_test(cost_of_odd_usage_is_clamped_or_unknown),
        cmocka_unit_test_setup_teardown(overrides_add_models_and_replace_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(malformed_override_values_name_the_field, setup, teardown),
        cmocka_unit_test_setup_teardown(malformed_override_shapes_name_the_field, setup, teardown),
        cmocka_unit_test_setup_teardown(a_missing_override_file_is_fine, setup, teardown),
        cmocka_unit_test_setup_teardown(the_shipped_table_must_exist_and_be_complete, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(an_oversized_file_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(the_shipped_path_follows_the_documented_order, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
