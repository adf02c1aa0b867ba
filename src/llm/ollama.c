/*
 * The ollama provider: Ollama's native chat API (api-notes.md §3.1),
 * streamed as NDJSON, one object per line. Model settings go in "options"
 * (temperature, num_predict for the reply cap). The last line says
 * done:true and carries the token counts (prompt_eval_count, eval_count);
 * Ollama reports no cache figure, so cached_tokens stays -1 (unknown). An
 * error after the stream began arrives as a line {"error": "..."} while
 * the status stays 200. Tool calls arrive whole, their arguments a JSON
 * object, often without an id; they go back the same way (arguments as an
 * object) and their results as role "tool" messages naming the tool
 * (tool_name), which is how Ollama matches a result to its call. The tools
 * offered go in OpenAI's shape; Ollama has no tool_choice, so a round that
 * may not call tools (tools_none) sends none. For Ollama's
 * OpenAI-compatible /v1 use the openai provider.
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

#define OLLAMA_DEFAULT_MODEL "llama3.2"
/* Ollama's own default num_ctx is smaller still (2048-4096 depending on the
 * version); 8192 is what llama3.2-class models are commonly run with. */
#define OLLAMA_WINDOW 8192

struct ollama_state {
    bool done;       /* a line with done:true */
    long next_index; /* tool calls without their own index */
};

static int ollama_tool_calls(struct hp_call *call, struct ollama_state *st, const cJSON *arr)
{
    const cJSON *tc;
    cJSON_ArrayForEach(tc, arr)
    {
        const cJSON *fn = cJSON_IsObject(tc) ? hp_json_obj(tc, "function") : NULL;
        if (fn == NULL) {
            hp_skip(call);
            continue;
        }
        long index = (long)hp_json_int(fn, "index", -1);
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
        hp_tool_set(&slot->name, hp_json_str(fn, "name"));
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
        if (cJSON_IsString(args)) {
            if (!hp_tool_append(call, slot, args->valuestring, strlen(args->valuestring)))
                return 1;
        } else if (cJSON_IsObject(args)) {
            char *text = hp_json_print(args);
            if (text == NULL)
                return hp_call_fail(call, MC_ERR_OUT_OF_MEMORY, -1,
                                    "out of memory reading a tool call");
            bool ok = hp_tool_append(call, slot, text, strlen(text));
            hp_json_free_text(text);
            if (!ok)
                return 1;
        }
    }
    return 0;
}

/* One line of the stream, or the whole non-streaming answer (the same
 * object with done:true). */
static int ollama_object(struct hp_call *call, void *ud, const cJSON *j, bool whole)
{
    struct ollama_state *st = ud;
    char msg[512], type[64];
    if (hp_error_message(j, msg, sizeof msg, type, sizeof type))
        return hp_call_fail(call, MC_ERR_PROVIDER, hp_stream_error_retry(call, type),
                            "the server reported an error%s: %s",
                            whole ? "" : " in the middle of the stream", msg);
    const cJSON *m = hp_json_obj(j, "message");
    if (m != NULL) {
        const char *content = hp_json_str(m, "content");
        if (content != NULL && hp_deliver(call, content, strlen(content)) != 0)
            return 1;
        const cJSON *calls = hp_json_arr(m, "tool_calls");
        if (calls != NULL && ollama_tool_calls(call, st, calls) != 0)
            return 1;
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "done"))) {
        st->done = true;
        struct llm_result *res = hp_result(call);
        const char *reason = hp_json_str(j, "done_reason");
        if (reason != NULL)
            snprintf(res->finish_reason, sizeof res->finish_reason, "%s", reason);
        long long in = hp_json_int(j, "prompt_eval_count", -1);
        long long out = hp_json_int(j, "eval_count", -1);
        if (in >= 0 || out >= 0) {
            res->usage.prompt_tokens = in;
            res->usage.completion_tokens = out;
            res->usage.estimated = false;
        }
    }
    return 0;
}

static int ollama_on_line(struct hp_call *call, void *ud, const char *event, const char *data,
                          size_t len)
{
    (void)event;
    struct ollama_state *st = ud;
    if (st->done)
        return 0;
    return hp_dispatch_object(call, data, len, false, ollama_object, st);
}

static int ollama_on_whole(struct hp_call *call, void *ud, const char *event, const char *data,
                           size_t len)
{
    (void)event;
    struct ollama_state *st = ud;
    int r = hp_dispatch_object(call, data, len, true, ollama_object, st);
    /* A whole answer that parsed is complete even without done:true. */
    if (r == 0)
        st->done = true;
    return r;
}

static bool ollama_complete(void *ud)
{
    const struct ollama_state *st = ud;
    return st->done;
}

/* The request body, or NULL when out of memory. Free with hp_json_free_text. */
static char *ollama_body(const struct hp *hp, const struct llm_request *req)
{
    bool ok = true;
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    hp_json_add_string(o, "model", req->model, &ok);
    hp_json_add_item(o, "messages", hp_json_messages(req, HP_MSG_OLLAMA, &ok), &ok);
    /* Ollama has no tool_choice: a round that may not call tools gets no
     * tools (the history's calls need no definitions here). */
    if (!req->tools_none)
        hp_json_add_tools(o, req, &ok);
    /* Ollama streams unless told otherwise: say it either way. */
    hp_json_add_bool(o, "stream", !req->no_stream, &ok);
    cJSON *options = cJSON_CreateObject();
    double t = hp_temperature(hp, req);
    if (!isnan(t))
        hp_json_add_number(options, "temperature", t, &ok);
    long long max = hp_max_tokens(hp, req);
    if (max > 0)
        hp_json_add_number(options, "num_predict", (double)max, &ok);
    hp_json_add_item(o, "options", options, &ok);
    char *text = ok ? hp_json_print(o) : NULL;
    cJSON_Delete(o);
    return text;
}

static enum mc_error ollama_chat(const struct llm_provider *p, const struct llm_request *req,
                                 llm_delta_fn on_delta, void *ud, const atomic_bool *cancel,
                                 struct llm_result *res, char *err, size_t errlen)
{
    struct hp *hp = p->impl;
    /* Fallible, as in anthropic_chat: the body is the whole conversation. */
    alloc_fallible_begin();
    char *body = ollama_body(hp, req);
    alloc_fallible_end();
    if (body == NULL) {
        hp_result_init(res);
        snprintf(err, errlen, "ollama: out of memory building the request");
        return MC_ERR_OUT_OF_MEMORY;
    }
    struct ollama_state st = {0};
    struct hp_call_spec spec = {
        .path = "/api/chat",
        .headers = NULL,
        .n_headers = 0,
        .body = body,
        .body_len = strlen(body),
        .framing = req->no_stream ? HP_FRAMING_WHOLE : HP_FRAMING_NDJSON,
        .on_payload = req->no_stream ? ollama_on_whole : ollama_on_line,
        .complete = ollama_complete,
        .st = &st,
    };
    enum mc_error rc = hp_call_run(hp, &spec, on_delta, ud, cancel, res, err, errlen);
    hp_json_free_text(body);
    return rc;
}

struct llm_provider *llm_ollama_new(const struct config *cfg, const char *base_url, char *err,
                                    size_t errlen)
{
    static const struct hp_names names = {
        .provider = "ollama", .url_var = "OLLAMA_BASE_URL", .key_var = NULL};
    if (base_url == NULL)
        base_url = config_str(cfg, CFG_OLLAMA_BASE_URL);
    struct hp *hp = hp_new(&names, cfg, base_url, "", err, errlen);
    if (hp == NULL)
        return NULL;
    hp->default_model = xstrdup(OLLAMA_DEFAULT_MODEL);
    struct llm_provider *p = hp_provider_new(hp, "ollama", ollama_chat);
    hp_provider_window(p, hp, OLLAMA_WINDOW);
    char *shown = hp_url_redacted(hp->base_url);
    p->detail = xasprintf("Ollama at %s", shown);
    xfree(shown);
    return p;
}
