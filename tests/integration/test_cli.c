/*
 * Integration tests of the memchat program itself: each case runs the built
 * binary ($MEMCHAT_BIN) in a private HOME, data dir and config dir, feeds
 * its standard input through a pipe, and asserts on its output, its events
 * (parsed against the contract of DESIGN.md) and its exit code.
 */
#include "cli_harness.h"

#include <sqlite3.h>

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
 * text plain mode prints. The plain run uses a tenant of its own, so the
 * exchange it stores is not recalled into the --json run. */
static void test_ask_json_follows_contract(void **state)
{
    (void)state;
    struct run plain, js;
    RUN(&plain, NULL, "ask", "--tenant", "plain", "hello there");
    RUN(&js, NULL, "ask", "--json", "--tenant", "acme", "hello there");
    assert_int_equal(plain.status, 0);
    assert_int_equal(js.status, 0);
    struct mc_event *evs[256] = {0};
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
    struct mc_event *evs[256] = {0};
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

/* chat --json: each message is its own turn with its own id and seq. A
 * turn's store report may come after the next turn's first events (the chat
 * does not wait for it), so events are grouped by turn before checking. */
static void test_chat_json_turns(void **state)
{
    (void)state;
    struct run r;
    RUN(&r, "one\ntwo\n", "chat", "--json");
    assert_int_equal(r.status, 0);
    struct mc_event *evs[512] = {0};
    size_t n = parse_events(r.out, evs, 512);
    assert_true(n > 0);
    struct mc_event *a[256] = {0}, *b[256] = {0};
    size_t na = 0, nb = 0;
    const char *second = NULL;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(evs[i]->turn, evs[0]->turn) == 0) {
            a[na++] = evs[i];
            continue;
        }
        if (second == NULL)
            second = evs[i]->turn;
        assert_string_equal(evs[i]->turn, second); /* only two turns */
        b[nb++] = evs[i];
    }
    assert_non_null(second);
    check_turn_contract(a, na);
    check_turn_contract(b, nb);
    assert_true(strcmp(evs[0]->turn, second) < 0); /* UUIDv7 order */
    free_events(evs, n);
    run_free(&r);
}

/* Every turn writes exactly one ledger row, with its own turn id and
 * status, including a turn refused nothing and answered offline at cost 0. */
static void test_each_turn_writes_one_ledger_row(void **state)
{
    (void)state;
    struct run r;
    RUN(&r, "one\ntwo\nthree\n", "chat", "--json");
    assert_int_equal(r.status, 0);
    struct mc_event *evs[1024] = {0};
    size_t n = parse_events(r.out, evs, 1024);
    char db[4096];
    snprintf(db, sizeof db, "%s/memchat.db", fx.data);
    sqlite3 *h;
    assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    size_t turns = 0;
    for (size_t i = 0; i < n; i++) {
        if (evs[i]->kind != MC_EV_TURN_START)
            continue;
        turns++;
        sqlite3_stmt *q;
        assert_int_equal(sqlite3_prepare_v2(h,
                                            "SELECT count(*), min(status), min(usd) FROM ledger "
                                            "WHERE turn = ?",
                                            -1, &q, NULL),
                         SQLITE_OK);
        sqlite3_bind_text(q, 1, evs[i]->turn, -1, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(q), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int(q, 0), 1);
        assert_string_equal((const char *)sqlite3_column_text(q, 1), "ok");
        assert_true(sqlite3_column_type(q, 2) == SQLITE_FLOAT ||
                    sqlite3_column_type(q, 2) == SQLITE_INTEGER);
        assert_true(sqlite3_column_double(q, 2) == 0.0); /* offline is free, not unknown */
        sqlite3_finalize(q);
    }
    assert_int_equal(turns, 3);
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(h, "SELECT count(*) FROM ledger", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(q, 0), 3);
    sqlite3_finalize(q);
    sqlite3_close(h);
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

/* chat --plain answers a command at once on a pipe, while its stdin stays
 * open: a script that writes /new and waits for the reply must get it
 * without closing its end first (stdio would otherwise hold it until exit).
 * The poll timeout only guards against a hang; it fails the test. */
static void test_chat_flushes_command_feedback_to_a_pipe(void **state)
{
    (void)state;
    int in[2], out[2];
    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(out), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        if (chdir(fx.dir) != 0)
            _exit(127);
        char *argv[] = {(char *)(uintptr_t) "memchat", (char *)(uintptr_t) "chat", NULL};
        execve(getenv("MEMCHAT_BIN"), argv, fx.env);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    assert_int_equal(write(in[1], "/new\n", 5), 5);
    char got[256] = "";
    size_t n = 0;
    while (strstr(got, "new conversation") == NULL && n < sizeof got - 1) {
        struct pollfd p = {.fd = out[0], .events = POLLIN};
        if (poll(&p, 1, 20000) != 1)
            fail_msg("no reply to /new while stdin is open (got '%s')", got);
        ssize_t r = read(out[0], got + n, sizeof got - 1 - n);
        assert_true(r > 0);
        n += (size_t)r;
        got[n] = '\0';
    }
    close(in[1]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    close(out[0]);
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
        cmocka_unit_test_setup_teardown(test_each_turn_writes_one_ledger_row, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_skips_overlong_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bare_memchat_chats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_flushes_command_feedback_to_a_pipe, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
