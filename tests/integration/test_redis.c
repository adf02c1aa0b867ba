/*
 * net/redis.c against a real redis-server on loopback: REDIS_URL parsing
 * (every form the docs give, and each malformed one with its message and
 * no password in it), commands and scripts, the script reload after the
 * server forgot them, authentication and database selection, and the
 * failure modes: a killed server is REDIS_ST_DOWN naming the server (and
 * the write to its dead socket does not end the process with SIGPIPE),
 * the retry delay keeps a dead server from being dialled at every call,
 * and a restarted server is found again.
 */
#include "redis_harness.h"

#include "net/redis.h"

/* One command of up to 4 words; the reply's status. */
static enum redis_status cmd(struct redis *r, const char *a0, const char *a1, const char *a2,
                             redisReply **rep, char *err, size_t errlen)
{
    const char *argv[3] = {a0, a1, a2};
    int argc = a2 != NULL ? 3 : a1 != NULL ? 2 : 1;
    struct redis_args a = {argc, argv, NULL};
    return redis_command(r, &a, rep, err, errlen);
}

static void test_url_forms(void **state)
{
    (void)state;
    struct redis_target t;
    char err[512];
    assert_int_equal(redis_url_parse("redis://cache.example", &t, err, sizeof err), 0);
    assert_string_equal(t.host, "cache.example");
    assert_int_equal(t.port, 6379);
    assert_int_equal(t.db, 0);
    assert_false(t.has_password);

    assert_int_equal(redis_url_parse("redis://u%40x:p%3Aw@10.0.0.2:7000/3", &t, err, sizeof err),
                     0);
    assert_string_equal(t.user, "u@x");
    assert_string_equal(t.password, "p:w");
    assert_true(t.has_password);
    assert_string_equal(t.host, "10.0.0.2");
    assert_int_equal(t.port, 7000);
    assert_int_equal(t.db, 3);

    assert_int_equal(redis_url_parse("redis://:only@h/", &t, err, sizeof err), 0);
    assert_string_equal(t.user, "");
    assert_string_equal(t.password, "only");

    assert_int_equal(redis_url_parse("redis://[::1]:6380", &t, err, sizeof err), 0);
    assert_string_equal(t.host, "::1");
    assert_int_equal(t.port, 6380);

    assert_int_equal(redis_url_parse("unix:///run/redis.sock?db=2", &t, err, sizeof err), 0);
    assert_string_equal(t.path, "/run/redis.sock");
    assert_int_equal(t.db, 2);
    assert_int_equal(redis_url_parse("/run/redis.sock", &t, err, sizeof err), 0);
    assert_string_equal(t.path, "/run/redis.sock");
    assert_string_equal(t.host, "");
}

static void test_url_errors(void **state)
{
    (void)state;
    static const struct {
        const char *url;
        const char *says;
    } bad[] = {
        {"", "empty"},
        {"http://h", "unknown scheme"},
        {"rediss://h", "TLS"},
        {"redis://h:0", "port"},
        {"redis://h:99999", "port"},
        {"redis://h:12ab", "port"},
        {"redis://h/x", "database"},
        {"redis://h?db=1", "query"},
        {"redis://user:@h", "user name needs a password"},
        {"redis://u:%zz@h", "password is malformed"},
        {"redis://", "no host"},
        {"redis://[::1", "']'"},
        {"unix://relative.sock", "absolute"},
        {"/s?x=1", "?db=N"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct redis_target t;
        char err[512] = "";
        assert_int_equal(redis_url_parse(bad[i].url, &t, err, sizeof err), -1);
        if (strstr(err, bad[i].says) == NULL || strstr(err, "REDIS_URL") == NULL)
            fail_msg("'%s': message '%s' lacks '%s'", bad[i].url, err, bad[i].says);
    }
    /* A malformed URL's message never quotes its password. */
    char err[512] = "";
    struct redis_config c = {.url = "redis://u:topsecret@h:99999/0", .timeout_ms = 100};
    assert_null(redis_new(&c, err, sizeof err));
    assert_null(strstr(err, "topsecret"));
    struct redis_config p = {.url = "redis://h", .timeout_ms = 100, .prefix = "a*b"};
    assert_null(redis_new(&p, err, sizeof err));
    assert_non_null(strstr(err, "REDIS_KEY_PREFIX"));
}

static void test_commands_and_scripts(void **state)
{
    (void)state;
    struct redis_server *s = redis_start();
    struct redis *r = redis_client(s, 0);
    char err[256] = "";
    redisReply *rep = NULL;
    assert_false(redis_is_up(r));
    assert_int_equal(cmd(r, "SET", "t:k", "v1", &rep, err, sizeof err), REDIS_ST_OK);
    freeReplyObject(rep);
    assert_true(redis_is_up(r));
    assert_int_equal(cmd(r, "GET", "t:k", NULL, &rep, err, sizeof err), REDIS_ST_OK);
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    assert_string_equal(rep->str, "v1");
    freeReplyObject(rep);
    /* An error reply is REDIS_ST_FAILED with the server's words; the
     * connection stays usable. */
    assert_int_equal(cmd(r, "INCR", "t:k", NULL, &rep, err, sizeof err), REDIS_ST_FAILED);
    assert_null(rep);
    assert_non_null(strstr(err, "not an integer"));
    assert_true(redis_is_up(r));

    static const char script[] = "return {KEYS[1], ARGV[1], tonumber(ARGV[2]) + 1}";
    const char *argv[3] = {"t:key", "hello", "41"};
    struct redis_args a = {3, argv, NULL};
    for (int round = 0; round < 2; round++) {
        assert_int_equal(redis_eval(r, script, 1, &a, &rep, err, sizeof err), REDIS_ST_OK);
        assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
        assert_int_equal(rep->elements, 3);
        assert_string_equal(rep->element[0]->str, "t:key");
        assert_string_equal(rep->element[1]->str, "hello");
        assert_int_equal(rep->element[2]->integer, 42);
        freeReplyObject(rep);
        /* The server forgets its scripts: the next call loads it again. */
        assert_int_equal(cmd(r, "SCRIPT", "FLUSH", NULL, &rep, err, sizeof err), REDIS_ST_OK);
        freeReplyObject(rep);
    }
    char version[32];
    double rtt = -1;
    assert_int_equal(redis_ping(r, version, sizeof version, &rtt, err, sizeof err), REDIS_ST_OK);
    assert_true(strchr(version, '.') != NULL);
    assert_true(rtt >= 0);
    redis_free(r);
    redis_stop(s);
}

static void test_down_retry_and_back(void **state)
{
    (void)state;
    struct redis_server *s = redis_start();
    char where[64];
    snprintf(where, sizeof where, "127.0.0.1:%d", s->port);
    struct redis *slow = redis_client(s, 3600 * 1000);
    struct redis *fast = redis_client(s, 0);
    char err[256] = "";
    redisReply *rep = NULL;
    assert_int_equal(cmd(slow, "PING", NULL, NULL, &rep, err, sizeof err), REDIS_ST_OK);
    freeReplyObject(rep);
    assert_int_equal(cmd(fast, "PING", NULL, NULL, &rep, err, sizeof err), REDIS_ST_OK);
    freeReplyObject(rep);

    redis_kill(s);
    /* Writing to the dead connection must not raise SIGPIPE (it would end
     * this test): twice, so the second write meets the reset socket. */
    for (int i = 0; i < 2; i++) {
        assert_int_equal(cmd(fast, "PING", NULL, NULL, &rep, err, sizeof err), REDIS_ST_DOWN);
        assert_null(rep);
        assert_non_null(strstr(err, where));
    }
    assert_false(redis_is_up(fast));
    assert_int_equal(cmd(slow, "PING", NULL, NULL, &rep, err, sizeof err), REDIS_ST_DOWN);

    s = redis_restart(s);
    /* Within its retry delay, the slow one does not even try. */
    assert_int_equal(cmd(slow, "PING", NULL, NULL, &rep, err, sizeof err), REDIS_ST_DOWN);
    assert_non_null(strstr(err, where));
    /* The other reconnects, and its scripts reach the new server. */
    assert_int_equal(cmd(fast, "PING", NULL, NULL, &rep, err, sizeof err), REDIS_ST_OK);
    freeReplyObject(rep);
    const char *argv[1] = {"x"};
    struct redis_args a = {1, argv, NULL};
    assert_int_equal(redis_eval(fast, "return ARGV[1]", 0, &a, &rep, err, sizeof err), REDIS_ST_OK);
    assert_string_equal(rep->str, "x");
    freeReplyObject(rep);
    redis_free(slow);
    redis_free(fast);
    redis_stop(s);
}

static void test_auth_and_db(void **state)
{
    (void)state;
    struct redis_server *s = redis_start();
    struct redis *admin = redis_client(s, 0);
    char err[256] = "";
    redisReply *rep = NULL;
    const char *argv[4] = {"CONFIG", "SET", "requirepass", "right-pw"};
    struct redis_args a = {4, argv, NULL};
    assert_int_equal(redis_command(admin, &a, &rep, err, sizeof err), REDIS_ST_OK);
    freeReplyObject(rep);
    redis_free(admin);

    char url[128];
    snprintf(url, sizeof url, "redis://:wrong-pw@127.0.0.1:%d/0", s->port);
    struct redis_config c = {.url = url, .timeout_ms = 2000, .retry_ms = 0, .prefix = ""};
    struct redis *r = redis_new(&c, err, sizeof err);
    assert_non_null(r);
    assert_int_equal(cmd(r, "PING", NULL, NULL, &rep, err, sizeof err), REDIS_ST_FAILED);
    assert_non_null(strstr(err, "refused the user name or password"));
    assert_null(strstr(err, "wrong-pw"));
    assert_null(strstr(redis_where(r), "wrong-pw"));
    redis_free(r);

    snprintf(url, sizeof url, "redis://default:right-pw@127.0.0.1:%d/3", s->port);
    r = redis_new(&c, err, sizeof err);
    assert_non_null(r);
    assert_int_equal(cmd(r, "SET", "in3", "yes", &rep, err, sizeof err), REDIS_ST_OK);
    freeReplyObject(rep);
    redis_free(r);

    /* The key went to database 3 only. */
    snprintf(url, sizeof url, "redis://:right-pw@127.0.0.1:%d/0", s->port);
    r = redis_new(&c, err, sizeof err);
    assert_int_equal(cmd(r, "EXISTS", "in3", NULL, &rep, err, sizeof err), REDIS_ST_OK);
    assert_int_equal(rep->integer, 0);
    freeReplyObject(rep);
    assert_int_equal(cmd(r, "SELECT", "3", NULL, &rep, err, sizeof err), REDIS_ST_OK);
    freeReplyObject(rep);
    assert_int_equal(cmd(r, "EXISTS", "in3", NULL, &rep, err, sizeof err), REDIS_ST_OK);
    assert_int_equal(rep->integer, 1);
    freeReplyObject(rep);
    redis_free(r);
    redis_stop(s);
}

static void test_unreachable_at_start(void **state)
{
    (void)state;
    char url[64], err[256] = "";
    int port = redis_free_port();
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    struct redis_config c = {.url = url, .timeout_ms = 2000, .retry_ms = 0, .prefix = ""};
    struct redis *r = redis_new(&c, err, sizeof err);
    assert_non_null(r);
    redisReply *rep = NULL;
    assert_int_equal(cmd(r, "PING", NULL, NULL, &rep, err, sizeof err), REDIS_ST_DOWN);
    assert_non_null(strstr(err, "unreachable"));
    redis_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_forms),
        cmocka_unit_test(test_url_errors),
        cmocka_unit_test(test_commands_and_scripts),
        cmocka_unit_test(test_down_retry_and_back),
        cmocka_unit_test(test_auth_and_db),
        cmocka_unit_test(test_unreachable_at_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
