/*
 * The rollout status (status.h): the settings and figures read together,
 * each tenant decided as a plain turn would be now, and its JSON form,
 * shared by `memchat rollout status` and the engine's status job.
 */
#include "config.h"

#include "rollout/status.h"

#include <cJSON.h>
#include <stdio.h>
#include <string.h>

#include "store/ledger.h"
#include "util/alloc.h"

static const struct tenant_figures rollout_no_figures; /* every figure NO_DATA */

const char *rollout_tri_name(enum rollout_tri t)
{
    return t == ROLLOUT_ON ? "on" : t == ROLLOUT_OFF ? "off" : "unset";
}

/* Fills one row's decision and spending; the first failure goes to warn. */
static void rollout_row_read(struct db *db, const struct rollout_view *v, struct rollout_row *r,
                             char *warn, size_t warnlen)
{
    struct rollout_input in = {r->tenant, ROLLOUT_UNSET, ROLLOUT_UNSET, v->rag};
    char err[1024] = "";
    int rc = rollout_decide(db, &in, &r->now, err, sizeof err);
    if (rc == 0 && db != NULL)
        rc = ledger_spent_usd(db, LEDGER_SCOPE_TENANT, r->tenant, NULL, v->since_ms, v->now_ms + 1,
                              &r->spent_usd, &r->unpriced, err, sizeof err);
    if (rc != 0 && warn[0] == '\0')
        snprintf(warn, warnlen, "%s", err);
}

/* The tenants with a setting or with turns, in order (both lists are
 * sorted). */
static void rollout_rows(struct rollout_view *v, struct db *db, char *warn, size_t warnlen)
{
    const struct rollout_state *st = &v->state;
    v->rows = xcalloc(st->n_tenants + v->figs.n + 1, sizeof *v->rows);
    size_t i = 0, j = 0;
    while (i < st->n_tenants || j < v->figs.n) {
        int c = i == st->n_tenants ? 1
                : j == v->figs.n   ? -1
                                   : strcmp(st->tenants[i].tenant, v->figs.v[j].tenant);
        struct rollout_row *r = &v->rows[v->n_rows++];
        r->own = c <= 0 ? &st->tenants[i++] : NULL;
        r->fig = c >= 0 ? &v->figs.v[j++] : &rollout_no_figures;
        r->tenant = r->own != NULL ? r->own->tenant : r->fig->tenant;
        rollout_row_read(db, v, r, warn, warnlen);
    }
}

int rollout_view_build(struct db *db, bool rag, int64_t since_ms, int64_t now_ms,
                       struct rollout_view *v, char *warn, size_t warnlen, char *err, size_t errlen)
{
    memset(v, 0, sizeof *v);
    v->now_ms = now_ms;
    v->since_ms = since_ms;
    v->rag = rag;
    if (warnlen > 0)
        warn[0] = '\0';
    if (rollout_state_read(db, &v->state, err, errlen) != 0 ||
        figures_compute(db, NULL, since_ms, now_ms, &v->figs, err, errlen) != 0) {
        rollout_view_free(v);
        return -1;
    }
    rollout_rows(v, db, warn, warnlen);
    return 0;
}

void rollout_view_free(struct rollout_view *v)
{
    xfree(v->rows);
    figures_free(&v->figs);
    rollout_state_free(&v->state);
    memset(v, 0, sizeof *v);
}

/* Adds name: v, or null when !known. */
static void rollout_json_num(cJSON *o, const char *name, double v, bool known)
{
    if (known)
        cJSON_AddNumberToObject(o, name, v);
    else
        cJSON_AddNullToObject(o, name);
}

static cJSON *rollout_json_figures(const struct tenant_figures *t)
{
    cJSON *f = cJSON_CreateObject();
    cJSON *o = cJSON_AddObjectToObject(f, "retrieval_latency");
    rollout_json_num(o, "p50_ms", t->retrieval.p50_ms, t->retrieval.n > 0);
    rollout_json_num(o, "p95_ms", t->retrieval.p95_ms, t->retrieval.n > 0);
    cJSON_AddNumberToObject(o, "samples", (double)t->retrieval.n);
    cJSON_AddNumberToObject(o, "target_p95_ms", FIGURES_RETRIEVAL_P95_MS);
    cJSON_AddStringToObject(o, "state", figures_state_name(t->retrieval.state));

    o = cJSON_AddObjectToObject(f, "storage_success");
    rollout_json_num(o, "rate", t->storage.rate, t->storage.n > 0);
    cJSON_AddNumberToObject(o, "stored", (double)t->storage.stored);
    cJSON_AddNumberToObject(o, "samples", (double)t->storage.n);
    cJSON_AddNumberToObject(o, "target_rate", FIGURES_STORAGE_RATE);
    cJSON_AddStringToObject(o, "state", figures_state_name(t->storage.state));

    o = cJSON_AddObjectToObject(f, "context_relevance");
    rollout_json_num(o, "mean", t->relevance.mean, t->relevance.n > 0);
    cJSON_AddNumberToObject(o, "samples", (double)t->relevance.n);
    cJSON_AddNumberToObject(o, "target_mean", FIGURES_RELEVANCE);
    cJSON_AddStringToObject(o, "state", figures_state_name(t->relevance.state));

    const struct figure_added *d = &t->added;
    o = cJSON_AddObjectToObject(f, "added_latency");
    rollout_json_num(o, "added_ms", d->added_ms, d->n_on > 0 && d->n_off > 0);
    rollout_json_num(o, "memory_on_median_ms", d->on_ms, d->n_on > 0);
    rollout_json_num(o, "memory_off_median_ms", d->off_ms, d->n_off > 0);
    cJSON_AddNumberToObject(o, "samples_on", (double)d->n_on);
    cJSON_AddNumberToObject(o, "samples_off", (double)d->n_off);
    cJSON_AddNumberToObject(o, "target_ms", FIGURES_ADDED_MS);
    cJSON_AddStringToObject(o, "state", figures_state_name(d->state));

    const struct figure_cost *k = &t->cost;
    o = cJSON_AddObjectToObject(f, "cost_per_request");
    const char *basis = figures_basis_name(k->basis);
    if (basis != NULL)
        cJSON_AddStringToObject(o, "basis", basis);
    else
        cJSON_AddNullToObject(o, "basis");
    cJSON_AddNumberToObject(o, "samples_on", (double)k->n_on);
    cJSON_AddNumberToObject(o, "samples_off", (double)k->n_off);
    rollout_json_num(o, "usd_on", k->usd_on, k->n_usd_on > 0);
    rollout_json_num(o, "usd_off", k->usd_off, k->n_usd_off > 0);
    cJSON_AddNumberToObject(o, "priced_on", (double)k->n_usd_on);
    cJSON_AddNumberToObject(o, "priced_off", (double)k->n_usd_off);
    rollout_json_num(o, "prompt_tokens_on", k->tokens_on, k->n_tokens_on > 0);
    rollout_json_num(o, "prompt_tokens_off", k->tokens_off, k->n_tokens_off > 0);
    cJSON_AddStringToObject(o, "state", figures_state_name(k->state));
    return f;
}

cJSON *rollout_view_json(const struct rollout_view *v)
{
    cJSON *root = cJSON_CreateObject();
    if (root == NULL)
        alloc_die("cJSON");
    cJSON_AddNumberToObject(root, "now_ms", (double)v->now_ms);
    rollout_json_num(root, "since_ms", (double)v->since_ms, v->since_ms != INT64_MIN);
    if (v->state.global == ROLLOUT_UNSET)
        cJSON_AddNullToObject(root, "global");
    else
        cJSON_AddStringToObject(root, "global", rollout_tri_name(v->state.global));
    rollout_json_num(root, "percent", v->state.percent, v->state.percent >= 0);
    cJSON_AddBoolToObject(root, "rag_enabled", v->rag);
    cJSON *tenants = cJSON_AddArrayToObject(root, "tenants");
    for (size_t i = 0; i < v->n_rows; i++) {
        const struct rollout_row *r = &v->rows[i];
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "tenant", r->tenant);
        if (r->own != NULL)
            cJSON_AddStringToObject(t, "setting", r->own->memory ? "on" : "off");
        else
            cJSON_AddNullToObject(t, "setting");
        rollout_json_num(t, "setting_updated_ms", r->own != NULL ? (double)r->own->updated_ms : 0,
                         r->own != NULL);
        cJSON_AddNumberToObject(t, "bucket", rollout_bucket(r->tenant));
        cJSON_AddBoolToObject(t, "memory", r->now.memory);
        cJSON_AddStringToObject(t, "reason", r->now.reason);
        cJSON_AddNumberToObject(t, "turns", (double)r->fig->turns);
        cJSON_AddNumberToObject(t, "turns_memory_on", (double)r->fig->turns_on);
        cJSON_AddNumberToObject(t, "turns_memory_off", (double)r->fig->turns_off);
        cJSON_AddNumberToObject(t, "spent_usd", r->spent_usd);
        cJSON_AddNumberToObject(t, "unpriced_turns", (double)r->unpriced);
        cJSON_AddItemToObject(t, "figures", rollout_json_figures(r->fig));
        cJSON_AddItemToArray(tenants, t);
    }
    return root;
}
