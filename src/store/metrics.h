/*
 * The per-turn metrics table: one row per turn (tenant, user, agent,
 * provider, model, memory on/off, each stage's latency, status, tokens, and
 * whether the turn's memory was stored). The turn worker inserts the row
 * when the turn ends; the background worker records the store result.
 * The rollout view and `memchat rollout` read these rows.
 */
#ifndef MEMCHAT_STORE_METRICS_H
#define MEMCHAT_STORE_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memchat/event.h"

struct db;

/* How a turn's memory store went; zero (unknown) is stored as NULL, so a
 * row written before the store stage ran reads as "not known". */
enum metrics_store {
    METRICS_STORE_UNKNOWN = 0, /* not attempted (skipped) or not yet known */
    METRICS_STORE_OK,
    METRICS_STORE_FAILED,
};

struct turn_metrics {
    const char *turn; /* UUIDv7, the primary key */
    int64_t ts_ms;    /* when the turn started, Unix ms */
    const char *tenant, *user, *agent, *provider, *model;
    bool memory;                                /* memory on for this turn */
    double latency_ms[MC_STAGE__COUNT];         /* a negative value is stored as NULL */
    const char *status;                         /* "ok", "error:<code>" or "cancelled" */
    long long prompt_tokens, completion_tokens; /* -1 is NULL */
    double cost_usd;                            /* negative is NULL (no price) */
    enum metrics_store store;                   /* the memory store stage's outcome */
    double store_ms;                            /* its latency; NULL unless stored or failed */
    const char *rollout;      /* the rule that decided memory (the rollout event's reason) */
    long long recalled;       /* memories injected; -1 is NULL (memory off) */
    double relevance;         /* their mean similarity to the message; stored only when
                                 recalled > 0 (else NULL) */
    const char *conversation; /* the turn's conversation; NULL outside one */
    int step;                 /* agent step, from 1; 0 is NULL (not a step) */
};

/* Inserts one row (turn, tenant, user, agent and status required; provider
 * and model may be NULL). 0, or -1 with a message in err (also when the
 * turn already has a row). */
int metrics_insert_turn(struct db *db, const struct turn_metrics *m, char *err, size_t errlen);
/* Records the memory store outcome of a turn: stored = 1, failed = 0,
 * skipped = -1 (NULL), and its latency (negative = NULL). 0 updated, 1 when
 * the turn has no row (its insert failed or has not happened yet), -1 error;
 * err holds a message for both 1 and -1. */
int metrics_set_store(struct db *db, const char *turn, int stored, double latency_ms, char *err,
                      size_t errlen);

/* One row read back (tests, rollout figures). The strings are the caller's,
 * freed by metrics_row_free(); provider and model are NULL when unset. */
struct metrics_row {
    char *turn, *tenant, *user, *agent, *provider, *model, *status;
    int64_t ts_ms;
    bool memory;
    double latency_ms[MC_STAGE__COUNT];         /* -1 for NULL */
    long long prompt_tokens, completion_tokens; /* -1 for NULL */
    double cost_usd;                            /* -1 for NULL */
    int stored;                                 /* 1, 0, or -1 for NULL */
    double store_latency_ms;                    /* -1 for NULL */
    char *rollout, *conversation;               /* NULL for NULL */
    long long recalled;                         /* -1 for NULL */
    double relevance;                           /* NAN for NULL */
    int step;                                   /* 0 for NULL */
};

/* Reads the row of turn into *row (zeroed first). 0 found, 1 not found,
 * -1 error; free a found row with metrics_row_free(). */
int metrics_get_turn(struct db *db, const char *turn, struct metrics_row *row, char *err,
                     size_t errlen);
/* Frees the strings of a row read by metrics_get_turn() and zeroes it;
 * NULL is a no-op. */
void metrics_row_free(struct metrics_row *row);

#endif
