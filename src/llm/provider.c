/*
 * Choosing the provider a session talks to, and the parts of the provider
 * table every provider shares (freeing, pricing).
 */
#include "config.h"

#include "llm/provider.h"

#include <stdio.h>
#include <string.h>

#include "util/alloc.h"

struct llm_provider *llm_provider_resolve(const char *name, const struct config *cfg, char *err,
                                          size_t errlen)
{
    (void)cfg; /* the network providers read their keys and URLs from it */
    if (strcmp(name, "offline") == 0)
        return llm_offline_new();
    if (strcmp(name, "auto") == 0) {
        /* This build has only the offline provider, so auto always picks it.
         * The network providers' issue makes auto try, in order,
         * OPENAI_API_KEY, ANTHROPIC_API_KEY and a local OpenAI-compatible
         * server answering within 100 ms on 127.0.0.1:11434 or :8080, and
         * only then fall back to offline (DESIGN.md, embedded defaults). */
        return llm_offline_new();
    }
    snprintf(err, errlen, "MEMCHAT_PROVIDER: unknown provider \"%s\" (accepted: auto, offline)",
             name);
    return NULL;
}

void llm_provider_free(struct llm_provider *p)
{
    if (p == NULL)
        return;
    if (p->free_impl != NULL)
        p->free_impl(p);
    xfree(p);
}

double llm_provider_cost(const struct llm_provider *p, const char *model,
                         const struct llm_usage *usage)
{
    if (p->cost_usd == NULL)
        return -1.0;
    return p->cost_usd(p, model, usage);
}
