/*
 * The emitter a turn writes its events through: one typed helper per event
 * of the contract (DESIGN.md, "Contract: events"), each building exactly the
 * contract's fields, with JSON null for what a stage did not compute. The
 * helpers build the event with its seq and ts_ms unset and hand it to the
 * sink, which numbers it: both workers write events of the same turn, and
 * the contract wants seq gap-free and in queue order, so the number must be
 * taken and the event queued under one lock. The engine's sink does that
 * with the turn's counter (emit.seq); a test sink can number as it likes.
 */
#ifndef MEMCHAT_CLIENT_EMIT_H
#define MEMCHAT_CLIENT_EMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "llm/provider.h"
#include "memchat/error.h"
#include "memchat/event.h"

struct cJSON;

/* Takes ownership of ev; sets ev->seq from *seq (then advancing it, or from
 * its own counter when seq is NULL) and ev->ts_ms (emit_stamp()), and
 * delivers it. Must be safe from the thread that calls the helpers. */
typedef void (*emit_sink_fn)(void *ud, struct mc_event *ev, int64_t *seq);

struct memory_result;

struct emit {
    const char *turn; /* the turn's UUIDv7; NULL for events outside a turn */
    int64_t *seq;     /* the turn's counter, shared by both workers; the
                         sink reads and advances it under its lock */
    emit_sink_fn sink;
    void *sink_ud;
};

/* Sets ev's seq and ts_ms, in the struct and in its JSON (the sink's job). */
void emit_stamp(struct mc_event *ev, int64_t seq, int64_t ts_ms);

/* Which step of a multi-step agent run a turn is: index from 1 of `of`,
 * the step's name, and run, the turn id of the run's first step (the id
 * the front end submitted). Strings are borrowed. */
struct turn_step {
    int index, of;
    const char *name;
    const char *run;
};

/* turn.start; step is NULL (null in the event) outside a multi-step run,
 * else {index, of, name, run}; conversation is the id of the turn's
 * conversation (null when it has none yet: a new one is made when the
 * turn completes). */
void emit_turn_start(const struct emit *em, const char *tenant, const char *user, const char *agent,
                     const char *provider, const char *model, bool memory, const char *conversation,
                     const struct turn_step *step);
/* rollout: which rule decided whether memory is on. */
void emit_rollout(const struct emit *em, bool memory, const char *reason);
/* memory.skipped: stage "retrieve" or "store", and why. */
void emit_memory_skipped(const struct emit *em, const char *stage, const char *reason);
/* The same with a message for humans (no secrets), added as "message"
 * when not NULL. */
void emit_memory_skipped_msg(const struct emit *em, const char *stage, const char *reason,
                             const char *message);
/* memory.retrieved: the method, k, the filter (JSON text, or NULL for
 * null), the latency and every candidate with its scores and whether it
 * was kept. */
void emit_memory_retrieved(const struct emit *em, const struct memory_result *r, size_t k,
                           const char *filter_json);
/* memory.injected: the exact block added to the system message and its
 * estimated tokens. */
void emit_memory_injected(const struct emit *em, const char *block, long long tokens);
/* memory.stored: the ids stored (or refreshed) and how long it took. */
void emit_memory_stored(const struct emit *em, const char *const *ids, size_t n, double latency_ms);
/* delta: text[0..len) of the reply (valid UTF-8). */
void emit_delta(const struct emit *em, const char *text, size_t len);
/* usage: each count, null when negative (not reported). */
void emit_usage(const struct emit *em, const struct llm_usage *usage);
/* cost: usd, null when negative (the model has no price). */
void emit_cost(const struct emit *em, double usd, const char *model);
/* ratelimit.wait: the binding scope and kind, and how long the turn waits. */
void emit_ratelimit_wait(const struct emit *em, const char *scope, const char *kind,
                         long long wait_ms);
/* budget: a budget that applies to the turn: scope, this turn's
 * reservation, what remains, and when the period resets (Unix ms). */
void emit_budget(const struct emit *em, const char *scope, double reserved_usd,
                 double remaining_usd, int64_t resets_at_ms);
/* cache: whether the response cache answered, and its key's prefix. */
void emit_cache(const struct emit *em, bool hit, const char *key_prefix);
/* `backend.fallback`: the shared backend (ratelimit, budget or cache)
 * could not be used and this process's own stood in; reason says why. */
void emit_backend_fallback(const struct emit *em, const char *backend, const char *reason);
/* minify: the request's bytes before and after, and the tokens saved. */
void emit_minify(const struct emit *em, size_t bytes_before, size_t bytes_after,
                 size_t tokens_saved);
/* retry: attempt (1 for the first retry), the HTTP status (0 = null), the
 * transport error's name (NULL = null), and the wait before it in ms. */
void emit_retry(const struct emit *em, int attempt, long status, const char *error,
                long long delay_ms);
/* Bytes of a tool's output that tool.result carries; the model gets it
 * all (up to the tool's own cap). */
#define EMIT_TOOL_OUTPUT_MAX 4096

/* tool.call: the model asked for name with arguments (the text it sent:
 * the event carries the parsed object, or the text as a string when it is
 * not a JSON object). */
void emit_tool_call(const struct emit *em, const char *call_id, const char *name,
                    const char *arguments);
/* tool.confirm: a tool that is not read-only waits for the user's yes or
 * no (mc_engine_answer_tool); same fields as tool.call. */
void emit_tool_confirm(const struct emit *em, const char *call_id, const char *name,
                       const char *arguments);
/* tool.result: the call's name (beyond the contract's fields, so a
 * front end need not remember the call), ok, status (tools/runner.h's
 * name, or "refused", "unknown", "no_credentials"), the
 * output (a JSON text, capped at EMIT_TOOL_OUTPUT_MAX bytes on a UTF-8
 * boundary, truncated saying whether it was), error (null when ok) and
 * latency_ms. */
void emit_tool_result(const struct emit *em, const char *call_id, const char *name, bool ok,
                      const char *status, const char *output, const char *error, double latency_ms);
/* turn.cancelled: partial says whether any delta was emitted. */
void emit_turn_cancelled(const struct emit *em, bool partial);
/* turn.done: latency_ms holds every stage of MC_STAGE_LIST, null where the
 * value is negative (the stage was not computed). */
void emit_turn_done(const struct emit *em, const double latency_ms[MC_STAGE__COUNT]);
/* error: code (mc_error_code(code)) and a message for humans. */
void emit_error(const struct emit *em, enum mc_error code, const char *message);
/* result: the answer to a job that is not a turn; takes ownership of items
 * (an array; NULL gives an empty one). */
/* error for a job that is not a turn: also carries "job". */
void emit_job_error(const struct emit *em, const char *job, enum mc_error code,
                    const char *message);
/* progress {job, stage, done, total}: a long job's headway (an index
 * being built). */
void emit_progress(const struct emit *em, const char *job, const char *stage, size_t done,
                   size_t total);
void emit_result(const struct emit *em, const char *job, const char *kind, struct cJSON *items);

#endif
