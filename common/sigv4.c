/*
 * sigv4.c: AWS Signature Version 4, as S3 wants it.
 *
 * Four steps, each kept in the result so that a test can compare it with
 * the published vectors:
 *
 *   canonical request = method \n encoded path \n sorted query \n
 *                       "name:value\n" per header (lowercase names, sorted,
 *                       values trimmed, runs of spaces collapsed, repeats
 *                       joined by ',') \n signed header names \n payload hash
 *   string to sign    = "AWS4-HMAC-SHA256" \n date \n scope \n hex(sha256(creq))
 *   signing key       = HMAC chain "AWS4"+secret -> date -> region -> service
 *                       -> "aws4_request"
 *   signature         = hex(HMAC(signing key, string to sign))
 *
 * Invariants: the signer never reads the clock or the environment, and it
 * never normalizes the path (S3 keys may hold "//" or "/./", and S3 signs
 * them as they are). Header values are signed as trimmed and collapsed; the
 * caller sends them as given, which S3 accepts because it canonicalizes the
 * same way.
 *
 * Callers: objstore_s3.c for every request; tests/test_sigv4.c.
 */
#include "sigv4.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

static const char hex_lower[] = "0123456789abcdef";
static const char hex_upper[] = "0123456789ABCDEF";

static void
to_hex(const unsigned char *bytes, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex_lower[bytes[i] >> 4];
        out[2 * i + 1] = hex_lower[bytes[i] & 15];
    }
    out[2 * n] = '\0';
}

void
lb_sha256_hex(const void *bytes, size_t n, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int ok = EVP_Digest(bytes, n, md, &mdlen, EVP_sha256(), NULL);
    assert(ok == 1 && mdlen == 32);
    (void)ok;
    to_hex(md, 32, out);
}

static void
hmac_sha256(const void *key, size_t keylen, const void *msg, size_t n, unsigned char out[32])
{
    unsigned int outlen = 0;
    unsigned char *r = HMAC(EVP_sha256(), key, (int)keylen, msg, n, out, &outlen);
    assert(r != NULL && outlen == 32);
    (void)r;
}

void
lb_sigv4_amz_date(time_t t, char out[17])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

static bool
is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

int
lb_sigv4_uri_encode(lb_buf *out, const char *s, size_t n, bool keep_slash)
{
    int rc = lb_buf_reserve(out, n * 3);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_unreserved(c) || (keep_slash && c == '/')) {
            out->data[out->len++] = (char)c;
        } else {
            out->data[out->len++] = '%';
            out->data[out->len++] = hex_upper[c >> 4];
            out->data[out->len++] = hex_upper[c & 15];
        }
    }
    out->data[out->len] = '\0';
    return 0;
}

/* One encoded query parameter; sorted by name, then value. */
typedef struct enc_param {
    char *name;
    char *value;
} enc_param;

static int
cmp_param(const void *a, const void *b)
{
    const enc_param *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

static char *
encode_dup(const char *s)
{
    lb_buf b = LB_BUF_INIT;
    if (!s)
        s = "";
    if (lb_sigv4_uri_encode(&b, s, strlen(s), false) != 0) {
        lb_buf_free(&b);
        return NULL;
    }
    assert(b.data != NULL); /* reserve always allocates */
    return lb_buf_steal(&b, NULL);
}

int
lb_sigv4_canonical_query(lb_buf *out, const lb_sigv4_pair *query, size_t n)
{
    if (n == 0)
        return 0;
    assert(query != NULL);
    enc_param *p = calloc(n, sizeof(*p));
    if (!p)
        return -ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (!query[i].name) {
            rc = -EINVAL;
            break;
        }
        p[i].name = encode_dup(query[i].name);
        p[i].value = encode_dup(query[i].value);
        if (!p[i].name || !p[i].value)
            rc = -ENOMEM;
    }
    if (rc == 0) {
        qsort(p, n, sizeof(*p), cmp_param);
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = lb_buf_printf(out, "%s%s=%s", i ? "&" : "", p[i].name, p[i].value);
    }
    for (size_t i = 0; i < n; i++) {
        free(p[i].name);
        free(p[i].value);
    }
    free(p);
    return rc;
}

/* A header reduced to its canonical form. */
typedef struct canon_header {
    char *name; /* lowercase */
    lb_buf value;
    size_t order; /* position in the request, so repeats keep their order */
} canon_header;

static int
cmp_header(const void *a, const void *b)
{
    const canon_header *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Append value trimmed, with every run of spaces and tabs collapsed to one
 * space (the suite's get-header-value-trim case). */
static int
append_trimmed(lb_buf *out, const char *v)
{
    if (!v)
        return 0;
    while (*v == ' ' || *v == '\t')
        v++;
    size_t n = strlen(v);
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    int rc = lb_buf_reserve(out, n);
    if (rc)
        return rc;
    bool in_space = false;
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (c == ' ' || c == '\t') {
            if (!in_space)
                out->data[out->len++] = ' ';
            in_space = true;
        } else {
            out->data[out->len++] = c;
            in_space = false;
        }
    }
    out->data[out->len] = '\0';
    return 0;
}

static bool
valid_header_name(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= ' ' || c == ':' || c >= 0x7f)
            return false;
    }
    return true;
}

static bool
valid_amz_date(const char *d)
{
    if (!d || strlen(d) != 16 || d[8] != 'T' || d[15] != 'Z')
        return false;
    for (int i = 0; i < 15; i++)
        if (i != 8 && !isdigit((unsigned char)d[i]))
            return false;
    return true;
}

void
lb_sigv4_result_free(lb_sigv4_result *r)
{
    if (!r)
        return;
    lb_buf_free(&r->canonical_request);
    lb_buf_free(&r->string_to_sign);
    lb_buf_free(&r->signed_headers);
    lb_buf_free(&r->authorization);
    r->signature[0] = '\0';
}

/* Canonical headers ("name:value\n" each) into creq, names into signed. */
static int
canonical_headers(const lb_sigv4_request *req, lb_buf *creq, lb_buf *signed_headers)
{
    canon_header *h = calloc(req->nheaders, sizeof(*h));
    if (!h)
        return -ENOMEM;
    int rc = 0;
    bool have_host = false;
    for (size_t i = 0; i < req->nheaders && rc == 0; i++) {
        if (!valid_header_name(req->headers[i].name)) {
            rc = -EINVAL;
            break;
        }
        h[i].name = strdup(req->headers[i].name);
        if (!h[i].name) {
            rc = -ENOMEM;
            break;
        }
        for (char *c = h[i].name; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        if (strcmp(h[i].name, "host") == 0)
            have_host = true;
        h[i].order = i;
        rc = append_trimmed(&h[i].value, req->headers[i].value);
    }
    if (rc == 0 && !have_host)
        rc = -EINVAL;
    if (rc == 0)
        qsort(h, req->nheaders, sizeof(*h), cmp_header);
    for (size_t i = 0; i < req->nheaders && rc == 0; i++) {
        bool repeat = i > 0 && strcmp(h[i].name, h[i - 1].name) == 0;
        if (repeat) {
            /* The line for this name is already open: add ",value". */
            rc = lb_buf_printf(creq, ",%s", h[i].value.data ? h[i].value.data : "");
        } else {
            if (i > 0)
                rc = lb_buf_append(creq, "\n", 1);
            if (rc == 0)
                rc =
                    lb_buf_printf(creq, "%s:%s", h[i].name, h[i].value.data ? h[i].value.data : "");
            if (rc == 0)
                rc = lb_buf_printf(signed_headers, "%s%s", i ? ";" : "", h[i].name);
        }
    }
    if (rc == 0)
        rc = lb_buf_append(creq, "\n", 1);
    for (size_t i = 0; i < req->nheaders; i++) {
        free(h[i].name);
        lb_buf_free(&h[i].value);
    }
    free(h);
    return rc;
}

int
lb_sigv4_sign(const lb_sigv4_request *req, const lb_sigv4_credentials *cred, const char *amz_date,
              lb_sigv4_result *out)
{
    assert(req && cred && out);
    lb_sigv4_result_free(out);
    if (!req->method || !*req->method || !req->path || req->path[0] != '/' || !req->payload_hash ||
        !*req->payload_hash || !valid_amz_date(amz_date) || !cred->access_key_id ||
        !cred->secret_access_key || !cred->region || !*cred->region || !cred->service ||
        !*cred->service || (req->nheaders > 0 && !req->headers) || (req->nquery > 0 && !req->query))
        return -EINVAL;

    lb_buf *creq = &out->canonical_request;
    int rc = lb_buf_printf(creq, "%s\n", req->method);
    if (rc == 0)
        rc = lb_sigv4_uri_encode(creq, req->path, strlen(req->path), true);
    if (rc == 0)
        rc = lb_buf_append(creq, "\n", 1);
    if (rc == 0)
        rc = lb_sigv4_canonical_query(creq, req->query, req->nquery);
    if (rc == 0)
        rc = lb_buf_append(creq, "\n", 1);
    if (rc == 0)
        rc = canonical_headers(req, creq, &out->signed_headers);
    if (rc == 0)
        rc = lb_buf_printf(creq, "\n%s\n%s", out->signed_headers.data, req->payload_hash);
    if (rc) {
        lb_sigv4_result_free(out);
        return rc;
    }

    char date[9];
    memcpy(date, amz_date, 8);
    date[8] = '\0';
    char creq_hash[65];
    lb_sha256_hex(creq->data, creq->len, creq_hash);
    rc = lb_buf_printf(&out->string_to_sign, "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s",
                       amz_date, date, cred->region, cred->service, creq_hash);
    if (rc) {
        lb_sigv4_result_free(out);
        return rc;
    }

    /* Signing key: derived here and wiped before returning. */
    size_t slen = strlen(cred->secret_access_key);
    char *k0 = malloc(slen + 5);
    if (!k0) {
        lb_sigv4_result_free(out);
        return -ENOMEM;
    }
    memcpy(k0, "AWS4", 4);
    memcpy(k0 + 4, cred->secret_access_key, slen + 1);
    unsigned char k_date[32], k_region[32], k_service[32], k_signing[32], sig[32];
    hmac_sha256(k0, slen + 4, date, 8, k_date);
    hmac_sha256(k_date, 32, cred->region, strlen(cred->region), k_region);
    hmac_sha256(k_region, 32, cred->service, strlen(cred->service), k_service);
    hmac_sha256(k_service, 32, "aws4_request", 12, k_signing);
    hmac_sha256(k_signing, 32, out->string_to_sign.data, out->string_to_sign.len, sig);
    OPENSSL_cleanse(k0, slen + 4);
    OPENSSL_cleanse(k_date, 32);
    OPENSSL_cleanse(k_region, 32);
    OPENSSL_cleanse(k_service, 32);
    OPENSSL_cleanse(k_signing, 32);
    free(k0);
    to_hex(sig, 32, out->signature);

    rc = lb_buf_printf(&out->authorization,
                       "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request, SignedHeaders=%s, "
                       "Signature=%s",
                       cred->access_key_id, date, cred->region, cred->service,
                       out->signed_headers.data, out->signature);
    if (rc) {
        lb_sigv4_result_free(out);
        return rc;
    }
    return 0;
}
