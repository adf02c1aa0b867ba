/*
 * The embedder interface: choosing an embedder from the configuration, and
 * the checks and batching every embedder shares, so each implementation
 * (memory/embed_local.c now, remote ones later) only embeds valid texts in
 * batches it accepts.
 */
#include "config.h"

#include "memory/embed.h"

#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "config/vars.h"
#include "util/alloc.h"
#include "util/utf8.h"

struct embedder *embedder_new(const struct config *cfg, char *err, size_t errlen)
{
    char q[128];
    const char *provider = config_str(cfg, CFG_EMBEDDINGS_PROVIDER);
    if (strcmp(provider, "local") != 0)
        return embed_remote_new(cfg, err, errlen);
    const char *model = config_str(cfg, CFG_EMBEDDINGS_MODEL);
    if (model[0] != '\0' && strcmp(model, "hash-v1") != 0) {
        snprintf(err, errlen,
                 "EMBEDDINGS_MODEL: %s is not a model of the local embedder; accepted: hash-v1 "
                 "(or empty for it)",
                 config_quote(config_var(cfg, CFG_EMBEDDINGS_MODEL), model, q, sizeof q));
        return NULL;
    }
    long long dim = config_int(cfg, CFG_EMBEDDINGS_DIMENSION);
    char why[256];
    struct embedder *e = embed_local_new((int)dim, why, sizeof why);
    if (e == NULL) {
        snprintf(err, errlen, "EMBEDDINGS_DIMENSION: %s", why);
        return NULL;
    }
    return e;
}

void embedder_set_cancel(struct embedder *e, const atomic_bool *cancel)
{
    if (e != NULL && e->ops->set_cancel != NULL)
        e->ops->set_cancel(e, cancel);
}

void embedder_free(struct embedder *e)
{
    if (e != NULL)
        e->ops->free(e);
}

/* Checks texts[i] against what every embedder takes. */
static int embed_check_text(const struct embedder *e, const char *text, size_t i, char *err,
                            size_t errlen)
{
    if (text == NULL || text[0] == '\0') {
        snprintf(err, errlen, "embedder %s: text %zu is empty; a text needs 1 to %zu bytes",
                 e->name, i, e->max_bytes);
        return -1;
    }
    size_t len = strlen(text);
    if (len > e->max_bytes) {
        snprintf(err, errlen, "embedder %s: text %zu is %zu bytes; the limit is %zu bytes", e->name,
                 i, len, e->max_bytes);
        return -1;
    }
    size_t bad = 0;
    if (!utf8_valid(text, len, &bad)) {
        snprintf(err, errlen, "embedder %s: text %zu is not valid UTF-8 (at byte %zu)", e->name, i,
                 bad);
        return -1;
    }
    return 0;
}

int embedder_embed(struct embedder *e, enum embed_mode mode, const char *const *texts, size_t n,
                   const struct embed_df *df, float *out, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++)
        if (embed_check_text(e, texts[i], i, err, errlen) != 0)
            return -1;
    size_t batch = e->max_batch > 0 ? e->max_batch : 1;
    for (size_t i = 0; i < n; i += batch) {
        size_t m = n - i < batch ? n - i : batch;
        if (e->ops->embed(e, mode, texts + i, m, df, out + i * (size_t)e->dim, err, errlen) != 0)
            return -1;
    }
    return 0;
}

/* Terms fit here for most texts, so one call usually suffices. */
#define TERMS_FIRST 64

uint32_t *embedder_terms(const struct embedder *e, const char *text, size_t len, size_t *n)
{
    *n = 0;
    if (e->ops->terms == NULL || len == 0)
        return NULL;
    uint32_t first[TERMS_FIRST];
    size_t count = e->ops->terms(e, text, len, first, TERMS_FIRST);
    if (count == 0)
        return NULL;
    uint32_t *terms = xcalloc(count, sizeof *terms);
    if (count <= TERMS_FIRST) {
        memcpy(terms, first, count * sizeof *terms);
    } else {
        size_t again = e->ops->terms(e, text, len, terms, count);
        if (again < count)
            count = again;
    }
    *n = count;
    return terms;
}
