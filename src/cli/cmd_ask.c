/*
 * memchat ask: one turn from the command line. The question is the
 * arguments, standard input, or both (arguments, a blank line, then stdin:
 * `cat notes.txt | memchat ask "summarise"`). Input is bounded by
 * MEMCHAT_MAX_INPUT_BYTES and must be UTF-8; anything else is refused
 * before a turn starts, with exit code 2. Each ask is a new conversation
 * unless --continue (the latest of the tenant and user) or --conversation
 * ID names the one it carries on; stdout stays the reply alone (the
 * conversation's id is in the events that --json prints).
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/session.h"
#include "config/config.h"
#include "config/vars.h"
#include "memchat/error.h"
#include "util/buf.h"
#include "util/utf8.h"
#include "util/uuid.h"

/* Reads all of fd into b (bounded by b->max). 0, or an exit code after
 * printing why. */
static int ask_read_stdin(struct buf *b, size_t max)
{
    char chunk[65536];
    for (;;) {
        ssize_t n = read(STDIN_FILENO, chunk, sizeof chunk);
        if (n == 0)
            return MC_EXIT_OK;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            session_error("cannot read standard input: %s", strerror(errno));
            return MC_EXIT_RUNTIME;
        }
        enum buf_result r = buf_append(b, chunk, (size_t)n);
        if (r == BUF_TOO_BIG) {
            session_error("input: the question is larger than MEMCHAT_MAX_INPUT_BYTES (%zu bytes)",
                          max);
            return MC_EXIT_USAGE;
        }
        if (r != BUF_OK) {
            session_error("input: out of memory reading standard input");
            return MC_EXIT_RUNTIME;
        }
    }
}

/* Builds the question from the arguments and stdin into b. */
static int ask_question(const struct cli_opts *o, size_t max, struct buf *b)
{
    for (size_t i = 0; i < o->n_args; i++) {
        if ((i > 0 && buf_putc(b, ' ') != BUF_OK) || buf_puts(b, o->args[i]) != BUF_OK) {
            session_error("input: the question is larger than MEMCHAT_MAX_INPUT_BYTES (%zu bytes)",
                          max);
            return MC_EXIT_USAGE;
        }
    }
    if (!isatty(STDIN_FILENO)) {
        struct buf in;
        buf_init(&in, max);
        int rc = ask_read_stdin(&in, max);
        if (rc == MC_EXIT_OK && in.len > 0) {
            if (b->len > 0 && buf_puts(b, "\n\n") != BUF_OK)
                rc = MC_EXIT_USAGE;
            if (rc == MC_EXIT_OK && buf_append(b, in.data, in.len) != BUF_OK)
                rc = MC_EXIT_USAGE;
            if (rc != MC_EXIT_OK)
                session_error("input: the question is larger than MEMCHAT_MAX_INPUT_BYTES (%zu "
                              "bytes)",
                              max);
        }
        buf_free(&in);
        if (rc != MC_EXIT_OK)
            return rc;
    }
    if (b->len == 0) {
        session_error("ask: no question (give it as arguments or on standard input)");
        return MC_EXIT_USAGE;
    }
    size_t bad = 0;
    if (!utf8_valid(b->data, b->len, &bad)) {
        session_error("input: the question is not valid UTF-8 (first bad byte at offset %zu)", bad);
        return MC_EXIT_USAGE;
    }
    return MC_EXIT_OK;
}

int cmd_ask(const struct config *cfg, const struct cli_opts *o)
{
    if (o->continue_latest && o->conversation != NULL) {
        session_error("ask: --continue and --conversation exclude each other (--continue is the "
                      "latest conversation, --conversation ID a given one)");
        return MC_EXIT_USAGE;
    }
    if (o->conversation != NULL && !uuid_valid(o->conversation)) {
        session_error("ask: --conversation '%s' is not a conversation id (a UUID, as memchat "
                      "conversations lists them)",
                      o->conversation);
        return MC_EXIT_USAGE;
    }
    size_t max = (size_t)config_int(cfg, CFG_MEMCHAT_MAX_INPUT_BYTES);
    /* The passphrase is stdin's first line: read before the question. */
    struct secret pass = {0};
    int rc = session_read_passphrase(cfg, o->pass_stdin, &pass);
    if (rc != MC_EXIT_OK)
        return rc;
    struct buf q;
    buf_init(&q, max);
    rc = ask_question(o, max, &q);
    if (rc != MC_EXIT_OK) {
        buf_free(&q);
        secret_free(&pass);
        return rc;
    }
    struct session s;
    rc = session_start(&s, cfg, o->json, &pass);
    secret_free(&pass);
    if (rc == MC_EXIT_OK) {
        struct mc_turn_request req = {
            .text = buf_cstr(&q),
            .memory = o->memory,
            .conversation = o->conversation,
            .continue_latest = o->continue_latest,
        };
        rc = session_turn(&s, &req, true);
        session_stop(&s);
    }
    buf_free(&q);
    return rc;
}
