/*
 * Tests of tui/model: the TUI's view model fed with events parsed from the
 * JSON lines the engine sends (docs/events.md). A full turn fills every
 * field; cancelled and failed turns keep what they had; multi-step runs
 * place their steps after the run's newest step; unknown turns change
 * nothing; every string from an event is sanitised; the session's
 * aggregates (percentiles, the sparkline series, cache hit rate, totals)
 * survive model_clear; searches are answered by their job's result or
 * error; the sparkline and the Markdown export render what the model holds.
 */
#include "testutil.h"

#include <math.h>

#include "memchat/event.h"
#include "tui/model.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/hist.h"

#define T1  "01900000-0000-7000-8000-000000000001"
#define T2  "01900000-0000-7000-8000-000000000002"
#define T3  "01900000-0000-7000-8000-000000000003"
#define T4  "01900000-0000-7000-8000-000000000004"
#define JOB "01900000-0000-7000-8000-0000000000aa"

#define TS 1700000000123LL

/* U+FFFD, what the sanitiser puts for each invalid sequence. */
#define REPL "\xef\xbf\xbd"

/* Applies one event {"event": name, "turn": turn (NULL: null), "seq",
 * "ts_ms": ts, fields...}; fields is the rest of the object's members
 * ("" for none). Returns model_apply's answer. */
static bool apply_ts(struct model *m, const char *name, const char *turn, int64_t ts,
                     const char *fields)
{
    static int64_t seq; /* per test program: the model does not read it */
    char tq[64];
    snprintf(tq, sizeof tq, turn != NULL ? "\"%s\"" : "null", turn != NULL ? turn : "");
    char *line =
        xasprintf("{\"event\":\"%s\",\"turn\":%s,\"seq\":%lld,\"ts_ms\":%lld%s%s}", name, tq,
                  (long long)seq++, (long long)ts, fields[0] != '\0' ? "," : "", fields);
    char err[256];
    struct mc_event *ev = mc_event_parse(line, err, sizeof err);
    if (ev == NULL)
        fail_msg("bad test event %s: %s", line, err);
    bool changed = model_apply(m, ev);
    mc_event_free(ev);
    xfree(line);
    return changed;
}

static bool apply(struct model *m, const char *name, const char *turn, const char *fields)
{
    return apply_ts(m, name, turn, TS, fields);
}

/* The turn at entry i (asserting it is one). */
static const struct tm_turn *turn_at(const struct model *m, size_t i)
{
    const struct tm_entry *e = model_at(m, i);
    assert_non_null(e);
    assert_int_equal(e->kind, TM_TURN);
    return &e->u.turn;
}

/* A turn.start for turn with no step (outside a run). */
static void start(struct model *m, const char *turn)
{
    assert_true(apply(m, "turn.start", turn,
                      "\"tenant\":\"acme\",\"user\":\"alice\",\"agent\":\"helper\","
                      "\"provider\":\"openai\",\"model\":\"gpt-x\",\"memory\":true,"
                      "\"step\":null,\"conversation\":null"));
}

/* turn.done with the given total (ms) and only a few stages known. */
static void done_total(struct model *m, const char *turn, double total)
{
    char f[512];
    snprintf(f, sizeof f,
             "\"latency_ms\":{\"rollout\":0.1,\"retrieve\":null,\"inject\":null,"
             "\"minify\":null,\"cache\":null,\"ratelimit\":null,\"key\":null,"
             "\"first_token\":null,\"send\":null,\"tools\":null,\"total\":%.3f}",
             total);
    assert_true(apply(m, "turn.done", turn, f));
}

/* A whole turn from start to done with the given total. */
static void run_turn(struct model *m, const char *turn, double total)
{
    model_add_turn(m, turn, "hi", "acme", "alice", "helper");
    start(m, turn);
    done_total(m, turn, total);
}

static bool isnan_d(double v)
{
    return isnan(v);
}

/* A turn's whole life: start, rollout, three candidates (two kept, one
 * without any score), the injected block, three deltas, usage, cost, done
 * and the background store; every field of the turn and the session's
 * share of it come out as sent. */
static void a_full_turn_fills_every_field(void **state)
{
    (void)state;
    struct model *m = model_new();
    struct tm_turn *added = model_add_turn(m, T1, "What do I like?", "acme", "alice", "helper");
    assert_int_equal(added->state, TM_WAITING);
    assert_true(model_busy(m));

    assert_true(apply_ts(m, "turn.start", T1, TS + 5,
                         "\"tenant\":\"acme\",\"user\":\"alice\",\"agent\":\"helper\","
                         "\"provider\":\"openai\",\"model\":\"gpt-x\",\"memory\":true,"
                         "\"step\":null,\"conversation\":null"));
    assert_int_equal(turn_at(m, 0)->state, TM_STREAMING);
    assert_true(apply(m, "rollout", T1, "\"memory\":true,\"reason\":\"tenant\""));
    assert_true(apply(
        m, "memory.retrieved", T1,
        "\"method\":\"mmr\",\"k\":3,\"filter\":null,\"latency_ms\":12.5,\"candidates\":["
        "{\"id\":\"m1\",\"text\":\"likes tea\",\"user_id\":\"alice\",\"created_at\":1690000000000,"
        "\"score\":0.91,\"scores\":{\"vector\":0.9,\"keyword\":0.5,\"fused\":0.8,\"mmr\":0.91},"
        "\"kept\":true},"
        "{\"id\":\"m2\",\"text\":\"lives in Oslo\",\"user_id\":\"alice\","
        "\"created_at\":1690000001000,\"score\":0.7,"
        "\"scores\":{\"vector\":0.7,\"keyword\":null,\"fused\":null,\"mmr\":0.6},\"kept\":true},"
        "{\"id\":\"m3\",\"text\":\"old note\",\"user_id\":\"bob\",\"created_at\":1680000000000,"
        "\"score\":null,"
        "\"scores\":{\"vector\":null,\"keyword\":null,\"fused\":null,\"mmr\":null},\"kept\":false}"
        "]"));
    assert_true(apply(m, "memory.injected", T1,
                      "\"block\":\"Memories:\\n- likes tea\\n- lives in Oslo\",\"tokens\":14"));
    assert_true(apply(m, "delta", T1, "\"text\":\"Hello\""));
    assert_true(apply(m, "delta", T1, "\"text\":\", \""));
    assert_true(apply(m, "delta", T1, "\"text\":\"Alice!\""));
    assert_true(apply(m, "usage", T1,
                      "\"prompt_tokens\":120,\"completion_tokens\":7,\"cached_tokens\":0,"
                      "\"estimated\":false"));
    assert_true(apply(m, "cost", T1, "\"usd\":0.0025,\"model\":\"gpt-x\""));
    assert_true(model_busy(m));
    assert_true(apply(m, "turn.done", T1,
                      "\"latency_ms\":{\"rollout\":0.1,\"retrieve\":12.5,\"inject\":0.2,"
                      "\"minify\":null,\"cache\":null,\"ratelimit\":0,\"key\":0.3,"
                      "\"first_token\":80,\"send\":150,\"tools\":null,\"total\":170}"));
    assert_false(model_busy(m));
    assert_int_equal(turn_at(m, 0)->store, TM_STORE_PENDING);
    assert_true(apply(m, "memory.stored", T1, "\"ids\":[\"m4\"],\"latency_ms\":30"));

    assert_int_equal(model_count(m), 1);
    const struct tm_turn *t = turn_at(m, 0);
    assert_string_equal(t->id, T1);
    assert_string_equal(t->run, T1);
    assert_int_equal(t->step_index, 0);
    assert_int_equal(t->step_of, 0);
    assert_null(t->step_name);
    assert_string_equal(t->text, "What do I like?");
    assert_string_equal(t->tenant, "acme");
    assert_string_equal(t->user, "alice");
    assert_string_equal(t->agent, "helper");
    assert_string_equal(t->provider, "openai");
    assert_string_equal(t->model, "gpt-x");
    assert_string_equal(buf_cstr(&t->reply), "Hello, Alice!");
    assert_int_equal(t->state, TM_DONE);
    assert_null(t->error);
    assert_true(t->memory);
    assert_string_equal(t->rollout_reason, "tenant");
    assert_true(t->retrieved);
    assert_string_equal(t->method, "mmr");
    assert_int_equal(t->k, 3);
    assert_float_equal(t->retrieve_ms, 12.5, 1e-9);
    assert_int_equal(t->n_cand, 3);
    assert_int_equal(t->n_kept, 2);
    /* Kept first, in the order sent. */
    assert_string_equal(t->cand[0].id, "m1");
    assert_string_equal(t->cand[0].text, "likes tea");
    assert_string_equal(t->cand[0].user_id, "alice");
    assert_int_equal(t->cand[0].created_ms, 1690000000000LL);
    assert_float_equal(t->cand[0].score, 0.91, 1e-12);
    assert_float_equal(t->cand[0].vector, 0.9, 1e-12);
    assert_float_equal(t->cand[0].keyword, 0.5, 1e-12);
    assert_float_equal(t->cand[0].fused, 0.8, 1e-12);
    assert_float_equal(t->cand[0].mmr, 0.91, 1e-12);
    assert_true(t->cand[0].kept);
    assert_string_equal(t->cand[1].id, "m2");
    assert_float_equal(t->cand[1].vector, 0.7, 1e-12);
    assert_true(isnan_d(t->cand[1].keyword));
    assert_true(isnan_d(t->cand[1].fused));
    assert_float_equal(t->cand[1].mmr, 0.6, 1e-12);
    assert_true(t->cand[1].kept);
    assert_string_equal(t->cand[2].id, "m3");
    assert_string_equal(t->cand[2].user_id, "bob");
    assert_int_equal(t->cand[2].created_ms, 1680000000000LL);
    assert_true(isnan_d(t->cand[2].score));
    assert_true(isnan_d(t->cand[2].vector));
    assert_true(isnan_d(t->cand[2].keyword));
    assert_true(isnan_d(t->cand[2].fused));
    assert_true(isnan_d(t->cand[2].mmr));
    assert_false(t->cand[2].kept);
    assert_string_equal(t->injected, "Memories:\n- likes tea\n- lives in Oslo");
    assert_int_equal(t->injected_tokens, 14);
    assert_null(t->retrieve_skip);
    assert_int_equal(t->store, TM_STORE_STORED);
    assert_null(t->store_reason);
    assert_int_equal(t->cache, -1);
    assert_int_equal(t->retries, 0);
    assert_int_equal(t->tool_calls, 0);
    assert_int_equal(t->ratelimit_wait_ms, 0);
    assert_int_equal(t->minify_saved, 0);
    assert_int_equal(t->prompt_tokens, 120);
    assert_int_equal(t->completion_tokens, 7);
    assert_false(t->usage_estimated);
    assert_float_equal(t->usd, 0.0025, 1e-12);
    assert_int_equal(t->started_ms, TS + 5);
    /* Each stage by its name in MC_STAGE_LIST; null ones are NAN. */
    assert_float_equal(t->latency_ms[MC_STAGE_ROLLOUT], 0.1, 1e-12);
    assert_float_equal(t->latency_ms[MC_STAGE_RETRIEVE], 12.5, 1e-12);
    assert_float_equal(t->latency_ms[MC_STAGE_INJECT], 0.2, 1e-12);
    assert_true(isnan_d(t->latency_ms[MC_STAGE_MINIFY]));
    assert_true(isnan_d(t->latency_ms[MC_STAGE_CACHE]));
    assert_float_equal(t->latency_ms[MC_STAGE_RATELIMIT], 0.0, 1e-12);
    assert_float_equal(t->latency_ms[MC_STAGE_KEY], 0.3, 1e-12);
    assert_float_equal(t->latency_ms[MC_STAGE_FIRST_TOKEN], 80.0, 1e-12);
    assert_float_equal(t->latency_ms[MC_STAGE_SEND], 150.0, 1e-12);
    assert_true(isnan_d(t->latency_ms[MC_STAGE_TOOLS]));
    assert_float_equal(t->latency_ms[MC_STAGE_TOTAL], 170.0, 1e-12);

    const struct tm_session *s = model_session(m);
    assert_int_equal(s->turns, 1);
    assert_int_equal(s->prompt_tokens, 120);
    assert_int_equal(s->completion_tokens, 7);
    assert_float_equal(s->usd, 0.0025, 1e-12);
    assert_int_equal(s->n_series, 1);
    assert_float_equal(s->series[0], 170.0, 1e-12);
    /* Only known stages are recorded, in microseconds. */
    assert_int_equal(s->stage[MC_STAGE_TOTAL].total, 1);
    assert_int_equal(s->stage[MC_STAGE_TOTAL].max, 170000);
    assert_int_equal(s->stage[MC_STAGE_MINIFY].total, 0);
    assert_int_equal(s->stage[MC_STAGE_TOOLS].total, 0);
    assert_int_equal(s->cache_lookups, 0);
    assert_false(s->have_budget);
    assert_int_equal(model_latest(m), 0);
    assert_int_equal(model_find(m, T1), 0);
    model_free(m);
}

/* The markers of a turn: cache hit, retries, rate-limit waits summed,
 * minified bytes, tool calls, a skipped retrieval, estimated usage, a
 * null cost and the budget; the session counts the same. */
static void markers_and_figures_accumulate(void **state)
{
    (void)state;
    struct model *m = model_new();
    model_add_turn(m, T1, "hi", "acme", "alice", "helper");
    start(m, T1);
    assert_true(apply(m, "memory.skipped", T1,
                      "\"stage\":\"retrieve\",\"reason\":\"embedder_down\",\"message\":\"x\""));
    assert_true(
        apply(m, "minify", T1, "\"bytes_before\":1000,\"bytes_after\":600,\"tokens_saved\":100"));
    assert_true(
        apply(m, "minify", T1, "\"bytes_before\":50,\"bytes_after\":40,\"tokens_saved\":2"));
    assert_true(apply(m, "budget", T1,
                      "\"scope\":\"tenant\",\"reserved_usd\":0.01,\"remaining_usd\":4.5,"
                      "\"resets_at\":1700100000000"));
    assert_true(
        apply(m, "ratelimit.wait", T1, "\"scope\":\"user\",\"kind\":\"requests\",\"wait_ms\":120"));
    assert_true(
        apply(m, "ratelimit.wait", T1, "\"scope\":\"global\",\"kind\":\"tokens\",\"wait_ms\":30"));
    assert_true(apply(m, "cache", T1, "\"hit\":true,\"key_prefix\":\"0123456789abcdef\""));
    assert_true(
        apply(m, "retry", T1, "\"attempt\":1,\"status\":503,\"error\":null,\"delay_ms\":100"));
    assert_true(apply(m, "retry", T1,
                      "\"attempt\":2,\"status\":null,\"error\":\"timeout\",\"delay_ms\":200"));
    assert_true(apply(m, "tool.call", T1, "\"name\":\"clock\""));
    assert_true(apply(m, "usage", T1,
                      "\"prompt_tokens\":10,\"completion_tokens\":3,\"cached_tokens\":null,"
                      "\"estimated\":true"));
    assert_true(apply(m, "cost", T1, "\"usd\":null,\"model\":\"gpt-x\""));
    assert_true(apply(m, "memory.skipped", T1, "\"stage\":\"store\",\"reason\":\"queued\""));

    const struct tm_turn *t = turn_at(m, 0);
    assert_string_equal(t->retrieve_skip, "embedder_down");
    assert_false(t->retrieved);
    assert_int_equal(t->minify_saved, 400 + 10);
    assert_int_equal(t->ratelimit_wait_ms, 150);
    assert_int_equal(t->cache, 1);
    assert_int_equal(t->retries, 2);
    assert_int_equal(t->tool_calls, 1);
    assert_true(t->usage_estimated);
    assert_true(isnan_d(t->usd));
    assert_int_equal(t->store, TM_STORE_SKIPPED);
    assert_string_equal(t->store_reason, "queued");

    const struct tm_session *s = model_session(m);
    assert_int_equal(s->minify_saved, 410);
    assert_int_equal(s->retries, 2);
    assert_int_equal(s->cache_lookups, 1);
    assert_int_equal(s->cache_hits, 1);
    assert_float_equal(s->usd, 0.0, 0.0); /* a null cost adds nothing */
    assert_true(s->have_budget);
    assert_string_equal(s->budget_scope, "tenant");
    assert_float_equal(s->budget_remaining_usd, 4.5, 1e-12);
    assert_int_equal(s->budget_resets_ms, 1700100000000LL);
    model_free(m);
}

/* turn.cancelled keeps the reply streamed so far, and the turn.done that
 * follows does not turn it into a finished turn. */
static void a_cancelled_turn_keeps_its_partial_reply(void **state)
{
    (void)state;
    struct model *m = model_new();
    model_add_turn(m, T1, "tell me a story", "acme", "alice", "helper");
    start(m, T1);
    assert_true(apply(m, "delta", T1, "\"text\":\"Once upon\""));
    assert_true(apply(m, "turn.cancelled", T1, "\"partial\":true"));
    assert_int_equal(turn_at(m, 0)->state, TM_CANCELLED);
    done_total(m, T1, 40);
    assert_true(
        apply(m, "memory.skipped", T1, "\"stage\":\"store\",\"reason\":\"turn_cancelled\""));
    const struct tm_turn *t = turn_at(m, 0);
    assert_int_equal(t->state, TM_CANCELLED);
    assert_string_equal(buf_cstr(&t->reply), "Once upon");
    assert_int_equal(t->store, TM_STORE_SKIPPED);
    assert_string_equal(t->store_reason, "turn_cancelled");
    assert_false(model_busy(m));
    assert_int_equal(model_session(m)->turns, 1);
    model_free(m);
}

/* An error fails the turn with "code: message", and turn.done keeps it
 * failed. */
static void an_error_fails_the_turn_with_its_code_and_message(void **state)
{
    (void)state;
    struct model *m = model_new();
    model_add_turn(m, T1, "hi", "acme", "alice", "helper");
    start(m, T1);
    assert_true(apply(m, "error", T1,
                      "\"code\":\"provider\",\"message\":\"HTTP 401: check OPENAI_API_KEY\""));
    done_total(m, T1, 20);
    const struct tm_turn *t = turn_at(m, 0);
    assert_int_equal(t->state, TM_FAILED);
    assert_string_equal(t->error, "provider: HTTP 401: check OPENAI_API_KEY");
    assert_false(model_busy(m));
    model_free(m);
}

/* The steps of a run: the first step is the submitted turn (its step
 * fields come from its own turn.start); each later step becomes a new
 * turn entry right after the run's newest step, so a notice added
 * meanwhile and a later turn stay after the run; a step naming a run the
 * model does not hold is ignored. */
static void steps_of_a_run_follow_its_newest_step(void **state)
{
    (void)state;
    struct model *m = model_new();
    model_add_turn(m, T1, "plan a trip", "acme", "alice", "planner");
    assert_true(apply(m, "turn.start", T1,
                      "\"tenant\":\"acme\",\"user\":\"alice\",\"agent\":\"planner\","
                      "\"provider\":\"openai\",\"model\":\"gpt-x\",\"memory\":true,"
                      "\"step\":{\"index\":1,\"of\":3,\"name\":\"research\",\"run\":\"" T1 "\"}"));
    model_notice(m, TM_INFO, "theme %s", "mono");
    assert_true(apply(m, "turn.start", T2,
                      "\"tenant\":\"acme\",\"user\":\"alice\",\"agent\":\"planner\","
                      "\"provider\":\"openai\",\"model\":\"gpt-x\",\"memory\":false,"
                      "\"step\":{\"index\":2,\"of\":3,\"name\":\"draft\",\"run\":\"" T1 "\"}"));
    assert_true(apply(m, "delta", T2, "\"text\":\"step two\""));
    assert_true(apply(m, "turn.start", T3,
                      "\"tenant\":\"acme\",\"user\":\"alice\",\"agent\":\"planner\","
                      "\"provider\":\"openai\",\"model\":\"gpt-x\",\"memory\":false,"
                      "\"step\":{\"index\":3,\"of\":3,\"name\":\"review\",\"run\":\"" T1 "\"}"));
    /* A step of a run nobody here submitted. */
    assert_false(apply(m, "turn.start", T4,
                       "\"tenant\":\"acme\",\"user\":\"alice\",\"agent\":\"planner\","
                       "\"provider\":\"openai\",\"model\":\"gpt-x\",\"memory\":false,"
                       "\"step\":{\"index\":2,\"of\":2,\"name\":\"x\",\"run\":\"" JOB "\"}"));

    assert_int_equal(model_count(m), 4);
    const struct tm_turn *s1 = turn_at(m, 0), *s2 = turn_at(m, 1), *s3 = turn_at(m, 2);
    assert_string_equal(s1->id, T1);
    assert_string_equal(s1->run, T1);
    assert_int_equal(s1->step_index, 1);
    assert_int_equal(s1->step_of, 3);
    assert_string_equal(s1->step_name, "research");
    assert_string_equal(s1->text, "plan a trip");
    assert_string_equal(s2->id, T2);
    assert_string_equal(s2->run, T1);
    assert_int_equal(s2->step_index, 2);
    assert_string_equal(s2->step_name, "draft");
    assert_null(s2->text);
    assert_string_equal(s2->agent, "planner");
    assert_string_equal(s2->provider, "openai");
    assert_int_equal(s2->state, TM_STREAMING);
    assert_string_equal(buf_cstr(&s2->reply), "step two");
    assert_string_equal(s3->id, T3);
    assert_int_equal(s3->step_index, 3);
    assert_string_equal(s3->step_name, "review");
    assert_int_equal(model_at(m, 3)->kind, TM_NOTICE);
    assert_string_equal(model_at(m, 3)->u.notice.text, "theme mono");
    assert_int_equal(model_find(m, T3), 2);
    assert_int_equal(model_find(m, T4), -1);
    /* The newest turn entry is the notice's predecessor. */
    assert_int_equal(model_latest(m), 2);
    model_free(m);
}

/* Events of a turn the model does not hold, results of jobs it does not
 * hold and turn-less errors return false and change nothing. */
static void events_of_unknown_turns_and_jobs_change_nothing(void **state)
{
    (void)state;
    struct model *m = model_new();
    model_add_turn(m, T1, "hi", "acme", "alice", "helper");
    start(m, T1);
    assert_false(apply(m, "delta", T2, "\"text\":\"not mine\""));
    assert_false(apply(m, "turn.start", T2, "\"provider\":\"x\",\"step\":null"));
    assert_false(apply(m, "cache", T2, "\"hit\":true"));
    assert_false(apply(m, "retry", T2, "\"attempt\":1"));
    assert_false(apply(m, "turn.done", T2, "\"latency_ms\":{\"total\":5}"));
    assert_false(apply(m, "result", NULL, "\"job\":\"" JOB "\",\"kind\":\"limits\",\"items\":[]"));
    assert_false(apply(m, "error", NULL, "\"job\":\"" JOB "\",\"code\":\"io\",\"message\":\"x\""));
    assert_false(apply(m, "error", NULL, "\"code\":\"io\",\"message\":\"no job\""));
    assert_int_equal(model_count(m), 1);
    const struct tm_turn *t = turn_at(m, 0);
    assert_int_equal(t->reply.len, 0);
    assert_int_equal(t->state, TM_STREAMING);
    assert_int_equal(t->cache, -1);
    assert_int_equal(t->retries, 0);
    const struct tm_session *s = model_session(m);
    assert_int_equal(s->turns, 0);
    assert_int_equal(s->cache_lookups, 0);
    assert_int_equal(s->retries, 0);
    assert_int_equal(s->n_series, 0);
    model_free(m);
}

/* Escape sequences, bidi overrides and invalid UTF-8 never reach the
 * model: not in deltas, memory text, the injected block, error messages,
 * notices or the user's own text. */
static void text_from_events_is_sanitised(void **state)
{
    (void)state;
    struct model *m = model_new();
    model_add_turn(m, T1, "mine\x1b[2J", "acme", "alice", "helper");
    start(m, T1);
    assert_true(apply(m, "delta", T1, "\"text\":\"\\u001b[31mred\\u001b[0m \""));
    assert_true(apply(m, "delta", T1, "\"text\":\"bad\xff\""));
    assert_true(apply(m, "delta", T1, "\"text\":\"\\u202eevil\\u0007\\r\\n\""));
    assert_true(apply(m, "memory.retrieved", T1,
                      "\"method\":\"similarity\",\"k\":1,\"latency_ms\":1,\"candidates\":["
                      "{\"id\":\"m1\",\"text\":\"\\u001b]0;title\\u0007fact\xc3\",\"user_id\":"
                      "\"alice\",\"created_at\":1,\"score\":1,\"scores\":{},\"kept\":true}]"));
    assert_true(
        apply(m, "memory.injected", T1, "\"block\":\"\\u001b[1mMemories\\u009b\",\"tokens\":2"));
    assert_true(
        apply(m, "error", T1, "\"code\":\"provider\",\"message\":\"server said \\u001b[5mhi\""));
    model_notice(m, TM_ERROR, "file %s", "a\x1b[31mb\xfe");

    const struct tm_turn *t = turn_at(m, 0);
    assert_string_equal(t->text, "mine");
    /* Each delta alone: colour codes removed, 0xff replaced, the override,
     * the bell and the \r of \r\n dropped. */
    assert_string_equal(buf_cstr(&t->reply), "red bad" REPL "evil\n");
    /* The OSC title sequence goes whole; the truncated C3 becomes U+FFFD. */
    assert_string_equal(t->cand[0].text, "fact" REPL);
    assert_string_equal(t->injected, "Memories");
    assert_string_equal(t->error, "provider: server said hi");
    assert_string_equal(model_at(m, 1)->u.notice.text, "file ab" REPL);
    assert_int_equal(model_at(m, 1)->u.notice.level, TM_ERROR);
    model_free(m);
}

/* Fields of the wrong type fall back to their defaults instead of
 * crashing: strings where numbers go, numbers where strings go, a
 * candidate list that is an object, candidates that are not objects. */
static void malformed_fields_fall_back_to_defaults(void **state)
{
    (void)state;
    struct model *m = model_new();
    model_add_turn(m, T1, "hi", "acme", "alice", "helper");
    assert_true(apply(m, "turn.start", T1,
                      "\"tenant\":7,\"user\":\"../etc\",\"agent\":null,\"provider\":[],"
                      "\"model\":{},\"memory\":\"yes\",\"step\":\"one\""));
    assert_true(apply(m, "delta", T1, "\"text\":42"));
    assert_true(apply(m, "memory.retrieved", T1,
                      "\"method\":1,\"k\":\"3\",\"latency_ms\":\"fast\",\"candidates\":{}"));
    assert_true(apply(m, "usage", T1, "\"prompt_tokens\":\"many\",\"completion_tokens\":1e300"));
    assert_true(apply(m, "cost", T1, "\"usd\":\"free\""));
    assert_true(apply(m, "turn.done", T1, "\"latency_ms\":[1,2,3]"));
    const struct tm_turn *t = turn_at(m, 0);
    /* The identifiers the front end gave stay when the event's are bad. */
    assert_string_equal(t->tenant, "acme");
    assert_string_equal(t->user, "alice");
    assert_string_equal(t->agent, "helper");
    assert_null(t->provider);
    assert_null(t->model);
    assert_false(t->memory);
    assert_int_equal(t->step_of, 0);
    assert_int_equal(t->reply.len, 0);
    assert_true(t->retrieved);
    assert_null(t->method);
    assert_int_equal(t->k, 0);
    assert_true(isnan_d(t->retrieve_ms));
    assert_int_equal(t->n_cand, 0);
    assert_int_equal(t->prompt_tokens, -1);
    assert_int_equal(t->completion_tokens, -1);
    assert_true(isnan_d(t->usd));
    assert_int_equal(t->state, TM_DONE);
    for (int i = 0; i < MC_STAGE__COUNT; i++)
        assert_true(isnan_d(t->latency_ms[i]));
    /* A done turn without a known total adds no point to the series. */
    assert_int_equal(model_session(m)->n_series, 0);
    assert_int_equal(model_session(m)->turns, 1);

    /* Candidates that are not objects become empty candidates. */
    assert_true(apply(m, "memory.retrieved", T1,
                      "\"method\":\"mmr\",\"k\":2,\"latency_ms\":1,\"candidates\":[1,null]"));
    t = turn_at(m, 0);
    assert_int_equal(t->n_cand, 2);
    assert_string_equal(t->cand[1].text, "");
    assert_true(isnan_d(t->cand[1].score));
    assert_int_equal(t->n_kept, 0);
    model_free(m);
}

/* created_at is Unix ms as a number (what the engine sends); a string of
 * digits and an RFC 3339 time are read as well, and anything else is 0. */
static void created_at_is_read_as_number_or_string(void **state)
{
    (void)state;
    struct model *m = model_new();
    model_add_turn(m, T1, "hi", "acme", "alice", "helper");
    start(m, T1);
    assert_true(apply(m, "memory.retrieved", T1,
                      "\"method\":\"mmr\",\"k\":5,\"latency_ms\":1,\"candidates\":["
                      "{\"id\":\"a\",\"created_at\":1714564800250},"
                      "{\"id\":\"b\",\"created_at\":\"1714564800250\"},"
                      "{\"id\":\"c\",\"created_at\":\"2024-05-01T12:00:00.250Z\"},"
                      "{\"id\":\"d\",\"created_at\":\"2024-05-01T14:00:00.250+02:00\"},"
                      "{\"id\":\"e\",\"created_at\":\"yesterday\"}]"));
    const struct tm_turn *t = turn_at(m, 0);
    assert_int_equal(t->n_cand, 5);
    /* 2024-05-01 is day 19844 since the epoch (54 years with 13 leap
     * days up to 2024-01-01 = 19723 days, plus 121 days of 2024 before
     * May); 12:00 adds 43200 s. */
    const int64_t want = (19844LL * 86400 + 43200) * 1000 + 250;
    assert_int_equal(want, 1714564800250LL);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(t->cand[i].created_ms, want);
    assert_int_equal(t->cand[4].created_ms, 0);
    model_free(m);
}

/* The session over several turns: turn count, token and cost totals,
 * p50 of the total from the histogram, and the cache hit rate. */
static void session_aggregates_span_turns(void **state)
{
    (void)state;
    struct model *m = model_new();
    const char *ids[] = {T1, T2, T3};
    const double totals[] = {100, 300, 200};
    for (int i = 0; i < 3; i++) {
        model_add_turn(m, ids[i], "hi", "acme", "alice", "helper");
        start(m, ids[i]);
        assert_true(apply(m, "cache", ids[i], i == 1 ? "\"hit\":true" : "\"hit\":false"));
        assert_true(apply(m, "usage", ids[i],
                          "\"prompt_tokens\":100,\"completion_tokens\":10,\"estimated\":false"));
        assert_true(apply(m, "cost", ids[i], "\"usd\":0.5"));
        done_total(m, ids[i], totals[i]);
    }
    const struct tm_session *s = model_session(m);
    assert_int_equal(s->turns, 3);
    assert_int_equal(s->prompt_tokens, 300);
    assert_int_equal(s->completion_tokens, 30);
    assert_float_equal(s->usd, 1.5, 1e-12);
    assert_int_equal(s->cache_lookups, 3);
    assert_int_equal(s->cache_hits, 1);
    /* The median of 100, 300 and 200 ms is 200 ms = 200000 µs; the
     * histogram answers the upper edge of its bucket, at most 1/32 above. */
    uint64_t p50 = hist_percentile(&s->stage[MC_STAGE_TOTAL], 50);
    assert_true(p50 >= 200000 && p50 <= 200000 + 200000 / 32);
    assert_int_equal(hist_percentile(&s->stage[MC_STAGE_TOTAL], 100), 300000);
    /* The series keeps the totals in arrival order. */
    assert_int_equal(s->n_series, 3);
    assert_float_equal(s->series[0], 100, 1e-12);
    assert_float_equal(s->series[1], 300, 1e-12);
    assert_float_equal(s->series[2], 200, 1e-12);
    model_free(m);
}

/* Past MODEL_SERIES turns the series keeps the newest ones, oldest first. */
static void the_series_keeps_the_newest_turns(void **state)
{
    (void)state;
    struct model *m = model_new();
    const int n = MODEL_SERIES + 6;
    for (int i = 1; i <= n; i++) {
        char id[MC_UUID_STRLEN + 1];
        snprintf(id, sizeof id, "01900000-0000-7000-8000-%012d", i);
        run_turn(m, id, (double)i);
    }
    const struct tm_session *s = model_session(m);
    assert_int_equal(s->turns, n);
    assert_int_equal(s->n_series, MODEL_SERIES);
    /* Turns 1..6 fell out: the oldest kept is turn 7, the newest turn n. */
    for (int i = 0; i < MODEL_SERIES; i++)
        assert_float_equal(s->series[i], (double)(i + 7), 1e-12);
    assert_int_equal(s->stage[MC_STAGE_TOTAL].total, (uint64_t)n);
    model_free(m);
}

/* model_clear forgets every entry but keeps the session's figures; new
 * turns keep adding to them. */
static void clear_forgets_entries_but_keeps_the_aggregates(void **state)
{
    (void)state;
    struct model *m = model_new();
    run_turn(m, T1, 50);
    model_add_search(m, JOB, "tea");
    model_notice(m, TM_INFO, "hello");
    model_add_turn(m, T2, "pending", "acme", "alice", "helper");
    assert_true(model_busy(m));
    model_clear(m);
    assert_int_equal(model_count(m), 0);
    assert_null(model_at(m, 0));
    assert_int_equal(model_latest(m), -1);
    assert_int_equal(model_find(m, T1), -1);
    assert_false(model_busy(m));
    /* An event of a forgotten turn is now unknown. */
    assert_false(apply(m, "delta", T2, "\"text\":\"late\""));
    const struct tm_session *s = model_session(m);
    assert_int_equal(s->turns, 1);
    assert_int_equal(s->n_series, 1);
    run_turn(m, T3, 70);
    assert_int_equal(s->turns, 2);
    assert_int_equal(s->n_series, 2);
    assert_float_equal(s->series[1], 70, 1e-12);
    assert_int_equal(model_count(m), 1);
    model_free(m);
}

/* A search is answered by its job's result (items as candidates, all
 * found, best first) and stays the newest entry for model_latest. */
static void a_search_result_fills_the_search(void **state)
{
    (void)state;
    struct model *m = model_new();
    run_turn(m, T1, 10);
    struct tm_search *se = model_add_search(m, JOB, "what \x1b[1mtea");
    assert_string_equal(se->query, "what tea");
    assert_false(se->answered);
    assert_int_equal(model_latest(m), 1);
    assert_int_equal(model_find(m, JOB), 1);
    assert_true(apply(
        m, "result", NULL,
        "\"job\":\"" JOB "\",\"kind\":\"search\",\"items\":["
        "{\"id\":\"m1\",\"text\":\"likes green tea\",\"score\":0.8,"
        "\"scores\":{\"vector\":0.8,\"keyword\":null,\"fused\":null,\"mmr\":null},"
        "\"user_id\":\"alice\",\"agent\":\"helper\",\"kind\":\"fact\",\"created_at\":1000,"
        "\"metadata\":{}},"
        "{\"id\":\"m2\",\"text\":\"hates coffee\",\"score\":0.4,\"scores\":{},\"user_id\":\"bob\","
        "\"agent\":\"helper\",\"kind\":\"fact\",\"created_at\":2000,\"metadata\":{}}]"));
    const struct tm_search *got = &model_at(m, 1)->u.search;
    assert_true(got->answered);
    assert_null(got->error);
    assert_int_equal(got->n_cand, 2);
    assert_string_equal(got->cand[0].id, "m1");
    assert_string_equal(got->cand[0].text, "likes green tea");
    assert_float_equal(got->cand[0].score, 0.8, 1e-12);
    assert_float_equal(got->cand[0].vector, 0.8, 1e-12);
    assert_true(isnan_d(got->cand[0].keyword));
    assert_int_equal(got->cand[0].created_ms, 1000);
    assert_true(got->cand[0].kept);
    assert_string_equal(got->cand[1].user_id, "bob");
    assert_true(isnan_d(got->cand[1].mmr));
    model_free(m);
}

/* An error carrying the job fails the search with "code: message". */
static void a_search_error_is_kept_on_the_search(void **state)
{
    (void)state;
    struct model *m = model_new();
    model_add_search(m, JOB, "tea");
    assert_true(apply(m, "error", NULL,
                      "\"job\":\"" JOB "\",\"code\":\"config\","
                      "\"message\":\"namespace acme was made with another embedder\""));
    const struct tm_search *se = &model_at(m, 0)->u.search;
    assert_true(se->answered);
    assert_string_equal(se->error, "config: namespace acme was made with another embedder");
    assert_int_equal(se->n_cand, 0);
    /* A search is not a turn: nothing is busy. */
    assert_false(model_busy(m));
    model_free(m);
}

/* Reads the bars of a sparkline back as levels 0..7 (U+2581 + level). */
static size_t spark_levels(const char *s, int *levels, size_t max)
{
    size_t n = 0, len = strlen(s);
    assert_int_equal(len % 3, 0);
    for (size_t i = 0; i < len; i += 3) {
        assert_int_equal((unsigned char)s[i], 0xe2);
        assert_int_equal((unsigned char)s[i + 1], 0x96);
        int level = (unsigned char)s[i + 2] - 0x81;
        assert_true(level >= 0 && level <= 7);
        assert_true(n < max);
        levels[n++] = level;
    }
    return n;
}

/* Bars are scaled from 0 to the largest value shown, rounded to the
 * nearest of the eight levels: for {0, 4, 8}, 0 is level 0, 4 is
 * 4/8*7 = 3.5 -> 4, 8 is level 7. Only the newest `width` values are
 * drawn; all zeros are all lowest bars; nothing for no values. */
static void sparkline_scales_from_zero_to_the_largest(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 1024);
    int lv[16];

    const double v1[] = {0, 4, 8};
    model_sparkline(v1, 3, 3, &b);
    /* Levels 0, 4, 7 are U+2581, U+2585 and U+2588. */
    assert_string_equal(buf_cstr(&b), "\xe2\x96\x81\xe2\x96\x85\xe2\x96\x88");
    assert_string_equal(buf_cstr(&b), "▁▅█");
    buf_reset(&b);

    /* Newest three of five: {10, 20, 40}, scaled by 40: 10/40*7 = 1.75 -> 2,
     * 20/40*7 = 3.5 -> 4, 7. The older 1000 does not set the scale. */
    const double v2[] = {1000, 5, 10, 20, 40};
    model_sparkline(v2, 5, 3, &b);
    assert_int_equal(spark_levels(buf_cstr(&b), lv, 16), 3);
    assert_int_equal(lv[0], 2);
    assert_int_equal(lv[1], 4);
    assert_int_equal(lv[2], 7);
    buf_reset(&b);

    /* Narrower than the width: one bar per value; 1/7 of the max is
     * exactly level 1. */
    const double v3[] = {7, 1, 0};
    model_sparkline(v3, 3, 10, &b);
    assert_int_equal(spark_levels(buf_cstr(&b), lv, 16), 3);
    assert_int_equal(lv[0], 7);
    assert_int_equal(lv[1], 1);
    assert_int_equal(lv[2], 0);
    buf_reset(&b);

    const double zeros[] = {0, 0, 0, 0};
    model_sparkline(zeros, 4, 8, &b);
    assert_int_equal(spark_levels(buf_cstr(&b), lv, 16), 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(lv[i], 0);
    buf_reset(&b);

    model_sparkline(v1, 0, 8, &b);
    assert_int_equal(b.len, 0);
    model_sparkline(v1, 3, 0, &b);
    assert_int_equal(b.len, 0);
    buf_free(&b);
}

/* The Markdown export holds the header, the user's text as a quote, who
 * answered with provider/model, the reply, the step headings of a run,
 * the cancelled and failed markers (closing a code fence a cut-off reply
 * left open), notices in italics, and searches as
 * lists with their scores. */
static void markdown_export_contains_the_conversation(void **state)
{
    (void)state;
    struct model *m = model_new();
    model_add_turn(m, T1, "first line\nsecond line", "acme", "alice", "helper");
    start(m, T1);
    assert_true(apply(m, "delta", T1, "\"text\":\"Tea, green.\""));
    done_total(m, T1, 10);
    model_add_turn(m, T2, "plan", "acme", "alice", "planner");
    assert_true(apply(m, "turn.start", T2,
                      "\"tenant\":\"acme\",\"user\":\"alice\",\"agent\":\"planner\","
                      "\"provider\":\"anthropic\",\"model\":\"claude-x\",\"memory\":true,"
                      "\"step\":{\"index\":1,\"of\":2,\"name\":\"research\",\"run\":\"" T2 "\"}"));
    assert_true(apply(m, "delta", T2, "\"text\":\"half\\n```c\\nint x\""));
    assert_true(apply(m, "turn.cancelled", T2, "\"partial\":true"));
    assert_true(apply(m, "turn.start", T3,
                      "\"tenant\":\"acme\",\"user\":\"alice\",\"agent\":\"planner\","
                      "\"provider\":\"anthropic\",\"model\":\"claude-x\",\"memory\":true,"
                      "\"step\":{\"index\":2,\"of\":2,\"name\":\"write\",\"run\":\"" T2 "\"}"));
    assert_true(apply(m, "error", T3, "\"code\":\"network\",\"message\":\"timeout\""));
    model_notice(m, TM_INFO, "switched to %s", "mono");
    model_add_search(m, JOB, "tea");
    assert_true(apply(m, "result", NULL,
                      "\"job\":\"" JOB "\",\"kind\":\"search\",\"items\":["
                      "{\"id\":\"m1\",\"text\":\"likes green tea\",\"score\":0.875,"
                      "\"user_id\":\"alice\"}]"));

    struct buf b;
    buf_init(&b, 1 << 20);
    model_export_markdown(m, &b);
    const char *md = buf_cstr(&b);
    assert_true(strncmp(md, "# memchat conversation\n", 23) == 0);
    assert_non_null(strstr(md, "## You\n\n> first line\n> second line\n"));
    assert_non_null(strstr(md, "## helper (openai/gpt-x)\n\nTea, green.\n"));
    assert_non_null(strstr(md, "## planner (anthropic/claude-x)\n"));
    /* The fence the cancelled reply left open is closed before the marker. */
    assert_non_null(
        strstr(md, "### step 1 of 2: research\n\nhalf\n```c\nint x\n```\n\n_(cancelled)_"));
    assert_non_null(strstr(md, "_(cancelled)_"));
    assert_non_null(strstr(md, "### step 2 of 2: write\n"));
    assert_non_null(strstr(md, "_(error: network: timeout)_"));
    assert_non_null(strstr(md, "_switched to mono_"));
    assert_non_null(strstr(md, "- likes green tea\n  (score 0.875, user alice)\n"));
    /* In order: the first turn, the run, the notice, the search. */
    assert_true(strstr(md, "Tea, green.") < strstr(md, "research"));
    assert_true(strstr(md, "_(cancelled)_") < strstr(md, "step 2 of 2"));
    assert_true(strstr(md, "step 2 of 2") < strstr(md, "_switched"));
    assert_true(strstr(md, "_switched") < strstr(md, "likes green tea"));
    /* The later step has no "## You" of its own: the user spoke once per
     * turn submitted, twice here. */
    const char *p = md;
    int yous = 0;
    while ((p = strstr(p, "## You")) != NULL) {
        yous++;
        p++;
    }
    assert_int_equal(yous, 2);
    buf_free(&b);
    model_free(m);
}

/* backend.fallback: every turn that fell back is marked and counted; the
 * outage is told once as a notice, and again only after a turn ran on the
 * shared backend in between. */
static void a_fallback_is_told_once_per_outage(void **state)
{
    (void)state;
    struct model *m = model_new();
    static const char *const ids[] = {"t1", "t2", "t3", "t4"};
    /* t1, t2: Redis down; t3: back; t4: down again. */
    static const bool down[] = {true, true, false, true};
    size_t notices = 0;
    for (size_t i = 0; i < 4; i++) {
        model_add_turn(m, ids[i], "hi", "acme", "alice", "helper");
        start(m, ids[i]);
        if (down[i]) {
            assert_true(apply(m, "backend.fallback", ids[i],
                              "\"backend\":\"ratelimit\",\"reason\":\"rate limits: Redis at "
                              "127.0.0.1:6379/0 is unreachable\""));
            /* A second fallback of the same turn counts once. */
            assert_true(apply(m, "backend.fallback", ids[i],
                              "\"backend\":\"cache\",\"reason\":\"cache down\""));
        }
        done_total(m, ids[i], 5);
    }
    for (size_t i = 0; i < model_count(m); i++) {
        const struct tm_entry *e = model_at(m, i);
        if (e->kind == TM_NOTICE) {
            notices++;
            assert_non_null(strstr(e->u.notice.text, "shared ratelimit unavailable"));
            assert_non_null(strstr(e->u.notice.text, "127.0.0.1:6379"));
        } else if (e->kind == TM_TURN) {
            bool expect = strcmp(e->u.turn.id, "t3") != 0;
            assert_int_equal(e->u.turn.fell_back, expect);
        }
    }
    assert_int_equal(notices, 2);
    assert_int_equal(model_session(m)->fallbacks, 3);
    model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_full_turn_fills_every_field),
        cmocka_unit_test(markers_and_figures_accumulate),
        cmocka_unit_test(a_cancelled_turn_keeps_its_partial_reply),
        cmocka_unit_test(an_error_fails_the_turn_with_its_code_and_message),
        cmocka_unit_test(steps_of_a_run_follow_its_newest_step),
        cmocka_unit_test(events_of_unknown_turns_and_jobs_change_nothing),
        cmocka_unit_test(text_from_events_is_sanitised),
        cmocka_unit_test(malformed_fields_fall_back_to_defaults),
        cmocka_unit_test(created_at_is_read_as_number_or_string),
        cmocka_unit_test(session_aggregates_span_turns),
        cmocka_unit_test(the_series_keeps_the_newest_turns),
        cmocka_unit_test(clear_forgets_entries_but_keeps_the_aggregates),
        cmocka_unit_test(a_search_result_fills_the_search),
        cmocka_unit_test(a_search_error_is_kept_on_the_search),
        cmocka_unit_test(sparkline_scales_from_zero_to_the_largest),
        cmocka_unit_test(markdown_export_contains_the_conversation),
        cmocka_unit_test(a_fallback_is_told_once_per_outage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
