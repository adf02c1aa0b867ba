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
 *
 * It also calls tools, deterministically, so the tool loop runs offline
 * (in the demo and in tests): a user message that asks to search memory
 * ("search memory for X", "search my memory for X", "what do you remember
 * about X", "recall X", any case) calls memory_search with {"query":"X"}
 * (X without its trailing ?!.), and one that asks "what time is it"
 * calls time_now with {}, each only when the request offers that tool and
 * lets the model call tools. When the request ends with tool results, the
 * answer lists what each tool returned.
 */
#include "config.h"

#include "llm/provider.h"

#include <cJSON.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "llm/tokens.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/utf8.h"

#define OFFLINE_SUMMARY_MAX  200 /* bytes of the user's message quoted */
#define OFFLINE_ROLE_MAX     160 /* bytes of the agent's prompt quoted */
#define OFFLINE_NOTE_MAX     120 /* bytes of each recalled note quoted */
#define OFFLINE_NOTES_SHOWN  5   /* notes listed; the rest are counted */
#define OFFLINE_REPLY_MAX    16384
#define OFFLINE_GROUP_WORDS  4    /* words per streamed delta */
#define OFFLINE_TOOL_OUT_MAX 2000 /* bytes of each tool result quoted */
#define OFFLINE_CALL_ID      "offline_call_1"

/* The offline provider's state: the tool call of its last chat(), if it
 * made one (it never makes more than one). */
struct offline {
    struct llm_tool_call call;
    size_t n_calls;
};

/* What a user message asks for when it starts with one of these (any
 * case): memory_search with the rest of the message as the query. */
static const char *const offline_search_prefixes[] = {
    "search memory for ",
    "search my memory for ",
    "what do you remember about ",
    "recall ",
};

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

/* Appends o printed (indented, as a model writes JSON) to out and frees
 * o; ok false (o incomplete) is out of memory. */
static enum buf_result offline_put_json(struct buf *out, cJSON *o, bool ok)
{
    char *text = ok ? cJSON_Print(o) : NULL;
    cJSON_Delete(o);
    if (text == NULL)
        return BUF_NO_MEM;
    enum buf_result r = buf_puts(out, text);
    cJSON_free(text);
    return r;
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
    return offline_put_json(out, o, ok);
}

/* True when req offers a tool called name and lets the model call it. */
static bool offline_tool_offered(const struct llm_request *req, const char *name)
{
    if (req->tools_none)
        return false;
    for (size_t i = 0; i < req->n_tools; i++)
        if (req->tools[i].name != NULL && strcmp(req->tools[i].name, name) == 0)
            return true;
    return false;
}

/* The message's text if req ends with a user message, else NULL. */
static const char *offline_last_user(const struct llm_request *req)
{
    if (req->n_messages == 0)
        return NULL;
    const struct llm_message *m = &req->messages[req->n_messages - 1];
    return strcmp(m->role, "user") == 0 && m->content != NULL ? m->content : NULL;
}

/* True when s[0..n) contains needle (ASCII, any case). */
static bool offline_contains_nocase(const char *s, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (strncasecmp(s + i, needle, k) == 0)
            return true;
    return false;
}

/* The query of a memory search request in text: the rest after one of
 * offline_search_prefixes (leading whitespace skipped), without the
 * whitespace and ?!. at its end, as *q and *qlen; false when text asks for
 * none or the query is empty. */
static bool offline_search_query(const char *text, const char **q, size_t *qlen)
{
    while (offline_is_space(*text))
        text++;
    for (size_t i = 0; i < sizeof offline_search_prefixes / sizeof offline_search_prefixes[0];
         i++) {
        size_t k = strlen(offline_search_prefixes[i]);
        if (strncasecmp(text, offline_search_prefixes[i], k) != 0)
            continue;
        const char *rest = text + k;
        size_t n = strlen(rest);
        while (n > 0 && (offline_is_space(rest[n - 1]) || rest[n - 1] == '?' ||
                         rest[n - 1] == '!' || rest[n - 1] == '.'))
            n--;
        while (n > 0 && offline_is_space(*rest)) {
            rest++;
            n--;
        }
        *q = rest;
        *qlen = n;
        return n > 0;
    }
    return false;
}

/* Forgets the last chat()'s tool call (a new chat() starts with none). */
static void offline_call_clear(struct offline *st)
{
    if (st->n_calls == 0)
        return;
    xfree(st->call.id);
    xfree(st->call.name);
    buf_free(&st->call.arguments);
    memset(&st->call, 0, sizeof st->call);
    st->n_calls = 0;
}

/* Records the call the answer to req makes, if any, in st: memory_search
 * for a search request, time_now for the time. false only when out of
 * memory. */
static bool offline_pick_call(struct offline *st, const struct llm_request *req)
{
    const char *text = offline_last_user(req);
    if (text == NULL)
        return true;
    const char *q = NULL;
    size_t qlen = 0;
    const char *name = NULL;
    char *args = NULL;
    if (offline_tool_offered(req, "memory_search") && offline_search_query(text, &q, &qlen)) {
        char *query = xstrndup(q, qlen);
        cJSON *o = cJSON_CreateObject();
        if (o != NULL && cJSON_AddStringToObject(o, "query", query) != NULL)
            args = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        xfree(query);
        if (args == NULL)
            return false;
        name = "memory_search";
    } else if (offline_tool_offered(req, "time_now") &&
               offline_contains_nocase(text, strlen(text), "what time is it")) {
        name = "time_now";
    } else {
        return true;
    }
    buf_init(&st->call.arguments, OFFLINE_REPLY_MAX);
    bool ok = buf_puts(&st->call.arguments, args != NULL ? args : "{}") == BUF_OK;
    cJSON_free(args);
    if (!ok) {
        buf_free(&st->call.arguments);
        return false;
    }
    st->call.index = 0;
    st->call.id = xstrdup(OFFLINE_CALL_ID);
    st->call.name = xstrdup(name);
    st->call.arguments_valid = true;
    st->n_calls = 1;
    return true;
}

/* The number of tool messages req ends with (0: it does not end with
 * tool results). */
static size_t offline_trailing_results(const struct llm_request *req)
{
    size_t n = 0;
    while (n < req->n_messages && strcmp(req->messages[req->n_messages - 1 - n].role, "tool") == 0)
        n++;
    return n;
}

/* The answer to tool results: the offline label, then one line per result
 * ("NAME returned: OUTPUT", or "NAME failed: ..."), each output quoted as
 * one safe line. */
static enum buf_result offline_compose_results(const struct llm_request *req, size_t n,
                                               struct buf *out)
{
    enum buf_result r = buf_puts(out, "[offline] No model was called: memchat is running offline, "
                                      "so this answer only repeats what the tools returned.\n");
    for (size_t i = req->n_messages - n; i < req->n_messages && r == BUF_OK; i++) {
        const struct llm_message *m = &req->messages[i];
        const char *name = m->tool_name != NULL && m->tool_name[0] != '\0' ? m->tool_name : "tool";
        const char *output = m->content != NULL ? m->content : "";
        r = offline_put_oneline(out, name, strlen(name), OFFLINE_ROLE_MAX);
        if (r == BUF_OK)
            r = buf_puts(out, m->tool_error ? " failed: " : " returned: ");
        if (r == BUF_OK)
            r = offline_put_oneline(out, output, strlen(output), OFFLINE_TOOL_OUT_MAX);
        if (r == BUF_OK)
            r = buf_putc(out, '\n');
    }
    if (r == BUF_OK)
        r = buf_puts(out, "For real answers, set OPENAI_API_KEY or ANTHROPIC_API_KEY, or run a "
                          "local OpenAI-compatible server on 127.0.0.1:11434 or 127.0.0.1:8080.");
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

/* The answer to tool results when the request wants JSON: {"offline":
 * true, "note", "tool_results": [{"name", "ok", "output"}]}, each output
 * quoted as one safe line. */
static enum buf_result offline_compose_results_json(const struct llm_request *req, size_t n,
                                                    struct buf *out)
{
    cJSON *o = cJSON_CreateObject();
    bool ok = o != NULL && cJSON_AddBoolToObject(o, "offline", 1) != NULL &&
              cJSON_AddStringToObject(o, "note",
                                      "No model was called: memchat is running offline.") != NULL;
    cJSON *arr = ok ? cJSON_AddArrayToObject(o, "tool_results") : NULL;
    ok = ok && arr != NULL;
    for (size_t i = req->n_messages - n; ok && i < req->n_messages; i++) {
        const struct llm_message *m = &req->messages[i];
        cJSON *r = cJSON_CreateObject();
        ok = r != NULL && cJSON_AddItemToArray(arr, r);
        if (!ok) {
            cJSON_Delete(r);
            break;
        }
        ok = offline_json_line(r, "name", m->tool_name != NULL ? m->tool_name : "",
                               OFFLINE_ROLE_MAX) &&
             cJSON_AddBoolToObject(r, "ok", !m->tool_error) != NULL &&
             offline_json_line(r, "output", m->content != NULL ? m->content : "",
                               OFFLINE_TOOL_OUT_MAX);
    }
    return offline_put_json(out, o, ok);
}

/* Builds the text answer to req into out: what the tools returned when
 * req ends with tool results, else the JSON or prose summary. */
static enum buf_result offline_compose_any(const struct llm_request *req, struct buf *out)
{
    size_t results = offline_trailing_results(req);
    if (results > 0)
        return req->want_json ? offline_compose_results_json(req, results, out)
                              : offline_compose_results(req, results, out);
    return req->want_json ? offline_compose_json(req, out) : offline_compose(req, out);
}

static enum mc_error offline_chat(const struct llm_provider *p, const struct llm_request *req,
                                  llm_delta_fn on_delta, void *ud, const atomic_bool *cancel,
                                  struct llm_result *res, char *err, size_t errlen)
{
    struct offline *st = p->impl;
    memset(res, 0, sizeof *res);
    res->usage.prompt_tokens = tokens_estimate_messages(req->messages, req->n_messages);
    res->usage.completion_tokens = 0;
    res->usage.cached_tokens = 0;
    res->usage.estimated = true;

    offline_call_clear(st);
    if (!offline_pick_call(st, req)) {
        snprintf(err, errlen, "offline provider: out of memory composing a tool call");
        return MC_ERR_OUT_OF_MEMORY;
    }
    if (st->n_calls > 0) {
        /* A tool call is the whole answer: no text, as a model's would be. */
        if (cancel != NULL && atomic_load(cancel)) {
            offline_call_clear(st);
            snprintf(err, errlen, "offline provider: cancelled before the tool call");
            return MC_ERR_CANCELLED;
        }
        res->usage.completion_tokens =
            tokens_estimate(st->call.arguments.data, st->call.arguments.len);
        res->tool_calls = 1;
        snprintf(res->finish_reason, sizeof res->finish_reason, "tool_calls");
        return MC_ERR_NONE;
    }

    struct buf reply;
    buf_init(&reply, OFFLINE_REPLY_MAX);
    if (offline_compose_any(req, &reply) != BUF_OK) {
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

/* The provider table's tool_calls: the last chat()'s call, if it made one. */
static const struct llm_tool_call *offline_tool_calls(const struct llm_provider *p, size_t *n)
{
    const struct offline *st = p->impl;
    *n = st->n_calls;
    return st->n_calls > 0 ? &st->call : NULL;
}

static void offline_free_impl(struct llm_provider *p)
{
    struct offline *st = p->impl;
    if (st == NULL)
        return;
    offline_call_clear(st);
    xfree(st);
    p->impl = NULL;
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
    p->impl = xcalloc(1, sizeof(struct offline));
    p->chat = offline_chat;
    p->tool_calls = offline_tool_calls;
    p->free_impl = offline_free_impl;
    return p;
}
