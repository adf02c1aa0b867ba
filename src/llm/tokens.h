/*
 * A token estimate without a tokenizer: what the offline provider reports as
 * usage (marked estimated), what the turn uses to trim a conversation to a
 * model's context window, and what front ends may show before a turn runs.
 * It is a heuristic on purpose: providers bill by their own tokenizers, and
 * their reported usage replaces this figure whenever they send one.
 */
#ifndef MEMCHAT_LLM_TOKENS_H
#define MEMCHAT_LLM_TOKENS_H

#include <stddef.h>

#include "llm/provider.h"

/* Tokens a chat message costs beyond its text (role, separators). */
#define TOKENS_PER_MESSAGE 4
/* Tokens every request costs once (the priming of the reply). */
#define TOKENS_PER_REQUEST 3

/* The estimated tokens of the text s[0..n): ASCII at about 4 bytes a token,
 * 2-byte UTF-8 characters at about 2 a token, wider characters (CJK, emoji)
 * at about one each; rounded up, so non-empty text is at least 1. */
long long tokens_estimate(const char *s, size_t n);
/* The estimate of one message: its content plus TOKENS_PER_MESSAGE. */
long long tokens_estimate_message(const struct llm_message *m);
/* The estimate of a whole prompt: every message plus TOKENS_PER_REQUEST. */
long long tokens_estimate_messages(const struct llm_message *msgs, size_t n);

#endif
