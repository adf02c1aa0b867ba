/* Placeholder: the agent registry (helper A replaces this file). */
#include "config.h"

#include "agents/agent.h"

#include <cJSON.h>
#include <stdio.h>

#include "util/alloc.h"

struct agents {
    size_t n;
};

struct agents *agents_load(const char *share_dir, const char *config_dir, char **warnings,
                           char *err, size_t errlen)
{
    (void)share_dir;
    (void)config_dir;
    (void)err;
    (void)errlen;
    *warnings = NULL;
    return xcalloc(1, sizeof(struct agents));
}

void agents_free(struct agents *r)
{
    xfree(r);
}

const struct agent *agents_find(const struct agents *r, const char *name)
{
    (void)r;
    (void)name;
    return NULL;
}

size_t agents_count(const struct agents *r)
{
    return r->n;
}

const struct agent *agents_at(const struct agents *r, size_t i)
{
    (void)r;
    (void)i;
    return NULL;
}

struct cJSON *agent_to_json(const struct agent *a)
{
    (void)a;
    return cJSON_CreateObject();
}

const char *agent_scope_name(enum agent_scope s)
{
    (void)s;
    return "default";
}
