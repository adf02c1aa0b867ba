/*
 * The HTTP transport: libcurl's multi interface driven by one thread at a
 * time, so that a cancel from another thread wakes the transfer at once
 * (curl_multi_wakeup) instead of waiting for a timeout. One http_client per
 * worker keeps its connections alive across turns (libcurl's connection
 * cache lives in the multi handle) and speaks HTTP/2 where the server
 * offers it over TLS. Proxies come from the environment (libcurl reads
 * http_proxy, https_proxy, no_proxy itself).
 *
 * Bodies of 2xx responses stream to a callback as they arrive; bodies of
 * other responses are kept (bounded) for the error message. The response
 * size cap is enforced in the write callback, because libcurl 7.88's
 * CURLOPT_MAXFILESIZE does not cap a streamed body of unknown length.
 */
#ifndef MEMCHAT_NET_HTTP_H
#define MEMCHAT_NET_HTTP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

/* Receives len bytes of a 2xx body; a nonzero return aborts the transfer
 * (http_perform then returns HTTP_ERR_ABORTED). */
typedef int (*http_body_fn)(void *ud, const char *data, size_t len);

struct http_request {
    const char *method; /* "GET" or "POST" */
    const char *url;
    const char *const *headers; /* "Name: value" lines; may hold secrets, never logged */
    size_t n_headers;
    const char *body; /* POST body (JSON), or NULL */
    size_t body_len;
    http_body_fn on_body;
    void *ud;
    long connect_timeout_ms;   /* 0 = libcurl's default */
    long total_timeout_ms;     /* 0 = none */
    long idle_timeout_ms;      /* abort when no byte arrives for this long; 0 = off */
    size_t max_response_bytes; /* cap on the whole body; 0 = 64 MiB */
};

/* What came back. Filled by http_perform; free with http_response_free. */
struct http_response {
    long status; /* 0 when no response arrived */
    char content_type[128];
    char request_id[128];    /* x-request-id or request-id */
    char retry_after[64];    /* raw Retry-After, "" when absent */
    char retry_after_ms[32]; /* raw retry-after-ms, "" when absent */
    int should_retry;        /* x-should-retry: 1, 0, or -1 when absent */
    struct buf error_body;   /* a non-2xx body, at most 64 KiB */
    size_t body_bytes;       /* bytes of body received (any status) */
    bool reused_connection;  /* the transfer reused a cached connection */
    long http_version;       /* 1 (1.x), 2 or 3 */
};

enum http_result {
    HTTP_OK = 0,        /* a response arrived (any status) and was read whole */
    HTTP_ERR_CONNECT,   /* could not resolve or connect */
    HTTP_ERR_TIMEOUT,   /* connect, total or low-speed timeout */
    HTTP_ERR_TRANSPORT, /* the connection broke (reset, closed mid-body, TLS) */
    HTTP_ERR_TOO_BIG,   /* the body passed max_response_bytes */
    HTTP_ERR_CANCELLED, /* *cancel was set */
    HTTP_ERR_ABORTED,   /* on_body returned nonzero */
    HTTP_ERR_NO_MEMORY,
};

struct http_client;

/* A client with its own multi handle and connection cache. NULL with a
 * message in err when libcurl cannot be set up. Free with http_client_free. */
struct http_client *http_client_new(char *err, size_t errlen);
/* NULL is a no-op. */
void http_client_free(struct http_client *c);
/* Wakes a http_perform() blocked in this client so that it checks its
 * cancel flag now. Safe from any thread, also when nothing runs. */
void http_client_wakeup(struct http_client *c);

/* Runs req to completion on the calling thread. resp is always
 * initialised (free it with http_response_free). On an error a message
 * naming the URL (without credentials) and the cause is in err. */
enum http_result http_perform(struct http_client *c, const struct http_request *req,
                              const atomic_bool *cancel, struct http_response *resp, char *err,
                              size_t errlen);
/* Frees what a response holds; the struct itself is the caller's. */
void http_response_free(struct http_response *resp);
/* A short name of r for messages ("timeout", "connect", ...). */
const char *http_result_name(enum http_result r);

/* Process-wide libcurl set-up with memchat's allocator; called by
 * mc_global_init(). 0 on success. */
int http_global_init(void);

#endif
