/*
 * The command-line front end: parses global options, loads the
 * configuration and dispatches to a verb (ask, chat, config, ...).
 */
#ifndef MEMCHAT_CLI_CLI_H
#define MEMCHAT_CLI_CLI_H

/* Runs memchat with argv; returns the process exit code (memchat/error.h). */
int cli_main(int argc, char **argv);

#endif
