/*
 * Stage 9 of a turn (client/tooluse.c, through client_turn_run): a
 * scripted provider asks for tools, built-in tools answer, and the tests
 * check the events, what the next request carries, the confirmation of
 * tools that are not read-only, the round limit and usage over rounds.
 */
#include "config.h"

#include "testutil.h"
#include "tu_config.h"

#include <cJSON.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "client/conversation.h"
#include "client/emit.h"
#include "client/tooluse.h"
#include "client/turn.h"
#include "config/config.h"
#include "memchat/engine.h"
#include "tools/registry.h"
#include "util/alloc.h"
#include "util/buf.h"

#define MAX_REPLIES 8
#define MAX_CALLS   4

/* One scripted reply: text, then calls (name and arguments) or none. */
struct reply {
    const char *text;
    const char *names[MAX_CALLS];
    const char *args[MAX_CALLS];
};

/* What the provider saw of one request. */
struct seen {
    size_t n_messages, n_tools;
    bool tools_none;
    char *last_role;      /* of the last message */
    char *last_content;   /* of the last message */
    size_t last_calls;    /* tool calls of the last assistant message */
    char *last_call_id;   /* the last message's tool_call_id */
    bool last_tool_error; /* the last message's tool_error */
};

struct script {
    struct reply replies[MAX_REPLIES];
    size_t n_replies, next;
    bool repeat_last; /* past the end: the last reply again */
    struct seen seen[MAX_REPLIES + 2];
    size_t n_seen;
    struct llm_tool_call calls[MAX_CALLS];
    size_t n_calls;
};

static enum mc_error fake_chat(const struct llm_provider *p, const struct llm_request *req,
                               llm_delta_fn on_delta, void *ud, const atomic_bool *cancel,
                               struct llm_result *res, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    struct script *s = p->impl;
    assert_true(s->n_seen < sizeof s->seen / sizeof s->seen[0]);
    struct seen *v = &s->seen[s->n_seen++];
    const struct llm_message *last = &req->messages[req->n_messages - 1];
    v->n_messages = req->n_messages;
    v->n_tools = req->n_tools;
    v->tools_none = req->tools_none;
    v->last_role = xstrdup(last->role);
    v->last_content = xstrdup(last->content != NULL ? last->content : "");
    v->last_call_id = xstrdup(last->tool_call_id != NULL ? last->tool_call_id : "");
    v->last_tool_error = last->tool_error;
    for (size_t i = 0; i < req->n_messages; i++)
        if (strcmp(req->messages[i].role, "assistant") == 0)
            v->last_calls = req->messages[i].n_tool_calls;
    for (size_t i = 0; i < s->n_calls; i++) {
        xfree(s->calls[i].id);
        xfree(s->calls[i].name);
        buf_free(&s->calls[i].arguments);
    }
    s->n_calls = 0;
    size_t at = s->next < s->n_replies ? s->next++ : s->n_replies - 1;
    const struct reply *r = &s->replies[at];
    if (atomic_load(cancel))
        return MC_ERR_CANCELLED;
    if (r->text != NULL && r->text[0] != '\0' && on_delta(ud, r->text, strlen(r->text)) != 0)
        return MC_ERR_CANCELLED;
    /* A well-behaved model answers in text when told to. */
    for (size_t i = 0; !req->tools_none && i < MAX_CALLS && r->names[i] != NULL; i++) {
        struct llm_tool_call *c = &s->calls[s->n_calls++];
        c->index = (long)i;
        c->id = xasprintf("call_%zu_%zu", s->n_seen, i);
        c->name = xstrdup(r->names[i]);
        buf_init(&c->arguments, 4096);
        buf_puts(&c->arguments, r->args[i]);
        c->arguments_valid = true;
    }
    res->usage = (struct llm_usage){100, 10, 0, false};
    snprintf(res->finish_reason, sizeof res->finish_reason, "%s",
             s->n_calls > 0 ? "tool_calls" : "stop");
    res->tool_calls = s->n_calls;
    return MC_ERR_NONE;
}

static const struct llm_tool_call *fake_tool_calls(const struct llm_provider *p, size_t *n)
{
    struct script *s = p->impl;
    *n = s->n_calls;
    return s->n_calls > 0 ? s->calls : NULL;
}

static void fake_free(struct llm_provider *p)
{
    struct script *s = p->impl;
    for (size_t i = 0; i < s->n_calls; i++) {
        xfree(s->calls[i].id);
        xfree(s->calls[i].name);
        buf_free(&s->calls[i].arguments);
    }
    for (size_t i = 0; i < s->n_seen; i++) {
        xfree(s->seen[i].last_role);
        xfree(s->seen[i].last_content);
        xfree(s->seen[i].last_call_id);
    }
}

/* The built-in tools of the tests: echo (read-only) answers its
 * arguments; write (not read-only) counts its runs. */
static int echo_tool(void *ud, void *ctx, const char *args, struct buf *out, char *err,
                     size_t errlen)
{
    (void)ud;
    (void)ctx;
    (void)err;
    (void)errlen;
    buf_printf(out, "{\"echo\":%s}", args);
    return 0;
}

static int write_tool(void *ud, void *ctx, const char *args, struct buf *out, char *err,
                      size_t errlen)
{
    (void)ctx;
    (void)args;
    (void)err;
    (void)errlen;
    (*(int *)ud)++;
    buf_puts(out, "{\"written\":true}");
    return 0;
}

struct collector {
    struct mc_event *evs[256];
    size_t n;
};

static void collect_sink(void *ud, struct mc_event *ev, int64_t *seq)
{
    struct collector *c = ud;
    emit_stamp(ev, (*seq)++, 1000 + (int64_t)c->n);
    assert_true(c->n < sizeof c->evs / sizeof c->evs[0]);
    c->evs[c->n++] = ev;
}

/* The fixture's answer to a confirmation, and how often it was asked. */
struct asker {
    int answer;
    int asked;
    atomic_bool *cancel_on_ask; /* set: asking cancels the turn instead */
};

static int fixture_confirm(void *ud, const char *call_id, const char *name)
{
    struct asker *a = ud;
    assert_non_null(call_id);
    assert_string_equal(name, "write");
    a->asked++;
    if (a->cancel_on_ask != NULL) {
        atomic_store(a->cancel_on_ask, true);
        return -1;
    }
    return a->answer;
}

struct fx {
    char *dir;
    struct config *cfg;
    struct llm_provider provider;
    struct script script;
    struct tool_registry *reg;
    struct conversation *conv;
    atomic_bool cancel;
    struct turn_env env;
    struct collector col;
    int64_t seq;
    struct emit em;
    int writes;
    struct asker asker;
    struct turn_outcome out;
};

static struct fx *fx_new(const char *max_rounds)
{
    struct fx *f = xcalloc(1, sizeof *f);
    f->dir = tu_mkdtemp();
    char rounds[64];
    snprintf(rounds, sizeof rounds, "TOOL_MAX_ROUNDS=%s", max_rounds);
    const char *flags[] = {rounds};
    f->cfg = tu_config(f->dir, flags, 1);
    f->provider = (struct llm_provider){.name = "fake",
                                        .default_model = "fake",
                                        .context_window = 100000,
                                        .reply_reserve = 1000,
                                        .impl = &f->script,
                                        .chat = fake_chat,
                                        .tool_calls = fake_tool_calls};
    char share[4200], err[512];
    snprintf(share, sizeof share, "%s/share", f->dir); /* no shipped tools */
    f->reg = tool_registry_new(share, NULL, 0);
    assert_int_equal(tool_registry_add_builtin(f->reg, "echo", "answers its arguments",
                                               "{\"type\":\"object\"}", true, echo_tool, NULL, err,
                                               sizeof err),
                     0);
    assert_int_equal(tool_registry_add_builtin(f->reg, "write", "changes something",
                                               "{\"type\":\"object\"}", false, write_tool,
                                               &f->writes, err, sizeof err),
                     0);
    f->conv = conversation_new();
    atomic_init(&f->cancel, false);
    f->env = (struct turn_env){.cfg = f->cfg,
                               .provider = &f->provider,
                               .model = "fake",
                               .conv = f->conv,
                               .cancel = &f->cancel,
                               .tools = f->reg,
                               .confirm = fixture_confirm,
                               .confirm_ud = &f->asker};
    f->em = (struct emit){.turn = "0190b1f0-0000-7000-8000-000000000002",
                          .seq = &f->seq,
                          .sink = collect_sink,
                          .sink_ud = &f->col};
    return f;
}

static void fx_free(struct fx *f)
{
    for (size_t i = 0; i < f->col.n; i++)
        mc_event_free(f->col.evs[i]);
    xfree(f->out.reply);
    cJSON_Delete(f->out.trace);
    fake_free(&f->provider);
    tool_registry_free(f->reg);
    conversation_free(f->conv);
    config_free(f->cfg);
    tu_rmtree(f->dir);
    free(f->dir);
    xfree(f);
}

static void fx_turn(struct fx *f, const char *const *tools, size_t n_tools)
{
    struct turn_input in = {.turn = f->em.turn,
                            .tenant = "default",
                            .user = "tester",
                            .agent = "assistant",
                            .text = "please use a tool",
                            .memory = MC_MEMORY_OFF,
                            .tools = tools,
                            .n_tools = n_tools};
    client_turn_run(&f->env, &in, &f->em, &f->out);
}

static size_t count_kind(const struct fx *f, enum mc_event_kind k)
{
    size_t n = 0;
    for (size_t i = 0; i < f->col.n; i++)
        n += f->col.evs[i]->kind == k;
    return n;
}

static const struct mc_event *nth_kind(const struct fx *f, enum mc_event_kind k, size_t nth)
{
    for (size_t i = 0; i < f->col.n; i++)
        if (f->col.evs[i]->kind == k && nth-- == 0)
            return f->col.evs[i];
    fail_msg("no event %d number %zu", (int)k, nth);
    abort(); /* fail_msg does not return */
}

static const char *const BOTH[] = {"echo", "write"};

/* A call to a read-only tool runs without asking; its result goes back
 * as a tool message answering that call; the model's answer after it is
 * the reply; usage adds up both calls; turn.done times the tools stage. */
static void a_tool_round_trip(void **state)
{
    (void)state;
    struct fx *f = fx_new("4");
    f->script.replies[0] = (struct reply){"Let me look. ", {"echo"}, {"{\"q\":\"hi\"}"}};
    f->script.replies[1] = (struct reply){"Done.", {NULL}, {NULL}};
    f->script.n_replies = 2;
    fx_turn(f, BOTH, 2);
    assert_int_equal(f->out.status, TURN_OK);
    assert_int_equal(f->script.n_seen, 2);
    assert_int_equal(f->script.seen[0].n_tools, 2);
    assert_false(f->script.seen[0].tools_none);
    const struct seen *second = &f->script.seen[1];
    assert_int_equal(second->n_messages, f->script.seen[0].n_messages + 2);
    assert_string_equal(second->last_role, "tool");
    assert_string_equal(second->last_content, "{\"echo\":{\"q\":\"hi\"}}");
    assert_string_equal(second->last_call_id, "call_1_0");
    assert_false(second->last_tool_error);
    assert_int_equal(second->last_calls, 1);
    assert_int_equal(f->asker.asked, 0);

    const struct mc_event *call = nth_kind(f, MC_EV_TOOL_CALL, 0);
    assert_string_equal(mc_event_str(call, "name", ""), "echo");
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(call->json, "arguments");
    assert_true(cJSON_IsObject(args));
    const struct mc_event *res = nth_kind(f, MC_EV_TOOL_RESULT, 0);
    assert_true(mc_event_bool(res, "ok", false));
    assert_string_equal(mc_event_str(res, "call_id", ""), "call_1_0");
    assert_string_equal(mc_event_str(res, "output", ""), "{\"echo\":{\"q\":\"hi\"}}");
    assert_true(call->seq < res->seq);

    const struct mc_event *usage = nth_kind(f, MC_EV_USAGE, 0);
    assert_int_equal((long long)mc_event_num(usage, "prompt_tokens", -1), 200);
    assert_int_equal((long long)mc_event_num(usage, "completion_tokens", -1), 20);
    const struct mc_event *done = nth_kind(f, MC_EV_TURN_DONE, 0);
    const cJSON *lat = cJSON_GetObjectItemCaseSensitive(done->json, "latency_ms");
    assert_true(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(lat, "tools")));
    fx_free(f);
}

/* Two calls in one reply run in order, each answered by its own tool
 * message. */
static void parallel_calls_run_in_order(void **state)
{
    (void)state;
    struct fx *f = fx_new("4");
    f->script.replies[0] = (struct reply){"", {"echo", "echo"}, {"{\"n\":1}", "{\"n\":2}"}};
    f->script.replies[1] = (struct reply){"ok", {NULL}, {NULL}};
    f->script.n_replies = 2;
    fx_turn(f, BOTH, 2);
    assert_int_equal(f->out.status, TURN_OK);
    assert_int_equal(count_kind(f, MC_EV_TOOL_CALL), 2);
    assert_int_equal(count_kind(f, MC_EV_TOOL_RESULT), 2);
    assert_string_equal(mc_event_str(nth_kind(f, MC_EV_TOOL_RESULT, 0), "output", ""),
                        "{\"echo\":{\"n\":1}}");
    assert_string_equal(mc_event_str(nth_kind(f, MC_EV_TOOL_RESULT, 1), "output", ""),
                        "{\"echo\":{\"n\":2}}");
    assert_int_equal(f->script.seen[1].n_messages, f->script.seen[0].n_messages + 3);
    assert_string_equal(f->script.seen[1].last_call_id, "call_1_1");
    fx_free(f);
}

/* A tool that is not read-only asks first: refused, it does not run and
 * the model is told; allowed, it runs. */
static void a_tool_that_writes_asks_first(void **state)
{
    (void)state;
    for (int answer = 0; answer <= 1; answer++) {
        struct fx *f = fx_new("4");
        f->asker.answer = answer;
        f->script.replies[0] = (struct reply){"", {"write"}, {"{}"}};
        f->script.replies[1] = (struct reply){"fine", {NULL}, {NULL}};
        f->script.n_replies = 2;
        fx_turn(f, BOTH, 2);
        assert_int_equal(f->out.status, TURN_OK);
        assert_int_equal(f->asker.asked, 1);
        assert_int_equal(count_kind(f, MC_EV_TOOL_CONFIRM), 1);
        assert_int_equal(f->writes, answer);
        const struct mc_event *res = nth_kind(f, MC_EV_TOOL_RESULT, 0);
        assert_int_equal(mc_event_bool(res, "ok", !answer), answer == 1);
        assert_string_equal(mc_event_str(res, "status", ""), answer ? "ok" : "refused");
        assert_int_equal(f->script.seen[1].last_tool_error, answer == 0);
        fx_free(f);
    }
}

/* With no one to ask (confirm NULL) such a tool never runs. */
static void without_a_front_end_to_ask_writes_are_refused(void **state)
{
    (void)state;
    struct fx *f = fx_new("4");
    f->env.confirm = NULL;
    f->script.replies[0] = (struct reply){"", {"write"}, {"{}"}};
    f->script.replies[1] = (struct reply){"fine", {NULL}, {NULL}};
    f->script.n_replies = 2;
    fx_turn(f, BOTH, 2);
    assert_int_equal(f->writes, 0);
    assert_string_equal(mc_event_str(nth_kind(f, MC_EV_TOOL_RESULT, 0), "status", ""), "refused");
    fx_free(f);
}

/* Cancelling while the user is asked ends the turn as cancelled, without
 * running the tool or sending again. */
static void cancel_while_asking_cancels_the_turn(void **state)
{
    (void)state;
    struct fx *f = fx_new("4");
    f->asker.cancel_on_ask = &f->cancel;
    f->script.replies[0] = (struct reply){"", {"write"}, {"{}"}};
    f->script.n_replies = 1;
    fx_turn(f, BOTH, 2);
    assert_int_equal(f->out.status, TURN_CANCELLED);
    assert_int_equal(f->writes, 0);
    assert_int_equal(f->script.n_seen, 1);
    assert_int_equal(count_kind(f, MC_EV_TURN_CANCELLED), 1);
    assert_int_equal(count_kind(f, MC_EV_TURN_DONE), 1);
    fx_free(f);
}

/* A tool the turn did not offer is not run, whatever the model says. */
static void a_tool_not_offered_is_not_run(void **state)
{
    (void)state;
    struct fx *f = fx_new("4");
    f->script.replies[0] = (struct reply){"", {"write"}, {"{}"}};
    f->script.replies[1] = (struct reply){"fine", {NULL}, {NULL}};
    f->script.n_replies = 2;
    const char *const only_echo[] = {"echo"};
    fx_turn(f, only_echo, 1);
    assert_int_equal(f->script.seen[0].n_tools, 1);
    assert_int_equal(f->asker.asked, 0);
    assert_int_equal(f->writes, 0);
    assert_string_equal(mc_event_str(nth_kind(f, MC_EV_TOOL_RESULT, 0), "status", ""), "unknown");
    fx_free(f);
}

/* A model that keeps calling gets TOOL_MAX_ROUNDS rounds, then a request
 * that allows no tools; one that calls even then fails the turn. */
static void the_round_limit_holds(void **state)
{
    (void)state;
    struct fx *f = fx_new("2");
    f->script.replies[0] = (struct reply){"", {"echo"}, {"{}"}};
    f->script.replies[1] = (struct reply){"still ", {"echo"}, {"{}"}};
    f->script.replies[2] = (struct reply){"answer", {"echo"}, {"{}"}};
    f->script.n_replies = 3;
    fx_turn(f, BOTH, 2);
    assert_int_equal(f->out.status, TURN_OK);
    assert_int_equal(f->script.n_seen, 3);
    assert_false(f->script.seen[1].tools_none);
    assert_true(f->script.seen[2].tools_none);
    assert_int_equal(f->script.seen[2].n_tools, 2); /* still described */
    assert_int_equal(count_kind(f, MC_EV_TOOL_CALL), 2);
    fx_free(f);
}

/* An agent that allows no tools sends none. */
static void no_tools_allowed_sends_none(void **state)
{
    (void)state;
    struct fx *f = fx_new("4");
    f->script.replies[0] = (struct reply){"plain", {NULL}, {NULL}};
    f->script.n_replies = 1;
    fx_turn(f, NULL, 0);
    assert_int_equal(f->script.seen[0].n_tools, 0);
    assert_int_equal(count_kind(f, MC_EV_TOOL_CALL), 0);
    const struct mc_event *done = nth_kind(f, MC_EV_TURN_DONE, 0);
    const cJSON *lat = cJSON_GetObjectItemCaseSensitive(done->json, "latency_ms");
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(lat, "tools")));
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_tool_round_trip),
        cmocka_unit_test(parallel_calls_run_in_order),
        cmocka_unit_test(a_tool_that_writes_asks_first),
        cmocka_unit_test(without_a_front_end_to_ask_writes_are_refused),
        cmocka_unit_test(cancel_while_asking_cancels_the_turn),
        cmocka_unit_test(a_tool_not_offered_is_not_run),
        cmocka_unit_test(the_round_limit_holds),
        cmocka_unit_test(no_tools_allowed_sends_none),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
