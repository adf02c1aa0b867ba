/*
 * The weaviate vector store (placeholder: being written).
 */
#include "config.h"

#include <stdio.h>

#include "memory/store.h"

struct vstore *store_weaviate_new(const struct config *cfg, char *err, size_t errlen)
{
    (void)cfg;
    snprintf(err, errlen, "VECTOR_DB_PROVIDER=weaviate: not built yet");
    return NULL;
}
