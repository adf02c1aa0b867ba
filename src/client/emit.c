/*
 * The event helpers of emit.h. Each helper adds the contract's fields in
 * the contract's order, so NDJSON output reads the same way every time.
 * Allocation failure while building an event is fatal (alloc_die): events
 * are small, and a turn that silently lost one would break the contract
 * that front ends rely on (one turn.done, a gap-free seq).
 */
#include "config.h"

#include "client/emit.h"

#include <cJSON.h>
#include <math.h>
#include <string.h>

#include "memory/manager.h"
#include "util/alloc.h"
#include "util/utf8.h"

static cJSON *emit_check(cJSON *item)
{
    if (item == NULL)
        alloc_die("cJSON event field");
    return item;
}

/* The event's header with an unset seq and time; the sink stamps both. */
static struct mc_event *emit_new(const struct emit *em, enum mc_event_kind kind)
{
    return mc_event_new(kind, em->turn, -1, 0);
}

static void emit_send(const struct emit *em, struct mc_event *ev)
{
    em->sink(em->sink_ud, ev, em->seq);
}

static void emit_str(cJSON *obj, const char *name, const char *value)
{
    if (value != NULL)
        emit_check(cJSON_AddStringToObject(obj, name, value));
    else
        emit_check(cJSON_AddNullToObject(obj, name));
}

static void emit_bool(cJSON *obj, const char *name, bool value)
{
    emit_check(cJSON_AddBoolToObject(obj, name, value));
}

/* A number, or null when negative (the contract's "not computed"). */
static void emit_num_or_null(cJSON *obj, const char *name, double value)
{
    if (value >= 0)
        emit_check(cJSON_AddNumberToObject(obj, name, value));
    else
        emit_check(cJSON_AddNullToObject(obj, name));
}

/* Replaces the number named name in obj, which mc_event_new created. */
static void emit_set_number(cJSON *obj, const char *name, double value)
{
    cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (cJSON_IsNumber(it))
        cJSON_SetNumberValue(it, value);
    else
        emit_check(cJSON_AddNumberToObject(obj, name, value));
}

void emit_stamp(struct mc_event *ev, int64_t seq, int64_t ts_ms)
{
    ev->seq = seq;
    ev->ts_ms = ts_ms;
    emit_set_number(ev->json, "seq", (double)seq);
    emit_set_number(ev->json, "ts_ms", (double)ts_ms);
}

void emit_turn_start(const struct emit *em, const char *tenant, const char *user, const char *agent,
                     const char *provider, const char *model, bool memory, const char *conversation,
                     const struct turn_step *step)
{
    struct mc_event *ev = emit_new(em, MC_EV_TURN_START);
    emit_str(ev->json, "tenant", tenant);
    emit_str(ev->json, "user", user);
    emit_str(ev->json, "agent", agent);
    emit_str(ev->json, "provider", provider);
    emit_str(ev->json, "model", model);
    emit_bool(ev->json, "memory", memory);
    if (step == NULL) {
        emit_check(cJSON_AddNullToObject(ev->json, "step"));
    } else {
        cJSON *o = cJSON_AddObjectToObject(ev->json, "step");
        emit_check(o);
        emit_check(cJSON_AddNumberToObject(o, "index", step->index));
        emit_check(cJSON_AddNumberToObject(o, "of", step->of));
        emit_str(o, "name", step->name);
        emit_str(o, "run", step->run);
    }
    emit_str(ev->json, "conversation", conversation);
    emit_send(em, ev);
}

void emit_rollout(const struct emit *em, bool memory, const char *reason)
{
    struct mc_event *ev = emit_new(em, MC_EV_ROLLOUT);
    emit_bool(ev->json, "memory", memory);
    emit_str(ev->json, "reason", reason);
    emit_send(em, ev);
}

void emit_memory_skipped(const struct emit *em, const char *stage, const char *reason)
{
    emit_memory_skipped_msg(em, stage, reason, NULL);
}

void emit_memory_skipped_msg(const struct emit *em, const char *stage, const char *reason,
                             const char *message)
{
    struct mc_event *ev = emit_new(em, MC_EV_MEMORY_SKIPPED);
    emit_str(ev->json, "stage", stage);
    emit_str(ev->json, "reason", reason);
    if (message != NULL)
        emit_str(ev->json, "message", message);
    emit_send(em, ev);
}

/* A score, or null when it was not computed (NAN). */
static void emit_score(cJSON *obj, const char *name, double v)
{
    if (isnan(v))
        emit_check(cJSON_AddNullToObject(obj, name));
    else
        emit_check(cJSON_AddNumberToObject(obj, name, v));
}

static cJSON *emit_candidate(const struct memory_hit *h)
{
    cJSON *c = emit_check(cJSON_CreateObject());
    emit_str(c, "id", h->rec.id);
    emit_str(c, "text", h->rec.text);
    emit_str(c, "user_id", h->rec.user_id);
    emit_check(cJSON_AddNumberToObject(c, "created_at", (double)h->rec.created_at));
    emit_score(c, "score", h->score);
    cJSON *sc = emit_check(cJSON_AddObjectToObject(c, "scores"));
    emit_score(sc, "vector", h->vector);
    emit_score(sc, "keyword", h->keyword);
    emit_score(sc, "fused", h->fused);
    emit_score(sc, "mmr", h->mmr);
    emit_bool(c, "kept", h->kept);
    return c;
}

void emit_memory_retrieved(const struct emit *em, const struct memory_result *r, size_t k,
                           const char *filter_json)
{
    struct mc_event *ev = emit_new(em, MC_EV_MEMORY_RETRIEVED);
    emit_str(ev->json, "method", memory_method_name(r->method));
    emit_check(cJSON_AddNumberToObject(ev->json, "k", (double)k));
    cJSON *f = filter_json != NULL ? cJSON_Parse(filter_json) : NULL;
    if (f != NULL)
        cJSON_AddItemToObject(ev->json, "filter", f);
    else
        emit_check(cJSON_AddNullToObject(ev->json, "filter"));
    emit_check(cJSON_AddNumberToObject(ev->json, "latency_ms", r->latency_ms));
    cJSON *arr = emit_check(cJSON_AddArrayToObject(ev->json, "candidates"));
    for (size_t i = 0; i < r->n; i++)
        cJSON_AddItemToArray(arr, emit_candidate(&r->hits[i]));
    emit_send(em, ev);
}

void emit_memory_injected(const struct emit *em, const char *block, long long tokens)
{
    struct mc_event *ev = emit_new(em, MC_EV_MEMORY_INJECTED);
    emit_str(ev->json, "block", block);
    emit_check(cJSON_AddNumberToObject(ev->json, "tokens", (double)tokens));
    emit_send(em, ev);
}

void emit_memory_stored(const struct emit *em, const char *const *ids, size_t n, double latency_ms)
{
    struct mc_event *ev = emit_new(em, MC_EV_MEMORY_STORED);
    cJSON *arr = emit_check(cJSON_AddArrayToObject(ev->json, "ids"));
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, emit_check(cJSON_CreateString(ids[i])));
    emit_check(cJSON_AddNumberToObject(ev->json, "latency_ms", latency_ms));
    emit_send(em, ev);
}

void emit_delta(const struct emit *em, const char *text, size_t len)
{
    struct mc_event *ev = emit_new(em, MC_EV_DELTA);
    char *copy = xstrndup(text, len);
    emit_str(ev->json, "text", copy);
    xfree(copy);
    emit_send(em, ev);
}

void emit_usage(const struct emit *em, const struct llm_usage *usage)
{
    struct mc_event *ev = emit_new(em, MC_EV_USAGE);
    emit_num_or_null(ev->json, "prompt_tokens", (double)usage->prompt_tokens);
    emit_num_or_null(ev->json, "completion_tokens", (double)usage->completion_tokens);
    emit_num_or_null(ev->json, "cached_tokens", (double)usage->cached_tokens);
    emit_bool(ev->json, "estimated", usage->estimated);
    emit_send(em, ev);
}

void emit_cost(const struct emit *em, double usd, const char *model)
{
    struct mc_event *ev = emit_new(em, MC_EV_COST);
    emit_num_or_null(ev->json, "usd", usd);
    emit_str(ev->json, "model", model);
    emit_send(em, ev);
}

void emit_ratelimit_wait(const struct emit *em, const char *scope, const char *kind,
                         long long wait_ms)
{
    struct mc_event *ev = emit_new(em, MC_EV_RATELIMIT_WAIT);
    emit_str(ev->json, "scope", scope);
    emit_str(ev->json, "kind", kind);
    emit_check(cJSON_AddNumberToObject(ev->json, "wait_ms", (double)wait_ms));
    emit_send(em, ev);
}

void emit_budget(const struct emit *em, const char *scope, double reserved_usd,
                 double remaining_usd, int64_t resets_at_ms)
{
    struct mc_event *ev = emit_new(em, MC_EV_BUDGET);
    emit_str(ev->json, "scope", scope);
    emit_check(cJSON_AddNumberToObject(ev->json, "reserved_usd", reserved_usd));
    emit_check(cJSON_AddNumberToObject(ev->json, "remaining_usd", remaining_usd));
    emit_check(cJSON_AddNumberToObject(ev->json, "resets_at", (double)resets_at_ms));
    emit_send(em, ev);
}

void emit_backend_fallback(const struct emit *em, const char *backend, const char *reason)
{
    struct mc_event *ev = emit_new(em, MC_EV_BACKEND_FALLBACK);
    emit_str(ev->json, "backend", backend);
    emit_str(ev->json, "reason", reason);
    emit_send(em, ev);
}

void emit_cache(const struct emit *em, bool hit, const char *key_prefix)
{
    struct mc_event *ev = emit_new(em, MC_EV_CACHE);
    emit_bool(ev->json, "hit", hit);
    emit_str(ev->json, "key_prefix", key_prefix);
    emit_send(em, ev);
}

void emit_minify(const struct emit *em, size_t bytes_before, size_t bytes_after,
                 size_t tokens_saved)
{
    struct mc_event *ev = emit_new(em, MC_EV_MINIFY);
    emit_check(cJSON_AddNumberToObject(ev->json, "bytes_before", (double)bytes_before));
    emit_check(cJSON_AddNumberToObject(ev->json, "bytes_after", (double)bytes_after));
    emit_check(cJSON_AddNumberToObject(ev->json, "tokens_saved", (double)tokens_saved));
    emit_send(em, ev);
}

void emit_retry(const struct emit *em, int attempt, long status, const char *error,
                long long delay_ms)
{
    struct mc_event *ev = emit_new(em, MC_EV_RETRY);
    emit_check(cJSON_AddNumberToObject(ev->json, "attempt", attempt));
    emit_num_or_null(ev->json, "status", status > 0 ? (double)status : -1.0);
    emit_str(ev->json, "error", error);
    emit_check(cJSON_AddNumberToObject(ev->json, "delay_ms", (double)delay_ms));
    emit_send(em, ev);
}

static void emit_tool_head(cJSON *obj, const char *call_id, const char *name, const char *arguments)
{
    emit_str(obj, "call_id", call_id);
    emit_str(obj, "name", name);
    cJSON *args = arguments != NULL ? cJSON_Parse(arguments) : NULL;
    if (args != NULL && !cJSON_IsObject(args)) {
        cJSON_Delete(args);
        args = NULL;
    }
    if (args != NULL)
        emit_check(cJSON_AddItemToObject(obj, "arguments", args) ? args : NULL);
    else
        emit_str(obj, "arguments", arguments);
}

void emit_tool_call(const struct emit *em, const char *call_id, const char *name,
                    const char *arguments)
{
    struct mc_event *ev = emit_new(em, MC_EV_TOOL_CALL);
    emit_tool_head(ev->json, call_id, name, arguments);
    emit_send(em, ev);
}

void emit_tool_confirm(const struct emit *em, const char *call_id, const char *name,
                       const char *arguments)
{
    struct mc_event *ev = emit_new(em, MC_EV_TOOL_CONFIRM);
    emit_tool_head(ev->json, call_id, name, arguments);
    emit_send(em, ev);
}

void emit_tool_result(const struct emit *em, const char *call_id, const char *name, bool ok,
                      const char *status, const char *output, const char *error, double latency_ms)
{
    struct mc_event *ev = emit_new(em, MC_EV_TOOL_RESULT);
    emit_str(ev->json, "call_id", call_id);
    emit_str(ev->json, "name", name);
    emit_bool(ev->json, "ok", ok);
    emit_str(ev->json, "status", status);
    size_t n = output != NULL ? strlen(output) : 0;
    size_t keep = utf8_truncate(output != NULL ? output : "", n, EMIT_TOOL_OUTPUT_MAX);
    char *capped = xstrndup(output != NULL ? output : "", keep);
    emit_str(ev->json, "output", output != NULL ? capped : NULL);
    xfree(capped);
    emit_bool(ev->json, "truncated", keep < n);
    emit_str(ev->json, "error", error);
    emit_check(cJSON_AddNumberToObject(ev->json, "latency_ms", latency_ms));
    emit_send(em, ev);
}

void emit_turn_cancelled(const struct emit *em, bool partial)
{
    struct mc_event *ev = emit_new(em, MC_EV_TURN_CANCELLED);
    emit_bool(ev->json, "partial", partial);
    emit_send(em, ev);
}

void emit_turn_done(const struct emit *em, const double latency_ms[MC_STAGE__COUNT])
{
    struct mc_event *ev = emit_new(em, MC_EV_TURN_DONE);
    cJSON *lat = emit_check(cJSON_AddObjectToObject(ev->json, "latency_ms"));
    for (int s = 0; s < MC_STAGE__COUNT; s++)
        emit_num_or_null(lat, mc_stage_name((enum mc_stage)s), latency_ms[s]);
    emit_send(em, ev);
}

void emit_error(const struct emit *em, enum mc_error code, const char *message)
{
    struct mc_event *ev = emit_new(em, MC_EV_ERROR);
    emit_str(ev->json, "code", mc_error_code(code));
    emit_str(ev->json, "message", message);
    emit_send(em, ev);
}

void emit_job_error(const struct emit *em, const char *job, enum mc_error code, const char *message)
{
    struct mc_event *ev = emit_new(em, MC_EV_ERROR);
    emit_str(ev->json, "code", mc_error_code(code));
    emit_str(ev->json, "message", message);
    emit_str(ev->json, "job", job);
    emit_send(em, ev);
}

void emit_progress(const struct emit *em, const char *job, const char *stage, size_t done,
                   size_t total)
{
    struct mc_event *ev = emit_new(em, MC_EV_PROGRESS);
    emit_str(ev->json, "job", job);
    emit_str(ev->json, "stage", stage);
    emit_check(cJSON_AddNumberToObject(ev->json, "done", (double)done));
    emit_check(cJSON_AddNumberToObject(ev->json, "total", (double)total));
    emit_send(em, ev);
}

void emit_result(const struct emit *em, const char *job, const char *kind, struct cJSON *items)
{
    struct mc_event *ev = emit_new(em, MC_EV_RESULT);
    emit_str(ev->json, "job", job);
    emit_str(ev->json, "kind", kind);
    if (items == NULL)
        items = emit_check(cJSON_CreateArray());
    if (!cJSON_AddItemToObject(ev->json, "items", items))
        alloc_die("cJSON event field");
    emit_send(em, ev);
}
