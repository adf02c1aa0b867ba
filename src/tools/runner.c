/*
 * Running one tool call (runner.h). The arguments are checked before
 * anything runs; a built-in is a function call; a file tool goes through
 * util/runcmd (the one spawner of memchat: own process group, deadline,
 * output cap, cancel, reaping, no SIGPIPE) with an environment built from
 * nothing, its arguments on stdin and its stderr kept for the message. Its
 * answer must be one JSON value in UTF-8, and is handed on minified.
 *
 * Secrets: a credential value lives in the caller's buffers, in the
 * child's environment strings (secure memory, wiped when freed) and
 * nowhere else; the stderr kept is scrubbed of every value before a line
 * of it reaches an error message, and error messages never quote stdout.
 */
#include "config.h"

#include "tools/runner.h"

#include <cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/clock.h"
#include "util/json.h"
#include "util/jsonfile.h"
#include "util/jsonmin.h"
#include "util/runcmd.h"
#include "util/utf8.h"

#define RUNNER_STDERR_MAX 4096 /* bytes of a tool's stderr kept */
#define RUNNER_LINE_MAX   200  /* bytes of its first line quoted in an error */
#define RUNNER_MASK       "****"
#define RUNNER_ERRMSG     512 /* a built-in's own message */

/* The variables a tool gets from memchat's environment when set there. */
static const char *const PASSED_ENV[] = {"PATH", "LANG", "LC_ALL", "LC_CTYPE",
                                         "HOME", "TZ",   "TMPDIR", NULL};

void tool_result_init(struct tool_result *res)
{
    memset(res, 0, sizeof *res);
    buf_init(&res->output, TOOL_OUTPUT_MAX);
    res->status = TOOL_OK;
    res->exit_status = -1;
}

void tool_result_free(struct tool_result *res)
{
    buf_free(&res->output);
}

const char *tool_status_name(enum tool_status s)
{
    switch (s) {
    case TOOL_OK:
        return "ok";
    case TOOL_BAD_ARGS:
        return "bad_args";
    case TOOL_FAILED:
        return "failed";
    case TOOL_TIMEOUT:
        return "timeout";
    case TOOL_TOO_BIG:
        return "too_big";
    case TOOL_BAD_OUTPUT:
        return "bad_output";
    case TOOL_CANCELLED:
        return "cancelled";
    case TOOL_NO_START:
        return "no_start";
    }
    return "failed";
}

static enum tool_status runner_fail(struct tool_result *res, enum tool_status st, const char *fmt,
                                    ...) MC_PRINTF(3, 4);
/* Sets res's status and error line; returns the status. */
static enum tool_status runner_fail(struct tool_result *res, enum tool_status st, const char *fmt,
                                    ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->error, sizeof res->error, fmt, ap);
    va_end(ap);
    /* A line for a terminal and a model: cut on a whole character. */
    size_t n = strlen(res->error);
    res->error[n - utf8_incomplete_tail(res->error, n)] = '\0';
    buf_free(&res->output);
    res->status = st;
    return st;
}

/* Overwrites n bytes in a way the compiler may not drop. */
static void runner_wipe(char *p, size_t n)
{
    volatile char *v = p;
    while (n-- > 0)
        *v++ = 0;
}

/* ---- text for messages ------------------------------------------------ */

/* s[0..n) as one line of at most RUNNER_LINE_MAX bytes into out: the first
 * line that is not blank, invalid UTF-8 and control characters as '?',
 * trailing blanks cut. */
static void runner_first_line(const char *s, size_t n, char out[RUNNER_LINE_MAX + 1])
{
    size_t i = 0, used = 0;
    while (i < n && (s[i] == '\n' || s[i] == '\r' || s[i] == ' ' || s[i] == '\t'))
        i++;
    while (i < n && s[i] != '\n') {
        uint32_t cp;
        size_t len = utf8_decode(s + i, n - i, &cp);
        bool bad = cp == 0xfffd && len == 1;
        bool ctl = cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f);
        const char *src = bad || ctl ? (cp == '\t' ? " " : "?") : s + i;
        size_t m = bad || ctl ? 1 : len;
        if (used + m > RUNNER_LINE_MAX)
            break;
        memcpy(out + used, src, m);
        used += m;
        i += len;
    }
    while (used > 0 && out[used - 1] == ' ')
        used--;
    out[used] = '\0';
}

/* The length of the longest credential value that starts s[0..n) (0:
 * none); with partial, also one cut by the end of s. */
static size_t runner_match(const char *s, size_t n, const struct tool_env *env, bool partial)
{
    size_t best = 0;
    for (size_t c = 0; env != NULL && c < env->n_creds; c++) {
        const char *v = env->cred_values[c];
        size_t m = v != NULL ? strlen(v) : 0;
        if (m == 0)
            continue;
        if (m <= n && memcmp(s, v, m) == 0 && m > best)
            best = m;
        else if (partial && m > n && memcmp(s, v, n) == 0 && n > best)
            best = n;
    }
    return best;
}

/* s[0..n) (a tool's stderr) into out with every credential value replaced
 * by "****". With truncated (bytes were dropped after s), a value cut by
 * the end of s is replaced too: its start must not leak either. */
static void runner_scrub(const char *s, size_t n, bool truncated, const struct tool_env *env,
                         struct buf *out)
{
    size_t i = 0;
    while (i < n) {
        size_t m = runner_match(s + i, n - i, env, truncated);
        if (m > 0) {
            (void)buf_puts(out, RUNNER_MASK);
            i += m;
        } else {
            (void)buf_putc(out, s[i]);
            i++;
        }
    }
}

/* ---- checks of the arguments and of the answer -------------------------- */

/* 0 when args is one JSON object; else fills res (TOOL_BAD_ARGS). */
static int runner_check_args(const struct tool_def *t, const char *args, struct tool_result *res)
{
    if (args == NULL) {
        runner_fail(res, TOOL_BAD_ARGS, "tool %s got no arguments (expected one JSON object)",
                    t->name);
        return -1;
    }
    size_t n = strlen(args), bad = 0, line, col;
    if (!utf8_valid(args, n, &bad)) {
        jsonfile_line_col(args, bad, &line, &col);
        runner_fail(res, TOOL_BAD_ARGS,
                    "tool %s got arguments that are not valid UTF-8 (line %zu, column %zu)",
                    t->name, line, col);
        return -1;
    }
    const char *end = NULL;
    cJSON *v = json_parse(args, n + 1, &end, true);
    if (v == NULL && errno == ENOMEM) {
        runner_fail(res, TOOL_FAILED, "tool %s: out of memory reading its arguments", t->name);
        return -1;
    }
    if (v == NULL) {
        size_t off = end != NULL && end >= args ? (size_t)(end - args) : 0;
        jsonfile_line_col(args, off, &line, &col);
        runner_fail(res, TOOL_BAD_ARGS,
                    "tool %s got arguments that are not valid JSON (line %zu, column %zu; "
                    "expected one JSON object)",
                    t->name, line, col);
        return -1;
    }
    bool object = cJSON_IsObject(v);
    const char *kind = jsonfile_kind(v);
    cJSON_Delete(v);
    if (!object) {
        runner_fail(res, TOOL_BAD_ARGS, "tool %s got %s as arguments (expected one JSON object)",
                    t->name, kind);
        return -1;
    }
    return 0;
}

/* Where the JSON text s[0..n) (NUL at s[n]) stops being one JSON value,
 * for the message; 0 when it is one, -2 when memory ran out checking. */
static int runner_json_problem(const char *s, size_t n, char *why, size_t whylen)
{
    size_t line, col;
    const char *nul = memchr(s, '\0', n);
    if (nul != NULL) {
        jsonfile_line_col(s, (size_t)(nul - s), &line, &col);
        snprintf(why, whylen, "a NUL byte at line %zu, column %zu", line, col);
        return -1;
    }
    const char *end = NULL;
    cJSON *v = json_parse(s, n + 1, &end, true);
    if (v == NULL && errno == ENOMEM)
        return -2;
    if (v != NULL) {
        cJSON_Delete(v);
        if (jsonmin_is_json(s, n))
            return 0;
        snprintf(why, whylen, "not strict JSON (RFC 8259)");
        return -1;
    }
    size_t off = end != NULL && end >= s ? (size_t)(end - s) : 0;
    jsonfile_line_col(s, off, &line, &col);
    const char *first_end = NULL;
    v = json_parse(s, n + 1, &first_end, false);
    if (v == NULL && errno == ENOMEM)
        return -2;
    if (v != NULL) {
        cJSON_Delete(v);
        snprintf(why, whylen, "more than one value (text after the first at line %zu, column %zu)",
                 line, col);
        return -1;
    }
    snprintf(why, whylen, "line %zu, column %zu", line, col);
    return -1;
}

/* Checks the answer s[0..n) (s[n] is a NUL) and puts it, minified, in
 * res->output; else fills res (TOOL_BAD_OUTPUT). */
static enum tool_status runner_take_output(const struct tool_def *t, const char *s, size_t n,
                                           struct tool_result *res)
{
    size_t bad = 0;
    if (strspn(s, " \t\r\n") == n)
        return runner_fail(res, TOOL_BAD_OUTPUT,
                           "tool %s printed nothing (it must print one JSON value)", t->name);
    if (!utf8_valid(s, n, &bad))
        return runner_fail(res, TOOL_BAD_OUTPUT, "tool %s printed invalid UTF-8 (at byte %zu)",
                           t->name, bad);
    char why[160];
    int problem = runner_json_problem(s, n, why, sizeof why);
    if (problem == -2)
        return runner_fail(res, TOOL_FAILED, "tool %s: out of memory for its answer", t->name);
    if (problem != 0)
        return runner_fail(res, TOOL_BAD_OUTPUT, "tool %s printed invalid JSON: %s", t->name, why);
    char *min = try_malloc(n);
    if (min == NULL)
        return runner_fail(res, TOOL_FAILED, "tool %s: out of memory for its answer", t->name);
    size_t m = jsonmin_value(s, n, min);
    buf_free(&res->output);
    enum buf_result br = buf_append(&res->output, min, m);
    xfree(min);
    if (br != BUF_OK)
        return runner_fail(res, TOOL_FAILED, "tool %s: out of memory for its answer", t->name);
    res->status = TOOL_OK;
    return TOOL_OK;
}

/* The tool's output cap (a built-in registered without one: the default). */
static size_t runner_output_max(const struct tool_def *t)
{
    return t->output_max > 0 ? t->output_max : TOOL_OUTPUT_DEFAULT;
}

/* ---- a built-in ------------------------------------------------------- */

static enum tool_status runner_builtin(const struct tool_def *t, const char *args,
                                       const struct tool_env *env, struct tool_result *res)
{
    struct buf out;
    buf_init(&out, runner_output_max(t));
    char err[RUNNER_ERRMSG] = "";
    int rc = t->builtin(t->builtin_ud, env != NULL ? env->ctx : NULL, args, &out, err, sizeof err);
    enum tool_status st;
    if (rc != 0) {
        char line[RUNNER_LINE_MAX + 1];
        runner_first_line(err, strlen(err), line);
        st = line[0] != '\0' ? runner_fail(res, TOOL_FAILED, "tool %s failed: %s", t->name, line)
                             : runner_fail(res, TOOL_FAILED, "tool %s failed", t->name);
    } else {
        st = runner_take_output(t, buf_cstr(&out), out.len, res);
    }
    buf_free(&out);
    return st;
}

/* ---- a file tool ------------------------------------------------------ */

/* The environment of a file tool: plain strings first, then the
 * credentials in secure memory. */
struct runner_envp {
    char **v; /* NULL-terminated */
    size_t n_plain;
    size_t n;
};

static bool runner_declared(const struct tool_def *t, const char *name)
{
    for (size_t i = 0; i < t->n_credentials; i++)
        if (strcmp(t->credentials[i], name) == 0)
            return true;
    return false;
}

/* Builds e for t: PASSED_ENV when set in ours, MEMCHAT_TOOL, and the
 * credentials of env that t declared (each once). */
static void runner_env_build(const struct tool_def *t, const struct tool_env *env,
                             struct runner_envp *e)
{
    size_t max = sizeof PASSED_ENV / sizeof PASSED_ENV[0] + 1 + (env != NULL ? env->n_creds : 0);
    e->v = xcalloc(max + 1, sizeof *e->v);
    e->n = 0;
    for (size_t i = 0; PASSED_ENV[i] != NULL; i++) {
        const char *val = getenv(PASSED_ENV[i]);
        if (val != NULL)
            e->v[e->n++] = xasprintf("%s=%s", PASSED_ENV[i], val);
    }
    e->v[e->n++] = xasprintf("MEMCHAT_TOOL=%s", t->name);
    e->n_plain = e->n;
    for (size_t c = 0; env != NULL && c < env->n_creds; c++) {
        const char *name = env->cred_names[c], *val = env->cred_values[c];
        if (name == NULL || val == NULL || !tool_credential_name_valid(name) ||
            !runner_declared(t, name))
            continue;
        bool seen = false;
        for (size_t j = 0; j < c && !seen; j++)
            seen = env->cred_names[j] != NULL && strcmp(env->cred_names[j], name) == 0;
        if (seen)
            continue;
        size_t nl = strlen(name), vl = strlen(val);
        char *kv = xsecure_malloc(nl + vl + 2);
        memcpy(kv, name, nl);
        kv[nl] = '=';
        memcpy(kv + nl + 1, val, vl + 1);
        e->v[e->n++] = kv;
    }
    e->v[e->n] = NULL;
}

static void runner_env_free(struct runner_envp *e)
{
    for (size_t i = 0; i < e->n; i++) {
        if (i < e->n_plain)
            xfree(e->v[i]);
        else
            xsecure_free(e->v[i]);
    }
    xfree(e->v);
}

/* The error of a file tool that exited non-zero or died of a signal,
 * with the first line of its (scrubbed) stderr when there is one. */
static enum tool_status runner_failed(const struct tool_def *t, const struct runcmd_result *rr,
                                      const char *errout, const struct tool_env *env,
                                      struct tool_result *res)
{
    struct buf clean;
    buf_init(&clean, (RUNNER_STDERR_MAX + 1) * sizeof RUNNER_MASK);
    /* A full buffer may have cut a value (what followed was dropped, or
     * left unread once the tool had exited). */
    bool truncated = rr->err_dropped > 0 || rr->err_len >= RUNNER_STDERR_MAX;
    runner_scrub(errout, rr->err_len, truncated, env, &clean);
    char line[RUNNER_LINE_MAX + 1];
    runner_first_line(buf_cstr(&clean), clean.len, line);
    if (clean.data != NULL)
        runner_wipe(clean.data, clean.len);
    buf_free(&clean);
    char what[64];
    if (rr->end == RUNCMD_SIGNALED)
        snprintf(what, sizeof what, "was killed by signal %d", rr->status);
    else
        snprintf(what, sizeof what, "exited with status %d", rr->status);
    res->exit_status = rr->end == RUNCMD_EXITED ? rr->status : -1;
    if (line[0] == '\0')
        return runner_fail(res, TOOL_FAILED, "tool %s %s", t->name, what);
    return runner_fail(res, TOOL_FAILED, "tool %s %s: %s", t->name, what, line);
}

/* Maps how the run ended to res. */
static enum tool_status runner_outcome(const struct tool_def *t, const struct runcmd_result *rr,
                                       const char *rerr, const char *out, const char *errout,
                                       const struct tool_env *env, struct tool_result *res)
{
    switch (rr->end) {
    case RUNCMD_EXITED:
        if (rr->status == 0) {
            res->exit_status = 0;
            return runner_take_output(t, out, rr->out_len, res);
        }
        return runner_failed(t, rr, errout, env, res);
    case RUNCMD_SIGNALED:
        return runner_failed(t, rr, errout, env, res);
    case RUNCMD_TIMEOUT:
        return runner_fail(res, TOOL_TIMEOUT, "tool %s timed out after %lld ms", t->name,
                           t->timeout_ms);
    case RUNCMD_OVERFLOW:
        return runner_fail(res, TOOL_TOO_BIG, "tool %s printed more than %zu bytes", t->name,
                           runner_output_max(t));
    case RUNCMD_CANCELLED:
        return runner_fail(res, TOOL_CANCELLED, "tool %s was cancelled", t->name);
    case RUNCMD_NO_START:
        return runner_fail(res, TOOL_NO_START, "tool %s: %s", t->name, rerr);
    case RUNCMD_READ_ERROR:
    case RUNCMD_WAIT_ERROR:
    case RUNCMD_BAD_SPEC:
        break;
    }
    return runner_fail(res, TOOL_FAILED, "tool %s %s", t->name, rerr);
}

static enum tool_status runner_file(const struct tool_def *t, const char *args,
                                    const struct tool_env *env, struct tool_result *res)
{
    if (t->argv == NULL || t->argc == 0 || t->argv[0] == NULL)
        return runner_fail(res, TOOL_NO_START, "tool %s has no command to run", t->name);
    size_t cap = runner_output_max(t) + 1;
    char *out = try_malloc(cap);
    if (out == NULL)
        return runner_fail(res, TOOL_NO_START, "tool %s: cannot start %s: out of memory", t->name,
                           t->argv[0]);
    char errout[RUNNER_STDERR_MAX + 1];
    struct runner_envp envp;
    runner_env_build(t, env, &envp);
    struct runcmd_spec spec = {
        .path = t->argv[0],
        .argv = t->argv,
        .envp = envp.v,
        .input = args,
        .input_len = strlen(args),
        .out = out,
        .out_cap = cap,
        .errout = errout,
        .err_cap = sizeof errout,
        .timeout_ms = t->timeout_ms > 0 ? t->timeout_ms : TOOL_TIMEOUT_DEFAULT,
        .cancel = env != NULL ? env->cancel : NULL,
    };
    struct runcmd_result rr;
    char rerr[600];
    (void)runcmd_run(&spec, &rr, rerr, sizeof rerr);
    runner_env_free(&envp);
    enum tool_status st = runner_outcome(t, &rr, rerr, out, errout, env, res);
    /* stdout and stderr may hold what a tool did with its credentials. */
    runner_wipe(out, cap);
    runner_wipe(errout, sizeof errout);
    xfree(out);
    return st;
}

enum tool_status tool_run(const struct tool_def *t, const char *args_json,
                          const struct tool_env *env, struct tool_result *res)
{
    int64_t t0 = clock_mono_ns();
    buf_free(&res->output);
    res->status = TOOL_OK;
    res->error[0] = '\0';
    res->exit_status = -1;
    enum tool_status st;
    if (runner_check_args(t, args_json, res) != 0)
        st = res->status;
    else if (t->builtin != NULL)
        st = runner_builtin(t, args_json, env, res);
    else
        st = runner_file(t, args_json, env, res);
    res->latency_ms = clock_since_ms(t0);
    return st;
}
