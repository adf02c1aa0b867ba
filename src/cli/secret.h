/*
 * Reading secrets on the command line: API keys, tool credentials and
 * passphrases, from standard input or from a prompt on the terminal with
 * echo off. A secret read here lives only in sodium_malloc'd memory (never
 * in stdio buffers: stdin is read with read(2)), and the terminal's
 * settings are restored on every path, also when the read is interrupted.
 *
 * And the keystore as the verbs that write it (`keys`, `tools`) open it:
 * struct secret_store finds the master key (and the tool key,
 * TOOL_CREDENTIALS_ENCRYPTION_KEY), takes the write lock, opens and saves
 * the file, and reports every failure on stderr as "memchat: VERB: ...",
 * returning the exit code, so both verbs behave the same.
 */
#ifndef MEMCHAT_CLI_SECRET_H
#define MEMCHAT_CLI_SECRET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/masterkey.h"

struct config;
struct keystore;

/* A secret: sodium_malloc'd, NUL-terminated; free with secret_free. */
struct secret {
    char *value;
    size_t len;
};

/* Reads one line from standard input (byte by byte, so the rest of stdin
 * stays for whoever reads next), without its newline. whole: read to EOF
 * instead (a key piped in), dropping one trailing newline. At most max
 * bytes. 0, or -1 with err naming what (never the content). */
int secret_read_stdin(const char *what, bool whole, size_t max, struct secret *out, char *err,
                      size_t errlen);
/* Prompts on the controlling terminal (/dev/tty) with echo off and reads
 * one line. 0; 1 when there is no terminal; -1 with err set. */
int secret_read_tty(const char *prompt, size_t max, struct secret *out, char *err, size_t errlen);
/* Wipes and frees s->value; a zeroed s is fine. */
void secret_free(struct secret *s);

/* The passphrase of the keystore at keystore_path for a chat or ask: the
 * first line of stdin with from_stdin (consumed whatever the keystore
 * holds), else, when the keystore is protected by one, the answer at a
 * prompt on the terminal. out->value stays NULL when none is needed or
 * there is no terminal (the turns that need a tenant key then say how to
 * give it). 0, or -1 with err set (a damaged keystore, a failed read). */
int secret_keystore_passphrase(const char *keystore_path, bool from_stdin, struct secret *out,
                               char *err, size_t errlen);

/* One verb's use of the keystore of the data dir. */
struct secret_store {
    const struct config *cfg;
    const char *verb; /* "keys" or "tools": the messages' prefix */
    bool pass_stdin;  /* --passphrase-stdin: passphrases are stdin's lines */
    bool soft;        /* failures are reported as warnings (the caller goes on) */
    char *data_dir, *path, *config_dir;
    int lock_fd;
    uint8_t *master;   /* xsecure_malloc'd */
    uint8_t *tool_key; /* xsecure_malloc'd TOOL_CREDENTIALS_ENCRYPTION_KEY, or NULL: unset */
    enum masterkey_source src;
    struct keystore *ks; /* open, or NULL */
};

/* Prepares c for verb (borrowed): the data dir must be known, libsodium
 * must start, and TOOL_CREDENTIALS_ENCRYPTION_KEY, when set, must be
 * base64 of 32 bytes (else a message naming it, never its value). soft:
 * every message is printed as a warning ("memchat: VERB: warning: ..."),
 * for a caller that goes on without the keystore. Returns the exit code;
 * c must be finished with secret_store_fini either way. */
int secret_store_init(struct secret_store *c, const struct config *cfg, const char *verb,
                      bool pass_stdin, bool soft);
/* Closes the keystore, wipes the keys, releases the lock. */
void secret_store_fini(struct secret_store *c);
/* Takes the keystore's write lock (data_dir/keystore.lock), waiting for
 * another writer, so two writers never lose one another's record. */
int secret_store_lock(struct secret_store *c);
/* Opens the keystore into c->ks (a missing file is an empty one), with the
 * tool key when it is set. create: make master.key when no master key
 * exists yet. *none is set when there is neither a keystore nor a master
 * key (c->ks stays NULL). A tool key that does not open the tool
 * credentials already sealed is a warning here (provider keys still work);
 * the operations that need it fail with their own message. */
int secret_store_open(struct secret_store *c, bool create, bool *none);
/* Writes c->ks atomically. */
int secret_store_save(struct secret_store *c);
/* A passphrase: the next line of stdin with pass_stdin, else the answer at
 * a no-echo prompt on the terminal. Empty is refused. */
int secret_store_passphrase(const struct secret_store *c, const char *prompt, struct secret *out);
/* A secret to store (a key, a tool credential): the whole of stdin when it
 * is not a terminal (one trailing newline dropped), else the answer at a
 * no-echo prompt. what names it in messages ("the key"). Empty is refused;
 * so is a secret on stdin while pass_stdin wants stdin's first line. */
int secret_store_read_value(const struct secret_store *c, const char *what, const char *prompt,
                            struct secret *out);

#endif
