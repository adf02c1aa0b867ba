/*
 * Tests of the engine (include/memchat/engine.h): the event contract of a
 * whole turn as front ends see it (order, fields, seq, ts_ms, the store
 * stage after turn.done), memory decided by the session and RAG_ENABLED,
 * the event queue under both workers, cancel of running and queued turns,
 * shutdown during a blocked turn, input validation, a damaged data file,
 * conversation reset, and the metrics row. A fake provider that blocks
 * until cancelled (on a condition variable, woken by the engine's interrupt
 * hook) drives the cancel paths. Nothing sleeps: the tests wait on the
 * engine's wake-up descriptor, with a 30 s timeout only as a hang guard.
 */
#include "tu_config.h"

#include <cJSON.h>
#include <poll.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>

#include "config/config.h"
#include "engine/engine_internal.h"
#include "llm/provider.h"
#include "memchat/engine.h"
#include "memchat/error.h"
#include "store/db.h"
#include "store/metrics.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/paths.h"

#define HANG_GUARD_MS 30000

/* --- the fake provider ------------------------------------------------------- */

/* State shared between the test and the fake provider; owned by the test
 * so it can be read after the engine (and the provider table) is gone. */
struct fake {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int blocked_returns; /* chats that blocked and then saw cancel */
    int interrupts;
};

static const char *fake_last_user(const struct llm_request *req)
{
    for (size_t i = req->n_messages; i > 0; i--)
        if (strcmp(req->messages[i - 1].role, "user") == 0)
            return req->messages[i - 1].content;
    return "";
}

/* "block": one delta, then wait until cancelled. Anything else: "ok". */
static enum mc_error fake_chat(const struct llm_provider *p, const struct llm_request *req,
                               llm_delta_fn on_delta, void *ud, const atomic_bool *cancel,
                               struct llm_result *res, char *err, size_t errlen)
{
    struct fake *f = p->impl;
    memset(res, 0, sizeof *res);
    res->usage = (struct llm_usage){.prompt_tokens = 7, .completion_tokens = 1, .cached_tokens = 0};
    if (strcmp(fake_last_user(req), "block") != 0) {
        res->deltas_sent = 1;
        on_delta(ud, "ok", 2);
        return MC_ERR_NONE;
    }
    res->deltas_sent = 1;
    on_delta(ud, "partial ", 8);
    pthread_mutex_lock(&f->lock);
    while (!atomic_load(cancel))
        pthread_cond_wait(&f->cond, &f->lock);
    f->blocked_returns++;
    pthread_mutex_unlock(&f->lock);
    snprintf(err, errlen, "fake: cancelled");
    return MC_ERR_CANCELLED;
}

static void fake_interrupt(const struct llm_provider *p)
{
    struct fake *f = p->impl;
    pthread_mutex_lock(&f->lock);
    f->interrupts++;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
}

static struct llm_provider *fake_provider(struct fake *f)
{
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->cond, NULL);
    f->blocked_returns = 0;
    f->interrupts = 0;
    struct llm_provider *p = xcalloc(1, sizeof *p);
    p->name = "fake";
    p->default_model = "fake-1";
    p->context_window = 1000;
    p->reply_reserve = 100;
    p->impl = f;
    p->chat = fake_chat;
    p->interrupt = fake_interrupt;
    return p; /* no cost_usd: the fake model has no price */
}

static void fake_destroy(struct fake *f)
{
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->lock);
}

/* --- fixtures ---------------------------------------------------------------- */

struct fixture {
    char *dir;
    struct config *cfg;
    struct mc_engine *eng;
    struct fake fake;
    bool has_fake;
    /* every event taken from the engine, in queue order */
    struct mc_event **evs;
    size_t n, cap;
};

/* An engine on a fresh data dir; with_fake selects the fake provider. */
static struct fixture *fixture_new(bool with_fake, const char *const *flags, size_t n_flags)
{
    struct fixture *f = xcalloc(1, sizeof *f);
    f->dir = tu_mkdtemp();
    f->cfg = tu_config(f->dir, flags, n_flags);
    f->has_fake = with_fake;
    char err[512] = "";
    int code = -1;
    struct llm_provider *p = with_fake ? fake_provider(&f->fake) : NULL;
    f->eng = engine_new_with_provider(f->cfg, p, &code, err, sizeof err);
    if (f->eng == NULL)
        fail_msg("mc_engine_new: %s", err);
    assert_int_equal(code, MC_ERR_NONE);
    return f;
}

static void fixture_stop(struct fixture *f)
{
    mc_engine_free(f->eng);
    f->eng = NULL;
}

static void fixture_free(struct fixture *f)
{
    if (f->eng != NULL)
        fixture_stop(f);
    for (size_t i = 0; i < f->n; i++)
        mc_event_free(f->evs[i]);
    xfree(f->evs);
    if (f->has_fake)
        fake_destroy(&f->fake);
    config_free(f->cfg);
    tu_rmtree(f->dir);
    free(f->dir);
    xfree(f);
}

static void fixture_pull(struct fixture *f)
{
    struct mc_event *ev;
    while ((ev = mc_engine_next_event(f->eng)) != NULL) {
        if (f->n == f->cap) {
            f->cap = f->cap ? f->cap * 2 : 64;
            f->evs = xreallocarray(f->evs, f->cap, sizeof *f->evs);
        }
        f->evs[f->n++] = ev;
    }
}

typedef bool (*fixture_pred)(const struct fixture *f, const void *arg);

/* Takes events until pred holds, waiting on the wake-up descriptor. */
static void fixture_wait(struct fixture *f, fixture_pred pred, const void *arg)
{
    for (;;) {
        fixture_pull(f);
        if (pred(f, arg))
            return;
        struct pollfd p = {.fd = mc_engine_wake_fd(f->eng), .events = POLLIN};
        int r = poll(&p, 1, HANG_GUARD_MS);
        if (r == 0)
            fail_msg("no event for %d ms: the engine hangs", HANG_GUARD_MS);
        assert_true(r > 0 || errno == EINTR);
    }
}

static bool is_store_report(const struct mc_event *ev)
{
    return ev->kind == MC_EV_MEMORY_STORED || (ev->kind == MC_EV_MEMORY_SKIPPED &&
                                               strcmp(mc_event_str(ev, "stage", ""), "store") == 0);
}

/* The turn has its turn.done and its store-stage report. */
static bool turn_finished(const struct fixture *f, const void *arg)
{
    const char *turn = arg;
    bool done = false, stored = false;
    for (size_t i = 0; i < f->n; i++) {
        if (strcmp(f->evs[i]->turn, turn) != 0)
            continue;
        done |= f->evs[i]->kind == MC_EV_TURN_DONE;
        stored |= is_store_report(f->evs[i]);
    }
    return done && stored;
}

static bool turn_has_delta(const struct fixture *f, const void *arg)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->evs[i]->turn, arg) == 0 && f->evs[i]->kind == MC_EV_DELTA)
            return true;
    return false;
}

/* The events of one turn, in queue order (at most max). */
static size_t turn_events(const struct fixture *f, const char *turn, const struct mc_event **out,
                          size_t max)
{
    size_t k = 0;
    for (size_t i = 0; i < f->n && k < max; i++)
        if (strcmp(f->evs[i]->turn, turn) == 0)
            out[k++] = f->evs[i];
    return k;
}

static void submit(struct fixture *f, const char *text, enum mc_memory_override memory, bool cont,
                   char turn[MC_UUID_STRLEN + 1])
{
    struct mc_turn_request req = {.text = text, .memory = memory, .continue_conversation = cont};
    char err[512] = "";
    if (mc_engine_submit_turn(f->eng, &req, turn, err, sizeof err) != 0)
        fail_msg("submit: %s", err);
}

/* Runs one turn to its store report and returns its events. */
static size_t run_turn(struct fixture *f, const char *text, enum mc_memory_override memory,
                       bool cont, char turn[MC_UUID_STRLEN + 1], const struct mc_event **out,
                       size_t max)
{
    submit(f, text, memory, cont, turn);
    fixture_wait(f, turn_finished, turn);
    return turn_events(f, turn, out, max);
}

/* seq runs 0..n-1 in queue order and ts_ms never decreases. */
static void assert_seq_and_time(const struct mc_event *const *evs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(evs[i]->seq, (int64_t)i);
        assert_int_equal((int64_t)mc_event_num(evs[i], "seq", -1), (int64_t)i);
        assert_true(evs[i]->ts_ms > 0);
        if (i > 0)
            assert_true(evs[i]->ts_ms >= evs[i - 1]->ts_ms);
    }
}

static const cJSON *field(const struct mc_event *ev, const char *name)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(ev->json, name);
    if (it == NULL)
        fail_msg("%s has no field %s", mc_event_kind_name(ev->kind), name);
    return it;
}

/* The reply text of a turn: its deltas joined. */
static char *turn_reply(const struct mc_event *const *evs, size_t n)
{
    struct buf b;
    buf_init(&b, 1 << 20);
    for (size_t i = 0; i < n; i++)
        if (evs[i]->kind == MC_EV_DELTA)
            assert_int_equal(buf_puts(&b, mc_event_str(evs[i], "text", "")), BUF_OK);
    return buf_take(&b);
}

/* --- turns ------------------------------------------------------------------- */

/* An offline ask turn on an empty memory: turn.start with every field
 * (conversation null: a new one), rollout (memory on, "env"),
 * memory.retrieved with no candidates (so nothing injected), deltas, usage,
 * cost 0, turn.done with all 11 stages (numbers for the stages that ran,
 * null for the rest), then memory.stored with the exchange's id; one turn
 * id, seq gap-free from 0, ts_ms non-decreasing. The metrics row exists
 * with status ok and the store recorded as done. */
static void an_offline_turn_follows_the_event_contract(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(false, NULL, 0);
    char turn[MC_UUID_STRLEN + 1];
    const struct mc_event *evs[256];
    size_t n = run_turn(f, "hello engine", MC_MEMORY_DEFAULT, false, turn, evs, 256);
    assert_int_equal(n, f->n); /* nothing else was emitted */
    assert_seq_and_time(evs, n);
    assert_true(n >= 8);

    const struct mc_event *start = evs[0];
    assert_int_equal(start->kind, MC_EV_TURN_START);
    assert_string_equal(cJSON_GetStringValue(field(start, "tenant")), "default");
    assert_string_equal(cJSON_GetStringValue(field(start, "user")), "tester");
    assert_string_equal(cJSON_GetStringValue(field(start, "agent")), "assistant");
    assert_string_equal(cJSON_GetStringValue(field(start, "provider")), "offline");
    assert_string_equal(cJSON_GetStringValue(field(start, "model")), "offline");
    assert_true(cJSON_IsTrue(field(start, "memory")));
    assert_true(cJSON_IsNull(field(start, "step")));
    assert_true(cJSON_IsNull(field(start, "conversation")));

    assert_int_equal(evs[1]->kind, MC_EV_ROLLOUT);
    assert_true(cJSON_IsTrue(field(evs[1], "memory")));
    assert_string_equal(cJSON_GetStringValue(field(evs[1], "reason")), "env");
    assert_int_equal(evs[2]->kind, MC_EV_MEMORY_RETRIEVED);
    assert_string_equal(cJSON_GetStringValue(field(evs[2], "method")), "mmr");
    assert_int_equal(cJSON_GetArraySize(field(evs[2], "candidates")), 0);

    size_t i = 3;
    while (i < n && evs[i]->kind == MC_EV_DELTA)
        i++;
    assert_true(i > 3);
    assert_int_equal(n, i + 4);
    const struct mc_event *usage = evs[i], *cost = evs[i + 1], *done = evs[i + 2];
    const struct mc_event *store = evs[i + 3];
    assert_int_equal(usage->kind, MC_EV_USAGE);
    assert_true(cJSON_GetNumberValue(field(usage, "prompt_tokens")) > 0);
    assert_true(cJSON_GetNumberValue(field(usage, "completion_tokens")) > 0);
    assert_true(cJSON_GetNumberValue(field(usage, "cached_tokens")) == 0);
    assert_true(cJSON_IsTrue(field(usage, "estimated")));
    assert_int_equal(cost->kind, MC_EV_COST);
    assert_true(cJSON_IsNumber(field(cost, "usd")) &&
                cJSON_GetNumberValue(field(cost, "usd")) == 0);
    assert_string_equal(cJSON_GetStringValue(field(cost, "model")), "offline");

    assert_int_equal(done->kind, MC_EV_TURN_DONE);
    const cJSON *lat = field(done, "latency_ms");
    assert_int_equal(cJSON_GetArraySize(lat), MC_STAGE__COUNT);
    const char *numbers[] = {"rollout",   "retrieve", "inject",      "minify",
                             "ratelimit", "send",     "first_token", "total"};
    const char *nulls[] = {"cache", "key", "tools"};
    for (size_t k = 0; k < 8; k++)
        assert_true(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(lat, numbers[k])));
    for (size_t k = 0; k < 3; k++)
        assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(lat, nulls[k])));

    assert_int_equal(store->kind, MC_EV_MEMORY_STORED);
    assert_int_equal(cJSON_GetArraySize(field(store, "ids")), 1);
    assert_true(cJSON_GetNumberValue(field(store, "latency_ms")) >= 0);

    char *reply = turn_reply(evs, n);
    assert_non_null(strstr(reply, "You wrote 2 words: \"hello engine\""));
    xfree(reply);

    /* The metrics row, read through a connection of our own. */
    char path[4200];
    snprintf(path, sizeof path, "%s/data/memchat.db", f->dir);
    enum db_error why;
    char err[512] = "";
    struct db *db = db_open(path, &why, err, sizeof err);
    if (db == NULL)
        fail_msg("db_open: %s", err);
    struct metrics_row row;
    assert_int_equal(metrics_get_turn(db, turn, &row, err, sizeof err), 0);
    assert_string_equal(row.status, "ok");
    assert_string_equal(row.tenant, "default");
    assert_string_equal(row.provider, "offline");
    assert_true(row.memory);
    assert_true(row.latency_ms[MC_STAGE_SEND] >= 0);
    assert_true(row.latency_ms[MC_STAGE_MINIFY] >= 0);
    assert_true(row.latency_ms[MC_STAGE_CACHE] < 0); /* not run: NULL */
    assert_true(row.prompt_tokens > 0);
    assert_true(row.cost_usd == 0);
    assert_int_equal(row.stored, 1);
    metrics_row_free(&row);
    db_close(db);
    fixture_free(f);
}

/* The session's --no-memory: rollout says memory off for reason
 * "session", nothing is retrieved, and the store stage says memory_off. */
static void no_memory_turn_skips_retrieve_and_reports_memory_off(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(false, NULL, 0);
    char turn[MC_UUID_STRLEN + 1];
    const struct mc_event *evs[256];
    size_t n = run_turn(f, "quiet", MC_MEMORY_OFF, false, turn, evs, 256);
    assert_seq_and_time(evs, n);
    assert_true(cJSON_IsFalse(field(evs[0], "memory")));
    assert_int_equal(evs[1]->kind, MC_EV_ROLLOUT);
    assert_true(cJSON_IsFalse(field(evs[1], "memory")));
    assert_string_equal(cJSON_GetStringValue(field(evs[1], "reason")), "session");
    for (size_t i = 0; i < n; i++)
        if (evs[i]->kind == MC_EV_MEMORY_SKIPPED)
            assert_string_equal(mc_event_str(evs[i], "stage", ""), "store");
    assert_int_equal(evs[n - 1]->kind, MC_EV_MEMORY_SKIPPED);
    assert_string_equal(mc_event_str(evs[n - 1], "reason", ""), "memory_off");
    fixture_free(f);
}

/* RAG_ENABLED=false turns memory off with reason "env"; the session's
 * /memory on still wins over it. */
static void rag_disabled_turns_memory_off_for_reason_env(void **state)
{
    (void)state;
    const char *flags[] = {"RAG_ENABLED=false"};
    struct fixture *f = fixture_new(false, flags, 1);
    char turn[MC_UUID_STRLEN + 1];
    const struct mc_event *evs[256];
    size_t n = run_turn(f, "x", MC_MEMORY_DEFAULT, false, turn, evs, 256);
    assert_true(cJSON_IsFalse(field(evs[1], "memory")));
    assert_string_equal(cJSON_GetStringValue(field(evs[1], "reason")), "env");
    assert_string_equal(mc_event_str(evs[n - 1], "reason", ""), "memory_off");
    n = run_turn(f, "y", MC_MEMORY_ON, false, turn, evs, 256);
    assert_true(cJSON_IsTrue(field(evs[1], "memory")));
    assert_string_equal(cJSON_GetStringValue(field(evs[1], "reason")), "session");
    assert_int_equal(evs[n - 1]->kind, MC_EV_MEMORY_STORED);
    fixture_free(f);
}

#define MANY 50

/* The store reasons this build can give. */
/* A store-stage report: memory.stored, or a skip for a known reason. */
static bool store_reason_known(const struct mc_event *ev)
{
    if (ev->kind == MC_EV_MEMORY_STORED)
        return true;
    const char *r = mc_event_str(ev, "reason", "");
    return strcmp(r, "memory_off") == 0 || strcmp(r, "queued") == 0 ||
           strcmp(r, "turn_cancelled") == 0 || strcmp(r, "turn_failed") == 0 ||
           strcmp(r, "stored_by_retry") == 0;
}

static bool all_finished(const struct fixture *f, const void *arg)
{
    const char(*turns)[MC_UUID_STRLEN + 1] = arg;
    for (size_t i = 0; i < MANY; i++)
        if (!turn_finished(f, turns[i]))
            return false;
    return true;
}

/* Many turns back to back, so the background worker's store reports
 * interleave with the next turns' events: each turn's seq still runs from
 * 0 without gaps in queue order, each has one turn.start (first), one
 * turn.done and one store report (after turn.done), turns run in
 * submission order, and ts_ms never decreases across the whole queue. */
static void check_many_turns(const char *const *flags, size_t n_flags)
{
    struct fixture *f = fixture_new(false, flags, n_flags);
    char turns[MANY][MC_UUID_STRLEN + 1];
    for (size_t i = 0; i < MANY; i++)
        submit(f, "many", i % 2 ? MC_MEMORY_OFF : MC_MEMORY_DEFAULT, false, turns[i]);
    fixture_wait(f, all_finished, turns);
    int64_t next_seq[MANY] = {0};
    int done_seen[MANY] = {0}, store_seen[MANY] = {0};
    size_t last_started = 0;
    for (size_t e = 0; e < f->n; e++) {
        const struct mc_event *ev = f->evs[e];
        if (e > 0)
            assert_true(ev->ts_ms >= f->evs[e - 1]->ts_ms);
        size_t t = MANY;
        for (size_t k = 0; k < MANY; k++)
            if (strcmp(ev->turn, turns[k]) == 0)
                t = k;
        assert_true(t < MANY);
        assert_int_equal(ev->seq, next_seq[t]);
        next_seq[t]++;
        if (ev->seq == 0) {
            assert_int_equal(ev->kind, MC_EV_TURN_START);
            assert_true(t == 0 || done_seen[t - 1] == 1); /* the previous turn ended */
            assert_true(t >= last_started);
            last_started = t;
        }
        if (ev->kind == MC_EV_TURN_DONE)
            done_seen[t]++;
        if (is_store_report(ev)) {
            assert_int_equal(done_seen[t], 1);
            assert_true(store_reason_known(ev));
            store_seen[t]++;
        }
    }
    for (size_t t = 0; t < MANY; t++) {
        assert_int_equal(done_seen[t], 1);
        assert_int_equal(store_seen[t], 1);
    }
    fixture_free(f);
}

static void both_workers_keep_each_turns_seq_gap_free(void **state)
{
    (void)state;
    check_many_turns(NULL, 0);
}

/* The same with a store queue of one, where the turn worker may find it
 * full and report the store stage itself (queue_full): the invariants
 * hold whichever worker reports. */
static void a_full_store_queue_still_reports_each_store_stage_once(void **state)
{
    (void)state;
    const char *flags[] = {"MEMORY_STORE_QUEUE_MAX=1"};
    check_many_turns(flags, 1);
}

/* --- cancel ------------------------------------------------------------------ */

/* Cancelling a streaming turn: after the delta already shown come
 * turn.cancelled {partial: true} and turn.done, no more deltas, and the
 * store stage says turn_cancelled; the metrics row says cancelled. */
static void cancel_stops_a_streaming_turn_with_a_partial_reply(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(true, NULL, 0);
    char turn[MC_UUID_STRLEN + 1];
    submit(f, "block", MC_MEMORY_DEFAULT, false, turn);
    fixture_wait(f, turn_has_delta, turn);
    mc_engine_cancel(f->eng);
    fixture_wait(f, turn_finished, turn);
    const struct mc_event *evs[64];
    size_t n = turn_events(f, turn, evs, 64);
    assert_seq_and_time(evs, n);
    size_t d = 0;
    while (evs[d]->kind != MC_EV_DELTA)
        d++;
    /* The text shown is billed (usage and cost), then the cancel. */
    assert_int_equal(n, d + 6);
    assert_int_equal(evs[d + 1]->kind, MC_EV_USAGE);
    assert_int_equal(evs[d + 2]->kind, MC_EV_COST);
    assert_int_equal(evs[d + 3]->kind, MC_EV_TURN_CANCELLED);
    assert_true(cJSON_IsTrue(field(evs[d + 3], "partial")));
    assert_int_equal(evs[d + 4]->kind, MC_EV_TURN_DONE);
    assert_string_equal(mc_event_str(evs[d + 5], "reason", ""), "turn_cancelled");
    for (size_t i = 0; i < n; i++)
        assert_int_not_equal(evs[i]->kind, MC_EV_ERROR);
    assert_int_equal(f->fake.blocked_returns, 1);
    assert_true(f->fake.interrupts >= 1);

    char path[4200];
    snprintf(path, sizeof path, "%s/data/memchat.db", f->dir);
    enum db_error why;
    char err[512] = "";
    struct db *db = db_open(path, &why, err, sizeof err);
    assert_non_null(db);
    struct metrics_row row;
    assert_int_equal(metrics_get_turn(db, turn, &row, err, sizeof err), 0);
    assert_string_equal(row.status, "cancelled");
    metrics_row_free(&row);
    db_close(db);
    fixture_free(f);
}

/* One cancel also cancels a turn queued behind the running one: it reports
 * turn.start, turn.cancelled {partial: false}, turn.done and its store
 * skip, and never reaches the provider (no rollout, no delta). */
static void cancel_also_cancels_queued_turns(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(true, NULL, 0);
    char running[MC_UUID_STRLEN + 1], queued[MC_UUID_STRLEN + 1];
    submit(f, "block", MC_MEMORY_DEFAULT, false, running);
    fixture_wait(f, turn_has_delta, running);
    submit(f, "hello", MC_MEMORY_DEFAULT, false, queued);
    mc_engine_cancel(f->eng);
    fixture_wait(f, turn_finished, queued);
    assert_true(turn_finished(f, running));
    const struct mc_event *evs[64];
    size_t n = turn_events(f, queued, evs, 64);
    assert_seq_and_time(evs, n);
    assert_int_equal(n, 4);
    assert_int_equal(evs[0]->kind, MC_EV_TURN_START);
    assert_int_equal(evs[1]->kind, MC_EV_TURN_CANCELLED);
    assert_true(cJSON_IsFalse(field(evs[1], "partial")));
    assert_int_equal(evs[2]->kind, MC_EV_TURN_DONE);
    assert_string_equal(mc_event_str(evs[3], "reason", ""), "turn_cancelled");
    n = turn_events(f, running, evs, 64);
    bool partial_cancel = false;
    for (size_t i = 0; i < n; i++)
        if (evs[i]->kind == MC_EV_TURN_CANCELLED)
            partial_cancel = cJSON_IsTrue(field(evs[i], "partial"));
    assert_true(partial_cancel);
    fixture_free(f);
}

/* Cancel with nothing running or queued changes nothing: the next turn
 * runs to completion (a reply, usage, no turn.cancelled). */
static void cancel_with_nothing_running_is_a_no_op(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(true, NULL, 0);
    char turn[MC_UUID_STRLEN + 1];
    const struct mc_event *evs[64];
    mc_engine_cancel(f->eng);
    size_t n = run_turn(f, "hello", MC_MEMORY_DEFAULT, false, turn, evs, 64);
    mc_engine_cancel(f->eng); /* after a finished turn: also nothing */
    size_t n2 = run_turn(f, "hello", MC_MEMORY_DEFAULT, false, turn, evs + n, 64 - n);
    for (size_t i = 0; i < n + n2; i++)
        assert_int_not_equal(evs[i]->kind, MC_EV_TURN_CANCELLED);
    char *reply = turn_reply(evs + n, n2);
    assert_string_equal(reply, "ok");
    xfree(reply);
    bool has_usage = false, null_cost = false;
    for (size_t i = n; i < n + n2; i++) {
        has_usage |= evs[i]->kind == MC_EV_USAGE;
        if (evs[i]->kind == MC_EV_COST)
            null_cost = cJSON_IsNull(field(evs[i], "usd")); /* no price: null */
    }
    assert_true(has_usage);
    assert_true(null_cost);
    assert_int_equal(evs[n + n2 - 1]->kind, MC_EV_MEMORY_STORED);
    fixture_free(f);
}

/* Freeing the engine while the provider blocks in a turn returns: the
 * provider is woken and sees the cancel flag. */
static void free_returns_while_a_turn_is_blocked(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(true, NULL, 0);
    char turn[MC_UUID_STRLEN + 1], queued[MC_UUID_STRLEN + 1];
    submit(f, "block", MC_MEMORY_DEFAULT, false, turn);
    fixture_wait(f, turn_has_delta, turn);
    submit(f, "block", MC_MEMORY_DEFAULT, false, queued); /* must not block free either */
    fixture_stop(f);
    assert_int_equal(f->fake.blocked_returns, 1);
    fixture_free(f);
}

/* --- submission, data file, conversation -------------------------------------- */

/* Bad ids, a missing text, invalid UTF-8 and a message over
 * MEMCHAT_MAX_INPUT_BYTES are refused with a message naming the problem;
 * a message of exactly the limit is accepted; refused ones emit nothing. */
static void invalid_submissions_are_refused_with_a_message(void **state)
{
    (void)state;
    const char *flags[] = {"MEMCHAT_MAX_INPUT_BYTES=16"};
    struct fixture *f = fixture_new(false, flags, 1);
    char turn[MC_UUID_STRLEN + 1];
    char err[512];
    struct mc_turn_request req = {.text = "fine"};

    req.tenant = "bad tenant!";
    err[0] = '\0';
    assert_int_equal(mc_engine_submit_turn(f->eng, &req, turn, err, sizeof err), -1);
    assert_non_null(strstr(err, "tenant"));
    req.tenant = NULL;
    req.user = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"; /* 65 */
    err[0] = '\0';
    assert_int_equal(mc_engine_submit_turn(f->eng, &req, turn, err, sizeof err), -1);
    assert_non_null(strstr(err, "user"));
    req.user = NULL;
    req.agent = "";
    err[0] = '\0';
    assert_int_equal(mc_engine_submit_turn(f->eng, &req, turn, err, sizeof err), -1);
    assert_non_null(strstr(err, "agent"));
    req.agent = NULL;

    req.text = NULL;
    err[0] = '\0';
    assert_int_equal(mc_engine_submit_turn(f->eng, &req, turn, err, sizeof err), -1);
    assert_true(err[0] != '\0');
    req.text = "ok \xff\xfe";
    err[0] = '\0';
    assert_int_equal(mc_engine_submit_turn(f->eng, &req, turn, err, sizeof err), -1);
    assert_non_null(strstr(err, "UTF-8"));
    assert_non_null(strstr(err, "offset 3"));
    req.text = "seventeen bytes!!";
    err[0] = '\0';
    assert_int_equal(mc_engine_submit_turn(f->eng, &req, turn, err, sizeof err), -1);
    assert_non_null(strstr(err, "MEMCHAT_MAX_INPUT_BYTES"));
    assert_non_null(strstr(err, "16"));

    req.text = "sixteen bytes!!!";
    assert_int_equal(mc_engine_submit_turn(f->eng, &req, turn, err, sizeof err), 0);
    fixture_wait(f, turn_finished, turn);
    assert_string_equal(f->evs[0]->turn, turn);
    assert_int_equal(f->evs[0]->kind, MC_EV_TURN_START);
    for (size_t i = 0; i < f->n; i++)
        assert_string_equal(f->evs[i]->turn, turn);
    fixture_free(f);
}

/* A memchat.db that is not a database makes mc_engine_new fail with
 * MC_ERR_DATA_FILE and a message, and the file is left as it was. */
static void a_damaged_data_file_fails_with_data_file(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    struct config *cfg = tu_config(dir, NULL, 0);
    char data[4200];
    snprintf(data, sizeof data, "%s/data", dir);
    char err[512] = "";
    assert_int_equal(paths_mkdir_p(data, 0700, err, sizeof err), 0);
    char garbage[8192];
    for (size_t i = 0; i < sizeof garbage - 1; i++)
        garbage[i] = (char)('a' + i % 26);
    garbage[sizeof garbage - 1] = '\0';
    char *path = tu_write_file(data, "memchat.db", garbage);
    int code = -1;
    struct mc_engine *eng = mc_engine_new(cfg, &code, err, sizeof err);
    assert_null(eng);
    assert_int_equal(code, MC_ERR_DATA_FILE);
    assert_true(err[0] != '\0');
    size_t len = 0;
    char *after = tu_read_file(path, &len);
    assert_int_equal(len, strlen(garbage));
    assert_string_equal(after, garbage);
    free(after);
    free(path);
    config_free(cfg);
    tu_rmtree(dir);
    free(dir);
}

/* A data dir that cannot be created (a file is in the way) is an I/O
 * error. */
static void an_unusable_data_dir_fails_with_io(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    struct config *cfg = tu_config(dir, NULL, 0);
    char *blocker = tu_write_file(dir, "data", "not a directory");
    char err[512] = "";
    int code = -1;
    assert_null(mc_engine_new(cfg, &code, err, sizeof err));
    assert_int_equal(code, MC_ERR_IO);
    assert_non_null(strstr(err, "data"));
    free(blocker);
    config_free(cfg);
    tu_rmtree(dir);
    free(dir);
}

/* Chat turns carry the conversation until a reset, which runs after the
 * turns already queued: the third turn is message 1 again. */
static void reset_conversation_forgets_history_after_queued_turns(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(false, NULL, 0);
    char t1[MC_UUID_STRLEN + 1], t2[MC_UUID_STRLEN + 1], t3[MC_UUID_STRLEN + 1];
    submit(f, "one", MC_MEMORY_DEFAULT, true, t1);
    submit(f, "two", MC_MEMORY_DEFAULT, true, t2);
    mc_engine_reset_conversation(f->eng);
    submit(f, "three", MC_MEMORY_DEFAULT, true, t3);
    fixture_wait(f, turn_finished, t3);
    const struct mc_event *evs[256];
    size_t n = turn_events(f, t2, evs, 256);
    char *r2 = turn_reply(evs, n);
    assert_non_null(strstr(r2, "This is message 2 of"));
    n = turn_events(f, t3, evs, 256);
    char *r3 = turn_reply(evs, n);
    assert_non_null(strstr(r3, "This is message 1 of"));
    xfree(r2);
    xfree(r3);
    fixture_free(f);
}

/* mc_global_init routes cJSON's and SQLite's allocations through
 * util/alloc (the fault seam reaches them) and is idempotent. */
static void global_init_routes_library_allocations_through_alloc(void **state)
{
    (void)state;
    assert_int_equal(mc_global_init(), 0);
    unsigned long before = alloc_count();
    cJSON *o = cJSON_CreateObject();
    assert_non_null(o);
    assert_true(alloc_count() > before);
    cJSON_Delete(o);
    before = alloc_count();
    void *p = sqlite3_malloc(100);
    assert_non_null(p);
    assert_true(alloc_count() > before);
    assert_true(sqlite3_msize(p) >= 100);
    sqlite3_free(p);
    alloc_fail_after(1, 0);
    void *q = sqlite3_malloc(100);
    alloc_fail_after(0, 0);
    assert_null(q);
    alloc_fail_after(1, 0);
    assert_null(cJSON_CreateObject());
    alloc_fail_after(0, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(global_init_routes_library_allocations_through_alloc),
        cmocka_unit_test(an_offline_turn_follows_the_event_contract),
        cmocka_unit_test(no_memory_turn_skips_retrieve_and_reports_memory_off),
        cmocka_unit_test(rag_disabled_turns_memory_off_for_reason_env),
        cmocka_unit_test(both_workers_keep_each_turns_seq_gap_free),
        cmocka_unit_test(a_full_store_queue_still_reports_each_store_stage_once),
        cmocka_unit_test(cancel_stops_a_streaming_turn_with_a_partial_reply),
        cmocka_unit_test(cancel_also_cancels_queued_turns),
        cmocka_unit_test(cancel_with_nothing_running_is_a_no_op),
        cmocka_unit_test(free_returns_while_a_turn_is_blocked),
        cmocka_unit_test(invalid_submissions_are_refused_with_a_message),
        cmocka_unit_test(a_damaged_data_file_fails_with_data_file),
        cmocka_unit_test(an_unusable_data_dir_fails_with_io),
        cmocka_unit_test(reset_conversation_forgets_history_after_queued_turns),
    };
    if (mc_global_init() != 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
