/*
 * Tests of the turn pipeline's parts below the engine: the offline
 * provider (deterministic, honest, safe with hostile input, cancellable),
 * the token estimate, conversation trimming, the emitter's contract fields,
 * and client_turn_run itself driven with a collecting sink (event order,
 * cancel before start, chat continuation and history trimming).
 */
#include "tu_config.h"

#include <cJSON.h>
#include <stdatomic.h>

#include "client/conversation.h"
#include "client/emit.h"
#include "client/turn.h"
#include "config/config.h"
#include "config/vars.h"
#include "llm/prices.h"
#include "llm/provider.h"
#include "llm/tokens.h"
#include "memchat/engine.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/utf8.h"

/* --- helpers ----------------------------------------------------------------- */

/* Collects a streamed reply and each delta's validity. */
struct capture {
    struct buf text;
    size_t deltas;
    bool all_deltas_valid; /* every delta on its own was valid UTF-8 */
    size_t stop_after;     /* return nonzero after this many deltas (0: never) */
};

static void capture_init(struct capture *c)
{
    buf_init(&c->text, 1 << 20);
    c->deltas = 0;
    c->all_deltas_valid = true;
    c->stop_after = 0;
}

static int capture_delta(void *ud, const char *text, size_t len)
{
    struct capture *c = ud;
    c->deltas++;
    if (!utf8_valid(text, len, NULL))
        c->all_deltas_valid = false;
    assert_int_equal(buf_append(&c->text, text, len), BUF_OK);
    return c->stop_after != 0 && c->deltas >= c->stop_after;
}

/* Runs the offline provider on req, returning its result code. */
static enum mc_error run_offline(const struct llm_request *req, struct capture *c,
                                 const atomic_bool *cancel, struct llm_result *res)
{
    struct llm_provider *p = llm_offline_new();
    char err[256] = "";
    enum mc_error rc = p->chat(p, req, capture_delta, c, cancel, res, err, sizeof err);
    if (rc != MC_ERR_NONE)
        assert_true(err[0] != '\0');
    llm_provider_free(p);
    return rc;
}

static bool has_terminal_controls(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\n') || c == 0x7f)
            return true;
        /* C1 controls encoded in UTF-8: C2 80..C2 9F */
        if (c == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] >= 0x80 &&
            (unsigned char)s[i + 1] <= 0x9f)
            return true;
    }
    return false;
}

/* A sink that numbers events itself and keeps them in order. */
struct collector {
    struct mc_event *evs[512];
    size_t n;
};

static void collect_sink(void *ud, struct mc_event *ev, int64_t *seq)
{
    struct collector *c = ud;
    emit_stamp(ev, (*seq)++, 1000 + (int64_t)c->n);
    assert_true(c->n < sizeof c->evs / sizeof c->evs[0]);
    c->evs[c->n++] = ev;
}

static void collector_clear(struct collector *c)
{
    for (size_t i = 0; i < c->n; i++)
        mc_event_free(c->evs[i]);
    c->n = 0;
}

/* The concatenated text of the delta events. */
static char *collector_reply(const struct collector *c)
{
    struct buf b;
    buf_init(&b, 1 << 20);
    for (size_t i = 0; i < c->n; i++)
        if (c->evs[i]->kind == MC_EV_DELTA)
            assert_int_equal(buf_puts(&b, mc_event_str(c->evs[i], "text", "")), BUF_OK);
    return buf_take(&b);
}

/* --- the offline provider ---------------------------------------------------- */

/* Two identical requests give byte-identical replies, streamed in several
 * deltas whose concatenation is the reply; the reply says it is offline,
 * that nothing was recalled, which message this is, and how to get real
 * answers. */
static void offline_is_deterministic_and_says_it_is_offline(void **state)
{
    (void)state;
    struct llm_message msgs[] = {
        {.role = "system", .content = "You are a test agent."},
        {.role = "user", .content = "hello there"},
    };
    struct llm_request req = {.model = "offline", .messages = msgs, .n_messages = 2};
    struct capture a, b;
    capture_init(&a);
    capture_init(&b);
    struct llm_result ra, rb;
    assert_int_equal(run_offline(&req, &a, NULL, &ra), MC_ERR_NONE);
    assert_int_equal(run_offline(&req, &b, NULL, &rb), MC_ERR_NONE);
    assert_true(a.text.len > 0);
    assert_int_equal(a.text.len, b.text.len);
    assert_memory_equal(a.text.data, b.text.data, a.text.len);
    assert_true(a.deltas > 1);
    assert_int_equal(ra.deltas_sent, a.deltas);
    assert_int_equal(ra.bytes_sent, a.text.len);
    const char *s = buf_cstr(&a.text);
    assert_non_null(strstr(s, "offline"));
    assert_non_null(strstr(s, "Nothing was recalled from memory for this message."));
    assert_non_null(strstr(s, "Agent: You are a test agent."));
    assert_non_null(strstr(s, "You wrote 2 words: \"hello there\""));
    assert_non_null(strstr(s, "This is message 1 of this conversation."));
    assert_non_null(strstr(s, "OPENAI_API_KEY"));
    assert_non_null(strstr(s, "ANTHROPIC_API_KEY"));
    assert_non_null(strstr(s, "127.0.0.1:11434"));
    assert_non_null(strstr(s, "127.0.0.1:8080"));
    buf_free(&a.text);
    buf_free(&b.text);
}

/* Usage is an estimate from llm/tokens.h: the prompt's messages and the
 * reply's bytes, nothing cached. */
static void offline_usage_is_the_token_estimate(void **state)
{
    (void)state;
    struct llm_message msgs[] = {{.role = "user", .content = "count my tokens please"}};
    struct llm_request req = {.model = "offline", .messages = msgs, .n_messages = 1};
    struct capture c;
    capture_init(&c);
    struct llm_result res;
    assert_int_equal(run_offline(&req, &c, NULL, &res), MC_ERR_NONE);
    assert_true(res.usage.estimated);
    assert_int_equal(res.usage.prompt_tokens, tokens_estimate_messages(msgs, 1));
    assert_int_equal(res.usage.completion_tokens, tokens_estimate(c.text.data, c.text.len));
    assert_int_equal(res.usage.cached_tokens, 0);
    buf_free(&c.text);
}

/* A hostile message (terminal escapes, C0 and C1 controls, bidi overrides)
 * is quoted as text: the escapes are gone, the visible words remain, and
 * nothing else in the reply is a control character. */
static void offline_quotes_hostile_input_as_text(void **state)
{
    (void)state;
    const char *hostile = "\x1b[31mred\x1b[0m \x1b]0;owned\x07title \x9b"
                          "2J ok\xc2\x9b"
                          "1m \xe2\x80\xae"
                          "evil\r\nnext\tline\x7f";
    struct llm_message msgs[] = {{.role = "user", .content = hostile}};
    struct llm_request req = {.model = "offline", .messages = msgs, .n_messages = 1};
    struct capture c;
    capture_init(&c);
    struct llm_result res;
    assert_int_equal(run_offline(&req, &c, NULL, &res), MC_ERR_NONE);
    const char *s = buf_cstr(&c.text);
    assert_false(has_terminal_controls(s, c.text.len));
    assert_null(strstr(s, "\xe2\x80\xae")); /* RIGHT-TO-LEFT OVERRIDE */
    assert_true(utf8_valid(s, c.text.len, NULL));
    assert_non_null(strstr(s, "red"));
    assert_non_null(strstr(s, "title"));
    assert_non_null(strstr(s, "evil next line"));
    assert_null(strstr(s, "owned"));
    buf_free(&c.text);
}

/* The summary of a long message is cut at about 200 bytes on a character
 * boundary (here the limit falls inside a 3-byte character), marked with an
 * ellipsis; no delta splits a character, and the word count covers the
 * whole message. */
static void offline_summary_never_splits_utf8(void **state)
{
    (void)state;
    struct buf m;
    buf_init(&m, 1 << 16);
    for (int i = 0; i < 199; i++)
        assert_int_equal(buf_putc(&m, 'a'), BUF_OK);
    for (int i = 0; i < 500; i++)
        assert_int_equal(buf_puts(&m, "\xe6\x97\xa5"), BUF_OK); /* 日 */
    assert_int_equal(buf_puts(&m, " tail words here"), BUF_OK);
    struct llm_message msgs[] = {{.role = "user", .content = buf_cstr(&m)}};
    struct llm_request req = {.model = "offline", .messages = msgs, .n_messages = 1};
    struct capture c;
    capture_init(&c);
    struct llm_result res;
    assert_int_equal(run_offline(&req, &c, NULL, &res), MC_ERR_NONE);
    const char *s = buf_cstr(&c.text);
    assert_true(utf8_valid(s, c.text.len, NULL));
    assert_true(c.all_deltas_valid);
    assert_non_null(strstr(s, "You wrote 4 words: \""));
    const char *q = strstr(s, ": \"") + 3;
    const char *end = strstr(q, "\xe2\x80\xa6\""); /* the ellipsis closes the quote */
    assert_non_null(end);
    size_t quoted = (size_t)(end - q);
    assert_true(quoted <= 200);
    assert_true(quoted >= 197);
    assert_true(utf8_valid(q, quoted, NULL));
    assert_null(strstr(s, "tail words"));
    buf_free(&c.text);
    buf_free(&m);
}

/* Recalled notes replace "Nothing was recalled" with a short list. */
static void offline_lists_recalled_notes(void **state)
{
    (void)state;
    const char *notes[] = {"the user likes tea", "the user's cat is called\nMiso"};
    struct llm_message msgs[] = {{.role = "user", .content = "what do I like?"}};
    struct llm_request req = {
        .model = "offline", .messages = msgs, .n_messages = 1, .recalled = notes, .n_recalled = 2};
    struct capture c;
    capture_init(&c);
    struct llm_result res;
    assert_int_equal(run_offline(&req, &c, NULL, &res), MC_ERR_NONE);
    const char *s = buf_cstr(&c.text);
    assert_null(strstr(s, "Nothing was recalled"));
    assert_non_null(strstr(s, "Recalled from memory (2 notes):"));
    assert_non_null(strstr(s, "- the user likes tea\n"));
    assert_non_null(strstr(s, "- the user's cat is called Miso\n"));
    buf_free(&c.text);
}

/* The cancel flag stops the stream before the next delta, and a callback
 * asking to stop does too; both report MC_ERR_CANCELLED with what was sent. */
static void offline_stops_on_cancel(void **state)
{
    (void)state;
    struct llm_message msgs[] = {{.role = "user", .content = "stop me"}};
    struct llm_request req = {.model = "offline", .messages = msgs, .n_messages = 1};
    atomic_bool cancel;
    atomic_init(&cancel, true);
    struct capture c;
    capture_init(&c);
    struct llm_result res;
    assert_int_equal(run_offline(&req, &c, &cancel, &res), MC_ERR_CANCELLED);
    assert_int_equal(c.deltas, 0);
    assert_int_equal(res.deltas_sent, 0);

    atomic_store(&cancel, false);
    capture_init(&c);
    c.stop_after = 2;
    assert_int_equal(run_offline(&req, &c, &cancel, &res), MC_ERR_CANCELLED);
    assert_int_equal(c.deltas, 2);
    assert_int_equal(res.deltas_sent, 2);
    assert_int_equal(res.bytes_sent, c.text.len);
    buf_free(&c.text);
}

/* --- tokens and conversation ------------------------------------------------- */

/* ASCII counts 4 bytes a token, 2-byte characters 2 a token, wider ones one
 * each, rounded up; messages add their overhead. */
static void token_estimate_follows_the_documented_heuristic(void **state)
{
    (void)state;
    assert_int_equal(tokens_estimate("", 0), 0);
    assert_int_equal(tokens_estimate("abcd", 4), 1);
    assert_int_equal(tokens_estimate("abcde", 5), 2);
    assert_int_equal(tokens_estimate("\xc3\xa9\xc3\xa9", 4), 1);         /* éé */
    assert_int_equal(tokens_estimate("\xe6\x97\xa5\xe6\x9c\xac", 6), 2); /* 日本 */
    assert_int_equal(tokens_estimate("\xf0\x9f\x98\x80", 4), 1);         /* 😀 */
    assert_int_equal(tokens_estimate("\xff\xfe", 2), 2);                 /* invalid */
    struct llm_message m[] = {{.role = "user", .content = "abcd"},
                              {.role = "assistant", .content = "abcdabcd"}};
    assert_int_equal(tokens_estimate_message(&m[0]), 1 + TOKENS_PER_MESSAGE);
    assert_int_equal(tokens_estimate_messages(m, 2),
                     3 + 2 * TOKENS_PER_MESSAGE + TOKENS_PER_REQUEST);
}

/* 40 ASCII bytes: 10 tokens, 14 with the message overhead. */
#define FORTY "0123456789012345678901234567890123456789"

static struct conversation *conversation_of(size_t exchanges)
{
    struct conversation *c = conversation_new();
    for (size_t i = 0; i < exchanges; i++) {
        conversation_append(c, "user", FORTY);
        conversation_append(c, "assistant", FORTY);
    }
    return c;
}

/* Keeping the last n exchanges starts at the n-th user message from the
 * end; more than there are keeps all, zero keeps none. */
static void conversation_keeps_the_last_n_exchanges(void **state)
{
    (void)state;
    struct conversation *c = conversation_of(5);
    assert_int_equal(conversation_count(c), 10);
    assert_int_equal(conversation_start_last_exchanges(c, 2), 6);
    assert_string_equal(conversation_messages(c)[6].role, "user");
    assert_int_equal(conversation_start_last_exchanges(c, 1), 8);
    assert_int_equal(conversation_start_last_exchanges(c, 0), 10);
    assert_int_equal(conversation_start_last_exchanges(c, 10), 0);
    conversation_clear(c);
    assert_int_equal(conversation_count(c), 0);
    assert_int_equal(conversation_start_last_exchanges(c, 3), 0);
    conversation_free(c);
}

/* A token budget keeps the newest messages that fit, never opening with a
 * reply: 3 messages fit in 42 tokens, but the third from the end is a
 * reply, so only the last exchange is carried. */
static void conversation_trims_to_a_token_budget_on_exchange_boundaries(void **state)
{
    (void)state;
    struct conversation *c = conversation_of(3);
    assert_int_equal(tokens_estimate_message(&conversation_messages(c)[0]), 14);
    assert_int_equal(conversation_start_within_budget(c, 1000), 0);
    assert_int_equal(conversation_start_within_budget(c, 56), 2);
    assert_int_equal(conversation_start_within_budget(c, 55), 4);
    assert_int_equal(conversation_start_within_budget(c, 42), 4);
    assert_int_equal(conversation_start_within_budget(c, 28), 4);
    assert_int_equal(conversation_start_within_budget(c, 27), 6);
    assert_int_equal(conversation_start_within_budget(c, 0), 6);
    conversation_free(c);
}

/* --- the emitter ------------------------------------------------------------- */

/* turn.done carries every stage of MC_STAGE_LIST: numbers for computed
 * stages, null for the rest; usage and cost fields are null when unknown;
 * turn.start's step is null. */
static void emitter_writes_every_contract_field(void **state)
{
    (void)state;
    struct collector col = {.n = 0};
    int64_t seq = 0;
    struct emit em = {.turn = "0190b1f0-0000-7000-8000-000000000000",
                      .seq = &seq,
                      .sink = collect_sink,
                      .sink_ud = &col};
    double lat[MC_STAGE__COUNT];
    for (int i = 0; i < MC_STAGE__COUNT; i++)
        lat[i] = i % 2 == 0 ? (double)i + 0.5 : -1.0;
    emit_turn_start(&em, "t", "u", "a", "offline", "offline", true, NULL, NULL);
    struct llm_usage u = {.prompt_tokens = 12, .completion_tokens = -1, .cached_tokens = 0};
    emit_usage(&em, &u);
    emit_cost(&em, -1.0, "m");
    emit_turn_done(&em, lat);
    assert_int_equal(col.n, 4);
    assert_int_equal(seq, 4);
    for (size_t i = 0; i < col.n; i++) {
        assert_int_equal(col.evs[i]->seq, (int64_t)i);
        assert_string_equal(mc_event_str(col.evs[i], "turn", ""), em.turn);
        assert_int_equal((int64_t)mc_event_num(col.evs[i], "seq", -1), (int64_t)i);
    }
    const cJSON *start = col.evs[0]->json;
    const char *start_fields[] = {"tenant", "user", "agent", "provider", "model"};
    for (size_t i = 0; i < 5; i++)
        assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(start, start_fields[i])));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(start, "memory")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(start, "step")));

    const cJSON *usage = col.evs[1]->json;
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens")->valuedouble, 12);
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens")));
    assert_true(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(usage, "cached_tokens")));
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(usage, "estimated")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(col.evs[2]->json, "usd")));

    const cJSON *done = cJSON_GetObjectItemCaseSensitive(col.evs[3]->json, "latency_ms");
    assert_true(cJSON_IsObject(done));
    assert_int_equal(cJSON_GetArraySize(done), MC_STAGE__COUNT);
    for (int i = 0; i < MC_STAGE__COUNT; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(done, mc_stage_name((enum mc_stage)i));
        assert_non_null(v);
        if (i % 2 == 0)
            assert_true(cJSON_IsNumber(v) && v->valuedouble == (double)i + 0.5);
        else
            assert_true(cJSON_IsNull(v));
    }
    collector_clear(&col);
}

/* --- client_turn_run --------------------------------------------------------- */

struct turn_fixture {
    char *dir;
    struct config *cfg;
    struct llm_provider *provider;
    struct prices *prices;
    struct conversation *conv;
    atomic_bool cancel;
    struct turn_env env;
    struct collector col;
    int64_t seq;
    struct emit em;
};

static struct turn_fixture *fixture_new(const char *const *flags, size_t n_flags)
{
    struct turn_fixture *f = xcalloc(1, sizeof *f);
    f->dir = tu_mkdtemp();
    f->cfg = tu_config(f->dir, flags, n_flags);
    f->provider = llm_offline_new();
    /* The shipped price table, as the engine loads it (offline costs 0). */
    char shipped[4096], err[512];
    assert_int_equal(prices_shipped_path("", shipped, sizeof shipped), 0);
    if (prices_load(&f->prices, shipped, NULL, err, sizeof err) != 0)
        fail_msg("prices_load: %s", err);
    f->conv = conversation_new();
    atomic_init(&f->cancel, false);
    f->env = (struct turn_env){.cfg = f->cfg,
                               .provider = f->provider,
                               .model = "offline",
                               .conv = f->conv,
                               .cancel = &f->cancel,
                               .prices = f->prices};
    f->em = (struct emit){.turn = "0190b1f0-0000-7000-8000-000000000001",
                          .seq = &f->seq,
                          .sink = collect_sink,
                          .sink_ud = &f->col};
    return f;
}

static void fixture_free(struct turn_fixture *f)
{
    collector_clear(&f->col);
    conversation_free(f->conv);
    llm_provider_free(f->provider);
    prices_free(f->prices);
    config_free(f->cfg);
    tu_rmtree(f->dir);
    free(f->dir);
    xfree(f);
}

/* Runs one turn of text and returns the reply; events stay in f->col. */
static char *fixture_turn(struct turn_fixture *f, const char *text, enum mc_memory_override memory,
                          bool cont, struct turn_outcome *out)
{
    collector_clear(&f->col);
    f->seq = 0;
    struct turn_input in = {.turn = f->em.turn,
                            .tenant = "default",
                            .user = "tester",
                            .agent = "assistant",
                            .text = text,
                            .memory = memory,
                            .continue_conversation = cont};
    client_turn_run(&f->env, &in, &f->em, out);
    return collector_reply(&f->col);
}

/* A complete turn sends turn.start, rollout, the retrieve skip, deltas,
 * usage, cost and turn.done, in that order, with rollout reason "env"
 * (RAG_ENABLED's default is on) and the agent's built-in prompt. */
static void a_turn_sends_the_pipeline_events_in_order(void **state)
{
    (void)state;
    struct turn_fixture *f = fixture_new(NULL, 0);
    struct turn_outcome out;
    char *reply = fixture_turn(f, "hi", MC_MEMORY_DEFAULT, false, &out);
    assert_int_equal(out.status, TURN_OK);
    assert_true(out.memory);
    struct collector *c = &f->col;
    assert_true(c->n >= 7);
    assert_int_equal(c->evs[0]->kind, MC_EV_TURN_START);
    assert_int_equal(c->evs[1]->kind, MC_EV_ROLLOUT);
    assert_string_equal(mc_event_str(c->evs[1], "reason", ""), "env");
    assert_int_equal(c->evs[2]->kind, MC_EV_MEMORY_SKIPPED);
    assert_string_equal(mc_event_str(c->evs[2], "stage", ""), "retrieve");
    size_t i = 3;
    while (i < c->n && c->evs[i]->kind == MC_EV_DELTA)
        i++;
    assert_true(i > 4); /* several deltas */
    assert_int_equal(c->n, i + 3);
    assert_int_equal(c->evs[i]->kind, MC_EV_USAGE);
    assert_int_equal(c->evs[i + 1]->kind, MC_EV_COST);
    assert_int_equal(mc_event_num(c->evs[i + 1], "usd", -1), 0);
    assert_int_equal(c->evs[i + 2]->kind, MC_EV_TURN_DONE);
    assert_non_null(strstr(reply, "Agent: You are memchat's assistant"));
    xfree(reply);
    fixture_free(f);
}

/* A turn whose cancel flag is set before it starts sends only turn.start,
 * turn.cancelled {partial: false} and turn.done, and records nothing. */
static void a_turn_cancelled_before_start_reports_only_start_cancel_done(void **state)
{
    (void)state;
    struct turn_fixture *f = fixture_new(NULL, 0);
    atomic_store(&f->cancel, true);
    struct turn_outcome out;
    char *reply = fixture_turn(f, "never", MC_MEMORY_DEFAULT, true, &out);
    assert_int_equal(out.status, TURN_CANCELLED);
    assert_int_equal(f->col.n, 3);
    assert_int_equal(f->col.evs[0]->kind, MC_EV_TURN_START);
    assert_int_equal(f->col.evs[1]->kind, MC_EV_TURN_CANCELLED);
    assert_false(mc_event_bool(f->col.evs[1], "partial", true));
    assert_int_equal(f->col.evs[2]->kind, MC_EV_TURN_DONE);
    assert_int_equal(conversation_count(f->conv), 0);
    xfree(reply);
    fixture_free(f);
}

/* With continue_conversation, the second turn carries the first exchange
 * (the offline reply counts two user messages) and the conversation records
 * both; without it, nothing is carried or recorded. */
static void chat_continuation_carries_the_previous_exchange(void **state)
{
    (void)state;
    struct turn_fixture *f = fixture_new(NULL, 0);
    struct turn_outcome out;
    char *r1 = fixture_turn(f, "first", MC_MEMORY_DEFAULT, true, &out);
    assert_non_null(strstr(r1, "This is message 1 of"));
    assert_int_equal(conversation_count(f->conv), 2);
    assert_string_equal(conversation_messages(f->conv)[0].content, "first");
    assert_string_equal(conversation_messages(f->conv)[1].content, r1);
    char *r2 = fixture_turn(f, "second", MC_MEMORY_DEFAULT, true, &out);
    assert_non_null(strstr(r2, "This is message 2 of"));
    assert_int_equal(conversation_count(f->conv), 4);
    char *r3 = fixture_turn(f, "one-shot", MC_MEMORY_DEFAULT, false, &out);
    assert_non_null(strstr(r3, "This is message 1 of"));
    assert_int_equal(conversation_count(f->conv), 4);
    xfree(r1);
    xfree(r2);
    xfree(r3);
    fixture_free(f);
}

/* With memory on, a turn carries only MEMORY_HISTORY_TURNS exchanges; with
 * memory off (the session's --no-memory) it carries all that fit the
 * window, and the rollout reason is "session". */
static void memory_on_carries_only_the_configured_history(void **state)
{
    (void)state;
    const char *flags[] = {"MEMORY_HISTORY_TURNS=1"};
    struct turn_fixture *f = fixture_new(flags, 1);
    struct turn_outcome out;
    for (int i = 0; i < 3; i++) {
        char *r = fixture_turn(f, "again", MC_MEMORY_DEFAULT, true, &out);
        xfree(r);
    }
    char *on = fixture_turn(f, "with memory", MC_MEMORY_ON, true, &out);
    assert_non_null(strstr(on, "This is message 2 of"));
    assert_string_equal(mc_event_str(f->col.evs[1], "reason", ""), "session");
    assert_true(mc_event_bool(f->col.evs[1], "memory", false));
    char *off = fixture_turn(f, "without memory", MC_MEMORY_OFF, true, &out);
    assert_non_null(strstr(off, "This is message 5 of"));
    assert_false(out.memory);
    assert_string_equal(mc_event_str(f->col.evs[1], "reason", ""), "session");
    assert_false(mc_event_bool(f->col.evs[0], "memory", true));
    /* Memory off: no retrieve skip right after rollout. */
    assert_int_equal(f->col.evs[2]->kind, MC_EV_DELTA);
    xfree(on);
    xfree(off);
    fixture_free(f);
}

/* Any agent other than the default gets a prompt that names it. */
static void another_agent_gets_a_prompt_naming_it(void **state)
{
    (void)state;
    char *p = client_turn_agent_prompt("pirate");
    assert_non_null(strstr(p, "\"pirate\""));
    xfree(p);
    p = client_turn_agent_prompt("assistant");
    assert_non_null(strstr(p, "memchat's assistant"));
    xfree(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(offline_is_deterministic_and_says_it_is_offline),
        cmocka_unit_test(offline_usage_is_the_token_estimate),
        cmocka_unit_test(offline_quotes_hostile_input_as_text),
        cmocka_unit_test(offline_summary_never_splits_utf8),
        cmocka_unit_test(offline_lists_recalled_notes),
        cmocka_unit_test(offline_stops_on_cancel),
        cmocka_unit_test(token_estimate_follows_the_documented_heuristic),
        cmocka_unit_test(conversation_keeps_the_last_n_exchanges),
        cmocka_unit_test(conversation_trims_to_a_token_budget_on_exchange_boundaries),
        cmocka_unit_test(emitter_writes_every_contract_field),
        cmocka_unit_test(a_turn_sends_the_pipeline_events_in_order),
        cmocka_unit_test(a_turn_cancelled_before_start_reports_only_start_cancel_done),
        cmocka_unit_test(chat_continuation_carries_the_previous_exchange),
        cmocka_unit_test(memory_on_carries_only_the_configured_history),
        cmocka_unit_test(another_agent_gets_a_prompt_naming_it),
    };
    if (mc_global_init() != 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
