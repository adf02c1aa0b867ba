/*
 * memchat costs [--by tenant|user|agent|model|day|memory|conversation|none]
 * [--since DURATION|all]
 * [--json]: what the turns cost, from the ledger (store/ledger.h), grouped
 * and summed over a window that ends now (default: the last 30 days).
 *
 * This verb only reads, so it opens the data file itself instead of
 * starting the engine: the front-end rule ("verbs never write the data
 * file except through the engine's jobs") is about writes, and a report is
 * a side-effect-free read. Two consequences are deliberate: a missing data
 * file is an empty report and is NOT created, and an existing file at an
 * older schema is brought up to date by db_open() exactly as any other
 * memchat start would.
 *
 * The table is for people: aligned columns, USD with 4 decimals, "—" for a
 * group none of whose turns has a price (never 0: an unknown cost is not
 * free), a TOTAL line and a note counting the turns without a price. With
 * --json it is NDJSON, one object per group and no total line (--by none
 * gives the total as its one object); usd is null when no turn of the
 * group has a price. The work is done by costs_report(), which takes the
 * connection and a FILE*, so tests run it without a terminal or engine.
 */
#include "config.h"

#include <cJSON.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/session.h"
#include "config/config.h"
#include "config/vars.h"
#include "memchat/error.h"
#include "store/db.h"
#include "store/ledger.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/paths.h"
#include "util/utf8.h"

#define COSTS_DEFAULT_BY    "tenant"
#define COSTS_DEFAULT_SINCE "30d"
#define COSTS_NO_PRICE      "\xe2\x80\x94" /* U+2014 EM DASH: one column, three bytes */
#define COSTS_COLS          8

/* --since as a configuration duration, so its syntax and its messages are
 * the configuration's (config.c); 0 means "from now", 5200 weeks is about a
 * century. */
static const struct cfg_var costs_since_var = {"--since",
                                               CFG_DURATION,
                                               COSTS_DEFAULT_SINCE,
                                               0,
                                               5200LL * 604800000LL,
                                               NULL,
                                               0,
                                               "how far back the report goes"};

int costs_parse_since(const char *s, int64_t now_ms, int64_t *since_ms, char *err, size_t errlen)
{
    if (strcmp(s, "all") == 0) {
        *since_ms = INT64_MIN;
        return 0;
    }
    char msg[512];
    if (config_check_value(&costs_since_var, s, "costs", msg, sizeof msg) != 0) {
        snprintf(err, errlen, "%s, or all", msg);
        return -1;
    }
    struct config *one = config_new(&costs_since_var, 1);
    int rc = config_set(one, 0, s, msg, sizeof msg);
    long long ms = rc == 0 ? config_duration_ms(one, 0) : 0;
    config_free(one);
    if (rc != 0) {
        snprintf(err, errlen, "%s", msg);
        return -1;
    }
    *since_ms = now_ms - (int64_t)ms;
    return 0;
}

/* Takes the value of option name from args[*i] ("--name=V" or "--name V"):
 * 1 matched (value in *val), 0 not this option, -1 value missing. */
static int costs_opt(const struct cli_opts *o, size_t *i, const char *name, const char **val)
{
    const char *a = o->args[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0)
        return 0;
    if (a[n] == '=') {
        *val = a + n + 1;
        return 1;
    }
    if (a[n] != '\0')
        return 0;
    if (*i + 1 >= o->n_args)
        return -1;
    *val = o->args[++*i];
    return 1;
}

int costs_parse_args(const struct cli_opts *o, const char **by, const char **since, char *err,
                     size_t errlen)
{
    *by = NULL;
    *since = NULL;
    for (size_t i = 0; i < o->n_args; i++) {
        static const char *const names[] = {"--by", "--since"};
        const char **slots[] = {by, since};
        bool done = false;
        for (size_t k = 0; k < 2 && !done; k++) {
            int rc = costs_opt(o, &i, names[k], slots[k]);
            if (rc < 0) {
                snprintf(err, errlen, "costs: %s needs a value (see memchat costs --help)",
                         names[k]);
                return -1;
            }
            done = rc == 1;
        }
        if (!done) {
            snprintf(err, errlen,
                     "costs: unexpected argument '%.80s' (accepted: --by GROUP, "
                     "--since DURATION, --json)",
                     o->args[i]);
            return -1;
        }
    }
    return 0;
}

/* The groups as collected for the table (keys copied: the ledger lends
 * them only for the callback). */
struct costs_rows {
    struct ledger_costs_row *v;
    size_t n;
};

static int costs_collect(const struct ledger_costs_row *row, void *ctx)
{
    struct costs_rows *rows = ctx;
    rows->v = xreallocarray(rows->v, rows->n + 1, sizeof *rows->v);
    rows->v[rows->n] = *row;
    rows->v[rows->n].key = row->key != NULL ? xstrdup(row->key) : NULL;
    rows->n++;
    return 0;
}

static void costs_rows_free(struct costs_rows *rows)
{
    for (size_t i = 0; i < rows->n; i++)
        xfree((char *)(uintptr_t)rows->v[i].key);
    xfree(rows->v);
    rows->v = NULL;
    rows->n = 0;
}

/* What the JSON callback needs besides the row. */
struct costs_json {
    FILE *out;
    enum ledger_group by;
    int64_t since_ms;
};

static int costs_print_json(const struct ledger_costs_row *row, void *ctx)
{
    const struct costs_json *j = ctx;
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        alloc_die("cJSON");
    cJSON_AddStringToObject(o, "by", ledger_group_name(j->by));
    if (row->key != NULL)
        cJSON_AddStringToObject(o, "key", row->key);
    else
        cJSON_AddNullToObject(o, "key");
    if (j->since_ms != INT64_MIN)
        cJSON_AddNumberToObject(o, "since_ms", (double)j->since_ms);
    else
        cJSON_AddNullToObject(o, "since_ms");
    cJSON_AddNumberToObject(o, "turns", (double)row->turns);
    cJSON_AddNumberToObject(o, "prompt_tokens", (double)row->prompt_tokens);
    cJSON_AddNumberToObject(o, "completion_tokens", (double)row->completion_tokens);
    cJSON_AddNumberToObject(o, "cached_tokens", (double)row->cached_tokens);
    if (row->unknown_cost_turns < row->turns)
        cJSON_AddNumberToObject(o, "usd", row->usd);
    else
        cJSON_AddNullToObject(o, "usd");
    cJSON_AddNumberToObject(o, "unknown_cost_turns", (double)row->unknown_cost_turns);
    cJSON_AddNumberToObject(o, "cache_hits", (double)row->cache_hits);
    cJSON_AddNumberToObject(o, "bytes_saved", (double)row->bytes_saved);
    char *line = cJSON_PrintUnformatted(o);
    if (line == NULL)
        alloc_die("cJSON");
    fprintf(j->out, "%s\n", line);
    xfree(line);
    cJSON_Delete(o);
    return 0;
}

/* Display columns of a UTF-8 string: one per code point (the cells are
 * ASCII, the em dash, and sanitized keys; wide characters are rare enough
 * in model names to be left slightly misaligned). */
static size_t costs_width(const char *s)
{
    size_t w = 0;
    for (; *s != '\0'; s++)
        w += ((unsigned char)*s & 0xc0) != 0x80;
    return w;
}

/* The text cells of one line of the table. */
struct costs_line {
    char *cell[COSTS_COLS];
};

/* A key made safe for a terminal and a one-line table: escapes and
 * controls dropped (utf8_sanitize_terminal), newlines and tabs as spaces. */
static char *costs_key_text(const char *key)
{
    if (key == NULL)
        return xstrdup("(none)");
    struct buf b;
    buf_init(&b, 4 * strlen(key) + 16);
    if (utf8_sanitize_terminal(&b, key, strlen(key)) != BUF_OK)
        return xstrdup("?");
    char *s = buf_take(&b);
    for (char *p = s; *p != '\0'; p++)
        if (*p == '\n' || *p == '\t')
            *p = ' ';
    return s;
}

static void costs_line_fill(struct costs_line *l, char *key, const struct ledger_costs_row *r)
{
    l->cell[0] = key;
    l->cell[1] = xasprintf("%lld", r->turns);
    l->cell[2] = xasprintf("%lld", r->prompt_tokens);
    l->cell[3] = xasprintf("%lld", r->completion_tokens);
    l->cell[4] = xasprintf("%lld", r->cached_tokens);
    /* "—" only when turns ran and none had a price: no turns cost 0. */
    l->cell[5] = r->turns > 0 && r->unknown_cost_turns == r->turns ? xstrdup(COSTS_NO_PRICE)
                                                                   : xasprintf("%.4f", r->usd);
    l->cell[6] = xasprintf("%lld", r->cache_hits);
    l->cell[7] = xasprintf("%lld", r->bytes_saved);
}

static void costs_line_free(struct costs_line *l)
{
    for (int c = 0; c < COSTS_COLS; c++)
        xfree(l->cell[c]);
}

/* Prints cells: the first left-aligned, the others right-aligned, two
 * spaces apart, no trailing blanks. */
static void costs_line_print(FILE *out, const struct costs_line *l, const size_t *width)
{
    for (int c = 0; c < COSTS_COLS; c++) {
        size_t pad = width[c] - costs_width(l->cell[c]);
        if (c == 0)
            fprintf(out, "%s%*s", l->cell[c], (int)pad, "");
        else
            fprintf(out, "  %*s%s", (int)pad, "", l->cell[c]);
    }
    fputc('\n', out);
}

static const char *costs_key_header(enum ledger_group by)
{
    switch (by) {
    case LEDGER_BY_TENANT:
        return "TENANT";
    case LEDGER_BY_USER:
        return "TENANT/USER";
    case LEDGER_BY_AGENT:
        return "AGENT";
    case LEDGER_BY_MODEL:
        return "MODEL";
    case LEDGER_BY_DAY:
        return "DAY (UTC)";
    case LEDGER_BY_NONE:
        return "";
    case LEDGER_BY_MEMORY:
        return "MEMORY";
    case LEDGER_BY_CONVERSATION:
        return "CONVERSATION/MEMORY";
    }
    return "";
}

/* The table: the groups (none for --by none), then TOTAL and the note. */
static int costs_print_table(struct db *db, enum ledger_group by, int64_t since_ms, FILE *out,
                             char *err, size_t errlen)
{
    struct costs_rows rows = {NULL, 0}, total = {NULL, 0};
    if (db != NULL && by != LEDGER_BY_NONE &&
        ledger_costs(db, by, since_ms, costs_collect, &rows, err, errlen) != 0) {
        costs_rows_free(&rows);
        return MC_EXIT_RUNTIME;
    }
    /* The total is summed by SQLite, as the groups are, not added up here. */
    if (db != NULL &&
        ledger_costs(db, LEDGER_BY_NONE, since_ms, costs_collect, &total, err, errlen) != 0) {
        costs_rows_free(&rows);
        costs_rows_free(&total);
        return MC_EXIT_RUNTIME;
    }
    struct ledger_costs_row none = {0};
    const struct ledger_costs_row *sum = total.n > 0 ? &total.v[0] : &none;

    size_t n = rows.n + 2; /* header, groups, TOTAL */
    struct costs_line *lines = xcalloc(n, sizeof *lines);
    static const char *const headers[COSTS_COLS] = {
        NULL, "TURNS", "TOKENS IN", "TOKENS OUT", "CACHED IN", "USD", "CACHE HITS", "BYTES SAVED"};
    lines[0].cell[0] = xstrdup(costs_key_header(by));
    for (int c = 1; c < COSTS_COLS; c++)
        lines[0].cell[c] = xstrdup(headers[c]);
    for (size_t i = 0; i < rows.n; i++)
        costs_line_fill(&lines[i + 1], costs_key_text(rows.v[i].key), &rows.v[i]);
    costs_line_fill(&lines[n - 1], xstrdup("TOTAL"), sum);

    size_t width[COSTS_COLS] = {0};
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < COSTS_COLS; c++) {
            size_t w = costs_width(lines[i].cell[c]);
            width[c] = w > width[c] ? w : width[c];
        }
    for (size_t i = 0; i < n; i++) {
        costs_line_print(out, &lines[i], width);
        costs_line_free(&lines[i]);
    }
    xfree(lines);
    if (sum->unknown_cost_turns > 0)
        fprintf(out, "note: %lld turn%s without a price (not in the USD figures)\n",
                sum->unknown_cost_turns, sum->unknown_cost_turns == 1 ? "" : "s");
    costs_rows_free(&rows);
    costs_rows_free(&total);
    return MC_EXIT_OK;
}

int costs_report(struct db *db, const char *by, const char *since, bool json, int64_t now_ms,
                 FILE *out, char *err, size_t errlen)
{
    enum ledger_group group;
    if (by == NULL)
        by = COSTS_DEFAULT_BY;
    if (!ledger_group_parse(by, &group)) {
        snprintf(err, errlen,
                 "costs: --by '%.80s' is not a grouping (accepted: tenant, user, agent, "
                 "model, day, memory, conversation, none)",
                 by);
        return MC_EXIT_USAGE;
    }
    int64_t since_ms = 0;
    if (costs_parse_since(since != NULL ? since : COSTS_DEFAULT_SINCE, now_ms, &since_ms, err,
                          errlen) != 0)
        return MC_EXIT_USAGE;

    int rc = MC_EXIT_OK;
    if (json) {
        struct costs_json j = {out, group, since_ms};
        if (db != NULL && ledger_costs(db, group, since_ms, costs_print_json, &j, err, errlen) != 0)
            rc = MC_EXIT_RUNTIME;
    } else {
        rc = costs_print_table(db, group, since_ms, out, err, errlen);
    }
    if (rc == MC_EXIT_OK && (fflush(out) != 0 || ferror(out))) {
        snprintf(err, errlen, "costs: cannot write the report: %s", strerror(errno));
        rc = MC_EXIT_RUNTIME;
    }
    return rc;
}

int cmd_costs(const struct config *cfg, const struct cli_opts *o)
{
    char err[1024] = "";
    const char *by = NULL, *since = NULL;
    if (costs_parse_args(o, &by, &since, err, sizeof err) != 0) {
        session_error("%s", err);
        return MC_EXIT_USAGE;
    }
    const char *data_dir = config_str(cfg, CFG_MEMCHAT_DATA_DIR);
    if (data_dir[0] == '\0') {
        session_error("MEMCHAT_DATA_DIR is not set, and neither XDG_DATA_HOME nor HOME gives a "
                      "default: set MEMCHAT_DATA_DIR to a directory");
        return MC_EXIT_USAGE;
    }
    char *path = paths_join(data_dir, "memchat.db");
    struct db *db = NULL;
    /* No data file yet: nothing was spent, and a report must not create one. */
    if (access(path, F_OK) == 0 || errno != ENOENT) {
        enum db_error why = DB_OK;
        db = db_open(path, &why, err, sizeof err);
        if (db == NULL) {
            session_error("%s", err);
            xfree(path);
            return MC_EXIT_RUNTIME;
        }
    }
    int rc = costs_report(db, by, since, o->json, clock_wall_ms(), stdout, err, sizeof err);
    if (rc != MC_EXIT_OK)
        session_error("%s", err);
    db_close(db);
    xfree(path);
    return rc;
}
