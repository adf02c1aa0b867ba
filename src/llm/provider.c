/*
 * Choosing the provider a session talks to, and the parts of the provider
 * table every provider shares (freeing, pricing, tool calls).
 *
 * `auto` follows DESIGN.md's embedded defaults: a key beats a local server,
 * which beats offline. A local server is found by asking GET {base}/models
 * with a 100 ms limit on both the connection and the answer, so a machine
 * with nothing listening pays two refused connections (well under a
 * millisecond on loopback) and a machine with a wedged server pays at most
 * 200 ms. The server's first listed model becomes the default model, since
 * a local server rarely has "gpt-4o-mini".
 */
#include "config.h"

#include "llm/provider.h"

#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "config/config.h"
#include "config/vars.h"
#include "llm/http_provider.h"
#include "net/http.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/json.h"

/* Where `auto` looks when MEMCHAT_LOCAL_BASE_URL is empty: Ollama's and
 * llama.cpp's default ports. */
static const char *const provider_local_urls[] = {
    "http://127.0.0.1:11434/v1",
    "http://127.0.0.1:8080/v1",
};

/* A /models answer is small; anything bigger is not the server we want. */
#define PROVIDER_PROBE_MAX (1u << 20)

static int provider_probe_body(void *ud, const char *data, size_t len)
{
    return buf_append(ud, data, len) != BUF_OK;
}

/* Asks the OpenAI-compatible server behind p for its models, through p's
 * own client (so the connection is kept for the first turn). True when it
 * answered 2xx with {"data": [...]} in time; *model is then its first id
 * (caller frees), or NULL when it listed none. */
static bool provider_probe(struct llm_provider *p, char **model)
{
    struct hp *hp = p->impl;
    *model = NULL;
    char *url = xasprintf("%s/models", hp->base_url);
    const char *headers[] = {"Accept: application/json"};
    struct buf body;
    buf_init(&body, PROVIDER_PROBE_MAX);
    struct http_request req = {
        .method = "GET",
        .url = url,
        .headers = headers,
        .n_headers = 1,
        .on_body = provider_probe_body,
        .ud = &body,
        .connect_timeout_ms = LLM_AUTO_PROBE_MS,
        .total_timeout_ms = LLM_AUTO_PROBE_MS,
        .max_response_bytes = PROVIDER_PROBE_MAX,
    };
    atomic_bool never = false;
    struct http_response resp;
    char err[256];
    enum http_result r = http_perform(hp->client, &req, &never, &resp, err, sizeof err);
    bool ok = false;
    if (r == HTTP_OK && resp.status >= 200 && resp.status < 300) {
        cJSON *j = json_parse(buf_cstr(&body), body.len, NULL, false);
        const cJSON *data = cJSON_IsObject(j) ? hp_json_arr(j, "data") : NULL;
        if (data != NULL) {
            ok = true;
            const cJSON *first = cJSON_GetArrayItem(data, 0);
            const char *id = cJSON_IsObject(first) ? hp_json_str(first, "id") : NULL;
            if (id != NULL && id[0] != '\0')
                *model = xstrdup(id);
        }
        cJSON_Delete(j);
    }
    http_response_free(&resp);
    buf_free(&body);
    xfree(url);
    return ok;
}

/* An openai provider for the local server at url when it answers the
 * probe; NULL otherwise (also when it cannot be set up). */
static struct llm_provider *provider_try_local(const struct config *cfg, const char *url)
{
    char err[256];
    struct llm_provider *p = llm_openai_new(cfg, url, "", err, sizeof err);
    if (p == NULL)
        return NULL;
    char *model = NULL;
    if (!provider_probe(p, &model)) {
        llm_provider_free(p);
        return NULL;
    }
    struct hp *hp = p->impl;
    /* Messages about this provider should point at the setting that
     * chose it. */
    hp->names.url_var = "MEMCHAT_LOCAL_BASE_URL";
    if (model != NULL) {
        xfree(hp->default_model);
        hp->default_model = model;
        p->default_model = model;
    }
    /* A local model's window is small whatever the URL looks like. */
    hp_provider_window(p, hp, 8192);
    char *shown = hp_url_redacted(hp->base_url);
    xfree(p->detail);
    p->detail = model != NULL
                    ? xasprintf("local OpenAI-compatible server at %s (model %s)", shown, model)
                    : xasprintf("local OpenAI-compatible server at %s (it lists no models: set "
                                "MEMCHAT_MODEL)",
                                shown);
    xfree(shown);
    return p;
}

/* `auto`: see provider.h. */
static struct llm_provider *provider_auto(const struct config *cfg, char *err, size_t errlen)
{
    struct llm_provider *p;
    if (config_str(cfg, CFG_OPENAI_API_KEY)[0] != '\0') {
        p = llm_openai_new(cfg, NULL, NULL, err, errlen);
        if (p != NULL) {
            char *d = xasprintf("%s (auto: OPENAI_API_KEY is set)", p->detail);
            xfree(p->detail);
            p->detail = d;
        }
        return p;
    }
    if (config_str(cfg, CFG_ANTHROPIC_API_KEY)[0] != '\0') {
        p = llm_anthropic_new(cfg, NULL, NULL, err, errlen);
        if (p != NULL) {
            char *d = xasprintf("%s (auto: ANTHROPIC_API_KEY is set)", p->detail);
            xfree(p->detail);
            p->detail = d;
        }
        return p;
    }
    const char *local = config_str(cfg, CFG_MEMCHAT_LOCAL_BASE_URL);
    if (local[0] != '\0') {
        if (hp_check_base_url("MEMCHAT_LOCAL_BASE_URL", local, err, errlen) != 0)
            return NULL;
        p = provider_try_local(cfg, local);
    } else {
        p = NULL;
        for (size_t i = 0;
             p == NULL && i < sizeof provider_local_urls / sizeof *provider_local_urls; i++)
            p = provider_try_local(cfg, provider_local_urls[i]);
    }
    if (p != NULL)
        return p;
    p = llm_offline_new();
    if (local[0] != '\0') {
        char *shown = hp_url_redacted(local);
        p->detail = xasprintf("auto: no OPENAI_API_KEY, no ANTHROPIC_API_KEY, and no "
                              "server answered at MEMCHAT_LOCAL_BASE_URL=%s",
                              shown);
        xfree(shown);
    } else {
        p->detail = xstrdup("auto: no OPENAI_API_KEY, no ANTHROPIC_API_KEY, and no local "
                            "server answered on 127.0.0.1:11434 or 127.0.0.1:8080");
    }
    return p;
}

static const char *const provider_names[] = {"auto", "offline", "openai", "anthropic", "ollama"};

const char *llm_provider_name_at(size_t i)
{
    return i < sizeof provider_names / sizeof provider_names[0] ? provider_names[i] : NULL;
}

bool llm_provider_known(const char *name, char *err, size_t errlen)
{
    char names[128] = "";
    size_t used = 0;
    for (size_t i = 0; i < sizeof provider_names / sizeof provider_names[0]; i++) {
        if (strcmp(name, provider_names[i]) == 0)
            return true;
        int n =
            snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "", provider_names[i]);
        used += n > 0 && (size_t)n < sizeof names - used ? (size_t)n : 0;
    }
    char shown[64];
    hp_quote(name, strlen(name), 40, shown, sizeof shown);
    snprintf(err, errlen, "unknown provider \"%s\" (accepted: %s)", shown, names);
    return false;
}

struct llm_provider *llm_provider_resolve(const char *name, const struct config *cfg, char *err,
                                          size_t errlen)
{
    if (strcmp(name, "offline") == 0)
        return llm_offline_new();
    if (strcmp(name, "openai") == 0)
        return llm_openai_new(cfg, NULL, NULL, err, errlen);
    if (strcmp(name, "anthropic") == 0)
        return llm_anthropic_new(cfg, NULL, NULL, err, errlen);
    if (strcmp(name, "ollama") == 0)
        return llm_ollama_new(cfg, NULL, err, errlen);
    if (strcmp(name, "auto") == 0)
        return provider_auto(cfg, err, errlen);
    char why[256];
    llm_provider_known(name, why, sizeof why);
    snprintf(err, errlen, "MEMCHAT_PROVIDER: %s", why);
    return NULL;
}

void llm_provider_free(struct llm_provider *p)
{
    if (p == NULL)
        return;
    if (p->free_impl != NULL)
        p->free_impl(p);
    xfree(p->detail);
    xfree(p);
}

const struct llm_tool_call *llm_provider_tool_calls(const struct llm_provider *p, size_t *n)
{
    *n = 0;
    if (p == NULL || p->tool_calls == NULL)
        return NULL;
    return p->tool_calls(p, n);
}
