/*
 * memchat keys end to end: the built program in a private HOME, data dir
 * and config dir, against the loopback test server (tests/server/mockllm),
 * whose request log shows which key each turn really sent. The cases prove
 * what a tenant's key promises: stored encrypted in a 0600 file, shown only
 * masked, sent instead of the global key for that tenant alone and only to
 * its own provider's server, taken from a key command whose failures never
 * show its output, locked by a master key whose sources keep their order,
 * re-encrypted by rotate, guarded by a passphrase when one was chosen, and
 * refused (never overwritten) when the file is damaged.
 */
#include "cli_harness.h"

#include <sodium.h>

#include "../server/mockserver.h"
#include "client/keys.h"
#include "store/keystore.h"
#include "store/masterkey.h"

static struct mock *mock;
static char base_openai[256], base_anthropic[256], local_url[256];

#define GLOBAL_OPENAI    "sk-kcli-global-openai-1111GLOB"
#define GLOBAL_ANTHROPIC "sk-ant-kcli-global-2222GLOB"
#define ACME_OPENAI      "sk-kcli-acme-openai-0123WXYZ"
#define ACME_ANTHROPIC   "sk-ant-kcli-acme-4567ANTH"
#define ACME_TOOL        "ghp_kcli_acme_tool_credential_TOOL"
#define PASSPHRASE       "kcli correct horse battery"

/* Base64 of two distinct 32-byte keys (the bytes spell what they are). */
#define ENV_KEY_B64   "a2NsaS1lbnYtbWFzdGVyLWtleS0tMzItYnl0ZXMhISE="
#define OTHER_KEY_B64 "a2NsaS1vdGhlci1tYXN0ZXIta2V5LTMyLWJ5dGVzISE="

static int group_setup(void **state)
{
    (void)state;
    if (sodium_init() < 0)
        return -1;
    mock = mock_start();
    snprintf(base_openai, sizeof base_openai, "OPENAI_BASE_URL=%s/v1", mock_url(mock));
    snprintf(base_anthropic, sizeof base_anthropic, "ANTHROPIC_BASE_URL=%s", mock_url(mock));
    snprintf(local_url, sizeof local_url, "MEMCHAT_LOCAL_BASE_URL=%s/v1", mock_url(mock));
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    mock_stop(mock);
    return 0;
}

static int case_setup(void **state)
{
    mock_reset(mock);
    return setup(state);
}

/* Turns against the mock as OpenAI with a global key. */
static const char *const *openai_env(void)
{
    static const char *env[6];
    env[0] = base_openai;
    env[1] = "MEMCHAT_PROVIDER=openai";
    env[2] = "MEMCHAT_MODEL=mock";
    env[3] = "OPENAI_API_KEY=" GLOBAL_OPENAI;
    env[4] = NULL;
    return env;
}

/* Neither stream of r holds secret. */
static void expect_hidden(const struct run *r, const char *secret)
{
    if (strstr(r->out, secret) != NULL || strstr(r->err, secret) != NULL)
        fail_msg("a secret was shown: stdout: %s\nstderr: %s", r->out, r->err);
}

/* memchat keys set for tenant and provider with key on stdin (env: extra
 * environment, NULL for none); must succeed without showing the key. */
static void keys_set(const char *const *env, const char *tenant, const char *provider,
                     const char *key)
{
    struct run r;
    RUNE(&r, key, env, "keys", "set", "--tenant", tenant, "--provider", provider);
    expect_exit(&r, 0, "keys set");
    expect_hidden(&r, key);
    run_free(&r);
}

/* memchat keys set --command cmd for tenant's openai slot. */
static void keys_set_command(const char *tenant, const char *cmd)
{
    struct run r;
    RUNE(&r, NULL, NULL, "keys", "set", "--tenant", tenant, "--provider", "openai", "--command",
         cmd);
    expect_exit(&r, 0, "keys set --command");
    run_free(&r);
}

/* The requests the mock received since the last mock_reset (its log is
 * cumulative and records the reset itself), as a new cJSON array the
 * caller deletes. */
static cJSON *since_reset(void)
{
    cJSON *arr = NULL;
    mock_requests(mock, &arr);
    cJSON *out = cJSON_CreateArray();
    const cJSON *req;
    cJSON_ArrayForEach(req, arr)
    {
        const cJSON *path = cJSON_GetObjectItemCaseSensitive(req, "path");
        assert_true(cJSON_IsString(path));
        if (strcmp(path->valuestring, "/_mock/reset") == 0) {
            cJSON_Delete(out);
            out = cJSON_CreateArray();
        } else {
            cJSON_AddItemToArray(out, cJSON_Duplicate(req, true));
        }
    }
    cJSON_Delete(arr);
    return out;
}

/* How many requests since the last mock_reset have a path containing
 * path_part; *value (when not NULL) gets a copy of the last one's header
 * (lower-case name), NULL when it had none or there was no request. The
 * caller frees *value. */
static size_t sent(const char *path_part, const char *header, char **value)
{
    cJSON *arr = since_reset();
    size_t n = 0;
    const cJSON *last = NULL, *req;
    cJSON_ArrayForEach(req, arr)
    {
        if (strstr(cJSON_GetObjectItemCaseSensitive(req, "path")->valuestring, path_part)) {
            n++;
            last = req;
        }
    }
    if (value != NULL) {
        const cJSON *hs = cJSON_GetObjectItemCaseSensitive(last, "headers");
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(hs, header);
        *value = cJSON_IsString(h) ? strdup(h->valuestring) : NULL;
    }
    cJSON_Delete(arr);
    return n;
}

/* Whether any request since the last mock_reset holds needle anywhere (path,
 * headers, body). */
static bool sent_anywhere(const char *needle)
{
    cJSON *arr = since_reset();
    char *all = cJSON_PrintUnformatted(arr);
    bool found = strstr(all, needle) != NULL;
    cJSON_free(all);
    cJSON_Delete(arr);
    return found;
}

/* Asserts the last chat request carried header with exactly want. */
static void expect_sent(const char *path_part, const char *header, const char *want)
{
    char *got = NULL;
    assert_true(sent(path_part, header, &got) > 0);
    if (got == NULL || strcmp(got, want) != 0)
        fail_msg("%s: %s was '%s', want '%s'", path_part, header, got ? got : "(none)", want);
    free(got);
}

/* The path of name in dir (caller frees). */
static char *path_in(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* The permission bits of path; fails when it does not exist. */
static unsigned mode_of(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        fail_msg("%s: %s", path, strerror(errno));
    return (unsigned)st.st_mode & 07777;
}

/* The content of name in dir (caller frees); fails when unreadable. */
static char *slurp(const char *dir, const char *name, size_t *len)
{
    char *p = path_in(dir, name);
    char *s = tu_read_file(p, len);
    if (s == NULL)
        fail_msg("cannot read %s", p);
    free(p);
    return s;
}

static bool exists(const char *dir, const char *name)
{
    char *p = path_in(dir, name);
    bool ok = access(p, F_OK) == 0;
    free(p);
    return ok;
}

/* A key set from stdin is stored encrypted in a 0600 file (master.key is
 * made 0600 too, holding base64 of 32 bytes) and listed masked to its last
 * four characters in text and JSON, never in full; the trailing newline of
 * the piped key is not part of it. */
static void a_key_set_from_stdin_is_listed_masked_and_stored_0600(void **state)
{
    (void)state;
    keys_set(NULL, "acme", "openai", ACME_OPENAI "\n");
    char *ks = path_in(fx.data, "keystore"), *mk = path_in(fx.cfgdir, "master.key");
    assert_int_equal(mode_of(ks), 0600);
    assert_int_equal(mode_of(mk), 0600);
    size_t len = 0;
    char *raw = slurp(fx.data, "keystore", &len);
    assert_null(memmem(raw, len, ACME_OPENAI, strlen(ACME_OPENAI)));
    free(raw);
    char *b64 = slurp(fx.cfgdir, "master.key", NULL);
    uint8_t key[KEYSTORE_KEY_BYTES];
    char err[256];
    assert_int_equal(masterkey_decode(b64, "master.key", key, err, sizeof err), 0);
    free(b64);

    struct run r;
    RUN(&r, NULL, "keys", "list");
    expect_exit(&r, 0, "keys list");
    assert_non_null(strstr(r.out, "acme"));
    assert_non_null(strstr(r.out, "openai"));
    assert_non_null(strstr(r.out, "****WXYZ\n")); /* the newline was not stored */
    expect_hidden(&r, "acme-openai-0123");
    run_free(&r);

    RUN(&r, NULL, "keys", "list", "--json");
    expect_exit(&r, 0, "keys list --json");
    expect_hidden(&r, "acme-openai-0123");
    cJSON *o = cJSON_Parse(r.out);
    assert_non_null(o);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "tenant")->valuestring, "acme");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "provider")->valuestring, "openai");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "kind")->valuestring, "key");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "masked")->valuestring, "****WXYZ");
    cJSON_Delete(o);
    assert_non_null(strchr(r.out, '\n'));
    assert_string_equal(strchr(r.out, '\n'), "\n"); /* one record, one line */
    run_free(&r);
    free(ks);
    free(mk);
}

/* A second keys set replaces the slot's key (and a command replaces a key);
 * rm removes it; rm of a key that is not there exits 1 naming the tenant and
 * the provider. */
static void keys_set_replaces_and_rm_removes(void **state)
{
    (void)state;
    keys_set(NULL, "acme", "openai", "sk-kcli-first-key-AAAA");
    keys_set(NULL, "acme", "openai", "sk-kcli-second-key-BBBB");
    struct run r;
    RUN(&r, NULL, "keys", "list", "--json");
    expect_exit(&r, 0, "keys list");
    assert_non_null(strstr(r.out, "\"masked\":\"****BBBB\""));
    assert_null(strstr(r.out, "AAAA"));
    assert_string_equal(strchr(r.out, '\n'), "\n");
    run_free(&r);

    keys_set_command("acme", "printf sk-kcli-from-a-command");
    RUN(&r, NULL, "keys", "list", "--json");
    assert_non_null(strstr(r.out, "\"kind\":\"command\""));
    assert_null(strstr(r.out, "BBBB"));
    assert_null(strstr(r.out, "printf")); /* a command may hold a token */
    assert_string_equal(strchr(r.out, '\n'), "\n");
    run_free(&r);

    RUN(&r, NULL, "keys", "rm", "--tenant", "acme", "--provider", "openai");
    expect_exit(&r, 0, "keys rm");
    run_free(&r);
    RUN(&r, NULL, "keys", "list");
    expect_exit(&r, 0, "keys list");
    assert_null(strstr(r.out, "acme"));
    run_free(&r);

    RUN(&r, NULL, "keys", "rm", "--tenant", "acme", "--provider", "openai");
    expect_exit(&r, 1, "keys rm of an absent key");
    assert_non_null(strstr(r.err, "acme"));
    assert_non_null(strstr(r.err, "openai"));
    run_free(&r);
}

/* With a global OPENAI_API_KEY, a tenant with its own key sends that key
 * and any other tenant still sends the global one. */
static void a_tenants_key_wins_over_the_global_key_for_that_tenant_only(void **state)
{
    (void)state;
    keys_set(NULL, "acme", "openai", ACME_OPENAI);
    struct run r;
    RUNE(&r, NULL, openai_env(), "ask", "--tenant", "acme", "hi");
    expect_exit(&r, 0, "ask --tenant acme");
    assert_string_equal(r.out, "mock reply: hi\n");
    run_free(&r);
    expect_sent("/chat/completions", "authorization", "Bearer " ACME_OPENAI);

    mock_reset(mock);
    RUNE(&r, NULL, openai_env(), "ask", "--tenant", "other", "hi");
    expect_exit(&r, 0, "ask --tenant other");
    run_free(&r);
    expect_sent("/chat/completions", "authorization", "Bearer " GLOBAL_OPENAI);
}

/* Anthropic likewise, in x-api-key; and with no ANTHROPIC_API_KEY at all a
 * tenant without a key fails (exit 2, naming ANTHROPIC_API_KEY, nothing
 * sent) while a tenant with one works. */
static void anthropic_tenant_keys_go_in_x_api_key_and_need_no_global_key(void **state)
{
    (void)state;
    keys_set(NULL, "acme", "anthropic", ACME_ANTHROPIC);
    const char *const with_global[] = {base_anthropic, "MEMCHAT_PROVIDER=anthropic",
                                       "MEMCHAT_MODEL=mock", "ANTHROPIC_API_KEY=" GLOBAL_ANTHROPIC,
                                       NULL};
    struct run r;
    RUNE(&r, NULL, with_global, "ask", "--tenant", "acme", "hi");
    expect_exit(&r, 0, "anthropic ask --tenant acme");
    run_free(&r);
    expect_sent("/v1/messages", "x-api-key", ACME_ANTHROPIC);
    mock_reset(mock);
    RUNE(&r, NULL, with_global, "ask", "--tenant", "other", "hi");
    expect_exit(&r, 0, "anthropic ask --tenant other");
    run_free(&r);
    expect_sent("/v1/messages", "x-api-key", GLOBAL_ANTHROPIC);

    const char *const no_global[] = {base_anthropic, "MEMCHAT_PROVIDER=anthropic",
                                     "MEMCHAT_MODEL=mock", NULL};
    mock_reset(mock);
    RUNE(&r, NULL, no_global, "ask", "--tenant", "other", "hi");
    expect_exit(&r, 2, "anthropic without any key");
    assert_non_null(strstr(r.err, "ANTHROPIC_API_KEY"));
    run_free(&r);
    assert_int_equal(sent("/v1/messages", NULL, NULL), 0);
    RUNE(&r, NULL, no_global, "ask", "--tenant", "acme", "hi");
    expect_exit(&r, 0, "anthropic with only the tenant's key");
    assert_string_equal(r.out, "mock reply: hi\n");
    run_free(&r);
    expect_sent("/v1/messages", "x-api-key", ACME_ANTHROPIC);
}

/* A tenant's OpenAI key goes only to the OpenAI base URL: when auto picks
 * a local OpenAI-compatible server (no global key anywhere), acme's stored
 * key is not in the request. */
static void a_tenants_key_is_not_sent_to_another_server(void **state)
{
    (void)state;
    keys_set(NULL, "acme", "openai", ACME_OPENAI);
    const char *const env[] = {local_url, "MEMCHAT_PROVIDER=auto", NULL};
    struct run r;
    RUNE(&r, NULL, env, "ask", "--tenant", "acme", "hi");
    expect_exit(&r, 0, "auto with a local server");
    assert_string_equal(r.out, "mock reply: hi\n");
    run_free(&r);
    char *auth = NULL;
    assert_int_equal(sent("/chat/completions", "authorization", &auth), 1);
    if (auth != NULL && strstr(auth, ACME_OPENAI) != NULL)
        fail_msg("acme's key went to the local server: %s", auth);
    free(auth);
    assert_false(sent_anywhere(ACME_OPENAI));
}

/* A key command's output is the key sent; a command that fails (exit 3)
 * fails the turn with exit 2 naming the tenant and "exited with status 3"
 * and sends nothing (not even the global key); one that prints a key and
 * then fails does not leak what it printed; one that outlives
 * MEMCHAT_KEY_COMMAND_TIMEOUT_S is reported as timed out. */
static void key_commands_supply_the_key_and_fail_without_their_output(void **state)
{
    (void)state;
    /* The key is built by printf, so the command's text does not hold it. */
    keys_set_command("acme", "printf 'sk-kcli-cmd-%s' 4444CMD");
    struct run r;
    RUNE(&r, NULL, openai_env(), "ask", "--tenant", "acme", "hi");
    expect_exit(&r, 0, "ask with a key command");
    run_free(&r);
    expect_sent("/chat/completions", "authorization", "Bearer sk-kcli-cmd-4444CMD");

    keys_set_command("acme", "exit 3");
    mock_reset(mock);
    RUNE(&r, NULL, openai_env(), "ask", "--tenant", "acme", "hi");
    expect_exit(&r, 2, "a failing key command");
    assert_non_null(strstr(r.err, "tenant acme"));
    assert_non_null(strstr(r.err, "exited with status 3"));
    run_free(&r);
    assert_int_equal(sent("/chat/completions", NULL, NULL), 0);

    keys_set_command("acme", "printf 'sk-kcli-leak-%s' 5555LEAK; exit 3");
    RUNE(&r, NULL, openai_env(), "ask", "--json", "--tenant", "acme", "hi");
    expect_exit(&r, 2, "a key command that prints then fails");
    expect_hidden(&r, "sk-kcli-leak-5555LEAK");
    expect_hidden(&r, "5555LEAK");
    assert_non_null(strstr(r.out, "exited with status 3")); /* the error event */
    run_free(&r);
    assert_int_equal(sent("/chat/completions", NULL, NULL), 0);

    keys_set_command("acme", "sleep 30");
    RUNE(&r, NULL, openai_env(), "ask", "--set", "MEMCHAT_KEY_COMMAND_TIMEOUT_S=1", "--tenant",
         "acme", "hi");
    expect_exit(&r, 2, "a key command that times out");
    assert_non_null(strstr(r.err, "tenant acme"));
    assert_non_null(strstr(r.err, "timed out"));
    run_free(&r);
    assert_int_equal(sent("/chat/completions", NULL, NULL), 0);
}

/* MEMCHAT_MASTER_KEY wins over master.key, so each opens only its own
 * keystore: one made under the environment's key (which then makes no
 * master.key) is refused with master.key alone, or with no key at all, and
 * one made under master.key is refused with MEMCHAT_MASTER_KEY set (exit 2,
 * naming the key's source, the file unchanged); a value that is not base64
 * of 32 bytes is refused without being repeated. */
static void memchat_master_key_beats_master_key_file(void **state)
{
    (void)state;
    const char *const env_key[] = {"MEMCHAT_MASTER_KEY=" ENV_KEY_B64, NULL};
    keys_set(env_key, "acme", "openai", ACME_OPENAI);
    assert_false(exists(fx.cfgdir, "master.key"));
    size_t len = 0, len2 = 0;
    char *before = slurp(fx.data, "keystore", &len);

    struct run r;
    RUN(&r, NULL, "keys", "list");
    expect_exit(&r, 2, "an env-key keystore with no key");
    assert_non_null(strstr(r.err, "MEMCHAT_MASTER_KEY"));
    run_free(&r);
    assert_true(mkdir(fx.cfgdir, 0700) == 0 || errno == EEXIST);
    free(tu_write_file(fx.cfgdir, "master.key", OTHER_KEY_B64 "\n"));
    char *mk = path_in(fx.cfgdir, "master.key");
    assert_int_equal(chmod(mk, 0600), 0);
    RUN(&r, NULL, "keys", "list");
    expect_exit(&r, 2, "an env-key keystore with master.key alone");
    assert_non_null(strstr(r.err, "does not open"));
    assert_non_null(strstr(r.err, "master.key"));
    run_free(&r);
    RUNE(&r, NULL, openai_env(), "ask", "--tenant", "acme", "hi");
    expect_exit(&r, 2, "a turn with the wrong master key");
    assert_non_null(strstr(r.err, "does not open"));
    run_free(&r);
    RUNE(&r, NULL, env_key, "keys", "list");
    expect_exit(&r, 0, "the env key opens its keystore despite master.key");
    assert_non_null(strstr(r.out, "****WXYZ"));
    run_free(&r);
    char *after = slurp(fx.data, "keystore", &len2);
    assert_true(len == len2 && memcmp(before, after, len) == 0);
    free(before);
    free(after);

    /* The other way round, in a second data dir. */
    char *data2 = path_in(fx.dir, "data2");
    char set_dir[4200];
    snprintf(set_dir, sizeof set_dir, "MEMCHAT_DATA_DIR=%s", data2);
    RUN(&r, ACME_OPENAI, "--set", set_dir, "keys", "set", "--tenant", "acme", "--provider",
        "openai");
    expect_exit(&r, 0, "keys set under master.key");
    run_free(&r);
    RUNE(&r, NULL, env_key, "--set", set_dir, "keys", "list");
    expect_exit(&r, 2, "a master.key keystore with MEMCHAT_MASTER_KEY set");
    assert_non_null(strstr(r.err, "does not open"));
    assert_non_null(strstr(r.err, "MEMCHAT_MASTER_KEY"));
    run_free(&r);

    const char *const bad[] = {"MEMCHAT_MASTER_KEY=kcli-not-base64-SECRETVALUE", NULL};
    RUNE(&r, NULL, bad, "keys", "list");
    expect_exit(&r, 2, "a bad MEMCHAT_MASTER_KEY");
    assert_non_null(strstr(r.err, "MEMCHAT_MASTER_KEY"));
    assert_non_null(strstr(r.err, "base64"));
    expect_hidden(&r, "SECRETVALUE");
    run_free(&r);
    const char *const bad_turn[] = {base_openai,
                                    "MEMCHAT_PROVIDER=openai",
                                    "MEMCHAT_MODEL=mock",
                                    "OPENAI_API_KEY=" GLOBAL_OPENAI,
                                    "MEMCHAT_MASTER_KEY=kcli-not-base64-SECRETVALUE",
                                    NULL};
    RUNE(&r, NULL, bad_turn, "ask", "--json", "--tenant", "acme", "hi");
    expect_exit(&r, 2, "a turn with a bad MEMCHAT_MASTER_KEY");
    expect_hidden(&r, "SECRETVALUE");
    assert_non_null(strstr(r.out, "MEMCHAT_MASTER_KEY"));
    run_free(&r);
    free(mk);
    free(data2);
}

/* A master.key that group or others may read (0644, 0640) is refused by
 * keys and by turns with the fix in the message ("chmod 600 <path>"), and
 * keys set then stores nothing; after chmod 600 it works again. Mode bits
 * are checked from st_mode, so this holds for root too. */
static void a_group_or_world_readable_master_key_is_refused(void **state)
{
    (void)state;
    keys_set(NULL, "acme", "openai", ACME_OPENAI);
    char *mk = path_in(fx.cfgdir, "master.key");
    char want[4200];
    snprintf(want, sizeof want, "chmod 600 %s", mk);
    size_t len = 0, len2 = 0;
    char *before = slurp(fx.data, "keystore", &len);
    static const mode_t modes[] = {0644, 0640, 0604};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        assert_int_equal(chmod(mk, modes[i]), 0);
        struct run r;
        RUN(&r, NULL, "keys", "list");
        expect_exit(&r, 2, "keys list with a readable master.key");
        assert_non_null(strstr(r.err, want));
        run_free(&r);
        RUN(&r, "sk-kcli-not-stored-XXXX", "keys", "set", "--tenant", "beta", "--provider",
            "openai");
        expect_exit(&r, 2, "keys set with a readable master.key");
        assert_non_null(strstr(r.err, want));
        run_free(&r);
        RUNE(&r, NULL, openai_env(), "ask", "--tenant", "acme", "hi");
        expect_exit(&r, 2, "a turn with a readable master.key");
        assert_non_null(strstr(r.err, want));
        run_free(&r);
    }
    char *after = slurp(fx.data, "keystore", &len2);
    assert_true(len == len2 && memcmp(before, after, len) == 0);
    free(before);
    free(after);
    assert_int_equal(chmod(mk, 0600), 0);
    struct run r;
    RUN(&r, NULL, "keys", "list");
    expect_exit(&r, 0, "keys list after chmod 600");
    assert_non_null(strstr(r.out, "****WXYZ"));
    run_free(&r);
    free(mk);
}

/* The tool:github record of the keystore at data dir, opened with the
 * master key in master_b64; fails unless it decrypts to want. */
static void expect_tool_record(const char *master_b64, const char *want)
{
    uint8_t key[KEYSTORE_KEY_BYTES];
    char err[512] = "";
    assert_int_equal(masterkey_decode(master_b64, "master.key", key, err, sizeof err), 0);
    char *path = path_in(fx.data, "keystore");
    struct keystore *ks = NULL;
    if (keystore_open(path, key, &ks, err, sizeof err) != 0)
        fail_msg("keystore_open: %s", err);
    char *secret = NULL;
    size_t len = 0;
    assert_int_equal(
        keystore_get(ks, "acme", "tool:github", KEYS_ID_KEY, &secret, &len, err, sizeof err), 0);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(secret, want, len);
    keystore_secret_free(secret);
    keystore_free(ks);
    free(path);
    sodium_memzero(key, sizeof key);
}

/* rotate re-encrypts every record, the tool credential included, under a
 * new master.key: the file's key changes, the old key no longer opens the
 * keystore, no master.key.old is left, every record is still listed and
 * used; with MEMCHAT_MASTER_KEY set, rotate is refused (memchat cannot
 * change it) and nothing changes. */
static void rotate_reencrypts_every_record_under_a_new_master_key(void **state)
{
    (void)state;
    keys_set(NULL, "acme", "openai", ACME_OPENAI);
    keys_set(NULL, "acme", "tool:github", ACME_TOOL);
    keys_set(NULL, "beta", "anthropic", ACME_ANTHROPIC);
    char *old_key = slurp(fx.cfgdir, "master.key", NULL);
    size_t len = 0, len2 = 0;
    char *old_ks = slurp(fx.data, "keystore", &len);
    expect_tool_record(old_key, ACME_TOOL);

    struct run r;
    RUN(&r, NULL, "keys", "rotate");
    expect_exit(&r, 0, "keys rotate");
    assert_non_null(strstr(r.err, "3 records"));
    run_free(&r);
    char *new_key = slurp(fx.cfgdir, "master.key", NULL);
    assert_string_not_equal(new_key, old_key);
    char *mk = path_in(fx.cfgdir, "master.key");
    assert_int_equal(mode_of(mk), 0600);
    assert_false(exists(fx.cfgdir, "master.key.old"));
    char *new_ks = slurp(fx.data, "keystore", &len2);
    assert_false(len == len2 && memcmp(old_ks, new_ks, len) == 0);
    expect_tool_record(new_key, ACME_TOOL);

    RUN(&r, NULL, "keys", "list");
    expect_exit(&r, 0, "keys list after rotate");
    assert_non_null(strstr(r.out, "****WXYZ"));
    assert_non_null(strstr(r.out, "tool:github"));
    assert_non_null(strstr(r.out, "****TOOL"));
    assert_non_null(strstr(r.out, "****ANTH"));
    run_free(&r);
    RUNE(&r, NULL, openai_env(), "ask", "--tenant", "acme", "hi");
    expect_exit(&r, 0, "a turn after rotate");
    run_free(&r);
    expect_sent("/chat/completions", "authorization", "Bearer " ACME_OPENAI);

    /* The old key, given as MEMCHAT_MASTER_KEY, no longer opens it. */
    char old_env[128];
    snprintf(old_env, sizeof old_env, "MEMCHAT_MASTER_KEY=%.*s", (int)strcspn(old_key, "\n"),
             old_key);
    const char *const with_old[] = {old_env, NULL};
    RUNE(&r, NULL, with_old, "keys", "list");
    expect_exit(&r, 2, "the old master key after rotate");
    assert_non_null(strstr(r.err, "does not open"));
    run_free(&r);

    /* rotate refuses while MEMCHAT_MASTER_KEY holds the key. */
    char *data2 = path_in(fx.dir, "data2");
    char set_dir[4200];
    snprintf(set_dir, sizeof set_dir, "MEMCHAT_DATA_DIR=%s", data2);
    const char *const env_key[] = {"MEMCHAT_MASTER_KEY=" ENV_KEY_B64, NULL};
    RUNE(&r, ACME_OPENAI, env_key, "--set", set_dir, "keys", "set", "--tenant", "acme",
         "--provider", "openai");
    expect_exit(&r, 0, "keys set under MEMCHAT_MASTER_KEY");
    run_free(&r);
    char *ks2 = path_in(data2, "keystore");
    size_t l1 = 0, l2 = 0;
    char *b1 = tu_read_file(ks2, &l1);
    RUNE(&r, NULL, env_key, "--set", set_dir, "keys", "rotate");
    expect_exit(&r, 2, "rotate with MEMCHAT_MASTER_KEY");
    assert_non_null(strstr(r.err, "MEMCHAT_MASTER_KEY"));
    assert_non_null(strstr(r.err, "--passphrase"));
    run_free(&r);
    char *b2 = tu_read_file(ks2, &l2);
    assert_true(b1 != NULL && b2 != NULL && l1 == l2 && memcmp(b1, b2, l1) == 0);
    char *mk2 = slurp(fx.cfgdir, "master.key", NULL);
    assert_string_equal(mk2, new_key); /* master.key untouched too */
    free(mk2);
    free(b1);
    free(b2);
    free(ks2);
    free(data2);
    free(mk);
    free(old_key);
    free(new_key);
    free(old_ks);
    free(new_ks);
}

/* Writes acme's OpenAI key into the passphrase-protected keystore through
 * the library, as `keys set` at a terminal would (it cannot read both the
 * key and the passphrase from a pipe). */
static void store_with_passphrase(const char *path, const char *pass, const char *secret)
{
    struct keystore_kdf kdf;
    char err[512] = "";
    assert_int_equal(keystore_kdf_params(path, &kdf, err, sizeof err), 0);
    uint8_t key[KEYSTORE_KEY_BYTES];
    assert_int_equal(keystore_derive_key(pass, strlen(pass), &kdf, key, err, sizeof err), 0);
    struct keystore *ks = NULL;
    if (keystore_open(path, key, &ks, err, sizeof err) != 0)
        fail_msg("keystore_open: %s", err);
    assert_int_equal(
        keystore_set(ks, "acme", "openai", KEYS_ID_KEY, secret, strlen(secret), err, sizeof err),
        0);
    assert_int_equal(keystore_save(ks, err, sizeof err), 0);
    keystore_free(ks);
    sodium_memzero(key, sizeof key);
}

/* keys init --passphrase (the passphrase on stdin) records KDF parameters
 * and makes no master.key; then keys set cannot take both the key and the
 * passphrase from stdin (refused, nothing stored); keys list and ask work
 * with the right passphrase on stdin's first line (ask's question being the
 * rest) and fail with a wrong one (exit 2); a turn with no passphrase and no
 * terminal fails pointing at --passphrase-stdin, sending nothing; rotate to
 * master.key is refused while MEMCHAT_MASTER_KEY is set, since that would
 * win over the new file. */
static void a_passphrase_keystore_needs_its_passphrase(void **state)
{
    (void)state;
    struct run r;
    RUN(&r, PASSPHRASE "\n", "keys", "init", "--passphrase", "--passphrase-stdin");
    expect_exit(&r, 0, "keys init --passphrase");
    expect_hidden(&r, PASSPHRASE);
    run_free(&r);
    char *path = path_in(fx.data, "keystore");
    struct keystore_kdf kdf;
    char err[512] = "";
    assert_int_equal(keystore_kdf_params(path, &kdf, err, sizeof err), 0);
    assert_true(kdf.opslimit > 0 && kdf.memlimit > 0);
    assert_false(exists(fx.cfgdir, "master.key"));

    size_t len = 0, len2 = 0;
    char *before = slurp(fx.data, "keystore", &len);
    RUN(&r, PASSPHRASE "\nsk-kcli-piped-key-ZZZZ", "keys", "set", "--tenant", "acme", "--provider",
        "openai", "--passphrase-stdin");
    expect_exit(&r, 2, "keys set --passphrase-stdin with a piped key");
    assert_non_null(strstr(r.err, "cannot both come from stdin"));
    run_free(&r);
    char *after = slurp(fx.data, "keystore", &len2);
    assert_true(len == len2 && memcmp(before, after, len) == 0);
    free(before);
    free(after);

    store_with_passphrase(path, PASSPHRASE, ACME_OPENAI);
    RUN(&r, PASSPHRASE "\n", "keys", "list", "--passphrase-stdin");
    expect_exit(&r, 0, "keys list with the passphrase");
    assert_non_null(strstr(r.out, "****WXYZ"));
    run_free(&r);
    RUN(&r, "not the passphrase\n", "keys", "list", "--passphrase-stdin");
    expect_exit(&r, 2, "keys list with a wrong passphrase");
    assert_null(strstr(r.out, "WXYZ"));
    expect_hidden(&r, "not the passphrase");
    run_free(&r);

    RUNE(&r, PASSPHRASE "\nwhat is up", openai_env(), "ask", "--passphrase-stdin", "--tenant",
         "acme");
    expect_exit(&r, 0, "ask --passphrase-stdin");
    assert_string_equal(r.out, "mock reply: what is up\n");
    expect_hidden(&r, PASSPHRASE);
    run_free(&r);
    expect_sent("/chat/completions", "authorization", "Bearer " ACME_OPENAI);

    mock_reset(mock);
    RUNE(&r, NULL, openai_env(), "ask", "--tenant", "acme", "hi");
    expect_exit(&r, 2, "a turn with no passphrase and no terminal");
    assert_non_null(strstr(r.err, "--passphrase-stdin"));
    run_free(&r);
    assert_int_equal(sent("/chat/completions", NULL, NULL), 0);

    const char *const env_key[] = {"MEMCHAT_MASTER_KEY=" ENV_KEY_B64, NULL};
    before = slurp(fx.data, "keystore", &len);
    RUNE(&r, PASSPHRASE "\n", env_key, "keys", "rotate", "--passphrase-stdin");
    expect_exit(&r, 2, "rotate to master.key with MEMCHAT_MASTER_KEY set");
    assert_non_null(strstr(r.err, "MEMCHAT_MASTER_KEY"));
    run_free(&r);
    after = slurp(fx.data, "keystore", &len2);
    assert_true(len == len2 && memcmp(before, after, len) == 0);
    assert_false(exists(fx.cfgdir, "master.key"));
    free(before);
    free(after);
    free(path);
}

/* One flipped byte in a record makes keys list, keys set, keys rm and a
 * turn fail with a message saying the keystore is damaged (exit 2, nothing
 * sent), and none of them rewrites the file. */
static void a_damaged_keystore_is_refused_and_left_unchanged(void **state)
{
    (void)state;
    keys_set(NULL, "acme", "openai", ACME_OPENAI);
    keys_set(NULL, "beta", "openai", "sk-kcli-beta-openai-BETA");
    size_t len = 0;
    char *bytes = slurp(fx.data, "keystore", &len);
    char *ct = NULL;
    for (char *p = bytes; (p = strstr(p, "\"ct\":\"")) != NULL; p++)
        ct = p;
    assert_non_null(ct);
    ct[6 + 8] ^= 0x01; /* inside the last record's ciphertext */
    char *path = path_in(fx.data, "keystore");
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, len, f), len);
    assert_int_equal(fclose(f), 0);

    struct run r;
    RUN(&r, NULL, "keys", "list");
    expect_exit(&r, 2, "keys list of a damaged keystore");
    assert_non_null(strstr(r.err, "damaged"));
    run_free(&r);
    RUN(&r, "sk-kcli-gamma-openai-GAMM", "keys", "set", "--tenant", "gamma", "--provider",
        "openai");
    expect_exit(&r, 2, "keys set into a damaged keystore");
    assert_non_null(strstr(r.err, "damaged"));
    run_free(&r);
    RUN(&r, NULL, "keys", "rm", "--tenant", "acme", "--provider", "openai");
    expect_exit(&r, 2, "keys rm in a damaged keystore");
    run_free(&r);
    RUNE(&r, NULL, openai_env(), "ask", "--tenant", "acme", "hi");
    expect_exit(&r, 2, "a turn with a damaged keystore");
    assert_non_null(strstr(r.err, "damaged"));
    run_free(&r);
    assert_int_equal(sent("/chat/completions", NULL, NULL), 0);

    size_t len2 = 0;
    char *now = slurp(fx.data, "keystore", &len2);
    assert_true(len == len2 && memcmp(bytes, now, len) == 0);
    free(now);
    free(bytes);
    free(path);
}

static int keys_cli_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_key_set_from_stdin_is_listed_masked_and_stored_0600,
                                        case_setup, teardown),
        cmocka_unit_test_setup_teardown(keys_set_replaces_and_rm_removes, case_setup, teardown),
        cmocka_unit_test_setup_teardown(a_tenants_key_wins_over_the_global_key_for_that_tenant_only,
                                        case_setup, teardown),
        cmocka_unit_test_setup_teardown(
            anthropic_tenant_keys_go_in_x_api_key_and_need_no_global_key, case_setup, teardown),
        cmocka_unit_test_setup_teardown(a_tenants_key_is_not_sent_to_another_server, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(key_commands_supply_the_key_and_fail_without_their_output,
                                        case_setup, teardown),
        cmocka_unit_test_setup_teardown(memchat_master_key_beats_master_key_file, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_group_or_world_readable_master_key_is_refused, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(rotate_reencrypts_every_record_under_a_new_master_key,
                                        case_setup, teardown),
        cmocka_unit_test_setup_teardown(a_passphrase_keystore_needs_its_passphrase, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_damaged_keystore_is_refused_and_left_unchanged,
                                        case_setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

int main(void)
{
    return harness_without_terminal(keys_cli_tests);
}
