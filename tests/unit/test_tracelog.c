/*
 * Tests of the trace log (store/tracelog.c): whole JSON lines appended in
 * order, size rotation keeping exactly `keep` files with the newest in .1,
 * an oversized line alone in a fresh file, modes 0700/0600, two handles and
 * two processes sharing one directory without losing or splitting a line,
 * a removed file or directory created again, and errors that name the path
 * (a full device, an unwritable directory, no memory). Then tracelog_purge:
 * a tenant's (or user's) records leave every file while all other lines
 * stay byte for byte, writers (other handles, another process) lose no
 * line to a purge, and missing or broken files.
 *
 * Every record written here is {"w":W,"n":"NNNNN","pad":"..."}: the writer,
 * its sequence number in fixed width, and padding, so all lines of one test
 * have the same length L and where rotation falls follows by arithmetic.
 */
#include "testutil.h"

#include <cJSON.h>
#include <signal.h>
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

/* --- purge ---------------------------------------------------------------- */

#define PURGE_MAX_SEQ 1000

/* A record shaped as client/trace.c builds it, as far as purge reads it:
 * tenant and user (NULL: none) in trace.metadata, plus seq to tell lines
 * apart. The input text names acme and u1, and the span's metadata says
 * acme: neither may decide, only the trace's metadata. */
static cJSON *trace_record(const char *tenant, const char *user, int seq)
{
    cJSON *r = cJSON_CreateObject();
    assert_non_null(r);
    assert_non_null(cJSON_AddNumberToObject(r, "seq", seq));
    cJSON *trace = cJSON_AddObjectToObject(r, "trace");
    assert_non_null(trace);
    assert_non_null(cJSON_AddStringToObject(trace, "input", "what did acme tell u1?"));
    cJSON *meta = cJSON_AddObjectToObject(trace, "metadata");
    assert_non_null(meta);
    assert_non_null(cJSON_AddStringToObject(meta, "tenant", tenant));
    if (user != NULL)
        assert_non_null(cJSON_AddStringToObject(meta, "user", user));
    cJSON *spans = cJSON_AddArrayToObject(r, "spans");
    assert_non_null(spans);
    cJSON *span = cJSON_CreateObject();
    assert_non_null(span);
    cJSON_AddItemToArray(spans, span);
    cJSON *smeta = cJSON_AddObjectToObject(span, "metadata");
    assert_non_null(smeta);
    assert_non_null(cJSON_AddStringToObject(smeta, "tenant", "acme"));
    return r;
}

/* The whole file at path, which must exist; its length in *len. */
static char *must_read(const char *path, size_t *len)
{
    size_t n = 0;
    char *text = tu_read_file(path, &n);
    if (text == NULL) {
        fail_msg("cannot read %s", path);
        abort(); /* not reached: fail_msg ends the test */
    }
    *len = n;
    return text;
}

static void write_trace(struct tracelog *tl, const char *tenant, const char *user, int seq)
{
    cJSON *r = trace_record(tenant, user, seq);
    char err[512];
    if (tracelog_write(tl, r, err, sizeof err) != 0)
        fail_msg("tracelog_write: %s", err);
    cJSON_Delete(r);
}

/* Appends s to path as is (lines no writer would produce). */
static void append_raw(const char *path, const char *s)
{
    FILE *fp = fopen(path, "ab");
    assert_non_null(fp);
    assert_int_equal(fputs(s, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
}

static int purge(const struct fixture *f, const char *tenant, const char *user, size_t *removed,
                 char *err, size_t errlen)
{
    *removed = 12345; /* must be overwritten */
    err[0] = '\0';
    return tracelog_purge(f->dir, tenant, user, removed, err, errlen);
}

static size_t purge_ok(const struct fixture *f, const char *tenant, const char *user)
{
    size_t removed;
    char err[512];
    if (purge(f, tenant, user, &removed, err, sizeof err) != 0)
        fail_msg("tracelog_purge: %s", err);
    return removed;
}

/* The seq of a line, -1 when it has none (garbage). */
static int line_seq(const char *line, size_t n)
{
    cJSON *r = cJSON_ParseWithLength(line, n);
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(r, "seq");
    int v = cJSON_IsNumber(seq) ? seq->valueint : -1;
    cJSON_Delete(r);
    return v;
}

/* No purge temporary file is left in the directory. */
static void assert_no_temp_files(const struct fixture *f)
{
    DIR *d = opendir(f->dir);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strncmp(de->d_name, ".traces.jsonl.purge-", 20) == 0)
            fail_msg("temporary file %s left in %s", de->d_name, f->dir);
    closedir(d);
}

/* A whole-line record of acme/u1 without its newline, at the end of the
 * oldest file: it goes too. */
#define LAST_NO_NEWLINE "{\"trace\":{\"metadata\":{\"tenant\":\"acme\",\"user\":\"u1\"}}}"

/* Writes records of several tenants and users across rotated files with
 * garbage lines among them, purges acme (only user when not NULL) and
 * checks every file line by line against its old content: exactly the
 * lines of acme (of that user) are gone, every other line is still there
 * byte for byte and in order, the rewritten files are 0600, no temporary
 * file is left, and purging again removes nothing. */
static void purge_and_compare(const struct fixture *f, const char *user)
{
    static const char *tenants[] = {"acme", "other", "acme2", "acme", "acm"};
    static const char *users[] = {"u1", "u2", NULL, "u1", "u10", "u2", "u1"};
    bool gone[PURGE_MAX_SEQ] = {false};
    size_t expect_removed = 0;
    struct tracelog *tl = open_log(f, 2000, 1000);
    for (int seq = 0; seq < 70; seq++) {
        const char *t = tenants[seq % 5], *u = users[seq % 7];
        write_trace(tl, t, u, seq);
        gone[seq] = strcmp(t, "acme") == 0 && (user == NULL || (u != NULL && strcmp(u, user) == 0));
        expect_removed += gone[seq];
        if (seq == 20 || seq == 55) /* garbage among the records, all kept */
            append_raw(f->path, "not json at all\n"
                                "{\"trace\":{\"name\":\"no metadata\"},\"spans\":[]}\n"
                                "{\"trace\":{\"metadata\":{\"tenant\":\"acme\",\"user\":\"u1\"}}}"
                                " trailing\n"
                                "\n"
                                "[1,2,3]\n"
                                "{\"trace\":{\"metadata\":{\"tenant\":42}}}\n");
    }
    tracelog_free(tl);
    int files = 0;
    while (files < 1000) {
        char *p = nth(f, files + 1);
        bool e = exists(p);
        free(p);
        if (!e)
            break;
        files++;
    }
    assert_true(files >= 3); /* rotated files to purge, not just one */
    char *oldest = nth(f, files);
    append_raw(oldest, LAST_NO_NEWLINE);
    free(oldest);
    expect_removed++;

    char *before[1001];
    size_t before_len[1001];
    for (int i = 0; i <= files; i++) {
        char *p = nth(f, i);
        before[i] = must_read(p, &before_len[i]);
        free(p);
    }
    assert_int_equal(purge_ok(f, "acme", user), expect_removed);

    for (int i = 0; i <= files; i++) {
        /* The expected content: the old one without the removed lines. */
        char *expect = malloc(before_len[i] + 1);
        assert_non_null(expect);
        size_t elen = 0;
        for (size_t at = 0; at < before_len[i];) {
            const char *line = before[i] + at;
            const char *nl = memchr(line, '\n', before_len[i] - at);
            size_t n = nl != NULL ? (size_t)(nl - line) + 1 : before_len[i] - at;
            int seq = line_seq(line, n);
            bool drop = (seq >= 0 && gone[seq]) || (nl == NULL && n == strlen(LAST_NO_NEWLINE) &&
                                                    memcmp(line, LAST_NO_NEWLINE, n) == 0);
            if (!drop) {
                memcpy(expect + elen, line, n);
                elen += n;
            }
            at += n;
        }
        char *p = nth(f, i);
        size_t len;
        char *now = must_read(p, &len);
        if (len != elen || memcmp(now, expect, len) != 0)
            fail_msg("%s after the purge:\n%s\nexpected:\n%.*s", p, now, (int)elen, expect);
        struct stat st;
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        free(now);
        free(p);
        free(before[i]);
        before[i] = expect; /* for the second purge */
        before_len[i] = elen;
    }
    assert_no_temp_files(f);
    /* Nothing left to remove: every file stays as the first purge left it. */
    assert_int_equal(purge_ok(f, "acme", user), 0);
    for (int i = 0; i <= files; i++) {
        char *p = nth(f, i);
        size_t len;
        char *now = must_read(p, &len);
        assert_int_equal(len, before_len[i]);
        assert_memory_equal(now, before[i], len);
        free(now);
        free(p);
        free(before[i]);
    }
}

/* Purging a tenant removes its records from the current and every rotated
 * file (matching the tenant exactly: acme2 and acm stay; the text and the
 * spans do not count) and keeps everything else byte for byte, garbage
 * lines included. */
static void purge_removes_a_tenants_lines_from_every_file_and_keeps_the_rest(void **state)
{
    purge_and_compare(*state, NULL);
}

/* Purging one user removes only that user's records of the tenant: the
 * tenant's other users, its records with no user, and u10 stay. */
static void purge_of_a_user_removes_only_that_users_lines(void **state)
{
    purge_and_compare(*state, "u1");
}

/* Replaces path's content with text[0..len). */
static void put_text(const char *path, const char *text, size_t len)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

/* A purge with allocation n failing, in a child (an x* allocation aborts):
 * its wait status. */
static int purge_failing_at(const struct fixture *f, unsigned long n)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        size_t removed;
        char err[512];
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0)
            dup2(null, STDERR_FILENO); /* the abort's message, expected */
        alloc_fail_after(n, 0);
        int rc = tracelog_purge(f->dir, "acme", NULL, &removed, err, sizeof err);
        _exit(rc == 0 ? 0 : strstr(err, f->path) != NULL ? 1 : 2);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

/* A purge that runs out of memory at any allocation leaves the file as it
 * was (an error naming it, or the abort) or purged whole (success): never
 * a success that kept a line it could not parse for want of memory. */
static void a_purge_out_of_memory_keeps_the_file_or_purges_it_whole(void **state)
{
    struct fixture *f = *state;
    struct tracelog *tl = open_log(f, 1 << 20, 5);
    for (int seq = 0; seq < 8; seq++)
        write_trace(tl, seq % 2 ? "acme" : "other", "u1", seq);
    tracelog_free(tl);
    size_t old_len, new_len;
    char *old = must_read(f->path, &old_len);
    unsigned long before = alloc_count();
    assert_int_equal(purge_ok(f, "acme", NULL), 4);
    unsigned long used = alloc_count() - before;
    char *purged = must_read(f->path, &new_len);
    int errors = 0;
    for (unsigned long n = 1; n <= used; n++) {
        put_text(f->path, old, old_len);
        int status = purge_failing_at(f, n);
        size_t len;
        char *now = must_read(f->path, &len);
        bool is_old = len == old_len && memcmp(now, old, len) == 0;
        bool is_new = len == new_len && memcmp(now, purged, len) == 0;
        free(now);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && !is_new)
            fail_msg("allocation %lu of %lu failing: the purge succeeded, but lines of acme "
                     "are left",
                     n, used);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 1 && !is_old)
            fail_msg("allocation %lu of %lu failing: the purge failed, but the file changed", n,
                     used);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 2)
            fail_msg("allocation %lu of %lu failing: the error does not name the file", n, used);
        if (WIFSIGNALED(status) && (WTERMSIG(status) != SIGABRT || !(is_old || is_new)))
            fail_msg("allocation %lu of %lu failing: signal %d, file old %d new %d", n, used,
                     WTERMSIG(status), is_old, is_new);
        errors += WIFEXITED(status) && WEXITSTATUS(status) == 1;
    }
    /* Parsing the lines is a fallible section: some failures are errors. */
    assert_true(errors > 0);
    free(old);
    free(purged);
}

/* The seqs of the lines of the current file, in order, into seqs (at most
 * max); returns how many. */
static int current_seqs(const struct fixture *f, int *seqs, int max)
{
    size_t len;
    char *text = must_read(f->path, &len);
    int n = 0;
    for (char *line = text; *line != '\0';) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        assert_true(n < max);
        seqs[n++] = line_seq(line, (size_t)(nl - line));
        line = nl + 1;
    }
    free(text);
    return n;
}

/* Handles opened before a purge hold the replaced file open; their next
 * writes follow the path into the new file, after the kept lines, so no
 * line goes into the file the purge threw away. */
static void a_write_after_the_purge_lands_in_the_new_file(void **state)
{
    struct fixture *f = *state;
    struct tracelog *a = open_log(f, 1 << 20, 5);
    struct tracelog *b = open_log(f, 1 << 20, 5);
    write_trace(a, "other", "u1", 0);
    write_trace(b, "acme", "u1", 1);
    write_trace(a, "acme", "u2", 2);
    write_trace(b, "other", NULL, 3);
    struct stat old_st, new_st;
    assert_int_equal(stat(f->path, &old_st), 0);
    assert_int_equal(purge_ok(f, "acme", NULL), 2);
    assert_int_equal(stat(f->path, &new_st), 0);
    assert_true(old_st.st_ino != new_st.st_ino); /* replaced, not edited in place */
    write_trace(b, "other", "u2", 4);
    write_trace(a, "other", "u3", 5);
    int seqs[16];
    assert_int_equal(current_seqs(f, seqs, 16), 4);
    assert_int_equal(seqs[0], 0);
    assert_int_equal(seqs[1], 3);
    assert_int_equal(seqs[2], 4);
    assert_int_equal(seqs[3], 5);
    tracelog_free(a);
    tracelog_free(b);
}

/* Another process appends (rotating often) while this one writes acme
 * records and purges them again and again: once both are done and a last
 * purge ran, the files hold exactly the other process's lines, all of
 * them, in order, and no acme line. A purge that let a writer into a file
 * it then replaced, or that raced a rotation, would lose or misplace lines.
 * The child starts when the pipe closes and reports through its exit
 * code. */
static void purging_while_another_process_writes_loses_no_line(void **state)
{
    struct fixture *f = *state;
    enum { N = 600 };
    int go[2];
    assert_int_equal(pipe(go), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(go[1]);
        char c;
        while (read(go[0], &c, 1) < 0 && errno == EINTR) {
        }
        struct tracelog *mine = tracelog_open(f->dir, 4000, 1000, NULL, 0);
        int rc = mine == NULL ? 2 : 0;
        for (int i = 0; rc == 0 && i < N; i++) {
            cJSON *r = trace_record("other", "u1", i);
            char err[512];
            if (tracelog_write(mine, r, err, sizeof err) != 0)
                rc = 3;
            cJSON_Delete(r);
        }
        tracelog_free(mine);
        _exit(rc);
    }
    close(go[0]);
    struct tracelog *tl = open_log(f, 4000, 1000);
    close(go[1]);
    int status, purges = 0;
    pid_t done;
    while ((done = waitpid(pid, &status, WNOHANG)) == 0) {
        write_trace(tl, "acme", "u1", PURGE_MAX_SEQ + purges);
        assert_true(purge_ok(f, "acme", NULL) >= 1); /* at least the line just written */
        purges++;
    }
    assert_int_equal(done, pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    tracelog_free(tl);
    purge_ok(f, "acme", NULL);

    int next = 0, files = 0;
    while (files < 1000) {
        char *p = nth(f, files + 1);
        bool e = exists(p);
        free(p);
        if (!e)
            break;
        files++;
    }
    for (int i = files; i >= 0; i--) { /* oldest first */
        char *p = nth(f, i);
        size_t len;
        char *text = must_read(p, &len);
        for (char *line = text; *line != '\0';) {
            char *nl = strchr(line, '\n');
            assert_non_null(nl);
            int seq = line_seq(line, (size_t)(nl - line));
            if (seq != next)
                fail_msg("%s: line %d where %d was due (after %d purges)", p, seq, next, purges);
            next++;
            line = nl + 1;
        }
        free(text);
        free(p);
    }
    assert_int_equal(next, N);
    assert_true(purges >= 1);
    assert_no_temp_files(f);
}

/* A missing directory is nothing to purge: 0 and removed 0, and the
 * directory is not created; nor is traces.jsonl in an empty one. Ids that
 * break the identifier contract are refused with a message saying what is
 * accepted. */
static void a_missing_directory_or_file_purges_nothing(void **state)
{
    struct fixture *f = *state;
    size_t removed;
    char err[512];
    assert_int_equal(purge(f, "acme", NULL, &removed, err, sizeof err), 0);
    assert_int_equal(removed, 0);
    assert_false(exists(f->dir));
    assert_int_equal(mkdir(f->dir, 0700), 0);
    assert_int_equal(purge(f, "acme", "u1", &removed, err, sizeof err), 0);
    assert_int_equal(removed, 0);
    assert_false(exists(f->path));

    assert_int_equal(purge(f, "ac me", NULL, &removed, err, sizeof err), -1);
    assert_non_null(strstr(err, "ac me"));
    assert_non_null(strstr(err, "A-Z a-z 0-9 _ -"));
    assert_int_equal(purge(f, NULL, NULL, &removed, err, sizeof err), -1);
    assert_int_equal(purge(f, "acme", "../u1", &removed, err, sizeof err), -1);
    assert_non_null(strstr(err, "../u1"));
    assert_int_equal(purge(f, "", NULL, &removed, err, sizeof err), -1);
}

/* Rotated files are purged when there is no current file (the user
 * removed it, or keep rotated it away). */
static void rotated_files_are_purged_without_a_current_file(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(mkdir(f->dir, 0700), 0);
    char *p = nth(f, 2);
    append_raw(p, "{\"trace\":{\"metadata\":{\"tenant\":\"acme\"}}}\n"
                  "{\"trace\":{\"metadata\":{\"tenant\":\"other\"}}}\n");
    assert_int_equal(purge_ok(f, "acme", NULL), 1);
    size_t len;
    char *text = must_read(p, &len);
    assert_string_equal(text, "{\"trace\":{\"metadata\":{\"tenant\":\"other\"}}}\n");
    free(text);
    free(p);
    assert_no_temp_files(f);
}

/* A file that cannot be read (here traces.jsonl.3 is a directory) gives -1
 * naming it and the system error; the current file, rewritten last, is
 * untouched and no temporary file is left. */
static void an_unreadable_file_gives_an_error_naming_it(void **state)
{
    struct fixture *f = *state;
    struct tracelog *tl = open_log(f, 1 << 20, 5);
    write_trace(tl, "acme", "u1", 0);
    tracelog_free(tl);
    char *bad = nth(f, 3);
    assert_int_equal(mkdir(bad, 0700), 0);
    size_t removed;
    char err[512];
    assert_int_equal(purge(f, "acme", NULL, &removed, err, sizeof err), -1);
    assert_non_null(strstr(err, bad));
    assert_non_null(strstr(err, strerror(EISDIR)));
    assert_int_equal(removed, 0);
    int seqs[4];
    assert_int_equal(current_seqs(f, seqs, 4), 1);
    assert_int_equal(seqs[0], 0);
    assert_no_temp_files(f);
    free(bad);
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
        T(purge_removes_a_tenants_lines_from_every_file_and_keeps_the_rest),
        T(purge_of_a_user_removes_only_that_users_lines),
        T(a_purge_out_of_memory_keeps_the_file_or_purges_it_whole),
        T(a_write_after_the_purge_lands_in_the_new_file),
        T(purging_while_another_process_writes_loses_no_line),
        T(a_missing_directory_or_file_purges_nothing),
        T(rotated_files_are_purged_without_a_current_file),
        T(an_unreadable_file_gives_an_error_naming_it),
    };
#undef T
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
