/*
 * The TUI's view model: what the session has shown, built only from the
 * engine's events and the front end's own notices, without curses. Each
 * entry of the conversation is a turn (one agent step is one turn), a
 * memory search, or a notice; each turn keeps everything the context and
 * metrics panes show for it (its candidates with their scores, the injected
 * block, its own memory's store state, its stage latencies, tokens, cost).
 * The session keeps the aggregates (latency percentiles and the series for
 * sparklines, token and cost totals, cache hit rate, JSON bytes saved,
 * retries). All text that came from a model, a memory or the data file is
 * sanitised (utf8_sanitize_terminal) when it enters the model, so the
 * drawing code can trust every string it finds here.
 */
#ifndef MEMCHAT_TUI_MODEL_H
#define MEMCHAT_TUI_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memchat/event.h"
#include "util/buf.h"
#include "util/hist.h"
#include "util/ident.h"

/* Turns kept for the sparklines (the newest). */
#define MODEL_SERIES 64

enum tm_entry_kind {
    TM_TURN,   /* a turn: the user's text (first step only) and the reply */
    TM_SEARCH, /* /search: the query and its memories, as candidates */
    TM_NOTICE, /* a line from the front end: command feedback, errors */
};

enum tm_turn_state {
    TM_WAITING = 0, /* submitted, turn.start not seen */
    TM_STREAMING,   /* turn.start seen, turn.done not */
    TM_DONE,
    TM_CANCELLED, /* turn.cancelled: the partial reply is kept */
    TM_FAILED,    /* error: the message is in error */
};

/* The turn's own memory (its exchange): the store stage's report. */
enum tm_store_state {
    TM_STORE_PENDING = 0, /* not reported yet */
    TM_STORE_STORED,
    TM_STORE_SKIPPED, /* store_reason says why (events.md reasons) */
};

enum tm_level { TM_INFO, TM_ERROR };

/* One memory as recalled (memory.retrieved) or found (/search). Scores
 * the method did not compute are NAN. */
struct tm_candidate {
    char *id, *text, *user_id; /* text sanitised */
    int64_t created_ms;        /* 0 when unknown */
    double score, vector, keyword, fused, mmr;
    bool kept;
};

struct tm_turn {
    char id[MC_UUID_STRLEN + 1];
    char run[MC_UUID_STRLEN + 1]; /* the run's first turn (== id outside a run) */
    int step_index, step_of;      /* 0, 0 outside a multi-step run */
    char *step_name;              /* NULL outside a run */
    char *text;                   /* the user's message; NULL for later steps */
    char tenant[IDENT_MAX + 1], user[IDENT_MAX + 1], agent[IDENT_MAX + 1];
    char *provider, *model; /* from turn.start; NULL before */
    struct buf reply;       /* sanitised, as streamed so far */
    struct buf esc_hold;    /* raw: an escape sequence the last delta left unfinished */
    enum tm_turn_state state;
    char *error; /* "code: message" when TM_FAILED */
    /* rollout */
    bool memory;          /* memory on for this turn */
    char *rollout_reason; /* NULL until the rollout event */
    /* memory.retrieved / memory.injected / memory.skipped (retrieve) */
    bool retrieved; /* a memory.retrieved event came */
    char *method;   /* "mmr", ... */
    int k;
    double retrieve_ms; /* NAN when unknown */
    struct tm_candidate *cand;
    size_t n_cand, n_kept;
    char *injected; /* the exact block; NULL when none */
    long long injected_tokens;
    char *retrieve_skip; /* memory.skipped (retrieve) reason, or NULL */
    /* the store stage */
    enum tm_store_state store;
    char *store_reason; /* when skipped */
    /* markers and figures */
    int cache; /* -1 not consulted, 0 miss, 1 hit */
    int retries;
    int tool_calls;
    bool fell_back;                             /* a backend.fallback came */
    long long ratelimit_wait_ms;                /* summed ratelimit.wait */
    long long minify_saved;                     /* bytes_before - bytes_after, summed */
    long long prompt_tokens, completion_tokens; /* -1 unknown */
    bool usage_estimated;
    double usd;                         /* NAN: no price or not reported */
    double latency_ms[MC_STAGE__COUNT]; /* turn.done; NAN when null */
    int64_t started_ms;                 /* ts_ms of turn.start; 0 before */
};

struct tm_search {
    char job[MC_UUID_STRLEN + 1];
    char *query;
    bool answered;
    char *error; /* the job's error, or NULL */
    struct tm_candidate *cand;
    size_t n_cand;
};

struct tm_entry {
    enum tm_entry_kind kind;
    union {
        struct tm_turn turn;
        struct tm_search search;
        struct {
            enum tm_level level;
            char *text; /* sanitised */
        } notice;
    } u;
};

/* The session's aggregates over every finished turn. */
struct tm_session {
    long long turns;                    /* turn.done seen */
    struct hist stage[MC_STAGE__COUNT]; /* microseconds, per stage */
    double series[MODEL_SERIES];        /* total latency (ms) of the newest turns, oldest first */
    size_t n_series;
    long long prompt_tokens, completion_tokens;
    double usd; /* sum of known costs */
    long long cache_lookups, cache_hits;
    long long minify_saved; /* JSON bytes saved */
    long long retries;
    /* backend.fallback: turns that fell back, and whether the current
     * outage was already told (once, until a turn runs without one) */
    long long fallbacks;
    bool fallback_told;
    /* the newest budget event */
    bool have_budget;
    char budget_scope[16];
    double budget_remaining_usd;
    int64_t budget_resets_ms;
};

struct model;

/* An empty model. Never NULL. Free with model_free. */
struct model *model_new(void);
/* Frees m and every entry. NULL ok. */
void model_free(struct model *m);

/* Adds the turn the front end just submitted (id from
 * mc_engine_submit_turn, text as typed, who it is for) in state
 * TM_WAITING, and returns it (valid until the next model_ call that adds
 * an entry). */
struct tm_turn *model_add_turn(struct model *m, const char *turn_id, const char *text,
                               const char *tenant, const char *user, const char *agent);
/* Adds a /search entry waiting for job's result. */
struct tm_search *model_add_search(struct model *m, const char *job, const char *query);
/* Adds a notice (printf format); the text is sanitised. */
void model_notice(struct model *m, enum tm_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Applies one event: turn events update their turn (a turn.start whose
 * step.run names a turn of the model adds the step as a new turn entry
 * after the run's latest step); a `result` or `error` carrying the job of
 * a search fills it. Returns true when the event changed anything shown
 * (the caller redraws), false for events of unknown turns or jobs. */
bool model_apply(struct model *m, const struct mc_event *ev);

size_t model_count(const struct model *m);
/* Entry i (0 = oldest), or NULL when out of range. */
const struct tm_entry *model_at(const struct model *m, size_t i);
/* The index of the entry of turn id (or of search job id), or -1. */
long model_find(const struct model *m, const char *id);
/* The index of the newest turn or search entry, or -1. */
long model_latest(const struct model *m);
/* True while a turn is waiting or streaming. */
bool model_busy(const struct model *m);
const struct tm_session *model_session(const struct model *m);
/* Forgets every entry (not the session's aggregates): /new keeps the
 * figures of the session. */
void model_clear(struct model *m);

/* Appends to out a sparkline of v[0..n) in at most width cells, one of
 * "▁▂▃▄▅▆▇█" each, scaled from 0 to the largest value (the newest values
 * when n > width). Nothing for n == 0. */
void model_sparkline(const double *v, size_t n, int width, struct buf *out);
/* Appends the conversation as Markdown: a heading per turn with who
 * answered, the user's text as a quote, the reply as it is (cancelled and
 * failed turns say so), notices in italics; searches as lists. */
void model_export_markdown(const struct model *m, struct buf *out);

#endif
