/*
 * Embedders: text in, L2-normalised float vectors out. One interface for
 * the `local` embedder of the embedded defaults (memory/embed_local.c) and
 * the remote ones of a later issue (OpenAI, Cohere, Hugging Face, Ollama),
 * which is why it has two modes (Cohere embeds queries and documents
 * differently), batches (remote APIs take many texts per request) and a
 * size limit per text. A namespace remembers the embedder's name, model and
 * dimension (memory/store.h), so a vector made by one is never compared
 * with one made by another.
 *
 * The local embedder can weight a query by the document frequencies of the
 * tenant's own stored texts: embedder_terms() says which terms of a
 * document to count, and a query is embedded with the counts looked up for
 * its own terms (struct embed_df). Stored vectors never depend on the
 * counts, so they never change when the corpus grows.
 */
#ifndef MEMCHAT_MEMORY_EMBED_H
#define MEMCHAT_MEMORY_EMBED_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config;

/* How a text will be used: stored (document) or searched with (query). */
enum embed_mode {
    EMBED_DOCUMENT,
    EMBED_QUERY,
};

/* Document frequencies for weighting one query: for each of the query's
 * terms (as embedder_terms() gives them) the number of the tenant's stored
 * texts that hold it, and how many texts there are. */
struct embed_df {
    size_t docs;           /* stored texts in the namespace */
    const uint32_t *terms; /* the query's distinct terms */
    const uint32_t *df;    /* df[i]: texts holding terms[i] (0 when none) */
    size_t n;
};

struct embedder;

/* The operations an embedder implements. */
struct embedder_ops {
    /* Embeds texts[0..n) (n <= max_batch, each valid UTF-8 of at most
     * max_bytes) into out (n * dim floats, row-major), each row of norm 1
     * (or all zeros for a text with no features). df may be NULL (no
     * weighting) and is only used in EMBED_QUERY mode. 0, or -1 with a
     * message naming the embedder and what failed. */
    int (*embed)(struct embedder *e, enum embed_mode mode, const char *const *texts, size_t n,
                 const struct embed_df *df, float *out, char *err, size_t errlen);
    /* Writes the distinct terms of text whose document frequencies the
     * embedder uses into terms (at most cap); returns how many there are
     * (may exceed cap: call again with more room). NULL when the embedder
     * uses no frequencies. */
    size_t (*terms)(const struct embedder *e, const char *text, size_t len, uint32_t *terms,
                    size_t cap);
    /* Makes later calls end early (failing, last_fail REST_CANCELLED) while
     * *cancel is set; NULL: never. NULL op in embedders that do not wait. */
    void (*set_cancel)(struct embedder *e, const atomic_bool *cancel);
    /* Frees e and everything it owns. */
    void (*free)(struct embedder *e);
};

/* An embedder: its identity, its limits and its operations. */
struct embedder {
    const struct embedder_ops *ops;
    char name[32];    /* EMBEDDINGS_PROVIDER: "local", ... */
    char model[64];   /* the model, e.g. "hash-v1" for local; recorded per namespace */
    int dim;          /* floats per vector */
    size_t max_bytes; /* longest text embedded as one piece */
    size_t max_batch; /* most texts per ops->embed call */
    bool remote;      /* a server's embedder: its failures are a network error (exit 3) */
    int last_fail;    /* enum rest_fail of the last failed embed (net/rest.h); 0 otherwise */
    void *impl;       /* the implementation's state */
};

/* The embedder EMBEDDINGS_PROVIDER, EMBEDDINGS_MODEL and
 * EMBEDDINGS_DIMENSION describe, or NULL with a message naming the
 * variable and what is accepted. Free with embedder_free(). */
struct embedder *embedder_new(const struct config *cfg, char *err, size_t errlen);
/* The local embedder with dim dimensions (16..4096), or NULL with a
 * message. Free with embedder_free(). */
struct embedder *embed_local_new(int dim, char *err, size_t errlen);
/* The remote embedder EMBEDDINGS_PROVIDER names (openai, cohere,
 * huggingface, ollama) from cfg: model, dimension, base URL, key, batch
 * size, timeout and retries; NULL with a message naming the variable when
 * one is malformed or a required key is missing. Does not touch the
 * network. Free with embedder_free(). */
struct embedder *embed_remote_new(const struct config *cfg, char *err, size_t errlen);
/* Frees e; NULL is a no-op. */
void embedder_free(struct embedder *e);
/* Lets *cancel (borrowed; NULL: none) end e's calls and their retry waits
 * early: a long job's Ctrl-C need not wait for a server. */
void embedder_set_cancel(struct embedder *e, const atomic_bool *cancel);

/* Embeds any number of texts, max_batch at a time, into out (n * dim
 * floats). A text longer than max_bytes, empty or not valid UTF-8 is
 * refused with a message naming its index and the limit. 0 or -1. */
int embedder_embed(struct embedder *e, enum embed_mode mode, const char *const *texts, size_t n,
                   const struct embed_df *df, float *out, char *err, size_t errlen);
/* The distinct terms of text (see embedder_ops.terms) in a new array that
 * the caller frees with xfree; *n is their number. NULL with *n = 0 when
 * the embedder uses no frequencies or the text has no terms. */
uint32_t *embedder_terms(const struct embedder *e, const char *text, size_t len, size_t *n);

#endif
