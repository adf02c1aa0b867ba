/*
 * The shared backends of issue 12 end to end, through real processes: the
 * built memchat run many times over against one real redis-server (Debian's
 * package, on 127.0.0.1 and an ephemeral port, no persistence; see
 * redis_harness.h) and the loopback LLM test server (mockllm). Each case
 * plays several machines: every `memchat ask` gets its own HOME, data and
 * config directory unless the case says otherwise, so whatever the
 * processes share they share through Redis alone.
 *
 * What a user of the shared backends relies on: a tenant limit of N
 * requests per window holds across concurrent processes (the test server
 * sees exactly N, the others are refused with exit 4), where the
 * in-process limiter lets each process admit its own N; a reply cached by
 * one process is a hit in another; Redis killed mid-run loses no turn
 * (REDIS_FAILURE=open falls back and says so, closed refuses) and the
 * shared limit holds again once Redis is back; a bad REDIS_URL is a
 * configuration error and its password never shows; purge reaches the
 * shared cache; doctor reports Redis; budgets are shared too.
 *
 * Processes run truly concurrently (all spawned, then all waited for);
 * every wait is bounded by a guard that fails the test instead of hanging,
 * and no assertion depends on timing.
 */
#include "cli_harness.h"
#include "redis_harness.h"

#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>

#include "../server/mockserver.h"

/* How long a batch of memchat processes may take before the test fails
 * (generous: the binaries may run under ASan on two shared cores). */
#define PROC_GUARD_MS 120000
/* The processes of a concurrent batch: the eight. */
#define N_PROCS 8
/* The shared tenant limit, in requests per window. */
#define N_LIMIT 3

static struct mock *mock;
static struct redis_server *srv;

/* ---- environments -------------------------------------------------------- */

/* A child's whole environment: owned strings, NULL-terminated. */
struct envb {
    char *v[64];
    int n;
};

static void env_add(struct envb *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void env_add(struct envb *e, const char *fmt, ...)
{
    assert_true(e->n + 1 < (int)(sizeof e->v / sizeof e->v[0]));
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof buf);
    e->v[e->n] = strdup(buf);
    assert_non_null(e->v[e->n]);
    e->v[++e->n] = NULL;
}

static void env_free(struct envb *e)
{
    for (int i = 0; i < e->n; i++)
        free(e->v[i]);
    e->n = 0;
    e->v[0] = NULL;
}

/* Whether e sets name already (a case's own value comes first). */
static bool env_has(const struct envb *e, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < e->n; i++)
        if (strncmp(e->v[i], name, n) == 0 && e->v[i][n] == '=')
            return true;
    return false;
}

/* The directory of machine m under the case's directory (m < 0: the
 * fixture's own data and config directories, shared by every run). */
static void machine_dir(int m, char *out, size_t n)
{
    if (m < 0)
        snprintf(out, n, "%s", fx.dir);
    else
        snprintf(out, n, "%s/m%d", fx.dir, m);
    if (mkdir(out, 0700) != 0 && errno != EEXIST)
        fail_msg("mkdir %s: %s", out, strerror(errno));
}

/* Machine m's environment against the test server and, when one runs, the
 * case's Redis: no retries (a refused turn is refused once), and Redis
 * tried again at every turn after a failure (REDIS_RETRY_MS=0). */
static void env_machine(struct envb *e, int m)
{
    char dir[PATH_MAX];
    machine_dir(m, dir, sizeof dir);
    env_add(e, "HOME=%s", dir);
    env_add(e, "MEMCHAT_DATA_DIR=%s/data", dir);
    env_add(e, "MEMCHAT_CONFIG_DIR=%s/config", dir);
    env_add(e, "LOGNAME=tester");
    env_add(e, "PATH=/usr/bin:/bin");
    env_add(e, "OPENAI_BASE_URL=%s/v1", mock_url(mock));
    env_add(e, "OPENAI_API_KEY=sk-test-redis-cli");
    env_add(e, "MEMCHAT_MAX_RETRIES=0");
    env_add(e, "REDIS_RETRY_MS=0");
    if (srv != NULL && !env_has(e, "REDIS_URL"))
        env_add(e, "REDIS_URL=%s", redis_url(srv));
    /* A sanitized build's children honour the same options as the test. */
    static const char *const pass[] = {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"};
    for (size_t i = 0; i < sizeof pass / sizeof pass[0]; i++)
        if (getenv(pass[i]) != NULL)
            env_add(e, "%s=%s", pass[i], getenv(pass[i]));
}

/* The shared tenant limit: N_LIMIT requests in a window far longer than
 * any run, refused at once when exhausted. */
static void env_limited(struct envb *e, const char *backend)
{
    env_add(e, "RATE_LIMIT_BACKEND=%s", backend);
    env_add(e, "TENANT_RATE_LIMIT_RPM=%d", N_LIMIT);
    env_add(e, "RATE_LIMIT_WINDOW_S=3600");
    env_add(e, "RATE_LIMIT_MAX_WAIT_MS=0");
}

/* ---- processes ------------------------------------------------------------ */

/* One memchat process: its output goes to files, read once it exited. */
struct proc {
    pid_t pid;
    char out_path[PATH_MAX], err_path[PATH_MAX];
    int status; /* exit code, or 128+signal */
    char *out, *err;
};

/* Starts memchat with args (NULL-terminated, without argv[0]) in env;
 * stdin is /dev/null. */
static void proc_spawn(struct proc *p, const struct envb *env, const char *const *args)
{
    static unsigned seq;
    memset(p, 0, sizeof *p);
    snprintf(p->out_path, sizeof p->out_path, "%s/proc%u.out", fx.dir, seq);
    snprintf(p->err_path, sizeof p->err_path, "%s/proc%u.err", fx.dir, seq++);
    const char *bin = getenv("MEMCHAT_BIN");
    assert_non_null(bin);
    char *argv[32];
    int argc = 0;
    argv[argc++] = (char *)(uintptr_t) "memchat";
    for (int i = 0; args[i] != NULL && argc < 31; i++)
        argv[argc++] = (char *)(uintptr_t)args[i];
    argv[argc] = NULL;
    fflush(NULL);
    p->pid = fork();
    assert_true(p->pid >= 0);
    if (p->pid == 0) {
        int in = open("/dev/null", O_RDONLY);
        int out = open(p->out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int err = open(p->err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (in < 0 || out < 0 || err < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 ||
            dup2(err, 2) < 0 || chdir(fx.dir) != 0)
            _exit(127);
        execve(bin, argv, (char *const *)env->v);
        _exit(127);
    }
}

/* Waits for every process of ps (bounded by PROC_GUARD_MS: past it, all
 * that still run are killed and the test fails), then reads their output. */
static void proc_wait_all(struct proc *ps, int n)
{
    long long deadline = mock_now_ms() + PROC_GUARD_MS;
    int left = n;
    bool done[64] = {false};
    assert_true(n <= 64);
    while (left > 0) {
        for (int i = 0; i < n; i++) {
            int st;
            if (done[i] || waitpid(ps[i].pid, &st, WNOHANG) != ps[i].pid)
                continue;
            ps[i].status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            done[i] = true;
            left--;
        }
        if (left == 0)
            break;
        if (mock_now_ms() > deadline) {
            for (int i = 0; i < n; i++)
                if (!done[i]) {
                    kill(ps[i].pid, SIGKILL);
                    waitpid(ps[i].pid, NULL, 0);
                }
            fail_msg("%d of %d memchat processes still ran after %d ms", left, n, PROC_GUARD_MS);
        }
        struct pollfd none = {.fd = -1};
        poll(&none, 0, 5); /* between checks, not to pass */
    }
    for (int i = 0; i < n; i++) {
        ps[i].out = tu_read_file(ps[i].out_path, NULL);
        ps[i].err = tu_read_file(ps[i].err_path, NULL);
        if (ps[i].out == NULL)
            ps[i].out = strdup("");
        if (ps[i].err == NULL)
            ps[i].err = strdup("");
    }
}

static void proc_free(struct proc *ps, int n)
{
    for (int i = 0; i < n; i++) {
        free(ps[i].out);
        free(ps[i].err);
        ps[i].out = ps[i].err = NULL;
    }
}

/* Runs one memchat to its end. */
static void proc_run(struct proc *p, const struct envb *env, const char *const *args)
{
    proc_spawn(p, env, args);
    proc_wait_all(p, 1);
}

#define PROC_RUN(p, env, ...)                         \
    do {                                              \
        const char *const a_[] = {__VA_ARGS__, NULL}; \
        proc_run((p), (env), a_);                     \
    } while (0)

/* `memchat [--json] ask` on the test server, memory off. */
static void ask_spawn(struct proc *p, const struct envb *env, bool json, const char *question)
{
    const char *args[10];
    int n = 0;
    if (json)
        args[n++] = "--json";
    static const char *const fixed[] = {"ask",     "--provider", "openai",
                                        "--model", "mock",       "--no-memory"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        args[n++] = fixed[i];
    args[n++] = question;
    args[n] = NULL;
    proc_spawn(p, env, args);
}

static void ask_run(struct proc *p, const struct envb *env, bool json, const char *question)
{
    ask_spawn(p, env, json, question);
    proc_wait_all(p, 1);
}

static void expect_proc(const struct proc *p, int want, const char *what)
{
    if (p->status != want)
        fail_msg("%s: exit %d, want %d\nstdout: %s\nstderr: %s", what, p->status, want, p->out,
                 p->err);
}

/* ---- what the servers saw --------------------------------------------------- */

/* Chat requests the test server received so far (its log is cumulative;
 * cases compare counts before and after). */
static size_t chat_requests(void)
{
    cJSON *arr = NULL;
    mock_requests(mock, &arr);
    size_t n = 0;
    const cJSON *req;
    cJSON_ArrayForEach(req, arr)
    {
        const cJSON *path = cJSON_GetObjectItemCaseSensitive(req, "path");
        if (cJSON_IsString(path) && strstr(path->valuestring, "/chat/completions") != NULL)
            n++;
    }
    cJSON_Delete(arr);
    return n;
}

/* A connection of the test's own to the case's Redis. */
static redisContext *raw_client(void)
{
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", srv->port, tv);
    if (c == NULL || c->err != 0)
        fail_msg("cannot connect to the test's redis-server on port %d", srv->port);
    return c;
}

/* Keys on the case's Redis matching pattern. */
static long long redis_count_keys(const char *pattern)
{
    redisContext *c = raw_client();
    redisReply *r = redisCommand(c, "KEYS %s", pattern);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    long long n = (long long)r->elements;
    freeReplyObject(r);
    redisFree(c);
    return n;
}

/* ---- events ----------------------------------------------------------------- */

/* The first event named name in out (NDJSON), as a new object; NULL if
 * there is none. */
static cJSON *event_named(const char *out, const char *name)
{
    cJSON *arr = json_lines(out), *found = NULL;
    const cJSON *ev;
    cJSON_ArrayForEach(ev, arr)
    {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(ev, "event");
        if (cJSON_IsString(e) && strcmp(e->valuestring, name) == 0) {
            found = cJSON_Duplicate(ev, true);
            break;
        }
    }
    cJSON_Delete(arr);
    return found;
}

static bool has_event(const char *out, const char *name)
{
    cJSON *ev = event_named(out, name);
    bool found = ev != NULL;
    cJSON_Delete(ev);
    return found;
}

/* Whether out has a backend.fallback event for backend; its reason goes
 * to reason. */
static bool fallback_reason(const char *out, const char *backend, char *reason, size_t n)
{
    cJSON *arr = json_lines(out);
    bool found = false;
    const cJSON *ev;
    cJSON_ArrayForEach(ev, arr)
    {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(ev, "event");
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(ev, "backend");
        if (cJSON_IsString(e) && strcmp(e->valuestring, "backend.fallback") == 0 &&
            cJSON_IsString(b) && strcmp(b->valuestring, backend) == 0) {
            snprintf(reason, n, "%s", jstr(ev, "reason"));
            found = true;
            break;
        }
    }
    cJSON_Delete(arr);
    return found;
}

/* The text of every delta of out, joined (caller frees). */
static char *reply_of(const char *out)
{
    struct mc_event *evs[512] = {0};
    size_t n = parse_events(out, evs, 512);
    char *s = delta_text(evs, n);
    free_events(evs, n);
    return s;
}

/* p exited 0 with one whole turn on stdout (the event contract of
 * DESIGN.md) whose reply is "mock reply: question". */
static void expect_answered(const struct proc *p, const char *question, const char *what)
{
    expect_proc(p, 0, what);
    struct mc_event *evs[512] = {0};
    size_t n = parse_events(p->out, evs, 512);
    check_turn_contract(evs, n);
    free_events(evs, n);
    char want[256], *got = reply_of(p->out);
    snprintf(want, sizeof want, "mock reply: %s", question);
    if (strcmp(got, want) != 0)
        fail_msg("%s: reply '%s', want '%s'", what, got, want);
    free(got);
}

/* The code of the error event in out ("" when there is none). */
static void error_code(const char *out, char *code, size_t n)
{
    cJSON *ev = event_named(out, "error");
    snprintf(code, n, "%s", ev != NULL ? jstr(ev, "code") : "");
    cJSON_Delete(ev);
}

/* Whether the cache event of out says hit. */
static bool cache_hit(const char *out)
{
    cJSON *ev = event_named(out, "cache");
    bool hit = ev != NULL && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ev, "hit"));
    cJSON_Delete(ev);
    return hit;
}

/* ---- fixtures --------------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    mock = mock_start();
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    mock_stop(mock);
    return 0;
}

/* Every case gets its own empty Redis, so no key of one case reaches
 * another. */
static int case_setup(void **state)
{
    setup(state);
    srv = redis_start();
    return 0;
}

static int case_teardown(void **state)
{
    redis_stop(srv);
    srv = NULL;
    return teardown(state);
}

/* ---- rate limits across processes ----------------------------------------- */

/* Eight concurrent asks under a shared tenant limit of N_LIMIT: exactly
 * N_LIMIT reach the server and answer, the rest are refused with the
 * rate-limit message and exit 4. shared_data: one data directory for all
 * (one machine) instead of one each. */
static void eight_asks_under_a_shared_limit(bool shared_data)
{
    size_t before = chat_requests();
    struct proc ps[N_PROCS];
    struct envb env[N_PROCS];
    for (int i = 0; i < N_PROCS; i++) {
        memset(&env[i], 0, sizeof env[i]);
        env_machine(&env[i], shared_data ? -1 : i);
        env_limited(&env[i], "redis");
        env_add(&env[i], "MEMCHAT_TENANT=acme");
    }
    char q[N_PROCS][32];
    for (int i = 0; i < N_PROCS; i++) {
        snprintf(q[i], sizeof q[i], "question %d", i);
        ask_spawn(&ps[i], &env[i], false, q[i]);
    }
    proc_wait_all(ps, N_PROCS);
    int ok = 0, refused = 0;
    for (int i = 0; i < N_PROCS; i++) {
        char want[300];
        snprintf(want, sizeof want, "mock reply: %s\n", q[i]);
        if (ps[i].status == 0) {
            assert_string_equal(ps[i].out, want);
            ok++;
        } else if (ps[i].status == 4) {
            expect_in(ps[i].err, "rate limit reached:", "a refused ask's stderr");
            expect_in(ps[i].err, "TENANT_RATE_LIMIT_RPM", "a refused ask's stderr");
            assert_string_equal(ps[i].out, "");
            refused++;
        } else {
            expect_proc(&ps[i], 0, "an ask under the shared limit");
        }
    }
    size_t seen = chat_requests() - before;
    if (ok != N_LIMIT || refused != N_PROCS - N_LIMIT || seen != N_LIMIT)
        fail_msg("%d answered, %d refused, the server saw %zu requests; want %d, %d, %d", ok,
                 refused, seen, N_LIMIT, N_PROCS - N_LIMIT, N_LIMIT);
    proc_free(ps, N_PROCS);
    for (int i = 0; i < N_PROCS; i++)
        env_free(&env[i]);
}

static void eight_machines_share_one_tenant_limit(void **state)
{
    (void)state;
    eight_asks_under_a_shared_limit(false);
}

static void eight_asks_on_one_data_dir_share_one_tenant_limit(void **state)
{
    (void)state;
    eight_asks_under_a_shared_limit(true);
}

/* The contrast: with the in-process limiter every process has its own
 * buckets, so all eight admit their one request and the server sees more
 * than N_LIMIT; the shared backend is what holds the limit. */
static void in_process_limits_admit_each_processs_own(void **state)
{
    (void)state;
    size_t before = chat_requests();
    struct proc ps[N_PROCS];
    struct envb env[N_PROCS];
    for (int i = 0; i < N_PROCS; i++) {
        memset(&env[i], 0, sizeof env[i]);
        env_machine(&env[i], i);
        env_limited(&env[i], "memory");
        env_add(&env[i], "MEMCHAT_TENANT=acme");
        ask_spawn(&ps[i], &env[i], false, "in process");
    }
    proc_wait_all(ps, N_PROCS);
    for (int i = 0; i < N_PROCS; i++) {
        expect_proc(&ps[i], 0, "an ask with its own limiter");
        assert_string_equal(ps[i].out, "mock reply: in process\n");
    }
    size_t seen = chat_requests() - before;
    assert_int_equal(seen, N_PROCS);
    assert_true(seen > N_LIMIT);
    proc_free(ps, N_PROCS);
    for (int i = 0; i < N_PROCS; i++)
        env_free(&env[i]);
}

/* ---- the cache across processes ------------------------------------------- */

static void env_cached(struct envb *e, int m, const char *tenant)
{
    env_machine(e, m);
    env_add(e, "CACHE_BACKEND=redis");
    env_add(e, "CACHE_POLICY=always");
    env_add(e, "MEMCHAT_TENANT=%s", tenant);
}

/* A reply stored by process A on one machine is a hit for process B on
 * another: B's events say so and the server saw one request. Another
 * tenant asking the same does not hit. */
static void a_cached_reply_is_a_hit_in_another_process(void **state)
{
    (void)state;
    static const char *const q = "what is shared?";
    size_t before = chat_requests();
    struct envb ea = {0}, eb = {0}, ec = {0};
    env_cached(&ea, 0, "acme");
    env_cached(&eb, 1, "acme");
    env_cached(&ec, 2, "globex");
    struct proc a, b, c;
    ask_run(&a, &ea, true, q);
    expect_answered(&a, q, "process A");
    assert_false(cache_hit(a.out));
    ask_run(&b, &eb, true, q);
    expect_answered(&b, q, "process B");
    char reason[512] = "";
    if (fallback_reason(b.out, "cache", reason, sizeof reason))
        fail_msg("process B fell back: %s", reason);
    if (!cache_hit(b.out))
        fail_msg("process B did not hit the reply process A cached; its events:\n%s", b.out);
    assert_int_equal(chat_requests() - before, 1);
    ask_run(&c, &ec, true, q);
    expect_answered(&c, q, "another tenant");
    assert_false(cache_hit(c.out));
    assert_int_equal(chat_requests() - before, 2);
    proc_free(&a, 1);
    proc_free(&b, 1);
    proc_free(&c, 1);
    env_free(&ea);
    env_free(&eb);
    env_free(&ec);
}

/* With Redis gone the cache falls back to the process's own table: the
 * turn completes and says why. */
static void the_cache_falls_back_when_redis_is_gone(void **state)
{
    (void)state;
    redis_kill(srv);
    struct envb e = {0};
    env_cached(&e, 0, "acme");
    struct proc p;
    ask_run(&p, &e, true, "cache without redis");
    expect_answered(&p, "cache without redis", "an ask with the cache's Redis gone");
    char reason[512] = "", where[64];
    if (!fallback_reason(p.out, "cache", reason, sizeof reason))
        fail_msg("no backend.fallback event for the cache:\n%s", p.out);
    snprintf(where, sizeof where, "127.0.0.1:%d", srv->port);
    expect_in(reason, where, "the cache's fallback reason");
    proc_free(&p, 1);
    env_free(&e);
}

/* ---- Redis killed mid-run ---------------------------------------------------- */

/* Every conversation title in the shared data directory, one a line. */
static char *conversation_titles(void)
{
    struct envb e = {0};
    env_machine(&e, -1);
    env_add(&e, "MEMCHAT_TENANT=acme");
    struct proc p;
    PROC_RUN(&p, &e, "conversations", "--json", "--limit", "1000");
    expect_proc(&p, 0, "memchat conversations");
    cJSON *arr = json_lines(p.out);
    size_t cap = strlen(p.out) + 1, len = 0;
    char *titles = calloc(1, cap);
    assert_non_null(titles);
    const cJSON *c;
    cJSON_ArrayForEach(c, arr)
    {
        len += (size_t)snprintf(titles + len, cap - len, "%s\n", jstr(c, "title"));
    }
    cJSON_Delete(arr);
    proc_free(&p, 1);
    env_free(&e);
    return titles;
}

/* Whether the line title is among titles (one a line). */
static bool titled(const char *titles, const char *title)
{
    size_t n = strlen(title);
    for (const char *p = titles; (p = strstr(p, title)) != NULL; p++)
        if ((p == titles || p[-1] == '\n') && p[n] == '\n')
            return true;
    return false;
}

/* Asks q on the shared data directory with the shared limit, REDIS_FAILURE
 * failure ("" for the default). */
static void ask_limited(struct proc *p, const char *failure, const char *q)
{
    struct envb e = {0};
    env_machine(&e, -1);
    env_limited(&e, "redis");
    env_add(&e, "MEMCHAT_TENANT=acme");
    if (failure[0] != '\0')
        env_add(&e, "REDIS_FAILURE=%s", failure);
    ask_run(p, &e, true, q);
    env_free(&e);
}

/* Some asks, Redis killed, more asks: under REDIS_FAILURE=open every turn
 * completes on the process's own limits and says why (the reason names
 * the server), under closed every turn is refused as limiter_unavailable
 * without reaching the server; Redis restarted (empty, same port): the
 * shared limit holds again, with no fallback. No answered turn is lost:
 * each is in the conversations. */
static void redis_killed_between_asks(void **state)
{
    (void)state;
    char q[32], where[64], reason[512], code[64];
    snprintf(where, sizeof where, "127.0.0.1:%d", srv->port);
    size_t before = chat_requests();
    struct proc p;
    for (int i = 0; i < 2; i++) {
        snprintf(q, sizeof q, "before %d", i);
        ask_limited(&p, "", q);
        expect_answered(&p, q, "an ask before the kill");
        assert_false(fallback_reason(p.out, "ratelimit", reason, sizeof reason));
        proc_free(&p, 1);
    }
    assert_true(redis_count_keys("memchat:rl:*") > 0);

    redis_kill(srv);
    for (int i = 0; i < N_LIMIT; i++) {
        snprintf(q, sizeof q, "while down %d", i);
        ask_limited(&p, "open", q);
        expect_answered(&p, q, "an ask with Redis down, REDIS_FAILURE=open");
        if (!fallback_reason(p.out, "ratelimit", reason, sizeof reason))
            fail_msg("no backend.fallback for the rate limits:\n%s", p.out);
        expect_in(reason, where, "the fallback reason");
        proc_free(&p, 1);
    }
    size_t answered = chat_requests() - before;
    assert_int_equal(answered, 2 + N_LIMIT);
    for (int i = 0; i < 2; i++) {
        ask_limited(&p, "closed", "refused while down");
        expect_proc(&p, 4, "an ask with Redis down, REDIS_FAILURE=closed");
        error_code(p.out, code, sizeof code);
        assert_string_equal(code, "limiter_unavailable");
        assert_true(has_event(p.out, "turn.done"));
        proc_free(&p, 1);
    }
    assert_int_equal(chat_requests() - before, answered);

    srv = redis_restart(srv);
    struct proc ps[N_LIMIT + 2];
    struct envb env[N_LIMIT + 2];
    char qs[N_LIMIT + 2][32];
    for (int i = 0; i < N_LIMIT + 2; i++) {
        memset(&env[i], 0, sizeof env[i]);
        env_machine(&env[i], -1);
        env_limited(&env[i], "redis");
        env_add(&env[i], "MEMCHAT_TENANT=acme");
        snprintf(qs[i], sizeof qs[i], "after %d", i);
        ask_spawn(&ps[i], &env[i], true, qs[i]);
    }
    proc_wait_all(ps, N_LIMIT + 2);
    int ok = 0;
    for (int i = 0; i < N_LIMIT + 2; i++) {
        if (fallback_reason(ps[i].out, "ratelimit", reason, sizeof reason))
            fail_msg("an ask after the restart fell back: %s", reason);
        if (ps[i].status == 0) {
            expect_answered(&ps[i], qs[i], "an ask after the restart");
            ok++;
            continue;
        }
        expect_proc(&ps[i], 4, "an ask after the restart");
        error_code(ps[i].out, code, sizeof code);
        assert_string_equal(code, "rate_limited");
    }
    assert_int_equal(ok, N_LIMIT);
    assert_int_equal(chat_requests() - before, answered + N_LIMIT);
    assert_true(redis_count_keys("memchat:rl:*") > 0);

    char *titles = conversation_titles();
    for (int i = 0; i < 2; i++) {
        snprintf(q, sizeof q, "before %d", i);
        assert_true(titled(titles, q));
        snprintf(q, sizeof q, "while down %d", i);
        assert_true(titled(titles, q));
    }
    for (int i = 0; i < N_LIMIT + 2; i++)
        if (ps[i].status == 0 && !titled(titles, qs[i]))
            fail_msg("answered turn '%s' is not in the conversations:\n%s", qs[i], titles);
    free(titles);
    proc_free(ps, N_LIMIT + 2);
    for (int i = 0; i < N_LIMIT + 2; i++)
        env_free(&env[i]);
}

/* Redis killed while eight asks run (limits high enough for all): whether
 * a turn was decided before or after the kill, none is lost. */
static void redis_killed_while_asks_run(void **state)
{
    (void)state;
    size_t before = chat_requests();
    struct proc ps[N_PROCS];
    struct envb env[N_PROCS];
    char q[N_PROCS][32];
    for (int i = 0; i < N_PROCS; i++) {
        memset(&env[i], 0, sizeof env[i]);
        env_machine(&env[i], i);
        env_add(&env[i], "RATE_LIMIT_BACKEND=redis");
        env_add(&env[i], "TENANT_RATE_LIMIT_RPM=1000");
        env_add(&env[i], "RATE_LIMIT_MAX_WAIT_MS=0");
        env_add(&env[i], "MEMCHAT_TENANT=acme");
        snprintf(q[i], sizeof q[i], "racing %d", i);
        ask_spawn(&ps[i], &env[i], true, q[i]);
        if (i == N_PROCS / 2)
            redis_kill(srv);
    }
    proc_wait_all(ps, N_PROCS);
    int fell_back = 0;
    for (int i = 0; i < N_PROCS; i++) {
        char reason[512];
        expect_answered(&ps[i], q[i], "an ask while Redis was killed");
        fell_back += fallback_reason(ps[i].out, "ratelimit", reason, sizeof reason);
    }
    /* The last three started after the kill. */
    assert_true(fell_back >= N_PROCS / 2 - 1);
    assert_int_equal(chat_requests() - before, N_PROCS);
    proc_free(ps, N_PROCS);
    for (int i = 0; i < N_PROCS; i++)
        env_free(&env[i]);
}

/* One `memchat chat --plain --json` process driven a line at a time. */
struct session {
    pid_t pid;
    int in, out;
    char *buf;
    size_t len, cap;
};

static void session_start(struct session *s, const struct envb *env)
{
    memset(s, 0, sizeof *s);
    int in[2], out[2];
    assert_int_equal(pipe2(in, O_CLOEXEC), 0);
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    const char *bin = getenv("MEMCHAT_BIN");
    assert_non_null(bin);
    char *argv[] = {(char *)(uintptr_t) "memchat",     (char *)(uintptr_t) "chat",
                    (char *)(uintptr_t) "--plain",     (char *)(uintptr_t) "--json",
                    (char *)(uintptr_t) "--provider",  (char *)(uintptr_t) "openai",
                    (char *)(uintptr_t) "--model",     (char *)(uintptr_t) "mock",
                    (char *)(uintptr_t) "--no-memory", NULL};
    fflush(NULL);
    s->pid = fork();
    assert_true(s->pid >= 0);
    if (s->pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull < 0 || dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 || dup2(devnull, 2) < 0 ||
            chdir(fx.dir) != 0)
            _exit(127);
        execve(bin, argv, (char *const *)env->v);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    s->in = in[1];
    s->out = out[0];
}

static size_t count_of(const char *s, const char *needle)
{
    size_t n = 0;
    for (const char *p = s; p != NULL && (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

/* One read of the chat's output into s->buf, waiting until deadline;
 * false at EOF, fails the test when the deadline passes. */
static bool session_read(struct session *s, long long deadline, const char *what)
{
    for (;;) {
        long long left = deadline - mock_now_ms();
        struct pollfd p = {.fd = s->out, .events = POLLIN};
        int pr = left > 0 ? poll(&p, 1, (int)left) : 0;
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0) {
            kill(s->pid, SIGKILL);
            fail_msg("the chat did not finish %s in %d ms; it wrote:\n%s", what, PROC_GUARD_MS,
                     s->buf != NULL ? s->buf : "");
        }
        if (s->cap - s->len < 4096) {
            s->cap = s->cap * 2 + 65536;
            s->buf = realloc(s->buf, s->cap);
            assert_non_null(s->buf);
            s->buf[s->len] = '\0';
        }
        ssize_t r = read(s->out, s->buf + s->len, s->cap - s->len - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        s->len += (size_t)r;
        s->buf[s->len] = '\0';
        return true;
    }
}

/* Sends one message and reads until its turn.done arrived: the turn's
 * limits are settled when this returns. (Not until its store report: the
 * line chat writes that to a pipe only with the next turn's output.) */
static void session_turn(struct session *s, const char *line)
{
    size_t want = count_of(s->buf, "\"event\":\"turn.done\"") + 1;
    size_t n = strlen(line);
    assert_int_equal(write(s->in, line, n), (ssize_t)n);
    assert_int_equal(write(s->in, "\n", 1), 1);
    long long deadline = mock_now_ms() + PROC_GUARD_MS;
    while (count_of(s->buf, "\"event\":\"turn.done\"") < want)
        if (!session_read(s, deadline, line))
            fail_msg("the chat ended before the turn '%s' did:\n%s", line,
                     s->buf != NULL ? s->buf : "");
}

/* Ends the chat (stdin closed), reads the rest of its output and waits
 * for it, bounded; its exit code. */
static int session_end(struct session *s)
{
    close(s->in);
    long long deadline = mock_now_ms() + PROC_GUARD_MS;
    while (session_read(s, deadline, "its exit"))
        ;
    close(s->out);
    int st;
    assert_int_equal(waitpid(s->pid, &st, 0), s->pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* The events of one turn of the session's output: the lines whose turn is
 * the k-th turn.start's (k from 0), as NDJSON (caller frees). */
static char *session_turn_events(const struct session *s, int k)
{
    cJSON *arr = json_lines(s->buf);
    char turn[64] = "";
    int seen = 0;
    const cJSON *ev;
    cJSON_ArrayForEach(ev, arr)
    {
        if (strcmp(jstr(ev, "event"), "turn.start") == 0 && seen++ == k) {
            snprintf(turn, sizeof turn, "%s", jstr(ev, "turn"));
            break;
        }
    }
    assert_true(turn[0] != '\0');
    char *out = calloc(1, s->len + 1);
    assert_non_null(out);
    size_t len = 0;
    cJSON_ArrayForEach(ev, arr)
    {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(ev, "turn");
        if (!cJSON_IsString(t) || strcmp(t->valuestring, turn) != 0)
            continue;
        char *line = cJSON_PrintUnformatted(ev);
        len += (size_t)snprintf(out + len, s->len + 1 - len, "%s\n", line);
        free(line);
    }
    cJSON_Delete(arr);
    return out;
}

/* One long-running chat: a turn on the shared limits, Redis killed, a turn
 * on the process's own (fallback), Redis restarted, a turn on the shared
 * limits again, with no fallback, written to the new server. The same
 * process finds Redis again by itself. */
static void a_chat_finds_redis_again_after_a_restart(void **state)
{
    (void)state;
    struct envb e = {0};
    env_machine(&e, -1);
    env_limited(&e, "redis");
    env_add(&e, "MEMCHAT_TENANT=acme");
    struct session s;
    session_start(&s, &e);
    session_turn(&s, "one");
    redis_kill(srv);
    session_turn(&s, "two");
    srv = redis_restart(srv);
    assert_int_equal(redis_count_keys("memchat:rl:*"), 0);
    session_turn(&s, "three");
    assert_int_equal(session_end(&s), 0);
    char *t[3], reason[512];
    for (int k = 0; k < 3; k++)
        t[k] = session_turn_events(&s, k);
    free(s.buf);
    static const char *const q[] = {"one", "two", "three"};
    for (int k = 0; k < 3; k++) {
        char *reply = reply_of(t[k]), want[64];
        snprintf(want, sizeof want, "mock reply: %s", q[k]);
        assert_string_equal(reply, want);
        free(reply);
        assert_true(has_event(t[k], "turn.done"));
    }
    assert_false(fallback_reason(t[0], "ratelimit", reason, sizeof reason));
    assert_true(fallback_reason(t[1], "ratelimit", reason, sizeof reason));
    if (fallback_reason(t[2], "ratelimit", reason, sizeof reason))
        fail_msg("the turn after the restart still fell back: %s", reason);
    assert_true(redis_count_keys("memchat:rl:*") > 0);
    for (int k = 0; k < 3; k++)
        free(t[k]);
    env_free(&e);
}

/* ---- REDIS_URL ------------------------------------------------------------- */

#define PASSWORD "s3cretpw"

struct secret_search {
    const char *needle;
    const char *where;
};

static bool file_has_secret(void *ud, const char *path, const char *data, size_t len)
{
    struct secret_search *s = ud;
    if (memmem(data, len, s->needle, strlen(s->needle)) != NULL) {
        s->where = strdup(path);
        return true;
    }
    return false;
}

/* Fails when PASSWORD is in p's output or any file under the case's
 * directory (data files, memchat.log, traces, config). */
static void expect_no_password(const struct proc *p, const char *what)
{
    if (strstr(p->out, PASSWORD) != NULL || strstr(p->err, PASSWORD) != NULL)
        fail_msg("%s: the password shows:\nstdout: %s\nstderr: %s", what, p->out, p->err);
    struct secret_search s = {PASSWORD, NULL};
    if (harness_walk_files(fx.dir, file_has_secret, &s)) {
        char *path = (char *)(uintptr_t)s.where;
        fail_msg("%s: the password is in %s", what, path);
    }
}

/* A REDIS_URL that cannot be a server is a configuration error (exit 2)
 * naming REDIS_URL, before any turn. */
static void a_bad_redis_url_is_a_configuration_error(void **state)
{
    (void)state;
    static const char *const urls[] = {"redis://host:99999", "redis://u:" PASSWORD "@host:99999",
                                       "http://127.0.0.1:6379", "redis://127.0.0.1:6379/x"};
    size_t before = chat_requests();
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        static const char *const backends[] = {"RATE_LIMIT_BACKEND", "CACHE_BACKEND"};
        for (size_t b = 0; b < 2; b++) {
            struct envb e = {0};
            env_add(&e, "REDIS_URL=%s", urls[i]); /* instead of the case's server */
            env_machine(&e, 0);
            env_add(&e, "%s=redis", backends[b]);
            struct proc p;
            ask_run(&p, &e, false, "never sent");
            char what[128];
            snprintf(what, sizeof what, "REDIS_URL=%s with %s=redis", urls[i], backends[b]);
            expect_proc(&p, 2, what);
            expect_in(p.err, "REDIS_URL", what);
            expect_no_password(&p, what);
            proc_free(&p, 1);
            env_free(&e);
        }
    }
    assert_int_equal(chat_requests() - before, 0);
}

/* A URL with a password the server refuses (the test's server has none, so
 * AUTH fails): the turn falls back under open and is refused under closed,
 * and the password is in no output, event, log or file; doctor says what
 * failed without it. */
static void a_urls_password_never_shows(void **state)
{
    (void)state;
    char url[128], where[64], reason[512], code[64];
    snprintf(url, sizeof url, "redis://u:" PASSWORD "@127.0.0.1:%d/0", srv->port);
    snprintf(where, sizeof where, "127.0.0.1:%d", srv->port);
    static const char *const failures[] = {"open", "closed"};
    for (size_t i = 0; i < 2; i++) {
        struct envb e = {0};
        env_add(&e, "REDIS_URL=%s", url);
        env_machine(&e, -1);
        env_add(&e, "RATE_LIMIT_BACKEND=redis");
        env_add(&e, "CACHE_BACKEND=redis");
        env_add(&e, "CACHE_POLICY=always");
        env_add(&e, "TENANT_RATE_LIMIT_RPM=10");
        env_add(&e, "REDIS_FAILURE=%s", failures[i]);
        env_add(&e, "MEMCHAT_LOG_LEVEL=debug");
        struct proc p;
        ask_run(&p, &e, true, "with a password");
        if (i == 0) {
            expect_answered(&p, "with a password", "a refused password, REDIS_FAILURE=open");
            if (!fallback_reason(p.out, "ratelimit", reason, sizeof reason))
                fail_msg("no backend.fallback for the rate limits:\n%s", p.out);
            expect_in(reason, where, "the fallback reason");
        } else {
            expect_proc(&p, 4, "a refused password, REDIS_FAILURE=closed");
            error_code(p.out, code, sizeof code);
            assert_string_equal(code, "limiter_unavailable");
        }
        expect_no_password(&p, failures[i]);
        proc_free(&p, 1);

        PROC_RUN(&p, &e, "doctor");
        expect_in(p.out, where, "doctor with a refused password");
        expect_no_password(&p, "doctor");
        proc_free(&p, 1);
        PROC_RUN(&p, &e, "config");
        expect_no_password(&p, "memchat config");
        proc_free(&p, 1);
        env_free(&e);
    }
}

/* ---- purge ----------------------------------------------------------------- */

/* `memchat purge --tenant T --yes` removes T's replies from the shared
 * cache: the same question misses afterwards, in another process; another
 * tenant's entries stay. */
static void purge_removes_a_tenants_shared_cache_entries(void **state)
{
    (void)state;
    static const char *const q = "purge me";
    struct envb e[4];
    memset(e, 0, sizeof e);
    env_cached(&e[0], 0, "acme");
    env_cached(&e[1], 1, "acme");
    env_cached(&e[2], 2, "globex");
    env_cached(&e[3], 3, "globex");
    struct proc p;
    ask_run(&p, &e[0], true, q);
    expect_answered(&p, q, "acme stores");
    proc_free(&p, 1);
    ask_run(&p, &e[2], true, q);
    expect_answered(&p, q, "globex stores");
    proc_free(&p, 1);
    ask_run(&p, &e[1], true, q);
    expect_answered(&p, q, "acme before the purge");
    if (!cache_hit(p.out))
        fail_msg("no cache hit before the purge (is the shared cache wired?):\n%s", p.out);
    proc_free(&p, 1);

    PROC_RUN(&p, &e[0], "purge", "--tenant", "acme", "--yes");
    expect_proc(&p, 0, "memchat purge --tenant acme");
    expect_in(p.out, "1 cache entry", "purge's summary");
    proc_free(&p, 1);

    size_t before = chat_requests();
    ask_run(&p, &e[1], true, q);
    expect_answered(&p, q, "acme after the purge");
    if (cache_hit(p.out))
        fail_msg("acme still hits its purged reply:\n%s", p.out);
    assert_int_equal(chat_requests() - before, 1);
    proc_free(&p, 1);
    ask_run(&p, &e[3], true, q);
    expect_answered(&p, q, "globex after acme's purge");
    if (!cache_hit(p.out))
        fail_msg("acme's purge took globex's entry too:\n%s", p.out);
    proc_free(&p, 1);
    for (int i = 0; i < 4; i++)
        env_free(&e[i]);
}

/* ---- doctor ---------------------------------------------------------------- */

/* The doctor's item for Redis (--json), as a new object. */
static cJSON *doctor_redis_item(const struct envb *e, struct proc *p)
{
    PROC_RUN(p, e, "doctor", "--json");
    cJSON *res = event_named(p->out, "result");
    if (res == NULL)
        fail_msg("doctor --json printed no result:\n%s\n%s", p->out, p->err);
    const cJSON *it, *found = NULL;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(res, "items"))
    {
        if (strcmp(jstr(it, "check"), "redis") == 0)
            found = it;
    }
    if (found == NULL)
        fail_msg("doctor reports no redis item:\n%s", p->out);
    cJSON *copy = cJSON_Duplicate(found, true);
    cJSON_Delete(res);
    return copy;
}

/* doctor with RATE_LIMIT_BACKEND=redis: a line on Redis naming the server,
 * ok while it answers, a warning under REDIS_FAILURE=open once it is gone,
 * a failure under closed. */
static void doctor_reports_redis(void **state)
{
    (void)state;
    char where[64];
    snprintf(where, sizeof where, "127.0.0.1:%d", srv->port);
    struct envb e = {0};
    env_machine(&e, -1);
    env_add(&e, "RATE_LIMIT_BACKEND=redis");
    struct proc p;
    PROC_RUN(&p, &e, "doctor");
    const char *line = strstr(p.out, "redis");
    if (line == NULL || strstr(line, where) == NULL)
        fail_msg("doctor's output has no line on Redis at %s:\n%s", where, p.out);
    expect_proc(&p, 0, "doctor with Redis up");
    proc_free(&p, 1);
    cJSON *it = doctor_redis_item(&e, &p);
    assert_string_equal(jstr(it, "status"), "ok");
    expect_in(jstr(it, "what"), where, "doctor's Redis item");
    cJSON_Delete(it);
    proc_free(&p, 1);

    redis_kill(srv);
    it = doctor_redis_item(&e, &p);
    assert_string_equal(jstr(it, "status"), "warn");
    cJSON_Delete(it);
    proc_free(&p, 1);
    env_add(&e, "REDIS_FAILURE=closed");
    it = doctor_redis_item(&e, &p);
    assert_string_equal(jstr(it, "status"), "fail");
    assert_true(p.status != 0);
    cJSON_Delete(it);
    proc_free(&p, 1);
    env_free(&e);
}

/* ---- budgets ----------------------------------------------------------------- */

/* A tenant budget is shared across machines: set to one turn's reserve
 * plus 1.5 turns' cost, it admits two turns in all (the second's reserve
 * still fits after the first's cost, the third's does not), where each
 * machine's own budget would admit every one. */
static void a_tenant_budget_is_shared_across_processes(void **state)
{
    (void)state;
    static const char *const q = "what does it cost?";
    /* One priced turn on its own, to learn its reserve and its cost. */
    struct envb cal = {0};
    env_machine(&cal, 7);
    env_add(&cal, "TENANT_BUDGET_USD=1000");
    struct proc p;
    const char *const priced[] = {
        "--json", "ask", "--provider", "openai", "--model", "gpt-4o-mini", "--no-memory", q, NULL};
    proc_run(&p, &cal, priced);
    expect_proc(&p, 0, "the calibration turn");
    cJSON *bud = event_named(p.out, "budget"), *cost = event_named(p.out, "cost");
    assert_non_null(bud);
    assert_non_null(cost);
    double reserve = jnum(bud, "reserved_usd"), usd = jnum(cost, "usd");
    assert_true(reserve > 0 && usd > 0 && usd < reserve);
    cJSON_Delete(bud);
    cJSON_Delete(cost);
    proc_free(&p, 1);
    env_free(&cal);

    static const char *const backends[] = {"redis", "memory"};
    for (size_t b = 0; b < 2; b++) {
        int admitted = 0;
        for (int i = 0; i < 3; i++) {
            struct envb e = {0};
            env_machine(&e, (int)b * 3 + i);
            env_add(&e, "RATE_LIMIT_BACKEND=%s", backends[b]);
            env_add(&e, "MEMCHAT_TENANT=budget%zu", b);
            env_add(&e, "TENANT_BUDGET_USD=%.9f", reserve + 1.5 * usd);
            proc_run(&p, &e, priced);
            char code[64];
            if (p.status == 0) {
                admitted++;
            } else {
                expect_proc(&p, 4, "a turn over the budget");
                error_code(p.out, code, sizeof code);
                assert_string_equal(code, "budget");
            }
            proc_free(&p, 1);
            env_free(&e);
        }
        if (admitted != (b == 0 ? 2 : 3))
            fail_msg("RATE_LIMIT_BACKEND=%s: %d of 3 machines' turns admitted, want %d",
                     backends[b], admitted, b == 0 ? 2 : 3);
    }
}

static int run_all(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(eight_machines_share_one_tenant_limit, case_setup,
                                        case_teardown),
        cmocka_unit_test_setup_teardown(eight_asks_on_one_data_dir_share_one_tenant_limit,
                                        case_setup, case_teardown),
        cmocka_unit_test_setup_teardown(in_process_limits_admit_each_processs_own, case_setup,
                                        case_teardown),
        cmocka_unit_test_setup_teardown(redis_killed_between_asks, case_setup, case_teardown),
        cmocka_unit_test_setup_teardown(redis_killed_while_asks_run, case_setup, case_teardown),
        cmocka_unit_test_setup_teardown(a_chat_finds_redis_again_after_a_restart, case_setup,
                                        case_teardown),
        cmocka_unit_test_setup_teardown(a_bad_redis_url_is_a_configuration_error, case_setup,
                                        case_teardown),
        cmocka_unit_test_setup_teardown(a_urls_password_never_shows, case_setup, case_teardown),
        cmocka_unit_test_setup_teardown(doctor_reports_redis, case_setup, case_teardown),
        cmocka_unit_test_setup_teardown(a_cached_reply_is_a_hit_in_another_process, case_setup,
                                        case_teardown),
        cmocka_unit_test_setup_teardown(the_cache_falls_back_when_redis_is_gone, case_setup,
                                        case_teardown),
        cmocka_unit_test_setup_teardown(purge_removes_a_tenants_shared_cache_entries, case_setup,
                                        case_teardown),
        cmocka_unit_test_setup_teardown(a_tenant_budget_is_shared_across_processes, case_setup,
                                        case_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

int main(void)
{
    return harness_without_terminal(run_all);
}
