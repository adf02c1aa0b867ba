/*
 * `memchat doctor`: one pass over every backend the configuration names,
 * each asked the cheapest question that proves it works for this tenant
 * (the provider lists its models, the embedder embeds one short text, the
 * vector store reports its server and the tenant's namespace, the
 * keystore opens, Opik answers, Redis answers PING), so a user learns in one command what
 * works, what does not, and what to change. Each check becomes one item
 * {check, status ok|warn|fail|skip, what, detail, fix, exit}; nothing is
 * written anywhere and no key appears in an item. Runs on the turn worker
 * as an engine job, like every other piece of work a front end asks for.
 */
#ifndef MEMCHAT_CLIENT_DOCTOR_H
#define MEMCHAT_CLIENT_DOCTOR_H

struct config;
struct db;
struct keys;
struct memory_manager;
struct cJSON;
struct redis;

/* What the checks use; all borrowed. */
struct doctor_env {
    const struct config *cfg;
    struct db *db;                 /* the data file, checked with quick_check */
    struct memory_manager *memory; /* its embedder and store */
    struct keys *keys;             /* tenants' own keys */
    const char *tenant;            /* whose namespace and key are checked */
    struct redis *redis;           /* the shared limits and cache; NULL: not used */
};

/* Runs every check; returns the items as a new JSON array (free with
 * cJSON_Delete). *exit_code is 0 when nothing failed, else the exit code
 * of the most serious failure (2 for a setting, 3 for a server, 1 for the
 * data file). */
struct cJSON *doctor_run(const struct doctor_env *env, int *exit_code);

#endif
