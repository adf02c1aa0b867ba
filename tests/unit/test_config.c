/*
 * Tests of the settings engine (src/config): precedence and sources, the
 * file format, unknown names, the untrusted .env rule, every type's
 * accepted and rejected values, secret masking, computed defaults, and that
 * memchat's own table, docs/configuration.md and .env.example agree. Every
 * load passes its own environment, config dir and .env path, so nothing
 * here depends on the real environment or home.
 */
#include "testutil.h"

#include <math.h>

#include "config/config.h"
#include "config/vars.h"

/* A table with one variable of each kind, so the engine is tested apart
 * from memchat's settings. */
enum {
    T_FLAG,
    T_COUNT,
    T_TIMEOUT,
    T_WAIT_MS,
    T_TTL_S,
    T_SECRET,
    T_TOKEN,
    T_NAME,
    T_MODE,
    T_TEXT,
    T_PATH,
    T_NOFILE,
    T_TENANT,
    T_DATA_DIR,
    T_RATIO,
    T_N
};

static const struct cfg_var test_vars[T_N] = {
    [T_FLAG] = {"TEST_FLAG", CFG_BOOL, "false", 0, 0, NULL, 0, "a switch"},
    [T_COUNT] = {"TEST_COUNT", CFG_INT, "5", -3, 100, NULL, 0, "a count"},
    [T_TIMEOUT] = {"TEST_TIMEOUT", CFG_DURATION, "30s", 1000, 604800000, NULL, 0, "1s..1w"},
    [T_WAIT_MS] = {"TEST_WAIT_MS", CFG_DURATION, "250", 0, 60000, NULL, 0, "0..60000 ms"},
    [T_TTL_S] = {"TEST_TTL_S", CFG_DURATION, "60", 1000, 86400000, NULL, 0, "1..86400 s"},
    [T_SECRET] = {"TEST_SECRET", CFG_STRING, "", 0, 0, NULL, CFG_F_SECRET, "a secret"},
    [T_TOKEN] = {"TEST_TOKEN", CFG_ID, NULL, 0, 0, NULL, CFG_F_SECRET, "a secret id"},
    [T_NAME] = {"TEST_NAME", CFG_ID, "alice", 0, 0, NULL, 0, "an id"},
    [T_MODE] = {"TEST_MODE", CFG_ENUM, "fast", 0, 0, "fast|slow|off", 0, "a choice"},
    [T_TEXT] = {"TEST_TEXT", CFG_STRING, "hello", 0, 0, NULL, 0, "text"},
    [T_PATH] = {"TEST_PATH", CFG_PATH, "", 0, 0, NULL, 0, "a path"},
    [T_NOFILE] = {"TEST_NOFILE", CFG_STRING, "", 0, 0, NULL, CFG_F_NO_FILE, "not in files"},
    [T_TENANT] = {"MEMCHAT_TENANT", CFG_ID, "default", 0, 0, NULL, 0, "tenant"},
    [T_DATA_DIR] = {"MEMCHAT_DATA_DIR", CFG_PATH, "", 0, 0, NULL, 0, "data dir"},
    [T_RATIO] = {"TEST_RATIO", CFG_NUMBER, "", 0, 2, NULL, 0, "a number, unset by default"},
};

static const char *no_env[] = {NULL};

/* The per-test temporary directory. */
static int setup(void **state)
{
    *state = tu_mkdtemp();
    return 0;
}

static int teardown(void **state)
{
    tu_rmtree(*state);
    free(*state);
    return 0;
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Writes (or removes, when text is NULL) dir/name. */
static void put_file(const char *dir, const char *name, const char *text)
{
    if (text != NULL) {
        free(tu_write_file(dir, name, text));
    } else {
        char *p = join(dir, name);
        unlink(p);
        free(p);
    }
}

/* Loads cfg with dir as the config dir, dir/config.env and dir/.env holding
 * the given texts (NULL: absent), envp (NULL: empty) and the flags. */
static int load(struct config *cfg, const char *dir, const char *config_env, const char *dotenv,
                const char **envp, const char *const *flags, size_t n_flags, char *err,
                size_t errlen)
{
    put_file(dir, "config.env", config_env);
    put_file(dir, ".env", dotenv);
    char *dotenv_path = join(dir, ".env");
    struct config_load_opts o = {.config_dir = dir,
                                 .dotenv_path = dotenv_path,
                                 .environ = envp != NULL ? envp : no_env,
                                 .flags = flags,
                                 .n_flags = n_flags};
    err[0] = '\0';
    int rc = config_load(cfg, &o, err, errlen);
    free(dotenv_path);
    return rc;
}

#define assert_source(cfg, id, want)                                          \
    do {                                                                      \
        char src_[64];                                                        \
        assert_string_equal(config_source(cfg, id, src_, sizeof src_), want); \
    } while (0)

#define assert_contains(hay, needle)                             \
    do {                                                         \
        if (strstr(hay, needle) == NULL)                         \
            fail_msg("'%s' does not contain '%s'", hay, needle); \
    } while (0)

/* Loads a config.env holding text and expects the error err_want exactly. */
static void expect_file_error(const char *dir, const char *config_env, const char *dotenv,
                              const char *want_prefix)
{
    struct config *cfg = config_new(test_vars, T_N);
    char err[512];
    assert_int_equal(load(cfg, dir, config_env, dotenv, NULL, NULL, 0, err, sizeof err), -1);
    if (strncmp(err, want_prefix, strlen(want_prefix)) != 0)
        fail_msg("error '%s' does not start with '%s'", err, want_prefix);
    config_free(cfg);
}

/* With no source at all, every variable holds its table default and says so. */
static void defaults_hold_when_no_source_sets_anything(void **state)
{
    struct config *cfg = config_new(test_vars, T_N);
    char err[512];
    assert_int_equal(load(cfg, *state, NULL, NULL, NULL, NULL, 0, err, sizeof err), 0);
    assert_false(config_bool(cfg, T_FLAG));
    assert_int_equal(config_int(cfg, T_COUNT), 5);
    assert_int_equal(config_duration_ms(cfg, T_TIMEOUT), 30000);
    assert_int_equal(config_duration_ms(cfg, T_WAIT_MS), 250);
    assert_int_equal(config_duration_ms(cfg, T_TTL_S), 60000);
    assert_string_equal(config_str(cfg, T_NAME), "alice");
    assert_string_equal(config_str(cfg, T_MODE), "fast");
    assert_string_equal(config_str(cfg, T_PATH), "");
    assert_string_equal(config_str(cfg, T_TOKEN), "");
    for (int i = 0; i < T_N; i++) {
        assert_source(cfg, i, "default");
        assert_int_equal(config_origin(cfg, i), CFG_FROM_DEFAULT);
    }
    assert_int_equal(config_warning_count(cfg), 0);
    assert_int_equal(config_find(cfg, "TEST_MODE"), T_MODE);
    assert_int_equal(config_find(cfg, "NOPE"), -1);
    assert_int_equal(config_count(cfg), T_N);
    assert_string_equal(config_var(cfg, T_COUNT)->name, "TEST_COUNT");
    config_free(cfg);
}

/* Each source beats every weaker one, and each variable reports exactly the
 * source (and file line) its value came from. TEST_COUNT is set by all five
 * sources, TEST_TEXT by four, TEST_NAME by three, TEST_MODE by two. */
static void each_source_beats_the_weaker_ones_and_is_reported(void **state)
{
    struct config *cfg = config_new(test_vars, T_N);
    char err[512];
    const char *config_env = "# settings\n"
                             "\n"
                             "TEST_COUNT=1\n"
                             "TEST_TEXT=from-config\n"
                             "TEST_NAME=configname\n"
                             "TEST_MODE=slow\n";
    const char *dotenv = "TEST_COUNT=2\n"
                         "   # indented comment\n"
                         "TEST_TEXT=from-dotenv\n"
                         "TEST_NAME=dotenvname\n";
    const char *env[] = {"TEST_COUNT=3", "TEST_TEXT=from-env", "HOME=/nowhere", NULL};
    const char *flags[] = {"TEST_COUNT=4"};
    assert_int_equal(load(cfg, *state, config_env, dotenv, env, flags, 1, err, sizeof err), 0);
    assert_int_equal(config_int(cfg, T_COUNT), 4);
    assert_source(cfg, T_COUNT, "flag");
    assert_int_equal(config_origin(cfg, T_COUNT), CFG_FROM_FLAG);
    assert_string_equal(config_str(cfg, T_TEXT), "from-env");
    assert_source(cfg, T_TEXT, "env");
    assert_int_equal(config_origin(cfg, T_TEXT), CFG_FROM_ENV);
    assert_string_equal(config_str(cfg, T_NAME), "dotenvname");
    assert_source(cfg, T_NAME, ".env:4");
    assert_int_equal(config_origin(cfg, T_NAME), CFG_FROM_DOTENV);
    assert_string_equal(config_str(cfg, T_MODE), "slow");
    assert_source(cfg, T_MODE, "config.env:6");
    assert_int_equal(config_origin(cfg, T_MODE), CFG_FROM_CONFIG_ENV);
    assert_false(config_bool(cfg, T_FLAG));
    assert_source(cfg, T_FLAG, "default");
    config_free(cfg);
}

/* A bad value is an error even when a stronger source sets the variable:
 * it is never silently replaced. */
static void a_bad_value_is_an_error_even_when_overridden(void **state)
{
    struct config *cfg = config_new(test_vars, T_N);
    char err[512];
    const char *flags[] = {"TEST_COUNT=7"};
    assert_int_equal(load(cfg, *state, "TEST_COUNT=seven\n", NULL, NULL, flags, 1, err, sizeof err),
                     -1);
    assert_string_equal(err, "config.env:1: TEST_COUNT: 'seven' is not an integer (accepted: "
                             "-3..100)");
    config_free(cfg);
}

/* A value's error names the source in the contract's form: file and line,
 * "environment" or "--set". */
static void value_errors_name_their_source(void **state)
{
    struct config *cfg = config_new(test_vars, T_N);
    char err[512];
    assert_int_equal(load(cfg, *state, "\nTEST_FLAG=maybe\n", NULL, NULL, NULL, 0, err, sizeof err),
                     -1);
    assert_string_equal(err, "config.env:2: TEST_FLAG: 'maybe' is not a boolean (accepted: "
                             "true|false|1|0|yes|no|on|off)");
    assert_int_equal(load(cfg, *state, NULL, "TEST_MODE=quick\n", NULL, NULL, 0, err, sizeof err),
                     -1);
    assert_string_equal(err, ".env:1: TEST_MODE: 'quick' is not one of the choices (accepted: "
                             "fast|slow|off)");
    const char *env[] = {"TEST_COUNT=101", NULL};
    assert_int_equal(load(cfg, *state, NULL, NULL, env, NULL, 0, err, sizeof err), -1);
    assert_string_equal(err, "environment: TEST_COUNT: '101' is not in range (accepted: -3..100)");
    const char *flags[] = {"TEST_NAME=a b"};
    assert_int_equal(load(cfg, *state, NULL, NULL, NULL, flags, 1, err, sizeof err), -1);
    assert_string_equal(err, "--set: TEST_NAME: 'a b' is not an id (accepted: 1 to 64 characters "
                             "of A-Z a-z 0-9 _ -)");
    config_free(cfg);
}

/* Every kind of malformed line is an error naming the file and the line. */
static void malformed_lines_are_errors_with_file_and_line(void **state)
{
    static const char *const bad[] = {
        "TEST_COUNT",              /* no '=' */
        "TEST-COUNT=1",            /* bad name character */
        "1TEST=1",                 /* name starting with a digit */
        "TEST COUNT=1",            /* space in the name */
        "TEST_COUNT =1",           /* space before '=' */
        "=1",                      /* no name */
        "TEST_TEXT='open",         /* unterminated single quote */
        "TEST_TEXT=\"open",        /* unterminated double quote */
        "TEST_TEXT=\"open\\\"",    /* the only closing quote is escaped */
        "TEST_TEXT='a'b",          /* text after the closing quote */
        "TEST_TEXT=\"a\" b",       /* text after the closing quote */
        "export",                  /* a lone export */
        "TEST_TEXT=\"line\nnext\"" /* a quote does not span lines */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "# comment\nTEST_FLAG=on\n%s\n", bad[i]);
        expect_file_error(*state, text, NULL, "config.env:3: malformed line: expected NAME=VALUE");
        snprintf(text, sizeof text, "%s\n", bad[i]);
        expect_file_error(*state, NULL, text, ".env:1: malformed line: expected NAME=VALUE");
    }
}

/* Quoting: single quotes are literal, double quotes take \" \\ \n, an
 * unquoted value loses trailing spaces and a " # comment"; export, CRLF and
 * blank or comment lines are accepted. */
static void quotes_escapes_comments_and_export_are_understood(void **state)
{
    struct config *cfg = config_new(test_vars, T_N);
    char err[512];
    const char *text = "export TEST_TEXT=\"say \\\"hi\\\" \\\\ now\\nnext \\t\" # why\n"
                       "\t# tab-indented comment\n"
                       "TEST_NAME='bob'   # a comment\n"
                       "TEST_MODE=slow    # trailing comment\n"
                       "TEST_SECRET=abc#def\n"
                       "TEST_PATH='/a b/\\n'\r\n"
                       "  export   TEST_COUNT= 42  \n";
    assert_int_equal(load(cfg, *state, text, NULL, NULL, NULL, 0, err, sizeof err), 0);
    assert_string_equal(config_str(cfg, T_TEXT), "say \"hi\" \\ now\nnext \\t");
    assert_string_equal(config_str(cfg, T_NAME), "bob");
    assert_string_equal(config_str(cfg, T_MODE), "slow");
    assert_string_equal(config_str(cfg, T_SECRET), "abc#def");
    assert_string_equal(config_str(cfg, T_PATH), "/a b/\\n");
    assert_int_equal(config_int(cfg, T_COUNT), 42);
    assert_source(cfg, T_COUNT, "config.env:7");
    /* An empty unquoted value, and an empty quoted one. */
    assert_int_equal(load(cfg, *state, "TEST_TEXT=\nTEST_SECRET=\"\"  # none\n", NULL, NULL, NULL,
                          0, err, sizeof err),
                     0);
    assert_string_equal(config_str(cfg, T_TEXT), "");
    assert_string_equal(config_str(cfg, T_SECRET), "");
    /* A later line for the same name wins, as in a shell. */
    assert_int_equal(
        load(cfg, *state, "TEST_COUNT=1\nTEST_COUNT=2\n", NULL, NULL, NULL, 0, err, sizeof err), 0);
    assert_int_equal(config_int(cfg, T_COUNT), 2);
    assert_source(cfg, T_COUNT, "config.env:2");
    config_free(cfg);
}

/* An unknown name in either file is an error with the closest known name
 * when it is close, and without a guess when nothing is. */
static void unknown_names_in_files_are_errors_with_a_suggestion(void **state)
{
    struct config *cfg = config_new(test_vars, T_N);
    char err[512];
    assert_int_equal(load(cfg, *state, "TEST_FLAG=1\n\nMEMCHAT_TENAT=acme\n", NULL, NULL, NULL, 0,
                          err, sizeof err),
                     -1);
    assert_string_equal(
        err, "config.env:3: unknown setting MEMCHAT_TENAT (did you mean MEMCHAT_TENANT?)");
    /* A transposition counts as one edit; case does not count. */
    assert_int_equal(load(cfg, *state, NULL, "TSET_COUNT=1\n", NULL, NULL, 0, err, sizeof err), -1);
    assert_string_equal(err, ".env:1: unknown setting TSET_COUNT (did you mean TEST_COUNT?)");
    assert_int_equal(load(cfg, *state, "test_mode=slow\n", NULL, NULL, NULL, 0, err, sizeof err),
                     -1);
    assert_string_equal(err, "config.env:1: unknown setting test_mode (did you mean TEST_MODE?)");
    assert_int_equal(
        load(cfg, *state, "COMPLETELY_DIFFERENT=1\n", NULL, NULL, NULL, 0, err, sizeof err), -1);
    assert_string_equal(err, "config.env:1: unknown setting COMPLETELY_DIFFERENT");
    config_free(cfg);
}

/* In the environment, only an unknown MEMCHAT_ name warns (with the
 * suggestion); other unknown names belong to other programs and are
 * ignored, even when they look like ours. */
static void unknown_environment_names_warn_only_for_memchat_prefix(void **state)
{
    struct config *cfg = config_new(test_vars, T_N);
    char err[512];
    const char *env[] = {
        "PATH=/bin", "TEST_COUNTT=1", "MEMCHAT_TENAT=acme", "MEMCHAT_ZZZZZZZZZZZZ=1",
        "NOEQUALS",  "=weird",        "TEST_COUNT=9",       NULL};
    assert_int_equal(load(cfg, *state, NULL, NULL, env, NULL, 0, err, sizeof err), 0);
    assert_int_equal(config_int(cfg, T_COUNT), 9);
    assert_int_equal(config_warning_count(cfg), 2);
    assert_string_equal(
        config_warning(cfg, 0),
        "environment: unknown setting MEMCHAT_TENAT (did you mean MEMCHAT_TENANT?)");
    assert_string_equal(config_warning(cfg, 1),
                        "environment: unknown setting MEMCHAT_ZZZZZZZZZZZZ");
    /* A second load starts afresh: warnings and values do not pile up. */
    assert_int_equal(load(cfg, *state, NULL, NULL, NULL, NULL, 0, err, sizeof err), 0);
    assert_int_equal(config_warning_count(cfg), 0);
    assert_int_equal(config_int(cfg, T_COUNT), 5);
    config_free(cfg);
}

/* The first of two environment entries with one name wins, as getenv()'s. */
static void the_first_duplicate_environment_entry_wins(void **state)
{
    struct config *cfg = config_new(test_vars, T_N);
    char err[512];
    const char *env[] = {"TEST_COUNT=1", "TEST_COUNT=2", NULL};
    assert_int_equal(load(cfg, *state, NULL, NULL, env, NULL, 0, err, sizeof err), 0);
    assert_int_equal(config_int(cfg, T_COUNT), 1);
    config_free(cfg);
}

/* An unknown name or a missing '=' in a flag is an error. */
static void bad_flags_are_errors(void **state)
{
    struct config *cfg = config_new(test_vars, T_N);
    char err[512];
    const char *unknown[] = {"TEST_COUNT=1", "TEST_MOOD=slow"};
    assert_int_equal(load(cfg, *state, NULL, NULL, NULL, unknown, 2, err, sizeof err), -1);
    assert_string_equal(err, "--set: unknown setting TEST_MOOD (did you mean TEST_MODE?)");
    const char *no_eq[] = {"TEST_COUNT"};
    assert_int_equal(load(cfg, *state, NULL, NULL, NULL, no_eq, 1, err, sizeof err), -1);
    assert_string_equal(err, "--set: 'TEST_COUNT' is not NAME=VALUE");
    /* Text without '=' that is not a name may be a misplaced secret. */
    const char *pasted[] = {"sk-live-0123456789abcdef"};
    assert_int_equal(load(cfg, *state, NULL, NULL, NULL, pasted, 1, err, sizeof err), -1);
    assert_null(strstr(err, "0123456789"));
    assert_string_equal(err, "--set: '\xe2\x80\xa6"
                             "cdef' is not NAME=VALUE");
    config_free(cfg);
}

/* A working-directory .env may not set commands, endpoints, memchat's
 * directories or the master key, known or not, and the error says where
 * to put them instead; the same names are fine in config.env and the
 * environment. */
static void an_untrusted_dotenv_may_not_set_dangerous_names(void **state)
{
    static const char *const names[] = {"FOO_CMD",
                                        "X_URL",
                                        "OPENAI_BASE_URL",
                                        "X_URL_OVERRIDE",
                                        "MEMCHAT_DATA_DIR",
                                        "MEMCHAT_FOO_DIR",
                                        "MEMCHAT_MASTER_KEY",
                                        "TOOL_CREDENTIALS_ENCRYPTION_KEY"};
    struct config *cfg = config_new(test_vars, T_N);
    char err[512];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char text[128], want[512];
        snprintf(text, sizeof text, "TEST_FLAG=on\nexport %s=/tmp/x\n", names[i]);
        assert_int_equal(load(cfg, *state, NULL, text, NULL, NULL, 0, err, sizeof err), -1);
        snprintf(want, sizeof want,
                 ".env:2: %s may not be set in a working-directory .env (it is untrusted); move it "
                 "to config.env in %s or set it in the environment",
                 names[i], (const char *)*state);
        assert_string_equal(err, want);
    }
    /* Names that only resemble the patterns are judged as usual. */
    assert_int_equal(load(cfg, *state, NULL, "TEST_URLS=1\n", NULL, NULL, 0, err, sizeof err), -1);
    assert_contains(err, "unknown setting TEST_URLS");

    assert_int_equal(
        load(cfg, *state, "MEMCHAT_DATA_DIR=/data/a\n", NULL, NULL, NULL, 0, err, sizeof err), 0);
    assert_string_equal(config_str(cfg, T_DATA_DIR), "/data/a");
    assert_source(cfg, T_DATA_DIR, "config.env:1");
    const char *env[] = {"MEMCHAT_DATA_DIR=/data/b", NULL};
    assert_int_equal(load(cfg, *state, NULL, NULL, env, NULL, 0, err, sizeof err), 0);
    assert_string_equal(config_str(cfg, T_DATA_DIR), "/data/b");
    assert_source(cfg, T_DATA_DIR, "env");
    config_free(cfg);
}

/* A CFG_F_NO_FILE variable (MEMCHAT_CONFIG_DIR) is refused in config.env
 * with a pointer to the environment and --set, where it works. */
static void no_file_variables_are_refused_in_files(void **state)
{
    struct config *cfg = config_new(test_vars, T_N);
    char err[512];
    assert_int_equal(load(cfg, *state, "TEST_NOFILE=x\n", NULL, NULL, NULL, 0, err, sizeof err),
                     -1);
    assert_string_equal(err, "config.env:1: TEST_NOFILE cannot be set in config.env; set it in "
                             "the environment or with --set");
    const char *env[] = {"TEST_NOFILE=x", NULL};
    assert_int_equal(load(cfg, *state, NULL, NULL, env, NULL, 0, err, sizeof err), 0);
    assert_string_equal(config_str(cfg, T_NOFILE), "x");
    config_free(cfg);

    cfg = config_new_memchat();
    char home_env[4200];
    snprintf(home_env, sizeof home_env, "HOME=%s", (const char *)*state);
    const char *menv[] = {home_env, NULL};
    assert_int_equal(
        load(cfg, *state, "MEMCHAT_CONFIG_DIR=/elsewhere\n", NULL, menv, NULL, 0, err, sizeof err),
        -1);
    assert_string_equal(err, "config.env:1: MEMCHAT_CONFIG_DIR cannot be set in config.env; set it "
                             "in the environment or with --set");
    config_free(cfg);
}

/* Sets id through config_set and checks it was accepted. */
static void set_ok(struct config *cfg, int id, const char *value)
{
    char err[512] = "";
    if (config_set(cfg, id, value, err, sizeof err) != 0)
        fail_msg("'%s' for %s was refused: %s", value, config_var(cfg, id)->name, err);
    assert_int_equal(config_origin(cfg, id), CFG_FROM_FLAG);
}

/* Sets id through config_set, expects a refusal whose message contains
 * want, and checks the previous value is kept. */
static void set_bad(struct config *cfg, int id, const char *value, const char *want)
{
    char err[512] = "", before[256], after[256];
    enum cfg_type t = config_var(cfg, id)->type;
    if (t == CFG_BOOL || t == CFG_INT || t == CFG_DURATION)
        snprintf(before, sizeof before, "%lld",
                 t == CFG_BOOL  ? (long long)config_bool(cfg, id)
                 : t == CFG_INT ? config_int(cfg, id)
                                : config_duration_ms(cfg, id));
    else
        snprintf(before, sizeof before, "%s", config_str(cfg, id));
    if (config_set(cfg, id, value, err, sizeof err) == 0)
        fail_msg("'%s' for %s was accepted", value, config_var(cfg, id)->name);
    assert_contains(err, want);
    assert_int_equal(strncmp(err, "--set: ", 7), 0);
    if (t == CFG_BOOL || t == CFG_INT || t == CFG_DURATION)
        snprintf(after, sizeof after, "%lld",
                 t == CFG_BOOL  ? (long long)config_bool(cfg, id)
                 : t == CFG_INT ? config_int(cfg, id)
                                : config_duration_ms(cfg, id));
    else
        snprintf(after, sizeof after, "%s", config_str(cfg, id));
    assert_string_equal(before, after);
}

/* Booleans: the eight spellings in any case; nothing else. */
static void booleans_take_eight_spellings_in_any_case(void **state)
{
    (void)state;
    struct config *cfg = config_new(test_vars, T_N);
    static const char *const yes[] = {"true", "TRUE", "1", "yes", "Yes", "on", "ON"};
    static const char *const no[] = {"false", "False", "0", "no", "NO", "off", "oFF"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        set_ok(cfg, T_FLAG, no[i]);
        assert_false(config_bool(cfg, T_FLAG));
        set_ok(cfg, T_FLAG, yes[i]);
        assert_true(config_bool(cfg, T_FLAG));
    }
    static const char *const bad[] = {"", "2", "truee", "y", "n", " on", "on ", "-1", "enabled"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        set_bad(cfg, T_FLAG, bad[i], "is not a boolean (accepted: true|false|1|0|yes|no|on|off)");
    config_free(cfg);
}

/* Integers: decimal only, the range's edges included, junk and overflow
 * refused. */
static void integers_are_decimal_and_within_their_range(void **state)
{
    (void)state;
    struct config *cfg = config_new(test_vars, T_N);
    set_ok(cfg, T_COUNT, "-3");
    assert_int_equal(config_int(cfg, T_COUNT), -3);
    set_ok(cfg, T_COUNT, "100");
    assert_int_equal(config_int(cfg, T_COUNT), 100);
    set_ok(cfg, T_COUNT, "007");
    assert_int_equal(config_int(cfg, T_COUNT), 7);
    set_ok(cfg, T_COUNT, "0");
    assert_int_equal(config_int(cfg, T_COUNT), 0);
    set_bad(cfg, T_COUNT, "-4", "'-4' is not in range (accepted: -3..100)");
    set_bad(cfg, T_COUNT, "101", "'101' is not in range (accepted: -3..100)");
    set_bad(cfg, T_COUNT, "99999999999999999999", "is not in range");
    set_bad(cfg, T_COUNT, "-99999999999999999999", "is not in range");
    static const char *const junk[] = {"",   "1.5", "0x10", " 5",  "5 ",
                                       "+5", "5k",  "-",    "1e2", "--1"};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
        set_bad(cfg, T_COUNT, junk[i], "is not an integer (accepted: -3..100)");
    config_free(cfg);
}

/* Numbers: plain decimals within the range; empty means unset (NAN); no
 * exponent, sign other than '-', hex, inf or nan. */
static void numbers_are_plain_decimals_and_may_be_unset(void **state)
{
    (void)state;
    struct config *cfg = config_new(test_vars, T_N);
    assert_true(isnan(config_number(cfg, T_RATIO)));
    set_ok(cfg, T_RATIO, "0.7");
    assert_true(config_number(cfg, T_RATIO) == 0.7);
    set_ok(cfg, T_RATIO, "2");
    assert_true(config_number(cfg, T_RATIO) == 2.0);
    set_ok(cfg, T_RATIO, ".5");
    assert_true(config_number(cfg, T_RATIO) == 0.5);
    set_ok(cfg, T_RATIO, "0");
    assert_true(config_number(cfg, T_RATIO) == 0.0);
    set_ok(cfg, T_RATIO, "");
    assert_true(isnan(config_number(cfg, T_RATIO)));
    set_bad(cfg, T_RATIO, "2.01", "'2.01' is not in range (accepted: a decimal number 0..2");
    set_bad(cfg, T_RATIO, "-0.1", "is not in range");
    static const char *const junk[] = {"1e0", "+1", "0x1", "inf",  "nan",
                                       " 1",  "1 ", ".",   "1..2", "one"};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
        set_bad(cfg, T_RATIO, junk[i], "is not a number (accepted: a decimal number 0..2");
    config_free(cfg);
}

/* Durations: _MS names take bare milliseconds, _S names bare seconds, and
 * others N (seconds) or N with s m h d w; all within the range in ms. */
static void durations_follow_the_naming_rules_and_range(void **state)
{
    (void)state;
    struct config *cfg = config_new(test_vars, T_N);
    static const struct {
        const char *text;
        long long ms;
    } ok[] = {{"30", 30000},       {"1s", 1000},     {"1", 1000},       {"5m", 300000},
              {"2h", 7200000},     {"1d", 86400000}, {"1w", 604800000}, {"7d", 604800000},
              {"168h", 604800000}, {"0001s", 1000}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        set_ok(cfg, T_TIMEOUT, ok[i].text);
        assert_int_equal(config_duration_ms(cfg, T_TIMEOUT), ok[i].ms);
    }
    static const char *const junk[] = {"",   "10ms", "1.5h", "5M", "-1",  "s", "1 s",
                                       "1x", "h1",   "1sm",  "+1", " 1s", "1y"};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
        set_bad(cfg, T_TIMEOUT, junk[i],
                "is not a duration (accepted: N, or N followed by s, m, h, d or w (bare N is "
                "seconds), 1s..1w)");
    set_bad(cfg, T_TIMEOUT, "0", "'0' is not in range");
    set_bad(cfg, T_TIMEOUT, "0s", "'0s' is not in range");
    set_bad(cfg, T_TIMEOUT, "8d", "'8d' is not in range");
    set_bad(cfg, T_TIMEOUT, "604801", "is not in range");
    set_bad(cfg, T_TIMEOUT, "99999999999999w", "is not in range");
    set_bad(cfg, T_TIMEOUT, "999999999999999999999999999999", "is not in range");

    set_ok(cfg, T_WAIT_MS, "0");
    assert_int_equal(config_duration_ms(cfg, T_WAIT_MS), 0);
    set_ok(cfg, T_WAIT_MS, "60000");
    assert_int_equal(config_duration_ms(cfg, T_WAIT_MS), 60000);
    set_bad(cfg, T_WAIT_MS, "60001",
            "'60001' is not in range (accepted: an integer number of milliseconds, 0..60000)");
    set_bad(cfg, T_WAIT_MS, "5s",
            "'5s' is not a duration (accepted: an integer number of "
            "milliseconds, 0..60000)");
    set_bad(cfg, T_WAIT_MS, "", "is not a duration");

    set_ok(cfg, T_TTL_S, "1");
    assert_int_equal(config_duration_ms(cfg, T_TTL_S), 1000);
    set_ok(cfg, T_TTL_S, "86400");
    assert_int_equal(config_duration_ms(cfg, T_TTL_S), 86400000);
    set_bad(cfg, T_TTL_S, "0",
            "'0' is not in range (accepted: an integer number of seconds, "
            "1..86400)");
    set_bad(cfg, T_TTL_S, "86401", "is not in range");
    set_bad(cfg, T_TTL_S, "1m", "'1m' is not a duration");
    set_bad(cfg, T_TTL_S, "60s", "'60s' is not a duration");
    config_free(cfg);
}

/* Ids, choices, strings and paths: ids up to 64 characters of the id set,
 * exact choices, any UTF-8 string, non-empty paths with ~/ expanded. */
static void ids_choices_strings_and_paths_are_checked(void **state)
{
    struct config *cfg = config_new(test_vars, T_N);
    char id64[65], id65[66];
    memset(id64, 'a', 64);
    id64[64] = '\0';
    memset(id65, 'b', 65);
    id65[65] = '\0';
    set_ok(cfg, T_NAME, "A-z_0");
    set_ok(cfg, T_NAME, id64);
    assert_string_equal(config_str(cfg, T_NAME), id64);
    set_bad(cfg, T_NAME, id65, "is not an id (accepted: 1 to 64 characters of A-Z a-z 0-9 _ -)");
    set_bad(cfg, T_NAME, "", "'' is not an id");
    set_bad(cfg, T_NAME, "a b", "'a b' is not an id");
    set_bad(cfg, T_NAME, "caf\xc3\xa9", "is not an id");
    set_bad(cfg, T_NAME, "a/b", "is not an id");

    set_ok(cfg, T_MODE, "off");
    assert_string_equal(config_str(cfg, T_MODE), "off");
    set_bad(cfg, T_MODE, "SLOW", "'SLOW' is not one of the choices (accepted: fast|slow|off)");
    set_bad(cfg, T_MODE, "", "is not one of the choices");
    set_bad(cfg, T_MODE, "fast|slow", "is not one of the choices");
    set_bad(cfg, T_MODE, "slo", "is not one of the choices");

    set_ok(cfg, T_TEXT, "");
    set_ok(cfg, T_TEXT, "h\xc3\xa9llo w\xc3\xb6rld # not a comment here");
    assert_string_equal(config_str(cfg, T_TEXT), "h\xc3\xa9llo w\xc3\xb6rld # not a comment here");
    set_bad(cfg, T_TEXT, "bad \xff byte", "'bad \\xff byte' is not valid UTF-8");
    set_bad(cfg, T_TEXT, "\xc0\x80", "is not valid UTF-8");

    /* ~/ uses the HOME of the loaded environment. */
    char err[512];
    char home_env[4200];
    snprintf(home_env, sizeof home_env, "HOME=%s", (const char *)*state);
    const char *env[] = {home_env, "TEST_PATH=~/notes", NULL};
    assert_int_equal(load(cfg, *state, NULL, NULL, env, NULL, 0, err, sizeof err), 0);
    char *want = join(*state, "notes");
    assert_string_equal(config_str(cfg, T_PATH), want);
    free(want);
    set_ok(cfg, T_PATH, "~");
    assert_string_equal(config_str(cfg, T_PATH), (const char *)*state);
    set_ok(cfg, T_PATH, "/abs/path");
    assert_string_equal(config_str(cfg, T_PATH), "/abs/path");
    set_ok(cfg, T_PATH, "~user/x"); /* only ~/ is expanded */
    assert_string_equal(config_str(cfg, T_PATH), "~user/x");
    set_bad(cfg, T_PATH, "", "'' is not a path (accepted: a non-empty path; ~/ means $HOME)");
    const char *nohome[] = {"TEST_PATH=~/x", NULL};
    assert_int_equal(load(cfg, *state, NULL, NULL, nohome, NULL, 0, err, sizeof err), -1);
    assert_contains(err, "environment: TEST_PATH: '~/x' is not a path memchat can expand: HOME is "
                         "not set");
    config_free(cfg);
}

/* Secrets are masked in display ("…" + last 4 from 12 characters, "****"
 * below) and never appear in full in an error message. */
static void secrets_are_masked_in_display_and_errors(void **state)
{
    struct config *cfg = config_new(test_vars, T_N);
    char out[128], err[512];
    assert_string_equal(config_display(cfg, T_SECRET, out, sizeof out), "");
    set_ok(cfg, T_SECRET, "sk-0123456789abcdef");
    assert_string_equal(config_display(cfg, T_SECRET, out, sizeof out), "\xe2\x80\xa6"
                                                                        "cdef");
    assert_string_equal(config_str(cfg, T_SECRET), "sk-0123456789abcdef");
    set_ok(cfg, T_SECRET, "12345678901"); /* 11 characters */
    assert_string_equal(config_display(cfg, T_SECRET, out, sizeof out), "****");
    set_ok(cfg, T_SECRET, "123456789012"); /* 12 characters */
    assert_string_equal(config_display(cfg, T_SECRET, out, sizeof out), "\xe2\x80\xa6"
                                                                        "9012");
    /* Characters, not bytes: 12 two-byte characters show their last 4. */
    set_ok(cfg, T_SECRET,
           "\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4"
           "\xc3\xa4\xc3\xa4\xc3\xb6\xc3\xbc");
    assert_string_equal(config_display(cfg, T_SECRET, out, sizeof out),
                        "\xe2\x80\xa6\xc3\xa4\xc3\xa4\xc3\xb6\xc3\xbc");
    /* A non-secret is shown as it is. */
    assert_string_equal(config_display(cfg, T_TEXT, out, sizeof out), "hello");

    const char *secret = "sk live 0123456789abcdef"; /* not an id: has spaces */
    char text[128];
    snprintf(text, sizeof text, "TEST_TOKEN=%s\n", secret);
    assert_int_equal(load(cfg, *state, text, NULL, NULL, NULL, 0, err, sizeof err), -1);
    assert_null(strstr(err, secret));
    assert_null(strstr(err, "0123456789"));
    assert_string_equal(err, "config.env:1: TEST_TOKEN: '\xe2\x80\xa6"
                             "cdef' is not an id (accepted: 1 to 64 characters of A-Z a-z 0-9 _ "
                             "-)");
    const char *env[] = {"TEST_TOKEN=bad token", NULL};
    assert_int_equal(load(cfg, *state, NULL, NULL, env, NULL, 0, err, sizeof err), -1);
    assert_null(strstr(err, "bad token"));
    assert_contains(err, "environment: TEST_TOKEN: '****' is not an id");
    const char *env2[] = {"TEST_SECRET=\xff\xfe-0123456789abcdef", NULL};
    assert_int_equal(load(cfg, *state, NULL, NULL, env2, NULL, 0, err, sizeof err), -1);
    assert_null(strstr(err, "0123456789"));
    assert_string_equal(err, "environment: TEST_SECRET: '****' is not valid UTF-8");
    config_free(cfg);
}

/* A non-secret value in a message has control characters escaped, so an
 * error cannot carry terminal escape sequences, and long values are cut. */
static void echoed_values_are_escaped_and_shortened(void **state)
{
    struct config *cfg = config_new(test_vars, T_N);
    char err[512];
    const char *env[] = {"TEST_NAME=a\x1b[31mb", NULL};
    assert_int_equal(load(cfg, *state, NULL, NULL, env, NULL, 0, err, sizeof err), -1);
    assert_null(strchr(err, '\x1b'));
    assert_contains(err, "'a\\x1b[31mb' is not an id");
    char long_value[300];
    memset(long_value, 'x', sizeof long_value - 1);
    long_value[sizeof long_value - 1] = '\0';
    long_value[0] = ' ';
    assert_int_equal(config_set(cfg, T_NAME, long_value, err, sizeof err), -1);
    assert_true(strlen(err) < 200);
    assert_contains(err, "xxx\xe2\x80\xa6' is not an id");
    config_free(cfg);
}

/* A file that is not UTF-8 text is refused with its line. */
static void invalid_utf8_in_a_file_is_an_error(void **state)
{
    expect_file_error(*state, "TEST_TEXT=ok\nTEST_TEXT=caf\xe9\n", NULL,
                      "config.env:2: invalid UTF-8");
    expect_file_error(*state, NULL, "\n\nTEST_TEXT=\xc3\x28\n", ".env:3: invalid UTF-8");
}

/* A missing file is fine; one that cannot be read (a directory in its
 * place) or is larger than 1 MiB is an error naming it. */
static void unreadable_or_oversized_files_are_errors(void **state)
{
    struct config *cfg = config_new(test_vars, T_N);
    char err[512];
    char *path = join(*state, "config.env");
    unlink(path);
    assert_int_equal(mkdir(path, 0700), 0);
    struct config_load_opts o = {.config_dir = *state, .dotenv_path = "", .environ = no_env};
    assert_int_equal(config_load(cfg, &o, err, sizeof err), -1);
    assert_contains(err, "config.env");
    assert_int_equal(rmdir(path), 0);

    size_t big = 1024 * 1024 + 1;
    char *text = malloc(big + 1);
    assert_non_null(text);
    memset(text, '#', big);
    text[big] = '\0';
    put_file(*state, "config.env", text);
    assert_int_equal(config_load(cfg, &o, err, sizeof err), -1);
    assert_contains(err, "config.env");
    /* Exactly 1 MiB is still accepted. */
    text[big - 1] = '\0';
    put_file(*state, "config.env", text);
    assert_int_equal(config_load(cfg, &o, err, sizeof err), 0);
    free(text);
    free(path);
    config_free(cfg);
}

/* The process environment is read when the options give none. */
static void the_process_environment_is_read_by_default(void **state)
{
    struct config *cfg = config_new(test_vars, T_N);
    char err[512];
    assert_int_equal(setenv("TEST_COUNT", "42", 1), 0);
    struct config_load_opts o = {.config_dir = *state, .dotenv_path = ""};
    int rc = config_load(cfg, &o, err, sizeof err);
    unsetenv("TEST_COUNT");
    assert_int_equal(rc, 0);
    assert_int_equal(config_int(cfg, T_COUNT), 42);
    assert_source(cfg, T_COUNT, "env");
    config_free(cfg);
}

/* Loads memchat's table with envp, no config dir override and no .env. */
static int load_memchat(struct config *cfg, const char **envp, const char *const *flags, size_t n,
                        char *err, size_t errlen)
{
    struct config_load_opts o = {.dotenv_path = "", .environ = envp, .flags = flags, .n_flags = n};
    err[0] = '\0';
    return config_load(cfg, &o, err, errlen);
}

/* MEMCHAT_USER is $LOGNAME when that is a valid id, else "user": silently
 * when LOGNAME is unset, with a warning when it is not an id, and without
 * one when another source chose the user anyway. */
static void memchat_user_falls_back_to_user(void **state)
{
    char home_env[4200];
    snprintf(home_env, sizeof home_env, "HOME=%s", (const char *)*state);
    char err[512];
    struct config *cfg = config_new_memchat();

    const char *alice[] = {home_env, "LOGNAME=alice", NULL};
    assert_int_equal(load_memchat(cfg, alice, NULL, 0, err, sizeof err), 0);
    assert_string_equal(config_str(cfg, CFG_MEMCHAT_USER), "alice");
    assert_source(cfg, CFG_MEMCHAT_USER, "default");
    assert_string_equal(config_default(cfg, CFG_MEMCHAT_USER), "alice");
    assert_int_equal(config_warning_count(cfg), 0);

    const char *spaced[] = {home_env, "LOGNAME=x y", NULL};
    assert_int_equal(load_memchat(cfg, spaced, NULL, 0, err, sizeof err), 0);
    assert_string_equal(config_str(cfg, CFG_MEMCHAT_USER), "user");
    assert_int_equal(config_warning_count(cfg), 1);
    assert_string_equal(config_warning(cfg, 0),
                        "LOGNAME 'x y' is not a valid user id; using 'user'");

    const char *unset[] = {home_env, NULL};
    assert_int_equal(load_memchat(cfg, unset, NULL, 0, err, sizeof err), 0);
    assert_string_equal(config_str(cfg, CFG_MEMCHAT_USER), "user");
    assert_int_equal(config_warning_count(cfg), 0);

    const char *chosen[] = {home_env, "LOGNAME=x y", "MEMCHAT_USER=bob", NULL};
    assert_int_equal(load_memchat(cfg, chosen, NULL, 0, err, sizeof err), 0);
    assert_string_equal(config_str(cfg, CFG_MEMCHAT_USER), "bob");
    assert_source(cfg, CFG_MEMCHAT_USER, "env");
    assert_int_equal(config_warning_count(cfg), 0);
    config_free(cfg);
}

/* memchat's table: unique well-formed names, a doc line each, sane ranges,
 * and every textual default accepted by its own type's checker. */
static void memchat_table_defaults_pass_their_own_checks(void **state)
{
    (void)state;
    char err[512];
    for (int i = 0; i < CFG__COUNT; i++) {
        const struct cfg_var *v = &config_vars[i];
        assert_non_null(v->name);
        assert_true(strspn(v->name, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") == strlen(v->name));
        for (int j = 0; j < i; j++)
            assert_string_not_equal(v->name, config_vars[j].name);
        assert_non_null(v->doc);
        assert_true(v->doc[0] != '\0');
        if (v->type == CFG_INT || v->type == CFG_DURATION || v->type == CFG_NUMBER)
            assert_true(v->min <= v->max);
        if (v->type == CFG_ENUM)
            assert_non_null(v->choices);
        if (v->dflt == NULL)
            continue; /* computed: checked after a load below */
        if (v->dflt[0] == '\0') {
            /* Empty means unset, which only strings, paths and numbers allow. */
            assert_true(v->type == CFG_STRING || v->type == CFG_PATH || v->type == CFG_NUMBER);
            continue;
        }
        if (config_check_value(v, v->dflt, "default", err, sizeof err) != 0)
            fail_msg("%s", err);
    }
}

/* memchat's table loads cleanly from an environment holding only HOME:
 * no warning, every variable from its default, the computed defaults
 * derived from HOME and themselves valid values. */
static void memchat_table_loads_cleanly_from_an_empty_environment(void **state)
{
    char home_env[4200];
    snprintf(home_env, sizeof home_env, "HOME=%s", (const char *)*state);
    const char *env[] = {home_env, NULL};
    char err[512];
    struct config *cfg = config_new_memchat();
    assert_int_equal(config_count(cfg), CFG__COUNT);
    if (load_memchat(cfg, env, NULL, 0, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(config_warning_count(cfg), 0);
    for (int i = 0; i < CFG__COUNT; i++) {
        assert_source(cfg, i, "default");
        const struct cfg_var *v = config_var(cfg, i);
        if (v->type == CFG_STRING || v->type == CFG_ID || v->type == CFG_ENUM ||
            v->type == CFG_PATH) {
            const char *s = config_str(cfg, i);
            if (s[0] != '\0' && config_check_value(v, s, "default", err, sizeof err) != 0)
                fail_msg("%s", err);
            assert_string_equal(config_default(cfg, i), s);
        }
    }
    char *data = join(*state, ".local/share/memchat");
    char *conf = join(*state, ".config/memchat");
    assert_string_equal(config_str(cfg, CFG_MEMCHAT_DATA_DIR), data);
    assert_string_equal(config_str(cfg, CFG_MEMCHAT_CONFIG_DIR), conf);
    assert_string_equal(config_str(cfg, CFG_MEMCHAT_USER), "user");
    assert_string_equal(config_str(cfg, CFG_MEMCHAT_TENANT), "default");
    assert_string_equal(config_str(cfg, CFG_MEMCHAT_PROVIDER), "auto");
    assert_true(config_bool(cfg, CFG_RAG_ENABLED));
    free(data);
    free(conf);
    config_free(cfg);
}

/* Absolute XDG dirs are used, relative ones ignored (the XDG spec). */
static void xdg_dirs_are_used_when_absolute(void **state)
{
    char home_env[4200];
    snprintf(home_env, sizeof home_env, "HOME=%s", (const char *)*state);
    const char *env[] = {home_env, "XDG_DATA_HOME=/xdg/data", "XDG_CONFIG_HOME=relative/conf",
                         NULL};
    char err[512];
    struct config *cfg = config_new_memchat();
    assert_int_equal(load_memchat(cfg, env, NULL, 0, err, sizeof err), 0);
    assert_string_equal(config_str(cfg, CFG_MEMCHAT_DATA_DIR), "/xdg/data/memchat");
    char *conf = join(*state, ".config/memchat");
    assert_string_equal(config_str(cfg, CFG_MEMCHAT_CONFIG_DIR), conf);
    free(conf);
    config_free(cfg);
}

/* Without HOME (or XDG dirs) the directories cannot be chosen: a clear
 * error saying what to set, unless the user set them. */
static void a_missing_home_is_an_error_unless_the_dirs_are_set(void **state)
{
    char err[512];
    struct config *cfg = config_new_memchat();
    const char *env[] = {"XDG_CONFIG_HOME=relative", NULL};
    assert_int_equal(load_memchat(cfg, env, NULL, 0, err, sizeof err), -1);
    assert_contains(err, "HOME is not set");
    assert_contains(err, "MEMCHAT_CONFIG_DIR");

    struct config_load_opts o = {.config_dir = *state, .dotenv_path = "", .environ = no_env};
    assert_int_equal(config_load(cfg, &o, err, sizeof err), -1);
    assert_contains(err, "HOME is not set");
    assert_contains(err, "set MEMCHAT_DATA_DIR, or HOME");

    const char *dirs[] = {"MEMCHAT_DATA_DIR=/d", NULL};
    o.environ = dirs;
    assert_int_equal(config_load(cfg, &o, err, sizeof err), 0);
    assert_string_equal(config_str(cfg, CFG_MEMCHAT_DATA_DIR), "/d");
    assert_source(cfg, CFG_MEMCHAT_DATA_DIR, "env");
    assert_string_equal(config_str(cfg, CFG_MEMCHAT_CONFIG_DIR), (const char *)*state);
    assert_source(cfg, CFG_MEMCHAT_CONFIG_DIR, "flag");
    config_free(cfg);
}

/* The config dir comes from a flag before the environment before the XDG
 * default, and config.env is read from the dir chosen. */
static void the_config_dir_comes_from_flag_then_env_then_default(void **state)
{
    const char *top = *state;
    char *a = join(top, "a"), *b = join(top, "b");
    char *xdg = join(top, ".config");
    char *xdg_memchat = join(top, ".config/memchat");
    assert_int_equal(mkdir(a, 0700), 0);
    assert_int_equal(mkdir(b, 0700), 0);
    assert_int_equal(mkdir(xdg, 0700), 0);
    assert_int_equal(mkdir(xdg_memchat, 0700), 0);
    put_file(a, "config.env", "MEMCHAT_TENANT=from-a\n");
    put_file(b, "config.env", "\nMEMCHAT_TENANT=from-b\n");
    put_file(xdg_memchat, "config.env", "MEMCHAT_TENANT=from-xdg\n");
    char home_env[4200], env_dir[4200], flag_dir[4200];
    snprintf(home_env, sizeof home_env, "HOME=%s", top);
    snprintf(env_dir, sizeof env_dir, "MEMCHAT_CONFIG_DIR=%s", a);
    snprintf(flag_dir, sizeof flag_dir, "MEMCHAT_CONFIG_DIR=%s", b);
    char err[512];
    struct config *cfg = config_new_memchat();

    const char *both[] = {home_env, env_dir, NULL};
    const char *flags[] = {flag_dir};
    assert_int_equal(load_memchat(cfg, both, flags, 1, err, sizeof err), 0);
    assert_string_equal(config_str(cfg, CFG_MEMCHAT_TENANT), "from-b");
    assert_source(cfg, CFG_MEMCHAT_TENANT, "config.env:2");
    assert_string_equal(config_str(cfg, CFG_MEMCHAT_CONFIG_DIR), b);
    assert_source(cfg, CFG_MEMCHAT_CONFIG_DIR, "flag");

    assert_int_equal(load_memchat(cfg, both, NULL, 0, err, sizeof err), 0);
    assert_string_equal(config_str(cfg, CFG_MEMCHAT_TENANT), "from-a");
    assert_string_equal(config_str(cfg, CFG_MEMCHAT_CONFIG_DIR), a);
    assert_source(cfg, CFG_MEMCHAT_CONFIG_DIR, "env");

    const char *tilde[] = {home_env, "MEMCHAT_CONFIG_DIR=~/a", NULL};
    assert_int_equal(load_memchat(cfg, tilde, NULL, 0, err, sizeof err), 0);
    assert_string_equal(config_str(cfg, CFG_MEMCHAT_TENANT), "from-a");
    assert_string_equal(config_str(cfg, CFG_MEMCHAT_CONFIG_DIR), a);

    const char *home_only[] = {home_env, NULL};
    assert_int_equal(load_memchat(cfg, home_only, NULL, 0, err, sizeof err), 0);
    assert_string_equal(config_str(cfg, CFG_MEMCHAT_TENANT), "from-xdg");
    assert_string_equal(config_str(cfg, CFG_MEMCHAT_CONFIG_DIR), xdg_memchat);
    assert_source(cfg, CFG_MEMCHAT_CONFIG_DIR, "default");

    const char *empty[] = {home_env, "MEMCHAT_CONFIG_DIR=", NULL};
    assert_int_equal(load_memchat(cfg, empty, NULL, 0, err, sizeof err), -1);
    assert_string_equal(err, "environment: MEMCHAT_CONFIG_DIR: '' is not a path (accepted: a "
                             "non-empty path; ~/ means $HOME)");
    free(a);
    free(b);
    free(xdg);
    free(xdg_memchat);
    config_free(cfg);
}

/* config_set() after a load validates like any source and reports "flag". */
static void config_set_overrides_after_load_with_source_flag(void **state)
{
    struct config *cfg = config_new(test_vars, T_N);
    char err[512];
    assert_int_equal(load(cfg, *state, "TEST_MODE=slow\n", NULL, NULL, NULL, 0, err, sizeof err),
                     0);
    assert_int_equal(config_set(cfg, T_MODE, "off", err, sizeof err), 0);
    assert_string_equal(config_str(cfg, T_MODE), "off");
    assert_source(cfg, T_MODE, "flag");
    assert_int_equal(config_set(cfg, T_MODE, "fastest", err, sizeof err), -1);
    assert_string_equal(err, "--set: TEST_MODE: 'fastest' is not one of the choices (accepted: "
                             "fast|slow|off)");
    assert_string_equal(config_str(cfg, T_MODE), "off");
    config_free(cfg);
}

/* The source tree's top: $MEMCHAT_SRCDIR (make check), else from __FILE__. */
static char *srcdir(void)
{
    const char *env = getenv("MEMCHAT_SRCDIR");
    if (env != NULL && env[0] != '\0')
        return strdup(env);
    const char *f = __FILE__;
    const char *tail = strstr(f, "tests/unit/test_config.c");
    assert_non_null(tail);
    if (tail == f)
        return strdup(".");
    return strndup(f, (size_t)(tail - f - 1));
}

/* The docs' table cell for a variable's range or choices. */
static void range_cell(const struct cfg_var *v, char *out, size_t outlen)
{
    if (v->type == CFG_INT || v->type == CFG_NUMBER) {
        snprintf(out, outlen, "%lld..%lld", v->min, v->max);
    } else if (v->type == CFG_DURATION) {
        snprintf(out, outlen, "%lld..%lld ms", v->min, v->max);
    } else if (v->type == CFG_ENUM) {
        size_t o = 0;
        for (const char *c = v->choices; *c != '\0' && o + 8 < outlen; c++) {
            if (*c == '|') {
                memcpy(out + o, ", ", 2);
                o += 2;
            } else {
                out[o++] = *c;
            }
        }
        out[o] = '\0';
    } else {
        snprintf(out, outlen, "\xe2\x80\x94");
    }
}

static const char *type_name(enum cfg_type t)
{
    switch (t) {
    case CFG_BOOL:
        return "bool";
    case CFG_INT:
        return "int";
    case CFG_DURATION:
        return "duration";
    case CFG_STRING:
        return "string";
    case CFG_ID:
        return "id";
    case CFG_ENUM:
        return "enum";
    case CFG_PATH:
        return "path";
    case CFG_NUMBER:
        return "number";
    }
    return "?";
}

/* True when text holds line as a whole line. */
static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
            return true;
    return false;
}

/* docs/configuration.md has one table row per variable that matches
 * vars.h exactly (name, type, default, range or choices, doc), and
 * .env.example has each variable's doc line followed by its commented-out
 * default. A variable added without docs fails here. */
static void docs_and_env_example_match_the_table(void **state)
{
    (void)state;
    char *top = srcdir();
    char *md_path = join(top, "docs/configuration.md");
    char *ex_path = join(top, ".env.example");
    char *md = tu_read_file(md_path, NULL);
    char *ex = tu_read_file(ex_path, NULL);
    if (md == NULL || ex == NULL)
        fail_msg("cannot read %s or %s", md_path, ex_path);
    for (int i = 0; i < CFG__COUNT; i++) {
        const struct cfg_var *v = &config_vars[i];
        char range[256], row[1024], prefix[256], line[512];
        range_cell(v, range, sizeof range);
        if (v->dflt != NULL) {
            char dflt[256];
            if (v->dflt[0] != '\0')
                snprintf(dflt, sizeof dflt, "`%s`", v->dflt);
            else
                snprintf(dflt, sizeof dflt, "(empty)");
            snprintf(row, sizeof row, "| `%s` | %s | %s | %s | %s |", v->name, type_name(v->type),
                     dflt, range, v->doc);
            if (!has_line(md, row))
                fail_msg("docs/configuration.md lacks the row:\n%s", row);
            snprintf(line, sizeof line, "# %s=%s", v->name, v->dflt);
        } else {
            /* A computed default is described in words between these. */
            snprintf(prefix, sizeof prefix, "| `%s` | %s | ", v->name, type_name(v->type));
            snprintf(row, sizeof row, " | %s | %s |", range, v->doc);
            const char *p = strstr(md, prefix);
            const char *eol = p != NULL ? strchr(p, '\n') : NULL;
            if (p == NULL || eol == NULL || (size_t)(eol - p) < strlen(row) ||
                strncmp(eol - strlen(row), row, strlen(row)) != 0)
                fail_msg("docs/configuration.md lacks the row for %s ending in:\n%s", v->name, row);
            snprintf(line, sizeof line, "# %s=", v->name);
        }
        char pair[1024];
        snprintf(pair, sizeof pair, "# %s\n%s", v->doc, line);
        bool found = v->dflt != NULL ? has_line(ex, pair) : strstr(ex, pair) != NULL;
        if (!found)
            fail_msg(".env.example lacks the lines:\n%s", pair);
    }
    free(md);
    free(ex);
    free(md_path);
    free(ex_path);
    free(top);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(defaults_hold_when_no_source_sets_anything, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(each_source_beats_the_weaker_ones_and_is_reported, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_bad_value_is_an_error_even_when_overridden, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(value_errors_name_their_source, setup, teardown),
        cmocka_unit_test_setup_teardown(malformed_lines_are_errors_with_file_and_line, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(quotes_escapes_comments_and_export_are_understood, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(unknown_names_in_files_are_errors_with_a_suggestion, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(unknown_environment_names_warn_only_for_memchat_prefix,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(the_first_duplicate_environment_entry_wins, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(bad_flags_are_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(an_untrusted_dotenv_may_not_set_dangerous_names, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(no_file_variables_are_refused_in_files, setup, teardown),
        cmocka_unit_test(booleans_take_eight_spellings_in_any_case),
        cmocka_unit_test(integers_are_decimal_and_within_their_range),
        cmocka_unit_test(numbers_are_plain_decimals_and_may_be_unset),
        cmocka_unit_test(durations_follow_the_naming_rules_and_range),
        cmocka_unit_test_setup_teardown(ids_choices_strings_and_paths_are_checked, setup, teardown),
        cmocka_unit_test_setup_teardown(secrets_are_masked_in_display_and_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(echoed_values_are_escaped_and_shortened, setup, teardown),
        cmocka_unit_test_setup_teardown(invalid_utf8_in_a_file_is_an_error, setup, teardown),
        cmocka_unit_test_setup_teardown(unreadable_or_oversized_files_are_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(the_process_environment_is_read_by_default, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(memchat_user_falls_back_to_user, setup, teardown),
        cmocka_unit_test(memchat_table_defaults_pass_their_own_checks),
        cmocka_unit_test_setup_teardown(memchat_table_loads_cleanly_from_an_empty_environment,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(xdg_dirs_are_used_when_absolute, setup, teardown),
        cmocka_unit_test_setup_teardown(a_missing_home_is_an_error_unless_the_dirs_are_set, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(the_config_dir_comes_from_flag_then_env_then_default, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(config_set_overrides_after_load_with_source_flag, setup,
                                        teardown),
        cmocka_unit_test(docs_and_env_example_match_the_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
