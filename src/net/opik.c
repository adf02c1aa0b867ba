/*
 * The Opik exporter of opik.h. Records wait in a ring of at most queue_max
 * entries, each holding its trace (NULL once sent) and its spans with a
 * count of those already gone. A flush has two phases in queue order:
 * every pending trace in batches of 1000, then every span whose trace went
 * out, in batches of 1000 that may cut across records. Because traces go
 * in order, the records whose trace was sent always form a prefix of the
 * queue, which is what lets the span phase run over the same records
 * without bookkeeping per batch; finished records are removed in one
 * stable pass when the flush returns.
 *
 * Batch bodies are built from cJSON reference nodes (no copy of the
 * records) and printed unformatted. Each batch is one http_perform at a
 * time with the interrupt flag as its cancel flag, retried as net/retry.h
 * says for transport errors, 408, 429 and 5xx. (retry_status_retryable
 * also retries 409, which Opik only answers for a conflicting id, a
 * failure that repeats, so the status rule is spelt out here.)
 *
 * Error messages quote the server's message, scrubbed of the API key both
 * in the raw body and after JSON decoding, before anything is cut to fit.
 */
#include "config.h"

#include "net/opik.h"

#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <cJSON.h>

#include "net/http.h"
#include "net/retry.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/json.h"
#include "util/utf8.h"

#define OPIK_BATCH_MAX      1000 /* Opik's @Size(max=1000) on both batch bodies */
#define OPIK_TRACES_PATH    "/v1/private/traces/batch"
#define OPIK_SPANS_PATH     "/v1/private/spans/batch"
#define OPIK_RESPONSE_MAX   ((size_t)1024 * 1024) /* success bodies are empty (204) */
#define OPIK_SERVER_MSG_MAX 300                   /* bytes of a server message quoted */
#define OPIK_SCRUB_MIN      4 /* shorter keys would mask ordinary words; none is that short */
#define OPIK_RING_FIRST     16

/* One queued record. */
struct opik_rec {
    cJSON *trace;      /* the Trace_Write; NULL once sent or dropped */
    cJSON *spans;      /* array of Span_Write; NULL once dropped */
    size_t spans_done; /* spans from the front already sent or dropped */
};

struct opik {
    char *base;        /* base URL without trailing '/' */
    char *shown;       /* base for messages: no userinfo, query or fragment */
    char *key;         /* the API key, NULL for none; wiped at free */
    char *auth_header; /* "authorization: <key>"; wiped at free */
    char *ws_header;   /* "Comet-Workspace: <ws>" or NULL */
    const char *headers[4];
    size_t n_headers;
    size_t queue_max;
    int max_retries;
    long connect_timeout_ms, timeout_ms;
    struct http_client *http;
    atomic_bool interrupted; /* set by opik_interrupt, cleared as a flush returns */
    struct opik_rec *ring;
    size_t cap, head, len;
    struct opik_stats stats;
};

enum opik_outcome {
    OPIK_SENT,     /* a 2xx came */
    OPIK_REJECTED, /* a 4xx that can never pass: drop the batch */
    OPIK_FAILED,   /* anything else: keep the batch, end the flush */
};

/* --- set-up -------------------------------------------------------------- */

/* Overwrites s before freeing it, so the key does not linger in freed
 * memory (or a core dump). NULL is a no-op. */
static void opik_secret_free(char *s)
{
    if (s == NULL)
        return;
    volatile char *v = s;
    for (size_t i = 0; s[i] != '\0'; i++)
        v[i] = '\0';
    xfree(s);
}

/* True when s is set (neither NULL nor ""). */
static bool opik_set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

/* True when url is "http://" or "https://" (any case), then a host (after
 * any userinfo), with no blank anywhere (it would end up inside the
 * request line). */
static bool opik_url_valid(const char *url)
{
    const char *auth = NULL;
    if (strncasecmp(url, "http://", 7) == 0)
        auth = url + 7;
    else if (strncasecmp(url, "https://", 8) == 0)
        auth = url + 8;
    if (auth == NULL || strpbrk(url, " \t\r\n") != NULL)
        return false;
    size_t auth_len = strcspn(auth, "/?#");
    const char *at = memchr(auth, '@', auth_len);
    while (at != NULL) { /* the last '@' ends the userinfo */
        auth_len -= (size_t)(at + 1 - auth);
        auth = at + 1;
        at = memchr(auth, '@', auth_len);
    }
    return auth_len > 0;
}

/* url for messages: the scheme, then host and path without the userinfo
 * ("user:pass@"), query and fragment. The caller frees it. */
static char *opik_url_shown(const char *url)
{
    const char *sep = strstr(url, "://");
    const char *auth = sep != NULL ? sep + 3 : url;
    size_t auth_len = strcspn(auth, "/?#");
    const char *rest = auth;
    for (size_t i = 0; i < auth_len; i++)
        if (auth[i] == '@')
            rest = auth + i + 1;
    size_t rest_len = strcspn(rest, "?#");
    return xasprintf("%.*s%.*s", (int)(auth - url), url, (int)rest_len, rest);
}

/* Checks the configuration; false with a message in err. Nothing of a
 * key is ever quoted. */
static bool opik_config_check(const struct opik_config *c, char *err, size_t errlen)
{
    const char *url = c->base_url != NULL ? c->base_url : "";
    if (!opik_url_valid(url)) {
        char *shown = opik_url_shown(url);
        snprintf(err, errlen,
                 "OPIK_URL_OVERRIDE: '%.200s' is not an http:// or https:// URL with a host "
                 "(e.g. http://localhost:5173/api)",
                 shown);
        xfree(shown);
        return false;
    }
    if (opik_set(c->api_key) && strpbrk(c->api_key, "\r\n") != NULL) {
        snprintf(err, errlen, "OPIK_API_KEY: contains a line break (a header value cannot)");
        return false;
    }
    if (opik_set(c->workspace) && strpbrk(c->workspace, "\r\n") != NULL) {
        snprintf(err, errlen, "OPIK_WORKSPACE: contains a line break (a header value cannot)");
        return false;
    }
    if (c->queue_max == 0) {
        snprintf(err, errlen, "OPIK_QUEUE_MAX: 0 holds no trace; use 1 or more");
        return false;
    }
    return true;
}

/* A millisecond setting as libcurl's long, negative meaning 0 (unset). */
static long opik_ms(long long ms)
{
    if (ms <= 0)
        return 0;
    return ms > LONG_MAX ? LONG_MAX : (long)ms;
}

struct opik *opik_new(const struct opik_config *c, char *err, size_t errlen)
{
    if (!opik_config_check(c, err, errlen))
        return NULL;
    char herr[256] = "";
    struct http_client *http = http_client_new(herr, sizeof herr);
    if (http == NULL) {
        snprintf(err, errlen, "opik: %s", herr);
        return NULL;
    }
    struct opik *o = xcalloc(1, sizeof *o);
    o->http = http;
    size_t n = strlen(c->base_url);
    while (n > 0 && c->base_url[n - 1] == '/')
        n--;
    o->base = xstrndup(c->base_url, n);
    o->shown = opik_url_shown(o->base);
    o->headers[o->n_headers++] = "Content-Type: application/json";
    o->headers[o->n_headers++] = "Accept: application/json";
    if (opik_set(c->api_key)) {
        o->key = xstrdup(c->api_key);
        /* Opik wants the bare key: no "Bearer " (api-notes §8). */
        o->auth_header = xasprintf("authorization: %s", c->api_key);
        o->headers[o->n_headers++] = o->auth_header;
    }
    if (opik_set(c->workspace)) {
        o->ws_header = xasprintf("Comet-Workspace: %s", c->workspace);
        o->headers[o->n_headers++] = o->ws_header;
    }
    o->queue_max = c->queue_max;
    o->max_retries = c->max_retries > 0 ? c->max_retries : 0;
    o->connect_timeout_ms = opik_ms(c->connect_timeout_ms);
    o->timeout_ms = opik_ms(c->timeout_ms);
    atomic_init(&o->interrupted, false);
    return o;
}

/* Frees what one record holds. */
static void opik_rec_fini(struct opik_rec *r)
{
    cJSON_Delete(r->trace);
    cJSON_Delete(r->spans);
    r->trace = NULL;
    r->spans = NULL;
    r->spans_done = 0;
}

/* The i-th record from the oldest. */
static struct opik_rec *opik_at(const struct opik *o, size_t i)
{
    return &o->ring[(o->head + i) % o->cap];
}

void opik_free(struct opik *o)
{
    if (o == NULL)
        return;
    for (size_t i = 0; i < o->len; i++)
        opik_rec_fini(opik_at(o, i));
    xfree(o->ring);
    http_client_free(o->http);
    opik_secret_free(o->key);
    opik_secret_free(o->auth_header);
    xfree(o->ws_header);
    xfree(o->shown);
    xfree(o->base);
    xfree(o);
}

/* --- the queue ----------------------------------------------------------- */

/* True when record has the shape {"trace":{...},"spans":[{...},...]}. */
static bool opik_record_valid(const cJSON *record)
{
    if (!cJSON_IsObject(record))
        return false;
    const cJSON *trace = cJSON_GetObjectItemCaseSensitive(record, "trace");
    const cJSON *spans = cJSON_GetObjectItemCaseSensitive(record, "spans");
    if (!cJSON_IsObject(trace) || !cJSON_IsArray(spans))
        return false;
    const cJSON *s;
    cJSON_ArrayForEach(s, spans)
    {
        if (!cJSON_IsObject(s))
            return false;
    }
    return true;
}

/* Makes room for one more record (the ring grows up to queue_max, oldest
 * first after a move). False when memory runs out. */
static bool opik_ring_room(struct opik *o)
{
    if (o->len < o->cap)
        return true;
    size_t cap = o->cap == 0 ? OPIK_RING_FIRST : o->cap * 2;
    if (cap > o->queue_max || cap < o->cap)
        cap = o->queue_max;
    if (cap > SIZE_MAX / sizeof *o->ring)
        return false;
    struct opik_rec *ring = try_malloc(cap * sizeof *ring);
    if (ring == NULL)
        return false;
    for (size_t i = 0; i < o->len; i++)
        ring[i] = *opik_at(o, i);
    xfree(o->ring);
    o->ring = ring;
    o->cap = cap;
    o->head = 0;
    return true;
}

int opik_enqueue(struct opik *o, const struct cJSON *record)
{
    if (!opik_record_valid(record))
        return -1;
    struct opik_rec r = {
        .trace = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(record, "trace"), true),
        .spans = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(record, "spans"), true),
    };
    if (r.trace == NULL || r.spans == NULL) {
        opik_rec_fini(&r);
        return -1;
    }
    if (o->len == o->queue_max) {
        /* The oldest goes: it stays in the local trace log, and fresh
         * traces are worth more to someone watching Opik. */
        opik_rec_fini(opik_at(o, 0));
        o->head = (o->head + 1) % o->cap;
        o->len--;
        o->stats.dropped_full++;
    }
    if (!opik_ring_room(o)) {
        opik_rec_fini(&r);
        return -1;
    }
    *opik_at(o, o->len) = r;
    o->len++;
    return 0;
}

size_t opik_pending(const struct opik *o)
{
    return o->len;
}

void opik_get_stats(const struct opik *o, struct opik_stats *out)
{
    *out = o->stats;
}

/* True when nothing of r is left to send. */
static bool opik_rec_done(const struct opik_rec *r)
{
    return r->trace == NULL &&
           (r->spans == NULL || r->spans_done >= (size_t)cJSON_GetArraySize(r->spans));
}

/* Removes the finished records, keeping the order of the rest. */
static void opik_compact(struct opik *o)
{
    size_t kept = 0;
    for (size_t i = 0; i < o->len; i++) {
        struct opik_rec *r = opik_at(o, i);
        if (opik_rec_done(r)) {
            opik_rec_fini(r);
            continue;
        }
        if (kept != i)
            *opik_at(o, kept) = *r;
        kept++;
    }
    o->len = kept;
    if (kept == 0)
        o->head = 0;
}

void opik_interrupt(struct opik *o)
{
    atomic_store(&o->interrupted, true);
    http_client_wakeup(o->http);
}

/* --- messages ------------------------------------------------------------ */

/* Masks every occurrence of the key in s with '*'. */
static void opik_scrub(const struct opik *o, char *s)
{
    if (o->key == NULL)
        return;
    size_t klen = strlen(o->key);
    if (klen < OPIK_SCRUB_MIN)
        return;
    for (char *hit = strstr(s, o->key); hit != NULL; hit = strstr(hit + klen, o->key))
        memset(hit, '*', klen);
}

/* Appends s to b, replacing control bytes with spaces (a message is one
 * line); false when memory runs out. */
static bool opik_put_line(struct buf *b, const char *s)
{
    for (; *s != '\0'; s++) {
        char ch = (unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s;
        if (buf_putc(b, ch) != BUF_OK)
            return false;
    }
    return true;
}

/* The message of an Opik error body into b: ErrorMessage_Public's
 * "message" (and "details"), the validation form's "errors" list, or the
 * raw text when it is neither. */
static void opik_body_message(const char *text, struct buf *b)
{
    cJSON *j = json_parse_str(text);
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(j, "message");
    const cJSON *details = cJSON_GetObjectItemCaseSensitive(j, "details");
    const cJSON *errors = cJSON_GetObjectItemCaseSensitive(j, "errors");
    if (cJSON_IsString(msg)) {
        opik_put_line(b, msg->valuestring);
        if (cJSON_IsString(details) && details->valuestring[0] != '\0') {
            opik_put_line(b, " (");
            opik_put_line(b, details->valuestring);
            opik_put_line(b, ")");
        }
    } else if (cJSON_IsArray(errors)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, errors)
        {
            if (!cJSON_IsString(e))
                continue;
            if (b->len > 0)
                opik_put_line(b, "; ");
            opik_put_line(b, e->valuestring);
        }
    } else {
        opik_put_line(b, text);
    }
    cJSON_Delete(j);
}

/* "opik: POST <url>: HTTP <status>[: <server message>]" into err, the
 * key masked before the message is cut to fit. */
static void opik_status_message(const struct opik *o, const char *path,
                                const struct http_response *resp, char *err, size_t errlen)
{
    char *text =
        xstrndup(resp->error_body.data != NULL ? resp->error_body.data : "", resp->error_body.len);
    opik_scrub(o, text); /* before parsing: an escaped copy may differ */
    struct buf m;
    buf_init(&m, 64 * 1024);
    opik_body_message(text, &m);
    if (m.data != NULL)
        opik_scrub(o, m.data);
    const char *sm = buf_cstr(&m);
    sm += strspn(sm, " ");
    size_t shown = utf8_truncate(sm, strlen(sm), OPIK_SERVER_MSG_MAX);
    snprintf(err, errlen, "opik: POST %s%s: HTTP %ld%s%.*s", o->shown, path, resp->status,
             shown > 0 ? ": " : "", (int)shown, sm);
    opik_scrub(o, err);
    buf_free(&m);
    xfree(text);
}

/* Appends a note to err when there is room. */
static void opik_note(char *err, size_t errlen, const char *note)
{
    size_t n = strlen(err);
    if (n < errlen)
        snprintf(err + n, errlen - n, "%s", note);
}

/* --- sending ------------------------------------------------------------- */

/* r in [0, 1) for the retry jitter; a failed getrandom() only loses the
 * jitter, not the retry. */
static double opik_jitter(void)
{
    uint32_t u = 0;
    if (getrandom(&u, sizeof u, GRND_NONBLOCK) != (ssize_t)sizeof u)
        return 0.0;
    return (double)u / 4294967296.0;
}

/* True for the statuses that may pass on another try. */
static bool opik_status_retryable(long status)
{
    return status == 408 || status == 429 || status >= 500;
}

/* What one failed attempt means: the message into err, whether to retry
 * in *retry, and the outcome if not retried. */
static enum opik_outcome opik_failure(const struct opik *o, const char *path, enum http_result hr,
                                      const struct http_response *resp, const char *herr,
                                      bool *retry, char *err, size_t errlen)
{
    if (hr == HTTP_ERR_CANCELLED) {
        snprintf(err, errlen, "opik: POST %s%s: interrupted", o->shown, path);
        *retry = false;
        return OPIK_FAILED;
    }
    if (hr != HTTP_OK) {
        snprintf(err, errlen, "opik: transport error (%s): %s", http_result_name(hr), herr);
        opik_scrub(o, err);
        *retry = hr != HTTP_ERR_NO_MEMORY;
        return OPIK_FAILED;
    }
    opik_status_message(o, path, resp, err, errlen);
    *retry = opik_status_retryable(resp->status);
    return resp->status >= 400 && resp->status <= 499 ? OPIK_REJECTED : OPIK_FAILED;
}

/* POSTs body to base + path until it passes, is refused for good, or the
 * retries run out; err gets the message of the last failure. */
static enum opik_outcome opik_post(struct opik *o, const char *path, const char *body,
                                   bool (*sleep)(void *ud, long long ms), void *ud, char *err,
                                   size_t errlen)
{
    char *url = xasprintf("%s%s", o->base, path);
    struct http_request req = {
        .method = "POST",
        .url = url,
        .headers = o->headers,
        .n_headers = o->n_headers,
        .body = body,
        .body_len = strlen(body),
        .connect_timeout_ms = o->connect_timeout_ms,
        .total_timeout_ms = o->timeout_ms,
        .max_response_bytes = OPIK_RESPONSE_MAX,
    };
    enum opik_outcome out = OPIK_FAILED;
    for (int retries = 0;; retries++) {
        struct http_response resp;
        char herr[512] = "";
        enum http_result hr =
            http_perform(o->http, &req, &o->interrupted, &resp, herr, sizeof herr);
        if (hr == HTTP_OK && resp.status >= 200 && resp.status <= 299) {
            http_response_free(&resp);
            out = OPIK_SENT;
            break;
        }
        o->stats.failed_requests++;
        bool retry = false;
        out = opik_failure(o, path, hr, &resp, herr, &retry, err, errlen);
        long long server_ms = retry_parse_after(
            resp.retry_after_ms[0] != '\0' ? resp.retry_after_ms : NULL,
            resp.retry_after[0] != '\0' ? resp.retry_after : NULL, clock_wall_ms());
        http_response_free(&resp);
        if (!retry)
            break;
        out = OPIK_FAILED;
        if (retries >= o->max_retries) {
            if (retries > 0) {
                char note[64];
                snprintf(note, sizeof note, " (gave up after %d %s)", retries,
                         retries == 1 ? "retry" : "retries");
                opik_note(err, errlen, note);
            }
            break;
        }
        if (sleep != NULL && !sleep(ud, retry_delay_ms(retries + 1, server_ms, opik_jitter()))) {
            opik_note(err, errlen, " (retry abandoned)");
            break;
        }
    }
    xfree(url);
    return out;
}

/* A batch body being built: {"<name>":[...]} whose items are reference
 * nodes, so the queue keeps owning the records. */
struct opik_batch {
    cJSON *root, *items;
};

/* An empty batch body named name; false when memory runs out. */
static bool opik_batch_init(struct opik_batch *b, const char *name)
{
    b->root = cJSON_CreateObject();
    b->items = cJSON_AddArrayToObject(b->root, name);
    if (b->items != NULL)
        return true;
    cJSON_Delete(b->root);
    b->root = NULL;
    return false;
}

/* Adds a reference to item (the queue keeps owning it); false on OOM. */
static bool opik_batch_add(struct opik_batch *b, cJSON *item)
{
    return cJSON_AddItemReferenceToArray(b->items, item);
}

/* The printed body (caller frees with cJSON_free), NULL on OOM; the batch
 * is freed either way, the referenced items untouched. */
static char *opik_batch_print(struct opik_batch *b)
{
    /* Up to OPIK_BATCH_MAX turns' text: a size not ours to bound. */
    alloc_fallible_begin();
    char *body = cJSON_PrintUnformatted(b->root);
    alloc_fallible_end();
    cJSON_Delete(b->root);
    b->root = NULL;
    return body;
}

/* Records a failure message: an ending failure replaces whatever came
 * before, a rejection only fills an empty message. */
static void opik_keep_error(char *err, size_t errlen, const char *msg, bool ending)
{
    if (errlen > 0 && (ending || err[0] == '\0'))
        snprintf(err, errlen, "%s", msg);
}

/* Phase one: every pending trace, in batches. -1 when a batch failed (the
 * flush ends); rejected batches are dropped with their spans. */
static int opik_send_traces(struct opik *o, bool (*sleep)(void *ud, long long ms), void *ud,
                            bool *rejected, char *err, size_t errlen)
{
    size_t i = 0;
    while (i < o->len && opik_at(o, i)->trace == NULL)
        i++;
    while (i < o->len) {
        struct opik_batch b;
        if (!opik_batch_init(&b, "traces")) {
            opik_keep_error(err, errlen, "opik: out of memory building a trace batch", true);
            return -1;
        }
        size_t end = i, n = 0;
        bool ok = true;
        for (; end < o->len && n < OPIK_BATCH_MAX && ok; end++) {
            struct opik_rec *r = opik_at(o, end);
            if (r->trace != NULL) {
                ok = opik_batch_add(&b, r->trace);
                n++;
            }
        }
        char *body = ok ? opik_batch_print(&b) : NULL;
        cJSON_Delete(b.root);
        if (body == NULL) {
            opik_keep_error(err, errlen, "opik: out of memory building a trace batch", true);
            return -1;
        }
        char msg[1024] = "";
        enum opik_outcome out = opik_post(o, OPIK_TRACES_PATH, body, sleep, ud, msg, sizeof msg);
        cJSON_free(body);
        if (out == OPIK_FAILED) {
            opik_keep_error(err, errlen, msg, true);
            return -1;
        }
        for (; i < end; i++) {
            struct opik_rec *r = opik_at(o, i);
            if (r->trace == NULL)
                continue;
            cJSON_Delete(r->trace);
            r->trace = NULL;
            if (out == OPIK_SENT) {
                o->stats.sent_traces++;
                continue;
            }
            /* Spans of a refused trace would point at nothing: they go too. */
            size_t left = (size_t)cJSON_GetArraySize(r->spans) - r->spans_done;
            o->stats.dropped_rejected += 1 + left;
            cJSON_Delete(r->spans);
            r->spans = NULL;
        }
        if (out == OPIK_REJECTED) {
            *rejected = true;
            opik_keep_error(err, errlen, msg, false);
        }
    }
    return 0;
}

/* Marks n spans from record *ri (its spans_done on) as gone, moving *ri
 * across records as they run out; the same walk the batch was built by. */
static void opik_spans_advance(struct opik *o, size_t *ri, size_t n)
{
    while (n > 0 && *ri < o->len) {
        struct opik_rec *r = opik_at(o, *ri);
        size_t total = r->spans != NULL ? (size_t)cJSON_GetArraySize(r->spans) : 0;
        size_t take = total - r->spans_done < n ? total - r->spans_done : n;
        r->spans_done += take;
        n -= take;
        if (r->spans_done >= total)
            (*ri)++;
    }
}

/* Adds up to OPIK_BATCH_MAX spans of sent traces from record ri on to b;
 * *n gets the count. False when memory runs out. */
static bool opik_spans_gather(struct opik *o, size_t ri, struct opik_batch *b, size_t *n)
{
    *n = 0;
    for (; ri < o->len && *n < OPIK_BATCH_MAX; ri++) {
        struct opik_rec *r = opik_at(o, ri);
        if (r->trace != NULL)
            break; /* its trace did not go: neither may its spans, nor later ones */
        if (r->spans == NULL)
            continue;
        cJSON *s = cJSON_GetArrayItem(r->spans, (int)r->spans_done);
        for (; s != NULL && *n < OPIK_BATCH_MAX; s = s->next) {
            if (!opik_batch_add(b, s))
                return false;
            (*n)++;
        }
    }
    return true;
}

/* Phase two: every span whose trace was sent, in batches. -1 when a batch
 * failed (the flush ends); rejected batches are dropped. */
static int opik_send_spans(struct opik *o, bool (*sleep)(void *ud, long long ms), void *ud,
                           bool *rejected, char *err, size_t errlen)
{
    size_t ri = 0;
    for (;;) {
        while (ri < o->len && opik_rec_done(opik_at(o, ri)))
            ri++;
        struct opik_batch b;
        size_t n = 0;
        if (!opik_batch_init(&b, "spans")) {
            opik_keep_error(err, errlen, "opik: out of memory building a span batch", true);
            return -1;
        }
        bool ok = opik_spans_gather(o, ri, &b, &n);
        if (ok && n == 0) {
            cJSON_Delete(b.root);
            return 0;
        }
        char *body = ok ? opik_batch_print(&b) : NULL;
        cJSON_Delete(b.root);
        if (body == NULL) {
            opik_keep_error(err, errlen, "opik: out of memory building a span batch", true);
            return -1;
        }
        char msg[1024] = "";
        enum opik_outcome out = opik_post(o, OPIK_SPANS_PATH, body, sleep, ud, msg, sizeof msg);
        cJSON_free(body);
        if (out == OPIK_FAILED) {
            opik_keep_error(err, errlen, msg, true);
            return -1;
        }
        opik_spans_advance(o, &ri, n);
        if (out == OPIK_SENT) {
            o->stats.sent_spans += n;
        } else {
            o->stats.dropped_rejected += n;
            *rejected = true;
            opik_keep_error(err, errlen, msg, false);
        }
    }
}

int opik_flush(struct opik *o, bool (*sleep)(void *ud, long long ms), void *ud, char *err,
               size_t errlen)
{
    if (errlen > 0)
        err[0] = '\0';
    bool rejected = false;
    int rc = opik_send_traces(o, sleep, ud, &rejected, err, errlen);
    if (rc == 0)
        rc = opik_send_spans(o, sleep, ud, &rejected, err, errlen);
    opik_compact(o);
    /* An interrupt is for the flush running (or about to run) now. */
    atomic_store(&o->interrupted, false);
    return rc == 0 && !rejected && o->len == 0 ? 0 : -1;
}
