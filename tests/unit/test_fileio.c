/*
 * Tests of util/fileio: atomic replacement (mode, content, the old file
 * kept and no temporary file left on every kind of failure, including a
 * real write failure from RLIMIT_FSIZE in a child), the bounded whole-file
 * read, and write_all on short writes and through a pipe.
 */
#include "testutil.h"

#include "util/fileio.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "util/alloc.h"

struct fx {
    char *dir;
};

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof *fx);
    fx->dir = tu_mkdtemp();
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    chmod(fx->dir, 0700); /* in case a test failed while it was read-only */
    tu_rmtree(fx->dir);
    free(fx->dir);
    free(fx);
    return 0;
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* How many entries dir holds, and whether any is a leftover temp file. */
static int count_entries(const char *dir, int *temps)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    *temps = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        n++;
        if (strstr(de->d_name, ".tmp.") != NULL)
            (*temps)++;
    }
    closedir(d);
    return n;
}

static void assert_file_is(const char *path, const char *want)
{
    size_t len;
    char *got = tu_read_file(path, &len);
    assert_non_null(got);
    assert_int_equal(len, strlen(want));
    assert_string_equal(got, want);
    free(got);
}

/* A new file gets exactly the requested mode, whatever the umask: 0666
 * under umask 022 proves the mode is set explicitly (mkstemp alone gives
 * 0600, and the umask would give 0644). */
static void replace_creates_the_file_with_the_requested_mode(void **state)
{
    struct fx *fx = *state;
    static const mode_t modes[] = {0600, 0640, 0644, 0666};
    mode_t old = umask(022);
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        char name[32], err[256] = "";
        snprintf(name, sizeof name, "f%zu", i);
        char *path = join(fx->dir, name);
        assert_int_equal(fileio_replace(path, "data", 4, modes[i], err, sizeof err), 0);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, modes[i]);
        assert_file_is(path, "data");
        free(path);
    }
    umask(old);
}

/* An existing file's content is replaced completely (a shorter new
 * content leaves nothing of the old behind), its mode becomes the new
 * one, and only the target remains in the directory. */
static void replace_replaces_content_and_leaves_no_temp_file(void **state)
{
    struct fx *fx = *state;
    char err[256] = "";
    char *path = tu_write_file(fx->dir, "keystore", "the old, longer content\n");
    chmod(path, 0644);
    assert_int_equal(fileio_replace(path, "new", 3, 0600, err, sizeof err), 0);
    assert_file_is(path, "new");
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    int temps;
    assert_int_equal(count_entries(fx->dir, &temps), 1);
    assert_int_equal(temps, 0);

    /* Empty content, and data == NULL with n == 0, are fine. */
    assert_int_equal(fileio_replace(path, NULL, 0, 0600, err, sizeof err), 0);
    assert_file_is(path, "");
    /* Binary content with NULs survives byte for byte. */
    static const char bin[] = {'a', 0, 'b', 0, (char)0xff};
    assert_int_equal(fileio_replace(path, bin, sizeof bin, 0600, err, sizeof err), 0);
    size_t len;
    char *got = tu_read_file(path, &len);
    assert_int_equal(len, sizeof bin);
    assert_memory_equal(got, bin, sizeof bin);
    free(got);
    free(path);
}

/* A relative path (no directory part) works: the temp file and the
 * directory sync use ".". */
static void replace_works_with_a_bare_file_name(void **state)
{
    struct fx *fx = *state;
    char cwd[4096], err[256] = "";
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(fx->dir), 0);
    int rc = fileio_replace("bare", "x", 1, 0600, err, sizeof err);
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(rc, 0);
    char *path = join(fx->dir, "bare");
    assert_file_is(path, "x");
    free(path);
}

/* In a directory it may not write to, replace fails with a message naming
 * the path and the step, the old file is untouched and nothing is left
 * behind. Root writes anyway, so this case is skipped as root (the next
 * one covers the same path for root). */
static void replace_in_a_read_only_directory_keeps_the_old_file(void **state)
{
    struct fx *fx = *state;
    if (geteuid() == 0)
        skip();
    char err[512] = "";
    char *sub = join(fx->dir, "ro");
    assert_int_equal(mkdir(sub, 0700), 0);
    char *path = tu_write_file(sub, "keystore", "old");
    assert_int_equal(chmod(sub, 0500), 0);
    int rc = fileio_replace(path, "new", 3, 0600, err, sizeof err);
    assert_int_equal(chmod(sub, 0700), 0);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "create temporary file"));
    assert_non_null(strstr(err, strerror(EACCES)));
    assert_file_is(path, "old");
    int temps;
    assert_int_equal(count_entries(sub, &temps), 1);
    assert_int_equal(temps, 0);
    free(path);
    free(sub);
}

/* When the target's directory does not exist, replace fails at the first
 * step with a message naming the path, the step and the cause, and
 * creates nothing (this runs as root too). */
static void replace_into_a_missing_directory_fails_cleanly(void **state)
{
    struct fx *fx = *state;
    char err[512] = "";
    char *path = join(fx->dir, "missing-dir/keystore");
    assert_int_equal(fileio_replace(path, "new", 3, 0600, err, sizeof err), -1);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "create temporary file"));
    assert_non_null(strstr(err, strerror(ENOENT)));
    int temps;
    assert_int_equal(count_entries(fx->dir, &temps), 0);
    free(path);
}

/* A failure after the temporary file exists (the rename, here onto a
 * non-empty directory) removes the temporary file and leaves the target
 * as it was. This path runs as root too. */
static void replace_failure_after_the_temp_file_removes_it(void **state)
{
    struct fx *fx = *state;
    char err[512] = "";
    char *target = join(fx->dir, "target");
    assert_int_equal(mkdir(target, 0700), 0);
    char *inner = tu_write_file(target, "inside", "keep me");
    assert_int_equal(fileio_replace(target, "new", 3, 0600, err, sizeof err), -1);
    assert_non_null(strstr(err, target));
    assert_non_null(strstr(err, "rename"));
    assert_file_is(inner, "keep me");
    int temps;
    assert_int_equal(count_entries(fx->dir, &temps), 1);
    assert_int_equal(temps, 0);
    free(inner);
    free(target);
}

/* A real write failure, from a file-size limit set in a child process
 * (so this process's limits and output stay untouched): the call fails at
 * "write" naming the path, the old content survives and no temp file is
 * left. */
static void replace_write_failure_keeps_the_old_file(void **state)
{
    struct fx *fx = *state;
    char *path = tu_write_file(fx->dir, "keystore", "old content");
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        signal(SIGXFSZ, SIG_IGN); /* make the write fail with EFBIG instead */
        struct rlimit rl;
        getrlimit(RLIMIT_FSIZE, &rl);
        rl.rlim_cur = 16;
        setrlimit(RLIMIT_FSIZE, &rl);
        char big[4096], err[512] = "";
        memset(big, 'n', sizeof big);
        int rc = fileio_replace(path, big, sizeof big, 0600, err, sizeof err);
        char msg[600];
        int len = snprintf(msg, sizeof msg, "%d|%s", rc, err);
        ssize_t w = write(fds[1], msg, (size_t)len);
        free(path); /* the child's copy: valgrind checks leaks at _exit too */
        _exit(w == len ? 0 : 1);
    }
    close(fds[1]);
    char msg[600];
    size_t got = 0;
    ssize_t r;
    while ((r = read(fds[0], msg + got, sizeof msg - 1 - got)) > 0)
        got += (size_t)r;
    msg[got] = '\0';
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_true(strncmp(msg, "-1|", 3) == 0);
    assert_non_null(strstr(msg, path));
    assert_non_null(strstr(msg, ": write: "));
    assert_non_null(strstr(msg, strerror(EFBIG)));
    assert_file_is(path, "old content");
    int temps;
    assert_int_equal(count_entries(fx->dir, &temps), 1);
    assert_int_equal(temps, 0);
    free(path);
}

/* read_all returns the content NUL-terminated with its length, binary
 * bytes included, and an empty file as "" (not NULL). */
static void read_all_returns_the_content(void **state)
{
    struct fx *fx = *state;
    char err[256] = "";
    char *path = join(fx->dir, "bin");
    static const char bin[] = {'x', 0, 'y', '\n', (char)0x80};
    assert_int_equal(fileio_replace(path, bin, sizeof bin, 0600, err, sizeof err), 0);
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(fileio_read_all(path, 1024, &out, &len, err, sizeof err), 0);
    assert_int_equal(len, sizeof bin);
    assert_memory_equal(out, bin, sizeof bin);
    assert_int_equal(out[len], '\0');
    xfree(out);

    char *empty = tu_write_file(fx->dir, "empty", "");
    assert_int_equal(fileio_read_all(empty, 1024, &out, &len, err, sizeof err), 0);
    assert_non_null(out);
    assert_int_equal(len, 0);
    assert_string_equal(out, "");
    xfree(out);

    /* A file larger than any first guess, read through the growth path. */
    size_t big = 300000;
    char *data = malloc(big);
    for (size_t i = 0; i < big; i++)
        data[i] = (char)('a' + i % 26);
    assert_int_equal(fileio_replace(path, data, big, 0600, err, sizeof err), 0);
    assert_int_equal(fileio_read_all(path, big, &out, &len, err, sizeof err), 0);
    assert_int_equal(len, big);
    assert_memory_equal(out, data, big);
    xfree(out);
    free(data);
    free(empty);
    free(path);
}

/* The limit: a file of exactly max bytes is read, one byte more fails with
 * a message naming the path and the limit, and *out stays NULL. */
static void read_all_enforces_the_limit(void **state)
{
    struct fx *fx = *state;
    char err[256] = "";
    char *path = tu_write_file(fx->dir, "ten", "0123456789");
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(fileio_read_all(path, 10, &out, &len, err, sizeof err), 0);
    assert_string_equal(out, "0123456789");
    xfree(out);
    static char sentinel[] = "sentinel";
    out = sentinel;
    assert_int_equal(fileio_read_all(path, 9, &out, &len, err, sizeof err), -1);
    assert_null(out);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "limit of 9 bytes"));
    assert_int_equal(fileio_read_all(path, 0, &out, &len, err, sizeof err), -1);
    free(path);
}

/* Files whose size stat does not know (proc files report 0) are bounded
 * by the read loop itself. */
static void read_all_bounds_files_of_unknown_size(void **state)
{
    (void)state;
    const char *proc = "/proc/self/status";
    if (access(proc, R_OK) != 0)
        skip();
    char err[256] = "";
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(fileio_read_all(proc, 1 << 20, &out, &len, err, sizeof err), 0);
    assert_true(len > 100);
    assert_int_equal(strlen(out), len);
    assert_non_null(strstr(out, "Pid:"));
    xfree(out);
    assert_int_equal(fileio_read_all(proc, 50, &out, &len, err, sizeof err), -1);
    assert_null(out);
    assert_non_null(strstr(err, "limit of 50 bytes"));
}

/* A missing file is -2 (callers treat it as "use defaults"), distinct from
 * other failures such as reading a directory (-1, named in the message). */
static void read_all_tells_a_missing_file_apart(void **state)
{
    struct fx *fx = *state;
    char err[256] = "";
    char *path = join(fx->dir, "nope");
    char *out = NULL;
    size_t len = 7;
    assert_int_equal(fileio_read_all(path, 100, &out, &len, err, sizeof err), -2);
    assert_null(out);
    assert_int_equal(len, 0);
    assert_int_equal(fileio_read_all(fx->dir, 100, &out, &len, err, sizeof err), -1);
    assert_null(out);
    assert_non_null(strstr(err, fx->dir));
    free(path);
}

/* A short write (the file-size limit lets the first 16 bytes through) is
 * followed by another write for the rest, whose error is returned with
 * errno set; the bytes before it are on disk. Run in a child. */
static void write_all_continues_after_a_short_write(void **state)
{
    struct fx *fx = *state;
    char *path = join(fx->dir, "short");
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl;
        getrlimit(RLIMIT_FSIZE, &rl);
        rl.rlim_cur = 16;
        setrlimit(RLIMIT_FSIZE, &rl);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        errno = 0;
        int rc = fileio_write_all(fd, "0123456789abcdefTHE-REST", 24);
        int ok = rc == -1 && errno == EFBIG;
        free(path); /* the child's copy: valgrind checks leaks at _exit too */
        _exit(ok ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_file_is(path, "0123456789abcdef");
    free(path);
}

/* Everything written through a pipe arrives in order, far more than the
 * pipe holds at once, and a bad descriptor is an error with errno set. */
static void write_all_writes_everything_through_a_pipe(void **state)
{
    (void)state;
    size_t n = 1 << 20;
    unsigned char *data = malloc(n);
    for (size_t i = 0; i < n; i++)
        data[i] = (unsigned char)(i * 131 + (i >> 9));
    int fds[2], back[2];
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(pipe(back), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* The reader: checks each byte and reports the count of good ones. */
        close(fds[1]);
        close(back[0]);
        size_t good = 0, total = 0;
        unsigned char chunk[4096];
        ssize_t r;
        while ((r = read(fds[0], chunk, sizeof chunk)) > 0) {
            for (ssize_t i = 0; i < r; i++, total++)
                good += total < n && chunk[i] == data[total];
        }
        ssize_t w = write(back[1], &good, sizeof good);
        _exit(w == (ssize_t)sizeof good ? 0 : 1);
    }
    close(fds[0]);
    close(back[1]);
    assert_int_equal(fileio_write_all(fds[1], data, n), 0);
    close(fds[1]);
    size_t good = 0;
    assert_int_equal(read(back[0], &good, sizeof good), (ssize_t)sizeof good);
    close(back[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(good, n);
    free(data);

    errno = 0;
    assert_int_equal(fileio_write_all(-1, "x", 1), -1);
    assert_int_equal(errno, EBADF);
    assert_int_equal(fileio_write_all(-1, "", 0), 0); /* nothing to write */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(replace_creates_the_file_with_the_requested_mode, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(replace_replaces_content_and_leaves_no_temp_file, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(replace_works_with_a_bare_file_name, setup, teardown),
        cmocka_unit_test_setup_teardown(replace_in_a_read_only_directory_keeps_the_old_file, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(replace_into_a_missing_directory_fails_cleanly, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(replace_failure_after_the_temp_file_removes_it, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(replace_write_failure_keeps_the_old_file, setup, teardown),
        cmocka_unit_test_setup_teardown(read_all_returns_the_content, setup, teardown),
        cmocka_unit_test_setup_teardown(read_all_enforces_the_limit, setup, teardown),
        cmocka_unit_test(read_all_bounds_files_of_unknown_size),
        cmocka_unit_test_setup_teardown(read_all_tells_a_missing_file_apart, setup, teardown),
        cmocka_unit_test_setup_teardown(write_all_continues_after_a_short_write, setup, teardown),
        cmocka_unit_test(write_all_writes_everything_through_a_pipe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
