/* Placeholder: memchat rollout (a helper replaces this file). */
#include "config.h"

#include <stdio.h>

#include "cli/cli.h"
#include "memchat/error.h"

int cmd_rollout(const struct config *cfg, const struct cli_opts *o)
{
    (void)cfg;
    (void)o;
    fprintf(stderr, "memchat: rollout: not built yet\n");
    return MC_EXIT_RUNTIME;
}
