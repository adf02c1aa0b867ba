/*
 * The terminal under the TUI (term.h). Signal handlers only write the
 * signal's number to a self-pipe (the loop does the work) or, for fatal
 * signals, put the saved termios back and write the precomputed exit
 * strings with write(2), both async-signal-safe, before re-raising with
 * the default action so the exit status and core dump stay true.
 */
#include "config.h"

#include "tui/term.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

/* Mouse reports (clicks and wheel) in SGR encoding, and bracketed paste
 * (a pasted text with newlines stays one message). */
#define TERM_MOUSE_ON  "\033[?1000h\033[?1006h\033[?2004h"
#define TERM_MOUSE_OFF "\033[?2004l\033[?1006l\033[?1000l"

static int sig_pipe[2] = {-1, -1};
static struct termios saved_tio;
static bool have_tio, opened;
static char exit_strings[256];
static size_t exit_len;
static int saved_stderr = -1;
static int capture_fd = -1;
static atomic_int fatal_taken; /* a fatal signal's restore has begun */

static const int pipe_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGWINCH, SIGTSTP, SIGCONT};
/* Every other signal whose default action ends the process and that can
 * be caught (SIGPIPE aside: ignored, a closed pipe is an error value). */
static const int fatal_signals[] = {
    SIGSEGV,   SIGBUS,  SIGFPE,  SIGILL,  SIGABRT, SIGQUIT,   SIGTRAP, SIGSYS,
    SIGXCPU,   SIGXFSZ, SIGALRM, SIGUSR1, SIGUSR2, SIGVTALRM, SIGPROF, SIGIO,
#ifdef SIGPWR
    SIGPWR,
#endif
#ifdef SIGSTKFLT
    SIGSTKFLT,
#endif
};
#define N_PIPE  (sizeof pipe_signals / sizeof pipe_signals[0])
#define N_FATAL (sizeof fatal_signals / sizeof fatal_signals[0])
static struct sigaction old_pipe_sa[N_PIPE], old_fatal_sa[N_FATAL], old_sigpipe;

static void term_on_signal(int signo)
{
    int saved = errno;
    unsigned char b = (unsigned char)signo;
    if (sig_pipe[1] >= 0 && write(sig_pipe[1], &b, 1) < 0) {
        /* A full pipe already holds pending signals: the loop sees them. */
    }
    errno = saved;
}

static void term_write_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

/* Copies what stderr wrote while captured to the real stderr (read and
 * write only: also used from the fatal-signal handler). */
static void term_copy_captured(void)
{
    char buf[4096];
    ssize_t n;
    if (capture_fd >= 0 && lseek(capture_fd, 0, SEEK_SET) == 0)
        while ((n = read(capture_fd, buf, sizeof buf)) > 0)
            term_write_all(STDERR_FILENO, buf, (size_t)n);
}

static void term_on_fatal(int signo)
{
    /* Threads fail together (a sticky out-of-memory reaches each of them):
     * the first restores the terminal and ends the process; the others
     * wait here for that, not ending it half-restored by default action. */
    if (atomic_exchange(&fatal_taken, 1) != 0)
        for (;;)
            pause();
    term_write_all(STDOUT_FILENO, TERM_MOUSE_OFF, sizeof TERM_MOUSE_OFF - 1);
    term_write_all(STDOUT_FILENO, exit_strings, exit_len);
    if (have_tio)
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
    if (saved_stderr >= 0) {
        dup2(saved_stderr, STDERR_FILENO);
        term_copy_captured();
    }
    signal(signo, SIG_DFL);
    raise(signo);
}

/* Sends stderr to an unlinked temporary file until term_close. */
static void term_capture_stderr(void)
{
    const char *dir = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/memchat-stderr-XXXXXX", dir != NULL && dir[0] ? dir : "/tmp");
    int fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0)
        return;
    unlink(path);
    fflush(stderr);
    saved_stderr = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
    if (saved_stderr < 0 || dup2(fd, STDERR_FILENO) < 0) {
        close(fd);
        return;
    }
    capture_fd = fd;
}

static void term_replay_stderr(void)
{
    if (capture_fd < 0)
        return;
    fflush(stderr);
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    saved_stderr = -1;
    term_copy_captured();
    close(capture_fd);
    capture_fd = -1;
}

int term_open(char *err, size_t errlen)
{
    if (opened)
        return 0;
    if (pipe2(sig_pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
        snprintf(err, errlen, "cannot create the signal pipe: %s", strerror(errno));
        return -1;
    }
    have_tio = tcgetattr(STDIN_FILENO, &saved_tio) == 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = term_on_signal;
    sa.sa_flags = SA_RESTART;
    for (size_t i = 0; i < N_PIPE; i++)
        sigaction(pipe_signals[i], &sa, &old_pipe_sa[i]);
    /* A second fatal signal waits until the first has restored the
     * terminal and re-raised (which then ends the process): blocked on
     * the same thread, held in the handler on another (which is why the
     * handler stays installed instead of SA_RESETHAND). */
    sigfillset(&sa.sa_mask);
    sa.sa_handler = term_on_fatal;
    sa.sa_flags = 0;
    for (size_t i = 0; i < N_FATAL; i++)
        sigaction(fatal_signals[i], &sa, &old_fatal_sa[i]);
    sa.sa_handler = SIG_IGN;
    sa.sa_flags = 0;
    sigaction(SIGPIPE, &sa, &old_sigpipe);
    term_capture_stderr();
    opened = true;
    return 0;
}

void term_set_exit_strings(const char *s)
{
    exit_len = 0;
    if (s != NULL) {
        size_t n = strlen(s);
        exit_len = n < sizeof exit_strings ? n : sizeof exit_strings - 1;
        memcpy(exit_strings, s, exit_len);
    }
}

void term_close(void)
{
    if (!opened)
        return;
    for (size_t i = 0; i < N_PIPE; i++)
        sigaction(pipe_signals[i], &old_pipe_sa[i], NULL);
    for (size_t i = 0; i < N_FATAL; i++)
        sigaction(fatal_signals[i], &old_fatal_sa[i], NULL);
    sigaction(SIGPIPE, &old_sigpipe, NULL);
    if (have_tio)
        tcsetattr(STDIN_FILENO, TCSADRAIN, &saved_tio);
    term_replay_stderr();
    close(sig_pipe[0]);
    close(sig_pipe[1]);
    sig_pipe[0] = sig_pipe[1] = -1;
    opened = false;
}

int term_signal_fd(void)
{
    return sig_pipe[0];
}

int term_take_signal(void)
{
    unsigned char b;
    if (sig_pipe[0] >= 0 && read(sig_pipe[0], &b, 1) == 1)
        return b;
    return 0;
}

void term_mouse(bool on)
{
    if (on)
        term_write_all(STDOUT_FILENO, TERM_MOUSE_ON, sizeof TERM_MOUSE_ON - 1);
    else
        term_write_all(STDOUT_FILENO, TERM_MOUSE_OFF, sizeof TERM_MOUSE_OFF - 1);
}

void term_suspend(void)
{
    struct sigaction dfl, old;
    memset(&dfl, 0, sizeof dfl);
    sigemptyset(&dfl.sa_mask);
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGTSTP, &dfl, &old);
    raise(SIGTSTP);
    /* Continued: back to the pipe. */
    sigaction(SIGTSTP, &old, NULL);
}

bool term_size(int *rows, int *cols)
{
    struct winsize ws;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) != 0 || ws.ws_row == 0 || ws.ws_col == 0)
        return false;
    *rows = ws.ws_row;
    *cols = ws.ws_col;
    return true;
}
