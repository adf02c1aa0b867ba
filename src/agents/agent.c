/*
 * The agent registry (agent.h): reads the agent files of the share dir and
 * of the config dir, checks every field, and keeps the agents that pass,
 * sorted by name. A bad file never stops the others: its one problem
 * becomes one warning line and the file is skipped. Reading is free of side
 * effects, so front ends may load the registry without starting the engine.
 *
 * The agent file format
 * ---------------------
 * One JSON object, UTF-8, at most 1 MiB, in a file whose name ends in
 * ".json" (names starting with "." are skipped). Fields:
 *
 *   name           required. The agent's id: 1 to 64 of A-Z a-z 0-9 _ -.
 *   description    one line of text, at most 1024 bytes (default "").
 *   system_prompt  required. Non-empty text, at most 64 KiB.
 *   provider       auto, offline, openai, anthropic or ollama: overrides
 *                  MEMCHAT_PROVIDER for this agent's turns.
 *   model          one line, 1 to 200 bytes: overrides MEMCHAT_MODEL.
 *   temperature    a number from 0 to 2.
 *   max_tokens     an integer from 1 to 1000000: the reply's token limit.
 *   memory         true or false (default true). false turns memory off for
 *                  the agent's turns (rule 2 of "Is memory on for this
 *                  turn?": only --no-memory or /memory is stronger).
 *   k              an integer from 1 to 100: memories recalled per turn
 *                  (default MEMORY_RETRIEVAL_K).
 *   memory_scope   "tenant" (the whole tenant's memories), "user" (only the
 *                  user's own) or "agent" (only what this agent stored);
 *                  absent: MEMORY_SCOPE decides.
 *   format         "text" or "json" (default text): what the reply must be.
 *   tools          an array of tool names the agent may call (at most 100).
 *                  Known now: memory_search, time_now; any other name is a
 *                  warning and is ignored (the agent still loads).
 *   steps          an array of 1 to 8 step objects; the agent then runs
 *                  each step as its own turn, in order, each with memory:
 *                    name    required, an id like the agent's, unique
 *                            among the agent's steps;
 *                    prompt  required, non-empty text, at most 64 KiB: the
 *                            step's instruction, added to system_prompt;
 *                    format  "text" or "json" (default text). A json step's
 *                            reply is minified before it is handed on.
 *
 * An optional field given as null is the same as leaving it out. Keys
 * starting with "_" are comments and are skipped. Any other unknown key is
 * a warning naming it ("unknown field 'temprature' ignored (did you mean
 * 'temperature'?)"); the agent still loads. A file is skipped, with one
 * warning "PATH: field F: what is wrong (what is accepted)", when it is not
 * valid JSON (the message gives the line and column), not valid UTF-8, not
 * an object, larger than 1 MiB or not a regular file, or when a required
 * field is missing, a field is given twice, has the wrong type or is out of
 * range.
 *
 * Where agents come from: the shipped ones from the share dir's agents/
 * (MEMCHAT_SHARE_DIR, else $(pkgdatadir)/agents when it exists, else
 * share/agents of the source tree), then the user's own from the config
 * dir's agents/. Files are read in byte order of their names. A user agent
 * with the name of a shipped one replaces it (`memchat agents --json` shows
 * "source": "user", "overrides": true). Within one directory, a second file
 * defining a name already seen is skipped with a warning. When no file
 * defines "assistant", a built-in one is added (source "builtin").
 */
#include "config.h"

#include "agents/agent.h"

#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/alloc.h"
#include "util/buf.h"
#include "util/fileio.h"
#include "util/ident.h"
#include "util/paths.h"
#include "util/utf8.h"

#define AGENT_MAX_FILE      (1024 * 1024)
#define AGENT_MAX_PROMPT    (64 * 1024)
#define AGENT_MAX_DESC      1024
#define AGENT_MAX_MODEL     200
#define AGENT_MAX_TOOLS     100
#define AGENT_MAX_TOOL_NAME 64
#define AGENT_MAX_K         100
#define AGENT_MAX_TOKENS    1000000
#define AGENT_MAX_TEMP      2.0
/* Keys in one object: far more than the format has, few enough that the
 * check for repeated keys (quadratic) stays instant. */
#define AGENT_MAX_KEYS 256
/* A directory holding more agent files than this is a mistake; the first
 * ones by name are read. */
#define AGENTS_MAX_FILES 1000
/* Warning lines kept per load and per file: a file of 10,000 unknown keys
 * must not produce 10,000 lines. */
#define AGENTS_MAX_WARNINGS 200
#define AGENT_FILE_WARNINGS 10
#define AGENT_LINE_MAX      6144 /* one warning line, path included */
#define AGENT_CLIP          64   /* bytes of an untrusted key or name quoted */

static const char BUILTIN_PROMPT[] =
    "You are memchat's assistant: a helpful, honest assistant that answers clearly and "
    "remembers what the user told it in past conversations.";

static const char *const KNOWN_TOOLS[] = {"memory_search", "time_now", NULL};
static const char *const PROVIDERS[] = {"auto", "offline", "openai", "anthropic", "ollama", NULL};
/* In the order of enum agent_scope after AGENT_SCOPE_DEFAULT. */
static const char *const SCOPES[] = {"tenant", "user", "agent", NULL};
/* In the order of enum agent_format. */
static const char *const FORMATS[] = {"text", "json", NULL};
static const char *const TOP_KEYS[] = {
    "name",   "description", "system_prompt", "provider", "model", "temperature", "max_tokens",
    "memory", "k",           "memory_scope",  "format",   "tools", "steps",       NULL};
static const char *const STEP_KEYS[] = {"name", "prompt", "format", NULL};

struct agents {
    struct agent *v; /* sorted by name once loaded */
    size_t n;
    size_t cap;
};

/* Warning lines joined by '\n', at most max_lines of them. */
struct warnlist {
    struct buf text;
    size_t lines;
    size_t max_lines;
    size_t dropped; /* lines past max_lines */
};

/* One file being parsed: its path, its first error and its warnings (kept
 * only if the file loads). */
struct agent_parse {
    const char *path;
    char err[AGENT_LINE_MAX];
    struct warnlist warn;
};

static void warnlist_init(struct warnlist *w, size_t max_lines)
{
    buf_init(&w->text, (max_lines + 2) * (AGENT_LINE_MAX + 1));
    w->lines = 0;
    w->max_lines = max_lines;
    w->dropped = 0;
}

/* Appends one line. Control characters become '?', so a line stays one
 * line whatever a file name or a key held; the reader sanitises the rest
 * for its terminal. */
static void warnlist_put(struct warnlist *w, const char *line, bool over_cap)
{
    if (w->lines >= w->max_lines && !over_cap) {
        w->dropped++;
        return;
    }
    char clean[AGENT_LINE_MAX];
    size_t n = strlen(line);
    if (n >= sizeof clean)
        n = sizeof clean - 1;
    n -= utf8_incomplete_tail(line, n);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)line[i];
        clean[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    clean[n] = '\0';
    if (w->lines > 0)
        (void)buf_putc(&w->text, '\n');
    (void)buf_puts(&w->text, clean);
    w->lines++;
}

static void warnlist_printf(struct warnlist *w, const char *fmt, ...) MC_PRINTF(2, 3);
static void warnlist_printf(struct warnlist *w, const char *fmt, ...)
{
    char line[AGENT_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    warnlist_put(w, line, false);
}

/* The lines (caller frees with xfree), or NULL when there are none; w is
 * left empty. */
static char *warnlist_take(struct warnlist *w)
{
    if (w->dropped > 0) {
        char line[128];
        snprintf(line, sizeof line, "(%zu more warnings not shown)", w->dropped);
        warnlist_put(w, line, true);
    }
    if (w->lines == 0) {
        buf_free(&w->text);
        return NULL;
    }
    return buf_take(&w->text);
}

/* s cut to AGENT_CLIP bytes of whole characters, with "…" when cut. For
 * quoting keys and names from a file in a message. */
static const char *agent_clip(const char *s, char out[AGENT_CLIP + 4])
{
    size_t n = strlen(s);
    size_t keep = utf8_truncate(s, n, AGENT_CLIP);
    memcpy(out, s, keep);
    if (keep < n)
        memcpy(out + keep, "\xe2\x80\xa6", 3);
    out[keep < n ? keep + 3 : keep] = '\0';
    return out;
}

static int agent_fail(struct agent_parse *p, const char *field, const char *fmt, ...)
    MC_PRINTF(3, 4);
/* Records the file's error (the file is skipped); returns -1. */
static int agent_fail(struct agent_parse *p, const char *field, const char *fmt, ...)
{
    char msg[AGENT_LINE_MAX / 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (field != NULL)
        snprintf(p->err, sizeof p->err, "%s: field %s: %s", p->path, field, msg);
    else
        snprintf(p->err, sizeof p->err, "%s: %s", p->path, msg);
    return -1;
}

static void agent_warn(struct agent_parse *p, const char *fmt, ...) MC_PRINTF(2, 3);
/* Records a warning about the file (it still loads). */
static void agent_warn(struct agent_parse *p, const char *fmt, ...)
{
    char msg[AGENT_LINE_MAX / 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    warnlist_printf(&p->warn, "%s: %s", p->path, msg);
}

/* What a JSON value is, for "is a number; expected ..." messages. */
static const char *agent_json_kind(const cJSON *it)
{
    if (cJSON_IsString(it))
        return "a string";
    if (cJSON_IsNumber(it))
        return "a number";
    if (cJSON_IsBool(it))
        return "a boolean";
    if (cJSON_IsNull(it))
        return "null";
    if (cJSON_IsArray(it))
        return "an array";
    if (cJSON_IsObject(it))
        return "an object";
    return "not a JSON value";
}

/* choices joined by ", " into out. */
static const char *agent_join(const char *const *choices, char *out, size_t outlen)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; choices[i] != NULL && used < outlen; i++) {
        int n = snprintf(out + used, outlen - used, "%s%s", i > 0 ? ", " : "", choices[i]);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    return out;
}

static bool agent_in(const char *const *list, const char *s)
{
    for (size_t i = 0; list[i] != NULL; i++)
        if (strcmp(list[i], s) == 0)
            return true;
    return false;
}

/* Edit distance counting a swap of two neighbours as one edit (optimal
 * string alignment), or SIZE_MAX for strings too long to be a typo of a
 * field name. */
static size_t agent_edit_distance(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    if (na > 32 || nb > 32)
        return SIZE_MAX;
    size_t d[33][33];
    for (size_t i = 0; i <= na; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= nb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= na; i++) {
        for (size_t j = 1; j <= nb; j++) {
            size_t best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[na][nb];
}

/* Warns about an unknown key, suggesting the closest known one when it is
 * a likely typo. prefix names the object ("" or "steps[1]."). */
static void agent_warn_unknown(struct agent_parse *p, const char *prefix, const char *key,
                               const char *const *known)
{
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    for (size_t i = 0; known[i] != NULL; i++) {
        size_t d = agent_edit_distance(key, known[i]);
        if (d < best_d) {
            best_d = d;
            best = known[i];
        }
    }
    char clip[AGENT_CLIP + 4];
    agent_clip(key, clip);
    if (best != NULL && best_d <= 2 && best_d < strlen(best))
        agent_warn(p, "unknown field '%s%s' ignored (did you mean '%s%s'?)", prefix, clip, prefix,
                   best);
    else
        agent_warn(p, "unknown field '%s%s' ignored", prefix, clip);
}

/* True when an earlier sibling of item has the same key: cJSON keeps both,
 * and a lookup would silently see only the first. */
static bool agent_key_seen_before(const cJSON *parent, const cJSON *item)
{
    for (const cJSON *s = parent->child; s != NULL && s != item; s = s->next)
        if (s->string != NULL && strcmp(s->string, item->string) == 0)
            return true;
    return false;
}

/* Checks obj's keys: a key given twice is an error, an unknown one (not a
 * "_" comment) a warning. prefix names obj in messages. */
static int agent_check_keys(struct agent_parse *p, const cJSON *obj, const char *prefix,
                            const char *const *known)
{
    int n = cJSON_GetArraySize(obj);
    if (n > AGENT_MAX_KEYS) {
        char field[32];
        snprintf(field, sizeof field, "%.*s", prefix[0] != '\0' ? (int)strlen(prefix) - 1 : 0,
                 prefix);
        return agent_fail(p, prefix[0] != '\0' ? field : NULL,
                          "has %d fields; an object of an agent file has at most %d", n,
                          AGENT_MAX_KEYS);
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, obj)
    {
        if (it->string == NULL)
            continue;
        char clip[AGENT_CLIP + 4];
        if (agent_key_seen_before(obj, it)) {
            char field[AGENT_CLIP + 64];
            snprintf(field, sizeof field, "%s%s", prefix, agent_clip(it->string, clip));
            return agent_fail(p, field, "given twice (each field may appear once)");
        }
        if (it->string[0] != '_' && !agent_in(known, it->string))
            agent_warn_unknown(p, prefix, it->string, known);
    }
    return 0;
}

enum { STR_NONEMPTY = 1 << 0, STR_ONE_LINE = 1 << 1 };

/* A string field into *out (xstrdup), checked against max bytes and flags. */
static int agent_string(struct agent_parse *p, const char *field, const cJSON *it, size_t max,
                        unsigned flags, char **out)
{
    char want[128];
    snprintf(want, sizeof want, "%s%s of at most %zu bytes",
             (flags & STR_NONEMPTY) != 0 ? "non-empty " : "",
             (flags & STR_ONE_LINE) != 0 ? "one line of text" : "text", max);
    if (!cJSON_IsString(it) || it->valuestring == NULL)
        return agent_fail(p, field, "is %s; expected a string: %s", agent_json_kind(it), want);
    const char *s = it->valuestring;
    size_t n = strlen(s);
    if (n > max)
        return agent_fail(p, field, "is %zu bytes long; expected %s", n, want);
    if ((flags & STR_NONEMPTY) != 0 && strspn(s, " \t\r\n") == n)
        return agent_fail(p, field, "is empty; expected %s", want);
    if ((flags & STR_ONE_LINE) != 0)
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
                return agent_fail(p, field, "holds a line break or control character; expected %s",
                                  want);
    *out = xstrdup(s);
    return 0;
}

/* One of choices; its index into *out. */
static int agent_choice(struct agent_parse *p, const char *field, const cJSON *it,
                        const char *const *choices, int *out)
{
    char list[256];
    agent_join(choices, list, sizeof list);
    if (!cJSON_IsString(it) || it->valuestring == NULL)
        return agent_fail(p, field, "is %s; expected one of: %s", agent_json_kind(it), list);
    for (int i = 0; choices[i] != NULL; i++) {
        if (strcmp(choices[i], it->valuestring) == 0) {
            *out = i;
            return 0;
        }
    }
    char clip[AGENT_CLIP + 4];
    return agent_fail(p, field, "'%s' is not accepted (accepted: %s)",
                      agent_clip(it->valuestring, clip), list);
}

/* A number in [min, max]; a whole one when integer. */
static int agent_number(struct agent_parse *p, const char *field, const cJSON *it, double min,
                        double max, bool integer, double *out)
{
    char want[96];
    snprintf(want, sizeof want, "%s from %.15g to %.15g", integer ? "an integer" : "a number", min,
             max);
    if (!cJSON_IsNumber(it))
        return agent_fail(p, field, "is %s; expected %s", agent_json_kind(it), want);
    double v = it->valuedouble;
    if (!(v >= min && v <= max))
        return agent_fail(p, field, "%.15g is out of range (expected %s)", v, want);
    if (integer && (double)(long long)v != v)
        return agent_fail(p, field, "%.15g is not a whole number (expected %s)", v, want);
    *out = v;
    return 0;
}

static int agent_bool(struct agent_parse *p, const char *field, const cJSON *it, bool *out)
{
    if (!cJSON_IsBool(it))
        return agent_fail(p, field, "is %s; expected true or false", agent_json_kind(it));
    *out = cJSON_IsTrue(it);
    return 0;
}

/* "name": present, a string, a valid id. */
static int agent_ident(struct agent_parse *p, const char *field, const cJSON *it, const char *what,
                       char **out)
{
    if (it == NULL)
        return agent_fail(p, field, "missing (%s)", what);
    if (!cJSON_IsString(it) || it->valuestring == NULL)
        return agent_fail(p, field, "is %s; expected a name of 1 to %d of A-Z a-z 0-9 _ -",
                          agent_json_kind(it), IDENT_MAX);
    if (!ident_valid(it->valuestring)) {
        char clip[AGENT_CLIP + 4];
        return agent_fail(p, field,
                          "'%s' is not a valid name (accepted: 1 to %d of A-Z a-z 0-9 _ -)",
                          agent_clip(it->valuestring, clip), IDENT_MAX);
    }
    *out = xstrdup(it->valuestring);
    return 0;
}

/* The field called key of obj; NULL when absent or null (an optional field
 * given as null is left out). */
static const cJSON *agent_opt(const cJSON *obj, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNull(it) ? NULL : it;
}

static int agent_parse_tools(struct agent_parse *p, const cJSON *arr, struct agent *a)
{
    char known[128];
    agent_join(KNOWN_TOOLS, known, sizeof known);
    if (!cJSON_IsArray(arr))
        return agent_fail(p, "tools", "is %s; expected an array of tool names (known: %s)",
                          agent_json_kind(arr), known);
    int n = cJSON_GetArraySize(arr);
    if (n > AGENT_MAX_TOOLS)
        return agent_fail(p, "tools", "has %d names; expected at most %d", n, AGENT_MAX_TOOLS);
    a->tools = xcalloc((size_t)n + 1, sizeof *a->tools);
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        char field[32];
        snprintf(field, sizeof field, "tools[%d]", i++);
        char *name = NULL;
        if (agent_string(p, field, it, AGENT_MAX_TOOL_NAME, STR_NONEMPTY | STR_ONE_LINE, &name) !=
            0)
            return -1;
        char clip[AGENT_CLIP + 4];
        bool dup = false;
        for (size_t j = 0; j < a->n_tools && !dup; j++)
            dup = strcmp(a->tools[j], name) == 0;
        if (!agent_in(KNOWN_TOOLS, name)) {
            agent_warn(p, "field %s: unknown tool '%s' ignored (known now: %s)", field,
                       agent_clip(name, clip), known);
            xfree(name);
        } else if (dup) {
            agent_warn(p, "field %s: tool '%s' given twice (listed once)", field, name);
            xfree(name);
        } else {
            a->tools[a->n_tools++] = name;
        }
    }
    return 0;
}

static int agent_parse_step(struct agent_parse *p, const cJSON *st, size_t i, struct agent *a)
{
    char prefix[32], field[64];
    snprintf(prefix, sizeof prefix, "steps[%zu].", i);
    snprintf(field, sizeof field, "steps[%zu]", i);
    if (!cJSON_IsObject(st))
        return agent_fail(p, field,
                          "is %s; expected an object {\"name\": ..., \"prompt\": ..., \"format\": "
                          "\"text\"|\"json\"}",
                          agent_json_kind(st));
    if (agent_check_keys(p, st, prefix, STEP_KEYS) != 0)
        return -1;
    /* Counted before it is filled, so agent_clear frees a half-read step. */
    struct agent_step *s = &a->steps[a->n_steps++];
    snprintf(field, sizeof field, "steps[%zu].name", i);
    if (agent_ident(p, field, cJSON_GetObjectItemCaseSensitive(st, "name"),
                    "every step needs \"name\" and \"prompt\"", &s->name) != 0)
        return -1;
    for (size_t j = 0; j + 1 < a->n_steps; j++)
        if (strcmp(a->steps[j].name, s->name) == 0)
            return agent_fail(p, field,
                              "'%s' is also the name of steps[%zu] (step names are unique)",
                              s->name, j);
    snprintf(field, sizeof field, "steps[%zu].prompt", i);
    const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(st, "prompt");
    if (prompt == NULL)
        return agent_fail(p, field, "missing (every step needs \"name\" and \"prompt\")");
    if (agent_string(p, field, prompt, AGENT_MAX_PROMPT, STR_NONEMPTY, &s->prompt) != 0)
        return -1;
    const cJSON *fmt = agent_opt(st, "format");
    int f = AGENT_FORMAT_TEXT;
    snprintf(field, sizeof field, "steps[%zu].format", i);
    if (fmt != NULL && agent_choice(p, field, fmt, FORMATS, &f) != 0)
        return -1;
    s->format = (enum agent_format)f;
    return 0;
}

static int agent_parse_steps(struct agent_parse *p, const cJSON *arr, struct agent *a)
{
    if (!cJSON_IsArray(arr))
        return agent_fail(p, "steps", "is %s; expected an array of 1 to %d step objects",
                          agent_json_kind(arr), AGENT_MAX_STEPS);
    int n = cJSON_GetArraySize(arr);
    if (n < 1 || n > AGENT_MAX_STEPS)
        return agent_fail(p, "steps", "has %d steps; expected 1 to %d", n, AGENT_MAX_STEPS);
    a->steps = xcalloc((size_t)n, sizeof *a->steps);
    size_t i = 0;
    const cJSON *st;
    cJSON_ArrayForEach(st, arr)
    {
        if (agent_parse_step(p, st, i++, a) != 0)
            return -1;
    }
    return 0;
}

/* The optional scalar fields: provider, model, temperature, max_tokens,
 * memory, k, memory_scope, format. */
static int agent_parse_options(struct agent_parse *p, const cJSON *root, struct agent *a)
{
    const cJSON *it;
    int choice;
    double v;
    if ((it = agent_opt(root, "provider")) != NULL) {
        if (agent_choice(p, "provider", it, PROVIDERS, &choice) != 0)
            return -1;
        a->provider = xstrdup(PROVIDERS[choice]);
    }
    if ((it = agent_opt(root, "model")) != NULL &&
        agent_string(p, "model", it, AGENT_MAX_MODEL, STR_NONEMPTY | STR_ONE_LINE, &a->model) != 0)
        return -1;
    if ((it = agent_opt(root, "temperature")) != NULL) {
        if (agent_number(p, "temperature", it, 0, AGENT_MAX_TEMP, false, &v) != 0)
            return -1;
        a->temperature = v;
    }
    if ((it = agent_opt(root, "max_tokens")) != NULL) {
        if (agent_number(p, "max_tokens", it, 1, AGENT_MAX_TOKENS, true, &v) != 0)
            return -1;
        a->max_tokens = (long long)v;
    }
    if ((it = agent_opt(root, "memory")) != NULL && agent_bool(p, "memory", it, &a->memory) != 0)
        return -1;
    if ((it = agent_opt(root, "k")) != NULL) {
        if (agent_number(p, "k", it, 1, AGENT_MAX_K, true, &v) != 0)
            return -1;
        a->k = (int)v;
    }
    if ((it = agent_opt(root, "memory_scope")) != NULL) {
        if (agent_choice(p, "memory_scope", it, SCOPES, &choice) != 0)
            return -1;
        a->scope = (enum agent_scope)(AGENT_SCOPE_TENANT + choice);
    }
    if ((it = agent_opt(root, "format")) != NULL) {
        if (agent_choice(p, "format", it, FORMATS, &choice) != 0)
            return -1;
        a->format = (enum agent_format)choice;
    }
    return 0;
}

/* Fills a from the parsed root object. */
static int agent_parse_json(struct agent_parse *p, const cJSON *root, struct agent *a)
{
    if (!cJSON_IsObject(root))
        return agent_fail(p, NULL,
                          "is %s, not a JSON object (an agent file is one object: {\"name\": ..., "
                          "\"system_prompt\": ...})",
                          agent_json_kind(root));
    if (agent_check_keys(p, root, "", TOP_KEYS) != 0)
        return -1;
    static const char required[] = "every agent file needs \"name\" and \"system_prompt\"";
    if (agent_ident(p, "name", cJSON_GetObjectItemCaseSensitive(root, "name"), required,
                    &a->name) != 0)
        return -1;
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, "system_prompt");
    if (it == NULL)
        return agent_fail(p, "system_prompt", "missing (%s)", required);
    if (agent_string(p, "system_prompt", it, AGENT_MAX_PROMPT, STR_NONEMPTY, &a->system_prompt) !=
        0)
        return -1;
    if ((it = agent_opt(root, "description")) != NULL &&
        agent_string(p, "description", it, AGENT_MAX_DESC, STR_ONE_LINE, &a->description) != 0)
        return -1;
    if (a->description == NULL)
        a->description = xstrdup("");
    if (agent_parse_options(p, root, a) != 0)
        return -1;
    if ((it = agent_opt(root, "tools")) != NULL && agent_parse_tools(p, it, a) != 0)
        return -1;
    if ((it = agent_opt(root, "steps")) != NULL && agent_parse_steps(p, it, a) != 0)
        return -1;
    return 0;
}

/* The line and column (1-based; columns count characters) of text[off]. */
static void agent_line_col(const char *text, size_t off, size_t *line, size_t *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && text[i] != '\0'; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '\n') {
            (*line)++;
            *col = 1;
        } else if ((c & 0xc0) != 0x80) {
            (*col)++;
        }
    }
}

/* Reads and parses the file p->path into a. */
static int agent_parse_file(struct agent_parse *p, struct agent *a)
{
    /* Checked before opening: opening a FIFO would block the front end. */
    struct stat st;
    if (stat(p->path, &st) != 0)
        return agent_fail(p, NULL, "cannot read: %s", strerror(errno));
    if (!S_ISREG(st.st_mode))
        return agent_fail(p, NULL, "not a regular file (an agent is a JSON file)");
    if (st.st_size > AGENT_MAX_FILE)
        return agent_fail(p, NULL, "is %lld bytes; an agent file is at most 1 MiB (%d bytes)",
                          (long long)st.st_size, AGENT_MAX_FILE);
    char *text = NULL;
    size_t len = 0;
    char ferr[AGENT_LINE_MAX / 2];
    if (fileio_read_all(p->path, AGENT_MAX_FILE, &text, &len, ferr, sizeof ferr) != 0) {
        snprintf(p->err, sizeof p->err, "%s", ferr);
        return -1;
    }
    int rc = -1;
    size_t line, col;
    size_t bad = 0;
    cJSON *root = NULL;
    if (strlen(text) != len) {
        agent_line_col(text, strlen(text), &line, &col);
        agent_fail(p, NULL, "line %zu, column %zu: a NUL byte (an agent file is JSON text)", line,
                   col);
        goto out;
    }
    if (!utf8_valid(text, len, &bad)) {
        agent_line_col(text, bad, &line, &col);
        agent_fail(p, NULL, "line %zu, column %zu: invalid UTF-8 (an agent file is UTF-8 text)",
                   line, col);
        goto out;
    }
    /* A byte-order mark is not JSON, but editors write one. */
    size_t skip = len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
    /* With require_null_terminated, cJSON looks for the NUL inside the
     * length it is given; fileio_read_all put one at text[len]. */
    const char *end = NULL;
    root = cJSON_ParseWithLengthOpts(text + skip, len - skip + 1, &end, 1);
    if (root == NULL) {
        const char *json = text + skip;
        size_t off = end != NULL && end >= json ? (size_t)(end - json) : 0;
        agent_line_col(json, off, &line, &col);
        agent_fail(p, NULL, "line %zu, column %zu: invalid JSON", line, col);
        goto out;
    }
    rc = agent_parse_json(p, root, a);
out:
    cJSON_Delete(root);
    xfree(text);
    return rc;
}

static void agent_init(struct agent *a)
{
    memset(a, 0, sizeof *a);
    a->temperature = NAN;
    a->memory = true;
    a->scope = AGENT_SCOPE_DEFAULT;
    a->format = AGENT_FORMAT_TEXT;
}

/* Frees what a owns and leaves it zeroed. */
static void agent_clear(struct agent *a)
{
    xfree(a->name);
    xfree(a->description);
    xfree(a->system_prompt);
    xfree(a->provider);
    xfree(a->model);
    for (size_t i = 0; i < a->n_tools; i++)
        xfree(a->tools[i]);
    xfree(a->tools);
    for (size_t i = 0; i < a->n_steps; i++) {
        xfree(a->steps[i].name);
        xfree(a->steps[i].prompt);
    }
    xfree(a->steps);
    xfree(a->path);
    memset(a, 0, sizeof *a);
}

static struct agent *agents_lookup(struct agents *r, const char *name)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->v[i].name, name) == 0)
            return &r->v[i];
    return NULL;
}

/* A new slot at the end of r (uninitialised). */
static struct agent *agents_push(struct agents *r)
{
    if (r->n == r->cap) {
        r->cap = r->cap == 0 ? 8 : r->cap * 2;
        r->v = xreallocarray(r->v, r->cap, sizeof *r->v);
    }
    return &r->v[r->n++];
}

static int agents_name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.json names in dir (not starting with "."), sorted bytewise, into
 * *names (caller frees each and the array). 0; 1 when dir does not exist;
 * -1 with err when it cannot be read. */
static int agents_list_dir(const char *dir, char ***names, size_t *n, char *err, size_t errlen)
{
    *names = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (d == NULL) {
        if (errno == ENOENT)
            return 1;
        snprintf(err, errlen, "cannot read the agents directory %s: %s", dir, strerror(errno));
        return -1;
    }
    size_t cap = 0;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (de->d_name[0] == '.' || len <= 5 || strcmp(de->d_name + len - 5, ".json") != 0)
            continue;
        if (*n == cap) {
            cap = cap == 0 ? 16 : cap * 2;
            *names = xreallocarray(*names, cap, sizeof **names);
        }
        (*names)[(*n)++] = xstrdup(de->d_name);
        errno = 0;
    }
    int saved = errno;
    closedir(d);
    if (saved != 0) {
        snprintf(err, errlen, "cannot read the agents directory %s: %s", dir, strerror(saved));
        for (size_t i = 0; i < *n; i++)
            xfree((*names)[i]);
        xfree(*names);
        *names = NULL;
        *n = 0;
        return -1;
    }
    if (*n > 1)
        qsort(*names, *n, sizeof **names, agents_name_cmp);
    return 0;
}

/* Adds the agent parsed from p (file warnings included) to r, unless dir
 * already gave its name. */
static void agents_add(struct agents *r, struct agent *a, enum agent_source src,
                       struct agent_parse *p, struct warnlist *w)
{
    a->source = src;
    a->shipped = src != AGENT_SOURCE_USER;
    a->path = xstrdup(p->path);
    struct agent *old = agents_lookup(r, a->name);
    if (old != NULL && old->source == src) {
        warnlist_printf(w,
                        "%s: field name: agent '%s' is already defined by %s; this file is "
                        "skipped (agent names are unique in a directory)",
                        p->path, a->name, old->path);
        agent_clear(a);
        return;
    }
    /* The file's warnings count only for an agent that is kept. */
    const char *lines = buf_cstr(&p->warn.text);
    while (p->warn.lines > 0 && *lines != '\0') {
        const char *nl = strchr(lines, '\n');
        size_t n = nl != NULL ? (size_t)(nl - lines) : strlen(lines);
        char line[AGENT_LINE_MAX];
        snprintf(line, sizeof line, "%.*s", (int)n, lines);
        warnlist_put(w, line, false);
        lines += n + (nl != NULL);
    }
    if (p->warn.dropped > 0)
        warnlist_printf(w, "%s: %zu more warnings about this file not shown", p->path,
                        p->warn.dropped);
    if (old != NULL) {
        /* A user file replacing a shipped agent: by design, not a warning. */
        agent_clear(old);
        *old = *a;
        old->overrides = true;
    } else {
        *agents_push(r) = *a;
    }
}

/* Loads every agent file of dir into r. 0, or -1 with err when dir exists
 * but cannot be read. */
static int agents_load_dir(struct agents *r, const char *dir, enum agent_source src,
                           struct warnlist *w, char *err, size_t errlen)
{
    char **names;
    size_t n;
    int rc = agents_list_dir(dir, &names, &n, err, errlen);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    if (n > AGENTS_MAX_FILES)
        warnlist_printf(w, "%s: %zu agent files; only the first %d by name are read", dir, n,
                        AGENTS_MAX_FILES);
    for (size_t i = 0; i < n; i++) {
        if (i < AGENTS_MAX_FILES) {
            char *path = paths_join(dir, names[i]);
            struct agent_parse *p = xmalloc(sizeof *p);
            p->path = path;
            p->err[0] = '\0';
            warnlist_init(&p->warn, AGENT_FILE_WARNINGS);
            struct agent a;
            agent_init(&a);
            if (agent_parse_file(p, &a) == 0) {
                agents_add(r, &a, src, p, w);
            } else {
                warnlist_put(w, p->err, false);
                agent_clear(&a);
            }
            buf_free(&p->warn.text);
            xfree(p);
            xfree(path);
        }
        xfree(names[i]);
    }
    xfree(names);
    return 0;
}

static void agents_add_builtin(struct agents *r)
{
    struct agent *a = agents_push(r);
    agent_init(a);
    a->name = xstrdup("assistant");
    a->description = xstrdup("The default assistant (built in: no assistant.json was found)");
    a->system_prompt = xstrdup(BUILTIN_PROMPT);
    a->path = xstrdup("(built-in)");
    a->source = AGENT_SOURCE_BUILTIN;
    a->shipped = true;
}

static int agents_cmp(const void *a, const void *b)
{
    return strcmp(((const struct agent *)a)->name, ((const struct agent *)b)->name);
}

struct agents *agents_load(const char *share_dir, const char *config_dir, char **warnings,
                           char *err, size_t errlen)
{
    *warnings = NULL;
    struct agents *r = xcalloc(1, sizeof *r);
    struct warnlist w;
    warnlist_init(&w, AGENTS_MAX_WARNINGS);
    char *dir = paths_shipped_dir(share_dir, "agents");
    int rc = agents_load_dir(r, dir, AGENT_SOURCE_SHIPPED, &w, err, errlen);
    xfree(dir);
    if (rc == 0 && config_dir != NULL && config_dir[0] != '\0') {
        dir = paths_join(config_dir, "agents");
        rc = agents_load_dir(r, dir, AGENT_SOURCE_USER, &w, err, errlen);
        xfree(dir);
    }
    if (rc != 0) {
        buf_free(&w.text);
        agents_free(r);
        return NULL;
    }
    if (agents_lookup(r, "assistant") == NULL)
        agents_add_builtin(r);
    qsort(r->v, r->n, sizeof *r->v, agents_cmp);
    *warnings = warnlist_take(&w);
    return r;
}

void agents_free(struct agents *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n; i++)
        agent_clear(&r->v[i]);
    xfree(r->v);
    xfree(r);
}

const struct agent *agents_find(const struct agents *r, const char *name)
{
    if (r == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->v[i].name, name) == 0)
            return &r->v[i];
    return NULL;
}

size_t agents_count(const struct agents *r)
{
    return r != NULL ? r->n : 0;
}

const struct agent *agents_at(const struct agents *r, size_t i)
{
    return r != NULL && i < r->n ? &r->v[i] : NULL;
}

/* Adds s under key, or null when s is NULL. */
static bool agent_json_str(cJSON *o, const char *key, const char *s)
{
    return (s != NULL ? cJSON_AddStringToObject(o, key, s) : cJSON_AddNullToObject(o, key)) != NULL;
}

static bool agent_json_steps(cJSON *o, const struct agent *a)
{
    cJSON *arr = cJSON_AddArrayToObject(o, "steps");
    if (arr == NULL)
        return false;
    for (size_t i = 0; i < a->n_steps; i++) {
        cJSON *s = cJSON_CreateObject();
        if (s == NULL || !cJSON_AddItemToArray(arr, s)) {
            cJSON_Delete(s);
            return false;
        }
        if (!agent_json_str(s, "name", a->steps[i].name) ||
            !agent_json_str(s, "prompt", a->steps[i].prompt) ||
            !agent_json_str(s, "format", agent_format_name(a->steps[i].format)))
            return false;
    }
    return true;
}

struct cJSON *agent_to_json(const struct agent *a)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    bool ok = agent_json_str(o, "name", a->name) &&
              agent_json_str(o, "description", a->description != NULL ? a->description : "") &&
              agent_json_str(o, "source", agent_source_name(a->source)) &&
              cJSON_AddBoolToObject(o, "overrides", a->overrides) != NULL &&
              agent_json_str(o, "path", a->source == AGENT_SOURCE_BUILTIN ? NULL : a->path) &&
              agent_json_str(o, "provider", a->provider) && agent_json_str(o, "model", a->model);
    ok = ok && (isnan(a->temperature)
                    ? cJSON_AddNullToObject(o, "temperature")
                    : cJSON_AddNumberToObject(o, "temperature", a->temperature)) != NULL;
    ok = ok && (a->max_tokens <= 0
                    ? cJSON_AddNullToObject(o, "max_tokens")
                    : cJSON_AddNumberToObject(o, "max_tokens", (double)a->max_tokens)) != NULL;
    ok = ok && cJSON_AddBoolToObject(o, "memory", a->memory) != NULL;
    ok = ok && (a->k <= 0 ? cJSON_AddNullToObject(o, "k")
                          : cJSON_AddNumberToObject(o, "k", (double)a->k)) != NULL;
    ok = ok && agent_json_str(o, "memory_scope", agent_scope_name(a->scope)) &&
         agent_json_str(o, "format", agent_format_name(a->format));
    cJSON *tools = ok ? cJSON_AddArrayToObject(o, "tools") : NULL;
    ok = ok && tools != NULL;
    for (size_t i = 0; ok && i < a->n_tools; i++)
        ok = cJSON_AddItemToArray(tools, cJSON_CreateString(a->tools[i]));
    ok = ok && agent_json_steps(o, a) && agent_json_str(o, "system_prompt", a->system_prompt);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

const char *agent_scope_name(enum agent_scope s)
{
    switch (s) {
    case AGENT_SCOPE_DEFAULT:
        return "default";
    case AGENT_SCOPE_TENANT:
        return "tenant";
    case AGENT_SCOPE_USER:
        return "user";
    case AGENT_SCOPE_AGENT:
        return "agent";
    }
    return "default";
}

const char *agent_format_name(enum agent_format f)
{
    switch (f) {
    case AGENT_FORMAT_TEXT:
        return "text";
    case AGENT_FORMAT_JSON:
        return "json";
    }
    return "text";
}

const char *agent_source_name(enum agent_source s)
{
    switch (s) {
    case AGENT_SOURCE_SHIPPED:
        return "shipped";
    case AGENT_SOURCE_USER:
        return "user";
    case AGENT_SOURCE_BUILTIN:
        return "builtin";
    }
    return "shipped";
}
