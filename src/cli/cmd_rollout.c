/*
 * memchat rollout: the per-tenant rollout of memory (rollout/rollout.h) and
 * its figures (rollout/figures.h).
 *
 *   memchat rollout status [--since DURATION|all] [--json]
 *   memchat rollout global on|off
 *   memchat rollout enable|disable TENANT
 *   memchat rollout reset TENANT
 *   memchat rollout percent N|off
 *
 * The changes write the data file, so each is one engine job
 * (mc_engine_submit_rollout), as `limits set` is; the line printed after
 * it says what is now set. `status` only reads, so like `costs` it opens
 * the data file itself (a missing file is reported as "nothing set, no
 * turns" and is not created): the settings, then per tenant (those with
 * their own setting or with turns in the window) its setting, its bucket,
 * what a plain turn would get now and which rule says so, and its five
 * figures against the targets. docs/rollout.md documents the output and
 * the fields of --json.
 */
#include "config.h"

#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/session.h"
#include "config/config.h"
#include "config/vars.h"
#include "memchat/error.h"
#include "rollout/figures.h"
#include "rollout/rollout.h"
#include "rollout/status.h"
#include "store/db.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/ident.h"
#include "util/paths.h"

#define ROLLOUT_DEFAULT_SINCE "7d"
#define ROLLOUT_ACTIONS       "status, global, enable, disable, reset, percent"

/* The verb's words apart from --since (and its value). */
struct rollout_args {
    const char *word[4];
    size_t n;
    const char *since; /* NULL when not given */
};

/* Splits o->args into words and --since; a usage error for --by, or for
 * more words than any action takes. */
static int rollout_parse_args(const struct cli_opts *o, struct rollout_args *a)
{
    memset(a, 0, sizeof *a);
    for (size_t i = 0; i < o->n_args; i++) {
        const char *s = o->args[i];
        if (strncmp(s, "--since", 7) == 0 && (s[7] == '=' || s[7] == '\0')) {
            /* cli.c passes "--since=V" as one argument, "--since V" as two. */
            a->since = s[7] == '=' ? s + 8 : i + 1 < o->n_args ? o->args[++i] : "";
            continue;
        }
        if (strncmp(s, "--by", 4) == 0 && (s[4] == '=' || s[4] == '\0')) {
            session_error("rollout: --by is not an option of rollout (accepted: --since "
                          "DURATION with status, --json)");
            return MC_EXIT_USAGE;
        }
        if (a->n == sizeof a->word / sizeof a->word[0]) {
            session_error("rollout: too many arguments ('%.80s' and after)", s);
            return MC_EXIT_USAGE;
        }
        a->word[a->n++] = s;
    }
    return MC_EXIT_OK;
}

/* --- the changes ---------------------------------------------------------- */

/* Submits c on s's engine and waits for its answer; *had is the result's
 * "had" (reset found a setting). With --json the answer's event is
 * printed. Returns the exit code; an error's message goes to stderr. */
static int rollout_job(struct session *s, const struct mc_rollout_change *c, bool *had)
{
    char id[MC_UUID_STRLEN + 1], err[512] = "";
    *had = false;
    if (mc_engine_submit_rollout(s->eng, c, id, err, sizeof err) != 0) {
        session_error("%s", err);
        return MC_EXIT_USAGE;
    }
    cJSON *items = NULL;
    int rc = cli_job_wait(s, id, s->json, &items);
    const cJSON *first = cJSON_GetArrayItem(items, 0);
    *had = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(first, "had"));
    cJSON_Delete(items);
    return rc;
}

/* Parses the words of a change into *c. A usage error names what the
 * action accepts. */
static int rollout_parse_change(const struct rollout_args *a, struct mc_rollout_change *c)
{
    const char *act = a->word[0];
    memset(c, 0, sizeof *c);
    if (strcmp(act, "global") == 0) {
        if (a->n != 2 || (strcmp(a->word[1], "on") != 0 && strcmp(a->word[1], "off") != 0)) {
            session_error("rollout global: expected on or off%s%.80s%s", a->n >= 2 ? " (got '" : "",
                          a->n >= 2 ? a->word[1] : "", a->n >= 2 ? "')" : "");
            return MC_EXIT_USAGE;
        }
        c->op = MC_ROLLOUT_GLOBAL;
        c->on = strcmp(a->word[1], "on") == 0;
        return MC_EXIT_OK;
    }
    if (strcmp(act, "percent") == 0) {
        c->op = MC_ROLLOUT_PERCENT;
        if (a->n == 2 && strcmp(a->word[1], "off") == 0) {
            c->percent = -1;
            return MC_EXIT_OK;
        }
        char *end = NULL;
        long n = -1;
        if (a->n == 2) {
            errno = 0;
            n = strtol(a->word[1], &end, 10);
            if (errno != 0 || end == a->word[1] || *end != '\0')
                n = -1;
        }
        if (n < 0 || n > 100) {
            session_error("rollout percent: expected a whole number from 0 to 100, or off%s%.80s%s",
                          a->n >= 2 ? " (got '" : "", a->n >= 2 ? a->word[1] : "",
                          a->n >= 2 ? "')" : "");
            return MC_EXIT_USAGE;
        }
        c->percent = (int)n;
        return MC_EXIT_OK;
    }
    /* enable, disable, reset: one tenant id. */
    c->op = strcmp(act, "reset") == 0 ? MC_ROLLOUT_RESET : MC_ROLLOUT_TENANT;
    c->on = strcmp(act, "enable") == 0;
    if (a->n != 2) {
        session_error("rollout %s: expected one TENANT (e.g. memchat rollout %s acme)", act, act);
        return MC_EXIT_USAGE;
    }
    if (!ident_valid(a->word[1])) {
        session_error("rollout %s: '%.80s' is not a tenant id (accepted: [A-Za-z0-9_-]{1,64})", act,
                      a->word[1]);
        return MC_EXIT_USAGE;
    }
    c->tenant = a->word[1];
    return MC_EXIT_OK;
}

/* The line that says what is now set. */
static void rollout_print_change(const struct mc_rollout_change *c, bool had)
{
    switch (c->op) {
    case MC_ROLLOUT_GLOBAL:
        printf("memory: %s globally (the global setting)\n", c->on ? "on" : "off");
        break;
    case MC_ROLLOUT_TENANT:
        printf("memory: %s for tenant %s (its own setting)\n", c->on ? "on" : "off", c->tenant);
        break;
    case MC_ROLLOUT_RESET:
        printf("tenant %s: %s\n", c->tenant, had ? "own setting cleared" : "had no own setting");
        break;
    case MC_ROLLOUT_PERCENT:
        if (c->percent < 0)
            printf("percentage: off (cleared)\n");
        else
            printf("percentage: %d (memory on for tenants whose bucket is below %d, off for the "
                   "others)\n",
                   c->percent, c->percent);
        break;
    case MC_ROLLOUT_STATUS: /* never a change */
        break;
    }
}

static int rollout_change(const struct config *cfg, const struct cli_opts *o,
                          const struct rollout_args *a)
{
    if (a->since != NULL) {
        session_error("rollout %s: --since is only for rollout status", a->word[0]);
        return MC_EXIT_USAGE;
    }
    struct mc_rollout_change c;
    int rc = rollout_parse_change(a, &c);
    if (rc != MC_EXIT_OK)
        return rc;
    struct session s;
    rc = session_start(&s, cfg, o->json, NULL);
    if (rc != MC_EXIT_OK)
        return rc;
    bool had = false;
    rc = rollout_job(&s, &c, &had);
    if (rc == MC_EXIT_OK && !o->json)
        rollout_print_change(&c, had);
    session_stop(&s);
    return rc;
}

/* --- status --------------------------------------------------------------- */

/* What status prints: the shared view and where it was read from. */
struct status_view {
    struct rollout_view v;
    const char *path; /* the data file */
    bool exists;
    const char *since_text;
};

static const char *rollout_state_text(enum figure_state s)
{
    return s == FIGURE_MET ? "MET" : s == FIGURE_NOT_MET ? "NOT MET" : "NO DATA";
}

/* Prints one figure's line: name, value, target, verdict. */
static void rollout_figure_line(const char *name, const char *value, const char *target,
                                const char *state)
{
    printf("  %-19s %-50s %-22s %s\n", name, value, target, state);
}

/* Appends "; needs N" to a figure 1-3 value that has samples but too few. */
static void rollout_needs(char *v, size_t vlen, enum figure_state s, long long n)
{
    size_t len = strlen(v);
    if (s == FIGURE_NO_DATA && n > 0 && len < vlen)
        snprintf(v + len, vlen - len, "; needs %d", FIGURES_MIN_TURNS);
}

static void rollout_print_figures(const struct tenant_figures *t)
{
    char v[160];
    const struct figure_retrieval *r = &t->retrieval;
    if (r->n > 0)
        snprintf(v, sizeof v, "p50 %.1f ms, p95 %.1f ms (%lld turns)", r->p50_ms, r->p95_ms, r->n);
    else
        snprintf(v, sizeof v, "- (no memory-on ok turns)");
    rollout_needs(v, sizeof v, r->state, r->n);
    rollout_figure_line("retrieval latency", v, "p95 < 100 ms", rollout_state_text(r->state));

    const struct figure_storage *s = &t->storage;
    if (s->n > 0)
        snprintf(v, sizeof v, "%.2f %% (%lld of %lld stores)", 100.0 * s->rate, s->stored, s->n);
    else
        snprintf(v, sizeof v, "- (no store outcomes)");
    rollout_needs(v, sizeof v, s->state, s->n);
    rollout_figure_line("storage success", v, "> 99 %", rollout_state_text(s->state));

    const struct figure_relevance *c = &t->relevance;
    if (c->n > 0)
        snprintf(v, sizeof v, "%.3f mean similarity (%lld turns)", c->mean, c->n);
    else
        snprintf(v, sizeof v, "- (no turns that recalled)");
    rollout_needs(v, sizeof v, c->state, c->n);
    rollout_figure_line("context relevance", v, "> 0.8", rollout_state_text(c->state));

    const struct figure_added *d = &t->added;
    if (d->n_on > 0 && d->n_off > 0)
        snprintf(v, sizeof v, "%+.1f ms (median %.1f on, %.1f off; %lld/%lld turns)", d->added_ms,
                 d->on_ms, d->off_ms, d->n_on, d->n_off);
    else
        snprintf(v, sizeof v, "- (%lld turns on, %lld off)", d->n_on, d->n_off);
    if (d->state == FIGURE_NO_DATA)
        snprintf(v + strlen(v), sizeof v - strlen(v), "; needs %d each", FIGURES_MIN_SIDE);
    rollout_figure_line("added latency", v, "< 200 ms", rollout_state_text(d->state));

    const struct figure_cost *k = &t->cost;
    if (k->basis == FIGURE_BASIS_USD)
        snprintf(v, sizeof v, "$%.4f on vs $%.4f off per turn (%lld/%lld turns)", k->usd_on,
                 k->usd_off, k->n_usd_on, k->n_usd_off);
    else if (k->basis == FIGURE_BASIS_TOKENS)
        snprintf(v, sizeof v, "%.1f on vs %.1f off prompt tokens (%lld/%lld turns)", k->tokens_on,
                 k->tokens_off, k->n_tokens_on, k->n_tokens_off);
    else
        snprintf(v, sizeof v, "- (%lld turns on, %lld off; needs %d each)", k->n_on, k->n_off,
                 FIGURES_MIN_SIDE);
    rollout_figure_line("cost per request", v, "lower with memory on",
                        rollout_state_text(k->state));
}

static void rollout_print_json(const struct status_view *sv)
{
    cJSON *root = rollout_view_json(&sv->v);
    cJSON_AddStringToObject(root, "data_file", sv->path);
    cJSON_AddBoolToObject(root, "data_file_exists", sv->exists);
    char *s = cJSON_PrintUnformatted(root);
    if (s == NULL)
        alloc_die("cJSON");
    puts(s);
    cJSON_free(s);
    cJSON_Delete(root);
}

static void rollout_print_text(const struct status_view *sv)
{
    const struct rollout_view *v = &sv->v;
    char when[32];
    printf("memory rollout (data file %s%s)\n", sv->path, sv->exists ? "" : ", not created yet");
    printf("  global setting     %s\n", rollout_tri_name(v->state.global));
    if (v->state.percent >= 0)
        printf("  percentage         %d (memory on where the tenant's bucket is below %d)\n",
               v->state.percent, v->state.percent);
    else
        printf("  percentage         off\n");
    printf("  RAG_ENABLED        %s\n", v->rag ? "true" : "false");
    if (v->since_ms == INT64_MIN)
        printf("  window             everything, to now\n");
    else
        printf("  window             the last %s (since %s UTC)\n", sv->since_text,
               cli_format_time(v->since_ms, when, sizeof when));
    if (v->n_rows == 0)
        printf("\nno tenant has its own setting or a turn in the window\n");
    for (size_t i = 0; i < v->n_rows; i++) {
        const struct rollout_row *r = &v->rows[i];
        printf("\n%s: memory %s now (rule: %s); own setting %s; bucket %d\n", r->tenant,
               r->now.memory ? "on" : "off", r->now.reason,
               r->own == NULL   ? "none"
               : r->own->memory ? "on"
                                : "off",
               rollout_bucket(r->tenant));
        printf("  %-19s %lld in the window: %lld with memory on, %lld off\n", "turns",
               r->fig->turns, r->fig->turns_on, r->fig->turns_off);
        printf("  %-19s $%.4f in the window", "spent", r->spent_usd);
        if (r->unpriced > 0)
            printf(" (+%lld turns without a price)", r->unpriced);
        putchar('\n');
        rollout_figure_line("FIGURE", "VALUE", "TARGET", "STATE");
        rollout_print_figures(r->fig);
    }
}

/* costs_parse_since's message speaks as `costs`; said here as status. */
static void rollout_since_error(const char *msg)
{
    static const char prefix[] = "costs: ";
    if (strncmp(msg, prefix, sizeof prefix - 1) == 0)
        msg += sizeof prefix - 1;
    session_error("rollout status: %s", msg);
}

static int rollout_status(const struct config *cfg, const struct cli_opts *o,
                          const struct rollout_args *a)
{
    if (a->n > 1) {
        session_error("rollout status: unexpected argument '%.80s' (accepted: --since "
                      "DURATION, --json)",
                      a->word[1]);
        return MC_EXIT_USAGE;
    }
    struct status_view sv;
    memset(&sv, 0, sizeof sv);
    char err[1024] = "";
    int64_t now_ms = clock_wall_ms(), since_ms = 0;
    sv.since_text = a->since != NULL ? a->since : ROLLOUT_DEFAULT_SINCE;
    if (costs_parse_since(sv.since_text, now_ms, &since_ms, err, sizeof err) != 0) {
        rollout_since_error(err);
        return MC_EXIT_USAGE;
    }
    const char *data_dir = config_str(cfg, CFG_MEMCHAT_DATA_DIR);
    if (data_dir[0] == '\0') {
        session_error("MEMCHAT_DATA_DIR is not set, and neither XDG_DATA_HOME nor HOME gives a "
                      "default: set MEMCHAT_DATA_DIR to a directory");
        return MC_EXIT_USAGE;
    }
    char *path = paths_join(data_dir, "memchat.db");
    sv.path = path;
    struct db *db = NULL;
    /* No data file yet: nothing is set and no turn ran; status must not
     * create one. */
    if (access(path, F_OK) == 0 || errno != ENOENT) {
        enum db_error why = DB_OK;
        db = db_open(path, &why, err, sizeof err);
        if (db == NULL) {
            session_error("%s", err);
            xfree(path);
            return MC_EXIT_RUNTIME;
        }
    }
    sv.exists = db != NULL;
    int rc = MC_EXIT_OK;
    char warn[1024] = "";
    if (rollout_view_build(db, config_bool(cfg, CFG_RAG_ENABLED), since_ms, now_ms, &sv.v, warn,
                           sizeof warn, err, sizeof err) != 0) {
        session_error("%s", err);
        rc = MC_EXIT_RUNTIME;
    }
    if (rc == MC_EXIT_OK) {
        if (warn[0] != '\0')
            session_error("warning: %s", warn);
        if (o->json)
            rollout_print_json(&sv);
        else
            rollout_print_text(&sv);
        if (fflush(stdout) != 0 || ferror(stdout)) {
            session_error("rollout status: cannot write the report: %s", strerror(errno));
            rc = MC_EXIT_RUNTIME;
        }
        rollout_view_free(&sv.v);
    }
    db_close(db);
    xfree(path);
    return rc;
}

int cmd_rollout(const struct config *cfg, const struct cli_opts *o)
{
    struct rollout_args a;
    int rc = rollout_parse_args(o, &a);
    if (rc != MC_EXIT_OK)
        return rc;
    const char *act = a.n > 0 ? a.word[0] : "status";
    if (strcmp(act, "status") == 0)
        return rollout_status(cfg, o, &a);
    static const char *const changes[] = {"global", "enable", "disable", "reset", "percent"};
    for (size_t i = 0; i < sizeof changes / sizeof *changes; i++)
        if (strcmp(act, changes[i]) == 0)
            return rollout_change(cfg, o, &a);
    session_error("rollout: unknown action '%.80s' (accepted: " ROLLOUT_ACTIONS ")", act);
    return MC_EXIT_USAGE;
}
