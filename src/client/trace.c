/*
 * The trace builder: one turn's measurements become the trace record of the
 * shared contract (client/trace.h), Opik's Trace_Write and one Span_Write
 * per stage that ran. Everything is allocated through cJSON, which
 * engine/global.c routes to the fallible allocator, so every creation is
 * checked and a failure anywhere frees the partial record and returns NULL:
 * tracing must never take a turn down with it.
 *
 * Numbers: cJSON prints a double with "%1.15g" and only falls back to 17
 * digits when a loose comparison says 15 were not enough, so an integer of
 * 16 digits (up to 2^53) can come out rounded, in exponent form. Integers
 * below 10^15 print exactly as cJSON numbers; larger ones become raw JSON
 * text written with "%lld".
 */
#include "config.h"

#include "client/trace.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cJSON.h>

#include "util/alloc.h"
#include "util/redact.h"
#include "util/uuid.h"

#define TRACE_DEFAULT_PROJECT "memchat"
/* Below this every integer prints exactly through cJSON's "%1.15g". */
#define TRACE_EXACT_INT 1e15
/* A stage offset or duration beyond about 300 years is garbage, not a stage. */
#define TRACE_MAX_MS 1e13
#define TRACE_DAY_MS 86400000LL
/* 0000-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z: the four-digit
 * years the fixed-width format can show. */
#define TRACE_MIN_MS      (-62167219200000LL)
#define TRACE_MAX_TIME_MS 253402300799999LL

/* Writes v (0 <= v < 10^width) in exactly width digits, then sep; returns
 * the end. Fixed widths by construction, which snprintf cannot promise the
 * compiler for values it cannot bound. */
static char *trace_put_digits(char *p, int v, int width, char sep)
{
    for (int i = width - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    p[width] = sep;
    return p + width + 1;
}

void trace_format_time(int64_t unix_ms, char out[25])
{
    if (unix_ms < TRACE_MIN_MS)
        unix_ms = TRACE_MIN_MS;
    if (unix_ms > TRACE_MAX_TIME_MS)
        unix_ms = TRACE_MAX_TIME_MS;
    /* Floor division, so instants before 1970 land on the right day. */
    int64_t days = unix_ms / TRACE_DAY_MS;
    int64_t rem = unix_ms % TRACE_DAY_MS;
    if (rem < 0) {
        rem += TRACE_DAY_MS;
        days--;
    }
    /* Howard Hinnant's civil_from_days: the proleptic Gregorian date of a
     * day count, with no time zone or locale involved (gmtime would need a
     * time_t of the right range and is not clamped). Eras are 400 years,
     * counted from 0000-03-01 so the leap day ends each year. */
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int day = (int)(doy - (153 * mp + 2) / 5 + 1);
    int month = (int)(mp < 10 ? mp + 3 : mp - 9);
    int year = (int)(yoe + era * 400 + (month <= 2 ? 1 : 0));
    int64_t secs = rem / 1000;
    char *p = out;
    p = trace_put_digits(p, year, 4, '-');
    p = trace_put_digits(p, month, 2, '-');
    p = trace_put_digits(p, day, 2, 'T');
    p = trace_put_digits(p, (int)(secs / 3600), 2, ':');
    p = trace_put_digits(p, (int)(secs / 60 % 60), 2, ':');
    p = trace_put_digits(p, (int)(secs % 60), 2, '.');
    p = trace_put_digits(p, (int)(rem % 1000), 3, 'Z');
    *p = '\0';
}

/* Adds item under key; on failure (item NULL, or no memory for the key)
 * frees item and returns false. */
static bool trace_add(cJSON *obj, const char *key, cJSON *item)
{
    if (item == NULL)
        return false;
    if (!cJSON_AddItemToObject(obj, key, item)) {
        cJSON_Delete(item);
        return false;
    }
    return true;
}

/* Adds an integer that prints exactly, whatever its size. */
static bool trace_add_int(cJSON *obj, const char *key, long long v)
{
    if ((double)v > -TRACE_EXACT_INT && (double)v < TRACE_EXACT_INT)
        return cJSON_AddNumberToObject(obj, key, (double)v) != NULL;
    char s[32];
    snprintf(s, sizeof s, "%lld", v);
    return trace_add(obj, key, cJSON_CreateRaw(s));
}

/* Adds s when it is not NULL; true when added or skipped. */
static bool trace_add_opt_str(cJSON *obj, const char *key, const char *s)
{
    return s == NULL || cJSON_AddStringToObject(obj, key, s) != NULL;
}

/* Adds {"text": s} under key. */
/* Adds {"text": s} under key, with any credential the user pasted into
 * the chat redacted (util/redact.h): a trace is not a place for secrets. */
static bool trace_add_text(cJSON *obj, const char *key, const char *s)
{
    cJSON *o = cJSON_AddObjectToObject(obj, key);
    char *clean = redact_secrets(s, strlen(s), NULL);
    bool ok = o != NULL && cJSON_AddStringToObject(o, "text", clean != NULL ? clean : s) != NULL;
    xfree(clean);
    return ok;
}

/* Adds the time t as an RFC 3339 string. */
static bool trace_add_time(cJSON *obj, const char *key, int64_t t)
{
    char s[25];
    trace_format_time(t, s);
    return cJSON_AddStringToObject(obj, key, s) != NULL;
}

/* Adds "prefix:value" to the array when value is not NULL. */
static bool trace_add_tag(cJSON *tags, const char *prefix, const char *value)
{
    if (value == NULL)
        return true;
    /* try_malloc: the value's length comes from the caller, and a failure
     * must give NULL like every other allocation here, not abort. */
    size_t n = strlen(prefix) + strlen(value) + 2;
    char *s = try_malloc(n);
    if (s == NULL)
        return false;
    snprintf(s, n, "%s:%s", prefix, value);
    cJSON *item = cJSON_CreateString(s);
    xfree(s);
    if (item == NULL)
        return false;
    cJSON_AddItemToArray(tags, item);
    return true;
}

/* Adds the tenant, user and agent: the fields every part of the record
 * carries, so a search by any of them finds the trace and its spans. */
static bool trace_add_who(cJSON *meta, const struct trace_turn *t)
{
    return trace_add_opt_str(meta, "tenant", t->tenant) &&
           trace_add_opt_str(meta, "user", t->user) && trace_add_opt_str(meta, "agent", t->agent);
}

/* A duration or offset that says its stage ran (NaN and -1 do not). */
static bool trace_ms_valid(double v)
{
    return v >= 0.0 && v <= TRACE_MAX_MS;
}

/* Adds the send span's model fields: model, provider, usage (only the
 * known counts), cost and ttft, and its input and output. */
static bool trace_add_llm(cJSON *span, cJSON *meta, const struct trace_turn *t)
{
    if (!trace_add_opt_str(span, "model", t->model) ||
        !trace_add_opt_str(span, "provider", t->provider))
        return false;
    long long in = t->usage.prompt_tokens, out = t->usage.completion_tokens;
    if (in >= 0 || out >= 0) {
        cJSON *usage = cJSON_AddObjectToObject(span, "usage");
        if (usage == NULL)
            return false;
        if (in >= 0 && !trace_add_int(usage, "prompt_tokens", in))
            return false;
        if (out >= 0 && !trace_add_int(usage, "completion_tokens", out))
            return false;
        /* Counts are far below LLONG_MAX / 2, but the sum must not
         * overflow even for garbage. */
        if (in >= 0 && out >= 0 && in <= LLONG_MAX - out &&
            !trace_add_int(usage, "total_tokens", in + out))
            return false;
    }
    if (t->cost_usd >= 0.0 && isfinite(t->cost_usd) &&
        cJSON_AddNumberToObject(span, "total_estimated_cost", t->cost_usd) == NULL)
        return false;
    double ttft = t->latency_ms[MC_STAGE_FIRST_TOKEN];
    if (trace_ms_valid(ttft) && cJSON_AddNumberToObject(span, "ttft", ttft) == NULL)
        return false;
    if (t->input_text != NULL && !trace_add_text(span, "input", t->input_text))
        return false;
    if (t->output_text != NULL && t->output_text[0] != '\0' &&
        !trace_add_text(span, "output", t->output_text))
        return false;
    if (cJSON_AddBoolToObject(meta, "usage_estimated", t->usage.estimated) == NULL)
        return false;
    return trace_add_opt_str(meta, "key_source", t->key_source);
}

/* The retrieve span's metadata: the method and the injected ids. */
static bool trace_add_recall(cJSON *meta, const struct trace_turn *t)
{
    if (!trace_add_opt_str(meta, "method", t->retrieve_method))
        return false;
    cJSON *ids = cJSON_AddArrayToObject(meta, "recalled");
    if (ids == NULL)
        return false;
    for (size_t i = 0; i < t->n_recalled; i++) {
        cJSON *id = cJSON_CreateString(t->recalled_ids[i]);
        if (id == NULL)
            return false;
        cJSON_AddItemToArray(ids, id);
    }
    return true;
}

/* A span named name of type type from off to off + len ms after the
 * turn's start, with the turn's tags and who-metadata; *meta is its
 * metadata object. NULL when out of memory. */
static cJSON *trace_span_new(const struct trace_turn *t, const char *name, const char *type,
                             double off, double len, const char *trace_id, const char *project,
                             const cJSON *tags, cJSON **meta)
{
    cJSON *span = cJSON_CreateObject();
    if (span == NULL)
        return NULL;
    char id[UUID_STRLEN + 1];
    uuid7_new(id);
    /* Rounding both ends from the same origin keeps end >= start. */
    int64_t start = t->started_ms + llround(off);
    int64_t end = t->started_ms + llround(off + len);
    bool ok = cJSON_AddStringToObject(span, "id", id) != NULL &&
              cJSON_AddStringToObject(span, "trace_id", trace_id) != NULL &&
              cJSON_AddStringToObject(span, "project_name", project) != NULL &&
              cJSON_AddStringToObject(span, "name", name) != NULL &&
              cJSON_AddStringToObject(span, "type", type) != NULL &&
              trace_add_time(span, "start_time", start) && trace_add_time(span, "end_time", end) &&
              trace_add(span, "tags", cJSON_Duplicate(tags, true)) &&
              (*meta = cJSON_AddObjectToObject(span, "metadata")) != NULL &&
              trace_add_who(*meta, t) &&
              /* The exact duration: the times above are whole milliseconds. */
              cJSON_AddNumberToObject(*meta, "latency_ms", len) != NULL;
    if (!ok) {
        cJSON_Delete(span);
        return NULL;
    }
    return span;
}

/* The span of stage s, which ran; NULL when out of memory. */
static cJSON *trace_span(const struct trace_turn *t, enum mc_stage s, const char *trace_id,
                         const char *project, const cJSON *tags)
{
    const char *type = s == MC_STAGE_RETRIEVE ? "tool" : s == MC_STAGE_SEND ? "llm" : "general";
    cJSON *meta = NULL;
    cJSON *span = trace_span_new(t, mc_stage_name(s), type, t->stage_start_ms[s], t->latency_ms[s],
                                 trace_id, project, tags, &meta);
    bool ok = span != NULL;
    if (ok && s == MC_STAGE_SEND)
        ok = trace_add_llm(span, meta, t);
    if (ok && s == MC_STAGE_RETRIEVE)
        ok = trace_add_recall(meta, t);
    if (!ok) {
        cJSON_Delete(span);
        return NULL;
    }
    return span;
}

/* The span of one tool call, named after its tool; NULL when out of
 * memory. Arguments and outputs stay out of traces, as memory texts do. */
static cJSON *trace_tool_span(const struct trace_turn *t, const struct trace_tool *c,
                              const char *trace_id, const char *project, const cJSON *tags)
{
    cJSON *meta = NULL;
    cJSON *span = trace_span_new(t, c->name, "tool", c->start_ms, c->latency_ms, trace_id, project,
                                 tags, &meta);
    if (span != NULL && (cJSON_AddStringToObject(meta, "call_id", c->call_id) == NULL ||
                         cJSON_AddStringToObject(meta, "status", c->status) == NULL ||
                         cJSON_AddBoolToObject(meta, "ok", c->ok) == NULL)) {
        cJSON_Delete(span);
        return NULL;
    }
    return span;
}

/* Fills the trace object; false when out of memory. */
static bool trace_fill(cJSON *trace, const struct trace_turn *t, const char *trace_id,
                       const char *project, const cJSON *tags)
{
    double total = t->latency_ms[MC_STAGE_TOTAL];
    int64_t end = t->started_ms + (trace_ms_valid(total) ? llround(total) : 0);
    const char *status = t->status_text != NULL ? t->status_text : "ok";
    if (cJSON_AddStringToObject(trace, "id", trace_id) == NULL ||
        cJSON_AddStringToObject(trace, "project_name", project) == NULL ||
        cJSON_AddStringToObject(trace, "name", "turn") == NULL ||
        !trace_add_time(trace, "start_time", t->started_ms) ||
        !trace_add_time(trace, "end_time", end))
        return false;
    if (t->input_text != NULL && !trace_add_text(trace, "input", t->input_text))
        return false;
    if (t->output_text != NULL && t->output_text[0] != '\0' &&
        !trace_add_text(trace, "output", t->output_text))
        return false;
    if (!trace_add(trace, "tags", cJSON_Duplicate(tags, true)))
        return false;
    cJSON *meta = cJSON_AddObjectToObject(trace, "metadata");
    if (meta == NULL || !trace_add_who(meta, t) ||
        !trace_add_opt_str(meta, "provider", t->provider) ||
        !trace_add_opt_str(meta, "model", t->model) ||
        cJSON_AddBoolToObject(meta, "memory", t->memory) == NULL ||
        cJSON_AddBoolToObject(meta, "cache_hit", t->cache_hit) == NULL ||
        !trace_add_int(meta, "retries", t->retries) ||
        cJSON_AddStringToObject(meta, "status", status) == NULL)
        return false;
    /* "cancelled" is the user's choice, not a failure. */
    if (strncmp(status, "error", 5) == 0) {
        cJSON *ei = cJSON_AddObjectToObject(trace, "error_info");
        if (ei == NULL || cJSON_AddStringToObject(ei, "exception_type", status) == NULL ||
            cJSON_AddStringToObject(ei, "message",
                                    t->error_message != NULL ? t->error_message : "") == NULL ||
            cJSON_AddStringToObject(ei, "traceback", "") == NULL)
            return false;
    }
    return true;
}

/* trace_build inside its fallible section. */
static cJSON *trace_record(const struct trace_turn *t, const char *project)
{
    if (project == NULL || project[0] == '\0')
        project = TRACE_DEFAULT_PROJECT;
    /* Opik rejects a record whose id is not a UUIDv7; a fresh one keeps the
     * turn's spans together at least. */
    char trace_id[UUID_STRLEN + 1];
    if (t->turn_id != NULL && uuid7_time_ms(t->turn_id) >= 0)
        snprintf(trace_id, sizeof trace_id, "%s", t->turn_id);
    else
        uuid7_new(trace_id);

    cJSON *record = cJSON_CreateObject();
    cJSON *tags = cJSON_CreateArray();
    cJSON *trace = NULL, *spans = NULL;
    bool ok = record != NULL && tags != NULL && trace_add_tag(tags, "tenant", t->tenant) &&
              trace_add_tag(tags, "user", t->user) && trace_add_tag(tags, "agent", t->agent) &&
              (trace = cJSON_AddObjectToObject(record, "trace")) != NULL &&
              trace_fill(trace, t, trace_id, project, tags) &&
              (spans = cJSON_AddArrayToObject(record, "spans")) != NULL;
    for (int s = 0; ok && s < MC_STAGE__COUNT; s++) {
        if (s == MC_STAGE_TOTAL || s == MC_STAGE_FIRST_TOKEN)
            continue;
        if (!trace_ms_valid(t->stage_start_ms[s]) || !trace_ms_valid(t->latency_ms[s]))
            continue;
        cJSON *span = trace_span(t, (enum mc_stage)s, trace_id, project, tags);
        if (span == NULL)
            ok = false;
        else
            cJSON_AddItemToArray(spans, span);
    }
    for (size_t i = 0; ok && i < t->n_tools; i++) {
        cJSON *span = trace_tool_span(t, &t->tools[i], trace_id, project, tags);
        if (span == NULL)
            ok = false;
        else
            cJSON_AddItemToArray(spans, span);
    }
    cJSON_Delete(tags);
    if (!ok) {
        cJSON_Delete(record);
        return NULL;
    }
    return record;
}

cJSON *trace_build(const struct trace_turn *t, const char *project)
{
    /* The record holds the turn's text, whose size is not ours to bound:
     * want of memory loses this trace, not the turn. */
    alloc_fallible_begin();
    cJSON *record = trace_record(t, project);
    alloc_fallible_end();
    return record;
}
