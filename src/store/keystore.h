/*
 * The keystore: the one encrypted file in the data dir that holds provider
 * API keys and tool credentials (records whose provider is "tool:NAME"),
 * per tenant. Each record is sealed with XChaCha20-Poly1305 under a 32-byte
 * key, with the tenant, provider, key id and which key sealed it bound as
 * associated data, so a record moved to another slot, or relabelled as
 * sealed by the other key, does not decrypt. Two keys seal records: the
 * master key seals the provider keys, and the tool credentials while no
 * tool key is given; the tool key (TOOL_CREDENTIALS_ENCRYPTION_KEY), when
 * the caller gives it, seals the tool credentials, so a tool's secrets can
 * be kept under a key the provider keys do not share. Check values in the
 * header tell a wrong master key, or a wrong tool key, apart from a damaged
 * file. The file format is documented at the top of keystore.c.
 */
#ifndef MEMCHAT_STORE_KEYSTORE_H
#define MEMCHAT_STORE_KEYSTORE_H

#include <stddef.h>
#include <stdint.h>

#define KEYSTORE_FILE_NAME "keystore" /* in the data dir */
#define KEYSTORE_KEY_BYTES 32
/* The result of a keystore or master-key function whose file could not be
 * read or written (an I/O failure, exit 1), told apart from -1: the content
 * or the key was refused (a configuration matter, exit 2). */
#define KEYSTORE_ERR_IO        (-2)
#define KEYSTORE_SALT_BYTES    16
#define KEYSTORE_MAX_FILE      (1024 * 1024) /* larger files are refused */
#define KEYSTORE_MAX_SECRET    (64 * 1024)   /* longest secret accepted */
#define KEYSTORE_PROVIDER_MAX  69            /* "tool:" and a tool name of 64 */
#define KEYSTORE_TOOL_PREFIX   "tool:"       /* the provider of a tool credential */
#define KEYSTORE_TOOL_KEY_NAME "TOOL_CREDENTIALS_ENCRYPTION_KEY" /* named in messages */

/* Key-derivation parameters recorded in the header when the master key
 * comes from a passphrase (crypto_pwhash, Argon2id 1.3). */
struct keystore_kdf {
    uint8_t salt[KEYSTORE_SALT_BYTES];
    unsigned long long opslimit;
    size_t memlimit;
};

struct keystore;

/* Which key sealed a record. */
enum keystore_seal {
    KEYSTORE_SEAL_MASTER, /* the master key */
    KEYSTORE_SEAL_TOOL,   /* the tool key (only records of provider "tool:NAME") */
};

/* What the keystore knows of the tool key (keystore_set_tool_key). */
enum keystore_tool_key {
    KEYSTORE_TOOL_KEY_NONE,  /* none given: tool credentials are sealed with the master key */
    KEYSTORE_TOOL_KEY_OK,    /* given, and it opens the tool-sealed records (or there are none) */
    KEYSTORE_TOOL_KEY_WRONG, /* given, but the tool-sealed records were sealed under another */
};

/* One record as keystore_list shows it. Valid during the callback. */
struct keystore_entry {
    const char *tenant, *provider, *key_id;
    enum keystore_seal sealed;
    /* "****" plus the last 4 characters of secrets of 12 or more printable
     * bytes, else "****"; NULL when the record cannot be opened here (sealed
     * with the tool key, which was not given or is wrong). */
    const char *masked;
};

/* Called by keystore_list for each record, in (tenant, provider, key_id)
 * order. Returning nonzero stops the listing. */
typedef int (*keystore_list_cb)(void *ud, const struct keystore_entry *e);

/* Fills kdf with a fresh random salt and the given limits (0 = libsodium's
 * INTERACTIVE limits). 0, or -1 with err set when the limits are out of
 * libsodium's range. */
int keystore_kdf_init(struct keystore_kdf *kdf, unsigned long long opslimit, size_t memlimit,
                      char *err, size_t errlen);
/* Derives a master key from a passphrase with kdf's parameters (the same
 * passphrase and salt always give the same key). 0, or -1 with err set. */
int keystore_derive_key(const char *pass, size_t len, const struct keystore_kdf *kdf,
                        uint8_t out[KEYSTORE_KEY_BYTES], char *err, size_t errlen);
/* Decodes s[0..slen), standard padded base64, strictly: only the one
 * canonical spelling of at most cap bytes is accepted (no whitespace, no
 * non-zero padding bits), so a changed character never decodes to the same
 * bytes. 0 with *got bytes in out; -1 with out wiped. Used for every
 * base64 field of the keystore and for master keys. */
int keystore_b64_decode(const char *s, size_t slen, uint8_t *out, size_t cap, size_t *got);
/* Reads the KDF parameters recorded in path's header, before the key is
 * known. 0 with *kdf filled; 1 when the file records none (a random master
 * key) or does not exist; -1 with err set when the file is damaged,
 * KEYSTORE_ERR_IO when it cannot be read. */
int keystore_kdf_params(const char *path, struct keystore_kdf *kdf, char *err, size_t errlen);

/* Opens the keystore at path (copied) with master (copied into locked
 * memory); a missing file is an empty keystore, and a version 1 file (no
 * tool key) is read as one whose records are all master-sealed. Refuses a
 * damaged file or a wrong master key ("the master key does not open this
 * keystore") with -1 and err set, *out NULL; KEYSTORE_ERR_IO (err set)
 * when the file cannot be read. Every master-sealed record is
 * verified here; tool-sealed ones when keystore_set_tool_key gives their
 * key. Free with keystore_free. */
int keystore_open(const char *path, const uint8_t master[KEYSTORE_KEY_BYTES], struct keystore **out,
                  char *err, size_t errlen);
/* Frees ks and wipes its keys; NULL is a no-op. */
void keystore_free(struct keystore *ks);

/* Gives the tool key (copied into locked memory; NULL: none), once, right
 * after keystore_open. With a key, records of provider "tool:NAME" are
 * sealed with it from now on (keystore_set, keystore_rotate). Returns:
 * 0 (KEYSTORE_TOOL_KEY_OK, or NONE for NULL): every tool-sealed record was
 *   verified under it;
 * 1 (KEYSTORE_TOOL_KEY_WRONG): it does not open the tool-sealed records
 *   (err names TOOL_CREDENTIALS_ENCRYPTION_KEY). The keystore stays usable
 *   for everything else: provider keys and master-sealed records open, a
 *   tool-sealed record's keystore_get fails with that message, keystore_set
 *   of a tool credential and keystore_rotate are refused, keystore_rm and
 *   keystore_save work (the tool-sealed records are kept as they are);
 * -1: the key is right but a tool-sealed record does not decrypt: the file
 *   is damaged (err says so); the caller discards ks as after a refused
 *   keystore_open. */
int keystore_set_tool_key(struct keystore *ks, const uint8_t *key, char *err, size_t errlen);
/* The state keystore_set_tool_key left. */
enum keystore_tool_key keystore_tool_key_state(const struct keystore *ks);

/* Seals secret[0..len) as the record (tenant, provider, key_id), replacing
 * one already there: with the tool key when provider is "tool:NAME" and a
 * tool key was given, else with the master key. In memory only until
 * keystore_save. 0, or -1 with err naming the invalid field (never the
 * secret), or saying that the tool key given is the wrong one. */
int keystore_set(struct keystore *ks, const char *tenant, const char *provider, const char *key_id,
                 const char *secret, size_t len, char *err, size_t errlen);
/* Decrypts a record into *secret_out (sodium_malloc'd, NUL-terminated;
 * free with keystore_secret_free) and its length into *len (may be NULL).
 * 0 found; 1 absent (*secret_out NULL); -1 with err set, also when the
 * record is tool-sealed and the tool key is missing or wrong (the message
 * names TOOL_CREDENTIALS_ENCRYPTION_KEY). */
int keystore_get(const struct keystore *ks, const char *tenant, const char *provider,
                 const char *key_id, char **secret_out, size_t *len, char *err, size_t errlen);
/* Wipes and frees a secret from keystore_get; NULL is a no-op. */
void keystore_secret_free(char *secret);
/* Removes a record. 0 removed, 1 absent. */
int keystore_rm(struct keystore *ks, const char *tenant, const char *provider, const char *key_id);
/* Number of records. */
size_t keystore_count(const struct keystore *ks);
/* Number of records sealed with the given key. */
size_t keystore_count_sealed(const struct keystore *ks, enum keystore_seal sealed);
/* Calls cb for every record (see keystore_list_cb). 0, or -1 with err set
 * when a record that can be opened here does not decrypt. */
int keystore_list(const struct keystore *ks, keystore_list_cb cb, void *ud, char *err,
                  size_t errlen);
/* Writes the keystore to its path atomically (mode 0600), in format
 * version 2. On failure (-1, err set) the old file is untouched. */
int keystore_save(struct keystore *ks, char *err, size_t errlen);
/* Re-encrypts every master-sealed record under new_master and records kdf
 * (NULL: the new key is random, no KDF recorded). Tool-sealed records stay
 * under the tool key: re-sealed with fresh nonces when it was given, kept
 * as they are when not. With a tool key, master-sealed tool credentials
 * move to it. In memory until keystore_save; on failure (-1, err set; also
 * when the tool key given is the wrong one) ks is unchanged. */
int keystore_rotate(struct keystore *ks, const uint8_t new_master[KEYSTORE_KEY_BYTES],
                    const struct keystore_kdf *kdf, char *err, size_t errlen);

#endif
