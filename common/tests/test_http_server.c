/* test_http_server.c: routing, error answers, body limits, streaming and
 * file responses, built-in endpoints, concurrency, hostile clients and
 * clean shutdown of the HTTP server, driven with libcurl and raw sockets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
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

#include "buf.h"
#include "errors.h"
#include "http_server.h"
#include "json.h"
#include "metrics.h"
#include "testutil.h"

/* ---- client side ---- */

typedef struct response {
    CURLcode rc;
    long status;
    lb_buf body;
    lb_buf headers;
} response;

static size_t
collect(char *ptr, size_t size, size_t n, void *userdata)
{
    lb_buf_append(userdata, ptr, size * n);
    return size * n;
}

static void
response_free(response *r)
{
    lb_buf_free(&r->body);
    lb_buf_free(&r->headers);
}

/* One request on handle h (or a fresh one). extra: one header line or NULL. */
static void
http_on(CURL *h, const char *method, const char *url, const void *body, long len, const char *extra,
        response *r)
{
    memset(r, 0, sizeof(*r));
    bool own = !h;
    if (own)
        h = curl_easy_init();
    assert_non_null(h);
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &r->headers);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    else
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, len);
    }
    struct curl_slist *hdrs = NULL;
    if (extra) {
        hdrs = curl_slist_append(hdrs, extra);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    }
    r->rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hdrs);
    if (own)
        curl_easy_cleanup(h);
}

static void
http(const char *method, const char *url, const char *body, const char *extra, response *r)
{
    http_on(NULL, method, url, body, body ? (long)strlen(body) : 0, extra, r);
}

/* The value of response header name (case-insensitive), or NULL. Static buffer. */
static const char *
header_value(const response *r, const char *name)
{
    static char value[512];
    const char *p = r->headers.data;
    size_t nlen = strlen(name);
    while (p && *p) {
        const char *eol = strstr(p, "\r\n");
        if (!eol)
            break;
        if (strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            const char *v = p + nlen + 1;
            while (*v == ' ')
                v++;
            snprintf(value, sizeof(value), "%.*s", (int)(eol - v), v);
            return value;
        }
        p = eol + 2;
    }
    return NULL;
}

/* The "error" string of a JSON error body; asserts that the body is one. */
static char *
error_message(const response *r)
{
    static char msg[512];
    json_error_t jerr;
    assert_non_null(r->body.data);
    json_t *v = json_loadb(r->body.data, r->body.len, 0, &jerr);
    assert_non_null(v);
    const char *s = json_string_value(json_object_get(v, "error"));
    assert_non_null(s);
    snprintf(msg, sizeof(msg), "%s", s);
    json_decref(v);
    const char *ct = header_value(r, "Content-Type");
    assert_non_null(ct);
    assert_string_equal(ct, "application/json");
    return msg;
}

static int
raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Read until the peer closes or timeout_ms passes; appends to out. */
static void
raw_read(int fd, lb_buf *out, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char chunk[4096];
    while (poll(&p, 1, timeout_ms) == 1) {
        ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
        if (n <= 0)
            break;
        lb_buf_append(out, chunk, (size_t)n);
    }
}

static void
raw_send(int fd, const void *bytes, size_t n)
{
    /* the server may close early on bad input; that is fine */
    (void)send(fd, bytes, n, MSG_NOSIGNAL);
}

/* ---- the server under test ---- */

typedef struct fixture {
    lb_metrics *metrics;
    lb_http_server *server;
    char *dir;
    char file_path[512];
    char base[64];
    int port;
} fixture;

static atomic_int streams_done;
static atomic_int slow_started;

static unsigned char
pattern_byte(uint64_t off)
{
    uint64_t x = (off + 1) * 0x9E3779B97F4A7C15ull;
    return (unsigned char)(x >> 56);
}

static int
h_echo(lb_http_request *req, void *arg)
{
    (void)arg;
    const char *q = lb_http_query(req, "q");
    const char *flag = lb_http_query(req, "flag");
    const char *hdr = lb_http_header(req, "x-test");
    json_t *o =
        json_pack("{s:s,s:s,s:s,s:s,s:s?,s:s?,s:s?,s:b}", "tenant_id",
                  lb_http_param(req, "tenant_id"), "timeline_id", lb_http_param(req, "timeline_id"),
                  "route", lb_http_route(req), "path", lb_http_path(req), "q", q, "flag", flag,
                  "header", hdr, "no_such_param", lb_http_param(req, "nope") != NULL);
    return lb_json_respond(req, 200, o);
}

static int
h_tenant(lb_http_request *req, void *arg)
{
    return lb_http_respond_text(req, 200, "%s %s", (const char *)arg,
                                lb_http_param(req, "tenant_id"));
}

static int
h_list(lb_http_request *req, void *arg)
{
    (void)arg;
    return lb_http_respond_text(req, 200, "list");
}

static int
h_create(lb_http_request *req, void *arg)
{
    (void)arg;
    lb_json_error err = LB_JSON_ERROR_INIT;
    json_t *body = NULL;
    char tenant[LB_ID_STRLEN], timeline[LB_ID_STRLEN];
    lb_lsn lsn = 0;
    bool read_only = true;
    int64_t pg_version = 0;
    lb_json_param_id(req, "tenant_id", tenant, &err);
    lb_json_parse_request(req, &body, &err);
    lb_json_req_id(body, "timeline_id", timeline, &err);
    lb_json_req_lsn(body, "start_lsn", &lsn, &err);
    lb_json_opt_bool(body, "read_only", false, &read_only, &err);
    lb_json_opt_int64(body, "pg_version", 15, &pg_version, &err);
    if (err.failed) {
        json_decref(body);
        return lb_json_respond_bad_request(req, &err);
    }
    json_decref(body);
    return lb_json_respond(req, 201,
                           json_pack("{s:s,s:s,s:o,s:b,s:I}", "tenant_id", tenant, "timeline_id",
                                     timeline, "start_lsn", lb_json_lsn(lsn), "read_only",
                                     read_only, "pg_version", (json_int_t)pg_version));
}

static int
h_upload(lb_http_request *req, void *arg)
{
    (void)arg;
    size_t len;
    const char *body = lb_http_body(req, &len);
    if (body[len] != '\0')
        return -EINVAL;
    lb_http_add_header(req, "X-Body-Length", "seen");
    return lb_http_respond(req, 200, "application/octet-stream", body, len);
}

typedef struct stream_state {
    uint64_t size;
    int64_t fail_at; /* -1: never */
    int delay_us;
} stream_state;

static ssize_t
produce_pattern(void *arg, uint64_t offset, char *buf, size_t cap)
{
    stream_state *st = arg;
    if (st->fail_at >= 0 && offset >= (uint64_t)st->fail_at)
        return -EIO;
    if (offset >= st->size)
        return 0;
    if (st->delay_us)
        usleep((useconds_t)st->delay_us);
    size_t n = cap;
    if (n > st->size - offset)
        n = (size_t)(st->size - offset);
    if (n > 10000 + (size_t)(offset % 777)) /* odd-sized pieces exercise offsets */
        n = 10000 + (size_t)(offset % 777);
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)pattern_byte(offset + i);
    return (ssize_t)n;
}

static void
stream_done(void *arg)
{
    free(arg);
    atomic_fetch_add(&streams_done, 1);
}

static int
h_stream(lb_http_request *req, void *arg)
{
    (void)arg;
    stream_state *st = malloc(sizeof(*st));
    if (!st)
        return -ENOMEM;
    const char *size = lb_http_query(req, "size");
    const char *fail = lb_http_query(req, "fail_at");
    const char *delay = lb_http_query(req, "delay_us");
    st->size = size ? strtoull(size, NULL, 10) : 0;
    st->fail_at = fail ? strtoll(fail, NULL, 10) : -1;
    st->delay_us = delay ? atoi(delay) : 0;
    if (delay)
        atomic_fetch_add(&slow_started, 1);
    int64_t length = lb_http_query(req, "known") ? (int64_t)st->size : -1;
    return lb_http_respond_stream(req, 200, "application/octet-stream", length, produce_pattern,
                                  stream_done, st);
}

static int
h_file(lb_http_request *req, void *arg)
{
    fixture *f = arg;
    int fd = open(f->file_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    uint64_t off = strtoull(lb_http_query(req, "offset"), NULL, 10);
    uint64_t len = strtoull(lb_http_query(req, "length"), NULL, 10);
    int rc = lb_http_respond_fd(req, 200, "application/octet-stream", fd, off, len);
    if (rc == -EINVAL)
        return lb_http_respond_error(req, 416, "range %llu+%llu is outside the file",
                                     (unsigned long long)off, (unsigned long long)len);
    return rc;
}

static int
h_error(lb_http_request *req, void *arg)
{
    (void)arg;
    const char *kind = lb_http_param(req, "kind");
    if (strcmp(kind, "notfound") == 0)
        return LB_ENOTFOUND;
    if (strcmp(kind, "conflict") == 0)
        return LB_ECONFLICT;
    if (strcmp(kind, "parse") == 0)
        return LB_EPARSE;
    if (strcmp(kind, "eio") == 0)
        return -EIO;
    /* (no cmocka asserts here: this runs on a server thread) */
    if (strcmp(kind, "twice") == 0) {
        if (lb_http_responded(req) || lb_http_respond_text(req, 202, "first") != 0 ||
            !lb_http_responded(req))
            return -EIO;
        if (lb_http_respond_text(req, 200, "second") != -EALREADY)
            abort();
        return LB_EPARSE; /* ignored: already answered */
    }
    if (strcmp(kind, "badstatus") == 0) {
        if (lb_http_respond_text(req, 99, "x") != -EINVAL ||
            lb_http_respond_text(req, 600, "x") != -EINVAL)
            return -EIO;
        return lb_http_respond_text(req, 299, "odd but valid");
    }
    return 0; /* "none": answers nothing */
}

static int health_rc;

static int
check_health(void *arg)
{
    (void)arg;
    return health_rc;
}

static fixture *
start_server(unsigned threads, size_t max_body, unsigned shutdown_ms)
{
    fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(lb_metrics_new(&f->metrics), 0);
    f->dir = tu_tempdir("http");
    assert_non_null(f->dir);
    snprintf(f->file_path, sizeof(f->file_path), "%s/segment", f->dir);
    lb_http_server_config cfg = {.address = "127.0.0.1",
                                 .port = 0,
                                 .threads = threads,
                                 .max_body = max_body,
                                 .idle_timeout_s = 2,
                                 .shutdown_timeout_ms = shutdown_ms,
                                 .metrics = f->metrics};
    assert_int_equal(lb_http_server_new(&cfg, &f->server), 0);
    lb_http_server *s = f->server;
    assert_int_equal(lb_http_server_route(s, "GET", "/v1/tenant/{tenant_id}/timeline/{timeline_id}",
                                          h_echo, NULL),
                     0);
    assert_int_equal(lb_http_server_route(s, "GET", "/v1/tenant/{tenant_id}", h_tenant, "tenant"),
                     0);
    assert_int_equal(
        lb_http_server_route(s, "DELETE", "/v1/tenant/{tenant_id}", h_tenant, "deleted"), 0);
    assert_int_equal(lb_http_server_route(s, "GET", "/v1/tenant/list", h_list, NULL), 0);
    assert_int_equal(
        lb_http_server_route(s, "POST", "/v1/tenant/{tenant_id}/timeline", h_create, NULL), 0);
    assert_int_equal(lb_http_server_route(s, "PUT", "/upload", h_upload, NULL), 0);
    assert_int_equal(lb_http_server_route(s, "GET", "/stream", h_stream, NULL), 0);
    assert_int_equal(lb_http_server_route(s, "GET", "/file", h_file, f), 0);
    assert_int_equal(lb_http_server_route(s, "GET", "/error/{kind}", h_error, NULL), 0);
    health_rc = 0;
    assert_int_equal(lb_http_server_set_health(s, check_health, NULL), 0);
    assert_int_equal(lb_http_server_port(s), -1);
    assert_int_equal(lb_http_server_start(s), 0);
    f->port = lb_http_server_port(s);
    assert_true(f->port > 0);
    snprintf(f->base, sizeof(f->base), "http://127.0.0.1:%d", f->port);
    return f;
}

static void
stop_server(fixture *f)
{
    lb_http_server_free(f->server);
    lb_metrics_free(f->metrics);
    tu_rmdir(f->dir);
    free(f);
}

static char *
url(const fixture *f, const char *path)
{
    static __thread char buf[1024];
    snprintf(buf, sizeof(buf), "%s%s", f->base, path);
    return buf;
}

/* ---- tests ---- */

static void
test_routes_and_params(void **state)
{
    (void)state;
    fixture *f = start_server(1, 0, 0); /* one polling thread, no pool */
    response r;
    http("GET", url(f, "/v1/tenant/t1/timeline/a%20b?q=x%26y&flag"), NULL, "X-Test: hello", &r);
    assert_int_equal(r.rc, CURLE_OK);
    assert_int_equal(r.status, 200);
    json_t *o = json_loadb(r.body.data, r.body.len, 0, NULL);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "tenant_id")), "t1");
    assert_string_equal(json_string_value(json_object_get(o, "timeline_id")), "a b");
    assert_string_equal(json_string_value(json_object_get(o, "route")),
                        "/v1/tenant/{tenant_id}/timeline/{timeline_id}");
    assert_string_equal(json_string_value(json_object_get(o, "path")),
                        "/v1/tenant/t1/timeline/a b");
    assert_string_equal(json_string_value(json_object_get(o, "q")), "x&y");
    assert_string_equal(json_string_value(json_object_get(o, "flag")), "");
    assert_string_equal(json_string_value(json_object_get(o, "header")), "hello");
    assert_true(json_is_false(json_object_get(o, "no_such_param")));
    json_decref(o);
    response_free(&r);

    /* without the query argument or header: NULL, not "" */
    http("GET", url(f, "/v1/tenant/t1/timeline/t2"), NULL, NULL, &r);
    o = json_loadb(r.body.data, r.body.len, 0, NULL);
    assert_non_null(o);
    assert_true(json_is_null(json_object_get(o, "q")));
    assert_true(json_is_null(json_object_get(o, "header")));
    json_decref(o);
    response_free(&r);

    /* a literal segment beats a parameter, whatever the registration order */
    http("GET", url(f, "/v1/tenant/list"), NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "list");
    response_free(&r);
    http("GET", url(f, "/v1/tenant/other"), NULL, NULL, &r);
    assert_string_equal(r.body.data, "tenant other");
    response_free(&r);
    /* same pattern, another method, another handler */
    http("DELETE", url(f, "/v1/tenant/other"), NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "deleted other");
    response_free(&r);
    /* HEAD is answered by the GET route, without a body */
    http("HEAD", url(f, "/v1/tenant/list"), NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, 0);
    assert_string_equal(header_value(&r, "Content-Length"), "4");
    response_free(&r);
    stop_server(f);
}

static void
test_unknown_path_404_wrong_method_405(void **state)
{
    (void)state;
    fixture *f = start_server(2, 0, 0);
    response r;
    const char *missing[] = {
        "/nope",
        "/v1/tenant",
        "/v1/tenant/",
        "/v1/tenant//timeline/x",
        "/v1/tenant/a/timeline/b/extra",
        "/healthz/",
        "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t/u/v/w/x/y/z/1/2/3/4/5/6/7/8"};
    for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
        http("GET", url(f, missing[i]), NULL, NULL, &r);
        assert_int_equal(r.rc, CURLE_OK);
        assert_int_equal(r.status, 404);
        char expect[256];
        snprintf(expect, sizeof(expect), "no such endpoint \"%s\"", missing[i]);
        assert_string_equal(error_message(&r), expect);
        response_free(&r);
    }

    http("POST", url(f, "/v1/tenant/abc"), "{}", NULL, &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(header_value(&r, "Allow"), "GET, DELETE, HEAD");
    assert_string_equal(error_message(&r), "method \"POST\" not allowed for \"/v1/tenant/abc\"");
    response_free(&r);

    http("PATCH", url(f, "/metrics"), NULL, NULL, &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(header_value(&r, "Allow"), "GET, HEAD");
    response_free(&r);

    /* the connection stays usable after an error answer */
    http("GET", url(f, "/healthz"), NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    response_free(&r);
    stop_server(f);
}

static void
test_json_errors_are_400_with_json_body(void **state)
{
    (void)state;
    fixture *f = start_server(0, 0, 0);
    const char *tenant = "/v1/tenant/0123456789abcdef0123456789abcdef/timeline";
    struct {
        const char *body;
        const char *message;
    } cases[] = {
        {"{\"timeline_id\": ", "malformed JSON at line 1 column 16: "},
        {"not json", "malformed JSON at line 1 column 3: "},
        {"[1,2]", "request body must be a JSON object"},
        {"", "request body is empty; expected a JSON object"},
        {"{\"start_lsn\": \"0/1\"}", "missing field \"timeline_id\""},
        {"{\"timeline_id\": \"ABCDEF0123456789abcdef0123456789\", \"start_lsn\": \"0/1\"}",
         "field \"timeline_id\" must be an id of 32 lowercase hex characters"},
        {"{\"timeline_id\": \"00112233445566778899aabbccddeeff\", \"start_lsn\": 5}",
         "field \"start_lsn\" must be an LSN like \"0/16B3F10\""},
        {"{\"timeline_id\": \"00112233445566778899aabbccddeeff\", \"start_lsn\": \"0/1\", "
         "\"read_only\": \"yes\"}",
         "field \"read_only\" must be true or false"},
        {"{\"timeline_id\": \"00112233445566778899aabbccddeeff\", \"start_lsn\": \"0/1\", "
         "\"pg_version\": 15.5}",
         "field \"pg_version\" must be an integer"},
        {"{\"a\": 1, \"a\": 2}", "malformed JSON at line 1 column 12: duplicate object key"},
    };
    char path[256];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        response r;
        http("POST", url(f, tenant), cases[i].body, "Content-Type: application/json", &r);
        assert_int_equal(r.status, 400);
        const char *msg = error_message(&r);
        assert_memory_equal(msg, cases[i].message, strlen(cases[i].message));
        response_free(&r);
    }
    /* a bad id in the path is refused the same way */
    response r;
    snprintf(path, sizeof(path), "/v1/tenant/xyz/timeline");
    http("POST", url(f, path), "{}", NULL, &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(
        error_message(&r),
        "path parameter \"tenant_id\" must be an id of 32 lowercase hex characters");
    response_free(&r);
    /* invalid UTF-8 quoted back in a message still gives a valid JSON body */
    http("POST", url(f, tenant), "\xff\xfe{", NULL, &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(error_message(&r), "malformed JSON"));
    response_free(&r);

    /* and the happy path */
    http("POST", url(f, tenant),
         "{\"timeline_id\": \"00112233445566778899aabbccddeeff\", \"start_lsn\": \"0/16B3F10\"}",
         NULL, &r);
    assert_int_equal(r.status, 201);
    json_t *o = json_loadb(r.body.data, r.body.len, 0, NULL);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "start_lsn")), "0/16B3F10");
    assert_int_equal(json_integer_value(json_object_get(o, "pg_version")), 15);
    assert_true(json_is_false(json_object_get(o, "read_only")));
    json_decref(o);
    response_free(&r);
    stop_server(f);
}

static void
test_body_limit_413(void **state)
{
    (void)state;
    fixture *f = start_server(0, 1000, 0);
    char *big = malloc(5000);
    memset(big, 'x', 5000);
    response r;

    /* exactly at the limit: accepted, echoed intact */
    for (int i = 0; i < 1000; i++)
        big[i] = (char)pattern_byte((uint64_t)i);
    http_on(NULL, "PUT", url(f, "/upload"), big, 1000, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, 1000);
    assert_memory_equal(r.body.data, big, 1000);
    assert_string_equal(header_value(&r, "X-Body-Length"), "seen");
    response_free(&r);

    /* one byte over, announced by Content-Length */
    http_on(NULL, "PUT", url(f, "/upload"), big, 1001, NULL, &r);
    assert_int_equal(r.status, 413);
    assert_string_equal(error_message(&r), "request body larger than 1000 bytes");
    response_free(&r);

    /* chunked upload that grows past the limit (raw socket: no Expect dance) */
    int fd = raw_connect(f->port);
    const char *head = "PUT /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    raw_send(fd, head, strlen(head));
    for (int i = 0; i < 3; i++) {
        char chunk[700];
        int n = snprintf(chunk, sizeof(chunk), "258\r\n");
        memset(chunk + n, 'y', 600);
        memcpy(chunk + n + 600, "\r\n", 2);
        raw_send(fd, chunk, (size_t)n + 602);
    }
    raw_send(fd, "0\r\n\r\n", 5);
    lb_buf out = LB_BUF_INIT;
    raw_read(fd, &out, 2000);
    close(fd);
    assert_non_null(out.data);
    assert_memory_equal(out.data, "HTTP/1.1 413", 12);
    assert_non_null(strstr(out.data, "request body larger than 1000 bytes"));
    lb_buf_free(&out);

    /* a chunked body that never ends: the connection is dropped, not held */
    fd = raw_connect(f->port);
    raw_send(fd, head, strlen(head));
    char *chunk = malloc(1024 * 1024 + 16);
    int hn = snprintf(chunk, 16, "100000\r\n");
    memset(chunk + hn, 'z', 1024 * 1024);
    memcpy(chunk + hn + 1024 * 1024, "\r\n", 2);
    bool closed = false;
    for (int i = 0; i < 40 && !closed; i++)
        closed = send(fd, chunk, (size_t)hn + 1024 * 1024 + 2, MSG_NOSIGNAL) < 0;
    free(chunk);
    close(fd);
    assert_true(closed);

    /* a huge Content-Length is refused before any body is read */
    fd = raw_connect(f->port);
    const char *huge = "PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n";
    raw_send(fd, huge, strlen(huge));
    raw_read(fd, &out, 2000);
    close(fd);
    assert_non_null(out.data);
    assert_memory_equal(out.data, "HTTP/1.1 413", 12);
    lb_buf_free(&out);
    free(big);
    stop_server(f);
}

static void
check_pattern(const response *r, uint64_t size)
{
    assert_int_equal(r->body.len, size);
    for (uint64_t i = 0; i < size; i++)
        if ((unsigned char)r->body.data[i] != pattern_byte(i))
            fail_msg("byte %llu differs", (unsigned long long)i);
}

static void
test_streaming_response_byte_exact(void **state)
{
    (void)state;
    fixture *f = start_server(0, 0, 0);
    atomic_store(&streams_done, 0);
    response r;
    /* unknown length: chunked */
    uint64_t size = 8 * 1024 * 1024 + 13;
    char path[128];
    snprintf(path, sizeof(path), "/stream?size=%llu", (unsigned long long)size);
    http("GET", url(f, path), NULL, NULL, &r);
    assert_int_equal(r.rc, CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(header_value(&r, "Transfer-Encoding"), "chunked");
    check_pattern(&r, size);
    response_free(&r);

    /* known length: Content-Length */
    size = 5 * 1024 * 1024 + 3;
    snprintf(path, sizeof(path), "/stream?size=%llu&known=1", (unsigned long long)size);
    http("GET", url(f, path), NULL, NULL, &r);
    assert_int_equal(r.rc, CURLE_OK);
    snprintf(path, sizeof(path), "%llu", (unsigned long long)size);
    assert_string_equal(header_value(&r, "Content-Length"), path);
    check_pattern(&r, size);
    response_free(&r);

    /* empty stream */
    http("GET", url(f, "/stream?size=0"), NULL, NULL, &r);
    assert_int_equal(r.rc, CURLE_OK);
    assert_int_equal(r.body.len, 0);
    response_free(&r);

    /* a failing producer truncates visibly, with and without a length */
    http("GET", url(f, "/stream?size=3000000&fail_at=1000000&known=1"), NULL, NULL, &r);
    assert_int_not_equal(r.rc, CURLE_OK);
    assert_true(r.body.len < 3000000);
    response_free(&r);
    http("GET", url(f, "/stream?size=3000000&fail_at=1000000"), NULL, NULL, &r);
    assert_int_not_equal(r.rc, CURLE_OK);
    assert_true(r.body.len < 3000000);
    response_free(&r);

    /* a client that goes away mid-stream */
    int fd = raw_connect(f->port);
    const char *req = "GET /stream?size=50000000 HTTP/1.1\r\nHost: x\r\n\r\n";
    raw_send(fd, req, strlen(req));
    char buf[65536];
    assert_true(recv(fd, buf, sizeof(buf), 0) > 0);
    close(fd);

    /* the server carries on, and every stream's done() ran exactly once */
    http("GET", url(f, "/healthz"), NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    response_free(&r);
    for (int i = 0; i < 200 && atomic_load(&streams_done) < 6; i++)
        usleep(10000);
    assert_int_equal(atomic_load(&streams_done), 6);
    stop_server(f);
    assert_int_equal(atomic_load(&streams_done), 6);
}

static void
test_file_range_response(void **state)
{
    (void)state;
    fixture *f = start_server(0, 0, 0);
    size_t size = 3 * 1024 * 1024;
    unsigned char *content = malloc(size);
    for (size_t i = 0; i < size; i++)
        content[i] = pattern_byte(i);
    FILE *fp = fopen(f->file_path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(content, 1, size, fp), size);
    fclose(fp);

    struct {
        uint64_t offset, length;
    } ranges[] = {{0, 3 * 1024 * 1024}, {1000003, 1048576}, {3 * 1024 * 1024 - 1, 1}, {5, 0}};
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
        char path[128];
        snprintf(path, sizeof(path), "/file?offset=%llu&length=%llu",
                 (unsigned long long)ranges[i].offset, (unsigned long long)ranges[i].length);
        response r;
        http("GET", url(f, path), NULL, NULL, &r);
        assert_int_equal(r.rc, CURLE_OK);
        assert_int_equal(r.status, 200);
        assert_int_equal(r.body.len, ranges[i].length);
        if (ranges[i].length)
            assert_memory_equal(r.body.data, content + ranges[i].offset, ranges[i].length);
        response_free(&r);
    }
    /* a client that leaves in the middle of a file: the server lives on */
    for (int i = 0; i < 5; i++) {
        int fd = raw_connect(f->port);
        const char *req = "GET /file?offset=0&length=3145728 HTTP/1.1\r\nHost: x\r\n\r\n";
        raw_send(fd, req, strlen(req));
        char buf[4096];
        assert_true(recv(fd, buf, sizeof(buf), 0) > 0);
        close(fd);
    }
    /* past the end: refused before anything is sent (and the fd is closed) */
    response r;
    http("GET", url(f, "/file?offset=3145000&length=1000"), NULL, NULL, &r);
    assert_int_equal(r.status, 416);
    response_free(&r);
    http("GET", url(f, "/file?offset=4000000&length=0"), NULL, NULL, &r);
    assert_int_equal(r.status, 416);
    response_free(&r);
    free(content);
    stop_server(f);
}

static void
test_handler_errors_map_to_status(void **state)
{
    (void)state;
    fixture *f = start_server(0, 0, 0);
    struct {
        const char *kind;
        long status;
        const char *message;
    } cases[] = {
        {"notfound", 404, "not found"},
        {"conflict", 409, "conflict"},
        {"parse", 400, "malformed input"},
        {"eio", 500, "Input/output error"},
        {"none", 500, "handler gave no response"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char path[64];
        snprintf(path, sizeof(path), "/error/%s", cases[i].kind);
        response r;
        http("GET", url(f, path), NULL, NULL, &r);
        assert_int_equal(r.status, cases[i].status);
        assert_string_equal(error_message(&r), cases[i].message);
        response_free(&r);
    }
    response r;
    http("GET", url(f, "/error/twice"), NULL, NULL, &r);
    assert_int_equal(r.status, 202);
    assert_string_equal(r.body.data, "first");
    response_free(&r);
    http("GET", url(f, "/error/badstatus"), NULL, NULL, &r);
    assert_int_equal(r.status, 299);
    response_free(&r);
    assert_int_equal(lb_http_status_for_error(LB_ETOOBIG), 413);
    assert_int_equal(lb_http_status_for_error(LB_EUNSUPPORTED), 501);
    assert_int_equal(lb_http_status_for_error(LB_ETIMEOUT), 504);
    assert_int_equal(lb_http_status_for_error(-EINVAL), 400);
    stop_server(f);
}

static void
test_healthz(void **state)
{
    (void)state;
    fixture *f = start_server(0, 0, 0);
    response r;
    http("GET", url(f, "/healthz"), NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.data, "ok\n");
    response_free(&r);
    health_rc = LB_ESTORAGE;
    http("GET", url(f, "/healthz"), NULL, NULL, &r);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body.data, "unhealthy: object storage error\n");
    response_free(&r);
    health_rc = 0;
    http("GET", url(f, "/healthz"), NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    response_free(&r);
    stop_server(f);
}

/* Poll /metrics until it contains every needle (completion is recorded
 * just after the client has its answer). */
static bool
metrics_contain(fixture *f, const char *const *needles, size_t n, response *last)
{
    for (int attempt = 0; attempt < 100; attempt++) {
        http("GET", url(f, "/metrics"), NULL, NULL, last);
        bool all = last->status == 200;
        for (size_t i = 0; all && i < n; i++)
            all = strstr(last->body.data, needles[i]) != NULL;
        if (all)
            return true;
        response_free(last);
        usleep(20000);
    }
    return false;
}

static void
test_metrics_endpoint(void **state)
{
    (void)state;
    fixture *f = start_server(0, 0, 0);
    lb_counter *c;
    assert_int_equal(
        lb_metrics_counter(f->metrics, "lb_test_widgets_total", "Widgets made.", NULL, &c), 0);
    lb_counter_add(c, 7);
    response r;
    for (int i = 0; i < 3; i++) {
        http("GET", url(f, "/v1/tenant/a/timeline/b"), NULL, NULL, &r);
        response_free(&r);
    }
    http("GET", url(f, "/nope"), NULL, NULL, &r);
    response_free(&r);
    http("BREW", url(f, "/nope"), NULL, NULL, &r);
    response_free(&r);
    const char *needles[] = {
        "# TYPE lb_test_widgets_total counter\nlb_test_widgets_total 7\n",
        "lb_http_requests_total{method=\"GET\",route=\"/v1/tenant/{tenant_id}/timeline/"
        "{timeline_id}\",status=\"200\"} 3\n",
        "lb_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 1\n",
        "lb_http_requests_total{method=\"other\",route=\"unmatched\",status=\"404\"} 1\n",
        "lb_http_request_duration_seconds_count{route=\"/v1/tenant/{tenant_id}/timeline/"
        "{timeline_id}\"} 3\n",
        "# TYPE lb_http_requests_in_flight gauge\nlb_http_requests_in_flight 1\n",
    };
    assert_true(metrics_contain(f, needles, sizeof(needles) / sizeof(needles[0]), &r));
    assert_string_equal(header_value(&r, "Content-Type"), LB_METRICS_CONTENT_TYPE);
    response_free(&r);
    stop_server(f);
}

#define CLIENTS 16
#define REQUESTS_PER_CLIENT 40

typedef struct client_arg {
    fixture *f;
    int id;
    int ok;
} client_arg;

static void *
client(void *p)
{
    client_arg *a = p;
    CURL *h = curl_easy_init(); /* one handle: keep-alive reuse */
    for (int i = 0; i < REQUESTS_PER_CLIENT; i++) {
        char path[128], expect[128];
        response r;
        if (i % 4 == 3) {
            snprintf(path, sizeof(path), "/stream?size=%d", 100000 + a->id * 1000 + i);
            http_on(h, "GET", url(a->f, path), NULL, 0, NULL, &r);
            bool good = r.rc == CURLE_OK && r.body.len == (size_t)(100000 + a->id * 1000 + i);
            for (size_t k = 0; good && k < r.body.len; k++)
                good = (unsigned char)r.body.data[k] == pattern_byte(k);
            a->ok += good;
        } else {
            snprintf(path, sizeof(path), "/v1/tenant/c%d/timeline/r%d", a->id, i);
            snprintf(expect, sizeof(expect), "\"timeline_id\":\"r%d\"", i);
            http_on(h, "GET", url(a->f, path), NULL, 0, NULL, &r);
            a->ok += r.rc == CURLE_OK && r.status == 200 && r.body.data &&
                     strstr(r.body.data, expect) != NULL;
        }
        response_free(&r);
    }
    curl_easy_cleanup(h);
    return NULL;
}

static void
test_many_concurrent_requests(void **state)
{
    (void)state;
    fixture *f = start_server(4, 0, 0);
    pthread_t threads[CLIENTS];
    client_arg args[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        args[i] = (client_arg){f, i, 0};
        assert_int_equal(pthread_create(&threads[i], NULL, client, &args[i]), 0);
    }
    int ok = 0;
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(threads[i], NULL);
        ok += args[i].ok;
    }
    assert_int_equal(ok, CLIENTS * REQUESTS_PER_CLIENT);
    stop_server(f);
}

static void
test_hostile_clients_do_not_crash_server(void **state)
{
    (void)state;
    fixture *f = start_server(2, 0, 0);
    response r;

    /* a request that stops halfway through its headers, held open */
    int half = raw_connect(f->port);
    const char *partial = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Partial: ye";
    raw_send(half, partial, strlen(partial));
    /* one that promises a body and sends part of it */
    int half_body = raw_connect(f->port);
    const char *pb = "PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\nonly this";
    raw_send(half_body, pb, strlen(pb));

    /* garbage bytes, including NULs and high bytes */
    srand(42);
    for (int round = 0; round < 20; round++) {
        int fd = raw_connect(f->port);
        char junk[2048];
        for (size_t i = 0; i < sizeof(junk); i++)
            junk[i] = (char)(rand() & 0xff);
        if (round % 2)
            memcpy(junk, "GET ", 4); /* looks like a request line at first */
        raw_send(fd, junk, sizeof(junk));
        lb_buf out = LB_BUF_INIT;
        raw_read(fd, &out, 500);
        if (out.len)
            assert_memory_equal(out.data, "HTTP/1.", 7);
        lb_buf_free(&out);
        close(fd);
    }

    /* malformed but plausible requests */
    const char *bad[] = {
        "GET /healthz HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        "GET /healthz HTTP/9.9\r\n\r\n",
        "\r\n\r\n\r\n",
        "GET\r\n\r\n",
        "GET /%00/x HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /v1/tenant/%zz HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET http://example.com/healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        "PUT /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n",
        "GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header Without Colon\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int fd = raw_connect(f->port);
        raw_send(fd, bad[i], strlen(bad[i]));
        lb_buf out = LB_BUF_INIT;
        raw_read(fd, &out, 500);
        close(fd);
        lb_buf_free(&out);
    }

    /* enormous headers */
    size_t n = 200 * 1024;
    char *huge = malloc(n);
    int k = snprintf(huge, n, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(huge + k, 'a', n - (size_t)k);
    int fd = raw_connect(f->port);
    raw_send(fd, huge, n);
    lb_buf out = LB_BUF_INIT;
    raw_read(fd, &out, 1000);
    close(fd);
    if (out.len)
        assert_memory_equal(out.data, "HTTP/1.1 4", 10); /* 413 or 431 */
    lb_buf_free(&out);
    free(huge);

    /* still serving, with the half-open connections still held */
    http("GET", url(f, "/healthz"), NULL, NULL, &r);
    assert_int_equal(r.rc, CURLE_OK);
    assert_int_equal(r.status, 200);
    response_free(&r);
    close(half);
    close(half_body);
    http("GET", url(f, "/v1/tenant/list"), NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    response_free(&r);
    stop_server(f);
}

typedef struct slow_client {
    fixture *f;
    const char *path;
    response r;
} slow_client;

static void *
slow_get(void *p)
{
    slow_client *c = p;
    http("GET", url(c->f, c->path), NULL, NULL, &c->r);
    return NULL;
}

static double
now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void
test_stop_finishes_in_flight_then_refuses(void **state)
{
    (void)state;
    fixture *f = start_server(2, 0, 5000);
    atomic_store(&slow_started, 0);
    atomic_store(&streams_done, 0);
    /* about 40 pieces of 10 kB, 10 ms apart: some 400 ms */
    slow_client c = {.f = f, .path = "/stream?size=400000&delay_us=10000"};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, slow_get, &c), 0);
    for (int i = 0; i < 500 && atomic_load(&slow_started) == 0; i++)
        usleep(2000);
    assert_int_equal(atomic_load(&slow_started), 1);
    int port = f->port;
    double t0 = now_s();
    lb_http_server_stop(f->server);
    double waited = now_s() - t0;
    pthread_join(t, NULL);
    /* the stream in flight was completed, not cut */
    assert_int_equal(c.r.rc, CURLE_OK);
    check_pattern(&c.r, 400000);
    response_free(&c.r);
    assert_true(waited > 0.1);
    assert_int_equal(atomic_load(&streams_done), 1);
    /* and nothing listens any more */
    assert_int_equal(raw_connect(port), -1);
    assert_int_equal(lb_http_server_port(f->server), -1);
    lb_http_server_stop(f->server); /* idempotent */
    stop_server(f);
}

static void
test_stop_gives_up_after_timeout(void **state)
{
    (void)state;
    fixture *f = start_server(0, 0, 300);
    atomic_store(&slow_started, 0);
    /* a stream that would take hours */
    slow_client c = {.f = f, .path = "/stream?size=1000000000000&delay_us=5000"};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, slow_get, &c), 0);
    for (int i = 0; i < 500 && atomic_load(&slow_started) == 0; i++)
        usleep(2000);
    assert_int_equal(atomic_load(&slow_started), 1);
    double t0 = now_s();
    lb_http_server_stop(f->server);
    double waited = now_s() - t0;
    pthread_join(t, NULL);
    assert_true(waited >= 0.29 && waited < 5.0);
    assert_int_not_equal(c.r.rc, CURLE_OK); /* cut off, visibly */
    response_free(&c.r);
    stop_server(f);
}

static int
h_noop(lb_http_request *req, void *arg)
{
    (void)arg;
    return lb_http_respond(req, 204, NULL, NULL, 0);
}

static void
test_setup_errors(void **state)
{
    (void)state;
    lb_metrics *m;
    assert_int_equal(lb_metrics_new(&m), 0);
    lb_http_server_config cfg = {.port = 0, .metrics = m};
    lb_http_server *s;
    assert_int_equal(lb_http_server_new(&cfg, &s), 0);
    const char *bad[] = {"",           "noslash", "/a//b",   "/a/{", "/a/{}",
                         "/a/{x}/{x}", "/a/{x}y", "/a/b{c}", "/a/"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(lb_http_server_route(s, "GET", bad[i], h_noop, NULL), -EINVAL);
    assert_int_equal(lb_http_server_route(s, "G ET", "/x", h_noop, NULL), -EINVAL);
    assert_int_equal(lb_http_server_route(s, "GET", "/x", NULL, NULL), -EINVAL);
    assert_int_equal(lb_http_server_route(s, "GET", "/", h_noop, NULL), 0);
    assert_int_equal(lb_http_server_route(s, "GET", "/x/{id}", h_noop, NULL), 0);
    assert_int_equal(lb_http_server_route(s, "GET", "/x/{id}", h_noop, NULL), LB_EEXIST);
    assert_int_equal(lb_http_server_route(s, "GET", "/healthz", h_noop, NULL), LB_EEXIST);
    assert_int_equal(lb_http_server_start(s), 0);
    assert_int_equal(lb_http_server_start(s), -EALREADY);
    assert_int_equal(lb_http_server_route(s, "GET", "/late", h_noop, NULL), -EBUSY);
    assert_int_equal(lb_http_server_set_health(s, check_health, NULL), -EBUSY);

    /* "/" routes; the empty-path answer is 204 with no body */
    char u[64];
    snprintf(u, sizeof(u), "http://127.0.0.1:%d/", lb_http_server_port(s));
    response r;
    http("GET", u, NULL, NULL, &r);
    assert_int_equal(r.status, 204);
    response_free(&r);

    /* the port is taken */
    lb_http_server *s2;
    lb_http_server_config cfg2 = {.port = lb_http_server_port(s), .metrics = m};
    assert_int_equal(lb_http_server_new(&cfg2, &s2), 0);
    assert_int_equal(lb_http_server_start(s2), -EADDRINUSE);
    assert_int_equal(lb_http_server_port(s2), -1);
    lb_http_server_free(s2);

    /* a bad address */
    lb_http_server_config cfg3 = {.address = "not an address", .metrics = m};
    assert_int_equal(lb_http_server_new(&cfg3, &s2), 0);
    assert_int_equal(lb_http_server_start(s2), LB_EPARSE);
    lb_http_server_free(s2);
    lb_http_server_config cfg4 = {.port = 70000, .metrics = m};
    assert_int_equal(lb_http_server_new(&cfg4, &s2), -EINVAL);

    /* a metrics registry with a clashing declaration is refused */
    lb_metrics *clash;
    lb_gauge *g;
    assert_int_equal(lb_metrics_new(&clash), 0);
    assert_int_equal(lb_metrics_gauge(clash, "lb_http_requests_total", "", NULL, &g), 0);
    lb_http_server_config cfg5 = {.metrics = clash};
    assert_int_equal(lb_http_server_new(&cfg5, &s2), LB_EEXIST);
    lb_metrics_free(clash);

    lb_http_server_free(s);
    lb_metrics_free(m);
}

int
main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes_and_params),
        cmocka_unit_test(test_unknown_path_404_wrong_method_405),
        cmocka_unit_test(test_json_errors_are_400_with_json_body),
        cmocka_unit_test(test_body_limit_413),
        cmocka_unit_test(test_streaming_response_byte_exact),
        cmocka_unit_test(test_file_range_response),
        cmocka_unit_test(test_handler_errors_map_to_status),
        cmocka_unit_test(test_healthz),
        cmocka_unit_test(test_metrics_endpoint),
        cmocka_unit_test(test_many_concurrent_requests),
        cmocka_unit_test(test_hostile_clients_do_not_crash_server),
        cmocka_unit_test(test_stop_finishes_in_flight_then_refuses),
        cmocka_unit_test(test_stop_gives_up_after_timeout),
        cmocka_unit_test(test_setup_errors),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
