/*
 * auth.h: component credentials: Ed25519-signed JWTs (RFC 7519, RFC 8037).
 *
 * A token is header.claims.signature in base64url, with the header
 * {"alg":"EdDSA","typ":"JWT"}. Anything else is refused: alg "none",
 * HS256, a bad signature, malformed base64url or JSON, an expired "exp", an
 * "nbf" in the future, an unknown role, a token over LB_AUTH_TOKEN_MAX.
 *
 * Daemons hold PUBLIC keys only (config auth_public_keys: one PEM file, or a
 * directory whose *.pem files are all read; any key verifies, which is how
 * keys rotate). The private key stays with management (the controller, or
 * the launcher in tests and `make run`), which mints tokens with
 * lb_auth_signer. Each daemon's own outgoing token comes from a file
 * (config auth_token_file). Both are re-read on SIGHUP by the daemon's loop
 * calling lb_auth_keys_reload() / lb_auth_token_reload(); a reload that
 * fails keeps what was loaded before.
 *
 * Roles and what they may do are in docs/auth.md; lb_auth_allows() is the
 * one check every server makes: role in the route's set, and the token's
 * tenant/timeline scope covering the request's.
 *
 * Threads: an lb_auth_keys and an lb_auth_token may be used from any
 * thread at once (HTTP threads verify while the loop reloads).
 *
 * Callers: common/http_server.c (routes that declare the roles they take),
 * the safekeeper's walsender, every client that sends a token, and the
 * lakebase-token CLI.
 */
#ifndef LB_AUTH_H
#define LB_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LB_AUTH_TOKEN_MAX 4096 /* bytes of a whole token; longer ones are refused */
#define LB_AUTH_LEEWAY_S 30    /* clock skew allowed on exp and nbf */
#define LB_AUTH_ID_LEN 32      /* tenant and timeline ids: 32 lowercase hex */

/* Roles, as bits so that a route can take several. */
typedef enum lb_auth_role {
    LB_AUTH_MANAGEMENT = 1u << 0,
    LB_AUTH_SAFEKEEPER = 1u << 1,
    LB_AUTH_PAGESERVER = 1u << 2,
    LB_AUTH_COMPUTE = 1u << 3,
    /* Read-only analytics: the pageserver's Iceberg REST catalog and lake
     * status, for the tenant (and timeline) the token is scoped to. */
    LB_AUTH_ANALYTICS = 1u << 4,
} lb_auth_role;
#define LB_AUTH_ANY_ROLE                                                                           \
    (LB_AUTH_MANAGEMENT | LB_AUTH_SAFEKEEPER | LB_AUTH_PAGESERVER | LB_AUTH_COMPUTE |              \
     LB_AUTH_ANALYTICS)

/* A verified token's claims. Empty strings for absent claims; tenant "" is
 * every tenant (absent or "*" in the token), timeline "" every timeline. */
typedef struct lb_auth_claims {
    lb_auth_role role;
    char sub[64];
    char tenant[LB_AUTH_ID_LEN + 1];
    char timeline[LB_AUTH_ID_LEN + 1];
    char endpoint[256];    /* compute tokens: host:port of its PostgreSQL */
    int64_t exp, nbf, iat; /* seconds since the epoch; 0 = absent */
} lb_auth_claims;

/* "management" -> LB_AUTH_MANAGEMENT; 0 for anything else. */
lb_auth_role lb_auth_role_parse(const char *name);
/* The name of one role ("?" for a combination or 0). Static storage. */
const char *lb_auth_role_name(lb_auth_role role);

/* ---- servers: verifying ---- */

typedef struct lb_auth_keys lb_auth_keys;

/* Load the public keys at path (a PEM file, or a directory: every *.pem in
 * it). Every file must hold one Ed25519 public key; at least one key must
 * be found. 0, -errno, LB_EPARSE (a file that is not an Ed25519 public
 * key), LB_ENOTFOUND (no keys), -ENOMEM. *out is the caller's
 * (lb_auth_keys_free). */
int lb_auth_keys_load(const char *path, lb_auth_keys **out);
/* Read the same path again and switch to its keys if they load; else keep
 * the old ones. Same codes as lb_auth_keys_load. */
int lb_auth_keys_reload(lb_auth_keys *keys);
/* How many keys verify now. */
size_t lb_auth_keys_count(lb_auth_keys *keys);
void lb_auth_keys_free(lb_auth_keys *keys);

/* Verify token (its length is bounded by LB_AUTH_TOKEN_MAX) against keys at
 * time now (seconds since the epoch; 0: the clock). 0 and *claims filled,
 * or LB_EAUTH with *reason (static storage, may be NULL) saying why. */
int lb_auth_verify(lb_auth_keys *keys, const char *token, int64_t now, lb_auth_claims *claims,
                   const char **reason);

/* Does a token with claims may act with one of roles (bits) on tenant and
 * timeline (NULL: the request names none)? management may do anything.
 * A token scoped to a tenant (or timeline) covers requests on that tenant
 * (or timeline) only, and never requests that name none. */
bool lb_auth_allows(const lb_auth_claims *claims, unsigned roles, const char *tenant,
                    const char *timeline);

/* The token of an "Authorization: Bearer <token>" header value, or NULL. */
const char *lb_auth_bearer(const char *authorization);

/* ---- clients: sending ---- */

typedef struct lb_auth_token lb_auth_token;

/* Read a token file (surrounding white space is dropped; the token's shape
 * is checked, not its signature). 0, -errno, LB_EPARSE. *out is the
 * caller's (lb_auth_token_free). */
int lb_auth_token_load(const char *path, lb_auth_token **out);
/* A token from a string (tests, the CLI). Same codes. */
int lb_auth_token_new(const char *token, lb_auth_token **out);
/* Read the file again; keeps the old token if the new one does not load. */
int lb_auth_token_reload(lb_auth_token *t);
/* Copy the current token into buf (cap >= LB_AUTH_TOKEN_MAX + 1 always
 * fits). 0, -ENOSPC, -EINVAL (t NULL). */
int lb_auth_token_get(lb_auth_token *t, char *buf, size_t cap);
/* "Authorization: Bearer <token>" into line, for lb_http_call.headers;
 * line is "" when t is NULL (no credential configured). */
#define LB_AUTH_HEADER_MAX (LB_AUTH_TOKEN_MAX + 32)
int lb_auth_header_line(lb_auth_token *t, char *line, size_t cap);
void lb_auth_token_free(lb_auth_token *t);

/* Read a token file once into buf (cap as above). 0, -errno, LB_EPARSE. */
int lb_auth_token_read_file(const char *path, char *buf, size_t cap);

/* ---- management: minting ---- */

typedef struct lb_auth_signer lb_auth_signer;

/* Load an Ed25519 private key (PEM). 0, -errno, LB_EPARSE. */
int lb_auth_signer_load(const char *path, lb_auth_signer **out);
void lb_auth_signer_free(lb_auth_signer *s);
/* Sign claims into a token (malloc'd, the caller frees). role must be one
 * role; tenant/timeline "" are omitted; exp/nbf/iat 0 are omitted.
 * 0, -EINVAL, -ENOMEM, LB_EPROTO (the library failed). */
int lb_auth_mint(lb_auth_signer *s, const lb_auth_claims *claims, char **token);

/* Make a new key pair: private key (PEM, mode 0600) at priv_path, public key
 * (PEM) at pub_path. 0, -errno, LB_EEXIST (either file exists). */
int lb_auth_keygen(const char *priv_path, const char *pub_path);

/* base64url without padding, exposed for tests and the CLI. decode refuses
 * padding, characters outside the alphabet, and non-zero trailing bits.
 * 0, LB_EPARSE, -ENOSPC (out too small). */
int lb_auth_b64url_encode(const void *in, size_t n, char *out, size_t cap);
int lb_auth_b64url_decode(const char *in, size_t n, void *out, size_t cap, size_t *outlen);

#endif
