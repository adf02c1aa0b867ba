/*
 * The tool registry (registry.h): reads the tool files of the share dir and
 * of the config dir, checks every field, keeps the tools that pass next to
 * the built-ins, sorted by name, and reloads the files at most once a TTL.
 * A bad file never stops the others: its one problem becomes one warning
 * line and the file is skipped. Reading is free of side effects (nothing
 * runs), so front ends may load the registry without starting the engine.
 *
 * The tool file format
 * --------------------
 * One JSON object, UTF-8, at most 1 MiB, in a file whose name ends in
 * ".json" (names starting with "." are skipped). Fields:
 *
 *   name              required. The tool's name as the model sees it: 1 to
 *                     64 of A-Z a-z 0-9 _ -.
 *   description       required. Non-empty text, at most 4 KiB: what the
 *                     tool does and when to use it, for the model.
 *   parameters        required. The JSON Schema of the arguments: an object
 *                     whose "type" is "object" ("properties", when given,
 *                     an object; "required", when given, an array of
 *                     strings). Kept minified; a key given twice anywhere
 *                     in it is an error.
 *   command           required. An array of 1 to 64 strings (each at most
 *                     4096 bytes): the executable and its arguments, run
 *                     without a shell. A relative executable is resolved
 *                     against the tool file's directory (a script beside
 *                     its JSON file: "command": ["weather.sh"]); there is
 *                     no PATH search ("/usr/bin/env" does one). It must
 *                     exist and be executable. The other words are passed
 *                     as they are; the working directory is memchat's.
 *                     The tool reads its arguments (one JSON object) on
 *                     stdin and prints one JSON value on stdout.
 *   timeout_ms        an integer from 1 to 600000 (default 10000): the
 *                     whole run; the tool's process group is then killed.
 *   output_max_bytes  an integer from 1 to 16777216 (default 65536): the
 *                     most it may print; more kills it and fails the call.
 *   read_only         true or false (default false). A tool must say it is
 *                     safe: one that is not read-only asks the user before
 *                     every call, whatever the model or a memory says.
 *   credentials       an array of at most 16 distinct names of environment
 *                     variables ([A-Z_][A-Z0-9_]{0,63}; not one the runner
 *                     sets itself: PATH, HOME, LANG, LC_ALL, LC_CTYPE, TZ,
 *                     TMPDIR, MEMCHAT_TOOL). Each is a keystore record of
 *                     provider "tool:NAME" (`memchat tools add-credential`)
 *                     put in the tool's environment, and only in its own.
 *
 * An optional field given as null is the same as leaving it out. Keys
 * starting with "_" are comments and are skipped. Any other unknown key is
 * a warning naming it ("unknown field 'timeout' ignored (did you mean
 * 'timeout_ms'?)"); the tool still loads. A file is skipped, with one
 * warning "PATH: field F: what is wrong (what is accepted)", when it is not
 * valid JSON (the message gives the line and column), not valid UTF-8, not
 * an object, larger than 1 MiB or not a regular file, when a required
 * field is missing, a field is given twice, has the wrong type or is out of
 * range, or when the executable is missing or not executable.
 *
 * Where tools come from: the built-ins (time_now here; others registered
 * by the layers above, e.g. memory_search by client/), the shipped files
 * of the share dir's tools/ (MEMCHAT_SHARE_DIR, else $(pkgdatadir)/tools
 * when it exists, else share/tools of the source tree), then the user's
 * own from the config dir's tools/. Files are read in byte order of their
 * names. A user tool with the name of a shipped one replaces it
 * ("overrides": true). Within one directory, a second file defining a name
 * already seen is skipped with a warning, and so is a file that takes a
 * built-in's name (built-ins cannot be replaced).
 *
 * Caching: a refresh reloads only when forced, on the first call, or when
 * the TTL has passed since the last load. The tool_def pointers handed out
 * stay valid until a refresh that reloads (or the free): a refresh within
 * the TTL changes nothing, so a turn can hold them across its rounds.
 */
#include "config.h"

#include "tools/registry.h"

#include <cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/clock.h"
#include "util/jsonfile.h"
#include "util/log.h"
#include "util/jsonmin.h"
#include "util/paths.h"

#define TOOL_DESC_MAX        4096 /* bytes of description */
#define TOOL_WORD_MAX        4096 /* bytes of one command word */
#define TOOLS_MAX_WARNINGS   200  /* warning lines kept per load */
#define TOOL_FILE_WARNINGS   10   /* and per file */
#define TOOL_BUILTIN_PATH    "(built-in)"
#define TOOL_CRED_NAME_MAX   64
#define TOOL_SCHEMA_MAX_KEYS 100000 /* keys checked for repeats, all levels */

static const char *const TOP_KEYS[] = {"name",      "description", "parameters",
                                       "command",   "timeout_ms",  "output_max_bytes",
                                       "read_only", "credentials", NULL};
/* The variables the runner sets itself (runner.h): a credential of one of
 * these names would replace memchat's value or be replaced by it. */
static const char *const RESERVED_ENV[] = {"PATH", "HOME",   "LANG",         "LC_ALL", "LC_CTYPE",
                                           "TZ",   "TMPDIR", "MEMCHAT_TOOL", NULL};
static const char REQUIRED[] =
    "every tool file needs \"name\", \"description\", \"parameters\" and \"command\"";
static const char TIME_NOW_DESC[] =
    "The current date and time: UTC and local (ISO 8601), Unix milliseconds, and the local "
    "time zone's name.";
static const char TIME_NOW_PARAMS[] = "{\"type\":\"object\",\"properties\":{}}";

/* A growable list of tool definitions, each allocated on its own so a
 * pointer to one survives the list growing. */
struct tool_list {
    struct tool_def **v;
    size_t n;
    size_t cap;
};

struct tool_registry {
    char *share_dir;  /* NULL: as paths_shipped_dir finds it */
    char *config_dir; /* NULL: none */
    long long ttl_ms;
    struct tool_list builtins; /* in the order registered */
    struct tool_list files;    /* of the last load */
    /* What find/at see: the built-ins and the file tools that do not take
     * a built-in's name, sorted by name. Borrowed from the two lists. */
    const struct tool_def **view;
    size_t n_view;
    char *warnings; /* of the last load, or NULL */
    bool loaded;
    int64_t loaded_at; /* now_ms of the last load */
};

/* Frees what t owns, and t. */
static void tool_def_free(struct tool_def *t)
{
    if (t == NULL)
        return;
    xfree(t->name);
    xfree(t->description);
    xfree(t->parameters);
    for (size_t i = 0; i < t->argc; i++)
        xfree(t->argv[i]);
    xfree(t->argv);
    for (size_t i = 0; i < t->n_credentials; i++)
        xfree(t->credentials[i]);
    xfree(t->credentials);
    xfree(t->path);
    xfree(t);
}

static void tool_list_push(struct tool_list *l, struct tool_def *t)
{
    if (l->n == l->cap) {
        l->cap = l->cap == 0 ? 8 : l->cap * 2;
        l->v = xreallocarray(l->v, l->cap, sizeof *l->v);
    }
    l->v[l->n++] = t;
}

static void tool_list_clear(struct tool_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        tool_def_free(l->v[i]);
    xfree(l->v);
    memset(l, 0, sizeof *l);
}

static struct tool_def *tool_list_find(const struct tool_list *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i]->name, name) == 0)
            return l->v[i];
    return NULL;
}

bool tool_name_valid(const char *name)
{
    if (name == NULL)
        return false;
    size_t n = strlen(name);
    if (n < 1 || n > TOOL_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

bool tool_credential_name_valid(const char *name)
{
    if (name == NULL)
        return false;
    size_t n = strlen(name);
    if (n < 1 || n > TOOL_CRED_NAME_MAX || (name[0] >= '0' && name[0] <= '9'))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

const char *tool_source_name(enum tool_source s)
{
    switch (s) {
    case TOOL_SOURCE_BUILTIN:
        return "builtin";
    case TOOL_SOURCE_SHIPPED:
        return "shipped";
    case TOOL_SOURCE_USER:
        return "user";
    }
    return "shipped";
}

/* ---- parsing one file ------------------------------------------------ */

/* "name": present, a string, a valid tool name. */
static int tool_parse_name(struct jsonfile_parse *p, const cJSON *it, struct tool_def *t)
{
    if (it == NULL)
        return jsonfile_fail(p, "name", "missing (%s)", REQUIRED);
    if (!cJSON_IsString(it) || it->valuestring == NULL)
        return jsonfile_fail(p, "name", "is %s; expected a name of 1 to %d of A-Z a-z 0-9 _ -",
                             jsonfile_kind(it), TOOL_NAME_MAX);
    if (!tool_name_valid(it->valuestring)) {
        char clip[JSONFILE_CLIP_BUF];
        return jsonfile_fail(p, "name",
                             "'%s' is not a valid name (accepted: 1 to %d of A-Z a-z 0-9 _ -)",
                             jsonfile_clip(it->valuestring, clip), TOOL_NAME_MAX);
    }
    t->name = xstrdup(it->valuestring);
    return 0;
}

/* The first key repeated in any object of the tree under it (a schema
 * with a key twice means different things to different readers), or
 * NULL. *budget bounds the work on a hostile file. */
static const char *tool_schema_repeated_key(const cJSON *it, size_t *budget)
{
    if (cJSON_IsObject(it)) {
        size_t n = (size_t)cJSON_GetArraySize(it);
        if (n > *budget)
            return NULL;
        *budget -= n;
        const char *k = jsonfile_repeated_key(it);
        if (k != NULL)
            return k;
    }
    if (!cJSON_IsObject(it) && !cJSON_IsArray(it))
        return NULL;
    for (const cJSON *c = it->child; c != NULL; c = c->next) {
        const char *k = tool_schema_repeated_key(c, budget);
        if (k != NULL)
            return k;
    }
    return NULL;
}

/* The checks of "properties" and "required" in a schema object. */
static int tool_check_schema_lists(struct jsonfile_parse *p, const cJSON *it)
{
    const cJSON *props = jsonfile_opt(it, "properties");
    if (props != NULL && !cJSON_IsObject(props))
        return jsonfile_fail(p, "parameters.properties",
                             "is %s; expected an object mapping each argument to its schema",
                             jsonfile_kind(props));
    const cJSON *req = jsonfile_opt(it, "required");
    if (req == NULL)
        return 0;
    if (!cJSON_IsArray(req))
        return jsonfile_fail(p, "parameters.required", "is %s; expected an array of argument names",
                             jsonfile_kind(req));
    int i = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, req)
    {
        if (!cJSON_IsString(r)) {
            char field[48];
            snprintf(field, sizeof field, "parameters.required[%d]", i);
            return jsonfile_fail(p, field, "is %s; expected an argument name (a string)",
                                 jsonfile_kind(r));
        }
        i++;
    }
    return 0;
}

/* "parameters": a JSON Schema object of type "object", kept minified. */
static int tool_parse_schema(struct jsonfile_parse *p, const cJSON *it, struct tool_def *t)
{
    static const char want[] =
        "a JSON Schema object such as {\"type\": \"object\", \"properties\": {...}}";
    if (it == NULL)
        return jsonfile_fail(p, "parameters", "missing (%s)", REQUIRED);
    if (!cJSON_IsObject(it))
        return jsonfile_fail(p, "parameters", "is %s; expected %s", jsonfile_kind(it), want);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(it, "type");
    if (type == NULL)
        return jsonfile_fail(p, "parameters.type",
                             "missing; expected \"object\" (a tool's arguments are one object)");
    if (!cJSON_IsString(type))
        return jsonfile_fail(p, "parameters.type",
                             "is %s; expected \"object\" (a tool's arguments are one object)",
                             jsonfile_kind(type));
    if (strcmp(type->valuestring, "object") != 0) {
        char clip[JSONFILE_CLIP_BUF];
        return jsonfile_fail(p, "parameters.type",
                             "'%s' is not accepted (accepted: \"object\": a tool's arguments are "
                             "one object)",
                             jsonfile_clip(type->valuestring, clip));
    }
    size_t budget = TOOL_SCHEMA_MAX_KEYS;
    const char *twice = tool_schema_repeated_key(it, &budget);
    if (twice != NULL) {
        char clip[JSONFILE_CLIP_BUF];
        return jsonfile_fail(p, "parameters",
                             "key '%s' is given twice in one object (each key may appear once)",
                             jsonfile_clip(twice, clip));
    }
    if (tool_check_schema_lists(p, it) != 0)
        return -1;
    char *text = cJSON_PrintUnformatted(it);
    if (text == NULL)
        return jsonfile_fail(p, "parameters", "cannot be kept (out of memory)");
    t->parameters = xstrdup(text);
    cJSON_free(text);
    return 0;
}

/* dir + "/" + word, made absolute with the working directory when dir is
 * relative (MEMCHAT_SHARE_DIR=share), as argv[0] must be. */
static char *tool_resolve(const char *dir, const char *word)
{
    if (word[0] == '/')
        return xstrdup(word);
    char *joined = paths_join(dir, word);
    if (joined[0] == '/')
        return joined;
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof cwd) == NULL)
        return joined; /* still runs from here; only the message is less clear */
    char *abs = paths_join(cwd, joined);
    xfree(joined);
    return abs;
}

/* Checks that path is an executable regular file. */
static int tool_check_executable(struct jsonfile_parse *p, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return jsonfile_fail(p, "command[0]",
                                 "the executable %s does not exist (a relative path is resolved "
                                 "against the tool file's directory)",
                                 path);
        return jsonfile_fail(p, "command[0]", "the executable %s cannot be read: %s", path,
                             strerror(errno));
    }
    if (!S_ISREG(st.st_mode))
        return jsonfile_fail(p, "command[0]", "%s is not a regular file (expected an executable)",
                             path);
    if (access(path, X_OK) != 0)
        return jsonfile_fail(p, "command[0]", "%s is not executable (chmod +x it)", path);
    return 0;
}

/* "command": the argv, argv[0] resolved and checked. */
static int tool_parse_command(struct jsonfile_parse *p, const cJSON *it, const char *dir,
                              struct tool_def *t)
{
    if (it == NULL)
        return jsonfile_fail(p, "command", "missing (%s)", REQUIRED);
    if (!cJSON_IsArray(it))
        return jsonfile_fail(p, "command",
                             "is %s; expected an array of 1 to %d strings: the executable and its "
                             "arguments (no shell)",
                             jsonfile_kind(it), TOOL_ARGV_MAX);
    int n = cJSON_GetArraySize(it);
    if (n < 1 || n > TOOL_ARGV_MAX)
        return jsonfile_fail(p, "command", "has %d words; expected 1 to %d (the executable first)",
                             n, TOOL_ARGV_MAX);
    t->argv = xcalloc((size_t)n + 1, sizeof *t->argv);
    const cJSON *w;
    cJSON_ArrayForEach(w, it)
    {
        char field[32];
        snprintf(field, sizeof field, "command[%zu]", t->argc);
        unsigned flags = t->argc == 0 ? JSONFILE_NONEMPTY | JSONFILE_ONE_LINE : 0;
        char *word = NULL;
        if (jsonfile_string(p, field, w, TOOL_WORD_MAX, flags, &word) != 0)
            return -1;
        t->argv[t->argc++] = word;
    }
    char *exe = tool_resolve(dir, t->argv[0]);
    xfree(t->argv[0]);
    t->argv[0] = exe;
    return tool_check_executable(p, exe);
}

/* "credentials": distinct valid variable names, none reserved. */
static int tool_parse_credentials(struct jsonfile_parse *p, const cJSON *it, struct tool_def *t)
{
    if (!cJSON_IsArray(it))
        return jsonfile_fail(p, "credentials",
                             "is %s; expected an array of at most %d variable names "
                             "([A-Z_][A-Z0-9_]{0,63})",
                             jsonfile_kind(it), TOOL_CREDS_MAX);
    int n = cJSON_GetArraySize(it);
    if (n > TOOL_CREDS_MAX)
        return jsonfile_fail(p, "credentials", "has %d names; expected at most %d", n,
                             TOOL_CREDS_MAX);
    t->credentials = xcalloc((size_t)n + 1, sizeof *t->credentials);
    const cJSON *c;
    cJSON_ArrayForEach(c, it)
    {
        char field[32], clip[JSONFILE_CLIP_BUF];
        snprintf(field, sizeof field, "credentials[%zu]", t->n_credentials);
        if (!cJSON_IsString(c) || c->valuestring == NULL)
            return jsonfile_fail(p, field,
                                 "is %s; expected a variable name ([A-Z_][A-Z0-9_]{0,63})",
                                 jsonfile_kind(c));
        const char *name = c->valuestring;
        if (!tool_credential_name_valid(name))
            return jsonfile_fail(
                p, field, "'%s' is not a valid variable name (accepted: [A-Z_][A-Z0-9_]{0,63})",
                jsonfile_clip(name, clip));
        if (jsonfile_in(RESERVED_ENV, name)) {
            char list[128];
            return jsonfile_fail(p, field, "'%s' is set by memchat for every tool (reserved: %s)",
                                 name, jsonfile_join(RESERVED_ENV, list, sizeof list));
        }
        for (size_t j = 0; j < t->n_credentials; j++)
            if (strcmp(t->credentials[j], name) == 0)
                return jsonfile_fail(p, field, "'%s' is also credentials[%zu] (names are distinct)",
                                     name, j);
        t->credentials[t->n_credentials++] = xstrdup(name);
    }
    return 0;
}

/* The optional limits and flags: timeout_ms, output_max_bytes, read_only,
 * credentials. */
static int tool_parse_options(struct jsonfile_parse *p, const cJSON *root, struct tool_def *t)
{
    const cJSON *it;
    double v;
    if ((it = jsonfile_opt(root, "timeout_ms")) != NULL) {
        if (jsonfile_number(p, "timeout_ms", it, 1, TOOL_TIMEOUT_MAX, true, &v) != 0)
            return -1;
        t->timeout_ms = (long long)v;
    }
    if ((it = jsonfile_opt(root, "output_max_bytes")) != NULL) {
        if (jsonfile_number(p, "output_max_bytes", it, 1, TOOL_OUTPUT_MAX, true, &v) != 0)
            return -1;
        t->output_max = (size_t)v;
    }
    if ((it = jsonfile_opt(root, "read_only")) != NULL &&
        jsonfile_bool(p, "read_only", it, &t->read_only) != 0)
        return -1;
    if ((it = jsonfile_opt(root, "credentials")) != NULL && tool_parse_credentials(p, it, t) != 0)
        return -1;
    return 0;
}

/* Fills t from the parsed root object of a file in dir. */
static int tool_parse_json(struct jsonfile_parse *p, const cJSON *root, const char *dir,
                           struct tool_def *t)
{
    if (!cJSON_IsObject(root))
        return jsonfile_fail(p, NULL,
                             "is %s, not a JSON object (a tool file is one object: {\"name\": ..., "
                             "\"description\": ..., \"parameters\": ..., \"command\": [...]})",
                             jsonfile_kind(root));
    if (jsonfile_check_keys(p, root, "", TOP_KEYS) != 0)
        return -1;
    if (tool_parse_name(p, cJSON_GetObjectItemCaseSensitive(root, "name"), t) != 0)
        return -1;
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, "description");
    if (it == NULL)
        return jsonfile_fail(p, "description", "missing (%s)", REQUIRED);
    if (jsonfile_string(p, "description", it, TOOL_DESC_MAX, JSONFILE_NONEMPTY, &t->description) !=
        0)
        return -1;
    if (tool_parse_schema(p, cJSON_GetObjectItemCaseSensitive(root, "parameters"), t) != 0)
        return -1;
    if (tool_parse_command(p, cJSON_GetObjectItemCaseSensitive(root, "command"), dir, t) != 0)
        return -1;
    return tool_parse_options(p, root, t);
}

/* A new definition with the defaults of a file tool. */
static struct tool_def *tool_def_new(enum tool_source src, const char *path)
{
    struct tool_def *t = xcalloc(1, sizeof *t);
    t->timeout_ms = TOOL_TIMEOUT_DEFAULT;
    t->output_max = TOOL_OUTPUT_DEFAULT;
    t->read_only = false;
    t->source = src;
    t->path = xstrdup(path);
    return t;
}

/* Reads and parses the file p->path of dir; NULL when it is skipped. */
static struct tool_def *tool_parse_file(struct jsonfile_parse *p, const char *dir,
                                        enum tool_source src)
{
    cJSON *root = NULL;
    if (jsonfile_load(p, TOOL_FILE_MAX, &root) != 0)
        return NULL;
    struct tool_def *t = tool_def_new(src, p->path);
    int rc = tool_parse_json(p, root, dir, t);
    cJSON_Delete(root);
    if (rc != 0) {
        tool_def_free(t);
        return NULL;
    }
    return t;
}

/* ---- loading the directories ----------------------------------------- */

/* Adds t, parsed from p, to the load in l, unless a built-in or the same
 * directory already has its name. Takes t. */
static void tools_add(const struct tool_registry *r, struct tool_list *l, struct tool_def *t,
                      struct jsonfile_parse *p, struct jsonfile_warnings *w)
{
    if (tool_list_find(&r->builtins, t->name) != NULL) {
        jsonfile_warnings_addf(w,
                               "%s: field name: '%s' is the name of a built-in tool; this file is "
                               "skipped (built-in tools cannot be replaced)",
                               p->path, t->name);
        tool_def_free(t);
        return;
    }
    struct tool_def *old = tool_list_find(l, t->name);
    if (old != NULL && old->source == t->source) {
        jsonfile_warnings_addf(w,
                               "%s: field name: tool '%s' is already defined by %s; this file is "
                               "skipped (tool names are unique in a directory)",
                               p->path, t->name, old->path);
        tool_def_free(t);
        return;
    }
    /* The file's warnings count only for a tool that is kept. */
    jsonfile_warnings_merge(w, p);
    if (old == NULL) {
        tool_list_push(l, t);
        return;
    }
    /* A user file replacing a shipped tool: by design, not a warning. */
    for (size_t i = 0; i < l->n; i++) {
        if (l->v[i] == old) {
            tool_def_free(old);
            l->v[i] = t;
            t->overrides = true;
            return;
        }
    }
}

/* Loads every tool file of dir into l. 0, or -1 with err when dir exists
 * but cannot be read. */
static int tools_load_dir(const struct tool_registry *r, struct tool_list *l, const char *dir,
                          enum tool_source src, struct jsonfile_warnings *w, char *err,
                          size_t errlen)
{
    char **names;
    size_t n;
    int rc = jsonfile_list_dir(dir, "tools", &names, &n, err, errlen);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    if (n > JSONFILE_MAX_FILES)
        jsonfile_warnings_addf(w, "%s: %zu tool files; only the first %d by name are read", dir, n,
                               JSONFILE_MAX_FILES);
    for (size_t i = 0; i < n; i++) {
        if (i < JSONFILE_MAX_FILES) {
            char *path = paths_join(dir, names[i]);
            struct jsonfile_parse *p = xmalloc(sizeof *p);
            jsonfile_parse_init(p, path, "a tool", TOOL_FILE_WARNINGS);
            struct tool_def *t = tool_parse_file(p, dir, src);
            if (t != NULL)
                tools_add(r, l, t, p, w);
            else
                jsonfile_warnings_add(w, p->err, false);
            jsonfile_parse_fini(p);
            xfree(p);
            xfree(path);
        }
        xfree(names[i]);
    }
    xfree(names);
    return 0;
}

static int tool_view_cmp(const void *a, const void *b)
{
    return strcmp((*(const struct tool_def *const *)a)->name,
                  (*(const struct tool_def *const *)b)->name);
}

/* Rebuilds what find/at see: the built-ins, then the file tools that do
 * not take a built-in's name (one registered after the load), by name. */
static void tools_rebuild_view(struct tool_registry *r)
{
    xfree(r->view);
    r->view = xcalloc(r->builtins.n + r->files.n + 1, sizeof *r->view);
    r->n_view = 0;
    for (size_t i = 0; i < r->builtins.n; i++)
        r->view[r->n_view++] = r->builtins.v[i];
    for (size_t i = 0; i < r->files.n; i++)
        if (tool_list_find(&r->builtins, r->files.v[i]->name) == NULL)
            r->view[r->n_view++] = r->files.v[i];
    if (r->n_view > 1)
        qsort(r->view, r->n_view, sizeof *r->view, tool_view_cmp);
}

/* Reads both directories; on success replaces the loaded tools. */
static int tools_reload(struct tool_registry *r, int64_t now_ms, char *err, size_t errlen)
{
    struct tool_list l = {0};
    struct jsonfile_warnings w;
    jsonfile_warnings_init(&w, TOOLS_MAX_WARNINGS);
    char *dir = paths_shipped_dir(r->share_dir, "tools");
    int rc = tools_load_dir(r, &l, dir, TOOL_SOURCE_SHIPPED, &w, err, errlen);
    xfree(dir);
    if (rc == 0 && r->config_dir != NULL) {
        dir = paths_join(r->config_dir, "tools");
        rc = tools_load_dir(r, &l, dir, TOOL_SOURCE_USER, &w, err, errlen);
        xfree(dir);
    }
    if (rc != 0) {
        /* The last good load stays (and its pointers stay valid); the
         * next refresh tries again. */
        jsonfile_warnings_free(&w);
        tool_list_clear(&l);
        return -1;
    }
    tool_list_clear(&r->files);
    r->files = l;
    xfree(r->warnings);
    r->warnings = jsonfile_warnings_take(&w);
    r->loaded = true;
    r->loaded_at = now_ms;
    tools_rebuild_view(r);
    /* once in the log: a turn has no one to show them to, and `memchat
     * tools list` prints them itself */
    log_warn_lines(__func__, "tools", r->warnings);
    return 0;
}

/* ---- the built-in time_now ------------------------------------------- */

/* "+0100" (strftime's %z) as "+01:00" (ISO 8601 extended). */
static void tool_offset_colon(const char *z, char out[16])
{
    if (strlen(z) == 5)
        snprintf(out, 16, "%.3s:%.2s", z, z + 3);
    else
        snprintf(out, 16, "%s", z);
}

/* time_now: {"utc", "unix_ms", "local", "timezone"} from one reading of
 * the wall clock. */
static int tool_time_now(void *ud, void *ctx, const char *args_json, struct buf *out, char *err,
                         size_t errlen)
{
    (void)ud;
    (void)ctx;
    (void)args_json;
    int64_t ms = clock_wall_ms();
    time_t secs = (time_t)(ms / 1000);
    struct tm utc, local;
    tzset(); /* localtime_r need not look at TZ again by itself */
    if (gmtime_r(&secs, &utc) == NULL || localtime_r(&secs, &local) == NULL) {
        snprintf(err, errlen, "time_now: the clock cannot be converted to a date");
        return -1;
    }
    /* The buffers fit every year strftime can print here, so none of
     * these fails; an empty %Z (no zone name known) is left empty. */
    char u[40] = "", l[40] = "", z[16] = "", off[16], zone[64] = "";
    (void)strftime(u, sizeof u, "%Y-%m-%dT%H:%M:%SZ", &utc);
    (void)strftime(l, sizeof l, "%Y-%m-%dT%H:%M:%S", &local);
    (void)strftime(z, sizeof z, "%z", &local);
    (void)strftime(zone, sizeof zone, "%Z", &local);
    tool_offset_colon(z, off);
    char local_iso[64];
    snprintf(local_iso, sizeof local_iso, "%s%s", l, off);
    cJSON *o = cJSON_CreateObject();
    bool ok = o != NULL && cJSON_AddStringToObject(o, "utc", u) != NULL &&
              cJSON_AddNumberToObject(o, "unix_ms", (double)ms) != NULL &&
              cJSON_AddStringToObject(o, "local", local_iso) != NULL &&
              cJSON_AddStringToObject(o, "timezone", zone) != NULL;
    char *text = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (text == NULL) {
        snprintf(err, errlen, "time_now: out of memory");
        return -1;
    }
    enum buf_result br = buf_puts(out, text);
    cJSON_free(text);
    if (br != BUF_OK) {
        snprintf(err, errlen, "time_now: the answer does not fit");
        return -1;
    }
    return 0;
}

/* ---- the public API --------------------------------------------------- */

struct tool_registry *tool_registry_new(const char *share_dir, const char *config_dir,
                                        long long ttl_ms)
{
    struct tool_registry *r = xcalloc(1, sizeof *r);
    r->share_dir = share_dir != NULL && share_dir[0] != '\0' ? xstrdup(share_dir) : NULL;
    r->config_dir = config_dir != NULL && config_dir[0] != '\0' ? xstrdup(config_dir) : NULL;
    r->ttl_ms = ttl_ms > 0 ? ttl_ms : 0;
    char err[256];
    if (tool_registry_add_builtin(r, "time_now", TIME_NOW_DESC, TIME_NOW_PARAMS, true,
                                  tool_time_now, NULL, err, sizeof err) != 0)
        alloc_die("tool_registry_new: time_now"); /* only a broken constant gets here */
    return r;
}

void tool_registry_free(struct tool_registry *r)
{
    if (r == NULL)
        return;
    tool_list_clear(&r->builtins);
    tool_list_clear(&r->files);
    xfree(r->view);
    xfree(r->warnings);
    xfree(r->share_dir);
    xfree(r->config_dir);
    xfree(r);
}

/* Checks a built-in's schema text; its minified copy into *out. */
static int tool_builtin_schema(const char *parameters, char **out, char *err, size_t errlen)
{
    size_t n = parameters != NULL ? strlen(parameters) : 0;
    if (n == 0 || !jsonmin_is_json(parameters, n)) {
        snprintf(err, errlen, "the parameters of a built-in tool must be JSON");
        return -1;
    }
    cJSON *o = cJSON_ParseWithLength(parameters, n);
    bool object = cJSON_IsObject(o);
    const cJSON *type = object ? cJSON_GetObjectItemCaseSensitive(o, "type") : NULL;
    bool ok = object && cJSON_IsString(type) && strcmp(type->valuestring, "object") == 0;
    cJSON_Delete(o);
    if (!ok) {
        snprintf(err, errlen,
                 "the parameters of a built-in tool must be a schema object of type \"object\"");
        return -1;
    }
    *out = xmalloc(n + 1);
    size_t m = jsonmin_value(parameters, n, *out);
    (*out)[m] = '\0';
    return 0;
}

int tool_registry_add_builtin(struct tool_registry *r, const char *name, const char *description,
                              const char *parameters, bool read_only, tool_builtin_fn fn, void *ud,
                              char *err, size_t errlen)
{
    if (!tool_name_valid(name)) {
        snprintf(err, errlen, "invalid built-in tool name (accepted: 1 to %d of A-Z a-z 0-9 _ -)",
                 TOOL_NAME_MAX);
        return -1;
    }
    if (tool_list_find(&r->builtins, name) != NULL) {
        snprintf(err, errlen, "a built-in tool named %s is already registered", name);
        return -1;
    }
    if (fn == NULL || description == NULL || description[0] == '\0') {
        snprintf(err, errlen, "built-in tool %s needs a function and a description", name);
        return -1;
    }
    char *schema = NULL;
    if (tool_builtin_schema(parameters, &schema, err, errlen) != 0)
        return -1;
    struct tool_def *t = tool_def_new(TOOL_SOURCE_BUILTIN, TOOL_BUILTIN_PATH);
    t->name = xstrdup(name);
    t->description = xstrdup(description);
    t->parameters = schema;
    t->read_only = read_only;
    t->timeout_ms = 0; /* a function call: no process to kill */
    t->builtin = fn;
    t->builtin_ud = ud;
    tool_list_push(&r->builtins, t);
    /* Seen at once; a loaded file tool of this name drops out of the view
     * (it stays allocated until the next reload, as promised). */
    tools_rebuild_view(r);
    return 0;
}

int tool_registry_refresh(struct tool_registry *r, int64_t now_ms, bool force, char *err,
                          size_t errlen)
{
    if (r->loaded && !force && now_ms - r->loaded_at < r->ttl_ms)
        return 0;
    return tools_reload(r, now_ms, err, errlen);
}

const char *tool_registry_warnings(const struct tool_registry *r)
{
    return r != NULL ? r->warnings : NULL;
}

const struct tool_def *tool_registry_find(const struct tool_registry *r, const char *name)
{
    if (r == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < r->n_view; i++)
        if (strcmp(r->view[i]->name, name) == 0)
            return r->view[i];
    return NULL;
}

size_t tool_registry_count(const struct tool_registry *r)
{
    return r != NULL ? r->n_view : 0;
}

const struct tool_def *tool_registry_at(const struct tool_registry *r, size_t i)
{
    return r != NULL && i < r->n_view ? r->view[i] : NULL;
}

/* Adds an array of n strings under key. */
static bool tool_json_strings(cJSON *o, const char *key, char *const *v, size_t n)
{
    cJSON *arr = cJSON_AddArrayToObject(o, key);
    if (arr == NULL)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!cJSON_AddItemToArray(arr, cJSON_CreateString(v[i])))
            return false;
    return true;
}

struct cJSON *tool_def_to_json(const struct tool_def *t)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    bool builtin = t->source == TOOL_SOURCE_BUILTIN;
    bool ok = cJSON_AddStringToObject(o, "name", t->name) != NULL &&
              cJSON_AddStringToObject(o, "description", t->description) != NULL &&
              cJSON_AddStringToObject(o, "source", tool_source_name(t->source)) != NULL &&
              (builtin ? cJSON_AddNullToObject(o, "path")
                       : cJSON_AddStringToObject(o, "path", t->path)) != NULL &&
              cJSON_AddBoolToObject(o, "overrides", t->overrides) != NULL &&
              cJSON_AddBoolToObject(o, "read_only", t->read_only) != NULL;
    ok = ok && (t->argv != NULL ? tool_json_strings(o, "command", t->argv, t->argc)
                                : cJSON_AddNullToObject(o, "command") != NULL);
    ok = ok && (t->timeout_ms > 0 ? cJSON_AddNumberToObject(o, "timeout_ms", (double)t->timeout_ms)
                                  : cJSON_AddNullToObject(o, "timeout_ms")) != NULL;
    ok = ok && cJSON_AddNumberToObject(o, "output_max_bytes", (double)t->output_max) != NULL;
    ok = ok && tool_json_strings(o, "credentials", t->credentials, t->n_credentials);
    cJSON *schema = ok ? cJSON_Parse(t->parameters) : NULL;
    if (schema != NULL && !cJSON_AddItemToObject(o, "parameters", schema)) {
        cJSON_Delete(schema);
        schema = NULL;
    }
    if (schema == NULL) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}
