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
struct session;
struct buf;
struct cJSON;

/* The options a verb may take, one bit each (cli.c's table says which
 * verb takes which; verbs with actions check theirs with cli_refuse_opts). */
enum cli_opt_bit {
    CLI_OPT_JSON = 1 << 0,
    CLI_OPT_PLAIN = 1 << 1,
    CLI_OPT_TENANT = 1 << 2,
    CLI_OPT_USER = 1 << 3,
    CLI_OPT_AGENT = 1 << 4,
    CLI_OPT_NO_MEMORY = 1 << 5,
    CLI_OPT_MODEL = 1 << 6, /* --provider --model --temperature --max-tokens */
    CLI_OPT_COSTS = 1 << 7, /* --by --since (passed to the verb in o->args) */
    CLI_OPT_PASS = 1 << 8,  /* --passphrase-stdin */
    CLI_OPT_KEYS = 1 << 9,  /* keys: --provider --command --passphrase */
    CLI_OPT_META = 1 << 10, /* memory add: --meta KEY=VALUE (repeatable) */
    CLI_OPT_K = 1 << 11,    /* memory search: --k N */
    CLI_OPT_METHOD = 1 << 12,
    CLI_OPT_FILTER = 1 << 13,
    CLI_OPT_ID = 1 << 14,
    CLI_OPT_LIMIT = 1 << 15,
    CLI_OPT_YES = 1 << 16,     /* purge, ask: --yes */
    CLI_OPT_CONV = 1 << 17,    /* ask: --continue, --conversation ID */
    CLI_OPT_COMPARE = 1 << 18, /* ask: --compare */
    CLI_OPT_REBUILD = 1 << 19, /* memory index: --rebuild */
    CLI_OPT_FROM = 1 << 20,    /* memory migrate: --from STORE */
    CLI_OPT_TO = 1 << 21,      /* memory migrate: --to STORE */
    CLI_OPT_BATCH = 1 << 22,   /* memory migrate, reembed: --batch N */
    CLI_OPT_RESTART = 1 << 23, /* memory migrate: --restart */
    CLI_OPT_FORCE = 1 << 24,   /* memory reembed: --force */
    CLI_OPT__COUNT = 25,
};
#define CLI_OPT_IDS (CLI_OPT_TENANT | CLI_OPT_USER | CLI_OPT_AGENT)

/* Options shared by the verbs; each verb accepts a subset (see cli.c).
 * Strings point into argv. */
struct cli_opts {
    unsigned seen;                  /* enum cli_opt_bit of the options given */
    bool json;                      /* --json */
    bool plain;                     /* --plain */
    enum mc_memory_override memory; /* --no-memory */
    bool pass_stdin;                /* --passphrase-stdin: the keystore's passphrase from stdin */
    bool passphrase;                /* keys: --passphrase (init, rotate) */
    const char *key_provider;       /* keys: --provider */
    const char *key_command;        /* keys set: --command */
    const char **meta;              /* memory add: --meta KEY=VALUE, in order */
    size_t n_meta;
    const char *k;            /* memory search: --k */
    const char *method;       /* memory search: --method */
    const char *filter;       /* memory search/forget/export: --filter */
    const char *id;           /* memory forget: --id */
    const char *limit;        /* memory history, conversations: --limit */
    bool yes;                 /* purge: --yes; ask: run tools that are not read-only */
    bool rebuild;             /* memory index: --rebuild */
    const char *from, *to;    /* memory migrate: --from, --to */
    const char *batch;        /* memory migrate, reembed: --batch */
    bool restart;             /* memory migrate: --restart */
    bool force;               /* memory reembed: --force */
    bool continue_latest;     /* ask: --continue */
    const char *conversation; /* ask: --conversation ID */
    bool compare;             /* ask: --compare */
    char **args;              /* positional arguments after the verb */
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
int cmd_memory(const struct config *cfg, const struct cli_opts *o);
int cmd_conversations(const struct config *cfg, const struct cli_opts *o);
int cmd_purge(const struct config *cfg, const struct cli_opts *o);
int cmd_agents(const struct config *cfg, const struct cli_opts *o);
int cmd_tools(const struct config *cfg, const struct cli_opts *o);
int cmd_rollout(const struct config *cfg, const struct cli_opts *o);
int cmd_doctor(const struct config *cfg, const struct cli_opts *o);

/* Refuses (usage message naming `what`, e.g. "memory add", and returns
 * MC_EXIT_USAGE) the options in seen that are not in allowed; MC_EXIT_OK
 * when there are none. */
int cli_refuse_opts(const char *what, unsigned allowed, unsigned seen);

/* What the memory verbs share (cli/cmd_memory.c). */
/* Submits job on s's engine and waits for its answer. On a `result`,
 * *items is its items array (detached: the caller frees it with
 * cJSON_Delete) and MC_EXIT_OK is returned; on an `error` event, or a job
 * refused at submission, the message goes to stderr and the error's exit
 * code is returned (*items NULL); Ctrl-C stops waiting (130). */
int cli_memory_job(struct session *s, const struct mc_memory_job *job, struct cJSON **items);
/* Waits for the answer of the job id already submitted on s: as
 * cli_memory_job, also printing the job's events as JSON lines when
 * print_json is set. */
int cli_job_wait(struct session *s, const char *id, bool print_json, struct cJSON **items);
/* Prints every element of items as one line of compact JSON. */
void cli_print_items(const struct cJSON *items);
/* The columns a table may use: stdout's width on a terminal, else 100. */
size_t cli_table_width(void);
/* Appends untrusted text to out as one table cell: sanitised for the
 * terminal (util/utf8.h), whitespace runs folded to one space, and cut to
 * at most cols columns (one per code point) ending in "…" when cut. */
void cli_put_cell(struct buf *out, const char *text, size_t cols);
/* Unix milliseconds as "YYYY-MM-DD HH:MM" (UTC) into out; "-" for 0. */
const char *cli_format_time(int64_t ms, char *out, size_t outlen);
/* Parses a count option's value (--k, --limit) within [min, max]. 0, or
 * MC_EXIT_USAGE after saying why. */
int cli_parse_count(const char *opt, const char *value, long min, long max, long *out);

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
