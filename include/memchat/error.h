/*
 * memchat error codes: the one documented list of `error` event codes, each
 * with the exit code a verb ends with when it sees it (DESIGN.md, exit codes).
 * The list is append-only; docs/errors.md is generated from the same table.
 */
#ifndef MEMCHAT_ERROR_H
#define MEMCHAT_ERROR_H

/* Exit codes of every verb (the contract). */
enum mc_exit {
    MC_EXIT_OK = 0,
    MC_EXIT_RUNTIME = 1,
    MC_EXIT_USAGE = 2,
    MC_EXIT_PROVIDER = 3,
    MC_EXIT_REFUSED = 4,
    MC_EXIT_CANCELLED = 130,
};

/* X(enum name, "snake_case code", exit code, "what it means") */
#define MC_ERROR_LIST(X)                                                                       \
    X(MC_ERR_NONE, "none", MC_EXIT_OK, "no error")                                             \
    X(MC_ERR_INTERNAL, "internal", MC_EXIT_RUNTIME, "a bug in memchat; please report it")      \
    X(MC_ERR_OUT_OF_MEMORY, "out_of_memory", MC_EXIT_RUNTIME, "an allocation failed")          \
    X(MC_ERR_IO, "io", MC_EXIT_RUNTIME, "reading or writing a file failed")                    \
    X(MC_ERR_DATA_FILE, "data_file", MC_EXIT_RUNTIME,                                          \
      "the data file is damaged, foreign or from a newer memchat; it was left untouched")      \
    X(MC_ERR_USAGE, "usage", MC_EXIT_USAGE, "the command line is wrong")                       \
    X(MC_ERR_CONFIG, "config", MC_EXIT_USAGE, "a setting is malformed or out of range")        \
    X(MC_ERR_INPUT, "input", MC_EXIT_USAGE, "the input is too large or not valid UTF-8")       \
    X(MC_ERR_PROVIDER, "provider", MC_EXIT_PROVIDER, "the model provider refused or failed")   \
    X(MC_ERR_NETWORK, "network", MC_EXIT_PROVIDER, "the network or the server is unreachable") \
    X(MC_ERR_RATE_LIMITED, "rate_limited", MC_EXIT_REFUSED, "a rate limit refused the turn")   \
    X(MC_ERR_BUDGET, "budget", MC_EXIT_REFUSED, "a budget refused the turn")                   \
    X(MC_ERR_CANCELLED, "cancelled", MC_EXIT_CANCELLED, "the user cancelled")                  \
    X(MC_ERR_MEMORY_BACKEND, "memory_backend", MC_EXIT_PROVIDER,                               \
      "the remote embedder or vector store is unreachable or refused")                         \
    X(MC_ERR_LIMITER_UNAVAILABLE, "limiter_unavailable", MC_EXIT_REFUSED,                      \
      "the shared rate limits or budgets on Redis cannot be used and REDIS_FAILURE=closed")

enum mc_error {
#define MC_X_ENUM(e, code, exitc, doc) e,
    MC_ERROR_LIST(MC_X_ENUM)
#undef MC_X_ENUM
};

/* The snake_case code of e, as in `error` events; never NULL. */
const char *mc_error_code(enum mc_error e);
/* The exit code a verb returns for e. */
int mc_error_exit_code(enum mc_error e);
/* One line describing e, for docs and --help. */
const char *mc_error_doc(enum mc_error e);
/* The error whose code is `code`; MC_ERR_INTERNAL when unknown. */
enum mc_error mc_error_from_code(const char *code);

#endif
