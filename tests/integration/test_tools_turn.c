/*
 * Tool calls end to end (issue 11's tests): the built memchat runs `ask`
 * against the loopback LLM test server (tests/server/mockllm, whose
 * `mock:tool=NAME`, `toolloop` and `toolargs-bad` behaviours call tools and
 * answer "tool results: <c1> | <c2>" once the results come back), with tool
 * files, their sh scripts and an agent listing them written into the
 * test's own config dir. Each case checks what docs/configuration.md
 * ("Tools") and docs/events.md promise: the model's arguments reach the
 * tool on stdin and its answer reaches the model intact; the events, the
 * summed usage and cost, the ledger and the trace; every way a call can
 * fail (timeout with no process left, exit status, too much output,
 * invalid JSON, invalid arguments, missing credential, refusal) reported
 * to the model while the turn goes on; credentials and memchat's own
 * secrets never leaving the tool's environment; the round limit; the
 * registry switch; malformed files; and the offline provider's
 * memory_search without any network.
 */
#include "cli_harness.h"

#include <math.h>
#include <sodium.h>

#include "../server/mockserver.h"

static struct mock *mock;
static char base_openai[256], base_anthropic[256], base_ollama[256];

#define KEY_OPENAI    "sk-canary-openai-7d3b1f0e9a2c"
#define KEY_ANTHROPIC "sk-ant-canary-0c4e8a2b6d1f"
#define CRED_VALUE    "wtok-canary-3e9d7c5b1a0f"
#define AGENT         "--agent", "toolbox"
/* What the round-trip tool answers (minified, so the model gets it
 * byte for byte). */
#define RT_OUTPUT  "{\"temp\":21,\"unit\":\"C\",\"sky\":\"clear\"}"
#define MAX_EVENTS 2048

/* ---- files ---------------------------------------------------------------- */

/* dir/name in out. */
static void path_in(char *out, size_t n, const char *dir, const char *name)
{
    int w = snprintf(out, n, "%s/%s", dir, name);
    assert_true(w > 0 && (size_t)w < n);
}

/* A file the tools write in HOME (the harness's fx.dir): its content, or
 * NULL when it does not exist. The caller frees it. */
static char *home_file(const char *name)
{
    char p[4200];
    path_in(p, sizeof p, fx.dir, name);
    return tu_read_file(p, NULL);
}

static bool home_exists(const char *name)
{
    char p[4200];
    path_in(p, sizeof p, fx.dir, name);
    return access(p, F_OK) == 0;
}

static void home_remove(const char *name)
{
    char p[4200];
    path_in(p, sizeof p, fx.dir, name);
    unlink(p);
}

/* Writes the tool file tools/NAME.json ({name, description, parameters,
 * command: [NAME.sh]} plus the JSON members in fields, e.g.
 * ",\"read_only\":true") and its script NAME.sh (mode 0755). */
static void put_tool(const char *name, const char *fields, const char *script)
{
    char dir[4200], json[2048];
    path_in(dir, sizeof dir, fx.cfgdir, "tools");
    snprintf(json, sizeof json,
             "{\"name\":\"%s\",\"description\":\"test tool %s\",\"parameters\":{\"type\":"
             "\"object\",\"properties\":{\"text\":{\"type\":\"string\"}}},\"command\":[\"%s.sh\"]"
             "%s}\n",
             name, name, name, fields);
    char fname[128];
    snprintf(fname, sizeof fname, "%s.json", name);
    free(tu_write_file(dir, fname, json));
    snprintf(fname, sizeof fname, "%s.sh", name);
    char *p = tu_write_file(dir, fname, script);
    assert_int_equal(chmod(p, 0755), 0);
    free(p);
}

/* ---- the mock and the environment ----------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    if (sodium_init() < 0)
        return -1;
    mock = mock_start();
    snprintf(base_openai, sizeof base_openai, "OPENAI_BASE_URL=%s/v1", mock_url(mock));
    snprintf(base_anthropic, sizeof base_anthropic, "ANTHROPIC_BASE_URL=%s", mock_url(mock));
    snprintf(base_ollama, sizeof base_ollama, "OLLAMA_BASE_URL=%s", mock_url(mock));
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    mock_stop(mock);
    return 0;
}

/* A fresh HOME, data and config dir with the tools and the agent every
 * case uses; the shipped files from the source tree. */
static int case_setup(void **state)
{
    mock_reset(mock);
    int rc = setup(state);
    const char *src = getenv("MEMCHAT_SRCDIR");
    assert_non_null(src);
    char share[4200];
    path_in(share, sizeof share, src, "share");
    fx_env("MEMCHAT_SHARE_DIR", share);
    char d[4200];
    assert_int_equal(mkdir(fx.cfgdir, 0700), 0);
    path_in(d, sizeof d, fx.cfgdir, "tools");
    assert_int_equal(mkdir(d, 0700), 0);
    path_in(d, sizeof d, fx.cfgdir, "agents");
    assert_int_equal(mkdir(d, 0700), 0);
    free(tu_write_file(d, "toolbox.json",
                       "{\"name\":\"toolbox\",\"system_prompt\":\"You test tools.\",\"tools\":"
                       "[\"rt\",\"a\",\"b\",\"slow\",\"fail\",\"big\",\"badjson\",\"echo\","
                       "\"cred\",\"envdump\",\"rw\",\"loop\",\"time_now\",\"broken\","
                       "\"noexec\",\"nosuch\",\"two\",\"utf\",\"long\"]}\n"));
    /* A price for the round trip's model, so its cost is a number. */
    free(tu_write_file(fx.cfgdir, "prices.json",
                       "{\"models\":{\"mock:tool=rt\":{\"provider\":\"openai\",\"input\":1.0,"
                       "\"output\":2.0}}}\n"));

    put_tool("rt", ",\"read_only\":true",
             "#!/bin/sh\ncat > \"$HOME/rt.in\"\nprintf '%s\\n' '" RT_OUTPUT "'\n");
    static const char order[] = "#!/bin/sh\ncat > /dev/null\necho %s-start >> \"$HOME/order\"\n"
                                "echo %s-end >> \"$HOME/order\"\necho '{\"tool\":\"%s\"}'\n";
    char script[512];
    snprintf(script, sizeof script, order, "a", "a", "a");
    put_tool("a", ",\"read_only\":true", script);
    snprintf(script, sizeof script, order, "b", "b", "b");
    put_tool("b", ",\"read_only\":true", script);
    /* Records its pid and its child's, then waits far past its timeout. */
    put_tool("slow", ",\"read_only\":true,\"timeout_ms\":700",
             "#!/bin/sh\nsleep 30 &\necho $! > \"$HOME/slow.child\"\n"
             "echo $$ > \"$HOME/slow.pid\"\nwait\necho '{}'\n");
    put_tool("fail", ",\"read_only\":true",
             "#!/bin/sh\ncat > /dev/null\necho 'disk on fire' >&2\necho 'second line' >&2\n"
             "exit 3\n");
    put_tool("big", ",\"read_only\":true,\"output_max_bytes\":64",
             "#!/bin/sh\ncat > /dev/null\nprintf '\"'\ni=0\nwhile [ $i -lt 100 ]; do\n"
             "  printf 'xxxxxxxxxxxxxxxxxxxx'\n  i=$((i+1))\ndone\nprintf '\"\\n'\n");
    put_tool("badjson", ",\"read_only\":true",
             "#!/bin/sh\ncat > /dev/null\necho 'this is {not json'\n");
    put_tool("two", ",\"read_only\":true",
             "#!/bin/sh\ncat > /dev/null\necho '{\"a\":1} {\"b\":2}'\n");
    put_tool("utf", ",\"read_only\":true", "#!/bin/sh\ncat > /dev/null\nprintf '\"\\377\"\\n'\n");
    /* 6,002 bytes of JSON: more than a tool.result event carries */
    put_tool("long", ",\"read_only\":true",
             "#!/bin/sh\ncat > /dev/null\nprintf '\"'\ni=0\nwhile [ $i -lt 100 ]; do\n"
             "  printf 'yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy'\n"
             "  i=$((i+1))\ndone\nprintf '\"\\n'\n");
    put_tool("echo", ",\"read_only\":true", "#!/bin/sh\ntouch \"$HOME/echo.ran\"\ncat\n");
    /* Writes the SHA-256 of its credential, never the value; a message
     * asking it to leak makes it print the value on stderr and fail,
     * which memchat must mask. */
    put_tool("cred", ",\"read_only\":true,\"credentials\":[\"WEATHER_TOKEN\"]",
             "#!/bin/sh\nin=$(cat)\ncase \"$in\" in\n*leak*)\n"
             "  echo \"token $WEATHER_TOKEN refused\" >&2\n  exit 1;;\nesac\n"
             "printf '%s' \"$WEATHER_TOKEN\" | sha256sum > \"$HOME/cred.out\"\n"
             "echo '{\"weather\":\"sunny\"}'\n");
    put_tool("envdump", ",\"read_only\":true",
             "#!/bin/sh\ncat > /dev/null\nenv > \"$HOME/env.out\"\necho '{\"env\":\"dumped\"}'\n");
    /* read_only left out: the default is false. */
    put_tool("rw", "",
             "#!/bin/sh\ncat > /dev/null\ntouch \"$HOME/rw.ran\"\necho '{\"done\":true}'\n");
    put_tool("loop", ",\"read_only\":true",
             "#!/bin/sh\ncat > /dev/null\necho round >> \"$HOME/loop.count\"\necho '{}'\n");
    return rc;
}

/* The environment of a run against the mock: the three base URLs and
 * both keys (canaries), then the entries of extra (NULL-terminated, may be
 * NULL). The array is static: one run at a time. */
static const char *const *net_env(const char *const *extra)
{
    static const char *env[16];
    size_t n = 0;
    env[n++] = base_openai;
    env[n++] = base_anthropic;
    env[n++] = base_ollama;
    env[n++] = "OPENAI_API_KEY=" KEY_OPENAI;
    env[n++] = "ANTHROPIC_API_KEY=" KEY_ANTHROPIC;
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++) {
        assert_true(n < 15);
        env[n++] = extra[i];
    }
    env[n] = NULL;
    return env;
}

/* ---- one turn ------------------------------------------------------------- */

/* One `ask --json` turn: its run, its events (checked against the turn
 * contract), the index of turn.done and the reply (the deltas). */
struct turn {
    struct run r;
    struct mc_event *evs[MAX_EVENTS];
    size_t n, done;
    char *reply;
};

static void turn_run(struct turn *t, const char *const *extra_env, const char *const *args)
{
    memset(t, 0, sizeof *t);
    run_memchat(&t->r, NULL, net_env(extra_env), args);
    expect_exit(&t->r, 0, "ask --json");
    t->n = parse_events(t->r.out, t->evs, MAX_EVENTS);
    t->done = check_turn_contract(t->evs, t->n);
    t->reply = delta_text(t->evs, t->n);
}

static void turn_free(struct turn *t)
{
    free_events(t->evs, t->n);
    free(t->reply);
    run_free(&t->r);
}

/* ask --json with the environment entries env (NULL-terminated or NULL)
 * and the arguments that follow. */
#define TURN(t, env, ...)                                              \
    do {                                                               \
        const char *const a_[] = {"ask", "--json", __VA_ARGS__, NULL}; \
        turn_run((t), (env), a_);                                      \
    } while (0)

static size_t count_kind(const struct turn *t, enum mc_event_kind k)
{
    size_t c = 0;
    for (size_t i = 0; i < t->n; i++)
        c += t->evs[i]->kind == k;
    return c;
}

/* The index of the nth (from 0) event of kind k; fails when there is
 * none. */
static size_t nth_index(const struct turn *t, enum mc_event_kind k, size_t nth)
{
    size_t seen = 0;
    for (size_t i = 0; i < t->n; i++)
        if (t->evs[i]->kind == k && seen++ == nth)
            return i;
    fail_msg("no %s event number %zu in:\n%s", mc_event_kind_name(k), nth, t->r.out);
    return 0;
}

static const cJSON *field(const struct mc_event *ev, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(ev->json, name);
}

/* The only tool.result of a turn that made one call, after checking that
 * its one tool.call came first and named the same call. */
static const struct mc_event *only_result(const struct turn *t, const char *tool)
{
    assert_int_equal(count_kind(t, MC_EV_TOOL_CALL), 1);
    assert_int_equal(count_kind(t, MC_EV_TOOL_RESULT), 1);
    size_t ci = nth_index(t, MC_EV_TOOL_CALL, 0), ri = nth_index(t, MC_EV_TOOL_RESULT, 0);
    assert_true(ci < ri && ri < t->done);
    assert_string_equal(mc_event_str(t->evs[ci], "name", ""), tool);
    assert_string_equal(mc_event_str(t->evs[ri], "name", ""), tool);
    assert_string_equal(mc_event_str(t->evs[ri], "call_id", "?"),
                        mc_event_str(t->evs[ci], "call_id", "!"));
    return t->evs[ri];
}

/* A call that failed with status: ok false, output null, an error line
 * naming the tool, and the turn went on: the model got exactly that line
 * (the mock's "tool results: ..."; Anthropic's is_error ones "error: ..."),
 * one usage and cost. Returns the error line (the event's). */
static const char *expect_failed_call(const struct turn *t, const char *tool, const char *status,
                                      bool anthropic)
{
    const struct mc_event *res = only_result(t, tool);
    assert_string_equal(mc_event_str(res, "status", ""), status);
    assert_false(mc_event_bool(res, "ok", true));
    assert_true(cJSON_IsNull(field(res, "output")));
    const char *err = mc_event_str(res, "error", NULL);
    assert_non_null(err);
    expect_in(err, tool, "the error line names the tool");
    char want[1200];
    snprintf(want, sizeof want, "tool results: %s%s", anthropic ? "error: " : "", err);
    assert_string_equal(t->reply, want);
    assert_int_equal(count_kind(t, MC_EV_USAGE), 1);
    assert_int_equal(count_kind(t, MC_EV_COST), 1);
    assert_int_equal(count_kind(t, MC_EV_ERROR), 0);
    return err;
}

/* ---- the mock's log ---------------------------------------------------------- */

/* The chat requests the mock logged since the last reset, from the
 * from-th on: a new array of their bodies, parsed. */
static cJSON *chat_bodies(size_t from)
{
    cJSON *log = NULL;
    mock_requests(mock, &log);
    cJSON *out = cJSON_CreateArray();
    size_t k = 0;
    const cJSON *req;
    cJSON_ArrayForEach(req, log)
    {
        const char *path = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(req, "path"));
        assert_non_null(path);
        if (strcmp(path, "/_mock/reset") == 0) {
            cJSON_Delete(out);
            out = cJSON_CreateArray();
            k = 0;
            continue;
        }
        if (strstr(path, "/chat/completions") == NULL && strstr(path, "/v1/messages") == NULL &&
            strstr(path, "/api/chat") == NULL)
            continue;
        if (k++ < from)
            continue;
        const char *body = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(req, "body"));
        assert_non_null(body);
        cJSON *b = cJSON_Parse(body);
        assert_non_null(b);
        /* the mock's prompt_tokens: the body's bytes / 10 */
        cJSON_AddNumberToObject(b, "_bytes", (double)strlen(body));
        cJSON_AddItemToArray(out, b);
    }
    cJSON_Delete(log);
    return out;
}

static size_t chat_count(void)
{
    cJSON *all = chat_bodies(0);
    size_t n = (size_t)cJSON_GetArraySize(all);
    cJSON_Delete(all);
    return n;
}

/* The mock's usage for a request of that many body bytes. */
static long long mock_prompt_tokens(const cJSON *body)
{
    return (long long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(body, "_bytes")) / 10;
}

/* The mock cuts text and arguments into pieces of at most 7 bytes (ASCII
 * here), one completion token each. */
static long long mock_pieces(size_t bytes)
{
    return (long long)((bytes + 6) / 7);
}

/* The names of the tools a request offered ("" when it offered none),
 * comma-separated, in out; for OpenAI and Ollama bodies
 * (tools[].function.name) and Anthropic's (tools[].name). */
static void offered_tools(const cJSON *body, char *out, size_t n)
{
    out[0] = '\0';
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(body, "tools");
    const cJSON *t;
    size_t len = 0;
    cJSON_ArrayForEach(t, tools)
    {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(t, "function");
        const char *name =
            cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(fn != NULL ? fn : t, "name"));
        assert_non_null(name);
        int w = snprintf(out + len, n - len, "%s%s,", len == 0 ? "," : "", name);
        assert_true(w > 0 && (size_t)w < n - len);
        len += (size_t)w;
    }
}

/* ---- processes -------------------------------------------------------------- */

/* True while pid exists and is not a zombie. */
static bool pid_running(long pid)
{
    char p[64];
    snprintf(p, sizeof p, "/proc/%ld/stat", pid);
    char *s = tu_read_file(p, NULL);
    if (s == NULL)
        return false;
    const char *rp = strrchr(s, ')');
    bool running = rp != NULL && rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X';
    free(s);
    return running;
}

/* Fails unless the pid written in HOME's file is gone within a bounded
 * wait (a killed orphan is reaped by init a moment later). */
static void expect_gone(const char *pidfile)
{
    char *s = home_file(pidfile);
    if (s == NULL)
        fail_msg("the tool did not write %s", pidfile);
    char *end = NULL;
    long pid = strtol(s, &end, 10);
    assert_true(pid > 1 && end != s);
    free(s);
    long long deadline = mock_now_ms() + 10000;
    while (pid_running(pid)) {
        if (mock_now_ms() > deadline) {
            kill((pid_t)pid, SIGKILL);
            fail_msg("process %ld (%s) is still running after the tool timed out", pid, pidfile);
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* ---- 1. a round trip ------------------------------------------------------ */

/* Finds the trace record of turn in traces.jsonl and fails unless it has
 * a span of type "tool" named after tool, for call call_id, with status
 * ok. */
static void expect_tool_span(const char *turn, const char *tool, const char *call_id)
{
    char p[4200];
    path_in(p, sizeof p, fx.data, "traces/traces.jsonl");
    char *file = tu_read_file(p, NULL);
    if (file == NULL)
        fail_msg("no trace file %s", p);
    cJSON *lines = json_lines(file);
    free(file);
    bool found = false;
    const cJSON *rec;
    cJSON_ArrayForEach(rec, lines)
    {
        const cJSON *tr = cJSON_GetObjectItemCaseSensitive(rec, "trace");
        if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(tr, "id")), turn) != 0)
            continue;
        const cJSON *sp;
        cJSON_ArrayForEach(sp, cJSON_GetObjectItemCaseSensitive(rec, "spans"))
        {
            const cJSON *meta = cJSON_GetObjectItemCaseSensitive(sp, "metadata");
            if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(sp, "type")),
                       "tool") == 0 &&
                strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(sp, "name")), tool) ==
                    0) {
                assert_string_equal(mc_json_str(meta, "call_id", ""), call_id);
                assert_string_equal(mc_json_str(meta, "status", ""), "ok");
                assert_string_equal(
                    cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(sp, "trace_id")), turn);
                found = true;
            }
        }
    }
    cJSON_Delete(lines);
    if (!found)
        fail_msg("the trace of turn %s has no span of type tool named %s", turn, tool);
}

/* Fails unless rt.in (what the tool read on stdin) is the one JSON object
 * {"text": msg}. */
static void expect_rt_stdin(const char *msg)
{
    char *in = home_file("rt.in");
    if (in == NULL)
        fail_msg("the tool never ran (no rt.in)");
    cJSON *o = cJSON_Parse(in);
    if (!cJSON_IsObject(o) || cJSON_GetArraySize(o) != 1)
        fail_msg("the tool read '%s', not one object with one member", in);
    assert_string_equal(mc_json_str(o, "text", ""), msg);
    cJSON_Delete(o);
    free(in);
    home_remove("rt.in");
}

/* The checks of a successful one-call round trip shared by the providers:
 * call, result (ok, the tool's output), then the answer's deltas, one
 * usage and cost after them, turn.done's tools latency a number, and a
 * tool span in the trace. */
static void expect_round_trip(const struct turn *t, const char *msg)
{
    const struct mc_event *res = only_result(t, "rt");
    size_t ci = nth_index(t, MC_EV_TOOL_CALL, 0), ri = nth_index(t, MC_EV_TOOL_RESULT, 0);
    const cJSON *args = field(t->evs[ci], "arguments");
    assert_true(cJSON_IsObject(args));
    assert_string_equal(mc_json_str(args, "text", ""), msg);
    assert_true(mc_event_bool(res, "ok", false));
    assert_string_equal(mc_event_str(res, "status", ""), "ok");
    assert_string_equal(mc_event_str(res, "output", ""), RT_OUTPUT);
    assert_true(cJSON_IsNull(field(res, "error")));
    assert_false(mc_event_bool(res, "truncated", true));
    assert_true(mc_event_num(res, "latency_ms", -1) >= 0);
    /* the answer streams after the result, and is billed after it */
    size_t d0 = nth_index(t, MC_EV_DELTA, 0);
    assert_true(ri < d0);
    assert_string_equal(t->reply, "tool results: " RT_OUTPUT);
    assert_int_equal(count_kind(t, MC_EV_USAGE), 1);
    assert_int_equal(count_kind(t, MC_EV_COST), 1);
    size_t ui = nth_index(t, MC_EV_USAGE, 0);
    for (size_t i = 0; i < t->n; i++)
        if (t->evs[i]->kind == MC_EV_DELTA)
            assert_true(i < ui);
    assert_true(ui < nth_index(t, MC_EV_COST, 0));
    assert_false(mc_event_bool(t->evs[ui], "estimated", true));
    const cJSON *lat = cJSON_GetObjectItemCaseSensitive(t->evs[t->done]->json, "latency_ms");
    assert_true(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(lat, "tools")));
    expect_rt_stdin(msg);
    expect_tool_span(t->evs[0]->turn, "rt", mc_event_str(res, "call_id", ""));
}

/* The model's arguments reach the tool on stdin, its JSON answer reaches
 * the model intact, and the turn reports and bills both rounds as one:
 * on OpenAI (the usage exactly the sum of the mock's two answers, checked
 * against a single-round turn's, the cost priced from it, one ledger row),
 * Anthropic (arguments with quotes, a backslash and non-ASCII text) and
 * Ollama (plain output: stdout is the answer, the tool lines on stderr). */
static void a_round_trip_reaches_the_tool_and_comes_back(void **state)
{
    (void)state;
    /* A single-round turn: the mock's usage is the body's bytes / 10 and
     * one token per 7-byte piece of the reply. */
    struct turn t;
    static const char msg[] = "what is the weather in Paris";
    TURN(&t, NULL, AGENT, "--provider", "openai", "--model", "mock", msg);
    assert_int_equal(count_kind(&t, MC_EV_TOOL_CALL), 0);
    cJSON *bodies = chat_bodies(0);
    assert_int_equal(cJSON_GetArraySize(bodies), 1);
    const struct mc_event *u = must_event(t.evs, t.n, MC_EV_USAGE);
    assert_int_equal((long long)mc_event_num(u, "prompt_tokens", -1),
                     mock_prompt_tokens(cJSON_GetArrayItem(bodies, 0)));
    assert_int_equal((long long)mc_event_num(u, "completion_tokens", -1),
                     mock_pieces(strlen("mock reply: ") + strlen(msg)));
    long long single_prompt = (long long)mc_event_num(u, "prompt_tokens", -1);
    cJSON_Delete(bodies);
    turn_free(&t);

    /* The same question answered through the tool: two requests, both
     * billed in the turn's one usage. */
    size_t before = chat_count();
    TURN(&t, NULL, AGENT, "--provider", "openai", "--model", "mock:tool=rt", msg);
    expect_round_trip(&t, msg);
    bodies = chat_bodies(before);
    assert_int_equal(cJSON_GetArraySize(bodies), 2);
    long long prompt = mock_prompt_tokens(cJSON_GetArrayItem(bodies, 0)) +
                       mock_prompt_tokens(cJSON_GetArrayItem(bodies, 1));
    /* the first round's pieces are the arguments {"text":"<msg>"} */
    long long completion =
        mock_pieces(strlen(msg) + 11) + mock_pieces(strlen("tool results: " RT_OUTPUT));
    u = must_event(t.evs, t.n, MC_EV_USAGE);
    assert_int_equal((long long)mc_event_num(u, "prompt_tokens", -1), prompt);
    assert_int_equal((long long)mc_event_num(u, "completion_tokens", -1), completion);
    assert_true(prompt > single_prompt);
    /* the second request carried the call and the result back */
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(bodies, 1), "messages");
    const cJSON *last = cJSON_GetArrayItem(msgs, cJSON_GetArraySize(msgs) - 1);
    assert_string_equal(mc_json_str(last, "role", ""), "tool");
    assert_string_equal(mc_json_str(last, "content", ""), RT_OUTPUT);
    cJSON_Delete(bodies);
    /* priced in config dir's prices.json: 1 USD in, 2 out per million */
    const struct mc_event *c = must_event(t.evs, t.n, MC_EV_COST);
    double usd = mc_event_num(c, "usd", -1);
    double want = ((double)prompt * 1.0 + (double)completion * 2.0) / 1e6;
    if (fabs(usd - want) > 1e-12)
        fail_msg("cost %.9f, want %.9f for %lld + %lld tokens", usd, want, prompt, completion);
    turn_free(&t);

    /* one ledger row for the turn, with the summed tokens */
    struct run r;
    RUN(&r, NULL, "costs", "--by", "model", "--json");
    expect_exit(&r, 0, "costs");
    cJSON *rows = json_lines(r.out);
    const cJSON *row, *mine = NULL;
    cJSON_ArrayForEach(row, rows)
    {
        if (strcmp(mc_json_str(row, "key", ""), "mock:tool=rt") == 0)
            mine = row;
    }
    if (mine == NULL)
        fail_msg("no costs row for mock:tool=rt in:\n%s", r.out);
    assert_int_equal((long long)mc_json_num(mine, "turns", -1), 1);
    assert_int_equal((long long)mc_json_num(mine, "prompt_tokens", -1), prompt);
    assert_int_equal((long long)mc_json_num(mine, "completion_tokens", -1), completion);
    cJSON_Delete(rows);
    run_free(&r);

    /* Anthropic: arguments streamed as input_json_delta pieces */
    static const char tricky[] = "weather in Z\xc3\xbcrich \"today\" \\ tomorrow";
    before = chat_count();
    TURN(&t, NULL, AGENT, "--no-memory", "--provider", "anthropic", "--model", "mock:tool=rt",
         tricky);
    expect_round_trip(&t, tricky);
    bodies = chat_bodies(before);
    assert_int_equal(cJSON_GetArraySize(bodies), 2);
    u = must_event(t.evs, t.n, MC_EV_USAGE);
    assert_int_equal((long long)mc_event_num(u, "prompt_tokens", -1),
                     mock_prompt_tokens(cJSON_GetArrayItem(bodies, 0)) +
                         mock_prompt_tokens(cJSON_GetArrayItem(bodies, 1)));
    assert_true(mc_event_num(u, "completion_tokens", -1) >
                (double)mock_pieces(strlen("tool results: " RT_OUTPUT)));
    cJSON_Delete(bodies);
    turn_free(&t);

    /* Ollama, plain output */
    const char *const args[] = {"ask",     AGENT,          "--no-memory",  "--provider", "ollama",
                                "--model", "mock:tool=rt", "rain in Oslo", NULL};
    run_memchat(&r, NULL, net_env(NULL), args);
    expect_exit(&r, 0, "ask ollama");
    assert_string_equal(r.out, "tool results: " RT_OUTPUT "\n");
    expect_in(r.err, "tool rt", "ask's tool line on stderr");
    expect_rt_stdin("rain in Oslo");
    run_free(&r);
}

/* ---- 2. parallel calls ---------------------------------------------------- */

/* Two calls in one reply run one after the other in the model's order,
 * and both results go back in that order, on OpenAI and Anthropic. */
static void parallel_calls_run_in_order(void **state)
{
    (void)state;
    static const char *const providers[] = {"openai", "anthropic"};
    for (size_t p = 0; p < 2; p++) {
        home_remove("order");
        struct turn t;
        TURN(&t, NULL, AGENT, "--no-memory", "--provider", providers[p], "--model", "mock:tool=a+b",
             "do both");
        assert_int_equal(count_kind(&t, MC_EV_TOOL_CALL), 2);
        assert_int_equal(count_kind(&t, MC_EV_TOOL_RESULT), 2);
        size_t ca = nth_index(&t, MC_EV_TOOL_CALL, 0), ra = nth_index(&t, MC_EV_TOOL_RESULT, 0);
        size_t cb = nth_index(&t, MC_EV_TOOL_CALL, 1), rb = nth_index(&t, MC_EV_TOOL_RESULT, 1);
        assert_true(ca < ra && ra < cb && cb < rb && rb < nth_index(&t, MC_EV_DELTA, 0));
        assert_string_equal(mc_event_str(t.evs[ca], "name", ""), "a");
        assert_string_equal(mc_event_str(t.evs[cb], "name", ""), "b");
        assert_string_equal(mc_event_str(t.evs[ra], "call_id", "?"),
                            mc_event_str(t.evs[ca], "call_id", "!"));
        assert_string_equal(mc_event_str(t.evs[rb], "call_id", "?"),
                            mc_event_str(t.evs[cb], "call_id", "!"));
        assert_string_not_equal(mc_event_str(t.evs[ca], "call_id", ""),
                                mc_event_str(t.evs[cb], "call_id", ""));
        assert_true(mc_event_bool(t.evs[ra], "ok", false));
        assert_true(mc_event_bool(t.evs[rb], "ok", false));
        assert_string_equal(t.reply, "tool results: {\"tool\":\"a\"} | {\"tool\":\"b\"}");
        char *order = home_file("order");
        assert_non_null(order);
        assert_string_equal(order, "a-start\na-end\nb-start\nb-end\n");
        free(order);
        assert_int_equal(count_kind(&t, MC_EV_USAGE), 1);
        turn_free(&t);
    }
}

/* ---- 3. failing calls ----------------------------------------------------- */

/* A tool over its timeout is killed with its whole process group (the
 * script and the child it started), reported as "timeout", and the model
 * gets the error line. */
static void a_tool_that_times_out_is_killed_and_reported(void **state)
{
    (void)state;
    struct turn t;
    TURN(&t, NULL, AGENT, "--no-memory", "--provider", "openai", "--model", "mock:tool=slow",
         "take your time");
    const char *err = expect_failed_call(&t, "slow", "timeout", false);
    expect_in(err, "timed out", "the timeout's error line");
    expect_in(err, "700 ms", "the timeout's error line gives the timeout");
    expect_gone("slow.pid");
    expect_gone("slow.child");
    turn_free(&t);
}

/* A tool that exits 3: "failed", the exit status and the first line of
 * its stderr in the error line (not the second). */
static void a_tool_that_fails_gives_its_status_and_stderr(void **state)
{
    (void)state;
    static const char *const providers[] = {"openai", "anthropic"};
    for (size_t p = 0; p < 2; p++) {
        struct turn t;
        TURN(&t, NULL, AGENT, "--no-memory", "--provider", providers[p], "--model",
             "mock:tool=fail", "break it");
        const char *err = expect_failed_call(&t, "fail", "failed", p == 1);
        expect_in(err, "status 3", "the exit status");
        expect_in(err, "disk on fire", "the first stderr line");
        assert_null(strstr(err, "second line"));
        turn_free(&t);
    }
}

/* More than output_max_bytes: "too_big"; output that is not JSON:
 * "bad_output"; neither output reaches the model. */
static void too_much_or_invalid_output_fails_the_call(void **state)
{
    (void)state;
    struct turn t;
    TURN(&t, NULL, AGENT, "--no-memory", "--provider", "openai", "--model", "mock:tool=big",
         "say a lot");
    const char *err = expect_failed_call(&t, "big", "too_big", false);
    assert_null(strstr(err, "xxxx"));
    expect_in(err, "64", "the cap in the error line");
    turn_free(&t);

    TURN(&t, NULL, AGENT, "--no-memory", "--provider", "openai", "--model", "mock:tool=badjson",
         "say nonsense");
    err = expect_failed_call(&t, "badjson", "bad_output", false);
    assert_null(strstr(err, "not json"));
    turn_free(&t);

    /* two JSON values are not one; nor is text that is not UTF-8 */
    TURN(&t, NULL, AGENT, "--no-memory", "--provider", "openai", "--model", "mock:tool=two",
         "say two things");
    expect_failed_call(&t, "two", "bad_output", false);
    turn_free(&t);
    TURN(&t, NULL, AGENT, "--no-memory", "--provider", "openai", "--model", "mock:tool=utf",
         "say a bad byte");
    expect_failed_call(&t, "utf", "bad_output", false);
    turn_free(&t);
}

/* An answer longer than a tool.result event carries (4,096 bytes) is cut
 * there (truncated true, a prefix) but goes to the model whole. */
static void a_long_output_goes_to_the_model_whole(void **state)
{
    (void)state;
    char want[6100];
    size_t n = 0;
    want[n++] = '"';
    for (int i = 0; i < 6000; i++)
        want[n++] = 'y';
    want[n++] = '"';
    want[n] = '\0';
    struct turn t;
    TURN(&t, NULL, AGENT, "--no-memory", "--provider", "openai", "--model", "mock:tool=long",
         "say it all");
    const struct mc_event *res = only_result(&t, "long");
    assert_true(mc_event_bool(res, "ok", false));
    assert_true(mc_event_bool(res, "truncated", false));
    const char *cut = mc_event_str(res, "output", "");
    assert_true(strlen(cut) > 0 && strlen(cut) <= 4096);
    assert_int_equal(strncmp(cut, want, strlen(cut)), 0);
    assert_true(strncmp(t.reply, "tool results: ", 14) == 0);
    assert_string_equal(t.reply + 14, want);
    turn_free(&t);
}

/* Arguments that are not a JSON object: "bad_args", the tool.call event
 * carries their text as a string, and the tool never starts. */
static void invalid_arguments_never_start_the_tool(void **state)
{
    (void)state;
    static const char *const providers[] = {"openai", "anthropic"};
    for (size_t p = 0; p < 2; p++) {
        struct turn t;
        TURN(&t, NULL, AGENT, "--no-memory", "--provider", providers[p], "--model",
             "mock:toolargs-bad", "garbled");
        expect_failed_call(&t, "echo", "bad_args", p == 1);
        const cJSON *args = field(t.evs[nth_index(&t, MC_EV_TOOL_CALL, 0)], "arguments");
        assert_true(cJSON_IsString(args));
        assert_string_equal(args->valuestring, "{\"text\":");
        assert_false(home_exists("echo.ran"));
        turn_free(&t);
    }
}

/* ---- 4. credentials ------------------------------------------------------- */

/* Fails when the credential's value is in s. */
static void expect_no_cred(const char *s, size_t len, const char *where)
{
    if (len >= sizeof CRED_VALUE - 1 && memmem(s, len, CRED_VALUE, sizeof CRED_VALUE - 1) != NULL)
        fail_msg("the credential's value appears in %s", where);
}

static bool file_has_cred(void *ud, const char *path, const char *data, size_t len)
{
    (void)ud;
    expect_no_cred(data, len, path);
    return false;
}

static void expect_run_clean(const struct run *r)
{
    expect_no_cred(r->out, r->out_len, "stdout");
    expect_no_cred(r->err, r->err_len, "stderr");
}

/* A tool lacking its credential is not run and tells the model the
 * command that adds it; once added (value on stdin) the tool, and only
 * it, sees it in its environment; when the tool prints it on stderr,
 * memchat masks it; and the value never shows in memchat's output, events,
 * log, traces, data files or the requests the model received. */
static void credentials_reach_only_the_tool(void **state)
{
    (void)state;
    struct turn t;
    TURN(&t, NULL, AGENT, "--provider", "openai", "--model", "mock:tool=cred", "weather please");
    const char *err = expect_failed_call(&t, "cred", "no_credentials", false);
    expect_in(err, "memchat tools add-credential cred WEATHER_TOKEN",
              "the missing credential's error line");
    assert_false(home_exists("cred.out"));
    turn_free(&t);

    struct run r;
    const char *const add[] = {"tools", "add-credential", "cred", "WEATHER_TOKEN", NULL};
    run_memchat(&r, CRED_VALUE "\n", net_env(NULL), add);
    expect_exit(&r, 0, "tools add-credential");
    expect_run_clean(&r);
    run_free(&r);

    TURN(&t, NULL, AGENT, "--provider", "openai", "--model", "mock:tool=cred", "weather please");
    const struct mc_event *res = only_result(&t, "cred");
    assert_true(mc_event_bool(res, "ok", false));
    assert_string_equal(t.reply, "tool results: {\"weather\":\"sunny\"}");
    expect_run_clean(&t.r);
    turn_free(&t);
    uint8_t digest[crypto_hash_sha256_BYTES];
    char hex[crypto_hash_sha256_BYTES * 2 + 1];
    crypto_hash_sha256(digest, (const unsigned char *)CRED_VALUE, sizeof CRED_VALUE - 1);
    sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
    char *seen = home_file("cred.out");
    assert_non_null(seen);
    if (strncmp(seen, hex, strlen(hex)) != 0)
        fail_msg("the tool saw another value: sha256 %.64s, want %s", seen, hex);
    free(seen);

    /* The tool prints its credential on stderr and fails: the error line
     * (events, reply, stderr, the request to the model) masks it. */
    static const char *const providers[] = {"openai", "anthropic"};
    for (size_t p = 0; p < 2; p++) {
        TURN(&t, NULL, AGENT, "--provider", providers[p], "--model", "mock:tool=cred",
             "please leak it");
        err = expect_failed_call(&t, "cred", "failed", p == 1);
        expect_in(err, "token **** refused", "the masked stderr line");
        expect_run_clean(&t.r);
        turn_free(&t);
    }
    const char *const plain[] = {
        "ask", AGENT, "--provider", "openai", "--model", "mock:tool=cred", "please leak it", NULL};
    run_memchat(&r, NULL, net_env(NULL), plain);
    expect_exit(&r, 0, "plain ask");
    expect_in(r.out, "****", "the masked line in the reply");
    expect_run_clean(&r);
    run_free(&r);

    char p[4200];
    path_in(p, sizeof p, fx.data, "memchat.log");
    char *log = tu_read_file(p, NULL);
    assert_non_null(log);
    expect_no_cred(log, strlen(log), "memchat.log");
    free(log);
    path_in(p, sizeof p, fx.data, "traces/traces.jsonl");
    char *traces = tu_read_file(p, NULL);
    assert_non_null(traces);
    free(traces);
    harness_walk_files(fx.data, file_has_cred, NULL);
    size_t len = 0;
    char *requests = tu_read_file(mock->log_path, &len);
    assert_non_null(requests);
    expect_no_cred(requests, len, "the requests the mock received");
    free(requests);
}

/* ---- 5. the tool's environment -------------------------------------------- */

/* A tool's environment is built for it: memchat's keys and other
 * variables stay out; PATH, HOME, TZ, LANG pass; MEMCHAT_TOOL is its
 * name. */
static void the_tools_environment_holds_no_secret(void **state)
{
    (void)state;
    const char *const extra[] = {"UNRELATED_SECRET=unrelated-canary-4411", "TZ=UTC", "LANG=C.UTF-8",
                                 NULL};
    struct turn t;
    TURN(&t, extra, AGENT, "--no-memory", "--provider", "openai", "--model", "mock:tool=envdump",
         "show me");
    assert_true(mc_event_bool(only_result(&t, "envdump"), "ok", false));
    turn_free(&t);
    char *env = home_file("env.out");
    assert_non_null(env);
    assert_null(strstr(env, "canary"));
    expect_in(env, "MEMCHAT_TOOL=envdump\n", "the tool's environment");
    expect_in(env, "PATH=/usr/bin:/bin\n", "the tool's environment");
    expect_in(env, "TZ=UTC\n", "the tool's environment");
    expect_in(env, "LANG=C.UTF-8\n", "the tool's environment");
    char home[4200];
    snprintf(home, sizeof home, "HOME=%s\n", fx.dir);
    expect_in(env, home, "the tool's environment");
    /* nothing else, but what the shell sets itself */
    static const char *const allowed[] = {
        "PATH",         "HOME", "LANG",   "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
        "MEMCHAT_TOOL", "PWD",  "OLDPWD", "SHLVL",  "_",        NULL};
    char *save = NULL;
    for (char *line = strtok_r(env, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');
        assert_non_null(eq);
        *eq = '\0';
        bool ok = false;
        for (size_t i = 0; allowed[i] != NULL && !ok; i++)
            ok = strcmp(line, allowed[i]) == 0;
        if (!ok)
            fail_msg("the tool's environment holds %s", line);
    }
    free(env);
}

/* ---- 6. confirmation ------------------------------------------------------ */

/* A tool that is not read-only (the default) asks first: `ask` without
 * --yes refuses it (tool.confirm, then "refused"; the script never ran;
 * the model is told, as an error on Anthropic); with --yes it runs. */
static void a_tool_that_is_not_read_only_needs_yes(void **state)
{
    (void)state;
    static const char *const providers[] = {"openai", "anthropic"};
    for (size_t p = 0; p < 2; p++) {
        struct turn t;
        TURN(&t, NULL, AGENT, "--no-memory", "--provider", providers[p], "--model", "mock:tool=rw",
             "change something");
        assert_int_equal(count_kind(&t, MC_EV_TOOL_CONFIRM), 1);
        size_t ci = nth_index(&t, MC_EV_TOOL_CALL, 0), fi = nth_index(&t, MC_EV_TOOL_CONFIRM, 0),
               ri = nth_index(&t, MC_EV_TOOL_RESULT, 0);
        assert_true(ci < fi && fi < ri);
        assert_string_equal(mc_event_str(t.evs[fi], "name", ""), "rw");
        assert_string_equal(mc_event_str(t.evs[fi], "call_id", "?"),
                            mc_event_str(t.evs[ci], "call_id", "!"));
        assert_string_equal(mc_json_str(field(t.evs[fi], "arguments"), "text", ""),
                            "change something");
        const char *err = expect_failed_call(&t, "rw", "refused", p == 1);
        assert_true(strlen(err) > 0);
        assert_false(home_exists("rw.ran"));
        turn_free(&t);
    }

    struct turn t;
    TURN(&t, NULL, AGENT, "--yes", "--no-memory", "--provider", "openai", "--model", "mock:tool=rw",
         "change something");
    assert_int_equal(count_kind(&t, MC_EV_TOOL_CONFIRM), 1);
    const struct mc_event *res = only_result(&t, "rw");
    assert_true(mc_event_bool(res, "ok", false));
    assert_string_equal(mc_event_str(res, "status", ""), "ok");
    assert_true(home_exists("rw.ran"));
    assert_string_equal(t.reply, "tool results: {\"done\":true}");
    turn_free(&t);

    /* plain ask says on stderr what became of the call */
    for (int yes = 0; yes <= 1; yes++) {
        home_remove("rw.ran");
        struct run pr;
        const char *const with[] = {
            "ask",    "--yes",   AGENT,          "--no-memory",      "--provider",
            "openai", "--model", "mock:tool=rw", "change something", NULL};
        const char *const without[] = {"ask",          "--no-memory",      AGENT,
                                       "--provider",   "openai",           "--model",
                                       "mock:tool=rw", "change something", NULL};
        run_memchat(&pr, NULL, net_env(NULL), yes ? with : without);
        expect_exit(&pr, 0, "plain ask");
        expect_in(pr.err,
                  yes ? "tool rw is not read-only: allowed by --yes"
                      : "tool rw is not read-only: not run",
                  "plain ask's tool line");
        assert_null(strstr(pr.err, yes ? "not run" : "allowed"));
        assert_int_equal(home_exists("rw.ran"), yes == 1);
        run_free(&pr);
    }

    /* chat --plain has no one to ask: it refuses */
    home_remove("rw.ran");
    struct run r;
    const char *const chat[] = {"chat",   "--plain", AGENT,          "--no-memory", "--provider",
                                "openai", "--model", "mock:tool=rw", NULL};
    run_memchat(&r, "change something\n", net_env(NULL), chat);
    expect_exit(&r, 0, "chat --plain");
    expect_in(r.out, "tool results: ", "chat --plain's reply");
    assert_null(strstr(r.out, "done"));
    assert_false(home_exists("rw.ran"));
    run_free(&r);
}

/* ---- 7. the round limit --------------------------------------------------- */

/* A model that keeps calling gets TOOL_MAX_ROUNDS rounds (from --set or
 * the environment); the request after the last says tool_choice none, and
 * the model then answers in text. */
static void the_round_limit_stops_a_looping_model(void **state)
{
    (void)state;
    size_t before = chat_count();
    struct turn t;
    TURN(&t, NULL, AGENT, "--no-memory", "--set", "TOOL_MAX_ROUNDS=2", "--provider", "openai",
         "--model", "mock:toolloop", "loop forever");
    assert_int_equal(count_kind(&t, MC_EV_TOOL_CALL), 2);
    assert_int_equal(count_kind(&t, MC_EV_TOOL_RESULT), 2);
    assert_string_equal(t.reply, "no more tools");
    char *count = home_file("loop.count");
    assert_non_null(count);
    assert_string_equal(count, "round\nround\n");
    free(count);
    cJSON *bodies = chat_bodies(before);
    assert_int_equal(cJSON_GetArraySize(bodies), 3);
    for (int i = 0; i < 3; i++) {
        const cJSON *choice =
            cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(bodies, i), "tool_choice");
        bool none = cJSON_IsString(choice) && strcmp(choice->valuestring, "none") == 0;
        assert_true(none == (i == 2));
    }
    cJSON_Delete(bodies);
    assert_int_equal(count_kind(&t, MC_EV_USAGE), 1);
    turn_free(&t);

    home_remove("loop.count");
    before = chat_count();
    const char *const env[] = {"TOOL_MAX_ROUNDS=1", NULL};
    TURN(&t, env, AGENT, "--no-memory", "--provider", "anthropic", "--model", "mock:toolloop",
         "loop forever");
    assert_int_equal(count_kind(&t, MC_EV_TOOL_CALL), 1);
    assert_string_equal(t.reply, "no more tools");
    bodies = chat_bodies(before);
    assert_int_equal(cJSON_GetArraySize(bodies), 2);
    const cJSON *choice =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(bodies, 1), "tool_choice");
    assert_string_equal(mc_json_str(choice, "type", ""), "none");
    cJSON_Delete(bodies);
    turn_free(&t);

    /* Ollama has no tool_choice: the last request offers no tools */
    before = chat_count();
    TURN(&t, env, AGENT, "--no-memory", "--provider", "ollama", "--model", "mock:toolloop",
         "loop forever");
    assert_int_equal(count_kind(&t, MC_EV_TOOL_CALL), 1);
    assert_string_equal(t.reply, "no more tools");
    bodies = chat_bodies(before);
    assert_int_equal(cJSON_GetArraySize(bodies), 2);
    char names[512];
    offered_tools(cJSON_GetArrayItem(bodies, 0), names, sizeof names);
    expect_in(names, ",loop,", "the first request's tools");
    offered_tools(cJSON_GetArrayItem(bodies, 1), names, sizeof names);
    assert_string_equal(names, "");
    cJSON_Delete(bodies);
    turn_free(&t);
}

/* ---- 8. the registry switch ---------------------------------------------- */

/* TOOL_REGISTRY_ENABLED=false offers no tools: the request has none, the
 * mock then answers in text, and no tool runs. */
static void a_disabled_registry_offers_no_tools(void **state)
{
    (void)state;
    size_t before = chat_count();
    struct turn t;
    TURN(&t, NULL, AGENT, "--no-memory", "--set", "TOOL_REGISTRY_ENABLED=false", "--provider",
         "openai", "--model", "mock:tool=rt", "no tools today");
    assert_int_equal(count_kind(&t, MC_EV_TOOL_CALL), 0);
    assert_string_equal(t.reply, "mock reply: no tools today");
    const cJSON *lat = cJSON_GetObjectItemCaseSensitive(t.evs[t.done]->json, "latency_ms");
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(lat, "tools")));
    turn_free(&t);

    const char *const env[] = {"TOOL_REGISTRY_ENABLED=false", NULL};
    TURN(&t, env, AGENT, "--no-memory", "--provider", "ollama", "--model", "mock:tool=rt",
         "no tools today");
    assert_int_equal(count_kind(&t, MC_EV_TOOL_CALL), 0);
    assert_string_equal(t.reply, "mock reply: no tools today");
    turn_free(&t);

    cJSON *bodies = chat_bodies(before);
    assert_int_equal(cJSON_GetArraySize(bodies), 2);
    const cJSON *b;
    cJSON_ArrayForEach(b, bodies)
    {
        char names[512];
        offered_tools(b, names, sizeof names);
        assert_string_equal(names, "");
    }
    cJSON_Delete(bodies);
    assert_false(home_exists("rt.in"));
}

/* ---- 9. malformed files and unknown names ---------------------------------- */

/* The lines of the log that hold needle. */
static size_t log_lines_with(const char *log, const char *needle, const char *also)
{
    size_t n = 0;
    for (const char *p = log; p != NULL && *p != '\0';) {
        const char *nl = strchr(p, '\n');
        size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);
        char *line = strndup(p, len);
        if (strstr(line, needle) != NULL && (also == NULL || strstr(line, also) != NULL))
            n++;
        free(line);
        p = nl != NULL ? nl + 1 : NULL;
    }
    return n;
}

/* A malformed tool file and one whose command is not executable are
 * skipped with one warning each in the log, naming the file and the
 * field; the good tools still work; a name the agent lists that no tool
 * has is logged and not offered, and a call of it is refused as
 * "unknown". */
static void malformed_files_are_skipped_and_logged(void **state)
{
    (void)state;
    char dir[4200];
    path_in(dir, sizeof dir, fx.cfgdir, "tools");
    free(tu_write_file(dir, "broken.json",
                       "{\"name\":\"broken\",\"description\":\"d\",\"parameters\":{\"type\":"
                       "\"object\"},\"command\":[\"rt.sh\"],\"timeout_ms\":\"soon\"}\n"));
    free(tu_write_file(dir, "noexec.sh", "#!/bin/sh\necho '{}'\n"));
    free(tu_write_file(dir, "noexec.json",
                       "{\"name\":\"noexec\",\"description\":\"d\",\"parameters\":{\"type\":"
                       "\"object\"},\"command\":[\"noexec.sh\"],\"read_only\":true}\n"));

    size_t before = chat_count();
    struct turn t;
    TURN(&t, NULL, AGENT, "--no-memory", "--provider", "openai", "--model", "mock:tool=rt",
         "still working");
    expect_round_trip(&t, "still working");
    turn_free(&t);
    cJSON *bodies = chat_bodies(before);
    char names[512];
    offered_tools(cJSON_GetArrayItem(bodies, 0), names, sizeof names);
    cJSON_Delete(bodies);
    expect_in(names, ",rt,", "the tools offered");
    expect_in(names, ",time_now,", "the tools offered");
    assert_null(strstr(names, ",broken,"));
    assert_null(strstr(names, ",noexec,"));
    assert_null(strstr(names, ",nosuch,"));

    char p[4200];
    path_in(p, sizeof p, fx.data, "memchat.log");
    char *log = tu_read_file(p, NULL);
    assert_non_null(log);
    char file[4300];
    path_in(file, sizeof file, dir, "broken.json");
    if (log_lines_with(log, file, "timeout_ms") != 1 || log_lines_with(log, file, NULL) != 1)
        fail_msg("want one warning naming %s and timeout_ms in:\n%s", file, log);
    path_in(file, sizeof file, dir, "noexec.json");
    if (log_lines_with(log, file, "command") != 1 || log_lines_with(log, file, NULL) != 1)
        fail_msg("want one warning naming %s and command in:\n%s", file, log);
    if (log_lines_with(log, "nosuch", NULL) == 0)
        fail_msg("the unknown tool name is not logged:\n%s", log);
    free(log);

    /* a model calling a tool it was not offered */
    TURN(&t, NULL, AGENT, "--no-memory", "--provider", "openai", "--model", "mock:tool=nosuch",
         "call it anyway");
    expect_failed_call(&t, "nosuch", "unknown", false);
    turn_free(&t);
}

/* ---- 10. offline ---------------------------------------------------------- */

/* The offline provider with the shipped assistant agent calls
 * memory_search for "search memory for X" and time_now for "what time is
 * it", and answers with what they returned; nothing reaches the network. */
static void offline_searches_memory_with_the_shipped_agent(void **state)
{
    (void)state;
    struct run r;
    RUN(&r, NULL, "memory", "add", "The blue notebook is in the attic");
    expect_exit(&r, 0, "memory add");
    run_free(&r);
    size_t before = chat_count();

    struct turn t;
    const char *const args[] = {
        "ask", "--json", "--provider", "offline", "search memory for notebook", NULL};
    memset(&t, 0, sizeof t);
    run_memchat(&t.r, NULL, NULL, args);
    expect_exit(&t.r, 0, "ask offline");
    t.n = parse_events(t.r.out, t.evs, MAX_EVENTS);
    t.done = check_turn_contract(t.evs, t.n);
    t.reply = delta_text(t.evs, t.n);
    assert_string_equal(mc_event_str(t.evs[0], "agent", ""), "assistant");
    assert_string_equal(mc_event_str(t.evs[0], "provider", ""), "offline");
    const struct mc_event *res = only_result(&t, "memory_search");
    const cJSON *a = field(t.evs[nth_index(&t, MC_EV_TOOL_CALL, 0)], "arguments");
    assert_string_equal(mc_json_str(a, "query", ""), "notebook");
    assert_true(mc_event_bool(res, "ok", false));
    cJSON *out = cJSON_Parse(mc_event_str(res, "output", ""));
    const cJSON *mems = cJSON_GetObjectItemCaseSensitive(out, "memories");
    assert_true(cJSON_GetArraySize(mems) >= 1);
    assert_string_equal(mc_json_str(cJSON_GetArrayItem(mems, 0), "text", ""),
                        "The blue notebook is in the attic");
    cJSON_Delete(out);
    expect_in(t.reply, "memory_search returned:", "the offline answer");
    expect_in(t.reply, "The blue notebook is in the attic", "the offline answer");
    turn_free(&t);

    const char *const time_args[] = {"ask",     "--json",           "--no-memory", "--provider",
                                     "offline", "what time is it?", NULL};
    memset(&t, 0, sizeof t);
    run_memchat(&t.r, NULL, NULL, time_args);
    expect_exit(&t.r, 0, "ask offline time");
    t.n = parse_events(t.r.out, t.evs, MAX_EVENTS);
    t.done = check_turn_contract(t.evs, t.n);
    t.reply = delta_text(t.evs, t.n);
    assert_true(mc_event_bool(only_result(&t, "time_now"), "ok", false));
    expect_in(t.reply, "time_now returned:", "the offline answer");
    turn_free(&t);

    assert_int_equal(chat_count(), before);
}

static int tools_turn_main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_round_trip_reaches_the_tool_and_comes_back, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(parallel_calls_run_in_order, case_setup, teardown),
        cmocka_unit_test_setup_teardown(a_tool_that_times_out_is_killed_and_reported, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_tool_that_fails_gives_its_status_and_stderr, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(too_much_or_invalid_output_fails_the_call, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_long_output_goes_to_the_model_whole, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(invalid_arguments_never_start_the_tool, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(credentials_reach_only_the_tool, case_setup, teardown),
        cmocka_unit_test_setup_teardown(the_tools_environment_holds_no_secret, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_tool_that_is_not_read_only_needs_yes, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(the_round_limit_stops_a_looping_model, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_disabled_registry_offers_no_tools, case_setup, teardown),
        cmocka_unit_test_setup_teardown(malformed_files_are_skipped_and_logged, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(offline_searches_memory_with_the_shipped_agent, case_setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

int main(void)
{
    return harness_without_terminal(tools_turn_main);
}
