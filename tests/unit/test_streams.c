/*
 * The stream conformance suite (issue 13, deliverable 4). Every stream of
 * tests/data/streams (listed in streams.list with its provider, response
 * cap and mode) is a file of raw bytes as a server sends them: OpenAI and
 * Anthropic SSE, Ollama NDJSON, and a few non-streamed answers. Each goes
 * through the provider's real stream handling, without libcurl, through
 * the replay seam of llm/http_provider.h: the provider's chat(), the
 * shared call machinery, the SSE or NDJSON parser and the payload handler,
 * down to what the turn sees (deltas, tool calls, usage, finish reason,
 * error code and message, retry verdict). The result, in the canonical
 * text of hp_replay_format(), must equal the reviewed golden file
 * NAME.expected; then the same bytes are handed over split in two at
 * every byte boundary and one byte at a time, and every replay must give
 * the identical text: how the network cuts a body never changes what the
 * user sees. A table of key outcomes is checked apart from the golden
 * files, so that regenerating them cannot hide a regression there.
 *
 * MEMCHAT_STREAMS_UPDATE=1 rewrites the golden files from the current
 * results (review the diff before keeping it).
 */
#include "testutil.h"

#include "llm/http_provider.h"
#include "memchat/engine.h"
#include "util/buf.h"

#ifndef STREAMS_DIR
#define STREAMS_DIR "tests/data/streams"
#endif

#define MAX_STREAMS  128
#define MAX_CONTEXTS 8

struct stream {
    char name[64];
    char provider[16];
    size_t cap;     /* 0: the default */
    bool whole;     /* a non-streamed answer */
    char *body;     /* the raw bytes */
    size_t len;     /* of body */
    char *expected; /* the golden text, NULL when missing */
};

/* One replay context per provider and cap. */
struct ctx {
    char provider[16];
    size_t cap;
    struct hp_replay *r;
};

struct suite {
    char dir[4096];
    struct stream s[MAX_STREAMS];
    size_t n;
    struct ctx c[MAX_CONTEXTS];
    size_t n_ctx;
    struct buf ref, got; /* scratch texts */
};

/* The whole file at path (NUL-terminated), or NULL when it cannot be read. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, n = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    for (;;) {
        if (cap - n < 4096) {
            cap *= 2;
            s = realloc(s, cap);
            assert_non_null(s);
        }
        size_t k = fread(s + n, 1, cap - n - 1, f);
        n += k;
        if (k == 0)
            break;
    }
    fclose(f);
    s[n] = '\0';
    if (len != NULL)
        *len = n;
    return s;
}

static void path_of(const struct suite *su, const char *name, const char *ext, char *out,
                    size_t outlen)
{
    snprintf(out, outlen, "%s/%s.%s", su->dir, name, ext);
}

static const char *body_ext(const struct stream *st)
{
    if (st->whole)
        return "json";
    return strcmp(st->provider, "ollama") == 0 ? "ndjson" : "sse";
}

/* Parses one line of streams.list into st; false for comments and blanks. */
static bool parse_entry(const char *line, struct stream *st)
{
    char cap[32], mode[16];
    if (line[0] == '#' || line[0] == '\n' || line[0] == '\0')
        return false;
    int n = sscanf(line, "%63s %15s %31s %15s", st->name, st->provider, cap, mode);
    if (n != 4)
        fail_msg("streams.list: malformed line: %s", line);
    st->cap = strcmp(cap, "-") == 0 ? 0 : (size_t)strtoul(cap, NULL, 10);
    if (strcmp(mode, "whole") == 0)
        st->whole = true;
    else if (strcmp(mode, "stream") != 0)
        fail_msg("streams.list: %s: mode must be stream or whole, not %s", st->name, mode);
    return true;
}

static void load_streams(struct suite *su)
{
    char path[4200];
    path_of(su, "streams", "list", path, sizeof path);
    char *list = slurp(path, NULL);
    if (list == NULL)
        fail_msg("cannot read %s", path);
    for (char *line = list; line != NULL && *line != '\0';) {
        char *nl = strchr(line, '\n');
        if (nl != NULL)
            *nl = '\0';
        struct stream *st = &su->s[su->n];
        memset(st, 0, sizeof *st);
        if (parse_entry(line, st)) {
            assert_true(su->n + 1 < MAX_STREAMS);
            path_of(su, st->name, body_ext(st), path, sizeof path);
            st->body = slurp(path, &st->len);
            if (st->body == NULL)
                fail_msg("cannot read %s", path);
            path_of(su, st->name, "expected", path, sizeof path);
            st->expected = slurp(path, NULL);
            su->n++;
        }
        line = nl != NULL ? nl + 1 : NULL;
    }
    free(list);
}

static int group_setup(void **state)
{
    if (mc_global_init() != 0)
        return -1;
    struct suite *su = calloc(1, sizeof *su);
    assert_non_null(su);
    const char *src = getenv("MEMCHAT_SRCDIR");
    if (src != NULL && src[0] != '\0')
        snprintf(su->dir, sizeof su->dir, "%s/tests/data/streams", src);
    else
        snprintf(su->dir, sizeof su->dir, "%s", STREAMS_DIR);
    buf_init(&su->ref, (size_t)1 << 26);
    buf_init(&su->got, (size_t)1 << 26);
    load_streams(su);
    *state = su;
    return 0;
}

static int group_teardown(void **state)
{
    struct suite *su = *state;
    for (size_t i = 0; i < su->n; i++) {
        free(su->s[i].body);
        free(su->s[i].expected);
    }
    for (size_t i = 0; i < su->n_ctx; i++)
        hp_replay_free(su->c[i].r);
    buf_free(&su->ref);
    buf_free(&su->got);
    free(su);
    return 0;
}

/* The replay context for st's provider and cap, made on first use. */
static struct hp_replay *ctx_for(struct suite *su, const struct stream *st)
{
    for (size_t i = 0; i < su->n_ctx; i++)
        if (strcmp(su->c[i].provider, st->provider) == 0 && su->c[i].cap == st->cap)
            return su->c[i].r;
    assert_true(su->n_ctx < MAX_CONTEXTS);
    char err[256] = "";
    struct hp_replay *r = hp_replay_new(st->provider, st->cap, err, sizeof err);
    if (r == NULL)
        fail_msg("%s: %s", st->name, err);
    struct ctx *c = &su->c[su->n_ctx++];
    snprintf(c->provider, sizeof c->provider, "%s", st->provider);
    c->cap = st->cap;
    c->r = r;
    return r;
}

/* Replays st cut at cuts[0..n_cuts) or in pieces of `piece` bytes and puts
 * the canonical text in out; returns the result. */
static const struct hp_replay_result *replay(struct suite *su, const struct stream *st,
                                             const size_t *cuts, size_t n_cuts, size_t piece,
                                             struct buf *out)
{
    const struct hp_replay_result *res =
        hp_replay_stream(ctx_for(su, st), st->body, st->len, cuts, n_cuts, piece, st->whole);
    buf_reset(out);
    assert_int_equal(hp_replay_format(res, out), BUF_OK);
    return res;
}

/* The first line where a and b differ, for a failure message. */
static void first_difference(const char *a, const char *b, char *out, size_t outlen)
{
    size_t line = 1, start = 0, i = 0;
    while (a[i] != '\0' && a[i] == b[i]) {
        if (a[i] == '\n') {
            line++;
            start = i + 1;
        }
        i++;
    }
    int na = (int)strcspn(a + start, "\n"), nb = (int)strcspn(b + start, "\n");
    snprintf(out, outlen, "line %zu: want \"%.*s\", got \"%.*s\"", line, na > 160 ? 160 : na,
             a + start, nb > 160 ? 160 : nb, b + start);
}

/* --- the corpus --------------------------------------------------------- */

/* At least 40 streams, every provider and both modes present, every body
 * non-empty but one, and a golden file for each. */
static void corpus_has_forty_streams_of_every_kind(void **state)
{
    struct suite *su = *state;
    assert_true(su->n >= 40);
    size_t openai = 0, anthropic = 0, ollama = 0, whole = 0, capped = 0, empty = 0;
    for (size_t i = 0; i < su->n; i++) {
        const struct stream *st = &su->s[i];
        openai += strcmp(st->provider, "openai") == 0;
        anthropic += strcmp(st->provider, "anthropic") == 0;
        ollama += strcmp(st->provider, "ollama") == 0;
        whole += st->whole;
        capped += st->cap > 0;
        empty += st->len == 0;
        if (st->expected == NULL && getenv("MEMCHAT_STREAMS_UPDATE") == NULL)
            fail_msg("%s: no %s.expected (MEMCHAT_STREAMS_UPDATE=1 writes it)", st->name, st->name);
    }
    assert_int_equal(openai + anthropic + ollama, su->n);
    assert_true(openai >= 10 && anthropic >= 10 && ollama >= 10);
    assert_true(whole >= 3);
    assert_true(capped >= 3);
    assert_true(empty <= 1);
}

/* Each stream whole, in one piece, gives its golden result. */
static void each_stream_gives_its_golden_result(void **state)
{
    struct suite *su = *state;
    bool update = getenv("MEMCHAT_STREAMS_UPDATE") != NULL;
    size_t failed = 0;
    for (size_t i = 0; i < su->n; i++) {
        struct stream *st = &su->s[i];
        replay(su, st, NULL, 0, 0, &su->got);
        const char *got = buf_cstr(&su->got);
        if (update) {
            char path[4200];
            path_of(su, st->name, "expected", path, sizeof path);
            FILE *f = fopen(path, "wb");
            assert_non_null(f);
            assert_int_equal(fwrite(got, 1, su->got.len, f), su->got.len);
            assert_int_equal(fclose(f), 0);
            free(st->expected);
            st->expected = strdup(got);
            continue;
        }
        if (st->expected != NULL && strcmp(st->expected, got) == 0)
            continue;
        char diff[512] = "no golden file";
        if (st->expected != NULL)
            first_difference(st->expected, got, diff, sizeof diff);
        print_error("%s: not its golden result: %s\n", st->name, diff);
        failed++;
    }
    assert_int_equal(failed, 0);
}

/* 1, or 7 under valgrind: memcheck looks for memory errors, which every
 * seventh boundary finds as well, at a seventh of the cost (all of them
 * take half a minute there). */
static size_t split_stride(void)
{
    const char *pre = getenv("LD_PRELOAD");
    return pre != NULL && strstr(pre, "vgpreload") != NULL ? 7 : 1;
}

/* Split in two at every byte boundary: [0, i) and [i, n). */
static void every_split_in_two_gives_the_same_result(void **state)
{
    struct suite *su = *state;
    size_t replays = 0, stride = split_stride();
    for (size_t i = 0; i < su->n; i++) {
        const struct stream *st = &su->s[i];
        replay(su, st, NULL, 0, 0, &su->ref);
        for (size_t cut = 1 + i % stride; cut < st->len; cut += stride) {
            replay(su, st, &cut, 1, 0, &su->got);
            replays++;
            if (su->got.len == su->ref.len && memcmp(su->got.data, su->ref.data, su->ref.len) == 0)
                continue;
            char diff[512];
            first_difference(buf_cstr(&su->ref), buf_cstr(&su->got), diff, sizeof diff);
            fail_msg("%s split at byte %zu of %zu: %s", st->name, cut, st->len, diff);
        }
    }
    assert_true(replays > 10000 / stride);
}

/* One byte at a time, and in pieces of 2, 3 and 7 bytes (CR and CRLF
 * straddling several boundaries in one replay). */
static void small_pieces_give_the_same_result(void **state)
{
    struct suite *su = *state;
    static const size_t pieces[] = {1, 2, 3, 7};
    for (size_t i = 0; i < su->n; i++) {
        const struct stream *st = &su->s[i];
        replay(su, st, NULL, 0, 0, &su->ref);
        for (size_t k = 0; k < sizeof pieces / sizeof pieces[0]; k++) {
            replay(su, st, NULL, 0, pieces[k], &su->got);
            if (strcmp(buf_cstr(&su->ref), buf_cstr(&su->got)) == 0)
                continue;
            char diff[512];
            first_difference(buf_cstr(&su->ref), buf_cstr(&su->got), diff, sizeof diff);
            fail_msg("%s in pieces of %zu bytes: %s", st->name, pieces[k], diff);
        }
    }
}

/* Cut at every boundary at once through explicit offsets (the other form
 * of the seam) equals one byte at a time. */
static void explicit_cuts_equal_piece_size(void **state)
{
    struct suite *su = *state;
    for (size_t i = 0; i < su->n; i++) {
        const struct stream *st = &su->s[i];
        if (st->len < 2)
            continue;
        size_t *cuts = malloc(st->len * sizeof *cuts);
        assert_non_null(cuts);
        for (size_t k = 0; k < st->len; k++)
            cuts[k] = k + 1;
        replay(su, st, NULL, 0, 1, &su->ref);
        replay(su, st, cuts, st->len, 0, &su->got);
        assert_string_equal(buf_cstr(&su->ref), buf_cstr(&su->got));
        free(cuts);
    }
}

/* --- key outcomes, checked apart from the golden files -------------------- */

struct outcome {
    const char *name;
    enum mc_error rc;
    const char *text;    /* the deltas joined; NULL: not checked */
    const char *err_has; /* a part of the message; NULL: not checked */
    int retry;           /* should_retry */
    size_t tools;        /* tool calls assembled (kept also on failure) */
};

static const struct outcome outcomes[] = {
    {"openai_text", MC_ERR_NONE, "Hello, world!", NULL, -1, 0},
    {"openai_utf8_across_deltas", MC_ERR_NONE,
     "snow \xe2\x98\x83 man \xf0\x9f\x98\x80 end \xef\xbf\xbd bad \xef\xbf\xbd", NULL, -1, 0},
    {"openai_crlf", MC_ERR_NONE, "line one and two", NULL, -1, 0},
    {"openai_cr_only", MC_ERR_NONE, "cr only", NULL, -1, 0},
    {"openai_bom", MC_ERR_NONE, "bom first", NULL, -1, 0},
    {"openai_multiline_data", MC_ERR_NONE, "multi\nline joined", NULL, -1, 0},
    {"openai_unterminated_finish", MC_ERR_NETWORK, "unterminated", "ended before the reply", -1, 0},
    {"openai_cut_no_done", MC_ERR_NETWORK, "before the cut", "connection was cut", -1, 0},
    {"openai_empty_body", MC_ERR_NETWORK, "", "ended before the reply", -1, 0},
    {"openai_parallel_tools", MC_ERR_NONE, "", NULL, -1, 3},
    {"openai_error_midstream", MC_ERR_PROVIDER, "partial", "in the middle of the stream", -1, 0},
    {"openai_error_first", MC_ERR_PROVIDER, "", "server_error: Overloaded", 1, 0},
    {"openai_overlong_line", MC_ERR_PROVIDER, "shown", "MEMCHAT_MAX_RESPONSE_BYTES (1024 bytes)",
     -1, 0},
    {"openai_overlong_first", MC_ERR_PROVIDER, "", "MEMCHAT_MAX_RESPONSE_BYTES", -1, 0},
    {"anthropic_text", MC_ERR_NONE, "Hello there!", NULL, -1, 0},
    {"anthropic_cr_only", MC_ERR_NONE, "cr ends", NULL, -1, 0},
    {"anthropic_tool_use", MC_ERR_NONE, "I'll look. ", NULL, -1, 1},
    {"anthropic_parallel_tools", MC_ERR_NONE, "", NULL, -1, 2},
    {"anthropic_error_event", MC_ERR_PROVIDER, "", "overloaded_error: Overloaded", 1, 0},
    {"anthropic_error_after_delta", MC_ERR_PROVIDER, "half an ans", "api_error", -1, 0},
    {"anthropic_no_message_stop", MC_ERR_NETWORK, "no stop", "connection was cut", -1, 0},
    {"anthropic_overlong_line", MC_ERR_PROVIDER, "kept", "MEMCHAT_MAX_RESPONSE_BYTES", -1, 0},
    {"anthropic_after_stop", MC_ERR_NONE, "after stop", NULL, -1, 0},
    {"ollama_text", MC_ERR_NONE, "Hello world", NULL, -1, 0},
    {"ollama_crlf", MC_ERR_NONE, "crlf lines", NULL, -1, 0},
    {"ollama_no_final_newline", MC_ERR_NONE, "no final newline", NULL, -1, 0},
    {"ollama_not_done", MC_ERR_NETWORK, "cut here", "connection was cut", -1, 0},
    {"ollama_tool_calls", MC_ERR_NONE, "", NULL, -1, 2},
    {"ollama_error_midstream", MC_ERR_PROVIDER, "partial ", "model runner has unexpectedly", -1, 0},
    {"ollama_overlong_line", MC_ERR_PROVIDER, "kept", "MEMCHAT_MAX_RESPONSE_BYTES", -1, 0},
};

static const struct stream *find_stream(const struct suite *su, const char *name)
{
    for (size_t i = 0; i < su->n; i++)
        if (strcmp(su->s[i].name, name) == 0)
            return &su->s[i];
    fail_msg("no stream %s in streams.list", name);
    abort(); /* fail_msg does not return; the compiler needs telling */
}

static void key_outcomes_hold(void **state)
{
    struct suite *su = *state;
    for (size_t i = 0; i < sizeof outcomes / sizeof outcomes[0]; i++) {
        const struct outcome *o = &outcomes[i];
        const struct stream *st = find_stream(su, o->name);
        const struct hp_replay_result *res = replay(su, st, NULL, 0, 0, &su->got);
        if (res->rc != o->rc)
            fail_msg("%s: rc %s, want %s (%s)", o->name, mc_error_code(res->rc),
                     mc_error_code(o->rc), res->err);
        if (o->text != NULL && strcmp(buf_cstr(&res->text), o->text) != 0)
            fail_msg("%s: text \"%s\", want \"%s\"", o->name, buf_cstr(&res->text), o->text);
        if (o->err_has != NULL && strstr(res->err, o->err_has) == NULL)
            fail_msg("%s: message \"%s\" lacks \"%s\"", o->name, res->err, o->err_has);
        if (o->rc == MC_ERR_NONE)
            assert_string_equal(res->err, "");
        assert_int_equal(res->res.should_retry, o->retry);
        assert_int_equal(res->n_calls, o->tools);
        assert_int_equal(res->res.transport_error, o->rc == MC_ERR_NETWORK);
        assert_int_equal(res->res.deltas_sent, res->n_deltas);
        assert_int_equal(res->res.bytes_sent, res->text.len);
    }
}

/* Tool calls come out whole however the stream was cut: id, name and the
 * arguments as one JSON text (checked on the parallel streams). */
static void tool_calls_are_assembled_by_index(void **state)
{
    struct suite *su = *state;
    const struct stream *st = find_stream(su, "openai_parallel_tools");
    size_t cut = st->len / 2;
    const struct hp_replay_result *res = replay(su, st, &cut, 1, 0, &su->got);
    assert_int_equal(res->rc, MC_ERR_NONE);
    assert_int_equal(res->n_calls, 3);
    assert_string_equal(res->calls[0].id, "call_a");
    assert_string_equal(res->calls[0].name, "get_weather");
    assert_string_equal(buf_cstr(&res->calls[0].arguments), "{\"city\":\"Rome\"}");
    assert_string_equal(res->calls[1].id, "call_b");
    assert_string_equal(buf_cstr(&res->calls[1].arguments), "{\"tz\":\"CET\"}");
    assert_string_equal(res->calls[2].name, "noop");
    for (size_t i = 0; i < 3; i++)
        assert_true(res->calls[i].arguments_valid);
    assert_string_equal(res->res.finish_reason, "tool_calls");

    st = find_stream(su, "anthropic_tool_use");
    res = replay(su, st, NULL, 0, 1, &su->got);
    assert_int_equal(res->rc, MC_ERR_NONE);
    assert_int_equal(res->n_calls, 1);
    assert_int_equal(res->calls[0].index, 1);
    assert_string_equal(res->calls[0].id, "toolu_01");
    assert_string_equal(buf_cstr(&res->calls[0].arguments), "{\"city\": \"Paris\"}");
    assert_string_equal(res->res.finish_reason, "tool_use");
    assert_int_equal(res->res.usage.prompt_tokens, 20);
    assert_int_equal(res->res.usage.completion_tokens, 40);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(corpus_has_forty_streams_of_every_kind),
        cmocka_unit_test(each_stream_gives_its_golden_result),
        cmocka_unit_test(every_split_in_two_gives_the_same_result),
        cmocka_unit_test(small_pieces_give_the_same_result),
        cmocka_unit_test(explicit_cuts_equal_piece_size),
        cmocka_unit_test(key_outcomes_hold),
        cmocka_unit_test(tool_calls_are_assembled_by_index),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
