/*
 * bench_minify: the JSON minifier (util/jsonmin) against cJSON doing the
 * same job (cJSON_Parse + cJSON_PrintUnformatted + free) over the same
 * input. The goal: minifier throughput >= 5x cJSON's.
 *
 * The corpus is generated deterministically (a seeded PRNG): 128
 * pretty-printed documents shaped like tool results and API responses
 * (search results with nested objects, label arrays, bodies with escapes,
 * unicode and Markdown, integers, fractions, exponents, literals), 2-space
 * indentation as json.dumps(indent=2) writes it, about 4 MiB in all.
 * Each measure repeats whole passes over the corpus until at least one
 * second has passed (CLOCK_MONOTONIC), in ROUNDS rounds that interleave
 * the measures so that drift and other load hit all alike; the table
 * gives the median round in MB/s of input (10^6 bytes) and the ratio to
 * cJSON's median. cJSON runs with its default malloc, as it would with no
 * hooks. Before timing, every minified document is checked to parse
 * (cJSON_Compare) to its original's value.
 * The results are printed as a Markdown table for docs/benchmarks.md. Run
 * by `make bench`, never by `make check`; always exits 0 unless the corpus
 * or a result is wrong.
 */
#include "config.h"

#include <cJSON.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util/alloc.h"
#include "util/buf.h"
#include "util/jsonmin.h"

#define DOCS       128
#define MIN_SECS   1.0
#define ROUNDS     3
#define FENCE_HEAD "Here is what the search tool returned:\n\n```json\n"
#define FENCE_TAIL "```\n\nThe first item looks like the one you want.\n"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct rng {
    uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * UINT64_C(2685821657736338717);
}

static unsigned rng_below(struct rng *r, unsigned n)
{
    return (unsigned)(rng_next(r) % n);
}

/* A pretty-printer: tracks depth and whether a comma is due. */
struct pj {
    struct buf *b;
    int depth;
    bool need_comma;
    bool after_key;
};

static void pj_raw(struct pj *p, const char *s)
{
    if (buf_puts(p->b, s) != BUF_OK)
        alloc_die("bench corpus");
}

/* Starts a value: the comma and newline-indent before it, unless it
 * follows a key. */
static void pj_lead(struct pj *p)
{
    if (p->after_key) {
        p->after_key = false;
        return;
    }
    if (p->need_comma)
        pj_raw(p, ",");
    if (p->depth > 0) {
        pj_raw(p, "\n");
        for (int i = 0; i < p->depth; i++)
            pj_raw(p, "  ");
    }
}

static void pj_open(struct pj *p, const char *brace)
{
    pj_lead(p);
    pj_raw(p, brace);
    p->depth++;
    p->need_comma = false;
}

static void pj_close(struct pj *p, const char *brace)
{
    p->depth--;
    if (p->need_comma) { /* not empty */
        pj_raw(p, "\n");
        for (int i = 0; i < p->depth; i++)
            pj_raw(p, "  ");
    }
    pj_raw(p, brace);
    p->need_comma = true;
}

static void pj_key(struct pj *p, const char *k)
{
    pj_lead(p);
    pj_raw(p, "\"");
    pj_raw(p, k);
    pj_raw(p, "\": ");
    p->after_key = true;
}

/* A value already in JSON form (a number, a literal, a quoted string). */
static void pj_val(struct pj *p, const char *v)
{
    pj_lead(p);
    pj_raw(p, v);
    p->need_comma = true;
}

static void pj_str(struct pj *p, const char *s)
{
    pj_lead(p);
    pj_raw(p, "\"");
    pj_raw(p, s);
    pj_raw(p, "\"");
    p->need_comma = true;
}

static void pj_kv(struct pj *p, const char *k, const char *v)
{
    pj_key(p, k);
    pj_val(p, v);
}

static void pj_ks(struct pj *p, const char *k, const char *s)
{
    pj_key(p, k);
    pj_str(p, s);
}

static void pj_kn(struct pj *p, const char *k, unsigned long v)
{
    char num[32];
    snprintf(num, sizeof num, "%lu", v);
    pj_kv(p, k, num);
}

/* A body with the escapes real tool output carries (already escaped). */
static void gen_body(struct rng *r, char *out, size_t cap)
{
    static const char *const parts[] = {
        "When I run the command with `--json` the output is truncated. ",
        "Steps:\\n1. open the file\\n2. run `make`\\n3. see the error\\n",
        "The log says \\\"connection reset by peer\\\" after {retry} attempts. ",
        "Path: C:\\\\Users\\\\dev\\\\project\\\\build. ",
        "Expected [1, 2, 3] but got {\\\"a\\\": null}. ",
        "caf\\u00e9 na\\u00efve \\u2014 r\\u00e9sum\\u00e9; ",
        "Gr\xc3\xbc\xc3\x9f"
        "e aus K\xc3\xb6ln \xe2\x80\x94 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e. ",
        "```c\\nint main(void) { return 0; }\\n```\\n",
        "\\tindented\\ttabs\\tand\\ttrailing spaces   ",
        "Emoji: \\ud83d\\ude80 and \xf0\x9f\x8e\x89. ",
    };
    size_t len = 0;
    out[0] = '\0';
    for (unsigned k = 2 + rng_below(r, 10); k > 0; k--) {
        const char *s = parts[rng_below(r, sizeof parts / sizeof parts[0])];
        size_t n = strlen(s);
        if (len + n + 1 > cap)
            break;
        memcpy(out + len, s, n + 1);
        len += n;
    }
}

static void gen_item(struct pj *p, struct rng *r, unsigned i)
{
    static const char *const logins[] = {"octocat", "hubot", "dev-\\\"x\\\"", "mona", "j.doe"};
    static const char *const labels[] = {"bug",         "enhancement", "good first issue",
                                         "help wanted", "wontfix",     "area: {json}"};
    static const char *const states[] = {"open", "closed"};
    char s[4096];
    pj_open(p, "{");
    pj_kn(p, "id", 100000000ul + i * 7919ul + rng_below(r, 1000));
    pj_ks(p, "node_id", "MDU6SXNzdWUxMzQ3");
    snprintf(s, sizeof s, "https://api.github.com/repos/octo/hello-world/issues/%u", i);
    pj_ks(p, "url", s);
    pj_kn(p, "number", i);
    snprintf(s, sizeof s,
             "Found a bug in \\\"parse()\\\" when input has {braces} and [brackets] #%u", i);
    pj_ks(p, "title", s);
    pj_key(p, "user");
    pj_open(p, "{");
    pj_ks(p, "login", logins[rng_below(r, 5)]);
    pj_kn(p, "id", rng_below(r, 1000000));
    pj_ks(p, "avatar_url", "https://avatars.githubusercontent.com/u/583231?v=4");
    pj_ks(p, "type", "User");
    pj_kv(p, "site_admin", rng_below(r, 8) ? "false" : "true");
    pj_close(p, "}");
    pj_key(p, "labels");
    pj_open(p, "[");
    for (unsigned k = rng_below(r, 4); k > 0; k--) {
        pj_open(p, "{");
        pj_kn(p, "id", 208045946ul + rng_below(r, 100));
        pj_ks(p, "name", labels[rng_below(r, 6)]);
        pj_ks(p, "color", "f29513");
        pj_kv(p, "default", rng_below(r, 2) ? "true" : "false");
        pj_close(p, "}");
    }
    pj_close(p, "]");
    pj_ks(p, "state", states[rng_below(r, 2)]);
    pj_kv(p, "locked", "false");
    pj_kn(p, "comments", rng_below(r, 200));
    snprintf(s, sizeof s, "0.%06u", rng_below(r, 1000000));
    pj_kv(p, "score", s);
    snprintf(s, sizeof s, "-%u.%02ue-%u", rng_below(r, 10), rng_below(r, 100), rng_below(r, 9));
    pj_kv(p, "delta", s);
    pj_ks(p, "created_at", "2024-04-22T13:33:48Z");
    pj_kv(p, "closed_at", rng_below(r, 2) ? "null" : "\"2024-05-01T08:00:00Z\"");
    gen_body(r, s, sizeof s);
    pj_ks(p, "body", s);
    pj_key(p, "reactions");
    pj_open(p, "{");
    pj_kn(p, "+1", rng_below(r, 50));
    pj_kn(p, "-1", rng_below(r, 5));
    pj_kn(p, "laugh", rng_below(r, 9));
    pj_kn(p, "heart", rng_below(r, 20));
    pj_close(p, "}");
    pj_key(p, "matrix");
    pj_open(p, "[");
    for (unsigned k = 0; k < 3; k++) {
        pj_open(p, "[");
        for (unsigned m = 0; m < 4; m++) {
            snprintf(s, sizeof s, "%s%u.%u", rng_below(r, 2) ? "-" : "", rng_below(r, 100),
                     rng_below(r, 1000));
            pj_val(p, s);
        }
        pj_close(p, "]");
    }
    pj_close(p, "]");
    pj_close(p, "}");
}

/* One search-result document of about 32 KiB. */
static void gen_doc(struct buf *b, struct rng *r)
{
    struct pj p = {.b = b};
    pj_open(&p, "{");
    pj_kn(&p, "total_count", 1000 + rng_below(r, 100000));
    pj_kv(&p, "incomplete_results", "false");
    pj_key(&p, "items");
    pj_open(&p, "[");
    for (unsigned i = 0; b->len < 32 * 1024; i++)
        gen_item(&p, r, i);
    pj_close(&p, "]");
    pj_close(&p, "}");
    pj_raw(&p, "\n");
}

struct corpus {
    struct buf doc[DOCS];
    struct buf fenced[DOCS]; /* the same documents inside prose and a ```json fence */
    size_t bytes, fenced_bytes, min_bytes;
};

typedef size_t (*pass_fn)(struct corpus *c, char *out);

/* Runs pass until MIN_SECS have passed; returns MB/s of `bytes` per pass. */
static double measure(struct corpus *c, char *out, pass_fn pass, size_t bytes)
{
    size_t sink = pass(c, out); /* warm-up */
    unsigned long passes = 0;
    double t0 = now_s(), t;
    do {
        sink += pass(c, out);
        passes++;
        t = now_s();
    } while (t - t0 < MIN_SECS);
    if (sink == 0)
        fprintf(stderr, "bench_minify: empty output\n");
    return (double)bytes * (double)passes / (t - t0) / 1e6;
}

/* The median of ROUNDS values (sorts them). */
static double median(double *v)
{
    for (int i = 1; i < ROUNDS; i++)
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double x = v[j];
            v[j] = v[j - 1];
            v[j - 1] = x;
        }
    return ROUNDS % 2 ? v[ROUNDS / 2] : (v[ROUNDS / 2 - 1] + v[ROUNDS / 2]) / 2;
}

static size_t pass_cjson(struct corpus *c, char *out)
{
    (void)out;
    size_t total = 0;
    for (int i = 0; i < DOCS; i++) {
        cJSON *v = cJSON_ParseWithLength(c->doc[i].data, c->doc[i].len);
        char *s = cJSON_PrintUnformatted(v);
        total += strlen(s);
        cJSON_free(s);
        cJSON_Delete(v);
    }
    return total;
}

static size_t pass_value(struct corpus *c, char *out)
{
    size_t total = 0;
    for (int i = 0; i < DOCS; i++)
        total += jsonmin_value(c->doc[i].data, c->doc[i].len, out);
    return total;
}

static size_t pass_is_json(struct corpus *c, char *out)
{
    (void)out;
    size_t total = 0;
    for (int i = 0; i < DOCS; i++)
        total += jsonmin_is_json(c->doc[i].data, c->doc[i].len);
    return total;
}

/* jsonmin_content as the turn pipeline will call it: a fresh buf per
 * message (its allocation included in the time). */
static size_t content_pass(struct buf *docs)
{
    size_t total = 0;
    for (int i = 0; i < DOCS; i++) {
        struct buf b;
        struct jsonmin_stats st;
        buf_init(&b, SIZE_MAX);
        if (jsonmin_content(docs[i].data, docs[i].len, &b, &st) != BUF_OK)
            alloc_die("bench content");
        total += st.bytes_after;
        buf_free(&b);
    }
    return total;
}

static size_t pass_content(struct corpus *c, char *out)
{
    (void)out;
    return content_pass(c->doc);
}

static size_t pass_fenced(struct corpus *c, char *out)
{
    (void)out;
    return content_pass(c->fenced);
}

/* Checks every minified document parses (cJSON) to the original's value,
 * and that the fenced form minifies the same body. */
static bool check(struct corpus *c, char *out)
{
    for (int i = 0; i < DOCS; i++) {
        size_t n = jsonmin_value(c->doc[i].data, c->doc[i].len, out);
        if (n >= c->doc[i].len)
            return false;
        cJSON *a = cJSON_ParseWithLength(c->doc[i].data, c->doc[i].len);
        cJSON *b = cJSON_ParseWithLength(out, n);
        bool same = a != NULL && b != NULL && cJSON_Compare(a, b, 1);
        cJSON_Delete(a);
        cJSON_Delete(b);
        if (!same)
            return false;
        c->min_bytes += n;
        struct buf f;
        buf_init(&f, SIZE_MAX);
        bool ok = jsonmin_content(c->fenced[i].data, c->fenced[i].len, &f, NULL) == BUF_OK &&
                  f.len == strlen(FENCE_HEAD) + n + 1 + strlen(FENCE_TAIL) &&
                  memcmp(f.data + strlen(FENCE_HEAD), out, n) == 0;
        buf_free(&f);
        if (!ok)
            return false;
    }
    return true;
}

int main(void)
{
    static struct corpus c;
    struct rng r = {UINT64_C(0x243F6A8885A308D3)};
    size_t largest = 0;
    for (int i = 0; i < DOCS; i++) {
        buf_init(&c.doc[i], SIZE_MAX);
        gen_doc(&c.doc[i], &r);
        buf_init(&c.fenced[i], SIZE_MAX);
        if (buf_puts(&c.fenced[i], FENCE_HEAD) != BUF_OK ||
            buf_append(&c.fenced[i], c.doc[i].data, c.doc[i].len) != BUF_OK ||
            buf_puts(&c.fenced[i], FENCE_TAIL) != BUF_OK)
            alloc_die("bench corpus");
        c.bytes += c.doc[i].len;
        c.fenced_bytes += c.fenced[i].len;
        if (c.fenced[i].len > largest)
            largest = c.fenced[i].len;
    }
    char *out = xmalloc(largest);
    if (!check(&c, out)) {
        fprintf(stderr, "bench_minify: a minified document differs from its original\n");
        return 1;
    }

    static const struct {
        const char *name;
        pass_fn pass;
        bool fenced;
    } measures[] = {
        {"cJSON_Parse + cJSON_PrintUnformatted + free", pass_cjson, false},
        {"jsonmin_value (validate + minify, one pass)", pass_value, false},
        {"jsonmin_content, whole content is JSON", pass_content, false},
        {"jsonmin_content, ```json fence in prose", pass_fenced, true},
        {"jsonmin_is_json (validate only)", pass_is_json, false},
    };
    enum { N_MEASURES = sizeof measures / sizeof measures[0] };
    double rate[N_MEASURES][ROUNDS];
    for (int round = 0; round < ROUNDS; round++)
        for (int m = 0; m < N_MEASURES; m++)
            rate[m][round] =
                measure(&c, out, measures[m].pass, measures[m].fenced ? c.fenced_bytes : c.bytes);
    double med[N_MEASURES];
    for (int m = 0; m < N_MEASURES; m++)
        med[m] = median(rate[m]);

    printf("JSON minifier: %d pretty-printed documents, %.2f MiB, minified to %.1f%% of the "
           "bytes;\nmedian of %d interleaved rounds, each measure >= %.0f s per round; "
           "MB/s of input (10^6 bytes).\n\n",
           DOCS, (double)c.bytes / (1024.0 * 1024.0), 100.0 * (double)c.min_bytes / (double)c.bytes,
           ROUNDS, MIN_SECS);
    printf("| measure | MB/s | vs cJSON parse+print |\n|---|---|---|\n");
    for (int m = 0; m < N_MEASURES; m++)
        printf("| %s | %.0f | %.2f× |\n", measures[m].name, med[m], med[m] / med[0]);
    printf("\ngoal (jsonmin_content >= 5x cJSON parse+print): %s\n",
           med[2] >= 5 * med[0] && med[3] >= 5 * med[0] ? "met" : "NOT met");

    xfree(out);
    for (int i = 0; i < DOCS; i++) {
        buf_free(&c.doc[i]);
        buf_free(&c.fenced[i]);
    }
    return 0;
}
