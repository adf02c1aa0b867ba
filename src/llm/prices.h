/*
 * The price table: what a model's tokens cost, in USD per million tokens,
 * read from data rather than code. The shipped table (share/prices.json,
 * installed as $(pkgdatadir)/prices.json) lists current OpenAI and Anthropic
 * models, each with the date its price was checked and the source it was
 * read from; prices.json in the config directory overrides it. A turn looks
 * up its provider and model once and prices its usage with prices_cost();
 * a model the table does not know costs NAN (the cost event's usd is then
 * null), never 0 and never a neighbour's price.
 *
 * The format (both files; the override may leave out what it does not
 * change):
 *
 *   { "version": 1, "currency": "USD", "unit": "per_million_tokens",
 *     "models": { "gpt-4o-mini": { "provider": "openai", "input": 0.15,
 *                                  "cached_input": 0.075, "output": 0.60,
 *                                  "checked": "2026-11-23", "source": "https://...",
 *                                  "aliases": ["gpt-4o-mini-2024-07-18"],
 *                                  "note": "free text" }, ... },
 *     "providers": { "offline": { "input": 0, "cached_input": 0, "output": 0 } } }
 *
 * Keys starting with "_" are comments, anywhere. Any other unknown key is an
 * error, so a misspelt field ("ouptut") cannot silently leave a price out.
 * Prices are finite numbers >= 0; checked is YYYY-MM-DD.
 *
 * Lookup (exact and case-sensitive, no fuzzy or prefix matching):
 *  1. the entry models[model];
 *  2. else the one entry whose "aliases" lists model. Dated snapshots
 *     ("gpt-4o-2024-08-06") find their family only this way, because a
 *     snapshot's price can differ from the family's (gpt-4o-2024-05-13 does);
 *  3. else providers[provider], a flat price for every model of a provider
 *     (shipped: offline = 0; a user may add e.g. "ollama" = 0 for local
 *     models);
 *  4. else not found.
 * In 1 and 2 the entry's provider must equal the provider asked for (a NULL
 * provider matches any), so a local OpenAI-compatible server that happens
 * to name its model "gpt-4o" is priced only by an entry that says so.
 *
 * Overrides: an override model not in the table is added and must give
 * provider, input and output (cached_input defaults to input: a cache read
 * never bills below the price you stated); a model already in the table has
 * each field the override gives replaced ("aliases" as a whole). The shipped
 * file must give every field of every entry plus version, currency and unit.
 * An alias may belong to one entry only; in the shipped file an alias may not
 * also be a model id (in an override, the model id wins over the alias).
 *
 * A loaded table is immutable, so lookups from any thread are safe.
 */
#ifndef MEMCHAT_LLM_PRICES_H
#define MEMCHAT_LLM_PRICES_H

#include <stdbool.h>
#include <stddef.h>

#include "llm/provider.h"

/* Largest prices file read (shipped or override), in bytes. */
#define PRICES_MAX_FILE (1024 * 1024)

struct prices;

/* One price as found by prices_lookup(). The strings point into the table
 * and live until prices_free(). */
struct model_price {
    double input;        /* USD per million uncached prompt tokens */
    double cached_input; /* USD per million prompt tokens read from a cache */
    double output;       /* USD per million completion tokens */
    const char *model;   /* the entry's id (not the alias asked for); "*" for a
                          * provider's flat price */
    const char *provider;
    const char *checked; /* YYYY-MM-DD, "" when an override gave none */
    const char *source;  /* where the price was read, "" when none given */
};

/* Loads the shipped table from shipped_path, then applies override_path
 * (NULL or a missing file: no override). 0 with *out set (free with
 * prices_free), or -1 with *out NULL and a message in err naming the file
 * and, for a bad value, the JSON path of the field ("/x/prices.json:
 * models.gpt-x.output: not a non-negative number"). A missing shipped file,
 * a file over PRICES_MAX_FILE or invalid JSON is an error too. */
int prices_load(struct prices **out, const char *shipped_path, const char *override_path, char *err,
                size_t errlen);
/* Frees the table; NULL is a no-op. */
void prices_free(struct prices *p);

/* Finds the price of model under provider by the rules above: true with
 * *price filled, or false (*price untouched). A NULL table finds nothing. */
bool prices_lookup(const struct prices *p, const char *provider, const char *model,
                   struct model_price *price);
/* The USD cost of usage at price, NAN when price is NULL (unknown model) or
 * the usage's prompt or completion tokens are unknown (< 0). prompt_tokens
 * includes the cached tokens (as OpenAI and our Anthropic provider report
 * them): cost = ((prompt - cached) * input + cached * cached_input +
 * completion * output) / 1e6. Unknown cached tokens (< 0) count as 0;
 * cached above prompt is clamped to prompt. */
double prices_cost(const struct model_price *price, const struct llm_usage *usage);
/* The number of model entries (not aliases or provider prices). */
size_t prices_count(const struct prices *p);
/* The id of model entry i (0 <= i < prices_count) and its provider into
 * *provider (may be NULL), for completion; NULL when i is out of range. */
const char *prices_model_at(const struct prices *p, size_t i, const char **provider);

/* Where the shipped table is, in this order: share_dir (MEMCHAT_SHARE_DIR)
 * + "/prices.json" when share_dir is non-empty, whether or not the file
 * exists (an explicit setting is never second-guessed; the load then says
 * what is missing); else MC_PKGDATADIR "/prices.json" when that file exists
 * (an installed memchat); else MC_SRCDIR "/share/prices.json" (running from
 * the build tree). 0 with the path in out, -1 when it does not fit. */
int prices_shipped_path(const char *share_dir, char *out, size_t outlen);

#endif
