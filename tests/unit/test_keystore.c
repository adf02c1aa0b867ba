/*
 * Tests of store/keystore: sealing and opening records, persistence, wrong
 * keys, tampering (every flipped bit, every truncation, a record moved to
 * another tenant), rotation, file mode and size limits, passphrase
 * derivation, and that no error message ever carries a secret. Then the
 * tool key (TOOL_CREDENTIALS_ENCRYPTION_KEY) of format version 2: tool
 * credentials sealed under it, a wrong or missing tool key locking only
 * them, rotation moving and keeping them, a relabelled or moved record
 * refused, and version 1 files still read.
 */
#include "config.h"

#include "testutil.h"

#include <sodium.h>

#include "store/keystore.h"

#define SECRET_A "sk-alpha-0123456789abcdef"
#define SECRET_B "sk-bravo-fedcba9876543210"
#define SECRET_T "{\"token\":\"tool-credential-xyz\"}"

struct fx {
    char *dir;
    char *path;
    uint8_t key[KEYSTORE_KEY_BYTES];
    uint8_t other[KEYSTORE_KEY_BYTES];
};

static int setup(void **state)
{
    if (sodium_init() < 0)
        return -1;
    struct fx *f = calloc(1, sizeof *f);
    f->dir = tu_mkdtemp();
    size_t n = strlen(f->dir) + sizeof "/keystore";
    f->path = malloc(n);
    snprintf(f->path, n, "%s/keystore", f->dir);
    randombytes_buf(f->key, sizeof f->key);
    randombytes_buf(f->other, sizeof f->other);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    tu_rmtree(f->dir);
    free(f->dir);
    free(f->path);
    free(f);
    return 0;
}

/* Writes n bytes to path, replacing it. */
static void write_bytes(const char *path, const char *p, size_t n)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(p, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);
}

/* Asserts the record holds exactly want. */
static void expect_secret(struct keystore *ks, const char *t, const char *p, const char *k,
                          const char *want)
{
    char err[512] = "", *s = NULL;
    size_t len = 0;
    assert_int_equal(keystore_get(ks, t, p, k, &s, &len, err, sizeof err), 0);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(s, want, len);
    assert_int_equal(s[len], '\0');
    keystore_secret_free(s);
}

/* Creates and saves a keystore holding the three standard records. */
static void make_three(struct fx *f)
{
    char err[512];
    struct keystore *ks;
    assert_int_equal(keystore_open(f->path, f->key, &ks, err, sizeof err), 0);
    assert_int_equal(
        keystore_set(ks, "alice", "openai", "default", SECRET_A, strlen(SECRET_A), err, sizeof err),
        0);
    assert_int_equal(
        keystore_set(ks, "bobby", "openai", "default", SECRET_B, strlen(SECRET_B), err, sizeof err),
        0);
    assert_int_equal(
        keystore_set(ks, "alice", "tool:github", "ci", SECRET_T, strlen(SECRET_T), err, sizeof err),
        0);
    assert_int_equal(keystore_save(ks, err, sizeof err), 0);
    keystore_free(ks);
}

/* Records of several tenants and providers come back exactly, replacing a
 * record overwrites it, absent slots report 1, and rm removes one. */
static void records_round_trip_across_tenants_and_providers(void **state)
{
    struct fx *f = *state;
    char err[512], dummy[] = "x", *s = dummy;
    struct keystore *ks;
    assert_int_equal(keystore_open(f->path, f->key, &ks, err, sizeof err), 0);
    assert_int_equal(keystore_count(ks), 0);
    assert_int_equal(
        keystore_set(ks, "alice", "openai", "default", SECRET_A, strlen(SECRET_A), err, sizeof err),
        0);
    assert_int_equal(
        keystore_set(ks, "bobby", "openai", "default", SECRET_B, strlen(SECRET_B), err, sizeof err),
        0);
    assert_int_equal(
        keystore_set(ks, "alice", "tool:github", "ci", SECRET_T, strlen(SECRET_T), err, sizeof err),
        0);
    expect_secret(ks, "alice", "openai", "default", SECRET_A);
    expect_secret(ks, "bobby", "openai", "default", SECRET_B);
    expect_secret(ks, "alice", "tool:github", "ci", SECRET_T);
    assert_int_equal(keystore_get(ks, "carol", "openai", "default", &s, NULL, err, sizeof err), 1);
    assert_null(s);
    assert_int_equal(keystore_set(ks, "alice", "openai", "default", "new", 3, err, sizeof err), 0);
    expect_secret(ks, "alice", "openai", "default", "new");
    assert_int_equal(keystore_count(ks), 3);
    assert_int_equal(keystore_rm(ks, "bobby", "openai", "default"), 0);
    assert_int_equal(keystore_rm(ks, "bobby", "openai", "default"), 1);
    assert_int_equal(keystore_get(ks, "bobby", "openai", "default", &s, NULL, err, sizeof err), 1);
    assert_int_equal(keystore_count(ks), 2);
    keystore_free(ks);
}

/* Invalid tenant, provider, key id and oversized secrets are refused with
 * the field named. */
static void invalid_names_and_oversized_secrets_are_refused(void **state)
{
    struct fx *f = *state;
    char err[512];
    struct keystore *ks;
    assert_int_equal(keystore_open(f->path, f->key, &ks, err, sizeof err), 0);
    assert_int_equal(keystore_set(ks, "a/b", "openai", "k", "s", 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "tenant"));
    assert_int_equal(keystore_set(ks, "a", "OpenAI", "k", "s", 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "provider"));
    assert_int_equal(keystore_set(ks, "a", "openai", "", "s", 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "key id"));
    char *big = calloc(1, KEYSTORE_MAX_SECRET + 1);
    assert_int_equal(
        keystore_set(ks, "a", "openai", "k", big, KEYSTORE_MAX_SECRET + 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "too long"));
    free(big);
    assert_int_equal(keystore_count(ks), 0);
    keystore_free(ks);
}

struct seen {
    int n;
    char line[4][256];
};

static int collect(void *ud, const struct keystore_entry *e)
{
    struct seen *s = ud;
    if (s->n < 4)
        snprintf(s->line[s->n], sizeof s->line[0], "%s %s %s %s", e->tenant, e->provider, e->key_id,
                 e->masked != NULL ? e->masked : "(sealed)");
    s->n++;
    return 0;
}

/* Records persist through save and reopen, the listing is sorted and masks
 * all but the last 4 characters, and the file holds no secret in clear. */
static void records_persist_through_save_and_reopen(void **state)
{
    struct fx *f = *state;
    char err[512];
    struct keystore *ks;
    make_three(f);
    assert_int_equal(keystore_open(f->path, f->key, &ks, err, sizeof err), 0);
    assert_int_equal(keystore_count(ks), 3);
    expect_secret(ks, "alice", "openai", "default", SECRET_A);
    expect_secret(ks, "bobby", "openai", "default", SECRET_B);
    expect_secret(ks, "alice", "tool:github", "ci", SECRET_T);
    struct seen seen = {0};
    assert_int_equal(keystore_list(ks, collect, &seen, err, sizeof err), 0);
    assert_int_equal(seen.n, 3);
    assert_string_equal(seen.line[0], "alice openai default ****cdef");
    assert_string_equal(seen.line[1], "alice tool:github ci ****yz\"}");
    assert_string_equal(seen.line[2], "bobby openai default ****3210");
    keystore_free(ks);
    size_t len = 0;
    char *text = tu_read_file(f->path, &len);
    assert_null(strstr(text, "alpha"));
    assert_null(strstr(text, "bravo"));
    assert_null(strstr(text, "tool-credential"));
    free(text);
}

/* A wrong master key is reported as such (not as per-record failures),
 * names the file, and leaves the file byte for byte as it was. */
static void wrong_master_key_is_refused_clearly_and_file_untouched(void **state)
{
    struct fx *f = *state;
    char err[512];
    struct keystore *ks = (struct keystore *)f;
    make_three(f);
    size_t len0 = 0, len1 = 0;
    char *before = tu_read_file(f->path, &len0);
    assert_int_equal(keystore_open(f->path, f->other, &ks, err, sizeof err), -1);
    assert_null(ks);
    assert_non_null(strstr(err, "the master key does not open this keystore"));
    assert_non_null(strstr(err, f->path));
    assert_null(strstr(err, "sk-"));
    char *after = tu_read_file(f->path, &len1);
    assert_int_equal(len0, len1);
    assert_memory_equal(before, after, len0);
    free(before);
    free(after);
}

/* Every single flipped bit of a saved file (with a KDF header and one
 * record) is refused at open, with the file named: no flip yields a secret
 * or a success. The file is never rewritten by a refused open. */
static void every_flipped_bit_is_refused(void **state)
{
    struct fx *f = *state;
    char err[512];
    struct keystore_kdf kdf;
    uint8_t key[KEYSTORE_KEY_BYTES];
    assert_int_equal(keystore_kdf_init(&kdf, crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_MEMLIMIT_MIN,
                                       err, sizeof err),
                     0);
    assert_int_equal(keystore_derive_key("pass", 4, &kdf, key, err, sizeof err), 0);
    struct keystore *ks;
    assert_int_equal(keystore_open(f->path, f->key, &ks, err, sizeof err), 0);
    assert_int_equal(
        keystore_set(ks, "alice", "openai", "default", SECRET_A, strlen(SECRET_A), err, sizeof err),
        0);
    assert_int_equal(keystore_rotate(ks, key, &kdf, err, sizeof err), 0);
    assert_int_equal(keystore_save(ks, err, sizeof err), 0);
    keystore_free(ks);
    size_t len = 0;
    char *orig = tu_read_file(f->path, &len);
    char *buf = malloc(len);
    size_t refused = 0;
    for (size_t bit = 0; bit < len * 8; bit++) {
        memcpy(buf, orig, len);
        buf[bit / 8] = (char)(buf[bit / 8] ^ (1 << (bit % 8)));
        write_bytes(f->path, buf, len);
        ks = NULL;
        err[0] = '\0';
        int rc = keystore_open(f->path, key, &ks, err, sizeof err);
        if (rc == 0) {
            /* Not expected; if it ever happens the data must be intact. */
            expect_secret(ks, "alice", "openai", "default", SECRET_A);
            keystore_free(ks);
            fail_msg("bit %zu flipped was accepted: %.*s", bit, (int)len, buf);
        }
        assert_null(ks);
        assert_non_null(strstr(err, f->path));
        assert_null(strstr(err, "sk-alpha"));
        size_t l2 = 0;
        char *now = tu_read_file(f->path, &l2);
        assert_int_equal(l2, len);
        assert_memory_equal(now, buf, len);
        free(now);
        refused++;
    }
    assert_int_equal(refused, len * 8);
    /* Restored, it opens again: the loop did not break the original. */
    write_bytes(f->path, orig, len);
    assert_int_equal(keystore_open(f->path, key, &ks, err, sizeof err), 0);
    expect_secret(ks, "alice", "openai", "default", SECRET_A);
    keystore_free(ks);
    sodium_memzero(key, sizeof key);
    free(buf);
    free(orig);
}

/* A file cut at every length short of its whole is refused. */
static void truncation_at_every_length_is_refused(void **state)
{
    struct fx *f = *state;
    char err[512];
    make_three(f);
    size_t len = 0;
    char *orig = tu_read_file(f->path, &len);
    for (size_t cut = 0; cut < len; cut++) {
        write_bytes(f->path, orig, cut);
        struct keystore *ks = NULL;
        assert_int_equal(keystore_open(f->path, f->key, &ks, err, sizeof err), -1);
        assert_null(ks);
        assert_non_null(strstr(err, f->path));
    }
    free(orig);
}

/* Replaces the first occurrence of from by to (same length) in path. */
static void edit_file(const char *path, const char *from, const char *to)
{
    size_t len = 0;
    char *text = tu_read_file(path, &len);
    char *at = strstr(text, from);
    assert_non_null(at);
    assert_int_equal(strlen(from), strlen(to));
    memcpy(at, to, strlen(to));
    write_bytes(path, text, len);
    free(text);
}

/* A record copied into another tenant's slot (the file's tenant field
 * edited), or into another provider, does not decrypt: the slot is bound
 * as associated data. */
static void record_moved_to_another_slot_does_not_decrypt(void **state)
{
    struct fx *f = *state;
    char err[512];
    struct keystore *ks;
    assert_int_equal(keystore_open(f->path, f->key, &ks, err, sizeof err), 0);
    assert_int_equal(
        keystore_set(ks, "alice", "openai", "default", SECRET_A, strlen(SECRET_A), err, sizeof err),
        0);
    assert_int_equal(keystore_save(ks, err, sizeof err), 0);
    keystore_free(ks);
    edit_file(f->path, "\"tenant\":\"alice\"", "\"tenant\":\"mallo\"");
    assert_int_equal(keystore_open(f->path, f->key, &ks, err, sizeof err), -1);
    assert_non_null(strstr(err, "does not decrypt"));
    edit_file(f->path, "\"tenant\":\"mallo\"", "\"tenant\":\"alice\"");
    assert_int_equal(keystore_open(f->path, f->key, &ks, err, sizeof err), 0);
    keystore_free(ks);
    edit_file(f->path, "\"provider\":\"openai\"", "\"provider\":\"gemini\"");
    assert_int_equal(keystore_open(f->path, f->key, &ks, err, sizeof err), -1);
    assert_non_null(strstr(err, "does not decrypt"));
}

/* Rotation: afterwards the old key no longer opens the file, the new key
 * does, and every record is intact. */
static void rotation_reencrypts_every_record_under_the_new_key(void **state)
{
    struct fx *f = *state;
    char err[512];
    struct keystore *ks;
    make_three(f);
    assert_int_equal(keystore_open(f->path, f->key, &ks, err, sizeof err), 0);
    assert_int_equal(keystore_rotate(ks, f->other, NULL, err, sizeof err), 0);
    expect_secret(ks, "alice", "openai", "default", SECRET_A);
    assert_int_equal(keystore_save(ks, err, sizeof err), 0);
    keystore_free(ks);
    assert_int_equal(keystore_open(f->path, f->key, &ks, err, sizeof err), -1);
    assert_non_null(strstr(err, "the master key does not open this keystore"));
    assert_int_equal(keystore_open(f->path, f->other, &ks, err, sizeof err), 0);
    assert_int_equal(keystore_count(ks), 3);
    expect_secret(ks, "alice", "openai", "default", SECRET_A);
    expect_secret(ks, "bobby", "openai", "default", SECRET_B);
    expect_secret(ks, "alice", "tool:github", "ci", SECRET_T);
    keystore_free(ks);
}

/* The saved file has mode 0600 whatever the umask. */
static void saved_file_has_mode_0600(void **state)
{
    struct fx *f = *state;
    mode_t old = umask(0);
    make_three(f);
    umask(old);
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
}

/* A file over the size limit is refused, naming the file and the limit,
 * and left as it was. */
static void oversized_file_is_refused(void **state)
{
    struct fx *f = *state;
    char err[512];
    size_t n = KEYSTORE_MAX_FILE + 1;
    char *big = malloc(n);
    memset(big, ' ', n);
    write_bytes(f->path, big, n);
    free(big);
    struct keystore *ks = NULL;
    assert_int_equal(keystore_open(f->path, f->key, &ks, err, sizeof err), -1);
    assert_null(ks);
    assert_non_null(strstr(err, f->path));
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal((size_t)st.st_size, n);
}

/* Passphrase derivation is deterministic for one salt and differs for
 * another; the KDF parameters are read back from the header before the
 * key is known, and the derived key opens the file. */
static void passphrase_derivation_is_deterministic_per_salt(void **state)
{
    struct fx *f = *state;
    char err[512];
    struct keystore_kdf k1, k2, back;
    uint8_t a[32], b[32], c[32];
    assert_int_equal(keystore_kdf_params(f->path, &back, err, sizeof err), 1);
    assert_int_equal(keystore_kdf_init(&k1, crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_MEMLIMIT_MIN,
                                       err, sizeof err),
                     0);
    assert_int_equal(keystore_kdf_init(&k2, crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_MEMLIMIT_MIN,
                                       err, sizeof err),
                     0);
    assert_memory_not_equal(k1.salt, k2.salt, sizeof k1.salt);
    assert_int_equal(keystore_derive_key("correct horse", 13, &k1, a, err, sizeof err), 0);
    assert_int_equal(keystore_derive_key("correct horse", 13, &k1, b, err, sizeof err), 0);
    assert_int_equal(keystore_derive_key("correct horse", 13, &k2, c, err, sizeof err), 0);
    assert_memory_equal(a, b, 32);
    assert_memory_not_equal(a, c, 32);
    assert_int_equal(keystore_kdf_init(&k1, 1, 1, err, sizeof err), -1);

    struct keystore *ks;
    assert_int_equal(keystore_open(f->path, f->key, &ks, err, sizeof err), 0);
    assert_int_equal(keystore_rotate(ks, c, &k2, err, sizeof err), 0);
    assert_int_equal(keystore_save(ks, err, sizeof err), 0);
    keystore_free(ks);
    assert_int_equal(keystore_kdf_params(f->path, &back, err, sizeof err), 0);
    assert_memory_equal(back.salt, k2.salt, sizeof back.salt);
    assert_int_equal(back.opslimit, k2.opslimit);
    assert_int_equal(back.memlimit, k2.memlimit);
    assert_int_equal(keystore_derive_key("correct horse", 13, &back, b, err, sizeof err), 0);
    assert_int_equal(keystore_open(f->path, b, &ks, err, sizeof err), 0);
    keystore_free(ks);
    assert_int_equal(keystore_derive_key("wrong horse", 11, &back, b, err, sizeof err), 0);
    assert_int_equal(keystore_open(f->path, b, &ks, err, sizeof err), -1);
    assert_non_null(strstr(err, "the master key does not open this keystore"));
}

/* No error path carries a secret: wrong key, damaged records, invalid
 * names and oversized secrets all leave the secret text out of err. */
static void no_error_message_contains_a_secret(void **state)
{
    struct fx *f = *state;
    char err[1024];
    struct keystore *ks;
    make_three(f);
    assert_int_equal(keystore_open(f->path, f->other, &ks, err, sizeof err), -1);
    assert_null(strstr(err, SECRET_A));
    assert_int_equal(keystore_open(f->path, f->key, &ks, err, sizeof err), 0);
    assert_int_equal(
        keystore_set(ks, "bad tenant", "openai", "k", SECRET_A, strlen(SECRET_A), err, sizeof err),
        -1);
    assert_null(strstr(err, SECRET_A));
    assert_null(strstr(err, "alpha"));
    keystore_free(ks);
    edit_file(f->path, "\"key_id\":\"default\"", "\"key_id\":\"defaulT\"");
    assert_int_equal(keystore_open(f->path, f->key, &ks, err, sizeof err), -1);
    assert_null(strstr(err, "alpha"));
    assert_null(strstr(err, "bravo"));
    assert_null(strstr(err, "tool-credential"));
}

/* ---- format version 2: the tool key ------------------------------------ */

#define SECRET_G "ghp_tool_github_token_0123GHUB"
#define SECRET_S "xoxb-tool-slack-token-4567SLCK"

/* Replaces the first occurrence of from by to (any length) in path. */
static void edit_file_any(const char *path, const char *from, const char *to)
{
    size_t len = 0;
    char *text = tu_read_file(path, &len);
    char *at = strstr(text, from);
    assert_non_null(at);
    size_t head = (size_t)(at - text), nf = strlen(from), nt = strlen(to);
    char *out = malloc(len - nf + nt + 1);
    memcpy(out, text, head);
    memcpy(out + head, to, nt);
    memcpy(out + head + nt, at + nf, len - head - nf);
    write_bytes(path, out, len - nf + nt);
    free(out);
    free(text);
}

/* Opens path with f->key and, when tool is not NULL, the tool key (which
 * must be accepted). */
static struct keystore *open_with(struct fx *f, const uint8_t *tool)
{
    char err[512] = "";
    struct keystore *ks = NULL;
    if (keystore_open(f->path, f->key, &ks, err, sizeof err) != 0)
        fail_msg("keystore_open: %s", err);
    if (tool != NULL && keystore_set_tool_key(ks, tool, err, sizeof err) != 0)
        fail_msg("keystore_set_tool_key: %s", err);
    return ks;
}

/* A keystore with acme's OpenAI key and two tool credentials sealed under
 * tool (GITHUB_TOKEN of tool:github, SLACK_TOKEN of tool:slack). */
static void make_tool_store(struct fx *f, const uint8_t *tool)
{
    char err[512];
    struct keystore *ks = open_with(f, tool);
    assert_int_equal(
        keystore_set(ks, "acme", "openai", "api_key", SECRET_A, strlen(SECRET_A), err, sizeof err),
        0);
    assert_int_equal(keystore_set(ks, "acme", "tool:github", "GITHUB_TOKEN", SECRET_G,
                                  strlen(SECRET_G), err, sizeof err),
                     0);
    assert_int_equal(keystore_set(ks, "acme", "tool:slack", "SLACK_TOKEN", SECRET_S,
                                  strlen(SECRET_S), err, sizeof err),
                     0);
    assert_int_equal(keystore_save(ks, err, sizeof err), 0);
    keystore_free(ks);
}

struct seals {
    int n;
    char line[4][160];
};

static int collect_seals(void *ud, const struct keystore_entry *e)
{
    struct seals *s = ud;
    if (s->n < 4)
        snprintf(s->line[s->n], sizeof s->line[0], "%s %s %s %s", e->provider, e->key_id,
                 e->sealed == KEYSTORE_SEAL_TOOL ? "tool" : "master",
                 e->masked != NULL ? e->masked : "(sealed)");
    s->n++;
    return 0;
}

/* Base64 (standard, padded) of p[0..n) into out. */
static void b64(const uint8_t *p, size_t n, char *out, size_t cap)
{
    sodium_bin2base64(out, cap, p, n, sodium_base64_VARIANT_ORIGINAL);
}

/* Writes a version 1 file, as memchat before the tool key wrote it, with
 * alice's OpenAI key and a tool credential, sealed under key. */
static void write_v1_file(const char *path, const uint8_t *key)
{
    static const char hdr_ad[] = "memchat-keystore/1/check/kdf=none";
    uint8_t check[40];
    randombytes_buf(check, 24);
    crypto_aead_xchacha20poly1305_ietf_encrypt(check + 24, NULL, NULL, 0, (const uint8_t *)hdr_ad,
                                               strlen(hdr_ad), NULL, check, key);
    char check_b64[80], text[4096];
    b64(check, sizeof check, check_b64, sizeof check_b64);
    int off = snprintf(text, sizeof text,
                       "{\"magic\":\"memchat-keystore\",\"version\":1,\"kdf\":null,"
                       "\"check\":\"%s\",\"records\":[",
                       check_b64);
    static const char *const recs[][4] = {
        {"alice", "openai", "default", SECRET_A},
        {"alice", "tool:github", "GITHUB_TOKEN", SECRET_G},
    };
    for (size_t i = 0; i < 2; i++) {
        uint8_t ad[256], nonce[24], ct[128];
        int adlen = snprintf((char *)ad, sizeof ad, "memchat-keystore/1/record%c%s%c%s%c%s", '\0',
                             recs[i][0], '\0', recs[i][1], '\0', recs[i][2]);
        randombytes_buf(nonce, sizeof nonce);
        unsigned long long clen = 0;
        crypto_aead_xchacha20poly1305_ietf_encrypt(ct, &clen, (const uint8_t *)recs[i][3],
                                                   strlen(recs[i][3]), ad, (size_t)adlen, NULL,
                                                   nonce, key);
        char nonce_b64[64], ct_b64[256];
        b64(nonce, sizeof nonce, nonce_b64, sizeof nonce_b64);
        b64(ct, (size_t)clen, ct_b64, sizeof ct_b64);
        off += snprintf(text + off, sizeof text - (size_t)off,
                        "%s{\"tenant\":\"%s\",\"provider\":\"%s\",\"key_id\":\"%s\","
                        "\"nonce\":\"%s\",\"ct\":\"%s\"}",
                        i ? "," : "", recs[i][0], recs[i][1], recs[i][2], nonce_b64, ct_b64);
    }
    off += snprintf(text + off, sizeof text - (size_t)off, "]}");
    write_bytes(path, text, (size_t)off);
}

/* A version 1 file opens with its master key (every record master-sealed,
 * the tool credential too), and is saved as version 2 with a "sealed"
 * marker on each record, which opens again. With a tool key given, the
 * version 1 tool credential stays master-sealed until a rotate moves it. A
 * version 1 file edited to carry version 2's members is refused. */
static void a_version_1_file_still_opens_and_saves_as_version_2(void **state)
{
    struct fx *f = *state;
    char err[512];
    write_v1_file(f->path, f->key);
    struct keystore *ks = open_with(f, f->other);
    assert_int_equal(keystore_count(ks), 2);
    assert_int_equal(keystore_count_sealed(ks, KEYSTORE_SEAL_MASTER), 2);
    expect_secret(ks, "alice", "openai", "default", SECRET_A);
    expect_secret(ks, "alice", "tool:github", "GITHUB_TOKEN", SECRET_G);
    assert_int_equal(keystore_save(ks, err, sizeof err), 0);
    keystore_free(ks);
    size_t len = 0;
    char *text = tu_read_file(f->path, &len);
    assert_non_null(strstr(text, "\"version\":2"));
    assert_non_null(strstr(text, "\"tool_check\":null"));
    assert_non_null(strstr(text, "\"sealed\":\"master\""));
    assert_null(strstr(text, "\"sealed\":\"tool\""));
    free(text);
    ks = open_with(f, NULL);
    expect_secret(ks, "alice", "openai", "default", SECRET_A);
    expect_secret(ks, "alice", "tool:github", "GITHUB_TOKEN", SECRET_G);
    keystore_free(ks);

    write_v1_file(f->path, f->key);
    edit_file_any(f->path, "\"kdf\":null,", "\"kdf\":null,\"tool_check\":null,");
    assert_int_equal(keystore_open(f->path, f->key, &ks, err, sizeof err), -1);
    assert_non_null(strstr(err, "missing or unknown members"));
    write_v1_file(f->path, f->key);
    edit_file_any(f->path, "\"version\":1", "\"version\":3");
    assert_int_equal(keystore_open(f->path, f->key, &ks, err, sizeof err), -1);
    assert_non_null(strstr(err, "unsupported version"));
}

/* With a tool key, tool credentials are sealed under it and provider keys
 * under the master key: the file marks each, holds a tool check, and the
 * master key alone cannot open the tool credentials (the master key given
 * as the tool key is refused as a wrong tool key). With the tool key, all
 * records open and list masked. */
static void tool_credentials_are_sealed_under_the_tool_key(void **state)
{
    struct fx *f = *state;
    char err[512];
    uint8_t tool[KEYSTORE_KEY_BYTES];
    randombytes_buf(tool, sizeof tool);
    make_tool_store(f, tool);
    size_t len = 0;
    char *text = tu_read_file(f->path, &len);
    assert_null(strstr(text, "\"tool_check\":null"));
    assert_non_null(strstr(text, "\"provider\":\"openai\",\"key_id\":\"api_key\","
                                 "\"sealed\":\"master\""));
    assert_non_null(strstr(text, "\"provider\":\"tool:github\",\"key_id\":\"GITHUB_TOKEN\","
                                 "\"sealed\":\"tool\""));
    assert_null(strstr(text, "0123GHUB"));
    free(text);

    struct keystore *ks = open_with(f, tool);
    assert_int_equal(keystore_tool_key_state(ks), KEYSTORE_TOOL_KEY_OK);
    assert_int_equal(keystore_count_sealed(ks, KEYSTORE_SEAL_TOOL), 2);
    expect_secret(ks, "acme", "openai", "api_key", SECRET_A);
    expect_secret(ks, "acme", "tool:github", "GITHUB_TOKEN", SECRET_G);
    expect_secret(ks, "acme", "tool:slack", "SLACK_TOKEN", SECRET_S);
    struct seals seen = {0};
    assert_int_equal(keystore_list(ks, collect_seals, &seen, err, sizeof err), 0);
    assert_int_equal(seen.n, 3);
    assert_string_equal(seen.line[0], "openai api_key master ****cdef");
    assert_string_equal(seen.line[1], "tool:github GITHUB_TOKEN tool ****GHUB");
    assert_string_equal(seen.line[2], "tool:slack SLACK_TOKEN tool ****SLCK");
    keystore_free(ks);

    assert_int_equal(keystore_open(f->path, f->key, &ks, err, sizeof err), 0);
    assert_int_equal(keystore_set_tool_key(ks, f->key, err, sizeof err), 1);
    keystore_free(ks);
    sodium_memzero(tool, sizeof tool);
}

/* A wrong tool key is a clear error naming TOOL_CREDENTIALS_ENCRYPTION_KEY
 * (never a secret) that locks only the tool-sealed records: provider keys
 * still open and can be set; a tool credential can be neither read nor
 * stored, rotate is refused; a save keeps the tool credentials as they
 * were, so the right key opens them afterwards; removing the last
 * tool-sealed record lifts the lock. */
static void a_wrong_tool_key_locks_only_the_tool_credentials(void **state)
{
    struct fx *f = *state;
    char err[512] = "", *s = NULL;
    uint8_t tool[KEYSTORE_KEY_BYTES];
    randombytes_buf(tool, sizeof tool);
    make_tool_store(f, tool);
    struct keystore *ks = open_with(f, NULL);
    assert_int_equal(keystore_set_tool_key(ks, f->other, err, sizeof err), 1);
    assert_non_null(strstr(err, "TOOL_CREDENTIALS_ENCRYPTION_KEY does not open"));
    assert_non_null(strstr(err, f->path));
    assert_int_equal(keystore_tool_key_state(ks), KEYSTORE_TOOL_KEY_WRONG);
    expect_secret(ks, "acme", "openai", "api_key", SECRET_A);
    assert_int_equal(
        keystore_get(ks, "acme", "tool:github", "GITHUB_TOKEN", &s, NULL, err, sizeof err), -1);
    assert_null(s);
    assert_non_null(strstr(err, "TOOL_CREDENTIALS_ENCRYPTION_KEY does not open"));
    assert_non_null(strstr(err, "acme/tool:github/GITHUB_TOKEN"));
    assert_null(strstr(err, "GHUB"));
    assert_int_equal(keystore_set(ks, "acme", "tool:github", "OTHER", "x", 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "TOOL_CREDENTIALS_ENCRYPTION_KEY"));
    assert_int_equal(keystore_rotate(ks, f->other, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "before rotating"));
    struct seals seen = {0};
    assert_int_equal(keystore_list(ks, collect_seals, &seen, err, sizeof err), 0);
    assert_string_equal(seen.line[1], "tool:github GITHUB_TOKEN tool (sealed)");
    assert_int_equal(
        keystore_set(ks, "beta", "openai", "api_key", SECRET_B, strlen(SECRET_B), err, sizeof err),
        0);
    assert_int_equal(keystore_save(ks, err, sizeof err), 0);
    keystore_free(ks);

    ks = open_with(f, tool);
    expect_secret(ks, "acme", "tool:github", "GITHUB_TOKEN", SECRET_G);
    expect_secret(ks, "beta", "openai", "api_key", SECRET_B);
    keystore_free(ks);

    ks = open_with(f, NULL);
    assert_int_equal(keystore_set_tool_key(ks, f->other, err, sizeof err), 1);
    assert_int_equal(keystore_rm(ks, "acme", "tool:github", "GITHUB_TOKEN"), 0);
    assert_int_equal(keystore_tool_key_state(ks), KEYSTORE_TOOL_KEY_WRONG);
    assert_int_equal(keystore_rm(ks, "acme", "tool:slack", "SLACK_TOKEN"), 0);
    assert_int_equal(keystore_tool_key_state(ks), KEYSTORE_TOOL_KEY_NONE);
    assert_int_equal(keystore_save(ks, err, sizeof err), 0);
    keystore_free(ks);
    size_t len = 0;
    char *text = tu_read_file(f->path, &len);
    assert_non_null(strstr(text, "\"tool_check\":null"));
    free(text);
    sodium_memzero(tool, sizeof tool);
}

/* Without the tool key, tool-sealed records stay sealed: listed (no mask),
 * keystore_get says TOOL_CREDENTIALS_ENCRYPTION_KEY is needed, a save
 * copies them as they are; a tool credential added meanwhile is sealed
 * with the master key. */
static void without_the_tool_key_tool_credentials_stay_sealed(void **state)
{
    struct fx *f = *state;
    char err[512] = "", *s = NULL;
    uint8_t tool[KEYSTORE_KEY_BYTES];
    randombytes_buf(tool, sizeof tool);
    make_tool_store(f, tool);
    struct keystore *ks = open_with(f, NULL);
    assert_int_equal(keystore_tool_key_state(ks), KEYSTORE_TOOL_KEY_NONE);
    assert_int_equal(keystore_count(ks), 3);
    expect_secret(ks, "acme", "openai", "api_key", SECRET_A);
    assert_int_equal(
        keystore_get(ks, "acme", "tool:slack", "SLACK_TOKEN", &s, NULL, err, sizeof err), -1);
    assert_null(s);
    assert_non_null(strstr(err, "sealed under TOOL_CREDENTIALS_ENCRYPTION_KEY, which is not set"));
    struct seals seen = {0};
    assert_int_equal(keystore_list(ks, collect_seals, &seen, err, sizeof err), 0);
    assert_string_equal(seen.line[2], "tool:slack SLACK_TOKEN tool (sealed)");
    assert_int_equal(keystore_set(ks, "acme", "tool:jira", "JIRA_TOKEN", SECRET_T, strlen(SECRET_T),
                                  err, sizeof err),
                     0);
    assert_int_equal(keystore_save(ks, err, sizeof err), 0);
    keystore_free(ks);

    ks = open_with(f, tool);
    assert_int_equal(keystore_count_sealed(ks, KEYSTORE_SEAL_TOOL), 2);
    expect_secret(ks, "acme", "tool:github", "GITHUB_TOKEN", SECRET_G);
    expect_secret(ks, "acme", "tool:slack", "SLACK_TOKEN", SECRET_S);
    expect_secret(ks, "acme", "tool:jira", "JIRA_TOKEN", SECRET_T);
    seen.n = 0;
    assert_int_equal(keystore_list(ks, collect_seals, &seen, err, sizeof err), 0);
    assert_string_equal(seen.line[2], "tool:jira JIRA_TOKEN master ****yz\"}");
    keystore_free(ks);
    sodium_memzero(tool, sizeof tool);
}

/* Rotate with a tool key moves master-sealed tool credentials to it: after
 * a rotate to a new master key, the tool credential opens with the tool
 * key and not without it, while provider keys stay master-sealed. */
static void rotate_moves_master_sealed_tool_credentials_to_the_tool_key(void **state)
{
    struct fx *f = *state;
    char err[512] = "", *s = NULL;
    uint8_t tool[KEYSTORE_KEY_BYTES];
    randombytes_buf(tool, sizeof tool);
    make_three(f); /* alice's tool:github record, master-sealed */
    struct keystore *ks = open_with(f, tool);
    assert_int_equal(keystore_count_sealed(ks, KEYSTORE_SEAL_TOOL), 0);
    assert_int_equal(keystore_rotate(ks, f->other, NULL, err, sizeof err), 0);
    assert_int_equal(keystore_count_sealed(ks, KEYSTORE_SEAL_TOOL), 1);
    assert_int_equal(keystore_count_sealed(ks, KEYSTORE_SEAL_MASTER), 2);
    assert_int_equal(keystore_save(ks, err, sizeof err), 0);
    keystore_free(ks);

    memcpy(f->key, f->other, sizeof f->key);
    ks = open_with(f, NULL);
    expect_secret(ks, "alice", "openai", "default", SECRET_A);
    assert_int_equal(keystore_get(ks, "alice", "tool:github", "ci", &s, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "TOOL_CREDENTIALS_ENCRYPTION_KEY"));
    keystore_free(ks);
    ks = open_with(f, tool);
    expect_secret(ks, "alice", "tool:github", "ci", SECRET_T);
    expect_secret(ks, "bobby", "openai", "default", SECRET_B);
    keystore_free(ks);
    sodium_memzero(tool, sizeof tool);
}

/* The nonce and ciphertext text of the record whose key_id is key_id, as
 * the saved file has them (caller frees). */
static char *record_text(const char *path, const char *key_id)
{
    size_t len = 0;
    char *text = tu_read_file(path, &len);
    char want[128];
    snprintf(want, sizeof want, "\"key_id\":\"%s\"", key_id);
    char *at = strstr(text, want);
    assert_non_null(at);
    char *end = strchr(at, '}');
    assert_non_null(end);
    char *out = strndup(at, (size_t)(end - at));
    free(text);
    return out;
}

/* Rotating the master key keeps the tool credentials readable: with the
 * tool key they are re-sealed under it (fresh nonces); without it they are
 * copied as they are and still open with the tool key afterwards. */
static void rotate_keeps_tool_credentials_readable(void **state)
{
    struct fx *f = *state;
    char err[512];
    uint8_t tool[KEYSTORE_KEY_BYTES], third[KEYSTORE_KEY_BYTES];
    randombytes_buf(tool, sizeof tool);
    randombytes_buf(third, sizeof third);
    make_tool_store(f, tool);
    char *before = record_text(f->path, "GITHUB_TOKEN");

    struct keystore *ks = open_with(f, NULL);
    assert_int_equal(keystore_rotate(ks, f->other, NULL, err, sizeof err), 0);
    assert_int_equal(keystore_save(ks, err, sizeof err), 0);
    keystore_free(ks);
    char *copied = record_text(f->path, "GITHUB_TOKEN");
    assert_string_equal(before, copied); /* kept as it was */
    memcpy(f->key, f->other, sizeof f->key);
    ks = open_with(f, tool);
    expect_secret(ks, "acme", "openai", "api_key", SECRET_A);
    expect_secret(ks, "acme", "tool:github", "GITHUB_TOKEN", SECRET_G);

    assert_int_equal(keystore_rotate(ks, third, NULL, err, sizeof err), 0);
    assert_int_equal(keystore_save(ks, err, sizeof err), 0);
    keystore_free(ks);
    char *resealed = record_text(f->path, "GITHUB_TOKEN");
    assert_string_not_equal(copied, resealed); /* a fresh nonce */
    memcpy(f->key, third, sizeof f->key);
    ks = open_with(f, tool);
    expect_secret(ks, "acme", "tool:github", "GITHUB_TOKEN", SECRET_G);
    expect_secret(ks, "acme", "tool:slack", "SLACK_TOKEN", SECRET_S);
    keystore_free(ks);
    free(before);
    free(copied);
    free(resealed);
    sodium_memzero(tool, sizeof tool);
}

/* Tampering with the tool key's records is refused: a tool-sealed record
 * relabelled "master" does not decrypt at open; a master-sealed tool
 * credential relabelled "tool", or a tool-sealed one moved to another
 * tenant, is refused as damaged once the (right) tool key is given; a
 * provider key relabelled "tool" is refused at open; a tool check removed
 * or added is refused at open. No message carries a secret. */
static void a_relabelled_or_moved_tool_record_is_refused(void **state)
{
    struct fx *f = *state;
    char err[512] = "";
    uint8_t tool[KEYSTORE_KEY_BYTES];
    randombytes_buf(tool, sizeof tool);
    make_tool_store(f, tool);
    size_t len = 0;
    char *orig = tu_read_file(f->path, &len);
    struct keystore *ks = NULL;

    edit_file_any(f->path, "\"GITHUB_TOKEN\",\"sealed\":\"tool\"",
                  "\"GITHUB_TOKEN\",\"sealed\":\"master\"");
    assert_int_equal(keystore_open(f->path, f->key, &ks, err, sizeof err), -1);
    assert_non_null(strstr(err, "does not decrypt"));

    write_bytes(f->path, orig, len);
    edit_file_any(f->path, "\"api_key\",\"sealed\":\"master\"", "\"api_key\",\"sealed\":\"tool\"");
    assert_int_equal(keystore_open(f->path, f->key, &ks, err, sizeof err), -1);
    assert_non_null(strstr(err, "provider key is marked as sealed with the tool key"));

    write_bytes(f->path, orig, len);
    edit_file_any(f->path, "\"tenant\":\"acme\",\"provider\":\"tool:slack\"",
                  "\"tenant\":\"evil\",\"provider\":\"tool:slack\"");
    assert_int_equal(keystore_open(f->path, f->key, &ks, err, sizeof err), 0);
    assert_int_equal(keystore_set_tool_key(ks, tool, err, sizeof err), -1);
    assert_non_null(strstr(err, "damaged"));
    assert_non_null(strstr(err, "evil/tool:slack/SLACK_TOKEN"));
    assert_null(strstr(err, "SLCK"));
    keystore_free(ks);

    write_bytes(f->path, orig, len);
    char *tc = strstr(orig, "\"tool_check\":\"");
    assert_non_null(tc);
    char *tc_end = strchr(tc + 14, '"');
    char tool_check[128];
    snprintf(tool_check, sizeof tool_check, "%.*s", (int)(tc_end + 1 - tc), tc);
    edit_file_any(f->path, tool_check, "\"tool_check\":null");
    assert_int_equal(keystore_open(f->path, f->key, &ks, err, sizeof err), -1);
    assert_non_null(strstr(err, "no tool_check"));

    /* A master-sealed tool credential relabelled "tool" (in a file that
     * had none): with the right tool key, it does not decrypt. */
    unlink(f->path);
    make_three(f);
    ks = open_with(f, NULL);
    assert_int_equal(
        keystore_set(ks, "zed", "tool:x", "K", SECRET_B, strlen(SECRET_B), err, sizeof err), 0);
    assert_int_equal(keystore_set_tool_key(ks, tool, err, sizeof err), 0);
    assert_int_equal(
        keystore_set(ks, "zed", "tool:y", "K", SECRET_B, strlen(SECRET_B), err, sizeof err), 0);
    assert_int_equal(keystore_save(ks, err, sizeof err), 0);
    keystore_free(ks);
    edit_file_any(f->path, "\"ci\",\"sealed\":\"master\"", "\"ci\",\"sealed\":\"tool\"");
    assert_int_equal(keystore_open(f->path, f->key, &ks, err, sizeof err), 0);
    assert_int_equal(keystore_set_tool_key(ks, tool, err, sizeof err), -1);
    assert_non_null(strstr(err, "alice/tool:github/ci does not decrypt"));
    assert_null(strstr(err, "tool-credential"));
    keystore_free(ks);

    /* A tool check with no tool-sealed record. */
    unlink(f->path);
    make_three(f);
    edit_file_any(f->path, "\"tool_check\":null", tool_check);
    assert_int_equal(keystore_open(f->path, f->key, &ks, err, sizeof err), -1);
    assert_non_null(strstr(err, "no record sealed with the tool key"));
    free(orig);
    sodium_memzero(tool, sizeof tool);
}

/* Every single flipped bit of a file holding a provider key and a tool
 * credential under the tool key is caught: refused at open, or (in the
 * tool credential or its check) by keystore_set_tool_key with the right
 * tool key; no flip yields a different secret. */
static void every_flipped_bit_is_caught_with_the_tool_key(void **state)
{
    struct fx *f = *state;
    char err[512];
    uint8_t tool[KEYSTORE_KEY_BYTES];
    randombytes_buf(tool, sizeof tool);
    struct keystore *ks = open_with(f, tool);
    assert_int_equal(
        keystore_set(ks, "acme", "openai", "api_key", SECRET_A, strlen(SECRET_A), err, sizeof err),
        0);
    assert_int_equal(keystore_set(ks, "acme", "tool:github", "GITHUB_TOKEN", SECRET_G,
                                  strlen(SECRET_G), err, sizeof err),
                     0);
    assert_int_equal(keystore_save(ks, err, sizeof err), 0);
    keystore_free(ks);
    size_t len = 0;
    char *orig = tu_read_file(f->path, &len);
    char *buf = malloc(len);
    size_t at_open = 0, at_tool_key = 0;
    for (size_t bit = 0; bit < len * 8; bit++) {
        memcpy(buf, orig, len);
        buf[bit / 8] = (char)(buf[bit / 8] ^ (1 << (bit % 8)));
        write_bytes(f->path, buf, len);
        ks = NULL;
        if (keystore_open(f->path, f->key, &ks, err, sizeof err) != 0) {
            assert_null(ks);
            at_open++;
            continue;
        }
        int rc = keystore_set_tool_key(ks, tool, err, sizeof err);
        if (rc == 0)
            fail_msg("bit %zu flipped was accepted: %.*s", bit, (int)len, buf);
        assert_non_null(strstr(err, f->path));
        assert_null(strstr(err, "GHUB"));
        keystore_free(ks);
        at_tool_key++;
    }
    assert_int_equal(at_open + at_tool_key, len * 8);
    assert_true(at_tool_key > 0);
    write_bytes(f->path, orig, len);
    ks = open_with(f, tool);
    expect_secret(ks, "acme", "tool:github", "GITHUB_TOKEN", SECRET_G);
    keystore_free(ks);
    free(buf);
    free(orig);
    sodium_memzero(tool, sizeof tool);
}

/* A tool name may hold capitals: "tool:GitHub" is a valid provider, and
 * distinct from "tool:github"; other providers stay lower-case. */
static void tool_providers_take_any_tool_name(void **state)
{
    struct fx *f = *state;
    char err[512];
    struct keystore *ks = open_with(f, NULL);
    assert_int_equal(keystore_set(ks, "a", "tool:GitHub_2-x", "TOKEN", "1", 1, err, sizeof err), 0);
    assert_int_equal(keystore_set(ks, "a", "tool:github_2-x", "TOKEN", "2", 1, err, sizeof err), 0);
    char name[80];
    snprintf(name, sizeof name, "tool:%064d", 7);
    assert_int_equal(keystore_set(ks, "a", name, "TOKEN", "3", 1, err, sizeof err), 0);
    snprintf(name, sizeof name, "tool:%065d", 7);
    assert_int_equal(keystore_set(ks, "a", name, "TOKEN", "4", 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "provider"));
    assert_int_equal(keystore_set(ks, "a", "tool:", "TOKEN", "5", 1, err, sizeof err), -1);
    assert_int_equal(keystore_set(ks, "a", "tool:a b", "TOKEN", "6", 1, err, sizeof err), -1);
    assert_int_equal(keystore_save(ks, err, sizeof err), 0);
    keystore_free(ks);
    ks = open_with(f, NULL);
    expect_secret(ks, "a", "tool:GitHub_2-x", "TOKEN", "1");
    expect_secret(ks, "a", "tool:github_2-x", "TOKEN", "2");
    keystore_free(ks);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(records_round_trip_across_tenants_and_providers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(invalid_names_and_oversized_secrets_are_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(records_persist_through_save_and_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(wrong_master_key_is_refused_clearly_and_file_untouched,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(every_flipped_bit_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(truncation_at_every_length_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(record_moved_to_another_slot_does_not_decrypt, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(rotation_reencrypts_every_record_under_the_new_key, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(saved_file_has_mode_0600, setup, teardown),
        cmocka_unit_test_setup_teardown(oversized_file_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(passphrase_derivation_is_deterministic_per_salt, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(no_error_message_contains_a_secret, setup, teardown),
        cmocka_unit_test_setup_teardown(a_version_1_file_still_opens_and_saves_as_version_2, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(tool_credentials_are_sealed_under_the_tool_key, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_wrong_tool_key_locks_only_the_tool_credentials, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(without_the_tool_key_tool_credentials_stay_sealed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(rotate_moves_master_sealed_tool_credentials_to_the_tool_key,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(rotate_keeps_tool_credentials_readable, setup, teardown),
        cmocka_unit_test_setup_teardown(a_relabelled_or_moved_tool_record_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(every_flipped_bit_is_caught_with_the_tool_key, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(tool_providers_take_any_tool_name, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
