/*
 * pki.h: the API server's certificates, tokens and kubeconfig.
 *
 * Files in the data directory (created once, reused by later starts):
 *   ca.crt, ca.key            a self-signed CA (EC P-256, 10 years)
 *   apiserver.crt, .key       the serving certificate, signed by the CA, for
 *                             127.0.0.1, localhost, kubernetes.default.svc...
 *                             and any extra names given (regenerated when
 *                             the names change)
 *   admin.token               the cluster-admin bearer token
 *   token.key                 the secret that signs service-account tokens
 *   kubeconfig                cluster, user and context "devcluster"
 * Keys and tokens are mode 0600.
 */
#ifndef DC_PKI_H
#define DC_PKI_H

#include <stddef.h>

typedef struct dc_pki {
    char *ca_pem;
    char *cert_pem; /* serving certificate */
    char *key_pem;
    char admin_token[65];
    unsigned char token_key[32];
} dc_pki;

/* Load or create everything in dir. sans: extra DNS names or IPv4
 * addresses for the serving certificate (NULL-terminated, may be NULL). */
int dc_pki_load(const char *dir, const char *const *sans, dc_pki *out);
void dc_pki_free(dc_pki *p);
/* Write dir/kubeconfig for https://host:port with the admin token. */
int dc_pki_write_kubeconfig(const dc_pki *p, const char *dir, const char *host, int port);

/* Service-account tokens: "dcsa.<base64url(ns:name:uid:exp)>.<hmac>".
 * dc_pki_issue_token writes a new string to *out (caller frees). exp is a
 * Unix time, 0 for no expiry. */
int dc_pki_issue_token(const dc_pki *p, const char *ns, const char *name, const char *uid,
                       long long exp, char **out);
/* 0 and the service account's namespace, name and uid (caller frees each),
 * or -EACCES for a token that is malformed, forged or expired. */
int dc_pki_verify_token(const dc_pki *p, const char *token, char **ns, char **name, char **uid);

#endif
