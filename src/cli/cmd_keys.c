/*
 * memchat keys: tenants' own API keys and tool credentials, in the
 * encrypted keystore of the data dir (store/keystore.h).
 *
 *   memchat keys set    --tenant T --provider P [--command CMD]
 *   memchat keys list   [--tenant T] [--json]
 *   memchat keys rm     --tenant T --provider P
 *   memchat keys rotate [--passphrase] [--passphrase-stdin]
 *   memchat keys init   [--passphrase] [--passphrase-stdin]
 *
 * The keystore is not the data file (no engine job owns it), so the verb
 * writes it itself, under an exclusive lock on data_dir/keystore.lock so
 * that two `keys set` at once never lose one another's record; every write
 * replaces the file atomically. A key is read from stdin when stdin is not a
 * terminal, else at a prompt with echo off; it never appears in arguments
 * (which other users can read in /proc), output, logs or messages.
 */
#include "config.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
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

/* One run of the verb. */
struct kctx {
    const struct config *cfg;
    const struct cli_opts *o;
    char *data_dir, *path, *config_dir;
    int lock_fd;
    uint8_t *master; /* xsecure_malloc'd */
    enum masterkey_source src;
    struct keystore *ks;
};

static void kctx_init(struct kctx *c, const struct config *cfg, const struct cli_opts *o)
{
    memset(c, 0, sizeof *c);
    c->cfg = cfg;
    c->o = o;
    c->lock_fd = -1;
    c->data_dir = xstrdup(config_str(cfg, CFG_MEMCHAT_DATA_DIR));
    c->path = paths_join(c->data_dir, KEYSTORE_FILE_NAME);
    c->config_dir = xstrdup(config_str(cfg, CFG_MEMCHAT_CONFIG_DIR));
    c->master = xsecure_malloc(KEYSTORE_KEY_BYTES);
}

static void kctx_fini(struct kctx *c)
{
    keystore_free(c->ks);
    xsecure_free(c->master);
    if (c->lock_fd >= 0)
        close(c->lock_fd); /* releases the lock */
    xfree(c->data_dir);
    xfree(c->path);
    xfree(c->config_dir);
}

/* Takes the keystore's write lock (waiting for another writer). */
static int kctx_lock(struct kctx *c)
{
    char err[512];
    if (paths_mkdir_p(c->data_dir, 0700, err, sizeof err) != 0) {
        session_error("keys: %s", err);
        return MC_EXIT_RUNTIME;
    }
    char *lock = paths_join(c->data_dir, "keystore.lock");
    c->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    int rc = c->lock_fd >= 0 ? flock(c->lock_fd, LOCK_EX) : -1;
    if (rc != 0)
        session_error("keys: cannot lock %s: %s", lock, strerror(errno));
    xfree(lock);
    return rc == 0 ? MC_EXIT_OK : MC_EXIT_RUNTIME;
}

/* A passphrase: the next line of stdin with --passphrase-stdin, else the
 * terminal's answer to prompt. */
static int kctx_passphrase(const struct kctx *c, const char *prompt, struct secret *out)
{
    char err[512] = "";
    if (c->o->pass_stdin) {
        if (secret_read_stdin("the passphrase (a line of stdin)", false, KEYSTORE_MAX_SECRET, out,
                              err, sizeof err) != 0) {
            session_error("keys: %s", err);
            return MC_EXIT_RUNTIME;
        }
    } else {
        int rc = secret_read_tty(prompt, KEYSTORE_MAX_SECRET, out, err, sizeof err);
        if (rc == 1)
            snprintf(err, sizeof err,
                     "a passphrase is needed and there is no terminal to ask it on: give it "
                     "with --passphrase-stdin");
        if (rc != 0) {
            session_error("keys: %s", err);
            return MC_EXIT_USAGE;
        }
    }
    if (out->len == 0) {
        secret_free(out);
        session_error("keys: the passphrase is empty");
        return MC_EXIT_USAGE;
    }
    return MC_EXIT_OK;
}

/* Opens the keystore (a missing file is an empty one). create: make
 * master.key when no key exists yet. *none is set when there is neither a
 * keystore nor a master key (nothing to open; c->ks stays NULL). */
static int kctx_open(struct kctx *c, bool create, bool *none)
{
    *none = false;
    char err[1024] = "";
    struct keystore_kdf kdf;
    int k = keystore_kdf_params(c->path, &kdf, err, sizeof err);
    if (k < 0) {
        session_error("keys: %s", err);
        return MC_EXIT_RUNTIME;
    }
    struct secret pass = {0};
    if (k == 0) {
        int rc = kctx_passphrase(c, "memchat keystore passphrase: ", &pass);
        if (rc != MC_EXIT_OK)
            return rc;
    }
    struct masterkey_in in = {
        .keystore_path = c->path,
        .config_dir = c->config_dir,
        .env_b64 = config_str(c->cfg, CFG_MEMCHAT_MASTER_KEY),
        .pass = pass.value,
        .pass_len = pass.len,
        .create = create,
    };
    int rc = masterkey_load(&in, c->master, &c->src, err, sizeof err);
    secret_free(&pass);
    if (rc < 0) {
        session_error("keys: %s", err);
        return MC_EXIT_USAGE;
    }
    if (rc == 1) {
        if (access(c->path, F_OK) == 0) {
            session_error("keys: the keystore %s exists but there is no master key for it: set "
                          "MEMCHAT_MASTER_KEY or restore master.key in %s",
                          c->path, c->config_dir);
            return MC_EXIT_USAGE;
        }
        *none = true;
        return MC_EXIT_OK;
    }
    if (keystore_open(c->path, c->master, &c->ks, err, sizeof err) != 0) {
        session_error("keys: %s (master key from %s)", err, masterkey_source_name(c->src));
        return MC_EXIT_USAGE;
    }
    return MC_EXIT_OK;
}

static int kctx_save(struct kctx *c)
{
    char err[1024] = "";
    if (keystore_save(c->ks, err, sizeof err) != 0) {
        session_error("keys: %s", err);
        return MC_EXIT_RUNTIME;
    }
    return MC_EXIT_OK;
}

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
    return config_str(c->cfg, CFG_MEMCHAT_TENANT);
}

/* What `keys set` stores: the command, or the key from stdin or a prompt. */
static int keys_read_value(const struct kctx *c, const char *provider, struct secret *out)
{
    char err[512] = "";
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
    if (!isatty(STDIN_FILENO)) {
        if (c->o->pass_stdin) {
            session_error("keys: the key and the passphrase cannot both come from stdin: drop "
                          "--passphrase-stdin and type the passphrase at the prompt, or give "
                          "the key at the prompt");
            return MC_EXIT_USAGE;
        }
        if (secret_read_stdin("the key (stdin)", true, KEYSTORE_MAX_SECRET, out, err, sizeof err) !=
            0) {
            session_error("keys: %s", err);
            return MC_EXIT_RUNTIME;
        }
    } else {
        char prompt[160];
        snprintf(prompt, sizeof prompt, "API key of tenant %s for %s: ", keys_tenant(c), provider);
        if (secret_read_tty(prompt, KEYSTORE_MAX_SECRET, out, err, sizeof err) != 0) {
            session_error("keys: %s", err[0] ? err : "no terminal to read the key from");
            return MC_EXIT_RUNTIME;
        }
    }
    if (out->len == 0) {
        secret_free(out);
        session_error("keys: the key is empty (nothing was stored)");
        return MC_EXIT_USAGE;
    }
    return MC_EXIT_OK;
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
    rc = kctx_lock(c);
    if (rc == MC_EXIT_OK)
        rc = kctx_open(c, true, &none);
    const char *id = c->o->key_command != NULL ? KEYS_ID_COMMAND : KEYS_ID_KEY;
    const char *other = c->o->key_command != NULL ? KEYS_ID_KEY : KEYS_ID_COMMAND;
    char err[512] = "";
    if (rc == MC_EXIT_OK && keystore_set(c->ks, keys_tenant(c), provider, id, value.value,
                                         value.len, err, sizeof err) != 0) {
        session_error("keys: %s", err);
        rc = MC_EXIT_USAGE;
    }
    secret_free(&value);
    if (rc != MC_EXIT_OK)
        return rc;
    keystore_rm(c->ks, keys_tenant(c), provider, other);
    rc = kctx_save(c);
    if (rc == MC_EXIT_OK)
        fprintf(stderr, "memchat: stored the %s of tenant %s for %s in %s\n",
                c->o->key_command != NULL ? "key command" : "key", keys_tenant(c), provider,
                c->path);
    return rc;
}

static int keys_cmd_rm(struct kctx *c)
{
    const char *provider = c->o->key_provider;
    int rc = keys_check_provider(provider);
    bool none = false;
    if (rc == MC_EXIT_OK)
        rc = kctx_lock(c);
    if (rc == MC_EXIT_OK)
        rc = kctx_open(c, false, &none);
    if (rc != MC_EXIT_OK)
        return rc;
    int removed = 0;
    if (!none) {
        removed += keystore_rm(c->ks, keys_tenant(c), provider, KEYS_ID_KEY) == 0;
        removed += keystore_rm(c->ks, keys_tenant(c), provider, KEYS_ID_COMMAND) == 0;
    }
    if (removed == 0) {
        session_error("keys: tenant %s has no key for %s", keys_tenant(c), provider);
        return MC_EXIT_RUNTIME;
    }
    rc = kctx_save(c);
    if (rc == MC_EXIT_OK)
        fprintf(stderr, "memchat: removed the key of tenant %s for %s\n", keys_tenant(c), provider);
    return rc;
}

struct keys_list_state {
    const char *only_tenant; /* NULL: every tenant */
    bool json;
    size_t shown;
};

static int keys_list_row(void *ud, const char *tenant, const char *provider, const char *key_id,
                         const char *masked)
{
    struct keys_list_state *st = ud;
    if (st->only_tenant != NULL && strcmp(st->only_tenant, tenant) != 0)
        return 0;
    bool command = strcmp(key_id, KEYS_ID_COMMAND) == 0;
    /* A command is not shown: it may hold a token of its own. */
    const char *shown = command ? "(command)" : masked;
    const char *kind = command ? "command" : strcmp(key_id, KEYS_ID_KEY) == 0 ? "key" : key_id;
    if (st->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "tenant", tenant);
        cJSON_AddStringToObject(o, "provider", provider);
        cJSON_AddStringToObject(o, "kind", kind);
        cJSON_AddStringToObject(o, "masked", shown);
        char *line = cJSON_PrintUnformatted(o);
        if (line != NULL)
            printf("%s\n", line);
        cJSON_free(line);
        cJSON_Delete(o);
    } else {
        if (st->shown == 0)
            printf("%-24s %-20s %-8s %s\n", "TENANT", "PROVIDER", "KIND", "KEY");
        printf("%-24s %-20s %-8s %s\n", tenant, provider, kind, shown);
    }
    st->shown++;
    return 0;
}

static int keys_cmd_list(struct kctx *c)
{
    bool none = false;
    int rc = kctx_open(c, false, &none);
    if (rc != MC_EXIT_OK)
        return rc;
    struct keys_list_state st = {
        .only_tenant =
            config_origin(c->cfg, CFG_MEMCHAT_TENANT) == CFG_FROM_FLAG ? keys_tenant(c) : NULL,
        .json = c->o->json,
    };
    char err[512] = "";
    if (!none && keystore_list(c->ks, keys_list_row, &st, err, sizeof err) != 0) {
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
    int rc = kctx_passphrase(c, "new keystore passphrase: ", &a);
    if (rc == MC_EXIT_OK && !c->o->pass_stdin) {
        rc = kctx_passphrase(c, "the same passphrase again: ", &b);
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
    int rc = kctx_lock(c);
    if (rc != MC_EXIT_OK)
        return rc;
    if (access(c->path, F_OK) == 0) {
        session_error("keys: the keystore %s already exists; `memchat keys rotate` changes its "
                      "master key",
                      c->path);
        return MC_EXIT_USAGE;
    }
    char err[1024] = "";
    if (c->o->passphrase) {
        struct keystore_kdf kdf;
        rc = keys_new_passphrase_key(c, c->master, &kdf);
        if (rc == MC_EXIT_OK && (keystore_open(c->path, c->master, &c->ks, err, sizeof err) != 0 ||
                                 keystore_rotate(c->ks, c->master, &kdf, err, sizeof err) != 0)) {
            session_error("keys: %s", err);
            rc = MC_EXIT_RUNTIME;
        }
    } else {
        bool none = false;
        rc = kctx_open(c, true, &none);
    }
    if (rc == MC_EXIT_OK)
        rc = kctx_save(c);
    if (rc == MC_EXIT_OK)
        fprintf(stderr, "memchat: created the keystore %s (master key from %s)\n", c->path,
                c->o->passphrase ? "a passphrase" : masterkey_source_name(c->src));
    return rc;
}

/* Replaces master.key, keeping the old one as master.key.old until the
 * keystore is saved under the new key, so a crash in between loses
 * nothing: the old key is still on disk for the old file. */
static int keys_rotate_file(struct kctx *c, uint8_t *key)
{
    char err[1024] = "";
    char *cur = paths_join(c->config_dir, "master.key");
    char *old = paths_join(c->config_dir, "master.key.old");
    bool had = c->src == MASTERKEY_FILE;
    int rc = MC_EXIT_OK;
    if (had && rename(cur, old) != 0) {
        session_error("keys: cannot keep %s as %s: %s", cur, old, strerror(errno));
        rc = MC_EXIT_RUNTIME;
    }
    if (rc == MC_EXIT_OK && masterkey_create_file(c->config_dir, key, err, sizeof err) != 0) {
        session_error("keys: %s", err);
        if (had)
            rename(old, cur);
        rc = MC_EXIT_RUNTIME;
    }
    if (rc == MC_EXIT_OK && keystore_rotate(c->ks, key, NULL, err, sizeof err) != 0) {
        session_error("keys: %s", err);
        rc = MC_EXIT_RUNTIME;
    }
    if (rc == MC_EXIT_OK)
        rc = kctx_save(c);
    if (rc != MC_EXIT_OK && had && access(old, F_OK) == 0)
        rename(old, cur); /* the keystore on disk is still under the old key */
    else if (rc == MC_EXIT_OK && had)
        unlink(old);
    xfree(cur);
    xfree(old);
    return rc;
}

static int keys_cmd_rotate(struct kctx *c)
{
    bool none = false;
    int rc = kctx_lock(c);
    if (rc == MC_EXIT_OK)
        rc = kctx_open(c, false, &none);
    if (rc != MC_EXIT_OK)
        return rc;
    if (none) {
        session_error("keys: there is no keystore to rotate (memchat keys init creates one)");
        return MC_EXIT_USAGE;
    }
    uint8_t *key = xsecure_malloc(KEYSTORE_KEY_BYTES);
    char err[1024] = "";
    if (c->o->passphrase) {
        struct keystore_kdf kdf;
        rc = keys_new_passphrase_key(c, key, &kdf);
        if (rc == MC_EXIT_OK && keystore_rotate(c->ks, key, &kdf, err, sizeof err) != 0) {
            session_error("keys: %s", err);
            rc = MC_EXIT_RUNTIME;
        }
        if (rc == MC_EXIT_OK)
            rc = kctx_save(c);
    } else if (config_str(c->cfg, CFG_MEMCHAT_MASTER_KEY)[0] != '\0') {
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
        fprintf(stderr, "memchat: re-encrypted %zu records under a new master key (%s)\n",
                keystore_count(c->ks), c->o->passphrase ? "from a passphrase" : "master.key");
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
        if (config_str(cfg, CFG_MEMCHAT_DATA_DIR)[0] == '\0') {
            session_error("keys: MEMCHAT_DATA_DIR is not set, and neither XDG_DATA_HOME nor "
                          "HOME gives a default: set MEMCHAT_DATA_DIR to a directory");
            return MC_EXIT_USAGE;
        }
        if (sodium_init() < 0) {
            session_error("keys: libsodium cannot be initialised");
            return MC_EXIT_RUNTIME;
        }
        struct kctx c;
        kctx_init(&c, cfg, o);
        int rc = subs[i].run(&c);
        kctx_fini(&c);
        return rc;
    }
    session_error("keys: unknown command '%s' (set, list, rm, rotate or init)", sub);
    return MC_EXIT_USAGE;
}
