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

#include <cJSON.h>
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

/* --- ask --compare ------------------------------------------------------ */

/* Code points in s[0..n): the columns a cell takes (as cli_put_cell). */
static size_t ask_cols(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            c++;
    return c;
}

/* Bytes of s[0..n) that make at most cols code points. */
static size_t ask_prefix(const char *s, size_t n, size_t cols)
{
    size_t c = 0, i = 0;
    while (i < n) {
        size_t j = i + 1;
        while (j < n && ((unsigned char)s[j] & 0xC0) == 0x80)
            j++;
        if (c + 1 > cols)
            break;
        c++;
        i = j;
    }
    return i;
}

/* Appends text wrapped at cols columns to *lines (each owned), after
 * making it safe for the terminal: paragraphs kept, words kept whole
 * unless longer than a line. */
static void ask_wrap(const char *text, size_t cols, char ***lines, size_t *n)
{
    struct buf clean;
    buf_init(&clean, strlen(text) * 3 + 16);
    if (utf8_sanitize_terminal(&clean, text, strlen(text)) != BUF_OK)
        buf_puts(&clean, "(the reply could not be shown)");
    const char *p = buf_cstr(&clean);
    struct buf line;
    buf_init(&line, cols * 4 + 8);
    for (;;) {
        size_t para = strcspn(p, "\n");
        const char *w = p, *end = p + para;
        buf_reset(&line);
        while (w < end) {
            while (w < end && *w == ' ')
                w++;
            size_t wl = strcspn(w, " \n");
            if (w + wl > end)
                wl = (size_t)(end - w);
            if (wl == 0)
                break;
            size_t have = ask_cols(line.data != NULL ? line.data : "", line.len);
            size_t need = ask_cols(w, wl) + (line.len > 0 ? 1 : 0);
            if (have + need > cols && line.len > 0) {
                *lines = xreallocarray(*lines, *n + 1, sizeof **lines);
                (*lines)[(*n)++] = xstrdup(buf_cstr(&line));
                buf_reset(&line);
                continue;
            }
            if (line.len == 0 && ask_cols(w, wl) > cols) {
                size_t cut = ask_prefix(w, wl, cols);
                buf_append(&line, w, cut);
                w += cut;
                continue;
            }
            if (line.len > 0)
                buf_putc(&line, ' ');
            buf_append(&line, w, wl);
            w += wl;
        }
        *lines = xreallocarray(*lines, *n + 1, sizeof **lines);
        (*lines)[(*n)++] = xstrdup(buf_cstr(&line));
        if (*end == '\0')
            break;
        p = end + 1;
    }
    buf_free(&line);
    buf_free(&clean);
}

/* One figure of a compare column, as text. */
static void ask_figure(char *out, size_t outlen, const char *what, const struct session_capture *c)
{
    if (strcmp(what, "latency") == 0)
        snprintf(out, outlen, "latency %.0f ms", c->total_ms);
    else if (strcmp(what, "tokens") == 0)
        snprintf(out, outlen, "tokens in %lld, out %lld", c->prompt_tokens, c->completion_tokens);
    else if (c->usd < 0)
        snprintf(out, outlen, "cost: no price for the model");
    else
        snprintf(out, outlen, "cost $%.6f", c->usd);
}

/* Prints one row of two cells of at most col columns each. */
static void ask_row(const char *left, const char *right, size_t col)
{
    size_t pad = col - ask_cols(left, strlen(left));
    printf("%s%*s \xe2\x94\x82 %s\n", left, (int)pad, "", right);
}

static void ask_compare_print(struct session_capture cap[2], size_t width)
{
    size_t col = width > 23 ? (width - 3) / 2 : 10;
    char **l[2] = {NULL, NULL};
    size_t n[2] = {0, 0};
    for (int i = 0; i < 2; i++)
        ask_wrap(cap[i].error[0] != '\0' ? cap[i].error : buf_cstr(&cap[i].reply), col, &l[i],
                 &n[i]);
    ask_row(cap[0].recalled ? "MEMORY ON (recalled notes)" : "MEMORY ON (nothing recalled)",
            "MEMORY OFF", col);
    for (size_t r = 0; r < n[0] || r < n[1]; r++)
        ask_row(r < n[0] ? l[0][r] : "", r < n[1] ? l[1][r] : "", col);
    static const char *const figs[] = {"latency", "tokens", "cost"};
    for (size_t f = 0; f < 3; f++) {
        char a[128], b[128];
        ask_figure(a, sizeof a, figs[f], &cap[0]);
        ask_figure(b, sizeof b, figs[f], &cap[1]);
        ask_row(a, b, col);
    }
    for (int i = 0; i < 2; i++) {
        for (size_t r = 0; r < n[i]; r++)
            xfree(l[i][r]);
        xfree(l[i]);
    }
}

/* compare's summary line with --json (after every event of both runs). */
static void ask_compare_json(struct session_capture cap[2])
{
    cJSON *o = cJSON_CreateObject();
    cJSON *c = cJSON_AddObjectToObject(o, "compare");
    static const char *const names[] = {"memory_on", "memory_off"};
    for (int i = 0; i < 2 && c != NULL; i++) {
        cJSON *side = cJSON_AddObjectToObject(c, names[i]);
        cJSON_AddStringToObject(side, "reply", buf_cstr(&cap[i].reply));
        cJSON_AddNumberToObject(side, "latency_ms", cap[i].total_ms);
        cJSON_AddNumberToObject(side, "prompt_tokens", (double)cap[i].prompt_tokens);
        cJSON_AddNumberToObject(side, "completion_tokens", (double)cap[i].completion_tokens);
        if (cap[i].usd < 0)
            cJSON_AddNullToObject(side, "usd");
        else
            cJSON_AddNumberToObject(side, "usd", cap[i].usd);
        cJSON_AddBoolToObject(side, "recalled", cap[i].recalled);
        if (cap[i].error[0] != '\0')
            cJSON_AddStringToObject(side, "error", cap[i].error);
        else
            cJSON_AddNullToObject(side, "error");
    }
    char *line = cJSON_PrintUnformatted(o);
    if (line != NULL)
        puts(line);
    cJSON_free(line);
    cJSON_Delete(o);
}

/* The question with memory on, then off, each in a new conversation,
 * shown side by side: the value of memory before it is rolled out. */
static int ask_compare(struct session *s, const char *question, bool json)
{
    struct session_capture cap[2];
    int rc[2];
    for (int i = 0; i < 2; i++) {
        memset(&cap[i], 0, sizeof cap[i]);
        buf_init(&cap[i].reply, 4u << 20);
        cap[i].prompt_tokens = cap[i].completion_tokens = -1;
        cap[i].usd = -1;
        cap[i].total_ms = -1;
        struct mc_turn_request req = {
            .text = question,
            .memory = i == 0 ? MC_MEMORY_ON : MC_MEMORY_OFF,
        };
        rc[i] = session_turn_capture(s, &req, true, &cap[i]);
        if (rc[i] == MC_EXIT_CANCELLED)
            break;
    }
    if (rc[0] != MC_EXIT_CANCELLED && rc[1] != MC_EXIT_CANCELLED) {
        if (json)
            ask_compare_json(cap);
        else
            ask_compare_print(cap, cli_table_width());
    }
    int result = rc[0] != MC_EXIT_OK ? rc[0] : rc[1];
    for (int i = 0; i < 2; i++)
        buf_free(&cap[i].reply);
    return result;
}

int cmd_ask(const struct config *cfg, const struct cli_opts *o)
{
    if (o->compare &&
        (o->memory != MC_MEMORY_DEFAULT || o->continue_latest || o->conversation != NULL)) {
        session_error("ask: --compare runs the question with memory on and off, each in a new "
                      "conversation: it excludes --no-memory, --continue and --conversation");
        return MC_EXIT_USAGE;
    }
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
    if (rc == MC_EXIT_OK && o->yes)
        session_allow_tools(&s);
    if (rc == MC_EXIT_OK) {
        struct mc_turn_request req = {
            .text = buf_cstr(&q),
            .memory = o->memory,
            .conversation = o->conversation,
            .continue_latest = o->continue_latest,
        };
        rc = o->compare ? ask_compare(&s, buf_cstr(&q), o->json) : session_turn(&s, &req, true);
        session_stop(&s);
    }
    buf_free(&q);
    return rc;
}
