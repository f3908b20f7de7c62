/*
 * pki.c: CA, serving certificate, tokens and kubeconfig (see pki.h).
 *
 * Everything is created once and reused, so a kubeconfig handed out by one
 * start keeps working after a restart: a second `devcluster up` finds the
 * same CA and the same admin token. The serving certificate is remade only
 * when the set of names it must carry changes (names.txt records them).
 *
 * Service-account tokens are stateless: the HMAC-SHA256 of their claims
 * under token.key. A token of a deleted service account stops working
 * because the API server checks that an account with that uid still exists.
 */
#include "pki.h"

#include "buf.h"
#include "fileio.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static char *
read_text(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    lb_buf b = LB_BUF_INIT;
    if (lb_read_file(path, &b) < 0) {
        lb_buf_free(&b);
        return NULL;
    }
    return lb_buf_steal(&b, NULL);
}

static int
write_text(const char *dir, const char *name, const char *text, mode_t mode)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int rc = lb_write_file_atomic(path, text, strlen(text));
    if (rc == 0 && chmod(path, mode) < 0)
        rc = -errno;
    if (rc < 0)
        lb_error("could not write \"%s\": %s", path, strerror(-rc));
    return rc;
}

static char *
pem_of_key(EVP_PKEY *key)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *out = NULL;
    if (b && PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL) == 1) {
        char *p;
        long n = BIO_get_mem_data(b, &p);
        out = strndup(p, (size_t)n);
    }
    BIO_free(b);
    return out;
}

static char *
pem_of_cert(X509 *cert)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *out = NULL;
    if (b && PEM_write_bio_X509(b, cert) == 1) {
        char *p;
        long n = BIO_get_mem_data(b, &p);
        out = strndup(p, (size_t)n);
    }
    BIO_free(b);
    return out;
}

static EVP_PKEY *
key_of_pem(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    return k;
}

static X509 *
cert_of_pem(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *c = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    return c;
}

static int
add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ext)
        return -EINVAL;
    int ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok == 1 ? 0 : -EINVAL;
}

/* A certificate for key, signed by (issuer, issuer_key), or self-signed
 * when issuer is NULL. */
static X509 *
make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, const char *san,
          bool ca)
{
    X509 *c = X509_new();
    if (!c)
        return NULL;
    unsigned char serial[16];
    RAND_bytes(serial, sizeof serial);
    serial[0] &= 0x7f;
    BIGNUM *bn = BN_bin2bn(serial, sizeof serial, NULL);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(c));
    BN_free(bn);
    X509_set_version(c, 2);
    X509_gmtime_adj(X509_getm_notBefore(c), -3600);
    X509_gmtime_adj(X509_getm_notAfter(c), 10L * 365 * 24 * 3600);
    X509_set_pubkey(c, key);
    X509_NAME *name = X509_get_subject_name(c);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(c, issuer ? X509_get_subject_name(issuer) : name);
    X509 *iss = issuer ? issuer : c;
    int rc = 0;
    if (ca) {
        rc |= add_ext(c, iss, NID_basic_constraints, "critical,CA:TRUE");
        rc |= add_ext(c, iss, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature");
        rc |= add_ext(c, iss, NID_subject_key_identifier, "hash");
    } else {
        rc |= add_ext(c, iss, NID_basic_constraints, "critical,CA:FALSE");
        rc |= add_ext(c, iss, NID_key_usage, "critical,digitalSignature,keyEncipherment");
        rc |= add_ext(c, iss, NID_ext_key_usage, "serverAuth");
        rc |= add_ext(c, iss, NID_subject_alt_name, san);
        rc |= add_ext(c, iss, NID_authority_key_identifier, "keyid:always");
    }
    if (rc != 0 || X509_sign(c, issuer_key ? issuer_key : key, EVP_sha256()) <= 0) {
        X509_free(c);
        return NULL;
    }
    return c;
}

static EVP_PKEY *
new_key(void)
{
    return EVP_EC_gen("P-256");
}

static void
hex(const unsigned char *bytes, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", bytes[i]);
}

int
dc_pki_load(const char *dir, const char *const *sans, dc_pki *out)
{
    memset(out, 0, sizeof *out);
    int rc = lb_mkdir_p(dir, 0700);
    if (rc < 0)
        return rc;

    /* the CA */
    char *ca_key_pem = read_text(dir, "ca.key");
    out->ca_pem = read_text(dir, "ca.crt");
    EVP_PKEY *ca_key = ca_key_pem ? key_of_pem(ca_key_pem) : NULL;
    X509 *ca = out->ca_pem ? cert_of_pem(out->ca_pem) : NULL;
    if (!ca_key || !ca) {
        EVP_PKEY_free(ca_key);
        X509_free(ca);
        free(ca_key_pem);
        free(out->ca_pem);
        ca_key = new_key();
        ca = ca_key ? make_cert(ca_key, "devcluster-ca", NULL, NULL, NULL, true) : NULL;
        ca_key_pem = ca ? pem_of_key(ca_key) : NULL;
        out->ca_pem = ca ? pem_of_cert(ca) : NULL;
        if (!ca_key_pem || !out->ca_pem || write_text(dir, "ca.key", ca_key_pem, 0600) < 0 ||
            write_text(dir, "ca.crt", out->ca_pem, 0644) < 0) {
            rc = -EIO;
            goto done;
        }
        /* a new CA invalidates the old serving certificate */
        char path[4096];
        snprintf(path, sizeof path, "%s/names.txt", dir);
        unlink(path);
    }

    /* the serving certificate, for the names wanted now */
    lb_buf names = LB_BUF_INIT;
    lb_buf_append_str(&names, "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
                              "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,"
                              "IP:127.0.0.1");
    for (size_t i = 0; sans && sans[i]; i++) {
        struct in_addr a;
        lb_buf_printf(&names, ",%s:%s", inet_pton(AF_INET, sans[i], &a) == 1 ? "IP" : "DNS",
                      sans[i]);
    }
    char *old_names = read_text(dir, "names.txt");
    out->cert_pem = read_text(dir, "apiserver.crt");
    out->key_pem = read_text(dir, "apiserver.key");
    if (!old_names || strcmp(old_names, names.data) != 0 || !out->cert_pem || !out->key_pem) {
        free(out->cert_pem);
        free(out->key_pem);
        out->cert_pem = out->key_pem = NULL;
        EVP_PKEY *key = new_key();
        X509 *cert = key ? make_cert(key, "kube-apiserver", ca, ca_key, names.data, false) : NULL;
        out->key_pem = cert ? pem_of_key(key) : NULL;
        out->cert_pem = cert ? pem_of_cert(cert) : NULL;
        EVP_PKEY_free(key);
        X509_free(cert);
        if (!out->key_pem || !out->cert_pem ||
            write_text(dir, "apiserver.key", out->key_pem, 0600) < 0 ||
            write_text(dir, "apiserver.crt", out->cert_pem, 0644) < 0 ||
            write_text(dir, "names.txt", names.data, 0644) < 0)
            rc = -EIO;
    }
    free(old_names);
    lb_buf_free(&names);
    if (rc < 0)
        goto done;

    /* tokens */
    char *tok = read_text(dir, "admin.token");
    if (tok && strlen(tok) >= 64) {
        memcpy(out->admin_token, tok, 64);
    } else {
        unsigned char r[32];
        RAND_bytes(r, sizeof r);
        hex(r, sizeof r, out->admin_token);
        if (write_text(dir, "admin.token", out->admin_token, 0600) < 0)
            rc = -EIO;
    }
    free(tok);
    char *tk = read_text(dir, "token.key");
    if (tk && strlen(tk) >= 64) {
        for (int i = 0; i < 32; i++) {
            unsigned v;
            sscanf(tk + 2 * i, "%2x", &v);
            out->token_key[i] = (unsigned char)v;
        }
    } else {
        char h[65];
        RAND_bytes(out->token_key, sizeof out->token_key);
        hex(out->token_key, 32, h);
        if (write_text(dir, "token.key", h, 0600) < 0)
            rc = -EIO;
    }
    free(tk);
done:
    EVP_PKEY_free(ca_key);
    X509_free(ca);
    free(ca_key_pem);
    if (rc < 0)
        dc_pki_free(out);
    return rc;
}

void
dc_pki_free(dc_pki *p)
{
    free(p->ca_pem);
    free(p->cert_pem);
    free(p->key_pem);
    OPENSSL_cleanse(p->token_key, sizeof p->token_key);
    memset(p, 0, sizeof *p);
}

int
dc_pki_write_kubeconfig(const dc_pki *p, const char *dir, const char *host, int port)
{
    unsigned char *b64 = malloc(strlen(p->ca_pem) * 2 + 4);
    if (!b64)
        return -ENOMEM;
    EVP_EncodeBlock(b64, (const unsigned char *)p->ca_pem, (int)strlen(p->ca_pem));
    lb_buf y = LB_BUF_INIT;
    lb_buf_printf(&y,
                  "apiVersion: v1\n"
                  "kind: Config\n"
                  "clusters:\n"
                  "- name: devcluster\n"
                  "  cluster:\n"
                  "    server: https://%s:%d\n"
                  "    certificate-authority-data: %s\n"
                  "users:\n"
                  "- name: admin\n"
                  "  user:\n"
                  "    token: %s\n"
                  "contexts:\n"
                  "- name: devcluster\n"
                  "  context:\n"
                  "    cluster: devcluster\n"
                  "    user: admin\n"
                  "    namespace: default\n"
                  "current-context: devcluster\n",
                  host, port, b64, p->admin_token);
    free(b64);
    int rc = y.data ? write_text(dir, "kubeconfig", y.data, 0600) : -ENOMEM;
    lb_buf_free(&y);
    return rc;
}

/* ---- service-account tokens ---- */

static void
b64url(const unsigned char *in, size_t n, lb_buf *out)
{
    unsigned char *tmp = malloc(n * 2 + 4);
    if (!tmp)
        return;
    int len = EVP_EncodeBlock(tmp, in, (int)n);
    for (int i = 0; i < len; i++) {
        char ch = (char)tmp[i];
        if (ch == '=')
            break;
        lb_buf_append(out, ch == '+' ? "-" : ch == '/' ? "_" : &ch, 1);
    }
    free(tmp);
}

static int
b64url_decode(const char *in, size_t n, lb_buf *out)
{
    lb_buf t = LB_BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        char ch = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
        lb_buf_append(&t, &ch, 1);
    }
    while (t.len % 4)
        lb_buf_append(&t, "=", 1);
    unsigned char *dst = malloc(t.len + 4);
    int len = dst && t.data ? EVP_DecodeBlock(dst, (unsigned char *)t.data, (int)t.len) : -1;
    if (len >= 0) {
        size_t pad = 0;
        while (pad < t.len && t.data[t.len - 1 - pad] == '=')
            pad++;
        lb_buf_append(out, dst, (size_t)len - pad);
    }
    free(dst);
    lb_buf_free(&t);
    return len < 0 ? -EINVAL : 0;
}

static void
sign(const dc_pki *p, const char *claims, size_t n, lb_buf *out)
{
    unsigned char mac[32];
    unsigned maclen = sizeof mac;
    HMAC(EVP_sha256(), p->token_key, sizeof p->token_key, (const unsigned char *)claims, n, mac,
         &maclen);
    b64url(mac, maclen, out);
}

int
dc_pki_issue_token(const dc_pki *p, const char *ns, const char *name, const char *uid,
                   long long exp, char **out)
{
    lb_buf claims = LB_BUF_INIT, enc = LB_BUF_INIT, tok = LB_BUF_INIT;
    lb_buf_printf(&claims, "%s:%s:%s:%lld", ns, name, uid, exp);
    b64url((const unsigned char *)claims.data, claims.len, &enc);
    lb_buf_printf(&tok, "dcsa.%s.", enc.data ? enc.data : "");
    sign(p, enc.data ? enc.data : "", enc.len, &tok);
    lb_buf_free(&claims);
    lb_buf_free(&enc);
    if (!tok.data)
        return -ENOMEM;
    *out = lb_buf_steal(&tok, NULL);
    return 0;
}

int
dc_pki_verify_token(const dc_pki *p, const char *token, char **ns, char **name, char **uid)
{
    if (strncmp(token, "dcsa.", 5) != 0)
        return -EACCES;
    const char *enc = token + 5;
    const char *dot = strchr(enc, '.');
    if (!dot)
        return -EACCES;
    lb_buf mac = LB_BUF_INIT;
    sign(p, enc, (size_t)(dot - enc), &mac);
    bool ok =
        mac.data && strlen(dot + 1) == mac.len && CRYPTO_memcmp(mac.data, dot + 1, mac.len) == 0;
    lb_buf_free(&mac);
    if (!ok)
        return -EACCES;
    lb_buf claims = LB_BUF_INIT;
    if (b64url_decode(enc, (size_t)(dot - enc), &claims) < 0 || !claims.data) {
        lb_buf_free(&claims);
        return -EACCES;
    }
    char *f[4] = {0};
    char *save = NULL, *s = claims.data;
    for (int i = 0; i < 4; i++) {
        f[i] = strtok_r(i == 0 ? s : NULL, ":", &save);
        if (!f[i]) {
            lb_buf_free(&claims);
            return -EACCES;
        }
    }
    long long exp = atoll(f[3]);
    if (exp != 0 && exp < (long long)time(NULL)) {
        lb_buf_free(&claims);
        return -EACCES;
    }
    *ns = strdup(f[0]);
    *name = strdup(f[1]);
    *uid = strdup(f[2]);
    lb_buf_free(&claims);
    return 0;
}
