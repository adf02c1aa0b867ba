/*
 * Tests of the Opik exporter (src/net/opik.h) over real sockets on
 * 127.0.0.1, against the loopback mock server (tests/server/mockllm), whose
 * Opik batch endpoints answer 204, log every request (path, headers, body)
 * and misbehave on demand through a "mock:<behaviour>" segment in the base
 * URL (see tests/server/mockserver.h). Each case starts its own server, so
 * its request log and its then=N counters start empty.
 *
 * The records are built here (record_new): a trace with a fresh UUIDv7 id
 * and n spans linked to it by trace_id, which is all the exporter relies
 * on. Nothing sleeps: the retry waits go through a sleep callback that
 * records the delays and returns at once, and the interrupt test's thread
 * waits (bounded) for the stalled request to show in the server's log.
 */
#include "../server/mockserver.h"

#include <pthread.h>
#include <stdbool.h>
#include <sys/socket.h>

#include <cJSON.h>

#include "memchat/engine.h"
#include "net/opik.h"
#include "util/uuid.h"

#define TEST_KEY       "opik-test-key-0123456789abcdef"
#define TEST_WORKSPACE "memchat-ws"
#define TRACES_PATH    "/v1/private/traces/batch"
#define SPANS_PATH     "/v1/private/spans/batch"

/* --- helpers ------------------------------------------------------------- */

/* A trace record {"trace":{...},"spans":[...]} with n_spans spans, as
 * client/trace.h shapes it; the trace id goes to id_out when non-NULL.
 * The caller frees it with cJSON_Delete. */
static cJSON *record_new(int n_spans, char *id_out)
{
    char id[UUID_STRLEN + 1];
    uuid7_new(id);
    if (id_out != NULL)
        memcpy(id_out, id, sizeof id);
    cJSON *rec = cJSON_CreateObject();
    cJSON *trace = cJSON_AddObjectToObject(rec, "trace");
    cJSON_AddStringToObject(trace, "id", id);
    cJSON_AddStringToObject(trace, "project_name", "memchat-test");
    cJSON_AddStringToObject(trace, "name", "turn");
    cJSON_AddStringToObject(trace, "start_time", "2026-11-24T10:00:00.123Z");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(trace, "input"), "text", "hi");
    cJSON *spans = cJSON_AddArrayToObject(rec, "spans");
    for (int i = 0; i < n_spans; i++) {
        char sid[UUID_STRLEN + 1];
        uuid7_new(sid);
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "id", sid);
        cJSON_AddStringToObject(s, "trace_id", id);
        cJSON_AddStringToObject(s, "project_name", "memchat-test");
        cJSON_AddStringToObject(s, "name", i == 0 ? "retrieve" : "send");
        cJSON_AddStringToObject(s, "type", i == 0 ? "tool" : "llm");
        cJSON_AddStringToObject(s, "start_time", "2026-11-24T10:00:00.200Z");
        cJSON_AddItemToArray(spans, s);
    }
    assert_non_null(rec);
    return rec;
}

/* Enqueues a new record with n_spans spans (asserting it is taken). */
static void enqueue_new(struct opik *o, int n_spans, char *id_out)
{
    cJSON *rec = record_new(n_spans, id_out);
    assert_int_equal(opik_enqueue(o, rec), 0);
    cJSON_Delete(rec);
}

/* The exporter's configuration for base (a URL the caller owns). */
static struct opik_config config_for(const char *base)
{
    struct opik_config c = {
        .base_url = base,
        .api_key = NULL,
        .workspace = NULL,
        .queue_max = 100000,
        .max_retries = 2,
        .connect_timeout_ms = 10000,
        .timeout_ms = 60000, /* only a hang guard: nothing here should take long */
    };
    return c;
}

/* An exporter on c (asserting it is made). */
static struct opik *opik_make(const struct opik_config *c)
{
    char err[256] = "";
    struct opik *o = opik_new(c, err, sizeof err);
    if (o == NULL)
        fail_msg("opik_new: %s", err);
    return o;
}

/* What the sleep callback saw, and what it answers. */
struct sleeper {
    int calls;
    long long ms[16];
    bool answer;
};

/* The sleep callback: records the delay, returns at once. */
static bool sleeper_sleep(void *ud, long long ms)
{
    struct sleeper *s = ud;
    if (s->calls < (int)(sizeof s->ms / sizeof s->ms[0]))
        s->ms[s->calls] = ms;
    s->calls++;
    return s->answer;
}

/* True when the logged request's path ends in suffix. */
static bool path_ends(const cJSON *req, const char *suffix)
{
    const char *p = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(req, "path"));
    assert_non_null(p);
    size_t n = strlen(p), e = strlen(suffix);
    return n >= e && strcmp(p + n - e, suffix) == 0;
}

/* The logged request's body parsed (caller frees), failing on non-JSON. */
static cJSON *req_body(const cJSON *req)
{
    const char *b = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(req, "body"));
    assert_non_null(b);
    cJSON *j = cJSON_Parse(b);
    assert_non_null(j);
    return j;
}

/* A header of a logged request (names are logged lower-case), or NULL. */
static const char *req_header(const cJSON *req, const char *name)
{
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(req, "headers");
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(h, name));
}

/* The number of items in the batch array member of a logged request. */
static int batch_size(const cJSON *req, const char *member)
{
    cJSON *b = req_body(req);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(b, member);
    assert_true(cJSON_IsArray(arr));
    int n = cJSON_GetArraySize(arr);
    cJSON_Delete(b);
    return n;
}

/* A base URL on the mock: <mock>/<segment>/api, or <mock>/api when
 * segment is NULL. */
static void base_url(const struct mock *m, const char *segment, char *out, size_t outlen)
{
    if (segment == NULL)
        snprintf(out, outlen, "%s/api", mock_url(m));
    else
        snprintf(out, outlen, "%s/%s/api", mock_url(m), segment);
}

static int mock_setup(void **state)
{
    *state = mock_start();
    return 0;
}

static int mock_teardown(void **state)
{
    mock_stop(*state);
    return 0;
}

/* --- cases --------------------------------------------------------------- */

/* One flush sends every trace in one {"traces":[...]} POST, then every span
 * in one {"spans":[...]} POST, as the records held them (ids, the spans'
 * trace_id links, order), with JSON content type; the queue is then empty,
 * the counters match, and a flush of nothing sends nothing. A trailing '/'
 * on the base URL does not double the separator. */
static void batches_are_sent_in_the_documented_format(void **state)
{
    struct mock *m = *state;
    char base[128];
    snprintf(base, sizeof base, "%s/api/", mock_url(m));
    struct opik_config c = config_for(base);
    struct opik *o = opik_make(&c);
    char ids[3][UUID_STRLEN + 1];
    const int nspans[3] = {2, 0, 1};
    cJSON *recs[3];
    for (int i = 0; i < 3; i++) {
        recs[i] = record_new(nspans[i], ids[i]);
        assert_int_equal(opik_enqueue(o, recs[i]), 0);
    }
    assert_int_equal(opik_pending(o), 3);
    struct sleeper sl = {.answer = true};
    char err[512];
    assert_int_equal(opik_flush(o, sleeper_sleep, &sl, err, sizeof err), 0);
    assert_int_equal(opik_pending(o), 0);
    assert_int_equal(sl.calls, 0);

    cJSON *log;
    assert_int_equal(mock_requests(m, &log), 2);
    const cJSON *tr = cJSON_GetArrayItem(log, 0), *sp = cJSON_GetArrayItem(log, 1);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(tr, "method")),
                        "POST");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(tr, "path")),
                        "/api" TRACES_PATH);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(sp, "path")),
                        "/api" SPANS_PATH);
    assert_string_equal(req_header(tr, "content-type"), "application/json");
    assert_string_equal(req_header(sp, "content-type"), "application/json");

    /* The traces body: exactly {"traces":[the three traces, in order]}. */
    cJSON *tb = req_body(tr);
    assert_int_equal(cJSON_GetArraySize(tb), 1);
    const cJSON *traces = cJSON_GetObjectItemCaseSensitive(tb, "traces");
    assert_int_equal(cJSON_GetArraySize(traces), 3);
    for (int i = 0; i < 3; i++) {
        const cJSON *t = cJSON_GetArrayItem(traces, i);
        assert_true(cJSON_Compare(t, cJSON_GetObjectItemCaseSensitive(recs[i], "trace"), true));
        const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "id"));
        assert_string_equal(id, ids[i]);
        assert_true(uuid7_time_ms(id) > 0);
    }
    cJSON_Delete(tb);

    /* The spans body: the 2 + 0 + 1 spans in record order, each linked to
     * its own record's trace. */
    cJSON *sb = req_body(sp);
    assert_int_equal(cJSON_GetArraySize(sb), 1);
    const cJSON *spans = cJSON_GetObjectItemCaseSensitive(sb, "spans");
    assert_int_equal(cJSON_GetArraySize(spans), 3);
    const char *want_trace[3] = {ids[0], ids[0], ids[2]};
    const cJSON *want_span[3] = {
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(recs[0], "spans"), 0),
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(recs[0], "spans"), 1),
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(recs[2], "spans"), 0),
    };
    for (int i = 0; i < 3; i++) {
        const cJSON *s = cJSON_GetArrayItem(spans, i);
        assert_true(cJSON_Compare(s, want_span[i], true));
        const char *sid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(s, "id"));
        assert_true(uuid7_time_ms(sid) > 0);
        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(s, "trace_id")),
                            want_trace[i]);
    }
    cJSON_Delete(sb);
    cJSON_Delete(log);

    struct opik_stats st;
    opik_get_stats(o, &st);
    assert_int_equal(st.sent_traces, 3);
    assert_int_equal(st.sent_spans, 3);
    assert_int_equal(st.failed_requests, 0);
    assert_int_equal(st.dropped_full + st.dropped_rejected, 0);

    assert_int_equal(opik_flush(o, sleeper_sleep, &sl, err, sizeof err), 0);
    assert_int_equal(mock_requests(m, &log), 2);
    cJSON_Delete(log);
    for (int i = 0; i < 3; i++)
        cJSON_Delete(recs[i]);
    opik_free(o);
}

/* The key goes out as "authorization: <key>" with no "Bearer " and the
 * workspace as Comet-Workspace, on both requests; an exporter with neither
 * sends neither header. */
static void headers_carry_the_bare_key_and_the_workspace_only_when_set(void **state)
{
    struct mock *m = *state;
    char base[128];
    base_url(m, NULL, base, sizeof base);
    struct opik_config c = config_for(base);
    c.api_key = TEST_KEY;
    c.workspace = TEST_WORKSPACE;
    struct opik *o = opik_make(&c);
    enqueue_new(o, 1, NULL);
    char err[512];
    assert_int_equal(opik_flush(o, NULL, NULL, err, sizeof err), 0);
    opik_free(o);

    c.api_key = "";
    c.workspace = NULL;
    o = opik_make(&c);
    enqueue_new(o, 1, NULL);
    assert_int_equal(opik_flush(o, NULL, NULL, err, sizeof err), 0);
    opik_free(o);

    cJSON *log;
    assert_int_equal(mock_requests(m, &log), 4);
    for (int i = 0; i < 2; i++) {
        const cJSON *r = cJSON_GetArrayItem(log, i);
        assert_string_equal(req_header(r, "authorization"), TEST_KEY);
        assert_string_equal(req_header(r, "comet-workspace"), TEST_WORKSPACE);
    }
    for (int i = 2; i < 4; i++) {
        const cJSON *r = cJSON_GetArrayItem(log, i);
        assert_null(req_header(r, "authorization"));
        assert_null(req_header(r, "comet-workspace"));
    }
    cJSON_Delete(log);
}

/* 1001 records make two trace requests (1000 and 1) before two span
 * requests (1000 and 1): Opik refuses batches over 1000, and so does the
 * mock (422), so the flush's success also proves the bound. */
static void a_thousand_and_one_records_are_sent_in_two_batches_each(void **state)
{
    struct mock *m = *state;
    char base[128];
    base_url(m, NULL, base, sizeof base);
    struct opik_config c = config_for(base);
    struct opik *o = opik_make(&c);
    for (int i = 0; i < 1001; i++)
        enqueue_new(o, 1, NULL);
    char err[512];
    assert_int_equal(opik_flush(o, NULL, NULL, err, sizeof err), 0);
    cJSON *log;
    assert_int_equal(mock_requests(m, &log), 4);
    const char *paths[4] = {TRACES_PATH, TRACES_PATH, SPANS_PATH, SPANS_PATH};
    const char *members[4] = {"traces", "traces", "spans", "spans"};
    const int sizes[4] = {1000, 1, 1000, 1};
    for (int i = 0; i < 4; i++) {
        const cJSON *r = cJSON_GetArrayItem(log, i);
        assert_true(path_ends(r, paths[i]));
        assert_int_equal(batch_size(r, members[i]), sizes[i]);
    }
    cJSON_Delete(log);
    struct opik_stats st;
    opik_get_stats(o, &st);
    assert_int_equal(st.sent_traces, 1001);
    assert_int_equal(st.sent_spans, 1001);
    opik_free(o);
}

/* Two 500s and then success: the trace batch is retried twice, waiting
 * retry.h's backoff (500 ms and 1 s, minus up to 25 % jitter) through the
 * sleep callback, then everything is sent; both failures are counted. */
static void two_500s_then_success_are_retried_and_everything_is_sent(void **state)
{
    struct mock *m = *state;
    char base[128];
    base_url(m, "mock:500,then=2", base, sizeof base);
    struct opik_config c = config_for(base);
    c.max_retries = 3;
    struct opik *o = opik_make(&c);
    enqueue_new(o, 2, NULL);
    struct sleeper sl = {.answer = true};
    char err[512];
    assert_int_equal(opik_flush(o, sleeper_sleep, &sl, err, sizeof err), 0);
    assert_int_equal(opik_pending(o), 0);
    assert_int_equal(sl.calls, 2);
    assert_in_range(sl.ms[0], 375, 500);
    assert_in_range(sl.ms[1], 750, 1000);
    cJSON *log;
    assert_int_equal(mock_requests(m, &log), 4);
    for (int i = 0; i < 3; i++)
        assert_true(path_ends(cJSON_GetArrayItem(log, i), TRACES_PATH));
    assert_true(path_ends(cJSON_GetArrayItem(log, 3), SPANS_PATH));
    cJSON_Delete(log);
    struct opik_stats st;
    opik_get_stats(o, &st);
    assert_int_equal(st.failed_requests, 2);
    assert_int_equal(st.sent_traces, 1);
    assert_int_equal(st.sent_spans, 2);
    opik_free(o);
}

/* A 429 with Retry-After: 1 waits exactly the server's second, not the
 * backoff formula. */
static void a_429_waits_as_long_as_retry_after_asks(void **state)
{
    struct mock *m = *state;
    char base[128];
    base_url(m, "mock:429-seconds,then=1", base, sizeof base);
    struct opik_config c = config_for(base);
    struct opik *o = opik_make(&c);
    enqueue_new(o, 1, NULL);
    struct sleeper sl = {.answer = true};
    char err[512];
    assert_int_equal(opik_flush(o, sleeper_sleep, &sl, err, sizeof err), 0);
    assert_int_equal(sl.calls, 1);
    assert_int_equal(sl.ms[0], 1000);
    opik_free(o);
}

/* A 400 can never pass: the trace batch is dropped at once (no retry, no
 * span request for its spans), counted with its spans, and the flush
 * returns -1 naming the path, the status and the server's message, but
 * never the key. */
static void a_400_drops_the_batch_and_names_the_status_but_not_the_key(void **state)
{
    struct mock *m = *state;
    char base[128];
    base_url(m, "mock:400", base, sizeof base);
    struct opik_config c = config_for(base);
    c.api_key = TEST_KEY;
    struct opik *o = opik_make(&c);
    enqueue_new(o, 2, NULL);
    struct sleeper sl = {.answer = true};
    char err[512] = "";
    assert_int_equal(opik_flush(o, sleeper_sleep, &sl, err, sizeof err), -1);
    assert_non_null(strstr(err, TRACES_PATH));
    assert_non_null(strstr(err, "HTTP 400"));
    assert_non_null(strstr(err, "mock invalid request"));
    assert_null(strstr(err, TEST_KEY));
    assert_int_equal(sl.calls, 0);
    assert_int_equal(opik_pending(o), 0);
    cJSON *log;
    assert_int_equal(mock_requests(m, &log), 1);
    cJSON_Delete(log);
    struct opik_stats st;
    opik_get_stats(o, &st);
    assert_int_equal(st.dropped_rejected, 3);
    assert_int_equal(st.failed_requests, 1);
    assert_int_equal(st.sent_traces + st.sent_spans, 0);
    opik_free(o);
}

/* A server that quotes the key back in its error body (message and
 * details) does not get it into the message: every copy is masked. */
static void a_key_the_server_echoes_is_masked_in_the_message(void **state)
{
    struct mock *m = *state;
    char base[128];
    base_url(m, "mock:echo-key", base, sizeof base);
    struct opik_config c = config_for(base);
    c.api_key = TEST_KEY;
    struct opik *o = opik_make(&c);
    enqueue_new(o, 0, NULL);
    char err[1024] = "";
    assert_int_equal(opik_flush(o, NULL, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "HTTP 401"));
    assert_non_null(strstr(err, "invalid API key"));
    /* The mask stands where the key stood, so the echo did arrive. */
    char stars[sizeof TEST_KEY];
    memset(stars, '*', sizeof stars - 1);
    stars[sizeof stars - 1] = '\0';
    assert_non_null(strstr(err, stars));
    assert_null(strstr(err, TEST_KEY));
    assert_null(strstr(err, "0123456789abcdef"));
    opik_free(o);
}

/* A queue bounded at 3 that is given 5 records drops the 2 oldest
 * (counted); the batch sent holds the 3 newest in order. */
static void a_full_queue_drops_the_oldest_records(void **state)
{
    struct mock *m = *state;
    char base[128];
    base_url(m, NULL, base, sizeof base);
    struct opik_config c = config_for(base);
    c.queue_max = 3;
    struct opik *o = opik_make(&c);
    char ids[5][UUID_STRLEN + 1];
    for (int i = 0; i < 5; i++)
        enqueue_new(o, 1, ids[i]);
    assert_int_equal(opik_pending(o), 3);
    struct opik_stats st;
    opik_get_stats(o, &st);
    assert_int_equal(st.dropped_full, 2);
    char err[512];
    assert_int_equal(opik_flush(o, NULL, NULL, err, sizeof err), 0);
    cJSON *log;
    assert_int_equal(mock_requests(m, &log), 2);
    cJSON *tb = req_body(cJSON_GetArrayItem(log, 0));
    const cJSON *traces = cJSON_GetObjectItemCaseSensitive(tb, "traces");
    assert_int_equal(cJSON_GetArraySize(traces), 3);
    for (int i = 0; i < 3; i++) {
        const cJSON *t = cJSON_GetArrayItem(traces, i);
        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "id")),
                            ids[i + 2]);
    }
    cJSON_Delete(tb);
    cJSON *sb = req_body(cJSON_GetArrayItem(log, 1));
    const cJSON *spans = cJSON_GetObjectItemCaseSensitive(sb, "spans");
    assert_int_equal(cJSON_GetArraySize(spans), 3);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                            cJSON_GetArrayItem(spans, 0), "trace_id")),
                        ids[2]);
    cJSON_Delete(sb);
    cJSON_Delete(log);
    opik_free(o);
}

/* A port nobody listens on (bound here, never listening, so no one else
 * takes it): each attempt is a transport error, retried max_retries times,
 * then the flush returns -1 naming the transport error and the path, with
 * the record still pending. */
static void a_server_that_is_down_keeps_the_records_and_names_the_transport_error(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    char base[128];
    snprintf(base, sizeof base, "http://127.0.0.1:%u/api", (unsigned)ntohs(a.sin_port));
    struct opik_config c = config_for(base);
    struct opik *o = opik_make(&c);
    enqueue_new(o, 1, NULL);
    struct sleeper sl = {.answer = true};
    char err[512] = "";
    assert_int_equal(opik_flush(o, sleeper_sleep, &sl, err, sizeof err), -1);
    assert_non_null(strstr(err, "transport error (connect)"));
    assert_non_null(strstr(err, TRACES_PATH));
    assert_non_null(strstr(err, "gave up after 2 retries"));
    assert_int_equal(sl.calls, 2);
    assert_int_equal(opik_pending(o), 1);
    struct opik_stats st;
    opik_get_stats(o, &st);
    assert_int_equal(st.failed_requests, 3);
    assert_int_equal(st.sent_traces + st.dropped_rejected + st.dropped_full, 0);
    opik_free(o);
    close(fd);
}

/* A sleep callback that returns false (shutdown) stops the retries after
 * the first wait: one request, -1, the record still pending. */
static void a_sleep_that_refuses_stops_retrying_and_keeps_the_records(void **state)
{
    struct mock *m = *state;
    char base[128];
    base_url(m, "mock:500", base, sizeof base);
    struct opik_config c = config_for(base);
    c.max_retries = 5;
    struct opik *o = opik_make(&c);
    enqueue_new(o, 1, NULL);
    struct sleeper sl = {.answer = false};
    char err[512] = "";
    assert_int_equal(opik_flush(o, sleeper_sleep, &sl, err, sizeof err), -1);
    assert_int_equal(sl.calls, 1);
    assert_non_null(strstr(err, "HTTP 500"));
    assert_non_null(strstr(err, "abandoned"));
    assert_int_equal(opik_pending(o), 1);
    cJSON *log;
    assert_int_equal(mock_requests(m, &log), 1);
    cJSON_Delete(log);
    opik_free(o);
}

/* Traces that went out stay sent when their spans fail: the next flush
 * sends only the spans (the trace is never sent twice) and empties the
 * queue. */
static void spans_that_failed_are_resent_without_their_trace(void **state)
{
    struct mock *m = *state;
    char base[128];
    base_url(m, "mock:500,spans-only,then=1", base, sizeof base);
    struct opik_config c = config_for(base);
    c.max_retries = 0;
    struct opik *o = opik_make(&c);
    char id[UUID_STRLEN + 1];
    enqueue_new(o, 2, id);
    char err[512] = "";
    assert_int_equal(opik_flush(o, NULL, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, SPANS_PATH));
    assert_int_equal(opik_pending(o), 1);
    struct opik_stats st;
    opik_get_stats(o, &st);
    assert_int_equal(st.sent_traces, 1);
    assert_int_equal(st.sent_spans, 0);

    assert_int_equal(opik_flush(o, NULL, NULL, err, sizeof err), 0);
    assert_int_equal(opik_pending(o), 0);
    cJSON *log;
    assert_int_equal(mock_requests(m, &log), 3);
    assert_true(path_ends(cJSON_GetArrayItem(log, 0), TRACES_PATH));
    assert_true(path_ends(cJSON_GetArrayItem(log, 1), SPANS_PATH));
    assert_true(path_ends(cJSON_GetArrayItem(log, 2), SPANS_PATH));
    cJSON *sb = req_body(cJSON_GetArrayItem(log, 2));
    const cJSON *spans = cJSON_GetObjectItemCaseSensitive(sb, "spans");
    assert_int_equal(cJSON_GetArraySize(spans), 2);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                            cJSON_GetArrayItem(spans, 1), "trace_id")),
                        id);
    cJSON_Delete(sb);
    cJSON_Delete(log);
    opik_get_stats(o, &st);
    assert_int_equal(st.sent_traces, 1);
    assert_int_equal(st.sent_spans, 2);
    opik_free(o);
}

/* The interrupting thread of the stall test. */
struct interrupter {
    struct mock *m;
    struct opik *o;
    bool saw_request;
};

/* Waits (bounded by MOCK_GUARD_MS) until the server logged the stalled
 * request, so the flush is surely blocked in it, then interrupts. */
static void *interrupter_main(void *ud)
{
    struct interrupter *in = ud;
    long long deadline = mock_now_ms() + MOCK_GUARD_MS;
    while (!in->saw_request && mock_now_ms() < deadline) {
        cJSON *log;
        in->saw_request = mock_requests(in->m, &log) >= 1;
        cJSON_Delete(log);
        if (!in->saw_request)
            poll(NULL, 0, 5); /* waiting for the server's log line, not for time */
    }
    opik_interrupt(in->o);
    return NULL;
}

/* A flush stuck on a server that never answers ends with -1 ("interrupted")
 * as soon as another thread calls opik_interrupt, long before its 60 s
 * timeout, and keeps the record. */
static void an_interrupt_from_another_thread_ends_a_stalled_flush(void **state)
{
    struct mock *m = *state;
    char base[128];
    base_url(m, "mock:hang", base, sizeof base);
    struct opik_config c = config_for(base);
    struct opik *o = opik_make(&c);
    enqueue_new(o, 1, NULL);
    struct interrupter in = {.m = m, .o = o};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, interrupter_main, &in), 0);
    struct sleeper sl = {.answer = true};
    char err[512] = "";
    int rc = opik_flush(o, sleeper_sleep, &sl, err, sizeof err);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_true(in.saw_request);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, "interrupted"));
    assert_int_equal(sl.calls, 0);
    assert_int_equal(opik_pending(o), 1);
    opik_free(o);
}

/* An interrupt while no flush runs ends the next flush before it connects
 * (so one racing with a flush's start is not lost), and only that one:
 * the flush after it sends everything. */
static void an_interrupt_before_a_flush_ends_that_flush_only(void **state)
{
    struct mock *m = *state;
    char base[128];
    base_url(m, NULL, base, sizeof base);
    struct opik_config c = config_for(base);
    struct opik *o = opik_make(&c);
    enqueue_new(o, 1, NULL);
    opik_interrupt(o);
    char err[512] = "";
    assert_int_equal(opik_flush(o, NULL, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "interrupted"));
    assert_int_equal(opik_pending(o), 1);
    cJSON *log;
    assert_int_equal(mock_requests(m, &log), 0);
    cJSON_Delete(log);
    assert_int_equal(opik_flush(o, NULL, NULL, err, sizeof err), 0);
    assert_int_equal(opik_pending(o), 0);
    assert_int_equal(mock_requests(m, &log), 2);
    cJSON_Delete(log);
    opik_free(o);
}

/* Records of another shape are refused and not queued; a queued record is
 * a deep copy, so the caller's later changes do not reach the server. */
static void only_records_of_the_trace_shape_are_queued_as_copies(void **state)
{
    struct mock *m = *state;
    char base[128];
    base_url(m, NULL, base, sizeof base);
    struct opik_config c = config_for(base);
    struct opik *o = opik_make(&c);
    static const char *const bad[] = {
        "[]",
        "{\"spans\":[]}",
        "{\"trace\":[],\"spans\":[]}",
        "{\"trace\":{\"id\":\"x\"}}",
        "{\"trace\":{\"id\":\"x\"},\"spans\":{}}",
        "{\"trace\":{\"id\":\"x\"},\"spans\":[{},1]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cJSON *j = cJSON_Parse(bad[i]);
        assert_non_null(j);
        assert_int_equal(opik_enqueue(o, j), -1);
        cJSON_Delete(j);
    }
    assert_int_equal(opik_enqueue(o, NULL), -1);
    assert_int_equal(opik_pending(o), 0);

    char id[UUID_STRLEN + 1];
    cJSON *rec = record_new(1, id);
    assert_int_equal(opik_enqueue(o, rec), 0);
    cJSON *trace = cJSON_GetObjectItemCaseSensitive(rec, "trace");
    cJSON_ReplaceItemInObjectCaseSensitive(trace, "id", cJSON_CreateString("changed"));
    cJSON_Delete(rec);
    char err[512];
    assert_int_equal(opik_flush(o, NULL, NULL, err, sizeof err), 0);
    cJSON *log;
    assert_int_equal(mock_requests(m, &log), 2);
    cJSON *tb = req_body(cJSON_GetArrayItem(log, 0));
    const cJSON *t = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(tb, "traces"), 0);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "id")), id);
    cJSON_Delete(tb);
    cJSON_Delete(log);
    opik_free(o);
}

/* opik_new refuses a base URL that is not http(s) with a host, naming
 * OPIK_URL_OVERRIDE and what it accepts but not a password in the URL; a
 * key with a line break is refused without quoting it, and so is a queue
 * bound of 0. */
static void bad_settings_are_refused_with_the_variable_named(void **state)
{
    (void)state;
    static const char *const urls[] = {
        "",        "ftp://example.com/api", "localhost:5173/api",
        "http://", "https:///api",          "http://user:hunter2secret@/api",
    };
    char err[512];
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        struct opik_config c = config_for(urls[i]);
        err[0] = '\0';
        assert_null(opik_new(&c, err, sizeof err));
        assert_non_null(strstr(err, "OPIK_URL_OVERRIDE"));
        assert_non_null(strstr(err, "http://"));
        assert_null(strstr(err, "hunter2secret"));
    }
    struct opik_config c = config_for(NULL);
    assert_null(opik_new(&c, err, sizeof err));
    assert_non_null(strstr(err, "OPIK_URL_OVERRIDE"));

    c = config_for("http://127.0.0.1:1/api");
    c.api_key = "secret-key-value\r\nX-Evil: 1";
    assert_null(opik_new(&c, err, sizeof err));
    assert_non_null(strstr(err, "OPIK_API_KEY"));
    assert_null(strstr(err, "secret-key-value"));

    c = config_for("http://127.0.0.1:1/api");
    c.queue_max = 0;
    assert_null(opik_new(&c, err, sizeof err));
    assert_non_null(strstr(err, "OPIK_QUEUE_MAX"));

    c = config_for("HTTPS://user:pw@example.com/opik/api");
    struct opik *o = opik_new(&c, err, sizeof err);
    assert_non_null(o);
    opik_free(o);
}

int main(void)
{
    /* The tests talk to 127.0.0.1 directly; a proxy from the environment
     * would intercept them. */
    static const char *const proxies[] = {"http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy",
                                          "ALL_PROXY",  "no_proxy",    "NO_PROXY",    "HTTP_PROXY"};
    for (size_t i = 0; i < sizeof proxies / sizeof proxies[0]; i++)
        unsetenv(proxies[i]);
    if (mc_global_init() != 0) {
        fprintf(stderr, "mc_global_init failed\n");
        return 1;
    }
#define MOCK_TEST(f) cmocka_unit_test_setup_teardown(f, mock_setup, mock_teardown)
    const struct CMUnitTest tests[] = {
        MOCK_TEST(batches_are_sent_in_the_documented_format),
        MOCK_TEST(headers_carry_the_bare_key_and_the_workspace_only_when_set),
        MOCK_TEST(a_thousand_and_one_records_are_sent_in_two_batches_each),
        MOCK_TEST(two_500s_then_success_are_retried_and_everything_is_sent),
        MOCK_TEST(a_429_waits_as_long_as_retry_after_asks),
        MOCK_TEST(a_400_drops_the_batch_and_names_the_status_but_not_the_key),
        MOCK_TEST(a_key_the_server_echoes_is_masked_in_the_message),
        MOCK_TEST(a_full_queue_drops_the_oldest_records),
        cmocka_unit_test(a_server_that_is_down_keeps_the_records_and_names_the_transport_error),
        MOCK_TEST(a_sleep_that_refuses_stops_retrying_and_keeps_the_records),
        MOCK_TEST(spans_that_failed_are_resent_without_their_trace),
        MOCK_TEST(an_interrupt_from_another_thread_ends_a_stalled_flush),
        MOCK_TEST(an_interrupt_before_a_flush_ends_that_flush_only),
        MOCK_TEST(only_records_of_the_trace_shape_are_queued_as_copies),
        cmocka_unit_test(bad_settings_are_refused_with_the_variable_named),
    };
#undef MOCK_TEST
    return cmocka_run_group_tests(tests, NULL, NULL);
}
