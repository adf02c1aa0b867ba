/* memchat's entry point: it only dispatches to a front end (src/cli), after
 * arming the fault-injection seams when the hardening sweeps ask for it
 * (docs/reliability.md); they cost nothing when the variables are unset. */
#include "config.h"

#include <stdio.h>

#include "cli/cli.h"
#include "util/alloc.h"
#include "util/iofault.h"

int main(int argc, char **argv)
{
    char err[256];
    if (alloc_setup_env(err, sizeof err) != 0) {
        fprintf(stderr, "memchat: %s\n", err);
        return 2;
    }
    if (iofault_setup_env(err, sizeof err) != 0) {
        fprintf(stderr, "memchat: %s\n", err);
        return 2;
    }
    return cli_main(argc, argv);
}
