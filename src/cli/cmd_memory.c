/*
 * memchat memory ACTION and memchat purge: a tenant's memories from the
 * command line.
 *
 *   memchat memory add     [--tenant T] [--user U] [--agent A] [--meta K=V]... [TEXT]
 *   memchat memory search  [--tenant T] [--user U] [--k N] [--method M] [--filter JSON]
 *                          [--json] QUERY
 *   memchat memory forget  [--tenant T] (--id ID | --filter JSON)
 *   memchat memory stats   [--tenant T] [--json]
 *   memchat memory export  [--tenant T] [--user U] [--filter JSON]
 *   memchat memory import  [--tenant T] [FILE]
 *   memchat memory history [--tenant T] [--limit N] [--json]
 *   memchat memory index   [--tenant T] [--rebuild] [--json]
 *   memchat memory migrate --from STORE --to STORE [--tenant T] [--batch N] [--restart]
 *   memchat memory reembed [--tenant T] [--batch N] [--force]
 *   memchat purge --tenant T [--user U] [--yes] [--json]
 *
 * Every action is an engine job (import: one per batch of lines), printed
 * from its `result` event; the front end never opens the data file. What
 * it does below the engine is check its input with side-effect-free
 * functions (filter_parse, memory_method_parse, memory_parse_import_line),
 * so a bad filter or a bad line of an import file is refused, naming the
 * problem, before anything is stored. Text from memories is untrusted: the
 * tables pass it through the terminal sanitiser; --json prints the result
 * items unchanged, one object per line.
 */
#include "config.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/session.h"
#include "config/config.h"
#include "config/vars.h"
#include "memchat/error.h"
#include "memory/filter.h"
#include "memory/manager.h"
#include "memory/move.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/utf8.h"
#include "util/uuid.h"

#define MEMCLI_IMPORT_BATCH      1000                /* lines per job, one transaction each */
#define MEMCLI_IMPORT_MAX_BYTES  ((size_t)1 << 30)   /* a whole import file */
#define MEMCLI_IMPORT_LINE_EXTRA ((size_t)4096 * 32) /* room for a line's vector */
#define MEMCLI_IMPORT_SHOWN      20                  /* bad lines listed before "and N more" */
#define MEMCLI_META_KEY_MAX      64
#define MEMCLI_ELLIPSIS          "\xe2\x80\xa6" /* U+2026, one column */
#define MEMCLI_NUMBER_DIGITS     15             /* digits a double keeps exactly */

/* ---- what the memory verbs share ---- */

/* Prints an engine message to stderr, made safe for a terminal: it may
 * quote the user's filter or a line of their file. */
static void memcli_error(const char *msg)
{
    struct buf b;
    buf_init(&b, strlen(msg) * 3 + 16);
    if (utf8_sanitize_terminal(&b, msg, strlen(msg)) == BUF_OK)
        session_error("%s", buf_cstr(&b));
    else
        session_error("the job failed");
    buf_free(&b);
}

static void memcli_index_after_import(struct session *s, const char *tenant);

/* A progress event as a bar on standard error, when it is a terminal; the
 * bar is cleared (shown is set) before anything else is printed. */
static void memcli_progress(const struct mc_event *ev, bool *shown)
{
    if (!isatty(STDERR_FILENO))
        return;
    double done = mc_event_num(ev, "done", 0), total = mc_event_num(ev, "total", 0);
    double frac = total > 0 ? done / total : 1;
    if (frac > 1)
        frac = 1;
    char bar[41];
    size_t fill = (size_t)(frac * 40);
    for (size_t i = 0; i < 40; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[40] = '\0';
    fprintf(stderr, "\r%s: [%s] %3.0f%% (%.0f of %.0f)", mc_event_str(ev, "stage", "working"), bar,
            frac * 100, done, total);
    fflush(stderr);
    *shown = true;
}

static void memcli_progress_clear(bool *shown)
{
    if (*shown)
        fputs("\r\033[K", stderr);
    *shown = false;
}

int cli_memory_job(struct session *s, const struct mc_memory_job *job, cJSON **items)
{
    *items = NULL;
    char id[MC_UUID_STRLEN + 1], err[1024] = "";
    if (mc_engine_submit_memory(s->eng, job, id, err, sizeof err) != 0) {
        memcli_error(err);
        return MC_EXIT_USAGE;
    }
    return cli_job_wait(s, id, false, items);
}

int cli_job_wait(struct session *s, const char *id, bool print_json, cJSON **items)
{
    *items = NULL;
    bool bar = false, asked = false;
    for (;;) {
        struct mc_event *ev;
        while ((ev = mc_engine_next_event(s->eng)) != NULL) {
            int rc = -1;
            if (ev->kind == MC_EV_PROGRESS && !print_json &&
                strcmp(mc_event_str(ev, "job", ""), id) == 0) {
                memcli_progress(ev, &bar);
                mc_event_free(ev);
                continue;
            }
            if (strcmp(mc_event_str(ev, "job", ""), id) == 0) {
                memcli_progress_clear(&bar);
                if (print_json) {
                    char *line = mc_event_to_json(ev);
                    puts(line);
                    xfree(line);
                }
                if (ev->kind == MC_EV_RESULT) {
                    cJSON *it = cJSON_DetachItemFromObjectCaseSensitive(ev->json, "items");
                    if (!cJSON_IsArray(it)) {
                        cJSON_Delete(it);
                        it = cJSON_CreateArray();
                    }
                    *items = it;
                    rc = MC_EXIT_OK;
                } else if (ev->kind == MC_EV_ERROR) {
                    memcli_error(mc_event_str(ev, "message", "the job failed"));
                    rc = mc_error_exit_code(mc_error_from_code(mc_event_str(ev, "code", "")));
                }
            }
            mc_event_free(ev);
            if (rc >= 0)
                return rc;
        }
        struct pollfd pfd[2] = {
            {.fd = mc_engine_wake_fd(s->eng), .events = POLLIN},
            {.fd = session_signal_fd(), .events = POLLIN},
        };
        if (poll(pfd, 2, -1) < 0 && errno != EINTR) {
            session_error("poll: %s", strerror(errno));
            return MC_EXIT_RUNTIME;
        }
        if (pfd[1].revents & POLLIN) {
            int sig = session_take_signal();
            if ((sig == SIGINT || sig == SIGTERM) && s->cancel_job && !asked) {
                memcli_progress_clear(&bar);
                session_error("stopping at the next checkpoint (Ctrl-C again to quit at once)");
                mc_engine_cancel(s->eng);
                asked = true;
            } else if (sig == SIGINT || sig == SIGTERM) {
                memcli_progress_clear(&bar);
                /* A job is one transaction: it completes or changes nothing. */
                session_error("cancelled (a job that had started completes first)");
                return MC_EXIT_CANCELLED;
            }
        }
    }
}

/* One job on an engine of its own: the usual shape of an action. */
static int memcli_run(const struct config *cfg, const struct mc_memory_job *job, cJSON **items)
{
    *items = NULL;
    struct session s;
    int rc = session_start(&s, cfg, false, NULL);
    if (rc != MC_EXIT_OK)
        return rc;
    rc = cli_memory_job(&s, job, items);
    session_stop(&s);
    return rc;
}

void cli_print_items(const cJSON *items)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, items)
    {
        char *line = cJSON_PrintUnformatted(it);
        if (line != NULL)
            puts(line);
        cJSON_free(line);
    }
}

size_t cli_table_width(void)
{
    struct winsize ws;
    if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40)
        return ws.ws_col;
    return 100;
}

static bool memcli_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

void cli_put_cell(struct buf *out, const char *text, size_t cols)
{
    size_t n = strlen(text);
    struct buf clean, fold;
    buf_init(&clean, n * 3 + 16); /* each invalid byte may become U+FFFD */
    buf_init(&fold, n * 3 + 16);
    if (utf8_sanitize_terminal(&clean, text, n) != BUF_OK) {
        buf_free(&clean);
        buf_free(&fold);
        return;
    }
    /* Fold whitespace runs to one space, counting columns as code points. */
    size_t ncols = 0;
    bool space = false;
    for (size_t i = 0; i < clean.len; i++) {
        char c = clean.data[i];
        if (memcli_is_space(c)) {
            space = fold.len > 0;
            continue;
        }
        if (space) {
            buf_putc(&fold, ' ');
            ncols++;
            space = false;
        }
        buf_putc(&fold, c);
        if (((unsigned char)c & 0xC0) != 0x80)
            ncols++;
    }
    buf_free(&clean);
    if (ncols <= cols) {
        buf_append(out, buf_cstr(&fold), fold.len);
        buf_free(&fold);
        return;
    }
    /* Keep cols - 1 code points and the ellipsis. */
    size_t keep = 0, seen = 0;
    while (keep < fold.len) {
        if (((unsigned char)fold.data[keep] & 0xC0) != 0x80 && seen++ == cols - 1)
            break;
        keep++;
    }
    while (keep > 0 && fold.data[keep - 1] == ' ')
        keep--;
    if (cols > 0) {
        buf_append(out, buf_cstr(&fold), keep);
        buf_puts(out, MEMCLI_ELLIPSIS);
    }
    buf_free(&fold);
}

/* Appends cell text to out padded with spaces to exactly cols columns. */
static void memcli_put_padded(struct buf *out, const char *text, size_t cols)
{
    size_t before = out->len;
    cli_put_cell(out, text, cols);
    size_t used = 0;
    for (size_t i = before; i < out->len; i++)
        if (((unsigned char)out->data[i] & 0xC0) != 0x80)
            used++;
    for (; used < cols; used++)
        buf_putc(out, ' ');
}

const char *cli_format_time(int64_t ms, char *out, size_t outlen)
{
    struct tm tm;
    time_t secs = (time_t)(ms / 1000);
    if (ms <= 0 || gmtime_r(&secs, &tm) == NULL ||
        strftime(out, outlen, "%Y-%m-%d %H:%M", &tm) == 0)
        snprintf(out, outlen, "-");
    return out;
}

/* How long ago ms was, in the largest unit that fits: "42s", "5m", "3h",
 * "12d", "7w", "2y"; "now" for the future (an imported created_at). */
static const char *memcli_format_age(int64_t ms, int64_t now_ms, char *out, size_t outlen)
{
    int64_t s = (now_ms - ms) / 1000;
    if (ms <= 0)
        snprintf(out, outlen, "-");
    else if (s <= 0)
        snprintf(out, outlen, "now");
    else if (s < 60)
        snprintf(out, outlen, "%llds", (long long)s);
    else if (s < 3600)
        snprintf(out, outlen, "%lldm", (long long)(s / 60));
    else if (s < 48 * 3600)
        snprintf(out, outlen, "%lldh", (long long)(s / 3600));
    else if (s < 60 * 86400)
        snprintf(out, outlen, "%lldd", (long long)(s / 86400));
    else if (s < 365 * 86400)
        snprintf(out, outlen, "%lldw", (long long)(s / (7 * 86400)));
    else
        snprintf(out, outlen, "%lldy", (long long)(s / (365 * 86400)));
    return out;
}

int cli_parse_count(const char *opt, const char *value, long min, long max, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno != 0 || end == value || *end != '\0' || v < min || v > max) {
        session_error("%s: '%s' is not a whole number from %ld to %ld", opt, value, min, max);
        return MC_EXIT_USAGE;
    }
    *out = v;
    return MC_EXIT_OK;
}

/* The user named on the command line (--user, or --set MEMCHAT_USER=),
 * else NULL: the default $LOGNAME must not narrow a search or a purge. */
static const char *memcli_flag_user(const struct config *cfg)
{
    return config_origin(cfg, CFG_MEMCHAT_USER) == CFG_FROM_FLAG ? config_str(cfg, CFG_MEMCHAT_USER)
                                                                 : NULL;
}

/* A number field of a result item; dflt when absent or not a number. */
static double memcli_num(const cJSON *o, const char *name, double dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

/* A string field of a result item; dflt when absent or not a string. */
static const char *memcli_str(const cJSON *o, const char *name, const char *dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : dflt;
}

/* Reads all of fd into b (bounded by b->max). 0, or an exit code after
 * printing why, naming what was read and the limit. */
static int memcli_read_fd(int fd, struct buf *b, const char *what, const char *limit)
{
    char chunk[65536];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n == 0)
            return MC_EXIT_OK;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            session_error("cannot read %s: %s", what, strerror(errno));
            return MC_EXIT_RUNTIME;
        }
        enum buf_result r = buf_append(b, chunk, (size_t)n);
        if (r == BUF_TOO_BIG) {
            session_error("%s is larger than %s (%zu bytes)", what, limit, b->max);
            return MC_EXIT_USAGE;
        }
        if (r != BUF_OK) {
            session_error("out of memory reading %s", what);
            return MC_EXIT_RUNTIME;
        }
    }
}

/* A filter given with --filter, checked here so that a bad one is refused
 * before the engine starts, and narrowed to user when user is not NULL.
 * *out is NULL (no filter) or a new string the caller frees. */
static int memcli_filter(const char *what, const char *filter, const char *user, char **out)
{
    *out = NULL;
    if (filter != NULL) {
        char err[512] = "";
        struct mem_filter *f = filter_parse(filter, err, sizeof err);
        if (f == NULL) {
            struct buf b;
            buf_init(&b, strlen(err) * 3 + 16);
            utf8_sanitize_terminal(&b, err, strlen(err));
            session_error("%s: --filter: %s", what, buf_cstr(&b));
            buf_free(&b);
            return MC_EXIT_USAGE;
        }
        filter_free(f);
    }
    /* user is a valid id ([A-Za-z0-9_-]): safe inside a JSON string. */
    if (user != NULL && filter != NULL)
        *out = xasprintf("{\"$and\":[{\"user_id\":{\"$eq\":\"%s\"}},%s]}", user, filter);
    else if (user != NULL)
        *out = xasprintf("{\"user_id\":{\"$eq\":\"%s\"}}", user);
    else if (filter != NULL)
        *out = xstrdup(filter);
    return MC_EXIT_OK;
}

/* Joins args[from..] with spaces into b; refuses text over b->max. */
static int memcli_join_args(const struct cli_opts *o, size_t from, struct buf *b, const char *what)
{
    for (size_t i = from; i < o->n_args; i++) {
        if ((i > from && buf_putc(b, ' ') != BUF_OK) || buf_puts(b, o->args[i]) != BUF_OK) {
            session_error("%s: the text is larger than MEMCHAT_MAX_INPUT_BYTES (%zu bytes)", what,
                          b->max);
            return MC_EXIT_USAGE;
        }
    }
    return MC_EXIT_OK;
}

/* Refuses b unless it is valid UTF-8. */
static int memcli_check_utf8(const struct buf *b, const char *what)
{
    size_t bad = 0;
    if (b->len > 0 && !utf8_valid(b->data, b->len, &bad)) {
        session_error("%s: the text is not valid UTF-8 (first bad byte at offset %zu)", what, bad);
        return MC_EXIT_USAGE;
    }
    return MC_EXIT_OK;
}

/* ---- add ---- */

/* The memory's own fields: a --meta key may not shadow one in filters. */
static const char *const memcli_fields[] = {"id",   "text",       "user_id", "agent",
                                            "kind", "created_at", "metadata"};

static bool memcli_meta_key_ok(const char *k, size_t n)
{
    if (n == 0 || n > MEMCLI_META_KEY_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = k[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

/* True when v is a JSON number a double keeps exactly (at most 15
 * significant digits), so "007", "0x10", "1e999" and long account numbers
 * stay strings. */
static bool memcli_is_number(const char *v)
{
    const char *p = v;
    size_t digits = 0;
    if (*p == '-')
        p++;
    if (*p == '0') {
        p++;
        digits++;
    } else if (*p >= '1' && *p <= '9') {
        for (; *p >= '0' && *p <= '9'; p++)
            digits++;
    } else {
        return false;
    }
    if (*p == '.') {
        p++;
        if (!(*p >= '0' && *p <= '9'))
            return false;
        for (; *p >= '0' && *p <= '9'; p++)
            digits++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!(*p >= '0' && *p <= '9'))
            return false;
        size_t exp_digits = 0;
        for (; *p >= '0' && *p <= '9'; p++)
            exp_digits++;
        if (exp_digits > 2) /* beyond 1e99 is not a value anyone means */
            return false;
    }
    return *p == '\0' && digits <= MEMCLI_NUMBER_DIGITS;
}

/* The --meta KEY=VALUE pairs as a JSON object (NULL when none; the caller
 * frees). */
static int memcli_meta_json(const struct cli_opts *o, char **out)
{
    *out = NULL;
    if (o->n_meta == 0)
        return MC_EXIT_OK;
    cJSON *obj = cJSON_CreateObject();
    int rc = MC_EXIT_OK;
    for (size_t i = 0; i < o->n_meta && rc == MC_EXIT_OK; i++) {
        const char *kv = o->meta[i];
        const char *eq = strchr(kv, '=');
        size_t klen = eq != NULL ? (size_t)(eq - kv) : strlen(kv);
        char *key = xstrndup(kv, klen);
        const char *val = eq != NULL ? eq + 1 : NULL;
        if (val == NULL) {
            session_error(
                "memory add: --meta '%s': expected KEY=VALUE (e.g. --meta project=apollo)", kv);
            rc = MC_EXIT_USAGE;
        } else if (!memcli_meta_key_ok(key, klen)) {
            session_error("memory add: --meta: the key '%.*s' is not 1 to %d of A-Z a-z 0-9 _ . -",
                          (int)(klen > 80 ? 80 : klen), kv, MEMCLI_META_KEY_MAX);
            rc = MC_EXIT_USAGE;
        } else if (!utf8_valid(val, strlen(val), NULL)) {
            session_error("memory add: --meta %s: the value is not valid UTF-8", key);
            rc = MC_EXIT_USAGE;
        } else if (cJSON_GetObjectItemCaseSensitive(obj, key) != NULL) {
            session_error("memory add: --meta %s given twice", key);
            rc = MC_EXIT_USAGE;
        } else {
            for (size_t f = 0; f < sizeof memcli_fields / sizeof *memcli_fields; f++)
                if (strcmp(key, memcli_fields[f]) == 0) {
                    session_error("memory add: --meta %s: '%s' is one of a memory's own fields "
                                  "(id, text, user_id, agent, kind, created_at, metadata); "
                                  "choose another key",
                                  key, key);
                    rc = MC_EXIT_USAGE;
                }
        }
        if (rc == MC_EXIT_OK) {
            if (strcmp(val, "true") == 0 || strcmp(val, "false") == 0)
                cJSON_AddBoolToObject(obj, key, strcmp(val, "true") == 0);
            else if (memcli_is_number(val))
                cJSON_AddNumberToObject(obj, key, strtod(val, NULL));
            else
                cJSON_AddStringToObject(obj, key, val);
        }
        xfree(key);
    }
    if (rc == MC_EXIT_OK) {
        char *s = cJSON_PrintUnformatted(obj);
        *out = xstrdup(s);
        cJSON_free(s);
    }
    cJSON_Delete(obj);
    return rc;
}

static int memcli_add(const struct config *cfg, const struct cli_opts *o)
{
    size_t max = (size_t)config_int(cfg, CFG_MEMCHAT_MAX_INPUT_BYTES);
    struct buf text;
    buf_init(&text, max);
    char *meta = NULL;
    int rc = memcli_meta_json(o, &meta);
    if (rc == MC_EXIT_OK && o->n_args > 1)
        rc = memcli_join_args(o, 1, &text, "memory add");
    else if (rc == MC_EXIT_OK && !isatty(STDIN_FILENO))
        rc = memcli_read_fd(STDIN_FILENO, &text, "memory add: standard input",
                            "MEMCHAT_MAX_INPUT_BYTES");
    if (rc == MC_EXIT_OK)
        rc = memcli_check_utf8(&text, "memory add");
    /* A trailing newline (echo ... |) is not part of the memory. */
    while (rc == MC_EXIT_OK && text.len > 0 && memcli_is_space(text.data[text.len - 1]))
        text.data[--text.len] = '\0';
    size_t lead = 0;
    while (lead < text.len && memcli_is_space(text.data[lead]))
        lead++;
    if (rc == MC_EXIT_OK && lead == text.len) {
        session_error("memory add: the text is empty (give it as arguments or on standard "
                      "input)");
        rc = MC_EXIT_USAGE;
    }
    cJSON *items = NULL;
    if (rc == MC_EXIT_OK) {
        struct mc_memory_job job = {
            .op = MC_MEM_ADD,
            .tenant = config_str(cfg, CFG_MEMCHAT_TENANT),
            .user = config_str(cfg, CFG_MEMCHAT_USER),
            .agent = config_str(cfg, CFG_MEMCHAT_AGENT),
            .text = buf_cstr(&text) + lead,
            .metadata = meta,
        };
        rc = memcli_run(cfg, &job, &items);
    }
    if (rc == MC_EXIT_OK && o->json) {
        cli_print_items(items);
    } else if (rc == MC_EXIT_OK) {
        const cJSON *it = cJSON_GetArrayItem(items, 0);
        const char *id = memcli_str(it, "id", "?");
        bool refreshed = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "refreshed"));
        double chunks = memcli_num(it, "chunks", 1);
        printf("%s%s\n", refreshed ? "refreshed " : "", id);
        if (chunks > 1)
            session_error("note: the text is longer than MEMORY_MAX_BYTES (%lld bytes): it was "
                          "stored as %.0f chunks; %s is the first",
                          config_int(cfg, CFG_MEMORY_MAX_BYTES), chunks, id);
    }
    cJSON_Delete(items);
    xfree(meta);
    buf_free(&text);
    return rc;
}

/* ---- search ---- */

/* A score as the table shows it: three decimals, "-" when null. */
static void memcli_put_score(struct buf *out, const cJSON *v)
{
    if (cJSON_IsNumber(v))
        buf_printf(out, "%6.3f", v->valuedouble);
    else
        buf_printf(out, "%6s", "-");
}

static void memcli_search_table(const cJSON *items, const char *tenant)
{
    if (cJSON_GetArraySize(items) == 0) {
        printf("(no memories found in tenant %s)\n", tenant);
        return;
    }
    size_t width = cli_table_width();
    int64_t now = clock_wall_ms();
    /* "  #   SCORE  AGE   USER          " is 34 columns before the text. */
    size_t text_cols = width > 34 + 20 ? width - 34 : 20;
    printf("%3s  %6s  %-4s  %-12s  %s\n", "#", "SCORE", "AGE", "USER", "TEXT");
    size_t rank = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, items)
    {
        struct buf line;
        buf_init(&line, 1 << 20);
        char age[16];
        buf_printf(&line, "%3zu  ", ++rank);
        memcli_put_score(&line, cJSON_GetObjectItemCaseSensitive(it, "score"));
        buf_printf(
            &line, "  %-4s  ",
            memcli_format_age((int64_t)memcli_num(it, "created_at", 0), now, age, sizeof age));
        memcli_put_padded(&line, memcli_str(it, "user_id", "-"), 12);
        buf_puts(&line, "  ");
        cli_put_cell(&line, memcli_str(it, "text", ""), text_cols);
        puts(buf_cstr(&line));
        buf_free(&line);
    }
}

static int memcli_search(const struct config *cfg, const struct cli_opts *o)
{
    size_t max = (size_t)config_int(cfg, CFG_MEMCHAT_MAX_INPUT_BYTES);
    long k = 0;
    if (o->k != NULL && cli_parse_count("memory search: --k", o->k, 1, 100, &k) != MC_EXIT_OK)
        return MC_EXIT_USAGE;
    enum memory_method m;
    if (o->method != NULL && memory_method_parse(o->method, &m) != 0) {
        session_error("memory search: --method '%s' is not one of similarity, mmr, hybrid",
                      o->method);
        return MC_EXIT_USAGE;
    }
    if (o->n_args < 2) {
        session_error("memory search: what to search for? (memchat memory search QUERY)");
        return MC_EXIT_USAGE;
    }
    const char *user = memcli_flag_user(cfg);
    char *filter = NULL;
    struct buf q;
    buf_init(&q, max);
    /* The engine narrows the search to job.user itself. */
    int rc = memcli_filter("memory search", o->filter, NULL, &filter);
    if (rc == MC_EXIT_OK)
        rc = memcli_join_args(o, 1, &q, "memory search");
    if (rc == MC_EXIT_OK)
        rc = memcli_check_utf8(&q, "memory search");
    cJSON *items = NULL;
    if (rc == MC_EXIT_OK) {
        struct mc_memory_job job = {
            .op = MC_MEM_SEARCH,
            .tenant = config_str(cfg, CFG_MEMCHAT_TENANT),
            .user = user,
            .text = buf_cstr(&q),
            .filter = filter,
            .method = o->method,
            .k = (int)k,
        };
        rc = memcli_run(cfg, &job, &items);
    }
    if (rc == MC_EXIT_OK && o->json)
        cli_print_items(items);
    else if (rc == MC_EXIT_OK)
        memcli_search_table(items, config_str(cfg, CFG_MEMCHAT_TENANT));
    cJSON_Delete(items);
    xfree(filter);
    buf_free(&q);
    return rc;
}

/* ---- forget ---- */

static int memcli_forget(const struct config *cfg, const struct cli_opts *o)
{
    if (o->n_args > 1) {
        session_error("memory forget takes no arguments (got '%s'; use --id ID or --filter JSON)",
                      o->args[1]);
        return MC_EXIT_USAGE;
    }
    if ((o->id == NULL) == (o->filter == NULL)) {
        session_error("memory forget: give exactly one of --id ID and --filter JSON");
        return MC_EXIT_USAGE;
    }
    if (o->id != NULL && !uuid_valid(o->id)) {
        session_error("memory forget: --id '%s' is not a memory id (a UUID such as "
                      "0190f5a2-7b3c-7def-8123-456789abcdef)",
                      o->id);
        return MC_EXIT_USAGE;
    }
    char *filter = NULL;
    int rc = memcli_filter("memory forget", o->filter, NULL, &filter);
    cJSON *items = NULL;
    if (rc == MC_EXIT_OK) {
        struct mc_memory_job job = {
            .op = MC_MEM_FORGET,
            .tenant = config_str(cfg, CFG_MEMCHAT_TENANT),
            .user = config_str(cfg, CFG_MEMCHAT_USER),
            .agent = config_str(cfg, CFG_MEMCHAT_AGENT),
            .id = o->id,
            .filter = filter,
        };
        rc = memcli_run(cfg, &job, &items);
    }
    if (rc == MC_EXIT_OK && o->json) {
        cli_print_items(items);
    } else if (rc == MC_EXIT_OK) {
        double n = memcli_num(cJSON_GetArrayItem(items, 0), "deleted", 0);
        printf("forgot %.0f %s\n", n, n == 1 ? "memory" : "memories");
    }
    cJSON_Delete(items);
    xfree(filter);
    return rc;
}

/* ---- stats ---- */

static void memcli_stats_table(const cJSON *items, const char *tenant)
{
    if (cJSON_GetArraySize(items) == 0) {
        if (tenant != NULL)
            printf("(tenant %s has no memories)\n", tenant);
        else
            printf("(no memories stored)\n");
        return;
    }
    printf("%-20s %9s %6s %-14s %5s %-16s %-16s %10s\n", "TENANT", "MEMORIES", "USERS", "EMBEDDER",
           "DIM", "OLDEST (UTC)", "NEWEST (UTC)", "BYTES/MEM");
    const cJSON *it;
    cJSON_ArrayForEach(it, items)
    {
        char oldest[32], newest[32], emb[128];
        struct buf t;
        buf_init(&t, 4096);
        memcli_put_padded(&t, memcli_str(it, "tenant", "-"), 20);
        snprintf(emb, sizeof emb, "%s%s%s", memcli_str(it, "embedder", "-"),
                 *memcli_str(it, "model", "") != '\0' ? "/" : "", memcli_str(it, "model", ""));
        struct buf e;
        buf_init(&e, 4096);
        memcli_put_padded(&e, emb, 14);
        printf("%s %9.0f %6.0f %s %5.0f %-16s %-16s %10.0f\n", buf_cstr(&t),
               memcli_num(it, "count", 0), memcli_num(it, "users", 0), buf_cstr(&e),
               memcli_num(it, "dim", 0),
               cli_format_time((int64_t)memcli_num(it, "oldest", 0), oldest, sizeof oldest),
               cli_format_time((int64_t)memcli_num(it, "newest", 0), newest, sizeof newest),
               memcli_num(it, "bytes_per_memory", 0));
        buf_free(&t);
        buf_free(&e);
    }
}

static int memcli_stats(const struct config *cfg, const struct cli_opts *o)
{
    if (o->n_args > 1) {
        session_error("memory stats takes no arguments (got '%s')", o->args[1]);
        return MC_EXIT_USAGE;
    }
    /* Without a tenant named anywhere, every namespace. */
    const char *tenant = config_origin(cfg, CFG_MEMCHAT_TENANT) != CFG_FROM_DEFAULT
                             ? config_str(cfg, CFG_MEMCHAT_TENANT)
                             : NULL;
    struct mc_memory_job job = {.op = MC_MEM_STATS, .tenant = tenant};
    cJSON *items = NULL;
    int rc = memcli_run(cfg, &job, &items);
    if (rc == MC_EXIT_OK && o->json)
        cli_print_items(items);
    else if (rc == MC_EXIT_OK)
        memcli_stats_table(items, tenant);
    cJSON_Delete(items);
    return rc;
}

/* ---- export ---- */

static int memcli_export(const struct config *cfg, const struct cli_opts *o)
{
    if (o->n_args > 1) {
        session_error("memory export takes no arguments (got '%s'; it writes to standard "
                      "output)",
                      o->args[1]);
        return MC_EXIT_USAGE;
    }
    char *filter = NULL;
    int rc = memcli_filter("memory export", o->filter, memcli_flag_user(cfg), &filter);
    cJSON *items = NULL;
    if (rc == MC_EXIT_OK) {
        struct mc_memory_job job = {
            .op = MC_MEM_EXPORT,
            .tenant = config_str(cfg, CFG_MEMCHAT_TENANT),
            .filter = filter,
        };
        rc = memcli_run(cfg, &job, &items);
    }
    if (rc == MC_EXIT_OK)
        cli_print_items(items);
    cJSON_Delete(items);
    xfree(filter);
    return rc;
}

/* ---- import ---- */

/* An import file split into its non-blank lines, in place. */
struct memcli_import {
    const char *name; /* for messages: the path, or "stdin" */
    struct buf data;
    char **lines;    /* into data, each NUL-terminated */
    size_t *lens;    /* each line's length (an embedded NUL makes strlen shorter) */
    size_t *numbers; /* each line's number in the file, from 1 */
    size_t n;
};

static void memcli_import_fini(struct memcli_import *im)
{
    buf_free(&im->data);
    xfree(im->lines);
    xfree(im->lens);
    xfree(im->numbers);
}

/* Splits im->data at newlines (a trailing \r goes too), keeping the
 * lines that are not blank. */
static void memcli_import_split(struct memcli_import *im)
{
    size_t cap = 0, number = 0;
    char *p = im->data.data, *end = im->data.data + im->data.len;
    while (p != NULL && p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *stop = nl != NULL ? nl : end;
        number++;
        if (nl != NULL)
            *nl = '\0';
        if (stop > p && stop[-1] == '\r')
            *--stop = '\0';
        bool blank = true;
        for (char *c = p; c < stop && blank; c++)
            blank = memcli_is_space(*c);
        if (!blank) {
            if (im->n == cap) {
                cap = cap * 2 + 1024;
                im->lines = xreallocarray(im->lines, cap, sizeof *im->lines);
                im->lens = xreallocarray(im->lens, cap, sizeof *im->lens);
                im->numbers = xreallocarray(im->numbers, cap, sizeof *im->numbers);
            }
            im->lines[im->n] = p;
            im->lens[im->n] = (size_t)(stop - p);
            im->numbers[im->n++] = number;
        }
        p = nl != NULL ? nl + 1 : end;
    }
}

/* Checks line i of im without side effects: NULL when it would import,
 * else why not (the caller frees). */
static char *memcli_import_check(const struct memcli_import *im, size_t i, size_t line_max)
{
    const char *line = im->lines[i];
    size_t line_len = im->lens[i];
    if (memchr(line, '\0', line_len) != NULL)
        return xstrdup("the line contains a NUL byte");
    if (line_len > line_max)
        return xasprintf("the line is longer than %zu bytes (MEMCHAT_MAX_INPUT_BYTES and room "
                         "for a vector)",
                         line_max);
    size_t bad = 0;
    if (!utf8_valid(line, line_len, &bad))
        return xasprintf("not valid UTF-8 (first bad byte at column %zu)", bad + 1);
    struct memory_add a;
    cJSON *hold = NULL;
    float *vec = NULL;
    size_t vec_len = 0;
    char err[512] = "";
    int rc = memory_parse_import_line(line, &a, &hold, &vec, &vec_len, err, sizeof err);
    cJSON_Delete(hold);
    xfree(vec);
    return rc == 0 ? NULL : xstrdup(err[0] != '\0' ? err : "not a memory");
}

/* Checks every line; prints each bad one as FILE:LINE: message (the first
 * MEMCLI_IMPORT_SHOWN, then how many more). True when all are good. */
static bool memcli_import_check_all(const struct memcli_import *im, size_t line_max)
{
    size_t bad = 0;
    for (size_t i = 0; i < im->n; i++) {
        char *why = memcli_import_check(im, i, line_max);
        if (why == NULL)
            continue;
        if (++bad <= MEMCLI_IMPORT_SHOWN) {
            struct buf b;
            buf_init(&b, strlen(why) * 3 + 16);
            utf8_sanitize_terminal(&b, why, strlen(why));
            fprintf(stderr, "%s:%zu: %s\n", im->name, im->numbers[i], buf_cstr(&b));
            buf_free(&b);
        }
        xfree(why);
    }
    if (bad > MEMCLI_IMPORT_SHOWN)
        fprintf(stderr, "%s: " MEMCLI_ELLIPSIS " and %zu more bad lines\n", im->name,
                bad - MEMCLI_IMPORT_SHOWN);
    if (bad > 0)
        session_error("memory import: nothing was imported: %zu of %zu lines of %s %s bad", bad,
                      im->n, im->name, bad == 1 ? "is" : "are");
    return bad == 0;
}

/* Reads the file (or stdin) into im. */
static int memcli_import_read(struct memcli_import *im, const char *path)
{
    int fd = STDIN_FILENO;
    if (path != NULL) {
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            session_error("memory import: cannot open %s: %s", path, strerror(errno));
            return MC_EXIT_USAGE;
        }
    } else if (isatty(STDIN_FILENO)) {
        session_error("memory import: give a FILE, or pipe the JSON lines to standard input");
        return MC_EXIT_USAGE;
    }
    char what[4200];
    snprintf(what, sizeof what, "memory import: %s", im->name);
    int rc = memcli_read_fd(fd, &im->data, what, "the import limit");
    if (fd != STDIN_FILENO)
        close(fd);
    if (rc == MC_EXIT_OK)
        memcli_import_split(im);
    return rc;
}

static int memcli_import(const struct config *cfg, const struct cli_opts *o)
{
    if (o->n_args > 2) {
        session_error("memory import takes at most one FILE (got '%s' too)", o->args[2]);
        return MC_EXIT_USAGE;
    }
    const char *path = o->n_args == 2 ? o->args[1] : NULL;
    struct memcli_import im = {.name = path != NULL ? path : "stdin"};
    buf_init(&im.data, MEMCLI_IMPORT_MAX_BYTES);
    size_t line_max =
        (size_t)config_int(cfg, CFG_MEMCHAT_MAX_INPUT_BYTES) + MEMCLI_IMPORT_LINE_EXTRA;
    int rc = memcli_import_read(&im, path);
    if (rc == MC_EXIT_OK && !memcli_import_check_all(&im, line_max))
        rc = MC_EXIT_USAGE;
    struct session s;
    bool started = false;
    if (rc == MC_EXIT_OK && im.n > 0) {
        rc = session_start(&s, cfg, false, NULL);
        started = rc == MC_EXIT_OK;
    }
    double imported = 0, refreshed = 0;
    for (size_t i = 0; rc == MC_EXIT_OK && i < im.n;) {
        /* A batch is a run of consecutive lines, so the engine's line
         * numbers (first_line + index) stay those of the file. */
        size_t n = 1;
        while (i + n < im.n && n < MEMCLI_IMPORT_BATCH && im.numbers[i + n] == im.numbers[i] + n)
            n++;
        struct mc_memory_job job = {
            .op = MC_MEM_IMPORT,
            .tenant = config_str(cfg, CFG_MEMCHAT_TENANT),
            .lines = (const char *const *)im.lines + i,
            .n_lines = n,
            .first_line = im.numbers[i],
        };
        cJSON *items = NULL;
        rc = cli_memory_job(&s, &job, &items);
        if (rc == MC_EXIT_OK) {
            const cJSON *it = cJSON_GetArrayItem(items, 0);
            imported += memcli_num(it, "imported", 0);
            refreshed += memcli_num(it, "refreshed", 0);
        } else if (i > 0) {
            session_error("memory import: the lines before %s:%zu were imported (%.0f memories); "
                          "that line's batch and the rest were not",
                          im.name, im.numbers[i], imported);
        }
        cJSON_Delete(items);
        i += n;
    }
    if (rc == MC_EXIT_OK && started)
        memcli_index_after_import(&s, config_str(cfg, CFG_MEMCHAT_TENANT));
    if (started)
        session_stop(&s);
    if (rc == MC_EXIT_OK && o->json)
        printf("{\"imported\":%.0f,\"refreshed\":%.0f}\n", imported, refreshed);
    else if (rc == MC_EXIT_OK)
        printf("imported %.0f %s (%.0f refreshed)\n", imported,
               imported == 1 ? "memory" : "memories", refreshed);
    memcli_import_fini(&im);
    return rc;
}

/* ---- history ---- */

/* A history entry's detail as "key=value" pairs ("kind=note chars=23"),
 * shorter than its JSON in a narrow column. */
static void memcli_detail_text(const cJSON *d, struct buf *out)
{
    if (cJSON_IsString(d)) {
        buf_puts(out, d->valuestring);
        return;
    }
    if (!cJSON_IsObject(d)) {
        char *s = cJSON_IsNull(d) || d == NULL ? NULL : cJSON_PrintUnformatted(d);
        if (s != NULL)
            buf_puts(out, s);
        cJSON_free(s);
        return;
    }
    const cJSON *kv;
    cJSON_ArrayForEach(kv, d)
    {
        if (out->len > 0)
            buf_putc(out, ' ');
        buf_printf(out, "%s=", kv->string);
        if (cJSON_IsString(kv)) {
            buf_puts(out, kv->valuestring);
        } else {
            char *s = cJSON_PrintUnformatted(kv);
            if (s != NULL)
                buf_puts(out, s);
            cJSON_free(s);
        }
    }
}

static void memcli_history_table(const cJSON *items, const char *tenant)
{
    if (cJSON_GetArraySize(items) == 0) {
        printf("(no memory history in tenant %s)\n", tenant);
        return;
    }
    size_t width = cli_table_width();
    /* WHEN 16, OP 7, MEMORY 36, USER 10, AGENT 10, and two spaces each. */
    size_t fixed = 16 + 7 + 36 + 10 + 10 + 5 * 2;
    size_t detail_cols = width > fixed + 20 ? width - fixed : 20;
    printf("%-16s  %-7s  %-36s  %-10s  %-10s  %s\n", "WHEN (UTC)", "OP", "MEMORY", "USER", "AGENT",
           "DETAIL");
    const cJSON *it;
    cJSON_ArrayForEach(it, items)
    {
        char when[32];
        struct buf line, detail;
        buf_init(&line, 1 << 20);
        buf_init(&detail, 1 << 20);
        buf_printf(&line, "%-16s  ",
                   cli_format_time((int64_t)memcli_num(it, "ts_ms", 0), when, sizeof when));
        memcli_put_padded(&line, memcli_str(it, "op", "?"), 7);
        buf_puts(&line, "  ");
        memcli_put_padded(&line, memcli_str(it, "memory_id", "-"), 36);
        buf_puts(&line, "  ");
        memcli_put_padded(&line, memcli_str(it, "user_id", "-"), 10);
        buf_puts(&line, "  ");
        memcli_put_padded(&line, memcli_str(it, "agent", "-"), 10);
        buf_puts(&line, "  ");
        memcli_detail_text(cJSON_GetObjectItemCaseSensitive(it, "detail"), &detail);
        cli_put_cell(&line, buf_cstr(&detail), detail_cols);
        /* No trailing spaces when the detail is empty. */
        while (line.len > 0 && line.data[line.len - 1] == ' ')
            line.data[--line.len] = '\0';
        puts(buf_cstr(&line));
        buf_free(&detail);
        buf_free(&line);
    }
}

static int memcli_history(const struct config *cfg, const struct cli_opts *o)
{
    if (o->n_args > 1) {
        session_error("memory history takes no arguments (got '%s')", o->args[1]);
        return MC_EXIT_USAGE;
    }
    long limit = 0;
    if (o->limit != NULL &&
        cli_parse_count("memory history: --limit", o->limit, 1, 1000000000L, &limit) != MC_EXIT_OK)
        return MC_EXIT_USAGE;
    struct mc_memory_job job = {
        .op = MC_MEM_HISTORY,
        .tenant = config_str(cfg, CFG_MEMCHAT_TENANT),
        .k = (int)limit,
    };
    cJSON *items = NULL;
    int rc = memcli_run(cfg, &job, &items);
    if (rc == MC_EXIT_OK && o->json)
        cli_print_items(items);
    else if (rc == MC_EXIT_OK)
        memcli_history_table(items, job.tenant);
    cJSON_Delete(items);
    return rc;
}

/* ---- index ---- */

/* The index item as text. */
static void memcli_index_print(const cJSON *it)
{
    const char *tenant = mc_json_str(it, "tenant", "");
    double count = mc_json_num(it, "count", 0);
    bool hnsw = strcmp(mc_json_str(it, "search", ""), "hnsw") == 0;
    printf("tenant %s: %.0f %s, searched ", tenant, count, count == 1 ? "memory" : "memories");
    if (!hnsw) {
        const char *note = mc_json_str(it, "note", NULL);
        printf("by exact scan%s%s%s\n", note != NULL ? " (" : "", note != NULL ? note : "",
               note != NULL ? ")" : "");
        return;
    }
    printf("through an HNSW graph (M %.0f, efConstruction %.0f, efSearch %.0f)\n",
           mc_json_num(it, "m", 0), mc_json_num(it, "ef_construction", 0),
           mc_json_num(it, "ef_search", 0));
    const char *path = mc_json_str(it, "path", NULL);
    if (path != NULL)
        printf("  file:       %s (%.1f MB), at generation %.0f\n", path,
               mc_json_num(it, "bytes_on_disk", 0) / 1e6, mc_json_num(it, "generation", 0));
    if (mc_json_bool(it, "built", false))
        printf("  built:      from the rows, now\n");
    else if (mc_json_num(it, "caught_up", 0) > 0)
        printf("  loaded:     the file was %.0f changes behind; they were replayed from the "
               "change log\n",
               mc_json_num(it, "caught_up", 0));
    else
        printf("  up to date: nothing to build\n");
    printf("  in memory:  %.1f MB, %.0f deleted nodes awaiting compaction\n",
           mc_json_num(it, "bytes_in_memory", 0) / 1e6, mc_json_num(it, "tombstones", 0));
    const char *note = mc_json_str(it, "note", NULL);
    if (note != NULL)
        printf("  why built:  %s\n", note);
}

static int memcli_index(const struct config *cfg, const struct cli_opts *o)
{
    if (o->n_args > 1) {
        session_error("memory index takes no arguments (got '%s')", o->args[1]);
        return MC_EXIT_USAGE;
    }
    struct mc_memory_job job = {
        .op = MC_MEM_INDEX,
        .tenant = config_str(cfg, CFG_MEMCHAT_TENANT),
        .rebuild = o->rebuild,
    };
    cJSON *items = NULL;
    int rc = memcli_run(cfg, &job, &items);
    if (rc == MC_EXIT_OK && o->json)
        cli_print_items(items);
    else if (rc == MC_EXIT_OK)
        memcli_index_print(cJSON_GetArrayItem(items, 0));
    cJSON_Delete(items);
    return rc;
}

/* ---- migrate, reembed ---- */

/* A long job on an engine of its own: Ctrl-C stops it at a checkpoint. */
static int memcli_run_move(const struct config *cfg, struct mc_memory_job *job,
                           const struct cli_opts *o, cJSON **items)
{
    *items = NULL;
    if (o->n_args > 1) {
        session_error("memory %s takes no arguments (got '%s')", o->args[0], o->args[1]);
        return MC_EXIT_USAGE;
    }
    long batch = 0;
    if (o->batch != NULL && cli_parse_count("--batch", o->batch, 1, MOVE_BATCH_MAX, &batch) != 0)
        return MC_EXIT_USAGE;
    job->tenant = config_str(cfg, CFG_MEMCHAT_TENANT);
    job->batch = (int)batch;
    struct session s;
    int rc = session_start(&s, cfg, false, NULL);
    if (rc != MC_EXIT_OK)
        return rc;
    s.cancel_job = true;
    rc = cli_memory_job(&s, job, items);
    session_stop(&s);
    return rc;
}

/* " (resumed at N)" when the run continued a checkpoint. */
static const char *memcli_resumed(const cJSON *it, char *out, size_t outlen)
{
    out[0] = '\0';
    if (mc_json_bool(it, "resumed", false) && mc_json_num(it, "resumed_from", 0) > 0)
        snprintf(out, outlen, " (resumed after %.0f)", mc_json_num(it, "resumed_from", 0));
    return out;
}

static int memcli_migrate(const struct config *cfg, const struct cli_opts *o)
{
    struct mc_memory_job job = {
        .op = MC_MEM_MIGRATE, .from = o->from, .to = o->to, .restart = o->restart};
    cJSON *items = NULL;
    int rc = memcli_run_move(cfg, &job, o, &items);
    const cJSON *it = cJSON_GetArrayItem(items, 0);
    if (rc == MC_EXIT_OK && o->json) {
        cli_print_items(items);
    } else if (rc == MC_EXIT_OK) {
        char res[64];
        double src = mc_json_num(it, "source_count", 0), dst = mc_json_num(it, "target_count", 0);
        printf("tenant %s: copied %.0f memories from the %s store to the %s store%s\n", job.tenant,
               mc_json_num(it, "done", 0), o->from, o->to, memcli_resumed(it, res, sizeof res));
        if (mc_json_num(it, "target_before", 0) > 0)
            printf("  the %s store already held %.0f of the tenant's memories: kept, and those "
                   "with the same ids overwritten\n",
                   o->to, mc_json_num(it, "target_before", 0));
        printf("  now: %.0f in %s (unchanged), %.0f in %s; set VECTOR_DB_PROVIDER=%s to use "
               "them\n",
               src, o->from, dst, o->to, o->to);
        if (dst < src)
            session_error("warning: the %s store holds fewer memories than the %s store; were "
                          "memories added while copying? run the same command again",
                          o->to, o->from);
    }
    cJSON_Delete(items);
    return rc;
}

static int memcli_reembed(const struct config *cfg, const struct cli_opts *o)
{
    struct mc_memory_job job = {.op = MC_MEM_REEMBED, .force = o->force};
    cJSON *items = NULL;
    int rc = memcli_run_move(cfg, &job, o, &items);
    const cJSON *it = cJSON_GetArrayItem(items, 0);
    if (rc == MC_EXIT_OK && o->json) {
        cli_print_items(items);
    } else if (rc == MC_EXIT_OK && mc_json_bool(it, "nothing_to_do", false)) {
        printf("tenant %s: its %.0f memories are already embedded with %s; nothing to do "
               "(--force embeds them again)\n",
               job.tenant, mc_json_num(it, "target_count", 0), mc_json_str(it, "to", ""));
    } else if (rc == MC_EXIT_OK) {
        char res[64];
        printf("tenant %s: re-embedded %.0f memories in the %s store, from %s to %s%s\n",
               job.tenant, mc_json_num(it, "done", 0), mc_json_str(it, "store", ""),
               mc_json_str(it, "from", ""), mc_json_str(it, "to", ""),
               memcli_resumed(it, res, sizeof res));
    }
    cJSON_Delete(items);
    return rc;
}

/* After an import: a namespace now above the threshold gets its graph
 * (and a file that lagged is brought up to date) while the user still
 * waits on the command, not on their next turn. A failure only warns:
 * the memories are stored, and queries scan until the graph exists. */
static void memcli_index_after_import(struct session *s, const char *tenant)
{
    struct mc_memory_job job = {.op = MC_MEM_INDEX, .tenant = tenant};
    cJSON *items = NULL;
    if (cli_memory_job(s, &job, &items) != MC_EXIT_OK) {
        session_error("memory import: the memories are stored, but the index was not built; "
                      "run memchat memory index --tenant %s",
                      tenant);
        return;
    }
    const cJSON *it = cJSON_GetArrayItem(items, 0);
    if (mc_json_bool(it, "built", false))
        fprintf(stderr, "memchat: built the HNSW index of tenant %s (%.0f memories)\n", tenant,
                mc_json_num(it, "count", 0));
    cJSON_Delete(items);
}

/* ---- the verb ---- */

static const struct {
    const char *name;
    int (*run)(const struct config *cfg, const struct cli_opts *o);
    unsigned opts; /* enum cli_opt_bit the action takes */
} memcli_actions[] = {
    {"add", memcli_add, CLI_OPT_JSON | CLI_OPT_IDS | CLI_OPT_META},
    {"search", memcli_search,
     CLI_OPT_JSON | CLI_OPT_TENANT | CLI_OPT_USER | CLI_OPT_K | CLI_OPT_METHOD | CLI_OPT_FILTER},
    {"forget", memcli_forget, CLI_OPT_JSON | CLI_OPT_IDS | CLI_OPT_ID | CLI_OPT_FILTER},
    {"stats", memcli_stats, CLI_OPT_JSON | CLI_OPT_TENANT},
    /* export always writes JSON lines: --json is accepted and changes nothing. */
    {"export", memcli_export, CLI_OPT_JSON | CLI_OPT_TENANT | CLI_OPT_USER | CLI_OPT_FILTER},
    {"import", memcli_import, CLI_OPT_JSON | CLI_OPT_TENANT},
    {"history", memcli_history, CLI_OPT_JSON | CLI_OPT_TENANT | CLI_OPT_LIMIT},
    {"index", memcli_index, CLI_OPT_JSON | CLI_OPT_TENANT | CLI_OPT_REBUILD},
    {"migrate", memcli_migrate,
     CLI_OPT_JSON | CLI_OPT_TENANT | CLI_OPT_FROM | CLI_OPT_TO | CLI_OPT_BATCH | CLI_OPT_RESTART},
    {"reembed", memcli_reembed, CLI_OPT_JSON | CLI_OPT_TENANT | CLI_OPT_BATCH | CLI_OPT_FORCE},
};

int cmd_memory(const struct config *cfg, const struct cli_opts *o)
{
    size_t n = sizeof memcli_actions / sizeof memcli_actions[0];
    const char *what = o->n_args > 0 ? o->args[0] : NULL;
    for (size_t i = 0; what != NULL && i < n; i++) {
        if (strcmp(what, memcli_actions[i].name) != 0)
            continue;
        char name[32];
        snprintf(name, sizeof name, "memory %s", what);
        int rc = cli_refuse_opts(name, memcli_actions[i].opts, o->seen);
        return rc != MC_EXIT_OK ? rc : memcli_actions[i].run(cfg, o);
    }
    if (what == NULL)
        session_error("memory: which action? (add, search, forget, stats, export, import, "
                      "history, index, migrate, reembed; see memchat memory --help)");
    else
        session_error("memory: unknown action '%s' (accepted: add, search, forget, stats, "
                      "export, import, history, index, migrate, reembed)",
                      what);
    return MC_EXIT_USAGE;
}

/* ---- purge ---- */

/* Asks on the terminal whether to purge; true for y or yes. */
static bool memcli_confirm(const char *tenant, const char *user)
{
    fprintf(stderr,
            "memchat: purge every memory, conversation, memory history entry, pending store, "
            "trace and cached reply of tenant %s%s%s? This cannot be undone. [y/N] ",
            tenant, user != NULL ? ", user " : "", user != NULL ? user : "");
    fflush(stderr);
    char answer[16];
    size_t n = 0;
    for (;;) {
        char c;
        ssize_t r = read(STDIN_FILENO, &c, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || c == '\n')
            break;
        if (n + 1 < sizeof answer)
            answer[n++] = c;
    }
    answer[n] = '\0';
    return strcasecmp(answer, "y") == 0 || strcasecmp(answer, "yes") == 0;
}

int cmd_purge(const struct config *cfg, const struct cli_opts *o)
{
    if (o->n_args > 0) {
        session_error("purge takes no arguments (got '%s'; use --tenant T [--user U])", o->args[0]);
        return MC_EXIT_USAGE;
    }
    /* Never the configured default: a purge names its tenant. */
    if (config_origin(cfg, CFG_MEMCHAT_TENANT) != CFG_FROM_FLAG) {
        session_error("purge: say which tenant with --tenant T (purge never takes the "
                      "configured default)");
        return MC_EXIT_USAGE;
    }
    const char *tenant = config_str(cfg, CFG_MEMCHAT_TENANT);
    const char *user = memcli_flag_user(cfg);
    if (!o->yes && !isatty(STDIN_FILENO)) {
        session_error("purge: standard input is not a terminal, so nobody can confirm; add --yes "
                      "to purge tenant %s%s%s without asking",
                      tenant, user != NULL ? ", user " : "", user != NULL ? user : "");
        return MC_EXIT_USAGE;
    }
    if (!o->yes && !memcli_confirm(tenant, user)) {
        session_error("purge: not confirmed; nothing was removed");
        return MC_EXIT_CANCELLED;
    }
    struct mc_memory_job job = {.op = MC_PURGE, .tenant = tenant, .user = user};
    cJSON *items = NULL;
    int rc = memcli_run(cfg, &job, &items);
    if (rc == MC_EXIT_OK && o->json) {
        cli_print_items(items);
    } else if (rc == MC_EXIT_OK) {
        static const struct {
            const char *field, *one, *many;
        } parts[] = {
            {"memories", "memory", "memories"},
            {"conversations", "conversation", "conversations"},
            {"history", "history entry", "history entries"},
            {"pending", "pending store", "pending stores"},
            {"traces", "trace", "traces"},
            {"cache", "cache entry", "cache entries"},
        };
        const cJSON *it = cJSON_GetArrayItem(items, 0);
        printf("purged tenant %s%s%s:", tenant, user != NULL ? ", user " : "",
               user != NULL ? user : "");
        const char *sep = "";
        for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
            double v = memcli_num(it, parts[i].field, -1);
            if (v < 0)
                continue; /* a part this engine does not count separately */
            printf("%s %.0f %s", sep, v, v == 1 ? parts[i].one : parts[i].many);
            sep = ",";
        }
        putchar('\n');
    }
    cJSON_Delete(items);
    return rc;
}
