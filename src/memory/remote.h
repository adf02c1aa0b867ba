/*
 * What the remote vector stores (memory/store_qdrant.c, store_pinecone.c,
 * store_weaviate.c, store_pgvector.c) share, so each of them only speaks
 * its own wire format: the tenant check every operation starts with, ids
 * derived from names (a Qdrant point for a tenant's memory, the object
 * that records a namespace), a record's fields and a namespace's identity
 * as JSON under memchat's own names, vectors as JSON arrays, and the
 * failure class that decides a verb's exit code.
 */
#ifndef MEMCHAT_MEMORY_REMOTE_H
#define MEMCHAT_MEMORY_REMOTE_H

#include <stdbool.h>
#include <stddef.h>

#include "memory/store.h"
#include "util/ident.h"

struct cJSON;

/* 0 when tenant is a valid tenant id ([A-Za-z0-9_-]{1,64}), else -1 with
 * "STORE: tenant "...": not a valid tenant id" in err. Every operation of
 * a remote store calls it first, so no call can reach the server without
 * a tenant to confine it. */
int remote_check_tenant(const char *store, const char *tenant, char *err, size_t errlen);

/* A UUID (version 8, RFC 9562) derived from the parts joined by NUL bytes
 * with BLAKE2b: the same parts give the same UUID in every process. out
 * holds MC_UUID_STRLEN + 1 bytes. */
void remote_uuid_from(const char *a, const char *b, char *out);

/* A record's fields as a JSON object: "id", "text", "user_id", "agent",
 * "kind", "created_at", "updated_at" (numbers) and "metadata" (the parsed
 * object; {} when none). NULL when the record's metadata is not a JSON
 * object. The vector is not included. Free with cJSON_Delete. */
struct cJSON *remote_record_to_json(const struct mem_record *r);
/* Fills r from such an object (the inverse; metadata may also be a JSON
 * string holding the object). 0, or -1 naming the field that is missing
 * or of the wrong type. r's owned strings are allocated; the caller clears
 * r with mem_record_clear() in every case. */
int remote_record_from_json(const struct cJSON *o, struct mem_record *r, char *err, size_t errlen);

/* A namespace's identity as {"tenant","embedder","model","dim",
 * "created_ms","generation"}. Free with cJSON_Delete. */
struct cJSON *remote_ns_to_json(const char *tenant, const struct store_ns *ns);
/* The inverse; 0, or -1 naming the field. */
int remote_ns_from_json(const struct cJSON *o, struct store_ns *ns, char *err, size_t errlen);

/* dim floats as a JSON array of numbers that read back to the same floats
 * (a raw cJSON node: it prints as the array but cannot be walked). Free
 * with cJSON_Delete, or add it to an object. */
struct cJSON *remote_vector_to_json(const float *v, int dim);
/* Reads a JSON array of exactly dim numbers into a new array (free with
 * xfree); NULL when it is not one. */
float *remote_vector_from_json(const struct cJSON *a, int dim);

/* Sorts rs by score, best first, ties by id (so every store orders equal
 * scores alike). */
void remote_sort_records(struct mem_records *rs);

#endif
