/*
 * The pgvector vector store (placeholder: being written).
 */
#include "config.h"

#include <stdio.h>

#include "memory/store.h"

struct vstore *store_pgvector_new(const struct config *cfg, char *err, size_t errlen)
{
    (void)cfg;
    snprintf(err, errlen, "VECTOR_DB_PROVIDER=pgvector: not built yet");
    return NULL;
}
