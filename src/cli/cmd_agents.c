/*
 * memchat agents [--json]: the agents this configuration can run, shipped
 * ones and the user's own (agents/agent.h), as a table or, with --json, one
 * object per line (agent_to_json).
 *
 * Reading the agent files has no side effects, so the verb loads the
 * registry itself and never starts the engine. A malformed file is a
 * warning on stderr naming the file and the field; the other agents are
 * still listed and the exit code stays 0, so a typo in one file does not
 * hide the rest. Only a directory that exists but cannot be read fails
 * (exit 1). Warnings quote file names and keys from files, so they go
 * through the terminal sanitiser before they are printed.
 */
#include "config.h"

#include <cJSON.h>
#include <stdio.h>
#include <string.h>

#include "agents/agent.h"
#include "cli/cli.h"
#include "cli/session.h"
#include "config/config.h"
#include "config/vars.h"
#include "memchat/error.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/utf8.h"

/* The fixed columns: MEMORY, STEPS, SOURCE. */
#define AGENTS_COL_MEMORY 6
#define AGENTS_COL_STEPS  5
#define AGENTS_COL_SOURCE 7
#define AGENTS_MIN_DESC   16

static void agents_print_json(const struct agents *r)
{
    for (size_t i = 0; i < agents_count(r); i++) {
        cJSON *o = agent_to_json(agents_at(r, i));
        char *line = o != NULL ? cJSON_PrintUnformatted(o) : NULL;
        if (line != NULL)
            puts(line);
        else
            session_error("agents: out of memory printing agent %s", agents_at(r, i)->name);
        cJSON_free(line);
        cJSON_Delete(o);
    }
}

static void agents_print_table(const struct agents *r)
{
    size_t name_cols = 4; /* "NAME" */
    bool any_override = false;
    for (size_t i = 0; i < agents_count(r); i++) {
        const struct agent *a = agents_at(r, i);
        size_t n = strlen(a->name); /* an id: ASCII, one column per byte */
        if (n > name_cols)
            name_cols = n;
        any_override = any_override || a->overrides;
    }
    size_t fixed = name_cols + AGENTS_COL_MEMORY + AGENTS_COL_STEPS + AGENTS_COL_SOURCE + 4 * 2;
    size_t width = cli_table_width();
    size_t desc_cols = width > fixed + AGENTS_MIN_DESC ? width - fixed : AGENTS_MIN_DESC;
    printf("%-*s  %-*s  %*s  %-*s  %s\n", (int)name_cols, "NAME", AGENTS_COL_MEMORY, "MEMORY",
           AGENTS_COL_STEPS, "STEPS", AGENTS_COL_SOURCE, "SOURCE", "DESCRIPTION");
    for (size_t i = 0; i < agents_count(r); i++) {
        const struct agent *a = agents_at(r, i);
        char steps[24];
        if (a->n_steps > 0)
            snprintf(steps, sizeof steps, "%zu", a->n_steps);
        else
            snprintf(steps, sizeof steps, "-");
        char source[16];
        snprintf(source, sizeof source, "%s%s", agent_source_name(a->source),
                 a->overrides ? "*" : "");
        struct buf line;
        buf_init(&line, 1 << 16);
        buf_printf(&line, "%-*s  %-*s  %*s  %-*s  ", (int)name_cols, a->name, AGENTS_COL_MEMORY,
                   a->memory ? "on" : "off", AGENTS_COL_STEPS, steps, AGENTS_COL_SOURCE, source);
        cli_put_cell(&line, a->description != NULL ? a->description : "", desc_cols);
        while (line.len > 0 && line.data[line.len - 1] == ' ')
            line.data[--line.len] = '\0';
        puts(buf_cstr(&line));
        buf_free(&line);
    }
    if (any_override)
        puts("* your file in the config dir replaces the shipped agent of the same name");
}

int cmd_agents(const struct config *cfg, const struct cli_opts *o)
{
    if (o->n_args > 0) {
        session_error("agents takes no arguments (got '%s'; memchat agents --help)", o->args[0]);
        return MC_EXIT_USAGE;
    }
    char err[1024];
    char *warnings = NULL;
    struct agents *r =
        agents_load(config_str(cfg, CFG_MEMCHAT_SHARE_DIR), config_str(cfg, CFG_MEMCHAT_CONFIG_DIR),
                    &warnings, err, sizeof err);
    if (r == NULL) {
        session_error("agents: %s", err);
        return MC_EXIT_RUNTIME;
    }
    session_print_lines("agents", warnings);
    xfree(warnings);
    if (o->json)
        agents_print_json(r);
    else
        agents_print_table(r);
    agents_free(r);
    return fflush(stdout) == 0 ? MC_EXIT_OK : MC_EXIT_RUNTIME;
}
