/*
 * Tests of agents/agent: loading agent files (every field, the defaults,
 * null as absent, "_" comments), each kind of malformed file (skipped with
 * one warning naming the file, the field and what is accepted, while the
 * other files still load), warnings that do not skip (unknown fields and
 * tools), the order and the rules of the two directories (user overrides
 * shipped, duplicates in one directory, the built-in assistant), the
 * shipped agents of the source tree, and agent_to_json.
 */
#include "testutil.h"

#include "agents/agent.h"

#include <math.h>

#include <cJSON.h>

#include "util/alloc.h"

#define MINIMAL(name) "{\"name\": \"" name "\", \"system_prompt\": \"You help.\"}"

struct fx {
    char *root;
    char *share;      /* the share dir: holds agents/ */
    char *cfg;        /* the config dir: holds agents/ */
    char *share_dir;  /* share/agents */
    char *user_dir;   /* cfg/agents */
    char *warnings;   /* of the last load */
    struct agents *r; /* of the last load */
    char err[1024];
};

static char *join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = malloc(n);
    assert_non_null(s);
    snprintf(s, n, "%s/%s", a, b);
    return s;
}

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof *fx);
    fx->root = tu_mkdtemp();
    fx->share = join(fx->root, "share");
    fx->cfg = join(fx->root, "cfg");
    fx->share_dir = join(fx->share, "agents");
    fx->user_dir = join(fx->cfg, "agents");
    assert_int_equal(mkdir(fx->share, 0700), 0);
    assert_int_equal(mkdir(fx->cfg, 0700), 0);
    assert_int_equal(mkdir(fx->share_dir, 0700), 0);
    assert_int_equal(mkdir(fx->user_dir, 0700), 0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    agents_free(fx->r);
    xfree(fx->warnings);
    tu_rmtree(fx->root);
    free(fx->root);
    free(fx->share);
    free(fx->cfg);
    free(fx->share_dir);
    free(fx->user_dir);
    free(fx);
    return 0;
}

/* Writes text to dir/name. */
static void put(const char *dir, const char *name, const char *text)
{
    free(tu_write_file(dir, name, text));
}

/* Loads the fixture's two directories; the registry must come back. */
static void load(struct fx *fx)
{
    agents_free(fx->r);
    xfree(fx->warnings);
    fx->warnings = NULL;
    fx->err[0] = '\0';
    fx->r = agents_load(fx->share, fx->cfg, &fx->warnings, fx->err, sizeof fx->err);
    assert_non_null(fx->r);
}

static size_t count_lines(const char *s)
{
    if (s == NULL || *s == '\0')
        return 0;
    size_t n = 1;
    for (; *s != '\0'; s++)
        n += *s == '\n';
    return n;
}

/* The warning line that contains every one of the NULL-terminated
 * strings; fails the test when there is none. Returned in a static buffer. */
static const char *warning_with(const char *warnings, ...)
{
    static char line[8192];
    assert_non_null(warnings);
    const char *s = warnings;
    while (*s != '\0') {
        const char *nl = strchr(s, '\n');
        size_t n = nl != NULL ? (size_t)(nl - s) : strlen(s);
        snprintf(line, sizeof line, "%.*s", (int)n, s);
        va_list ap;
        va_start(ap, warnings);
        bool all = true;
        for (const char *want = va_arg(ap, const char *); want != NULL;
             want = va_arg(ap, const char *))
            all = all && strstr(line, want) != NULL;
        va_end(ap);
        if (all)
            return line;
        s += n + (nl != NULL);
    }
    fail_msg("no warning line holds the expected parts in:\n%s", warnings);
    return NULL;
}

/* Writes a good file next to the bad one, loads, and asserts that the bad
 * file gave exactly one warning naming it and holding want1 and want2 (the
 * field, and what is accepted), that it was skipped, and that the good one
 * still loaded. */
static void expect_skipped(struct fx *fx, const char *bad, const char *want1, const char *want2)
{
    put(fx->share_dir, "good.json", MINIMAL("good"));
    put(fx->share_dir, "bad.json", bad);
    load(fx);
    assert_int_equal(count_lines(fx->warnings), 1);
    const char *w = warning_with(fx->warnings, "bad.json: ", want1, want2, NULL);
    assert_non_null(w);
    assert_non_null(agents_find(fx->r, "good"));
    assert_null(agents_find(fx->r, "bad"));
    /* good and the built-in assistant. */
    assert_int_equal(agents_count(fx->r), 2);
}

/* Every field of a complete file reaches the struct, and a complete file
 * gives no warning. */
static void a_complete_agent_file_loads_every_field(void **state)
{
    struct fx *fx = *state;
    put(fx->share_dir, "writer.json",
        "{\"name\": \"writer\", \"description\": \"Writes things\",\n"
        " \"system_prompt\": \"You write.\\nWell.\", \"provider\": \"anthropic\",\n"
        " \"model\": \"claude-x\", \"temperature\": 0.7, \"max_tokens\": 2048,\n"
        " \"memory\": false, \"k\": 12, \"memory_scope\": \"agent\", \"format\": \"json\",\n"
        " \"tools\": [\"time_now\", \"memory_search\"],\n"
        " \"steps\": [{\"name\": \"draft\", \"prompt\": \"Draft it.\"},\n"
        "           {\"name\": \"polish\", \"prompt\": \"Polish it.\", \"format\": \"json\"}]}\n");
    load(fx);
    assert_null(fx->warnings);
    const struct agent *a = agents_find(fx->r, "writer");
    assert_non_null(a);
    assert_string_equal(a->description, "Writes things");
    assert_string_equal(a->system_prompt, "You write.\nWell.");
    assert_string_equal(a->provider, "anthropic");
    assert_string_equal(a->model, "claude-x");
    assert_true(a->temperature > 0.69 && a->temperature < 0.71);
    assert_int_equal(a->max_tokens, 2048);
    assert_false(a->memory);
    assert_int_equal(a->k, 12);
    assert_int_equal(a->scope, AGENT_SCOPE_AGENT);
    assert_int_equal(a->format, AGENT_FORMAT_JSON);
    assert_int_equal(a->n_tools, 2);
    assert_string_equal(a->tools[0], "time_now");
    assert_string_equal(a->tools[1], "memory_search");
    assert_int_equal(a->n_steps, 2);
    assert_string_equal(a->steps[0].name, "draft");
    assert_string_equal(a->steps[0].prompt, "Draft it.");
    assert_int_equal(a->steps[0].format, AGENT_FORMAT_TEXT);
    assert_string_equal(a->steps[1].name, "polish");
    assert_int_equal(a->steps[1].format, AGENT_FORMAT_JSON);
    assert_int_equal(a->source, AGENT_SOURCE_SHIPPED);
    assert_true(a->shipped);
    assert_false(a->overrides);
    assert_non_null(strstr(a->path, "/share/agents/writer.json"));
}

/* A file with only the required fields gets the documented defaults, and
 * null for an optional field means absent. */
static void a_minimal_file_gets_the_defaults_and_null_means_absent(void **state)
{
    struct fx *fx = *state;
    put(fx->share_dir, "min.json", MINIMAL("min"));
    put(fx->share_dir, "nulls.json",
        "{\"name\": \"nulls\", \"system_prompt\": \"p\", \"model\": null, \"k\": null,\n"
        " \"temperature\": null, \"memory\": null, \"steps\": null, \"tools\": null}");
    load(fx);
    assert_null(fx->warnings);
    const char *names[] = {"min", "nulls"};
    for (size_t i = 0; i < 2; i++) {
        const struct agent *a = agents_find(fx->r, names[i]);
        assert_non_null(a);
        assert_string_equal(a->description, "");
        assert_null(a->provider);
        assert_null(a->model);
        assert_true(isnan(a->temperature));
        assert_int_equal(a->max_tokens, 0);
        assert_true(a->memory);
        assert_int_equal(a->k, 0);
        assert_int_equal(a->scope, AGENT_SCOPE_DEFAULT);
        assert_int_equal(a->format, AGENT_FORMAT_TEXT);
        assert_int_equal(a->n_tools, 0);
        assert_int_equal(a->n_steps, 0);
        assert_null(a->steps);
    }
}

/* Invalid JSON is reported with the line and column of the error (here the
 * missing comma on line 3, column 3), and the other file still loads. */
static void invalid_json_names_the_line_and_column(void **state)
{
    struct fx *fx = *state;
    expect_skipped(fx, "{\"name\": \"bad\",\n  \"system_prompt\": \"x\"\n  \"k\": 3}\n",
                   "line 3, column 3", "invalid JSON");
}

/* A JSON text that is not an object is rejected as such. */
static void a_file_that_is_not_an_object_is_skipped(void **state)
{
    struct fx *fx = *state;
    expect_skipped(fx, "[\"name\", \"bad\"]", "is an array, not a JSON object", "\"name\"");
}

/* Both required fields are named when missing. */
static void a_missing_name_or_prompt_is_an_error_naming_the_field(void **state)
{
    struct fx *fx = *state;
    expect_skipped(fx, "{\"system_prompt\": \"p\"}", "field name: missing",
                   "needs \"name\" and \"system_prompt\"");
    expect_skipped(fx, "{\"name\": \"bad\"}", "field system_prompt: missing", "\"system_prompt\"");
    expect_skipped(fx, "{\"name\": \"bad\", \"system_prompt\": \"  \\n \"}",
                   "field system_prompt: is empty", "non-empty text");
}

/* A value of the wrong type names the field, the type found and what is
 * accepted. */
static void a_wrong_type_names_the_field_and_what_is_accepted(void **state)
{
    struct fx *fx = *state;
    expect_skipped(fx, "{\"name\": \"bad\", \"system_prompt\": \"p\", \"memory\": \"yes\"}",
                   "field memory: is a string", "expected true or false");
    expect_skipped(fx, "{\"name\": \"bad\", \"system_prompt\": 42}",
                   "field system_prompt: is a number", "expected a string");
    expect_skipped(fx, "{\"name\": \"bad\", \"system_prompt\": \"p\", \"tools\": \"time_now\"}",
                   "field tools: is a string", "array of tool names");
    expect_skipped(fx, "{\"name\": \"bad\", \"system_prompt\": \"p\", \"tools\": [1]}",
                   "field tools[0]: is a number", "expected a string");
    expect_skipped(fx, "{\"name\": \"bad\", \"system_prompt\": \"p\", \"provider\": \"gpt\"}",
                   "field provider: 'gpt' is not accepted",
                   "auto, offline, openai, anthropic, ollama");
    expect_skipped(fx, "{\"name\": \"bad\", \"system_prompt\": \"p\", \"memory_scope\": \"all\"}",
                   "field memory_scope: 'all' is not accepted", "tenant, user, agent");
    expect_skipped(fx, "{\"name\": \"bad\", \"system_prompt\": \"p\", \"description\": \"a\\nb\"}",
                   "field description: holds a line break", "one line of text");
}

/* Numbers outside their documented ranges, and fractions where an integer
 * is needed, are errors that give the range. */
static void values_out_of_range_are_errors_giving_the_range(void **state)
{
    struct fx *fx = *state;
    expect_skipped(fx, "{\"name\": \"bad\", \"system_prompt\": \"p\", \"temperature\": 2.5}",
                   "field temperature: 2.5 is out of range", "a number from 0 to 2");
    expect_skipped(fx, "{\"name\": \"bad\", \"system_prompt\": \"p\", \"temperature\": -0.1}",
                   "field temperature: -0.1 is out of range", "from 0 to 2");
    expect_skipped(fx, "{\"name\": \"bad\", \"system_prompt\": \"p\", \"k\": 0}",
                   "field k: 0 is out of range", "an integer from 1 to 100");
    expect_skipped(fx, "{\"name\": \"bad\", \"system_prompt\": \"p\", \"k\": 101}",
                   "field k: 101 is out of range", "from 1 to 100");
    expect_skipped(fx, "{\"name\": \"bad\", \"system_prompt\": \"p\", \"max_tokens\": 1.5}",
                   "field max_tokens: 1.5 is not a whole number", "from 1 to 1000000");
    expect_skipped(fx, "{\"name\": \"bad\", \"system_prompt\": \"p\", \"max_tokens\": 1000001}",
                   "field max_tokens: 1000001 is out of range", "from 1 to 1000000");
    expect_skipped(fx, "{\"name\": \"bad\", \"system_prompt\": \"p\", \"model\": \"\"}",
                   "field model: is empty", "at most 200 bytes");
    expect_skipped(fx, "{\"name\": \"no way\", \"system_prompt\": \"p\"}",
                   "field name: 'no way' is not a valid name", "A-Z a-z 0-9 _ -");
    expect_skipped(fx, "{\"name\": \"\", \"system_prompt\": \"p\"}",
                   "field name: '' is not a valid name", "1 to 64 of A-Z a-z 0-9 _ -");
    expect_skipped(
        fx,
        "{\"name\": \"a123456789b123456789c123456789d123456789e123456789f123456789abcde\", "
        "\"system_prompt\": \"p\"}",
        "is not a valid name", "1 to 64");
    expect_skipped(fx, "{\"name\": 7, \"system_prompt\": \"p\"}", "field name: is a number",
                   "expected a name of 1 to 64");
}

/* The boundaries themselves are accepted: 0 and 2 for temperature, 1 and
 * 100 for k, 1000000 tokens, a 64-character name. */
static void the_range_boundaries_are_accepted(void **state)
{
    struct fx *fx = *state;
    put(fx->share_dir, "lo.json",
        "{\"name\": \"lo\", \"system_prompt\": \"p\", \"temperature\": 0, \"k\": 1, "
        "\"max_tokens\": 1}");
    put(fx->share_dir, "hi.json",
        "{\"name\": \"a123456789b123456789c123456789d123456789e123456789f123456789abcd\", "
        "\"system_prompt\": \"p\", \"temperature\": 2, \"k\": 100, \"max_tokens\": 1000000}");
    load(fx);
    assert_null(fx->warnings);
    assert_int_equal(agents_count(fx->r), 3);
    const struct agent *lo = agents_find(fx->r, "lo");
    assert_non_null(lo);
    assert_true(lo->temperature == 0.0);
    assert_int_equal(lo->k, 1);
    const struct agent *hi =
        agents_find(fx->r, "a123456789b123456789c123456789d123456789e123456789f123456789abcd");
    assert_non_null(hi);
    assert_int_equal(hi->k, 100);
    assert_int_equal(hi->max_tokens, 1000000);
}

/* Malformed steps are errors naming the step and the field: an empty list,
 * more than 8, a step that is not an object, a missing prompt, a bad
 * format, a repeated step name. */
static void bad_steps_are_errors_naming_the_step(void **state)
{
    struct fx *fx = *state;
    expect_skipped(fx, "{\"name\": \"bad\", \"system_prompt\": \"p\", \"steps\": []}",
                   "field steps: has 0 steps", "expected 1 to 8");
    char nine[2048] = "{\"name\": \"bad\", \"system_prompt\": \"p\", \"steps\": [";
    for (int i = 0; i < 9; i++) {
        size_t used = strlen(nine);
        snprintf(nine + used, sizeof nine - used, "%s{\"name\": \"s%d\", \"prompt\": \"p\"}",
                 i > 0 ? "," : "", i);
    }
    snprintf(nine + strlen(nine), sizeof nine - strlen(nine), "]}");
    expect_skipped(fx, nine, "field steps: has 9 steps", "expected 1 to 8");
    expect_skipped(fx, "{\"name\": \"bad\", \"system_prompt\": \"p\", \"steps\": [\"go\"]}",
                   "field steps[0]: is a string", "\"prompt\"");
    expect_skipped(fx,
                   "{\"name\": \"bad\", \"system_prompt\": \"p\", \"steps\": "
                   "[{\"name\": \"a\", \"prompt\": \"p\"}, {\"name\": \"b\"}]}",
                   "field steps[1].prompt: missing", "needs \"name\" and \"prompt\"");
    expect_skipped(fx,
                   "{\"name\": \"bad\", \"system_prompt\": \"p\", \"steps\": "
                   "[{\"name\": \"a\", \"prompt\": \"p\", \"format\": \"yaml\"}]}",
                   "field steps[0].format: 'yaml' is not accepted", "text, json");
    expect_skipped(fx,
                   "{\"name\": \"bad\", \"system_prompt\": \"p\", \"steps\": "
                   "[{\"name\": \"a\", \"prompt\": \"p\"}, {\"name\": \"a\", \"prompt\": \"q\"}]}",
                   "field steps[1].name: 'a' is also the name of steps[0]", "unique");
    expect_skipped(fx,
                   "{\"name\": \"bad\", \"system_prompt\": \"p\", \"steps\": "
                   "[{\"prompt\": \"p\"}]}",
                   "field steps[0].name: missing", "needs \"name\" and \"prompt\"");
}

/* An object with more fields than any agent needs is refused before the
 * check for repeated keys, which would otherwise take quadratic time. */
static void an_object_with_too_many_fields_is_an_error(void **state)
{
    struct fx *fx = *state;
    char text[8192] = "{\"name\": \"bad\", \"system_prompt\": \"p\"";
    for (int i = 0; i < 300; i++) {
        size_t used = strlen(text);
        snprintf(text + used, sizeof text - used, ", \"x%d\": 1", i);
    }
    snprintf(text + strlen(text), sizeof text - strlen(text), "}");
    expect_skipped(fx, text, "has 302 fields", "at most 256");
}

/* A field given twice is an error (cJSON would silently use the first). */
static void a_field_given_twice_is_an_error(void **state)
{
    struct fx *fx = *state;
    expect_skipped(fx, "{\"name\": \"bad\", \"system_prompt\": \"p\", \"k\": 3, \"k\": 4}",
                   "field k: given twice", "once");
}

/* An unknown field is a warning naming it, with the closest known name when
 * it looks like a typo; the agent still loads, with the other fields. "_"
 * keys are comments and say nothing. */
static void an_unknown_field_only_warns_and_suggests_the_known_one(void **state)
{
    struct fx *fx = *state;
    put(fx->share_dir, "t.json",
        "{\"name\": \"t\", \"system_prompt\": \"p\", \"temprature\": 1, \"colour\": \"red\",\n"
        " \"_comment\": \"ignored\", \"k\": 5,\n"
        " \"steps\": [{\"name\": \"s\", \"prompt\": \"p\", \"fromat\": \"json\"}]}");
    load(fx);
    assert_int_equal(count_lines(fx->warnings), 3);
    warning_with(fx->warnings, "t.json: unknown field 'temprature' ignored",
                 "did you mean 'temperature'?", NULL);
    warning_with(fx->warnings, "t.json: unknown field 'colour' ignored", NULL);
    assert_null(strstr(warning_with(fx->warnings, "colour", NULL), "did you mean"));
    warning_with(fx->warnings, "unknown field 'steps[0].fromat' ignored",
                 "did you mean 'steps[0].format'?", NULL);
    assert_null(strstr(fx->warnings, "_comment"));
    const struct agent *a = agents_find(fx->r, "t");
    assert_non_null(a);
    assert_true(isnan(a->temperature));
    assert_int_equal(a->k, 5);
    assert_int_equal(a->steps[0].format, AGENT_FORMAT_TEXT);
}

/* A string that is not a tool name is a warning and is left out; names are
 * kept once each, also those no tool has yet. */
static void a_bad_tool_name_only_warns_and_is_left_out(void **state)
{
    struct fx *fx = *state;
    put(fx->share_dir, "t.json",
        "{\"name\": \"t\", \"system_prompt\": \"p\",\n"
        " \"tools\": [\"web search\", \"time_now\", \"time_now\", \"web_search\"]}");
    load(fx);
    assert_int_equal(count_lines(fx->warnings), 2);
    warning_with(fx->warnings, "t.json: field tools[0]: 'web search' is not a tool name", NULL);
    warning_with(fx->warnings, "field tools[2]: tool 'time_now' given twice", NULL);
    const struct agent *a = agents_find(fx->r, "t");
    assert_non_null(a);
    /* a name no tool has yet is kept: the registry decides at each turn */
    assert_int_equal(a->n_tools, 2);
    assert_string_equal(a->tools[0], "time_now");
    assert_string_equal(a->tools[1], "web_search");
}

/* Invalid UTF-8, a NUL byte, a file over 1 MiB, and entries that are not
 * regular files (a directory, a FIFO, which must not block the load) are
 * each skipped with one warning; the rest load. */
static void unreadable_kinds_of_file_are_skipped_without_blocking(void **state)
{
    struct fx *fx = *state;
    expect_skipped(fx, "{\"name\": \"bad\",\n \"system_prompt\": \"caf\xc3\x28\"}",
                   "line 2, column 23", "invalid UTF-8");

    tu_rmtree(fx->share_dir);
    assert_int_equal(mkdir(fx->share_dir, 0700), 0);
    put(fx->share_dir, "good.json", MINIMAL("good"));
    char *nul = join(fx->share_dir, "nul.json");
    FILE *f = fopen(nul, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite("{\"name\": \"x\"\0}", 1, 14, f), 14);
    assert_int_equal(fclose(f), 0);
    free(nul);
    char *big = malloc(1024 * 1024 + 2);
    assert_non_null(big);
    memset(big, ' ', 1024 * 1024 + 1);
    big[0] = '{';
    big[1024 * 1024] = '}';
    big[1024 * 1024 + 1] = '\0';
    put(fx->share_dir, "big.json", big);
    free(big);
    char *dir = join(fx->share_dir, "dir.json");
    assert_int_equal(mkdir(dir, 0700), 0);
    free(dir);
    char *fifo = join(fx->share_dir, "fifo.json");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    free(fifo);
    load(fx);
    assert_int_equal(count_lines(fx->warnings), 4);
    warning_with(fx->warnings, "nul.json: line 1, column 13: a NUL byte", NULL);
    warning_with(fx->warnings, "big.json: is 1048577 bytes", "at most 1 MiB", NULL);
    warning_with(fx->warnings, "dir.json: not a regular file", NULL);
    warning_with(fx->warnings, "fifo.json: not a regular file", NULL);
    assert_non_null(agents_find(fx->r, "good"));
    assert_int_equal(agents_count(fx->r), 2);
}

/* A UTF-8 byte-order mark is allowed before the object. */
static void a_byte_order_mark_is_accepted(void **state)
{
    struct fx *fx = *state;
    put(fx->share_dir, "bom.json", "\xef\xbb\xbf" MINIMAL("bom"));
    load(fx);
    assert_null(fx->warnings);
    assert_non_null(agents_find(fx->r, "bom"));
}

/* Only *.json files that do not start with "." are read. */
static void only_visible_json_files_are_read(void **state)
{
    struct fx *fx = *state;
    put(fx->share_dir, "a.json", MINIMAL("a"));
    put(fx->share_dir, "b.json~", MINIMAL("b"));
    put(fx->share_dir, ".c.json", MINIMAL("c"));
    put(fx->share_dir, "README", "not an agent");
    load(fx);
    assert_null(fx->warnings);
    assert_int_equal(agents_count(fx->r), 2);
    assert_non_null(agents_find(fx->r, "a"));
    assert_null(agents_find(fx->r, "b"));
    assert_null(agents_find(fx->r, "c"));
}

/* agents_at goes in name order, whatever the file names. */
static void agents_come_in_name_order(void **state)
{
    struct fx *fx = *state;
    put(fx->share_dir, "1.json", MINIMAL("zeta"));
    put(fx->share_dir, "2.json", MINIMAL("beta"));
    put(fx->user_dir, "0.json", MINIMAL("alpha"));
    load(fx);
    assert_int_equal(agents_count(fx->r), 4);
    const char *want[] = {"alpha", "assistant", "beta", "zeta"};
    for (size_t i = 0; i < 4; i++)
        assert_string_equal(agents_at(fx->r, i)->name, want[i]);
    assert_null(agents_at(fx->r, 4));
    assert_null(agents_find(fx->r, "gamma"));
}

/* A user file with a shipped agent's name replaces it, silently but
 * marked (source user, overrides); other shipped agents stay shipped. */
static void a_user_agent_overrides_the_shipped_one_by_name(void **state)
{
    struct fx *fx = *state;
    put(fx->share_dir, "planner.json",
        "{\"name\": \"planner\", \"system_prompt\": \"shipped\", \"k\": 3}");
    put(fx->share_dir, "quality.json", MINIMAL("quality"));
    put(fx->user_dir, "my-planner.json",
        "{\"name\": \"planner\", \"system_prompt\": \"mine\", \"memory\": false}");
    load(fx);
    assert_null(fx->warnings);
    assert_int_equal(agents_count(fx->r), 3);
    const struct agent *p = agents_find(fx->r, "planner");
    assert_non_null(p);
    assert_string_equal(p->system_prompt, "mine");
    assert_false(p->memory);
    assert_int_equal(p->k, 0); /* the whole agent is replaced, not merged */
    assert_int_equal(p->source, AGENT_SOURCE_USER);
    assert_false(p->shipped);
    assert_true(p->overrides);
    assert_non_null(strstr(p->path, "/cfg/agents/my-planner.json"));
    const struct agent *q = agents_find(fx->r, "quality");
    assert_int_equal(q->source, AGENT_SOURCE_SHIPPED);
    assert_false(q->overrides);
}

/* Two files of the user dir with one name: the first by file name wins,
 * the second is skipped with a warning naming both files, and its own
 * warnings are not reported. */
static void a_duplicate_name_in_the_user_dir_is_skipped_with_a_warning(void **state)
{
    struct fx *fx = *state;
    put(fx->user_dir, "a.json", "{\"name\": \"dup\", \"system_prompt\": \"first\"}");
    put(fx->user_dir, "b.json", "{\"name\": \"dup\", \"system_prompt\": \"second\", \"typo\": 1}");
    load(fx);
    assert_int_equal(count_lines(fx->warnings), 1);
    warning_with(fx->warnings, "b.json: field name: agent 'dup' is already defined by",
                 "/cfg/agents/a.json", "skipped", NULL);
    const struct agent *d = agents_find(fx->r, "dup");
    assert_string_equal(d->system_prompt, "first");
    assert_false(d->overrides);
}

/* With no agent files (missing directories are fine), the registry still
 * holds a built-in assistant; a file named assistant replaces it. */
static void the_built_in_assistant_is_there_when_no_file_defines_one(void **state)
{
    struct fx *fx = *state;
    char *missing = join(fx->root, "nowhere");
    static char untouched[] = "untouched";
    char *warnings = untouched;
    char err[256];
    struct agents *r = agents_load(missing, NULL, &warnings, err, sizeof err);
    free(missing);
    assert_non_null(r);
    assert_null(warnings);
    assert_int_equal(agents_count(r), 1);
    const struct agent *a = agents_find(r, "assistant");
    assert_non_null(a);
    assert_int_equal(a->source, AGENT_SOURCE_BUILTIN);
    assert_true(a->memory);
    assert_int_equal(a->n_steps, 0);
    assert_string_equal(a->system_prompt,
                        "You are memchat's assistant: a helpful, honest assistant that answers "
                        "clearly and remembers what the user told it in past conversations.");
    agents_free(r);

    put(fx->user_dir, "assistant.json", MINIMAL("assistant"));
    load(fx);
    assert_int_equal(agents_count(fx->r), 1);
    assert_int_equal(agents_find(fx->r, "assistant")->source, AGENT_SOURCE_USER);
    assert_false(agents_find(fx->r, "assistant")->overrides);
}

/* An agents path that exists but is not a readable directory fails the
 * load, naming it (a missing one does not: see above). */
static void an_unreadable_agents_directory_fails_naming_it(void **state)
{
    struct fx *fx = *state;
    tu_rmtree(fx->user_dir);
    put(fx->cfg, "agents", "a file, not a directory");
    char *warnings = NULL;
    char err[512] = "";
    struct agents *r = agents_load(fx->share, fx->cfg, &warnings, err, sizeof err);
    assert_null(r);
    assert_null(warnings);
    assert_non_null(strstr(err, "cannot read the agents directory"));
    assert_non_null(strstr(err, "/cfg/agents"));
}

/* One file cannot flood the warnings: past 10 lines per file the rest are
 * counted in one line. */
static void warnings_about_one_file_are_bounded(void **state)
{
    struct fx *fx = *state;
    char text[4096] = "{\"name\": \"many\", \"system_prompt\": \"p\"";
    for (int i = 0; i < 30; i++) {
        size_t used = strlen(text);
        snprintf(text + used, sizeof text - used, ", \"zz%d\": 1", i);
    }
    snprintf(text + strlen(text), sizeof text - strlen(text), "}");
    put(fx->share_dir, "many.json", text);
    load(fx);
    assert_int_equal(count_lines(fx->warnings), 11);
    warning_with(fx->warnings, "many.json: 20 more warnings about this file not shown", NULL);
    assert_non_null(agents_find(fx->r, "many"));
}

/* A file name holding control characters cannot break a warning into
 * several lines or reach a terminal as an escape. */
static void control_characters_never_reach_the_warnings(void **state)
{
    struct fx *fx = *state;
    put(fx->share_dir, "x\n\x1b[31m.json", "{");
    put(fx->share_dir, "k.json",
        "{\"name\": \"k\", \"system_prompt\": \"p\", \"a\\u001b[2Jb\": 1}");
    load(fx);
    assert_int_equal(count_lines(fx->warnings), 2);
    assert_null(strchr(fx->warnings, '\x1b'));
    warning_with(fx->warnings, "x?", "[31m.json: line 1, column 2: invalid JSON", NULL);
    warning_with(fx->warnings, "unknown field 'a?[2Jb'", NULL);
}

/* The shipped agents of the source tree all load without a warning and
 * have the shape the product promises. */
static void the_shipped_agents_load_without_warnings(void **state)
{
    (void)state;
    const char *src = getenv("MEMCHAT_SRCDIR");
    char *share = join(src != NULL && *src != '\0' ? src : MC_SRCDIR, "share");
    char *warnings = NULL;
    char err[512];
    struct agents *r = agents_load(share, NULL, &warnings, err, sizeof err);
    free(share);
    assert_non_null(r);
    if (warnings != NULL)
        fail_msg("shipped agents warn: %s", warnings);
    assert_int_equal(agents_count(r), 4);
    for (size_t i = 0; i < 4; i++) {
        const struct agent *a = agents_at(r, i);
        assert_int_equal(a->source, AGENT_SOURCE_SHIPPED);
        assert_true(a->memory);
        assert_true(strlen(a->description) > 0);
        assert_true(strlen(a->system_prompt) > 100);
    }
    const struct agent *a = agents_find(r, "assistant");
    assert_non_null(a);
    assert_int_equal(a->n_steps, 0);
    assert_non_null(strstr(a->system_prompt, "remembers what the user told it"));

    const struct agent *p = agents_find(r, "planner");
    assert_non_null(p);
    assert_int_equal(p->n_steps, 3);
    assert_string_equal(p->steps[0].name, "understand");
    assert_int_equal(p->steps[0].format, AGENT_FORMAT_TEXT);
    assert_string_equal(p->steps[1].name, "plan");
    assert_int_equal(p->steps[1].format, AGENT_FORMAT_JSON);
    assert_string_equal(p->steps[2].name, "check");
    assert_int_equal(p->steps[2].format, AGENT_FORMAT_JSON);
    /* The JSON steps spell out the shape they must answer, and say where
     * the previous step's output is. */
    assert_non_null(strstr(p->steps[1].prompt, "{\"goal\": string, \"constraints\": [string]"));
    assert_non_null(strstr(p->steps[1].prompt, "previous step"));
    assert_non_null(strstr(p->steps[2].prompt, "{\"verdict\": \"ok\" | \"revise\""));
    assert_non_null(strstr(p->steps[2].prompt, "previous step"));

    const struct agent *b = agents_find(r, "branding");
    assert_non_null(b);
    assert_int_equal(b->k, 8);
    assert_int_equal(b->scope, AGENT_SCOPE_TENANT);

    const struct agent *q = agents_find(r, "quality");
    assert_non_null(q);
    assert_int_equal(q->format, AGENT_FORMAT_JSON);
    assert_true(q->temperature == 0.0);
    assert_non_null(strstr(q->system_prompt, "\"verdict\": \"pass\" | \"fail\""));
    agents_free(r);
}

static const cJSON *field(const cJSON *o, const char *name)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);
    if (it == NULL)
        fail_msg("agent_to_json has no field %s", name);
    return it;
}

/* agent_to_json gives every field, with null for the "none" values, the
 * names of the enums, and the source and override marks. */
static void agent_to_json_gives_every_field(void **state)
{
    struct fx *fx = *state;
    put(fx->share_dir, "full.json",
        "{\"name\": \"full\", \"description\": \"d\", \"system_prompt\": \"sp\",\n"
        " \"provider\": \"ollama\", \"model\": \"m\", \"temperature\": 0.5, \"max_tokens\": 9,\n"
        " \"memory\": false, \"k\": 4, \"memory_scope\": \"user\", \"format\": \"json\",\n"
        " \"tools\": [\"memory_search\"],\n"
        " \"steps\": [{\"name\": \"one\", \"prompt\": \"do\", \"format\": \"json\"}]}");
    put(fx->share_dir, "min.json", MINIMAL("min"));
    put(fx->user_dir, "min.json", MINIMAL("min"));
    load(fx);

    cJSON *o = agent_to_json(agents_find(fx->r, "full"));
    assert_non_null(o);
    assert_string_equal(field(o, "name")->valuestring, "full");
    assert_string_equal(field(o, "description")->valuestring, "d");
    assert_string_equal(field(o, "source")->valuestring, "shipped");
    assert_true(cJSON_IsFalse(field(o, "overrides")));
    assert_non_null(strstr(field(o, "path")->valuestring, "/share/agents/full.json"));
    assert_string_equal(field(o, "provider")->valuestring, "ollama");
    assert_string_equal(field(o, "model")->valuestring, "m");
    assert_true(field(o, "temperature")->valuedouble == 0.5);
    assert_int_equal(field(o, "max_tokens")->valueint, 9);
    assert_true(cJSON_IsFalse(field(o, "memory")));
    assert_int_equal(field(o, "k")->valueint, 4);
    assert_string_equal(field(o, "memory_scope")->valuestring, "user");
    assert_string_equal(field(o, "format")->valuestring, "json");
    assert_int_equal(cJSON_GetArraySize(field(o, "tools")), 1);
    assert_string_equal(cJSON_GetArrayItem(field(o, "tools"), 0)->valuestring, "memory_search");
    const cJSON *steps = field(o, "steps");
    assert_int_equal(cJSON_GetArraySize(steps), 1);
    const cJSON *s0 = cJSON_GetArrayItem(steps, 0);
    assert_string_equal(field(s0, "name")->valuestring, "one");
    assert_string_equal(field(s0, "prompt")->valuestring, "do");
    assert_string_equal(field(s0, "format")->valuestring, "json");
    assert_string_equal(field(o, "system_prompt")->valuestring, "sp");
    cJSON_Delete(o);

    o = agent_to_json(agents_find(fx->r, "min"));
    assert_non_null(o);
    assert_string_equal(field(o, "source")->valuestring, "user");
    assert_true(cJSON_IsTrue(field(o, "overrides")));
    const char *nulls[] = {"provider", "model", "temperature", "max_tokens", "k"};
    for (size_t i = 0; i < sizeof nulls / sizeof *nulls; i++)
        assert_true(cJSON_IsNull(field(o, nulls[i])));
    assert_true(cJSON_IsTrue(field(o, "memory")));
    assert_string_equal(field(o, "memory_scope")->valuestring, "default");
    assert_string_equal(field(o, "format")->valuestring, "text");
    assert_int_equal(cJSON_GetArraySize(field(o, "tools")), 0);
    assert_int_equal(cJSON_GetArraySize(field(o, "steps")), 0);
    cJSON_Delete(o);

    o = agent_to_json(agents_find(fx->r, "assistant"));
    assert_non_null(o);
    assert_string_equal(field(o, "source")->valuestring, "builtin");
    assert_true(cJSON_IsNull(field(o, "path")));
    cJSON_Delete(o);
}

/* The enum names are the words of the file format. */
static void the_enum_names_match_the_file_format(void **state)
{
    (void)state;
    assert_string_equal(agent_scope_name(AGENT_SCOPE_DEFAULT), "default");
    assert_string_equal(agent_scope_name(AGENT_SCOPE_TENANT), "tenant");
    assert_string_equal(agent_scope_name(AGENT_SCOPE_USER), "user");
    assert_string_equal(agent_scope_name(AGENT_SCOPE_AGENT), "agent");
    assert_string_equal(agent_format_name(AGENT_FORMAT_TEXT), "text");
    assert_string_equal(agent_format_name(AGENT_FORMAT_JSON), "json");
    assert_string_equal(agent_source_name(AGENT_SOURCE_SHIPPED), "shipped");
    assert_string_equal(agent_source_name(AGENT_SOURCE_USER), "user");
    assert_string_equal(agent_source_name(AGENT_SOURCE_BUILTIN), "builtin");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_complete_agent_file_loads_every_field, setup, teardown),
        cmocka_unit_test_setup_teardown(a_minimal_file_gets_the_defaults_and_null_means_absent,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(invalid_json_names_the_line_and_column, setup, teardown),
        cmocka_unit_test_setup_teardown(a_file_that_is_not_an_object_is_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(a_missing_name_or_prompt_is_an_error_naming_the_field,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(a_wrong_type_names_the_field_and_what_is_accepted, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(values_out_of_range_are_errors_giving_the_range, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(the_range_boundaries_are_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_steps_are_errors_naming_the_step, setup, teardown),
        cmocka_unit_test_setup_teardown(a_field_given_twice_is_an_error, setup, teardown),
        cmocka_unit_test_setup_teardown(an_object_with_too_many_fields_is_an_error, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(an_unknown_field_only_warns_and_suggests_the_known_one,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(a_bad_tool_name_only_warns_and_is_left_out, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(unreadable_kinds_of_file_are_skipped_without_blocking,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(a_byte_order_mark_is_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(only_visible_json_files_are_read, setup, teardown),
        cmocka_unit_test_setup_teardown(agents_come_in_name_order, setup, teardown),
        cmocka_unit_test_setup_teardown(a_user_agent_overrides_the_shipped_one_by_name, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_duplicate_name_in_the_user_dir_is_skipped_with_a_warning,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(the_built_in_assistant_is_there_when_no_file_defines_one,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(an_unreadable_agents_directory_fails_naming_it, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(warnings_about_one_file_are_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(control_characters_never_reach_the_warnings, setup,
                                        teardown),
        cmocka_unit_test(the_shipped_agents_load_without_warnings),
        cmocka_unit_test_setup_teardown(agent_to_json_gives_every_field, setup, teardown),
        cmocka_unit_test(the_enum_names_match_the_file_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
