/*
 * The keystore: the one encrypted file in the data dir that holds provider
 * API keys and tool credentials (records whose provider is "tool:NAME"),
 * per tenant. Each record is sealed with XChaCha20-Poly1305 under a 32-byte
 * master key, with the tenant, provider and key id bound as associated data,
 * so a record moved to another slot does not decrypt. A check value in the
 * header tells a wrong master key apart from a damaged file. The file
 * format is documented at the top of keystore.c.
 */
#ifndef MEMCHAT_STORE_KEYSTORE_H
#define MEMCHAT_STORE_KEYSTORE_H

#include <stddef.h>
#include <stdint.h>

#define KEYSTORE_FILE_NAME    "keystore" /* in the data dir */
#define KEYSTORE_KEY_BYTES    32
#define KEYSTORE_SALT_BYTES   16
#define KEYSTORE_MAX_FILE     (1024 * 1024) /* larger files are refused */
#define KEYSTORE_MAX_SECRET   (64 * 1024)   /* longest secret accepted */
#define KEYSTORE_PROVIDER_MAX 64

/* Key-derivation parameters recorded in the header when the master key
 * comes from a passphrase (crypto_pwhash, Argon2id 1.3). */
struct keystore_kdf {
    uint8_t salt[KEYSTORE_SALT_BYTES];
    unsigned long long opslimit;
    size_t memlimit;
};

struct keystore;

/* Called by keystore_list for each record, in (tenant, provider, key_id)
 * order; masked is "****" plus the last 4 characters of secrets of 12 or
 * more printable bytes. Returning nonzero stops the listing. */
typedef int (*keystore_list_cb)(void *ud, const char *tenant, const char *provider,
                                const char *key_id, const char *masked);

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
 * key) or does not exist; -1 with err set when the file is damaged. */
int keystore_kdf_params(const char *path, struct keystore_kdf *kdf, char *err, size_t errlen);

/* Opens the keystore at path (copied) with master (copied into locked
 * memory); a missing file is an empty keystore. Refuses a damaged file or a
 * wrong master key ("the master key does not open this keystore") with -1
 * and err set, *out NULL. Every record is verified here. Free with
 * keystore_free. */
int keystore_open(const char *path, const uint8_t master[KEYSTORE_KEY_BYTES], struct keystore **out,
                  char *err, size_t errlen);
/* Frees ks and wipes its master key; NULL is a no-op. */
void keystore_free(struct keystore *ks);

/* Seals secret[0..len) as the record (tenant, provider, key_id), replacing
 * one already there. In memory only until keystore_save. 0, or -1 with err
 * naming the invalid field (never the secret). */
int keystore_set(struct keystore *ks, const char *tenant, const char *provider, const char *key_id,
                 const char *secret, size_t len, char *err, size_t errlen);
/* Decrypts a record into *secret_out (sodium_malloc'd, NUL-terminated;
 * free with keystore_secret_free) and its length into *len (may be NULL).
 * 0 found; 1 absent (*secret_out NULL); -1 with err set. */
int keystore_get(const struct keystore *ks, const char *tenant, const char *provider,
                 const char *key_id, char **secret_out, size_t *len, char *err, size_t errlen);
/* Wipes and frees a secret from keystore_get; NULL is a no-op. */
void keystore_secret_free(char *secret);
/* Removes a record. 0 removed, 1 absent. */
int keystore_rm(struct keystore *ks, const char *tenant, const char *provider, const char *key_id);
/* Number of records. */
size_t keystore_count(const struct keystore *ks);
/* Calls cb for every record (see keystore_list_cb). 0, or -1 with err set
 * when a record does not decrypt. */
int keystore_list(const struct keystore *ks, keystore_list_cb cb, void *ud, char *err,
                  size_t errlen);
/* Writes the keystore to its path atomically (mode 0600). On failure (-1,
 * err set) the old file is untouched. */
int keystore_save(struct keystore *ks, char *err, size_t errlen);
/* Re-encrypts every record under new_master and records kdf (NULL: the new
 * key is random, no KDF recorded). In memory until keystore_save; on
 * failure (-1, err set) ks is unchanged. */
int keystore_rotate(struct keystore *ks, const uint8_t new_master[KEYSTORE_KEY_BYTES],
                    const struct keystore_kdf *kdf, char *err, size_t errlen);

#endif
