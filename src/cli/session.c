/*
 * The line front ends' session: one engine, a signal self-pipe, and the
 * event loop of a turn. Signals only write their number to the pipe (no
 * other work is async-signal-safe); the loop polls the engine's wake-up
 * descriptor and the pipe, and turns SIGINT/SIGTERM into a cancel.
 */
#include "config.h"

#include "cli/session.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "config/vars.h"
#include "memchat/error.h"
#include "store/keystore.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/paths.h"
#include "util/utf8.h"

/* The self-pipe is the one piece of process state a signal handler may
 * touch; it lives here, in the front end, not in the library. */
static int sig_pipe[2] = {-1, -1};
static struct sigaction old_int, old_term, old_pipe;

static void session_on_signal(int signo)
{
    int saved = errno;
    unsigned char b = (unsigned char)signo;
    if (sig_pipe[1] >= 0 && write(sig_pipe[1], &b, 1) < 0) {
        /* A full pipe already holds a pending signal: nothing is lost. */
    }
    errno = saved;
}

static int session_signals_install(void)
{
    if (sig_pipe[0] < 0 && pipe2(sig_pipe, O_NONBLOCK | O_CLOEXEC) != 0)
        return -1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = session_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, &old_pipe);
    return 0;
}

static void session_signals_restore(void)
{
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGPIPE, &old_pipe, NULL);
}

int session_signal_fd(void)
{
    return sig_pipe[0];
}

int session_take_signal(void)
{
    unsigned char b;
    if (sig_pipe[0] >= 0 && read(sig_pipe[0], &b, 1) == 1)
        return b;
    return 0;
}

void session_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("memchat: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int session_read_passphrase(const struct config *cfg, bool from_stdin, struct secret *pass)
{
    char *path = paths_join(config_str(cfg, CFG_MEMCHAT_DATA_DIR), KEYSTORE_FILE_NAME);
    char err[1024] = "";
    int rc = secret_keystore_passphrase(path, from_stdin, pass, err, sizeof err);
    xfree(path);
    if (rc != 0) {
        session_error("%s", err);
        return MC_EXIT_USAGE;
    }
    return MC_EXIT_OK;
}

int session_start(struct session *s, const struct config *cfg, bool json, const struct secret *pass)
{
    memset(s, 0, sizeof *s);
    s->cfg = cfg;
    s->json = json;
    s->sanitize = isatty(STDOUT_FILENO);
    if (mc_global_init() != 0) {
        session_error("cannot initialise the allocation hooks");
        return MC_EXIT_RUNTIME;
    }
    if (session_signals_install() != 0) {
        session_error("cannot create the signal pipe: %s", strerror(errno));
        return MC_EXIT_RUNTIME;
    }
    char err[1024] = "";
    int code = MC_ERR_INTERNAL;
    s->eng = mc_engine_new(cfg, &code, err, sizeof err);
    if (s->eng == NULL) {
        session_error("%s", err);
        session_signals_restore();
        return mc_error_exit_code((enum mc_error)code);
    }
    if (pass != NULL && pass->value != NULL)
        mc_engine_set_passphrase(s->eng, pass->value, pass->len);
    /* The verbs have no one to ask: a tool that is not read-only runs only
     * when the verb says so (ask --yes). */
    mc_engine_set_tool_confirm(s->eng, MC_TOOL_CONFIRM_NO);
    return MC_EXIT_OK;
}

void session_print_lines(const char *prefix, const char *text)
{
    const char *s = text;
    while (s != NULL && *s != '\0') {
        const char *nl = strchr(s, '\n');
        size_t n = nl != NULL ? (size_t)(nl - s) : strlen(s);
        struct buf clean;
        buf_init(&clean, 4 * n + 16);
        utf8_sanitize_terminal(&clean, s, n);
        session_error("%s: %s", prefix, buf_cstr(&clean));
        buf_free(&clean);
        s += n + (nl != NULL);
    }
}

void session_allow_tools(struct session *s)
{
    s->tools_yes = true;
    mc_engine_set_tool_confirm(s->eng, MC_TOOL_CONFIRM_YES);
}

void session_stop(struct session *s)
{
    mc_engine_free(s->eng);
    s->eng = NULL;
    session_signals_restore();
}

/* Writes model text to stdout, made safe when stdout is a terminal. */
static void session_print_text(const struct session *s, const char *text)
{
    if (!s->sanitize) {
        fputs(text, stdout);
        return;
    }
    struct buf b;
    buf_init(&b, strlen(text) * 3 + 16);
    if (utf8_sanitize_terminal(&b, text, strlen(text)) == BUF_OK)
        fputs(buf_cstr(&b), stdout);
    buf_free(&b);
}

#define WATCH_TURNS_MAX 16 /* turns of one run: a multi-step agent has at most 8 */

/* What the loop has seen of the run it waits for: the submitted turn and,
 * for a multi-step agent, the later steps' turns (their turn.start names
 * the first as step.run). */
struct turn_watch {
    const char *turn;
    char turns[WATCH_TURNS_MAX][MC_UUID_STRLEN + 1]; /* the run's turns seen so far */
    size_t n_turns;
    size_t n_stored;   /* store stages reported among them */
    bool done;         /* the run's last turn.done seen */
    bool last_step;    /* the turn running is the run's last (or only) one */
    bool failed;       /* an error or a cancel ended the run early */
    bool printed_text; /* a delta was printed (plain mode) */
    int exit_code;
    struct session_capture *cap; /* compare: the reply and figures instead of printing */
};

static bool session_is_store_report(const struct mc_event *ev)
{
    if (ev->kind == MC_EV_MEMORY_STORED)
        return true;
    return ev->kind == MC_EV_MEMORY_SKIPPED && strcmp(mc_event_str(ev, "stage", ""), "store") == 0;
}

/* Keeps what compare shows of a turn: the reply, and the figures of its
 * turn.done, usage and cost events. */
static void session_capture_event(struct session_capture *c, const struct mc_event *ev)
{
    switch (ev->kind) {
    case MC_EV_DELTA:
        buf_puts(&c->reply, mc_event_str(ev, "text", ""));
        break;
    case MC_EV_USAGE:
        c->prompt_tokens = (long long)mc_event_num(ev, "prompt_tokens", -1);
        c->completion_tokens = (long long)mc_event_num(ev, "completion_tokens", -1);
        break;
    case MC_EV_COST:
        c->usd = mc_event_num(ev, "usd", -1);
        break;
    case MC_EV_TURN_DONE: {
        const cJSON *lat = cJSON_GetObjectItemCaseSensitive(ev->json, "latency_ms");
        const cJSON *total = cJSON_GetObjectItemCaseSensitive(lat, "total");
        c->total_ms = cJSON_IsNumber(total) ? total->valuedouble : -1;
        break;
    }
    case MC_EV_MEMORY_INJECTED:
        c->recalled = true;
        break;
    case MC_EV_ERROR:
        snprintf(c->error, sizeof c->error, "%s", mc_event_str(ev, "message", "failed"));
        break;
    default:
        break;
    }
}

/* Whether ev belongs to the run w waits for; a turn.start naming the run
 * as its step.run adds that step's turn to it. */
static bool session_is_ours(struct session *s, struct turn_watch *w, const struct mc_event *ev)
{
    if (w->turn == NULL || ev->turn[0] == '\0')
        return false;
    if (w->n_turns == 0 && strcmp(ev->turn, w->turn) == 0) {
        memcpy(w->turns[0], w->turn, sizeof w->turns[0]);
        w->n_turns = 1;
    }
    for (size_t i = 0; i < w->n_turns; i++)
        if (strcmp(ev->turn, w->turns[i]) == 0)
            return true;
    if (ev->kind != MC_EV_TURN_START || w->n_turns >= WATCH_TURNS_MAX)
        return false;
    const cJSON *step = cJSON_GetObjectItemCaseSensitive(ev->json, "step");
    const cJSON *run = cJSON_GetObjectItemCaseSensitive(step, "run");
    if (!cJSON_IsString(run) || strcmp(run->valuestring, w->turn) != 0)
        return false;
    memcpy(w->turns[w->n_turns++], ev->turn, sizeof w->turns[0]);
    s->awaiting++; /* its store stage reports too */
    return true;
}

/* turn.start of one of the run's turns: is it the last, and in plain mode
 * the step's heading. */
static void session_turn_started(struct session *s, struct turn_watch *w, const struct mc_event *ev)
{
    const cJSON *step = cJSON_GetObjectItemCaseSensitive(ev->json, "step");
    const cJSON *index = cJSON_GetObjectItemCaseSensitive(step, "index");
    const cJSON *of = cJSON_GetObjectItemCaseSensitive(step, "of");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(step, "name");
    if (!cJSON_IsNumber(index) || !cJSON_IsNumber(of)) {
        w->last_step = true;
        return;
    }
    w->last_step = index->valuedouble >= of->valuedouble;
    if (s->json || w->cap != NULL)
        return;
    if (w->printed_text)
        fputc('\n', stdout);
    printf("%s[step %.0f of %.0f: %s]\n", w->printed_text ? "\n" : "", index->valuedouble,
           of->valuedouble, cJSON_IsString(name) ? name->valuestring : "?");
    w->printed_text = false;
}

/* The tool lines of plain output, on stderr so that stdout stays the
 * reply: what the model called, and how it ended. Model-made text is
 * sanitised like the reply. */
static void session_tool_line(const struct session *s, struct turn_watch *w,
                              const struct mc_event *ev)
{
    if (w->printed_text) {
        fputc('\n', stdout);
        fflush(stdout);
        w->printed_text = false;
    }
    const char *name = mc_event_str(ev, "name", "?");
    struct buf line;
    buf_init(&line, 4096);
    if (ev->kind == MC_EV_TOOL_CALL) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(ev->json, "arguments");
        char *args = a != NULL ? cJSON_PrintUnformatted(a) : NULL;
        buf_printf(&line, "tool %s %s", name, args != NULL ? args : "null");
        cJSON_free(args);
    } else if (ev->kind == MC_EV_TOOL_CONFIRM && s->tools_yes) {
        buf_printf(&line, "tool %s is not read-only: allowed by --yes", name);
    } else if (ev->kind == MC_EV_TOOL_CONFIRM) {
        buf_printf(&line, "tool %s is not read-only: not run (memchat ask --yes allows it)", name);
    } else if (mc_event_bool(ev, "ok", false)) {
        buf_printf(&line, "tool %s: ok (%.0f ms)", name, mc_event_num(ev, "latency_ms", 0));
    } else {
        buf_printf(&line, "tool %s: %s", name, mc_event_str(ev, "error", "failed"));
    }
    struct buf clean;
    buf_init(&clean, line.len * 4 + 16);
    if (utf8_sanitize_terminal(&clean, buf_cstr(&line), line.len) == BUF_OK)
        session_error("%s", buf_cstr(&clean));
    buf_free(&clean);
    buf_free(&line);
}

static void session_handle_event(struct session *s, struct turn_watch *w, const struct mc_event *ev)
{
    bool ours = session_is_ours(s, w, ev);
    if (s->json) {
        char *line = mc_event_to_json(ev);
        fputs(line, stdout);
        fputc('\n', stdout);
        xfree(line);
    }
    if (!ours) {
        /* An earlier turn's store report, arriving while this one runs. */
        if (session_is_store_report(ev))
            s->awaiting--;
        fflush(stdout);
        return;
    }
    if (w->cap != NULL)
        session_capture_event(w->cap, ev);
    switch (ev->kind) {
    case MC_EV_TURN_START:
        session_turn_started(s, w, ev);
        break;
    case MC_EV_DELTA:
        if (!s->json && w->cap == NULL) {
            session_print_text(s, mc_event_str(ev, "text", ""));
            w->printed_text = true;
        }
        break;
    case MC_EV_ERROR:
        w->failed = true;
        w->exit_code = mc_error_exit_code(mc_error_from_code(mc_event_str(ev, "code", "")));
        if (!s->json)
            session_error("%s", mc_event_str(ev, "message", "unknown error"));
        break;
    case MC_EV_TOOL_CALL:
    case MC_EV_TOOL_CONFIRM:
    case MC_EV_TOOL_RESULT:
        if (!s->json && w->cap == NULL)
            session_tool_line(s, w, ev);
        break;
    case MC_EV_TURN_CANCELLED:
        w->failed = true;
        w->exit_code = MC_EXIT_CANCELLED;
        if (!s->json)
            session_error("cancelled");
        break;
    case MC_EV_TURN_DONE:
        if (w->last_step || w->failed)
            w->done = true;
        if (w->done && !s->json && w->cap == NULL && w->printed_text)
            fputc('\n', stdout);
        break;
    default:
        break;
    }
    if (session_is_store_report(ev)) {
        w->n_stored++;
        s->awaiting--;
    }
    fflush(stdout);
}

/* Takes and handles every waiting event. */
static void session_pump(struct session *s, struct turn_watch *w)
{
    struct mc_event *ev;
    while ((ev = mc_engine_next_event(s->eng)) != NULL) {
        session_handle_event(s, w, ev);
        mc_event_free(ev);
    }
}

/* Waits for events or a signal; SIGINT/SIGTERM cancel the running turn.
 * Returns the signal seen (0 for none), or -1 when poll fails. */
static int session_wait(struct session *s)
{
    struct pollfd pfd[2] = {
        {.fd = mc_engine_wake_fd(s->eng), .events = POLLIN},
        {.fd = sig_pipe[0], .events = POLLIN},
    };
    if (poll(pfd, 2, -1) < 0 && errno != EINTR) {
        session_error("poll: %s", strerror(errno));
        return -1;
    }
    if (!(pfd[1].revents & POLLIN))
        return 0;
    int sig = session_take_signal();
    if (sig == SIGINT || sig == SIGTERM)
        mc_engine_cancel(s->eng);
    return sig;
}

int session_turn(struct session *s, const struct mc_turn_request *req, bool wait_store)
{
    return session_turn_capture(s, req, wait_store, NULL);
}

int session_turn_capture(struct session *s, const struct mc_turn_request *req, bool wait_store,
                         struct session_capture *cap)
{
    char turn[MC_UUID_STRLEN + 1];
    char err[512] = "";
    if (mc_engine_submit_turn(s->eng, req, turn, err, sizeof err) != 0) {
        session_error("%s", err);
        s->last_exit = MC_EXIT_USAGE;
        return MC_EXIT_USAGE;
    }
    s->awaiting++;
    struct turn_watch w = {.turn = turn, .exit_code = MC_EXIT_OK, .cap = cap};
    for (;;) {
        session_pump(s, &w);
        if (w.done && (w.n_stored >= w.n_turns || !wait_store))
            break;
        if (session_wait(s) < 0) {
            w.exit_code = MC_EXIT_RUNTIME;
            break;
        }
    }
    s->last_exit = w.exit_code;
    return w.exit_code;
}

int session_job(struct session *s, const char *job)
{
    for (;;) {
        struct mc_event *ev;
        while ((ev = mc_engine_next_event(s->eng)) != NULL) {
            bool ours = strcmp(mc_event_str(ev, "job", ""), job) == 0;
            if (ours && s->json) {
                char *line = mc_event_to_json(ev);
                puts(line);
                xfree(line);
            }
            int rc = -1;
            if (ours && ev->kind == MC_EV_RESULT)
                rc = MC_EXIT_OK;
            if (ours && ev->kind == MC_EV_ERROR) {
                session_error("%s", mc_event_str(ev, "message", "the job failed"));
                rc = mc_error_exit_code(mc_error_from_code(mc_event_str(ev, "code", "")));
            }
            mc_event_free(ev);
            if (rc >= 0)
                return rc;
        }
        int sig = session_wait(s);
        if (sig < 0)
            return MC_EXIT_RUNTIME;
        if (sig == SIGINT || sig == SIGTERM)
            return MC_EXIT_CANCELLED;
    }
}

void session_drain(struct session *s)
{
    struct turn_watch w = {.turn = NULL};
    while (s->awaiting > 0) {
        session_pump(s, &w);
        if (s->awaiting <= 0)
            break;
        int sig = session_wait(s);
        if (sig < 0 || sig == SIGINT || sig == SIGTERM)
            break;
    }
}
