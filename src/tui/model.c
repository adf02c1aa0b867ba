/*
 * The TUI's view model (tui/model.h): a growable array of entries (turns,
 * searches, notices) and the session's aggregates, changed only by the
 * engine's events and the front end's own additions. Events are untrusted
 * input as far as this file is concerned: every field is read with a type
 * check and a default, so a malformed event changes less, never crashes,
 * and every string that enters is sanitised for the terminal here, once,
 * so the drawing code never has to.
 */
#include "config.h"

#include "tui/model.h"

#include <cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util/alloc.h"
#include "util/ident.h"
#include "util/utf8.h"

/* The most reply text one turn keeps: far above any reply the engine
 * accepts (MEMCHAT_MAX_RESPONSE_BYTES), so the bound only matters against
 * a runaway stream; text past it is dropped, what came before is kept. */
#define MODEL_REPLY_MAX ((size_t)64 * 1024 * 1024)

/* The most of an unfinished escape sequence a reply waits for the next
 * delta to finish; a longer one is sanitised (dropped) as it stands. */
#define MODEL_ESC_HOLD_MAX ((size_t)4096)

/* Integers that a double holds exactly: the range JSON numbers are trusted in. */
#define MODEL_INT_LIMIT 9007199254740992.0

struct model {
    struct tm_entry *e; /* e[0..n), oldest first */
    size_t n, cap;
    struct tm_session s;
};

/* --- reading untrusted JSON ---------------------------------------------- */

/* s sanitised for the terminal, as a new string (xfree); NULL for NULL. */
static char *model_clean(const char *s)
{
    if (s == NULL)
        return NULL;
    size_t n = strlen(s);
    struct buf b;
    /* The sanitiser writes at most 3 bytes per input byte. */
    buf_init(&b, n <= (SIZE_MAX - 16) / 3 ? 3 * n + 16 : SIZE_MAX);
    if (utf8_sanitize_terminal(&b, s, n) != BUF_OK)
        buf_free(&b);
    return buf_take(&b);
}

/* The formatted text, sanitised, as a new string (xfree). */
static char *model_clean_fmt(const char *fmt, ...) MC_PRINTF(1, 2);
static char *model_clean_fmt(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *raw = xvasprintf(fmt, ap);
    va_end(ap);
    char *clean = model_clean(raw);
    xfree(raw);
    return clean;
}

/* Replaces *slot with a sanitised copy of s (NULL clears it). */
static void model_set_str(char **slot, const char *s)
{
    char *v = model_clean(s);
    xfree(*slot);
    *slot = v;
}

/* The member of obj named key (NULL when obj is not an object). */
static const cJSON *model_get(const cJSON *obj, const char *key)
{
    return cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
}

/* v as an integer when it is one a double holds exactly, else dflt: a
 * hostile 1e300 must not reach a conversion whose result is undefined. */
static long long model_ll(double v, long long dflt)
{
    if (!(v >= -MODEL_INT_LIMIT && v <= MODEL_INT_LIMIT))
        return dflt;
    return (long long)v;
}

/* v clamped into an int (NAN: dflt). */
static int model_int(double v, int dflt)
{
    if (isnan(v))
        return dflt;
    if (v <= (double)INT_MIN)
        return INT_MIN;
    if (v >= (double)INT_MAX)
        return INT_MAX;
    return (int)v;
}

static bool model_digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
 * (Howard Hinnant's days_from_civil): no timegm(), which C11 lacks. */
static int64_t model_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* An RFC 3339 time ("2024-05-01T12:00:00.250Z", "+02:00" offsets) in Unix
 * ms, or 0 when s is not one. */
static int64_t model_parse_rfc3339(const char *s)
{
    int y, mo, d, h, mi, sec;
    if (strlen(s) < 19 || !model_digits(s, 4, &y) || s[4] != '-' || !model_digits(s + 5, 2, &mo) ||
        s[7] != '-' || !model_digits(s + 8, 2, &d) ||
        (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !model_digits(s + 11, 2, &h) ||
        s[13] != ':' || !model_digits(s + 14, 2, &mi) || s[16] != ':' ||
        !model_digits(s + 17, 2, &sec))
        return 0;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return 0;
    const char *p = s + 19;
    int64_t ms = 0;
    if (*p == '.') {
        int scale = 100;
        for (p++; *p >= '0' && *p <= '9'; p++) {
            ms += (*p - '0') * scale;
            scale /= 10;
        }
    }
    int64_t offset_min = 0;
    if (*p == '+' || *p == '-') {
        int oh, om;
        if (!model_digits(p + 1, 2, &oh) || p[3] != ':' || !model_digits(p + 4, 2, &om))
            return 0;
        offset_min = (int64_t)(oh * 60 + om) * (*p == '-' ? -1 : 1);
        p += 6;
    } else if (*p == 'Z' || *p == 'z') {
        p++;
    }
    if (*p != '\0')
        return 0;
    int64_t secs = model_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
    int64_t v = (secs - offset_min * 60) * 1000 + ms;
    return v > 0 ? v : 0;
}

/* A memory's created_at: the engine sends Unix ms as a number; a string of
 * digits (ms) or an RFC 3339 time is read too. 0 when unknown. */
static int64_t model_created_ms(const cJSON *v)
{
    if (cJSON_IsNumber(v)) {
        long long ms = model_ll(v->valuedouble, 0);
        return ms > 0 ? (int64_t)ms : 0;
    }
    if (!cJSON_IsString(v) || v->valuestring[0] == '\0')
        return 0;
    const char *s = v->valuestring;
    size_t n = strspn(s, "0123456789");
    if (s[n] == '\0') {
        if (n > 15) /* past 2^53 ms: not a time */
            return 0;
        int64_t ms = 0;
        for (size_t i = 0; i < n; i++)
            ms = ms * 10 + (s[i] - '0');
        return ms;
    }
    return model_parse_rfc3339(s);
}

/* One candidate (memory.retrieved) or search item from its JSON object;
 * strings are never NULL ("" when missing). */
static void model_candidate(struct tm_candidate *c, const cJSON *o, bool kept_dflt)
{
    c->id = model_clean(mc_json_str(o, "id", ""));
    c->text = model_clean(mc_json_str(o, "text", ""));
    c->user_id = model_clean(mc_json_str(o, "user_id", ""));
    c->created_ms = model_created_ms(model_get(o, "created_at"));
    c->score = mc_json_num(o, "score", NAN);
    const cJSON *sc = model_get(o, "scores");
    c->vector = mc_json_num(sc, "vector", NAN);
    c->keyword = mc_json_num(sc, "keyword", NAN);
    c->fused = mc_json_num(sc, "fused", NAN);
    c->mmr = mc_json_num(sc, "mmr", NAN);
    c->kept = mc_json_bool(o, "kept", kept_dflt);
}

static void model_free_candidates(struct tm_candidate *cand, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        xfree(cand[i].id);
        xfree(cand[i].text);
        xfree(cand[i].user_id);
    }
    xfree(cand);
}

/* The candidates of arr (anything that is not an array is none); *n_out
 * gets their count, *n_kept (when not NULL) how many are kept. */
static struct tm_candidate *model_candidates(const cJSON *arr, bool kept_dflt, size_t *n_out,
                                             size_t *n_kept)
{
    *n_out = 0;
    if (n_kept != NULL)
        *n_kept = 0;
    int n = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : 0;
    if (n <= 0)
        return NULL;
    struct tm_candidate *cand = xcalloc((size_t)n, sizeof *cand);
    size_t i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        if (i == (size_t)n)
            break;
        model_candidate(&cand[i], it, kept_dflt);
        if (n_kept != NULL && cand[i].kept)
            (*n_kept)++;
        i++;
    }
    *n_out = i;
    return cand;
}

/* --- entries ------------------------------------------------------------- */

static void model_entry_fini(struct tm_entry *e)
{
    switch (e->kind) {
    case TM_TURN: {
        struct tm_turn *t = &e->u.turn;
        xfree(t->step_name);
        xfree(t->text);
        xfree(t->provider);
        xfree(t->model);
        buf_free(&t->reply);
        buf_free(&t->esc_hold);
        xfree(t->error);
        xfree(t->rollout_reason);
        xfree(t->method);
        model_free_candidates(t->cand, t->n_cand);
        xfree(t->injected);
        xfree(t->retrieve_skip);
        xfree(t->store_reason);
        break;
    }
    case TM_SEARCH:
        xfree(e->u.search.query);
        xfree(e->u.search.error);
        model_free_candidates(e->u.search.cand, e->u.search.n_cand);
        break;
    case TM_NOTICE:
        xfree(e->u.notice.text);
        break;
    }
}

/* Opens a zeroed slot at index at (0..n), moving the later entries up. The
 * array may move: every pointer into it is stale afterwards. */
static struct tm_entry *model_insert(struct model *m, size_t at)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 16;
        m->e = xreallocarray(m->e, m->cap, sizeof *m->e);
    }
    memmove(&m->e[at + 1], &m->e[at], (m->n - at) * sizeof *m->e);
    m->n++;
    memset(&m->e[at], 0, sizeof m->e[at]);
    return &m->e[at];
}

/* Copies an id (a UUID, at most MC_UUID_STRLEN bytes kept) into dst. */
static void model_copy_id(char dst[MC_UUID_STRLEN + 1], const char *id)
{
    snprintf(dst, MC_UUID_STRLEN + 1, "%s", id != NULL ? id : "");
}

/* Copies an identifier into dst when it is a valid one; anything else
 * (NULL, a hostile string) leaves dst as it was. */
static void model_copy_ident(char dst[IDENT_MAX + 1], const char *s)
{
    if (s != NULL && ident_valid(s))
        snprintf(dst, IDENT_MAX + 1, "%s", s);
}

/* A new turn in state TM_WAITING, every unknown figure at its "unknown". */
static void model_turn_init(struct tm_turn *t, const char *id, const char *run)
{
    model_copy_id(t->id, id);
    model_copy_id(t->run, run);
    buf_init(&t->reply, MODEL_REPLY_MAX);
    buf_init(&t->esc_hold, MODEL_ESC_HOLD_MAX);
    t->state = TM_WAITING;
    t->retrieve_ms = NAN;
    t->cache = -1;
    t->prompt_tokens = -1;
    t->completion_tokens = -1;
    t->usd = NAN;
    for (int s = 0; s < MC_STAGE__COUNT; s++)
        t->latency_ms[s] = NAN;
}

/* The index of the entry of kind with that id (turn id or search job), or -1. */
static long model_find_kind(const struct model *m, enum tm_entry_kind kind, const char *id)
{
    if (id == NULL || id[0] == '\0')
        return -1;
    for (size_t i = m->n; i-- > 0;) {
        const struct tm_entry *e = &m->e[i];
        if (e->kind != kind)
            continue;
        const char *eid = kind == TM_TURN ? e->u.turn.id : e->u.search.job;
        if (strcmp(eid, id) == 0)
            return (long)i;
    }
    return -1;
}

/* --- public: life cycle and additions ------------------------------------ */

struct model *model_new(void)
{
    struct model *m = xcalloc(1, sizeof *m);
    for (int s = 0; s < MC_STAGE__COUNT; s++)
        hist_init(&m->s.stage[s]);
    return m;
}

void model_clear(struct model *m)
{
    for (size_t i = 0; i < m->n; i++)
        model_entry_fini(&m->e[i]);
    xfree(m->e);
    m->e = NULL;
    m->n = m->cap = 0;
}

void model_free(struct model *m)
{
    if (m == NULL)
        return;
    model_clear(m);
    xfree(m);
}

struct tm_turn *model_add_turn(struct model *m, const char *turn_id, const char *text,
                               const char *tenant, const char *user, const char *agent)
{
    struct tm_entry *e = model_insert(m, m->n);
    e->kind = TM_TURN;
    struct tm_turn *t = &e->u.turn;
    model_turn_init(t, turn_id, turn_id);
    t->text = model_clean(text != NULL ? text : "");
    model_copy_ident(t->tenant, tenant);
    model_copy_ident(t->user, user);
    model_copy_ident(t->agent, agent);
    return t;
}

struct tm_search *model_add_search(struct model *m, const char *job, const char *query)
{
    struct tm_entry *e = model_insert(m, m->n);
    e->kind = TM_SEARCH;
    model_copy_id(e->u.search.job, job);
    e->u.search.query = model_clean(query != NULL ? query : "");
    return &e->u.search;
}

void model_notice(struct model *m, enum tm_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *raw = xvasprintf(fmt, ap);
    va_end(ap);
    struct tm_entry *e = model_insert(m, m->n);
    e->kind = TM_NOTICE;
    e->u.notice.level = level;
    e->u.notice.text = model_clean(raw);
    xfree(raw);
}

/* --- events of a turn ---------------------------------------------------- */

/* The step object of a turn.start, or NULL outside a multi-step run. */
static const cJSON *model_step(const struct mc_event *ev)
{
    const cJSON *step = cJSON_GetObjectItemCaseSensitive(ev->json, "step");
    return cJSON_IsObject(step) ? step : NULL;
}

/* A turn.start of a turn the model does not hold: when it is a later step
 * of a run the model holds, the step's entry goes right after the run's
 * newest step (notices added since stay where they were, before it).
 * Returns its index, or -1 when the turn is not ours. */
static long model_add_step(struct model *m, const struct mc_event *ev)
{
    const cJSON *step = model_step(ev);
    const char *run = mc_json_str(step, "run", NULL);
    if (run == NULL || model_find_kind(m, TM_TURN, run) < 0)
        return -1;
    size_t after = 0;
    for (size_t i = 0; i < m->n; i++)
        if (m->e[i].kind == TM_TURN && strcmp(m->e[i].u.turn.run, run) == 0)
            after = i;
    struct tm_entry *e = model_insert(m, after + 1);
    e->kind = TM_TURN;
    model_turn_init(&e->u.turn, ev->turn, run);
    return (long)(after + 1);
}

static void model_on_start(struct tm_turn *t, const struct mc_event *ev)
{
    const cJSON *j = ev->json;
    model_set_str(&t->provider, mc_json_str(j, "provider", NULL));
    model_set_str(&t->model, mc_json_str(j, "model", NULL));
    model_copy_ident(t->tenant, mc_json_str(j, "tenant", NULL));
    model_copy_ident(t->user, mc_json_str(j, "user", NULL));
    model_copy_ident(t->agent, mc_json_str(j, "agent", NULL));
    t->memory = mc_json_bool(j, "memory", t->memory);
    t->started_ms = ev->ts_ms;
    if (t->state == TM_WAITING)
        t->state = TM_STREAMING;
    const cJSON *step = model_step(ev);
    if (step != NULL) {
        t->step_index = model_int(mc_json_num(step, "index", 0), 0);
        t->step_of = model_int(mc_json_num(step, "of", 0), 0);
        model_set_str(&t->step_name, mc_json_str(step, "name", ""));
        const char *run = mc_json_str(step, "run", NULL);
        if (run != NULL)
            model_copy_id(t->run, run);
    }
}

/* Where an escape sequence that more text may still finish starts at the
 * end of s[0..n): the last ESC, when the sanitiser drops everything from
 * it on; n when there is none. A complete sequence right at the end is
 * held as well, which changes nothing: it is dropped with the next piece. */
static size_t model_esc_start(const char *s, size_t n)
{
    size_t at = n;
    while (at > 0 && s[at - 1] != '\033')
        at--;
    if (at == 0 || n - (at - 1) > MODEL_ESC_HOLD_MAX)
        return n;
    at--;
    struct buf probe;
    buf_init(&probe, 3 * (n - at) + 16);
    bool dropped = utf8_sanitize_terminal(&probe, s + at, n - at) == BUF_OK && probe.len == 0;
    buf_free(&probe);
    return dropped ? at : n;
}

/* Appends one streamed piece, sanitised. The engine never splits a
 * character across deltas, but a model may split an escape sequence (its
 * tokens do not follow them): the unfinished end of one piece waits for
 * the next, so the sequence is removed whole instead of leaving its tail
 * on the screen as text. Past the reply's bound the rest is dropped, not
 * the reply. */
static void model_on_delta(struct tm_turn *t, const struct mc_event *ev)
{
    const char *s = mc_event_str(ev, "text", "");
    size_t n = strlen(s);
    if (n == 0)
        return;
    struct buf joined;
    buf_init(&joined, SIZE_MAX);
    if (t->esc_hold.len > 0) {
        if (buf_append(&joined, t->esc_hold.data, t->esc_hold.len) != BUF_OK ||
            buf_append(&joined, s, n) != BUF_OK) {
            buf_free(&joined);
            return;
        }
        buf_reset(&t->esc_hold);
        s = joined.data;
        n = joined.len;
    }
    size_t end = model_esc_start(s, n);
    if (end < n)
        (void)buf_append(&t->esc_hold, s + end, n - end);
    n = end;
    struct buf clean;
    buf_init(&clean, n <= (SIZE_MAX - 16) / 3 ? 3 * n + 16 : SIZE_MAX);
    if (utf8_sanitize_terminal(&clean, s, n) == BUF_OK && clean.len > 0) {
        size_t room = t->reply.max - t->reply.len;
        size_t take = clean.len <= room ? clean.len : utf8_truncate(clean.data, clean.len, room);
        if (take > 0)
            (void)buf_append(&t->reply, clean.data, take);
    }
    buf_free(&clean);
    buf_free(&joined);
}

static void model_on_retrieved(struct tm_turn *t, const struct mc_event *ev)
{
    t->retrieved = true;
    model_set_str(&t->method, mc_event_str(ev, "method", NULL));
    t->k = model_int(mc_event_num(ev, "k", 0), 0);
    double ms = mc_event_num(ev, "latency_ms", NAN);
    t->retrieve_ms = isfinite(ms) ? ms : (double)NAN;
    model_free_candidates(t->cand, t->n_cand);
    t->cand = model_candidates(cJSON_GetObjectItemCaseSensitive(ev->json, "candidates"), false,
                               &t->n_cand, &t->n_kept);
}

static void model_on_skipped(struct tm_turn *t, const struct mc_event *ev)
{
    const char *stage = mc_event_str(ev, "stage", "");
    const char *reason = mc_event_str(ev, "reason", "unknown");
    if (strcmp(stage, "store") == 0) {
        t->store = TM_STORE_SKIPPED;
        model_set_str(&t->store_reason, reason);
    } else {
        /* "retrieve", and any stage a later engine adds: the turn ran
         * without recalled memories. */
        model_set_str(&t->retrieve_skip, reason);
    }
}

/* "code: message" of an error event (just the code without a message). */
static char *model_error_text(const struct mc_event *ev)
{
    const char *code = mc_event_str(ev, "code", "error");
    const char *msg = mc_event_str(ev, "message", "");
    return msg[0] != '\0' ? model_clean_fmt("%s: %s", code, msg) : model_clean(code);
}

static void model_on_error(struct tm_turn *t, const struct mc_event *ev)
{
    char *msg = model_error_text(ev);
    t->state = TM_FAILED;
    if (t->error == NULL) {
        t->error = msg;
    } else {
        /* A second error (code io after the failure itself): keep both,
         * the cause first. */
        char *both = model_clean_fmt("%s; %s", t->error, msg);
        xfree(t->error);
        xfree(msg);
        t->error = both;
    }
}

/* ms as microseconds for the histograms, clamped to what int64 holds. */
static int64_t model_us(double ms)
{
    double us = ms * 1000.0;
    if (!(us > 0.0))
        return 0;
    if (us >= 9.0e18)
        return INT64_MAX;
    return (int64_t)llround(us);
}

static void model_series_push(struct tm_session *s, double v)
{
    if (s->n_series == MODEL_SERIES) {
        memmove(&s->series[0], &s->series[1], (MODEL_SERIES - 1) * sizeof s->series[0]);
        s->n_series--;
    }
    s->series[s->n_series++] = v;
}

/* A shared backend on Redis could not serve the turn: said once per
 * outage as a notice, counted always (the metrics pane). */
static void model_on_fallback(struct model *m, struct tm_turn *t, const struct mc_event *ev)
{
    if (!t->fell_back)
        m->s.fallbacks++;
    t->fell_back = true;
    if (m->s.fallback_told)
        return;
    m->s.fallback_told = true;
    model_notice(m, TM_ERROR, "shared %s unavailable: %s", mc_event_str(ev, "backend", "backend"),
                 mc_event_str(ev, "reason", ""));
}

static void model_on_done(struct model *m, struct tm_turn *t, const struct mc_event *ev)
{
    if (!t->fell_back)
        m->s.fallback_told = false;
    const cJSON *lat = cJSON_GetObjectItemCaseSensitive(ev->json, "latency_ms");
    for (int i = 0; i < MC_STAGE__COUNT; i++)
        t->latency_ms[i] = mc_json_num(lat, mc_stage_name((enum mc_stage)i), NAN);
    if (t->state != TM_FAILED && t->state != TM_CANCELLED)
        t->state = TM_DONE;
    m->s.turns++;
    for (int i = 0; i < MC_STAGE__COUNT; i++)
        if (!isnan(t->latency_ms[i]))
            hist_record(&m->s.stage[i], model_us(t->latency_ms[i]));
    if (!isnan(t->latency_ms[MC_STAGE_TOTAL]))
        model_series_push(&m->s, t->latency_ms[MC_STAGE_TOTAL]);
}

/* Applies an event of a turn the model holds; true when it changed
 * something shown. */
static bool model_apply_turn(struct model *m, struct tm_turn *t, const struct mc_event *ev)
{
    struct tm_session *s = &m->s;
    switch (ev->kind) {
    case MC_EV_TURN_START:
        model_on_start(t, ev);
        return true;
    case MC_EV_ROLLOUT:
        t->memory = mc_event_bool(ev, "memory", t->memory);
        model_set_str(&t->rollout_reason, mc_event_str(ev, "reason", "unknown"));
        return true;
    case MC_EV_MEMORY_RETRIEVED:
        model_on_retrieved(t, ev);
        return true;
    case MC_EV_MEMORY_INJECTED:
        model_set_str(&t->injected, mc_event_str(ev, "block", ""));
        t->injected_tokens = model_ll(mc_event_num(ev, "tokens", 0), 0);
        return true;
    case MC_EV_MEMORY_SKIPPED:
        model_on_skipped(t, ev);
        return true;
    case MC_EV_MEMORY_STORED:
        t->store = TM_STORE_STORED;
        return true;
    case MC_EV_MINIFY: {
        long long before = model_ll(mc_event_num(ev, "bytes_before", 0), 0);
        long long after = model_ll(mc_event_num(ev, "bytes_after", 0), 0);
        long long saved = before > after ? before - after : 0;
        t->minify_saved += saved;
        s->minify_saved += saved;
        return true;
    }
    case MC_EV_CACHE: {
        bool hit = mc_event_bool(ev, "hit", false);
        t->cache = hit ? 1 : 0;
        s->cache_lookups++;
        s->cache_hits += hit;
        return true;
    }
    case MC_EV_RATELIMIT_WAIT: {
        long long w = model_ll(mc_event_num(ev, "wait_ms", 0), 0);
        t->ratelimit_wait_ms += w > 0 ? w : 0;
        return true;
    }
    case MC_EV_BUDGET:
        s->have_budget = true;
        snprintf(s->budget_scope, sizeof s->budget_scope, "%s",
                 ident_valid(mc_event_str(ev, "scope", "")) ? mc_event_str(ev, "scope", "")
                                                            : "unknown");
        s->budget_remaining_usd = mc_event_num(ev, "remaining_usd", NAN);
        s->budget_resets_ms = (int64_t)model_ll(mc_event_num(ev, "resets_at", 0), 0);
        return true;
    case MC_EV_RETRY:
        t->retries++;
        s->retries++;
        return true;
    case MC_EV_DELTA:
        model_on_delta(t, ev);
        return true;
    case MC_EV_TOOL_CALL:
        t->tool_calls++;
        return true;
    case MC_EV_TOOL_CONFIRM:
        return false; /* the app asks the user (app.c) */
    case MC_EV_USAGE: {
        t->prompt_tokens = model_ll(mc_event_num(ev, "prompt_tokens", -1), -1);
        t->completion_tokens = model_ll(mc_event_num(ev, "completion_tokens", -1), -1);
        t->usage_estimated = mc_event_bool(ev, "estimated", false);
        if (t->prompt_tokens > 0)
            s->prompt_tokens += t->prompt_tokens;
        if (t->completion_tokens > 0)
            s->completion_tokens += t->completion_tokens;
        return true;
    }
    case MC_EV_COST:
        t->usd = mc_event_num(ev, "usd", NAN);
        if (isfinite(t->usd))
            s->usd += t->usd;
        return true;
    case MC_EV_ERROR:
        model_on_error(t, ev);
        return true;
    case MC_EV_TURN_CANCELLED:
        t->state = TM_CANCELLED;
        return true;
    case MC_EV_TURN_DONE:
        model_on_done(m, t, ev);
        return true;
    case MC_EV_BACKEND_FALLBACK:
        model_on_fallback(m, t, ev);
        return true;
    case MC_EV_TOOL_RESULT:
    case MC_EV_PROGRESS:
    case MC_EV_RESULT:
    case MC_EV__COUNT:
        break;
    }
    return false;
}

/* A `result` or `error` carrying the job of a search of the model. */
static bool model_apply_job(struct model *m, const struct mc_event *ev)
{
    long i = model_find_kind(m, TM_SEARCH, mc_event_str(ev, "job", NULL));
    if (i < 0)
        return false;
    struct tm_search *se = &m->e[i].u.search;
    model_free_candidates(se->cand, se->n_cand);
    se->cand = NULL;
    se->n_cand = 0;
    xfree(se->error);
    se->error = NULL;
    se->answered = true;
    const char *kind = mc_event_str(ev, "kind", "(none)");
    if (ev->kind == MC_EV_ERROR) {
        se->error = model_error_text(ev);
    } else if (strcmp(kind, "search") == 0) {
        /* Every item of a search was found, so each counts as kept. */
        se->cand = model_candidates(cJSON_GetObjectItemCaseSensitive(ev->json, "items"), true,
                                    &se->n_cand, NULL);
    } else {
        se->error = model_clean_fmt("unexpected answer of kind %s", kind);
    }
    return true;
}

bool model_apply(struct model *m, const struct mc_event *ev)
{
    if (ev == NULL || ev->json == NULL)
        return false;
    if (ev->kind == MC_EV_RESULT || (ev->kind == MC_EV_ERROR && ev->turn[0] == '\0'))
        return model_apply_job(m, ev);
    if (ev->turn[0] == '\0')
        return false;
    long i = model_find_kind(m, TM_TURN, ev->turn);
    if (i < 0 && ev->kind == MC_EV_TURN_START)
        i = model_add_step(m, ev);
    if (i < 0)
        return false;
    return model_apply_turn(m, &m->e[i].u.turn, ev);
}

/* --- queries --------------------------------------------------------- */

size_t model_count(const struct model *m)
{
    return m->n;
}

const struct tm_entry *model_at(const struct model *m, size_t i)
{
    return i < m->n ? &m->e[i] : NULL;
}

long model_find(const struct model *m, const char *id)
{
    long i = model_find_kind(m, TM_TURN, id);
    return i >= 0 ? i : model_find_kind(m, TM_SEARCH, id);
}

long model_latest(const struct model *m)
{
    for (size_t i = m->n; i-- > 0;)
        if (m->e[i].kind == TM_TURN || m->e[i].kind == TM_SEARCH)
            return (long)i;
    return -1;
}

bool model_busy(const struct model *m)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->e[i].kind == TM_TURN &&
            (m->e[i].u.turn.state == TM_WAITING || m->e[i].u.turn.state == TM_STREAMING))
            return true;
    return false;
}

const struct tm_session *model_session(const struct model *m)
{
    return &m->s;
}

/* --- sparkline ------------------------------------------------------- */

void model_sparkline(const double *v, size_t n, int width, struct buf *out)
{
    if (n == 0 || width <= 0)
        return;
    size_t from = n > (size_t)width ? n - (size_t)width : 0;
    double max = 0.0;
    for (size_t i = from; i < n; i++)
        if (isfinite(v[i]) && v[i] > max)
            max = v[i];
    for (size_t i = from; i < n; i++) {
        /* Eight bars: level 0 (U+2581) is 0 or less, level 7 (U+2588) the
         * largest value, the rest rounded to the nearest level. */
        int level = 0;
        if (max > 0.0 && isfinite(v[i]) && v[i] > 0.0)
            level = (int)floor(v[i] / max * 7.0 + 0.5);
        if (level > 7)
            level = 7;
        char bar[3] = {'\xe2', '\x96', (char)(0x81 + level)};
        (void)buf_append(out, bar, sizeof bar);
    }
}

/* --- Markdown export ------------------------------------------------- */

/* s line by line: the first line after first, each later one after rest
 * (a quote's "> ", a list item's "- " and its "  " continuation), each
 * ending with a newline. An empty quoted line is a bare ">". */
static void model_md_lines(struct buf *out, const char *first, const char *rest, const char *s)
{
    const char *prefix = first;
    for (const char *p = s;;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);
        if (len == 0 && strcmp(prefix, "> ") == 0)
            buf_puts(out, ">");
        else
            buf_puts(out, prefix);
        buf_append(out, p, len);
        buf_putc(out, '\n');
        if (nl == NULL)
            break;
        p = nl + 1;
        prefix = rest;
    }
}

/* s with Markdown's emphasis characters escaped, for text set in italics. */
static void model_md_escaped(struct buf *out, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\' || *s == '_' || *s == '*' || *s == '`')
            buf_putc(out, '\\');
        buf_putc(out, *s == '\n' ? ' ' : *s);
    }
}

static void model_md_italic(struct buf *out, const char *s)
{
    buf_puts(out, "_");
    model_md_escaped(out, s);
    buf_puts(out, "_\n\n");
}

/* True when s leaves a fenced code block open (an odd number of lines
 * starting with ```): a reply cut off by a cancel or an error. */
static bool model_md_open_fence(const char *s)
{
    bool open = false;
    for (const char *line = s; line != NULL;) {
        if (strncmp(line, "```", 3) == 0)
            open = !open;
        line = strchr(line, '\n');
        if (line != NULL)
            line++;
    }
    return open;
}

static void model_md_turn(struct buf *out, const struct tm_turn *t)
{
    if (t->text != NULL) {
        buf_puts(out, "## You\n\n");
        model_md_lines(out, "> ", "> ", t->text);
        buf_puts(out, "\n");
        buf_printf(out, "## %s", t->agent[0] != '\0' ? t->agent : "agent");
        if (t->provider != NULL && t->model != NULL)
            buf_printf(out, " (%s/%s)", t->provider, t->model);
        buf_puts(out, "\n\n");
    }
    if (t->step_of > 0)
        buf_printf(out, "### step %d of %d: %s\n\n", t->step_index, t->step_of,
                   t->step_name != NULL ? t->step_name : "");
    const char *reply = buf_cstr(&t->reply);
    if (reply[0] != '\0') {
        buf_puts(out, reply);
        if (reply[t->reply.len - 1] != '\n')
            buf_putc(out, '\n');
        /* Close a fence the reply left open, or the rest of the notes
         * would render as code. */
        if (model_md_open_fence(reply))
            buf_puts(out, "```\n");
        buf_putc(out, '\n');
    }
    switch (t->state) {
    case TM_WAITING:
    case TM_STREAMING:
        if (reply[0] == '\0')
            buf_puts(out, "_(no reply yet)_\n\n");
        break;
    case TM_CANCELLED:
        buf_puts(out, "_(cancelled)_\n\n");
        break;
    case TM_FAILED:
        buf_puts(out, "_(error: ");
        model_md_escaped(out, t->error != NULL ? t->error : "unknown");
        buf_puts(out, ")_\n\n");
        break;
    case TM_DONE:
        break;
    }
}

static void model_md_search(struct buf *out, const struct tm_search *se)
{
    buf_puts(out, "## Memory search: ");
    model_md_escaped(out, se->query);
    buf_puts(out, "\n\n");
    if (se->error != NULL) {
        buf_puts(out, "_(error: ");
        model_md_escaped(out, se->error);
        buf_puts(out, ")_\n\n");
        return;
    }
    if (!se->answered) {
        buf_puts(out, "_(no answer yet)_\n\n");
        return;
    }
    if (se->n_cand == 0) {
        buf_puts(out, "_(no memories found)_\n\n");
        return;
    }
    for (size_t i = 0; i < se->n_cand; i++) {
        const struct tm_candidate *c = &se->cand[i];
        model_md_lines(out, "- ", "  ", c->text);
        /* The figures on a line of their own under the item, so a memory
         * of several lines keeps them together. */
        bool score = !isnan(c->score), user = c->user_id[0] != '\0';
        if (score && user)
            buf_printf(out, "  (score %.3f, user %s)\n", c->score, c->user_id);
        else if (score)
            buf_printf(out, "  (score %.3f)\n", c->score);
        else if (user)
            buf_printf(out, "  (user %s)\n", c->user_id);
    }
    buf_puts(out, "\n");
}

void model_export_markdown(const struct model *m, struct buf *out)
{
    buf_puts(out, "# memchat conversation\n\n");
    for (size_t i = 0; i < m->n; i++) {
        const struct tm_entry *e = &m->e[i];
        switch (e->kind) {
        case TM_TURN:
            model_md_turn(out, &e->u.turn);
            break;
        case TM_SEARCH:
            model_md_search(out, &e->u.search);
            break;
        case TM_NOTICE:
            model_md_italic(out, e->u.notice.text);
            break;
        }
    }
}
