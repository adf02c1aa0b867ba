/*
 * The tool registry: tools as data (the tools issue). A tool is a JSON file
 * in the share dir's tools/ (shipped) or the config dir's tools/ (the
 * user's, overriding shipped ones by name), or a built-in that a layer
 * above registers as a callback (client/ registers memory_search; the
 * registry itself provides time_now). The file format, every field's rules
 * and the error messages are documented at the top of registry.c and in
 * docs/configuration.md ("Tools").
 *
 * A malformed file is reported ("PATH: field F: what is wrong (what is
 * accepted)") and skipped; the other tools still load, as agents do. The
 * registry is cached: tool_registry_refresh() reloads the files only when
 * TOOL_REGISTRY_CACHE_TTL has passed since the last load, so a turn pays
 * for a directory scan at most once a TTL. Not thread-safe: one owner (the
 * turn worker, or a front end's verb).
 */
#ifndef MEMCHAT_TOOLS_REGISTRY_H
#define MEMCHAT_TOOLS_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

#define TOOL_NAME_MAX        64                 /* [A-Za-z0-9_-]{1,64}, as OpenAI accepts */
#define TOOL_FILE_MAX        (1024 * 1024)      /* larger tool files are refused */
#define TOOL_TIMEOUT_DEFAULT 10000              /* ms, when the file gives none */
#define TOOL_TIMEOUT_MAX     600000             /* ms */
#define TOOL_OUTPUT_DEFAULT  65536              /* bytes of stdout, when the file gives none */
#define TOOL_OUTPUT_MAX      (16 * 1024 * 1024) /* the largest output_max_bytes accepted */
#define TOOL_ARGV_MAX        64                 /* command words */
#define TOOL_CREDS_MAX       16                 /* credentials a tool may need */

/* Where a tool came from. */
enum tool_source { TOOL_SOURCE_BUILTIN, TOOL_SOURCE_SHIPPED, TOOL_SOURCE_USER };

/* What a built-in tool's call gets: the turn's context (ctx, whatever the
 * registering layer passed to tool_run's env), the arguments (a JSON
 * object, already parsed and valid), and out for its answer, which must be
 * one JSON value. Returns 0, or -1 with a message for the model and the
 * user in err (never a secret). */
typedef int (*tool_builtin_fn)(void *ud, void *ctx, const char *args_json, struct buf *out,
                               char *err, size_t errlen);

/* One tool. Every string is owned by the registry. */
struct tool_def {
    char *name;
    char *description; /* one paragraph for the model */
    char *parameters;  /* the JSON Schema of the arguments: an object, minified */
    bool read_only;    /* false: asks the user before every call */
    /* A file tool: the executable and its arguments (argv[0] is an
     * absolute path: a relative one in the file is resolved against the
     * file's directory), NULL-terminated. NULL for a built-in. */
    char **argv;
    size_t argc;
    long long timeout_ms; /* whole run, spawn to exit */
    size_t output_max;    /* bytes of stdout kept; more fails the call */
    /* The credentials it needs: environment variable names
     * ([A-Z_][A-Z0-9_]{0,63}), each a keystore record of provider
     * "tool:NAME" and key id the variable's name. */
    char **credentials;
    size_t n_credentials;
    enum tool_source source;
    char *path;              /* the file it came from; "(built-in)" for a built-in */
    bool overrides;          /* a user file that replaced a shipped tool of the same name */
    tool_builtin_fn builtin; /* NULL for a file tool */
    void *builtin_ud;
};

struct tool_registry;

/* A registry over share_dir/tools (share_dir NULL or "": as
 * paths_shipped_dir() finds it) and config_dir/tools (NULL: none), with
 * time_now built in, reloaded at most every ttl_ms (0: at every refresh).
 * Nothing is read until the first tool_registry_refresh(). Free with
 * tool_registry_free. */
struct tool_registry *tool_registry_new(const char *share_dir, const char *config_dir,
                                        long long ttl_ms);
/* Frees r; NULL is a no-op. */
void tool_registry_free(struct tool_registry *r);

/* Registers a built-in tool (copied; parameters must be a JSON object's
 * text). A built-in replaces nothing: a file tool of the same name is
 * skipped with a warning. Seen by find/at at once, also before the first
 * refresh. 0, or -1 with err set (bad name or schema, name taken). */
int tool_registry_add_builtin(struct tool_registry *r, const char *name, const char *description,
                              const char *parameters, bool read_only, tool_builtin_fn fn, void *ud,
                              char *err, size_t errlen);

/* Reloads the files when the cache is older than the TTL (now_ms is a
 * monotonic clock in ms) or force is set. Returns 0; -1 with err set only
 * when a directory exists but cannot be read. Problems with single files
 * are warnings (tool_registry_warnings), never failures. */
int tool_registry_refresh(struct tool_registry *r, int64_t now_ms, bool force, char *err,
                          size_t errlen);
/* The warnings of the last load, one per line ("PATH: field F: ..."), or
 * NULL when none. Owned by r, valid until the next refresh that reloads. */
const char *tool_registry_warnings(const struct tool_registry *r);

/* The tool called name, or NULL. Valid until the next refresh that
 * reloads (a refresh within the TTL keeps every pointer), or free. */
const struct tool_def *tool_registry_find(const struct tool_registry *r, const char *name);
/* How many tools, and the i-th in name order (built-ins included). */
size_t tool_registry_count(const struct tool_registry *r);
const struct tool_def *tool_registry_at(const struct tool_registry *r, size_t i);

/* One tool as a JSON object for `memchat tools list --json`: name,
 * description, source, path, overrides, read_only, command (argv array or
 * null), timeout_ms, output_max_bytes, credentials (names), parameters (the
 * schema object). Caller frees with cJSON_Delete. NULL only when out of
 * memory. */
struct cJSON *tool_def_to_json(const struct tool_def *t);
/* "builtin", "shipped" or "user". */
const char *tool_source_name(enum tool_source s);
/* True when name matches [A-Za-z0-9_-]{1,64}. */
bool tool_name_valid(const char *name);
/* True when name is a credential variable name: [A-Z_][A-Z0-9_]{0,63}. */
bool tool_credential_name_valid(const char *name);

#endif
