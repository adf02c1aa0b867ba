/*
 * The trace record of one turn (the shared contract of client/trace.c,
 * store/tracelog.c and net/opik.c): {"trace": Trace_Write, "spans":
 * [Span_Write, ...]} in Comet Opik's trace/span model, one span per pipeline
 * stage that ran. The turn fills a struct trace_turn from what it measured;
 * trace_build turns it into JSON that the trace log appends and the Opik
 * exporter sends as is. The builder is never given a key, so no record can
 * hold one.
 */
#ifndef MEMCHAT_CLIENT_TRACE_H
#define MEMCHAT_CLIENT_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "llm/provider.h"
#include "memchat/event.h"

struct cJSON;

/* One tool call of the turn (stage 9): a span of type "tool" named after
 * the tool, with call_id, status and ok in its metadata. */
struct trace_tool {
    const char *call_id, *name, *status;
    bool ok;
    double start_ms; /* offset from the turn's start */
    double latency_ms;
};

/* What a turn measured, all borrowed for the trace_build call. A NULL string
 * leaves its field (and its tag) out of the record. */
struct trace_turn {
    const char *turn_id; /* UUIDv7: the trace id (another value gets a fresh id) */
    const char *tenant, *user, *agent, *provider, *model;
    const char *input_text;  /* the user's message */
    const char *output_text; /* the reply as shown; NULL or "" when none */
    int64_t started_ms;      /* wall clock, Unix ms, when the turn started */
    /* Per stage: its start as an offset from started_ms, and its duration,
     * in ms; -1 = not run. */
    double stage_start_ms[MC_STAGE__COUNT];
    double latency_ms[MC_STAGE__COUNT];
    struct llm_usage usage;    /* -1 fields unknown */
    double cost_usd;           /* < 0: unknown (no price) */
    const char *status_text;   /* "ok", "error:<code>", "cancelled"; NULL = "ok" */
    const char *error_message; /* NULL unless the turn failed */
    bool memory, cache_hit;
    int retries;
    const char *key_source; /* "tenant", "command", "global", "none" or NULL (send span metadata) */
    /* The retrieve span's metadata: the ranking method (NULL: none ran)
     * and the ids of the memories injected; texts stay out of traces. */
    const char *retrieve_method;
    const char *const *recalled_ids;
    size_t n_recalled;
    const struct trace_tool *tools; /* NULL/0: no tool ran */
    size_t n_tools;
};

/* Builds the turn's trace record: the trace, then one span per stage of
 * MC_STAGE_LIST that ran (both its start and its latency >= 0), in pipeline
 * order, except "total" (the trace's own length) and "first_token" (the send
 * span's "ttft"), then one span per tool call. Times are rounded to the millisecond. "error_info" is set
 * only when status_text starts with "error". Integers of 10^15 or more are
 * raw JSON numbers (cJSON_IsRaw) so that they print exactly. project NULL or
 * "" = "memchat". Caller frees with cJSON_Delete. NULL only when out of
 * memory. */
struct cJSON *trace_build(const struct trace_turn *t, const char *project);

/* Formats Unix ms as RFC 3339 UTC with milliseconds, e.g.
 * "2026-11-24T10:00:00.123Z" (24 characters and a NUL), clamped to the years
 * 0000..9999. */
void trace_format_time(int64_t unix_ms, char out[25]);

#endif
