/*
 * Tests of store/masterkey: the order of the sources (a passphrase recorded
 * in the keystore's header, then MEMCHAT_MASTER_KEY, then master.key), the
 * strict base64 rules, creating master.key (mode, content, agreement
 * between concurrent first uses), refusing a master.key others can read or
 * that is damaged, rotation with masterkey_create_file, and that no message
 * repeats a key, a passphrase or a file's content.
 */
#include "config.h"

#include "testutil.h"

#include <stdbool.h>
#include <sys/wait.h>

#include <sodium.h>

#include "store/keystore.h"
#include "store/masterkey.h"
#include "util/alloc.h"

#define PASS       "correct horse battery staple"
#define HOWTO_TAIL " is not base64 of 32 bytes (make one with: head -c 32 /dev/urandom | base64)"

struct fx {
    char *dir;
    char *conf;     /* config dir: does not exist until a test makes it */
    char *keystore; /* keystore path: does not exist until a test makes it */
    char *keyfile;  /* conf/master.key */
};

static int setup(void **state)
{
    if (sodium_init() < 0)
        return -1;
    umask(022);
    struct fx *f = calloc(1, sizeof *f);
    f->dir = tu_mkdtemp();
    f->conf = xasprintf("%s/conf", f->dir);
    f->keystore = xasprintf("%s/keystore", f->dir);
    f->keyfile = xasprintf("%s/conf/master.key", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    tu_rmtree(f->dir);
    xfree(f->conf);
    xfree(f->keystore);
    xfree(f->keyfile);
    free(f->dir);
    free(f);
    return 0;
}

/* The base64 text of n bytes of key (caller frees). */
static char *b64_of(const uint8_t *key, size_t n)
{
    size_t sz = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
    char *s = xmalloc(sz);
    sodium_bin2base64(s, sz, key, n, sodium_base64_VARIANT_ORIGINAL);
    return s;
}

/* Writes conf/master.key holding text with the given mode. */
static void write_keyfile(struct fx *f, const char *text, mode_t mode)
{
    mkdir(f->conf, 0700);
    char *p = tu_write_file(f->conf, "master.key", text);
    assert_int_equal(chmod(p, mode), 0);
    free(p);
}

/* Saves a keystore at f->keystore with one record, sealed under a key
 * derived from pass with the cheapest KDF limits (the test is about the
 * order, not Argon2's cost); its header records the KDF. Fills key. */
static void make_passphrase_keystore(struct fx *f, const char *pass,
                                     uint8_t key[KEYSTORE_KEY_BYTES])
{
    char err[512] = "";
    struct keystore_kdf kdf;
    assert_int_equal(keystore_kdf_init(&kdf, crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_MEMLIMIT_MIN,
                                       err, sizeof err),
                     0);
    assert_int_equal(keystore_derive_key(pass, strlen(pass), &kdf, key, err, sizeof err), 0);
    struct keystore *ks = NULL;
    assert_int_equal(keystore_open(f->keystore, key, &ks, err, sizeof err), 0);
    assert_int_equal(keystore_set(ks, "default", "openai", "default", "sk-x", 4, err, sizeof err),
                     0);
    assert_int_equal(keystore_rotate(ks, key, &kdf, err, sizeof err), 0);
    assert_int_equal(keystore_save(ks, err, sizeof err), 0);
    keystore_free(ks);
}

/* The number of entries in dir besides "." and "..". */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

/* A passphrase recorded in the keystore's header decides, even when
 * MEMCHAT_MASTER_KEY and master.key both hold other valid keys; the
 * derived key opens the keystore. */
static void passphrase_header_beats_env_and_file(void **state)
{
    struct fx *f = *state;
    uint8_t want[KEYSTORE_KEY_BYTES], envkey[KEYSTORE_KEY_BYTES], filekey[KEYSTORE_KEY_BYTES];
    make_passphrase_keystore(f, PASS, want);
    randombytes_buf(envkey, sizeof envkey);
    randombytes_buf(filekey, sizeof filekey);
    char *env = b64_of(envkey, sizeof envkey), *file = b64_of(filekey, sizeof filekey);
    write_keyfile(f, file, 0600);

    struct masterkey_in in = {.keystore_path = f->keystore,
                              .config_dir = f->conf,
                              .env_b64 = env,
                              .pass = PASS,
                              .pass_len = strlen(PASS),
                              .create = true};
    uint8_t out[KEYSTORE_KEY_BYTES];
    enum masterkey_source src = MASTERKEY_NONE;
    char err[512] = "";
    assert_int_equal(masterkey_load(&in, out, &src, err, sizeof err), 0);
    assert_int_equal(src, MASTERKEY_PASSPHRASE);
    assert_memory_equal(out, want, sizeof want);
    struct keystore *ks = NULL;
    assert_int_equal(keystore_open(f->keystore, out, &ks, err, sizeof err), 0);
    assert_int_equal(keystore_count(ks), 1);
    keystore_free(ks);
    xfree(env);
    xfree(file);
}

/* A passphrase-protected keystore without a passphrase is refused with a
 * message that names the keystore and says how to give one, even when
 * MEMCHAT_MASTER_KEY is set. */
static void passphrase_needed_but_missing_is_a_clear_error(void **state)
{
    struct fx *f = *state;
    uint8_t key[KEYSTORE_KEY_BYTES];
    make_passphrase_keystore(f, PASS, key);
    char *env = b64_of(key, sizeof key);
    struct masterkey_in in = {
        .keystore_path = f->keystore, .config_dir = f->conf, .env_b64 = env, .create = true};
    uint8_t out[KEYSTORE_KEY_BYTES];
    enum masterkey_source src = MASTERKEY_FILE;
    char err[512] = "", want[1024];
    assert_int_equal(masterkey_load(&in, out, &src, err, sizeof err), -1);
    snprintf(want, sizeof want,
             "the keystore %s is protected by a passphrase: give it with --passphrase-stdin or "
             "at the prompt on a terminal",
             f->keystore);
    assert_string_equal(err, want);
    assert_int_equal(src, MASTERKEY_NONE);
    assert_int_equal(access(f->conf, F_OK), -1); /* nothing was created */
    xfree(env);
}

/* A wrong passphrase still derives a key (nothing can tell before the
 * keystore is opened), and keystore_open refuses that key. */
static void wrong_passphrase_gives_a_key_the_keystore_refuses(void **state)
{
    struct fx *f = *state;
    uint8_t key[KEYSTORE_KEY_BYTES];
    make_passphrase_keystore(f, PASS, key);
    struct masterkey_in in = {.keystore_path = f->keystore,
                              .config_dir = f->conf,
                              .pass = "CANARY-wrong",
                              .pass_len = 12};
    uint8_t out[KEYSTORE_KEY_BYTES];
    enum masterkey_source src = MASTERKEY_NONE;
    char err[512] = "";
    assert_int_equal(masterkey_load(&in, out, &src, err, sizeof err), 0);
    assert_int_equal(src, MASTERKEY_PASSPHRASE);
    struct keystore *ks = NULL;
    assert_int_equal(keystore_open(f->keystore, out, &ks, err, sizeof err), -1);
    assert_null(ks);
    assert_non_null(strstr(err, "the master key does not open this keystore"));
    assert_null(strstr(err, "CANARY"));
}

/* Without a KDF header (a keystore sealed under a random key), a set
 * MEMCHAT_MASTER_KEY beats master.key; surrounding whitespace is ignored,
 * and no passphrase is needed or used. */
static void env_beats_master_key_file(void **state)
{
    struct fx *f = *state;
    uint8_t envkey[KEYSTORE_KEY_BYTES], filekey[KEYSTORE_KEY_BYTES];
    randombytes_buf(envkey, sizeof envkey);
    randombytes_buf(filekey, sizeof filekey);
    char err[512] = "";
    struct keystore *ks = NULL;
    assert_int_equal(keystore_open(f->keystore, envkey, &ks, err, sizeof err), 0);
    assert_int_equal(keystore_save(ks, err, sizeof err), 0);
    keystore_free(ks);
    char *b = b64_of(envkey, sizeof envkey), *file = b64_of(filekey, sizeof filekey);
    char *env = xasprintf(" \t%s\r\n", b);
    write_keyfile(f, file, 0600);

    struct masterkey_in in = {.keystore_path = f->keystore,
                              .config_dir = f->conf,
                              .env_b64 = env,
                              .pass = PASS,
                              .pass_len = strlen(PASS)};
    uint8_t out[KEYSTORE_KEY_BYTES];
    enum masterkey_source src = MASTERKEY_NONE;
    assert_int_equal(masterkey_load(&in, out, &src, err, sizeof err), 0);
    assert_int_equal(src, MASTERKEY_ENV);
    assert_memory_equal(out, envkey, sizeof envkey);

    /* An empty value counts as unset: master.key decides. */
    in.env_b64 = "";
    assert_int_equal(masterkey_load(&in, out, &src, err, sizeof err), 0);
    assert_int_equal(src, MASTERKEY_FILE);
    assert_memory_equal(out, filekey, sizeof filekey);
    xfree(b);
    xfree(file);
    xfree(env);
}

/* Values that are not the canonical base64 of exactly 32 bytes are
 * refused with the one fixed message (so it cannot echo the value), and
 * out is left zeroed; master.key is not consulted instead. */
static void bad_env_values_are_refused_without_echoing_them(void **state)
{
    struct fx *f = *state;
    uint8_t raw[33];
    randombytes_buf(raw, sizeof raw);
    char *short31 = b64_of(raw, 31), *long33 = b64_of(raw, 33), *good = b64_of(raw, 32);
    /* Same length and alphabet as a key, but the last character before
     * '=' carries non-zero padding bits: a second spelling of a key. */
    char *padbits = xstrdup(good);
    padbits[42] = 'B'; /* value 1: a canonical key never has it (2 padding bits) */
    /* libsodium 1.0.18 decodes a byte with the high bit set as some
     * letter: a key with one must still be refused. */
    char *highbit = xstrdup(good);
    highbit[5] = (char)0x80;
    const char *bad[] = {short31,
                         long33,
                         padbits,
                         highbit,
                         "not base64 at all: CANARY-9d1e!!",
                         "QUJD",
                         "????????????????????????????????????????????"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct masterkey_in in = {.config_dir = f->conf, .env_b64 = bad[i], .create = true};
        uint8_t out[KEYSTORE_KEY_BYTES];
        memset(out, 0xAA, sizeof out);
        enum masterkey_source src = MASTERKEY_FILE;
        char err[512] = "";
        assert_int_equal(masterkey_load(&in, out, &src, err, sizeof err), -1);
        assert_string_equal(err, "MEMCHAT_MASTER_KEY" HOWTO_TAIL);
        assert_int_equal(src, MASTERKEY_NONE);
        uint8_t zero[KEYSTORE_KEY_BYTES] = {0};
        assert_memory_equal(out, zero, sizeof zero);
    }
    assert_int_equal(access(f->conf, F_OK), -1);

    /* masterkey_decode names what it decodes and accepts the good one. */
    uint8_t out[KEYSTORE_KEY_BYTES];
    char err[512] = "";
    assert_int_equal(masterkey_decode(long33, "the backup key", out, err, sizeof err), -1);
    assert_string_equal(err, "the backup key" HOWTO_TAIL);
    assert_int_equal(masterkey_decode(good, "the backup key", out, err, sizeof err), 0);
    assert_memory_equal(out, raw, 32);
    xfree(short31);
    xfree(long33);
    xfree(good);
    xfree(padbits);
    xfree(highbit);
}

/* With create, a missing master.key is made: the config dir 0700, the
 * file 0600 (whatever the umask), holding the key's base64 and a newline,
 * and no temporary file is left behind. */
static void master_key_is_created_0600_with_create(void **state)
{
    struct fx *f = *state;
    umask(0); /* the file's mode must not depend on it */
    struct masterkey_in in = {.keystore_path = f->keystore, .config_dir = f->conf, .create = true};
    uint8_t out[KEYSTORE_KEY_BYTES];
    enum masterkey_source src = MASTERKEY_NONE;
    char err[512] = "";
    assert_int_equal(masterkey_load(&in, out, &src, err, sizeof err), 0);
    umask(022);
    assert_int_equal(src, MASTERKEY_FILE);
    struct stat st;
    assert_int_equal(stat(f->conf, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);
    assert_int_equal(lstat(f->keyfile, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(count_entries(f->conf), 1);

    size_t len = 0;
    char *text = tu_read_file(f->keyfile, &len);
    char *b = b64_of(out, sizeof out);
    char *want = xasprintf("%s\n", b);
    assert_string_equal(text, want);
    assert_int_equal(len, 45);
    uint8_t zero[KEYSTORE_KEY_BYTES] = {0};
    assert_memory_not_equal(out, zero, sizeof zero);
    free(text);
    xfree(b);
    xfree(want);
}

/* Without create, a missing master.key is "no key yet": 1, source none,
 * and nothing is created. */
static void missing_master_key_without_create_returns_1(void **state)
{
    struct fx *f = *state;
    struct masterkey_in in = {.keystore_path = f->keystore, .config_dir = f->conf};
    uint8_t out[KEYSTORE_KEY_BYTES];
    enum masterkey_source src = MASTERKEY_ENV;
    char err[512] = "";
    assert_int_equal(masterkey_load(&in, out, &src, err, sizeof err), 1);
    assert_int_equal(src, MASTERKEY_NONE);
    assert_int_equal(access(f->conf, F_OK), -1);
}

/* The key created on first use is the one every later load returns, with
 * or without create. */
static void the_same_key_comes_back_on_later_loads(void **state)
{
    struct fx *f = *state;
    struct masterkey_in in = {.keystore_path = f->keystore, .config_dir = f->conf, .create = true};
    uint8_t first[KEYSTORE_KEY_BYTES], again[KEYSTORE_KEY_BYTES];
    enum masterkey_source src = MASTERKEY_NONE;
    char err[512] = "";
    assert_int_equal(masterkey_load(&in, first, &src, err, sizeof err), 0);
    assert_int_equal(masterkey_load(&in, again, &src, err, sizeof err), 0);
    assert_memory_equal(first, again, sizeof first);
    in.create = false;
    memset(again, 0, sizeof again);
    assert_int_equal(masterkey_load(&in, again, &src, err, sizeof err), 0);
    assert_int_equal(src, MASTERKEY_FILE);
    assert_memory_equal(first, again, sizeof first);

    /* A hand-made file without the trailing newline is read too. */
    uint8_t key[KEYSTORE_KEY_BYTES];
    randombytes_buf(key, sizeof key);
    char *b = b64_of(key, sizeof key);
    write_keyfile(f, b, 0600);
    assert_int_equal(masterkey_load(&in, again, &src, err, sizeof err), 0);
    assert_memory_equal(again, key, sizeof key);
    xfree(b);
}

/* A master.key with group or other bits is refused, with the exact fix in
 * the message, and is not changed; after the fix it loads. */
static void master_key_open_to_group_or_others_is_refused_with_the_fix(void **state)
{
    struct fx *f = *state;
    uint8_t key[KEYSTORE_KEY_BYTES];
    randombytes_buf(key, sizeof key);
    char *b = b64_of(key, sizeof key);
    const mode_t modes[] = {0640, 0604, 0620, 0602};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        write_keyfile(f, b, modes[i]);
        struct masterkey_in in = {.config_dir = f->conf, .create = true};
        uint8_t out[KEYSTORE_KEY_BYTES];
        enum masterkey_source src = MASTERKEY_NONE;
        char err[512] = "", want[1024];
        assert_int_equal(masterkey_load(&in, out, &src, err, sizeof err), -1);
        snprintf(want, sizeof want,
                 "%s is readable or writable by group or others (mode %04o); fix it with: chmod "
                 "600 %s",
                 f->keyfile, (unsigned)modes[i], f->keyfile);
        assert_string_equal(err, want);
        struct stat st;
        assert_int_equal(stat(f->keyfile, &st), 0);
        assert_int_equal(st.st_mode & 07777, modes[i]);
    }
    assert_int_equal(chmod(f->keyfile, 0600), 0);
    struct masterkey_in in = {.config_dir = f->conf};
    uint8_t out[KEYSTORE_KEY_BYTES];
    enum masterkey_source src = MASTERKEY_NONE;
    char err[512] = "";
    assert_int_equal(masterkey_load(&in, out, &src, err, sizeof err), 0);
    assert_memory_equal(out, key, sizeof key);
    xfree(b);
}

/* A master.key owned by another user is refused (needs root to arrange). */
static void master_key_owned_by_another_user_is_refused(void **state)
{
    struct fx *f = *state;
    if (geteuid() != 0)
        skip();
    uint8_t key[KEYSTORE_KEY_BYTES];
    randombytes_buf(key, sizeof key);
    char *b = b64_of(key, sizeof key);
    write_keyfile(f, b, 0600);
    assert_int_equal(chown(f->keyfile, 65534, (gid_t)-1), 0);
    struct masterkey_in in = {.config_dir = f->conf};
    uint8_t out[KEYSTORE_KEY_BYTES];
    enum masterkey_source src = MASTERKEY_NONE;
    char err[512] = "";
    assert_int_equal(masterkey_load(&in, out, &src, err, sizeof err), -1);
    assert_non_null(strstr(err, f->keyfile));
    assert_non_null(strstr(err, "is owned by uid 65534, not by you"));
    xfree(b);
}

/* Damaged content is refused with a message naming the path and never
 * the content; master.key is left as it is (no new key over it). */
static void damaged_master_key_is_refused_naming_the_path_not_the_content(void **state)
{
    struct fx *f = *state;
    uint8_t raw[33];
    randombytes_buf(raw, sizeof raw);
    char *good = b64_of(raw, 32), *short31 = b64_of(raw, 31);
    char *two_nl = xasprintf("%s\n\n", good), *lead_sp = xasprintf(" %s\n", good);
    char *trail_x = xasprintf("%s\nx", good);
    char *highbit = xasprintf("%s\n", good);
    highbit[7] = (char)0xC1;
    const char *bad[] = {"",      "\n",   "CANARY-51b0 not a key\n", two_nl, lead_sp, trail_x,
                         short31, highbit};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_keyfile(f, bad[i], 0600);
        struct masterkey_in in = {.config_dir = f->conf, .create = true};
        uint8_t out[KEYSTORE_KEY_BYTES];
        enum masterkey_source src = MASTERKEY_NONE;
        char err[512] = "", want[1024];
        assert_int_equal(masterkey_load(&in, out, &src, err, sizeof err), -1);
        snprintf(want, sizeof want,
                 "%s is damaged: it must hold base64 of 32 bytes and an optional newline",
                 f->keyfile);
        assert_string_equal(err, want);
        char *now = tu_read_file(f->keyfile, NULL);
        assert_string_equal(now, bad[i]);
        free(now);
    }
    xfree(good);
    xfree(short31);
    xfree(two_nl);
    xfree(lead_sp);
    xfree(trail_x);
    xfree(highbit);
}

/* A directory or a FIFO named master.key is refused (the FIFO without
 * blocking on it). */
static void master_key_that_is_not_a_regular_file_is_refused(void **state)
{
    struct fx *f = *state;
    assert_int_equal(mkdir(f->conf, 0700), 0);
    assert_int_equal(mkfifo(f->keyfile, 0600), 0);
    struct masterkey_in in = {.config_dir = f->conf, .create = true};
    uint8_t out[KEYSTORE_KEY_BYTES];
    enum masterkey_source src = MASTERKEY_NONE;
    char err[512] = "", want[1024];
    snprintf(want, sizeof want, "%s is not a regular file; it must hold the master key",
             f->keyfile);
    assert_int_equal(masterkey_load(&in, out, &src, err, sizeof err), -1);
    assert_string_equal(err, want);
    assert_int_equal(unlink(f->keyfile), 0);
    assert_int_equal(mkdir(f->keyfile, 0700), 0);
    assert_int_equal(masterkey_load(&in, out, &src, err, sizeof err), -1);
    assert_string_equal(err, want);
}

/* masterkey_create_file replaces the key (for `keys rotate`): a new key,
 * mode 0600, no temporary file left, and later loads return it. It also
 * makes a missing config dir. */
static void create_file_replaces_the_key(void **state)
{
    struct fx *f = *state;
    uint8_t first[KEYSTORE_KEY_BYTES], second[KEYSTORE_KEY_BYTES], loaded[KEYSTORE_KEY_BYTES];
    char err[512] = "";
    assert_int_equal(masterkey_create_file(f->conf, first, err, sizeof err), 0);
    assert_int_equal(masterkey_create_file(f->conf, second, err, sizeof err), 0);
    assert_memory_not_equal(first, second, sizeof first);
    struct stat st;
    assert_int_equal(stat(f->keyfile, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(count_entries(f->conf), 1);
    struct masterkey_in in = {.config_dir = f->conf};
    enum masterkey_source src = MASTERKEY_NONE;
    assert_int_equal(masterkey_load(&in, loaded, &src, err, sizeof err), 0);
    assert_int_equal(src, MASTERKEY_FILE);
    assert_memory_equal(loaded, second, sizeof second);
}

/* A damaged keystore header stops the search with the keystore's own
 * message (no fallback to another key that would then fail to open it). */
static void damaged_keystore_header_gives_the_keystores_message(void **state)
{
    struct fx *f = *state;
    free(tu_write_file(f->dir, "keystore", "{\"magic\":\"memchat-keystore\",\"version\":1"));
    struct keystore_kdf kdf;
    char want[512] = "";
    assert_int_equal(keystore_kdf_params(f->keystore, &kdf, want, sizeof want), -1);
    assert_non_null(strstr(want, f->keystore));

    uint8_t key[KEYSTORE_KEY_BYTES];
    randombytes_buf(key, sizeof key);
    char *env = b64_of(key, sizeof key);
    struct masterkey_in in = {
        .keystore_path = f->keystore, .config_dir = f->conf, .env_b64 = env, .create = true};
    uint8_t out[KEYSTORE_KEY_BYTES];
    enum masterkey_source src = MASTERKEY_NONE;
    char err[512] = "";
    assert_int_equal(masterkey_load(&in, out, &src, err, sizeof err), -1);
    assert_string_equal(err, want);
    assert_int_equal(src, MASTERKEY_NONE);
    xfree(env);
}

/* Several processes using memchat for the first time at once all end up
 * with one and the same key, the one in master.key, whoever wins the race
 * to create it. */
static void concurrent_first_use_agrees_on_one_key(void **state)
{
    struct fx *f = *state;
    enum { N = 6 };
    int p[N][2];
    pid_t pids[N];
    for (int i = 0; i < N; i++) {
        assert_int_equal(pipe(p[i]), 0);
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            struct masterkey_in in = {.config_dir = f->conf, .create = true};
            uint8_t out[KEYSTORE_KEY_BYTES];
            enum masterkey_source src = MASTERKEY_NONE;
            char err[512] = "";
            int rc = masterkey_load(&in, out, &src, err, sizeof err);
            if (rc != 0)
                _exit(10 + rc);
            ssize_t w = write(p[i][1], out, sizeof out);
            _exit(w == (ssize_t)sizeof out ? 0 : 3);
        }
        close(p[i][1]);
    }
    uint8_t keys[N][KEYSTORE_KEY_BYTES];
    for (int i = 0; i < N; i++) {
        int st = 0;
        assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
        assert_int_equal(read(p[i][0], keys[i], KEYSTORE_KEY_BYTES), KEYSTORE_KEY_BYTES);
        close(p[i][0]);
    }
    struct masterkey_in in = {.config_dir = f->conf};
    uint8_t out[KEYSTORE_KEY_BYTES];
    enum masterkey_source src = MASTERKEY_NONE;
    char err[512] = "";
    assert_int_equal(masterkey_load(&in, out, &src, err, sizeof err), 0);
    for (int i = 0; i < N; i++)
        assert_memory_equal(keys[i], out, sizeof out);
    assert_int_equal(count_entries(f->conf), 1);
}

/* Each source has its documented name. */
static void source_names_are_the_documented_ones(void **state)
{
    (void)state;
    assert_string_equal(masterkey_source_name(MASTERKEY_NONE), "none");
    assert_string_equal(masterkey_source_name(MASTERKEY_ENV), "MEMCHAT_MASTER_KEY");
    assert_string_equal(masterkey_source_name(MASTERKEY_FILE), "master.key");
    assert_string_equal(masterkey_source_name(MASTERKEY_PASSPHRASE), "passphrase");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(passphrase_header_beats_env_and_file, setup, teardown),
        cmocka_unit_test_setup_teardown(passphrase_needed_but_missing_is_a_clear_error, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(wrong_passphrase_gives_a_key_the_keystore_refuses, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(env_beats_master_key_file, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_env_values_are_refused_without_echoing_them, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(master_key_is_created_0600_with_create, setup, teardown),
        cmocka_unit_test_setup_teardown(missing_master_key_without_create_returns_1, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(the_same_key_comes_back_on_later_loads, setup, teardown),
        cmocka_unit_test_setup_teardown(master_key_open_to_group_or_others_is_refused_with_the_fix,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(master_key_owned_by_another_user_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            damaged_master_key_is_refused_naming_the_path_not_the_content, setup, teardown),
        cmocka_unit_test_setup_teardown(master_key_that_is_not_a_regular_file_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(create_file_replaces_the_key, setup, teardown),
        cmocka_unit_test_setup_teardown(damaged_keystore_header_gives_the_keystores_message, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(concurrent_first_use_agrees_on_one_key, setup, teardown),
        cmocka_unit_test_setup_teardown(source_names_are_the_documented_ones, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
