/*
 * bench_tui: the TUI issue's speed goals, measured on the real program from
 * outside. memchat runs in a pseudo-terminal (forkpty, 120x36,
 * TERM=xterm-256color, a private HOME, data and config directory) against
 * the loopback test server (tests/server/mockllm), whose `rate=N,words=N`
 * behaviours stream "w1 w2 ... wN" at N pieces (deltas, tokens) a second on
 * a fixed schedule; each stream is picked with the TUI's /model command.
 * Everything the program writes to the terminal is read at once (it would
 * block otherwise) and fed to a small terminal emulator (tests/vt.h: the
 * control sequences ncurses sends for xterm-256color), so the bench knows
 * what is on the screen at every read. Streams, in order: 200/s while
 * typing, 200/s alone, 3,000/s while typing, and 200/s again once the long
 * reply is in the tenant's memory (the context pane then shows long
 * recalled chunks).
 * Figures:
 *
 *   - keystroke echo: during a stream, a printable marker ('Q' or 'Z',
 *     alternating; the replies never contain them) every 35 to 65 ms, timed
 *     from write() to the read that prints that character (batches of an odd
 *     length cleared with Ctrl-U, so a cleared cell never holds the same
 *     character again, and the line is cleared at the end: nothing is sent);
 *   - the UI thread's CPU (the main thread: /proc/PID/task/PID/stat, and the
 *     nanoseconds of schedstat) and the process's, from the first word of a
 *     stream on the screen to its last, and over each second of it;
 *   - how far the screen is behind the stream: the highest word in the
 *     conversation pane at each read, against the server's schedule (piece i
 *     at t0 + i/rate, t0 estimated from the read that was least behind);
 *   - bytes written to the terminal per token drawn, against one full
 *     repaint (SIGCONT, on which the TUI clears and redraws everything);
 *   - idle: the main thread's CPU and wake-ups over 3 s without input.
 *
 * Prints a Markdown table for docs/benchmarks.md. Exits 0 whether or not a
 * goal is met (it is a measurement), 1 when the harness fails (a timeout,
 * the program died). Run by `make bench`: bench_tui MEMCHAT MOCKLLM SRCDIR.
 * For looking into a figure: BENCH_TUI_LATE_WORDS=N makes the last stream
 * N words long; BENCH_TUI_LOG=FILE keeps every byte the program wrote;
 * BENCH_TUI_TRACE=FILE appends each read's highest word and lag, and each
 * key's latency; BENCH_TUI_DUMP=1 prints the final screen to stderr.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <locale.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "../tests/vt.h"

#define ROWS 36
#define COLS 120

#define KEY_INTERVAL_MS 50.0 /* on average: 35 to 65 ms, so keys fall at any phase of a frame */
#define KEY_JITTER_MS   30.0
#define KEY_BATCH       39 /* odd: a cleared cell gets the other marker next */
#define KEY_MAX         240
#define KEY_LOST_MS     1000.0 /* an echo not seen after this is lost */

/* Each stream has its own length, so the header of its reply, which names
 * the model (mock:rate=R,words=N), is unique on the screen. */
#define SLOW_RATE   200
#define TYPE_WORDS  2600 /* 13 s at 200/s: 240 keystrokes, 50 ms apart on average */
#define QUIET_WORDS 2000 /* the stream drawn without typing */
#define LATE_WORDS  2400 /* the same later, with long memories recalled */
#define FAST_RATE   3000
#define FAST_WORDS  20000
#define CAL_WORDS   6000 /* the server's own pace, checked over a socket */

#define GOAL_KEY_MS      16.0
#define GOAL_UI_CPU      10.0
#define GOAL_FAST_KEY_MS 100.0
#define GOAL_FAST_END_MS 500.0
#define GOAL_DRAW_RATIO  0.25
#define IDLE_MS          3000.0

/* ---- time, failure, cleanup ------------------------------------------------ */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* What every exit path must undo: the children and the temporary directory.
 * Global because the signal handler and fail() reach them from anywhere. */
static volatile pid_t memchat_pid = -1, mock_pid = -1;
static char tmpdir[256];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

static void stop_child(volatile pid_t *pid)
{
    if (*pid <= 0)
        return;
    kill(*pid, SIGTERM);
    for (int i = 0; i < 100; i++) { /* up to 1 s, then SIGKILL */
        if (waitpid(*pid, NULL, WNOHANG) == *pid) {
            *pid = -1;
            return;
        }
        usleep(10000); /* waiting for a child to exit, not timing anything */
    }
    kill(*pid, SIGKILL);
    waitpid(*pid, NULL, 0);
    *pid = -1;
}

static void cleanup(void)
{
    stop_child(&memchat_pid);
    stop_child(&mock_pid);
    if (tmpdir[0] != '\0')
        nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    tmpdir[0] = '\0';
}

static void on_signal(int sig)
{
    if (memchat_pid > 0)
        kill(memchat_pid, SIGKILL);
    if (mock_pid > 0)
        kill(mock_pid, SIGKILL);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* A harness failure: says why, cleans up, exits 1. */
static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bench_tui: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    cleanup();
    exit(1);
}

/* ---- the screen: the emulator is tests/vt.h --------------------------------- */

static bool is_alnum(uint32_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_vline(uint32_t c)
{
    return c == 0x2502; /* drawn as Unicode, or ACS_VLINE (the emulator maps DEC graphics) */
}

/* The column of the vertical line right of the conversation pane: the
 * column holding a vertical line on most rows; COLS when there is none. */
static int vt_separator(const struct vt *v)
{
    for (int x = 1; x < COLS; x++) {
        int n = 0;
        for (int y = 0; y < ROWS; y++)
            n += is_vline(v->cell[y][x]);
        if (n >= ROWS * 3 / 4)
            return x;
    }
    return COLS;
}

/* The highest N of a word "wN" in the conversation pane (the rows with the
 * separator at column sep, the columns left of it) below the lowest row
 * holding header; with the header not on the screen, in the whole pane
 * when below_only is false, else 0. The context pane quotes earlier
 * replies, and the pane earlier turns: neither counts. */
static long vt_max_word(const struct vt *v, int sep, const char *header, bool *header_seen)
{
    char row[COLS * 4 + 1];
    int from = -1;
    for (int y = 0; y < ROWS; y++) {
        if (sep < COLS && !is_vline(v->cell[y][sep]))
            continue;
        vt_row(v, y, 0, COLS, row, sizeof row);
        char *h = strstr(row, header);
        if (h != NULL && h - row < sep) /* ASCII up to the separator: bytes are columns */
            from = y + 1;
    }
    if (from >= 0)
        *header_seen = true;
    else if (*header_seen)
        from = 0; /* scrolled off the top: the whole pane is the reply */
    else
        return 0;
    long best = 0;
    for (int y = from; y < ROWS; y++) {
        if (sep < COLS && !is_vline(v->cell[y][sep]))
            continue;
        const uint32_t *r = v->cell[y];
        for (int x = 0; x + 1 < sep; x++) {
            if (r[x] != 'w' || (x > 0 && is_alnum(r[x - 1])) || r[x + 1] < '1' || r[x + 1] > '9')
                continue;
            long n = 0;
            int e = x + 1;
            while (e < sep && r[e] >= '0' && r[e] <= '9' && n < 100000000)
                n = n * 10 + (long)(r[e++] - '0');
            if ((e == sep || !is_alnum(r[e])) && n > best)
                best = n;
            x = e - 1;
        }
    }
    return best;
}

static void vt_dump(const struct vt *v, FILE *f)
{
    char row[COLS * 4 + 1];
    for (int y = 0; y < ROWS; y++) {
        vt_row(v, y, 0, COLS, row, sizeof row);
        fprintf(f, "|%s|\n", row);
    }
}

/* ---- the session: memchat in a pseudo-terminal ------------------------------- */

struct key {
    char c;
    double t_write, t_seen; /* t_seen < 0: not yet */
};

/* One observation of the stream on the screen: the highest word shown. */
struct obs {
    double t;
    long word;
};

struct sess {
    int fd;
    struct vt vt;
    unsigned long long bytes; /* everything read from the terminal */
    unsigned long reads;
    double t_last_output;
    bool exited;
    int status;
    /* keystrokes of the current phase */
    struct key keys[KEY_MAX + 8];
    int nkeys, first_pending;
    unsigned long stray; /* markers printed that no keystroke explains */
    /* the stream of the current phase */
    int sep;         /* the conversation pane's right edge */
    char header[96]; /* the reply's header names its model: "/mock:rate=R,words=N)" */
    bool header_seen;
    FILE *log; /* BENCH_TUI_LOG: every byte read, for looking into a figure */
    bool watch;
    struct obs *obs;
    size_t nobs, capobs;
    long max_word;
    double t_read; /* the time of the read being fed */
};

static void on_print(void *ud, uint32_t cp)
{
    struct sess *s = ud;
    if (cp != 'Q' && cp != 'Z')
        return;
    for (int i = s->first_pending; i < s->nkeys; i++) {
        if (s->keys[i].t_seen < 0 && s->keys[i].c == (char)cp) {
            s->keys[i].t_seen = s->t_read;
            while (s->first_pending < s->nkeys && s->keys[s->first_pending].t_seen >= 0)
                s->first_pending++;
            return;
        }
    }
    s->stray++;
}

static void sess_reap(struct sess *s, bool block)
{
    if (s->exited || memchat_pid <= 0)
        return;
    int st = 0;
    if (waitpid(memchat_pid, &st, block ? 0 : WNOHANG) == memchat_pid) {
        s->exited = true;
        s->status = st;
        memchat_pid = -1;
    }
}

/* Reads and feeds to the emulator what the terminal writes for ms (0:
 * what it has now), noting the time of each read and, while a stream is
 * watched, the highest word it shows. */
static void sess_pump(struct sess *s, double ms)
{
    double end = now_ms() + ms;
    for (;;) {
        double left = end - now_ms();
        struct pollfd p = {.fd = s->fd, .events = POLLIN};
        int rc = poll(&p, 1, left > 0 ? (int)(left + 0.999) : 0);
        if (rc < 0 && errno != EINTR)
            fail("poll on the terminal: %s", strerror(errno));
        if (rc > 0) {
            char b[65536];
            ssize_t n = read(s->fd, b, sizeof b);
            if (n > 0) {
                s->t_read = now_ms();
                s->t_last_output = s->t_read;
                s->bytes += (unsigned long long)n;
                s->reads++;
                for (ssize_t i = 0; i < n; i++)
                    vt_byte(&s->vt, (unsigned char)b[i]);
                if (s->log != NULL)
                    fwrite(b, 1, (size_t)n, s->log);
                if (s->watch) {
                    long w = vt_max_word(&s->vt, s->sep, s->header, &s->header_seen);
                    if (w > s->max_word) {
                        s->max_word = w;
                        if (s->nobs == s->capobs) {
                            s->capobs = s->capobs ? s->capobs * 2 : 4096;
                            s->obs = realloc(s->obs, s->capobs * sizeof *s->obs);
                            if (s->obs == NULL)
                                fail("out of memory");
                        }
                        s->obs[s->nobs++] = (struct obs){s->t_read, w};
                    }
                }
                continue; /* read on while there is more: the time left still bounds us */
            }
            if (n == 0 || (n < 0 && errno == EIO)) { /* the program closed the terminal */
                sess_reap(s, true);
                return;
            }
        }
        sess_reap(s, false);
        if (s->exited || now_ms() >= end)
            return;
    }
}

/* Pumps until cond holds; a harness failure after timeout_ms. */
static void sess_wait(struct sess *s, bool (*cond)(struct sess *, const void *), const void *arg,
                      double timeout_ms, const char *what)
{
    double end = now_ms() + timeout_ms;
    while (!cond(s, arg)) {
        if (s->exited)
            fail("memchat exited (status %d) while waiting for %s", s->status, what);
        if (now_ms() >= end) {
            vt_dump(&s->vt, stderr);
            fail("timed out after %.0f ms waiting for %s (the screen is above)", timeout_ms, what);
        }
        sess_pump(s, 5);
    }
}

static bool cond_text(struct sess *s, const void *arg)
{
    return vt_has(&s->vt, arg);
}

static bool cond_word(struct sess *s, const void *arg)
{
    return s->max_word >= *(const long *)arg;
}

/* The input line (the last row) holds the prompt alone. */
static bool cond_input_empty(struct sess *s, const void *arg)
{
    (void)arg;
    char row[COLS * 4 + 1];
    vt_row(&s->vt, ROWS - 1, 0, COLS, row, sizeof row);
    size_t n = strlen(row);
    while (n > 0 && row[n - 1] == ' ')
        n--;
    return n == 3 && memcmp(row, "\xe2\x80\xba", 3) == 0; /* "›" */
}

/* The output has been quiet for the given ms. */
static bool cond_quiet(struct sess *s, const void *arg)
{
    return now_ms() - s->t_last_output >= *(const double *)arg;
}

static void sess_settle(struct sess *s, double quiet_ms, double timeout_ms)
{
    sess_pump(s, 1);
    sess_wait(s, cond_quiet, &quiet_ms, timeout_ms, "the screen to settle");
}

static void sess_write(struct sess *s, const char *b, size_t n)
{
    while (n > 0) {
        ssize_t w = write(s->fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN) {
            sess_pump(s, 1);
            continue;
        }
        if (w <= 0)
            fail("writing to the terminal: %s", strerror(errno));
        b += w;
        n -= (size_t)w;
    }
}

/* Types a line and Enter, then waits for expect on the screen. */
static void sess_line(struct sess *s, const char *line, const char *expect)
{
    sess_write(s, line, strlen(line));
    sess_write(s, "\r", 1);
    if (expect != NULL)
        sess_wait(s, cond_text, expect, 10000, expect);
}

/* ---- CPU and wake-ups from /proc ------------------------------------------------- */

struct cpu {
    double t;
    long long thread_ticks, proc_ticks; /* utime + stime, clock ticks */
    long long thread_ns;                /* schedstat run time, -1 when unavailable */
    long long wakeups;                  /* voluntary context switches of the thread */
};

/* utime + stime of a /proc stat file, -1 when unreadable. */
static long long stat_ticks(const char *path)
{
    char b[2048];
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(b, 1, sizeof b - 1, f);
    fclose(f);
    b[n] = '\0';
    const char *p = strrchr(b, ')'); /* the name may hold spaces */
    if (p == NULL)
        return -1;
    long long ut = -1, st = -1;
    /* after ")": state is field 3; utime 14, stime 15 */
    if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lld %lld", &ut, &st) != 2)
        return -1;
    return ut + st;
}

static struct cpu cpu_read(pid_t pid)
{
    struct cpu c = {.t = now_ms(), .thread_ns = -1, .wakeups = -1};
    char path[128], b[4096];
    snprintf(path, sizeof path, "/proc/%d/task/%d/stat", (int)pid, (int)pid);
    c.thread_ticks = stat_ticks(path);
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    c.proc_ticks = stat_ticks(path);
    snprintf(path, sizeof path, "/proc/%d/task/%d/schedstat", (int)pid, (int)pid);
    FILE *f = fopen(path, "r");
    if (f != NULL) {
        if (fscanf(f, "%lld", &c.thread_ns) != 1)
            c.thread_ns = -1;
        fclose(f);
    }
    snprintf(path, sizeof path, "/proc/%d/task/%d/status", (int)pid, (int)pid);
    f = fopen(path, "r");
    if (f != NULL) {
        while (fgets(b, sizeof b, f) != NULL)
            if (sscanf(b, "voluntary_ctxt_switches: %lld", &c.wakeups) == 1)
                break;
        fclose(f);
    }
    if (c.thread_ticks < 0 || c.proc_ticks < 0)
        fail("cannot read the CPU times of memchat (pid %d) in /proc", (int)pid);
    return c;
}

struct cpu_use {
    double wall_ms;
    double thread_pct, proc_pct; /* of one core, from ticks */
    double thread_ns_pct;        /* from schedstat, < 0 when unavailable */
    long long thread_ticks, wakeups;
};

static struct cpu_use cpu_diff(const struct cpu *a, const struct cpu *b)
{
    double tick_ms = 1000.0 / (double)sysconf(_SC_CLK_TCK);
    struct cpu_use u = {.wall_ms = b->t - a->t};
    u.thread_ticks = b->thread_ticks - a->thread_ticks;
    u.thread_pct = 100.0 * (double)u.thread_ticks * tick_ms / u.wall_ms;
    u.proc_pct = 100.0 * (double)(b->proc_ticks - a->proc_ticks) * tick_ms / u.wall_ms;
    u.thread_ns_pct = a->thread_ns >= 0 && b->thread_ns >= 0
                          ? 100.0 * (double)(b->thread_ns - a->thread_ns) / 1e6 / u.wall_ms
                          : -1;
    u.wakeups = a->wakeups >= 0 && b->wakeups >= 0 ? b->wakeups - a->wakeups : -1;
    return u;
}

/* ---- statistics -------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The p-th percentile (nearest rank) of v[0..n), sorted in place. */
static double pct(double *v, size_t n, double p)
{
    if (n == 0)
        return -1;
    qsort(v, n, sizeof *v, cmp_double);
    size_t i = (size_t)(p / 100.0 * (double)n + 0.999999);
    return v[i == 0 ? 0 : i > n ? n - 1 : i - 1];
}

/* ---- the mock server ------------------------------------------------------------------ */

static int start_mock(const char *bin, int *keep)
{
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0)
        fail("pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0)
        fail("fork: %s", strerror(errno));
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        char *argv[] = {(char *)(uintptr_t)bin, NULL};
        char *envp[] = {NULL};
        execve(bin, argv, envp);
        _exit(127);
    }
    mock_pid = pid;
    close(in[0]);
    close(out[1]);
    char line[64] = "";
    struct pollfd p = {.fd = out[0], .events = POLLIN};
    ssize_t n = poll(&p, 1, 10000) == 1 ? read(out[0], line, sizeof line - 1) : -1;
    close(out[0]);
    if (n <= 0 || strncmp(line, "PORT=", 5) != 0)
        fail("the test server %s did not start", bin);
    line[n] = '\0';
    char *end;
    long port = strtol(line + 5, &end, 10);
    if (port <= 0 || port > 65535)
        fail("the test server printed a bad port: %s", line);
    *keep = in[1]; /* its stdin: closing it stops the server */
    return (int)port;
}

/* The server's own pace: one streamed request over a socket, timed from the
 * first delta to the end of the stream (its schedule says (words-1)/rate). */
static double mock_pace(int port, int rate, int words)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        fail("cannot connect to the test server: %s", strerror(errno));
    char body[256], req[512];
    int bl = snprintf(body, sizeof body,
                      "{\"model\":\"mock:rate=%d,words=%d\",\"stream\":true,"
                      "\"messages\":[{\"role\":\"user\",\"content\":\"go\"}]}",
                      rate, words);
    int rl = snprintf(req, sizeof req,
                      "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      "Connection: close\r\nContent-Type: application/json\r\n"
                      "Content-Length: %d\r\n\r\n%s",
                      bl, body);
    if (write(fd, req, (size_t)rl) != rl)
        fail("cannot send to the test server");
    static const char first[] = "\"content\":\"w1 \"", done[] = "[DONE]";
    char tail[64] = "";
    double t_first = -1, t_done = -1, deadline = now_ms() + 4.0 * 1000.0 * words / rate + 10000;
    for (;;) {
        char b[65536 + 64];
        size_t keep = strlen(tail);
        memcpy(b, tail, keep);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 1000) <= 0) {
            if (now_ms() > deadline)
                fail("the test server's stream did not end");
            continue;
        }
        ssize_t n = read(fd, b + keep, 65536);
        if (n <= 0)
            break;
        double t = now_ms();
        size_t len = keep + (size_t)n;
        b[len] = '\0';
        if (t_first < 0 && memmem(b, len, first, sizeof first - 1) != NULL)
            t_first = t;
        if (memmem(b, len, done, sizeof done - 1) != NULL)
            t_done = t;
        size_t k = len < sizeof tail - 1 ? len : sizeof tail - 1;
        memcpy(tail, b + len - k, k);
        tail[k] = '\0';
    }
    close(fd);
    if (t_first < 0 || t_done < 0)
        fail("the test server's paced stream was not as expected (model mock:rate=%d,words=%d)",
             rate, words);
    return t_done - t_first;
}

/* ---- phases ---------------------------------------------------------------------------- */

struct stream_result {
    int rate;
    long words;
    double t_first, t_last; /* the first and the last word on the screen */
    long first_word;        /* the highest word at t_first */
    unsigned long long bytes;
    struct cpu_use cpu;
    double lag_p50, lag_p99, lag_max, lag_end; /* ms behind the server's schedule */
    int nkeys, nseen;
    double key_p50, key_p99, key_max;
    unsigned long stray;
    /* the UI thread's CPU over each second of the stream: it grows with the
     * reply when drawing a frame costs more for a longer reply */
    double cpu_first_pct, cpu_last_pct;
    int nsec;
    long sec_word[128];  /* the highest word on the screen at the end of second i */
    double sec_pct[128]; /* the UI thread's CPU over second i */
};

/* The next gap between keystrokes: KEY_INTERVAL_MS +- KEY_JITTER_MS / 2,
 * from a fixed-seed xorshift so that runs type alike. A fixed period
 * would lock onto the stream's (5 ms at 200/s) and the frames' grids and
 * measure one phase of them only. */
static double key_gap(uint32_t *seed)
{
    *seed ^= *seed << 13;
    *seed ^= *seed >> 17;
    *seed ^= *seed << 5;
    return KEY_INTERVAL_MS + KEY_JITTER_MS * ((double)(*seed % 10000) / 10000.0 - 0.5);
}

static void type_key(struct sess *s)
{
    char c = (s->nkeys % 2) ? 'Z' : 'Q';
    s->keys[s->nkeys] = (struct key){c, now_ms(), -1};
    s->nkeys++;
    sess_write(s, &c, 1);
}

/* Waits (pumping) until every keystroke typed was echoed or is lost. */
static void keys_drain(struct sess *s)
{
    while (s->first_pending < s->nkeys &&
           now_ms() - s->keys[s->first_pending].t_write < KEY_LOST_MS && !s->exited)
        sess_pump(s, 1);
}

/* One stream: selects the model, sends a message, and (when typing) types
 * a marker every KEY_INTERVAL_MS until the last word is on the screen. */
static struct stream_result run_stream(struct sess *s, int rate, long words, bool typing)
{
    struct stream_result r = {.rate = rate, .words = words};
    char line[128], expect[128];
    snprintf(line, sizeof line, "/model mock:rate=%d,words=%ld", rate, words);
    snprintf(expect, sizeof expect, "model: mock:rate=%d,words=%ld", rate, words);
    sess_line(s, line, expect);
    sess_settle(s, 300, 10000);
    snprintf(s->header, sizeof s->header, "/mock:rate=%d,words=%ld)", rate, words);
    s->header_seen = false;
    s->watch = true;
    s->nobs = 0;
    s->max_word = 0;
    s->nkeys = s->first_pending = 0;
    s->stray = 0;
    long one = 1;
    sess_line(s, "go", NULL);
    sess_wait(s, cond_word, &one, 30000, "the first word of the reply");
    r.t_first = s->t_read;
    r.first_word = s->max_word;
    unsigned long long b0 = s->bytes;
    struct cpu c0 = cpu_read(memchat_pid);
    double expect_ms = 1000.0 * (double)words / rate, deadline = now_ms() + 2 * expect_ms + 30000;
    uint32_t seed = 2463534242u;
    double next_key = now_ms() + key_gap(&seed);
    struct cpu sec0 = c0, sec_prev = c0;
    r.cpu_first_pct = -1;
    while (s->max_word < words) {
        if (s->exited)
            fail("memchat exited (status %d) during the stream", s->status);
        if (now_ms() > deadline) {
            vt_dump(&s->vt, stderr);
            fail("the last word w%ld did not show within %.0f ms (the screen is above)", words,
                 2 * expect_ms + 30000);
        }
        double now = now_ms();
        if (typing && s->nkeys < KEY_MAX && now >= next_key) {
            type_key(s);
            next_key += key_gap(&seed);
            if (next_key < now)
                next_key = now + key_gap(&seed); /* we were late: no burst */
            if (s->nkeys % KEY_BATCH == 0) {
                keys_drain(s); /* Ctrl-U must not overtake a key not drawn yet */
                sess_write(s, "\025", 1);
            }
        }
        double wait = typing && s->nkeys < KEY_MAX ? next_key - now_ms() : 50;
        sess_pump(s, wait > 0 ? wait : 0);
        if (now_ms() - sec0.t >= 1000) {
            struct cpu c = cpu_read(memchat_pid);
            struct cpu_use u = cpu_diff(&sec0, &c);
            double pc = u.thread_ns_pct >= 0 ? u.thread_ns_pct : u.thread_pct;
            if (r.cpu_first_pct < 0)
                r.cpu_first_pct = pc;
            if (r.nsec < 128) {
                r.sec_word[r.nsec] = s->max_word;
                r.sec_pct[r.nsec++] = pc;
            }
            sec_prev = sec0;
            sec0 = c;
        }
    }
    r.t_last = s->t_read;
    struct cpu c1 = cpu_read(memchat_pid);
    /* the last whole second of the stream (the whole, when it was shorter) */
    struct cpu_use last = sec0.t > sec_prev.t ? cpu_diff(&sec_prev, &sec0) : cpu_diff(&c0, &c1);
    r.cpu_last_pct = last.thread_ns_pct >= 0 ? last.thread_ns_pct : last.thread_pct;
    if (r.cpu_first_pct < 0)
        r.cpu_first_pct = r.cpu_last_pct;
    r.bytes = s->bytes - b0;
    r.cpu = cpu_diff(&c0, &c1);
    s->watch = false;
    if (typing) {
        keys_drain(s);
        sess_write(s, "\025", 1);
        sess_wait(s, cond_input_empty, NULL, 5000, "the input line to be cleared");
    }
    /* The schedule: word k leaves the server at t0 + (k-1)/rate. t0 is
     * estimated as the least-behind reading, so lags are relative to it. */
    double period = 1000.0 / rate, t0 = 1e300;
    for (size_t i = 0; i < s->nobs; i++) {
        double e = s->obs[i].t - (double)(s->obs[i].word - 1) * period;
        if (e < t0)
            t0 = e;
    }
    double *lag = malloc((s->nobs + 1) * sizeof *lag);
    if (lag == NULL)
        fail("out of memory");
    const char *trace = getenv("BENCH_TUI_TRACE");
    FILE *tf = trace != NULL ? fopen(trace, "a") : NULL;
    for (size_t i = 0; i < s->nobs; i++) {
        lag[i] = s->obs[i].t - (t0 + (double)(s->obs[i].word - 1) * period);
        if (tf != NULL)
            fprintf(tf, "word %d %ld %.3f %ld %.3f\n", rate, words, s->obs[i].t - r.t_first,
                    s->obs[i].word, lag[i]);
    }
    for (int i = 0; tf != NULL && i < s->nkeys; i++)
        fprintf(tf, "key %d %ld %.3f %.3f\n", rate, words, s->keys[i].t_write - r.t_first,
                s->keys[i].t_seen >= 0 ? s->keys[i].t_seen - s->keys[i].t_write : -1.0);
    if (tf != NULL)
        fclose(tf);
    r.lag_end = r.t_last - (t0 + (double)(words - 1) * period);
    r.lag_p50 = pct(lag, s->nobs, 50);
    r.lag_p99 = pct(lag, s->nobs, 99);
    r.lag_max = pct(lag, s->nobs, 100);
    free(lag);
    if (typing) {
        double lat[KEY_MAX + 8];
        int n = 0;
        for (int i = 0; i < s->nkeys; i++)
            if (s->keys[i].t_seen >= 0)
                lat[n++] = s->keys[i].t_seen - s->keys[i].t_write;
        r.nkeys = s->nkeys;
        r.nseen = n;
        r.key_p50 = pct(lat, (size_t)n, 50);
        r.key_p99 = pct(lat, (size_t)n, 99);
        r.key_max = pct(lat, (size_t)n, 100);
        r.stray = s->stray;
    }
    return r;
}

/* Bytes of one full repaint: SIGCONT makes the TUI clear and redraw
 * every cell (clearok on curscr, as after a suspension). */
static unsigned long long full_refresh(struct sess *s)
{
    unsigned long long b0 = s->bytes;
    kill(memchat_pid, SIGCONT);
    sess_pump(s, 50);
    sess_settle(s, 300, 10000);
    return s->bytes - b0;
}

/* ---- main ---------------------------------------------------------------------------------- */

static const char *verdict(bool met)
{
    return met ? "**MET**" : "**NOT MET**";
}

static void print_stream(const char *what, const struct stream_result *r)
{
    printf("| %s: keystroke echo p50 / p99 / max (%d of %d keys seen) | %.2f / %.2f / %.2f "
           "ms |",
           what, r->nseen, r->nkeys, r->key_p50, r->key_p99, r->key_max);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: bench_tui MEMCHAT MOCKLLM SRCDIR\n");
        return 2;
    }
    if (setlocale(LC_CTYPE, "C.UTF-8") == NULL)
        fail("the C.UTF-8 locale is needed to measure the screen's character widths");
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGHUP, on_signal);
    char memchat[4096];
    if (realpath(argv[1], memchat) == NULL)
        fail("%s: %s", argv[1], strerror(errno));

    snprintf(tmpdir, sizeof tmpdir, "/tmp/bench_tui-XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        tmpdir[0] = '\0';
        fail("mkdtemp: %s", strerror(errno));
    }
    int mock_stdin;
    int port = start_mock(argv[2], &mock_stdin);

    /* The server's own pace first: the figures below assume its schedule. */
    double pace_ms = mock_pace(port, FAST_RATE, CAL_WORDS);
    double pace_want = 1000.0 * (CAL_WORDS - 1) / FAST_RATE;

    char e_home[300], e_data[300], e_cfg[300], e_share[4200], e_base[128];
    snprintf(e_home, sizeof e_home, "HOME=%s", tmpdir);
    snprintf(e_data, sizeof e_data, "MEMCHAT_DATA_DIR=%s/data", tmpdir);
    snprintf(e_cfg, sizeof e_cfg, "MEMCHAT_CONFIG_DIR=%s/config", tmpdir);
    snprintf(e_share, sizeof e_share, "MEMCHAT_SHARE_DIR=%s/share", argv[3]);
    snprintf(e_base, sizeof e_base, "OPENAI_BASE_URL=http://127.0.0.1:%d/v1", port);
    char *envp[] = {e_home,
                    e_data,
                    e_cfg,
                    e_share,
                    e_base,
                    (char *)(uintptr_t) "MEMCHAT_PROVIDER=openai",
                    (char *)(uintptr_t) "OPENAI_API_KEY=sk-bench",
                    (char *)(uintptr_t) "TERM=xterm-256color",
                    (char *)(uintptr_t) "LC_ALL=C.UTF-8",
                    (char *)(uintptr_t) "LOGNAME=bench",
                    (char *)(uintptr_t) "PATH=/usr/bin:/bin",
                    NULL};

    static struct sess s; /* large (the screen, the keys): not on the stack */
    const char *log = getenv("BENCH_TUI_LOG");
    if (log != NULL && (s.log = fopen(log, "w")) == NULL)
        fail("%s: %s", log, strerror(errno));
    vt_init(&s.vt, ROWS, COLS);
    s.vt.on_print = on_print;
    s.vt.ud = &s;
    struct winsize ws = {.ws_row = ROWS, .ws_col = COLS};
    double t_start = now_ms();
    pid_t pid = forkpty(&s.fd, NULL, NULL, &ws);
    if (pid < 0)
        fail("forkpty: %s", strerror(errno));
    if (pid == 0) {
        if (chdir(tmpdir) != 0)
            _exit(126);
        char *args[] = {memchat, NULL};
        execve(memchat, args, envp);
        _exit(127);
    }
    memchat_pid = pid;
    fcntl(s.fd, F_SETFD, FD_CLOEXEC);
    fcntl(s.fd, F_SETFL, fcntl(s.fd, F_GETFL) | O_NONBLOCK);

    sess_wait(&s, cond_text, "Conversation", 15000, "the TUI's first frame");
    double t_ready = s.t_read - t_start;
    sess_settle(&s, 500, 15000);
    unsigned long long startup_bytes = s.bytes;
    s.sep = vt_separator(&s.vt);
    if (s.sep == COLS) {
        vt_dump(&s.vt, stderr);
        fail("no vertical line right of the conversation pane (the screen is above): the "
             "bench cannot tell the panes apart");
    }

    struct stream_result a = run_stream(&s, SLOW_RATE, TYPE_WORDS, true);
    sess_settle(&s, 500, 20000);
    struct stream_result q = run_stream(&s, SLOW_RATE, QUIET_WORDS, false);
    sess_settle(&s, 500, 20000);
    unsigned long long refresh = full_refresh(&s);
    struct stream_result f = run_stream(&s, FAST_RATE, FAST_WORDS, true);
    sess_settle(&s, 1000, 60000);
    /* 200 tok/s again, later in the session: the long reply is now in the
     * tenant's memories, and the context pane shows the chunks recalled.
     * BENCH_TUI_LATE_WORDS=N makes this reply N words long (N/200 s), to
     * see the UI thread's CPU as a reply grows. */
    long late_words = LATE_WORDS;
    const char *lw = getenv("BENCH_TUI_LATE_WORDS");
    if (lw != NULL) {
        char *end;
        late_words = strtol(lw, &end, 10);
        if (*end != '\0' || late_words < 100 || late_words > 1000000 || late_words == TYPE_WORDS ||
            late_words == QUIET_WORDS)
            fail("BENCH_TUI_LATE_WORDS must be 100 to 1000000 (and not %d or %d, which "
                 "earlier replies have), not '%s'",
                 TYPE_WORDS, QUIET_WORDS, lw);
    }
    struct stream_result l = run_stream(&s, SLOW_RATE, late_words, false);
    sess_settle(&s, 1000, 60000);

    struct cpu i0 = cpu_read(memchat_pid);
    unsigned long long ib0 = s.bytes;
    sess_pump(&s, IDLE_MS);
    struct cpu i1 = cpu_read(memchat_pid);
    struct cpu_use idle = cpu_diff(&i0, &i1);
    unsigned long long idle_bytes = s.bytes - ib0;

    if (getenv("BENCH_TUI_DUMP") != NULL)
        vt_dump(&s.vt, stderr);
    sess_write(&s, "\025/quit\r", 7);
    double quit_end = now_ms() + 10000;
    while (!s.exited && now_ms() < quit_end)
        sess_pump(&s, 20);
    if (!s.exited)
        fail("memchat did not exit within 10 s of /quit");
    bool clean = WIFEXITED(s.status) && WEXITSTATUS(s.status) == 0;
    close(s.fd);
    if (s.log != NULL)
        fclose(s.log);
    free(s.obs);
    close(mock_stdin);
    waitpid(mock_pid, NULL, 0);
    mock_pid = -1;
    cleanup();
    if (!clean)
        fail("memchat's exit status after /quit was %d", s.status);

    double per_tok_q = (double)q.bytes / (double)(q.words - q.first_word);
    double per_tok_a = (double)a.bytes / (double)(a.words - a.first_word);
    double per_tok_f = (double)f.bytes / (double)(f.words - f.first_word);
    double ratio = per_tok_q / (double)refresh;

    printf("\nTUI in a %dx%d pseudo-terminal, TERM=xterm-256color; first frame after %.0f ms "
           "(%llu bytes until the start-up settled)\n",
           COLS, ROWS, t_ready, startup_bytes);
    printf("Test server's pace: %d words at %d/s took %.1f ms from the first to the last "
           "(schedule: %.1f ms)\n\n",
           CAL_WORDS, FAST_RATE, pace_ms, pace_want);
    printf("| figure | measured | goal | verdict |\n|---|---|---|---|\n");
    print_stream("200 tok/s", &a);
    printf(" p99 < %.0f ms | %s |\n", GOAL_KEY_MS,
           verdict(a.nseen == a.nkeys && a.nkeys >= 200 && a.key_p99 < GOAL_KEY_MS));
    printf("| 200 tok/s, typing: UI thread CPU (ticks; schedstat) | %.1f %%; %.1f %% of a core "
           "over %.1f s | < %.0f %% | %s |\n",
           a.cpu.thread_pct, a.cpu.thread_ns_pct, a.cpu.wall_ms / 1000, GOAL_UI_CPU,
           verdict(a.cpu.thread_pct < GOAL_UI_CPU));
    printf("| 200 tok/s, typing: whole process CPU | %.1f %% of a core | (context) | |\n",
           a.cpu.proc_pct);
    printf("| 200 tok/s, no typing: UI thread CPU (ticks; schedstat) | %.1f %%; %.1f %% of a "
           "core over %.1f s | < %.0f %% | %s |\n",
           q.cpu.thread_pct, q.cpu.thread_ns_pct, q.cpu.wall_ms / 1000, GOAL_UI_CPU,
           verdict(q.cpu.thread_pct < GOAL_UI_CPU));
    printf("| 200 tok/s, no typing: whole process CPU | %.1f %% of a core | (context) | |\n",
           q.cpu.proc_pct);
    printf("| 200 tok/s, no typing, after the %d-word reply (in memory, recalled): UI thread CPU "
           "(ticks; schedstat) | %.1f %%; %.1f %% of a core over %.1f s | < %.0f %% | %s |\n",
           FAST_WORDS, l.cpu.thread_pct, l.cpu.thread_ns_pct, l.cpu.wall_ms / 1000, GOAL_UI_CPU,
           verdict(l.cpu.thread_pct < GOAL_UI_CPU));
    printf("| 200 tok/s: screen behind the stream p50 / p99 / max; at the last word (typing) "
           "| %.1f / %.1f / %.1f; %.1f ms | (context) | |\n",
           a.lag_p50, a.lag_p99, a.lag_max, a.lag_end);
    printf("| 200 tok/s: screen behind the stream p50 / p99 / max; at the last word (no "
           "typing) | %.1f / %.1f / %.1f; %.1f ms | (context) | |\n",
           q.lag_p50, q.lag_p99, q.lag_max, q.lag_end);
    printf("| drawing: bytes per token (200 tok/s, no typing) ÷ one full repaint | %.1f B ÷ "
           "%llu B = %.3f | ≤ %.2f | %s |\n",
           per_tok_q, refresh, ratio, GOAL_DRAW_RATIO, verdict(ratio <= GOAL_DRAW_RATIO));
    printf("| drawing: bytes per token, typing at 200 tok/s; at 3,000 tok/s | %.1f B; %.1f B | "
           "(context) | |\n",
           per_tok_a, per_tok_f);
    printf("| 3,000 tok/s: last word on the screen after the stream's end | %.1f ms | ≤ %.0f "
           "ms | %s |\n",
           f.lag_end, GOAL_FAST_END_MS, verdict(f.lag_end <= GOAL_FAST_END_MS));
    printf("| 3,000 tok/s: screen behind the stream p50 / p99 / max | %.1f / %.1f / %.1f ms | "
           "(context) | |\n",
           f.lag_p50, f.lag_p99, f.lag_max);
    print_stream("3,000 tok/s", &f);
    printf(" p99 < %.0f ms | %s |\n", GOAL_FAST_KEY_MS,
           verdict(f.nseen == f.nkeys && f.key_p99 < GOAL_FAST_KEY_MS));
    printf("| 3,000 tok/s, typing: UI thread CPU (ticks; schedstat); process | %.1f %%; %.1f "
           "%%; %.1f %% of a core | (context) | |\n",
           f.cpu.thread_pct, f.cpu.thread_ns_pct, f.cpu.proc_pct);
    printf("| UI thread CPU in the first / the last second of a stream: 200 tok/s typing, no "
           "typing; 3,000 tok/s | %.1f / %.1f; %.1f / %.1f; %.1f / %.1f %% | (context) | |\n",
           a.cpu_first_pct, a.cpu_last_pct, q.cpu_first_pct, q.cpu_last_pct, f.cpu_first_pct,
           f.cpu_last_pct);
    printf("| idle %.0f s: UI thread CPU ticks; schedstat; wake-ups; bytes written | %lld; "
           "%.3f %%; %lld; %llu | ~0 | %s |\n",
           IDLE_MS / 1000, idle.thread_ticks, idle.thread_ns_pct, idle.wakeups, idle_bytes,
           verdict(idle.thread_ticks == 0 && idle_bytes == 0));
    printf("\nUI thread CPU over each second of the %d tok/s stream (words on the screen at "
           "its end: %% of a core):",
           FAST_RATE);
    for (int i = 0; i < f.nsec; i++)
        printf("%s %ld: %.1f", i ? "," : "", f.sec_word[i], f.sec_pct[i]);
    printf("\n");
    printf("UI thread CPU over each second of the late %d tok/s stream (the same):", SLOW_RATE);
    for (int i = 0, shown = 0; i < l.nsec; i++)
        if (l.nsec <= 12 || i % 5 == 4 || i == l.nsec - 1)
            printf("%s %ld: %.1f", shown++ ? "," : "", l.sec_word[i], l.sec_pct[i]);
    printf("\n");
    if (a.stray + f.stray > 0)
        printf("\n(markers on the screen that no keystroke explains: %lu, %lu; the echo "
               "figures may be off)\n",
               a.stray, f.stray);
    return 0;
}
