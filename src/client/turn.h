/*
 * The pipeline of one turn (DESIGN.md, "The pipeline of one turn"):
 * rollout (is memory on?), retrieve (the tenant's memories most relevant
 * to the message), inject (the agent's prompt with the recalled notes
 * fenced as data, the history the turn carries, the user's message),
 * minify, cache, rate limits and budgets, key, send (streamed deltas),
 * usage and cost, then turn.done and, in one transaction, the metrics and
 * ledger rows, the exchange appended to its conversation and, with memory
 * on, the exchange queued in pending_memories for the background worker to
 * store. Every stage is timed; stages that did not run are null in
 * turn.done.
 */
#ifndef MEMCHAT_CLIENT_TURN_H
#define MEMCHAT_CLIENT_TURN_H

#include <stdatomic.h>
#include <stdbool.h>

#include "client/cache.h"
#include "client/conversation.h"
#include "client/emit.h"
#include "client/tooluse.h"
#include "llm/provider.h"
#include "memchat/engine.h"
#include "memchat/error.h"
#include "util/ident.h"

struct config;
struct db;
struct prices;
struct ratelimit;
struct budget;
struct keys;
struct cJSON;
struct memory_manager;

/* The conversation the session's in-memory history (turn_env.conv)
 * mirrors: its id ("" before its first completed turn creates it) and
 * whose it is. Kept by the engine across turns. */
struct turn_conv {
    char id[MC_UUID_STRLEN + 1];
    char tenant[IDENT_MAX + 1];
    char user[IDENT_MAX + 1];
};

/* What the turn worker lends every turn. */
struct turn_env {
    const struct config *cfg;
    const struct llm_provider *provider;
    const char *model;             /* the configured model, or the provider's default */
    struct conversation *conv;     /* the messages of conv_state's conversation */
    struct turn_conv *conv_state;  /* which conversation conv holds; NULL: none is kept
                                     (pipeline tests: nothing persisted) */
    struct memory_manager *memory; /* the turn worker's manager; NULL: no memory store */
    const atomic_bool *cancel;     /* set from any thread to cancel this turn */
    struct db *db;                 /* the turn worker's connection: metrics and ledger rows;
                                     NULL in pipeline tests (nothing recorded) */
    const struct prices *prices;   /* the price table (llm/prices.h); NULL: no prices */
    struct cache *cache;           /* the response cache (client/cache.h); NULL: none */
    enum cache_policy cache_policy;
    struct ratelimit *ratelimit; /* client/ratelimit.h; NULL: no rate limits */
    struct budget *budget;       /* client/budget.h; NULL: no budgets */
    struct keys *keys;           /* client/keys.h: tenants' own keys; NULL: global keys only */
    /* The Opik project of the turn's trace record; NULL: no trace record
     * is built (client/trace.h). */
    const char *trace_project;
    /* Waits ms before a retry; returns false when the turn was cancelled
     * meanwhile (the engine wakes it at once). NULL: retry without waiting
     * (tests of the pipeline). */
    bool (*backoff)(void *ud, long long ms);
    void *backoff_ud;
    /* Stage 9: the tool registry (client_turn_tools_register() has added
     * memory_search to it); NULL: no tools are offered. */
    struct tool_registry *tools;
    /* Asks the user about a call of a tool that is not read-only, after
     * the tool.confirm event: 1 yes, 0 no, -1 the turn was cancelled.
     * NULL: such calls are refused. */
    int (*confirm)(void *ud, const char *call_id, const char *name);
    void *confirm_ud;
    /* A tool's credentials for the turn's tenant (client/tooluse.h);
     * NULL: tools that need credentials fail. */
    int (*tool_credentials)(void *ud, const char *tenant, const struct tool_def *t,
                            struct tooluse_creds *out, char *err, size_t errlen);
    void *tool_credentials_ud;
};

/* Whose memories a turn recalls: MEMORY_SCOPE's choice, or an agent's. */
enum turn_scope { TURN_SCOPE_DEFAULT, TURN_SCOPE_TENANT, TURN_SCOPE_USER, TURN_SCOPE_AGENT };

/* One turn as submitted, already validated (ids, UTF-8, size). */
struct turn_input {
    const char *turn; /* UUIDv7 */
    const char *tenant, *user, *agent;
    const char *text;
    enum mc_memory_override memory;
    bool continue_conversation; /* chat: continue the session's conversation */
    const char *conversation;   /* continue this stored conversation; NULL: see below */
    bool continue_latest;       /* continue the tenant's and user's latest one */
    /* The agent's profile (agents/agent.h), zero for the configuration's
     * defaults. */
    const char *system_prompt; /* NULL: client_turn_agent_prompt(agent) */
    bool agent_memory_off;     /* the agent says memory: false (rollout rule 2) */
    int k;                     /* memories recalled; 0: MEMORY_RETRIEVAL_K */
    enum turn_scope scope;     /* whose memories */
    bool has_temperature;      /* temperature overrides MEMCHAT_TEMPERATURE */
    double temperature;
    long long max_tokens;     /* 0: MEMCHAT_MAX_TOKENS */
    bool want_json;           /* the reply must be one JSON value (a step's format) */
    bool keep_reply;          /* fill turn_outcome.reply (agent runs, compare) */
    const char *const *tools; /* the tools the agent allows (names); NULL/0: none */
    size_t n_tools;
    const struct turn_step *step; /* NULL outside a multi-step run */
};

/* How a turn ended. */
enum turn_status {
    TURN_OK,
    TURN_FAILED,    /* an error event was sent */
    TURN_CANCELLED, /* a turn.cancelled event was sent */
};

/* What the engine's store stage needs to know about a finished turn. */
struct turn_outcome {
    bool memory; /* memory was on for this turn */
    enum turn_status status;
    enum mc_error error; /* MC_ERR_NONE unless status is TURN_FAILED */
    /* The figures of the turn's metrics row, which the engine writes once
     * the store stage has run (store/metrics.h). */
    int64_t started_ms;                     /* wall clock, Unix ms */
    double latency_ms[MC_STAGE__COUNT];     /* -1 for stages not run */
    double stage_start_ms[MC_STAGE__COUNT]; /* offset from the start; -1 for stages not run */
    struct llm_usage usage;
    double cost_usd;              /* -1 when the model has no price; 0 when nothing was billed */
    int retries;                  /* retries the send stage made */
    long long minify_bytes_saved; /* bytes JSON minification took out of the request */
    bool cache_hit;               /* answered from the response cache */
    char status_text[64];         /* "ok", "error:<code>" or "cancelled" */
    const char *key_source;       /* keys_source_name() of stage 7; "none" when it did not run */
    /* The turn's trace record (client/trace.h) when env->trace_project is
     * set, else NULL; the caller owns it (cJSON_Delete). */
    struct cJSON *trace;
    /* The exchange was queued in pending_memories (memory on, turn
     * complete): the store stage stores it. */
    bool pending;
    /* Why nothing is queued for storing when memory was on, for the store
     * stage's memory.skipped (e.g. "turn_failed"); NULL when pending. */
    const char *store_skip;
    char conversation[MC_UUID_STRLEN + 1]; /* the turn's conversation; "" when none */
    /* The reply of a completed turn when keep_reply or want_json was set
     * (for want_json, the JSON minified); NULL otherwise. Owned: xfree. */
    char *reply;
    const char *rollout; /* the rule that decided memory (static) */
    long long recalled;  /* memories injected; -1 when memory was off */
    double relevance;    /* their mean similarity to the message; NAN when none */
};

/* Runs one turn, writing its events through em (turn.start first, exactly
 * one turn.done last), writing its metrics and ledger rows through env->db
 * in one transaction before turn.done, filling out with its figures, and,
 * when it completes with continue_conversation set, appending the exchange
 * to env->conv. A turn whose cancel flag is already set sends turn.start,
 * turn.cancelled {partial: false} and turn.done. Fills *out. */
void client_turn_run(const struct turn_env *env, const struct turn_input *in, const struct emit *em,
                     struct turn_outcome *out);

/* The system prompt of agent (a built-in prompt for "assistant", a generic
 * one naming any other agent). Caller frees with xfree. */
char *client_turn_agent_prompt(const char *agent);

/* Registers the built-in tools that need the client (memory_search:
 * the turn's tenant's memories, with its user scope) with r. 0, or -1
 * with err set. */
int client_turn_tools_register(struct tool_registry *r, char *err, size_t errlen);

#endif
