/*
 * fuzz_auth.c: libFuzzer target for token verification, which every
 * component runs on bytes from the network before anything else: any
 * string as a token (base64url, header JSON, signature length, claims).
 * The property: no crash, no out-of-bounds access, and nothing verifies
 * (the fuzzer holds no private key, so a success would be a forgery).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static lb_auth_keys *keys;

static void
load_keys(void)
{
    char dir[] = "/tmp/lb-fuzz-auth-XXXXXX";
    if (!mkdtemp(dir))
        abort();
    char priv[64], pub[64];
    snprintf(priv, sizeof(priv), "%s/k.key", dir);
    snprintf(pub, sizeof(pub), "%s/k.pem", dir);
    lb_log_set_level(LB_LOG_ERROR);
    if (lb_auth_keygen(priv, pub) != 0 || lb_auth_keys_load(pub, &keys) != 0)
        abort();
    unlink(priv);
    unlink(pub);
    rmdir(dir);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!keys)
        load_keys();
    char *token = malloc(size + 1);
    if (!token)
        return 0;
    memcpy(token, data, size);
    token[size] = '\0';
    lb_auth_claims c;
    const char *why;
    if (lb_auth_verify(keys, token, 0, &c, &why) == 0)
        abort(); /* a token nobody signed */
    char out[LB_AUTH_TOKEN_MAX];
    size_t n;
    lb_auth_b64url_decode(token, strlen(token), out, sizeof(out), &n);
    free(token);
    return 0;
}
