/*
 * The shared machinery of http_provider.h. One call is one http_perform():
 * the body callback feeds the framing parser, whose payloads go to the
 * provider's handler, which delivers text through hp_deliver(). After the
 * transfer, one place decides what the call came to, in this order:
 * cancelled (the user's wish beats whatever the transfer then did), a
 * failure a payload reported (a mid-stream error), the transport's result,
 * the HTTP status, and finally whether the reply reached its end marker,
 * since a connection cut between two events can look like a clean end to
 * libcurl. The failure fields of llm_result are filled from the response
 * headers in every case, so the turn's retry policy sees them whatever the
 * outcome. The replay seam (hp_replay_stream) swaps http_perform for a
 * feed from memory that cuts and caps the body as the transport would.
 */
#include "config.h"

#include "llm/http_provider.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "config/config.h"
#include "config/vars.h"
#include "net/http.h"
#include "net/ndjson.h"
#include "net/retry.h"
#include "net/sse.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/json.h"
#include "util/redact.h"
#include "util/utf8.h"

#define HP_FAIL_MSG_MAX 1024

struct hp_call {
    struct hp *hp;
    const struct hp_call_spec *spec;
    llm_delta_fn on_delta;
    void *ud;
    const atomic_bool *cancel;
    struct llm_result *res;
    struct sse_parser *sse;
    struct ndjson_parser *nd;
    struct buf whole; /* HP_FRAMING_WHOLE: the body so far */
    struct buf join;  /* scratch: a held UTF-8 tail joined with the next piece */
    struct buf fixed; /* scratch: a piece with invalid bytes replaced */
    char tail[4];     /* an incomplete UTF-8 sequence held back */
    size_t tail_len;
    bool stopped;    /* cancelled or refused: nothing more is delivered */
    bool refused;    /* on_delta returned nonzero */
    int parse_error; /* SSE_TOO_BIG / SSE_NO_MEM (same values for NDJSON), or 0 */
    bool failed;
    enum mc_error fail_code;
    char fail_msg[HP_FAIL_MSG_MAX];
};

/* --- base URLs and state --- */

int hp_check_base_url(const char *var, const char *url, char *err, size_t errlen)
{
    if (url == NULL || url[0] == '\0') {
        snprintf(err, errlen, "%s is empty: set it to an http:// or https:// URL", var);
        return -1;
    }
    const char *rest = NULL;
    if (strncasecmp(url, "http://", 7) == 0)
        rest = url + 7;
    else if (strncasecmp(url, "https://", 8) == 0)
        rest = url + 8;
    if (rest == NULL) {
        /* Only the scheme is shown: the rest may hold user:password@. */
        const char *sep = strstr(url, "://");
        size_t n = sep != NULL ? (size_t)(sep - url) : 0;
        char scheme[32];
        hp_quote(url, n, 16, scheme, sizeof scheme);
        if (n > 0 && scheme[0] != '\0')
            snprintf(err, errlen,
                     "%s must start with http:// or https:// (its scheme is \"%s\"), e.g. "
                     "http://127.0.0.1:8080/v1",
                     var, scheme);
        else
            snprintf(err, errlen,
                     "%s must start with http:// or https:// (it has no scheme), e.g. "
                     "http://127.0.0.1:8080/v1",
                     var);
        return -1;
    }
    if (rest[0] == '\0' || rest[0] == '/' || rest[0] == '?' || rest[0] == '#') {
        snprintf(err, errlen, "%s names no host after its scheme, e.g. http://127.0.0.1:8080/v1",
                 var);
        return -1;
    }
    for (const unsigned char *s = (const unsigned char *)url; *s != '\0'; s++) {
        if (*s <= 0x20 || *s == 0x7f) {
            snprintf(err, errlen, "%s contains a space or control character; accepted: a URL", var);
            return -1;
        }
    }
    return 0;
}

struct hp *hp_new(const struct hp_names *names, const struct config *cfg, const char *base_url,
                  const char *api_key, char *err, size_t errlen)
{
    if (hp_check_base_url(names->url_var, base_url, err, errlen) != 0)
        return NULL;
    char cerr[256] = "";
    struct http_client *client = http_client_new(cerr, sizeof cerr);
    if (client == NULL) {
        snprintf(err, errlen, "%s: cannot set up the HTTP client: %s", names->provider, cerr);
        return NULL;
    }
    struct hp *hp = xcalloc(1, sizeof *hp);
    hp->names = *names;
    size_t n = strlen(base_url);
    while (n > 0 && base_url[n - 1] == '/')
        n--;
    hp->base_url = xstrndup(base_url, n);
    hp->api_key = xstrdup(api_key != NULL ? api_key : "");
    hp->client = client;
    hp->connect_timeout_ms = (long)config_duration_ms(cfg, CFG_MEMCHAT_CONNECT_TIMEOUT_MS);
    hp->total_timeout_ms = (long)config_duration_ms(cfg, CFG_MEMCHAT_TIMEOUT_S);
    hp->stall_timeout_ms = (long)config_duration_ms(cfg, CFG_MEMCHAT_STALL_TIMEOUT_S);
    hp->max_response_bytes = (size_t)config_int(cfg, CFG_MEMCHAT_MAX_RESPONSE_BYTES);
    hp->temperature = config_number(cfg, CFG_MEMCHAT_TEMPERATURE);
    hp->max_tokens = config_int(cfg, CFG_MEMCHAT_MAX_TOKENS);
    return hp;
}

bool hp_base_host_is(const struct hp *hp, const char *host)
{
    const char *h = strstr(hp->base_url, "://");
    h = h != NULL ? h + 3 : hp->base_url;
    size_t n = strcspn(h, "/?#");
    const char *at = memchr(h, '@', n);
    if (at != NULL) {
        n -= (size_t)(at + 1 - h);
        h = at + 1;
    }
    /* The host ends at its port, unless it is a bracketed IPv6 address. */
    const char *colon = h[0] == '[' ? NULL : memchr(h, ':', n);
    if (colon != NULL)
        n = (size_t)(colon - h);
    return strlen(host) == n && strncasecmp(h, host, n) == 0;
}

char *hp_url_redacted(const char *url)
{
    const char *h = strstr(url, "://");
    if (h == NULL)
        return xstrdup(url);
    h += 3;
    size_t n = strcspn(h, "/?#");
    const char *at = NULL;
    for (size_t i = 0; i < n; i++)
        if (h[i] == '@')
            at = h + i;
    if (at == NULL)
        return xstrdup(url);
    return xasprintf("%.*s%s", (int)(h - url), url, at + 1);
}

char *hp_header(const char *name, const char *value)
{
    return xasprintf("%s: %s", name, value);
}

void hp_header_free(char *header)
{
    if (header == NULL)
        return;
    volatile char *h = header;
    for (size_t i = 0; header[i] != '\0'; i++)
        h[i] = '\0';
    xfree(header);
}

const char *hp_key(const struct hp *hp, const struct llm_request *req)
{
    return req->api_key != NULL ? req->api_key : hp->api_key;
}

void hp_result_init(struct llm_result *res)
{
    memset(res, 0, sizeof *res);
    res->usage = (struct llm_usage){-1, -1, -1, false};
    res->should_retry = -1;
    res->server_delay_ms = -1;
}

static void hp_calls_clear(struct hp *hp)
{
    for (size_t i = 0; i < hp->n_calls; i++) {
        xfree(hp->calls[i].id);
        xfree(hp->calls[i].name);
        buf_free(&hp->calls[i].arguments);
    }
    hp->n_calls = 0;
}

void hp_free(struct hp *hp)
{
    if (hp == NULL)
        return;
    hp_calls_clear(hp);
    xfree(hp->calls);
    http_client_free(hp->client);
    /* The key is wiped before its memory goes back to the allocator, so a
     * later allocation (and a core dump) cannot show it. */
    hp_header_free(hp->api_key);
    xfree(hp->base_url);
    xfree(hp->default_model);
    xfree(hp);
}

static void hp_interrupt(const struct llm_provider *p)
{
    const struct hp *hp = p->impl;
    http_client_wakeup(hp->client);
}

static const struct llm_tool_call *hp_tool_calls_get(const struct llm_provider *p, size_t *n)
{
    const struct hp *hp = p->impl;
    *n = hp->n_calls;
    return hp->n_calls > 0 ? hp->calls : NULL;
}

static void hp_free_impl(struct llm_provider *p)
{
    hp_free(p->impl);
    p->impl = NULL;
}

struct llm_provider *hp_provider_new(struct hp *hp, const char *name,
                                     enum mc_error (*chat)(const struct llm_provider *,
                                                           const struct llm_request *, llm_delta_fn,
                                                           void *, const atomic_bool *,
                                                           struct llm_result *, char *, size_t))
{
    struct llm_provider *p = xcalloc(1, sizeof *p);
    p->name = name;
    p->default_model = hp->default_model;
    p->impl = hp;
    p->chat = chat;
    p->interrupt = hp_interrupt;
    p->tool_calls = hp_tool_calls_get;
    p->free_impl = hp_free_impl;
    return p;
}

void hp_provider_window(struct llm_provider *p, const struct hp *hp, long long window)
{
    p->context_window = window;
    p->reply_reserve = window >= 32768 ? 4096 : 1024;
    if (hp->max_tokens > 0 && hp->max_tokens < window / 2)
        p->reply_reserve = hp->max_tokens;
}

double hp_temperature(const struct hp *hp, const struct llm_request *req)
{
    return isnan(req->temperature) ? hp->temperature : req->temperature;
}

long long hp_max_tokens(const struct hp *hp, const struct llm_request *req)
{
    return req->max_tokens > 0 ? req->max_tokens : hp->max_tokens;
}

/* --- quoting and error bodies --- */

static bool hp_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

void hp_quote(const char *s, size_t n, size_t max, char *out, size_t outlen)
{
    if (outlen == 0)
        return;
    out[0] = '\0';
    if (outlen < 5)
        return;
    if (max > outlen - 4) /* room for "..." and the NUL */
        max = outlen - 4;
    /* Only a prefix is looked at, so a megabyte body costs no more than a
     * short one. */
    size_t look = utf8_truncate(s, n, max * 4 + 16);
    struct buf clean, folded;
    buf_init(&clean, look * 3 + 16);
    buf_init(&folded, look * 3 + 16);
    enum buf_result r = utf8_sanitize_terminal(&clean, s, look);
    const char *c = buf_cstr(&clean);
    bool pending_space = false;
    for (size_t i = 0; i < clean.len && r == BUF_OK; i++) {
        if (hp_is_space(c[i])) {
            pending_space = folded.len > 0;
            continue;
        }
        if (pending_space)
            r = buf_putc(&folded, ' ');
        pending_space = false;
        if (r == BUF_OK)
            r = buf_putc(&folded, c[i]);
    }
    if (r == BUF_OK) {
        size_t keep = utf8_truncate(buf_cstr(&folded), folded.len, max);
        bool cut = look < n || keep < folded.len;
        memcpy(out, buf_cstr(&folded), keep);
        out[keep] = '\0';
        if (cut)
            memcpy(out + keep, "...", 4);
    }
    buf_free(&clean);
    buf_free(&folded);
}

bool hp_error_message(const struct cJSON *obj, char *out, size_t outlen, char *type, size_t typelen)
{
    if (typelen > 0)
        type[0] = '\0';
    if (!cJSON_IsObject(obj))
        return false;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(obj, "error");
    const char *msg = NULL;
    const char *t = NULL;
    if (cJSON_IsString(e)) {
        msg = e->valuestring; /* Ollama: {"error": "text"} */
    } else if (cJSON_IsObject(e)) {
        msg = hp_json_str(e, "message");
        t = hp_json_str(e, "type");
        if (msg == NULL)
            msg = hp_json_str(e, "code");
    } else {
        return false;
    }
    char m[HP_QUOTE_MAX * 2], ty[64] = "";
    hp_quote(msg != NULL ? msg : "", msg != NULL ? strlen(msg) : 0, HP_QUOTE_MAX, m, sizeof m);
    if (t != NULL)
        hp_quote(t, strlen(t), 48, ty, sizeof ty);
    if (typelen > 0)
        snprintf(type, typelen, "%s", ty);
    if (ty[0] != '\0' && m[0] != '\0')
        snprintf(out, outlen, "%s: %s", ty, m);
    else if (m[0] != '\0')
        snprintf(out, outlen, "%s", m);
    else if (ty[0] != '\0')
        snprintf(out, outlen, "%s", ty);
    else
        snprintf(out, outlen, "(no message)");
    return true;
}

/* Masks every copy of the key in msg with '*': a server that echoes the
 * key it was sent (a misconfigured proxy, a debugging server) must not get
 * it into a message the user may paste into a bug report. Keys shorter
 * than 6 bytes are not real keys and would mangle ordinary words. */
static void hp_scrub_key(const char *key, char *msg)
{
    size_t klen = strlen(key);
    if (klen < 6)
        return;
    char *from = msg;
    char *hit;
    while ((hit = strstr(from, key)) != NULL) {
        memset(hit, '*', klen);
        from = hit + klen;
    }
}

/* --- JSON helpers --- */

const char *hp_json_str(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

long long hp_json_int(const cJSON *obj, const char *name, long long fallback)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0 ||
        v->valuedouble > 9e15)
        return fallback;
    return (long long)v->valuedouble;
}

const cJSON *hp_json_obj(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsObject(v) ? v : NULL;
}

const cJSON *hp_json_arr(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsArray(v) ? v : NULL;
}

void hp_json_add_item(cJSON *obj, const char *name, cJSON *item, bool *ok)
{
    if (item == NULL || obj == NULL) {
        cJSON_Delete(item);
        *ok = false;
        return;
    }
    if (!cJSON_AddItemToObject(obj, name, item)) {
        cJSON_Delete(item);
        *ok = false;
    }
}

void hp_json_add_string(cJSON *obj, const char *name, const char *value, bool *ok)
{
    hp_json_add_item(obj, name, cJSON_CreateString(value), ok);
}

void hp_json_add_number(cJSON *obj, const char *name, double value, bool *ok)
{
    hp_json_add_item(obj, name, cJSON_CreateNumber(value), ok);
}

void hp_json_add_bool(cJSON *obj, const char *name, bool value, bool *ok)
{
    hp_json_add_item(obj, name, cJSON_CreateBool(value), ok);
}

/* Appends item (taken) to arr; a NULL item marks *ok false. */
static void hp_json_append(cJSON *arr, cJSON *item, bool *ok)
{
    if (item == NULL || arr == NULL || !cJSON_AddItemToArray(arr, item)) {
        cJSON_Delete(item);
        *ok = false;
    }
}

cJSON *hp_json_parse_object(const char *text, size_t len, bool *ok)
{
    if (text == NULL)
        return NULL;
    cJSON *j = json_parse(text, len, NULL, false);
    if (j == NULL && errno == ENOMEM)
        *ok = false;
    if (cJSON_IsObject(j))
        return j;
    cJSON_Delete(j);
    return NULL;
}

cJSON *hp_json_schema(const struct llm_tool_spec *spec, bool *ok)
{
    const char *text = spec->parameters;
    cJSON *j = text != NULL ? hp_json_parse_object(text, strlen(text), ok) : NULL;
    if (j != NULL)
        return j;
    j = cJSON_CreateObject();
    hp_json_add_string(j, "type", "object", ok);
    hp_json_add_item(j, "properties", cJSON_CreateObject(), ok);
    if (j == NULL)
        *ok = false;
    return j;
}

cJSON *hp_json_arguments(const struct llm_tool_call *tc, bool *ok)
{
    cJSON *j = hp_json_parse_object(tc->arguments.data, tc->arguments.len, ok);
    if (j == NULL)
        j = cJSON_CreateObject();
    if (j == NULL)
        *ok = false;
    return j;
}

void hp_json_add_tools(cJSON *obj, const struct llm_request *req, bool *ok)
{
    if (req->n_tools == 0)
        return;
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < req->n_tools && *ok; i++) {
        const struct llm_tool_spec *spec = &req->tools[i];
        cJSON *tool = cJSON_CreateObject();
        cJSON *fn = cJSON_CreateObject();
        hp_json_add_string(tool, "type", "function", ok);
        hp_json_add_string(fn, "name", spec->name, ok);
        if (spec->description != NULL)
            hp_json_add_string(fn, "description", spec->description, ok);
        hp_json_add_item(fn, "parameters", hp_json_schema(spec, ok), ok);
        hp_json_add_item(tool, "function", fn, ok);
        hp_json_append(arr, tool, ok);
    }
    hp_json_add_item(obj, "tools", arr, ok);
}

/* One entry of an assistant message's tool_calls in style. */
static cJSON *hp_json_tool_call(const struct llm_tool_call *tc, enum hp_msg_style style, bool *ok)
{
    cJSON *call = cJSON_CreateObject();
    cJSON *fn = cJSON_CreateObject();
    if (style == HP_MSG_OPENAI) {
        hp_json_add_string(call, "id", tc->id != NULL ? tc->id : "", ok);
        hp_json_add_string(call, "type", "function", ok);
    }
    hp_json_add_string(fn, "name", tc->name != NULL ? tc->name : "", ok);
    /* OpenAI takes the arguments back as the text the model wrote, valid
     * or not; Ollama only as an object. */
    if (style == HP_MSG_OPENAI)
        hp_json_add_string(fn, "arguments", buf_cstr(&tc->arguments), ok);
    else
        hp_json_add_item(fn, "arguments", hp_json_arguments(tc, ok), ok);
    hp_json_add_item(call, "function", fn, ok);
    if (call == NULL)
        *ok = false;
    return call;
}

/* Fills m (a new message object) from msg in style. */
static void hp_json_message(cJSON *m, const struct llm_message *msg, enum hp_msg_style style,
                            bool *ok)
{
    const char *content = msg->content != NULL ? msg->content : "";
    hp_json_add_string(m, "role", msg->role, ok);
    if (strcmp(msg->role, "tool") == 0) {
        if (style == HP_MSG_OPENAI)
            hp_json_add_string(m, "tool_call_id",
                               msg->tool_call_id != NULL ? msg->tool_call_id : "", ok);
        hp_json_add_string(m, "content", content, ok);
        if (style == HP_MSG_OLLAMA && msg->tool_name != NULL)
            hp_json_add_string(m, "tool_name", msg->tool_name, ok);
        return;
    }
    if (msg->n_tool_calls == 0) {
        hp_json_add_string(m, "content", content, ok);
        return;
    }
    /* OpenAI wants null, not "", for an assistant message that only
     * calls tools; Ollama's content is a plain string. */
    if (content[0] == '\0' && style == HP_MSG_OPENAI)
        hp_json_add_item(m, "content", cJSON_CreateNull(), ok);
    else
        hp_json_add_string(m, "content", content, ok);
    cJSON *calls = cJSON_CreateArray();
    for (size_t i = 0; i < msg->n_tool_calls && *ok; i++)
        hp_json_append(calls, hp_json_tool_call(&msg->tool_calls[i], style, ok), ok);
    hp_json_add_item(m, "tool_calls", calls, ok);
}

cJSON *hp_json_messages(const struct llm_request *req, enum hp_msg_style style, bool *ok)
{
    cJSON *arr = cJSON_CreateArray();
    if (arr == NULL) {
        *ok = false;
        return NULL;
    }
    for (size_t i = 0; i < req->n_messages && *ok; i++) {
        cJSON *m = cJSON_CreateObject();
        if (m == NULL || !cJSON_AddItemToArray(arr, m)) {
            cJSON_Delete(m);
            *ok = false;
            break;
        }
        hp_json_message(m, &req->messages[i], style, ok);
    }
    return arr;
}

char *hp_json_print(const cJSON *obj)
{
    return cJSON_PrintUnformatted(obj);
}

void hp_json_free_text(char *text)
{
    cJSON_free(text);
}

/* --- handler services --- */

int hp_call_fail(struct hp_call *call, enum mc_error code, int should_retry, const char *fmt, ...)
{
    if (call->failed)
        return 1;
    call->failed = true;
    call->fail_code = code;
    int n = snprintf(call->fail_msg, sizeof call->fail_msg, "%s: ", call->hp->names.provider);
    if (n < 0 || (size_t)n >= sizeof call->fail_msg)
        n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(call->fail_msg + n, sizeof call->fail_msg - (size_t)n, fmt, ap);
    va_end(ap);
    if (should_retry != -1)
        call->res->should_retry = should_retry;
    return 1;
}

int hp_stream_error_retry(const struct hp_call *call, const char *type)
{
    static const char *const server_side[] = {"server_error", "api_error", "overloaded_error",
                                              "timeout_error"};
    if (call->res->deltas_sent > 0 || type == NULL)
        return -1;
    for (size_t i = 0; i < sizeof server_side / sizeof server_side[0]; i++)
        if (strcmp(type, server_side[i]) == 0)
            return 1;
    return -1;
}

void hp_skip(struct hp_call *call)
{
    call->res->skipped++;
}

struct llm_result *hp_result(struct hp_call *call)
{
    return call->res;
}

size_t hp_deltas(const struct hp_call *call)
{
    return call->res->deltas_sent;
}

/* data parsed by json_parse; NULL after failing the call when memory ran
 * out, which must not pass for a payload that is not JSON. */
static cJSON *hp_parse(struct hp_call *call, const char *data, size_t len)
{
    cJSON *j = json_parse(data, len, NULL, false);
    if (j == NULL && errno == ENOMEM)
        hp_call_fail(call, MC_ERR_OUT_OF_MEMORY, -1, "out of memory reading the answer");
    return j;
}

cJSON *hp_parse_payload(struct hp_call *call, const char *data, size_t len)
{
    cJSON *j = hp_parse(call, data, len);
    if (j == NULL && call->failed)
        return NULL;
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        hp_skip(call);
        return NULL;
    }
    return j;
}

int hp_dispatch_object(struct hp_call *call, const char *data, size_t len, bool whole,
                       hp_object_fn fn, void *st)
{
    cJSON *j = whole ? hp_parse_whole(call, data, len) : hp_parse_payload(call, data, len);
    if (j == NULL)
        return whole ? 1 : 0;
    int r = fn(call, st, j, whole);
    cJSON_Delete(j);
    return r;
}

cJSON *hp_parse_whole(struct hp_call *call, const char *data, size_t len)
{
    cJSON *j = hp_parse(call, data, len);
    if (j == NULL && call->failed)
        return NULL;
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        char q[HP_QUOTE_MAX * 2];
        hp_quote(data, len, HP_QUOTE_MAX, q, sizeof q);
        hp_call_fail(call, MC_ERR_PROVIDER, -1, "the answer is not a JSON object: \"%s\"", q);
        return NULL;
    }
    return j;
}

/* Hands one valid UTF-8 piece to the consumer, unless cancelled. */
static int hp_emit(struct hp_call *call, const char *s, size_t n)
{
    if (call->cancel != NULL && atomic_load(call->cancel)) {
        call->stopped = true;
        return 1;
    }
    call->res->deltas_sent++;
    call->res->bytes_sent += n;
    if (call->on_delta(call->ud, s, n) != 0) {
        call->stopped = true;
        call->refused = true;
        return 1;
    }
    return 0;
}

/* Appends s[0..n) to out with each invalid byte replaced by U+FFFD. */
static enum buf_result hp_utf8_fix(struct buf *out, const char *s, size_t n)
{
    enum buf_result r = BUF_OK;
    size_t i = 0;
    while (i < n && r == BUF_OK) {
        uint32_t cp;
        size_t k = utf8_decode(s + i, n - i, &cp);
        if (k == 1 && (unsigned char)s[i] >= 0x80)
            r = buf_append(out, "\xef\xbf\xbd", 3);
        else
            r = buf_append(out, s + i, k);
        i += k;
    }
    return r;
}

int hp_deliver(struct hp_call *call, const char *text, size_t len)
{
    if (call->stopped || call->failed)
        return 1;
    if (len == 0)
        return 0;
    const char *s = text;
    size_t n = len;
    if (call->tail_len > 0) {
        buf_reset(&call->join);
        if (buf_append(&call->join, call->tail, call->tail_len) != BUF_OK ||
            buf_append(&call->join, text, len) != BUF_OK)
            return hp_call_fail(call, MC_ERR_OUT_OF_MEMORY, -1, "out of memory joining a delta");
        s = call->join.data;
        n = call->join.len;
        call->tail_len = 0;
    }
    size_t hold = utf8_incomplete_tail(s, n);
    size_t body = n - hold;
    memcpy(call->tail, s + body, hold);
    call->tail_len = hold;
    if (body == 0)
        return 0;
    if (utf8_valid(s, body, NULL))
        return hp_emit(call, s, body);
    buf_reset(&call->fixed);
    if (hp_utf8_fix(&call->fixed, s, body) != BUF_OK)
        return hp_call_fail(call, MC_ERR_OUT_OF_MEMORY, -1, "out of memory repairing a delta");
    return hp_emit(call, call->fixed.data, call->fixed.len);
}

struct llm_tool_call *hp_tool_call(struct hp_call *call, long index)
{
    struct hp *hp = call->hp;
    for (size_t i = 0; i < hp->n_calls; i++)
        if (hp->calls[i].index == index)
            return &hp->calls[i];
    if (hp->n_calls >= HP_TOOL_CALLS_MAX)
        return NULL;
    if (hp->n_calls == hp->cap_calls) {
        hp->cap_calls = hp->cap_calls ? hp->cap_calls * 2 : 4;
        hp->calls = xreallocarray(hp->calls, hp->cap_calls, sizeof *hp->calls);
    }
    struct llm_tool_call *tc = &hp->calls[hp->n_calls++];
    memset(tc, 0, sizeof *tc);
    tc->index = index;
    tc->id = xstrdup("");
    tc->name = xstrdup("");
    buf_init(&tc->arguments, hp->max_response_bytes);
    return tc;
}

bool hp_tool_append(struct hp_call *call, struct llm_tool_call *tc, const char *s, size_t n)
{
    if (buf_append(&tc->arguments, s, n) == BUF_OK)
        return true;
    hp_call_fail(call, MC_ERR_PROVIDER, -1,
                 "tool call arguments larger than MEMCHAT_MAX_RESPONSE_BYTES (%zu bytes)",
                 call->hp->max_response_bytes);
    return false;
}

void hp_tool_set(char **field, const char *s)
{
    if ((*field)[0] != '\0' || s == NULL || s[0] == '\0')
        return;
    xfree(*field);
    *field = xstrdup(s);
}

/* Arguments are JSON only once complete (api-notes.md §1.6, rule 5).
 * -1 when memory ran out checking them: valid arguments must not pass
 * for malformed ones. */
static int hp_tool_finish(struct hp *hp)
{
    for (size_t i = 0; i < hp->n_calls; i++) {
        struct llm_tool_call *tc = &hp->calls[i];
        cJSON *j = json_parse(buf_cstr(&tc->arguments), tc->arguments.len, NULL, false);
        if (j == NULL && errno == ENOMEM)
            return -1;
        tc->arguments_valid = cJSON_IsObject(j);
        cJSON_Delete(j);
    }
    return 0;
}

/* --- the transfer --- */

static int hp_on_sse(void *ud, const struct sse_event *ev)
{
    struct hp_call *call = ud;
    /* A handler that failed the call stops the transfer even when it
     * returned 0 (a payload it skipped for want of memory). */
    return call->spec->on_payload(call, call->spec->st, ev->event, ev->data, ev->data_len) != 0 ||
           call->failed;
}

static int hp_on_line(void *ud, const char *line, size_t len)
{
    struct hp_call *call = ud;
    return call->spec->on_payload(call, call->spec->st, NULL, line, len) != 0 || call->failed;
}

static int hp_on_body(void *ud, const char *data, size_t len)
{
    struct hp_call *call = ud;
    if (call->stopped || call->failed)
        return 1;
    if (call->cancel != NULL && atomic_load(call->cancel)) {
        call->stopped = true;
        return 1;
    }
    int r = 0;
    switch (call->spec->framing) {
    case HP_FRAMING_SSE:
        r = sse_feed(call->sse, data, len);
        if (r == SSE_TOO_BIG || r == SSE_NO_MEM)
            call->parse_error = r;
        break;
    case HP_FRAMING_NDJSON:
        r = ndjson_feed(call->nd, data, len);
        if (r == NDJSON_TOO_BIG || r == NDJSON_NO_MEM)
            call->parse_error = r == NDJSON_TOO_BIG ? SSE_TOO_BIG : SSE_NO_MEM;
        break;
    case HP_FRAMING_WHOLE: {
        enum buf_result b = buf_append(&call->whole, data, len);
        if (b != BUF_OK) {
            call->parse_error = b == BUF_TOO_BIG ? SSE_TOO_BIG : SSE_NO_MEM;
            r = 1;
        }
        break;
    }
    }
    return r != 0;
}

/* The message of an error body that is not JSON because it was cut at
 * the transport's 64 KiB bound (the providers put the message first): the
 * string after the first "message": or "error": key, quoted into out.
 * false when there is none. */
static bool hp_scan_message(const char *body, size_t len, char *out, size_t outlen)
{
    static const char *const keys[] = {"\"message\"", "\"error\""};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        size_t klen = strlen(keys[k]);
        for (size_t i = 0; i + klen < len; i++) {
            if (memcmp(body + i, keys[k], klen) != 0)
                continue;
            size_t j = i + klen;
            while (j < len && (body[j] == ' ' || body[j] == ':'))
                j++;
            if (j >= len || body[j] != '"')
                continue; /* "error": {...}: look further for "message" */
            size_t start = ++j;
            while (j < len && body[j] != '"')
                j += body[j] == '\\' ? 2 : 1;
            if (j >= len)
                return false;
            hp_quote(body + start, j - start, HP_QUOTE_MAX, out, outlen);
            return out[0] != '\0';
        }
    }
    return false;
}

/* "N piece" or "N pieces". */
static const char *hp_pieces(size_t n)
{
    return n == 1 ? "piece" : "pieces";
}

/* The message and code of a non-2xx response. */
static enum mc_error hp_http_error(const struct hp_call *call, const struct http_response *resp,
                                   char *err, size_t errlen)
{
    const struct hp *hp = call->hp;
    char msg[HP_QUOTE_MAX * 2 + 64] = "";
    char type[64] = "";
    char body_id[128] = "";
    bool truncated = false; /* the message was read from a body cut short */
    const struct buf *b = &resp->error_body;
    if (b->len > 0) {
        cJSON *j = json_parse(b->data, b->len, NULL, false);
        if (!hp_error_message(j, msg, sizeof msg, type, sizeof type)) {
            const char *m = cJSON_IsObject(j) ? hp_json_str(j, "message") : NULL;
            if (m != NULL)
                hp_quote(m, strlen(m), HP_QUOTE_MAX, msg, sizeof msg);
            else if (j == NULL && hp_scan_message(b->data, b->len, msg, sizeof msg))
                truncated = true;
            else
                hp_quote(b->data, b->len, HP_QUOTE_MAX, msg, sizeof msg);
        }
        /* Anthropic repeats the request id in the body. */
        const char *rid = cJSON_IsObject(j) ? hp_json_str(j, "request_id") : NULL;
        if (rid != NULL)
            hp_quote(rid, strlen(rid), 100, body_id, sizeof body_id);
        cJSON_Delete(j);
    }
    if (msg[0] == '\0')
        snprintf(msg, sizeof msg, "(the response had no error message)");
    /* Some servers quote the user's message in their error: a credential
     * pasted into the chat must not travel on to stderr, the log and
     * traces with it. */
    char *clean = redact_secrets(msg, strlen(msg), NULL);
    if (clean != NULL) {
        snprintf(msg, sizeof msg, "%s", clean);
        xfree(clean);
    }
    char rid[160] = "";
    const char *id = resp->request_id[0] != '\0' ? resp->request_id : body_id;
    if (id[0] != '\0') {
        char q[128];
        hp_quote(id, strlen(id), 100, q, sizeof q);
        snprintf(rid, sizeof rid, " (request id %s)", q);
    }
    char hint[160] = "";
    if (truncated)
        snprintf(hint, sizeof hint, " (error body cut at %zu bytes)", b->len);
    else if ((resp->status == 401 || resp->status == 403) && call->spec->api_key_origin != NULL) {
        snprintf(hint, sizeof hint, "; check %s", call->spec->api_key_origin);
    } else if ((resp->status == 401 || resp->status == 403) && hp->names.key_var != NULL) {
        if (hp->api_key[0] == '\0')
            snprintf(hint, sizeof hint, "; %s is not set", hp->names.key_var);
        else
            snprintf(hint, sizeof hint, "; check %s", hp->names.key_var);
    } else if (resp->status == 401 || resp->status == 403) {
        snprintf(hint, sizeof hint, "; the server wants credentials");
    } else if (resp->status == 404) {
        snprintf(hint, sizeof hint, "; check %s and MEMCHAT_MODEL", hp->names.url_var);
    }
    snprintf(err, errlen, "%s: HTTP %ld: %s%s%s", hp->names.provider, resp->status, msg, hint, rid);
    return MC_ERR_PROVIDER;
}

/* The message and code of a transfer that produced no usable response. */
static enum mc_error hp_transport_error(const struct hp_call *call, enum http_result hr,
                                        const char *herr, char *err, size_t errlen)
{
    const struct hp *hp = call->hp;
    char hint[256] = "";
    if (hr == HTTP_ERR_CONNECT)
        snprintf(hint, sizeof hint, "; check %s", hp->names.url_var);
    else if (hr == HTTP_ERR_TIMEOUT)
        snprintf(hint, sizeof hint,
                 " (limits: connect MEMCHAT_CONNECT_TIMEOUT_MS=%ld, whole call "
                 "MEMCHAT_TIMEOUT_S=%ld, silence MEMCHAT_STALL_TIMEOUT_S=%ld)",
                 hp->connect_timeout_ms, hp->total_timeout_ms / 1000, hp->stall_timeout_ms / 1000);
    char what[64] = "";
    if (call->res->deltas_sent > 0)
        snprintf(what, sizeof what, " after %zu %s of the reply", call->res->deltas_sent,
                 hp_pieces(call->res->deltas_sent));
    snprintf(err, errlen, "%s: %s%s%s", hp->names.provider,
             herr[0] != '\0' ? herr : http_result_name(hr), what, hint);
    return MC_ERR_NETWORK;
}

/* What the call came to, once http_perform returned. */
static enum mc_error hp_call_outcome(struct hp_call *call, enum http_result hr,
                                     const struct http_response *resp, const char *herr, char *err,
                                     size_t errlen)
{
    struct hp *hp = call->hp;
    struct llm_result *res = call->res;
    const char *prov = hp->names.provider;
    bool cancelled = call->refused || hr == HTTP_ERR_CANCELLED ||
                     (call->cancel != NULL && atomic_load(call->cancel));
    if (cancelled) {
        snprintf(err, errlen, "%s: cancelled after %zu %s of the reply", prov, res->deltas_sent,
                 hp_pieces(res->deltas_sent));
        return MC_ERR_CANCELLED;
    }
    bool ok_status = resp->status >= 200 && resp->status < 300;
    /* A failure a payload reported comes first: a mid-stream error explains
     * why the transfer then ended as it did. */
    if (!call->failed) {
        switch (hr) {
        case HTTP_OK:
        case HTTP_ERR_CANCELLED:
            break;
        case HTTP_ERR_ABORTED:
            if (call->parse_error == SSE_NO_MEM) {
                snprintf(err, errlen, "%s: out of memory reading the response", prov);
                return MC_ERR_OUT_OF_MEMORY;
            }
            if (call->parse_error == SSE_TOO_BIG) {
                snprintf(err, errlen,
                         "%s: response larger than MEMCHAT_MAX_RESPONSE_BYTES (%zu bytes)", prov,
                         hp->max_response_bytes);
                return MC_ERR_PROVIDER;
            }
            snprintf(err, errlen, "%s: the transfer was aborted", prov);
            return MC_ERR_INTERNAL;
        case HTTP_ERR_TOO_BIG:
            snprintf(err, errlen, "%s: response larger than MEMCHAT_MAX_RESPONSE_BYTES (%zu bytes)",
                     prov, hp->max_response_bytes);
            return MC_ERR_PROVIDER;
        case HTTP_ERR_NO_MEMORY:
            snprintf(err, errlen, "%s: out of memory: %s", prov, herr);
            return MC_ERR_OUT_OF_MEMORY;
        case HTTP_ERR_CONNECT:
        case HTTP_ERR_TIMEOUT:
        case HTTP_ERR_TRANSPORT:
            /* A reply that reached its end marker before the connection
             * broke is whole: nothing after the marker matters. */
            if (ok_status && call->spec->framing != HP_FRAMING_WHOLE &&
                call->spec->complete(call->spec->st))
                break;
            res->transport_error = true;
            snprintf(res->transport, sizeof res->transport, "%s", http_result_name(hr));
            return hp_transport_error(call, hr, herr, err, errlen);
        }
        if (!ok_status)
            return hp_http_error(call, resp, err, errlen);
        /* The end of the body: hand over what the framing still holds. */
        if (call->spec->framing == HP_FRAMING_SSE)
            (void)sse_finish(call->sse); /* an unterminated event is dropped (the spec) */
        else if (call->spec->framing == HP_FRAMING_NDJSON)
            (void)ndjson_finish(call->nd);
        else
            (void)call->spec->on_payload(call, call->spec->st, NULL, buf_cstr(&call->whole),
                                         call->whole.len);
    }
    if (call->failed) {
        snprintf(err, errlen, "%s", call->fail_msg);
        return call->fail_code;
    }
    if (call->refused || (call->cancel != NULL && atomic_load(call->cancel))) {
        snprintf(err, errlen, "%s: cancelled after %zu %s of the reply", prov, res->deltas_sent,
                 hp_pieces(res->deltas_sent));
        return MC_ERR_CANCELLED;
    }
    if (!call->spec->complete(call->spec->st)) {
        res->transport_error = true;
        snprintf(res->transport, sizeof res->transport, "incomplete stream");
        snprintf(err, errlen,
                 "%s: the response ended before the reply did (%zu %s received): the "
                 "connection was cut",
                 prov, res->deltas_sent, hp_pieces(res->deltas_sent));
        return MC_ERR_NETWORK;
    }
    /* A character cut by the end of the reply cannot be completed. */
    if (call->tail_len > 0) {
        call->tail_len = 0;
        if (hp_emit(call, "\xef\xbf\xbd", 3) != 0) {
            snprintf(err, errlen, "%s: cancelled after %zu %s of the reply", prov, res->deltas_sent,
                     hp_pieces(res->deltas_sent));
            return MC_ERR_CANCELLED;
        }
    }
    if (hp_tool_finish(hp) != 0) {
        snprintf(err, errlen, "%s: out of memory reading a tool call", prov);
        return MC_ERR_OUT_OF_MEMORY;
    }
    res->tool_calls = hp->n_calls;
    return MC_ERR_NONE;
}

static enum http_result hp_replay_perform(const struct hp_replay *r, const struct http_request *req,
                                          struct http_response *resp);

enum mc_error hp_call_run(struct hp *hp, const struct hp_call_spec *spec, llm_delta_fn on_delta,
                          void *ud, const atomic_bool *cancel, struct llm_result *res, char *err,
                          size_t errlen)
{
    hp_result_init(res);
    hp_calls_clear(hp);

    struct hp_call call = {
        .hp = hp,
        .spec = spec,
        .on_delta = on_delta,
        .ud = ud,
        .cancel = cancel,
        .res = res,
    };
    buf_init(&call.whole, hp->max_response_bytes);
    buf_init(&call.join, hp->max_response_bytes + 8);
    buf_init(&call.fixed, hp->max_response_bytes * 3 + 16);
    if (spec->framing == HP_FRAMING_SSE)
        call.sse = sse_new(hp->max_response_bytes, hp_on_sse, &call);
    else if (spec->framing == HP_FRAMING_NDJSON)
        call.nd = ndjson_new(hp->max_response_bytes, hp_on_line, &call);

    char *url = xasprintf("%s%s", hp->base_url, spec->path);
    const char *accept = spec->framing == HP_FRAMING_SSE      ? "Accept: text/event-stream"
                         : spec->framing == HP_FRAMING_NDJSON ? "Accept: application/x-ndjson"
                                                              : "Accept: application/json";
    size_t n_headers = spec->n_headers + 3;
    const char **headers = xcalloc(n_headers, sizeof *headers);
    for (size_t i = 0; i < spec->n_headers; i++)
        headers[i] = spec->headers[i];
    headers[spec->n_headers] = "Content-Type: application/json";
    headers[spec->n_headers + 1] = accept;
    /* libcurl would otherwise send "Expect: 100-continue" for larger
     * bodies and wait for a go-ahead many servers never send. */
    headers[spec->n_headers + 2] = "Expect:";

    struct http_request hreq = {
        .method = "POST",
        .url = url,
        .headers = headers,
        .n_headers = n_headers,
        .body = spec->body,
        .body_len = spec->body_len,
        .on_body = hp_on_body,
        .ud = &call,
        .connect_timeout_ms = hp->connect_timeout_ms,
        .total_timeout_ms = hp->total_timeout_ms,
        .idle_timeout_ms = hp->stall_timeout_ms,
        .max_response_bytes = hp->max_response_bytes,
    };
    struct http_response resp;
    char herr[512] = "";
    enum http_result hr = hp->replay != NULL
                              ? hp_replay_perform(hp->replay, &hreq, &resp)
                              : http_perform(hp->client, &hreq, cancel, &resp, herr, sizeof herr);

    res->http_status = resp.status;
    if (resp.should_retry == 0 || resp.should_retry == 1)
        res->should_retry = resp.should_retry;
    res->server_delay_ms =
        retry_parse_after(resp.retry_after_ms[0] ? resp.retry_after_ms : NULL,
                          resp.retry_after[0] ? resp.retry_after : NULL, clock_wall_ms());
    hp_quote(resp.request_id, strlen(resp.request_id), sizeof res->request_id - 8, res->request_id,
             sizeof res->request_id);

    enum mc_error rc = hp_call_outcome(&call, hr, &resp, herr, err, errlen);
    if (rc != MC_ERR_NONE) {
        hp_scrub_key(hp->api_key, err);
        if (spec->api_key != NULL)
            hp_scrub_key(spec->api_key, err);
    }

    http_response_free(&resp);
    xfree(headers);
    xfree(url);
    sse_free(call.sse);
    ndjson_free(call.nd);
    buf_free(&call.whole);
    buf_free(&call.join);
    buf_free(&call.fixed);
    return rc;
}

/* --- replay --- */

/* Never contacted: the replayed call makes no transfer. */
#define HP_REPLAY_URL "http://127.0.0.1:9"

struct hp_replay {
    struct llm_provider *p;
    const char *body; /* the run's body and how it is cut */
    size_t len;
    const size_t *cuts;
    size_t n_cuts;
    size_t piece;
    size_t cap_deltas; /* room in out.delta_len */
    struct hp_replay_result out;
};

struct hp_replay *hp_replay_new(const char *provider, size_t max_response_bytes, char *err,
                                size_t errlen)
{
    struct config *cfg = config_new_memchat();
    struct llm_provider *p = NULL;
    if (strcmp(provider, "openai") == 0)
        p = llm_openai_new(cfg, HP_REPLAY_URL, "", err, errlen);
    else if (strcmp(provider, "anthropic") == 0)
        p = llm_anthropic_new(cfg, HP_REPLAY_URL, "replay-key", err, errlen);
    else if (strcmp(provider, "ollama") == 0)
        p = llm_ollama_new(cfg, HP_REPLAY_URL, err, errlen);
    else
        snprintf(err, errlen, "unknown provider \"%s\" (accepted: openai, anthropic, ollama)",
                 provider);
    config_free(cfg);
    if (p == NULL)
        return NULL;
    struct hp *hp = p->impl;
    if (max_response_bytes > 0)
        hp->max_response_bytes = max_response_bytes;
    struct hp_replay *r = xcalloc(1, sizeof *r);
    r->p = p;
    /* A delta may be three times its bytes once invalid ones are replaced. */
    buf_init(&r->out.text, hp->max_response_bytes * 3 + 16);
    return r;
}

void hp_replay_free(struct hp_replay *r)
{
    if (r == NULL)
        return;
    llm_provider_free(r->p);
    buf_free(&r->out.text);
    xfree(r->out.delta_len);
    xfree(r);
}

static int hp_replay_on_delta(void *ud, const char *text, size_t len)
{
    struct hp_replay *r = ud;
    struct hp_replay_result *out = &r->out;
    if (buf_append(&out->text, text, len) != BUF_OK)
        return 1;
    if (out->n_deltas == r->cap_deltas) {
        r->cap_deltas = r->cap_deltas ? r->cap_deltas * 2 : 64;
        out->delta_len = xreallocarray(out->delta_len, r->cap_deltas, sizeof *out->delta_len);
    }
    out->delta_len[out->n_deltas++] = len;
    return 0;
}

/* The end of the piece that starts at `at`. */
static size_t hp_replay_piece_end(const struct hp_replay *r, size_t at, size_t *next_cut)
{
    if (r->n_cuts > 0) {
        while (*next_cut < r->n_cuts && r->cuts[*next_cut] <= at)
            (*next_cut)++;
        return *next_cut < r->n_cuts && r->cuts[*next_cut] < r->len ? r->cuts[*next_cut] : r->len;
    }
    if (r->piece == 0 || r->piece >= r->len - at)
        return r->len;
    return at + r->piece;
}

/* http_perform() for a replayed call: a 200 response whose body goes to
 * req->on_body piece by piece, capped as http.c caps it (the bytes that
 * still fit are handed over, then the transfer stops). */
static enum http_result hp_replay_perform(const struct hp_replay *r, const struct http_request *req,
                                          struct http_response *resp)
{
    memset(resp, 0, sizeof *resp);
    resp->status = 200;
    resp->should_retry = -1;
    resp->http_version = 1;
    snprintf(resp->content_type, sizeof resp->content_type, "application/octet-stream");
    size_t cap = req->max_response_bytes > 0 ? req->max_response_bytes : SIZE_MAX;
    size_t at = 0, next_cut = 0;
    while (at < r->len) {
        size_t end = hp_replay_piece_end(r, at, &next_cut);
        size_t n = end - at;
        if (n > cap - at) {
            size_t fit = cap - at;
            if (fit > 0 && req->on_body(req->ud, r->body + at, fit) != 0)
                return HTTP_ERR_ABORTED;
            return HTTP_ERR_TOO_BIG;
        }
        if (req->on_body(req->ud, r->body + at, n) != 0)
            return HTTP_ERR_ABORTED;
        resp->body_bytes = end;
        at = end;
    }
    return HTTP_OK;
}

const struct hp_replay_result *hp_replay_stream(struct hp_replay *r, const char *body, size_t len,
                                                const size_t *cuts, size_t n_cuts, size_t piece,
                                                bool no_stream)
{
    struct hp *hp = r->p->impl;
    struct hp_replay_result *out = &r->out;
    buf_reset(&out->text);
    out->n_deltas = 0;
    out->err[0] = '\0';
    r->body = body;
    r->len = len;
    r->cuts = cuts;
    r->n_cuts = n_cuts;
    r->piece = piece;
    struct llm_message msg = {.role = "user", .content = "replay"};
    struct llm_request req = {
        .model = "replay",
        .messages = &msg,
        .n_messages = 1,
        .temperature = NAN,
        .no_stream = no_stream,
    };
    hp->replay = r;
    out->rc =
        r->p->chat(r->p, &req, hp_replay_on_delta, r, NULL, &out->res, out->err, sizeof out->err);
    hp->replay = NULL;
    out->calls = llm_provider_tool_calls(r->p, &out->n_calls);
    return out;
}

/* Appends s[0..n) quoted: printable ASCII as is, '"' and '\\' escaped,
 * control bytes as \n \r \t or \xNN, bytes from 0x80 as is when s is valid
 * UTF-8, else as \xNN. */
static enum buf_result hp_replay_quote(struct buf *out, const char *s, size_t n)
{
    bool raw_high = utf8_valid(s, n, NULL);
    enum buf_result r = buf_putc(out, '"');
    for (size_t i = 0; i < n && r == BUF_OK; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            r = buf_printf(out, "\\%c", c);
        else if (c == '\n')
            r = buf_puts(out, "\\n");
        else if (c == '\r')
            r = buf_puts(out, "\\r");
        else if (c == '\t')
            r = buf_puts(out, "\\t");
        else if (c < 0x20 || c == 0x7f || (c >= 0x80 && !raw_high))
            r = buf_printf(out, "\\x%02x", c);
        else
            r = buf_putc(out, (char)c);
    }
    return r == BUF_OK ? buf_putc(out, '"') : r;
}

/* "name \"s\"\n" */
static enum buf_result hp_replay_line(struct buf *out, const char *name, const char *s, size_t n)
{
    enum buf_result r = buf_printf(out, "%s ", name);
    if (r == BUF_OK)
        r = hp_replay_quote(out, s, n);
    return r == BUF_OK ? buf_putc(out, '\n') : r;
}

enum buf_result hp_replay_format(const struct hp_replay_result *res, struct buf *out)
{
    const struct llm_result *lr = &res->res;
    enum buf_result r = buf_printf(out, "rc %s\n", mc_error_code(res->rc));
    if (r == BUF_OK)
        r = hp_replay_line(out, "err", res->err, strlen(res->err));
    size_t off = 0;
    for (size_t i = 0; i < res->n_deltas && r == BUF_OK; i++) {
        r = hp_replay_line(out, "delta", res->text.data + off, res->delta_len[i]);
        off += res->delta_len[i];
    }
    for (size_t i = 0; i < res->n_calls && r == BUF_OK; i++) {
        const struct llm_tool_call *tc = &res->calls[i];
        r = buf_printf(out, "tool %ld id ", tc->index);
        if (r == BUF_OK)
            r = hp_replay_quote(out, tc->id, strlen(tc->id));
        if (r == BUF_OK)
            r = buf_puts(out, " name ");
        if (r == BUF_OK)
            r = hp_replay_quote(out, tc->name, strlen(tc->name));
        if (r == BUF_OK)
            r = buf_puts(out, " args ");
        if (r == BUF_OK)
            r = hp_replay_quote(out, buf_cstr(&tc->arguments), tc->arguments.len);
        if (r == BUF_OK)
            r = buf_printf(out, " %s\n", tc->arguments_valid ? "valid" : "unparsed");
    }
    if (r == BUF_OK)
        r = buf_printf(out, "sent %zu deltas %zu bytes; %zu tool calls\n", lr->deltas_sent,
                       lr->bytes_sent, lr->tool_calls);
    if (r == BUF_OK)
        r = buf_printf(out, "usage prompt %lld completion %lld cached %lld%s\n",
                       lr->usage.prompt_tokens, lr->usage.completion_tokens,
                       lr->usage.cached_tokens, lr->usage.estimated ? " estimated" : "");
    if (r == BUF_OK)
        r = hp_replay_line(out, "finish", lr->finish_reason, strlen(lr->finish_reason));
    if (r == BUF_OK)
        r = buf_printf(out, "skipped %zu\n", lr->skipped);
    if (r == BUF_OK)
        r = buf_printf(out, "transport %s \"%s\"\n", lr->transport_error ? "error" : "ok",
                       lr->transport);
    if (r == BUF_OK)
        r = buf_printf(out, "retry %d\n", lr->should_retry);
    return r;
}
