/*
 * https.c: HTTP/1.1 over TLS, a thread per connection (see https.h).
 *
 * Why not libmicrohttpd: Debian builds it with GnuTLS, and a watch is a
 * response that blocks for minutes waiting for events; with a thread per
 * connection of our own, blocking is simply what the thread does, and the
 * certificate OpenSSL generated is used as it is.
 *
 * Invariants: every connection thread is counted in s->nconns under s->lock
 * and registered in s->conns (its fd), so stop can shut every socket down
 * and wait for the count to reach zero. A request is answered at most once
 * (r->responded); a handler that answers nothing gets a 500.
 */
#include "https.h"

#include "log.h"

#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"

#define MAX_HEADER_BYTES (64 * 1024)
#define MAX_HEADERS 100
#define IDLE_TIMEOUT_S 300
#define DISCARD_LIMIT (64LL * 1024 * 1024)

struct dc_https {
    dc_https_config config;
    SSL_CTX *ctx;
    int listen_fd;
    int port;
    pthread_t acceptor;
    pthread_mutex_t lock;
    pthread_cond_t drained;
    unsigned nconns;
    int *conn_fds; /* max_conns slots, -1 when free */
    atomic_bool stopping;
};

typedef struct conn {
    dc_https *server;
    int fd;
    int slot;
    SSL *ssl;
    lb_buf in; /* bytes read but not yet consumed */
} conn;

struct dc_req {
    conn *c;
    char method[16];
    char *target;
    char *path;
    char *rawquery;
    char *header_names[MAX_HEADERS];
    char *header_values[MAX_HEADERS];
    int nheaders;
    lb_buf body;
    bool responded;
    bool streaming;
    bool keep_alive;
    bool broken;
    lb_buf extra_headers; /* "Name: value\r\n" lines for the response */
};

static const char *
status_text(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
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
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 413:
        return "Request Entity Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Entity";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Status";
    }
}

/* ---- raw I/O over TLS ---- */

static int
conn_write(conn *c, const char *bytes, size_t len)
{
    while (len > 0) {
        int n = SSL_write(c->ssl, bytes, len > INT32_MAX ? INT32_MAX : (int)len);
        if (n <= 0)
            return -EPIPE;
        bytes += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Read more bytes into c->in; 0, or -EPIPE on EOF/error. */
static int
conn_fill(conn *c)
{
    char chunk[16384];
    int n = SSL_read(c->ssl, chunk, sizeof chunk);
    if (n <= 0)
        return -EPIPE;
    if (lb_buf_append(&c->in, chunk, (size_t)n) < 0)
        return -ENOMEM;
    return 0;
}

static int
hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Percent-decode in place ('+' as space when form). */
static void
url_decode(char *s, bool form)
{
    char *w = s;
    for (char *p = s; *p; p++) {
        if (*p == '%' && hexval(p[1]) >= 0 && hexval(p[2]) >= 0) {
            *w++ = (char)(hexval(p[1]) * 16 + hexval(p[2]));
            p += 2;
        } else if (form && *p == '+') {
            *w++ = ' ';
        } else {
            *w++ = *p;
        }
    }
    *w = '\0';
}

/* A metav1.Status answer for what fails before a handler runs. */
static void
send_simple(conn *c, int status, const char *message)
{
    char body[512], head[1024];
    const char *reason = status == 413   ? "RequestEntityTooLarge"
                         : status == 431 ? "RequestHeaderFieldsTooLarge"
                                         : "BadRequest";
    snprintf(body, sizeof body,
             "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","
             "\"message\":\"%s\",\"reason\":\"%s\",\"code\":%d}",
             message, reason, status);
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     status, status_text(status), strlen(body), body);
    (void)conn_write(c, head, (size_t)n);
}

static void
req_clear(dc_req *r)
{
    free(r->target);
    free(r->path);
    free(r->rawquery);
    for (int i = 0; i < r->nheaders; i++) {
        free(r->header_names[i]);
        free(r->header_values[i]);
    }
    lb_buf_free(&r->body);
    lb_buf_free(&r->extra_headers);
    memset(r, 0, sizeof *r);
}

/* Read one request's head and body into r. 0; -EPIPE (connection over);
 * or an HTTP status > 0 for a request to refuse and then close. */
static int
read_request(conn *c, dc_req *r)
{
    char *end;
    while ((end = c->in.data ? memmem(c->in.data, c->in.len, "\r\n\r\n", 4) : NULL) == NULL) {
        if (c->in.len > MAX_HEADER_BYTES)
            return 431;
        int rc = conn_fill(c);
        if (rc < 0)
            return rc;
    }
    size_t head_len = (size_t)(end - c->in.data) + 4;
    if (head_len > MAX_HEADER_BYTES)
        return 431;
    char *head = strndup(c->in.data, head_len - 4);
    if (!head)
        return 500;
    lb_buf_consume(&c->in, head_len);

    char *save = NULL;
    char *line = strtok_r(head, "\r\n", &save);
    char target[8192];
    char version[16];
    if (!line || sscanf(line, "%15s %8191s %15s", r->method, target, version) != 3 ||
        strncmp(version, "HTTP/1.", 7) != 0) {
        free(head);
        return 400;
    }
    r->keep_alive = strcmp(version, "HTTP/1.1") == 0;
    long long content_length = -1;
    bool chunked = false;
    while ((line = strtok_r(NULL, "\r\n", &save)) != NULL) {
        char *colon = strchr(line, ':');
        if (!colon || r->nheaders >= MAX_HEADERS) {
            free(head);
            return colon ? 431 : 400;
        }
        *colon = '\0';
        char *value = colon + 1;
        while (*value == ' ' || *value == '\t')
            value++;
        size_t vlen = strlen(value);
        while (vlen > 0 && (value[vlen - 1] == ' ' || value[vlen - 1] == '\t'))
            value[--vlen] = '\0';
        r->header_names[r->nheaders] = strdup(line);
        r->header_values[r->nheaders] = strdup(value);
        r->nheaders++;
        if (strcasecmp(line, "Content-Length") == 0) {
            char *e;
            errno = 0;
            content_length = strtoll(value, &e, 10);
            if (errno || *e || content_length < 0) {
                free(head);
                return 400;
            }
        } else if (strcasecmp(line, "Transfer-Encoding") == 0 && strcasestr(value, "chunked")) {
            chunked = true;
        } else if (strcasecmp(line, "Connection") == 0) {
            if (strcasecmp(value, "close") == 0)
                r->keep_alive = false;
        } else if (strcasecmp(line, "Expect") == 0 && strcasecmp(value, "100-continue") == 0) {
            /* answered below, once the length is known to fit */
        }
    }
    free(head);

    r->target = strdup(target);
    char *q = strchr(target, '?');
    r->rawquery = strdup(q ? q + 1 : "");
    if (q)
        *q = '\0';
    r->path = strdup(target);
    if (!r->target || !r->rawquery || !r->path)
        return 500;
    url_decode(r->path, false);

    size_t max_body = c->server->config.max_body;
    if (content_length > (long long)max_body) {
        /* read (and drop) a body of sane size first, so that the client,
         * still sending, sees the answer instead of a reset */
        long long left = content_length - (long long)c->in.len;
        lb_buf_reset(&c->in);
        while (left > 0 && content_length <= DISCARD_LIMIT) {
            char sink[16384];
            int n = SSL_read(c->ssl, sink,
                             left > (long long)sizeof sink ? (int)sizeof sink : (int)left);
            if (n <= 0)
                break;
            left -= n;
        }
        return 413;
    }
    const char *expect = dc_req_header(r, "Expect");
    if (expect && strcasecmp(expect, "100-continue") == 0) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (conn_write(c, cont, sizeof cont - 1) < 0)
            return -EPIPE;
    }
    if (chunked) {
        for (;;) {
            char *eol;
            while ((eol = c->in.data ? memmem(c->in.data, c->in.len, "\r\n", 2) : NULL) == NULL) {
                if (c->in.len > 1024)
                    return 400;
                int rc = conn_fill(c);
                if (rc < 0)
                    return rc;
            }
            char *e;
            unsigned long long size = strtoull(c->in.data, &e, 16);
            if (e == c->in.data)
                return 400;
            lb_buf_consume(&c->in, (size_t)(eol - c->in.data) + 2);
            if (r->body.len + size > max_body)
                return 413;
            while (c->in.len < size + 2) {
                int rc = conn_fill(c);
                if (rc < 0)
                    return rc;
            }
            if (size == 0) {
                /* no trailers are expected: the final CRLF */
                lb_buf_consume(&c->in, 2);
                break;
            }
            if (lb_buf_append(&r->body, c->in.data, size) < 0)
                return 500;
            lb_buf_consume(&c->in, size + 2);
        }
    } else if (content_length > 0) {
        while (c->in.len < (size_t)content_length) {
            int rc = conn_fill(c);
            if (rc < 0)
                return rc;
        }
        if (lb_buf_append(&r->body, c->in.data, (size_t)content_length) < 0)
            return 500;
        lb_buf_consume(&c->in, (size_t)content_length);
    }
    if (!r->body.data && lb_buf_append(&r->body, "", 0) < 0)
        return 500;
    return 0;
}

static void *
conn_main(void *arg)
{
    conn *c = arg;
    dc_https *s = c->server;
    struct timeval tv = {.tv_sec = IDLE_TIMEOUT_S};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

    c->ssl = SSL_new(s->ctx);
    if (c->ssl && SSL_set_fd(c->ssl, c->fd) == 1 && SSL_accept(c->ssl) == 1) {
        for (;;) {
            dc_req r;
            memset(&r, 0, sizeof r);
            r.c = c;
            int rc = read_request(c, &r);
            if (rc != 0) {
                if (rc > 0)
                    send_simple(c, rc,
                                rc == 413 ? "the server has received a request that is too large"
                                          : "bad request");
                req_clear(&r);
                break;
            }
            s->config.handler(&r, s->config.handler_arg);
            if (!r.responded)
                dc_respond(&r, 500, "text/plain", "no response", 11);
            else if (r.streaming && !r.broken)
                dc_stream_end(&r);
            bool again = r.keep_alive && !r.broken && !atomic_load(&s->stopping);
            req_clear(&r);
            if (!again)
                break;
        }
        SSL_shutdown(c->ssl);
    }
    ERR_clear_error();
    SSL_free(c->ssl);
    lb_buf_free(&c->in);
    pthread_mutex_lock(&s->lock);
    s->conn_fds[c->slot] = -1;
    close(c->fd);
    s->nconns--;
    if (s->nconns == 0)
        pthread_cond_broadcast(&s->drained);
    pthread_mutex_unlock(&s->lock);
    free(c);
    return NULL;
}

static void *
accept_main(void *arg)
{
    dc_https *s = arg;
    while (!atomic_load(&s->stopping)) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (atomic_load(&s->stopping))
                break;
            if (errno == EMFILE || errno == ENFILE) {
                usleep(100000);
                continue;
            }
            break;
        }
        pthread_mutex_lock(&s->lock);
        int slot = -1;
        for (unsigned i = 0; i < s->config.max_conns; i++)
            if (s->conn_fds[i] < 0) {
                slot = (int)i;
                break;
            }
        conn *c = slot >= 0 ? calloc(1, sizeof *c) : NULL;
        if (!c) {
            pthread_mutex_unlock(&s->lock);
            lb_warn("connection refused reason=%s",
                    slot < 0 ? "too many connections" : "no memory");
            close(fd);
            continue;
        }
        c->server = s;
        c->fd = fd;
        c->slot = slot;
        s->conn_fds[slot] = fd;
        s->nconns++;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 1024 * 1024);
        pthread_t t;
        int rc = pthread_create(&t, &attr, conn_main, c);
        pthread_attr_destroy(&attr);
        if (rc != 0) {
            s->conn_fds[slot] = -1;
            s->nconns--;
            close(fd);
            free(c);
        }
        pthread_mutex_unlock(&s->lock);
    }
    return NULL;
}

static int
alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
            unsigned inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    static const unsigned char http11[] = "\x08http/1.1";
    unsigned char *sel;
    if (SSL_select_next_proto(&sel, outlen, http11, sizeof http11 - 1, in, inlen) ==
        OPENSSL_NPN_NEGOTIATED) {
        *out = sel;
        return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

static SSL_CTX *
make_ctx(const char *cert_pem, const char *key_pem)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    BIO *cb = BIO_new_mem_buf(cert_pem, -1);
    BIO *kb = BIO_new_mem_buf(key_pem, -1);
    X509 *cert = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
    EVP_PKEY *key = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
    bool ok = cert && key && SSL_CTX_use_certificate(ctx, cert) == 1 &&
              SSL_CTX_use_PrivateKey(ctx, key) == 1 && SSL_CTX_check_private_key(ctx) == 1;
    X509 *extra;
    while (ok && (extra = PEM_read_bio_X509(cb, NULL, NULL, NULL)) != NULL)
        if (SSL_CTX_add_extra_chain_cert(ctx, extra) != 1) {
            X509_free(extra);
            ok = false;
        }
    ERR_clear_error();
    X509_free(cert);
    EVP_PKEY_free(key);
    BIO_free(cb);
    BIO_free(kb);
    if (!ok) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    return ctx;
}

int
dc_https_start(const dc_https_config *config, dc_https **out)
{
    assert(config->handler);
    dc_https *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->config = *config;
    if (!s->config.max_body)
        s->config.max_body = 3 * 1024 * 1024;
    if (!s->config.max_conns)
        s->config.max_conns = 1024;
    s->conn_fds = malloc(sizeof(int) * s->config.max_conns);
    if (!s->conn_fds) {
        free(s);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < s->config.max_conns; i++)
        s->conn_fds[i] = -1;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->drained, NULL);
    s->ctx = make_ctx(config->cert_pem, config->key_pem);
    if (!s->ctx) {
        free(s->conn_fds);
        free(s);
        return -EINVAL;
    }
    s->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(s->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)config->port)};
    int rc = 0;
    if (inet_pton(AF_INET, config->address ? config->address : "127.0.0.1", &sa.sin_addr) != 1)
        rc = -EINVAL;
    else if (bind(s->listen_fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
             listen(s->listen_fd, 128) < 0)
        rc = -errno;
    socklen_t salen = sizeof sa;
    if (rc == 0 && getsockname(s->listen_fd, (struct sockaddr *)&sa, &salen) < 0)
        rc = -errno;
    if (rc == 0) {
        s->port = ntohs(sa.sin_port);
        rc = -pthread_create(&s->acceptor, NULL, accept_main, s);
    }
    if (rc != 0) {
        close(s->listen_fd);
        SSL_CTX_free(s->ctx);
        free(s->conn_fds);
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int
dc_https_port(const dc_https *s)
{
    return s->port;
}

void
dc_https_stop(dc_https *s)
{
    if (!s)
        return;
    atomic_store(&s->stopping, true);
    shutdown(s->listen_fd, SHUT_RDWR);
    pthread_join(s->acceptor, NULL);
    close(s->listen_fd);
    pthread_mutex_lock(&s->lock);
    for (unsigned i = 0; i < s->config.max_conns; i++)
        if (s->conn_fds[i] >= 0)
            shutdown(s->conn_fds[i], SHUT_RDWR);
    while (s->nconns > 0)
        pthread_cond_wait(&s->drained, &s->lock);
    pthread_mutex_unlock(&s->lock);
    SSL_CTX_free(s->ctx);
    free(s->conn_fds);
    free(s);
}

/* ---- request accessors ---- */

const char *
dc_req_method(const dc_req *r)
{
    return r->method;
}
const char *
dc_req_path(const dc_req *r)
{
    return r->path;
}
const char *
dc_req_rawquery(const dc_req *r)
{
    return r->rawquery;
}

const char *
dc_req_query(const dc_req *r, const char *name)
{
    /* Decoded values live in a small per-thread arena that the next call
     * for the same request may reuse; callers copy what they keep. */
    static __thread char value[8][4096];
    static __thread int next;
    size_t nlen = strlen(name);
    const char *p = r->rawquery;
    while (p && *p) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len >= nlen && strncmp(p, name, nlen) == 0 && (len == nlen || p[nlen] == '=')) {
            char *v = value[next++ % 8];
            size_t vlen = len == nlen ? 0 : len - nlen - 1;
            if (vlen >= sizeof value[0])
                vlen = sizeof value[0] - 1;
            memcpy(v, p + nlen + (len == nlen ? 0 : 1), vlen);
            v[vlen] = '\0';
            url_decode(v, true);
            return v;
        }
        p = amp ? amp + 1 : NULL;
    }
    return NULL;
}

const char *
dc_req_header(const dc_req *r, const char *name)
{
    for (int i = 0; i < r->nheaders; i++)
        if (r->header_names[i] && strcasecmp(r->header_names[i], name) == 0)
            return r->header_values[i];
    return NULL;
}

const char *
dc_req_body(const dc_req *r, size_t *len)
{
    *len = r->body.len;
    return r->body.data ? r->body.data : "";
}

int
dc_req_add_header(dc_req *r, const char *name, const char *value)
{
    for (const char *p = value; *p; p++)
        if (*p == '\r' || *p == '\n')
            return -EINVAL;
    return lb_buf_printf(&r->extra_headers, "%s: %s\r\n", name, value);
}

bool
dc_req_responded(const dc_req *r)
{
    return r->responded;
}

/* ---- responses ---- */

int
dc_respond(dc_req *r, int status, const char *content_type, const char *body, size_t len)
{
    if (r->responded)
        return -EALREADY;
    r->responded = true;
    lb_buf out = LB_BUF_INIT;
    lb_buf_printf(&out, "HTTP/1.1 %d %s\r\n", status, status_text(status));
    if (content_type)
        lb_buf_printf(&out, "Content-Type: %s\r\n", content_type);
    if (r->extra_headers.data)
        lb_buf_append(&out, r->extra_headers.data, r->extra_headers.len);
    lb_buf_printf(&out, "Cache-Control: no-cache, private\r\nContent-Length: %zu\r\n%s\r\n", len,
                  r->keep_alive ? "" : "Connection: close\r\n");
    if (strcmp(r->method, "HEAD") != 0)
        lb_buf_append(&out, body, len);
    int rc = out.data ? conn_write(r->c, out.data, out.len) : -ENOMEM;
    lb_buf_free(&out);
    if (rc < 0)
        r->broken = true;
    return rc;
}

int
dc_stream_begin(dc_req *r, int status, const char *content_type)
{
    if (r->responded)
        return -EALREADY;
    r->responded = true;
    r->streaming = true;
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nCache-Control: no-cache, private\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n",
                     status, status_text(status), content_type);
    int rc = conn_write(r->c, head, (size_t)n);
    if (rc < 0)
        r->broken = true;
    return rc;
}

int
dc_stream_write(dc_req *r, const char *bytes, size_t len)
{
    assert(r->streaming);
    if (r->broken)
        return -EPIPE;
    if (len == 0)
        return 0;
    lb_buf out = LB_BUF_INIT;
    lb_buf_printf(&out, "%zx\r\n", len);
    lb_buf_append(&out, bytes, len);
    lb_buf_append(&out, "\r\n", 2);
    int rc = out.data ? conn_write(r->c, out.data, out.len) : -ENOMEM;
    lb_buf_free(&out);
    if (rc < 0)
        r->broken = true;
    return rc;
}

int
dc_stream_end(dc_req *r)
{
    if (!r->streaming || r->broken)
        return -EPIPE;
    r->streaming = false;
    int rc = conn_write(r->c, "0\r\n\r\n", 5);
    if (rc < 0)
        r->broken = true;
    return rc;
}

bool
dc_req_client_gone(dc_req *r, int timeout_ms)
{
    if (r->broken || atomic_load(&r->c->server->stopping))
        return true;
    struct pollfd p = {.fd = r->c->fd, .events = POLLIN | POLLRDHUP};
    int n = poll(&p, 1, timeout_ms);
    if (n > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))) {
        r->broken = true;
        return true;
    }
    if (n > 0) /* the client sent bytes mid-stream; nothing to do with them but wait */
        usleep((useconds_t)timeout_ms * 1000);
    return atomic_load(&r->c->server->stopping);
}
