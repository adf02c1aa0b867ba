/*
 * The HTTP transport of http.h over libcurl's multi interface. One multi
 * handle per client holds the connection cache, so consecutive requests to
 * one server reuse a connection, and one share handle keeps TLS sessions;
 * each transfer gets a fresh easy handle and runs on the caller's thread
 * in a perform/poll loop that checks the cancel flag before and after every
 * poll, and curl_multi_wakeup() (thread-safe) interrupts a poll at once.
 *
 * libcurl calls back with response headers (one complete line per call,
 * for every response including 1xx ones) and body bytes (decoded, after
 * gzip/deflate/br). The header callback keeps the few headers the retry
 * policy and the logs need, reset at every status line so a 1xx response
 * leaves nothing behind; the write callback enforces the size cap, streams
 * 2xx bodies to the caller and keeps the start of any other body for the
 * error message. A callback stops a transfer by returning a count other
 * than the one it was given, which libcurl reports as CURLE_WRITE_ERROR;
 * the transfer records why, so the result names the real cause.
 *
 * Messages name the method and the URL without userinfo or query string,
 * and never a header value: headers carry API keys.
 *
 * Global state: the pthread_once flag and the result of the process-wide
 * libcurl set-up, the documented exception to "no global mutable state"
 * (libcurl's own set-up is process-wide and must happen once).
 */
#include "config.h"

#include "net/http.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "util/alloc.h"
#include "util/clock.h"

#define HTTP_ERROR_BODY_MAX    ((size_t)64 * 1024)
#define HTTP_DEFAULT_MAX_BYTES ((size_t)64 * 1024 * 1024)
#define HTTP_POLL_MS           1000 /* an idle poll's ceiling; a wakeup ends it early */
#define HTTP_MAX_CONNECTS      4L   /* a worker talks to few hosts at a time */
#define HTTP_URL_SHOWN_MAX     1024 /* longest URL part quoted in a message */
#define HTTP_USER_AGENT        "memchat/" PACKAGE_VERSION

struct http_client {
    CURLM *multi;
    CURLSH *share; /* TLS sessions, kept across the per-transfer easy handles */
    char errbuf[CURL_ERROR_SIZE];
};

/* One transfer's state, shared with libcurl's callbacks; lives on the
 * stack of http_perform. */
struct http_xfer {
    const struct http_request *req;
    struct http_response *resp;
    const atomic_bool *cancel;
    size_t cap;            /* max_response_bytes, defaulted */
    long status;           /* of the response whose headers came last */
    enum http_result stop; /* why a callback stopped the transfer; HTTP_OK = it did not */
    CURLcode rc;           /* libcurl's result for the transfer */
    CURLMcode mrc;         /* the multi interface's error, if any */
    int64_t last_byte_ms;  /* monotonic time the last byte (header or body) came */
    bool idle;             /* the transfer ended by idle_timeout_ms */
    bool headers_done;     /* the blank line ending the last response's headers came */
    bool headers_cut;      /* the connection closed before it did */
};

static pthread_once_t http_once = PTHREAD_ONCE_INIT;
static int http_init_result = -1;

/* strdup for libcurl through the fallible allocator (it handles NULL). */
static char *http_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = try_malloc(n);
    if (p != NULL)
        memcpy(p, s, n);
    return p;
}

/* Routes libcurl's allocations through util/alloc (fault injection reaches
 * it) and sets up its TLS and socket layers. */
static void http_init_once(void)
{
    CURLcode rc = curl_global_init_mem(CURL_GLOBAL_DEFAULT, try_malloc, xfree, try_realloc,
                                       http_strdup, try_calloc);
    http_init_result = rc == CURLE_OK ? 0 : -1;
}

int http_global_init(void)
{
    pthread_once(&http_once, http_init_once);
    return http_init_result;
}

const char *http_result_name(enum http_result r)
{
    switch (r) {
    case HTTP_OK:
        return "ok";
    case HTTP_ERR_CONNECT:
        return "connect";
    case HTTP_ERR_TIMEOUT:
        return "timeout";
    case HTTP_ERR_TRANSPORT:
        return "transport";
    case HTTP_ERR_TOO_BIG:
        return "too big";
    case HTTP_ERR_CANCELLED:
        return "cancelled";
    case HTTP_ERR_ABORTED:
        return "aborted";
    case HTTP_ERR_NO_MEMORY:
        return "no memory";
    }
    return "unknown";
}

/* Makes TLS sessions shared by the client's transfers, so a new connection
 * to a known server resumes its session. A libcurl without TLS has no
 * sessions to share, which is fine. */
static bool http_share_sessions(CURLSH *share)
{
    CURLSHcode rc = curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    return rc == CURLSHE_OK || rc == CURLSHE_NOT_BUILT_IN;
}

struct http_client *http_client_new(char *err, size_t errlen)
{
    if (http_global_init() != 0) {
        snprintf(err, errlen, "libcurl: global initialisation failed");
        return NULL;
    }
    struct http_client *c = try_calloc(1, sizeof *c);
    if (c != NULL)
        c->multi = curl_multi_init();
    if (c != NULL && c->multi != NULL)
        c->share = curl_share_init();
    if (c == NULL || c->share == NULL || !http_share_sessions(c->share)) {
        http_client_free(c);
        snprintf(err, errlen, "http client: out of memory");
        return NULL;
    }
    /* Can only fail for an unknown option, which 7.16+ all know. */
    (void)curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, HTTP_MAX_CONNECTS);
    return c;
}

void http_client_free(struct http_client *c)
{
    if (c == NULL)
        return;
    /* The cached connections go before the TLS sessions they were made with. */
    if (c->multi != NULL)
        curl_multi_cleanup(c->multi);
    if (c->share != NULL)
        curl_share_cleanup(c->share);
    xfree(c);
}

void http_client_wakeup(struct http_client *c)
{
    if (c != NULL)
        (void)curl_multi_wakeup(c->multi);
}

void http_response_free(struct http_response *resp)
{
    buf_free(&resp->error_body);
}

/* Empties the headers kept from an earlier response of the same transfer. */
static void http_response_clear_headers(struct http_response *resp)
{
    resp->content_type[0] = '\0';
    resp->request_id[0] = '\0';
    resp->retry_after[0] = '\0';
    resp->retry_after_ms[0] = '\0';
    resp->should_retry = -1;
}

/* Sets every field of resp to "nothing arrived". */
static void http_response_init(struct http_response *resp)
{
    resp->status = 0;
    http_response_clear_headers(resp);
    buf_init(&resp->error_body, HTTP_ERROR_BODY_MAX);
    resp->body_bytes = 0;
    resp->reused_connection = false;
    resp->http_version = 0;
}

/* --- response headers ---------------------------------------------------- */

/* Copies a header value into a fixed field; a value that does not fit is
 * dropped rather than cut, since a cut Retry-After would mislead. */
static void http_field_set(char *dst, size_t size, const char *v, size_t len)
{
    if (len >= size)
        len = 0;
    memcpy(dst, v, len);
    dst[len] = '\0';
}

/* The status code of a status line ("HTTP/1.1 200 OK", "HTTP/2 429"), 0 if
 * there is none. */
static long http_status_parse(const char *line, size_t n)
{
    const char *sp = memchr(line, ' ', n);
    if (sp == NULL || (size_t)(sp - line) + 4 > n)
        return 0;
    long code = 0;
    for (int i = 1; i <= 3; i++) {
        char d = sp[i];
        if (d < '0' || d > '9')
            return 0;
        code = code * 10 + (d - '0');
    }
    return code;
}

/* True when the header name (len bytes) is want, ignoring case. */
static bool http_name_is(const char *name, size_t len, const char *want)
{
    return strlen(want) == len && strncasecmp(name, want, len) == 0;
}

/* x-should-retry: 1 for "true", 0 for "false", -1 for anything else. */
static int http_should_retry_parse(const char *v, size_t len)
{
    if (len == 4 && strncasecmp(v, "true", 4) == 0)
        return 1;
    if (len == 5 && strncasecmp(v, "false", 5) == 0)
        return 0;
    return -1;
}

/* Stores one "name: value" header if it is one http_response keeps. */
static void http_header_store(struct http_response *resp, const char *name, size_t nlen,
                              const char *v, size_t vlen)
{
    if (http_name_is(name, nlen, "content-type"))
        http_field_set(resp->content_type, sizeof resp->content_type, v, vlen);
    else if (http_name_is(name, nlen, "x-request-id") || http_name_is(name, nlen, "request-id"))
        http_field_set(resp->request_id, sizeof resp->request_id, v, vlen);
    else if (http_name_is(name, nlen, "retry-after"))
        http_field_set(resp->retry_after, sizeof resp->retry_after, v, vlen);
    else if (http_name_is(name, nlen, "retry-after-ms"))
        http_field_set(resp->retry_after_ms, sizeof resp->retry_after_ms, v, vlen);
    else if (http_name_is(name, nlen, "x-should-retry"))
        resp->should_retry = http_should_retry_parse(v, vlen);
}

/* True for the blanks around a header value (and the line's CR LF). */
static bool http_is_blank(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* libcurl's header callback: one complete line per call. A status line
 * starts a new response (1xx, then the final one), so it clears what the
 * previous one left. */
static size_t http_on_header(char *data, size_t size, size_t nitems, void *ud)
{
    struct http_xfer *x = ud;
    size_t n = size * nitems;
    x->last_byte_ms = clock_mono_ms();
    if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        http_response_clear_headers(x->resp);
        x->status = http_status_parse(data, n);
        x->headers_done = false;
        return n;
    }
    const char *colon = memchr(data, ':', n);
    if (colon == NULL) {
        /* The blank line ending the headers, or a malformed line. */
        if ((n == 2 && data[0] == '\r' && data[1] == '\n') || (n == 1 && data[0] == '\n'))
            x->headers_done = true;
        return n;
    }
    size_t nlen = (size_t)(colon - data);
    const char *v = colon + 1;
    size_t vlen = n - nlen - 1;
    while (vlen > 0 && http_is_blank(v[0])) {
        v++;
        vlen--;
    }
    while (vlen > 0 && http_is_blank(v[vlen - 1]))
        vlen--;
    http_header_store(x->resp, data, nlen, v, vlen);
    return n;
}

/* --- response body ------------------------------------------------------- */

/* Records why the transfer stops and returns the count that makes libcurl
 * stop it (anything but the n > 0 it passed). */
static size_t http_stop(struct http_xfer *x, enum http_result why)
{
    x->stop = why;
    return 0;
}

/* Keeps the first HTTP_ERROR_BODY_MAX bytes of a non-2xx body; the rest is
 * dropped (and still counted) so a huge error page never fails the
 * transfer. False only when memory runs out. */
static bool http_error_body_keep(struct buf *b, const char *data, size_t n)
{
    size_t room = b->max - b->len;
    size_t take = n < room ? n : room;
    return take == 0 || buf_append(b, data, take) == BUF_OK;
}

/* libcurl's write callback: the size cap, then the body to its place. */
static size_t http_on_write(char *data, size_t size, size_t nmemb, void *ud)
{
    struct http_xfer *x = ud;
    size_t n = size * nmemb;
    if (n == 0)
        return 0;
    x->last_byte_ms = clock_mono_ms();
    /* A cancel that lands while libcurl is reading a fast stream stops it
     * here, before the caller sees another byte. */
    if (x->cancel != NULL && atomic_load(x->cancel))
        return http_stop(x, HTTP_ERR_CANCELLED);
    struct http_response *resp = x->resp;
    size_t before = resp->body_bytes;
    resp->body_bytes = n > SIZE_MAX - resp->body_bytes ? SIZE_MAX : resp->body_bytes + n;
    bool ok_status = x->status >= 200 && x->status <= 299;
    if (resp->body_bytes > x->cap) {
        /* The bytes that still fit go to the receiver first: what it sees
         * before the cap must not depend on how the network cut the body
         * (a delta before an oversized event is shown, or not, alike). */
        size_t fit = before < x->cap ? x->cap - before : 0;
        if (ok_status && fit > 0 && x->req->on_body != NULL &&
            x->req->on_body(x->req->ud, data, fit) != 0)
            return http_stop(x, HTTP_ERR_ABORTED);
        return http_stop(x, HTTP_ERR_TOO_BIG);
    }
    if (ok_status) {
        if (x->req->on_body != NULL && x->req->on_body(x->req->ud, data, n) != 0)
            return http_stop(x, HTTP_ERR_ABORTED);
        return n;
    }
    if (!http_error_body_keep(&resp->error_body, data, n))
        return http_stop(x, HTTP_ERR_NO_MEMORY);
    return n;
}

/* --- request set-up ------------------------------------------------------ */

/* True when the caller's header lines include name (given with its colon,
 * e.g. "content-type:"), ignoring case. */
static bool http_header_given(const struct http_request *req, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < req->n_headers; i++)
        if (strncasecmp(req->headers[i], name, len) == 0)
            return true;
    return false;
}

/* Appends line to *list; on failure frees the whole list (libcurl leaves it
 * intact) and returns false. */
static bool http_slist_add(struct curl_slist **list, const char *line)
{
    struct curl_slist *next = curl_slist_append(*list, line);
    if (next == NULL) {
        curl_slist_free_all(*list);
        *list = NULL;
        return false;
    }
    *list = next;
    return true;
}

/* Builds the request's header list into *out (the caller frees it with
 * curl_slist_free_all). False when memory runs out. */
static bool http_headers_build(const struct http_request *req, struct curl_slist **out)
{
    struct curl_slist *list = NULL;
    for (size_t i = 0; i < req->n_headers; i++)
        if (!http_slist_add(&list, req->headers[i]))
            return false;
    /* Bodies are JSON; without this libcurl would label a POST body
     * application/x-www-form-urlencoded. */
    if (req->body != NULL && !http_header_given(req, "content-type:") &&
        !http_slist_add(&list, "Content-Type: application/json"))
        return false;
    /* libcurl sends "Expect: 100-continue" with large bodies and then waits
     * up to a second for a 100 that local servers never send; an empty
     * Expect: header turns that off. */
    if (!http_header_given(req, "expect:") && !http_slist_add(&list, "Expect:"))
        return false;
    *out = list;
    return true;
}

/* Sets the method and body: GET, POST, or another method sent verbatim
 * (PUT, DELETE; with the body, if any). HEAD is not supported. */
static CURLcode http_set_method(CURL *e, const struct http_request *req)
{
    bool get = strcmp(req->method, "GET") == 0;
    bool post = strcmp(req->method, "POST") == 0;
    if (get && req->body == NULL)
        return curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    CURLcode rc = CURLE_OK;
    if (!post) /* POSTFIELDS below would make it a POST; this renames it */
        rc = curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
    if (rc != CURLE_OK || (req->body == NULL && !post))
        return rc;
    /* The body is the caller's until http_perform returns, which is longer
     * than libcurl needs it, so libcurl need not copy it. */
    rc = curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body != NULL ? req->body : "");
    return rc;
}

/* Sets the caller's time limits; zero leaves libcurl's default. */
static CURLcode http_set_limits(CURL *e, const struct http_request *req)
{
    CURLcode rc = CURLE_OK;
    if (req->connect_timeout_ms > 0)
        rc = curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, req->connect_timeout_ms);
    if (rc == CURLE_OK && req->total_timeout_ms > 0)
        rc = curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, req->total_timeout_ms);
    return rc;
}

/* Restricts the transfer to http and https, also for URLs from config. */
static CURLcode http_set_protocols(CURL *e)
{
#if LIBCURL_VERSION_NUM >= 0x075500
    return curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    return curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
}

/* Sets what every memchat transfer shares. Proxies are libcurl's default:
 * it reads http_proxy, https_proxy (and HTTPS_PROXY), all_proxy and
 * no_proxy from the environment itself. */
static CURLcode http_set_common(CURL *e)
{
    /* The transfer runs on a worker thread: no signals (SIGALRM for DNS
     * timeouts) may be involved. */
    CURLcode rc = curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_USERAGENT, HTTP_USER_AGENT);
    if (rc == CURLE_OK) /* "" = every encoding this libcurl decodes */
        rc = curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    if (rc == CURLE_OK)
        rc = http_set_protocols(e);
    if (rc == CURLE_OK) {
        /* HTTP/2 when a TLS server offers it, HTTP/1.1 in the clear; a
         * libcurl without HTTP/2 refuses the option and speaks 1.1. */
        rc = curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
        if (rc == CURLE_UNSUPPORTED_PROTOCOL)
            rc = CURLE_OK;
    }
    return rc;
}

/* Points libcurl's callbacks and error buffer at this transfer. */
static CURLcode http_set_callbacks(CURL *e, struct http_xfer *x, char *errbuf)
{
    CURLcode rc = curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, http_on_header);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_HEADERDATA, (void *)x);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, http_on_write);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)x);
    return rc;
}

/* Sets every option of the transfer on e; headers is the list built by
 * http_headers_build (still the caller's). */
static CURLcode http_setup(struct http_client *c, CURL *e, struct http_xfer *x,
                           struct curl_slist *headers)
{
    CURLcode rc = curl_easy_setopt(e, CURLOPT_URL, x->req->url);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_SHARE, c->share);
    if (rc == CURLE_OK)
        rc = http_set_method(e, x->req);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    if (rc == CURLE_OK)
        rc = http_set_limits(e, x->req);
    if (rc == CURLE_OK)
        rc = http_set_common(e);
    if (rc == CURLE_OK)
        rc = http_set_callbacks(e, x, c->errbuf);
    return rc;
}

/* --- the transfer loop --------------------------------------------------- */

/* True when the caller asked to cancel. */
static bool http_cancelled(const struct http_xfer *x)
{
    return x->cancel != NULL && atomic_load(x->cancel);
}

/* Maps libcurl's result (and a callback's reason to stop) to http_result. */
static enum http_result http_result_of(CURLcode rc, enum http_result stop)
{
    switch (rc) {
    case CURLE_OK:
        return HTTP_OK;
    case CURLE_WRITE_ERROR:
        return stop != HTTP_OK ? stop : HTTP_ERR_TRANSPORT;
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    /* An unusable URL or scheme: no connection could be made either. */
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        return HTTP_ERR_CONNECT;
    case CURLE_OPERATION_TIMEDOUT:
        return HTTP_ERR_TIMEOUT;
    case CURLE_OUT_OF_MEMORY:
        return HTTP_ERR_NO_MEMORY;
    default: /* RECV/SEND_ERROR, PARTIAL_FILE, GOT_NOTHING, SSL_*, HTTP2... */
        return HTTP_ERR_TRANSPORT;
    }
}

/* Maps a multi-interface failure to http_result (and records it). */
static enum http_result http_multi_failed(struct http_xfer *x, CURLMcode mrc)
{
    x->mrc = mrc;
    return mrc == CURLM_OUT_OF_MEMORY ? HTTP_ERR_NO_MEMORY : HTTP_ERR_TRANSPORT;
}

/* True when libcurl reports e finished; its result goes to x->rc. */
static bool http_done(CURLM *multi, CURL *e, struct http_xfer *x)
{
    int left = 0;
    for (CURLMsg *msg = curl_multi_info_read(multi, &left); msg != NULL;
         msg = curl_multi_info_read(multi, &left)) {
        if (msg->msg == CURLMSG_DONE && msg->easy_handle == e) {
            x->rc = msg->data.result;
            return true;
        }
    }
    return false;
}

/* How long the next poll may wait: at most HTTP_POLL_MS, and no longer than
 * the idle timeout has left. 0 when the transfer has been idle too long.
 * Our own timer rather than CURLOPT_LOW_SPEED_TIME, which averages the
 * speed over about five seconds and so fires seconds late. */
static int http_poll_ms(const struct http_xfer *x)
{
    long idle_max = x->req->idle_timeout_ms;
    if (idle_max <= 0)
        return HTTP_POLL_MS;
    int64_t left = idle_max - (clock_mono_ms() - x->last_byte_ms);
    if (left <= 0)
        return 0;
    return left < HTTP_POLL_MS ? (int)left : HTTP_POLL_MS;
}

/* Drives the added transfer until it ends, the caller cancels, or nothing
 * arrives for idle_timeout_ms. */
static enum http_result http_loop(struct http_client *c, CURL *e, struct http_xfer *x)
{
    for (;;) {
        int running = 0;
        CURLMcode mrc = curl_multi_perform(c->multi, &running);
        if (mrc != CURLM_OK)
            return http_multi_failed(x, mrc);
        if (http_done(c->multi, e, x))
            return http_result_of(x->rc, x->stop);
        if (http_cancelled(x))
            return HTTP_ERR_CANCELLED;
        int wait_ms = http_poll_ms(x);
        if (wait_ms == 0) {
            x->idle = true;
            return HTTP_ERR_TIMEOUT;
        }
        mrc = curl_multi_poll(c->multi, NULL, 0, wait_ms, NULL);
        if (mrc != CURLM_OK)
            return http_multi_failed(x, mrc);
        if (http_cancelled(x))
            return HTTP_ERR_CANCELLED;
    }
}

/* Runs e inside the client's multi handle; removing it afterwards closes
 * an unfinished (cancelled) connection, so nothing more is read from it,
 * and returns a finished one to the cache. */
static enum http_result http_run(struct http_client *c, CURL *e, struct http_xfer *x)
{
    CURLMcode mrc = curl_multi_add_handle(c->multi, e);
    if (mrc != CURLM_OK)
        return http_multi_failed(x, mrc);
    enum http_result r = http_loop(c, e, x);
    (void)curl_multi_remove_handle(c->multi, e);
    return r;
}

/* The major HTTP version of CURLINFO_HTTP_VERSION's value, 0 for none. */
static long http_version_major(long v)
{
    switch (v) {
    case CURL_HTTP_VERSION_1_0:
    case CURL_HTTP_VERSION_1_1:
        return 1;
    case CURL_HTTP_VERSION_2_0:
        return 2;
    case CURL_HTTP_VERSION_3:
        return 3;
    default:
        return 0;
    }
}

/* Copies what libcurl knows about the finished transfer into resp. */
static void http_info(CURL *e, struct http_response *resp)
{
    long status = 0, version = 0, connects = 0;
    char *ip = NULL;
    if (curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK)
        resp->status = status;
    if (curl_easy_getinfo(e, CURLINFO_HTTP_VERSION, &version) == CURLE_OK)
        resp->http_version = http_version_major(version);
    /* No new connection, yet a peer address: a cached one carried it. */
    if (curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK &&
        curl_easy_getinfo(e, CURLINFO_PRIMARY_IP, &ip) == CURLE_OK)
        resp->reused_connection = connects == 0 && ip != NULL && ip[0] != '\0';
}

/* --- messages ------------------------------------------------------------ */

/* Splits url for a message: [0, *scheme_len) is "scheme://", then the
 * part from *rest to *rest + *rest_len is host and path, without the
 * userinfo ("user:pass@") and without the query string and fragment. */
static void http_url_redact(const char *url, size_t *scheme_len, const char **rest,
                            size_t *rest_len)
{
    const char *sep = strstr(url, "://");
    const char *auth = sep != NULL ? sep + 3 : url;
    size_t auth_len = strcspn(auth, "/?#");
    const char *at = NULL;
    for (size_t i = 0; i < auth_len; i++)
        if (auth[i] == '@')
            at = auth + i;
    *scheme_len = (size_t)(auth - url);
    *rest = at != NULL ? at + 1 : auth;
    *rest_len = strcspn(*rest, "?#");
}

/* The cause of a failed transfer in words. */
static const char *http_cause(const struct http_client *c, const struct http_xfer *x,
                              enum http_result r, char *tmp, size_t tmplen)
{
    switch (r) {
    case HTTP_ERR_TOO_BIG:
        snprintf(tmp, tmplen, "response body over %zu bytes (max_response_bytes)", x->cap);
        return tmp;
    case HTTP_ERR_CANCELLED:
        return "cancelled";
    case HTTP_ERR_ABORTED:
        return "stopped by the receiver of the body";
    case HTTP_ERR_NO_MEMORY:
        return "out of memory";
    case HTTP_ERR_TIMEOUT:
        if (!x->idle)
            break;
        snprintf(tmp, tmplen, "no data for %ld ms (idle timeout)", x->req->idle_timeout_ms);
        return tmp;
    case HTTP_ERR_TRANSPORT:
        if (x->headers_cut)
            return "the connection closed in the middle of the response headers";
        break;
    case HTTP_OK:
    case HTTP_ERR_CONNECT:
        break;
    }
    if (x->mrc != CURLM_OK)
        return curl_multi_strerror(x->mrc);
    return c->errbuf[0] != '\0' ? c->errbuf : curl_easy_strerror(x->rc);
}

/* Writes "METHOD url: cause" into err, the URL redacted. */
static void http_message(const struct http_client *c, const struct http_xfer *x, enum http_result r,
                         char *err, size_t errlen)
{
    size_t scheme_len, rest_len;
    const char *rest;
    char tmp[128];
    http_url_redact(x->req->url, &scheme_len, &rest, &rest_len);
    if (scheme_len > HTTP_URL_SHOWN_MAX)
        scheme_len = HTTP_URL_SHOWN_MAX;
    if (rest_len > HTTP_URL_SHOWN_MAX)
        rest_len = HTTP_URL_SHOWN_MAX;
    const char *cause = http_cause(c, x, r, tmp, sizeof tmp);
    size_t cause_len = strlen(cause);
    while (cause_len > 0 && (cause[cause_len - 1] == '\n' || cause[cause_len - 1] == '\r'))
        cause_len--; /* libcurl's texts may end in a newline */
    snprintf(err, errlen, "%s %.*s%.*s: %.*s", x->req->method, (int)scheme_len, x->req->url,
             (int)rest_len, rest, (int)cause_len, cause);
}

/* --- http_perform -------------------------------------------------------- */

/* Sets up e for x and runs it; the header list is freed here. */
static enum http_result http_transfer(struct http_client *c, CURL *e, struct http_xfer *x)
{
    struct curl_slist *headers = NULL;
    if (!http_headers_build(x->req, &headers))
        return HTTP_ERR_NO_MEMORY;
    c->errbuf[0] = '\0';
    enum http_result r;
    x->rc = http_setup(c, e, x, headers);
    if (x->rc != CURLE_OK)
        r = http_result_of(x->rc, HTTP_OK);
    else
        r = http_run(c, e, x);
    /* libcurl 7.88 takes a connection closed after the status line, in the
     * middle of the headers, for a whole response without a body: that
     * would pass for an empty answer (a non-JSON "reply", not retried). */
    if (r == HTTP_OK && !x->headers_done) {
        x->headers_cut = true;
        r = HTTP_ERR_TRANSPORT;
    }
    http_info(e, x->resp);
    curl_slist_free_all(headers);
    return r;
}

enum http_result http_perform(struct http_client *c, const struct http_request *req,
                              const atomic_bool *cancel, struct http_response *resp, char *err,
                              size_t errlen)
{
    http_response_init(resp);
    if (errlen > 0)
        err[0] = '\0';
    struct http_xfer x = {
        .req = req,
        .resp = resp,
        .cancel = cancel,
        .cap = req->max_response_bytes > 0 ? req->max_response_bytes : HTTP_DEFAULT_MAX_BYTES,
        .stop = HTTP_OK,
        .rc = CURLE_OK,
        .mrc = CURLM_OK,
        .last_byte_ms = clock_mono_ms(),
    };
    enum http_result r = HTTP_ERR_CANCELLED;
    if (!http_cancelled(&x)) {
        /* A fresh easy handle per transfer: curl_easy_reset() cannot report
         * an allocation failure and then leaves a half-initialised handle
         * behind. Connections live in the multi handle, TLS sessions in the
         * share, so nothing is lost. */
        CURL *e = curl_easy_init();
        if (e == NULL) {
            r = HTTP_ERR_NO_MEMORY;
        } else {
            r = http_transfer(c, e, &x);
            curl_easy_cleanup(e);
        }
    }
    if (r != HTTP_OK)
        http_message(c, &x, r, err, errlen);
    return r;
}
