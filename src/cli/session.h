/*
 * What the line front ends (ask, chat --plain) share: an engine started on
 * the loaded configuration, signals turned into bytes on a self-pipe, and
 * the loop that waits for a turn's events, prints them and works out the
 * exit code. The UI thread never runs a turn itself: it submits jobs and
 * renders events (DESIGN.md, Threads).
 */
#ifndef MEMCHAT_CLI_SESSION_H
#define MEMCHAT_CLI_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "cli/secret.h"
#include "memchat/engine.h"
#include "util/buf.h"

struct config;

struct session {
    const struct config *cfg;
    struct mc_engine *eng;
    bool json;     /* print every event as NDJSON instead of the reply */
    bool sanitize; /* stdout is a terminal: strip escapes from model text */
    int last_exit; /* exit code of the most recent turn */
    int awaiting;  /* turns whose store stage has not reported yet */
    /* Ctrl-C while waiting for a job asks it to stop at its next
     * checkpoint and waits for its answer (migrate, reembed); a second
     * Ctrl-C, or any Ctrl-C when unset, stops waiting at once. */
    bool cancel_job;
    bool tools_yes; /* tools that are not read-only run (session_allow_tools) */
};

/* Installs the signal self-pipe and starts the engine, giving it pass (the
 * keystore's passphrase; NULL or an empty secret: none). 0, or the exit
 * code to end with after printing the reason to stderr. */
int session_start(struct session *s, const struct config *cfg, bool json,
                  const struct secret *pass);
/* Reads the keystore's passphrase for the turns to come into *pass
 * (secret.h's secret_keystore_passphrase), before anything else reads
 * stdin; the caller frees it with secret_free. 0, or the exit code. */
int session_read_passphrase(const struct config *cfg, bool from_stdin, struct secret *pass);
/* Stops the engine and restores the signal handlers. */
void session_stop(struct session *s);

/* Runs one turn and prints it: the reply's deltas (or every event with
 * --json) to stdout, errors to stderr. Returns once the turn is done and,
 * when wait_store is set, its memory store has been reported (ask exits
 * right after; the chat takes the next line at once). Ctrl-C cancels the
 * turn. Returns the turn's exit code (memchat/error.h). */
int session_turn(struct session *s, const struct mc_turn_request *req, bool wait_store);
/* What `ask --compare` keeps of a turn instead of printing it. The caller
 * initialises reply (buf_init) and frees it. */
struct session_capture {
    struct buf reply;
    long long prompt_tokens, completion_tokens; /* -1: not reported */
    double usd;                                 /* -1: no price */
    double total_ms;
    bool recalled; /* memory injected notes into the prompt */
    char error[512];
};
/* session_turn, keeping the run's reply and figures in *cap (NULL: print
 * as session_turn does; with --json every event is still printed). */
int session_turn_capture(struct session *s, const struct mc_turn_request *req, bool wait_store,
                         struct session_capture *cap);
/* Waits for the `result` or `error` event of a job that is not a turn
 * (printed with --json; an error also to stderr). Returns its exit code. */
int session_job(struct session *s, const char *job);
/* Waits until every submitted turn's store stage has reported, printing
 * what arrives; a second Ctrl-C stops waiting. */
void session_drain(struct session *s);

/* The read end of the signal self-pipe, for front ends that poll stdin. */
int session_signal_fd(void);
/* The signal number waiting on the self-pipe (consumed), or 0. */
int session_take_signal(void);

/* Prints "memchat: MESSAGE" to stderr. */
void session_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Lets the model run tools that are not read-only without asking (ask
 * --yes); by default the session refuses them. */
void session_allow_tools(struct session *s);

/* Prints each line of text as "memchat: PREFIX: LINE" on stderr, through
 * the terminal sanitiser (warnings quote file names and keys from files).
 * NULL or "" prints nothing. */
void session_print_lines(const char *prefix, const char *text);

#endif
