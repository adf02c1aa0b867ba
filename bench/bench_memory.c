/*
 * bench_memory: the quality and speed goals of tenant memory, measured
 * through the public memory manager (memory/manager.h) exactly as the
 * turn and the `memchat memory` verbs use it, on the embedded defaults
 * (the local embedder and the local store in a data file).
 *
 *   1. facts: the project's own retrieval-quality set (bench/data/
 *      facts.jsonl and questions.jsonl; format in bench/README.md), one
 *      namespace per tenant, every question asked in its own tenant only;
 *      recall@5 and MRR@5 of similarity, mmr and hybrid, and a count of
 *      results that came from another tenant (must be 0).
 *   2. scifact: BEIR SciFact (../shared/data/scifact) loaded into one
 *      tenant with memory_add_batch (no dedup), then nDCG@10 and
 *      recall@10 over the 300 test claims of similarity, FTS5 bm25 alone
 *      (the store's keyword operation), mmr and hybrid; and the load time.
 *   3. latency: N synthetic notes (100,000 by default; deterministic seed)
 *      in one tenant, added in batches of 1,000, then p50/p99 of
 *      memory_retrieve (embed + exact search + ranking) over >= 1,000
 *      queries on one thread, and the bytes per stored memory.
 *
 * Each part prints a Markdown table for docs/benchmarks.md. Every data file
 * lives in a temporary directory removed at the end. Exits 0, or 1 when
 * something failed (an API error, a missing data file of the repository,
 * or a result from another tenant).
 *
 * Usage: bench_memory [SRCDIR] [--quick] [--only=facts|scifact|latency]
 *        [--dims=D,D,...] [--memories=N] [--queries=N] [--method=NAME]
 *        [--scifact=DIR] [--set=NAME=VALUE]... [--verbose] [--keep]
 *        [--reuse=DIR]
 * --quick: 10,000 memories for the latency part. --dims adds dimensions
 * besides EMBEDDINGS_DIMENSION's default to the facts and SciFact parts.
 * --set changes a configuration variable (e.g. MEMORY_MMR_DIVERSITY=0) to
 * explore the settings; the defaults are what `make bench` measures.
 * --keep leaves the data files (and says where) instead of removing them.
 * --reuse=DIR runs in DIR, a directory an earlier --keep left, and never
 * removes it; the latency part then measures the memories already stored
 * there (--memories must say how many) instead of storing them again, so
 * a million-memory store and its graph are made once and measured as
 * often as needed (e.g. again on a quiet machine, or with a warm page
 * cache). --method=similarity|mmr|hybrid measures only that method.
 * The latency table says how much of the data and index files the page
 * cache held before the queries, and a query's page faults and disk reads
 * (getrusage); --verbose also gives those of the slowest 1 %, which tells
 * a tail of disk reads from a tail of computing.
 */
#include "config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "config/vars.h"
#include "memchat/engine.h"
#include "memory/manager.h"
#include "memory/store.h"
#include "store/db.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/fileio.h"

#define MAX_DIMS     8
#define FILE_MAX     (64u << 20) /* the largest data file read (SciFact's corpus: 8 MB) */
#define BATCH        1000        /* memories per memory_add_batch */
#define FACTS_K      5
#define SCIFACT_K    10
#define WARMUP       20
#define TENANT_LOAD  "bench"
#define TENANT_SCI   "scifact"
#define BENCH_USER   "u1"
#define BENCH_AGENT  "assistant"
#define DEFAULT_N    100000
#define QUICK_N      10000
#define DEFAULT_Q    1000
#define SEED_NOTES   0x6d656d6368617431ULL
#define SEED_QUERIES 0x71756572696573ULL

struct opts {
    const char *srcdir;
    const char *scifact_dir; /* NULL: SRCDIR/../shared/data/scifact */
    bool facts, scifact, latency;
    bool verbose;
    bool keep;  /* leave the data files for inspection */
    bool reuse; /* --reuse=DIR: the data files exist; keep them */
    size_t memories;
    size_t queries;
    int method;         /* --method=NAME: the latency part measures only it; -1 all */
    int dims[MAX_DIMS]; /* dims[0] is the configured default */
    size_t n_dims;
};

/* What every part shares: the configuration and the temporary directory. */
struct bench {
    struct config *cfg;
    char dir[256];
    struct opts o;
    int failures;
};

/* One open manager on its own data file. */
struct mgr {
    struct db *db;
    struct store_cache *cache;
    struct memory_manager *m;
    char path[512];
};

static const enum memory_method METHODS[] = {MEMORY_SIMILARITY, MEMORY_MMR, MEMORY_HYBRID};
#define N_METHODS (sizeof METHODS / sizeof METHODS[0])

/* One timed query and the page faults it took (getrusage before and after),
 * so --verbose can say whether the slow tail is the memory it touched. */
struct sample {
    long long ns;
    long majflt, minflt;
    long inblock; /* 512-byte blocks read from disk, by faults and read() alike */
};

static int cmp_sample(const void *a, const void *b)
{
    long long x = ((const struct sample *)a)->ns, y = ((const struct sample *)b)->ns;
    return (x > y) - (x < y);
}

static struct sample faults_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (struct sample){0, ru.ru_majflt, ru.ru_minflt, ru.ru_inblock};
}

/* Mean faults of the slowest 1% and of the rest, on stderr. */
static void faults_report(const char *method, const struct sample *s, size_t n)
{
    size_t tail = n / 100 > 0 ? n / 100 : 1;
    double mj[2] = {0}, mn[2] = {0}, kb[2] = {0};
    for (size_t i = 0; i < n; i++) {
        int t = i >= n - tail;
        mj[t] += (double)s[i].majflt;
        mn[t] += (double)s[i].minflt;
        kb[t] += (double)s[i].inblock / 2;
    }
    fprintf(stderr,
            "bench_memory: %s: a query's faults and disk reads, slowest %zu: major %.2f minor "
            "%.1f, %.1f KB; the other %zu: major %.3f minor %.1f, %.1f KB\n",
            method, tail, mj[1] / (double)tail, mn[1] / (double)tail, kb[1] / (double)tail,
            n - tail, mj[0] / (double)(n - tail), mn[0] / (double)(n - tail),
            kb[0] / (double)(n - tail));
}

/* Percent of path's pages in the page cache (mincore on a fresh mapping),
 * -1 when it cannot be read: a page that is not costs a disk read, which
 * is what the latency tail measures otherwise. */
static double resident_pct(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    double pct = -1;
    if (fstat(fd, &st) == 0 && st.st_size > 0) {
        size_t len = (size_t)st.st_size, page = (size_t)sysconf(_SC_PAGESIZE);
        size_t pages = (len + page - 1) / page;
        void *map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
        unsigned char *vec = xmalloc(pages);
        if (map != MAP_FAILED && mincore(map, len, vec) == 0) {
            size_t in = 0;
            for (size_t i = 0; i < pages; i++)
                in += vec[i] & 1u;
            pct = 100.0 * (double)in / (double)pages;
        }
        xfree(vec);
        if (map != MAP_FAILED)
            munmap(map, len);
    }
    close(fd);
    return pct;
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

/* The q-quantile of n sorted values (nearest rank). */
static long long quantile(const long long *v, size_t n, double q)
{
    size_t i = (size_t)(q * (double)n);
    return v[i < n ? i : n - 1];
}

/* Opens (creating) dir/name and a manager over it, with the configured
 * settings and dim dimensions. 0 or -1 (message printed). */
static int mgr_open(struct bench *b, const char *name, int dim, struct mgr *g)
{
    char err[512], v[16];
    memset(g, 0, sizeof *g);
    snprintf(g->path, sizeof g->path, "%s/%s", b->dir, name);
    snprintf(v, sizeof v, "%d", dim);
    if (config_set(b->cfg, CFG_EMBEDDINGS_DIMENSION, v, err, sizeof err) != 0) {
        fprintf(stderr, "bench_memory: %s\n", err);
        return -1;
    }
    enum db_error why;
    g->db = db_open(g->path, &why, err, sizeof err);
    if (g->db == NULL) {
        fprintf(stderr, "bench_memory: %s\n", err);
        return -1;
    }
    g->cache = store_cache_new();
    g->m = memory_new_from_config(b->cfg, g->db, g->cache, err, sizeof err);
    if (g->m == NULL) {
        fprintf(stderr, "bench_memory: %s\n", err);
        store_cache_free(g->cache);
        db_close(g->db);
        return -1;
    }
    return 0;
}

static void mgr_close(struct mgr *g)
{
    memory_free(g->m);
    store_cache_free(g->cache);
    db_close(g->db);
    memset(g, 0, sizeof *g);
}

/* Reads a whole file of the repository or of the shared data. */
static char *read_file(const char *path)
{
    char *text = NULL, err[512];
    if (fileio_read_all(path, FILE_MAX, &text, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "bench_memory: %s\n", err);
        return NULL;
    }
    return text;
}

/* Calls fn on every non-empty line of text (the line NUL-terminated in
 * place, a trailing \r removed) with its 1-based number; stops at the
 * first non-zero return and returns it. */
static int each_line(char *text, int (*fn)(void *ud, char *line, size_t lineno), void *ud)
{
    size_t lineno = 0;
    char *p = text;
    while (*p != '\0') {
        char *nl = strchr(p, '\n');
        char *next = nl != NULL ? nl + 1 : p + strlen(p);
        if (nl != NULL)
            *nl = '\0';
        size_t len = strlen(p);
        if (len > 0 && p[len - 1] == '\r')
            p[--len] = '\0';
        lineno++;
        if (len > 0) {
            int rc = fn(ud, p, lineno);
            if (rc != 0)
                return rc;
        }
        p = next;
    }
    return 0;
}

/* A string member of a JSON object, or NULL. */
static const char *json_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ---- 1. the facts set -------------------------------------------------- */

struct fact {
    char *id, *tenant, *text;
    char mem[MC_UUID_STRLEN + 1]; /* the memory it was stored as */
};

struct question {
    char *tenant, *text;
    size_t rel[8]; /* indexes into the facts */
    size_t n_rel;
    bool synonyms; /* shares no content word with its facts (hand-labelled) */
};

struct factset {
    struct fact *f;
    size_t n, cap;
    struct question *q;
    size_t nq, capq;
    const char *file;
};

static void factset_free(struct factset *s)
{
    for (size_t i = 0; i < s->n; i++) {
        xfree(s->f[i].id);
        xfree(s->f[i].tenant);
        xfree(s->f[i].text);
    }
    for (size_t i = 0; i < s->nq; i++) {
        xfree(s->q[i].tenant);
        xfree(s->q[i].text);
    }
    xfree(s->f);
    xfree(s->q);
}

static long fact_find(const struct factset *s, const char *id)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->f[i].id, id) == 0)
            return (long)i;
    return -1;
}

static int fact_line(void *ud, char *line, size_t lineno)
{
    struct factset *s = ud;
    cJSON *o = cJSON_Parse(line);
    const char *id = json_str(o, "id"), *tenant = json_str(o, "tenant"),
               *text = json_str(o, "text");
    if (id == NULL || tenant == NULL || text == NULL || fact_find(s, id) >= 0) {
        fprintf(stderr, "bench_memory: %s line %zu: need a unique \"id\", \"tenant\", \"text\"\n",
                s->file, lineno);
        cJSON_Delete(o);
        return -1;
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->f = xreallocarray(s->f, s->cap, sizeof *s->f);
    }
    struct fact *f = &s->f[s->n++];
    memset(f, 0, sizeof *f);
    f->id = xstrdup(id);
    f->tenant = xstrdup(tenant);
    f->text = xstrdup(text);
    cJSON_Delete(o);
    return 0;
}

static int question_line(void *ud, char *line, size_t lineno)
{
    struct factset *s = ud;
    cJSON *o = cJSON_Parse(line);
    const char *tenant = json_str(o, "tenant"), *text = json_str(o, "question");
    const cJSON *rel = cJSON_GetObjectItemCaseSensitive(o, "relevant");
    int n = cJSON_IsArray(rel) ? cJSON_GetArraySize(rel) : 0;
    if (tenant == NULL || text == NULL || n < 1 || n > 8) {
        fprintf(stderr,
                "bench_memory: %s line %zu: need \"tenant\", \"question\" and \"relevant\" "
                "(1 to 8 fact ids)\n",
                s->file, lineno);
        cJSON_Delete(o);
        return -1;
    }
    if (s->nq == s->capq) {
        s->capq = s->capq ? 2 * s->capq : 64;
        s->q = xreallocarray(s->q, s->capq, sizeof *s->q);
    }
    struct question *q = &s->q[s->nq];
    memset(q, 0, sizeof *q);
    const cJSON *r;
    cJSON_ArrayForEach(r, rel)
    {
        long i = cJSON_IsString(r) ? fact_find(s, r->valuestring) : -1;
        if (i < 0 || strcmp(s->f[i].tenant, tenant) != 0) {
            fprintf(stderr, "bench_memory: %s line %zu: relevant id %s is not a fact of %s\n",
                    s->file, lineno, cJSON_IsString(r) ? r->valuestring : "(not a string)", tenant);
            cJSON_Delete(o);
            return -1;
        }
        q->rel[q->n_rel++] = (size_t)i;
    }
    q->tenant = xstrdup(tenant);
    q->text = xstrdup(text);
    q->synonyms = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "synonyms"));
    s->nq++;
    cJSON_Delete(o);
    return 0;
}

static int factset_load(struct factset *s, const char *srcdir)
{
    char path[1024], qpath[1024];
    snprintf(path, sizeof path, "%s/bench/data/facts.jsonl", srcdir);
    snprintf(qpath, sizeof qpath, "%s/bench/data/questions.jsonl", srcdir);
    char *ft = read_file(path);
    if (ft == NULL)
        return -1;
    s->file = path;
    int rc = each_line(ft, fact_line, s);
    xfree(ft);
    if (rc != 0)
        return -1;
    char *qt = read_file(qpath);
    if (qt == NULL)
        return -1;
    s->file = qpath;
    rc = each_line(qt, question_line, s);
    xfree(qt);
    return rc;
}

/* Stores every fact in its tenant's namespace, one batch per tenant. */
static int facts_store(struct mgr *g, struct factset *s)
{
    char err[512];
    struct memory_add *a = xcalloc(s->n, sizeof *a);
    struct memory_added *out = xcalloc(s->n, sizeof *out);
    size_t *idx = xcalloc(s->n, sizeof *idx);
    bool *done = xcalloc(s->n, sizeof *done);
    int rc = 0;
    for (size_t i = 0; i < s->n && rc == 0; i++) {
        if (done[i])
            continue;
        size_t n = 0;
        for (size_t j = i; j < s->n; j++) {
            if (done[j] || strcmp(s->f[j].tenant, s->f[i].tenant) != 0)
                continue;
            a[n] = (struct memory_add){.tenant = s->f[j].tenant,
                                       .user = BENCH_USER,
                                       .agent = BENCH_AGENT,
                                       .text = s->f[j].text,
                                       .no_dedup = true};
            idx[n++] = j;
            done[j] = true;
        }
        if (memory_add_batch(g->m, a, n, out, err, sizeof err) != MEMORY_OK) {
            fprintf(stderr, "bench_memory: facts of %s: %s\n", s->f[i].tenant, err);
            rc = -1;
            break;
        }
        for (size_t k = 0; k < n; k++)
            memcpy(s->f[idx[k]].mem, out[k].id, sizeof s->f[idx[k]].mem);
    }
    xfree(a);
    xfree(out);
    xfree(idx);
    xfree(done);
    return rc;
}

struct facts_score {
    double recall, mrr, ms_sum;
    double recall_syn; /* over the synonyms-only questions */
    size_t full, foreign, questions, syn;
};

/* Asks every question with method in its tenant and scores the k kept. */
static int facts_run(struct bench *b, struct mgr *g, const struct factset *s, int method, int dim,
                     struct facts_score *sc)
{
    char err[512];
    memset(sc, 0, sizeof *sc);
    for (size_t i = 0; i < s->nq; i++) {
        const struct question *q = &s->q[i];
        struct memory_result res;
        int64_t t0 = clock_mono_ns();
        enum memory_status st = memory_retrieve(g->m, q->tenant, NULL, q->text, FACTS_K, method,
                                                NULL, &res, err, sizeof err);
        sc->ms_sum += clock_since_ms(t0);
        if (st != MEMORY_OK) {
            fprintf(stderr, "bench_memory: facts: retrieve \"%s\": %s\n", q->text, err);
            return -1;
        }
        size_t found = 0, first = 0;
        for (size_t h = 0; h < res.n_kept && h < FACTS_K; h++) {
            long f = -1;
            for (size_t j = 0; j < s->n; j++)
                if (strcmp(s->f[j].mem, res.hits[h].rec.id) == 0)
                    f = (long)j;
            if (f < 0 || strcmp(s->f[f].tenant, q->tenant) != 0) {
                sc->foreign++;
                continue;
            }
            for (size_t r = 0; r < q->n_rel; r++)
                if (q->rel[r] == (size_t)f) {
                    found++;
                    if (first == 0)
                        first = h + 1;
                }
        }
        sc->recall += (double)found / (double)q->n_rel;
        if (q->synonyms) {
            sc->recall_syn += (double)found / (double)q->n_rel;
            sc->syn++;
        }
        sc->mrr += first ? 1.0 / (double)first : 0.0;
        sc->full += found == q->n_rel;
        if (b->o.verbose && found < q->n_rel) {
            printf("  miss (%s, dim %d) [%s] %s\n", memory_method_name((enum memory_method)method),
                   dim, q->tenant, q->text);
            for (size_t h = 0; h < res.n_kept; h++)
                printf("      %zu. %.3f %s\n", h + 1, res.hits[h].score, res.hits[h].rec.text);
        }
        memory_result_free(&res);
        sc->questions++;
    }
    return 0;
}

static int bench_facts(struct bench *b)
{
    struct factset s = {0};
    if (factset_load(&s, b->o.srcdir) != 0) {
        factset_free(&s);
        return -1;
    }
    size_t tenants = 0;
    for (size_t i = 0; i < s.n; i++) {
        size_t j = 0;
        while (j < i && strcmp(s.f[j].tenant, s.f[i].tenant) != 0)
            j++;
        tenants += j == i;
    }
    printf("\n### Retrieval quality: %zu facts in %zu tenants, %zu questions, k = %d\n\n", s.n,
           tenants, s.nq, FACTS_K);
    size_t syn = 0;
    for (size_t i = 0; i < s.nq; i++)
        syn += s.q[i].synonyms;
    printf("| dim | method | recall@5 | MRR@5 | all relevant in top 5 | recall@5, %zu sharing "
           "words | recall@5, %zu synonyms only | from another tenant | ms/query |\n"
           "|---|---|---|---|---|---|---|---|---|\n",
           s.nq - syn, syn);
    int rc = 0;
    for (size_t d = 0; d < b->o.n_dims && rc == 0; d++) {
        char name[64];
        snprintf(name, sizeof name, "facts-%d.db", b->o.dims[d]);
        struct mgr g;
        if (mgr_open(b, name, b->o.dims[d], &g) != 0 || facts_store(&g, &s) != 0) {
            if (g.m != NULL)
                mgr_close(&g);
            rc = -1;
            break;
        }
        for (size_t k = 0; k < N_METHODS && rc == 0; k++) {
            struct facts_score sc;
            rc = facts_run(b, &g, &s, (int)METHODS[k], b->o.dims[d], &sc);
            if (rc != 0)
                break;
            double n = (double)sc.questions;
            double n_syn = (double)sc.syn, n_words = n - n_syn;
            printf("| %d | %s | %.3f | %.3f | %zu/%zu | %.3f | %.3f | %zu | %.2f |\n", b->o.dims[d],
                   memory_method_name(METHODS[k]), sc.recall / n, sc.mrr / n, sc.full, sc.questions,
                   n_words > 0 ? (sc.recall - sc.recall_syn) / n_words : (double)NAN,
                   n_syn > 0 ? sc.recall_syn / n_syn : (double)NAN, sc.foreign, sc.ms_sum / n);
            if (sc.foreign > 0) {
                fprintf(stderr, "bench_memory: facts: %zu results came from another tenant\n",
                        sc.foreign);
                b->failures++;
            }
        }
        mgr_close(&g);
    }
    factset_free(&s);
    return rc;
}

/* ---- 2. BEIR SciFact --------------------------------------------------- */

struct sci_doc {
    char *id;
    char *text;                   /* title, newline, abstract */
    char mem[MC_UUID_STRLEN + 1]; /* the memory of its first chunk, in the current run */
};

struct sci_query {
    char *id, *text;
    char **rel; /* relevant doc ids */
    size_t n_rel;
};

/* Which document a memory is the first chunk of. */
struct sci_mem {
    char mem[MC_UUID_STRLEN + 1];
    size_t doc;
};

struct scifact {
    struct sci_doc *d;
    size_t n, cap;
    struct sci_query *q;
    size_t nq, capq;
    cJSON *all_queries;     /* id -> text, while loading */
    struct sci_mem *by_mem; /* sorted by mem, for hit_doc */
};

static void scifact_free(struct scifact *s)
{
    for (size_t i = 0; i < s->n; i++) {
        xfree(s->d[i].id);
        xfree(s->d[i].text);
    }
    for (size_t i = 0; i < s->nq; i++) {
        xfree(s->q[i].id);
        xfree(s->q[i].text);
        for (size_t r = 0; r < s->q[i].n_rel; r++)
            xfree(s->q[i].rel[r]);
        xfree(s->q[i].rel);
    }
    xfree(s->d);
    xfree(s->q);
    xfree(s->by_mem);
    cJSON_Delete(s->all_queries);
}

static int corpus_line(void *ud, char *line, size_t lineno)
{
    struct scifact *s = ud;
    cJSON *o = cJSON_Parse(line);
    const char *id = json_str(o, "_id"), *title = json_str(o, "title"), *text = json_str(o, "text");
    if (id == NULL || title == NULL || text == NULL) {
        fprintf(stderr, "bench_memory: corpus.jsonl line %zu: need _id, title, text\n", lineno);
        cJSON_Delete(o);
        return -1;
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 1024;
        s->d = xreallocarray(s->d, s->cap, sizeof *s->d);
    }
    struct sci_doc *d = &s->d[s->n++];
    d->id = xstrdup(id);
    d->text = xasprintf("%s\n%s", title, text);
    d->mem[0] = '\0';
    cJSON_Delete(o);
    return 0;
}

static int query_line(void *ud, char *line, size_t lineno)
{
    struct scifact *s = ud;
    cJSON *o = cJSON_Parse(line);
    const char *id = json_str(o, "_id"), *text = json_str(o, "text");
    if (id == NULL || text == NULL) {
        fprintf(stderr, "bench_memory: queries.jsonl line %zu: need _id, text\n", lineno);
        cJSON_Delete(o);
        return -1;
    }
    cJSON_AddStringToObject(s->all_queries, id, text);
    cJSON_Delete(o);
    return 0;
}

static int qrels_line(void *ud, char *line, size_t lineno)
{
    struct scifact *s = ud;
    if (lineno == 1)
        return 0; /* header */
    char *tab1 = strchr(line, '\t');
    char *tab2 = tab1 != NULL ? strchr(tab1 + 1, '\t') : NULL;
    if (tab2 == NULL) {
        fprintf(stderr, "bench_memory: qrels-test.tsv line %zu: need three columns\n", lineno);
        return -1;
    }
    *tab1 = *tab2 = '\0';
    const char *qid = line, *doc = tab1 + 1;
    if (strtol(tab2 + 1, NULL, 10) <= 0)
        return 0;
    size_t i = 0;
    while (i < s->nq && strcmp(s->q[i].id, qid) != 0)
        i++;
    if (i == s->nq) {
        const char *text = json_str(s->all_queries, qid);
        if (text == NULL) {
            fprintf(stderr, "bench_memory: qrels-test.tsv line %zu: unknown query %s\n", lineno,
                    qid);
            return -1;
        }
        if (s->nq == s->capq) {
            s->capq = s->capq ? 2 * s->capq : 256;
            s->q = xreallocarray(s->q, s->capq, sizeof *s->q);
        }
        s->q[i] = (struct sci_query){.id = xstrdup(qid), .text = xstrdup(text)};
        s->nq++;
    }
    struct sci_query *q = &s->q[i];
    q->rel = xreallocarray(q->rel, q->n_rel + 1, sizeof *q->rel);
    q->rel[q->n_rel++] = xstrdup(doc);
    return 0;
}

/* 0 loaded, 1 not there (skipped), -1 broken. */
static int scifact_load(struct scifact *s, const char *dir)
{
    const char *names[] = {"corpus.jsonl", "queries.jsonl", "qrels-test.tsv"};
    int (*fns[])(void *, char *, size_t) = {corpus_line, query_line, qrels_line};
    s->all_queries = cJSON_CreateObject();
    for (size_t i = 0; i < 3; i++) {
        char path[1100], *text = NULL, err[512];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        int rc = fileio_read_all(path, FILE_MAX, &text, NULL, err, sizeof err);
        if (rc == -2)
            return 1;
        if (rc != 0) {
            fprintf(stderr, "bench_memory: %s\n", err);
            return -1;
        }
        rc = each_line(text, fns[i], s);
        xfree(text);
        if (rc != 0)
            return -1;
    }
    return 0;
}

static int cmp_mem(const void *a, const void *b)
{
    return strcmp(((const struct sci_mem *)a)->mem, ((const struct sci_mem *)b)->mem);
}

/* Sorts the documents by the memory their first chunk was stored as. */
static void scifact_index(struct scifact *s)
{
    xfree(s->by_mem);
    s->by_mem = xcalloc(s->n, sizeof *s->by_mem);
    for (size_t i = 0; i < s->n; i++) {
        memcpy(s->by_mem[i].mem, s->d[i].mem, sizeof s->by_mem[i].mem);
        s->by_mem[i].doc = i;
    }
    qsort(s->by_mem, s->n, sizeof *s->by_mem, cmp_mem);
}

static long doc_of_mem(const struct scifact *s, const char *mem)
{
    struct sci_mem key;
    snprintf(key.mem, sizeof key.mem, "%s", mem);
    const struct sci_mem *hit = bsearch(&key, s->by_mem, s->n, sizeof key, cmp_mem);
    return hit != NULL ? (long)hit->doc : -1;
}

/* The paper a hit belongs to: the one stored as it, or, for a later chunk
 * of a long abstract, the one stored as its "parent" (the manager's chunk
 * metadata). -1 when neither (a bug: counted as irrelevant). */
static long hit_doc(const struct scifact *s, const struct mem_record *r)
{
    long d = doc_of_mem(s, r->id);
    if (d >= 0 || r->metadata == NULL)
        return d;
    cJSON *m = cJSON_Parse(r->metadata);
    const char *parent = json_str(m, "parent");
    d = parent != NULL ? doc_of_mem(s, parent) : -1;
    cJSON_Delete(m);
    return d;
}

struct ir_score {
    double ndcg, recall, ms_sum;
    size_t n;
};

/* Scores one ranking of papers (duplicates, i.e. chunks of one abstract,
 * already removed) against q: nDCG@10 with binary gains, recall@10. */
static void ir_add(struct ir_score *sc, const struct scifact *s, const struct sci_query *q,
                   const long *docs, size_t n)
{
    double dcg = 0, idcg = 0;
    size_t found = 0;
    for (size_t i = 0; i < n && i < SCIFACT_K; i++)
        for (size_t r = 0; r < q->n_rel; r++)
            if (docs[i] >= 0 && strcmp(s->d[docs[i]].id, q->rel[r]) == 0) {
                dcg += 1.0 / log2((double)i + 2.0);
                found++;
                break;
            }
    for (size_t i = 0; i < q->n_rel && i < SCIFACT_K; i++)
        idcg += 1.0 / log2((double)i + 2.0);
    sc->ndcg += dcg / idcg;
    sc->recall += (double)found / (double)q->n_rel;
    sc->n++;
}

/* Appends the paper of r to docs unless already there. */
static void doc_push(const struct scifact *s, long *docs, size_t *n, const struct mem_record *r)
{
    long d = hit_doc(s, r);
    for (size_t i = 0; i < *n; i++)
        if (d >= 0 && docs[i] == d)
            return;
    if (*n < SCIFACT_K)
        docs[(*n)++] = d;
}

/* method >= 0: memory_retrieve with it; -1: the store's keyword op. */
static int scifact_run(struct mgr *g, const struct scifact *s, int method, struct ir_score *sc)
{
    char err[512];
    long docs[SCIFACT_K];
    memset(sc, 0, sizeof *sc);
    struct vstore *st = memory_store(g->m);
    for (size_t i = 0; i < s->nq; i++) {
        size_t n = 0;
        int64_t t0 = clock_mono_ns();
        if (method < 0) {
            struct mem_records recs = {0};
            if (st->ops->keyword(st, TENANT_SCI, s->q[i].text, SCIFACT_K, NULL, &recs, err,
                                 sizeof err) != 0) {
                fprintf(stderr, "bench_memory: scifact: bm25 for query %s: %s\n", s->q[i].id, err);
                return -1;
            }
            sc->ms_sum += clock_since_ms(t0);
            for (size_t h = 0; h < recs.n; h++)
                doc_push(s, docs, &n, &recs.v[h]);
            mem_records_free(&recs);
        } else {
            struct memory_result res;
            if (memory_retrieve(g->m, TENANT_SCI, NULL, s->q[i].text, SCIFACT_K, method, NULL, &res,
                                err, sizeof err) != MEMORY_OK) {
                fprintf(stderr, "bench_memory: scifact: query %s: %s\n", s->q[i].id, err);
                return -1;
            }
            sc->ms_sum += clock_since_ms(t0);
            for (size_t h = 0; h < res.n_kept; h++)
                doc_push(s, docs, &n, &res.hits[h].rec);
            memory_result_free(&res);
        }
        ir_add(sc, s, &s->q[i], docs, n);
    }
    return 0;
}

/* Adds the corpus in batches of BATCH; *ms the time, *stored the memories. */
static int scifact_store(struct mgr *g, struct scifact *s, double *ms, size_t *stored)
{
    char err[512];
    struct memory_add *a = xcalloc(BATCH, sizeof *a);
    struct memory_added *out = xcalloc(BATCH, sizeof *out);
    int rc = 0;
    *stored = 0;
    int64_t t0 = clock_mono_ns();
    for (size_t i = 0; i < s->n && rc == 0; i += BATCH) {
        size_t n = s->n - i < BATCH ? s->n - i : BATCH;
        for (size_t k = 0; k < n; k++)
            a[k] = (struct memory_add){.tenant = TENANT_SCI,
                                       .user = BENCH_USER,
                                       .agent = BENCH_AGENT,
                                       .kind = "document",
                                       .text = s->d[i + k].text,
                                       .no_dedup = true};
        if (memory_add_batch(g->m, a, n, out, err, sizeof err) != MEMORY_OK) {
            fprintf(stderr, "bench_memory: scifact: documents %zu..%zu: %s\n", i, i + n - 1, err);
            rc = -1;
        }
        for (size_t k = 0; k < n && rc == 0; k++) {
            *stored += out[k].chunks;
            memcpy(s->d[i + k].mem, out[k].id, sizeof s->d[i + k].mem);
        }
    }
    *ms = clock_since_ms(t0);
    scifact_index(s);
    xfree(a);
    xfree(out);
    return rc;
}

static int bench_scifact(struct bench *b)
{
    char dir[1024];
    if (b->o.scifact_dir != NULL)
        snprintf(dir, sizeof dir, "%s", b->o.scifact_dir);
    else
        snprintf(dir, sizeof dir, "%s/../shared/data/scifact", b->o.srcdir);
    struct scifact s = {0};
    int rc = scifact_load(&s, dir);
    if (rc != 0) {
        if (rc > 0)
            printf("\n### BEIR SciFact: skipped, no data at %s\n", dir);
        scifact_free(&s);
        return rc > 0 ? 0 : -1;
    }
    printf("\n### BEIR SciFact: %zu documents, %zu test queries, k = %d\n\n", s.n, s.nq, SCIFACT_K);
    printf("| dim | ranking | nDCG@10 | recall@10 | × bm25 nDCG | ms/query |\n"
           "|---|---|---|---|---|---|\n");
    char loads[MAX_DIMS][160];
    struct ir_score bm25 = {0};
    for (size_t d = 0; d < b->o.n_dims && rc == 0; d++) {
        char name[64];
        snprintf(name, sizeof name, "scifact-%d.db", b->o.dims[d]);
        struct mgr g;
        double ms = 0;
        size_t stored = 0;
        if (mgr_open(b, name, b->o.dims[d], &g) != 0) {
            rc = -1;
            break;
        }
        if (scifact_store(&g, &s, &ms, &stored) != 0) {
            mgr_close(&g);
            rc = -1;
            break;
        }
        snprintf(loads[d], sizeof loads[d], "| %d | %zu | %zu | %.2f | %.0f |", b->o.dims[d], s.n,
                 stored, ms / 1e3, (double)s.n / (ms / 1e3));
        char dimstr[16];
        snprintf(dimstr, sizeof dimstr, "%d", b->o.dims[d]);
        /* bm25 does not depend on the vectors: measured once. */
        if (d == 0 && memory_store(g.m)->ops->keyword != NULL)
            rc = scifact_run(&g, &s, -1, &bm25);
        const int order[] = {-1, MEMORY_SIMILARITY, MEMORY_MMR, MEMORY_HYBRID};
        for (size_t k = d == 0 ? 0 : 1; k < 4 && rc == 0; k++) {
            struct ir_score sc = bm25;
            if (order[k] >= 0)
                rc = scifact_run(&g, &s, order[k], &sc);
            if (rc != 0 || sc.n == 0)
                continue;
            double n = (double)sc.n;
            printf("| %s | %s | %.4f | %.4f | %.2f× | %.2f |\n", order[k] < 0 ? "—" : dimstr,
                   order[k] < 0 ? "bm25 (FTS5 alone)"
                                : memory_method_name((enum memory_method)order[k]),
                   sc.ndcg / n, sc.recall / n,
                   bm25.n > 0 && bm25.ndcg > 0 ? sc.ndcg / bm25.ndcg : (double)NAN, sc.ms_sum / n);
        }
        mgr_close(&g);
        if (rc != 0)
            break;
        if (d + 1 == b->o.n_dims) {
            printf("\n| dim | documents | memories (chunks) | load s | documents/s |\n"
                   "|---|---|---|---|---|\n");
            for (size_t k = 0; k <= d; k++)
                printf("%s\n", loads[k]);
        }
    }
    scifact_free(&s);
    return rc;
}

/* ---- 3. latency at scale ---------------------------------------------- */

/* splitmix64: a small, fast, deterministic generator. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* The vocabulary of the synthetic notes, one list per slot, items
 * separated by '|'. */
static const char VOCAB_P[] = "Priya|Marco|Hannah|Tom|Aisha|Jake|Elena|Karin|Oskar|Lin|Rafael|"
                              "Chloe|Ruth|Karl|Jenny|Gabriel|Maya|Leo|Sam|Dana|Nora|Felix|Ines|"
                              "Omar|Yuki|Amara|Lukas|Sofia|Mateo|Zara|Ben|Clara|Dev|Eva|Hugo|"
                              "Iris|Jonas|Kofi|Lena|Mira";
static const char VOCAB_J[] = "Apollo|Zephyr|Hermes|Orion|Atlas|Nova|Falcon|Juniper|Cobalt|Delta|"
                              "Ember|Fjord|Granite|Halcyon|Indigo|Kestrel";
static const char VOCAB_N[] =
    "budget|invoice|roadmap|deadline|migration|contract|release|dentist|flight|hotel|report|"
    "review|offsite|interview|demo|launch|renewal|backup|server|database|dashboard|proposal|"
    "survey|workshop|lease|mortgage|vaccine|pharmacy|passport|visa|recipe|garden|bike|car|"
    "insurance|tax return|payroll|onboarding|audit|newsletter|podcast|conference|webinar|retro|"
    "sprint|ticket|bug|feature|prototype|benchmark|presentation|spreadsheet|timesheet|schedule|"
    "reservation|appointment|checkup|groceries|rent|subscription|birthday|anniversary|"
    "gym session|haircut|oil change|vet visit|school play|parent meeting|book club|train ticket|"
    "design doc|load test|code freeze|standup|one-on-one|expense report|security patch|keynote|"
    "grant application|lab report";
static const char VOCAB_A[] = "urgent|quarterly|annual|weekly|new|old|shared|internal|late|"
                              "revised|final|draft|monthly|personal|team|client|second|overdue|"
                              "small|big|early|remote|on-site|rescheduled";
static const char VOCAB_V[] = "moved|booked|cancelled|finished|started|reviewed|sent|paid|renewed|"
                              "scheduled|postponed|approved|fixed|updated|ordered|emailed|signed|"
                              "drafted|shipped|checked|confirmed|rejected|printed|uploaded|"
                              "discussed|planned|tested|merged";
static const char VOCAB_W[] =
    "on Monday|on Tuesday|on Wednesday|on Thursday|on Friday|on Saturday|on Sunday|tomorrow|"
    "next week|this weekend|in January|in February|in March|in April|in May|in June|in July|"
    "in August|in September|in October|in November|in December|before the holidays|"
    "after lunch|at the end of the month";
static const char VOCAB_L[] = "the office|home|the library|room 4B|the Juniper room|Lisbon|Denver|"
                              "Seattle|Berlin|the clinic|the cafe|the gym|the airport|"
                              "Harbor Street|the warehouse|the school|the bank|the pharmacy|Zoom|"
                              "the community garden";
static const char VOCAB_H[] = "7:30|8:00|9:15|9:45|10:00|11:30|12:00|13:30|14:00|15:45|16:30|18:00";

/* Appends a random item of the '|'-separated list to b. */
static void vocab_pick(struct buf *b, uint64_t *s, const char *list)
{
    size_t n = 1;
    for (const char *p = list; *p != '\0'; p++)
        n += *p == '|';
    size_t k = (size_t)(rng_next(s) % n);
    const char *p = list;
    while (k-- > 0)
        p = strchr(p, '|') + 1;
    const char *end = strchr(p, '|');
    buf_append(b, p, end != NULL ? (size_t)(end - p) : strlen(p));
}

#define PICK(s, list) ((list)[rng_next(s) % (sizeof(list) / sizeof((list)[0]))])

/* Note shapes; {P} person, {J} project, {N} noun, {A} adjective, {V}
 * verb, {W} when, {L} place, {H} hour, {#} a number. */
static const char *const NOTE_SHAPES[] = {
    "{P} {V} the {A} {N} for {J}; follow up {W}.",
    "Remember the {N} with {P} at {L} {W} at {H}.",
    "I {V} the {N} at {L}; it cost {#} dollars.",
    "The {J} {N} is due {W}, and {P} owns the {A} {N}.",
    "Note to self: {V} the {N} and the {N} before {W}.",
    "{P} said the {A} {N} {V} to {W} at {H}.",
    "Call {P} about the {N} for {J} {W}.",
    "My {A} {N} is at {L}, booked {W} at {H}.",
    "{J} needs {#} more hours on the {N} before the {A} {N}.",
    "Lunch with {P} and {P} at {L} {W}; bring the {N}.",
    "The {N} at {L} costs {#} dollars a month.",
    "I prefer the {A} {N} over the {A} {N} for {J}.",
    "{P} {V} the {N} {W}; {P} still has to sign the {A} {N}.",
    "Logged {#} hours on {J} {W}, mostly the {N}.",
};
static const char *const QUERY_SHAPES[] = {
    "when is the {N} with {P}?",
    "what did {P} say about the {A} {N}?",
    "how much did the {N} at {L} cost?",
    "who owns the {J} {N}?",
    "what is due {W} for {J}?",
    "where is my {A} {N}?",
    "{N} {J} {P}",
    "remind me about the {N} at {L}",
    "how many hours did I log on {J}?",
    "did {P} {V} the {N} yet?",
};

/* The slots of the shapes, and their lists. */
static const char SLOTS[] = "PJNAVWLH";
static const char *const VOCABS[] = {VOCAB_P, VOCAB_J, VOCAB_N, VOCAB_A,
                                     VOCAB_V, VOCAB_W, VOCAB_L, VOCAB_H};

/* Fills a shape into b. */
static void shape_fill(struct buf *b, uint64_t *s, const char *shape)
{
    buf_reset(b);
    for (const char *p = shape; *p != '\0'; p++) {
        if (p[0] != '{' || p[1] == '\0' || p[2] != '}') {
            buf_putc(b, *p);
            continue;
        }
        const char *slot = strchr(SLOTS, p[1]);
        if (p[1] == '#')
            buf_printf(b, "%u", (unsigned)(rng_next(s) % 990 + 10));
        else if (slot != NULL)
            vocab_pick(b, s, VOCABS[slot - SLOTS]);
        else
            buf_append(b, p, 3);
        p += 2;
    }
}

/* Adds n synthetic notes in batches of BATCH; *ms the time. */
static int latency_store(struct mgr *g, size_t n, double *ms, size_t *text_bytes)
{
    char err[512];
    uint64_t seed = SEED_NOTES;
    struct memory_add *a = xcalloc(BATCH, sizeof *a);
    struct memory_added *out = xcalloc(BATCH, sizeof *out);
    char **texts = xcalloc(BATCH, sizeof *texts);
    struct buf b;
    buf_init(&b, 4096);
    int rc = 0;
    double total = 0;
    *text_bytes = 0;
    for (size_t i = 0; i < n && rc == 0; i += BATCH) {
        size_t m = n - i < BATCH ? n - i : BATCH;
        for (size_t k = 0; k < m; k++) {
            shape_fill(&b, &seed, PICK(&seed, NOTE_SHAPES));
            texts[k] = xstrdup(buf_cstr(&b));
            *text_bytes += b.len;
            a[k] = (struct memory_add){.tenant = TENANT_LOAD,
                                       .user = BENCH_USER,
                                       .agent = BENCH_AGENT,
                                       .text = texts[k],
                                       .no_dedup = true};
        }
        int64_t t0 = clock_mono_ns();
        if (memory_add_batch(g->m, a, m, out, err, sizeof err) != MEMORY_OK) {
            fprintf(stderr, "bench_memory: latency: memories %zu..%zu: %s\n", i, i + m - 1, err);
            rc = -1;
        }
        total += clock_since_ms(t0);
        for (size_t k = 0; k < m; k++)
            xfree(texts[k]);
    }
    *ms = total;
    buf_free(&b);
    xfree(texts);
    xfree(a);
    xfree(out);
    return rc;
}

/* The size of path plus its -wal, after a checkpoint. */
static long long file_bytes(struct mgr *g)
{
    sqlite3_exec(db_handle(g->db), "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
    long long total = 0;
    const char *suffix[] = {"", "-wal"};
    for (size_t i = 0; i < 2; i++) {
        char p[600];
        struct stat st;
        snprintf(p, sizeof p, "%s%s", g->path, suffix[i]);
        if (stat(p, &st) == 0)
            total += (long long)st.st_size;
    }
    return total;
}

static double stats_num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : (double)NAN;
}

static int bench_latency(struct bench *b)
{
    char err[512];
    int dim = b->o.dims[0];
    struct mgr g;
    if (mgr_open(b, "latency.db", dim, &g) != 0)
        return -1;
    double load_ms = 0;
    size_t text_bytes = 0;
    if (!b->o.reuse && latency_store(&g, b->o.memories, &load_ms, &text_bytes) != 0) {
        mgr_close(&g);
        return -1;
    }
    long long disk = file_bytes(&g);

    /* Above MEMORY_HNSW_THRESHOLD the graph is built as `memchat memory
     * index` builds it, then the manager is opened afresh, so the first
     * query maps the saved file as a new process would. */
    struct store_index_info info;
    int64_t tb = clock_mono_ns();
    if (memory_index(g.m, TENANT_LOAD, false, NULL, NULL, &info, err, sizeof err) != MEMORY_OK) {
        fprintf(stderr, "bench_memory: latency: index: %s\n", err);
        mgr_close(&g);
        return -1;
    }
    double build_ms = clock_since_ms(tb);
    mgr_close(&g);
    if (mgr_open(b, "latency.db", dim, &g) != 0)
        return -1;

    /* The first query loads the namespace's index (rows or file). */
    uint64_t seed = SEED_QUERIES;
    struct buf q;
    buf_init(&q, 4096);
    struct memory_result res;
    int64_t t0 = clock_mono_ns();
    shape_fill(&q, &seed, PICK(&seed, QUERY_SHAPES));
    if (memory_retrieve(g.m, TENANT_LOAD, NULL, buf_cstr(&q), 0, -1, NULL, &res, err, sizeof err) !=
        MEMORY_OK) {
        fprintf(stderr, "bench_memory: latency: first query: %s\n", err);
        buf_free(&q);
        mgr_close(&g);
        return -1;
    }
    double first_ms = clock_since_ms(t0);
    memory_result_free(&res);

    printf("\n### Retrieval latency: %zu memories in one tenant, dim %d, k = %d, one thread, "
           "%s\n\n",
           b->o.memories, dim, FACTS_K, info.hnsw ? "HNSW" : "exact scan");
    /* Cold pages make a tail of disk reads, not of search: say how much of
     * the files the page cache held when the queries began. */
    printf("In the page cache before the queries: data file %.1f %%", resident_pct(g.path));
    if (info.hnsw)
        printf(", HNSW file %.1f %%", resident_pct(info.path));
    printf(".\n\n");
    printf("| method | queries | p50 ms | p90 ms | p99 ms | max ms | mean ms | a query: page "
           "faults major / minor, KB read from disk |\n"
           "|---|---|---|---|---|---|---|---|\n");
    long long *v = xcalloc(b->o.queries, sizeof *v);
    struct sample *smp = xcalloc(b->o.queries, sizeof *smp);
    int rc = 0;
    for (size_t k = 0; k < N_METHODS && rc == 0; k++) {
        if (b->o.method >= 0 && (int)METHODS[k] != b->o.method)
            continue;
        seed = SEED_QUERIES + k;
        double sum = 0;
        for (size_t i = 0; i < WARMUP + b->o.queries && rc == 0; i++) {
            shape_fill(&q, &seed, PICK(&seed, QUERY_SHAPES));
            struct sample f0 = faults_now();
            t0 = clock_mono_ns();
            if (memory_retrieve(g.m, TENANT_LOAD, NULL, buf_cstr(&q), FACTS_K, (int)METHODS[k],
                                NULL, &res, err, sizeof err) != MEMORY_OK) {
                fprintf(stderr, "bench_memory: latency: \"%s\": %s\n", buf_cstr(&q), err);
                rc = -1;
                break;
            }
            long long dt = clock_mono_ns() - t0;
            struct sample f1 = faults_now();
            memory_result_free(&res);
            if (i >= WARMUP) {
                smp[i - WARMUP] = (struct sample){dt, f1.majflt - f0.majflt, f1.minflt - f0.minflt,
                                                  f1.inblock - f0.inblock};
                v[i - WARMUP] = dt;
                sum += (double)dt;
            }
        }
        if (rc != 0)
            break;
        size_t n = b->o.queries;
        qsort(v, n, sizeof *v, cmp_ll);
        qsort(smp, n, sizeof *smp, cmp_sample);
        if (b->o.verbose)
            faults_report(memory_method_name(METHODS[k]), smp, n);
        double majf = 0, minf = 0, kb = 0;
        for (size_t i = 0; i < n; i++) {
            majf += (double)smp[i].majflt;
            minf += (double)smp[i].minflt;
            kb += (double)smp[i].inblock / 2;
        }
        printf("| %s%s | %zu | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f / %.1f, %.1f |\n",
               memory_method_name(METHODS[k]), METHODS[k] == MEMORY_MMR ? " (default)" : "", n,
               (double)quantile(v, n, 0.50) / 1e6, (double)quantile(v, n, 0.90) / 1e6,
               (double)quantile(v, n, 0.99) / 1e6, (double)v[n - 1] / 1e6, sum / (double)n / 1e6,
               majf / (double)n, minf / (double)n, kb / (double)n);
    }
    xfree(v);
    xfree(smp);
    buf_free(&q);

    cJSON *st = NULL;
    if (rc == 0 && memory_stats(g.m, TENANT_LOAD, &st, err, sizeof err) != MEMORY_OK) {
        fprintf(stderr, "bench_memory: latency: stats: %s\n", err);
        rc = -1;
    }
    if (rc == 0) {
        double n = (double)b->o.memories;
        printf("\n| storage (%zu memories, dim %d) | total | per memory |\n|---|---|---|\n",
               b->o.memories, dim);
        if (b->o.reuse)
            printf("| load | (reused: stored by an earlier run) | |\n");
        else
            printf("| load: memory_add_batch, batches of %d | %.2f s | %.1f µs (%.0f/s) |\n", BATCH,
                   load_ms / 1e3, load_ms * 1e3 / n, n / (load_ms / 1e3));
        if (info.hnsw)
            printf("| HNSW graph: %s (M %d, efConstruction %d) | %.2f s | %.1f µs |\n"
                   "| HNSW file | %.1f MB | %.0f B |\n",
                   info.built ? "build and save" : "the saved file checked, nothing to build",
                   info.m, info.ef_construction, build_ms / 1e3, build_ms * 1e3 / n,
                   (double)info.bytes_on_disk / 1e6, (double)info.bytes_on_disk / n);
        printf("| first query (loads the index%s) | %.1f ms | |\n",
               !info.hnsw ? " from the rows"
               : config_bool(b->cfg, CFG_MEMORY_HNSW_PRELOAD)
                   ? ": maps the file, copies the vectors"
                   : ": maps the file",
               first_ms);
        if (!b->o.reuse)
            printf("| text (UTF-8 bytes) | %.1f MB | %.0f B |\n", (double)text_bytes / 1e6,
                   (double)text_bytes / n);
        printf("| data file after checkpoint (file size) | %.1f MB | %.0f B |\n",
               (double)disk / 1e6, (double)disk / n);
        printf("| bytes_on_disk (store's estimate) | %.1f MB | %.0f B |\n",
               stats_num(st, "bytes_on_disk") / 1e6, stats_num(st, "bytes_on_disk") / n);
        printf("| bytes_in_memory (the index) | %.1f MB | %.0f B |\n",
               stats_num(st, "bytes_in_memory") / 1e6, stats_num(st, "bytes_in_memory") / n);
        double c = stats_num(st, "count");
        if (!(c == n)) {
            fprintf(stderr, "bench_memory: latency: stats count %.0f, expected %zu\n", c,
                    b->o.memories);
            rc = -1;
        }
    }
    cJSON_Delete(st);
    mgr_close(&g);
    return rc;
}

/* ---- main -------------------------------------------------------------- */

static int parse_size(const char *s, size_t lo, size_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < (long long)lo || v > 100000000LL)
        return -1;
    *out = (size_t)v;
    return 0;
}

/* Applies every --set=NAME=VALUE of argv to cfg, before the defaults
 * are read. 0 or -1 (message printed). */
static int apply_sets(struct config *cfg, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--set=", 6) != 0)
            continue;
        char name[128], err[512];
        const char *eq = strchr(argv[i] + 6, '=');
        size_t len = eq != NULL ? (size_t)(eq - (argv[i] + 6)) : 0;
        if (eq == NULL || len == 0 || len >= sizeof name) {
            fprintf(stderr, "bench_memory: %s: need --set=NAME=VALUE\n", argv[i]);
            return -1;
        }
        memcpy(name, argv[i] + 6, len);
        name[len] = '\0';
        int id = config_find(cfg, name);
        if (id < 0) {
            fprintf(stderr, "bench_memory: %s: no such variable\n", argv[i]);
            return -1;
        }
        if (config_set(cfg, id, eq + 1, err, sizeof err) != 0) {
            fprintf(stderr, "bench_memory: %s\n", err);
            return -1;
        }
    }
    return 0;
}

static int parse_args(int argc, char **argv, struct opts *o, int default_dim)
{
    *o = (struct opts){.srcdir = ".",
                       .facts = true,
                       .scifact = true,
                       .latency = true,
                       .memories = DEFAULT_N,
                       .queries = DEFAULT_Q,
                       .method = -1,
                       .dims = {default_dim},
                       .n_dims = 1};
    bool quick = false, memories_set = false;
    const char *a = "";
    for (int i = 1; i < argc; i++) {
        a = argv[i];
        if (strcmp(a, "--quick") == 0) {
            quick = true;
        } else if (strcmp(a, "--verbose") == 0) {
            o->verbose = true;
        } else if (strcmp(a, "--keep") == 0) {
            o->keep = true;
        } else if (strncmp(a, "--reuse=", 8) == 0) {
            o->reuse = o->keep = true; /* main() chose the directory */
        } else if (strncmp(a, "--only=", 7) == 0) {
            o->facts = strcmp(a + 7, "facts") == 0;
            o->scifact = strcmp(a + 7, "scifact") == 0;
            o->latency = strcmp(a + 7, "latency") == 0;
            if (!o->facts && !o->scifact && !o->latency)
                goto usage;
        } else if (strncmp(a, "--memories=", 11) == 0) {
            if (parse_size(a + 11, 1, &o->memories) != 0)
                goto usage;
            memories_set = true;
        } else if (strncmp(a, "--method=", 9) == 0) {
            enum memory_method m;
            if (memory_method_parse(a + 9, &m) != 0)
                goto usage;
            o->method = (int)m;
        } else if (strncmp(a, "--queries=", 10) == 0) {
            if (parse_size(a + 10, 1, &o->queries) != 0)
                goto usage;
        } else if (strncmp(a, "--set=", 6) == 0) {
            continue; /* apply_sets */
        } else if (strncmp(a, "--scifact=", 10) == 0) {
            o->scifact_dir = a + 10;
        } else if (strncmp(a, "--dims=", 7) == 0) {
            const char *p = a + 7;
            while (*p != '\0') {
                char *end;
                errno = 0;
                long d = strtol(p, &end, 10);
                if (errno != 0 || end == p || d < 16 || d > 4096 || (*end != ',' && *end != '\0'))
                    goto usage;
                bool dup = false;
                for (size_t k = 0; k < o->n_dims; k++)
                    dup |= o->dims[k] == (int)d;
                if (!dup) {
                    if (o->n_dims == MAX_DIMS)
                        goto usage;
                    o->dims[o->n_dims++] = (int)d;
                }
                p = *end == ',' ? end + 1 : end;
            }
        } else if (a[0] != '-') {
            o->srcdir = a;
        } else {
            goto usage;
        }
    }
    if (quick && !memories_set)
        o->memories = QUICK_N;
    return 0;
usage:
    fprintf(stderr,
            "usage: bench_memory [SRCDIR] [--quick] [--only=facts|scifact|latency] "
            "[--dims=D,D,...] [--memories=N] [--queries=N] [--method=NAME] [--scifact=DIR] "
            "[--set=NAME=VALUE]... [--verbose] [--keep] [--reuse=DIR]\n"
            "bench_memory: bad argument %s (dimensions 16..4096, at most %d)\n",
            a, MAX_DIMS);
    return -1;
}

int main(int argc, char **argv)
{
    if (mc_global_init() != 0)
        return 1;
    setvbuf(stdout, NULL, _IOLBF, 0); /* each row as soon as it is measured */
    struct bench b = {0};
    const char *reuse = NULL;
    for (int i = 1; i < argc; i++)
        if (strncmp(argv[i], "--reuse=", 8) == 0)
            reuse = argv[i] + 8;
    if (reuse != NULL && (size_t)snprintf(b.dir, sizeof b.dir, "%s", reuse) >= sizeof b.dir) {
        fprintf(stderr, "bench_memory: --reuse: the path is too long\n");
        return 1;
    }
    if (reuse == NULL) {
        snprintf(b.dir, sizeof b.dir, "/tmp/memchat-bench-memory-XXXXXX");
        if (mkdtemp(b.dir) == NULL) {
            perror("bench_memory: mkdtemp");
            return 1;
        }
    }
    char data[300], conf[300], err[512];
    snprintf(data, sizeof data, "MEMCHAT_DATA_DIR=%s", b.dir);
    snprintf(conf, sizeof conf, "MEMCHAT_CONFIG_DIR=%s", b.dir);
    const char *flags[] = {data, conf};
    const char *env_vars[] = {"LOGNAME=bench", NULL};
    b.cfg = config_new_memchat();
    struct config_load_opts lo = {
        .dotenv_path = "", .environ = env_vars, .flags = flags, .n_flags = 2};
    int rc = 0;
    if (config_load(b.cfg, &lo, err, sizeof err) != 0) {
        fprintf(stderr, "bench_memory: %s\n", err);
        rc = -1;
    }
    if (rc == 0 && apply_sets(b.cfg, argc, argv) != 0)
        rc = -1;
    if (rc == 0 &&
        parse_args(argc, argv, &b.o, (int)config_int(b.cfg, CFG_EMBEDDINGS_DIMENSION)) != 0)
        rc = -1;
    if (rc == 0) {
        struct memory_settings set;
        memory_settings_from_config(b.cfg, &set);
        printf("## bench_memory: local embedder, local store; default method %s, k %zu, "
               "diversity %.2f, fetch_k %zu, hybrid fusion %s (keyword weight %.2f), "
               "EMBEDDINGS_DIMENSION %d\n",
               memory_method_name(set.method), set.k, set.diversity,
               set.fetch_k ? set.fetch_k : 4 * set.k,
               set.fusion == MEMORY_FUSION_RRF ? "rrf" : "score", set.keyword_weight, b.o.dims[0]);
    }
    if (rc == 0 && b.o.facts)
        rc = bench_facts(&b);
    if (rc == 0 && b.o.scifact)
        rc = bench_scifact(&b);
    if (rc == 0 && b.o.latency)
        rc = bench_latency(&b);
    config_free(b.cfg);
    if (b.o.keep) {
        fprintf(stderr, "bench_memory: data files kept in %s\n", b.dir);
    } else {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", b.dir);
        if (system(cmd) != 0)
            rc = -1;
    }
    return rc == 0 && b.failures == 0 ? 0 : 1;
}
