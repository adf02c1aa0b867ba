/*
 * memchat's command line. Options may stand before or after the verb;
 * "--" ends them (so a question may start with a dash). Options that set
 * configuration (--set, --tenant, --user, --agent) become "flag"-level
 * sources of config_load, the strongest. A verb refuses options it does not
 * take, so a typo never silently changes nothing.
 */
#include "config.h"

#include "cli/cli.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/session.h"
#include "config/config.h"
#include "memchat/error.h"
#include "util/alloc.h"

enum opt_bit {
    OPT_JSON = 1 << 0,
    OPT_PLAIN = 1 << 1,
    OPT_IDS = 1 << 2, /* --tenant --user --agent */
    OPT_NO_MEMORY = 1 << 3,
    OPT_MODEL = 1 << 4, /* --provider --model --temperature --max-tokens */
    OPT_COSTS = 1 << 5, /* --by --since (passed to the verb in o->args) */
    OPT_PASS = 1 << 6,  /* --passphrase-stdin */
    OPT_KEYS = 1 << 7,  /* keys: --provider --command --passphrase */
};

struct verb {
    const char *name;
    int (*run)(const struct config *cfg, const struct cli_opts *o);
    unsigned opts; /* enum opt_bit the verb accepts (--set and --help: all) */
    const char *usage;
    const char *summary;
    const char *help;
};

static const struct verb verbs[] = {
    {"ask", cmd_ask, OPT_JSON | OPT_IDS | OPT_NO_MEMORY | OPT_MODEL | OPT_PASS,
     "ask [OPTIONS] [QUESTION...]", "ask one question and print the answer",
     "The question comes from the arguments, from standard input, or both\n"
     "(cat notes.txt | memchat ask \"summarise\": the arguments, a blank line, then stdin).\n"
     "The reply streams to stdout; errors go to stderr. ask waits until the turn's\n"
     "memory has been stored or skipped before it exits. Ctrl-C cancels (exit 130).\n"
     "\n"
     "  --tenant T, --user U, --agent A   who asks and who answers\n"
     "  --no-memory                       neither recall nor store memories\n"
     "  --provider P                      auto, offline, openai, anthropic or ollama\n"
     "  --model M                         the model (default: the provider's)\n"
     "  --temperature T                   sampling temperature, 0 to 2\n"
     "  --max-tokens N                    cap on the reply's tokens\n"
     "  --passphrase-stdin                the keystore's passphrase is stdin's first line\n"
     "  --json                            print every event as one JSON line\n"},
    {"chat", cmd_chat, OPT_JSON | OPT_PLAIN | OPT_IDS | OPT_NO_MEMORY | OPT_MODEL | OPT_PASS,
     "chat --plain [OPTIONS]", "chat line by line (for pipes and screen readers)",
     "Each input line is one message; the reply follows it. Chosen automatically when\n"
     "stdin or stdout is not a terminal. Commands: /help, /quit, /new (forget the\n"
     "conversation), /memory on|off|default, /tenant ID, /user ID, /agent ID.\n"
     "Ctrl-C cancels a running reply; at the prompt it ends the chat.\n"
     "\n"
     "  --plain                           the line interface (the only one until the TUI)\n"
     "  --tenant T, --user U, --agent A   who chats and who answers\n"
     "  --no-memory                       neither recall nor store memories\n"
     "  --provider P                      auto, offline, openai, anthropic or ollama\n"
     "  --model M                         the model (default: the provider's)\n"
     "  --temperature T                   sampling temperature, 0 to 2\n"
     "  --max-tokens N                    cap on the reply's tokens\n"
     "  --passphrase-stdin                the keystore's passphrase is stdin's first line\n"
     "  --json                            print every event as one JSON line\n"},
    {"config", cmd_config, OPT_JSON, "config [--json]",
     "print every setting, its effective value and where it came from",
     "Sources, strongest last: default < config.env < .env < environment < flags.\n"
     "Secrets are masked to their last 4 characters.\n"
     "\n"
     "  --json   one JSON object per setting: name, value, source, default\n"},
    {"costs", cmd_costs, OPT_JSON | OPT_COSTS, "costs [--by GROUP] [--since DURATION] [--json]",
     "what the turns cost, grouped and summed from the ledger",
     "Sums every turn's tokens, USD, cache hits and minification savings over a\n"
     "window ending now. A turn whose model has no price is counted, never priced\n"
     "at 0: its group shows \"\xe2\x80\x94\" when no turn of it has a price.\n"
     "\n"
     "  --by GROUP         tenant (default), user, agent, model, day (UTC) or none\n"
     "  --since DURATION   N, or N followed by s m h d w (default 30d); all for everything\n"
     "  --json             one JSON object per group (no total line)\n"},
    {"limits", cmd_limits, OPT_JSON | OPT_IDS, "limits [show|set|clear] [--tenant T] [--user U]",
     "per-tenant and per-user rate limits and budgets",
     "  memchat limits show [--tenant T] [--user U] [--json]\n"
     "  memchat limits set [--tenant T] [--user U] rpm=N tpm=N budget=USD\n"
     "  memchat limits clear [--tenant T] [--user U] [rpm] [tpm] [budget]\n"
     "\n"
     "Overrides of TENANT_/USER_RATE_LIMIT_RPM/TPM (per RATE_LIMIT_WINDOW_S) and\n"
     "TENANT_/USER_BUDGET_USD (per BUDGET_PERIOD), kept in the data file and applied\n"
     "to every later turn. Without --user, the tenant's own limits; 0 means\n"
     "unlimited or no budget. show lists configured, override and effective values.\n"},
    {"keys", cmd_keys, OPT_JSON | OPT_IDS | OPT_PASS | OPT_KEYS,
     "keys [set|list|rm|rotate|init] [OPTIONS]", "tenants' own API keys, encrypted at rest",
     "  memchat keys set --tenant T --provider P          the key from stdin or a prompt\n"
     "  memchat keys set --tenant T --provider P --command CMD\n"
     "                                                    CMD prints the key at each use\n"
     "  memchat keys list [--tenant T] [--json]           masked\n"
     "  memchat keys rm --tenant T --provider P\n"
     "  memchat keys rotate [--passphrase]                re-encrypt under a new master key\n"
     "  memchat keys init [--passphrase]                  create the keystore\n"
     "\n"
     "P is openai, anthropic or tool:NAME (a tool's credential). A tenant's key wins\n"
     "over OPENAI_API_KEY / ANTHROPIC_API_KEY for that tenant's turns and is sent only\n"
     "to the configured *_BASE_URL. The keystore (data dir) is encrypted with a master\n"
     "key: MEMCHAT_MASTER_KEY (base64 of 32 bytes), else master.key in the config dir\n"
     "(made on first use, mode 0600), unless init/rotate --passphrase chose a\n"
     "passphrase, asked at a prompt or read with --passphrase-stdin.\n"
     "\n"
     "  --passphrase          init/rotate: protect the keystore with a passphrase\n"
     "  --passphrase-stdin    read passphrases from stdin's lines instead of a prompt\n"
     "  --json                list: one JSON object per key\n"},
};

#define VERB_COUNT (sizeof verbs / sizeof verbs[0])

static const struct verb *verb_find(const char *name)
{
    for (size_t i = 0; i < VERB_COUNT; i++)
        if (strcmp(verbs[i].name, name) == 0)
            return &verbs[i];
    return NULL;
}

static void cli_usage(FILE *f)
{
    fprintf(f, "usage: memchat [OPTIONS] [VERB [ARGS...]]\n"
               "\n"
               "memchat is a terminal chat for memory-enabled LLM agents. With no verb it\n"
               "starts a chat on the terminal.\n"
               "\n"
               "Verbs:\n");
    for (size_t i = 0; i < VERB_COUNT; i++)
        fprintf(f, "  %-8s %s\n", verbs[i].name, verbs[i].summary);
    fprintf(f, "\n"
               "Options:\n"
               "  --set NAME=VALUE  set a configuration variable (see memchat config)\n"
               "  -h, --help        this help; memchat VERB --help for a verb\n"
               "  -V, --version     print the version\n"
               "\n"
               "Exit codes: 0 ok, 1 runtime error, 2 usage or configuration error,\n"
               "3 provider or network error, 4 refused by a rate limit or budget, 130 cancelled.\n"
               "Documentation: man memchat, docs/ in the source tree.\n");
}

static void verb_usage(const struct verb *v, FILE *f)
{
    fprintf(f, "usage: memchat %s\n\n%s.\n\n%s", v->usage, v->summary, v->help);
    fprintf(f, "  --set NAME=VALUE                  set a configuration variable\n");
}

/* Parsed command line before the configuration is loaded. */
struct cli_parse {
    struct cli_opts o;
    unsigned seen; /* enum opt_bit of options given */
    const char *verb;
    const char **flags; /* "NAME=VALUE" for config_load */
    size_t n_flags;
    bool help, version;
};

static void cli_flag_add(struct cli_parse *p, char *owned)
{
    p->flags = xreallocarray(p->flags, p->n_flags + 1, sizeof *p->flags);
    p->flags[p->n_flags++] = owned;
}

/* The value of an option given as "--name VALUE" or "--name=VALUE". */
static const char *cli_opt_value(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (*i + 1 >= argc)
        return NULL;
    return argv[++*i];
}

static bool cli_opt_is(const char *arg, const char *name)
{
    size_t n = strlen(name);
    return strncmp(arg, name, n) == 0 && (arg[n] == '\0' || arg[n] == '=');
}

static int cli_parse(int argc, char **argv, struct cli_parse *p)
{
    /* Options that are shorthands for --set NAME=VALUE, and their bit. */
    static const struct {
        const char *opt, *var;
        unsigned bit;
    } set_opts[] = {
        {"--tenant", "MEMCHAT_TENANT", OPT_IDS},
        {"--user", "MEMCHAT_USER", OPT_IDS},
        {"--agent", "MEMCHAT_AGENT", OPT_IDS},
        {"--provider", "MEMCHAT_PROVIDER", OPT_MODEL},
        {"--model", "MEMCHAT_MODEL", OPT_MODEL},
        {"--temperature", "MEMCHAT_TEMPERATURE", OPT_MODEL},
        {"--max-tokens", "MEMCHAT_MAX_TOKENS", OPT_MODEL},
    };
    const size_t n_set_opts = sizeof set_opts / sizeof set_opts[0];
    bool options_done = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (options_done || a[0] != '-' || a[1] == '\0') {
            if (p->verb == NULL && !options_done)
                p->verb = a;
            else
                p->o.args[p->o.n_args++] = argv[i];
            continue;
        }
        if (strcmp(a, "--") == 0) {
            options_done = true;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            p->help = true;
        } else if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
            p->version = true;
        } else if (strcmp(a, "--json") == 0) {
            p->o.json = true;
            p->seen |= OPT_JSON;
        } else if (strcmp(a, "--plain") == 0) {
            p->o.plain = true;
            p->seen |= OPT_PLAIN;
        } else if (strcmp(a, "--no-memory") == 0) {
            p->o.memory = MC_MEMORY_OFF;
            p->seen |= OPT_NO_MEMORY;
        } else if (cli_opt_is(a, "--set")) {
            const char *v = cli_opt_value(argc, argv, &i, "--set");
            if (v == NULL || strchr(v, '=') == NULL || v[0] == '=') {
                session_error("--set needs NAME=VALUE");
                return MC_EXIT_USAGE;
            }
            cli_flag_add(p, xstrdup(v));
        } else if (strcmp(a, "--passphrase-stdin") == 0) {
            p->o.pass_stdin = true;
            p->seen |= OPT_PASS;
        } else if (strcmp(a, "--passphrase") == 0) {
            p->o.passphrase = true;
            p->seen |= OPT_KEYS;
        } else if (cli_opt_is(a, "--command") || (cli_opt_is(a, "--provider") && p->verb != NULL &&
                                                  strcmp(p->verb, "keys") == 0)) {
            /* keys' own: --provider there names a keystore slot
             * (openai, anthropic, tool:NAME), not MEMCHAT_PROVIDER. */
            bool cmd = cli_opt_is(a, "--command");
            const char *v = cli_opt_value(argc, argv, &i, cmd ? "--command" : "--provider");
            if (v == NULL) {
                session_error("%s needs a value", cmd ? "--command" : "--provider");
                return MC_EXIT_USAGE;
            }
            *(cmd ? &p->o.key_command : &p->o.key_provider) = v;
            p->seen |= OPT_KEYS;
        } else if (cli_opt_is(a, "--by") || cli_opt_is(a, "--since")) {
            /* The verb's own options: passed on as they were written (one
             * argument for --by=X, two for --by X), parsed by the verb. */
            p->o.args[p->o.n_args++] = argv[i];
            if (strchr(a, '=') == NULL) {
                if (i + 1 >= argc) {
                    session_error("%s needs a value", a);
                    return MC_EXIT_USAGE;
                }
                p->o.args[p->o.n_args++] = argv[++i];
            }
            p->seen |= OPT_COSTS;
        } else {
            size_t k = 0;
            while (k < n_set_opts && !cli_opt_is(a, set_opts[k].opt))
                k++;
            if (k == n_set_opts) {
                session_error("unknown option %s (try memchat --help)", a);
                return MC_EXIT_USAGE;
            }
            const char *v = cli_opt_value(argc, argv, &i, set_opts[k].opt);
            if (v == NULL) {
                session_error("%s needs a value", set_opts[k].opt);
                return MC_EXIT_USAGE;
            }
            cli_flag_add(p, xasprintf("%s=%s", set_opts[k].var, v));
            p->seen |= set_opts[k].bit;
        }
    }
    return MC_EXIT_OK;
}

static void cli_parse_free(struct cli_parse *p)
{
    for (size_t i = 0; i < p->n_flags; i++)
        xfree((char *)(uintptr_t)p->flags[i]);
    xfree(p->flags);
    xfree(p->o.args);
}

static const char *const option_names[] = {"--json",
                                           "--plain",
                                           "--tenant/--user/--agent",
                                           "--no-memory",
                                           "--provider/--model/--temperature/--max-tokens",
                                           "--by/--since",
                                           "--passphrase-stdin",
                                           "--provider/--command/--passphrase (keys only)"};

/* Refuses options the verb does not take. */
static int cli_check_opts(const struct verb *v, unsigned seen)
{
    unsigned extra = seen & ~v->opts;
    for (unsigned bit = 0; extra != 0; bit++, extra >>= 1)
        if (extra & 1) {
            session_error("memchat %s does not take %s (see memchat %s --help)", v->name,
                          option_names[bit], v->name);
            return MC_EXIT_USAGE;
        }
    return MC_EXIT_OK;
}

static int cli_run(struct cli_parse *p)
{
    if (p->version) {
        printf("memchat %s\n", PACKAGE_VERSION);
        return MC_EXIT_OK;
    }
    const struct verb *v = NULL;
    if (p->verb != NULL && strcmp(p->verb, "help") == 0) {
        v = p->o.n_args > 0 ? verb_find(p->o.args[0]) : NULL;
        if (v != NULL)
            verb_usage(v, stdout);
        else
            cli_usage(stdout);
        return MC_EXIT_OK;
    }
    if (p->verb != NULL && (v = verb_find(p->verb)) == NULL) {
        session_error("unknown verb '%s' (memchat --help lists them)", p->verb);
        return MC_EXIT_USAGE;
    }
    if (p->help) {
        if (v != NULL)
            verb_usage(v, stdout);
        else
            cli_usage(stdout);
        return MC_EXIT_OK;
    }
    if (v == NULL) {
        /* No verb: the chat. The TUI takes this place when it lands; until
         * then the line chat serves terminals too. */
        v = verb_find("chat");
        p->o.plain = true;
    }
    int rc = cli_check_opts(v, p->seen);
    if (rc != MC_EXIT_OK)
        return rc;

    struct config *cfg = config_new_memchat();
    struct config_load_opts lo = {.flags = p->flags, .n_flags = p->n_flags};
    char err[1024] = "";
    if (config_load(cfg, &lo, err, sizeof err) != 0) {
        session_error("%s", err);
        config_free(cfg);
        return MC_EXIT_USAGE;
    }
    for (size_t i = 0; i < config_warning_count(cfg); i++)
        session_error("warning: %s", config_warning(cfg, i));
    rc = v->run(cfg, &p->o);
    config_free(cfg);
    return rc;
}

int cli_main(int argc, char **argv)
{
    struct cli_parse p;
    memset(&p, 0, sizeof p);
    p.o.args = xcalloc((size_t)argc + 1, sizeof *p.o.args);
    int rc = cli_parse(argc, argv, &p);
    if (rc == MC_EXIT_OK)
        rc = cli_run(&p);
    cli_parse_free(&p);
    if (fflush(stdout) != 0 && rc == MC_EXIT_OK)
        rc = MC_EXIT_RUNTIME;
    return rc;
}
