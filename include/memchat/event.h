/*
 * memchat events: the single source of truth for every front end
 * (DESIGN.md, "Contract: events"). An event is one JSON object with
 * "event", "turn" (UUIDv7 or null), "seq" and "ts_ms", plus the fields of its
 * kind. struct mc_event carries the parsed header for quick dispatch and the
 * whole object in `json`, which front ends read with the accessors below.
 */
#ifndef MEMCHAT_EVENT_H
#define MEMCHAT_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cJSON;

/* X(enum name, "wire name") in the contract's order. */
#define MC_EVENT_LIST(X)                          \
    X(MC_EV_TURN_START, "turn.start")             \
    X(MC_EV_ROLLOUT, "rollout")                   \
    X(MC_EV_MEMORY_RETRIEVED, "memory.retrieved") \
    X(MC_EV_MEMORY_INJECTED, "memory.injected")   \
    X(MC_EV_MINIFY, "minify")                     \
    X(MC_EV_CACHE, "cache")                       \
    X(MC_EV_RATELIMIT_WAIT, "ratelimit.wait")     \
    X(MC_EV_BUDGET, "budget")                     \
    X(MC_EV_RETRY, "retry")                       \
    X(MC_EV_DELTA, "delta")                       \
    X(MC_EV_TOOL_CALL, "tool.call")               \
    X(MC_EV_TOOL_CONFIRM, "tool.confirm")         \
    X(MC_EV_TOOL_RESULT, "tool.result")           \
    X(MC_EV_USAGE, "usage")                       \
    X(MC_EV_COST, "cost")                         \
    X(MC_EV_MEMORY_STORED, "memory.stored")       \
    X(MC_EV_MEMORY_SKIPPED, "memory.skipped")     \
    X(MC_EV_BACKEND_FALLBACK, "backend.fallback") \
    X(MC_EV_TURN_CANCELLED, "turn.cancelled")     \
    X(MC_EV_TURN_DONE, "turn.done")               \
    X(MC_EV_ERROR, "error")                       \
    X(MC_EV_PROGRESS, "progress")                 \
    X(MC_EV_RESULT, "result")

enum mc_event_kind {
#define MC_X_ENUM(e, name) e,
    MC_EVENT_LIST(MC_X_ENUM)
#undef MC_X_ENUM
        MC_EV__COUNT
};

#define MC_UUID_STRLEN 36

/* The stages of a turn, in pipeline order, as timed in turn.done's
 * "latency_ms" object (DESIGN.md, the pipeline of one turn). */
#define MC_STAGE_LIST(X)                   \
    X(MC_STAGE_ROLLOUT, "rollout")         \
    X(MC_STAGE_RETRIEVE, "retrieve")       \
    X(MC_STAGE_INJECT, "inject")           \
    X(MC_STAGE_MINIFY, "minify")           \
    X(MC_STAGE_CACHE, "cache")             \
    X(MC_STAGE_RATELIMIT, "ratelimit")     \
    X(MC_STAGE_KEY, "key")                 \
    X(MC_STAGE_FIRST_TOKEN, "first_token") \
    X(MC_STAGE_SEND, "send")               \
    X(MC_STAGE_TOOLS, "tools")             \
    X(MC_STAGE_TOTAL, "total")

enum mc_stage {
#define MC_X_ENUM(e, name) e,
    MC_STAGE_LIST(MC_X_ENUM)
#undef MC_X_ENUM
        MC_STAGE__COUNT
};

/* The name of stage s as in turn.done ("first_token"); never NULL. */
const char *mc_stage_name(enum mc_stage s);

struct mc_event {
    enum mc_event_kind kind;
    char turn[MC_UUID_STRLEN + 1]; /* "" for events outside a turn */
    int64_t seq;
    int64_t ts_ms;
    struct cJSON *json; /* the whole event object, owned by the event */
};

/* The wire name of kind ("turn.done"); never NULL. */
const char *mc_event_kind_name(enum mc_event_kind kind);
/* The kind named `name`; -1 when unknown. */
int mc_event_kind_from_name(const char *name);

/* A new event with its header fields set; turn may be NULL or "" (JSON null).
 * Never NULL (allocation failure follows the project's abort policy).
 * The caller adds fields to ev->json and frees with mc_event_free(). */
struct mc_event *mc_event_new(enum mc_event_kind kind, const char *turn, int64_t seq,
                              int64_t ts_ms);
/* Frees ev and its JSON; NULL is a no-op. */
void mc_event_free(struct mc_event *ev);
/* ev as one line of compact JSON, no newline; caller frees with free(). */
char *mc_event_to_json(const struct mc_event *ev);
/* Parses one JSON line into an event; NULL (with a message in err) when the
 * line is not an object with a known "event" name. Caller frees. */
struct mc_event *mc_event_parse(const char *line, char *err, size_t errlen);

/* Field accessors: the value of a top-level field, or the default when it is
 * missing, null or of another type. The string belongs to the event. */
const char *mc_event_str(const struct mc_event *ev, const char *field, const char *dflt);
double mc_event_num(const struct mc_event *ev, const char *field, double dflt);
bool mc_event_bool(const struct mc_event *ev, const char *field, bool dflt);
/* The same for a member of any JSON object o (a result's item, a nested
 * object); o may be NULL or not an object. Numbers must be finite. */
const char *mc_json_str(const struct cJSON *o, const char *field, const char *dflt);
double mc_json_num(const struct cJSON *o, const char *field, double dflt);
bool mc_json_bool(const struct cJSON *o, const char *field, bool dflt);

#endif
