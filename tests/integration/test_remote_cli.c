/*
 * The remote memory backends through the real program: `memchat doctor`
 * on the embedded defaults and on broken configurations (a wrong key, a
 * server that is down, a namespace made with another dimension), each
 * failure named with its fix and the right exit code, and no key in any
 * output; and graceful degradation: with the vector store down a memory
 * verb exits 3 naming the store, while a turn still answers and says
 * what it skipped (memory.skipped store_down). The remote services are
 * fakevec's loopback fakes (tests/server/fakevec.h).
 */
#include "config.h"

#include "cli_harness.h"
#include "fakevec_harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define KEY "sk-remote-cli-test-0123456789"

/* A loopback port nothing listens on (bound, then closed). */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* The doctor item whose check is name, from doctor --json's result event. */
static const cJSON *doctor_item(const cJSON *lines, const char *name)
{
    const cJSON *ev;
    cJSON_ArrayForEach(ev, lines)
    {
        const cJSON *items = cJSON_GetObjectItemCaseSensitive(ev, "items");
        const cJSON *it;
        cJSON_ArrayForEach(it, items) if (strcmp(jstr(it, "check"), name) == 0) return it;
    }
    fail_msg("doctor --json has no %s item", name);
    return NULL;
}

/* On the embedded defaults every check passes or is skipped, and --json
 * answers one result event whose items carry every field. */
static void doctor_passes_on_the_embedded_defaults(void **state)
{
    (void)state;
    struct run r;
    RUN(&r, NULL, "doctor");
    expect_exit(&r, 0, "doctor");
    expect_in(r.out, "0 of 8 checks failed", "doctor's summary");
    expect_in(r.out, "embedder     local (model hash-v1, 1024 dimensions)", "embedder line");
    run_free(&r);
    RUN(&r, NULL, "doctor", "--json");
    expect_exit(&r, 0, "doctor --json");
    cJSON *lines = json_lines(r.out);
    static const char *const checks[] = {"config",       "data_file", "provider", "embedder",
                                         "vector_store", "keystore",  "opik",     "redis"};
    for (size_t i = 0; i < sizeof checks / sizeof *checks; i++) {
        const cJSON *it = doctor_item(lines, checks[i]);
        const char *st = jstr(it, "status");
        assert_true(strcmp(st, "ok") == 0 || strcmp(st, "skip") == 0);
        jstr(it, "what");
        jstr(it, "fix");
        assert_true(jnum(it, "exit") == 0);
    }
    cJSON_Delete(lines);
    run_free(&r);
}

/* A wrong key of a remote embedder: FAIL with the server's 401, the fix
 * names the key's variable, exit 3, and the key is nowhere in the output. */
static void doctor_names_a_wrong_embedder_key_without_showing_it(void **state)
{
    (void)state;
    struct mock *m = fv_start("embed", "the-right-key-987654321", NULL);
    char base[128];
    snprintf(base, sizeof base, "%s/v1", fv_url(m));
    fx_env("EMBEDDINGS_PROVIDER", "openai");
    fx_env("EMBEDDINGS_BASE_URL", base);
    fx_env("EMBEDDINGS_DIMENSION", "16");
    fx_env("OPENAI_API_KEY", KEY);
    fx_env("MEMCHAT_PROVIDER", "offline");
    fx_env("MEMCHAT_MAX_RETRIES", "0");
    struct run r;
    RUN(&r, NULL, "doctor");
    expect_exit(&r, 3, "doctor with a wrong embedder key");
    expect_in(r.out, "FAIL  embedder", "doctor's embedder line");
    expect_in(r.out, "401", "the server's status");
    expect_in(r.out, "fix: set OPENAI_API_KEY", "the fix");
    assert_null(strstr(r.out, KEY));
    assert_null(strstr(r.err, KEY));
    run_free(&r);
    mock_stop(m);
}

/* The vector store down: doctor fails it (exit 3, the fix names its URL
 * variable); `memory add` exits 3 with the memory_backend error naming
 * the store; `ask` still answers and reports memory.skipped store_down. */
static void a_store_that_is_down_fails_verbs_and_skips_memory_in_turns(void **state)
{
    (void)state;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", closed_port());
    fx_env("VECTOR_DB_PROVIDER", "qdrant");
    fx_env("QDRANT_URL", url);
    fx_env("MEMCHAT_PROVIDER", "offline");
    fx_env("MEMCHAT_MAX_RETRIES", "0");
    struct run r;
    RUN(&r, NULL, "doctor");
    expect_exit(&r, 3, "doctor with the store down");
    expect_in(r.out, "FAIL  vector_store", "doctor's store line");
    expect_in(r.out, "fix: start the server, or set QDRANT_URL", "the fix");
    run_free(&r);

    RUN(&r, NULL, "memory", "add", "--tenant", "acme", "the launch is on Friday");
    expect_exit(&r, 3, "memory add with the store down");
    expect_in(r.err, "qdrant", "the message names the store");
    run_free(&r);
    RUN(&r, NULL, "memory", "search", "--tenant", "acme", "launch");
    expect_exit(&r, 3, "memory search with the store down");
    expect_in(r.err, url, "the message names the URL");
    run_free(&r);

    RUN(&r, NULL, "ask", "--json", "--tenant", "acme", "when is the launch?");
    expect_exit(&r, 0, "ask with the store down");
    expect_in(r.out, "\"event\":\"memory.skipped\"", "memory.skipped");
    expect_in(r.out, "\"reason\":\"store_down\"", "its reason");
    expect_in(r.out, "\"event\":\"turn.done\"", "the turn answered");
    run_free(&r);
}

/* A namespace stored with one dimension and a configuration with another:
 * doctor fails the store check with exit 2 and says how to fix it. */
static void doctor_reports_a_namespace_made_with_another_dimension(void **state)
{
    (void)state;
    struct run r;
    RUN(&r, NULL, "memory", "add", "--tenant", "acme", "the launch is on Friday");
    expect_exit(&r, 0, "memory add");
    run_free(&r);
    fx_env("EMBEDDINGS_DIMENSION", "512");
    RUN(&r, NULL, "doctor", "--tenant", "acme");
    expect_exit(&r, 2, "doctor with a dimension mismatch");
    expect_in(r.out, "FAIL  vector_store", "the store line");
    expect_in(r.out, "1024", "the namespace's dimension");
    expect_in(r.out, "512", "the configured dimension");
    expect_in(r.out, "fix: set EMBEDDINGS_PROVIDER, EMBEDDINGS_MODEL and EMBEDDINGS_DIMENSION",
              "the fix");
    run_free(&r);
}

static int run_all(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(doctor_passes_on_the_embedded_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(doctor_names_a_wrong_embedder_key_without_showing_it, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_store_that_is_down_fails_verbs_and_skips_memory_in_turns,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(doctor_reports_a_namespace_made_with_another_dimension,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

int main(void)
{
    return harness_without_terminal(run_all);
}
