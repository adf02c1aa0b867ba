/*
 * Integration tests of the memchat program itself: each case runs the built
 * binary ($MEMCHAT_BIN) in a private HOME, data dir and config dir, feeds
 * its standard input through a pipe, and asserts on its output, its events
 * (parsed against the contract of DESIGN.md) and its exit code.
 */
#include "../unit/testutil.h"

#include <cJSON.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>

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

static void fx_env(const char *name, const char *value)
{
    size_t n = strlen(name) + strlen(value) + 2;
    char *s = malloc(n);
    assert_non_null(s);
    snprintf(s, n, "%s=%s", name, value);
    fx.env[fx.n_env++] = s;
    fx.env[fx.n_env] = NULL;
}

static int setup(void **state)
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

static int teardown(void **state)
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

static void run_free(struct run *r)
{
    free(r->out);
    free(r->err);
}

static void drain(int fd, char **s, size_t *len, size_t *cap, bool *open_)
{
    if (*cap - *len < 65536) {
        *cap = *cap * 2 + 65536;
        *s = realloc(*s, *cap);
        assert_non_null(*s);
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

/* Runs memchat with args, stdin_data on its standard input (NULL: closed at
 * once), and extra environment entries; collects everything. */
static void run_memchat(struct run *r, const char *stdin_data, const char *const *extra_env,
                        const char *const *args)
{
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
    bool out_open = true, err_open = true, in_open = true;
    if (in_len == 0) {
        close(in[1]);
        in_open = false;
    }
    while (out_open || err_open) {
        struct pollfd p[3] = {{.fd = out_open ? out[0] : -1, .events = POLLIN},
                              {.fd = err_open ? err[0] : -1, .events = POLLIN},
                              {.fd = in_open ? in[1] : -1, .events = POLLOUT}};
        /* The timeout only guards against a hung child; it fails the test. */
        int n = poll(p, 3, 60000);
        assert_true(n > 0);
        if (p[0].revents)
            drain(out[0], &r->out, &r->out_len, &out_cap, &out_open);
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

#define RUN(r, in, ...)                               \
    do {                                              \
        const char *const a_[] = {__VA_ARGS__, NULL}; \
        run_memchat((r), (in), NULL, a_);             \
    } while (0)

/* Parses NDJSON output into events; fails the test on any bad line. */
static size_t parse_events(const char *out, struct mc_event **evs, size_t max)
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

static void free_events(struct mc_event **evs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        mc_event_free(evs[i]);
}

/* The contract of one turn's events: shared UUIDv7 turn id, seq 0..n-1 in
 * order, turn.start first, exactly one turn.done with every stage key, and
 * one store-stage report. Returns the index of turn.done. */
static size_t check_turn_contract(struct mc_event **evs, size_t n)
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

static const struct mc_event *find_event(struct mc_event **evs, size_t n, enum mc_event_kind k)
{
    for (size_t i = 0; i < n; i++)
        if (evs[i]->kind == k)
            return evs[i];
    return NULL;
}

/* The concatenated text of every delta. */
static char *delta_text(struct mc_event **evs, size_t n)
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

/* --version and --help answer without touching the data dir. */
static void test_version_and_help(void **state)
{
    (void)state;
    struct run r;
    RUN(&r, NULL, "--version");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "memchat " PACKAGE_VERSION));
    run_free(&r);
    RUN(&r, NULL, "--help");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "ask"));
    assert_non_null(strstr(r.out, "chat"));
    assert_non_null(strstr(r.out, "config"));
    run_free(&r);
    RUN(&r, NULL, "ask", "--help");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "usage: memchat ask"));
    run_free(&r);
    struct stat st;
    assert_int_not_equal(stat(fx.data, &st), 0);
}

/* Usage errors exit 2 and say what is wrong. */
static void test_usage_errors_exit_2(void **state)
{
    (void)state;
    struct run r;
    RUN(&r, NULL, "frobnicate");
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "unknown verb 'frobnicate'"));
    run_free(&r);
    RUN(&r, NULL, "ask", "--frob", "x");
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "--frob"));
    run_free(&r);
    RUN(&r, NULL, "config", "--plain");
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "does not take --plain"));
    run_free(&r);
    RUN(&r, NULL, "ask", "--tenant", "a b", "hello");
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "MEMCHAT_TENANT"));
    run_free(&r);
    RUN(&r, NULL, "ask");
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "no question"));
    run_free(&r);
}

/* A plain ask answers offline on a fresh machine, creates the private data
 * dir, and records one metrics row. */
static void test_ask_offline_plain(void **state)
{
    (void)state;
    struct run r;
    RUN(&r, NULL, "ask", "What", "is", "memchat?");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "offline"));
    assert_non_null(strstr(r.out, "Nothing was recalled"));
    assert_non_null(strstr(r.out, "What is memchat?"));
    assert_int_equal(r.err_len, 0);
    run_free(&r);

    struct stat st;
    assert_int_equal(stat(fx.data, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    char db[4096];
    snprintf(db, sizeof db, "%s/memchat.db", fx.data);
    assert_int_equal(stat(db, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    sqlite3 *h;
    assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(h,
                                        "SELECT count(*), min(status), min(tenant), min(user_id) "
                                        "FROM turn_metrics",
                                        -1, &q, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(q, 0), 1);
    assert_string_equal((const char *)sqlite3_column_text(q, 1), "ok");
    assert_string_equal((const char *)sqlite3_column_text(q, 2), "default");
    assert_string_equal((const char *)sqlite3_column_text(q, 3), "tester");
    sqlite3_finalize(q);
    sqlite3_close(h);
}

/* ask --json prints only contract events, and their deltas are exactly the
 * text plain mode prints. */
static void test_ask_json_follows_contract(void **state)
{
    (void)state;
    struct run plain, js;
    RUN(&plain, NULL, "ask", "--tenant", "acme", "hello there");
    RUN(&js, NULL, "ask", "--json", "--tenant", "acme", "hello there");
    assert_int_equal(plain.status, 0);
    assert_int_equal(js.status, 0);
    struct mc_event *evs[256];
    size_t n = parse_events(js.out, evs, 256);
    check_turn_contract(evs, n);
    assert_string_equal(mc_event_str(evs[0], "tenant", ""), "acme");
    assert_string_equal(mc_event_str(evs[0], "user", ""), "tester");
    assert_string_equal(mc_event_str(evs[0], "agent", ""), "assistant");
    assert_string_equal(mc_event_str(evs[0], "provider", ""), "offline");
    assert_true(mc_event_bool(evs[0], "memory", false));
    const struct mc_event *ro = find_event(evs, n, MC_EV_ROLLOUT);
    assert_non_null(ro);
    assert_string_equal(mc_event_str(ro, "reason", ""), "env");
    const struct mc_event *usage = find_event(evs, n, MC_EV_USAGE);
    assert_non_null(usage);
    assert_true(mc_event_bool(usage, "estimated", false));
    assert_true(mc_event_num(usage, "completion_tokens", 0) > 0);
    const struct mc_event *cost = find_event(evs, n, MC_EV_COST);
    assert_non_null(cost);
    assert_true(mc_event_num(cost, "usd", -1) == 0.0);

    char *text = delta_text(evs, n);
    /* plain mode ends the reply with one newline */
    assert_int_equal(strlen(text) + 1, plain.out_len);
    assert_memory_equal(text, plain.out, strlen(text));
    free(text);
    free_events(evs, n);
    run_free(&plain);
    run_free(&js);
}

/* --no-memory is the session rule: nothing retrieved, store skipped as
 * memory_off. */
static void test_ask_no_memory(void **state)
{
    (void)state;
    struct run r;
    RUN(&r, NULL, "ask", "--json", "--no-memory", "hi");
    assert_int_equal(r.status, 0);
    struct mc_event *evs[256];
    size_t n = parse_events(r.out, evs, 256);
    check_turn_contract(evs, n);
    assert_false(mc_event_bool(evs[0], "memory", true));
    const struct mc_event *ro = find_event(evs, n, MC_EV_ROLLOUT);
    assert_string_equal(mc_event_str(ro, "reason", ""), "session");
    assert_false(mc_event_bool(ro, "memory", true));
    for (size_t i = 0; i < n; i++) {
        if (evs[i]->kind == MC_EV_MEMORY_SKIPPED) {
            assert_string_equal(mc_event_str(evs[i], "stage", ""), "store");
            assert_string_equal(mc_event_str(evs[i], "reason", ""), "memory_off");
        }
        assert_int_not_equal(evs[i]->kind, MC_EV_MEMORY_RETRIEVED);
    }
    free_events(evs, n);
    run_free(&r);
}

/* The question may come from stdin, or from both the arguments and stdin. */
static void test_ask_question_from_stdin(void **state)
{
    (void)state;
    struct run r;
    RUN(&r, "from stdin only\n", "ask");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "from stdin only"));
    run_free(&r);
    RUN(&r, "line one of the notes\n", "ask", "summarise");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "summarise"));
    assert_non_null(strstr(r.out, "line one of the notes"));
    run_free(&r);
}

/* Bad input is refused before any turn: invalid UTF-8, too large. */
static void test_ask_refuses_bad_input(void **state)
{
    (void)state;
    struct run r;
    RUN(&r, "caf\xc3 au lait", "ask");
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "not valid UTF-8"));
    assert_non_null(strstr(r.err, "offset 3"));
    run_free(&r);
    char big[301];
    memset(big, 'a', 300);
    big[300] = '\0';
    RUN(&r, big, "--set", "MEMCHAT_MAX_INPUT_BYTES=100", "ask");
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "MEMCHAT_MAX_INPUT_BYTES"));
    run_free(&r);
}

/* memchat config names every source. */
static void test_config_sources(void **state)
{
    (void)state;
    mkdir(fx.cfgdir, 0700);
    char *f = tu_write_file(fx.cfgdir, "config.env", "# mine\nMEMCHAT_AGENT=planner\n");
    free(f);
    const char *const env[] = {"RAG_ENABLED=false", NULL};
    const char *const args[] = {"config", "--json", "--set", "MEMCHAT_TENANT=acme", NULL};
    struct run r;
    run_memchat(&r, NULL, env, args);
    assert_int_equal(r.status, 0);
    int seen = 0;
    char *copy = strdup(r.out), *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *o = cJSON_Parse(line);
        assert_non_null(o);
        const char *name = cJSON_GetObjectItem(o, "name")->valuestring;
        const char *value = cJSON_GetObjectItem(o, "value")->valuestring;
        const char *source = cJSON_GetObjectItem(o, "source")->valuestring;
        if (strcmp(name, "MEMCHAT_TENANT") == 0) {
            assert_string_equal(value, "acme");
            assert_string_equal(source, "flag");
            seen++;
        } else if (strcmp(name, "MEMCHAT_AGENT") == 0) {
            assert_string_equal(value, "planner");
            assert_string_equal(source, "config.env:2");
            seen++;
        } else if (strcmp(name, "RAG_ENABLED") == 0) {
            assert_string_equal(value, "false");
            assert_string_equal(source, "env");
            seen++;
        } else if (strcmp(name, "MEMORY_HISTORY_TURNS") == 0) {
            assert_string_equal(source, "default");
            seen++;
        }
        cJSON_Delete(o);
    }
    free(copy);
    assert_int_equal(seen, 4);
    run_free(&r);
}

/* A working-directory .env may not redirect the data dir; the error says
 * where to put it instead. An unknown MEMCHAT_ variable only warns. */
static void test_config_untrusted_dotenv_and_unknown_env(void **state)
{
    (void)state;
    char *f = tu_write_file(fx.dir, ".env", "MEMCHAT_DATA_DIR=/tmp/elsewhere\n");
    struct run r;
    RUN(&r, NULL, "ask", "hi");
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, ".env:1"));
    assert_non_null(strstr(r.err, "MEMCHAT_DATA_DIR"));
    assert_non_null(strstr(r.err, "config.env"));
    run_free(&r);
    unlink(f);
    free(f);

    const char *const env[] = {"MEMCHAT_TENAT=acme", NULL};
    const char *const args[] = {"ask", "hi", NULL};
    run_memchat(&r, NULL, env, args);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.err, "warning"));
    assert_non_null(strstr(r.err, "MEMCHAT_TENANT"));
    run_free(&r);
}

/* A data file that is not memchat's is an error, and is left untouched. */
static void test_corrupt_data_file_is_left_alone(void **state)
{
    (void)state;
    mkdir(fx.data, 0700);
    char *path = tu_write_file(fx.data, "memchat.db", "this is not a database at all\n");
    struct run r;
    RUN(&r, NULL, "ask", "hi");
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "memchat.db"));
    run_free(&r);
    char *after = tu_read_file(path, NULL);
    assert_string_equal(after, "this is not a database at all\n");
    free(after);
    free(path);
}

/* chat --plain through a pipe: one reply per line, the conversation carries
 * over, commands work, /quit ends it. */
static void test_chat_plain_pipe(void **state)
{
    (void)state;
    struct run r;
    RUN(&r, "hello\n/memory off\nsecond message\n/quit\nnever answered\n", "chat", "--plain");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "hello"));
    assert_non_null(strstr(r.out, "memory: off"));
    assert_non_null(strstr(r.out, "second message"));
    assert_null(strstr(r.out, "never answered"));
    assert_null(strstr(r.out, "> ")); /* no prompt when stdin is not a terminal */
    run_free(&r);
}

/* chat --json: each message is its own turn with its own id and seq. */
static void test_chat_json_turns(void **state)
{
    (void)state;
    struct run r;
    RUN(&r, "one\ntwo\n", "chat", "--json");
    assert_int_equal(r.status, 0);
    struct mc_event *evs[512];
    size_t n = parse_events(r.out, evs, 512);
    size_t split = 0;
    while (split < n && strcmp(evs[split]->turn, evs[0]->turn) == 0)
        split++;
    assert_true(split < n);
    check_turn_contract(evs, split);
    check_turn_contract(evs + split, n - split);
    assert_true(strcmp(evs[0]->turn, evs[split]->turn) < 0); /* UUIDv7 order */
    free_events(evs, n);
    run_free(&r);
}

/* A line over the input limit is refused and skipped; the chat goes on. */
static void test_chat_skips_overlong_line(void **state)
{
    (void)state;
    size_t n = 200000;
    char *in = malloc(n + 32);
    memset(in, 'x', n);
    snprintf(in + n, 32, "\nshort one\n");
    struct run r;
    RUN(&r, in, "--set", "MEMCHAT_MAX_INPUT_BYTES=1000", "chat");
    assert_non_null(strstr(r.err, "longer than MEMCHAT_MAX_INPUT_BYTES"));
    assert_non_null(strstr(r.out, "short one"));
    assert_null(strstr(r.out, "xxxxxxxxxx"));
    assert_int_equal(r.status, 0);
    run_free(&r);
    free(in);
}

/* With no verb and no terminal, memchat runs the line chat. */
static void test_bare_memchat_chats(void **state)
{
    (void)state;
    struct run r;
    RUN(&r, "hi there\n", "--no-memory");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "hi there"));
    run_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_version_and_help, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_errors_exit_2, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ask_offline_plain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ask_json_follows_contract, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ask_no_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ask_question_from_stdin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ask_refuses_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_sources, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_untrusted_dotenv_and_unknown_env, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_data_file_is_left_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_plain_pipe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_json_turns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_skips_overlong_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bare_memchat_chats, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
