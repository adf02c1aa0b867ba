/*
 * The Comet Opik exporter: a bounded queue of trace records (the shared
 * {"trace":{...},"spans":[...]} shape of client/trace.h, Opik's Trace_Write
 * and Span_Write objects) and a flush that sends them to Opik's batch
 * ingestion endpoints, traces before their spans, at most 1000 items per
 * request (api-notes §8). Failures that may pass (transport errors, 408,
 * 429, 5xx) are retried with the backoff of net/retry.h through the
 * caller's sleep; a 4xx that can never succeed drops its batch. Records
 * whose traces went out but whose spans did not keep only the spans, so a
 * trace is never sent twice.
 *
 * Thread model: one thread (the engine's background worker) calls
 * enqueue, flush, pending and stats; opik_interrupt may be called from any
 * thread. No thread is started here. The API key is kept only in memory
 * that is wiped when the exporter is freed, and never appears in a message.
 */
#ifndef MEMCHAT_NET_OPIK_H
#define MEMCHAT_NET_OPIK_H

#include <stdbool.h>
#include <stddef.h>

struct cJSON;

struct opik_config {
    /* OPIK_URL_OVERRIDE, e.g. http://localhost:5173/api (no trailing '/' needed) */
    const char *base_url;
    /* "" or NULL = none; sent as "authorization: <key>" with NO "Bearer " prefix */
    const char *api_key;
    /* "" or NULL = none; sent as "Comet-Workspace: <ws>" */
    const char *workspace;
    /* records held at most (>= 1); enqueueing beyond drops the OLDEST */
    size_t queue_max;
    /* retries of one request (negative = 0) */
    int max_retries;
    /* per request, in ms; 0 = libcurl's default (connect) or none (total) */
    long long connect_timeout_ms, timeout_ms;
};

struct opik;

/* A new exporter, or NULL with a message in err: naming OPIK_URL_OVERRIDE
 * when base_url is not an http:// or https:// URL with a host, naming
 * OPIK_API_KEY or OPIK_WORKSPACE when one holds a line break, naming
 * OPIK_QUEUE_MAX when queue_max is 0, or when libcurl cannot be set up.
 * Copies everything (the key into memory wiped at free). Free with
 * opik_free. */
struct opik *opik_new(const struct opik_config *c, char *err, size_t errlen);
/* Frees o and every queued record, wiping the key; NULL is a no-op. */
void opik_free(struct opik *o);

/* Queues a deep copy of one trace record ({"trace":{...},"spans":[...]}:
 * "trace" an object, "spans" an array of objects, possibly empty); the
 * caller keeps record. When queue_max records are held the oldest is
 * dropped (and counted in dropped_full). Returns 0, or -1 when the record
 * is not of that shape or memory ran out (nothing queued). */
int opik_enqueue(struct opik *o, const struct cJSON *record);
/* Records queued, including those of which only spans are left. */
size_t opik_pending(const struct opik *o);

/* Sends what is queued: POST {base}/v1/private/traces/batch with
 * {"traces":[...]} (at most 1000 per request), then POST
 * {base}/v1/private/spans/batch with {"spans":[...]} (at most 1000 per
 * request) for the same records. 2xx is success. Transport errors, 408,
 * 429 and 5xx are retried up to max_retries times, waiting
 * retry_delay_ms() or the server's Retry-After through sleep(ud, ms),
 * which returns false to abandon (shutdown): the flush then returns -1 with
 * what remains still queued; a NULL sleep retries at once (tests). Any
 * other 4xx can never succeed: that batch is dropped (its items counted in
 * dropped_rejected; a dropped trace takes its spans along), the flush goes
 * on with the rest and reports the error. Other statuses (3xx) and running
 * out of memory end the flush, records kept. Returns 0 when everything
 * was sent; -1 with err otherwise: the failure that ended the flush, else
 * the first rejection ("opik: POST <url>: HTTP <status>: <server
 * message>", or "opik: transport error (<kind>): ..."; never the API key,
 * and a key the server echoes is masked with '*'). */
int opik_flush(struct opik *o, bool (*sleep)(void *ud, long long ms), void *ud, char *err,
               size_t errlen);
/* Wakes a flush blocked in a transfer or about to start one, from any
 * thread (http_client_wakeup): that flush ends with -1, records kept. An
 * interrupt while no flush runs ends the next flush's first transfer, so
 * one racing with the start of a flush is never lost; every flush clears
 * it when it returns. */
void opik_interrupt(struct opik *o);

/* Counters since opik_new. Items are traces or spans; failed_requests
 * counts every attempt that did not end in a 2xx, retried ones included. */
struct opik_stats {
    unsigned long long sent_traces, sent_spans; /* items accepted by the server */
    unsigned long long dropped_full;            /* records dropped because the queue was full */
    unsigned long long dropped_rejected; /* items dropped because a 4xx refused their batch */
    unsigned long long failed_requests;  /* attempts without a 2xx */
};
/* Copies the counters into *out. */
void opik_get_stats(const struct opik *o, struct opik_stats *out);

#endif
