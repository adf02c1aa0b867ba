/*
 * Fuzz target: the keystore decoder (store/keystore.h): the input is the
 * keystore file, opened with a fixed master key and then given a fixed
 * tool key, as `memchat keys` would. Every outcome must be clean: refused
 * with a message, or opened and then listed with each openable record
 * decrypted. The saved corpus holds real files sealed with these keys (a
 * provider key, tool credentials under either key, a KDF header, version 1),
 * so mutations reach the record checks behind the MAC. The input is also
 * decoded as base64, whose strict rule is checked by re-encoding: only the
 * one canonical spelling decodes.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "fuzz.h"
#include "memchat/engine.h"
#include "store/keystore.h"

#define B64_CAP 96 /* bytes decoded at most in the base64 check */

/* The keys the corpus files were sealed with: master 00 01 .. 1f, tool 42 x 32. */
static void fixed_keys(uint8_t master[KEYSTORE_KEY_BYTES], uint8_t tool[KEYSTORE_KEY_BYTES])
{
    for (int i = 0; i < KEYSTORE_KEY_BYTES; i++) {
        master[i] = (uint8_t)i;
        tool[i] = 0x42;
    }
}

struct list_state {
    const struct keystore *ks;
    size_t seen;
};

static int on_entry(void *ud, const struct keystore_entry *e)
{
    struct list_state *st = ud;
    st->seen++;
    if (e->tenant == NULL || e->provider == NULL || e->key_id == NULL)
        fuzz_fail("keystore: a listed record without its names");
    if (e->masked == NULL)
        return 0;
    char *secret = NULL;
    size_t len = 0;
    char err[512] = "";
    int rc =
        keystore_get(st->ks, e->tenant, e->provider, e->key_id, &secret, &len, err, sizeof err);
    if (rc == 0 && (secret == NULL || secret[len] != '\0'))
        fuzz_fail("keystore: a secret that is not NUL-terminated");
    if (rc == 1)
        fuzz_fail("keystore: a listed record is absent");
    if (rc == -1 && err[0] == '\0')
        fuzz_fail("keystore: keystore_get failed without a message");
    keystore_secret_free(secret);
    return 0;
}

static void check_file(const uint8_t *data, size_t size)
{
    uint8_t master[KEYSTORE_KEY_BYTES], tool[KEYSTORE_KEY_BYTES];
    fixed_keys(master, tool);
    const char *path = fuzz_scratch_write(KEYSTORE_FILE_NAME, data, size);
    char err[1024] = "";
    struct keystore_kdf kdf;
    int krc = keystore_kdf_params(path, &kdf, err, sizeof err);
    if (krc == -1 && err[0] == '\0')
        fuzz_fail("keystore: keystore_kdf_params failed without a message");
    struct keystore *ks = NULL;
    err[0] = '\0';
    if (keystore_open(path, master, &ks, err, sizeof err) != 0) {
        if (ks != NULL || err[0] == '\0')
            fuzz_fail("keystore: a refused open without a message, or with a keystore");
        return;
    }
    if (ks == NULL)
        fuzz_fail("keystore: an open that gave no keystore");
    int trc = keystore_set_tool_key(ks, tool, err, sizeof err);
    if (trc == -1) {
        keystore_free(ks);
        return;
    }
    struct list_state st = {ks, 0};
    err[0] = '\0';
    if (keystore_list(ks, on_entry, &st, err, sizeof err) != 0 && err[0] == '\0')
        fuzz_fail("keystore: keystore_list failed without a message");
    if (keystore_count(ks) != keystore_count_sealed(ks, KEYSTORE_SEAL_MASTER) +
                                  keystore_count_sealed(ks, KEYSTORE_SEAL_TOOL))
        fuzz_fail("keystore: the sealed counts do not add up");
    keystore_free(ks);
}

/* Strict base64: what decodes re-encodes to exactly the input. */
static void check_b64(const uint8_t *data, size_t size)
{
    size_t n = size < 4 * (B64_CAP / 3) + 4 ? size : 4 * (B64_CAP / 3) + 4;
    uint8_t out[B64_CAP];
    size_t got = 0;
    if (keystore_b64_decode((const char *)data, n, out, sizeof out, &got) != 0)
        return;
    if (got > sizeof out)
        fuzz_fail("keystore: base64 decoded past its cap");
    char back[4 * (B64_CAP / 3) + 8];
    sodium_bin2base64(back, sizeof back, out, got, sodium_base64_VARIANT_ORIGINAL);
    if (strlen(back) != n || memcmp(back, data, n) != 0)
        fuzz_fail("keystore: a base64 text that is not canonical was accepted");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_MAX_INPUT)
        return 0;
    if (mc_global_init() != 0 || sodium_init() < 0)
        fuzz_fail("keystore: mc_global_init or sodium_init failed");
    check_file(data, size);
    check_b64(data, size);
    return 0;
}
