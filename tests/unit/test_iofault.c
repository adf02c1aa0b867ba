/*
 * Tests of the I/O fault seam (util/iofault) and of what it proves: the
 * seam's arming, counting, spec parsing and exit report; then sweeps that
 * fail every operation of a write, one position at a time, with every kind
 * of fault (EIO, ENOSPC, EINTR, a short write), and check the file after:
 *   - fileio_replace and the piecewise fileio_replace_begin/end (what the
 *     keystore, the master key, the index and the TUI's export use): the
 *     target is byte for byte the old content or the new, no temporary file
 *     is left, EINTR and short writes succeed as if nothing happened, and a
 *     failure names the file and the step;
 *   - the keystore: it opens afterwards and holds the old set of keys or
 *     the new one;
 *   - the creation of master.key (written aside, linked into place): it is
 *     absent or whole, the key the load returned whenever it succeeded;
 *   - an SQLite data file opened by db_open through the shim
 *     (store/faultvfs): PRAGMA integrity_check is ok and a transaction is
 *     all there or absent, present whenever every call succeeded.
 * Each sweep first counts the operations of a clean run, so "every
 * position" follows the code as it changes. MEMCHAT_IOFAULT_FULL=1 adds
 * the sticky (every later operation fails too) variants at every position;
 * without it they run at a spread of positions.
 */
#include "testutil.h"

#include <sys/wait.h>

#include <sodium.h>
#include "tu_sqlite.h"

#include "store/db.h"
#include "store/keystore.h"
#include "store/masterkey.h"
#include "util/alloc.h"
#include "util/fileio.h"
#include "util/iofault.h"

static const enum iofault_kind kinds[] = {IOFAULT_EIO, IOFAULT_ENOSPC, IOFAULT_EINTR,
                                          IOFAULT_SHORT};
static const char *const kind_names[] = {"none", "eio", "enospc", "eintr", "short"};

struct fx {
    char *dir;
    char *path; /* dir/target */
};

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof *fx);
    fx->dir = tu_mkdtemp();
    size_t n = strlen(fx->dir) + sizeof "/target";
    fx->path = malloc(n);
    snprintf(fx->path, n, "%s/target", fx->dir);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    iofault_disarm();
    tu_rmtree(fx->dir);
    free(fx->dir);
    free(fx->path);
    free(fx);
    return 0;
}

static bool full_sweep(void)
{
    const char *v = getenv("MEMCHAT_IOFAULT_FULL");
    return v != NULL && strcmp(v, "1") == 0;
}

/* Whether position n of total gets the sticky variant: all of them in the
 * full sweep, else the first, the last and a few between. */
static bool sticky_here(unsigned long n, unsigned long total)
{
    return full_sweep() || n == 1 || n == total || n % 5 == 0;
}

static void put_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
}

/* Copies from to to; when from does not exist, to is removed. */
static void copy_file(const char *from, const char *to)
{
    size_t len;
    char *data = tu_read_file(from, &len);
    if (data == NULL) {
        unlink(to);
        return;
    }
    put_file(to, data, len);
    free(data);
}

/* Entries of dir whose name holds ".tmp." (fileio's temporary files). */
static int temp_files(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strstr(de->d_name, ".tmp.") != NULL)
            n++;
    closedir(d);
    return n;
}

/* 0 when path holds exactly data[0..len), else nonzero. */
static int file_differs(const char *path, const char *data, size_t len)
{
    size_t got_len;
    char *got = tu_read_file(path, &got_len);
    if (got == NULL)
        return -1;
    int d = got_len != len || memcmp(got, data, len) != 0;
    free(got);
    return d;
}

/* --- the seam itself --------------------------------------------------------- */

/* The n-th operation of the armed kind fails with the armed errno, the ones
 * before and after it do not, other operations are not counted toward it,
 * and iofault_fired tells whether it struck. */
static void arming_fails_exactly_the_nth_operation(void **state)
{
    (void)state;
    int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    unsigned long writes = iofault_count(IOFAULT_WRITE), all = iofault_count(IOFAULT_ANY);
    iofault_arm(IOFAULT_WRITE, 2, IOFAULT_ENOSPC, false);
    assert_false(iofault_fired());
    assert_int_equal(iofault_write(fd, "a", 1), 1);
    assert_int_equal(iofault_fsync(fd) == 0 || errno == EINVAL, 1); /* not a write */
    assert_false(iofault_fired());
    errno = 0;
    assert_int_equal(iofault_write(fd, "b", 1), -1);
    assert_int_equal(errno, ENOSPC);
    assert_true(iofault_fired());
    assert_int_equal(iofault_write(fd, "c", 1), 1);
    assert_int_equal(iofault_count(IOFAULT_WRITE), writes + 3);
    assert_int_equal(iofault_count(IOFAULT_ANY), all + 4);

    /* any: the count runs over every kind of operation. */
    iofault_arm(IOFAULT_ANY, 2, IOFAULT_EIO, false);
    assert_int_equal(iofault_write(fd, "a", 1), 1);
    errno = 0;
    assert_int_equal(iofault_fsync(fd), -1);
    assert_int_equal(errno, EIO);
    iofault_disarm();
    close(fd);
}

/* A sticky fault fails its operation and every later one until disarmed;
 * a sticky eintr would never let a retry through, so it is one-shot. */
static void sticky_faults_keep_failing(void **state)
{
    (void)state;
    int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    iofault_arm(IOFAULT_WRITE, 1, IOFAULT_EIO, true);
    for (int i = 0; i < 5; i++)
        assert_int_equal(iofault_write(fd, "x", 1), -1);
    iofault_disarm();
    assert_int_equal(iofault_write(fd, "x", 1), 1);
    iofault_arm(IOFAULT_WRITE, 1, IOFAULT_EINTR, true);
    assert_int_equal(iofault_write(fd, "x", 1), -1);
    assert_int_equal(errno, EINTR);
    assert_int_equal(iofault_write(fd, "x", 1), 1);
    iofault_disarm();
    close(fd);
}

/* A short fault writes the first half and returns its length; it counts
 * writes only, so "any:1:short" skips an open and strikes the first write. */
static void short_writes_write_half(void **state)
{
    struct fx *fx = *state;
    iofault_arm(IOFAULT_ANY, 1, IOFAULT_SHORT, false);
    int fd = iofault_open(fx->path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(iofault_write(fd, "0123456789", 10), 5);
    assert_true(iofault_fired());
    assert_int_equal(iofault_write(fd, "abc", 3), 3);
    close(fd);
    assert_int_equal(file_differs(fx->path, "01234abc", 8), 0);
    /* fileio_write_all loops over it. */
    iofault_arm(IOFAULT_WRITE, 1, IOFAULT_SHORT, false);
    fd = open(fx->path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    assert_int_equal(fileio_write_all(fd, "0123456789", 10), 0);
    close(fd);
    assert_int_equal(file_differs(fx->path, "0123456789", 10), 0);
    iofault_disarm();
}

/* MEMCHAT_FAULT_IO: the documented forms are accepted, everything else is
 * refused with a message naming the variable. */
static void env_specs_are_parsed_or_refused(void **state)
{
    (void)state;
    static const char *const good[] = {"write:3:enospc", "any:7:eio",       "fsync:1+:eio",
                                       "open:2:eintr",   "any:12:short",    "rename:1:enospc",
                                       "truncate:4:eio", "unlink:1+:enospc"};
    static const char *const bad[] = {"write:0:eio",  "bogus:1:eio",  "write:1+:eintr",
                                      "write:x:eio",  "write:1",      "write:1:eio:more",
                                      "write:1:oops", "write:-1:eio", "write:1++:eio",
                                      ":1:eio",       "any:1+:short", "write: 1:eio"};
    char err[256];
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        setenv("MEMCHAT_FAULT_IO", good[i], 1);
        err[0] = '\0';
        if (iofault_setup_env(err, sizeof err) != 0)
            fail_msg("%s refused: %s", good[i], err);
        assert_true(iofault_enabled());
    }
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        setenv("MEMCHAT_FAULT_IO", bad[i], 1);
        err[0] = '\0';
        if (iofault_setup_env(err, sizeof err) == 0)
            fail_msg("%s accepted", bad[i]);
        assert_non_null(strstr(err, "MEMCHAT_FAULT_IO"));
    }
    unsetenv("MEMCHAT_FAULT_IO");
    iofault_disarm();
    /* The spec arms the seam: "write:2:eio" fails the second write. */
    setenv("MEMCHAT_FAULT_IO", "write:2:eio", 1);
    assert_int_equal(iofault_setup_env(err, sizeof err), 0);
    unsetenv("MEMCHAT_FAULT_IO");
    int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    assert_int_equal(iofault_write(fd, "x", 1), 1);
    assert_int_equal(iofault_write(fd, "x", 1), -1);
    assert_int_equal(errno, EIO);
    close(fd);
    iofault_disarm();
}

/* MEMCHAT_FAULT_IO_REPORT: a process that exits normally writes its counts
 * (since it started: a forked child inherits this process's) and whether
 * the fault struck. */
static void report_is_written_at_exit(void **state)
{
    struct fx *fx = *state;
    char report[4096], want[512];
    snprintf(report, sizeof report, "%s/report", fx->dir);
    snprintf(want, sizeof want,
             "ops=%lu open=%lu write=%lu fsync=%lu rename=%lu truncate=%lu unlink=%lu fired=1\n",
             iofault_count(IOFAULT_ANY) + 3, iofault_count(IOFAULT_OPEN) + 1,
             iofault_count(IOFAULT_WRITE) + 2, iofault_count(IOFAULT_FSYNC),
             iofault_count(IOFAULT_RENAME), iofault_count(IOFAULT_TRUNCATE),
             iofault_count(IOFAULT_UNLINK));
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char err[256];
        setenv("MEMCHAT_FAULT_IO_REPORT", report, 1);
        setenv("MEMCHAT_FAULT_IO", "write:2:eio", 1);
        if (iofault_setup_env(err, sizeof err) != 0)
            _exit(3);
        int fd = iofault_open("/dev/null", O_WRONLY | O_CLOEXEC, 0);
        bool ok = iofault_write(fd, "x", 1) == 1 && iofault_write(fd, "x", 1) == -1;
        close(fd);
        exit(ok ? 0 : 4);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    char *text = tu_read_file(report, NULL);
    assert_non_null(text);
    assert_string_equal(text, want);
    free(text);
}

/* --- fileio ------------------------------------------------------------------ */

/* One replacement of fx->path with new[0..len) under the armed fault;
 * the checks every sweep position must pass. rc is fileio's result. */
static void check_replace(const struct fx *fx, int rc, const char *err, enum iofault_kind kind,
                          const char *old, size_t old_len, const char *new, size_t new_len,
                          const char *where)
{
    if (temp_files(fx->dir) != 0)
        fail_msg("%s: a temporary file was left", where);
    bool is_old = file_differs(fx->path, old, old_len) == 0;
    bool is_new = file_differs(fx->path, new, new_len) == 0;
    if (!is_old && !is_new)
        fail_msg("%s: the file is neither the old content nor the new (rc %d: %s)", where, rc, err);
    if (kind == IOFAULT_EINTR || kind == IOFAULT_SHORT || kind == IOFAULT_NONE) {
        if (rc != 0 || !is_new)
            fail_msg("%s: an interrupted or short call was not retried: rc %d: %s", where, rc, err);
        return;
    }
    if (rc == 0) {
        if (!is_new)
            fail_msg("%s: success, but the old content is in place", where);
        return;
    }
    /* A failure names the file and the step; it leaves the old content,
     * unless only the directory's fsync failed after the rename. */
    if (strstr(err, fx->path) == NULL)
        fail_msg("%s: the message does not name the file: %s", where, err);
    static const char *const steps[] = {"create temporary file",
                                        ": write:", ": fsync:", ": rename:", "fsync directory"};
    bool named = false;
    for (size_t i = 0; i < sizeof steps / sizeof *steps; i++)
        named = named || strstr(err, steps[i]) != NULL;
    if (!named)
        fail_msg("%s: the message does not name the step: %s", where, err);
    bool after_rename = strstr(err, "may not survive a crash") != NULL;
    if (after_rename ? !is_new : !is_old)
        fail_msg("%s: %s content after: %s", where, is_old ? "old" : "new", err);
}

/* How one sweep writes the new content. */
enum how { WHOLE, PIECES };

/* Writes new[0..len) over fx->path with fileio: in one call (WHOLE), or
 * through replace_begin/end in 3000-byte pieces (PIECES: many writes,
 * as the index's writer makes). */
static int do_replace(const struct fx *fx, enum how how, const char *new, size_t len, char *err,
                      size_t errlen)
{
    if (how == WHOLE)
        return fileio_replace(fx->path, new, len, 0600, err, errlen);
    char *tmp;
    int fd = fileio_replace_begin(fx->path, 0600, &tmp, err, errlen);
    if (fd < 0)
        return -1;
    int e = 0;
    for (size_t off = 0; off < len && e == 0; off += 3000) {
        size_t n = len - off < 3000 ? len - off : 3000;
        if (fileio_write_all(fd, new + off, n) != 0)
            e = errno;
    }
    return fileio_replace_end(fx->path, fd, tmp, e, err, errlen);
}

/* Every operation of a replacement x every kind (x sticky for eio and
 * enospc), the old content put back before each; returns the runs. */
static unsigned long sweep_replace(const struct fx *fx, enum how how, const char *old,
                                   size_t old_len, const char *new, size_t new_len)
{
    char err[1024];
    put_file(fx->path, old, old_len);
    unsigned long c0 = iofault_count(IOFAULT_ANY), w0 = iofault_count(IOFAULT_WRITE);
    assert_int_equal(do_replace(fx, how, new, new_len, err, sizeof err), 0);
    unsigned long total = iofault_count(IOFAULT_ANY) - c0;
    unsigned long writes = iofault_count(IOFAULT_WRITE) - w0;
    assert_true(total >= 5); /* create, fsync, rename, open dir, fsync dir */
    unsigned long runs = 0;
    for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
        unsigned long end = kinds[k] == IOFAULT_SHORT ? writes : total;
        for (int sticky = 0; sticky < 2; sticky++) {
            if (sticky && kinds[k] != IOFAULT_EIO && kinds[k] != IOFAULT_ENOSPC)
                continue;
            for (unsigned long n = 1; n <= end; n++) {
                if (sticky && !sticky_here(n, end))
                    continue;
                char where[128];
                snprintf(where, sizeof where, "%s, %zu -> %zu bytes, %s at op %lu%s",
                         how == WHOLE ? "replace" : "pieces", old_len, new_len,
                         kind_names[kinds[k]], n, sticky ? "+" : "");
                put_file(fx->path, old, old_len);
                err[0] = '\0';
                iofault_arm(IOFAULT_ANY, n, kinds[k], sticky);
                int rc = do_replace(fx, how, new, new_len, err, sizeof err);
                bool fired = iofault_fired();
                iofault_disarm();
                if (!fired)
                    fail_msg("%s: the fault never struck (%lu operations counted)", where, total);
                check_replace(fx, rc, err, kinds[k], old, old_len, new, new_len, where);
                runs++;
            }
        }
    }
    return runs;
}

/* Content of len bytes that differs from pattern b at every byte. */
static char *make_content(size_t len, unsigned b)
{
    char *s = malloc(len + 1);
    for (size_t i = 0; i < len; i++)
        s[i] = (char)('a' + (i * 7 + b) % 26);
    s[len] = '\0';
    return s;
}

/* fileio_replace: every operation, every kind, for an empty, a one-byte, a
 * small and a large (several writes when short) replacement, and for a
 * target that did not exist before (old = "" then stands for "absent":
 * the sweep writes an empty file first, which is its old content). */
static void replace_holds_old_or_new_under_every_fault(void **state)
{
    struct fx *fx = *state;
    static const size_t sizes[][2] = {{5, 0}, {0, 1}, {12, 300}, {300, 12}, {1000, 200000}};
    unsigned long runs = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        char *old = make_content(sizes[i][0], 1), *new = make_content(sizes[i][1], 2);
        runs += sweep_replace(fx, WHOLE, old, sizes[i][0], new, sizes[i][1]);
        free(old);
        free(new);
    }
    assert_true(runs > 50);
    print_message("fileio_replace: %lu faulted runs\n", runs);
}

/* The piecewise replacement (the index's way): a fault at any one of many
 * writes leaves the old file and no temporary file. */
static void piecewise_replace_holds_old_or_new_under_every_fault(void **state)
{
    struct fx *fx = *state;
    char *old = make_content(4000, 3), *new = make_content(20000, 4);
    unsigned long runs = sweep_replace(fx, PIECES, old, 4000, new, 20000);
    free(old);
    free(new);
    assert_true(runs > 40);
    print_message("fileio_replace_begin/end: %lu faulted runs\n", runs);
}

/* fileio_read_all and fileio_sync_dir retry an interrupted open or fsync,
 * and report a failed one naming the path. */
static void read_and_sync_dir_retry_eintr_and_report_errors(void **state)
{
    struct fx *fx = *state;
    put_file(fx->path, "content", 7);
    char err[512], *data;
    size_t len;
    iofault_arm(IOFAULT_OPEN, 1, IOFAULT_EINTR, false);
    assert_int_equal(fileio_read_all(fx->path, 100, &data, &len, err, sizeof err), 0);
    assert_true(iofault_fired());
    assert_string_equal(data, "content");
    xfree(data);
    iofault_arm(IOFAULT_OPEN, 1, IOFAULT_EIO, false);
    assert_int_equal(fileio_read_all(fx->path, 100, &data, &len, err, sizeof err), -1);
    assert_null(data);
    assert_non_null(strstr(err, fx->path));
    assert_non_null(strstr(err, strerror(EIO)));
    static const enum iofault_op ops[] = {IOFAULT_OPEN, IOFAULT_FSYNC};
    for (size_t i = 0; i < 2; i++) {
        iofault_arm(ops[i], 1, IOFAULT_EINTR, false);
        assert_int_equal(fileio_sync_dir(fx->dir), 0);
        assert_true(iofault_fired());
        iofault_arm(ops[i], 1, IOFAULT_ENOSPC, false);
        errno = 0;
        assert_int_equal(fileio_sync_dir(fx->dir), -1);
        assert_int_equal(errno, ENOSPC);
    }
    iofault_disarm();
}

/* --- the keystore -------------------------------------------------------------- */

/* The keys of the sweep's keystore: the old set is A; the new one A and B. */
#define KEY_A "sk-iofault-old-key-AAAA"
#define KEY_B "sk-iofault-new-key-BBBB"

/* Which set the keystore at path holds: 1 (A only) or 2 (A and B); fails
 * the test when it does not open or holds anything else. */
static int keystore_set_held(const char *path, const uint8_t *master, const char *where)
{
    struct keystore *ks = NULL;
    char err[512];
    if (keystore_open(path, master, &ks, err, sizeof err) != 0)
        fail_msg("%s: the keystore does not open: %s", where, err);
    char *a = NULL, *b = NULL;
    int ra = keystore_get(ks, "acme", "openai", "default", &a, NULL, err, sizeof err);
    int rb = keystore_get(ks, "acme", "anthropic", "default", &b, NULL, err, sizeof err);
    size_t n = keystore_count(ks);
    bool a_ok = ra == 0 && strcmp(a, KEY_A) == 0;
    bool b_ok = rb == 0 && strcmp(b, KEY_B) == 0;
    keystore_secret_free(a);
    keystore_secret_free(b);
    keystore_free(ks);
    if (a_ok && rb == 1 && n == 1)
        return 1;
    if (a_ok && b_ok && n == 2)
        return 2;
    fail_msg("%s: the keystore holds neither the old set nor the new (%zu records)", where, n);
    return 0;
}

/* keystore_save under every fault: the file always opens with the master
 * key and holds the old set or the new; the new one whenever save said so. */
static void keystore_holds_old_or_new_set_under_every_fault(void **state)
{
    struct fx *fx = *state;
    uint8_t master[KEYSTORE_KEY_BYTES];
    randombytes_buf(master, sizeof master);
    char err[512], old_copy[4096];
    snprintf(old_copy, sizeof old_copy, "%s/keystore.old", fx->dir);
    struct keystore *ks = NULL;
    assert_int_equal(keystore_open(fx->path, master, &ks, err, sizeof err), 0);
    assert_int_equal(
        keystore_set(ks, "acme", "openai", "default", KEY_A, strlen(KEY_A), err, sizeof err), 0);
    assert_int_equal(keystore_save(ks, err, sizeof err), 0);
    keystore_free(ks);
    copy_file(fx->path, old_copy);

    unsigned long c0 = iofault_count(IOFAULT_ANY), runs = 0;
    assert_int_equal(keystore_open(fx->path, master, &ks, err, sizeof err), 0);
    assert_int_equal(
        keystore_set(ks, "acme", "anthropic", "default", KEY_B, strlen(KEY_B), err, sizeof err), 0);
    unsigned long open_ops = iofault_count(IOFAULT_ANY) - c0;
    assert_int_equal(keystore_save(ks, err, sizeof err), 0);
    keystore_free(ks);
    unsigned long total = iofault_count(IOFAULT_ANY) - c0;
    assert_int_equal(open_ops, 1); /* reading the file */
    for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
        for (unsigned long n = 1; n <= total; n++) {
            char where[128];
            snprintf(where, sizeof where, "keystore, %s at op %lu", kind_names[kinds[k]], n);
            copy_file(old_copy, fx->path);
            iofault_arm(kinds[k] == IOFAULT_SHORT ? IOFAULT_WRITE : IOFAULT_ANY, n, kinds[k],
                        false);
            int rc = keystore_open(fx->path, master, &ks, err, sizeof err);
            if (rc == 0) {
                assert_int_equal(keystore_set(ks, "acme", "anthropic", "default", KEY_B,
                                              strlen(KEY_B), err, sizeof err),
                                 0);
                rc = keystore_save(ks, err, sizeof err);
                keystore_free(ks);
            }
            bool fired = iofault_fired();
            iofault_disarm();
            if (!fired)
                continue; /* a short fault past the last write */
            runs++;
            int held = keystore_set_held(fx->path, master, where);
            if (temp_files(fx->dir) != 0)
                fail_msg("%s: a temporary file was left", where);
            if (rc == 0 && held != 2)
                fail_msg("%s: saved, but the old set is in place", where);
            if (rc != 0 && (strstr(err, fx->path) == NULL || strstr(err, KEY_B) != NULL))
                fail_msg("%s: the message does not name the file, or shows the key: %s", where,
                         err);
            if ((kinds[k] == IOFAULT_EINTR || kinds[k] == IOFAULT_SHORT) && rc != 0)
                fail_msg("%s: not retried: %s", where, err);
        }
    }
    assert_true(runs >= 3 * total);
    print_message("keystore: %lu faulted runs over %lu operations\n", runs, total);
}

/* --- the master key ------------------------------------------------------------- */

/* masterkey_load creating master.key under every fault: afterwards the file
 * is absent or a whole key, no temporary file is left, a success returned
 * the key the file holds, and a failure names the file. A file in place
 * after a failure is allowed only for the last step (the directory's
 * fsync): the link was done, and the message says so. */
static void master_key_creation_is_absent_or_whole_under_every_fault(void **state)
{
    struct fx *fx = *state;
    char key_path[4096];
    snprintf(key_path, sizeof key_path, "%s/master.key", fx->dir);
    struct masterkey_in in = {.config_dir = fx->dir, .create = true};
    uint8_t key[KEYSTORE_KEY_BYTES], held[KEYSTORE_KEY_BYTES];
    enum masterkey_source src;
    char err[512];
    unsigned long c0 = iofault_count(IOFAULT_ANY), renames = iofault_count(IOFAULT_RENAME);
    assert_int_equal(masterkey_load(&in, key, &src, err, sizeof err), 0);
    unsigned long total = iofault_count(IOFAULT_ANY) - c0;
    /* The link into place is seen by the seam (counted as a rename). */
    assert_int_equal(iofault_count(IOFAULT_RENAME) - renames, 1);
    unsigned long runs = 0;
    for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
        for (unsigned long n = 1; n <= total; n++) {
            char where[128];
            snprintf(where, sizeof where, "master.key, %s at op %lu", kind_names[kinds[k]], n);
            unlink(key_path);
            iofault_arm(kinds[k] == IOFAULT_SHORT ? IOFAULT_WRITE : IOFAULT_ANY, n, kinds[k],
                        false);
            int rc = masterkey_load(&in, key, &src, err, sizeof err);
            bool fired = iofault_fired();
            iofault_disarm();
            if (!fired)
                continue;
            runs++;
            if (temp_files(fx->dir) != 0)
                fail_msg("%s: a temporary file was left", where);
            size_t len = 0;
            char *text = tu_read_file(key_path, &len);
            bool whole = text != NULL && len == 45 && text[44] == '\n';
            if (whole) {
                text[44] = '\0';
                whole = masterkey_decode(text, "master.key", held, err, sizeof err) == 0;
            }
            if (text != NULL && !whole)
                fail_msg("%s: master.key is in place but not a whole key (%zu bytes)", where, len);
            free(text);
            if (rc == 0 && (!whole || memcmp(held, key, sizeof key) != 0))
                fail_msg("%s: loaded, but master.key does not hold that key", where);
            if (rc != 0 && strstr(err, key_path) == NULL)
                fail_msg("%s: the message does not name the file: %s", where, err);
            if (rc != 0 && whole && strstr(err, "fsync directory") == NULL)
                fail_msg("%s: failed, yet master.key is in place: %s", where, err);
            if ((kinds[k] == IOFAULT_EINTR || kinds[k] == IOFAULT_SHORT) && rc != 0)
                fail_msg("%s: not retried: %s", where, err);
        }
    }
    assert_true(runs >= 3 * total);
    print_message("master.key: %lu faulted runs over %lu operations\n", runs, total);
}

/* --- the data file (SQLite through the shim) ------------------------------------- */

static const struct db_migration test_migrations[] = {
    {1, "iofault_table", "CREATE TABLE t (id INTEGER PRIMARY KEY, payload BLOB NOT NULL);"},
};

struct dbfx {
    char path[4096], wal[4200], shm[4200];
    char saved[3][4200]; /* the baseline's db, wal and shm */
};

static void db_paths(struct dbfx *d, const char *dir)
{
    snprintf(d->path, sizeof d->path, "%s/memchat.db", dir);
    snprintf(d->wal, sizeof d->wal, "%s-wal", d->path);
    snprintf(d->shm, sizeof d->shm, "%s-shm", d->path);
    for (int i = 0; i < 3; i++)
        snprintf(d->saved[i], sizeof d->saved[i], "%s/saved-%d", dir, i);
}

static void db_save(const struct dbfx *d)
{
    copy_file(d->path, d->saved[0]);
    copy_file(d->wal, d->saved[1]);
    copy_file(d->shm, d->saved[2]);
}

static void db_restore(const struct dbfx *d)
{
    copy_file(d->saved[0], d->path);
    copy_file(d->saved[1], d->wal);
    copy_file(d->saved[2], d->shm);
}

#define PAYLOAD_LEN 20000 /* five pages and more */

static void payload(unsigned char *p, int seed)
{
    for (int i = 0; i < PAYLOAD_LEN; i++)
        p[i] = (unsigned char)(i * 31 + seed);
}

/* The transaction the sweep faults: row 2 inserted (several pages) and
 * row 1 rewritten, in one commit. 0 when every step succeeded. */
static int db_write_txn(const struct dbfx *d, char *err, size_t errlen)
{
    enum db_error why;
    struct db *db = db_open_with(d->path, test_migrations, 1, &why, err, errlen);
    if (db == NULL)
        return -1;
    sqlite3 *c = db_handle(db);
    unsigned char buf[PAYLOAD_LEN];
    int rc = db_begin(db, err, errlen);
    sqlite3_stmt *st = NULL;
    if (rc == 0 && sqlite3_prepare_v2(c, "INSERT INTO t VALUES (2, ?)", -1, &st, NULL) != 0)
        rc = -1;
    if (rc == 0) {
        payload(buf, 2);
        sqlite3_bind_blob(st, 1, buf, PAYLOAD_LEN, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (rc == 0 &&
        sqlite3_prepare_v2(c, "UPDATE t SET payload = ? WHERE id = 1", -1, &st, NULL) != 0)
        rc = -1;
    if (rc == 0) {
        payload(buf, 3);
        sqlite3_bind_blob(st, 1, buf, PAYLOAD_LEN, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
    }
    sqlite3_finalize(st);
    if (rc == 0)
        rc = db_commit(db, err, errlen);
    if (rc != 0)
        db_rollback(db);
    db_close(db);
    return rc;
}

/* Whether row id holds the payload of seed; -1 when the row is absent. */
static int row_is(sqlite3 *c, int id, int seed)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(c, "SELECT payload FROM t WHERE id = ?", -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_int(st, 1, id);
    int r = -1;
    if (sqlite3_step(st) == SQLITE_ROW) {
        unsigned char want[PAYLOAD_LEN];
        payload(want, seed);
        r = sqlite3_column_bytes(st, 0) == PAYLOAD_LEN &&
            memcmp(sqlite3_column_blob(st, 0), want, PAYLOAD_LEN) == 0;
    }
    sqlite3_finalize(st);
    return r;
}

/* After a faulted run: the file is whole and the transaction all there or
 * absent. Returns true when it is there. */
static bool db_check_after(const struct dbfx *d, const char *where)
{
    char err[1024];
    enum db_error why;
    struct db *db = db_open_with(d->path, test_migrations, 1, &why, err, sizeof err);
    if (db == NULL)
        fail_msg("%s: the data file does not open: %s", where, err);
    sqlite3 *c = db_handle(db);
    tu_expect_integrity(c, where);
    int r1_new = row_is(c, 1, 3), r1_old = row_is(c, 1, 1), r2 = row_is(c, 2, 2);
    db_close(db);
    if (r2 == 1 && r1_new == 1)
        return true;
    if (r2 == -1 && r1_old == 1)
        return false;
    fail_msg("%s: a mix: row 2 %d, row 1 new %d old %d", where, r2, r1_new, r1_old);
    return false;
}

/* The data file under every fault at every operation of opening it and
 * committing a transaction: whole, and the transaction atomic. */
static void data_file_holds_old_or_new_under_every_fault(void **state)
{
    struct fx *fx = *state;
    struct dbfx d;
    db_paths(&d, fx->dir);
    char err[1024];
    iofault_arm(IOFAULT_ANY, 0, IOFAULT_NONE, false); /* enable: the shim installs */
    enum db_error why;
    struct db *db = db_open_with(d.path, test_migrations, 1, &why, err, sizeof err);
    assert_non_null(db);
    unsigned char buf[PAYLOAD_LEN];
    payload(buf, 1);
    sqlite3_stmt *st = NULL;
    assert_int_equal(
        sqlite3_prepare_v2(db_handle(db), "INSERT INTO t VALUES (1, ?)", -1, &st, NULL), 0);
    sqlite3_bind_blob(st, 1, buf, PAYLOAD_LEN, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    db_close(db);
    db_save(&d);

    unsigned long c0 = iofault_count(IOFAULT_ANY), s0 = iofault_count(IOFAULT_FSYNC);
    unsigned long w0 = iofault_count(IOFAULT_WRITE);
    assert_int_equal(db_write_txn(&d, err, sizeof err), 0);
    unsigned long total = iofault_count(IOFAULT_ANY) - c0;
    unsigned long writes = iofault_count(IOFAULT_WRITE) - w0;
    /* The shim sees SQLite's writes and syncs (the WAL's commit). */
    assert_true(writes >= 5);
    assert_true(iofault_count(IOFAULT_FSYNC) - s0 >= 1);
    unsigned long runs = 0, failed = 0;
    for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
        unsigned long end = kinds[k] == IOFAULT_SHORT ? writes : total;
        for (int sticky = 0; sticky < 2; sticky++) {
            if (sticky && kinds[k] != IOFAULT_EIO && kinds[k] != IOFAULT_ENOSPC)
                continue;
            for (unsigned long n = 1; n <= end; n++) {
                if (sticky && !sticky_here(n, end))
                    continue;
                char where[128];
                snprintf(where, sizeof where, "data file, %s at op %lu%s", kind_names[kinds[k]], n,
                         sticky ? "+" : "");
                db_restore(&d);
                err[0] = '\0';
                iofault_arm(IOFAULT_ANY, n, kinds[k], sticky);
                int rc = db_write_txn(&d, err, sizeof err);
                bool fired = iofault_fired();
                iofault_disarm();
                if (!fired)
                    continue; /* the operations of a failing run differ */
                runs++;
                bool there = db_check_after(&d, where);
                if (rc == 0 && !there)
                    fail_msg("%s: committed, but the transaction is absent", where);
                if ((kinds[k] == IOFAULT_EINTR || kinds[k] == IOFAULT_SHORT) && rc != 0)
                    fail_msg("%s: not retried: %s", where, err);
                if (rc != 0)
                    failed++;
                if (rc != 0 && err[0] != '\0' && strstr(err, d.path) == NULL)
                    fail_msg("%s: the message does not name the data file: %s", where, err);
            }
        }
    }
    assert_true(runs >= 2 * total);
    assert_true(failed > 0);
    print_message("data file: %lu faulted runs over %lu operations (%lu writes), %lu failed "
                  "cleanly\n",
                  runs, total, writes, failed);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(arming_fails_exactly_the_nth_operation),
        cmocka_unit_test(sticky_faults_keep_failing),
        cmocka_unit_test_setup_teardown(short_writes_write_half, setup, teardown),
        cmocka_unit_test(env_specs_are_parsed_or_refused),
        cmocka_unit_test_setup_teardown(report_is_written_at_exit, setup, teardown),
        cmocka_unit_test_setup_teardown(replace_holds_old_or_new_under_every_fault, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(piecewise_replace_holds_old_or_new_under_every_fault, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(read_and_sync_dir_retry_eintr_and_report_errors, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(master_key_creation_is_absent_or_whole_under_every_fault,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(keystore_holds_old_or_new_set_under_every_fault, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(data_file_holds_old_or_new_under_every_fault, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
