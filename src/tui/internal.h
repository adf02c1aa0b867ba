/*
 * What the TUI's files share: the session's state (struct tui), owned by
 * app.c and touched only on the UI thread, and the actions that commands
 * (cmds.c), keys (input.c) and drawing (draw.c) call. Nothing here is
 * visible outside tui/.
 */
#ifndef MEMCHAT_TUI_INTERNAL_H
#define MEMCHAT_TUI_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memchat/engine.h"
#include "tools/registry.h"
#include "tui/layout.h"
#include "tui/model.h"
#include "tui/text.h"
#include "tui/theme.h"
#include "util/buf.h"
#include "util/ident.h"

struct config;

/* Jobs the TUI waits for, by what their answer is for. */
enum tui_job_kind { JOB_SEARCH, JOB_CONVS, JOB_ROLLOUT, JOB_STATS, JOB_FORGET };
#define TUI_MAX_JOBS 32

struct tui_job {
    char id[MC_UUID_STRLEN + 1];
    enum tui_job_kind kind;
    bool quiet; /* a refresh the user did not ask for: no overlay, no notice */
};

/* One line of a pane, already wrapped: text[start, start + len) of the
 * entry's rendering, drawn after indent columns in style el, and from
 * byte `split` on in style el2 (a header's markers). */
struct dline {
    size_t start, len;
    enum theme_element el;
    int indent;
    size_t split;
    enum theme_element el2;
};

/* The conversation pane's rendering of one entry, kept until the entry
 * or the width changes (a streaming reply re-renders only its own). */
struct rendered {
    uint64_t version; /* of the entry when rendered; 0 = never */
    int width;
    bool selected;
    struct buf text; /* the lines' bytes */
    struct dline *lines;
    size_t n, cap;
};

/* A list shown over the panes (/help, /rollout, /conversations). */
struct overlay {
    bool on;
    char title[80];
    struct buf text;
    int scroll;
};

struct tui {
    const struct config *cfg;
    struct mc_engine *eng;
    struct model *model;
    /* the session's choices */
    char tenant[IDENT_MAX + 1], user[IDENT_MAX + 1], agent[IDENT_MAX + 1];
    char *provider, *model_name; /* NULL: the agent's or configured */
    enum mc_memory_override memory;
    char *resume; /* the conversation the next turn continues, or NULL */
    /* The tool call waiting for /allow or /deny ("" when none), and its
     * tool's name. */
    char confirm_id[128];
    char confirm_name[TOOL_NAME_MAX + 1];
    char **tenants_seen;
    size_t n_tenants_seen;
    /* look */
    struct theme theme;
    bool color; /* colours in use (not NO_COLOR, the terminal has them) */
    int colors; /* COLORS */
    struct layout lay;
    int rows, cols;
    enum pane focus;
    int zoom;       /* a pane, or -1 */
    int input_rows; /* rows the input needs now */
    /* what is selected and scrolled */
    long selected;   /* an entry, or -1: follow the newest */
    int conv_scroll; /* lines up from the bottom */
    int ctx_scroll, metrics_scroll;
    size_t ctx_cursor; /* the highlighted candidate */
    bool show_injected;
    struct overlay overlay;
    struct rendered *render; /* one per model entry */
    size_t n_render;
    /* the tenant's figures, refreshed by jobs */
    long long tenant_memories; /* -1 unknown */
    double tenant_spent;       /* NAN unknown */
    char rollout_reason[32];   /* from the status job: a plain turn's rule */
    int rollout_memory;        /* -1 unknown */
    /* the estimate of the message being typed */
    struct mc_estimate est;
    bool est_valid;
    /* jobs waiting for an answer */
    struct tui_job jobs[TUI_MAX_JOBS];
    size_t n_jobs;
    /* redraw */
    bool dirty;       /* the panes need drawing */
    bool dirty_input; /* only the input line */
    bool relayout;    /* the size or zoom changed */
    int64_t last_frame_ms;
    uint64_t frames;
    /* input bytes not yet given to readline */
    struct buf in;
    int64_t esc_deadline; /* a lone Esc is decided then; 0: none */
    bool quit;
    int quit_signal; /* SIGTERM or SIGHUP when one ended the loop, else 0 */
    bool mouse;      /* MEMCHAT_TUI_MOUSE: reports are on */
    char *history_path;
    char *last_text; /* the last message sent, for /regenerate */
};

/* app.c: actions */
void app_submit_line(struct tui *t, char *line);
void app_focus_next(struct tui *t);
void app_zoom(struct tui *t);
void app_scroll(struct tui *t, int pages);
void app_select(struct tui *t, int delta);
void app_toggle_injected(struct tui *t);
void app_forget_highlighted(struct tui *t);
void app_show_help(struct tui *t);
void app_cancel(struct tui *t);
void app_notice(struct tui *t, enum tm_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The entry the context pane shows: the selected one, else the newest
 * turn or search; -1 when none. */
long app_context_entry(const struct tui *t);
void app_set_overlay(struct tui *t, const char *title, const char *text);
void app_estimate(struct tui *t);

/* app.c: the commands of cmds.c's table */
void app_cmd_tenant(struct tui *t, const char *arg);
void app_cmd_user(struct tui *t, const char *arg);
void app_cmd_agent(struct tui *t, const char *arg);
void app_cmd_model(struct tui *t, const char *arg);
void app_cmd_provider(struct tui *t, const char *arg);
void app_cmd_memory(struct tui *t, const char *arg);
void app_cmd_search(struct tui *t, const char *arg);
void app_cmd_forget(struct tui *t, const char *arg);
void app_cmd_rollout(struct tui *t, const char *arg);
void app_cmd_compare(struct tui *t, const char *arg);
void app_cmd_conversations(struct tui *t, const char *arg);
void app_cmd_new(struct tui *t, const char *arg);
void app_cmd_regenerate(struct tui *t, const char *arg);
void app_cmd_theme(struct tui *t, const char *arg);
void app_cmd_export(struct tui *t, const char *arg);
void app_cmd_help(struct tui *t, const char *arg);
void app_cmd_quit(struct tui *t, const char *arg);
void app_cmd_allow(struct tui *t, const char *arg);
void app_cmd_deny(struct tui *t, const char *arg);

/* draw.c */
/* Applies the theme to curses' colour pairs. */
void draw_init_colors(struct tui *t);
/* Draws everything that is dirty and updates the screen once. */
void draw_frame(struct tui *t);
/* Draws the input line alone (a keystroke between frames). */
void draw_input_only(struct tui *t);
/* Frees the conversation pane's renderings. */
void draw_free(struct tui *t);
/* The curses attributes (colour pair included) of element el. */
int draw_attr(const struct tui *t, enum theme_element el);
/* Writes s[0..n) at the cursor, the one way text reaches curses: a tab as
 * TEXT_TAB_COLS spaces, and what text_safe_prefix refuses (a control, a
 * bidi override, an invalid byte) as U+FFFD, the column text.h counts. */
void draw_bytes(const char *s, size_t n);

/* input.c */
/* Sets readline up inside curses: our key functions, completion, history. */
int input_init(struct tui *t, char *err, size_t errlen);
void input_fini(struct tui *t);
/* Gives readline the bytes waiting in t->in that are not ours (mouse
 * reports, a lone Esc); now_ms decides a pending Esc. */
void input_feed(struct tui *t, int64_t now_ms);
/* Draws the prompt and the line into the input rows, cursor placed. */
void input_draw(struct tui *t);
/* Rows the current line needs at width cols (1..5). */
int input_rows_needed(const struct tui *t, int cols);
/* The line being typed (not yet sent), for the estimate. */
const char *input_line(void);
/* Debug builds: aborts unless called on the thread that runs the TUI
 * (curses and readline are not thread-safe). */
void input_assert_ui_thread(void);
/* Saves the history and opens the one of t's (tenant, user). */
void input_switch_history(struct tui *t);
/* Leaves curses and readline's terminal mode, runs fn, comes back. */
void input_outside(struct tui *t, void (*fn)(void *ud), void *ud);

#endif
