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
/* Cancels the running turn and every turn submitted before this call that
 * has not started yet; turns submitted afterwards run normally. Safe from
 * any thread (not from a signal handler). Each cancelled turn still sends
 * turn.start, turn.cancelled ({partial} says whether a delta was sent) and
 * turn.done, then its store-stage memory.skipped. No-op when nothing runs
 * or waits. */
void mc_engine_cancel(struct mc_engine *eng);
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

/* A descriptor that becomes readable when events are waiting. */
int mc_engine_wake_fd(const struct mc_engine *eng);
/* The next event, or NULL when none waits. Caller frees with mc_event_free().
 * Also drains the wake-up descriptor. */
struct mc_event *mc_engine_next_event(struct mc_engine *eng);

/* Process-wide set-up every program and test calls once before anything else:
 * routes cJSON's and SQLite's allocations through util/alloc. 0 on success. */
int mc_global_init(void);

#endif
