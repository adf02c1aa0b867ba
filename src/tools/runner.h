/*
 * Running one tool call (the tools issue). A built-in is a function call. A
 * file tool is its executable, started without a shell in its own process
 * group, that reads the arguments (one JSON object) on stdin and answers
 * one JSON value on stdout, within the tool's timeout and output cap.
 *
 * The child's environment is built, not inherited: PATH, HOME, LANG, LC_ALL,
 * LC_CTYPE, TZ and TMPDIR when set, MEMCHAT_TOOL=<name>, and the tool's own
 * credentials, so no provider key or other secret of memchat's environment
 * reaches a tool, and a tool sees only the credentials it declared. Its
 * stderr is kept (at most 4 KiB) with every credential value it was given
 * replaced by "****", for the error message and the log. The working
 * directory is memchat's.
 */
#ifndef MEMCHAT_TOOLS_RUNNER_H
#define MEMCHAT_TOOLS_RUNNER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "tools/registry.h"
#include "util/buf.h"

/* How a call ended. */
enum tool_status {
    TOOL_OK,
    TOOL_BAD_ARGS,   /* the arguments are not one JSON object (the model's fault) */
    TOOL_FAILED,     /* exited non-zero or by a signal, or a built-in said no */
    TOOL_TIMEOUT,    /* killed at its timeout */
    TOOL_TOO_BIG,    /* printed more than its output cap: killed */
    TOOL_BAD_OUTPUT, /* exited 0 but stdout is not one JSON value (or not UTF-8) */
    TOOL_CANCELLED,  /* the turn was cancelled: killed */
    TOOL_NO_START,   /* the executable could not be started */
};

/* What a run gets besides the tool and its arguments. Borrowed for the
 * call. */
struct tool_env {
    void *ctx; /* handed to a built-in (e.g. the turn's tenant and user) */
    /* The credentials to put in a file tool's environment: names[i] =
     * values[i]; values are secrets (wiped by the caller). */
    const char *const *cred_names;
    const char *const *cred_values;
    size_t n_creds;
    /* Set from another thread to stop the call: the child's process group
     * is killed within about 100 ms. NULL: never cancelled. */
    const atomic_bool *cancel;
};

struct tool_result {
    enum tool_status status;
    struct buf output; /* TOOL_OK: the JSON value, minified; else empty */
    /* Not TOOL_OK: one line for the model and the user, naming the tool and
     * what went wrong ("tool weather timed out after 10000 ms", "tool x
     * exited with status 2: <first line of its stderr>"); never the output
     * or a credential. */
    char error[768];
    int exit_status;   /* the exit status, or -1 (a signal, a built-in, not run) */
    double latency_ms; /* spawn (or call) to the end */
};

/* Initialises res (empty output, status TOOL_OK). */
void tool_result_init(struct tool_result *res);
/* Frees res's output; the struct may be initialised again. */
void tool_result_free(struct tool_result *res);

/* Runs t with args_json (the model's arguments text, checked here: it must
 * parse as a JSON object) and fills res. Returns res->status. Thread-safe:
 * no global state (the caller must not reap children wholesale, see
 * util/runcmd.h). */
enum tool_status tool_run(const struct tool_def *t, const char *args_json,
                          const struct tool_env *env, struct tool_result *res);

/* "ok", "bad_args", "failed", "timeout", "too_big", "bad_output",
 * "cancelled", "no_start". */
const char *tool_status_name(enum tool_status s);

#endif
