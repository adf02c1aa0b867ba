/*
 * A session's conversation: the messages of the exchanges so far (a user
 * message and the assistant's full reply), kept by the turn worker for chat
 * sessions. A turn does not send all of it: with memory on it carries the
 * last MEMORY_HISTORY_TURNS exchanges (memory stands in for the rest); with
 * memory off it carries the newest messages that fit the model's context
 * window. The trim helpers say where the carried part starts.
 */
#ifndef MEMCHAT_CLIENT_CONVERSATION_H
#define MEMCHAT_CLIENT_CONVERSATION_H

#include <stddef.h>

#include "llm/provider.h"

struct conversation;

/* An empty conversation; never NULL. Free with conversation_free(). */
struct conversation *conversation_new(void);
/* Frees c and every message; NULL is a no-op. */
void conversation_free(struct conversation *c);
/* Forgets every message (chat's /new). */
void conversation_clear(struct conversation *c);

/* Appends a copy of one message. */
void conversation_append(struct conversation *c, const char *role, const char *content);
/* The number of messages. */
size_t conversation_count(const struct conversation *c);
/* The messages, oldest first; valid until the next change to c. */
const struct llm_message *conversation_messages(const struct conversation *c);

/* The index of the first message of the last n exchanges (an exchange
 * starts at a user message): conversation_count() when n is 0, 0 when the
 * conversation has n exchanges or fewer. */
size_t conversation_start_last_exchanges(const struct conversation *c, size_t n);
/* The index of the first message of the longest tail whose estimated tokens
 * (llm/tokens.h, per message) fit in budget, moved forward to an exchange
 * boundary so the carried part never opens with a reply.
 * conversation_count() when nothing fits. */
size_t conversation_start_within_budget(const struct conversation *c, long long budget);

#endif
