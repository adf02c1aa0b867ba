/*
 * memchat tools: the tools the model may call (tools/registry.h) and their
 * credentials in the keystore.
 *
 *   memchat tools list [--tenant T] [--json]
 *   memchat tools add-credential TOOL NAME [--tenant T]
 *   memchat tools rm-credential TOOL NAME [--tenant T]
 *
 * list shows every tool: the built-ins (time_now from tools/, and
 * memory_search, which client/ registers for turns and which this verb
 * registers the same way, so the list is what a turn offers), the shipped
 * files and the user's own, each with whether the credentials it declares
 * are stored for the tenant: names and states only, never a value. Reading
 * tool files has no side effects, so, as `agents`, the verb loads the
 * registry itself: a malformed file is a warning on stderr naming the file
 * and the field, the other tools are still listed and the exit code stays
 * 0. A keystore that cannot be opened is a warning too (the states show
 * "?"): a listing should not hide the tools behind a key problem.
 *
 * A credential is the keystore record (tenant, "tool:TOOL", NAME), NAME
 * being the environment variable the tool receives it in. It is sealed
 * under TOOL_CREDENTIALS_ENCRYPTION_KEY when that is set, else under the
 * master key (store/keystore.h). The value comes from stdin when stdin is
 * not a terminal, else from a prompt with echo off, and is written through
 * the same locked, atomic path as `memchat keys` (cli/secret.h).
 */
#include "config.h"

#include <cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/secret.h"
#include "cli/session.h"
#include "client/turn.h"
#include "config/config.h"
#include "config/vars.h"
#include "memchat/error.h"
#include "store/keystore.h"
#include "tools/registry.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/utf8.h"

#define TOOLS_COL_RO     9 /* READ-ONLY */
#define TOOLS_COL_SOURCE 8 /* shipped* */

/* Whether one credential a tool declares is stored for the tenant. */
enum cred_state {
    CRED_UNKNOWN, /* the keystore could not be opened */
    CRED_MISSING,
    CRED_SET,
    CRED_SEALED, /* stored, but sealed under a TOOL_CREDENTIALS_ENCRYPTION_KEY not given here */
};

static const char *cred_state_name(enum cred_state s)
{
    switch (s) {
    case CRED_MISSING:
        return "missing";
    case CRED_SET:
        return "set";
    case CRED_SEALED:
        return "sealed";
    case CRED_UNKNOWN:
        break;
    }
    return "?";
}

/* The tool credentials stored for one tenant: (provider, name, openable). */
struct stored {
    const char *tenant;
    bool known; /* false: the keystore could not be opened */
    struct stored_cred {
        char *provider, *name;
        bool sealed;
    } * v;
    size_t n;
};

static int stored_add(void *ud, const struct keystore_entry *e)
{
    struct stored *s = ud;
    if (strcmp(e->tenant, s->tenant) != 0 ||
        strncmp(e->provider, KEYSTORE_TOOL_PREFIX, strlen(KEYSTORE_TOOL_PREFIX)) != 0)
        return 0;
    s->v = xreallocarray(s->v, s->n + 1, sizeof *s->v);
    s->v[s->n++] = (struct stored_cred){
        .provider = xstrdup(e->provider),
        .name = xstrdup(e->key_id),
        .sealed = e->masked == NULL,
    };
    return 0;
}

static void stored_free(struct stored *s)
{
    for (size_t i = 0; i < s->n; i++) {
        xfree(s->v[i].provider);
        xfree(s->v[i].name);
    }
    xfree(s->v);
}

static enum cred_state stored_state(const struct stored *s, const char *tool, const char *name)
{
    if (!s->known)
        return CRED_UNKNOWN;
    size_t plen = strlen(KEYSTORE_TOOL_PREFIX);
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i].provider + plen, tool) == 0 && strcmp(s->v[i].name, name) == 0)
            return s->v[i].sealed ? CRED_SEALED : CRED_SET;
    return CRED_MISSING;
}

/* The registry as a turn sees it: the files, time_now and memory_search.
 * *warnings (may be NULL) points into the registry. NULL after saying why
 * when a tools directory exists but cannot be read. */
static struct tool_registry *tools_load(const struct config *cfg, const char **warnings)
{
    struct tool_registry *r = tool_registry_new(config_str(cfg, CFG_MEMCHAT_SHARE_DIR),
                                                config_str(cfg, CFG_MEMCHAT_CONFIG_DIR), 0);
    char err[1024] = "";
    if (client_turn_tools_register(r, err, sizeof err) != 0)
        session_error("tools: warning: %s", err); /* a broken constant; the rest still lists */
    if (tool_registry_refresh(r, clock_mono_ms(), true, err, sizeof err) != 0) {
        session_error("tools: %s", err);
        tool_registry_free(r);
        return NULL;
    }
    *warnings = tool_registry_warnings(r);
    return r;
}

/* Reads the tenant's stored tool credentials into s; a keystore that
 * cannot be opened leaves s->known false after a warning. */
static void tools_read_stored(const struct config *cfg, const struct cli_opts *o, struct stored *s)
{
    struct secret_store st;
    /* Every failure here is a warning: the list goes on without states. */
    int rc = secret_store_init(&st, cfg, "tools", o->pass_stdin, true);
    bool none = false;
    if (rc == MC_EXIT_OK)
        rc = secret_store_open(&st, false, &none);
    char err[1024] = "";
    if (rc == MC_EXIT_OK && !none && keystore_list(st.ks, stored_add, s, err, sizeof err) != 0) {
        session_error("tools: warning: %s", err);
        rc = MC_EXIT_RUNTIME;
    }
    s->known = rc == MC_EXIT_OK;
    secret_store_fini(&st);
}

/* The CREDENTIALS cell: "NAME:state ..." or "-". */
static void tools_cred_cell(struct buf *out, const struct tool_def *t, const struct stored *s)
{
    if (t->n_credentials == 0) {
        buf_append(out, "-", 1);
        return;
    }
    for (size_t i = 0; i < t->n_credentials; i++)
        buf_printf(out, "%s%s:%s", i ? " " : "", t->credentials[i],
                   cred_state_name(stored_state(s, t->name, t->credentials[i])));
}

static void tools_print_json(const struct tool_registry *r, const struct stored *s)
{
    for (size_t i = 0; i < tool_registry_count(r); i++) {
        const struct tool_def *t = tool_registry_at(r, i);
        cJSON *o = tool_def_to_json(t);
        cJSON *states = o != NULL ? cJSON_CreateObject() : NULL;
        for (size_t c = 0; states != NULL && c < t->n_credentials; c++) {
            enum cred_state st = stored_state(s, t->name, t->credentials[c]);
            if (st == CRED_UNKNOWN)
                cJSON_AddNullToObject(states, t->credentials[c]);
            else
                cJSON_AddStringToObject(states, t->credentials[c], cred_state_name(st));
        }
        if (states != NULL) {
            cJSON_AddStringToObject(o, "tenant", s->tenant);
            cJSON_AddItemToObject(o, "credentials_state", states);
        }
        char *line = states != NULL ? cJSON_PrintUnformatted(o) : NULL;
        if (line != NULL)
            puts(line);
        else
            session_error("tools: out of memory printing tool %s", t->name);
        cJSON_free(line);
        cJSON_Delete(o);
    }
}

static void tools_print_table(const struct tool_registry *r, const struct stored *s)
{
    size_t name_cols = 4, cred_cols = 11; /* "NAME", "CREDENTIALS" */
    bool any_override = false;
    for (size_t i = 0; i < tool_registry_count(r); i++) {
        const struct tool_def *t = tool_registry_at(r, i);
        struct buf cell;
        buf_init(&cell, 1 << 16);
        tools_cred_cell(&cell, t, s);
        /* Names are ASCII (the registry checks them): one column a byte. */
        name_cols = strlen(t->name) > name_cols ? strlen(t->name) : name_cols;
        cred_cols = cell.len > cred_cols ? cell.len : cred_cols;
        any_override = any_override || t->overrides;
        buf_free(&cell);
    }
    printf("%-*s  %-*s  %-*s  %-*s  %s\n", (int)name_cols, "NAME", TOOLS_COL_RO, "READ-ONLY",
           TOOLS_COL_SOURCE, "SOURCE", (int)cred_cols, "CREDENTIALS", "PATH");
    for (size_t i = 0; i < tool_registry_count(r); i++) {
        const struct tool_def *t = tool_registry_at(r, i);
        char source[16];
        snprintf(source, sizeof source, "%s%s", tool_source_name(t->source),
                 t->overrides ? "*" : "");
        struct buf cell, line;
        buf_init(&cell, 1 << 16);
        buf_init(&line, 1 << 16);
        tools_cred_cell(&cell, t, s);
        buf_printf(&line, "%-*s  %-*s  %-*s  %-*s  ", (int)name_cols, t->name, TOOLS_COL_RO,
                   t->read_only ? "yes" : "no", TOOLS_COL_SOURCE, source, (int)cred_cols,
                   buf_cstr(&cell));
        /* The whole path: its end (the file name) is what tells tools apart. */
        cli_put_cell(&line, t->path != NULL ? t->path : "", SIZE_MAX);
        puts(buf_cstr(&line));
        buf_free(&cell);
        buf_free(&line);
    }
    if (any_override)
        puts("* your file in the config dir replaces the shipped tool of the same name");
}

static int tools_cmd_list(const struct config *cfg, const struct cli_opts *o)
{
    if (o->n_args > 1) {
        session_error("tools list takes no arguments (got '%s'; memchat tools --help)", o->args[1]);
        return MC_EXIT_USAGE;
    }
    const char *warnings = NULL;
    struct tool_registry *r = tools_load(cfg, &warnings);
    if (r == NULL)
        return MC_EXIT_RUNTIME;
    session_print_lines("tools", warnings);
    if (!config_bool(cfg, CFG_TOOL_REGISTRY_ENABLED))
        session_error("tools: TOOL_REGISTRY_ENABLED is false: turns offer none of these tools");
    struct stored s = {.tenant = config_str(cfg, CFG_MEMCHAT_TENANT)};
    bool needs = false;
    for (size_t i = 0; i < tool_registry_count(r) && !needs; i++)
        needs = tool_registry_at(r, i)->n_credentials > 0;
    if (needs)
        tools_read_stored(cfg, o, &s);
    else
        s.known = true; /* nothing to look up: no keystore, no passphrase prompt */
    if (o->json)
        tools_print_json(r, &s);
    else
        tools_print_table(r, &s);
    stored_free(&s);
    tool_registry_free(r);
    return fflush(stdout) == 0 ? MC_EXIT_OK : MC_EXIT_RUNTIME;
}

/* Prints s (from the command line) for a message: sanitised, cut. */
static void tools_quote(char *out, size_t outlen, const char *s)
{
    struct buf clean;
    buf_init(&clean, 1024);
    utf8_sanitize_terminal(&clean, s, strnlen(s, 200));
    snprintf(out, outlen, "%.80s", buf_cstr(&clean));
    buf_free(&clean);
}

/* TOOL and NAME of add-credential and rm-credential: exactly two valid
 * arguments after the action. */
static int tools_cred_args(const struct cli_opts *o, const char **tool, const char **name)
{
    const char *act = o->args[0];
    if (o->n_args != 3) {
        session_error("usage: memchat tools %s TOOL NAME [--tenant T]", act);
        return MC_EXIT_USAGE;
    }
    char q[128];
    *tool = o->args[1];
    *name = o->args[2];
    if (!tool_name_valid(*tool)) {
        tools_quote(q, sizeof q, *tool);
        session_error("tools: invalid tool name '%s' (accepted: 1 to 64 of A-Z a-z 0-9 _ -)", q);
        return MC_EXIT_USAGE;
    }
    if (!tool_credential_name_valid(*name)) {
        tools_quote(q, sizeof q, *name);
        session_error("tools: invalid credential name '%s': it is the environment variable the "
                      "tool receives it in (accepted: [A-Z_][A-Z0-9_]{0,63}, e.g. GITHUB_TOKEN)",
                      q);
        return MC_EXIT_USAGE;
    }
    return MC_EXIT_OK;
}

/* Warns (never refuses: the file may come later, or be broken now) when
 * no tool is called tool, or it does not declare name. */
static void tools_check_declared(const struct config *cfg, const char *tool, const char *name)
{
    const char *warnings = NULL;
    struct tool_registry *r = tools_load(cfg, &warnings);
    if (r == NULL)
        return;
    const struct tool_def *t = tool_registry_find(r, tool);
    bool declared = false;
    for (size_t i = 0; t != NULL && i < t->n_credentials; i++)
        declared = declared || strcmp(t->credentials[i], name) == 0;
    if (t == NULL)
        session_error("tools: warning: no tool named %s is known (memchat tools list shows the "
                      "tools, and the files that failed to load)",
                      tool);
    else if (!declared) {
        struct buf list;
        buf_init(&list, 1 << 12);
        for (size_t i = 0; i < t->n_credentials; i++)
            buf_printf(&list, "%s%s", i ? ", " : "", t->credentials[i]);
        session_error("tools: warning: tool %s does not declare the credential %s (it declares "
                      "%s), so it will not receive it",
                      tool, name, list.len > 0 ? buf_cstr(&list) : "none");
        buf_free(&list);
    }
    tool_registry_free(r);
}

/* Says under which key a new credential was sealed, and warns when that
 * is the master key while others are under TOOL_CREDENTIALS_ENCRYPTION_KEY
 * (the variable is missing in this environment). */
static void tools_report_stored(const struct secret_store *st, const char *tool, const char *name,
                                const char *tenant)
{
    bool tool_key = keystore_tool_key_state(st->ks) == KEYSTORE_TOOL_KEY_OK;
    fprintf(stderr,
            "memchat: stored credential %s of tool %s for tenant %s in %s (sealed under %s)\n",
            name, tool, tenant, st->path, tool_key ? KEYSTORE_TOOL_KEY_NAME : "the master key");
    if (!tool_key && keystore_count_sealed(st->ks, KEYSTORE_SEAL_TOOL) > 0)
        session_error("tools: warning: " KEYSTORE_TOOL_KEY_NAME " is not set, so this credential "
                      "is sealed under the master key, while other tool credentials of the "
                      "keystore are sealed under it");
}

static int tools_cmd_add(const struct config *cfg, const struct cli_opts *o)
{
    const char *tool, *name;
    int rc = tools_cred_args(o, &tool, &name);
    if (rc != MC_EXIT_OK)
        return rc;
    const char *tenant = config_str(cfg, CFG_MEMCHAT_TENANT);
    struct secret_store st;
    rc = secret_store_init(&st, cfg, "tools", o->pass_stdin, false);
    if (rc == MC_EXIT_OK)
        tools_check_declared(cfg, tool, name);
    struct secret value = {0};
    char prompt[256];
    snprintf(prompt, sizeof prompt, "credential %s of tool %s for tenant %s: ", name, tool, tenant);
    if (rc == MC_EXIT_OK)
        rc = secret_store_read_value(&st, "the credential", prompt, &value);
    bool none = false;
    if (rc == MC_EXIT_OK)
        rc = secret_store_lock(&st);
    if (rc == MC_EXIT_OK)
        rc = secret_store_open(&st, true, &none);
    char *provider = xasprintf("%s%s", KEYSTORE_TOOL_PREFIX, tool);
    char err[1024] = "";
    if (rc == MC_EXIT_OK &&
        keystore_set(st.ks, tenant, provider, name, value.value, value.len, err, sizeof err) != 0) {
        session_error("tools: %s", err);
        rc = MC_EXIT_USAGE;
    }
    secret_free(&value);
    xfree(provider);
    if (rc == MC_EXIT_OK)
        rc = secret_store_save(&st);
    if (rc == MC_EXIT_OK)
        tools_report_stored(&st, tool, name, tenant);
    secret_store_fini(&st);
    return rc;
}

static int tools_cmd_rm(const struct config *cfg, const struct cli_opts *o)
{
    const char *tool, *name;
    int rc = tools_cred_args(o, &tool, &name);
    if (rc != MC_EXIT_OK)
        return rc;
    const char *tenant = config_str(cfg, CFG_MEMCHAT_TENANT);
    struct secret_store st;
    bool none = false;
    rc = secret_store_init(&st, cfg, "tools", o->pass_stdin, false);
    if (rc == MC_EXIT_OK)
        rc = secret_store_lock(&st);
    if (rc == MC_EXIT_OK)
        rc = secret_store_open(&st, false, &none);
    char *provider = xasprintf("%s%s", KEYSTORE_TOOL_PREFIX, tool);
    if (rc == MC_EXIT_OK && (none || keystore_rm(st.ks, tenant, provider, name) != 0)) {
        session_error("tools: tenant %s has no credential %s for tool %s", tenant, name, tool);
        rc = MC_EXIT_RUNTIME;
    } else if (rc == MC_EXIT_OK) {
        rc = secret_store_save(&st);
        if (rc == MC_EXIT_OK)
            fprintf(stderr, "memchat: removed credential %s of tool %s for tenant %s\n", name, tool,
                    tenant);
    }
    xfree(provider);
    secret_store_fini(&st);
    return rc;
}

int cmd_tools(const struct config *cfg, const struct cli_opts *o)
{
    static const struct {
        const char *name;
        int (*run)(const struct config *cfg, const struct cli_opts *o);
        unsigned opts;
    } subs[] = {
        {"list", tools_cmd_list, CLI_OPT_JSON | CLI_OPT_TENANT | CLI_OPT_PASS},
        {"add-credential", tools_cmd_add, CLI_OPT_TENANT | CLI_OPT_PASS},
        {"rm-credential", tools_cmd_rm, CLI_OPT_TENANT | CLI_OPT_PASS},
    };
    const char *sub = o->n_args > 0 ? o->args[0] : "list";
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        if (strcmp(sub, subs[i].name) != 0)
            continue;
        char what[32];
        snprintf(what, sizeof what, "tools %s", sub);
        int rc = cli_refuse_opts(what, subs[i].opts, o->seen);
        return rc == MC_EXIT_OK ? subs[i].run(cfg, o) : rc;
    }
    char q[128];
    tools_quote(q, sizeof q, sub);
    session_error("tools: unknown command '%s' (list, add-credential or rm-credential)", q);
    return MC_EXIT_USAGE;
}
