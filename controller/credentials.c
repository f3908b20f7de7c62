/*
 * credentials.c: keys, tokens and passwords (see credentials.h).
 */
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "credentials.h"
#include "errors.h"
#include "fileio.h"

void
ctl_secret_free(char *s)
{
    if (!s)
        return;
    explicit_bzero(s, strlen(s));
    free(s);
}

static char *
bio_string(BIO *b)
{
    char *data;
    long n = BIO_get_mem_data(b, &data);
    if (n < 0)
        return NULL;
    char *out = malloc((size_t)n + 1);
    if (!out)
        return NULL;
    memcpy(out, data, (size_t)n);
    out[n] = '\0';
    return out;
}

int
ctl_keygen(char **private_pem, char **public_pem)
{
    *private_pem = *public_pem = NULL;
    EVP_PKEY *key = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
    int rc = LB_EPROTO;
    BIO *priv = BIO_new(BIO_s_mem()), *pub = BIO_new(BIO_s_mem());
    if (!ctx || !priv || !pub || EVP_PKEY_keygen_init(ctx) <= 0 || EVP_PKEY_keygen(ctx, &key) <= 0)
        goto out;
    if (PEM_write_bio_PrivateKey(priv, key, NULL, NULL, 0, NULL, NULL) != 1 ||
        PEM_write_bio_PUBKEY(pub, key) != 1)
        goto out;
    *private_pem = bio_string(priv);
    *public_pem = bio_string(pub);
    rc = *private_pem && *public_pem ? 0 : -ENOMEM;
    if (rc) {
        ctl_secret_free(*private_pem);
        free(*public_pem);
        *private_pem = *public_pem = NULL;
    }
out:
    if (priv) {
        char *data;
        long n = BIO_get_mem_data(priv, &data);
        if (n > 0)
            explicit_bzero(data, (size_t)n);
    }
    BIO_free(priv);
    BIO_free(pub);
    EVP_PKEY_free(key);
    EVP_PKEY_CTX_free(ctx);
    return rc;
}

int
ctl_signer_from_pem(const char *private_pem, size_t len, lb_auth_signer **out)
{
    int fd = memfd_create("lakebase-signing-key", MFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = lb_write_all(fd, private_pem, len);
    if (rc == 0) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        rc = lb_auth_signer_load(path, out);
    }
    close(fd);
    return rc;
}

int
ctl_mint(lb_auth_signer *s, lb_auth_role role, const char *sub, const char *tenant,
         const char *timeline, const char *endpoint, char **token)
{
    lb_auth_claims c;
    memset(&c, 0, sizeof(c));
    c.role = role;
    snprintf(c.sub, sizeof(c.sub), "%s", sub ? sub : "");
    snprintf(c.tenant, sizeof(c.tenant), "%s", tenant ? tenant : "");
    snprintf(c.timeline, sizeof(c.timeline), "%s", timeline ? timeline : "");
    snprintf(c.endpoint, sizeof(c.endpoint), "%s", endpoint ? endpoint : "");
    c.iat = (int64_t)time(NULL);
    return lb_auth_mint(s, &c, token);
}

static int
random_chars(char *buf, size_t n, const char *alphabet, size_t alen)
{
    unsigned char raw[64];
    if (n > sizeof(raw))
        return -EINVAL;
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(raw + got, n - got, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        got += (size_t)r;
    }
    for (size_t i = 0; i < n; i++)
        buf[i] = alphabet[raw[i] % alen]; /* 256 % 62 bias: negligible for 32 chars */
    buf[n] = '\0';
    explicit_bzero(raw, sizeof(raw));
    return 0;
}

int
ctl_password(char *buf, size_t cap)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    if (cap < 33)
        return -EINVAL;
    return random_chars(buf, 32, a, sizeof(a) - 1);
}

int
ctl_random_id(char *buf, size_t cap)
{
    static const char a[] = "0123456789abcdef";
    if (cap < 33)
        return -EINVAL;
    return random_chars(buf, 32, a, 16);
}
