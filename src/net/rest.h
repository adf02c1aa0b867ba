/*
 * JSON over HTTP for the remote embedders and vector stores (OpenAI,
 * Cohere, Hugging Face, Ollama, Qdrant, Pinecone, Weaviate): one endpoint
 * with its base URL, headers and secret, and one call that sends a JSON
 * body, retries what net/retry.h says is retryable (connection errors,
 * timeouts, 408, 409, 429, 5xx; the server's Retry-After up to 60 s), and
 * hands back the parsed JSON of a 2xx answer. Every failure is classified
 * (unreachable, authentication, rate limit, server, refused, bad reply), so
 * callers can tell a verb's exit code and `memchat doctor` its fix, and
 * described in one message that names the service, the method and the URL
 * (no credentials, no query string), the status and the server's own
 * message, with the secret scrubbed out of all of it.
 *
 * A rest object is used by one thread at a time (it owns a libcurl multi
 * handle through net/http.h).
 */
#ifndef MEMCHAT_NET_REST_H
#define MEMCHAT_NET_REST_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

struct cJSON;

/* How a call ended. */
enum rest_fail {
    REST_OK = 0,
    REST_UNREACHABLE, /* could not connect, timed out, or the connection broke */
    REST_AUTH,        /* 401 or 403: the key or token is missing or wrong */
    REST_RATE,        /* 429, still after the retries */
    REST_SERVER,      /* 5xx, still after the retries */
    REST_REFUSED,     /* another 4xx (the status says which) */
    REST_BAD_REPLY,   /* a 2xx whose body is not JSON (or too big) */
    REST_CANCELLED,   /* the cancel flag was set */
};

struct rest_opts {
    const char *service;        /* prefixes every message: "qdrant", "cohere embedder" */
    const char *base_url;       /* paths are appended; a trailing '/' is dropped */
    const char *const *headers; /* "Name: value" lines (may hold the secret); copied */
    size_t n_headers;
    const char *secret;      /* scrubbed from every message; NULL or "" for none; copied */
    long timeout_ms;         /* one attempt, whole; 0: 30 s */
    long connect_timeout_ms; /* 0: 5 s */
    int max_retries;         /* retries after the first attempt (MEMCHAT_MAX_RETRIES) */
    size_t max_response;     /* bytes of one answer; 0: 64 MiB */
};

struct rest;

/* An endpoint, or NULL with a message (libcurl could not be set up, or no
 * base URL). Free with rest_free(). */
struct rest *rest_new(const struct rest_opts *o, char *err, size_t errlen);
/* Frees r, wiping its copy of the secret and headers; NULL is a no-op. */
void rest_free(struct rest *r);
/* The flag that cancels calls of r (and the waits between retries) when
 * set; NULL for none. Borrowed: it must outlive the calls. */
void rest_set_cancel(struct rest *r, const atomic_bool *cancel);

/* Sends method (GET, POST, PUT, PATCH, DELETE) to base_url + path (path
 * starts with '/', may carry a query string the caller escaped) with body
 * (JSON text; NULL for none). On a 2xx, *out is its parsed JSON (NULL for
 * an empty body; the caller frees it with cJSON_Delete) and REST_OK is
 * returned. Otherwise *out is NULL and err holds the message. status (may
 * be NULL) is the last HTTP status, 0 when none came, so a caller can
 * treat, say, a 404 as "does not exist". */
enum rest_fail rest_call(struct rest *r, const char *method, const char *path, const char *body,
                         struct cJSON **out, long *status, char *err, size_t errlen);
/* rest_call with body printed from JSON (unformatted); body may be NULL. */
enum rest_fail rest_call_json(struct rest *r, const char *method, const char *path,
                              const struct cJSON *body, struct cJSON **out, long *status, char *err,
                              size_t errlen);
/* A short name: "ok", "unreachable", "auth", "rate_limited", "server",
 * "refused", "bad_reply", "cancelled". */
const char *rest_fail_name(enum rest_fail f);
/* The URL the endpoint was made with, for messages (no userinfo, query or
 * fragment). Borrowed. */
const char *rest_base_shown(const struct rest *r);

/* Appends s to out percent-encoded for a URL path segment or query value
 * (unreserved characters kept). 0, or -1 when out is too small. */
int rest_escape(const char *s, char *out, size_t outlen);

#endif
