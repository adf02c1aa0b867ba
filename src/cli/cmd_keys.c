/*
 * memchat keys: tenants' own API keys and tool credentials, in the
 * encrypted keystore of the data dir (store/keystore.h). Tool credentials
 * are managed by name with `memchat tools` (cli/cmd_tools.c); here they
 * are listed, with the key that sealed each, and rotated with the rest.
 *
 *   memchat keys set    --tenant T --provider P [--command CMD]
 *   memchat keys list   [--tenant T] [--json]
 *   memchat keys rm     --tenant T --provider P
 *   memchat keys rotate [--passphrase] [--passphrase-stdin]
 *   memchat keys init   [--passphrase] [--passphrase-stdin]
 *
 * The keystore is not the data file (no engine job owns it), so the verb
 * writes it itself (cli/secret.h's secret_store, shared with `tools`),
 * under an exclusive lock on data_dir/keystore.lock so that two `keys set`
 * at once never lose one another's record; every write replaces the file
 * atomically. A key is read from stdin when stdin is not a
 * terminal, else at a prompt with echo off; it never appears in arguments
 * (which other users can read in /proc), output, logs or messages.
 */
#include "config.h"

#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "cli/cli.h"
#include "cli/secret.h"
#include "cli/session.h"
#include "client/keys.h"
#include "config/config.h"
#include "config/vars.h"
#include "memchat/error.h"
#include "store/keystore.h"
#include "store/masterkey.h"
#include "util/alloc.h"
#include "util/ident.h"
#include "util/paths.h"

/* One run of the verb: the keystore (cli/secret.h) and the options. */
struct kctx {
    struct secret_store st;
    const struct cli_opts *o;
};

/* --provider: a model provider that takes keys, or tool:NAME. */
static int keys_check_provider(const char *p)
{
    if (p == NULL) {
        session_error("keys: --provider is required (openai, anthropic or tool:NAME)");
        return MC_EXIT_USAGE;
    }
    if (strcmp(p, "openai") == 0 || strcmp(p, "anthropic") == 0)
        return MC_EXIT_OK;
    if (strncmp(p, "tool:", 5) == 0 && ident_valid(p + 5) && strlen(p) <= KEYSTORE_PROVIDER_MAX)
        return MC_EXIT_OK;
    session_error("keys: --provider %s: accepted are openai, anthropic and tool:NAME (NAME of "
                  "letters, digits, _ and -); ollama and offline take no key",
                  ident_valid(p) ? p : "(invalid)");
    return MC_EXIT_USAGE;
}

/* The tenant: --tenant or MEMCHAT_TENANT. */
static const char *keys_tenant(const struct kctx *c)
{
    return config_str(c->st.cfg, CFG_MEMCHAT_TENANT);
}

/* What `keys set` stores: the command, or the key from stdin or a prompt. */
static int keys_read_value(const struct kctx *c, const char *provider, struct secret *out)
{
    const char *cmd = c->o->key_command;
    if (cmd != NULL) {
        if (cmd[0] == '\0') {
            session_error("keys: --command is empty");
            return MC_EXIT_USAGE;
        }
        out->len = strlen(cmd);
        out->value = xsecure_dup(cmd, out->len);
        return MC_EXIT_OK;
    }
    char prompt[160];
    snprintf(prompt, sizeof prompt, "API key of tenant %s for %s: ", keys_tenant(c), provider);
    return secret_store_read_value(&c->st, "the key", prompt, out);
}

static int keys_cmd_set(struct kctx *c)
{
    const char *provider = c->o->key_provider;
    int rc = keys_check_provider(provider);
    if (rc != MC_EXIT_OK)
        return rc;
    struct secret value = {0};
    rc = keys_read_value(c, provider, &value);
    if (rc != MC_EXIT_OK)
        return rc;
    bool none = false;
    rc = secret_store_lock(&c->st);
    if (rc == MC_EXIT_OK)
        rc = secret_store_open(&c->st, true, &none);
    const char *id = c->o->key_command != NULL ? KEYS_ID_COMMAND : KEYS_ID_KEY;
    const char *other = c->o->key_command != NULL ? KEYS_ID_KEY : KEYS_ID_COMMAND;
    char err[512] = "";
    if (rc == MC_EXIT_OK && keystore_set(c->st.ks, keys_tenant(c), provider, id, value.value,
                                         value.len, err, sizeof err) != 0) {
        session_error("keys: %s", err);
        rc = MC_EXIT_USAGE;
    }
    secret_free(&value);
    if (rc != MC_EXIT_OK)
        return rc;
    keystore_rm(c->st.ks, keys_tenant(c), provider, other);
    rc = secret_store_save(&c->st);
    if (rc == MC_EXIT_OK)
        fprintf(stderr, "memchat: stored the %s of tenant %s for %s in %s\n",
                c->o->key_command != NULL ? "key command" : "key", keys_tenant(c), provider,
                c->st.path);
    return rc;
}

static int keys_cmd_rm(struct kctx *c)
{
    const char *provider = c->o->key_provider;
    int rc = keys_check_provider(provider);
    bool none = false;
    if (rc == MC_EXIT_OK)
        rc = secret_store_lock(&c->st);
    if (rc == MC_EXIT_OK)
        rc = secret_store_open(&c->st, false, &none);
    if (rc != MC_EXIT_OK)
        return rc;
    int removed = 0;
    if (!none) {
        removed += keystore_rm(c->st.ks, keys_tenant(c), provider, KEYS_ID_KEY) == 0;
        removed += keystore_rm(c->st.ks, keys_tenant(c), provider, KEYS_ID_COMMAND) == 0;
    }
    if (removed == 0) {
        session_error("keys: tenant %s has no key for %s", keys_tenant(c), provider);
        return MC_EXIT_RUNTIME;
    }
    rc = secret_store_save(&c->st);
    if (rc == MC_EXIT_OK)
        fprintf(stderr, "memchat: removed the key of tenant %s for %s\n", keys_tenant(c), provider);
    return rc;
}

struct keys_list_state {
    const char *only_tenant; /* NULL: every tenant */
    bool json;
    size_t shown;
};

/* A row of keys list: kind "key", "command" or (a tool credential stored
 * by `tools add-credential`) "credential" with its name; sealed "master"
 * or "tool"; the key masked, "(command)", or "(sealed)" when it is sealed
 * under a TOOL_CREDENTIALS_ENCRYPTION_KEY this run does not have. */
static int keys_list_row(void *ud, const struct keystore_entry *e)
{
    struct keys_list_state *st = ud;
    if (st->only_tenant != NULL && strcmp(st->only_tenant, e->tenant) != 0)
        return 0;
    bool command = strcmp(e->key_id, KEYS_ID_COMMAND) == 0;
    bool key = strcmp(e->key_id, KEYS_ID_KEY) == 0;
    /* A command is not shown: it may hold a token of its own. */
    const char *shown = command ? "(command)" : e->masked != NULL ? e->masked : "(sealed)";
    const char *kind = command ? "command" : key ? "key" : "credential";
    const char *sealed = e->sealed == KEYSTORE_SEAL_TOOL ? "tool" : "master";
    if (st->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "tenant", e->tenant);
        cJSON_AddStringToObject(o, "provider", e->provider);
        cJSON_AddStringToObject(o, "kind", kind);
        if (!command && !key)
            cJSON_AddStringToObject(o, "name", e->key_id);
        cJSON_AddStringToObject(o, "sealed", sealed);
        cJSON_AddStringToObject(o, "masked", shown);
        char *line = cJSON_PrintUnformatted(o);
        if (line != NULL)
            printf("%s\n", line);
        cJSON_free(line);
        cJSON_Delete(o);
    } else {
        if (st->shown == 0)
            printf("%-24s %-20s %-16s %-6s %s\n", "TENANT", "PROVIDER", "KIND", "SEALED", "KEY");
        printf("%-24s %-20s %-16s %-6s %s\n", e->tenant, e->provider,
               command || key ? kind : e->key_id, sealed, shown);
    }
    st->shown++;
    return 0;
}

static int keys_cmd_list(struct kctx *c)
{
    bool none = false;
    int rc = secret_store_open(&c->st, false, &none);
    if (rc != MC_EXIT_OK)
        return rc;
    struct keys_list_state st = {
        .only_tenant =
            config_origin(c->st.cfg, CFG_MEMCHAT_TENANT) == CFG_FROM_FLAG ? keys_tenant(c) : NULL,
        .json = c->o->json,
    };
    char err[512] = "";
    if (!none && keystore_list(c->st.ks, keys_list_row, &st, err, sizeof err) != 0) {
        session_error("keys: %s", err);
        return MC_EXIT_RUNTIME;
    }
    if (st.shown == 0 && !c->o->json)
        fprintf(stderr, "memchat: no keys stored%s%s\n", st.only_tenant ? " for tenant " : "",
                st.only_tenant ? st.only_tenant : "");
    return MC_EXIT_OK;
}

/* A new master key from a passphrase (asked twice on a terminal, so a typo
 * does not lock the user out) and its KDF parameters. */
static int keys_new_passphrase_key(const struct kctx *c, uint8_t *key, struct keystore_kdf *kdf)
{
    struct secret a = {0}, b = {0};
    int rc = secret_store_passphrase(&c->st, "new keystore passphrase: ", &a);
    if (rc == MC_EXIT_OK && !c->o->pass_stdin) {
        rc = secret_store_passphrase(&c->st, "the same passphrase again: ", &b);
        if (rc == MC_EXIT_OK && (a.len != b.len || sodium_memcmp(a.value, b.value, a.len) != 0)) {
            session_error("keys: the two passphrases differ (nothing was changed)");
            rc = MC_EXIT_USAGE;
        }
    }
    char err[512] = "";
    if (rc == MC_EXIT_OK && (keystore_kdf_init(kdf, 0, 0, err, sizeof err) != 0 ||
                             keystore_derive_key(a.value, a.len, kdf, key, err, sizeof err) != 0)) {
        session_error("keys: %s", err);
        rc = MC_EXIT_RUNTIME;
    }
    secret_free(&a);
    secret_free(&b);
    return rc;
}

static int keys_cmd_init(struct kctx *c)
{
    int rc = secret_store_lock(&c->st);
    if (rc != MC_EXIT_OK)
        return rc;
    if (access(c->st.path, F_OK) == 0) {
        session_error("keys: the keystore %s already exists; `memchat keys rotate` changes its "
                      "master key",
                      c->st.path);
        return MC_EXIT_USAGE;
    }
    char err[1024] = "";
    if (c->o->passphrase) {
        struct keystore_kdf kdf;
        rc = keys_new_passphrase_key(c, c->st.master, &kdf);
        if (rc == MC_EXIT_OK &&
            (keystore_open(c->st.path, c->st.master, &c->st.ks, err, sizeof err) != 0 ||
             keystore_rotate(c->st.ks, c->st.master, &kdf, err, sizeof err) != 0)) {
            session_error("keys: %s", err);
            rc = MC_EXIT_RUNTIME;
        }
    } else {
        bool none = false;
        rc = secret_store_open(&c->st, true, &none);
    }
    if (rc == MC_EXIT_OK)
        rc = secret_store_save(&c->st);
    if (rc == MC_EXIT_OK)
        fprintf(stderr, "memchat: created the keystore %s (master key from %s)\n", c->st.path,
                c->o->passphrase ? "a passphrase" : masterkey_source_name(c->st.src));
    return rc;
}

/* Replaces master.key, keeping the old one as master.key.old until the
 * keystore is saved under the new key, so a crash in between loses
 * nothing: the old key is still on disk for the old file. */
static int keys_rotate_file(struct kctx *c, uint8_t *key)
{
    char err[1024] = "";
    char *cur = paths_join(c->st.config_dir, "master.key");
    char *old = paths_join(c->st.config_dir, "master.key.old");
    bool had = c->st.src == MASTERKEY_FILE;
    int rc = MC_EXIT_OK;
    if (had && rename(cur, old) != 0) {
        session_error("keys: cannot keep %s as %s: %s", cur, old, strerror(errno));
        rc = MC_EXIT_RUNTIME;
    }
    if (rc == MC_EXIT_OK && masterkey_create_file(c->st.config_dir, key, err, sizeof err) != 0) {
        session_error("keys: %s", err);
        if (had)
            rename(old, cur);
        rc = MC_EXIT_RUNTIME;
    }
    if (rc == MC_EXIT_OK && keystore_rotate(c->st.ks, key, NULL, err, sizeof err) != 0) {
        session_error("keys: %s", err);
        rc = MC_EXIT_RUNTIME;
    }
    if (rc == MC_EXIT_OK)
        rc = secret_store_save(&c->st);
    if (rc != MC_EXIT_OK && had && access(old, F_OK) == 0)
        rename(old, cur); /* the keystore on disk is still under the old key */
    else if (rc == MC_EXIT_OK && had)
        unlink(old);
    xfree(cur);
    xfree(old);
    return rc;
}

/* Says what rotate did: records re-sealed under the new master key, tool
 * credentials re-sealed under the tool key (it was given) or kept as they
 * are (it was not). */
static void keys_rotate_report(const struct kctx *c)
{
    const char *how = c->o->passphrase ? "from a passphrase" : "master.key";
    size_t master = keystore_count_sealed(c->st.ks, KEYSTORE_SEAL_MASTER);
    size_t tool = keystore_count_sealed(c->st.ks, KEYSTORE_SEAL_TOOL);
    if (tool == 0)
        fprintf(stderr, "memchat: re-encrypted %zu records under a new master key (%s)\n", master,
                how);
    else if (c->st.tool_key != NULL)
        fprintf(stderr,
                "memchat: re-encrypted %zu records: %zu under a new master key (%s), %zu tool "
                "credentials under " KEYSTORE_TOOL_KEY_NAME "\n",
                master + tool, master, how, tool);
    else
        fprintf(stderr,
                "memchat: re-encrypted %zu records under a new master key (%s); kept %zu tool "
                "credentials sealed under " KEYSTORE_TOOL_KEY_NAME " as they are (it is not "
                "set)\n",
                master, how, tool);
}

static int keys_cmd_rotate(struct kctx *c)
{
    bool none = false;
    int rc = secret_store_lock(&c->st);
    if (rc == MC_EXIT_OK)
        rc = secret_store_open(&c->st, false, &none);
    if (rc != MC_EXIT_OK)
        return rc;
    if (none) {
        session_error("keys: there is no keystore to rotate (memchat keys init creates one)");
        return MC_EXIT_USAGE;
    }
    if (keystore_tool_key_state(c->st.ks) == KEYSTORE_TOOL_KEY_WRONG) {
        /* Found before a new master.key or passphrase is made. */
        session_error("keys: " KEYSTORE_TOOL_KEY_NAME " does not open the tool credentials of "
                      "%s: set it to the key they were stored with, or unset it (they are then "
                      "kept as they are), before rotating",
                      c->st.path);
        return MC_EXIT_USAGE;
    }
    uint8_t *key = xsecure_malloc(KEYSTORE_KEY_BYTES);
    char err[1024] = "";
    if (c->o->passphrase) {
        struct keystore_kdf kdf;
        rc = keys_new_passphrase_key(c, key, &kdf);
        if (rc == MC_EXIT_OK && keystore_rotate(c->st.ks, key, &kdf, err, sizeof err) != 0) {
            session_error("keys: %s", err);
            rc = MC_EXIT_RUNTIME;
        }
        if (rc == MC_EXIT_OK)
            rc = secret_store_save(&c->st);
    } else if (config_str(c->st.cfg, CFG_MEMCHAT_MASTER_KEY)[0] != '\0') {
        /* Also from a passphrase: the new master.key would lose to it. */
        session_error("keys: MEMCHAT_MASTER_KEY is set, which memchat cannot change and which "
                      "wins over master.key: rotate with --passphrase, or unset it (after "
                      "moving its value to master.key)");
        rc = MC_EXIT_USAGE;
    } else {
        rc = keys_rotate_file(c, key);
    }
    xsecure_free(key);
    if (rc == MC_EXIT_OK)
        keys_rotate_report(c);
    return rc;
}

int cmd_keys(const struct config *cfg, const struct cli_opts *o)
{
    static const struct {
        const char *name;
        int (*run)(struct kctx *c);
    } subs[] = {
        {"set", keys_cmd_set},       {"list", keys_cmd_list}, {"rm", keys_cmd_rm},
        {"rotate", keys_cmd_rotate}, {"init", keys_cmd_init},
    };
    const char *sub = o->n_args > 0 ? o->args[0] : "list";
    if (o->n_args > 1) {
        session_error("keys: unexpected argument '%s' (see memchat keys --help)", o->args[1]);
        return MC_EXIT_USAGE;
    }
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        if (strcmp(sub, subs[i].name) != 0)
            continue;
        struct kctx c = {.o = o};
        int rc = secret_store_init(&c.st, cfg, "keys", o->pass_stdin, false);
        if (rc == MC_EXIT_OK)
            rc = subs[i].run(&c);
        secret_store_fini(&c.st);
        return rc;
    }
    session_error("keys: unknown command '%s' (set, list, rm, rotate or init)", sub);
    return MC_EXIT_USAGE;
}
