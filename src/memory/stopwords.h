/*
 * The small, fixed English stop-word list that memory's text handling
 * shares: the local embedder damps these words (the list is part of its
 * model hash-v1, so changing it changes every stored vector and needs a
 * new model name), and the local store leaves them out of keyword
 * queries, where they match nearly every row and rank nothing.
 */
#ifndef MEMCHAT_MEMORY_STOPWORDS_H
#define MEMCHAT_MEMORY_STOPWORDS_H

#include <stdbool.h>
#include <stddef.h>

/* The list, lowercase ASCII, sorted; *n is its length. Static storage. */
const char *const *stopwords_list(size_t *n);
/* True when the len bytes at w are a stop word, ignoring ASCII case. */
bool stopword_is(const char *w, size_t len);

#endif
