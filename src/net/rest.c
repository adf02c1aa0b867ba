/*
 * The JSON-over-HTTP endpoint of rest.h. One call is a loop of attempts
 * through net/http.h: a 2xx is parsed and returned; a failure is described
 * (service, method, URL as shown, status, the server's own message found in
 * any of the error shapes the remote APIs use) and, when net/retry.h says
 * so, retried after its delay, waited in short slices so the cancel flag
 * is honoured. The secret is scrubbed from the raw body before it is
 * parsed (an escaped copy could differ) and from the message after it is
 * built, before anything is cut to fit.
 */
#include "config.h"

#include "net/rest.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include <cJSON.h>

#include "net/http.h"
#include "net/retry.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/json.h"
#include "util/utf8.h"

#define REST_SERVER_MSG_MAX 300 /* bytes of a server's message quoted */
#define REST_SCRUB_MIN      4   /* shorter secrets would mask ordinary words */
#define REST_WAIT_SLICE_MS  50  /* the cancel flag is looked at this often while waiting */

struct rest {
    char *service;
    char *base;  /* without a trailing '/' */
    char *shown; /* base without userinfo, query or fragment */
    char **headers;
    size_t n_headers;
    char *secret; /* NULL when none */
    long timeout_ms, connect_timeout_ms;
    int max_retries;
    size_t max_response;
    struct http_client *http;
    const atomic_bool *cancel;
};

/* url for messages: the scheme, then host and path without the userinfo,
 * query and fragment. The caller frees it. */
static char *rest_url_shown(const char *url)
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

struct rest *rest_new(const struct rest_opts *o, char *err, size_t errlen)
{
    const char *svc = o->service != NULL ? o->service : "remote";
    if (o->base_url == NULL || o->base_url[0] == '\0') {
        snprintf(err, errlen, "%s: no base URL", svc);
        return NULL;
    }
    char herr[256] = "";
    struct http_client *http = http_client_new(herr, sizeof herr);
    if (http == NULL) {
        snprintf(err, errlen, "%s: %s", svc, herr);
        return NULL;
    }
    struct rest *r = xcalloc(1, sizeof *r);
    r->http = http;
    r->service = xstrdup(svc);
    size_t bl = strlen(o->base_url);
    while (bl > 0 && o->base_url[bl - 1] == '/')
        bl--;
    r->base = xstrndup(o->base_url, bl);
    r->shown = rest_url_shown(r->base);
    r->headers = xcalloc(o->n_headers + 1, sizeof *r->headers);
    for (size_t i = 0; i < o->n_headers; i++)
        r->headers[i] = xsecure_dup(o->headers[i], strlen(o->headers[i]));
    r->n_headers = o->n_headers;
    r->secret = o->secret != NULL && o->secret[0] != '\0'
                    ? xsecure_dup(o->secret, strlen(o->secret))
                    : NULL;
    r->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 30000;
    r->connect_timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 5000;
    r->max_retries = o->max_retries > 0 ? o->max_retries : 0;
    r->max_response = o->max_response > 0 ? o->max_response : (size_t)64 << 20;
    return r;
}

void rest_free(struct rest *r)
{
    if (r == NULL)
        return;
    http_client_free(r->http);
    for (size_t i = 0; i < r->n_headers; i++)
        xsecure_free(r->headers[i]);
    xfree(r->headers);
    xsecure_free(r->secret);
    xfree(r->service);
    xfree(r->base);
    xfree(r->shown);
    xfree(r);
}

void rest_set_cancel(struct rest *r, const atomic_bool *cancel)
{
    r->cancel = cancel;
}

const char *rest_base_shown(const struct rest *r)
{
    return r->shown;
}

const char *rest_fail_name(enum rest_fail f)
{
    switch (f) {
    case REST_OK:
        return "ok";
    case REST_UNREACHABLE:
        return "unreachable";
    case REST_AUTH:
        return "auth";
    case REST_RATE:
        return "rate_limited";
    case REST_SERVER:
        return "server";
    case REST_REFUSED:
        return "refused";
    case REST_BAD_REPLY:
        return "bad_reply";
    case REST_CANCELLED:
        return "cancelled";
    }
    return "unknown";
}

int rest_escape(const char *s, char *out, size_t outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.' || c == '~';
        size_t need = keep ? 1 : 3;
        if (o + need >= outlen)
            return -1;
        if (keep) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    if (outlen == 0)
        return -1;
    out[o] = '\0';
    return 0;
}

/* Masks every copy of the secret in s. */
static void rest_scrub(const struct rest *r, char *s)
{
    if (r->secret == NULL || s == NULL)
        return;
    size_t klen = strlen(r->secret);
    if (klen < REST_SCRUB_MIN)
        return;
    for (char *hit = strstr(s, r->secret); hit != NULL; hit = strstr(hit + klen, r->secret))
        memset(hit, '*', klen);
}

/* Appends s to b with control bytes as spaces (a message is one line). */
static void rest_put_line(struct buf *b, const char *s)
{
    for (; *s != '\0'; s++)
        if (buf_putc(b, (unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s) != BUF_OK)
            return;
}

/* The first string found at the usual places of a JSON error body:
 * "message" (OpenAI's error.message, Cohere, Pinecone's flat form),
 * "error" as a string (TEI, Hugging Face, Ollama) or as an object with
 * "message" (OpenAI, Pinecone), Qdrant's status.error, Weaviate's
 * error[0].message; NULL when none. */
static const char *rest_json_message(const cJSON *j)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
    if (cJSON_IsString(m))
        return m->valuestring;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    if (cJSON_IsString(e))
        return e->valuestring;
    if (cJSON_IsArray(e))
        e = cJSON_GetArrayItem(e, 0);
    if (cJSON_IsObject(e)) {
        m = cJSON_GetObjectItemCaseSensitive(e, "message");
        if (cJSON_IsString(m))
            return m->valuestring;
    }
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "status");
    m = cJSON_GetObjectItemCaseSensitive(st, "error");
    if (cJSON_IsString(m))
        return m->valuestring;
    return NULL;
}

/* The server's message of an error body into b: the JSON message, or the
 * raw text when the body is not JSON with one. */
static void rest_body_message(const char *text, struct buf *b)
{
    cJSON *j = json_parse_str(text);
    const char *m = rest_json_message(j);
    rest_put_line(b, m != NULL ? m : text);
    cJSON_Delete(j);
}

/* "SERVICE: METHOD URL: HTTP STATUS[: message]" into err. */
static void rest_status_message(const struct rest *r, const char *method, const char *path,
                                const struct http_response *resp, char *err, size_t errlen)
{
    char *text =
        xstrndup(resp->error_body.data != NULL ? resp->error_body.data : "", resp->error_body.len);
    rest_scrub(r, text);
    struct buf m;
    buf_init(&m, 64 * 1024);
    rest_body_message(text, &m);
    if (m.data != NULL)
        rest_scrub(r, m.data);
    const char *sm = buf_cstr(&m);
    sm += strspn(sm, " ");
    size_t shown = utf8_truncate(sm, strlen(sm), REST_SERVER_MSG_MAX);
    size_t pl = strcspn(path, "?");
    snprintf(err, errlen, "%s: %s %s%.*s: HTTP %ld%s%.*s", r->service, method, r->shown, (int)pl,
             path, resp->status, shown > 0 ? ": " : "", (int)shown, sm);
    rest_scrub(r, err);
    buf_free(&m);
    xfree(text);
}

/* The class of a failed status. */
static enum rest_fail rest_status_fail(long status)
{
    if (status == 401 || status == 403)
        return REST_AUTH;
    if (status == 429)
        return REST_RATE;
    if (status >= 500)
        return REST_SERVER;
    return REST_REFUSED;
}

/* r in [0, 1) for the retry jitter. */
static double rest_jitter(void)
{
    uint32_t u = 0;
    if (getrandom(&u, sizeof u, GRND_NONBLOCK) != (ssize_t)sizeof u)
        return 0.0;
    return (double)u / 4294967296.0;
}

/* Waits ms in slices, false when the cancel flag was set meanwhile. */
static bool rest_wait(const struct rest *r, long long ms)
{
    while (ms > 0) {
        if (r->cancel != NULL && atomic_load(r->cancel))
            return false;
        long long slice = ms < REST_WAIT_SLICE_MS ? ms : REST_WAIT_SLICE_MS;
        struct timespec ts = {.tv_sec = (time_t)(slice / 1000),
                              .tv_nsec = (long)(slice % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        ms -= slice;
    }
    return r->cancel == NULL || !atomic_load(r->cancel);
}

/* Collects a 2xx body. */
static int rest_collect(void *ud, const char *data, size_t len)
{
    return buf_append(ud, data, len) == BUF_OK ? 0 : 1;
}

/* One attempt; its class, *out on success, the message in err otherwise;
 * *retry says whether net/retry.h would try again and *server_ms the
 * server's requested delay. */
static enum rest_fail rest_attempt(struct rest *r, const struct http_request *req, const char *path,
                                   int retries_done, cJSON **out, long *status,
                                   long long *server_ms, bool *retry, char *err, size_t errlen)
{
    struct buf body;
    buf_init(&body, r->max_response + 1);
    struct http_request rq = *req;
    rq.on_body = rest_collect;
    rq.ud = &body;
    struct http_response resp;
    char herr[512] = "";
    enum http_result hr = http_perform(r->http, &rq, r->cancel, &resp, herr, sizeof herr);
    *status = resp.status;
    *server_ms =
        retry_parse_after(resp.retry_after_ms[0] != '\0' ? resp.retry_after_ms : NULL,
                          resp.retry_after[0] != '\0' ? resp.retry_after : NULL, clock_wall_ms());
    enum rest_fail f = REST_OK;
    struct retry_failure rf = {
        .status = resp.status, .should_retry = resp.should_retry, .server_delay_ms = *server_ms};
    if (hr == HTTP_ERR_CANCELLED) {
        snprintf(err, errlen, "%s: %s %s: cancelled", r->service, req->method, r->shown);
        f = REST_CANCELLED;
    } else if (hr == HTTP_ERR_TOO_BIG || (hr == HTTP_ERR_ABORTED && body.len >= r->max_response)) {
        snprintf(err, errlen, "%s: the answer to %s %s is larger than %zu bytes", r->service,
                 req->method, r->shown, r->max_response);
        f = REST_BAD_REPLY;
    } else if (hr != HTTP_OK) {
        snprintf(err, errlen, "%s: %s (%s)", r->service, herr, http_result_name(hr));
        rest_scrub(r, err);
        f = REST_UNREACHABLE;
        rf.transport = hr != HTTP_ERR_NO_MEMORY;
    } else if (resp.status < 200 || resp.status > 299) {
        rest_status_message(r, req->method, path, &resp, err, errlen);
        f = rest_status_fail(resp.status);
    } else if (body.len > 0) {
        *out = json_parse(body.data, body.len, NULL, false);
        if (*out == NULL && errno == ENOMEM) {
            /* As http_perform's own want of memory: not the server's fault. */
            snprintf(err, errlen, "%s: %s %s: out of memory reading the answer", r->service,
                     req->method, r->shown);
            f = REST_UNREACHABLE;
        } else if (*out == NULL) {
            snprintf(err, errlen, "%s: %s %s%.*s: HTTP %ld with a body that is not JSON",
                     r->service, req->method, r->shown, (int)strcspn(path, "?"), path, resp.status);
            f = REST_BAD_REPLY;
        }
    }
    *retry = f != REST_OK && f != REST_CANCELLED && f != REST_BAD_REPLY &&
             retry_should(&rf, retries_done, r->max_retries);
    http_response_free(&resp);
    buf_free(&body);
    return f;
}

enum rest_fail rest_call(struct rest *r, const char *method, const char *path, const char *body,
                         cJSON **out, long *status, char *err, size_t errlen)
{
    *out = NULL;
    long st = 0;
    char *url = xasprintf("%s%s", r->base, path);
    struct http_request req = {
        .method = method,
        .url = url,
        .headers = (const char *const *)r->headers,
        .n_headers = r->n_headers,
        .body = body,
        .body_len = body != NULL ? strlen(body) : 0,
        .connect_timeout_ms = r->connect_timeout_ms,
        .total_timeout_ms = r->timeout_ms,
        .max_response_bytes = r->max_response,
    };
    enum rest_fail f = REST_OK;
    for (int retries = 0;; retries++) {
        long long server_ms = -1;
        bool retry = false;
        f = rest_attempt(r, &req, path, retries, out, &st, &server_ms, &retry, err, errlen);
        if (f == REST_OK || !retry)
            break;
        if (!rest_wait(r, retry_delay_ms(retries + 1, server_ms, rest_jitter()))) {
            snprintf(err, errlen, "%s: %s %s: cancelled", r->service, method, r->shown);
            f = REST_CANCELLED;
            break;
        }
    }
    xfree(url);
    if (status != NULL)
        *status = st;
    return f;
}

enum rest_fail rest_call_json(struct rest *r, const char *method, const char *path,
                              const cJSON *body, cJSON **out, long *status, char *err,
                              size_t errlen)
{
    char *text = NULL;
    if (body != NULL) {
        text = cJSON_PrintUnformatted(body);
        if (text == NULL)
            alloc_die("rest request body");
    }
    enum rest_fail f = rest_call(r, method, path, text, out, status, err, errlen);
    cJSON_free(text);
    return f;
}
