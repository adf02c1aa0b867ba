/*
 * The rollout's status as front ends show it: the persisted settings, then
 * one row per tenant that has its own setting or turns in a window, each
 * with what a plain turn would get now and which rule says so, what the
 * tenant spent in the window, and its five figures. Built once from the
 * data file (reads only) and shown as text by `memchat rollout status`, as
 * JSON by its --json, and answered by the engine's status job (the TUI's
 * /rollout). docs/rollout.md documents the fields.
 */
#ifndef MEMCHAT_ROLLOUT_STATUS_H
#define MEMCHAT_ROLLOUT_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rollout/figures.h"
#include "rollout/rollout.h"

struct cJSON;
struct db;

/* One tenant's row. */
struct rollout_row {
    const char *tenant;
    const struct rollout_tenant_setting *own; /* NULL: none */
    const struct tenant_figures *fig;         /* every figure NO_DATA when no rows */
    struct rollout_decision now;              /* a plain turn, now */
    double spent_usd;                         /* known costs in the window */
    long long unpriced;                       /* turns in the window without a price */
};

/* The whole status; rollout_view_free frees it. */
struct rollout_view {
    int64_t now_ms, since_ms; /* since INT64_MIN: everything */
    bool rag;                 /* RAG_ENABLED */
    struct rollout_state state;
    struct figures figs;
    struct rollout_row *rows;
    size_t n_rows;
};

/* Reads the status from db (NULL: no data file yet, so nothing is set and
 * no turn ran) for the window [since_ms, now_ms]. 0, or -1 with a message
 * in err. A row whose decision or spending cannot be read keeps its
 * figures and gets the first such message in warn ("" when none). */
int rollout_view_build(struct db *db, bool rag, int64_t since_ms, int64_t now_ms,
                       struct rollout_view *v, char *warn, size_t warnlen, char *err,
                       size_t errlen);
/* Frees what rollout_view_build made. */
void rollout_view_free(struct rollout_view *v);
/* The status as a JSON object: now_ms, since_ms, global, percent,
 * rag_enabled, tenants [...]. Caller frees with cJSON_Delete. */
struct cJSON *rollout_view_json(const struct rollout_view *v);
/* "on", "off", "unset". */
const char *rollout_tri_name(enum rollout_tri t);

#endif
