/*
 * The helpers of fuzz.h. The scratch directory is the only thing that lives
 * across inputs, and it holds nothing an input could depend on: each target
 * rewrites its files before using them. It goes away at exit so that a
 * fuzzing run or a replay leaves no files behind.
 */
#include "config.h"

#include "fuzz.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SCRATCH_NAMES 8

static char scratch_dir[256];
static char scratch_names[SCRATCH_NAMES][64];
static size_t scratch_n;
static char scratch_buf[1024];

_Noreturn void fuzz_fail(const char *what)
{
    fprintf(stderr, "fuzz: property failed: %s\n", what);
    fflush(stderr);
    abort();
}

static void scratch_cleanup(void)
{
    for (size_t i = 0; i < scratch_n; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", scratch_dir, scratch_names[i]);
        unlink(path);
    }
    if (scratch_dir[0] != '\0')
        rmdir(scratch_dir);
}

static void scratch_init(void)
{
    if (scratch_dir[0] != '\0')
        return;
    const char *tmp = getenv("TMPDIR");
    snprintf(scratch_dir, sizeof scratch_dir, "%s/memchat-fuzz-XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    if (mkdtemp(scratch_dir) == NULL) {
        perror("fuzz: mkdtemp");
        abort();
    }
    atexit(scratch_cleanup);
}

/* Remembers name for the clean-up at exit. */
static void scratch_remember(const char *name)
{
    for (size_t i = 0; i < scratch_n; i++)
        if (strcmp(scratch_names[i], name) == 0)
            return;
    if (scratch_n == SCRATCH_NAMES || strlen(name) >= sizeof scratch_names[0])
        fuzz_fail("scratch: too many or too long file names");
    snprintf(scratch_names[scratch_n++], sizeof scratch_names[0], "%s", name);
}

const char *fuzz_scratch_dir(void)
{
    scratch_init();
    return scratch_dir;
}

const char *fuzz_scratch_path(const char *name)
{
    scratch_init();
    scratch_remember(name);
    snprintf(scratch_buf, sizeof scratch_buf, "%s/%s", scratch_dir, name);
    return scratch_buf;
}

const char *fuzz_scratch_write(const char *name, const uint8_t *data, size_t n)
{
    const char *path = fuzz_scratch_path(name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        perror("fuzz: scratch open");
        abort();
    }
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(fd, data + off, n - off);
        if (w <= 0) {
            perror("fuzz: scratch write");
            abort();
        }
        off += (size_t)w;
    }
    close(fd);
    return path;
}

char *fuzz_strndup(const uint8_t *data, size_t n)
{
    char *s = malloc(n + 1);
    if (s == NULL)
        abort();
    if (n > 0)
        memcpy(s, data, n);
    s[n] = '\0';
    return s;
}
