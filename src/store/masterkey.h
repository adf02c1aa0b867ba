/*
 * Where the keystore's master key comes from (DESIGN.md, "Contract:
 * files"), strongest first: a passphrase, when the keystore's header
 * records KDF parameters (`memchat keys init --passphrase` chose one); else
 * MEMCHAT_MASTER_KEY (base64 of 32 bytes); else <config dir>/master.key,
 * created with a fresh random key on first use. The key bytes only ever go
 * to the caller's buffer (which the caller keeps in locked memory); every
 * temporary copy here (base64 text on the stack) is wiped, and no message
 * ever repeats a key, a passphrase or a file's content.
 */
#ifndef MEMCHAT_STORE_MASTERKEY_H
#define MEMCHAT_STORE_MASTERKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/keystore.h"

#define MASTERKEY_FILE_NAME "master.key"
#define MASTERKEY_ENV_NAME  "MEMCHAT_MASTER_KEY"

enum masterkey_source { MASTERKEY_NONE, MASTERKEY_ENV, MASTERKEY_FILE, MASTERKEY_PASSPHRASE };

struct masterkey_in {
    const char *keystore_path; /* the keystore file (may not exist; NULL = none) */
    const char *config_dir;    /* where master.key lives (may not exist) */
    const char *env_b64;       /* MEMCHAT_MASTER_KEY's value; NULL or "" = unset */
    const char *pass;          /* the passphrase, when the front end has one; NULL = none */
    size_t pass_len;
    bool create; /* create master.key when it is missing and nothing else applies */
};

/* Finds the master key in the order above and writes it to out.
 * (1) The keystore's header records KDF parameters: the key is derived from
 * in->pass (none: -1, "the keystore P is protected by a passphrase: give it
 * with --passphrase-stdin or at the prompt on a terminal"); a wrong
 * passphrase gives a key that keystore_open refuses. A damaged header: -1
 * with the keystore's message. (2) env_b64 set: decoded as by
 * masterkey_decode. (3) <config_dir>/master.key: it must be a regular file
 * owned by the effective user with no group/other mode bits (the message
 * says how to fix it: "chmod 600 P") holding base64 of 32 bytes plus an
 * optional '\n' (else -1 naming the path, never the content); when it is
 * missing and in->create, config_dir is made (0700) and a fresh random key
 * written (0600, synced, published with link() so a concurrent reader
 * never sees a partial file; when another process published one first,
 * that one is read). Missing and !create: 1 with *src MASTERKEY_NONE and
 * out zeroed. 0 with out filled and *src set; -1 when a key or file is
 * refused, KEYSTORE_ERR_IO when a file cannot be read or written (err set
 * and out zeroed on both). */
int masterkey_load(const struct masterkey_in *in, uint8_t out[KEYSTORE_KEY_BYTES],
                   enum masterkey_source *src, char *err, size_t errlen);
/* "MEMCHAT_MASTER_KEY", "master.key", "passphrase" or "none" (static). */
const char *masterkey_source_name(enum masterkey_source s);
/* Writes a fresh random key to <config_dir>/master.key (making config_dir
 * 0700 when missing), replacing an existing one atomically (mode 0600),
 * for `keys rotate`; fills out. 0, or -1 with err (out zeroed). */
int masterkey_create_file(const char *config_dir, uint8_t out[KEYSTORE_KEY_BYTES], char *err,
                          size_t errlen);
/* Decodes b64, standard padded base64 of exactly 32 bytes with surrounding
 * whitespace ignored, into out. 0, or -1 (out zeroed) with "<what> is not
 * base64 of 32 bytes (make one with: head -c 32 /dev/urandom | base64)";
 * the message never holds the value. */
int masterkey_decode(const char *b64, const char *what, uint8_t out[KEYSTORE_KEY_BYTES], char *err,
                     size_t errlen);

#endif
