/*
 * Credentials people paste into a chat: API keys of the big providers,
 * GitHub, Slack and AWS tokens, bearer tokens and PEM private keys. A
 * message that holds one stays where the user put it (the conversation,
 * memory, the request to the model) but its copies in traces are redacted,
 * so a trace file or an Opik project never becomes a store of secrets.
 * The patterns are prefixes with a minimum length of token characters,
 * chosen so ordinary prose never matches.
 */
#ifndef MEMCHAT_UTIL_REDACT_H
#define MEMCHAT_UTIL_REDACT_H

#include <stddef.h>

/* The text shown in place of a credential. */
#define REDACT_MARK "[redacted]"

/* A copy of s[0..n) with every credential replaced by REDACT_MARK, or
 * NULL when s holds none (the caller then uses s itself). *count, when
 * not NULL, says how many were replaced. Caller frees with xfree. */
char *redact_secrets(const char *s, size_t n, size_t *count);

#endif
