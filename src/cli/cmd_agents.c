/* Placeholder: memchat agents (a helper replaces this file). */
#include "config.h"

#include <stdio.h>

#include "cli/cli.h"
#include "memchat/error.h"

int cmd_agents(const struct config *cfg, const struct cli_opts *o)
{
    (void)cfg;
    (void)o;
    fprintf(stderr, "memchat: agents: not built yet\n");
    return MC_EXIT_RUNTIME;
}
