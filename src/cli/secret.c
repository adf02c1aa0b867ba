/*
 * Secrets from stdin or the terminal, and the keystore as the verbs open
 * it (see secret.h). The buffer is sized for the longest secret accepted
 * up front and locked (xsecure_malloc), so a key never passes through
 * memory that is not wiped: no realloc copies, no stdio buffers.
 */
#include "config.h"

#include "cli/secret.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <termios.h>
#include <unistd.h>

#include <sodium.h>

#include "cli/session.h"
#include "config/config.h"
#include "config/vars.h"
#include "memchat/error.h"
#include "store/keystore.h"
#include "util/alloc.h"
#include "util/paths.h"

void secret_free(struct secret *s)
{
    xsecure_free(s->value);
    s->value = NULL;
    s->len = 0;
}

/* Reads from fd into a fresh locked buffer: one line, or everything when
 * whole. */
static int secret_read_fd(int fd, const char *what, bool whole, size_t max, struct secret *out,
                          char *err, size_t errlen)
{
    /* xsecure_malloc initialises libsodium itself: ask and chat read the
     * passphrase before the engine does. */
    out->value = xsecure_malloc(max + 1);
    out->len = 0;
    for (;;) {
        char c;
        ssize_t r = read(fd, &c, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "cannot read %s: %s", what, strerror(errno));
            secret_free(out);
            return -1;
        }
        if (r == 0 || (!whole && c == '\n'))
            break;
        if (out->len == max) {
            snprintf(err, errlen, "%s is longer than %zu bytes", what, max);
            secret_free(out);
            return -1;
        }
        out->value[out->len++] = c;
    }
    if (whole && out->len > 0 && out->value[out->len - 1] == '\n')
        out->len--;
    if (out->len > 0 && out->value[out->len - 1] == '\r')
        out->len--;
    out->value[out->len] = '\0';
    if (memchr(out->value, '\0', out->len) != NULL) {
        snprintf(err, errlen, "%s contains a NUL byte", what);
        secret_free(out);
        return -1;
    }
    return 0;
}

int secret_read_stdin(const char *what, bool whole, size_t max, struct secret *out, char *err,
                      size_t errlen)
{
    return secret_read_fd(STDIN_FILENO, what, whole, max, out, err, errlen);
}

int secret_read_tty(const char *prompt, size_t max, struct secret *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return 1;
    struct termios old, quiet;
    if (tcgetattr(fd, &old) != 0) {
        close(fd);
        return 1;
    }
    quiet = old;
    quiet.c_lflag &= (tcflag_t) ~(ECHO | ECHOE | ECHOK | ECHONL);
    quiet.c_lflag |= ICANON;
    /* Ctrl-C at the prompt must not leave the terminal without echo: the
     * signals arrive on the self-pipe of the session, or kill us with
     * their default action after TCSAFLUSH; block them meanwhile. */
    sigset_t block, saved;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGTSTP);
    sigprocmask(SIG_BLOCK, &block, &saved);
    int rc = -1;
    if (tcsetattr(fd, TCSAFLUSH, &quiet) != 0) {
        snprintf(err, errlen, "cannot turn off echo on the terminal: %s", strerror(errno));
    } else {
        if (write(fd, prompt, strlen(prompt)) < 0) {
            /* The prompt is a courtesy; the read decides. */
        }
        rc = secret_read_fd(fd, "the answer at the prompt", false, max, out, err, errlen);
        tcsetattr(fd, TCSAFLUSH, &old);
        if (write(fd, "\n", 1) < 0) {
            /* The echo-less Enter left the cursor on the prompt line. */
        }
    }
    sigprocmask(SIG_SETMASK, &saved, NULL);
    close(fd);
    return rc;
}

int secret_keystore_passphrase(const char *keystore_path, bool from_stdin, struct secret *out,
                               char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    struct keystore_kdf kdf;
    int rc = keystore_kdf_params(keystore_path, &kdf, err, errlen);
    if (rc < 0)
        return -1;
    if (from_stdin) {
        if (secret_read_stdin("the passphrase (first line of stdin)", false, KEYSTORE_MAX_SECRET,
                              out, err, errlen) != 0)
            return -1;
        if (rc != 0)
            secret_free(out); /* not protected by a passphrase: not needed */
        return 0;
    }
    if (rc != 0)
        return 0;
    int t = secret_read_tty("memchat keystore passphrase: ", KEYSTORE_MAX_SECRET, out, err, errlen);
    return t < 0 ? -1 : 0;
}

/* ---- the keystore as the verbs open it ---------------------------------- */

/* Prints "memchat: VERB: MESSAGE" on stderr, as a warning for a soft
 * store. */
__attribute__((format(printf, 2, 3))) static void store_msg(const struct secret_store *c,
                                                            const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    session_error("%s: %s%s", c->verb, c->soft ? "warning: " : "", msg);
}

int secret_store_init(struct secret_store *c, const struct config *cfg, const char *verb,
                      bool pass_stdin, bool soft)
{
    memset(c, 0, sizeof *c);
    c->cfg = cfg;
    c->verb = verb;
    c->pass_stdin = pass_stdin;
    c->soft = soft;
    c->lock_fd = -1;
    if (config_str(cfg, CFG_MEMCHAT_DATA_DIR)[0] == '\0') {
        store_msg(c, "MEMCHAT_DATA_DIR is not set, and neither XDG_DATA_HOME nor HOME "
                     "gives a default: set MEMCHAT_DATA_DIR to a directory");
        return MC_EXIT_USAGE;
    }
    if (sodium_init() < 0) {
        store_msg(c, "libsodium cannot be initialised");
        return MC_EXIT_RUNTIME;
    }
    c->data_dir = xstrdup(config_str(cfg, CFG_MEMCHAT_DATA_DIR));
    c->path = paths_join(c->data_dir, KEYSTORE_FILE_NAME);
    c->config_dir = xstrdup(config_str(cfg, CFG_MEMCHAT_CONFIG_DIR));
    c->master = xsecure_malloc(KEYSTORE_KEY_BYTES);
    const char *tool = config_str(cfg, CFG_TOOL_CREDENTIALS_ENCRYPTION_KEY);
    if (tool[0] == '\0')
        return MC_EXIT_OK;
    c->tool_key = xsecure_malloc(KEYSTORE_KEY_BYTES);
    char err[512] = "";
    if (masterkey_decode(tool, KEYSTORE_TOOL_KEY_NAME, c->tool_key, err, sizeof err) != 0) {
        store_msg(c, "%s", err);
        return MC_EXIT_USAGE;
    }
    return MC_EXIT_OK;
}

void secret_store_fini(struct secret_store *c)
{
    keystore_free(c->ks);
    xsecure_free(c->master);
    xsecure_free(c->tool_key);
    if (c->lock_fd >= 0)
        close(c->lock_fd); /* releases the lock */
    xfree(c->data_dir);
    xfree(c->path);
    xfree(c->config_dir);
    memset(c, 0, sizeof *c);
    c->lock_fd = -1;
}

int secret_store_lock(struct secret_store *c)
{
    char err[512];
    if (paths_mkdir_p(c->data_dir, 0700, err, sizeof err) != 0) {
        store_msg(c, "%s", err);
        return MC_EXIT_RUNTIME;
    }
    char *lock = paths_join(c->data_dir, "keystore.lock");
    c->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    int rc = c->lock_fd >= 0 ? flock(c->lock_fd, LOCK_EX) : -1;
    if (rc != 0)
        store_msg(c, "cannot lock %s: %s", lock, strerror(errno));
    xfree(lock);
    return rc == 0 ? MC_EXIT_OK : MC_EXIT_RUNTIME;
}

int secret_store_passphrase(const struct secret_store *c, const char *prompt, struct secret *out)
{
    char err[512] = "";
    if (c->pass_stdin) {
        if (secret_read_stdin("the passphrase (a line of stdin)", false, KEYSTORE_MAX_SECRET, out,
                              err, sizeof err) != 0) {
            store_msg(c, "%s", err);
            return MC_EXIT_RUNTIME;
        }
    } else {
        int rc = secret_read_tty(prompt, KEYSTORE_MAX_SECRET, out, err, sizeof err);
        if (rc == 1)
            snprintf(err, sizeof err,
                     "a passphrase is needed and there is no terminal to ask it on: give it "
                     "with --passphrase-stdin");
        if (rc != 0) {
            store_msg(c, "%s", err);
            return MC_EXIT_USAGE;
        }
    }
    if (out->len == 0) {
        secret_free(out);
        store_msg(c, "the passphrase is empty");
        return MC_EXIT_USAGE;
    }
    return MC_EXIT_OK;
}

/* Gives the open keystore the tool key, when one is set. */
static int secret_store_tool_key(struct secret_store *c)
{
    if (c->tool_key == NULL)
        return MC_EXIT_OK;
    char err[1024] = "";
    int rc = keystore_set_tool_key(c->ks, c->tool_key, err, sizeof err);
    if (rc < 0) {
        store_msg(c, "%s", err);
        return MC_EXIT_USAGE;
    }
    if (rc == 1)
        store_msg(c, "%s%s", c->soft ? "" : "warning: ", err); /* never twice */
    return MC_EXIT_OK;
}

/* The exit code of a master key or keystore that cannot be used (rc from
 * masterkey_load or keystore_open): a file that could not be read or
 * written is an I/O error, anything else (a key missing, wrong or damaged)
 * a configuration error. */
static int secret_open_exit(int rc)
{
    return rc == KEYSTORE_ERR_IO ? MC_EXIT_RUNTIME : MC_EXIT_USAGE;
}

int secret_store_open(struct secret_store *c, bool create, bool *none)
{
    *none = false;
    char err[1024] = "";
    struct keystore_kdf kdf;
    int k = keystore_kdf_params(c->path, &kdf, err, sizeof err);
    if (k < 0) {
        store_msg(c, "%s", err);
        return MC_EXIT_RUNTIME;
    }
    struct secret pass = {0};
    if (k == 0) {
        int rc = secret_store_passphrase(c, "memchat keystore passphrase: ", &pass);
        if (rc != MC_EXIT_OK)
            return rc;
    }
    struct masterkey_in in = {
        .keystore_path = c->path,
        .config_dir = c->config_dir,
        .env_b64 = config_str(c->cfg, CFG_MEMCHAT_MASTER_KEY),
        .pass = pass.value,
        .pass_len = pass.len,
        .create = create,
    };
    int rc = masterkey_load(&in, c->master, &c->src, err, sizeof err);
    secret_free(&pass);
    if (rc < 0) {
        store_msg(c, "%s", err);
        return secret_open_exit(rc);
    }
    if (rc == 1) {
        if (access(c->path, F_OK) == 0) {
            store_msg(c,
                      "the keystore %s exists but there is no master key for it: set "
                      "MEMCHAT_MASTER_KEY or restore master.key in %s",
                      c->path, c->config_dir);
            return MC_EXIT_USAGE;
        }
        *none = true;
        return MC_EXIT_OK;
    }
    rc = keystore_open(c->path, c->master, &c->ks, err, sizeof err);
    if (rc != 0) {
        store_msg(c, "%s (master key from %s)", err, masterkey_source_name(c->src));
        return secret_open_exit(rc);
    }
    return secret_store_tool_key(c);
}

int secret_store_save(struct secret_store *c)
{
    char err[1024] = "";
    if (keystore_save(c->ks, err, sizeof err) != 0) {
        store_msg(c, "%s", err);
        return MC_EXIT_RUNTIME;
    }
    return MC_EXIT_OK;
}

int secret_store_read_value(const struct secret_store *c, const char *what, const char *prompt,
                            struct secret *out)
{
    char err[512] = "";
    if (!isatty(STDIN_FILENO)) {
        if (c->pass_stdin) {
            store_msg(c,
                      "%s and the passphrase cannot both come from stdin: drop "
                      "--passphrase-stdin and type the passphrase at the prompt, or give "
                      "%s at the prompt",
                      what, what);
            return MC_EXIT_USAGE;
        }
        char src[96];
        snprintf(src, sizeof src, "%s (stdin)", what);
        if (secret_read_stdin(src, true, KEYSTORE_MAX_SECRET, out, err, sizeof err) != 0) {
            store_msg(c, "%s", err);
            return MC_EXIT_RUNTIME;
        }
    } else if (secret_read_tty(prompt, KEYSTORE_MAX_SECRET, out, err, sizeof err) != 0) {
        store_msg(c, "%s", err[0] ? err : "no terminal to read the secret from");
        return MC_EXIT_RUNTIME;
    }
    if (out->len == 0) {
        secret_free(out);
        store_msg(c, "%s is empty (nothing was stored)", what);
        return MC_EXIT_USAGE;
    }
    return MC_EXIT_OK;
}
