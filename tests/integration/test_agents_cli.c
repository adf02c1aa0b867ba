/*
 * Agents, multi-step runs and ask --compare end to end: the built program
 * in a private HOME, data dir and config dir, with the shipped agents of
 * the source tree, offline (no key, no network) or against the loopback
 * test server (tests/server/mockllm), which echoes the last user message
 * and, for the model "mock:json", answers an indented JSON object quoting
 * it. The cases prove what a user relies on: `memchat agents` lists the
 * shipped agents and the user's own (a broken file warns and hides nothing
 * else); a multi-step agent runs each step as its own turn of one
 * conversation, hands each step's reply to the next (JSON minified) and
 * stops at a step whose reply is not the JSON it asked for; an agent's
 * memory switch and memory scope decide what is stored and recalled; ask
 * --compare shows the same question with memory on and off; an unknown
 * agent is refused by name.
 */
#include "cli_harness.h"

#include "../server/mockserver.h"

#define MAX_EVENTS 2048
#define MAX_TURNS  8

static struct mock *mock;
static char base_openai[256];

/* The fields `memchat agents --json` documents for every agent (agent.h,
 * agent_to_json). */
static const char *const agent_fields[] = {"name",       "description", "source", "overrides",
                                           "path",       "provider",    "model",  "temperature",
                                           "max_tokens", "memory",      "k",      "memory_scope",
                                           "format",     "tools",       "steps",  "system_prompt"};

static const char *const shipped[] = {"assistant", "branding", "planner", "quality"};

static int group_setup(void **state)
{
    (void)state;
    mock = mock_start();
    snprintf(base_openai, sizeof base_openai, "OPENAI_BASE_URL=%s/v1", mock_url(mock));
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    mock_stop(mock);
    return 0;
}

static int case_setup(void **state)
{
    mock_reset(mock);
    int rc = setup(state);
    /* A fresh machine: no key, so answers come from the offline provider
     * unless an agent names another; named, so that a local model server
     * on this machine cannot answer instead. The shipped agents are the
     * source tree's, whatever an installed memchat left in $(pkgdatadir). */
    fx_env("MEMCHAT_PROVIDER", "offline");
    const char *src = getenv("MEMCHAT_SRCDIR");
    char share[4096];
    snprintf(share, sizeof share, "%s/share", src != NULL && *src != '\0' ? src : MC_SRCDIR);
    fx_env("MEMCHAT_SHARE_DIR", share);
    return rc;
}

/* The environment of a run against the mock: its OpenAI base URL and a
 * fake key (agents name the provider and the model themselves). JSON
 * inside outgoing messages is left as it is, so what a step received is
 * what the run handed it. */
static const char *const *net_env(void)
{
    static const char *env[4];
    env[0] = base_openai;
    env[1] = "OPENAI_API_KEY=sk-canary-agents-0a1b2c3d4e5f";
    env[2] = "MEMCHAT_MINIFY_JSON=false";
    env[3] = NULL;
    return env;
}

/* Writes the agent file NAME.json of the user's config dir. */
static void write_agent(const char *name, const char *json)
{
    char dir[4096], file[256];
    snprintf(dir, sizeof dir, "%s/agents", fx.cfgdir);
    mkdir(fx.cfgdir, 0700);
    mkdir(dir, 0700);
    snprintf(file, sizeof file, "%s.json", name);
    free(tu_write_file(dir, file, json));
}

/* The item of arr whose "name" is name, or NULL. */
static const cJSON *find_named(const cJSON *arr, const char *name)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        if (strcmp(jstr(it, "name"), name) == 0)
            return it;
    }
    return NULL;
}

/* s with the whitespace outside JSON strings removed: the minified form
 * of the JSON text s (caller frees). Written here from the definition,
 * so the product's minifier is checked against it, not against itself. */
static char *minify(const char *s)
{
    size_t n = strlen(s), j = 0;
    char *o = malloc(n + 1);
    assert_non_null(o);
    bool in_str = false, esc = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            o[j++] = c;
            if (esc)
                esc = false;
            else if (c == '\\')
                esc = true;
            else if (c == '"')
                in_str = false;
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
            continue;
        if (c == '"')
            in_str = true;
        o[j++] = c;
    }
    o[j] = '\0';
    return o;
}

/* The turns of a run, in the order their turn.start arrived. */
struct turns {
    const struct mc_event *start[MAX_TURNS];
    size_t n;
};

/* Collects the turn.start events of evs into t. */
static void collect_turns(struct mc_event **evs, size_t n, struct turns *t)
{
    memset(t, 0, sizeof *t);
    for (size_t i = 0; i < n; i++)
        if (evs[i]->kind == MC_EV_TURN_START) {
            assert_true(t->n < MAX_TURNS);
            t->start[t->n++] = evs[i];
        }
}

/* The events of turn id among evs, in order, into out (at most max). */
static size_t events_of(struct mc_event **evs, size_t n, const char *id, struct mc_event **out,
                        size_t max)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(evs[i]->turn, id) == 0) {
            assert_true(k < max);
            out[k++] = evs[i];
        }
    return k;
}

/* The reply of turn id: its deltas joined (caller frees). */
static char *reply_of(struct mc_event **evs, size_t n, const char *id)
{
    static struct mc_event *sub[MAX_EVENTS];
    size_t k = events_of(evs, n, id, sub, MAX_EVENTS);
    return delta_text(sub, k);
}

/* The first event of kind k of turn id, or NULL. */
static const struct mc_event *event_of(struct mc_event **evs, size_t n, const char *id,
                                       enum mc_event_kind k)
{
    for (size_t i = 0; i < n; i++)
        if (evs[i]->kind == k && strcmp(evs[i]->turn, id) == 0)
            return evs[i];
    return NULL;
}

/* The "step" object of a turn.start event. */
static const cJSON *step_of(const struct mc_event *start)
{
    return cJSON_GetObjectItemCaseSensitive(start->json, "step");
}

/* The step's field as a number, failing when it is not one. */
static double step_num(const struct mc_event *start, const char *field)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(step_of(start), field);
    if (!cJSON_IsNumber(v))
        fail_msg("turn.start step.%s is not a number", field);
    return v->valuedouble;
}

static const char *step_str(const struct mc_event *start, const char *field)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(step_of(start), field);
    if (!cJSON_IsString(v))
        fail_msg("turn.start step.%s is not a string", field);
    return v->valuestring;
}

/* The bodies of the chat requests the mock received since its last reset,
 * in order (a new array; the caller deletes it). */
static cJSON *chat_requests(void)
{
    cJSON *arr = NULL;
    mock_requests(mock, &arr);
    cJSON *bodies = cJSON_CreateArray();
    const cJSON *req;
    cJSON_ArrayForEach(req, arr)
    {
        const char *path = jstr(req, "path");
        if (strcmp(path, "/_mock/reset") == 0) {
            cJSON_Delete(bodies);
            bodies = cJSON_CreateArray();
            continue;
        }
        if (strstr(path, "/chat/completions") == NULL)
            continue;
        cJSON *body = cJSON_Parse(jstr(req, "body"));
        assert_non_null(body);
        cJSON_AddItemToArray(bodies, body);
    }
    cJSON_Delete(arr);
    return bodies;
}

/* The content of the last message with role in a chat request body. */
static const char *last_content(const cJSON *body, const char *role)
{
    const char *found = NULL;
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(body, "messages"))
    {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (strcmp(jstr(m, "role"), role) == 0 && cJSON_IsString(c))
            found = c->valuestring;
    }
    if (found == NULL)
        fail_msg("a chat request without a %s message", role);
    return found;
}

/* memchat memory stats --json: how many memories tenant "default" holds. */
static double memories_held(void)
{
    struct run r;
    RUN(&r, NULL, "memory", "stats", "--json");
    expect_exit(&r, 0, "memory stats");
    cJSON *arr = json_lines(r.out);
    double n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        n += cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(it, "count"));
    }
    cJSON_Delete(arr);
    run_free(&r);
    return n;
}

/* 1. `memchat agents` lists the four shipped agents; --json gives one
 * object per line with every documented field; a malformed user file is a
 * warning on stderr naming the file and the field, with exit 0 and the
 * others still listed; a user file named like a shipped agent replaces it
 * (source "user", overrides true). */
static void agents_lists_shipped_and_user_agents(void **state)
{
    (void)state;
    struct run r;
    RUN(&r, NULL, "agents");
    expect_exit(&r, 0, "agents");
    for (size_t i = 0; i < 4; i++) {
        char want[64];
        snprintf(want, sizeof want, "\n%s ", shipped[i]);
        expect_in(r.out, want, "the agents table");
    }
    assert_string_equal(r.err, "");
    run_free(&r);

    RUN(&r, NULL, "agents", "--json");
    expect_exit(&r, 0, "agents --json");
    cJSON *arr = json_lines(r.out);
    assert_int_equal(cJSON_GetArraySize(arr), 4);
    for (size_t i = 0; i < 4; i++) {
        const cJSON *a = find_named(arr, shipped[i]);
        if (a == NULL)
            fail_msg("agents --json lacks %s:\n%s", shipped[i], r.out);
        for (size_t f = 0; f < sizeof agent_fields / sizeof *agent_fields; f++)
            if (cJSON_GetObjectItemCaseSensitive(a, agent_fields[f]) == NULL)
                fail_msg("agent %s lacks field %s", shipped[i], agent_fields[f]);
        assert_string_equal(jstr(a, "source"), "shipped");
        assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(a, "overrides")));
    }
    /* The planner is the three-step agent of the issue. */
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(find_named(arr, "planner"), "steps");
    assert_int_equal(cJSON_GetArraySize(steps), 3);
    static const char *const step_names[] = {"understand", "plan", "check"};
    static const char *const step_formats[] = {"text", "json", "json"};
    for (int i = 0; i < 3; i++) {
        assert_string_equal(jstr(cJSON_GetArrayItem(steps, i), "name"), step_names[i]);
        assert_string_equal(jstr(cJSON_GetArrayItem(steps, i), "format"), step_formats[i]);
    }
    cJSON_Delete(arr);
    run_free(&r);

    write_agent("broken", "{\"name\": \"broken\", \"system_prompt\": \"Be broken.\", "
                          "\"temperature\": \"hot\"}");
    write_agent("quality", "{\"name\": \"quality\", \"description\": \"My own reviewer\", "
                           "\"system_prompt\": \"Review it my way.\"}");
    RUN(&r, NULL, "agents", "--json");
    expect_exit(&r, 0, "agents --json with a broken file");
    expect_in(r.err, "broken.json", "the warning");
    expect_in(r.err, "temperature", "the warning");
    arr = json_lines(r.out);
    assert_int_equal(cJSON_GetArraySize(arr), 4);
    assert_null(find_named(arr, "broken"));
    for (size_t i = 0; i < 4; i++) {
        const cJSON *a = find_named(arr, shipped[i]);
        assert_non_null(a);
        bool mine = strcmp(shipped[i], "quality") == 0;
        assert_string_equal(jstr(a, "source"), mine ? "user" : "shipped");
        assert_int_equal(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "overrides")), mine);
    }
    const cJSON *q = find_named(arr, "quality");
    assert_string_equal(jstr(q, "description"), "My own reviewer");
    assert_string_equal(jstr(q, "system_prompt"), "Review it my way.");
    expect_in(jstr(q, "path"), fx.cfgdir, "the user agent's path");
    cJSON_Delete(arr);
    run_free(&r);

    /* The table says the same, and marks the replaced agent. */
    RUN(&r, NULL, "agents");
    expect_exit(&r, 0, "agents with a broken file");
    expect_in(r.err, "broken.json", "the warning");
    expect_in(r.out, "My own reviewer", "the agents table");
    expect_in(r.out, "user*", "the agents table");
    assert_null(strstr(r.out, "\nbroken "));
    run_free(&r);
}

/* 2. The planner offline: three turns, each its own turn id with the step
 * {index, of, name, run} in turn.start (run: the first turn's id), each
 * with one turn.done and one store report before ask exits; steps 2 and 3
 * continue the conversation step 1 opened, and the conversation holds the
 * three turns. Plain output heads each step "[step i of 3: name]". The
 * JSON of step 2 reaches step 3 minified: step 3's offline JSON reply
 * quotes its message, which holds step 2's reply without its indentation. */
static void the_planner_runs_three_steps_in_one_conversation(void **state)
{
    (void)state;
    /* JSON inside outgoing messages is left as it is, so what step 3
     * receives is what the run handed it. */
    static const char *const env[] = {"MEMCHAT_MINIFY_JSON=false", NULL};
    struct run r;
    RUNE(&r, NULL, env, "ask", "--agent", "planner", "--json", "Plan a team offsite in May");
    expect_exit(&r, 0, "ask --agent planner --json");
    static struct mc_event *evs[MAX_EVENTS];
    size_t n = parse_events(r.out, evs, MAX_EVENTS);
    struct turns t;
    collect_turns(evs, n, &t);
    assert_int_equal(t.n, 3);
    static const char *const names[] = {"understand", "plan", "check"};
    static struct mc_event *sub[MAX_EVENTS];
    for (size_t i = 0; i < 3; i++) {
        const struct mc_event *s = t.start[i];
        assert_int_equal((int)step_num(s, "index"), (int)i + 1);
        assert_int_equal((int)step_num(s, "of"), 3);
        assert_string_equal(step_str(s, "name"), names[i]);
        assert_string_equal(step_str(s, "run"), t.start[0]->turn);
        assert_string_equal(mc_event_str(s, "agent", ""), "planner");
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(s->turn, t.start[j]->turn);
        /* one turn.done and one memory.stored/skipped (stage store) each,
         * all printed before ask exited */
        size_t k = events_of(evs, n, s->turn, sub, MAX_EVENTS);
        check_turn_contract(sub, k);
    }
    /* Step 1 opens a conversation; steps 2 and 3 continue that one. */
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(t.start[0]->json, "conversation")));
    const char *conv = mc_event_str(t.start[1], "conversation", "");
    assert_true(uuid_valid(conv));
    assert_string_equal(mc_event_str(t.start[2], "conversation", ""), conv);

    /* Step 2's reply is JSON written with indentation; step 3's message
     * quotes it minified (the offline provider folds whitespace runs to one
     * space, so unminified JSON would show as '{ "offline": true'). */
    char *plan = reply_of(evs, n, t.start[1]->turn);
    assert_non_null(strchr(plan, '\n'));
    char *plan_min = minify(plan);
    assert_string_not_equal(plan, plan_min);
    char *check = reply_of(evs, n, t.start[2]->turn);
    cJSON *check_json = cJSON_Parse(check);
    if (check_json == NULL)
        fail_msg("step 3's reply is not JSON: %s", check);
    const char *msg = jstr(check_json, "message");
    const char *mark = "The previous step (\"plan\") answered: ";
    const char *quoted = strstr(msg, mark);
    if (quoted == NULL)
        fail_msg("step 3's message does not quote step 2: %s", msg);
    quoted += strlen(mark);
    size_t qlen = strlen(quoted);
    static const char ellipsis[] = "\xe2\x80\xa6"; /* the offline summary's cut mark */
    if (qlen >= 3 && strcmp(quoted + qlen - 3, ellipsis) == 0)
        qlen -= 3;
    assert_true(qlen >= 20);
    assert_null(memchr(quoted, '\t', qlen));
    assert_null(memchr(quoted, '\n', qlen));
    if (strncmp(quoted, plan_min, qlen) != 0)
        fail_msg("step 3 got '%.*s', not step 2's JSON minified: %s", (int)qlen, quoted, plan_min);
    cJSON_Delete(check_json);
    free(check);
    free(plan_min);
    free(plan);
    char *conv_id = strdup(conv);
    free_events(evs, n);
    run_free(&r);

    RUN(&r, NULL, "conversations", "--json");
    expect_exit(&r, 0, "conversations --json");
    cJSON *arr = json_lines(r.out);
    assert_int_equal(cJSON_GetArraySize(arr), 1);
    const cJSON *c = cJSON_GetArrayItem(arr, 0);
    assert_string_equal(jstr(c, "id"), conv_id);
    assert_string_equal(jstr(c, "agent"), "planner");
    assert_int_equal((int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(c, "turns")), 3);
    cJSON_Delete(arr);
    free(conv_id);
    run_free(&r);

    RUN(&r, NULL, "ask", "--agent", "planner", "Plan a team offsite in May");
    expect_exit(&r, 0, "ask --agent planner");
    const char *s1 = strstr(r.out, "[step 1 of 3: understand]");
    const char *s2 = strstr(r.out, "[step 2 of 3: plan]");
    const char *s3 = strstr(r.out, "[step 3 of 3: check]");
    if (s1 == NULL || s2 == NULL || s3 == NULL || !(s1 < s2 && s2 < s3))
        fail_msg("the step headings are missing or out of order:\n%s", r.out);
    run_free(&r);
}

/* 3. An agent with "memory": false turns memory off for its turns by rule
 * "agent": nothing is recalled, and the turn stores nothing (memory.skipped
 * memory_off); the same question to the default agent stores, so the
 * agent's switch is what made the difference. */
static void an_agent_without_memory_stores_nothing(void **state)
{
    (void)state;
    write_agent("quiet", "{\"name\": \"quiet\", \"system_prompt\": \"You keep no notes.\", "
                         "\"memory\": false}");
    struct run r;
    RUN(&r, NULL, "ask", "--agent", "quiet", "--json", "My locker code is 4417");
    expect_exit(&r, 0, "ask --agent quiet");
    static struct mc_event *evs[MAX_EVENTS];
    size_t n = parse_events(r.out, evs, MAX_EVENTS);
    check_turn_contract(evs, n);
    assert_string_equal(mc_event_str(evs[0], "agent", ""), "quiet");
    assert_false(mc_event_bool(evs[0], "memory", true));
    const struct mc_event *ro = must_event(evs, n, MC_EV_ROLLOUT);
    assert_false(mc_event_bool(ro, "memory", true));
    assert_string_equal(mc_event_str(ro, "reason", ""), "agent");
    assert_null(find_event(evs, n, MC_EV_MEMORY_RETRIEVED));
    assert_null(find_event(evs, n, MC_EV_MEMORY_STORED));
    const struct mc_event *sk = must_event(evs, n, MC_EV_MEMORY_SKIPPED);
    assert_string_equal(mc_event_str(sk, "stage", ""), "store");
    assert_string_equal(mc_event_str(sk, "reason", ""), "memory_off");
    free_events(evs, n);
    run_free(&r);
    assert_true(memories_held() == 0);

    RUN(&r, NULL, "ask", "--json", "My locker code is 4417");
    expect_exit(&r, 0, "ask with the default agent");
    n = parse_events(r.out, evs, MAX_EVENTS);
    check_turn_contract(evs, n);
    assert_true(mc_event_bool(must_event(evs, n, MC_EV_ROLLOUT), "memory", false));
    must_event(evs, n, MC_EV_MEMORY_STORED);
    free_events(evs, n);
    run_free(&r);
    assert_true(memories_held() >= 1);
}

/* 4. "memory_scope": "agent": the agent recalls only what was stored under
 * its own name. A memory added with --agent other is not recalled by its
 * turn, one added with --agent scoped is (the offline reply quotes the best
 * recalled note after "From memory: "); the default agent, whose scope is
 * the whole tenant, does recall the other one. */
static void an_agent_scoped_memory_recalls_only_its_own(void **state)
{
    (void)state;
    write_agent("scoped", "{\"name\": \"scoped\", \"system_prompt\": \"You keep to yourself.\", "
                          "\"memory_scope\": \"agent\"}");
    struct run r;
    RUN(&r, NULL, "memory", "add", "--agent", "other", "The blue falcon deadline is Friday.");
    expect_exit(&r, 0, "memory add --agent other");
    run_free(&r);
    RUN(&r, NULL, "memory", "add", "--agent", "scoped", "The red heron deadline is Monday.");
    expect_exit(&r, 0, "memory add --agent scoped");
    run_free(&r);

    /* The default agent's scope is the whole tenant: it recalls the other
     * agent's memory (asked first, so that only the two memories above
     * compete). */
    RUN(&r, NULL, "ask", "When is the blue falcon deadline?");
    expect_exit(&r, 0, "ask (falcon, tenant scope)");
    expect_in(r.out, "From memory: The blue falcon deadline is Friday.", "the tenant-wide reply");
    run_free(&r);

    RUN(&r, NULL, "ask", "--agent", "scoped", "When is the red heron deadline?");
    expect_exit(&r, 0, "ask --agent scoped (heron)");
    expect_in(r.out, "From memory: The red heron deadline is Monday.", "the scoped reply");
    run_free(&r);

    RUN(&r, NULL, "ask", "--agent", "scoped", "When is the blue falcon deadline?");
    expect_exit(&r, 0, "ask --agent scoped (falcon)");
    assert_null(strstr(r.out, "falcon deadline is Friday"));
    run_free(&r);
}

/* 5. Against the mock server, an agent file's provider and model pick the
 * server: a two-step text agent sends both steps to it, each with its step
 * in the system prompt, and the second step's message (echoed back) holds
 * 'The previous step ("first") answered:' and then the first reply. */
static void a_two_step_agent_hands_its_reply_to_the_server(void **state)
{
    (void)state;
    write_agent("duo", "{\"name\": \"duo\", \"system_prompt\": \"You are duo.\", "
                       "\"provider\": \"openai\", \"model\": \"mock\", \"steps\": ["
                       "{\"name\": \"first\", \"prompt\": \"Do the first part.\"}, "
                       "{\"name\": \"second\", \"prompt\": \"Do the second part.\"}]}");
    struct run r;
    RUNE(&r, NULL, net_env(), "ask", "--agent", "duo", "--json", "hello duo");
    expect_exit(&r, 0, "ask --agent duo");
    static struct mc_event *evs[MAX_EVENTS];
    size_t n = parse_events(r.out, evs, MAX_EVENTS);
    struct turns t;
    collect_turns(evs, n, &t);
    assert_int_equal(t.n, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_string_equal(mc_event_str(t.start[i], "provider", ""), "openai");
        assert_string_equal(mc_event_str(t.start[i], "model", ""), "mock");
        assert_int_equal((int)step_num(t.start[i], "index"), (int)i + 1);
    }
    char *first = reply_of(evs, n, t.start[0]->turn);
    char *second = reply_of(evs, n, t.start[1]->turn);
    assert_string_equal(first, "mock reply: hello duo");
    char want[512];
    snprintf(want, sizeof want, "The previous step (\"first\") answered:\n%s", first);
    expect_in(second, want, "the second step's reply");
    assert_true(strncmp(second, "mock reply: hello duo", 21) == 0);

    cJSON *bodies = chat_requests();
    assert_int_equal(cJSON_GetArraySize(bodies), 2);
    expect_in(last_content(cJSON_GetArrayItem(bodies, 0), "system"), "step 1 of 2 (\"first\")",
              "the first request's system prompt");
    expect_in(last_content(cJSON_GetArrayItem(bodies, 1), "system"), "step 2 of 2 (\"second\")",
              "the second request's system prompt");
    expect_in(last_content(cJSON_GetArrayItem(bodies, 1), "user"), want,
              "the second request's message");
    cJSON_Delete(bodies);
    free(first);
    free(second);
    free_events(evs, n);
    run_free(&r);
}

/* 6. A json step whose reply is prose fails the run: exit 3, an error event
 * saying the reply is not JSON, and no later step starts (nor reaches the
 * server). */
static void a_json_step_answered_in_prose_stops_the_run(void **state)
{
    (void)state;
    write_agent("strict", "{\"name\": \"strict\", \"system_prompt\": \"You are strict.\", "
                          "\"provider\": \"openai\", \"model\": \"mock\", \"steps\": ["
                          "{\"name\": \"draft\", \"prompt\": \"Draft it.\"}, "
                          "{\"name\": \"shape\", \"prompt\": \"Shape it.\", \"format\": \"json\"}, "
                          "{\"name\": \"after\", \"prompt\": \"Never reached.\"}]}");
    struct run r;
    RUNE(&r, NULL, net_env(), "ask", "--agent", "strict", "--json", "hello strict");
    expect_exit(&r, 3, "ask --agent strict");
    static struct mc_event *evs[MAX_EVENTS];
    size_t n = parse_events(r.out, evs, MAX_EVENTS);
    struct turns t;
    collect_turns(evs, n, &t);
    assert_int_equal(t.n, 2);
    assert_string_equal(step_str(t.start[1], "name"), "shape");
    assert_null(event_of(evs, n, t.start[0]->turn, MC_EV_ERROR));
    const struct mc_event *e = event_of(evs, n, t.start[1]->turn, MC_EV_ERROR);
    if (e == NULL)
        fail_msg("the json step has no error event:\n%s", r.out);
    assert_string_equal(mc_event_str(e, "code", ""), "provider");
    expect_in(mc_event_str(e, "message", ""), "not JSON", "the error message");
    static struct mc_event *sub[MAX_EVENTS];
    check_turn_contract(sub, events_of(evs, n, t.start[1]->turn, sub, MAX_EVENTS));
    cJSON *bodies = chat_requests();
    assert_int_equal(cJSON_GetArraySize(bodies), 2);
    cJSON_Delete(bodies);
    free_events(evs, n);
    run_free(&r);

    /* Plain mode says why on stderr, with the same exit code. */
    RUNE(&r, NULL, net_env(), "ask", "--agent", "strict", "hello strict");
    expect_exit(&r, 3, "ask --agent strict (plain)");
    expect_in(r.err, "not JSON", "stderr");
    assert_null(strstr(r.out, "[step 3 of 3"));
    run_free(&r);
}

/* 7. A json step whose reply is JSON (the mock's "json" behaviour, written
 * indented) passes, and the next step's message, echoed by the mock, holds
 * that JSON minified after 'The previous step ("shape") answered:'; alike
 * when the reply streams and when it comes whole (MEMCHAT_STREAM=false). */
static void a_json_step_hands_its_json_on_minified(void **state)
{
    (void)state;
    write_agent("jsonic", "{\"name\": \"jsonic\", \"system_prompt\": \"You are jsonic.\", "
                          "\"provider\": \"openai\", \"model\": \"mock:json\", \"steps\": ["
                          "{\"name\": \"shape\", \"prompt\": \"Shape it.\", \"format\": \"json\"}, "
                          "{\"name\": \"after\", \"prompt\": \"Use it.\"}]}");
    for (int whole = 0; whole < 2; whole++) {
        mock_reset(mock);
        const char *env[8];
        size_t ne = 0;
        for (const char *const *e = net_env(); *e != NULL; e++)
            env[ne++] = *e;
        env[ne++] = whole ? "MEMCHAT_STREAM=false" : "MEMCHAT_STREAM=true";
        env[ne] = NULL;
        struct run r;
        RUNE(&r, NULL, env, "ask", "--agent", "jsonic", "--json", "hello jsonic");
        expect_exit(&r, 0, "ask --agent jsonic");
        static struct mc_event *evs[MAX_EVENTS];
        size_t n = parse_events(r.out, evs, MAX_EVENTS);
        struct turns t;
        collect_turns(evs, n, &t);
        assert_int_equal(t.n, 2);
        assert_null(find_event(evs, n, MC_EV_ERROR));
        char *shape = reply_of(evs, n, t.start[0]->turn);
        cJSON *shape_json = cJSON_Parse(shape);
        if (shape_json == NULL)
            fail_msg("the mock's json reply is not JSON: %s", shape);
        assert_string_equal(jstr(shape_json, "mock"), "reply");
        assert_string_equal(jstr(shape_json, "message"), "hello jsonic");
        cJSON_Delete(shape_json);
        char *shape_min = minify(shape);
        assert_string_not_equal(shape, shape_min); /* the mock indents it */

        char *after = reply_of(evs, n, t.start[1]->turn);
        cJSON *after_json = cJSON_Parse(after);
        if (after_json == NULL)
            fail_msg("the second step's reply is not the mock's JSON: %s", after);
        const char *msg = jstr(after_json, "message");
        const char *mark = "The previous step (\"shape\") answered:";
        const char *quoted = strstr(msg, mark);
        if (quoted == NULL)
            fail_msg("the second step's message does not quote the first: %s", msg);
        quoted += strlen(mark);
        while (*quoted == '\n' || *quoted == ' ')
            quoted++;
        assert_string_equal(quoted, shape_min);
        cJSON_Delete(after_json);
        free(after);
        free(shape_min);
        free(shape);

        cJSON *bodies = chat_requests();
        assert_int_equal(cJSON_GetArraySize(bodies), 2);
        for (int i = 0; i < 2; i++) {
            const cJSON *body = cJSON_GetArrayItem(bodies, i);
            assert_string_equal(jstr(body, "model"), "mock:json");
            assert_int_equal(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "stream")),
                             !whole);
        }
        cJSON_Delete(bodies);
        free_events(evs, n);
        run_free(&r);
    }
}

/* The line of out that starts with prefix, as a new string, or NULL. */
static char *line_starting(const char *out, const char *prefix)
{
    for (const char *p = out; p != NULL && *p != '\0';) {
        size_t len = strcspn(p, "\n");
        if (strncmp(p, prefix, strlen(prefix)) == 0)
            return strndup(p, len);
        p += len;
        if (*p == '\n')
            p++;
    }
    return NULL;
}

/* 8. ask --compare runs the question with memory on and off: the plain
 * output puts MEMORY ON and MEMORY OFF side by side with a latency, a
 * tokens and a cost row for each; with --json the last line is the
 * comparison, where only the memory-on reply recalled and quotes the
 * memory; the memory-off turn's rollout names the session. --compare
 * excludes --no-memory (exit 2). */
static void compare_shows_memory_on_and_off_side_by_side(void **state)
{
    (void)state;
    struct run r;
    RUN(&r, NULL, "memory", "add", "The Apollo launch review is on Thursday at ten.");
    expect_exit(&r, 0, "memory add");
    run_free(&r);

    RUN(&r, NULL, "ask", "--compare", "--json", "When is the Apollo launch review?");
    expect_exit(&r, 0, "ask --compare --json");
    const char *last = r.out + strlen(r.out);
    assert_true(last > r.out && last[-1] == '\n');
    last--;
    while (last > r.out && last[-1] != '\n')
        last--;
    cJSON *o = cJSON_Parse(last);
    if (o == NULL)
        fail_msg("the last line is not JSON: %s", last);
    const cJSON *cmp = cJSON_GetObjectItemCaseSensitive(o, "compare");
    const cJSON *on = cJSON_GetObjectItemCaseSensitive(cmp, "memory_on");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(cmp, "memory_off");
    assert_true(cJSON_IsObject(on) && cJSON_IsObject(off));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(on, "recalled")));
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(off, "recalled")));
    expect_in(jstr(on, "reply"), "Thursday at ten", "the memory-on reply");
    assert_null(strstr(jstr(off, "reply"), "Thursday at ten"));
    static const char *const figures[] = {"latency_ms", "prompt_tokens", "completion_tokens"};
    for (size_t i = 0; i < 3; i++) {
        assert_true(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(on, figures[i])));
        assert_true(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(off, figures[i])));
    }
    assert_non_null(cJSON_GetObjectItemCaseSensitive(on, "usd"));
    assert_non_null(cJSON_GetObjectItemCaseSensitive(off, "usd"));
    cJSON_Delete(o);
    /* The lines before it are the two turns' events: on, then off. */
    r.out[last - r.out] = '\0';
    static struct mc_event *evs[MAX_EVENTS];
    size_t n = parse_events(r.out, evs, MAX_EVENTS);
    struct turns t;
    collect_turns(evs, n, &t);
    assert_int_equal(t.n, 2);
    assert_true(mc_event_bool(t.start[0], "memory", false));
    assert_false(mc_event_bool(t.start[1], "memory", true));
    const struct mc_event *ro = event_of(evs, n, t.start[1]->turn, MC_EV_ROLLOUT);
    assert_non_null(ro);
    assert_string_equal(mc_event_str(ro, "reason", ""), "session");
    free_events(evs, n);
    run_free(&r);

    RUN(&r, NULL, "ask", "--compare", "When is the Apollo launch review?");
    expect_exit(&r, 0, "ask --compare");
    char *head = line_starting(r.out, "MEMORY ON");
    if (head == NULL)
        fail_msg("no MEMORY ON heading:\n%s", r.out);
    expect_in(head, "MEMORY OFF", "the heading line");
    free(head);
    /* (the columns wrap, so one word of the memory is looked for) */
    expect_in(r.out, "Thursday", "the memory-on column");
    static const char *const rows[] = {"latency ", "tokens in ", "cost"};
    for (size_t i = 0; i < 3; i++) {
        char *row = line_starting(r.out, rows[i]);
        if (row == NULL)
            fail_msg("no %s row:\n%s", rows[i], r.out);
        /* the memory-off figure sits beside the memory-on one */
        const char *bar = strstr(row, "\xe2\x94\x82 ");
        assert_non_null(bar);
        expect_in(bar, rows[i], "the memory-off column");
        free(row);
    }
    run_free(&r);

    RUN(&r, NULL, "ask", "--compare", "--no-memory", "When is the Apollo launch review?");
    expect_exit(&r, 2, "ask --compare --no-memory");
    expect_in(r.err, "--no-memory", "the usage error");
    assert_string_equal(r.out, "");
    run_free(&r);
}

/* 9. An unknown agent is refused before any turn: exit 2, and the message
 * names the agents there are, the user's own included. */
static void an_unknown_agent_exits_2_naming_the_known_ones(void **state)
{
    (void)state;
    write_agent("mine", "{\"name\": \"mine\", \"system_prompt\": \"You are mine.\"}");
    struct run r;
    RUN(&r, NULL, "ask", "--agent", "nobody", "hello");
    expect_exit(&r, 2, "ask --agent nobody");
    expect_in(r.err, "nobody", "the message");
    for (size_t i = 0; i < 4; i++)
        expect_in(r.err, shipped[i], "the message");
    expect_in(r.err, "mine", "the message");
    assert_string_equal(r.out, "");
    run_free(&r);
    RUN(&r, NULL, "conversations", "--json");
    expect_exit(&r, 0, "conversations --json");
    assert_string_equal(r.out, "");
    run_free(&r);
}

static int agents_cli_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(agents_lists_shipped_and_user_agents, case_setup, teardown),
        cmocka_unit_test_setup_teardown(the_planner_runs_three_steps_in_one_conversation,
                                        case_setup, teardown),
        cmocka_unit_test_setup_teardown(an_agent_without_memory_stores_nothing, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(an_agent_scoped_memory_recalls_only_its_own, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_two_step_agent_hands_its_reply_to_the_server, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_json_step_answered_in_prose_stops_the_run, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_json_step_hands_its_json_on_minified, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(compare_shows_memory_on_and_off_side_by_side, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(an_unknown_agent_exits_2_naming_the_known_ones, case_setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

int main(void)
{
    return harness_without_terminal(agents_cli_tests);
}
