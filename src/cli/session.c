/*
 * The line front ends' session: one engine, a signal self-pipe, and the
 * event loop of a turn. Signals only write their number to the pipe (no
 * other work is async-signal-safe); the loop polls the engine's wake-up
 * descriptor and the pipe, and turns SIGINT/SIGTERM into a cancel.
 */
#include "config.h"

#include "cli/session.h"

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
    return MC_EXIT_OK;
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

/* What the loop has seen of the turn it waits for. */
struct turn_watch {
    const char *turn;
    bool done;         /* turn.done seen */
    bool stored;       /* the store stage reported (memory.stored/skipped store) */
    bool printed_text; /* a delta was printed (plain mode) */
    int exit_code;
};

static bool session_is_store_report(const struct mc_event *ev)
{
    if (ev->kind == MC_EV_MEMORY_STORED)
        return true;
    return ev->kind == MC_EV_MEMORY_SKIPPED && strcmp(mc_event_str(ev, "stage", ""), "store") == 0;
}

static void session_handle_event(struct session *s, struct turn_watch *w, const struct mc_event *ev)
{
    bool ours = w->turn != NULL && strcmp(ev->turn, w->turn) == 0;
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
    switch (ev->kind) {
    case MC_EV_DELTA:
        if (!s->json) {
            session_print_text(s, mc_event_str(ev, "text", ""));
            w->printed_text = true;
        }
        break;
    case MC_EV_ERROR:
        w->exit_code = mc_error_exit_code(mc_error_from_code(mc_event_str(ev, "code", "")));
        if (!s->json)
            session_error("%s", mc_event_str(ev, "message", "unknown error"));
        break;
    case MC_EV_TURN_CANCELLED:
        w->exit_code = MC_EXIT_CANCELLED;
        if (!s->json)
            session_error("cancelled");
        break;
    case MC_EV_TURN_DONE:
        w->done = true;
        if (!s->json && w->printed_text)
            fputc('\n', stdout);
        break;
    default:
        break;
    }
    if (session_is_store_report(ev)) {
        w->stored = true;
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
    char turn[MC_UUID_STRLEN + 1];
    char err[512] = "";
    if (mc_engine_submit_turn(s->eng, req, turn, err, sizeof err) != 0) {
        session_error("%s", err);
        s->last_exit = MC_EXIT_USAGE;
        return MC_EXIT_USAGE;
    }
    s->awaiting++;
    struct turn_watch w = {.turn = turn, .exit_code = MC_EXIT_OK};
    for (;;) {
        session_pump(s, &w);
        if (w.done && (w.stored || !wait_store))
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
