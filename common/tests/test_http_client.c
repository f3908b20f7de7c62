/*
 * test_http_client.c: retries (503 twice then 200, Retry-After, exhausted
 * attempts), no retry of 4xx or of POST unless asked, timeouts against a
 * server that never answers, clear errors for closed connections and dead
 * peers, streaming download and upload, connection reuse, and refusal of
 * malformed requests.
 *
 * The peer is a tiny HTTP/1.1 server on a thread of this process, on a free
 * loopback port, written on raw sockets so that it can misbehave on cue.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
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

#include "errors.h"
#include "http_client.h"
#include "log.h"
#include "testutil.h"

/* --- the test server --- */

typedef enum srv_mode {
    SRV_SCRIPT, /* fail_status to the first fail_first requests, then 200 "ok" */
    SRV_SILENT, /* read the request, never answer */
    SRV_CLOSE,  /* read the request, close the connection */
    SRV_ECHO,   /* keep the request body, answer 200 "got <n>" */
    SRV_BIG,    /* answer 200 with big_size bytes of pattern */
} srv_mode;

typedef struct srv {
    int lfd;
    int port;
    pthread_t thread;
    atomic_int stop;
    srv_mode mode;
    int fail_first;
    int fail_status;
    const char *extra_header; /* "Name: value\r\n" added to failure answers */
    size_t big_size;
    atomic_int requests;
    atomic_int connections;
    pthread_mutex_t mu;
    char last_method[16];
    lb_buf last_body;
    bool last_chunked;
} srv;

static unsigned char
pattern_byte(uint64_t i)
{
    return (unsigned char)((i * 131 + (i >> 9)) & 0xff);
}

/* Wait for fd to be readable; false on stop. */
static bool
wait_readable(srv *s, int fd)
{
    while (!atomic_load(&s->stop)) {
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, 50);
        if (r > 0)
            return true;
        if (r < 0 && errno != EINTR)
            return false;
    }
    return false;
}

/* Read into in until it holds at least need bytes. false on EOF or stop. */
static bool
fill(srv *s, int fd, lb_buf *in, size_t need)
{
    while (in->len < need) {
        if (!wait_readable(s, fd))
            return false;
        char chunk[65536];
        ssize_t r = recv(fd, chunk, sizeof(chunk), 0);
        if (r <= 0)
            return false;
        lb_buf_append(in, chunk, (size_t)r);
    }
    return true;
}

/* Read one request; its body into body. false when the peer is gone. */
static bool
read_request(srv *s, int fd, lb_buf *in, char *method, lb_buf *body, bool *chunked)
{
    char *end;
    while (!(in->data && (end = strstr(in->data, "\r\n\r\n")) != NULL))
        if (!fill(s, fd, in, in->len + 1))
            return false;
    size_t hlen = (size_t)(end - in->data) + 4;
    sscanf(in->data, "%15s", method);
    long clen = 0;
    *chunked = false;
    for (char *line = strstr(in->data, "\r\n") + 2; line < end; line = strstr(line, "\r\n") + 2) {
        if (strncasecmp(line, "Content-Length:", 15) == 0)
            clen = strtol(line + 15, NULL, 10);
        if (strncasecmp(line, "Transfer-Encoding:", 18) == 0 && strstr(line, "chunked") &&
            strstr(line, "chunked") < strstr(line, "\r\n"))
            *chunked = true;
    }
    lb_buf_consume(in, hlen);
    lb_buf_reset(body);
    if (!*chunked) {
        if (!fill(s, fd, in, (size_t)clen))
            return false;
        lb_buf_append(body, in->data, (size_t)clen);
        lb_buf_consume(in, (size_t)clen);
        return true;
    }
    for (;;) {
        char *eol;
        while (!(in->len && (eol = memmem(in->data, in->len, "\r\n", 2)) != NULL))
            if (!fill(s, fd, in, in->len + 1))
                return false;
        size_t size = strtoul(in->data, NULL, 16);
        lb_buf_consume(in, (size_t)(eol - in->data) + 2);
        if (!fill(s, fd, in, size + 2))
            return false;
        lb_buf_append(body, in->data, size);
        lb_buf_consume(in, size + 2);
        if (size == 0)
            return true; /* no trailers from libcurl */
    }
}

static void
send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        c += w;
        n -= (size_t)w;
    }
}

static void
answer(int fd, const char *method, int status, const char *extra, const char *body)
{
    if (strcmp(method, "HEAD") == 0)
        body = ""; /* the length is announced, the body never sent */
    char head[512];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nX-Test: yes\r\n%s\r\n", status,
                     strcmp(method, "HEAD") == 0 ? (size_t)2 : strlen(body), extra ? extra : "");
    send_all(fd, head, (size_t)n);
    send_all(fd, body, strlen(body));
}

static void
serve_connection(srv *s, int fd)
{
    lb_buf in = LB_BUF_INIT, body = LB_BUF_INIT;
    char method[16] = "";
    bool chunked = false;
    while (!atomic_load(&s->stop) && read_request(s, fd, &in, method, &body, &chunked)) {
        int n = atomic_fetch_add(&s->requests, 1) + 1;
        pthread_mutex_lock(&s->mu);
        snprintf(s->last_method, sizeof(s->last_method), "%s", method);
        lb_buf_reset(&s->last_body);
        lb_buf_append(&s->last_body, body.data ? body.data : "", body.len);
        s->last_chunked = chunked;
        pthread_mutex_unlock(&s->mu);
        switch (s->mode) {
        case SRV_SCRIPT:
            if (n <= s->fail_first)
                answer(fd, method, s->fail_status, s->extra_header, "fail");
            else
                answer(fd, method, 200, NULL, "ok");
            break;
        case SRV_SILENT:
            while (wait_readable(s, fd)) {
                char c;
                if (recv(fd, &c, 1, 0) <= 0)
                    break;
            }
            goto out;
        case SRV_CLOSE:
            goto out;
        case SRV_ECHO: {
            char msg[64];
            snprintf(msg, sizeof(msg), "got %zu", body.len);
            answer(fd, method, 200, NULL, msg);
            break;
        }
        case SRV_BIG: {
            char head[128];
            int hn = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n",
                              s->big_size);
            send_all(fd, head, (size_t)hn);
            unsigned char chunk[65536];
            for (size_t off = 0; off < s->big_size;) {
                size_t k = s->big_size - off < sizeof(chunk) ? s->big_size - off : sizeof(chunk);
                for (size_t i = 0; i < k; i++)
                    chunk[i] = pattern_byte(off + i);
                send_all(fd, chunk, k);
                off += k;
            }
            break;
        }
        }
    }
out:
    close(fd);
    lb_buf_free(&in);
    lb_buf_free(&body);
}

static void *
srv_main(void *arg)
{
    srv *s = arg;
    while (wait_readable(s, s->lfd)) {
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        atomic_fetch_add(&s->connections, 1);
        serve_connection(s, fd);
    }
    return NULL;
}

static srv *
srv_start(srv_mode mode)
{
    srv *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    s->mode = mode;
    s->fail_status = 503;
    pthread_mutex_init(&s->mu, NULL);
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s->lfd >= 0);
    int one = 1;
    setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&a, &len), 0);
    assert_int_equal(listen(s->lfd, 16), 0);
    s->port = ntohs(a.sin_port);
    return s;
}

static void
srv_run(srv *s)
{
    assert_int_equal(pthread_create(&s->thread, NULL, srv_main, s), 0);
}

static void
srv_stop(srv *s)
{
    atomic_store(&s->stop, 1);
    pthread_join(s->thread, NULL);
    close(s->lfd);
    lb_buf_free(&s->last_body);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static char *
srv_url(const srv *s, const char *path)
{
    static char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", s->port, path);
    return url;
}

static long
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static lb_http_client *
new_client(long timeout_ms, int attempts)
{
    lb_http_options o = {.connect_timeout_ms = 1000,
                         .timeout_ms = timeout_ms,
                         .max_attempts = attempts,
                         .retry_base_ms = 10,
                         .retry_max_ms = 40};
    lb_http_client *c = NULL;
    assert_int_equal(lb_http_client_new(&o, &c), 0);
    return c;
}

static int
setup(void **state)
{
    (void)state;
    lb_log_set_level(LB_LOG_ERROR); /* retries warn; keep the output readable */
    return 0;
}

/* --- tests --- */

static void
test_retry_503_twice_then_200(void **state)
{
    (void)state;
    srv *s = srv_start(SRV_SCRIPT);
    s->fail_first = 2;
    srv_run(s);
    lb_http_client *c = new_client(5000, 4);
    lb_buf body = LB_BUF_INIT;
    lb_buf_append_str(&body, "keep:");
    lb_http_call req = {.method = "GET", .url = srv_url(s, "/x"), .response_body = &body};
    lb_http_result resp = LB_HTTP_RESULT_INIT;
    assert_int_equal(lb_http_do(c, &req, &resp), 0);
    assert_int_equal(resp.status, 200);
    assert_int_equal(resp.attempts, 3);
    assert_int_equal(atomic_load(&s->requests), 3);
    /* Only the 200's body reached the sink, after what it held before. */
    assert_string_equal(body.data, "keep:ok");
    assert_string_equal(lb_http_result_header(&resp, "X-TEST"), "yes");
    assert_string_equal(lb_http_result_header(&resp, "content-length"), "2");
    assert_null(lb_http_result_header(&resp, "x-missing"));
    lb_buf_free(&body);
    lb_http_result_free(&resp);
    lb_http_client_free(c);
    srv_stop(s);
}

static void
test_retries_exhausted_return_last_status(void **state)
{
    (void)state;
    srv *s = srv_start(SRV_SCRIPT);
    s->fail_first = 100;
    s->fail_status = 500;
    srv_run(s);
    lb_http_client *c = new_client(5000, 3);
    lb_buf body = LB_BUF_INIT;
    lb_http_call req = {.method = "GET", .url = srv_url(s, "/x"), .response_body = &body};
    lb_http_result resp = LB_HTTP_RESULT_INIT;
    assert_int_equal(lb_http_do(c, &req, &resp), 0);
    assert_int_equal(resp.status, 500);
    assert_int_equal(resp.attempts, 3);
    assert_int_equal(atomic_load(&s->requests), 3);
    assert_int_equal(body.len, 0); /* the error page is not the object */
    assert_string_equal(resp.error_body.data, "fail");
    assert_non_null(strstr(lb_http_client_error(c), "HTTP 500 after 3 attempts"));
    lb_buf_free(&body);
    lb_http_result_free(&resp);
    lb_http_client_free(c);
    srv_stop(s);
}

static void
test_retry_after_is_honoured(void **state)
{
    (void)state;
    srv *s = srv_start(SRV_SCRIPT);
    s->fail_first = 1;
    s->fail_status = 429;
    s->extra_header = "Retry-After: 1\r\n";
    srv_run(s);
    lb_http_options o = {.max_attempts = 3, .retry_base_ms = 10, .retry_max_ms = 3000};
    lb_http_client *c = NULL;
    assert_int_equal(lb_http_client_new(&o, &c), 0);
    lb_http_call req = {.method = "GET", .url = srv_url(s, "/x")};
    lb_http_result resp = LB_HTTP_RESULT_INIT;
    long t0 = now_ms();
    assert_int_equal(lb_http_do(c, &req, &resp), 0);
    long took = now_ms() - t0;
    assert_int_equal(resp.status, 200);
    assert_int_equal(resp.attempts, 2);
    assert_true(took >= 950);
    lb_http_result_free(&resp);
    lb_http_client_free(c);
    srv_stop(s);
}

static void
test_4xx_is_not_retried(void **state)
{
    (void)state;
    int statuses[] = {400, 403, 404, 501};
    for (int i = 0; i < 4; i++) {
        srv *s = srv_start(SRV_SCRIPT);
        s->fail_first = 100;
        s->fail_status = statuses[i];
        srv_run(s);
        lb_http_client *c = new_client(5000, 4);
        lb_http_call req = {.method = "GET", .url = srv_url(s, "/x")};
        lb_http_result resp = LB_HTTP_RESULT_INIT;
        assert_int_equal(lb_http_do(c, &req, &resp), 0);
        assert_int_equal(resp.status, statuses[i]);
        assert_int_equal(resp.attempts, 1);
        assert_int_equal(atomic_load(&s->requests), 1);
        lb_http_result_free(&resp);
        lb_http_client_free(c);
        srv_stop(s);
    }
}

static void
test_post_is_retried_only_when_asked(void **state)
{
    (void)state;
    srv *s = srv_start(SRV_SCRIPT);
    s->fail_first = 100;
    srv_run(s);
    lb_http_client *c = new_client(5000, 3);
    lb_http_call req = {.method = "POST", .url = srv_url(s, "/x"), .body = "a=1", .body_len = 3};
    lb_http_result resp = LB_HTTP_RESULT_INIT;
    assert_int_equal(lb_http_do(c, &req, &resp), 0);
    assert_int_equal(resp.status, 503);
    assert_int_equal(resp.attempts, 1);
    assert_int_equal(atomic_load(&s->requests), 1);
    req.retry_non_idempotent = true;
    assert_int_equal(lb_http_do(c, &req, &resp), 0);
    assert_int_equal(resp.attempts, 3);
    assert_int_equal(atomic_load(&s->requests), 4);
    pthread_mutex_lock(&s->mu);
    assert_string_equal(s->last_method, "POST");
    assert_string_equal(s->last_body.data, "a=1");
    pthread_mutex_unlock(&s->mu);
    lb_http_result_free(&resp);
    lb_http_client_free(c);
    srv_stop(s);
}

static void
test_silent_server_times_out(void **state)
{
    (void)state;
    srv *s = srv_start(SRV_SILENT);
    srv_run(s);
    lb_http_client *c = new_client(300, 2);
    lb_buf body = LB_BUF_INIT;
    lb_http_call req = {.method = "GET", .url = srv_url(s, "/x"), .response_body = &body};
    lb_http_result resp = LB_HTTP_RESULT_INIT;
    long t0 = now_ms();
    int rc = lb_http_do(c, &req, &resp);
    long took = now_ms() - t0;
    assert_int_equal(rc, LB_ETIMEOUT);
    assert_int_equal(resp.attempts, 2);
    assert_int_equal(resp.status, 0);
    assert_true(took >= 600);  /* two full attempts */
    assert_true(took < 2500);  /* and no more */
    assert_non_null(strstr(lb_http_client_error(c), "after 2 attempts"));
    lb_buf_free(&body);
    lb_http_result_free(&resp);
    lb_http_client_free(c);
    srv_stop(s);
}

/* Without a total timeout, a transfer that stops moving is abandoned. */
static void
test_stalled_transfer_times_out(void **state)
{
    (void)state;
    srv *s = srv_start(SRV_SILENT);
    srv_run(s);
    lb_http_options o = {.timeout_ms = -1, .stall_timeout_ms = 1000, .max_attempts = 1};
    lb_http_client *c = NULL;
    assert_int_equal(lb_http_client_new(&o, &c), 0);
    lb_http_call req = {.method = "GET", .url = srv_url(s, "/x")};
    lb_http_result resp = LB_HTTP_RESULT_INIT;
    long t0 = now_ms();
    assert_int_equal(lb_http_do(c, &req, &resp), LB_ETIMEOUT);
    long took = now_ms() - t0;
    assert_true(took >= 900 && took < 3500);
    assert_int_equal(resp.attempts, 1);
    lb_http_result_free(&resp);
    lb_http_client_free(c);
    srv_stop(s);
}

static void
test_closed_connection_is_a_clear_error(void **state)
{
    (void)state;
    srv *s = srv_start(SRV_CLOSE);
    srv_run(s);
    lb_http_client *c = new_client(5000, 3);
    lb_http_call req = {.method = "GET", .url = srv_url(s, "/x")};
    lb_http_result resp = LB_HTTP_RESULT_INIT;
    assert_int_equal(lb_http_do(c, &req, &resp), LB_EHTTP);
    assert_int_equal(resp.attempts, 3);
    assert_int_equal(atomic_load(&s->requests), 3);
    const char *err = lb_http_client_error(c);
    assert_non_null(strstr(err, "GET http://127.0.0.1:"));
    assert_non_null(strstr(err, "nothing")); /* libcurl: "Server returned nothing" */
    lb_http_result_free(&resp);
    lb_http_client_free(c);
    srv_stop(s);
}

static void
test_dead_peer_is_refused(void **state)
{
    (void)state;
    int port = tu_free_port();
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", port);
    lb_http_client *c = new_client(5000, 2);
    lb_http_call req = {.method = "GET", .url = url};
    lb_http_result resp = LB_HTTP_RESULT_INIT;
    long t0 = now_ms();
    assert_int_equal(lb_http_do(c, &req, &resp), LB_EHTTP);
    assert_true(now_ms() - t0 < 2000);
    assert_int_equal(resp.attempts, 2);
    assert_non_null(strstr(lb_http_client_error(c), "onnect"));
    lb_http_result_free(&resp);
    lb_http_client_free(c);
}

typedef struct sink {
    uint64_t n;
    bool mismatch;
    int fail_with;
} sink;

static int
check_pattern(void *arg, const char *bytes, size_t n)
{
    sink *k = arg;
    if (k->fail_with)
        return k->fail_with;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)bytes[i] != pattern_byte(k->n + i))
            k->mismatch = true;
    k->n += n;
    return 0;
}

static void
test_streaming_download(void **state)
{
    (void)state;
    srv *s = srv_start(SRV_BIG);
    s->big_size = 5 * 1024 * 1024 + 17;
    srv_run(s);
    lb_http_client *c = new_client(10000, 2);
    sink k = {0};
    lb_http_call req = {
        .method = "GET", .url = srv_url(s, "/big"), .response_write = check_pattern, .response_arg = &k};
    lb_http_result resp = LB_HTTP_RESULT_INIT;
    assert_int_equal(lb_http_do(c, &req, &resp), 0);
    assert_int_equal(resp.status, 200);
    assert_int_equal(k.n, s->big_size);
    assert_false(k.mismatch);

    /* A sink that fails aborts the transfer with its own error, once. */
    sink bad = {.fail_with = -ENOSPC};
    req.response_arg = &bad;
    assert_int_equal(lb_http_do(c, &req, &resp), -ENOSPC);
    assert_int_equal(resp.attempts, 1);
    lb_http_result_free(&resp);
    lb_http_client_free(c);
    srv_stop(s);
}

static void
test_response_body_bound(void **state)
{
    (void)state;
    srv *s = srv_start(SRV_BIG);
    s->big_size = 300 * 1000;
    srv_run(s);
    lb_http_client *c = new_client(10000, 3);
    lb_buf body = LB_BUF_INIT;
    lb_buf_append_str(&body, "keep");
    /* more than the caller will hold: refused once, not retried, and the
     * buffer is back to what it held */
    lb_http_call req = {
        .method = "GET", .url = srv_url(s, "/big"), .response_body = &body, .max_response = 1000};
    lb_http_result resp = LB_HTTP_RESULT_INIT;
    assert_int_equal(lb_http_do(c, &req, &resp), LB_ETOOBIG);
    assert_int_equal(resp.attempts, 1);
    assert_true(body.len <= 4 + 1000);
    /* exactly the bound, or no bound: the whole body */
    lb_buf_reset(&body);
    req.max_response = s->big_size;
    assert_int_equal(lb_http_do(c, &req, &resp), 0);
    assert_int_equal(body.len, s->big_size);
    lb_buf_reset(&body);
    req.max_response = 0;
    assert_int_equal(lb_http_do(c, &req, &resp), 0);
    assert_int_equal(body.len, s->big_size);
    lb_buf_free(&body);
    lb_http_result_free(&resp);
    lb_http_client_free(c);
    srv_stop(s);
}

typedef struct source {
    uint64_t off, size;
    int rewinds;
} source;

static ssize_t
read_pattern(void *arg, char *dst, size_t cap)
{
    source *src = arg;
    size_t n = src->size - src->off < cap ? (size_t)(src->size - src->off) : cap;
    for (size_t i = 0; i < n; i++)
        dst[i] = (char)pattern_byte(src->off + i);
    src->off += n;
    return (ssize_t)n;
}

static int
rewind_pattern(void *arg)
{
    source *src = arg;
    src->off = 0;
    src->rewinds++;
    return 0;
}

static void
assert_server_got_pattern(srv *s, uint64_t size)
{
    pthread_mutex_lock(&s->mu);
    assert_int_equal(s->last_body.len, size);
    for (uint64_t i = 0; i < size; i++)
        if ((unsigned char)s->last_body.data[i] != pattern_byte(i))
            fail_msg("uploaded byte %llu differs", (unsigned long long)i);
    pthread_mutex_unlock(&s->mu);
}

static void
test_streaming_upload(void **state)
{
    (void)state;
    srv *s = srv_start(SRV_ECHO);
    srv_run(s);
    lb_http_client *c = new_client(10000, 2);
    uint64_t size = 3 * 1024 * 1024 + 5;
    lb_buf body = LB_BUF_INIT;
    for (int known = 0; known < 2; known++) {
        source src = {0, size, 0};
        lb_buf_reset(&body);
        lb_http_call req = {.method = "PUT",
                               .url = srv_url(s, "/up"),
                               .body_read = read_pattern,
                               .body_arg = &src,
                               .body_size = known ? (int64_t)size : -1,
                               .response_body = &body};
        lb_http_result resp = LB_HTTP_RESULT_INIT;
        assert_int_equal(lb_http_do(c, &req, &resp), 0);
        assert_int_equal(resp.status, 200);
        char want[64];
        snprintf(want, sizeof(want), "got %llu", (unsigned long long)size);
        assert_string_equal(body.data, want);
        assert_server_got_pattern(s, size);
        pthread_mutex_lock(&s->mu);
        assert_int_equal(s->last_chunked, !known); /* unknown size goes chunked */
        pthread_mutex_unlock(&s->mu);
        lb_http_result_free(&resp);
    }
    lb_buf_free(&body);
    lb_http_client_free(c);
    srv_stop(s);
}

/* A streamed body is resent only if it can be rewound. */
static void
test_streamed_upload_retry_needs_rewind(void **state)
{
    (void)state;
    srv *s = srv_start(SRV_SCRIPT);
    s->fail_first = 1;
    srv_run(s);
    lb_http_client *c = new_client(10000, 3);
    uint64_t size = 200000;
    source src = {0, size, 0};
    lb_http_call req = {.method = "PUT",
                           .url = srv_url(s, "/up"),
                           .body_read = read_pattern,
                           .body_arg = &src,
                           .body_size = (int64_t)size};
    lb_http_result resp = LB_HTTP_RESULT_INIT;
    assert_int_equal(lb_http_do(c, &req, &resp), 0);
    assert_int_equal(resp.status, 503);
    assert_int_equal(resp.attempts, 1);

    /* With a rewind, the same 503-then-200 sequence succeeds. */
    atomic_store(&s->requests, 0);
    src = (source){0, size, 0};
    req.body_rewind = rewind_pattern;
    assert_int_equal(lb_http_do(c, &req, &resp), 0);
    assert_int_equal(resp.status, 200);
    assert_int_equal(resp.attempts, 2);
    assert_int_equal(src.rewinds, 1);
    assert_server_got_pattern(s, size);
    lb_http_result_free(&resp);
    lb_http_client_free(c);
    srv_stop(s);
}

static void
test_connection_is_reused(void **state)
{
    (void)state;
    srv *s = srv_start(SRV_SCRIPT);
    srv_run(s);
    lb_http_client *c = new_client(5000, 1);
    lb_http_result resp = LB_HTTP_RESULT_INIT;
    for (int i = 0; i < 5; i++) {
        lb_http_call req = {.method = i % 2 ? "HEAD" : "GET", .url = srv_url(s, "/x")};
        int rc = lb_http_do(c, &req, &resp);
        if (rc != 0)
            fail_msg("request %d: %s", i, lb_http_client_error(c));
        assert_int_equal(resp.status, 200);
    }
    lb_http_call del = {.method = "DELETE", .url = srv_url(s, "/x")};
    assert_int_equal(lb_http_do(c, &del, &resp), 0);
    assert_int_equal(atomic_load(&s->requests), 6);
    assert_int_equal(atomic_load(&s->connections), 1);
    lb_http_result_free(&resp);
    lb_http_client_free(c);
    srv_stop(s);
}

static void
test_malformed_requests_are_refused(void **state)
{
    (void)state;
    lb_http_client *c = new_client(1000, 3);
    lb_http_result resp = LB_HTTP_RESULT_INIT;
    const char *inject[] = {"X-A: 1\r\nX-Injected: 2"};
    const char *nocolon[] = {"X-A 1"};
    lb_http_call bad[] = {
        {.method = "get", .url = "http://127.0.0.1:1/"},
        {.method = "GET", .url = NULL},
        {.method = "GET", .url = "http://127.0.0.1:1/", .headers = inject, .nheaders = 1},
        {.method = "GET", .url = "http://127.0.0.1:1/", .headers = nocolon, .nheaders = 1},
        {.method = "HEAD", .url = "http://127.0.0.1:1/", .body = "x", .body_len = 1},
        {.method = "GET", .url = "ftp://127.0.0.1:1/"},
        {.method = "GET", .url = "not a url"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = lb_http_do(c, &bad[i], &resp);
        if (rc != -EINVAL)
            fail_msg("request %zu: got %s, want EINVAL", i, lb_err_name(rc));
        assert_true(resp.attempts <= 1);
        assert_true(lb_http_client_error(c)[0] != '\0');
    }
    lb_http_result_free(&resp);
    lb_http_client_free(c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retry_503_twice_then_200),
        cmocka_unit_test(test_retries_exhausted_return_last_status),
        cmocka_unit_test(test_retry_after_is_honoured),
        cmocka_unit_test(test_4xx_is_not_retried),
        cmocka_unit_test(test_post_is_retried_only_when_asked),
        cmocka_unit_test(test_silent_server_times_out),
        cmocka_unit_test(test_stalled_transfer_times_out),
        cmocka_unit_test(test_closed_connection_is_a_clear_error),
        cmocka_unit_test(test_dead_peer_is_refused),
        cmocka_unit_test(test_streaming_download),
        cmocka_unit_test(test_response_body_bound),
        cmocka_unit_test(test_streaming_upload),
        cmocka_unit_test(test_streamed_upload_retry_needs_rewind),
        cmocka_unit_test(test_connection_is_reused),
        cmocka_unit_test(test_malformed_requests_are_refused),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
