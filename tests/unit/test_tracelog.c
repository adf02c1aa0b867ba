/*
 * Tests of the trace log (store/tracelog.c): whole JSON lines appended in
 * order, size rotation keeping exactly `keep` files with the newest in .1,
 * an oversized line alone in a fresh file, modes 0700/0600, two handles and
 * two processes sharing one directory without losing or splitting a line,
 * a removed file or directory created again, and errors that name the path
 * (a full device, an unwritable directory, no memory).
 *
 * Every record written here is {"w":W,"n":"NNNNN","pad":"..."}: the writer,
 * its sequence number in fixed width, and padding, so all lines of one test
 * have the same length L and where rotation falls follows by arithmetic.
 */
#include "testutil.h"

#include <cJSON.h>
#include <stdbool.h>
#include <sys/wait.h>

#include "memchat/engine.h"
#include "store/tracelog.h"
#include "util/alloc.h"

#define MAX_WRITERS 2

struct fixture {
    char *tmp;   /* tu_mkdtemp() */
    char *dir;   /* tmp/traces: created by tracelog_open */
    char *path;  /* dir/traces.jsonl */
    size_t pad;  /* padding of each record */
    size_t line; /* L: the length of every line, newline included */
};

static int group_setup(void **state)
{
    (void)state;
    /* cJSON through util/alloc, as in every program (for the OOM case). */
    return mc_global_init();
}

static char *join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = malloc(n);
    assert_non_null(s);
    snprintf(s, n, "%s/%s", a, b);
    return s;
}

/* The n-th rotated file (n = 0: the current one). */
static char *nth(const struct fixture *f, int n)
{
    if (n == 0)
        return strdup(f->path);
    size_t len = strlen(f->path) + 16;
    char *s = malloc(len);
    assert_non_null(s);
    snprintf(s, len, "%s.%d", f->path, n);
    return s;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static cJSON *record(const struct fixture *f, int writer, int n)
{
    cJSON *r = cJSON_CreateObject();
    assert_non_null(r);
    char num[16];
    snprintf(num, sizeof num, "%05d", n);
    char *pad = malloc(f->pad + 1);
    assert_non_null(pad);
    memset(pad, 'x', f->pad);
    pad[f->pad] = '\0';
    assert_non_null(cJSON_AddNumberToObject(r, "w", writer));
    assert_non_null(cJSON_AddStringToObject(r, "n", num));
    assert_non_null(cJSON_AddStringToObject(r, "pad", pad));
    free(pad);
    return r;
}

/* Sets the padding and works out L from a sample record. */
static void set_pad(struct fixture *f, size_t pad)
{
    f->pad = pad;
    cJSON *r = record(f, 0, 0);
    char *s = cJSON_PrintUnformatted(r);
    f->line = strlen(s) + 1;
    cJSON_free(s);
    cJSON_Delete(r);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->tmp = tu_mkdtemp();
    f->dir = join(f->tmp, "traces");
    f->path = join(f->dir, "traces.jsonl");
    set_pad(f, 40);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    /* The unwritable-directory case may leave a mode to undo. */
    chmod(f->tmp, 0700);
    tu_rmtree(f->tmp);
    free(f->tmp);
    free(f->dir);
    free(f->path);
    free(f);
    return 0;
}

static struct tracelog *open_log(const struct fixture *f, long long max_bytes, int keep)
{
    char err[512];
    struct tracelog *tl = tracelog_open(f->dir, max_bytes, keep, err, sizeof err);
    if (tl == NULL)
        fail_msg("tracelog_open: %s", err);
    return tl;
}

static void write_one(const struct fixture *f, struct tracelog *tl, int writer, int n)
{
    cJSON *r = record(f, writer, n);
    char err[512];
    if (tracelog_write(tl, r, err, sizeof err) != 0)
        fail_msg("tracelog_write: %s", err);
    cJSON_Delete(r);
}

/* What a pass over the files found. */
struct seen {
    int lines;
    int count[MAX_WRITERS];
    int last[MAX_WRITERS]; /* the last n seen per writer, -1 before any */
    int first_n;           /* n of the first line read (oldest), -1 when none */
    /* When set, n grows across all writers too: the lines were written one
     * after another (by one thread) with one counter. */
    bool ordered;
    int last_any;
};

/* Reads the file at path (missing: nothing), checking that it ends with a
 * newline, that every line is a whole record, that each writer's numbers
 * only grow (files are read oldest first), and, when max_bytes > 0, that
 * the file is within it. */
static void read_one(const char *path, long long max_bytes, struct seen *s)
{
    size_t len;
    char *text = tu_read_file(path, &len);
    if (text == NULL)
        return;
    if (max_bytes > 0 && (long long)len > max_bytes)
        fail_msg("%s has %zu bytes, more than %lld", path, len, max_bytes);
    if (len > 0 && text[len - 1] != '\n')
        fail_msg("%s does not end with a newline", path);
    char *line = text;
    while (*line != '\0') {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        *nl = '\0';
        cJSON *r = cJSON_Parse(line);
        if (r == NULL)
            fail_msg("%s: not a whole JSON line: %s", path, line);
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(r, "w");
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(r, "n");
        assert_true(cJSON_IsNumber(w) && cJSON_IsString(n));
        assert_true(w->valueint >= 0 && w->valueint < MAX_WRITERS);
        int num = (int)strtol(n->valuestring, NULL, 10);
        if (num <= s->last[w->valueint])
            fail_msg("%s: writer %d wrote %d after %d", path, w->valueint, num,
                     s->last[w->valueint]);
        if (s->ordered && num <= s->last_any)
            fail_msg("%s: line %d comes after line %d", path, num, s->last_any);
        s->last_any = num;
        if (s->first_n < 0)
            s->first_n = num;
        s->last[w->valueint] = num;
        s->count[w->valueint]++;
        s->lines++;
        cJSON_Delete(r);
        line = nl + 1;
    }
    free(text);
}

/* Reads .max_rotated down to .1, then the current file. */
static struct seen read_all(const struct fixture *f, int max_rotated, long long max_bytes,
                            bool ordered)
{
    struct seen s = {.first_n = -1, .ordered = ordered, .last_any = -1};
    for (int w = 0; w < MAX_WRITERS; w++)
        s.last[w] = -1;
    for (int i = max_rotated; i >= 0; i--) {
        char *p = nth(f, i);
        read_one(p, max_bytes, &s);
        free(p);
    }
    return s;
}

/* The lines of one file (0 when missing). */
static int lines_in(const struct fixture *f, int n)
{
    char *p = nth(f, n);
    struct seen s = {.first_n = -1, .last = {-1, -1}};
    read_one(p, 0, &s);
    free(p);
    return s.lines;
}

/* The n of the first line of file n. */
static int first_in(const struct fixture *f, int n)
{
    char *p = nth(f, n);
    struct seen s = {.first_n = -1, .last = {-1, -1}};
    read_one(p, 0, &s);
    free(p);
    return s.first_n;
}

/* Records go in as one JSON line each, in order, at tracelog_path(); a
 * second handle on the same directory appends rather than truncating. */
static void lines_are_appended_and_each_parses(void **state)
{
    struct fixture *f = *state;
    struct tracelog *tl = open_log(f, 1 << 20, 5);
    assert_string_equal(tracelog_path(tl), f->path);
    for (int i = 0; i < 3; i++)
        write_one(f, tl, 0, i);
    tracelog_free(tl);
    tl = open_log(f, 1 << 20, 5);
    write_one(f, tl, 0, 3);
    tracelog_free(tl);

    size_t len;
    char *text = tu_read_file(f->path, &len);
    assert_non_null(text);
    assert_int_equal(len, 4 * f->line);
    free(text);
    struct seen s = read_all(f, 0, 0, true);
    assert_int_equal(s.lines, 4);
    assert_int_equal(s.first_n, 0);
    assert_int_equal(s.last[0], 3);
    char *p1 = nth(f, 1);
    assert_false(exists(p1));
    free(p1);
}

/* With room for exactly three lines (max = 3L) and keep = 3, 20 lines
 * rotate whenever a fourth would not fit: files hold 0-2, 3-5, ..., 15-17
 * and 18-19. The current file has 18 and 19, .1 (the newest rotated) 15-17,
 * .2 12-14, .3 9-11, and nothing older survives: no .4. A later, smaller
 * keep removes the files beyond it at the next rotation. */
static void rotation_keeps_exactly_keep_files_newest_in_1(void **state)
{
    struct fixture *f = *state;
    long long max = 3 * (long long)f->line;
    struct tracelog *tl = open_log(f, max, 3);
    for (int i = 0; i < 20; i++)
        write_one(f, tl, 0, i);
    tracelog_free(tl);

    assert_int_equal(lines_in(f, 0), 2);
    assert_int_equal(first_in(f, 0), 18);
    assert_int_equal(lines_in(f, 1), 3);
    assert_int_equal(first_in(f, 1), 15);
    assert_int_equal(first_in(f, 2), 12);
    assert_int_equal(first_in(f, 3), 9);
    char *p4 = nth(f, 4);
    assert_false(exists(p4));
    free(p4);
    /* Oldest first, the kept lines are 9..19 in order, none split. */
    struct seen s = read_all(f, 3, max, true);
    assert_int_equal(s.lines, 11);
    assert_int_equal(s.first_n, 9);
    assert_int_equal(s.last[0], 19);

    /* keep lowered to 1: 20 fills the current file (18-20), 21 rotates it
     * to .1, and the .2 and .3 of the larger keep go too. */
    tl = open_log(f, max, 1);
    write_one(f, tl, 0, 20);
    write_one(f, tl, 0, 21);
    tracelog_free(tl);
    assert_int_equal(first_in(f, 1), 18);
    assert_int_equal(lines_in(f, 1), 3);
    assert_int_equal(lines_in(f, 2) + lines_in(f, 3), 0);
}

/* With keep large enough that nothing is dropped, every line written is in
 * exactly one file, whole, in order, and no file passes max_bytes (here
 * 3.5 lines, so each file holds three lines and some slack). keep = 0
 * keeps no rotated file at all. */
static void rotation_loses_no_line_and_keep_zero_keeps_none(void **state)
{
    struct fixture *f = *state;
    long long max = 3 * (long long)f->line + (long long)f->line / 2;
    struct tracelog *tl = open_log(f, max, 100);
    for (int i = 0; i < 50; i++)
        write_one(f, tl, 0, i);
    tracelog_free(tl);
    struct seen s = read_all(f, 100, max, true);
    assert_int_equal(s.lines, 50);
    assert_int_equal(s.first_n, 0);
    /* 50 lines, 3 a file: 16 full rotated files and 2 in the current. */
    assert_int_equal(lines_in(f, 0), 2);
    assert_int_equal(lines_in(f, 16), 3);
    assert_int_equal(lines_in(f, 17), 0);

    tu_rmtree(f->dir);
    tl = open_log(f, 3 * (long long)f->line, 0);
    for (int i = 0; i < 7; i++)
        write_one(f, tl, 0, i);
    tracelog_free(tl);
    /* 0-2 and 3-5 were discarded; 6 is alone. */
    assert_int_equal(lines_in(f, 0), 1);
    assert_int_equal(first_in(f, 0), 6);
    assert_int_equal(lines_in(f, 1), 0);
}

/* A line longer than max_bytes is still written, alone in a fresh file,
 * and the next line starts another file. */
static void a_line_larger_than_max_bytes_goes_alone_into_a_fresh_file(void **state)
{
    struct fixture *f = *state;
    long long max = 2 * (long long)f->line;
    struct tracelog *tl = open_log(f, max, 5);
    write_one(f, tl, 0, 0);
    set_pad(f, 400); /* L is now above max */
    write_one(f, tl, 0, 1);
    set_pad(f, 40);
    write_one(f, tl, 0, 2);
    tracelog_free(tl);
    assert_int_equal(first_in(f, 2), 0);
    assert_int_equal(lines_in(f, 2), 1);
    assert_int_equal(first_in(f, 1), 1);
    assert_int_equal(lines_in(f, 1), 1);
    assert_int_equal(first_in(f, 0), 2);
    assert_int_equal(lines_in(f, 0), 1);
}

/* The directory is created 0700 and every file 0600, also after a
 * rotation: the defaults under the usual umask 022 would be 0755/0644. */
static void file_and_directory_modes_are_private(void **state)
{
    struct fixture *f = *state;
    mode_t old = umask(022);
    struct tracelog *tl = open_log(f, 2 * (long long)f->line, 2);
    struct stat st;
    assert_int_equal(stat(f->dir, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    for (int i = 0; i < 3; i++)
        write_one(f, tl, 0, i);
    tracelog_free(tl);
    umask(old);
    assert_int_equal(lines_in(f, 1), 2); /* a rotation happened */
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
}

/* Two handles on one directory (as two processes would have), writing in
 * turn with rotations: each notices the other's rotation instead of writing
 * into the renamed file, so every line is in order, whole, counted once,
 * and no file passes max_bytes. Reading the files oldest first gives the
 * lines in the order they were written: a handle that wrote on into the
 * renamed file would put a line among older ones. */
static void two_handles_sharing_a_directory_lose_no_line(void **state)
{
    struct fixture *f = *state;
    long long max = 4 * (long long)f->line;
    struct tracelog *a = open_log(f, max, 1000);
    struct tracelog *b = open_log(f, max, 1000);
    int n = 0; /* one counter: the files must hold the lines in write order */
    for (int i = 0; i < 50; i++) {
        write_one(f, a, 0, n++);
        write_one(f, b, 1, n++);
        /* An extra line now and then moves the rotations between a and b:
         * each must follow the other's. */
        if (i % 7 == 0)
            write_one(f, b, 1, n++);
    }
    tracelog_free(a);
    tracelog_free(b);
    struct seen s = read_all(f, 1000, max, true);
    assert_int_equal(s.count[0], 50);
    assert_int_equal(s.count[1], 50 + 8); /* the extras at i = 0, 7, ..., 49 */
    assert_int_equal(s.lines, 108);
    /* A file rotates when a fifth line comes: 108 = 26 * 4 + 4, so 26
     * rotated files and the current one hold four lines each. */
    assert_int_equal(lines_in(f, 0), 4);
    assert_int_equal(lines_in(f, 1), 4);
    assert_int_equal(lines_in(f, 26), 4);
    assert_int_equal(lines_in(f, 27), 0);
}

/* Two real processes appending at once, rotating often: the lock keeps
 * each line whole and in one file, each writer's lines in order, none
 * lost, no file over max_bytes. The child reports through its exit code. */
static void two_processes_writing_at_once_lose_no_line(void **state)
{
    struct fixture *f = *state;
    enum { N = 300 };
    long long max = 5 * (long long)f->line;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct tracelog *mine = tracelog_open(f->dir, max, 1000, NULL, 0);
        int rc = mine == NULL ? 2 : 0;
        for (int i = 0; rc == 0 && i < N; i++) {
            cJSON *r = record(f, 1, i);
            char err[512];
            if (tracelog_write(mine, r, err, sizeof err) != 0)
                rc = 3;
            cJSON_Delete(r);
        }
        tracelog_free(mine);
        _exit(rc);
    }
    /* Opened after the fork: two processes, two independent opens. */
    struct tracelog *tl = open_log(f, max, 1000);
    for (int i = 0; i < N; i++)
        write_one(f, tl, 0, i);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    tracelog_free(tl);
    struct seen s = read_all(f, 1000, max, false);
    assert_int_equal(s.count[0], N);
    assert_int_equal(s.count[1], N);
    assert_int_equal(s.last[0], N - 1);
    assert_int_equal(s.last[1], N - 1);
}

/* A trace file the user removed is created again (0600) at the next
 * write, and so is a removed directory; nothing goes to the unlinked
 * file. */
static void a_removed_file_or_directory_is_created_again(void **state)
{
    struct fixture *f = *state;
    struct tracelog *tl = open_log(f, 1 << 20, 5);
    write_one(f, tl, 0, 0);
    assert_int_equal(unlink(f->path), 0);
    write_one(f, tl, 0, 1);
    assert_int_equal(lines_in(f, 0), 1);
    assert_int_equal(first_in(f, 0), 1);
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);

    tu_rmtree(f->dir);
    write_one(f, tl, 0, 2);
    tracelog_free(tl);
    assert_int_equal(lines_in(f, 0), 1);
    assert_int_equal(first_in(f, 0), 2);
}

/* A full device gives -1 with a message naming the path and the cause
 * (the trace file is a link to /dev/full, whose writes fail ENOSPC). */
static void a_full_device_gives_an_error_naming_the_path(void **state)
{
    struct fixture *f = *state;
    if (access("/dev/full", W_OK) != 0)
        skip();
    assert_int_equal(mkdir(f->dir, 0700), 0);
    assert_int_equal(symlink("/dev/full", f->path), 0);
    struct tracelog *tl = open_log(f, 1 << 20, 5);
    cJSON *r = record(f, 0, 0);
    char err[512] = "";
    assert_int_equal(tracelog_write(tl, r, err, sizeof err), -1);
    assert_non_null(strstr(err, f->path));
    assert_non_null(strstr(err, strerror(ENOSPC)));
    cJSON_Delete(r);
    tracelog_free(tl);
}

/* A directory the user cannot write gives NULL with a message naming the
 * trace file. Root writes anywhere, so the case is skipped for root. */
static void an_unwritable_directory_gives_an_error_naming_the_path(void **state)
{
    struct fixture *f = *state;
    if (geteuid() == 0)
        skip();
    assert_int_equal(mkdir(f->dir, 0500), 0);
    char err[512] = "";
    assert_null(tracelog_open(f->dir, 1 << 20, 5, err, sizeof err));
    assert_non_null(strstr(err, f->path));
    assert_non_null(strstr(err, strerror(EACCES)));
    chmod(f->dir, 0700);
}

/* A negative keep is refused with a message that says what is accepted. */
static void a_negative_keep_is_refused(void **state)
{
    struct fixture *f = *state;
    char err[512] = "";
    assert_null(tracelog_open(f->dir, 1 << 20, -1, err, sizeof err));
    assert_non_null(strstr(err, "keep must be 0 or more"));
}

/* No memory to format the record: -1 with a message saying so, and the
 * file is untouched. */
static void no_memory_gives_an_error_and_writes_nothing(void **state)
{
    struct fixture *f = *state;
    struct tracelog *tl = open_log(f, 1 << 20, 5);
    cJSON *r = record(f, 0, 0);
    char err[512] = "";
    alloc_fail_after(1, 1);
    int rc = tracelog_write(tl, r, err, sizeof err);
    alloc_fail_after(0, 0);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, "out of memory"));
    assert_non_null(strstr(err, f->path));
    assert_int_equal(lines_in(f, 0), 0);
    cJSON_Delete(r);
    tracelog_free(tl);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(lines_are_appended_and_each_parses),
        T(rotation_keeps_exactly_keep_files_newest_in_1),
        T(rotation_loses_no_line_and_keep_zero_keeps_none),
        T(a_line_larger_than_max_bytes_goes_alone_into_a_fresh_file),
        T(file_and_directory_modes_are_private),
        T(two_handles_sharing_a_directory_lose_no_line),
        T(two_processes_writing_at_once_lose_no_line),
        T(a_removed_file_or_directory_is_created_again),
        T(a_full_device_gives_an_error_naming_the_path),
        T(an_unwritable_directory_gives_an_error_naming_the_path),
        T(a_negative_keep_is_refused),
        T(no_memory_gives_an_error_and_writes_nothing),
    };
#undef T
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
