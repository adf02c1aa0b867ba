/*
 * Identifiers of tenants, users and agents: [A-Za-z0-9_-]{1,64}, valid as a
 * Weaviate tenant, a Pinecone namespace and a file name (DESIGN.md).
 */
#ifndef MEMCHAT_UTIL_IDENT_H
#define MEMCHAT_UTIL_IDENT_H

#include <stdbool.h>

#define IDENT_MAX 64

/* True when s matches [A-Za-z0-9_-]{1,64}; false for NULL. */
bool ident_valid(const char *s);

#endif
