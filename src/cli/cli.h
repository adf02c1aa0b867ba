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

#include "memchat/engine.h"

struct config;

/* Options shared by the verbs; each verb accepts a subset (see cli.c). */
struct cli_opts {
    bool json;                      /* --json */
    bool plain;                     /* --plain */
    enum mc_memory_override memory; /* --no-memory */
    char **args;                    /* positional arguments after the verb */
    size_t n_args;
};

/* Runs memchat with argv; returns the process exit code (memchat/error.h). */
int cli_main(int argc, char **argv);

/* The verbs. Each returns the exit code. */
int cmd_ask(const struct config *cfg, const struct cli_opts *o);
int cmd_chat(const struct config *cfg, const struct cli_opts *o);
int cmd_config(const struct config *cfg, const struct cli_opts *o);

#endif
