/* memchat's entry point: it only dispatches to a front end (src/cli). */
#include "config.h"

#include "cli/cli.h"

int main(int argc, char **argv)
{
    return cli_main(argc, argv);
}
