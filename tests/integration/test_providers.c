/*
 * Tests of the HTTP providers (llm/openai.c, anthropic.c, ollama.c over
 * llm/http_provider.c) and of `auto` (llm/provider.c), against the loopback
 * mock server (tests/server/mockllm): one mock for the whole program,
 * started in the group setup. Each behaviour is picked by the request's
 * model string ("mock:<behaviour>"), and most cases run the same check
 * against all three providers, since the point of the shared machinery is
 * that they behave alike.
 *
 * What the mock promises (and so what the expected values are derived
 * from): the reply is "mock reply: " + the last user message, cut into
 * pieces of at most 7 bytes, one delta each; completion_tokens is the
 * number of pieces; prompt_tokens is the request body's length / 10.
 *
 * Nothing sleeps: the cancel tests synchronise with the streaming thread
 * through a condition variable signalled from on_delta; the stall test
 * waits for libcurl's own 1 s low-speed timer and asserts the outcome,
 * never the elapsed time.
 */
#include "../unit/testutil.h"
#include "../unit/tu_config.h"
#include "../server/mockserver.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "config/config.h"
#include "llm/provider.h"
#include "memchat/engine.h"
#include "util/buf.h"
#include "util/utf8.h"

#define OPENAI_KEY    "sk-test-0000"
#define ANTHROPIC_KEY "sk-ant-test-0000"
#define SYSTEM_TEXT   "You are a test."
#define USER_TEXT     "hello there"
#define REPLY         "mock reply: " USER_TEXT

/* The group's state: one mock server and a scratch dir for configs. */
struct fx {
    struct mock *mock;
    char *dir;
};

/* The three providers as the cases iterate them. */
static const char *const providers[] = {"openai", "anthropic", "ollama"};
#define N_PROVIDERS (sizeof providers / sizeof providers[0])

/* What each provider's request looks like on the wire. */
static const char *provider_path(const char *name)
{
    if (strcmp(name, "openai") == 0)
        return "/v1/chat/completions";
    if (strcmp(name, "anthropic") == 0)
        return "/v1/messages";
    return "/api/chat";
}

static int group_setup(void **state)
{
    if (mc_global_init() != 0)
        return -1;
    struct fx *fx = calloc(1, sizeof *fx);
    fx->mock = mock_start();
    fx->dir = tu_mkdtemp();
    *state = fx;
    return 0;
}

static int group_teardown(void **state)
{
    struct fx *fx = *state;
    mock_stop(fx->mock);
    tu_rmtree(fx->dir);
    free(fx->dir);
    free(fx);
    return 0;
}

/* A config pointing every provider at the mock, with both test keys when
 * keys is true, plus extra "NAME=VALUE" flags. */
static struct config *make_config(const struct fx *fx, bool keys, const char *const *extra,
                                  size_t n_extra)
{
    char openai[128], anthropic[128], ollama[128];
    snprintf(openai, sizeof openai, "OPENAI_BASE_URL=%s/v1", mock_url(fx->mock));
    snprintf(anthropic, sizeof anthropic, "ANTHROPIC_BASE_URL=%s", mock_url(fx->mock));
    snprintf(ollama, sizeof ollama, "OLLAMA_BASE_URL=%s", mock_url(fx->mock));
    const char *flags[14];
    size_t n = 0;
    flags[n++] = openai;
    flags[n++] = anthropic;
    flags[n++] = ollama;
    if (keys) {
        flags[n++] = "OPENAI_API_KEY=" OPENAI_KEY;
        flags[n++] = "ANTHROPIC_API_KEY=" ANTHROPIC_KEY;
    }
    for (size_t i = 0; i < n_extra && n < 14; i++)
        flags[n++] = extra[i];
    return tu_config(fx->dir, flags, n);
}

/* The provider called name, set up against the mock (fails the test when
 * it cannot be). */
static struct llm_provider *make_provider(const struct fx *fx, const char *name,
                                          const char *const *extra, size_t n_extra)
{
    struct config *cfg = make_config(fx, true, extra, n_extra);
    char err[512] = "";
    struct llm_provider *p = llm_provider_resolve(name, cfg, err, sizeof err);
    config_free(cfg);
    if (p == NULL)
        fail_msg("resolve %s: %s", name, err);
    return p;
}

/* What on_delta saw. The mutex and condvar let another thread wait for a
 * number of deltas; hold_first makes the first delta wait until the other
 * thread has set the cancel flag. */
struct capture {
    struct buf text;
    size_t calls;
    bool invalid_utf8;   /* some delta was not valid UTF-8 */
    size_t after_cancel; /* deltas that arrived with the cancel flag set */
    const atomic_bool *cancel;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool hold_first;
    bool released;
};

static void capture_init(struct capture *c)
{
    memset(c, 0, sizeof *c);
    buf_init(&c->text, 1u << 26);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
}

static void capture_fini(struct capture *c)
{
    buf_free(&c->text);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
}

static int on_delta(void *ud, const char *text, size_t len)
{
    struct capture *c = ud;
    pthread_mutex_lock(&c->mu);
    if (c->cancel != NULL && atomic_load(c->cancel))
        c->after_cancel++;
    if (!utf8_valid(text, len, NULL))
        c->invalid_utf8 = true;
    buf_append(&c->text, text, len);
    c->calls++;
    pthread_cond_broadcast(&c->cv);
    if (c->hold_first && c->calls == 1)
        while (!c->released)
            pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
    return 0;
}

/* One call: the system message and one user message. */
struct call {
    struct llm_provider *p;
    const char *model;
    const char *user;
    bool no_stream;
    double temperature;
    long long max_tokens;
    const char *api_key, *api_key_origin; /* the request's key (a tenant's) */
    atomic_bool cancel;
    struct capture cap;
    struct llm_result res;
    char err[1024];
    enum mc_error rc;
};

static void call_init(struct call *c, struct llm_provider *p, const char *model)
{
    memset(c, 0, sizeof *c);
    c->p = p;
    c->model = model;
    c->user = USER_TEXT;
    c->temperature = NAN;
    atomic_init(&c->cancel, false);
    capture_init(&c->cap);
    c->cap.cancel = &c->cancel;
}

static void call_run(struct call *c)
{
    struct llm_message msgs[] = {{.role = "system", .content = SYSTEM_TEXT},
                                 {.role = "user", .content = c->user}};
    struct llm_request req = {
        .model = c->model,
        .messages = msgs,
        .n_messages = 2,
        .max_tokens = c->max_tokens,
        .temperature = c->temperature,
        .no_stream = c->no_stream,
        .api_key = c->api_key,
        .api_key_origin = c->api_key_origin,
    };
    c->rc = c->p->chat(c->p, &req, on_delta, &c->cap, &c->cancel, &c->res, c->err, sizeof c->err);
}

/* call_run on another thread. */
static void *call_thread(void *arg)
{
    call_run(arg);
    return NULL;
}

/* Runs model on a fresh provider called name; the caller frees c->p. */
static void run_simple(const struct fx *fx, struct call *c, const char *name, const char *model,
                       const char *const *extra, size_t n_extra)
{
    call_init(c, make_provider(fx, name, extra, n_extra), model);
    call_run(c);
}

static void call_fini(struct call *c)
{
    capture_fini(&c->cap);
    llm_provider_free(c->p);
}

/* The last request the mock logged (a new object the caller deletes), and
 * its total count in *n. */
static cJSON *last_request(const struct fx *fx, size_t back, size_t *n)
{
    cJSON *all = NULL;
    size_t count = mock_requests(fx->mock, &all);
    assert_true(count > back);
    cJSON *r = cJSON_DetachItemFromArray(all, (int)(count - 1 - back));
    cJSON_Delete(all);
    if (n != NULL)
        *n = count;
    return r;
}

/* How many requests the mock logged so far. */
static size_t request_count(const struct fx *fx)
{
    cJSON *all = NULL;
    size_t n = mock_requests(fx->mock, &all);
    cJSON_Delete(all);
    return n;
}

/* The logged request's body parsed (caller deletes). */
static cJSON *request_body(const cJSON *logged)
{
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(logged, "body");
    assert_true(cJSON_IsString(b));
    cJSON *body = cJSON_Parse(b->valuestring);
    assert_non_null(body);
    return body;
}

static const char *request_header(const cJSON *logged, const char *name)
{
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(logged, "headers");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(h, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The request body's length / 10: the mock's prompt_tokens. */
static long long logged_prompt_tokens(const cJSON *logged)
{
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(logged, "body");
    return (long long)(strlen(b->valuestring) / 10);
}

/* The number of pieces of at most 7 bytes the mock cuts ASCII text into. */
static long long pieces_of(const char *text)
{
    return (long long)((strlen(text) + 6) / 7);
}

/* --- normal replies ------------------------------------------------------ */

/* A normal stream is reassembled exactly, one delta per piece, and the
 * usage the server reported comes back (not estimated). */
static void stream_reassembles_the_reply_with_usage(void **state)
{
    struct fx *fx = *state;
    for (size_t i = 0; i < N_PROVIDERS; i++) {
        struct call c;
        run_simple(fx, &c, providers[i], "mock", NULL, 0);
        assert_int_equal(c.rc, MC_ERR_NONE);
        assert_string_equal(buf_cstr(&c.cap.text), REPLY);
        assert_int_equal(c.res.deltas_sent, pieces_of(REPLY));
        assert_int_equal(c.res.bytes_sent, strlen(REPLY));
        assert_int_equal(c.res.skipped, 0);
        cJSON *logged = last_request(fx, 0, NULL);
        assert_int_equal(c.res.usage.prompt_tokens, logged_prompt_tokens(logged));
        assert_int_equal(c.res.usage.completion_tokens, pieces_of(REPLY));
        assert_false(c.res.usage.estimated);
        assert_int_equal(c.res.http_status, 200);
        assert_false(c.res.transport_error);
        assert_true(c.res.finish_reason[0] != '\0');
        cJSON_Delete(logged);
        call_fini(&c);
    }
}

/* Non-stream mode asks for one JSON answer and delivers its text as one
 * delta, with the usage. */
static void non_stream_answer_is_one_delta_with_usage(void **state)
{
    struct fx *fx = *state;
    for (size_t i = 0; i < N_PROVIDERS; i++) {
        struct call c;
        call_init(&c, make_provider(fx, providers[i], NULL, 0), "mock");
        c.no_stream = true;
        call_run(&c);
        assert_int_equal(c.rc, MC_ERR_NONE);
        assert_string_equal(buf_cstr(&c.cap.text), REPLY);
        assert_int_equal(c.res.deltas_sent, 1);
        cJSON *logged = last_request(fx, 0, NULL);
        cJSON *body = request_body(logged);
        assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(body, "stream")));
        assert_int_equal(c.res.usage.prompt_tokens, logged_prompt_tokens(logged));
        assert_true(c.res.usage.completion_tokens >= 0);
        cJSON_Delete(body);
        cJSON_Delete(logged);
        call_fini(&c);
    }
}

/* --- what goes on the wire ----------------------------------------------- */

/* openai: path, Bearer key, JSON content type, stream with include_usage,
 * temperature and (for a server that is not api.openai.com) max_tokens. */
static void openai_request_has_the_documented_shape(void **state)
{
    struct fx *fx = *state;
    struct call c;
    call_init(&c, make_provider(fx, "openai", NULL, 0), "mock");
    c.temperature = 0.5;
    c.max_tokens = 50;
    call_run(&c);
    assert_int_equal(c.rc, MC_ERR_NONE);
    cJSON *logged = last_request(fx, 0, NULL);
    assert_string_equal(cJSON_GetObjectItem(logged, "method")->valuestring, "POST");
    assert_string_equal(cJSON_GetObjectItem(logged, "path")->valuestring, "/v1/chat/completions");
    assert_string_equal(request_header(logged, "authorization"), "Bearer " OPENAI_KEY);
    assert_string_equal(request_header(logged, "content-type"), "application/json");
    cJSON *body = request_body(logged);
    assert_string_equal(cJSON_GetObjectItem(body, "model")->valuestring, "mock");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(body, "stream")));
    const cJSON *so = cJSON_GetObjectItem(body, "stream_options");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(so, "include_usage")));
    assert_true(cJSON_GetObjectItem(body, "temperature")->valuedouble == 0.5);
    assert_int_equal(cJSON_GetObjectItem(body, "max_tokens")->valueint, 50);
    assert_null(cJSON_GetObjectItem(body, "max_completion_tokens"));
    const cJSON *msgs = cJSON_GetObjectItem(body, "messages");
    assert_int_equal(cJSON_GetArraySize(msgs), 2);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 0), "role")->valuestring,
                        "system");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 1), "content")->valuestring,
                        USER_TEXT);
    cJSON_Delete(body);
    cJSON_Delete(logged);
    call_fini(&c);
}

/* openai without a key (a local server) sends no Authorization header,
 * and leaves temperature and the cap out when nothing sets them. */
static void openai_without_key_sends_no_authorization(void **state)
{
    struct fx *fx = *state;
    struct config *cfg = make_config(fx, false, NULL, 0);
    char err[512] = "";
    struct llm_provider *p = llm_provider_resolve("openai", cfg, err, sizeof err);
    config_free(cfg);
    assert_non_null(p);
    struct call c;
    call_init(&c, p, "mock");
    call_run(&c);
    assert_int_equal(c.rc, MC_ERR_NONE);
    cJSON *logged = last_request(fx, 0, NULL);
    assert_null(request_header(logged, "authorization"));
    cJSON *body = request_body(logged);
    assert_null(cJSON_GetObjectItem(body, "temperature"));
    assert_null(cJSON_GetObjectItem(body, "max_tokens"));
    cJSON_Delete(body);
    cJSON_Delete(logged);
    call_fini(&c);
}

/* anthropic: path, x-api-key, anthropic-version, the required max_tokens
 * (4096 when nothing sets it), system at the top level joined from every
 * system message, and consecutive same-role messages merged. */
static void anthropic_request_has_the_documented_shape(void **state)
{
    struct fx *fx = *state;
    struct llm_provider *p = make_provider(fx, "anthropic", NULL, 0);
    struct capture cap;
    capture_init(&cap);
    struct llm_message msgs[] = {{.role = "system", .content = "first rule"},
                                 {.role = "user", .content = "one"},
                                 {.role = "user", .content = "two"},
                                 {.role = "system", .content = "second rule"}};
    struct llm_request req = {
        .model = "mock", .messages = msgs, .n_messages = 4, .temperature = 0.25};
    struct llm_result res;
    char err[512] = "";
    assert_int_equal(p->chat(p, &req, on_delta, &cap, NULL, &res, err, sizeof err), MC_ERR_NONE);
    /* The mock answers the last user message: the merged one. */
    assert_string_equal(buf_cstr(&cap.text), "mock reply: one\n\ntwo");
    cJSON *logged = last_request(fx, 0, NULL);
    assert_string_equal(cJSON_GetObjectItem(logged, "path")->valuestring, "/v1/messages");
    assert_string_equal(request_header(logged, "x-api-key"), ANTHROPIC_KEY);
    assert_string_equal(request_header(logged, "anthropic-version"), "2023-06-01");
    assert_string_equal(request_header(logged, "content-type"), "application/json");
    assert_null(request_header(logged, "authorization"));
    cJSON *body = request_body(logged);
    assert_int_equal(cJSON_GetObjectItem(body, "max_tokens")->valueint, 4096);
    assert_string_equal(cJSON_GetObjectItem(body, "system")->valuestring,
                        "first rule\n\nsecond rule");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(body, "stream")));
    assert_true(cJSON_GetObjectItem(body, "temperature")->valuedouble == 0.25);
    const cJSON *m = cJSON_GetObjectItem(body, "messages");
    assert_int_equal(cJSON_GetArraySize(m), 1);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(m, 0), "role")->valuestring, "user");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(m, 0), "content")->valuestring,
                        "one\n\ntwo");
    cJSON_Delete(body);
    cJSON_Delete(logged);
    capture_fini(&cap);
    llm_provider_free(p);
}

/* ollama: path, no key, stream true, temperature and the cap in options. */
static void ollama_request_has_the_documented_shape(void **state)
{
    struct fx *fx = *state;
    struct call c;
    call_init(&c, make_provider(fx, "ollama", NULL, 0), "mock");
    c.temperature = 0.75;
    c.max_tokens = 33;
    call_run(&c);
    assert_int_equal(c.rc, MC_ERR_NONE);
    cJSON *logged = last_request(fx, 0, NULL);
    assert_string_equal(cJSON_GetObjectItem(logged, "path")->valuestring, "/api/chat");
    assert_null(request_header(logged, "authorization"));
    assert_string_equal(request_header(logged, "content-type"), "application/json");
    cJSON *body = request_body(logged);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(body, "stream")));
    const cJSON *o = cJSON_GetObjectItem(body, "options");
    assert_true(cJSON_GetObjectItem(o, "temperature")->valuedouble == 0.75);
    assert_int_equal(cJSON_GetObjectItem(o, "num_predict")->valueint, 33);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(body, "messages")), 2);
    cJSON_Delete(body);
    cJSON_Delete(logged);
    call_fini(&c);
}

/* A request that leaves temperature (NAN) and the cap (0) to the provider
 * gets MEMCHAT_TEMPERATURE and MEMCHAT_MAX_TOKENS as configured. */
static void configured_temperature_and_cap_apply_when_the_request_leaves_them(void **state)
{
    struct fx *fx = *state;
    const char *extra[] = {"MEMCHAT_TEMPERATURE=0.125", "MEMCHAT_MAX_TOKENS=77"};
    for (size_t i = 0; i < N_PROVIDERS; i++) {
        struct call c;
        run_simple(fx, &c, providers[i], "mock", extra, 2);
        assert_int_equal(c.rc, MC_ERR_NONE);
        cJSON *logged = last_request(fx, 0, NULL);
        cJSON *body = request_body(logged);
        const cJSON *where =
            strcmp(providers[i], "ollama") == 0 ? cJSON_GetObjectItem(body, "options") : body;
        const char *cap = strcmp(providers[i], "ollama") == 0 ? "num_predict" : "max_tokens";
        assert_true(cJSON_GetObjectItem(where, "temperature")->valuedouble == 0.125);
        assert_int_equal(cJSON_GetObjectItem(where, cap)->valueint, 77);
        cJSON_Delete(body);
        cJSON_Delete(logged);
        call_fini(&c);
    }
}

/* --- error statuses ------------------------------------------------------ */

/* A 429 with Retry-After in seconds, as an HTTP date, or retry-after-ms
 * fills http_status and the server's delay for the turn's retry policy. */
static void rate_limit_fills_status_and_server_delay(void **state)
{
    struct fx *fx = *state;
    for (size_t i = 0; i < N_PROVIDERS; i++) {
        struct call c;
        run_simple(fx, &c, providers[i], "mock:429-seconds", NULL, 0);
        assert_int_equal(c.rc, MC_ERR_PROVIDER);
        assert_int_equal(c.res.http_status, 429);
        assert_int_equal(c.res.server_delay_ms, 1000);
        assert_false(c.res.transport_error);
        assert_int_equal(c.res.deltas_sent, 0);
        assert_non_null(strstr(c.err, "HTTP 429"));
        assert_non_null(strstr(c.err, "mock rate limit"));
        assert_non_null(strstr(c.err, providers[i]));
        call_fini(&c);

        run_simple(fx, &c, providers[i], "mock:429-ms", NULL, 0);
        assert_int_equal(c.res.http_status, 429);
        assert_int_equal(c.res.server_delay_ms, 150);
        call_fini(&c);

        /* The date is the mock's whole second + 2 s, so the delay measured
         * here lies between a little under 1 s and 2 s; the wide lower
         * bound allows for a slow machine between the two clock reads. */
        run_simple(fx, &c, providers[i], "mock:429-date", NULL, 0);
        assert_int_equal(c.res.http_status, 429);
        assert_in_range(c.res.server_delay_ms, 500, 2000);
        call_fini(&c);
    }
}

/* 500, 529, 400 and 401 are provider errors whose message carries the
 * status and the server's own text; 401 names the key variable but never
 * the key; without the header, should_retry stays -1. */
static void error_statuses_give_clear_messages(void **state)
{
    struct fx *fx = *state;
    struct {
        const char *model;
        long status;
        const char *text;
    } cases[] = {
        {"mock:500", 500, "mock internal error"},   {"mock:529", 529, "Overloaded"},
        {"mock:400", 400, "mock invalid request"},  {"mock:401", 401, "mock authentication error"},
        {"mock:500-malformed", 500, "parse error"},
    };
    for (size_t i = 0; i < N_PROVIDERS; i++) {
        for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
            struct call c;
            run_simple(fx, &c, providers[i], cases[k].model, NULL, 0);
            assert_int_equal(c.rc, MC_ERR_PROVIDER);
            assert_int_equal(c.res.http_status, cases[k].status);
            assert_int_equal(c.res.should_retry, -1);
            assert_false(c.res.transport_error);
            char status[32];
            snprintf(status, sizeof status, "HTTP %ld", cases[k].status);
            assert_non_null(strstr(c.err, status));
            assert_non_null(strstr(c.err, cases[k].text));
            assert_null(strstr(c.err, OPENAI_KEY));
            assert_null(strstr(c.err, ANTHROPIC_KEY));
            if (cases[k].status == 401 && strcmp(providers[i], "openai") == 0)
                assert_non_null(strstr(c.err, "OPENAI_API_KEY"));
            if (cases[k].status == 401 && strcmp(providers[i], "anthropic") == 0)
                assert_non_null(strstr(c.err, "ANTHROPIC_API_KEY"));
            /* Anthropic's request-id header is kept and quoted. */
            if (strcmp(providers[i], "anthropic") == 0) {
                assert_non_null(strstr(c.res.request_id, "req_mock_"));
                assert_non_null(strstr(c.err, "request id req_mock_"));
            }
            call_fini(&c);
        }
    }
}

/* x-should-retry: false reaches the result, overriding the status rule. */
static void no_retry_header_gives_should_retry_zero(void **state)
{
    struct fx *fx = *state;
    for (size_t i = 0; i < N_PROVIDERS; i++) {
        struct call c;
        run_simple(fx, &c, providers[i], "mock:500,no-retry-header", NULL, 0);
        assert_int_equal(c.rc, MC_ERR_PROVIDER);
        assert_int_equal(c.res.http_status, 500);
        assert_int_equal(c.res.should_retry, 0);
        call_fini(&c);
    }
}

/* A 1 MiB error body gives a bounded message that still has the status
 * and the server's message (which comes first in the body). */
static void big_error_body_gives_a_bounded_message(void **state)
{
    struct fx *fx = *state;
    for (size_t i = 0; i < N_PROVIDERS; i++) {
        struct call c;
        run_simple(fx, &c, providers[i], "mock:big-error", NULL, 0);
        assert_int_equal(c.rc, MC_ERR_PROVIDER);
        assert_int_equal(c.res.http_status, 500);
        assert_non_null(strstr(c.err, "HTTP 500"));
        assert_non_null(strstr(c.err, "mock big error"));
        assert_true(strlen(c.err) < 400);
        /* The message was read out of the cut body, not quoted raw. */
        assert_null(strstr(c.err, "xxxxxxxx"));
        assert_true(utf8_valid(c.err, strlen(c.err), NULL));
        call_fini(&c);
    }
}

/* --- broken transfers ---------------------------------------------------- */

/* A stream that goes silent is abandoned after MEMCHAT_STALL_TIMEOUT_S: a
 * network error with transport_error set, the pieces before it shown.
 * libcurl measures speed over a few seconds' window, so each call takes
 * several seconds: the three providers run at once, each on its own
 * thread and provider (the mock serves many connections). */
static void stalled_stream_times_out_as_a_transport_error(void **state)
{
    struct fx *fx = *state;
    const char *extra[] = {"MEMCHAT_STALL_TIMEOUT_S=1"};
    struct call c[N_PROVIDERS];
    pthread_t t[N_PROVIDERS];
    for (size_t i = 0; i < N_PROVIDERS; i++) {
        call_init(&c[i], make_provider(fx, providers[i], extra, 1), "mock:stall");
        assert_int_equal(pthread_create(&t[i], NULL, call_thread, &c[i]), 0);
    }
    for (size_t i = 0; i < N_PROVIDERS; i++)
        pthread_join(t[i], NULL);
    for (size_t i = 0; i < N_PROVIDERS; i++) {
        assert_int_equal(c[i].rc, MC_ERR_NETWORK);
        assert_true(c[i].res.transport_error);
        assert_string_equal(c[i].res.transport, "timeout");
        assert_int_equal(c[i].res.http_status, 200);
        assert_int_equal(c[i].res.deltas_sent, 2);
        assert_non_null(strstr(c[i].err, "MEMCHAT_STALL_TIMEOUT_S"));
        call_fini(&c[i]);
    }
}

/* A connection dropped mid-stream is a transport error, after the two
 * pieces that came before it were delivered. */
static void dropped_stream_is_a_transport_error_after_its_pieces(void **state)
{
    struct fx *fx = *state;
    for (size_t i = 0; i < N_PROVIDERS; i++) {
        struct call c;
        run_simple(fx, &c, providers[i], "mock:drop", NULL, 0);
        assert_int_equal(c.rc, MC_ERR_NETWORK);
        assert_true(c.res.transport_error);
        assert_true(c.res.transport[0] != '\0');
        assert_int_equal(c.res.deltas_sent, 2);
        assert_int_equal(c.cap.text.len, 14);
        assert_memory_equal(c.cap.text.data, REPLY, 14);
        call_fini(&c);
    }
}

/* A server that is not there is a network error naming the variable. */
static void closed_port_is_a_connect_error_naming_the_base_url(void **state)
{
    struct fx *fx = *state;
    /* A port that was free a moment ago: bound, read, closed. */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
    close(s);
    char url[64];
    snprintf(url, sizeof url, "OPENAI_BASE_URL=http://127.0.0.1:%d/v1", ntohs(a.sin_port));
    const char *extra[] = {url};
    struct call c;
    run_simple(fx, &c, "openai", "mock", extra, 1);
    assert_int_equal(c.rc, MC_ERR_NETWORK);
    assert_true(c.res.transport_error);
    assert_string_equal(c.res.transport, "connect");
    assert_int_equal(c.res.http_status, 0);
    assert_non_null(strstr(c.err, "OPENAI_BASE_URL"));
    assert_null(strstr(c.err, OPENAI_KEY));
    call_fini(&c);
}

/* A body past MEMCHAT_MAX_RESPONSE_BYTES is stopped with a message naming
 * the setting. */
static void oversize_stream_is_stopped_by_the_response_cap(void **state)
{
    struct fx *fx = *state;
    const char *extra[] = {"MEMCHAT_MAX_RESPONSE_BYTES=100000"};
    for (size_t i = 0; i < N_PROVIDERS; i++) {
        struct call c;
        run_simple(fx, &c, providers[i], "mock:oversize", extra, 1);
        assert_int_equal(c.rc, MC_ERR_PROVIDER);
        assert_non_null(strstr(c.err, "MEMCHAT_MAX_RESPONSE_BYTES"));
        assert_true(c.res.bytes_sent < 100000);
        call_fini(&c);
    }
}

/* An error event after HTTP 200 fails the call with the server's message,
 * after the pieces that came before it. */
static void mid_stream_error_fails_with_the_servers_message(void **state)
{
    struct fx *fx = *state;
    for (size_t i = 0; i < N_PROVIDERS; i++) {
        struct call c;
        run_simple(fx, &c, providers[i], "mock:mid-stream-error", NULL, 0);
        assert_int_equal(c.rc, MC_ERR_PROVIDER);
        assert_int_equal(c.res.deltas_sent, 2);
        assert_int_equal(c.res.http_status, 200);
        assert_false(c.res.transport_error);
        const char *text = strcmp(providers[i], "anthropic") == 0 ? "overloaded_error: Overloaded"
                                                                  : "mock mid-stream failure";
        assert_non_null(strstr(c.err, text));
        call_fini(&c);
    }
}

/* --- odd but valid streams ----------------------------------------------- */

/* Garbage payloads between valid ones are skipped and counted; the reply
 * is still whole. */
static void malformed_payloads_are_skipped_and_counted(void **state)
{
    struct fx *fx = *state;
    for (size_t i = 0; i < N_PROVIDERS; i++) {
        struct call c;
        run_simple(fx, &c, providers[i], "mock:malformed", NULL, 0);
        assert_int_equal(c.rc, MC_ERR_NONE);
        assert_string_equal(buf_cstr(&c.cap.text), REPLY);
        /* SSE: {not json}, an array and "x"; Ollama: one {broken line. */
        assert_true(c.res.skipped >= (strcmp(providers[i], "ollama") == 0 ? 1u : 2u));
        call_fini(&c);
    }
}

/* CRLF and bare CR line ends parse like LF. */
static void crlf_line_ends_parse_like_lf(void **state)
{
    struct fx *fx = *state;
    for (size_t i = 0; i < N_PROVIDERS; i++) {
        struct call c;
        run_simple(fx, &c, providers[i], "mock:crlf", NULL, 0);
        assert_int_equal(c.rc, MC_ERR_NONE);
        assert_string_equal(buf_cstr(&c.cap.text), REPLY);
        assert_int_equal(c.res.skipped, 0);
        call_fini(&c);
    }
}

/* A stream written in 1-3 byte writes that split lines and multibyte
 * characters is rejoined exactly; every delta is valid UTF-8, and a
 * U+FFFD the server sent passes as it is. */
static void split_utf8_stream_is_rejoined_exactly(void **state)
{
    struct fx *fx = *state;
    const char *want =
        "mock reply: h\xc3\xa9llo w\xc3\xb6rld \xe2\x98\x83 \xf0\x9d\x84\x9e " USER_TEXT
        "\xef\xbf\xbd";
    for (size_t i = 0; i < N_PROVIDERS; i++) {
        struct call c;
        run_simple(fx, &c, providers[i], "mock:split-utf8", NULL, 0);
        assert_int_equal(c.rc, MC_ERR_NONE);
        assert_string_equal(buf_cstr(&c.cap.text), want);
        assert_false(c.cap.invalid_utf8);
        call_fini(&c);
    }
}

/* llama.cpp puts usage in the chunk with finish_reason; it is found. */
static void usage_inside_the_finish_chunk_is_found(void **state)
{
    struct fx *fx = *state;
    struct call c;
    run_simple(fx, &c, "openai", "mock:usage-in-finish", NULL, 0);
    assert_int_equal(c.rc, MC_ERR_NONE);
    cJSON *logged = last_request(fx, 0, NULL);
    assert_int_equal(c.res.usage.prompt_tokens, logged_prompt_tokens(logged));
    assert_int_equal(c.res.usage.completion_tokens, pieces_of(REPLY));
    assert_int_equal(c.res.usage.cached_tokens, 0);
    cJSON_Delete(logged);
    call_fini(&c);
}

/* A server that reports no usage leaves it -1: estimating is the turn's
 * job, and it must know the figures are not the server's. */
static void missing_usage_stays_unknown(void **state)
{
    struct fx *fx = *state;
    for (size_t i = 0; i < N_PROVIDERS; i++) {
        struct call c;
        run_simple(fx, &c, providers[i], "mock:no-usage", NULL, 0);
        assert_int_equal(c.rc, MC_ERR_NONE);
        assert_string_equal(buf_cstr(&c.cap.text), REPLY);
        assert_int_equal(c.res.usage.prompt_tokens, -1);
        assert_int_equal(c.res.usage.completion_tokens, -1);
        call_fini(&c);
    }
}

/* --- cancel and connections ---------------------------------------------- */

/* Waits until the capture saw n deltas (the 20 s guard only turns a hang
 * into a failure). */
static void wait_for_deltas(struct capture *cap, size_t n)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 20;
    pthread_mutex_lock(&cap->mu);
    while (cap->calls < n)
        if (pthread_cond_timedwait(&cap->cv, &cap->mu, &deadline) != 0)
            break;
    size_t got = cap->calls;
    pthread_mutex_unlock(&cap->mu);
    assert_true(got >= n);
}

/* Cancel while a stalled stream is blocked in poll: interrupt() wakes the
 * transfer at once (the stall timeout is the default 60 s, so a missed
 * wake-up would end as a timeout, not as a cancel), and the call ends
 * MC_ERR_CANCELLED with no delta after the cancel. */
static void cancel_wakes_a_stalled_stream(void **state)
{
    struct fx *fx = *state;
    for (size_t i = 0; i < N_PROVIDERS; i++) {
        struct call c;
        call_init(&c, make_provider(fx, providers[i], NULL, 0), "mock:stall");
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, call_thread, &c), 0);
        wait_for_deltas(&c.cap, 2); /* stall sends two pieces, then nothing */
        atomic_store(&c.cancel, true);
        c.p->interrupt(c.p);
        pthread_join(t, NULL);
        assert_int_equal(c.rc, MC_ERR_CANCELLED);
        assert_int_equal(c.cap.after_cancel, 0);
        assert_int_equal(c.res.deltas_sent, 2);
        call_fini(&c);
    }
}

/* Cancel set while the first piece is being shown: the second piece,
 * already on its way, is never delivered. */
static void no_delta_is_delivered_after_cancel(void **state)
{
    struct fx *fx = *state;
    for (size_t i = 0; i < N_PROVIDERS; i++) {
        struct call c;
        call_init(&c, make_provider(fx, providers[i], NULL, 0), "mock:stall");
        c.cap.hold_first = true;
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, call_thread, &c), 0);
        wait_for_deltas(&c.cap, 1);
        atomic_store(&c.cancel, true);
        c.p->interrupt(c.p);
        pthread_mutex_lock(&c.cap.mu);
        c.cap.released = true;
        pthread_cond_broadcast(&c.cap.cv);
        pthread_mutex_unlock(&c.cap.mu);
        pthread_join(t, NULL);
        assert_int_equal(c.rc, MC_ERR_CANCELLED);
        assert_int_equal(c.cap.calls, 1);
        assert_int_equal(c.res.deltas_sent, 1);
        call_fini(&c);
    }
}

/* Two calls on one provider reuse its connection (the mock numbers TCP
 * connections in accept order). */
static void two_calls_reuse_one_connection(void **state)
{
    struct fx *fx = *state;
    for (size_t i = 0; i < N_PROVIDERS; i++) {
        struct call c;
        call_init(&c, make_provider(fx, providers[i], NULL, 0), "mock");
        call_run(&c);
        assert_int_equal(c.rc, MC_ERR_NONE);
        c.cap.text.len = 0;
        call_run(&c);
        assert_int_equal(c.rc, MC_ERR_NONE);
        cJSON *second = last_request(fx, 0, NULL);
        cJSON *first = last_request(fx, 1, NULL);
        assert_string_equal(cJSON_GetObjectItem(first, "path")->valuestring,
                            provider_path(providers[i]));
        assert_int_equal(cJSON_GetObjectItem(first, "conn")->valueint,
                         cJSON_GetObjectItem(second, "conn")->valueint);
        cJSON_Delete(first);
        cJSON_Delete(second);
        call_fini(&c);
    }
}

/* --- canned streams the mock does not play ------------------------------- */

/* A one-shot server for byte-exact streams: accepts one connection, reads
 * one request, writes the canned response and closes (so the body ends at
 * EOF, which libcurl sees as a clean end). */
struct canned {
    int lfd;
    int port;
    const char *response;
    pthread_t t;
};

static void *canned_thread(void *arg)
{
    struct canned *c = arg;
    struct pollfd pfd = {.fd = c->lfd, .events = POLLIN};
    if (poll(&pfd, 1, MOCK_GUARD_MS) != 1)
        return NULL;
    int fd = accept(c->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    char buf[65536];
    size_t got = 0, need = 0;
    for (;;) {
        struct pollfd in = {.fd = fd, .events = POLLIN};
        if (got == sizeof buf - 1 || poll(&in, 1, MOCK_GUARD_MS) != 1)
            break;
        ssize_t n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
        buf[got] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end != NULL && need == 0) {
            char *cl = strcasestr(buf, "\r\ncontent-length:");
            need = (size_t)(end + 4 - buf) + (cl != NULL ? strtoul(cl + 17, NULL, 10) : 0);
        }
        if (need > 0 && got >= need)
            break;
    }
    const char *r = c->response;
    size_t left = strlen(r);
    while (left > 0) {
        ssize_t n = send(fd, r, left, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        r += n;
        left -= (size_t)n;
    }
    close(fd);
    return NULL;
}

/* Starts a server that answers one request with response (status line,
 * headers and body, verbatim). */
static void canned_start(struct canned *c, const char *response)
{
    memset(c, 0, sizeof *c);
    c->response = response;
    c->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(c->lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(c->lfd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(c->lfd, (struct sockaddr *)&a, &len), 0);
    assert_int_equal(listen(c->lfd, 1), 0);
    c->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&c->t, NULL, canned_thread, c), 0);
}

static void canned_stop(struct canned *c)
{
    pthread_join(c->t, NULL);
    close(c->lfd);
}

#define SSE_HEAD  "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
#define JSON_HEAD "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"

/* A provider called name whose base URL is the canned server's. */
static struct llm_provider *canned_provider(const struct fx *fx, const char *name,
                                            const struct canned *c)
{
    char url[96];
    const char *var = strcmp(name, "openai") == 0      ? "OPENAI_BASE_URL"
                      : strcmp(name, "anthropic") == 0 ? "ANTHROPIC_BASE_URL"
                                                       : "OLLAMA_BASE_URL";
    snprintf(url, sizeof url, "%s=http://127.0.0.1:%d%s", var, c->port,
             strcmp(name, "openai") == 0 ? "/v1" : "");
    const char *extra[] = {url};
    return make_provider(fx, name, extra, 1);
}

/* Runs one call of provider name against the canned response. */
static void run_canned(const struct fx *fx, struct call *c, const char *name, const char *response,
                       bool no_stream)
{
    struct canned srv;
    canned_start(&srv, response);
    call_init(c, canned_provider(fx, name, &srv), "m");
    c->no_stream = no_stream;
    call_run(c);
    canned_stop(&srv);
}

/* The one tool call the provider kept, checked against api-notes.md's
 * get_weather example. */
static void assert_weather_call(const struct llm_provider *p, const char *id)
{
    size_t n = 0;
    const struct llm_tool_call *tc = llm_provider_tool_calls(p, &n);
    assert_int_equal(n, 1);
    assert_string_equal(tc[0].id, id);
    assert_string_equal(tc[0].name, "get_weather");
    assert_string_equal(buf_cstr(&tc[0].arguments), "{\"city\":\"Oslo\"}");
    assert_true(tc[0].arguments_valid);
}

/* OpenAI tool-call fragments are joined by index (api-notes.md §1.6):
 * id and name from the first, arguments concatenated, checked as JSON once
 * the finish_reason came; usage from the final chunk. */
static void openai_tool_call_fragments_are_assembled(void **state)
{
    static const char response[] = SSE_HEAD
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,"
        "\"tool_calls\":[{\"index\":0,\"id\":\"call_9\",\"type\":\"function\",\"function\":{"
        "\"name\":\"get_weather\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}\n\n"
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{"
        "\"arguments\":\"{\\\"city\\\":\"}}]},\"finish_reason\":null}]}\n\n"
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{"
        "\"arguments\":\"\\\"Oslo\\\"}\"}}]},\"finish_reason\":null}]}\n\n"
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n"
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":50,\"completion_tokens\":12,"
        "\"total_tokens\":62,\"prompt_tokens_details\":{\"cached_tokens\":40}}}\n\n"
        "data: [DONE]\n\n";
    struct call c;
    run_canned(*state, &c, "openai", response, false);
    assert_int_equal(c.rc, MC_ERR_NONE);
    assert_int_equal(c.res.deltas_sent, 0);
    assert_int_equal(c.res.tool_calls, 1);
    assert_string_equal(c.res.finish_reason, "tool_calls");
    assert_int_equal(c.res.usage.prompt_tokens, 50);
    assert_int_equal(c.res.usage.completion_tokens, 12);
    assert_int_equal(c.res.usage.cached_tokens, 40);
    assert_weather_call(c.p, "call_9");
    call_fini(&c);
}

/* Anthropic's tool_use block takes id and name from content_block_start
 * and its input from input_json_delta pieces; message_delta's usage is
 * cumulative and replaces, and cache reads count in prompt_tokens. */
static void anthropic_tool_use_block_is_assembled(void **state)
{
    static const char response[] = SSE_HEAD
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{"
        "\"input_tokens\":20,\"cache_read_input_tokens\":5,\"output_tokens\":1}}}\n\n"
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,"
        "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
        "\"delta\":{\"type\":\"text_delta\",\"text\":\"Let me look.\"}}\n\n"
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,"
        "\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":"
        "\"get_weather\",\"input\":{}}}\n\n"
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,"
        "\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\":\"}}\n\n"
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,"
        "\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"Oslo\\\"}\"}}\n\n"
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n"
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
        "\"tool_use\"},\"usage\":{\"output_tokens\":7}}\n\n"
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{},\"usage\":"
        "{\"output_tokens\":9}}\n\n"
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    struct call c;
    run_canned(*state, &c, "anthropic", response, false);
    assert_int_equal(c.rc, MC_ERR_NONE);
    assert_string_equal(buf_cstr(&c.cap.text), "Let me look.");
    assert_string_equal(c.res.finish_reason, "tool_use");
    assert_int_equal(c.res.usage.prompt_tokens, 25);
    assert_int_equal(c.res.usage.cached_tokens, 5);
    assert_int_equal(c.res.usage.completion_tokens, 9);
    assert_weather_call(c.p, "toolu_1");
    call_fini(&c);
}

/* Ollama's tool calls come whole, their arguments an object. */
static void ollama_whole_tool_call_is_kept(void **state)
{
    static const char response[] =
        "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nConnection: close\r\n\r\n"
        "{\"message\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"id\":\"t7\","
        "\"function\":{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Oslo\"}}}]},"
        "\"done\":false}\n"
        "{\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":"
        "\"stop\",\"prompt_eval_count\":26,\"eval_count\":4}\n";
    struct call c;
    run_canned(*state, &c, "ollama", response, false);
    assert_int_equal(c.rc, MC_ERR_NONE);
    assert_int_equal(c.res.usage.prompt_tokens, 26);
    assert_int_equal(c.res.usage.completion_tokens, 4);
    assert_weather_call(c.p, "t7");
    call_fini(&c);
}

/* A stream that ends cleanly (EOF) with neither [DONE] nor a
 * finish_reason was cut: a transport failure, "incomplete stream". */
static void stream_without_its_end_is_incomplete(void **state)
{
    static const char response[] =
        SSE_HEAD "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"half a\"},"
                 "\"finish_reason\":null}]}\n\n";
    struct call c;
    run_canned(*state, &c, "openai", response, false);
    assert_int_equal(c.rc, MC_ERR_NETWORK);
    assert_true(c.res.transport_error);
    assert_string_equal(c.res.transport, "incomplete stream");
    assert_string_equal(buf_cstr(&c.cap.text), "half a");
    call_fini(&c);
}

/* Raw invalid bytes in a content string become U+FFFD; a character whose
 * bytes are split across two deltas is joined, not replaced. */
static void invalid_and_split_utf8_is_repaired(void **state)
{
    static const char response[] =
        SSE_HEAD "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\xff\"}}]}\n\n"
                 "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"caf\xc3\"}}]}\n\n"
                 "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\xa9!\"},"
                 "\"finish_reason\":\"stop\"}]}\n\n"
                 "data: [DONE]\n\n";
    struct call c;
    run_canned(*state, &c, "openai", response, false);
    assert_int_equal(c.rc, MC_ERR_NONE);
    assert_string_equal(buf_cstr(&c.cap.text), "a\xef\xbf\xbd"
                                               "caf\xc3\xa9!");
    assert_false(c.cap.invalid_utf8);
    call_fini(&c);
}

/* An overloaded_error event before any text is marked retryable
 * (should_retry 1), since the user saw nothing; after a delta it is not
 * (-1: the turn never retries once a delta was shown anyway). */
static void stream_error_before_any_text_is_retryable(void **state)
{
    static const char before[] =
        SSE_HEAD "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{}}\n\n"
                 "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":"
                 "\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
    static const char after[] =
        SSE_HEAD "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
                 "\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n"
                 "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":"
                 "\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
    struct call c;
    run_canned(*state, &c, "anthropic", before, false);
    assert_int_equal(c.rc, MC_ERR_PROVIDER);
    assert_int_equal(c.res.http_status, 200);
    assert_int_equal(c.res.should_retry, 1);
    assert_non_null(strstr(c.err, "overloaded_error"));
    call_fini(&c);
    run_canned(*state, &c, "anthropic", after, false);
    assert_int_equal(c.rc, MC_ERR_PROVIDER);
    assert_int_equal(c.res.deltas_sent, 1);
    assert_int_equal(c.res.should_retry, -1);
    call_fini(&c);
}

/* A server that echoes the key in its error message does not get it into
 * ours. */
static void a_key_echoed_by_the_server_is_masked(void **state)
{
    static const char response[] =
        "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
        "{\"error\":{\"message\":\"bad key " OPENAI_KEY "\",\"type\":\"invalid_api_key\"}}";
    struct call c;
    run_canned(*state, &c, "openai", response, false);
    assert_int_equal(c.rc, MC_ERR_PROVIDER);
    assert_non_null(strstr(c.err, "bad key"));
    assert_null(strstr(c.err, OPENAI_KEY));
    call_fini(&c);
}

/* A 200 answer that is not JSON is a provider error quoting it. */
static void non_json_answer_is_a_provider_error(void **state)
{
    static const char response[] = JSON_HEAD "<html>\x1b[31mproxy says hi</html>";
    struct call c;
    run_canned(*state, &c, "openai", response, true);
    assert_int_equal(c.rc, MC_ERR_PROVIDER);
    assert_non_null(strstr(c.err, "proxy says hi"));
    assert_null(strchr(c.err, '\x1b'));
    call_fini(&c);
}

/* --- resolve and auto ---------------------------------------------------- */

static struct llm_provider *resolve_with(const struct fx *fx, const char *name, bool keys,
                                         const char *const *extra, size_t n, char *err,
                                         size_t errlen)
{
    struct config *cfg = make_config(fx, keys, extra, n);
    struct llm_provider *p = llm_provider_resolve(name, cfg, err, errlen);
    config_free(cfg);
    return p;
}

/* auto with OPENAI_API_KEY picks openai, and says why. */
static void auto_with_an_openai_key_picks_openai(void **state)
{
    char err[512] = "";
    struct llm_provider *p = resolve_with(*state, "auto", true, NULL, 0, err, sizeof err);
    assert_non_null(p);
    assert_string_equal(p->name, "openai");
    assert_string_equal(p->default_model, "gpt-4o-mini");
    assert_non_null(strstr(p->detail, "OPENAI_API_KEY"));
    assert_null(strstr(p->detail, OPENAI_KEY));
    llm_provider_free(p);
}

/* auto with only ANTHROPIC_API_KEY picks anthropic. */
static void auto_with_only_an_anthropic_key_picks_anthropic(void **state)
{
    const char *extra[] = {"ANTHROPIC_API_KEY=" ANTHROPIC_KEY};
    char err[512] = "";
    struct llm_provider *p = resolve_with(*state, "auto", false, extra, 1, err, sizeof err);
    assert_non_null(p);
    assert_string_equal(p->name, "anthropic");
    assert_string_equal(p->default_model, "claude-sonnet-4-5");
    assert_int_equal(p->context_window, 200000);
    llm_provider_free(p);
}

/* auto with no key finds the local server at MEMCHAT_LOCAL_BASE_URL and
 * takes the first model it lists as the default; a call then works. */
static void auto_finds_a_local_server_and_its_model(void **state)
{
    struct fx *fx = *state;
    char local[128];
    snprintf(local, sizeof local, "MEMCHAT_LOCAL_BASE_URL=%s/v1", mock_url(fx->mock));
    const char *extra[] = {local};
    char err[512] = "";
    struct llm_provider *p = resolve_with(fx, "auto", false, extra, 1, err, sizeof err);
    assert_non_null(p);
    assert_string_equal(p->name, "openai");
    assert_string_equal(p->default_model, "mock-model");
    assert_non_null(strstr(p->detail, mock_url(fx->mock)));
    cJSON *probe = last_request(fx, 0, NULL);
    assert_string_equal(cJSON_GetObjectItem(probe, "method")->valuestring, "GET");
    assert_string_equal(cJSON_GetObjectItem(probe, "path")->valuestring, "/v1/models");
    cJSON_Delete(probe);
    struct call c;
    call_init(&c, p, "mock");
    call_run(&c);
    assert_int_equal(c.rc, MC_ERR_NONE);
    assert_string_equal(buf_cstr(&c.cap.text), REPLY);
    call_fini(&c);
}

/* auto with no key and nothing listening falls back to offline. */
static void auto_without_key_or_server_is_offline(void **state)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
    close(s);
    char local[96];
    snprintf(local, sizeof local, "MEMCHAT_LOCAL_BASE_URL=http://127.0.0.1:%d/v1",
             ntohs(a.sin_port));
    const char *extra[] = {local};
    char err[512] = "";
    struct llm_provider *p = resolve_with(*state, "auto", false, extra, 1, err, sizeof err);
    assert_non_null(p);
    assert_string_equal(p->name, "offline");
    assert_non_null(strstr(p->detail, "MEMCHAT_LOCAL_BASE_URL"));
    llm_provider_free(p);
}

/* A base URL that is not http(s) is a configuration error naming the
 * variable, for every provider and for auto's local URL. */
static void bad_base_url_names_the_variable(void **state)
{
    struct {
        const char *provider;
        const char *flag;
        const char *var;
    } cases[] = {
        {"openai", "OPENAI_BASE_URL=ftp://x", "OPENAI_BASE_URL"},
        {"anthropic", "ANTHROPIC_BASE_URL=ftp://x", "ANTHROPIC_BASE_URL"},
        {"ollama", "OLLAMA_BASE_URL=ftp://x", "OLLAMA_BASE_URL"},
        {"ollama", "OLLAMA_BASE_URL=localhost:11434", "OLLAMA_BASE_URL"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[512] = "";
        const char *extra[] = {cases[i].flag};
        struct llm_provider *p =
            resolve_with(*state, cases[i].provider, true, extra, 1, err, sizeof err);
        assert_null(p);
        assert_non_null(strstr(err, cases[i].var));
        assert_non_null(strstr(err, "http://"));
    }
    const char *local[] = {"MEMCHAT_LOCAL_BASE_URL=ftp://x"};
    char err[512] = "";
    assert_null(resolve_with(*state, "auto", false, local, 1, err, sizeof err));
    assert_non_null(strstr(err, "MEMCHAT_LOCAL_BASE_URL"));
}

/* anthropic refuses a temperature above 1, naming the setting to fix; an
 * unknown provider lists the accepted names. */
static void resolve_errors_name_the_setting_to_fix(void **state)
{
    char err[512] = "";

    const char *hot[] = {"MEMCHAT_TEMPERATURE=1.5"};
    assert_null(resolve_with(*state, "anthropic", true, hot, 1, err, sizeof err));
    assert_non_null(strstr(err, "MEMCHAT_TEMPERATURE"));
    assert_null(strstr(err, ANTHROPIC_KEY));

    assert_null(resolve_with(*state, "gemini", true, NULL, 0, err, sizeof err));
    assert_non_null(strstr(err, "MEMCHAT_PROVIDER"));
    assert_non_null(strstr(err, "anthropic"));
}

/* A request temperature above 1 is refused by anthropic before anything
 * is sent. */
static void anthropic_refuses_a_request_temperature_above_one(void **state)
{
    struct fx *fx = *state;
    size_t before = request_count(fx);
    struct call c;
    call_init(&c, make_provider(fx, "anthropic", NULL, 0), "mock");
    c.temperature = 1.5;
    call_run(&c);
    assert_int_equal(c.rc, MC_ERR_CONFIG);
    assert_non_null(strstr(c.err, "MEMCHAT_TEMPERATURE"));
    assert_int_equal(request_count(fx), before);
    call_fini(&c);
}

/* --- per-request keys (a tenant's own key, stage 7) ---------------------- */

#define TENANT_KEY "sk-tenant-acme-7777"

/* With no ANTHROPIC_API_KEY the provider is still made, since tenants may
 * bring their own keys; a call with no key at all fails as a configuration
 * error naming both places a key can come from, and sends nothing. */
static void anthropic_without_any_key_fails_at_call_time_sending_nothing(void **state)
{
    struct fx *fx = *state;
    struct config *cfg = make_config(fx, false, NULL, 0);
    char err[512] = "";
    struct llm_provider *p = llm_provider_resolve("anthropic", cfg, err, sizeof err);
    config_free(cfg);
    assert_non_null(p);
    assert_true(p->needs_key);
    size_t before = 0;
    cJSON_Delete(last_request(fx, 0, &before));
    struct call c;
    call_init(&c, p, "mock");
    call_run(&c);
    assert_int_equal(c.rc, MC_ERR_CONFIG);
    assert_non_null(strstr(c.err, "ANTHROPIC_API_KEY"));
    assert_non_null(strstr(c.err, "memchat keys set"));
    size_t after = 0;
    cJSON_Delete(last_request(fx, 0, &after));
    assert_int_equal(after, before);

    /* The same provider with a request key sends it. */
    call_init(&c, p, "mock");
    c.api_key = TENANT_KEY;
    call_run(&c);
    assert_int_equal(c.rc, MC_ERR_NONE);
    cJSON *logged = last_request(fx, 0, NULL);
    assert_string_equal(request_header(logged, "x-api-key"), TENANT_KEY);
    cJSON_Delete(logged);
    call_fini(&c);
}

/* A request's key is sent instead of the provider's configured one, by
 * openai as a Bearer token and by anthropic as x-api-key; a request
 * without one still sends the configured key. */
static void a_request_key_replaces_the_provider_key_in_the_auth_header(void **state)
{
    struct fx *fx = *state;
    static const struct {
        const char *provider, *header, *mine, *theirs;
    } cases[] = {
        {"openai", "authorization", "Bearer " TENANT_KEY, "Bearer " OPENAI_KEY},
        {"anthropic", "x-api-key", TENANT_KEY, ANTHROPIC_KEY},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct call c;
        call_init(&c, make_provider(fx, cases[i].provider, NULL, 0), "mock");
        c.api_key = TENANT_KEY;
        call_run(&c);
        assert_int_equal(c.rc, MC_ERR_NONE);
        cJSON *logged = last_request(fx, 0, NULL);
        assert_string_equal(request_header(logged, cases[i].header), cases[i].mine);
        cJSON_Delete(logged);
        c.api_key = NULL;
        capture_fini(&c.cap);
        capture_init(&c.cap);
        c.cap.cancel = &c.cancel;
        call_run(&c);
        assert_int_equal(c.rc, MC_ERR_NONE);
        logged = last_request(fx, 0, NULL);
        assert_string_equal(request_header(logged, cases[i].header), cases[i].theirs);
        cJSON_Delete(logged);
        call_fini(&c);
    }
}

/* A 401 for a tenant's key points at where that key came from, not at the
 * global key variable, and never contains either key. */
static void a_rejected_request_key_is_named_by_its_origin_never_its_value(void **state)
{
    struct fx *fx = *state;
    for (size_t i = 0; i < N_PROVIDERS; i++) {
        if (strcmp(providers[i], "ollama") == 0)
            continue; /* takes no key */
        struct call c;
        call_init(&c, make_provider(fx, providers[i], NULL, 0), "mock:401");
        c.api_key = TENANT_KEY;
        c.api_key_origin = "the key of tenant acme (memchat keys)";
        call_run(&c);
        assert_int_equal(c.rc, MC_ERR_PROVIDER);
        assert_non_null(strstr(c.err, "the key of tenant acme (memchat keys)"));
        assert_null(strstr(c.err, "_API_KEY"));
        assert_null(strstr(c.err, TENANT_KEY));
        assert_null(strstr(c.err, OPENAI_KEY));
        call_fini(&c);
    }
}

/* openai and anthropic at their configured base URLs accept tenant keys;
 * a local server found by auto, ollama and offline do not, so a tenant's
 * OpenAI key is never sent to some other server. */
static void tenant_keys_apply_only_to_the_configured_base_url(void **state)
{
    struct fx *fx = *state;
    struct llm_provider *p = make_provider(fx, "openai", NULL, 0);
    assert_string_equal(p->key_name, "openai");
    assert_false(p->needs_key);
    llm_provider_free(p);
    p = make_provider(fx, "anthropic", NULL, 0);
    assert_string_equal(p->key_name, "anthropic");
    llm_provider_free(p);
    p = make_provider(fx, "ollama", NULL, 0);
    assert_null(p->key_name);
    llm_provider_free(p);
    p = make_provider(fx, "offline", NULL, 0);
    assert_null(p->key_name);
    llm_provider_free(p);

    char local[160];
    snprintf(local, sizeof local, "MEMCHAT_LOCAL_BASE_URL=%s/v1", mock_url(fx->mock));
    const char *extra[] = {local};
    char err[512] = "";
    p = resolve_with(fx, "auto", false, extra, 1, err, sizeof err);
    assert_non_null(p);
    assert_string_equal(p->name, "openai");
    assert_null(p->key_name);
    llm_provider_free(p);
}

/* --- function calling against the mock ---------------------------------- */

#define ECHO_SCHEMA                                                                                \
    "{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\"}},\"required\":[\"text\"]" \
    "}"
#define ECHO_ARGS "{\"text\":\"" USER_TEXT "\"}"
/* A result with quotes, a backslash, a newline and non-ASCII text, to see
 * it go back byte for byte. */
#define RESULT_ONE "{\"echoed\":\"hello there\",\"note\":\"caf\xc3\xa9 \\\\ \\\"q\\\"\"}\nline 2"
#define RESULT_TWO "second result"

/* The tools a request offers: echo, a and b (the mock calls them by name
 * whatever is offered, but only when something is). */
static const struct llm_tool_spec test_tools[] = {
    {.name = "echo", .description = "Echoes its text", .parameters = ECHO_SCHEMA},
    {.name = "a", .description = "Tool a", .parameters = ECHO_SCHEMA},
    {.name = "b", .description = NULL, .parameters = "not a schema"},
};
#define N_TEST_TOOLS (sizeof test_tools / sizeof test_tools[0])

/* The id the mock gives the i-th call (from 1) on this provider's API:
 * OpenAI's call_N, Anthropic's toolu_N; Ollama sends none. */
static const char *mock_call_id(const char *provider, int i)
{
    static char id[32];
    if (strcmp(provider, "ollama") == 0)
        return "";
    snprintf(id, sizeof id, "%s_%d", strcmp(provider, "anthropic") == 0 ? "toolu" : "call", i);
    return id;
}

/* How each API says "stopped to call tools". */
static const char *tool_finish(const char *provider)
{
    if (strcmp(provider, "openai") == 0)
        return "tool_calls";
    if (strcmp(provider, "anthropic") == 0)
        return "tool_use";
    return "stop"; /* Ollama has no reason of its own for it */
}

/* A tool call copied out of the provider, which owns its own only until
 * its next chat(). */
struct kept_calls {
    struct llm_tool_call calls[4];
    size_t n;
};

static void kept_take(struct kept_calls *k, const struct llm_provider *p)
{
    size_t n = 0;
    const struct llm_tool_call *tc = llm_provider_tool_calls(p, &n);
    assert_true(n <= 4);
    k->n = n;
    for (size_t i = 0; i < n; i++) {
        struct llm_tool_call *d = &k->calls[i];
        memset(d, 0, sizeof *d);
        d->index = tc[i].index;
        d->id = strdup(tc[i].id);
        d->name = strdup(tc[i].name);
        buf_init(&d->arguments, 1 << 20);
        assert_int_equal(buf_append(&d->arguments, tc[i].arguments.data, tc[i].arguments.len),
                         BUF_OK);
        d->arguments_valid = tc[i].arguments_valid;
    }
}

static void kept_free(struct kept_calls *k)
{
    for (size_t i = 0; i < k->n; i++) {
        free(k->calls[i].id);
        free(k->calls[i].name);
        buf_free(&k->calls[i].arguments);
    }
    k->n = 0;
}

/* One request with tools: msgs, the test tools (none when no_tools),
 * tools_none, streamed or not. */
struct tool_call_run {
    struct capture cap;
    struct llm_result res;
    enum mc_error rc;
    char err[1024];
};

static void tool_run(struct llm_provider *p, const char *model, const struct llm_message *msgs,
                     size_t n, bool no_stream, bool tools_none, struct tool_call_run *r)
{
    capture_init(&r->cap);
    struct llm_request req = {
        .model = model,
        .messages = msgs,
        .n_messages = n,
        .temperature = NAN,
        .no_stream = no_stream,
        .tools = test_tools,
        .n_tools = N_TEST_TOOLS,
        .tools_none = tools_none,
    };
    r->err[0] = '\0';
    r->rc = p->chat(p, &req, on_delta, &r->cap, NULL, &r->res, r->err, sizeof r->err);
    if (r->rc != MC_ERR_NONE)
        fail_msg("%s: %s", p->name, r->err);
}

/* The logged body's messages array. */
static const cJSON *body_messages(const cJSON *body)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(body, "messages");
    assert_true(cJSON_IsArray(m));
    return m;
}

static const char *json_str(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

/* The tools array went out in the API's shape: OpenAI's (and Ollama's)
 * {"type":"function","function":{name, description, parameters}},
 * Anthropic's {name, description, input_schema}, the schema an object
 * (a malformed one replaced by an empty object schema). */
static void assert_tools_sent(const char *provider, const cJSON *body)
{
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(body, "tools");
    assert_int_equal(cJSON_GetArraySize(tools), N_TEST_TOOLS);
    for (size_t i = 0; i < N_TEST_TOOLS; i++) {
        const cJSON *t = cJSON_GetArrayItem(tools, (int)i);
        const cJSON *fn = t;
        const char *schema_key = "input_schema";
        if (strcmp(provider, "anthropic") != 0) {
            assert_string_equal(json_str(t, "type"), "function");
            fn = cJSON_GetObjectItemCaseSensitive(t, "function");
            schema_key = "parameters";
        }
        assert_string_equal(json_str(fn, "name"), test_tools[i].name);
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(fn, "description");
        if (test_tools[i].description != NULL)
            assert_string_equal(d->valuestring, test_tools[i].description);
        else
            assert_null(d);
        const cJSON *schema = cJSON_GetObjectItemCaseSensitive(fn, schema_key);
        assert_true(cJSON_IsObject(schema));
        assert_string_equal(json_str(schema, "type"), "object");
    }
}

/* The second request of a round trip carried the assistant's call and its
 * result in the API's shape (api-notes.md §1.3, §2.2, §3.1). */
static void assert_history_sent(const char *provider, const cJSON *body, const char *id,
                                const char *result)
{
    const cJSON *msgs = body_messages(body);
    if (strcmp(provider, "anthropic") == 0) {
        /* user, assistant [tool_use], user [tool_result] */
        assert_int_equal(cJSON_GetArraySize(msgs), 3);
        const cJSON *asst = cJSON_GetArrayItem(msgs, 1);
        assert_string_equal(json_str(asst, "role"), "assistant");
        const cJSON *blocks = cJSON_GetObjectItemCaseSensitive(asst, "content");
        assert_int_equal(cJSON_GetArraySize(blocks), 1);
        const cJSON *use = cJSON_GetArrayItem(blocks, 0);
        assert_string_equal(json_str(use, "type"), "tool_use");
        assert_string_equal(json_str(use, "id"), id);
        assert_string_equal(json_str(use, "name"), "echo");
        const cJSON *input = cJSON_GetObjectItemCaseSensitive(use, "input");
        assert_string_equal(json_str(input, "text"), USER_TEXT);
        const cJSON *user = cJSON_GetArrayItem(msgs, 2);
        assert_string_equal(json_str(user, "role"), "user");
        const cJSON *res = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(user, "content"), 0);
        assert_string_equal(json_str(res, "type"), "tool_result");
        assert_string_equal(json_str(res, "tool_use_id"), id);
        assert_string_equal(json_str(res, "content"), result);
        assert_null(cJSON_GetObjectItemCaseSensitive(res, "is_error"));
        return;
    }
    /* system, user, assistant {tool_calls}, tool */
    assert_int_equal(cJSON_GetArraySize(msgs), 4);
    const cJSON *asst = cJSON_GetArrayItem(msgs, 2);
    assert_string_equal(json_str(asst, "role"), "assistant");
    const cJSON *calls = cJSON_GetObjectItemCaseSensitive(asst, "tool_calls");
    assert_int_equal(cJSON_GetArraySize(calls), 1);
    const cJSON *call = cJSON_GetArrayItem(calls, 0);
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(call, "function");
    assert_string_equal(json_str(fn, "name"), "echo");
    const cJSON *tool = cJSON_GetArrayItem(msgs, 3);
    assert_string_equal(json_str(tool, "role"), "tool");
    assert_string_equal(json_str(tool, "content"), result);
    if (strcmp(provider, "openai") == 0) {
        assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(asst, "content")));
        assert_string_equal(json_str(call, "id"), id);
        assert_string_equal(json_str(call, "type"), "function");
        assert_string_equal(json_str(fn, "arguments"), ECHO_ARGS); /* the text, as a string */
        assert_string_equal(json_str(tool, "tool_call_id"), id);
        assert_null(cJSON_GetObjectItemCaseSensitive(tool, "tool_name"));
    } else {
        assert_string_equal(json_str(asst, "content"), "");
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
        assert_string_equal(json_str(args, "text"), USER_TEXT); /* an object */
        assert_string_equal(json_str(tool, "tool_name"), "echo");
    }
}

/* A round trip on every provider, streamed and whole: the mock's call is
 * assembled with its id, name and arguments; sent back with its result,
 * the result arrives intact (the mock answers "tool results: " + what it
 * received), and both requests had the documented shape. */
static void a_tool_call_round_trip_works_on_every_provider(void **state)
{
    struct fx *fx = *state;
    for (size_t i = 0; i < N_PROVIDERS; i++) {
        for (int whole = 0; whole < 2; whole++) {
            const char *name = providers[i];
            struct llm_provider *p = make_provider(fx, name, NULL, 0);
            struct llm_message first[] = {{.role = "system", .content = SYSTEM_TEXT},
                                          {.role = "user", .content = USER_TEXT}};
            struct tool_call_run r;
            tool_run(p, "mock:tool=echo", first, 2, whole, false, &r);
            assert_int_equal(r.cap.text.len, 0);
            assert_int_equal(r.res.tool_calls, 1);
            assert_string_equal(r.res.finish_reason, tool_finish(name));
            assert_false(r.res.usage.estimated);
            assert_true(r.res.usage.completion_tokens > 0);
            struct kept_calls k;
            kept_take(&k, p);
            assert_int_equal(k.n, 1);
            assert_string_equal(k.calls[0].id, mock_call_id(name, 1));
            assert_string_equal(k.calls[0].name, "echo");
            assert_string_equal(buf_cstr(&k.calls[0].arguments), ECHO_ARGS);
            assert_true(k.calls[0].arguments_valid);
            cJSON *logged = last_request(fx, 0, NULL);
            cJSON *body = request_body(logged);
            assert_tools_sent(name, body);
            assert_null(cJSON_GetObjectItemCaseSensitive(body, "tool_choice"));
            cJSON_Delete(body);
            cJSON_Delete(logged);
            capture_fini(&r.cap);

            struct llm_message second[] = {
                {.role = "system", .content = SYSTEM_TEXT},
                {.role = "user", .content = USER_TEXT},
                {.role = "assistant", .content = NULL, .tool_calls = k.calls, .n_tool_calls = 1},
                {.role = "tool",
                 .content = RESULT_ONE,
                 .tool_call_id = k.calls[0].id,
                 .tool_name = "echo"},
            };
            tool_run(p, "mock:tool=echo", second, 4, whole, false, &r);
            assert_string_equal(buf_cstr(&r.cap.text), "tool results: " RESULT_ONE);
            assert_int_equal(r.res.tool_calls, 0);
            size_t left = 9;
            assert_null(llm_provider_tool_calls(p, &left));
            assert_int_equal(left, 0);
            logged = last_request(fx, 0, NULL);
            body = request_body(logged);
            assert_history_sent(name, body, mock_call_id(name, 1), RESULT_ONE);
            cJSON_Delete(body);
            cJSON_Delete(logged);
            capture_fini(&r.cap);
            kept_free(&k);
            llm_provider_free(p);
        }
    }
}

/* tool=a+b: two calls in one reply, in order, each assembled from its own
 * fragments (OpenAI interleaves them by index); both results go back, in
 * order (Anthropic: in one user message). */
static void parallel_tool_calls_keep_their_order_and_arguments(void **state)
{
    struct fx *fx = *state;
    for (size_t i = 0; i < N_PROVIDERS; i++) {
        for (int whole = 0; whole < 2; whole++) {
            const char *name = providers[i];
            struct llm_provider *p = make_provider(fx, name, NULL, 0);
            struct llm_message first[] = {{.role = "user", .content = USER_TEXT}};
            struct tool_call_run r;
            tool_run(p, "mock:tool=a+b", first, 1, whole, false, &r);
            assert_int_equal(r.res.tool_calls, 2);
            struct kept_calls k;
            kept_take(&k, p);
            assert_int_equal(k.n, 2);
            const char *names[] = {"a", "b"};
            for (size_t j = 0; j < 2; j++) {
                assert_string_equal(k.calls[j].id, mock_call_id(name, (int)j + 1));
                assert_string_equal(k.calls[j].name, names[j]);
                assert_string_equal(buf_cstr(&k.calls[j].arguments), ECHO_ARGS);
                assert_true(k.calls[j].arguments_valid);
            }
            capture_fini(&r.cap);

            struct llm_message second[] = {
                {.role = "user", .content = USER_TEXT},
                {.role = "assistant", .content = "", .tool_calls = k.calls, .n_tool_calls = 2},
                {.role = "tool",
                 .content = RESULT_ONE,
                 .tool_call_id = k.calls[0].id,
                 .tool_name = "a"},
                {.role = "tool",
                 .content = RESULT_TWO,
                 .tool_call_id = k.calls[1].id,
                 .tool_name = "b"},
            };
            tool_run(p, "mock:tool=a+b", second, 4, whole, false, &r);
            assert_string_equal(buf_cstr(&r.cap.text),
                                "tool results: " RESULT_ONE " | " RESULT_TWO);
            cJSON *logged = last_request(fx, 0, NULL);
            cJSON *body = request_body(logged);
            const cJSON *msgs = body_messages(body);
            if (strcmp(name, "anthropic") == 0) {
                assert_int_equal(cJSON_GetArraySize(msgs), 3);
                const cJSON *asst = cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 1), "content");
                assert_int_equal(cJSON_GetArraySize(asst), 2);
                const cJSON *results = cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 2), "content");
                assert_int_equal(cJSON_GetArraySize(results), 2);
                assert_string_equal(json_str(cJSON_GetArrayItem(results, 1), "tool_use_id"),
                                    "toolu_2");
            } else {
                assert_int_equal(cJSON_GetArraySize(msgs), 4);
                const cJSON *calls = cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 1), "tool_calls");
                assert_int_equal(cJSON_GetArraySize(calls), 2);
                const cJSON *fn = cJSON_GetObjectItem(cJSON_GetArrayItem(calls, 1), "function");
                assert_string_equal(json_str(fn, "name"), "b");
            }
            cJSON_Delete(body);
            cJSON_Delete(logged);
            capture_fini(&r.cap);
            kept_free(&k);
            llm_provider_free(p);
        }
    }
}

/* tools_none forbids calls: OpenAI gets tool_choice "none", Anthropic
 * {"type":"none"} (the tools still described), Ollama no tools at all; the
 * mock's toolloop then answers in text. Without it, toolloop calls `loop`
 * even after tool results. */
static void tools_none_gets_text_from_a_looping_model(void **state)
{
    struct fx *fx = *state;
    for (size_t i = 0; i < N_PROVIDERS; i++) {
        for (int whole = 0; whole < 2; whole++) {
            const char *name = providers[i];
            struct llm_provider *p = make_provider(fx, name, NULL, 0);
            struct llm_message msgs[] = {{.role = "user", .content = USER_TEXT}};
            struct tool_call_run r;
            tool_run(p, "mock:toolloop", msgs, 1, whole, true, &r);
            assert_string_equal(buf_cstr(&r.cap.text), "no more tools");
            assert_int_equal(r.res.tool_calls, 0);
            cJSON *logged = last_request(fx, 0, NULL);
            cJSON *body = request_body(logged);
            const cJSON *choice = cJSON_GetObjectItemCaseSensitive(body, "tool_choice");
            if (strcmp(name, "openai") == 0) {
                assert_string_equal(choice->valuestring, "none");
                assert_tools_sent(name, body);
            } else if (strcmp(name, "anthropic") == 0) {
                assert_string_equal(json_str(choice, "type"), "none");
                assert_tools_sent(name, body);
            } else {
                assert_null(choice);
                assert_null(cJSON_GetObjectItemCaseSensitive(body, "tools"));
            }
            cJSON_Delete(body);
            cJSON_Delete(logged);
            capture_fini(&r.cap);

            tool_run(p, "mock:toolloop", msgs, 1, whole, false, &r);
            struct kept_calls k;
            kept_take(&k, p);
            assert_int_equal(k.n, 1);
            assert_string_equal(k.calls[0].name, "loop");
            capture_fini(&r.cap);
            struct llm_message again[] = {
                {.role = "user", .content = USER_TEXT},
                {.role = "assistant", .tool_calls = k.calls, .n_tool_calls = 1},
                {.role = "tool",
                 .content = "{}",
                 .tool_call_id = k.calls[0].id,
                 .tool_name = "loop"},
            };
            tool_run(p, "mock:toolloop", again, 3, whole, false, &r);
            assert_int_equal(r.res.tool_calls, 1);
            capture_fini(&r.cap);
            kept_free(&k);
            llm_provider_free(p);
        }
    }
}

/* toolargs-bad: the call is kept with arguments_valid false. Sent back,
 * OpenAI gets the text as it came, Anthropic and Ollama (which want an
 * object) an empty object. */
static void invalid_tool_arguments_are_marked_and_sent_back_as_an_empty_object(void **state)
{
    struct fx *fx = *state;
    for (size_t i = 0; i < N_PROVIDERS; i++) {
        for (int whole = 0; whole < 2; whole++) {
            const char *name = providers[i];
            struct llm_provider *p = make_provider(fx, name, NULL, 0);
            struct llm_message msgs[] = {{.role = "user", .content = USER_TEXT}};
            struct tool_call_run r;
            tool_run(p, "mock:toolargs-bad", msgs, 1, whole, false, &r);
            struct kept_calls k;
            kept_take(&k, p);
            assert_int_equal(k.n, 1);
            assert_string_equal(k.calls[0].name, "echo");
            assert_false(k.calls[0].arguments_valid);
            capture_fini(&r.cap);

            struct llm_message again[] = {
                {.role = "user", .content = USER_TEXT},
                {.role = "assistant", .tool_calls = k.calls, .n_tool_calls = 1},
                {.role = "tool",
                 .content = "error: the arguments are not JSON",
                 .tool_call_id = k.calls[0].id,
                 .tool_name = "echo",
                 .tool_error = true},
            };
            tool_run(p, "mock", again, 3, whole, false, &r);
            cJSON *logged = last_request(fx, 0, NULL);
            cJSON *body = request_body(logged);
            const cJSON *asst = cJSON_GetArrayItem(body_messages(body), 1);
            if (strcmp(name, "openai") == 0) {
                const cJSON *fn = cJSON_GetObjectItem(
                    cJSON_GetArrayItem(cJSON_GetObjectItem(asst, "tool_calls"), 0), "function");
                assert_string_equal(json_str(fn, "arguments"), buf_cstr(&k.calls[0].arguments));
            } else {
                const cJSON *holder =
                    strcmp(name, "anthropic") == 0
                        ? cJSON_GetArrayItem(cJSON_GetObjectItem(asst, "content"), 0)
                        : cJSON_GetObjectItem(
                              cJSON_GetArrayItem(cJSON_GetObjectItem(asst, "tool_calls"), 0),
                              "function");
                const cJSON *obj = cJSON_GetObjectItem(
                    holder, strcmp(name, "anthropic") == 0 ? "input" : "arguments");
                assert_true(cJSON_IsObject(obj));
                assert_int_equal(cJSON_GetArraySize(obj), 0);
            }
            cJSON_Delete(body);
            cJSON_Delete(logged);
            capture_fini(&r.cap);
            kept_free(&k);
            llm_provider_free(p);
        }
    }
}

/* Anthropic: an assistant message's text comes as a text block before its
 * tool_use; a failed result carries is_error true (an ok one no is_error),
 * and the mock, which answers "error: " for it, shows it arrived. */
static void anthropic_marks_failed_tool_results_as_errors(void **state)
{
    struct fx *fx = *state;
    for (int whole = 0; whole < 2; whole++) {
        struct llm_provider *p = make_provider(fx, "anthropic", NULL, 0);
        char id1[] = "toolu_x1", id2[] = "toolu_x2", name[] = "echo";
        struct llm_tool_call calls[2] = {{.id = id1, .name = name}, {.id = id2, .name = name}};
        for (size_t j = 0; j < 2; j++) {
            buf_init(&calls[j].arguments, 1024);
            assert_int_equal(buf_puts(&calls[j].arguments, ECHO_ARGS), BUF_OK);
            calls[j].arguments_valid = true;
        }
        struct llm_message msgs[] = {
            {.role = "user", .content = USER_TEXT},
            {.role = "assistant",
             .content = "Let me look.",
             .tool_calls = calls,
             .n_tool_calls = 2},
            {.role = "tool", .content = "fine", .tool_call_id = id1, .tool_name = "echo"},
            {.role = "tool",
             .content = "boom",
             .tool_call_id = id2,
             .tool_name = "echo",
             .tool_error = true},
        };
        struct tool_call_run r;
        tool_run(p, "mock:tool=echo", msgs, 4, whole, false, &r);
        assert_string_equal(buf_cstr(&r.cap.text), "tool results: fine | error: boom");
        cJSON *logged = last_request(fx, 0, NULL);
        cJSON *body = request_body(logged);
        const cJSON *m = body_messages(body);
        assert_int_equal(cJSON_GetArraySize(m), 3);
        const cJSON *blocks = cJSON_GetObjectItem(cJSON_GetArrayItem(m, 1), "content");
        assert_int_equal(cJSON_GetArraySize(blocks), 3);
        assert_string_equal(json_str(cJSON_GetArrayItem(blocks, 0), "type"), "text");
        assert_string_equal(json_str(cJSON_GetArrayItem(blocks, 0), "text"), "Let me look.");
        assert_string_equal(json_str(cJSON_GetArrayItem(blocks, 1), "id"), "toolu_x1");
        assert_string_equal(json_str(cJSON_GetArrayItem(blocks, 2), "id"), "toolu_x2");
        const cJSON *results = cJSON_GetObjectItem(cJSON_GetArrayItem(m, 2), "content");
        assert_null(cJSON_GetObjectItem(cJSON_GetArrayItem(results, 0), "is_error"));
        assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetArrayItem(results, 1), "is_error")));
        cJSON_Delete(body);
        cJSON_Delete(logged);
        capture_fini(&r.cap);
        for (size_t j = 0; j < 2; j++)
            buf_free(&calls[j].arguments);
        llm_provider_free(p);
    }
}

/* OpenAI keeps an assistant message's text beside its tool calls (content
 * is null only when there is none). */
static void openai_keeps_the_text_beside_tool_calls(void **state)
{
    struct fx *fx = *state;
    struct llm_provider *p = make_provider(fx, "openai", NULL, 0);
    char id[] = "call_9", name[] = "echo";
    struct llm_tool_call call = {.id = id, .name = name};
    buf_init(&call.arguments, 1024);
    assert_int_equal(buf_puts(&call.arguments, ECHO_ARGS), BUF_OK);
    struct llm_message msgs[] = {
        {.role = "user", .content = USER_TEXT},
        {.role = "assistant", .content = "Let me look.", .tool_calls = &call, .n_tool_calls = 1},
        {.role = "tool", .content = "fine", .tool_call_id = id},
    };
    struct tool_call_run r;
    tool_run(p, "mock", msgs, 3, false, false, &r);
    assert_string_equal(buf_cstr(&r.cap.text), "tool results: fine");
    cJSON *logged = last_request(fx, 0, NULL);
    cJSON *body = request_body(logged);
    const cJSON *asst = cJSON_GetArrayItem(body_messages(body), 1);
    assert_string_equal(json_str(asst, "content"), "Let me look.");
    cJSON_Delete(body);
    cJSON_Delete(logged);
    capture_fini(&r.cap);
    buf_free(&call.arguments);
    llm_provider_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stream_reassembles_the_reply_with_usage),
        cmocka_unit_test(non_stream_answer_is_one_delta_with_usage),
        cmocka_unit_test(openai_request_has_the_documented_shape),
        cmocka_unit_test(openai_without_key_sends_no_authorization),
        cmocka_unit_test(anthropic_request_has_the_documented_shape),
        cmocka_unit_test(ollama_request_has_the_documented_shape),
        cmocka_unit_test(configured_temperature_and_cap_apply_when_the_request_leaves_them),
        cmocka_unit_test(rate_limit_fills_status_and_server_delay),
        cmocka_unit_test(error_statuses_give_clear_messages),
        cmocka_unit_test(no_retry_header_gives_should_retry_zero),
        cmocka_unit_test(big_error_body_gives_a_bounded_message),
        cmocka_unit_test(stalled_stream_times_out_as_a_transport_error),
        cmocka_unit_test(dropped_stream_is_a_transport_error_after_its_pieces),
        cmocka_unit_test(closed_port_is_a_connect_error_naming_the_base_url),
        cmocka_unit_test(oversize_stream_is_stopped_by_the_response_cap),
        cmocka_unit_test(mid_stream_error_fails_with_the_servers_message),
        cmocka_unit_test(malformed_payloads_are_skipped_and_counted),
        cmocka_unit_test(crlf_line_ends_parse_like_lf),
        cmocka_unit_test(split_utf8_stream_is_rejoined_exactly),
        cmocka_unit_test(usage_inside_the_finish_chunk_is_found),
        cmocka_unit_test(missing_usage_stays_unknown),
        cmocka_unit_test(cancel_wakes_a_stalled_stream),
        cmocka_unit_test(no_delta_is_delivered_after_cancel),
        cmocka_unit_test(two_calls_reuse_one_connection),
        cmocka_unit_test(openai_tool_call_fragments_are_assembled),
        cmocka_unit_test(anthropic_tool_use_block_is_assembled),
        cmocka_unit_test(ollama_whole_tool_call_is_kept),
        cmocka_unit_test(stream_without_its_end_is_incomplete),
        cmocka_unit_test(invalid_and_split_utf8_is_repaired),
        cmocka_unit_test(stream_error_before_any_text_is_retryable),
        cmocka_unit_test(a_key_echoed_by_the_server_is_masked),
        cmocka_unit_test(non_json_answer_is_a_provider_error),
        cmocka_unit_test(auto_with_an_openai_key_picks_openai),
        cmocka_unit_test(auto_with_only_an_anthropic_key_picks_anthropic),
        cmocka_unit_test(auto_finds_a_local_server_and_its_model),
        cmocka_unit_test(auto_without_key_or_server_is_offline),
        cmocka_unit_test(bad_base_url_names_the_variable),
        cmocka_unit_test(resolve_errors_name_the_setting_to_fix),
        cmocka_unit_test(anthropic_without_any_key_fails_at_call_time_sending_nothing),
        cmocka_unit_test(a_request_key_replaces_the_provider_key_in_the_auth_header),
        cmocka_unit_test(a_rejected_request_key_is_named_by_its_origin_never_its_value),
        cmocka_unit_test(tenant_keys_apply_only_to_the_configured_base_url),
        cmocka_unit_test(anthropic_refuses_a_request_temperature_above_one),
        cmocka_unit_test(a_tool_call_round_trip_works_on_every_provider),
        cmocka_unit_test(parallel_tool_calls_keep_their_order_and_arguments),
        cmocka_unit_test(tools_none_gets_text_from_a_looping_model),
        cmocka_unit_test(invalid_tool_arguments_are_marked_and_sent_back_as_an_empty_object),
        cmocka_unit_test(anthropic_marks_failed_tool_results_as_errors),
        cmocka_unit_test(openai_keeps_the_text_beside_tool_calls),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
