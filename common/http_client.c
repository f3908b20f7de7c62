/*
 * http_client.c: HTTP requests over one reusable libcurl handle, retried
 * with exponential backoff and jitter.
 *
 * Every attempt starts from curl_easy_reset(), which drops the previous
 * request's options but keeps the live connections, so a client talking to
 * one server keeps one TCP connection. curl_global_init() runs once per
 * process, under pthread_once, before the first handle is made; it is never
 * undone (other libraries in the process may use libcurl too).
 *
 * Invariants:
 *   - a retry never duplicates or corrupts what the caller received: the
 *     2xx sink only ever sees one attempt's body (an lb_buf is rolled back
 *     to its old length; a callback must have received nothing or be
 *     reset), and a streamed request body is rewound or not retried;
 *   - non-idempotent methods are sent once unless the caller opts in;
 *   - a body callback's error ends the request at once with that error.
 *
 * Callers: objstore_s3.c and any component talking HTTP to a peer. Secrets
 * may travel in headers, so URLs are logged without their query and
 * headers are never logged.
 */
#include "http_client.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "auth.h"
#include "errors.h"
#include "log.h"

struct lb_http_client {
    CURL *curl;
    lb_auth_token *token; /* not owned; NULL: no Authorization header */
    lb_http_options opts;
    unsigned int seed; /* jitter */
    char curl_err[CURL_ERROR_SIZE];
    char error[1024];
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

static void
global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int
lb_http_client_new(const lb_http_options *opts, lb_http_client **out)
{
    assert(out);
    *out = NULL;
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK) {
        lb_error("could not initialize libcurl: %s", curl_easy_strerror(global_rc));
        return LB_EHTTP;
    }
    lb_http_client *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    if (opts)
        c->opts = *opts;
    if (c->opts.connect_timeout_ms <= 0)
        c->opts.connect_timeout_ms = 5000;
    if (c->opts.timeout_ms == 0)
        c->opts.timeout_ms = 30000;
    if (c->opts.max_attempts <= 0)
        c->opts.max_attempts = 4;
    if (c->opts.retry_base_ms <= 0)
        c->opts.retry_base_ms = 100;
    if (c->opts.retry_max_ms <= 0)
        c->opts.retry_max_ms = 5000;
    if (c->opts.retry_max_ms < c->opts.retry_base_ms)
        c->opts.retry_max_ms = c->opts.retry_base_ms;
    if (!c->opts.user_agent)
        c->opts.user_agent = "lakebase";
    c->curl = curl_easy_init();
    if (!c->curl) {
        free(c);
        return -ENOMEM;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    c->seed = (unsigned int)(ts.tv_nsec ^ (long)getpid() ^ (long)(uintptr_t)c);
    *out = c;
    return 0;
}

void
lb_http_client_free(lb_http_client *c)
{
    if (!c)
        return;
    curl_easy_cleanup(c->curl);
    free(c);
}

void
lb_http_client_set_token(lb_http_client *c, lb_auth_token *token)
{
    assert(c);
    c->token = token;
}

const char *
lb_http_client_error(const lb_http_client *c)
{
    return c ? c->error : "";
}

void
lb_http_result_free(lb_http_result *resp)
{
    if (!resp)
        return;
    lb_buf_free(&resp->headers);
    lb_buf_free(&resp->error_body);
    resp->status = 0;
    resp->attempts = 0;
}

const char *
lb_http_result_header(const lb_http_result *resp, const char *name)
{
    const char *p = resp->headers.data;
    const char *end = p ? p + resp->headers.len : NULL;
    while (p && p < end) {
        const char *value = p + strlen(p) + 1;
        assert(value < end);
        if (strcasecmp(p, name) == 0)
            return value;
        p = value + strlen(value) + 1;
    }
    return NULL;
}

bool
lb_http_status_retryable(long status)
{
    return status == 408 || status == 429 ||
           (status >= 500 && status <= 599 && status != 501 && status != 505);
}

static bool
method_idempotent(const char *m)
{
    return strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0 || strcmp(m, "PUT") == 0 ||
           strcmp(m, "DELETE") == 0 || strcmp(m, "OPTIONS") == 0;
}

/* Transport failures worth another attempt. */
static bool
curl_transient(CURLcode cc)
{
    switch (cc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return true;
    default:
        return false;
    }
}

static int
curl_to_err(CURLcode cc)
{
    switch (cc) {
    case CURLE_OPERATION_TIMEDOUT:
        return LB_ETIMEOUT;
    case CURLE_OUT_OF_MEMORY:
        return -ENOMEM;
    case CURLE_URL_MALFORMAT:
        return -EINVAL;
    default:
        return LB_EHTTP;
    }
}

/* One request's state across its attempts. */
typedef struct xfer {
    lb_http_client *c;
    const lb_http_call *req;
    lb_http_result *resp;
    /* request body */
    size_t mem_off;
    uint64_t body_produced; /* by body_read, this attempt */
    int body_err;
    /* response body */
    size_t buf_base; /* response_body->len before the first attempt */
    uint64_t delivered; /* to response_write since the last reset */
    int sink_err;
    bool body_seen; /* first body bytes of this attempt arrived */
    bool to_sink;   /* this attempt's status is 2xx */
} xfer;

static size_t
on_header(char *line, size_t size, size_t nitems, void *arg)
{
    xfer *x = arg;
    size_t n = size * nitems;
    lb_buf *h = &x->resp->headers;
    if (n >= 5 && memcmp(line, "HTTP/", 5) == 0) {
        /* A new response (100 Continue, then the real one): start over. */
        lb_buf_reset(h);
        return n;
    }
    const char *colon = memchr(line, ':', n);
    if (!colon)
        return n; /* the blank line that ends the block */
    size_t nlen = (size_t)(colon - line);
    const char *v = colon + 1;
    const char *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t old = h->len;
    if (lb_buf_reserve(h, nlen + (size_t)(end - v) + 2) != 0)
        return 0; /* out of memory: abort the transfer */
    for (size_t i = 0; i < nlen; i++)
        h->data[h->len++] = (char)tolower((unsigned char)line[i]);
    h->data[h->len++] = '\0';
    memcpy(h->data + h->len, v, (size_t)(end - v));
    h->len += (size_t)(end - v);
    h->data[h->len++] = '\0';
    assert(h->len > old);
    (void)old;
    return n;
}

static size_t
on_body(char *bytes, size_t size, size_t nmemb, void *arg)
{
    xfer *x = arg;
    size_t n = size * nmemb;
    if (!x->body_seen) {
        long status = 0;
        curl_easy_getinfo(x->c->curl, CURLINFO_RESPONSE_CODE, &status);
        x->to_sink = status >= 200 && status <= 299;
        x->body_seen = true;
    }
    if (!x->to_sink) {
        lb_buf *e = &x->resp->error_body;
        size_t room = e->len < LB_HTTP_ERROR_BODY_MAX ? LB_HTTP_ERROR_BODY_MAX - e->len : 0;
        if (room > 0 && lb_buf_append(e, bytes, n < room ? n : room) != 0) {
            x->sink_err = -ENOMEM;
            return 0;
        }
        return n;
    }
    const lb_http_call *r = x->req;
    if (r->response_body) {
        if (r->max_response && r->response_body->len - x->buf_base + n > r->max_response) {
            x->sink_err = LB_ETOOBIG; /* a peer must not make us hold any size it likes */
            return 0;
        }
        if (lb_buf_append(r->response_body, bytes, n) != 0) {
            x->sink_err = -ENOMEM;
            return 0;
        }
    } else if (r->response_write) {
        int rc = r->response_write(r->response_arg, bytes, n);
        if (rc != 0) {
            x->sink_err = rc < 0 ? rc : -EIO;
            return 0;
        }
        x->delivered += n;
    }
    return n;
}

static size_t
on_read(char *dst, size_t size, size_t nitems, void *arg)
{
    xfer *x = arg;
    size_t cap = size * nitems;
    const lb_http_call *r = x->req;
    if (r->body_read) {
        ssize_t got = r->body_read(r->body_arg, dst, cap);
        if (got < 0) {
            x->body_err = (int)got;
            return CURL_READFUNC_ABORT;
        }
        assert((size_t)got <= cap);
        x->body_produced += (uint64_t)got;
        return (size_t)got;
    }
    size_t left = r->body_len - x->mem_off;
    size_t n = left < cap ? left : cap;
    if (n)
        memcpy(dst, (const char *)r->body + x->mem_off, n);
    x->mem_off += n;
    return n;
}

/* libcurl rewinds the body itself when it must resend it on a reused
 * connection that turned out dead. */
static int
on_seek(void *arg, curl_off_t offset, int origin)
{
    xfer *x = arg;
    const lb_http_call *r = x->req;
    if (origin != SEEK_SET || offset < 0)
        return CURL_SEEKFUNC_CANTSEEK;
    if (r->body_read) {
        if (offset != 0 || !r->body_rewind || r->body_rewind(r->body_arg) != 0)
            return CURL_SEEKFUNC_CANTSEEK;
        x->body_produced = 0;
        return CURL_SEEKFUNC_OK;
    }
    if ((uint64_t)offset > r->body_len)
        return CURL_SEEKFUNC_FAIL;
    x->mem_off = (size_t)offset;
    return CURL_SEEKFUNC_OK;
}

static bool
valid_method(const char *m)
{
    if (!m || !*m || strlen(m) > 16)
        return false;
    for (; *m; m++)
        if (!isupper((unsigned char)*m))
            return false;
    return true;
}

static bool
valid_url(const char *url)
{
    return url && (strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0);
}

static bool
valid_header_line(const char *h)
{
    if (!h || !strchr(h, ':') || h[0] == ':')
        return false;
    return strpbrk(h, "\r\n") == NULL;
}

/* "scheme://host/path" of url, for messages: the query may hold secrets. */
static void
url_for_log(const char *url, char *out, size_t cap)
{
    size_t n = strcspn(url, "?#");
    snprintf(out, cap, "%.*s", (int)n, url);
}

static void
set_options(xfer *x, struct curl_slist *headers)
{
    lb_http_client *c = x->c;
    const lb_http_call *r = x->req;
    CURL *h = c->curl;
    curl_easy_reset(h);
    c->curl_err[0] = '\0';
    curl_easy_setopt(h, CURLOPT_URL, r->url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->curl_err);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, c->opts.user_agent);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->opts.connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->opts.timeout_ms > 0 ? c->opts.timeout_ms : 0L);
    if (c->opts.stall_timeout_ms > 0) {
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (c->opts.stall_timeout_ms + 999) / 1000);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);

    bool has_body = r->body || r->body_read;
    if (strcmp(r->method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(r->method, "GET") == 0 && !has_body) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
        /* PUT, POST and PATCH always carry a body, if only an empty one,
         * so that Content-Length: 0 is sent. */
        if (has_body || strcmp(r->method, "PUT") == 0 || strcmp(r->method, "POST") == 0 ||
            strcmp(r->method, "PATCH") == 0) {
            curl_off_t size = r->body_read ? (curl_off_t)r->body_size : (curl_off_t)r->body_len;
            curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
            curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
            curl_easy_setopt(h, CURLOPT_READDATA, x);
            curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
            curl_easy_setopt(h, CURLOPT_SEEKDATA, x);
            curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, size < 0 ? (curl_off_t)-1 : size);
        }
    }
}

/* Prepare the sinks and the body for another attempt. false: cannot. */
static bool
rewind_for_retry(xfer *x)
{
    const lb_http_call *r = x->req;
    if (r->body_read && x->body_produced > 0) {
        if (!r->body_rewind || r->body_rewind(r->body_arg) != 0)
            return false;
    }
    if (r->response_write && x->delivered > 0) {
        if (!r->response_reset || r->response_reset(r->response_arg) != 0)
            return false;
        x->delivered = 0;
    }
    if (r->response_body) {
        r->response_body->len = x->buf_base;
        if (r->response_body->data)
            r->response_body->data[x->buf_base] = '\0';
    }
    x->mem_off = 0;
    x->body_produced = 0;
    x->body_seen = false;
    x->to_sink = false;
    return true;
}

static long
backoff_ms(lb_http_client *c, int attempt, const lb_http_result *resp)
{
    long d = c->opts.retry_base_ms;
    for (int i = 1; i < attempt && d < c->opts.retry_max_ms; i++)
        d *= 2;
    if (d > c->opts.retry_max_ms)
        d = c->opts.retry_max_ms;
    /* Equal jitter: half fixed, half random, so clients spread out but
     * still back off. */
    long half = d / 2;
    d = half + (long)(rand_r(&c->seed) % (unsigned long)(d - half + 1));
    const char *ra = lb_http_result_header(resp, "retry-after");
    if (ra && isdigit((unsigned char)ra[0])) {
        long s = strtol(ra, NULL, 10);
        long ms = s > c->opts.retry_max_ms / 1000 ? c->opts.retry_max_ms : s * 1000;
        if (ms > d)
            d = ms;
    }
    return d;
}

static void
sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int
lb_http_do(lb_http_client *c, const lb_http_call *req, lb_http_result *resp)
{
    assert(c && req && resp);
    lb_buf_reset(&resp->headers);
    lb_buf_reset(&resp->error_body);
    resp->status = 0;
    resp->attempts = 0;
    c->error[0] = '\0';

    if (!valid_method(req->method) || !valid_url(req->url) || (req->nheaders && !req->headers) ||
        (req->body && req->body_read) || (req->response_body && req->response_write) ||
        (strcmp(req->method, "HEAD") == 0 && (req->body || req->body_read))) {
        snprintf(c->error, sizeof(c->error), "malformed HTTP request");
        return -EINVAL;
    }
    char logurl[256];
    url_for_log(req->url, logurl, sizeof(logurl));

    struct curl_slist *headers = NULL;
    for (size_t i = 0; i < req->nheaders; i++) {
        if (!valid_header_line(req->headers[i])) {
            curl_slist_free_all(headers);
            snprintf(c->error, sizeof(c->error), "malformed header line for %s %s", req->method,
                     logurl);
            return -EINVAL;
        }
        struct curl_slist *n = curl_slist_append(headers, req->headers[i]);
        if (!n) {
            curl_slist_free_all(headers);
            return -ENOMEM;
        }
        headers = n;
    }
    /* The client's credential, read now so that a reloaded token is used
     * from the next request on; a caller's own Authorization line wins. */
    bool has_authorization = false;
    for (size_t i = 0; i < req->nheaders; i++)
        has_authorization |= strncasecmp(req->headers[i], "Authorization:", 14) == 0;
    if (c->token && !has_authorization) {
        char line[LB_AUTH_HEADER_MAX];
        struct curl_slist *a = lb_auth_header_line(c->token, line, sizeof(line)) == 0
                                   ? curl_slist_append(headers, line)
                                   : NULL;
        explicit_bzero(line, sizeof(line));
        if (!a) {
            curl_slist_free_all(headers);
            return -ENOMEM;
        }
        headers = a;
    }
    /* No "Expect: 100-continue" round trip: our peers answer at once. */
    struct curl_slist *n = curl_slist_append(headers, "Expect:");
    if (!n) {
        curl_slist_free_all(headers);
        return -ENOMEM;
    }
    headers = n;

    xfer x = {.c = c, .req = req, .resp = resp};
    x.buf_base = req->response_body ? req->response_body->len : 0;
    int max = req->max_attempts > 0 ? req->max_attempts : c->opts.max_attempts;
    bool method_ok = method_idempotent(req->method) || req->retry_non_idempotent;
    int rc = 0;

    for (int attempt = 1;; attempt++) {
        resp->attempts = attempt;
        lb_buf_reset(&resp->headers);
        lb_buf_reset(&resp->error_body);
        set_options(&x, headers);
        CURLcode cc = curl_easy_perform(c->curl);
        long status = 0;
        curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
        resp->status = status;

        bool retryable;
        char what[CURL_ERROR_SIZE + 64];
        if (x.sink_err || x.body_err) {
            rc = x.sink_err ? x.sink_err : x.body_err;
            snprintf(c->error, sizeof(c->error), "%s %s: body callback failed: %s", req->method,
                     logurl, lb_strerror(rc));
            break;
        }
        if (cc == CURLE_OK) {
            rc = 0;
            retryable = lb_http_status_retryable(status);
            snprintf(what, sizeof(what), "HTTP %ld", status);
            if (status < 200 || status > 299)
                snprintf(c->error, sizeof(c->error), "%s %s: HTTP %ld", req->method, logurl,
                         status);
        } else {
            rc = curl_to_err(cc);
            retryable = curl_transient(cc);
            snprintf(what, sizeof(what), "%s%s%s%s", curl_easy_strerror(cc),
                     c->curl_err[0] ? " (" : "", c->curl_err, c->curl_err[0] ? ")" : "");
            snprintf(c->error, sizeof(c->error), "%s %s: %s", req->method, logurl, what);
        }
        if (!retryable || attempt >= max || !method_ok)
            break;
        if (!rewind_for_retry(&x))
            break;
        long delay = backoff_ms(c, attempt, resp);
        lb_warn("http request retried method=%s url=%s attempt=%d error=\"%s\" delay_ms=%ld",
                req->method, logurl, attempt, what, delay);
        sleep_ms(delay);
    }
    if (c->error[0] && resp->attempts > 1) {
        size_t len = strlen(c->error);
        snprintf(c->error + len, sizeof(c->error) - len, " after %d attempts", resp->attempts);
    }
    curl_slist_free_all(headers);
    /* Do not leave pointers to this call's stack in the handle. */
    curl_easy_reset(c->curl);
    return rc;
}
