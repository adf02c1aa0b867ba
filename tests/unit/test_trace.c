/*
 * Tests of the trace builder (client/trace.c): the record's shape (the
 * trace and one span per stage that ran, in pipeline order), ids (UUIDv7,
 * distinct, spans pointing at the trace), times (RFC 3339 with
 * milliseconds, rounded from the turn's start), the send span's model
 * fields with unknown values left out, error_info only on failure, the
 * tenant/user/agent on every part, exact printing of huge integers,
 * trace_format_time on instants worked out by hand, and a NULL (with no
 * leak) for every allocation that fails.
 *
 * The turn starts at 2024-02-29T00:00:00.000Z: 1970..2023 are 54 years of
 * which 13 are leap (1972..2020), so 54 * 365 + 13 = 19723 days reach
 * 2024-01-01, and 31 + 28 more reach February 29th: day 19782, or
 * 19782 * 86400000 ms.
 */
#include "testutil.h"

#include <cJSON.h>
#include <math.h>
#include <stdbool.h>

#include "client/trace.h"
#include "memchat/engine.h"
#include "util/alloc.h"
#include "util/uuid.h"

#define T0_MS (19782LL * 86400000LL)

static int group_setup(void **state)
{
    (void)state;
    /* As every program does first: cJSON allocates through util/alloc, so
     * the fault seam reaches inside it. */
    return mc_global_init();
}

/* A turn where rollout, retrieve, inject, cache and send ran (minify,
 * ratelimit, key and tools did not), with a first token and a total. The
 * id is written to id. */
static struct trace_turn full_turn(char id[UUID_STRLEN + 1])
{
    uuid7_new(id);
    struct trace_turn t = {
        .turn_id = id,
        .tenant = "acme",
        .user = "u1",
        .agent = "helper",
        .provider = "openai",
        .model = "gpt-4o-mini",
        .input_text = "hello",
        .output_text = "hi there",
        .started_ms = T0_MS,
        .usage = {.prompt_tokens = 1200, .completion_tokens = 34, .cached_tokens = -1},
        .cost_usd = 1.0 / 64.0,
        .status_text = "ok",
        .memory = true,
        .cache_hit = false,
        .retries = 2,
        .key_source = "tenant",
    };
    for (int i = 0; i < MC_STAGE__COUNT; i++)
        t.stage_start_ms[i] = t.latency_ms[i] = -1;
    t.stage_start_ms[MC_STAGE_ROLLOUT] = 0.0;
    t.latency_ms[MC_STAGE_ROLLOUT] = 0.25;
    t.stage_start_ms[MC_STAGE_RETRIEVE] = 2.4;
    t.latency_ms[MC_STAGE_RETRIEVE] = 10.2;
    t.stage_start_ms[MC_STAGE_INJECT] = 12.75;
    t.latency_ms[MC_STAGE_INJECT] = 0.5;
    t.stage_start_ms[MC_STAGE_CACHE] = 14.0;
    t.latency_ms[MC_STAGE_CACHE] = 1.0;
    t.stage_start_ms[MC_STAGE_SEND] = 20.0;
    t.latency_ms[MC_STAGE_SEND] = 1500.0;
    /* first_token and total have latencies but are never spans. */
    t.stage_start_ms[MC_STAGE_FIRST_TOKEN] = 20.0;
    t.latency_ms[MC_STAGE_FIRST_TOKEN] = 123.5;
    t.stage_start_ms[MC_STAGE_TOTAL] = 0.0;
    t.latency_ms[MC_STAGE_TOTAL] = 1530.6;
    return t;
}

static cJSON *build(const struct trace_turn *t, const char *project)
{
    cJSON *r = trace_build(t, project);
    assert_non_null(r);
    return r;
}

static const cJSON *get(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (v == NULL)
        fail_msg("missing field \"%s\"", key);
    return v;
}

static const char *get_str(const cJSON *obj, const char *key)
{
    const cJSON *v = get(obj, key);
    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

static double get_num(const cJSON *obj, const char *key)
{
    const cJSON *v = get(obj, key);
    assert_true(cJSON_IsNumber(v));
    return v->valuedouble;
}

static bool has(const cJSON *obj, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(obj, key) != NULL;
}

static const cJSON *span_named(const cJSON *record, const char *name)
{
    const cJSON *s;
    cJSON_ArrayForEach(s, get(record, "spans"))
    {
        if (strcmp(get_str(s, "name"), name) == 0)
            return s;
    }
    return NULL;
}

/* Asserts s is "YYYY-MM-DDTHH:MM:SS.mmmZ". */
static void assert_rfc3339_ms(const char *s)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    assert_int_equal(strlen(s), sizeof shape - 1);
    for (size_t i = 0; i < sizeof shape - 1; i++) {
        if (shape[i] == 'd')
            assert_true(s[i] >= '0' && s[i] <= '9');
        else
            assert_int_equal(s[i], shape[i]);
    }
}

/* The record is {"trace", "spans"}, with one span per stage that ran, in
 * pipeline order: stages left at -1 get none, and first_token and total
 * (which have latencies) never become spans. */
static void the_record_has_the_trace_and_one_span_per_stage_that_ran(void **state)
{
    (void)state;
    char id[UUID_STRLEN + 1];
    struct trace_turn t = full_turn(id);
    cJSON *r = build(&t, "proj");
    assert_int_equal(cJSON_GetArraySize(r), 2);
    assert_true(cJSON_IsObject(get(r, "trace")));
    const cJSON *spans = get(r, "spans");
    assert_true(cJSON_IsArray(spans));
    static const char *const want[] = {"rollout", "retrieve", "inject", "cache", "send"};
    assert_int_equal(cJSON_GetArraySize(spans), 5);
    for (int i = 0; i < 5; i++)
        assert_string_equal(get_str(cJSON_GetArrayItem(spans, i), "name"), want[i]);
    assert_string_equal(get_str(get(r, "trace"), "name"), "turn");
    cJSON_Delete(r);

    /* A stage with a start but no latency (or the reverse) did not run. */
    t.latency_ms[MC_STAGE_CACHE] = -1;
    t.stage_start_ms[MC_STAGE_INJECT] = -1;
    t.stage_start_ms[MC_STAGE_TOOLS] = 1600.0; /* latency still -1 */
    r = build(&t, "proj");
    assert_int_equal(cJSON_GetArraySize(get(r, "spans")), 3);
    assert_null(span_named(r, "cache"));
    assert_null(span_named(r, "inject"));
    assert_null(span_named(r, "tools"));
    cJSON_Delete(r);
}

/* The trace's id is the turn id; every span's trace_id points at it; every
 * id is a UUIDv7 and no two are equal. */
static void ids_are_distinct_uuid7s_and_spans_point_at_the_trace(void **state)
{
    (void)state;
    char id[UUID_STRLEN + 1];
    struct trace_turn t = full_turn(id);
    cJSON *r = build(&t, NULL);
    const cJSON *trace = get(r, "trace");
    assert_string_equal(get_str(trace, "id"), id);
    const char *ids[MC_STAGE__COUNT + 1];
    int n = 0;
    ids[n++] = get_str(trace, "id");
    const cJSON *s;
    cJSON_ArrayForEach(s, get(r, "spans"))
    {
        assert_string_equal(get_str(s, "trace_id"), id);
        ids[n++] = get_str(s, "id");
    }
    assert_int_equal(n, 6);
    for (int i = 0; i < n; i++) {
        assert_true(uuid7_time_ms(ids[i]) >= 0);
        for (int j = 0; j < i; j++)
            assert_string_not_equal(ids[i], ids[j]);
    }
    cJSON_Delete(r);
}

/* A turn id that is not a UUIDv7 (Opik would reject the record) is replaced
 * by a fresh UUIDv7, which the spans then point at. */
static void an_invalid_turn_id_gets_a_fresh_uuid7(void **state)
{
    (void)state;
    char id[UUID_STRLEN + 1];
    struct trace_turn t = full_turn(id);
    /* A valid UUID of version 4: valid, but not a v7. */
    t.turn_id = "0f8fad5b-d9cb-469f-a165-70867728950e";
    cJSON *r = build(&t, NULL);
    const char *tid = get_str(get(r, "trace"), "id");
    assert_true(uuid7_time_ms(tid) >= 0);
    assert_string_not_equal(tid, t.turn_id);
    assert_string_equal(get_str(cJSON_GetArrayItem(get(r, "spans"), 0), "trace_id"), tid);
    cJSON_Delete(r);
}

/* Times are RFC 3339 UTC with milliseconds and Z; a span runs from the
 * turn's start plus its offset to that plus its latency, both rounded to the
 * millisecond from the same origin (retrieve: 2.4 -> .002, 2.4 + 10.2 =
 * 12.6 -> .013); the trace ends at the start plus the total (1530.6 ->
 * 1531 ms: 00:00:01.531). Every end is at or after its start. */
static void times_are_rfc3339_with_ms_and_end_follows_start(void **state)
{
    (void)state;
    char id[UUID_STRLEN + 1];
    struct trace_turn t = full_turn(id);
    cJSON *r = build(&t, NULL);
    const cJSON *trace = get(r, "trace");
    assert_string_equal(get_str(trace, "start_time"), "2024-02-29T00:00:00.000Z");
    assert_string_equal(get_str(trace, "end_time"), "2024-02-29T00:00:01.531Z");
    const cJSON *ret = span_named(r, "retrieve");
    assert_non_null(ret);
    assert_string_equal(get_str(ret, "start_time"), "2024-02-29T00:00:00.002Z");
    assert_string_equal(get_str(ret, "end_time"), "2024-02-29T00:00:00.013Z");
    /* The exact duration survives in the metadata. */
    assert_true(get_num(get(ret, "metadata"), "latency_ms") == 10.2);
    const cJSON *s;
    cJSON_ArrayForEach(s, get(r, "spans"))
    {
        const char *a = get_str(s, "start_time"), *b = get_str(s, "end_time");
        assert_rfc3339_ms(a);
        assert_rfc3339_ms(b);
        /* Fixed width and one year: text order is time order. */
        assert_true(strcmp(b, a) >= 0);
    }
    cJSON_Delete(r);

    /* Total unknown: the trace ends where it starts. */
    t.latency_ms[MC_STAGE_TOTAL] = -1;
    r = build(&t, NULL);
    assert_string_equal(get_str(get(r, "trace"), "end_time"), "2024-02-29T00:00:00.000Z");
    cJSON_Delete(r);
}

/* retrieve is a "tool" span, send an "llm" span with the model, provider,
 * integer usage (total = prompt + completion), cost, ttft, input, output
 * and, in its metadata, usage_estimated and key_source; other stages are
 * "general" and carry none of the model fields. */
static void retrieve_is_a_tool_span_and_send_an_llm_span_with_its_model_fields(void **state)
{
    (void)state;
    char id[UUID_STRLEN + 1];
    struct trace_turn t = full_turn(id);
    cJSON *r = build(&t, NULL);
    assert_string_equal(get_str(span_named(r, "retrieve"), "type"), "tool");
    const cJSON *send = span_named(r, "send");
    assert_non_null(send);
    assert_string_equal(get_str(send, "type"), "llm");
    assert_string_equal(get_str(send, "model"), "gpt-4o-mini");
    assert_string_equal(get_str(send, "provider"), "openai");
    const cJSON *usage = get(send, "usage");
    assert_int_equal(cJSON_GetArraySize(usage), 3);
    assert_true(get_num(usage, "prompt_tokens") == 1200.0);
    assert_true(get_num(usage, "completion_tokens") == 34.0);
    assert_true(get_num(usage, "total_tokens") == 1234.0);
    assert_true(get_num(send, "total_estimated_cost") == 1.0 / 64.0);
    assert_true(get_num(send, "ttft") == 123.5);
    assert_string_equal(get_str(get(send, "input"), "text"), "hello");
    assert_string_equal(get_str(get(send, "output"), "text"), "hi there");
    const cJSON *meta = get(send, "metadata");
    assert_true(cJSON_IsFalse(get(meta, "usage_estimated")));
    assert_string_equal(get_str(meta, "key_source"), "tenant");

    /* Integers print as integers, not 1200.0 or 1.2e+03. */
    char *text = cJSON_PrintUnformatted(usage);
    assert_string_equal(text, "{\"prompt_tokens\":1200,\"completion_tokens\":34,"
                              "\"total_tokens\":1234}");
    cJSON_free(text);

    static const char *const general[] = {"rollout", "inject", "cache"};
    for (int i = 0; i < 3; i++) {
        const cJSON *s = span_named(r, general[i]);
        assert_string_equal(get_str(s, "type"), "general");
        assert_false(has(s, "model") || has(s, "usage") || has(s, "ttft") ||
                     has(s, "total_estimated_cost") || has(s, "input"));
    }
    cJSON_Delete(r);

    /* Estimated usage says so; no key source, no field. */
    t.usage.estimated = true;
    t.key_source = NULL;
    r = build(&t, NULL);
    meta = get(span_named(r, "send"), "metadata");
    assert_true(cJSON_IsTrue(get(meta, "usage_estimated")));
    assert_false(has(meta, "key_source"));
    cJSON_Delete(r);
}

/* Unknown values are left out, never written as -1: one unknown count
 * drops it and the total; no counts drop usage; an unknown cost (or NaN)
 * drops total_estimated_cost; no first token drops ttft. */
static void unknown_usage_cost_and_ttft_are_left_out(void **state)
{
    (void)state;
    char id[UUID_STRLEN + 1];
    struct trace_turn t = full_turn(id);
    t.usage.prompt_tokens = -1;
    t.cost_usd = -1;
    t.latency_ms[MC_STAGE_FIRST_TOKEN] = -1;
    cJSON *r = build(&t, NULL);
    const cJSON *send = span_named(r, "send");
    const cJSON *usage = get(send, "usage");
    assert_int_equal(cJSON_GetArraySize(usage), 1);
    assert_true(get_num(usage, "completion_tokens") == 34.0);
    assert_false(has(send, "total_estimated_cost"));
    assert_false(has(send, "ttft"));
    char *text = cJSON_PrintUnformatted(r);
    assert_null(strstr(text, ":-1"));
    cJSON_free(text);
    cJSON_Delete(r);

    t.usage.completion_tokens = -1;
    t.cost_usd = NAN;
    r = build(&t, NULL);
    send = span_named(r, "send");
    assert_false(has(send, "usage"));
    assert_false(has(send, "total_estimated_cost"));
    cJSON_Delete(r);

    /* A known zero is not unknown. */
    t.cost_usd = 0.0;
    r = build(&t, NULL);
    assert_true(get_num(span_named(r, "send"), "total_estimated_cost") == 0.0);
    cJSON_Delete(r);
}

/* Counts up to 2^53 print digit for digit (cJSON alone would print
 * 9007199254740991 as 9.00719925474099e+15), and parse back to the same
 * value. */
static void huge_token_counts_print_exactly(void **state)
{
    (void)state;
    char id[UUID_STRLEN + 1];
    struct trace_turn t = full_turn(id);
    t.usage.prompt_tokens = 9007199254740991LL; /* 2^53 - 1 */
    t.usage.completion_tokens = 1;
    cJSON *r = build(&t, NULL);
    char *text = cJSON_PrintUnformatted(get(span_named(r, "send"), "usage"));
    assert_string_equal(text, "{\"prompt_tokens\":9007199254740991,\"completion_tokens\":1,"
                              "\"total_tokens\":9007199254740992}");
    cJSON *back = cJSON_Parse(text);
    assert_non_null(back);
    assert_true(get_num(back, "prompt_tokens") == 9007199254740991.0);
    cJSON_Delete(back);
    cJSON_free(text);
    cJSON_Delete(r);
}

/* error_info appears only for an "error..." status: with the status as the
 * exception type and the turn's message; "ok" and "cancelled" have none.
 * The status is in the metadata either way. */
static void error_info_only_when_the_turn_failed(void **state)
{
    (void)state;
    char id[UUID_STRLEN + 1];
    struct trace_turn t = full_turn(id);
    cJSON *r = build(&t, NULL);
    assert_false(has(get(r, "trace"), "error_info"));
    assert_string_equal(get_str(get(get(r, "trace"), "metadata"), "status"), "ok");
    cJSON_Delete(r);

    t.status_text = "cancelled";
    r = build(&t, NULL);
    assert_false(has(get(r, "trace"), "error_info"));
    assert_string_equal(get_str(get(get(r, "trace"), "metadata"), "status"), "cancelled");
    cJSON_Delete(r);

    t.status_text = "error:rate_limited";
    t.error_message = "openai answered 429 three times";
    r = build(&t, NULL);
    const cJSON *trace = get(r, "trace");
    const cJSON *ei = get(trace, "error_info");
    assert_string_equal(get_str(ei, "exception_type"), "error:rate_limited");
    assert_string_equal(get_str(ei, "message"), "openai answered 429 three times");
    assert_string_equal(get_str(ei, "traceback"), "");
    assert_string_equal(get_str(get(trace, "metadata"), "status"), "error:rate_limited");
    cJSON_Delete(r);
}

/* The trace and every span carry the tags tenant:T, user:U, agent:A and
 * the same three in their metadata; the trace's metadata also has the
 * provider, model, memory, cache_hit, retries and status. A missing user
 * drops its tag and field. */
static void tags_and_metadata_carry_tenant_user_and_agent(void **state)
{
    (void)state;
    char id[UUID_STRLEN + 1];
    struct trace_turn t = full_turn(id);
    cJSON *r = build(&t, NULL);
    const cJSON *trace = get(r, "trace");
    const cJSON *parts[8];
    int n = 0;
    parts[n++] = trace;
    const cJSON *s;
    cJSON_ArrayForEach(s, get(r, "spans")) parts[n++] = s;
    for (int i = 0; i < n; i++) {
        char *tags = cJSON_PrintUnformatted(get(parts[i], "tags"));
        assert_string_equal(tags, "[\"tenant:acme\",\"user:u1\",\"agent:helper\"]");
        cJSON_free(tags);
        const cJSON *meta = get(parts[i], "metadata");
        assert_string_equal(get_str(meta, "tenant"), "acme");
        assert_string_equal(get_str(meta, "user"), "u1");
        assert_string_equal(get_str(meta, "agent"), "helper");
    }
    const cJSON *meta = get(trace, "metadata");
    assert_string_equal(get_str(meta, "provider"), "openai");
    assert_string_equal(get_str(meta, "model"), "gpt-4o-mini");
    assert_true(cJSON_IsTrue(get(meta, "memory")));
    assert_true(cJSON_IsFalse(get(meta, "cache_hit")));
    assert_true(get_num(meta, "retries") == 2.0);
    cJSON_Delete(r);

    t.user = NULL;
    r = build(&t, NULL);
    char *tags = cJSON_PrintUnformatted(get(get(r, "trace"), "tags"));
    assert_string_equal(tags, "[\"tenant:acme\",\"agent:helper\"]");
    cJSON_free(tags);
    assert_false(has(get(get(r, "trace"), "metadata"), "user"));
    cJSON_Delete(r);
}

/* The input is the user's message; the output is left out of the trace and
 * the send span when there was no reply (NULL or ""). */
static void output_is_left_out_without_a_reply(void **state)
{
    (void)state;
    char id[UUID_STRLEN + 1];
    struct trace_turn t = full_turn(id);
    cJSON *r = build(&t, NULL);
    assert_string_equal(get_str(get(get(r, "trace"), "input"), "text"), "hello");
    assert_string_equal(get_str(get(get(r, "trace"), "output"), "text"), "hi there");
    cJSON_Delete(r);
    for (int i = 0; i < 2; i++) {
        t.output_text = i == 0 ? NULL : "";
        r = build(&t, NULL);
        assert_false(has(get(r, "trace"), "output"));
        assert_false(has(span_named(r, "send"), "output"));
        assert_true(has(get(r, "trace"), "input"));
        cJSON_Delete(r);
    }
}

/* The project is the caller's, and "memchat" when NULL or empty, on the
 * trace and on every span. */
static void project_defaults_to_memchat(void **state)
{
    (void)state;
    char id[UUID_STRLEN + 1];
    struct trace_turn t = full_turn(id);
    const char *given[] = {NULL, "", "rag-demo"};
    const char *want[] = {"memchat", "memchat", "rag-demo"};
    for (int i = 0; i < 3; i++) {
        cJSON *r = build(&t, given[i]);
        assert_string_equal(get_str(get(r, "trace"), "project_name"), want[i]);
        const cJSON *s;
        cJSON_ArrayForEach(s, get(r, "spans"))
        {
            assert_string_equal(get_str(s, "project_name"), want[i]);
        }
        cJSON_Delete(r);
    }
}

/* trace_format_time on instants worked out by hand: the epoch; one day and
 * 123 ms later; the last millisecond of the first day and the one before the
 * epoch (floor, not truncation toward zero); a leap day (2024-02-29, day
 * 19782 as in the header, plus 12:34:56.789 = 45296789 ms); the day after a
 * century leap day (2000 is leap: 30 * 365 + 7 leap years = 10957 days to
 * 2000-01-01, + 31 + 29 = day 11017); and the clamps at both ends. */
static void format_time_gives_rfc3339_utc_with_milliseconds(void **state)
{
    (void)state;
    static const struct {
        int64_t ms;
        const char *want;
    } cases[] = {
        {0, "1970-01-01T00:00:00.000Z"},
        {86400123, "1970-01-02T00:00:00.123Z"},
        {86399999, "1970-01-01T23:59:59.999Z"},
        {-1, "1969-12-31T23:59:59.999Z"},
        {19782LL * 86400000 + 45296789, "2024-02-29T12:34:56.789Z"},
        {11017LL * 86400000, "2000-03-01T00:00:00.000Z"},
        {11017LL * 86400000 - 1, "2000-02-29T23:59:59.999Z"},
        {INT64_MAX, "9999-12-31T23:59:59.999Z"},
        {INT64_MIN, "0000-01-01T00:00:00.000Z"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[25];
        memset(out, 'x', sizeof out);
        trace_format_time(cases[i].ms, out);
        assert_string_equal(out, cases[i].want);
    }
}

/* Every allocation trace_build makes can fail: each one, failing alone,
 * gives NULL and (under ASan and valgrind) leaks nothing, never a partial
 * record. The count proves cJSON's allocations do go through the seam. */
static void trace_build_returns_null_when_any_allocation_fails(void **state)
{
    (void)state;
    char id[UUID_STRLEN + 1];
    struct trace_turn t = full_turn(id);
    unsigned long before = alloc_count();
    cJSON *r = build(&t, "proj");
    unsigned long used = alloc_count() - before;
    cJSON_Delete(r);
    assert_true(used > 50);
    for (unsigned long n = 1; n <= used; n++) {
        alloc_fail_after(n, 0);
        r = trace_build(&t, "proj");
        alloc_fail_after(0, 0);
        if (r != NULL)
            fail_msg("allocation %lu of %lu failed, yet a record came back", n, used);
    }
    /* And with the failure sticky from the middle on. */
    alloc_fail_after(used / 2, 1);
    r = trace_build(&t, "proj");
    alloc_fail_after(0, 0);
    assert_null(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_record_has_the_trace_and_one_span_per_stage_that_ran),
        cmocka_unit_test(ids_are_distinct_uuid7s_and_spans_point_at_the_trace),
        cmocka_unit_test(an_invalid_turn_id_gets_a_fresh_uuid7),
        cmocka_unit_test(times_are_rfc3339_with_ms_and_end_follows_start),
        cmocka_unit_test(retrieve_is_a_tool_span_and_send_an_llm_span_with_its_model_fields),
        cmocka_unit_test(unknown_usage_cost_and_ttft_are_left_out),
        cmocka_unit_test(huge_token_counts_print_exactly),
        cmocka_unit_test(error_info_only_when_the_turn_failed),
        cmocka_unit_test(tags_and_metadata_carry_tenant_user_and_agent),
        cmocka_unit_test(output_is_left_out_without_a_reply),
        cmocka_unit_test(project_defaults_to_memchat),
        cmocka_unit_test(format_time_gives_rfc3339_utc_with_milliseconds),
        cmocka_unit_test(trace_build_returns_null_when_any_allocation_fails),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
