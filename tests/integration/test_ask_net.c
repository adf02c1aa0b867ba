/*
 * memchat ask against real HTTP servers on loopback: the test server
 * (tests/server/mockllm) speaks OpenAI, Anthropic and Ollama and misbehaves
 * on request. These cases run the program end to end and check what a user
 * relies on: the reply, the retry events and their delays, the exit codes,
 * cancel with Ctrl-C during a stalled stream, and that a key never shows up
 * in any output or file.
 */
#include "cli_harness.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "../server/mockserver.h"

static struct mock *mock;
static char base_openai[256], base_anthropic[256], base_ollama[256];

#define KEY_OPENAI    "sk-canary-openai-5f1e2d3c4b5a"
#define KEY_ANTHROPIC "sk-ant-canary-9a8b7c6d5e4f"

static int group_setup(void **state)
{
    (void)state;
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

static int case_setup(void **state)
{
    mock_reset(mock);
    return setup(state);
}

/* The environment of a run against the mock: all three base URLs and both
 * keys, so every provider is reachable. */
static const char *const *net_env(void)
{
    static const char *env[8];
    env[0] = base_openai;
    env[1] = base_anthropic;
    env[2] = base_ollama;
    env[3] = "OPENAI_API_KEY=" KEY_OPENAI;
    env[4] = "ANTHROPIC_API_KEY=" KEY_ANTHROPIC;
    env[5] = "MEMCHAT_MAX_RETRIES=2";
    env[6] = NULL;
    return env;
}

#define ASK(r, ...)                                   \
    do {                                              \
        const char *const a_[] = {__VA_ARGS__, NULL}; \
        run_memchat((r), NULL, net_env(), a_);        \
    } while (0)

/* The events of r's stdout, checked against the turn contract. */
static size_t turn_events(const struct run *r, struct mc_event **evs, size_t max)
{
    size_t n = parse_events(r->out, evs, max);
    check_turn_contract(evs, n);
    return n;
}

static size_t count_kind(struct mc_event **evs, size_t n, enum mc_event_kind k)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += evs[i]->kind == k;
    return c;
}

/* Each provider streams the mock's reply through ask. */
static void each_provider_answers_through_ask(void **state)
{
    (void)state;
    static const char *const providers[] = {"openai", "anthropic", "ollama"};
    for (size_t i = 0; i < 3; i++) {
        struct run r;
        ASK(&r, "ask", "--provider", providers[i], "--model", "mock", "--no-memory", "hello there");
        if (r.status != 0)
            fail_msg("%s: exit %d: %s", providers[i], r.status, r.err);
        assert_string_equal(r.out, "mock reply: hello there\n");
        run_free(&r);
    }
}

/* ask --json with a real provider: provider and model in turn.start, the
 * server's usage (not an estimate), and a null cost for an unpriced model. */
static void json_events_carry_the_providers_usage(void **state)
{
    (void)state;
    struct run r;
    ASK(&r, "ask", "--json", "--provider", "openai", "--model", "mock", "hi");
    assert_int_equal(r.status, 0);
    struct mc_event *evs[256] = {0};
    size_t n = turn_events(&r, evs, 256);
    assert_string_equal(mc_event_str(evs[0], "provider", ""), "openai");
    assert_string_equal(mc_event_str(evs[0], "model", ""), "mock");
    const struct mc_event *u = must_event(evs, n, MC_EV_USAGE);
    assert_false(mc_event_bool(u, "estimated", true));
    assert_true(mc_event_num(u, "completion_tokens", -1) > 0);
    const struct mc_event *c = must_event(evs, n, MC_EV_COST);
    assert_non_null(cJSON_GetObjectItemCaseSensitive(c->json, "usd"));
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(c->json, "usd")));
    free_events(evs, n);
    run_free(&r);
}

/* MEMCHAT_STREAM=false asks every provider for one whole answer: the
 * request says stream false and the reply is the same text. */
static void stream_false_asks_for_one_whole_answer(void **state)
{
    (void)state;
    static const char *const providers[] = {"openai", "anthropic", "ollama"};
    for (size_t i = 0; i < 3; i++) {
        mock_reset(mock);
        struct run r;
        ASK(&r, "ask", "--set", "MEMCHAT_STREAM=false", "--provider", providers[i], "--model",
            "mock", "whole please");
        if (r.status != 0)
            fail_msg("%s: exit %d: %s", providers[i], r.status, r.err);
        assert_string_equal(r.out, "mock reply: whole please\n");
        cJSON *arr = NULL;
        size_t n = mock_requests(mock, &arr);
        const cJSON *last = cJSON_GetArrayItem(arr, (int)n - 1);
        const cJSON *raw = cJSON_GetObjectItemCaseSensitive(last, "body");
        assert_true(cJSON_IsString(raw));
        cJSON *body = cJSON_Parse(raw->valuestring);
        assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(body, "stream")));
        cJSON_Delete(body);
        cJSON_Delete(arr);
        run_free(&r);
    }
}

/* A priced model's cost event is usage × the shipped price (gpt-4o-mini:
 * 0.15 in, 0.60 out per million), an unpriced one's is null, and
 * `memchat costs` adds up exactly the turns that ran, per model. */
static void costs_follow_the_price_table_and_add_up(void **state)
{
    (void)state;
    struct run r;
    struct mc_event *evs[256] = {0};
    ASK(&r, "ask", "--json", "--provider", "openai", "--model", "gpt-4o-mini", "hi");
    assert_int_equal(r.status, 0);
    size_t n = turn_events(&r, evs, 256);
    const struct mc_event *u = must_event(evs, n, MC_EV_USAGE);
    double in = mc_event_num(u, "prompt_tokens", -1),
           out = mc_event_num(u, "completion_tokens", -1);
    assert_true(in > 0 && out > 0);
    double want = (in * 0.15 + out * 0.60) / 1e6;
    double usd = mc_event_num(must_event(evs, n, MC_EV_COST), "usd", -1);
    assert_true(usd > 0 && fabs(usd - want) < 1e-12);
    free_events(evs, n);
    run_free(&r);
    for (int i = 0; i < 2; i++) {
        ASK(&r, "ask", "--provider", "openai", "--model", "mock", "again");
        assert_int_equal(r.status, 0);
        run_free(&r);
    }
    ASK(&r, "costs", "--by", "model", "--json");
    assert_int_equal(r.status, 0);
    int seen = 0;
    char *copy = strdup(r.out), *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *o = cJSON_Parse(line);
        assert_non_null(o);
        const cJSON *key = cJSON_GetObjectItemCaseSensitive(o, "key");
        const cJSON *turns = cJSON_GetObjectItemCaseSensitive(o, "turns");
        const cJSON *sum = cJSON_GetObjectItemCaseSensitive(o, "usd");
        if (cJSON_IsString(key) && strcmp(key->valuestring, "gpt-4o-mini") == 0) {
            assert_int_equal((int)turns->valuedouble, 1);
            assert_true(fabs(sum->valuedouble - want) < 1e-12);
            seen++;
        } else if (cJSON_IsString(key) && strcmp(key->valuestring, "mock") == 0) {
            assert_int_equal((int)turns->valuedouble, 2);
            assert_true(cJSON_IsNull(sum)); /* no price: never 0 */
            seen++;
        }
        cJSON_Delete(o);
    }
    free(copy);
    assert_int_equal(seen, 2);
    run_free(&r);
}

/* JSON inside the message is minified before it is sent: the server
 * receives it without insignificant whitespace (strings untouched), a
 * minify event counts the bytes, and the ledger sums them for costs;
 * MEMCHAT_MINIFY_JSON=false sends it as written. */
static void json_in_messages_is_minified_before_sending(void **state)
{
    (void)state;
    const char *msg = "check this:\n```json\n{\n  \"a\": [1, 2],\n  \"s\": \"x  y\"\n}\n```";
    const char *want = "{\"a\":[1,2],\"s\":\"x  y\"}";
    struct run r;
    ASK(&r, "ask", "--json", "--no-memory", "--provider", "openai", "--model", "mock", msg);
    assert_int_equal(r.status, 0);
    struct mc_event *evs[256] = {0};
    size_t n = turn_events(&r, evs, 256);
    const struct mc_event *m = must_event(evs, n, MC_EV_MINIFY);
    double saved = mc_event_num(m, "bytes_before", 0) - mc_event_num(m, "bytes_after", 0);
    assert_true(saved ==
                (double)(strlen("{\n  \"a\": [1, 2],\n  \"s\": \"x  y\"\n}") - strlen(want)));
    cJSON *arr = NULL;
    size_t nr = mock_requests(mock, &arr);
    const cJSON *raw =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(arr, (int)nr - 1), "body");
    assert_true(cJSON_IsString(raw));
    cJSON *body = cJSON_Parse(raw->valuestring);
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(body, "messages");
    const cJSON *last = cJSON_GetArrayItem(msgs, cJSON_GetArraySize(msgs) - 1);
    const char *sent = cJSON_GetObjectItemCaseSensitive(last, "content")->valuestring;
    assert_non_null(strstr(sent, want));
    assert_non_null(strstr(sent, "```json\n"));
    cJSON_Delete(body);
    cJSON_Delete(arr);
    free_events(evs, n);
    run_free(&r);

    ASK(&r, "costs", "--by", "none", "--json");
    assert_int_equal(r.status, 0);
    cJSON *o = cJSON_Parse(r.out);
    assert_non_null(o);
    assert_true(cJSON_GetObjectItemCaseSensitive(o, "bytes_saved")->valuedouble == saved);
    cJSON_Delete(o);
    run_free(&r);

    ASK(&r, "ask", "--json", "--set", "MEMCHAT_MINIFY_JSON=false", "--provider", "openai",
        "--model", "mock", msg);
    assert_int_equal(r.status, 0);
    n = parse_events(r.out, evs, 256);
    assert_null(find_event(evs, n, MC_EV_MINIFY));
    free_events(evs, n);
    run_free(&r);
}

/* The events of one turn of a chat's output: the ones carrying turn id. */
static size_t events_of(struct mc_event **all, size_t n, const char *turn, struct mc_event **out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(all[i]->turn, turn) == 0)
            out[k++] = all[i];
    return k;
}

/* The response cache: the same question at temperature 0 in one session is
 * answered from the cache (a cache hit event, the same deltas, no second
 * request, cost 0, counted in memchat costs); another tenant asking the
 * same is a miss; without temperature 0 the cache is not consulted. */
static void the_cache_answers_repeats_per_tenant(void **state)
{
    (void)state;
    const char *in = "same question\n/new\nsame question\n/new\n/tenant other\nsame question\n";
    const char *const args[] = {"chat",    "--json", "--no-memory",   "--provider", "openai",
                                "--model", "mock",   "--temperature", "0",          NULL};
    struct run r;
    run_memchat(&r, in, net_env(), args);
    assert_int_equal(r.status, 0);
    struct mc_event *evs[1024] = {0};
    size_t n = parse_events(r.out, evs, 1024);
    const char *turns[3];
    size_t nt = 0;
    for (size_t i = 0; i < n; i++)
        if (evs[i]->kind == MC_EV_TURN_START)
            turns[nt++] = evs[i]->turn;
    assert_int_equal(nt, 3);
    bool want_hit[3] = {false, true, false};
    char *texts[3];
    for (size_t t = 0; t < 3; t++) {
        struct mc_event *tev[256];
        size_t k = events_of(evs, n, turns[t], tev);
        check_turn_contract(tev, k);
        const struct mc_event *c = must_event(tev, k, MC_EV_CACHE);
        assert_int_equal(mc_event_bool(c, "hit", !want_hit[t]), want_hit[t]);
        assert_int_equal(strlen(mc_event_str(c, "key_prefix", "")), 16);
        texts[t] = delta_text(tev, k);
        if (want_hit[t])
            assert_true(mc_event_num(must_event(tev, k, MC_EV_COST), "usd", -1) == 0.0);
    }
    assert_string_equal(texts[0], "mock reply: same question");
    assert_string_equal(texts[1], texts[0]);
    assert_string_equal(texts[2], texts[0]);
    for (size_t t = 0; t < 3; t++)
        free(texts[t]);
    assert_int_equal(mock_count_since_reset(mock), 2); /* the hit sent nothing */
    free_events(evs, n);
    run_free(&r);

    ASK(&r, "costs", "--by", "none", "--json");
    cJSON *o = cJSON_Parse(r.out);
    assert_non_null(o);
    assert_int_equal((int)cJSON_GetObjectItemCaseSensitive(o, "cache_hits")->valuedouble, 1);
    cJSON_Delete(o);
    run_free(&r);

    const char *const plain[] = {"chat", "--json", "--provider", "openai", "--model", "mock", NULL};
    run_memchat(&r, "q\n/new\nq\n", net_env(), plain);
    assert_int_equal(r.status, 0);
    n = parse_events(r.out, evs, 1024);
    assert_null(find_event(evs, n, MC_EV_CACHE));
    free_events(evs, n);
    run_free(&r);
}

/* Runs memchat with the mock's environment plus extra settings. */
static void run_with(struct run *r, const char *in, const char *const *extra,
                     const char *const *args)
{
    const char *const *base = net_env();
    const char *env[24];
    size_t k = 0;
    for (; base[k] != NULL; k++)
        env[k] = base[k];
    for (size_t i = 0; extra[i] != NULL && k < 23; i++)
        env[k++] = extra[i];
    env[k] = NULL;
    run_memchat(r, in, env, args);
}

/* Rate limits: a user's second request in the window is refused at once
 * when no wait is allowed (exit 4, the limit named); with a wait allowed it
 * waits (ratelimit.wait) and then runs; a turn needing more tokens than a
 * bucket holds is refused at once. */
static void rate_limits_refuse_or_wait(void **state)
{
    (void)state;
    struct run r;
    struct mc_event *evs[512] = {0};
    const char *const chat[] = {"chat", "--json", "--provider", "openai", "--model", "mock", NULL};
    const char *const no_wait[] = {"USER_RATE_LIMIT_RPM=1", "RATE_LIMIT_MAX_WAIT_MS=0", NULL};
    run_with(&r, "one\n/new\ntwo\n", no_wait, chat);
    assert_int_equal(r.status, 4);
    size_t n = parse_events(r.out, evs, 512);
    const struct mc_event *e = must_event(evs, n, MC_EV_ERROR);
    assert_string_equal(mc_event_str(e, "code", ""), "rate_limited");
    assert_non_null(strstr(mc_event_str(e, "message", ""), "USER_RATE_LIMIT_RPM"));
    free_events(evs, n);
    run_free(&r);

    const char *const wait[] = {"USER_RATE_LIMIT_RPM=1", "RATE_LIMIT_WINDOW_S=1",
                                "RATE_LIMIT_MAX_WAIT_MS=5000", NULL};
    run_with(&r, "one\n/new\ntwo\n", wait, chat);
    assert_int_equal(r.status, 0);
    n = parse_events(r.out, evs, 512);
    const struct mc_event *w = must_event(evs, n, MC_EV_RATELIMIT_WAIT);
    assert_string_equal(mc_event_str(w, "scope", ""), "user");
    assert_string_equal(mc_event_str(w, "kind", ""), "requests");
    double ms = mc_event_num(w, "wait_ms", -1);
    assert_true(ms > 0 && ms <= 1000);
    assert_null(find_event(evs, n, MC_EV_ERROR));
    free_events(evs, n);
    run_free(&r);

    const char *const tiny[] = {"USER_RATE_LIMIT_TPM=10", NULL};
    const char *const ask[] = {"ask", "--provider", "openai", "--model", "mock", "hello", NULL};
    run_with(&r, NULL, tiny, ask);
    assert_int_equal(r.status, 4);
    assert_non_null(strstr(r.err, "USER_RATE_LIMIT_TPM=10"));
    assert_int_equal(mock_count_since_reset(mock),
                     3); /* two chats' admitted turns; the refused sent nothing */
    run_free(&r);
}

/* Budgets: a turn under a budget sends a budget event (reservation,
 * remaining, reset time); an estimate over the budget is refused with exit
 * 4 naming the budget and its reset; an unpriced model under a budget is
 * refused rather than run at an unknown cost. */
static void budgets_reserve_and_refuse(void **state)
{
    (void)state;
    struct run r;
    struct mc_event *evs[256] = {0};
    const char *const ok[] = {"TENANT_BUDGET_USD=10", NULL};
    const char *const priced[] = {"ask",     "--json",      "--provider", "openai",
                                  "--model", "gpt-4o-mini", "hi",         NULL};
    run_with(&r, NULL, ok, priced);
    assert_int_equal(r.status, 0);
    size_t n = turn_events(&r, evs, 256);
    const struct mc_event *b = must_event(evs, n, MC_EV_BUDGET);
    assert_string_equal(mc_event_str(b, "scope", ""), "tenant");
    double reserved = mc_event_num(b, "reserved_usd", -1);
    assert_true(reserved > 0);
    assert_true(fabs(mc_event_num(b, "remaining_usd", -1) - (10 - reserved)) < 1e-9);
    assert_true(mc_event_num(b, "resets_at", 0) > (double)evs[0]->ts_ms);
    free_events(evs, n);
    run_free(&r);

    const char *const tiny[] = {"USER_BUDGET_USD=0.000001", NULL};
    const char *const ask_priced[] = {"ask",         "--provider", "openai", "--model",
                                      "gpt-4o-mini", "hi",         NULL};
    run_with(&r, NULL, tiny, ask_priced);
    assert_int_equal(r.status, 4);
    assert_non_null(strstr(r.err, "USER_BUDGET_USD"));
    assert_non_null(strstr(r.err, "resets at"));
    run_free(&r);

    const char *const unpriced[] = {"ask", "--provider", "openai", "--model", "mock", "hi", NULL};
    run_with(&r, NULL, ok, unpriced);
    assert_int_equal(r.status, 4);
    assert_non_null(strstr(r.err, "no price"));
    run_free(&r);
    assert_int_equal(mock_count_since_reset(mock), 1); /* only the first turn reached the server */
}

/* memchat limits: an override stored by `limits set` is enforced by later
 * processes for that tenant only, `limits show` reports it, `limits clear`
 * removes it, and bad input is refused with exit 2. */
static void stored_limits_apply_to_later_turns(void **state)
{
    (void)state;
    struct run r;
    const char *const no_wait[] = {"RATE_LIMIT_MAX_WAIT_MS=0", NULL};
    const char *const set[] = {"limits",          "set", "--tenant", "acme", "rpm=1",
                               "budget=0.000001", NULL};
    run_with(&r, NULL, no_wait, set);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "set acme rpm = 1"));
    run_free(&r);

    const char *const show[] = {"limits", "show", "--tenant", "acme", "--json", NULL};
    run_with(&r, NULL, no_wait, show);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "{\"scope\":\"tenant\",\"name\":\"rpm\",\"configured\":0,"
                                  "\"override\":1,\"effective\":1}"));
    run_free(&r);

    /* The budget override refuses a priced model for acme only. */
    const char *const acme[] = {"ask",     "--tenant",    "acme", "--provider", "openai",
                                "--model", "gpt-4o-mini", "hi",   NULL};
    run_with(&r, NULL, no_wait, acme);
    assert_int_equal(r.status, 4);
    assert_non_null(strstr(r.err, "budget"));
    run_free(&r);
    const char *const other[] = {"ask",     "--tenant",    "beta", "--provider", "openai",
                                 "--model", "gpt-4o-mini", "hi",   NULL};
    run_with(&r, NULL, no_wait, other);
    assert_int_equal(r.status, 0);
    run_free(&r);

    /* Without the budget, the rpm override lets one request through a
     * minute and names where it comes from. */
    const char *const clear_budget[] = {"limits", "clear", "--tenant", "acme", "budget", NULL};
    run_with(&r, NULL, no_wait, clear_budget);
    assert_int_equal(r.status, 0);
    run_free(&r);
    const char *const chat[] = {"chat",   "--tenant", "acme", "--provider",
                                "openai", "--model",  "mock", NULL};
    run_with(&r, "one\n/new\ntwo\n", no_wait, chat);
    assert_int_equal(r.status, 4);
    assert_non_null(strstr(r.err, "memchat limits"));
    run_free(&r);

    const char *const clear_all[] = {"limits", "clear", "--tenant", "acme", NULL};
    run_with(&r, NULL, no_wait, clear_all);
    assert_int_equal(r.status, 0);
    run_free(&r);
    run_with(&r, "one\n/new\ntwo\n", no_wait, chat);
    assert_int_equal(r.status, 0);
    run_free(&r);

    const char *const bad[] = {"limits", "set", "rpm=1.5", NULL};
    run_with(&r, NULL, no_wait, bad);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "whole number"));
    run_free(&r);
}

/* A 500 that goes away is retried once, announced by a retry event with the
 * formula's delay, and the turn then succeeds. */
static void a_passing_500_is_retried_with_a_retry_event(void **state)
{
    (void)state;
    struct run r;
    ASK(&r, "ask", "--json", "--provider", "openai", "--model", "mock:500,then=1", "hi");
    assert_int_equal(r.status, 0);
    struct mc_event *evs[256] = {0};
    size_t n = turn_events(&r, evs, 256);
    assert_int_equal(count_kind(evs, n, MC_EV_RETRY), 1);
    const struct mc_event *rt = must_event(evs, n, MC_EV_RETRY);
    assert_int_equal((int)mc_event_num(rt, "attempt", 0), 1);
    assert_int_equal((int)mc_event_num(rt, "status", 0), 500);
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(rt->json, "error")));
    double d = mc_event_num(rt, "delay_ms", -1);
    assert_true(d >= 375 && d <= 500); /* 0.5 s × (1 − 0.25·r) */
    assert_int_equal(count_kind(evs, n, MC_EV_ERROR), 0);
    assert_int_equal(mock_count_since_reset(mock), 2);
    free_events(evs, n);
    run_free(&r);
}

/* The server's retry-after-ms is the delay; a Retry-After over 60 s falls
 * back to the formula. */
static void server_delays_are_honoured_up_to_60_seconds(void **state)
{
    (void)state;
    struct run r;
    struct mc_event *evs[256] = {0};
    ASK(&r, "ask", "--json", "--provider", "openai", "--model", "mock:429-ms,then=1", "hi");
    assert_int_equal(r.status, 0);
    size_t n = turn_events(&r, evs, 256);
    const struct mc_event *rt = must_event(evs, n, MC_EV_RETRY);
    assert_int_equal((int)mc_event_num(rt, "status", 0), 429);
    assert_int_equal((int)mc_event_num(rt, "delay_ms", -1), 150);
    free_events(evs, n);
    run_free(&r);

    ASK(&r, "ask", "--json", "--provider", "anthropic", "--model", "mock:429-long,then=1", "hi");
    assert_int_equal(r.status, 0);
    n = turn_events(&r, evs, 256);
    rt = must_event(evs, n, MC_EV_RETRY);
    assert_true(mc_event_num(rt, "delay_ms", -1) <= 500);
    free_events(evs, n);
    run_free(&r);
}

/* When retries run out, ask exits 3 with the server's own message, the
 * status, and how many retries were made; exactly max+1 requests went out. */
static void exhausted_retries_exit_3_with_the_servers_message(void **state)
{
    (void)state;
    const char *const env[] = {base_openai, "OPENAI_API_KEY=" KEY_OPENAI, "MEMCHAT_MAX_RETRIES=1",
                               NULL};
    const char *const args[] = {"ask", "--provider", "openai", "--model", "mock:500", "hi", NULL};
    struct run r;
    run_memchat(&r, NULL, env, args);
    assert_int_equal(r.status, 3);
    assert_non_null(strstr(r.err, "500"));
    assert_non_null(strstr(r.err, "mock internal error"));
    assert_non_null(strstr(r.err, "gave up after 1 retry"));
    assert_int_equal(mock_count_since_reset(mock), 2);
    run_free(&r);
}

/* A 401 is not retried; the message names the key variable, never the key. */
static void auth_errors_are_final_and_never_show_the_key(void **state)
{
    (void)state;
    struct run r;
    ASK(&r, "ask", "--json", "--provider", "openai", "--model", "mock:401", "hi");
    assert_int_equal(r.status, 3);
    struct mc_event *evs[256] = {0};
    size_t n = turn_events(&r, evs, 256);
    assert_int_equal(count_kind(evs, n, MC_EV_RETRY), 0);
    const struct mc_event *e = must_event(evs, n, MC_EV_ERROR);
    assert_string_equal(mc_event_str(e, "code", ""), "provider");
    assert_non_null(strstr(mc_event_str(e, "message", ""), "OPENAI_API_KEY"));
    assert_null(strstr(r.out, KEY_OPENAI));
    assert_null(strstr(r.err, KEY_OPENAI));
    assert_int_equal(mock_count_since_reset(mock), 1);
    free_events(evs, n);
    run_free(&r);
}

/* A stream that breaks after text was shown is not retried (the user would
 * see the reply start twice): exit 3, code network, one request. */
static void a_broken_stream_after_text_is_not_retried(void **state)
{
    (void)state;
    struct run r;
    ASK(&r, "ask", "--json", "--provider", "openai", "--model", "mock:drop", "hi");
    assert_int_equal(r.status, 3);
    struct mc_event *evs[256] = {0};
    size_t n = turn_events(&r, evs, 256);
    assert_true(count_kind(evs, n, MC_EV_DELTA) > 0);
    assert_int_equal(count_kind(evs, n, MC_EV_RETRY), 0);
    assert_string_equal(mc_event_str(must_event(evs, n, MC_EV_ERROR), "code", ""), "network");
    assert_int_equal(mock_count_since_reset(mock), 1);
    free_events(evs, n);
    run_free(&r);
}

/* A server that is not there: connection errors are retried (error
 * "connect", status null), then ask exits 3. */
static void connection_refused_is_retried_then_exits_3(void **state)
{
    (void)state;
    /* A port that was just bound and closed is (almost certainly) free. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    close(fd);
    char url[128];
    snprintf(url, sizeof url, "OPENAI_BASE_URL=http://127.0.0.1:%d/v1", ntohs(a.sin_port));
    const char *const env[] = {url, "MEMCHAT_MAX_RETRIES=1", NULL};
    const char *const args[] = {"ask", "--json", "--provider", "openai", "hi", NULL};
    struct run r;
    run_memchat(&r, NULL, env, args);
    assert_int_equal(r.status, 3);
    struct mc_event *evs[64] = {0};
    size_t n = turn_events(&r, evs, 64);
    const struct mc_event *rt = must_event(evs, n, MC_EV_RETRY);
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(rt->json, "status")));
    assert_string_equal(mc_event_str(rt, "error", ""), "connect");
    assert_string_equal(mc_event_str(must_event(evs, n, MC_EV_ERROR), "code", ""), "network");
    free_events(evs, n);
    run_free(&r);
}

/* Ctrl-C during a stalled stream ends the turn at once: turn.cancelled with
 * partial text, one turn.done, no delta after the cancel, exit 130. */
static void ctrl_c_during_a_stalled_stream_cancels(void **state)
{
    (void)state;
    const char *const args[] = {"ask",     "--json",     "--provider", "openai",
                                "--model", "mock:stall", "hi",         NULL};
    struct run r;
    run_memchat_signal(&r, NULL, net_env(), args, "\"event\":\"delta\"", SIGINT);
    assert_int_equal(r.status, 130);
    struct mc_event *evs[256] = {0};
    size_t n = turn_events(&r, evs, 256);
    const struct mc_event *c = must_event(evs, n, MC_EV_TURN_CANCELLED);
    assert_true(mc_event_bool(c, "partial", false));
    bool after_cancel = false;
    for (size_t i = 0; i < n; i++) {
        if (evs[i]->kind == MC_EV_TURN_CANCELLED)
            after_cancel = true;
        if (after_cancel)
            assert_int_not_equal(evs[i]->kind, MC_EV_DELTA);
    }
    assert_int_equal(count_kind(evs, n, MC_EV_RETRY), 0);
    free_events(evs, n);
    run_free(&r);
}

/* auto with no key finds a local OpenAI-compatible server and uses its
 * model. */
static void auto_finds_a_local_server(void **state)
{
    (void)state;
    char local[300];
    snprintf(local, sizeof local, "MEMCHAT_LOCAL_BASE_URL=%s/v1", mock_url(mock));
    const char *const env[] = {local, NULL};
    const char *const args[] = {"ask", "--json", "--no-memory", "hi", NULL};
    struct run r;
    run_memchat(&r, NULL, env, args);
    assert_int_equal(r.status, 0);
    struct mc_event *evs[256] = {0};
    size_t n = turn_events(&r, evs, 256);
    assert_string_equal(mc_event_str(evs[0], "provider", ""), "openai");
    assert_string_equal(mc_event_str(evs[0], "model", ""), "mock-model");
    char *text = delta_text(evs, n);
    assert_string_equal(text, "mock reply: hi");
    free(text);
    free_events(evs, n);
    run_free(&r);
}

/* Appends every regular file's content under dir to *all. */
/* The bytes of every file, concatenated. */
struct slurp {
    char *all;
    size_t len;
};

static bool slurp_file(void *ud, const char *path, const char *data, size_t n)
{
    (void)path;
    struct slurp *sl = ud;
    sl->all = realloc(sl->all, sl->len + n + 1);
    assert_non_null(sl->all);
    memcpy(sl->all + sl->len, data, n);
    sl->len += n;
    sl->all[sl->len] = '\0';
    return false;
}

/* The secrets canary: after a failing and a succeeding turn at debug log
 * level, neither key appears in any output or in any file of the data dir,
 * and memchat config shows them masked. */
static void keys_never_appear_in_output_logs_or_data(void **state)
{
    (void)state;
    const char *const *base = net_env();
    const char *env[10];
    size_t k = 0;
    for (; base[k] != NULL; k++)
        env[k] = base[k];
    env[k++] = "MEMCHAT_LOG_LEVEL=debug";
    env[k] = NULL;
    static const char *const runs[][8] = {
        {"ask", "--json", "--provider", "openai", "--model", "mock:401", "hi", NULL},
        {"ask", "--json", "--provider", "anthropic", "--model", "mock:500,then=1", "hi", NULL},
        {"ask", "--provider", "openai", "--model", "mock", "hi", NULL},
        {"config", NULL},
        {"config", "--json", NULL},
    };
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        struct run r;
        run_memchat(&r, NULL, env, runs[i]);
        assert_null(strstr(r.out, KEY_OPENAI));
        assert_null(strstr(r.err, KEY_OPENAI));
        assert_null(strstr(r.out, KEY_ANTHROPIC));
        assert_null(strstr(r.err, KEY_ANTHROPIC));
        if (strcmp(runs[i][0], "config") == 0)
            assert_non_null(strstr(r.out, "4b5a")); /* masked to the last 4 */
        run_free(&r);
    }
    struct slurp sl = {0};
    harness_walk_files(fx.data, slurp_file, &sl);
    assert_true(sl.len > 0);
    assert_null(memmem(sl.all, sl.len, KEY_OPENAI, strlen(KEY_OPENAI)));
    assert_null(memmem(sl.all, sl.len, KEY_ANTHROPIC, strlen(KEY_ANTHROPIC)));
    free(sl.all);
}

/* The trace records the mock received on path suffix (traces or spans
 * batches), items summed over every request; *n_requests counts them. */
static cJSON *opik_items(const char *suffix, const char *member, size_t *n_requests)
{
    cJSON *arr = NULL, *items = cJSON_CreateArray();
    mock_requests(mock, &arr);
    *n_requests = 0;
    const cJSON *req;
    cJSON_ArrayForEach(req, arr)
    {
        const cJSON *path = cJSON_GetObjectItemCaseSensitive(req, "path");
        const cJSON *body = cJSON_GetObjectItemCaseSensitive(req, "body");
        size_t pl = cJSON_IsString(path) ? strlen(path->valuestring) : 0;
        if (pl < strlen(suffix) || strcmp(path->valuestring + pl - strlen(suffix), suffix) != 0)
            continue;
        (*n_requests)++;
        cJSON *b = cJSON_Parse(body->valuestring);
        assert_non_null(b);
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(b, member))
            cJSON_AddItemToArray(items, cJSON_Duplicate(it, true));
        cJSON_Delete(b);
    }
    cJSON_Delete(arr);
    return items;
}

/* A turn writes its trace to traces/ and, with OPIK_URL_OVERRIDE set,
 * exports it before ask exits: the trace's id is the turn's id, its llm
 * span carries the model, provider and the usage of the usage event, and
 * the file holds the same record. */
static void a_turn_is_traced_to_the_file_and_to_opik(void **state)
{
    (void)state;
    char opik[300];
    snprintf(opik, sizeof opik, "OPIK_URL_OVERRIDE=%s/api", mock_url(mock));
    const char *extra[] = {opik, "OPIK_PROJECT_NAME=canary-project", NULL};
    const char *args[] = {"ask",  "--json",   "--provider", "openai", "--model",
                          "mock", "--tenant", "acme",       "hi",     NULL};
    struct run r;
    run_with(&r, NULL, extra, args);
    assert_int_equal(r.status, 0);
    struct mc_event *evs[64];
    size_t n = turn_events(&r, evs, 64);
    const char *turn = evs[0]->turn;
    long long prompt = -1;
    for (size_t i = 0; i < n; i++)
        if (evs[i]->kind == MC_EV_USAGE)
            prompt = (long long)cJSON_GetNumberValue(
                cJSON_GetObjectItemCaseSensitive(evs[i]->json, "prompt_tokens"));
    assert_true(prompt > 0);

    size_t nt = 0, ns = 0;
    cJSON *traces = opik_items("/api/v1/private/traces/batch", "traces", &nt);
    cJSON *spans = opik_items("/api/v1/private/spans/batch", "spans", &ns);
    assert_int_equal(nt, 1);
    assert_int_equal(ns, 1);
    assert_int_equal(cJSON_GetArraySize(traces), 1);
    const cJSON *t = cJSON_GetArrayItem(traces, 0);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "id")), turn);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "project_name")),
                        "canary-project");
    const cJSON *llm = NULL, *sp;
    cJSON_ArrayForEach(sp, spans)
    {
        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(sp, "trace_id")),
                            turn);
        if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(sp, "type")), "llm") == 0)
            llm = sp;
    }
    assert_non_null(llm);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(llm, "model")),
                        "mock");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(llm, "provider")),
                        "openai");
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(llm, "usage");
    assert_true(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens")) ==
                (double)prompt);

    char path[4200];
    snprintf(path, sizeof path, "%s/traces/traces.jsonl", fx.data);
    char *file = tu_read_file(path, NULL);
    assert_non_null(file);
    assert_non_null(strstr(file, turn));
    assert_non_null(strchr(file, '\n'));
    free(file);
    cJSON_Delete(traces);
    cJSON_Delete(spans);
    for (size_t i = 0; i < n; i++)
        mc_event_free(evs[i]);
    run_free(&r);
}

/* An Opik server that keeps failing never fails the turn: ask prints the
 * reply and exits 0, the failure goes to memchat.log, and the trace is
 * still in traces/. */
static void an_opik_failure_never_fails_the_turn(void **state)
{
    (void)state;
    char opik[300];
    snprintf(opik, sizeof opik, "OPIK_URL_OVERRIDE=%s/mock:500/api", mock_url(mock));
    const char *extra[] = {opik, NULL};
    const char *args[] = {"ask", "--provider", "openai", "--model", "mock", "hi", NULL};
    struct run r;
    run_with(&r, NULL, extra, args);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "mock reply"));
    size_t nt = 0;
    cJSON *traces = opik_items("/v1/private/traces/batch", "traces", &nt);
    assert_true(nt >= 1);
    cJSON_Delete(traces);
    char path[4200];
    snprintf(path, sizeof path, "%s/memchat.log", fx.data);
    char *log = tu_read_file(path, NULL);
    assert_non_null(log);
    assert_non_null(strstr(log, "opik export"));
    assert_non_null(strstr(log, "500"));
    free(log);
    snprintf(path, sizeof path, "%s/traces/traces.jsonl", fx.data);
    char *file = tu_read_file(path, NULL);
    assert_non_null(file);
    free(file);
    run_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(each_provider_answers_through_ask, case_setup, teardown),
        cmocka_unit_test_setup_teardown(json_events_carry_the_providers_usage, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(stream_false_asks_for_one_whole_answer, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(costs_follow_the_price_table_and_add_up, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(json_in_messages_is_minified_before_sending, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(the_cache_answers_repeats_per_tenant, case_setup, teardown),
        cmocka_unit_test_setup_teardown(rate_limits_refuse_or_wait, case_setup, teardown),
        cmocka_unit_test_setup_teardown(budgets_reserve_and_refuse, case_setup, teardown),
        cmocka_unit_test_setup_teardown(stored_limits_apply_to_later_turns, case_setup, teardown),
        cmocka_unit_test_setup_teardown(a_passing_500_is_retried_with_a_retry_event, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(server_delays_are_honoured_up_to_60_seconds, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(exhausted_retries_exit_3_with_the_servers_message,
                                        case_setup, teardown),
        cmocka_unit_test_setup_teardown(auth_errors_are_final_and_never_show_the_key, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_broken_stream_after_text_is_not_retried, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(connection_refused_is_retried_then_exits_3, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(ctrl_c_during_a_stalled_stream_cancels, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(auto_finds_a_local_server, case_setup, teardown),
        cmocka_unit_test_setup_teardown(a_turn_is_traced_to_the_file_and_to_opik, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(an_opik_failure_never_fails_the_turn, case_setup, teardown),
        cmocka_unit_test_setup_teardown(keys_never_appear_in_output_logs_or_data, case_setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
