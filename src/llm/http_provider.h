/*
 * The machinery the three HTTP providers (openai.c, anthropic.c, ollama.c)
 * share, so that none of it is written three times: the provider's state
 * (an http_client kept alive across calls, the validated base URL, the key,
 * the limits read from the configuration), one chat() call run as exactly
 * one HTTP request whose body feeds an SSE or NDJSON parser (or is kept
 * whole for a non-streaming answer), the payload handler each provider
 * supplies, text deltas delivered safely (valid UTF-8, never after cancel,
 * counted), tool calls assembled, and every failure turned into one clear
 * message plus llm_result's failure fields for the turn's retry policy.
 * For tests and fuzzers, hp_replay_stream() runs a provider's call over
 * response bytes in memory, cut into pieces at will, instead of a transfer.
 *
 * Secrets: the key lives only in the provider's state and in the header
 * lines of a call; no message, log line or event built here ever holds a
 * key or a header value.
 */
#ifndef MEMCHAT_LLM_HTTP_PROVIDER_H
#define MEMCHAT_LLM_HTTP_PROVIDER_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "llm/provider.h"
#include "util/alloc.h"

struct config;
struct http_client;
struct cJSON;
struct hp_replay;

/* At most this many tool calls are kept from one reply; more are counted
 * as skipped payloads. */
#define HP_TOOL_CALLS_MAX 128
/* Bytes of a server's error message quoted in ours. */
#define HP_QUOTE_MAX 200

/* What identifies a provider in messages. */
struct hp_names {
    const char *provider; /* "openai": the provider's name, first word of messages */
    const char *url_var;  /* "OPENAI_BASE_URL" */
    const char *key_var;  /* "OPENAI_API_KEY", or NULL when the provider takes no key */
};

/* A provider's shared state: its llm_provider's impl. */
struct hp {
    struct hp_names names;
    char *base_url; /* validated, without trailing '/' */
    char *api_key;  /* "" when none; never in a message */
    struct http_client *client;
    long connect_timeout_ms;     /* MEMCHAT_CONNECT_TIMEOUT_MS */
    long total_timeout_ms;       /* MEMCHAT_TIMEOUT_S, in ms */
    long stall_timeout_ms;       /* MEMCHAT_STALL_TIMEOUT_S: silence that ends a call */
    size_t max_response_bytes;   /* MEMCHAT_MAX_RESPONSE_BYTES */
    double temperature;          /* MEMCHAT_TEMPERATURE; NAN when unset */
    long long max_tokens;        /* MEMCHAT_MAX_TOKENS; 0 = the provider's default */
    char *default_model;         /* owned; the table's default_model points here */
    struct llm_tool_call *calls; /* the last chat()'s tool calls */
    size_t n_calls, cap_calls;
    /* Set only while hp_replay_stream() runs: the call's response body
     * comes from memory instead of a transfer. */
    struct hp_replay *replay;
};

/* 0 when url starts with http:// or https:// (any case) and names a host;
 * -1 with a message naming var and what is accepted otherwise. The message
 * shows only the URL's scheme, so credentials in a URL never leak. */
int hp_check_base_url(const char *var, const char *url, char *err, size_t errlen);

/* A new state for a provider: base_url checked with hp_check_base_url()
 * (trailing '/' removed), api_key copied (NULL = ""), the limits and model
 * settings read from cfg, an http_client made. NULL with a message in err.
 * Free with hp_free(). */
struct hp *hp_new(const struct hp_names *names, const struct config *cfg, const char *base_url,
                  const char *api_key, char *err, size_t errlen);
/* Frees the state, its client and its tool calls; NULL is a no-op. */
void hp_free(struct hp *hp);

/* A new provider table around hp (which it owns from now on): chat is the
 * provider's own, interrupt wakes hp's client, tool_calls and free_impl are
 * the shared ones; default_model is hp->default_model. Never NULL. */
struct llm_provider *hp_provider_new(struct hp *hp, const char *name,
                                     enum mc_error (*chat)(const struct llm_provider *,
                                                           const struct llm_request *, llm_delta_fn,
                                                           void *, const atomic_bool *,
                                                           struct llm_result *, char *, size_t));

/* True when the base URL's host is host (any case), e.g. "api.openai.com". */
bool hp_base_host_is(const struct hp *hp, const char *host);
/* url without the user:password@ part, for messages and details; caller
 * frees with xfree. */
char *hp_url_redacted(const char *url);
/* "Name: value" (caller frees with hp_header_free, which wipes it first:
 * header values may be keys). */
char *hp_header(const char *name, const char *value);
void hp_header_free(char *header);
/* The key a call for req sends: the request's (a tenant's key) when set,
 * else the provider's own; "" when none. */
const char *hp_key(const struct hp *hp, const struct llm_request *req);

/* res as a call starts: zeroed, usage -1, should_retry and server_delay_ms
 * -1. For providers that fail before hp_call_run(). */
void hp_result_init(struct llm_result *res);

/* Sets p's context window and the part of it kept for the reply:
 * MEMCHAT_MAX_TOKENS when set and below half the window, else 4096 tokens
 * for windows of 32k and more, 1024 for smaller ones. */
void hp_provider_window(struct llm_provider *p, const struct hp *hp, long long window);

/* The request's effective settings: req's value, else the configuration's. */
double hp_temperature(const struct hp *hp, const struct llm_request *req);
long long hp_max_tokens(const struct hp *hp, const struct llm_request *req);

/* How the response body is cut into payloads. */
enum hp_framing {
    HP_FRAMING_SSE,    /* text/event-stream: one payload per event */
    HP_FRAMING_NDJSON, /* one payload per line */
    HP_FRAMING_WHOLE,  /* one payload: the whole body, after it ended */
};

struct hp_call;

/* Handles one payload: an SSE event (event is its event: field, "" when
 * none), an NDJSON line or the whole body (event NULL); data is
 * NUL-terminated, valid during the call. Returns 0 to go on; nonzero stops
 * the transfer (after hp_call_fail() or a refused delivery). */
typedef int (*hp_payload_fn)(struct hp_call *call, void *st, const char *event, const char *data,
                             size_t len);
/* After a 2xx body ended: whether the reply reached its end (OpenAI's
 * [DONE] or a finish_reason, Anthropic's message_stop, Ollama's done:true,
 * a parsed whole body). A body that ends early is a transport failure
 * ("incomplete stream"): the connection dropped in a way libcurl saw as a
 * clean end. */
typedef bool (*hp_complete_fn)(void *st);

/* One chat() call as the provider describes it. */
struct hp_call_spec {
    const char *path; /* appended to the base URL, e.g. "/chat/completions" */
    /* "Name: value" lines besides Content-Type and Accept (which the call
     * adds): auth and version headers. May hold the key: never logged. */
    const char *const *headers;
    size_t n_headers;
    const char *body; /* the JSON request body */
    size_t body_len;
    enum hp_framing framing;
    hp_payload_fn on_payload;
    hp_complete_fn complete;
    void *st; /* the provider's parse state, passed to both */
    /* The key this call sends (hp_key()), scrubbed from messages; and where
     * it came from for the 401/403 hint (NULL: names.key_var). */
    const char *api_key;
    const char *api_key_origin;
};

/* Runs the call: one POST to base_url + spec->path; fills res (zeroed
 * first; usage -1 until the handler sets it; should_retry and
 * server_delay_ms -1 when absent) and returns MC_ERR_NONE, or an error
 * with "<provider>: ..." in err: MC_ERR_PROVIDER for an HTTP error status
 * (with the server's own message and request id; 401/403 name the key
 * variable), an error payload, a response over MEMCHAT_MAX_RESPONSE_BYTES;
 * MC_ERR_NETWORK for connect, timeout, broken or incomplete transfers
 * (res->transport_error set); MC_ERR_CANCELLED when *cancel was set or
 * on_delta refused a piece; MC_ERR_OUT_OF_MEMORY. hp's tool calls are
 * reset first and hold this call's afterwards. */
enum mc_error hp_call_run(struct hp *hp, const struct hp_call_spec *spec, llm_delta_fn on_delta,
                          void *ud, const atomic_bool *cancel, struct llm_result *res, char *err,
                          size_t errlen);

/* For payload handlers. */

/* Passes text[0..len) to on_delta as valid UTF-8: a sequence cut at the end
 * is held back and joined with the next piece (a leftover at the end of the
 * reply becomes U+FFFD), invalid bytes become U+FFFD, U+FFFD itself passes
 * as is. Never calls on_delta once *cancel is set. 0, or nonzero when the
 * transfer must stop (cancelled or refused). */
int hp_deliver(struct hp_call *call, const char *text, size_t len);
/* Records the call's failure (the first one wins): code and a message
 * "<provider>: " + fmt. should_retry overrides res->should_retry unless -1.
 * Returns 1, for handlers to return. */
int hp_call_fail(struct hp_call *call, enum mc_error code, int should_retry, const char *fmt, ...)
    MC_PRINTF(4, 5);
/* The should_retry for an error payload of this type that arrived with
 * HTTP 200: 1 (retry) when it is a server-side type (server_error,
 * api_error, overloaded_error, timeout_error) and no delta was shown yet,
 * else -1 (no opinion: the status rule then says no, as 200 is not an
 * error status). */
int hp_stream_error_retry(const struct hp_call *call, const char *type);
/* Counts a payload that was not what the protocol promises (not JSON, not
 * an object): skipped, never fatal. */
void hp_skip(struct hp_call *call);
/* The result being filled (usage, finish_reason). */
struct llm_result *hp_result(struct hp_call *call);
/* The whole body of a non-streaming answer parsed as a JSON object, or
 * NULL after recording the failure (MC_ERR_PROVIDER quoting the body's
 * start). Free with cJSON_Delete. */
struct cJSON *hp_parse_whole(struct hp_call *call, const char *data, size_t len);
/* A streamed payload parsed as a JSON object, or NULL after counting it
 * with hp_skip(). Free with cJSON_Delete. */
struct cJSON *hp_parse_payload(struct hp_call *call, const char *data, size_t len);
/* A provider's handler of one parsed object: whole for the answer of a
 * non-streamed call. Returns nonzero to stop. */
typedef int (*hp_object_fn)(struct hp_call *call, void *st, const struct cJSON *j, bool whole);
/* Parses data as one JSON object (hp_parse_whole when whole, else
 * hp_parse_payload), hands it to fn and frees it. fn's result; when data is
 * not an object, 1 for a whole answer (the call has failed) and 0 for a
 * stream payload (skipped and counted). */
int hp_dispatch_object(struct hp_call *call, const char *data, size_t len, bool whole,
                       hp_object_fn fn, void *st);
/* Deltas delivered so far. */
size_t hp_deltas(const struct hp_call *call);
/* The tool call with this index, created on first use (id and name ""):
 * NULL when HP_TOOL_CALLS_MAX are already kept. */
struct llm_tool_call *hp_tool_call(struct hp_call *call, long index);
/* Appends to a tool call's arguments; false when they outgrew the response
 * cap (the call then fails). */
bool hp_tool_append(struct hp_call *call, struct llm_tool_call *tc, const char *s, size_t n);
/* Sets *field (a tool call's id or name) to s unless already set. */
void hp_tool_set(char **field, const char *s);

/* JSON helpers for request bodies. They record an allocation failure in
 * *ok (which stays true otherwise). */

/* How hp_json_messages writes the messages of function calling; plain
 * messages are {role, content} (a NULL content as "") in both. */
enum hp_msg_style {
    /* OpenAI (api-notes.md §1.3): an assistant message's tool_calls as
     * [{id, type "function", function {name, arguments: the text as a
     * JSON string}}] with content null when it has no text; a tool
     * message {role "tool", tool_call_id, content}. */
    HP_MSG_OPENAI,
    /* Ollama (§3.1): tool_calls as [{function {name, arguments: an
     * object}}]; a tool message {role "tool", content, tool_name}. */
    HP_MSG_OLLAMA,
};

/* The "messages" array of req in the given style. */
struct cJSON *hp_json_messages(const struct llm_request *req, enum hp_msg_style style, bool *ok);
/* The text as a JSON object (a new node), or NULL when it is not one or
 * memory ran out (then *ok becomes false). */
struct cJSON *hp_json_parse_object(const char *text, size_t len, bool *ok);
/* A tool's parameter schema (spec->parameters) as a new JSON node; a
 * missing or malformed schema becomes {"type":"object","properties":{}},
 * which every API accepts (the registry checks schemas when it loads
 * them, so this is only a guard). */
struct cJSON *hp_json_schema(const struct llm_tool_spec *spec, bool *ok);
/* A tool call's arguments as a new JSON object, for the APIs that want an
 * object back (Anthropic's input, Ollama's arguments): {} when the model's
 * text was not a JSON object (the call then failed in the tool runner,
 * and the API would refuse anything else). */
struct cJSON *hp_json_arguments(const struct llm_tool_call *tc, bool *ok);
/* Adds "tools": [{"type":"function","function":{name, description,
 * parameters}}] of req (OpenAI's shape, also Ollama's) to obj when req
 * offers tools. */
void hp_json_add_tools(struct cJSON *obj, const struct llm_request *req, bool *ok);
void hp_json_add_string(struct cJSON *obj, const char *name, const char *value, bool *ok);
void hp_json_add_number(struct cJSON *obj, const char *name, double value, bool *ok);
void hp_json_add_bool(struct cJSON *obj, const char *name, bool value, bool *ok);
/* Adds item (taken) to obj; a NULL item marks *ok false. */
void hp_json_add_item(struct cJSON *obj, const char *name, struct cJSON *item, bool *ok);
/* The unformatted text of obj (free with hp_json_free_text), or NULL. */
char *hp_json_print(const struct cJSON *obj);
void hp_json_free_text(char *text);

/* Lookups in parsed payloads: the member's value when it has the type,
 * else NULL / the fallback. */
const char *hp_json_str(const struct cJSON *obj, const char *name);
long long hp_json_int(const struct cJSON *obj, const char *name, long long fallback);
const struct cJSON *hp_json_obj(const struct cJSON *obj, const char *name);
const struct cJSON *hp_json_arr(const struct cJSON *obj, const char *name);

/* The message of an error object in any provider's shape: {"error":
 * {"type","message"}} (OpenAI, Anthropic inside {"type":"error"}), {"error":
 * "text"} (Ollama), written as "type: message" or "message" into out,
 * sanitised (one line, valid UTF-8, no control characters) and bounded;
 * the error's type alone (sanitised, "" when none) into type. false when
 * obj holds no error. */
bool hp_error_message(const struct cJSON *obj, char *out, size_t outlen, char *type,
                      size_t typelen);
/* s[0..n) as it may be quoted in a message: valid UTF-8, control
 * characters and escape sequences removed, whitespace runs one space, at
 * most max bytes (+ "..."). Written into out. */
void hp_quote(const char *s, size_t n, size_t max, char *out, size_t outlen);

/* --- replay: a response body from memory (tests and fuzzers) ---
 * The provider's own stream handling (its chat(), hp_call_run(), the SSE or
 * NDJSON parser, the payload handler) runs over bytes in memory handed over
 * in pieces, as libcurl hands them over, instead of a transfer: the status
 * is 200 and the body ends cleanly after its last byte. */

/* What one replayed call came to. */
struct hp_replay_result {
    enum mc_error rc;
    char err[1024];        /* the call's message; "" on success */
    struct llm_result res; /* as chat() filled it */
    struct buf text;       /* the deltas joined */
    size_t *delta_len;     /* the length of each delta in text */
    size_t n_deltas;
    const struct llm_tool_call *calls; /* the provider's tool calls, also on failure */
    size_t n_calls;
};

/* A replay context for provider "openai", "anthropic" or "ollama" whose
 * response cap (MEMCHAT_MAX_RESPONSE_BYTES) is max_response_bytes (0: the
 * variable's default). Call mc_global_init() first. NULL with a message for
 * an unknown provider. Free with hp_replay_free(). */
struct hp_replay *hp_replay_new(const char *provider, size_t max_response_bytes, char *err,
                                size_t errlen);
/* NULL is a no-op. */
void hp_replay_free(struct hp_replay *r);
/* Runs one chat() of r's provider (the whole-answer path when no_stream)
 * whose response body is body[0..len), handed to the call's body handler in
 * pieces: cut at the ascending offsets cuts[0..n_cuts) (others ignored), or
 * when n_cuts is 0 in pieces of `piece` bytes (0: one piece); bytes past the
 * cap are refused as the transport refuses them. Never NULL; the result is
 * r's, valid until its next run or free. */
const struct hp_replay_result *hp_replay_stream(struct hp_replay *r, const char *body, size_t len,
                                                const size_t *cuts, size_t n_cuts, size_t piece,
                                                bool no_stream);
/* Appends res as canonical text to out: one line each for the code, the
 * message, every delta, every tool call (index, id, name, arguments,
 * whether they parsed), the usage, the finish reason, the skipped payloads,
 * the transport failure and the retry verdict; strings quoted with C-style
 * escapes. Equal results give equal texts (for golden files and for
 * comparing replays). */
enum buf_result hp_replay_format(const struct hp_replay_result *res, struct buf *out);

#endif
