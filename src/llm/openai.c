/*
 * The openai provider: OpenAI's chat completions API (api-notes.md §1) and
 * every server that speaks it (llama.cpp's llama-server, Ollama's /v1,
 * vLLM), streamed as SSE. What the servers disagree on, and how this copes
 * (api-notes.md §10):
 * - usage comes in a final chunk with "choices": [] (OpenAI) or inside the
 *   chunk that carries finish_reason (llama.cpp): both are read, whichever
 *   arrives;
 * - the reply cap is max_completion_tokens at api.openai.com but max_tokens
 *   everywhere else, since llama.cpp, Ollama's /v1 and older vLLM know only
 *   the older name (OpenAI still accepts it for non-reasoning models, but
 *   not for o-series ones, hence the split);
 * - no key is sent when none is set: local servers need none;
 * - a stream that ends with neither [DONE] nor a finish_reason was cut.
 * Function calling (§1.4): the tools offered go as "tools" (their schema
 * text parsed into the object the API wants), tools_none as tool_choice
 * "none"; the history's tool calls go back as the assistant's tool_calls
 * (arguments as the text the model wrote) and their results as role
 * "tool" messages (http_provider.c writes both). Tool calls arrive as
 * fragments joined by index (§1.6) and are assembled for the turn.
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

#define OPENAI_DEFAULT_MODEL "gpt-4o-mini"
#define OPENAI_HOST          "api.openai.com"
/* gpt-4o and gpt-4o-mini read 128k tokens. */
#define OPENAI_WINDOW 128000
/* Another OpenAI-compatible server is assumed to be a small local model. */
#define OPENAI_COMPAT_WINDOW 8192

/* What the stream showed so far. */
struct openai_state {
    bool done;       /* data: [DONE] */
    bool finished;   /* a choice's finish_reason */
    bool whole;      /* the non-streaming answer was read */
    long next_index; /* index for a tool call that carries none */
};

static void openai_usage(struct llm_result *res, const cJSON *usage)
{
    if (!cJSON_IsObject(usage))
        return; /* "usage": null in every chunk but the last */
    res->usage.prompt_tokens = hp_json_int(usage, "prompt_tokens", -1);
    res->usage.completion_tokens = hp_json_int(usage, "completion_tokens", -1);
    const cJSON *details = hp_json_obj(usage, "prompt_tokens_details");
    res->usage.cached_tokens = details != NULL ? hp_json_int(details, "cached_tokens", 0) : 0;
    res->usage.estimated = false;
}

/* Joins tool-call fragments by index (api-notes.md §1.6): id and name are
 * set the first time they appear, arguments concatenate. A whole answer's
 * message.tool_calls go through the same path, each call in one piece. */
static int openai_tool_calls(struct hp_call *call, struct openai_state *st, const cJSON *arr)
{
    const cJSON *tc;
    cJSON_ArrayForEach(tc, arr)
    {
        if (!cJSON_IsObject(tc)) {
            hp_skip(call);
            continue;
        }
        long index = (long)hp_json_int(tc, "index", -1);
        if (index < 0)
            index = st->next_index;
        if (index >= st->next_index)
            st->next_index = index + 1;
        struct llm_tool_call *slot = hp_tool_call(call, index);
        if (slot == NULL) {
            hp_skip(call);
            continue;
        }
        hp_tool_set(&slot->id, hp_json_str(tc, "id"));
        const cJSON *fn = hp_json_obj(tc, "function");
        if (fn == NULL)
            continue;
        hp_tool_set(&slot->name, hp_json_str(fn, "name"));
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
        if (cJSON_IsString(args)) {
            if (!hp_tool_append(call, slot, args->valuestring, strlen(args->valuestring)))
                return 1;
        } else if (cJSON_IsObject(args)) {
            /* Some servers send the object itself rather than its text. */
            char *text = hp_json_print(args);
            bool ok = text != NULL && hp_tool_append(call, slot, text, strlen(text));
            hp_json_free_text(text);
            if (!ok)
                return text == NULL ? hp_call_fail(call, MC_ERR_OUT_OF_MEMORY, -1,
                                                   "out of memory reading a tool call")
                                    : 1;
        }
    }
    return 0;
}

/* One chunk (whole = false) or the whole chat.completion (whole = true). */
static int openai_object(struct hp_call *call, void *ud, const cJSON *j, bool whole)
{
    struct openai_state *st = ud;
    char msg[512], type[64];
    if (hp_error_message(j, msg, sizeof msg, type, sizeof type))
        return hp_call_fail(call, MC_ERR_PROVIDER, hp_stream_error_retry(call, type),
                            "the server reported an error%s: %s",
                            whole ? "" : " in the middle of the stream", msg);
    struct llm_result *res = hp_result(call);
    openai_usage(res, cJSON_GetObjectItemCaseSensitive(j, "usage"));
    const cJSON *choices = hp_json_arr(j, "choices");
    const cJSON *choice = choices != NULL ? cJSON_GetArrayItem(choices, 0) : NULL;
    if (!cJSON_IsObject(choice))
        return 0; /* the usage chunk, or a keep-alive */
    const cJSON *delta = hp_json_obj(choice, whole ? "message" : "delta");
    if (delta != NULL) {
        const char *content = hp_json_str(delta, "content");
        if (content != NULL && hp_deliver(call, content, strlen(content)) != 0)
            return 1;
        const cJSON *calls = hp_json_arr(delta, "tool_calls");
        if (calls != NULL && openai_tool_calls(call, st, calls) != 0)
            return 1;
    }
    const char *finish = hp_json_str(choice, "finish_reason");
    if (finish != NULL) {
        snprintf(res->finish_reason, sizeof res->finish_reason, "%s", finish);
        st->finished = true;
    }
    return 0;
}

static int openai_on_event(struct hp_call *call, void *ud, const char *event, const char *data,
                           size_t len)
{
    (void)event; /* OpenAI names no events; a named one is judged by its data */
    struct openai_state *st = ud;
    if (st->done)
        return 0;
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        st->done = true;
        return 0;
    }
    return hp_dispatch_object(call, data, len, false, openai_object, st);
}

static int openai_on_whole(struct hp_call *call, void *ud, const char *event, const char *data,
                           size_t len)
{
    (void)event;
    struct openai_state *st = ud;
    int r = hp_dispatch_object(call, data, len, true, openai_object, st);
    st->whole = r == 0;
    return r;
}

static bool openai_complete(void *ud)
{
    const struct openai_state *st = ud;
    return st->done || st->finished || st->whole;
}

/* The request body, or NULL when out of memory. Free with hp_json_free_text. */
static char *openai_body(const struct hp *hp, const struct llm_request *req)
{
    bool ok = true;
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    hp_json_add_string(o, "model", req->model, &ok);
    hp_json_add_item(o, "messages", hp_json_messages(req, HP_MSG_OPENAI, &ok), &ok);
    hp_json_add_tools(o, req, &ok);
    /* tool_choice is refused without tools, so it comes only with them. */
    if (req->tools_none && req->n_tools > 0)
        hp_json_add_string(o, "tool_choice", "none", &ok);
    hp_json_add_bool(o, "stream", !req->no_stream, &ok);
    if (!req->no_stream) {
        cJSON *so = cJSON_CreateObject();
        hp_json_add_bool(so, "include_usage", true, &ok);
        hp_json_add_item(o, "stream_options", so, &ok);
    }
    double t = hp_temperature(hp, req);
    if (!isnan(t))
        hp_json_add_number(o, "temperature", t, &ok);
    long long max = hp_max_tokens(hp, req);
    if (max > 0)
        hp_json_add_number(
            o, hp_base_host_is(hp, OPENAI_HOST) ? "max_completion_tokens" : "max_tokens",
            (double)max, &ok);
    char *text = ok ? hp_json_print(o) : NULL;
    cJSON_Delete(o);
    return text;
}

static enum mc_error openai_chat(const struct llm_provider *p, const struct llm_request *req,
                                 llm_delta_fn on_delta, void *ud, const atomic_bool *cancel,
                                 struct llm_result *res, char *err, size_t errlen)
{
    struct hp *hp = p->impl;
    /* Fallible, as in anthropic_chat: the body is the whole conversation. */
    alloc_fallible_begin();
    char *body = openai_body(hp, req);
    alloc_fallible_end();
    if (body == NULL) {
        hp_result_init(res);
        snprintf(err, errlen, "openai: out of memory building the request");
        return MC_ERR_OUT_OF_MEMORY;
    }
    const char *key = hp_key(hp, req);
    char *auth = key[0] != '\0' ? xasprintf("Bearer %s", key) : NULL;
    char *auth_header = auth != NULL ? hp_header("Authorization", auth) : NULL;
    hp_header_free(auth);
    const char *headers[1] = {auth_header};
    struct openai_state st = {0};
    struct hp_call_spec spec = {
        .path = "/chat/completions",
        .headers = headers,
        .n_headers = auth_header != NULL ? 1 : 0,
        .body = body,
        .body_len = strlen(body),
        .framing = req->no_stream ? HP_FRAMING_WHOLE : HP_FRAMING_SSE,
        .on_payload = req->no_stream ? openai_on_whole : openai_on_event,
        .complete = openai_complete,
        .st = &st,
        .api_key = req->api_key,
        .api_key_origin = req->api_key_origin,
    };
    enum mc_error rc = hp_call_run(hp, &spec, on_delta, ud, cancel, res, err, errlen);
    hp_header_free(auth_header);
    hp_json_free_text(body);
    return rc;
}

struct llm_provider *llm_openai_new(const struct config *cfg, const char *base_url,
                                    const char *api_key, char *err, size_t errlen)
{
    static const struct hp_names names = {
        .provider = "openai", .url_var = "OPENAI_BASE_URL", .key_var = "OPENAI_API_KEY"};
    /* Tenant keys for openai go only to the configured base URL. */
    const char *key_name = base_url == NULL ? "openai" : NULL;
    if (base_url == NULL)
        base_url = config_str(cfg, CFG_OPENAI_BASE_URL);
    if (api_key == NULL)
        api_key = config_str(cfg, CFG_OPENAI_API_KEY);
    struct hp *hp = hp_new(&names, cfg, base_url, api_key, err, errlen);
    if (hp == NULL)
        return NULL;
    hp->default_model = xstrdup(OPENAI_DEFAULT_MODEL);
    bool official = hp_base_host_is(hp, OPENAI_HOST);
    struct llm_provider *p = hp_provider_new(hp, "openai", openai_chat);
    p->key_name = key_name;
    hp_provider_window(p, hp, official ? OPENAI_WINDOW : OPENAI_COMPAT_WINDOW);
    char *shown = hp_url_redacted(hp->base_url);
    p->detail = official ? xasprintf("OpenAI at %s", shown)
                         : xasprintf("OpenAI-compatible server at %s", shown);
    xfree(shown);
    return p;
}
