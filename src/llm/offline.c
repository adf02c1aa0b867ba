/*
 * The offline provider (DESIGN.md, embedded defaults): what memchat answers
 * with on a fresh machine, with no key and no network. It reads nothing but
 * the request, so the same request always gives the same bytes, and it says
 * plainly that it is offline, what it was given (the agent's role, a
 * summary of the message, how far into the conversation we are, what memory
 * recalled) and how to get real answers. Everything quoted from the request
 * is untrusted text: it goes through the terminal sanitiser and is folded
 * onto one line, so a hostile message cannot smuggle escape sequences into
 * the reply. The reply is streamed in word groups like a real model's, so
 * front ends and the cancel path are exercised without a network.
 */
#include "config.h"

#include "llm/provider.h"

#include <cJSON.h>
#include <stdio.h>
#include <string.h>

#include "llm/tokens.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/utf8.h"

#define OFFLINE_SUMMARY_MAX 200 /* bytes of the user's message quoted */
#define OFFLINE_ROLE_MAX    160 /* bytes of the agent's prompt quoted */
#define OFFLINE_NOTE_MAX    120 /* bytes of each recalled note quoted */
#define OFFLINE_NOTES_SHOWN 5   /* notes listed; the rest are counted */
#define OFFLINE_REPLY_MAX   16384
#define OFFLINE_GROUP_WORDS 4 /* words per streamed delta */

static bool offline_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Whitespace-separated words of s[0..n). */
static size_t offline_count_words(const char *s, size_t n)
{
    size_t words = 0;
    bool in_word = false;
    for (size_t i = 0; i < n; i++) {
        bool sp = offline_is_space(s[i]);
        if (!sp && !in_word)
            words++;
        in_word = !sp;
    }
    return words;
}

/* Appends s[0..n) to out as one safe line of at most max bytes (plus "…"
 * when cut): terminal-sanitised, whitespace runs folded to one space, never
 * split inside a UTF-8 character. Only a prefix of s is looked at, so a
 * megabyte message costs no more than a short one. */
static enum buf_result offline_put_oneline(struct buf *out, const char *s, size_t n, size_t max)
{
    size_t look = utf8_truncate(s, n, max * 8);
    struct buf clean;
    buf_init(&clean, look * 3 + 16); /* each invalid byte may become U+FFFD */
    enum buf_result r = utf8_sanitize_terminal(&clean, s, look);
    if (r != BUF_OK) {
        buf_free(&clean);
        return r;
    }
    struct buf line;
    buf_init(&line, clean.len + 1);
    const char *c = buf_cstr(&clean);
    bool pending_space = false;
    for (size_t i = 0; i < clean.len && r == BUF_OK; i++) {
        if (offline_is_space(c[i])) {
            pending_space = line.len > 0;
            continue;
        }
        if (pending_space)
            r = buf_putc(&line, ' ');
        pending_space = false;
        if (r == BUF_OK)
            r = buf_putc(&line, c[i]);
    }
    buf_free(&clean);
    if (r != BUF_OK) {
        buf_free(&line);
        return r;
    }
    bool cut = look < n || line.len > max;
    size_t keep = utf8_truncate(buf_cstr(&line), line.len, max);
    while (cut && keep > 0 && line.data[keep - 1] == ' ')
        keep--;
    r = buf_append(out, buf_cstr(&line), keep);
    if (r == BUF_OK && cut)
        r = buf_puts(out, "\xe2\x80\xa6"); /* U+2026 HORIZONTAL ELLIPSIS */
    buf_free(&line);
    return r;
}

/* Builds the whole answer to req into out. */
static enum buf_result offline_compose(const struct llm_request *req, struct buf *out)
{
    const char *system = NULL;
    const char *last_user = NULL;
    size_t user_count = 0;
    for (size_t i = 0; i < req->n_messages; i++) {
        const struct llm_message *m = &req->messages[i];
        if (m->content == NULL)
            continue;
        if (strcmp(m->role, "system") == 0 && system == NULL)
            system = m->content;
        if (strcmp(m->role, "user") == 0) {
            user_count++;
            last_user = m->content;
        }
    }

    enum buf_result r = buf_puts(out, "[offline] No model was called: memchat is running offline, "
                                      "so this answer is put together from your message, the "
                                      "agent's prompt and what memory recalled.\n");
    if (r == BUF_OK && system != NULL) {
        r = buf_puts(out, "Agent: ");
        if (r == BUF_OK)
            r = offline_put_oneline(out, system, strlen(system), OFFLINE_ROLE_MAX);
        if (r == BUF_OK)
            r = buf_putc(out, '\n');
    }
    if (r == BUF_OK && last_user != NULL) {
        size_t n = strlen(last_user);
        size_t words = offline_count_words(last_user, n);
        r = buf_printf(out, "You wrote %zu %s: \"", words, words == 1 ? "word" : "words");
        if (r == BUF_OK)
            r = offline_put_oneline(out, last_user, n, OFFLINE_SUMMARY_MAX);
        if (r == BUF_OK)
            r = buf_puts(out, "\"\n");
    }
    /* The best recalled note is the offline provider's answer: what memory
     * knows that is closest to the message. */
    if (r == BUF_OK && req->n_recalled > 0 && req->recalled[0] != NULL) {
        r = buf_puts(out, "From memory: ");
        if (r == BUF_OK)
            r = offline_put_oneline(out, req->recalled[0], strlen(req->recalled[0]),
                                    OFFLINE_SUMMARY_MAX);
        if (r == BUF_OK)
            r = buf_putc(out, '\n');
    }
    if (r == BUF_OK)
        r = buf_printf(out, "This is message %zu of this conversation.\n", user_count);
    if (r == BUF_OK && req->n_recalled == 0)
        r = buf_puts(out, "Nothing was recalled from memory for this message.\n");
    if (r == BUF_OK && req->n_recalled > 0) {
        r = buf_printf(out, "Recalled from memory (%zu %s):\n", req->n_recalled,
                       req->n_recalled == 1 ? "note" : "notes");
        for (size_t i = 0; i < req->n_recalled && i < OFFLINE_NOTES_SHOWN && r == BUF_OK; i++) {
            const char *note = req->recalled[i] != NULL ? req->recalled[i] : "";
            r = buf_puts(out, "- ");
            if (r == BUF_OK)
                r = offline_put_oneline(out, note, strlen(note), OFFLINE_NOTE_MAX);
            if (r == BUF_OK)
                r = buf_putc(out, '\n');
        }
        if (r == BUF_OK && req->n_recalled > OFFLINE_NOTES_SHOWN)
            r = buf_printf(out, "(and %zu more)\n", req->n_recalled - OFFLINE_NOTES_SHOWN);
    }
    if (r == BUF_OK)
        r = buf_puts(out, "For real answers, set OPENAI_API_KEY or ANTHROPIC_API_KEY, or run a "
                          "local OpenAI-compatible server on 127.0.0.1:11434 or 127.0.0.1:8080.");
    return r;
}

/* Adds s[0..n) to o under name as one safe line (offline_put_oneline);
 * false when out of memory. */
static bool offline_json_line(cJSON *o, const char *name, const char *s, size_t max)
{
    struct buf b;
    buf_init(&b, max * 4 + 16);
    bool ok = offline_put_oneline(&b, s, strlen(s), max) == BUF_OK &&
              cJSON_AddStringToObject(o, name, buf_cstr(&b)) != NULL;
    buf_free(&b);
    return ok;
}

/* The answer when the request wants one JSON value (an agent step of
 * format json): the same facts as the prose answer, as a JSON object, so
 * a multi-step agent's steps run offline and hand JSON to each other. */
static enum buf_result offline_compose_json(const struct llm_request *req, struct buf *out)
{
    const char *system = NULL, *last_user = NULL;
    size_t user_count = 0;
    for (size_t i = 0; i < req->n_messages; i++) {
        const struct llm_message *m = &req->messages[i];
        if (m->content == NULL)
            continue;
        if (strcmp(m->role, "system") == 0 && system == NULL)
            system = m->content;
        if (strcmp(m->role, "user") == 0) {
            user_count++;
            last_user = m->content;
        }
    }
    cJSON *o = cJSON_CreateObject();
    bool ok = o != NULL && cJSON_AddBoolToObject(o, "offline", 1) != NULL &&
              cJSON_AddStringToObject(o, "note",
                                      "No model was called: memchat is running offline.") != NULL;
    ok = ok && offline_json_line(o, "agent", system != NULL ? system : "", OFFLINE_ROLE_MAX);
    ok = ok &&
         offline_json_line(o, "message", last_user != NULL ? last_user : "", OFFLINE_SUMMARY_MAX);
    ok = ok && cJSON_AddNumberToObject(o, "message_number", (double)user_count) != NULL;
    if (ok && req->n_recalled > 0 && req->recalled[0] != NULL)
        ok = offline_json_line(o, "from_memory", req->recalled[0], OFFLINE_SUMMARY_MAX);
    else if (ok)
        ok = cJSON_AddNullToObject(o, "from_memory") != NULL;
    cJSON *notes = ok ? cJSON_AddArrayToObject(o, "recalled") : NULL;
    ok = ok && notes != NULL;
    for (size_t i = 0; ok && i < req->n_recalled && i < OFFLINE_NOTES_SHOWN; i++) {
        struct buf b;
        buf_init(&b, OFFLINE_NOTE_MAX * 4 + 16);
        const char *note = req->recalled[i] != NULL ? req->recalled[i] : "";
        cJSON *str = NULL;
        if (offline_put_oneline(&b, note, strlen(note), OFFLINE_NOTE_MAX) == BUF_OK)
            str = cJSON_CreateString(buf_cstr(&b));
        buf_free(&b);
        ok = str != NULL && cJSON_AddItemToArray(notes, str);
    }
    char *text = ok ? cJSON_Print(o) : NULL;
    cJSON_Delete(o);
    if (text == NULL)
        return BUF_NO_MEM;
    enum buf_result r = buf_puts(out, text);
    cJSON_free(text);
    return r;
}

/* The end of the delta starting at s[0..n): after OFFLINE_GROUP_WORDS
 * words and their trailing space, or after a newline. Cuts fall after ASCII
 * bytes only, so no delta splits a UTF-8 character. */
static size_t offline_group_end(const char *s, size_t n)
{
    size_t words = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n')
            return i + 1;
        if (s[i] == ' ' && (i + 1 == n || s[i + 1] != ' ') && ++words == OFFLINE_GROUP_WORDS)
            return i + 1;
    }
    return n;
}

static enum mc_error offline_chat(const struct llm_provider *p, const struct llm_request *req,
                                  llm_delta_fn on_delta, void *ud, const atomic_bool *cancel,
                                  struct llm_result *res, char *err, size_t errlen)
{
    (void)p;
    memset(res, 0, sizeof *res);
    res->usage.prompt_tokens = tokens_estimate_messages(req->messages, req->n_messages);
    res->usage.completion_tokens = 0;
    res->usage.cached_tokens = 0;
    res->usage.estimated = true;

    struct buf reply;
    buf_init(&reply, OFFLINE_REPLY_MAX);
    if ((req->want_json ? offline_compose_json(req, &reply) : offline_compose(req, &reply)) !=
        BUF_OK) {
        buf_free(&reply);
        snprintf(err, errlen, "offline provider: out of memory composing the answer");
        return MC_ERR_OUT_OF_MEMORY;
    }
    const char *s = buf_cstr(&reply);
    enum mc_error result = MC_ERR_NONE;
    size_t off = 0;
    while (off < reply.len) {
        if (cancel != NULL && atomic_load(cancel)) {
            result = MC_ERR_CANCELLED;
            break;
        }
        size_t len = offline_group_end(s + off, reply.len - off);
        res->deltas_sent++;
        res->bytes_sent += len;
        if (on_delta(ud, s + off, len) != 0) {
            result = MC_ERR_CANCELLED;
            break;
        }
        off += len;
    }
    res->usage.completion_tokens = tokens_estimate(s, res->bytes_sent);
    if (result == MC_ERR_CANCELLED)
        snprintf(err, errlen, "offline provider: cancelled after %zu of %zu bytes", res->bytes_sent,
                 reply.len);
    buf_free(&reply);
    return result;
}

struct llm_provider *llm_offline_new(void)
{
    struct llm_provider *p = xcalloc(1, sizeof *p);
    p->name = "offline";
    p->reply_is_echo = true;
    p->default_model = "offline";
    /* The offline provider reads anything; a window like a mid-size model's
     * keeps memory-off trimming realistic in demos. */
    p->context_window = 32768;
    p->reply_reserve = 1024;
    p->chat = offline_chat;
    return p;
}
