/*
 * memchat chat --plain: a line chat for pipes, scripts and screen readers.
 * Each input line is one message; slash commands change the session. The
 * reader is our own (poll on stdin and the signal pipe, a bounded buffer)
 * rather than stdio's getline, so Ctrl-C at the prompt is seen at once and
 * an endless line cannot exhaust memory: a line longer than
 * MEMCHAT_MAX_INPUT_BYTES is refused and skipped, and the chat goes on.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/session.h"
#include "tui/tui.h"
#include "config/config.h"
#include "config/vars.h"
#include "memchat/error.h"
#include "util/buf.h"
#include "util/ident.h"
#include "util/utf8.h"

/* The session's live choices, changed by slash commands. */
struct chat_state {
    char tenant[IDENT_MAX + 1];
    char user[IDENT_MAX + 1];
    char agent[IDENT_MAX + 1];
    enum mc_memory_override memory;
    bool interactive; /* stdin is a terminal: show a prompt */
    bool quit;
    FILE *say; /* where command feedback goes: stdout, or stderr with --json so
                  that stdout stays pure NDJSON */
};

/* A bounded line reader over fd 0. */
struct line_reader {
    struct buf pending; /* bytes read but not yet returned as lines */
    size_t max;
    bool skipping; /* inside an over-long line: drop until newline */
    bool eof;
};

enum read_status { READ_LINE, READ_EOF, READ_SIGNAL, READ_TOO_LONG, READ_ERROR };

/* Moves the first complete line out of r->pending into line. */
static bool reader_take_line(struct line_reader *r, struct buf *line)
{
    const char *nl = r->pending.len ? memchr(r->pending.data, '\n', r->pending.len) : NULL;
    if (nl == NULL)
        return false;
    size_t n = (size_t)(nl - r->pending.data);
    buf_reset(line);
    if (!r->skipping)
        buf_append(line, r->pending.data, n);
    buf_consume(&r->pending, n + 1);
    return true;
}

static enum read_status reader_next(struct line_reader *r, struct buf *line)
{
    for (;;) {
        bool was_skipping = r->skipping;
        if (reader_take_line(r, line)) {
            r->skipping = false;
            if (was_skipping)
                continue;
            return READ_LINE;
        }
        if (r->pending.len > r->max) {
            buf_reset(&r->pending);
            if (!r->skipping) {
                r->skipping = true;
                return READ_TOO_LONG;
            }
        }
        if (r->eof) {
            if (r->pending.len == 0 || r->skipping)
                return READ_EOF;
            buf_reset(line);
            buf_append(line, r->pending.data, r->pending.len);
            buf_reset(&r->pending);
            return READ_LINE;
        }
        struct pollfd pfd[2] = {{.fd = STDIN_FILENO, .events = POLLIN},
                                {.fd = session_signal_fd(), .events = POLLIN}};
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return READ_ERROR;
        }
        if (pfd[1].revents & POLLIN) {
            int sig = session_take_signal();
            if (sig == SIGINT || sig == SIGTERM)
                return READ_SIGNAL;
        }
        if (!(pfd[0].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        char chunk[65536];
        ssize_t n = read(STDIN_FILENO, chunk, sizeof chunk);
        if (n < 0 && errno != EINTR && errno != EAGAIN)
            return READ_ERROR;
        if (n == 0)
            r->eof = true;
        if (n > 0 && buf_append(&r->pending, chunk, (size_t)n) != BUF_OK)
            return READ_ERROR;
    }
}

static void chat_help(FILE *f)
{
    fprintf(f, "Commands:\n"
               "  /help                    this list\n"
               "  /quit, /exit             end the chat (so does end of input, Ctrl-D)\n"
               "  /new                     forget the conversation so far\n"
               "  /memory on|off|default   memory for the next messages\n"
               "  /tenant ID               switch tenant\n"
               "  /user ID                 switch user\n"
               "  /agent ID                switch agent\n"
               "Ctrl-C cancels a reply that is running; at the prompt it ends the chat.\n");
}

/* Sets one of the session's ids from a slash command argument. */
static void chat_set_id(FILE *say, char *dst, const char *what, const char *arg)
{
    if (!ident_valid(arg)) {
        session_error("/%s: '%s' is not a valid id ([A-Za-z0-9_-]{1,64})", what, arg);
        return;
    }
    snprintf(dst, IDENT_MAX + 1, "%s", arg);
    fprintf(say, "%s: %s\n", what, dst);
}

static void chat_command(struct session *s, struct chat_state *st, char *line)
{
    char *arg = line + strcspn(line, " \t");
    if (*arg != '\0')
        *arg++ = '\0';
    arg += strspn(arg, " \t");
    if (strcmp(line, "/quit") == 0 || strcmp(line, "/exit") == 0) {
        st->quit = true;
    } else if (strcmp(line, "/help") == 0) {
        chat_help(st->say);
    } else if (strcmp(line, "/new") == 0) {
        mc_engine_reset_conversation(s->eng);
        fprintf(st->say, "new conversation\n");
    } else if (strcmp(line, "/memory") == 0) {
        static const char *const names[] = {"default", "off", "on"};
        if (strcmp(arg, "on") == 0)
            st->memory = MC_MEMORY_ON;
        else if (strcmp(arg, "off") == 0)
            st->memory = MC_MEMORY_OFF;
        else if (strcmp(arg, "default") == 0)
            st->memory = MC_MEMORY_DEFAULT;
        else if (*arg != '\0')
            session_error("/memory takes on, off or default");
        fprintf(st->say, "memory: %s\n", names[st->memory]);
    } else if (strcmp(line, "/tenant") == 0) {
        chat_set_id(st->say, st->tenant, "tenant", arg);
    } else if (strcmp(line, "/user") == 0) {
        chat_set_id(st->say, st->user, "user", arg);
    } else if (strcmp(line, "/agent") == 0) {
        chat_set_id(st->say, st->agent, "agent", arg);
    } else {
        session_error("unknown command %s (/help lists them)", line);
    }
}

/* Handles one input line: a command, a message, or nothing. */
static void chat_line(struct session *s, struct chat_state *st, struct buf *line)
{
    while (line->len > 0 && (line->data[line->len - 1] == '\r'))
        line->data[--line->len] = '\0';
    if (line->len == 0)
        return;
    size_t bad = 0;
    if (!utf8_valid(line->data, line->len, &bad)) {
        session_error("input: the line is not valid UTF-8 (first bad byte at offset %zu); "
                      "skipped",
                      bad);
        s->last_exit = MC_EXIT_USAGE;
        return;
    }
    if (line->data[0] == '/') {
        chat_command(s, st, line->data);
        return;
    }
    struct mc_turn_request req = {.tenant = st->tenant,
                                  .user = st->user,
                                  .agent = st->agent,
                                  .text = line->data,
                                  .memory = st->memory,
                                  .continue_conversation = true};
    session_turn(s, &req, false);
}

static void chat_loop(struct session *s, struct chat_state *st, size_t max)
{
    struct line_reader r = {.max = max};
    struct buf line;
    buf_init(&r.pending, max + 65536);
    buf_init(&line, max + 1);
    while (!st->quit) {
        if (st->interactive && !s->json) {
            printf("%s> ", st->agent);
            fflush(stdout);
        }
        enum read_status rs = reader_next(&r, &line);
        if (rs == READ_LINE) {
            chat_line(s, st, &line);
            /* Command feedback must reach a pipe now: a script waits for it. */
            fflush(stdout);
            fflush(stderr);
        } else if (rs == READ_TOO_LONG) {
            session_error("input: the line is longer than MEMCHAT_MAX_INPUT_BYTES (%zu bytes); "
                          "skipped",
                          max);
            s->last_exit = MC_EXIT_USAGE;
        } else if (rs == READ_SIGNAL) {
            if (st->interactive)
                putchar('\n');
            s->last_exit = MC_EXIT_CANCELLED;
            break;
        } else {
            if (rs == READ_ERROR) {
                session_error("cannot read standard input: %s", strerror(errno));
                s->last_exit = MC_EXIT_RUNTIME;
            } else if (st->interactive) {
                putchar('\n');
            }
            break;
        }
    }
    buf_free(&r.pending);
    buf_free(&line);
}

int cmd_chat(const struct config *cfg, const struct cli_opts *o)
{
    if (o->n_args > 0) {
        session_error("chat takes no arguments (got '%s'); type messages on standard input",
                      o->args[0]);
        return MC_EXIT_USAGE;
    }
    struct chat_state st = {
        .memory = o->memory, .interactive = isatty(STDIN_FILENO), .say = o->json ? stderr : stdout};
    snprintf(st.tenant, sizeof st.tenant, "%s", config_str(cfg, CFG_MEMCHAT_TENANT));
    snprintf(st.user, sizeof st.user, "%s", config_str(cfg, CFG_MEMCHAT_USER));
    snprintf(st.agent, sizeof st.agent, "%s", config_str(cfg, CFG_MEMCHAT_AGENT));
    struct secret pass = {0};
    int rc = session_read_passphrase(cfg, o->pass_stdin, &pass);
    struct session s;
    if (rc == MC_EXIT_OK)
        rc = session_start(&s, cfg, o->json, &pass);
    secret_free(&pass);
    if (rc != MC_EXIT_OK)
        return rc;
    char why[128];
    if (!o->plain && !o->json && tui_usable(why, sizeof why)) {
        struct tui_opts to = {.memory = o->memory};
        rc = tui_run(cfg, s.eng, &to);
        session_stop(&s);
        return rc;
    }
    if (st.interactive && !o->json) {
        char who[512];
        printf("memchat %s: tenant %s, user %s, %s.\n/help for commands, Ctrl-D to leave.\n",
               PACKAGE_VERSION, st.tenant, st.user, mc_engine_describe(s.eng, who, sizeof who));
    }
    chat_loop(&s, &st, (size_t)config_int(cfg, CFG_MEMCHAT_MAX_INPUT_BYTES));
    session_drain(&s);
    rc = s.last_exit;
    session_stop(&s);
    return rc;
}
