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

struct verb {
    const char *name;
    int (*run)(const struct config *cfg, const struct cli_opts *o);
    unsigned opts; /* enum cli_opt_bit the verb accepts (--set and --help: all) */
    const char *usage;
    const char *summary;
    const char *help;
};

static const struct verb verbs[] = {
    {"agents", cmd_agents, CLI_OPT_JSON, "agents [--json]",
     "list the agents: shipped ones and your own",
     "Lists every agent with its description, memory setting, steps and where it\n"
     "comes from. The shipped agents (assistant, planner, branding, quality) live in\n"
     "the share dir's agents/; your own JSON files in the config dir's agents/\n"
     "override them by name. A malformed file is reported (file and field) on\n"
     "stderr; the others still load. Use one with ask --agent NAME or /agent NAME.\n"
     "\n"
     "  --json   one JSON object per agent\n"},
    {"ask", cmd_ask,
     CLI_OPT_JSON | CLI_OPT_IDS | CLI_OPT_NO_MEMORY | CLI_OPT_MODEL | CLI_OPT_PASS | CLI_OPT_CONV |
         CLI_OPT_COMPARE | CLI_OPT_YES,
     "ask [OPTIONS] [QUESTION...]", "ask one question and print the answer",
     "The question comes from the arguments, from standard input, or both\n"
     "(cat notes.txt | memchat ask \"summarise\": the arguments, a blank line, then stdin).\n"
     "The reply streams to stdout; errors go to stderr. ask waits until the turn's\n"
     "memory has been stored or skipped before it exits. Ctrl-C cancels (exit 130).\n"
     "Each ask starts a new conversation unless --continue or --conversation says\n"
     "which one it carries on (memchat conversations lists them).\n"
     "\n"
     "  --tenant T, --user U, --agent A   who asks and who answers\n"
     "  --continue                        carry on the latest conversation of the\n"
     "                                    tenant and user (a new one when there is none)\n"
     "  --conversation ID                 carry on conversation ID\n"
     "  --compare                         ask twice, with memory on and off, each in a new\n"
     "                                    conversation, and show both side by side with\n"
     "                                    their latency, tokens and cost\n"
     "  --no-memory                       neither recall nor store memories\n"
     "  --provider P                      auto, offline, openai, anthropic or ollama\n"
     "  --model M                         the model (default: the provider's)\n"
     "  --temperature T                   sampling temperature, 0 to 2\n"
     "  --max-tokens N                    cap on the reply's tokens\n"
     "  --passphrase-stdin                the keystore's passphrase is stdin's first line\n"
     "  --yes                             let the model run tools that are not read-only\n"
     "                                    (without it they are refused and the model is told)\n"
     "  --json                            print every event as one JSON line\n"
     "An agent with steps (--agent planner) runs each step as its own turn; ask shows\n"
     "each step's reply under a [step i of n: name] line. The tools the model calls\n"
     "are shown on stderr as they run.\n"},
    {"chat", cmd_chat,
     CLI_OPT_JSON | CLI_OPT_PLAIN | CLI_OPT_IDS | CLI_OPT_NO_MEMORY | CLI_OPT_MODEL | CLI_OPT_PASS,
     "chat [--plain] [OPTIONS]", "chat: the TUI on a terminal, else line by line",
     "On a terminal, the TUI: conversation, recalled-context and metrics panes (/help\n"
     "in it lists every key and command). With --plain, or when stdin or stdout is not\n"
     "a terminal (or TERM is dumb), the line chat: each input line is one message; the\n"
     "reply follows it. Its commands: /help, /quit, /new (forget the conversation),\n"
     "/memory on|off|default, /tenant ID, /user ID, /agent ID. Ctrl-C cancels a\n"
     "running reply; at the prompt it ends the chat.\n"
     "\n"
     "  --plain                           the line chat (for pipes and screen readers)\n"
     "  --tenant T, --user U, --agent A   who chats and who answers\n"
     "  --no-memory                       neither recall nor store memories\n"
     "  --provider P                      auto, offline, openai, anthropic or ollama\n"
     "  --model M                         the model (default: the provider's)\n"
     "  --temperature T                   sampling temperature, 0 to 2\n"
     "  --max-tokens N                    cap on the reply's tokens\n"
     "  --passphrase-stdin                the keystore's passphrase is stdin's first line\n"
     "  --json                            print every event as one JSON line\n"},
    {"config", cmd_config, CLI_OPT_JSON, "config [--json]",
     "print every setting, its effective value and where it came from",
     "Sources, strongest last: default < config.env < .env < environment < flags.\n"
     "Secrets are masked to their last 4 characters.\n"
     "\n"
     "  --json   one JSON object per setting: name, value, source, default\n"},
    {"conversations", cmd_conversations,
     CLI_OPT_JSON | CLI_OPT_TENANT | CLI_OPT_USER | CLI_OPT_LIMIT,
     "conversations [list|rm ID] [OPTIONS]", "list or remove the stored conversations",
     "  memchat conversations [--tenant T] [--user U] [--limit N] [--json]\n"
     "  memchat conversations rm ID [--tenant T]\n"
     "\n"
     "A conversation is the exchanges of one chat, or of asks joined with\n"
     "ask --continue / --conversation ID. The list is newest first: id, user, agent,\n"
     "turns, last update and title; without --user, every user of the tenant.\n"
     "rm removes one with its messages (the cost ledger keeps its amounts).\n"
     "\n"
     "  --limit N   at most N conversations\n"
     "  --json      one JSON object per conversation\n"},
    {"costs", cmd_costs, CLI_OPT_JSON | CLI_OPT_COSTS,
     "costs [--by GROUP] [--since DURATION] [--json]",
     "what the turns cost, grouped and summed from the ledger",
     "Sums every turn's tokens, USD, cache hits and minification savings over a\n"
     "window ending now. A turn whose model has no price is counted, never priced\n"
     "at 0: its group shows \"\xe2\x80\x94\" when no turn of it has a price.\n"
     "\n"
     "  --by GROUP         tenant (default), user, agent, model, day (UTC), memory\n"
     "                     (on against off), conversation (each conversation's turns\n"
     "                     with memory on against off) or none\n"
     "  --since DURATION   N, or N followed by s m h d w (default 30d); all for everything\n"
     "  --json             one JSON object per group (no total line)\n"},
    {"limits", cmd_limits, CLI_OPT_JSON | CLI_OPT_IDS,
     "limits [show|set|clear] [--tenant T] [--user U]",
     "per-tenant and per-user rate limits and budgets",
     "  memchat limits show [--tenant T] [--user U] [--json]\n"
     "  memchat limits set [--tenant T] [--user U] rpm=N tpm=N budget=USD\n"
     "  memchat limits clear [--tenant T] [--user U] [rpm] [tpm] [budget]\n"
     "\n"
     "Overrides of TENANT_/USER_RATE_LIMIT_RPM/TPM (per RATE_LIMIT_WINDOW_S) and\n"
     "TENANT_/USER_BUDGET_USD (per BUDGET_PERIOD), kept in the data file and applied\n"
     "to every later turn. Without --user, the tenant's own limits; 0 means\n"
     "unlimited or no budget. show lists configured, override and effective values.\n"},
    {"keys", cmd_keys, CLI_OPT_JSON | CLI_OPT_IDS | CLI_OPT_PASS | CLI_OPT_KEYS,
     "keys [set|list|rm|rotate|init] [OPTIONS]", "tenants' own API keys, encrypted at rest",
     "  memchat keys set --tenant T --provider P          the key from stdin or a prompt\n"
     "  memchat keys set --tenant T --provider P --command CMD\n"
     "                                                    CMD prints the key at each use\n"
     "  memchat keys list [--tenant T] [--json]           masked\n"
     "  memchat keys rm --tenant T --provider P\n"
     "  memchat keys rotate [--passphrase]                re-encrypt under a new master key\n"
     "  memchat keys init [--passphrase]                  create the keystore\n"
     "\n"
     "P is openai or anthropic (tool:NAME too; a tool's credentials are named:\n"
     "memchat tools add-credential). A tenant's key wins over OPENAI_API_KEY /\n"
     "ANTHROPIC_API_KEY for that tenant's turns and is sent only to the configured\n"
     "*_BASE_URL. The keystore (data dir) is encrypted with a master key:\n"
     "MEMCHAT_MASTER_KEY (base64 of 32 bytes), else master.key in the config dir\n"
     "(made on first use, mode 0600), unless init/rotate --passphrase chose a\n"
     "passphrase, asked at a prompt or read with --passphrase-stdin. Tool credentials\n"
     "are sealed under TOOL_CREDENTIALS_ENCRYPTION_KEY when it is set; list shows\n"
     "which key sealed each record, rotate keeps them under it.\n"
     "\n"
     "  --passphrase          init/rotate: protect the keystore with a passphrase\n"
     "  --passphrase-stdin    read passphrases from stdin's lines instead of a prompt\n"
     "  --json                list: one JSON object per key\n"},
    {"tools", cmd_tools, CLI_OPT_JSON | CLI_OPT_TENANT | CLI_OPT_PASS,
     "tools [list|add-credential|rm-credential] [OPTIONS]",
     "list the tools the model may call, and store their credentials",
     "  memchat tools list [--tenant T] [--json]\n"
     "  memchat tools add-credential TOOL NAME [--tenant T]   the value from stdin or a prompt\n"
     "  memchat tools rm-credential TOOL NAME [--tenant T]\n"
     "\n"
     "list shows every tool: the built-ins (memory_search, time_now), the shipped\n"
     "ones (the share dir's tools/) and your own JSON files in the config dir's\n"
     "tools/, which override them by name; whether each is read-only (a tool that is\n"
     "not asks before every call), where it comes from, and the state of each\n"
     "credential it declares for the tenant: set, missing, sealed (stored under a\n"
     "TOOL_CREDENTIALS_ENCRYPTION_KEY this run does not have) or ? (the keystore did\n"
     "not open). A malformed file is reported (file and field) on stderr; the others\n"
     "still load. Values are never shown.\n"
     "A credential NAME is the environment variable the tool receives it in (e.g.\n"
     "GITHUB_TOKEN), and only that tool: it is kept in the keystore, per tenant,\n"
     "sealed under TOOL_CREDENTIALS_ENCRYPTION_KEY (base64 of 32 bytes) when that is\n"
     "set, else under the master key (see memchat keys).\n"
     "\n"
     "  --tenant T            whose credentials (default MEMCHAT_TENANT)\n"
     "  --passphrase-stdin    the keystore's passphrase is stdin's first line\n"
     "  --json                list: one JSON object per tool\n"},
    {"memory", cmd_memory,
     CLI_OPT_JSON | CLI_OPT_IDS | CLI_OPT_META | CLI_OPT_K | CLI_OPT_METHOD | CLI_OPT_FILTER |
         CLI_OPT_ID | CLI_OPT_LIMIT | CLI_OPT_REBUILD | CLI_OPT_FROM | CLI_OPT_TO | CLI_OPT_BATCH |
         CLI_OPT_RESTART | CLI_OPT_FORCE,
     "memory ACTION [OPTIONS]", "add, search, forget, export and import a tenant's memories",
     "  memchat memory add [--tenant T] [--user U] [--agent A] [--meta KEY=VALUE]... [TEXT]\n"
     "  memchat memory search [--tenant T] [--user U] [--k N] [--method M] [--filter JSON]\n"
     "                        [--json] QUERY\n"
     "  memchat memory forget [--tenant T] (--id ID | --filter JSON)\n"
     "  memchat memory stats [--tenant T] [--json]\n"
     "  memchat memory export [--tenant T] [--user U] [--filter JSON]\n"
     "  memchat memory import [--tenant T] [FILE]\n"
     "  memchat memory history [--tenant T] [--limit N] [--json]\n"
     "  memchat memory index [--tenant T] [--rebuild] [--json]\n"
     "  memchat memory migrate --from STORE --to STORE [--tenant T] [--batch N] [--restart]\n"
     "                         [--json]\n"
     "  memchat memory reembed [--tenant T] [--batch N] [--force] [--json]\n"
     "\n"
     "add stores TEXT (or standard input, at most MEMCHAT_MAX_INPUT_BYTES) and prints\n"
     "its id; a text nearly the same as a stored one refreshes it instead, a text\n"
     "longer than MEMORY_MAX_BYTES is stored in chunks. --meta values become JSON:\n"
     "numbers and true/false as such, anything else a string; KEY is 1 to 64 of\n"
     "A-Z a-z 0-9 _ . - and filterable like a field.\n"
     "search ranks by similarity, mmr or hybrid (default MEMORY_RETRIEVAL_METHOD) and\n"
     "prints rank, score, age, user and text, or with --json one object per line:\n"
     "id, text, score, scores, user_id, agent, kind, created_at, metadata.\n"
     "Filters: {\"user_id\":{\"$eq\":\"u1\"}}, $ne $in $nin, $gt $gte $lt $lte (created_at\n"
     "in Unix ms, numbers in metadata), $and/$or; other keys are --meta keys.\n"
     "export prints JSON lines (with vectors); import reads them from FILE or standard\n"
     "input (a line needs only text), checks every line first and imports nothing\n"
     "when one is bad, then imports 1,000 lines per transaction. history lists every\n"
     "add, refresh and delete, newest first. Without --tenant: MEMCHAT_TENANT;\n"
     "stats without --tenant covers every tenant. index shows how the tenant's vectors\n"
     "are searched: an exact scan, or above MEMORY_HNSW_THRESHOLD memories an HNSW\n"
     "graph kept in index/ of the data dir; it builds the graph when it is missing or\n"
     "unusable, replays the changes another process made since it was saved, and\n"
     "saves it (a progress bar on a terminal). import ends the same way.\n"
     "migrate copies the tenant's memories, vectors and all, from one vector store to\n"
     "another (local, pgvector, qdrant, pinecone, weaviate; each configured by its\n"
     "variables); the source is left as it was. reembed rebuilds the tenant's\n"
     "namespace with the configured embedder after EMBEDDINGS_PROVIDER, _MODEL or\n"
     "_DIMENSION changed: it copies the memories into the data file, embeds them,\n"
     "then replaces the namespace. Both show progress and save a checkpoint after\n"
     "every page: after Ctrl-C, a server failure or a crash, the same command\n"
     "resumes where it stopped.\n"
     "\n"
     "  --k N              memories to return (default MEMORY_RETRIEVAL_K)\n"
     "  --method M         similarity, mmr or hybrid\n"
     "  --filter JSON      only memories matching the filter\n"
     "  --id ID            forget: the memory with this id\n"
     "  --limit N          history: the N newest entries\n"
     "  --rebuild          index: build the graph from the rows, whatever exists\n"
     "  --from, --to STORE migrate: the source and target vector stores\n"
     "  --batch N          migrate, reembed: memories per page and checkpoint (256)\n"
     "  --restart          migrate: drop an unfinished migrate to another store\n"
     "  --force            reembed: even when the embedder is the namespace's own\n"
     "  --json             one JSON object per line\n"},
    {"rollout", cmd_rollout, CLI_OPT_JSON | CLI_OPT_COSTS, "rollout ACTION [ARGS]",
     "turn memory on or off per tenant, and watch the figures",
     "  memchat rollout status [--since DURATION] [--json]\n"
     "  memchat rollout global on|off\n"
     "  memchat rollout enable|disable TENANT\n"
     "  memchat rollout reset TENANT\n"
     "  memchat rollout percent N|off\n"
     "\n"
     "Is memory on for a turn? Strongest first: the session (--no-memory, /memory),\n"
     "the agent's memory setting, the tenant's own setting (enable/disable; reset\n"
     "clears it), the percentage (a tenant is in when its hash bucket, 0 to 99, is\n"
     "below N), the global setting, then RAG_ENABLED. Each turn's rollout event\n"
     "names the rule that decided. status prints the settings and, per tenant, its\n"
     "figures against the rollout targets, from the turn metrics and the ledger.\n"
     "\n"
     "  --since DURATION   the figures' window: N followed by s m h d w (default 7d),\n"
     "                     or all\n"
     "  --json             status as JSON\n"},
    {"doctor", cmd_doctor, CLI_OPT_JSON | CLI_OPT_TENANT, "doctor [--tenant T] [--json]",
     "check every configured backend and say how to fix what fails",
     "Checks, in order: the settings, the data file (quick_check), the model\n"
     "provider (its models list, with the key the tenant's turns would send), the\n"
     "embedder (one short text embedded), the vector store (the server, a dimension\n"
     "it imposes, and the tenant's namespace against the configured embedder), the\n"
     "keystore and the Opik export. Each line is ok, warn, FAIL or skip, with the\n"
     "fix for a failure. Exits 0 when nothing failed, else 2 for a setting, 3 for a\n"
     "server, 1 for the data file. Keys are sent to their servers, never shown.\n"
     "\n"
     "  --tenant T         whose keys and memories are checked (default MEMCHAT_TENANT)\n"
     "  --json             the checks as one result event\n"},
    {"purge", cmd_purge, CLI_OPT_JSON | CLI_OPT_TENANT | CLI_OPT_USER | CLI_OPT_YES,
     "purge --tenant T [--user U] [--yes]", "remove everything stored about a tenant or user",
     "Removes the tenant's (with --user, that user's) memories, conversations,\n"
     "memory history, pending stores, traces and cached replies. The cost ledger\n"
     "keeps its amounts, without text. Asks for confirmation on a terminal; without\n"
     "one, --yes is required. Prints how many of each were removed.\n"
     "\n"
     "  --tenant T   the tenant (required: never the configured default)\n"
     "  --user U     only this user's data\n"
     "  --yes        do not ask\n"
     "  --json       the counts as one JSON object\n"},
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
        fprintf(f, "  %-14s %s\n", verbs[i].name, verbs[i].summary);
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
    unsigned seen; /* enum cli_opt_bit of options given */
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

/* The verbs' own options that take a value, kept as given for the verb. */
static const struct {
    const char *opt;
    unsigned bit;
} value_opts[] = {
    {"--meta", CLI_OPT_META},         {"--k", CLI_OPT_K},       {"--method", CLI_OPT_METHOD},
    {"--filter", CLI_OPT_FILTER},     {"--id", CLI_OPT_ID},     {"--limit", CLI_OPT_LIMIT},
    {"--conversation", CLI_OPT_CONV}, {"--from", CLI_OPT_FROM}, {"--to", CLI_OPT_TO},
    {"--batch", CLI_OPT_BATCH},
};
static const size_t n_value_opts = sizeof value_opts / sizeof value_opts[0];

/* The index of a's option in value_opts; n_value_opts when none. */
static size_t cli_value_opt(const char *a)
{
    size_t k = 0;
    while (k < n_value_opts && !cli_opt_is(a, value_opts[k].opt))
        k++;
    return k;
}

/* Where the value of a single-valued option of value_opts goes. */
static const char **cli_value_slot(struct cli_opts *o, unsigned bit)
{
    switch (bit) {
    case CLI_OPT_K:
        return &o->k;
    case CLI_OPT_METHOD:
        return &o->method;
    case CLI_OPT_FILTER:
        return &o->filter;
    case CLI_OPT_ID:
        return &o->id;
    case CLI_OPT_LIMIT:
        return &o->limit;
    case CLI_OPT_FROM:
        return &o->from;
    case CLI_OPT_TO:
        return &o->to;
    case CLI_OPT_BATCH:
        return &o->batch;
    default:
        return &o->conversation;
    }
}

static int cli_parse(int argc, char **argv, struct cli_parse *p)
{
    /* Options that are shorthands for --set NAME=VALUE, and their bit. */
    static const struct {
        const char *opt, *var;
        unsigned bit;
    } set_opts[] = {
        {"--tenant", "MEMCHAT_TENANT", CLI_OPT_TENANT},
        {"--user", "MEMCHAT_USER", CLI_OPT_USER},
        {"--agent", "MEMCHAT_AGENT", CLI_OPT_AGENT},
        {"--provider", "MEMCHAT_PROVIDER", CLI_OPT_MODEL},
        {"--model", "MEMCHAT_MODEL", CLI_OPT_MODEL},
        {"--temperature", "MEMCHAT_TEMPERATURE", CLI_OPT_MODEL},
        {"--max-tokens", "MEMCHAT_MAX_TOKENS", CLI_OPT_MODEL},
    };
    const size_t n_set_opts = sizeof set_opts / sizeof set_opts[0];
    bool options_done = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        size_t k;
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
            p->seen |= CLI_OPT_JSON;
        } else if (strcmp(a, "--plain") == 0) {
            p->o.plain = true;
            p->seen |= CLI_OPT_PLAIN;
        } else if (strcmp(a, "--no-memory") == 0) {
            p->o.memory = MC_MEMORY_OFF;
            p->seen |= CLI_OPT_NO_MEMORY;
        } else if (cli_opt_is(a, "--set")) {
            const char *v = cli_opt_value(argc, argv, &i, "--set");
            if (v == NULL || strchr(v, '=') == NULL || v[0] == '=') {
                session_error("--set needs NAME=VALUE");
                return MC_EXIT_USAGE;
            }
            cli_flag_add(p, xstrdup(v));
        } else if (strcmp(a, "--passphrase-stdin") == 0) {
            p->o.pass_stdin = true;
            p->seen |= CLI_OPT_PASS;
        } else if (strcmp(a, "--passphrase") == 0) {
            p->o.passphrase = true;
            p->seen |= CLI_OPT_KEYS;
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
            p->seen |= CLI_OPT_KEYS;
        } else if (strcmp(a, "--rebuild") == 0) {
            p->o.rebuild = true;
            p->seen |= CLI_OPT_REBUILD;
        } else if (strcmp(a, "--restart") == 0) {
            p->o.restart = true;
            p->seen |= CLI_OPT_RESTART;
        } else if (strcmp(a, "--force") == 0) {
            p->o.force = true;
            p->seen |= CLI_OPT_FORCE;
        } else if (strcmp(a, "--yes") == 0) {
            p->o.yes = true;
            p->seen |= CLI_OPT_YES;
        } else if (strcmp(a, "--continue") == 0) {
            p->o.continue_latest = true;
            p->seen |= CLI_OPT_CONV;
        } else if (strcmp(a, "--compare") == 0) {
            p->o.compare = true;
            p->seen |= CLI_OPT_COMPARE;
        } else if ((k = cli_value_opt(a)) < n_value_opts) {
            const char *v = cli_opt_value(argc, argv, &i, value_opts[k].opt);
            if (v == NULL) {
                session_error("%s needs a value", value_opts[k].opt);
                return MC_EXIT_USAGE;
            }
            if (value_opts[k].bit == CLI_OPT_META) {
                p->o.meta = xreallocarray(p->o.meta, p->o.n_meta + 1, sizeof *p->o.meta);
                p->o.meta[p->o.n_meta++] = v;
            } else {
                const char **slot = cli_value_slot(&p->o, value_opts[k].bit);
                if (*slot != NULL) {
                    session_error("%s given twice", value_opts[k].opt);
                    return MC_EXIT_USAGE;
                }
                *slot = v;
            }
            p->seen |= value_opts[k].bit;
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
            p->seen |= CLI_OPT_COSTS;
        } else {
            k = 0;
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
    xfree(p->o.meta);
}

/* What each enum cli_opt_bit is called in messages, in bit order. */
static const char *const option_names[CLI_OPT__COUNT] = {
    "--json",
    "--plain",
    "--tenant",
    "--user",
    "--agent",
    "--no-memory",
    "--provider/--model/--temperature/--max-tokens",
    "--by/--since",
    "--passphrase-stdin",
    "--provider/--command/--passphrase (keys only)",
    "--meta",
    "--k",
    "--method",
    "--filter",
    "--id",
    "--limit",
    "--yes",
    "--continue/--conversation",
    "--compare",
    "--rebuild",
    "--from",
    "--to",
    "--batch",
    "--restart",
    "--force",
};

int cli_refuse_opts(const char *what, unsigned allowed, unsigned seen)
{
    unsigned extra = seen & ~allowed;
    for (unsigned bit = 0; extra != 0; bit++, extra >>= 1)
        if (extra & 1) {
            /* The help is the verb's: "memory" for "memory add". */
            session_error("memchat %s does not take %s (see memchat %.*s --help)", what,
                          bit < CLI_OPT__COUNT ? option_names[bit] : "that option",
                          (int)strcspn(what, " "), what);
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
    if (v == NULL) /* No verb: the chat, the TUI on a terminal. */
        v = verb_find("chat");
    if (v == NULL)
        return MC_EXIT_RUNTIME; /* the table always has chat */
    int rc = cli_refuse_opts(v->name, v->opts, p->seen);
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
    p->o.seen = p->seen;
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
