/*
 * Tests of memory/embed (the embedder interface: configuration, checks,
 * batching, terms) and memory/embed_local (the "hash-v1" embedder): unit
 * vectors, determinism, what makes texts close (shared words, word forms,
 * paraphrase), how little word order counts, query weighting by document
 * frequencies that never touches stored vectors, the terms counted for
 * those frequencies, and the refusals with messages naming the text.
 */
#include "testutil.h"

#include "memory/embed.h"

#include <math.h>

#include "config/config.h"
#include "config/vars.h"
#include "tu_config.h"
#include "util/alloc.h"

#define DIM 256

static struct embedder *new_local(int dim)
{
    char err[256] = "";
    struct embedder *e = embed_local_new(dim, err, sizeof err);
    if (e == NULL)
        fail_msg("embed_local_new(%d): %s", dim, err);
    return e;
}

/* Embeds one text; the vector is the caller's to free. */
static float *embed1(struct embedder *e, enum embed_mode mode, const char *text,
                     const struct embed_df *df)
{
    float *v = calloc((size_t)e->dim, sizeof *v);
    assert_non_null(v);
    char err[256] = "";
    if (embedder_embed(e, mode, &text, 1, df, v, err, sizeof err) != 0)
        fail_msg("embedder_embed(\"%s\"): %s", text, err);
    return v;
}

static double dot(const float *a, const float *b, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += (double)a[i] * (double)b[i];
    return s;
}

/* The cosine of two documents' vectors (they are unit vectors). */
static double sim(struct embedder *e, const char *a, const char *b)
{
    float *va = embed1(e, EMBED_DOCUMENT, a, NULL);
    float *vb = embed1(e, EMBED_DOCUMENT, b, NULL);
    double s = dot(va, vb, e->dim);
    free(va);
    free(vb);
    return s;
}

/* Every vector of a text with words has norm 1, at any dimension, for
 * short and long texts, other scripts and texts of stop words only; a
 * text without a letter or digit is all zeros. */
static void local_vectors_have_unit_norm(void **state)
{
    (void)state;
    static const char *const texts[] = {
        "I logged 35 hours last week on the Apollo project.",
        "a",
        "the and of to",
        "Привет, как дела? Ça va très bien, merci. 東京は晴れ",
        "word word word word word word word word",
    };
    static const int dims[] = {16, 100, DIM, 1024};
    char *big = malloc(60001);
    assert_non_null(big);
    for (int i = 0; i < 60000; i++)
        big[i] = "abcdefgh ijklmnop qrstuvwxyz.\n"[(i * 7 + i / 13) % 30];
    big[60000] = '\0';
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++) {
        struct embedder *e = new_local(dims[d]);
        for (size_t i = 0; i <= sizeof texts / sizeof texts[0]; i++) {
            const char *t = i < sizeof texts / sizeof texts[0] ? texts[i] : big;
            for (int mode = 0; mode < 2; mode++) {
                float *v = embed1(e, mode ? EMBED_QUERY : EMBED_DOCUMENT, t, NULL);
                assert_true(fabs(dot(v, v, e->dim) - 1.0) < 1e-5);
                free(v);
            }
        }
        float *z = embed1(e, EMBED_DOCUMENT, "!!! ... ??? -- 🍕", NULL);
        for (int i = 0; i < e->dim; i++)
            assert_true(z[i] == 0.0f);
        free(z);
        embedder_free(e);
    }
    free(big);
}

/* The same text gives bit-identical vectors on every call, from two
 * instances, and alone or inside a batch (a stored vector never changes). */
static void local_vectors_are_deterministic(void **state)
{
    (void)state;
    static const char *const texts[] = {
        "My manager is Priya Natarajan; we meet every Tuesday at 11.",
        "The Apollo launch deadline is March 14.",
        "Straße, naïve café, ÉCOLE",
    };
    size_t n = sizeof texts / sizeof texts[0];
    struct embedder *a = new_local(DIM), *b = new_local(DIM);
    float batch[3 * DIM];
    char err[256];
    assert_int_equal(embedder_embed(a, EMBED_DOCUMENT, texts, n, NULL, batch, err, sizeof err), 0);
    for (size_t i = 0; i < n; i++) {
        float *x = embed1(a, EMBED_DOCUMENT, texts[i], NULL);
        float *y = embed1(a, EMBED_DOCUMENT, texts[i], NULL);
        float *z = embed1(b, EMBED_DOCUMENT, texts[i], NULL);
        assert_memory_equal(x, y, DIM * sizeof *x);
        assert_memory_equal(x, z, DIM * sizeof *x);
        assert_memory_equal(x, batch + i * DIM, DIM * sizeof *x);
        free(x);
        free(y);
        free(z);
    }
    embedder_free(a);
    embedder_free(b);
}

/* Case, punctuation and spacing are not part of a word: texts that differ
 * only in them give identical vectors, for ASCII and for the Latin-1,
 * Greek and Cyrillic capitals the tokeniser lowercases. */
static void case_and_punctuation_do_not_matter(void **state)
{
    (void)state;
    struct embedder *e = new_local(DIM);
    static const char *const pairs[][2] = {
        {"Dog bites man.", "dog   BITES\tman"},
        {"CAFÉ CRÈME", "café crème!"},
        {"ΑΘΗΝΑ", "αθηνα"},
        {"ПРИВЕТ МИР", "привет, мир"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        float *x = embed1(e, EMBED_DOCUMENT, pairs[i][0], NULL);
        float *y = embed1(e, EMBED_DOCUMENT, pairs[i][1], NULL);
        assert_memory_equal(x, y, DIM * sizeof *x);
        free(x);
        free(y);
    }
    embedder_free(e);
}

/* A question that rewords a fact is closer to it than to unrelated facts
 * of the same shape: shared words and word forms ("log"/"logged") count. */
static void a_paraphrase_is_closer_than_an_unrelated_text(void **state)
{
    (void)state;
    struct embedder *e = new_local(DIM);
    static const char *const cases[][3] = {
        {"How many hours did I log last week?", "I logged 35 hours last week on Apollo.",
         "Our team standup is at 9:45 in the Juniper room."},
        {"When is the Apollo launch deadline?", "The Apollo launch deadline is March 14.",
         "I am allergic to shellfish and peanuts are fine."},
        {"Which vaccines does the dog need?", "My dog needs his vaccinations in May.",
         "The flour supplier delivers on Wednesdays."},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double near = sim(e, cases[i][0], cases[i][1]);
        double far = sim(e, cases[i][0], cases[i][2]);
        assert_true(near > far + 0.1);
    }
    embedder_free(e);
}

/* Character n-grams relate forms of one word without a stemmer:
 * "vaccination" is much closer to "vaccines" than to an unrelated word,
 * though the two forms share no whole word. */
static void word_forms_share_character_ngrams(void **state)
{
    (void)state;
    struct embedder *e = new_local(1024);
    double forms = sim(e, "vaccination", "vaccines");
    double other = sim(e, "vaccination", "elephant");
    assert_true(forms > 0.25);
    assert_true(fabs(other) < 0.1);
    embedder_free(e);
}

/* Word order matters a little (the word pairs differ) but not much (the
 * words and their n-grams, most of the vector, are the same). */
static void word_order_matters_a_little(void **state)
{
    (void)state;
    struct embedder *e = new_local(1024);
    double swapped = sim(e, "dog bites man", "man bites dog");
    assert_true(swapped < 0.9999);
    assert_true(swapped > 0.9);
    /* and a different word matters much more than the order */
    assert_true(sim(e, "dog bites man", "dog bites cat") < swapped - 0.1);
    embedder_free(e);
}

/* Term weights are sublinear: a word said 8 times weighs 1 + ln 8 = 3.08
 * times a word said once, not 8 times (the two words share no n-gram, so
 * the ratio of the text's cosines with each word alone is that weight;
 * 4096 dimensions keep collisions out of the way). */
static void term_weights_are_sublinear(void **state)
{
    (void)state;
    struct embedder *e = new_local(4096);
    const char *text = "apollo apollo apollo apollo apollo apollo apollo apollo zephyr";
    double ratio = sim(e, text, "zephyr") / sim(e, text, "apollo");
    assert_true(ratio > 1.0 / (1.0 + log(8.0)) - 0.05);
    assert_true(ratio < 1.0 / (1.0 + log(8.0)) + 0.05);
    embedder_free(e);
}

/* Every word carries the same weight however long it is: the n-grams of
 * "internationalization" (60 of them) weigh no more together than the 6
 * of "cat", so a text of both is about as close to either. */
static void long_words_do_not_drown_short_ones(void **state)
{
    (void)state;
    struct embedder *e = new_local(4096);
    const char *text = "cat internationalization";
    double ratio = sim(e, text, "cat") / sim(e, text, "internationalization");
    assert_true(ratio > 0.9);
    assert_true(ratio < 1.1);
    embedder_free(e);
}

/* Looks up each of the query's terms in a small table of (term, df). */
static struct embed_df make_df(struct embedder *e, const char *query, size_t docs,
                               const char *const *words, const uint32_t *word_df, size_t nwords,
                               uint32_t **terms_out, uint32_t **df_out)
{
    size_t n = 0;
    uint32_t *terms = embedder_terms(e, query, strlen(query), &n);
    uint32_t *df = calloc(n > 0 ? n : 1, sizeof *df);
    assert_non_null(df);
    for (size_t w = 0; w < nwords; w++) {
        size_t m = 0;
        uint32_t *t = embedder_terms(e, words[w], strlen(words[w]), &m);
        assert_int_equal(m, 1);
        for (size_t i = 0; i < n; i++)
            if (terms[i] == t[0])
                df[i] = word_df[w];
        xfree(t);
    }
    *terms_out = terms;
    *df_out = df;
    return (struct embed_df){.docs = docs, .terms = terms, .df = df, .n = n};
}

/* With document frequencies, a query's rare word counts for more than
 * its common one: a document sharing the rare word moves ahead of one
 * sharing the common word, which it was not without weighting. The
 * weights change query vectors only: a document embedded with the same
 * frequencies is bit-identical to one embedded without. */
static void df_weighting_changes_queries_and_never_documents(void **state)
{
    (void)state;
    struct embedder *e = new_local(1024);
    const char *query = "zephyr budget meeting";
    const char *rare_doc = "zephyr notes";    /* shares the rare word */
    const char *common_doc = "meeting notes"; /* shares the common word */
    static const char *const words[] = {"zephyr", "budget", "meeting"};
    static const uint32_t word_df[] = {2, 400, 900};
    uint32_t *terms, *df;
    struct embed_df w = make_df(e, query, 1000, words, word_df, 3, &terms, &df);
    assert_int_equal(w.n, 3);

    float *q0 = embed1(e, EMBED_QUERY, query, NULL);
    float *q1 = embed1(e, EMBED_QUERY, query, &w);
    float *dr = embed1(e, EMBED_DOCUMENT, rare_doc, NULL);
    float *dc = embed1(e, EMBED_DOCUMENT, common_doc, NULL);
    double gap0 = dot(q0, dr, e->dim) - dot(q0, dc, e->dim);
    double gap1 = dot(q1, dr, e->dim) - dot(q1, dc, e->dim);
    assert_true(gap1 > 0.1);
    assert_true(gap1 > gap0 + 0.1);
    assert_memory_not_equal(q0, q1, (size_t)e->dim * sizeof *q0);

    /* documents ignore the frequencies */
    float *dw = embed1(e, EMBED_DOCUMENT, rare_doc, &w);
    assert_memory_equal(dr, dw, (size_t)e->dim * sizeof *dr);
    /* a query without frequencies is embedded like a document */
    float *qd = embed1(e, EMBED_DOCUMENT, query, NULL);
    assert_memory_equal(q0, qd, (size_t)e->dim * sizeof *q0);
    /* an empty namespace weights nothing */
    struct embed_df none = w;
    none.docs = 0;
    float *qn = embed1(e, EMBED_QUERY, query, &none);
    assert_memory_equal(q0, qn, (size_t)e->dim * sizeof *q0);

    free(q0);
    free(q1);
    free(dr);
    free(dc);
    free(dw);
    free(qd);
    free(qn);
    xfree(terms);
    free(df);
    embedder_free(e);
}

/* Frequencies from a handful of texts say little, so they weigh less
 * than the same proportions over many texts: the rare word's pull grows
 * with the size of the namespace, and over 10 texts it is less than half
 * of what it is over 10,000 (the prior flattens small corpora). */
static void df_weighting_grows_with_the_corpus(void **state)
{
    (void)state;
    struct embedder *e = new_local(1024);
    const char *query = "zephyr budget meeting";
    static const char *const words[] = {"zephyr", "budget", "meeting"};
    float *dr = embed1(e, EMBED_DOCUMENT, "zephyr notes", NULL);
    float *dc = embed1(e, EMBED_DOCUMENT, "meeting notes", NULL);
    double prev_gap = -1, first_gap = 0;
    static const size_t sizes[] = {10, 100, 1000, 10000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t docs = sizes[i];
        /* same proportions: 1 in 500, 2 in 5, 9 in 10 (at least 1) */
        uint32_t word_df[] = {(uint32_t)(docs / 500 > 0 ? docs / 500 : 1), (uint32_t)(docs * 2 / 5),
                              (uint32_t)(docs * 9 / 10)};
        uint32_t *terms, *df;
        struct embed_df w = make_df(e, query, docs, words, word_df, 3, &terms, &df);
        float *q = embed1(e, EMBED_QUERY, query, &w);
        double gap = dot(q, dr, e->dim) - dot(q, dc, e->dim);
        assert_true(gap > prev_gap);
        if (i == 0)
            first_gap = gap;
        prev_gap = gap;
        free(q);
        xfree(terms);
        free(df);
    }
    assert_true(first_gap < prev_gap / 2);
    free(dr);
    free(dc);
    embedder_free(e);
}

/* Terms are the distinct words, case-insensitive, in order of first
 * appearance, the same from every call and instance; a text with more
 * distinct words than the first guess gets them all; a text without
 * words has none. */
static void terms_are_distinct_and_stable(void **state)
{
    (void)state;
    struct embedder *a = new_local(DIM), *b = new_local(512);
    size_t n = 0, m = 0;
    uint32_t *t = embedder_terms(a, "The cat and THE Cat sat.", 24, &n);
    assert_int_equal(n, 4); /* the, cat, and, sat */
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            assert_true(t[i] != t[j]);
    uint32_t *u = embedder_terms(b, "the cat and the cat sat", 23, &m);
    assert_int_equal(m, n);
    assert_memory_equal(t, u, n * sizeof *t);
    xfree(u);
    /* first appearance order: "cat sat" are the 2nd and 4th terms */
    u = embedder_terms(a, "cat sat", 7, &m);
    assert_int_equal(m, 2);
    assert_int_equal(u[0], t[1]);
    assert_int_equal(u[1], t[3]);
    xfree(u);
    /* len bounds the text */
    u = embedder_terms(a, "cat sat", 3, &m);
    assert_int_equal(m, 1);
    assert_int_equal(u[0], t[1]);
    xfree(u);
    xfree(t);

    /* 300 distinct words, each twice */
    char text[8192];
    size_t len = 0;
    for (int r = 0; r < 2; r++)
        for (int i = 0; i < 300; i++)
            len += (size_t)snprintf(text + len, sizeof text - len, "w%d ", i);
    t = embedder_terms(a, text, len, &n);
    assert_int_equal(n, 300);
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            assert_true(t[i] != t[j]);
    xfree(t);

    t = embedder_terms(a, " ... !!! ", 9, &n);
    assert_null(t);
    assert_int_equal(n, 0);
    embedder_free(a);
    embedder_free(b);
}

/* Multibyte letters stay inside words; punctuation, symbols and emoji
 * outside ASCII separate them. */
static void non_ascii_letters_stay_inside_words(void **state)
{
    (void)state;
    struct embedder *e = new_local(DIM);
    static const struct {
        const char *text;
        size_t words;
    } cases[] = {
        {"naïve", 1},
        {"Straße", 1},
        {"東京タワー", 1},
        {"pizza🍕pasta", 2},
        {"well—known", 2},
        {"«quoted» text", 2},
        {"a\xc2\xa0"
         "b",
         2}, /* no-break space */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = 0;
        uint32_t *t = embedder_terms(e, cases[i].text, strlen(cases[i].text), &n);
        assert_int_equal(n, cases[i].words);
        xfree(t);
    }
    embedder_free(e);
}

/* embedder_embed checks every text before embedding any: empty, longer
 * than max_bytes, or not UTF-8 is refused with the text's index and the
 * limit; a text of exactly max_bytes is taken; n = 0 is a no-op. */
static void embed_refuses_bad_texts_naming_the_index(void **state)
{
    (void)state;
    struct embedder *e = new_local(DIM);
    char err[256];
    float out[3 * DIM];
    size_t max = e->max_bytes;
    assert_int_equal(max, 65536);
    char *big = malloc(max + 2);
    assert_non_null(big);
    memset(big, 'a', max + 1);
    big[max + 1] = '\0';

    const char *empty[] = {"fine", "", "fine"};
    assert_int_equal(embedder_embed(e, EMBED_DOCUMENT, empty, 3, NULL, out, err, sizeof err), -1);
    assert_non_null(strstr(err, "text 1 is empty"));

    const char *bad[] = {"fine", "fine", "caf\xe9 au lait"};
    assert_int_equal(embedder_embed(e, EMBED_QUERY, bad, 3, NULL, out, err, sizeof err), -1);
    assert_non_null(strstr(err, "text 2 is not valid UTF-8"));
    assert_non_null(strstr(err, "byte 3"));

    const char *overlong[] = {"\xc0\xaf"}; /* an overlong '/' */
    assert_int_equal(embedder_embed(e, EMBED_QUERY, overlong, 1, NULL, out, err, sizeof err), -1);
    assert_non_null(strstr(err, "text 0 is not valid UTF-8"));

    const char *toolong[] = {big};
    assert_int_equal(embedder_embed(e, EMBED_DOCUMENT, toolong, 1, NULL, out, err, sizeof err), -1);
    assert_non_null(strstr(err, "text 0"));
    assert_non_null(strstr(err, "65537"));
    assert_non_null(strstr(err, "65536"));

    big[max] = '\0'; /* exactly the limit */
    assert_int_equal(embedder_embed(e, EMBED_DOCUMENT, toolong, 1, NULL, out, err, sizeof err), 0);
    assert_int_equal(embedder_embed(e, EMBED_DOCUMENT, NULL, 0, NULL, NULL, err, sizeof err), 0);
    free(big);
    embedder_free(e);
}

/* A fake embedder that records the batches it is given. */
struct fake {
    size_t calls;
    size_t sizes[8];
    const char *first[8];
    enum embed_mode mode;
    const struct embed_df *df;
    size_t fail_on_call; /* 1-based; 0: never */
};

/* Writes each text's number (the texts are "0".."9") into its row. */
static int fake_embed(struct embedder *e, enum embed_mode mode, const char *const *texts, size_t n,
                      const struct embed_df *df, float *out, char *err, size_t errlen)
{
    struct fake *f = e->impl;
    assert_true(n <= e->max_batch);
    f->calls++;
    if (f->calls == f->fail_on_call) {
        snprintf(err, errlen, "embedder fake: batch %zu failed", f->calls);
        return -1;
    }
    f->sizes[f->calls - 1] = n;
    f->first[f->calls - 1] = texts[0];
    f->mode = mode;
    f->df = df;
    for (size_t i = 0; i < n; i++)
        for (int j = 0; j < e->dim; j++)
            out[i * (size_t)e->dim + (size_t)j] = (float)(texts[i][0] - '0');
    return 0;
}

static void fake_free(struct embedder *e)
{
    (void)e;
}

static const struct embedder_ops fake_ops = {
    .embed = fake_embed,
    .terms = NULL,
    .free = fake_free,
};

/* embedder_embed hands the texts to the embedder max_batch at a time, in
 * order, each batch's rows at their place in out, with the mode and the
 * frequencies passed through; a failing batch stops the rest and its
 * message comes back. An embedder without terms gives none. */
static void embed_batches_in_max_batch_pieces_in_order(void **state)
{
    (void)state;
    struct fake f = {0};
    struct embedder e = {.ops = &fake_ops,
                         .name = "fake",
                         .model = "m",
                         .dim = 2,
                         .max_bytes = 100,
                         .max_batch = 3,
                         .impl = &f};
    const char *texts[] = {"0", "1", "2", "3", "4", "5", "6"};
    float out[14];
    memset(out, 0xff, sizeof out);
    struct embed_df df = {.docs = 5};
    char err[256] = "";
    assert_int_equal(embedder_embed(&e, EMBED_QUERY, texts, 7, &df, out, err, sizeof err), 0);
    assert_int_equal(f.calls, 3);
    assert_int_equal(f.sizes[0], 3);
    assert_int_equal(f.sizes[1], 3);
    assert_int_equal(f.sizes[2], 1);
    assert_ptr_equal(f.first[0], texts[0]);
    assert_ptr_equal(f.first[1], texts[3]);
    assert_ptr_equal(f.first[2], texts[6]);
    assert_int_equal(f.mode, EMBED_QUERY);
    assert_ptr_equal(f.df, &df);
    for (int i = 0; i < 7; i++) {
        assert_true(out[2 * i] == (float)i);
        assert_true(out[2 * i + 1] == (float)i);
    }

    struct fake g = {.fail_on_call = 2};
    e.impl = &g;
    assert_int_equal(embedder_embed(&e, EMBED_DOCUMENT, texts, 7, NULL, out, err, sizeof err), -1);
    assert_int_equal(g.calls, 2);
    assert_string_equal(err, "embedder fake: batch 2 failed");

    size_t n = 99;
    assert_null(embedder_terms(&e, "some words", 10, &n));
    assert_int_equal(n, 0);
}

/* embedder_new builds the local embedder from EMBEDDINGS_DIMENSION and
 * EMBEDDINGS_MODEL (empty or hash-v1), with the default dimension when
 * unset, and refuses another model naming the variable and what is
 * accepted. */
static void embedder_new_reads_the_config(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp();
    char err[512];

    struct config *cfg = tu_config(dir, NULL, 0);
    struct embedder *e = embedder_new(cfg, err, sizeof err);
    assert_non_null(e);
    assert_string_equal(e->name, "local");
    assert_string_equal(e->model, "hash-v1");
    assert_int_equal(e->dim, config_int(cfg, CFG_EMBEDDINGS_DIMENSION));
    assert_int_equal(e->max_batch, 256);
    embedder_free(e);
    config_free(cfg);

    const char *set[] = {"EMBEDDINGS_DIMENSION=200", "EMBEDDINGS_MODEL=hash-v1"};
    cfg = tu_config(dir, set, 2);
    e = embedder_new(cfg, err, sizeof err);
    assert_non_null(e);
    assert_int_equal(e->dim, 200);
    assert_string_equal(e->model, "hash-v1");
    float *v = embed1(e, EMBED_DOCUMENT, "two hundred floats", NULL);
    assert_true(fabs(dot(v, v, 200) - 1.0) < 1e-5);
    free(v);
    embedder_free(e);
    config_free(cfg);

    const char *bad[] = {"EMBEDDINGS_MODEL=text-embedding-3-small"};
    cfg = tu_config(dir, bad, 1);
    err[0] = '\0';
    assert_null(embedder_new(cfg, err, sizeof err));
    assert_non_null(strstr(err, "EMBEDDINGS_MODEL"));
    assert_non_null(strstr(err, "text-embedding-3-small"));
    assert_non_null(strstr(err, "hash-v1"));
    config_free(cfg);

    tu_rmtree(dir);
    free(dir);
}

/* The local embedder takes 16..4096 dimensions and refuses others with
 * the range. */
static void local_refuses_dimensions_out_of_range(void **state)
{
    (void)state;
    char err[256];
    static const int bad[] = {0, 15, 4097, -1};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_null(embed_local_new(bad[i], err, sizeof err));
        assert_non_null(strstr(err, "16 to 4096"));
    }
    embedder_free(new_local(16));
    embedder_free(new_local(4096));
    embedder_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(local_vectors_have_unit_norm),
        cmocka_unit_test(local_vectors_are_deterministic),
        cmocka_unit_test(case_and_punctuation_do_not_matter),
        cmocka_unit_test(a_paraphrase_is_closer_than_an_unrelated_text),
        cmocka_unit_test(word_forms_share_character_ngrams),
        cmocka_unit_test(word_order_matters_a_little),
        cmocka_unit_test(term_weights_are_sublinear),
        cmocka_unit_test(long_words_do_not_drown_short_ones),
        cmocka_unit_test(df_weighting_changes_queries_and_never_documents),
        cmocka_unit_test(df_weighting_grows_with_the_corpus),
        cmocka_unit_test(terms_are_distinct_and_stable),
        cmocka_unit_test(non_ascii_letters_stay_inside_words),
        cmocka_unit_test(embed_refuses_bad_texts_naming_the_index),
        cmocka_unit_test(embed_batches_in_max_batch_pieces_in_order),
        cmocka_unit_test(embedder_new_reads_the_config),
        cmocka_unit_test(local_refuses_dimensions_out_of_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
