/*
 * I/O faults through the memchat program (docs/reliability.md, "I/O
 * faults"). Three writes, one per file memchat must never leave half
 * written, each run again and again from the same starting state with a
 * fault armed by MEMCHAT_FAULT_IO (util/iofault.h) at one operation:
 *   - memchat memory add: the data file (SQLite, through store/faultvfs);
 *   - memchat keys set: the keystore (util/fileio's atomic replacement);
 *   - memchat memory index --rebuild: the HNSW index file of index/;
 *   - (full sweep only) the first memchat keys set, which makes master.key
 *     as well as the keystore.
 * After every run: memchat succeeded, or failed with exit 1 (2 only for a
 * configuration file it could not read) and a message naming the file and
 * the step; nothing crashed and no sanitizer spoke; an interrupted call
 * or a short write was retried and the run succeeded; and the file holds
 * the old content or the new, never a mix, the new whenever memchat said
 * it succeeded: the data file passes PRAGMA integrity_check with the
 * memory all there (row, full-text entry, history, count) or absent, the
 * keystore opens with the old set of keys or the new one, the index file
 * is byte for byte the old one or the new one and loads again.
 *
 * A clean run first counts the command's operations of each kind
 * (MEMCHAT_FAULT_IO_REPORT). make check runs a sample: two positions of
 * each kind of operation, the kinds of fault in turn (unit/test_iofault
 * sweeps every position in-process);
 * MEMCHAT_IOFAULT_FULL=1 (make check-long-io) runs every position with
 * every kind, and the sticky variants (every later operation fails too).
 */
#include "cli_harness.h"

#include <sodium.h>
#include "../unit/tu_sqlite.h"

#include "client/keys.h"
#include "store/db.h"
#include "store/keystore.h"
#include "store/masterkey.h"

#define MASTER_B64 "aW9mYXVsdC1tYXN0ZXIta2V5LTMyLWJ5dGVzLWxvbmc="
#define OLD_KEY    "sk-iofault-old-openai-1111OLDK"
#define NEW_KEY    "sk-ant-iofault-new-anthropic-2222NEWK"
#define NEW_TEXT   "gamma: the quarterly report for Apollo is due on Friday"

static const char *const op_names[] = {"open", "write", "fsync", "rename", "truncate", "unlink"};
#define N_OPS (sizeof op_names / sizeof *op_names)

/* What MEMCHAT_FAULT_IO_REPORT says of a run. */
struct report {
    unsigned long ops, per[N_OPS];
    int fired;
};

/* The kinds of fault, as the specs name them. */
enum kind { K_EIO, K_ENOSPC, K_EINTR, K_SHORT };

/* Totals of a sweep, printed at its end. */
struct tally {
    unsigned long runs, ok, failed, not_reached;
};

static bool full_sweep(void)
{
    const char *v = getenv("MEMCHAT_IOFAULT_FULL");
    return v != NULL && strcmp(v, "1") == 0;
}

static char *path_in(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* --- the starting state: a copy of the data directory ------------------------- */

static void copy_tree(const char *from, const char *to)
{
    assert_true(mkdir(to, 0700) == 0 || errno == EEXIST);
    DIR *d = opendir(from);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char *src = path_in(from, de->d_name), *dst = path_in(to, de->d_name);
        struct stat st;
        assert_int_equal(lstat(src, &st), 0);
        if (S_ISDIR(st.st_mode)) {
            copy_tree(src, dst);
        } else if (S_ISREG(st.st_mode)) {
            size_t len;
            char *data = tu_read_file(src, &len);
            assert_non_null(data);
            int fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
            assert_true(fd >= 0);
            assert_int_equal(write(fd, data, len), (ssize_t)len);
            assert_int_equal(close(fd), 0);
            free(data);
        }
        free(src);
        free(dst);
    }
    closedir(d);
}

/* The snapshot holds the data directory and the config directory (where
 * master.key is made), each when it exists. */
static void snapshot_paths(char **data, char **cfg)
{
    char *snap = path_in(fx.dir, "snapshot");
    *data = path_in(snap, "data");
    *cfg = path_in(snap, "config");
    free(snap);
}

static void snapshot_take(void)
{
    char *data, *cfg, *snap = path_in(fx.dir, "snapshot");
    snapshot_paths(&data, &cfg);
    tu_rmtree(snap);
    assert_int_equal(mkdir(snap, 0700), 0);
    if (access(fx.data, F_OK) == 0)
        copy_tree(fx.data, data);
    if (access(fx.cfgdir, F_OK) == 0)
        copy_tree(fx.cfgdir, cfg);
    free(data);
    free(cfg);
    free(snap);
}

static void snapshot_restore(void)
{
    char *data, *cfg;
    snapshot_paths(&data, &cfg);
    tu_rmtree(fx.data);
    tu_rmtree(fx.cfgdir);
    if (access(data, F_OK) == 0)
        copy_tree(data, fx.data);
    if (access(cfg, F_OK) == 0)
        copy_tree(cfg, fx.cfgdir);
    free(data);
    free(cfg);
}

/* Files under dir (recursively) whose name holds ".tmp.". */
static int temp_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (strstr(de->d_name, ".tmp.") != NULL)
            n++;
        char *sub = path_in(dir, de->d_name);
        struct stat st;
        if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
            n += temp_files(sub);
        free(sub);
    }
    closedir(d);
    return n;
}

/* --- running a command under a fault ------------------------------------------ */

/* A command of a sweep, its extra environment and what it must leave. */
struct scenario {
    const char *name;
    const char *stdin_data;
    const char *const *args;
    const char *const *env;
    /* Checks the files after a run that exited with r->status; fails the
     * test on a mix. */
    void (*check)(const struct run *r, const char *where);
};

/* Runs s with MEMCHAT_FAULT_IO=spec (NULL: none), the report in *rep. */
static void run_faulted(const struct scenario *s, const char *spec, struct run *r,
                        struct report *rep)
{
    char *report = path_in(fx.dir, "iofault.report");
    unlink(report);
    char fault[128], rep_env[4200];
    snprintf(fault, sizeof fault, "MEMCHAT_FAULT_IO=%s", spec != NULL ? spec : "");
    snprintf(rep_env, sizeof rep_env, "MEMCHAT_FAULT_IO_REPORT=%s", report);
    const char *env[16];
    size_t n = 0;
    for (size_t i = 0; s->env != NULL && s->env[i] != NULL; i++)
        env[n++] = s->env[i];
    env[n++] = fault;
    env[n++] = rep_env;
    env[n] = NULL;
    run_memchat(r, s->stdin_data, env, s->args);
    memset(rep, 0, sizeof *rep);
    char *text = tu_read_file(report, NULL);
    if (text == NULL)
        fail_msg("%s under %s: no report (exit %d)\nstderr: %s", s->name, spec ? spec : "-",
                 r->status, r->err);
    int got = sscanf(text,
                     "ops=%lu open=%lu write=%lu fsync=%lu rename=%lu truncate=%lu unlink=%lu "
                     "fired=%d",
                     &rep->ops, &rep->per[0], &rep->per[1], &rep->per[2], &rep->per[3],
                     &rep->per[4], &rep->per[5], &rep->fired);
    if (got != 8)
        fail_msg("a malformed report: %s", text);
    free(text);
    free(report);
}

/* Whether a failure message names a step memchat took: the fileio steps,
 * SQLite's, and the local store's. */
static bool names_a_step(const char *msg)
{
    static const char *const steps[] = {
        "cannot read ", "cannot write ", "cannot open ", "cannot use ",      "cannot create ",
        "BEGIN ",       "COMMIT ",       "upsert",       "saving the index", "loading the index",
        "creating ",    "reading ",
    };
    for (size_t i = 0; i < sizeof steps / sizeof *steps; i++)
        if (strstr(msg, steps[i]) != NULL)
            return true;
    return false;
}

/* What every faulted run must show, whichever file it wrote. */
static void check_common(const struct run *r, enum kind kind, const char *where)
{
    if (r->status >= 128 || strstr(r->err, "Sanitizer") != NULL ||
        strstr(r->err, "runtime error:") != NULL)
        fail_msg("%s: crashed (exit %d)\nstderr: %s", where, r->status, r->err);
    if ((kind == K_EINTR || kind == K_SHORT) && r->status != 0)
        fail_msg("%s: an interrupted call or a short write was not retried (exit %d)\n"
                 "stderr: %s",
                 where, r->status, r->err);
    if (r->status == 0)
        return;
    /* The data dir, the config dir and the shipped files are all under
     * one of these; ./.env is the working directory's. */
    const char *srcdir = getenv("MEMCHAT_SRCDIR");
    bool names_file = strstr(r->err, fx.dir) != NULL || strstr(r->err, "./.env") != NULL ||
                      (srcdir != NULL && strstr(r->err, srcdir) != NULL);
    if (!names_file || !names_a_step(r->err))
        fail_msg("%s: exit %d without a message naming the file and the step:\n%s", where,
                 r->status, r->err);
    /* A configuration file that cannot be read is a configuration error
     * (2); everything else an I/O error of the run (1). */
    bool config_read =
        r->status == 2 && strstr(r->err, "cannot read ") != NULL && strstr(r->err, fx.data) == NULL;
    if (r->status != 1 && !config_read)
        fail_msg("%s: exit %d, want 1 for an I/O error\nstderr: %s", where, r->status, r->err);
}

/* The specs of a sweep of a command whose clean run made rep0's
 * operations, into out (up to max); returns how many. */
static size_t sweep_specs(const struct report *rep0, char (*out)[48], size_t max)
{
    static const char *const kinds[] = {"eio", "enospc", "eintr"};
    size_t n = 0;
    if (full_sweep()) {
        for (unsigned long i = 1; i <= rep0->ops; i++) {
            for (size_t k = 0; k < 3 && n + 5 <= max; k++)
                snprintf(out[n++], 48, "any:%lu:%s", i, kinds[k]);
            if (n + 2 <= max) {
                snprintf(out[n++], 48, "any:%lu+:eio", i);
                snprintf(out[n++], 48, "any:%lu+:enospc", i);
            }
        }
        for (unsigned long i = 1; i <= rep0->per[1] && n < max; i++)
            snprintf(out[n++], 48, "write:%lu:short", i);
        return n;
    }
    /* The sample: the first and the last operation of each kind (of the
     * opens, a middle one and the last: the first ones read the
     * configuration), each with the next fault in turn so that every kind
     * comes up, and a short write at each of those writes; then disk full
     * from the first write on. */
    size_t turn = 0;
    for (size_t op = 0; op < N_OPS; op++) {
        unsigned long c = rep0->per[op];
        unsigned long at[2] = {op == 0 ? (c + 1) / 2 : 1, c};
        for (int j = 0; j < 2 && c > 0 && n + 2 <= max; j++) {
            if (j == 1 && at[1] == at[0])
                break;
            snprintf(out[n++], 48, "%s:%lu:%s", op_names[op], at[j], kinds[turn++ % 3]);
            if (op == 1)
                snprintf(out[n++], 48, "write:%lu:short", at[j]);
        }
    }
    if (rep0->per[1] > 0 && n < max)
        snprintf(out[n++], 48, "write:1+:enospc");
    return n;
}

static enum kind spec_kind(const char *spec)
{
    if (strstr(spec, ":short") != NULL)
        return K_SHORT;
    if (strstr(spec, ":eintr") != NULL)
        return K_EINTR;
    return strstr(spec, ":enospc") != NULL ? K_ENOSPC : K_EIO;
}

/* Runs s clean (its check must find the new content), then under every
 * spec of the sweep from the snapshot's state. */
static void sweep(const struct scenario *s)
{
    struct run r;
    struct report rep0;
    snapshot_restore();
    run_faulted(s, NULL, &r, &rep0);
    expect_exit(&r, 0, s->name);
    s->check(&r, "the clean run");
    run_free(&r);
    assert_true(rep0.ops > 0);

    size_t max = 4 * rep0.ops * 6 + 64;
    char(*specs)[48] = calloc(max, sizeof *specs);
    size_t n = sweep_specs(&rep0, specs, max);
    struct tally t = {0};
    for (size_t i = 0; i < n; i++) {
        char where[160];
        snprintf(where, sizeof where, "%s, MEMCHAT_FAULT_IO=%s", s->name, specs[i]);
        snapshot_restore();
        struct report rep;
        run_faulted(s, specs[i], &r, &rep);
        if (!rep.fired) {
            /* Threads may order a failing run's operations differently. */
            t.not_reached++;
            run_free(&r);
            continue;
        }
        t.runs++;
        if (r.status == 0)
            t.ok++;
        else
            t.failed++;
        check_common(&r, spec_kind(specs[i]), where);
        s->check(&r, where);
        run_free(&r);
    }
    free(specs);
    print_message("%s: %lu operations (open %lu, write %lu, fsync %lu, rename %lu, truncate "
                  "%lu, unlink %lu); %lu faulted runs: %lu succeeded, %lu failed cleanly; %lu "
                  "faults not reached\n",
                  s->name, rep0.ops, rep0.per[0], rep0.per[1], rep0.per[2], rep0.per[3],
                  rep0.per[4], rep0.per[5], t.runs, t.ok, t.failed, t.not_reached);
    /* Most positions must be reached, or the sweep tests little. */
    assert_true(t.runs > 0 && t.not_reached * 10 <= n);
    assert_true(t.failed > 0);
}

/* --- the data file: memory add -------------------------------------------------- */

static long long query_int(sqlite3 *c, const char *sql, const char *arg)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(c));
    if (arg != NULL)
        sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    long long v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static long long base_memories; /* in the snapshot */

static void check_data_file(const struct run *r, const char *where)
{
    char *path = path_in(fx.data, "memchat.db"), err[1024];
    enum db_error why;
    struct db *db = db_open(path, &why, err, sizeof err);
    if (db == NULL)
        fail_msg("%s: memchat cannot open the data file afterwards: %s", where, err);
    sqlite3 *c = db_handle(db);
    tu_expect_integrity(c, where);
    long long rows = query_int(c, "SELECT count(*) FROM memories WHERE text = ?", NEW_TEXT);
    long long fts = query_int(
        c, "SELECT count(*) FROM memories_fts WHERE memories_fts MATCH '\"quarterly report\"'",
        NULL);
    long long hist = query_int(c,
                               "SELECT count(*) FROM memory_history h JOIN memories m ON "
                               "h.memory_id = m.id WHERE m.text = ? AND h.op = 'add'",
                               NEW_TEXT);
    long long total = query_int(c, "SELECT count(*) FROM memories", NULL);
    long long counted = query_int(c, "SELECT count FROM memory_namespaces", NULL);
    bool id_printed = false;
    if (rows == 1 && r->status == 0) {
        long long same = query_int(
            c, "SELECT count(*) FROM memories WHERE text = '" NEW_TEXT "' AND instr(?, id) = 1",
            r->out);
        id_printed = same == 1;
    }
    db_close(db);
    free(path);
    if (rows > 1 || fts != rows || hist != rows || total != base_memories + rows ||
        counted != total)
        fail_msg("%s: a partial memory: %lld rows, %lld full-text, %lld history, %lld of %lld "
                 "counted (exit %d)",
                 where, rows, fts, hist, counted, total, r->status);
    if (r->status == 0 && (rows != 1 || !id_printed))
        fail_msg("%s: memory add said it stored the memory, but it is %s", where,
                 rows == 1 ? "under another id" : "absent");
}

static void data_file_holds_old_or_new_under_every_fault(void **state)
{
    (void)state;
    struct run r;
    RUN(&r,
        "{\"text\":\"alpha: the Apollo standup moved to 9:30\"}\n"
        "{\"text\":\"beta: invoices go to finance by the 5th\"}\n",
        "memory", "import");
    expect_exit(&r, 0, "memory import");
    run_free(&r);
    base_memories = 2;
    snapshot_take();
    static const char *const args[] = {"memory", "add", NEW_TEXT, NULL};
    struct scenario s = {"memory add (data file)", NULL, args, NULL, check_data_file};
    sweep(&s);
}

/* --- the keystore: keys set ------------------------------------------------------ */

static const char *const keys_env[] = {"MEMCHAT_MASTER_KEY=" MASTER_B64, NULL};

static void check_keystore(const struct run *r, const char *where)
{
    if (strstr(r->out, NEW_KEY) || strstr(r->err, NEW_KEY) || strstr(r->out, OLD_KEY) ||
        strstr(r->err, OLD_KEY))
        fail_msg("%s: a key was shown", where);
    if (temp_files(fx.data) != 0)
        fail_msg("%s: a temporary file was left in %s", where, fx.data);
    uint8_t master[KEYSTORE_KEY_BYTES];
    char err[1024];
    assert_int_equal(masterkey_decode(MASTER_B64, "the test key", master, err, sizeof err), 0);
    char *path = path_in(fx.data, "keystore");
    struct keystore *ks = NULL;
    if (keystore_open(path, master, &ks, err, sizeof err) != 0)
        fail_msg("%s: the keystore does not open afterwards: %s", where, err);
    char *old = NULL, *new = NULL;
    int ro = keystore_get(ks, "acme", "openai", KEYS_ID_KEY, &old, NULL, err, sizeof err);
    int rn = keystore_get(ks, "acme", "anthropic", KEYS_ID_KEY, &new, NULL, err, sizeof err);
    size_t n = keystore_count(ks);
    bool old_ok = ro == 0 && strcmp(old, OLD_KEY) == 0;
    bool new_ok = rn == 0 && strcmp(new, NEW_KEY) == 0;
    keystore_secret_free(old);
    keystore_secret_free(new);
    keystore_free(ks);
    free(path);
    bool old_set = old_ok && rn == 1 && n == 1, new_set = old_ok && new_ok && n == 2;
    if (!old_set && !new_set)
        fail_msg("%s: the keystore holds neither the old set nor the new (%zu records)", where, n);
    if (r->status == 0 && !new_set)
        fail_msg("%s: keys set succeeded, but the keystore holds the old set", where);
}

static void keystore_holds_old_or_new_set_under_every_fault(void **state)
{
    (void)state;
    struct run r;
    RUNE(&r, OLD_KEY, keys_env, "keys", "set", "--tenant", "acme", "--provider", "openai");
    expect_exit(&r, 0, "keys set");
    run_free(&r);
    snapshot_take();
    static const char *const args[] = {"keys",       "set",       "--tenant", "acme",
                                       "--provider", "anthropic", NULL};
    struct scenario s = {"keys set (keystore)", NEW_KEY, args, keys_env, check_keystore};
    sweep(&s);
}

/* --- the first key: master.key and the keystore made by keys set ------------ */

static void check_first_key(const struct run *r, const char *where)
{
    if (strstr(r->out, NEW_KEY) != NULL || strstr(r->err, NEW_KEY) != NULL)
        fail_msg("%s: the key was shown", where);
    if (temp_files(fx.data) != 0 || temp_files(fx.cfgdir) != 0)
        fail_msg("%s: a temporary file was left", where);
    /* master.key is there whole or not at all (create is false: only
     * read). */
    uint8_t master[KEYSTORE_KEY_BYTES];
    enum masterkey_source src;
    char err[1024];
    struct masterkey_in in = {.config_dir = fx.cfgdir};
    int mk = masterkey_load(&in, master, &src, err, sizeof err);
    if (mk < 0)
        fail_msg("%s: master.key is unusable afterwards: %s", where, err);
    char *path = path_in(fx.data, "keystore");
    bool has_ks = access(path, F_OK) == 0;
    if (has_ks && mk != 0)
        fail_msg("%s: a keystore without its master.key", where);
    bool stored = false;
    if (has_ks) {
        struct keystore *ks = NULL;
        if (keystore_open(path, master, &ks, err, sizeof err) != 0)
            fail_msg("%s: the keystore does not open afterwards: %s", where, err);
        char *key = NULL;
        int rk = keystore_get(ks, "acme", "openai", KEYS_ID_KEY, &key, NULL, err, sizeof err);
        stored = rk == 0 && strcmp(key, NEW_KEY) == 0 && keystore_count(ks) == 1;
        keystore_secret_free(key);
        keystore_free(ks);
        if (!stored)
            fail_msg("%s: the keystore holds something else than the key", where);
    }
    free(path);
    if (r->status == 0 && !stored)
        fail_msg("%s: keys set succeeded, but the key is not stored", where);
}

/* The first keys set without MEMCHAT_MASTER_KEY makes master.key (by
 * link(2), with fileio's write and directory sync) and then the keystore:
 * in the full sweep only, as its writes are the keystore scenario's. */
static void first_key_makes_master_key_and_keystore_whole(void **state)
{
    (void)state;
    if (!full_sweep())
        skip();
    assert_int_equal(mkdir(fx.data, 0700), 0);
    snapshot_take();
    static const char *const args[] = {"keys",       "set",    "--tenant", "acme",
                                       "--provider", "openai", NULL};
    struct scenario s = {"first keys set (master.key and keystore)", NEW_KEY, args, NULL,
                         check_first_key};
    sweep(&s);
}

/* --- the index: memory index --rebuild -------------------------------------------- */

static const char *const index_env[] = {"MEMORY_HNSW_THRESHOLD=2", NULL};
static char *index_old, *index_new;
static size_t index_old_len, index_new_len;

static void check_index(const struct run *r, const char *where)
{
    char *dir = path_in(fx.data, "index");
    char *path = path_in(dir, "default.hnsw");
    if (temp_files(dir) != 0)
        fail_msg("%s: a temporary file was left in %s", where, dir);
    size_t len = 0;
    char *got = tu_read_file(path, &len);
    if (got == NULL)
        fail_msg("%s: the index file is gone", where);
    bool is_old = len == index_old_len && memcmp(got, index_old, len) == 0;
    bool is_new = index_new != NULL && len == index_new_len && memcmp(got, index_new, len) == 0;
    free(got);
    if (index_new != NULL && !is_old && !is_new)
        fail_msg("%s: the index file is neither the old one nor the new (%zu bytes)", where, len);
    if (index_new != NULL && r->status == 0 && !is_new)
        fail_msg("%s: memory index succeeded, but the old index is in place", where);
    /* After a failure, the next run loads it (catching up on the log) or
     * rebuilds it. */
    if (r->status == 0) {
        free(path);
        free(dir);
        return;
    }
    struct run again;
    RUNE(&again, NULL, index_env, "memory", "index");
    if (again.status != 0 || strstr(again.out, "searched through an HNSW graph") == NULL)
        fail_msg("%s: memory index afterwards: exit %d\n%s%s", where, again.status, again.out,
                 again.err);
    run_free(&again);
    free(path);
    free(dir);
}

static void index_holds_old_or_new_under_every_fault(void **state)
{
    (void)state;
    struct run r;
    char lines[512] = "";
    for (int i = 0; i < 5; i++) {
        size_t at = strlen(lines);
        snprintf(lines + at, sizeof lines - at,
                 "{\"text\":\"memory %d of the index sweep, topic %d\"}\n", i, i * 7);
    }
    RUNE(&r, lines, index_env, "memory", "import");
    expect_exit(&r, 0, "memory import");
    run_free(&r);
    RUNE(&r, NULL, index_env, "memory", "index");
    expect_exit(&r, 0, "memory index");
    run_free(&r);
    char *path = path_in(fx.data, "index/default.hnsw");
    index_old = tu_read_file(path, &index_old_len);
    assert_non_null(index_old);
    /* One more memory: the rebuilt index differs from the saved one. */
    RUNE(&r, NULL, index_env, "memory", "add", "memory 5 of the index sweep, the sixth");
    expect_exit(&r, 0, "memory add");
    run_free(&r);
    snapshot_take();
    static const char *const args[] = {"memory", "index", "--rebuild", NULL};
    struct scenario s = {"memory index --rebuild (index)", NULL, args, index_env, check_index};
    /* The new file, from a clean run: the graph of the same rows with the
     * same seed is the same, byte for byte. */
    snapshot_restore();
    RUNE(&r, NULL, index_env, "memory", "index", "--rebuild");
    expect_exit(&r, 0, "memory index --rebuild");
    run_free(&r);
    index_new = tu_read_file(path, &index_new_len);
    assert_non_null(index_new);
    assert_false(index_new_len == index_old_len &&
                 memcmp(index_new, index_old, index_old_len) == 0);
    /* The sweep's clean run rebuilds it again: check_index then proves
     * the rebuild repeatable. */
    sweep(&s);
    free(index_old);
    free(index_new);
    index_old = index_new = NULL;
    free(path);
}

static int iofault_cli_tests(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(data_file_holds_old_or_new_under_every_fault, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(keystore_holds_old_or_new_set_under_every_fault, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(index_holds_old_or_new_under_every_fault, setup, teardown),
        cmocka_unit_test_setup_teardown(first_key_makes_master_key_and_keystore_whole, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

int main(void)
{
    return harness_without_terminal(iofault_cli_tests);
}
