/*
 * The memchat engine: the only place that starts threads. Front ends create
 * one engine, submit jobs, poll its wake-up descriptor and drain its events;
 * they never call the client directly (DESIGN.md, Threads). The engine owns a
 * turn worker (turns, one at a time, in submission order) and a background
 * worker (memory stores, trace export), each with its own data-file connection.
 */
#ifndef MEMCHAT_ENGINE_H
#define MEMCHAT_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"

struct config;
struct mc_engine;

/* Memory for one turn as decided by the session: the strongest rollout rule. */
enum mc_memory_override {
    MC_MEMORY_DEFAULT = 0, /* let the lower rules decide */
    MC_MEMORY_OFF,         /* --no-memory, /memory off */
    MC_MEMORY_ON,          /* /memory on */
};

/* One turn to run. Strings are copied by mc_engine_submit_turn(). NULL
 * tenant/user/agent mean the configured defaults. */
struct mc_turn_request {
    const char *tenant;
    const char *user;
    const char *agent;
    const char *text; /* the user's message, valid UTF-8 */
    enum mc_memory_override memory;
    bool continue_conversation; /* chat: carry the session's history */
    /* The persisted conversation the turn belongs to (DESIGN.md): an id
     * (`ask --conversation ID`; an unknown id fails the turn with
     * MC_ERR_USAGE), or continue_latest (`ask --continue`: the tenant's and
     * user's most recent one, a new one when they have none); neither: a
     * new conversation. Chat sessions keep theirs across turns. */
    const char *conversation;
    bool continue_latest;
    /* The provider and model for this turn (the TUI's /provider, /model);
     * NULL: the agent's own, else the configured ones. A model given
     * without a provider is for whichever provider answers. */
    const char *provider;
    const char *model;
};

/* What a memory job does (`memchat memory …`, `conversations`, `purge`). */
enum mc_memory_op {
    MC_MEM_ADD,     /* text (chunked when long), user, agent, metadata */
    MC_MEM_SEARCH,  /* text is the query; user, k, method, filter */
    MC_MEM_FORGET,  /* id, or filter */
    MC_MEM_STATS,   /* tenant, or NULL for every namespace */
    MC_MEM_EXPORT,  /* filter; items carry vectors */
    MC_MEM_IMPORT,  /* lines: one JSON object each, all in one transaction */
    MC_MEM_HISTORY, /* k rows (0: all), newest first */
    MC_CONV_LIST,   /* user (NULL: all users of the tenant), k (0: all) */
    MC_CONV_REMOVE, /* id */
    MC_PURGE,       /* the tenant's (or user's) memories, conversations,
                       history, pending stores, traces and cache entries */
    MC_MEM_INDEX,   /* brings the tenant's vector index up to date (rebuild:
                       from the rows), with progress events; one item */
    MC_MEM_MIGRATE, /* copies the tenant's memories from store `from` to
                       store `to`, resumable, with progress; one item */
    MC_MEM_REEMBED, /* rebuilds the tenant's namespace with the configured
                       embedder, resumable, with progress; one item */
};

/* One memory job. Strings are copied by mc_engine_submit_memory(). */
struct mc_memory_job {
    enum mc_memory_op op;
    const char *tenant;       /* required except for MC_MEM_STATS */
    const char *user;         /* see the ops; NULL: the configured user where one is needed */
    const char *agent;        /* MC_MEM_ADD; NULL: the configured agent */
    const char *text;         /* MC_MEM_ADD: the memory; MC_MEM_SEARCH: the query */
    const char *metadata;     /* MC_MEM_ADD: a JSON object, or NULL */
    const char *filter;       /* SEARCH, FORGET, EXPORT: JSON filter, or NULL */
    const char *id;           /* FORGET: a memory id; CONV_REMOVE: a conversation id */
    const char *method;       /* SEARCH: similarity|mmr|hybrid; NULL: MEMORY_RETRIEVAL_METHOD */
    int k;                    /* SEARCH: 0 = MEMORY_RETRIEVAL_K; HISTORY, CONV_LIST: 0 = all */
    const char *const *lines; /* MC_MEM_IMPORT */
    size_t n_lines;
    size_t first_line; /* number of lines[0] in the user's file, for messages */
    bool rebuild;      /* MC_MEM_INDEX */
    const char *from;  /* MC_MEM_MIGRATE: VECTOR_DB_PROVIDER names of the source */
    const char *to;    /* ... and of the target (they differ) */
    int batch;         /* MIGRATE, REEMBED: memories per page; 0: 256 */
    bool restart;      /* MIGRATE: drop an unfinished migrate of another pair */
    bool force;        /* REEMBED: even when the namespace has the embedder's identity */
};

/* One change to the stored limits (memchat limits set|clear): a rate
 * limit (name "rpm" or "tpm", per RATE_LIMIT_WINDOW_S) or a budget
 * ("budget_usd", per BUDGET_PERIOD) of a tenant, or of one user of it. */
struct mc_limits_change {
    const char *tenant; /* required */
    const char *user;   /* NULL: the tenant's own limit */
    const char *name;   /* "rpm", "tpm" or "budget_usd" */
    double value;       /* set: >= 0; 0 means unlimited / no budget */
    bool clear;         /* remove the override instead (value unused) */
};

/* One change to the persisted rollout of memory (memchat rollout …). */
enum mc_rollout_op {
    MC_ROLLOUT_GLOBAL,  /* on: the global setting */
    MC_ROLLOUT_TENANT,  /* tenant, on: the tenant's own setting */
    MC_ROLLOUT_RESET,   /* tenant: clears the tenant's own setting */
    MC_ROLLOUT_PERCENT, /* percent 0..100, or -1 to clear the percentage */
    MC_ROLLOUT_STATUS,  /* changes nothing: answers the status (since_ms) */
};
struct mc_rollout_change {
    enum mc_rollout_op op;
    const char *tenant; /* TENANT and RESET: an id */
    bool on;
    int percent;
    int64_t since_ms; /* STATUS: the figures' window starts here; 0: the
                         last 7 days; INT64_MIN: everything */
};

/* Starts an engine on cfg (which must outlive it): opens the data file and
 * starts both workers. NULL with a message in err on failure; *code then
 * says which error (e.g. MC_ERR_DATA_FILE). Free with mc_engine_free(). */
struct mc_engine *mc_engine_new(const struct config *cfg, int *code, char *err, size_t errlen);
/* Cancels the running turn, lets queued work finish or drain, joins the
 * workers and frees everything. Events not yet taken are dropped. NULL ok. */
void mc_engine_free(struct mc_engine *eng);

/* Queues a turn. Writes its UUIDv7 into turn_id (37 bytes). 0 on success,
 * -1 with a message in err when the request is invalid (bad id, bad UTF-8). */
int mc_engine_submit_turn(struct mc_engine *eng, const struct mc_turn_request *req,
                          char turn_id[MC_UUID_STRLEN + 1], char *err, size_t errlen);
/* Queues a job that stores changes (all or none, in one transaction) and
 * applies them to the running limiter and budgets. Writes the job's id into
 * job_id; the job answers with a `result` event {job, kind "limits", items}
 * or an `error` event carrying "job". 0, or -1 with a message when a change
 * is invalid (bad id, unknown name, negative or non-integer limit). */
int mc_engine_submit_limits(struct mc_engine *eng, const struct mc_limits_change *changes, size_t n,
                            char job_id[MC_UUID_STRLEN + 1], char *err, size_t errlen);
/* Queues `memchat doctor`'s checks of every configured backend for tenant
 * (client/doctor.h). It answers with a `result` event {job, kind "doctor",
 * items: [{check, status, what, detail, fix, exit}]}. 0, or -1 with a
 * message when the tenant is not an id. */
int mc_engine_submit_doctor(struct mc_engine *eng, const char *tenant,
                            char job_id[MC_UUID_STRLEN + 1], char *err, size_t errlen);
/* Queues a job that stores one rollout change. It answers with a `result`
 * event {job, kind "rollout", items: [{op, tenant, memory, percent,
 * had}]} (had: RESET found a setting to clear) or an `error` event
 * carrying "job". MC_ROLLOUT_STATUS changes nothing and answers kind
 * "rollout_status" with one item, the object of `memchat rollout status
 * --json` without its data_file fields (rollout/status.h). 0, or -1 with a
 * message when the change is invalid. */
int mc_engine_submit_rollout(struct mc_engine *eng, const struct mc_rollout_change *c,
                             char job_id[MC_UUID_STRLEN + 1], char *err, size_t errlen);
/* Queues a memory job. It answers with one `result` event {job, kind,
 * items} or an `error` event carrying "job" (a usage or input error exits
 * 2, a namespace stored with another embedder or dimension is code
 * "config", a failing store "io"). kinds and items:
 *   add: [{id, refreshed, chunks}];
 *   search: the memories, best first: {id, text, score, scores {vector,
 *     keyword, fused, mmr}, user_id, agent, kind, created_at, metadata};
 *   forget: [{deleted}]; stats: one object per namespace (memory/manager.h);
 *   export: memories as for search without scores, with vector;
 *   import: [{imported, refreshed}];
 *   history: [{seq, ts_ms, op, memory_id, user_id, agent, detail}];
 *   conversations: [{id, user_id, agent, title, created_ms, updated_ms,
 *     turns}]; conversation_removed: [{id}];
 *   purge: [{memories (with their history), conversations, pending, traces,
 *     cache}];
 *   migrate: [{tenant, from, to, total, done, resumed, resumed_from,
 *     target_before, source_count, target_count}];
 *   reembed: [{tenant, store, from, to, total, done, resumed, resumed_from,
 *     nothing_to_do, target_count}] (from/to: "embedder/model/dim").
 * migrate and reembed emit `progress` events {job, stage, done, total}
 * and stop at their next checkpoint when mc_engine_cancel() is called
 * (error code "cancelled"; the same job resumes).
 * 0, or -1 with a message when the job is invalid (bad id, missing text,
 * invalid UTF-8). */
int mc_engine_submit_memory(struct mc_engine *eng, const struct mc_memory_job *job,
                            char job_id[MC_UUID_STRLEN + 1], char *err, size_t errlen);
/* Cancels the running turn and every turn submitted before this call that
 * has not started yet; turns submitted afterwards run normally. Safe from
 * any thread (not from a signal handler). Each cancelled turn still sends
 * turn.start, turn.cancelled ({partial} says whether a delta was sent) and
 * turn.done, then its store-stage memory.skipped. No-op when nothing runs
 * or waits. */
void mc_engine_cancel(struct mc_engine *eng);
/* How the engine answers a call of a tool that is not read-only (after
 * its tool.confirm event): ask the front end (mc_engine_answer_tool; the
 * turn waits until the answer or a cancel), or always yes (`ask --yes`),
 * or always no (a front end that cannot ask). */
enum mc_tool_confirm { MC_TOOL_CONFIRM_ASK = 0, MC_TOOL_CONFIRM_YES, MC_TOOL_CONFIRM_NO };
/* Sets the standing answer; call before submitting turns. The default
 * is MC_TOOL_CONFIRM_ASK. */
void mc_engine_set_tool_confirm(struct mc_engine *eng, enum mc_tool_confirm mode);
/* Answers the tool.confirm of call_id: allow runs the tool, else the
 * model is told the user refused. Safe from any thread; an answer to a
 * call that is not waiting is ignored. */
void mc_engine_answer_tool(struct mc_engine *eng, const char *call_id, bool allow);
/* Forgets the session's conversation history (chat's /new). Runs as a job,
 * after the turns already queued. */
void mc_engine_reset_conversation(struct mc_engine *eng);

/* Gives the passphrase of a keystore protected by one (`memchat keys init
 * --passphrase`), copied into locked memory; the caller wipes its copy.
 * Call before submitting the first turn: turns read it without a lock. */
void mc_engine_set_passphrase(struct mc_engine *eng, const char *pass, size_t len);

/* "provider P, model M (detail)": which model answers and, for `auto`,
 * why (e.g. "provider openai, model mock-model (local OpenAI-compatible
 * server at ...)").
 * Written into out; never contains a key. */
const char *mc_engine_describe(const struct mc_engine *eng, char *out, size_t outlen);

/* What sending a message now would meet, for a front end's estimate while
 * the user types (DESIGN.md allows front ends side-effect-free reads). */
struct mc_estimate {
    long long tokens;  /* the message's estimated prompt tokens (not the
                            history or recalled memories, unknown yet) */
    double usd;        /* those tokens at the model's input price; NAN
                            when the model has no price */
    char provider[32]; /* who would answer */
    char model[128];   /* "" when not known before the turn runs */
    long long wait_ms; /* 0, or how long a rate limit would make it wait */
    bool refused;      /* a bucket could never hold its tokens */
    char limit[96];    /* the binding limit ("tenant tokens 1000/60s"), "" */
    /* The rate-limit buckets of (tenant, user): [global, tenant, user] x
     * [requests, tokens]; capacity 0 = unlimited. */
    struct {
        long long capacity, level;
    } bucket[3][2];
    bool budget; /* a budget applies; then: */
    char budget_scope[8];
    double budget_remaining_usd; /* of the tightest budget */
};
/* Fills *out for req (its tenant, user, agent, provider, model and text;
 * NULLs as for mc_engine_submit_turn) without changing anything: the
 * limiter's and budgets' state is only read. Safe from the UI thread. 0,
 * or -1 with a message when an id is invalid. */
int mc_engine_estimate(struct mc_engine *eng, const struct mc_turn_request *req,
                       struct mc_estimate *out, char *err, size_t errlen);

/* The i-th model the price table knows for provider (NULL: any), for
 * completion; NULL past the last. The string lives as long as eng. */
const char *mc_engine_model_at(const struct mc_engine *eng, const char *provider, size_t i);
/* The i-th agent's name (sorted), or NULL past the last; lives as long
 * as eng. */
const char *mc_engine_agent_at(const struct mc_engine *eng, size_t i);
/* 0 when name is an agent; else -1 with "unknown agent 'NAME' (agents:
 * ...)" in err. */
int mc_engine_check_agent(const struct mc_engine *eng, const char *name, char *err, size_t errlen);
/* The memory scope of agent name ("default", "tenant", "user", "agent"),
 * or NULL when there is no such agent. */
const char *mc_engine_agent_scope(const struct mc_engine *eng, const char *name);

/* A descriptor that becomes readable when events are waiting. */
int mc_engine_wake_fd(const struct mc_engine *eng);
/* The next event, or NULL when none waits. Caller frees with mc_event_free().
 * Also drains the wake-up descriptor. */
struct mc_event *mc_engine_next_event(struct mc_engine *eng);

/* Process-wide set-up every program and test calls once before anything else:
 * routes cJSON's and SQLite's allocations through util/alloc. 0 on success. */
int mc_global_init(void);

#endif
