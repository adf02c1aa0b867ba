/*
 * Stage 9 of a turn: the tools a turn offers the model and the rounds of
 * calls it makes (DESIGN.md, the pipeline of one turn; the tools issue).
 * The turn offers the agent's tools that the registry knows; when a reply
 * ends with tool calls, each call is announced (tool.call), asked of the
 * user when its tool is not read-only (tool.confirm, then the front end's
 * answer), run with its timeout and output cap (tools/runner.h), and
 * reported (tool.result); the calls and their results are then appended to
 * the request for the next round. The calls of one reply run one after
 * another, in the model's order. Nothing the model or a recalled memory
 * says can skip the confirmation: it is asked here, for every call.
 */
#ifndef MEMCHAT_CLIENT_TOOLUSE_H
#define MEMCHAT_CLIENT_TOOLUSE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/emit.h"
#include "llm/provider.h"
#include "tools/registry.h"

/* The secrets a tool's run gets: names[i] = values[i]. values are
 * sodium_malloc'd or otherwise wiped by free. */
struct tooluse_creds {
    const char **names;
    char **values;
    size_t n;
    void (*free)(struct tooluse_creds *c); /* wipes and frees; NULL: nothing to free */
    void *owner;                           /* what free releases */
};

/* What the rounds need from the turn. Everything is borrowed. */
struct tooluse_env {
    struct tool_registry *registry; /* NULL: no tools */
    const struct emit *em;
    const atomic_bool *cancel;
    void *ctx;        /* handed to built-ins (the turn) */
    long long now_ms; /* monotonic ms, for the registry's cache */
    int max_rounds;   /* TOOL_MAX_ROUNDS */
    /* Asks the user whether a call of a tool that is not read-only may run
     * (after tool.confirm was sent): 1 yes, 0 no, -1 the turn was
     * cancelled. NULL: every such call is refused. */
    int (*confirm)(void *ud, const char *call_id, const char *name);
    void *confirm_ud;
    /* Fetches the credentials t declares for the turn's tenant. 0 with
     * out filled; -1 with a message for the model and the user in err
     * (which credential is missing and how to add it; never a value).
     * NULL: tools that need credentials fail. */
    int (*credentials)(void *ud, const struct tool_def *t, struct tooluse_creds *out, char *err,
                       size_t errlen);
    void *credentials_ud;
};

/* One call as it ran, for the trace. */
struct tooluse_call {
    char *call_id, *name;
    bool ok;
    const char *status; /* tools/runner.h's name, "refused", "unknown" or "no_credentials" */
    double start_ms;    /* from the tools stage's start */
    double latency_ms;
};

struct tooluse {
    const struct tooluse_env *env;
    struct llm_tool_spec *specs; /* the tools offered */
    size_t n_specs;
    int rounds; /* rounds of calls run so far */
    /* The messages the rounds added: an assistant message with its calls,
     * then one tool message a call, per round. Owned (see tooluse.c). */
    struct llm_message *msgs;
    size_t n_msgs, cap_msgs;
    struct tooluse_call *calls; /* every call, in order */
    size_t n_calls, cap_calls;
    double total_ms;  /* time spent in rounds */
    int64_t first_ns; /* monotonic ns when the first round began; 0: none ran */
    struct tooluse_owned *owned;
};

/* Starts tu for a turn whose agent allows the tools names[0..n) (NULL/0:
 * none). Refreshes the registry (its TTL) and offers the allowed tools it
 * knows; an allowed name it does not know is logged and not offered. */
void tooluse_begin(struct tooluse *tu, const struct tooluse_env *env, const char *const *names,
                   size_t n);
/* Frees what tu holds (not env). */
void tooluse_free(struct tooluse *tu);

/* True when a reply that ended with calls may have another round; false
 * once TOOL_MAX_ROUNDS rounds ran (the next request then says tools_none). */
bool tooluse_more(const struct tooluse *tu);

/* Runs one round: the reply's text so far this round (text, may be "")
 * and its calls[0..n) become the assistant message, each call runs and
 * its result becomes a tool message. Returns 0, or -1 when the turn was
 * cancelled meanwhile (the round's messages are then incomplete and must
 * not be sent). */
int tooluse_round(struct tooluse *tu, const char *text, const struct llm_tool_call *calls,
                  size_t n);

/* Fills the request's tool fields and messages for the next call: base
 * (the turn's system, history and user messages, n_base of them) then the
 * rounds' messages, in *out (owned by tu, valid until the next round or
 * free). */
void tooluse_request(struct tooluse *tu, const struct llm_message *base, size_t n_base,
                     struct llm_request *req);

#endif
