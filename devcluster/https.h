/*
 * https.h: the API server's HTTP/1.1 over TLS listener (OpenSSL).
 *
 * One thread accepts on a loopback address; each connection gets its own
 * thread, which does the TLS handshake, reads requests one after another
 * (keep-alive) and calls the handler for each. A handler may block for as
 * long as it likes (a watch does): it holds only its own connection.
 *
 * A handler answers exactly once, with dc_respond() or with a stream
 * (dc_stream_begin, dc_stream_write..., dc_stream_end): chunked transfer
 * encoding, which is how a real API server sends watch events over
 * HTTP/1.1. ALPN offers only http/1.1, so Go clients do not try HTTP/2.
 *
 * Limits: headers up to 64 KiB (431 beyond), bodies up to max_body (413
 * beyond, from Content-Length before the body is read, or while reading a
 * chunked one), at most max_conns connections (further ones are closed).
 */
#ifndef DC_HTTPS_H
#define DC_HTTPS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct dc_https dc_https;
typedef struct dc_req dc_req;

typedef void (*dc_handler)(dc_req *req, void *arg);

typedef struct dc_https_config {
    const char *address;  /* numeric IPv4 address; NULL: 127.0.0.1 */
    int port;             /* 0: any free port */
    const char *cert_pem; /* serving certificate chain, PEM */
    const char *key_pem;  /* its private key, PEM */
    size_t max_body;      /* 0: 3 MiB (the real API server's limit) */
    unsigned max_conns;   /* 0: 1024 */
    dc_handler handler;
    void *handler_arg;
} dc_https_config;

/* Bind, listen and start accepting. *out is freed by dc_https_stop().
 * 0, -errno, or -EINVAL (bad certificate or key). */
int dc_https_start(const dc_https_config *config, dc_https **out);
int dc_https_port(const dc_https *s);
/* Stop accepting, shut down every connection and wait for their threads. */
void dc_https_stop(dc_https *s);

/* ---- handlers: the request (valid until the handler returns) ---- */
const char *dc_req_method(const dc_req *r);
/* Path, percent-decoded, without the query. */
const char *dc_req_path(const dc_req *r);
/* The raw query string after '?', or "". */
const char *dc_req_rawquery(const dc_req *r);
/* A decoded query argument; NULL if absent, "" without a value. */
const char *dc_req_query(const dc_req *r, const char *name);
const char *dc_req_header(const dc_req *r, const char *name);
/* The body, NUL-terminated past *len. */
const char *dc_req_body(const dc_req *r, size_t *len);

/* ---- handlers: the response ---- */
/* A header for the response to come (dc_respond); value without CR/LF. */
int dc_req_add_header(dc_req *r, const char *name, const char *value);
int dc_respond(dc_req *r, int status, const char *content_type, const char *body, size_t len);
int dc_stream_begin(dc_req *r, int status, const char *content_type);
/* One chunk; -EPIPE once the client is gone. */
int dc_stream_write(dc_req *r, const char *bytes, size_t len);
int dc_stream_end(dc_req *r);
/* Wait up to timeout_ms for the client to hang up; true if it did (or the
 * server stops). A watch calls this while it has nothing to send. */
bool dc_req_client_gone(dc_req *r, int timeout_ms);
bool dc_req_responded(const dc_req *r);

#endif
