/*
 * Reading secrets on the command line: API keys and passphrases, from
 * standard input or from a prompt on the terminal with echo off. A secret
 * read here lives only in sodium_malloc'd memory (never in stdio buffers:
 * stdin is read with read(2)), and the terminal's settings are restored on
 * every path, also when the read is interrupted.
 */
#ifndef MEMCHAT_CLI_SECRET_H
#define MEMCHAT_CLI_SECRET_H

#include <stdbool.h>
#include <stddef.h>

/* A secret: sodium_malloc'd, NUL-terminated; free with secret_free. */
struct secret {
    char *value;
    size_t len;
};

/* Reads one line from standard input (byte by byte, so the rest of stdin
 * stays for whoever reads next), without its newline. whole: read to EOF
 * instead (a key piped in), dropping one trailing newline. At most max
 * bytes. 0, or -1 with err naming what (never the content). */
int secret_read_stdin(const char *what, bool whole, size_t max, struct secret *out, char *err,
                      size_t errlen);
/* Prompts on the controlling terminal (/dev/tty) with echo off and reads
 * one line. 0; 1 when there is no terminal; -1 with err set. */
int secret_read_tty(const char *prompt, size_t max, struct secret *out, char *err, size_t errlen);
/* Wipes and frees s->value; a zeroed s is fine. */
void secret_free(struct secret *s);

/* The passphrase of the keystore at keystore_path for a chat or ask: the
 * first line of stdin with from_stdin (consumed whatever the keystore
 * holds), else, when the keystore is protected by one, the answer at a
 * prompt on the terminal. out->value stays NULL when none is needed or
 * there is no terminal (the turns that need a tenant key then say how to
 * give it). 0, or -1 with err set (a damaged keystore, a failed read). */
int secret_keystore_passphrase(const char *keystore_path, bool from_stdin, struct secret *out,
                               char *err, size_t errlen);

#endif
