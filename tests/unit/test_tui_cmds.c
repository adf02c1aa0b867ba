/*
 * Tests of the TUI's command and key tables (tui/cmds.c): parsing a line
 * into a command and its argument, the messages for mistakes, completion
 * of command names, and the help text, which must list every command and
 * key because the same tables drive dispatch.
 */
#include "testutil.h"

#include "tui/cmds.h"
#include "util/buf.h"

/* Parses a copy of line (cmds_parse trims in place). */
static int parse(const char *line, const struct cmd_entry **c, char *arg, size_t arglen, char *err,
                 size_t errlen)
{
    char copy[512];
    snprintf(copy, sizeof copy, "%s", line);
    char *a = NULL;
    int rc = cmds_parse(copy, c, &a, err, errlen);
    snprintf(arg, arglen, "%s", a != NULL ? a : "(null)");
    return rc;
}

/* A command with an argument: the name is found, the argument trimmed. */
static void a_command_and_its_argument_are_split_and_trimmed(void **state)
{
    (void)state;
    const struct cmd_entry *c;
    char arg[256], err[256];
    assert_int_equal(parse("/tenant   acme-2  ", &c, arg, sizeof arg, err, sizeof err), 0);
    assert_string_equal(c->name, "tenant");
    assert_string_equal(arg, "acme-2");
    assert_int_equal(parse("/search where do I live?\t", &c, arg, sizeof arg, err, sizeof err), 0);
    assert_string_equal(c->name, "search");
    assert_string_equal(arg, "where do I live?");
}

/* Optional arguments may be left out; the exec then gets NULL. */
static void an_optional_argument_may_be_absent(void **state)
{
    (void)state;
    const struct cmd_entry *c;
    char arg[256], err[256];
    assert_int_equal(parse("/model", &c, arg, sizeof arg, err, sizeof err), 0);
    assert_string_equal(c->name, "model");
    assert_string_equal(arg, "(null)");
    assert_int_equal(parse("/model  gpt-4o-mini", &c, arg, sizeof arg, err, sizeof err), 0);
    assert_string_equal(arg, "gpt-4o-mini");
}

/* A required argument that is missing gives the usage; an argument to a
 * command that takes none is refused. */
static void argument_mistakes_are_explained(void **state)
{
    (void)state;
    const struct cmd_entry *c;
    char arg[256], err[256];
    assert_int_equal(parse("/tenant", &c, arg, sizeof arg, err, sizeof err), -1);
    assert_non_null(strstr(err, "/tenant needs an argument: /tenant ID"));
    assert_int_equal(parse("/quit now", &c, arg, sizeof arg, err, sizeof err), -1);
    assert_non_null(strstr(err, "/quit takes no argument"));
}

/* An unknown command names the closest one: a unique prefix, or a typo
 * within two edits; otherwise just points at /help. */
static void an_unknown_command_suggests_the_closest(void **state)
{
    (void)state;
    const struct cmd_entry *c;
    char arg[256], err[256];
    assert_int_equal(parse("/tenat x", &c, arg, sizeof arg, err, sizeof err), -1);
    assert_non_null(strstr(err, "did you mean /tenant?"));
    assert_int_equal(parse("/conv", &c, arg, sizeof arg, err, sizeof err), -1);
    assert_non_null(strstr(err, "did you mean /conversations?"));
    assert_int_equal(parse("/zzzzzzzz", &c, arg, sizeof arg, err, sizeof err), -1);
    assert_null(strstr(err, "did you mean"));
    assert_non_null(strstr(err, "/help"));
    assert_int_equal(parse("hello", &c, arg, sizeof arg, err, sizeof err), -1);
}

/* Completion lists every command with the prefix, in table order, and
 * counts them all even when out has less room. */
static void completion_finds_every_command_with_the_prefix(void **state)
{
    (void)state;
    const struct cmd_entry *out[32];
    size_t n = cmds_complete("", out, 32);
    assert_int_equal(n, cmds_count());
    n = cmds_complete("t", out, 32);
    assert_int_equal(n, 2); /* tenant, theme */
    assert_string_equal(out[0]->name, "tenant");
    assert_string_equal(out[1]->name, "theme");
    assert_int_equal(cmds_complete("t", out, 1), 2);
    assert_int_equal(cmds_complete("x", out, 32), 0);
}

/* The tables are well formed: names unique, every command has help and
 * an exec, every key at least one default sequence. */
static void the_tables_are_well_formed(void **state)
{
    (void)state;
    for (size_t i = 0; i < cmds_count(); i++) {
        const struct cmd_entry *c = cmds_at(i);
        assert_non_null(c->exec);
        assert_true(strlen(c->help) > 10);
        assert_ptr_equal(cmds_find(c->name), c);
        assert_true((c->arg == CMD_ARG_NONE) == (c->args[0] == '\0'));
    }
    assert_null(cmds_at(cmds_count()));
    for (size_t i = 0; i < keys_count(); i++) {
        const struct key_entry *k = keys_at(i);
        assert_non_null(k->seqs[0]);
        assert_int_equal(strncmp(k->name, "memchat-", 8), 0);
        for (size_t j = i + 1; j < keys_count(); j++)
            assert_string_not_equal(k->name, keys_at(j)->name);
    }
}

/* The issue's commands are all there. */
static void every_command_of_the_issue_exists(void **state)
{
    (void)state;
    static const char *const names[] = {
        "tenant",     "user",   "agent",   "model",   "provider",      "memory",
        "search",     "forget", "rollout", "compare", "conversations", "new",
        "regenerate", "theme",  "export",  "help",    "quit"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        assert_non_null(cmds_find(names[i]));
}

/* Help lists every command with its usage and every key with its name. */
static void help_lists_every_command_and_key(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 1 << 20);
    cmds_help(&b);
    const char *h = buf_cstr(&b);
    for (size_t i = 0; i < cmds_count(); i++) {
        char usage[64];
        const struct cmd_entry *c = cmds_at(i);
        snprintf(usage, sizeof usage, "/%s%s%s", c->name, c->args[0] ? " " : "", c->args);
        assert_non_null(strstr(h, usage));
        assert_non_null(strstr(h, c->help));
    }
    for (size_t i = 0; i < keys_count(); i++) {
        assert_non_null(strstr(h, keys_at(i)->name));
        assert_non_null(strstr(h, keys_at(i)->keys));
    }
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_command_and_its_argument_are_split_and_trimmed),
        cmocka_unit_test(an_optional_argument_may_be_absent),
        cmocka_unit_test(argument_mistakes_are_explained),
        cmocka_unit_test(an_unknown_command_suggests_the_closest),
        cmocka_unit_test(completion_finds_every_command_with_the_prefix),
        cmocka_unit_test(the_tables_are_well_formed),
        cmocka_unit_test(every_command_of_the_issue_exists),
        cmocka_unit_test(help_lists_every_command_and_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
