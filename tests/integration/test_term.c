/*
 * test_term: the terminal under the TUI, driven through a pseudo-terminal
 * (issue 13, deliverable 8). The real memchat runs on a pty this program
 * opens (TERM=xterm-256color, a known size, a private HOME, data and config
 * directory); every byte it writes is kept and fed to a small terminal
 * emulator, so a test can ask both what was sent and what the screen shows.
 *
 *  - Hostile bytes never reach the terminal: memories and model replies
 *    holding escape sequences (CSI, OSC 52 clipboard writes, OSC 8 links,
 *    window titles, DCS, RIS), C1 controls (as UTF-8, and as raw 8-bit
 *    bytes in a reply), bidi overrides and isolates, BEL, backspace and CR
 *    are shown through every pane that draws such text (search results,
 *    the recalled context, the injected block, the offline answer, a
 *    streamed reply, the user's own message and the input line). The
 *    output holds none of the sequences, and the visible markers around
 *    each payload are on the screen, so the text was drawn. Which
 *    sequences ncurses itself never sends is checked on a clean run of the
 *    same session, and the checker is shown to catch every payload.
 *    Model text comes from the loopback LLM test server (which echoes the
 *    message) and from a tiny server here that sends chosen bytes one per
 *    delta (raw 8-bit bytes only a reply can carry).
 *  - 1,000 size changes (TIOCSWINSZ and SIGWINCH, from 1x1 to 250x80)
 *    while the loopback LLM test server streams a long paced reply:
 *    memchat keeps running, the reply completes, the quit key (Ctrl-D on
 *    an empty line) exits 0.
 *  - For every catchable signal whose default action ends a process (and
 *    SIGINT and SIGPIPE, which must not end the TUI): the pty's termios is
 *    the same before memchat starts and after it is gone, the alternate
 *    screen, mouse reports and bracketed paste are off and the cursor is
 *    visible, and the exit status names the signal; a fault sent to an
 *    engine worker thread does the same. A memchat killed with SIGKILL
 *    shows the comparisons can fail.
 *  - Allocation failure after the first draw (MEMCHAT_FAULT_ALLOC=k+, k
 *    spread over a session with one turn): memchat ends by itself with
 *    the out-of-memory abort or an error of the contract, its message
 *    written after the terminal is restored, termios and modes as before;
 *    memchat.db passes PRAGMA integrity_check and memory stats still works.
 *
 * Waits poll the pty, bounded by TERM_GUARD_MS, which fails the test; no
 * wait is a sleep. A sanitizer's report goes to a file in the test's
 * directory (memchat's stderr is a temporary file while the TUI runs) and
 * fails the test. Needs MEMCHAT_BIN and MEMCHAT_MOCK_BIN (make check sets
 * both). TERM_TEST_DUMP=1 prints the screen after each session.
 */
#include "cli_harness.h"

#include "../server/mockserver.h"
#include "../vt.h"

#include <locale.h>
#include <pty.h>
#include "../unit/tu_sqlite.h"
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <termios.h>

#include "util/utf8.h"

/* Sanitizer builds run several times slower (ThreadSanitizer most):
 * longer guards and streams. */
#if defined(__SANITIZE_THREAD__)
#define TERM_SLOW 10
#elif defined(__SANITIZE_ADDRESS__)
#define TERM_SLOW 4
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TERM_SLOW 4
#endif
#endif
#ifndef TERM_SLOW
#define TERM_SLOW 1
#endif

#define TERM_GUARD_MS (20000 * TERM_SLOW)
#define TERM_ROWS     36
#define TERM_COLS     120
#define TERM_READY    "Type a message and press Enter"

/* ---- the screen: the emulator is tests/vt.h -------------------------------- */

static void vt_dump(const struct vt *v, const char *title)
{
    char row[VT_ROW_BYTES];
    print_message("# --- %s (%dx%d) ---\n", title, v->cols, v->rows);
    for (int y = 0; y < v->rows; y++) {
        vt_row(v, y, 0, v->cols, row, sizeof row);
        size_t n = strlen(row);
        while (n > 0 && row[n - 1] == ' ')
            row[--n] = '\0';
        print_message("# |%s\n", row);
    }
}

/* ---- memchat on a pseudo-terminal ------------------------------------------- */

/* One memchat on its own pty. The test keeps the slave open too, so the
 * terminal and its settings outlive the program and every byte it wrote
 * stays readable after it exits. */
struct tty {
    pid_t pid;
    int master, slave;
    char *out; /* every byte written to the terminal */
    size_t len, cap;
    struct vt *vt;
    struct termios before; /* the settings memchat found */
    bool exited;
    int status;     /* waitpid's, once exited */
    size_t scanned; /* out[0..scanned) was checked for payloads */
};

/* The memchats running now (a failed test kills them all). */
#define N_LIVE 16
static struct tty *live[N_LIVE];

static void live_set(struct tty *t, bool on)
{
    for (size_t i = 0; i < N_LIVE; i++) {
        if (on && live[i] == NULL) {
            live[i] = t;
            return;
        }
        if (!on && live[i] == t)
            live[i] = NULL;
    }
}

static long long now_ms(void)
{
    return mock_now_ms();
}

static void status_text(int st, char *out, size_t cap)
{
    if (WIFEXITED(st))
        snprintf(out, cap, "exit status %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(out, cap, "killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else
        snprintf(out, cap, "wait status %#x", (unsigned)st);
}

/* Prints a sanitizer report left in the test's directory; true if any. */
static bool tty_reports(void)
{
    DIR *d = opendir(fx.dir);
    bool any = false;
    struct dirent *de;
    while (d != NULL && (de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, "asan.", 5) != 0 && strncmp(de->d_name, "ubsan.", 6) != 0)
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", fx.dir, de->d_name);
        char *text = tu_read_file(path, NULL);
        print_message("# --- sanitizer report %s ---\n%s\n", de->d_name, text ? text : "");
        free(text);
        any = true;
    }
    if (d != NULL)
        closedir(d);
    return any;
}

static void tty_dump(const struct tty *t, const char *title)
{
    vt_dump(t->vt, title);
    tty_reports();
}

static void tty_failed(const struct tty *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void tty_failed(const struct tty *t, const char *fmt, ...)
{
    /* The failure leaves the test: no memchat may outlive it. */
    for (size_t i = 0; i < N_LIVE; i++) {
        if (live[i] != NULL && live[i]->pid > 0 && !live[i]->exited)
            kill(live[i]->pid, SIGKILL);
        live[i] = NULL; /* they are on the stack the failure leaves */
    }
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tty_dump(t, "the screen");
    fail_msg("%s", msg);
}

/* The environment memchat runs with: the fixture's (HOME, data, config,
 * LOGNAME, PATH), the terminal, the shipped themes, sanitizer reports to
 * files, and extra (NULL-terminated, may be NULL). */
static char **tty_env(const char *const *extra)
{
    char **env = calloc(64, sizeof *env);
    assert_non_null(env);
    int n = 0;
    for (int i = 0; i < fx.n_env; i++) {
        size_t name = strcspn(fx.env[i], "=") + 1;
        bool replaced = false; /* an extra entry of the same name wins */
        for (int k = 0; extra != NULL && extra[k] != NULL; k++)
            replaced = replaced || strncmp(extra[k], fx.env[i], name) == 0;
        if (!replaced)
            env[n++] = strdup(fx.env[i]);
    }
    env[n++] = strdup("TERM=xterm-256color");
    env[n++] = strdup("LC_ALL=C.UTF-8");
    char buf[4096];
    const char *src = getenv("MEMCHAT_SRCDIR");
    if (src != NULL && *src != '\0') {
        snprintf(buf, sizeof buf, "MEMCHAT_SHARE_DIR=%s/share", src);
        env[n++] = strdup(buf);
    }
    const char *san[] = {"ASAN_OPTIONS", "asan", "UBSAN_OPTIONS", "ubsan"};
    for (int i = 0; i < 4; i += 2) {
        const char *old = getenv(san[i]);
        snprintf(buf, sizeof buf, "%s=%s%slog_path=%s/%s", san[i], old ? old : "",
                 old && *old ? ":" : "", fx.dir, san[i + 1]);
        env[n++] = strdup(buf);
    }
    const char *lsan = getenv("LSAN_OPTIONS");
    if (lsan != NULL) {
        snprintf(buf, sizeof buf, "LSAN_OPTIONS=%s", lsan);
        env[n++] = strdup(buf);
    }
    for (int i = 0; extra != NULL && extra[i] != NULL && n < 63; i++)
        env[n++] = strdup(extra[i]);
    env[n] = NULL;
    for (int i = 0; i < n; i++)
        assert_non_null(env[i]);
    return env;
}

static void tty_free_env(char **env)
{
    for (int i = 0; env[i] != NULL; i++)
        free(env[i]);
    free(env);
}

/* The child: a session of its own with the pty as its controlling terminal,
 * default signal handling, no core files; then memchat. */
static void tty_child(int master, int slave, char **env)
{
    close(master);
    setsid();
    if (ioctl(slave, TIOCSCTTY, 0) != 0)
        _exit(126);
    dup2(slave, 0);
    dup2(slave, 1);
    dup2(slave, 2);
    if (slave > 2)
        close(slave);
    for (int s = 1; s < NSIG; s++)
        if (s != SIGKILL && s != SIGSTOP)
            signal(s, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    if (chdir(fx.dir) != 0)
        _exit(127);
    const char *bin = getenv("MEMCHAT_BIN");
    char *argv[] = {(char *)(uintptr_t) "memchat", NULL};
    execve(bin, argv, env);
    _exit(127);
}

/* Starts memchat (chat, the TUI) on a new rows x cols pty with the extra
 * environment; does not wait for anything. */
static void tty_start(struct tty *t, int rows, int cols, const char *const *extra)
{
    memset(t, 0, sizeof *t);
    const char *bin = getenv("MEMCHAT_BIN");
    if (bin == NULL || *bin == '\0')
        fail_msg("MEMCHAT_BIN is not set (make check sets it)");
    struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
    assert_int_equal(openpty(&t->master, &t->slave, NULL, NULL, &ws), 0);
    assert_int_equal(fcntl(t->master, F_SETFD, FD_CLOEXEC), 0);
    assert_int_equal(fcntl(t->slave, F_SETFD, FD_CLOEXEC), 0);
    assert_int_equal(tcgetattr(t->slave, &t->before), 0);
    t->vt = calloc(1, sizeof *t->vt);
    assert_non_null(t->vt);
    vt_init(t->vt, rows, cols);
    char **env = tty_env(extra);
    fflush(NULL);
    t->pid = fork();
    assert_true(t->pid >= 0);
    if (t->pid == 0)
        tty_child(t->master, t->slave, env);
    tty_free_env(env);
    live_set(t, true);
    int fl = fcntl(t->master, F_GETFL);
    assert_int_equal(fcntl(t->master, F_SETFL, fl | O_NONBLOCK), 0);
}

static const char *scan_payloads(const char *s, size_t n, char *why, size_t cap);

/* Checks what arrived since the last check (with an overlap, so a
 * sequence split across reads is seen whole; an unfinished character
 * waits for its end) for anything a payload would bring: a leak fails at
 * once, not when a wait runs out. ncurses never sends any of it, in any
 * session. */
static void tty_watch(struct tty *t)
{
    size_t end = t->len - utf8_incomplete_tail(t->out, t->len);
    size_t from = t->scanned > 128 ? t->scanned - 128 : 0;
    while (from > 0 && ((unsigned char)t->out[from] & 0xC0) == 0x80)
        from--;
    char why[512];
    if (end > from && scan_payloads(t->out + from, end - from, why, sizeof why) != NULL)
        tty_failed(t, "the terminal received %s", why);
    t->scanned = end;
}

/* Reads what memchat wrote, waiting up to ms for the first byte; returns
 * the bytes read. Notes an exit. */
static size_t tty_pump(struct tty *t, int ms)
{
    size_t got = 0;
    struct pollfd p = {.fd = t->master, .events = POLLIN};
    if (poll(&p, 1, ms) > 0) {
        for (;;) {
            if (t->cap - t->len < 65536) {
                t->cap = t->cap * 2 + 65536;
                t->out = realloc(t->out, t->cap);
                assert_non_null(t->out);
            }
            ssize_t n = read(t->master, t->out + t->len, t->cap - t->len - 1);
            if (n <= 0)
                break;
            for (ssize_t i = 0; i < n; i++)
                vt_byte(t->vt, (unsigned char)t->out[t->len + (size_t)i]);
            t->len += (size_t)n;
            got += (size_t)n;
        }
        t->out[t->len] = '\0';
    }
    if (got > 0)
        tty_watch(t);
    if (!t->exited && waitpid(t->pid, &t->status, WNOHANG) == t->pid)
        t->exited = true;
    return got;
}

/* Waits until pred(t, ud) holds; fails (with the screen) when memchat
 * exits first or the guard runs out. */
static void tty_wait(struct tty *t, bool (*pred)(struct tty *, const void *), const void *ud,
                     const char *what)
{
    long long deadline = now_ms() + TERM_GUARD_MS;
    for (;;) {
        if (pred(t, ud))
            return;
        if (t->exited) {
            tty_pump(t, 0);
            if (pred(t, ud))
                return;
            char st[128];
            status_text(t->status, st, sizeof st);
            tty_failed(t, "memchat ended (%s) while the test waited for %s", st, what);
        }
        long long left = deadline - now_ms();
        if (left <= 0)
            tty_failed(t, "timed out after %d ms waiting for %s", TERM_GUARD_MS, what);
        tty_pump(t, left < 100 ? (int)left : 100);
    }
}

static bool pred_screen_has(struct tty *t, const void *ud)
{
    return vt_has(t->vt, ud);
}

static void tty_wait_text(struct tty *t, const char *text)
{
    char what[512];
    snprintf(what, sizeof what, "'%s' on the screen", text);
    tty_wait(t, pred_screen_has, text, what);
}

static void tty_send(struct tty *t, const char *s, size_t n)
{
    long long deadline = now_ms() + TERM_GUARD_MS;
    while (n > 0) {
        ssize_t w = write(t->master, s, n);
        if (w > 0) {
            s += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EINTR)
            tty_failed(t, "writing to the pty: %s", strerror(errno));
        if (now_ms() > deadline)
            tty_failed(t, "memchat read none of its input for %d ms", TERM_GUARD_MS);
        tty_pump(t, 10); /* it may be blocked writing to us */
    }
}

static void tty_type(struct tty *t, const char *s)
{
    tty_send(t, s, strlen(s));
}

/* Waits for memchat to exit (bounded) and reads the rest of its output. */
static int tty_wait_exit(struct tty *t)
{
    long long deadline = now_ms() + TERM_GUARD_MS;
    while (!t->exited) {
        if (now_ms() > deadline)
            tty_failed(t, "memchat did not exit within %d ms", TERM_GUARD_MS);
        tty_pump(t, 50);
    }
    while (tty_pump(t, 0) > 0) {
    }
    return t->status;
}

/* Waits for the exit that how asked for: status 0 and no sanitizer report. */
static void tty_expect_clean_exit(struct tty *t, const char *how)
{
    int st = tty_wait_exit(t);
    char s[128];
    status_text(st, s, sizeof s);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        tty_failed(t, "%s ended memchat with %s, not exit status 0", how, s);
    if (tty_reports())
        tty_failed(t, "a sanitizer reported on memchat");
}

/* Clears the input line and types /quit. */
static void tty_quit(struct tty *t)
{
    tty_type(t, "\025/quit\r");
    tty_expect_clean_exit(t, "/quit");
}

/* Leaves with the quit key: Ctrl-D on an empty line (Ctrl-U empties it). */
static void tty_quit_key(struct tty *t)
{
    tty_type(t, "\025\004");
    tty_expect_clean_exit(t, "Ctrl-D");
}

static void tty_close(struct tty *t)
{
    live_set(t, false);
    if (t->pid > 0 && !t->exited) {
        kill(t->pid, SIGKILL);
        waitpid(t->pid, NULL, 0);
    }
    if (getenv("TERM_TEST_DUMP") != NULL)
        vt_dump(t->vt, "the last screen");
    close(t->master);
    close(t->slave);
    free(t->out);
    free(t->vt);
    memset(t, 0, sizeof *t);
}

/* memchat memory add TEXT in the default tenant; exit status 0 expected. */
static void add_memory(const char *text)
{
    struct run r;
    RUN(&r, NULL, "memory", "add", text);
    if (r.status != 0)
        fail_msg("memory add exited %d: %s", r.status, r.err);
    run_free(&r);
}

/* ---- what must never reach the terminal ------------------------------------- */

/* One hostile payload, drawn between the markers QA<id> and QB<id>. */
struct payload {
    const char *id;
    const char *bytes;
    const char *shown; /* what the screen shows between the markers */
    bool ncurses_too;  /* ncurses sends these bytes itself: looked for between the markers */
    bool raw8;         /* invalid UTF-8: only a tool's output can carry it (memory add and
                          the TUI refuse it in a memory or a message) */
    bool no_paste;     /* a paste's CR is a line break (readline's), not the terminal's */
};

static const struct payload payloads[] = {
    /* id, bytes, shown, ncurses_too, raw8, no_paste; 11 is LRE RLE PDF LRO
     * (U+202A..U+202D), 12 the isolates LRI RLI FSI PDI (U+2066..U+2069). */
    {"01", "\033[2J", "", true, false, false},                   /* erase the screen */
    {"02", "\033[6n", "", false, false, false},                  /* cursor report: input */
    {"03", "\033[5;31;42m", "", false, false, false},            /* SGR: blinking colours */
    {"04", "\033]52;c;cHduZWQ=\a", "", false, false, false},     /* OSC 52 clipboard, BEL */
    {"05", "\033]52;c;cHduZWQ=\033\\", "", false, false, false}, /* OSC 52 clipboard, ST */
    {"06", "\033]8;;http://x.example/\033\\link\033]8;;\033\\", "link", false, false, false},
    {"07", "\033P+q544e\033\\", "", false, false, false},      /* DCS (XTGETTCAP) */
    {"08", "\302\2336n", "6n", false, false, false},           /* U+009B CSI */
    {"09", "\302\2350;pwned", "0;pwned", false, false, false}, /* U+009D OSC */
    {"10", "\342\200\256evil", "evil", false, false, false},   /* U+202E RLO */
    {"11", "\342\200\252\342\200\253\342\200\254\342\200\255", "", false, false, false},
    {"12", "\342\201\246\342\201\247\342\201\250\342\201\251", "", false, false, false},
    {"13", "\a\a", "", false, false, false},                  /* BEL */
    {"14", "\b\b\b\b", "", true, false, false},               /* backspace */
    {"15", "\r", "", true, false, true},                      /* CR */
    {"16", "\033]0;pwned\a", "", false, false, false},        /* window title */
    {"17", "\033]2;pwned\033\\", "", false, false, false},    /* window title, ST */
    {"18", "\033c", "", false, false, false},                 /* RIS: full reset */
    {"19", "\033[?1049l\033[?25l", "", true, false, false},   /* leave the screen */
    {"20", "\2336n", "\357\277\2756n", false, true, false},   /* raw 8-bit CSI */
    {"21", "\2350;x", "\357\277\2750;x", false, true, false}, /* raw 8-bit OSC */
};
#define N_PAYLOADS (sizeof payloads / sizeof payloads[0])

/* The payloads' markers and what the screen shows between them. */
static void payload_markers(const struct payload *p, char *a, char *b, char *shown, size_t cap)
{
    snprintf(a, 8, "QA%s", p->id);
    snprintf(b, 8, "QB%s", p->id);
    snprintf(shown, cap, "QA%s%sQB%s", p->id, p->shown, p->id);
}

/* Appends the payloads (those a memory can hold unless raw8; those a
 * paste keeps when paste) to out, each between its markers, separated by
 * spaces; clean puts what the screen shows in place of the hostile bytes. */
static void payload_text(char *out, size_t cap, size_t first, size_t count, bool raw8, bool paste,
                         bool clean)
{
    size_t n = strlen(out);
    for (size_t i = first; i < first + count && i < N_PAYLOADS; i++) {
        const struct payload *p = &payloads[i];
        if ((p->raw8 && !raw8) || (p->no_paste && paste))
            continue;
        int w =
            snprintf(out + n, cap - n, " QA%s%sQB%s", p->id, clean ? p->shown : p->bytes, p->id);
        assert_true(w > 0 && (size_t)w < cap - n);
        n += (size_t)w;
    }
}

static uint32_t scan_cp(const char *s, size_t n, size_t *len)
{
    uint32_t cp;
    *len = utf8_decode(s, n, &cp);
    return cp;
}

/* The first thing in s[0..n) that ncurses never sends for xterm-256color
 * and a hostile text would (at *at); NULL when there is none. */
static const char *scan_forbidden(const char *s, size_t n, size_t *at)
{
    size_t bad;
    if (!utf8_valid(s, n, &bad)) {
        *at = bad;
        return "invalid UTF-8 (a raw 8-bit C1 control passes as one)";
    }
    for (size_t i = 0; i < n;) {
        size_t len;
        uint32_t cp = scan_cp(s + i, n - i, &len);
        *at = i;
        if (cp >= 0x80 && cp <= 0x9f)
            return "a C1 control (U+0080..U+009F)";
        if ((cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069))
            return "a bidi override or isolate (U+202A..U+202E, U+2066..U+2069)";
        if (cp == 0x07)
            return "BEL";
        if (cp == 0x1b && i + 1 < n) {
            char c = s[i + 1];
            if (c == ']')
                return "OSC (ESC ]): clipboard, title, hyperlink";
            if (c == 'P' || c == 'X' || c == '^' || c == '_')
                return "a DCS, SOS, PM or APC string";
            if (c == 'c')
                return "RIS (ESC c)";
            if (c == '[') {
                size_t j = i + 2;
                while (j < n && (unsigned char)s[j] >= 0x20 && (unsigned char)s[j] <= 0x3f)
                    j++;
                if (j < n && (s[j] == 'n' || s[j] == 'c'))
                    return "a status or attributes request (CSI ... n / c): its answer is input";
            }
        }
        i += len;
    }
    return NULL;
}

/* Why the output holds a payload (NULL when it holds none): a forbidden
 * sequence anywhere, a payload's exact bytes anywhere (ncurses_too: between
 * its markers). */
static const char *scan_payloads(const char *s, size_t n, char *why, size_t cap)
{
    size_t at;
    const char *f = scan_forbidden(s, n, &at);
    if (f != NULL) {
        size_t from = at > 40 ? at - 40 : 0;
        char ctx[256];
        size_t k = 0;
        for (size_t i = from; i < n && i < at + 40 && k + 5 < sizeof ctx; i++) {
            unsigned char c = (unsigned char)s[i];
            k += (size_t)snprintf(ctx + k, sizeof ctx - k, c >= 0x20 && c < 0x7f ? "%c" : "\\x%02x",
                                  c);
        }
        snprintf(why, cap, "%s at byte %zu of %zu: ...%s...", f, at, n, ctx);
        return why;
    }
    for (size_t i = 0; i < N_PAYLOADS; i++) {
        const struct payload *p = &payloads[i];
        size_t plen = strlen(p->bytes);
        if (!p->ncurses_too) {
            if (memmem(s, n, p->bytes, plen) != NULL) {
                snprintf(why, cap, "the bytes of payload %s", p->id);
                return why;
            }
            continue;
        }
        char a[8], b[8];
        snprintf(a, sizeof a, "QA%s", p->id);
        snprintf(b, sizeof b, "QB%s", p->id);
        for (const char *q = memmem(s, n, a, 4); q != NULL;
             q = memmem(q + 4, n - (size_t)(q + 4 - s), a, 4)) {
            size_t left = n - (size_t)(q - s);
            const char *e = memmem(q, left < 96 ? left : 96, b, 4);
            if (e != NULL && memmem(q, (size_t)(e - q), p->bytes, plen) != NULL) {
                snprintf(why, cap, "the bytes of payload %s between its markers", p->id);
                return why;
            }
        }
    }
    return NULL;
}

static void tty_check_output(struct tty *t, const char *where)
{
    char why[512];
    if (scan_payloads(t->out, t->len, why, sizeof why) != NULL)
        tty_failed(t, "%s: the terminal received %s", where, why);
}

/* The checker catches every payload: each one alone between its markers,
 * as memchat would write it if nothing removed it. */
static void test_checker_catches_each_payload(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_PAYLOADS; i++) {
        char s[256], why[512];
        snprintf(s, sizeof s, "\033[5;3HQA%s%sQB%s\033[K", payloads[i].id, payloads[i].bytes,
                 payloads[i].id);
        if (scan_payloads(s, strlen(s), why, sizeof why) == NULL)
            fail_msg("the checker misses payload %s", payloads[i].id);
        snprintf(s, sizeof s, "\033[5;3HQA%s%sQB%s\033[K", payloads[i].id, payloads[i].shown,
                 payloads[i].id);
        if (scan_payloads(s, strlen(s), why, sizeof why) != NULL)
            fail_msg("the checker flags payload %s's clean text: %s", payloads[i].id, why);
    }
}

/* ---- hostile text through every pane ---------------------------------------- */

/* Payloads [first, first+count) (raw8 ones only when raw8) each shown at
 * least times times in columns [x0, x1) of the screen. */
struct want {
    size_t first, count;
    bool raw8;
    int times;
    bool conv;  /* the conversation pane (left of the separator), else the right side */
    bool paste; /* the text was pasted: no_paste payloads are not in it */
    bool loose; /* the markers only, apart: what lies between them may differ */
};

/* The column of the panes' separator (U+2502 on the title row), or the
 * width when the conversation has the screen alone. */
static int vt_sep_col(const struct vt *v)
{
    for (int x = 0; x < v->cols; x++)
        if (v->cell[0][x] == 0x2502)
            return x;
    return v->cols;
}

static int vt_count_in(const struct vt *v, int x0, int x1, const char *needle)
{
    char row[VT_ROW_BYTES];
    int n = 0;
    for (int y = 0; y < v->rows; y++) {
        vt_row(v, y, x0, x1, row, sizeof row);
        for (const char *p = strstr(row, needle); p != NULL; p = strstr(p + 1, needle))
            n++;
    }
    return n;
}

static bool pred_want(struct tty *t, const void *ud)
{
    const struct want *w = ud;
    int sep = vt_sep_col(t->vt);
    int x0 = w->conv ? 0 : sep, x1 = w->conv ? sep : t->vt->cols;
    for (size_t i = w->first; i < w->first + w->count && i < N_PAYLOADS; i++) {
        if ((payloads[i].raw8 && !w->raw8) || (payloads[i].no_paste && w->paste))
            continue;
        char a[8], b[8], shown[128];
        payload_markers(&payloads[i], a, b, shown, sizeof shown);
        if (w->loose &&
            (vt_count_in(t->vt, x0, x1, a) < w->times || vt_count_in(t->vt, x0, x1, b) < w->times))
            return false;
        if (!w->loose && vt_count_in(t->vt, x0, x1, shown) < w->times)
            return false;
    }
    return true;
}

static void tty_wait_want(struct tty *t, const struct want *w, const char *where)
{
    char what[256];
    snprintf(what, sizeof what, "payloads %s..%s shown (markers and what is left between them) %s",
             payloads[w->first].id, payloads[w->first + w->count - 1].id, where);
    tty_wait(t, pred_want, w, what);
}

#define N_KEYWORDS 5
#define PER_MEMORY 4
static const char *const keywords[N_KEYWORDS] = {"giraffe", "walrus", "pelican", "octopus",
                                                 "lemur"};

/* The bracketed paste of payloads [first, first+count) (raw8: the raw
 * 8-bit ones too), as a terminal sends a paste. */
static void paste_payloads(struct tty *t, const char *lead, size_t first, size_t count, bool raw8,
                           bool clean)
{
    char msg[4096];
    snprintf(msg, sizeof msg, "\033[200~%s", lead);
    payload_text(msg, sizeof msg, first, count, raw8, true, clean);
    size_t n = strlen(msg);
    snprintf(msg + n, sizeof msg - n, "\033[201~");
    tty_type(t, msg);
}

/* Offline: the memories in /search results, in a turn's recalled context,
 * in the injected block (F8) and quoted by the offline answer; a pasted
 * message in the input line, in the user's entry and in the answer. */
static void hostile_offline(bool clean)
{
    size_t per = PER_MEMORY;
    for (size_t k = 0; k < N_KEYWORDS; k++) {
        char text[2048];
        snprintf(text, sizeof text, "%s notes:", keywords[k]);
        payload_text(text, sizeof text, k * per, per, false, false, clean);
        add_memory(text);
    }
    const char *const env[] = {"MEMCHAT_PROVIDER=offline", NULL};
    struct tty t;
    tty_start(&t, TERM_ROWS, TERM_COLS, env);
    tty_wait_text(&t, TERM_READY);
    for (size_t k = 0; k < N_KEYWORDS; k++) {
        char cmd[64];
        snprintf(cmd, sizeof cmd, "/search %s\r", keywords[k]);
        tty_type(&t, cmd);
        struct want w = {.first = k * per, .count = per, .times = 1};
        tty_wait_want(&t, &w, "in the search results");
    }
    tty_check_output(&t, "search results");
    tty_type(&t, "What about the giraffe?\r");
    tty_wait_text(&t, "[offline]");
    struct want w0 = {.first = 0, .count = per, .times = 1};
    tty_wait_want(&t, &w0, "in the recalled context");
    tty_type(&t, "\033[19~"); /* F8: the injected block, raw memory text inside */
    tty_wait_text(&t, "<recalled-notes>");
    /* The block is what the model got: a note's control characters are
     * folded to spaces there (client/turn.c), so the rest of a sequence
     * stays, as text. */
    struct want w0_block = {.first = 0, .count = per, .times = 1, .loose = true};
    tty_wait_want(&t, &w0_block, "in the injected block");
    tty_check_output(&t, "a turn that recalled them");
    /* The input line is one row here: a short paste stays in view. */
    paste_payloads(&t, "zebra", 7, 6, false, clean);
    tty_wait_text(&t, "QB13");
    tty_check_output(&t, "the input line (a paste of C1 controls and bidi overrides)");
    tty_type(&t, "\025");
    paste_payloads(&t, "zebra", 0, N_PAYLOADS, false, clean);
    tty_wait_text(&t, "QB19");
    tty_check_output(&t, "the input line");
    tty_type(&t, "\r");
    struct want all = {.first = 0, .count = N_PAYLOADS, .times = 1, .conv = true, .paste = true};
    tty_wait_want(&t, &all, "in the user's message");
    tty_check_output(&t, "the user's message");
    tty_quit(&t);
    tty_check_output(&t, "the whole session");
    tty_close(&t);
}

/* The last user message of the mock's last chat request (a new string),
 * or NULL. */
static char *mock_last_user_message(const struct mock *m)
{
    cJSON *reqs = NULL;
    size_t n = mock_requests(m, &reqs);
    char *msg = NULL;
    for (size_t i = n; i > 0 && msg == NULL; i--) {
        const cJSON *r = cJSON_GetArrayItem(reqs, (int)(i - 1));
        const cJSON *body = cJSON_GetObjectItemCaseSensitive(r, "body");
        cJSON *b = cJSON_IsString(body) ? cJSON_Parse(body->valuestring) : NULL;
        const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(b, "messages");
        for (int j = cJSON_GetArraySize(msgs) - 1; j >= 0 && msg == NULL; j--) {
            const cJSON *mm = cJSON_GetArrayItem(msgs, j);
            const cJSON *role = cJSON_GetObjectItemCaseSensitive(mm, "role");
            const cJSON *content = cJSON_GetObjectItemCaseSensitive(mm, "content");
            if (cJSON_IsString(role) && strcmp(role->valuestring, "user") == 0 &&
                cJSON_IsString(content))
                msg = strdup(content->valuestring);
        }
        cJSON_Delete(b);
    }
    cJSON_Delete(reqs);
    return msg;
}

/* Against the loopback LLM test server, whose reply streams back the
 * user's message ("mock reply: " and the message, in pieces of at most 7
 * bytes, so escape sequences are cut across deltas): a pasted message with
 * every payload a message can hold comes back as model text. */
static void hostile_mock(bool clean)
{
    struct mock *m = mock_start();
    char base[128];
    snprintf(base, sizeof base, "OPENAI_BASE_URL=%s/v1", mock_url(m));
    const char *const env[] = {"MEMCHAT_PROVIDER=openai", base,
                               "OPENAI_API_KEY=sk-memchat-term-test-0123", NULL};
    struct tty t;
    tty_start(&t, TERM_ROWS, TERM_COLS, env);
    tty_wait_text(&t, TERM_READY);
    paste_payloads(&t, "echo", 0, N_PAYLOADS, false, clean);
    tty_wait_text(&t, "QB19");
    tty_type(&t, "\r");
    tty_wait_text(&t, "mock reply: echo");
    struct want all = {.first = 0, .count = N_PAYLOADS, .times = 2, .conv = true, .paste = true};
    tty_wait_want(&t, &all, "in the user's message and in the streamed reply");
    tty_check_output(&t, "a streamed reply");
    /* The model got the payloads as they were: the reply was hostile. */
    char *sent = mock_last_user_message(m);
    if (sent == NULL)
        tty_failed(&t, "the mock received no chat request with a user message");
    for (size_t i = 0; !clean && i < N_PAYLOADS; i++)
        if (!payloads[i].raw8 && !payloads[i].no_paste && strstr(sent, payloads[i].bytes) == NULL)
            tty_failed(&t, "payload %s did not reach the model as it was", payloads[i].id);
    free(sent);
    tty_quit(&t);
    tty_check_output(&t, "the whole session");
    tty_close(&t);
    mock_stop(m);
}

/* ---- a server whose reply bytes the test chooses ----------------------------- */

/* A loopback OpenAI-style server (a forked child) that answers every
 * request with one SSE stream: "raw reply:" and each payload between its
 * markers, the payload one byte per delta, so a raw 8-bit byte and every
 * cut of an escape sequence reach the client as the model sent them.
 * mockllm builds its replies from the request, which cannot hold invalid
 * UTF-8 (the TUI refuses such a message), hence this one. */
struct raw_server {
    pid_t pid;
    int port;
    int stop_fd; /* closing it stops the server */
};

static void raw_put(char **s, size_t *len, size_t *cap, const char *p, size_t n)
{
    if (*len + n + 1 > *cap) {
        *cap = (*len + n + 1) * 2;
        *s = realloc(*s, *cap);
        if (*s == NULL)
            _exit(3);
    }
    memcpy(*s + *len, p, n);
    *len += n;
}

/* One SSE event of a chunk whose delta content is text[0..n), JSON-escaped
 * (controls as \u00XX; bytes >= 0x80 as they are, valid or not). */
static void raw_event(char **s, size_t *len, size_t *cap, const char *text, size_t n)
{
    static const char head[] = "data: {\"id\":\"raw\",\"object\":\"chat.completion.chunk\","
                               "\"created\":1,\"model\":\"raw\",\"choices\":[{\"index\":0,"
                               "\"delta\":{\"content\":\"";
    static const char tail[] = "\"},\"finish_reason\":null}]}\n\n";
    raw_put(s, len, cap, head, sizeof head - 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)text[i];
        char esc[8];
        if (c < 0x20 || c == '"' || c == '\\') {
            int k = c == '"' || c == '\\' ? snprintf(esc, sizeof esc, "\\%c", c)
                                          : snprintf(esc, sizeof esc, "\\u%04x", c);
            raw_put(s, len, cap, esc, (size_t)k);
        } else {
            raw_put(s, len, cap, text + i, 1);
        }
    }
    raw_put(s, len, cap, tail, sizeof tail - 1);
}

/* The whole HTTP response (caller frees). */
static char *raw_response(bool clean, size_t *out_len)
{
    char *s = NULL;
    size_t len = 0, cap = 0;
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                               "Cache-Control: no-cache\r\nConnection: close\r\n\r\n";
    raw_put(&s, &len, &cap, head, sizeof head - 1);
    raw_event(&s, &len, &cap, "raw reply:", 10);
    for (size_t i = 0; i < N_PAYLOADS; i++) {
        char mark[16];
        int k = snprintf(mark, sizeof mark, " QA%s", payloads[i].id);
        raw_event(&s, &len, &cap, mark, (size_t)k);
        const char *p = clean ? payloads[i].shown : payloads[i].bytes;
        for (size_t j = 0; p[j] != '\0'; j++)
            raw_event(&s, &len, &cap, p + j, 1);
        k = snprintf(mark, sizeof mark, "QB%s", payloads[i].id);
        raw_event(&s, &len, &cap, mark, (size_t)k);
    }
    static const char done[] =
        "data: {\"id\":\"raw\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":"
        "\"raw\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
        "data: [DONE]\n\n";
    raw_put(&s, &len, &cap, done, sizeof done - 1);
    *out_len = len;
    return s;
}

/* Reads a request (headers, then Content-Length bytes of body) and sends
 * the response; the connection closes after it. */
static void raw_serve(int c, const char *resp, size_t resp_len)
{
    char req[65536];
    size_t n = 0;
    const char *body = NULL;
    long want = 0;
    for (;;) {
        ssize_t r = read(c, req + n, sizeof req - 1 - n);
        if (r <= 0)
            return;
        n += (size_t)r;
        req[n] = '\0';
        if (body == NULL && (body = strstr(req, "\r\n\r\n")) != NULL) {
            body += 4;
            const char *cl = strcasestr(req, "\r\ncontent-length:");
            want = cl != NULL ? strtol(cl + 17, NULL, 10) : 0;
        }
        if (body != NULL && (long)(req + n - body) >= want)
            break;
        if (n == sizeof req - 1)
            return;
    }
    for (size_t off = 0; off < resp_len;) {
        ssize_t w = write(c, resp + off, resp_len - off);
        if (w <= 0)
            return;
        off += (size_t)w;
    }
}

static void raw_child(int lfd, int stop, bool clean)
{
    size_t resp_len;
    char *resp = raw_response(clean, &resp_len);
    for (;;) {
        struct pollfd p[2] = {{.fd = lfd, .events = POLLIN}, {.fd = stop, .events = POLLIN}};
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            break;
        if (p[1].revents != 0)
            break; /* the test closed its end */
        if (p[0].revents & POLLIN) {
            int c = accept(lfd, NULL, NULL);
            if (c >= 0) {
                raw_serve(c, resp, resp_len);
                close(c);
            }
        }
    }
    free(resp);
    _exit(0);
}

static void raw_start(struct raw_server *rs, bool clean)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(lfd, 16), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);
    int stop[2];
    assert_int_equal(pipe2(stop, O_CLOEXEC), 0);
    fflush(NULL);
    rs->pid = fork();
    assert_true(rs->pid >= 0);
    if (rs->pid == 0) {
        close(stop[1]);
        raw_child(lfd, stop[0], clean);
    }
    close(lfd);
    close(stop[0]);
    rs->stop_fd = stop[1];
    rs->port = ntohs(a.sin_port);
}

static void raw_stop(struct raw_server *rs)
{
    close(rs->stop_fd);
    int st;
    assert_int_equal(waitpid(rs->pid, &st, 0), rs->pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* A reply holding every payload, raw 8-bit ones too, one byte per delta. */
static void hostile_raw(bool clean)
{
    struct raw_server rs;
    raw_start(&rs, clean);
    char base[128];
    snprintf(base, sizeof base, "OPENAI_BASE_URL=http://127.0.0.1:%d/v1", rs.port);
    const char *const env[] = {"MEMCHAT_PROVIDER=openai", base,
                               "OPENAI_API_KEY=sk-memchat-term-test-0123", NULL};
    struct tty t;
    tty_start(&t, TERM_ROWS, TERM_COLS, env);
    tty_wait_text(&t, TERM_READY);
    tty_type(&t, "hello\r");
    tty_wait_text(&t, "raw reply:");
    struct want all = {.first = 0, .count = N_PAYLOADS, .raw8 = true, .times = 1, .conv = true};
    tty_wait_want(&t, &all, "in a reply streamed one byte per delta");
    tty_check_output(&t, "a reply streamed one byte per delta");
    tty_quit(&t);
    tty_check_output(&t, "the whole session");
    tty_close(&t);
    raw_stop(&rs);
}

static void test_hostile_raw_clean(void **state)
{
    (void)state;
    hostile_raw(true);
}

static void test_hostile_raw(void **state)
{
    (void)state;
    hostile_raw(false);
}

static void test_hostile_mock_clean(void **state)
{
    (void)state;
    hostile_mock(true);
}

static void test_hostile_mock(void **state)
{
    (void)state;
    hostile_mock(false);
}

static void test_hostile_offline_clean(void **state)
{
    (void)state;
    hostile_offline(true);
}

static void test_hostile_offline(void **state)
{
    (void)state;
    hostile_offline(false);
}

/* ---- 1,000 resizes during a stream -------------------------------------------- */

#define RESIZES       1000
#define CHECKPOINT    10 /* every 10th size is drawn before the next (a bounded wait) */
#define STREAM_WORDS  4000
#define STREAM_RATE   (TERM_SLOW > 1 ? 600 : 1000)
#define STATUS_STREAM "streaming (Esc cancels)"

/* A size for the bursts between checkpoints: pseudo-random (a fixed
 * seed) up to 250x80, never the one before (the kernel signals a change
 * only), which *rows and *cols hold on entry. */
static void burst_size(unsigned *seed, int *rows, int *cols)
{
    int prev_rows = *rows, prev_cols = *cols;
    *seed = *seed * 1103515245u + 12345u;
    *rows = 1 + (int)((*seed >> 16) % 80);
    *seed = *seed * 1103515245u + 12345u;
    *cols = 1 + (int)((*seed >> 16) % 250);
    if (*rows == prev_rows && *cols == prev_cols)
        *cols = *cols % 250 + 1;
}

/* Checkpoint k's size and the text its frame shows (after the clear of
 * the repaint): every other one a fixed size (cols x rows: 1x1, 20x5,
 * 250x80, 250x1, 1x80, the layout's limits 30x8 and 29x7, 80x24, 2x2,
 * 120x36), with no text asked for; then one too small for the layout
 * (fewer than 8 rows), where memchat draws "terminal too small: CxR",
 * which names it (25 columns and more hold that much); then one from
 * 30x8 to 250x80, where the panes are drawn. */
static void checkpoint_size(int k, int *rows, int *cols, char *text, size_t cap)
{
    static const int fixed[][2] = {{1, 1},  {5, 20}, {80, 250}, {1, 250}, {80, 1},
                                   {8, 30}, {7, 29}, {24, 80},  {2, 2},   {36, 120}};
    text[0] = '\0';
    if (k % 2 == 0) {
        *rows = fixed[(k / 2) % 10][0];
        *cols = fixed[(k / 2) % 10][1];
    } else if (k % 4 == 1) {
        *rows = 1 + k % 7;
        *cols = 25 + (k * 37) % 226;
        snprintf(text, cap, "terminal too small: %dx%d", *cols, *rows);
    } else {
        *rows = 8 + (k * 13) % 73;
        *cols = 30 + (k * 53) % 221;
        snprintf(text, cap, " Conversation");
    }
}

/* Since byte from: a clear (the full repaint SIGCONT asks for, at the size
 * memchat reads then), then text (drawn whole on a cleared screen). */
struct drawn_after {
    size_t from;
    char text[64];
};

static bool pred_drawn_after(struct tty *t, const void *ud)
{
    const struct drawn_after *w = ud;
    if (t->len <= w->from)
        return false;
    const char *clear = memmem(t->out + w->from, t->len - w->from, "\033[H\033[2J", 7);
    return clear != NULL &&
           memmem(clear, (size_t)(t->out + t->len - clear), w->text, strlen(w->text)) != NULL;
}

static void tty_resize(struct tty *t, int rows, int cols)
{
    struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
    if (ioctl(t->master, TIOCSWINSZ, &ws) != 0)
        tty_failed(t, "TIOCSWINSZ %dx%d: %s", cols, rows, strerror(errno));
    kill(t->pid, SIGWINCH); /* the kernel sent one too: a second changes nothing */
    vt_resize(t->vt, rows, cols);
}

/* The full repaint SIGCONT asks for has arrived at the final size: a
 * clear after byte from, the titles of the wide layout, and the status
 * line's right end in the last columns (a late frame of an earlier size
 * would put it elsewhere). */
struct repaint {
    size_t from;
};

static bool pred_repainted(struct tty *t, const void *ud)
{
    const struct repaint *r = ud;
    static const char clear[] = "\033[H\033[2J";
    if (t->len <= r->from || memmem(t->out + r->from, t->len - r->from, clear, 7) == NULL)
        return false;
    const struct vt *v = t->vt;
    return vt_find_in(v, 0, v->cols, " Conversation") == 0 &&
           vt_find_in(v, 0, v->cols, "Recalled context") == 0 &&
           vt_find_in(v, v->cols - 10, v->cols, "F1 help") == v->rows - 2;
}

static bool pred_stream_done(struct tty *t, const void *ud)
{
    return vt_has(t->vt, ud) && !vt_has(t->vt, STATUS_STREAM);
}

static void test_resize_during_stream(void **state)
{
    (void)state;
    struct mock *m = mock_start();
    char base[128], model[64], last[16];
    snprintf(base, sizeof base, "OPENAI_BASE_URL=%s/v1", mock_url(m));
    snprintf(model, sizeof model, "MEMCHAT_MODEL=mock:words=%d,rate=%d", STREAM_WORDS, STREAM_RATE);
    snprintf(last, sizeof last, "w%d", STREAM_WORDS);
    const char *const env[] = {"MEMCHAT_PROVIDER=openai", base,
                               "OPENAI_API_KEY=sk-memchat-term-test-0123", model, NULL};
    struct tty t;
    tty_start(&t, TERM_ROWS, TERM_COLS, env);
    tty_wait_text(&t, TERM_READY);
    tty_type(&t, "stream please\r");
    tty_wait_text(&t, " w10 w11 ");
    unsigned seed = 20261124u;
    long long t0 = now_ms();
    size_t drawn = t.len;
    int rows = TERM_ROWS, cols = TERM_COLS;
    for (int i = 0; i < RESIZES; i++) {
        if (i % CHECKPOINT != 0) {
            burst_size(&seed, &rows, &cols);
            tty_resize(&t, rows, cols);
            tty_pump(&t, 0); /* a burst: memchat may take several sizes at once */
        } else {
            /* A checkpoint: this size is drawn before the next is sent. */
            struct drawn_after w;
            checkpoint_size(i / CHECKPOINT, &rows, &cols, w.text, sizeof w.text);
            tty_resize(&t, rows, cols);
            w.from = t.len;
            kill(t.pid, SIGCONT);
            char what[160];
            snprintf(what, sizeof what, "the repaint at %dx%d (resize %d)%s%s", cols, rows, i + 1,
                     w.text[0] != '\0' ? " showing " : "", w.text);
            tty_wait(&t, pred_drawn_after, &w, what);
        }
        if (t.exited) {
            char st[128];
            status_text(t.status, st, sizeof st);
            tty_failed(&t, "memchat ended (%s) at resize %d (%dx%d)", st, i + 1, cols, rows);
        }
    }
    long long spent = now_ms() - t0;
    drawn = t.len - drawn;
    tty_resize(&t, TERM_ROWS, TERM_COLS);
    struct repaint rp = {.from = t.len};
    kill(t.pid, SIGCONT); /* a full repaint: the emulator sees the screen again */
    tty_wait(&t, pred_repainted, &rp, "the full repaint at 120x36 after the resizes");
    if (!vt_has(t.vt, STATUS_STREAM))
        tty_failed(&t,
                   "the stream was over before the %d resizes were (they took %lld ms): "
                   "lengthen it",
                   RESIZES, spent);
    print_message("# %d resizes in %lld ms during the stream, %zu bytes drawn meanwhile\n", RESIZES,
                  spent, drawn);
    tty_wait(&t, pred_stream_done, last, "the whole reply (its last word) after the resizes");
    tty_quit_key(&t);
    tty_close(&t);
    mock_stop(m);
}

/* ---- the terminal's settings after a signal ------------------------------------ */

enum sig_outcome {
    SIG_DIES,  /* restores the terminal, re-raises: the status names the signal */
    SIG_QUITS, /* leaves like /quit, with 128 + the signal's number */
    SIG_STAYS, /* not an ending: SIGINT cancels or clears, SIGPIPE is ignored */
};

struct sig_case {
    int sig;
    enum sig_outcome outcome;
};

static const struct sig_case sig_cases[] = {
    {SIGTERM, SIG_QUITS},  {SIGHUP, SIG_QUITS},   {SIGINT, SIG_STAYS}, {SIGPIPE, SIG_STAYS},
    {SIGQUIT, SIG_DIES},   {SIGABRT, SIG_DIES},   {SIGSEGV, SIG_DIES}, {SIGBUS, SIG_DIES},
    {SIGFPE, SIG_DIES},    {SIGILL, SIG_DIES},    {SIGTRAP, SIG_DIES}, {SIGSYS, SIG_DIES},
    {SIGXCPU, SIG_DIES},   {SIGXFSZ, SIG_DIES},   {SIGALRM, SIG_DIES}, {SIGUSR1, SIG_DIES},
    {SIGUSR2, SIG_DIES},   {SIGVTALRM, SIG_DIES}, {SIGPROF, SIG_DIES}, {SIGIO, SIG_DIES},
#ifdef SIGPWR
    {SIGPWR, SIG_DIES},
#endif
#ifdef SIGSTKFLT
    {SIGSTKFLT, SIG_DIES},
#endif
};

/* What differs between two termios (empty when nothing does). */
static void termios_diff(const struct termios *a, const struct termios *b, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
#define TIO_FLAG(f)                                                                   \
    if (a->f != b->f)                                                                 \
        n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, " " #f " %#lx -> %#lx", \
                              (unsigned long)a->f, (unsigned long)b->f);
    TIO_FLAG(c_iflag)
    TIO_FLAG(c_oflag)
    TIO_FLAG(c_cflag)
    TIO_FLAG(c_lflag)
#undef TIO_FLAG
    for (int i = 0; i < NCCS && n < cap; i++)
        if (a->c_cc[i] != b->c_cc[i])
            n +=
                (size_t)snprintf(out + n, cap - n, " c_cc[%d] %d -> %d", i, a->c_cc[i], b->c_cc[i]);
    if (n < cap && (cfgetispeed(a) != cfgetispeed(b) || cfgetospeed(a) != cfgetospeed(b)))
        snprintf(out + n, cap - n, " speed");
}

/* The DEC private modes the TUI may set, and the state a shell expects. */
static const struct {
    int mode;
    bool on;
    const char *what;
} modes[] = {
    {1049, false, "the alternate screen"},    {1047, false, "the alternate screen (1047)"},
    {47, false, "the alternate screen (47)"}, {1000, false, "mouse reports"},
    {1002, false, "mouse motion reports"},    {1003, false, "mouse motion reports (any)"},
    {1006, false, "SGR mouse encoding"},      {2004, false, "bracketed paste"},
    {1, false, "application cursor keys"},    {25, true, "the visible cursor"},
};
#define N_MODES (sizeof modes / sizeof modes[0])

/* The mode memchat's output leaves wrong (NULL when none): the last
 * CSI ? ... h or l naming each. */
static const char *modes_left_wrong(const char *s, size_t n)
{
    bool state[N_MODES];
    for (size_t k = 0; k < N_MODES; k++)
        state[k] = modes[k].on;
    for (const char *p = memmem(s, n, "\033[?", 3); p != NULL;
         p = memmem(p + 3, n - (size_t)(p + 3 - s), "\033[?", 3)) {
        const char *q = p + 3, *end = s + n;
        int params[16], np = 0, v = 0;
        while (q < end && ((*q >= '0' && *q <= '9') || *q == ';')) {
            if (*q == ';') {
                if (np < 16)
                    params[np++] = v;
                v = 0;
            } else {
                v = v * 10 + (*q - '0');
            }
            q++;
        }
        if (q >= end || (*q != 'h' && *q != 'l'))
            continue;
        if (np < 16)
            params[np++] = v;
        for (int i = 0; i < np; i++)
            for (size_t k = 0; k < N_MODES; k++)
                if (modes[k].mode == params[i])
                    state[k] = *q == 'h';
    }
    for (size_t k = 0; k < N_MODES; k++)
        if (state[k] != modes[k].on)
            return modes[k].what;
    return NULL;
}

/* Waits for memchat's screen and checks it changed the terminal's
 * settings (else the comparison would prove nothing). */
static void signal_ready(struct tty *t)
{
    tty_wait_text(t, TERM_READY);

    struct termios during;
    assert_int_equal(tcgetattr(t->slave, &during), 0);
    char diff[512];
    termios_diff(&t->before, &during, diff, sizeof diff);
    if (diff[0] == '\0')
        tty_failed(t, "memchat runs with the terminal's settings unchanged: nothing to restore");
}

/* Starts memchat and waits as signal_ready does; returns with it running. */
static void signal_start(struct tty *t)
{
    const char *const env[] = {"MEMCHAT_PROVIDER=offline", NULL};
    tty_start(t, TERM_ROWS, TERM_COLS, env);
    signal_ready(t);
}

static void signal_check_status(struct tty *t, const struct sig_case *c)
{
    int st = t->status;
    char s[128];
    status_text(st, s, sizeof s);
    const char *name = strsignal(c->sig);
    if (c->outcome == SIG_DIES && !(WIFSIGNALED(st) && WTERMSIG(st) == c->sig))
        tty_failed(t, "after %s memchat ended with %s, not killed by that signal", name, s);
    if (c->outcome == SIG_QUITS && !(WIFEXITED(st) && WEXITSTATUS(st) == 128 + c->sig))
        tty_failed(t, "after %s memchat ended with %s, not exit status %d", name, s, 128 + c->sig);
}

static void signal_check_terminal(struct tty *t, const char *name)
{
    struct termios after;
    assert_int_equal(tcgetattr(t->slave, &after), 0);
    char diff[512];
    termios_diff(&t->before, &after, diff, sizeof diff);
    if (diff[0] != '\0')
        tty_failed(t, "after %s the terminal's settings differ:%s", name, diff);
    const char *wrong = modes_left_wrong(t->out, t->len);
    if (wrong != NULL)
        tty_failed(t, "after %s memchat left %s %s", name, wrong,
                   strcmp(wrong, "the visible cursor") == 0 ? "off" : "on");
    if (tty_reports())
        tty_failed(t, "a sanitizer reported on memchat (%s)", name);
}

static bool pred_sigint_notice(struct tty *t, const void *ud)
{
    (void)ud;
    return vt_has(t->vt, "/quit leaves memchat");
}

/* After the signal: the outcome c expects, then the terminal. */
static void signal_finish(struct tty *t, const struct sig_case *c)
{
    if (c->outcome == SIG_STAYS) {
        if (c->sig == SIGINT) /* idle, an empty line: it says how to leave */
            tty_wait(t, pred_sigint_notice, NULL, "the notice SIGINT gives on an empty line");
        tty_type(t, "still here");
        tty_wait_text(t, "still here");
        tty_quit(t);
    } else {
        tty_wait_exit(t);
        signal_check_status(t, c);
    }
    signal_check_terminal(t, strsignal(c->sig));
}

#define SIG_BATCH 6 /* memchats at once, each on its pty and with its data dir */

/* Every catchable signal that ends the process by default, and the two
 * that must not end it; a few at a time. */
static void test_signals_restore_terminal(void **state)
{
    (void)state;
    size_t n = sizeof sig_cases / sizeof sig_cases[0];
    for (size_t i = 0; i < n; i += SIG_BATCH) {
        size_t m = n - i < SIG_BATCH ? n - i : SIG_BATCH;
        struct tty t[SIG_BATCH];
        for (size_t k = 0; k < m; k++) {
            char data[4096];
            snprintf(data, sizeof data, "MEMCHAT_DATA_DIR=%s/data-%d", fx.dir,
                     sig_cases[i + k].sig);
            const char *const env[] = {"MEMCHAT_PROVIDER=offline", data, NULL};
            tty_start(&t[k], TERM_ROWS, TERM_COLS, env);
        }
        for (size_t k = 0; k < m; k++)
            signal_ready(&t[k]);
        for (size_t k = 0; k < m; k++)
            kill(t[k].pid, sig_cases[i + k].sig);
        for (size_t k = 0; k < m; k++) {
            signal_finish(&t[k], &sig_cases[i + k]);
            tty_close(&t[k]);
        }
    }
}

/* The engine's worker threads of pid (named mc-*), into tids (at most cap);
 * returns how many. */
static size_t worker_tids(pid_t pid, pid_t *tids, size_t cap)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && n < cap) {
        long tid = strtol(de->d_name, NULL, 10);
        if (tid <= 0 || tid == pid)
            continue;
        /* The engine names its workers mc-*; a sanitizer's own threads
         * (TSan's background thread blocks every signal) are not ours. */
        char comm[96];
        snprintf(comm, sizeof comm, "/proc/%d/task/%ld/comm", (int)pid, tid);
        char *name = tu_read_file(comm, NULL);
        if (name != NULL && strncmp(name, "mc-", 3) == 0)
            tids[n++] = (pid_t)tid;
        free(name);
    }
    closedir(d);
    return n;
}

/* The signals thread tid blocks (SigBlk of /proc/PID/task/TID/status). */
static unsigned long long thread_blocked(pid_t pid, pid_t tid)
{
    char path[96];
    snprintf(path, sizeof path, "/proc/%d/task/%d/status", (int)pid, (int)tid);
    char *text = tu_read_file(path, NULL);
    assert_non_null(text);
    const char *b = strstr(text, "\nSigBlk:");
    unsigned long long mask = b != NULL ? strtoull(b + 8, NULL, 16) : 0;
    free(text);
    return mask;
}

/* A fault on one of the engine's worker threads: the kernel delivers it
 * to that thread and, if the thread blocks it, ends the process at once
 * without running any handler (a worker parses what the network sent, the
 * likeliest place for a crash). No worker may block a fault signal, and
 * SIGSEGV sent to a worker alone (as a fault is) must restore the terminal
 * and end memchat with that signal. */
static void test_worker_fault_restores_terminal(void **state)
{
    (void)state;
    static const int faults[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS};
    struct tty t;
    signal_start(&t);
    pid_t tids[64];
    size_t n = worker_tids(t.pid, tids, 64);
    if (n == 0)
        tty_failed(&t, "memchat has no worker thread to send a fault to");
    for (size_t i = 0; i < n; i++) {
        unsigned long long blocked = thread_blocked(t.pid, tids[i]);
        for (size_t k = 0; k < sizeof faults / sizeof faults[0]; k++)
            if (blocked & (1ull << (faults[k] - 1)))
                tty_failed(&t, "thread %d blocks %s: a fault there skips the terminal's restore",
                           (int)tids[i], strsignal(faults[k]));
    }
    assert_int_equal(syscall(SYS_tgkill, t.pid, tids[0], SIGSEGV), 0);
    tty_wait_exit(&t);
    struct sig_case c = {SIGSEGV, SIG_DIES};
    signal_check_status(&t, &c);
    signal_check_terminal(&t, "SIGSEGV on a worker thread");
    tty_close(&t);
}

/* SIGKILL cannot be caught: the settings stay changed and the alternate
 * screen on, which shows the comparisons above can fail. */
static void test_sigkill_is_detected(void **state)
{
    (void)state;
    struct tty t;
    signal_start(&t);
    kill(t.pid, SIGKILL);
    tty_wait_exit(&t);
    struct termios after;
    assert_int_equal(tcgetattr(t.slave, &after), 0);
    char diff[512];
    termios_diff(&t.before, &after, diff, sizeof diff);
    if (diff[0] == '\0')
        tty_failed(&t, "the settings compare equal after SIGKILL: the comparison cannot fail");
    if (modes_left_wrong(t.out, t.len) == NULL)
        tty_failed(&t, "the modes look restored after SIGKILL: the check cannot fail");
    tty_close(&t);
}

/* ---- allocation failure under the TUI ------------------------------------------ */

#define OOM_KS      6 /* faulted sessions, spread over what follows the first draw */
#define OOM_MESSAGE "Where did I put the blue kettle?"

static bool pred_drawn_or_gone(struct tty *t, const void *ud)
{
    (void)ud;
    return t->exited || vt_has(t->vt, TERM_READY);
}

/* The offline answer, the turn's failure, or the end of memchat. */
static bool pred_answered_or_gone(struct tty *t, const void *ud)
{
    (void)ud;
    return t->exited || vt_has(t->vt, "[offline]") || vt_has(t->vt, "[error]");
}

/* The report MEMCHAT_FAULT_ALLOC_REPORT left at a normal exit: the
 * allocation count, and whether the fault struck (-1: no report). */
static unsigned long oom_report(const char *path, int *fired)
{
    char *text = tu_read_file(path, NULL);
    unsigned long n = 0;
    *fired = -1;
    if (text != NULL && sscanf(text, "allocs=%lu fired=%d", &n, fired) != 2)
        fail_msg("a malformed allocation report in %s: %s", path, text);
    free(text);
    unlink(path);
    return n;
}

/* The session a faulted run goes through as far as it can: the first
 * draw, a message and its answer (or its failure), the quit key. Stops
 * where memchat ends by itself; fails when a step outlasts the guard.
 * Returns where memchat ended. */
static const char *oom_session(struct tty *t)
{
    tty_wait(t, pred_drawn_or_gone, NULL, "the first draw (or the end)");
    if (t->exited)
        return "before the first draw";
    tty_type(t, OOM_MESSAGE "\r");
    tty_wait(t, pred_answered_or_gone, NULL, "the answer (or the end)");
    if (t->exited)
        return "during the turn";
    const char *stage = vt_has(t->vt, "[error]") ? "after the turn failed" : "after the answer";
    tty_type(t, "\025\004");
    tty_wait_exit(t);
    return stage;
}

/* How many allocations an unfaulted session makes (turn: with a message). */
static unsigned long oom_count(const char *report, bool turn)
{
    char rep[4200];
    snprintf(rep, sizeof rep, "MEMCHAT_FAULT_ALLOC_REPORT=%s", report);
    const char *const env[] = {"MEMCHAT_PROVIDER=offline", rep, NULL};
    struct tty t;
    tty_start(&t, TERM_ROWS, TERM_COLS, env);
    tty_wait_text(&t, TERM_READY);
    if (turn) {
        tty_type(&t, OOM_MESSAGE "\r");
        tty_wait_text(&t, "[offline]");
    }
    tty_quit_key(&t);
    signal_check_terminal(&t, "an unfaulted session");
    tty_close(&t);
    int fired;
    unsigned long n = oom_report(report, &fired);
    if (n == 0)
        fail_msg("an unfaulted session left no allocation report");
    return n;
}

/* memchat.db (if any) passes PRAGMA integrity_check and an unfaulted
 * command works on the same data. */
static void oom_check_data(unsigned long k)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/memchat.db", fx.data);
    if (access(path, F_OK) == 0) {
        sqlite3 *db = NULL;
        assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        char where[96];
        snprintf(where, sizeof where, "allocation %lu+ failing in the TUI", k);
        tu_expect_integrity(db, where);
        sqlite3_close(db);
    }
    struct run r;
    RUN(&r, NULL, "memory", "stats");
    if (r.status != 0)
        fail_msg("after allocation %lu+ failed in the TUI, memory stats exits %d: %s", k, r.status,
                 r.err);
    run_free(&r);
}

/* The output after the last time memchat left the alternate screen: what
 * it wrote on the shell's screen (the replayed stderr). */
static const char *oom_after_screen(const struct tty *t)
{
    const char *last = NULL;
    for (const char *p = memmem(t->out, t->len, "\033[?1049l", 8); p != NULL;
         p = memmem(p + 8, t->len - (size_t)(p + 8 - t->out), "\033[?1049l", 8))
        last = p + 8;
    return last != NULL ? last : t->out + t->len;
}

/* One session with allocation k and every later one failing: it ends by
 * itself, with the out-of-memory abort or an error of the contract; the
 * terminal is restored and the data is sound. Returns whether the fault
 * struck (a normal exit without it: k lay past this session's end). */
static bool oom_try(unsigned long k, const char *report)
{
    char fault[64], rep[4200];
    snprintf(fault, sizeof fault, "MEMCHAT_FAULT_ALLOC=%lu+", k);
    snprintf(rep, sizeof rep, "MEMCHAT_FAULT_ALLOC_REPORT=%s", report);
    const char *const env[] = {"MEMCHAT_PROVIDER=offline", fault, rep, NULL};
    struct tty t;
    tty_start(&t, TERM_ROWS, TERM_COLS, env);
    const char *stage = oom_session(&t);
    int st = t.status, fired;
    oom_report(report, &fired);
    char what[128], s[128];
    snprintf(what, sizeof what, "allocation %lu+ failing", k);
    status_text(st, s, sizeof s);
    const char *tail = oom_after_screen(&t);
    size_t tail_len = t.len - (size_t)(tail - t.out);
    bool struck = true;
    if (WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT) {
        if (memmem(tail, tail_len, "memchat: out of memory", 22) == NULL)
            tty_failed(&t,
                       "%s: memchat aborted without saying it ran out of memory (after "
                       "leaving the screen)",
                       what);
    } else if (WIFEXITED(st) && WEXITSTATUS(st) >= 1 && WEXITSTATUS(st) <= 4) {
        if (memmem(tail, tail_len, "memchat: ", 9) == NULL)
            tty_failed(&t, "%s: memchat ended with %s without a message", what, s);
    } else if (WIFEXITED(st) && WEXITSTATUS(st) == 0 && fired == 0) {
        struck = false;
    } else {
        tty_failed(&t, "%s: memchat ended with %s (fault %s)", what, s,
                   fired == 1 ? "struck" : "not reported");
    }
    print_message("# %s: %s %s%s\n", what, s, stage, struck ? "" : " (the fault never struck)");
    signal_check_terminal(&t, what);
    tty_close(&t);
    oom_check_data(k);
    return struck;
}

/* Allocation failure while the TUI runs (issue 13): after a first session
 * that creates the data, an unfaulted session with a turn counts its
 * allocations (T), one that quits at the first draw counts those up to
 * about there (D); then sessions with allocation k and every later one
 * failing, k spread over [D, T), go as far as they can. Each must end by
 * itself (no hang) with the out-of-memory abort or an error of the
 * contract, its message on the restored terminal, the terminal as it was
 * and the data sound. */
static void test_oom_restores_terminal(void **state)
{
    (void)state;
    char report[4096];
    snprintf(report, sizeof report, "%s/alloc-report", fx.dir);
    /* The first session creates the database (thousands of allocations
     * the later ones do not make): it only warms up. */
    oom_count(report, false);
    unsigned long total = oom_count(report, true);
    unsigned long drawn = oom_count(report, false);
    print_message("# allocations: %lu to the first draw and quit, %lu with a turn\n", drawn, total);
    if (total <= drawn + OOM_KS)
        fail_msg("a turn made %lu allocations, a session without one %lu: no span to fault", total,
                 drawn);
    size_t struck = 0;
    for (unsigned long i = 0; i < OOM_KS; i++)
        struck += oom_try(drawn + (total - drawn) * i / OOM_KS, report);
    /* Threads shift the counts a little between sessions, not past the
     * span's end: most faults must have struck. */
    if (struck + 1 < OOM_KS)
        fail_msg("only %zu of %d faults struck: the sessions' counts vary too much", struck,
                 OOM_KS);
}

static int term_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checker_catches_each_payload),
        cmocka_unit_test_setup_teardown(test_hostile_offline_clean, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_offline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_mock_clean, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_mock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_raw_clean, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_raw, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resize_during_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_signals_restore_terminal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_worker_fault_restores_terminal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigkill_is_detected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oom_restores_terminal, setup, teardown),
    };
    /* TERM_TEST_ONLY=pattern runs the matching tests alone. */
    const char *only = getenv("TERM_TEST_ONLY");
    if (only != NULL && *only != '\0')
        cmocka_set_test_filter(only);
    return cmocka_run_group_tests(tests, NULL, NULL);
}

int main(void)
{
    /* The emulator's widths and the scan's decoding are UTF-8's. */
    setlocale(LC_ALL, "C.UTF-8");
    signal(SIGPIPE, SIG_IGN);
    return harness_without_terminal(term_run);
}
