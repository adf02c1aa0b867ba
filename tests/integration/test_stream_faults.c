/*
 * Transport faults in the middle of a response, through real sockets
 * (issue 13, deliverable 4): the loopback mock (tests/server/mockllm)
 * closes the connection (cut=N), resets it (reset=N) or goes silent
 * (stall-at=N) after exactly N bytes of its response, counted over the
 * status line, the headers, the chunk framing and the body.
 *
 * For each provider and for a text stream, a tool-calling stream and a
 * whole (non-streamed) answer, the test first reads the response the mock
 * sends for that very request on a raw socket (the mock numbers requests
 * from 100000 and N is written with six digits, so every variant of the
 * request has the same bytes at the same offsets), then sends it through
 * the provider cut at points spread over the headers, the chunk framing
 * and the body, hundreds in all. Each call must end by itself: with the
 * deltas and tool calls that the bytes before the cut hold (the replay
 * seam of llm/http_provider.h says which, from those bytes alone), and
 * either success, when the reply's end marker came before the cut, or a
 * network error with transport_error set and a message naming the
 * provider (and the pieces shown). Never a timeout, a hang or a crash.
 * Stalls at each region, a hang and a slow drip end on their timeouts
 * (MEMCHAT_STALL_TIMEOUT_S and MEMCHAT_TIMEOUT_S set to 1 s; the calls
 * run in parallel threads, nothing sleeps). A handful of cases run the
 * memchat binary: exit code 3, the message on stderr, and the retry rule
 * of DESIGN.md: a turn whose deltas were shown is never retried, one
 * that showed nothing is.
 */
#include "cli_harness.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>

#include "../server/mockserver.h"
#include "../unit/tu_config.h"

#include "config/config.h"
#include "llm/http_provider.h"
#include "llm/provider.h"
#include "memchat/engine.h"
#include "util/buf.h"

#define USER_TEXT "cut me anywhere"
#define NO_CUT    999999 /* past every response: the mock closes after it */

/* The program's state: one mock for all the cases. */
static struct mock *mock;
static char *cfg_dir;

static const char *const providers[] = {"openai", "anthropic", "ollama"};
#define N_PROVIDERS 3

/* What a reply is asked to be. */
enum kind { K_TEXT, K_TOOL, K_WHOLE };
static const char *const kind_names[] = {"text stream", "tool stream", "whole answer"};

static int group_setup(void **state)
{
    (void)state;
    if (mc_global_init() != 0)
        return -1;
    static const char *const args[] = {"--first-seq", "100000", NULL};
    mock = mock_start_with("MEMCHAT_MOCK_BIN", args);
    cfg_dir = tu_mkdtemp();
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    mock_stop(mock);
    tu_rmtree(cfg_dir);
    free(cfg_dir);
    return 0;
}

/* --- in-process calls ------------------------------------------------- */

/* A provider against the mock, with extra "NAME=VALUE" settings. */
static struct llm_provider *provider_new(const char *name, const char *const *extra, size_t n_extra)
{
    char openai[128], anthropic[128], ollama[128];
    snprintf(openai, sizeof openai, "OPENAI_BASE_URL=%s/v1", mock_url(mock));
    snprintf(anthropic, sizeof anthropic, "ANTHROPIC_BASE_URL=%s", mock_url(mock));
    snprintf(ollama, sizeof ollama, "OLLAMA_BASE_URL=%s", mock_url(mock));
    const char *flags[12] = {openai, anthropic, ollama, "OPENAI_API_KEY=sk-test-faults",
                             "ANTHROPIC_API_KEY=sk-ant-test-faults"};
    size_t n = 5;
    for (size_t i = 0; i < n_extra && n < 12; i++)
        flags[n++] = extra[i];
    struct config *cfg = tu_config(cfg_dir, flags, n);
    char err[512] = "";
    struct llm_provider *p = llm_provider_resolve(name, cfg, err, sizeof err);
    config_free(cfg);
    if (p == NULL)
        fail_msg("resolve %s: %s", name, err);
    return p;
}

/* One call and what came of it. */
struct call {
    struct llm_provider *p;
    char model[96];
    bool whole;
    bool tools; /* offer the tool `lookup` */
    struct buf text;
    enum mc_error rc;
    struct llm_result res;
    char err[1024];
};

static int on_delta(void *ud, const char *text, size_t len)
{
    struct call *c = ud;
    return buf_append(&c->text, text, len) != BUF_OK;
}

static void call_run(struct call *c)
{
    static const struct llm_tool_spec tool = {
        .name = "lookup",
        .description = "looks a thing up",
        .parameters = "{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\"}}}",
    };
    struct llm_message msgs[] = {{.role = "user", .content = USER_TEXT}};
    struct llm_request req = {
        .model = c->model,
        .messages = msgs,
        .n_messages = 1,
        .temperature = NAN,
        .no_stream = c->whole,
        .tools = c->tools ? &tool : NULL,
        .n_tools = c->tools ? 1 : 0,
    };
    atomic_bool cancel;
    atomic_init(&cancel, false);
    buf_init(&c->text, (size_t)1 << 24);
    c->rc = c->p->chat(c->p, &req, on_delta, c, &cancel, &c->res, c->err, sizeof c->err);
}

static void *call_thread(void *arg)
{
    call_run(arg);
    return NULL;
}

/* The model string of kind k with behaviour `what=N` (N six digits). */
static void model_for(char *out, size_t outlen, enum kind k, const char *what, size_t n)
{
    snprintf(out, outlen, "mock:%s=%06zu%s", what, n, k == K_TOOL ? ",tool=lookup" : "");
}

/* --- the response on the wire ------------------------------------------ */

/* What byte i of a response is. */
enum region { R_HEAD, R_FRAME, R_BODY };

/* The bytes the mock sends for one request, and what each is. */
struct wire {
    char *resp;
    size_t len;
    size_t hend;    /* the headers end here */
    char *region;   /* enum region of each byte */
    size_t *before; /* before[i]: body bytes in resp[0, i) */
    struct buf body;
};

/* Parses resp into w: headers, then a chunked or Content-Length body. */
static void wire_parse(struct wire *w)
{
    const char *h = strstr(w->resp, "\r\n\r\n");
    assert_non_null(h);
    w->hend = (size_t)(h - w->resp) + 4;
    w->region = calloc(w->len + 1, 1);
    w->before = calloc(w->len + 1, sizeof *w->before);
    assert_true(w->region != NULL && w->before != NULL);
    buf_init(&w->body, (size_t)1 << 24);
    for (size_t i = 0; i < w->hend; i++)
        w->region[i] = R_HEAD;
    bool chunked = strstr(w->resp, "Transfer-Encoding: chunked") != NULL &&
                   strstr(w->resp, "Transfer-Encoding: chunked") < h;
    size_t p = w->hend;
    while (p < w->len) {
        if (!chunked) {
            w->region[p] = R_BODY;
            assert_int_equal(buf_putc(&w->body, w->resp[p]), BUF_OK);
            p++;
            continue;
        }
        char *end = NULL;
        unsigned long size = strtoul(w->resp + p, &end, 16);
        assert_true(end != NULL && end[0] == '\r' && end[1] == '\n');
        size_t line = (size_t)(end - (w->resp + p)) + 2;
        for (size_t i = 0; i < line; i++)
            w->region[p + i] = R_FRAME;
        p += line;
        for (size_t i = 0; i < size; i++) {
            w->region[p + i] = R_BODY;
            assert_int_equal(buf_putc(&w->body, w->resp[p + i]), BUF_OK);
        }
        p += size;
        assert_true(p + 2 <= w->len && w->resp[p] == '\r' && w->resp[p + 1] == '\n');
        w->region[p] = w->region[p + 1] = R_FRAME;
        p += 2;
        if (size == 0)
            break;
    }
    assert_int_equal(p, w->len);
    size_t n = 0;
    for (size_t i = 0; i < w->len; i++) {
        w->before[i] = n;
        n += w->region[i] == R_BODY;
    }
    w->before[w->len] = n;
}

static void wire_free(struct wire *w)
{
    free(w->resp);
    free(w->region);
    free(w->before);
    buf_free(&w->body);
}

/* The route of a provider on the mock. */
static const char *route_of(const char *provider)
{
    if (strcmp(provider, "openai") == 0)
        return "/v1/chat/completions";
    if (strcmp(provider, "anthropic") == 0)
        return "/v1/messages";
    return "/api/chat";
}

/* The body of the last request the mock logged (caller frees). */
static char *last_request_body(void)
{
    cJSON *all = NULL;
    size_t n = mock_requests(mock, &all);
    assert_true(n > 0);
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(all, (int)n - 1), "body");
    assert_true(cJSON_IsString(b));
    char *body = strdup(b->valuestring);
    cJSON_Delete(all);
    return body;
}

/* Runs kind k on provider p uncut (it must succeed: the reference), then
 * reads the response to the same request on a raw socket into w. */
static void wire_fetch(struct llm_provider *p, const char *provider, enum kind k, struct wire *w,
                       struct call *ref)
{
    memset(ref, 0, sizeof *ref);
    ref->p = p;
    ref->whole = k == K_WHOLE;
    ref->tools = k == K_TOOL;
    model_for(ref->model, sizeof ref->model, k, "cut", NO_CUT);
    call_run(ref);
    if (ref->rc != MC_ERR_NONE)
        fail_msg("%s %s uncut: %s", provider, kind_names[k], ref->err);
    char *body = last_request_body();
    size_t blen = strlen(body);
    char head[256];
    int hl = snprintf(head, sizeof head,
                      "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      route_of(provider), blen);
    char *req = malloc((size_t)hl + blen);
    assert_non_null(req);
    memcpy(req, head, (size_t)hl);
    memcpy(req + hl, body, blen);
    memset(w, 0, sizeof *w);
    w->resp = mock_raw_exchange(mock, req, (size_t)hl + blen, &w->len);
    free(req);
    free(body);
    wire_parse(w);
}

/* --- what a cut must give ---------------------------------------------- */

/* The outcome the bytes before a cut at n hold, from the replay seam: the
 * body received (for NDJSON only whole lines: a line the connection cut
 * before its LF is not trusted), handed over as one piece. */
static const struct hp_replay_result *expected_at(struct hp_replay *r, const char *provider,
                                                  enum kind k, const struct wire *w, size_t n)
{
    size_t got = w->before[n];
    if (strcmp(provider, "ollama") == 0 && k != K_WHOLE)
        while (got > 0 && w->body.data[got - 1] != '\n')
            got--;
    /* A whole answer cut short is no answer. */
    if (k == K_WHOLE && got < w->body.len)
        got = 0;
    return hp_replay_stream(r, w->body.data, got, NULL, 0, 0, k == K_WHOLE);
}

/* Fails unless the provider's calls equal the replay's. */
static void expect_calls(const struct llm_provider *p, const struct hp_replay_result *want,
                         const char *what)
{
    size_t n = 0;
    const struct llm_tool_call *got = llm_provider_tool_calls(p, &n);
    if (n != want->n_calls)
        fail_msg("%s: %zu tool calls, want %zu", what, n, want->n_calls);
    for (size_t i = 0; i < n; i++) {
        const struct llm_tool_call *a = &got[i], *b = &want->calls[i];
        if (a->index != b->index || strcmp(a->id, b->id) != 0 || strcmp(a->name, b->name) != 0 ||
            strcmp(buf_cstr(&a->arguments), buf_cstr(&b->arguments)) != 0)
            fail_msg("%s: tool call %zu is %s %s(%s), want %s %s(%s)", what, i, a->id, a->name,
                     buf_cstr(&a->arguments), b->id, b->name, buf_cstr(&b->arguments));
    }
}

/* Checks one faulted call against the bytes before the fault: exactly
 * what they hold after a close (everything sent before a FIN arrives);
 * after a reset, a prefix of it, since an RST discards what the server's
 * kernel had not yet put on the wire. */
static void expect_fault_outcome(const struct call *c, const struct hp_replay_result *want,
                                 const char *provider, const char *what, bool exact)
{
    const char *shown = buf_cstr(&c->text), *held = buf_cstr(&want->text);
    if (exact ? strcmp(shown, held) != 0 : strncmp(shown, held, strlen(shown)) != 0)
        fail_msg("%s: shown \"%s\", the bytes before it hold \"%s\"", what, shown, held);
    if (exact) {
        assert_int_equal(c->res.deltas_sent, want->n_deltas);
        expect_calls(c->p, want, what);
    } else {
        assert_true(c->res.deltas_sent <= want->n_deltas);
    }
    if (c->rc == MC_ERR_NONE && want->rc == MC_ERR_NONE) {
        if (!exact)
            expect_calls(c->p, want, what);
        assert_string_equal(shown, held);
        return;
    }
    if (exact && want->rc == MC_ERR_NONE)
        fail_msg("%s: the reply was whole before the fault, yet: %s", what, c->err);
    if (c->rc != MC_ERR_NETWORK || !c->res.transport_error)
        fail_msg("%s: want a network error, got %s: %s", what, mc_error_code(c->rc), c->err);
    if (strcmp(c->res.transport, "timeout") == 0)
        fail_msg("%s: ended on a timeout, not by itself: %s", what, c->err);
    size_t plen = strlen(provider);
    if (strncmp(c->err, provider, plen) != 0 || c->err[plen] != ':' || strlen(c->err) < plen + 8)
        fail_msg("%s: the message does not say what happened: \"%s\"", what, c->err);
    /* The causes libcurl and http.c name, one of which must be given. */
    static const char *const causes[] = {
        "transfer closed",         "the connection closed in the middle of the response headers",
        "Empty reply from server", "Connection reset by peer",
        "the connection was cut",
    };
    bool named = false;
    for (size_t i = 0; i < sizeof causes / sizeof causes[0]; i++)
        named = named || strstr(c->err, causes[i]) != NULL;
    if (!named)
        fail_msg("%s: the message names no cause: \"%s\"", what, c->err);
    char pieces[64];
    snprintf(pieces, sizeof pieces, "%zu piece", c->res.deltas_sent);
    if (c->res.deltas_sent > 0 && strstr(c->err, pieces) == NULL)
        fail_msg("%s: the message does not count the pieces shown: \"%s\"", what, c->err);
}

/* Up to max offsets of region reg in w, spread evenly, into out; for the
 * body also every LF (a cut right before each line end, and so right
 * before and after each event's blank line). */
static size_t pick_points(const struct wire *w, enum region reg, size_t max, size_t *out,
                          size_t outcap)
{
    size_t total = 0;
    for (size_t i = 0; i < w->len; i++)
        total += w->region[i] == (char)reg;
    size_t n = 0, seen = 0;
    size_t step = total > max ? total / max : 1;
    for (size_t i = 0; i < w->len && n < outcap; i++) {
        if (w->region[i] != (char)reg)
            continue;
        if (seen % step == 0 || (reg == R_BODY && w->resp[i] == '\n'))
            out[n++] = i;
        seen++;
    }
    return n;
}

/* The cut points of one response: headers, framing and body, plus the
 * response's end. */
static size_t cut_points(const struct wire *w, size_t per_region, size_t *out, size_t outcap)
{
    size_t n = 0;
    n += pick_points(w, R_HEAD, per_region, out + n, outcap - n);
    n += pick_points(w, R_FRAME, per_region, out + n, outcap - n);
    n += pick_points(w, R_BODY, per_region * 2, out + n, outcap - n);
    if (n < outcap)
        out[n++] = w->len;
    return n;
}

/* Cuts (or resets) every reply kind of every provider at points spread
 * over its response; returns the number of faulted calls. */
static size_t fault_sweep(const char *what_behaviour, size_t per_region, bool exact)
{
    static const char *const extra[] = {"MEMCHAT_STALL_TIMEOUT_S=5"};
    size_t calls = 0;
    for (size_t pi = 0; pi < N_PROVIDERS; pi++) {
        const char *provider = providers[pi];
        struct llm_provider *p = provider_new(provider, extra, 1);
        char err[256] = "";
        struct hp_replay *r = hp_replay_new(provider, 0, err, sizeof err);
        if (r == NULL)
            fail_msg("%s", err);
        for (enum kind k = K_TEXT; k <= K_WHOLE; k++) {
            struct wire w;
            struct call ref;
            wire_fetch(p, provider, k, &w, &ref);
            /* The raw response holds the reply the provider assembled. */
            const struct hp_replay_result *full = expected_at(r, provider, k, &w, w.len);
            assert_int_equal(full->rc, MC_ERR_NONE);
            assert_string_equal(buf_cstr(&full->text), buf_cstr(&ref.text));
            buf_free(&ref.text);
            size_t points[1024];
            size_t np = cut_points(&w, per_region, points, 1024);
            for (size_t i = 0; i < np; i++) {
                struct call c = {.p = p, .whole = k == K_WHOLE, .tools = k == K_TOOL};
                model_for(c.model, sizeof c.model, k, what_behaviour, points[i]);
                call_run(&c);
                char what[160];
                snprintf(what, sizeof what, "%s %s %s=%zu of %zu (%s)", provider, kind_names[k],
                         what_behaviour, points[i], w.len,
                         points[i] >= w.len               ? "end"
                         : w.region[points[i]] == R_HEAD  ? "headers"
                         : w.region[points[i]] == R_FRAME ? "framing"
                                                          : "body");
                expect_fault_outcome(&c, expected_at(r, provider, k, &w, points[i]), provider, what,
                                     exact);
                buf_free(&c.text);
                calls++;
            }
            wire_free(&w);
        }
        hp_replay_free(r);
        llm_provider_free(p);
    }
    return calls;
}

/* A connection closed at hundreds of points: in the headers, in the chunk
 * framing, in the body (between and inside events), after the end marker. */
static void cuts_anywhere_end_with_what_arrived(void **state)
{
    (void)state;
    size_t n = fault_sweep("cut", 16, true);
    print_message("%zu cut points\n", n);
    assert_true(n >= 300);
}

/* The same with an RST instead of a FIN. */
static void resets_anywhere_end_with_what_arrived(void **state)
{
    (void)state;
    size_t n = fault_sweep("reset", 5, false);
    print_message("%zu reset points\n", n);
    assert_true(n >= 100);
}

/* --- stalls ------------------------------------------------------------ */

/* A response that goes silent in its headers, its framing or its body, a
 * server that never answers, and one that drips forever each end on their
 * timeout (1 s), with the deltas that arrived, a network error "timeout"
 * and a message naming the limit. All run at once. */
static void stalls_and_drips_end_on_their_timeouts(void **state)
{
    (void)state;
    /* Silence ends on the 1 s stall limit long before the call's 30 s;
     * a drip is never silent for 1 s and ends on the call's 1 s limit. */
    static const char *const quiet[] = {"MEMCHAT_STALL_TIMEOUT_S=1", "MEMCHAT_TIMEOUT_S=30"};
    static const char *const drip[] = {"MEMCHAT_STALL_TIMEOUT_S=1", "MEMCHAT_TIMEOUT_S=1"};
    enum { PER = 5 }; /* stall in headers, framing, body; hang; drip */
    struct call c[N_PROVIDERS * PER];
    char *want[N_PROVIDERS * PER]; /* the text before a stall */
    pthread_t t[N_PROVIDERS * PER];
    memset(c, 0, sizeof c);
    memset(want, 0, sizeof want);
    for (size_t pi = 0; pi < N_PROVIDERS; pi++) {
        struct llm_provider *probe = provider_new(providers[pi], NULL, 0);
        struct wire w;
        struct call ref;
        wire_fetch(probe, providers[pi], K_TEXT, &w, &ref);
        buf_free(&ref.text);
        llm_provider_free(probe);
        char err[256] = "";
        struct hp_replay *r = hp_replay_new(providers[pi], 0, err, sizeof err);
        assert_non_null(r);
        /* Stall points: mid-headers, the first chunk-size line, and the
         * middle of the body (after some events). */
        size_t at[3] = {w.hend / 2, w.hend + 1, 0};
        for (size_t i = w.hend; i < w.len; i++)
            if (w.region[i] == R_BODY && w.before[i] >= w.body.len / 2) {
                at[2] = i;
                break;
            }
        for (size_t j = 0; j < PER; j++) {
            struct call *x = &c[pi * PER + j];
            x->p = provider_new(providers[pi], j < 4 ? quiet : drip, 2);
            if (j < 3) {
                model_for(x->model, sizeof x->model, K_TEXT, "stall-at", at[j]);
                const struct hp_replay_result *e = expected_at(r, providers[pi], K_TEXT, &w, at[j]);
                want[pi * PER + j] = strdup(buf_cstr(&e->text));
            } else {
                snprintf(x->model, sizeof x->model, "%s",
                         j == 3 ? "mock:hang" : "mock:words=400,rate=40");
            }
        }
        hp_replay_free(r);
        wire_free(&w);
    }
    for (size_t i = 0; i < N_PROVIDERS * PER; i++)
        assert_int_equal(pthread_create(&t[i], NULL, call_thread, &c[i]), 0);
    for (size_t i = 0; i < N_PROVIDERS * PER; i++)
        pthread_join(t[i], NULL);
    for (size_t i = 0; i < N_PROVIDERS * PER; i++) {
        struct call *x = &c[i];
        size_t j = i % PER;
        const char *provider = providers[i / PER];
        if (x->rc != MC_ERR_NETWORK || !x->res.transport_error ||
            strcmp(x->res.transport, "timeout") != 0)
            fail_msg("%s %s: want a timeout, got %s: %s", provider, x->model, mc_error_code(x->rc),
                     x->err);
        assert_non_null(strstr(x->err, "MEMCHAT_STALL_TIMEOUT_S=1"));
        if (j < 4) {
            /* Silence: the idle timer, with what came before it. */
            if (strstr(x->err, "idle timeout") == NULL)
                fail_msg("%s %s: not the stall limit: %s", provider, x->model, x->err);
            assert_string_equal(buf_cstr(&x->text), j < 3 ? want[i] : "");
            free(want[i]);
        } else {
            /* A drip is never silent: the whole call's limit ends it,
             * after some of the words and long before all 400. */
            assert_non_null(strstr(x->err, "MEMCHAT_TIMEOUT_S=1"));
            assert_null(strstr(x->err, "idle timeout"));
            assert_true(x->res.deltas_sent > 0 && x->res.deltas_sent < 400);
        }
        buf_free(&x->text);
        llm_provider_free(x->p);
    }
}

/* The mock's own cutting behaviours on tool streams: drop sends half an
 * event and closes, stall goes silent, both after two argument pieces;
 * the call ends by itself with the pieces' call assembled so far. */
static void tool_streams_dropped_or_stalled_end_cleanly(void **state)
{
    (void)state;
    static const char *const extra[] = {"MEMCHAT_STALL_TIMEOUT_S=1"};
    struct call c[N_PROVIDERS * 2];
    pthread_t t[N_PROVIDERS * 2];
    memset(c, 0, sizeof c);
    for (size_t i = 0; i < N_PROVIDERS * 2; i++) {
        c[i].p = provider_new(providers[i / 2], extra, 1);
        c[i].tools = true;
        snprintf(c[i].model, sizeof c[i].model, "mock:%s,tool=lookup",
                 i % 2 == 0 ? "drop" : "stall");
        assert_int_equal(pthread_create(&t[i], NULL, call_thread, &c[i]), 0);
    }
    for (size_t i = 0; i < N_PROVIDERS * 2; i++)
        pthread_join(t[i], NULL);
    for (size_t i = 0; i < N_PROVIDERS * 2; i++) {
        if (c[i].rc != MC_ERR_NETWORK || !c[i].res.transport_error)
            fail_msg("%s %s: %s: %s", providers[i / 2], c[i].model, mc_error_code(c[i].rc),
                     c[i].err);
        assert_string_equal(c[i].res.transport, i % 2 == 0 ? "transport" : "timeout");
        assert_int_equal(c[i].res.deltas_sent, 0);
        buf_free(&c[i].text);
        llm_provider_free(c[i].p);
    }
}

/* --- through the memchat binary ----------------------------------------- */

static char env_openai[160], env_anthropic[160], env_ollama[160];

static int cli_setup(void **state)
{
    mock_reset(mock);
    snprintf(env_openai, sizeof env_openai, "OPENAI_BASE_URL=%s/v1", mock_url(mock));
    snprintf(env_anthropic, sizeof env_anthropic, "ANTHROPIC_BASE_URL=%s", mock_url(mock));
    snprintf(env_ollama, sizeof env_ollama, "OLLAMA_BASE_URL=%s", mock_url(mock));
    return setup(state);
}

/* memchat ask --json against provider with model, the stall timeout 1 s
 * and one retry allowed. */
static void ask(struct run *r, const char *provider, const char *model)
{
    const char *const env[] = {env_openai,
                               env_anthropic,
                               env_ollama,
                               "OPENAI_API_KEY=sk-test-faults",
                               "ANTHROPIC_API_KEY=sk-ant-test-faults",
                               "MEMCHAT_MAX_RETRIES=1",
                               "MEMCHAT_STALL_TIMEOUT_S=1",
                               NULL};
    const char *const args[] = {"ask",     "--json", "--no-memory", "--provider", provider,
                                "--model", model,    USER_TEXT,     NULL};
    run_memchat(r, NULL, env, args);
}

static size_t count_kind(struct mc_event **evs, size_t n, enum mc_event_kind k)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += evs[i]->kind == k;
    return c;
}

/* A stream cut, reset or stalled after its first deltas: exit 3, the
 * error event and stderr say what happened, and the turn is not retried
 * (the user saw the reply start). words=60 makes the body long enough
 * that byte 2000 is past several events and before the end. */
static void a_fault_after_deltas_exits_3_without_retry(void **state)
{
    (void)state;
    static const struct {
        const char *provider, *model, *says;
    } cases[] = {
        {"openai", "mock:words=60,cut=002000", "openai: "},
        {"anthropic", "mock:words=60,reset=002000", "anthropic: "},
        {"ollama", "mock:words=60,stall-at=002000", "idle timeout"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mock_reset(mock);
        struct run r;
        ask(&r, cases[i].provider, cases[i].model);
        if (r.status != 3)
            fail_msg("%s %s: exit %d: %s", cases[i].provider, cases[i].model, r.status, r.err);
        struct mc_event *evs[512] = {0};
        size_t n = parse_events(r.out, evs, 512);
        check_turn_contract(evs, n);
        assert_true(count_kind(evs, n, MC_EV_DELTA) > 0);
        assert_int_equal(count_kind(evs, n, MC_EV_RETRY), 0);
        const struct mc_event *e = must_event(evs, n, MC_EV_ERROR);
        assert_string_equal(mc_event_str(e, "code", ""), "network");
        expect_in(mc_event_str(e, "message", ""), cases[i].says, cases[i].model);
        assert_int_equal(mock_count_since_reset(mock), 1);
        free_events(evs, n);
        run_free(&r);
    }
}

/* A response cut in its headers showed nothing: the turn is retried, and
 * with then=1 the retry succeeds (exit 0, the whole reply, two requests);
 * without it, the retries run out and ask exits 3 saying so. */
static void a_fault_before_any_delta_is_retried(void **state)
{
    (void)state;
    struct run r;
    ask(&r, "anthropic", "mock:cut=000040,then=1");
    if (r.status != 0)
        fail_msg("exit %d: %s", r.status, r.err);
    struct mc_event *evs[512] = {0};
    size_t n = parse_events(r.out, evs, 512);
    check_turn_contract(evs, n);
    const struct mc_event *rt = find_event(evs, n, MC_EV_RETRY);
    if (rt == NULL) {
        fail_msg("no retry event: %s", r.out);
        abort(); /* fail_msg does not return; the compiler needs telling */
    }
    assert_string_equal(mc_event_str(rt, "error", ""), "transport");
    assert_int_equal(mock_count_since_reset(mock), 2);
    free_events(evs, n);
    run_free(&r);

    mock_reset(mock);
    ask(&r, "ollama", "mock:reset=000010");
    assert_int_equal(r.status, 3);
    n = parse_events(r.out, evs, 512);
    check_turn_contract(evs, n);
    const struct mc_event *e = must_event(evs, n, MC_EV_ERROR);
    expect_in(mc_event_str(e, "message", ""), "ollama: ", "reset in the headers");
    expect_in(mc_event_str(e, "message", ""), "1 retry", "reset in the headers");
    assert_int_equal(mock_count_since_reset(mock), 2);
    free_events(evs, n);
    run_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cuts_anywhere_end_with_what_arrived),
        cmocka_unit_test(resets_anywhere_end_with_what_arrived),
        cmocka_unit_test(stalls_and_drips_end_on_their_timeouts),
        cmocka_unit_test(tool_streams_dropped_or_stalled_end_cleanly),
        cmocka_unit_test_setup_teardown(a_fault_after_deltas_exits_3_without_retry, cli_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_fault_before_any_delta_is_retried, cli_setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
