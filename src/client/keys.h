/*
 * Stage 7 of a turn: which API key the model call sends. A tenant's own key
 * (`memchat keys set`) wins over the global one (OPENAI_API_KEY, ...); it
 * is either a stored key or a key command run now (a password manager), and
 * it is sent only to providers whose key_name matches (llm/provider.h), so
 * never to a server other than the one configured for it. The keystore is
 * opened on first use and reopened whenever its file changes, so a key set
 * by another process applies to the next turn. Decrypted keys live in
 * sodium_malloc'd memory and are wiped when the call is done. Used by one
 * thread at a time (the turn worker).
 *
 * Stage 9 uses it too: the credentials a tool declares, fetched for the
 * turn's tenant just before the tool runs (keys_tool_credentials), from
 * the keystore records of provider "tool:NAME" (`memchat tools
 * add-credential`). Those are sealed under TOOL_CREDENTIALS_ENCRYPTION_KEY
 * when it is set; a missing, wrong or malformed tool key fails only the
 * tool credentials, never the provider keys.
 */
#ifndef MEMCHAT_CLIENT_KEYS_H
#define MEMCHAT_CLIENT_KEYS_H

#include <stddef.h>

#include "memchat/error.h"

/* The key_id of a stored key and of a key command in the keystore. A slot
 * (tenant, provider) holds one or the other. */
#define KEYS_ID_KEY     "api_key"
#define KEYS_ID_COMMAND "command"

/* Where the keystore and its master key are. Everything is copied. */
struct keys_config {
    const char *keystore_path; /* data_dir/keystore */
    const char *config_dir;    /* holds master.key */
    const char *master_env;    /* MEMCHAT_MASTER_KEY's value, "" when unset */
    const char *tool_key_env;  /* TOOL_CREDENTIALS_ENCRYPTION_KEY's value, "" or NULL when unset */
    long long command_timeout_ms;
};

struct keys;

/* How a resolved key came. */
enum keys_source {
    KEYS_SOURCE_GLOBAL,  /* no tenant key: the provider's own applies */
    KEYS_SOURCE_TENANT,  /* the tenant's stored key */
    KEYS_SOURCE_COMMAND, /* the output of the tenant's key command */
};

/* A resolved key: value is sodium_malloc'd and NUL-terminated, NULL for
 * KEYS_SOURCE_GLOBAL. Wipe with keys_secret_wipe. */
struct keys_secret {
    char *value;
    size_t len;
    enum keys_source source;
};

/* A resolver for c. Opens nothing yet. Free with keys_free. */
struct keys *keys_new(const struct keys_config *c);
/* Frees k, wiping the master key and passphrase; NULL is a no-op. */
void keys_free(struct keys *k);
/* Gives the passphrase of a keystore protected by one (copied into locked
 * memory; the caller wipes its own copy). */
void keys_set_passphrase(struct keys *k, const char *pass, size_t len);
/* Finds the key tenant's calls to provider key_name send. 0 with *out
 * filled (value NULL when the global key applies: no keystore, or no record
 * for the slot); -1 with err set when the keystore cannot be opened (wrong
 * or missing master key, missing passphrase, damaged file) or the key
 * command fails: the turn then fails rather than bill another account.
 * Messages never hold a key or a command's output. */
int keys_resolve(struct keys *k, const char *tenant, const char *key_name, struct keys_secret *out,
                 char *err, size_t errlen);
/* "global", "tenant" or "command". */
const char *keys_source_name(enum keys_source s);
/* Wipes and frees s->value; s may be zeroed or already wiped. */
void keys_secret_wipe(struct keys_secret *s);
/* The credentials of one tool call: names[i] (copies) = values[i]
 * (sodium_malloc'd, NUL-terminated, lens[i] bytes), in the order asked.
 * The field types match what a tool run takes (client/tooluse.h). Wipe
 * with keys_tool_creds_wipe. */
struct keys_tool_creds {
    const char **names;
    char **values;
    size_t *lens;
    size_t n;
};

/* Fetches the credentials names[0..n) that tool declares, for tenant, from
 * the keystore records (tenant, "tool:<tool>", NAME). All or nothing:
 * 0 with out filled (n == 0 needs no keystore); 1 when one is not stored
 * (err: "tool T needs credential NAME for tenant X: memchat tools
 * add-credential T NAME --tenant X"); -1 with err set when the keystore
 * cannot be opened or a credential cannot be read (sealed under a
 * TOOL_CREDENTIALS_ENCRYPTION_KEY that is not set, wrong or malformed;
 * messages name the variable, never a value). out is empty unless 0. */
int keys_tool_credentials(struct keys *k, const char *tenant, const char *tool,
                          const char *const *names, size_t n, struct keys_tool_creds *out,
                          char *err, size_t errlen);
/* Wipes and frees what keys_tool_credentials filled; a zeroed c is fine. */
void keys_tool_creds_wipe(struct keys_tool_creds *c);

/* Runs a key command into a new secret (trailing newline and carriage
 * return removed); what names it in messages. 0, or -1 with err set. */
int keys_run_command(const char *cmd, long long timeout_ms, const char *what,
                     struct keys_secret *out, char *err, size_t errlen);

#endif
