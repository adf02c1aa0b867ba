/*
 * Shared helpers for memchat's cmocka tests: cmocka's required includes,
 * a private temporary directory per test, and small file helpers. Header-only
 * (static functions) so each test program stays one file.
 */
#ifndef MEMCHAT_TESTUTIL_H
#define MEMCHAT_TESTUTIL_H

#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

/* Starts path with argv and the test's environment, its stdin and stdout
 * piped to the test: *in_fd writes its stdin, *out_fd reads its stdout
 * (close-on-exec in the test, so no other child holds them and closing
 * *in_fd is EOF for it). group: in a process group of its own, so a kill
 * of -pid reaches what it starts. Returns posix_spawn's result; the fds
 * are set either way. */
static inline int tu_spawn_piped(const char *path, char *const argv[], bool group, pid_t *pid,
                                 int *in_fd, int *out_fd)
{
    int in_p[2], out_p[2];
    assert_int_equal(pipe2(in_p, O_CLOEXEC), 0);
    assert_int_equal(pipe2(out_p, O_CLOEXEC), 0);
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
    assert_int_equal(posix_spawn_file_actions_adddup2(&fa, in_p[0], STDIN_FILENO), 0);
    assert_int_equal(posix_spawn_file_actions_adddup2(&fa, out_p[1], STDOUT_FILENO), 0);
    assert_int_equal(posix_spawnattr_init(&at), 0);
    if (group) {
        assert_int_equal(posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP), 0);
        assert_int_equal(posix_spawnattr_setpgroup(&at, 0), 0);
    }
    int rc = posix_spawn(pid, path, &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(in_p[0]);
    close(out_p[1]);
    *in_fd = in_p[1];
    *out_fd = out_p[0];
    return rc;
}

/* A fresh directory under $TMPDIR (or /tmp); caller frees the string and
 * removes the tree with tu_rmtree(). */
static inline char *tu_mkdtemp(void)
{
    const char *base = getenv("TMPDIR");
    char tmpl[4096];
    snprintf(tmpl, sizeof tmpl, "%s/memchat-test-XXXXXX", base && *base ? base : "/tmp");
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    return strdup(d);
}

/* rm -rf path (no symlink following). */
static inline void tu_rmtree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *dir = opendir(path);
        if (dir != NULL) {
            struct dirent *de;
            while ((de = readdir(dir)) != NULL) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                    continue;
                size_t n = strlen(path) + strlen(de->d_name) + 2;
                char *child = malloc(n);
                assert_non_null(child);
                snprintf(child, n, "%s/%s", path, de->d_name);
                tu_rmtree(child);
                free(child);
            }
            closedir(dir);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* Writes s to dir/name (creating or truncating); returns the full path,
 * which the caller frees. */
static inline char *tu_write_file(const char *dir, const char *name, const char *s)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = malloc(n);
    assert_non_null(path);
    snprintf(path, n, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(s, f);
    assert_int_equal(fclose(f), 0);
    return path;
}

/* The whole content of path (caller frees), or NULL when unreadable. */
static inline char *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, n = 0;
    char *s = malloc(cap);
    size_t got;
    while ((got = fread(s + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0) {
            cap *= 2;
            s = realloc(s, cap);
        }
    }
    fclose(f);
    s[n] = '\0';
    if (len != NULL)
        *len = n;
    return s;
}

#endif
