/*
 * The TUI's commands and keys: one table each, which drive dispatch, the
 * /help overlay and Tab completion alike (tmux's cmd_table). Parsing a
 * line into a command and its argument needs no screen, so it is tested
 * directly; running one calls the app (internal.h).
 */
#ifndef MEMCHAT_TUI_CMDS_H
#define MEMCHAT_TUI_CMDS_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

struct tui;

/* Whether a command takes an argument. */
enum cmd_arg { CMD_ARG_NONE, CMD_ARG_OPTIONAL, CMD_ARG_REQUIRED };

/* What Tab completes in a command's argument. */
enum cmd_complete {
    CMD_COMPLETE_NONE,
    CMD_COMPLETE_AGENT,
    CMD_COMPLETE_MODEL,
    CMD_COMPLETE_PROVIDER,
    CMD_COMPLETE_THEME,
    CMD_COMPLETE_MEMORY, /* on, off, default */
    CMD_COMPLETE_TENANT, /* the tenants seen in this session */
    CMD_COMPLETE_FILE,
};

struct cmd_entry {
    const char *name; /* without the slash */
    const char *args; /* the argument as help shows it, "" for none */
    enum cmd_arg arg;
    enum cmd_complete complete;
    const char *help;
    /* Runs the command; arg is NULL when none was given. */
    void (*exec)(struct tui *t, const char *arg);
};

/* A key the TUI binds, as a named readline function users may rebind in
 * ~/.inputrc (`$if memchat` ... `"\e[17~": memchat-focus-next`). */
struct key_entry {
    const char *name;        /* the readline function's name */
    const char *keys;        /* as help shows them ("F6") */
    const char *const *seqs; /* default key sequences, NULL-terminated */
    const char *help;
};

/* The commands, in the order help lists them. */
size_t cmds_count(void);
const struct cmd_entry *cmds_at(size_t i);
/* The command called name (without '/'), or NULL. */
const struct cmd_entry *cmds_find(const char *name);
/* Splits a line that starts with '/' into its command and argument
 * (leading and trailing blanks trimmed; NULL when empty): 0, or -1 with
 * a message in err (unknown command, naming the closest; missing or
 * unexpected argument, with the usage). *arg points into line, which the
 * parse trims in place at the end of the argument. */
int cmds_parse(char *line, const struct cmd_entry **cmd, char **arg, char *err, size_t errlen);
/* The commands whose name starts with prefix (without '/'), in table
 * order, into out (at most max); returns how many there are in all. */
size_t cmds_complete(const char *prefix, const struct cmd_entry **out, size_t max);

size_t keys_count(void);
const struct key_entry *keys_at(size_t i);

/* Appends the help overlay's text: every key, then every command with
 * its usage and help, one per line. */
void cmds_help(struct buf *out);

#endif
