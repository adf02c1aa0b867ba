/*
 * The remote embedders (placeholder: being written).
 */
#include "config.h"

#include <stdio.h>

#include "memory/embed.h"

struct embedder *embed_remote_new(const struct config *cfg, char *err, size_t errlen)
{
    (void)cfg;
    snprintf(err, errlen, "EMBEDDINGS_PROVIDER: remote embedders are not built yet");
    return NULL;
}
