/*
 * Stage 7 of a turn (see keys.h). The keystore is kept open between turns
 * and identified by its file's device, inode, size and modification time:
 * keystore_save replaces the file by rename, so any write by any process
 * changes the identity and the next lookup reopens it. A missing file means
 * no tenant has a key, and then no master key is needed either, so a user
 * who never ran `memchat keys` never gets a master.key.
 *
 * The tool key is applied when the keystore is opened. Only a damaged
 * tool credential (the right tool key, a record that does not decrypt)
 * refuses the whole keystore, as any damaged record does; a malformed or
 * wrong TOOL_CREDENTIALS_ENCRYPTION_KEY is remembered and fails the tool
 * credentials alone, so a tool misconfiguration never stops a chat.
 */
#include "config.h"

#include "client/keys.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "store/keystore.h"
#include "store/masterkey.h"
#include "util/alloc.h"
#include "util/runcmd.h"

struct keys {
    char *keystore_path;
    char *config_dir;
    char *master_env; /* locked (xsecure_malloc): MEMCHAT_MASTER_KEY is a secret */
    char *tool_env;   /* locked: TOOL_CREDENTIALS_ENCRYPTION_KEY, "" when unset */
    long long command_timeout_ms;
    char *pass; /* locked (xsecure_malloc) passphrase, or NULL */
    size_t pass_len;
    struct keystore *ks; /* open, or NULL */
    struct stat seen;    /* identity of the file ks was read from */
    /* Why the tool credentials of ks cannot be read (a malformed or wrong
     * tool key), or "" when they can. */
    char tool_err[512];
};

struct keys *keys_new(const struct keys_config *c)
{
    struct keys *k = xcalloc(1, sizeof *k);
    k->keystore_path = xstrdup(c->keystore_path);
    k->config_dir = xstrdup(c->config_dir);
    const char *env = c->master_env != NULL ? c->master_env : "";
    k->master_env = xsecure_dup(env, strlen(env));
    const char *tool = c->tool_key_env != NULL ? c->tool_key_env : "";
    k->tool_env = xsecure_dup(tool, strlen(tool));
    k->command_timeout_ms = c->command_timeout_ms;
    return k;
}

void keys_free(struct keys *k)
{
    if (k == NULL)
        return;
    keystore_free(k->ks);
    xsecure_free(k->master_env);
    xsecure_free(k->tool_env);
    xsecure_free(k->pass);
    xfree(k->keystore_path);
    xfree(k->config_dir);
    xfree(k);
}

void keys_set_passphrase(struct keys *k, const char *pass, size_t len)
{
    xsecure_free(k->pass);
    k->pass = xsecure_dup(pass, len);
    k->pass_len = len;
}

static bool keys_same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Gives the freshly opened k->ks the tool key, when one is set. -1 (err
 * set) only for a damaged tool credential; a malformed or wrong key goes
 * to k->tool_err. */
static int keys_apply_tool_key(struct keys *k, char *err, size_t errlen)
{
    k->tool_err[0] = '\0';
    if (k->tool_env[0] == '\0')
        return 0;
    uint8_t *tool = xsecure_malloc(KEYSTORE_KEY_BYTES);
    int rc = 0;
    if (masterkey_decode(k->tool_env, KEYSTORE_TOOL_KEY_NAME, tool, k->tool_err,
                         sizeof k->tool_err) == 0) {
        rc = keystore_set_tool_key(k->ks, tool, k->tool_err, sizeof k->tool_err);
        if (rc < 0)
            snprintf(err, errlen, "%s", k->tool_err);
        if (rc == 0)
            k->tool_err[0] = '\0';
    }
    xsecure_free(tool);
    return rc < 0 ? -1 : 0;
}

/* Opens the keystore file whose identity is st. */
static int keys_open(struct keys *k, const struct stat *st, char *err, size_t errlen)
{
    uint8_t *master = xsecure_malloc(KEYSTORE_KEY_BYTES);
    struct masterkey_in in = {
        .keystore_path = k->keystore_path,
        .config_dir = k->config_dir,
        .env_b64 = k->master_env,
        .pass = k->pass,
        .pass_len = k->pass_len,
        .create = false,
    };
    enum masterkey_source src = MASTERKEY_NONE;
    char merr[512] = "";
    int rc = masterkey_load(&in, master, &src, merr, sizeof merr);
    if (rc == 1) {
        snprintf(err, errlen,
                 "the keystore %s exists but there is no master key for it: set "
                 "MEMCHAT_MASTER_KEY or restore master.key in %s",
                 k->keystore_path, k->config_dir);
    } else if (rc != 0) {
        snprintf(err, errlen, "%s", merr);
    } else if (keystore_open(k->keystore_path, master, &k->ks, merr, sizeof merr) != 0) {
        snprintf(err, errlen, "%s (master key from %s)", merr, masterkey_source_name(src));
        rc = -1;
    } else if (keys_apply_tool_key(k, err, errlen) != 0) {
        keystore_free(k->ks);
        k->ks = NULL;
        rc = -1;
    } else {
        k->seen = *st;
    }
    xsecure_free(master);
    return rc == 0 ? 0 : -1;
}

/* Makes k->ks the current keystore, or NULL when there is no file. */
static int keys_refresh(struct keys *k, char *err, size_t errlen)
{
    struct stat st;
    if (stat(k->keystore_path, &st) != 0) {
        if (errno != ENOENT) {
            snprintf(err, errlen, "cannot read the keystore %s: %s", k->keystore_path,
                     strerror(errno));
            return -1;
        }
        keystore_free(k->ks);
        k->ks = NULL;
        return 0;
    }
    if (k->ks != NULL && keys_same_file(&st, &k->seen))
        return 0;
    keystore_free(k->ks);
    k->ks = NULL;
    return keys_open(k, &st, err, errlen);
}

int keys_run_command(const char *cmd, long long timeout_ms, const char *what,
                     struct keys_secret *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    size_t cap = KEYSTORE_MAX_SECRET + 1;
    char *buf = xsecure_malloc(cap);
    size_t len = 0;
    char rerr[256] = "";
    if (runcmd_capture(cmd, timeout_ms, buf, cap, &len, rerr, sizeof rerr) != 0) {
        snprintf(err, errlen, "%s %s", what, rerr);
        xsecure_free(buf);
        return -1;
    }
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        buf[--len] = '\0';
    if (len == 0 || memchr(buf, '\0', len) != NULL) {
        snprintf(err, errlen, "%s printed %s", what,
                 len == 0 ? "nothing" : "a NUL byte, which no key contains");
        xsecure_free(buf);
        return -1;
    }
    out->value = xsecure_dup(buf, len);
    out->len = len;
    out->source = KEYS_SOURCE_COMMAND;
    xsecure_free(buf);
    return 0;
}

int keys_resolve(struct keys *k, const char *tenant, const char *key_name, struct keys_secret *out,
                 char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->source = KEYS_SOURCE_GLOBAL;
    if (keys_refresh(k, err, errlen) != 0)
        return -1;
    if (k->ks == NULL)
        return 0;
    char *secret = NULL;
    size_t len = 0;
    char kerr[256] = "";
    int rc = keystore_get(k->ks, tenant, key_name, KEYS_ID_KEY, &secret, &len, kerr, sizeof kerr);
    if (rc == 0) {
        out->value = secret;
        out->len = len;
        out->source = KEYS_SOURCE_TENANT;
        return 0;
    }
    if (rc == 1)
        rc = keystore_get(k->ks, tenant, key_name, KEYS_ID_COMMAND, &secret, &len, kerr,
                          sizeof kerr);
    if (rc < 0) {
        snprintf(err, errlen, "keystore %s: %s", k->keystore_path, kerr);
        return -1;
    }
    if (rc == 1)
        return 0;
    char what[160];
    snprintf(what, sizeof what, "the key command of tenant %s for %s", tenant, key_name);
    rc = keys_run_command(secret, k->command_timeout_ms, what, out, err, errlen);
    keystore_secret_free(secret);
    return rc;
}

void keys_tool_creds_wipe(struct keys_tool_creds *c)
{
    for (size_t i = 0; i < c->n; i++) {
        xfree((char *)(uintptr_t)c->names[i]);
        xsecure_free(c->values[i]);
    }
    xfree(c->names);
    xfree(c->values);
    xfree(c->lens);
    memset(c, 0, sizeof *c);
}

/* Reads credential name of tenant's tool (provider "tool:<tool>") into
 * out's next slot. 0, 1 absent, -1; err set on both. */
static int keys_tool_one(struct keys *k, const char *tenant, const char *tool, const char *provider,
                         const char *name, struct keys_tool_creds *out, char *err, size_t errlen)
{
    char *secret = NULL;
    size_t len = 0;
    char kerr[768] = "";
    int rc = k->ks != NULL
                 ? keystore_get(k->ks, tenant, provider, name, &secret, &len, kerr, sizeof kerr)
                 : 1;
    if (rc == 1) {
        snprintf(err, errlen,
                 "tool %s needs credential %s for tenant %s: memchat tools add-credential %s %s "
                 "--tenant %s",
                 tool, name, tenant, tool, name, tenant);
        return 1;
    }
    if (rc < 0) {
        /* A wrong or malformed tool key says why in its own words. */
        snprintf(err, errlen, "tool %s: credential %s of tenant %s: %s", tool, name, tenant,
                 k->tool_err[0] != '\0' ? k->tool_err : kerr);
        return -1;
    }
    out->names[out->n] = xstrdup(name);
    out->values[out->n] = secret;
    out->lens[out->n] = len;
    out->n++;
    return 0;
}

int keys_tool_credentials(struct keys *k, const char *tenant, const char *tool,
                          const char *const *names, size_t n, struct keys_tool_creds *out,
                          char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (n == 0)
        return 0;
    if (k->tool_env[0] != '\0') {
        /* Malformed, it fails every tool credential, also those sealed
         * under the master key: the setting is wrong, say so. */
        uint8_t *key = xsecure_malloc(KEYSTORE_KEY_BYTES);
        char merr[256] = "";
        int bad = masterkey_decode(k->tool_env, KEYSTORE_TOOL_KEY_NAME, key, merr, sizeof merr);
        xsecure_free(key);
        if (bad != 0) {
            snprintf(err, errlen, "tool %s: %s", tool, merr);
            return -1;
        }
    }
    if (keys_refresh(k, err, errlen) != 0)
        return -1;
    out->names = xcalloc(n, sizeof *out->names);
    out->values = xcalloc(n, sizeof *out->values);
    out->lens = xcalloc(n, sizeof *out->lens);
    char *provider = xasprintf("%s%s", KEYSTORE_TOOL_PREFIX, tool);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = keys_tool_one(k, tenant, tool, provider, names[i], out, err, errlen);
    xfree(provider);
    if (rc != 0)
        keys_tool_creds_wipe(out);
    return rc;
}

const char *keys_source_name(enum keys_source s)
{
    switch (s) {
    case KEYS_SOURCE_TENANT:
        return "tenant";
    case KEYS_SOURCE_COMMAND:
        return "command";
    case KEYS_SOURCE_GLOBAL:
        break;
    }
    return "global";
}

void keys_secret_wipe(struct keys_secret *s)
{
    xsecure_free(s->value);
    s->value = NULL;
    s->len = 0;
}
