/*
 * fakevec: the HTTP core of the loopback fakes of remote embedders and
 * vector stores (tests/server/fakevec.h says what a service is and which
 * control requests there are). One thread, one poll() loop over the
 * listening socket, stdin, a SIGTERM self-pipe and every connection; each
 * connection reads one request at a time (HTTP/1.1 keep-alive, bodies by
 * Content-Length or chunked, Expect: 100-continue answered), logs it,
 * answers it whole and reads the next. A "hang" leaves the connection
 * unanswered until the client gives up. It binds 127.0.0.1 on an ephemeral
 * port, prints PORT=<n>, and exits 0 on stdin EOF or SIGTERM, freeing
 * everything (the tests run it under ASan).
 */
#include "config.h"

#include "fakevec.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define FV_MAX_CONNS   64
#define FV_MAX_HEADERS 64
#define FV_MAX_INPUT   (64u * 1024u * 1024u) /* a request larger than this gets 413 */

static int sig_pipe_wr = -1;
static const char *g_key;

struct conn {
    int fd;
    unsigned long id;
    char *in;
    size_t in_len, in_cap;
    char *out;
    size_t out_len, out_off;
    bool continued; /* 100 Continue already sent for the request being read */
    bool hung;      /* a "hang" failure: read nothing more, answer nothing */
    bool closing;   /* close once out is written */
};

struct fail_rule {
    int status;
    int count;
    int after; /* requests that pass before the failures start */
    bool drop, hang;
    char retry_after[32];
    char message[256];
};

struct server {
    const struct fv_service *svc;
    void *st;
    FILE *log;
    unsigned long seq, next_conn;
    struct conn conns[FV_MAX_CONNS];
    struct fail_rule fail;
};

static void die(const char *what)
{
    fprintf(stderr, "fakevec: %s\n", what);
    exit(2);
}

static void *xmalloc_or_die(size_t n)
{
    void *p = malloc(n != 0 ? n : 1);
    if (p == NULL)
        die("out of memory");
    return p;
}

/* ---- the service-facing helpers of fakevec.h ----------------------------- */

const char *fv_header(const struct fv_request *rq, const char *name)
{
    for (size_t i = 0; i < rq->n_headers; i++)
        if (strcmp(rq->header_names[i], name) == 0)
            return rq->header_values[i];
    return NULL;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent- and plus-decodes s[0..n) into out; false when it does not fit. */
static bool url_decode(const char *s, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            c = hexval(s[i + 1]) * 16 + hexval(s[i + 2]);
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (o + 1 >= outlen)
            return false;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return true;
}

bool fv_query_param(const struct fv_request *rq, const char *name, size_t n, char *out,
                    size_t outlen)
{
    size_t nl = strlen(name), seen = 0;
    for (const char *p = rq->query; *p != '\0';) {
        const char *amp = strchr(p, '&');
        size_t len = amp != NULL ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        size_t kl = eq != NULL ? (size_t)(eq - p) : len;
        if (kl == nl && memcmp(p, name, nl) == 0 && seen++ == n) {
            if (eq == NULL)
                return outlen > 0 && (out[0] = '\0', true);
            return url_decode(eq + 1, len - kl - 1, out, outlen);
        }
        p += len + (amp != NULL ? 1 : 0);
    }
    return false;
}

const char *fv_key(void)
{
    return g_key;
}

bool fv_auth_ok(const struct fv_request *rq, const char *header, const char *prefix)
{
    if (g_key == NULL)
        return true;
    const char *v = fv_header(rq, header);
    size_t pl = strlen(prefix);
    return v != NULL && strncmp(v, prefix, pl) == 0 && strcmp(v + pl, g_key) == 0;
}

void fv_reply_json(struct fv_reply *rep, int status, cJSON *body)
{
    free(rep->body);
    rep->body = NULL;
    rep->body_len = 0;
    rep->status = status;
    snprintf(rep->content_type, sizeof rep->content_type, "application/json");
    if (body == NULL)
        return;
    rep->body = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    if (rep->body == NULL)
        die("out of memory printing a reply");
    rep->body_len = strlen(rep->body);
}

void fv_reply_text(struct fv_reply *rep, int status, const char *content_type, const char *text)
{
    free(rep->body);
    rep->status = status;
    snprintf(rep->content_type, sizeof rep->content_type, "%s", content_type);
    rep->body_len = strlen(text);
    rep->body = xmalloc_or_die(rep->body_len + 1);
    memcpy(rep->body, text, rep->body_len + 1);
}

void fv_reply_header(struct fv_reply *rep, const char *line)
{
    size_t used = strlen(rep->headers);
    snprintf(rep->headers + used, sizeof rep->headers - used, "%s\r\n", line);
}

/* ---- connections ------------------------------------------------------------ */

static void conn_close(struct conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c->in);
    free(c->out);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

static void out_append(struct conn *c, const char *p, size_t n)
{
    char *bigger = realloc(c->out, c->out_len + n + 1);
    if (bigger == NULL)
        die("out of memory");
    c->out = bigger;
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
}

static const char *status_text(int st)
{
    switch (st) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 422:
        return "Unprocessable Entity";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Status";
    }
}

static void send_reply(struct conn *c, const struct fv_reply *rep)
{
    char head[2048];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s\r\n",
                     rep->status, status_text(rep->status),
                     rep->content_type[0] != '\0' ? rep->content_type : "application/json",
                     rep->body_len, rep->headers, c->closing ? "Connection: close\r\n" : "");
    out_append(c, head, (size_t)n);
    if (rep->body_len > 0)
        out_append(c, rep->body, rep->body_len);
}

/* ---- JSON log ----------------------------------------------------------------- */

static void log_str(FILE *f, const char *s, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static void log_request(struct server *s, const struct conn *c, const struct fv_request *rq)
{
    if (s->log == NULL)
        return;
    fprintf(s->log, "{\"seq\":%lu,\"conn\":%lu,\"method\":", s->seq, c->id);
    log_str(s->log, rq->method, strlen(rq->method));
    fputs(",\"path\":", s->log);
    log_str(s->log, rq->path, strlen(rq->path));
    fputs(",\"query\":", s->log);
    log_str(s->log, rq->query, strlen(rq->query));
    fputs(",\"headers\":{", s->log);
    for (size_t i = 0; i < rq->n_headers; i++) {
        if (i > 0)
            fputc(',', s->log);
        log_str(s->log, rq->header_names[i], strlen(rq->header_names[i]));
        fputc(':', s->log);
        log_str(s->log, rq->header_values[i], strlen(rq->header_values[i]));
    }
    fputs("},\"body\":", s->log);
    log_str(s->log, rq->body, rq->body_len);
    fputs("}\n", s->log);
    fflush(s->log);
}

/* ---- control requests ---------------------------------------------------------- */

static void control(struct server *s, const struct fv_request *rq, struct fv_reply *rep)
{
    if (strcmp(rq->path, "/__fake/reset") == 0) {
        memset(&s->fail, 0, sizeof s->fail);
        if (s->svc->reset != NULL)
            s->svc->reset(s->st);
        fv_reply_json(rep, 200, cJSON_CreateObject());
        return;
    }
    if (strcmp(rq->path, "/__fake/fail") != 0 || rq->json == NULL) {
        fv_reply_text(rep, 400, "text/plain", "fakevec: unknown control request\n");
        return;
    }
    struct fail_rule f = {.count = 1};
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(rq->json, "status");
    f.status = cJSON_IsNumber(v) ? v->valueint : 0;
    v = cJSON_GetObjectItemCaseSensitive(rq->json, "count");
    if (cJSON_IsNumber(v))
        f.count = v->valueint;
    v = cJSON_GetObjectItemCaseSensitive(rq->json, "after");
    if (cJSON_IsNumber(v))
        f.after = v->valueint;
    f.drop = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rq->json, "drop"));
    f.hang = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rq->json, "hang"));
    v = cJSON_GetObjectItemCaseSensitive(rq->json, "retry_after");
    if (cJSON_IsString(v))
        snprintf(f.retry_after, sizeof f.retry_after, "%s", v->valuestring);
    v = cJSON_GetObjectItemCaseSensitive(rq->json, "message");
    snprintf(f.message, sizeof f.message, "%s",
             cJSON_IsString(v) ? v->valuestring : "fakevec: injected failure");
    if (f.status == 0 && !f.drop && !f.hang) {
        fv_reply_text(rep, 400, "text/plain", "fakevec: a failure needs status, drop or hang\n");
        return;
    }
    s->fail = f;
    fv_reply_json(rep, 200, cJSON_CreateObject());
}

enum injected { INJ_NONE, INJ_REPLY, INJ_DROP, INJ_HANG };

/* Applies an injected failure to this request, if one is armed. */
static enum injected inject(struct server *s, struct conn *c, struct fv_reply *rep)
{
    if (s->fail.count <= 0)
        return INJ_NONE;
    if (s->fail.after > 0) {
        s->fail.after--;
        return INJ_NONE;
    }
    s->fail.count--;
    if (s->fail.drop) {
        c->closing = true;
        return INJ_DROP;
    }
    if (s->fail.hang) {
        c->hung = true;
        return INJ_HANG;
    }
    s->svc->error(s->st, s->fail.status, s->fail.message, rep);
    if (s->fail.retry_after[0] != '\0') {
        char line[64];
        snprintf(line, sizeof line, "Retry-After: %s", s->fail.retry_after);
        fv_reply_header(rep, line);
    }
    return INJ_REPLY;
}

/* ---- request parsing ---------------------------------------------------------- */

/* Decodes a chunked body in place at p (len bytes available): the body's
 * length in *body_len and the bytes consumed in *used; 0 when complete, 1
 * when more input is needed, -1 when malformed. */
static int dechunk(char *p, size_t len, size_t *body_len, size_t *used)
{
    size_t in = 0, out = 0;
    for (;;) {
        char *nl = memchr(p + in, '\n', len - in);
        if (nl == NULL)
            return 1;
        char *end = NULL;
        unsigned long sz = strtoul(p + in, &end, 16);
        if (end == p + in)
            return -1;
        in = (size_t)(nl - p) + 1;
        if (sz == 0) {
            /* trailers end at an empty line */
            for (;;) {
                char *l = memchr(p + in, '\n', len - in);
                if (l == NULL)
                    return 1;
                size_t ll = (size_t)(l - (p + in));
                in = (size_t)(l - p) + 1;
                if (ll == 0 || (ll == 1 && p[in - 2] == '\r'))
                    break;
            }
            *body_len = out;
            *used = in;
            return 0;
        }
        if (len - in < sz + 2)
            return 1;
        memmove(p + out, p + in, sz);
        out += sz;
        in += sz;
        if (p[in] == '\r')
            in++;
        if (p[in] != '\n')
            return -1;
        in++;
    }
}

/* Parses the request at the front of c->in and answers it. 1 when a whole
 * request was handled, 0 when more input is needed, -1 to close. */
static int handle_one(struct server *s, struct conn *c)
{
    char *hend = NULL;
    for (size_t i = 3; i < c->in_len; i++)
        if (c->in[i] == '\n' && c->in[i - 1] == '\r' && c->in[i - 2] == '\n' &&
            c->in[i - 3] == '\r') {
            hend = c->in + i + 1;
            break;
        }
    if (hend == NULL)
        return c->in_len > 65536 ? -1 : 0;
    size_t head_len = (size_t)(hend - c->in);
    char *head = xmalloc_or_die(head_len + 1);
    memcpy(head, c->in, head_len);
    head[head_len] = '\0';

    const char *names[FV_MAX_HEADERS], *values[FV_MAX_HEADERS];
    size_t nh = 0;
    char *save = NULL;
    char *line = strtok_r(head, "\r\n", &save);
    char *save2 = NULL;
    char *method = line != NULL ? strtok_r(line, " ", &save2) : NULL;
    char *target = method != NULL ? strtok_r(NULL, " ", &save2) : NULL;
    if (target == NULL) {
        free(head);
        return -1;
    }
    size_t content_length = 0;
    bool chunked = false, expect = false, close_after = false;
    while ((line = strtok_r(NULL, "\r\n", &save)) != NULL && nh < FV_MAX_HEADERS) {
        char *colon = strchr(line, ':');
        if (colon == NULL)
            continue;
        *colon = '\0';
        for (char *q = line; *q != '\0'; q++)
            *q = (char)tolower((unsigned char)*q);
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        names[nh] = line;
        values[nh++] = v;
        if (strcmp(line, "content-length") == 0)
            content_length = (size_t)strtoull(v, NULL, 10);
        else if (strcmp(line, "transfer-encoding") == 0 && strcasestr(v, "chunked") != NULL)
            chunked = true;
        else if (strcmp(line, "expect") == 0 && strcasecmp(v, "100-continue") == 0)
            expect = true;
        else if (strcmp(line, "connection") == 0 && strcasecmp(v, "close") == 0)
            close_after = true;
    }

    size_t avail = c->in_len - head_len, body_len = 0, used = 0;
    char *body = hend;
    if (chunked) {
        int r = dechunk(body, avail, &body_len, &used);
        if (r < 0) {
            free(head);
            return -1;
        }
        if (r > 0) {
            if (expect && !c->continued) {
                out_append(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
                c->continued = true;
            }
            free(head);
            return 0;
        }
    } else {
        if (content_length > FV_MAX_INPUT) {
            free(head);
            return -1;
        }
        if (avail < content_length) {
            if (expect && !c->continued) {
                out_append(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
                c->continued = true;
            }
            free(head);
            return 0;
        }
        body_len = used = content_length;
    }
    char *bodyz = xmalloc_or_die(body_len + 1);
    memcpy(bodyz, body, body_len);
    bodyz[body_len] = '\0';

    char *q = strchr(target, '?');
    if (q != NULL)
        *q++ = '\0';
    struct fv_request rq = {
        .method = method,
        .path = target,
        .query = q != NULL ? q : "",
        .header_names = names,
        .header_values = values,
        .n_headers = nh,
        .body = bodyz,
        .body_len = body_len,
        .json = body_len > 0 ? cJSON_ParseWithLength(bodyz, body_len) : NULL,
    };
    struct fv_reply rep = {.status = 200};
    c->closing = close_after;
    enum injected inj = INJ_NONE;
    if (strncmp(rq.path, "/__fake/", 8) == 0) {
        control(s, &rq, &rep);
    } else {
        s->seq++;
        log_request(s, c, &rq);
        inj = inject(s, c, &rep);
        if (inj == INJ_NONE)
            s->svc->handle(s->st, &rq, &rep);
    }
    if (inj == INJ_NONE || inj == INJ_REPLY)
        send_reply(c, &rep);
    cJSON_Delete(rq.json);
    free(rep.body);
    free(bodyz);
    free(head);
    /* drop the request from the input */
    size_t consumed = head_len + used;
    memmove(c->in, c->in + consumed, c->in_len - consumed);
    c->in_len -= consumed;
    c->continued = false;
    return 1;
}

static void conn_read(struct server *s, struct conn *c)
{
    if (c->in_cap - c->in_len < 65536) {
        size_t cap = c->in_cap * 2 + 65536;
        if (cap > FV_MAX_INPUT + 65536) {
            conn_close(c);
            return;
        }
        char *bigger = realloc(c->in, cap);
        if (bigger == NULL)
            die("out of memory");
        c->in = bigger;
        c->in_cap = cap;
    }
    ssize_t r = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
    if (r < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (r <= 0) {
        conn_close(c);
        return;
    }
    c->in_len += (size_t)r;
    while (!c->hung && !c->closing) {
        int h = handle_one(s, c);
        if (h < 0) {
            conn_close(c);
            return;
        }
        if (h == 0)
            break;
    }
}

static void conn_write(struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN)
            return;
        if (w <= 0) {
            conn_close(c);
            return;
        }
        c->out_off += (size_t)w;
    }
    c->out_len = c->out_off = 0;
    if (c->closing)
        conn_close(c);
}

static void on_sigterm(int sig)
{
    (void)sig;
    if (sig_pipe_wr >= 0) {
        ssize_t w = write(sig_pipe_wr, "x", 1);
        (void)w;
    }
}

static const struct fv_service *service_named(const char *name)
{
    static const struct fv_service *const all[] = {&fv_embed_service, &fv_qdrant_service,
                                                   &fv_pinecone_service, &fv_weaviate_service};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (strcmp(all[i]->name, name) == 0)
            return all[i];
    return NULL;
}

static int listen_loopback(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        die("socket");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 64) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) != 0)
        die("cannot listen on 127.0.0.1");
    *port = ntohs(a.sin_port);
    return fd;
}

static void accept_all(struct server *s, int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0)
            return;
        struct conn *slot = NULL;
        for (size_t i = 0; i < FV_MAX_CONNS && slot == NULL; i++)
            if (s->conns[i].fd < 0)
                slot = &s->conns[i];
        if (slot == NULL) {
            close(fd);
            continue;
        }
        memset(slot, 0, sizeof *slot);
        slot->fd = fd;
        slot->id = ++s->next_conn;
    }
}

static void serve(struct server *s, int lfd, int sig_rd)
{
    for (;;) {
        struct pollfd p[FV_MAX_CONNS + 3];
        struct conn *who[FV_MAX_CONNS + 3];
        size_t n = 0;
        p[n++] = (struct pollfd){.fd = lfd, .events = POLLIN};
        p[n++] = (struct pollfd){.fd = STDIN_FILENO, .events = POLLIN};
        p[n++] = (struct pollfd){.fd = sig_rd, .events = POLLIN};
        for (size_t i = 0; i < FV_MAX_CONNS; i++) {
            struct conn *c = &s->conns[i];
            if (c->fd < 0)
                continue;
            short ev = c->hung ? POLLIN : (short)(POLLIN | (c->out_len > c->out_off ? POLLOUT : 0));
            who[n] = c;
            p[n++] = (struct pollfd){.fd = c->fd, .events = ev};
        }
        if (poll(p, (nfds_t)n, -1) < 0) {
            if (errno == EINTR)
                continue;
            die("poll");
        }
        if (p[1].revents != 0) {
            char junk[256];
            ssize_t r = read(STDIN_FILENO, junk, sizeof junk);
            if (r <= 0)
                return;
        }
        if (p[2].revents != 0)
            return;
        if (p[0].revents & POLLIN)
            accept_all(s, lfd);
        for (size_t i = 3; i < n; i++) {
            struct conn *c = who[i];
            if (c->fd < 0)
                continue;
            if (p[i].revents & POLLOUT)
                conn_write(c);
            if (c->fd >= 0 && (p[i].revents & (POLLIN | POLLHUP | POLLERR))) {
                if (c->hung) {
                    char junk[4096];
                    ssize_t r = recv(c->fd, junk, sizeof junk, 0);
                    if (r <= 0 && !(r < 0 && (errno == EINTR || errno == EAGAIN)))
                        conn_close(c);
                    continue;
                }
                conn_read(s, c);
                if (c->fd >= 0 && c->out_len > c->out_off)
                    conn_write(c);
                else if (c->fd >= 0 && c->closing && c->out_len == 0)
                    conn_close(c);
            }
        }
    }
}

int main(int argc, char **argv)
{
    const char *service = NULL, *log_path = NULL;
    int i = 1;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--service") == 0 && i + 1 < argc)
            service = argv[++i];
        else if (strcmp(argv[i], "--log") == 0 && i + 1 < argc)
            log_path = argv[++i];
        else if (strcmp(argv[i], "--key") == 0 && i + 1 < argc)
            g_key = argv[++i];
        else
            break;
    }
    struct server s;
    memset(&s, 0, sizeof s);
    s.svc = service != NULL ? service_named(service) : NULL;
    if (s.svc == NULL)
        die("usage: fakevec --service embed|qdrant|pinecone|weaviate [--log FILE] [--key KEY] "
            "[service options]");
    s.st = s.svc->init(argc - i, argv + i);
    if (s.st == NULL)
        return 2;
    if (log_path != NULL && (s.log = fopen(log_path, "a")) == NULL)
        die("cannot open the log");
    for (size_t k = 0; k < FV_MAX_CONNS; k++)
        s.conns[k].fd = -1;

    int sp[2];
    if (pipe2(sp, O_CLOEXEC | O_NONBLOCK) != 0)
        die("pipe");
    sig_pipe_wr = sp[1];
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigterm;
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int port = 0, lfd = listen_loopback(&port);
    printf("PORT=%d\n", port);
    fflush(stdout);
    serve(&s, lfd, sp[0]);

    for (size_t k = 0; k < FV_MAX_CONNS; k++)
        if (s.conns[k].fd >= 0)
            conn_close(&s.conns[k]);
    close(lfd);
    close(sp[0]);
    close(sp[1]);
    if (s.log != NULL)
        fclose(s.log);
    s.svc->free(s.st);
    return 0;
}
