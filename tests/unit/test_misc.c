/*
 * Tests of the small util modules: identifiers (ident), XDG paths and
 * private directory creation (paths), the error-code table and its exit
 * codes (error), the clocks (clock), and the event object with its JSON
 * round trip (event).
 */
#include "testutil.h"

#include <cJSON.h>
#include <limits.h>

#include "memchat/error.h"
#include "memchat/event.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/ident.h"
#include "util/paths.h"
#include "util/redact.h"

/* ---- ident ---------------------------------------------------------- */

/* The pattern [A-Za-z0-9_-]{1,64} is accepted in full, up to 64 chars. */
static void ident_accepts_the_pattern(void **state)
{
    (void)state;
    assert_true(ident_valid("default"));
    assert_true(ident_valid("a"));
    assert_true(ident_valid("Tenant_42-prod"));
    assert_true(ident_valid("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"));
    char max[IDENT_MAX + 1];
    memset(max, 'x', IDENT_MAX);
    max[IDENT_MAX] = '\0';
    assert_true(ident_valid(max));
}

/* Empty, 65 characters, and any character outside the set (dot, space,
 * slash, UTF-8, other punctuation) are rejected. */
static void ident_rejects_everything_else(void **state)
{
    (void)state;
    char long65[IDENT_MAX + 2];
    memset(long65, 'x', IDENT_MAX + 1);
    long65[IDENT_MAX + 1] = '\0';
    assert_false(ident_valid(long65));
    static const char *const bad[] = {
        "",       ".",           "..",   "a.b", "a b", " a", "a/b",
        "../etc", "caf\xc3\xa9", "a\nb", "a:b", "a@b", "a*", "\xff",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (ident_valid(bad[i]))
            fail_msg("accepted \"%s\"", bad[i]);
}

/* ---- paths ---------------------------------------------------------- */

/* join puts exactly one slash between the parts, whatever slashes they
 * bring, including at the root. */
static void paths_join_puts_one_slash_between(void **state)
{
    (void)state;
    static const char *const cases[][3] = {
        {"/a", "b", "/a/b"},       {"/a/", "b", "/a/b"},  {"/a//", "/b", "/a/b"},
        {"/a", "//b/c", "/a/b/c"}, {"rel", "x", "rel/x"}, {"/", "x", "/x"},
        {"//", "x", "/x"},         {"/", "/x", "/x"},     {"", "x", "x"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *p = paths_join(cases[i][0], cases[i][1]);
        if (strcmp(p, cases[i][2]) != 0)
            fail_msg("join(\"%s\", \"%s\") = \"%s\", want \"%s\"", cases[i][0], cases[i][1], p,
                     cases[i][2]);
        xfree(p);
    }
}

/* Environment changes made by a test, restored after it. */
struct env_saved {
    char *xdg_data, *xdg_config, *home;
};

static char *dup_env(const char *name)
{
    const char *v = getenv(name);
    return v != NULL ? strdup(v) : NULL;
}

static void restore_env(const char *name, char *v)
{
    if (v != NULL)
        setenv(name, v, 1);
    else
        unsetenv(name);
    free(v);
}

static int env_setup(void **state)
{
    struct env_saved *s = calloc(1, sizeof *s);
    s->xdg_data = dup_env("XDG_DATA_HOME");
    s->xdg_config = dup_env("XDG_CONFIG_HOME");
    s->home = dup_env("HOME");
    *state = s;
    return 0;
}

static int env_teardown(void **state)
{
    struct env_saved *s = *state;
    restore_env("XDG_DATA_HOME", s->xdg_data);
    restore_env("XDG_CONFIG_HOME", s->xdg_config);
    restore_env("HOME", s->home);
    free(s);
    return 0;
}

static void assert_dir_is(char *got, const char *want)
{
    assert_non_null(got);
    assert_string_equal(got, want);
    xfree(got);
}

/* An absolute XDG_DATA_HOME / XDG_CONFIG_HOME is used as the base. */
static void paths_default_dirs_follow_xdg(void **state)
{
    (void)state;
    setenv("HOME", "/home/someone", 1);
    setenv("XDG_DATA_HOME", "/srv/data", 1);
    setenv("XDG_CONFIG_HOME", "/srv/conf/", 1);
    assert_dir_is(paths_default_data_dir(), "/srv/data/memchat");
    assert_dir_is(paths_default_config_dir(), "/srv/conf/memchat");
}

/* Unset, empty or relative XDG values are ignored (the XDG spec says a
 * relative one is invalid) in favour of the HOME fallbacks. */
static void paths_default_dirs_fall_back_to_home(void **state)
{
    (void)state;
    setenv("HOME", "/home/someone", 1);
    unsetenv("XDG_DATA_HOME");
    unsetenv("XDG_CONFIG_HOME");
    assert_dir_is(paths_default_data_dir(), "/home/someone/.local/share/memchat");
    assert_dir_is(paths_default_config_dir(), "/home/someone/.config/memchat");
    setenv("XDG_DATA_HOME", "relative/data", 1);
    setenv("XDG_CONFIG_HOME", "", 1);
    assert_dir_is(paths_default_data_dir(), "/home/someone/.local/share/memchat");
    assert_dir_is(paths_default_config_dir(), "/home/someone/.config/memchat");
    setenv("HOME", "/", 1);
    assert_dir_is(paths_default_config_dir(), "/.config/memchat");
}

/* With no usable XDG value and no HOME there is no default: NULL. */
static void paths_default_dirs_are_null_without_home(void **state)
{
    (void)state;
    unsetenv("XDG_DATA_HOME");
    setenv("XDG_CONFIG_HOME", "rel", 1);
    unsetenv("HOME");
    assert_null(paths_default_data_dir());
    assert_null(paths_default_config_dir());
    setenv("HOME", "", 1);
    assert_null(paths_default_data_dir());
}

static int tmp_setup(void **state)
{
    *state = tu_mkdtemp();
    return 0;
}

static int tmp_teardown(void **state)
{
    tu_rmtree(*state);
    free(*state);
    return 0;
}

/* mkdir_p creates every missing level with exactly the given mode (under
 * umask 0, so 0700 is what was asked for, not a default), succeeds
 * when the tree exists, and accepts a trailing slash. */
static void paths_mkdir_p_creates_private_nested_dirs(void **state)
{
    const char *dir = *state;
    char err[512] = "";
    char *deep = paths_join(dir, "a/b/c");
    mode_t old = umask(0);
    int rc = paths_mkdir_p(deep, 0700, err, sizeof err);
    umask(old);
    assert_int_equal(rc, 0);
    static const char *const levels[] = {"a", "a/b", "a/b/c"};
    for (size_t i = 0; i < 3; i++) {
        char *p = paths_join(dir, levels[i]);
        struct stat st;
        assert_int_equal(stat(p, &st), 0);
        assert_true(S_ISDIR(st.st_mode));
        assert_int_equal(st.st_mode & 0777, 0700);
        xfree(p);
    }
    assert_int_equal(paths_mkdir_p(deep, 0700, err, sizeof err), 0); /* exists */
    char *slash = xasprintf("%s/d/", deep);
    assert_int_equal(paths_mkdir_p(slash, 0700, err, sizeof err), 0);
    xfree(slash);
    char *d = paths_join(deep, "d");
    struct stat st;
    assert_int_equal(stat(d, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    xfree(d);
    xfree(deep);
}

/* A file where a directory should be is an error naming the path: as a
 * middle component and as the last one. An empty path is an error too. */
static void paths_mkdir_p_reports_a_file_in_the_way(void **state)
{
    const char *dir = *state;
    char err[512] = "";
    char *file = tu_write_file(dir, "plain", "x");
    char *below = paths_join(file, "sub/deeper");
    assert_int_equal(paths_mkdir_p(below, 0700, err, sizeof err), -1);
    assert_non_null(strstr(err, file));
    err[0] = '\0';
    assert_int_equal(paths_mkdir_p(file, 0700, err, sizeof err), -1);
    assert_non_null(strstr(err, file));
    assert_non_null(strstr(err, "not a directory"));
    err[0] = '\0';
    assert_int_equal(paths_mkdir_p("", 0700, err, sizeof err), -1);
    assert_true(err[0] != '\0');
    xfree(below);
    free(file);
}

/* ---- error ---------------------------------------------------------- */

/* Every code is unique, snake_case, documented, and maps back to its
 * error; an unknown code maps to internal. */
static void error_codes_are_unique_and_round_trip(void **state)
{
    (void)state;
    static const enum mc_error all[] = {
#define MC_X_ALL(e, code, exitc, doc) e,
        MC_ERROR_LIST(MC_X_ALL)
#undef MC_X_ALL
    };
    size_t n = sizeof all / sizeof all[0];
    for (size_t i = 0; i < n; i++) {
        const char *code = mc_error_code(all[i]);
        assert_true(code[0] != '\0');
        for (const char *c = code; *c; c++)
            assert_true((*c >= 'a' && *c <= 'z') || *c == '_');
        assert_true(mc_error_doc(all[i])[0] != '\0');
        assert_int_equal(mc_error_from_code(code), all[i]);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(code, mc_error_code(all[j]));
    }
    assert_int_equal(mc_error_from_code("no_such_code"), MC_ERR_INTERNAL);
    assert_int_equal(mc_error_from_code(""), MC_ERR_INTERNAL);
}

/* The exit codes are the contract's: usage/config/input 2, provider and
 * network 3, rate limit and budget 4, cancelled 130, none 0, the rest 1. */
static void error_exit_codes_follow_the_contract(void **state)
{
    (void)state;
    assert_int_equal(mc_error_exit_code(MC_ERR_NONE), 0);
    assert_int_equal(mc_error_exit_code(MC_ERR_INTERNAL), 1);
    assert_int_equal(mc_error_exit_code(MC_ERR_OUT_OF_MEMORY), 1);
    assert_int_equal(mc_error_exit_code(MC_ERR_IO), 1);
    assert_int_equal(mc_error_exit_code(MC_ERR_DATA_FILE), 1);
    assert_int_equal(mc_error_exit_code(MC_ERR_USAGE), 2);
    assert_int_equal(mc_error_exit_code(MC_ERR_CONFIG), 2);
    assert_int_equal(mc_error_exit_code(MC_ERR_INPUT), 2);
    assert_int_equal(mc_error_exit_code(MC_ERR_PROVIDER), 3);
    assert_int_equal(mc_error_exit_code(MC_ERR_NETWORK), 3);
    assert_int_equal(mc_error_exit_code(MC_ERR_RATE_LIMITED), 4);
    assert_int_equal(mc_error_exit_code(MC_ERR_BUDGET), 4);
    assert_int_equal(mc_error_exit_code(MC_ERR_CANCELLED), 130);
    assert_string_equal(mc_error_code(MC_ERR_RATE_LIMITED), "rate_limited");
    /* Out-of-range values are internal errors, not crashes. */
    assert_string_equal(mc_error_code((enum mc_error)999), "internal");
    assert_int_equal(mc_error_exit_code((enum mc_error)999), 1);
}

/* ---- clock ---------------------------------------------------------- */

/* The monotonic clock never goes back, ms agrees with ns, and the wall
 * clock is a plausible Unix time in milliseconds (after 2020-01-01). */
static void clocks_are_monotonic_and_plausible(void **state)
{
    (void)state;
    int64_t prev = clock_mono_ns();
    for (int i = 0; i < 100000; i++) {
        int64_t now = clock_mono_ns();
        assert_true(now >= prev);
        prev = now;
    }
    int64_t ns = clock_mono_ns();
    int64_t ms = clock_mono_ms();
    assert_true(ms >= ns / 1000000);
    assert_true(clock_since_ms(ns) >= 0.0);
    int64_t wall = clock_wall_ms();
    assert_true(wall > 1577836800000LL);  /* 2020-01-01T00:00:00Z */
    assert_true(wall < 32503680000000LL); /* 3000-01-01: seconds, not ms */
}

/* ---- event ---------------------------------------------------------- */

/* A new event carries its header in the struct and in the JSON object,
 * with "turn" a string in a turn and JSON null outside one. */
static void event_new_sets_the_header(void **state)
{
    (void)state;
    const char *turn = "0190b4a2-7c3e-7d4f-9a1b-2c3d4e5f6a7b";
    struct mc_event *ev = mc_event_new(MC_EV_DELTA, turn, 3, 1700000000123LL);
    assert_int_equal(ev->kind, MC_EV_DELTA);
    assert_string_equal(ev->turn, turn);
    assert_int_equal(ev->seq, 3);
    assert_int_equal(ev->ts_ms, 1700000000123LL);
    assert_string_equal(mc_event_str(ev, "event", NULL), "delta");
    assert_string_equal(mc_event_str(ev, "turn", NULL), turn);
    assert_true(mc_event_num(ev, "seq", -1) == 3.0);
    assert_true(mc_event_num(ev, "ts_ms", -1) == 1700000000123.0);
    mc_event_free(ev);

    static const char *const outside[] = {NULL, ""};
    for (int i = 0; i < 2; i++) {
        ev = mc_event_new(MC_EV_RESULT, outside[i], 0, 5);
        assert_string_equal(ev->turn, "");
        assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(ev->json, "turn")));
        mc_event_free(ev);
    }
    mc_event_free(NULL);
}

/* to_json then parse gives back the same header and fields, for a turn
 * string and for a null turn; the header comes first on the wire. */
static void event_json_round_trips(void **state)
{
    (void)state;
    char err[256] = "";
    const char *turn = "0190b4a2-7c3e-7d4f-9a1b-2c3d4e5f6a7b";
    struct mc_event *ev = mc_event_new(MC_EV_COST, turn, 17, 1712345678901LL);
    cJSON_AddNumberToObject(ev->json, "usd", 0.0125);
    cJSON_AddStringToObject(ev->json, "model", "gpt-x \"quoted\"\n");
    cJSON_AddBoolToObject(ev->json, "estimated", 1);
    char *line = mc_event_to_json(ev);
    assert_null(strchr(line, '\n'));
    assert_true(strncmp(line, "{\"event\":\"cost\",\"turn\":\"", 24) == 0);
    struct mc_event *back = mc_event_parse(line, err, sizeof err);
    assert_non_null(back);
    assert_int_equal(back->kind, MC_EV_COST);
    assert_string_equal(back->turn, turn);
    assert_int_equal(back->seq, 17);
    assert_int_equal(back->ts_ms, 1712345678901LL);
    assert_true(mc_event_num(back, "usd", 0) == 0.0125);
    assert_string_equal(mc_event_str(back, "model", NULL), "gpt-x \"quoted\"\n");
    assert_true(mc_event_bool(back, "estimated", false));
    free(line);
    mc_event_free(back);
    mc_event_free(ev);

    ev = mc_event_new(MC_EV_ERROR, NULL, 0, 42);
    line = mc_event_to_json(ev);
    assert_non_null(strstr(line, "\"turn\":null"));
    back = mc_event_parse(line, err, sizeof err);
    assert_non_null(back);
    assert_string_equal(back->turn, "");
    assert_int_equal(back->kind, MC_EV_ERROR);
    assert_int_equal(back->ts_ms, 42);
    free(line);
    mc_event_free(back);
    mc_event_free(ev);
}

/* Accessors return the default when the field is missing, null or of
 * another type, and the value otherwise. */
static void event_accessors_fall_back_to_defaults(void **state)
{
    (void)state;
    char err[256] = "";
    struct mc_event *ev = mc_event_parse("{\"event\":\"usage\",\"turn\":null,\"seq\":1,"
                                         "\"ts_ms\":2,\"s\":\"str\",\"n\":2.5,\"b\":false,"
                                         "\"z\":null}",
                                         err, sizeof err);
    assert_non_null(ev);
    assert_string_equal(mc_event_str(ev, "s", "d"), "str");
    assert_string_equal(mc_event_str(ev, "n", "d"), "d");
    assert_string_equal(mc_event_str(ev, "z", "d"), "d");
    assert_string_equal(mc_event_str(ev, "missing", "d"), "d");
    assert_null(mc_event_str(ev, "missing", NULL));
    assert_true(mc_event_num(ev, "n", -1) == 2.5);
    assert_true(mc_event_num(ev, "s", -1) == -1.0);
    assert_true(mc_event_num(ev, "z", -1) == -1.0);
    assert_false(mc_event_bool(ev, "b", true));
    assert_true(mc_event_bool(ev, "n", true));
    assert_true(mc_event_bool(ev, "missing", true));
    mc_event_free(ev);
}

/* parse refuses what is not an event: not JSON, not an object, an unknown
 * or missing event name, a missing or non-numeric seq or ts_ms, a turn of
 * the wrong type, and numbers no int64 can hold; each with a message. */
static void event_parse_rejects_non_events(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "not json",
        "[1,2]",
        "\"delta\"",
        "null",
        "{}",
        "{\"event\":\"no.such\",\"turn\":null,\"seq\":0,\"ts_ms\":0}",
        "{\"event\":7,\"turn\":null,\"seq\":0,\"ts_ms\":0}",
        "{\"turn\":null,\"seq\":0,\"ts_ms\":0}",
        "{\"event\":\"delta\",\"turn\":null,\"ts_ms\":0}",
        "{\"event\":\"delta\",\"turn\":null,\"seq\":\"0\",\"ts_ms\":0}",
        "{\"event\":\"delta\",\"turn\":null,\"seq\":0}",
        "{\"event\":\"delta\",\"turn\":5,\"seq\":0,\"ts_ms\":0}",
        "{\"event\":\"delta\",\"seq\":0,\"ts_ms\":0}",
        "{\"event\":\"delta\",\"turn\":null,\"seq\":1e300,\"ts_ms\":0}",
        "{\"event\":\"delta\",\"turn\":null,\"seq\":0,\"ts_ms\":-1e300}",
        "{\"event\":\"delta\",\"turn\":null,\"seq\":1.5,\"ts_ms\":0}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[256] = "";
        struct mc_event *ev = mc_event_parse(bad[i], err, sizeof err);
        if (ev != NULL)
            fail_msg("parsed \"%s\"", bad[i]);
        assert_true(err[0] != '\0');
    }
    /* The message says which part of the header is wrong. */
    char err[256] = "";
    assert_null(mc_event_parse("{\"event\":\"delta\",\"turn\":null,\"ts_ms\":0}", err, sizeof err));
    assert_non_null(strstr(err, "\"seq\""));
    assert_null(
        mc_event_parse("{\"event\":\"x\",\"turn\":null,\"seq\":0,\"ts_ms\":0}", err, sizeof err));
    assert_non_null(strstr(err, "\"event\""));
}

/* Every event kind's wire name maps back to the kind, names are unique,
 * and unknown names and kinds are handled. */
static void event_kind_names_round_trip(void **state)
{
    (void)state;
    static const char *const names[] = {
#define MC_X_NAME(e, name) name,
        MC_EVENT_LIST(MC_X_NAME)
#undef MC_X_NAME
    };
    assert_int_equal(sizeof names / sizeof names[0], MC_EV__COUNT);
    for (int k = 0; k < MC_EV__COUNT; k++) {
        assert_string_equal(mc_event_kind_name((enum mc_event_kind)k), names[k]);
        assert_int_equal(mc_event_kind_from_name(names[k]), k);
        for (int j = 0; j < k; j++)
            assert_string_not_equal(names[j], names[k]);
        /* And through the wire: a parsed line of each kind has that kind. */
        char err[128], line[160];
        snprintf(line, sizeof line, "{\"event\":\"%s\",\"turn\":null,\"seq\":0,\"ts_ms\":0}",
                 names[k]);
        struct mc_event *ev = mc_event_parse(line, err, sizeof err);
        assert_non_null(ev);
        assert_int_equal(ev->kind, k);
        mc_event_free(ev);
    }
    assert_int_equal(mc_event_kind_from_name("turn"), -1);
    assert_int_equal(mc_event_kind_from_name("TURN.DONE"), -1);
    assert_int_equal(mc_event_kind_from_name(""), -1);
    assert_string_equal(mc_event_kind_name(MC_EV__COUNT), "unknown");
    assert_string_equal(mc_event_kind_name(MC_EV_TURN_DONE), "turn.done");
    assert_string_equal(mc_event_kind_name(MC_EV_MEMORY_RETRIEVED), "memory.retrieved");
}

/* Stage names are the keys of turn.done's latency_ms, in pipeline order. */
static void stage_names_match_turn_done_keys(void **state)
{
    (void)state;
    static const char *const want[] = {"rollout", "retrieve",  "inject", "minify",
                                       "cache",   "ratelimit", "key",    "first_token",
                                       "send",    "tools",     "total"};
    assert_int_equal(sizeof want / sizeof want[0], MC_STAGE__COUNT);
    for (int s = 0; s < MC_STAGE__COUNT; s++)
        assert_string_equal(mc_stage_name((enum mc_stage)s), want[s]);
    assert_string_equal(mc_stage_name(MC_STAGE__COUNT), "unknown");
}

/* Pasted credentials of every known shape are replaced, whatever sits
 * around them, and the rest of the text is kept byte for byte. */
static void redact_replaces_credentials_and_keeps_the_rest(void **state)
{
    (void)state;
    static const char *const secrets[] = {
        "sk-proj-abcdefghijklmnop1234",
        "sk-ant-api03-ABCDEFGHIJKLMNOPQRST",
        "ghp_ABCDEFGHIJKLMNOPQRSTUVWX12",
        "github_pat_11ABCDEFG0123456789abcdef",
        "xoxb-1234567890-abcdefghij",
        "AKIAIOSFODNN7EXAMPLE",
        "AIzaSyA1234567890abcdefghijklmnopqrstu",
        "hf_abcdefghijklmnopqrstuvwx",
        "Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc",
    };
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "my key is %s, keep it safe", secrets[i]);
        size_t count = 0;
        char *out = redact_secrets(text, strlen(text), &count);
        assert_non_null(out);
        assert_int_equal(count, 1);
        assert_null(strstr(out, secrets[i]));
        assert_string_equal(out, "my key is " REDACT_MARK ", keep it safe");
        xfree(out);
    }
}

/* Prose, short look-alikes and prefixes inside longer words are not
 * credentials: nothing is copied. */
static void redact_leaves_ordinary_text_alone(void **state)
{
    (void)state;
    static const char *const texts[] = {
        "ask-me-anything-about-the-weather-today", /* "sk-" inside a word */
        "sk-short",
        "the risk-averse plan uses a desk-based approach",
        "Bearer of good news",
        "",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        size_t count = 7;
        assert_null(redact_secrets(texts[i], strlen(texts[i]), &count));
        assert_int_equal(count, 0);
    }
}

/* A PEM private key is cut from its BEGIN line to its END line; two
 * credentials in one text are both replaced. */
static void redact_cuts_private_keys_and_counts_every_credential(void **state)
{
    (void)state;
    const char *text = "a\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nxyz\n-----END RSA PRIVATE "
                       "KEY-----\nb sk-abcdefghijklmnopqrstu c";
    size_t count = 0;
    char *out = redact_secrets(text, strlen(text), &count);
    assert_non_null(out);
    assert_int_equal(count, 2);
    assert_string_equal(out, "a\n" REDACT_MARK "\nb " REDACT_MARK " c");
    xfree(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ident_accepts_the_pattern),
        cmocka_unit_test(ident_rejects_everything_else),
        cmocka_unit_test(paths_join_puts_one_slash_between),
        cmocka_unit_test_setup_teardown(paths_default_dirs_follow_xdg, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(paths_default_dirs_fall_back_to_home, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(paths_default_dirs_are_null_without_home, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(paths_mkdir_p_creates_private_nested_dirs, tmp_setup,
                                        tmp_teardown),
        cmocka_unit_test_setup_teardown(paths_mkdir_p_reports_a_file_in_the_way, tmp_setup,
                                        tmp_teardown),
        cmocka_unit_test(error_codes_are_unique_and_round_trip),
        cmocka_unit_test(error_exit_codes_follow_the_contract),
        cmocka_unit_test(clocks_are_monotonic_and_plausible),
        cmocka_unit_test(event_new_sets_the_header),
        cmocka_unit_test(event_json_round_trips),
        cmocka_unit_test(event_accessors_fall_back_to_defaults),
        cmocka_unit_test(event_parse_rejects_non_events),
        cmocka_unit_test(event_kind_names_round_trip),
        cmocka_unit_test(stage_names_match_turn_done_keys),
        cmocka_unit_test(redact_replaces_credentials_and_keeps_the_rest),
        cmocka_unit_test(redact_leaves_ordinary_text_alone),
        cmocka_unit_test(redact_cuts_private_keys_and_counts_every_credential),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
