/*
 * The interface between fakevec's HTTP core (tests/server/fakevec.c) and
 * its services: the loopback fakes of the remote embedders (fake_embed.c:
 * OpenAI, Cohere, Hugging Face TEI and hosted, Ollama) and vector stores
 * (fake_qdrant.c, fake_pinecone.c, fake_weaviate.c). One process plays one
 * service, chosen by --service. The core reads requests (keep-alive,
 * Content-Length or chunked bodies, Expect: 100-continue), logs each one to
 * the --log file as one JSON line {"seq","conn","method","path","query",
 * "headers" (names lowercased),"body"}, applies injected failures, and
 * hands the rest to the service, whose reply it sends. A service checks
 * every request against the documented format (../shared/api-notes.md)
 * and answers 400/404/422 in the service's own error shape, naming what is
 * wrong, when it does not match: a test that passes against the fake has
 * sent what the documentation says.
 *
 * Control (never logged, never passed to the service), on any connection:
 *   POST /__fake/fail   {"status":N,"count":C,"retry_after":"S","message":"..."}
 *                       the next C requests (default 1) are answered N in
 *                       the service's error shape (service->error), with a
 *                       Retry-After header when retry_after is given;
 *                       {"drop":true,"count":C} closes the connection instead;
 *                       {"hang":true,"count":C} never answers (the client's
 *                       timeout must end it); "after":A lets A requests
 *                       pass first (a failure in the middle of a job).
 *   POST /__fake/reset  clears injected failures and calls service->reset.
 *
 * Options: --service NAME, --log FILE, --key KEY (the credential the
 * service accepts; none: every request is accepted), then service options
 * passed to init (e.g. fake_embed's --dim N, fake_pinecone's --dim N).
 */
#ifndef MEMCHAT_FAKEVEC_H
#define MEMCHAT_FAKEVEC_H

#include <stdbool.h>
#include <stddef.h>

#include <cJSON.h>

/* One request, valid during handle(). */
struct fv_request {
    const char *method;
    const char *path;                /* without the query string, not decoded */
    const char *query;               /* after '?', not decoded; "" when none */
    const char *const *header_names; /* lowercased */
    const char *const *header_values;
    size_t n_headers;
    const char *body; /* NUL-terminated; "" when none */
    size_t body_len;
    cJSON *json; /* body parsed, NULL when empty or not JSON */
};

/* A reply being built; the core sends it. */
struct fv_reply {
    int status; /* 200 unless set */
    char *body; /* malloc'd; NULL for an empty body */
    size_t body_len;
    char content_type[64];
    char headers[1024]; /* extra header lines, each ending in \r\n */
};

/* The value of header name (lowercase), or NULL. */
const char *fv_header(const struct fv_request *rq, const char *name);
/* The decoded value of the n-th (0-based) query parameter called name into
 * out; false when there is no such occurrence or it does not fit. */
bool fv_query_param(const struct fv_request *rq, const char *name, size_t n, char *out,
                    size_t outlen);
/* The credential given with --key, or NULL when none was. */
const char *fv_key(void);
/* True when no --key was given or header's value equals prefix + key
 * (e.g. fv_auth_ok(rq, "authorization", "Bearer ")). */
bool fv_auth_ok(const struct fv_request *rq, const char *header, const char *prefix);

/* Sets the reply to status and body (printed unformatted; taken: freed
 * here), application/json. */
void fv_reply_json(struct fv_reply *rep, int status, cJSON *body);
/* Sets the reply to status and a copy of text with the content type. */
void fv_reply_text(struct fv_reply *rep, int status, const char *content_type, const char *text);
/* Appends one header line ("Name: value", without CRLF). */
void fv_reply_header(struct fv_reply *rep, const char *line);

/* A service. */
struct fv_service {
    const char *name;
    /* Its state from the options after the core's (argv[0..argc)); NULL
     * with a message on stderr when one is wrong. */
    void *(*init)(int argc, char **argv);
    /* Answers one request. */
    void (*handle)(void *st, const struct fv_request *rq, struct fv_reply *rep);
    /* Fills rep with status and message in the service's error shape. */
    void (*error)(void *st, int status, const char *message, struct fv_reply *rep);
    /* Forgets all stored data (POST /__fake/reset); may be NULL. */
    void (*reset)(void *st);
    void (*free)(void *st);
};

extern const struct fv_service fv_embed_service;
extern const struct fv_service fv_qdrant_service;
extern const struct fv_service fv_pinecone_service;
extern const struct fv_service fv_weaviate_service;

#endif
