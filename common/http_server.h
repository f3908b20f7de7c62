/*
 * http_server.h: the HTTP server every lakebase daemon embeds.
 *
 * Built on libmicrohttpd. A server listens on one address and port, routes
 * requests by method and path pattern ("/v1/tenant/{tenant_id}") to
 * handlers, and always serves GET /healthz and GET /metrics (Prometheus
 * text of its metrics registry).
 *
 * Threads: requests are served by a pool of internal threads (one polling
 * thread when threads == 1). Handlers and stream callbacks run on those
 * threads, several at once, so they must be thread-safe. A handler that
 * blocks holds up the other connections of its thread: long work belongs
 * elsewhere, and long responses go out through a stream callback, which is
 * called whenever the socket can take more bytes.
 *
 * A handler sees the whole request (the body is read before it runs, up to
 * max_body, beyond which the client gets 413) and answers with exactly one
 * lb_http_respond*() call. If it returns an error code without answering,
 * the server answers for it (see lb_http_status_for_error()). Error bodies
 * are JSON: {"error": "..."}.
 *
 * Shutdown (lb_http_server_stop) stops accepting, lets requests in flight
 * finish (including streams) for up to shutdown_timeout_ms, then closes
 * every connection.
 */
#ifndef LB_HTTP_SERVER_H
#define LB_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "auth.h"
#include "metrics.h"

typedef struct lb_http_server lb_http_server;
/* One request; valid only until the handler returns. */
typedef struct lb_http_request lb_http_request;

/* Answers req (one lb_http_respond*() call) and returns 0, or returns an
 * error code for the server to turn into an error response. */
typedef int (*lb_http_handler)(lb_http_request *req, void *arg);

/* ---- daemons: set up, run, stop ---- */

typedef struct lb_http_server_config {
    const char *address;          /* numeric IPv4/IPv6 address or host name; NULL: "127.0.0.1" */
    int port;                     /* 0: pick a free port, see lb_http_server_port() */
    unsigned threads;             /* 0: 4 */
    size_t max_body;              /* bytes; 0: 1 MiB. Larger bodies get 413 */
    unsigned idle_timeout_s;      /* close a connection silent this long; 0: 60 */
    unsigned max_connections;     /* connections at once, beyond which new ones are
                                     closed at once; 0: 1024 */
    unsigned shutdown_timeout_ms; /* how long stop waits for requests in flight; 0: 10000 */
    lb_metrics *metrics;          /* served at /metrics, and where the lb_http_* request
                                     metrics go (shared by servers sharing a registry);
                                     NULL: lb_metrics_default(). Not owned; must outlive
                                     the server. */
} lb_http_server_config;

/* A stopped server with /healthz and /metrics routed. The config is copied.
 * The caller frees the server with lb_http_server_free(). 0, -EINVAL, -ENOMEM. */
int lb_http_server_new(const lb_http_server_config *config, lb_http_server **out);

/* Route method ("GET", "POST", ...) and pattern to fn(req, arg). A pattern
 * is "/"-separated literal segments and "{name}" parameters, each matching
 * one non-empty segment. Where two patterns match, the one with a literal
 * segment further left wins. Only before start. 0, -EINVAL (malformed
 * pattern), LB_EEXIST (same method and pattern twice), -EBUSY (running).
 * GET routes also answer HEAD. */
int lb_http_server_route(lb_http_server *s, const char *method, const char *pattern,
                         lb_http_handler fn, void *arg);

/* Credentials. Once a server has keys (lb_http_server_set_auth), every
 * route but the open ones needs "Authorization: Bearer <token>" verified by
 * them: without one, or with one that does not verify, the client gets 401
 * and WWW-Authenticate: Bearer; with a valid token whose role or scope does
 * not fit, 403. Both are answered before the body is read and before the
 * handler runs. /healthz and /metrics are open. A route added with
 * lb_http_server_route() takes management tokens only; others declare who
 * may call them: */
typedef struct lb_http_access {
    unsigned roles; /* lb_auth_role bits that may call; management always may */
    bool open;      /* no credential needed */
    /* false: the token's tenant/timeline scope must cover the route's
     * {tenant_id} and {timeline_id} parameters (a route without them is
     * for unscoped tokens only). true: only the role is checked here; the
     * handler checks the scope itself with lb_http_claims(). */
    bool own_scope;
    /* How a refused request (401, 403) is answered: refuse(req, status,
     * message) makes the one respond call, in the route's own error shape
     * (the Iceberg REST catalog's ErrorModel). NULL: {"error": message}. */
    int (*refuse)(lb_http_request *req, int status, const char *message);
} lb_http_access;

/* Route with declared access (NULL: management only). Same codes as
 * lb_http_server_route. */
int lb_http_server_route_access(lb_http_server *s, const char *method, const char *pattern,
                                lb_http_handler fn, void *arg, const lb_http_access *access);
/* Require credentials verified by keys (not owned; must outlive the server;
 * NULL: none required). Only before start. 0, -EBUSY. */
int lb_http_server_set_auth(lb_http_server *s, lb_auth_keys *keys);

/* /healthz answers 200 "ok" while check(arg) returns 0, else 503 with the
 * error's message. Without a check it always answers 200. Only before start. */
int lb_http_server_set_health(lb_http_server *s, int (*check)(void *arg), void *arg);

/* Bind and start serving. 0, -errno (e.g. -EADDRINUSE), LB_EPARSE (bad address). */
int lb_http_server_start(lb_http_server *s);
/* The bound port (also when config.port was 0); -1 if not started. */
int lb_http_server_port(const lb_http_server *s);

/* Stop accepting, wait for requests in flight, then close everything.
 * Requests arriving on open keep-alive connections meanwhile get 503.
 * Idempotent; call from any thread but a handler's. */
void lb_http_server_stop(lb_http_server *s);
/* Stop (if running) and free. */
void lb_http_server_free(lb_http_server *s);

/* ---- handlers: the request ---- */

const char *lb_http_method(const lb_http_request *req);
/* Path without the query string, percent-decoded. */
const char *lb_http_path(const lb_http_request *req);
/* The route pattern that matched, e.g. "/v1/tenant/{tenant_id}". */
const char *lb_http_route(const lb_http_request *req);
/* A path parameter of the matched pattern; NULL if the pattern has none so named. */
const char *lb_http_param(const lb_http_request *req, const char *name);
/* A query argument (decoded); NULL if absent, "" if given without a value. */
const char *lb_http_query(const lb_http_request *req, const char *name);
/* A request header (name case-insensitive); NULL if absent. */
const char *lb_http_header(const lb_http_request *req, const char *name);
/* The verified claims of the request's token; NULL when the server needs
 * no credentials or the route is open. */
const lb_auth_claims *lb_http_claims(const lb_http_request *req);
/* The body (NUL-terminated past len; never NULL, "" when empty). Owned by req. */
const char *lb_http_body(const lb_http_request *req, size_t *len);

/* ---- handlers: the response ----
 *
 * Exactly one respond call per request; a second fails with -EALREADY.
 * They return 0, -ENOMEM, or -EIO if the connection cannot take it. */

/* Add a header to the response to come. Name and value are copied. */
int lb_http_add_header(lb_http_request *req, const char *name, const char *value);
/* bytes (len) are copied. content_type NULL: no Content-Type. */
int lb_http_respond(lb_http_request *req, int status, const char *content_type, const void *bytes,
                    size_t len);
/* text/plain; charset=utf-8 from a format. */
int lb_http_respond_text(lb_http_request *req, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* application/json {"error": "<message>"}. */
int lb_http_respond_error(lb_http_request *req, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A body produced piece by piece, for large responses (tar streams).
 * produce(arg, offset, buf, cap) writes up to cap bytes at byte offset of
 * the body into buf and returns how many (> 0), 0 at the end, or a negative
 * error, which aborts the connection so the client sees a truncated body.
 * It runs on server threads after the handler has returned, never two calls
 * at once for one response. done(arg), if not NULL, is called exactly once
 * when the response is finished or abandoned, also when this call fails: it
 * owns arg. length: the body's size if known (sent as Content-Length), or
 * -1 (chunked). */
typedef ssize_t (*lb_http_produce_fn)(void *arg, uint64_t offset, char *buf, size_t cap);
int lb_http_respond_stream(lb_http_request *req, int status, const char *content_type,
                           int64_t length, lb_http_produce_fn produce, void (*done)(void *arg),
                           void *arg);

/* length bytes of the open file fd from offset (WAL segments), sent with
 * sendfile where possible. Takes ownership of fd: it is closed when the
 * response is finished, and also when this call fails. -EINVAL if the range
 * goes past the end of the file. */
int lb_http_respond_fd(lb_http_request *req, int status, const char *content_type, int fd,
                       uint64_t offset, uint64_t length);

/* True once a respond call has succeeded for req. */
bool lb_http_responded(const lb_http_request *req);

/* The status the server answers with when a handler returns err without
 * responding: LB_EPARSE, -EINVAL -> 400; LB_ENOTFOUND, -ENOENT -> 404;
 * LB_EAUTH -> 401; LB_EFORBIDDEN -> 403;
 * LB_ECONFLICT, LB_EEXIST, LB_ESTALETERM -> 409; LB_ETOOBIG -> 413;
 * LB_EUNSUPPORTED -> 501; LB_ETIMEOUT -> 504; anything else -> 500. */
int lb_http_status_for_error(int err);

#endif
