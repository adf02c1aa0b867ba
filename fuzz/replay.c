/*
 * The fuzz targets without libFuzzer: a plain main() that runs one target
 * over every file of the directories and files given on its command line
 * (in name order, so runs repeat), or, with no arguments, over the target's
 * saved corpus fuzz/corpus/FUZZ_NAME in the source tree. make check builds
 * one replay_<target> per target with an ordinary compiler, so every input
 * a fuzzer ever saved, regressions included, is checked in the normal and
 * the sanitizer build. Each input is copied into a block of exactly its
 * size, so a read past its end is caught by AddressSanitizer and valgrind.
 * The name of each input is printed before it runs: after a crash the last
 * name in the log is the input to blame.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

#ifndef FUZZ_NAME
#error "FUZZ_NAME (the target's name, e.g. \"sse\") must be defined"
#endif

/* Inputs larger than this are not read (the targets ignore them anyway). */
#define REPLAY_READ_MAX (16 * 1024 * 1024)

/* Runs the target over one file; 0, or -1 when it cannot be read. */
static int replay_file(const char *path, size_t *count)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (f == NULL || fstat(fileno(f), &st) != 0) {
        fprintf(stderr, "replay_%s: cannot open %s: %s\n", FUZZ_NAME, path, strerror(errno));
        if (f != NULL)
            fclose(f);
        return -1;
    }
    size_t want = st.st_size > REPLAY_READ_MAX ? REPLAY_READ_MAX : (size_t)st.st_size;
    /* Exactly the input's size (at least one byte), so an overread is
     * caught. */
    uint8_t *data = malloc(want > 0 ? want : 1);
    if (data == NULL) {
        fclose(f);
        fprintf(stderr, "replay_%s: out of memory\n", FUZZ_NAME);
        return -1;
    }
    size_t n = fread(data, 1, want, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || n != want) {
        free(data);
        fprintf(stderr, "replay_%s: cannot read %s\n", FUZZ_NAME, path);
        return -1;
    }
    printf("replay_%s: %s (%zu bytes)\n", FUZZ_NAME, path, n);
    fflush(stdout);
    LLVMFuzzerTestOneInput(data, n);
    free(data);
    (*count)++;
    return 0;
}

static int replay_select(const struct dirent *d)
{
    return d->d_name[0] != '.';
}

/* Runs the target over every regular file of dir, in name order. */
static int replay_dir(const char *dir, size_t *count)
{
    struct dirent **names = NULL;
    int n = scandir(dir, &names, replay_select, alphasort);
    if (n < 0) {
        fprintf(stderr, "replay_%s: cannot list %s: %s\n", FUZZ_NAME, dir, strerror(errno));
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        struct stat st;
        if (rc == 0 && stat(path, &st) == 0 && S_ISREG(st.st_mode))
            rc = replay_file(path, count);
        free(names[i]);
    }
    free(names);
    return rc;
}

static int replay_path(const char *path, size_t *count)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay_%s: %s: %s\n", FUZZ_NAME, path, strerror(errno));
        return -1;
    }
    return S_ISDIR(st.st_mode) ? replay_dir(path, count) : replay_file(path, count);
}

int main(int argc, char **argv)
{
    size_t count = 0;
    int rc = 0;
    if (argc < 2) {
        /* make check: the saved corpus in the source tree. */
        rc = replay_path(MC_SRCDIR "/fuzz/corpus/" FUZZ_NAME, &count);
    } else {
        for (int i = 1; i < argc && rc == 0; i++)
            rc = replay_path(argv[i], &count);
    }
    if (rc == 0 && count == 0) {
        fprintf(stderr, "replay_%s: no inputs found (an empty corpus checks nothing)\n", FUZZ_NAME);
        rc = -1;
    }
    printf("replay_%s: %zu inputs %s\n", FUZZ_NAME, count, rc == 0 ? "passed" : "NOT all run");
    return rc == 0 ? 0 : 1;
}
