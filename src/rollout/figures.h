/*
 * The rollout figures (DESIGN.md, "Monitoring targets from the original
 * rollout plan"): per tenant, over a window of time, five figures computed
 * from the per-turn metrics table and the cost ledger only (never from
 * traces, which may be exported elsewhere), each with its sample count and
 * whether it meets its target, misses it, or has too few samples to say.
 * docs/rollout.md gives each figure's exact definition; the numbers below
 * are the targets and the minimum samples it documents.
 */
#ifndef MEMCHAT_ROLLOUT_FIGURES_H
#define MEMCHAT_ROLLOUT_FIGURES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/ident.h"

struct db;

/* The targets (each must be beaten strictly). */
#define FIGURES_RETRIEVAL_P95_MS 100.0 /* retrieval latency p95 < 100 ms */
#define FIGURES_STORAGE_RATE     0.99  /* storage success > 99 % */
#define FIGURES_RELEVANCE        0.8   /* context relevance > 0.8 */
#define FIGURES_ADDED_MS         200.0 /* added latency of memory < 200 ms */

/* Minimum samples for a verdict: figures 1-3 need this many turns, figures
 * 4 and 5 this many on each side (memory on, memory off). */
#define FIGURES_MIN_TURNS 5
#define FIGURES_MIN_SIDE  3

/* A figure's verdict. */
enum figure_state {
    FIGURE_NO_DATA = 0, /* fewer samples than the minimum */
    FIGURE_MET,
    FIGURE_NOT_MET,
};

/* 1. Retrieval latency: lat_retrieve of memory-on turns with status ok. */
struct figure_retrieval {
    double p50_ms, p95_ms; /* 0 when n is 0 */
    long long n;
    enum figure_state state;
};

/* 2. Storage success: memory-on turns whose store outcome is known. */
struct figure_storage {
    double rate; /* stored / n; 0 when n is 0 */
    long long stored, n;
    enum figure_state state;
};

/* 3. Context relevance: mean of relevance over memory-on turns that
 * injected at least one memory. */
struct figure_relevance {
    double mean; /* 0 when n is 0 */
    long long n;
    enum figure_state state;
};

/* 4. Added latency: median lat_total of memory-on ok turns minus that of
 * memory-off ok turns. */
struct figure_added {
    double on_ms, off_ms, added_ms; /* medians and their difference; 0 when a side is empty */
    long long n_on, n_off;
    enum figure_state state;
};

/* What figure 5 was judged on. */
enum figure_cost_basis {
    FIGURE_BASIS_NONE = 0, /* too few samples for either */
    FIGURE_BASIS_USD,
    FIGURE_BASIS_TOKENS, /* prompt tokens */
};

/* 5. Cost per request on multi-turn conversations (ledger rows with
 * status ok whose conversation has two or more ledger rows). Means are 0
 * when their count is 0. */
struct figure_cost {
    long long n_on, n_off;         /* qualifying rows per side */
    double usd_on, usd_off;        /* mean usd per priced row */
    long long n_usd_on, n_usd_off; /* priced rows (usd not NULL) */
    double tokens_on, tokens_off;  /* mean prompt tokens per row that reports them */
    long long n_tokens_on, n_tokens_off;
    enum figure_cost_basis basis;
    enum figure_state state; /* MET when the judged mean is lower with memory on */
};

/* One tenant's figures. */
struct tenant_figures {
    char tenant[IDENT_MAX + 1];
    long long turns, turns_on, turns_off; /* turn_metrics rows in the window */
    struct figure_retrieval retrieval;
    struct figure_storage storage;
    struct figure_relevance relevance;
    struct figure_added added;
    struct figure_cost cost;
};

/* The figures of every tenant asked for, sorted by tenant. Owned. */
struct figures {
    struct tenant_figures *v;
    size_t n;
};

/* Computes the figures of the window since_ms <= ts_ms <= now_ms
 * (INT64_MIN: from the start) for one tenant, or for every tenant with a
 * turn_metrics or ledger row in the window when tenant is NULL (a named
 * tenant without rows still gets an entry, all NO_DATA). db NULL: no data
 * file, no rows. 0, or -1 with a message naming the data file; free *out
 * with figures_free() either way. */
int figures_compute(struct db *db, const char *tenant, int64_t since_ms, int64_t now_ms,
                    struct figures *out, char *err, size_t errlen);
/* Frees what figures_compute allocated and zeroes *f; NULL is a no-op. */
void figures_free(struct figures *f);
/* The entry of tenant in f, or NULL. */
const struct tenant_figures *figures_find(const struct figures *f, const char *tenant);

/* "met", "not_met", "no_data" (the JSON spelling; static strings). */
const char *figures_state_name(enum figure_state s);
/* "usd", "prompt_tokens", or NULL for FIGURE_BASIS_NONE. */
const char *figures_basis_name(enum figure_cost_basis b);

/* The value at quantile q (0..1) of v[0..n) by linear interpolation
 * between closest ranks (NumPy's and R's default): position q*(n-1) in
 * the sorted values. Sorts v in place. 0 when n is 0. */
double figures_quantile(double *v, size_t n, double q);

#endif
