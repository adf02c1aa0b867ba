/*
 * Agents as data: each agent is a JSON file (name, description, system
 * prompt, provider/model and sampling overrides, memory on/off, k, memory
 * scope, allowed tools, optional steps). The shipped ones come from the
 * share dir's agents/ ($(pkgdatadir), MEMCHAT_SHARE_DIR, or share/ of the
 * source tree); the user's own, in the config dir's agents/, override
 * shipped ones by name. A malformed file is reported (file and field) and
 * skipped; the others still load. The registry is plain data: running an
 * agent's steps is agents/run.c's business.
 */
#ifndef MEMCHAT_AGENTS_AGENT_H
#define MEMCHAT_AGENTS_AGENT_H

#include <stdbool.h>
#include <stddef.h>

struct cJSON;

#define AGENT_MAX_STEPS 8 /* steps an agent file may give */

/* Whose memories an agent recalls. DEFAULT follows MEMORY_SCOPE. */
enum agent_scope { AGENT_SCOPE_DEFAULT, AGENT_SCOPE_TENANT, AGENT_SCOPE_USER, AGENT_SCOPE_AGENT };

/* What a step's reply must be: free text, or one JSON value (minified
 * before it is handed to the next step). */
enum agent_format { AGENT_FORMAT_TEXT, AGENT_FORMAT_JSON };

/* Where an agent came from: a file in the share dir, a file in the config
 * dir, or the fallback assistant compiled into memchat. */
enum agent_source { AGENT_SOURCE_SHIPPED, AGENT_SOURCE_USER, AGENT_SOURCE_BUILTIN };

/* One step of a multi-step agent: its own turn with memory. */
struct agent_step {
    char *name;   /* short, e.g. "understand" */
    char *prompt; /* the step's instruction, added to the agent's system prompt */
    enum agent_format format;
};

struct agent {
    char *name;           /* a valid id ([A-Za-z0-9_-]{1,64}) */
    char *description;    /* one line */
    char *system_prompt;  /* never NULL */
    char *provider;       /* override of MEMCHAT_PROVIDER; NULL: none */
    char *model;          /* override of MEMCHAT_MODEL; NULL: none */
    double temperature;   /* NAN: none */
    long long max_tokens; /* 0: none */
    bool memory;          /* false: memory is off for this agent's turns (rollout rule 2) */
    int k;                /* memories recalled; 0: MEMORY_RETRIEVAL_K */
    enum agent_scope scope;
    enum agent_format format; /* of a single-turn agent's reply */
    char **tools;             /* allowed tool names */
    size_t n_tools;
    struct agent_step *steps; /* NULL/0: one plain turn */
    size_t n_steps;
    char *path;   /* the file it came from; "(built-in)" for the fallback assistant */
    bool shipped; /* from the share dir or built in (false: the user's own) */
    enum agent_source source;
    bool overrides; /* a user file that replaced a shipped agent of the same name */
};

struct agents;

/* Loads the shipped agents from share_dir/agents (share_dir NULL or "":
 * $(pkgdatadir), else share/ of the source tree, as prices_shipped_path
 * does) and the user's from config_dir/agents (NULL: none), the user's
 * overriding by name. Never fails for a bad file: each problem is one
 * line in *warnings ("FILE: field F: what is wrong"; newline-separated,
 * NULL when none; caller frees with xfree). Returns the registry (free
 * with agents_free), or NULL with err set only when a directory cannot be
 * read for a reason other than not existing. The registry always holds
 * "assistant": a built-in one when no file defines it. */
struct agents *agents_load(const char *share_dir, const char *config_dir, char **warnings,
                           char *err, size_t errlen);
/* Frees r; NULL is a no-op. */
void agents_free(struct agents *r);
/* The agent called name, or NULL. Valid until agents_free. */
const struct agent *agents_find(const struct agents *r, const char *name);
/* How many agents, and the i-th in name order. */
size_t agents_count(const struct agents *r);
const struct agent *agents_at(const struct agents *r, size_t i);
/* One agent as a JSON object (name, description, source, overrides, path,
 * provider, model, temperature, max_tokens, memory, k, memory_scope,
 * format, tools, steps, system_prompt; "none" values are null); caller
 * frees with cJSON_Delete. NULL only when out of memory. */
struct cJSON *agent_to_json(const struct agent *a);
/* "default", "tenant", "user" or "agent". */
const char *agent_scope_name(enum agent_scope s);
/* "text" or "json". */
const char *agent_format_name(enum agent_format f);
/* "shipped", "user" or "builtin". */
const char *agent_source_name(enum agent_source s);

#endif
