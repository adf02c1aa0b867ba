/*
 * The conformance suite of the vector stores (memory/store.h), shared by
 * the local store's tests (tests/unit/test_vstore.c) and the remote
 * stores' (tests/integration/test_store_*.c): seeded unit vectors, test
 * memories with a view as mem_record, the brute-force reference (every
 * query, list, count and keyword answer checked against filter_match and
 * inner products computed here in double precision), and THE isolation
 * property test, suite_isolation(), which runs against any set of stores
 * over one backend (several connections of the same database, or several
 * clients of the same server); and suite_contract(), the promises of the
 * interface on one store.
 *
 * Use: include it after testutil.h; stores must hold vectors of DIM (16)
 * floats, so a server with a fixed dimension (Pinecone) is started with
 * 16. A store without keyword search (ops->keyword NULL) skips those
 * checks. A test uses what it needs of the helpers.
 */
#ifndef MEMCHAT_STORE_SUITE_H
#define MEMCHAT_STORE_SUITE_H

#include "testutil.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "memory/filter.h"
#include "memory/store.h"
#include "util/ident.h"

/* Not every test uses every helper; unused ones must not warn. */
#define SUITE_FN static __attribute__((unused))

#define DIM 16
/* Score tolerance: float32 sums of 16 products of unit vectors. */
#define EPS 1e-4

/* --- deterministic vectors ------------------------------------------------- */

SUITE_FN uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

SUITE_FN double rng_unit(uint64_t *s)
{
    return (double)(rng_next(s) >> 11) * 0x1p-53;
}

SUITE_FN size_t rng_below(uint64_t *s, size_t n)
{
    return (size_t)(rng_next(s) % n);
}

/* A random unit vector. */
SUITE_FN void rand_vec(uint64_t *s, float *v)
{
    double norm = 0;
    for (int i = 0; i < DIM; i++) {
        double x = rng_unit(s) * 2 - 1;
        v[i] = (float)x;
        norm += x * x;
    }
    norm = sqrt(norm);
    for (int i = 0; i < DIM; i++)
        v[i] = (float)((double)v[i] / norm);
}

/* The unit vector of a seed (the same text always gets the same one). */
SUITE_FN void seed_vec(uint64_t seed, float *v)
{
    uint64_t s = seed * 7919 + 17;
    rand_vec(&s, v);
}

SUITE_FN double ref_dot(const float *a, const float *b)
{
    double d = 0;
    for (int i = 0; i < DIM; i++)
        d += (double)a[i] * (double)b[i];
    return d;
}

/* --- test memories ------------------------------------------------------------ */

/* A memory as the tests know it; tm_rec() views it as a mem_record. */
struct tmem {
    char tenant[IDENT_MAX + 1];
    char id[MC_UUID_STRLEN + 1];
    char text[200];
    char user[IDENT_MAX + 1];
    char agent[IDENT_MAX + 1];
    char kind[MEM_KIND_MAX + 1];
    int64_t created, updated;
    char meta[96]; /* "" stands for NULL */
    float vec[DIM];
    bool alive;
    bool sel; /* marked by select_refs() */
};

SUITE_FN struct mem_record tm_rec(struct tmem *m)
{
    struct mem_record r;
    memset(&r, 0, sizeof r);
    snprintf(r.id, sizeof r.id, "%s", m->id);
    r.text = m->text;
    snprintf(r.user_id, sizeof r.user_id, "%s", m->user);
    snprintf(r.agent, sizeof r.agent, "%s", m->agent);
    snprintf(r.kind, sizeof r.kind, "%s", m->kind);
    r.created_at = m->created;
    r.updated_at = m->updated;
    r.metadata = m->meta[0] != '\0' ? m->meta : NULL;
    r.vector = m->vec;
    r.dim = DIM;
    return r;
}

/* A UUIDv7-shaped id from a number. */
SUITE_FN void make_id(char out[MC_UUID_STRLEN + 1], unsigned long long n)
{
    snprintf(out, MC_UUID_STRLEN + 1, "0190a1b2-c3d4-7e5f-8a6b-%012llx", n);
}

SUITE_FN void tm_init(struct tmem *m, const char *tenant, unsigned long long idn, const char *text,
                      const char *user, int64_t created, uint64_t vseed)
{
    memset(m, 0, sizeof *m);
    snprintf(m->tenant, sizeof m->tenant, "%s", tenant);
    make_id(m->id, idn);
    snprintf(m->text, sizeof m->text, "%s", text);
    snprintf(m->user, sizeof m->user, "%s", user);
    snprintf(m->agent, sizeof m->agent, "assistant");
    snprintf(m->kind, sizeof m->kind, "note");
    m->created = created;
    m->updated = created;
    seed_vec(vseed, m->vec);
    m->alive = true;
}

SUITE_FN void ns_make(struct vstore *s, const char *tenant)
{
    struct store_ns ns = {.embedder = "local", .model = "hash-v1", .dim = DIM};
    char err[512];
    if (s->ops->ns_create(s, tenant, &ns, err, sizeof err) != 0)
        fail_msg("ns_create %s: %s", tenant, err);
}

SUITE_FN void upsert_ok(struct vstore *s, struct tmem *ms, size_t n)
{
    struct mem_record *rs = calloc(n ? n : 1, sizeof *rs);
    assert_non_null(rs);
    for (size_t i = 0; i < n; i++)
        rs[i] = tm_rec(&ms[i]);
    char err[512];
    if (s->ops->upsert(s, ms[0].tenant, rs, n, err, sizeof err) != 0)
        fail_msg("upsert: %s", err);
    free(rs);
}

SUITE_FN struct mem_records query_ok(struct vstore *s, const char *tenant, const float *q, size_t k,
                                     const struct mem_filter *f)
{
    struct mem_records out;
    char err[512];
    if (s->ops->query(s, tenant, q, k, f, &out, err, sizeof err) != 0)
        fail_msg("query %s: %s", tenant, err);
    return out;
}

SUITE_FN size_t count_ok(struct vstore *s, const char *tenant, const struct mem_filter *f)
{
    size_t n = 0;
    char err[512];
    if (s->ops->count(s, tenant, f, &n, err, sizeof err) != 0)
        fail_msg("count %s: %s", tenant, err);
    return n;
}

SUITE_FN struct mem_filter *parse_ok(const char *json)
{
    char err[512];
    struct mem_filter *f = filter_parse(json, err, sizeof err);
    if (f == NULL)
        fail_msg("filter_parse %s: %s", json, err);
    return f;
}

/* True when the store's record equals the test memory in every field. */
SUITE_FN bool rec_equals(const struct mem_record *r, const struct tmem *m, bool with_vector)
{
    const char *meta = m->meta[0] != '\0' ? m->meta : "{}";
    if (strcmp(r->id, m->id) != 0 || strcmp(r->text, m->text) != 0 ||
        strcmp(r->user_id, m->user) != 0 || strcmp(r->agent, m->agent) != 0 ||
        strcmp(r->kind, m->kind) != 0 || r->created_at != m->created ||
        r->updated_at != (m->updated > 0 ? m->updated : m->created) || r->metadata == NULL ||
        strcmp(r->metadata, meta) != 0)
        return false;
    if (!with_vector)
        return r->vector == NULL;
    return r->vector != NULL && r->dim == DIM && memcmp(r->vector, m->vec, sizeof m->vec) == 0;
}

/* The test memory of tenant with id among ms[0..n), or NULL. */
SUITE_FN struct tmem *tm_find(struct tmem *ms, size_t n, const char *tenant, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (ms[i].alive && strcmp(ms[i].tenant, tenant) == 0 && strcmp(ms[i].id, id) == 0)
            return &ms[i];
    return NULL;
}

SUITE_FN bool tm_matches(struct tmem *m, const struct mem_filter *f)
{
    struct mem_record r = tm_rec(m);
    return filter_match(f, &r);
}

/* Marks (sel) the live memories of tenant that f selects, by
 * filter_match, the reference; returns how many. The checks below read
 * the marks, so a caller checking several operations under one filter
 * computes them once. */
SUITE_FN size_t select_refs(struct tmem *ms, size_t n, const char *tenant,
                            const struct mem_filter *f)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        ms[i].sel = ms[i].alive && strcmp(ms[i].tenant, tenant) == 0 && tm_matches(&ms[i], f);
        count += ms[i].sel;
    }
    return count;
}

/* Checks a query's answer against the brute-force reference of the
 * marked memories: the right number of records, each a marked one of
 * tenant's own (equal in every field), scored with its exact inner
 * product, best first, no repeats, and no marked memory left out that
 * scores better than the last one returned. */
SUITE_FN void check_query_sel(struct vstore *s, const char *tenant, const float *q, size_t k,
                              const struct mem_filter *f, struct tmem *ms, size_t n,
                              size_t matching)
{
    struct mem_records out = query_ok(s, tenant, q, k, f);
    size_t want = k < matching ? k : matching;
    if (out.n != want)
        fail_msg("query %s k=%zu: %zu results, want %zu", tenant, k, out.n, want);
    double lowest = INFINITY;
    for (size_t i = 0; i < out.n; i++) {
        struct mem_record *r = &out.v[i];
        struct tmem *m = tm_find(ms, n, tenant, r->id);
        if (m == NULL || !rec_equals(r, m, true) || !m->sel)
            fail_msg("query %s: result %s is not one of the tenant's selected memories", tenant,
                     r->id);
        if (fabs(r->score - ref_dot(q, m->vec)) > EPS)
            fail_msg("query %s: score %f, want %f", tenant, r->score, ref_dot(q, m->vec));
        if (i > 0)
            assert_true(r->score <= out.v[i - 1].score + 1e-6);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(out.v[j].id, r->id);
        lowest = r->score;
    }
    if (out.n < matching) {
        for (size_t i = 0; i < n; i++) {
            if (!ms[i].sel)
                continue;
            bool returned = false;
            for (size_t j = 0; j < out.n && !returned; j++)
                returned = strcmp(out.v[j].id, ms[i].id) == 0;
            if (!returned && ref_dot(q, ms[i].vec) > lowest + EPS)
                fail_msg("query %s: %s scores %f, above the last result's %f", tenant, ms[i].id,
                         ref_dot(q, ms[i].vec), lowest);
        }
    }
    mem_records_free(&out);
}

SUITE_FN void check_query(struct vstore *s, const char *tenant, const float *q, size_t k,
                          const struct mem_filter *f, struct tmem *ms, size_t n)
{
    size_t matching = select_refs(ms, n, tenant, f);
    check_query_sel(s, tenant, q, k, f, ms, n, matching);
}

/* Checks list (every page of `page`) and count against the marked
 * memories. */
SUITE_FN void check_list_count_sel(struct vstore *s, const char *tenant, const struct mem_filter *f,
                                   size_t page, struct tmem *ms, size_t n, size_t matching)
{
    char after[MC_UUID_STRLEN + 1] = "";
    size_t seen = 0;
    char err[512];
    for (;;) {
        struct mem_records out;
        if (s->ops->list(s, tenant, f, after[0] ? after : NULL, page, true, &out, err,
                         sizeof err) != 0)
            fail_msg("list %s: %s", tenant, err);
        for (size_t i = 0; i < out.n; i++) {
            struct tmem *m = tm_find(ms, n, tenant, out.v[i].id);
            if (m == NULL || !rec_equals(&out.v[i], m, true) || !m->sel)
                fail_msg("list %s: %s is not one of the tenant's selected memories", tenant,
                         out.v[i].id);
            assert_true(strcmp(out.v[i].id, after) > 0); /* id order, no repeats */
            snprintf(after, sizeof after, "%s", out.v[i].id);
        }
        seen += out.n;
        size_t got = out.n;
        mem_records_free(&out);
        if (got < page)
            break;
    }
    assert_int_equal(seen, matching);
    assert_int_equal(count_ok(s, tenant, f), matching);
}

SUITE_FN void check_list_count(struct vstore *s, const char *tenant, const struct mem_filter *f,
                               size_t page, struct tmem *ms, size_t n)
{
    size_t matching = select_refs(ms, n, tenant, f);
    check_list_count_sel(s, tenant, f, page, ms, n, matching);
}

/* True when word is one of text's space-separated words. */
SUITE_FN bool has_word(const char *text, const char *word)
{
    size_t wl = strlen(word);
    for (const char *p = text; (p = strstr(p, word)) != NULL; p++)
        if ((p == text || p[-1] == ' ') && (p[wl] == ' ' || p[wl] == '\0'))
            return true;
    return false;
}

/* Checks keyword search for one word against the reference: exactly the
 * marked memories that hold the word, best first, scores positive. */
SUITE_FN void check_keyword_sel(struct vstore *s, const char *tenant, const char *word,
                                const struct mem_filter *f, struct tmem *ms, size_t n)
{
    struct mem_records out;
    char err[512];
    if (s->ops->keyword(s, tenant, word, 100000, f, &out, err, sizeof err) != 0)
        fail_msg("keyword %s: %s", tenant, err);
    size_t want = 0;
    for (size_t i = 0; i < n; i++)
        if (ms[i].sel && has_word(ms[i].text, word))
            want++;
    if (out.n != want)
        fail_msg("keyword %s %s: %zu results, want %zu", tenant, word, out.n, want);
    for (size_t i = 0; i < out.n; i++) {
        struct tmem *m = tm_find(ms, n, tenant, out.v[i].id);
        if (m == NULL || !rec_equals(&out.v[i], m, true) || !m->sel || !has_word(m->text, word))
            fail_msg("keyword %s: %s is not one of the tenant's selected memories with %s", tenant,
                     out.v[i].id, word);
        assert_true(out.v[i].score > 0);
        if (i > 0)
            assert_true(out.v[i].score <= out.v[i - 1].score);
    }
    mem_records_free(&out);
}

SUITE_FN void check_keyword(struct vstore *s, const char *tenant, const char *word,
                            const struct mem_filter *f, struct tmem *ms, size_t n)
{
    select_refs(ms, n, tenant, f);
    check_keyword_sel(s, tenant, word, f, ms, n);
}

/* --- the isolation property test ------------------------------------------------ */

enum {
    ISO_TENANTS = 24,
    ISO_PER_TENANT = 100, /* 2,400 memories */
    ISO_TEXTS = 120,
    ISO_IDS = 200,
};

static const char *const nato[] = {
    "alpha",  "bravo", "charlie", "delta",  "echo",     "foxtrot", "golf",   "hotel",  "india",
    "juliet", "kilo",  "lima",    "mike",   "november", "oscar",   "papa",   "quebec", "romeo",
    "sierra", "tango", "uniform", "victor", "whiskey",  "xray",    "yankee", "zulu",
};

/* Text number i of the shared pool: three to five NATO words. */
SUITE_FN void iso_text(size_t i, char *out, size_t outlen)
{
    uint64_t s = i * 31 + 7;
    size_t words = 3 + rng_below(&s, 3), len = 0;
    out[0] = '\0';
    for (size_t w = 0; w < words; w++)
        len += (size_t)snprintf(out + len, outlen - len, "%s%s", w ? " " : "",
                                nato[rng_below(&s, sizeof nato / sizeof nato[0])]);
}

SUITE_FN void iso_fill(struct tmem *m, const char *tenant, size_t t, size_t idn, size_t text,
                       uint64_t *rng, int64_t created)
{
    char buf[200], user[8];
    iso_text(text, buf, sizeof buf);
    snprintf(user, sizeof user, "u%zu", rng_below(rng, 4));
    tm_init(m, tenant, (unsigned long long)idn + 1, buf, user, created, (uint64_t)text);
    static const char *const kinds[] = {"note", "exchange", "fact"};
    snprintf(m->kind, sizeof m->kind, "%s", kinds[rng_below(rng, 3)]);
    snprintf(m->agent, sizeof m->agent, "agent%zu", rng_below(rng, 2));
    snprintf(m->meta, sizeof m->meta, "{\"topic\":\"%s\",\"n\":%zu}",
             rng_below(rng, 2) ? "work" : "home", rng_below(rng, 10));
    (void)t;
}

static const char *const iso_filters[] = {
    NULL,
    "{\"user_id\":\"u1\"}",
    "{\"kind\":{\"$in\":[\"note\",\"fact\"]}}",
    "{\"topic\":\"work\"}",
    "{\"$or\":[{\"user_id\":\"u2\"},{\"n\":{\"$lt\":3}}]}",
    "{\"id\":{\"$in\":[\"0190a1b2-c3d4-7e5f-8a6b-000000000001\","
    "\"0190a1b2-c3d4-7e5f-8a6b-000000000002\",\"0190a1b2-c3d4-7e5f-8a6b-000000000003\","
    "\"0190a1b2-c3d4-7e5f-8a6b-000000000004\",\"0190a1b2-c3d4-7e5f-8a6b-000000000005\"]}}",
    "{\"created_at\":{\"$gte\":1700000050000}}",
};
enum { ISO_NF = sizeof iso_filters / sizeof iso_filters[0] };

/* Every operation of every tenant against the reference, through store
 * s_of(t): queries with vectors of the tenant's own texts, of texts only
 * other tenants hold, and random ones, under every filter and several k;
 * keyword, list and count under every filter. */
SUITE_FN void iso_check_all(struct vstore *const *stores, size_t n_stores, struct tmem *ms,
                            struct mem_filter *const *filters, uint64_t *rng, size_t round)
{
    for (size_t t = 0; t < ISO_TENANTS; t++) {
        char tenant[16];
        snprintf(tenant, sizeof tenant, "t%02zu", t);
        struct vstore *s = stores[(t + round) % n_stores];
        /* The tenant's own slice is the reference: a record of any other
         * tenant is not in it, so returning one fails the checks. */
        struct tmem *mine = &ms[t * ISO_PER_TENANT];
        float qs[3][DIM];
        rand_vec(rng, qs[0]);
        seed_vec((uint64_t)rng_below(rng, ISO_TEXTS), qs[1]); /* a pooled text's */
        struct tmem *own = &ms[t * ISO_PER_TENANT + rng_below(rng, ISO_PER_TENANT)];
        memcpy(qs[2], own->vec, sizeof qs[2]);
        for (size_t fi = 0; fi < ISO_NF; fi++) {
            size_t matching = select_refs(mine, ISO_PER_TENANT, tenant, filters[fi]);
            /* The three vectors and three k rotate over the filters. */
            size_t r = fi + round + t;
            static const size_t ks[] = {1, 8, 100000};
            check_query_sel(s, tenant, qs[r % 3], ks[r % 3], filters[fi], mine, ISO_PER_TENANT,
                            matching);
            check_query_sel(s, tenant, qs[(r + 1) % 3], ks[(r + 2) % 3], filters[fi], mine,
                            ISO_PER_TENANT, matching);
            check_list_count_sel(s, tenant, filters[fi], 40, mine, ISO_PER_TENANT, matching);
            const char *word = nato[rng_below(rng, sizeof nato / sizeof nato[0])];
            if (s->ops->keyword != NULL)
                check_keyword_sel(s, tenant, word, filters[fi], mine, ISO_PER_TENANT);
        }
    }
}

/* THE isolation property (issue 6, item 6): 2,400 memories in 24
 * tenants, drawn from one pool of 120 texts and 200 ids, so most texts and
 * ids exist in several tenants with equal vectors. Written through three
 * connections (two sharing a cache), then changed (updates, deletes by id
 * with ids of other tenants among them, deletes by filter, three purges),
 * every query, keyword search, list, count and delete of every tenant is
 * checked after each phase to return, count or touch only that tenant's
 * memories, and queries to equal the brute-force top k. Fixed seed. */
SUITE_FN void suite_isolation(struct vstore *const *stores, size_t n_stores)
{
    size_t n = (size_t)ISO_TENANTS * ISO_PER_TENANT;
    struct tmem *ms = calloc(n, sizeof *ms);
    assert_non_null(ms);
    struct mem_filter *filters[ISO_NF];
    for (size_t i = 0; i < ISO_NF; i++)
        filters[i] = iso_filters[i] != NULL ? parse_ok(iso_filters[i]) : NULL;
    uint64_t rng = 20240601;
    char err[512];

    for (size_t t = 0; t < ISO_TENANTS; t++) {
        char tenant[16];
        snprintf(tenant, sizeof tenant, "t%02zu", t);
        ns_make(stores[t % n_stores], tenant);
        /* Distinct ids and texts within the tenant, from the shared pools. */
        size_t ids[ISO_IDS], texts[ISO_TEXTS];
        for (size_t i = 0; i < ISO_IDS; i++)
            ids[i] = i;
        for (size_t i = 0; i < ISO_TEXTS; i++)
            texts[i] = i;
        for (size_t i = 0; i < ISO_PER_TENANT; i++) {
            size_t j = i + rng_below(&rng, ISO_IDS - i);
            size_t tmp = ids[i];
            ids[i] = ids[j];
            ids[j] = tmp;
            j = i + rng_below(&rng, ISO_TEXTS - i);
            tmp = texts[i];
            texts[i] = texts[j];
            texts[j] = tmp;
            /* created_at is unique across all tenants: a record of another
             * tenant can never pass for one of this tenant's. */
            iso_fill(&ms[t * ISO_PER_TENANT + i], tenant, t, ids[i], texts[i], &rng,
                     1700000000000 + (int64_t)(t * ISO_PER_TENANT + i) * 37);
        }
        upsert_ok(stores[(t + 1) % n_stores], &ms[t * ISO_PER_TENANT], ISO_PER_TENANT);
    }
    iso_check_all(stores, n_stores, ms, filters, &rng, 0);

    /* Changes: updates to other texts, deletes by id (the list holds ids
     * that only other tenants have), deletes by filter, three purges. */
    for (size_t t = 0; t < ISO_TENANTS; t++) {
        char tenant[16];
        snprintf(tenant, sizeof tenant, "t%02zu", t);
        struct vstore *s = stores[rng_below(&rng, n_stores)];
        struct tmem *mine = &ms[t * ISO_PER_TENANT];
        for (int u = 0; u < 10; u++) {
            struct tmem *m = &mine[rng_below(&rng, ISO_PER_TENANT)];
            if (!m->alive)
                continue;
            int64_t created = m->created;
            char id[MC_UUID_STRLEN + 1];
            snprintf(id, sizeof id, "%s", m->id);
            iso_fill(m, tenant, t, 0, rng_below(&rng, ISO_TEXTS), &rng, created);
            snprintf(m->id, sizeof m->id, "%s", id);
            upsert_ok(s, m, 1);
        }
        const char *del[12];
        size_t nd = 0, want = 0;
        for (int d = 0; d < 12; d++) {
            char probe[MC_UUID_STRLEN + 1];
            make_id(probe, (unsigned long long)rng_below(&rng, ISO_IDS) + 1);
            struct tmem *m = tm_find(ms, n, tenant, probe);
            struct tmem *any = NULL;
            for (size_t i = 0; i < n && any == NULL; i++)
                if (strcmp(ms[i].id, probe) == 0)
                    any = &ms[i];
            if (any == NULL)
                continue;
            bool dup = false;
            for (size_t j = 0; j < nd; j++)
                dup = dup || strcmp(del[j], any->id) == 0;
            if (dup)
                continue;
            del[nd++] = any->id; /* possibly another tenant's id only */
            if (m != NULL)
                want++;
        }
        /* The reference changes after the call: del points into ms. */
        size_t deleted = 0;
        if (s->ops->delete_ids(s, tenant, del, nd, &deleted, err, sizeof err) != 0)
            fail_msg("delete_ids: %s", err);
        assert_int_equal(deleted, want);
        for (size_t j = 0; j < nd; j++) {
            struct tmem *m = tm_find(ms, n, tenant, del[j]);
            if (m != NULL)
                m->alive = false;
        }
        if (t % 5 == 0) {
            const struct mem_filter *f = filters[1 + t / 5 % (ISO_NF - 1)];
            want = 0;
            for (size_t i = 0; i < ISO_PER_TENANT; i++)
                if (mine[i].alive && tm_matches(&mine[i], f)) {
                    mine[i].alive = false;
                    want++;
                }
            if (s->ops->delete_filter(s, tenant, f, &deleted, err, sizeof err) != 0)
                fail_msg("delete_filter: %s", err);
            assert_int_equal(deleted, want);
        }
    }
    size_t purged = 0;
    for (size_t t = 3; t < ISO_TENANTS; t += 10, purged++) {
        char tenant[16];
        snprintf(tenant, sizeof tenant, "t%02zu", t);
        size_t deleted = 0, want = 0;
        for (size_t i = 0; i < ISO_PER_TENANT; i++)
            if (ms[t * ISO_PER_TENANT + i].alive) {
                ms[t * ISO_PER_TENANT + i].alive = false;
                want++;
            }
        if (stores[t % n_stores]->ops->delete_filter(stores[t % n_stores], tenant, NULL, &deleted,
                                                     err, sizeof err) != 0)
            fail_msg("purge: %s", err);
        assert_int_equal(deleted, want);
    }
    iso_check_all(stores, n_stores, ms, filters, &rng, 1);

    /* Finally every tenant's whole content, through every store. */
    for (size_t k = 0; k < n_stores; k++)
        for (size_t t = 0; t < ISO_TENANTS; t++) {
            char tenant[16];
            snprintf(tenant, sizeof tenant, "t%02zu", t);
            check_list_count(stores[k], tenant, NULL, 1000, &ms[t * ISO_PER_TENANT],
                             ISO_PER_TENANT);
        }
    char **names;
    size_t nn;
    assert_int_equal(stores[0]->ops->namespaces(stores[0], &names, &nn, err, sizeof err), 0);
    assert_int_equal(nn, ISO_TENANTS - purged);
    store_names_free(names, nn);

    for (size_t i = 0; i < ISO_NF; i++)
        filter_free(filters[i]);
    free(ms);
}

/* --- the contract of every store ------------------------------------------------ */

/* The behaviour every store promises (memory/store.h), on one store whose
 * backend holds no namespace of the tenants "sc-acme", "sc-alpha" and
 * "sc-zeta" yet: every field round-trips (UTF-8 text, metadata, both
 * timestamps; a zero updated_at reads back as created_at); with and
 * without vectors; an upsert of an existing id replaces it in place;
 * namespaces remember embedder, model and dimension and refuse another
 * naming both; ns_get says 1 for an unknown tenant; namespaces() lists
 * them sorted; a query of an unknown tenant is empty; invalid tenants are
 * refused by every operation naming the pattern; purge removes the
 * namespace and only it. */
SUITE_FN void suite_contract(struct vstore *s)
{
    char err[512];
    struct store_ns got;
    assert_int_equal(s->ops->ns_get(s, "sc-zeta", &got, err, sizeof err), 1);
    struct store_ns ns = {.embedder = "local", .model = "hash-v1", .dim = DIM, .created_ms = 42};
    assert_int_equal(s->ops->ns_create(s, "sc-zeta", &ns, err, sizeof err), 0);
    assert_int_equal(s->ops->ns_create(s, "sc-zeta", &ns, err, sizeof err), 0);
    assert_int_equal(s->ops->ns_get(s, "sc-zeta", &got, err, sizeof err), 0);
    assert_string_equal(got.embedder, "local");
    assert_string_equal(got.model, "hash-v1");
    assert_int_equal(got.dim, DIM);
    assert_int_equal(got.count, 0);
    struct store_ns other = ns;
    other.dim = DIM * 2;
    assert_int_equal(s->ops->ns_create(s, "sc-zeta", &other, err, sizeof err), -1);
    assert_non_null(strstr(err, "sc-zeta"));
    other = ns;
    snprintf(other.embedder, sizeof other.embedder, "openai");
    assert_int_equal(s->ops->ns_create(s, "sc-zeta", &other, err, sizeof err), -1);
    assert_non_null(strstr(err, "openai"));

    ns_make(s, "sc-acme");
    struct tmem m[2];
    tm_init(&m[0], "sc-acme", 1,
            "You logged 35 hours last week on Apollo \xe2\x80\x94 caf\xc3\xa9 \"q\" \\", "u-1",
            1710000000123, 1);
    snprintf(m[0].agent, sizeof m[0].agent, "planner_2");
    snprintf(m[0].kind, sizeof m[0].kind, "exchange");
    m[0].updated = 1710000999999;
    snprintf(m[0].meta, sizeof m[0].meta, "{\"project\":\"apollo\",\"n\":3,\"ok\":true}");
    tm_init(&m[1], "sc-acme", 2, "banana bread recipe", "u_2", 1710000000456, 2);
    m[1].updated = 0;
    upsert_ok(s, m, 2);
    m[1].updated = m[1].created;

    struct mem_records out;
    assert_int_equal(s->ops->list(s, "sc-acme", NULL, NULL, 10, true, &out, err, sizeof err), 0);
    assert_int_equal(out.n, 2);
    assert_true(rec_equals(&out.v[0], &m[0], true));
    assert_true(rec_equals(&out.v[1], &m[1], true));
    mem_records_free(&out);
    assert_int_equal(s->ops->list(s, "sc-acme", NULL, NULL, 10, false, &out, err, sizeof err), 0);
    assert_int_equal(out.n, 2);
    assert_true(rec_equals(&out.v[0], &m[0], false));
    mem_records_free(&out);
    out = query_ok(s, "sc-acme", m[0].vec, 1, NULL);
    assert_int_equal(out.n, 1);
    assert_true(rec_equals(&out.v[0], &m[0], true));
    assert_true(fabs(out.v[0].score - 1.0) < EPS);
    mem_records_free(&out);

    /* replace in place */
    struct tmem n2;
    tm_init(&n2, "sc-acme", 2, "the new text about giraffes", "u2", 2000, 99);
    snprintf(n2.kind, sizeof n2.kind, "fact");
    snprintf(n2.meta, sizeof n2.meta, "{\"v\":2}");
    upsert_ok(s, &n2, 1);
    assert_int_equal(count_ok(s, "sc-acme", NULL), 2);
    out = query_ok(s, "sc-acme", n2.vec, 1, NULL);
    assert_int_equal(out.n, 1);
    assert_true(rec_equals(&out.v[0], &n2, true));
    mem_records_free(&out);
    struct store_stats st;
    assert_int_equal(s->ops->stats(s, "sc-acme", &st, err, sizeof err), 0);
    assert_int_equal(st.count, 2);
    assert_int_equal(st.users, 2);
    assert_int_equal(st.oldest, 2000); /* n2 replaced m[1], created at 2000 */
    assert_int_equal(st.newest, 1710000000123);

    float q[DIM] = {1};
    assert_int_equal(s->ops->query(s, "sc-nobody", q, 5, NULL, &out, err, sizeof err), 0);
    assert_int_equal(out.n, 0);
    mem_records_free(&out);
    size_t n = 0;
    const char *bad = "../etc";
    assert_int_equal(s->ops->query(s, bad, q, 3, NULL, &out, err, sizeof err), -1);
    assert_non_null(strstr(err, "[A-Za-z0-9_-]{1,64}"));
    assert_int_equal(s->ops->list(s, bad, NULL, NULL, 3, false, &out, err, sizeof err), -1);
    assert_int_equal(s->ops->count(s, bad, NULL, &n, err, sizeof err), -1);
    assert_int_equal(s->ops->stats(s, bad, &st, err, sizeof err), -1);
    assert_int_equal(s->ops->ns_get(s, "", &got, err, sizeof err), -1);
    assert_int_equal(s->ops->delete_filter(s, NULL, NULL, &n, err, sizeof err), -1);
    assert_int_equal(s->ops->delete_ids(s, bad, NULL, 0, &n, err, sizeof err), -1);
    assert_int_equal(s->ops->ns_create(s, "bad tenant", &ns, err, sizeof err), -1);

    ns_make(s, "sc-alpha");
    char **names = NULL;
    assert_int_equal(s->ops->namespaces(s, &names, &n, err, sizeof err), 0);
    size_t seen = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            assert_true(strcmp(names[i - 1], names[i]) < 0);
        seen += strcmp(names[i], "sc-acme") == 0 || strcmp(names[i], "sc-alpha") == 0 ||
                strcmp(names[i], "sc-zeta") == 0;
    }
    assert_int_equal(seen, 3);
    store_names_free(names, n);

    /* purge: the namespace and its records go, the others stay */
    assert_int_equal(s->ops->delete_filter(s, "sc-acme", NULL, &n, err, sizeof err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(s->ops->ns_get(s, "sc-acme", &got, err, sizeof err), 1);
    assert_int_equal(s->ops->ns_get(s, "sc-zeta", &got, err, sizeof err), 0);
    assert_int_equal(s->ops->delete_filter(s, "sc-zeta", NULL, &n, err, sizeof err), 0);
    assert_int_equal(s->ops->delete_filter(s, "sc-alpha", NULL, &n, err, sizeof err), 0);
}

#endif
