/*
 * Finding, reading and creating the master key (see masterkey.h).
 *
 * master.key holds the key as standard base64 and a newline, 45 bytes. It
 * is checked before it is trusted: a regular file (opened O_NONBLOCK so a
 * FIFO put in its place cannot hang us, and checked with fstat on the open
 * descriptor, so nothing can be swapped in between), owned by us, with no
 * group or other bits. It is created by writing a temporary file, syncing
 * it and link()ing it into place: link fails with EEXIST exactly like
 * O_CREAT|O_EXCL when another process got there first (we then read that
 * one), and unlike O_EXCL it never shows a concurrent reader, or a
 * crash, an empty or half-written master.key.
 *
 * Base64 is decoded strictly (the text must be exactly what encoding the
 * key gives back), as keystore.c does, so a key has one spelling only.
 * The key goes straight into the caller's buffer; the only copies are
 * base64 texts on our stack, wiped with sodium_memzero.
 */
#include "config.h"

#include "store/masterkey.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "util/alloc.h"
#include "util/fileio.h"
#include "util/paths.h"

#define MK_VARIANT sodium_base64_VARIANT_ORIGINAL
/* The base64 text of a key: 44 characters (the NUL is counted here). */
#define MK_B64_SIZE sodium_base64_ENCODED_LEN(KEYSTORE_KEY_BYTES, MK_VARIANT)
#define MK_HOWTO    "make one with: head -c 32 /dev/urandom | base64"

_Static_assert(MK_B64_SIZE == 45, "base64 of 32 bytes is 44 characters");

const char *masterkey_source_name(enum masterkey_source s)
{
    switch (s) {
    case MASTERKEY_NONE:
        return "none";
    case MASTERKEY_ENV:
        return MASTERKEY_ENV_NAME;
    case MASTERKEY_FILE:
        return MASTERKEY_FILE_NAME;
    case MASTERKEY_PASSPHRASE:
        return "passphrase";
    }
    return "none";
}

/* Decodes s[0..n), which must be exactly the 44-character base64 text of a
 * key (no whitespace), into out. 0, or -1 with out zeroed. */
static int mk_decode_exact(const char *s, size_t n, uint8_t out[KEYSTORE_KEY_BYTES])
{
    size_t got = 0;
    if (n != MK_B64_SIZE - 1 || keystore_b64_decode(s, n, out, KEYSTORE_KEY_BYTES, &got) != 0 ||
        got != KEYSTORE_KEY_BYTES) {
        sodium_memzero(out, KEYSTORE_KEY_BYTES);
        return -1;
    }
    return 0;
}

static int mk_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

int masterkey_decode(const char *b64, const char *what, uint8_t out[KEYSTORE_KEY_BYTES], char *err,
                     size_t errlen)
{
    const char *s = b64 != NULL ? b64 : "";
    size_t n = strlen(s);
    while (n > 0 && mk_is_space(*s)) {
        s++;
        n--;
    }
    while (n > 0 && mk_is_space(s[n - 1]))
        n--;
    if (mk_decode_exact(s, n, out) != 0) {
        snprintf(err, errlen, "%s is not base64 of 32 bytes (" MK_HOWTO ")", what);
        return -1;
    }
    return 0;
}

/* Fills out with a fresh random key and text with its base64 and '\n'
 * (NUL-terminated); returns the text's length. */
static size_t mk_fresh_key(uint8_t out[KEYSTORE_KEY_BYTES], char text[MK_B64_SIZE + 1])
{
    randombytes_buf(out, KEYSTORE_KEY_BYTES);
    sodium_bin2base64(text, MK_B64_SIZE, out, KEYSTORE_KEY_BYTES, MK_VARIANT);
    text[MK_B64_SIZE - 1] = '\n';
    text[MK_B64_SIZE] = '\0';
    return MK_B64_SIZE;
}

/* Reads and checks path. 0 with out filled, 1 when it does not exist, -1
 * with err set (out zeroed) when it is refused, KEYSTORE_ERR_IO when it
 * cannot be read. */
static int mk_read_file(const char *path, uint8_t out[KEYSTORE_KEY_BYTES], char *err, size_t errlen)
{
    int fd = fileio_open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY, 0);
    if (fd < 0) {
        if (errno == ENOENT)
            return 1;
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return KEYSTORE_ERR_IO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "cannot read %s: fstat: %s", path, strerror(errno));
        close(fd);
        return KEYSTORE_ERR_IO;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s is not a regular file; it must hold the master key", path);
        close(fd);
        return -1;
    }
    if (st.st_uid != geteuid()) {
        snprintf(err, errlen,
                 "%s is owned by uid %lu, not by you (uid %lu); refusing a master key another "
                 "user controls (fix it with: chown %lu %s)",
                 path, (unsigned long)st.st_uid, (unsigned long)geteuid(), (unsigned long)geteuid(),
                 path);
        close(fd);
        return -1;
    }
    if ((st.st_mode & 077) != 0) {
        snprintf(err, errlen,
                 "%s is readable or writable by group or others (mode %04o); fix it with: chmod "
                 "600 %s",
                 path, (unsigned)(st.st_mode & 07777), path);
        close(fd);
        return -1;
    }
    /* One byte more than the longest valid content shows a longer file. */
    char buf[MK_B64_SIZE + 1];
    size_t n = 0;
    int rc = 0;
    while (n < sizeof buf) {
        ssize_t r = read(fd, buf + n, sizeof buf - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
            rc = KEYSTORE_ERR_IO;
            break;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (rc == 0) {
        size_t m = n > 0 && buf[n - 1] == '\n' ? n - 1 : n;
        if (n == sizeof buf || mk_decode_exact(buf, m, out) != 0) {
            snprintf(err, errlen,
                     "%s is damaged: it must hold base64 of 32 bytes and an optional newline",
                     path);
            rc = -1;
        }
    }
    sodium_memzero(buf, sizeof buf);
    if (rc != 0)
        sodium_memzero(out, KEYSTORE_KEY_BYTES);
    return rc;
}

/* Creates path (in dir) with a fresh key unless it exists. 0 created with
 * out filled; 1 when another process created it first; KEYSTORE_ERR_IO
 * with err set when a step fails, -1 when dir exists but is not a
 * directory. out is zeroed unless 0. */
static int mk_create_exclusive(const char *dir, const char *path, uint8_t out[KEYSTORE_KEY_BYTES],
                               char *err, size_t errlen)
{
    if (paths_mkdir_p(dir, 0700, err, errlen) != 0) {
        struct stat st;
        return stat(dir, &st) == 0 && !S_ISDIR(st.st_mode) ? -1 : KEYSTORE_ERR_IO;
    }
    char text[MK_B64_SIZE + 1];
    size_t tlen = mk_fresh_key(out, text);
    char *tmp = xasprintf("%s.tmp.XXXXXX", path);
    const char *step = NULL;
    int rc = 0;
    int fd = fileio_mkostemp(tmp);
    if (fd < 0)
        step = "create a temporary file";
    else if (fchmod(fd, 0600) != 0) /* exactly 0600, whatever the umask */
        step = "fchmod";
    else if (fileio_write_all(fd, text, tlen) != 0)
        step = "write";
    else if (fileio_fsync(fd) != 0)
        step = "fsync";
    if (fd >= 0) {
        if (close(fd) != 0 && step == NULL)
            step = "close";
        if (step == NULL && fileio_link(tmp, path) != 0) {
            if (errno == EEXIST)
                rc = 1;
            else
                step = "link";
        }
        int saved = errno;
        unlink(tmp);
        errno = saved;
    }
    if (step != NULL) {
        snprintf(err, errlen, "cannot create %s: %s: %s", path, step, strerror(errno));
        rc = KEYSTORE_ERR_IO;
    } else if (rc == 0 && fileio_sync_dir(dir) != 0) {
        /* The key is in place and may already be in use by another
         * process: keep it, but say it may not survive a crash. */
        snprintf(err, errlen,
                 "cannot create %s: fsync directory %s: %s (the new key is in place but may "
                 "not survive a crash)",
                 path, dir, strerror(errno));
        rc = KEYSTORE_ERR_IO;
    }
    sodium_memzero(text, sizeof text);
    if (rc != 0)
        sodium_memzero(out, KEYSTORE_KEY_BYTES);
    xfree(tmp);
    return rc;
}

int masterkey_load(const struct masterkey_in *in, uint8_t out[KEYSTORE_KEY_BYTES],
                   enum masterkey_source *src, char *err, size_t errlen)
{
    *src = MASTERKEY_NONE;
    sodium_memzero(out, KEYSTORE_KEY_BYTES);
    if (in->keystore_path != NULL) {
        struct keystore_kdf kdf;
        int rc = keystore_kdf_params(in->keystore_path, &kdf, err, errlen);
        if (rc < 0)
            return rc;
        if (rc == 0) {
            if (in->pass == NULL) {
                snprintf(err, errlen,
                         "the keystore %s is protected by a passphrase: give it with "
                         "--passphrase-stdin or at the prompt on a terminal",
                         in->keystore_path);
                return -1;
            }
            if (keystore_derive_key(in->pass, in->pass_len, &kdf, out, err, errlen) != 0)
                return -1;
            *src = MASTERKEY_PASSPHRASE;
            return 0;
        }
    }
    if (in->env_b64 != NULL && in->env_b64[0] != '\0') {
        if (masterkey_decode(in->env_b64, MASTERKEY_ENV_NAME, out, err, errlen) != 0)
            return -1;
        *src = MASTERKEY_ENV;
        return 0;
    }
    if (in->config_dir == NULL || in->config_dir[0] == '\0') {
        snprintf(err, errlen, "no config directory to keep " MASTERKEY_FILE_NAME " in");
        return -1;
    }
    char *path = paths_join(in->config_dir, MASTERKEY_FILE_NAME);
    int rc = mk_read_file(path, out, err, errlen);
    if (rc == 1 && in->create) {
        rc = mk_create_exclusive(in->config_dir, path, out, err, errlen);
        if (rc == 1) {
            /* Another process published its key first: use that one. */
            rc = mk_read_file(path, out, err, errlen);
            if (rc == 1) {
                snprintf(err, errlen, "%s was created by another process and removed again", path);
                rc = -1;
            }
        }
    }
    if (rc == 0)
        *src = MASTERKEY_FILE;
    xfree(path);
    return rc;
}

int masterkey_create_file(const char *config_dir, uint8_t out[KEYSTORE_KEY_BYTES], char *err,
                          size_t errlen)
{
    if (paths_mkdir_p(config_dir, 0700, err, errlen) != 0) {
        sodium_memzero(out, KEYSTORE_KEY_BYTES);
        return -1;
    }
    char text[MK_B64_SIZE + 1];
    size_t tlen = mk_fresh_key(out, text);
    char *path = paths_join(config_dir, MASTERKEY_FILE_NAME);
    int rc = fileio_replace(path, text, tlen, 0600, err, errlen);
    sodium_memzero(text, sizeof text);
    if (rc != 0)
        sodium_memzero(out, KEYSTORE_KEY_BYTES);
    xfree(path);
    return rc;
}
