/*
 * Secrets from stdin or the terminal (see secret.h). The buffer is sized
 * for the longest secret accepted up front and locked (xsecure_malloc), so
 * a key never passes through memory that is not wiped: no realloc copies,
 * no stdio buffers.
 */
#include "config.h"

#include "cli/secret.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "store/keystore.h"
#include "util/alloc.h"

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
