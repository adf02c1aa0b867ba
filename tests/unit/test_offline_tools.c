/*
 * Tests of the offline provider's function calling (llm/offline.c): it
 * calls memory_search for the four ways of asking to search memory and
 * time_now for "what time is it", only when the request offers that tool
 * and lets the model call tools, with arguments that are exact JSON; it
 * answers in text otherwise; and when the request ends with tool results
 * it says, still labelled offline, what each tool returned. The rest of the
 * offline provider is tested in test_turn.c.
 */
#include "testutil.h"

#include <cJSON.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "llm/provider.h"
#include "llm/tokens.h"
#include "memchat/engine.h"
#include "util/buf.h"

#define SEARCH_SCHEMA                                                        \
    "{\"type\":\"object\",\"properties\":{\"query\":{\"type\":\"string\"}}," \
    "\"required\":[\"query\"]}"

/* The two built-in tools, as a turn offers them. */
static const struct llm_tool_spec builtin_tools[] = {
    {.name = "memory_search", .description = "Search memory", .parameters = SEARCH_SCHEMA},
    {.name = "time_now", .description = "The time", .parameters = "{\"type\":\"object\"}"},
};

/* One call of a fresh offline provider: its text, result and tool calls
 * (copied before the provider is freed). */
struct outcome {
    enum mc_error rc;
    struct buf text;
    size_t deltas;
    struct llm_result res;
    size_t n_calls;
    char *id, *name, *arguments; /* of the first call; NULL when none */
    bool arguments_valid;
};

static int collect(void *ud, const char *text, size_t len)
{
    struct outcome *o = ud;
    o->deltas++;
    assert_int_equal(buf_append(&o->text, text, len), BUF_OK);
    return 0;
}

static void run(const struct llm_request *req, struct outcome *o)
{
    memset(o, 0, sizeof *o);
    buf_init(&o->text, 1 << 20);
    struct llm_provider *p = llm_offline_new();
    char err[256] = "";
    o->rc = p->chat(p, req, collect, o, NULL, &o->res, err, sizeof err);
    const struct llm_tool_call *tc = llm_provider_tool_calls(p, &o->n_calls);
    if (o->n_calls > 0) {
        o->id = strdup(tc[0].id);
        o->name = strdup(tc[0].name);
        o->arguments = strdup(buf_cstr(&tc[0].arguments));
        o->arguments_valid = tc[0].arguments_valid;
    }
    llm_provider_free(p);
}

static void outcome_fini(struct outcome *o)
{
    buf_free(&o->text);
    free(o->id);
    free(o->name);
    free(o->arguments);
}

/* A request of one user message, offering tools[0..n_tools). */
static struct llm_request user_request(struct llm_message *msg, const char *text,
                                       const struct llm_tool_spec *tools, size_t n_tools)
{
    *msg = (struct llm_message){.role = "user", .content = text};
    return (struct llm_request){
        .model = "offline", .messages = msg, .n_messages = 1, .tools = tools, .n_tools = n_tools};
}

/* The "query" of the call's arguments (which must be {"query": string}),
 * copied; caller frees. */
static char *query_of(const struct outcome *o)
{
    cJSON *j = cJSON_Parse(o->arguments);
    assert_true(cJSON_IsObject(j));
    assert_int_equal(cJSON_GetArraySize(j), 1);
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(j, "query");
    assert_true(cJSON_IsString(q));
    char *s = strdup(q->valuestring);
    cJSON_Delete(j);
    return s;
}

/* Asserts that o is one call to name with no text, as a model's tool call
 * is: finish_reason tool_calls, usage estimated. */
static void assert_one_call(const struct outcome *o, const char *name)
{
    assert_int_equal(o->rc, MC_ERR_NONE);
    assert_int_equal(o->n_calls, 1);
    assert_int_equal(o->res.tool_calls, 1);
    assert_string_equal(o->res.finish_reason, "tool_calls");
    assert_string_equal(o->id, "offline_call_1");
    assert_string_equal(o->name, name);
    assert_true(o->arguments_valid);
    assert_int_equal(o->deltas, 0);
    assert_int_equal(o->text.len, 0);
    assert_true(o->res.usage.estimated);
    assert_true(o->res.usage.prompt_tokens > 0);
}

/* Asserts that o is the ordinary offline answer, with no tool call. */
static void assert_plain_answer(const struct outcome *o)
{
    assert_int_equal(o->rc, MC_ERR_NONE);
    assert_int_equal(o->n_calls, 0);
    assert_int_equal(o->res.tool_calls, 0);
    assert_string_not_equal(o->res.finish_reason, "tool_calls");
    assert_non_null(strstr(buf_cstr(&o->text), "[offline]"));
    assert_non_null(strstr(buf_cstr(&o->text), "You wrote"));
}

/* Each of the four ways to ask (any case, leading blanks) calls
 * memory_search with the rest of the message as the query, its trailing
 * ?!. and blanks removed. */
static void each_search_prefix_calls_memory_search_with_the_rest(void **state)
{
    (void)state;
    static const struct {
        const char *message, *query;
    } cases[] = {
        {"search memory for tea preferences", "tea preferences"},
        {"Search My Memory For the dentist's phone number?", "the dentist's phone number"},
        {"  WHAT DO YOU REMEMBER ABOUT Oslo?!. ", "Oslo"},
        {"recall my sister's birthday.", "my sister's birthday"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct llm_message msg;
        struct llm_request req = user_request(&msg, cases[i].message, builtin_tools, 2);
        struct outcome o;
        run(&req, &o);
        assert_one_call(&o, "memory_search");
        char *q = query_of(&o);
        assert_string_equal(q, cases[i].query);
        free(q);
        outcome_fini(&o);
    }
}

/* The query goes out as exact JSON: quotes, backslashes and non-ASCII text
 * survive the round trip. */
static void the_search_query_is_exact_json(void **state)
{
    (void)state;
    const char *text = "recall \"the\" C:\\path and caf\xc3\xa9 notes";
    struct llm_message msg;
    struct llm_request req = user_request(&msg, text, builtin_tools, 2);
    struct outcome o;
    run(&req, &o);
    assert_one_call(&o, "memory_search");
    char *q = query_of(&o);
    assert_string_equal(q, "\"the\" C:\\path and caf\xc3\xa9 notes");
    free(q);
    assert_true(o.res.usage.completion_tokens > 0);
    outcome_fini(&o);
}

/* "what time is it" anywhere in the message, any case, calls time_now
 * with {}. */
static void asking_the_time_calls_time_now(void **state)
{
    (void)state;
    const char *const asks[] = {"What time is it?", "sorry, WHAT TIME IS IT in Oslo now"};
    for (size_t i = 0; i < 2; i++) {
        struct llm_message msg;
        struct llm_request req = user_request(&msg, asks[i], builtin_tools, 2);
        struct outcome o;
        run(&req, &o);
        assert_one_call(&o, "time_now");
        assert_string_equal(o.arguments, "{}");
        outcome_fini(&o);
    }
}

/* Without the tool offered, the same messages get the ordinary answer: a
 * search request with only time_now, the time with only memory_search, and
 * either with no tools at all. */
static void a_tool_not_offered_is_not_called(void **state)
{
    (void)state;
    struct {
        const char *message;
        const struct llm_tool_spec *tools;
        size_t n_tools;
    } cases[] = {
        {"search memory for tea", &builtin_tools[1], 1},
        {"what time is it", &builtin_tools[0], 1},
        {"recall tea", NULL, 0},
        {"what time is it", NULL, 0},
        {"tell me about tea", builtin_tools, 2},
        {"recall ?!", builtin_tools, 2}, /* an empty query */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct llm_message msg;
        struct llm_request req =
            user_request(&msg, cases[i].message, cases[i].tools, cases[i].n_tools);
        struct outcome o;
        run(&req, &o);
        assert_plain_answer(&o);
        outcome_fini(&o);
    }
}

/* tools_none (the turn's last round) forbids calls: the ordinary answer. */
static void tools_none_gets_the_ordinary_answer(void **state)
{
    (void)state;
    const char *const asks[] = {"search memory for tea", "what time is it"};
    for (size_t i = 0; i < 2; i++) {
        struct llm_message msg;
        struct llm_request req = user_request(&msg, asks[i], builtin_tools, 2);
        req.tools_none = true;
        struct outcome o;
        run(&req, &o);
        assert_plain_answer(&o);
        outcome_fini(&o);
    }
}

/* After tool results the answer is text, labelled offline, naming each
 * tool and quoting its output on one line (a failed one as failed), and
 * it makes no new call even though the question still asks. */
static void tool_results_are_answered_in_text(void **state)
{
    (void)state;
    char id[] = "offline_call_1", name[] = "memory_search";
    struct llm_tool_call call = {.id = id, .name = name};
    buf_init(&call.arguments, 1024);
    assert_int_equal(buf_puts(&call.arguments, "{\"query\":\"tea\"}"), BUF_OK);
    call.arguments_valid = true;
    struct llm_message msgs[] = {
        {.role = "user", .content = "search memory for tea"},
        {.role = "assistant", .content = "", .tool_calls = &call, .n_tool_calls = 1},
        {.role = "tool",
         .content = "{\"results\":[{\"text\":\"likes green tea\"}]}",
         .tool_call_id = "offline_call_1",
         .tool_name = "memory_search"},
        {.role = "tool",
         .content = "error: the clock\nis broken",
         .tool_call_id = "offline_call_2",
         .tool_name = "time_now",
         .tool_error = true},
    };
    struct llm_request req = {.model = "offline",
                              .messages = msgs,
                              .n_messages = 4,
                              .tools = builtin_tools,
                              .n_tools = 2};
    struct outcome o;
    run(&req, &o);
    assert_int_equal(o.rc, MC_ERR_NONE);
    assert_int_equal(o.n_calls, 0);
    const char *s = buf_cstr(&o.text);
    assert_true(strncmp(s, "[offline]", 9) == 0);
    assert_non_null(
        strstr(s, "\nmemory_search returned: {\"results\":[{\"text\":\"likes green tea\"}]}\n"));
    assert_non_null(strstr(s, "\ntime_now failed: error: the clock is broken\n"));
    assert_true(o.deltas > 1); /* streamed like any answer */
    assert_true(o.res.usage.estimated);
    assert_int_equal(o.res.usage.completion_tokens, tokens_estimate(s, o.text.len));
    outcome_fini(&o);
    buf_free(&call.arguments);
}

/* An agent step that wants JSON gets the tool results as JSON. */
static void tool_results_for_a_json_step_are_json(void **state)
{
    (void)state;
    struct llm_message msgs[] = {
        {.role = "user", .content = "what time is it"},
        {.role = "tool",
         .content = "{\"now\":\"2025-01-01T00:00:00Z\"}",
         .tool_call_id = "offline_call_1",
         .tool_name = "time_now"},
    };
    struct llm_request req = {.model = "offline",
                              .messages = msgs,
                              .n_messages = 2,
                              .tools = builtin_tools,
                              .n_tools = 2,
                              .want_json = true};
    struct outcome o;
    run(&req, &o);
    assert_int_equal(o.rc, MC_ERR_NONE);
    cJSON *j = cJSON_Parse(buf_cstr(&o.text));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "offline")));
    const cJSON *r = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "tool_results"), 0);
    assert_string_equal(cJSON_GetObjectItem(r, "name")->valuestring, "time_now");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")));
    assert_string_equal(cJSON_GetObjectItem(r, "output")->valuestring,
                        "{\"now\":\"2025-01-01T00:00:00Z\"}");
    cJSON_Delete(j);
    outcome_fini(&o);
}

/* A provider's tool calls are those of its last chat(): an answer in text
 * after a call leaves none. */
static void the_next_chat_clears_the_last_call(void **state)
{
    (void)state;
    struct llm_provider *p = llm_offline_new();
    struct llm_message msg;
    struct llm_request req = user_request(&msg, "recall tea", builtin_tools, 2);
    struct outcome o;
    memset(&o, 0, sizeof o);
    buf_init(&o.text, 1 << 20);
    char err[256];
    assert_int_equal(p->chat(p, &req, collect, &o, NULL, &o.res, err, sizeof err), MC_ERR_NONE);
    size_t n = 0;
    assert_non_null(llm_provider_tool_calls(p, &n));
    assert_int_equal(n, 1);
    req = user_request(&msg, "hello", builtin_tools, 2);
    assert_int_equal(p->chat(p, &req, collect, &o, NULL, &o.res, err, sizeof err), MC_ERR_NONE);
    assert_null(llm_provider_tool_calls(p, &n));
    assert_int_equal(n, 0);
    assert_int_equal(o.res.tool_calls, 0);
    llm_provider_free(p);
    buf_free(&o.text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(each_search_prefix_calls_memory_search_with_the_rest),
        cmocka_unit_test(the_search_query_is_exact_json),
        cmocka_unit_test(asking_the_time_calls_time_now),
        cmocka_unit_test(a_tool_not_offered_is_not_called),
        cmocka_unit_test(tools_none_gets_the_ordinary_answer),
        cmocka_unit_test(tool_results_are_answered_in_text),
        cmocka_unit_test(tool_results_for_a_json_step_are_json),
        cmocka_unit_test(the_next_chat_clears_the_last_call),
    };
    if (mc_global_init() != 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
