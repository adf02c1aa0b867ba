/*
 * The model provider interface. A provider turns a request (messages, and
 * the memories recalled for it) into a streamed reply: it calls on_delta for
 * each piece of text as it arrives, checks the turn's cancel flag between
 * pieces, and reports the usage it was billed (or an estimate). This issue
 * ships the `offline` provider; the streaming HTTP providers (OpenAI,
 * Anthropic, Ollama and other OpenAI-compatible servers) implement the same
 * table, with `interrupt` waking a transfer blocked in poll so that cancel
 * takes effect at once.
 */
#ifndef MEMCHAT_LLM_PROVIDER_H
#define MEMCHAT_LLM_PROVIDER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "memchat/error.h"

struct config;

/* One chat message; role is "system", "user" or "assistant". */
struct llm_message {
    const char *role;
    const char *content;
};

/* What a turn asks a provider. Everything is borrowed for the call. */
struct llm_request {
    const char *model; /* never NULL: the configured model or the default */
    const struct llm_message *messages;
    size_t n_messages;
    /* The texts of the memories recalled for this turn, best first. They are
     * already fenced into the system message for real models; the offline
     * provider, which cannot read, lists them in its answer. NULL/0: none. */
    const char *const *recalled;
    size_t n_recalled;
    long long max_tokens; /* cap on the reply; 0 = the provider's default */
};

/* Receives one piece of the reply (len bytes, valid UTF-8, not
 * NUL-terminated). Returns nonzero to stop the stream (the provider then
 * returns MC_ERR_CANCELLED). */
typedef int (*llm_delta_fn)(void *ud, const char *text, size_t len);

/* Tokens of one call; -1 where the provider reported nothing. */
struct llm_usage {
    long long prompt_tokens, completion_tokens, cached_tokens;
    bool estimated; /* true when memchat estimated (tokens.h) */
};

/* How the call went, beyond its return value. */
struct llm_result {
    struct llm_usage usage;
    size_t deltas_sent; /* on_delta calls made, also when cancelled */
    size_t bytes_sent;  /* bytes passed to on_delta */
};

struct llm_provider;

/* The provider table. Instances come from llm_provider_resolve() (or a test)
 * and are freed with llm_provider_free(). */
struct llm_provider {
    const char *name;          /* "offline", as in turn.start's "provider" */
    const char *default_model; /* used when MEMCHAT_MODEL is empty */
    long long context_window;  /* tokens the model reads, prompt and reply */
    long long reply_reserve;   /* tokens of the window kept for the reply */
    void *impl;                /* the provider's own state */

    /* Streams the reply to req through on_delta(ud, ...). *cancel is the
     * turn's flag, set from another thread; the provider checks it between
     * pieces and returns MC_ERR_CANCELLED once it is set. res is always
     * filled (usage -1 when unknown). MC_ERR_NONE on success; otherwise an
     * error code with a message naming what failed in err. Called from one
     * thread at a time. */
    enum mc_error (*chat)(const struct llm_provider *p, const struct llm_request *req,
                          llm_delta_fn on_delta, void *ud, const atomic_bool *cancel,
                          struct llm_result *res, char *err, size_t errlen);
    /* Optional: wakes a chat() blocked waiting for input so that it sees the
     * cancel flag now. Called from any thread, after the flag is set, also
     * when no chat() runs. NULL when chat() never blocks. */
    void (*interrupt)(const struct llm_provider *p);
    /* Optional: the price in USD of a call's usage on model; negative when
     * the model has no known price (the cost event's usd is then null). NULL
     * means no price for any model. */
    double (*cost_usd)(const struct llm_provider *p, const char *model,
                       const struct llm_usage *usage);
    /* Optional: frees impl. The table itself is freed by llm_provider_free. */
    void (*free_impl)(struct llm_provider *p);
};

/* The provider called name: "offline", or "auto" for the best one
 * available. NULL with a message in err when the name is unknown or the
 * provider cannot be set up. Free with llm_provider_free(). */
struct llm_provider *llm_provider_resolve(const char *name, const struct config *cfg, char *err,
                                          size_t errlen);
/* A new offline provider: answers from the request alone, never blocks,
 * never sleeps, price 0 (DESIGN.md, embedded defaults). */
struct llm_provider *llm_offline_new(void);
/* Frees p and its state; NULL is a no-op. */
void llm_provider_free(struct llm_provider *p);
/* The price of usage on p's model, or a negative value when unknown. */
double llm_provider_cost(const struct llm_provider *p, const char *model,
                         const struct llm_usage *usage);

#endif
