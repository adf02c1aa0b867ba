/*
 * The conversation of conversation.h: a growable array of owned messages.
 * Only the turn worker touches it, so it has no lock.
 */
#include "config.h"

#include "client/conversation.h"

#include <stdint.h>
#include <string.h>

#include "llm/tokens.h"
#include "util/alloc.h"

struct conversation {
    /* role and content are owned copies, freed through a cast: the array is
     * handed out as llm messages, whose fields are const for every reader. */
    struct llm_message *msgs;
    size_t n, cap;
};

struct conversation *conversation_new(void)
{
    return xcalloc(1, sizeof(struct conversation));
}

void conversation_clear(struct conversation *c)
{
    for (size_t i = 0; i < c->n; i++) {
        xfree((char *)(uintptr_t)c->msgs[i].role);
        xfree((char *)(uintptr_t)c->msgs[i].content);
    }
    c->n = 0;
}

void conversation_free(struct conversation *c)
{
    if (c == NULL)
        return;
    conversation_clear(c);
    xfree(c->msgs);
    xfree(c);
}

void conversation_append(struct conversation *c, const char *role, const char *content)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 8;
        c->msgs = xreallocarray(c->msgs, c->cap, sizeof *c->msgs);
    }
    /* A stored exchange is plain text: no tool calls, no tool result. */
    c->msgs[c->n] = (struct llm_message){.role = xstrdup(role), .content = xstrdup(content)};
    c->n++;
}

size_t conversation_count(const struct conversation *c)
{
    return c->n;
}

const struct llm_message *conversation_messages(const struct conversation *c)
{
    return c->msgs;
}

static bool conversation_is_user(const struct conversation *c, size_t i)
{
    return strcmp(c->msgs[i].role, "user") == 0;
}

size_t conversation_start_last_exchanges(const struct conversation *c, size_t n)
{
    size_t start = c->n;
    size_t seen = 0;
    while (start > 0 && seen < n) {
        start--;
        if (conversation_is_user(c, start))
            seen++;
    }
    return start;
}

size_t conversation_start_within_budget(const struct conversation *c, long long budget)
{
    size_t start = c->n;
    long long used = 0;
    while (start > 0) {
        long long t = tokens_estimate_message(&c->msgs[start - 1]);
        if (t > budget - used)
            break;
        used += t;
        start--;
    }
    while (start < c->n && !conversation_is_user(c, start))
        start++;
    return start;
}
