/*
 * auth.c: verifying and minting Ed25519 JWTs, key sets, token files.
 *
 * Verification order, cheapest refusal first: length bound, three
 * base64url parts, header JSON with alg "EdDSA" exactly (so "none" and
 * HS256 never reach a key), signature against each loaded key, then the
 * claims (role, ids, times). Nothing of the claims is trusted before the
 * signature checks out.
 *
 * Invariants: a key set is swapped whole under its write lock, and a
 * verify holds the read lock for the keys it tries, so a reload never
 * frees a key in use. EVP_PKEY objects are only read after loading;
 * each verify makes its own EVP_MD_CTX.
 *
 * Callers: see auth.h.
 */
#include "auth.h"
#include "errors.h"
#include "fileio.h"
#include "log.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_KEYS 64
#define ED25519_SIG_LEN 64

/* ---- roles ---- */

static const struct {
    lb_auth_role role;
    const char *name;
} role_names[] = {
    {LB_AUTH_MANAGEMENT, "management"}, {LB_AUTH_SAFEKEEPER, "safekeeper"},
    {LB_AUTH_PAGESERVER, "pageserver"}, {LB_AUTH_COMPUTE, "compute"},
    {LB_AUTH_ANALYTICS, "analytics"},
};

lb_auth_role
lb_auth_role_parse(const char *name)
{
    for (size_t i = 0; name && i < sizeof(role_names) / sizeof(role_names[0]); i++)
        if (strcmp(name, role_names[i].name) == 0)
            return role_names[i].role;
    return 0;
}

const char *
lb_auth_role_name(lb_auth_role role)
{
    for (size_t i = 0; i < sizeof(role_names) / sizeof(role_names[0]); i++)
        if (role == role_names[i].role)
            return role_names[i].name;
    return "?";
}

/* ---- base64url ---- */

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int
lb_auth_b64url_encode(const void *in, size_t n, char *out, size_t cap)
{
    const uint8_t *p = in;
    size_t need = n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0) + 1;
    if (cap < need)
        return -ENOSPC;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        out[o++] = b64url[(v >> 18) & 63];
        out[o++] = b64url[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = b64url[(v >> 6) & 63];
        if (i + 2 < n)
            out[o++] = b64url[v & 63];
    }
    out[o] = '\0';
    assert(o + 1 == need);
    return 0;
}

static int
b64url_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

int
lb_auth_b64url_decode(const char *in, size_t n, void *out, size_t cap, size_t *outlen)
{
    if (n % 4 == 1)
        return LB_EPARSE; /* no whole byte in a lone character */
    size_t need = n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
    if (need > cap)
        return -ENOSPC;
    uint8_t *o = out;
    size_t w = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64url_value(in[i]);
        if (v < 0)
            return LB_EPARSE;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[w++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0)
        return LB_EPARSE; /* non-canonical: trailing bits set */
    assert(w == need);
    *outlen = w;
    return 0;
}

/* ---- key sets ---- */

struct lb_auth_keys {
    pthread_rwlock_t lock;
    char *path;
    EVP_PKEY *keys[MAX_KEYS];
    size_t nkeys;
};

/* One PEM file's Ed25519 public key into *out. */
static int
load_public_pem(const char *path, EVP_PKEY **out)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    EVP_PKEY *k = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    if (!k || EVP_PKEY_id(k) != EVP_PKEY_ED25519) {
        EVP_PKEY_free(k);
        lb_error("could not load public key \"%s\": not an Ed25519 public key in PEM", path);
        return LB_EPARSE;
    }
    *out = k;
    return 0;
}

static bool
has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int
cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Load path into keys[] and *n (freed by the caller on failure too). */
static int
load_set(const char *path, EVP_PKEY **keys, size_t *n)
{
    struct stat st;
    *n = 0;
    if (stat(path, &st) != 0)
        return -errno;
    if (!S_ISDIR(st.st_mode)) {
        int rc = load_public_pem(path, &keys[0]);
        if (rc == 0)
            *n = 1;
        return rc;
    }
    DIR *d = opendir(path);
    if (!d)
        return -errno;
    char *names[MAX_KEYS];
    size_t nnames = 0;
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || !has_suffix(de->d_name, ".pem"))
            continue;
        if (nnames == MAX_KEYS)
            rc = LB_ETOOBIG;
        else if (!(names[nnames++] = strdup(de->d_name)))
            rc = -ENOMEM, nnames--;
    }
    closedir(d);
    qsort(names, nnames, sizeof(names[0]), cmp_names); /* a stable order for logs */
    for (size_t i = 0; i < nnames; i++) {
        char file[4096];
        if (rc == 0 && snprintf(file, sizeof(file), "%s/%s", path, names[i]) >= (int)sizeof(file))
            rc = -ENAMETOOLONG;
        if (rc == 0 && (rc = load_public_pem(file, &keys[*n])) == 0)
            (*n)++;
        free(names[i]);
    }
    if (rc == 0 && *n == 0) {
        lb_error("no public keys (*.pem) in \"%s\"", path);
        rc = LB_ENOTFOUND;
    }
    return rc;
}

static void
free_set(EVP_PKEY **keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        EVP_PKEY_free(keys[i]);
}

int
lb_auth_keys_load(const char *path, lb_auth_keys **out)
{
    assert(out);
    *out = NULL;
    if (!path || !*path)
        return -EINVAL;
    lb_auth_keys *k = calloc(1, sizeof(*k));
    if (!k || !(k->path = strdup(path))) {
        free(k);
        return -ENOMEM;
    }
    pthread_rwlock_init(&k->lock, NULL);
    int rc = load_set(path, k->keys, &k->nkeys);
    if (rc != 0) {
        lb_auth_keys_free(k);
        return rc;
    }
    lb_info("auth keys loaded path=\"%s\" keys=%zu", path, k->nkeys);
    *out = k;
    return 0;
}

int
lb_auth_keys_reload(lb_auth_keys *k)
{
    assert(k);
    EVP_PKEY *fresh[MAX_KEYS];
    size_t n = 0;
    int rc = load_set(k->path, fresh, &n);
    if (rc != 0) {
        free_set(fresh, n);
        lb_warn("auth keys not reloaded, keeping the old ones path=\"%s\": %s", k->path,
                lb_strerror(rc));
        return rc;
    }
    EVP_PKEY *old[MAX_KEYS];
    pthread_rwlock_wrlock(&k->lock);
    size_t nold = k->nkeys;
    memcpy(old, k->keys, nold * sizeof(old[0]));
    memcpy(k->keys, fresh, n * sizeof(fresh[0]));
    k->nkeys = n;
    pthread_rwlock_unlock(&k->lock);
    free_set(old, nold);
    lb_info("auth keys reloaded path=\"%s\" keys=%zu", k->path, n);
    return 0;
}

size_t
lb_auth_keys_count(lb_auth_keys *k)
{
    pthread_rwlock_rdlock(&k->lock);
    size_t n = k->nkeys;
    pthread_rwlock_unlock(&k->lock);
    return n;
}

void
lb_auth_keys_free(lb_auth_keys *k)
{
    if (!k)
        return;
    free_set(k->keys, k->nkeys);
    pthread_rwlock_destroy(&k->lock);
    free(k->path);
    free(k);
}

/* ---- verifying ---- */

static bool
valid_id(const char *s)
{
    if (strlen(s) != LB_AUTH_ID_LEN)
        return false;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return false;
    return true;
}

/* Decode one part into a NUL-terminated JSON object. */
static json_t *
decode_json_part(const char *part, size_t n)
{
    char buf[LB_AUTH_TOKEN_MAX];
    size_t len;
    if (lb_auth_b64url_decode(part, n, buf, sizeof(buf) - 1, &len) != 0)
        return NULL;
    json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* An optional string claim into out; false if present and not a string or too long. */
static bool
claim_str(json_t *c, const char *name, char *out, size_t cap)
{
    json_t *v = json_object_get(c, name);
    out[0] = '\0';
    if (!v)
        return true;
    if (!json_is_string(v) || json_string_length(v) >= cap ||
        strlen(json_string_value(v)) != json_string_length(v))
        return false;
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return true;
}

static bool
claim_time(json_t *c, const char *name, int64_t *out)
{
    json_t *v = json_object_get(c, name);
    *out = 0;
    if (!v)
        return true;
    if (!json_is_integer(v) || json_integer_value(v) <= 0)
        return false;
    *out = json_integer_value(v);
    return true;
}

static const char *
parse_claims(json_t *c, lb_auth_claims *out)
{
    char role[32];
    memset(out, 0, sizeof(*out));
    if (!claim_str(c, "role", role, sizeof(role)) || !(out->role = lb_auth_role_parse(role)))
        return "unknown or missing role";
    if (!claim_str(c, "sub", out->sub, sizeof(out->sub)))
        return "malformed sub";
    if (!claim_str(c, "tenant", out->tenant, sizeof(out->tenant)))
        return "malformed tenant";
    if (strcmp(out->tenant, "*") == 0)
        out->tenant[0] = '\0';
    else if (out->tenant[0] && !valid_id(out->tenant))
        return "malformed tenant";
    if (!claim_str(c, "timeline", out->timeline, sizeof(out->timeline)) ||
        (out->timeline[0] && !valid_id(out->timeline)))
        return "malformed timeline";
    if (out->timeline[0] && !out->tenant[0])
        return "timeline without tenant";
    if (!claim_str(c, "endpoint", out->endpoint, sizeof(out->endpoint)))
        return "malformed endpoint";
    if (out->role == LB_AUTH_COMPUTE && (!out->tenant[0] || !out->timeline[0]))
        return "compute token without tenant and timeline";
    if (!claim_time(c, "exp", &out->exp) || !claim_time(c, "nbf", &out->nbf) ||
        !claim_time(c, "iat", &out->iat))
        return "malformed exp, nbf or iat";
    return NULL;
}

static bool
verify_with(EVP_PKEY *key, const char *signed_part, size_t n, const uint8_t *sig)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok =
        ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) == 1 &&
        EVP_DigestVerify(ctx, sig, ED25519_SIG_LEN, (const unsigned char *)signed_part, n) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

int
lb_auth_verify(lb_auth_keys *keys, const char *token, int64_t now, lb_auth_claims *claims,
               const char **reason)
{
    const char *why = NULL;
    json_t *hdr = NULL, *body = NULL;
    assert(keys && claims);
    memset(claims, 0, sizeof(*claims));
    size_t len = token ? strnlen(token, LB_AUTH_TOKEN_MAX + 1) : 0;
    const char *dot1 = token ? memchr(token, '.', len) : NULL;
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    uint8_t sig[ED25519_SIG_LEN + 3];
    size_t siglen = 0;
    if (!token || len == 0) {
        why = "no token";
    } else if (len > LB_AUTH_TOKEN_MAX) {
        why = "token too long";
    } else if (!dot1 || !dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token))) {
        why = "token is not three base64url parts";
    } else if (!(hdr = decode_json_part(token, (size_t)(dot1 - token)))) {
        why = "malformed header";
    } else if (!json_is_string(json_object_get(hdr, "alg")) ||
               strcmp(json_string_value(json_object_get(hdr, "alg")), "EdDSA") != 0) {
        why = "algorithm is not EdDSA";
    } else if (json_object_get(hdr, "typ") &&
               (!json_is_string(json_object_get(hdr, "typ")) ||
                strcmp(json_string_value(json_object_get(hdr, "typ")), "JWT") != 0)) {
        why = "type is not JWT";
    } else if (json_object_get(hdr, "crit")) {
        why = "critical header extensions are not supported";
    } else if (lb_auth_b64url_decode(dot2 + 1, len - (size_t)(dot2 + 1 - token), sig, sizeof(sig),
                                     &siglen) != 0 ||
               siglen != ED25519_SIG_LEN) {
        why = "malformed signature";
    } else {
        bool ok = false;
        pthread_rwlock_rdlock(&keys->lock);
        for (size_t i = 0; i < keys->nkeys && !ok; i++)
            ok = verify_with(keys->keys[i], token, (size_t)(dot2 - token), sig);
        pthread_rwlock_unlock(&keys->lock);
        if (!ok)
            why = "bad signature";
        else if (!(body = decode_json_part(dot1 + 1, (size_t)(dot2 - dot1 - 1))))
            why = "malformed claims";
        else
            why = parse_claims(body, claims);
    }
    if (!why) {
        if (now <= 0)
            now = (int64_t)time(NULL);
        if (claims->exp && now > claims->exp + LB_AUTH_LEEWAY_S)
            why = "token expired";
        else if (claims->nbf && now + LB_AUTH_LEEWAY_S < claims->nbf)
            why = "token not valid yet";
    }
    json_decref(hdr);
    json_decref(body);
    if (reason)
        *reason = why;
    if (why) {
        memset(claims, 0, sizeof(*claims));
        return LB_EAUTH;
    }
    return 0;
}

bool
lb_auth_allows(const lb_auth_claims *c, unsigned roles, const char *tenant, const char *timeline)
{
    if (!c || !c->role)
        return false;
    if (c->role == LB_AUTH_MANAGEMENT)
        return true;
    if (!(c->role & roles))
        return false;
    if (c->tenant[0] && (!tenant || strcmp(c->tenant, tenant) != 0))
        return false;
    if (c->timeline[0] && (!timeline || strcmp(c->timeline, timeline) != 0))
        return false;
    return true;
}

const char *
lb_auth_bearer(const char *authorization)
{
    if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
        return NULL;
    const char *t = authorization + 7;
    while (*t == ' ')
        t++;
    return *t ? t : NULL;
}

/* ---- token files ---- */

struct lb_auth_token {
    pthread_mutex_t lock;
    char *path; /* NULL for a token given as a string */
    char token[LB_AUTH_TOKEN_MAX + 1];
};

/* Trim s in place and check it has a token's shape. */
static int
token_shape(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    size_t lead = strspn(s, " \t\r\n");
    memmove(s, s + lead, n - lead + 1);
    n -= lead;
    int dots = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.')
            dots++;
        else if (b64url_value(s[i]) < 0)
            return LB_EPARSE;
    }
    return n > 0 && n <= LB_AUTH_TOKEN_MAX && dots == 2 ? 0 : LB_EPARSE;
}

int
lb_auth_token_read_file(const char *path, char *buf, size_t cap)
{
    lb_buf b = LB_BUF_INIT;
    int rc = lb_read_file(path, &b);
    if (rc == 0 && (b.len > LB_AUTH_TOKEN_MAX + 64 || b.len + 1 > cap))
        rc = b.len + 1 > cap ? -ENOSPC : LB_EPARSE;
    if (rc == 0) {
        memcpy(buf, b.data ? b.data : "", b.len);
        buf[b.len] = '\0';
        rc = strlen(buf) == b.len ? token_shape(buf) : LB_EPARSE;
    }
    lb_buf_free(&b);
    if (rc != 0)
        lb_error("could not read token file \"%s\": %s", path, lb_strerror(rc));
    return rc;
}

static int
token_alloc(const char *path, lb_auth_token **out)
{
    lb_auth_token *t = calloc(1, sizeof(*t));
    if (!t || (path && !(t->path = strdup(path)))) {
        free(t);
        return -ENOMEM;
    }
    pthread_mutex_init(&t->lock, NULL);
    *out = t;
    return 0;
}

int
lb_auth_token_load(const char *path, lb_auth_token **out)
{
    assert(out);
    *out = NULL;
    lb_auth_token *t;
    int rc = token_alloc(path, &t);
    if (rc == 0 && (rc = lb_auth_token_read_file(path, t->token, sizeof(t->token))) != 0)
        lb_auth_token_free(t);
    if (rc == 0)
        *out = t;
    return rc;
}

int
lb_auth_token_new(const char *token, lb_auth_token **out)
{
    assert(out);
    *out = NULL;
    if (!token || strlen(token) > LB_AUTH_TOKEN_MAX)
        return LB_EPARSE;
    lb_auth_token *t;
    int rc = token_alloc(NULL, &t);
    if (rc != 0)
        return rc;
    strcpy(t->token, token);
    if ((rc = token_shape(t->token)) != 0) {
        lb_auth_token_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

int
lb_auth_token_reload(lb_auth_token *t)
{
    if (!t || !t->path)
        return 0;
    char fresh[LB_AUTH_TOKEN_MAX + 1];
    int rc = lb_auth_token_read_file(t->path, fresh, sizeof(fresh));
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&t->lock);
    memcpy(t->token, fresh, sizeof(fresh));
    pthread_mutex_unlock(&t->lock);
    lb_info("auth token reloaded path=\"%s\"", t->path);
    return 0;
}

int
lb_auth_token_get(lb_auth_token *t, char *buf, size_t cap)
{
    if (!t)
        return -EINVAL;
    pthread_mutex_lock(&t->lock);
    size_t n = strlen(t->token);
    int rc = n + 1 > cap ? -ENOSPC : 0;
    if (rc == 0)
        memcpy(buf, t->token, n + 1);
    pthread_mutex_unlock(&t->lock);
    return rc;
}

int
lb_auth_header_line(lb_auth_token *t, char *line, size_t cap)
{
    if (cap == 0)
        return -ENOSPC;
    line[0] = '\0';
    if (!t)
        return 0;
    static const char prefix[] = "Authorization: Bearer ";
    if (cap <= sizeof(prefix))
        return -ENOSPC;
    memcpy(line, prefix, sizeof(prefix));
    return lb_auth_token_get(t, line + sizeof(prefix) - 1, cap - (sizeof(prefix) - 1));
}

void
lb_auth_token_free(lb_auth_token *t)
{
    if (!t)
        return;
    pthread_mutex_destroy(&t->lock);
    free(t->path);
    explicit_bzero(t->token, sizeof(t->token));
    free(t);
}

/* ---- minting ---- */

struct lb_auth_signer {
    EVP_PKEY *key;
};

int
lb_auth_signer_load(const char *path, lb_auth_signer **out)
{
    assert(out);
    *out = NULL;
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (!k || EVP_PKEY_id(k) != EVP_PKEY_ED25519) {
        EVP_PKEY_free(k);
        lb_error("could not load private key \"%s\": not an Ed25519 private key in PEM", path);
        return LB_EPARSE;
    }
    lb_auth_signer *s = calloc(1, sizeof(*s));
    if (!s) {
        EVP_PKEY_free(k);
        return -ENOMEM;
    }
    s->key = k;
    *out = s;
    return 0;
}

void
lb_auth_signer_free(lb_auth_signer *s)
{
    if (!s)
        return;
    EVP_PKEY_free(s->key);
    free(s);
}

static int
b64_json(json_t *j, char *out, size_t cap)
{
    char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    if (!text)
        return -ENOMEM;
    int rc = lb_auth_b64url_encode(text, strlen(text), out, cap);
    free(text);
    return rc;
}

int
lb_auth_mint(lb_auth_signer *s, const lb_auth_claims *c, char **token)
{
    assert(s && c && token);
    *token = NULL;
    if (!strcmp(lb_auth_role_name(c->role), "?") || (c->tenant[0] && !valid_id(c->tenant)) ||
        (c->timeline[0] && !valid_id(c->timeline)) || (c->timeline[0] && !c->tenant[0]) ||
        (c->role == LB_AUTH_COMPUTE && (!c->tenant[0] || !c->timeline[0])))
        return -EINVAL;
    json_t *hdr = json_pack("{s:s, s:s}", "alg", "EdDSA", "typ", "JWT");
    json_t *body = json_pack("{s:s}", "role", lb_auth_role_name(c->role));
    if (!hdr || !body) {
        json_decref(hdr);
        json_decref(body);
        return -ENOMEM;
    }
    if (c->sub[0])
        json_object_set_new(body, "sub", json_string(c->sub));
    if (c->tenant[0])
        json_object_set_new(body, "tenant", json_string(c->tenant));
    if (c->timeline[0])
        json_object_set_new(body, "timeline", json_string(c->timeline));
    if (c->endpoint[0])
        json_object_set_new(body, "endpoint", json_string(c->endpoint));
    if (c->exp)
        json_object_set_new(body, "exp", json_integer(c->exp));
    if (c->nbf)
        json_object_set_new(body, "nbf", json_integer(c->nbf));
    if (c->iat)
        json_object_set_new(body, "iat", json_integer(c->iat));
    char *out = malloc(LB_AUTH_TOKEN_MAX + 1);
    int rc = out ? 0 : -ENOMEM;
    size_t n = 0;
    if (rc == 0 && (rc = b64_json(hdr, out, LB_AUTH_TOKEN_MAX)) == 0) {
        n = strlen(out);
        out[n++] = '.';
        rc = b64_json(body, out + n, LB_AUTH_TOKEN_MAX - n);
    }
    json_decref(hdr);
    json_decref(body);
    uint8_t sig[ED25519_SIG_LEN];
    size_t siglen = sizeof(sig);
    if (rc == 0) {
        n = strlen(out);
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        if (!ctx || EVP_DigestSignInit(ctx, NULL, NULL, NULL, s->key) != 1 ||
            EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)out, n) != 1 ||
            siglen != ED25519_SIG_LEN)
            rc = LB_EPROTO;
        EVP_MD_CTX_free(ctx);
    }
    if (rc == 0 && n + 1 >= LB_AUTH_TOKEN_MAX)
        rc = LB_ETOOBIG;
    if (rc == 0) {
        out[n++] = '.';
        rc = lb_auth_b64url_encode(sig, siglen, out + n, LB_AUTH_TOKEN_MAX + 1 - n);
        if (rc == -ENOSPC)
            rc = LB_ETOOBIG;
    }
    if (rc != 0) {
        free(out);
        return rc;
    }
    *token = out;
    return 0;
}

/* ---- keygen ---- */

static int
write_pem(const char *path, mode_t mode, EVP_PKEY *k, bool priv)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return errno == EEXIST ? LB_EEXIST : -errno;
    FILE *f = fdopen(fd, "w");
    if (!f) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    int ok = priv ? PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) : PEM_write_PUBKEY(f, k);
    int rc = ok == 1 ? 0 : LB_EPROTO;
    if (fflush(f) != 0 || fsync(fileno(f)) != 0)
        rc = rc ? rc : -errno;
    if (fclose(f) != 0 && rc == 0)
        rc = -errno;
    if (rc != 0)
        unlink(path);
    return rc;
}

int
lb_auth_keygen(const char *priv_path, const char *pub_path)
{
    if (access(priv_path, F_OK) == 0 || access(pub_path, F_OK) == 0)
        return LB_EEXIST;
    EVP_PKEY *k = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
    int rc = ctx && EVP_PKEY_keygen_init(ctx) == 1 && EVP_PKEY_keygen(ctx, &k) == 1 ? 0 : LB_EPROTO;
    EVP_PKEY_CTX_free(ctx);
    if (rc == 0 && (rc = write_pem(priv_path, 0600, k, true)) == 0 &&
        (rc = write_pem(pub_path, 0644, k, false)) != 0)
        unlink(priv_path);
    EVP_PKEY_free(k);
    return rc;
}
