/*
 * Tests of store/keystore: sealing and opening records, persistence, wrong
 * keys, tampering (every flipped bit, every truncation, a record moved to
 * another tenant), rotation, file mode and size limits, passphrase
 * derivation, and that no error message ever carries a secret.
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

static int collect(void *ud, const char *t, const char *p, const char *k, const char *masked)
{
    struct seen *s = ud;
    if (s->n < 4)
        snprintf(s->line[s->n], sizeof s->line[0], "%s %s %s %s", t, p, k, masked);
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
