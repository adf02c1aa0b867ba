/*
 * The command-line front end: parses the options, loads the configuration
 * and dispatches to a verb from one table (name, summary, usage, options it
 * takes, handler), which also drives `memchat --help` and `memchat VERB
 * --help`. Verbs print; they never run a turn except through the engine.
 */
#ifndef MEMCHAT_CLI_CLI_H
#define MEMCHAT_CLI_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "memchat/engine.h"

struct config;
struct db;

/* Options shared by the verbs; each verb accepts a subset (see cli.c). */
struct cli_opts {
    bool json;                      /* --json */
    bool plain;                     /* --plain */
    enum mc_memory_override memory; /* --no-memory */
    bool pass_stdin;                /* --passphrase-stdin: the keystore's passphrase from stdin */
    bool passphrase;                /* keys: --passphrase (init, rotate) */
    const char *key_provider;       /* keys: --provider */
    const char *key_command;        /* keys set: --command */
    char **args;                    /* positional arguments after the verb */
    size_t n_args;
};

/* Runs memchat with argv; returns the process exit code (memchat/error.h). */
int cli_main(int argc, char **argv);

/* The verbs. Each returns the exit code. */
int cmd_ask(const struct config *cfg, const struct cli_opts *o);
int cmd_chat(const struct config *cfg, const struct cli_opts *o);
int cmd_config(const struct config *cfg, const struct cli_opts *o);
int cmd_costs(const struct config *cfg, const struct cli_opts *o);
int cmd_limits(const struct config *cfg, const struct cli_opts *o);
int cmd_keys(const struct config *cfg, const struct cli_opts *o);

/* The parts of `memchat costs`, apart for tests (cli/cmd_costs.c). */
/* Picks --by and --since out of o->args ("--by X" or "--by=X"; pointers
 * into it, NULL when absent). 0, or -1 with a message. */
int costs_parse_args(const struct cli_opts *o, const char **by, const char **since, char *err,
                     size_t errlen);
/* "all" (INT64_MIN) or a duration in the configuration syntax (N, or N and
 * one of s m h d w) as the start of a window ending at now_ms. 0, or -1. */
int costs_parse_since(const char *s, int64_t now_ms, int64_t *since_ms, char *err, size_t errlen);
/* Writes the report on db (NULL: no data file, an empty report) to out;
 * by/since NULL mean tenant and 30d. Returns MC_EXIT_OK, MC_EXIT_USAGE (bad
 * --by or --since) or MC_EXIT_RUNTIME, with err set. */
int costs_report(struct db *db, const char *by, const char *since, bool json, int64_t now_ms,
                 FILE *out, char *err, size_t errlen);

#endif
