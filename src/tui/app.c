/*
 * The TUI's loop and actions. One thread, one poll: stdin (bytes for
 * input.c), the engine's wake-up descriptor (events for the view model)
 * and the signal pipe (term.c). Mutators only set dirty flags; a frame is
 * drawn at most every TUI_FRAME_MS, right away when the last one is older,
 * so a keystroke shows at once and a fast stream costs at most 60 frames a
 * second. With nothing to draw and no key pending the poll has no timeout:
 * an idle TUI uses no CPU. Commands submit jobs; their answers come back
 * as `result` events and are shown in the panes or an overlay.
 */
#include "config.h"

#include "tui/tui.h"

#include <cJSON.h>
#include <curses.h>
#include <errno.h>
#include <langinfo.h>
#include <locale.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <readline/readline.h>

#include "config/config.h"
#include "config/vars.h"
#include "memchat/error.h"
#include "llm/provider.h"
#include "tui/cmds.h"
#include "tui/internal.h"
#include "tui/term.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/fileio.h"
#include "util/ident.h"
#include "util/paths.h"
#include "util/utf8.h"

/* At most 60 frames a second. */
#define TUI_FRAME_MS 16
/* Bytes read from stdin at once; what readline has not taken is kept. */
#define TUI_READ_MAX 65536
/* The most input bytes held (a huge paste beyond it is cut, with a notice). */
#define TUI_INPUT_MAX ((size_t)16 << 20)
/* Conversations /conversations lists. */
#define TUI_CONV_LIST 30

/* --- small helpers -------------------------------------------------------- */

void app_notice(struct tui *t, enum tm_level level, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    model_notice(t->model, level, "%s", msg);
    t->selected = -1;
    t->conv_scroll = 0;
    t->dirty = true;
}

static void app_job_add(struct tui *t, const char *id, enum tui_job_kind kind, bool quiet)
{
    if (t->n_jobs == TUI_MAX_JOBS) { /* the oldest answer is no longer awaited */
        memmove(&t->jobs[0], &t->jobs[1], (TUI_MAX_JOBS - 1) * sizeof t->jobs[0]);
        t->n_jobs--;
    }
    struct tui_job *j = &t->jobs[t->n_jobs++];
    memcpy(j->id, id, sizeof j->id);
    j->kind = kind;
    j->quiet = quiet;
}

/* Takes job id out of the waiting list into *out; false when not ours. */
static bool app_job_take(struct tui *t, const char *id, struct tui_job *out)
{
    for (size_t i = 0; i < t->n_jobs; i++) {
        if (strcmp(t->jobs[i].id, id) != 0)
            continue;
        *out = t->jobs[i];
        memmove(&t->jobs[i], &t->jobs[i + 1], (t->n_jobs - i - 1) * sizeof t->jobs[0]);
        t->n_jobs--;
        return true;
    }
    return false;
}

static void app_tenant_seen(struct tui *t, const char *tenant)
{
    for (size_t i = 0; i < t->n_tenants_seen; i++)
        if (strcmp(t->tenants_seen[i], tenant) == 0)
            return;
    t->tenants_seen = xrealloc(t->tenants_seen, (t->n_tenants_seen + 1) * sizeof *t->tenants_seen);
    t->tenants_seen[t->n_tenants_seen++] = xstrdup(tenant);
}

static void app_set_str(char **dst, const char *v)
{
    xfree(*dst);
    *dst = v != NULL ? xstrdup(v) : NULL;
}

/* The tenant's memory count, for the context pane (a quiet job). */
static void app_refresh_count(struct tui *t)
{
    char id[MC_UUID_STRLEN + 1], err[512];
    struct mc_memory_job mj = {.op = MC_MEM_STATS, .tenant = t->tenant};
    if (mc_engine_submit_memory(t->eng, &mj, id, err, sizeof err) == 0)
        app_job_add(t, id, JOB_STATS, true);
}

/* The tenant's rollout state and spending, for the metrics pane. */
static void app_refresh_rollout(struct tui *t)
{
    char id[MC_UUID_STRLEN + 1], err[512];
    struct mc_rollout_change rc = {.op = MC_ROLLOUT_STATUS};
    if (mc_engine_submit_rollout(t->eng, &rc, id, err, sizeof err) == 0)
        app_job_add(t, id, JOB_ROLLOUT, true);
}

static void app_refresh_tenant(struct tui *t)
{
    app_refresh_count(t);
    app_refresh_rollout(t);
}

void app_estimate(struct tui *t)
{
    struct mc_turn_request req = {.tenant = t->tenant,
                                  .user = t->user,
                                  .agent = t->agent,
                                  .provider = t->provider,
                                  .model = t->model_name,
                                  .text = input_line()};
    char err[256];
    t->est_valid = mc_engine_estimate(t->eng, &req, &t->est, err, sizeof err) == 0;
}

void app_set_overlay(struct tui *t, const char *title, const char *text)
{
    snprintf(t->overlay.title, sizeof t->overlay.title, "%s", title);
    buf_reset(&t->overlay.text);
    buf_puts(&t->overlay.text, text);
    t->overlay.scroll = 0;
    t->overlay.on = true;
    t->dirty = true;
}

long app_context_entry(const struct tui *t)
{
    if (t->selected >= 0) {
        const struct tm_entry *e = model_at(t->model, (size_t)t->selected);
        if (e != NULL && e->kind != TM_NOTICE)
            return t->selected;
    }
    return model_latest(t->model);
}

/* --- sending ------------------------------------------------------------- */

static void app_send(struct tui *t, const char *text, enum mc_memory_override memory,
                     bool continue_conversation, const char *label)
{
    struct mc_turn_request req = {
        .tenant = t->tenant,
        .user = t->user,
        .agent = t->agent,
        .text = text,
        .memory = memory,
        .continue_conversation = continue_conversation,
        .conversation = continue_conversation ? t->resume : NULL,
        .provider = t->provider,
        .model = t->model_name,
    };
    char id[MC_UUID_STRLEN + 1], err[1024];
    if (mc_engine_submit_turn(t->eng, &req, id, err, sizeof err) != 0) {
        app_notice(t, TM_ERROR, "%s", err);
        return;
    }
    if (continue_conversation && t->resume != NULL)
        app_set_str(&t->resume, NULL);
    char *shown = NULL;
    if (label != NULL)
        shown = xasprintf("%s %s", label, text);
    model_add_turn(t->model, id, shown != NULL ? shown : text, t->tenant, t->user, t->agent);
    xfree(shown);
    t->selected = -1;
    t->conv_scroll = 0;
    t->ctx_cursor = 0;
    t->ctx_scroll = 0;
    t->dirty = true;
}

void app_submit_line(struct tui *t, char *line)
{
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t' || line[n - 1] == '\n'))
        line[--n] = '\0';
    char *s = line;
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s == '\0')
        return;
    t->overlay.on = false;
    if (s[0] == '/' && s[1] != '/') {
        const struct cmd_entry *c;
        char *arg;
        char err[512];
        if (cmds_parse(s, &c, &arg, err, sizeof err) != 0)
            app_notice(t, TM_ERROR, "%s", err);
        else
            c->exec(t, arg);
        app_estimate(t);
        t->dirty = true;
        return;
    }
    if (s[0] == '/') /* "//text" sends "/text" */
        s++;
    if (!utf8_valid(s, strlen(s), NULL)) {
        app_notice(t, TM_ERROR, "the message is not valid UTF-8; nothing was sent");
        return;
    }
    xfree(t->last_text);
    t->last_text = xstrdup(s);
    app_send(t, s, t->memory, true, NULL);
}

/* --- actions ---------------------------------------------------------------- */

void app_cancel(struct tui *t)
{
    mc_engine_cancel(t->eng);
    t->dirty = true;
}

void app_focus_next(struct tui *t)
{
    t->focus = (enum pane)((t->focus + 1) % PANE__COUNT);
    if (t->zoom >= 0)
        t->zoom = (int)t->focus;
    t->relayout = t->dirty = true;
}

void app_zoom(struct tui *t)
{
    t->zoom = t->zoom >= 0 ? -1 : (int)t->focus;
    t->relayout = t->dirty = true;
}

void app_scroll(struct tui *t, int pages)
{
    if (t->overlay.on) {
        int step = (t->rows - 6) / 2 > 1 ? (t->rows - 6) / 2 : 1;
        t->overlay.scroll -= pages * step;
        t->dirty = true;
        return;
    }
    const struct rect *r = &t->lay.pane[t->focus];
    int step = r->h > 3 ? r->h - 2 : 1;
    switch (t->focus) {
    case PANE_CONV:
        t->conv_scroll += pages * step;
        break;
    case PANE_CONTEXT:
        t->ctx_scroll -= pages * step;
        break;
    case PANE_METRICS:
    case PANE__COUNT:
        t->metrics_scroll -= pages * step;
        break;
    }
    t->dirty = true;
}

static size_t app_candidates(const struct tui *t, const struct tm_candidate **v)
{
    long e = app_context_entry(t);
    const struct tm_entry *en = e >= 0 ? model_at(t->model, (size_t)e) : NULL;
    *v = NULL;
    if (en == NULL)
        return 0;
    if (en->kind == TM_TURN) {
        *v = en->u.turn.cand;
        return en->u.turn.n_cand;
    }
    if (en->kind == TM_SEARCH) {
        *v = en->u.search.cand;
        return en->u.search.n_cand;
    }
    return 0;
}

void app_select(struct tui *t, int delta)
{
    t->dirty = true;
    if (t->focus == PANE_CONTEXT) {
        const struct tm_candidate *v;
        size_t n = app_candidates(t, &v);
        if (n == 0)
            return;
        long c = (long)t->ctx_cursor + delta;
        t->ctx_cursor = c < 0 ? 0 : (size_t)c >= n ? n - 1 : (size_t)c;
        return;
    }
    long n = (long)model_count(t->model);
    long i = t->selected >= 0 ? t->selected : n;
    for (i += delta; i >= 0 && i < n; i += delta)
        if (model_at(t->model, (size_t)i)->kind != TM_NOTICE)
            break;
    if (i >= n) {
        t->selected = -1;
    } else if (i >= 0) {
        t->selected = i;
    }
    t->ctx_cursor = 0;
    t->ctx_scroll = 0;
}

void app_toggle_injected(struct tui *t)
{
    t->show_injected = !t->show_injected;
    t->ctx_scroll = 0;
    t->dirty = true;
}

void app_forget_highlighted(struct tui *t)
{
    app_cmd_forget(t, NULL);
}

void app_show_help(struct tui *t)
{
    app_cmd_help(t, NULL);
}

/* --- commands --------------------------------------------------------------- */

static bool app_id_ok(struct tui *t, const char *what, const char *v)
{
    if (ident_valid(v))
        return true;
    app_notice(t, TM_ERROR, "%s must be an id ([A-Za-z0-9_-], 1 to %d characters)", what,
               IDENT_MAX);
    return false;
}

void app_cmd_tenant(struct tui *t, const char *arg)
{
    if (!app_id_ok(t, "a tenant", arg))
        return;
    snprintf(t->tenant, sizeof t->tenant, "%s", arg);
    app_tenant_seen(t, arg);
    mc_engine_reset_conversation(t->eng);
    input_switch_history(t);
    t->tenant_memories = -1;
    t->tenant_spent = NAN;
    t->rollout_memory = -1;
    app_refresh_tenant(t);
    app_notice(t, TM_INFO,
               "tenant %s: a new conversation, with this tenant's memories, limits "
               "and costs",
               arg);
}

void app_cmd_user(struct tui *t, const char *arg)
{
    if (!app_id_ok(t, "a user", arg))
        return;
    snprintf(t->user, sizeof t->user, "%s", arg);
    mc_engine_reset_conversation(t->eng);
    input_switch_history(t);
    app_notice(t, TM_INFO, "user %s: a new conversation", arg);
}

void app_cmd_agent(struct tui *t, const char *arg)
{
    char err[1024];
    if (mc_engine_check_agent(t->eng, arg, err, sizeof err) != 0) {
        app_notice(t, TM_ERROR, "%s", err);
        return;
    }
    snprintf(t->agent, sizeof t->agent, "%s", arg);
    app_notice(t, TM_INFO, "agent %s answers from now on", arg);
}

void app_cmd_model(struct tui *t, const char *arg)
{
    if (arg != NULL && (strlen(arg) > 200 || !utf8_valid(arg, strlen(arg), NULL))) {
        app_notice(t, TM_ERROR, "a model name is 1 to 200 bytes of UTF-8");
        return;
    }
    app_set_str(&t->model_name, arg);
    app_notice(t, TM_INFO, "model: %s", arg != NULL ? arg : "the agent's or configured one");
}

void app_cmd_provider(struct tui *t, const char *arg)
{
    char err[256];
    if (arg != NULL && !llm_provider_known(arg, err, sizeof err)) {
        app_notice(t, TM_ERROR, "%s", err);
        return;
    }
    app_set_str(&t->provider, arg);
    app_notice(t, TM_INFO, "provider: %s", arg != NULL ? arg : "the agent's or configured one");
}

void app_cmd_memory(struct tui *t, const char *arg)
{
    if (strcmp(arg, "on") == 0)
        t->memory = MC_MEMORY_ON;
    else if (strcmp(arg, "off") == 0)
        t->memory = MC_MEMORY_OFF;
    else if (strcmp(arg, "default") == 0)
        t->memory = MC_MEMORY_DEFAULT;
    else {
        app_notice(t, TM_ERROR, "/memory on|off|default, not '%.40s'", arg);
        return;
    }
    app_notice(t, TM_INFO, "memory: %s",
               t->memory == MC_MEMORY_DEFAULT ? "as the rollout decides" : arg);
}

void app_cmd_search(struct tui *t, const char *arg)
{
    struct mc_memory_job j = {.op = MC_MEM_SEARCH, .tenant = t->tenant, .text = arg};
    char id[MC_UUID_STRLEN + 1], err[512];
    if (mc_engine_submit_memory(t->eng, &j, id, err, sizeof err) != 0) {
        app_notice(t, TM_ERROR, "%s", err);
        return;
    }
    app_job_add(t, id, JOB_SEARCH, false);
    model_add_search(t->model, id, arg);
    t->selected = -1;
    t->ctx_cursor = 0;
    t->ctx_scroll = 0;
    t->dirty = true;
}

void app_cmd_forget(struct tui *t, const char *arg)
{
    const char *id = arg;
    if (id == NULL) {
        const struct tm_candidate *v;
        size_t n = app_candidates(t, &v);
        if (n == 0 || t->ctx_cursor >= n) {
            app_notice(t, TM_ERROR,
                       "no memory is highlighted (the context pane shows a turn's "
                       "memories; Alt-Up/Down picks one)");
            return;
        }
        id = v[t->ctx_cursor].id;
    }
    struct mc_memory_job j = {.op = MC_MEM_FORGET, .tenant = t->tenant, .id = id};
    char job[MC_UUID_STRLEN + 1], err[512];
    if (mc_engine_submit_memory(t->eng, &j, job, err, sizeof err) != 0) {
        app_notice(t, TM_ERROR, "%s", err);
        return;
    }
    app_job_add(t, job, JOB_FORGET, false);
}

void app_cmd_rollout(struct tui *t, const char *arg)
{
    (void)arg;
    struct mc_rollout_change rc = {.op = MC_ROLLOUT_STATUS};
    char id[MC_UUID_STRLEN + 1], err[512];
    if (mc_engine_submit_rollout(t->eng, &rc, id, err, sizeof err) != 0) {
        app_notice(t, TM_ERROR, "%s", err);
        return;
    }
    app_job_add(t, id, JOB_ROLLOUT, false);
}

void app_cmd_compare(struct tui *t, const char *arg)
{
    app_send(t, arg, MC_MEMORY_ON, false, "(compare, memory on)");
    app_send(t, arg, MC_MEMORY_OFF, false, "(compare, memory off)");
}

void app_cmd_conversations(struct tui *t, const char *arg)
{
    if (arg != NULL) {
        app_set_str(&t->resume, arg);
        mc_engine_reset_conversation(t->eng);
        app_notice(t, TM_INFO, "your next message continues conversation %s", arg);
        return;
    }
    struct mc_memory_job j = {
        .op = MC_CONV_LIST, .tenant = t->tenant, .user = t->user, .k = TUI_CONV_LIST};
    char id[MC_UUID_STRLEN + 1], err[512];
    if (mc_engine_submit_memory(t->eng, &j, id, err, sizeof err) != 0) {
        app_notice(t, TM_ERROR, "%s", err);
        return;
    }
    app_job_add(t, id, JOB_CONVS, false);
}

void app_cmd_new(struct tui *t, const char *arg)
{
    (void)arg;
    mc_engine_reset_conversation(t->eng);
    app_set_str(&t->resume, NULL);
    app_notice(t, TM_INFO, "\xe2\x80\x94 a new conversation \xe2\x80\x94");
}

void app_cmd_regenerate(struct tui *t, const char *arg)
{
    (void)arg;
    if (t->last_text == NULL) {
        app_notice(t, TM_ERROR, "nothing to regenerate yet");
        return;
    }
    char *text = xstrdup(t->last_text);
    app_send(t, text, t->memory, true, "(again)");
    xfree(text);
}

void app_cmd_theme(struct tui *t, const char *arg)
{
    struct theme th;
    char err[1024];
    if (theme_load(config_str(t->cfg, CFG_MEMCHAT_SHARE_DIR),
                   config_str(t->cfg, CFG_MEMCHAT_CONFIG_DIR), arg, &th, err, sizeof err) != 0) {
        app_notice(t, TM_ERROR, "%s", err);
        return;
    }
    t->theme = th;
    draw_init_colors(t);
    clearok(curscr, TRUE);
    t->relayout = true;
    app_notice(t, TM_INFO, "theme %s", arg);
}

void app_cmd_export(struct tui *t, const char *arg)
{
    char *path = NULL;
    const char *home = getenv("HOME");
    if (strncmp(arg, "~/", 2) == 0 && home != NULL)
        path = paths_join(home, arg + 2);
    else
        path = xstrdup(arg);
    struct buf md;
    buf_init(&md, (size_t)256 << 20);
    model_export_markdown(t->model, &md);
    char err[1024];
    if (fileio_replace(path, md.data != NULL ? md.data : "", md.len, 0600, err, sizeof err) != 0)
        app_notice(t, TM_ERROR, "%s", err);
    else
        app_notice(t, TM_INFO, "the conversation is in %s (%zu bytes of Markdown)", path, md.len);
    buf_free(&md);
    xfree(path);
}

void app_cmd_help(struct tui *t, const char *arg)
{
    (void)arg;
    struct buf b;
    buf_init(&b, 65536);
    cmds_help(&b);
    app_set_overlay(t, "memchat help", buf_cstr(&b));
    buf_free(&b);
}

void app_cmd_quit(struct tui *t, const char *arg)
{
    (void)arg;
    t->quit = true;
}

/* --- answers to jobs -------------------------------------------------------- */

/* Text that came from the data file, made safe for the screen. */
static void app_safe(struct buf *b, const char *s)
{
    utf8_sanitize_terminal(b, s, strlen(s));
}

static void app_show_conversations(struct tui *t, const cJSON *items)
{
    struct buf b;
    buf_init(&b, 1 << 20);
    buf_printf(&b,
               "Your conversations in tenant %s, newest first. /conversations ID continues "
               "one.\n\n",
               t->tenant);
    const cJSON *it;
    int n = 0;
    cJSON_ArrayForEach(it, items)
    {
        buf_printf(&b, "%s  %3.0f turns  ", mc_json_str(it, "id", "?"),
                   mc_json_num(it, "turns", 0));
        app_safe(&b, mc_json_str(it, "title", ""));
        buf_puts(&b, "\n");
        n++;
    }
    if (n == 0)
        buf_puts(&b, "(none yet)\n");
    app_set_overlay(t, "Conversations", buf_cstr(&b));
    buf_free(&b);
}

static void app_show_rollout(struct tui *t, const cJSON *st, bool quiet)
{
    const cJSON *tenants = cJSON_GetObjectItemCaseSensitive(st, "tenants");
    const cJSON *it;
    t->tenant_spent = 0;
    cJSON_ArrayForEach(it, tenants)
    {
        if (strcmp(mc_json_str(it, "tenant", ""), t->tenant) != 0)
            continue;
        t->tenant_spent = mc_json_num(it, "spent_usd", 0);
        t->rollout_memory = mc_json_bool(it, "memory", false);
        snprintf(t->rollout_reason, sizeof t->rollout_reason, "%s", mc_json_str(it, "reason", "?"));
    }
    t->dirty = true;
    if (quiet)
        return;
    struct buf b;
    buf_init(&b, 1 << 20);
    const cJSON *pct = cJSON_GetObjectItemCaseSensitive(st, "percent");
    buf_printf(&b, "global setting: %s \xc2\xb7 percentage: ", mc_json_str(st, "global", "unset"));
    if (cJSON_IsNumber(pct))
        buf_printf(&b, "%d", pct->valueint);
    else
        buf_puts(&b, "off");
    buf_printf(&b, " \xc2\xb7 RAG_ENABLED %s\n",
               mc_json_bool(st, "rag_enabled", false) ? "true" : "false");
    buf_puts(&b, "Rules, strongest first: session (/memory), agent, tenant, percent, global, env.\n"
                 "Figures over the last 7 days (memchat rollout status --since for another "
                 "window).\n\n");
    int n = 0;
    cJSON_ArrayForEach(it, tenants)
    {
        const char *setting = mc_json_str(it, "setting", NULL);
        buf_printf(&b,
                   "%s: memory %s (rule %s), own setting %s, bucket %.0f, %.0f turns "
                   "(%.0f on, %.0f off), spent $%.4f\n",
                   mc_json_str(it, "tenant", "?"), mc_json_bool(it, "memory", false) ? "on" : "off",
                   mc_json_str(it, "reason", "?"), setting ? setting : "none",
                   mc_json_num(it, "bucket", 0), mc_json_num(it, "turns", 0),
                   mc_json_num(it, "turns_memory_on", 0), mc_json_num(it, "turns_memory_off", 0),
                   mc_json_num(it, "spent_usd", 0));
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(it, "figures");
        const cJSON *fig;
        cJSON_ArrayForEach(fig, f)
        {
            buf_printf(&b, "    %-18s %s\n", fig->string != NULL ? fig->string : "?",
                       mc_json_str(fig, "state", "?"));
        }
        n++;
    }
    if (n == 0)
        buf_puts(&b, "No tenant has its own setting or a turn in the window.\n");
    app_set_overlay(t, "Rollout of memory", buf_cstr(&b));
    buf_free(&b);
}

/* A `result` or job `error` for one of our jobs. */
static void app_on_job(struct tui *t, const struct mc_event *ev, const struct tui_job *j)
{
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(ev->json, "items");
    if (ev->kind == MC_EV_ERROR) {
        if (!j->quiet && j->kind != JOB_SEARCH) {
            struct buf b;
            buf_init(&b, 4096);
            app_safe(&b, mc_event_str(ev, "message", "the job failed"));
            app_notice(t, TM_ERROR, "%s", buf_cstr(&b));
            buf_free(&b);
        }
        return;
    }
    const cJSON *first = cJSON_GetArrayItem(items, 0);
    switch (j->kind) {
    case JOB_SEARCH:
        break; /* the model has it */
    case JOB_CONVS:
        app_show_conversations(t, items);
        break;
    case JOB_ROLLOUT:
        if (first != NULL)
            app_show_rollout(t, first, j->quiet);
        break;
    case JOB_STATS:
        t->tenant_memories = (long long)mc_json_num(first, "count", -1);
        t->dirty = true;
        break;
    case JOB_FORGET: {
        double d = mc_json_num(first, "deleted", 0);
        app_notice(t, TM_INFO,
                   d > 0 ? "forgotten: that memory will not be recalled again"
                         : "no such memory (already forgotten?)");
        app_refresh_tenant(t);
        break;
    }
    }
}

/* Answers the waiting tool call, once. */
static void app_answer_tool(struct tui *t, bool allow)
{
    if (t->confirm_id[0] == '\0') {
        app_notice(t, TM_INFO, "no tool is waiting for an answer");
        return;
    }
    mc_engine_answer_tool(t->eng, t->confirm_id, allow);
    app_notice(t, TM_INFO, "tool %s: %s", t->confirm_name, allow ? "allowed" : "refused");
    t->confirm_id[0] = '\0';
}

void app_cmd_allow(struct tui *t, const char *arg)
{
    (void)arg;
    app_answer_tool(t, true);
}

void app_cmd_deny(struct tui *t, const char *arg)
{
    (void)arg;
    app_answer_tool(t, false);
}

/* The tool lines of the conversation: what the model called, what waits
 * for the user, and how each call ended (model_notice sanitises them). */
static void app_on_tool(struct tui *t, const struct mc_event *ev)
{
    const char *name = mc_event_str(ev, "name", "?");
    if (ev->kind == MC_EV_TOOL_RESULT) {
        if (mc_event_bool(ev, "ok", false))
            app_notice(t, TM_INFO, "tool %s: ok (%.0f ms)", name,
                       mc_event_num(ev, "latency_ms", 0));
        else
            app_notice(t, TM_ERROR, "tool %s: %s", name, mc_event_str(ev, "error", "failed"));
        return;
    }
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(ev->json, "arguments");
    char *args = a != NULL ? cJSON_PrintUnformatted(a) : NULL;
    if (ev->kind == MC_EV_TOOL_CALL) {
        app_notice(t, TM_INFO, "tool %s %s", name, args != NULL ? args : "");
    } else {
        snprintf(t->confirm_id, sizeof t->confirm_id, "%s", mc_event_str(ev, "call_id", ""));
        snprintf(t->confirm_name, sizeof t->confirm_name, "%s", name);
        app_notice(t, TM_ERROR, "tool %s is not read-only and asks to run: /allow or /deny", name);
    }
    cJSON_free(args);
}

static void app_on_event(struct tui *t, struct mc_event *ev)
{
    const char *job = mc_event_str(ev, "job", NULL);
    struct tui_job j;
    bool ours = job != NULL && app_job_take(t, job, &j);
    if (model_apply(t->model, ev))
        t->dirty = true;
    if (ours) {
        app_on_job(t, ev, &j);
        return;
    }
    if (ev->kind == MC_EV_TOOL_CALL || ev->kind == MC_EV_TOOL_CONFIRM ||
        ev->kind == MC_EV_TOOL_RESULT) {
        app_on_tool(t, ev);
    } else if (ev->kind == MC_EV_TURN_DONE) {
        t->confirm_id[0] = '\0'; /* a cancelled turn asks no more */
        app_refresh_rollout(t);
        app_estimate(t);
    } else if (ev->kind == MC_EV_MEMORY_STORED) {
        app_refresh_count(t);
    }
}

/* --- the loop --------------------------------------------------------------- */

static void app_suspend(void *ud)
{
    (void)ud;
    term_suspend();
}

static void app_resize(struct tui *t)
{
    int rows, cols;
    if (!term_size(&rows, &cols))
        return;
    resizeterm(rows, cols);
    rl_set_screen_size(rows, cols);
    t->rows = rows;
    t->cols = cols;
    t->relayout = t->dirty = true;
}

static void app_on_signal(struct tui *t, int sig)
{
    switch (sig) {
    case SIGINT:
        if (model_busy(t->model)) {
            app_cancel(t);
        } else if (rl_end > 0) {
            rl_replace_line("", 0);
            rl_point = 0;
            t->dirty_input = true;
        } else {
            app_notice(t, TM_INFO, "Ctrl-D on an empty line or /quit leaves memchat");
        }
        break;
    case SIGTERM:
    case SIGHUP:
        t->quit = true;
        t->quit_signal = sig;
        break;
    case SIGWINCH:
        app_resize(t);
        break;
    case SIGTSTP:
        input_outside(t, app_suspend, NULL);
        app_resize(t);
        break;
    case SIGCONT:
        clearok(curscr, TRUE);
        app_resize(t);
        break;
    default:
        break;
    }
}

/* Reads what stdin has; false when the terminal is gone. */
static bool app_read_stdin(struct tui *t)
{
    char b[TUI_READ_MAX];
    ssize_t n = read(STDIN_FILENO, b, sizeof b);
    if (n == 0)
        return false;
    if (n < 0)
        return errno == EINTR || errno == EAGAIN;
    if (t->in.len + (size_t)n > TUI_INPUT_MAX) {
        app_notice(t, TM_ERROR, "input over %zu MiB at once was dropped", TUI_INPUT_MAX >> 20);
        return true;
    }
    buf_append(&t->in, b, (size_t)n);
    return true;
}

static int app_timeout(const struct tui *t, int64_t now)
{
    int64_t due = -1;
    if (t->dirty || t->dirty_input || t->relayout)
        due = t->last_frame_ms + TUI_FRAME_MS;
    if (t->esc_deadline > 0 && (due < 0 || t->esc_deadline < due))
        due = t->esc_deadline;
    if (due < 0)
        return -1;
    return due <= now ? 0 : (int)(due - now);
}

static void app_loop(struct tui *t)
{
    const char *last_line = NULL;
    size_t last_len = (size_t)-1;
    while (!t->quit) {
        int64_t now = clock_mono_ms();
        if (t->dirty_input && (input_line() != last_line || strlen(input_line()) != last_len)) {
            last_line = input_line();
            last_len = strlen(last_line);
            app_estimate(t);
            t->dirty = true; /* the metrics pane shows the estimate */
        }
        if (t->dirty_input && input_rows_needed(t, t->cols) != t->input_rows)
            t->relayout = true;
        if ((t->dirty || t->relayout) && now - t->last_frame_ms >= TUI_FRAME_MS) {
            draw_frame(t);
            t->last_frame_ms = now;
        } else if (t->dirty_input) {
            /* A keystroke shows at once: the input line alone is cheap, and
             * the panes follow at the next frame. */
            draw_input_only(t);
        }
        struct pollfd p[3] = {
            {.fd = STDIN_FILENO, .events = POLLIN},
            {.fd = mc_engine_wake_fd(t->eng), .events = POLLIN},
            {.fd = term_signal_fd(), .events = POLLIN},
        };
        int rc = poll(p, 3, app_timeout(t, clock_mono_ms()));
        if (rc < 0 && errno != EINTR)
            break;
        if (p[2].revents & POLLIN) {
            int sig;
            while ((sig = term_take_signal()) != 0)
                app_on_signal(t, sig);
        }
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            if (!app_read_stdin(t))
                t->quit = true;
        }
        if (t->in.len > 0)
            input_feed(t, clock_mono_ms());
        if (p[1].revents & POLLIN) {
            struct mc_event *ev;
            while ((ev = mc_engine_next_event(t->eng)) != NULL) {
                app_on_event(t, ev);
                mc_event_free(ev);
            }
        }
    }
}

bool tui_usable(char *why, size_t whylen)
{
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        snprintf(why, whylen, "stdin or stdout is not a terminal");
        return false;
    }
    const char *term = getenv("TERM");
    if (term == NULL || term[0] == '\0' || strcmp(term, "dumb") == 0) {
        snprintf(why, whylen, "TERM is %s", term == NULL || term[0] == '\0' ? "not set" : "dumb");
        return false;
    }
    return true;
}

/* The strings that leave curses' screen, for term.c's fatal-signal path. */
static void app_exit_strings(void)
{
    char s[256] = "";
    const char *caps[] = {"sgr0", "cnorm", "rmcup"};
    for (size_t i = 0; i < 3; i++) {
        char *v = tigetstr(caps[i]);
        if (v != NULL && v != (char *)-1 && strlen(s) + strlen(v) < sizeof s)
            memcpy(s + strlen(s), v, strlen(v) + 1);
    }
    term_set_exit_strings(s);
}

static void app_init_state(struct tui *t, const struct config *cfg, struct mc_engine *eng,
                           const struct tui_opts *o)
{
    memset(t, 0, sizeof *t);
    t->cfg = cfg;
    t->eng = eng;
    /* The TUI has someone to ask: /allow and /deny answer tool.confirm. */
    mc_engine_set_tool_confirm(eng, MC_TOOL_CONFIRM_ASK);
    t->model = model_new();
    snprintf(t->tenant, sizeof t->tenant, "%s",
             o->tenant ? o->tenant : config_str(cfg, CFG_MEMCHAT_TENANT));
    snprintf(t->user, sizeof t->user, "%s", o->user ? o->user : config_str(cfg, CFG_MEMCHAT_USER));
    snprintf(t->agent, sizeof t->agent, "%s",
             o->agent ? o->agent : config_str(cfg, CFG_MEMCHAT_AGENT));
    t->provider = o->provider ? xstrdup(o->provider) : NULL;
    t->model_name = o->model ? xstrdup(o->model) : NULL;
    t->memory = o->memory;
    t->zoom = -1;
    t->selected = -1;
    t->tenant_memories = -1;
    t->tenant_spent = NAN;
    t->rollout_memory = -1;
    t->input_rows = 1;
    buf_init(&t->in, TUI_INPUT_MAX);
    buf_init(&t->overlay.text, (size_t)1 << 20);
    app_tenant_seen(t, t->tenant);
    char err[1024];
    if (theme_load(config_str(cfg, CFG_MEMCHAT_SHARE_DIR), config_str(cfg, CFG_MEMCHAT_CONFIG_DIR),
                   config_str(cfg, CFG_MEMCHAT_THEME), &t->theme, err, sizeof err) != 0) {
        theme_builtin(&t->theme);
        model_notice(t->model, TM_ERROR, "%s; using the default theme", err);
    }
}

static void app_free_state(struct tui *t)
{
    draw_free(t);
    model_free(t->model);
    xfree(t->provider);
    xfree(t->model_name);
    xfree(t->resume);
    for (size_t i = 0; i < t->n_tenants_seen; i++)
        xfree(t->tenants_seen[i]);
    xfree(t->tenants_seen);
    buf_free(&t->in);
    buf_free(&t->overlay.text);
    xfree(t->last_text);
}

/* Widths and drawing need a UTF-8 locale (memchat's text is UTF-8 in any
 * case): the user's, else C.UTF-8, which glibc always has. */
static void app_locale(void)
{
    setlocale(LC_ALL, "");
    const char *cs = nl_langinfo(CODESET);
    if (cs == NULL || strcmp(cs, "UTF-8") != 0)
        setlocale(LC_CTYPE, "C.UTF-8");
}

int tui_run(const struct config *cfg, struct mc_engine *eng, const struct tui_opts *o)
{
    app_locale();
    struct tui t;
    app_init_state(&t, cfg, eng, o);
    char err[1024] = "";
    if (term_open(err, sizeof err) != 0) {
        fprintf(stderr, "memchat: %s\n", err);
        app_free_state(&t);
        return MC_EXIT_RUNTIME;
    }
    SCREEN *scr = newterm(NULL, stdout, stdin);
    if (scr == NULL) {
        term_close();
        fprintf(stderr, "memchat: cannot start the screen for TERM=%s\n", getenv("TERM"));
        app_free_state(&t);
        return MC_EXIT_RUNTIME;
    }
    app_exit_strings();
    nonl();
    noecho();
    cbreak();
    curs_set(1);
    draw_init_colors(&t);
    if (!term_size(&t.rows, &t.cols))
        getmaxyx(stdscr, t.rows, t.cols);
    int rc = MC_EXIT_OK;
    if (input_init(&t, err, sizeof err) != 0) {
        rc = MC_EXIT_RUNTIME;
    } else {
        t.mouse = config_bool(cfg, CFG_MEMCHAT_TUI_MOUSE);
        if (t.mouse)
            term_mouse(true);
        t.relayout = t.dirty = true;
        app_estimate(&t);
        app_refresh_tenant(&t);
        app_loop(&t);
        if (t.mouse)
            term_mouse(false);
        input_fini(&t);
    }
    endwin();
    delscreen(scr);
    term_close();
    if (rc != MC_EXIT_OK)
        fprintf(stderr, "memchat: %s\n", err);
    else if (t.quit_signal != 0)
        rc = 128 + t.quit_signal; /* the status a shell shows for that signal */
    app_free_state(&t);
    return rc;
}
