/*
 * The harness of the integration suites: runs the built memchat ($MEMCHAT_BIN)
 * in a private HOME, data dir and config dir, feeds its stdin through a pipe,
 * collects stdout, stderr and the exit code (optionally sending a signal once
 * a given text has appeared on stdout), and checks a turn's events against
 * the contract of DESIGN.md. Header-only, for the test programs that run
 * the program itself.
 */
#ifndef MEMCHAT_CLI_HARNESS_H
#define MEMCHAT_CLI_HARNESS_H

#include "../unit/testutil.h"

#include <cJSON.h>
#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "memchat/event.h"
#include "util/uuid.h"

struct run {
    char *out, *err;
    size_t out_len, err_len;
    int status; /* exit code, or 128+signal */
};

struct fixture {
    char *dir;     /* HOME and working directory */
    char *data;    /* MEMCHAT_DATA_DIR */
    char *cfgdir;  /* MEMCHAT_CONFIG_DIR */
    char *env[16]; /* the child's whole environment */
    int n_env;
};

static struct fixture fx;

__attribute__((unused)) static void fx_env(const char *name, const char *value)
{
    size_t n = strlen(name) + strlen(value) + 2;
    char *s = malloc(n);
    assert_non_null(s);
    snprintf(s, n, "%s=%s", name, value);
    fx.env[fx.n_env++] = s;
    fx.env[fx.n_env] = NULL;
}

__attribute__((unused)) static int setup(void **state)
{
    (void)state;
    memset(&fx, 0, sizeof fx);
    fx.dir = tu_mkdtemp();
    size_t n = strlen(fx.dir) + 16;
    fx.data = malloc(n);
    fx.cfgdir = malloc(n);
    snprintf(fx.data, n, "%s/data", fx.dir);
    snprintf(fx.cfgdir, n, "%s/config", fx.dir);
    fx_env("HOME", fx.dir);
    fx_env("MEMCHAT_DATA_DIR", fx.data);
    fx_env("MEMCHAT_CONFIG_DIR", fx.cfgdir);
    fx_env("LOGNAME", "tester");
    fx_env("PATH", "/usr/bin:/bin");
    return 0;
}

__attribute__((unused)) static int teardown(void **state)
{
    (void)state;
    tu_rmtree(fx.dir);
    for (int i = 0; i < fx.n_env; i++)
        free(fx.env[i]);
    free(fx.dir);
    free(fx.data);
    free(fx.cfgdir);
    return 0;
}

__attribute__((unused)) static void run_free(struct run *r)
{
    free(r->out);
    free(r->err);
}

__attribute__((unused)) static void drain(int fd, char **s, size_t *len, size_t *cap, bool *open_)
{
    if (*cap - *len < 65536) {
        *cap = *cap * 2 + 65536;
        *s = realloc(*s, *cap);
        assert_non_null(*s);
        /* Terminated before the read: when it reads nothing, a reused
         * block would otherwise still show an earlier run's output. */
        (*s)[*len] = '\0';
    }
    ssize_t n = read(fd, *s + *len, *cap - *len - 1);
    if (n <= 0) {
        *open_ = false;
        close(fd);
        return;
    }
    *len += (size_t)n;
    (*s)[*len] = '\0';
}

/* When to send a running memchat a signal: once signal_after has
 * appeared on its stdout, or once ready(ud) is true (asked every few
 * milliseconds: for a state outside memchat, such as a test server's
 * log). */
struct run_trigger {
    const char *signal_after;
    bool (*ready)(void *ud);
    void *ud;
    int signo;
};

/* Runs memchat with args, stdin_data on its standard input (NULL: closed at
 * once), and extra environment entries; collects everything; sends the
 * trigger's signal once (t NULL: none). */
__attribute__((unused)) static void run_memchat_when(struct run *r, const char *stdin_data,
                                                     const char *const *extra_env,
                                                     const char *const *args,
                                                     const struct run_trigger *t)
{
    const char *signal_after = t != NULL ? t->signal_after : NULL;
    bool (*ready)(void *) = t != NULL ? t->ready : NULL;
    int signo = t != NULL ? t->signo : 0;
    const char *bin = getenv("MEMCHAT_BIN");
    assert_non_null(bin);
    char *argv[64], *envp[40];
    int argc = 0, envc = 0;
    argv[argc++] = (char *)(uintptr_t) "memchat";
    for (; args[argc - 1] != NULL; argc++)
        argv[argc] = (char *)(uintptr_t)args[argc - 1];
    argv[argc] = NULL;
    for (int i = 0; i < fx.n_env; i++)
        envp[envc++] = fx.env[i];
    for (int i = 0; extra_env != NULL && extra_env[i] != NULL; i++)
        envp[envc++] = (char *)(uintptr_t)extra_env[i];
    envp[envc] = NULL;

    int in[2], out[2], err[2];
    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(out), 0);
    assert_int_equal(pipe(err), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
        close(in[0]), close(in[1]), close(out[0]), close(out[1]), close(err[0]), close(err[1]);
        if (chdir(fx.dir) != 0)
            _exit(127);
        execve(bin, argv, envp);
        _exit(127);
    }
    close(in[0]), close(out[1]), close(err[1]);
    signal(SIGPIPE, SIG_IGN);
    memset(r, 0, sizeof *r);
    size_t out_cap = 0, err_cap = 0, off = 0, in_len = stdin_data ? strlen(stdin_data) : 0;
    long long guard_ms = 0;
    bool out_open = true, err_open = true, in_open = true;
    if (in_len == 0) {
        close(in[1]);
        in_open = false;
    }
    while (out_open || err_open) {
        struct pollfd p[3] = {{.fd = out_open ? out[0] : -1, .events = POLLIN},
                              {.fd = err_open ? err[0] : -1, .events = POLLIN},
                              {.fd = in_open ? in[1] : -1, .events = POLLOUT}};
        /* The timeout only guards against a hung child; it fails the test.
         * A ready() trigger is asked between short polls, within the same
         * guard. */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        long long now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
        if (guard_ms == 0)
            guard_ms = now + 60000;
        int n = poll(p, 3, ready != NULL ? 5 : 60000);
        assert_true(n > 0 || (ready != NULL && now < guard_ms));
        if (ready != NULL && ready(t->ud)) {
            kill(pid, signo);
            ready = NULL;
        }
        if (p[0].revents) {
            drain(out[0], &r->out, &r->out_len, &out_cap, &out_open);
            if (signal_after != NULL && r->out != NULL && strstr(r->out, signal_after) != NULL) {
                kill(pid, signo);
                signal_after = NULL;
            }
        }
        if (p[1].revents)
            drain(err[0], &r->err, &r->err_len, &err_cap, &err_open);
        if (in_open && p[2].revents) {
            ssize_t w = write(in[1], stdin_data + off, in_len - off);
            if (w > 0)
                off += (size_t)w;
            if (w < 0 || off == in_len) {
                close(in[1]);
                in_open = false;
            }
        }
    }
    if (in_open)
        close(in[1]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (r->out == NULL)
        r->out = strdup("");
    if (r->err == NULL)
        r->err = strdup("");
}

/* run_memchat_when, signalled once signal_after appears on stdout. */
__attribute__((unused)) static void run_memchat_signal(struct run *r, const char *stdin_data,
                                                       const char *const *extra_env,
                                                       const char *const *args,
                                                       const char *signal_after, int signo)
{
    struct run_trigger t = {.signal_after = signal_after, .signo = signo};
    run_memchat_when(r, stdin_data, extra_env, args, &t);
}

/* run_memchat_when without a signal. */
__attribute__((unused)) static void run_memchat(struct run *r, const char *stdin_data,
                                                const char *const *extra_env,
                                                const char *const *args)
{
    run_memchat_when(r, stdin_data, extra_env, args, NULL);
}

#define RUN(r, in, ...)                               \
    do {                                              \
        const char *const a_[] = {__VA_ARGS__, NULL}; \
        run_memchat((r), (in), NULL, a_);             \
    } while (0)

/* RUN with extra environment entries (a NULL-terminated list). */
#define RUNE(r, in, env, ...)                         \
    do {                                              \
        const char *const a_[] = {__VA_ARGS__, NULL}; \
        run_memchat((r), (in), (env), a_);            \
    } while (0)

/* Runs fn (a test program's body) where no memchat child can reach a
 * terminal: when this process has one, fn runs in a forked child that
 * starts a new session, so a child that would prompt on /dev/tty (a key,
 * a passphrase) finds none, as under make check, instead of waiting for a
 * person at the keyboard. Returns fn's exit code. */
__attribute__((unused)) static int harness_without_terminal(int (*fn)(void))
{
    int tty = open("/dev/tty", O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (tty < 0)
        return fn();
    close(tty);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return 99;
    if (pid == 0) {
        if (setsid() < 0)
            _exit(99);
        exit(fn());
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return 99;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Fails with what memchat said unless r exited with want. */
__attribute__((unused)) static void expect_exit(const struct run *r, int want, const char *what)
{
    if (r->status != want)
        fail_msg("%s: exit %d, want %d\nstdout: %s\nstderr: %s", what, r->status, want, r->out,
                 r->err);
}

/* Fails unless haystack (one of r's streams) holds needle. */
__attribute__((unused)) static void expect_in(const char *haystack, const char *needle,
                                              const char *what)
{
    if (strstr(haystack, needle) == NULL)
        fail_msg("%s: '%s' not found in:\n%s", what, needle, haystack);
}

/* The JSON lines of out as one array; fails on a line that is not an
 * object. The caller deletes it. */
__attribute__((unused)) static cJSON *json_lines(const char *out)
{
    cJSON *arr = cJSON_CreateArray();
    char *copy = strdup(out), *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *o = cJSON_Parse(line);
        if (!cJSON_IsObject(o))
            fail_msg("not a JSON object line: %s", line);
        cJSON_AddItemToArray(arr, o);
    }
    free(copy);
    return arr;
}

__attribute__((unused)) static const char *jstr(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsString(v))
        fail_msg("field %s is not a string", name);
    return v->valuestring;
}

__attribute__((unused)) static double jnum(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsNumber(v))
        fail_msg("field %s is not a number", name);
    return v->valuedouble;
}

/* Parses NDJSON output into events; fails the test on any bad line. */
__attribute__((unused)) static size_t parse_events(const char *out, struct mc_event **evs,
                                                   size_t max)
{
    size_t n = 0;
    char *copy = strdup(out), *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char err[128];
        struct mc_event *ev = mc_event_parse(line, err, sizeof err);
        if (ev == NULL)
            fail_msg("not an event line (%s): %s", err, line);
        assert_true(n < max);
        evs[n++] = ev;
    }
    free(copy);
    return n;
}

__attribute__((unused)) static void free_events(struct mc_event **evs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        mc_event_free(evs[i]);
}

/* The contract of one turn's events: shared UUIDv7 turn id, seq 0..n-1 in
 * order, turn.start first, exactly one turn.done with every stage key, and
 * one store-stage report. Returns the index of turn.done. */
__attribute__((unused)) static size_t check_turn_contract(struct mc_event **evs, size_t n)
{
    assert_true(n >= 3);
    assert_int_equal(evs[0]->kind, MC_EV_TURN_START);
    assert_true(uuid7_time_ms(evs[0]->turn) > 0);
    size_t done = n, stored = 0;
    int64_t last_ts = 0;
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(evs[i]->turn, evs[0]->turn);
        assert_int_equal(evs[i]->seq, (int64_t)i);
        assert_true(evs[i]->ts_ms >= last_ts);
        last_ts = evs[i]->ts_ms;
        if (evs[i]->kind == MC_EV_TURN_DONE) {
            assert_int_equal(done, n); /* only one */
            done = i;
        }
        if ((evs[i]->kind == MC_EV_MEMORY_SKIPPED &&
             strcmp(mc_event_str(evs[i], "stage", ""), "store") == 0) ||
            evs[i]->kind == MC_EV_MEMORY_STORED)
            stored++;
    }
    assert_true(done < n);
    assert_int_equal(stored, 1);
    static const char *const start_fields[] = {"tenant", "user",   "agent", "provider",
                                               "model",  "memory", "step"};
    for (size_t i = 0; i < sizeof start_fields / sizeof *start_fields; i++)
        assert_non_null(cJSON_GetObjectItemCaseSensitive(evs[0]->json, start_fields[i]));
    const cJSON *lat = cJSON_GetObjectItemCaseSensitive(evs[done]->json, "latency_ms");
    assert_true(cJSON_IsObject(lat));
    for (int s = 0; s < MC_STAGE__COUNT; s++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(lat, mc_stage_name((enum mc_stage)s));
        if (v == NULL)
            fail_msg("turn.done lacks latency_ms.%s", mc_stage_name((enum mc_stage)s));
        assert_true(cJSON_IsNumber(v) || cJSON_IsNull(v));
    }
    assert_true(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(lat, "total")));
    return done;
}

__attribute__((unused)) static const struct mc_event *find_event(struct mc_event **evs, size_t n,
                                                                 enum mc_event_kind k)
{
    for (size_t i = 0; i < n; i++)
        if (evs[i]->kind == k)
            return evs[i];
    return NULL;
}

/* The first event of kind k; fails the test when there is none. */
__attribute__((unused, returns_nonnull)) static const struct mc_event *
must_event(struct mc_event **evs, size_t n, enum mc_event_kind k)
{
    const struct mc_event *ev = find_event(evs, n, k);
    if (ev == NULL)
        fail_msg("no %s event", mc_event_kind_name(k));
    return ev;
}

/* Calls fn with the path and the bytes of every regular file under dir,
 * recursively (symlinks not followed), until fn returns true. True when
 * fn did. */
__attribute__((unused)) static bool
harness_walk_files(const char *dir,
                   bool (*fn)(void *ud, const char *path, const char *data, size_t len), void *ud)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return false;
    bool stop = false;
    struct dirent *de;
    while (!stop && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        struct stat st;
        if (lstat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            stop = harness_walk_files(path, fn, ud);
            continue;
        }
        if (!S_ISREG(st.st_mode))
            continue;
        size_t len = 0;
        char *s = tu_read_file(path, &len);
        if (s != NULL)
            stop = fn(ud, path, s, len);
        free(s);
    }
    closedir(d);
    return stop;
}

/* The concatenated text of every delta. */
__attribute__((unused)) static char *delta_text(struct mc_event **evs, size_t n)
{
    size_t cap = 1, len = 0;
    for (size_t i = 0; i < n; i++)
        if (evs[i]->kind == MC_EV_DELTA)
            cap += strlen(mc_event_str(evs[i], "text", ""));
    char *s = calloc(1, cap);
    for (size_t i = 0; i < n; i++)
        if (evs[i]->kind == MC_EV_DELTA) {
            const char *t = mc_event_str(evs[i], "text", "");
            memcpy(s + len, t, strlen(t));
            len += strlen(t);
        }
    return s;
}

#endif
