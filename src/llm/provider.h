/*
 * The model provider interface. A provider turns a request (messages, and
 * the memories recalled for it) into a streamed reply: it calls on_delta for
 * each piece of text as it arrives, checks the turn's cancel flag between
 * pieces, and reports the usage it was billed (or an estimate). Providers:
 * `offline` (offline.c), and the streaming HTTP providers `openai` (also any
 * OpenAI-compatible server: llama.cpp, Ollama's /v1, vLLM), `anthropic` and
 * `ollama` (native /api/chat), built on llm/http_provider.h, whose
 * `interrupt` wakes a transfer blocked in poll so that cancel takes effect
 * at once. A provider makes exactly one request per chat() call and never
 * retries: the turn owns the retry loop and reads llm_result's failure
 * fields. llm_provider_resolve() also implements `auto` (DESIGN.md,
 * embedded defaults).
 */
#ifndef MEMCHAT_LLM_PROVIDER_H
#define MEMCHAT_LLM_PROVIDER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "memchat/error.h"
#include "util/buf.h"

struct config;

struct llm_tool_call;

/* One chat message; role is "system", "user", "assistant" or "tool". The
 * fields after content are zero for plain text messages, so {role,
 * content} initialisers stay valid. */
struct llm_message {
    const char *role;
    const char *content; /* an assistant message with tool calls may have NULL or "" */
    /* assistant: the tool calls it made, in order (sent back as the model
     * gave them: OpenAI's tool_calls, Anthropic's tool_use blocks, Ollama's
     * tool_calls); NULL/0: none. */
    const struct llm_tool_call *tool_calls;
    size_t n_tool_calls;
    /* tool: the result of one call. content is the tool's output (a JSON
     * text) or its error line; tool_call_id and tool_name say which call
     * it answers; tool_error marks a failed call (Anthropic's is_error).
     * Consecutive tool messages answer one assistant message: Anthropic
     * gets them as one user message of tool_result blocks. */
    const char *tool_call_id;
    const char *tool_name;
    bool tool_error;
};

/* A tool the model may call: OpenAI's {"type":"function","function":{name,
 * description, parameters}}, Anthropic's {name, description, input_schema},
 * Ollama's as OpenAI's. Borrowed for the call. */
struct llm_tool_spec {
    const char *name;
    const char *description;
    const char *parameters; /* a JSON Schema object's text */
};

/* What a turn asks a provider. Everything is borrowed for the call. */
struct llm_request {
    const char *model; /* never NULL: the configured model or the default */
    const struct llm_message *messages;
    size_t n_messages;
    /* The texts of the memories recalled for this turn, best first. They are
     * already fenced into the system message for real models; the offline
     * provider, which cannot read, lists them in its answer. NULL/0: none. */
    const char *const *recalled;
    size_t n_recalled;
    /* Cap on the reply; 0 = MEMCHAT_MAX_TOKENS as the provider read it at
     * set-up, and when that is 0 too, the provider's default (none for
     * OpenAI and Ollama, 4096 for Anthropic, which requires one). */
    long long max_tokens;
    /* NAN = MEMCHAT_TEMPERATURE as read at set-up, and when that is unset
     * too, the model's own default (the field is not sent). Note that 0.0
     * is a real temperature: callers that do not choose must pass NAN. */
    double temperature;
    bool no_stream; /* ask for one JSON answer instead of a stream */
    /* The reply must be one JSON value (an agent step's format): the
     * prompt already says so; the offline provider answers with JSON. */
    bool want_json;
    /* The key to send instead of the provider's own (the tenant's key, stage
     * 7); NULL = the provider's. Only for providers whose key_name is set. */
    const char *api_key;
    /* Where api_key came from, for the 401/403 hint ("the key of tenant acme
     * for openai"); NULL = the provider's key variable. Never a key. */
    const char *api_key_origin;
    /* The tools offered (NULL/0: none, and the request has no tools
     * field). With tools_none the model must answer in text now
     * (tool_choice "none" / {"type":"none"}): the tools are still
     * described, so the history's tool calls stay valid, but the turn's
     * last round may not call them. Ollama has no tool_choice: with
     * tools_none it gets no tools. */
    const struct llm_tool_spec *tools;
    size_t n_tools;
    bool tools_none;
};

/* Receives one piece of the reply (len bytes, valid UTF-8, not
 * NUL-terminated). Returns nonzero to stop the stream (the provider then
 * returns MC_ERR_CANCELLED). */
typedef int (*llm_delta_fn)(void *ud, const char *text, size_t len);

/* Tokens of one call; -1 where the provider reported nothing. */
struct llm_usage {
    long long prompt_tokens, completion_tokens, cached_tokens;
    bool estimated; /* true when memchat estimated (tokens.h) */
};

/* How the call went, beyond its return value. */
struct llm_result {
    struct llm_usage usage;
    size_t deltas_sent; /* on_delta calls made, also when cancelled */
    size_t bytes_sent;  /* bytes passed to on_delta */
    size_t skipped;     /* stream payloads that were not JSON: skipped, counted */
    /* On failure, what the retry policy (net/retry.h) needs: */
    long http_status;          /* the response status, 0 when none came */
    bool transport_error;      /* no usable response: connect, timeout, broken */
    char transport[32];        /* http_result_name() of it, "" otherwise */
    int should_retry;          /* x-should-retry: 1, 0, -1 when absent */
    long long server_delay_ms; /* retry_parse_after() of the headers, or -1 */
    char request_id[128];      /* the server's request id, "" when none */
    /* On success, how the reply ended: */
    char finish_reason[32]; /* "stop", "length", "tool_calls", "end_turn", ... or "" */
    size_t tool_calls;      /* tool calls assembled (llm_provider_tool_calls()) */
};

/* One tool call the model asked for, assembled from the stream (OpenAI's
 * fragments joined by index per api-notes.md §1.6, Anthropic's
 * input_json_delta pieces per content block, Ollama's whole calls). Owned by
 * the provider; valid until its next chat() or its free. */
struct llm_tool_call {
    long index;           /* the stream's index (OpenAI) or block (Anthropic) */
    char *id;             /* the call id; "" when the server sent none (Ollama) */
    char *name;           /* the function's name; "" when none came */
    struct buf arguments; /* the arguments' JSON text, as received */
    bool arguments_valid; /* arguments parsed as a JSON object once the reply ended */
};

struct llm_provider;

/* The provider table. Instances come from llm_provider_resolve() (or a test)
 * and are freed with llm_provider_free(). */
struct llm_provider {
    /* "offline", "openai", "anthropic" or "ollama", as in turn.start's
     * "provider" (an auto-detected local server is "openai"). */
    const char *name;
    const char *default_model; /* used when MEMCHAT_MODEL is empty */
    /* What the provider talks to and, for `auto`, why it was chosen, for
     * front ends to say (e.g. "local OpenAI-compatible server at
     * http://127.0.0.1:11434/v1", "OPENAI_API_KEY is set"); never holds a
     * key. Owned by the table (llm_provider_free frees it); NULL: nothing. */
    char *detail;
    /* The keystore provider whose tenant keys may be sent to this instance
     * ("openai", "anthropic"): set only when the instance talks to the base
     * URL configured for that provider, so a tenant's key never goes to an
     * auto-detected local server. NULL: tenant keys do not apply. */
    const char *key_name;
    /* True when a call without any key cannot succeed (anthropic): its
     * chat() then fails with MC_ERR_CONFIG before sending, naming both
     * places a key can come from. Informational for front ends. */
    bool needs_key;
    /* The reply only restates the request (the offline provider): memory
     * stores the user's message of an exchange, not the reply. */
    bool reply_is_echo;
    long long context_window; /* tokens the model reads, prompt and reply */
    long long reply_reserve;  /* tokens of the window kept for the reply */
    void *impl;               /* the provider's own state */

    /* Streams the reply to req through on_delta(ud, ...). *cancel is the
     * turn's flag, set from another thread; the provider checks it between
     * pieces and returns MC_ERR_CANCELLED once it is set. res is always
     * filled (usage -1 when unknown). MC_ERR_NONE on success; otherwise an
     * error code with a message naming what failed in err. Called from one
     * thread at a time. */
    enum mc_error (*chat)(const struct llm_provider *p, const struct llm_request *req,
                          llm_delta_fn on_delta, void *ud, const atomic_bool *cancel,
                          struct llm_result *res, char *err, size_t errlen);
    /* Optional: wakes a chat() blocked waiting for input so that it sees the
     * cancel flag now. Called from any thread, after the flag is set, also
     * when no chat() runs. NULL when chat() never blocks. */
    void (*interrupt)(const struct llm_provider *p);
    /* Optional: the tool calls of the last chat() (*n of them), valid until
     * the next chat() or free; NULL when the provider has no tool calls. */
    const struct llm_tool_call *(*tool_calls)(const struct llm_provider *p, size_t *n);
    /* Optional: frees impl. The table itself is freed by llm_provider_free. */
    void (*free_impl)(struct llm_provider *p);
};

/* Milliseconds `auto` waits for a local server's GET {base}/models (connect
 * and whole answer) before trying the next one. */
#define LLM_AUTO_PROBE_MS 100

/* The provider called name: "offline", "openai", "anthropic", "ollama", or
 * "auto" for the best one available: OPENAI_API_KEY set -> openai; else
 * ANTHROPIC_API_KEY -> anthropic; else the first local OpenAI-compatible
 * server whose GET {base}/models answers within LLM_AUTO_PROBE_MS, tried at
 * MEMCHAT_LOCAL_BASE_URL when set, else http://127.0.0.1:11434/v1 then
 * http://127.0.0.1:8080/v1 -> openai at that URL with no key, its default
 * model the first id the server listed; else offline. p->detail says what
 * was chosen. NULL with a message in err naming the setting to fix (never a
 * key's value) when the name is unknown or the provider cannot be set up
 * (a bad *_BASE_URL, a temperature Anthropic refuses): a configuration error (exit 2). Free with
 * llm_provider_free(). */
struct llm_provider *llm_provider_resolve(const char *name, const struct config *cfg, char *err,
                                          size_t errlen);
/* The i-th name llm_provider_resolve accepts ("auto", "offline", ...), or
 * NULL past the last: for validation and completion in front ends. */
const char *llm_provider_name_at(size_t i);
/* True when name is one of them; else false with "unknown provider
 * \"NAME\" (accepted: auto, offline, ...)" in err. */
bool llm_provider_known(const char *name, char *err, size_t errlen);
/* A new offline provider: answers from the request alone, never blocks,
 * never sleeps, price 0 (DESIGN.md, embedded defaults). */
struct llm_provider *llm_offline_new(void);

/* The HTTP providers. base_url and api_key override the configuration's
 * OPENAI_BASE_URL / OPENAI_API_KEY (ANTHROPIC_*, OLLAMA_BASE_URL) when not
 * NULL; "" as a key means none. cfg supplies the model settings
 * (MEMCHAT_TEMPERATURE, MEMCHAT_MAX_TOKENS) and the transfer limits
 * (MEMCHAT_CONNECT_TIMEOUT_MS, MEMCHAT_TIMEOUT_S, MEMCHAT_STALL_TIMEOUT_S,
 * MEMCHAT_MAX_RESPONSE_BYTES); it is read once, here. Each provider owns
 * one HTTP client whose connections stay alive across calls. NULL with a
 * message naming the variable when a base URL is not http:// or https://,
 * when libcurl cannot be set up, or (anthropic) when the key is missing or
 * MEMCHAT_TEMPERATURE is above 1. Free with llm_provider_free(). */
/* openai: POST {base}/chat/completions, "Authorization: Bearer KEY" only
 * when a key is set (local servers need none). The reply cap is sent as
 * max_completion_tokens to api.openai.com and as max_tokens elsewhere,
 * because llama.cpp, Ollama's /v1 and older vLLM know only max_tokens.
 * Context window: 128000 tokens at api.openai.com, 8192 elsewhere (assumed
 * a local model). */
struct llm_provider *llm_openai_new(const struct config *cfg, const char *base_url,
                                    const char *api_key, char *err, size_t errlen);
/* anthropic: POST {base}/v1/messages with x-api-key and anthropic-version
 * 2023-06-01. A key is required at call time: with none configured the
 * provider is still made (tenants may bring their own keys, see
 * needs_key) and a call without a key fails with MC_ERR_CONFIG. Context
 * window 200000 tokens. */
struct llm_provider *llm_anthropic_new(const struct config *cfg, const char *base_url,
                                       const char *api_key, char *err, size_t errlen);
/* ollama: POST {base}/api/chat (native NDJSON stream), no key. Context
 * window 8192 tokens (set num_ctx in a Modelfile for more). */
struct llm_provider *llm_ollama_new(const struct config *cfg, const char *base_url, char *err,
                                    size_t errlen);
/* The tool calls of p's last chat() (*n of them); NULL and *n = 0 when none
 * or when p has none. Owned by p, valid until its next chat() or free. */
const struct llm_tool_call *llm_provider_tool_calls(const struct llm_provider *p, size_t *n);
/* Frees p and its state; NULL is a no-op. */
void llm_provider_free(struct llm_provider *p);

#endif
