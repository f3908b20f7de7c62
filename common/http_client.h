/*
 * http_client.h: a small HTTP/1.1 client on libcurl, with retries.
 *
 * One lb_http_client holds one connection cache (one CURL easy handle), so
 * consecutive requests to the same host reuse the connection. A client is
 * NOT thread-safe: use one per thread.
 *
 * Retries: connection failures, timeouts, 5xx (except 501 and 505), 408 and
 * 429 are retried with exponential backoff and jitter, up to max_attempts
 * attempts in all. Only idempotent methods (GET, HEAD, PUT, DELETE, OPTIONS)
 * are retried, unless the request sets retry_non_idempotent. A streamed
 * body is retried only if it can be rewound, and a streamed response only
 * if nothing was delivered yet or it can be reset.
 *
 * Response bodies: a 2xx body goes to the request's sink (an lb_buf or a
 * write callback); any other status's body goes to resp->error_body (its
 * first LB_HTTP_ERROR_BODY_MAX bytes), so that an error page is never
 * written into a downloaded file.
 *
 * Callers: the s3:// object store; the Kubernetes API client; compute-ctl
 * and the safekeepers talking to each other's HTTP endpoints.
 */
#ifndef LB_HTTP_CLIENT_H
#define LB_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"

typedef struct lb_http_client lb_http_client;

#define LB_HTTP_ERROR_BODY_MAX (1024 * 1024)

/* Zero fields take the defaults in brackets. */
typedef struct lb_http_options {
    long connect_timeout_ms; /* per attempt [5000] */
    long timeout_ms;         /* whole transfer, per attempt [30000]; < 0: none */
    int max_attempts;        /* attempts in all, 1 = no retry [4] */
    long retry_base_ms;      /* first backoff [100] */
    long retry_max_ms;       /* backoff cap, also caps Retry-After [5000] */
    const char *user_agent;  /* [lakebase] */
    /* Abandon an attempt once no byte has moved for this long, in whole
     * seconds rounded up; for long transfers, with timeout_ms < 0 [off]. */
    long stall_timeout_ms;
} lb_http_options;

/* Streaming request body: copy up to cap bytes into dst. Return the number
 * copied (0 at the end), or -errno / an LB_E* code to abort the request
 * (lb_http_do then returns that code). */
typedef ssize_t (*lb_http_read_fn)(void *arg, char *dst, size_t cap);
/* Streaming response body: consume n bytes. 0, or an error code that aborts
 * the request (lb_http_do returns it). */
typedef int (*lb_http_write_fn)(void *arg, const char *bytes, size_t n);
/* Start a stream over (before a retry). 0, or an error code: no retry. */
typedef int (*lb_http_rewind_fn)(void *arg);

/* Named lb_http_call / lb_http_result (not request/response) because the
 * HTTP server's handlers see an lb_http_request, and daemons use both. */
typedef struct lb_http_call {
    const char *method; /* "GET", "PUT", ... */
    const char *url;    /* http:// or https:// only */
    const char *const *headers; /* "Name: value" lines (borrowed) */
    size_t nheaders;

    /* Body: none, bytes in memory (borrowed until lb_http_do returns), or
     * a read callback. body_size < 0 with a callback sends chunked. */
    const void *body;
    size_t body_len;
    lb_http_read_fn body_read;
    lb_http_rewind_fn body_rewind; /* optional; makes a streamed body retryable */
    void *body_arg;
    int64_t body_size;

    /* 2xx response sink: response_body (appended; rolled back to its old
     * length on retry) or response_write; neither discards the body. */
    lb_buf *response_body;
    size_t max_response; /* response_body: more bytes than this end the request with
                            LB_ETOOBIG; 0: no bound */
    lb_http_write_fn response_write;
    lb_http_rewind_fn response_reset; /* optional; allows retry after delivery */
    void *response_arg;

    bool retry_non_idempotent; /* the caller knows a repeat is harmless */
    int max_attempts;          /* 0: the client's */
} lb_http_call;

/* Filled by lb_http_do. Initialize with LB_HTTP_RESULT_INIT, free with
 * lb_http_result_free(); lb_http_do resets it first, so one response can
 * serve many requests. */
typedef struct lb_http_result {
    long status;       /* final status; 0 if no response arrived */
    int attempts;      /* attempts made, >= 1 */
    lb_buf headers;    /* final response headers: "name\0value\0"... (names lowercased) */
    lb_buf error_body; /* body of a non-2xx final response (truncated) */
} lb_http_result;

#define LB_HTTP_RESULT_INIT {0, 0, LB_BUF_INIT, LB_BUF_INIT}

/* --- Everyone --- */

/* New client; opts may be NULL. Returns 0, -ENOMEM, or LB_EHTTP if libcurl
 * cannot be initialized. *out is owned by the caller (lb_http_client_free). */
int lb_http_client_new(const lb_http_options *opts, lb_http_client **out);
void lb_http_client_free(lb_http_client *c);
/* Send "Authorization: Bearer <token>" on every request from now on (the
 * token is read at each request, so a reload takes effect at once). token
 * is not owned and must outlive the client; NULL stops sending one. A
 * request whose own headers carry Authorization keeps its own. */
struct lb_auth_token;
void lb_http_client_set_token(lb_http_client *c, struct lb_auth_token *token);

/* Run req, retrying as described above. Returns 0 once a response arrived
 * (any status: check resp->status), LB_ETIMEOUT if the last attempt timed
 * out, LB_EHTTP for any other transport failure (refused, reset, empty
 * reply), -EINVAL for a malformed request, -ENOMEM, or the code a body
 * callback returned. lb_http_client_error() describes the last failure. */
int lb_http_do(lb_http_client *c, const lb_http_call *req, lb_http_result *resp);

/* The value of a response header (case-insensitive name), or NULL. Points
 * into resp; valid until resp is reused or freed. */
const char *lb_http_result_header(const lb_http_result *resp, const char *name);
void lb_http_result_free(lb_http_result *resp);

/* A one-line description of the last failed lb_http_do ("" if none). Owned
 * by the client; valid until its next request. */
const char *lb_http_client_error(const lb_http_client *c);

/* true for the statuses the client retries (408, 429, 5xx but 501 and 505). */
bool lb_http_status_retryable(long status);

#endif
