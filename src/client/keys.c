/*
 * Stage 7 of a turn (see keys.h). The keystore is kept open between turns
 * and identified by its file's device, inode, size and modification time:
 * keystore_save replaces the file by rename, so any write by any process
 * changes the identity and the next lookup reopens it. A missing file means
 * no tenant has a key, and then no master key is needed either, so a user
 * who never ran `memchat keys` never gets a master.key.
 */
#include "config.h"

#include "client/keys.h"

#include <errno.h>
#include <stdbool.h>
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
    long long command_timeout_ms;
    char *pass; /* locked (xsecure_malloc) passphrase, or NULL */
    size_t pass_len;
    struct keystore *ks; /* open, or NULL */
    struct stat seen;    /* identity of the file ks was read from */
};

struct keys *keys_new(const struct keys_config *c)
{
    struct keys *k = xcalloc(1, sizeof *k);
    k->keystore_path = xstrdup(c->keystore_path);
    k->config_dir = xstrdup(c->config_dir);
    const char *env = c->master_env != NULL ? c->master_env : "";
    k->master_env = xsecure_dup(env, strlen(env));
    k->command_timeout_ms = c->command_timeout_ms;
    return k;
}

void keys_free(struct keys *k)
{
    if (k == NULL)
        return;
    keystore_free(k->ks);
    xsecure_free(k->master_env);
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
