/*
 * The terminal under the TUI: signals turned into bytes on a self-pipe,
 * stderr captured while curses owns the screen (and replayed after), the
 * mouse reports switched on and off, and a last-resort restore for fatal
 * signals. The one piece of process state here is what a signal handler
 * must reach; it is set up by term_open and undone by term_close.
 */
#ifndef MEMCHAT_TUI_TERM_H
#define MEMCHAT_TUI_TERM_H

#include <stdbool.h>
#include <stddef.h>

/* Installs the handlers (SIGINT, SIGTERM, SIGHUP, SIGWINCH, SIGTSTP,
 * SIGCONT into the pipe; every other catchable signal whose default action
 * ends the process (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGQUIT,
 * SIGTRAP, SIGSYS, SIGXCPU, SIGXFSZ, SIGALRM, SIGUSR1, SIGUSR2, SIGVTALRM,
 * SIGPROF, SIGIO, SIGPWR, SIGSTKFLT) restores the terminal and re-raises;
 * SIGPIPE is ignored), saves the terminal's settings and captures stderr.
 * Call before initscr. 0, or -1 with a message in err. */
int term_open(char *err, size_t errlen);
/* Records the strings that leave curses' screen (from terminfo), for the
 * fatal-signal path. Call after initscr. */
void term_set_exit_strings(const char *s);
/* Restores the handlers and the terminal's settings, stops capturing
 * stderr and writes what was captured to the real stderr. Idempotent. */
void term_close(void);
/* The read end of the signal pipe. */
int term_signal_fd(void);
/* The next signal waiting in the pipe (consumed), or 0. */
int term_take_signal(void);
/* Turns SGR mouse reports (wheel and clicks) and bracketed paste on or off. */
void term_mouse(bool on);
/* Stops the process as SIGTSTP would (the caller has left curses first),
 * and returns once it is continued. */
void term_suspend(void);
/* The terminal's size from the kernel; false when unknown. */
bool term_size(int *rows, int *cols);

#endif
