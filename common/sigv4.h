/*
 * sigv4.h: AWS Signature Version 4 for S3 requests (header signing).
 *
 * The signer is a pure function of its inputs: no clock, no environment, no
 * I/O. That is what lets the tests check it byte for byte against AWS's
 * published test vectors. The S3 backend (objstore_s3.c) builds the URL it
 * sends with the same encoders, so what is signed is exactly what goes on
 * the wire.
 *
 * S3 rules, which differ from the other AWS services: the path is
 * URI-encoded once (not twice) and never normalized ("a//b" and "a/./b"
 * stay as they are).
 */
#ifndef LB_SIGV4_H
#define LB_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "buf.h"

#define LB_SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define LB_SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"

/* A name and a value, both unencoded (query) or as sent (headers). */
typedef struct lb_sigv4_pair {
    const char *name;
    const char *value; /* NULL is the same as "" */
} lb_sigv4_pair;

typedef struct lb_sigv4_request {
    const char *method;         /* "GET", "PUT", ... */
    const char *path;           /* unencoded, starts with '/' */
    const lb_sigv4_pair *query; /* unencoded parameters, any order */
    size_t nquery;
    const lb_sigv4_pair *headers; /* every header to sign, as sent; must hold host */
    size_t nheaders;
    const char *payload_hash; /* lowercase hex SHA-256 of the body, or UNSIGNED-PAYLOAD */
} lb_sigv4_request;

typedef struct lb_sigv4_credentials {
    const char *access_key_id;
    const char *secret_access_key;
    const char *region;  /* "us-east-1" */
    const char *service; /* "s3" */
} lb_sigv4_credentials;

/* The result and its intermediate steps (kept for tests and debugging).
 * Owned by the caller; release with lb_sigv4_result_free(). */
typedef struct lb_sigv4_result {
    lb_buf canonical_request;
    lb_buf string_to_sign;
    lb_buf signed_headers; /* "host;x-amz-date" */
    lb_buf authorization;  /* the Authorization header value */
    char signature[65];    /* lowercase hex */
} lb_sigv4_result;

#define LB_SIGV4_RESULT_INIT                                                                       \
    {                                                                                              \
        LB_BUF_INIT, LB_BUF_INIT, LB_BUF_INIT, LB_BUF_INIT,                                        \
        {                                                                                          \
            0                                                                                      \
        }                                                                                          \
    }

/* --- For the S3 backend and tests --- */

/* Sign req at amz_date ("YYYYMMDDTHHMMSSZ", which must also be the value of
 * the request's x-amz-date header). Fills *out (initialize it with
 * LB_SIGV4_RESULT_INIT; it is reset first). Returns 0, -EINVAL for malformed
 * input (no host header, bad date, path not starting with '/', header name
 * with a control character or ':'), or -ENOMEM. */
int lb_sigv4_sign(const lb_sigv4_request *req, const lb_sigv4_credentials *cred,
                  const char *amz_date, lb_sigv4_result *out);
void lb_sigv4_result_free(lb_sigv4_result *r);

/* Append s[0..n) URI-encoded the S3 way: A-Z a-z 0-9 - . _ ~ are kept, '/'
 * is kept if keep_slash, every other byte becomes %XX (uppercase). 0 or
 * -ENOMEM. */
int lb_sigv4_uri_encode(lb_buf *out, const char *s, size_t n, bool keep_slash);
/* Append the canonical query string: encoded "name=value" pairs sorted by
 * name then value, joined by '&'. The result is also a valid URL query. */
int lb_sigv4_canonical_query(lb_buf *out, const lb_sigv4_pair *query, size_t n);

/* SHA-256 of bytes as lowercase hex (65 bytes with the NUL). */
void lb_sha256_hex(const void *bytes, size_t n, char out[65]);
/* t as "YYYYMMDDTHHMMSSZ" (UTC). */
void lb_sigv4_amz_date(time_t t, char out[17]);

#endif
