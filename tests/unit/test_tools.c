/*
 * Tests of tools/registry and tools/runner: loading tool files (every
 * field, the defaults, shipped and user files with the user's overriding),
 * each kind of malformed file (skipped with one warning naming the file,
 * the field and what is accepted, while the other tools still load),
 * duplicates, built-ins, the TTL cache (driven by explicit now_ms values),
 * time_now and tool_def_to_json; then running tools: a round trip, a
 * failing tool and its stderr line, the timeout killing the whole process
 * group, the output cap, invalid output, bad arguments, a missing
 * executable, cancel from another thread, a tool that never reads its
 * input, the built environment, and credentials scrubbed from stderr.
 *
 * The tool executables are sh scripts written at test time into a private
 * directory. The process is a child subreaper (Linux), so a background
 * process a killed tool left behind becomes our child, and waitpid() proves
 * it was killed without any sleeping. Tools that should finish get the
 * default 10 s timeout, which only a broken runner reaches.
 */
#include "testutil.h"

#include "tools/registry.h"
#include "tools/runner.h"

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>

#include <cJSON.h>

#include "util/alloc.h"
#include "util/clock.h"

#define SECRET      "s3cret-value-42"
#define CANARY      "sk-canary-0f9e8d7c6b5a"
#define CANCEL_WAIT 10000 /* ms the cancel thread waits for the tool to be ready */

/* A tool file's fields around a command, for tool files that only vary in
 * name, command and the extra fields. */
#define TOOL_JSON(name, command, extra)                                                       \
    "{\"name\": \"" name "\", \"description\": \"A test tool.\", \"parameters\": {\"type\": " \
    "\"object\", \"properties\": {}}, \"command\": " command extra "}"

struct fx {
    char *root;
    char *share;   /* the share dir: holds tools/ */
    char *cfg;     /* the config dir: holds tools/ */
    char *shipdir; /* share/tools */
    char *userdir; /* cfg/tools */
    struct tool_registry *r;
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
    fx->shipdir = join(fx->share, "tools");
    fx->userdir = join(fx->cfg, "tools");
    assert_int_equal(mkdir(fx->share, 0700), 0);
    assert_int_equal(mkdir(fx->cfg, 0700), 0);
    assert_int_equal(mkdir(fx->shipdir, 0700), 0);
    assert_int_equal(mkdir(fx->userdir, 0700), 0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    tool_registry_free(fx->r);
    tu_rmtree(fx->root);
    free(fx->root);
    free(fx->share);
    free(fx->cfg);
    free(fx->shipdir);
    free(fx->userdir);
    free(fx);
    return 0;
}

/* Writes text to dir/name. */
static void put(const char *dir, const char *name, const char *text)
{
    free(tu_write_file(dir, name, text));
}

/* Writes an executable sh script dir/name with body. */
static void script(const char *dir, const char *name, const char *body)
{
    size_t n = strlen(body) + 16;
    char *text = malloc(n);
    assert_non_null(text);
    snprintf(text, n, "#!/bin/sh\n%s\n", body);
    char *path = tu_write_file(dir, name, text);
    assert_int_equal(chmod(path, 0755), 0);
    free(path);
    free(text);
}

/* A fresh registry over the fixture's two directories, loaded (TTL 0). */
static void load(struct fx *fx)
{
    tool_registry_free(fx->r);
    fx->r = tool_registry_new(fx->share, fx->cfg, 0);
    fx->err[0] = '\0';
    assert_int_equal(tool_registry_refresh(fx->r, 0, true, fx->err, sizeof fx->err), 0);
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

/* The warning line holding every one of the NULL-terminated strings;
 * fails the test when there is none. Returned in a static buffer. */
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

/* ---- the registry ---------------------------------------------------- */

/* Shipped and user files both load; a user file replaces the shipped tool
 * of its name (source user, overrides true), a relative executable is
 * resolved against its file's directory, the defaults apply, and the
 * list (built-in time_now included) is in name order. */
static void shipped_and_user_tools_load_and_the_user_overrides_by_name(void **state)
{
    struct fx *fx = *state;
    script(fx->shipdir, "weather.sh", "echo '{}'");
    script(fx->shipdir, "calc.sh", "echo '{}'");
    script(fx->userdir, "my-weather.sh", "echo '{}'");
    put(fx->shipdir, "weather.json", TOOL_JSON("weather", "[\"weather.sh\"]", ""));
    put(fx->shipdir, "calc.json", TOOL_JSON("calc", "[\"calc.sh\", \"--fast\"]", ""));
    put(fx->userdir, "weather.json", TOOL_JSON("weather", "[\"my-weather.sh\"]", ""));
    load(fx);
    assert_null(tool_registry_warnings(fx->r));
    assert_int_equal(tool_registry_count(fx->r), 3);
    assert_string_equal(tool_registry_at(fx->r, 0)->name, "calc");
    assert_string_equal(tool_registry_at(fx->r, 1)->name, "time_now");
    assert_string_equal(tool_registry_at(fx->r, 2)->name, "weather");
    assert_null(tool_registry_at(fx->r, 3));

    const struct tool_def *w = tool_registry_find(fx->r, "weather");
    assert_non_null(w);
    assert_int_equal(w->source, TOOL_SOURCE_USER);
    assert_true(w->overrides);
    char *want = join(fx->userdir, "my-weather.sh");
    assert_string_equal(w->argv[0], want);
    free(want);
    assert_non_null(strstr(w->path, "/cfg/tools/weather.json"));

    const struct tool_def *c = tool_registry_find(fx->r, "calc");
    assert_non_null(c);
    assert_int_equal(c->source, TOOL_SOURCE_SHIPPED);
    assert_false(c->overrides);
    assert_int_equal(c->argc, 2);
    assert_string_equal(c->argv[1], "--fast");
    assert_null(c->argv[2]);
    assert_int_equal(c->argv[0][0], '/');
    assert_int_equal(c->timeout_ms, TOOL_TIMEOUT_DEFAULT);
    assert_int_equal(c->output_max, TOOL_OUTPUT_DEFAULT);
    assert_false(c->read_only);
    assert_int_equal(c->n_credentials, 0);
    assert_null(c->builtin);
    assert_string_equal(c->parameters, "{\"type\":\"object\",\"properties\":{}}");

    const struct tool_def *t = tool_registry_find(fx->r, "time_now");
    assert_non_null(t);
    assert_int_equal(t->source, TOOL_SOURCE_BUILTIN);
    assert_true(t->read_only);
    assert_null(t->argv);
    assert_null(tool_registry_find(fx->r, "nope"));
}

/* Every field is read; the schema is kept minified; null is the same as
 * absent; "_" keys are comments and give no warning. */
static void every_field_is_read_and_the_schema_is_minified(void **state)
{
    struct fx *fx = *state;
    script(fx->userdir, "full.sh", "echo '{}'");
    put(fx->userdir, "full.json",
        "{\n  \"_comment\": \"a full tool\",\n  \"name\": \"full\",\n"
        "  \"description\": \"Does\\nall.\",\n"
        "  \"parameters\": { \"type\" : \"object\",\n   \"properties\": { \"q\": {\"type\": "
        "\"string\"} },\n   \"required\": [ \"q\" ] },\n"
        "  \"command\": [\"full.sh\", \"a b\", \"\"],\n  \"timeout_ms\": 5000,\n"
        "  \"output_max_bytes\": 100,\n  \"read_only\": true,\n"
        "  \"credentials\": [\"API_KEY\", \"_OTHER2\"]\n}\n");
    script(fx->userdir, "nulls.sh", "echo '{}'");
    put(fx->userdir, "nulls.json",
        TOOL_JSON("nulls", "[\"nulls.sh\"]",
                  ", \"timeout_ms\": null, \"output_max_bytes\": null, \"read_only\": null, "
                  "\"credentials\": null"));
    load(fx);
    assert_null(tool_registry_warnings(fx->r));
    const struct tool_def *t = tool_registry_find(fx->r, "full");
    assert_non_null(t);
    assert_string_equal(t->description, "Does\nall.");
    assert_string_equal(t->parameters, "{\"type\":\"object\",\"properties\":{\"q\":{\"type\":"
                                       "\"string\"}},\"required\":[\"q\"]}");
    assert_int_equal(t->argc, 3);
    assert_string_equal(t->argv[1], "a b");
    assert_string_equal(t->argv[2], "");
    assert_int_equal(t->timeout_ms, 5000);
    assert_int_equal(t->output_max, 100);
    assert_true(t->read_only);
    assert_int_equal(t->n_credentials, 2);
    assert_string_equal(t->credentials[0], "API_KEY");
    assert_string_equal(t->credentials[1], "_OTHER2");

    const struct tool_def *n = tool_registry_find(fx->r, "nulls");
    assert_non_null(n);
    assert_int_equal(n->timeout_ms, TOOL_TIMEOUT_DEFAULT);
    assert_int_equal(n->output_max, TOOL_OUTPUT_DEFAULT);
    assert_false(n->read_only);
    assert_int_equal(n->n_credentials, 0);
}

/* One malformed file and what its warning must hold. */
struct bad_case {
    const char *text;
    const char *want1;
    const char *want2;
};

/* Each malformed file, beside a good one, is skipped with exactly one
 * warning that names the file, the field and what is accepted; the good
 * tool still loads. One case per kind of field problem. */
static void each_malformed_field_skips_its_file_with_one_warning(void **state)
{
    struct fx *fx = *state;
    script(fx->userdir, "good.sh", "echo '{}'");
    script(fx->userdir, "ok.sh", "echo '{}'");
    put(fx->userdir, "noexec.sh", "#!/bin/sh\necho '{}'\n"); /* mode 0644 */
    put(fx->userdir, "good.json", TOOL_JSON("good", "[\"good.sh\"]", ""));
    static const struct bad_case cases[] = {
        {"{\"name\": \"bad\",\n  \"description\": }", "line 2, column 18", "invalid JSON"},
        {"[1, 2]", "is an array, not a JSON object", "a tool file is one object"},
        {"{\"description\": \"d\", \"parameters\": {\"type\": \"object\"}, \"command\": "
         "[\"ok.sh\"]}",
         "field name: missing", "\"description\", \"parameters\" and \"command\""},
        {TOOL_JSON("bad tool", "[\"ok.sh\"]", ""), "field name: 'bad tool' is not a valid name",
         "A-Z a-z 0-9 _ -"},
        {TOOL_JSON("bad", "[\"ok.sh\"]", ", \"name\": \"again\""), "field name: given twice",
         "each field may appear once"},
        {"{\"name\": \"bad\", \"parameters\": {\"type\": \"object\"}, \"command\": [\"ok.sh\"]}",
         "field description: missing", "every tool file needs"},
        {"{\"name\": \"bad\", \"description\": \" \", \"parameters\": {\"type\": \"object\"}, "
         "\"command\": [\"ok.sh\"]}",
         "field description: is empty", "non-empty text of at most 4096 bytes"},
        {"{\"name\": \"bad\", \"description\": \"d\", \"command\": [\"ok.sh\"]}",
         "field parameters: missing", "every tool file needs"},
        {"{\"name\": \"bad\", \"description\": \"d\", \"parameters\": \"object\", "
         "\"command\": [\"ok.sh\"]}",
         "field parameters: is a string", "a JSON Schema object"},
        {"{\"name\": \"bad\", \"description\": \"d\", \"parameters\": {\"type\": \"array\"}, "
         "\"command\": [\"ok.sh\"]}",
         "field parameters.type: 'array' is not accepted", "\"object\""},
        {"{\"name\": \"bad\", \"description\": \"d\", \"parameters\": {\"type\": \"object\", "
         "\"properties\": {\"a\": {}, \"a\": {}}}, \"command\": [\"ok.sh\"]}",
         "field parameters: key 'a' is given twice", "each key may appear once"},
        {"{\"name\": \"bad\", \"description\": \"d\", \"parameters\": {\"type\": \"object\", "
         "\"required\": \"a\"}, \"command\": [\"ok.sh\"]}",
         "field parameters.required: is a string", "an array of argument names"},
        {"{\"name\": \"bad\", \"description\": \"d\", \"parameters\": {\"type\": \"object\"}}",
         "field command: missing", "every tool file needs"},
        {TOOL_JSON("bad", "\"ok.sh\"", ""), "field command: is a string",
         "an array of 1 to 64 strings"},
        {TOOL_JSON("bad", "[]", ""), "field command: has 0 words", "expected 1 to 64"},
        {TOOL_JSON("bad", "[\"ok.sh\", 3]", ""), "field command[1]: is a number",
         "expected a string"},
        {TOOL_JSON("bad", "[\"missing.sh\"]", ""), "field command[0]: the executable",
         "missing.sh does not exist"},
        {TOOL_JSON("bad", "[\"noexec.sh\"]", ""),
         "field command[0]: ", "noexec.sh is not executable"},
        {TOOL_JSON("bad", "[\"ok.sh\"]", ", \"timeout_ms\": 0"),
         "field timeout_ms: 0 is out of range", "an integer from 1 to 600000"},
        {TOOL_JSON("bad", "[\"ok.sh\"]", ", \"timeout_ms\": 1.5"),
         "field timeout_ms: 1.5 is not a whole number", "an integer from 1 to 600000"},
        {TOOL_JSON("bad", "[\"ok.sh\"]", ", \"output_max_bytes\": 16777217"),
         "field output_max_bytes: 16777217 is out of range", "an integer from 1 to 16777216"},
        {TOOL_JSON("bad", "[\"ok.sh\"]", ", \"read_only\": \"yes\""),
         "field read_only: is a string", "expected true or false"},
        {TOOL_JSON("bad", "[\"ok.sh\"]", ", \"credentials\": \"API_KEY\""),
         "field credentials: is a string", "an array of at most 16 variable names"},
        {TOOL_JSON("bad", "[\"ok.sh\"]", ", \"credentials\": [\"api_key\"]"),
         "field credentials[0]: 'api_key' is not a valid variable name", "[A-Z_][A-Z0-9_]{0,63}"},
        {TOOL_JSON("bad", "[\"ok.sh\"]", ", \"credentials\": [\"A\", \"PATH\"]"),
         "field credentials[1]: 'PATH' is set by memchat", "reserved: PATH, HOME"},
        {TOOL_JSON("bad", "[\"ok.sh\"]", ", \"credentials\": [\"A\", \"B\", \"A\"]"),
         "field credentials[2]: 'A' is also credentials[0]", "names are distinct"},
        {TOOL_JSON("bad", "[\"ok.sh\"]",
                   ", \"credentials\": [\"A\",\"B\",\"C\",\"D\",\"E\",\"F\",\"G\",\"H\",\"I\","
                   "\"J\",\"K\",\"L\",\"M\",\"N\",\"O\",\"P\",\"Q\"]"),
         "field credentials: has 17 names", "expected at most 16"},
        {"{\"name\": \"bad\", \"description\": \"caf\xc3\"}", "line 1, column 36", "invalid UTF-8"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        put(fx->userdir, "bad.json", cases[i].text);
        load(fx);
        const char *w = tool_registry_warnings(fx->r);
        if (count_lines(w) != 1)
            fail_msg("case %zu: expected one warning, got:\n%s", i, w != NULL ? w : "(none)");
        warning_with(w, "/cfg/tools/bad.json: ", cases[i].want1, cases[i].want2, NULL);
        assert_non_null(tool_registry_find(fx->r, "good"));
        assert_null(tool_registry_find(fx->r, "bad"));
        assert_int_equal(tool_registry_count(fx->r), 2); /* good and time_now */
    }
}

/* Files that are not JSON text: a NUL byte, more than 1 MiB, a directory
 * named like a tool file, each skipped with one warning. */
static void nul_bytes_big_files_and_directories_are_skipped(void **state)
{
    struct fx *fx = *state;
    script(fx->userdir, "good.sh", "echo '{}'");
    put(fx->userdir, "good.json", TOOL_JSON("good", "[\"good.sh\"]", ""));
    char *nul = join(fx->userdir, "nul.json");
    FILE *f = fopen(nul, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite("{\"name\"\0}", 1, 9, f), 9);
    assert_int_equal(fclose(f), 0);
    char *big = join(fx->userdir, "big.json");
    f = fopen(big, "wb");
    assert_non_null(f);
    for (int i = 0; i <= 1024; i++) {
        char block[1024];
        memset(block, ' ', sizeof block);
        assert_int_equal(fwrite(block, 1, sizeof block, f), sizeof block);
    }
    assert_int_equal(fclose(f), 0);
    char *dir = join(fx->userdir, "dir.json");
    assert_int_equal(mkdir(dir, 0700), 0);
    load(fx);
    const char *w = tool_registry_warnings(fx->r);
    assert_int_equal(count_lines(w), 3);
    warning_with(w, "nul.json: line 1, column 8: a NUL byte", "a tool file is JSON text", NULL);
    warning_with(w, "big.json: is 1049600 bytes", "a tool file is at most 1 MiB", NULL);
    warning_with(w, "dir.json: not a regular file", "a tool is a JSON file", NULL);
    assert_non_null(tool_registry_find(fx->r, "good"));
    free(nul);
    free(big);
    free(dir);
}

/* An unknown field is a warning suggesting the closest known name; the
 * tool still loads. A far-off name gets no suggestion. */
static void unknown_fields_warn_with_a_suggestion_and_the_tool_loads(void **state)
{
    struct fx *fx = *state;
    script(fx->userdir, "t.sh", "echo '{}'");
    put(fx->userdir, "t.json",
        TOOL_JSON("t", "[\"t.sh\"]", ", \"timout_ms\": 5, \"readonly\": true, \"colour\": 1"));
    load(fx);
    const char *w = tool_registry_warnings(fx->r);
    assert_int_equal(count_lines(w), 3);
    warning_with(w, "t.json: unknown field 'timout_ms' ignored", "did you mean 'timeout_ms'?",
                 NULL);
    warning_with(w, "t.json: unknown field 'readonly' ignored", "did you mean 'read_only'?", NULL);
    assert_null(strstr(warning_with(w, "'colour'", NULL), "did you mean"));
    const struct tool_def *t = tool_registry_find(fx->r, "t");
    assert_non_null(t);
    assert_false(t->read_only); /* the misspelt field did not count */
}

/* Within one directory, a second file with a name already seen (in byte
 * order of the file names) is skipped with a warning naming both. */
static void a_second_file_with_the_same_name_in_one_directory_is_skipped(void **state)
{
    struct fx *fx = *state;
    script(fx->shipdir, "x.sh", "echo '{}'");
    put(fx->shipdir, "a.json", TOOL_JSON("x", "[\"x.sh\"]", ", \"timeout_ms\": 111"));
    put(fx->shipdir, "b.json", TOOL_JSON("x", "[\"x.sh\"]", ", \"timeout_ms\": 222"));
    load(fx);
    const char *w = tool_registry_warnings(fx->r);
    assert_int_equal(count_lines(w), 1);
    warning_with(w, "/share/tools/b.json: field name: tool 'x' is already defined by",
                 "/share/tools/a.json", "unique in a directory", NULL);
    const struct tool_def *t = tool_registry_find(fx->r, "x");
    assert_non_null(t);
    assert_int_equal(t->timeout_ms, 111);
    assert_false(t->overrides);
}

static int echo_builtin(void *ud, void *ctx, const char *args, struct buf *out, char *err,
                        size_t errlen)
{
    (void)ud;
    (void)err;
    (void)errlen;
    (void)buf_printf(out, "{ \"ctx\" : \"%s\", \"args\" : %s }", (const char *)ctx, args);
    return 0;
}

/* A file tool cannot take a built-in's name (time_now, or one registered
 * by a layer above), and add_builtin refuses a bad name, a second
 * registration and a schema that is not an object; a built-in registered
 * after a load hides the loaded file tool of its name at once. */
static void builtin_names_win_over_files_and_bad_builtins_are_refused(void **state)
{
    struct fx *fx = *state;
    script(fx->userdir, "x.sh", "echo '{}'");
    put(fx->userdir, "a.json", TOOL_JSON("time_now", "[\"x.sh\"]", ""));
    put(fx->userdir, "b.json", TOOL_JSON("memory_search", "[\"x.sh\"]", ""));
    put(fx->userdir, "c.json", TOOL_JSON("later", "[\"x.sh\"]", ""));
    tool_registry_free(fx->r);
    fx->r = tool_registry_new(fx->share, fx->cfg, 0);
    char err[256];
    const char *schema = "{\"type\": \"object\"}";
    assert_int_equal(tool_registry_add_builtin(fx->r, "memory_search", "Search.", schema, true,
                                               echo_builtin, NULL, err, sizeof err),
                     0);
    assert_int_equal(tool_registry_add_builtin(fx->r, "memory_search", "Again.", schema, true,
                                               echo_builtin, NULL, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "already registered"));
    assert_int_equal(tool_registry_add_builtin(fx->r, "bad name", "d", schema, true, echo_builtin,
                                               NULL, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "invalid built-in tool name"));
    assert_int_equal(tool_registry_add_builtin(fx->r, "arr", "d", "[1]", true, echo_builtin, NULL,
                                               err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "schema object"));
    assert_int_equal(tool_registry_add_builtin(fx->r, "junk", "d", "{not json", true, echo_builtin,
                                               NULL, err, sizeof err),
                     -1);
    /* Built-ins are seen before the first refresh. */
    assert_int_equal(tool_registry_count(fx->r), 2);

    assert_int_equal(tool_registry_refresh(fx->r, 0, true, err, sizeof err), 0);
    const char *w = tool_registry_warnings(fx->r);
    assert_int_equal(count_lines(w), 2);
    warning_with(w, "a.json: field name: 'time_now' is the name of a built-in tool",
                 "built-in tools cannot be replaced", NULL);
    warning_with(w, "b.json: field name: 'memory_search' is the name of a built-in tool", NULL);
    assert_int_equal(tool_registry_find(fx->r, "time_now")->source, TOOL_SOURCE_BUILTIN);
    const struct tool_def *ms = tool_registry_find(fx->r, "memory_search");
    assert_int_equal(ms->source, TOOL_SOURCE_BUILTIN);
    assert_string_equal(ms->parameters, "{\"type\":\"object\"}");
    assert_int_equal(tool_registry_find(fx->r, "later")->source, TOOL_SOURCE_USER);

    assert_int_equal(tool_registry_add_builtin(fx->r, "later", "Later.", schema, true, echo_builtin,
                                               NULL, err, sizeof err),
                     0);
    assert_int_equal(tool_registry_find(fx->r, "later")->source, TOOL_SOURCE_BUILTIN);
    assert_int_equal(tool_registry_count(fx->r), 3);
}

/* The cache: a refresh within the TTL keeps the tools (the same pointers,
 * the old content) even though a file changed; one at the TTL reloads;
 * force reloads at once. Driven by explicit now_ms values. */
static void refresh_reloads_only_after_the_ttl_or_when_forced(void **state)
{
    struct fx *fx = *state;
    script(fx->userdir, "x.sh", "echo '{}'");
    put(fx->userdir, "x.json", TOOL_JSON("x", "[\"x.sh\"]", ", \"timeout_ms\": 1"));
    tool_registry_free(fx->r);
    fx->r = tool_registry_new(fx->share, fx->cfg, 1000);
    char err[256];
    assert_null(tool_registry_find(fx->r, "x")); /* nothing read before the first refresh */
    assert_int_equal(tool_registry_refresh(fx->r, 5000, false, err, sizeof err), 0);
    const struct tool_def *t = tool_registry_find(fx->r, "x");
    assert_non_null(t);
    assert_int_equal(t->timeout_ms, 1);

    put(fx->userdir, "x.json", TOOL_JSON("x", "[\"x.sh\"]", ", \"timeout_ms\": 2"));
    put(fx->userdir, "y.json", TOOL_JSON("y", "[\"x.sh\"]", ""));
    assert_int_equal(tool_registry_refresh(fx->r, 5999, false, err, sizeof err), 0);
    assert_ptr_equal(tool_registry_find(fx->r, "x"), t);
    assert_int_equal(t->timeout_ms, 1);
    assert_null(tool_registry_find(fx->r, "y"));

    assert_int_equal(tool_registry_refresh(fx->r, 6000, false, err, sizeof err), 0);
    assert_int_equal(tool_registry_find(fx->r, "x")->timeout_ms, 2);
    assert_non_null(tool_registry_find(fx->r, "y"));

    put(fx->userdir, "x.json", TOOL_JSON("x", "[\"x.sh\"]", ", \"timeout_ms\": 3"));
    assert_int_equal(tool_registry_refresh(fx->r, 6001, false, err, sizeof err), 0);
    assert_int_equal(tool_registry_find(fx->r, "x")->timeout_ms, 2);
    assert_int_equal(tool_registry_refresh(fx->r, 6002, true, err, sizeof err), 0);
    assert_int_equal(tool_registry_find(fx->r, "x")->timeout_ms, 3);
}

/* A tools "directory" that cannot be read is an error; the last good load
 * stays. A missing directory is no error. */
static void an_unreadable_directory_fails_the_refresh_and_keeps_the_last_load(void **state)
{
    struct fx *fx = *state;
    script(fx->userdir, "x.sh", "echo '{}'");
    put(fx->userdir, "x.json", TOOL_JSON("x", "[\"x.sh\"]", ""));
    load(fx);
    tu_rmtree(fx->userdir);
    put(fx->cfg, "tools", "not a directory");
    char err[512] = "";
    assert_int_equal(tool_registry_refresh(fx->r, 1, true, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot read the tools directory"));
    assert_non_null(strstr(err, "/cfg/tools"));
    assert_non_null(tool_registry_find(fx->r, "x"));

    tool_registry_free(fx->r);
    char *none = join(fx->root, "none");
    fx->r = tool_registry_new(none, none, 0);
    assert_int_equal(tool_registry_refresh(fx->r, 0, false, err, sizeof err), 0);
    assert_int_equal(tool_registry_count(fx->r), 1);
    assert_null(tool_registry_warnings(fx->r));
    free(none);
}

/* The i-th field of o, which must exist. */
static const cJSON *field(const cJSON *o, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (it == NULL)
        fail_msg("no field %s", key);
    return it;
}

/* tool_def_to_json gives every field, for a file tool and a built-in. */
static void tool_def_to_json_gives_every_field(void **state)
{
    struct fx *fx = *state;
    script(fx->userdir, "x.sh", "echo '{}'");
    put(fx->userdir, "x.json",
        TOOL_JSON("x", "[\"x.sh\", \"-v\"]",
                  ", \"timeout_ms\": 700, \"output_max_bytes\": 99, \"read_only\": true, "
                  "\"credentials\": [\"TOKEN\"]"));
    load(fx);
    cJSON *o = tool_def_to_json(tool_registry_find(fx->r, "x"));
    assert_non_null(o);
    assert_string_equal(field(o, "name")->valuestring, "x");
    assert_string_equal(field(o, "description")->valuestring, "A test tool.");
    assert_string_equal(field(o, "source")->valuestring, "user");
    assert_non_null(strstr(field(o, "path")->valuestring, "/cfg/tools/x.json"));
    assert_true(cJSON_IsFalse(field(o, "overrides")));
    assert_true(cJSON_IsTrue(field(o, "read_only")));
    const cJSON *cmd = field(o, "command");
    assert_int_equal(cJSON_GetArraySize(cmd), 2);
    assert_non_null(strstr(cJSON_GetArrayItem(cmd, 0)->valuestring, "/cfg/tools/x.sh"));
    assert_string_equal(cJSON_GetArrayItem(cmd, 1)->valuestring, "-v");
    assert_int_equal((int)field(o, "timeout_ms")->valuedouble, 700);
    assert_int_equal((int)field(o, "output_max_bytes")->valuedouble, 99);
    const cJSON *creds = field(o, "credentials");
    assert_int_equal(cJSON_GetArraySize(creds), 1);
    assert_string_equal(cJSON_GetArrayItem(creds, 0)->valuestring, "TOKEN");
    const cJSON *params = field(o, "parameters");
    assert_true(cJSON_IsObject(params));
    assert_string_equal(field(params, "type")->valuestring, "object");
    cJSON_Delete(o);

    o = tool_def_to_json(tool_registry_find(fx->r, "time_now"));
    assert_non_null(o);
    assert_string_equal(field(o, "source")->valuestring, "builtin");
    assert_true(cJSON_IsNull(field(o, "path")));
    assert_true(cJSON_IsNull(field(o, "command")));
    assert_true(cJSON_IsNull(field(o, "timeout_ms")));
    assert_true(cJSON_IsTrue(field(o, "read_only")));
    assert_int_equal(cJSON_GetArraySize(field(o, "credentials")), 0);
    cJSON_Delete(o);
}

/* The name checks and the enum names. */
static void names_are_checked_and_enums_are_named(void **state)
{
    (void)state;
    assert_true(tool_name_valid("a"));
    assert_true(tool_name_valid("get_weather-2"));
    char long_name[66];
    memset(long_name, 'a', 64);
    long_name[64] = '\0';
    assert_true(tool_name_valid(long_name));
    long_name[64] = 'a';
    long_name[65] = '\0';
    assert_false(tool_name_valid(long_name));
    assert_false(tool_name_valid(""));
    assert_false(tool_name_valid("a.b"));
    assert_false(tool_name_valid("caf\xc3\xa9"));
    assert_false(tool_name_valid(NULL));

    assert_true(tool_credential_name_valid("API_KEY"));
    assert_true(tool_credential_name_valid("_X9"));
    assert_false(tool_credential_name_valid("9X"));
    assert_false(tool_credential_name_valid("api_key"));
    assert_false(tool_credential_name_valid("A-B"));
    assert_false(tool_credential_name_valid("A=B"));
    assert_false(tool_credential_name_valid(""));

    assert_string_equal(tool_source_name(TOOL_SOURCE_BUILTIN), "builtin");
    assert_string_equal(tool_source_name(TOOL_SOURCE_SHIPPED), "shipped");
    assert_string_equal(tool_source_name(TOOL_SOURCE_USER), "user");
    static const char *const names[] = {"ok",      "bad_args",   "failed",    "timeout",
                                        "too_big", "bad_output", "cancelled", "no_start"};
    for (int s = TOOL_OK; s <= TOOL_NO_START; s++)
        assert_string_equal(tool_status_name((enum tool_status)s), names[s]);
}

/* time_now answers {"utc", "unix_ms", "local", "timezone"}: one instant,
 * UTC with a Z, local time with its offset as +HH:MM, and the zone's
 * name (checked in a fixed zone, IST-5:30). */
static void time_now_answers_utc_unix_ms_local_time_and_zone(void **state)
{
    struct fx *fx = *state;
    const char *old = getenv("TZ");
    char *saved = old != NULL ? strdup(old) : NULL;
    setenv("TZ", "IST-5:30", 1);
    tool_registry_free(fx->r);
    fx->r = tool_registry_new(fx->share, fx->cfg, 0);
    const struct tool_def *t = tool_registry_find(fx->r, "time_now");
    assert_non_null(t);
    assert_string_equal(t->parameters, "{\"type\":\"object\",\"properties\":{}}");
    struct tool_result res;
    tool_result_init(&res);
    int64_t before = clock_wall_ms();
    assert_int_equal(tool_run(t, "{}", NULL, &res), TOOL_OK);
    int64_t after = clock_wall_ms();
    if (saved != NULL)
        setenv("TZ", saved, 1);
    else
        unsetenv("TZ");
    free(saved);
    tzset();

    cJSON *o = cJSON_Parse(buf_cstr(&res.output));
    assert_non_null(o);
    assert_int_equal(cJSON_GetArraySize(o), 4);
    double ms = field(o, "unix_ms")->valuedouble;
    assert_true(ms >= (double)before && ms <= (double)after);
    time_t secs = (time_t)((int64_t)ms / 1000);
    struct tm tm;
    char want[64];
    assert_non_null(gmtime_r(&secs, &tm));
    strftime(want, sizeof want, "%Y-%m-%dT%H:%M:%SZ", &tm);
    assert_string_equal(field(o, "utc")->valuestring, want);
    time_t shifted = secs + 5 * 3600 + 30 * 60;
    assert_non_null(gmtime_r(&shifted, &tm));
    strftime(want, sizeof want, "%Y-%m-%dT%H:%M:%S+05:30", &tm);
    assert_string_equal(field(o, "local")->valuestring, want);
    assert_string_equal(field(o, "timezone")->valuestring, "IST");
    cJSON_Delete(o);
    assert_string_equal(res.error, "");
    tool_result_free(&res);
}

/* ---- the runner ------------------------------------------------------ */

/* Writes the script NAME.sh with body and the tool file NAME.json (extra
 * fields after the command, which is the script and args), loads, and
 * returns the tool. */
static const struct tool_def *make_tool(struct fx *fx, const char *name, const char *body,
                                        const char *args, const char *extra)
{
    char file[128], text[8192];
    snprintf(file, sizeof file, "%s.sh", name);
    script(fx->userdir, file, body);
    snprintf(text, sizeof text,
             "{\"name\": \"%s\", \"description\": \"A test tool.\", \"parameters\": {\"type\": "
             "\"object\"}, \"command\": [\"%s\"%s]%s}",
             name, file, args, extra);
    snprintf(file, sizeof file, "%s.json", name);
    put(fx->userdir, file, text);
    load(fx);
    assert_null(tool_registry_warnings(fx->r));
    const struct tool_def *t = tool_registry_find(fx->r, name);
    assert_non_null(t);
    return t;
}

/* Waits for pid (an orphan of a killed tool, ours as subreaper) and
 * asserts it died of SIGKILL and no longer exists. */
static void expect_killed(pid_t pid)
{
    int st = 0;
    pid_t got;
    while ((got = waitpid(pid, &st, 0)) < 0 && errno == EINTR)
        ;
    assert_int_equal(got, pid);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGKILL);
    errno = 0;
    assert_int_equal(kill(pid, 0), -1);
    assert_int_equal(errno, ESRCH);
}

/* A tool reads its arguments on stdin and answers on stdout: the answer
 * comes back minified, with status 0. */
static void a_tool_reads_its_arguments_and_its_answer_comes_back_minified(void **state)
{
    struct fx *fx = *state;
    const struct tool_def *t = make_tool(
        fx, "echo", "input=$(cat)\nprintf '{ \"got\" : %s,\\n  \"ok\": true }\\n' \"$input\"", "",
        "");
    struct tool_result res;
    tool_result_init(&res);
    assert_int_equal(tool_run(t, "{\"city\": \"Paris\", \"n\": [1, 2]}", NULL, &res), TOOL_OK);
    assert_string_equal(buf_cstr(&res.output),
                        "{\"got\":{\"city\":\"Paris\",\"n\":[1,2]},\"ok\":true}");
    assert_int_equal(res.exit_status, 0);
    assert_string_equal(res.error, "");
    assert_true(res.latency_ms >= 0);
    /* The same result struct serves a second call. */
    assert_int_equal(tool_run(t, "{}", NULL, &res), TOOL_OK);
    assert_string_equal(buf_cstr(&res.output), "{\"got\":{},\"ok\":true}");
    tool_result_free(&res);
}

/* A non-zero exit fails the call with the status and the first non-blank
 * line of stderr, control characters replaced; without stderr, the status
 * alone. The output is never quoted. */
static void a_failing_tool_reports_its_status_and_first_stderr_line(void **state)
{
    struct fx *fx = *state;
    script(fx->userdir, "quiet.sh", "echo '{\"out\": \"" CANARY "\"}'; exit 4");
    put(fx->userdir, "quiet.json", TOOL_JSON("quiet", "[\"quiet.sh\"]", ""));
    const struct tool_def *t =
        make_tool(fx, "fails",
                  "echo '{\"out\": \"" CANARY "\"}'\nprintf '\\n  \\n' >&2\n"
                  "printf 'first \\033[31mline\\tof trouble  \\nsecond\\n' >&2\nexit 3",
                  "", "");
    struct tool_result res;
    tool_result_init(&res);
    assert_int_equal(tool_run(t, "{}", NULL, &res), TOOL_FAILED);
    assert_string_equal(res.error, "tool fails exited with status 3: first ?[31mline of trouble");
    assert_int_equal(res.exit_status, 3);
    assert_int_equal(res.output.len, 0);

    assert_int_equal(tool_run(tool_registry_find(fx->r, "quiet"), "{}", NULL, &res), TOOL_FAILED);
    assert_string_equal(res.error, "tool quiet exited with status 4");
    assert_int_equal(res.exit_status, 4);

    const struct tool_def *k = make_tool(fx, "killed", "echo oops >&2; kill -TERM $$", "", "");
    assert_int_equal(tool_run(k, "{}", NULL, &res), TOOL_FAILED);
    assert_string_equal(res.error, "tool killed was killed by signal 15: oops");
    assert_int_equal(res.exit_status, -1);
    tool_result_free(&res);
}

/* At its timeout the tool's whole process group is killed: the script is
 * reaped before the call returns (its pid is gone) and the background
 * sleep it started dies of SIGKILL. The script ends in exec, so no shell
 * is left waiting that could reap the background sleep before we do. */
static void a_tool_that_runs_too_long_is_killed_with_its_children(void **state)
{
    struct fx *fx = *state;
    char *pidfile = join(fx->root, "pids");
    char args[512];
    snprintf(args, sizeof args, ", \"%s\"", pidfile);
    const struct tool_def *t =
        make_tool(fx, "slow", "sleep 30 &\necho \"$$ $!\" > \"$1\"\nexec sleep 30", args,
                  ", \"timeout_ms\": 200");
    struct tool_result res;
    tool_result_init(&res);
    assert_int_equal(tool_run(t, "{}", NULL, &res), TOOL_TIMEOUT);
    assert_string_equal(res.error, "tool slow timed out after 200 ms");
    assert_int_equal(res.output.len, 0);
    tool_result_free(&res);

    char *pids = tu_read_file(pidfile, NULL);
    assert_non_null(pids);
    long shell = 0, bg = 0;
    assert_int_equal(sscanf(pids, "%ld %ld", &shell, &bg), 2);
    errno = 0;
    assert_int_equal(kill((pid_t)shell, 0), -1); /* reaped: no zombie left */
    assert_int_equal(errno, ESRCH);
    expect_killed((pid_t)bg);
    free(pids);
    free(pidfile);
}

/* Output past output_max_bytes fails the call (TOOL_TOO_BIG) and stops an
 * endless writer; exactly the cap is fine. */
static void output_past_the_cap_fails_the_call_and_stops_the_tool(void **state)
{
    struct fx *fx = *state;
    script(fx->userdir, "fits.sh", "printf '\"12345678\"'");
    put(fx->userdir, "fits.json", TOOL_JSON("fits", "[\"fits.sh\"]", ", \"output_max_bytes\": 10"));
    script(fx->userdir, "endless.sh", "yes");
    put(fx->userdir, "endless.json",
        TOOL_JSON("endless", "[\"endless.sh\"]", ", \"output_max_bytes\": 1000"));
    const struct tool_def *t =
        make_tool(fx, "big", "printf '\"0123456789abcdef\"'", "", ", \"output_max_bytes\": 10");
    struct tool_result res;
    tool_result_init(&res);
    assert_int_equal(tool_run(t, "{}", NULL, &res), TOOL_TOO_BIG);
    assert_string_equal(res.error, "tool big printed more than 10 bytes");
    assert_int_equal(res.output.len, 0);
    assert_int_equal(tool_run(tool_registry_find(fx->r, "endless"), "{}", NULL, &res),
                     TOOL_TOO_BIG);
    assert_string_equal(res.error, "tool endless printed more than 1000 bytes");
    assert_int_equal(tool_run(tool_registry_find(fx->r, "fits"), "{}", NULL, &res), TOOL_OK);
    assert_string_equal(buf_cstr(&res.output), "\"12345678\"");
    tool_result_free(&res);
}

/* An answer that is not one JSON value in UTF-8 fails the call with where
 * it went wrong, never with its content. */
static void output_that_is_not_one_json_value_in_utf8_is_refused(void **state)
{
    struct fx *fx = *state;
    static const struct {
        const char *name;
        const char *body;
        const char *error;
    } cases[] = {
        {"broken", "printf '{\"k\": \"" CANARY "\",\\n \"v\": }'",
         "tool broken printed invalid JSON: line 2, column 7"},
        {"twice", "echo '{} {\"" CANARY "\": 1}'",
         "tool twice printed invalid JSON: more than one value (text after the first at line 1, "
         "column 4)"},
        {"empty", "printf ' \\n'", "tool empty printed nothing (it must print one JSON value)"},
        {"latin1", "printf '\"caf\\351 " CANARY "\"'",
         "tool latin1 printed invalid UTF-8 (at byte 4)"},
        {"nul", "printf '\"a\\000b\"'",
         "tool nul printed invalid JSON: a NUL byte at line 1, column 3"},
        {"loose", "echo '[01]'", "tool loose printed invalid JSON: not strict JSON (RFC 8259)"},
    };
    struct tool_result res;
    tool_result_init(&res);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct tool_def *t = make_tool(fx, cases[i].name, cases[i].body, "", "");
        assert_int_equal(tool_run(t, "{}", NULL, &res), TOOL_BAD_OUTPUT);
        assert_string_equal(res.error, cases[i].error);
        assert_int_equal(res.output.len, 0);
        assert_int_equal(res.exit_status, 0);
    }
    tool_result_free(&res);
}

/* Arguments that are not one JSON object are refused before anything
 * runs (the tool would have left a marker file). */
static void arguments_that_are_not_one_json_object_run_nothing(void **state)
{
    struct fx *fx = *state;
    char *marker = join(fx->root, "ran");
    char args[512];
    snprintf(args, sizeof args, ", \"%s\"", marker);
    const struct tool_def *t = make_tool(fx, "m", "touch \"$1\"; echo '{}'", args, "");
    static const struct {
        const char *args;
        const char *error;
    } cases[] = {
        {"[1, 2]", "tool m got an array as arguments (expected one JSON object)"},
        {"\"x\"", "tool m got a string as arguments (expected one JSON object)"},
        {"{\"a\": 1} {}", "tool m got arguments that are not valid JSON (line 1, column 10; "
                          "expected one JSON object)"},
        {"{\n\"a\": ", "tool m got arguments that are not valid JSON (line 2, column 6; "
                       "expected one JSON object)"},
        {"", "tool m got arguments that are not valid JSON (line 1, column 1; expected one JSON "
             "object)"},
        {"{\"a\": \"\xff\"}", "tool m got arguments that are not valid UTF-8 (line 1, column 8)"},
        {NULL, "tool m got no arguments (expected one JSON object)"},
    };
    struct tool_result res;
    tool_result_init(&res);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(tool_run(t, cases[i].args, NULL, &res), TOOL_BAD_ARGS);
        assert_string_equal(res.error, cases[i].error);
        assert_int_equal(res.exit_status, -1);
    }
    assert_int_equal(access(marker, F_OK), -1);
    assert_int_equal(tool_run(t, "{}", NULL, &res), TOOL_OK); /* the marker works */
    assert_int_equal(access(marker, F_OK), 0);
    tool_result_free(&res);
    free(marker);
}

/* An executable that went away after the load cannot start:
 * TOOL_NO_START naming it and the reason. */
static void a_missing_executable_cannot_start(void **state)
{
    struct fx *fx = *state;
    const struct tool_def *t = make_tool(fx, "gone", "echo '{}'", "", "");
    char *gone = join(fx->userdir, "gone.sh");
    assert_int_equal(unlink(gone), 0);
    struct tool_result res;
    tool_result_init(&res);
    assert_int_equal(tool_run(t, "{}", NULL, &res), TOOL_NO_START);
    char want[1024];
    snprintf(want, sizeof want, "tool gone: cannot start %s: %s", gone, strerror(ENOENT));
    assert_string_equal(res.error, want);
    assert_int_equal(res.exit_status, -1);
    tool_result_free(&res);
    free(gone);
}

struct canceller {
    const char *ready; /* the file the tool creates once it runs */
    atomic_bool *flag;
    bool saw_ready;
};

/* Waits (bounded) for the tool to be running, then cancels it. */
static void *cancel_when_ready(void *p)
{
    struct canceller *c = p;
    int64_t deadline = clock_mono_ms() + CANCEL_WAIT;
    while (access(c->ready, F_OK) != 0 && clock_mono_ms() < deadline) {
        struct timespec step = {0, 5 * 1000 * 1000};
        nanosleep(&step, NULL);
    }
    c->saw_ready = access(c->ready, F_OK) == 0;
    atomic_store(c->flag, true);
    return NULL;
}

/* Cancel from another thread kills the running tool (TOOL_CANCELLED) long
 * before its 60 s timeout, children included; a flag already set stops
 * the call before the tool can do anything. */
static void cancel_from_another_thread_kills_the_tool(void **state)
{
    struct fx *fx = *state;
    char *ready = join(fx->root, "ready");
    char *pidfile = join(fx->root, "pids");
    char args[1024];
    snprintf(args, sizeof args, ", \"%s\", \"%s\"", ready, pidfile);
    const struct tool_def *t =
        make_tool(fx, "waits", "sleep 30 &\necho \"$!\" > \"$2\"\ntouch \"$1\"\nexec sleep 30",
                  args, ", \"timeout_ms\": 60000");
    atomic_bool flag = false;
    struct tool_env env = {.cancel = &flag};
    struct canceller c = {.ready = ready, .flag = &flag};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, cancel_when_ready, &c), 0);
    struct tool_result res;
    tool_result_init(&res);
    enum tool_status st = tool_run(t, "{}", &env, &res);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_true(c.saw_ready);
    assert_int_equal(st, TOOL_CANCELLED);
    assert_string_equal(res.error, "tool waits was cancelled");
    char *pids = tu_read_file(pidfile, NULL);
    assert_non_null(pids);
    expect_killed((pid_t)strtol(pids, NULL, 10));
    free(pids);
    tool_result_free(&res);
    free(ready);
    free(pidfile);
}

/* A tool that exits without reading a large argument: our write meets a
 * closed pipe. That must neither kill us with SIGPIPE (the default
 * disposition here) nor leave one pending, nor fail the call. */
static void a_tool_that_never_reads_its_big_input_does_not_break_the_call(void **state)
{
    struct fx *fx = *state;
    const struct tool_def *t = make_tool(fx, "deaf", "echo '{\"ok\": true}'", "", "");
    size_t n = 1024 * 1024;
    char *args = malloc(n + 16);
    assert_non_null(args);
    memcpy(args, "{\"x\": \"", 7);
    memset(args + 7, 'a', n);
    memcpy(args + 7 + n, "\"}", 3);
    struct tool_result res;
    tool_result_init(&res);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tool_run(t, args, NULL, &res), TOOL_OK);
        assert_string_equal(buf_cstr(&res.output), "{\"ok\":true}");
    }
    sigset_t pending, mask;
    assert_int_equal(sigpending(&pending), 0);
    assert_false(sigismember(&pending, SIGPIPE));
    assert_int_equal(pthread_sigmask(SIG_BLOCK, NULL, &mask), 0);
    assert_false(sigismember(&mask, SIGPIPE)); /* our mask is as it was */
    tool_result_free(&res);
    free(args);
}

/* The environment is built, not inherited: the tool sees PATH, HOME,
 * MEMCHAT_TOOL and the credentials it declared, not a provider key of
 * ours nor a credential it did not declare. */
static void the_tool_sees_its_credentials_and_nothing_else_of_ours(void **state)
{
    struct fx *fx = *state;
    setenv("OPENAI_API_KEY", CANARY, 1);
    setenv("MEMCHAT_SECRET_THING", CANARY, 1);
    const char *old_tmp = getenv("TMPDIR");
    char *saved_tmp = old_tmp != NULL ? strdup(old_tmp) : NULL;
    setenv("TMPDIR", fx->root, 1);
    char *envfile = join(fx->root, "env");
    char args[512];
    snprintf(args, sizeof args, ", \"%s\"", envfile);
    const struct tool_def *t = make_tool(fx, "envtool", "env > \"$1\"; echo '{}'", args,
                                         ", \"credentials\": [\"API_KEY\", \"EMPTY\"]");
    const char *names[] = {"API_KEY", "OTHER_TOOLS_KEY", "EMPTY"};
    const char *values[] = {SECRET, "other-" SECRET, ""};
    struct tool_env env = {.cred_names = names, .cred_values = values, .n_creds = 3};
    struct tool_result res;
    tool_result_init(&res);
    assert_int_equal(tool_run(t, "{}", &env, &res), TOOL_OK);
    unsetenv("OPENAI_API_KEY");
    unsetenv("MEMCHAT_SECRET_THING");
    if (saved_tmp != NULL)
        setenv("TMPDIR", saved_tmp, 1);
    else
        unsetenv("TMPDIR");
    free(saved_tmp);
    char *seen = tu_read_file(envfile, NULL);
    assert_non_null(seen);
    assert_non_null(strstr(seen, "MEMCHAT_TOOL=envtool\n"));
    assert_non_null(strstr(seen, "API_KEY=" SECRET "\n"));
    assert_non_null(strstr(seen, "EMPTY=\n"));
    char line[4200];
    snprintf(line, sizeof line, "PATH=%s\n", getenv("PATH"));
    assert_non_null(strstr(seen, line));
    snprintf(line, sizeof line, "TMPDIR=%s\n", fx->root);
    assert_non_null(strstr(seen, line));
    assert_null(strstr(seen, CANARY));
    assert_null(strstr(seen, "OPENAI_API_KEY"));
    assert_null(strstr(seen, "OTHER_TOOLS_KEY"));
    assert_null(strstr(seen, "other-"));
    free(seen);
    free(envfile);
    tool_result_free(&res);
}

/* Credential values printed on stderr are replaced by "****" in the
 * error line: whole, written in two pieces, and cut by the 4 KiB stderr
 * cap; the longest value wins where one starts another. */
static void credential_values_are_scrubbed_from_the_stderr_line(void **state)
{
    struct fx *fx = *state;
    script(fx->userdir, "split.sh",
           "printf 'key=s3cret-' >&2; printf 'value-42 and abcdef ok\\n' >&2; exit 1");
    put(fx->userdir, "split.json", TOOL_JSON("split", "[\"split.sh\"]", ""));
    script(fx->userdir, "cut.sh",
           "i=0; while [ $i -lt 4090 ]; do printf '\\n'; i=$((i+1)); done >&2\n"
           "printf '%s\\n' \"$API_KEY\" >&2; exit 2");
    put(fx->userdir, "cut.json",
        TOOL_JSON("cut", "[\"cut.sh\"]", ", \"credentials\": [\"API_KEY\"]"));
    const struct tool_def *t =
        make_tool(fx, "leaky", "echo \"auth failed for $API_KEY here\" >&2; exit 1", "",
                  ", \"credentials\": [\"API_KEY\"]");
    const char *names[] = {"API_KEY", "SHORT", "LONGER"};
    const char *values[] = {SECRET, "abc", "abcdef"};
    struct tool_env env = {.cred_names = names, .cred_values = values, .n_creds = 3};
    struct tool_result res;
    tool_result_init(&res);
    assert_int_equal(tool_run(t, "{}", &env, &res), TOOL_FAILED);
    assert_string_equal(res.error, "tool leaky exited with status 1: auth failed for **** here");
    assert_int_equal(tool_run(tool_registry_find(fx->r, "split"), "{}", &env, &res), TOOL_FAILED);
    assert_string_equal(res.error, "tool split exited with status 1: key=**** and **** ok");
    assert_int_equal(tool_run(tool_registry_find(fx->r, "cut"), "{}", &env, &res), TOOL_FAILED);
    assert_string_equal(res.error, "tool cut exited with status 2: ****");
    tool_result_free(&res);
}

static int failing_builtin(void *ud, void *ctx, const char *args, struct buf *out, char *err,
                           size_t errlen)
{
    (void)ud;
    (void)ctx;
    (void)args;
    (void)buf_puts(out, "{}");
    snprintf(err, errlen, "the index is\nbusy");
    return -1;
}

static int bad_json_builtin(void *ud, void *ctx, const char *args, struct buf *out, char *err,
                            size_t errlen)
{
    (void)ud;
    (void)ctx;
    (void)args;
    (void)err;
    (void)errlen;
    (void)buf_puts(out, "{\"a\": ");
    return 0;
}

/* A built-in gets the context and the arguments; its answer is checked
 * and minified like a file tool's; its own error becomes the line. */
static void builtins_get_the_context_and_their_answer_is_checked(void **state)
{
    struct fx *fx = *state;
    tool_registry_free(fx->r);
    fx->r = tool_registry_new(fx->share, fx->cfg, 0);
    char err[256];
    const char *schema = "{\"type\": \"object\"}";
    assert_int_equal(tool_registry_add_builtin(fx->r, "echo", "Echo.", schema, true, echo_builtin,
                                               NULL, err, sizeof err),
                     0);
    assert_int_equal(tool_registry_add_builtin(fx->r, "no", "No.", schema, true, failing_builtin,
                                               NULL, err, sizeof err),
                     0);
    assert_int_equal(tool_registry_add_builtin(fx->r, "bad", "Bad.", schema, true, bad_json_builtin,
                                               NULL, err, sizeof err),
                     0);
    char ctx[] = "tenant-a";
    struct tool_env env = {.ctx = ctx};
    struct tool_result res;
    tool_result_init(&res);
    assert_int_equal(tool_run(tool_registry_find(fx->r, "echo"), "{ \"q\" : 1 }", &env, &res),
                     TOOL_OK);
    assert_string_equal(buf_cstr(&res.output), "{\"ctx\":\"tenant-a\",\"args\":{\"q\":1}}");
    assert_int_equal(tool_run(tool_registry_find(fx->r, "no"), "{}", &env, &res), TOOL_FAILED);
    assert_string_equal(res.error, "tool no failed: the index is");
    assert_int_equal(res.output.len, 0);
    assert_int_equal(tool_run(tool_registry_find(fx->r, "bad"), "{}", &env, &res), TOOL_BAD_OUTPUT);
    assert_string_equal(res.error, "tool bad printed invalid JSON: line 1, column 7");
    tool_result_free(&res);
}

int main(void)
{
    /* Orphans of killed tools become our children, to be reaped and
     * checked (see the header comment). */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
        perror("prctl(PR_SET_CHILD_SUBREAPER)");
        return 1;
    }
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(shipped_and_user_tools_load_and_the_user_overrides_by_name),
        T(every_field_is_read_and_the_schema_is_minified),
        T(each_malformed_field_skips_its_file_with_one_warning),
        T(nul_bytes_big_files_and_directories_are_skipped),
        T(unknown_fields_warn_with_a_suggestion_and_the_tool_loads),
        T(a_second_file_with_the_same_name_in_one_directory_is_skipped),
        T(builtin_names_win_over_files_and_bad_builtins_are_refused),
        T(refresh_reloads_only_after_the_ttl_or_when_forced),
        T(an_unreadable_directory_fails_the_refresh_and_keeps_the_last_load),
        T(tool_def_to_json_gives_every_field),
        T(names_are_checked_and_enums_are_named),
        T(time_now_answers_utc_unix_ms_local_time_and_zone),
        T(a_tool_reads_its_arguments_and_its_answer_comes_back_minified),
        T(a_failing_tool_reports_its_status_and_first_stderr_line),
        T(a_tool_that_runs_too_long_is_killed_with_its_children),
        T(output_past_the_cap_fails_the_call_and_stops_the_tool),
        T(output_that_is_not_one_json_value_in_utf8_is_refused),
        T(arguments_that_are_not_one_json_object_run_nothing),
        T(a_missing_executable_cannot_start),
        T(cancel_from_another_thread_kills_the_tool),
        T(a_tool_that_never_reads_its_big_input_does_not_break_the_call),
        T(the_tool_sees_its_credentials_and_nothing_else_of_ours),
        T(credential_values_are_scrubbed_from_the_stderr_line),
        T(builtins_get_the_context_and_their_answer_is_checked),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
