/*
 * The TUI's command and key tables (cmds.h). The tables are the only
 * list of commands and keys: dispatch, /help and completion all read
 * them, so a command cannot be added without its help.
 */
#include "config.h"

#include "tui/cmds.h"

#include <stdio.h>
#include <string.h>

#include "tui/internal.h"

static const struct cmd_entry cmd_table[] = {
    {"tenant", "ID", CMD_ARG_REQUIRED, CMD_COMPLETE_TENANT,
     "switch tenant: memory, costs and limits are the tenant's", app_cmd_tenant},
    {"user", "ID", CMD_ARG_REQUIRED, CMD_COMPLETE_NONE, "switch user within the tenant",
     app_cmd_user},
    {"agent", "NAME", CMD_ARG_REQUIRED, CMD_COMPLETE_AGENT, "talk to another agent", app_cmd_agent},
    {"model", "[NAME]", CMD_ARG_OPTIONAL, CMD_COMPLETE_MODEL,
     "use this model (no name: back to the agent's or configured one)", app_cmd_model},
    {"provider", "[NAME]", CMD_ARG_OPTIONAL, CMD_COMPLETE_PROVIDER,
     "use this provider: auto, offline, openai, anthropic, ollama (no name: default)",
     app_cmd_provider},
    {"memory", "on|off|default", CMD_ARG_REQUIRED, CMD_COMPLETE_MEMORY,
     "turn memory on or off for this session (default: the rollout decides)", app_cmd_memory},
    {"search", "TEXT", CMD_ARG_REQUIRED, CMD_COMPLETE_NONE,
     "search the tenant's memories (results in the context pane)", app_cmd_search},
    {"forget", "[ID]", CMD_ARG_OPTIONAL, CMD_COMPLETE_NONE,
     "forget a memory (no id: the one highlighted in the context pane)", app_cmd_forget},
    {"rollout", "", CMD_ARG_NONE, CMD_COMPLETE_NONE,
     "the rollout of memory: settings, rules and each tenant's figures", app_cmd_rollout},
    {"compare", "TEXT", CMD_ARG_REQUIRED, CMD_COMPLETE_NONE,
     "ask twice, with memory and without, side by side", app_cmd_compare},
    {"conversations", "[ID]", CMD_ARG_OPTIONAL, CMD_COMPLETE_NONE,
     "list your conversations; with an id, continue that one", app_cmd_conversations},
    {"new", "", CMD_ARG_NONE, CMD_COMPLETE_NONE, "start a new conversation", app_cmd_new},
    {"regenerate", "", CMD_ARG_NONE, CMD_COMPLETE_NONE, "ask the last message again",
     app_cmd_regenerate},
    {"theme", "NAME", CMD_ARG_REQUIRED, CMD_COMPLETE_THEME,
     "use another theme (default, light, solarized-dark, mono, or your own)", app_cmd_theme},
    {"export", "FILE", CMD_ARG_REQUIRED, CMD_COMPLETE_FILE,
     "write the conversation to FILE as Markdown", app_cmd_export},
    {"allow", "", CMD_ARG_NONE, CMD_COMPLETE_NONE,
     "let the tool that asks (it is not read-only) run this once", app_cmd_allow},
    {"deny", "", CMD_ARG_NONE, CMD_COMPLETE_NONE,
     "refuse the tool that asks; the model is told you said no", app_cmd_deny},
    {"help", "", CMD_ARG_NONE, CMD_COMPLETE_NONE, "every key and command", app_cmd_help},
    {"quit", "", CMD_ARG_NONE, CMD_COMPLETE_NONE, "leave memchat", app_cmd_quit},
};
#define N_CMDS (sizeof cmd_table / sizeof cmd_table[0])

static const char *const seq_focus[] = {"\033[17~", NULL};
static const char *const seq_zoom[] = {"\033[18~", NULL};
static const char *const seq_help[] = {"\033OP", "\033[11~", NULL};
static const char *const seq_pgup[] = {"\033[5~", NULL};
static const char *const seq_pgdn[] = {"\033[6~", NULL};
static const char *const seq_prev[] = {"\033[1;3A", "\033\033[A", NULL};
static const char *const seq_next[] = {"\033[1;3B", "\033\033[B", NULL};
static const char *const seq_injected[] = {"\033[19~", NULL};
static const char *const seq_forget[] = {"\033[20~", NULL};
static const char *const seq_newline[] = {"\033\r", "\033\n", NULL};
static const char *const seq_editor[] = {"\030\005", NULL};

static const struct key_entry key_table[] = {
    {"memchat-help", "F1", seq_help, "this help"},
    {"memchat-focus-next", "F6", seq_focus, "move focus to the next pane"},
    {"memchat-zoom", "F7", seq_zoom, "zoom the focused pane (again: back)"},
    {"memchat-show-injected", "F8", seq_injected,
     "context pane: the exact block injected into the prompt, or the candidates"},
    {"memchat-forget", "F9", seq_forget, "forget the highlighted memory"},
    {"memchat-scroll-up", "PgUp", seq_pgup, "scroll the focused pane up (also the wheel)"},
    {"memchat-scroll-down", "PgDn", seq_pgdn, "scroll the focused pane down"},
    {"memchat-select-prev", "Alt-Up", seq_prev,
     "conversation: select the previous turn; context: highlight the previous memory"},
    {"memchat-select-next", "Alt-Down", seq_next,
     "conversation: select the next turn; context: highlight the next memory"},
    {"memchat-newline", "Alt-Enter", seq_newline, "a new line in the message"},
    {"memchat-edit", "Ctrl-X Ctrl-E", seq_editor, "write the message in $EDITOR"},
};
#define N_KEYS (sizeof key_table / sizeof key_table[0])

size_t cmds_count(void)
{
    return N_CMDS;
}

const struct cmd_entry *cmds_at(size_t i)
{
    return i < N_CMDS ? &cmd_table[i] : NULL;
}

const struct cmd_entry *cmds_find(const char *name)
{
    for (size_t i = 0; i < N_CMDS; i++)
        if (strcmp(cmd_table[i].name, name) == 0)
            return &cmd_table[i];
    return NULL;
}

size_t keys_count(void)
{
    return N_KEYS;
}

const struct key_entry *keys_at(size_t i)
{
    return i < N_KEYS ? &key_table[i] : NULL;
}

size_t cmds_complete(const char *prefix, const struct cmd_entry **out, size_t max)
{
    size_t n = 0, len = strlen(prefix);
    for (size_t i = 0; i < N_CMDS; i++) {
        if (strncmp(cmd_table[i].name, prefix, len) != 0)
            continue;
        if (n < max)
            out[n] = &cmd_table[i];
        n++;
    }
    return n;
}

/* Edit distance of a and b (short strings), for "did you mean". */
static size_t cmds_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 31 || lb > 31)
        return 99;
    size_t row[32];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static bool cmds_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The command a mistyped name most likely meant: a unique prefix match,
 * else the nearest within 2 edits; NULL when none. */
static const struct cmd_entry *cmds_guess(const char *name)
{
    const struct cmd_entry *one = NULL;
    if (name[0] != '\0' && cmds_complete(name, &one, 1) == 1)
        return one;
    const struct cmd_entry *best = NULL;
    size_t best_d = 3;
    for (size_t i = 0; i < N_CMDS; i++) {
        size_t d = cmds_distance(name, cmd_table[i].name);
        if (d < best_d) {
            best_d = d;
            best = &cmd_table[i];
        }
    }
    return best;
}

int cmds_parse(char *line, const struct cmd_entry **cmd, char **arg, char *err, size_t errlen)
{
    *cmd = NULL;
    *arg = NULL;
    if (line[0] != '/') {
        snprintf(err, errlen, "not a command (commands start with /; /help lists them)");
        return -1;
    }
    char *name = line + 1;
    char *p = name;
    while (*p != '\0' && !cmds_blank(*p))
        p++;
    char *rest = p;
    while (*rest != '\0' && cmds_blank(*rest))
        rest++;
    *p = '\0';
    size_t n = strlen(rest);
    while (n > 0 && cmds_blank(rest[n - 1]))
        rest[--n] = '\0';
    const struct cmd_entry *c = cmds_find(name);
    if (c == NULL) {
        const struct cmd_entry *g = cmds_guess(name);
        if (g != NULL)
            snprintf(err, errlen, "unknown command /%.40s: did you mean /%s? (/help lists them)",
                     name, g->name);
        else
            snprintf(err, errlen, "unknown command /%.40s (/help lists them)", name);
        return -1;
    }
    if (n == 0 && c->arg == CMD_ARG_REQUIRED) {
        snprintf(err, errlen, "/%s needs an argument: /%s %s", c->name, c->name, c->args);
        return -1;
    }
    if (n > 0 && c->arg == CMD_ARG_NONE) {
        snprintf(err, errlen, "/%s takes no argument", c->name);
        return -1;
    }
    *cmd = c;
    *arg = n > 0 ? rest : NULL;
    return 0;
}

void cmds_help(struct buf *out)
{
    char line[256];
    buf_puts(out, "Keys (rebind them in ~/.inputrc under `$if memchat`):\n");
    for (size_t i = 0; i < N_KEYS; i++) {
        snprintf(line, sizeof line, "  %-14s %s  [%s]\n", key_table[i].keys, key_table[i].help,
                 key_table[i].name);
        buf_puts(out, line);
    }
    buf_puts(out, "  Enter          send the message\n"
                  "  Tab            complete a command, agent, model, theme or tenant\n"
                  "  Esc, Ctrl-C    cancel the reply being streamed (the text so far stays)\n"
                  "  Ctrl-D         leave (on an empty line)\n"
                  "  Up, Down, ^R   history (per user), as in bash\n"
                  "\nCommands:\n");
    for (size_t i = 0; i < N_CMDS; i++) {
        char usage[64];
        snprintf(usage, sizeof usage, "/%s%s%s", cmd_table[i].name, cmd_table[i].args[0] ? " " : "",
                 cmd_table[i].args);
        snprintf(line, sizeof line, "  %-28s %s\n", usage, cmd_table[i].help);
        buf_puts(out, line);
    }
}
