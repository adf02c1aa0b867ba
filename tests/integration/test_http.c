/*
 * Tests of the HTTP transport (src/net/http.h) over real sockets on
 * 127.0.0.1, against two servers. The shared mock LLM server
 * (tests/server/mockllm, through mockserver.h) provides the LLM-shaped
 * behaviours: a real OpenAI stream, 429s with retry headers, an endless
 * reply, hang, stall, drop, and a request log whose "conn" field proves
 * connection reuse. A small server in this file (one accept thread, one
 * thread per connection) gives control the mock lacks: raw canned bytes
 * (1xx responses, odd header case, gzip bodies), an SSE stream split at
 * awkward places, a 1 MiB error with a known byte pattern, the exact
 * request head, and notice of the client closing a connection.
 *
 * Nothing sleeps: the cancel test synchronises on a condition variable set
 * from the body callback, and waits on server events use a 30 s deadline
 * only as a hang guard. The timeout tests wait for libcurl's own timers
 * (300 ms, 1 s) and assert the result, never the elapsed time.
 */
#include "../server/mockserver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <cJSON.h>

#include "memchat/engine.h"
#include "net/http.h"
#include "util/alloc.h"
#include "util/buf.h"

/* --- the test server ----------------------------------------------------- */

enum srv_mode {
    SRV_CANNED,    /* the canned bytes for every request, keep-alive */
    SRV_SSE,       /* a chunked SSE stream written piece by piece */
    SRV_ENDLESS,   /* a chunked 200 body that never ends */
    SRV_STALL,     /* headers and a first chunk, then nothing */
    SRV_BIG_ERROR, /* a 500 whose body is 1 MiB */
};

#define SRV_HEAD_MAX  16384
#define SRV_BODY_KEEP 4096
#define BIG_ERROR_LEN ((size_t)1024 * 1024)
#define STALL_FIRST   "data: first\n\n"

/* The SSE pieces SRV_SSE writes, each in its own chunk and send(). */
static const char *const sse_pieces[] = {
    "data: {\"n\":1}\n\n", "data: {\"n\":2}\n", "\n", "data: {\"n\"", ":3}\n\n", "data: [DONE]\n\n",
};

struct srv {
    enum srv_mode mode;
    const char *canned; /* SRV_CANNED: raw response bytes */
    size_t canned_len;
    int listen_fd;
    int stop_pipe[2];
    int port;
    pthread_t accept_thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int connections;              /* accepted so far */
    int requests;                 /* complete requests read */
    int peer_closed;              /* connections the client closed while the server waited */
    char head[SRV_HEAD_MAX + 1];  /* the last request's head, NUL-terminated */
    char body[SRV_BODY_KEEP + 1]; /* the start of its body */
    size_t body_len;              /* the whole body's length */
};

struct srv_conn {
    struct srv *s;
    int fd;
};

/* Server threads cannot use cmocka's assertions (they jump to the test
 * thread's stack), so a broken server aborts the program instead. */
static void srv_check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "test server: %s failed\n", what);
        abort();
    }
}

/* Waits until fd is readable (1) or the server stops (0). */
static int srv_wait(struct srv *s, int fd)
{
    struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = s->stop_pipe[0], .events = POLLIN}};
    for (;;) {
        int n = poll(p, 2, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || p[1].revents != 0)
            return 0;
        if (p[0].revents != 0)
            return 1;
    }
}

/* Sends all of data; false when the peer is gone. */
static bool srv_send(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* Sends a C string. */
static bool srv_puts(int fd, const char *s)
{
    return srv_send(fd, s, strlen(s));
}

/* Sends one HTTP/1.1 chunk holding s. */
static bool srv_chunk(int fd, const char *s)
{
    char size[32];
    snprintf(size, sizeof size, "%zx\r\n", strlen(s));
    return srv_puts(fd, size) && srv_puts(fd, s) && srv_puts(fd, "\r\n");
}

/* The value of Content-Length in a request head, 0 when absent. */
static size_t srv_content_length(const char *head)
{
    for (const char *p = strchr(head, '\n'); p != NULL; p = strchr(p + 1, '\n'))
        if (strncasecmp(p + 1, "content-length:", 15) == 0)
            return (size_t)strtoull(p + 16, NULL, 10);
    return 0;
}

/* Records a finished request for the tests to inspect. */
static void srv_record(struct srv *s, const char *head, const char *body, size_t keep,
                       size_t body_len)
{
    pthread_mutex_lock(&s->mu);
    s->requests++;
    snprintf(s->head, sizeof s->head, "%s", head);
    memcpy(s->body, body, keep);
    s->body[keep] = '\0';
    s->body_len = body_len;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Reads one request (head and Content-Length body); false on EOF or stop. */
static bool srv_read_request(struct srv *s, int fd)
{
    char buf[SRV_HEAD_MAX + 1], body[SRV_BODY_KEEP + 1];
    size_t got = 0;
    char *end = NULL;
    while (end == NULL) {
        if (got == SRV_HEAD_MAX || !srv_wait(s, fd))
            return false;
        ssize_t n = recv(fd, buf + got, SRV_HEAD_MAX - got, 0);
        if (n <= 0)
            return false;
        got += (size_t)n;
        buf[got] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    end[2] = '\0'; /* keep the head's last CRLF */
    size_t head_len = (size_t)(end + 4 - buf);
    size_t want = srv_content_length(buf), have = got - head_len;
    size_t keep = have < SRV_BODY_KEEP ? have : SRV_BODY_KEEP;
    memcpy(body, end + 4, keep);
    while (have < want) {
        char tmp[65536];
        if (!srv_wait(s, fd))
            return false;
        ssize_t n = recv(fd, tmp, sizeof tmp, 0);
        if (n <= 0)
            return false;
        size_t k = SRV_BODY_KEEP - keep < (size_t)n ? SRV_BODY_KEEP - keep : (size_t)n;
        memcpy(body + keep, tmp, k);
        keep += k;
        have += (size_t)n;
    }
    srv_record(s, buf, body, keep, have);
    return true;
}

/* Waits until the client closes fd (counted in peer_closed) or the server
 * stops. */
static void srv_wait_close(struct srv *s, int fd)
{
    char tmp[4096];
    while (srv_wait(s, fd)) {
        if (recv(fd, tmp, sizeof tmp, 0) <= 0) {
            pthread_mutex_lock(&s->mu);
            s->peer_closed++;
            pthread_cond_broadcast(&s->cv);
            pthread_mutex_unlock(&s->mu);
            return;
        }
    }
}

static const char chunked_200[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                                  "Transfer-Encoding: chunked\r\n\r\n";

/* Streams the SSE pieces, one send() each (TCP_NODELAY set). */
static bool srv_sse(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (!srv_puts(fd, chunked_200))
        return false;
    for (size_t i = 0; i < sizeof sse_pieces / sizeof sse_pieces[0]; i++)
        if (!srv_chunk(fd, sse_pieces[i]))
            return false;
    return srv_puts(fd, "0\r\n\r\n");
}

/* Sends chunks until the client goes away. */
static void srv_endless(int fd)
{
    static const char piece[] = "data: {\"choices\":[{\"delta\":{\"content\":\"more\"}}]}\n\n";
    if (!srv_puts(fd, chunked_200))
        return;
    while (srv_chunk(fd, piece))
        ;
}

/* Sends a 500 with a 1 MiB body whose byte i is 'a' + i % 26. */
static bool srv_big_error(int fd)
{
    char head[128], block[4096];
    snprintf(head, sizeof head,
             "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\n\r\n",
             BIG_ERROR_LEN);
    if (!srv_puts(fd, head))
        return false;
    for (size_t off = 0; off < BIG_ERROR_LEN; off += sizeof block) {
        for (size_t i = 0; i < sizeof block; i++)
            block[i] = (char)('a' + (off + i) % 26);
        if (!srv_send(fd, block, sizeof block))
            return false;
    }
    return true;
}

/* Answers one request by the server's mode; false closes the connection. */
static bool srv_respond(struct srv *s, int fd)
{
    switch (s->mode) {
    case SRV_CANNED:
        return srv_send(fd, s->canned, s->canned_len);
    case SRV_SSE:
        return srv_sse(fd);
    case SRV_ENDLESS:
        srv_endless(fd);
        return false;
    case SRV_STALL:
        if (srv_puts(fd, chunked_200) && srv_chunk(fd, STALL_FIRST))
            srv_wait_close(s, fd);
        return false;
    case SRV_BIG_ERROR:
        return srv_big_error(fd);
    }
    return false;
}

/* One connection: requests and responses until either side ends it. */
static void *srv_conn_main(void *arg)
{
    struct srv_conn *sc = arg;
    while (srv_read_request(sc->s, sc->fd) && srv_respond(sc->s, sc->fd))
        ;
    close(sc->fd);
    free(sc);
    return NULL;
}

/* Accepts connections until stopped, one thread each; joins them at the end. */
static void *srv_accept_main(void *arg)
{
    struct srv *s = arg;
    size_t n = 0, cap = 0;
    pthread_t *threads = NULL;
    while (srv_wait(s, s->listen_fd)) {
        int fd = accept(s->listen_fd, NULL, NULL);
        if (fd < 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            threads = realloc(threads, cap * sizeof *threads);
            srv_check(threads != NULL, "realloc");
        }
        struct srv_conn *sc = malloc(sizeof *sc);
        srv_check(sc != NULL, "malloc");
        sc->s = s;
        sc->fd = fd;
        pthread_mutex_lock(&s->mu);
        s->connections++;
        pthread_mutex_unlock(&s->mu);
        srv_check(pthread_create(&threads[n], NULL, srv_conn_main, sc) == 0, "pthread_create");
        n++;
    }
    for (size_t i = 0; i < n; i++)
        pthread_join(threads[i], NULL);
    free(threads);
    return NULL;
}

/* Starts a server on 127.0.0.1 with an ephemeral port. */
static struct srv *srv_start(enum srv_mode mode, const char *canned, size_t canned_len)
{
    struct srv *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->mode = mode;
    s->canned = canned;
    s->canned_len = canned_len;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    assert_int_equal(pipe(s->stop_pipe), 0);
    s->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->listen_fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s->listen_fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(s->listen_fd, 16), 0);
    socklen_t len = sizeof sa;
    assert_int_equal(getsockname(s->listen_fd, (struct sockaddr *)&sa, &len), 0);
    s->port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&s->accept_thread, NULL, srv_accept_main, s), 0);
    return s;
}

/* A canned-response server; the bytes are a C string. */
static struct srv *srv_start_canned(const char *response)
{
    return srv_start(SRV_CANNED, response, strlen(response));
}

/* Stops the server, joins its threads and frees it. */
static void srv_stop(struct srv *s)
{
    assert_int_equal(write(s->stop_pipe[1], "x", 1), 1);
    pthread_join(s->accept_thread, NULL);
    close(s->listen_fd);
    close(s->stop_pipe[0]);
    close(s->stop_pipe[1]);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

/* Writes "http://127.0.0.1:PORT" + path into out and returns it. */
static const char *srv_url(const struct srv *s, const char *path, char *out, size_t outlen)
{
    snprintf(out, outlen, "http://127.0.0.1:%d%s", s->port, path);
    return out;
}

/* Waits (30 s hang guard) until *counter reaches want; false on timeout. */
static bool srv_wait_for(struct srv *s, const int *counter, int want)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 30;
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    while (*counter < want && rc == 0)
        rc = pthread_cond_timedwait(&s->cv, &s->mu, &deadline);
    bool ok = *counter >= want;
    pthread_mutex_unlock(&s->mu);
    return ok;
}

/* What the server recorded of the last request. */
struct srv_last {
    char head[SRV_HEAD_MAX + 1];
    char body[SRV_BODY_KEEP + 1];
    size_t body_len;
};

/* Copies the last request's record under the server's lock. */
static void srv_get_last(struct srv *s, struct srv_last *out)
{
    pthread_mutex_lock(&s->mu);
    memcpy(out->head, s->head, sizeof out->head);
    memcpy(out->body, s->body, sizeof out->body);
    out->body_len = s->body_len;
    pthread_mutex_unlock(&s->mu);
}

/* A counter read under the server's lock. */
static int srv_get(struct srv *s, const int *counter)
{
    pthread_mutex_lock(&s->mu);
    int v = *counter;
    pthread_mutex_unlock(&s->mu);
    return v;
}

/* --- the client side ----------------------------------------------------- */

/* What on_body received; the lock and condvar serve the cancel test. */
struct sink {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char data[65536];
    size_t len;   /* bytes kept in data */
    size_t total; /* bytes received */
    int calls;
    int abort_after; /* > 0: return nonzero on that call */
};

/* An empty sink. */
static void sink_init(struct sink *k)
{
    memset(k, 0, sizeof *k);
    pthread_mutex_init(&k->mu, NULL);
    pthread_cond_init(&k->cv, NULL);
}

/* Releases the sink's lock and condvar. */
static void sink_fini(struct sink *k)
{
    pthread_mutex_destroy(&k->mu);
    pthread_cond_destroy(&k->cv);
}

/* http_body_fn: keeps the bytes and wakes whoever waits for them. */
static int sink_body(void *ud, const char *data, size_t len)
{
    struct sink *k = ud;
    pthread_mutex_lock(&k->mu);
    size_t room = sizeof k->data - 1 - k->len;
    size_t take = len < room ? len : room;
    memcpy(k->data + k->len, data, take);
    k->len += take;
    k->data[k->len] = '\0';
    k->total += len;
    k->calls++;
    int stop = k->abort_after > 0 && k->calls >= k->abort_after;
    pthread_cond_broadcast(&k->cv);
    pthread_mutex_unlock(&k->mu);
    return stop;
}

/* A request with the test's defaults: POST, JSON body, generous limits. */
static struct http_request req_post(const char *url, struct sink *k)
{
    static const char *const headers[] = {"Authorization: Bearer sk-test-key"};
    static const char body[] = "{\"model\":\"m\",\"stream\":true}";
    struct http_request r = {
        .method = "POST",
        .url = url,
        .headers = headers,
        .n_headers = 1,
        .body = body,
        .body_len = sizeof body - 1,
        .on_body = sink_body,
        .ud = k,
        .connect_timeout_ms = 10000,
        .total_timeout_ms = 60000,
    };
    return r;
}

/* A new client; fails the test when it cannot be made. */
static struct http_client *client_new(void)
{
    char err[256];
    struct http_client *c = http_client_new(err, sizeof err);
    if (c == NULL)
        fail_msg("http_client_new: %s", err);
    return c;
}

#define JSON_BODY "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\"}"

_Static_assert(sizeof JSON_BODY - 1 == 46, "ok_json's Content-Length must match JSON_BODY");

/* A keep-alive 200 with a JSON body and a request id. */
static const char ok_json[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                              "X-Request-Id: req_ok\r\nContent-Length: 46\r\n\r\n" JSON_BODY;

/* --- cases ---------------------------------------------------------------- */

/* A 200 JSON body reaches on_body whole, with its status, content type and
 * request id, and the request went out as built: method, path, JSON body
 * with a JSON content type, the caller's header, memchat's user agent and
 * an Accept-Encoding offer. */
static void a_json_body_arrives_whole_and_the_request_is_as_built(void **state)
{
    (void)state;
    struct srv *s = srv_start_canned(ok_json);
    struct http_client *c = client_new();
    struct sink k;
    sink_init(&k);
    char url[128], err[256];
    struct http_request req = req_post(srv_url(s, "/v1/chat/completions", url, sizeof url), &k);
    struct http_response resp;
    assert_int_equal(http_perform(c, &req, NULL, &resp, err, sizeof err), HTTP_OK);
    assert_int_equal(resp.status, 200);
    assert_string_equal(k.data, JSON_BODY);
    assert_int_equal(resp.body_bytes, 46);
    assert_string_equal(resp.content_type, "application/json");
    assert_string_equal(resp.request_id, "req_ok");
    assert_int_equal(resp.should_retry, -1);
    assert_int_equal(resp.error_body.len, 0);
    assert_int_equal(resp.http_version, 1);
    assert_string_equal(err, "");

    struct srv_last last;
    srv_get_last(s, &last);
    assert_true(strncmp(last.head, "POST /v1/chat/completions HTTP/1.1\r\n", 36) == 0);
    assert_non_null(strstr(last.head, "\r\nAuthorization: Bearer sk-test-key\r\n"));
    assert_non_null(strstr(last.head, "\r\nContent-Type: application/json\r\n"));
    assert_non_null(strstr(last.head, "\r\nUser-Agent: memchat/" PACKAGE_VERSION "\r\n"));
    assert_non_null(strstr(last.head, "\r\nAccept-Encoding: "));
    assert_string_equal(last.body, req.body);
    http_response_free(&resp);
    http_client_free(c);
    sink_fini(&k);
    srv_stop(s);
}

/* A GET sends no body and no content type. */
static void a_get_sends_no_body(void **state)
{
    (void)state;
    struct srv *s = srv_start_canned(ok_json);
    struct http_client *c = client_new();
    struct sink k;
    sink_init(&k);
    char url[128], err[256];
    struct http_request req = req_post(srv_url(s, "/v1/models", url, sizeof url), &k);
    req.method = "GET";
    req.body = NULL;
    req.body_len = 0;
    struct http_response resp;
    assert_int_equal(http_perform(c, &req, NULL, &resp, err, sizeof err), HTTP_OK);
    assert_string_equal(k.data, JSON_BODY);
    struct srv_last last;
    srv_get_last(s, &last);
    assert_true(strncmp(last.head, "GET /v1/models HTTP/1.1\r\n", 25) == 0);
    assert_null(strcasestr(last.head, "content-type"));
    assert_int_equal(last.body_len, 0);
    http_response_free(&resp);
    http_client_free(c);
    sink_fini(&k);
    srv_stop(s);
}

/* A chunked SSE stream written in pieces (lines and events split across
 * writes) arrives complete and in order. */
static void a_chunked_stream_arrives_complete_and_in_order(void **state)
{
    (void)state;
    struct srv *s = srv_start(SRV_SSE, NULL, 0);
    struct http_client *c = client_new();
    struct sink k;
    sink_init(&k);
    char url[128], err[256], want[256] = "";
    struct http_request req = req_post(srv_url(s, "/v1/chat/completions", url, sizeof url), &k);
    struct http_response resp;
    assert_int_equal(http_perform(c, &req, NULL, &resp, err, sizeof err), HTTP_OK);
    for (size_t i = 0; i < sizeof sse_pieces / sizeof sse_pieces[0]; i++)
        snprintf(want + strlen(want), sizeof want - strlen(want), "%s", sse_pieces[i]);
    assert_string_equal(k.data, want);
    assert_int_equal(resp.body_bytes, strlen(want));
    assert_string_equal(resp.content_type, "text/event-stream");
    http_response_free(&resp);
    http_client_free(c);
    sink_fini(&k);
    srv_stop(s);
}

/* A 429 keeps its body in error_body (not on_body) and its retry headers,
 * matched case-insensitively, with the OpenAI request id. */
static void an_error_status_keeps_its_body_and_retry_headers(void **state)
{
    (void)state;
    static const char body[] =
        "{\"error\":{\"message\":\"slow down\",\"type\":\"rate_limit_error\"}}";
    char response[512];
    snprintf(response, sizeof response,
             "HTTP/1.1 429 Too Many Requests\r\nretry-after: 1\r\nRETRY-AFTER-MS: 150\r\n"
             "X-Should-Retry: false\r\nx-request-id: req_429\r\n"
             "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(body), body);
    struct srv *s = srv_start_canned(response);
    struct http_client *c = client_new();
    struct sink k;
    sink_init(&k);
    char url[128], err[256];
    struct http_request req = req_post(srv_url(s, "/v1/chat/completions", url, sizeof url), &k);
    struct http_response resp;
    assert_int_equal(http_perform(c, &req, NULL, &resp, err, sizeof err), HTTP_OK);
    assert_int_equal(resp.status, 429);
    assert_string_equal(buf_cstr(&resp.error_body), body);
    assert_int_equal(resp.body_bytes, strlen(body));
    assert_int_equal(k.calls, 0);
    assert_string_equal(resp.retry_after, "1");
    assert_string_equal(resp.retry_after_ms, "150");
    assert_int_equal(resp.should_retry, 0);
    assert_string_equal(resp.request_id, "req_429");
    http_response_free(&resp);
    http_client_free(c);
    sink_fini(&k);
    srv_stop(s);
}

/* Anthropic's request-id header and x-should-retry: true are read too. */
static void the_anthropic_request_id_and_should_retry_true_are_read(void **state)
{
    (void)state;
    static const char response[] =
        "HTTP/1.1 529 Overloaded\r\nrequest-id: req_ant\r\nx-should-retry: true\r\n"
        "Content-Length: 2\r\n\r\n{}";
    struct srv *s = srv_start_canned(response);
    struct http_client *c = client_new();
    struct sink k;
    sink_init(&k);
    char url[128], err[256];
    struct http_request req = req_post(srv_url(s, "/v1/messages", url, sizeof url), &k);
    struct http_response resp;
    assert_int_equal(http_perform(c, &req, NULL, &resp, err, sizeof err), HTTP_OK);
    assert_int_equal(resp.status, 529);
    assert_string_equal(resp.request_id, "req_ant");
    assert_int_equal(resp.should_retry, 1);
    assert_string_equal(resp.retry_after, "");
    http_response_free(&resp);
    http_client_free(c);
    sink_fini(&k);
    srv_stop(s);
}

/* Headers of an informational 1xx response do not leak into the final
 * response's fields: the status line resets them. */
static void headers_of_an_informational_response_are_dropped(void **state)
{
    (void)state;
    static const char response[] = "HTTP/1.1 103 Early Hints\r\nretry-after: 99\r\n"
                                   "x-request-id: early\r\nx-should-retry: false\r\n\r\n"
                                   "HTTP/1.1 200 OK\r\nx-request-id: final\r\n"
                                   "Content-Length: 2\r\n\r\nok";
    struct srv *s = srv_start_canned(response);
    struct http_client *c = client_new();
    struct sink k;
    sink_init(&k);
    char url[128], err[256];
    struct http_request req = req_post(srv_url(s, "/x", url, sizeof url), &k);
    struct http_response resp;
    assert_int_equal(http_perform(c, &req, NULL, &resp, err, sizeof err), HTTP_OK);
    assert_int_equal(resp.status, 200);
    assert_string_equal(k.data, "ok");
    assert_string_equal(resp.request_id, "final");
    assert_string_equal(resp.retry_after, "");
    assert_int_equal(resp.should_retry, -1);
    http_response_free(&resp);
    http_client_free(c);
    sink_fini(&k);
    srv_stop(s);
}

/* A 1 MiB error body: the first 64 KiB are kept byte for byte, the rest is
 * counted, and the transfer still succeeds with the status. */
static void a_huge_error_body_keeps_64_kib_and_succeeds(void **state)
{
    (void)state;
    struct srv *s = srv_start(SRV_BIG_ERROR, NULL, 0);
    struct http_client *c = client_new();
    struct sink k;
    sink_init(&k);
    char url[128], err[256];
    struct http_request req = req_post(srv_url(s, "/v1/chat/completions", url, sizeof url), &k);
    struct http_response resp;
    assert_int_equal(http_perform(c, &req, NULL, &resp, err, sizeof err), HTTP_OK);
    assert_int_equal(resp.status, 500);
    assert_int_equal(resp.body_bytes, BIG_ERROR_LEN);
    assert_int_equal(resp.error_body.len, 64 * 1024);
    for (size_t i = 0; i < resp.error_body.len; i++)
        if (resp.error_body.data[i] != (char)('a' + i % 26))
            fail_msg("error_body[%zu] differs", i);
    assert_int_equal(k.calls, 0);
    http_response_free(&resp);
    http_client_free(c);
    sink_fini(&k);
    srv_stop(s);
}

/* A refused connection is HTTP_ERR_CONNECT; the message names the method
 * and the URL without its query string. */
static void a_refused_connection_names_the_url(void **state)
{
    (void)state;
    struct http_client *c = client_new();
    struct sink k;
    sink_init(&k);
    char err[256];
    struct http_request req = req_post("http://127.0.0.1:1/v1/chat/completions?key=abc#frag", &k);
    struct http_response resp;
    assert_int_equal(http_perform(c, &req, NULL, &resp, err, sizeof err), HTTP_ERR_CONNECT);
    assert_int_equal(resp.status, 0);
    assert_true(strncmp(err, "POST http://127.0.0.1:1/v1/chat/completions: ", 45) == 0);
    assert_true(strlen(err) > 45); /* libcurl's cause follows */
    assert_null(strstr(err, "key=abc"));
    assert_null(strstr(err, "frag"));
    http_response_free(&resp);
    http_client_free(c);
    sink_fini(&k);
}

/* Credentials in the URL never reach the message, nor do header values. */
static void userinfo_and_headers_stay_out_of_messages(void **state)
{
    (void)state;
    struct http_client *c = client_new();
    struct sink k;
    sink_init(&k);
    char err[256];
    struct http_request req = req_post("http://user:secret@127.0.0.1:1/x", &k);
    struct http_response resp;
    assert_int_equal(http_perform(c, &req, NULL, &resp, err, sizeof err), HTTP_ERR_CONNECT);
    assert_null(strstr(err, "secret"));
    assert_null(strstr(err, "user"));
    assert_null(strstr(err, "sk-test-key"));
    assert_true(strncmp(err, "POST http://127.0.0.1:1/x: ", 27) == 0);
    http_response_free(&resp);
    http_client_free(c);
    sink_fini(&k);
}

/* on_body returning nonzero ends the transfer with HTTP_ERR_ABORTED. */
static void a_body_callback_can_abort(void **state)
{
    (void)state;
    struct srv *s = srv_start(SRV_ENDLESS, NULL, 0);
    struct http_client *c = client_new();
    struct sink k;
    sink_init(&k);
    k.abort_after = 1;
    char url[128], err[256];
    struct http_request req = req_post(srv_url(s, "/v1/chat/completions", url, sizeof url), &k);
    struct http_response resp;
    assert_int_equal(http_perform(c, &req, NULL, &resp, err, sizeof err), HTTP_ERR_ABORTED);
    assert_int_equal(k.calls, 1);
    assert_non_null(strstr(err, url));
    http_response_free(&resp);
    http_client_free(c);
    sink_fini(&k);
    srv_stop(s);
}

/* The canceller: waits until the stream delivered bytes, then cancels. */
struct canceller {
    struct sink *k;
    struct http_client *c;
    atomic_bool *flag;
};

/* The canceller thread's body. */
static void *canceller_main(void *arg)
{
    struct canceller *cn = arg;
    pthread_mutex_lock(&cn->k->mu);
    while (cn->k->calls == 0)
        pthread_cond_wait(&cn->k->cv, &cn->k->mu);
    pthread_mutex_unlock(&cn->k->mu);
    atomic_store(cn->flag, true);
    http_client_wakeup(cn->c);
    return NULL;
}

/* A cancel from another thread during a stalled stream (no timeouts set
 * that could end it) returns HTTP_ERR_CANCELLED; the connection is closed
 * (the server sees it), and a later transfer on the same client delivers
 * nothing more to the cancelled one's callback. */
static void a_cancel_from_another_thread_ends_a_stalled_stream(void **state)
{
    (void)state;
    struct srv *s = srv_start(SRV_STALL, NULL, 0);
    struct srv *s2 = srv_start_canned(ok_json);
    struct http_client *c = client_new();
    struct sink k, k2;
    sink_init(&k);
    sink_init(&k2);
    atomic_bool flag = false;
    struct canceller cn = {.k = &k, .c = c, .flag = &flag};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, canceller_main, &cn), 0);
    char url[128], err[256];
    struct http_request req = req_post(srv_url(s, "/v1/chat/completions", url, sizeof url), &k);
    req.total_timeout_ms = 0;
    req.connect_timeout_ms = 0;
    struct http_response resp;
    assert_int_equal(http_perform(c, &req, &flag, &resp, err, sizeof err), HTTP_ERR_CANCELLED);
    pthread_join(t, NULL);
    assert_string_equal(k.data, STALL_FIRST);
    assert_non_null(strstr(err, "cancelled"));
    int calls = k.calls;
    assert_true(srv_wait_for(s, &s->peer_closed, 1));
    http_response_free(&resp);

    char url2[128];
    struct http_request req2 = req_post(srv_url(s2, "/v1/models", url2, sizeof url2), &k2);
    assert_int_equal(http_perform(c, &req2, NULL, &resp, err, sizeof err), HTTP_OK);
    assert_string_equal(k2.data, JSON_BODY);
    assert_int_equal(k.calls, calls);
    http_response_free(&resp);
    http_client_free(c);
    sink_fini(&k);
    sink_fini(&k2);
    srv_stop(s);
    srv_stop(s2);
}

/* A cancel flag set before the call returns HTTP_ERR_CANCELLED without
 * connecting. */
static void a_cancel_before_the_call_does_not_connect(void **state)
{
    (void)state;
    struct srv *s = srv_start_canned(ok_json);
    struct http_client *c = client_new();
    struct sink k;
    sink_init(&k);
    atomic_bool flag = true;
    char url[128], err[256];
    struct http_request req = req_post(srv_url(s, "/v1/chat/completions", url, sizeof url), &k);
    struct http_response resp;
    assert_int_equal(http_perform(c, &req, &flag, &resp, err, sizeof err), HTTP_ERR_CANCELLED);
    assert_int_equal(k.calls, 0);
    http_response_free(&resp);
    /* The next transfer is the first connection the server ever sees. */
    atomic_store(&flag, false);
    assert_int_equal(http_perform(c, &req, &flag, &resp, err, sizeof err), HTTP_OK);
    assert_false(resp.reused_connection);
    assert_int_equal(srv_get(s, &s->connections), 1);
    http_response_free(&resp);
    http_client_free(c);
    sink_fini(&k);
    srv_stop(s);
}

/* A wakeup while nothing runs is harmless: the next transfer completes. */
static void a_wakeup_while_idle_is_harmless(void **state)
{
    (void)state;
    struct srv *s = srv_start_canned(ok_json);
    struct http_client *c = client_new();
    http_client_wakeup(c);
    http_client_wakeup(c);
    http_client_wakeup(NULL);
    struct sink k;
    sink_init(&k);
    char url[128], err[256];
    struct http_request req = req_post(srv_url(s, "/v1/chat/completions", url, sizeof url), &k);
    struct http_response resp;
    assert_int_equal(http_perform(c, &req, NULL, &resp, err, sizeof err), HTTP_OK);
    assert_string_equal(k.data, JSON_BODY);
    http_response_free(&resp);
    http_client_free(c);
    http_client_free(NULL);
    sink_fini(&k);
    srv_stop(s);
}

/* A gzip-encoded body reaches on_body decoded (Accept-Encoding is on). */
static void a_gzip_body_arrives_decoded(void **state)
{
    (void)state;
    /* gzip of the text below, made with Python's gzip.compress(mtime=0). */
    static const unsigned char gz[] = {
        0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0x05, 0xc1, 0xc1,
        0x0d, 0x80, 0x20, 0x10, 0x04, 0xc0, 0x56, 0x36, 0xf7, 0xb7, 0x01, 0xbb, 0x11,
        0xd9, 0x08, 0x0f, 0x03, 0xb9, 0xbd, 0xa0, 0x68, 0xec, 0xdd, 0x99, 0xd7, 0x82,
        0x77, 0xd8, 0x6a, 0x51, 0xaa, 0x90, 0x5a, 0x9e, 0xb8, 0x36, 0xe1, 0x78, 0x6a,
        0x5f, 0xf6, 0x76, 0x76, 0xa7, 0xc4, 0x8c, 0x34, 0x11, 0x85, 0x08, 0x2a, 0x20,
        0xfa, 0xa0, 0xdb, 0xf7, 0x03, 0x60, 0xc9, 0xef, 0x8e, 0x3b, 0x00, 0x00, 0x00};
    static const char text[] = "{\"text\":\"this body was gzip-compressed by the test server\"}";
    char response[512];
    int head = snprintf(response, sizeof response,
                        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %zu\r\n\r\n",
                        sizeof gz);
    memcpy(response + head, gz, sizeof gz);
    struct srv *s = srv_start(SRV_CANNED, response, (size_t)head + sizeof gz);
    struct http_client *c = client_new();
    struct sink k;
    sink_init(&k);
    char url[128], err[256];
    struct http_request req = req_post(srv_url(s, "/x", url, sizeof url), &k);
    struct http_response resp;
    assert_int_equal(http_perform(c, &req, NULL, &resp, err, sizeof err), HTTP_OK);
    assert_string_equal(k.data, text);
    assert_int_equal(resp.body_bytes, strlen(text));
    struct srv_last last;
    srv_get_last(s, &last);
    assert_non_null(strstr(last.head, "gzip"));
    http_response_free(&resp);
    http_client_free(c);
    sink_fini(&k);
    srv_stop(s);
}

/* A 1.5 MiB body goes out whole and without "Expect: 100-continue" (which
 * would stall a second on servers that never answer 100). */
static void a_large_body_is_sent_without_expect(void **state)
{
    (void)state;
    size_t n = 1536 * 1024;
    char *body = malloc(n);
    assert_non_null(body);
    memset(body, 'x', n);
    struct srv *s = srv_start_canned(ok_json);
    struct http_client *c = client_new();
    struct sink k;
    sink_init(&k);
    char url[128], err[256];
    struct http_request req = req_post(srv_url(s, "/v1/embeddings", url, sizeof url), &k);
    req.body = body;
    req.body_len = n;
    struct http_response resp;
    assert_int_equal(http_perform(c, &req, NULL, &resp, err, sizeof err), HTTP_OK);
    struct srv_last last;
    srv_get_last(s, &last);
    assert_int_equal(last.body_len, n);
    assert_null(strcasestr(last.head, "expect"));
    http_response_free(&resp);
    http_client_free(c);
    sink_fini(&k);
    srv_stop(s);
    free(body);
}

/* --- against the shared mock server (tests/server/mockllm) ---------------- */

/* A chat request for the mock: model selects its behaviour, the user says
 * "hi"; the JSON goes into body (the caller's buffer). */
static struct http_request mock_req(const struct mock *m, const char *model, char *url,
                                    size_t urllen, char *body, size_t bodylen, struct sink *k)
{
    snprintf(url, urllen, "%s/v1/chat/completions", mock_url(m));
    snprintf(body, bodylen,
             "{\"model\":\"%s\",\"stream\":true,"
             "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
             model);
    struct http_request r = req_post(url, k);
    r.body = body;
    r.body_len = strlen(body);
    return r;
}

/* A string field of the index-th logged request ("" when absent). */
static const char *mock_field(cJSON *log, int index, const char *name)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(log, index), name);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* A number field of the index-th logged request (-1 when absent). */
static int mock_num(cJSON *log, int index, const char *name)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(log, index), name);
    return cJSON_IsNumber(v) ? v->valueint : -1;
}

/* The mock's OpenAI stream arrives whole and in order, ending in [DONE];
 * the mock logged the request as sent (path, JSON content type, memchat's
 * user agent, the body). */
static void the_mock_stream_arrives_whole(void **state)
{
    (void)state;
    struct mock *m = mock_start();
    struct http_client *c = client_new();
    struct sink k;
    sink_init(&k);
    char url[128], body[256], err[256];
    struct http_request req = mock_req(m, "mock", url, sizeof url, body, sizeof body, &k);
    struct http_response resp;
    assert_int_equal(http_perform(c, &req, NULL, &resp, err, sizeof err), HTTP_OK);
    assert_int_equal(resp.status, 200);
    assert_string_equal(resp.content_type, "text/event-stream");
    /* the reply "mock reply: hi" in pieces of at most 7 bytes */
    const char *p1 = strstr(k.data, "\"content\":\"mock re\"");
    const char *p2 = strstr(k.data, "\"content\":\"ply: hi\"");
    assert_true(p1 != NULL && p2 != NULL && p1 < p2);
    size_t n = strlen(k.data);
    assert_true(n > 14 && strcmp(k.data + n - 14, "data: [DONE]\n\n") == 0);
    assert_int_equal(resp.body_bytes, k.total);

    cJSON *log = NULL;
    assert_int_equal(mock_requests(m, &log), 1);
    assert_string_equal(mock_field(log, 0, "path"), "/v1/chat/completions");
    assert_string_equal(mock_field(log, 0, "body"), body);
    cJSON *h = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(log, 0), "headers");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(h, "content-type")),
                        "application/json");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(h, "user-agent")),
                        "memchat/" PACKAGE_VERSION);
    cJSON_Delete(log);
    http_response_free(&resp);
    http_client_free(c);
    sink_fini(&k);
    mock_stop(m);
}

/* The mock's 429s: retry-after-ms with x-should-retry: false, and
 * Retry-After in seconds; the bodies land in error_body, not on_body. */
static void the_mock_rate_limits_carry_their_retry_headers(void **state)
{
    (void)state;
    struct mock *m = mock_start();
    struct http_client *c = client_new();
    struct sink k;
    sink_init(&k);
    char url[128], body[256], err[256];
    struct http_request req =
        mock_req(m, "mock:429-ms,no-retry-header", url, sizeof url, body, sizeof body, &k);
    struct http_response resp;
    assert_int_equal(http_perform(c, &req, NULL, &resp, err, sizeof err), HTTP_OK);
    assert_int_equal(resp.status, 429);
    assert_string_equal(resp.retry_after_ms, "150");
    assert_string_equal(resp.retry_after, "");
    assert_int_equal(resp.should_retry, 0);
    assert_non_null(strstr(buf_cstr(&resp.error_body), "\"error\""));
    http_response_free(&resp);

    req = mock_req(m, "mock:429-seconds", url, sizeof url, body, sizeof body, &k);
    assert_int_equal(http_perform(c, &req, NULL, &resp, err, sizeof err), HTTP_OK);
    assert_int_equal(resp.status, 429);
    assert_string_equal(resp.retry_after, "1");
    assert_string_equal(resp.retry_after_ms, "");
    assert_int_equal(resp.should_retry, -1);
    assert_int_equal(k.calls, 0);
    http_response_free(&resp);
    http_client_free(c);
    sink_fini(&k);
    mock_stop(m);
}

/* The mock's endless reply (oversize) stops at max_response_bytes with
 * HTTP_ERR_TOO_BIG; on_body never saw more than the cap. */
static void an_endless_body_stops_at_the_cap(void **state)
{
    (void)state;
    struct mock *m = mock_start();
    struct http_client *c = client_new();
    struct sink k;
    sink_init(&k);
    char url[128], body[256], err[256];
    struct http_request req = mock_req(m, "mock:oversize", url, sizeof url, body, sizeof body, &k);
    req.max_response_bytes = 256 * 1024;
    struct http_response resp;
    assert_int_equal(http_perform(c, &req, NULL, &resp, err, sizeof err), HTTP_ERR_TOO_BIG);
    assert_true(resp.body_bytes > req.max_response_bytes);
    assert_true(k.total > 0 && k.total <= req.max_response_bytes);
    assert_true(strncmp(err, "POST ", 5) == 0 && strstr(err, url) != NULL);
    assert_non_null(strstr(err, "262144"));
    http_response_free(&resp);
    http_client_free(c);
    sink_fini(&k);
    mock_stop(m);
}

/* A server that never answers (mock hang) hits the total timeout. */
static void a_hanging_server_times_out(void **state)
{
    (void)state;
    struct mock *m = mock_start();
    struct http_client *c = client_new();
    struct sink k;
    sink_init(&k);
    char url[128], body[256], err[256];
    struct http_request req = mock_req(m, "mock:hang", url, sizeof url, body, sizeof body, &k);
    req.total_timeout_ms = 300;
    struct http_response resp;
    assert_int_equal(http_perform(c, &req, NULL, &resp, err, sizeof err), HTTP_ERR_TIMEOUT);
    assert_int_equal(resp.status, 0);
    assert_non_null(strstr(err, url));
    assert_int_equal(k.calls, 0);
    http_response_free(&resp);
    http_client_free(c);
    sink_fini(&k);
    mock_stop(m);
}

/* A stream that stalls after its first pieces (mock stall) trips the idle
 * timeout, after delivering those pieces, and the message says so. */
static void a_stalled_stream_trips_the_idle_timeout(void **state)
{
    (void)state;
    struct mock *m = mock_start();
    struct http_client *c = client_new();
    struct sink k;
    sink_init(&k);
    char url[128], body[256], err[256];
    struct http_request req = mock_req(m, "mock:stall", url, sizeof url, body, sizeof body, &k);
    req.idle_timeout_ms = 200;
    struct http_response resp;
    assert_int_equal(http_perform(c, &req, NULL, &resp, err, sizeof err), HTTP_ERR_TIMEOUT);
    assert_non_null(strstr(err, "no data for 200 ms"));
    assert_int_equal(resp.status, 200);
    assert_non_null(strstr(k.data, "\"content\":\"mock re\""));
    assert_null(strstr(k.data, "[DONE]"));
    http_response_free(&resp);
    http_client_free(c);
    sink_fini(&k);
    mock_stop(m);
}

/* A connection the server drops mid-stream (mock drop) is
 * HTTP_ERR_TRANSPORT, after the pieces that did arrive were delivered. */
static void a_dropped_connection_is_a_transport_error(void **state)
{
    (void)state;
    struct mock *m = mock_start();
    struct http_client *c = client_new();
    struct sink k;
    sink_init(&k);
    char url[128], body[256], err[256];
    struct http_request req = mock_req(m, "mock:drop", url, sizeof url, body, sizeof body, &k);
    struct http_response resp;
    assert_int_equal(http_perform(c, &req, NULL, &resp, err, sizeof err), HTTP_ERR_TRANSPORT);
    assert_non_null(strstr(k.data, "\"content\":\"mock re\""));
    assert_null(strstr(k.data, "[DONE]"));
    assert_non_null(strstr(err, url));
    http_response_free(&resp);
    http_client_free(c);
    sink_fini(&k);
    mock_stop(m);
}

/* Two requests through one client to the keep-alive mock share one TCP
 * connection: the second reports reuse, and the mock logged both on the
 * same "conn". */
static void two_requests_reuse_one_connection(void **state)
{
    (void)state;
    struct mock *m = mock_start();
    struct http_client *c = client_new();
    struct sink k;
    sink_init(&k);
    char url[128], body[256], err[256];
    struct http_request req = mock_req(m, "mock", url, sizeof url, body, sizeof body, &k);
    struct http_response resp;
    assert_int_equal(http_perform(c, &req, NULL, &resp, err, sizeof err), HTTP_OK);
    assert_false(resp.reused_connection);
    http_response_free(&resp);
    assert_int_equal(http_perform(c, &req, NULL, &resp, err, sizeof err), HTTP_OK);
    assert_true(resp.reused_connection);
    http_response_free(&resp);
    cJSON *log = NULL;
    assert_int_equal(mock_requests(m, &log), 2);
    assert_int_equal(mock_num(log, 0, "conn"), mock_num(log, 1, "conn"));
    assert_true(mock_num(log, 0, "conn") >= 1);
    cJSON_Delete(log);
    http_client_free(c);
    sink_fini(&k);
    mock_stop(m);
}

/* libcurl allocates through util/alloc (mc_global_init installed it), so
 * the allocation counter moves when a client is made and used. */
static void libcurl_allocates_through_memchat(void **state)
{
    (void)state;
    unsigned long before = alloc_count();
    struct http_client *c = client_new();
    assert_true(alloc_count() > before);
    http_client_free(c);
}

/* One fault-injection run: the n-th allocation from now fails (and every
 * later one too when sticky) during client creation and a transfer. The
 * result is an error with a message, or success; the client then works
 * again. False once the run made fewer than n allocations (the sweep is
 * over). */
static bool fault_run(const char *url, unsigned long n, int sticky)
{
    struct sink k;
    sink_init(&k);
    struct http_request req = req_post(url, &k);
    struct http_response resp;
    char err[256] = "";
    unsigned long before = alloc_count();
    alloc_fail_after(n, sticky);
    struct http_client *c = http_client_new(err, sizeof err);
    enum http_result r = HTTP_ERR_NO_MEMORY;
    if (c != NULL) {
        r = http_perform(c, &req, NULL, &resp, err, sizeof err);
        http_response_free(&resp);
    }
    bool reached = alloc_count() - before >= n;
    alloc_fail_after(0, 0);
    if (!reached)
        assert_int_equal(r, HTTP_OK);
    if (r != HTTP_OK) {
        if (strlen(err) == 0 || r == HTTP_ERR_TIMEOUT || r == HTTP_ERR_CANCELLED ||
            r == HTTP_ERR_ABORTED || r == HTTP_ERR_TOO_BIG)
            fail_msg("allocation %lu (sticky %d): %s: %s", n, sticky, http_result_name(r), err);
    }
    if (c != NULL) {
        enum http_result r2 = http_perform(c, &req, NULL, &resp, err, sizeof err);
        if (r2 != HTTP_OK)
            fail_msg("after allocation %lu (sticky %d) failed with %s, the client fails: %s: %s", n,
                     sticky, http_result_name(r), http_result_name(r2), err);
        assert_string_equal(resp.request_id, "req_ok");
        http_response_free(&resp);
    }
    http_client_free(c);
    sink_fini(&k);
    return reached;
}

/* An allocation failure at any point of a client's life (creation, set-up,
 * transfer) ends in an error with a message (or libcurl copes and the
 * transfer succeeds), never in a hang, crash or leak (ASan and valgrind
 * check the last two); the client works again afterwards. */
static void allocation_failures_end_in_errors(void **state)
{
    (void)state;
    struct srv *s = srv_start_canned(ok_json);
    char url[128];
    srv_url(s, "/v1/chat/completions", url, sizeof url);
    for (int sticky = 0; sticky <= 1; sticky++) {
        unsigned long n = 1;
        while (fault_run(url, n, sticky))
            n++;
        assert_true(n > 10); /* the sweep did reach inside libcurl */
    }
    srv_stop(s);
}

/* Every result has a distinct short name. */
static void every_result_has_a_distinct_name(void **state)
{
    (void)state;
    const char *seen[HTTP_ERR_NO_MEMORY + 1];
    for (int r = HTTP_OK; r <= HTTP_ERR_NO_MEMORY; r++) {
        seen[r] = http_result_name((enum http_result)r);
        assert_true(strlen(seen[r]) > 0);
        assert_string_not_equal(seen[r], "unknown");
        for (int j = 0; j < r; j++)
            assert_string_not_equal(seen[r], seen[j]);
    }
    assert_string_equal(http_result_name(HTTP_ERR_TIMEOUT), "timeout");
}

int main(void)
{
    /* The tests talk to 127.0.0.1 directly; a proxy from the environment
     * would intercept them. */
    static const char *const proxies[] = {"http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy",
                                          "ALL_PROXY",  "no_proxy",    "NO_PROXY",    "HTTP_PROXY"};
    for (size_t i = 0; i < sizeof proxies / sizeof proxies[0]; i++)
        unsetenv(proxies[i]);
    if (mc_global_init() != 0) {
        fprintf(stderr, "mc_global_init failed\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_json_body_arrives_whole_and_the_request_is_as_built),
        cmocka_unit_test(a_get_sends_no_body),
        cmocka_unit_test(a_chunked_stream_arrives_complete_and_in_order),
        cmocka_unit_test(an_error_status_keeps_its_body_and_retry_headers),
        cmocka_unit_test(the_anthropic_request_id_and_should_retry_true_are_read),
        cmocka_unit_test(headers_of_an_informational_response_are_dropped),
        cmocka_unit_test(a_huge_error_body_keeps_64_kib_and_succeeds),
        cmocka_unit_test(a_refused_connection_names_the_url),
        cmocka_unit_test(userinfo_and_headers_stay_out_of_messages),
        cmocka_unit_test(a_body_callback_can_abort),
        cmocka_unit_test(a_cancel_from_another_thread_ends_a_stalled_stream),
        cmocka_unit_test(a_cancel_before_the_call_does_not_connect),
        cmocka_unit_test(a_wakeup_while_idle_is_harmless),
        cmocka_unit_test(a_gzip_body_arrives_decoded),
        cmocka_unit_test(a_large_body_is_sent_without_expect),
        cmocka_unit_test(the_mock_stream_arrives_whole),
        cmocka_unit_test(the_mock_rate_limits_carry_their_retry_headers),
        cmocka_unit_test(an_endless_body_stops_at_the_cap),
        cmocka_unit_test(a_hanging_server_times_out),
        cmocka_unit_test(a_stalled_stream_trips_the_idle_timeout),
        cmocka_unit_test(a_dropped_connection_is_a_transport_error),
        cmocka_unit_test(two_requests_reuse_one_connection),
        cmocka_unit_test(libcurl_allocates_through_memchat),
        cmocka_unit_test(every_result_has_a_distinct_name),
        cmocka_unit_test(allocation_failures_end_in_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
