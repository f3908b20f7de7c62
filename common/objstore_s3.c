/*
 * objstore_s3.c: the s3:// object store, over the HTTP client and SigV4.
 *
 * URL: s3://bucket/prefix?endpoint=http://host:port&region=r&addressing=path|virtual.
 * Each setting is resolved once, at open, from one table (s3_settings):
 * the options struct first, then the URL, then the environment, then the
 * default. Credentials are never accepted in the URL, and never logged.
 *
 * Requests: every request is signed with SigV4 (unless no credentials are
 * configured) with the payload's SHA-256 when the body is in memory, which
 * it always is: a small object is sent in one PUT; an object above the
 * multipart threshold, or a stream that turns out to be, goes up in parts
 * of part_size bytes, each held in memory so that a failed part can be
 * retried. Memory use is therefore bounded by max(threshold, part size).
 * A failed multipart upload is aborted so it leaves no parts behind.
 * Retries on 5xx, 429 and timeouts are the HTTP client's; POSTs here
 * (create and complete multipart upload) are safe to repeat and say so.
 *
 * Addressing: path style sends Host: endpoint and /bucket/key; virtual
 * hosted style sends Host: bucket.endpoint and /key. Both sign exactly the
 * path and Host they send.
 *
 * XML: responses are parsed by a minimal scanner that finds elements by
 * name (S3 never nests an element in one of the same name) and decodes the
 * five predefined entities and numeric character references, which is all
 * S3 uses. Error bodies are reduced to their Code and Message.
 *
 * Callers: objstore.c, which has validated every key.
 */
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "errors.h"
#include "http_client.h"
#include "log.h"
#include "objstore_backend.h"
#include "sigv4.h"

#define MIB ((size_t)1024 * 1024)
#define GIB (MIB * 1024)
#define S3_MIN_PART (5 * MIB)
#define S3_MAX_PART (5 * GIB)
#define S3_MAX_PARTS 10000

typedef struct s3_store {
    lb_http_client *http;
    char *bucket;
    char *prefix; /* "" or "a/b/" */
    char *scheme; /* "http" or "https" */
    char *host;   /* endpoint host[:port] */
    bool virtual_hosted;
    char *region;
    char *access_key; /* NULL: requests go unsigned */
    char *secret_key;
    char *session_token;
    size_t threshold;
    size_t part_size;
    int page_size;
} s3_store;

static s3_store *
st_of(lb_objstore *s)
{
    assert(s->backend);
    return s->backend;
}

/* --- settings --- */

enum { SET_REGION, SET_ENDPOINT, SET_ADDRESSING, SET_ACCESS, SET_SECRET, SET_TOKEN, SET_COUNT };

typedef struct s3_setting {
    const char *url_name; /* query parameter; NULL: never in a URL */
    size_t opt_offset;    /* const char * field of lb_objstore_options */
    const char *env[2];
    const char *fallback;
} s3_setting;

static const s3_setting s3_settings[SET_COUNT] = {
    [SET_REGION] = {"region",
                    offsetof(lb_objstore_options, region),
                    {"AWS_REGION", "AWS_DEFAULT_REGION"},
                    "us-east-1"},
    [SET_ENDPOINT] = {"endpoint",
                      offsetof(lb_objstore_options, endpoint),
                      {"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"},
                      NULL},
    [SET_ADDRESSING] = {"addressing",
                        offsetof(lb_objstore_options, addressing),
                        {NULL, NULL},
                        NULL},
    [SET_ACCESS] = {NULL,
                    offsetof(lb_objstore_options, access_key_id),
                    {"AWS_ACCESS_KEY_ID", NULL},
                    NULL},
    [SET_SECRET] = {NULL,
                    offsetof(lb_objstore_options, secret_access_key),
                    {"AWS_SECRET_ACCESS_KEY", NULL},
                    NULL},
    [SET_TOKEN] = {NULL,
                   offsetof(lb_objstore_options, session_token),
                   {"AWS_SESSION_TOKEN", NULL},
                   NULL},
};

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decode s[0..n) into a new string; NULL on a bad escape (or a
 * NUL byte) or OOM. */
static char *
url_decode(const char *s, size_t n)
{
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            out[w++] = s[i];
            continue;
        }
        int hi = i + 2 < n ? hexval(s[i + 1]) : -1;
        int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            free(out);
            return NULL;
        }
        out[w++] = (char)(hi * 16 + lo);
        i += 2;
    }
    out[w] = '\0';
    return out;
}

/* Find name's value in the URL query q ("a=1&b=2"). 0 and *out (owned by
 * the caller, NULL if absent), or LB_EBADCONFIG. */
static int
query_value(const char *q, const char *name, char **out)
{
    *out = NULL;
    size_t nlen = strlen(name);
    for (const char *p = q; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        if (eq && (size_t)(eq - p) == nlen && memcmp(p, name, nlen) == 0) {
            free(*out);
            *out = url_decode(eq + 1, len - nlen - 1);
            if (!*out)
                return LB_EBADCONFIG;
        }
        p = amp ? amp + 1 : NULL;
    }
    return 0;
}

/* Every parameter of q must be a known, URL-settable one. */
static int
check_query_names(const char *q)
{
    for (const char *p = q; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        size_t nlen = eq ? (size_t)(eq - p) : len;
        bool known = false;
        for (int i = 0; i < SET_COUNT; i++) {
            const char *u = s3_settings[i].url_name;
            if (u && strlen(u) == nlen && memcmp(u, p, nlen) == 0)
                known = true;
        }
        if (!known || !eq) {
            lb_error("unknown parameter \"%.*s\" in s3 URL", (int)nlen, p);
            lb_error("detail: The s3 URL takes endpoint, region and addressing; credentials come "
                     "from options or the environment.");
            return LB_EBADCONFIG;
        }
        p = amp ? amp + 1 : NULL;
    }
    return 0;
}

/* Resolve every setting: values[i] owned by the caller (NULL if unset). */
static int
resolve_settings(const lb_objstore_options *opts, const char *query, char *values[SET_COUNT])
{
    for (int i = 0; i < SET_COUNT; i++) {
        const s3_setting *set = &s3_settings[i];
        const char *v = *(const char *const *)((const char *)opts + set->opt_offset);
        if (!v || !*v) {
            v = NULL;
            char *from_url = NULL;
            if (set->url_name && query && query_value(query, set->url_name, &from_url) != 0) {
                lb_error("bad percent-encoding of \"%s\" in s3 URL", set->url_name);
                return LB_EBADCONFIG;
            }
            if (from_url && *from_url) {
                values[i] = from_url;
                continue;
            }
            free(from_url);
            for (int e = 0; e < 2 && !v; e++) {
                const char *ev = set->env[e] ? getenv(set->env[e]) : NULL;
                if (ev && *ev)
                    v = ev;
            }
            if (!v)
                v = set->fallback;
            if (!v)
                continue;
        }
        values[i] = strdup(v);
        if (!values[i])
            return -ENOMEM;
    }
    return 0;
}

static bool
valid_bucket(const char *b, size_t n)
{
    if (n < 3 || n > 63 || !isalnum((unsigned char)b[0]) || !isalnum((unsigned char)b[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!islower((unsigned char)b[i]) && !isdigit((unsigned char)b[i]) && b[i] != '.' &&
            b[i] != '-')
            return false;
    return true;
}

/* "http[s]://host[:port][/]" into scheme and host. */
static int
parse_endpoint(const char *ep, char **scheme, char **host)
{
    const char *rest;
    if (strncasecmp(ep, "http://", 7) == 0) {
        *scheme = strdup("http");
        rest = ep + 7;
    } else if (strncasecmp(ep, "https://", 8) == 0) {
        *scheme = strdup("https");
        rest = ep + 8;
    } else {
        lb_error("invalid s3 endpoint \"%s\"", ep);
        lb_error("detail: An endpoint is http://host[:port] or https://host[:port].");
        return LB_EBADCONFIG;
    }
    size_t n = strcspn(rest, "/?#");
    if (n == 0 || (rest[n] && strcmp(rest + n, "/") != 0) || strpbrk(rest, " @\r\n\t")) {
        free(*scheme);
        *scheme = NULL;
        lb_error("invalid s3 endpoint \"%s\"", ep);
        lb_error("detail: An endpoint names a host and port only, with no path or user.");
        return LB_EBADCONFIG;
    }
    *host = strndup(rest, n);
    if (!*scheme || !*host) {
        free(*scheme);
        free(*host);
        return -ENOMEM;
    }
    return 0;
}

static void
s3_free(s3_store *st)
{
    if (!st)
        return;
    lb_http_client_free(st->http);
    free(st->bucket);
    free(st->prefix);
    free(st->scheme);
    free(st->host);
    free(st->region);
    free(st->access_key);
    if (st->secret_key) {
        memset(st->secret_key, 0, strlen(st->secret_key));
        free(st->secret_key);
    }
    free(st->session_token);
    free(st);
}

/* --- requests --- */

typedef struct s3_call {
    const char *op;     /* for messages: "get", "put", ... */
    const char *method; /* HTTP method */
    const char *key;    /* relative object key; NULL for the bucket */
    lb_sigv4_pair query[6];
    size_t nquery;
    const char *range; /* Range header value, or NULL */
    const void *body;  /* in memory, hashed into the signature */
    size_t body_len;
    const char *content_type; /* for a body */
    bool retry_post;          /* this POST may be repeated */
    lb_buf *out;              /* 2xx body sink, or ... */
    lb_objstore_write_fn sink;
    lb__objstore_reset_fn reset;
    void *arg;
} s3_call;

/* Send c. 0 once a response arrived (whatever its status), a sink's error
 * code, -ENOMEM, or LB_ESTORAGE when no response came. */
static int
s3_send(lb_objstore *s, const s3_call *c, lb_http_result *resp)
{
    s3_store *st = st_of(s);
    lb_buf full_key = LB_BUF_INIT, raw_path = LB_BUF_INIT, url = LB_BUF_INIT;
    lb_buf host = LB_BUF_INIT, query = LB_BUF_INIT;
    lb_sigv4_result sig = LB_SIGV4_RESULT_INIT;
    char *lines[8] = {0};
    size_t nlines = 0;
    int rc = 0;

    if (c->key)
        rc = lb_buf_printf(&full_key, "%s%s", st->prefix, c->key);
    if (rc == 0) {
        if (st->virtual_hosted) {
            rc = lb_buf_printf(&host, "%s.%s", st->bucket, st->host);
            if (rc == 0)
                rc = lb_buf_printf(&raw_path, "/%s", c->key ? full_key.data : "");
        } else {
            rc = lb_buf_append_str(&host, st->host);
            if (rc == 0)
                rc = lb_buf_printf(&raw_path, "/%s%s%s", st->bucket, c->key ? "/" : "",
                                   c->key ? full_key.data : "");
        }
    }
    if (rc == 0)
        rc = lb_sigv4_canonical_query(&query, c->query, c->nquery);
    if (rc == 0)
        rc = lb_buf_printf(&url, "%s://%s", st->scheme, host.data);
    if (rc == 0)
        rc = lb_sigv4_uri_encode(&url, raw_path.data, raw_path.len, true);
    if (rc == 0 && query.len)
        rc = lb_buf_printf(&url, "?%s", query.data);

    char amz_date[17];
    lb_sigv4_amz_date(time(NULL), amz_date);
    char payload_hash[65];
    lb_sha256_hex(c->body ? c->body : "", c->body ? c->body_len : 0, payload_hash);
    lb_sigv4_pair signed_headers[5] = {
        {"host", host.data}, {"x-amz-content-sha256", payload_hash}, {"x-amz-date", amz_date}};
    size_t nsigned = 3;
    if (c->range)
        signed_headers[nsigned++] = (lb_sigv4_pair){"range", c->range};
    if (st->session_token)
        signed_headers[nsigned++] = (lb_sigv4_pair){"x-amz-security-token", st->session_token};
    if (rc == 0 && st->access_key) {
        lb_sigv4_request sreq = {c->method,      raw_path.data, c->query,    c->nquery,
                                 signed_headers, nsigned,       payload_hash};
        lb_sigv4_credentials cred = {st->access_key, st->secret_key, st->region, "s3"};
        rc = lb_sigv4_sign(&sreq, &cred, amz_date, &sig);
        if (rc == -EINVAL) /* cannot happen with validated keys and settings */
            rc = lb__objstore_fail(s, LB_ESTORAGE, "s3 %s: could not sign the request", c->op);
    }
    for (size_t i = 0; rc == 0 && i < nsigned; i++) {
        if (asprintf(&lines[nlines], "%s: %s", signed_headers[i].name, signed_headers[i].value) < 0)
            rc = -ENOMEM;
        else
            nlines++;
    }
    if (rc == 0 && st->access_key) {
        if (asprintf(&lines[nlines], "Authorization: %s", sig.authorization.data) < 0)
            rc = -ENOMEM;
        else
            nlines++;
    }
    if (rc == 0 && c->content_type) {
        if (asprintf(&lines[nlines], "Content-Type: %s", c->content_type) < 0)
            rc = -ENOMEM;
        else
            nlines++;
    }
    assert(nlines <= sizeof(lines) / sizeof(lines[0]));

    if (rc == 0) {
        lb_http_call req = {.method = c->method,
                            .url = url.data,
                            .headers = (const char *const *)lines,
                            .nheaders = nlines,
                            .body = c->body,
                            .body_len = c->body ? c->body_len : 0,
                            .response_body = c->out,
                            .response_write = c->out ? NULL : c->sink,
                            .response_reset = c->reset,
                            .response_arg = c->arg,
                            .retry_non_idempotent = c->retry_post};
        rc = lb_http_do(st->http, &req, resp);
        if (rc != 0) {
            /* No response (transport), or the sink's own error, kept as is. */
            bool transport = rc == LB_ETIMEOUT || rc == LB_EHTTP || rc == -EINVAL;
            rc = lb__objstore_fail(s, transport ? LB_ESTORAGE : rc, "s3 %s \"%s\": %s", c->op,
                                   c->key ? c->key : st->bucket, lb_http_client_error(st->http));
        }
    } else if (rc == -ENOMEM) {
        lb__objstore_fail(s, rc, "s3 %s: out of memory", c->op);
    }
    for (size_t i = 0; i < nlines; i++)
        free(lines[i]);
    lb_sigv4_result_free(&sig);
    lb_buf_free(&full_key);
    lb_buf_free(&raw_path);
    lb_buf_free(&url);
    lb_buf_free(&host);
    lb_buf_free(&query);
    return rc;
}

/* --- XML --- */

/* Find the next <name>...</name> (or <name/>) in [p, end). */
static bool
xml_find(const char *p, const char *end, const char *name, const char **cb, const char **ce,
         const char **after)
{
    size_t nl = strlen(name);
    char close[80];
    if (nl + 4 > sizeof(close))
        return false;
    snprintf(close, sizeof(close), "</%s>", name);
    while (p && p < end) {
        const char *lt = memchr(p, '<', (size_t)(end - p));
        if (!lt)
            return false;
        const char *q = lt + 1;
        if ((size_t)(end - q) > nl && memcmp(q, name, nl) == 0 &&
            (q[nl] == '>' || q[nl] == '/' || isspace((unsigned char)q[nl]))) {
            const char *gt = memchr(q + nl, '>', (size_t)(end - q - nl));
            if (!gt)
                return false;
            if (gt[-1] == '/') {
                *cb = *ce = gt;
                if (after)
                    *after = gt + 1;
                return true;
            }
            const char *cl = memmem(gt + 1, (size_t)(end - gt - 1), close, nl + 3);
            if (!cl)
                return false;
            *cb = gt + 1;
            *ce = cl;
            if (after)
                *after = cl + nl + 3;
            return true;
        }
        p = lt + 1;
    }
    return false;
}

static int
utf8_put(lb_buf *out, unsigned long cp)
{
    char b[4];
    size_t n;
    if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return LB_EPARSE;
    if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (char)(0xF0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return lb_buf_append(out, b, n);
}

/* Decode the text [b, e) into out (reset first). LB_EPARSE on a bad
 * entity. */
static int
xml_text(const char *b, const char *e, lb_buf *out)
{
    lb_buf_reset(out);
    int rc = lb_buf_reserve(out, (size_t)(e - b));
    while (rc == 0 && b < e) {
        if (*b != '&') {
            const char *amp = memchr(b, '&', (size_t)(e - b));
            const char *stop = amp ? amp : e;
            rc = lb_buf_append(out, b, (size_t)(stop - b));
            b = stop;
            continue;
        }
        const char *semi = memchr(b, ';', (size_t)(e - b));
        if (!semi || semi - b > 12)
            return LB_EPARSE;
        size_t n = (size_t)(semi - b - 1);
        const char *ent = b + 1;
        static const struct {
            const char *name;
            char c;
        } named[] = {{"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}};
        bool done = false;
        for (size_t i = 0; i < 5 && !done; i++) {
            if (strlen(named[i].name) == n && memcmp(ent, named[i].name, n) == 0) {
                rc = lb_buf_append(out, &named[i].c, 1);
                done = true;
            }
        }
        if (!done) {
            if (n < 2 || ent[0] != '#')
                return LB_EPARSE;
            bool hex = ent[1] == 'x' || ent[1] == 'X';
            const char *digits = ent + (hex ? 2 : 1);
            if (digits >= semi)
                return LB_EPARSE;
            unsigned long cp = 0;
            for (const char *d = digits; d < semi; d++) {
                int v = hex ? hexval(*d) : (isdigit((unsigned char)*d) ? *d - '0' : -1);
                if (v < 0 || cp > 0x10FFFF)
                    return LB_EPARSE;
                cp = cp * (hex ? 16 : 10) + (unsigned long)v;
            }
            rc = utf8_put(out, cp);
        }
        b = semi + 1;
    }
    return rc;
}

/* The decoded text of the first <name> in [p, end) into out; false if
 * absent or malformed. */
static bool
xml_get(const char *p, const char *end, const char *name, lb_buf *out)
{
    const char *cb, *ce;
    if (!p || !xml_find(p, end, name, &cb, &ce, NULL))
        return false;
    return xml_text(cb, ce, out) == 0;
}

/* Turn a non-2xx response into an error. Missing objects are LB_ENOTFOUND. */
static int
s3_status_error(lb_objstore *s, const s3_call *c, const lb_http_result *resp)
{
    lb_buf code = LB_BUF_INIT, message = LB_BUF_INIT;
    const char *body = resp->error_body.data;
    const char *end = body ? body + resp->error_body.len : NULL;
    xml_get(body, end, "Code", &code);
    xml_get(body, end, "Message", &message);
    const char *cs = code.data ? code.data : "";
    bool missing = resp->status == 404 && c->key &&
                   (strcmp(cs, "NoSuchKey") == 0 || (cs[0] == '\0' && !resp->error_body.len));
    char attempts[32] = "";
    if (resp->attempts > 1)
        snprintf(attempts, sizeof(attempts), " after %d attempts", resp->attempts);
    int rc = lb__objstore_fail(
        s, missing ? LB_ENOTFOUND : LB_ESTORAGE, "s3 %s \"%s\" failed: HTTP %ld%s%s%s%s%s", c->op,
        c->key ? c->key : st_of(s)->bucket, resp->status, cs[0] ? " " : "", cs,
        message.data ? ": " : "", message.data ? message.data : "", attempts);
    lb_buf_free(&code);
    lb_buf_free(&message);
    return rc;
}

static bool
ok_status(long status)
{
    return status >= 200 && status <= 299;
}

/* Send c and map a non-2xx status to an error. */
static int
s3_do(lb_objstore *s, const s3_call *c, lb_http_result *resp)
{
    int rc = s3_send(s, c, resp);
    if (rc == 0 && !ok_status(resp->status))
        rc = s3_status_error(s, c, resp);
    return rc;
}

/* --- operations --- */

static int
s3_put_once(lb_objstore *s, const char *key, const void *bytes, size_t n)
{
    s3_call c = {.op = "put",
                 .method = "PUT",
                 .key = key,
                 .body = bytes,
                 .body_len = n,
                 .content_type = "application/octet-stream"};
    lb_http_result resp = LB_HTTP_RESULT_INIT;
    int rc = s3_do(s, &c, &resp);
    lb_http_result_free(&resp);
    return rc;
}

/* Where the parts of a multipart upload come from: memory or a stream. */
typedef struct feeder {
    const char *mem;
    size_t mem_len;
    size_t mem_off;
    lb_objstore_read_fn source;
    void *arg;
    lb_buf buf; /* stream bytes not yet sent */
    bool eof;
    int err; /* the source's error */
} feeder;

/* Make at least want bytes available (fewer at the end). */
static int
feed_fill(feeder *f, size_t want)
{
    if (!f->source)
        return 0;
    while (f->buf.len < want && !f->eof) {
        size_t room = want - f->buf.len;
        if (room > 4 * MIB)
            room = 4 * MIB;
        int rc = lb_buf_reserve(&f->buf, room);
        if (rc)
            return rc;
        ssize_t got = f->source(f->arg, f->buf.data + f->buf.len, room);
        if (got < 0) {
            f->err = (int)got;
            return f->err;
        }
        assert((size_t)got <= room);
        if (got == 0)
            f->eof = true;
        f->buf.len += (size_t)got;
    }
    return 0;
}

/* The next part (up to part_size bytes); len 0 at the end. */
static int
feed_next(feeder *f, size_t part_size, const char **data, size_t *len)
{
    if (!f->source) {
        size_t left = f->mem_len - f->mem_off;
        *len = left < part_size ? left : part_size;
        *data = f->mem + f->mem_off;
        return 0;
    }
    int rc = feed_fill(f, part_size);
    if (rc)
        return rc;
    *len = f->buf.len < part_size ? f->buf.len : part_size;
    *data = f->buf.data;
    return 0;
}

static void
feed_consume(feeder *f, size_t n)
{
    if (f->source)
        lb_buf_consume(&f->buf, n);
    else
        f->mem_off += n;
}

static int
xml_escape(lb_buf *out, const char *s)
{
    int rc = 0;
    for (; *s && rc == 0; s++) {
        switch (*s) {
        case '&':
            rc = lb_buf_append_str(out, "&amp;");
            break;
        case '<':
            rc = lb_buf_append_str(out, "&lt;");
            break;
        case '>':
            rc = lb_buf_append_str(out, "&gt;");
            break;
        case '"':
            rc = lb_buf_append_str(out, "&quot;");
            break;
        default:
            rc = lb_buf_append(out, s, 1);
        }
    }
    return rc;
}

static int
s3_abort_upload(lb_objstore *s, const char *key, const char *upload_id)
{
    char saved[sizeof(s->error)];
    memcpy(saved, s->error, sizeof(saved)); /* keep the error that made us abort */
    s3_call c = {.op = "abort multipart upload",
                 .method = "DELETE",
                 .key = key,
                 .query = {{"uploadId", upload_id}},
                 .nquery = 1};
    lb_http_result resp = LB_HTTP_RESULT_INIT;
    int rc = s3_do(s, &c, &resp);
    if (rc)
        lb_warn("multipart upload left behind key=\"%s\" upload_id=%s", key, upload_id);
    lb_http_result_free(&resp);
    memcpy(s->error, saved, sizeof(saved));
    return rc;
}

static int
s3_multipart(lb_objstore *s, const char *key, feeder *f)
{
    s3_store *st = st_of(s);
    lb_http_result resp = LB_HTTP_RESULT_INIT;
    lb_buf body = LB_BUF_INIT, text = LB_BUF_INIT;
    char *upload_id = NULL;
    char **etags = NULL;
    int nparts = 0;
    uint64_t total = 0;

    /* Create. Repeating it at worst leaves an empty upload behind. */
    s3_call create = {.op = "create multipart upload",
                      .method = "POST",
                      .key = key,
                      .query = {{"uploads", NULL}},
                      .nquery = 1,
                      .content_type = "application/octet-stream",
                      .retry_post = true,
                      .out = &body};
    int rc = s3_do(s, &create, &resp);
    if (rc == 0) {
        if (!xml_get(body.data, body.data + body.len, "UploadId", &text) || text.len == 0)
            rc = lb__objstore_fail(s, LB_ESTORAGE,
                                   "s3 create multipart upload \"%s\": no UploadId "
                                   "in the response",
                                   key);
        else if (!(upload_id = strdup(text.data)))
            rc = -ENOMEM;
    }
    if (rc)
        goto out;

    for (;;) {
        const char *data;
        size_t len;
        rc = feed_next(f, st->part_size, &data, &len);
        if (rc) {
            rc =
                lb__objstore_fail(s, rc, "put \"%s\": the source failed: %s", key, lb_strerror(rc));
            break;
        }
        if (len == 0)
            break; /* multipart is only used past the threshold: part 1 has bytes */
        if (nparts == S3_MAX_PARTS) {
            rc = lb__objstore_fail(s, LB_ETOOBIG, "put \"%s\": more than %d parts of %zu bytes",
                                   key, S3_MAX_PARTS, st->part_size);
            break;
        }
        char number[16];
        snprintf(number, sizeof(number), "%d", nparts + 1);
        s3_call part = {.op = "upload part",
                        .method = "PUT",
                        .key = key,
                        .query = {{"partNumber", number}, {"uploadId", upload_id}},
                        .nquery = 2,
                        .body = data,
                        .body_len = len};
        rc = s3_do(s, &part, &resp);
        if (rc)
            break;
        const char *etag = lb_http_result_header(&resp, "etag");
        if (!etag || !*etag) {
            rc = lb__objstore_fail(s, LB_ESTORAGE, "s3 upload part %d of \"%s\": no ETag",
                                   nparts + 1, key);
            break;
        }
        char **grown = realloc(etags, (size_t)(nparts + 1) * sizeof(*etags));
        if (!grown || !(grown[nparts] = strdup(etag))) {
            if (grown)
                etags = grown;
            rc = -ENOMEM;
            break;
        }
        etags = grown;
        nparts++;
        total += len;
        feed_consume(f, len);
    }

    if (rc == 0) {
        lb_buf_reset(&body);
        rc = lb_buf_append_str(&body, "<CompleteMultipartUpload "
                                      "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
        for (int i = 0; i < nparts && rc == 0; i++) {
            rc = lb_buf_printf(&body, "<Part><PartNumber>%d</PartNumber><ETag>", i + 1);
            if (rc == 0)
                rc = xml_escape(&body, etags[i]);
            if (rc == 0)
                rc = lb_buf_append_str(&body, "</ETag></Part>");
        }
        if (rc == 0)
            rc = lb_buf_append_str(&body, "</CompleteMultipartUpload>");
        lb_buf result = LB_BUF_INIT;
        s3_call complete = {.op = "complete multipart upload",
                            .method = "POST",
                            .key = key,
                            .query = {{"uploadId", upload_id}},
                            .nquery = 1,
                            .body = body.data,
                            .body_len = body.len,
                            .content_type = "application/xml",
                            .retry_post = true,
                            .out = &result};
        if (rc == 0)
            rc = s3_send(s, &complete, &resp);
        if (rc == 0 && !ok_status(resp.status)) {
            /* A repeated complete whose first try succeeded finds no
             * upload: the object is there if it has the right size. */
            bool gone = resp.status == 404 && resp.attempts > 1 && resp.error_body.data &&
                        strstr(resp.error_body.data, "NoSuchUpload");
            lb_objstore_stat sb;
            if (gone && s->ops->head(s, key, &sb) == 0 && sb.size == total)
                rc = 0;
            else
                rc = s3_status_error(s, &complete, &resp);
        } else if (rc == 0 && result.data && strstr(result.data, "<Error>")) {
            /* S3 may report a failed complete in a 200 body. */
            lb_buf code = LB_BUF_INIT;
            xml_get(result.data, result.data + result.len, "Code", &code);
            rc = lb__objstore_fail(s, LB_ESTORAGE, "s3 complete multipart upload \"%s\" failed: %s",
                                   key, code.data ? code.data : "error in response");
            lb_buf_free(&code);
        }
        lb_buf_free(&result);
    }
    if (rc == 0)
        lb_info("multipart upload completed key=\"%s\" parts=%d bytes=%llu", key, nparts,
                (unsigned long long)total);
    else
        s3_abort_upload(s, key, upload_id);

out:
    for (int i = 0; i < nparts; i++)
        free(etags[i]);
    free(etags);
    free(upload_id);
    lb_buf_free(&body);
    lb_buf_free(&text);
    lb_http_result_free(&resp);
    return rc;
}

static int
s3_put(lb_objstore *s, const char *key, const void *bytes, size_t n, lb_objstore_read_fn source,
       void *arg)
{
    s3_store *st = st_of(s);
    if (bytes) {
        if (n <= st->threshold)
            return s3_put_once(s, key, bytes, n);
        feeder f = {.mem = bytes, .mem_len = n};
        return s3_multipart(s, key, &f);
    }
    /* A stream: read up to the threshold; if it ends there, one PUT. */
    feeder f = {.source = source, .arg = arg};
    int rc = feed_fill(&f, st->threshold + 1);
    if (rc == 0 && f.buf.len <= st->threshold)
        rc = s3_put_once(s, key, f.buf.data ? f.buf.data : "", f.buf.len);
    else if (rc == 0)
        rc = s3_multipart(s, key, &f);
    else if (f.err)
        rc = lb__objstore_fail(s, rc, "put \"%s\": the source failed: %s", key, lb_strerror(rc));
    else
        rc = lb__objstore_fail(s, rc, "put \"%s\": out of memory", key);
    lb_buf_free(&f.buf);
    return rc;
}

/* A ranged get's sink: passes on at most limit bytes. Guards against a
 * server that answers a range with more than was asked. */
typedef struct range_sink {
    lb_objstore_write_fn sink;
    lb__objstore_reset_fn reset;
    void *arg;
    uint64_t limit;
    uint64_t passed;
} range_sink;

static int
range_write(void *p, const char *bytes, size_t n)
{
    range_sink *r = p;
    uint64_t room = r->limit - r->passed;
    size_t take = n < room ? n : (size_t)room;
    r->passed += take;
    return take ? r->sink(r->arg, bytes, take) : 0;
}

static int
range_reset(void *p)
{
    range_sink *r = p;
    if (!r->reset)
        return -ESPIPE;
    r->passed = 0;
    return r->reset(r->arg);
}

static int
s3_get(lb_objstore *s, const char *key, uint64_t offset, uint64_t length, lb_objstore_write_fn sink,
       lb__objstore_reset_fn reset, void *arg)
{
    assert(length > 0);
    char range[64];
    bool ranged = offset > 0 || length != LB__OBJSTORE_TO_END;
    if (ranged) {
        uint64_t last = offset + length - 1;
        if (length == LB__OBJSTORE_TO_END || last < offset || last > (uint64_t)INT64_MAX)
            snprintf(range, sizeof(range), "bytes=%llu-", (unsigned long long)offset);
        else
            snprintf(range, sizeof(range), "bytes=%llu-%llu", (unsigned long long)offset,
                     (unsigned long long)last);
    }
    range_sink capped = {sink, reset, arg, length, 0};
    s3_call c = {.op = "get",
                 .method = "GET",
                 .key = key,
                 .range = ranged ? range : NULL,
                 .sink = ranged ? range_write : sink,
                 .reset = ranged ? (reset ? range_reset : NULL) : reset,
                 .arg = ranged ? (void *)&capped : arg};
    lb_http_result resp = LB_HTTP_RESULT_INIT;
    int rc = s3_send(s, &c, &resp);
    if (rc == 0 && ranged && resp.status == 416) {
        rc = 0; /* the range starts past the end: nothing to read */
    } else if (rc == 0 && !ok_status(resp.status)) {
        rc = s3_status_error(s, &c, &resp);
    } else if (rc == 0 && ranged) {
        /* 206 must start where we asked; a 200 (range ignored) is the whole
         * object, which is what we asked only from offset 0. */
        const char *cr = lb_http_result_header(&resp, "content-range");
        unsigned long long first = 0;
        bool ok = resp.status == 206
                      ? cr && sscanf(cr, "bytes %llu-", &first) == 1 && first == offset
                      : offset == 0;
        if (!ok)
            rc = lb__objstore_fail(s, LB_ESTORAGE,
                                   "s3 get \"%s\": the server answered range %s with %s", key,
                                   range, cr ? cr : "the whole object");
    }
    lb_http_result_free(&resp);
    return rc;
}

static int
s3_head(lb_objstore *s, const char *key, lb_objstore_stat *sb)
{
    s3_call c = {.op = "head", .method = "HEAD", .key = key};
    lb_http_result resp = LB_HTTP_RESULT_INIT;
    int rc = s3_do(s, &c, &resp);
    if (rc == 0) {
        const char *cl = lb_http_result_header(&resp, "content-length");
        const char *etag = lb_http_result_header(&resp, "etag");
        char *end = NULL;
        errno = 0;
        unsigned long long size = cl ? strtoull(cl, &end, 10) : 0;
        if (!cl || !isdigit((unsigned char)cl[0]) || *end || errno)
            rc = lb__objstore_fail(s, LB_ESTORAGE, "s3 head \"%s\": no valid Content-Length", key);
        sb->size = size;
        if (etag) {
            size_t n = strlen(etag);
            if (n >= 2 && etag[0] == '"' && etag[n - 1] == '"') {
                etag++;
                n -= 2;
            }
            snprintf(sb->etag, sizeof(sb->etag), "%.*s", (int)n, etag);
        }
    }
    lb_http_result_free(&resp);
    return rc;
}

static int
s3_del(lb_objstore *s, const char *key)
{
    s3_call c = {.op = "delete", .method = "DELETE", .key = key};
    lb_http_result resp = LB_HTTP_RESULT_INIT;
    int rc = s3_send(s, &c, &resp);
    if (rc == 0 && !ok_status(resp.status) && resp.status != 404)
        rc = s3_status_error(s, &c, &resp);
    lb_http_result_free(&resp);
    return rc;
}

/* Parse one ListObjectsV2 page into out; *token gets the next page's token
 * (owned by the caller) or NULL on the last page. */
static int
parse_list_page(lb_objstore *s, const lb_buf *page, lb_objstore_listing *out, char **token)
{
    s3_store *st = st_of(s);
    size_t plen = strlen(st->prefix);
    const char *p = page->data, *end = page->data + page->len;
    const char *cb, *ce, *after;
    lb_buf text = LB_BUF_INIT, size = LB_BUF_INIT;
    int rc = 0;
    *token = NULL;
    if (!page->data || !strstr(page->data, "ListBucketResult")) {
        rc = lb__objstore_fail(s, LB_ESTORAGE, "s3 list: the response is not a listing");
        goto out;
    }
    while (rc == 0 && xml_find(p, end, "Contents", &cb, &ce, &after)) {
        if (!xml_get(cb, ce, "Key", &text) || !xml_get(cb, ce, "Size", &size) || size.len == 0 ||
            strspn(size.data, "0123456789") != size.len) {
            rc = lb__objstore_fail(s, LB_ESTORAGE, "s3 list: malformed <Contents> entry");
            break;
        }
        if (text.len >= plen && memcmp(text.data, st->prefix, plen) == 0 && text.len > plen)
            rc = lb__objstore_list_add(out, text.data + plen, text.len - plen,
                                       strtoull(size.data, NULL, 10));
        p = after;
    }
    p = page->data;
    while (rc == 0 && xml_find(p, end, "CommonPrefixes", &cb, &ce, &after)) {
        if (!xml_get(cb, ce, "Prefix", &text)) {
            rc = lb__objstore_fail(s, LB_ESTORAGE, "s3 list: malformed <CommonPrefixes> entry");
            break;
        }
        if (text.len > plen && memcmp(text.data, st->prefix, plen) == 0)
            rc = lb__objstore_list_add_prefix(out, text.data + plen, text.len - plen);
        p = after;
    }
    if (rc == 0 && xml_get(page->data, end, "IsTruncated", &text) &&
        strcmp(text.data, "true") == 0) {
        if (!xml_get(page->data, end, "NextContinuationToken", &text) || text.len == 0)
            rc = lb__objstore_fail(s, LB_ESTORAGE,
                                   "s3 list: a truncated page without a continuation token");
        else if (!(*token = strdup(text.data)))
            rc = -ENOMEM;
    }
out:
    lb_buf_free(&text);
    lb_buf_free(&size);
    return rc;
}

static int
s3_list(lb_objstore *s, const char *prefix, const char *delimiter, lb_objstore_listing *out)
{
    s3_store *st = st_of(s);
    char *full = NULL, *token = NULL;
    if (asprintf(&full, "%s%s", st->prefix, prefix) < 0)
        return -ENOMEM;
    char page_size[16];
    snprintf(page_size, sizeof(page_size), "%d", st->page_size);
    lb_buf page = LB_BUF_INIT;
    lb_http_result resp = LB_HTTP_RESULT_INIT;
    int rc = 0;
    for (int pages = 0; rc == 0; pages++) {
        s3_call c = {.op = "list", .method = "GET", .key = NULL, .out = &page};
        c.query[c.nquery++] = (lb_sigv4_pair){"list-type", "2"};
        c.query[c.nquery++] = (lb_sigv4_pair){"max-keys", page_size};
        if (full[0])
            c.query[c.nquery++] = (lb_sigv4_pair){"prefix", full};
        if (delimiter)
            c.query[c.nquery++] = (lb_sigv4_pair){"delimiter", delimiter};
        if (token)
            c.query[c.nquery++] = (lb_sigv4_pair){"continuation-token", token};
        lb_buf_reset(&page);
        rc = s3_do(s, &c, &resp);
        char *next = NULL;
        if (rc == 0)
            rc = parse_list_page(s, &page, out, &next);
        if (rc == 0 && next && token && strcmp(next, token) == 0)
            rc = lb__objstore_fail(s, LB_ESTORAGE, "s3 list: the server repeated a page token");
        free(token);
        token = next;
        if (!token)
            break;
    }
    free(token);
    free(full);
    lb_buf_free(&page);
    lb_http_result_free(&resp);
    return rc;
}

static void
s3_close(lb_objstore *s)
{
    s3_free(st_of(s));
    s->backend = NULL;
}

static const lb__objstore_ops s3_ops = {
    .scheme = "s3",
    .put = s3_put,
    .get = s3_get,
    .head = s3_head,
    .list = s3_list,
    .del = s3_del,
    .close = s3_close,
};

int
lb__objstore_s3_open(lb_objstore *s, const char *rest, const lb_objstore_options *opts)
{
    char *values[SET_COUNT] = {0};
    s3_store *st = calloc(1, sizeof(*st));
    if (!st)
        return -ENOMEM;
    int rc = 0;
    const char *q = strchr(rest, '?');
    size_t pathlen = q ? (size_t)(q - rest) : strlen(rest);
    size_t blen = strcspn(rest, "/?");
    if (!valid_bucket(rest, blen)) {
        lb_error("invalid bucket name \"%.*s\" in s3 URL", (int)blen, rest);
        lb_error("detail: A bucket name has 3 to 63 lowercase letters, digits, dots and "
                 "hyphens.");
        rc = LB_EBADCONFIG;
        goto fail;
    }
    st->bucket = strndup(rest, blen);
    /* The prefix: the path after the bucket, without outer slashes. */
    const char *pb = rest + blen;
    size_t plen = pathlen - blen;
    while (plen && *pb == '/') {
        pb++;
        plen--;
    }
    while (plen && pb[plen - 1] == '/')
        plen--;
    char *prefix = strndup(pb, plen);
    if (!st->bucket || !prefix) {
        free(prefix);
        rc = -ENOMEM;
        goto fail;
    }
    if (plen > 0 && lb_objstore_check_key(prefix, NULL) != 0) {
        lb_error("invalid prefix \"%s\" in s3 URL", prefix);
        free(prefix);
        rc = LB_EBADCONFIG;
        goto fail;
    }
    rc = asprintf(&st->prefix, "%s%s", prefix, plen ? "/" : "") < 0 ? -ENOMEM : 0;
    free(prefix);
    if (rc)
        goto fail;

    if (q && (rc = check_query_names(q + 1)) != 0)
        goto fail;
    rc = resolve_settings(opts, q ? q + 1 : NULL, values);
    if (rc)
        goto fail;

    st->region = values[SET_REGION];
    values[SET_REGION] = NULL;
    const char *endpoint = values[SET_ENDPOINT];
    char default_endpoint[128];
    if (!endpoint) {
        snprintf(default_endpoint, sizeof(default_endpoint), "https://s3.%s.amazonaws.com",
                 st->region);
        endpoint = default_endpoint;
    }
    rc = parse_endpoint(endpoint, &st->scheme, &st->host);
    if (rc)
        goto fail;
    const char *addressing = values[SET_ADDRESSING];
    if (!addressing)
        st->virtual_hosted = values[SET_ENDPOINT] == NULL;
    else if (strcmp(addressing, "virtual") == 0)
        st->virtual_hosted = true;
    else if (strcmp(addressing, "path") == 0)
        st->virtual_hosted = false;
    else {
        lb_error("invalid s3 addressing \"%s\"", addressing);
        lb_error("detail: Addressing is \"path\" or \"virtual\".");
        rc = LB_EBADCONFIG;
        goto fail;
    }
    if (st->virtual_hosted &&
        (st->host[0] == '[' || strspn(st->host, "0123456789.") == strcspn(st->host, ":"))) {
        lb_error("virtual-hosted s3 addressing needs a host name, not \"%s\"", st->host);
        lb_error("detail: Use addressing=path with an IP address endpoint.");
        rc = LB_EBADCONFIG;
        goto fail;
    }
    if ((values[SET_ACCESS] == NULL) != (values[SET_SECRET] == NULL)) {
        lb_error("s3 credentials are incomplete");
        lb_error("detail: Set both the access key id and the secret access key, or neither.");
        rc = LB_EBADCONFIG;
        goto fail;
    }
    st->access_key = values[SET_ACCESS];
    st->secret_key = values[SET_SECRET];
    st->session_token = values[SET_TOKEN];
    values[SET_ACCESS] = values[SET_SECRET] = values[SET_TOKEN] = NULL;

    st->threshold = opts->multipart_threshold ? opts->multipart_threshold : 16 * MIB;
    st->part_size = opts->part_size ? opts->part_size : 16 * MIB;
    st->page_size = opts->list_page_size ? opts->list_page_size : 1000;
    if (st->part_size < S3_MIN_PART || st->part_size > S3_MAX_PART || st->threshold > S3_MAX_PART ||
        st->page_size < 1 || st->page_size > 1000) {
        lb_error("invalid s3 tuning part_size=%zu multipart_threshold=%zu list_page_size=%d",
                 st->part_size, st->threshold, st->page_size);
        lb_error("detail: Parts are 5 MiB to 5 GiB, a single put at most 5 GiB, and a list "
                 "page 1 to 1000 keys.");
        rc = LB_EBADCONFIG;
        goto fail;
    }
    /* Objects can be large: no cap on a whole transfer by default, but an
     * attempt that stops moving is abandoned (and retried). */
    lb_http_options http = opts->http;
    if (http.timeout_ms == 0)
        http.timeout_ms = -1;
    if (http.stall_timeout_ms == 0 && http.timeout_ms < 0)
        http.stall_timeout_ms = 30000;
    rc = lb_http_client_new(&http, &st->http);
    if (rc)
        goto fail;
    if (!st->access_key)
        lb_warn("s3 requests will not be signed: no credentials bucket=%s", st->bucket);
    lb_info("object store opened url=s3://%s/%s endpoint=%s://%s addressing=%s region=%s",
            st->bucket, st->prefix, st->scheme, st->host, st->virtual_hosted ? "virtual" : "path",
            st->region);
    s->ops = &s3_ops;
    s->backend = st;
    for (int i = 0; i < SET_COUNT; i++)
        free(values[i]); /* those kept were moved into st and are NULL */
    return 0;

fail:
    for (int i = 0; i < SET_COUNT; i++)
        free(values[i]);
    s3_free(st);
    return rc;
}
