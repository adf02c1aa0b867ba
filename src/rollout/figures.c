/*
 * The rollout figures (rollout/figures.h), from two statements: the window's
 * turn_metrics rows, in tenant order, folded one tenant at a time into the
 * latency lists and counts of figures 1 to 4; and the ledger's sums per
 * tenant and memory on/off over the window's multi-turn conversations, for
 * figure 5. Latency percentiles are exact (the window's values are sorted),
 * not a histogram's bucket edges, so the figures a person works out by hand
 * from the rows are the figures printed. docs/rollout.md is the reference
 * for each definition; change both together.
 */
#include "config.h"

#include "rollout/figures.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "store/db.h"
#include "util/alloc.h"
#include "util/msg.h"

/* Columns: 0 tenant, 1 memory, 2 status, 3 lat_retrieve, 4 lat_total,
 * 5 stored, 6 recalled, 7 relevance. */
#define FIGURES_TURNS_SELECT                                                              \
    "SELECT tenant, memory, status, lat_retrieve, lat_total, stored, recalled, relevance" \
    " FROM turn_metrics WHERE ts_ms >= ?1 AND ts_ms <= ?2"
static const char figures_turns_all_sql[] = FIGURES_TURNS_SELECT " ORDER BY tenant";
static const char figures_turns_one_sql[] = FIGURES_TURNS_SELECT " AND tenant = ?3";

/* Figure 5's rows: ok turns of the window whose conversation has two or
 * more ledger rows (of any status, at any time: a conversation that began
 * before the window is still multi-turn). Columns: 0 tenant, 1 memory,
 * 2 rows, 3 priced rows, 4 their usd, 5 rows with prompt tokens, 6 those
 * tokens. TOTAL() is 0.0 for no values, where SUM() would be NULL. */
#define FIGURES_COST_SELECT                                                     \
    "SELECT l.tenant, l.memory, COUNT(*), COUNT(l.usd), TOTAL(l.usd),"          \
    " COUNT(l.prompt_tokens), TOTAL(l.prompt_tokens) FROM ledger l"             \
    " WHERE l.ts_ms >= ?1 AND l.ts_ms <= ?2 AND l.status = 'ok'"                \
    " AND l.conversation IS NOT NULL"                                           \
    " AND (SELECT COUNT(*) FROM ledger c WHERE c.conversation = l.conversation" \
    " AND c.tenant = l.tenant) >= 2"
static const char figures_cost_all_sql[] =
    FIGURES_COST_SELECT " GROUP BY l.tenant, l.memory ORDER BY l.tenant";
static const char figures_cost_one_sql[] =
    FIGURES_COST_SELECT " AND l.tenant = ?3 GROUP BY l.tenant, l.memory";

/* A growing list of latencies. */
struct figures_list {
    double *v;
    size_t n, cap;
};

static void figures_list_add(struct figures_list *l, double x)
{
    if (l->n == l->cap) {
        l->cap = l->cap * 2 + 16;
        l->v = xreallocarray(l->v, l->cap, sizeof *l->v);
    }
    l->v[l->n++] = x;
}

/* One tenant's turn rows while they are read. */
struct figures_acc {
    struct figures_list retrieve, total_on, total_off;
    long long turns, turns_on, turns_off;
    long long stored, store_known;
    double relevance_sum;
    long long relevance_n;
};

static void figures_acc_reset(struct figures_acc *a)
{
    struct figures_list r = a->retrieve, on = a->total_on, off = a->total_off;
    memset(a, 0, sizeof *a);
    /* Keep the arrays for the next tenant; only their lengths restart. */
    a->retrieve = (struct figures_list){r.v, 0, r.cap};
    a->total_on = (struct figures_list){on.v, 0, on.cap};
    a->total_off = (struct figures_list){off.v, 0, off.cap};
}

static void figures_acc_free(struct figures_acc *a)
{
    xfree(a->retrieve.v);
    xfree(a->total_on.v);
    xfree(a->total_off.v);
    memset(a, 0, sizeof *a);
}

static int figures_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double figures_quantile(double *v, size_t n, double q)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, figures_cmp_double);
    if (q <= 0)
        return v[0];
    if (q >= 1)
        return v[n - 1];
    double pos = q * (double)(n - 1);
    size_t lo = (size_t)pos;
    size_t hi = lo + 1 < n ? lo + 1 : lo;
    return v[lo] + (pos - (double)lo) * (v[hi] - v[lo]);
}

/* The entry of tenant, inserted in order when absent. */
static struct tenant_figures *figures_slot(struct figures *f, size_t *cap, const char *tenant)
{
    size_t lo = 0, hi = f->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->v[mid].tenant, tenant);
        if (c == 0)
            return &f->v[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (f->n == *cap) {
        *cap = *cap * 2 + 8;
        f->v = xreallocarray(f->v, *cap, sizeof *f->v);
    }
    memmove(&f->v[lo + 1], &f->v[lo], (f->n - lo) * sizeof *f->v);
    f->n++;
    struct tenant_figures *t = &f->v[lo];
    memset(t, 0, sizeof *t);
    snprintf(t->tenant, sizeof t->tenant, "%s", tenant);
    return t;
}

/* Figures 1 to 4 of one tenant from its folded rows. */
static void figures_finish(struct tenant_figures *t, struct figures_acc *a)
{
    t->turns = a->turns;
    t->turns_on = a->turns_on;
    t->turns_off = a->turns_off;

    struct figure_retrieval *r = &t->retrieval;
    r->n = (long long)a->retrieve.n;
    r->p50_ms = figures_quantile(a->retrieve.v, a->retrieve.n, 0.50);
    r->p95_ms = figures_quantile(a->retrieve.v, a->retrieve.n, 0.95);
    r->state = r->n < FIGURES_MIN_TURNS               ? FIGURE_NO_DATA
               : r->p95_ms < FIGURES_RETRIEVAL_P95_MS ? FIGURE_MET
                                                      : FIGURE_NOT_MET;

    struct figure_storage *s = &t->storage;
    s->n = a->store_known;
    s->stored = a->stored;
    s->rate = s->n > 0 ? (double)s->stored / (double)s->n : 0;
    s->state = s->n < FIGURES_MIN_TURNS         ? FIGURE_NO_DATA
               : s->rate > FIGURES_STORAGE_RATE ? FIGURE_MET
                                                : FIGURE_NOT_MET;

    struct figure_relevance *v = &t->relevance;
    v->n = a->relevance_n;
    v->mean = v->n > 0 ? a->relevance_sum / (double)v->n : 0;
    v->state = v->n < FIGURES_MIN_TURNS      ? FIGURE_NO_DATA
               : v->mean > FIGURES_RELEVANCE ? FIGURE_MET
                                             : FIGURE_NOT_MET;

    struct figure_added *d = &t->added;
    d->n_on = (long long)a->total_on.n;
    d->n_off = (long long)a->total_off.n;
    d->on_ms = figures_quantile(a->total_on.v, a->total_on.n, 0.5);
    d->off_ms = figures_quantile(a->total_off.v, a->total_off.n, 0.5);
    bool both = d->n_on > 0 && d->n_off > 0;
    d->added_ms = both ? d->on_ms - d->off_ms : 0;
    d->state = d->n_on < FIGURES_MIN_SIDE || d->n_off < FIGURES_MIN_SIDE ? FIGURE_NO_DATA
               : d->added_ms < FIGURES_ADDED_MS                          ? FIGURE_MET
                                                                         : FIGURE_NOT_MET;
}

/* Folds one turn_metrics row (the statement's current row) into a. */
static void figures_fold(struct figures_acc *a, sqlite3_stmt *st)
{
    bool memory = sqlite3_column_int(st, 1) != 0;
    const char *status = (const char *)sqlite3_column_text(st, 2);
    bool ok = status != NULL && strcmp(status, "ok") == 0;
    a->turns++;
    if (memory)
        a->turns_on++;
    else
        a->turns_off++;
    if (memory && ok && sqlite3_column_type(st, 3) != SQLITE_NULL)
        figures_list_add(&a->retrieve, sqlite3_column_double(st, 3));
    if (ok && sqlite3_column_type(st, 4) != SQLITE_NULL)
        figures_list_add(memory ? &a->total_on : &a->total_off, sqlite3_column_double(st, 4));
    /* NULL stored: not attempted, or the background store has not
     * reported yet; neither is a success or a failure. */
    if (memory && sqlite3_column_type(st, 5) != SQLITE_NULL) {
        a->store_known++;
        a->stored += sqlite3_column_int(st, 5) == 1;
    }
    if (memory && sqlite3_column_type(st, 6) != SQLITE_NULL && sqlite3_column_int64(st, 6) > 0 &&
        sqlite3_column_type(st, 7) != SQLITE_NULL) {
        double rel = sqlite3_column_double(st, 7);
        if (isfinite(rel)) {
            a->relevance_sum += rel;
            a->relevance_n++;
        }
    }
}

/* Prepares sql and binds the window (and the tenant when not NULL). */
static sqlite3_stmt *figures_prepare(struct db *db, const char *sql, const char *what,
                                     int64_t since_ms, int64_t now_ms, const char *tenant,
                                     char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db_handle(db), sql, -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 1, since_ms);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 2, now_ms);
    if (rc == SQLITE_OK && tenant != NULL)
        rc = sqlite3_bind_text(st, 3, tenant, -1, SQLITE_STATIC);
    if (rc != SQLITE_OK) {
        db_set_error(db, what, err, errlen);
        sqlite3_finalize(st);
        return NULL;
    }
    return st;
}

static int figures_turns(struct db *db, const char *tenant, int64_t since_ms, int64_t now_ms,
                         struct figures *out, size_t *cap, char *err, size_t errlen)
{
    static const char what[] = "rollout figures: reading turn_metrics";
    sqlite3_stmt *st =
        figures_prepare(db, tenant != NULL ? figures_turns_one_sql : figures_turns_all_sql, what,
                        since_ms, now_ms, tenant, err, errlen);
    if (st == NULL)
        return -1;
    struct figures_acc a;
    memset(&a, 0, sizeof a);
    char cur[IDENT_MAX + 1] = "";
    bool have = false;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        if (t == NULL)
            continue;
        if (have && strcmp(cur, t) != 0) {
            figures_finish(figures_slot(out, cap, cur), &a);
            figures_acc_reset(&a);
        }
        snprintf(cur, sizeof cur, "%s", t);
        have = true;
        figures_fold(&a, st);
    }
    if (rc == SQLITE_DONE && have)
        figures_finish(figures_slot(out, cap, cur), &a);
    if (rc != SQLITE_DONE)
        db_set_error(db, what, err, errlen);
    figures_acc_free(&a);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* Figure 5's verdict from the sums already in c. */
static void figures_cost_finish(struct figure_cost *c, double usd_on_sum, double usd_off_sum)
{
    bool usd = c->n_usd_on >= FIGURES_MIN_SIDE && c->n_usd_off >= FIGURES_MIN_SIDE &&
               usd_on_sum + usd_off_sum > 0;
    bool tokens = c->n_tokens_on >= FIGURES_MIN_SIDE && c->n_tokens_off >= FIGURES_MIN_SIDE;
    c->basis = usd ? FIGURE_BASIS_USD : tokens ? FIGURE_BASIS_TOKENS : FIGURE_BASIS_NONE;
    if (c->basis == FIGURE_BASIS_NONE)
        c->state = FIGURE_NO_DATA;
    else if (c->basis == FIGURE_BASIS_USD)
        c->state = c->usd_on < c->usd_off ? FIGURE_MET : FIGURE_NOT_MET;
    else
        c->state = c->tokens_on < c->tokens_off ? FIGURE_MET : FIGURE_NOT_MET;
}

static int figures_cost(struct db *db, const char *tenant, int64_t since_ms, int64_t now_ms,
                        struct figures *out, size_t *cap, char *err, size_t errlen)
{
    static const char what[] = "rollout figures: reading the ledger";
    sqlite3_stmt *st =
        figures_prepare(db, tenant != NULL ? figures_cost_one_sql : figures_cost_all_sql, what,
                        since_ms, now_ms, tenant, err, errlen);
    if (st == NULL)
        return -1;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        if (t == NULL)
            continue;
        struct figure_cost *c = &figures_slot(out, cap, t)->cost;
        bool on = sqlite3_column_int(st, 1) != 0;
        long long rows = sqlite3_column_int64(st, 2), priced = sqlite3_column_int64(st, 3);
        long long with_tokens = sqlite3_column_int64(st, 5);
        double usd = sqlite3_column_double(st, 4), toks = sqlite3_column_double(st, 6);
        double usd_mean = priced > 0 ? usd / (double)priced : 0;
        double tok_mean = with_tokens > 0 ? toks / (double)with_tokens : 0;
        if (on) {
            c->n_on = rows;
            c->n_usd_on = priced;
            c->usd_on = usd_mean;
            c->n_tokens_on = with_tokens;
            c->tokens_on = tok_mean;
        } else {
            c->n_off = rows;
            c->n_usd_off = priced;
            c->usd_off = usd_mean;
            c->n_tokens_off = with_tokens;
            c->tokens_off = tok_mean;
        }
    }
    if (rc != SQLITE_DONE)
        db_set_error(db, what, err, errlen);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return -1;
    for (size_t i = 0; i < out->n; i++) {
        struct figure_cost *c = &out->v[i].cost;
        figures_cost_finish(c, c->usd_on * (double)c->n_usd_on, c->usd_off * (double)c->n_usd_off);
    }
    return 0;
}

int figures_compute(struct db *db, const char *tenant, int64_t since_ms, int64_t now_ms,
                    struct figures *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (tenant != NULL && db_check_ident("rollout figures", "tenant", tenant, err, errlen) != 0)
        return -1;
    size_t cap = 0;
    if (tenant != NULL)
        (void)figures_slot(out, &cap, tenant);
    if (db == NULL)
        return 0;
    if (figures_turns(db, tenant, since_ms, now_ms, out, &cap, err, errlen) != 0 ||
        figures_cost(db, tenant, since_ms, now_ms, out, &cap, err, errlen) != 0)
        return -1;
    return 0;
}

void figures_free(struct figures *f)
{
    if (f == NULL)
        return;
    xfree(f->v);
    memset(f, 0, sizeof *f);
}

const struct tenant_figures *figures_find(const struct figures *f, const char *tenant)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->v[i].tenant, tenant) == 0)
            return &f->v[i];
    return NULL;
}

const char *figures_state_name(enum figure_state s)
{
    switch (s) {
    case FIGURE_NO_DATA:
        return "no_data";
    case FIGURE_MET:
        return "met";
    case FIGURE_NOT_MET:
        return "not_met";
    }
    return "no_data";
}

const char *figures_basis_name(enum figure_cost_basis b)
{
    switch (b) {
    case FIGURE_BASIS_NONE:
        return NULL;
    case FIGURE_BASIS_USD:
        return "usd";
    case FIGURE_BASIS_TOKENS:
        return "prompt_tokens";
    }
    return NULL;
}
