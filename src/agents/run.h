/*
 * Running an agent (DESIGN.md, layers: "agents/: multi-step runs made of
 * client turns"). agent_apply() puts an agent's profile on a turn: its
 * system prompt, memory flag, k and scope, sampling and the format of its
 * reply. agent_run() runs the agent on the user's message: one turn, or
 * for an agent with steps, each step as its own turn with memory (its own
 * turn id, `turn.start` carrying step {index, of, name, run}), in one
 * conversation, each step's output handed to the next (JSON minified).
 * The run stops at the first step that does not complete. The turns
 * themselves are the caller's: a hook runs each one (the engine: its
 * events, its ledger row and its store stage).
 */
#ifndef MEMCHAT_AGENTS_RUN_H
#define MEMCHAT_AGENTS_RUN_H

#include <stddef.h>

#include "agents/agent.h"
#include "client/turn.h"

/* Runs one turn and fills *out (the engine's turn with its store stage).
 * out->reply, when set, is the hook caller's to free after the call. */
struct agent_run_hooks {
    void (*turn)(void *ud, const struct turn_input *in, struct turn_outcome *out);
    void *ud;
};

/* Sets in's profile fields (system_prompt borrowed from a; the rest
 * copied) from agent a, for a single-turn run. */
void agent_apply(const struct agent *a, struct turn_input *in);

/* Runs a on the user's turn in (its turn id is the first step's, or the
 * only turn's). Returns how many turns ran (at least 1); *last gets the
 * outcome of the last one (its reply freed, set to NULL). */
size_t agent_run(const struct agent *a, const struct turn_input *in,
                 const struct agent_run_hooks *h, struct turn_outcome *last);

/* Step i's system prompt: the agent's, then which step of how many this
 * is and the step's instruction. Caller frees with xfree. */
char *agent_step_system(const struct agent *a, size_t i);
/* Step i's message: the user's text, then (from the second step) the
 * previous step's name and output. Caller frees with xfree. */
char *agent_step_text(const struct agent *a, size_t i, const char *user_text, const char *prev);

#endif
