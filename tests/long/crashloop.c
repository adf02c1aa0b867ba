/*
 * crashloop (make check-long-crash): crash safety of the data file. It
 * runs `memchat chat --plain --json` on one data directory, feeds it
 * messages (each turn writes a ledger row and stores a memory), and kills
 * it with SIGKILL at random moments: after a random number of turns plus a
 * random few microseconds, so the kill lands between writes as well as in
 * the middle of one (a few runs end normally, closing stdin). After each
 * kill it opens memchat.db the way the next process does and checks that
 * PRAGMA integrity_check says ok and that every write whose event the
 * program had emitted is there: the ledger row of each `cost` event and
 * each memory of each `memory.stored` event. An event on stdout is a
 * promise to the user; this holds the program to it.
 *
 * usage: crashloop MEMCHAT_BIN DIR [WRITES [KILLS [SEED]]]
 * (defaults 10000 writes, 200 kills, the time as seed); exits 0 when both
 * counts are reached with every check passing, 1 at the first failure.
 */
#include "config.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The writes the program promised: ledger turns and memory ids. */
struct promised {
    char **turns, **ids;
    size_t n_turns, n_ids, cap_turns, cap_ids;
};

struct child {
    pid_t pid;
    int in, out;
    char buf[1 << 16];
    size_t len;
    unsigned turns_done; /* turn.done events in this run */
};

static unsigned long rng_state;

static unsigned long rng(void)
{
    rng_state = rng_state * 6364136223846793005ul + 1442695040888963407ul;
    return rng_state >> 33;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "crashloop: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static void push(char ***v, size_t *n, size_t *cap, const char *s)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 1024;
        *v = realloc(*v, *cap * sizeof **v);
        if (*v == NULL)
            die("out of memory");
    }
    (*v)[(*n)++] = strdup(s);
}

static void child_start(struct child *c, const char *bin, const char *dir)
{
    int in[2], out[2];
    if (pipe(in) != 0 || pipe(out) != 0)
        die("pipe: %s", strerror(errno));
    c->pid = fork();
    if (c->pid < 0)
        die("fork: %s", strerror(errno));
    if (c->pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 2);
        close(in[0]), close(in[1]), close(out[0]), close(out[1]), close(null);
        char data[4096], cfg[4096];
        snprintf(data, sizeof data, "%s/data", dir);
        snprintf(cfg, sizeof cfg, "%s/config", dir);
        setenv("HOME", dir, 1);
        setenv("MEMCHAT_DATA_DIR", data, 1);
        setenv("MEMCHAT_CONFIG_DIR", cfg, 1);
        execl(bin, "memchat", "chat", "--plain", "--json", "--tenant", "crash", (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    c->in = in[1];
    c->out = out[0];
    c->len = 0;
    c->turns_done = 0;
}

/* Records what one event line promised. */
static void take_event(struct child *c, struct promised *p, const char *line)
{
    cJSON *j = cJSON_Parse(line);
    if (j == NULL)
        return; /* a line cut by the kill is not an event */
    const char *ev = cJSON_GetStringValue(cJSON_GetObjectItem(j, "event"));
    const char *turn = cJSON_GetStringValue(cJSON_GetObjectItem(j, "turn"));
    if (ev != NULL && turn != NULL && strcmp(ev, "cost") == 0)
        push(&p->turns, &p->n_turns, &p->cap_turns, turn);
    if (ev != NULL && strcmp(ev, "memory.stored") == 0) {
        const cJSON *id;
        cJSON_ArrayForEach(id, cJSON_GetObjectItem(j, "ids"))
        {
            if (cJSON_IsString(id))
                push(&p->ids, &p->n_ids, &p->cap_ids, id->valuestring);
        }
    }
    if (ev != NULL && strcmp(ev, "turn.done") == 0)
        c->turns_done++;
    cJSON_Delete(j);
}

/* Reads what is there (waiting at most ms); false at end of file. */
static bool child_read(struct child *c, struct promised *p, int ms)
{
    struct pollfd pf = {.fd = c->out, .events = POLLIN};
    if (poll(&pf, 1, ms) <= 0)
        return true;
    ssize_t n = read(c->out, c->buf + c->len, sizeof c->buf - c->len - 1);
    if (n <= 0)
        return false;
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    char *start = c->buf, *nl;
    while ((nl = strchr(start, '\n')) != NULL) {
        *nl = '\0';
        take_event(c, p, start);
        start = nl + 1;
    }
    c->len -= (size_t)(start - c->buf);
    memmove(c->buf, start, c->len);
    if (c->len == sizeof c->buf - 1)
        die("an event line longer than 64 KiB");
    return true;
}

static bool db_has(sqlite3 *db, const char *sql, const char *key)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        die("cannot query memchat.db: %s", sqlite3_errmsg(db));
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    bool found = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    return found;
}

/* The checks after a kill; from is where the new promises start (older
 * ones are checked again every tenth round and at the end). */
static void verify(const char *dir, const struct promised *p, size_t from_t, size_t from_i)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/data/memchat.db", dir);
    if (access(path, F_OK) != 0)
        return; /* killed before the file existed */
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
        die("cannot open %s: %s", path, sqlite3_errmsg(db));
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL);
    const char *ok =
        sqlite3_step(st) == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
    if (ok == NULL || strcmp(ok, "ok") != 0)
        die("%s is damaged: %s", path, ok != NULL ? ok : sqlite3_errmsg(db));
    sqlite3_finalize(st);
    for (size_t i = from_t; i < p->n_turns; i++)
        if (!db_has(db, "SELECT 1 FROM ledger WHERE turn = ?1", p->turns[i]))
            die("the ledger row of turn %s is lost (its cost event was emitted)", p->turns[i]);
    for (size_t i = from_i; i < p->n_ids; i++)
        if (!db_has(db, "SELECT 1 FROM memories WHERE id = ?1", p->ids[i]))
            die("memory %s is lost (its memory.stored event was emitted)", p->ids[i]);
    sqlite3_close(db);
}

/* One life of the program: turns until the planned moment, then SIGKILL
 * (or, one run in ten, a normal end). */
static bool one_life(const char *bin, const char *dir, struct promised *p, unsigned long *msg)
{
    struct child c;
    child_start(&c, bin, dir);
    unsigned target = (unsigned)(rng() % 40);
    long delay_us = (long)(rng() % 4000);
    bool graceful = rng() % 10 == 0;
    unsigned sent = 0;
    bool open_ = true;
    while (open_ && c.turns_done < target) {
        if (sent == c.turns_done) {
            char line[256];
            int n = snprintf(line, sizeof line, "fact %lu: the %lu-th crate holds %lu apples\n",
                             *msg, *msg * 7 % 1000, rng() % 100000);
            (*msg)++;
            if (write(c.in, line, (size_t)n) != n)
                break;
            sent++;
        }
        open_ = child_read(&c, p, 1000);
    }
    if (graceful) {
        close(c.in);
        while (child_read(&c, p, 1000))
            ;
    } else {
        /* Keep reading during the delay: what arrives before the kill was
         * emitted, so it is promised. */
        struct timespec t0, now;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (;;) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            long el = (now.tv_sec - t0.tv_sec) * 1000000L + (now.tv_nsec - t0.tv_nsec) / 1000;
            if (el >= delay_us || !child_read(&c, p, 0))
                break;
        }
        kill(c.pid, SIGKILL);
        while (child_read(&c, p, 1000))
            ;
        close(c.in);
    }
    close(c.out);
    int st;
    waitpid(c.pid, &st, 0);
    if (graceful && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
        die("a normal end exited with status %d",
            WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    return !graceful;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: crashloop MEMCHAT_BIN DIR [WRITES [KILLS [SEED]]]\n");
        return 2;
    }
    unsigned long want_writes = argc > 3 ? strtoul(argv[3], NULL, 10) : 10000;
    unsigned long want_kills = argc > 4 ? strtoul(argv[4], NULL, 10) : 200;
    rng_state = argc > 5 ? strtoul(argv[5], NULL, 10) : (unsigned long)time(NULL);
    printf("crashloop: seed %lu, %lu writes, %lu kills\n", rng_state, want_writes, want_kills);
    signal(SIGPIPE, SIG_IGN);
    struct promised p = {0};
    unsigned long kills = 0, lives = 0, msg = 0;
    size_t checked_t = 0, checked_i = 0;
    while (p.n_turns + p.n_ids < want_writes || kills < want_kills) {
        kills += one_life(argv[1], argv[2], &p, &msg);
        lives++;
        bool full = lives % 10 == 0;
        verify(argv[2], &p, full ? 0 : checked_t, full ? 0 : checked_i);
        checked_t = p.n_turns;
        checked_i = p.n_ids;
        if (lives % 25 == 0)
            printf("crashloop: %lu runs, %lu kills, %zu ledger rows and %zu memories checked\n",
                   lives, kills, p.n_turns, p.n_ids);
        fflush(stdout);
    }
    verify(argv[2], &p, 0, 0);
    printf("crashloop: ok: %lu runs, %lu killed with SIGKILL, %zu ledger rows and %zu memories "
           "promised by events, none lost, integrity_check ok after every run\n",
           lives, kills, p.n_turns, p.n_ids);
    for (size_t i = 0; i < p.n_turns; i++)
        free(p.turns[i]);
    for (size_t i = 0; i < p.n_ids; i++)
        free(p.ids[i]);
    free(p.turns);
    free(p.ids);
    return 0;
}
