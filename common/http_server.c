/*
 * http_server.c: routing, request state and responses on libmicrohttpd.
 *
 * libmicrohttpd calls on_request() several times per request: once when the
 * headers are in, once per piece of body, and once more with no body left.
 * The first call allocates the lb_http_request, routes it, and answers at
 * once what needs no body (404, 405, 413 from Content-Length, 503 while
 * draining); answering early makes the library close the connection after
 * the answer instead of reading a body nobody wants. The body calls append
 * up to max_body. The last call runs the handler, or answers 413 for a
 * chunked body that grew past max_body: the library takes no answer while a
 * body is arriving, so such a body is read to its end (up to a bound) and
 * dropped. on_completed() runs when the response is finished or the
 * connection dies, records metrics and frees the request: every request
 * allocated is freed there, exactly once.
 *
 * Invariants: the route table is immutable while running (routes are added
 * before start), so server threads read it without a lock. A request is
 * answered at most once (req->responded). in_flight counts requests between
 * their first call and on_completed(); stop waits for it to reach zero.
 *
 * The listening socket is ours (bound here, so bind errors come back as
 * -errno and port 0 can be resolved); libmicrohttpd gets a dup of it, and
 * each side closes its own descriptor.
 */
#include "http_server.h"
#include "clock.h"
#include "auth.h"
#include "errors.h"
#include "log.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"

#define MAX_SEGMENTS 32
#define STREAM_BLOCK (64 * 1024)
#define DISCARD_LIMIT (16 * 1024 * 1024)

typedef struct route {
    char *method;
    char *pattern;
    char *segments[MAX_SEGMENTS]; /* literal text, or the parameter name */
    bool is_param[MAX_SEGMENTS];
    size_t nsegments;
    lb_http_handler fn;
    void *arg;
    lb_http_access access;
} route;

typedef struct header {
    struct header *next;
    char *name;
    char *value;
} header;

struct lb_http_server {
    lb_http_server_config config;
    char *address; /* owned copy of config.address */
    route *routes;
    size_t nroutes;
    int (*health)(void *arg);
    void *health_arg;
    lb_auth_keys *auth; /* not owned; NULL: no credentials required */

    pthread_mutex_t lock; /* start/stop */
    struct MHD_Daemon *daemon;
    int listen_fd;   /* ours */
    atomic_int port; /* -1 while stopped */
    atomic_bool draining;
    atomic_int in_flight;

    lb_counter *requests_total;
    lb_histogram *request_seconds;
    lb_gauge *requests_in_flight;
};

struct lb_http_request {
    lb_http_server *server;
    struct MHD_Connection *conn;
    const char *method;  /* the library's, valid for the request */
    char *path;          /* owned copy */
    char *path_segments; /* owned; param values point into it */
    const route *route;
    const char *param_names[MAX_SEGMENTS];
    const char *param_values[MAX_SEGMENTS];
    size_t nparams;
    lb_buf body;
    uint64_t discarded; /* body bytes dropped past max_body */
    header *headers;
    bool responded;
    int status;
    double started; /* lb_mono_s() */
    bool has_claims;
    lb_auth_claims claims;
};

/* ---- helpers ---- */

int
lb_http_status_for_error(int err)
{
    switch (err) {
    case LB_EPARSE:
    case -EINVAL:
        return 400;
    case LB_ENOTFOUND:
    case -ENOENT:
        return 404;
    case LB_ECONFLICT:
    case LB_EEXIST:
    case LB_ESTALETERM:
        return 409;
    case LB_ETOOBIG:
        return 413;
    case LB_EAUTH:
        return 401;
    case LB_EFORBIDDEN:
        return 403;
    case LB_EUNSUPPORTED:
        return 501;
    case LB_ETIMEOUT:
        return 504;
    default:
        return 500;
    }
}

static void
free_route(route *r)
{
    free(r->method);
    free(r->pattern);
    for (size_t i = 0; i < r->nsegments; i++)
        free(r->segments[i]);
}

/* ---- setup ---- */

static int route_add(lb_http_server *s, const char *method, const char *pattern, lb_http_handler fn,
                     void *arg, const lb_http_access *access);
static int serve_healthz(lb_http_request *req, void *arg);
static int serve_metrics(lb_http_request *req, void *arg);

int
lb_http_server_new(const lb_http_server_config *config, lb_http_server **out)
{
    assert(config && out);
    lb_http_server *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->config = *config;
    if (config->port < 0 || config->port > 65535) {
        free(s);
        return -EINVAL;
    }
    if (!s->config.threads)
        s->config.threads = 4;
    if (!s->config.max_body)
        s->config.max_body = 1024 * 1024;
    if (!s->config.idle_timeout_s)
        s->config.idle_timeout_s = 60;
    if (!s->config.max_connections)
        s->config.max_connections = 1024;
    if (!s->config.shutdown_timeout_ms)
        s->config.shutdown_timeout_ms = 10000;
    if (!s->config.metrics)
        s->config.metrics = lb_metrics_default();
    s->listen_fd = -1;
    atomic_init(&s->port, -1);
    pthread_mutex_init(&s->lock, NULL);
    atomic_init(&s->draining, false);
    atomic_init(&s->in_flight, 0);

    int rc = -ENOMEM;
    if (!(s->address = strdup(config->address ? config->address : "127.0.0.1")))
        goto fail;
    s->config.address = s->address;
    static const double buckets[] = {LB_METRICS_LATENCY_BUCKETS};
    lb_metrics *m = s->config.metrics;
    if ((rc = lb_metrics_counter(m, "lb_http_requests_total",
                                 "HTTP requests answered, by method, route and status.",
                                 "method,route,status", &s->requests_total)) != 0 ||
        (rc = lb_metrics_histogram(m, "lb_http_request_duration_seconds",
                                   "Time from request headers to the end of the response.", "route",
                                   buckets, sizeof(buckets) / sizeof(buckets[0]),
                                   &s->request_seconds)) != 0 ||
        (rc = lb_metrics_gauge(m, "lb_http_requests_in_flight",
                               "HTTP requests being read, handled or answered.", NULL,
                               &s->requests_in_flight)) != 0)
        goto fail;
    static const lb_http_access open = {.open = true};
    if ((rc = route_add(s, "GET", "/healthz", serve_healthz, s, &open)) != 0 ||
        (rc = route_add(s, "GET", "/metrics", serve_metrics, s, &open)) != 0)
        goto fail;
    *out = s;
    return 0;

fail:
    lb_http_server_free(s);
    return rc;
}

static bool
valid_token(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '-' || *s == '_'))
            return false;
    return true;
}

/* Split pattern into r->segments. 0 or -EINVAL, -ENOMEM. */
static int
parse_pattern(route *r, const char *pattern)
{
    if (pattern[0] != '/')
        return -EINVAL;
    if (strcmp(pattern, "/") == 0)
        return 0;
    const char *p = pattern + 1;
    for (;;) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 0 || r->nsegments == MAX_SEGMENTS)
            return -EINVAL;
        bool param = p[0] == '{';
        if (param) {
            if (len < 3 || p[len - 1] != '}')
                return -EINVAL;
            p++;
            len -= 2;
        }
        char *seg = strndup(p, len);
        if (!seg)
            return -ENOMEM;
        r->segments[r->nsegments] = seg;
        r->is_param[r->nsegments++] = param;
        if (strpbrk(seg, "{}") || (param && !valid_token(seg)))
            return -EINVAL;
        for (size_t i = 0; param && i + 1 < r->nsegments; i++)
            if (r->is_param[i] && strcmp(r->segments[i], seg) == 0)
                return -EINVAL; /* the same parameter twice */
        if (!end)
            return 0;
        p = end + 1;
    }
}

static int
route_add(lb_http_server *s, const char *method, const char *pattern, lb_http_handler fn, void *arg,
          const lb_http_access *access)
{
    if (!valid_token(method) || !pattern || !fn)
        return -EINVAL;
    static const lb_http_access management_only = {.roles = LB_AUTH_MANAGEMENT};
    route r = {.fn = fn, .arg = arg, .access = access ? *access : management_only};
    int rc = parse_pattern(&r, pattern);
    if (rc == 0 && (!(r.method = strdup(method)) || !(r.pattern = strdup(pattern))))
        rc = -ENOMEM;
    for (size_t i = 0; rc == 0 && i < s->nroutes; i++)
        if (strcmp(s->routes[i].method, method) == 0 && strcmp(s->routes[i].pattern, pattern) == 0)
            rc = LB_EEXIST;
    route *grown = NULL;
    if (rc == 0 && !(grown = realloc(s->routes, (s->nroutes + 1) * sizeof(route))))
        rc = -ENOMEM;
    if (rc != 0) {
        free_route(&r);
        return rc;
    }
    assert(r.nsegments <= MAX_SEGMENTS && r.method && r.pattern);
    s->routes = grown;
    s->routes[s->nroutes++] = r;
    return 0;
}

int
lb_http_server_route(lb_http_server *s, const char *method, const char *pattern, lb_http_handler fn,
                     void *arg)
{
    return lb_http_server_route_access(s, method, pattern, fn, arg, NULL);
}

int
lb_http_server_route_access(lb_http_server *s, const char *method, const char *pattern,
                            lb_http_handler fn, void *arg, const lb_http_access *access)
{
    assert(s);
    pthread_mutex_lock(&s->lock);
    int rc = s->daemon ? -EBUSY : route_add(s, method, pattern, fn, arg, access);
    pthread_mutex_unlock(&s->lock);
    if (rc != 0)
        lb_warn("could not add route \"%s %s\": %s", method ? method : "(null)",
                pattern ? pattern : "(null)", lb_strerror(rc));
    return rc;
}

int
lb_http_server_set_health(lb_http_server *s, int (*check)(void *arg), void *arg)
{
    assert(s);
    pthread_mutex_lock(&s->lock);
    int rc = s->daemon ? -EBUSY : 0;
    if (rc == 0) {
        s->health = check;
        s->health_arg = arg;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int
lb_http_server_set_auth(lb_http_server *s, lb_auth_keys *keys)
{
    assert(s);
    pthread_mutex_lock(&s->lock);
    int rc = s->daemon ? -EBUSY : 0;
    if (rc == 0)
        s->auth = keys;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* ---- routing ---- */

static bool
route_matches(const route *r, char **segs, size_t nsegs)
{
    if (r->nsegments != nsegs)
        return false;
    for (size_t i = 0; i < nsegs; i++) {
        if (r->is_param[i] ? segs[i][0] == '\0' : strcmp(r->segments[i], segs[i]) != 0)
            return false;
    }
    return true;
}

/* > 0 if a is more specific than b: a literal segment further left. */
static int
specificity(const route *a, const route *b)
{
    assert(a->nsegments == b->nsegments);
    for (size_t i = 0; i < a->nsegments; i++)
        if (a->is_param[i] != b->is_param[i])
            return a->is_param[i] ? -1 : 1;
    return 0;
}

/* Split an owned copy of path into segs; false if it cannot match any route. */
static bool
split_path(char *copy, char **segs, size_t *nsegs)
{
    *nsegs = 0;
    if (copy[0] != '/')
        return false;
    if (copy[1] == '\0')
        return true;
    char *p = copy + 1;
    for (;;) {
        if (*nsegs == MAX_SEGMENTS)
            return false;
        segs[(*nsegs)++] = p;
        char *slash = strchr(p, '/');
        if (!slash)
            return true;
        *slash = '\0';
        p = slash + 1;
    }
}

/* Pick the route for req; on none, fill allow (methods of the path, if any). */
static const route *
find_route(lb_http_request *req, lb_buf *allow)
{
    lb_http_server *s = req->server;
    char *segs[MAX_SEGMENTS];
    size_t nsegs;
    if (!split_path(req->path_segments, segs, &nsegs))
        return NULL;
    const route *best = NULL;
    bool head = strcmp(req->method, "HEAD") == 0;
    for (int pass = 0; pass < 2 && !best; pass++) {
        /* pass 0: exact method; pass 1: HEAD answered by GET */
        const char *want = pass == 0 ? req->method : (head ? "GET" : NULL);
        if (!want)
            break;
        for (size_t i = 0; i < s->nroutes; i++) {
            const route *r = &s->routes[i];
            if (strcmp(r->method, want) == 0 && route_matches(r, segs, nsegs) &&
                (!best || specificity(r, best) > 0))
                best = r;
        }
    }
    if (best) {
        assert(req->nparams == 0 && best->nsegments == nsegs);
        for (size_t i = 0; i < nsegs; i++) {
            if (best->is_param[i]) {
                req->param_names[req->nparams] = best->segments[i];
                req->param_values[req->nparams++] = segs[i];
            }
        }
        return best;
    }
    /* 405: list what the path does take */
    const char *methods[16];
    size_t n = 0;
    bool has_get = false, has_head = false;
    for (size_t i = 0; i < s->nroutes; i++) {
        const route *r = &s->routes[i];
        if (!route_matches(r, segs, nsegs))
            continue;
        bool seen = false;
        for (size_t j = 0; j < n && !seen; j++)
            seen = strcmp(methods[j], r->method) == 0;
        if (!seen && n < sizeof(methods) / sizeof(methods[0]) - 1)
            methods[n++] = r->method;
        has_get |= strcmp(r->method, "GET") == 0;
        has_head |= strcmp(r->method, "HEAD") == 0;
    }
    if (has_get && !has_head)
        methods[n++] = "HEAD";
    for (size_t j = 0; j < n; j++)
        lb_buf_printf(allow, "%s%s", j ? ", " : "", methods[j]);
    return NULL;
}

/* ---- request accessors ---- */

const char *
lb_http_method(const lb_http_request *req)
{
    return req->method;
}

const char *
lb_http_path(const lb_http_request *req)
{
    return req->path;
}

const char *
lb_http_route(const lb_http_request *req)
{
    return req->route ? req->route->pattern : NULL;
}

const char *
lb_http_param(const lb_http_request *req, const char *name)
{
    for (size_t i = 0; i < req->nparams; i++)
        if (strcmp(req->param_names[i], name) == 0)
            return req->param_values[i];
    return NULL;
}

const char *
lb_http_query(const lb_http_request *req, const char *name)
{
    const char *value = NULL;
    size_t len = 0;
    if (!name || MHD_lookup_connection_value_n(req->conn, MHD_GET_ARGUMENT_KIND, name, strlen(name),
                                               &value, &len) != MHD_YES)
        return NULL;
    return value ? value : "";
}

const char *
lb_http_header(const lb_http_request *req, const char *name)
{
    return name ? MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name) : NULL;
}

const char *
lb_http_body(const lb_http_request *req, size_t *len)
{
    if (len)
        *len = req->body.len;
    return req->body.data ? req->body.data : "";
}

const lb_auth_claims *
lb_http_claims(const lb_http_request *req)
{
    return req->has_claims ? &req->claims : NULL;
}

bool
lb_http_responded(const lb_http_request *req)
{
    return req->responded;
}

/* ---- responses ---- */

int
lb_http_add_header(lb_http_request *req, const char *name, const char *value)
{
    if (!name || !value || !*name)
        return -EINVAL;
    header *h = calloc(1, sizeof(*h));
    if (!h || !(h->name = strdup(name)) || !(h->value = strdup(value))) {
        if (h)
            free(h->name);
        free(h);
        return -ENOMEM;
    }
    /* keep insertion order: append */
    header **tail = &req->headers;
    while (*tail)
        tail = &(*tail)->next;
    *tail = h;
    return 0;
}

/* Add headers, queue and release resp (always). */
static int
queue(lb_http_request *req, int status, const char *content_type, struct MHD_Response *resp)
{
    assert(!req->responded && status >= 100 && status <= 599);
    if (!resp)
        return -ENOMEM;
    int rc = 0;
    if (content_type &&
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) != MHD_YES)
        rc = -EINVAL;
    for (header *h = req->headers; h && rc == 0; h = h->next)
        if (MHD_add_response_header(resp, h->name, h->value) != MHD_YES)
            rc = -EINVAL;
    if (rc == 0 && MHD_queue_response(req->conn, (unsigned)status, resp) != MHD_YES)
        rc = -EIO;
    MHD_destroy_response(resp);
    if (rc == 0) {
        req->responded = true;
        req->status = status;
    }
    return rc;
}

static int
check_respond(const lb_http_request *req, int status)
{
    assert(req);
    if (req->responded)
        return -EALREADY;
    if (status < 100 || status > 599)
        return -EINVAL;
    return 0;
}

int
lb_http_respond(lb_http_request *req, int status, const char *content_type, const void *bytes,
                size_t len)
{
    int rc = check_respond(req, status);
    if (rc != 0)
        return rc;
    return queue(
        req, status, content_type,
        MHD_create_response_from_buffer(len, (void *)(bytes ? bytes : ""), MHD_RESPMEM_MUST_COPY));
}

/* Takes text (malloc'ed) in every case. */
static int
respond_owned(lb_http_request *req, int status, const char *content_type, char *text, size_t len)
{
    int rc = check_respond(req, status);
    if (rc != 0) {
        free(text);
        return rc;
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, text ? text : (char *)"", MHD_RESPMEM_MUST_FREE);
    if (!resp)
        free(text);
    return queue(req, status, content_type, resp);
}

int
lb_http_respond_text(lb_http_request *req, int status, const char *fmt, ...)
{
    lb_buf text = LB_BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    int rc = lb_buf_vprintf(&text, fmt, ap);
    va_end(ap);
    if (rc != 0) {
        lb_buf_free(&text);
        return rc;
    }
    size_t len;
    char *bytes = lb_buf_steal(&text, &len);
    return respond_owned(req, status, "text/plain; charset=utf-8", bytes, len);
}

static int respond_error_v(lb_http_request *req, int status, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static int
respond_error_v(lb_http_request *req, int status, const char *fmt, va_list ap)
{
    lb_buf msg = LB_BUF_INIT;
    if (lb_buf_vprintf(&msg, fmt, ap) != 0 || lb_buf_append(&msg, "", 0) != 0) {
        lb_buf_free(&msg);
        return -ENOMEM;
    }
    json_t *obj = json_pack("{s:s}", "error", msg.data);
    if (!obj) {
        /* not UTF-8 (it quotes what the client sent): keep what is printable ASCII */
        for (size_t i = 0; i < msg.len; i++)
            if ((unsigned char)msg.data[i] >= 0x7f || (unsigned char)msg.data[i] < 0x20)
                msg.data[i] = '?';
        obj = json_pack("{s:s}", "error", msg.data);
    }
    lb_buf_free(&msg);
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!text)
        return -ENOMEM;
    return respond_owned(req, status, "application/json", text, strlen(text));
}

int
lb_http_respond_error(lb_http_request *req, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = respond_error_v(req, status, fmt, ap);
    va_end(ap);
    return rc;
}

typedef struct stream {
    lb_http_produce_fn produce;
    void (*done)(void *arg);
    void *arg;
} stream;

static ssize_t
stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    stream *st = cls;
    ssize_t n = st->produce(st->arg, pos, buf, max);
    if (n == 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (n < 0 || (size_t)n > max) {
        lb_warn("response stream failed offset=%llu: %s", (unsigned long long)pos,
                n < 0 ? lb_strerror((int)n) : "callback overran its buffer");
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    return n;
}

static void
stream_free(void *cls)
{
    stream *st = cls;
    if (st->done)
        st->done(st->arg);
    free(st);
}

int
lb_http_respond_stream(lb_http_request *req, int status, const char *content_type, int64_t length,
                       lb_http_produce_fn produce, void (*done)(void *arg), void *arg)
{
    int rc = check_respond(req, status);
    if (rc == 0 && (!produce || length < -1))
        rc = -EINVAL;
    stream *st = rc == 0 ? malloc(sizeof(*st)) : NULL;
    if (rc == 0 && !st)
        rc = -ENOMEM;
    if (rc != 0) {
        if (done)
            done(arg);
        return rc;
    }
    *st = (stream){produce, done, arg};
    struct MHD_Response *resp =
        MHD_create_response_from_callback(length < 0 ? MHD_SIZE_UNKNOWN : (uint64_t)length,
                                          STREAM_BLOCK, stream_read, st, stream_free);
    if (!resp) {
        stream_free(st);
        return -ENOMEM;
    }
    return queue(req, status, content_type, resp); /* resp owns st from here */
}

int
lb_http_respond_fd(lb_http_request *req, int status, const char *content_type, int fd,
                   uint64_t offset, uint64_t length)
{
    int rc = check_respond(req, status);
    struct stat st;
    if (rc == 0 && fstat(fd, &st) != 0)
        rc = -errno;
    if (rc == 0 && (!S_ISREG(st.st_mode) || offset > (uint64_t)st.st_size ||
                    length > (uint64_t)st.st_size - offset))
        rc = -EINVAL;
    if (rc != 0) {
        if (fd >= 0)
            close(fd);
        return rc;
    }
    struct MHD_Response *resp = MHD_create_response_from_fd_at_offset64(length, fd, offset);
    if (!resp) {
        close(fd);
        return -ENOMEM;
    }
    return queue(req, status, content_type, resp); /* resp owns fd from here */
}

/* ---- built-in endpoints ---- */

static int
serve_healthz(lb_http_request *req, void *arg)
{
    lb_http_server *s = arg;
    int rc = s->health ? s->health(s->health_arg) : 0;
    if (rc != 0)
        return lb_http_respond_text(req, 503, "unhealthy: %s\n", lb_strerror(rc));
    return lb_http_respond_text(req, 200, "ok\n");
}

static int
serve_metrics(lb_http_request *req, void *arg)
{
    lb_http_server *s = arg;
    lb_buf text = LB_BUF_INIT;
    int rc = lb_metrics_render(s->config.metrics, &text);
    if (rc != 0) {
        lb_buf_free(&text);
        return rc;
    }
    size_t len;
    char *bytes = lb_buf_steal(&text, &len);
    return respond_owned(req, 200, LB_METRICS_CONTENT_TYPE, bytes, len);
}

/* ---- the library's callbacks ---- */

static void
free_headers(lb_http_request *req)
{
    while (req->headers) {
        header *h = req->headers;
        req->headers = h->next;
        free(h->name);
        free(h->value);
        free(h);
    }
}

static void
free_request(lb_http_request *req)
{
    free_headers(req);
    lb_buf_free(&req->body);
    free(req->path);
    free(req->path_segments);
    free(req);
}

/* The route's credential check, before any body is read or handler runs:
 * false once the request has been answered 401 or 403. */
static bool
check_credential(lb_http_request *req)
{
    const route *r = req->route;
    const char *authorization = lb_http_header(req, MHD_HTTP_HEADER_AUTHORIZATION);
    const char *token = lb_auth_bearer(authorization);
    const char *why = "no bearer token";
    if (token && lb_auth_verify(req->server->auth, token, 0, &req->claims, &why) == 0) {
        req->has_claims = true;
        const char *tenant = r->access.own_scope ? NULL : lb_http_param(req, "tenant_id");
        const char *timeline = r->access.own_scope ? NULL : lb_http_param(req, "timeline_id");
        bool role_ok =
            req->claims.role == LB_AUTH_MANAGEMENT || (req->claims.role & r->access.roles);
        if (r->access.own_scope ? role_ok
                                : lb_auth_allows(&req->claims, r->access.roles, tenant, timeline))
            return true;
        lb_info("http request refused method=%s route=\"%s\" role=%s sub=\"%s\" status=403",
                req->method, r->pattern, lb_auth_role_name(req->claims.role), req->claims.sub);
        char msg[300];
        snprintf(msg, sizeof(msg), "token of role \"%s\" may not call %s %s",
                 lb_auth_role_name(req->claims.role), req->method, r->pattern);
        if (r->access.refuse)
            r->access.refuse(req, 403, msg);
        else
            lb_http_respond_error(req, 403, "%s", msg);
        return false;
    }
    lb_info("http request refused method=%s route=\"%s\" status=401 reason=\"%s\"", req->method,
            r->pattern, why);
    lb_http_add_header(req, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                       token ? "Bearer realm=\"lakebase\", error=\"invalid_token\""
                             : "Bearer realm=\"lakebase\"");
    if (r->access.refuse) {
        char msg[300];
        snprintf(msg, sizeof(msg), "credential required: %s", why);
        r->access.refuse(req, 401, msg);
    } else {
        lb_http_respond_error(req, 401, "credential required: %s", why);
    }
    return false;
}

/* The first call: headers are in. Returns false to drop the connection. */
static bool
begin_request(lb_http_request *req, const char *url)
{
    lb_http_server *s = req->server;
    if (atomic_load(&s->draining)) {
        lb_http_add_header(req, MHD_HTTP_HEADER_CONNECTION, "close");
        return lb_http_respond_error(req, 503, "server is shutting down") == 0;
    }
    lb_buf allow = LB_BUF_INIT;
    req->route = find_route(req, &allow);
    if (!req->route) {
        int rc;
        if (allow.len > 0) {
            lb_http_add_header(req, MHD_HTTP_HEADER_ALLOW, allow.data);
            rc = lb_http_respond_error(req, 405, "method \"%s\" not allowed for \"%s\"",
                                       req->method, url);
        } else {
            rc = lb_http_respond_error(req, 404, "no such endpoint \"%s\"", url);
        }
        lb_buf_free(&allow);
        return rc == 0;
    }
    lb_buf_free(&allow);
    if (s->auth && !req->route->access.open && !check_credential(req))
        return req->responded;
    const char *cl =
        MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (errno == 0 && end != cl && n > s->config.max_body)
            return lb_http_respond_error(req, 413, "request body larger than %zu bytes",
                                         s->config.max_body) == 0;
    }
    return true;
}

static void
run_handler(lb_http_request *req)
{
    const route *r = req->route;
    assert(r && !req->responded);
    int rc = r->fn(req, r->arg);
    if (req->responded) {
        if (rc != 0)
            lb_debug("handler failed after answering route=\"%s\" error=%s", r->pattern,
                     lb_err_name(rc));
        return;
    }
    int status = rc == 0 ? 500 : lb_http_status_for_error(rc);
    if (rc == 0)
        lb_error("handler gave no response method=%s path=\"%s\"", req->method, req->path);
    else if (status == 500)
        lb_warn("request failed method=%s path=\"%s\" error=%s", req->method, req->path,
                lb_err_name(rc));
    free_headers(req); /* meant for the answer the handler did not give */
    lb_http_respond_error(req, status, "%s",
                          rc == 0 ? "handler gave no response" : lb_strerror(rc));
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
           const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    (void)version;
    lb_http_server *s = cls;
    lb_http_request *req = *con_cls;
    if (!req) {
        req = calloc(1, sizeof(*req));
        if (!req)
            return MHD_NO;
        req->server = s;
        req->conn = conn;
        req->method = method;
        req->started = lb_mono_s();
        if (!(req->path = strdup(url)) || !(req->path_segments = strdup(url))) {
            free_request(req);
            return MHD_NO;
        }
        *con_cls = req;
        atomic_fetch_add(&s->in_flight, 1);
        lb_gauge_inc(s->requests_in_flight);
        return begin_request(req, url) ? MHD_YES : MHD_NO;
    }
    assert(req->conn == conn);
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (req->responded)
            return MHD_YES; /* answered early; the rest is discarded */
        if (req->discarded > 0 || n > s->config.max_body - req->body.len) {
            /* The library accepts an answer only once the body is in, so an
             * oversized body without Content-Length is read and dropped, up
             * to a bound; a client that sends more loses the connection. */
            req->discarded += n;
            lb_buf_free(&req->body);
            return req->discarded <= DISCARD_LIMIT ? MHD_YES : MHD_NO;
        }
        return lb_buf_append(&req->body, upload_data, n) == 0 ? MHD_YES : MHD_NO;
    }
    if (req->discarded > 0 && !req->responded)
        lb_http_respond_error(req, 413, "request body larger than %zu bytes", s->config.max_body);
    if (!req->responded)
        run_handler(req);
    return req->responded ? MHD_YES : MHD_NO;
}

static const char *
method_label(const char *m)
{
    static const char *const known[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strcmp(m, known[i]) == 0)
            return known[i];
    return "other"; /* arbitrary client tokens must not grow the label set */
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    lb_http_server *s = cls;
    lb_http_request *req = *con_cls;
    if (!req)
        return;
    assert(req->server == s);
    assert(atomic_load(&s->in_flight) > 0);
    *con_cls = NULL;
    double elapsed = lb_mono_s() - req->started;
    const char *route_label = req->route ? req->route->pattern : "unmatched";
    if (req->responded) {
        char status[8];
        snprintf(status, sizeof(status), "%d", req->status);
        lb_counter *c;
        if (lb_counter_labels(s->requests_total, &c, method_label(req->method), route_label, status,
                              NULL) == 0)
            lb_counter_inc(c);
        lb_histogram *h;
        if (lb_histogram_labels(s->request_seconds, &h, route_label, NULL) == 0)
            lb_histogram_observe(h, elapsed);
    }
    lb_debug("http request method=%s path=\"%s\" status=%d duration_ms=%.3f%s", req->method,
             req->path, req->responded ? req->status : 0, elapsed * 1000,
             toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted=1");
    free_request(req);
    lb_gauge_dec(s->requests_in_flight);
    atomic_fetch_sub(&s->in_flight, 1);
}

static void on_library_log(void *cls, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void
on_library_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == ' '))
        line[--n] = '\0';
    /* mostly malformed or abandoned client requests: not the server's fault */
    lb_debug("http: %s", line);
}

/* ---- start and stop ---- */

static int
open_listener(const char *address, int port, int *fd_out, int *port_out)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char service[8];
    snprintf(service, sizeof(service), "%d", port);
    if (getaddrinfo(address, service, &hints, &ai) != 0 || !ai) {
        if (ai)
            freeaddrinfo(ai);
        return LB_EPARSE;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int rc = 0;
    if (fd < 0) {
        rc = -errno;
    } else {
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        struct sockaddr_storage bound;
        socklen_t len = sizeof(bound);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 128) != 0 ||
            getsockname(fd, (struct sockaddr *)&bound, &len) != 0)
            rc = -errno;
        else if (bound.ss_family == AF_INET)
            *port_out = ntohs(((struct sockaddr_in *)&bound)->sin_port);
        else
            *port_out = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
    }
    freeaddrinfo(ai);
    if (rc != 0 && fd >= 0)
        close(fd);
    if (rc == 0)
        *fd_out = fd;
    return rc;
}

int
lb_http_server_start(lb_http_server *s)
{
    assert(s);
    pthread_mutex_lock(&s->lock);
    int rc = 0;
    if (s->daemon || s->listen_fd >= 0) {
        rc = -EALREADY;
        goto out;
    }
    int port = -1;
    if ((rc = open_listener(s->address, s->config.port, &s->listen_fd, &port)) != 0) {
        lb_error("could not listen on \"%s:%d\": %s", s->address, s->config.port, lb_strerror(rc));
        goto out;
    }
    int lib_fd = fcntl(s->listen_fd, F_DUPFD_CLOEXEC, 0);
    if (lib_fd < 0) {
        rc = -errno;
        goto fail;
    }
    atomic_store(&s->draining, false);
    unsigned flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    s->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER,
        (MHD_LogCallback)on_library_log, (void *)s, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)lib_fd,
        MHD_OPTION_NOTIFY_COMPLETED, (MHD_RequestCompletedCallback)on_completed, (void *)s,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)s->config.idle_timeout_s,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)s->config.max_connections,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)(s->config.threads > 1 ? s->config.threads : 0),
        MHD_OPTION_END);
    if (!s->daemon) {
        /* the library may or may not have closed its copy; a leaked
         * descriptor on a failed start beats closing someone else's */
        rc = -EIO;
        lb_error("could not start HTTP server on \"%s:%d\"", s->address, port);
        goto fail;
    }
    if (MHD_is_feature_supported(MHD_FEATURE_AUTOSUPPRESS_SIGPIPE) != MHD_YES)
        lb_warn("http: SIGPIPE is not suppressed by the library; the daemon must ignore it");
    atomic_store(&s->port, port);
    lb_info("HTTP server listening address=%s port=%d threads=%u", s->address, port,
            s->config.threads);
    goto out;

fail:
    close(s->listen_fd);
    s->listen_fd = -1;
out:
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int
lb_http_server_port(const lb_http_server *s)
{
    return s ? atomic_load(&((lb_http_server *)s)->port) : -1;
}

void
lb_http_server_stop(lb_http_server *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    if (!s->daemon) {
        pthread_mutex_unlock(&s->lock);
        return;
    }
    /* No MHD_quiesce_daemon(): with a thread pool it races the workers
     * that take the listening socket out of their epoll sets at the
     * connection limit, and the library aborts ("Failed to remove listen
     * FD from epoll set"). While draining, a new request gets 503 and its
     * connection is closed instead. */
    atomic_store(&s->draining, true);
    int64_t deadline = lb_mono_ms() + s->config.shutdown_timeout_ms;
    while (atomic_load(&s->in_flight) > 0 && lb_mono_ms() < deadline) {
        struct timespec nap = {0, 5 * 1000 * 1000};
        nanosleep(&nap, NULL);
    }
    int left = atomic_load(&s->in_flight);
    if (left > 0)
        lb_warn("HTTP server stopping with requests in flight count=%d", left);
    MHD_stop_daemon(s->daemon); /* joins its threads; completes what is left */
    s->daemon = NULL;
    close(s->listen_fd);
    s->listen_fd = -1;
    lb_info("HTTP server stopped port=%d", atomic_load(&s->port));
    atomic_store(&s->port, -1);
    pthread_mutex_unlock(&s->lock);
}

void
lb_http_server_free(lb_http_server *s)
{
    if (!s)
        return;
    lb_http_server_stop(s);
    for (size_t i = 0; i < s->nroutes; i++)
        free_route(&s->routes[i]);
    free(s->routes);
    free(s->address);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
