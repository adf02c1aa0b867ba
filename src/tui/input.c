/*
 * The input line: GNU readline through its callback interface, drawn by
 * us inside the curses screen (STYLE.md, "Readline inside ncurses"). The
 * app's loop is the only reader of stdin: it reads bytes into t->in, takes
 * out what is ours (SGR mouse reports, a lone Esc, which cancels a
 * streaming reply), and gives readline the rest one key at a time through
 * rl_getc_function. readline never writes to the terminal (rl_outstream
 * is /dev/null); our redisplay hook only marks the input dirty and the
 * frame draws rl_display_prompt and rl_line_buffer, converting rl_point
 * (bytes) to columns. The app's keys are named readline functions
 * (memchat-focus-next, ...), bound by default and rebindable in
 * ~/.inputrc under `$if memchat`.
 *
 * readline keeps its state in globals and calls back without a user
 * pointer, so the one TUI of the process is reached through `cur`, set by
 * input_init and cleared by input_fini, on the UI thread only.
 */
#include "config.h"

#include <assert.h>
#include <curses.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <readline/history.h>
#include <readline/readline.h>

#include "config/config.h"
#include "config/vars.h"
#include "llm/provider.h"
#include "tui/cmds.h"
#include "tui/internal.h"
#include "tui/term.h"
#include "util/alloc.h"
#include "util/fileio.h"
#include "util/paths.h"
#include "util/utf8.h"

/* The prompt; readline shows its own while searching history. */
#define INPUT_PROMPT "\xe2\x80\xba "
/* Lines of history kept per user. */
#define INPUT_HISTORY_MAX 1000
/* The longest message $EDITOR may hand back. */
#define INPUT_EDITOR_MAX (1024 * 1024)
/* The longest partial mouse report waited for. */
#define INPUT_MOUSE_MAX 32

static struct tui *cur;
static pthread_t ui_thread;
static FILE *rl_null;

/* Debug builds check that readline runs on the UI thread only. */
#define INPUT_ON_UI_THREAD() assert(pthread_equal(pthread_self(), ui_thread))

void input_assert_ui_thread(void)
{
    INPUT_ON_UI_THREAD();
}

/* readline's source of keys: the bytes the loop read. When a key needs
 * more bytes than have arrived (a sequence cut between two reads), wait
 * briefly for them rather than report an end of file. */
static int input_getc(FILE *f)
{
    (void)f;
    if (cur == NULL)
        return EOF;
    if (cur->in.len == 0) {
        struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
        char b[256];
        ssize_t n = poll(&p, 1, 100) == 1 ? read(STDIN_FILENO, b, sizeof b) : -1;
        if (n <= 0)
            return n == 0 ? EOF : 0;
        buf_append(&cur->in, b, (size_t)n);
    }
    unsigned char c = (unsigned char)cur->in.data[0];
    buf_consume(&cur->in, 1);
    return c;
}

static int input_available(void)
{
    return cur != NULL && cur->in.len > 0;
}

static void input_redisplay(void)
{
    if (cur != NULL)
        cur->dirty_input = true;
}

/* readline's line handler: the line is ours to free. NULL is Ctrl-D on
 * an empty line. */
static void input_on_line(char *line)
{
    if (cur == NULL) {
        free(line);
        return;
    }
    if (line == NULL) {
        cur->quit = true;
        return;
    }
    if (line[0] != '\0') {
        add_history(line);
        if (cur->history_path != NULL)
            append_history(1, cur->history_path);
    }
    char *copy = xstrdup(line);
    free(line);
    app_submit_line(cur, copy);
    xfree(copy);
    cur->dirty_input = true;
}

/* --- the app's keys ------------------------------------------------------ */

/* A readline function that runs an app action (readline passes no user
 * pointer, so each key needs its own function). */
#define KEY_ACTION(fn, action)        \
    static int fn(int count, int key) \
    {                                 \
        (void)count, (void)key;       \
        action(cur);                  \
        return 0;                     \
    }

KEY_ACTION(key_help, app_show_help)
KEY_ACTION(key_focus, app_focus_next)
KEY_ACTION(key_zoom, app_zoom)
KEY_ACTION(key_injected, app_toggle_injected)
KEY_ACTION(key_forget, app_forget_highlighted)

static int key_scroll_up(int count, int key)
{
    (void)key;
    app_scroll(cur, count > 0 ? count : 1);
    return 0;
}

static int key_scroll_down(int count, int key)
{
    (void)key;
    app_scroll(cur, -(count > 0 ? count : 1));
    return 0;
}

static void input_select_prev(struct tui *t)
{
    app_select(t, -1);
}

static void input_select_next(struct tui *t)
{
    app_select(t, 1);
}

KEY_ACTION(key_prev, input_select_prev)
KEY_ACTION(key_next, input_select_next)

static int key_newline(int count, int key)
{
    (void)count, (void)key;
    rl_insert_text("\n");
    return 0;
}

/* $EDITOR on the line: what runs outside curses. */
struct editor_run {
    const char *path;
    int status;
};

static void input_run_editor(void *ud)
{
    struct editor_run *r = ud;
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", "exec $MEMCHAT_EDITOR_CMD \"$1\"", "sh", r->path,
              (char *)NULL);
        _exit(127);
    }
    r->status = -1;
    if (pid > 0)
        while (waitpid(pid, &r->status, 0) < 0 && errno == EINTR) {
        }
}

static int key_edit(int count, int key)
{
    (void)count, (void)key;
    char path[] = "/tmp/memchat-message-XXXXXX";
    int fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0) {
        app_notice(cur, TM_ERROR, "cannot create a file for $EDITOR: %s", strerror(errno));
        return 0;
    }
    size_t n = (size_t)rl_end;
    bool ok = write(fd, rl_line_buffer, n) == (ssize_t)n;
    close(fd);
    const char *editor = getenv("VISUAL");
    if (editor == NULL || editor[0] == '\0')
        editor = getenv("EDITOR");
    setenv("MEMCHAT_EDITOR_CMD", editor != NULL && editor[0] != '\0' ? editor : "vi", 1);
    struct editor_run r = {.path = path, .status = -1};
    if (ok)
        input_outside(cur, input_run_editor, &r);
    unsetenv("MEMCHAT_EDITOR_CMD");
    char err[512] = "";
    char *text = NULL;
    size_t len = 0;
    if (!ok || r.status != 0)
        app_notice(cur, TM_ERROR, "the editor failed (exit status %d); the message is unchanged",
                   WIFEXITED(r.status) ? WEXITSTATUS(r.status) : -1);
    else if (fileio_read_all(path, INPUT_EDITOR_MAX, &text, &len, err, sizeof err) != 0)
        app_notice(cur, TM_ERROR, "%s", err);
    else {
        while (len > 0 && text[len - 1] == '\n')
            text[--len] = '\0';
        rl_replace_line(text, 0);
        rl_point = rl_end;
    }
    xfree(text);
    unlink(path);
    cur->dirty = cur->relayout = true;
    return 0;
}

static const struct {
    const char *name;
    rl_command_func_t *fn;
} key_fns[] = {
    {"memchat-help", key_help},
    {"memchat-focus-next", key_focus},
    {"memchat-zoom", key_zoom},
    {"memchat-show-injected", key_injected},
    {"memchat-forget", key_forget},
    {"memchat-scroll-up", key_scroll_up},
    {"memchat-scroll-down", key_scroll_down},
    {"memchat-select-prev", key_prev},
    {"memchat-select-next", key_next},
    {"memchat-newline", key_newline},
    {"memchat-edit", key_edit},
};

static rl_command_func_t *input_key_fn(const char *name)
{
    for (size_t i = 0; i < sizeof key_fns / sizeof key_fns[0]; i++)
        if (strcmp(key_fns[i].name, name) == 0)
            return key_fns[i].fn;
    return NULL;
}

/* Names every key function and binds its default keys in the emacs and
 * vi insert keymaps, before readline reads ~/.inputrc (which may rebind). */
static void input_bind_keys(void)
{
    for (size_t i = 0; i < keys_count(); i++) {
        const struct key_entry *k = keys_at(i);
        rl_command_func_t *fn = input_key_fn(k->name);
        assert(fn != NULL);
        rl_add_defun(k->name, fn, -1);
        for (size_t j = 0; k->seqs[j] != NULL; j++) {
            rl_bind_keyseq_in_map(k->seqs[j], fn, emacs_standard_keymap);
            rl_bind_keyseq_in_map(k->seqs[j], fn, vi_insertion_keymap);
        }
    }
}

/* --- completion ---------------------------------------------------------- */

/* The i-th candidate of kind, or NULL past the last. */
static const char *input_candidate(enum cmd_complete kind, size_t i, char ***names)
{
    static const char *const memory_words[] = {"on", "off", "default"};
    switch (kind) {
    case CMD_COMPLETE_AGENT:
        return mc_engine_agent_at(cur->eng, i);
    case CMD_COMPLETE_MODEL:
        return mc_engine_model_at(cur->eng, cur->provider, i);
    case CMD_COMPLETE_PROVIDER:
        return llm_provider_name_at(i);
    case CMD_COMPLETE_MEMORY:
        return i < 3 ? memory_words[i] : NULL;
    case CMD_COMPLETE_TENANT:
        return i < cur->n_tenants_seen ? cur->tenants_seen[i] : NULL;
    case CMD_COMPLETE_THEME:
        if (*names == NULL)
            *names = theme_names(config_str(cur->cfg, CFG_MEMCHAT_SHARE_DIR),
                                 config_str(cur->cfg, CFG_MEMCHAT_CONFIG_DIR));
        for (size_t j = 0; j <= i; j++)
            if ((*names)[j] == NULL)
                return NULL;
        return (*names)[i];
    case CMD_COMPLETE_NONE:
    case CMD_COMPLETE_FILE:
        break;
    }
    return NULL;
}

static enum cmd_complete complete_kind;
static bool complete_commands;

static char *input_generate(const char *text, int state)
{
    static size_t i;
    static char **names;
    if (state == 0) {
        i = 0;
        theme_names_free(names);
        names = NULL;
    }
    size_t len = strlen(text);
    if (complete_commands) {
        const struct cmd_entry *c;
        while ((c = cmds_at(i++)) != NULL) {
            if (len == 0 || (text[0] == '/' && strncmp(c->name, text + 1, len - 1) == 0)) {
                char *m = malloc(strlen(c->name) + 2);
                if (m != NULL) {
                    m[0] = '/';
                    memcpy(m + 1, c->name, strlen(c->name) + 1);
                }
                return m;
            }
        }
        return NULL;
    }
    const char *cand;
    while ((cand = input_candidate(complete_kind, i++, &names)) != NULL)
        if (strncmp(cand, text, len) == 0)
            return strdup(cand);
    theme_names_free(names);
    names = NULL;
    return NULL;
}

static char **input_complete(const char *text, int start, int end)
{
    (void)end;
    rl_attempted_completion_over = 1;
    complete_commands = false;
    if (rl_line_buffer[0] != '/')
        return NULL;
    if (start == 0) {
        complete_commands = true;
        return rl_completion_matches(text, input_generate);
    }
    char name[32];
    size_t n = strcspn(rl_line_buffer + 1, " \t");
    if (n >= sizeof name)
        return NULL;
    memcpy(name, rl_line_buffer + 1, n);
    name[n] = '\0';
    const struct cmd_entry *c = cmds_find(name);
    if (c == NULL || c->complete == CMD_COMPLETE_NONE)
        return NULL;
    if (c->complete == CMD_COMPLETE_FILE) {
        rl_attempted_completion_over = 0;
        return NULL;
    }
    complete_kind = c->complete;
    return rl_completion_matches(text, input_generate);
}

/* readline would list the matches on its own stream: show them as a
 * notice instead. */
static void input_show_matches(char **matches, int n, int max_len)
{
    (void)max_len;
    struct buf b;
    buf_init(&b, 4096);
    for (int i = 1; i <= n && b.len < 3000; i++)
        buf_printf(&b, "%s%s", i > 1 ? "  " : "", matches[i]);
    app_notice(cur, TM_INFO, "%s", buf_cstr(&b));
    buf_free(&b);
}

/* --- history per user ---------------------------------------------------- */

static void input_history_open(struct tui *t)
{
    xfree(t->history_path);
    t->history_path = NULL;
    clear_history();
    const char *data = config_str(t->cfg, CFG_MEMCHAT_DATA_DIR);
    if (data[0] == '\0')
        return;
    char *dir = paths_join(data, "history");
    char *tdir = paths_join(dir, t->tenant);
    char err[256];
    if (paths_mkdir_p(tdir, 0700, err, sizeof err) == 0) {
        t->history_path = paths_join(tdir, t->user);
        (void)read_history(t->history_path);
    }
    xfree(tdir);
    xfree(dir);
}

static void input_history_close(struct tui *t)
{
    if (t->history_path != NULL)
        (void)history_truncate_file(t->history_path, INPUT_HISTORY_MAX);
}

void input_switch_history(struct tui *t)
{
    input_history_close(t);
    input_history_open(t);
}

/* --- set-up -------------------------------------------------------------- */

int input_init(struct tui *t, char *err, size_t errlen)
{
    cur = t;
    ui_thread = pthread_self();
    rl_null = fopen("/dev/null", "w");
    if (rl_null == NULL) {
        snprintf(err, errlen, "cannot open /dev/null: %s", strerror(errno));
        return -1;
    }
    rl_readline_name = "memchat";
    rl_catch_signals = 0;
    rl_catch_sigwinch = 0;
    rl_change_environment = 0;
    rl_instream = stdin;
    rl_outstream = rl_null;
    rl_getc_function = input_getc;
    rl_input_available_hook = input_available;
    rl_redisplay_function = input_redisplay;
    rl_attempted_completion_function = input_complete;
    rl_completion_display_matches_hook = input_show_matches;
    input_bind_keys();
    input_history_open(t);
    rl_callback_handler_install(INPUT_PROMPT, input_on_line);
    return 0;
}

void input_fini(struct tui *t)
{
    if (cur == NULL)
        return;
    rl_callback_handler_remove();
    input_history_close(t);
    clear_history();
    xfree(t->history_path);
    t->history_path = NULL;
    if (rl_null != NULL)
        fclose(rl_null);
    rl_null = NULL;
    rl_outstream = NULL;
    cur = NULL;
}

const char *input_line(void)
{
    return rl_line_buffer != NULL ? rl_line_buffer : "";
}

void input_outside(struct tui *t, void (*fn)(void *ud), void *ud)
{
    INPUT_ON_UI_THREAD();
    if (t->mouse)
        term_mouse(false);
    def_prog_mode();
    endwin();
    rl_deprep_terminal();
    fn(ud);
    rl_prep_terminal(1);
    reset_prog_mode();
    if (t->mouse)
        term_mouse(true);
    clearok(curscr, TRUE);
    t->relayout = t->dirty = true;
}

/* --- feeding readline ---------------------------------------------------- */

/* Parses an SGR mouse report at s[0..n) ("\e[<B;X;YM" or "...m"): its
 * length, 0 when it is not complete yet, -1 when it is not one. */
static int input_mouse_parse(const char *s, size_t n, int *b, int *x, int *y, bool *press)
{
    int v[3] = {0, 0, 0}, k = 0;
    for (size_t i = 3; i < n; i++) {
        char c = s[i];
        if (c >= '0' && c <= '9') {
            if (v[k] > 100000)
                return -1;
            v[k] = v[k] * 10 + (c - '0');
        } else if (c == ';' && k < 2) {
            k++;
        } else if ((c == 'M' || c == 'm') && k == 2) {
            *b = v[0];
            *x = v[1];
            *y = v[2];
            *press = c == 'M';
            return (int)i + 1;
        } else {
            return -1;
        }
    }
    return n > INPUT_MOUSE_MAX ? -1 : 0;
}

static void input_on_mouse(struct tui *t, int b, int x, int y, bool press)
{
    int pane = layout_pane_at(&t->lay, y - 1, x - 1);
    if ((b & 64) != 0) { /* the wheel: 64 up, 65 down */
        if (pane >= 0 && t->focus != (enum pane)pane) {
            t->focus = (enum pane)pane;
            t->dirty = true;
        }
        app_scroll(t, (b & 1) != 0 ? -1 : 1);
        return;
    }
    if (press && (b & 3) == 0 && pane >= 0) {
        t->focus = (enum pane)pane;
        t->dirty = true;
    }
}

/* A lone Esc: cancels a streaming reply, else closes what is open; false
 * when it meant none of these (readline gets it: vi mode needs it). */
static bool input_lone_esc(struct tui *t)
{
    if (model_busy(t->model)) {
        app_cancel(t);
    } else if (t->overlay.on) {
        t->overlay.on = false;
        t->dirty = true;
    } else if (t->show_injected) {
        app_toggle_injected(t);
    } else {
        return false;
    }
    return true;
}

/* True when s[0..n) starts with a UTF-8 sequence that more bytes would
 * complete (readline must not see half a character). */
static bool input_partial_char(const char *s, size_t n)
{
    size_t tail = utf8_incomplete_tail(s, n < 4 ? n : 4);
    return tail == (n < 4 ? n : 4) && tail > 0;
}

void input_feed(struct tui *t, int64_t now_ms)
{
    INPUT_ON_UI_THREAD();
    while (t->in.len > 0 && !t->quit) {
        const char *s = t->in.data;
        if (s[0] == '\033') {
            if (t->in.len == 1) {
                if (t->esc_deadline == 0) {
                    t->esc_deadline = now_ms + 25;
                    return;
                }
                if (now_ms < t->esc_deadline)
                    return;
                t->esc_deadline = 0;
                if (!input_lone_esc(t)) {
                    rl_callback_read_char(); /* readline takes the Esc */
                    continue;
                }
                buf_consume(&t->in, 1);
                continue;
            }
            t->esc_deadline = 0;
            if (t->in.len >= 3 && s[1] == '[' && s[2] == '<') {
                int b = 0, x = 0, y = 0;
                bool press = false;
                int len = input_mouse_parse(s, t->in.len, &b, &x, &y, &press);
                if (len == 0)
                    return;
                if (len > 0) {
                    buf_consume(&t->in, (size_t)len);
                    input_on_mouse(t, b, x, y, press);
                    continue;
                }
            }
        } else if ((unsigned char)s[0] >= 0xC0 && input_partial_char(s, t->in.len)) {
            return;
        }
        rl_callback_read_char();
    }
}

/* --- drawing ------------------------------------------------------------- */

/* The prompt and the line as one string, and the cursor's byte in it. */
static const char *input_text(struct buf *b, size_t *cursor)
{
    const char *prompt = rl_display_prompt != NULL ? rl_display_prompt : INPUT_PROMPT;
    buf_reset(b);
    buf_puts(b, prompt);
    size_t plen = b->len;
    if (rl_line_buffer != NULL)
        buf_append(b, rl_line_buffer, (size_t)rl_end);
    *cursor = plen + (size_t)(rl_point >= 0 && rl_point <= rl_end ? rl_point : rl_end);
    return buf_cstr(b);
}

/* Wraps the prompt and line at cols; a line that ends in a newline gets
 * the empty row the cursor then sits on. */
static void input_wrap(const char *s, size_t n, int cols, struct text_lines *l)
{
    text_wrap(s, n, cols > 1 ? cols - 1 : 1, TEXT_WRAP_CHARS, l);
    if (n > 0 && s[n - 1] == '\n') {
        size_t before = l->n;
        text_wrap("", 0, 1, TEXT_WRAP_CHARS, l);
        if (l->n > before)
            l->v[l->n - 1].start = n;
    }
}

int input_rows_needed(const struct tui *t, int cols)
{
    (void)t;
    struct buf b;
    buf_init(&b, (size_t)1 << 24);
    size_t cursor;
    const char *s = input_text(&b, &cursor);
    struct text_lines l;
    text_lines_init(&l);
    input_wrap(s, b.len, cols, &l);
    size_t n = l.n;
    text_lines_free(&l);
    buf_free(&b);
    return n < 1 ? 1 : n > 5 ? 5 : (int)n;
}

void input_draw(struct tui *t)
{
    INPUT_ON_UI_THREAD();
    const struct rect *r = &t->lay.input;
    if (r->h <= 0 || r->w <= 0)
        return;
    struct buf b;
    buf_init(&b, (size_t)1 << 24);
    size_t cursor;
    const char *s = input_text(&b, &cursor);
    struct text_lines l;
    text_lines_init(&l);
    input_wrap(s, b.len, r->w, &l);
    /* The row holding the cursor, and the first row shown so it is seen. */
    size_t crow = 0;
    for (size_t i = 0; i < l.n; i++)
        if (l.v[i].start <= cursor)
            crow = i;
    size_t first = crow >= (size_t)r->h ? crow - (size_t)r->h + 1 : 0;
    for (int row = 0; row < r->h; row++) {
        move(r->y + row, r->x);
        clrtoeol();
        size_t i = first + (size_t)row;
        if (i >= l.n)
            continue;
        attrset(draw_attr(t, TH_INPUT));
        /* The line is the user's raw text (a paste may hold anything). */
        draw_bytes(s + l.v[i].start, l.v[i].len);
    }
    int ccol = 0;
    if (crow < l.n && cursor >= l.v[crow].start)
        ccol = (int)text_width(s + l.v[crow].start, cursor - l.v[crow].start);
    if (ccol >= r->w)
        ccol = r->w - 1;
    move(r->y + (int)(crow - first), r->x + ccol);
    text_lines_free(&l);
    buf_free(&b);
}
