/*
 * Tests of client/keys: stage 7 of a turn, which key a model call sends,
 * and the credentials a tool call gets (stage 9). Each case builds a
 * keystore in a temp data dir with the store/ API (as `memchat keys` and
 * `memchat tools` would) and resolves keys through client/keys, as the
 * turn worker does.
 */
#include "config.h"

#include "testutil.h"

#include <sodium.h>
#include <sys/stat.h>

#include "client/keys.h"
#include "store/keystore.h"
#include "store/masterkey.h"

#define ENV_KEY_A "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=" /* 32 x 'A' */
#define ENV_KEY_B "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=" /* 32 x 'B' */

struct fx {
    char *dir;
    char *path; /* dir/keystore */
    char *config_dir;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->dir = tu_mkdtemp();
    size_t n = strlen(f->dir) + 32;
    f->path = malloc(n);
    f->config_dir = malloc(n);
    assert_true(f->path != NULL && f->config_dir != NULL);
    snprintf(f->path, n, "%s/keystore", f->dir);
    snprintf(f->config_dir, n, "%s/cfg", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    tu_rmtree(f->dir);
    free(f->dir);
    free(f->path);
    free(f->config_dir);
    free(f);
    return 0;
}

/* Writes records (tenant, provider, key_id, secret) under the env key b64
 * and, when tool_b64 is not NULL, tool credentials under that tool key,
 * replacing the keystore. */
static void write_store_tool(const struct fx *f, const char *b64, const char *tool_b64,
                             const char *const (*recs)[4], size_t n)
{
    uint8_t key[KEYSTORE_KEY_BYTES];
    char err[512] = "";
    assert_int_equal(masterkey_decode(b64, "test", key, err, sizeof err), 0);
    unlink(f->path);
    struct keystore *ks = NULL;
    assert_int_equal(keystore_open(f->path, key, &ks, err, sizeof err), 0);
    if (tool_b64 != NULL) {
        uint8_t tool[KEYSTORE_KEY_BYTES];
        assert_int_equal(masterkey_decode(tool_b64, "test", tool, err, sizeof err), 0);
        assert_int_equal(keystore_set_tool_key(ks, tool, err, sizeof err), 0);
    }
    for (size_t i = 0; i < n; i++)
        assert_int_equal(keystore_set(ks, recs[i][0], recs[i][1], recs[i][2], recs[i][3],
                                      strlen(recs[i][3]), err, sizeof err),
                         0);
    assert_int_equal(keystore_save(ks, err, sizeof err), 0);
    keystore_free(ks);
}

static void write_store(const struct fx *f, const char *b64, const char *const (*recs)[4], size_t n)
{
    write_store_tool(f, b64, NULL, recs, n);
}

/* A resolver with MEMCHAT_MASTER_KEY env and TOOL_CREDENTIALS_ENCRYPTION_KEY
 * tool (NULL: unset). */
static struct keys *make_keys_tool(const struct fx *f, const char *env, const char *tool)
{
    struct keys_config c = {
        .keystore_path = f->path,
        .config_dir = f->config_dir,
        .master_env = env,
        .tool_key_env = tool,
        .command_timeout_ms = 10000,
    };
    return keys_new(&c);
}

static struct keys *make_keys(const struct fx *f, const char *env)
{
    return make_keys_tool(f, env, NULL);
}

/* With no keystore every call uses the global key, and resolving does not
 * create a master key: a user who never ran `memchat keys` gets none. */
static void without_a_keystore_the_global_key_applies_and_nothing_is_created(void **state)
{
    struct fx *f = *state;
    struct keys *k = make_keys(f, "");
    struct keys_secret s;
    char err[512] = "";
    assert_int_equal(keys_resolve(k, "acme", "openai", &s, err, sizeof err), 0);
    assert_null(s.value);
    assert_int_equal(s.source, KEYS_SOURCE_GLOBAL);
    assert_string_equal(keys_source_name(s.source), "global");
    struct stat st;
    assert_int_not_equal(stat(f->config_dir, &st), 0);
    keys_free(k);
}

/* A tenant's stored key is found for that tenant and that provider only;
 * every other slot falls back to the global key. */
static void a_tenant_key_applies_to_its_own_tenant_and_provider_only(void **state)
{
    struct fx *f = *state;
    const char *const recs[][4] = {{"acme", "openai", KEYS_ID_KEY, "sk-acme-openai-1234"}};
    write_store(f, ENV_KEY_A, recs, 1);
    struct keys *k = make_keys(f, ENV_KEY_A);
    struct keys_secret s;
    char err[512] = "";
    assert_int_equal(keys_resolve(k, "acme", "openai", &s, err, sizeof err), 0);
    assert_string_equal(s.value, "sk-acme-openai-1234");
    assert_int_equal(s.len, strlen("sk-acme-openai-1234"));
    assert_int_equal(s.source, KEYS_SOURCE_TENANT);
    keys_secret_wipe(&s);
    assert_null(s.value);
    assert_int_equal(keys_resolve(k, "other", "openai", &s, err, sizeof err), 0);
    assert_null(s.value);
    assert_int_equal(keys_resolve(k, "acme", "anthropic", &s, err, sizeof err), 0);
    assert_null(s.value);
    keys_free(k);
}

/* A key command runs at use time; its output without the trailing newline
 * is the key. */
static void a_key_command_runs_at_use_time(void **state)
{
    struct fx *f = *state;
    const char *const recs[][4] = {
        {"acme", "anthropic", KEYS_ID_COMMAND, "printf 'sk-from-cmd-5678\\r\\n'"}};
    write_store(f, ENV_KEY_A, recs, 1);
    struct keys *k = make_keys(f, ENV_KEY_A);
    struct keys_secret s;
    char err[512] = "";
    assert_int_equal(keys_resolve(k, "acme", "anthropic", &s, err, sizeof err), 0);
    assert_string_equal(s.value, "sk-from-cmd-5678");
    assert_int_equal(s.source, KEYS_SOURCE_COMMAND);
    keys_secret_wipe(&s);
    keys_free(k);
}

/* A failing key command fails the lookup with a message naming the tenant
 * and the exit status, never what the command printed; one that prints
 * nothing is refused too. */
static void a_failing_key_command_is_named_without_its_output(void **state)
{
    struct fx *f = *state;
    const char *const recs[][4] = {
        {"acme", "openai", KEYS_ID_COMMAND, "echo sk-leaky-9999; exit 3"},
        {"beta", "openai", KEYS_ID_COMMAND, "true"},
    };
    write_store(f, ENV_KEY_A, recs, 2);
    struct keys *k = make_keys(f, ENV_KEY_A);
    struct keys_secret s;
    char err[512] = "";
    assert_int_equal(keys_resolve(k, "acme", "openai", &s, err, sizeof err), -1);
    assert_null(s.value);
    assert_non_null(strstr(err, "tenant acme"));
    assert_non_null(strstr(err, "status 3"));
    assert_null(strstr(err, "sk-leaky"));
    assert_int_equal(keys_resolve(k, "beta", "openai", &s, err, sizeof err), -1);
    assert_non_null(strstr(err, "printed nothing"));
    keys_free(k);
}

/* A keystore rewritten by another process (a new file by rename) is read
 * again at the next lookup; a removed one means global keys again. */
static void a_keystore_changed_by_another_process_is_reread(void **state)
{
    struct fx *f = *state;
    const char *const one[][4] = {{"acme", "openai", KEYS_ID_KEY, "sk-first-value-1111"}};
    const char *const two[][4] = {{"acme", "openai", KEYS_ID_KEY, "sk-second-value-2222"}};
    write_store(f, ENV_KEY_A, one, 1);
    struct keys *k = make_keys(f, ENV_KEY_A);
    struct keys_secret s;
    char err[512] = "";
    assert_int_equal(keys_resolve(k, "acme", "openai", &s, err, sizeof err), 0);
    assert_string_equal(s.value, "sk-first-value-1111");
    keys_secret_wipe(&s);
    write_store(f, ENV_KEY_A, two, 1);
    assert_int_equal(keys_resolve(k, "acme", "openai", &s, err, sizeof err), 0);
    assert_string_equal(s.value, "sk-second-value-2222");
    keys_secret_wipe(&s);
    assert_int_equal(unlink(f->path), 0);
    assert_int_equal(keys_resolve(k, "acme", "openai", &s, err, sizeof err), 0);
    assert_null(s.value);
    keys_free(k);
}

/* A keystore the master key does not open fails the lookup (the turn then
 * fails rather than bill the global account), naming where the key came
 * from; so does a keystore with no master key at all. */
static void a_keystore_that_does_not_open_fails_the_lookup(void **state)
{
    struct fx *f = *state;
    const char *const recs[][4] = {{"acme", "openai", KEYS_ID_KEY, "sk-acme-openai-1234"}};
    write_store(f, ENV_KEY_A, recs, 1);
    struct keys *k = make_keys(f, ENV_KEY_B);
    struct keys_secret s;
    char err[512] = "";
    assert_int_equal(keys_resolve(k, "acme", "openai", &s, err, sizeof err), -1);
    assert_null(s.value);
    assert_non_null(strstr(err, "MEMCHAT_MASTER_KEY"));
    assert_null(strstr(err, ENV_KEY_B));
    keys_free(k);

    k = make_keys(f, "");
    assert_int_equal(keys_resolve(k, "acme", "openai", &s, err, sizeof err), -1);
    assert_non_null(strstr(err, "no master key"));
    keys_free(k);
}

/* A keystore protected by a passphrase opens only once the passphrase is
 * given; without it the message says how to give it. */
static void a_passphrase_keystore_needs_the_passphrase(void **state)
{
    struct fx *f = *state;
    static const char pass[] = "correct horse battery staple";
    struct keystore_kdf kdf;
    uint8_t key[KEYSTORE_KEY_BYTES];
    char err[512] = "";
    assert_int_equal(keystore_kdf_init(&kdf, crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_MEMLIMIT_MIN,
                                       err, sizeof err),
                     0);
    assert_int_equal(keystore_derive_key(pass, strlen(pass), &kdf, key, err, sizeof err), 0);
    struct keystore *ks = NULL;
    assert_int_equal(keystore_open(f->path, key, &ks, err, sizeof err), 0);
    assert_int_equal(keystore_rotate(ks, key, &kdf, err, sizeof err), 0);
    assert_int_equal(keystore_set(ks, "acme", "openai", KEYS_ID_KEY, "sk-pass-protected-3333",
                                  strlen("sk-pass-protected-3333"), err, sizeof err),
                     0);
    assert_int_equal(keystore_save(ks, err, sizeof err), 0);
    keystore_free(ks);

    struct keys *k = make_keys(f, ENV_KEY_A);
    struct keys_secret s;
    assert_int_equal(keys_resolve(k, "acme", "openai", &s, err, sizeof err), -1);
    assert_non_null(strstr(err, "--passphrase-stdin"));
    keys_set_passphrase(k, "wrong", 5);
    assert_int_equal(keys_resolve(k, "acme", "openai", &s, err, sizeof err), -1);
    keys_set_passphrase(k, pass, strlen(pass));
    assert_int_equal(keys_resolve(k, "acme", "openai", &s, err, sizeof err), 0);
    assert_string_equal(s.value, "sk-pass-protected-3333");
    keys_secret_wipe(&s);
    keys_free(k);
}

#define ENV_KEY_T "VFRUVFRUVFRUVFRUVFRUVFRUVFRUVFRUVFRUVFRUVFQ=" /* 32 x 'T' */
#define GH_TOKEN  "ghp_unit_tool_token_0001GHUB"
#define GH_HOST   "github.example.com"

static const char *const tool_recs[][4] = {
    {"acme", "openai", KEYS_ID_KEY, "sk-acme-openai-1234"},
    {"acme", "tool:github", "GITHUB_TOKEN", GH_TOKEN},
    {"acme", "tool:github", "GH_HOST", GH_HOST},
};

/* Asserts the one tool call's credentials are GITHUB_TOKEN and GH_HOST. */
static void expect_github_creds(struct keys *k)
{
    static const char *const names[] = {"GITHUB_TOKEN", "GH_HOST"};
    struct keys_tool_creds c;
    char err[512] = "";
    if (keys_tool_credentials(k, "acme", "github", names, 2, &c, err, sizeof err) != 0)
        fail_msg("keys_tool_credentials: %s", err);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.names[0], "GITHUB_TOKEN");
    assert_string_equal(c.values[0], GH_TOKEN);
    assert_int_equal(c.lens[0], strlen(GH_TOKEN));
    assert_string_equal(c.names[1], "GH_HOST");
    assert_string_equal(c.values[1], GH_HOST);
    keys_tool_creds_wipe(&c);
    assert_int_equal(c.n, 0);
    assert_null(c.values);
}

/* A tool's credentials come all together, in the order asked, for the
 * tenant that stored them; one that is missing fails the whole fetch with
 * the command that adds it; a tool that needs none opens nothing (no
 * master.key is made). */
static void a_tools_credentials_come_all_or_name_the_missing_one(void **state)
{
    struct fx *f = *state;
    static const char *const need[] = {"GITHUB_TOKEN", "GITHUB_APP_ID"};
    struct keys_tool_creds c;
    char err[512] = "";
    struct keys *k = make_keys(f, "");
    assert_int_equal(keys_tool_credentials(k, "acme", "github", NULL, 0, &c, err, sizeof err), 0);
    assert_int_equal(c.n, 0);
    assert_int_equal(keys_tool_credentials(k, "acme", "github", need, 2, &c, err, sizeof err), 1);
    assert_string_equal(err, "tool github needs credential GITHUB_TOKEN for tenant acme: memchat "
                             "tools add-credential github GITHUB_TOKEN --tenant acme");
    struct stat st;
    assert_int_not_equal(stat(f->config_dir, &st), 0);
    keys_free(k);

    write_store(f, ENV_KEY_A, tool_recs, 3);
    k = make_keys(f, ENV_KEY_A);
    expect_github_creds(k);
    assert_int_equal(keys_tool_credentials(k, "acme", "github", need, 2, &c, err, sizeof err), 1);
    assert_string_equal(err, "tool github needs credential GITHUB_APP_ID for tenant acme: memchat "
                             "tools add-credential github GITHUB_APP_ID --tenant acme");
    assert_int_equal(c.n, 0);
    assert_null(c.names);
    assert_int_equal(keys_tool_credentials(k, "beta", "github", need, 1, &c, err, sizeof err), 1);
    assert_non_null(strstr(err, "for tenant beta"));
    assert_int_equal(keys_tool_credentials(k, "acme", "gitlab", need, 1, &c, err, sizeof err), 1);
    assert_non_null(strstr(err, "tool gitlab needs credential GITHUB_TOKEN"));
    keys_free(k);
}

/* Credentials sealed under TOOL_CREDENTIALS_ENCRYPTION_KEY come with it.
 * Without it, with a wrong one, or with a malformed one, the tool's fetch
 * fails naming the variable (never a value) while the tenant's provider key
 * still resolves: a tool setting never stops a chat. */
static void a_missing_wrong_or_malformed_tool_key_fails_only_tool_credentials(void **state)
{
    struct fx *f = *state;
    static const char *const names[] = {"GITHUB_TOKEN"};
    write_store_tool(f, ENV_KEY_A, ENV_KEY_T, tool_recs, 3);
    struct keys *k = make_keys_tool(f, ENV_KEY_A, ENV_KEY_T);
    expect_github_creds(k);
    keys_free(k);

    static const struct {
        const char *tool, *says;
    } bad[] = {
        {NULL, "TOOL_CREDENTIALS_ENCRYPTION_KEY, which is not set"},
        {"", "TOOL_CREDENTIALS_ENCRYPTION_KEY, which is not set"},
        {ENV_KEY_B, "TOOL_CREDENTIALS_ENCRYPTION_KEY does not open"},
        {"unit-not-base64-SECRETVALUE", "TOOL_CREDENTIALS_ENCRYPTION_KEY is not base64 of 32"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        k = make_keys_tool(f, ENV_KEY_A, bad[i].tool);
        struct keys_tool_creds c;
        char err[512] = "";
        assert_int_equal(keys_tool_credentials(k, "acme", "github", names, 1, &c, err, sizeof err),
                         -1);
        if (strstr(err, bad[i].says) == NULL)
            fail_msg("case %zu: '%s' lacks '%s'", i, err, bad[i].says);
        assert_non_null(strstr(err, "tool github"));
        assert_null(strstr(err, "SECRETVALUE"));
        assert_null(strstr(err, "GHUB"));
        assert_int_equal(c.n, 0);
        struct keys_secret s;
        assert_int_equal(keys_resolve(k, "acme", "openai", &s, err, sizeof err), 0);
        assert_string_equal(s.value, "sk-acme-openai-1234");
        keys_secret_wipe(&s);
        keys_free(k);
    }
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            without_a_keystore_the_global_key_applies_and_nothing_is_created, setup, teardown),
        cmocka_unit_test_setup_teardown(a_tenant_key_applies_to_its_own_tenant_and_provider_only,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(a_key_command_runs_at_use_time, setup, teardown),
        cmocka_unit_test_setup_teardown(a_failing_key_command_is_named_without_its_output, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_keystore_changed_by_another_process_is_reread, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_keystore_that_does_not_open_fails_the_lookup, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_passphrase_keystore_needs_the_passphrase, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_tools_credentials_come_all_or_name_the_missing_one, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            a_missing_wrong_or_malformed_tool_key_fails_only_tool_credentials, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
