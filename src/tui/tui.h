/*
 * The TUI front end (DESIGN.md, front ends): three panes (conversation,
 * recalled context, metrics), a status line and a readline input line,
 * drawn with ncursesw over an engine the caller started. It submits jobs
 * and renders the engine's events; it never runs a turn itself.
 */
#ifndef MEMCHAT_TUI_TUI_H
#define MEMCHAT_TUI_TUI_H

#include <stdbool.h>

#include "memchat/engine.h"

struct config;

/* The session's starting choices (the chat verb's options). NULL strings
 * mean the configured defaults. */
struct tui_opts {
    const char *tenant, *user, *agent, *provider, *model;
    enum mc_memory_override memory;
};

/* True when the TUI can run here: stdin and stdout are terminals and TERM
 * names a terminal curses knows that can address the cursor. Otherwise a
 * reason in why (the caller falls back to the line chat). */
bool tui_usable(char *why, size_t whylen);
/* Runs the TUI on the terminal over eng (started on cfg, both outliving
 * the call) until /quit, Ctrl-D on an empty line, SIGTERM or SIGHUP.
 * The terminal is restored on every way out. Returns the exit code: 0,
 * 128 + the signal's number after SIGTERM or SIGHUP (143, 129: what a
 * shell shows for a process that signal ended; the caller still shuts the
 * engine down in order), or the code of the error that ended it. */
int tui_run(const struct config *cfg, struct mc_engine *eng, const struct tui_opts *o);

#endif
