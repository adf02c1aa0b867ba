/*
 * The anthropic provider: Anthropic's Messages API (api-notes.md §2),
 * streamed as named SSE events. How memchat's request maps onto it:
 * - system messages go to the top-level "system" field, joined by a blank
 *   line; only user and assistant messages stay in "messages", and
 *   consecutive ones of the same role are merged, since the API wants the
 *   roles to alternate;
 * - max_tokens is required: the request's, else MEMCHAT_MAX_TOKENS, else
 *   4096;
 * - temperature goes from 0 to 1 here (OpenAI's 0 to 2): a larger one is
 *   refused with a configuration error naming MEMCHAT_TEMPERATURE rather
 *   than sent to be refused with a 400.
 * Usage: prompt_tokens counts every input token, including those read from
 * or written to the prompt cache (Anthropic's input_tokens excludes them,
 * OpenAI's prompt_tokens includes them; memchat follows OpenAI so that
 * cached_tokens is always a part of prompt_tokens). message_delta's usage
 * is cumulative: it replaces, never adds.
 */
#include "config.h"

#include "llm/provider.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "config/config.h"
#include "config/vars.h"
#include "llm/http_provider.h"
#include "util/alloc.h"
#include "util/buf.h"

#define ANTHROPIC_DEFAULT_MODEL "claude-sonnet-4-5"
#define ANTHROPIC_VERSION       "2023-06-01"
#define ANTHROPIC_WINDOW        200000
#define ANTHROPIC_MAX_TOKENS    4096 /* when nothing else sets the required cap */
#define ANTHROPIC_MAX_TEMP      1.0

/* What the stream showed so far. */
struct anthropic_state {
    bool stopped; /* message_stop */
    bool whole;   /* the non-streaming answer was read */
    /* The latest usage figures, -1 until reported (each replaced, never
     * added, as message_delta's are cumulative). */
    long long input, cache_read, cache_write, output;
};

/* Replaces the figures usage reports (an absent or null one stays). */
static void anthropic_usage(struct hp_call *call, struct anthropic_state *st, const cJSON *usage)
{
    if (!cJSON_IsObject(usage))
        return;
    long long v;
    if ((v = hp_json_int(usage, "input_tokens", -1)) >= 0)
        st->input = v;
    if ((v = hp_json_int(usage, "cache_read_input_tokens", -1)) >= 0)
        st->cache_read = v;
    if ((v = hp_json_int(usage, "cache_creation_input_tokens", -1)) >= 0)
        st->cache_write = v;
    if ((v = hp_json_int(usage, "output_tokens", -1)) >= 0)
        st->output = v;
    struct llm_usage *u = &hp_result(call)->usage;
    if (st->input >= 0) {
        long long cached = st->cache_read > 0 ? st->cache_read : 0;
        long long written = st->cache_write > 0 ? st->cache_write : 0;
        u->prompt_tokens = st->input + cached + written;
        u->cached_tokens = cached;
    }
    u->completion_tokens = st->output;
    u->estimated = false;
}

static void anthropic_stop_reason(struct hp_call *call, const char *reason)
{
    struct llm_result *res = hp_result(call);
    if (reason != NULL)
        snprintf(res->finish_reason, sizeof res->finish_reason, "%s", reason);
}

/* A tool_use block's input given whole (the non-streaming answer). */
static int anthropic_tool_input(struct hp_call *call, struct llm_tool_call *tc, const cJSON *input)
{
    if (!cJSON_IsObject(input))
        return 0;
    char *text = hp_json_print(input);
    if (text == NULL)
        return hp_call_fail(call, MC_ERR_OUT_OF_MEMORY, -1, "out of memory reading a tool call");
    bool ok = hp_tool_append(call, tc, text, strlen(text));
    hp_json_free_text(text);
    return ok ? 0 : 1;
}

/* A content block as it starts (stream) or whole (non-stream). */
static int anthropic_block(struct hp_call *call, long index, const cJSON *block, bool whole)
{
    const char *type = hp_json_str(block, "type");
    if (type == NULL)
        return 0;
    if (strcmp(type, "text") == 0) {
        const char *text = hp_json_str(block, "text");
        return text != NULL ? hp_deliver(call, text, strlen(text)) : 0;
    }
    if (strcmp(type, "tool_use") == 0) {
        struct llm_tool_call *tc = hp_tool_call(call, index);
        if (tc == NULL) {
            hp_skip(call);
            return 0;
        }
        hp_tool_set(&tc->id, hp_json_str(block, "id"));
        hp_tool_set(&tc->name, hp_json_str(block, "name"));
        /* A streamed block starts with "input": {} and sends the input as
         * input_json_delta pieces. */
        if (whole)
            return anthropic_tool_input(call, tc, cJSON_GetObjectItemCaseSensitive(block, "input"));
    }
    return 0; /* thinking, server tools...: not shown */
}

static int anthropic_delta(struct hp_call *call, long index, const cJSON *delta)
{
    const char *type = hp_json_str(delta, "type");
    if (type == NULL)
        return 0;
    if (strcmp(type, "text_delta") == 0) {
        const char *text = hp_json_str(delta, "text");
        return text != NULL ? hp_deliver(call, text, strlen(text)) : 0;
    }
    if (strcmp(type, "input_json_delta") == 0) {
        const char *part = hp_json_str(delta, "partial_json");
        struct llm_tool_call *tc = hp_tool_call(call, index);
        if (tc == NULL) {
            hp_skip(call);
            return 0;
        }
        if (part != NULL && !hp_tool_append(call, tc, part, strlen(part)))
            return 1;
    }
    return 0; /* thinking_delta, signature_delta, citations_delta */
}

/* An error object {"type":"error","error":{...}} as a failure. */
static int anthropic_error(struct hp_call *call, const cJSON *j, bool whole)
{
    char msg[512], type[64];
    if (!hp_error_message(j, msg, sizeof msg, type, sizeof type))
        snprintf(msg, sizeof msg, "(no message)");
    return hp_call_fail(call, MC_ERR_PROVIDER, hp_stream_error_retry(call, type),
                        "the server reported an error%s: %s",
                        whole ? "" : " in the middle of the stream", msg);
}

static int anthropic_on_event(struct hp_call *call, void *ud, const char *event, const char *data,
                              size_t len)
{
    struct anthropic_state *st = ud;
    if (st->stopped)
        return 0;
    cJSON *j = hp_parse_payload(call, data, len);
    if (j == NULL)
        return 0;
    /* The data's own type names the event; the event: line says the same. */
    const char *type = hp_json_str(j, "type");
    if (type == NULL)
        type = event != NULL ? event : "";
    long index = (long)hp_json_int(j, "index", 0);
    int r = 0;
    if (strcmp(type, "message_start") == 0) {
        const cJSON *msg = hp_json_obj(j, "message");
        if (msg != NULL)
            anthropic_usage(call, st, cJSON_GetObjectItemCaseSensitive(msg, "usage"));
    } else if (strcmp(type, "content_block_start") == 0) {
        const cJSON *block = hp_json_obj(j, "content_block");
        if (block != NULL)
            r = anthropic_block(call, index, block, false);
    } else if (strcmp(type, "content_block_delta") == 0) {
        const cJSON *delta = hp_json_obj(j, "delta");
        if (delta != NULL)
            r = anthropic_delta(call, index, delta);
    } else if (strcmp(type, "message_delta") == 0) {
        const cJSON *delta = hp_json_obj(j, "delta");
        if (delta != NULL)
            anthropic_stop_reason(call, hp_json_str(delta, "stop_reason"));
        anthropic_usage(call, st, cJSON_GetObjectItemCaseSensitive(j, "usage"));
    } else if (strcmp(type, "message_stop") == 0) {
        st->stopped = true;
    } else if (strcmp(type, "error") == 0) {
        r = anthropic_error(call, j, false);
    }
    /* ping, content_block_stop and unknown events: nothing to do */
    cJSON_Delete(j);
    return r;
}

static int anthropic_on_whole(struct hp_call *call, void *ud, const char *event, const char *data,
                              size_t len)
{
    (void)event;
    struct anthropic_state *st = ud;
    cJSON *j = hp_parse_whole(call, data, len);
    if (j == NULL)
        return 1;
    int r = 0;
    const char *type = hp_json_str(j, "type");
    if (type != NULL && strcmp(type, "error") == 0) {
        r = anthropic_error(call, j, true);
    } else {
        const cJSON *content = hp_json_arr(j, "content");
        const cJSON *block;
        long index = 0;
        cJSON_ArrayForEach(block, content)
        {
            if (r == 0 && cJSON_IsObject(block))
                r = anthropic_block(call, index, block, true);
            index++;
        }
        anthropic_stop_reason(call, hp_json_str(j, "stop_reason"));
        anthropic_usage(call, st, cJSON_GetObjectItemCaseSensitive(j, "usage"));
    }
    cJSON_Delete(j);
    st->whole = r == 0;
    return r;
}

static bool anthropic_complete(void *ud)
{
    const struct anthropic_state *st = ud;
    return st->stopped || st->whole;
}

/* Appends text to b, after a blank line when b already holds something. */
static enum buf_result anthropic_join(struct buf *b, const char *text)
{
    enum buf_result r = BUF_OK;
    if (b->len > 0)
        r = buf_puts(b, "\n\n");
    return r == BUF_OK ? buf_puts(b, text) : r;
}

/* The request body, or NULL when out of memory. Free with hp_json_free_text. */
static char *anthropic_body(const struct hp *hp, const struct llm_request *req, double temperature)
{
    bool ok = true;
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    hp_json_add_string(o, "model", req->model, &ok);
    long long max = hp_max_tokens(hp, req);
    hp_json_add_number(o, "max_tokens", (double)(max > 0 ? max : ANTHROPIC_MAX_TOKENS), &ok);

    struct buf system, turn;
    buf_init(&system, (size_t)-1 / 2);
    buf_init(&turn, (size_t)-1 / 2);
    cJSON *messages = cJSON_CreateArray();
    const char *turn_role = NULL;
    for (size_t i = 0; i <= req->n_messages && ok; i++) {
        const struct llm_message *m = i < req->n_messages ? &req->messages[i] : NULL;
        const char *content = m != NULL && m->content != NULL ? m->content : "";
        if (m != NULL && strcmp(m->role, "system") == 0) {
            ok = anthropic_join(&system, content) == BUF_OK;
            continue;
        }
        bool speaker =
            m != NULL && (strcmp(m->role, "user") == 0 || strcmp(m->role, "assistant") == 0);
        if (m != NULL && !speaker)
            continue; /* other roles (tool results) come with the tools issue */
        /* A new role (or the end) closes the merged message so far. */
        if (turn_role != NULL && (m == NULL || strcmp(m->role, turn_role) != 0)) {
            cJSON *msg = cJSON_CreateObject();
            hp_json_add_string(msg, "role", turn_role, &ok);
            hp_json_add_string(msg, "content", buf_cstr(&turn), &ok);
            if (msg == NULL || messages == NULL || !cJSON_AddItemToArray(messages, msg)) {
                cJSON_Delete(msg);
                ok = false;
            }
            buf_reset(&turn);
            turn_role = NULL;
        }
        if (m != NULL) {
            turn_role = m->role;
            ok = ok && anthropic_join(&turn, content) == BUF_OK;
        }
    }
    if (system.len > 0)
        hp_json_add_string(o, "system", buf_cstr(&system), &ok);
    hp_json_add_item(o, "messages", messages, &ok);
    buf_free(&system);
    buf_free(&turn);
    hp_json_add_bool(o, "stream", !req->no_stream, &ok);
    if (!isnan(temperature))
        hp_json_add_number(o, "temperature", temperature, &ok);
    char *text = ok ? hp_json_print(o) : NULL;
    cJSON_Delete(o);
    return text;
}

/* 0 when t is a temperature Anthropic accepts (or unset), else -1 with
 * the message. */
static int anthropic_check_temperature(double t, char *err, size_t errlen)
{
    if (isnan(t) || (t >= 0.0 && t <= ANTHROPIC_MAX_TEMP))
        return 0;
    snprintf(err, errlen,
             "anthropic: MEMCHAT_TEMPERATURE=%g is outside 0..1, the range Anthropic accepts; "
             "set it to a value from 0 to 1",
             t);
    return -1;
}

static enum mc_error anthropic_chat(const struct llm_provider *p, const struct llm_request *req,
                                    llm_delta_fn on_delta, void *ud, const atomic_bool *cancel,
                                    struct llm_result *res, char *err, size_t errlen)
{
    struct hp *hp = p->impl;
    double t = hp_temperature(hp, req);
    if (anthropic_check_temperature(t, err, errlen) != 0) {
        hp_result_init(res);
        return MC_ERR_CONFIG;
    }
    char *body = anthropic_body(hp, req, t);
    if (body == NULL) {
        hp_result_init(res);
        snprintf(err, errlen, "anthropic: out of memory building the request");
        return MC_ERR_OUT_OF_MEMORY;
    }
    const char *api_key = hp_key(hp, req);
    if (api_key[0] == '\0') {
        hp_result_init(res);
        hp_json_free_text(body);
        snprintf(err, errlen,
                 "anthropic: no API key: set ANTHROPIC_API_KEY (config.env or the environment) "
                 "or give the tenant its own with `memchat keys set --provider anthropic`");
        return MC_ERR_CONFIG;
    }
    char *key = hp_header("x-api-key", api_key);
    const char *headers[] = {key, "anthropic-version: " ANTHROPIC_VERSION};
    struct anthropic_state st = {.input = -1, .cache_read = -1, .cache_write = -1, .output = -1};
    struct hp_call_spec spec = {
        .path = "/v1/messages",
        .headers = headers,
        .n_headers = sizeof headers / sizeof headers[0],
        .body = body,
        .body_len = strlen(body),
        .framing = req->no_stream ? HP_FRAMING_WHOLE : HP_FRAMING_SSE,
        .on_payload = req->no_stream ? anthropic_on_whole : anthropic_on_event,
        .complete = anthropic_complete,
        .st = &st,
        .api_key = req->api_key,
        .api_key_origin = req->api_key_origin,
    };
    enum mc_error rc = hp_call_run(hp, &spec, on_delta, ud, cancel, res, err, errlen);
    hp_header_free(key);
    hp_json_free_text(body);
    return rc;
}

struct llm_provider *llm_anthropic_new(const struct config *cfg, const char *base_url,
                                       const char *api_key, char *err, size_t errlen)
{
    static const struct hp_names names = {
        .provider = "anthropic", .url_var = "ANTHROPIC_BASE_URL", .key_var = "ANTHROPIC_API_KEY"};
    /* Tenant keys for anthropic go only to the configured base URL. */
    const char *key_name = base_url == NULL ? "anthropic" : NULL;
    if (base_url == NULL)
        base_url = config_str(cfg, CFG_ANTHROPIC_BASE_URL);
    if (api_key == NULL)
        api_key = config_str(cfg, CFG_ANTHROPIC_API_KEY);
    if (anthropic_check_temperature(config_number(cfg, CFG_MEMCHAT_TEMPERATURE), err, errlen) != 0)
        return NULL;
    struct hp *hp = hp_new(&names, cfg, base_url, api_key, err, errlen);
    if (hp == NULL)
        return NULL;
    hp->default_model = xstrdup(ANTHROPIC_DEFAULT_MODEL);
    struct llm_provider *p = hp_provider_new(hp, "anthropic", anthropic_chat);
    p->key_name = key_name;
    p->needs_key = true;
    hp_provider_window(p, hp, ANTHROPIC_WINDOW);
    char *shown = hp_url_redacted(hp->base_url);
    p->detail = xasprintf("Anthropic at %s", shown);
    xfree(shown);
    return p;
}
