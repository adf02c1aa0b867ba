/*
 * The `local` embedder, model "hash-v1": vectors without pre-trained
 * weights, so memory works on a fresh machine with no key and no network.
 *
 * A text is cut into words (runs of letters and digits; ASCII lowercased,
 * other letters kept inside words and lowercased for the common Latin,
 * Greek and Cyrillic ranges). Three families of features come from the
 * words: the word itself, the pair of adjacent words, and the byte n-grams
 * of the word framed as "<word>" (which let "vaccine" meet "vaccination"
 * without a stemmer). Each feature is hashed with 64 bits: the top 32 pick
 * the bucket, the lowest bit the sign (signed feature hashing, so
 * collisions cancel on average instead of piling up). A feature's value is
 * its family's weight times 1 + log(tf) (one word said ten times does not
 * outweigh ten different words); a small English stop-word list is damped.
 * The vector is L2-normalised, or all zeros when the text has no words.
 *
 * Stored (document) vectors depend on nothing but the text. A query may be
 * weighted by the document frequencies of the tenant's stored texts
 * (struct embed_df): every feature derived from a word is scaled by that
 * word's IDF, so a query's rare words count for more than its common ones.
 * The terms counted for those frequencies are 32-bit hashes of the words.
 *
 * Every constant below (hash seeds, n-gram sizes, weights, the IDF
 * formula), and the stop list of stopwords.c, is part of "hash-v1":
 * changing one changes the vectors,
 * and so needs a new model name. The values were chosen by measuring
 * nDCG@10 on BEIR SciFact and recall@5 on the project's facts set
 * (bench/bench_memory.c, docs/benchmarks.md).
 *
 * Speed: no allocation per feature. Features are counted in open
 * addressing tables on the stack (about 40 KB), sized once on the heap
 * for long texts; a 20-word query takes a few microseconds. An embedder
 * is read-only once made, so threads may share one.
 */
#include "config.h"

#include "memory/embed.h"
#include "memory/stopwords.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "util/alloc.h"
#include "util/utf8.h"

#define LOCAL_MODEL     "hash-v1"
#define LOCAL_MAX_BYTES 65536
#define LOCAL_MAX_BATCH 256
#define LOCAL_DIM_MIN   16
#define LOCAL_DIM_MAX   4096

/* Bytes of a word kept for hashing; a longer run (a key, a base64 blob) is
 * one word cut here. */
#define WORD_MAX 64

/* Seeds that keep the families apart (a word and a bigram never share a
 * hash by construction). */
#define SEED_WORD 0x6a09e667f3bcc908ull
#define SEED_PAIR 0xbb67ae8584caa73bull
#define SEED_GRAM 0x3c6ef372fe94f82bull
#define SEED_TERM 0xa54ff53a5f1d36f1ull

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME  0x100000001b3ull

/* The knobs of the model; one set of values is "hash-v1". */
struct local_params {
    int gram_min, gram_max; /* byte n-gram sizes over "<word>"; gram_max 0: none */
    float w_word;           /* family weights */
    float w_pair;
    float w_gram;
    float stop_weight; /* multiplier of a stop word's features (it gives no n-grams) */
    float df_floor;    /* a query word counts as held by at least this many texts */
    float df_prior;    /* IDF is raised to docs / (docs + df_prior) */
};

/* What the measurements said (SciFact nDCG@10 at 1024 dimensions, with
 * query weighting): n-grams are most of the quality (words alone 0.49,
 * with n-grams 0.63); 3..5 ties 4..5 on SciFact and wins on the short
 * facts, and beats 3..4, 3..6, 2..4 and single sizes; scaling each word's
 * n-grams by 1/sqrt(their number) beat unscaled n-grams by about 0.02;
 * pairs cost a little on SciFact (0.25 is for word order); damping stop
 * words to 0.2 beat 1 and 0 without weighting and ties them with it. */
static const struct local_params local_hash_v1 = {
    .gram_min = 3,
    .gram_max = 5,
    .w_word = 1.0f,
    .w_pair = 0.25f,
    .w_gram = 3.0f,
    .stop_weight = 0.2f,
    .df_floor = 1.0f,
    .df_prior = 100.0f,
};

#define STOP_SLOTS 512 /* a power of two above twice the list */

struct local_impl {
    struct local_params p;
    uint64_t stop[STOP_SLOTS]; /* word hashes of the stop list; 0 = empty */
};

/* --- hashing --- */

/* MurmurHash3's 64-bit finaliser: every input bit flips about half the
 * output bits, so the bucket bits and the sign bit are independent. */
static uint64_t local_mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

static uint64_t local_fnv(const unsigned char *s, size_t n)
{
    uint64_t h = FNV_OFFSET;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * FNV_PRIME;
    return h;
}

/* The 32-bit term of a word hash (what embedder_terms() gives). */
static uint32_t local_term(uint64_t hw)
{
    return (uint32_t)(local_mix(hw ^ SEED_TERM) >> 32);
}

/* --- words --- */

/* Whether a non-ASCII code point separates words: punctuation, symbols,
 * spaces and emoji. Everything else outside ASCII is taken as a letter,
 * which keeps accented words, CJK and the like whole. */
static bool local_cp_separates(uint32_t cp)
{
    return cp <= 0xbf || cp == 0xd7 || cp == 0xf7 || (cp >= 0x2000 && cp <= 0x206f) ||
           (cp >= 0x20a0 && cp <= 0x20cf) || (cp >= 0x2190 && cp <= 0x2bff) ||
           (cp >= 0x3000 && cp <= 0x3003) || (cp >= 0x3008 && cp <= 0x3011) ||
           (cp >= 0xfe00 && cp <= 0xfe0f) || (cp >= 0xff01 && cp <= 0xff0f) || cp == 0xfeff ||
           cp == 0xfffd || (cp >= 0x1f000 && cp <= 0x1faff);
}

/* Lowercase for Latin-1, Latin Extended-A, Greek and Cyrillic capitals. */
static uint32_t local_cp_lower(uint32_t cp)
{
    if ((cp >= 0xc0 && cp <= 0xde && cp != 0xd7) || (cp >= 0x391 && cp <= 0x3a9 && cp != 0x3a2) ||
        (cp >= 0x410 && cp <= 0x42f))
        return cp + 0x20;
    if (cp >= 0x400 && cp <= 0x40f)
        return cp + 0x50;
    if (((cp >= 0x100 && cp <= 0x137) || (cp >= 0x14a && cp <= 0x177)) && cp % 2 == 0)
        return cp + 1;
    if (((cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17e)) && cp % 2 == 1)
        return cp + 1;
    return cp;
}

/* A cursor over the words of a text. */
struct local_words {
    const char *s;
    size_t n, pos;
    unsigned char w[WORD_MAX + 4]; /* the current word, lowercased */
    size_t len;                    /* its bytes in w (<= WORD_MAX) */
    size_t start;                  /* where it starts in s */
};

/* ASCII letters and digits, lowercased; 0 for every other ASCII byte. */
static const unsigned char local_ascii[128] = {
    ['0'] = '0', ['1'] = '1', ['2'] = '2', ['3'] = '3', ['4'] = '4', ['5'] = '5', ['6'] = '6',
    ['7'] = '7', ['8'] = '8', ['9'] = '9', ['a'] = 'a', ['b'] = 'b', ['c'] = 'c', ['d'] = 'd',
    ['e'] = 'e', ['f'] = 'f', ['g'] = 'g', ['h'] = 'h', ['i'] = 'i', ['j'] = 'j', ['k'] = 'k',
    ['l'] = 'l', ['m'] = 'm', ['n'] = 'n', ['o'] = 'o', ['p'] = 'p', ['q'] = 'q', ['r'] = 'r',
    ['s'] = 's', ['t'] = 't', ['u'] = 'u', ['v'] = 'v', ['w'] = 'w', ['x'] = 'x', ['y'] = 'y',
    ['z'] = 'z', ['A'] = 'a', ['B'] = 'b', ['C'] = 'c', ['D'] = 'd', ['E'] = 'e', ['F'] = 'f',
    ['G'] = 'g', ['H'] = 'h', ['I'] = 'i', ['J'] = 'j', ['K'] = 'k', ['L'] = 'l', ['M'] = 'm',
    ['N'] = 'n', ['O'] = 'o', ['P'] = 'p', ['Q'] = 'q', ['R'] = 'r', ['S'] = 's', ['T'] = 't',
    ['U'] = 'u', ['V'] = 'v', ['W'] = 'w', ['X'] = 'x', ['Y'] = 'y', ['Z'] = 'z',
};

/* Reads the non-ASCII character at t->pos: its length in bytes, and
 * whether it belongs to a word, in which case its lowercase UTF-8 is put
 * in enc (*m bytes). Invalid bytes separate words. */
static size_t local_char(const struct local_words *t, bool *word, char enc[4], size_t *m)
{
    uint32_t cp;
    size_t k = utf8_decode(t->s + t->pos, t->n - t->pos, &cp);
    *word = !local_cp_separates(cp);
    *m = *word ? utf8_encode(local_cp_lower(cp), enc) : 0;
    return k;
}

/* Moves to the next word; false at the end of the text. */
static bool local_next_word(struct local_words *t)
{
    t->len = 0;
    const unsigned char *s = (const unsigned char *)t->s;
    char enc[4];
    size_t m;
    bool word = false;
    while (t->pos < t->n && !word) {
        if (s[t->pos] < 0x80) {
            word = local_ascii[s[t->pos]] != 0;
            t->pos += !word;
        } else {
            size_t k = local_char(t, &word, enc, &m);
            t->pos += word ? 0 : k;
        }
    }
    if (!word)
        return false;
    t->start = t->pos;
    while (t->pos < t->n) {
        unsigned char c = s[t->pos];
        if (c < 0x80) {
            if (local_ascii[c] == 0)
                break;
            if (t->len < WORD_MAX)
                t->w[t->len++] = local_ascii[c];
            t->pos++;
            continue;
        }
        size_t k = local_char(t, &word, enc, &m);
        if (!word)
            break;
        if (t->len + m <= WORD_MAX) {
            memcpy(t->w + t->len, enc, m);
            t->len += m;
        }
        t->pos += k;
    }
    return true;
}

static bool local_is_stop(const struct local_impl *li, uint64_t hw)
{
    if (hw == 0)
        return false;
    for (size_t i = hw & (STOP_SLOTS - 1);; i = (i + 1) & (STOP_SLOTS - 1)) {
        if (li->stop[i] == hw)
            return true;
        if (li->stop[i] == 0)
            return false;
    }
}

/* --- feature tables --- */

/* Features are counted before they are hashed into the vector, so that
 * the sublinear tf applies per feature. Two tables: words and word pairs
 * first, then the n-grams of each distinct word (added once per distinct
 * word with that word's counts, not once per occurrence). Each table
 * starts on the stack and is sized once on the heap for long texts:
 * growing step by step costs a system call per step. */
enum feat_kind {
    FEAT_WORD, /* a word that gives n-grams */
    FEAT_STOP, /* a stop word: no n-grams */
    FEAT_PAIR,
    FEAT_GRAM,
};

struct feat_slot {
    uint64_t key;  /* 0: empty */
    float count;   /* occurrences */
    float msum;    /* sum of the occurrences' multipliers (stop damping, IDF) */
    uint32_t pos;  /* words: where the first occurrence starts in the text */
    uint32_t kind; /* enum feat_kind */
};

#define WORDS_STACK 512  /* a 100-word query */
#define GRAMS_STACK 1024 /* its n-grams */

struct feat_table {
    struct feat_slot *slots;
    size_t cap, used; /* cap a power of two; used * 2 <= cap */
    bool heap;
};

/* A table with room for need features: stack (stack_cap slots) when they
 * fit, else the heap. */
static void feat_init(struct feat_table *t, struct feat_slot *stack, size_t stack_cap, size_t need)
{
    size_t cap = stack_cap;
    while (cap < 2 * need)
        cap *= 2;
    t->heap = cap > stack_cap;
    t->slots = t->heap ? xcalloc(cap, sizeof *t->slots) : stack;
    if (!t->heap)
        memset(stack, 0, stack_cap * sizeof *stack);
    t->cap = cap;
    t->used = 0;
}

static void feat_fini(struct feat_table *t)
{
    if (t->heap)
        xfree(t->slots);
}

static void feat_grow(struct feat_table *t)
{
    size_t cap = t->cap * 2;
    struct feat_slot *slots = xcalloc(cap, sizeof *slots);
    for (size_t i = 0; i < t->cap; i++) {
        const struct feat_slot *s = &t->slots[i];
        if (s->key == 0)
            continue;
        size_t j = s->key & (cap - 1);
        while (slots[j].key != 0)
            j = (j + 1) & (cap - 1);
        slots[j] = *s;
    }
    feat_fini(t);
    t->slots = slots;
    t->cap = cap;
    t->heap = true;
}

/* Adds count occurrences of key whose multipliers sum to msum. */
static void feat_add(struct feat_table *t, uint64_t key, float count, float msum,
                     enum feat_kind kind, size_t pos)
{
    if (key == 0)
        key = 1;
    size_t i = key & (t->cap - 1);
    while (t->slots[i].key != 0) {
        if (t->slots[i].key == key) {
            t->slots[i].count += count;
            t->slots[i].msum += msum;
            return;
        }
        i = (i + 1) & (t->cap - 1);
    }
    t->slots[i] = (struct feat_slot){key, count, msum, (uint32_t)pos, kind};
    if (++t->used * 2 > t->cap)
        feat_grow(t);
}

/* About how many words s[0..n) has (starts of runs of letters, digits and
 * non-ASCII bytes); the table grows if it is more. */
static size_t feat_estimate_words(const char *s, size_t n)
{
    size_t words = 0;
    bool prev = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool w = c >= 0x80 || local_ascii[c] != 0;
        words += w && !prev;
        prev = w;
    }
    return words;
}

/* --- query weights --- */

struct df_slot {
    uint32_t term;
    uint32_t df_plus1; /* 0: empty */
};

#define DF_STACK 256

/* The document frequencies of one query, keyed by term. */
struct df_index {
    struct df_slot *slots;
    size_t cap;
    bool heap;
    double docs;
};

static void df_index_init(struct df_index *x, const struct embed_df *df, struct df_slot *stack)
{
    size_t cap = DF_STACK;
    while (cap < df->n * 2)
        cap *= 2;
    x->heap = cap > DF_STACK;
    x->slots = x->heap ? xcalloc(cap, sizeof *x->slots) : stack;
    if (!x->heap)
        memset(stack, 0, DF_STACK * sizeof *stack);
    x->cap = cap;
    x->docs = (double)df->docs;
    for (size_t i = 0; i < df->n; i++) {
        uint32_t d = df->df[i] >= UINT32_MAX - 1 ? UINT32_MAX - 1 : df->df[i];
        size_t j = df->terms[i] & (cap - 1);
        while (x->slots[j].df_plus1 != 0 && x->slots[j].term != df->terms[i])
            j = (j + 1) & (cap - 1);
        x->slots[j] = (struct df_slot){df->terms[i], d + 1};
    }
}

static double df_index_get(const struct df_index *x, uint32_t term)
{
    for (size_t j = term & (x->cap - 1);; j = (j + 1) & (x->cap - 1)) {
        if (x->slots[j].df_plus1 == 0)
            return 0;
        if (x->slots[j].term == term)
            return x->slots[j].df_plus1 - 1.0;
    }
}

/* The weight of a query word held by df of docs stored texts: BM25's IDF
 * (which beat 1 + ln((N + 1) / (df + 1)) and its powers), with an unseen
 * word counted as seen once (its n-grams may still match a variant, but
 * its own count says nothing), flattened towards 1 while the corpus is
 * small (100 pseudo-texts of prior), where a few texts' counts are noise:
 * without it, weighting cost recall on tenants of 24 facts. */
static float local_idf(const struct local_params *p, double docs, double df)
{
    if (df < (double)p->df_floor)
        df = (double)p->df_floor;
    if (df > docs)
        df = docs;
    double idf = log(1.0 + (docs - df + 0.5) / (df + 0.5));
    return (float)pow(idf, docs / (docs + (double)p->df_prior));
}

/* --- embedding --- */

/* Adds v to the bucket key picks, with the sign its lowest bit picks. */
static void local_put(float *out, int dim, uint64_t key, float v)
{
    size_t b = (size_t)(((key >> 32) * (uint64_t)dim) >> 32);
    out[b] += (key & 1) ? -v : v;
}

/* How many n-grams "<w>" has for a word of len bytes. */
static size_t local_gram_count(const struct local_params *p, size_t len)
{
    size_t gl = len + 2, count = 0;
    for (size_t n = (size_t)p->gram_min; n <= (size_t)p->gram_max && n <= gl; n++)
        count += gl - n + 1;
    return count;
}

/* Counts the byte n-grams of "<w>" for a word seen count times with
 * multipliers summing to msum. Each word's n-grams together carry the same
 * energy however long the word is (1/sqrt of their number each), so long
 * words do not drown short ones. */
static void local_add_grams(const struct local_params *p, struct feat_table *t,
                            const unsigned char *w, size_t len, float count, float msum)
{
    size_t ngrams = local_gram_count(p, len);
    if (ngrams == 0)
        return;
    msum /= sqrtf((float)ngrams);
    unsigned char g[WORD_MAX + 2];
    size_t gl = len + 2;
    g[0] = '<';
    memcpy(g + 1, w, len);
    g[gl - 1] = '>';
    size_t lo = (size_t)p->gram_min, hi = (size_t)p->gram_max;
    for (size_t i = 0; i + lo <= gl; i++) {
        uint64_t h = FNV_OFFSET ^ SEED_GRAM;
        for (size_t n = 1; n <= hi && i + n <= gl; n++) {
            h = (h ^ g[i + n - 1]) * FNV_PRIME;
            if (n >= lo)
                feat_add(t, local_mix(h + n), count, msum, FEAT_GRAM, 0);
        }
    }
}

/* Sublinear tf times the occurrences' mean multiplier. */
static float local_value(const struct feat_slot *s)
{
    return (1.0f + logf(s->count)) * (s->msum / s->count);
}

/* Embeds text[0..len) into out (dim floats). */
static void local_embed_one(const struct local_impl *li, int dim, const char *text, size_t len,
                            const struct df_index *dfx, float *out)
{
    const struct local_params *p = &li->p;
    struct feat_slot wstack[WORDS_STACK], gstack[GRAMS_STACK];
    struct feat_table words, grams;
    /* a word and a pair per word */
    feat_init(&words, wstack, WORDS_STACK, 2 * feat_estimate_words(text, len));

    struct local_words it = {.s = text, .n = len};
    uint64_t prev = 0;
    float prev_m = 0.0f;
    bool have_prev = false;
    while (local_next_word(&it)) {
        uint64_t hw = local_fnv(it.w, it.len);
        bool stop = local_is_stop(li, hw);
        float m = stop ? p->stop_weight : 1.0f;
        if (dfx != NULL)
            m *= local_idf(p, dfx->docs, df_index_get(dfx, local_term(hw)));
        feat_add(&words, local_mix(hw ^ SEED_WORD), 1.0f, m, stop ? FEAT_STOP : FEAT_WORD,
                 it.start);
        if (have_prev)
            feat_add(&words, local_mix((prev * 0x9e3779b97f4a7c15ull) ^ hw ^ SEED_PAIR), 1.0f,
                     prev_m < m ? prev_m : m, FEAT_PAIR, 0);
        prev = hw;
        prev_m = m;
        have_prev = true;
    }

    memset(out, 0, (size_t)dim * sizeof *out);
    size_t need = 0;
    for (size_t i = 0; i < words.cap; i++) {
        const struct feat_slot *s = &words.slots[i];
        if (s->key == 0)
            continue;
        float v = local_value(s);
        local_put(out, dim, s->key, (s->kind == FEAT_PAIR ? p->w_pair : p->w_word) * v);
        if (s->kind == FEAT_WORD && p->gram_max > 0) {
            struct local_words w = {.s = text, .n = len, .pos = s->pos};
            if (local_next_word(&w))
                need += local_gram_count(p, w.len);
        }
    }
    if (need > 0) {
        feat_init(&grams, gstack, GRAMS_STACK, need);
        for (size_t i = 0; i < words.cap; i++) {
            const struct feat_slot *s = &words.slots[i];
            if (s->key == 0 || s->kind != FEAT_WORD)
                continue;
            struct local_words w = {.s = text, .n = len, .pos = s->pos};
            if (local_next_word(&w))
                local_add_grams(p, &grams, w.w, w.len, s->count, s->msum);
        }
        for (size_t i = 0; i < grams.cap; i++)
            if (grams.slots[i].key != 0)
                local_put(out, dim, grams.slots[i].key, p->w_gram * local_value(&grams.slots[i]));
        feat_fini(&grams);
    }
    feat_fini(&words);

    double norm = 0.0;
    for (int i = 0; i < dim; i++)
        norm += (double)out[i] * (double)out[i];
    if (norm > 0.0) {
        float inv = (float)(1.0 / sqrt(norm));
        for (int i = 0; i < dim; i++)
            out[i] *= inv;
    }
}

static int local_embed(struct embedder *e, enum embed_mode mode, const char *const *texts, size_t n,
                       const struct embed_df *df, float *out, char *err, size_t errlen)
{
    const struct local_impl *li = e->impl;
    if (n > e->max_batch) {
        snprintf(err, errlen, "embedder local: %zu texts in one batch; at most %zu", n,
                 e->max_batch);
        return -1;
    }
    struct df_slot dstack[DF_STACK];
    struct df_index dfx;
    bool weighted = mode == EMBED_QUERY && df != NULL && df->docs > 0;
    if (weighted)
        df_index_init(&dfx, df, dstack);
    for (size_t i = 0; i < n; i++)
        local_embed_one(li, e->dim, texts[i], strlen(texts[i]), weighted ? &dfx : NULL,
                        out + i * (size_t)e->dim);
    if (weighted && dfx.heap)
        xfree(dfx.slots);
    return 0;
}

#define TERM_STACK 256

static size_t local_terms(const struct embedder *e, const char *text, size_t len, uint32_t *terms,
                          size_t cap)
{
    (void)e;
    /* A set of the terms seen (stored + 1 so that 0 marks an empty slot). */
    uint64_t stack[TERM_STACK];
    memset(stack, 0, sizeof stack);
    uint64_t *set = stack;
    size_t scap = TERM_STACK, count = 0;

    struct local_words it = {.s = text, .n = len};
    while (local_next_word(&it)) {
        uint64_t v = (uint64_t)local_term(local_fnv(it.w, it.len)) + 1;
        size_t j = v & (scap - 1);
        while (set[j] != 0 && set[j] != v)
            j = (j + 1) & (scap - 1);
        if (set[j] == v)
            continue;
        set[j] = v;
        if (count < cap)
            terms[count] = (uint32_t)(v - 1);
        count++;
        if (count * 2 > scap) {
            size_t ncap = scap * 2;
            uint64_t *nset = xcalloc(ncap, sizeof *nset);
            for (size_t k = 0; k < scap; k++) {
                if (set[k] == 0)
                    continue;
                size_t q = set[k] & (ncap - 1);
                while (nset[q] != 0)
                    q = (q + 1) & (ncap - 1);
                nset[q] = set[k];
            }
            if (set != stack)
                xfree(set);
            set = nset;
            scap = ncap;
        }
    }
    if (set != stack)
        xfree(set);
    return count;
}

static void local_free(struct embedder *e)
{
    xfree(e->impl);
    xfree(e);
}

static const struct embedder_ops local_ops = {
    .embed = local_embed,
    .terms = local_terms,
    .free = local_free,
};

struct embedder *embed_local_new(int dim, char *err, size_t errlen)
{
    if (dim < LOCAL_DIM_MIN || dim > LOCAL_DIM_MAX) {
        snprintf(err, errlen, "embedder local: dimension %d is out of range; accepted: %d to %d",
                 dim, LOCAL_DIM_MIN, LOCAL_DIM_MAX);
        return NULL;
    }
    struct local_impl *li = xcalloc(1, sizeof *li);
    li->p = local_hash_v1;
    size_t nstop;
    const char *const *stop = stopwords_list(&nstop);
    for (size_t i = 0; i < nstop; i++) {
        const char *w = stop[i];
        uint64_t hw = local_fnv((const unsigned char *)w, strlen(w));
        size_t j = hw & (STOP_SLOTS - 1);
        while (li->stop[j] != 0 && li->stop[j] != hw)
            j = (j + 1) & (STOP_SLOTS - 1);
        li->stop[j] = hw;
    }
    struct embedder *e = xcalloc(1, sizeof *e);
    e->ops = &local_ops;
    snprintf(e->name, sizeof e->name, "local");
    snprintf(e->model, sizeof e->model, "%s", LOCAL_MODEL);
    e->dim = dim;
    e->max_bytes = LOCAL_MAX_BYTES;
    e->max_batch = LOCAL_MAX_BATCH;
    e->impl = li;
    return e;
}
