/*
 * The anthropic provider: Anthropic's Messages API (api-notes.md §2),
 * streamed as named SSE events. How memchat's request maps onto it:
 * - system messages go to the top-level "system" field, joined by a blank
 *   line; only user and assistant messages stay in "messages", and
 *   consecutive ones of the same role are merged, since the API wants the
 *   roles to alternate;
 * - function calling (§2.2): the tools offered go as "tools" with their
 *   schema as input_schema, tools_none as tool_choice {"type":"none"}; an
 *   assistant message's tool calls become tool_use blocks after its text
 *   (their input the arguments as an object), and tool results, which
 *   belong to the user here, tool_result blocks: consecutive results merge
 *   into one user message, as the API wants all the results of one turn
 *   together;
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

/* The Anthropic message being merged from consecutive memchat messages of
 * one role: plain text (joined by blank lines) while there is only text,
 * blocks once a tool_use or tool_result comes, the text before it then
 * becoming a text block of its own. */
struct anthropic_turn {
    const char *role; /* "user" or "assistant"; NULL: none open */
    struct buf text;  /* text not yet put in a block */
    cJSON *blocks;    /* NULL until the first tool block */
    bool ok;          /* false once an allocation failed */
};

/* Appends item (taken) to arr. */
static void anthropic_append(struct anthropic_turn *t, cJSON *arr, cJSON *item)
{
    if (item == NULL || arr == NULL || !cJSON_AddItemToArray(arr, item)) {
        cJSON_Delete(item);
        t->ok = false;
    }
}

/* Moves the pending text into a text block, when there is any (the API
 * refuses empty text blocks). */
static void anthropic_flush_text(struct anthropic_turn *t)
{
    if (t->text.len == 0)
        return;
    cJSON *block = cJSON_CreateObject();
    hp_json_add_string(block, "type", "text", &t->ok);
    hp_json_add_string(block, "text", buf_cstr(&t->text), &t->ok);
    anthropic_append(t, t->blocks, block);
    buf_reset(&t->text);
}

/* Adds block (taken) to the open message, after its pending text. */
static void anthropic_add_block(struct anthropic_turn *t, cJSON *block)
{
    if (t->blocks == NULL)
        t->blocks = cJSON_CreateArray();
    anthropic_flush_text(t);
    anthropic_append(t, t->blocks, block);
}

/* Closes the open message, if any, into messages: content a string when
 * it holds only text, else its blocks. */
static void anthropic_close(struct anthropic_turn *t, cJSON *messages)
{
    if (t->role == NULL)
        return;
    cJSON *msg = cJSON_CreateObject();
    hp_json_add_string(msg, "role", t->role, &t->ok);
    if (t->blocks == NULL) {
        hp_json_add_string(msg, "content", buf_cstr(&t->text), &t->ok);
    } else {
        anthropic_flush_text(t);
        hp_json_add_item(msg, "content", t->blocks, &t->ok);
        t->blocks = NULL;
    }
    anthropic_append(t, messages, msg);
    buf_reset(&t->text);
    t->role = NULL;
}

/* {"type":"tool_use","id","name","input"} of a call the model made; input
 * is the arguments as an object ({} when they were not one). */
static cJSON *anthropic_tool_use(struct anthropic_turn *t, const struct llm_tool_call *tc)
{
    cJSON *block = cJSON_CreateObject();
    hp_json_add_string(block, "type", "tool_use", &t->ok);
    hp_json_add_string(block, "id", tc->id != NULL ? tc->id : "", &t->ok);
    hp_json_add_string(block, "name", tc->name != NULL ? tc->name : "", &t->ok);
    hp_json_add_item(block, "input", hp_json_arguments(tc, &t->ok), &t->ok);
    return block;
}

/* {"type":"tool_result","tool_use_id","content"} of a tool message, with
 * "is_error": true for a failed call (only then: it defaults to false). */
static cJSON *anthropic_tool_result(struct anthropic_turn *t, const struct llm_message *m)
{
    cJSON *block = cJSON_CreateObject();
    hp_json_add_string(block, "type", "tool_result", &t->ok);
    hp_json_add_string(block, "tool_use_id", m->tool_call_id != NULL ? m->tool_call_id : "",
                       &t->ok);
    hp_json_add_string(block, "content", m->content != NULL ? m->content : "", &t->ok);
    if (m->tool_error)
        hp_json_add_bool(block, "is_error", true, &t->ok);
    return block;
}

/* Adds a user, assistant or tool message to the open message of its
 * Anthropic role (a tool result is the user's), closing the other role's
 * first. An assistant message that only calls tools adds no text. */
static void anthropic_add_message(struct anthropic_turn *t, cJSON *messages,
                                  const struct llm_message *m)
{
    bool tool = strcmp(m->role, "tool") == 0;
    const char *role = tool ? "user" : m->role;
    if (t->role != NULL && strcmp(t->role, role) != 0)
        anthropic_close(t, messages);
    t->role = role;
    if (tool) {
        anthropic_add_block(t, anthropic_tool_result(t, m));
        return;
    }
    const char *content = m->content != NULL ? m->content : "";
    if ((m->n_tool_calls == 0 || content[0] != '\0') && anthropic_join(&t->text, content) != BUF_OK)
        t->ok = false;
    for (size_t i = 0; i < m->n_tool_calls; i++)
        anthropic_add_block(t, anthropic_tool_use(t, &m->tool_calls[i]));
}

/* "tools": [{name, description, input_schema}] and, for a round that may
 * not call them, "tool_choice": {"type":"none"} (refused without tools). */
static void anthropic_tools(cJSON *o, const struct llm_request *req, bool *ok)
{
    if (req->n_tools == 0)
        return;
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < req->n_tools && *ok; i++) {
        const struct llm_tool_spec *spec = &req->tools[i];
        cJSON *tool = cJSON_CreateObject();
        hp_json_add_string(tool, "name", spec->name, ok);
        if (spec->description != NULL)
            hp_json_add_string(tool, "description", spec->description, ok);
        hp_json_add_item(tool, "input_schema", hp_json_schema(spec, ok), ok);
        if (tool == NULL || arr == NULL || !cJSON_AddItemToArray(arr, tool)) {
            cJSON_Delete(tool);
            *ok = false;
        }
    }
    hp_json_add_item(o, "tools", arr, ok);
    if (req->tools_none) {
        cJSON *choice = cJSON_CreateObject();
        hp_json_add_string(choice, "type", "none", ok);
        hp_json_add_item(o, "tool_choice", choice, ok);
    }
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

    struct buf system;
    buf_init(&system, (size_t)-1 / 2);
    struct anthropic_turn turn = {.ok = true};
    buf_init(&turn.text, (size_t)-1 / 2);
    cJSON *messages = cJSON_CreateArray();
    for (size_t i = 0; i < req->n_messages && ok && turn.ok; i++) {
        const struct llm_message *m = &req->messages[i];
        if (strcmp(m->role, "system") == 0) {
            ok = anthropic_join(&system, m->content != NULL ? m->content : "") == BUF_OK;
            continue;
        }
        if (strcmp(m->role, "user") == 0 || strcmp(m->role, "assistant") == 0 ||
            strcmp(m->role, "tool") == 0)
            anthropic_add_message(&turn, messages, m);
    }
    anthropic_close(&turn, messages);
    ok = ok && turn.ok;
    if (system.len > 0)
        hp_json_add_string(o, "system", buf_cstr(&system), &ok);
    hp_json_add_item(o, "messages", messages, &ok);
    anthropic_tools(o, req, &ok);
    buf_free(&system);
    buf_free(&turn.text);
    cJSON_Delete(turn.blocks);
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
    /* The request holds the whole conversation, a size not ours to bound,
     * and the builder checks every cJSON result: want of memory is this
     * turn's error, not the end of the program. */
    alloc_fallible_begin();
    char *body = anthropic_body(hp, req, t);
    alloc_fallible_end();
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
