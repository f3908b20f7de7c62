/*
 * credentials.h: the keys, tokens and passwords the controller makes.
 *
 * Everything stays in memory until it is written into a Secret: the
 * Ed25519 pair is made with OpenSSL directly, tokens are minted by common's
 * signer (loaded from the PEM through a memfd, never a file on disk), and
 * passwords come from the kernel's CSPRNG. Buffers that held a secret are
 * wiped before they are freed.
 *
 * Callers: cluster.c, branch.c.
 */
#ifndef CTL_CREDENTIALS_H
#define CTL_CREDENTIALS_H

#include <stddef.h>

#include "auth.h"

/* A new Ed25519 key pair as PEM (PKCS#8 private, SPKI public), malloc'd.
 * 0, -ENOMEM, LB_EPROTO. */
int ctl_keygen(char **private_pem, char **public_pem);
/* A signer for the private key PEM. 0, LB_EPARSE, -errno. */
int ctl_signer_from_pem(const char *private_pem, size_t len, lb_auth_signer **out);
/* Mint a token with role, sub and the optional scope (NULL or ""), no
 * expiry. *token malloc'd. 0 or the codes of lb_auth_mint. */
int ctl_mint(lb_auth_signer *s, lb_auth_role role, const char *sub, const char *tenant,
             const char *timeline, const char *endpoint, char **token);
/* A random password: 32 characters of [A-Za-z0-9] into buf (>= 33 bytes).
 * 0 or -errno. */
int ctl_password(char *buf, size_t cap);
/* A random 32-hex-character id (tenant, timeline) into buf (>= 33). */
int ctl_random_id(char *buf, size_t cap);
/* Wipe and free a secret string. */
void ctl_secret_free(char *s);

#endif
