/*
 * The agent registry (agent.h): reads the agent files of the share dir and
 * of the config dir, checks every field, and keeps the agents that pass,
 * sorted by name. A bad file never stops the others: its one problem
 * becomes one warning line and the file is skipped. Reading is free of side
 * effects, so front ends may load the registry without starting the engine.
 * The strict reading and the wording of every message are util/jsonfile's,
 * shared with the tool registry (tools/registry.c).
 *
 * The agent file format
 * ---------------------
 * One JSON object, UTF-8, at most 1 MiB, in a file whose name ends in
 * ".json" (names starting with "." are skipped). Fields:
 *
 *   name           required. The agent's id: 1 to 64 of A-Z a-z 0-9 _ -.
 *   description    one line of text, at most 1024 bytes (default "").
 *   system_prompt  required. Non-empty text, at most 64 KiB.
 *   provider       auto, offline, openai, anthropic or ollama: overrides
 *                  MEMCHAT_PROVIDER for this agent's turns.
 *   model          one line, 1 to 200 bytes: overrides MEMCHAT_MODEL.
 *   temperature    a number from 0 to 2.
 *   max_tokens     an integer from 1 to 1000000: the reply's token limit.
 *   memory         true or false (default true). false turns memory off for
 *                  the agent's turns (rule 2 of "Is memory on for this
 *                  turn?": only --no-memory or /memory is stronger).
 *   k              an integer from 1 to 100: memories recalled per turn
 *                  (default MEMORY_RETRIEVAL_K).
 *   memory_scope   "tenant" (the whole tenant's memories), "user" (only the
 *                  user's own) or "agent" (only what this agent stored);
 *                  absent: MEMORY_SCOPE decides.
 *   format         "text" or "json" (default text): what the reply must be.
 *   tools          an array of tool names the agent may call (at most 100):
 *                  built-ins (memory_search, time_now) or tool files (the
 *                  registry, tools/registry.h, says at each turn which
 *                  exist: a name it does not know is logged and not
 *                  offered). A string that is not a tool name is a warning
 *                  and is ignored (the agent still loads).
 *   steps          an array of 1 to 8 step objects; the agent then runs
 *                  each step as its own turn, in order, each with memory:
 *                    name    required, an id like the agent's, unique
 *                            among the agent's steps;
 *                    prompt  required, non-empty text, at most 64 KiB: the
 *                            step's instruction, added to system_prompt;
 *                    format  "text" or "json" (default text). A json step's
 *                            reply is minified before it is handed on.
 *
 * An optional field given as null is the same as leaving it out. Keys
 * starting with "_" are comments and are skipped. Any other unknown key is
 * a warning naming it ("unknown field 'temprature' ignored (did you mean
 * 'temperature'?)"); the agent still loads. A file is skipped, with one
 * warning "PATH: field F: what is wrong (what is accepted)", when it is not
 * valid JSON (the message gives the line and column), not valid UTF-8, not
 * an object, larger than 1 MiB or not a regular file, or when a required
 * field is missing, a field is given twice, has the wrong type or is out of
 * range.
 *
 * Where agents come from: the shipped ones from the share dir's agents/
 * (MEMCHAT_SHARE_DIR, else $(pkgdatadir)/agents when it exists, else
 * share/agents of the source tree), then the user's own from the config
 * dir's agents/. Files are read in byte order of their names. A user agent
 * with the name of a shipped one replaces it (`memchat agents --json` shows
 * "source": "user", "overrides": true). Within one directory, a second file
 * defining a name already seen is skipped with a warning. When no file
 * defines "assistant", a built-in one is added (source "builtin").
 */
#include "config.h"

#include "agents/agent.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/registry.h"
#include "util/alloc.h"
#include "util/ident.h"
#include "util/jsonfile.h"
#include "util/paths.h"

#define AGENT_MAX_FILE      (1024 * 1024)
#define AGENT_MAX_PROMPT    (64 * 1024)
#define AGENT_MAX_DESC      1024
#define AGENT_MAX_MODEL     200
#define AGENT_MAX_TOOLS     100
#define AGENT_MAX_TOOL_NAME 64
#define AGENT_MAX_K         100
#define AGENT_MAX_TOKENS    1000000
#define AGENT_MAX_TEMP      2.0
#define AGENTS_MAX_FILES    JSONFILE_MAX_FILES
/* Warning lines kept per load and per file: a file of 10,000 unknown keys
 * must not produce 10,000 lines. */
#define AGENTS_MAX_WARNINGS 200
#define AGENT_FILE_WARNINGS 10

static const char BUILTIN_PROMPT[] =
    "You are memchat's assistant: a helpful, honest assistant that answers clearly and "
    "remembers what the user told it in past conversations.";

static const char *const PROVIDERS[] = {"auto", "offline", "openai", "anthropic", "ollama", NULL};
/* In the order of enum agent_scope after AGENT_SCOPE_DEFAULT. */
static const char *const SCOPES[] = {"tenant", "user", "agent", NULL};
/* In the order of enum agent_format. */
static const char *const FORMATS[] = {"text", "json", NULL};
static const char *const TOP_KEYS[] = {
    "name",   "description", "system_prompt", "provider", "model", "temperature", "max_tokens",
    "memory", "k",           "memory_scope",  "format",   "tools", "steps",       NULL};
static const char *const STEP_KEYS[] = {"name", "prompt", "format", NULL};

struct agents {
    struct agent *v; /* sorted by name once loaded */
    size_t n;
    size_t cap;
};

/* "name": present, a string, a valid id. */
static int agent_ident(struct jsonfile_parse *p, const char *field, const cJSON *it,
                       const char *what, char **out)
{
    if (it == NULL)
        return jsonfile_fail(p, field, "missing (%s)", what);
    if (!cJSON_IsString(it) || it->valuestring == NULL)
        return jsonfile_fail(p, field, "is %s; expected a name of 1 to %d of A-Z a-z 0-9 _ -",
                             jsonfile_kind(it), IDENT_MAX);
    if (!ident_valid(it->valuestring)) {
        char clip[JSONFILE_CLIP_BUF];
        return jsonfile_fail(p, field,
                             "'%s' is not a valid name (accepted: 1 to %d of A-Z a-z 0-9 _ -)",
                             jsonfile_clip(it->valuestring, clip), IDENT_MAX);
    }
    *out = xstrdup(it->valuestring);
    return 0;
}

static int agent_parse_tools(struct jsonfile_parse *p, const cJSON *arr, struct agent *a)
{
    if (!cJSON_IsArray(arr))
        return jsonfile_fail(p, "tools", "is %s; expected an array of tool names",
                             jsonfile_kind(arr));
    int n = cJSON_GetArraySize(arr);
    if (n > AGENT_MAX_TOOLS)
        return jsonfile_fail(p, "tools", "has %d names; expected at most %d", n, AGENT_MAX_TOOLS);
    a->tools = xcalloc((size_t)n + 1, sizeof *a->tools);
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        char field[32];
        snprintf(field, sizeof field, "tools[%d]", i++);
        char *name = NULL;
        if (jsonfile_string(p, field, it, AGENT_MAX_TOOL_NAME,
                            JSONFILE_NONEMPTY | JSONFILE_ONE_LINE, &name) != 0)
            return -1;
        char clip[JSONFILE_CLIP_BUF];
        bool dup = false;
        for (size_t j = 0; j < a->n_tools && !dup; j++)
            dup = strcmp(a->tools[j], name) == 0;
        /* Whether a tool of that name exists is the registry's to say at
         * each turn (tool files come and go); only the name's shape is
         * checked here. */
        if (!tool_name_valid(name)) {
            jsonfile_warn(p, "field %s: '%s' is not a tool name ([A-Za-z0-9_-]{1,64}); ignored",
                          field, jsonfile_clip(name, clip));
            xfree(name);
        } else if (dup) {
            jsonfile_warn(p, "field %s: tool '%s' given twice (listed once)", field, name);
            xfree(name);
        } else {
            a->tools[a->n_tools++] = name;
        }
    }
    return 0;
}

static int agent_parse_step(struct jsonfile_parse *p, const cJSON *st, size_t i, struct agent *a)
{
    char prefix[32], field[64];
    snprintf(prefix, sizeof prefix, "steps[%zu].", i);
    snprintf(field, sizeof field, "steps[%zu]", i);
    if (!cJSON_IsObject(st))
        return jsonfile_fail(
            p, field,
            "is %s; expected an object {\"name\": ..., \"prompt\": ..., \"format\": "
            "\"text\"|\"json\"}",
            jsonfile_kind(st));
    if (jsonfile_check_keys(p, st, prefix, STEP_KEYS) != 0)
        return -1;
    /* Counted before it is filled, so agent_clear frees a half-read step. */
    struct agent_step *s = &a->steps[a->n_steps++];
    snprintf(field, sizeof field, "steps[%zu].name", i);
    if (agent_ident(p, field, cJSON_GetObjectItemCaseSensitive(st, "name"),
                    "every step needs \"name\" and \"prompt\"", &s->name) != 0)
        return -1;
    for (size_t j = 0; j + 1 < a->n_steps; j++)
        if (strcmp(a->steps[j].name, s->name) == 0)
            return jsonfile_fail(p, field,
                                 "'%s' is also the name of steps[%zu] (step names are unique)",
                                 s->name, j);
    snprintf(field, sizeof field, "steps[%zu].prompt", i);
    const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(st, "prompt");
    if (prompt == NULL)
        return jsonfile_fail(p, field, "missing (every step needs \"name\" and \"prompt\")");
    if (jsonfile_string(p, field, prompt, AGENT_MAX_PROMPT, JSONFILE_NONEMPTY, &s->prompt) != 0)
        return -1;
    const cJSON *fmt = jsonfile_opt(st, "format");
    int f = AGENT_FORMAT_TEXT;
    snprintf(field, sizeof field, "steps[%zu].format", i);
    if (fmt != NULL && jsonfile_choice(p, field, fmt, FORMATS, &f) != 0)
        return -1;
    s->format = (enum agent_format)f;
    return 0;
}

static int agent_parse_steps(struct jsonfile_parse *p, const cJSON *arr, struct agent *a)
{
    if (!cJSON_IsArray(arr))
        return jsonfile_fail(p, "steps", "is %s; expected an array of 1 to %d step objects",
                             jsonfile_kind(arr), AGENT_MAX_STEPS);
    int n = cJSON_GetArraySize(arr);
    if (n < 1 || n > AGENT_MAX_STEPS)
        return jsonfile_fail(p, "steps", "has %d steps; expected 1 to %d", n, AGENT_MAX_STEPS);
    a->steps = xcalloc((size_t)n, sizeof *a->steps);
    size_t i = 0;
    const cJSON *st;
    cJSON_ArrayForEach(st, arr)
    {
        if (agent_parse_step(p, st, i++, a) != 0)
            return -1;
    }
    return 0;
}

/* The optional scalar fields: provider, model, temperature, max_tokens,
 * memory, k, memory_scope, format. */
static int agent_parse_options(struct jsonfile_parse *p, const cJSON *root, struct agent *a)
{
    const cJSON *it;
    int choice;
    double v;
    if ((it = jsonfile_opt(root, "provider")) != NULL) {
        if (jsonfile_choice(p, "provider", it, PROVIDERS, &choice) != 0)
            return -1;
        a->provider = xstrdup(PROVIDERS[choice]);
    }
    if ((it = jsonfile_opt(root, "model")) != NULL &&
        jsonfile_string(p, "model", it, AGENT_MAX_MODEL, JSONFILE_NONEMPTY | JSONFILE_ONE_LINE,
                        &a->model) != 0)
        return -1;
    if ((it = jsonfile_opt(root, "temperature")) != NULL) {
        if (jsonfile_number(p, "temperature", it, 0, AGENT_MAX_TEMP, false, &v) != 0)
            return -1;
        a->temperature = v;
    }
    if ((it = jsonfile_opt(root, "max_tokens")) != NULL) {
        if (jsonfile_number(p, "max_tokens", it, 1, AGENT_MAX_TOKENS, true, &v) != 0)
            return -1;
        a->max_tokens = (long long)v;
    }
    if ((it = jsonfile_opt(root, "memory")) != NULL &&
        jsonfile_bool(p, "memory", it, &a->memory) != 0)
        return -1;
    if ((it = jsonfile_opt(root, "k")) != NULL) {
        if (jsonfile_number(p, "k", it, 1, AGENT_MAX_K, true, &v) != 0)
            return -1;
        a->k = (int)v;
    }
    if ((it = jsonfile_opt(root, "memory_scope")) != NULL) {
        if (jsonfile_choice(p, "memory_scope", it, SCOPES, &choice) != 0)
            return -1;
        a->scope = (enum agent_scope)(AGENT_SCOPE_TENANT + choice);
    }
    if ((it = jsonfile_opt(root, "format")) != NULL) {
        if (jsonfile_choice(p, "format", it, FORMATS, &choice) != 0)
            return -1;
        a->format = (enum agent_format)choice;
    }
    return 0;
}

/* Fills a from the parsed root object. */
static int agent_parse_json(struct jsonfile_parse *p, const cJSON *root, struct agent *a)
{
    if (!cJSON_IsObject(root))
        return jsonfile_fail(
            p, NULL,
            "is %s, not a JSON object (an agent file is one object: {\"name\": ..., "
            "\"system_prompt\": ...})",
            jsonfile_kind(root));
    if (jsonfile_check_keys(p, root, "", TOP_KEYS) != 0)
        return -1;
    static const char required[] = "every agent file needs \"name\" and \"system_prompt\"";
    if (agent_ident(p, "name", cJSON_GetObjectItemCaseSensitive(root, "name"), required,
                    &a->name) != 0)
        return -1;
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, "system_prompt");
    if (it == NULL)
        return jsonfile_fail(p, "system_prompt", "missing (%s)", required);
    if (jsonfile_string(p, "system_prompt", it, AGENT_MAX_PROMPT, JSONFILE_NONEMPTY,
                        &a->system_prompt) != 0)
        return -1;
    if ((it = jsonfile_opt(root, "description")) != NULL &&
        jsonfile_string(p, "description", it, AGENT_MAX_DESC, JSONFILE_ONE_LINE, &a->description) !=
            0)
        return -1;
    if (a->description == NULL)
        a->description = xstrdup("");
    if (agent_parse_options(p, root, a) != 0)
        return -1;
    if ((it = jsonfile_opt(root, "tools")) != NULL && agent_parse_tools(p, it, a) != 0)
        return -1;
    if ((it = jsonfile_opt(root, "steps")) != NULL && agent_parse_steps(p, it, a) != 0)
        return -1;
    return 0;
}

/* Reads and parses the file p->path into a. */
static int agent_parse_file(struct jsonfile_parse *p, struct agent *a)
{
    cJSON *root = NULL;
    if (jsonfile_load(p, AGENT_MAX_FILE, &root) != 0)
        return -1;
    int rc = agent_parse_json(p, root, a);
    cJSON_Delete(root);
    return rc;
}

static void agent_init(struct agent *a)
{
    memset(a, 0, sizeof *a);
    a->temperature = NAN;
    a->memory = true;
    a->scope = AGENT_SCOPE_DEFAULT;
    a->format = AGENT_FORMAT_TEXT;
}

/* Frees what a owns and leaves it zeroed. */
static void agent_clear(struct agent *a)
{
    xfree(a->name);
    xfree(a->description);
    xfree(a->system_prompt);
    xfree(a->provider);
    xfree(a->model);
    for (size_t i = 0; i < a->n_tools; i++)
        xfree(a->tools[i]);
    xfree(a->tools);
    for (size_t i = 0; i < a->n_steps; i++) {
        xfree(a->steps[i].name);
        xfree(a->steps[i].prompt);
    }
    xfree(a->steps);
    xfree(a->path);
    memset(a, 0, sizeof *a);
}

static struct agent *agents_lookup(struct agents *r, const char *name)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->v[i].name, name) == 0)
            return &r->v[i];
    return NULL;
}

/* A new slot at the end of r (uninitialised). */
static struct agent *agents_push(struct agents *r)
{
    if (r->n == r->cap) {
        r->cap = r->cap == 0 ? 8 : r->cap * 2;
        r->v = xreallocarray(r->v, r->cap, sizeof *r->v);
    }
    return &r->v[r->n++];
}

/* Adds the agent parsed from p (file warnings included) to r, unless dir
 * already gave its name. */
static void agents_add(struct agents *r, struct agent *a, enum agent_source src,
                       struct jsonfile_parse *p, struct jsonfile_warnings *w)
{
    a->source = src;
    a->shipped = src != AGENT_SOURCE_USER;
    a->path = xstrdup(p->path);
    struct agent *old = agents_lookup(r, a->name);
    if (old != NULL && old->source == src) {
        jsonfile_warnings_addf(w,
                               "%s: field name: agent '%s' is already defined by %s; this file is "
                               "skipped (agent names are unique in a directory)",
                               p->path, a->name, old->path);
        agent_clear(a);
        return;
    }
    /* The file's warnings count only for an agent that is kept. */
    jsonfile_warnings_merge(w, p);
    if (old != NULL) {
        /* A user file replacing a shipped agent: by design, not a warning. */
        agent_clear(old);
        *old = *a;
        old->overrides = true;
    } else {
        *agents_push(r) = *a;
    }
}

/* Loads every agent file of dir into r. 0, or -1 with err when dir exists
 * but cannot be read. */
static int agents_load_dir(struct agents *r, const char *dir, enum agent_source src,
                           struct jsonfile_warnings *w, char *err, size_t errlen)
{
    char **names;
    size_t n;
    int rc = jsonfile_list_dir(dir, "agents", &names, &n, err, errlen);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    if (n > AGENTS_MAX_FILES)
        jsonfile_warnings_addf(w, "%s: %zu agent files; only the first %d by name are read", dir, n,
                               AGENTS_MAX_FILES);
    for (size_t i = 0; i < n; i++) {
        if (i < AGENTS_MAX_FILES) {
            char *path = paths_join(dir, names[i]);
            struct jsonfile_parse *p = xmalloc(sizeof *p);
            jsonfile_parse_init(p, path, "an agent", AGENT_FILE_WARNINGS);
            struct agent a;
            agent_init(&a);
            if (agent_parse_file(p, &a) == 0) {
                agents_add(r, &a, src, p, w);
            } else {
                jsonfile_warnings_add(w, p->err, false);
                agent_clear(&a);
            }
            jsonfile_parse_fini(p);
            xfree(p);
            xfree(path);
        }
        xfree(names[i]);
    }
    xfree(names);
    return 0;
}

static void agents_add_builtin(struct agents *r)
{
    struct agent *a = agents_push(r);
    agent_init(a);
    a->name = xstrdup("assistant");
    a->description = xstrdup("The default assistant (built in: no assistant.json was found)");
    a->system_prompt = xstrdup(BUILTIN_PROMPT);
    a->path = xstrdup("(built-in)");
    a->source = AGENT_SOURCE_BUILTIN;
    a->shipped = true;
}

static int agents_cmp(const void *a, const void *b)
{
    return strcmp(((const struct agent *)a)->name, ((const struct agent *)b)->name);
}

struct agents *agents_load(const char *share_dir, const char *config_dir, char **warnings,
                           char *err, size_t errlen)
{
    *warnings = NULL;
    struct agents *r = xcalloc(1, sizeof *r);
    struct jsonfile_warnings w;
    jsonfile_warnings_init(&w, AGENTS_MAX_WARNINGS);
    char *dir = paths_shipped_dir(share_dir, "agents");
    int rc = agents_load_dir(r, dir, AGENT_SOURCE_SHIPPED, &w, err, errlen);
    xfree(dir);
    if (rc == 0 && config_dir != NULL && config_dir[0] != '\0') {
        dir = paths_join(config_dir, "agents");
        rc = agents_load_dir(r, dir, AGENT_SOURCE_USER, &w, err, errlen);
        xfree(dir);
    }
    if (rc != 0) {
        jsonfile_warnings_free(&w);
        agents_free(r);
        return NULL;
    }
    if (agents_lookup(r, "assistant") == NULL)
        agents_add_builtin(r);
    qsort(r->v, r->n, sizeof *r->v, agents_cmp);
    *warnings = jsonfile_warnings_take(&w);
    return r;
}

void agents_free(struct agents *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n; i++)
        agent_clear(&r->v[i]);
    xfree(r->v);
    xfree(r);
}

const struct agent *agents_find(const struct agents *r, const char *name)
{
    if (r == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->v[i].name, name) == 0)
            return &r->v[i];
    return NULL;
}

size_t agents_count(const struct agents *r)
{
    return r != NULL ? r->n : 0;
}

const struct agent *agents_at(const struct agents *r, size_t i)
{
    return r != NULL && i < r->n ? &r->v[i] : NULL;
}

/* Adds s under key, or null when s is NULL. */
static bool agent_json_str(cJSON *o, const char *key, const char *s)
{
    return (s != NULL ? cJSON_AddStringToObject(o, key, s) : cJSON_AddNullToObject(o, key)) != NULL;
}

static bool agent_json_steps(cJSON *o, const struct agent *a)
{
    cJSON *arr = cJSON_AddArrayToObject(o, "steps");
    if (arr == NULL)
        return false;
    for (size_t i = 0; i < a->n_steps; i++) {
        cJSON *s = cJSON_CreateObject();
        if (s == NULL || !cJSON_AddItemToArray(arr, s)) {
            cJSON_Delete(s);
            return false;
        }
        if (!agent_json_str(s, "name", a->steps[i].name) ||
            !agent_json_str(s, "prompt", a->steps[i].prompt) ||
            !agent_json_str(s, "format", agent_format_name(a->steps[i].format)))
            return false;
    }
    return true;
}

struct cJSON *agent_to_json(const struct agent *a)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    bool ok = agent_json_str(o, "name", a->name) &&
              agent_json_str(o, "description", a->description != NULL ? a->description : "") &&
              agent_json_str(o, "source", agent_source_name(a->source)) &&
              cJSON_AddBoolToObject(o, "overrides", a->overrides) != NULL &&
              agent_json_str(o, "path", a->source == AGENT_SOURCE_BUILTIN ? NULL : a->path) &&
              agent_json_str(o, "provider", a->provider) && agent_json_str(o, "model", a->model);
    ok = ok && (isnan(a->temperature)
                    ? cJSON_AddNullToObject(o, "temperature")
                    : cJSON_AddNumberToObject(o, "temperature", a->temperature)) != NULL;
    ok = ok && (a->max_tokens <= 0
                    ? cJSON_AddNullToObject(o, "max_tokens")
                    : cJSON_AddNumberToObject(o, "max_tokens", (double)a->max_tokens)) != NULL;
    ok = ok && cJSON_AddBoolToObject(o, "memory", a->memory) != NULL;
    ok = ok && (a->k <= 0 ? cJSON_AddNullToObject(o, "k")
                          : cJSON_AddNumberToObject(o, "k", (double)a->k)) != NULL;
    ok = ok && agent_json_str(o, "memory_scope", agent_scope_name(a->scope)) &&
         agent_json_str(o, "format", agent_format_name(a->format));
    cJSON *tools = ok ? cJSON_AddArrayToObject(o, "tools") : NULL;
    ok = ok && tools != NULL;
    for (size_t i = 0; ok && i < a->n_tools; i++)
        ok = cJSON_AddItemToArray(tools, cJSON_CreateString(a->tools[i]));
    ok = ok && agent_json_steps(o, a) && agent_json_str(o, "system_prompt", a->system_prompt);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

const char *agent_scope_name(enum agent_scope s)
{
    switch (s) {
    case AGENT_SCOPE_DEFAULT:
        return "default";
    case AGENT_SCOPE_TENANT:
        return "tenant";
    case AGENT_SCOPE_USER:
        return "user";
    case AGENT_SCOPE_AGENT:
        return "agent";
    }
    return "default";
}

const char *agent_format_name(enum agent_format f)
{
    switch (f) {
    case AGENT_FORMAT_TEXT:
        return "text";
    case AGENT_FORMAT_JSON:
        return "json";
    }
    return "text";
}

const char *agent_source_name(enum agent_source s)
{
    switch (s) {
    case AGENT_SOURCE_SHIPPED:
        return "shipped";
    case AGENT_SOURCE_USER:
        return "user";
    case AGENT_SOURCE_BUILTIN:
        return "builtin";
    }
    return "shipped";
}
