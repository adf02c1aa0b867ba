/*
 * memchat tools end to end: the built program in a private HOME, data dir
 * and config dir, with a share dir of its own (shipped tools), the user's
 * tool files (one with a script beside it, one overriding a shipped tool,
 * one malformed) and the keystore. The cases prove what a user relies on:
 * `tools list` shows every tool (built-ins included) with where it comes
 * from, whether it is read-only and the state of each credential it
 * declares for the tenant, never a value, and a broken file warns without
 * hiding the rest; `tools add-credential` stores a value read from stdin
 * under the tenant, refuses bad names and warns about undeclared ones;
 * `tools rm-credential` removes one or says there was none; with
 * TOOL_CREDENTIALS_ENCRYPTION_KEY the credentials are sealed under it, a
 * wrong or malformed key is a clear error naming the variable, and `keys`
 * lists and rotates them.
 */
#include "cli_harness.h"

#include <sodium.h>

#include "store/keystore.h"
#include "store/masterkey.h"

#define GH_TOKEN    "ghp_tcli_github_token_value_7Qr2GHUB"
#define GH_HOST     "github.tcli.example"
#define WEATHER_KEY "wx-tcli-weather-key-value-3Lp9WTHR"
/* Base64 of two distinct 32-byte tool keys (the bytes spell what they are). */
#define TOOL_KEY_B64  "dGNsaS10b29sLWtleS1vZi0zMi1ieXRlcy1sb25nISE="
#define OTHER_KEY_B64 "dGNsaS1vdGhlci10b29sLWtleS0zMi1ieXRlcyEhISE="

static char share[4096];

/* Writes text to dir/name, making dir; mode 0755 when exec. */
static void put_file(const char *dir, const char *name, const char *text, bool exec)
{
    char path[4600];
    snprintf(path, sizeof path, "%s", dir);
    for (char *p = path + 1; *p != '\0'; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0700);
            *p = '/';
        }
    assert_true(mkdir(path, 0700) == 0 || errno == EEXIST);
    free(tu_write_file(dir, name, text));
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(chmod(path, exec ? 0755 : 0644), 0);
}

static int case_setup(void **state)
{
    int rc = setup(state);
    snprintf(share, sizeof share, "%s/share", fx.dir);
    fx_env("MEMCHAT_SHARE_DIR", share);
    char tools[4200], user[4200];
    snprintf(tools, sizeof tools, "%s/tools", share);
    snprintf(user, sizeof user, "%s/tools", fx.cfgdir);
    static const char script[] = "#!/bin/sh\ncat >/dev/null\necho '{\"ok\":true}'\n";
    put_file(tools, "weather.sh", script, true);
    put_file(tools, "weather.json",
             "{\"name\":\"weather\",\"description\":\"The weather.\",\"parameters\":"
             "{\"type\":\"object\"},\"command\":[\"weather.sh\"],\"read_only\":true,"
             "\"credentials\":[\"WEATHER_KEY\"]}",
             false);
    put_file(tools, "deploy.json",
             "{\"name\":\"deploy\",\"description\":\"Deploys.\",\"parameters\":"
             "{\"type\":\"object\"},\"command\":[\"/bin/true\"]}",
             false);
    put_file(user, "gh.sh", script, true);
    put_file(user, "github.json",
             "{\"name\":\"github\",\"description\":\"GitHub issues.\",\"parameters\":"
             "{\"type\":\"object\"},\"command\":[\"gh.sh\"],\"read_only\":true,"
             "\"credentials\":[\"GITHUB_TOKEN\",\"GH_HOST\"]}",
             false);
    put_file(user, "deploy.json",
             "{\"name\":\"deploy\",\"description\":\"My deploys.\",\"parameters\":"
             "{\"type\":\"object\"},\"command\":[\"gh.sh\"],\"read_only\":false}",
             false);
    put_file(user, "broken.json",
             "{\"name\":\"broken\",\"description\":\"No command.\",\"parameters\":"
             "{\"type\":\"object\"}}",
             false);
    return rc;
}

/* Neither stream of r holds secret. */
static void expect_hidden(const struct run *r, const char *secret)
{
    if (strstr(r->out, secret) != NULL || strstr(r->err, secret) != NULL)
        fail_msg("a secret was shown: stdout: %s\nstderr: %s", r->out, r->err);
}

/* memchat tools add-credential TOOL NAME --tenant T with value on stdin
 * (env: extra environment or NULL); must exit want without showing it. */
static void add_cred(const char *const *env, const char *tool, const char *name, const char *tenant,
                     const char *value, int want)
{
    struct run r;
    RUNE(&r, value, env, "tools", "add-credential", tool, name, "--tenant", tenant);
    expect_exit(&r, want, "tools add-credential");
    expect_hidden(&r, value);
    run_free(&r);
}

/* The line of r's stdout that starts with name (a table row), copied into
 * out; fails when there is none. */
static void table_row(const struct run *r, const char *name, char *out, size_t outlen)
{
    size_t n = strlen(name);
    for (const char *p = r->out; p != NULL && *p != '\0';) {
        const char *nl = strchr(p, '\n');
        size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);
        if (len > n && strncmp(p, name, n) == 0 && p[n] == ' ') {
            snprintf(out, outlen, "%.*s", (int)len, p);
            return;
        }
        p = nl != NULL ? nl + 1 : NULL;
    }
    fail_msg("no row for %s in:\n%s", name, r->out);
}

/* The object of tool name in the NDJSON of r (owned by arr). */
static const cJSON *json_tool(const cJSON *arr, const char *name)
{
    const cJSON *o;
    cJSON_ArrayForEach(o, arr)
    {
        if (strcmp(jstr(o, "name"), name) == 0)
            return o;
    }
    fail_msg("no tool %s in the JSON lines", name);
    return NULL;
}

/* The state of credential cred of tool in `tools list --json` output. */
static const char *json_state(const cJSON *arr, const char *tool, const char *cred)
{
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(json_tool(arr, tool), "credentials_state");
    assert_true(cJSON_IsObject(st));
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(st, cred);
    if (cJSON_IsNull(v))
        return "null";
    if (!cJSON_IsString(v))
        fail_msg("credentials_state.%s of %s is not a string", cred, tool);
    return v->valuestring;
}

/* Opens the keystore with master.key (and the tool key b64, or NULL) and
 * fails unless (tenant, tool:TOOL, NAME) decrypts to want. */
static void expect_stored(const char *tool_b64, const char *tenant, const char *tool,
                          const char *name, const char *want)
{
    char path[4200], err[512] = "";
    snprintf(path, sizeof path, "%s/master.key", fx.cfgdir);
    char *b64 = tu_read_file(path, NULL);
    assert_non_null(b64);
    uint8_t key[KEYSTORE_KEY_BYTES];
    assert_int_equal(masterkey_decode(b64, "master.key", key, err, sizeof err), 0);
    free(b64);
    snprintf(path, sizeof path, "%s/keystore", fx.data);
    struct keystore *ks = NULL;
    if (keystore_open(path, key, &ks, err, sizeof err) != 0)
        fail_msg("keystore_open: %s", err);
    if (tool_b64 != NULL) {
        uint8_t tk[KEYSTORE_KEY_BYTES];
        assert_int_equal(masterkey_decode(tool_b64, "tool key", tk, err, sizeof err), 0);
        assert_int_equal(keystore_set_tool_key(ks, tk, err, sizeof err), 0);
    }
    char provider[80], *secret = NULL;
    size_t len = 0;
    snprintf(provider, sizeof provider, "tool:%s", tool);
    if (keystore_get(ks, tenant, provider, name, &secret, &len, err, sizeof err) != 0)
        fail_msg("keystore_get %s/%s/%s: %s", tenant, provider, name, err);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(secret, want, len);
    keystore_secret_free(secret);
    keystore_free(ks);
    sodium_memzero(key, sizeof key);
}

/* The keystore file holds none of the values in clear. */
static void expect_file_clean(void)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/keystore", fx.data);
    size_t len = 0;
    char *raw = tu_read_file(path, &len);
    assert_non_null(raw);
    static const char *const values[] = {GH_TOKEN, GH_HOST, WEATHER_KEY};
    for (size_t i = 0; i < 3; i++)
        assert_null(memmem(raw, len, values[i], strlen(values[i])));
    free(raw);
}

/* tools list, with nothing stored: the built-ins, the shipped tools, the
 * user's (the override marked and explained), read-only or not, every
 * declared credential missing; the malformed file is a warning naming it
 * and its field, the rest still listed, exit 0; no keystore or master key
 * is made by listing. --json gives one object per tool with the documented
 * fields, the tenant and each credential's state. */
static void tools_list_shows_every_tool_and_warns_about_a_broken_file(void **state)
{
    (void)state;
    struct run r;
    RUN(&r, NULL, "tools", "list");
    expect_exit(&r, 0, "tools list");
    char row[1024];
    table_row(&r, "NAME", row, sizeof row);
    expect_in(row, "READ-ONLY", "the header");
    expect_in(row, "CREDENTIALS", "the header");
    table_row(&r, "memory_search", row, sizeof row);
    expect_in(row, "builtin", "memory_search");
    table_row(&r, "time_now", row, sizeof row);
    expect_in(row, "builtin", "time_now");
    table_row(&r, "weather", row, sizeof row);
    expect_in(row, "shipped", "weather");
    expect_in(row, "WEATHER_KEY:missing", "weather");
    expect_in(row, "/share/tools/weather.json", "weather");
    table_row(&r, "github", row, sizeof row);
    expect_in(row, " yes ", "github is read-only");
    expect_in(row, "user", "github");
    expect_in(row, "GITHUB_TOKEN:missing GH_HOST:missing", "github");
    table_row(&r, "deploy", row, sizeof row);
    expect_in(row, " no ", "deploy is not read-only");
    expect_in(row, "user*", "deploy overrides");
    expect_in(r.out, "* your file in the config dir replaces the shipped tool", "the footnote");
    assert_null(strstr(r.out, "broken"));
    expect_in(r.err, "memchat: tools: ", "the warning's prefix");
    expect_in(r.err, "broken.json: field command", "the warning names the file and field");
    run_free(&r);
    char path[4200];
    snprintf(path, sizeof path, "%s/master.key", fx.cfgdir);
    assert_int_not_equal(access(path, F_OK), 0);

    RUN(&r, NULL, "tools", "list", "--json", "--tenant", "acme");
    expect_exit(&r, 0, "tools list --json");
    cJSON *arr = json_lines(r.out);
    assert_int_equal(cJSON_GetArraySize(arr), 5);
    static const char *const fields[] = {
        "name",    "description", "source",     "path",   "overrides",        "read_only",
        "command", "credentials", "parameters", "tenant", "credentials_state"};
    const cJSON *o;
    cJSON_ArrayForEach(o, arr)
    {
        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
            if (cJSON_GetObjectItemCaseSensitive(o, fields[i]) == NULL)
                fail_msg("tool %s lacks %s", jstr(o, "name"), fields[i]);
        assert_string_equal(jstr(o, "tenant"), "acme");
    }
    assert_string_equal(jstr(json_tool(arr, "memory_search"), "source"), "builtin");
    assert_string_equal(jstr(json_tool(arr, "deploy"), "source"), "user");
    assert_true(
        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(json_tool(arr, "deploy"), "overrides")));
    assert_true(
        cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(json_tool(arr, "deploy"), "read_only")));
    assert_string_equal(json_state(arr, "github", "GITHUB_TOKEN"), "missing");
    assert_string_equal(json_state(arr, "weather", "WEATHER_KEY"), "missing");
    cJSON_Delete(arr);
    expect_in(r.err, "broken.json", "the --json warning");
    run_free(&r);
}

/* add-credential reads the value from stdin (one trailing newline
 * dropped), stores it for the tenant alone, encrypted (the file holds no
 * value), and never shows it; tools list then says set for that tenant and
 * missing for another. A second add replaces the value. */
static void add_credential_stores_the_value_from_stdin_for_the_tenant(void **state)
{
    (void)state;
    add_cred(NULL, "github", "GITHUB_TOKEN", "acme", GH_TOKEN "\n", 0);
    add_cred(NULL, "weather", "WEATHER_KEY", "acme", WEATHER_KEY, 0);
    expect_stored(NULL, "acme", "github", "GITHUB_TOKEN", GH_TOKEN);
    expect_stored(NULL, "acme", "weather", "WEATHER_KEY", WEATHER_KEY);
    expect_file_clean();

    struct run r;
    RUN(&r, NULL, "tools", "list", "--tenant", "acme");
    expect_exit(&r, 0, "tools list --tenant acme");
    char row[1024];
    table_row(&r, "github", row, sizeof row);
    expect_in(row, "GITHUB_TOKEN:set GH_HOST:missing", "github for acme");
    table_row(&r, "weather", row, sizeof row);
    expect_in(row, "WEATHER_KEY:set", "weather for acme");
    expect_hidden(&r, GH_TOKEN);
    expect_hidden(&r, "7Qr2GHUB");
    run_free(&r);
    RUN(&r, NULL, "tools", "list", "--json", "--tenant", "beta");
    expect_exit(&r, 0, "tools list --tenant beta");
    cJSON *arr = json_lines(r.out);
    assert_string_equal(json_state(arr, "github", "GITHUB_TOKEN"), "missing");
    cJSON_Delete(arr);
    run_free(&r);

    add_cred(NULL, "github", "GITHUB_TOKEN", "acme", "ghp_tcli_second_value_AAAA", 0);
    expect_stored(NULL, "acme", "github", "GITHUB_TOKEN", "ghp_tcli_second_value_AAAA");
    RUN(&r, NULL, "keys", "list", "--json", "--tenant", "acme");
    expect_exit(&r, 0, "keys list");
    expect_in(r.out,
              "{\"tenant\":\"acme\",\"provider\":\"tool:github\",\"kind\":\"credential\","
              "\"name\":\"GITHUB_TOKEN\",\"sealed\":\"master\",\"masked\":\"****AAAA\"}",
              "keys list shows the credential masked, sealed under the master key");
    run_free(&r);
}

/* An invalid tool or credential name is refused (exit 2, nothing stored,
 * nothing made); so is an empty value and an unknown verb. A tool that is
 * not known, or that does not declare the name, is a warning: the value is
 * stored all the same. */
static void add_credential_refuses_bad_names_and_warns_about_unknown_ones(void **state)
{
    (void)state;
    static const char *const bad[][2] = {
        {"git hub", "GITHUB_TOKEN"},
        {"github", "github_token"},
        {"github", "1TOKEN"},
        {"github", "TOKEN-X"},
    };
    struct run r;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        RUN(&r, "value-not-stored-XXXX", "tools", "add-credential", bad[i][0], bad[i][1]);
        expect_exit(&r, 2, "a bad name");
        expect_in(r.err, "invalid", "the refusal");
        run_free(&r);
    }
    RUN(&r, "", "tools", "add-credential", "github", "GITHUB_TOKEN");
    expect_exit(&r, 2, "an empty value");
    expect_in(r.err, "empty", "the refusal");
    run_free(&r);
    RUN(&r, NULL, "tools", "add-credential", "github");
    expect_exit(&r, 2, "a missing NAME");
    expect_in(r.err, "TOOL NAME", "the usage");
    run_free(&r);
    RUN(&r, NULL, "tools", "add-credential", "github", "GITHUB_TOKEN", "--json");
    expect_exit(&r, 2, "--json on add-credential");
    run_free(&r);
    RUN(&r, NULL, "tools", "frobnicate");
    expect_exit(&r, 2, "an unknown action");
    run_free(&r);
    char path[4200];
    snprintf(path, sizeof path, "%s/keystore", fx.data);
    assert_int_not_equal(access(path, F_OK), 0);

    RUN(&r, "sk-tcli-nosuch-1111", "tools", "add-credential", "nosuch", "API_KEY", "--tenant",
        "acme");
    expect_exit(&r, 0, "an unknown tool");
    expect_in(r.err, "warning: no tool named nosuch", "the warning");
    run_free(&r);
    RUN(&r, "sk-tcli-undeclared-2222", "tools", "add-credential", "github", "OTHER_TOKEN",
        "--tenant", "acme");
    expect_exit(&r, 0, "an undeclared credential");
    expect_in(r.err, "does not declare the credential OTHER_TOKEN", "the warning");
    expect_in(r.err, "GITHUB_TOKEN, GH_HOST", "the declared ones");
    run_free(&r);
    expect_stored(NULL, "acme", "nosuch", "API_KEY", "sk-tcli-nosuch-1111");
    expect_stored(NULL, "acme", "github", "OTHER_TOKEN", "sk-tcli-undeclared-2222");
}

/* rm-credential removes one credential (exit 0) and the list says missing
 * again; removing one that is not there exits 1 naming it, also before any
 * keystore exists. */
static void rm_credential_removes_or_says_there_was_none(void **state)
{
    (void)state;
    struct run r;
    RUN(&r, NULL, "tools", "rm-credential", "github", "GITHUB_TOKEN", "--tenant", "acme");
    expect_exit(&r, 1, "rm with no keystore");
    expect_in(r.err, "tenant acme has no credential GITHUB_TOKEN for tool github", "the message");
    run_free(&r);
    add_cred(NULL, "github", "GITHUB_TOKEN", "acme", GH_TOKEN, 0);
    add_cred(NULL, "github", "GH_HOST", "acme", GH_HOST, 0);
    RUN(&r, NULL, "tools", "rm-credential", "github", "GITHUB_TOKEN", "--tenant", "acme");
    expect_exit(&r, 0, "rm");
    expect_in(r.err, "removed credential GITHUB_TOKEN of tool github for tenant acme", "rm");
    run_free(&r);
    RUN(&r, NULL, "tools", "list", "--tenant", "acme");
    char row[1024];
    table_row(&r, "github", row, sizeof row);
    expect_in(row, "GITHUB_TOKEN:missing GH_HOST:set", "after rm");
    run_free(&r);
    RUN(&r, NULL, "tools", "rm-credential", "github", "GITHUB_TOKEN", "--tenant", "acme");
    expect_exit(&r, 1, "rm again");
    run_free(&r);
    RUN(&r, NULL, "tools", "rm-credential", "github", "GH_HOST", "--tenant", "beta");
    expect_exit(&r, 1, "rm of another tenant's");
    run_free(&r);
    expect_stored(NULL, "acme", "github", "GH_HOST", GH_HOST);
}

/* With TOOL_CREDENTIALS_ENCRYPTION_KEY, a credential is sealed under it
 * (the message says so): without the variable, tools list says sealed and
 * keys list shows it sealed under the tool key, unmasked; a wrong key is a
 * warning for list and a refusal for add (exit 2), both naming the
 * variable; a malformed one is refused without being repeated; keys rotate
 * with the key moves the master-sealed credentials to it and keeps all
 * readable. */
static void the_tool_key_seals_tool_credentials(void **state)
{
    (void)state;
    const char *const tool_env[] = {"TOOL_CREDENTIALS_ENCRYPTION_KEY=" TOOL_KEY_B64, NULL};
    const char *const wrong_env[] = {"TOOL_CREDENTIALS_ENCRYPTION_KEY=" OTHER_KEY_B64, NULL};
    const char *const bad_env[] = {"TOOL_CREDENTIALS_ENCRYPTION_KEY=tcli-bad-SECRETVALUE", NULL};
    add_cred(NULL, "weather", "WEATHER_KEY", "acme", WEATHER_KEY, 0); /* master-sealed */
    struct run r;
    RUNE(&r, GH_TOKEN, tool_env, "tools", "add-credential", "github", "GITHUB_TOKEN", "--tenant",
         "acme");
    expect_exit(&r, 0, "add under the tool key");
    expect_in(r.err, "sealed under TOOL_CREDENTIALS_ENCRYPTION_KEY", "the message");
    run_free(&r);
    expect_stored(TOOL_KEY_B64, "acme", "github", "GITHUB_TOKEN", GH_TOKEN);
    expect_file_clean();

    RUN(&r, NULL, "tools", "list", "--tenant", "acme");
    expect_exit(&r, 0, "tools list without the tool key");
    char row[1024];
    table_row(&r, "github", row, sizeof row);
    expect_in(row, "GITHUB_TOKEN:sealed", "sealed without the key");
    run_free(&r);
    RUNE(&r, NULL, tool_env, "tools", "list", "--tenant", "acme");
    table_row(&r, "github", row, sizeof row);
    expect_in(row, "GITHUB_TOKEN:set", "set with the key");
    run_free(&r);
    RUN(&r, NULL, "keys", "list", "--json");
    expect_exit(&r, 0, "keys list without the tool key");
    expect_in(r.out, "\"name\":\"GITHUB_TOKEN\",\"sealed\":\"tool\",\"masked\":\"(sealed)\"",
              "keys list");
    expect_in(r.out, "\"name\":\"WEATHER_KEY\",\"sealed\":\"master\"", "keys list");
    run_free(&r);

    RUNE(&r, NULL, wrong_env, "tools", "list", "--tenant", "acme");
    expect_exit(&r, 0, "tools list with a wrong tool key");
    expect_in(r.err, "TOOL_CREDENTIALS_ENCRYPTION_KEY does not open", "the warning");
    table_row(&r, "weather", row, sizeof row);
    expect_in(row, "WEATHER_KEY:set", "a master-sealed credential still reads");
    run_free(&r);
    RUNE(&r, GH_HOST, wrong_env, "tools", "add-credential", "github", "GH_HOST", "--tenant",
         "acme");
    expect_exit(&r, 2, "add with a wrong tool key");
    expect_in(r.err, "TOOL_CREDENTIALS_ENCRYPTION_KEY does not open", "the refusal");
    run_free(&r);
    RUNE(&r, GH_HOST, bad_env, "tools", "add-credential", "github", "GH_HOST", "--tenant", "acme");
    expect_exit(&r, 2, "add with a malformed tool key");
    expect_in(r.err, "TOOL_CREDENTIALS_ENCRYPTION_KEY is not base64 of 32 bytes", "the refusal");
    expect_hidden(&r, "SECRETVALUE");
    run_free(&r);
    RUNE(&r, NULL, wrong_env, "keys", "rotate");
    expect_exit(&r, 2, "rotate with a wrong tool key");
    expect_in(r.err, "before rotating", "the refusal");
    run_free(&r);

    RUNE(&r, NULL, tool_env, "keys", "rotate");
    expect_exit(&r, 0, "rotate with the tool key");
    expect_in(r.err, "2 tool credentials under TOOL_CREDENTIALS_ENCRYPTION_KEY", "rotate");
    run_free(&r);
    expect_stored(TOOL_KEY_B64, "acme", "weather", "WEATHER_KEY", WEATHER_KEY);
    expect_stored(TOOL_KEY_B64, "acme", "github", "GITHUB_TOKEN", GH_TOKEN);
    RUN(&r, NULL, "keys", "list");
    expect_exit(&r, 0, "keys list after rotate");
    table_row(&r, "acme", row, sizeof row);
    expect_in(row, " tool ", "sealed under the tool key");
    expect_in(row, "(sealed)", "not masked without the key");
    run_free(&r);
    RUN(&r, NULL, "keys", "rotate");
    expect_exit(&r, 0, "rotate without the tool key");
    expect_in(r.err, "kept 2 tool credentials", "rotate keeps them");
    run_free(&r);
    expect_stored(TOOL_KEY_B64, "acme", "github", "GITHUB_TOKEN", GH_TOKEN);
}

static int tools_cli_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(tools_list_shows_every_tool_and_warns_about_a_broken_file,
                                        case_setup, teardown),
        cmocka_unit_test_setup_teardown(add_credential_stores_the_value_from_stdin_for_the_tenant,
                                        case_setup, teardown),
        cmocka_unit_test_setup_teardown(
            add_credential_refuses_bad_names_and_warns_about_unknown_ones, case_setup, teardown),
        cmocka_unit_test_setup_teardown(rm_credential_removes_or_says_there_was_none, case_setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(the_tool_key_seals_tool_credentials, case_setup, teardown),
    };
    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}

int main(void)
{
    return harness_without_terminal(tools_cli_tests);
}
